//! How a service's process is set up beyond its argv: who it runs as
//! (`user`, `group`, `umask`), extra environment from files (`env-file`),
//! secrets handed over as files (`credentials`), and how its output is
//! kept (`[log]`).
//!
//! Users and groups are looked up once, when the manifest is loaded, so
//! that a typo is a validation error naming the field and so that the
//! child (between fork and exec, where only async-signal-safe calls are
//! allowed) gets plain numbers. Env files are read at load (to report
//! syntax errors and, on reload, to see that their content changed) and
//! again at every start (the child gets the file as it is then).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group, Uid, User};
use serde::Deserialize;

use super::envfile;
use super::problems::Collector;
use crate::units::parse_size;

/// `[log]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawLog {
    pub timestamps: Option<bool>,
    pub format: Option<String>,
    pub max_size: Option<String>,
    pub keep: Option<u32>,
}

/// Who a service's child runs as, resolved from the user database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// The user's name (from passwd), or its uid when it has no entry.
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the user's memberships from the group
    /// database (initgroups), with `gid`.
    pub groups: Vec<u32>,
    /// From passwd: given to the child as `HOME`.
    pub home: Option<PathBuf>,
}

/// One `env-file` entry.
#[derive(Clone, PartialEq, Eq)]
pub struct EnvFile {
    /// Absolute (a relative entry starts at the service directory).
    pub path: PathBuf,
    /// Written with a leading `-`: a missing file is skipped.
    pub optional: bool,
    /// Its assignments when the manifest was loaded (`None`: an optional
    /// file that was missing). Compared on reload: an edited env file is a
    /// changed environment, so the service restarts.
    pub loaded: Option<Vec<(String, String)>>,
}

impl fmt::Debug for EnvFile {
    /// Without the values: an env file may hold secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvFile")
            .field("path", &self.path)
            .field("optional", &self.optional)
            .field("vars", &self.loaded.as_ref().map(Vec::len))
            .finish()
    }
}

/// Why an env file could not be used at a start.
#[derive(Debug, thiserror::Error)]
pub enum EnvFileError {
    #[error("env-file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("env-file {}:{}: {}", path.display(), error.line, error.what)]
    Parse {
        path: PathBuf,
        error: envfile::ParseError,
    },
}

impl EnvFile {
    /// Read and parse the file now; `Ok(None)` for a missing optional one.
    pub fn read(&self) -> Result<Option<Vec<(String, String)>>, EnvFileError> {
        let text = match envfile::read_bounded(&self.path, envfile::MAX_FILE) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if self.optional && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None);
            }
            Err(source) => {
                return Err(EnvFileError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        envfile::parse(&text)
            .map(Some)
            .map_err(|error| EnvFileError::Parse {
                path: self.path.clone(),
                error,
            })
    }
}

/// One `credentials` entry: `name = "source path"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The file's name in `$CREDENTIALS_DIRECTORY`.
    pub name: String,
    /// Absolute (a relative one starts at the service directory).
    pub source: PathBuf,
}

/// `user`, `group`, `umask`, `env-file` and `credentials` of a service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// `None`: the child runs as Vigil does.
    pub run_as: Option<RunAs>,
    /// `None`: Vigil's own umask is inherited.
    pub umask: Option<u32>,
    pub env_files: Vec<EnvFile>,
    pub credentials: Vec<Credential>,
}

/// The output format of a service's log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `TIME STREAM TEXT`, one line per line.
    #[default]
    Text,
    /// One JSON object per line: `{"time", "stream", "text"}`.
    Json,
}

/// `[log]` of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSpec {
    /// `None`: as `vigil run` says (`--no-timestamps`).
    pub timestamps: Option<bool>,
    pub format: LogFormat,
    /// Rotate the file once it reaches this size.
    pub max_size: u64,
    /// Rotated files kept (`NAME.1.log` is the newest).
    pub keep: u32,
}

/// Default `log.max-size`.
pub const DEFAULT_LOG_MAX_SIZE: u64 = 4 << 20;
/// Most rotated files `log.keep` allows (`vigil logs` reads this many).
pub const MAX_LOG_KEEP: u32 = 1000;

impl Default for LogSpec {
    /// What Vigil did before `[log]` existed: text, 4 MiB, one rotated file.
    fn default() -> Self {
        LogSpec {
            timestamps: None,
            format: LogFormat::Text,
            max_size: DEFAULT_LOG_MAX_SIZE,
            keep: 1,
        }
    }
}

/// The raw keys [`resolve_identity`] reads.
pub(super) struct RawIdentity {
    pub user: Option<String>,
    pub group: Option<String>,
    pub umask: Option<String>,
    pub env_file: Option<Vec<String>>,
    pub credentials: Option<BTreeMap<String, String>>,
}

