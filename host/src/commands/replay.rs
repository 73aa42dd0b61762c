//! `vigil replay --service NAME (--loader X.wasm | --policy service.toml)
//! [--journal FILE|DIR] [--since T] [--json]`: a restart policy tested
//! against a real journal (see [`crate::replay`]).
//!
//! Reads only files: no vigil needs to run and no state directory needs
//! to exist beyond the journal, so a journal copied from another machine
//! replays as well. Exit 0 when the candidate decides as the record did,
//! 1 when it does not (or nothing could be read), 2 for bad usage.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::app::default_state_dir;
use crate::cli::ReplayArgs;
use crate::commands::Exit;
use crate::config::{LoaderSpec, Service};
use crate::journal::{self, Line};
use crate::replay::{self, BuiltIn, Decider};
use crate::supervisor::probes::{from_wit_action, wit_event, wit_history};
use crate::supervisor::service::{Action, History, LoaderEvent};
use crate::untrusted;
use crate::wasm::{CheckSource, Engine, EngineOptions, Loader};

pub async fn run(args: ReplayArgs) -> Exit {
    match replay(&args).await {
        Ok(report) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("vigil replay: {e}");
                        return Exit::Failed;
                    }
                }
            } else {
                print!("{}", report.text());
            }
            if report.matches {
                Exit::Ok
            } else {
                Exit::Failed
            }
        }
        Err((exit, problem)) => {
            eprintln!("vigil replay: {}", untrusted::line(&problem));
            exit
        }
    }
}

async fn replay(args: &ReplayArgs) -> Result<replay::Report, (Exit, String)> {
    let usage = |problem: String| (Exit::Usage, problem);
    let since = args
        .since
        .as_deref()
        .map(|t| super::journal::since(t, SystemTime::now()))
        .transpose()
        .map_err(usage)?;
    let lines = read_journal(args)?;
    if !lines
        .iter()
        .any(|l| l.service.as_deref() == Some(args.service.as_str()))
    {
        return Err((
            Exit::Failed,
            format!("the journal has no line about service `{}`", args.service),
        ));
    }
    let mut service = candidate_service(args).map_err(usage)?;
    service.name = args.service.clone();
    match &args.loader {
        None => {
            service.loader = None;
            let label = match &args.policy {
                Some(path) => format!("built-in policy with the settings of {}", path.display()),
                None => "built-in policy".into(),
            };
            Ok(replay::replay(&lines, &service, since, &BuiltIn, label).await)
        }
        Some(path) => {
            let mut config = service
                .loader
                .as_ref()
                .map(|l| l.config.clone())
                .unwrap_or_default();
            for entry in &args.config {
                let Some((key, value)) = entry.split_once('=') else {
                    return Err(usage(format!("--config `{entry}` is not KEY=VALUE")));
                };
                config.retain(|(k, _)| k != key);
                config.push((key.to_string(), value.to_string()));
            }
            service.loader = Some(LoaderSpec {
                path: path.clone(),
                config,
                embedded: false,
            });
            let loader = load_loader(path).await.map_err(usage)?;
            let label = format!("loader {}", path.display());
            Ok(replay::replay(&lines, &service, since, &WasmLoader(loader), label).await)
        }
    }
}

/// The manifest of `--policy` (a service.toml or its directory), or every
/// default for a loader alone.
fn candidate_service(args: &ReplayArgs) -> Result<Service, String> {
    let dir = args.policy.as_deref().map(|path| {
        if path.is_dir() {
            path.to_path_buf()
        } else {
            path.parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."))
        }
    });
    if let Some(path) = &args.policy
        && path.is_file()
        && path.file_name().and_then(|n| n.to_str()) != Some(crate::config::MANIFEST)
    {
        return Err(format!(
            "--policy {}: give a service.toml or its directory",
            path.display()
        ));
    }
    crate::config::load_for_replay(dir.as_deref()).map_err(|problems| {
        problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// `--journal FILE`, `--journal DIR` (its journal and rotated files,
/// oldest first), or the state directory's.
fn read_journal(args: &ReplayArgs) -> Result<Vec<Line>, (Exit, String)> {
    let path = args
        .journal
        .clone()
        .unwrap_or_else(|| args.state_dir.clone().unwrap_or_else(default_state_dir));
    let lines = if path.is_dir() {
        let rotated = (1..)
            .take_while(|i| journal::rotated(&path, *i).is_file())
            .count();
        journal::read_all(&path, rotated)
    } else if path.is_file() {
        journal::read_lines(&path)
    } else {
        return Err((Exit::Failed, format!("no journal at {}", path.display())));
    };
    Ok(lines)
}

async fn load_loader(path: &Path) -> Result<Loader, String> {
    let engine = Engine::one_shot(EngineOptions::default()).map_err(|e| e.to_string())?;
    engine
        .load_loader(&CheckSource::File(path.to_path_buf()))
        .await
        .map_err(|e| e.to_string())
}

/// A loader component answering the reducer's questions, its wall clock
/// frozen at each event's recorded (shifted) time.
struct WasmLoader(Loader);

impl Decider for WasmLoader {
    async fn decide(
        &self,
        event: &LoaderEvent,
        history: &History,
        wall: SystemTime,
    ) -> Result<Action, String> {
        let action = self
            .0
            .decide_at(&wit_event(event), &wit_history(history), Some(wall))
            .await
            .map_err(|e| e.to_string())?;
        Ok(from_wit_action(action))
    }
}
