//! What `vigil top` shows and how keys change it: plain state, no
//! terminal, so that it is unit-tested without one.

use std::collections::{HashMap, VecDeque};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use serde_json::Value;

use crate::control::api::{CheckSample, ServiceStatus, StatusReport};
use crate::journal::{Event, Line};

/// Journal lines kept for the journal pane.
const JOURNAL_KEEP: usize = 200;
/// Exits kept per service for the detail pane.
const EXITS_KEEP: usize = 5;

/// What an operator can do to one service from `vigil top`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Restart,
    /// A new child beside the old one, switched to once ready (a service
    /// with sockets; any other is restarted).
    Replace,
}

impl Action {
    pub fn verb(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
            Action::Replace => "replace",
        }
    }

    /// Stop, restart and replace end a running child: asked first.
    fn destructive(self) -> bool {
        !matches!(self, Action::Start)
    }
}

/// What the event loop must do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    None,
    Quit,
    Act(Action, String),
    Reload,
}

/// How the services table is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Name,
    State,
    Restarts,
    Latency,
}

impl Sort {
    fn next(self) -> Sort {
        match self {
            Sort::Name => Sort::State,
            Sort::State => Sort::Restarts,
            Sort::Restarts => Sort::Latency,
            Sort::Latency => Sort::Name,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Sort::Name => "name",
            Sort::State => "state",
            Sort::Restarts => "restarts",
            Sort::Latency => "latency",
        }
    }
}

/// One past exit of a service, from the journal.
#[derive(Debug, Clone, PartialEq)]
pub struct PastExit {
    pub ts: String,
    pub code: Option<i32>,
    pub signal: Option<String>,
    pub uptime_ms: u64,
    pub cause: Option<String>,
}

/// A service's row: its status and what the API said beyond the fields
/// this build knows (CPU, memory, sockets from newer servers).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub status: ServiceStatus,
    pub extra: serde_json::Map<String, Value>,
}

/// Everything on the screen.
#[derive(Debug)]
pub struct App {
    pub report: Option<StatusReport>,
    pub rows: Vec<Row>,
    /// The selected service, by name (stays on it when rows move).
    pub selected: Option<String>,
    pub sort: Sort,
    pub filter: String,
    /// Typing a filter after `/`.
    pub editing_filter: bool,
    /// An action waiting for `y`.
    pub confirm: Option<(Action, String)>,
    pub journal: VecDeque<Line>,
    pub exits: HashMap<String, VecDeque<PastExit>>,
    /// The selected service's recent checks.
    pub checks: Vec<CheckSample>,
    /// The selected service's log tail (raw lines of its log file).
    pub logs: Vec<String>,
    /// The log pane fills the screen (`l`).
    pub logs_zoomed: bool,
    /// Lines scrolled up from the end of the log; 0 follows.
    pub log_scroll: usize,
    /// The last answer to an action, or a problem.
    pub message: Option<String>,
    /// Why vigil is gone, once it is: the view stays as it was.
    pub gone: Option<String>,
}

impl App {
    pub fn new() -> App {
        App {
            report: None,
            rows: Vec::new(),
            selected: None,
            sort: Sort::Name,
            filter: String::new(),
            editing_filter: false,
            confirm: None,
            journal: VecDeque::new(),
            exits: HashMap::new(),
            checks: Vec::new(),
            logs: Vec::new(),
            logs_zoomed: false,
            log_scroll: 0,
            message: None,
            gone: None,
        }
    }

    /// A fresh status answer, raw (fields this build does not know are
    /// kept for display).
    pub fn set_status(&mut self, raw: Value) -> Result<(), String> {
        let report: StatusReport =
            serde_json::from_value(raw.clone()).map_err(|e| format!("bad status answer: {e}"))?;
        let extras = raw
            .get("services")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let known = known_fields();
        self.rows = report
            .services
            .iter()
            .zip(extras.into_iter().chain(std::iter::repeat(Value::Null)))
            .map(|(status, raw)| Row {
                status: status.clone(),
                extra: match raw {
                    Value::Object(map) => map
                        .into_iter()
                        .filter(|(k, v)| !known.contains(k) && !v.is_null())
                        .collect(),
                    _ => Default::default(),
                },
            })
            .collect();
        self.report = Some(report);
        if self.selected.is_none() || self.position().is_none() {
            self.selected = self.visible().first().map(|r| r.status.name.clone());
        }
        Ok(())
    }

    /// A journal line arrived.
    pub fn push_journal(&mut self, line: Line) {
        if let (
            Some(service),
            Event::Exited {
                code,
                signal,
                uptime_ms,
                cause,
                ..
            },
        ) = (&line.service, &line.event)
        {
            let exits = self.exits.entry(service.clone()).or_default();
            if exits.len() == EXITS_KEEP {
                exits.pop_front();
            }
            exits.push_back(PastExit {
                ts: line.ts.clone(),
                code: *code,
                signal: signal.clone(),
                uptime_ms: *uptime_ms,
                cause: cause.map(|c| c.as_str().to_string()),
            });
        }
        if self.journal.len() == JOURNAL_KEEP {
            self.journal.pop_front();
        }
        self.journal.push_back(line);
    }

