//! `vigil status [NAME] [--json] [--wide]`: the services of a running vigil.
//!
//! Exit code: 0 when every service (or NAME) is ready, stopped by an
//! operator, or a one-shot that finished cleanly; [`Exit::Degraded`] (6)
//! otherwise, whatever the output form. Each service's last exit comes
//! from the journal; a failing one (failed, restarting, or exited with an
//! error) also gets the last lines of its stderr and its log path, from
//! its log files.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::cli::StatusArgs;
use crate::commands::Exit;
use crate::commands::control::{client, fail};
use crate::control::api::ServiceStatus;
use crate::journal::{self, Event, Line};
use crate::tail::Rotated;
use crate::untrusted;

/// Stderr lines shown for a failing service.
const STDERR_LINES: usize = 5;

pub async fn run(args: StatusArgs) -> Exit {
    let client = client(&args.control);
    let report = match client.status().await {
        Ok(report) => report,
        Err(e) => return fail("status", &e),
    };
    let state_dir = report.state_dir.clone();
    let services = match &args.name {
        Some(name) => {
            let found = members(&report.services, name);
            if found.is_empty() {
                // Its answer names the services there are.
                match client.statuses(name).await {
                    Ok(s) => s,
                    Err(e) => return fail("status", &e),
                }
            } else {
                found
            }
        }
        None => report.services.clone(),
    };
    // `web` of `web@0..N`: the replicas, and a line about all of them.
    let group = args
        .name
        .as_ref()
        .filter(|name| services.iter().any(|s| &s.name != *name));
    let exits = last_exits(&state_dir);
    let code = if services.iter().all(|s| settled(s, exits.get(&s.name))) {
        Exit::Ok
    } else {
        Exit::Degraded
    };
    if args.json {
        let printed = match (&args.name, group) {
            (Some(_), Some(_)) => print_json(&services),
            (Some(_), None) => print_json(&services[0]),
            (None, _) => print_json(&report),
        };
        return if printed == Exit::Ok { code } else { printed };
    }
    let terminal = std::io::stdout().is_terminal();
    let colour = terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let view = View {
        colour,
        // A pipe gets every reason whole; a terminal a line each, unless --wide.
        shorten: terminal && !args.wide,
        wide: args.wide,
        now: SystemTime::now(),
    };
    print!("{}", table(&services, &exits, &view));
    if let Some(group) = group {
        println!("{}", group_summary(group, &services));
    }
    // On a terminal, --wide adds each service's latency trend.
    if terminal
        && args.wide
        && let Ok(history) = client.checks(args.name.as_deref()).await
    {
        print!("{}", sparklines(&services, &history));
    }
    if args.wide {
        print!("{}", socket_lines(&services));
    }
    // One service asked for by name (or --wide): a job's schedule, next
    // due time and last run in full.
    if args.name.is_some() || args.wide {
        print!("{}", job_lines(&services));
    }
    let logs = state_dir.join("logs");
    for s in services.iter().filter(|s| failing(s, exits.get(&s.name))) {
        print!("{}", details(s, exits.get(&s.name), &logs, &view));
    }
    code
}

/// The service `name`, or every replica of the replicated service `name`
/// (`web` of `web@0..N`), by index.
fn members(services: &[ServiceStatus], name: &str) -> Vec<ServiceStatus> {
    let mut found: Vec<(u32, ServiceStatus)> = services
        .iter()
        .filter_map(|s| {
            if s.name == name {
                return Some((0, s.clone()));
            }
            let (group, index) = crate::config::replicas::split_name(&s.name)?;
            (group == name).then(|| (index, s.clone()))
        })
        .collect();
    found.sort_by_key(|(index, _)| *index);
    found.into_iter().map(|(_, s)| s).collect()
}

/// `web: 3 replicas: 2 ready, 1 backoff`.
fn group_summary(name: &str, replicas: &[ServiceStatus]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for s in replicas {
        match counts.iter_mut().find(|(state, _)| *state == s.state) {
            Some((_, n)) => *n += 1,
            None => counts.push((&s.state, 1)),
        }
    }
    // Ready first, then as they come (by index).
    counts.sort_by_key(|(state, _)| *state != "ready");
    let counts: Vec<String> = counts
        .iter()
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
    let n = replicas.len();
    format!(
        "{}: {n} replica{}: {}",
        untrusted::line(name),
        if n == 1 { "" } else { "s" },
        counts.join(", ")
    )
}

