//! `vigil compile FILE|DIR...`: compile components into the cache ahead of
//! their first check, and the progress lines `vigil check` and `vigil run`
//! print on a terminal while they compile.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Exit;
use crate::app::sources_of;
use crate::cli::CompileArgs;
use crate::config::{self, LOADER, MANIFEST};
use crate::untrusted;
use crate::wasm::{
    CacheOutcome, CheckSource, Compiled, Engine, EngineOptions, LoadError, Progress, compile_all,
};

pub async fn run(args: CompileArgs) -> Exit {
    let mut sources = Vec::new();
    let mut problems = 0;
    for path in &args.paths {
        let text = path.to_string_lossy();
        if text.starts_with("builtin:") || !path.is_dir() {
            sources.push(match text.parse::<CheckSource>() {
                Ok(source) => source,
                Err(never) => match never {},
            });
            continue;
        }
        problems += sources_of_dir(path, &mut sources);
    }
    let engine = match Engine::new(EngineOptions {
        max_instances: 4,
        ..EngineOptions::default()
    }) {
        Ok(engine) => engine,
        Err(err) => {
            eprintln!("vigil compile: {err}");
            return Exit::Failed;
        }
    };
    let terminal = std::io::stdout().is_terminal();
    let started = std::time::Instant::now();
    let results = compile_all(&engine, sources, Arc::new(Lines { terminal })).await;
    let failed = results
        .iter()
        .filter(|r| !matches!(r, Ok(c) if c.outcome != CacheOutcome::Uncached))
        .count();
    if terminal {
        let compiled = results
            .iter()
            .filter(|r| matches!(r, Ok(c) if c.outcome == CacheOutcome::Compiled))
            .count();
        println!(
            "{compiled} compiled, {} already cached, {failed} failed, in {:.1} s",
            results.len() - compiled - failed,
            started.elapsed().as_secs_f64()
        );
    }
    if failed + problems > 0 {
        Exit::Failed
    } else {
        Exit::Ok
    }
}

/// Every check and loader the service manifests under `dir` name (`dir`
/// being a checks directory or one service's directory), then every
/// `.wasm` file beneath it. A manifest that cannot be read is said and
/// counted; its directory's `.wasm` files are still compiled.
fn sources_of_dir(dir: &Path, sources: &mut Vec<CheckSource>) -> usize {
    let is_service = |d: &Path| d.join(MANIFEST).is_file() || d.join(LOADER).is_file();
    let mut service_dirs: Vec<PathBuf> = if is_service(dir) {
        vec![dir.to_path_buf()]
    } else {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.is_dir() && is_service(p))
            .collect()
    };
    service_dirs.sort();
    let mut problems = 0;
    for service_dir in &service_dirs {
        let mut found = Vec::new();
        match config::load_service(service_dir, &mut found) {
            Some(service) => sources.extend(sources_of(&service)),
            None => {
                problems += 1;
                let first = found.first().map(ToString::to_string).unwrap_or_default();
                eprintln!(
                    "vigil compile: {}: manifest not valid, compiling its .wasm files only: {} (see `vigil validate`)",
                    service_dir.display(),
                    untrusted::line(&first)
                );
            }
        }
    }
    let mut files = Vec::new();
    wasm_files(dir, 0, &mut files);
    files.sort();
    sources.extend(files.into_iter().map(CheckSource::File));
    problems
}

/// The `.wasm` files under `dir`, dot-entries and symbolic links skipped
/// (a link loop must not hang it), a few levels deep.
fn wasm_files(dir: &Path, depth: usize, files: &mut Vec<PathBuf>) {
    const MAX_DEPTH: usize = 4;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if hidden || kind.is_symlink() {
            continue;
        }
        if kind.is_dir() && depth < MAX_DEPTH {
            wasm_files(&path, depth + 1, files);
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "wasm") {
            files.push(path);
        }
    }
}

/// `18.2 MB`, `45 KB`: what a person compares, not exact bytes.
fn size(bytes: Option<u64>) -> String {
    match bytes {
        Some(b) if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        Some(b) => format!("{} KB", b.div_ceil(1000)),
        None => "? KB".to_owned(),
    }
}

/// `vigil compile`'s lines on stdout: one per component when it is done
/// (and, on a terminal, one when compiling begins, since that takes
/// seconds); failures on stderr, naming the component and the reason.
#[derive(Debug)]
struct Lines {
    terminal: bool,
}

impl Progress for Lines {
    fn compiling(&self, source: &CheckSource, bytes: usize) {
        if self.terminal {
            println!(
                "compiling {}  {} ...",
                untrusted::line(&source.to_string()),
                size(Some(bytes as u64))
            );
        }
    }

    fn done(&self, source: &CheckSource, result: &Result<Compiled, LoadError>) {
        let name = source.to_string();
        let name = untrusted::line(&name);
        match result {
            Ok(c) if c.outcome == CacheOutcome::Compiled => println!(
                "compiled  {name}  {}  {:.1} s",
                size(c.bytes),
                c.took.as_secs_f64()
            ),
            Ok(c) if c.outcome == CacheOutcome::Hit => {
                println!("cached    {name}  {}", size(c.bytes))
            }
            Ok(_) => eprintln!(
                "vigil compile: {name}: compiled but not cached: the component cache is not usable (see the warning above)"
            ),
            Err(err) => eprintln!(
                "vigil compile: {}",
                untrusted::line(&load_error(source, err))
            ),
        }
    }
}

/// A load error, sure to name the component.
fn load_error(source: &CheckSource, err: &LoadError) -> String {
    let text = err.to_string();
    if text.contains(&source.to_string()) {
        text
    } else {
        format!("{source}: {text}")
    }
}

/// What `vigil check` and `vigil run` say on stderr while they compile a
/// component that is not in the cache; nothing when it is, or when stderr
/// is not a terminal (a probe's output stays what it was).
#[derive(Debug)]
pub struct Notices {
    command: &'static str,
}

impl Notices {
    /// `None` when stderr is not a terminal.
    pub fn on_terminal(command: &'static str) -> Option<Arc<dyn Progress>> {
        std::io::stderr()
            .is_terminal()
            .then(|| Arc::new(Notices { command }) as Arc<dyn Progress>)
    }
}

impl Progress for Notices {
    fn compiling(&self, source: &CheckSource, bytes: usize) {
        eprintln!(
            "vigil {}: compiling {} ({}); once: later runs load it from the cache",
            self.command,
            untrusted::line(&source.to_string()),
            size(Some(bytes as u64))
        );
    }

    fn done(&self, source: &CheckSource, result: &Result<Compiled, LoadError>) {
        let (how, took) = match result {
            Ok(c) if c.outcome == CacheOutcome::Compiled => ("cached", c.took),
            Ok(c) if c.outcome == CacheOutcome::Uncached => {
                ("not cached (see the warning above)", c.took)
            }
            _ => return,
        };
        eprintln!(
            "vigil {}: compiled {} in {:.1} s; {how}",
            self.command,
            untrusted::line(&source.to_string()),
            took.as_secs_f64()
        );
    }
}
