//! Static facts about a component, without instantiating it: what kind of
//! file it is, which world it targets, what it imports (its capabilities)
//! and exports, which toolchain produced it, and the schema of its config
//! when it carries one.
//!
//! The schema travels in a custom section named [`CONFIG_SCHEMA_SECTION`]
//! of any core module inside the component (the Rust SDK's
//! `#[derive(Config)]` puts it there; docs/writing-checks.md says how other
//! languages can), so adding it never changes the WIT contract.

use serde::{Deserialize, Serialize};
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

/// Name of the custom section holding a component's config schema.
pub const CONFIG_SCHEMA_SECTION: &str = "vigil:config-schema";

/// The schema version this host reads.
pub const CONFIG_SCHEMA_VERSION: u32 = 1;

/// Largest schema read; a real one is a few KiB.
const MAX_SCHEMA_BYTES: usize = 256 * 1024;

/// What a check's config keys are: version 1 of the `vigil:config-schema`
/// section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigSchema {
    pub version: u32,
    pub keys: Vec<SchemaKey>,
}

/// One key of a check's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaKey {
    /// The key, or with `prefix` the start of every key it covers
    /// (`header.`).
    pub name: String,
    pub kind: ValueKind,
    #[serde(default)]
    pub required: bool,
    /// The default, as it would be written in the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// `name` is a prefix: `header.` covers `header.Accept`, ...
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prefix: bool,
    /// Bounds of an integer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
    #[serde(default)]
    pub doc: String,
}

impl SchemaKey {
    /// Whether this entry covers the config key `key`.
    pub fn covers(&self, key: &str) -> bool {
        if self.prefix {
            key.len() > self.name.len() && key.starts_with(&self.name)
        } else {
            key == self.name
        }
    }

    /// The key as shown to a reader: `header.<name>` for a prefix.
    pub fn shown(&self) -> String {
        if self.prefix {
            format!("{}<name>", self.name)
        } else {
            self.name.clone()
        }
    }
}

/// What a config value must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    String,
    Bool,
    Integer,
    Number,
    /// The shared units grammar: `500ms`, `1m30s`, `0`.
    Duration,
    /// The shared units grammar: `512k`, `64MiB`.
    Size,
    /// 1-65535; with a `host` key, a TCP destination the grants must reach.
    Port,
    /// An absolute http(s) URL the grants must reach.
    Url,
    /// A host name or address; with a `port` key, a TCP destination.
    Host,
    /// A file path the grants must cover.
    Path,
    /// A kind from a newer schema: accepted as is.
    #[serde(other)]
    Other,
}

impl ValueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueKind::String => "string",
            ValueKind::Bool => "bool",
            ValueKind::Integer => "integer",
            ValueKind::Number => "number",
            ValueKind::Duration => "duration",
            ValueKind::Size => "size",
            ValueKind::Port => "port",
            ValueKind::Url => "url",
            ValueKind::Host => "host",
            ValueKind::Path => "path",
            ValueKind::Other => "other",
        }
    }
}

