//! Cgroups: one per service, under one that this Vigil instance owns.
//!
//! Pure OS mechanics (layer 0): [`detect`] reads what the host offers,
//! [`Tree::create`] makes the instance's own cgroup (inside Vigil's own
//! cgroup in every hierarchy, so a delegated subtree under systemd is
//! respected), and [`Cgroup`] is a service's: created before each spawn
//! with its limits, joined by the child itself before `execve` (it writes
//! `0` into each `cgroup.procs` file [`Cgroup::prepare`] names), signalled
//! and killed as a whole, asked whether anything of it is left, and read
//! for CPU, memory and OOM kills.
//!
//! The instance's cgroup is named after the state directory (whose journal
//! lock makes it one instance's at a time), so a Vigil that restarts after
//! a crash finds what its previous life left in the same place.
//!
//! Where Vigil may not create cgroups (not root, no delegation, nothing
//! mounted, or `VIGIL_CGROUPS=off`), [`Tree::create`] says why and the
//! supervisor falls back to process groups.

mod detect;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use detect::{Layout, Resource, Shape, Version, detect, detect_from};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The environment switch that turns cgroups off for an instance.
pub const ENV_SWITCH: &str = "VIGIL_CGROUPS";

/// The CFS period Vigil writes with a CPU quota, microseconds (the
/// kernel's default).
const CPU_PERIOD_US: u64 = 100_000;

/// What the kernel enforces for one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Bytes (`memory.max`, v1 `memory.limit_in_bytes`).
    pub memory_max: Option<u64>,
    /// Percent of one CPU (`cpu.max`, v1 `cpu.cfs_quota_us`).
    pub cpu_max: Option<u32>,
    /// Processes and threads (`pids.max`).
    pub pids_max: Option<u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// The resources these limits need a controller for.
    pub fn resources(&self) -> Vec<Resource> {
        let mut out = Vec::new();
        if self.memory_max.is_some() {
            out.push(Resource::Memory);
        }
        if self.cpu_max.is_some() {
            out.push(Resource::Cpu);
        }
        if self.pids_max.is_some() {
            out.push(Resource::Pids);
        }
        out
    }
}

/// Why an instance runs without cgroups.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error("turned off ({ENV_SWITCH}=off)")]
    Off,
    #[error("no cgroup hierarchy in which Vigil's own cgroup is visible")]
    NoHierarchy,
    #[error("cannot create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// True when the environment turns cgroups off.
pub fn switched_off() -> bool {
    std::env::var(ENV_SWITCH).is_ok_and(|v| {
        matches!(
            v.to_ascii_lowercase().as_str(),
            "off" | "0" | "false" | "no"
        )
    })
}

/// The instance's cgroup name for a state directory: stable across
/// restarts, distinct for two instances (FNV-1a of the path: std's hasher
/// may change between Rust releases, a name on disk must not).
pub fn instance_name(state_dir: &Path) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in state_dir.as_os_str().as_encoded_bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("vigil-{hash:016x}")
}

/// A directory of the tree and the interface it speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dir {
    version: Version,
    path: PathBuf,
}

/// The instance's own cgroup, in every hierarchy it uses.
#[derive(Debug)]
pub struct Tree {
    shape: Shape,
    /// Where membership is tracked (v2 when mounted: `cgroup.events`,
    /// `cgroup.kill`).
    tracker: Dir,
    /// Where each usable resource is controlled.
    homes: BTreeMap<Resource, Dir>,
    /// Resources the host has but Vigil could not set up, and why.
    missing: Vec<(Resource, String)>,
}

