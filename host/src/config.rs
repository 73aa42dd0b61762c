//! Service directories: `DIR/<name>/service.toml` (+ `.wasm` checks and an
//! optional `loader.wasm`) turned into validated [`Service`]s.
//!
//! Parsing happens in two steps, ripgrep style: the manifest is read into a
//! raw serde form ([`RawService`], every field optional, unknown keys
//! rejected) and then resolved into a [`Service`] where every duration,
//! signal, path and reference has been checked. The rest of Vigil only sees
//! the resolved form. Validation never stops at the first problem: loading a
//! directory reports every problem of every service at once, each as
//! `path:field: problem (fix: ...)`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::Deserialize;

/// File name of a service manifest inside a service directory.
pub const MANIFEST: &str = "service.toml";
/// File name of a service's loader component.
pub const LOADER: &str = "loader.wasm";

// ---------------------------------------------------------------------------
// Resolved form
// ---------------------------------------------------------------------------

/// A validated service, ready to supervise.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Directory name under the checks directory.
    pub name: String,
    /// Absolute service directory.
    pub dir: PathBuf,
    /// What to run; `None` when `loader.wasm` provides the command.
    pub command: Option<Vec<String>>,
    /// Explicit environment, applied after `inherit_env`.
    pub env: Vec<(String, String)>,
    /// Names of variables copied from Vigil's own environment.
    pub inherit_env: Vec<String>,
    /// Working directory (absolute; defaults to the service directory).
    pub cwd: PathBuf,
    pub stop_signal: Signal,
    pub stop_grace: Duration,
    pub restart: RestartPolicy,
    /// Services that must be ready before this one starts.
    pub after: Vec<String>,
    /// `notify = true`: the child speaks systemd's notify protocol
    /// (`READY=1`, `WATCHDOG=1`, `STATUS=`) on its own `NOTIFY_SOCKET`.
    pub notify: Option<NotifySpec>,
    pub grants: GrantSpec,
    pub checks: Checks,
    pub loader: Option<LoaderSpec>,
}

impl Service {
    /// True when `other` differs in anything that requires restarting the
    /// child (argv, environment, working directory, loader command source).
    pub fn needs_restart_for(&self, other: &Service) -> bool {
        self.command != other.command
            || self.env != other.env
            || self.inherit_env != other.inherit_env
            || self.cwd != other.cwd
            || self.loader.is_some() != other.loader.is_some()
            // The child's NOTIFY_SOCKET and WATCHDOG_USEC.
            || self.notify != other.notify
    }

    /// The environment a child gets: inherited variables first, then the
    /// explicit ones (which win).
    pub fn child_env(&self) -> Vec<(String, String)> {
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        for name in &self.inherit_env {
            if let Ok(value) = std::env::var(name) {
                env.insert(name.clone(), value);
            }
        }
        for (k, v) in &self.env {
            env.insert(k.clone(), v.clone());
        }
        env.into_iter().collect()
    }
}

/// How a `notify = true` service is judged by its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifySpec {
    /// `watchdog-sec`: a `WATCHDOG=1` must arrive at least this often once
    /// the service is started, or it is restarted as a liveness failure.
    pub watchdog: Option<Duration>,
    /// `notify-timeout`: how long `READY=1` may take when no startup check
    /// bounds the start (a startup check's `startup-timeout` does then).
    pub timeout: Duration,
}

/// Default `notify-timeout`, as the default `startup-timeout`.
pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(60);

/// When to restart a child that exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartMode {
    Always,
    OnFailure,
    Never,
}

/// Restart policy of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartPolicy {
    pub mode: RestartMode,
    /// Delays before successive restarts; the last one repeats. Never empty.
    pub backoff: Vec<Duration>,
    /// A child up this long resets the backoff index.
    pub stable_uptime: Duration,
    pub give_up: Option<GiveUp>,
    /// Exit codes that count as a clean exit for `on-failure`.
    pub success_codes: Vec<i32>,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            mode: RestartMode::Always,
            backoff: default_backoff(),
            stable_uptime: Duration::from_secs(60),
            give_up: None,
            success_codes: vec![0],
        }
    }
}

fn default_backoff() -> Vec<Duration> {
    [0, 5, 15, 60]
        .into_iter()
        .map(Duration::from_secs)
        .collect()
}

/// Give up (state `failed`) after more than `restarts` restarts within `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GiveUp {
    pub restarts: u32,
    pub window: Duration,
}

/// What the service's checks may touch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GrantSpec {
    pub hosts: Vec<String>,
    /// Absolute paths (relative ones are resolved against the service dir).
    pub paths: Vec<PathBuf>,
    /// Memory cap per check instance, bytes.
    pub memory: u64,
}

/// Where a check comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckRef {
    /// Embedded in the binary: `builtin:NAME`.
    Builtin(String),
    /// A `.wasm` file inside the service directory (absolute path).
    File(PathBuf),
}

impl fmt::Display for CheckRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckRef::Builtin(name) => write!(f, "builtin:{name}"),
            CheckRef::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Which question a check answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    Startup,
    Readiness,
    Liveness,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Startup, Phase::Readiness, Phase::Liveness];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Startup => "startup",
            Phase::Readiness => "readiness",
            Phase::Liveness => "liveness",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One check of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    pub check: CheckRef,
    pub period: Duration,
    pub timeout: Duration,
    pub initial_delay: Duration,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    /// Startup only: how long `retry` may keep the service starting.
    pub startup_timeout: Duration,
    pub config: Vec<(String, String)>,
}

