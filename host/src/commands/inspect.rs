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
        CheckSource::File(path) if crate::wasm::embedded::elf::is_elf(path) => {
            return super::embed::inspect_binary(path, args.json);
        }
        CheckSource::Embedded { binary, .. } => {
            return super::embed::inspect_binary(binary, args.json);
        }
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
    let version = report
        .contract_version
        .as_deref()
        .map(|v| format!("@{}", shown(v)))
        .unwrap_or_default();
    println!("world         {}{version}", shown(&report.world));
    // The contract version it was built against, and whether this vigil
    // loads it (a patch release of the contract only adds).
    if let Some(built) = report.contract_version.as_deref() {
        let verdict = if crate::wasm::contract_compatible(built) {
            "loads"
        } else {
            "does not load: rebuild it against the wit/ of this release"
        };
        println!(
            "contract      vigil:health@{} (this vigil implements {}; {verdict})",
            shown(built),
            crate::wasm::WIT_VERSION
        );
    }
    let caps = if report.capabilities.is_empty() {
        "none: it can only compute".to_owned()
    } else {
        list(&report.capabilities).join(", ")
    };
    println!("capabilities  {caps}");
    println!("exports       {}", list(&report.exports).join(", "));
    // What it imports besides its capabilities: WASI plumbing the sandbox
    // answers with nothing (no files, environment, arguments, stdin,
    // sockets or terminal; stdout and stderr into a capped buffer).
    let (wasi, other): (Vec<String>, Vec<String>) = report
        .imports
        .iter()
        .filter(|i| !report.type_imports.contains(i))
        .map(|i| shown(i))
        .filter(|i| !i.starts_with("vigil:health/"))
        .partition(|i| i.starts_with("wasi:"));
    if !wasi.is_empty() {
        println!(
            "wasi plumbing (denied or empty: stdout and stderr kept, capped; nothing else reaches the host)"
        );
        for import in wasi {
            println!("  {import}");
        }
    }
    if !other.is_empty() {
        println!("other imports");
        for import in other {
            println!("  {import}");
        }
    }
    // One line per field: `language  C11, Rust`; `processed-by` tools
    // with their versions, without the commit hashes and URLs.
    println!("producers");
    let mut fields: Vec<&str> = report.producers.iter().map(|p| p.field.as_str()).collect();
    fields.dedup();
    for field in fields {
        let values: Vec<String> = report
            .producers
            .iter()
            .filter(|p| p.field == field)
            .map(|p| {
                let version = p.version.split_whitespace().next().unwrap_or_default();
                shown(format!("{} {version}", p.name).trim())
            })
            .collect();
        println!("  {:<14}{}", shown(field), values.join(", "));
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
