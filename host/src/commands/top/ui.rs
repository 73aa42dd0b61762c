//! Drawing `vigil top`: header, services table, detail pane (its recent
//! checks, every outcome, with a latency sparkline, exits, dependencies,
//! sockets, a replace in progress, log tail), journal pane and the keys
//! footer. Every text a check, a service or its output
//! controls goes through [`untrusted::line`] before it reaches a cell.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Sparkline, Table, TableState, Wrap};
use serde_json::Value;

use super::app::{App, Sort};
use crate::commands::status::uptime;
use crate::control::api::CheckSample;
use crate::supervisor::logs::LogLine;
use crate::untrusted;

/// Colours, or none (`NO_COLOR`): then only bold and reverse video.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub colour: bool,
}

impl Theme {
    fn fg(self, colour: Color) -> Style {
        if self.colour {
            Style::default().fg(colour)
        } else {
            Style::default()
        }
    }

    fn state(self, state: &str) -> Style {
        self.fg(match state {
            "ready" => Color::Green,
            "running" | "starting" | "waiting" | "stopping" => Color::Yellow,
            "backoff" | "failed" => Color::Red,
            _ => Color::DarkGray,
        })
    }

    fn outcome(self, outcome: &str) -> Style {
        self.fg(match outcome {
            "ok" => Color::Green,
            "retry" => Color::Yellow,
            _ => Color::Red,
        })
    }

    fn dim(self) -> Style {
        self.fg(Color::DarkGray)
    }
}

/// A symbol for each state, so that it reads without colour too.
pub fn symbol(state: &str) -> &'static str {
    match state {
        "ready" => "●",
        "running" | "starting" => "◐",
        "waiting" => "…",
        "stopping" => "◌",
        "backoff" => "↻",
        "failed" => "✗",
        "exited" => "○",
        _ => "■", // stopped
    }
}

fn esc(text: &str) -> String {
    untrusted::line(text).into_owned()
}

pub fn latency(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1}ms")
    } else if ms < 10_000.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{:.1}s", ms / 1000.0)
    }
}

pub fn draw(frame: &mut Frame, app: &App, theme: Theme) {
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(5),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_header(frame, header, app, theme);
    draw_footer(frame, footer, app, theme);
    if app.logs_zoomed {
        draw_logs(frame, body, app, theme);
    } else {
        let table_height = (app.visible().len() as u16 + 3).clamp(4, body.height / 3 + 2);
        let [table, detail, journal] = Layout::vertical([
            Constraint::Length(table_height),
            Constraint::Min(6),
            Constraint::Length((body.height / 4).clamp(3, 10)),
        ])
        .areas(body);
        draw_table(frame, table, app, theme);
        let [info, logs] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(detail);
        draw_detail(frame, info, app, theme);
        draw_logs(frame, logs, app, theme);
        draw_journal(frame, journal, app, theme);
    }
    if let Some((action, name)) = &app.confirm {
        let text = format!(
            "{} {}? y = yes, any other key = no",
            action.verb(),
            esc(name)
        );
        let width = (text.chars().count() as u16 + 4).min(frame.area().width);
        let area = centered(frame.area(), width, 3);
        frame.render_widget(Clear, area);
        frame.render_widget(
            Paragraph::new(text)
                .style(Style::default().add_modifier(Modifier::BOLD))
                .block(Block::bordered().title(" confirm ")),
            area,
        );
    }
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    Rect {
        x: area.x + area.width.saturating_sub(width) / 2,
        y: area.y + area.height.saturating_sub(height) / 2,
        width: width.min(area.width),
        height: height.min(area.height),
    }
}

