//! Hostile input against a real `vigil run` (RELIABILITY.md "Fuzzing"):
//! clients of the control socket and of `--http` that send partial, slow,
//! huge or malformed requests, and journal files that are torn, corrupt,
//! not UTF-8, of the wrong types or huge. Vigil stays up, answers the
//! other clients, keeps its memory bounded and says what it skipped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::{
    SOON, Setup, Vigil, cli, closed_port, command, expect_code, socket, text, wait_socket,
};

/// A stream both kinds of listener give: the control socket and `--http`.
trait Conn: Read + Write {
    fn set_timeout(&self, timeout: Duration);
}

impl Conn for UnixStream {
    fn set_timeout(&self, timeout: Duration) {
        self.set_read_timeout(Some(timeout)).expect("timeout");
        self.set_write_timeout(Some(timeout)).expect("timeout");
    }
}

impl Conn for TcpStream {
    fn set_timeout(&self, timeout: Duration) {
        self.set_read_timeout(Some(timeout)).expect("timeout");
        self.set_write_timeout(Some(timeout)).expect("timeout");
    }
}

/// Send `request` (raw bytes) and read the answer until the server closes
/// or [`SOON`] passes; the status code when there was one. A write error
/// (the server closed on us mid-request) is an answer too.
fn exchange(mut conn: impl Conn, request: &[u8]) -> (Option<u16>, String) {
    conn.set_timeout(SOON);
    let _ = conn.write_all(request);
    let mut raw = Vec::new();
    let _ = conn.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let status = raw
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    (status, raw)
}

fn unix(state: &Path) -> UnixStream {
    UnixStream::connect(socket(state)).expect("connect to the control socket")
}

fn tcp(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).expect("connect to --http")
}

