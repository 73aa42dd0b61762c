//! docs/security.md "The service's output": a check reads the output of
//! the service it judges only when `[grants] output = true`, only that
//! service's, and only a bounded amount however much or whatever the
//! service prints.

use crate::support::*;

/// A service running `script` (sh), with `[grants] output` as given and
/// `output_read.wasm` as its readiness check with `config`.
fn reader_service(setup: &Setup, name: &str, script: &str, grant: bool, config: &str) {
    let after = if name == "alpha" {
        "after = [\"beta\"]\n"
    } else {
        ""
    };
    let grants = if grant {
        "[grants]\noutput = true\n\n"
    } else {
        ""
    };
    let dir = setup.service(
        name,
        &format!(
            "{}{after}\n{grants}[checks.readiness]\ncheck = \"output_read.wasm\"\nperiod = \"100ms\"\n\
             [checks.readiness.config]\n{config}",
            command(&["sh", "-c", script]),
        ),
    );
    std::fs::copy(programs::OUTPUT_READ, dir.join("output_read.wasm")).expect("copy check");
}

/// Without the grant every read is denied, with an error that names the
/// grant to add, at run time; and `vigil validate` says so before.
#[test]
fn without_the_grant_the_output_is_denied() {
    let setup = Setup::new("output-denied");
    reader_service(
        &setup,
        "closed",
        "echo secret-line; exec sleep 1000",
        false,
        "since = \"all\"\n",
    );
    let vigil = setup.run();
    let (i, _) = vigil.wait_spawned(0, "closed");
    let (_, check) = vigil.wait_event_from(i, |e| is(e, "closed", "check"), SOON);
    assert_eq!(check["outcome"], "error", "{check}");
    let reason = check["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("denied") && reason.contains("output = true"),
        "{check}"
    );
    assert!(!reason.contains("secret-line"), "{check}");

    let out = vigil_command()
        .arg("validate")
        .arg(setup.checks.join("closed"))
        .output()
        .expect("run vigil validate");
    let text = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("checks.readiness.check") && text.contains("add `output = true` to [grants]"),
        "{text}"
    );
}

/// Megabytes of binary noise, thousands of lines and one line of 100 KiB:
/// what the check gets stays within the host's bounds (1000 lines, 256 KiB,
/// 4 KiB a line, checked inside the guest), the oldest lines are dropped
/// and counted, and the last line still arrives.
#[test]
fn huge_and_binary_output_stays_bounded() {
    let setup = Setup::new("output-flood");
    reader_service(
        &setup,
        "flood",
        "head -c 4000000 /dev/urandom; seq 1 5000; head -c 100000 /dev/zero | tr '\\0' x; \
         echo; echo flood-done; exec sleep 1000",
        true,
        "want = \"flood-done\"\nwant-evicted = \"true\"\n",
    );
    let vigil = setup.run();
    let (i, _) = vigil.wait_spawned(0, "flood");
    vigil.wait_kind(i, "flood", "ready");
}

/// Two granted services: each check sees its own service's lines and never
/// the other's. `alpha` starts after `beta` is ready, which is after
/// beta's check saw `beta-secret`: alpha's reads of everything kept would
/// have met it, and `forbid` would have kept alpha unready.
#[test]
fn a_check_reads_only_its_own_service() {
    let setup = Setup::new("output-isolation");
    reader_service(
        &setup,
        "alpha",
        "echo alpha-mark; exec sleep 1000",
        true,
        "since = \"all\"\nwant = \"alpha-mark\"\nforbid = \"beta\"\n",
    );
    reader_service(
        &setup,
        "beta",
        "echo beta-secret; exec sleep 1000",
        true,
        "since = \"all\"\nwant = \"beta-secret\"\nforbid = \"alpha\"\n",
    );
    let vigil = setup.run();
    for name in ["alpha", "beta"] {
        vigil.wait_kind(0, name, "ready");
    }
    for name in ["alpha", "beta"] {
        assert!(
            !vigil
                .events(name)
                .iter()
                .any(|e| is(e, name, "check") && e["outcome"] == "error"),
            "{name}: {:?}",
            vigil.events(name)
        );
    }
}