/// `--wide`: each service's held sockets, `web  http fd 3 127.0.0.1:8080`,
/// and whether an on-demand service still waits for its first connection.
fn socket_lines(services: &[ServiceStatus]) -> String {
    let mut out = String::new();
    for s in services.iter().filter(|s| !s.sockets.is_empty()) {
        let name = untrusted::line(&s.name);
        for sock in &s.sockets {
            out.push_str(&format!(
                "socket {name} {} fd {} {}\n",
                untrusted::line(&sock.name),
                sock.fd,
                untrusted::line(&sock.listen)
            ));
        }
        if let Some(new) = s.replacing_pid {
            out.push_str(&format!(
                "socket {name}: replacing pid {:?} with pid {new}\n",
                s.pid
            ));
        }
        if let Some(old) = s.replaced_pid {
            out.push_str(&format!("socket {name}: replaced pid {old} is stopping\n"));
        }
        if s.awaiting_connection {
            out.push_str(&format!(
                "socket {name}: on-demand, waiting for a connection\n"
            ));
        }
    }
    if !out.is_empty() {
        out.insert(0, '\n');
    }
    out
}

/// Each scheduled job's schedule, next due time, last run and last
/// success, with absolute times (the table has only "next run in 42s"):
/// `tick: job "*/5 * * * * UTC", next run 2026-12-07T04:15:00.000Z (in 42s)`.
fn job_lines(services: &[ServiceStatus]) -> String {
    let mut out = String::new();
    for s in services {
        let Some(job) = &s.job else { continue };
        out.push_str(&format!(
            "{}: job \"{}\"",
            untrusted::line(&s.name),
            untrusted::line(&job.schedule)
        ));
        if let Some(at) = &job.next_run_at {
            out.push_str(&format!(", next run {}", untrusted::line(at)));
            if let Some(secs) = s.next_run_in_secs {
                out.push_str(&format!(" (in {})", uptime(secs.ceil())));
            }
        }
        out.push_str(&match &job.last_run {
            Some(run) => format!(
                "\n  last run: {}, ended {}",
                last_run(run),
                untrusted::line(&run.ended_at)
            ),
            None => "\n  last run: none yet (in this vigil)".to_string(),
        });
        if let Some(at) = &job.last_success_at {
            out.push_str(&format!("\n  last success: {}", untrusted::line(at)));
        }
        out.push('\n');
    }
    if !out.is_empty() {
        out.insert(0, '\n');
    }
    out
}

/// How a service last ended, from the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastExit {
    /// RFC 3339, as journaled.
    pub ts: String,
    pub code: Option<i32>,
    pub signal: Option<String>,
}

impl LastExit {
    /// `code 1`, `SIGKILL`.
    fn how(&self) -> String {
        match (&self.code, &self.signal) {
            (_, Some(signal)) => untrusted::line(signal).into_owned(),
            (Some(code), None) => format!("code {code}"),
            (None, None) => "exited".into(),
        }
    }

    /// `code 1, 3m04s ago`.
    fn text(&self, now: SystemTime) -> String {
        match journal::parse_timestamp(&self.ts).and_then(|t| now.duration_since(t).ok()) {
            Some(ago) => format!("{}, {} ago", self.how(), uptime(ago.as_secs_f64())),
            None => format!("{} at {}", self.how(), untrusted::line(&self.ts)),
        }
    }
}

/// The last `exited` of every service in the journal files of `state_dir`.
pub fn last_exits(state_dir: &Path) -> HashMap<String, LastExit> {
    let files = Rotated::new(
        state_dir.join(journal::FILE),
        state_dir.to_path_buf(),
        journal::rotated,
    );
    let mut exits = HashMap::new();
    for text in files.read_all() {
        // Most lines are not exits: skip them before parsing.
        if !text.contains("\"exited\"") {
            continue;
        }
        if let Ok(Line {
            ts,
            service: Some(service),
            event: Event::Exited { code, signal, .. },
        }) = serde_json::from_str::<Line>(&text)
        {
            exits.insert(service, LastExit { ts, code, signal });
        }
    }
    exits
}