/// `user`, `group`, `umask`, `env-file` and `credentials`.
pub(super) fn resolve_identity(dir: &Path, raw: RawIdentity, c: &mut Collector<'_>) -> Identity {
    Identity {
        run_as: resolve_run_as(raw.user.as_deref(), raw.group.as_deref(), c),
        umask: raw.umask.as_deref().and_then(|s| {
            parse_umask(s)
                .map_err(|e| c.push("umask", e, "write octal digits, e.g. \"0027\""))
                .ok()
        }),
        env_files: resolve_env_files(dir, raw.env_file.unwrap_or_default(), c),
        credentials: resolve_credentials(dir, raw.credentials.unwrap_or_default(), c),
    }
}

/// `"0027"`, `"027"` or `"27"`: an octal file-mode mask.
pub fn parse_umask(s: &str) -> Result<u32, String> {
    let digits = s.trim();
    match u32::from_str_radix(digits, 8) {
        Ok(mask) if mask <= 0o777 && !digits.starts_with('+') => Ok(mask),
        _ => Err(format!("`{s}` is not an octal umask between 0000 and 0777")),
    }
}

/// A user or group written as a name or a number.
fn numeric(s: &str) -> Option<u32> {
    s.parse().ok()
}

fn resolve_run_as(user: Option<&str>, group: Option<&str>, c: &mut Collector<'_>) -> Option<RunAs> {
    if user.is_none() && group.is_none() {
        return None;
    }
    let entry = match user {
        None => None,
        Some(u) => {
            let found = match numeric(u) {
                Some(uid) => User::from_uid(Uid::from_raw(uid)),
                None => User::from_name(u),
            };
            match found {
                Ok(Some(entry)) => Some(entry),
                Ok(None) if numeric(u).is_some() => None,
                Ok(None) => {
                    c.push(
                        "user",
                        format!("no user `{u}` on this system"),
                        "create the user or fix the name (a uid works too, e.g. \"1000\")",
                    );
                    return None;
                }
                Err(e) => {
                    c.push(
                        "user",
                        format!("cannot look up `{u}`: {e}"),
                        "check the user database (nsswitch)",
                    );
                    return None;
                }
            }
        }
    };
    let gid = match group {
        None => match (&entry, user) {
            (Some(e), _) => e.gid.as_raw(),
            (None, Some(u)) => {
                c.push(
                    "group",
                    format!("uid {u} has no passwd entry, so no primary group"),
                    "set `group` too, e.g. group = \"nogroup\"",
                );
                return None;
            }
            (None, None) => return None,
        },
        Some(g) => {
            let found = match numeric(g) {
                Some(gid) => Group::from_gid(Gid::from_raw(gid)).map(|o| o.map(|g| g.gid)),
                None => Group::from_name(g).map(|o| o.map(|g| g.gid)),
            };
            match found {
                Ok(Some(gid)) => gid.as_raw(),
                Ok(None) if numeric(g).is_some() => numeric(g).unwrap_or_default(),
                Ok(None) => {
                    c.push(
                        "group",
                        format!("no group `{g}` on this system"),
                        "create the group or fix the name (a gid works too)",
                    );
                    return None;
                }
                Err(e) => {
                    c.push(
                        "group",
                        format!("cannot look up `{g}`: {e}"),
                        "check the group database (nsswitch)",
                    );
                    return None;
                }
            }
        }
    };
    let euid = nix::unistd::geteuid();
    let (name, uid, home) = match (&entry, user) {
        (Some(e), _) => (e.name.clone(), e.uid.as_raw(), Some(e.dir.clone())),
        (None, Some(u)) => (u.to_string(), numeric(u).unwrap_or_default(), None),
        // `group` alone: the user stays Vigil's.
        (None, None) => (
            User::from_uid(euid)
                .ok()
                .flatten()
                .map_or_else(|| euid.to_string(), |e| e.name),
            euid.as_raw(),
            None,
        ),
    };
    let groups = match (&entry, user) {
        (Some(e), Some(_)) => {
            let cname = std::ffi::CString::new(e.name.as_bytes()).unwrap_or_default();
            match nix::unistd::getgrouplist(&cname, Gid::from_raw(gid)) {
                Ok(list) => list.into_iter().map(Gid::as_raw).collect(),
                Err(e) => {
                    c.push(
                        "user",
                        format!("cannot list the groups of `{name}`: {e}"),
                        "check the group database (nsswitch)",
                    );
                    return None;
                }
            }
        }
        _ => vec![gid],
    };
    let run_as = RunAs {
        user: name,
        uid,
        gid,
        groups,
        home,
    };
    if !euid.is_root() && (uid != euid.as_raw() || gid != nix::unistd::getegid().as_raw()) {
        let field = if uid != euid.as_raw() {
            "user"
        } else {
            "group"
        };
        c.push(
            field,
            format!(
                "vigil runs as uid {euid}, not root: it cannot run a service as {} (uid {uid}, gid {gid})",
                run_as.user
            ),
            "run vigil as root, or remove `user`/`group` (the service then runs as vigil's user)",
        );
    }
    Some(run_as)
}

