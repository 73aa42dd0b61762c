//! `vigil check`: one check, once, with an exit code a probe can use.

use std::path::PathBuf;

use serde::Serialize;

use super::EXIT_USAGE;
use crate::cli::CheckArgs;
use crate::wasm::{CheckReport, CheckSource, Engine, EngineOptions, Grants, Sandbox, Target};

#[derive(Serialize)]
struct JsonReport<'a> {
    check: String,
    outcome: &'static str,
    reason: Option<&'a str>,
    duration_ms: f64,
    output: &'a str,
    logs: &'a [String],
}

pub async fn run(args: CheckArgs) -> i32 {
    let source: CheckSource = match args.target.parse() {
        Ok(source) => source,
        Err(never) => match never {},
    };
    let paths: Vec<PathBuf> = args
        .allow_paths
        .iter()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
        .collect();
    let grants = match Grants::parse(&args.allow_hosts, &paths) {
        Ok(grants) => grants,
        Err(errors) => {
            for error in errors {
                eprintln!("vigil check: {error}");
            }
            return EXIT_USAGE;
        }
    };
    let engine = match Engine::new(EngineOptions {
        max_instances: 4,
        ..EngineOptions::default()
    }) {
        Ok(engine) => engine,
        Err(err) => {
            eprintln!("vigil check: {err}");
            return EXIT_USAGE;
        }
    };
    let checker = match engine.load_checker(&source).await {
        Ok(checker) => checker,
        Err(err) => {
            eprintln!("vigil check: {err}");
            return EXIT_USAGE;
        }
    };
    let target = Target::one_shot(args.phase.into(), args.pid, args.config);
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
    report.verdict.exit_code()
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

fn print_human(source: &CheckSource, report: &CheckReport) {
    println!(
        "{}  ({source}, {:.2} ms)",
        report.verdict,
        report.duration.as_secs_f64() * 1000.0
    );
    for line in &report.logs {
        println!("  log {line}");
    }
    if !report.output.is_empty() {
        for line in report.output.lines() {
            println!("  | {line}");
        }
    }
}
