//! Hot reload: inotify on the checks directory and every service
//! directory, with a quiet-period debounce so that an editor's atomic save
//! (write temp, rename over) is one change.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::sync::mpsc;

use crate::config::{Problem, ValidationReport};
use crate::journal::Event as Journal;

/// A batch of changes, after the quiet period.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Changes {
    /// Service directories whose files changed (names).
    pub services: BTreeSet<String>,
    /// Entries of the checks directory itself were added or removed.
    pub top_level: bool,
}

/// Journal a refused reload: each service's problems as a warning under
/// that service (its manifest, its components), then one line for Vigil
/// naming them (with any problem that is no service's, such as an
/// unreadable checks directory).
pub fn journal_refusal(sup: &super::Supervisor, dir: &Path, report: &ValidationReport) {
    let mut by_service: BTreeMap<String, Vec<&Problem>> = BTreeMap::new();
    let mut general = Vec::new();
    for problem in &report.problems {
        let service = problem
            .path
            .strip_prefix(dir)
            .ok()
            .and_then(|rest| rest.components().next())
            .and_then(|c| c.as_os_str().to_str())
            .map(str::to_string);
        match service {
            Some(name) => by_service.entry(name).or_default().push(problem),
            None => general.push(problem),
        }
    }
    let lines = |problems: &[&Problem]| {
        problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    };
    for (name, problems) in &by_service {
        let message = format!(
            "reload refused, keeping the running version: {}",
            lines(problems)
        );
        sup.journal(Some(name), &Journal::Warning { message });
    }
    let mut message = String::from("reload refused, keeping the running version");
    if !by_service.is_empty() {
        let names: Vec<&str> = by_service.keys().map(String::as_str).collect();
        message.push_str(&format!(": problems in {}", names.join(", ")));
    }
    if !general.is_empty() {
        message.push_str(&format!(": {}", lines(&general)));
    }
    sup.journal(None, &Journal::Warning { message });
}

/// Watches a checks directory; dropping it stops the watch thread (at the
/// next event).
pub struct Watcher {
    rx: mpsc::UnboundedReceiver<Option<String>>,
    quiet: Duration,
}

fn flags() -> AddWatchFlags {
    AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_ATTRIB
}

/// The checks directory itself: its entries, and its own move or removal.
fn top_flags() -> AddWatchFlags {
    flags() | AddWatchFlags::IN_MOVE_SELF | AddWatchFlags::IN_DELETE_SELF
}

/// The checks directory's parent: entries that come and go (filtered to
/// the checks directory's name).
fn parent_flags() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_ONLYDIR
}

impl Watcher {
    /// Start watching `dir`. `quiet` is the debounce period.
    pub fn new(dir: &Path, quiet: Duration) -> nix::Result<Watcher> {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC)?;
        let mut watches: HashMap<WatchDescriptor, Option<String>> = HashMap::new();
        let top_wd = inotify.add_watch(dir, top_flags())?;
        watches.insert(top_wd, None);
        let mut top = Some(top_wd);
        add_service_watches(&inotify, dir, &mut watches);
        // A watch follows its directory's inode: when the checks directory
        // is replaced (moved away, a copy moved in, as a deploy does), the
        // watch would stay on the old one and no new service directory
        // would ever be seen. The parent tells when the name comes back.
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let parent_wd = inotify.add_watch(parent, parent_flags()).ok();
        let (tx, rx) = mpsc::unbounded_channel();
        let dir: PathBuf = dir.to_path_buf();
        std::thread::Builder::new()
            .name("vigil-watch".into())
            .spawn(move || {
                loop {
                    let events = match inotify.read_events() {
                        Ok(e) => e,
                        Err(nix::errno::Errno::EINTR) => continue,
                        Err(e) => {
                            tracing::warn!("inotify: {e}; hot reload stops");
                            return;
                        }
                    };
                    for event in events {
                        if Some(event.wd) == parent_wd {
                            if event.name.as_deref() != dir.file_name() {
                                continue;
                            }
                            // The checks directory's name came or went: watch
                            // whatever it names now, and rescan.
                            if let Some(old) = top.take() {
                                let _ = inotify.rm_watch(old);
                                watches.remove(&old);
                            }
                            if let Ok(wd) = inotify.add_watch(&dir, top_flags()) {
                                watches.insert(wd, None);
                                top = Some(wd);
                                add_service_watches(&inotify, &dir, &mut watches);
                            }
                            if tx.send(None).is_err() {
                                return;
                            }
                            continue;
                        }
                        if Some(event.wd) == top
                            && event.mask.intersects(
                                AddWatchFlags::IN_MOVE_SELF
                                    | AddWatchFlags::IN_DELETE_SELF
                                    | AddWatchFlags::IN_IGNORED,
                            )
                        {
                            // Moved or deleted: it no longer is the checks
                            // directory (the parent's event says what is).
                            if let Some(old) = top.take() {
                                let _ = inotify.rm_watch(old);
                                watches.remove(&old);
                            }
                            continue;
                        }
                        let owner = watches.get(&event.wd).cloned().flatten();
                        // Inside a service directory only the manifest and
                        // components matter: a service writing its own files
                        // there (a heartbeat, a pid file) is not a change.
                        let name = event.name.as_deref().and_then(|n| n.to_str());
                        if owner.is_some() && !name.is_some_and(is_service_file) {
                            continue;
                        }
                        if owner.is_none() {
                            // A new service directory: watch it too.
                            add_service_watches(&inotify, &dir, &mut watches);
                        }
                        if tx.send(owner).is_err() {
                            return;
                        }
                    }
                }
            })
            .map_err(|_| nix::errno::Errno::EAGAIN)?;
        Ok(Watcher { rx, quiet })
    }

    /// The next batch of changes: waits for a first change, then until
    /// nothing changed for the quiet period. `None` when watching stopped.
    pub async fn next(&mut self) -> Option<Changes> {
        let mut changes = Changes::default();
        let first = self.rx.recv().await?;
        record(&mut changes, first);
        loop {
            match tokio::time::timeout(self.quiet, self.rx.recv()).await {
                Ok(Some(owner)) => record(&mut changes, owner),
                Ok(None) => return Some(changes),
                Err(_) => return Some(changes),
            }
        }
    }
}

