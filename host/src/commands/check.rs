//! `vigil check`: one check, once, with an exit code a probe can use.

use serde::Serialize;

use super::Exit;
use crate::cli::CheckArgs;
use crate::untrusted;
use crate::wasm::{CheckReport, CheckSource, Checker, Grants, Sandbox, Target, Verdict};

#[derive(Serialize)]
struct JsonReport<'a> {
    check: String,
    outcome: &'static str,
    reason: Option<&'a str>,
    duration_ms: f64,
    output: &'a str,
    logs: &'a [String],
}

pub async fn run(args: CheckArgs) -> Exit {
    let (source, grants, checker) =
        match super::load_one_shot("check", &args.target, &args.inputs).await {
            Ok(loaded) => loaded,
            Err(_) => return args.exit_codes.of_load_error(),
        };
    report(args, source, grants, checker).await
}

/// Runs a loaded check and prints its report: the part of `vigil check`
/// that `vigil-probe` shares ([`crate::probe`]), so both say the same.
pub(crate) async fn report(
    args: CheckArgs,
    source: CheckSource,
    grants: Grants,
    checker: Checker,
) -> Exit {
    let config = args.inputs.config.clone();
    let target = Target::one_shot(args.phase.into(), args.pid, args.inputs.config);
    let mut sandbox = Sandbox::new(grants, args.timeout, args.memory);
    if let Ok(cwd) = std::env::current_dir() {
        sandbox = sandbox.with_base_dir(cwd);
    }
    let report = checker.check(&target, &sandbox).await;
    if args.json {
        print_json(&source, &report);
    } else {
        print_human(&source, &report);
    }
    if matches!(report.verdict, Verdict::Error(_)) {
        // The check refused: often its settings. Its schema says which.
        for problem in config_problems(&source, &config) {
            eprintln!("vigil check: {}", untrusted::line(&problem));
        }
    }
    // The process exits next: unmapping the instance, its code and the
    // engine would only delay a probe's answer (a tenth of the run).
    std::mem::forget(checker);
    args.exit_codes.of_verdict(&report.verdict)
}

/// The `--config` settings against the schema the component declares.
fn config_problems(source: &CheckSource, config: &[(String, String)]) -> Vec<String> {
    let bytes = match source {
        CheckSource::Builtin(name) => match crate::wasm::builtins::lookup(name) {
            Some(bytes) => std::borrow::Cow::Borrowed(bytes),
            None => return Vec::new(),
        },
        CheckSource::File(path) => match std::fs::read(path) {
            Ok(bytes) => std::borrow::Cow::Owned(bytes),
            Err(_) => return Vec::new(),
        },
        CheckSource::Embedded { binary, role } => {
            match crate::wasm::embedded::elf::component(binary, role) {
                Ok(bytes) => std::borrow::Cow::Owned(bytes),
                Err(_) => return Vec::new(),
            }
        }
    };
    crate::config::one_shot_config_problems(&bytes, &source.to_string(), config)
}

fn print_json(source: &CheckSource, report: &CheckReport) {
    let json = JsonReport {
        check: source.to_string(),
        outcome: report.verdict.kind(),
        reason: report.verdict.reason(),
        duration_ms: report.duration.as_secs_f64() * 1000.0,
        output: &report.output,
        logs: &report.logs,
    };
    match serde_json::to_string(&json) {
        Ok(line) => println!("{line}"),
        Err(err) => eprintln!("vigil check: cannot encode the report: {err}"),
    }
}

/// The check controls its reason, logs and output: all escaped
/// ([`untrusted`]), so that it cannot retitle the terminal or print a
/// fake `ok`. The JSON form keeps them exact.
fn print_human(source: &CheckSource, report: &CheckReport) {
    println!(
        "{}  ({}, {:.2} ms)",
        untrusted::line(&report.verdict.to_string()),
        untrusted::line(&source.to_string()),
        report.duration.as_secs_f64() * 1000.0
    );
    for line in &report.logs {
        println!("  log {}", untrusted::line(line));
    }
    for line in untrusted::block(&report.output).lines() {
        println!("  | {line}");
    }
}
