//! `vigil validate DIR|DIR/SERVICE`: every problem of a checks directory
//! (or of one service), at once, including what only reading its
//! components can tell (see `config::validate`).

use super::Exit;
use crate::cli::ValidateArgs;
use crate::config::{Problem, validate};
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
    Exit::Ok
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
