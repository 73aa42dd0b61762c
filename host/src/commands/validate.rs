//! `vigil validate DIR|DIR/SERVICE`: every problem of a checks directory
//! (or of one service), at once, including what only reading its
//! components can tell (see `config::validate`).

use super::Exit;
use crate::cli::ValidateArgs;
use crate::config::{Problem, ReplicaGroup, validate};
use crate::wasm::{Engine, EngineOptions};

pub async fn run(args: ValidateArgs) -> Exit {
    let engine = match Engine::new(EngineOptions {
        max_instances: 4,
        ..EngineOptions::default()
    }) {
        Ok(engine) => engine,
        Err(err) => {
            eprintln!("vigil validate: {err}");
            return Exit::Usage;
        }
    };
    let found = validate(&args.checks, &engine).await;
    let shown = args.checks.display();
    // Problems quote directory names and component messages, which may
    // hold anything: escaped.
    let mut text = String::new();
    for note in &found.notes {
        text.push_str(&format!("note: {note}\n"));
    }
    list(&mut text, &format!("{shown}: "), "warning", &found.warnings);
    list(&mut text, &format!("{shown}: "), "problem", &found.problems);
    eprint!("{}", crate::untrusted::block(&text));
    if !found.problems.is_empty() {
        return Exit::Failed;
    }
    let n = found.services.len();
    println!(
        "{shown}: {n} service{} ok: {}",
        if n == 1 { "" } else { "s" },
        found.services.join(", ")
    );
    print!("{}", crate::untrusted::block(&replicas(&found.replicas)));
    Exit::Ok
}

/// Replicas shown whole; past that, the first few and the last.
const SHOWN_REPLICAS: usize = 8;

/// Each replicated service: its count, then per replica what `{instance}`
/// became (`web@1: sockets.http.listen = 127.0.0.1:8001`), so that a
/// pattern is seen expanded before anything binds.
fn replicas(groups: &[ReplicaGroup]) -> String {
    let mut out = String::new();
    for g in groups {
        out.push_str(&format!(
            "{}: instances = {}: {}\n",
            g.name,
            g.instances,
            match g.replicas.as_slice() {
                [one] => one.0.clone(),
                [first, .., last] => format!("{} .. {}", first.0, last.0),
                [] => String::new(),
            }
        ));
        let n = g.replicas.len();
        for (i, (name, values)) in g.replicas.iter().enumerate() {
            if n > SHOWN_REPLICAS && i == SHOWN_REPLICAS - 1 {
                out.push_str(&format!("  ... {} more\n", n - SHOWN_REPLICAS));
            }
            if n > SHOWN_REPLICAS && i >= SHOWN_REPLICAS - 1 && i + 1 < n {
                continue;
            }
            let shown: Vec<String> = values.iter().map(|(f, v)| format!("{f} = {v}")).collect();
            let shown = if shown.is_empty() {
                "no {instance} in its manifest (VIGIL_INSTANCE only)".to_string()
            } else {
                shown.join(", ")
            };
            out.push_str(&format!("  {name}: {shown}\n"));
        }
    }
    out
}

/// `N problems:` then one indented line each; nothing when there are none.
fn list(text: &mut String, head: &str, what: &str, items: &[Problem]) {
    if items.is_empty() {
        return;
    }
    let n = items.len();
    text.push_str(&format!(
        "{head}{n} {what}{}:\n",
        if n == 1 { "" } else { "s" }
    ));
    for p in items {
        text.push_str(&format!("  {p}\n"));
    }
}
