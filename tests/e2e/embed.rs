//! README "Checks inside the service's binary" (docs/embedding.md): a
//! real C program given its checks by `vigil embed`, a real Rust program
//! that carries its own readiness check and loader from `cargo build`
//! (tests/embedded-service, built by host/build.rs with vigil-embed), each
//! run by the real `vigil` as a service.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::*;

/// tests/embedded-service: readiness = programs::ECHO_CONFIG, loader =
/// programs::EMBEDDED_LOADER, embedded at compile time.
const RUST_SERVICE: &str = env!("VIGIL_TEST_EMBEDDED_SERVICE");

fn vigil(args: &[&str]) -> Output {
    vigil_command()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run vigil")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A C program that prints a line and stays up until stopped, built with
/// the system's C compiler (the one rustc links with) into `dir/name`.
fn c_program(dir: &Path, name: &str) -> PathBuf {
    let source = dir.join(format!("{name}.c"));
    std::fs::write(
        &source,
        "#include <stdio.h>\n#include <unistd.h>\n\
         int main(void) { printf(\"c service up\\n\"); fflush(stdout); for (;;) pause(); }\n",
    )
    .expect("write C source");
    let binary = dir.join(name);
    let out = Command::new("cc")
        .arg("-O1")
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .output()
        .expect("run cc");
    expect_code(&out, 0, "cc");
    binary
}

/// `vigil embed ARGS`, which must succeed.
fn embed(args: &[&str]) {
    let mut all = vec!["embed"];
    all.extend_from_slice(args);
    expect_code(&vigil(&all), 0, &format!("vigil {}", all.join(" ")));
}

/// Runs `binary` and reads its first line: it still starts as a program.
fn first_line(binary: &Path) -> String {
    use std::io::BufRead;
    let mut child = Command::new(binary)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("run the binary");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read its first line");
    let _ = child.kill();
    let _ = child.wait();
    line
}

/// `vigil inspect BINARY --json`: role -> (world, sha256).
fn carried(binary: &Path) -> Vec<(String, String, String)> {
    let out = vigil(&["inspect", &binary.to_string_lossy(), "--json"]);
    expect_code(&out, 0, "vigil inspect --json");
    let report: Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    report["components"]
        .as_array()
        .expect("components")
        .iter()
        .map(|c| {
            (
                c["role"].as_str().unwrap_or_default().to_string(),
                c["world"].as_str().unwrap_or_default().to_string(),
                c["sha256"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn sha256_of(path: &str) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("read component")))
}

/// `vigil embed` on a C binary: the result runs, `strip` keeps the
/// section, `inspect` lists each role with its world and digest,
/// embedding again does not grow the file, and `-o` leaves the input be.
#[test]
fn vigil_embed_on_a_c_binary_survives_running_and_strip() {
    let dir = scratch("embed-c");
    let binary = c_program(&dir, "cserver");
    let b = binary.to_string_lossy().into_owned();
    let retry = format!("readiness={}", programs::RETRY);
    embed(&[&b, "--check", &retry, "--loader", programs::EMBEDDED_LOADER]);
    assert_eq!(first_line(&binary), "c service up\n");
    let size = std::fs::metadata(&binary).expect("stat").len();
    embed(&[&b, "--check", &retry]);
    assert_eq!(std::fs::metadata(&binary).expect("stat").len(), size);

    let strip = Command::new("strip").arg(&binary).output().expect("strip");
    expect_code(&strip, 0, "strip");
    assert_eq!(first_line(&binary), "c service up\n");
    assert_eq!(
        carried(&binary),
        [
            (
                "readiness".to_string(),
                "vigil:health/checker".to_string(),
                sha256_of(programs::RETRY)
            ),
            (
                "loader".to_string(),
                "vigil:health/loader".to_string(),
                sha256_of(programs::EMBEDDED_LOADER)
            ),
        ]
    );
    let human = vigil(&["inspect", &b]);
    expect_code(&human, 0, "vigil inspect");
    assert!(
        text(&human.stdout).contains("readiness"),
        "{}",
        text(&human.stdout)
    );

    // -o: a copy carries the new component, the input keeps its own.
    let copy = dir.join("copy");
    let ok = format!("readiness={}", programs::OK);
    embed(&[&b, "--check", &ok, "-o", &copy.to_string_lossy()]);
    assert_eq!(carried(&copy)[0].2, sha256_of(programs::OK));
    assert_eq!(carried(&binary)[0].2, sha256_of(programs::RETRY));
    // A mode the binary had is kept.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&copy).expect("stat").permissions().mode();
    assert_ne!(mode & 0o111, 0, "{mode:o}");

    // A component of the wrong world is refused before anything is written.
    let before = std::fs::read(&binary).expect("read");
    let wrong = format!("readiness={}", programs::EMBEDDED_LOADER);
    let out = vigil(&["embed", &b, "--check", &wrong]);
    expect_code(&out, 2, "embedding a loader as a check");
    assert!(
        text(&out.stderr).contains("is a loader"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read(&binary).expect("read"), before);
}

/// A service whose C binary carries its readiness check uses it; a new
/// build of the binary (embedded again, renamed over it) is a changed
/// command on reload: the child is restarted and the new check used.
#[test]
fn a_service_uses_its_binary_s_check_and_restarts_on_a_new_build() {
    let setup = Setup::new("embed-service");
    let dir = setup.service(
        "cee",
        "command = [\"./cserver\"]\n\
         [checks.readiness]\ncheck = \"embedded:readiness\"\nperiod = \"200ms\"\n",
    );
    let binary = c_program(&dir, "cserver");
    let b = binary.to_string_lossy().into_owned();
    embed(&[&b, "--check", &format!("readiness={}", programs::RETRY)]);
    let vigil = setup.run();
    let (i, pid) = vigil.wait_spawned(0, "cee");
    vigil.wait_event_from(
        i,
        |e| {
            is(e, "cee", "check")
                && e["phase"] == "readiness"
                && e["reason"].as_str().is_some_and(|r| r.contains("not yet"))
        },
        SOON,
    );

    embed(&[&b, "--check", &format!("readiness={}", programs::OK)]);
    // The watcher may see the rename first; a reload is the same change.
    let reload = cli(&setup.state, &["reload"]);
    expect_code(&reload, 0, "vigil reload");
    let (j, reloaded) = vigil.wait_event_from(
        i,
        |e| {
            is(e, "cee", "reloaded")
                && e["change"]
                    .as_str()
                    .is_some_and(|c| c.contains("binary changed"))
        },
        SOON,
    );
    assert!(
        reloaded["change"]
            .as_str()
            .is_some_and(|c| c.contains("restarting")),
        "{reloaded}"
    );
    let (k, new_pid) = vigil.wait_spawned(j, "cee");
    assert_ne!(new_pid, pid);
    vigil.wait_kind(k, "cee", "ready");
}

/// The Rust program built with vigil-embed carries its readiness check
/// and loader: `inspect` lists both (also after `strip`), and a manifest
/// naming `embedded:readiness` runs its check (echo_config answers with
/// what it was asked).
#[test]
fn a_rust_service_built_with_vigil_embed_carries_its_readiness_check() {
    let dir = scratch("embed-rust-inspect");
    let stripped = dir.join("stripped");
    std::fs::copy(RUST_SERVICE, &stripped).expect("copy");
    let strip = Command::new("strip")
        .arg(&stripped)
        .output()
        .expect("strip");
    expect_code(&strip, 0, "strip");
    for binary in [Path::new(RUST_SERVICE), &stripped] {
        let roles: Vec<(String, String)> = carried(binary)
            .into_iter()
            .map(|(role, world, _)| (role, world))
            .collect();
        assert_eq!(
            roles,
            [
                ("readiness".into(), "vigil:health/checker".into()),
                ("loader".into(), "vigil:health/loader".into())
            ],
            "{}",
            binary.display()
        );
    }
    assert_eq!(
        carried(Path::new(RUST_SERVICE))[0].2,
        sha256_of(programs::ECHO_CONFIG)
    );

    let setup = Setup::new("embed-rust");
    setup.service(
        "rusty",
        &format!(
            "{}[checks.readiness]\ncheck = \"embedded:readiness\"\nperiod = \"200ms\"\n",
            command(&[RUST_SERVICE])
        ),
    );
    let vigil = setup.run();
    vigil.wait_event(
        |e| {
            is(e, "rusty", "check")
                && e["phase"] == "readiness"
                && e["reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("service=rusty,phase=readiness,pid="))
        },
        SOON,
    );
}

/// A directory holding only the Rust binary is a service: its embedded
/// loader's `spawn` gives the command (the binary itself, from the
/// `program` the host passes it), and `vigil validate` accepts it.
#[test]
fn a_directory_holding_only_a_binary_with_a_loader_is_a_service() {
    let setup = Setup::new("embed-loader-only");
    let dir = setup.checks.join("selfie");
    std::fs::create_dir_all(&dir).expect("service dir");
    let binary = dir.join("vigil-embedded-service");
    std::fs::copy(RUST_SERVICE, &binary).expect("copy the binary");

    let out = vigil(&["validate", &setup.checks.to_string_lossy()]);
    expect_code(&out, 0, "vigil validate");

    let vigil = setup.run();
    let (_, pid) = vigil.wait_spawned(0, "selfie");
    let expected = format!("{} serve", binary.display());
    vigil.wait_until("the loader's command runs", || {
        cmdline(pid).trim() == expected
    });
}

/// What is wrong with a binary's components is a manifest error naming the
/// file and the role: a section whose index is corrupt, a role it does
/// not carry, and a component that is not one.
#[test]
fn a_broken_section_or_a_missing_role_is_a_validation_error() {
    let setup = Setup::new("embed-broken");
    let dir = setup.service(
        "broken",
        "command = [\"./cserver\"]\n[checks.readiness]\ncheck = \"embedded:readiness\"\n",
    );
    let binary = c_program(&dir, "cserver");
    let b = binary.to_string_lossy().into_owned();
    embed(&[&b, "--check", &format!("readiness={}", programs::OK)]);
    let validate = || vigil(&["validate", &setup.checks.to_string_lossy()]);
    expect_code(&validate(), 0, "vigil validate of a good binary");

    // The index entry's length, past the end of its blob.
    let mut bytes = std::fs::read(&binary).expect("read");
    let at = bytes
        .windows(8)
        .rposition(|w| w == b"VIGILEMB")
        .expect("the section's header");
    bytes[at + 24 + 36..at + 24 + 40].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&binary, &bytes).expect("write");
    let out = validate();
    expect_code(&out, 1, "vigil validate of a corrupt section");
    let report = text(&out.stdout) + &text(&out.stderr);
    assert!(report.contains("checks.readiness.check"), "{report}");
    assert!(report.contains(&b), "{report}");
    assert!(report.contains("role `readiness`"), "{report}");
    assert!(report.contains("malformed .vigil.components"), "{report}");

    // A role it does not carry.
    embed(&[&b, "--check", &format!("readiness={}", programs::OK)]);
    atomic_save(
        &dir,
        "command = [\"./cserver\"]\n[checks.liveness]\ncheck = \"embedded:liveness\"\n",
    );
    let out = validate();
    expect_code(&out, 1, "vigil validate of a missing role");
    let report = text(&out.stdout) + &text(&out.stderr);
    assert!(report.contains("no embedded `liveness`"), "{report}");
    assert!(report.contains("it carries: readiness"), "{report}");

    // A component whose bytes are not a component.
    let mut bytes = std::fs::read(&binary).expect("read");
    let at = bytes
        .windows(8)
        .rposition(|w| w == b"VIGILEMB")
        .expect("the section's header");
    let offset = u32::from_le_bytes(bytes[at + 56..at + 60].try_into().expect("4 bytes"));
    bytes[at + offset as usize] = b'X';
    std::fs::write(&binary, &bytes).expect("write");
    atomic_save(
        &dir,
        "command = [\"./cserver\"]\n[checks.readiness]\ncheck = \"embedded:readiness\"\n",
    );
    let out = validate();
    expect_code(&out, 1, "vigil validate of a broken component");
    let report = text(&out.stdout) + &text(&out.stderr);
    assert!(report.contains("embedded:readiness in"), "{report}");
    assert!(report.contains("not a WebAssembly file"), "{report}");
}