fn draw_header(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let mut spans = vec![Span::styled(
        "vigil top",
        Style::default().add_modifier(Modifier::BOLD),
    )];
    if let Some(report) = &app.report {
        let ready = report.services.iter().filter(|s| s.ready).count();
        spans.push(Span::raw(format!(
            "  pid {}  {}/{} ready  sort:{}",
            report.pid,
            ready,
            report.services.len(),
            app.sort.label()
        )));
    }
    if app.editing_filter || !app.filter.is_empty() {
        let cursor = if app.editing_filter { "_" } else { "" };
        spans.push(Span::raw(format!("  /{}{cursor}", esc(&app.filter))));
    }
    if let Some(gone) = &app.gone {
        spans.push(Span::styled(
            format!("  {} (last view kept)", esc(gone)),
            theme.fg(Color::Red).add_modifier(Modifier::BOLD),
        ));
    } else if let Some(message) = &app.message {
        spans.push(Span::styled(
            format!("  {}", esc(message)),
            theme.fg(Color::Cyan),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_footer(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let keys: &[(&str, &str)] = if app.editing_filter {
        &[("Enter", "apply"), ("Esc", "clear")]
    } else if app.logs_zoomed {
        &[
            ("↑↓ PgUp/PgDn", "scroll"),
            ("f", "follow"),
            ("l/Esc", "back"),
            ("q", "quit"),
        ]
    } else {
        // Fits 80 columns: the arrows need no word.
        &[
            ("r", "restart"),
            ("p", "replace"),
            ("x", "stop"),
            ("s", "start"),
            ("R", "reload"),
            ("l", "logs"),
            ("/", "filter"),
            ("o", "sort"),
            ("q", "quit"),
        ]
    };
    let mut spans = Vec::new();
    for (k, what) in keys {
        spans.push(Span::styled(
            k.to_string(),
            theme.fg(Color::Cyan).add_modifier(Modifier::BOLD),
        ));
        spans.push(Span::raw(format!(" {what} ")));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// A number from the fields newer servers add, by a key containing `part`.
fn extra_number(extra: &serde_json::Map<String, Value>, part: &str) -> Option<(String, f64)> {
    extra
        .iter()
        .find(|(k, v)| k.contains(part) && v.is_number())
        .and_then(|(k, v)| v.as_f64().map(|n| (k.clone(), n)))
}

fn cpu_text(extra: &serde_json::Map<String, Value>) -> Option<String> {
    let (key, n) = extra_number(extra, "cpu")?;
    Some(if key.contains("percent") {
        format!("{n:.0}%")
    } else {
        format!("{n:.1}s")
    })
}

fn memory_text(extra: &serde_json::Map<String, Value>) -> Option<String> {
    let (_, n) = extra_number(extra, "mem")?;
    Some(vigil_units::format_size(n as u64))
}

fn draw_table(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let rows = app.visible();
    let resources = rows
        .iter()
        .any(|r| cpu_text(&r.extra).is_some() || memory_text(&r.extra).is_some());
    let mark = |sort: Sort, title: &str| {
        if app.sort == sort {
            format!("{title}▼")
        } else {
            title.to_string()
        }
    };
    let mut header = vec![
        mark(Sort::Name, "SERVICE"),
        mark(Sort::State, "STATE"),
        "PID".into(),
        "UPTIME".into(),
        mark(Sort::Restarts, "RST"),
        "FAIL".into(),
        "CHECK".into(),
        mark(Sort::Latency, "LAT"),
    ];
    let name_width = rows
        .iter()
        .map(|r| esc(&r.status.name).chars().count())
        .max()
        .unwrap_or(0)
        .clamp(8, 24) as u16;
    let mut widths = vec![
        Constraint::Length(name_width),
        Constraint::Length(11),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(4),
        Constraint::Length(6),
        Constraint::Length(9),
        Constraint::Length(7),
    ];
    if resources {
        header.extend(["CPU".to_string(), "MEM".to_string()]);
        widths.extend([Constraint::Length(6), Constraint::Length(8)]);
    }
    let body: Vec<Row> = rows
        .iter()
        .map(|row| {
            let s = &row.status;
            let failing = s
                .failing
                .as_deref()
                .and_then(|f| f.split_once(' ').map(|(_, n)| n.to_string()))
                .unwrap_or_default();
            // Red only for a real failure count: an empty cell stays plain.
            let failing_style = if failing.is_empty() {
                Style::default()
            } else {
                theme.fg(Color::Red)
            };
            let mut cells = vec![
                Cell::from(esc(&s.name)),
                Cell::from(format!("{} {}", symbol(&s.state), s.state))
                    .style(theme.state(&s.state)),
                Cell::from(s.pid.map_or("-".into(), |p| p.to_string())),
                Cell::from(s.uptime_secs.map_or("-".into(), uptime)),
                Cell::from(s.restarts.to_string()),
                Cell::from(esc(&failing)).style(failing_style),
                match &s.last_outcome {
                    Some(o) => Cell::from(esc(o)).style(theme.outcome(o)),
                    None => Cell::from("-"),
                },
                Cell::from(s.check_latency_ms.map_or("-".into(), latency)),
            ];
            if resources {
                cells.push(Cell::from(cpu_text(&row.extra).unwrap_or("-".into())));
                cells.push(Cell::from(memory_text(&row.extra).unwrap_or("-".into())));
            }
            Row::new(cells)
        })
        .collect();
    let title = format!(" services ({}) ", rows.len());
    let table = Table::new(body, widths)
        .header(Row::new(header).style(Style::default().add_modifier(Modifier::BOLD)))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .block(Block::bordered().title(title));
    let mut state = TableState::default().with_selected(app.position());
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_detail(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let Some(row) = app.selected_row() else {
        frame.render_widget(Block::bordered().title(" detail "), area);
        return;
    };
    let s = &row.status;
    let block = Block::bordered().title(format!(" {} ", esc(&s.name)));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [spark_area, text_area] =
        Layout::vertical([Constraint::Length(2), Constraint::Min(1)]).areas(inner);

    // Latency of the recent checks, newest on the right.
    let width = spark_area.width as usize;
    let latencies: Vec<f64> = app.checks.iter().map(|c| c.latency_ms).collect();
    let shown = &latencies[latencies.len().saturating_sub(width)..];
    let data = super::spark::scale(shown, 100);
    let max = shown.iter().copied().fold(0.0, f64::max);
    let [label, bars] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(spark_area);
    frame.render_widget(
        Paragraph::new(format!(
            "latency, last {} checks (max {})",
            shown.len(),
            latency(max)
        ))
        .style(theme.dim()),
        label,
    );
    frame.render_widget(
        Sparkline::default()
            .data(&data)
            .max(100)
            .style(theme.fg(Color::Cyan)),
        bars,
    );

    let mut lines: Vec<Line> = Vec::new();
    let mut state = vec![Span::styled(
        format!("{} {}", symbol(&s.state), s.state),
        theme.state(&s.state),
    )];
    if let Some(secs) = s.restart_in_secs {
        state.push(Span::raw(format!(" in {}", uptime(secs.ceil()))));
    }
    if let Some(f) = &s.failing {
        state.push(Span::styled(
            format!("  failing {}", esc(f)),
            theme.fg(Color::Red),
        ));
    }
    if let Some(t) = s.status_text.as_deref().filter(|t| !t.is_empty()) {
        state.push(Span::raw(format!("  ({})", esc(t))));
    }
    lines.push(Line::from(state));
    if let (Some(outcome), phase) = (&s.last_outcome, &s.last_phase) {
        let mut spans = vec![
            Span::raw(format!("check {} ", esc(phase.as_deref().unwrap_or("")))),
            Span::styled(esc(outcome), theme.outcome(outcome)),
        ];
        if let Some(r) = &s.last_reason {
            spans.push(Span::raw(format!(": {}", esc(r))));
        }
        lines.push(Line::from(spans));
    }
    if !s.after.is_empty() {
        let deps: Vec<String> = s.after.iter().map(|d| dependency(app, d)).collect();
        lines.push(Line::from(format!("after: {}", deps.join(", "))));
    }
    if !s.waiting_for.is_empty() {
        let names: Vec<String> = s.waiting_for.iter().map(|n| esc(n)).collect();
        lines.push(Line::from(format!("waiting for: {}", names.join(", "))));
    }
    if !s.sockets.is_empty() {
        let sockets: Vec<String> = s
            .sockets
            .iter()
            .map(|k| format!("{} {} fd {}", esc(&k.name), esc(&k.listen), k.fd))
            .collect();
        lines.push(Line::from(format!("sockets: {}", sockets.join(", "))));
    }
    if let Some(new) = s.replacing_pid {
        lines.push(Line::styled(
            format!(
                "replacing: pid {} → new pid {new} (judged)",
                s.pid.map_or("-".into(), |p| p.to_string())
            ),
            theme.fg(Color::Yellow),
        ));
    }
    if let Some(old) = s.replaced_pid {
        lines.push(Line::styled(
            format!("replaced: old pid {old} draining"),
            theme.fg(Color::Yellow),
        ));
    }
    if let Some(reason) = &s.replace_failed {
        lines.push(Line::styled(
            format!("last replace failed: {}", esc(reason)),
            theme.fg(Color::Red),
        ));
    }
    for (key, value) in &row.extra {
        lines.push(Line::from(format!("{}: {}", esc(key), extra_text(value))));
    }
    let mut exit_lines: Vec<Line> = Vec::new();
    if let Some(exits) = app.exits.get(&s.name) {
        exit_lines.push(Line::styled("last exits:", theme.dim()));
        for e in exits.iter().rev() {
            let how = match (&e.signal, e.code) {
                (Some(sig), _) => esc(sig),
                (None, Some(code)) => format!("code {code}"),
                (None, None) => "exited".into(),
            };
            let cause = e
                .cause
                .as_deref()
                .map_or(String::new(), |c| format!(" ({})", esc(c)));
            exit_lines.push(Line::from(format!(
                " {} {how} after {}{cause}",
                clock(&e.ts),
                uptime(e.uptime_ms as f64 / 1000.0)
            )));
        }
    }
    // The recent checks, every outcome, newest first: as many as the pane
    // has room for between the lines above and the exits (at least 3).
    let room = (text_area.height as usize)
        .saturating_sub(lines.len() + exit_lines.len() + 1)
        .max(3);
    if !app.checks.is_empty() {
        lines.push(Line::styled("recent checks:", theme.dim()));
    }
    for c in app.checks.iter().rev().take(room) {
        lines.push(check_line(c, theme));
    }
    lines.extend(exit_lines);
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), text_area);
}

/// One check result: ` 12:03:04 liveness ok 1.2ms`, and its reason.
fn check_line(c: &CheckSample, theme: Theme) -> Line<'static> {
    let mut spans = vec![
        Span::styled(format!(" {} ", clock_ms(c.at_ms)), theme.dim()),
        Span::raw(format!("{} ", esc(&c.phase))),
        Span::styled(esc(&c.outcome), theme.outcome(&c.outcome)),
        Span::raw(format!(" {}", latency(c.latency_ms))),
    ];
    if let Some(reason) = c.reason.as_deref().filter(|r| !r.is_empty()) {
        spans.push(Span::raw(format!(" {}", esc(reason))));
    }
    Line::from(spans)
}

/// `db ●` with the dependency's state symbol, or `db ?` when unknown.
fn dependency(app: &App, name: &str) -> String {
    let state = app
        .rows
        .iter()
        .find(|r| r.status.name == name)
        .map_or("?", |r| symbol(&r.status.state));
    format!("{} {state}", esc(name))
}

/// A field of a newer server, on one line.
fn extra_text(value: &Value) -> String {
    match value {
        Value::String(s) => esc(s),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                // A socket: `web 127.0.0.1:8080 fd 3`.
                Value::Object(map) => map
                    .values()
                    .map(|v| match v {
                        Value::String(s) => esc(s),
                        other => esc(&other.to_string()),
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
                Value::String(s) => esc(s),
                other => esc(&other.to_string()),
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => esc(&other.to_string()),
    }
}

/// `12:03:04` of a journal time (`2030-01-01T12:03:04.567Z`).
fn clock(ts: &str) -> String {
    esc(ts.get(11..19).unwrap_or(ts))
}

fn clock_ms(at_ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(at_ms);
    clock(&crate::journal::timestamp(t))
}

fn draw_logs(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let name = app.selected.as_deref().map(esc).unwrap_or_default();
    let follow = if app.log_scroll == 0 {
        "following".to_string()
    } else {
        format!("{} lines up", app.log_scroll)
    };
    let block = Block::bordered().title(format!(" log {name} ({follow}) "));
    let inner = block.inner(area);
    let height = inner.height as usize;
    let end = app.logs.len().saturating_sub(app.log_scroll);
    let start = end.saturating_sub(height);
    let lines: Vec<Line> = app.logs[start..end]
        .iter()
        .map(|raw| {
            let l = LogLine::parse(raw);
            let stream = match l.stream.map(|s| s.as_str()) {
                Some("stderr") => Span::styled("err ", theme.fg(Color::Red)),
                Some(_) => Span::styled("out ", theme.dim()),
                None => Span::raw(""),
            };
            Line::from(vec![
                Span::styled(
                    format!("{} ", clock(l.ts.as_deref().unwrap_or(""))),
                    theme.dim(),
                ),
                stream,
                Span::raw(esc(&l.text)),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_journal(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let height = area.height.saturating_sub(2) as usize;
    let lines: Vec<Line> = app
        .journal
        .iter()
        .skip(app.journal.len().saturating_sub(height))
        .map(|line| {
            let service = line.service.as_deref().map(esc).unwrap_or("vigil".into());
            let kind = line.event.kind();
            let style = match kind {
                "exited" | "killed" | "gave-up" | "spawn-error" | "warning" => theme.fg(Color::Red),
                "ready" | "spawned" => theme.fg(Color::Green),
                _ => Style::default(),
            };
            Line::from(vec![
                Span::styled(format!("{} ", clock(&line.ts)), theme.dim()),
                Span::raw(format!("{service} ")),
                Span::styled(kind, style),
                Span::raw(format!(" {}", line.event.fields_text())),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" journal ")),
        area,
    );
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;

    /// `web` drawn in an 80x24 terminal, with `failing` as the API says it.
    fn drawn(failing: Option<&str>) -> ratatui::buffer::Buffer {
        let mut app = App::new();
        app.set_status(serde_json::json!({
            "pid": 1, "version": "0", "started_at": 0, "state_dir": "/x",
            "services": [{
                "name": "web", "state": "ready", "pid": 7, "uptime_secs": 1.0,
                "restarts": 0, "ready": true, "startup_passed": true,
                "last_outcome": "ok", "last_reason": null, "check_latency_ms": 1.0,
                "status_text": null, "failing": failing,
            }],
        }))
        .expect("a status");
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("a terminal");
        terminal
            .draw(|frame| draw(frame, &app, Theme { colour: true }))
            .expect("draw");
        terminal.backend().buffer().clone()
    }

    /// The cells of web's row (the first row under the table's header).
    fn row_has_red(buffer: &ratatui::buffer::Buffer) -> bool {
        let y = (0..buffer.area.height)
            .find(|&y| {
                (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
                    .starts_with("│web ")
            })
            .expect("web's row");
        (0..buffer.area.width).any(|x| buffer[(x, y)].fg == Color::Red)
    }

    #[test]
    fn an_empty_fail_cell_is_not_red_and_a_failure_count_is() {
        assert!(!row_has_red(&drawn(None)), "nothing failing: no red");
        assert!(row_has_red(&drawn(Some("liveness 2/3"))), "2/3 in red");
    }
}
