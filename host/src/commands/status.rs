//! `vigil status [NAME] [--json]`: the services of a running vigil.

use std::io::IsTerminal;

use crate::cli::StatusArgs;
use crate::commands::Exit;
use crate::commands::control::{client, fail};
use crate::control::api::ServiceStatus;
use crate::untrusted;

pub async fn run(args: StatusArgs) -> Exit {
    let client = client(&args.control);
    let services = match &args.name {
        Some(name) => match client.service_status(name).await {
            Ok(s) => {
                if args.json {
                    return print_json(&s);
                }
                vec![s]
            }
            Err(e) => return fail("status", &e),
        },
        None => match client.status().await {
            Ok(report) => {
                if args.json {
                    return print_json(&report);
                }
                report.services
            }
            Err(e) => return fail("status", &e),
        },
    };
    let colour = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    print!("{}", table(&services, colour));
    Exit::Ok
}

fn print_json<T: serde::Serialize>(value: &T) -> Exit {
    match serde_json::to_string_pretty(value) {
        Ok(text) => {
            println!("{text}");
            Exit::Ok
        }
        Err(e) => {
            eprintln!("vigil status: cannot encode JSON: {e}");
            Exit::Failed
        }
    }
}

const HEADER: [&str; 7] = [
    "SERVICE",
    "STATE",
    "PID",
    "UPTIME",
    "RESTARTS",
    "LAST CHECK",
    "LATENCY",
];

/// The aligned table; states coloured when `colour`.
pub fn table(services: &[ServiceStatus], colour: bool) -> String {
    let rows: Vec<[String; 7]> = services.iter().map(row).collect();
    let mut widths = HEADER.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[String; 7], out: &mut String, paint: Option<&str>| {
        let mut parts = Vec::new();
        for (i, cell) in cells.iter().enumerate() {
            let padded = if i == 6 {
                cell.clone()
            } else {
                format!("{cell:<w$}", w = widths[i])
            };
            match (i, paint) {
                (1, Some(code)) => parts.push(format!("\x1b[{code}m{padded}\x1b[0m")),
                _ => parts.push(padded),
            }
        }
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(&HEADER.map(String::from), &mut out, None);
    for (r, s) in rows.iter().zip(services) {
        line(r, &mut out, colour.then(|| state_colour(&s.state)));
    }
    out
}

fn state_colour(state: &str) -> &'static str {
    match state {
        "ready" => "32",                                         // green
        "running" | "starting" | "waiting" | "stopping" => "33", // yellow
        "backoff" | "failed" => "31",                            // red
        _ => "2",                                                // dim
    }
}

/// One service's cells. Reasons (the check's) and the `STATUS=` text (the
/// service's) are escaped ([`untrusted`]) before they are shortened, so
/// what is cut is the visible form; so are the names, for good measure.
fn row(s: &ServiceStatus) -> [String; 7] {
    let check = match (&s.last_phase, &s.last_outcome, &s.last_reason) {
        (_, None, _) => "-".to_string(),
        (phase, Some(outcome), reason) => {
            let mut text = match phase {
                Some(p) => format!("{p} {outcome}"),
                None => outcome.clone(),
            };
            if let Some(r) = reason {
                text.push_str(": ");
                text.push_str(&shorten(r, 60));
            }
            text
        }
    };
    let state = match &s.status_text {
        Some(t) if !t.is_empty() => format!("{} ({})", s.state, shorten(t, 30)),
        _ => s.state.clone(),
    };
    [
        untrusted::line(&s.name).into_owned(),
        state,
        s.pid.map_or("-".into(), |p| p.to_string()),
        s.uptime_secs.map_or("-".into(), uptime),
        s.restarts.to_string(),
        check,
        s.check_latency_ms.map_or("-".into(), latency),
    ]
}

/// `text` escaped and cut to `max` characters.
fn shorten(text: &str, max: usize) -> String {
    let text = untrusted::line(text);
    if text.chars().count() <= max {
        return text.into_owned();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

/// `12s`, `3m04s`, `2h03m`, `3d04h`.
pub fn uptime(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn latency(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1}ms")
    } else if ms < 10_000.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{:.1}s", ms / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str, state: &str) -> ServiceStatus {
        ServiceStatus {
            name: name.into(),
            state: state.into(),
            pid: Some(42),
            uptime_secs: Some(184.0),
            restarts: 1,
            ready: state == "ready",
            startup_passed: true,
            last_outcome: Some("retry".into()),
            last_reason: Some("connection refused".into()),
            last_phase: Some("readiness".into()),
            check_latency_ms: Some(0.42),
            status_text: None,
        }
    }

    #[test]
    fn columns_line_up_without_colour() {
        let text = table(
            &[service("web", "ready"), service("database", "running")],
            false,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let col = lines[0].find("STATE").expect("header");
        assert_eq!(lines[1].find("ready"), Some(col));
        assert_eq!(lines[2].find("running"), Some(col));
        assert!(lines[1].contains("3m04s"));
        assert!(lines[1].contains("readiness retry: connection refused"));
        assert!(lines[1].ends_with("0.4ms"));
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn colour_keeps_alignment() {
        let services = [
            service("web", "ready"),
            service("database", "running"),
            service("cache", "failed"),
        ];
        let text = table(&services, true);
        assert!(text.contains("\x1b[32mready"));
        assert!(text.contains("\x1b[33mrunning"));
        assert!(text.contains("\x1b[31mfailed"));
        // The escapes take no room on a terminal: what is seen is the plain
        // table to the character, so the padding sits inside them.
        let visible = strip_escapes(&text);
        assert_eq!(visible, table(&services, false), "{text:?}");
        // And every column starts where its header does, on every line.
        let lines: Vec<&str> = visible.lines().collect();
        for name in &HEADER[1..] {
            let col = lines[0].find(name).expect("header");
            for line in &lines[1..] {
                let bytes = line.as_bytes();
                assert!(
                    bytes[col - 1] == b' ' && bytes[col] != b' ',
                    "{name} is not at column {col} in {line:?}"
                );
            }
        }
    }

    /// `text` without its SGR escapes (`ESC [ ... m`).
    fn strip_escapes(text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find("\x1b[") {
            out.push_str(&rest[..at]);
            let after = &rest[at..];
            let end = after.find('m').expect("an escape ends in m");
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    #[test]
    fn reasons_and_status_text_are_escaped_then_shortened() {
        let mut s = service("web", "running");
        s.last_reason = Some("\x1b[1A\x1b[2K\rready\nok".into());
        s.status_text = Some(format!("\u{202e}{}", "x".repeat(40)));
        let text = table(&[s], false);
        assert!(!text.contains(['\x1b', '\r', '\u{202e}']), "{text:?}");
        assert!(
            text.contains("readiness retry: \\x1b[1A\\x1b[2K\\rready\\nok"),
            "{text:?}"
        );
        assert!(text.contains("running (\\u{202e}xxx"), "{text:?}");
        assert_eq!(text.lines().count(), 2, "{text:?}");
    }

    #[test]
    fn uptimes() {
        assert_eq!(uptime(12.7), "12s");
        assert_eq!(uptime(3_700.0), "1h01m");
        assert_eq!(uptime(90_000.0), "1d01h");
    }
}
