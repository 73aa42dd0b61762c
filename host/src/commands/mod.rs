//! One module per subcommand; each returns the process exit code.

pub mod check;
pub mod compile;
pub mod control;
pub mod daemonize;
pub mod embed;
pub mod exit;
pub mod inspect;
pub mod instance;
pub mod journal;
pub mod logs;
pub mod replay;
pub mod run;
pub mod scale;
pub mod start_stop;
pub mod status;
pub mod top;
pub mod validate;

pub use exit::Exit;

/// Logs to stderr, warnings and worse unless `VIGIL_LOG` says otherwise:
/// `vigil` and `vigil-probe` alike, so that both say the same.
pub fn init_logging() {
    use std::io::IsTerminal;
    let log = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal: in a log file, a pipe or
        // a test's captured stderr the escape codes are noise.
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    // Without VIGIL_LOG, a plain level: the same as the directive "warn",
    // without building a directive filter (an exec probe's every run).
    match tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG") {
        Ok(filter) => log.with_env_filter(filter).init(),
        Err(_) => log.with_max_level(tracing::Level::WARN).init(),
    }
}

/// Parse a check source and its grants and load it into a small engine:
/// what `vigil check` and `vigil daemonize` do before running anything.
/// Problems are printed as `vigil COMMAND: ...` and returned as
/// [`Exit::Usage`].
pub(crate) async fn load_one_shot(
    command: &'static str,
    source: &str,
    inputs: &crate::cli::CheckInputs,
) -> Result<
    (
        crate::wasm::CheckSource,
        crate::wasm::Grants,
        crate::wasm::Checker,
    ),
    Exit,
> {
    use crate::wasm::Engine;
    let (source, grants) = one_shot_inputs(command, source, inputs)?;
    let engine = Engine::one_shot(one_shot_engine_options()).map_err(|err| {
        eprintln!("vigil {command}: {err}");
        Exit::Usage
    })?;
    // Compiling (seconds for a Python check, on a cold cache) happens
    // here, before the check's deadline starts; a person at a terminal is
    // told, a probe's output stays as it was.
    let progress = compile::Notices::on_terminal(command);
    let on_compile = progress.clone().map(|progress| {
        let source = source.clone();
        Box::new(move |bytes| progress.compiling(&source, bytes)) as crate::wasm::OnCompile
    });
    let started = std::time::Instant::now();
    let loaded = engine.load_checker_observed(&source, on_compile).await;
    let (checker, outcome) = loaded.map_err(|err| {
        say_load_error(command, &err);
        Exit::Usage
    })?;
    if let Some(progress) = progress {
        let compiled = crate::wasm::Compiled {
            source: source.clone(),
            bytes: None,
            took: started.elapsed(),
            outcome,
        };
        progress.done(&source, &Ok(compiled));
    }
    Ok((source, grants, checker))
}

/// The engine sizing of a one-shot check: a few instances, the default
/// cache (shared by `vigil check` and `vigil-probe`, see [`crate::probe`]).
pub(crate) fn one_shot_engine_options() -> crate::wasm::EngineOptions {
    crate::wasm::EngineOptions {
        max_instances: 4,
        ..crate::wasm::EngineOptions::default()
    }
}

/// The check source and grants of a one-shot check; bad grants are
/// printed as `vigil COMMAND: ...` and returned as [`Exit::Usage`].
pub(crate) fn one_shot_inputs(
    command: &'static str,
    source: &str,
    inputs: &crate::cli::CheckInputs,
) -> Result<(crate::wasm::CheckSource, crate::wasm::Grants), Exit> {
    let source: crate::wasm::CheckSource = match source.parse() {
        Ok(source) => source,
        Err(never) => match never {},
    };
    let paths: Vec<std::path::PathBuf> = inputs
        .allow_paths
        .iter()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
        .collect();
    let grants = crate::wasm::Grants::parse(&inputs.allow_hosts, &paths).map_err(|errors| {
        for error in errors {
            eprintln!("vigil {command}: {error}");
        }
        Exit::Usage
    })?;
    Ok((source, grants))
}

/// Prints why a component could not be loaded, as `vigil COMMAND: ...`.
pub(crate) fn say_load_error(command: &str, err: &crate::wasm::LoadError) {
    // A load error can quote the component's own import names.
    let problem = err.to_string();
    eprintln!("vigil {command}: {}", crate::untrusted::block(&problem));
}
