//! The tree and service cgroups against a fake cgroupfs (plain
//! directories and files laid out as the kernel would), and once against
//! the real one of this machine when Vigil may write it.

use std::path::Path;

use super::*;
use crate::test_support::TempDir;

/// A fake hybrid host under `root`: v2 at `unified` (no controllers),
/// memory inside `process_api/abc`, cpu, cpuacct, pids at their roots.
fn hybrid(root: &Path) -> Layout {
    for dir in [
        "unified",
        "memory/process_api/abc",
        "cpu",
        "cpuacct",
        "pids",
    ] {
        std::fs::create_dir_all(root.join(dir)).expect("mkdir");
    }
    std::fs::write(root.join("unified/cgroup.controllers"), "").expect("write");
    let r = root.display();
    let mountinfo = format!(
        "32 31 0:29 / {r}/cpu rw - cgroup cgroup rw,cpu\n\
         33 31 0:30 / {r}/cpuacct rw - cgroup cgroup rw,cpuacct\n\
         35 31 0:32 / {r}/memory rw - cgroup cgroup rw,memory\n\
         39 31 0:36 / {r}/pids rw - cgroup cgroup rw,pids\n\
         41 31 0:38 / {r}/unified rw - cgroup2 cgroup2 rw\n"
    );
    detect_from(
        &mountinfo,
        "8:pids:/\n4:memory:/process_api/abc\n2:cpuacct:/\n1:cpu:/\n0::/\n",
    )
}

/// The files the kernel would put in a new cgroup directory of each kind.
fn seed_files(dir: &Path, files: &[&str]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for f in files {
        std::fs::write(dir.join(f), "").expect("seed");
    }
}

#[test]
fn a_hybrid_tree_tracks_in_v2_and_limits_in_each_v1_hierarchy() {
    let fake = TempDir::new("cgroup-tree");
    let layout = hybrid(&fake.0);
    let tree = Tree::create(&layout, "vigil-1").expect("tree");
    assert_eq!(tree.shape(), Shape::Hybrid);
    assert_eq!(tree.path(), fake.0.join("unified/vigil-1"));
    for dir in [
        "memory/process_api/abc/vigil-1",
        "cpu/vigil-1",
        "pids/vigil-1",
    ] {
        assert!(fake.0.join(dir).is_dir(), "{dir}");
    }
    // CPU usage comes from v2's cpu.stat: no cpuacct cgroup.
    assert!(!fake.0.join("cpuacct/vigil-1").exists());
    assert_eq!(tree.cannot_limit(Resource::Pids), None);

    let mut web = tree.service("web");
    let svc = |d: &str| fake.0.join(d).join("vigil-1/web.service");
    let (unified, memory, cpu, pids) = (
        fake.0.join("unified/vigil-1/web.service"),
        fake.0.join("memory/process_api/abc/vigil-1/web.service"),
        svc("cpu"),
        svc("pids"),
    );
    seed_files(&memory, &["cgroup.procs", "memory.limit_in_bytes"]);
    seed_files(
        &cpu,
        &["cgroup.procs", "cpu.cfs_period_us", "cpu.cfs_quota_us"],
    );
    seed_files(&pids, &["cgroup.procs", "pids.max"]);

    // No limits: created in the v2 cgroup, no v1 migration.
    let join = web.prepare(&Limits::default()).expect("prepare");
    assert_eq!(
        join,
        Join {
            into: Some(unified.clone()),
            procs: vec![]
        }
    );
    let read = |p: PathBuf| std::fs::read_to_string(p).expect("read");

    let limits = Limits {
        memory_max: Some(64 << 20),
        cpu_max: Some(50),
        pids_max: Some(64),
    };
    let join = web.prepare(&limits).expect("prepare");
    assert_eq!(join.into, Some(unified.clone()));
    assert_eq!(join.procs.len(), 3, "{join:?}");
    assert!(join.procs.contains(&memory.join("cgroup.procs")));
    assert!(join.procs.contains(&cpu.join("cgroup.procs")));
    assert!(join.procs.contains(&pids.join("cgroup.procs")));
    assert_eq!(read(memory.join("memory.limit_in_bytes")), "67108864");
    assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read(cpu.join("cpu.cfs_period_us")), "100000");
    assert_eq!(read(pids.join("pids.max")), "64");

    // Unchanged limits are not written again.
    std::fs::write(pids.join("pids.max"), "sentinel").expect("write");
    web.prepare(&limits).expect("prepare");
    assert_eq!(read(pids.join("pids.max")), "sentinel");

    assert_eq!(
        tree.existing()
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        vec!["web".to_string()]
    );
}