/// Files whose change can change a service: its manifest and components.
fn is_service_file(name: &str) -> bool {
    name == crate::config::MANIFEST || name.ends_with(".wasm")
}

fn record(changes: &mut Changes, owner: Option<String>) {
    match owner {
        Some(name) => {
            changes.services.insert(name);
        }
        None => changes.top_level = true,
    }
}

fn add_service_watches(
    inotify: &Inotify,
    dir: &Path,
    watches: &mut HashMap<WatchDescriptor, Option<String>>,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if !path.is_dir() || name.starts_with('.') {
            continue;
        }
        // Adding a watch twice returns the same descriptor.
        if let Ok(wd) = inotify.add_watch(&path, flags()) {
            watches.insert(wd, Some(name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_atomic_save_is_one_change() {
        let scratch = crate::test_support::TempDir::new("watch");
        let dir = scratch.0.clone();
        std::fs::create_dir_all(dir.join("web")).expect("mkdir");
        std::fs::write(dir.join("web/service.toml"), "command = [\"true\"]\n").expect("write");
        let mut w = Watcher::new(&dir, Duration::from_millis(150)).expect("watch");
        // Editor-style save: write a temp file, rename it over the original.
        std::fs::write(dir.join("web/.service.toml.swp"), "command = [\"false\"]\n")
            .expect("write");
        std::fs::rename(
            dir.join("web/.service.toml.swp"),
            dir.join("web/service.toml"),
        )
        .expect("rename");
        let changes = tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .expect("in time")
            .expect("changes");
        assert_eq!(changes.services, BTreeSet::from(["web".to_string()]));
        assert!(!changes.top_level);
        // Nothing more arrives for that save.
        assert!(
            tokio::time::timeout(Duration::from_millis(400), w.next())
                .await
                .is_err()
        );
        // A new service directory is a top-level change, and is watched.
        std::fs::create_dir_all(dir.join("api")).expect("mkdir");
        let changes = tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .expect("in time")
            .expect("changes");
        assert!(changes.top_level);
        std::fs::write(dir.join("api/service.toml"), "command = [\"true\"]\n").expect("write");
        let changes = tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .expect("in time")
            .expect("changes");
        assert!(changes.services.contains("api"), "{changes:?}");
    }

    #[tokio::test]
    async fn files_a_service_writes_in_its_directory_are_not_changes() {
        let scratch = crate::test_support::TempDir::new("watch-own");
        let dir = scratch.0.clone();
        std::fs::create_dir_all(dir.join("worker")).expect("mkdir");
        std::fs::write(dir.join("worker/service.toml"), "command = [\"true\"]\n").expect("write");
        let mut w = Watcher::new(&dir, Duration::from_millis(100)).expect("watch");
        std::fs::write(dir.join("worker/heartbeat"), "1").expect("write heartbeat");
        std::fs::write(dir.join("worker/check.wasm"), "x").expect("write component");
        let changes = tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .expect("in time")
            .expect("changes");
        assert_eq!(changes.services, BTreeSet::from(["worker".to_string()]));
        // Only the component counted: after it, the heartbeat alone is quiet.
        std::fs::write(dir.join("worker/heartbeat"), "2").expect("write heartbeat");
        assert!(
            tokio::time::timeout(Duration::from_millis(400), w.next())
                .await
                .is_err(),
            "a heartbeat write was taken for a change"
        );
    }
}
