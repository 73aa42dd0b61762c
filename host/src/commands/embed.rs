//! `vigil embed`: put checks and a loader into a service's ELF binary;
//! and `vigil inspect BINARY`: list what a binary carries.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Exit;
use crate::cli::EmbedArgs;
use crate::untrusted;
use crate::wasm::embedded::{self, elf};
use crate::wasm::{CheckSource, Engine, EngineOptions, inspect};

pub async fn run(args: EmbedArgs) -> Exit {
    match embed(&args).await {
        Ok(written) => {
            println!("{}", untrusted::line(&written));
            Exit::Ok
        }
        Err(problem) => {
            eprintln!("vigil embed: {}", untrusted::line(&problem));
            Exit::Usage
        }
    }
}

/// Everything `vigil embed` does; the line to print, or what went wrong.
async fn embed(args: &EmbedArgs) -> Result<String, String> {
    let mut given: Vec<(String, PathBuf)> = Vec::new();
    for check in &args.checks {
        let Some((role, file)) = check.split_once('=') else {
            return Err(format!(
                "--check {check}: give ROLE=FILE.wasm, e.g. readiness=ready.wasm"
            ));
        };
        if role == "loader" {
            return Err("--check loader=...: the loader is given with --loader".into());
        }
        given.push((role.to_string(), PathBuf::from(file)));
    }
    if let Some(loader) = &args.loader {
        given.push(("loader".into(), loader.clone()));
    }
    if given.is_empty() {
        return Err(
            "nothing to embed: give --check ROLE=FILE.wasm and/or --loader FILE.wasm".into(),
        );
    }
    for (i, (role, _)) in given.iter().enumerate() {
        if !vigil_embed::valid_role(role) {
            return Err(format!(
                "`{role}` is not a role name (1-32 bytes of a-z, 0-9, - and _)"
            ));
        }
        if given[..i].iter().any(|(r, _)| r == role) {
            return Err(format!("role `{role}` given twice"));
        }
    }

    // Each component loads as its role's world before anything is written
    // (compiled once, into the cache the running vigil then hits).
    let engine = Engine::one_shot(EngineOptions::default()).map_err(|e| e.to_string())?;
    let mut components: Vec<(String, Vec<u8>)> = Vec::new();
    for (role, file) in &given {
        let source = CheckSource::File(file.clone());
        let loaded = if role == "loader" {
            engine.load_loader(&source).await.map(drop)
        } else {
            engine.load_checker(&source).await.map(drop)
        };
        loaded.map_err(|err| format!("{role}: {err}"))?;
        let bytes = std::fs::read(file).map_err(|err| format!("{}: {err}", file.display()))?;
        components.push((role.clone(), bytes));
    }

    let binary = &args.binary;
    let original = std::fs::read(binary).map_err(|err| format!("{}: {err}", binary.display()))?;
    // Roles it carries and that are not given are kept.
    let mut kept = Vec::new();
    match elf::read_section(binary) {
        Ok(Some(section)) => match embedded::parse_section(&section) {
            Ok(index) => {
                for entry in index.entries {
                    if !components.iter().any(|(r, _)| *r == entry.role) {
                        kept.push(entry.role.clone());
                        components.push((entry.role, section[entry.range].to_vec()));
                    }
                }
            }
            Err(err) => eprintln!(
                "vigil embed: {}: its {} section is malformed ({err}); replacing it whole",
                binary.display(),
                embedded::SECTION
            ),
        },
        Ok(None) => {}
        Err(err) => return Err(err.to_string()),
    }
    let parts: Vec<(&str, &[u8])> = components
        .iter()
        .map(|(r, b)| (r.as_str(), b.as_slice()))
        .collect();
    let section = embedded::encode(&parts).map_err(|e| e.to_string())?;
    let written = elf::write_section(&original, &section)
        .map_err(|err| format!("{}: {err}", binary.display()))?;
    let out = args.output.as_deref().unwrap_or(binary);
    let mode = std::fs::metadata(binary)
        .map_err(|err| format!("{}: {err}", binary.display()))?
        .permissions()
        .mode();
    write_atomically(out, &written, mode).map_err(|err| format!("{}: {err}", out.display()))?;
    let roles: Vec<&str> = components.iter().map(|(r, _)| r.as_str()).collect();
    let kept = if kept.is_empty() {
        String::new()
    } else {
        format!(" (kept: {})", kept.join(", "))
    };
    Ok(format!(
        "{}: carries {}{kept}; {} bytes in {}",
        out.display(),
        roles.join(", "),
        section.len(),
        embedded::SECTION
    ))
}

