//! A service's identity applied to its spawn: who the child runs as and its
//! umask ([`apply`], for every command run as the service), and what each
//! start prepares for it ([`prepare_start`]): its credentials directory,
//! and a warning when its user cannot reach what Vigil made for it.
//!
//! Credentials (systemd's `LoadCredential=`): at every start each source
//! file is copied afresh into `<root>/<service>/<name>`, the directory
//! 0700 and the files 0400, both owned by the service's user, and the
//! child gets the directory as `$CREDENTIALS_DIRECTORY`. The secret itself
//! is never put in the environment, the journal, the status or a log: only
//! names and paths are. `<root>` is on the runtime file system (`/run`
//! for root, `$XDG_RUNTIME_DIR` otherwise), which is a tmpfs on most
//! systems, so that copies of secrets do not outlive a reboot on disk; it
//! is removed when Vigil stops, a service's own directory when it is
//! removed or stops having credentials.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Options, spawn};
use crate::config::{RunAs, Service};

/// Largest credential copied (systemd's limit too): a credential is a
/// secret, not a data set.
pub const MAX_CREDENTIAL: u64 = 1 << 20;

/// Set `command` to run as the service's `user`/`group` with its `umask`.
/// As root only: a non-root Vigil only accepts a manifest whose user and
/// group are its own (validation), which needs no change.
pub fn apply(service: &Service, command: &mut spawn::Command) {
    let id = &service.identity;
    command.umask = id.umask;
    command.run_as = id
        .run_as
        .as_ref()
        .filter(|_| nix::unistd::geteuid().is_root())
        .map(|r| spawn::RunAs {
            uid: r.uid,
            gid: r.gid,
            groups: r.groups.clone(),
        });
}

/// Where this Vigil keeps credentials directories: one per state
/// directory (so two Vigils never share one), on the runtime file system.
pub fn credentials_root(state_dir: &Path) -> PathBuf {
    let runtime = if nix::unistd::geteuid().is_root() {
        Some(PathBuf::from("/run/vigil"))
    } else {
        std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|d| !d.is_empty())
            .map(|d| PathBuf::from(d).join("vigil"))
    };
    match runtime {
        Some(dir) => dir.join("credentials").join(format!(
            "{:016x}",
            fnv1a(state_dir.as_os_str().as_encoded_bytes())
        )),
        None => state_dir.join("credentials"),
    }
}

/// FNV-1a, 64 bits: a name for a state directory that is stable across
/// Vigil versions (std's hasher is not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Prepare one start of `service` run by `command`: copy its credentials
/// and point `$CREDENTIALS_DIRECTORY` at them. An error fails the start
/// (a spawn error, the restart policy applies); the warnings are for the
/// journal.
pub fn prepare_start(
    options: &Options,
    service: &Service,
    command: &mut spawn::Command,
) -> Result<Vec<String>, String> {
    let mut warnings = Vec::new();
    let run_as = service.identity.run_as.as_ref();
    if options.credentials_dir.is_none() && !service.identity.credentials.is_empty() {
        return Err("credentials: this supervisor has no credentials directory".into());
    }
    if let Some(root) = &options.credentials_dir {
        let dir = root.join(&service.name);
        command.env.retain(|(k, _)| k != "CREDENTIALS_DIRECTORY");
        if service.identity.credentials.is_empty() {
            remove_dir(&dir);
        } else {
            install_credentials(root, &dir, service, command.run_as.as_ref())?;
            command
                .env
                .push(("CREDENTIALS_DIRECTORY".into(), dir.display().to_string()));
            if let Some(w) = run_as.and_then(|r| unreachable_by(&dir, r)) {
                warnings.push(format!("credentials directory: {w}"));
            }
        }
    }
    if let (Some(socket), Some(r), Some(_)) = (&options.notify_socket, run_as, service.notify)
        && let Some(w) = unreachable_by(socket, r)
    {
        warnings.push(format!("notify socket: {w}"));
    }
    Ok(warnings)
}

