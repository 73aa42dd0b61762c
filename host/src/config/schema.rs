//! A check's `[checks.*.config]` against the schema its component declares
//! (`vigil:config-schema`, see `wasm::inspect`), and the destinations it
//! names against the service's grants: what `vigil validate` can tell
//! before anything runs.

use std::net::{IpAddr, Ipv4Addr};

use super::model::GrantSpec;
use super::problems::{Collector, did_you_mean};
use crate::units::{parse_duration, parse_size};
use crate::wasm::grants::{Scheme, host_entry, parse_ip_literal};
use crate::wasm::inspect::{ConfigSchema, SchemaKey, ValueKind};

/// Where a config table sits in the manifest and what it configures.
pub(super) struct Place<'a> {
    /// Dotted key of the table: `checks.readiness.config`.
    pub table: &'a str,
    /// Dotted key of the `check` that names the component.
    pub check_field: &'a str,
    /// The component, as the manifest names it (`builtin:http`).
    pub component: &'a str,
}

/// Every unknown key (with a did-you-mean), every value that is not of its
/// key's kind and every missing required key of `config`.
pub(super) fn check_config(
    schema: &ConfigSchema,
    config: &[(String, String)],
    place: &Place<'_>,
    c: &mut Collector<'_>,
) {
    let field = |key: &str| format!("{}.{key}", place.table);
    let names: Vec<&str> = schema.keys.iter().map(|k| k.name.as_str()).collect();
    for (key, value) in config {
        let Some(entry) = schema.keys.iter().find(|k| k.covers(key)) else {
            let fix = match did_you_mean(key, &names) {
                Some(near) => format!("did you mean `{}`?", field(near)),
                None => format!(
                    "remove it; {} takes: {}",
                    place.component,
                    schema
                        .keys
                        .iter()
                        .map(SchemaKey::shown)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            c.push(field(key), "unknown key", fix);
            continue;
        };
        if entry.required && value.trim().is_empty() {
            c.push(
                field(key),
                "empty",
                format!("give it a value: {}", entry.doc),
            );
        } else if let Err(why) = check_value(entry, value) {
            c.push(field(key), why, expected(entry));
        }
    }
    for entry in schema.keys.iter().filter(|k| k.required && !k.prefix) {
        if !config.iter().any(|(k, _)| *k == entry.name) {
            c.push(
                field(&entry.name),
                format!("missing: {} requires it", place.component),
                format!(
                    "add `{} = \"...\"` under [{}] ({}: {})",
                    entry.name,
                    place.table,
                    entry.kind.as_str(),
                    entry.doc
                ),
            );
        }
    }
}

/// What is wrong with `vigil check --config` settings by the schema the
/// component carries, one line each (`--config urll: unknown key (fix: did
/// you mean `--config url`?)`); empty without a schema. `vigil check`
/// shows them when the check answered `error`, so a probe that works pays
/// nothing for them.
pub fn one_shot_config_problems(
    component: &[u8],
    name: &str,
    config: &[(String, String)],
) -> Vec<String> {
    let Some(schema) = crate::wasm::inspect::inspect(component)
        .ok()
        .and_then(|report| report.config_schema)
    else {
        return Vec::new();
    };
    let mut c = Collector::new(std::path::Path::new("--config"));
    let place = Place {
        table: "--config",
        check_field: "-",
        component: name,
    };
    check_config(&schema, config, &place, &mut c);
    c.problems
        .into_iter()
        .map(|p| {
            let key = p.field.trim_start_matches("--config.");
            let fix = match p.problem.starts_with("missing") {
                true => format!("add `--config {key}=VALUE`"),
                false => p.fix.replace("--config.", "--config "),
            };
            format!("--config {key}: {} (fix: {fix})", p.problem)
        })
        .collect()
}

/// `Err(why)` when `value` is not a valid value of `key`'s kind, judged as
/// the SDK's parsers judge it.
pub(super) fn check_value(key: &SchemaKey, value: &str) -> Result<(), String> {
    let text = value.trim();
    match key.kind {
        ValueKind::String | ValueKind::Path | ValueKind::Other => Ok(()),
        ValueKind::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" | "false" | "no" | "off" | "0" => Ok(()),
            _ => Err(format!("{value:?} is not true or false")),
        },
        ValueKind::Integer => {
            let n: i128 = text
                .parse()
                .map_err(|_| format!("{value:?} is not a whole number"))?;
            let min = key.min.map_or(i128::MIN, i128::from);
            let max = key.max.map_or(i128::MAX, i128::from);
            if n < min || n > max {
                return Err(format!("{n} is out of range {min}-{max}"));
            }
            Ok(())
        }
        ValueKind::Number => match text.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(()),
            _ => Err(format!("{value:?} is not a number")),
        },
        ValueKind::Duration => parse_duration(value).map(drop).map_err(|e| e.to_string()),
        ValueKind::Size => parse_size(value).map(drop).map_err(|e| e.to_string()),
        ValueKind::Port => match text.parse::<u16>() {
            Ok(port) if port > 0 => Ok(()),
            _ => Err(format!("{value:?} is not a port number 1-65535")),
        },
        ValueKind::Url => url_destination(text).map(drop),
        ValueKind::Host => {
            if text.is_empty() || text.contains(char::is_whitespace) {
                Err(format!("{value:?} is not a host name or address"))
            } else {
                Ok(())
            }
        }
    }
}

