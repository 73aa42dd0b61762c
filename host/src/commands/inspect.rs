//! `vigil inspect`: what a component is and what it can touch.

use super::EXIT_USAGE;
use crate::cli::InspectArgs;
use crate::wasm::{CheckSource, builtins, inspect};

pub fn run(args: InspectArgs) -> i32 {
    let source: CheckSource = match args.file.parse() {
        Ok(source) => source,
        Err(never) => match never {},
    };
    let bytes = match &source {
        CheckSource::Builtin(name) => match builtins::lookup(name) {
            Some(bytes) => bytes.to_vec(),
            None => {
                eprintln!(
                    "vigil inspect: unknown builtin `{name}` (available: {})",
                    builtins::names().join(", ")
                );
                return EXIT_USAGE;
            }
        },
        CheckSource::File(path) => match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) => {
                eprintln!("vigil inspect: {}: {err}", path.display());
                return EXIT_USAGE;
            }
        },
    };
    let report = match inspect::inspect(&bytes) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("vigil inspect: {source}: {err}");
            return EXIT_USAGE;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(err) => {
                eprintln!("vigil inspect: {err}");
                return EXIT_USAGE;
            }
        }
        return 0;
    }
    let none = || "none".to_owned();
    println!("component     {source}");
    println!("size          {} bytes", report.size);
    println!(
        "world         {}{}",
        report.world,
        report
            .contract_version
            .as_deref()
            .map(|v| format!(" (imports name @{v})"))
            .unwrap_or_default()
    );
    let caps = if report.capabilities.is_empty() {
        none()
    } else {
        report.capabilities.join(", ")
    };
    println!("capabilities  {caps}");
    println!("exports       {}", report.exports.join(", "));
    println!("imports");
    for import in &report.imports {
        println!("  {import}");
    }
    println!("producers");
    for p in &report.producers {
        println!("  {:<14}{} {}", p.field, p.name, p.version);
    }
    0
}
