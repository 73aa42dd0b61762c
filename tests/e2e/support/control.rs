//! The control socket from the outside: `vigil ARGS --state-dir STATE`
//! (the CLI clients), and polling `vigil status --json`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;

use serde_json::Value;

use super::{SOON, Vigil, expect_code, vigil_command};

/// `vigil ARGS --state-dir STATE`, run to completion.
pub fn cli(state: &Path, args: &[&str]) -> Output {
    vigil_command()
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .stdin(Stdio::null())
        .output()
        .expect("run the vigil client")
}

/// Where `vigil run --state-dir STATE` serves its control socket.
pub fn socket(state: &Path) -> PathBuf {
    state.join("control.sock")
}

/// Wait until `vigil`'s control socket accepts connections.
pub fn wait_socket(vigil: &Vigil) {
    let path = socket(&vigil.state);
    vigil.wait_until(&format!("a control socket at {}", path.display()), || {
        std::os::unix::net::UnixStream::connect(&path).is_ok()
    });
}

/// `vigil status --json` (all services), parsed.
pub fn status(state: &Path) -> Value {
    let out = cli(state, &["status", "--json"]);
    // 6: some service is not (yet) ready.
    if out.status.code() != Some(6) {
        expect_code(&out, 0, "vigil status --json");
    }
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

/// The entry of service `name` in a status report.
pub fn service<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

/// Poll `vigil status --json` until `name` satisfies `pred`.
pub fn wait_status(vigil: &Vigil, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let last = std::cell::RefCell::new(Value::Null);
    super::poll_until(
        &format!("{name}'s status matches"),
        SOON,
        || {
            let report = status(&vigil.state);
            let entry = service(&report, name).clone();
            let found = pred(&entry).then(|| entry.clone());
            *last.borrow_mut() = entry;
            found
        },
        || format!("last {}\n{}", last.borrow(), vigil.diagnostics()),
    )
}

/// `vigil journal ARGS --json --state-dir STATE` (with `-f` among ARGS to
/// follow), its lines parsed on a channel as they come.
pub fn follow_journal(state: &Path, args: &[&str]) -> (Child, mpsc::Receiver<Value>) {
    let mut child = vigil_command()
        .arg("journal")
        .args(args)
        .arg("--json")
        .arg("--state-dir")
        .arg(state)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start vigil journal");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let value: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("line {line:?}: {e}"));
            if tx.send(value).is_err() {
                break;
            }
        }
    });
    (child, rx)
}
