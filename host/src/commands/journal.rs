//! `vigil journal [NAME] [-n N] [-f] [--since T] [--kind K,...] [--json]`.
//!
//! With a vigil running, its control socket answers (the filters are
//! applied by the server, so `-n 10 --kind exited` is the last ten exits,
//! and a follow streams without polling). With none running (after a
//! crash is when the journal matters most), the journal files in the state
//! directory are read directly, rotated ones included, and `-f` follows
//! them across rotations ([`super::tail`]) until interrupted.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::SystemTime;

use crate::app::default_state_dir;
use crate::cli::JournalArgs;
use crate::commands::Exit;
use crate::commands::control::{client, fail};
use crate::control::ControlError;
use crate::control::api::{DEFAULT_JOURNAL_LINES, JournalQuery};
use crate::journal::{self, Line};
use crate::tail::{self, Rotated};
use crate::untrusted;

pub async fn run(args: JournalArgs) -> Exit {
    let query = match query(&args, SystemTime::now()) {
        Ok(q) => q,
        Err(problem) => {
            eprintln!("vigil journal: {}", untrusted::line(&problem));
            return Exit::Usage;
        }
    };
    let mut stream = match client(&args.control).journal(&query).await {
        Ok(s) => s,
        Err(ControlError::NotRunning { socket }) => {
            let dir = args
                .control
                .state_dir
                .clone()
                .unwrap_or_else(default_state_dir);
            return offline(&dir, &socket, &query, args.json).await;
        }
        Err(e) => return fail("journal", &e),
    };
    let mut out = std::io::stdout().lock();
    while let Some(line) = stream.next().await {
        match line {
            Ok(line) => {
                if !print(&mut out, &line, args.json) {
                    return Exit::Ok;
                }
            }
            Err(e) => {
                eprintln!("vigil journal: {e}");
                return Exit::Failed;
            }
        }
    }
    Exit::Ok
}

/// The query `args` ask for, `--since` resolved against `now`.
pub fn query(args: &JournalArgs, now: SystemTime) -> Result<JournalQuery, String> {
    let since = args
        .since
        .as_deref()
        .map(|t| since(t, now))
        .transpose()?
        .map(journal::timestamp);
    let mut kinds = Vec::new();
    for kind in &args.kind {
        let kind = kind.trim();
        check_kind(kind)?;
        kinds.push(kind.to_string());
    }
    // With --since, every line since then unless -n says otherwise.
    let lines = args.lines.unwrap_or(if since.is_some() {
        usize::MAX
    } else {
        DEFAULT_JOURNAL_LINES
    });
    Ok(JournalQuery {
        service: args.name.clone(),
        follow: args.follow,
        lines: Some(lines),
        since,
        kind: (!kinds.is_empty()).then(|| kinds.join(",")),
    })
}

/// `--since`: a point in time (RFC 3339, or a date) or a duration ago
/// (the units grammar of manifests: `10m`, `1h30m`).
pub fn since(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    if let Some(t) = journal::parse_timestamp(text) {
        return Ok(t);
    }
    match crate::units::parse_duration(text) {
        Ok(ago) => Ok(now.checked_sub(ago).unwrap_or(SystemTime::UNIX_EPOCH)),
        Err(_) => Err(format!(
            "--since `{text}` is neither an RFC 3339 time (2026-12-06T22:00:00Z, 2026-12-06) nor a duration ago (10m, 1h30m)"
        )),
    }
}

/// Refuse a kind no event has, naming the ones there are. The list comes
/// from the journal's own event type (serde names them all when a tag is
/// unknown), so it cannot fall behind a new kind of event.
fn check_kind(kind: &str) -> Result<(), String> {
    let probe = serde_json::json!({ "kind": kind });
    match serde_json::from_value::<journal::Event>(probe) {
        Err(e) if e.to_string().starts_with("unknown variant") => {
            let known = e
                .to_string()
                .split_once("expected one of ")
                .map(|(_, list)| list.replace('`', ""))
                .unwrap_or_default();
            Err(format!("--kind: no event kind `{kind}`; kinds: {known}"))
        }
        // Known (a missing field is all that is wrong with the probe).
        _ => Ok(()),
    }
}

