//! docs/production.md "Identity", "Environment files" and "Credentials":
//! services run as another user with its groups and umask, get env files
//! in a documented precedence (read at each start, compared on reload),
//! and get secrets as files only their user can read, never in the
//! environment, journal, status or logs. Vigil runs as root here.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use serde_json::Value;

use crate::support::{
    Setup, Vigil, cli, command, expect_code, is, status, text, toml_str, vigil_command, wait_socket,
};

/// A setup under /tmp, not the target dir: the services' users must be
/// able to reach their directories, and /root (the usual target dir's
/// parent) is closed to them.
fn open_setup(name: &str) -> Setup {
    let root = std::env::temp_dir().join(format!("vigil-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let checks = root.join("checks");
    std::fs::create_dir_all(&checks).expect("checks dir");
    for d in [&root, &checks] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    Setup {
        state: root.join("state"),
        root,
        checks,
    }
}

/// A directory anyone may write to, for what a service leaves behind.
fn drop_box(setup: &Setup) -> PathBuf {
    let dir = setup.root.join("out");
    std::fs::create_dir_all(&dir).expect("out dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    dir
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The numbers of a `Uid:`/`Gid:`/`Groups:` line of /proc/PID/status.
fn status_ids(pid: i32, key: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
        .split_whitespace()
        .map(|n| n.parse().expect("an id"))
        .collect()
}

/// The environment of process `pid`.
fn environ(pid: i32) -> Vec<(String, String)> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    raw.split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| {
            let v = String::from_utf8_lossy(v);
            let (k, v) = v.split_once('=').unwrap_or((&v, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn var(env: &[(String, String)], key: &str) -> Option<String> {
    env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// A user with supplementary groups in /etc/group, and those groups' ids.
fn user_with_supplementary_groups() -> Option<(String, Vec<u32>)> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let users: Vec<&str> = passwd.lines().filter_map(|l| l.split(':').next()).collect();
    let member = groups.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let m = f.get(3)?.split(',').find(|u| users.contains(u))?;
        Some(m.to_string())
    })?;
    let gids = groups
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            f.get(3)?
                .split(',')
                .any(|u| u == member)
                .then(|| f[2].parse().ok())?
        })
        .collect();
    Some((member, gids))
}

#[test]
fn a_service_runs_as_nobody_with_its_groups_and_umask() {
    if !is_root() {
        eprintln!("skipped: needs root to change users");
        return;
    }
    let setup = open_setup("as-nobody");
    let out = drop_box(&setup);
    let made = out.join("made");
    setup.service(
        "web",
        &format!(
            "{}user = \"nobody\"\numask = \"0027\"\n",
            command(&[
                "sh",
                "-c",
                &format!(
                    "echo hello from $(id -un); touch {}; exec sleep 1000",
                    made.display()
                ),
            ])
        ),
    );
    let mut extra = String::new();
    if let Some((user, gids)) = user_with_supplementary_groups() {
        setup.service(
            "member",
            &format!(
                "{}user = {}\n",
                command(&["sleep", "1000"]),
                toml_str(&user)
            ),
        );
        extra = format!("{user}:{gids:?}");
    }
    setup.service(
        "regrouped",
        &format!(
            "{}user = \"nobody\"\ngroup = \"{}\"\n",
            command(&["sleep", "1000"]),
            nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(0))
                .ok()
                .flatten()
                .map_or("0".to_string(), |g| g.name)
        ),
    );
    let vigil = setup.run();
    let (_, pid) = vigil.wait_spawned(0, "web");
    assert_eq!(status_ids(pid, "Uid:"), [65534; 4]);
    assert_eq!(status_ids(pid, "Gid:"), [65534; 4]);
    // initgroups of nobody: its primary group only, none of root's.
    assert_eq!(status_ids(pid, "Groups:"), [65534]);
    let env = environ(pid);
    assert_eq!(var(&env, "USER").as_deref(), Some("nobody"));
    assert_eq!(var(&env, "HOME").as_deref(), Some("/nonexistent"));
    vigil.wait_until("the file is made", || made.exists());
    let meta = std::fs::metadata(&made).expect("made");
    assert_eq!(meta.uid(), 65534);
    assert_eq!(meta.mode() & 0o777, 0o640, "0666 & ~0027");
    // Its output still reaches the log file vigil writes.
    let log = setup.state.join("logs/web.log");
    vigil.wait_until("the output is logged", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("hello from nobody"))
    });

    // `group` replaces the primary group (initgroups with that group:
    // nobody is listed as a member of none, so it is the only one).
    let (_, pid) = vigil.wait_spawned(0, "regrouped");
    assert_eq!(status_ids(pid, "Uid:"), [65534; 4]);
    assert_eq!(status_ids(pid, "Gid:"), [0; 4]);
    assert_eq!(status_ids(pid, "Groups:"), [0]);

    if let Some((user, gids)) = user_with_supplementary_groups() {
        let (_, pid) = vigil.wait_spawned(0, "member");
        let groups = status_ids(pid, "Groups:");
        for g in gids {
            assert!(groups.contains(&g), "{extra}: {groups:?}");
        }
        let uid = nix::unistd::User::from_name(&user)
            .ok()
            .flatten()
            .expect("the user")
            .uid
            .as_raw();
        assert_eq!(status_ids(pid, "Uid:"), [uid; 4]);
    } else {
        eprintln!("no user with supplementary groups here: that part is skipped");
    }
}

