//! README "Status page": `vigil run --http ADDR` serves a live page at
//! `/`, tested in Debian's headless Chromium driven by playwright-core
//! (tests/browser/page.cjs; `make setup` installs both): every service is
//! listed, a killed service's restart appears without a reload, hostile
//! check and log text is shown as text and runs nothing, and actions
//! exist only with `--http-token-file`, refused without its bearer header
//! or from another origin.

use std::path::PathBuf;
use std::process::Command;

use crate::support::*;

/// Where `make setup` put playwright-core.
fn node_modules() -> PathBuf {
    let tools = std::env::var_os("VIGIL_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/vigil/tools")
        });
    tools.join("browser/node_modules")
}

/// Run tests/browser/page.cjs with `args`; panics with its output unless
/// it passed.
fn browser(vigil: &Vigil, args: &[&str]) -> String {
    let modules = node_modules();
    assert!(
        modules.join("playwright-core").is_dir()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser tests need Chromium and playwright-core: run `make setup` (looked in {})",
        modules.display()
    );
    let out = Command::new("node")
        .arg(workspace().join("tests/browser/page.cjs"))
        .args(args)
        .env("NODE_PATH", &modules)
        .output()
        .expect("run node");
    let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success() && shown.contains("PASS"),
        "browser: {shown}\n{}",
        vigil.diagnostics()
    );
    shown
}

const HOSTILE: &str = "<script>window.pwned=1</script><img src=x onerror=window.pwned=2>";

#[test]
fn page_is_live_escapes_hostile_text_and_has_no_actions_without_a_token() {
    let setup = Setup::new("page-live");
    setup.service("db", &command(&["sleep", "1000"]));
    setup.service(
        "web",
        &format!(
            "{}after = [\"db\"]\n\n[checks.liveness]\ncheck = \"builtin:process\"\nperiod = \"200ms\"\n",
            command(&["sh", "-c", "while true; do echo serving; sleep 0.5; done"])
        ),
    );
    let dir = setup.service(
        "hostile",
        &format!(
            "{}\n[checks.liveness]\ncheck = \"check.wasm\"\nperiod = \"300ms\"\nfailure-threshold = 1000\n[checks.liveness.config]\nmsg = {}\n",
            command(&["sh", "-c", &format!("while true; do echo '{HOSTILE}'; sleep 0.5; done")]),
            toml_str(HOSTILE)
        ),
    );
    std::fs::copy(programs::ECHO_CONFIG, dir.join("check.wasm")).expect("copy the check");
    let port = closed_port();
    let addr = format!("127.0.0.1:{port}");
    let vigil = Vigil::start_with(&setup, &["--http", &addr]);
    vigil.wait_event(|e| is(e, "web", "ready"), SOON);
    vigil.wait_event(|e| is(e, "hostile", "check"), SOON);
    let shot = setup.root.join("page.png");
    let shot_arg = shot.to_string_lossy().into_owned();
    let screenshot = std::env::var_os("VIGIL_PAGE_SCREENSHOT").map(PathBuf::from);
    let shown = browser(
        &vigil,
        &[
            "read-only",
            &format!("http://{addr}/"),
            "db,web,hostile",
            "web",
            "hostile",
            &shot_arg,
        ],
    );
    assert!(
        shown.contains("ok: no injected element and no script ran"),
        "{shown}"
    );
    if let Some(to) = screenshot {
        std::fs::copy(&shot, to).expect("keep the screenshot");
    }
}

#[test]
fn page_actions_need_the_token_and_restart_with_the_operator_as_cause() {
    let setup = Setup::new("page-actions");
    setup.service("web", &command(&["sleep", "1000"]));
    let token_file = setup.root.join("token");
    std::fs::write(&token_file, "t0ken-for-the-test\n").expect("token file");
    let port = closed_port();
    let addr = format!("127.0.0.1:{port}");
    let token_arg = token_file.to_string_lossy().into_owned();
    let vigil = Vigil::start_with(&setup, &["--http", &addr, "--http-token-file", &token_arg]);
    vigil.wait_event(|e| is(e, "web", "ready"), SOON);
    let from = vigil.journal().len();
    browser(
        &vigil,
        &[
            "actions",
            &format!("http://{addr}/"),
            "t0ken-for-the-test",
            "web",
        ],
    );
    let (_, stopping) = vigil.wait_kind(from, "web", "stopping");
    assert_eq!(stopping["cause"], "operator", "{stopping}");
    // Exactly one restart: the refused requests did nothing.
    let restarts = vigil
        .journal()
        .iter()
        .skip(from)
        .filter(|e| is(e, "web", "stopping"))
        .count();
    assert_eq!(restarts, 1);
}

#[test]
fn an_empty_token_file_is_refused() {
    let setup = Setup::new("page-empty-token");
    setup.service("web", &command(&["sleep", "1000"]));
    let token_file = setup.root.join("token");
    std::fs::write(&token_file, "\n").expect("token file");
    let out = setup
        .run_command()
        .args(["--http", "127.0.0.1:0", "--http-token-file"])
        .arg(&token_file)
        .output()
        .expect("run vigil");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("is empty"),
        "{}",
        text(&out.stderr)
    );
}

/// A service with a held socket, in Chromium: its row shows the socket
/// (name, address, fd), the replace button (with a token) starts a replace
/// that the row shows live with both pids, then the new pid; the journal
/// has the operator's replace.
#[test]
fn page_shows_sockets_and_a_replace_started_from_its_button() {
    let setup = Setup::new("page-replace");
    let dir = setup.checks.join("web");
    setup.service(
        "web",
        &format!(
            "{}notify = true\n[sockets.web]\nlisten = \"127.0.0.1:0\"\n",
            crate::sockets::server_command(&dir)
        ),
    );
    let token_file = setup.root.join("token");
    std::fs::write(&token_file, "t0ken-for-the-test\n").expect("token file");
    let port = closed_port();
    let addr = format!("127.0.0.1:{port}");
    let token_arg = token_file.to_string_lossy().into_owned();
    let vigil = Vigil::start_with(&setup, &["--http", &addr, "--http-token-file", &token_arg]);
    wait_socket(&vigil);
    let entry = wait_status(&vigil, "web", |s| s["state"] == "ready");
    let socket = crate::sockets::bound(&entry, "web");
    // The new child says READY=1 only after 4 s: the replace stays on the
    // page long enough to be seen.
    std::fs::write(dir.join("delay"), "4").expect("write delay");
    let from = vigil.journal().len();
    browser(
        &vigil,
        &[
            "replace",
            &format!("http://{addr}/"),
            "t0ken-for-the-test",
            "web",
            &socket,
        ],
    );
    let (_, replacing) = vigil.wait_kind(from, "web", "replacing");
    assert_eq!(replacing["cause"], "operator", "{replacing}");
    vigil.wait_kind(from, "web", "replaced");
}