/// `env-file`: each read now for its syntax and its content.
fn resolve_env_files(dir: &Path, list: Vec<String>, c: &mut Collector<'_>) -> Vec<EnvFile> {
    let mut files = Vec::new();
    for (i, entry) in list.into_iter().enumerate() {
        let field = format!("env-file[{i}]");
        let (optional, path) = match entry.strip_prefix('-') {
            Some(p) => (true, p),
            None => (false, entry.as_str()),
        };
        if path.is_empty() {
            c.push(field, "empty path", "give a file, e.g. \".env\"");
            continue;
        }
        let mut file = EnvFile {
            path: dir.join(path),
            optional,
            loaded: None,
        };
        match file.read() {
            Ok(vars) => file.loaded = vars,
            Err(EnvFileError::Read { path, source }) => c.push(
                field,
                format!("cannot read {}: {source}", path.display()),
                "create it, fix the path (relative paths start at the service directory), \
                 or prefix it with `-` to make it optional",
            ),
            Err(EnvFileError::Parse { path, error }) => c.push(
                field,
                format!("{}:{}: {}", path.display(), error.line, error.what),
                "write KEY=VALUE lines (see docs/production.md, env files)",
            ),
        }
        files.push(file);
    }
    files
}

/// `credentials`: names that are plain file names; sources that exist
/// (only a warning: a secret may be provisioned after the manifest).
fn resolve_credentials(
    dir: &Path,
    table: BTreeMap<String, String>,
    c: &mut Collector<'_>,
) -> Vec<Credential> {
    let mut out = Vec::new();
    for (name, source) in table {
        let field = format!("credentials.{name}");
        if name.is_empty()
            || name == "."
            || name == ".."
            || name.contains(['/', '\0'])
            || name.len() > 255
        {
            c.push(
                field,
                format!("`{name}` cannot be a file name"),
                "use a plain name such as db-password",
            );
            continue;
        }
        if source.is_empty() || source.contains('\0') {
            c.push(field, "empty source path", "give the secret's file");
            continue;
        }
        let source = dir.join(source);
        if !source.is_file() {
            c.warn(
                field.clone(),
                format!("{} is not a readable file (yet)", source.display()),
                "create it before the service starts: a start without it fails",
            );
        }
        out.push(Credential { name, source });
    }
    out
}

/// `[log]`.
pub(super) fn resolve_log(raw: Option<RawLog>, c: &mut Collector<'_>) -> LogSpec {
    let mut spec = LogSpec::default();
    let Some(raw) = raw else { return spec };
    spec.timestamps = raw.timestamps;
    match raw.format.as_deref() {
        None | Some("text") => {}
        Some("json") => spec.format = LogFormat::Json,
        Some(other) => c.push(
            "log.format",
            format!("unknown log format `{other}`"),
            "use \"text\" or \"json\"",
        ),
    }
    if let Some(s) = raw.max_size.as_deref() {
        match parse_size(s) {
            Ok(n) if n >= 1024 => spec.max_size = n,
            Ok(_) => c.push("log.max-size", "below 1KiB", "use a size such as \"10MiB\""),
            Err(e) => c.push(
                "log.max-size",
                e.to_string(),
                "use a size such as \"10MiB\"",
            ),
        }
    }
    if let Some(keep) = raw.keep {
        if keep > MAX_LOG_KEEP {
            c.push(
                "log.keep",
                format!("{keep} rotated files is more than {MAX_LOG_KEEP}"),
                "keep fewer files, or make max-size larger",
            );
        } else {
            spec.keep = keep;
        }
    }
    spec
}

impl Identity {
    /// The variables the identity gives a child, below the env files and
    /// `env`: `USER`, `LOGNAME` and `HOME` of `user` (as login(1) and
    /// systemd's `User=` do), so a program does not look for its files in
    /// root's home.
    pub fn user_env(&self) -> Vec<(String, String)> {
        let Some(r) = &self.run_as else {
            return Vec::new();
        };
        let mut env = vec![
            ("USER".to_string(), r.user.clone()),
            ("LOGNAME".to_string(), r.user.clone()),
        ];
        if let Some(home) = &r.home {
            env.push(("HOME".to_string(), home.display().to_string()));
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umask_is_octal_and_bounded() {
        assert_eq!(parse_umask("0027"), Ok(0o027));
        assert_eq!(parse_umask("77"), Ok(0o077));
        assert_eq!(parse_umask("0777"), Ok(0o777));
        for bad in ["0o27", "1000", "8", "", "-1", "+22", "rw"] {
            assert!(parse_umask(bad).is_err(), "{bad}");
        }
    }
}