/// Copy every credential of `service` into a fresh `dir` (under `root`).
fn install_credentials(
    root: &Path,
    dir: &Path,
    service: &Service,
    owner: Option<&spawn::RunAs>,
) -> Result<(), String> {
    let at = |what: &str, path: &Path, e: std::io::Error| {
        format!("credentials: cannot {what} {}: {e}", path.display())
    };
    std::fs::create_dir_all(root).map_err(|e| at("create", root, e))?;
    // Search-only for others: the service's user must pass through to its
    // own directory, nobody may list which services have credentials.
    // (`<runtime>/vigil/credentials/<hash>`: the two last are Vigil's.)
    let parent = root
        .parent()
        .filter(|p| p.file_name().is_some_and(|n| n == "credentials"));
    for d in [Some(root), parent].into_iter().flatten() {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711))
            .map_err(|e| at("chmod", d, e))?;
    }
    remove_dir(dir);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|e| at("create", dir, e))?;
    let chown = |path: &Path| match owner {
        Some(o) => std::os::unix::fs::chown(path, Some(o.uid), Some(o.gid))
            .map_err(|e| at("chown", path, e)),
        None => Ok(()),
    };
    for cred in &service.identity.credentials {
        let mut secret = Vec::new();
        std::fs::File::open(&cred.source)
            .and_then(|f| f.take(MAX_CREDENTIAL + 1).read_to_end(&mut secret))
            .map_err(|e| {
                format!(
                    "credential `{}`: cannot read {}: {e}",
                    cred.name,
                    cred.source.display()
                )
            })?;
        if secret.len() as u64 > MAX_CREDENTIAL {
            return Err(format!(
                "credential `{}`: {} is larger than 1MiB",
                cred.name,
                cred.source.display()
            ));
        }
        let dest = dir.join(&cred.name);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&dest)
            .and_then(|mut f| f.write_all(&secret))
            .map_err(|e| at("write", &dest, e))?;
        chown(&dest)?;
    }
    // Last: the user sees the directory only once it is complete.
    chown(dir)
}

fn remove_dir(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("cannot remove {}: {e}", dir.display());
    }
}

/// Remove `service`'s credentials (it was removed, or Vigil stops).
pub fn remove_credentials(options: &Options, service: &str) {
    if let Some(root) = &options.credentials_dir {
        remove_dir(&root.join(service));
    }
}

/// Remove every credentials directory of this Vigil: at start (what a
/// crashed Vigil left) and once every service is stopped.
pub fn remove_all_credentials(root: &Path) {
    remove_dir(root);
}

/// Why `run_as` cannot reach `path`, if it cannot: the first directory on
/// the way that does not let it search (by mode bits; an ACL that allows
/// it is not seen, hence only a warning).
pub fn unreachable_by(path: &Path, run_as: &RunAs) -> Option<String> {
    if run_as.uid == 0 {
        return None;
    }
    for dir in path.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(dir) else {
            continue;
        };
        let mode = meta.mode();
        let bit = if meta.uid() == run_as.uid {
            0o100
        } else if run_as.groups.contains(&meta.gid()) || meta.gid() == run_as.gid {
            0o010
        } else {
            0o001
        };
        if mode & bit == 0 {
            return Some(format!(
                "user {} cannot reach {}: {} (mode {:o}) does not let it search; \
                 chmod o+x it or choose a --state-dir it can reach",
                run_as.user,
                path.display(),
                dir.display(),
                mode & 0o7777
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credentials_root_per_state_directory() {
        let a = credentials_root(Path::new("/var/lib/vigil"));
        let b = credentials_root(Path::new("/srv/other"));
        assert_ne!(a, b);
        assert_eq!(a, credentials_root(Path::new("/var/lib/vigil")));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    }

    #[test]
    fn reachability_goes_by_search_bits() {
        let scratch = crate::test_support::TempDir::new("reach");
        let closed = scratch.0.join("closed");
        let inside = closed.join("inside");
        std::fs::create_dir_all(&inside).expect("dirs");
        std::fs::set_permissions(&scratch.0, std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let nobody = RunAs {
            user: "nobody".into(),
            uid: 65534,
            gid: 65534,
            groups: vec![65534],
            home: None,
        };
        let why = unreachable_by(&inside.join("file"), &nobody);
        // The temp dir's own parents may already be closed (/root): some
        // directory is named, and the closed one when they are open.
        assert!(why.is_some(), "closed dir not seen");
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o711)).expect("chmod");
        let root_reach = RunAs { uid: 0, ..nobody };
        assert_eq!(unreachable_by(&inside.join("file"), &root_reach), None);
    }
}