    /// The rows that pass the filter, in the chosen order.
    pub fn visible(&self) -> Vec<&Row> {
        let needle = self.filter.to_lowercase();
        let mut rows: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| needle.is_empty() || r.status.name.to_lowercase().contains(&needle))
            .collect();
        let name = |r: &&Row| r.status.name.clone();
        match self.sort {
            Sort::Name => rows.sort_by_key(name),
            Sort::State => rows.sort_by_key(|r| (state_rank(&r.status.state), name(r))),
            Sort::Restarts => rows.sort_by_key(|r| (std::cmp::Reverse(r.status.restarts), name(r))),
            Sort::Latency => rows.sort_by(|a, b| {
                let l = |r: &Row| r.status.check_latency_ms.unwrap_or(-1.0);
                l(b).total_cmp(&l(a))
                    .then_with(|| a.status.name.cmp(&b.status.name))
            }),
        }
        rows
    }

    /// Where the selected service is among the visible rows.
    pub fn position(&self) -> Option<usize> {
        let selected = self.selected.as_ref()?;
        self.visible()
            .iter()
            .position(|r| &r.status.name == selected)
    }

    pub fn selected_row(&self) -> Option<&Row> {
        let selected = self.selected.as_ref()?;
        self.rows.iter().find(|r| &r.status.name == selected)
    }

    fn move_selection(&mut self, by: isize) {
        let names: Vec<String> = self
            .visible()
            .iter()
            .map(|r| r.status.name.clone())
            .collect();
        if names.is_empty() {
            return;
        }
        let at = self.position().unwrap_or(0) as isize;
        let to = (at + by).clamp(0, names.len() as isize - 1) as usize;
        if self.selected.as_ref() != Some(&names[to]) {
            self.selected = Some(names[to].clone());
            self.checks.clear();
            self.logs.clear();
            self.log_scroll = 0;
        }
    }

    /// Apply a key; say what the loop must do.
    pub fn key(&mut self, key: KeyEvent) -> Command {
        if key.kind == KeyEventKind::Release {
            return Command::None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('d')) {
            return Command::Quit;
        }
        if let Some((action, name)) = self.confirm.take() {
            if matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                return Command::Act(action, name);
            }
            self.message = Some(format!("{} cancelled", action.verb()));
            return Command::None;
        }
        if self.editing_filter {
            match key.code {
                KeyCode::Enter => self.editing_filter = false,
                KeyCode::Esc => {
                    self.editing_filter = false;
                    self.filter.clear();
                }
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) if !ctrl => self.filter.push(c),
                _ => {}
            }
            self.reselect();
            return Command::None;
        }
        match key.code {
            KeyCode::Char('q') => return Command::Quit,
            KeyCode::Esc if self.logs_zoomed => self.logs_zoomed = false,
            KeyCode::Esc => {
                self.filter.clear();
                self.reselect();
            }
            KeyCode::Char('/') => {
                self.editing_filter = true;
                self.filter.clear();
            }
            KeyCode::Char('o') => self.sort = self.sort.next(),
            KeyCode::Char('l') => {
                self.logs_zoomed = !self.logs_zoomed;
                self.log_scroll = 0;
            }
            KeyCode::Char('f') | KeyCode::End => self.log_scroll = 0,
            KeyCode::PageUp => self.scroll_log(10),
            KeyCode::PageDown => self.scroll_log(-10),
            KeyCode::Up | KeyCode::Char('k') if self.logs_zoomed => self.scroll_log(1),
            KeyCode::Down | KeyCode::Char('j') if self.logs_zoomed => self.scroll_log(-1),
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1),
            KeyCode::Home | KeyCode::Char('g') => self.move_selection(isize::MIN / 2),
            KeyCode::Char('G') => self.move_selection(isize::MAX / 2),
            KeyCode::Char('R') => return Command::Reload,
            KeyCode::Char('r') => return self.ask(Action::Restart),
            KeyCode::Char('x') => return self.ask(Action::Stop),
            KeyCode::Char('s') => return self.ask(Action::Start),
            KeyCode::Char('p') => return self.ask(Action::Replace),
            _ => {}
        }
        Command::None
    }

    fn scroll_log(&mut self, by: isize) {
        let max = self.logs.len().saturating_sub(1) as isize;
        self.log_scroll = (self.log_scroll as isize + by).clamp(0, max) as usize;
    }

    /// Destructive actions wait for `y`; start goes at once.
    fn ask(&mut self, action: Action) -> Command {
        if self.gone.is_some() {
            self.message = Some("vigil is gone: nothing to act on".into());
            return Command::None;
        }
        let Some(name) = self.selected.clone() else {
            return Command::None;
        };
        if action.destructive() {
            self.confirm = Some((action, name));
            Command::None
        } else {
            Command::Act(action, name)
        }
    }

    /// Keep a selection among the visible rows after the filter changed.
    fn reselect(&mut self) {
        if self.position().is_none() {
            self.selected = self.visible().first().map(|r| r.status.name.clone());
            self.checks.clear();
            self.logs.clear();
        }
    }
}

