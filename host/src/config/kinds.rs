//! Services that are not a directory: an executable file directly in the
//! checks directory (cronmon's "a service file is an executable").
//!
//! `DIR/backup.sh`, executable, is the service `backup`: its command is the
//! file itself, run from `DIR` with the default policy. A sidecar
//! `DIR/backup.toml` beside it may add any manifest key except `command`
//! and `shell` (the file is the command). A file without an execute bit is
//! not a service (a note, not an error), so `chmod -x` stops one.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::model::Service;
use super::problems::{Collector, Problem};
use super::raw::{RawService, parse_raw};
use super::resolve;

/// What identifies one version of an executable service's file: a new
/// inode (an atomic save, a `cp` over it, a new build) or a changed size
/// or mtime (an edit in place) is a new version, which a reload restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecStamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
}

impl ExecStamp {
    fn of(meta: &std::fs::Metadata) -> ExecStamp {
        ExecStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

/// Whether `path` is an executable service: a regular file (symlinks
/// followed) with any execute bit. Hidden files are never services.
pub(super) fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The service name of an entry of the checks directory: a directory's
/// name, or an executable's name without its extension (`backup.sh` ->
/// `backup`).
pub(super) fn service_name(path: &Path) -> String {
    let name = if path.is_dir() {
        path.file_name()
    } else {
        path.file_stem()
    };
    name.and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string()
}

/// The sidecar manifest of an executable: `DIR/NAME.toml`.
pub(super) fn sidecar(exe: &Path) -> PathBuf {
    let dir = exe.parent().unwrap_or(Path::new("."));
    dir.join(format!("{}.toml", service_name(exe)))
}

/// Two entries of the checks directory that would be the same service
/// (`web/` and `web.sh`, or `job.sh` and `job.py`): one problem each,
/// naming the other, since neither can be chosen silently.
pub(super) fn name_clashes(entries: &[PathBuf]) -> Vec<Problem> {
    let mut by_name: BTreeMap<String, Vec<&PathBuf>> = BTreeMap::new();
    for e in entries {
        by_name.entry(service_name(e)).or_default().push(e);
    }
    let mut problems = Vec::new();
    for (name, paths) in by_name {
        if paths.len() < 2 {
            continue;
        }
        for p in &paths {
            let others: Vec<String> = paths
                .iter()
                .filter(|o| o != &p)
                .map(|o| o.display().to_string())
                .collect();
            problems.push(Problem {
                path: (*p).clone(),
                field: "-".into(),
                problem: format!(
                    "two entries are the service `{name}`: {} and {}",
                    p.display(),
                    others.join(", ")
                ),
                fix: "rename one of them (an executable's service name is its file name without the extension)".into(),
            });
        }
    }
    problems
}

/// Load an executable service: its sidecar (if any) resolved with the
/// file as the command. Same contract as `config::load`.
pub(super) fn load_executable(exe: &Path) -> (Option<Service>, Vec<Problem>, Vec<Problem>) {
    let exe = std::path::absolute(exe).unwrap_or_else(|_| exe.to_path_buf());
    let name = service_name(&exe);
    let dir = exe
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let manifest = sidecar(&exe);
    let has_sidecar = manifest.is_file();
    let mut c = Collector::new(if has_sidecar { &manifest } else { &exe });
    if !super::valid_name(&name) {
        c.push(
            "-",
            format!("executable `{}` is not a valid service name", exe.display()),
            "rename the file using letters, digits, `-`, `_` and `.`",
        );
    }
    let meta = match std::fs::metadata(&exe) {
        Ok(m) => m,
        Err(e) => {
            c.push(
                "-",
                format!("cannot read it: {e}"),
                "make the file readable",
            );
            return (None, c.problems, c.warnings);
        }
    };
    let raw = if has_sidecar {
        match std::fs::read_to_string(&manifest) {
            Ok(text) => parse_raw(&text, &mut c),
            Err(e) => {
                c.push("-", format!("cannot read: {e}"), "make the file readable");
                None
            }
        }
    } else {
        Some(RawService::default())
    };
    let service = raw.map(|mut raw| {
        for (key, set) in [
            ("command", raw.command.is_some()),
            ("shell", raw.shell.is_some()),
        ] {
            if set {
                c.push(
                    key,
                    format!(
                        "`{key}` conflicts with the executable {}, which is the command",
                        exe.display()
                    ),
                    format!(
                        "remove `{key}` from {}, or make the service a directory",
                        manifest.display()
                    ),
                );
            }
        }
        raw.shell = None;
        raw.command = Some(vec![exe.display().to_string()]);
        let taken = super::replicas::take(&mut raw, &mut c);
        let mut service = resolve::resolve(&name, &dir, raw, false, None, &mut c);
        service.executable = Some(ExecStamp::of(&meta));
        super::replicas::finish(taken, &mut service, &mut c);
        service
    });
    (service, c.problems, c.warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_drop_one_extension_and_clashes_name_both() {
        let scratch = crate::test_support::TempDir::new("kinds-names");
        let dir = scratch.0.clone();
        std::fs::create_dir_all(dir.join("web")).expect("mkdir");
        std::fs::write(dir.join("web.sh"), "#!/bin/sh\n").expect("write");
        std::fs::write(dir.join("a.b.py"), "").expect("write");
        assert_eq!(service_name(&dir.join("web")), "web");
        assert_eq!(service_name(&dir.join("web.sh")), "web");
        assert_eq!(service_name(&dir.join("a.b.py")), "a.b");
        let clashes = name_clashes(&[dir.join("web"), dir.join("web.sh"), dir.join("a.b.py")]);
        assert_eq!(clashes.len(), 2, "{clashes:?}");
        assert!(clashes[0].problem.contains("web.sh") && clashes[0].problem.contains("/web "));
    }
}
