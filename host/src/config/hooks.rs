//! `[hooks.*]` -> [`Hooks`]: what runs around a service's start and stop.
//!
//! Four hooks, each either a command (run as the service, in its cwd and
//! environment, through the one spawn path) or a wasm check (run in the
//! same sandbox and with the same grants as the service's checks), with a
//! timeout. Their meaning in the service's life is the reducer's
//! (`supervisor/service/hooks.rs`); docs/hooks.md is the user's view.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::checks::check_ref;
use super::problems::{Collector, fields_of};
use super::raw::{check_nested, strip_unknown};
use super::resolve::duration_field;
use crate::wasm::CheckSource;

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookKind {
    /// Before each spawn; its failure fails the start.
    PreStart,
    /// After each spawn; the service is not ready until it succeeded.
    PostStart,
    /// Before the stop signal, within the stop grace; a failure is a warning.
    PreStop,
    /// After the child's whole process group is gone.
    PostStop,
}

impl HookKind {
    pub const ALL: [HookKind; 4] = [
        HookKind::PreStart,
        HookKind::PostStart,
        HookKind::PreStop,
        HookKind::PostStop,
    ];

    /// The manifest's name: `[hooks.pre-start]`, and the journal's.
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::PreStart => "pre-start",
            HookKind::PostStart => "post-start",
            HookKind::PreStop => "pre-stop",
            HookKind::PostStop => "post-stop",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            HookKind::PreStart => 0,
            HookKind::PostStart => 1,
            HookKind::PreStop => 2,
            HookKind::PostStop => 3,
        }
    }
}

impl std::fmt::Display for HookKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a hook runs.
#[derive(Debug, Clone, PartialEq)]
pub enum HookAction {
    /// argv, run as the service (cwd, environment, and whatever the spawn
    /// path applies to the service's child).
    Command(Vec<String>),
    /// A wasm check called once: `ok` succeeds, anything else fails.
    Check {
        check: CheckSource,
        config: Vec<(String, String)>,
    },
}

/// One hook.
#[derive(Debug, Clone, PartialEq)]
pub struct HookSpec {
    pub action: HookAction,
    /// A command is killed (its whole process group) and a check cut when
    /// it runs longer. A pre-stop hook is also cut by the stop grace.
    pub timeout: Duration,
}

/// Default hook `timeout`.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// The hooks of a service.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hooks {
    pub pre_start: Option<HookSpec>,
    pub post_start: Option<HookSpec>,
    pub pre_stop: Option<HookSpec>,
    pub post_stop: Option<HookSpec>,
}

impl Hooks {
    pub fn get(&self, kind: HookKind) -> Option<&HookSpec> {
        match kind {
            HookKind::PreStart => self.pre_start.as_ref(),
            HookKind::PostStart => self.post_start.as_ref(),
            HookKind::PreStop => self.pre_stop.as_ref(),
            HookKind::PostStop => self.post_stop.as_ref(),
        }
    }

    fn slot(&mut self, kind: HookKind) -> &mut Option<HookSpec> {
        match kind {
            HookKind::PreStart => &mut self.pre_start,
            HookKind::PostStart => &mut self.post_start,
            HookKind::PreStop => &mut self.pre_stop,
            HookKind::PostStop => &mut self.post_stop,
        }
    }

    /// The longest a post-stop hook may hold a stop up (zero without one).
    pub fn post_stop_timeout(&self) -> Duration {
        self.post_stop
            .as_ref()
            .map_or(Duration::ZERO, |h| h.timeout)
    }
}

/// `[hooks]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawHooks {
    pub pre_start: Option<RawHook>,
    pub post_start: Option<RawHook>,
    pub pre_stop: Option<RawHook>,
    pub post_stop: Option<RawHook>,
}

/// `[hooks.NAME]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawHook {
    pub command: Option<Vec<String>>,
    pub check: Option<String>,
    pub config: Option<BTreeMap<String, String>>,
    pub timeout: Option<String>,
}