impl CheckSpec {
    fn defaults(phase: Phase, check: CheckRef) -> CheckSpec {
        CheckSpec {
            check,
            period: match phase {
                Phase::Startup => Duration::from_secs(1),
                Phase::Readiness => Duration::from_secs(5),
                Phase::Liveness => Duration::from_secs(10),
            },
            timeout: Duration::from_secs(1),
            initial_delay: Duration::ZERO,
            failure_threshold: 3,
            success_threshold: 1,
            startup_timeout: Duration::from_secs(60),
            config: Vec::new(),
        }
    }
}

/// The checks of a service, by phase.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Checks {
    pub startup: Option<CheckSpec>,
    pub readiness: Option<CheckSpec>,
    pub liveness: Option<CheckSpec>,
}

impl Checks {
    pub fn get(&self, phase: Phase) -> Option<&CheckSpec> {
        match phase {
            Phase::Startup => self.startup.as_ref(),
            Phase::Readiness => self.readiness.as_ref(),
            Phase::Liveness => self.liveness.as_ref(),
        }
    }
}

/// The service's `loader.wasm` and its `[loader.config]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderSpec {
    pub path: PathBuf,
    pub config: Vec<(String, String)>,
}

// ---------------------------------------------------------------------------
// Problems
// ---------------------------------------------------------------------------

/// One thing wrong with a service directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    /// Dotted manifest key (`checks.liveness.period`), or `-` for the file.
    pub field: String,
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {} (fix: {})",
            self.path.display(),
            self.field,
            self.problem,
            self.fix
        )
    }
}

/// Every problem found in a service directory. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationReport {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ValidationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(f, "{n} problem{}:", if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

struct Collector<'a> {
    path: &'a Path,
    problems: Vec<Problem>,
}

impl<'a> Collector<'a> {
    fn new(path: &'a Path) -> Self {
        Collector {
            path,
            problems: Vec::new(),
        }
    }

    fn push(
        &mut self,
        field: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.problems.push(Problem {
            path: self.path.to_path_buf(),
            field: field.into(),
            problem: problem.into(),
            fix: fix.into(),
        });
    }
}

// ---------------------------------------------------------------------------
// Raw form
// ---------------------------------------------------------------------------

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
    pub notify: Option<bool>,
    pub watchdog_sec: Option<String>,
    pub notify_timeout: Option<String>,
    pub grants: Option<RawGrants>,
    pub checks: Option<RawChecks>,
    pub loader: Option<RawLoader>,
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

