//! What the host offers, read from `/proc/self/mountinfo` (which
//! hierarchies are mounted where, from which root) and `/proc/self/cgroup`
//! (where Vigil itself sits in each): never from assumed paths.
//!
//! The three shapes met in practice, and what [`Layout`] makes of them:
//!
//! - unified (pure v2): one `cgroup2` mount; controllers are the ones in
//!   Vigil's own `cgroup.controllers`.
//! - hybrid: a `cgroup2` mount (tracking, `cgroup.kill`, `cgroup.events`)
//!   with few or no controllers, and `cgroup` (v1) mounts holding memory,
//!   cpu, pids. Each resource is taken from v2 when v2 has its controller,
//!   else from its v1 hierarchy.
//! - legacy (v1 only): tracking through one v1 hierarchy's `cgroup.procs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A resource whose limit and usage go through a controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    Memory,
    Cpu,
    Pids,
    /// CPU usage accounting on a v1 host (`cpuacct.usage`); on v2 every
    /// cgroup has `cpu.stat` without a controller.
    CpuAcct,
}

impl Resource {
    /// The controller's name, as the kernel spells it.
    pub fn controller(self) -> &'static str {
        match self {
            Resource::Memory => "memory",
            Resource::Cpu => "cpu",
            Resource::Pids => "pids",
            Resource::CpuAcct => "cpuacct",
        }
    }

    pub const ALL: [Resource; 4] = [
        Resource::Memory,
        Resource::Cpu,
        Resource::Pids,
        Resource::CpuAcct,
    ];
}

/// Which interface a directory speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// What [`detect`] found: Vigil's own cgroup directory in each usable
/// hierarchy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// Vigil's own cgroup in the v2 hierarchy, when one is mounted and
    /// Vigil's cgroup is visible under the mount.
    pub unified: Option<PathBuf>,
    /// The controllers Vigil's own v2 cgroup offers (`cgroup.controllers`).
    pub unified_controllers: Vec<String>,
    /// Vigil's own cgroup in each v1 hierarchy, by controller name
    /// (`memory`, `cpu`, `pids`, `cpuacct`, and `name=...` hierarchies).
    pub v1: BTreeMap<String, PathBuf>,
}

/// The host's shape, for messages and `vigil status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Unified,
    Hybrid,
    Legacy,
    None,
}

impl Shape {
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Unified => "unified (cgroup v2)",
            Shape::Hybrid => "hybrid (cgroup v2 for tracking, v1 controllers)",
            Shape::Legacy => "legacy (cgroup v1)",
            Shape::None => "none",
        }
    }
}

impl Layout {
    pub fn shape(&self) -> Shape {
        let v1_resources = Resource::ALL
            .iter()
            .any(|r| self.v1.contains_key(r.controller()));
        match (&self.unified, v1_resources) {
            (Some(_), false) => Shape::Unified,
            (Some(_), true) => Shape::Hybrid,
            (None, true) => Shape::Legacy,
            (None, false) => Shape::None,
        }
    }

    /// Where `resource` is controlled: v2 when Vigil's v2 cgroup offers the
    /// controller, else its v1 hierarchy, else nowhere. CPU accounting on
    /// v2 needs no controller, so `CpuAcct` is only ever v1 (and only used
    /// where there is no v2 hierarchy).
    pub fn home(&self, resource: Resource) -> Option<(Version, &Path)> {
        if resource != Resource::CpuAcct
            && self
                .unified_controllers
                .iter()
                .any(|c| c == resource.controller())
            && let Some(dir) = &self.unified
        {
            return Some((Version::V2, dir));
        }
        self.v1
            .get(resource.controller())
            .map(|d| (Version::V1, d.as_path()))
    }
}

/// Read the running process's layout from /proc.
pub fn detect() -> Layout {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    detect_from(&mountinfo, &cgroup)
}