/// Strip and report unknown keys of `[hooks]` and each `[hooks.NAME]`,
/// then type-check each hook key by key. False when a hook is mistyped
/// (already reported; the caller drops `[hooks]` from the rest).
pub(super) fn check_raw(table: &mut toml::Table, c: &mut Collector<'_>) -> bool {
    let Some(toml::Value::Table(hooks)) = table.get_mut("hooks") else {
        return match table.get("hooks") {
            None => true,
            Some(v) => check_nested::<RawHooks>(v, "hooks", c),
        };
    };
    strip_unknown(hooks, fields_of::<RawHooks>(), "hooks", c);
    let mut ok = true;
    for (name, value) in hooks.iter_mut() {
        let prefix = format!("hooks.{name}");
        if let toml::Value::Table(hook) = value {
            strip_unknown(hook, fields_of::<RawHook>(), &prefix, c);
        }
        ok &= check_nested::<RawHook>(value, &prefix, c);
    }
    ok
}

/// Every `[hooks.NAME]`: exactly one of `command` and `check`, `config`
/// only with a check, a positive `timeout`.
pub(super) fn resolve_hooks(
    dir: &Path,
    cwd: &Path,
    raw: Option<RawHooks>,
    c: &mut Collector<'_>,
) -> Hooks {
    let mut hooks = Hooks::default();
    let raw = raw.unwrap_or_default();
    for (kind, raw_hook) in [
        (HookKind::PreStart, raw.pre_start),
        (HookKind::PostStart, raw.post_start),
        (HookKind::PreStop, raw.pre_stop),
        (HookKind::PostStop, raw.post_stop),
    ] {
        if let Some(rh) = raw_hook {
            *hooks.slot(kind) = resolve_hook(kind, dir, cwd, rh, c);
        }
    }
    hooks
}

fn resolve_hook(
    kind: HookKind,
    dir: &Path,
    cwd: &Path,
    rh: RawHook,
    c: &mut Collector<'_>,
) -> Option<HookSpec> {
    let f = |k: &str| format!("hooks.{kind}.{k}");
    let timeout = duration_field(
        c,
        &f("timeout"),
        rh.timeout.as_deref(),
        DEFAULT_HOOK_TIMEOUT,
    );
    if timeout.is_zero() {
        c.push(
            f("timeout"),
            "zero timeout",
            "use a positive duration, e.g. \"5s\"",
        );
    }
    let action = match (rh.command, rh.check) {
        (Some(_), Some(_)) => {
            c.push(
                f("command"),
                "both `command` and `check` are set",
                "keep one: a hook runs a command or a check",
            );
            return None;
        }
        (None, None) => {
            c.push(
                f("command"),
                "a hook needs `command` or `check`",
                "add `command = [\"program\", \"arg\"]` or `check = \"builtin:http\"`",
            );
            return None;
        }
        (Some(argv), None) => {
            if rh.config.is_some() {
                c.push(
                    f("config"),
                    "`config` configures a check; this hook runs a command",
                    "remove it, or use `check = ...`",
                );
            }
            if argv.first().is_none_or(|p| p.is_empty()) {
                c.push(
                    f("command"),
                    "empty command",
                    "give the program and its arguments, e.g. [\"curl\", \"-X\", \"POST\", \"...\"]",
                );
                return None;
            }
            check_program(&argv[0], cwd, &f("command"), c);
            HookAction::Command(argv)
        }
        (None, Some(check)) => HookAction::Check {
            check: check_ref(&check, dir, &f("check"), c),
            config: rh.config.unwrap_or_default().into_iter().collect(),
        },
    };
    Some(HookSpec { action, timeout })
}

