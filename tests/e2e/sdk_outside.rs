//! docs/writing-checks-rust.md "The template": the Rust SDK works outside
//! this repository. A copy of the SDK (with its macros crate, its WIT and
//! the units crate it uses) in a temporary directory, a check made there
//! with `cargo new --lib`, `cargo add --path` and the documented lines,
//! built offline for wasm32-wasip2 with no workspace around it, and run by
//! the real `vigil check`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::*;

/// `src/lib.rs` of the documented template.
const TEMPLATE: &str = "use vigil_sdk::{check, Outcome, Target};

#[check]
fn check(target: Target) -> Outcome {
    Outcome::retry(format!(\"outside, for {}\", target.service))
}
";

/// Copies the directory `from` to `to` (files and directories; symbolic
/// links are copied as what they point to, as an archive or a registry
/// would hold them). Build output is left out.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let path = entry.path();
        if entry.file_name() == "target" {
            continue;
        }
        let dest = to.join(entry.file_name());
        if path.is_dir() {
            copy_tree(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).expect("copy file");
        }
    }
}

/// `cargo ARGS` in `dir`, with none of this test build's cargo
/// environment (it would point the nested build at this workspace).
fn cargo(dir: &Path, target_dir: &Path) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        let leaks = (name.starts_with("CARGO_") && name != "CARGO_HOME")
            || name.starts_with("RUSTFLAGS")
            || name == "RUSTC_WORKSPACE_WRAPPER";
        if leaks {
            command.env_remove(&name);
        }
    }
    command.current_dir(dir).env("CARGO_TARGET_DIR", target_dir);
    command
}

fn succeed(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_check_builds_from_a_copy_of_the_sdk_outside_the_workspace() {
    // Under the system's temporary directory: the target directory may be
    // inside the repository, whose Cargo.toml would claim the crate.
    let root = std::env::temp_dir().join(format!("vigil-sdk-outside-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let sdk = root.join("guest-sdk");
    copy_tree(&workspace().join("guest-sdk"), &sdk);
    copy_tree(&workspace().join("units"), &root.join("units"));
    for manifest in [
        sdk.join("Cargo.toml"),
        sdk.join("macros/Cargo.toml"),
        root.join("units/Cargo.toml"),
    ] {
        let text = std::fs::read_to_string(&manifest).expect("read a manifest");
        let inherited = text
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .find(|line| line.contains("workspace"));
        assert_eq!(
            inherited,
            None,
            "{} inherits from the workspace",
            manifest.display()
        );
    }
    // Kept between runs: the SDK's dependencies build once.
    let target_dir: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sdk-outside-target");

    succeed(
        cargo(&root, &target_dir).args(["new", "--lib", "--vcs", "none", "--offline", "my-check"]),
        "cargo new",
    );
    let check = root.join("my-check");
    succeed(
        cargo(&check, &target_dir).args(["add", "--offline", "--path", "../guest-sdk"]),
        "cargo add --path",
    );
    let mut manifest = std::fs::read_to_string(check.join("Cargo.toml")).expect("Cargo.toml");
    manifest.push_str("\n[lib]\ncrate-type = [\"cdylib\"]\n");
    std::fs::write(check.join("Cargo.toml"), manifest).expect("write Cargo.toml");
    std::fs::write(check.join("src/lib.rs"), TEMPLATE).expect("write lib.rs");
    // The versions this workspace built with, all in the registry cache.
    std::fs::copy(workspace().join("Cargo.lock"), check.join("Cargo.lock")).expect("lock");
    succeed(
        cargo(&check, &target_dir).args([
            "build",
            "--release",
            "--offline",
            "--target",
            "wasm32-wasip2",
        ]),
        "cargo build",
    );

    let component = target_dir.join("wasm32-wasip2/release/my_check.wasm");
    let output = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("check")
        .arg(&component)
        .env(
            "XDG_CACHE_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache"),
        )
        .output()
        .expect("run vigil check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(75), "{output:?}");
    assert!(stdout.starts_with("retry: outside, for "), "{stdout}");
    let _ = std::fs::remove_dir_all(&root);
}
