//! Service directories: `DIR/<name>/service.toml` (+ `.wasm` checks and an
//! optional `loader.wasm`) turned into validated [`Service`]s.
//!
//! Parsing happens in two steps, ripgrep style: the manifest is read into a
//! raw serde form (`raw`: every field optional, unknown keys rejected) and
//! then resolved into a [`Service`] (`resolve`, `checks`) where every
//! duration, signal, path, grant and reference has been checked. The rest
//! of Vigil only sees the resolved form (`model`). Validation never stops
//! at the first problem (`problems`): loading a directory reports every
//! problem of every service at once, each as
//! `path:field: problem (fix: ...)`, including those across services
//! (`graph`).
//!
//! This file is the public face: [`load_service`] and [`load_dir`].

mod checks;
pub mod embedded;
mod envfile;
mod graph;
mod hooks;
mod identity;
mod kinds;
mod limits;
mod model;
mod problems;
mod raw;
pub mod replicas;
mod resolve;
mod schedule;
mod schema;
pub mod sockets;
mod validate;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub use hooks::{DEFAULT_HOOK_TIMEOUT, HookAction, HookKind, HookSpec, Hooks};
pub use identity::{
    Credential, DEFAULT_LOG_MAX_SIZE, EnvFile, EnvFileError, Identity, LogFormat, LogSpec,
    MAX_LOG_KEEP, RunAs, parse_umask,
};
pub use kinds::ExecStamp;
pub use limits::{Limits, Rlimit};
pub use model::{
    CheckSpec, Checks, DEFAULT_NOTIFY_TIMEOUT, GiveUp, GrantSpec, LOADER, LoaderSpec, MANIFEST,
    NotifySpec, RestartMode, RestartPolicy, Service,
};
pub use problems::{Problem, ValidationReport, did_you_mean};
pub use schedule::{Cron, JobSpec, Overlap, When, next_due};
pub use schema::one_shot_config_problems;
pub use sockets::{Listen, SocketSpec, SocketsSpec, StartMode};
pub use validate::{ReplicaGroup, Validation, validate};

use problems::Collector;
use raw::{RawService, parse_raw};

/// Parse and validate one service directory. `name` is its directory name.
/// Problems are appended to `problems`; returns the service when the
/// directory itself had none (cross-service checks are done by
/// [`load_dir`]).
pub fn load_service(dir: &Path, problems: &mut Vec<Problem>) -> Option<Service> {
    let (service, mut found, mut warnings) = load(dir);
    // Until a missing program is a per-service spawn error at run time,
    // `vigil run` refuses it as before; only `vigil validate` tells the two
    // apart.
    found.append(&mut warnings);
    let valid = found.is_empty();
    problems.append(&mut found);
    service.filter(|_| valid)
}

/// A checks directory that can run: its services, and what is wrong but
/// only at run time (a program not installed yet), for the journal.
#[derive(Debug)]
pub struct Loaded {
    pub services: Vec<Service>,
    /// Each names its file and field, like a problem; the service still
    /// runs (and a missing program ends as its `spawn-error`).
    pub warnings: Vec<Problem>,
}

/// Load every service directory under `dir` (see [`scan_dir`] for what is
/// one). Refused with every problem when any manifest is wrong (its
/// warnings listed after them); a warning alone does not refuse.
pub fn load_dir(dir: &Path) -> Result<Loaded, ValidationReport> {
    let mut problems = Vec::new();
    let mut all_warnings = Vec::new();
    let mut services = Vec::new();
    let (dirs, ignored) = match scan_dir(dir) {
        Ok(scan) => scan,
        Err(problem) => {
            return Err(ValidationReport {
                problems: vec![problem],
            });
        }
    };
    for note in ignored {
        tracing::debug!("{note}");
    }
    // Names of every service directory, valid or not, so that a broken
    // dependency is reported once (as broken), not also as unknown.
    let names: BTreeSet<String> = dirs.iter().map(|d| kinds::service_name(d)).collect();
    problems.extend(kinds::name_clashes(&dirs));
    let mut all = Vec::new();
    for d in &dirs {
        let (service, mut found, mut warnings) = load(d);
        all_warnings.append(&mut warnings);
        let valid = found.is_empty();
        problems.append(&mut found);
        // A broken service still takes part in the cross-service checks
        // with its `after` list.
        if let Some(s) = service {
            if valid {
                services.extend(replicas::expand(s.clone(), &mut problems));
            }
            all.push(s);
        }
    }
    graph::check_dependencies(&all, &names, &mut problems);
    if problems.is_empty() {
        Ok(Loaded {
            services,
            warnings: all_warnings,
        })
    } else {
        problems.append(&mut all_warnings);
        Err(ValidationReport { problems })
    }
}