/// Ready, stopped by an operator, or a one-shot that finished cleanly
/// (or a service that stopped restarting after a clean exit).
pub fn settled(s: &ServiceStatus, last: Option<&LastExit>) -> bool {
    match s.state.as_str() {
        "ready" | "stopped" => true,
        "exited" => s.finished || last.is_some_and(|e| e.code == Some(0)),
        _ => false,
    }
}

/// Failed, between restarts, or exited with an error: worth its stderr.
fn failing(s: &ServiceStatus, last: Option<&LastExit>) -> bool {
    match s.state.as_str() {
        "failed" | "backoff" => true,
        "exited" => !settled(s, last),
        _ => false,
    }
}

/// A failing service's last exit, log path and last stderr lines.
fn details(s: &ServiceStatus, last: Option<&LastExit>, logs: &Path, view: &View) -> String {
    let mut out = format!("\n{}: {}", untrusted::line(&s.name), s.state);
    if let Some(e) = last {
        out.push_str(&format!(", last exit {}", e.text(view.now)));
    }
    if let Some(reason) = &s.last_reason {
        out.push_str(&format!("\n  last check: {}", untrusted::line(reason)));
    }
    let path: PathBuf = crate::supervisor::logs::log_path(logs, &s.name);
    out.push_str(&format!("\n  log: {}\n", path.display()));
    let lines = super::logs::last_stderr(logs, &s.name, STDERR_LINES);
    if lines.is_empty() {
        out.push_str("  (nothing on stderr)\n");
    } else {
        out.push_str("  last lines of stderr:\n");
        for line in lines {
            let shown = format!("    {}", untrusted::line(&line));
            out.push_str(shown.trim_end());
            out.push('\n');
        }
    }
    out
}