#[test]
fn unknown_users_and_groups_and_bad_umasks_are_manifest_errors() {
    let setup = open_setup("bad-identity");
    setup.service(
        "a",
        &format!("{}user = \"no-such-user-here\"\n", command(&["sleep", "1"])),
    );
    setup.service(
        "b",
        &format!(
            "{}user = \"nobody\"\ngroup = \"no-such-group-here\"\numask = \"0999\"\n",
            command(&["sleep", "1"])
        ),
    );
    let out = vigil_command()
        .arg("validate")
        .arg(&setup.checks)
        .output()
        .expect("validate");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for wanted in [
        "a/service.toml:user: no user `no-such-user-here` on this system",
        "b/service.toml:group: no group `no-such-group-here` on this system",
        "b/service.toml:umask: `0999` is not an octal umask",
    ] {
        assert!(err.contains(wanted), "missing `{wanted}` in:\n{err}");
    }
}

/// `env-file` precedence: inherit-env < env-file (in order) < env, and an
/// optional file that is missing is skipped.
#[test]
fn env_files_sit_between_inherited_and_explicit_variables() {
    let setup = open_setup("env-precedence");
    let dir = setup.service(
        "svc",
        &format!(
            "{}inherit-env = [\"A\", \"B\", \"C\", \"D\"]\n\
             env-file = [\"first.env\", \"-missing.env\", \"{}\"]\n\
             env = {{ D = \"env\" }}\n",
            command(&["sleep", "1000"]),
            setup.root.join("second.env").display()
        ),
    );
    std::fs::write(
        dir.join("first.env"),
        "# first\nexport B=file1\nC='file1'\nD=\"file1\"\nQUOTED=\"a \\\"b\\\" c\" # comment\n",
    )
    .expect("first.env");
    std::fs::write(setup.root.join("second.env"), "C=file2\nD=file2\n").expect("second.env");
    let env = [
        ("A", "inherit"),
        ("B", "inherit"),
        ("C", "inherit"),
        ("D", "inherit"),
    ];
    let vigil = Vigil::start_with_env(&setup, &env);
    let (_, pid) = vigil.wait_spawned(0, "svc");
    let env = environ(pid);
    assert_eq!(var(&env, "A").as_deref(), Some("inherit"));
    assert_eq!(var(&env, "B").as_deref(), Some("file1"));
    assert_eq!(var(&env, "C").as_deref(), Some("file2"));
    assert_eq!(var(&env, "D").as_deref(), Some("env"));
    assert_eq!(var(&env, "QUOTED").as_deref(), Some("a \"b\" c"));
}

