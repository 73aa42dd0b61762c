//! `vigil logs NAME [-n N] [-f] [--since T] [--stderr]`: a service's
//! captured output, from its log files (`<state>/logs/NAME.log` and the
//! rotated `NAME.1.log`), whether a vigil runs or not; `-f` follows them
//! across rotations ([`super::tail`]) until interrupted.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::app::default_state_dir;
use crate::cli::LogsArgs;
use crate::commands::Exit;
use crate::commands::control::client;
use crate::supervisor::logs::{LogLine, Stream};
use crate::tail::{self, Rotated};
use crate::untrusted;

/// Past lines printed when neither `-n` nor `--since` says.
const DEFAULT_LINES: usize = 50;

pub async fn run(args: LogsArgs) -> Exit {
    let since = match args
        .since
        .as_deref()
        .map(|t| super::journal::since(t, SystemTime::now()))
    {
        None => None,
        Some(Ok(t)) => Some(crate::journal::timestamp(t)),
        Some(Err(problem)) => {
            eprintln!("vigil logs: {}", untrusted::line(&problem));
            return Exit::Usage;
        }
    };
    let dir = state_dir(&args).await.join("logs");
    // One service's files, else those of every replica of `web`.
    let sources: Vec<(Option<String>, Rotated)> = match files(&dir, &args.name) {
        Some(files) => vec![(None, files)],
        None => replica_files(&dir, &args.name)
            .into_iter()
            .map(|(name, files)| (Some(name), files))
            .collect(),
    };
    if sources.is_empty() {
        eprintln!(
            "vigil logs: {}",
            untrusted::line(&unknown(&dir, &args.name))
        );
        return Exit::UnknownService;
    }
    let filter = Filter {
        since,
        stderr_only: args.stderr,
    };
    let n = args.lines.unwrap_or(if filter.since.is_some() {
        usize::MAX
    } else {
        DEFAULT_LINES
    });
    // Each source: its label, its follower, and whether `--since` has
    // been passed in it.
    let mut followers = Vec::new();
    let mut wanted: Vec<(Option<String>, String)> = Vec::new();
    for (label, files) in sources {
        let (lines, follower) = files.read_and_follow();
        let mut passed = false;
        let mine: Vec<(Option<String>, String)> = lines
            .into_iter()
            .filter(|l| filter.wants(l, &mut passed))
            .map(|l| (label.clone(), l))
            .collect();
        wanted = merge(wanted, mine);
        followers.push((label, follower, passed));
    }
    let mut out = std::io::stdout().lock();
    for (label, line) in tail::last(wanted, n) {
        if !print(&mut out, label.as_deref(), &line) {
            return Exit::Ok;
        }
    }
    if !args.follow {
        return Exit::Ok;
    }
    drop(out);
    loop {
        tokio::time::sleep(tail::POLL).await;
        let mut out = std::io::stdout().lock();
        for (label, follower, passed) in &mut followers {
            for line in follower.poll() {
                if filter.wants(&line, passed) && !print(&mut out, label.as_deref(), &line) {
                    return Exit::Ok;
                }
            }
        }
    }
}