/// What a value of `key` looks like, for the fix.
fn expected(key: &SchemaKey) -> String {
    let what = match key.kind {
        ValueKind::Bool => "true or false".to_owned(),
        ValueKind::Integer => match (key.min, key.max) {
            (Some(lo), Some(hi)) => format!("a whole number {lo}-{hi}"),
            _ => "a whole number".to_owned(),
        },
        ValueKind::Number => "a number, e.g. \"0.5\"".to_owned(),
        ValueKind::Duration => {
            "a number with a unit: \"500ms\", \"3s\", \"1m30s\", \"1h\" (or \"0\")".to_owned()
        }
        ValueKind::Size => "a size such as \"512k\", \"64MiB\" or \"1G\"".to_owned(),
        ValueKind::Port => "a port number 1-65535".to_owned(),
        ValueKind::Url => "an absolute URL, e.g. \"http://127.0.0.1:8080/healthz\"".to_owned(),
        ValueKind::Host => "a host name or address, e.g. \"127.0.0.1\"".to_owned(),
        ValueKind::String | ValueKind::Path | ValueKind::Other => "a string".to_owned(),
    };
    if key.doc.is_empty() {
        format!("use {what}")
    } else {
        format!("use {what} ({})", key.doc)
    }
}

/// Scheme, host and port of an http(s) URL.
fn url_destination(text: &str) -> Result<(Scheme, String, u16), String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    let scheme = match url.scheme() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => {
            return Err(format!(
                "{text:?} has scheme `{other}`; only http and https are supported"
            ));
        }
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("{text:?} has no host"))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| format!("{text:?} has no port"))?;
    Ok((scheme, host.to_owned(), port))
}

/// The destinations `config` makes the check reach, each with the config
/// field to blame: every `url` value, and `host` + `port` (values or their
/// defaults) as one TCP destination.
fn destinations(
    schema: &ConfigSchema,
    config: &[(String, String)],
    place: &Place<'_>,
) -> Vec<(String, Scheme, String, u16)> {
    let value = |entry: &SchemaKey| -> Option<(String, bool)> {
        config
            .iter()
            .rev()
            .find(|(k, _)| *k == entry.name)
            .map(|(_, v)| (v.trim().to_owned(), true))
            .or_else(|| entry.default.clone().map(|d| (d, false)))
    };
    let field = |key: &str| format!("{}.{key}", place.table);
    let mut found = Vec::new();
    for entry in schema.keys.iter().filter(|k| !k.prefix) {
        if entry.kind == ValueKind::Url
            && let Some((text, _)) = value(entry)
            && let Ok((scheme, host, port)) = url_destination(&text)
        {
            found.push((field(&entry.name), scheme, host, port));
        }
    }
    let host_key = schema
        .keys
        .iter()
        .find(|k| k.kind == ValueKind::Host && !k.prefix);
    let port_key = schema
        .keys
        .iter()
        .find(|k| k.kind == ValueKind::Port && !k.prefix);
    if let (Some(hk), Some(pk)) = (host_key, port_key)
        && let (Some((host, host_set)), Some((port, port_set))) = (value(hk), value(pk))
        && let Ok(port) = port.parse::<u16>()
        && port > 0
        && !host.is_empty()
    {
        let blame = if host_set {
            field(&hk.name)
        } else if port_set {
            field(&pk.name)
        } else {
            place.check_field.to_owned()
        };
        found.push((blame, Scheme::Tcp, host, port));
    }
    found
}

