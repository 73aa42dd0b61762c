//! The tasks that feed `vigil top`'s loop: keys, the journal stream, the
//! periodic refresh, signals, and the actions a key asks for.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Notify, mpsc, watch};

use super::app::Action;
use crate::control::Client;
use crate::control::api::{CheckSample, JournalQuery};
use crate::journal::Line;

/// What the loop hears.
#[derive(Debug)]
pub enum Msg {
    Term(crossterm::event::Event),
    /// SIGTERM, SIGHUP or SIGINT from outside.
    Quit,
    Status(Value),
    Journal(Line),
    Checks(String, Vec<CheckSample>),
    Logs(String, Vec<String>),
    /// An action's or a reload's answer.
    Done(String),
    /// vigil went away: why.
    Gone(String),
}

/// Journal lines shown at start.
const JOURNAL_BACKLOG: usize = 300;
/// Log lines kept for the log pane.
const LOG_LINES: usize = 500;
/// How much of the end of a log file is read for them.
const LOG_TAIL_BYTES: u64 = 256 * 1024;

/// Terminal events from a thread of their own (crossterm reads block).
pub fn spawn_keys(tx: mpsc::UnboundedSender<Msg>) {
    std::thread::spawn(move || {
        while let Ok(event) = crossterm::event::read() {
            if tx.send(Msg::Term(event)).is_err() {
                return;
            }
        }
    });
}

pub fn spawn_signals(tx: mpsc::UnboundedSender<Msg>) {
    use tokio::signal::unix::{SignalKind, signal};
    for kind in [
        SignalKind::terminate(),
        SignalKind::hangup(),
        SignalKind::interrupt(),
    ] {
        let tx = tx.clone();
        if let Ok(mut s) = signal(kind) {
            tokio::spawn(async move {
                if s.recv().await.is_some() {
                    let _ = tx.send(Msg::Quit);
                }
            });
        }
    }
}

/// Follow the journal once; its end means vigil is gone.
pub fn spawn_journal(client: Client, tx: mpsc::UnboundedSender<Msg>, poke: Arc<Notify>) {
    tokio::spawn(async move {
        let query = JournalQuery {
            follow: true,
            lines: Some(JOURNAL_BACKLOG),
            ..JournalQuery::default()
        };
        let mut stream = match client.journal(&query).await {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(Msg::Gone(format!("journal: {e}")));
                return;
            }
        };
        loop {
            match stream.next().await {
                Some(Ok(line)) => {
                    let quit = matches!(line.event, crate::journal::Event::Quit { .. });
                    if tx.send(Msg::Journal(line)).is_err() {
                        return;
                    }
                    poke.notify_one();
                    if quit {
                        let _ = tx.send(Msg::Gone("vigil shut down".into()));
                    }
                }
                Some(Err(e)) => {
                    let _ = tx.send(Msg::Gone(format!("vigil is gone ({e})")));
                    return;
                }
                None => {
                    let _ = tx.send(Msg::Gone("vigil is gone".into()));
                    return;
                }
            }
        }
    });
}

/// Status, the selected service's checks and log tail: once a `period`,
/// and at once when poked (a journal line, an action's answer) or when
/// the selection changes.
pub fn spawn_refresh(
    client: Client,
    tx: mpsc::UnboundedSender<Msg>,
    mut selected: watch::Receiver<Option<String>>,
    poke: Arc<Notify>,
    period: Duration,
) {
    tokio::spawn(async move {
        let mut state_dir = None;
        loop {
            match client.status_value().await {
                Ok(raw) => {
                    if state_dir.is_none() {
                        state_dir = raw
                            .get("state_dir")
                            .and_then(Value::as_str)
                            .map(std::path::PathBuf::from);
                    }
                    if tx.send(Msg::Status(raw)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    if let Some(why) = super::gone(&e) {
                        let _ = tx.send(Msg::Gone(why));
                        return;
                    }
                }
            }
            let name = selected.borrow_and_update().clone();
            if let Some(name) = name {
                if let Ok(history) = client.checks(Some(&name)).await {
                    let samples = history.services.get(&name).cloned().unwrap_or_default();
                    let _ = tx.send(Msg::Checks(name.clone(), samples));
                }
                if let Some(dir) = &state_dir {
                    let lines = log_tail(&dir.join("logs"), &name);
                    let _ = tx.send(Msg::Logs(name, lines));
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = poke.notified() => {
                    // A burst of journal lines is one refresh.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                changed = selected.changed() => if changed.is_err() { return },
            }
        }
    });
}

/// The last lines of a service's current log file (raw, as written).
fn log_tail(dir: &Path, name: &str) -> Vec<String> {
    let Some(files) = crate::commands::logs::files(dir, name) else {
        return Vec::new();
    };
    let Ok(mut file) = std::fs::File::open(files.current()) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(LOG_TAIL_BYTES);
    if file.seek(SeekFrom::Start(from)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if file.take(LOG_TAIL_BYTES).read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if from > 0 && !lines.is_empty() {
        lines.remove(0); // cut in the middle
    }
    let skip = lines.len().saturating_sub(LOG_LINES);
    lines[skip..].iter().map(|l| l.to_string()).collect()
}

pub fn spawn_action(client: Client, tx: mpsc::UnboundedSender<Msg>, action: Action, name: String) {
    tokio::spawn(async move {
        let text = match action.send(&client, &name).await {
            Ok(text) => text,
            Err(e) => format!("{} {name}: {e}", action.verb()),
        };
        let _ = tx.send(Msg::Done(text));
    });
}

pub fn spawn_reload(client: Client, tx: mpsc::UnboundedSender<Msg>) {
    tokio::spawn(async move {
        let text = match client.reload().await {
            Ok(_) => "reloaded".to_string(),
            Err(e) => format!("reload refused: {e}"),
        };
        let _ = tx.send(Msg::Done(text));
    });
}