#[test]
fn membership_usage_and_oom_kills_are_read_from_the_kernels_files() {
    let fake = TempDir::new("cgroup-read");
    let layout = hybrid(&fake.0);
    let tree = Tree::create(&layout, "vigil-2").expect("tree");
    let mut db = tree.service("db");
    let unified = fake.0.join("unified/vigil-2/db.service");
    let memory = fake.0.join("memory/process_api/abc/vigil-2/db.service");
    seed_files(&memory, &["cgroup.procs", "memory.limit_in_bytes"]);
    let with_memory = Limits {
        memory_max: Some(64 << 20),
        ..Limits::default()
    };
    db.prepare(&with_memory).expect("prepare");

    assert!(!db.populated(), "no cgroup.events yet");
    std::fs::write(unified.join("cgroup.events"), "populated 1\nfrozen 0\n").expect("w");
    assert!(db.populated());
    std::fs::write(unified.join("cgroup.events"), "populated 0\nfrozen 0\n").expect("w");
    assert!(!db.populated());

    std::fs::write(unified.join("cgroup.procs"), "12\n345\n").expect("w");
    assert_eq!(db.procs(), vec![12, 345]);

    std::fs::write(
        unified.join("cpu.stat"),
        "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n",
    )
    .expect("w");
    assert_eq!(db.cpu_usage(), Some(Duration::from_millis(1500)));
    std::fs::write(memory.join("memory.usage_in_bytes"), "4096\n").expect("w");
    assert_eq!(db.memory_usage(), Some(4096));
    std::fs::write(
        memory.join("memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    )
    .expect("w");
    assert_eq!(db.oom_kills(), Some(2));
}

#[test]
fn a_unified_host_enables_its_controllers_for_the_instance() {
    let fake = TempDir::new("cgroup-v2");
    let own = fake.0.join("system.slice/vigil.service");
    std::fs::create_dir_all(&own).expect("mkdir");
    std::fs::write(own.join("cgroup.controllers"), "cpu memory pids\n").expect("w");
    std::fs::write(own.join("cgroup.subtree_control"), "cpu memory pids\n").expect("w");
    let mountinfo = format!(
        "30 23 0:26 / {} rw - cgroup2 cgroup2 rw\n",
        fake.0.display()
    );
    let layout = detect_from(&mountinfo, "0::/system.slice/vigil.service\n");

    // The instance directory is made by the kernel with its own
    // subtree_control; the fake one must exist before the tree writes it.
    let instance = own.join("vigil-3");
    seed_files(&instance, &["cgroup.subtree_control"]);
    let tree = Tree::create(&layout, "vigil-3").expect("tree");
    assert_eq!(tree.shape(), Shape::Unified);
    assert_eq!(tree.cannot_limit(Resource::Memory), None);

    let mut app = tree.service("app");
    let dir = instance.join("app.service");
    seed_files(&dir, &["cgroup.procs", "memory.max", "cpu.max", "pids.max"]);
    let limits = Limits {
        memory_max: Some(1 << 20),
        cpu_max: Some(150),
        pids_max: None,
    };
    // One cgroup for everything, joined at the clone.
    assert_eq!(
        app.prepare(&limits).expect("prepare"),
        Join {
            into: Some(dir.clone()),
            procs: vec![]
        }
    );
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).expect("read");
    assert_eq!(read("memory.max"), "1048576");
    assert_eq!(read("cpu.max"), "150000 100000");
    assert_eq!(read("pids.max"), "max");
    std::fs::write(
        dir.join("memory.events"),
        "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
    )
    .expect("w");
    assert_eq!(app.oom_kills(), Some(1));
}

#[test]
fn a_controller_that_cannot_be_set_up_says_why_and_the_rest_works() {
    let fake = TempDir::new("cgroup-missing");
    let layout = hybrid(&fake.0);
    // The pids hierarchy's directory is gone (unmounted under us, say).
    std::fs::remove_dir(fake.0.join("pids")).expect("rmdir");
    let tree = Tree::create(&layout, "vigil-4").expect("tree");
    let why = tree.cannot_limit(Resource::Pids).expect("pids missing");
    assert!(why.contains("No such file"), "{why}");
    assert_eq!(tree.cannot_limit(Resource::Memory), None);

    // No hierarchy at all, or one Vigil may not write: no tree.
    assert!(matches!(
        Tree::create(&Layout::default(), "vigil-4"),
        Err(Unavailable::NoHierarchy)
    ));
    let mut nowhere = layout.clone();
    nowhere.unified = Some(fake.0.join("not/there"));
    assert!(matches!(
        Tree::create(&nowhere, "vigil-4"),
        Err(Unavailable::Create { .. })
    ));
}

#[test]
fn instance_names_are_stable_and_tell_state_directories_apart() {
    let a = instance_name(Path::new("/var/lib/vigil"));
    assert_eq!(a, instance_name(Path::new("/var/lib/vigil")));
    assert_ne!(a, instance_name(Path::new("/var/lib/vigil2")));
    assert!(
        a.starts_with("vigil-") && a.len() == "vigil-".len() + 16,
        "{a}"
    );
}

/// On this machine, as root: the real files take the values.
#[test]
fn the_real_cgroupfs_takes_limits_when_vigil_may_write_it() {
    let layout = detect();
    let name = format!("vigil-unit-{}", std::process::id());
    let Ok(tree) = Tree::create(&layout, &name) else {
        eprintln!("no writable cgroups here: skipped");
        return;
    };
    let mut svc = tree.service("real");
    let limits = Limits {
        memory_max: Some(64 << 20),
        cpu_max: None,
        pids_max: Some(10),
    };
    let prepared = svc.prepare(&limits);
    let populated = svc.populated();
    let usage = svc.memory_usage();
    let oom = svc.oom_kills();
    svc.remove();
    tree.remove();
    let join = prepared.expect("prepare");
    assert!(join.into.is_some() || !join.procs.is_empty());
    assert!(!populated);
    if tree.cannot_limit(Resource::Memory).is_none() {
        assert!(usage.is_some() && oom == Some(0), "{usage:?} {oom:?}");
    }
    assert!(!tree.path().exists(), "removed");
}