/// [`detect`] from the two files' texts (the unit tests give fake ones
/// whose mount points are scratch directories).
pub fn detect_from(mountinfo: &str, proc_cgroup: &str) -> Layout {
    let mounts = parse_mountinfo(mountinfo);
    let mut layout = Layout::default();
    for line in proc_cgroup.lines() {
        // `ID:CONTROLLERS:PATH`; the path may itself hold colons.
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            let Some(dir) = mounts.iter().filter(|m| m.v2).find_map(|m| m.dir_of(path)) else {
                continue;
            };
            layout.unified_controllers = std::fs::read_to_string(dir.join("cgroup.controllers"))
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect();
            layout.unified = Some(dir);
            continue;
        }
        let names: Vec<&str> = controllers.split(',').filter(|c| !c.is_empty()).collect();
        // The mount of this hierarchy is the v1 mount with the same set.
        let Some(dir) = mounts
            .iter()
            .filter(|m| {
                !m.v2 && !names.is_empty() && names.iter().all(|n| m.options.iter().any(|o| o == n))
            })
            .find_map(|m| m.dir_of(path))
        else {
            continue;
        };
        for name in names {
            layout
                .v1
                .entry(name.to_string())
                .or_insert_with(|| dir.clone());
        }
    }
    layout
}

/// One cgroup mount of mountinfo.
#[derive(Debug)]
struct Mount {
    v2: bool,
    /// The cgroup path the mount shows at its mount point.
    root: String,
    point: PathBuf,
    /// The super options (v1: the controllers and `name=`).
    options: Vec<String>,
}

impl Mount {
    /// The directory of cgroup `path` under this mount, when visible.
    fn dir_of(&self, path: &str) -> Option<PathBuf> {
        let rest = if self.root == "/" {
            path.strip_prefix('/')?
        } else {
            let rest = path.strip_prefix(self.root.as_str())?;
            if !(rest.is_empty() || rest.starts_with('/')) {
                return None;
            }
            rest.trim_start_matches('/')
        };
        // A `..` would leave the mount: the kernel never writes one, a
        // namespace that hides our cgroup writes `/..` paths.
        if rest.split('/').any(|c| c == "..") {
            return None;
        }
        Some(if rest.is_empty() {
            self.point.clone()
        } else {
            self.point.join(rest)
        })
    }
}

/// mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value = (bytes[i + 1] - b'0') as u32 * 64
                + (bytes[i + 2] - b'0') as u32 * 8
                + (bytes[i + 3] - b'0') as u32;
            out.push(value as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut mounts = Vec::new();
    for line in text.lines() {
        // ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(point), Some(fstype)) = (left.get(3), left.get(4), right.first())
        else {
            continue;
        };
        let v2 = match *fstype {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        mounts.push(Mount {
            v2,
            root: unescape(root),
            point: PathBuf::from(unescape(point)),
            options: right
                .get(2)
                .map(|o| o.split(',').map(str::to_string).collect())
                .unwrap_or_default(),
        });
    }
    mounts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;

    /// The hybrid layout of the machines Vigil is built on, with the
    /// mount points moved under `root`.
    fn hybrid_mountinfo(root: &Path) -> String {
        let r = root.display();
        format!(
            "31 23 0:28 / {r} rw,relatime - tmpfs tmpfs rw,mode=755\n\
             32 31 0:29 / {r}/cpu rw,relatime - cgroup cgroup rw,cpu\n\
             33 31 0:30 / {r}/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n\
             35 31 0:32 / {r}/memory rw,relatime - cgroup cgroup rw,memory\n\
             39 31 0:36 / {r}/pids rw,relatime - cgroup cgroup rw,pids\n\
             40 31 0:37 / {r}/systemd rw,relatime - cgroup cgroup rw,name=systemd\n\
             41 31 0:38 / {r}/unified rw,relatime - cgroup2 cgroup2 rw\n"
        )
    }

    const HYBRID_CGROUP: &str = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/abc\n\
                                 2:cpuacct:/\n1:cpu:/\n0::/\n";

    #[test]
    fn a_hybrid_host_tracks_through_v2_and_limits_through_v1() {
        let fake = TempDir::new("cgroup-hybrid");
        std::fs::create_dir_all(fake.0.join("unified")).expect("mkdir");
        std::fs::write(fake.0.join("unified/cgroup.controllers"), "").expect("write");
        let layout = detect_from(&hybrid_mountinfo(&fake.0), HYBRID_CGROUP);
        assert_eq!(layout.shape(), Shape::Hybrid);
        assert_eq!(
            layout.unified.as_deref(),
            Some(fake.0.join("unified").as_path())
        );
        assert_eq!(
            layout.home(Resource::Memory),
            Some((Version::V1, fake.0.join("memory/process_api/abc").as_path()))
        );
        assert_eq!(
            layout.home(Resource::Pids),
            Some((Version::V1, fake.0.join("pids").as_path()))
        );
        assert_eq!(
            layout.home(Resource::Cpu),
            Some((Version::V1, fake.0.join("cpu").as_path()))
        );
    }

    #[test]
    fn a_unified_host_takes_the_controllers_its_own_cgroup_offers() {
        let fake = TempDir::new("cgroup-unified");
        let own = fake.0.join("system.slice/vigil.service");
        std::fs::create_dir_all(&own).expect("mkdir");
        std::fs::write(
            own.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .expect("write");
        let mountinfo = format!(
            "30 23 0:26 / {} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
            fake.0.display()
        );
        let layout = detect_from(&mountinfo, "0::/system.slice/vigil.service\n");
        assert_eq!(layout.shape(), Shape::Unified);
        for r in [Resource::Memory, Resource::Cpu, Resource::Pids] {
            assert_eq!(layout.home(r), Some((Version::V2, own.as_path())), "{r:?}");
        }
        assert_eq!(layout.home(Resource::CpuAcct), None);
    }

    #[test]
    fn a_cgroup_outside_the_mounts_root_is_not_used() {
        // A container's bind mount shows only /docker/x; Vigil sits in
        // /other (or the namespace hides it behind `..`).
        let mountinfo = "30 23 0:26 /docker/x /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        for own in ["0::/other\n", "0::/docker/xy\n", "0::/../../x\n"] {
            let layout = detect_from(mountinfo, own);
            assert_eq!(layout.shape(), Shape::None, "{own}");
        }
        let layout = detect_from(mountinfo, "0::/docker/x/sub\n");
        assert_eq!(
            layout.unified.as_deref(),
            Some(Path::new("/sys/fs/cgroup/sub"))
        );
    }

    #[test]
    fn no_cgroup_mounts_is_no_cgroups_and_v1_only_is_legacy() {
        let none = detect_from("22 1 0:21 / /proc rw - proc proc rw\n", "0::/\n");
        assert_eq!(none.shape(), Shape::None);
        let legacy = detect_from(
            "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
             36 31 0:33 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n",
            "4:memory:/a\n2:cpu,cpuacct:/b\n",
        );
        assert_eq!(legacy.shape(), Shape::Legacy);
        assert_eq!(
            legacy.home(Resource::CpuAcct),
            Some((Version::V1, Path::new("/sys/fs/cgroup/cpu,cpuacct/b")))
        );
    }

    #[test]
    fn escaped_mount_points_are_decoded() {
        let layout = detect_from(
            "41 31 0:38 / /mnt/cg\\040two rw - cgroup2 cgroup2 rw\n",
            "0::/x\n",
        );
        assert_eq!(layout.unified.as_deref(), Some(Path::new("/mnt/cg two/x")));
    }

    #[test]
    fn this_host_is_detected() {
        // Whatever the machine is, detection must not panic, and a v2
        // directory it names exists.
        let layout = detect();
        if let Some(dir) = &layout.unified {
            assert!(dir.is_dir(), "{}", dir.display());
        }
    }
}
