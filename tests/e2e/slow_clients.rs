//! Slow and greedy clients against a real `vigil run` (RELIABILITY.md
//! "Under load"): slowloris requests and idle connections are closed
//! after the header timeout on every listener, a full `--http` does not
//! touch the control socket, and long-lived streams are not slowloris.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::support::{
    SOON, Setup, Vigil, cli, closed_port, command, expect_code, socket, wait_socket,
};

/// `HEADER_TIMEOUT` in host/src/control/listen.rs.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// `HTTP_MAX_CONNECTIONS` in host/src/control/listen.rs.
const HTTP_MAX_CONNECTIONS: usize = 256;

/// A stream both kinds of listener give.
trait Conn: Read + Write + Send + 'static {
    fn set_read_timeout_to(&self, timeout: Duration);
}

impl Conn for UnixStream {
    fn set_read_timeout_to(&self, timeout: Duration) {
        self.set_read_timeout(Some(timeout)).expect("timeout");
    }
}

impl Conn for TcpStream {
    fn set_read_timeout_to(&self, timeout: Duration) {
        self.set_read_timeout(Some(timeout)).expect("timeout");
    }
}

fn would_block(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Whether the server has closed `conn`: end of stream or a reset, after
/// anything it still had to say. Waits up to `wait` for it.
fn closed_within(conn: &mut impl Conn, wait: Duration) -> bool {
    conn.set_read_timeout_to(wait);
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // an answer (a 408, say) before the close
            Err(e) if would_block(&e) => return false,
            Err(_) => return true,
        }
    }
}

/// Send a request's headers one byte a second, never finishing them, until
/// the server closes the connection: how long it took, or `None` when it
/// was still open after `limit`.
fn slowloris(mut conn: impl Conn, limit: Duration) -> Option<Duration> {
    let opened = Instant::now();
    let mut bytes = b"GET /v1/status HTTP/1.1\r\nHost: vigil\r\nX-Slow: "
        .iter()
        .copied()
        .chain(std::iter::repeat(b'a'));
    while opened.elapsed() < limit {
        let byte = bytes.next().unwrap_or(b'a');
        if conn.write_all(&[byte]).is_err() || closed_within(&mut conn, Duration::from_secs(1)) {
            return Some(opened.elapsed());
        }
    }
    None
}

fn unix(vigil: &Vigil) -> UnixStream {
    UnixStream::connect(socket(&vigil.state)).expect("connect to the control socket")
}

fn tcp(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).expect("connect")
}

/// Read until the end of a response head; `None` if nothing came within
/// `wait` (or the connection closed first).
fn response_head(conn: &mut impl Conn, wait: Duration) -> Option<String> {
    conn.set_read_timeout_to(wait);
    let deadline = Instant::now() + wait;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match conn.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if raw.windows(4).any(|w| w == b"\r\n\r\n") {
                    return Some(String::from_utf8_lossy(&raw).into_owned());
                }
            }
            Err(e) if would_block(&e) => return None,
            Err(e) => panic!("reading a response: {e}"),
        }
    }
    None
}

/// A complete request on a fresh connection answers 200.
fn answers(mut conn: impl Conn, path: &str, what: &str) {
    conn.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: vigil\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .expect("request");
    let head = response_head(&mut conn, SOON).unwrap_or_else(|| panic!("{what}: no answer"));
    assert!(head.starts_with("HTTP/1.1 200"), "{what}: {head}");
}

/// Vigil with `web` ready and `listener` on a free port; the setup lives
/// as long as the test (its directories go with it).
fn start(name: &str, listener: &str) -> (Setup, Vigil, u16) {
    let setup = Setup::new(name);
    setup.service("web", &command(&["sleep", "1000"]));
    let port = closed_port();
    let addr = format!("127.0.0.1:{port}");
    let vigil = Vigil::start_with(&setup, &[listener, &addr]);
    wait_socket(&vigil);
    vigil.wait_kind(0, "web", "ready");
    (setup, vigil, port)
}

