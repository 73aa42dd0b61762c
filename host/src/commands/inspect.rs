//! `vigil inspect`: what a component is and what it can touch.

use super::Exit;
use crate::cli::InspectArgs;
use crate::untrusted;
use crate::wasm::{CheckSource, builtins, inspect};

pub fn run(args: InspectArgs) -> Exit {
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
                return Exit::Usage;
            }
        },
        CheckSource::File(path) => match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) => {
                let problem = format!("{}: {err}", path.display());
                eprintln!("vigil inspect: {}", untrusted::line(&problem));
                return Exit::Usage;
            }
        },
    };
    let report = match inspect::inspect(&bytes) {
        Ok(report) => report,
        Err(err) => {
            let problem = format!("{source}: {err}");
            eprintln!("vigil inspect: {}", untrusted::line(&problem));
            return Exit::Usage;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(err) => {
                eprintln!("vigil inspect: {err}");
                return Exit::Usage;
            }
        }
        return Exit::Ok;
    }
    // Names and the producers section are whatever the component's author
    // wrote: shown escaped ([`untrusted`]); `--json` keeps them exact.
    let shown = |text: &str| untrusted::line(text).into_owned();
    let list = |items: &[String]| items.iter().map(|i| shown(i)).collect::<Vec<_>>();
    println!("component     {}", shown(&source.to_string()));
    println!("size          {} bytes", report.size);
    println!(
        "world         {}{}",
        shown(&report.world),
        report
            .contract_version
            .as_deref()
            .map(|v| format!(" (imports name @{})", shown(v)))
            .unwrap_or_default()
    );
    let caps = if report.capabilities.is_empty() {
        "none".to_owned()
    } else {
        list(&report.capabilities).join(", ")
    };
    println!("capabilities  {caps}");
    println!("exports       {}", list(&report.exports).join(", "));
    println!("imports");
    for import in list(&report.imports) {
        println!("  {import}");
    }
    println!("producers");
    for p in &report.producers {
        println!(
            "  {:<14}{} {}",
            shown(&p.field),
            shown(&p.name),
            shown(&p.version)
        );
    }
    print_schema(&report, &shown);
    Exit::Ok
}

/// The config keys the component declares (`vigil:config-schema`), one a
/// line: key, kind, required or its default, doc.
fn print_schema(report: &inspect::Report, shown: &dyn Fn(&str) -> String) {
    if let Some(err) = &report.config_schema_error {
        println!("config        unreadable schema: {}", shown(err));
        return;
    }
    let Some(schema) = &report.config_schema else {
        println!("config        no schema (keys are not checked by `vigil validate`)");
        return;
    };
    if schema.keys.is_empty() {
        println!("config        none (takes no keys)");
        return;
    }
    println!("config");
    for key in &schema.keys {
        let need = match (&key.default, key.required) {
            (Some(default), _) => format!("default {}", shown(&format!("{default:?}"))),
            (None, true) => "required".to_owned(),
            (None, false) => "optional".to_owned(),
        };
        let line = format!(
            "  {:<18} {:<9} {:<18} {}",
            shown(&key.shown()),
            key.kind.as_str(),
            need,
            shown(&key.doc)
        );
        println!("{}", line.trim_end());
    }
}