/// Vigil's resident memory in KiB, from /proc.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Both listeners answer a well-formed request.
fn both_answer(vigil: &Vigil, port: u16, what: &str) {
    let (status, body) = exchange(
        unix(&vigil.state),
        b"GET /v1/status HTTP/1.1\r\nHost: vigil\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, Some(200), "control socket after {what}: {body}");
    let (status, body) = exchange(
        tcp(port),
        b"GET /livez HTTP/1.1\r\nHost: vigil\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, Some(200), "--http after {what}: {body}");
    let out = cli(&vigil.state, &["status", "--json"]);
    expect_code(&out, 0, &format!("vigil status after {what}"));
}

#[test]
fn hostile_clients_get_an_error_and_others_still_get_answers() {
    let setup = Setup::new("hostile-clients");
    setup.service("web", &command(&["sleep", "1000"]));
    let port = closed_port();
    let addr = format!("127.0.0.1:{port}");
    let vigil = Vigil::start_with(&setup, &["--http", &addr]);
    wait_socket(&vigil);
    vigil.wait_kind(0, "web", "ready");
    both_answer(&vigil, port, "the start");
    let rss_before = rss_kib(vigil.pid);

    // Slow and partial clients: half a request line, half the headers,
    // held open while others are answered.
    let mut held = Vec::new();
    for _ in 0..50 {
        let mut c = unix(&vigil.state);
        c.write_all(b"GET /v1/sta").expect("partial");
        held.push(Box::new(c) as Box<dyn Write>);
        let mut t = tcp(port);
        t.write_all(b"GET /livez HTTP/1.1\r\nHost: vi")
            .expect("partial");
        held.push(Box::new(t) as Box<dyn Write>);
    }
    both_answer(&vigil, port, "100 partial requests held open");

    let cases: &[(&str, Vec<u8>)] = &[
        ("a path that is not UTF-8", b"GET /v1/status/\xff\xfe HTTP/1.1\r\nHost: v\r\nConnection: close\r\n\r\n".to_vec()),
        ("a percent-encoded path that is not UTF-8", b"GET /v1/status/%ff%fe HTTP/1.1\r\nHost: v\r\nConnection: close\r\n\r\n".to_vec()),
        ("a negative line count", b"GET /v1/journal?lines=-1 HTTP/1.1\r\nHost: v\r\nConnection: close\r\n\r\n".to_vec()),
        ("a line count past u64", b"GET /v1/journal?lines=99999999999999999999999 HTTP/1.1\r\nHost: v\r\nConnection: close\r\n\r\n".to_vec()),
        ("a query that is not UTF-8", b"GET /v1/journal?service=%ff%fe&follow=maybe HTTP/1.1\r\nHost: v\r\nConnection: close\r\n\r\n".to_vec()),
        ("an unknown action", b"POST /v1/services/web/explode HTTP/1.1\r\nHost: v\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()),
        ("a request line of garbage", b"\x00\x01\x02 \xff HTTP/9.9\r\n\r\n".to_vec()),
        ("an absurd content length", b"POST /v1/reload HTTP/1.1\r\nHost: v\r\nContent-Length: 99999999999999999999\r\n\r\n".to_vec()),
    ];
    for (what, request) in cases {
        let (status, body) = exchange(unix(&vigil.state), request);
        if let Some(status) = status {
            assert!(
                (400..500).contains(&status),
                "{what}: answered {status}: {body}"
            );
        }
        both_answer(&vigil, port, what);
    }
    let (status, body) = exchange(
        unix(&vigil.state),
        b"GET /v1/journal?lines=-1 HTTP/1.1\r\nHost: v\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, Some(400), "{body}");
    assert!(
        body.contains("lines"),
        "the error names the parameter: {body}"
    );

    // Huge headers on both listeners: refused, not buffered.
    let mut huge = b"GET /v1/status HTTP/1.1\r\nHost: v\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 4 << 20));
    huge.extend_from_slice(b"\r\n\r\n");
    let (status, _) = exchange(unix(&vigil.state), &huge);
    assert!(matches!(status, None | Some(431) | Some(400)), "{status:?}");
    let mut many = b"GET /livez HTTP/1.1\r\nHost: v\r\n".to_vec();
    for i in 0..10_000 {
        many.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let (status, _) = exchange(tcp(port), &many);
    assert!(matches!(status, None | Some(431) | Some(400)), "{status:?}");
    both_answer(&vigil, port, "huge headers");

    // A huge body to a route that takes none: the answer does not wait
    // for it, and it is not kept.
    let mut conn = unix(&vigil.state);
    conn.set_timeout(SOON);
    conn.write_all(
        b"POST /v1/services/web/start HTTP/1.1\r\nHost: v\r\nContent-Length: 104857600\r\nConnection: close\r\n\r\n",
    )
    .expect("head");
    let chunk = vec![b'z'; 1 << 20];
    for _ in 0..8 {
        if conn.write_all(&chunk).is_err() {
            break;
        }
    }
    drop(conn);
    both_answer(&vigil, port, "a 100 MB body cut short");

    drop(held);
    both_answer(&vigil, port, "the partial clients left");
    let rss_after = rss_kib(vigil.pid);
    // Bounded: none of the above was buffered whole (the huge header alone
    // is 4 MiB, the body 8 MiB); allow for allocator slack.
    assert!(
        rss_after < rss_before + 64 * 1024,
        "vigil grew from {rss_before} KiB to {rss_after} KiB"
    );
    // Nothing of this reached the service.
    assert_eq!(
        vigil
            .events("web")
            .iter()
            .filter(|e| e["kind"] == "spawned")
            .count(),
        1,
        "{}",
        vigil.diagnostics()
    );
}

/// A journal line as the writer makes it.
fn warning(ts: &str, message: &str) -> String {
    format!(
        "{}\n",
        serde_json::json!({ "ts": ts, "kind": "warning", "message": message })
    )
}

/// Every `message` of the warnings `vigil journal --json` printed.
fn messages(stdout: &[u8]) -> Vec<String> {
    text(stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["message"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_damaged_journal_is_read_around_its_damage() {
    let setup = Setup::new("damaged-journal");
    setup.service("web", &command(&["sleep", "1000"]));
    std::fs::create_dir_all(&setup.state).expect("state dir");
    let mut data = Vec::new();
    data.extend(warning("2026-12-06T22:00:00.000Z", "first").bytes());
    // A bit flipped on disk: one byte that is not UTF-8.
    data.extend(br#"{"ts":"2026-12-06T22:00:01.000Z","kind":"warning","message":"fl"#);
    data.push(0xff);
    data.extend(b"pped\"}\n");
    // Wrong types, an unknown kind, not JSON, an empty object, blank.
    data.extend(br#"{"ts":7,"kind":"spawned","pid":"seven"}"#);
    data.push(b'\n');
    data.extend(br#"{"ts":"2026-12-06T22:00:02.000Z","kind":"teleported"}"#);
    data.push(b'\n');
    data.extend(b"this is not json\n{}\n\n");
    // A huge line (2 MiB of garbage), then a good one after it.
    data.extend(std::iter::repeat_n(b'{', 2 << 20));
    data.push(b'\n');
    data.extend(warning("2026-12-06T22:00:03.000Z", "after the damage").bytes());
    // A torn last line, as a crash mid-write leaves it.
    data.extend(br#"{"ts":"2026-12-06T22:00:04.000Z","kind":"warn"#);
    std::fs::write(setup.state.join("journal.jsonl"), &data).expect("journal");

    // No vigil running: the files are read directly.
    let out = cli(&setup.state, &["journal", "--json", "-n", "100"]);
    expect_code(&out, 0, "vigil journal on a damaged journal");
    assert_eq!(
        messages(&out.stdout),
        ["first", "fl\u{fffd}pped", "after the damage"],
        "{}",
        text(&out.stderr)
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("skipped 5 lines"),
        "says what it skipped: {stderr}"
    );

    // A vigil on that state directory repairs the torn tail, and its
    // control socket serves the old lines around the damage.
    let vigil = Vigil::start(&setup);
    wait_socket(&vigil);
    // The suite's own journal reader wants UTF-8 throughout: ask vigil.
    let out = vigil.wait_for("web spawned, through the socket", || {
        let out = cli(&setup.state, &["journal", "--json", "-n", "1000"]);
        text(&out.stdout).contains("\"spawned\"").then_some(out)
    });
    expect_code(&out, 0, "vigil journal through the socket");
    let got = messages(&out.stdout);
    for want in ["first", "fl\u{fffd}pped", "after the damage"] {
        assert!(
            got.iter().any(|m| m == want),
            "`{want}` missing from {got:?}\n{}",
            vigil.diagnostics()
        );
    }
    assert!(
        got.iter()
            .any(|m| m.contains("truncated a torn or corrupt last line")),
        "{got:?}"
    );
    let out = cli(&setup.state, &["status", "--json"]);
    expect_code(&out, 0, "vigil status");
}
