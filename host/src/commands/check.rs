//! `vigil check`: one check, once, with an exit code a probe can use.

use serde::Serialize;

use super::Exit;
use crate::cli::CheckArgs;
use crate::untrusted;
use crate::wasm::{CheckReport, CheckSource, Sandbox, Target};

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
    args.exit_codes.of_verdict(&report.verdict)
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
