//! `memory-max`, `cpu-max`, `pids-max` (through the service's cgroup) and
//! `limits = { nofile = ..., ... }` (rlimits, set in the child before
//! `execve`; they need no cgroup).

use std::collections::BTreeMap;

use super::problems::{Collector, did_you_mean};
use crate::cgroup::{self, Resource};
use crate::units::parse_size;

/// What the kernel enforces on a service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Limits {
    /// Through the service's cgroup.
    pub cgroup: cgroup::Limits,
    /// `(name, RLIMIT_*, value)`: soft and hard limit alike.
    pub rlimits: Vec<Rlimit>,
}

/// One resource limit of `limits = { ... }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    /// The manifest's name (`nofile`).
    pub name: &'static str,
    /// `RLIMIT_NOFILE`, ...
    pub resource: libc::c_int,
    /// `RLIM_INFINITY` for `"infinity"`.
    pub value: u64,
}

/// The names `limits` takes: setrlimit(2)'s, without `RLIMIT_`.
const RLIMITS: &[(&str, libc::c_int)] = &[
    ("as", libc::RLIMIT_AS as libc::c_int),
    ("core", libc::RLIMIT_CORE as libc::c_int),
    ("cpu", libc::RLIMIT_CPU as libc::c_int),
    ("data", libc::RLIMIT_DATA as libc::c_int),
    ("fsize", libc::RLIMIT_FSIZE as libc::c_int),
    ("locks", libc::RLIMIT_LOCKS as libc::c_int),
    ("memlock", libc::RLIMIT_MEMLOCK as libc::c_int),
    ("msgqueue", libc::RLIMIT_MSGQUEUE as libc::c_int),
    ("nice", libc::RLIMIT_NICE as libc::c_int),
    ("nofile", libc::RLIMIT_NOFILE as libc::c_int),
    ("nproc", libc::RLIMIT_NPROC as libc::c_int),
    ("rss", libc::RLIMIT_RSS as libc::c_int),
    ("rtprio", libc::RLIMIT_RTPRIO as libc::c_int),
    ("rttime", libc::RLIMIT_RTTIME as libc::c_int),
    ("sigpending", libc::RLIMIT_SIGPENDING as libc::c_int),
    ("stack", libc::RLIMIT_STACK as libc::c_int),
];

impl Limits {
    /// The rlimits as the spawner takes them.
    pub fn rlimit_pairs(&self) -> Vec<(libc::c_int, u64)> {
        self.rlimits.iter().map(|r| (r.resource, r.value)).collect()
    }
}

/// Resolve the four keys; a cgroup limit this host cannot apply is a
/// warning (the service still runs, unlimited), said once per service by
/// `vigil validate` and in the journal at `vigil run`.
pub(super) fn resolve_limits(
    memory_max: Option<String>,
    cpu_max: Option<String>,
    pids_max: Option<u64>,
    limits: Option<BTreeMap<String, toml::Value>>,
    c: &mut Collector<'_>,
) -> Limits {
    let mut out = Limits::default();
    if let Some(text) = memory_max {
        match parse_size(&text) {
            Ok(bytes) if bytes >= 1 << 20 => out.cgroup.memory_max = Some(bytes),
            Ok(_) => c.push(
                "memory-max",
                "below 1MiB, no program starts in that",
                "use a size such as \"64MiB\"",
            ),
            Err(e) => c.push("memory-max", e.to_string(), "use a size such as \"64MiB\""),
        }
    }
    if let Some(text) = cpu_max {
        match parse_percent(&text) {
            Some(p) if p >= 1 => out.cgroup.cpu_max = Some(p),
            _ => c.push(
                "cpu-max",
                format!("`{text}` is not a share of a CPU"),
                "use a percentage of one CPU such as \"50%\" (\"200%\" is two CPUs)",
            ),
        }
    }
    if let Some(n) = pids_max {
        if n == 0 {
            c.push(
                "pids-max",
                "0 processes cannot run anything",
                "use at least 1",
            );
        } else {
            out.cgroup.pids_max = Some(n);
        }
    }
    for (name, value) in limits.unwrap_or_default() {
        let field = format!("limits.{name}");
        let Some(&(name, resource)) = RLIMITS.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = RLIMITS.iter().map(|(n, _)| *n).collect();
            let hint = did_you_mean(&name, &names).map_or_else(
                || format!("use one of {}", names.join(", ")),
                |m| format!("did you mean `{m}`?"),
            );
            c.push(field, format!("unknown resource limit `{name}`"), hint);
            continue;
        };
        let value = match &value {
            toml::Value::Integer(n) if *n >= 0 => *n as u64,
            toml::Value::String(s) if matches!(s.as_str(), "infinity" | "unlimited") => {
                libc::RLIM_INFINITY
            }
            other => {
                c.push(
                    field,
                    format!("`{other}` is not a limit"),
                    "use a number of at least 0, or \"infinity\"",
                );
                continue;
            }
        };
        out.rlimits.push(Rlimit {
            name,
            resource,
            value,
        });
    }
    if !out.cgroup.is_empty() {
        warn_unenforceable(&out.cgroup, c);
    }
    out
}

/// `"50%"` -> 50.
fn parse_percent(text: &str) -> Option<u32> {
    text.trim().strip_suffix('%')?.trim().parse().ok()
}

/// Warn about each cgroup limit this host will not enforce, and why.
fn warn_unenforceable(limits: &cgroup::Limits, c: &mut Collector<'_>) {
    let why_not = host_cannot_limit();
    for resource in limits.resources() {
        let field = match resource {
            Resource::Memory => "memory-max",
            Resource::Cpu => "cpu-max",
            Resource::Pids => "pids-max",
            Resource::CpuAcct => continue,
        };
        if let Some(why) = why_not(resource) {
            c.warn(
                field,
                format!("not enforced on this host: {why}"),
                "run vigil as root, or in a delegated cgroup (systemd: Delegate=yes)",
            );
        }
    }
}

/// Whether this host lets Vigil apply each limit, judged without creating
/// anything: the switch, the hierarchies, write access to Vigil's own
/// cgroup, the controller.
fn host_cannot_limit() -> impl Fn(Resource) -> Option<String> {
    let layout = cgroup::detect();
    let off = cgroup::switched_off();
    move |resource| {
        if off {
            return Some(format!(
                "cgroups are turned off ({}=off)",
                cgroup::ENV_SWITCH
            ));
        }
        let Some((_, own)) = layout.home(resource) else {
            return Some(format!("no {} controller", resource.controller()));
        };
        nix::unistd::access(own, nix::unistd::AccessFlags::W_OK)
            .err()
            .map(|e| format!("cannot write {}: {e}", own.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_shares_of_one_cpu() {
        assert_eq!(parse_percent("50%"), Some(50));
        assert_eq!(parse_percent(" 250 % "), Some(250));
        assert_eq!(parse_percent("0.5"), None);
        assert_eq!(parse_percent("half%"), None);
    }
}