/// The log files of each replica of the replicated service `group`
/// (`web@0.log`, `web@1.log`, ...; a replica a scale retired keeps its
/// file), by index; none when `group` has no replica with logs.
fn replica_files(dir: &Path, group: &str) -> Vec<(String, Rotated)> {
    let mut found: Vec<(u32, String)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter_map(|f| {
                    let name = f.strip_suffix(".log")?;
                    let (parent, index) = crate::config::replicas::split_name(name)?;
                    (parent == group).then(|| (index, name.to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
        .into_iter()
        .filter_map(|(_, name)| files(dir, &name).map(|f| (name, f)))
        .collect()
}

/// Two sources' lines in one stream, by time: each keeps its own order,
/// and a line without a time goes with the timed line before it in its
/// own source. Sources without times keep their order, `a` first.
fn merge<L: Clone>(a: Vec<(L, String)>, b: Vec<(L, String)>) -> Vec<(L, String)> {
    fn keyed<L>(lines: Vec<(L, String)>) -> Vec<(String, (L, String))> {
        let mut last = String::new();
        lines
            .into_iter()
            .map(|(label, line)| {
                if let Some(ts) = LogLine::parse(&line).ts {
                    last = ts.into_owned();
                }
                (last.clone(), (label, line))
            })
            .collect()
    }
    let (a, b) = (keyed(a), keyed(b));
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (Some((ta, _)), Some((tb, _))) => ta <= tb,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_a { a.next() } else { b.next() };
        out.extend(next.map(|(_, line)| line));
    }
    out
}

/// `--state-dir`, else the state directory of the vigil behind
/// `--socket` (it says in its status), else the default one.
async fn state_dir(args: &LogsArgs) -> PathBuf {
    if let Some(dir) = &args.control.state_dir {
        return dir.clone();
    }
    if args.control.socket.is_some()
        && let Ok(report) = client(&args.control).status().await
    {
        return report.state_dir;
    }
    default_state_dir()
}

pub use crate::supervisor::logs::files;

/// The last `n` stderr lines of service `name` (its text only), oldest
/// first: what `vigil status` and `vigil run --daemon` show of a failed
/// service.
pub fn last_stderr(dir: &Path, name: &str, n: usize) -> Vec<String> {
    let Some(files) = files(dir, name) else {
        return Vec::new();
    };
    let lines: Vec<String> = files
        .read_all()
        .iter()
        .map(|l| LogLine::parse(l))
        .filter(|l| l.stream == Some(Stream::Stderr))
        .map(|l| l.text.to_string())
        .collect();
    tail::last(lines, n)
}

/// "no logs for `x` in DIR; services with logs: a, b".
fn unknown(dir: &Path, name: &str) -> String {
    let mut known: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter_map(|f| f.strip_suffix(".log").map(str::to_string))
                // web.1.log is web's.
                .filter(|f| {
                    f.rsplit_once('.')
                        .is_none_or(|(_, n)| n.parse::<usize>().is_err())
                })
                // web@1 is also web's: both names are known.
                .flat_map(|f| {
                    let group = crate::config::replicas::split_name(&f).map(|(g, _)| g.to_string());
                    std::iter::once(f).chain(group)
                })
                .collect()
        })
        .unwrap_or_default();
    known.sort();
    known.dedup();
    let list = if known.is_empty() {
        "no service has logged anything there".to_string()
    } else {
        format!("services with logs: {}", known.join(", "))
    };
    format!("no logs for `{name}` in {}; {list}", dir.display())
}

/// Which lines to print.
struct Filter {
    /// Canonical RFC 3339 (compares as text).
    since: Option<String>,
    stderr_only: bool,
}

impl Filter {
    /// `passed`: a line at or after `since` was seen; lines without a
    /// time (`--no-timestamps`, older files) go with the lines before them.
    fn wants(&self, line: &str, passed: &mut bool) -> bool {
        let line = LogLine::parse(line);
        match (&self.since, &line.ts) {
            (None, _) => *passed = true,
            (Some(since), Some(ts)) => *passed = ts.as_ref() >= since.as_str(),
            (Some(_), None) => {}
        }
        *passed && (!self.stderr_only || line.stream == Some(Stream::Stderr))
    }
}

/// Print one line of a log file (text or JSON format, shown as text),
/// its text escaped ([`untrusted`]: it is whatever the service wrote),
/// after `label | ` when it is one replica's of several; false once
/// stdout is closed.
fn print(out: &mut impl Write, label: Option<&str>, line: &str) -> bool {
    let parsed = LogLine::parse(line);
    let text = untrusted::line(&parsed.text);
    let tag = |s: Stream| format!("{}{}", s.as_str(), if parsed.partial { "+" } else { "" });
    let shown = match (&parsed.ts, parsed.stream) {
        (Some(ts), Some(stream)) => format!("{} {} {text}", untrusted::line(ts), tag(stream)),
        (None, Some(stream)) => format!("{} {text}", tag(stream)),
        _ => text.into_owned(),
    };
    let shown = match label {
        Some(label) => format!("{} | {shown}", untrusted::line(label)),
        None => shown,
    };
    writeln!(out, "{}", shown.trim_end())
        .and_then(|()| out.flush())
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_and_stderr_filters() {
        let lines = [
            "2030-01-01T00:00:00.000Z stdout early",
            "2030-01-01T00:00:02.000Z stderr late",
            "stdout untimed, after a late line",
            "2030-01-01T00:00:03.000Z stdout later",
        ];
        let filter = Filter {
            since: Some("2030-01-01T00:00:01.000Z".into()),
            stderr_only: false,
        };
        let mut passed = false;
        let kept: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| filter.wants(l, &mut passed))
            .collect();
        assert_eq!(kept, &lines[1..]);
        let filter = Filter {
            since: None,
            stderr_only: true,
        };
        let mut passed = false;
        let kept: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| filter.wants(l, &mut passed))
            .collect();
        assert_eq!(kept, [lines[1]]);
    }

    #[test]
    fn replicas_lines_merge_by_time_each_in_its_own_order() {
        let l = |label: &str, line: &str| (label.to_string(), line.to_string());
        let a = vec![
            l("web@0", "2030-01-01T00:00:01.000Z stdout a1"),
            l("web@0", "stdout a1 untimed"),
            l("web@0", "2030-01-01T00:00:03.000Z stdout a3"),
        ];
        let b = vec![
            l("web@1", "2030-01-01T00:00:00.000Z stdout b0"),
            l("web@1", "2030-01-01T00:00:02.000Z stdout b2"),
            l("web@1", "2030-01-01T00:00:03.000Z stdout b3"),
        ];
        let merged: Vec<String> = merge(a, b)
            .into_iter()
            .map(|(label, line)| format!("{label} {}", line.rsplit(' ').next().unwrap_or("")))
            .collect();
        assert_eq!(
            merged,
            [
                "web@1 b0",
                "web@0 a1",
                "web@0 untimed",
                "web@1 b2",
                "web@0 a3",
                "web@1 b3"
            ]
        );
        let mut out = Vec::new();
        assert!(print(
            &mut out,
            Some("web@1"),
            "2030-01-01T00:00:00.000Z stdout hi"
        ));
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "web@1 | 2030-01-01T00:00:00.000Z stdout hi\n"
        );
    }

    #[test]
    fn printed_text_is_escaped_without_trailing_spaces() {
        let mut out = Vec::new();
        assert!(print(
            &mut out,
            None,
            "2030-01-01T00:00:00.000Z stderr \u{1b}[2Jgone  "
        ));
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "2030-01-01T00:00:00.000Z stderr \\x1b[2Jgone\n"
        );
    }
}