/// Field names serde expects for a struct, learnt from the derive itself so
/// the "did you mean" list can never drift from the struct.
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Probe(std::cell::Cell<&'static [&'static str]>);
    #[derive(Debug)]
    struct Stop;
    impl fmt::Display for Stop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("probe")
        }
    }
    impl std::error::Error for Stop {}
    impl serde::de::Error for Stop {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> serde::Deserializer<'de> for &Probe {
        type Error = Stop;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0.set(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let probe = Probe(std::cell::Cell::new(&[]));
    let _ = T::deserialize(&probe);
    probe.0.get()
}

/// The closest known name to `unknown`, if it is close enough to be a typo.
pub fn did_you_mean<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(unknown, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// Remove keys of `table` not in `known`, reporting each.
fn strip_unknown(table: &mut toml::Table, known: &[&str], prefix: &str, c: &mut Collector<'_>) {
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

fn expected_fix(key: &str) -> String {
    match key {
        "command" | "after" | "inherit-env" | "hosts" | "paths" => {
            format!("`{key}` is a list of strings, e.g. [\"a\", \"b\"]")
        }
        "backoff" => "a list of durations, e.g. [\"0s\", \"5s\"]".into(),
        "success-codes" => "a list of integers, e.g. [0, 143]".into(),
        "env" | "config" => format!("`{key}` is a table of strings, e.g. {{ KEY = \"value\" }}"),
        "notify" => "true or false".into(),
        "failure-threshold" | "success-threshold" | "restarts" => "a positive integer".into(),
        _ => "a quoted string, e.g. \"3s\"".into(),
    }
}

// ---------------------------------------------------------------------------
// Scalars
// ---------------------------------------------------------------------------

pub use crate::units::{parse_duration, parse_size};

/// Parse "SIGTERM", "TERM" or "sigterm".
pub fn parse_signal(s: &str) -> Result<Signal, String> {
    let upper = s.trim().to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| format!("`{s}` is not a signal name"))
}

// ---------------------------------------------------------------------------
// Resolution
// ---------------------------------------------------------------------------

/// Parse and validate one service directory. `name` is its directory name.
/// Problems are appended to `problems`; returns the service when the
/// directory itself had none (cross-service checks are done by
/// [`load_dir`]).
pub fn load_service(dir: &Path, problems: &mut Vec<Problem>) -> Option<Service> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let manifest = dir.join(MANIFEST);
    let loader_path = dir.join(LOADER);
    let has_loader = loader_path.is_file();
    let mut c = Collector::new(&manifest);

    if name.is_empty()
        || !name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
    {
        c.push(
            "-",
            format!("service directory name `{name}` is not a valid service name"),
            "rename the directory using letters, digits, `-`, `_` and `.`",
        );
    }

    let raw = if manifest.is_file() {
        match std::fs::read_to_string(&manifest) {
            Ok(text) => parse_raw(&text, &mut c),
            Err(e) => {
                c.push("-", format!("cannot read: {e}"), "make the file readable");
                None
            }
        }
    } else if has_loader {
        Some(RawService::default())
    } else {
        c.push(
            "-",
            "missing: a service directory needs service.toml or loader.wasm",
            "add a service.toml with `command = [...]`, or remove the directory",
        );
        None
    };

    let service = raw.and_then(|raw| resolve(&name, dir, raw, has_loader, &mut c));
    let ok = c.problems.is_empty();
    problems.append(&mut c.problems);
    if ok { service } else { None }
}

/// Like [`load_service`], but also returns a service resolved with
/// defaults in place of its broken fields, so that cross-service checks
/// can still look at its `after` list. The bool is true when it is valid.
fn load_service_partial(dir: &Path, problems: &mut Vec<Problem>) -> Option<(Service, bool)> {
    let before = problems.len();
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let manifest = dir.join(MANIFEST);
    let has_loader = dir.join(LOADER).is_file();
    let valid = load_service(dir, problems);
    if let Some(s) = valid {
        return Some((s, true));
    }
    // Re-parse quietly for the partial form.
    let mut c = Collector::new(&manifest);
    let raw = if manifest.is_file() {
        std::fs::read_to_string(&manifest)
            .ok()
            .and_then(|t| parse_raw(&t, &mut c))
    } else {
        None
    };
    debug_assert!(problems.len() > before);
    raw.and_then(|raw| resolve(&name, dir, raw, has_loader, &mut c))
        .map(|s| (s, false))
}

/// Parse manifest text into the raw form, reporting every unknown key and
/// every mistyped key.
fn parse_raw(text: &str, c: &mut Collector<'_>) -> Option<RawService> {
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
    ] {
        if let Some(toml::Value::Table(sub)) = table.get_mut(key) {
            strip_unknown(sub, fields, key, c);
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
    let mut top = table.clone();
    if !ok {
        // Already reported in detail; check the rest without them.
        for key in ["give-up", "grants", "loader", "checks"] {
            top.remove(key);
        }
    }
    let raw = deserialize_each::<RawService>(&top, "", c);
    if ok { raw } else { None }
}

fn check_nested<T>(value: &toml::Value, prefix: &str, c: &mut Collector<'_>) -> bool
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

fn duration_field(
    c: &mut Collector<'_>,
    field: &str,
    value: Option<&str>,
    default: Duration,
) -> Duration {
    match value {
        None => default,
        Some(s) => parse_duration(s).unwrap_or_else(|e| {
            c.push(
                field,
                e,
                "use a number with a unit: \"500ms\", \"3s\", \"2m\", \"1h\"",
            );
            default
        }),
    }
}

fn resolve(
    name: &str,
    dir: &Path,
    raw: RawService,
    has_loader: bool,
    c: &mut Collector<'_>,
) -> Option<Service> {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());

    // cwd first: relative commands resolve against it.
    let cwd = match &raw.cwd {
        None => dir.clone(),
        Some(s) => {
            let p = dir.join(s);
            if !p.is_dir() {
                c.push(
                    "cwd",
                    format!("`{}` is not a directory", p.display()),
                    "create it or fix the path (relative paths start at the service directory)",
                );
            }
            p
        }
    };

    let command = match (raw.command, raw.shell, has_loader) {
        (Some(_), Some(_), _) => {
            c.push(
                "command",
                "both `command` and `shell` are set",
                "keep one: `command` is an argv list, `shell` a sh -c string",
            );
            None
        }
        (Some(argv), None, loader) => {
            if loader {
                c.push(
                    "command",
                    "the command of a service with loader.wasm comes from the loader's `spawn`",
                    "remove `command` or loader.wasm",
                );
            }
            if argv.is_empty() || argv[0].is_empty() {
                c.push(
                    "command",
                    "empty command",
                    "give the program and its arguments, e.g. [\"sleep\", \"100\"]",
                );
            } else {
                check_program(&argv[0], &cwd, c);
            }
            Some(argv)
        }
        (None, Some(script), loader) => {
            if loader {
                c.push(
                    "shell",
                    "the command of a service with loader.wasm comes from the loader's `spawn`",
                    "remove `shell` or loader.wasm",
                );
            }
            if script.trim().is_empty() {
                c.push(
                    "shell",
                    "empty shell command",
                    "write the command, or use `command = [...]`",
                );
            }
            Some(vec!["/bin/sh".into(), "-c".into(), script])
        }
        (None, None, false) => {
            c.push(
                "command",
                "no command",
                "add `command = [\"program\", \"arg\"]` (or `shell = \"...\"`, or a loader.wasm)",
            );
            None
        }
        (None, None, true) => None,
    };

    let mut env: Vec<(String, String)> = Vec::new();
    for (k, v) in raw.env.unwrap_or_default() {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            c.push(
                format!("env.{k}"),
                "invalid environment variable",
                "names must be non-empty without `=`; no NUL bytes",
            );
        }
        env.push((k, v));
    }
    let inherit_env = raw.inherit_env.unwrap_or_default();
    for k in &inherit_env {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            c.push(
                "inherit-env",
                format!("`{k}` is not a variable name"),
                "list names only, e.g. [\"PATH\", \"HOME\"]",
            );
        }
    }

    let stop_signal = match raw.stop_signal.as_deref() {
        None => Signal::SIGTERM,
        Some(s) => parse_signal(s).unwrap_or_else(|e| {
            c.push(
                "stop-signal",
                e,
                "use a name like \"SIGTERM\", \"SIGINT\" or \"SIGQUIT\"",
            );
            Signal::SIGTERM
        }),
    };
    if matches!(stop_signal, Signal::SIGKILL | Signal::SIGSTOP) && raw.stop_signal.is_some() {
        // SIGKILL is allowed (no grace) but SIGSTOP would never stop anything.
        if stop_signal == Signal::SIGSTOP {
            c.push(
                "stop-signal",
                "SIGSTOP does not stop a service",
                "use SIGTERM (the default) or SIGKILL",
            );
        }
    }
    let stop_grace = duration_field(
        c,
        "stop-grace",
        raw.stop_grace.as_deref(),
        Duration::from_secs(3),
    );

    let defaults = RestartPolicy::default();
    let mode = match raw.restart.as_deref() {
        None | Some("always") => RestartMode::Always,
        Some("on-failure") => RestartMode::OnFailure,
        Some("never") => RestartMode::Never,
        Some(other) => {
            let fix = match did_you_mean(other, &["always", "on-failure", "never"]) {
                Some(m) => format!("did you mean \"{m}\"?"),
                None => "use \"always\", \"on-failure\" or \"never\"".into(),
            };
            c.push("restart", format!("unknown restart policy `{other}`"), fix);
            RestartMode::Always
        }
    };
    let backoff = match raw.backoff {
        None => defaults.backoff.clone(),
        Some(list) if list.is_empty() => {
            c.push(
                "backoff",
                "empty backoff list",
                "give at least one delay, e.g. [\"0s\", \"5s\"]",
            );
            defaults.backoff.clone()
        }
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, s)| duration_field(c, &format!("backoff[{i}]"), Some(s), Duration::ZERO))
            .collect(),
    };
    let stable_uptime = duration_field(
        c,
        "stable-uptime",
        raw.stable_uptime.as_deref(),
        defaults.stable_uptime,
    );
    let give_up = raw.give_up.map(|g| {
        let restarts = g.restarts.unwrap_or_else(|| {
            c.push(
                "give-up.restarts",
                "missing",
                "add `restarts = N` (give up after N restarts within the window)",
            );
            0
        });
        let window = match g.window.as_deref() {
            None => {
                c.push("give-up.window", "missing", "add `window = \"60s\"`");
                Duration::from_secs(60)
            }
            Some(s) => duration_field(c, "give-up.window", Some(s), Duration::from_secs(60)),
        };
        if window.is_zero() {
            c.push(
                "give-up.window",
                "zero window",
                "use a positive duration, e.g. \"60s\"",
            );
        }
        GiveUp { restarts, window }
    });
    let success_codes = raw.success_codes.unwrap_or_else(|| vec![0]);
    for code in &success_codes {
        if !(0..=255).contains(code) {
            c.push(
                "success-codes",
                format!("{code} is not an exit code"),
                "exit codes are 0..=255",
            );
        }
    }

    let after = raw.after.unwrap_or_default();
    let mut seen = BTreeSet::new();
    for a in &after {
        if a == name {
            c.push(
                "after",
                "a service cannot wait for itself",
                format!("remove \"{a}\" from `after`"),
            );
        }
        if !seen.insert(a) {
            c.push(
                "after",
                format!("\"{a}\" is listed twice"),
                "list each dependency once",
            );
        }
    }

    let grants = {
        let g = raw.grants.unwrap_or_default();
        let hosts = g.hosts.unwrap_or_default();
        for h in &hosts {
            if h.trim().is_empty() || h.contains(char::is_whitespace) {
                c.push(
                    "grants.hosts",
                    format!("`{h}` is not a host pattern"),
                    "use host:port patterns such as \"127.0.0.1:8080\" or \"http://localhost:*\"",
                );
            }
        }
        let paths: Vec<PathBuf> = g
            .paths
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                if p.is_empty() {
                    c.push("grants.paths", "empty path", "remove it or give a path");
                }
                dir.join(p)
            })
            .collect();
        let memory = match g.memory.as_deref() {
            None => 64 << 20,
            Some(s) => parse_size(s).unwrap_or_else(|e| {
                c.push("grants.memory", e, "use a size such as \"64MiB\"");
                64 << 20
            }),
        };
        if memory < (1 << 20) {
            c.push(
                "grants.memory",
                "below 1MiB, no check can run in that",
                "use at least \"1MiB\", e.g. \"64MiB\"",
            );
        }
        if let Err(errors) = crate::wasm::Grants::parse(&hosts, &paths) {
            for e in errors {
                let field = match e {
                    crate::wasm::GrantError::Host { .. } => "grants.hosts",
                    crate::wasm::GrantError::Path { .. } => "grants.paths",
                };
                c.push(field, e.to_string(), "fix or remove the grant");
            }
        }
        GrantSpec {
            hosts,
            paths,
            memory,
        }
    };

    let mut checks = Checks::default();
    let raw_checks = raw.checks.unwrap_or_default();
    for (phase, raw_check) in [
        (Phase::Startup, raw_checks.startup),
        (Phase::Readiness, raw_checks.readiness),
        (Phase::Liveness, raw_checks.liveness),
    ] {
        let Some(rc) = raw_check else { continue };
        let spec = resolve_check(phase, &dir, rc, c);
        match phase {
            Phase::Startup => checks.startup = spec,
            Phase::Readiness => checks.readiness = spec,
            Phase::Liveness => checks.liveness = spec,
        }
    }

    let loader = match (has_loader, raw.loader) {
        (true, l) => Some(LoaderSpec {
            path: dir.join(LOADER),
            config: l
                .and_then(|l| l.config)
                .unwrap_or_default()
                .into_iter()
                .collect(),
        }),
        (false, Some(_)) => {
            c.push(
                "loader",
                "`[loader]` is set but there is no loader.wasm",
                "add loader.wasm to the service directory or remove `[loader]`",
            );
            None
        }
        (false, None) => None,
    };

    let notify = resolve_notify(&raw.notify, &raw.watchdog_sec, &raw.notify_timeout, c);

    Some(Service {
        name: name.to_string(),
        cwd,
        command,
        env,
        inherit_env,
        stop_signal,
        stop_grace,
        restart: RestartPolicy {
            mode,
            backoff,
            stable_uptime,
            give_up,
            success_codes,
        },
        after,
        notify,
        grants,
        checks,
        loader,
        dir,
    })
}

