//! README "Checks are sandboxed", host grants: what `http` and `tcp` may
//! reach, through real components, real loopback servers and, for DNS, the
//! real `vigil check` binary.
//!
//! Hostile DNS without the network: a name must resolve to an address the
//! test chooses, and nothing here may touch /etc or send a query off the
//! machine. So the tests that need one run `vigil check` under an
//! `LD_PRELOAD` shim, compiled here with `cc` from [`FAKE_DNS_C`], that
//! answers `getaddrinfo` for the names listed in `VIGIL_FAKE_DNS` and hands
//! every other lookup to glibc. (An in-test DNS server would need the
//! resolver pointed at it, which means /etc/resolv.conf.) Answers can
//! change from one lookup to the next, as a rebinding server's do.
//! Every address used is loopback.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use vigil::wasm::{CheckReport, Verdict};

use crate::support::*;

const LIMIT: Duration = Duration::from_secs(20);

/// An `LD_PRELOAD` library overriding `getaddrinfo`. `VIGIL_FAKE_DNS` is
/// `name=ip,ip;name=ip|ip`: a listed name resolves to its IPs; with `|`,
/// the first lookup gets the first answer, the next the next, and the last
/// answer repeats. Numeric answers come from glibc's own `getaddrinfo`
/// (AI_NUMERICHOST), so `freeaddrinfo` frees them as usual.
const FAKE_DNS_C: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef int (*getaddrinfo_fn)(const char *, const char *,
                              const struct addrinfo *, struct addrinfo **);

static unsigned lookups[64];

static getaddrinfo_fn real_getaddrinfo(void) {
    static getaddrinfo_fn real;
    if (!real) real = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    return real;
}

/* Appends what glibc makes of the numeric `ip` (len bytes) to **tail. */
static int append(const char *ip, size_t len, const char *service,
                  const struct addrinfo *hints, struct addrinfo ***tail) {
    char text[64];
    struct addrinfo numeric = {0}, *list = NULL;
    int rc;
    if (len >= sizeof text) return EAI_FAIL;
    memcpy(text, ip, len);
    text[len] = 0;
    if (hints) {
        numeric.ai_family = hints->ai_family;
        numeric.ai_socktype = hints->ai_socktype;
        numeric.ai_protocol = hints->ai_protocol;
        numeric.ai_flags = hints->ai_flags & ~AI_CANONNAME;
    }
    numeric.ai_flags |= AI_NUMERICHOST;
    rc = real_getaddrinfo()(text, service, &numeric, &list);
    if (rc == EAI_FAMILY || rc == EAI_ADDRFAMILY || rc == EAI_NONAME) return 0;
    if (rc != 0) return rc;
    **tail = list;
    while (list->ai_next) list = list->ai_next;
    *tail = &list->ai_next;
    return 0;
}

int getaddrinfo(const char *node, const char *service,
                const struct addrinfo *hints, struct addrinfo **res) {
    const char *spec = getenv("VIGIL_FAKE_DNS");
    const char *entry;
    unsigned index = 0;
    size_t node_len;
    if (!node || !spec) return real_getaddrinfo()(node, service, hints, res);
    node_len = strlen(node);
    for (entry = spec; *entry; index++) {
        const char *end = strchr(entry, ';');
        const char *eq;
        if (!end) end = entry + strlen(entry);
        eq = memchr(entry, '=', end - entry);
        if (eq && (size_t)(eq - entry) == node_len
            && strncasecmp(entry, node, node_len) == 0) {
            unsigned n = index < 64
                ? __atomic_fetch_add(&lookups[index], 1, __ATOMIC_SEQ_CST) : 0;
            const char *first = eq + 1, *last, *ip;
            struct addrinfo *head = NULL, **tail = &head;
            for (; n > 0; n--) {
                const char *bar = memchr(first, '|', end - first);
                if (!bar) break;
                first = bar + 1;
            }
            last = memchr(first, '|', end - first);
            if (!last) last = end;
            for (ip = first; ip < last;) {
                const char *comma = memchr(ip, ',', last - ip);
                int rc;
                if (!comma) comma = last;
                rc = append(ip, comma - ip, service, hints, &tail);
                if (rc) {
                    if (head) freeaddrinfo(head);
                    return rc;
                }
                ip = comma + 1;
            }
            if (!head) return EAI_NONAME;
            *res = head;
            return 0;
        }
        entry = *end ? end + 1 : end;
    }
    return real_getaddrinfo()(node, service, hints, res);
}
"#;

