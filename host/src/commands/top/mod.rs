//! `vigil top`: a live terminal view of a running vigil (ratatui over
//! crossterm), fed by the control socket.
//!
//! - The journal stream (`GET /v1/journal?follow=true`) is followed once:
//!   it fills the journal pane and each service's last exits, and every
//!   line it brings asks for a status refresh, so that a restart shows as
//!   it happens.
//! - A light refresh once a second (`GET /v1/status`, the selected
//!   service's `GET /v1/checks` and its log tail, read from the log file)
//!   keeps uptimes and latencies moving.
//! - Keys act through the same API as `vigil restart` (journaled with the
//!   operator as cause); stop, restart and replace ask first.
//!
//! The terminal is restored on every way out: `q`, Ctrl-C (a key in raw
//! mode), SIGTERM/SIGHUP, and a panic (the hook restores it before the
//! message prints). When vigil goes away the view stays, saying so.

mod app;
mod feed;
pub mod spark;
mod ui;

use std::io::IsTerminal;
use std::time::Duration;

use crossterm::event::Event as TermEvent;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::{mpsc, watch};

use crate::cli::TopArgs;
use crate::commands::Exit;
use crate::commands::control::{client, fail};
use crate::control::ControlError;
use app::{Action, App, Command};
pub use feed::Msg;

/// How often the status (uptimes, latencies) is asked for.
const REFRESH: Duration = Duration::from_secs(1);

pub async fn run(args: TopArgs) -> Exit {
    let client = client(&args.control);
    // Fail before touching the terminal when there is nothing to show.
    let first = match client.status_value().await {
        Ok(v) => v,
        Err(e) => return fail("top", &e),
    };
    if !std::io::stdout().is_terminal() {
        eprintln!("vigil top: stdout is not a terminal; `vigil status` prints a table");
        return Exit::Usage;
    }
    let theme = ui::Theme {
        colour: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    };
    let mut app = App::new();
    if let Err(problem) = app.set_status(first) {
        eprintln!("vigil top: {problem}");
        return Exit::Failed;
    }
    let mut guard = match TerminalGuard::enter() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("vigil top: cannot set up the terminal: {e}");
            return Exit::Failed;
        }
    };
    let result = event_loop(client, app, theme, &mut guard.terminal).await;
    drop(guard);
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("vigil top: {e}");
            Exit::Failed
        }
    }
}

type Term = Terminal<CrosstermBackend<std::io::Stdout>>;

async fn event_loop(
    client: crate::control::Client,
    mut app: App,
    theme: ui::Theme,
    terminal: &mut Term,
) -> std::io::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let (selected_tx, selected_rx) = watch::channel(app.selected.clone());
    let poke = std::sync::Arc::new(tokio::sync::Notify::new());
    feed::spawn_keys(tx.clone());
    feed::spawn_journal(client.clone(), tx.clone(), poke.clone());
    feed::spawn_refresh(
        client.clone(),
        tx.clone(),
        selected_rx,
        poke.clone(),
        REFRESH,
    );
    feed::spawn_signals(tx.clone());
    terminal.draw(|f| ui::draw(f, &app, theme))?;
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Term(TermEvent::Key(key)) => match app.key(key) {
                Command::Quit => return Ok(()),
                Command::None => {}
                Command::Reload => {
                    app.message = Some("reloading…".into());
                    feed::spawn_reload(client.clone(), tx.clone());
                }
                Command::Act(action, name) => {
                    app.message = Some(format!("{} {name}…", action.verb()));
                    feed::spawn_action(client.clone(), tx.clone(), action, name);
                }
            },
            Msg::Term(_) => {} // resize, mouse, focus: just draw again
            Msg::Quit => return Ok(()),
            Msg::Status(raw) => {
                if let Err(problem) = app.set_status(raw) {
                    app.message = Some(problem);
                }
            }
            Msg::Journal(line) => app.push_journal(line),
            Msg::Checks(name, samples) => {
                if app.selected.as_ref() == Some(&name) {
                    app.checks = samples;
                }
            }
            Msg::Logs(name, lines) => {
                if app.selected.as_ref() == Some(&name) {
                    app.logs = lines;
                }
            }
            Msg::Done(text) => {
                app.message = Some(text);
                poke.notify_one();
            }
            Msg::Gone(why) => {
                if app.gone.is_none() {
                    app.gone = Some(why);
                }
            }
        }
        if *selected_tx.borrow() != app.selected {
            selected_tx.send_replace(app.selected.clone());
        }
        terminal.draw(|f| ui::draw(f, &app, theme))?;
    }
    Ok(())
}

/// What a failed request means for the view: vigil is gone, or not.
fn gone(err: &ControlError) -> Option<String> {
    match err {
        ControlError::NotRunning { .. } | ControlError::Connect { .. } => {
            Some("vigil is gone".to_string())
        }
        _ => None,
    }
}

impl Action {
    async fn send(
        self,
        client: &crate::control::Client,
        name: &str,
    ) -> Result<String, ControlError> {
        let applied = match self {
            Action::Start => client.start(name).await?,
            Action::Stop => client.stop(name).await?,
            Action::Restart => client.restart(name).await?,
            Action::Replace => client.replace(name).await?,
        };
        let s = applied.service;
        let pid = s.pid.map_or(String::new(), |p| format!(", pid {p}"));
        Ok(format!("{} {}: {}{pid}", self.verb(), s.name, s.state))
    }
}

/// Raw mode and the alternate screen for as long as it lives; the
/// terminal as it was after (also after a panic).
struct TerminalGuard {
    terminal: Term,
}

impl TerminalGuard {
    fn enter() -> std::io::Result<TerminalGuard> {
        crossterm::terminal::enable_raw_mode()?;
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        let mut stdout = std::io::stdout();
        if let Err(e) = crossterm::execute!(
            stdout,
            crossterm::terminal::EnterAlternateScreen,
            crossterm::cursor::Hide
        ) {
            restore();
            return Err(e);
        }
        match Terminal::new(CrosstermBackend::new(stdout)) {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Leave the alternate screen, show the cursor, cooked mode again.
/// Harmless when already done.
fn restore() {
    let _ = crossterm::execute!(
        std::io::stdout(),
        crossterm::terminal::LeaveAlternateScreen,
        crossterm::cursor::Show
    );
    let _ = crossterm::terminal::disable_raw_mode();
}