/// `notify`, `watchdog-sec` and `notify-timeout`; the last two only mean
/// something with `notify = true`.
fn resolve_notify(
    notify: &Option<bool>,
    watchdog: &Option<String>,
    timeout: &Option<String>,
    c: &mut Collector<'_>,
) -> Option<NotifySpec> {
    let watchdog = watchdog.as_deref().map(|s| {
        let d = duration_field(c, "watchdog-sec", Some(s), Duration::ZERO);
        if d.is_zero() && parse_duration(s).is_ok() {
            c.push(
                "watchdog-sec",
                "a zero watchdog would fail at once",
                "give the longest silence to allow, e.g. \"5s\", or remove it",
            );
        }
        d
    });
    let timeout = duration_field(
        c,
        "notify-timeout",
        timeout.as_deref(),
        DEFAULT_NOTIFY_TIMEOUT,
    );
    if *notify != Some(true) {
        for (field, set) in [
            ("watchdog-sec", watchdog.is_some()),
            ("notify-timeout", timeout != DEFAULT_NOTIFY_TIMEOUT),
        ] {
            if set {
                c.push(
                    field,
                    "only used by services that send notify messages",
                    "add `notify = true` (the program speaks sd_notify) or remove it",
                );
            }
        }
        return None;
    }
    Some(NotifySpec {
        watchdog: watchdog.filter(|d| !d.is_zero()),
        timeout,
    })
}