/// Each destination and path the config names that the service's grants
/// do not reach is an error naming the exact grant to add.
pub(super) fn check_grants(
    schema: &ConfigSchema,
    config: &[(String, String)],
    grants: &GrantSpec,
    service_dir: &std::path::Path,
    place: &Place<'_>,
    c: &mut Collector<'_>,
) {
    for (field, scheme, host, port) in destinations(schema, config, place) {
        if reaches(grants, scheme, &host, port) {
            continue;
        }
        let entry = host_entry(scheme, &host, port);
        c.push(
            field,
            format!(
                "{} would be denied: {entry} is not in [grants] hosts",
                place.component
            ),
            format!("add \"{entry}\" to [grants] hosts"),
        );
    }
    for entry in schema
        .keys
        .iter()
        .filter(|k| k.kind == ValueKind::Path && !k.prefix)
    {
        let Some((_, path)) = config.iter().rev().find(|(k, _)| *k == entry.name) else {
            continue;
        };
        if path.trim().is_empty() {
            continue;
        }
        if grants
            .resolved()
            .check_path(path, Some(service_dir))
            .is_err()
        {
            c.push(
                format!("{}.{}", place.table, entry.name),
                format!(
                    "{} would be denied: {path:?} is not in [grants] paths",
                    place.component
                ),
                format!("add \"{path}\" (or a directory above it) to [grants] paths"),
            );
        }
    }
}

/// Whether the grants let a request for `scheme://host:port` through, as
/// far as can be told without a DNS query: an IP literal (and `localhost`,
/// taken as 127.0.0.1) by the full address rule, a name by its grant.
fn reaches(grants: &GrantSpec, scheme: Scheme, host: &str, port: u16) -> bool {
    let resolved = grants.resolved();
    let ip = parse_ip_literal(host).or_else(|| {
        host.eq_ignore_ascii_case("localhost")
            .then_some(IpAddr::V4(Ipv4Addr::LOCALHOST))
    });
    match ip {
        Some(ip) => resolved.allows(scheme, port, host, ip),
        None => resolved.allows_destination(scheme, host, port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wasm::inspect::inspect;

    fn key(kind: ValueKind) -> SchemaKey {
        SchemaKey {
            name: "k".into(),
            kind,
            required: false,
            default: None,
            prefix: false,
            min: Some(0),
            max: Some(255),
            doc: String::new(),
        }
    }

    #[test]
    fn values_by_kind() {
        let ok = [
            (ValueKind::Bool, "yes"),
            (ValueKind::Integer, "255"),
            (ValueKind::Number, "0.5"),
            (ValueKind::Duration, "1m30s"),
            (ValueKind::Duration, "0"),
            (ValueKind::Size, "64MiB"),
            (ValueKind::Port, "8080"),
            (ValueKind::Url, "http://127.0.0.1:8080/x"),
            (ValueKind::Host, "db"),
        ];
        for (kind, value) in ok {
            assert_eq!(check_value(&key(kind), value), Ok(()), "{kind:?} {value}");
        }
        let bad = [
            (ValueKind::Bool, "maybe"),
            (ValueKind::Integer, "256"),
            (ValueKind::Integer, "-1"),
            (ValueKind::Number, "inf"),
            (ValueKind::Duration, "5"),
            (ValueKind::Size, "lots"),
            (ValueKind::Port, "0"),
            (ValueKind::Url, "ftp://x/"),
            (ValueKind::Url, "127.0.0.1:8080"),
            (ValueKind::Host, "a b"),
        ];
        for (kind, value) in bad {
            assert!(check_value(&key(kind), value).is_err(), "{kind:?} {value}");
        }
    }

    /// Every default a bundled check declares is a valid value of its
    /// kind, so a manifest that leaves a key out is never worse than one
    /// that writes the default.
    #[test]
    fn builtin_defaults_are_valid() {
        for name in crate::wasm::builtins::names() {
            let bytes = crate::wasm::builtins::lookup(name).expect("listed");
            let schema = inspect(bytes)
                .expect("parses")
                .config_schema
                .expect("builtin has a schema");
            for key in &schema.keys {
                if let Some(default) = &key.default {
                    assert_eq!(
                        check_value(key, default),
                        Ok(()),
                        "builtin:{name} {}",
                        key.name
                    );
                }
            }
        }
    }
}