/// A hook's program that is not there: a warning (as for the service's
/// own command), since the run fails only when the hook does.
fn check_program(program: &str, cwd: &Path, field: &str, c: &mut Collector<'_>) {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let found = if program.contains('/') {
        executable(&cwd.join(program))
    } else {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path).any(|d| executable(&d.join(program)))
    };
    if !found {
        c.warn(
            field,
            format!("`{program}` is not an executable file or in PATH"),
            "install it or give its path (relative paths start at `cwd`)",
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::{MANIFEST, load_dir};
    use crate::test_support::TempDir;

    fn service(root: &Path, manifest: &str) -> PathBuf {
        let d = root.join("web");
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join(MANIFEST), manifest).expect("write manifest");
        d
    }

    #[test]
    fn each_hook_is_a_command_or_a_check_with_a_timeout() {
        let t = TempDir::new("cfg-hooks");
        service(
            &t.0,
            r#"command = ["sleep", "100"]
[hooks.pre-start]
command = ["true"]
[hooks.pre-stop]
check = "builtin:http"
timeout = "2s"
[hooks.pre-stop.config]
url = "http://127.0.0.1:8080/drain"
method = "POST"
"#,
        );
        let services = load_dir(&t.0).expect("valid").services;
        let hooks = &services[0].hooks;
        assert_eq!(
            hooks.pre_start,
            Some(HookSpec {
                action: HookAction::Command(vec!["true".into()]),
                timeout: DEFAULT_HOOK_TIMEOUT,
            })
        );
        assert_eq!(
            hooks.pre_stop,
            Some(HookSpec {
                action: HookAction::Check {
                    check: CheckSource::Builtin("http".into()),
                    config: vec![
                        ("method".into(), "POST".into()),
                        ("url".into(), "http://127.0.0.1:8080/drain".into()),
                    ],
                },
                timeout: Duration::from_secs(2),
            })
        );
        assert_eq!(hooks.post_start, None);
        assert_eq!(hooks.post_stop_timeout(), Duration::ZERO);
    }

    #[test]
    fn every_hook_problem_is_reported_with_its_field() {
        let t = TempDir::new("cfg-hooks-bad");
        let dir = service(
            &t.0,
            r#"command = ["sleep", "100"]
[hooks.pre-strat]
command = ["true"]
[hooks.pre-start]
command = ["true"]
check = "builtin:http"
[hooks.post-start]
timeout = "0"
[hooks.pre-stop]
command = []
config = { a = "b" }
[hooks.post-stop]
check = "builtin:htp"
timeot = "1s"
"#,
        );
        let problems: Vec<String> = match load_dir(&t.0) {
            Ok(_) => panic!("invalid hooks load"),
            Err(r) => r.problems.iter().map(|p| p.to_string()).collect(),
        };
        let m = dir.join(MANIFEST).display().to_string();
        for (field, what) in [
            ("hooks.pre-strat", "did you mean `hooks.pre-start`?"),
            ("hooks.pre-start.command", "both `command` and `check`"),
            ("hooks.post-start.timeout", "zero timeout"),
            ("hooks.post-start.command", "needs `command` or `check`"),
            ("hooks.pre-stop.config", "configures a check"),
            ("hooks.pre-stop.command", "empty command"),
            ("hooks.post-stop.check", "unknown builtin `builtin:htp`"),
            (
                "hooks.post-stop.timeot",
                "did you mean `hooks.post-stop.timeout`?",
            ),
        ] {
            let at = format!("{m}:{field}: ");
            assert!(
                problems
                    .iter()
                    .any(|p| p.starts_with(&at) && p.contains(what)),
                "no {at}...{what} in {problems:#?}"
            );
        }
    }

    #[test]
    fn a_mistyped_hook_is_reported_key_by_key() {
        let t = TempDir::new("cfg-hooks-types");
        let dir = service(&t.0, "command = [\"sleep\", \"100\"]\nhooks = 3\n");
        let Err(report) = load_dir(&t.0) else {
            panic!("hooks = 3 loads");
        };
        let m = dir.join(MANIFEST).display().to_string();
        assert!(
            report.problems.iter().any(|p| p
                .to_string()
                .starts_with(&format!("{m}:hooks: expected a table"))),
            "{report}"
        );
        std::fs::write(
            dir.join(MANIFEST),
            "command = [\"sleep\", \"100\"]\n[hooks.pre-stop]\ncommand = \"true\"\ntimeout = 5\n",
        )
        .expect("write");
        let Err(report) = load_dir(&t.0) else {
            panic!("mistyped hook keys load");
        };
        let text = report.to_string();
        assert!(text.contains(":hooks.pre-stop.command: "), "{text}");
        assert!(text.contains(":hooks.pre-stop.timeout: "), "{text}");
    }
}