impl Default for App {
    fn default() -> Self {
        App::new()
    }
}

/// Failing states first, then the ones on their way, then the settled.
fn state_rank(state: &str) -> u8 {
    match state {
        "failed" => 0,
        "backoff" => 1,
        "exited" => 2,
        "stopping" | "starting" | "running" | "waiting" => 3,
        "ready" => 4,
        _ => 5,
    }
}

/// The field names of [`ServiceStatus`] as this build serializes them
/// (every list non-empty: empty ones are left out of the JSON).
fn known_fields() -> Vec<String> {
    let probe = ServiceStatus {
        name: String::new(),
        state: String::new(),
        pid: None,
        uptime_secs: None,
        restarts: 0,
        ready: false,
        startup_passed: false,
        last_outcome: None,
        last_reason: None,
        last_phase: None,
        check_latency_ms: None,
        status_text: None,
        finished: false,
        failing: None,
        waiting_for: vec![String::new()],
        restart_in_secs: None,
        after: vec![String::new()],
        cgroup: Some(String::new()),
        cpu_secs: Some(0.0),
        memory_bytes: Some(0),
        sockets: vec![crate::control::api::SocketStatus {
            name: String::new(),
            listen: String::new(),
            fd: 3,
        }],
        awaiting_connection: false,
        replacing_pid: Some(0),
        replaced_pid: Some(0),
        replace_failed: Some(String::new()),
        note: Some(String::new()),
        next_run_in_secs: Some(0.0),
        job: Some(crate::control::api::JobStatus::default()),
    };
    match serde_json::to_value(probe) {
        Ok(Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn app_with(names: &[(&str, &str, u32)]) -> App {
        let services: Vec<Value> = names
            .iter()
            .map(|(name, state, restarts)| {
                serde_json::json!({
                    "name": name, "state": state, "pid": 1, "uptime_secs": 1.0,
                    "restarts": restarts, "ready": false, "startup_passed": true,
                    "last_outcome": null, "last_reason": null, "check_latency_ms": null,
                    "status_text": null, "cpu_percent": 12.5, "after": ["db"],
                })
            })
            .collect();
        let mut app = App::new();
        app.set_status(serde_json::json!({
            "pid": 1, "version": "0", "started_at": 0, "state_dir": "/x",
            "services": services,
        }))
        .expect("a status");
        app
    }

    #[test]
    fn destructive_keys_ask_first_and_start_does_not() {
        let mut app = app_with(&[("db", "ready", 0), ("web", "ready", 0)]);
        assert_eq!(app.selected.as_deref(), Some("db"));
        assert_eq!(app.key(key(KeyCode::Down)), Command::None);
        assert_eq!(app.key(key(KeyCode::Char('r'))), Command::None);
        assert_eq!(app.confirm, Some((Action::Restart, "web".into())));
        assert_eq!(
            app.key(key(KeyCode::Char('y'))),
            Command::Act(Action::Restart, "web".into())
        );
        assert_eq!(app.key(key(KeyCode::Char('p'))), Command::None);
        assert_eq!(app.confirm, Some((Action::Replace, "web".into())));
        assert_eq!(
            app.key(key(KeyCode::Char('y'))),
            Command::Act(Action::Replace, "web".into())
        );
        assert_eq!(app.key(key(KeyCode::Char('x'))), Command::None);
        assert_eq!(app.key(key(KeyCode::Char('n'))), Command::None);
        assert_eq!(app.confirm, None);
        assert_eq!(app.message.as_deref(), Some("stop cancelled"));
        assert_eq!(
            app.key(key(KeyCode::Char('s'))),
            Command::Act(Action::Start, "web".into())
        );
        assert_eq!(
            app.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Command::Quit
        );
        app.gone = Some("gone".into());
        assert_eq!(app.key(key(KeyCode::Char('r'))), Command::None);
        assert_eq!(app.confirm, None);
    }

    #[test]
    fn filter_and_sort() {
        let mut app = app_with(&[
            ("api", "ready", 0),
            ("db", "failed", 3),
            ("web", "ready", 1),
        ]);
        for code in [KeyCode::Char('/'), KeyCode::Char('w'), KeyCode::Enter] {
            app.key(key(code));
        }
        let names = |app: &App| -> Vec<String> {
            app.visible()
                .iter()
                .map(|r| r.status.name.clone())
                .collect()
        };
        assert_eq!(names(&app), ["web"]);
        assert_eq!(app.selected.as_deref(), Some("web"));
        app.key(key(KeyCode::Esc));
        assert_eq!(names(&app), ["api", "db", "web"]);
        app.key(key(KeyCode::Char('o')));
        assert_eq!(app.sort, Sort::State);
        assert_eq!(names(&app), ["db", "api", "web"]);
        app.key(key(KeyCode::Char('o')));
        assert_eq!(names(&app), ["db", "web", "api"]);
        // Fields of newer servers are kept for display, known ones not.
        assert_eq!(
            app.rows[0].extra.keys().collect::<Vec<_>>(),
            ["cpu_percent"],
            "{:?}",
            app.rows[0].extra
        );
    }
}
