//! `[checks.*]` -> [`CheckSpec`]: each phase's check, timings and thresholds.

use std::path::Path;

use super::model::{CheckSpec, Checks};
use super::problems::{Collector, did_you_mean};
use super::raw::{RawCheck, RawChecks};
use super::resolve::duration_field;
use crate::wasm::{CheckSource, Phase};

/// `[checks.startup]`, `[checks.readiness]` and `[checks.liveness]`.
pub(super) fn resolve_checks(
    dir: &Path,
    raw: Option<RawChecks>,
    program: Option<&Path>,
    shell: bool,
    c: &mut Collector<'_>,
) -> Checks {
    let mut checks = Checks::default();
    let raw_checks = raw.unwrap_or_default();
    for (phase, raw_check) in [
        (Phase::Startup, raw_checks.startup),
        (Phase::Readiness, raw_checks.readiness),
        (Phase::Liveness, raw_checks.liveness),
    ] {
        let Some(rc) = raw_check else { continue };
        let spec = resolve_check(phase, dir, rc, program, shell, c);
        match phase {
            Phase::Startup => checks.startup = spec,
            Phase::Readiness => checks.readiness = spec,
            Phase::Liveness => checks.liveness = spec,
        }
    }
    checks
}

/// One phase's check: its reference, then timings and thresholds over the
/// phase's defaults. `None` when it names no check at all.
fn resolve_check(
    phase: Phase,
    dir: &Path,
    rc: RawCheck,
    program: Option<&Path>,
    shell: bool,
    c: &mut Collector<'_>,
) -> Option<CheckSpec> {
    let prefix = format!("checks.{phase}");
    let f = |k: &str| format!("{prefix}.{k}");
    let Some(s) = rc.check.as_deref() else {
        c.push(
            f("check"),
            "missing",
            "name the check: \"builtin:http\", a .wasm file in the service directory or \"embedded:ROLE\"",
        );
        return None;
    };
    let check = if s.starts_with(super::embedded::PREFIX) {
        super::embedded::embedded_ref(s, program, shell, &f("check"), c)
    } else {
        check_ref(s, dir, &f("check"), c)
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
    if phase == Phase::Startup {
        spec.startup_failures = rc.failure_threshold;
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

/// The `check` key: `builtin:NAME` (a known builtin) or a `.wasm` file
/// inside the service directory.
pub(super) fn check_ref(s: &str, dir: &Path, field: &str, c: &mut Collector<'_>) -> CheckSource {
    match s.strip_prefix("builtin:") {
        Some(b) => {
            if b.is_empty()
                || !b
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            {
                c.push(
                    field,
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
                c.push(field, format!("unknown builtin `{s}`"), fix);
            }
            CheckSource::Builtin(b.to_string())
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
                    field,
                    format!("`{s}` is outside the service directory"),
                    "copy the .wasm into the service directory and name it relative to it",
                );
            } else if rel.extension().and_then(|e| e.to_str()) != Some("wasm") {
                c.push(
                    field,
                    format!("`{s}` is not a .wasm file"),
                    "name a compiled component ending in .wasm, or \"builtin:NAME\"",
                );
            } else if !path.is_file() {
                c.push(
                    field,
                    format!("`{s}` does not exist"),
                    format!("put the component at {}", path.display()),
                );
            }
            CheckSource::File(path)
        }
    }
}