fn check_program(program: &str, cwd: &Path, c: &mut Collector<'_>) {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        let p = cwd.join(program);
        if !executable(&p) {
            c.push(
                "command",
                format!("`{}` is not an executable file", p.display()),
                "fix the path (relative paths start at `cwd`) or `chmod +x` it",
            );
        }
    } else {
        let path = std::env::var_os("PATH").unwrap_or_default();
        if !std::env::split_paths(&path).any(|d| executable(&d.join(program))) {
            c.push(
                "command",
                format!("`{program}` is not in PATH"),
                "install it or give its absolute path",
            );
        }
    }
}

fn resolve_check(
    phase: Phase,
    dir: &Path,
    rc: RawCheck,
    c: &mut Collector<'_>,
) -> Option<CheckSpec> {
    let prefix = format!("checks.{phase}");
    let f = |k: &str| format!("{prefix}.{k}");
    let check = match rc.check.as_deref() {
        None => {
            c.push(
                f("check"),
                "missing",
                "name the check: \"builtin:http\" or a .wasm file in the service directory",
            );
            return None;
        }
        Some(s) => match s.strip_prefix("builtin:") {
            Some(b) => {
                if b.is_empty()
                    || !b
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
                {
                    c.push(
                        f("check"),
                        format!("`{s}` is not a builtin name"),
                        "use e.g. \"builtin:http\" or \"builtin:tcp\"",
                    );
                }
                let known = crate::wasm::builtins::names();
                if !b.is_empty() && !known.contains(&b) {
                    let fix = match did_you_mean(b, known) {
                        Some(m) => format!("did you mean \"builtin:{m}\"?"),
                        None => format!(
                            "use one of {}",
                            known
                                .iter()
                                .map(|n| format!("builtin:{n}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    c.push(f("check"), format!("unknown builtin `{s}`"), fix);
                }
                CheckRef::Builtin(b.to_string())
            }
            None => {
                let rel = Path::new(s);
                let path = dir.join(rel);
                if rel.is_absolute()
                    || rel
                        .components()
                        .any(|c| matches!(c, std::path::Component::ParentDir))
                {
                    c.push(
                        f("check"),
                        format!("`{s}` is outside the service directory"),
                        "copy the .wasm into the service directory and name it relative to it",
                    );
                } else if rel.extension().and_then(|e| e.to_str()) != Some("wasm") {
                    c.push(
                        f("check"),
                        format!("`{s}` is not a .wasm file"),
                        "name a compiled component ending in .wasm, or \"builtin:NAME\"",
                    );
                } else if !path.is_file() {
                    c.push(
                        f("check"),
                        format!("`{s}` does not exist"),
                        format!("put the component at {}", path.display()),
                    );
                }
                CheckRef::File(path)
            }
        },
    };
    let mut spec = CheckSpec::defaults(phase, check);
    spec.period = duration_field(c, &f("period"), rc.period.as_deref(), spec.period);
    spec.timeout = duration_field(c, &f("timeout"), rc.timeout.as_deref(), spec.timeout);
    spec.initial_delay = duration_field(
        c,
        &f("initial-delay"),
        rc.initial_delay.as_deref(),
        spec.initial_delay,
    );
    if spec.period.is_zero() {
        c.push(
            f("period"),
            "zero period",
            "use a positive duration, e.g. \"1s\"",
        );
    }
    if spec.timeout.is_zero() {
        c.push(
            f("timeout"),
            "zero timeout",
            "use a positive duration, e.g. \"1s\"",
        );
    }
    for (key, value, slot) in [
        (
            "failure-threshold",
            rc.failure_threshold,
            &mut spec.failure_threshold,
        ),
        (
            "success-threshold",
            rc.success_threshold,
            &mut spec.success_threshold,
        ),
    ] {
        if let Some(v) = value {
            if v == 0 {
                c.push(
                    f(key),
                    "must be at least 1",
                    format!("set `{key} = 1` or more"),
                );
            }
            *slot = v;
        }
    }
    if phase == Phase::Liveness && spec.success_threshold != 1 && rc.success_threshold.is_some() {
        c.push(
            f("success-threshold"),
            "liveness has no success threshold (any ok resets the failure count)",
            "remove it",
        );
    }
    match (phase, rc.startup_timeout.as_deref()) {
        (Phase::Startup, s) => {
            spec.startup_timeout =
                duration_field(c, &f("startup-timeout"), s, spec.startup_timeout);
            if spec.startup_timeout.is_zero() {
                c.push(
                    f("startup-timeout"),
                    "zero startup timeout",
                    "use a positive duration, e.g. \"60s\"",
                );
            }
        }
        (_, Some(_)) => c.push(
            f("startup-timeout"),
            "only the startup check has a startup timeout",
            format!("move it to [checks.startup] or remove it from [{prefix}]"),
        ),
        (_, None) => {}
    }
    spec.config = rc.config.unwrap_or_default().into_iter().collect();
    Some(spec)
}

/// Load every service under `dir` (each subdirectory not starting with
/// `.`), checking dependencies across services. Returns the services sorted
/// by name, or every problem found.
pub fn load_dir(dir: &Path) -> Result<Vec<Service>, ValidationReport> {
    let mut problems = Vec::new();
    let mut services = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            return Err(ValidationReport {
                problems: vec![Problem {
                    path: dir.to_path_buf(),
                    field: "-".into(),
                    problem: format!("cannot read the checks directory: {e}"),
                    fix: "pass an existing directory with --checks".into(),
                }],
            });
        }
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_none_or(|n| !n.starts_with('.'))
        })
        .collect();
    dirs.sort();
    // Names of every service directory, valid or not, so that a broken
    // dependency is reported once (as broken), not also as unknown.
    let names: BTreeSet<String> = dirs
        .iter()
        .filter_map(|d| d.file_name().and_then(|n| n.to_str()).map(str::to_string))
        .collect();
    let mut all = Vec::new();
    for d in &dirs {
        if let Some((s, valid)) = load_service_partial(d, &mut problems) {
            if valid {
                services.push(s.clone());
            }
            all.push(s);
        }
    }
    check_dependencies(&all, &names, &mut problems);
    if problems.is_empty() {
        Ok(services)
    } else {
        Err(ValidationReport { problems })
    }
}

fn check_dependencies(services: &[Service], names: &BTreeSet<String>, problems: &mut Vec<Problem>) {
    let known: Vec<&str> = names.iter().map(String::as_str).collect();
    for s in services {
        for a in &s.after {
            if !names.contains(a) {
                let fix = match did_you_mean(a, &known) {
                    Some(m) => format!("did you mean \"{m}\"?"),
                    None => format!("create the service directory `{a}` or remove it from `after`"),
                };
                problems.push(Problem {
                    path: s.dir.join(MANIFEST),
                    field: "after".into(),
                    problem: format!("unknown service \"{a}\""),
                    fix,
                });
            }
        }
    }
    // Cycles: depth-first search, reporting each cycle once.
    let by_name: BTreeMap<&str, &Service> = services.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut reported: BTreeSet<Vec<String>> = BTreeSet::new();
    fn visit<'a>(
        name: &'a str,
        by_name: &BTreeMap<&'a str, &'a Service>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
        cycles: &mut Vec<Vec<String>>,
    ) {
        if done.contains(name) {
            return;
        }
        if let Some(pos) = stack.iter().position(|n| *n == name) {
            let mut cycle: Vec<String> = stack[pos..].iter().map(|s| s.to_string()).collect();
            cycle.push(name.to_string());
            cycles.push(cycle);
            return;
        }
        let Some(s) = by_name.get(name) else { return };
        stack.push(name);
        for a in &s.after {
            visit(a, by_name, stack, done, cycles);
        }
        stack.pop();
        done.insert(name);
    }
    let mut cycles = Vec::new();
    for name in by_name.keys() {
        visit(name, &by_name, &mut Vec::new(), &mut done, &mut cycles);
    }
    for cycle in cycles {
        // Normalise the rotation so the same cycle is reported once.
        if cycle.len() <= 2 {
            continue; // `after = [itself]`, reported on its own
        }
        let mut key: Vec<String> = cycle[..cycle.len() - 1].to_vec();
        key.sort();
        if !reported.insert(key) {
            continue;
        }
        let first = &cycle[0];
        if let Some(s) = by_name.get(first.as_str()) {
            problems.push(Problem {
                path: s.dir.join(MANIFEST),
                field: "after".into(),
                problem: format!("dependency cycle: {}", cycle.join(" -> ")),
                fix: "remove one of these `after` entries".into(),
            });
        }
    }
}

