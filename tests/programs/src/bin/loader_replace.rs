//! A loader of world `replace-loader` (new in `vigil:health@0.1.2`), with
//! wit-bindgen directly (the SDK's `#[loader]` covers the `loader` world
//! only). `spawn` runs config `argv` split on spaces; `decide` restarts an
//! exited child after 7 ms. `decide-replace` answers from its config:
//! `on-request` (`proceed`, `restart` or `refuse`) for a replace asked
//! for, `on-ready` (the same) for a new child that passed its gate, and
//! `proceed` for a failed replace. Each answer is logged, so the journal
//! shows what it was asked.

// The generated bindings are not ours to lint (the SDK allows the same).
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({
    world: "replace-loader",
    path: "../../wit",
});

use exports::vigil::health::replace_policy::{
    Guest as ReplacePolicy, ReplaceDecision, ReplaceEvent,
};
use vigil::health::log;

struct Policy;

fn setting<'a>(config: &'a [(String, String)], key: &str) -> Option<&'a str> {
    config
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn answer(config: &[(String, String)], key: &str, why: &str) -> ReplaceDecision {
    match setting(config, key) {
        Some("restart") => ReplaceDecision::Restart,
        Some("refuse") => ReplaceDecision::Refuse(format!("the loader refuses: {why}")),
        _ => ReplaceDecision::Proceed,
    }
}

impl Guest for Policy {
    fn spawn(ctx: SpawnContext) -> Result<Command, String> {
        let argv: Vec<String> = setting(&ctx.config, "argv")
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if argv.is_empty() {
            return Err("config key `argv` is required".into());
        }
        Ok(Command {
            argv,
            env: Vec::new(),
            cwd: None,
        })
    }

    fn decide(event: Event, _history: History) -> Action {
        match event {
            Event::Exited(_) => Action::Restart(7),
            _ => Action::None,
        }
    }
}

impl ReplacePolicy for Policy {
    fn decide_replace(event: ReplaceEvent, history: History) -> ReplaceDecision {
        let (asked, decision) = match &event {
            ReplaceEvent::Requested(r) => (
                format!("requested while pid {} serves ({})", r.pid, r.cause),
                answer(&history.config, "on-request", "no replace now"),
            ),
            ReplaceEvent::NewReady(c) => (
                format!("new-ready: old pid {}, new pid {}", c.old_pid, c.new_pid),
                answer(&history.config, "on-ready", "the old child stays"),
            ),
            ReplaceEvent::Failed(f) => (format!("failed: {}", f.reason), ReplaceDecision::Proceed),
        };
        log::log(
            log::Level::Info,
            &format!("decide-replace {asked}: {decision:?}"),
        );
        decision
    }
}

export!(Policy);

fn main() {}
