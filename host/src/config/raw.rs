//! `service.toml` as written: the raw serde form and its key-by-key parse.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::identity::RawLog;
use super::problems::{Collector, did_you_mean, fields_of};
use super::sockets::{RawSocket, declared_order};

/// `service.toml` as written. Every field is optional so that each key can
/// be checked on its own; unknown keys are rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawService {
    pub command: Option<Vec<String>>,
    pub shell: Option<String>,
    pub env: Option<BTreeMap<String, String>>,
    pub inherit_env: Option<Vec<String>>,
    pub cwd: Option<String>,
    pub stop_signal: Option<String>,
    pub stop_grace: Option<String>,
    pub restart: Option<String>,
    pub backoff: Option<Vec<String>>,
    pub stable_uptime: Option<String>,
    pub give_up: Option<RawGiveUp>,
    pub success_codes: Option<Vec<i32>>,
    pub after: Option<Vec<String>>,
    pub requires: Option<Vec<String>>,
    pub notify: Option<bool>,
    pub watchdog_sec: Option<String>,
    pub notify_timeout: Option<String>,
    pub grants: Option<RawGrants>,
    pub checks: Option<RawChecks>,
    pub loader: Option<RawLoader>,
    // Identity, env files, credentials, output (config/identity.rs).
    pub user: Option<String>,
    pub group: Option<String>,
    pub umask: Option<String>,
    pub env_file: Option<Vec<String>>,
    pub credentials: Option<BTreeMap<String, String>>,
    pub log: Option<RawLog>,
    // Kinds of service (config/kinds.rs).
    pub autostart: Option<bool>,
    pub every: Option<String>,
    pub schedule: Option<String>,
    pub timezone: Option<String>,
    pub catch_up: Option<bool>,
    pub overlap: Option<String>,
    pub timeout: Option<String>,
    pub hooks: Option<super::hooks::RawHooks>,
    pub memory_max: Option<String>,
    pub cpu_max: Option<String>,
    pub pids_max: Option<u64>,
    pub limits: Option<BTreeMap<String, toml::Value>>,
    pub sockets: Option<BTreeMap<String, RawSocket>>,
    pub start: Option<String>,
    pub replace_timeout: Option<String>,
    /// Replicas (config/replicas.rs), taken out before the rest resolves.
    pub instances: Option<u32>,
    /// The `[sockets.*]` names in the order they are written (a TOML table
    /// does not keep it); filled from the text by [`parse_raw`].
    #[serde(skip)]
    pub sockets_order: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawGiveUp {
    pub restarts: Option<u32>,
    pub window: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawGrants {
    pub hosts: Option<Vec<String>>,
    pub paths: Option<Vec<String>>,
    pub memory: Option<String>,
    /// Checks may read the service's own recent output (`output`
    /// capability).
    pub output: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawChecks {
    pub startup: Option<RawCheck>,
    pub readiness: Option<RawCheck>,
    pub liveness: Option<RawCheck>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawCheck {
    pub check: Option<String>,
    pub period: Option<String>,
    pub timeout: Option<String>,
    pub initial_delay: Option<String>,
    pub failure_threshold: Option<u32>,
    pub success_threshold: Option<u32>,
    pub startup_timeout: Option<String>,
    pub config: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawLoader {
    pub config: Option<BTreeMap<String, String>>,
}

/// Remove keys of `table` not in `known`, reporting each.
pub(super) fn strip_unknown(
    table: &mut toml::Table,
    known: &[&str],
    prefix: &str,
    c: &mut Collector<'_>,
) {
    let unknown: Vec<String> = table
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .cloned()
        .collect();
    for key in unknown {
        table.remove(&key);
        let field = join(prefix, &key);
        let fix = match did_you_mean(&key, known) {
            Some(k) => format!("did you mean `{}`?", join(prefix, k)),
            None => format!("remove it; known keys here: {}", known.join(", ")),
        };
        c.push(field, "unknown key", fix);
    }
}

/// The dotted manifest key of `key` under `prefix` (`checks.liveness.period`).
fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Check every key of `table` on its own against `T` (so that one wrong
/// type does not hide the next), then deserialize the whole table.
fn deserialize_each<T>(table: &toml::Table, prefix: &str, c: &mut Collector<'_>) -> Option<T>
where
    T: for<'de> Deserialize<'de> + Default,
{
    let mut ok = true;
    for (key, value) in table {
        let mut one = toml::Table::new();
        one.insert(key.clone(), value.clone());
        if let Err(e) = T::deserialize(toml::Value::Table(one)) {
            ok = false;
            c.push(
                join(prefix, key),
                e.message().trim().to_string(),
                expected_fix(key),
            );
        }
    }
    if !ok {
        return None;
    }
    match T::deserialize(toml::Value::Table(table.clone())) {
        Ok(v) => Some(v),
        Err(e) => {
            c.push(
                if prefix.is_empty() { "-" } else { prefix },
                e.message().trim().to_string(),
                "see the manifest reference",
            );
            None
        }
    }
}

/// The fix for a key of the wrong type: what a value of it looks like.
fn expected_fix(key: &str) -> String {
    match key {
        "command" | "after" | "requires" | "inherit-env" | "hosts" | "paths" | "env-file" => {
            format!("`{key}` is a list of strings, e.g. [\"a\", \"b\"]")
        }
        "backoff" => "a list of durations, e.g. [\"0s\", \"5s\"]".into(),
        "success-codes" => "a list of integers, e.g. [0, 143]".into(),
        "env" | "config" | "credentials" => {
            format!("`{key}` is a table of strings, e.g. {{ KEY = \"value\" }}")
        }
        "notify" | "timestamps" | "autostart" | "catch-up" | "reuseport" | "v6only" | "nodelay" => {
            "true or false".into()
        }
        "backlog" => "a positive integer, e.g. 1024".into(),
        "failure-threshold" | "success-threshold" | "restarts" | "keep" | "instances" => {
            "a positive integer".into()
        }
        _ => "a quoted string, e.g. \"3s\"".into(),
    }
}

/// Parse manifest text into the raw form, reporting every unknown key and
/// every mistyped key.
pub(super) fn parse_raw(text: &str, c: &mut Collector<'_>) -> Option<RawService> {
    let mut table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            let e: toml::de::Error = e;
            let at = e
                .span()
                .map(|span| {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}: ")
                })
                .unwrap_or_default();
            c.push(
                "-",
                format!("{at}{}", e.message().trim()),
                "fix the TOML syntax",
            );
            return None;
        }
    };

    strip_unknown(&mut table, fields_of::<RawService>(), "", c);
    for (key, fields) in [
        ("give-up", fields_of::<RawGiveUp>()),
        ("grants", fields_of::<RawGrants>()),
        ("loader", fields_of::<RawLoader>()),
        ("checks", fields_of::<RawChecks>()),
        ("log", fields_of::<RawLog>()),
    ] {
        if let Some(toml::Value::Table(sub)) = table.get_mut(key) {
            strip_unknown(sub, fields, key, c);
        }
    }
    if let Some(toml::Value::Table(sockets)) = table.get_mut("sockets") {
        for (name, value) in sockets.iter_mut() {
            if let toml::Value::Table(socket) = value {
                strip_unknown(
                    socket,
                    fields_of::<RawSocket>(),
                    &format!("sockets.{name}"),
                    c,
                );
            }
        }
    }
    if let Some(toml::Value::Table(checks)) = table.get_mut("checks") {
        for (phase, value) in checks.iter_mut() {
            if let toml::Value::Table(check) = value {
                strip_unknown(
                    check,
                    fields_of::<RawCheck>(),
                    &format!("checks.{phase}"),
                    c,
                );
            }
        }
    }

    // Type-check nested tables key by key so every mistake is reported.
    let mut ok = true;
    for (key, check) in [
        (
            "give-up",
            check_nested::<RawGiveUp> as fn(&toml::Value, &str, &mut Collector<'_>) -> bool,
        ),
        ("grants", check_nested::<RawGrants>),
        ("loader", check_nested::<RawLoader>),
        ("log", check_nested::<RawLog>),
    ] {
        if let Some(v) = table.get(key) {
            ok &= check(v, key, c);
        }
    }
    if let Some(toml::Value::Table(checks)) = table.get("checks") {
        for (phase, v) in checks {
            ok &= check_nested::<RawCheck>(v, &format!("checks.{phase}"), c);
        }
    }
    // `[hooks]` and its tables, the same way.
    ok &= super::hooks::check_raw(&mut table, c);
    match table.get("sockets") {
        Some(toml::Value::Table(sockets)) => {
            for (name, v) in sockets {
                ok &= check_nested::<RawSocket>(v, &format!("sockets.{name}"), c);
            }
        }
        Some(_) => {
            ok &= check_nested::<RawSocket>(&toml::Value::Boolean(false), "sockets", c);
        }
        None => {}
    }
    let mut top = table.clone();
    if !ok {
        // Already reported in detail; check the rest without them.
        for key in [
            "give-up", "grants", "loader", "checks", "log", "hooks", "sockets",
        ] {
            top.remove(key);
        }
    }
    let raw = deserialize_each::<RawService>(&top, "", c);
    if ok {
        raw.map(|mut raw| {
            raw.sockets_order = declared_order(text);
            raw
        })
    } else {
        None
    }
}

/// Type-check a nested table (`[grants]`, `[checks.NAME]`, ...) key by key.
pub(super) fn check_nested<T>(value: &toml::Value, prefix: &str, c: &mut Collector<'_>) -> bool
where
    T: for<'de> Deserialize<'de> + Default,
{
    match value {
        toml::Value::Table(t) => deserialize_each::<T>(t, prefix, c).is_some(),
        _ => {
            c.push(
                prefix,
                "expected a table",
                format!("write it as `[{prefix}]` with keys below it"),
            );
            false
        }
    }
}