/// Writes `bytes` to a temporary file beside `path` (mode `mode`,
/// fsynced) and renames it over `path`: a reader (or the kernel running
/// the binary) sees the old file or the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("no file name"))?;
    let tmp = dir.join(format!(
        ".{}.vigil-embed.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = write_then_rename(&tmp, path, bytes, mode);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_then_rename(tmp: &Path, path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)?;
    file.write_all(bytes)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))?;
    file.sync_all()?;
    std::fs::rename(tmp, path)
}

/// One component a binary carries, as `vigil inspect --json` prints it.
#[derive(Debug, Serialize)]
struct Carried {
    role: String,
    size: usize,
    /// `vigil:health/checker`, `vigil:health/loader`, or `unknown`.
    world: String,
    contract_version: Option<String>,
    capabilities: Vec<String>,
    sha256: String,
    /// Why it is not a readable component, if it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `vigil inspect BINARY`: its roles, sizes, worlds and digests.
pub fn inspect_binary(path: &Path, json: bool) -> Exit {
    let embedded = match elf::read_binary(path) {
        Ok(embedded) => embedded,
        Err(err) => {
            eprintln!("vigil inspect: {}", untrusted::line(&err.to_string()));
            return Exit::Usage;
        }
    };
    let carried: Vec<Carried> = embedded
        .index
        .entries
        .iter()
        .map(|entry| {
            let bytes = &embedded.section[entry.range.clone()];
            let report = inspect::inspect(bytes);
            let (world, contract_version, capabilities, error) = match report {
                Ok(r) => (r.world, r.contract_version, r.capabilities, None),
                Err(err) => ("unknown".into(), None, Vec::new(), Some(err.to_string())),
            };
            Carried {
                role: entry.role.clone(),
                size: bytes.len(),
                world,
                contract_version,
                capabilities,
                sha256: hex::encode(Sha256::digest(bytes)),
                error,
            }
        })
        .collect();
    if json {
        #[derive(Serialize)]
        struct Report<'a> {
            binary: String,
            section: &'static str,
            components: &'a [Carried],
        }
        let report = Report {
            binary: path.display().to_string(),
            section: embedded::SECTION,
            components: &carried,
        };
        return match serde_json::to_string_pretty(&report) {
            Ok(text) => {
                println!("{text}");
                Exit::Ok
            }
            Err(err) => {
                eprintln!("vigil inspect: {err}");
                Exit::Usage
            }
        };
    }
    let shown = |text: &str| untrusted::line(text).into_owned();
    println!("binary        {}", shown(&path.display().to_string()));
    println!(
        "section       {} ({} bytes)",
        embedded::SECTION,
        embedded.section.len()
    );
    println!(
        "{:<12}  {:>9}  {:<28}  {:<22}  sha256",
        "role", "bytes", "world", "capabilities"
    );
    for c in &carried {
        let world = match (&c.error, &c.contract_version) {
            (Some(err), _) => format!("not a component: {err}"),
            (None, Some(v)) => format!("{}@{v}", c.world),
            (None, None) => c.world.clone(),
        };
        let caps = if c.capabilities.is_empty() {
            "none".to_string()
        } else {
            c.capabilities.join(",")
        };
        println!(
            "{:<12}  {:>9}  {:<28}  {:<22}  {}",
            shown(&c.role),
            c.size,
            shown(&world),
            caps,
            c.sha256
        );
    }
    Exit::Ok
}