/// The fake-DNS library, compiled once per test run.
fn fake_dns() -> &'static PathBuf {
    static LIBRARY: OnceLock<PathBuf> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        let dir = scratch("fake-dns");
        let source = dir.join("fake_dns.c");
        let library = dir.join("fake_dns.so");
        std::fs::write(&source, FAKE_DNS_C).expect("write fake_dns.c");
        let out = Command::new("cc")
            .args(["-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o"])
            .arg(&library)
            .arg(&source)
            .arg("-ldl")
            .output()
            .unwrap_or_else(|err| panic!("cc (a C compiler builds the fake-DNS shim): {err}"));
        assert!(
            out.status.success(),
            "cc fake_dns.c: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        library
    })
}

/// `vigil check --json ARGS` with `dns` as its name service for the names
/// it lists. Returns the exit code and the JSON report.
/// `vigil check` of the TCP ping component on `name:port` (through the
/// fake DNS `dns`), granted `tcp://name:port` and `other` (a scheme and
/// an address) on the same port.
fn ping_by_name(dns: &str, name: &str, port: u16, other: &str) -> (i32, serde_json::Value) {
    vigil_check(
        dns,
        &[
            programs::TCP_PING,
            "--config",
            &format!("host={name}"),
            "--config",
            &config("port", &port.to_string()),
            "--config",
            "send=PING",
            "--allow-host",
            &format!("tcp://{name}:{port}"),
            "--allow-host",
            &format!("{other}:{port}"),
        ],
    )
}

fn vigil_check(dns: &str, args: &[&str]) -> (i32, serde_json::Value) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("check")
        .args(args)
        .args(["--json", "--timeout", "20s"])
        .env("LD_PRELOAD", fake_dns())
        .env("VIGIL_FAKE_DNS", dns)
        .env(
            "XDG_CACHE_HOME",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("sandbox-net-cache"),
        )
        .output()
        .expect("run vigil check");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|err| {
        panic!(
            "vigil check {args:?}: no JSON report ({err}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exited normally"), report)
}

fn config(key: &str, value: &str) -> String {
    format!("{key}={value}")
}

/// The report of http_get/tcp_ping says the request was denied.
fn assert_denied_json(code: i32, report: &serde_json::Value, what: &str) {
    let reason = report["reason"].as_str().unwrap_or_default();
    assert!(
        code == 1 && reason.contains("Denied"),
        "{what}: expected denied, got exit {code}: {report}"
    );
}