/// Reads a schema from the bytes of its custom section(s), in order.
pub fn parse_config_schema(data: &[u8]) -> Result<ConfigSchema, String> {
    if data.len() > MAX_SCHEMA_BYTES {
        return Err(format!(
            "{CONFIG_SCHEMA_SECTION} section is {} bytes, over the {MAX_SCHEMA_BYTES} limit",
            data.len()
        ));
    }
    // A C string holding the JSON keeps its terminating NUL: ignored.
    let data = data.strip_suffix(b"\0").unwrap_or(data);
    let mut values = serde_json::Deserializer::from_slice(data).into_iter::<serde_json::Value>();
    let first = match values.next() {
        Some(Ok(value)) => value,
        Some(Err(err)) => return Err(format!("{CONFIG_SCHEMA_SECTION} is not JSON: {err}")),
        None => return Err(format!("{CONFIG_SCHEMA_SECTION} section is empty")),
    };
    if values.next().is_some() {
        return Err(format!(
            "{CONFIG_SCHEMA_SECTION} holds more than one schema (one `#[derive(Config)]` per component)"
        ));
    }
    let version = first.get("version").and_then(serde_json::Value::as_u64);
    if version != Some(u64::from(CONFIG_SCHEMA_VERSION)) {
        return Err(format!(
            "{CONFIG_SCHEMA_SECTION} version {} is not one this vigil reads ({CONFIG_SCHEMA_VERSION})",
            version.map_or_else(|| "missing".to_string(), |v| v.to_string())
        ));
    }
    serde_json::from_value(first).map_err(|err| format!("malformed {CONFIG_SCHEMA_SECTION}: {err}"))
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
    /// The imports that are types, not functions or interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub type_imports: Vec<String>,
    pub exports: Vec<String>,
    pub producers: Vec<Producer>,
    /// The config schema it carries, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_schema: Option<ConfigSchema>,
    /// Why a schema section it carries could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_schema_error: Option<String>,
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

const CAPABILITIES: &[&str] = &["http", "http2", "tcp", "process", "fs", "log", "output"];

pub fn inspect(bytes: &[u8]) -> Result<Report, InspectError> {
    match sniff(bytes) {
        Kind::NotWasm => return Err(InspectError::NotWasm),
        Kind::CoreModule => return Err(InspectError::CoreModule),
        Kind::Component => {}
    }
    let mut imports = Vec::new();
    let mut type_imports = Vec::new();
    let mut exports = Vec::new();
    let mut export_funcs = Vec::new();
    let mut producers = Vec::new();
    let mut schema: Option<Vec<u8>> = None;
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
                    // A type the world `use`s (`target`, `outcome`) is not
                    // something the component can call: listed, and marked.
                    if matches!(import.ty, wasmparser::ComponentTypeRef::Type(_)) {
                        type_imports.push(import.name.name.to_owned());
                    }
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
            Payload::CustomSection(reader) if reader.name() == CONFIG_SCHEMA_SECTION => {
                // At any depth: the schema lives in the core module the
                // guest's linker produced. Several sections are joined, as
                // a linker joins sections of one name.
                let data = schema.get_or_insert_with(Vec::new);
                if data.len() <= MAX_SCHEMA_BYTES {
                    data.extend_from_slice(reader.data());
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
    let (config_schema, config_schema_error) = match schema.map(|data| parse_config_schema(&data)) {
        None => (None, None),
        Some(Ok(schema)) => (Some(schema), None),
        Some(Err(err)) => (None, Some(err)),
    };
    Ok(Report {
        config_schema,
        config_schema_error,
        size: bytes.len(),
        world: world.into(),
        contract_version,
        capabilities,
        imports,
        type_imports,
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

    /// Every bundled check carries its schema (from `#[derive(Config)]`),
    /// with a doc line for every key. (That the defaults are valid values
    /// is tested in config::schema, which validates values.)
    #[test]
    fn builtins_carry_their_config_schema() {
        for name in super::super::builtins::names() {
            let bytes = super::super::builtins::lookup(name).expect("listed builtin exists");
            let report = inspect(bytes).expect("builtin parses");
            assert_eq!(report.config_schema_error, None, "builtin:{name}");
            let schema = report
                .config_schema
                .unwrap_or_else(|| panic!("builtin:{name} has no config schema"));
            assert!(!schema.keys.is_empty(), "builtin:{name}");
            for key in &schema.keys {
                assert!(!key.doc.is_empty(), "builtin:{name} {}", key.name);
            }
        }
        let http = inspect(super::super::builtins::lookup("http").expect("http")).expect("parses");
        let keys: Vec<String> = http
            .config_schema
            .expect("schema")
            .keys
            .iter()
            .map(SchemaKey::shown)
            .collect();
        assert_eq!(
            keys,
            [
                "url",
                "method",
                "body",
                "expect-status",
                "body-contains",
                "json-field",
                "header.<name>",
                "timeout",
                "follow-redirects"
            ]
        );
    }

    #[test]
    fn schema_sections_are_checked() {
        let one = br#"{"version":1,"keys":[{"name":"url","kind":"url","required":true,"doc":"x"},{"name":"k","kind":"colour"}]}"#;
        let schema = parse_config_schema(one).expect("parses");
        assert_eq!(schema.keys[0].kind, ValueKind::Url);
        assert_eq!(schema.keys[1].kind, ValueKind::Other);
        let two = [&one[..], &one[..]].concat();
        assert!(
            parse_config_schema(&two)
                .expect_err("two")
                .contains("more than one")
        );
        assert!(
            parse_config_schema(br#"{"version":2,"keys":[]}"#)
                .expect_err("v2")
                .contains("version 2")
        );
        assert!(
            parse_config_schema(b"{")
                .expect_err("torn")
                .contains("not JSON")
        );
        let c_string = [&one[..], b"\0"].concat();
        assert!(parse_config_schema(&c_string).is_ok());
    }
}