fn create_dir(path: &Path) -> io::Result<()> {
    match std::fs::create_dir(path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

fn write_file(path: &Path, value: &str) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Enable `controller` for the children of `dir` (v2), unless it already is.
fn enable_controller(dir: &Path, controller: &str) -> io::Result<()> {
    let control = dir.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&control)?;
    if enabled.split_whitespace().any(|c| c == controller) {
        return Ok(());
    }
    write_file(&control, &format!("+{controller}"))
}

impl Tree {
    /// Make (or find, after a crash) the instance's cgroup `name` inside
    /// Vigil's own cgroup of each hierarchy in `layout`.
    pub fn create(layout: &Layout, name: &str) -> Result<Tree, Unavailable> {
        let tracker = match &layout.unified {
            Some(own) => Dir {
                version: Version::V2,
                path: own.join(name),
            },
            None => {
                let own = ["pids", "memory", "cpuacct", "cpu", "name=systemd"]
                    .iter()
                    .find_map(|c| layout.v1.get(*c))
                    .ok_or(Unavailable::NoHierarchy)?;
                Dir {
                    version: Version::V1,
                    path: own.join(name),
                }
            }
        };
        create_dir(&tracker.path).map_err(|source| Unavailable::Create {
            path: tracker.path.clone(),
            source,
        })?;
        let mut homes = BTreeMap::new();
        let mut missing = Vec::new();
        for resource in Resource::ALL {
            // CPU accounting: v2's cpu.stat needs no controller.
            if resource == Resource::CpuAcct && tracker.version == Version::V2 {
                continue;
            }
            let Some((version, own)) = layout.home(resource) else {
                continue;
            };
            let set_up = match version {
                Version::V2 => enable_controller(own, resource.controller())
                    .and_then(|()| enable_controller(&tracker.path, resource.controller()))
                    .map(|()| tracker.path.clone()),
                Version::V1 => {
                    let path = own.join(name);
                    create_dir(&path).map(|()| path)
                }
            };
            match set_up {
                Ok(path) => {
                    homes.insert(resource, Dir { version, path });
                }
                Err(e) => missing.push((resource, e.to_string())),
            }
        }
        Ok(Tree {
            shape: layout.shape(),
            tracker,
            homes,
            missing,
        })
    }

    /// The host's shape, for messages.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The instance's directory in the tracking hierarchy.
    pub fn path(&self) -> &Path {
        &self.tracker.path
    }

    /// Why `resource` cannot be limited, when it cannot.
    pub fn cannot_limit(&self, resource: Resource) -> Option<String> {
        if self.homes.contains_key(&resource) {
            return None;
        }
        Some(
            self.missing
                .iter()
                .find(|(r, _)| *r == resource)
                .map_or_else(
                    || format!("no {} controller on this host", resource.controller()),
                    |(_, why)| why.clone(),
                ),
        )
    }

    /// The cgroup of service `service` (nothing is created yet).
    pub fn service(&self, service: &str) -> Cgroup {
        // `.service`: no interface file of any controller ends so, so a
        // service named `cgroup.procs` or `memory.max` is no clash.
        let leaf = format!("{service}.service");
        Cgroup {
            tracker: Dir {
                version: self.tracker.version,
                path: self.tracker.path.join(&leaf),
            },
            homes: self
                .homes
                .iter()
                .map(|(r, d)| {
                    (
                        *r,
                        Dir {
                            version: d.version,
                            path: d.path.join(&leaf),
                        },
                    )
                })
                .collect(),
            applied: None,
        }
    }

    /// The cgroup of one run of a hook of `service` (nothing is created
    /// yet): a sibling of the service's own, `<service>.<run>.hook`, so
    /// that a hook never counts as the service's populated state (a
    /// pre-start hook is not a child that is up), a stop's `cgroup.kill`
    /// of the service never reaches it (a post-stop hook outlives the
    /// child it cleans up after), and whatever the hook leaves behind,
    /// `setsid` escapees included, is killed with its own cgroup. One per
    /// run: two runs may overlap (a stale life's hook still ending), and
    /// the end of one must not kill the other. It gets the service's
    /// limits as a cgroup of its own.
    pub fn hook(&self, service: &str, run: &str) -> Cgroup {
        let mut cgroup = self.service(service);
        let leaf = format!("{service}.{run}.hook");
        cgroup.tracker.path.set_file_name(&leaf);
        for dir in cgroup.homes.values_mut() {
            dir.path.set_file_name(&leaf);
        }
        cgroup
    }

    /// The services that have a cgroup under the instance (a previous
    /// life's, during recovery).
    pub fn existing(&self) -> Vec<(String, Cgroup)> {
        let Ok(entries) = std::fs::read_dir(&self.tracker.path) else {
            return Vec::new();
        };
        let mut out: Vec<(String, Cgroup)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let service = name.strip_suffix(".service")?.to_string();
                let cgroup = self.service(&service);
                Some((service, cgroup))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Remove the instance's cgroups (each service's, then its own), at
    /// the end of a run. Populated ones stay (the kernel refuses).
    pub fn remove(&self) {
        for (_, cgroup) in self.existing() {
            cgroup.remove();
        }
        // A hook's cgroup is removed at the hook's end; one a crash left.
        if let Ok(entries) = std::fs::read_dir(&self.tracker.path) {
            for entry in entries.filter_map(Result::ok) {
                if entry.file_name().to_string_lossy().ends_with(".hook") {
                    let _ = std::fs::remove_dir(entry.path());
                }
            }
        }
        let mut dirs: Vec<&Path> = vec![&self.tracker.path];
        dirs.extend(self.homes.values().map(|d| d.path.as_path()));
        dirs.sort();
        dirs.dedup();
        for dir in dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Where a child goes, from [`Cgroup::prepare`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Join {
    /// A cgroup v2 directory the child is created in.
    pub into: Option<PathBuf>,
    /// `cgroup.procs` files (v1) the child writes itself into.
    pub procs: Vec<PathBuf>,
}

/// One service's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    tracker: Dir,
    homes: BTreeMap<Resource, Dir>,
    /// The limits last written, so an unchanged restart writes nothing.
    applied: Option<Limits>,
}

/// Read a `key value` line of a flat-keyed cgroup file.
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

impl Cgroup {
    /// The directory in the tracking hierarchy (`vigil status` shows it).
    pub fn path(&self) -> &Path {
        &self.tracker.path
    }

    /// The resources the child joins: v1 CPU accounting (legacy hosts)
    /// always, the others only when limited. On a v2 host they all share
    /// the tracking cgroup, joined at the clone; a v1 join is a migration,
    /// which after a quiet spell waits for an RCU grace period (10-20 ms
    /// here), so it is paid only for a limit. (A v1 cpu cgroup of its own
    /// would also change the service's CPU weight.)
    fn joined(&self, limits: &Limits) -> impl Iterator<Item = (Resource, &Dir)> {
        let wanted = limits.resources();
        self.homes.iter().filter_map(move |(r, d)| {
            (*r == Resource::CpuAcct || wanted.contains(r)).then_some((*r, d))
        })
    }

    /// Create the cgroup (every directory the child will join) and write
    /// `limits` when they changed. Returns where the child goes: a v2
    /// directory to be created in (`clone3(CLONE_INTO_CGROUP)`), and the
    /// `cgroup.procs` files it writes itself into before `execve`.
    pub fn prepare(&mut self, limits: &Limits) -> io::Result<Join> {
        // A fresh v2 directory for each life that finds the old one empty.
        // After a `cgroup.kill`, the kernel seen here (6.18) SIGKILLs at
        // birth every child cloned into that cgroup with CLONE_INTO_CGROUP
        // (the kill sequence the fork compares is read from the parent's
        // cgroup, the one it checks is the target's): a service stopped
        // with SIGKILL could never start again. An empty cgroup is removed
        // and made anew, which costs a rmdir and a mkdir.
        if self.tracker.version == Version::V2
            && !self.populated()
            && std::fs::remove_dir(&self.tracker.path).is_ok()
            && self.homes.values().any(|d| d.path == self.tracker.path)
        {
            // v2 controllers' limits lived in the removed directory.
            self.applied = None;
        }
        create_dir(&self.tracker.path)?;
        let (into, mut join) = match self.tracker.version {
            Version::V2 => (Some(self.tracker.path.clone()), Vec::new()),
            Version::V1 => (None, vec![self.tracker.path.join("cgroup.procs")]),
        };
        let dirs: Vec<(Resource, Dir)> = self.joined(limits).map(|(r, d)| (r, d.clone())).collect();
        for (_, dir) in &dirs {
            if dir.path != self.tracker.path {
                create_dir(&dir.path)?;
                let procs = dir.path.join("cgroup.procs");
                if !join.contains(&procs) {
                    join.push(procs);
                }
            }
        }
        if self.applied != Some(*limits) {
            // Every v2 controller shares the one directory: its files keep
            // what an earlier life (or instance) wrote unless reset.
            for (resource, dir) in &self.homes {
                if dir.version == Version::V2 || dirs.iter().any(|(r, _)| r == resource) {
                    write_limit(*resource, dir, limits)?;
                }
            }
            self.applied = Some(*limits);
        }
        Ok(Join { into, procs: join })
    }

    /// True while any process is in the cgroup (zombies are not: the
    /// kernel takes a process out of its cgroup when it exits).
    pub fn populated(&self) -> bool {
        match self.tracker.version {
            Version::V2 => std::fs::read_to_string(self.tracker.path.join("cgroup.events"))
                .ok()
                .and_then(|t| keyed(&t, "populated"))
                .is_some_and(|p| p != 0),
            Version::V1 => !self.procs().is_empty(),
        }
    }

    /// The processes in the cgroup now.
    pub fn procs(&self) -> Vec<i32> {
        std::fs::read_to_string(self.tracker.path.join("cgroup.procs"))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Send `sig` to every process in the cgroup. Returns how many there
    /// were. (A pid read here may exit before the signal: the kernel does
    /// not hand it out again before its parent, Vigil for every orphan of
    /// a service, has reaped it.)
    pub fn signal(&self, sig: Signal) -> usize {
        let procs = self.procs();
        for &pid in &procs {
            let _ = kill(Pid::from_raw(pid), sig);
        }
        procs.len()
    }

    /// `sig` to every process in the cgroup outside process group `pgid`:
    /// what a signal to the group cannot reach (a `setsid` or `setpgid`
    /// escapee). The group's own members get the signal once, from the
    /// group: sent twice, a child that handles the first SIGTERM (to drain)
    /// takes the second as a demand to quit at once.
    pub fn signal_outside_group(&self, sig: Signal, pgid: i32) -> usize {
        let outside = outside_group(&self.procs(), pgid, |pid| {
            nix::unistd::getpgid(Some(Pid::from_raw(pid)))
                .ok()
                .map(Pid::as_raw)
        });
        for &pid in &outside {
            let _ = kill(Pid::from_raw(pid), sig);
        }
        outside.len()
    }

    /// SIGKILL everything in the cgroup: `cgroup.kill` where the kernel has
    /// it (atomic, forks included), else every listed process, again while
    /// new ones appear (a fork between the read and the kill).
    pub fn kill(&self) -> bool {
        if self.tracker.version == Version::V2
            && write_file(&self.tracker.path.join("cgroup.kill"), "1").is_ok()
        {
            return true;
        }
        let mut any = false;
        for _ in 0..16 {
            if self.signal(Signal::SIGKILL) == 0 {
                break;
            }
            any = true;
        }
        any
    }

    /// CPU time used by everything that ran in the cgroup (the counter
    /// goes on across the lives of the service).
    pub fn cpu_usage(&self) -> Option<Duration> {
        if self.tracker.version == Version::V2 {
            let text = std::fs::read_to_string(self.tracker.path.join("cpu.stat")).ok()?;
            return keyed(&text, "usage_usec").map(Duration::from_micros);
        }
        let dir = self.homes.get(&Resource::CpuAcct)?;
        let text = std::fs::read_to_string(dir.path.join("cpuacct.usage")).ok()?;
        text.trim().parse().ok().map(Duration::from_nanos)
    }

    /// Memory charged to the cgroup now, bytes.
    pub fn memory_usage(&self) -> Option<u64> {
        let dir = self.homes.get(&Resource::Memory)?;
        let file = match dir.version {
            Version::V2 => "memory.current",
            Version::V1 => "memory.usage_in_bytes",
        };
        std::fs::read_to_string(dir.path.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// How many processes the kernel's OOM killer ended in the cgroup so
    /// far (v2 `memory.events`, v1 `memory.oom_control`).
    pub fn oom_kills(&self) -> Option<u64> {
        let dir = self.homes.get(&Resource::Memory)?;
        let file = match dir.version {
            Version::V2 => "memory.events",
            Version::V1 => "memory.oom_control",
        };
        keyed(
            &std::fs::read_to_string(dir.path.join(file)).ok()?,
            "oom_kill",
        )
    }

    /// Remove the cgroup's directories (the kernel refuses while populated).
    pub fn remove(&self) {
        let _ = std::fs::remove_dir(&self.tracker.path);
        for dir in self.homes.values() {
            let _ = std::fs::remove_dir(&dir.path);
        }
    }
}

/// Write `resource`'s limit from `limits` into `dir` ("no limit" resets).
fn write_limit(resource: Resource, dir: &Dir, limits: &Limits) -> io::Result<()> {
    let v2 = dir.version == Version::V2;
    match resource {
        Resource::Memory => {
            let (file, none) = if v2 {
                ("memory.max", "max")
            } else {
                ("memory.limit_in_bytes", "-1")
            };
            let value = limits
                .memory_max
                .map_or(none.to_string(), |b| b.to_string());
            write_file(&dir.path.join(file), &value)
        }
        Resource::Cpu => {
            let quota = limits
                .cpu_max
                .map(|percent| u64::from(percent) * CPU_PERIOD_US / 100);
            if v2 {
                let quota = quota.map_or("max".to_string(), |q| q.to_string());
                write_file(
                    &dir.path.join("cpu.max"),
                    &format!("{quota} {CPU_PERIOD_US}"),
                )
            } else {
                write_file(
                    &dir.path.join("cpu.cfs_period_us"),
                    &CPU_PERIOD_US.to_string(),
                )?;
                let quota = quota.map_or("-1".to_string(), |q| q.to_string());
                write_file(&dir.path.join("cpu.cfs_quota_us"), &quota)
            }
        }
        Resource::Pids => {
            let value = limits.pids_max.map_or("max".to_string(), |n| n.to_string());
            write_file(&dir.path.join("pids.max"), &value)
        }
        Resource::CpuAcct => Ok(()),
    }
}

#[cfg(test)]
mod tests;

/// The processes of `procs` whose process group (`pgid_of`; `None`: gone
/// already) is not `pgid`.
fn outside_group(procs: &[i32], pgid: i32, pgid_of: impl Fn(i32) -> Option<i32>) -> Vec<i32> {
    procs
        .iter()
        .copied()
        .filter(|&pid| pgid_of(pid).is_some_and(|group| group != pgid))
        .collect()
}

#[cfg(test)]
mod outside_group_tests {
    use super::outside_group;

    /// A stop signal goes to the group and, from the cgroup, only to those
    /// that left it: never twice to a member (a child draining on its first
    /// SIGTERM quit at the second; the e2e test
    /// `supervisor_termination::a_group_outliving_its_leader_is_recovered_after_vigil_is_killed`
    /// caught it under load).
    #[test]
    fn members_of_the_group_are_left_to_the_group_signal() {
        let pgid_of = |pid| match pid {
            10 | 11 => Some(10),
            12 => Some(12),
            _ => None,
        };
        assert_eq!(outside_group(&[10, 11, 12, 13], 10, pgid_of), [12]);
        assert!(outside_group(&[10, 11], 10, pgid_of).is_empty());
    }
}