#[test]
fn slow_and_idle_connections_are_closed_after_the_header_timeout() {
    let (_setup, vigil, port) = start("slow-clients", "--http");
    // Generous: the bound plus a loaded machine's delays.
    let limit = HEADER_TIMEOUT + SOON;
    let slow_control = std::thread::spawn({
        let conn = unix(&vigil);
        move || slowloris(conn, limit)
    });
    let slow_http = std::thread::spawn({
        let conn = tcp(port);
        move || slowloris(conn, limit)
    });
    // A kept-alive connection that stays idle after its answer.
    let mut idle = tcp(port);
    idle.write_all(b"GET /livez HTTP/1.1\r\nHost: vigil\r\n\r\n")
        .expect("request");
    let head = response_head(&mut idle, SOON).expect("an answer on the kept-alive connection");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let idle_since = Instant::now();

    // Meanwhile others are answered, on fresh connections.
    answers(unix(&vigil), "/v1/status", "the control socket");
    answers(tcp(port), "/livez", "--http");
    expect_code(&cli(&vigil.state, &["status"]), 0, "vigil status");

    for (listener, slow) in [("control socket", slow_control), ("--http", slow_http)] {
        let held = slow.join().expect("slowloris thread");
        let held = held.unwrap_or_else(|| {
            panic!(
                "a slowloris client of the {listener} still connected after {limit:?}\n{}",
                vigil.diagnostics()
            )
        });
        // Not before its time: the headers had HEADER_TIMEOUT to arrive
        // (counted from the accept, a little before the client's clock
        // starts, so only half is asserted).
        assert!(
            held >= HEADER_TIMEOUT / 2,
            "{listener}: closed after {held:?}"
        );
    }
    let rest = limit.saturating_sub(idle_since.elapsed());
    assert!(
        closed_within(&mut idle, rest.max(Duration::from_secs(1))),
        "an idle kept-alive --http connection still open after {limit:?}"
    );
    answers(unix(&vigil), "/v1/status", "the control socket, after");
    answers(tcp(port), "/livez", "--http, after");
}

#[test]
fn a_full_http_listener_leaves_the_control_socket_alone() {
    let (_setup, vigil, port) = start("slow-clients-cap", "--http");
    // The cap's worth of status pages, each holding its events stream:
    // long-lived, so no timeout frees them.
    let mut pages = Vec::new();
    for i in 0..HTTP_MAX_CONNECTIONS {
        let mut conn = tcp(port);
        conn.write_all(b"GET /api/events HTTP/1.1\r\nHost: vigil\r\n\r\n")
            .expect("request");
        let head = response_head(&mut conn, SOON)
            .unwrap_or_else(|| panic!("events stream {i}: no answer\n{}", vigil.diagnostics()));
        assert!(
            head.starts_with("HTTP/1.1 200"),
            "events stream {i}: {head}"
        );
        pages.push(conn);
    }
    // One more waits for a free slot (the kernel has queued it)...
    let mut waiting = tcp(port);
    waiting
        .write_all(b"GET /livez HTTP/1.1\r\nHost: vigil\r\nConnection: close\r\n\r\n")
        .expect("request");
    assert_eq!(
        response_head(&mut waiting, Duration::from_secs(3)),
        None,
        "answered past the cap of {HTTP_MAX_CONNECTIONS} connections"
    );
    // ... while the control socket answers as usual.
    expect_code(
        &cli(&vigil.state, &["status"]),
        0,
        "vigil status with --http full",
    );
    answers(
        unix(&vigil),
        "/v1/status",
        "the control socket with --http full",
    );
    vigil.wait_until("the cap's warning", || {
        vigil.diagnostics().contains("the most it serves at once")
    });
    // A page closes: the waiting one is served.
    drop(pages.pop());
    let head = response_head(&mut waiting, SOON).expect("served once a slot freed");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

#[test]
fn a_journal_follower_idle_past_the_header_timeout_still_gets_lines() {
    let (_setup, vigil, _) = start("slow-clients-follow", "--http");
    let mut follow = unix(&vigil);
    follow
        .write_all(b"GET /v1/journal?lines=0&follow=true HTTP/1.1\r\nHost: vigil\r\n\r\n")
        .expect("request");
    let head = response_head(&mut follow, SOON).expect("the follow's answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Idle (nothing recorded, nothing sent either way) past the timeout.
    std::thread::sleep(HEADER_TIMEOUT + Duration::from_secs(3));
    let from = vigil.journal().len();
    expect_code(
        &cli(&vigil.state, &["restart", "web"]),
        0,
        "vigil restart web",
    );
    vigil.wait_spawned(from, "web");
    follow.set_read_timeout_to(Duration::from_secs(1));
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + SOON;
    while !String::from_utf8_lossy(&seen).contains("\"spawned\"") {
        assert!(
            Instant::now() < deadline,
            "the follower got no new line: {}\n{}",
            String::from_utf8_lossy(&seen),
            vigil.diagnostics()
        );
        match follow.read(&mut buf) {
            Ok(0) => panic!(
                "the follow was closed: {}\n{}",
                String::from_utf8_lossy(&seen),
                vigil.diagnostics()
            ),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if would_block(&e) => {}
            Err(e) => panic!("the follow failed: {e}"),
        }
    }
}

#[test]
fn a_grpc_client_without_a_preface_is_closed() {
    let (_setup, vigil, port) = start("slow-clients-grpc", "--grpc");
    let limit = HEADER_TIMEOUT + SOON;
    // Half a preface, then nothing.
    let mut silent = tcp(port);
    silent
        .write_all(b"PRI * HTTP/2.0\r\n")
        .expect("half a preface");
    let opened = Instant::now();
    assert!(
        closed_within(&mut silent, limit),
        "a --grpc client without a preface still connected after {limit:?}\n{}",
        vigil.diagnostics()
    );
    assert!(
        opened.elapsed() >= HEADER_TIMEOUT / 2,
        "closed after {:?}",
        opened.elapsed()
    );
}