/// Read the journal files of `dir`; with `follow`, keep reading them.
async fn offline(dir: &Path, socket: &Path, query: &JournalQuery, json: bool) -> Exit {
    let files = Rotated::new(dir.join(journal::FILE), dir.to_path_buf(), journal::rotated);
    if files.is_empty() {
        eprintln!(
            "vigil journal: no vigil is running (no control socket at {}) and there is no journal in {}; point at another with --state-dir",
            socket.display(),
            dir.display()
        );
        return Exit::NotRunning;
    }
    if std::io::stderr().is_terminal() {
        eprintln!(
            "vigil journal: no vigil is running; reading {}",
            files.current().display()
        );
    }
    let (text, mut follower) = files.read_and_follow();
    let all: Vec<Line> = text.iter().filter_map(|l| parse(l)).collect();
    let skipped = text.iter().filter(|l| !l.trim().is_empty()).count() - all.len();
    if skipped > 0 {
        eprintln!(
            "vigil journal: skipped {skipped} lines that are not journal lines (torn, corrupt, or of an unknown kind)"
        );
    }
    // A replicated service's name (`web`) has its replicas' lines.
    let named = JournalQuery {
        service: query.service.clone(),
        ..JournalQuery::default()
    };
    if let Some(name) = &query.service
        && !all.iter().any(|l| named.matches(l))
    {
        let problem = format!(
            "no service named `{name}` in the journal of {}",
            dir.display()
        );
        eprintln!("vigil journal: {}", untrusted::line(&problem));
        return Exit::UnknownService;
    }
    let wanted: Vec<Line> = all.into_iter().filter(|l| query.matches(l)).collect();
    let n = query.lines.unwrap_or(DEFAULT_JOURNAL_LINES);
    let mut out = std::io::stdout().lock();
    for line in tail::last(wanted, n) {
        if !print(&mut out, &line, json) {
            return Exit::Ok;
        }
    }
    if !query.follow {
        return Exit::Ok;
    }
    drop(out);
    loop {
        tokio::time::sleep(tail::POLL).await;
        let mut out = std::io::stdout().lock();
        for line in follower.poll().iter().filter_map(|l| parse(l)) {
            if query.matches(&line) && !print(&mut out, &line, json) {
                return Exit::Ok;
            }
        }
    }
}

/// One journal line; a corrupt one (a torn tail) is skipped.
fn parse(text: &str) -> Option<Line> {
    serde_json::from_str(text).ok()
}

/// Print one line; false once stdout is closed (`| head` ends quietly).
fn print(out: &mut impl Write, line: &Line, json: bool) -> bool {
    let text = if json {
        serde_json::to_string(line).unwrap_or_default()
    } else {
        format_line(line)
    };
    writeln!(out, "{text}").and_then(|()| out.flush()).is_ok()
}

/// `TIME SERVICE KIND key=value ...`, one line, escaped for a terminal
/// ([`untrusted`]: the fields carry what checks and services said);
/// `--json` prints the exact line instead.
pub fn format_line(line: &Line) -> String {
    let fields = line.event.fields_text();
    let service = untrusted::line(line.service.as_deref().unwrap_or("vigil"));
    let ts = untrusted::line(&line.ts);
    format!("{ts} {service} {} {fields}", line.event.kind())
        .trim_end()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn since_takes_times_and_durations_ago() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(since("10m", now), Ok(now - Duration::from_secs(600)));
        assert_eq!(
            since("2023-11-14T22:13:20Z", now),
            Ok(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        let err = since("yesterday", now).expect_err("not a time");
        assert!(err.contains("RFC 3339"), "{err}");
    }

    #[test]
    fn unknown_kinds_are_refused_with_the_list() {
        assert_eq!(check_kind("exited"), Ok(()));
        assert_eq!(check_kind("ready"), Ok(()));
        let err = check_kind("exit").expect_err("no such kind");
        assert!(err.contains("`exit`"), "{err}");
        assert!(err.contains("exited"), "{err}");
        assert!(err.contains("spawn-error"), "{err}");
    }
}