/// The service directories and executables under `dir`, sorted, and a
/// note for each entry that is not one and is ignored: hidden entries
/// (`.git`, an editor's swap file), files that are not executable
/// (`README.md`; an executable's sidecar `NAME.toml` is not noted), and directories holding neither a
/// manifest, a loader nor any `.wasm` (`lost+found`). A directory with a
/// `.wasm` but no manifest is a service missing its manifest.
pub(crate) fn scan_dir(dir: &Path) -> Result<(Vec<PathBuf>, Vec<String>), Problem> {
    let entries = std::fs::read_dir(dir).map_err(|e| Problem {
        path: dir.to_path_buf(),
        field: "-".into(),
        problem: format!("cannot read the checks directory: {e}"),
        fix: "pass an existing directory with --checks".into(),
    })?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    let mut dirs = Vec::new();
    let mut notes = Vec::new();
    for p in paths {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        let why = if name.starts_with('.') {
            Some("hidden".to_string())
        } else if !p.is_dir() && kinds::is_executable(&p) {
            // An executable is a service of its own (config/kinds.rs).
            None
        } else if !p.is_dir() {
            let exe_beside = p.extension().is_some_and(|x| x == "toml")
                && siblings_named(&p).iter().any(|s| kinds::is_executable(s));
            if exe_beside {
                // A sidecar: read with its executable.
                continue;
            }
            Some("not a directory (and not executable)".to_string())
        } else {
            match std::fs::read_dir(&p) {
                Err(e) => Some(format!("cannot read it ({e})")),
                Ok(inside) => {
                    let ours = inside.filter_map(|e| e.ok()).any(|e| {
                        let n = e.file_name();
                        n == MANIFEST
                            || n == LOADER
                            || Path::new(&n).extension().is_some_and(|x| x == "wasm")
                    });
                    // An executable carrying its own loader (or a broken
                    // section, reported as this service's problem).
                    let ours = ours || !matches!(embedded::loader_binary(&p), Ok(None));
                    (!ours).then(|| {
                        "not a service directory (no service.toml, loader.wasm or .wasm)"
                            .to_string()
                    })
                }
            }
        };
        match why {
            Some(why) => notes.push(format!("{}: {why}; ignored", p.display())),
            None => dirs.push(p),
        }
    }
    Ok((dirs, notes))
}

/// The other files of `p`'s directory with the same name before the
/// extension (`backup.toml` -> `backup.sh`, `backup`).
fn siblings_named(p: &Path) -> Vec<PathBuf> {
    let stem = kinds::service_name(p);
    let dir = p.parent().unwrap_or(Path::new("."));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|s| s != p && !s.is_dir() && kinds::service_name(s) == stem)
        .collect()
}

/// A service name: letters, digits, `-`, `_` and `.`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
}

/// Read one service directory's manifest (once) and resolve it. Returns
/// the service whenever the manifest parsed, with defaults in place of its
/// broken fields, every problem found in the directory and the warnings.
/// A service as `vigil replay` reads it: from the manifest in `dir`, or
/// with every default when `dir` is `None` (a loader alone). Its problems
/// refuse it; its warnings (a program not installed on this machine) do
/// not, since a replay runs nothing and the journal may come from
/// another machine.
pub fn load_for_replay(dir: Option<&Path>) -> Result<Service, Vec<Problem>> {
    let (service, problems) = match dir {
        Some(dir) => {
            let (service, problems, _) = load(dir);
            (service, problems)
        }
        None => {
            let here = Path::new(".");
            let mut c = Collector::new(here);
            let service =
                resolve::resolve("replay", here, RawService::default(), true, None, &mut c);
            (Some(service), c.problems)
        }
    };
    match service {
        Some(service) if problems.is_empty() => Ok(service),
        _ => Err(problems),
    }
}

fn load(dir: &Path) -> (Option<Service>, Vec<Problem>, Vec<Problem>) {
    if !dir.is_dir() && kinds::is_executable(dir) {
        return kinds::load_executable(dir);
    }
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let manifest = dir.join(MANIFEST);
    let has_loader = dir.join(LOADER).is_file();
    let mut c = Collector::new(&manifest);
    // Without a manifest or loader.wasm: an executable carrying a loader.
    let embedded_loader = if manifest.is_file() || has_loader {
        None
    } else {
        match embedded::loader_binary(dir) {
            Ok(found) => found,
            Err(problem) => {
                c.push(
                    "-",
                    problem,
                    "keep one executable with an embedded loader in the directory, or embed again",
                );
                None
            }
        }
    };

    if name.contains('@') {
        c.push(
            "-",
            format!("service directory name `{name}`: `@` is reserved for replicas (web@0)"),
            "rename the directory; `instances = N` in its manifest runs NAME@0..N-1",
        );
    } else if !valid_name(&name) {
        c.push(
            "-",
            format!("service directory name `{name}` is not a valid service name"),
            "rename the directory using letters, digits, `-`, `_` and `.`",
        );
    }

    let mut raw = if manifest.is_file() {
        let read = envfile::read_bounded(&manifest, envfile::MAX_FILE).and_then(|bytes| {
            String::from_utf8(bytes).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "stream did not contain valid UTF-8",
                )
            })
        });
        match read {
            Ok(text) => parse_raw(&text, &mut c),
            Err(e) => {
                c.push("-", format!("cannot read: {e}"), "make the file readable");
                None
            }
        }
    } else if has_loader || embedded_loader.is_some() {
        Some(RawService::default())
    } else {
        c.push(
            "-",
            "missing: a service directory needs service.toml or loader.wasm",
            "add a service.toml with `command = [...]`, or remove the directory",
        );
        None
    };

    let taken = raw.as_mut().map(|raw| replicas::take(raw, &mut c));
    let service = raw.map(|raw| {
        let mut service = resolve::resolve(
            &name,
            dir,
            raw,
            has_loader,
            embedded_loader.as_deref(),
            &mut c,
        );
        replicas::finish(taken.unwrap_or_default(), &mut service, &mut c);
        service
    });
    (service, c.problems, c.warnings)
}

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;