/// An env file is read at each start: an edit is a changed environment
/// on reload (a restart), and a file gone at a restart is that start's
/// spawn error, naming it.
#[test]
fn env_files_are_read_at_each_start_and_compared_on_reload() {
    let setup = open_setup("env-reload");
    let dir = setup.service(
        "svc",
        &format!(
            "{}env-file = [\".env\"]\nrestart = \"on-failure\"\n",
            command(&["sleep", "1000"])
        ),
    );
    let file = dir.join(".env");
    std::fs::write(&file, "WHO=first\n").expect("env");
    let vigil = setup.run();
    wait_socket(&vigil);
    let (i, pid) = vigil.wait_spawned(0, "svc");
    assert_eq!(var(&environ(pid), "WHO").as_deref(), Some("first"));

    std::fs::write(&file, "WHO=second\n").expect("env");
    expect_code(&cli(&setup.state, &["reload"]), 0, "reload");
    let (i, pid) = vigil.wait_spawned(i + 1, "svc");
    assert_eq!(var(&environ(pid), "WHO").as_deref(), Some("second"));

    // A syntax error is refused by the reload, naming file:line.
    std::fs::write(&file, "WHO=third\nnot an assignment\n").expect("env");
    let out = cli(&setup.state, &["reload"]);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(said.contains(&format!("{}:2: ", file.display())), "{said}");

    std::fs::remove_file(&file).expect("rm");
    // (It reports that the service did not come back: backoff.)
    let _ = cli(&setup.state, &["restart", "svc"]);
    let (_, e) = vigil.wait_kind(i + 1, "svc", "spawn-error");
    assert!(e.to_string().contains(&file.display().to_string()), "{e}");
}

#[test]
fn credentials_are_files_only_the_user_reads_and_nowhere_else() {
    if !is_root() {
        eprintln!("skipped: needs root to change users");
        return;
    }
    let setup = open_setup("credentials");
    let out = drop_box(&setup);
    let secrets = setup.root.join("secrets");
    std::fs::create_dir_all(&secrets).expect("secrets");
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let secret = "s3cr3t-4a7f-not-anywhere-else";
    let source = secrets.join("db");
    std::fs::write(&source, format!("{secret}\n")).expect("secret");
    let copy = out.join("copy");
    setup.service(
        "db",
        &format!(
            "{}user = \"nobody\"\ncredentials = {{ db-password = {} }}\n",
            command(&[
                "sh",
                "-c",
                &format!(
                    "echo dir=$CREDENTIALS_DIRECTORY; cat \"$CREDENTIALS_DIRECTORY/db-password\" > {}; exec sleep 1000",
                    copy.display()
                ),
            ]),
            toml_str(&source.display().to_string())
        ),
    );
    setup.service(
        "missing",
        &format!(
            "{}credentials = {{ token = \"/nonexistent/vigil-token\" }}\nrestart = \"never\"\n",
            command(&["sleep", "1000"])
        ),
    );
    let mut vigil = setup.run();
    let (_, pid) = vigil.wait_spawned(0, "db");
    vigil.wait_until("the service copied its secret", || {
        std::fs::read_to_string(&copy).is_ok_and(|t| t.contains(secret))
    });
    // Read once the child is past its exec (an environ read while the
    // kernel swaps the image comes back empty).
    let env = vigil.wait_for("the child's environment is readable", || {
        let env = environ(pid);
        var(&env, "CREDENTIALS_DIRECTORY").is_some().then_some(env)
    });
    let dir = PathBuf::from(var(&env, "CREDENTIALS_DIRECTORY").expect("CREDENTIALS_DIRECTORY"));
    let meta = std::fs::metadata(&dir).expect("credentials dir");
    assert_eq!((meta.uid(), meta.mode() & 0o777), (65534, 0o700));
    let meta = std::fs::metadata(dir.join("db-password")).expect("credential");
    assert_eq!((meta.uid(), meta.mode() & 0o777), (65534, 0o400));
    assert!(
        env.iter().all(|(_, v)| !v.contains(secret)),
        "the secret is in the environment"
    );

    let (_, e) = vigil.wait_kind(0, "missing", "spawn-error");
    assert!(e.to_string().contains("/nonexistent/vigil-token"), "{e}");
    assert!(e.to_string().contains("token"), "{e}");

    // Not in the journal, the status or any log file.
    let report: Value = status(&setup.state);
    assert!(!report.to_string().contains(secret), "{report}");
    vigil.wait_until("the output is logged", || {
        std::fs::read_to_string(setup.state.join("logs/db.log")).is_ok_and(|t| t.contains("dir="))
    });
    vigil.terminate();
    let mut files = vec![vigil.journal_path()];
    files.extend(
        std::fs::read_dir(setup.state.join("logs"))
            .expect("logs")
            .flatten()
            .map(|e| e.path()),
    );
    for f in files {
        let content = std::fs::read(&f).expect("read");
        assert!(
            !String::from_utf8_lossy(&content).contains(secret),
            "the secret is in {}",
            f.display()
        );
    }
    // Removed once vigil stopped.
    assert!(!dir.exists(), "{} outlived vigil", dir.display());
    assert!(
        vigil.journal().iter().any(|e| is(e, "db", "spawned")),
        "journaled"
    );
}

