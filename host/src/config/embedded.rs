//! Components carried by the service's own binary (`.vigil.components`,
//! see `wasm/embedded.rs`): `check = "embedded:ROLE"`, and a service
//! directory holding only an executable that carries a loader.
//!
//! The binary is the program of the service's command, found as exec
//! finds it (a path with `/` from `cwd`, else Vigil's `PATH`). Its section
//! is read when the manifest is loaded, so a malformed one or a missing
//! role refuses the start like any other manifest error, naming the file
//! and the role; that the component loads and fits its world is
//! `vigil validate`'s and the engine's job, as for a `.wasm` file.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::problems::Collector;
use crate::wasm::CheckSource;
use crate::wasm::embedded::{self, elf};

/// The prefix of a check reference to an embedded component.
pub const PREFIX: &str = "embedded:";

/// The binary a service's embedded components come from, as it was when
/// the manifest was loaded: a new build (another inode, size or
/// modification time) is a changed command on reload, so the child is
/// restarted (or replaced, when it holds sockets) with the new program and
/// its new checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramBuild {
    pub path: PathBuf,
    /// `dev:ino:size:mtime`, or `None` when it could not be read.
    pub identity: Option<String>,
}

impl ProgramBuild {
    pub fn of(path: &Path) -> ProgramBuild {
        let identity = std::fs::metadata(path).ok().map(|m| {
            format!(
                "{}:{}:{}:{}.{:09}",
                m.dev(),
                m.ino(),
                m.size(),
                m.mtime(),
                m.mtime_nsec()
            )
        });
        ProgramBuild {
            path: path.to_path_buf(),
            identity,
        }
    }
}

/// Where exec finds `program`: relative to `cwd` when it has a `/`, else
/// the first executable of that name in Vigil's `PATH`.
pub(super) fn program_path(program: &str, cwd: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = cwd.join(program);
        return executable(&path).then(|| std::path::absolute(&path).unwrap_or(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

/// `check = "embedded:ROLE"` (at `field`), from `program`, the service
/// command's resolved program (`None`: it has none, or it is not found).
pub(super) fn embedded_ref(
    s: &str,
    program: Option<&Path>,
    shell: bool,
    field: &str,
    c: &mut Collector<'_>,
) -> CheckSource {
    let role = s.strip_prefix(PREFIX).unwrap_or(s).to_string();
    if !vigil_embed::valid_role(&role) {
        c.push(
            field,
            format!("`{s}` is not an embedded role"),
            "use e.g. \"embedded:readiness\" (a-z, 0-9, - and _)",
        );
    }
    let Some(binary) = program else {
        let fix =
            "set `command = [\"path/to/binary\", ...]` to the binary that carries the component";
        if shell {
            c.push(
                field,
                format!("`{s}`: a `shell` service runs /bin/sh, which carries no components"),
                fix,
            );
        } else {
            // A program not installed yet is a runtime condition of this
            // service (its spawn fails), as for any command: a warning.
            c.warn(
                field,
                format!("`{s}`: the service's command names no program that exists"),
                fix,
            );
        }
        return CheckSource::Embedded {
            binary: PathBuf::new(),
            role,
        };
    };
    if let Err(problem) = has_role(binary, &role) {
        c.push(field, problem, fix_for(binary));
    }
    CheckSource::Embedded {
        binary: binary.to_path_buf(),
        role,
    }
}

fn fix_for(binary: &Path) -> String {
    format!(
        "embed it: `vigil embed {} --check ROLE=component.wasm` (or rebuild with vigil-embed); `vigil inspect {}` lists what it carries",
        binary.display(),
        binary.display()
    )
}

/// Whether `binary` carries a well-formed section with `role`; the problem
/// in words (naming the file and the role) when not.
fn has_role(binary: &Path, role: &str) -> Result<(), String> {
    let section = elf::read_binary(binary).map_err(|err| match err {
        elf::BinaryError::Section { path, error } => format!(
            "{}: malformed {} section (embedded `{role}`): {error}",
            path.display(),
            embedded::SECTION
        ),
        other => other.to_string(),
    })?;
    match section.index.get(role) {
        Some(_) => Ok(()),
        None => Err(elf::BinaryError::MissingRole {
            path: binary.to_path_buf(),
            role: role.to_string(),
            roles: section
                .index
                .roles()
                .into_iter()
                .map(str::to_string)
                .collect(),
        }
        .to_string()),
    }
}

/// The executable in `dir` that carries an embedded loader, for a
/// directory without service.toml or loader.wasm: `Ok(None)` when none
/// does, an error (in words) when several do or one's section is
/// malformed. Only regular executable ELF files are read, headers first.
pub fn loader_binary(dir: &Path) -> Result<Option<PathBuf>, String> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(None);
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .filter(|p| elf::is_elf(p))
        .collect();
    paths.sort();
    let mut found = Vec::new();
    for path in paths {
        // Without a section, or an ELF file object cannot read: not a
        // service.
        if let Ok(Some(section)) = elf::read_section(&path) {
            match embedded::parse_section(&section) {
                Ok(index) if index.get("loader").is_some() => found.push(path),
                Ok(_) => {}
                Err(error) => {
                    return Err(format!(
                        "{}: malformed {} section (embedded `loader`): {error}",
                        path.display(),
                        embedded::SECTION
                    ));
                }
            }
        }
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(format!(
            "several executables carry an embedded loader ({})",
            found
                .iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}