/// How the table is drawn.
pub struct View {
    pub colour: bool,
    /// Cut reasons and status texts to fit a line (a terminal without --wide).
    pub shorten: bool,
    /// `--wide`: CPU and MEM columns (from the services' cgroups).
    pub wide: bool,
    /// For "3m ago".
    pub now: SystemTime,
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

const HEADER: [&str; 8] = [
    "SERVICE",
    "STATE",
    "PID",
    "UPTIME",
    "RESTARTS",
    "LAST EXIT",
    "LATENCY",
    "LAST CHECK",
];

/// The aligned table; states coloured when `view.colour`.
pub fn table(services: &[ServiceStatus], exits: &HashMap<String, LastExit>, view: &View) -> String {
    // --wide: CPU and MEM after RESTARTS.
    let usage = |cells: [String; 8], cpu: String, mem: String| {
        let mut cells = cells.to_vec();
        if view.wide {
            cells.splice(5..5, [cpu, mem]);
        }
        cells
    };
    let header = usage(HEADER.map(String::from), "CPU".into(), "MEM".into());
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|s| {
            let cpu = s.cpu_secs.map_or("-".into(), cpu_time);
            let mem = s.memory_bytes.map_or("-".into(), bytes);
            usage(row(s, exits.get(&s.name), view), cpu, mem)
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[String], out: &mut String, paint: Option<&str>| {
        let mut parts = Vec::new();
        for (i, cell) in cells.iter().enumerate() {
            let padded = if i == cells.len() - 1 {
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
    line(&header, &mut out, None);
    for (r, s) in rows.iter().zip(services) {
        line(r, &mut out, view.colour.then(|| state_colour(&s.state)));
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
fn row(s: &ServiceStatus, last: Option<&LastExit>, view: &View) -> [String; 8] {
    let cut = |text: &str, max: usize| {
        if view.shorten {
            shorten(text, max)
        } else {
            untrusted::line(text).into_owned()
        }
    };
    let check = match (&s.last_phase, &s.last_outcome, &s.last_reason) {
        (_, None, _) => "-".to_string(),
        (phase, Some(outcome), reason) => {
            let mut text = match phase {
                Some(p) => format!("{p} {outcome}"),
                None => outcome.clone(),
            };
            // How close the failing phase is to acting (`liveness 2/3`),
            // when the last check was of that phase.
            if let Some(failing) = &s.failing
                && let Some((phase, count)) = failing.split_once(' ')
                && s.last_phase.as_deref() == Some(phase)
            {
                text.push(' ');
                text.push_str(count);
            }
            if let Some(r) = reason {
                text.push_str(": ");
                text.push_str(&cut(r, 60));
            }
            text
        }
    };
    let mut state = s.state.clone();
    if !s.waiting_for.is_empty() {
        let names: Vec<String> = s
            .waiting_for
            .iter()
            .map(|n| untrusted::line(n).into_owned())
            .collect();
        state.push_str(&format!(": {}", names.join(", ")));
    }
    if let Some(secs) = s.restart_in_secs {
        state.push_str(&format!(" {}", uptime(secs.ceil())));
    }
    if let Some(secs) = s.next_run_in_secs {
        state.push_str(&format!(" (next run in {})", uptime(secs.ceil())));
    }
    if let Some(run) = s.job.as_ref().and_then(|j| j.last_run.as_ref()) {
        state.push_str(&format!(" (last run: {})", last_run(run)));
    }
    if let Some(note) = &s.note {
        state.push_str(&format!(" ({})", untrusted::line(note)));
    }
    if let Some(t) = s.status_text.as_deref().filter(|t| !t.is_empty()) {
        state.push_str(&format!(" ({})", cut(t, 30)));
    }
    [
        untrusted::line(&s.name).into_owned(),
        state,
        s.pid.map_or("-".into(), |p| p.to_string()),
        s.uptime_secs.map_or("-".into(), uptime),
        s.restarts.to_string(),
        last.map_or("-".into(), |e| e.text(view.now)),
        s.check_latency_ms.map_or("-".into(), latency),
        check,
    ]
}

/// A job's last run: `exit 0 after 1.20s`, `SIGKILL after 30.00s (schedule)`.
fn last_run(run: &crate::control::api::JobRun) -> String {
    let how = match (&run.signal, run.code) {
        (Some(signal), _) => untrusted::line(signal).into_owned(),
        (None, Some(code)) => format!("exit {code}"),
        (None, None) => "ended".to_string(),
    };
    let cause = run
        .cause
        .as_deref()
        .map(|c| format!(" ({})", untrusted::line(c)))
        .unwrap_or_default();
    format!("{how} after {}{cause}", cpu_time(run.duration_secs))
}

/// CPU time: `0.42s`, `1m03s`, ...
fn cpu_time(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.2}s")
    } else {
        uptime(secs)
    }
}

/// Memory: `812K`, `23.4M`, `1.2G` (powers of 1024).
fn bytes(n: u64) -> String {
    const K: f64 = 1024.0;
    let n = n as f64;
    if n < K * K {
        format!("{:.0}K", n / K)
    } else if n < K * K * K {
        format!("{:.1}M", n / (K * K))
    } else {
        format!("{:.1}G", n / (K * K * K))
    }
}

/// Checks drawn in a latency sparkline by `--wide`.
const SPARK_WIDTH: usize = 40;

/// One line a service with checks: its name, the latency of its last
/// checks as a sparkline, and their range.
pub fn sparklines(
    services: &[ServiceStatus],
    history: &crate::control::api::CheckHistory,
) -> String {
    let lines: Vec<(String, String)> = services
        .iter()
        .filter_map(|s| {
            let samples = history.services.get(&s.name).filter(|h| !h.is_empty())?;
            let shown = &samples[samples.len().saturating_sub(SPARK_WIDTH)..];
            let values: Vec<f64> = shown.iter().map(|c| c.latency_ms).collect();
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = values.iter().copied().fold(0.0, f64::max);
            let spark = crate::commands::top::spark::text(&values, SPARK_WIDTH);
            Some((
                untrusted::line(&s.name).into_owned(),
                format!("{spark}  {}..{}", latency(min), latency(max)),
            ))
        })
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let width = lines
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = format!("\nLATENCY (last {SPARK_WIDTH} checks)\n");
    for (name, line) in lines {
        out.push_str(&format!("{name:<width$}  {line}\n"));
    }
    out
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
            finished: false,
            failing: None,
            waiting_for: Vec::new(),
            restart_in_secs: None,
            note: None,
            next_run_in_secs: None,
            job: None,
            cgroup: None,
            cpu_secs: None,
            memory_bytes: None,
            after: Vec::new(),
            sockets: Vec::new(),
            awaiting_connection: false,
            replacing_pid: None,
            replaced_pid: None,
            replace_failed: None,
        }
    }

    /// What a service waits for and how close its failing checks are to
    /// acting are in the table: `waiting: db`, `backoff 15s`, `liveness
    /// retry 2/3`.
    #[test]
    fn waiting_backoff_and_failure_counts_are_shown() {
        let mut waiting = service("api", "waiting");
        waiting.waiting_for = vec!["db".into(), "cache".into()];
        waiting.last_outcome = None;
        let mut backoff = service("web", "backoff");
        backoff.restart_in_secs = Some(14.2);
        let mut sick = service("db", "ready");
        sick.last_phase = Some("liveness".into());
        sick.failing = Some("liveness 2/3".into());
        let text = table(&[waiting, backoff, sick], &no_exits(), &view(false, false));
        assert!(text.contains("waiting: db, cache"), "{text}");
        assert!(text.contains("backoff 15s"), "{text}");
        assert!(
            text.contains("liveness retry 2/3: connection refused"),
            "{text}"
        );
    }

    /// `vigil status NAME` of a job: its schedule, the next due time as a
    /// date, the last run's result and duration, the last success.
    #[test]
    fn a_job_shows_its_schedule_next_due_time_and_last_run() {
        use crate::control::api::{JobRun, JobStatus};
        let mut job = service("report", "exited");
        job.next_run_in_secs = Some(41.3);
        job.job = Some(JobStatus {
            schedule: "30 6 * * MON-FRI Europe/Berlin".into(),
            next_run_at: Some("2026-12-08T05:30:00.000Z".into()),
            last_run: Some(JobRun {
                code: None,
                signal: Some("SIGKILL".into()),
                cause: Some("schedule".into()),
                duration_secs: 30.0,
                ended_at: "2026-12-07T05:30:30.000Z".into(),
                ok: false,
            }),
            last_success_at: Some("2026-12-04T05:30:02.000Z".into()),
        });
        let text = job_lines(&[service("web", "ready"), job]);
        assert_eq!(
            text,
            "\nreport: job \"30 6 * * MON-FRI Europe/Berlin\", next run \
             2026-12-08T05:30:00.000Z (in 42s)\n  \
             last run: SIGKILL after 30.00s (schedule), ended 2026-12-07T05:30:30.000Z\n  \
             last success: 2026-12-04T05:30:02.000Z\n"
        );
        assert_eq!(job_lines(&[service("web", "ready")]), "");
    }

    fn view(colour: bool, shorten: bool) -> View {
        View {
            colour,
            shorten,
            wide: false,
            now: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_100),
        }
    }

    fn no_exits() -> HashMap<String, LastExit> {
        HashMap::new()
    }

    #[test]
    fn columns_line_up_without_colour() {
        let mut exits = no_exits();
        exits.insert(
            "web".into(),
            LastExit {
                ts: "2023-11-14T22:13:20.000Z".into(),
                code: Some(1),
                signal: None,
            },
        );
        let text = table(
            &[service("web", "ready"), service("database", "running")],
            &exits,
            &view(false, true),
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let col = lines[0].find("STATE").expect("header");
        assert_eq!(lines[1].find("ready"), Some(col));
        assert_eq!(lines[2].find("running"), Some(col));
        assert!(lines[1].contains("3m04s"));
        assert!(lines[1].contains("code 1, 1m40s ago"), "{text}");
        assert!(lines[1].ends_with("readiness retry: connection refused"));
        assert!(lines[1].contains("0.4ms"));
        assert!(!text.contains('\x1b'));
    }

    /// `--wide` adds CPU and MEM (read from the cgroups), aligned; a
    /// service without a cgroup shows `-`.
    #[test]
    fn wide_shows_cpu_and_memory() {
        let mut web = service("web", "ready");
        web.cpu_secs = Some(1.234);
        web.memory_bytes = Some(25 << 20);
        let services = [web, service("database", "running")];
        let wide = View {
            wide: true,
            ..view(false, true)
        };
        let text = table(&services, &no_exits(), &wide);
        let lines: Vec<&str> = text.lines().collect();
        let (cpu, mem) = (
            lines[0].find("CPU").expect("CPU"),
            lines[0].find("MEM").expect("MEM"),
        );
        assert_eq!(lines[1][cpu..].split_whitespace().next(), Some("1.23s"));
        assert_eq!(lines[1][mem..].split_whitespace().next(), Some("25.0M"));
        assert_eq!(lines[2][cpu..].split_whitespace().next(), Some("-"));
        let narrow = table(&services, &no_exits(), &view(false, true));
        assert!(!narrow.contains("CPU"), "{narrow}");
    }

    #[test]
    fn colour_keeps_alignment() {
        let services = [
            service("web", "ready"),
            service("database", "running"),
            service("cache", "failed"),
        ];
        let text = table(&services, &no_exits(), &view(true, true));
        assert!(text.contains("\x1b[32mready"));
        assert!(text.contains("\x1b[33mrunning"));
        assert!(text.contains("\x1b[31mfailed"));
        // The escapes take no room on a terminal: what is seen is the plain
        // table to the character, so the padding sits inside them.
        let visible = strip_escapes(&text);
        assert_eq!(
            visible,
            table(&services, &no_exits(), &view(false, true)),
            "{text:?}"
        );
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
        let text = table(&[s.clone()], &no_exits(), &view(false, true));
        assert!(!text.contains(['\x1b', '\r', '\u{202e}']), "{text:?}");
        assert!(
            text.contains("readiness retry: \\x1b[1A\\x1b[2K\\rready\\nok"),
            "{text:?}"
        );
        assert!(text.contains("running (\\u{202e}xxx"), "{text:?}");
        assert!(text.contains('…'), "{text:?}");
        assert_eq!(text.lines().count(), 2, "{text:?}");
        // Piped (or --wide): whole.
        s.last_reason = Some("r".repeat(200));
        let text = table(&[s], &no_exits(), &view(false, false));
        assert!(text.contains(&"r".repeat(200)), "{text:?}");
        assert!(text.contains(&"x".repeat(40)), "{text:?}");
        assert!(!text.contains('…'), "{text:?}");
    }

    #[test]
    fn settled_is_ready_operator_stopped_or_finished() {
        let clean = LastExit {
            ts: String::new(),
            code: Some(0),
            signal: None,
        };
        let crashed = LastExit {
            code: Some(3),
            ..clean.clone()
        };
        assert!(settled(&service("a", "ready"), None));
        assert!(settled(&service("a", "stopped"), None));
        let mut one_shot = service("a", "exited");
        assert!(!settled(&one_shot, Some(&crashed)));
        assert!(settled(&one_shot, Some(&clean)));
        one_shot.finished = true;
        assert!(settled(&one_shot, None));
        for state in [
            "running", "starting", "waiting", "backoff", "failed", "stopping",
        ] {
            assert!(!settled(&service("a", state), Some(&clean)), "{state}");
        }
        assert!(failing(&service("a", "backoff"), None));
        assert!(!failing(&service("a", "running"), None));
    }

    #[test]
    fn wide_sparklines_one_line_a_service_with_checks() {
        use crate::control::api::{CheckHistory, CheckSample};
        let sample = |ms: f64| CheckSample {
            at_ms: 0,
            phase: "liveness".into(),
            outcome: "ok".into(),
            latency_ms: ms,
            reason: None,
        };
        let mut history = CheckHistory::default();
        history
            .services
            .insert("web".into(), vec![sample(1.0), sample(2.0), sample(4.0)]);
        let text = sparklines(
            &[service("web", "ready"), service("\x1b[2Jdb", "ready")],
            &history,
        );
        assert_eq!(
            text, "\nLATENCY (last 40 checks)\nweb  ▃▅█  1.0ms..4.0ms\n",
            "{text:?}"
        );
        assert_eq!(sparklines(&[service("db", "ready")], &history), "");
    }

    #[test]
    fn uptimes() {
        assert_eq!(uptime(12.7), "12s");
        assert_eq!(uptime(3_700.0), "1h01m");
        assert_eq!(uptime(90_000.0), "1d01h");
    }
}
