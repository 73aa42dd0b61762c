//! Static facts about a component, without instantiating it: what kind of
//! file it is, which world it targets, what it imports (its capabilities)
//! and exports, and which toolchain produced it.

use serde::Serialize;
use wasmparser::{ComponentExternalKind, KnownCustom, Parser, Payload};

/// What a byte string is, judged from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    NotWasm,
    CoreModule,
    Component,
}

/// Classifies by the preamble: magic, then version and layer (0 for core
/// modules, 1 for components).
pub fn sniff(bytes: &[u8]) -> Kind {
    match bytes {
        [0, b'a', b's', b'm', _, _, 0, 0, ..] => Kind::CoreModule,
        [0, b'a', b's', b'm', _, _, 1, 0, ..] => Kind::Component,
        _ => Kind::NotWasm,
    }
}

/// One entry of a producers section, e.g. language = Rust.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Producer {
    pub field: String,
    pub name: String,
    pub version: String,
}

/// The result of `vigil inspect`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub size: usize,
    /// `vigil:health/checker`, `vigil:health/loader`, or `unknown`.
    pub world: String,
    /// The vigil:health version its imports name, when they name one.
    pub contract_version: Option<String>,
    /// The vigil:health capability interfaces it imports.
    pub capabilities: Vec<String>,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pub producers: Vec<Producer>,
}

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("not a WebAssembly file (it does not start with the \\0asm magic)")]
    NotWasm,
    #[error(
        "a core WebAssembly module, not a component (build for wasm32-wasip2 or run `wasm-tools component new`)"
    )]
    CoreModule,
    #[error("malformed component: {0}")]
    Malformed(String),
}

const CAPABILITIES: &[&str] = &["http", "tcp", "process", "fs", "log"];

pub fn inspect(bytes: &[u8]) -> Result<Report, InspectError> {
    match sniff(bytes) {
        Kind::NotWasm => return Err(InspectError::NotWasm),
        Kind::CoreModule => return Err(InspectError::CoreModule),
        Kind::Component => {}
    }
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    let mut export_funcs = Vec::new();
    let mut producers = Vec::new();
    // Nesting depth: only the outer component's imports/exports count.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|err| InspectError::Malformed(err.to_string()))?;
        match payload {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|err| InspectError::Malformed(err.to_string()))?;
                    imports.push(import.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(|err| InspectError::Malformed(err.to_string()))?;
                    if export.kind == ComponentExternalKind::Func {
                        export_funcs.push(export.name.name.to_owned());
                    }
                    exports.push(export.name.name.to_owned());
                }
            }
            Payload::CustomSection(reader) => {
                if let KnownCustom::Producers(section) = reader.as_known() {
                    for field in section.into_iter().flatten() {
                        for value in field.values.into_iter().flatten() {
                            producers.push(Producer {
                                field: field.name.to_owned(),
                                name: value.name.to_owned(),
                                version: value.version.to_owned(),
                            });
                        }
                    }
                }
            }
            _ => {}
        }
    }
    producers.sort();
    producers.dedup();
    let has = |name: &str| export_funcs.iter().any(|f| f == name);
    let world = if has("check") {
        "vigil:health/checker"
    } else if has("spawn") && has("decide") {
        "vigil:health/loader"
    } else {
        "unknown"
    };
    let contract_version = imports
        .iter()
        .filter_map(|i| i.strip_prefix("vigil:health/"))
        .find_map(|i| i.split_once('@').map(|(_, v)| v.to_owned()));
    let capabilities = imports
        .iter()
        .filter_map(|i| i.strip_prefix("vigil:health/"))
        .map(|i| i.split('@').next().unwrap_or(i))
        .filter(|i| CAPABILITIES.contains(i))
        .map(str::to_owned)
        .collect();
    Ok(Report {
        size: bytes.len(),
        world: world.into(),
        contract_version,
        capabilities,
        imports,
        exports,
        producers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_the_preamble() {
        assert_eq!(sniff(b"\0asm\x01\0\0\0"), Kind::CoreModule);
        assert_eq!(sniff(b"\0asm\x0d\0\x01\0"), Kind::Component);
        assert_eq!(sniff(b"#!/bin/sh\n"), Kind::NotWasm);
        assert_eq!(sniff(b""), Kind::NotWasm);
    }

    #[test]
    fn builtins_are_checkers_with_their_capabilities() {
        for name in super::super::builtins::names() {
            let bytes = super::super::builtins::lookup(name).expect("listed builtin exists");
            let report = inspect(bytes).expect("builtin parses");
            assert_eq!(report.world, "vigil:health/checker", "builtin:{name}");
            assert!(
                report.producers.iter().any(|p| p.name == "Rust"),
                "builtin:{name}: {:?}",
                report.producers
            );
        }
    }
}