#[test]
fn a_changed_identity_restarts_the_service() {
    let setup = open_setup("identity-reload");
    let dir = setup.service("svc", &command(&["sleep", "1000"]));
    let vigil = setup.run();
    wait_socket(&vigil);
    let (i, _) = vigil.wait_spawned(0, "svc");
    std::fs::write(
        dir.join("service.toml"),
        format!("{}umask = \"0077\"\n", command(&["sleep", "1000"])),
    )
    .expect("manifest");
    expect_code(&cli(&setup.state, &["reload"]), 0, "reload");
    let (_, pid) = vigil.wait_spawned(i + 1, "svc");
    let umask = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("Umask:").map(|u| u.trim().to_string()))
        .expect("Umask line");
    assert_eq!(umask, "0077");
}

/// A service run as another user still dies with vigil: the kernel
/// clears PR_SET_PDEATHSIG when the credentials change, so the spawn sets
/// it after becoming the user.
#[test]
fn a_service_run_as_another_user_dies_with_vigil() {
    if !is_root() {
        eprintln!("skipped: needs root to change users");
        return;
    }
    let setup = open_setup("as-nobody-pdeathsig");
    setup.service(
        "svc",
        &format!("{}user = \"nobody\"\n", command(&["sleep", "1000"])),
    );
    let mut vigil = setup.run();
    let (_, pid) = vigil.wait_spawned(0, "svc");
    assert_eq!(status_ids(pid, "Uid:"), [65534; 4]);
    vigil.kill();
    crate::support::wait_until("the child dies with vigil", crate::support::SOON, || {
        !crate::support::alive(pid)
    });
}

/// `vigil logs NAME --state-dir STATE` output.
fn vigil_logs(state: &std::path::Path, name: &str) -> String {
    let out = cli(state, &["logs", name, "-n", "1000"]);
    expect_code(&out, 0, "vigil logs");
    text(&out.stdout)
}

/// docs/production.md "Output": `[log]` per service: JSON with the
/// streams apart, long lines split and marked, binary output lossy, its
/// own size and number of rotated files; `vigil logs` reads both formats.
#[test]
fn log_format_size_and_keep_are_per_service() {
    let setup = open_setup("log-keys");
    let script = "printf 'out-1\\n'; printf 'err-1\\n' >&2; \
                  head -c 40000 /dev/zero | tr '\\0' x; echo; \
                  printf 'bin \\377\\376 end\\n'; \
                  i=0; while [ $i -lt 40 ]; do echo filler-$i-0123456789012345678901234567890123456789; i=$((i+1)); done; \
                  echo done; exec sleep 1000";
    setup.service(
        "json",
        &format!(
            "{}[log]\nformat = \"json\"\nmax-size = \"1KiB\"\nkeep = 2\n",
            command(&["sh", "-c", script])
        ),
    );
    setup.service(
        "plain",
        &format!(
            "{}[log]\ntimestamps = false\nmax-size = \"1MiB\"\n",
            command(&["sh", "-c", script])
        ),
    );
    let vigil = setup.run();
    wait_socket(&vigil);
    let logs = setup.state.join("logs");
    for name in ["json", "plain"] {
        vigil.wait_until(&format!("{name} logged everything"), || {
            std::fs::read_to_string(logs.join(format!("{name}.log")))
                .is_ok_and(|t| t.contains("done"))
        });
    }
    // Rotated at 1 KiB, two rotated files kept, no third.
    assert!(logs.join("json.1.log").exists());
    assert!(logs.join("json.2.log").exists());
    assert!(!logs.join("json.3.log").exists());
    for f in ["json.log", "json.1.log", "json.2.log"] {
        let content = std::fs::read_to_string(logs.join(f)).expect("UTF-8");
        for line in content.lines() {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert!(v["time"].is_string(), "{line}");
            assert!(v["stream"] == "stdout" || v["stream"] == "stderr", "{line}");
        }
    }
    // The plain one kept everything: the long line in marked pieces that
    // add up, the binary bytes as U+FFFD, no timestamps.
    let plain = std::fs::read_to_string(logs.join("plain.log")).expect("UTF-8");
    assert!(plain.contains("stderr err-1\n"), "{plain:.300}");
    assert!(
        plain.contains("stdout bin \u{fffd}\u{fffd} end\n"),
        "{plain:.300}"
    );
    let pieces: Vec<&str> = plain.lines().filter(|l| l.contains("xxxx")).collect();
    assert_eq!(pieces.len(), 3, "40000 bytes in 16 KiB pieces");
    assert!(pieces[0].starts_with("stdout+ ") && pieces[1].starts_with("stdout+ "));
    assert!(pieces[2].starts_with("stdout "));
    let joined: usize = pieces
        .iter()
        .map(|l| l.split_once(' ').map_or(0, |(_, t)| t.len()))
        .sum();
    assert_eq!(joined, 40000);

    // `vigil logs` shows both formats alike: TIME STREAM TEXT.
    let shown = vigil_logs(&setup.state, "json");
    assert!(
        shown.lines().any(|l| l.ends_with(" stdout done")),
        "{shown}"
    );
    assert!(!shown.contains('{'), "{shown}");
    let shown = vigil_logs(&setup.state, "plain");
    assert!(shown.lines().any(|l| l == "stderr err-1"), "{shown}");
    assert!(
        shown.lines().any(|l| l.starts_with("stdout+ xxx")),
        "{shown}"
    );
}

