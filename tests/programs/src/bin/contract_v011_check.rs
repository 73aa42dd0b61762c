//! A check built against the frozen `vigil:health@0.1.1` contract
//! (`wit-0.1.1/`, never edited), with wit-bindgen directly: never the SDK,
//! whose bindings would pull every import up to the current contract.
//! Proof that a component from before 0.1.2 still loads and runs.
//! It calls two 0.1.0 capabilities, `process.target-pid` and `log`, and
//! one that 0.1.1 added, `output.recent` (denied without the grant: the
//! answer is logged); config `answer` = `ok` (the default), `retry` or
//! anything else (an error) picks the verdict.

// The generated bindings are not ours to lint (the SDK allows the same).
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({
    world: "checker",
    path: "../../wit-0.1.1",
});

use vigil::health::{log, output, process};

struct Check;

impl Guest for Check {
    fn check(target: Target) -> Outcome {
        let pid = match process::target_pid() {
            Ok(pid) => pid.to_string(),
            Err(code) => format!("{code:?}"),
        };
        let recent = output::recent(output::Query {
            since_ms: None,
            channel: None,
            max_lines: 1,
            max_bytes: 100,
        });
        let recent = match recent {
            Ok(lines) => format!("{} lines", lines.lines.len()),
            Err(code) => format!("{code:?}"),
        };
        log::log(
            log::Level::Info,
            &format!(
                "0.1.1 check for {}: target pid {pid}, output {recent}",
                target.service
            ),
        );
        let answer = target
            .config
            .iter()
            .rev()
            .find(|(key, _)| key == "answer")
            .map_or("ok", |(_, value)| value.as_str());
        match answer {
            "ok" => Outcome::Ok,
            "retry" => Outcome::Retry("0.1.1 says retry".into()),
            other => Outcome::Error(format!("0.1.1 says {other}")),
        }
    }
}

export!(Check);

fn main() {}
