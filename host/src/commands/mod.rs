//! One module per subcommand; each returns the process exit code.

pub mod check;
pub mod control;
pub mod daemonize;
pub mod inspect;
pub mod instance;
pub mod journal;
pub mod run;
pub mod start_stop;
pub mod status;
pub mod validate;

/// Exit code for bad usage or a component that cannot be loaded.
pub const EXIT_USAGE: i32 = 2;

/// Parse a check source and its grants and load it into a small engine:
/// what `vigil check` and `vigil daemonize` do before running anything.
/// Problems are printed as `vigil COMMAND: ...` and returned as the exit
/// code ([`EXIT_USAGE`]).
pub(crate) async fn load_one_shot(
    command: &str,
    source: &str,
    inputs: &crate::cli::CheckInputs,
) -> Result<
    (
        crate::wasm::CheckSource,
        crate::wasm::Grants,
        crate::wasm::Checker,
    ),
    i32,
> {
    use crate::wasm::{CheckSource, Engine, EngineOptions, Grants};
    let source: CheckSource = match source.parse() {
        Ok(source) => source,
        Err(never) => match never {},
    };
    let paths: Vec<std::path::PathBuf> = inputs
        .allow_paths
        .iter()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
        .collect();
    let grants = Grants::parse(&inputs.allow_hosts, &paths).map_err(|errors| {
        for error in errors {
            eprintln!("vigil {command}: {error}");
        }
        EXIT_USAGE
    })?;
    let engine = Engine::new(EngineOptions {
        max_instances: 4,
        ..EngineOptions::default()
    })
    .map_err(|err| {
        eprintln!("vigil {command}: {err}");
        EXIT_USAGE
    })?;
    let checker = engine.load_checker(&source).await.map_err(|err| {
        // A load error can quote the component's own import names.
        let problem = err.to_string();
        eprintln!("vigil {command}: {}", crate::untrusted::block(&problem));
        EXIT_USAGE
    })?;
    Ok((source, grants, checker))
}