/// A vigil that is not root refuses a manifest naming another user, and
/// accepts its own. Run as nobody from a hard link of the binary outside
/// /root (which nobody cannot enter).
#[test]
fn a_vigil_that_is_not_root_refuses_another_user() {
    use std::os::unix::process::CommandExt;
    if !is_root() {
        eprintln!("skipped: needs root to become nobody");
        return;
    }
    let setup = open_setup("not-root");
    let home = drop_box(&setup);
    let bin = setup.root.join("vigil");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_vigil"), &bin).is_err() {
        eprintln!("skipped: cannot link the binary outside the target dir");
        return;
    }
    setup.service(
        "other",
        &format!("{}user = \"root\"\n", command(&["sleep", "1"])),
    );
    setup.service(
        "own",
        &format!(
            "{}user = \"nobody\"\ngroup = \"65534\"\n",
            command(&["sleep", "1"])
        ),
    );
    let out = std::process::Command::new(&bin)
        .arg("validate")
        .arg(&setup.checks)
        .env("HOME", &home)
        .env("XDG_CACHE_HOME", &home)
        .uid(65534)
        .gid(65534)
        .output()
        .expect("validate as nobody");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("other/service.toml:user: vigil runs as uid 65534, not root: it cannot run a service as root"),
        "{err}"
    );
    assert!(err.contains("1 problem:"), "{err}");
}

/// A changed `[log]` applies from the next line, without a restart.
#[test]
fn a_changed_log_format_applies_without_a_restart() {
    let setup = open_setup("log-reload");
    let argv = command(&["sh", "-c", "while true; do echo tick; sleep 0.1; done"]);
    let dir = setup.service("svc", &argv);
    let vigil = setup.run();
    wait_socket(&vigil);
    let (i, pid) = vigil.wait_spawned(0, "svc");
    let log = setup.state.join("logs/svc.log");
    vigil.wait_until("a text line", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains(" stdout tick\n"))
    });
    std::fs::write(
        dir.join("service.toml"),
        format!("{argv}[log]\nformat = \"json\"\n"),
    )
    .expect("manifest");
    expect_code(&cli(&setup.state, &["reload"]), 0, "reload");
    vigil.wait_until("a JSON line", || {
        std::fs::read_to_string(&log)
            .is_ok_and(|t| t.contains(r#""stream":"stdout","text":"tick"}"#))
    });
    assert!(
        !vigil.journal()[i + 1..]
            .iter()
            .any(|e| is(e, "svc", "spawned")),
        "restarted: {:?}",
        vigil.journal()
    );
    assert!(crate::support::alive(pid));
    // Both formats read back alike.
    let shown = vigil_logs(&setup.state, "svc");
    assert!(
        shown.lines().all(|l| l.ends_with(" stdout tick")),
        "{shown}"
    );
}