fn logs(report: &serde_json::Value) -> Vec<String> {
    report["logs"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn assert_denied(report: &CheckReport, what: &str) {
    match &report.verdict {
        Verdict::Error(reason) if reason.contains("Denied") => {}
        other => panic!("{what}: expected denied, got {other:?} {:?}", report.logs),
    }
}

fn assert_reached(report: &CheckReport, what: &str, log: &str) {
    assert!(
        report.verdict == Verdict::Ok && report.logs.iter().any(|l| l.contains(log)),
        "{what}: expected ok with {log:?}, got {:?} {:?}",
        report.verdict,
        report.logs
    );
}

// ---- DNS rebinding (issue 10 item 5) ------------------------------------------

/// A name granted for http on P1 resolving to 127.0.0.1, which is granted
/// only for tcp on P2, must not reach 127.0.0.1:P1. Granting the address
/// for the same scheme and port is what lets it through.
#[test]
fn a_name_reaches_an_address_only_through_a_grant_for_its_scheme_and_port() {
    let server = HttpServer::start();
    let p1 = server.port;
    let p2 = closed_port();
    let dns = "rebind.vigil.test=127.0.0.1";
    let url = config("url", &format!("http://rebind.vigil.test:{p1}/ok"));
    let by_name = format!("http://rebind.vigil.test:{p1}");

    let (code, report) = vigil_check(
        dns,
        &[
            programs::HTTP_GET,
            "--config",
            &url,
            "--allow-host",
            &by_name,
            "--allow-host",
            &format!("tcp://127.0.0.1:{p2}"),
        ],
    );
    assert_denied_json(
        code,
        &report,
        "http to a name on an address granted for tcp",
    );

    let (code, report) = vigil_check(
        dns,
        &[
            programs::HTTP_GET,
            "--config",
            &url,
            "--allow-host",
            &by_name,
            "--allow-host",
            &format!("http://127.0.0.1:{p1}"),
        ],
    );
    assert_eq!(code, 0, "{report}");
    assert_eq!(logs(&report), ["info: status 200"], "{report}");

    // tcp the other way round: a name granted for tcp, an address for http.
    let pong = PongServer::start();
    let (code, report) = ping_by_name(dns, "rebind.vigil.test", pong.port, "http://127.0.0.1");
    assert_denied_json(
        code,
        &report,
        "tcp to a name on an address granted for http",
    );
}

/// Every redirect hop is checked by its resolved addresses, with its own
/// scheme and port; a hop that fails is not followed (the check sees the
/// 302).
#[test]
fn a_redirect_hop_is_checked_by_its_resolved_addresses() {
    let first = HttpServer::start();
    let second = HttpServer::start();
    let hop = format!("http://rebind.vigil.test:{}/ok", second.port);
    let url = config("url", &first.url(&format!("/redirect?to={hop}")));
    let grants = |address_grant: String| {
        vec![
            first.grant(),
            format!("http://rebind.vigil.test:{}", second.port),
            address_grant,
        ]
    };
    let run = |grants: Vec<String>| {
        let mut args = vec![
            programs::HTTP_GET.to_string(),
            "--config".into(),
            url.clone(),
        ];
        for grant in grants {
            args.extend(["--allow-host".to_string(), grant]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        vigil_check("rebind.vigil.test=127.0.0.1", &args)
    };

    let (code, report) = run(grants(format!("tcp://127.0.0.1:{}", second.port)));
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        logs(&report),
        ["info: status 302"],
        "not followed: {report}"
    );

    let (code, report) = run(grants(format!("http://127.0.0.1:{}", second.port)));
    assert_eq!(code, 0, "{report}");
    assert_eq!(logs(&report), ["info: status 200"], "followed: {report}");
}

/// The addresses checked are the addresses used: a name whose second
/// answer differs from its first (127.0.0.2, granted, where nothing
/// listens; then 127.0.0.1, where the server is) is connected to at its
/// first answer, so the request is refused instead of reaching the server.
#[test]
fn connections_go_to_the_addresses_that_were_checked() {
    let server = HttpServer::start();
    let p = server.port;
    let dns = "flip.vigil.test=127.0.0.2|127.0.0.1";
    let (code, report) = vigil_check(
        dns,
        &[
            programs::HTTP_GET,
            "--config",
            &config("url", &format!("http://flip.vigil.test:{p}/ok")),
            "--allow-host",
            &format!("http://flip.vigil.test:{p}"),
            "--allow-host",
            &format!("http://127.0.0.2:{p}"),
        ],
    );
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["reason"], "ErrorCode::Refused", "{report}");

    let pong = PongServer::start();
    let (code, report) = ping_by_name(dns, "flip.vigil.test", pong.port, "tcp://127.0.0.2");
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["reason"], "ErrorCode::Refused", "{report}");
}

// ---- `*` and IP literals (issue 10 item 6) -------------------------------------

/// Spellings of 127.0.0.1 the URL parser turns into 127.0.0.1.
const HTTP_LOOPBACK: &[&str] = &[
    "127.0.0.1",
    "127.0.0.1.",
    "127.1",
    "2130706433",
    "0x7f.1",
    "0177.0.0.1",
];

/// Spellings of 127.0.0.1 getaddrinfo (inet_aton) accepts from a guest.
const TCP_LOOPBACK: &[&str] = &[
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f.1",
    "0177.0.0.1",
    "::ffff:127.0.0.1",
    "[::ffff:127.0.0.1]",
];

#[tokio::test(flavor = "multi_thread")]
async fn a_wildcard_does_not_reach_loopback_over_http() {
    let server = HttpServer::start();
    let p = server.port;
    for grant in [format!("http://*:{p}"), "*".to_string()] {
        let limits = sandbox(std::slice::from_ref(&grant), &[], LIMIT);
        let hosts = HTTP_LOOPBACK.iter().copied().chain([
            "0.0.0.0",
            "[::ffff:127.0.0.1]",
            "[::1]",
            "localhost",
        ]);
        for host in hosts {
            let url = format!("http://{host}:{p}/ok");
            let report = run(programs::HTTP_GET, &[("url", &url)], None, &limits).await;
            assert_denied(&report, &format!("{grant}: {url}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wildcard_does_not_reach_loopback_over_tcp() {
    let pong = PongServer::start();
    let p = pong.port.to_string();
    for grant in [format!("tcp://*:{p}"), "*".to_string()] {
        let limits = sandbox(std::slice::from_ref(&grant), &[], LIMIT);
        let hosts = TCP_LOOPBACK
            .iter()
            .copied()
            .chain(["0.0.0.0", "0", "::", "::1", "localhost"]);
        for host in hosts {
            let config = [("host", host), ("port", p.as_str()), ("send", "PING")];
            let report = run(programs::TCP_PING, &config, None, &limits).await;
            assert_denied(&report, &format!("{grant}: tcp {host}"));
        }
    }
}

/// What `*` may not reach, a grant naming the address (or `localhost`)
/// reaches in every spelling; the unspecified address stays unreached.
#[tokio::test(flavor = "multi_thread")]
async fn a_grant_naming_loopback_reaches_it_in_every_spelling() {
    let server = HttpServer::start();
    let p = server.port;
    for grant in [server.grant(), format!("http://localhost:{p}")] {
        let limits = sandbox(std::slice::from_ref(&grant), &[], LIMIT);
        for host in HTTP_LOOPBACK {
            let url = format!("http://{host}:{p}/ok");
            let report = run(programs::HTTP_GET, &[("url", &url)], None, &limits).await;
            assert_reached(&report, &format!("{grant}: {url}"), "status 200");
        }
        let url = format!("http://0.0.0.0:{p}/ok");
        let report = run(programs::HTTP_GET, &[("url", &url)], None, &limits).await;
        assert_denied(&report, &format!("{grant}: {url}"));
    }
    let limits = sandbox(&[format!("http://localhost:{p}")], &[], LIMIT);
    let url = format!("http://localhost:{p}/ok");
    let report = run(programs::HTTP_GET, &[("url", &url)], None, &limits).await;
    assert_reached(&report, &url, "status 200");

    let pong = PongServer::start();
    let p = pong.port.to_string();
    for grant in [
        format!("tcp://127.0.0.1:{p}"),
        format!("tcp://localhost:{p}"),
    ] {
        let limits = sandbox(std::slice::from_ref(&grant), &[], LIMIT);
        for host in TCP_LOOPBACK.iter().copied().chain(["localhost"]) {
            if host == "localhost" && grant.contains("127.0.0.1") {
                continue;
            }
            let config = [("host", host), ("port", p.as_str()), ("send", "PING")];
            let report = run(programs::TCP_PING, &config, None, &limits).await;
            assert_reached(&report, &format!("{grant}: tcp {host}"), "PONG");
        }
        let config = [("host", "0.0.0.0"), ("port", p.as_str()), ("send", "PING")];
        let report = run(programs::TCP_PING, &config, None, &limits).await;
        assert_denied(&report, &format!("{grant}: tcp 0.0.0.0"));
    }
}

// ---- Credentials and redirects (issue 10 item 8) -------------------------------

/// One request as a [`Recorder`] saw it: path and headers (names in lower
/// case).
#[derive(Debug, Clone)]
struct Recorded {
    path: String,
    headers: BTreeMap<String, String>,
}

/// A loopback HTTP/1.1 server that records every request. `/redirect`
/// answers 302 to the location set with [`Recorder::redirect_to`]; any
/// other path answers 200.
struct Recorder {
    port: u16,
    requests: Arc<Mutex<Vec<Recorded>>>,
    location: Arc<Mutex<String>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let location: Arc<Mutex<String>> = Arc::default();
        let (log, target) = (requests.clone(), location.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split(' ').nth(1).unwrap_or_default().to_string();
                let mut headers = BTreeMap::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
                    }
                }
                let redirect = path == "/redirect";
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Recorded { path, headers });
                let mut stream = &stream;
                let _ = if redirect {
                    let to = target
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone();
                    write!(
                        stream,
                        "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                } else {
                    write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    )
                };
            }
        });
        Recorder {
            port,
            requests,
            location,
        }
    }

    fn redirect_to(&self, location: &str) {
        *self.location.lock().unwrap_or_else(PoisonError::into_inner) = location.to_string();
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

const SECRETS: &[(&str, &str)] = &[
    ("authorization", "Bearer s3cret"),
    ("cookie", "session=s3cret"),
    ("proxy-authorization", "Basic s3cret"),
];

/// builtin:http GET `url` with the credential headers and one ordinary
/// header, under `grants`; answers the report.
async fn get_with_credentials(url: &str, grants: &[String]) -> CheckReport {
    let mut config = vec![("url", url), ("header.X-Trace", "kept")];
    let names: Vec<String> = SECRETS
        .iter()
        .map(|(name, _)| format!("header.{name}"))
        .collect();
    for ((_, value), key) in SECRETS.iter().zip(&names) {
        config.push((key.as_str(), *value));
    }
    run("builtin:http", &config, None, &sandbox(grants, &[], LIMIT)).await
}

fn assert_credentials(request: &Recorded, present: bool) {
    for (name, value) in SECRETS {
        let seen = request.headers.get(*name).map(String::as_str);
        let want = present.then_some(*value);
        assert_eq!(seen, want, "{name} on {request:?}");
    }
    assert_eq!(
        request.headers.get("x-trace").map(String::as_str),
        Some("kept")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_do_not_follow_a_redirect_to_another_origin() {
    // Another port.
    let a = Recorder::start();
    let b = Recorder::start();
    a.redirect_to(&format!("http://127.0.0.1:{}/landing", b.port));
    let grants = [
        format!("http://127.0.0.1:{}", a.port),
        format!("http://127.0.0.1:{}", b.port),
    ];
    let url = format!("http://127.0.0.1:{}/redirect", a.port);
    let report = get_with_credentials(&url, &grants).await;
    assert_eq!(report.verdict, Verdict::Ok, "{report:?}");
    let (first, second) = (a.requests(), b.requests());
    assert_eq!(first.len(), 1, "{first:?}");
    assert_credentials(&first[0], true);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(second[0].path, "/landing");
    assert_credentials(&second[0], false);

    // Another host on the same port.
    let a = Recorder::start();
    a.redirect_to(&format!("http://localhost:{}/landing", a.port));
    let grants = [
        format!("http://127.0.0.1:{}", a.port),
        format!("http://localhost:{}", a.port),
    ];
    let url = format!("http://127.0.0.1:{}/redirect", a.port);
    let report = get_with_credentials(&url, &grants).await;
    assert_eq!(report.verdict, Verdict::Ok, "{report:?}");
    let seen = a.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_credentials(&seen[0], true);
    assert_eq!(seen[1].path, "/landing");
    assert_credentials(&seen[1], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_follow_a_redirect_within_the_origin() {
    let a = Recorder::start();
    a.redirect_to("/landing");
    let grants = [format!("http://127.0.0.1:{}", a.port)];
    let url = format!("http://127.0.0.1:{}/redirect", a.port);
    let report = get_with_credentials(&url, &grants).await;
    assert_eq!(report.verdict, Verdict::Ok, "{report:?}");
    let seen = a.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_credentials(&seen[0], true);
    assert_eq!(seen[1].path, "/landing");
    assert_credentials(&seen[1], true);
}