/// Services in start order: every service after everything in its `after`
/// list (ties by name). Shutdown uses the reverse. The input must be
/// acyclic, as [`load_dir`] guarantees.
pub fn start_order(services: &[Service]) -> Vec<&Service> {
    let by_name: BTreeMap<&str, &Service> = services.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut out: Vec<&Service> = Vec::new();
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    fn place<'a>(
        s: &'a Service,
        by_name: &BTreeMap<&str, &'a Service>,
        placed: &mut BTreeSet<&'a str>,
        out: &mut Vec<&'a Service>,
        depth: usize,
    ) {
        if placed.contains(s.name.as_str()) || depth > by_name.len() {
            return;
        }
        for a in &s.after {
            if let Some(d) = by_name.get(a.as_str()) {
                place(d, by_name, placed, out, depth + 1);
            }
        }
        if placed.insert(s.name.as_str()) {
            out.push(s);
        }
    }
    for s in by_name.values() {
        place(s, &by_name, &mut placed, &mut out, 0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A scratch directory removed on drop.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p =
                std::env::temp_dir().join(format!("vigil-test-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).expect("create temp dir");
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn service(root: &Path, name: &str, manifest: &str) -> PathBuf {
        let d = root.join(name);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join(MANIFEST), manifest).expect("write manifest");
        d
    }

    fn problems(root: &Path) -> Vec<String> {
        match load_dir(root) {
            Ok(_) => vec![],
            Err(r) => r.problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn scalars() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("3").is_err());
        assert!(parse_duration("3 parsecs").is_err());
        assert!(parse_duration("s").is_err());
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999999GiB").is_err());
        assert_eq!(parse_signal("SIGTERM"), Ok(Signal::SIGTERM));
        assert_eq!(parse_signal("int"), Ok(Signal::SIGINT));
        assert!(parse_signal("SIGNOPE").is_err());
    }

    #[test]
    fn minimal_manifest_gets_defaults() {
        let t = TempDir::new("cfg-min");
        service(&t.0, "web", "command = [\"sleep\", \"100\"]\n");
        let services = load_dir(&t.0).expect("valid");
        let s = &services[0];
        assert_eq!(s.name, "web");
        assert_eq!(
            s.command.as_deref(),
            Some(&["sleep".to_string(), "100".to_string()][..])
        );
        assert_eq!(s.stop_signal, Signal::SIGTERM);
        assert_eq!(s.stop_grace, Duration::from_secs(3));
        assert_eq!(s.restart, RestartPolicy::default());
        assert_eq!(s.restart.backoff, default_backoff());
        assert_eq!(s.grants.memory, 64 << 20);
        assert_eq!(s.cwd, s.dir);
        assert!(s.loader.is_none());
    }

    #[test]
    fn full_manifest_resolves() {
        let t = TempDir::new("cfg-full");
        let d = service(
            &t.0,
            "api",
            r#"
shell = "exec sleep 100"
env = { MODE = "prod" }
inherit-env = ["PATH"]
cwd = "."
stop-signal = "SIGINT"
stop-grace = "500ms"
restart = "on-failure"
backoff = ["0s", "1s"]
stable-uptime = "2m"
give-up = { restarts = 5, window = "30s" }
success-codes = [0, 143]
after = ["db"]

[grants]
hosts = ["127.0.0.1:8080"]
paths = ["heartbeat"]
memory = "32MiB"

[checks.startup]
check = "builtin:tcp"
period = "200ms"
startup-timeout = "10s"
[checks.startup.config]
port = "8080"

[checks.liveness]
check = "live.wasm"
failure-threshold = 2
"#,
        );
        std::fs::write(d.join("live.wasm"), b"\0asm").expect("write wasm");
        service(&t.0, "db", "command = [\"sleep\", \"100\"]\n");
        let services = load_dir(&t.0).expect("valid");
        let api = services.iter().find(|s| s.name == "api").expect("api");
        assert_eq!(api.command.as_ref().map(|c| c[0].as_str()), Some("/bin/sh"));
        assert_eq!(api.env, vec![("MODE".into(), "prod".into())]);
        assert_eq!(api.stop_signal, Signal::SIGINT);
        assert_eq!(api.stop_grace, Duration::from_millis(500));
        assert_eq!(api.restart.mode, RestartMode::OnFailure);
        assert_eq!(
            api.restart.give_up,
            Some(GiveUp {
                restarts: 5,
                window: Duration::from_secs(30)
            })
        );
        assert_eq!(api.restart.success_codes, vec![0, 143]);
        assert_eq!(api.grants.paths, vec![api.dir.join("heartbeat")]);
        assert_eq!(api.grants.memory, 32 << 20);
        let startup = api.checks.startup.as_ref().expect("startup");
        assert_eq!(startup.check, CheckRef::Builtin("tcp".into()));
        assert_eq!(startup.period, Duration::from_millis(200));
        assert_eq!(startup.startup_timeout, Duration::from_secs(10));
        assert_eq!(startup.config, vec![("port".into(), "8080".into())]);
        let live = api.checks.liveness.as_ref().expect("liveness");
        assert_eq!(live.check, CheckRef::File(api.dir.join("live.wasm")));
        assert_eq!(live.failure_threshold, 2);
        let order: Vec<&str> = start_order(&services)
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(order, vec!["db", "api"]);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let t = TempDir::new("cfg-all");
        service(
            &t.0,
            "a",
            r#"
comand = ["sleep", "1"]
stop-grace = "3 parsecs"
restart = "allways"
backoff = ["1s", "soon"]
after = ["bb"]
[checks.liveness]
check = "../escape.wasm"
perod = "1s"
startup-timeout = "5s"
[grants]
memory = "lots"
"#,
        );
        service(&t.0, "b", "command = 42\nnotify = \"yes\"\n");
        service(
            &t.0,
            "c",
            "command = [\"no-such-program-xyz\"]\nstop-signal = \"SIGNOPE\"\n[checks.readiness]\ncheck = \"builtin:htp\"\n[grants]\nhosts = [\"ftp://x:99999\"]\n",
        );
        std::fs::create_dir_all(t.0.join("empty")).expect("mkdir");
        let p = problems(&t.0);
        let has = |needle: &str| p.iter().any(|l| l.contains(needle));
        assert!(
            has("a/service.toml:comand: unknown key (fix: did you mean `command`?)"),
            "{p:#?}"
        );
        assert!(
            has(
                "a/service.toml:checks.liveness.perod: unknown key (fix: did you mean `checks.liveness.period`?)"
            ),
            "{p:#?}"
        );
        assert!(has("b/service.toml:command:"), "{p:#?}");
        assert!(has("b/service.toml:notify:"), "{p:#?}");
        assert!(
            has("c/service.toml:command: `no-such-program-xyz` is not in PATH"),
            "{p:#?}"
        );
        assert!(has("c/service.toml:stop-signal:"), "{p:#?}");
        assert!(has("c/service.toml:grants.hosts: host grant"), "{p:#?}");
        assert!(
            has(
                "c/service.toml:checks.readiness.check: unknown builtin `builtin:htp` (fix: did you mean \"builtin:http\"?)"
            ),
            "{p:#?}"
        );
        assert!(has("empty/service.toml:-: missing"), "{p:#?}");
        // Problems of `a` beyond the unknown keys are reported too.
        assert!(has("a/service.toml:stop-grace:"), "{p:#?}");
        assert!(
            has(
                "a/service.toml:restart: unknown restart policy `allways` (fix: did you mean \"always\"?)"
            ),
            "{p:#?}"
        );
        assert!(has("a/service.toml:backoff[1]:"), "{p:#?}");
        assert!(
            has("a/service.toml:checks.liveness.check: `../escape.wasm` is outside"),
            "{p:#?}"
        );
        assert!(
            has("a/service.toml:checks.liveness.startup-timeout: only the startup check"),
            "{p:#?}"
        );
        assert!(has("a/service.toml:grants.memory:"), "{p:#?}");
        assert!(has("a/service.toml:command: no command"), "{p:#?}");
        // `bb` is a known directory? no: unknown, with a suggestion of `b`.
        assert!(
            has("a/service.toml:after: unknown service \"bb\" (fix: did you mean \"b\"?)"),
            "{p:#?}"
        );
    }

    #[test]
    fn syntax_error_names_the_line() {
        let t = TempDir::new("cfg-syntax");
        service(&t.0, "x", "command = [\"sleep\"\n\nstop-grace = \n");
        let p = problems(&t.0);
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(p[0].contains("x/service.toml:-: line "), "{p:#?}");
    }

    #[test]
    fn cycles_and_unknown_dependencies() {
        let t = TempDir::new("cfg-cycle");
        service(&t.0, "a", "command = [\"true\"]\nafter = [\"b\"]\n");
        service(&t.0, "b", "command = [\"true\"]\nafter = [\"c\"]\n");
        service(&t.0, "c", "command = [\"true\"]\nafter = [\"a\"]\n");
        service(
            &t.0,
            "d",
            "command = [\"true\"]\nafter = [\"zzz\", \"d\"]\n",
        );
        let p = problems(&t.0);
        let cycles: Vec<&String> = p
            .iter()
            .filter(|l| l.contains("dependency cycle"))
            .collect();
        assert_eq!(cycles.len(), 1, "{p:#?}");
        assert!(cycles[0].contains("a -> b -> c -> a"), "{p:#?}");
        assert!(
            p.iter()
                .any(|l| l.contains("d/service.toml:after: unknown service \"zzz\"")),
            "{p:#?}"
        );
        assert!(
            p.iter()
                .any(|l| l.contains("d/service.toml:after: a service cannot wait for itself")),
            "{p:#?}"
        );
    }

    #[test]
    fn loader_only_directory_is_a_service() {
        let t = TempDir::new("cfg-loader");
        let d = t.0.join("dyn");
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join(LOADER), b"\0asm").expect("write");
        let services = load_dir(&t.0).expect("valid");
        assert_eq!(services[0].command, None);
        assert_eq!(
            services[0].loader.as_ref().map(|l| l.path.clone()),
            Some(services[0].dir.join(LOADER))
        );

        // [loader] without loader.wasm is a problem; with it, config is kept.
        service(
            &t.0,
            "other",
            "command = [\"true\"]\n[loader.config]\nmode = \"x\"\n",
        );
        let p = problems(&t.0);
        assert!(
            p.iter().any(|l| l.contains(
                "other/service.toml:loader: `[loader]` is set but there is no loader.wasm"
            )),
            "{p:#?}"
        );
        std::fs::write(
            t.0.join("other").join(MANIFEST),
            "[loader.config]\nmode = \"x\"\n",
        )
        .expect("write");
        std::fs::write(t.0.join("other").join(LOADER), b"\0asm").expect("write");
        let services = load_dir(&t.0).expect("valid");
        let other = services.iter().find(|s| s.name == "other").expect("other");
        assert_eq!(
            other.loader.as_ref().map(|l| l.config.clone()),
            Some(vec![("mode".into(), "x".into())])
        );
    }

    #[test]
    fn relative_command_checks_executable_bit() {
        let t = TempDir::new("cfg-exec");
        let d = service(&t.0, "s", "command = [\"./run.sh\"]\n");
        std::fs::write(d.join("run.sh"), "#!/bin/sh\n").expect("write");
        assert!(
            problems(&t.0)
                .iter()
                .any(|l| l.contains("is not an executable file"))
        );
        std::fs::set_permissions(d.join("run.sh"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        assert!(problems(&t.0).is_empty());
    }

    #[test]
    fn fields_probe_sees_the_derive() {
        assert!(fields_of::<RawService>().contains(&"stop-grace"));
        assert!(fields_of::<RawCheck>().contains(&"initial-delay"));
        assert_eq!(
            fields_of::<RawChecks>(),
            &["startup", "readiness", "liveness"]
        );
    }

    #[test]
    fn notify_fields_need_notify_and_valid_durations() {
        let t = TempDir::new("cfg-notify");
        service(
            &t.0,
            "n",
            "command = [\"sleep\", \"1\"]\nnotify = true\nwatchdog-sec = \"5s\"\n",
        );
        let services = load_dir(&t.0).expect("valid");
        assert_eq!(
            services[0].notify,
            Some(NotifySpec {
                watchdog: Some(Duration::from_secs(5)),
                timeout: DEFAULT_NOTIFY_TIMEOUT,
            })
        );

        let t = TempDir::new("cfg-notify-bad");
        service(
            &t.0,
            "a",
            "command = [\"sleep\", \"1\"]\nwatchdog-sec = \"5s\"\nnotify-timeout = \"9s\"\n",
        );
        service(
            &t.0,
            "b",
            "command = [\"sleep\", \"1\"]\nnotify = true\nwatchdog-sec = \"soon\"\n",
        );
        let p = problems(&t.0);
        let has = |needle: &str| p.iter().any(|l| l.contains(needle));
        assert!(has("a/service.toml:watchdog-sec: only used by"), "{p:#?}");
        assert!(has("a/service.toml:notify-timeout: only used by"), "{p:#?}");
        assert!(has("add `notify = true`"), "{p:#?}");
        assert!(has("b/service.toml:watchdog-sec:"), "{p:#?}");
    }
}
