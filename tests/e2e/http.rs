//! README "HTTP endpoints": `vigil run --http ADDR` serving `/livez`,
//! `/readyz` and `/metrics`, checked over real TCP, with `/metrics` read
//! by Prometheus' own Python parsers.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::*;

/// `GET path` on `port`: (status, body).
fn get(port: u16, path: &str, accept: Option<&str>) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(SOON)).ok()?;
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{accept}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// Poll `GET path` until its status is `want`; returns the body.
fn wait_for_status(vigil: &Vigil, port: u16, path: &str, want: u16) -> String {
    let last = std::cell::RefCell::new(None);
    poll_until(
        &format!("GET {path} answers {want}"),
        SOON,
        || {
            let (status, body) = get(port, path, None)?;
            let found = (status == want).then(|| body.clone());
            *last.borrow_mut() = Some((status, body));
            found
        },
        || format!("last {:?}\n{}", last.borrow(), vigil.diagnostics()),
    )
}

/// A service that is ready while `flag` exists (readiness: builtin:file).
fn flag_manifest(flag: &std::path::Path) -> String {
    let dir = flag.parent().expect("flag dir");
    format!(
        r#"{command}
[checks.readiness]
check = "builtin:file"
period = "100ms"
[checks.readiness.config]
path = {path}

[grants]
paths = [{dir}]
"#,
        command = command(&["sleep", "1000"]),
        path = toml_str(&flag.display().to_string()),
        dir = toml_str(&dir.display().to_string()),
    )
}

/// Where a test's readiness flag file goes (its directory is granted to
/// the check by [`flag_manifest`]).
fn ready_flag(setup: &Setup) -> PathBuf {
    let flag_dir = setup.root.join("flags");
    std::fs::create_dir_all(&flag_dir).expect("flag dir");
    flag_dir.join("ready")
}

#[test]
fn livez_and_readyz_follow_the_services() {
    let setup = Setup::new("http-probes");
    let flag = ready_flag(&setup);
    setup.service("gated", &flag_manifest(&flag));
    setup.service("plain", &command(&["sleep", "1000"]));
    let port = crate::support::closed_port();
    let addr = format!("127.0.0.1:{port}");
    let mut vigil = Vigil::start_with(&setup, &["--http", &addr]);

    assert_eq!(wait_for_status(&vigil, port, "/livez", 200), "ok\n");
    // `plain` becomes ready; `gated` runs but its readiness check retries.
    vigil.wait_kind(0, "plain", "ready");
    vigil.wait_event(
        |e| e["service"] == "gated" && e["kind"] == "check" && e["outcome"] == "retry",
        SOON,
    );
    let (status, body) = get(port, "/readyz", None).expect("readyz");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body, "readyz check failed\n");
    let (status, body) = get(port, "/readyz?verbose", None).expect("readyz verbose");
    assert_eq!(status, 503);
    assert_eq!(
        body, "[-]gated failed: running\n[+]plain ok\nreadyz check failed\n",
        "kubelet-style list"
    );

    std::fs::write(&flag, "up").expect("write the flag");
    assert_eq!(wait_for_status(&vigil, port, "/readyz", 200), "ok\n");
    let (status, body) = get(port, "/readyz?verbose", None).expect("readyz verbose");
    assert_eq!(status, 200);
    assert_eq!(body, "[+]gated ok\n[+]plain ok\nreadyz check passed\n");

    // Unready again when the check fails; read-only: nothing else is served.
    std::fs::remove_file(&flag).expect("remove the flag");
    wait_for_status(&vigil, port, "/readyz", 503);
    let (status, _) = get(port, "/v1/status", None).expect("an unknown path");
    assert_eq!(status, 404);

    // Graceful shutdown: vigil exits 0 and the port closes with it.
    let status = vigil.terminate();
    assert!(status.success(), "{status:?}");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// The tools venv's Python, where scripts/setup.sh installs prometheus_client.
fn tools_python() -> PathBuf {
    let tools = std::env::var_os("VIGIL_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/vigil/tools")
        });
    tools.join("python/bin/python")
}

/// Parse exposition text with prometheus_client: the classic text parser
/// (`openmetrics: false`) or the strict OpenMetrics one. Returns
/// `{family: {"type": ..., "samples": [{"name", "labels", "value"}]}}`;
/// panics with Python's error on malformed text.
fn parse(text: &str, openmetrics: bool) -> BTreeMap<String, Value> {
    const SCRIPT: &str = r#"
import json, sys
if sys.argv[1] == "openmetrics":
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
else:
    from prometheus_client.parser import text_string_to_metric_families
families = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    if f.name in families:
        raise SystemExit(f"family {f.name} appears twice")
    families[f.name] = {"type": f.type, "samples": [
        {"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]}
print(json.dumps(families))
"#;
    let python = tools_python();
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(if openmetrics {
            "openmetrics"
        } else {
            "prometheus"
        })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run scripts/setup.sh to install prometheus_client)",
                python.display()
            )
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed the parser");
    let out = child.wait_with_output().expect("parser");
    assert!(
        out.status.success(),
        "prometheus_client rejected /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parser JSON")
}

fn samples<'a>(families: &'a BTreeMap<String, Value>, family: &str, kind: &str) -> &'a [Value] {
    let f = families
        .get(family)
        .unwrap_or_else(|| panic!("no family {family} in {:?}", families.keys()));
    assert_eq!(f["type"], kind, "type of {family}");
    let s = f["samples"].as_array().expect("samples");
    assert!(!s.is_empty(), "{family} has no samples");
    s
}

fn sample(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .and_then(|s| s["value"].as_f64())
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in {samples:?}"))
}

/// Every family vigil exposes, as a parser sees it.
/// (Both parsers name a counter family without its `_total` suffix, and
/// leave it without samples when the text declares it wrongly.)
fn check_families(families: &BTreeMap<String, Value>) {
    let state = samples(families, "vigil_service_state", "gauge");
    assert_eq!(
        sample(
            state,
            "vigil_service_state",
            &[("service", "web"), ("state", "ready")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            state,
            "vigil_service_state",
            &[("service", "web"), ("state", "failed")]
        ),
        0.0
    );
    assert_eq!(state.len(), 9, "one sample per state: {state:?}");
    let ready = samples(families, "vigil_service_ready", "gauge");
    assert_eq!(
        sample(ready, "vigil_service_ready", &[("service", "web")]),
        1.0
    );

    let restarts = samples(families, "vigil_service_restarts", "counter");
    assert_eq!(
        sample(
            restarts,
            "vigil_service_restarts_total",
            &[("service", "web")]
        ),
        0.0
    );

    let durations = samples(families, "vigil_check_duration_seconds", "histogram");
    let labels = [("service", "web"), ("phase", "readiness")];
    let count = sample(durations, "vigil_check_duration_seconds_count", &labels);
    assert!(count >= 3.0, "{durations:?}");
    assert!(sample(durations, "vigil_check_duration_seconds_sum", &labels) > 0.0);
    let inf = [("service", "web"), ("phase", "readiness"), ("le", "+Inf")];
    assert_eq!(
        sample(durations, "vigil_check_duration_seconds_bucket", &inf),
        count
    );

    let outcomes = samples(families, "vigil_check_outcomes", "counter");
    let ok = [
        ("service", "web"),
        ("phase", "readiness"),
        ("outcome", "ok"),
    ];
    assert!(sample(outcomes, "vigil_check_outcomes_total", &ok) >= 3.0);

    let memory = samples(families, "vigil_wasm_memory_peak_bytes", "gauge");
    assert!(
        sample(memory, "vigil_wasm_memory_peak_bytes", &[]) >= 65_536.0,
        "a check ran, so some linear memory was used"
    );
    samples(families, "vigil_wasm_calls_in_flight", "gauge");
    let slots = samples(families, "vigil_wasm_call_slots", "gauge");
    assert!(sample(slots, "vigil_wasm_call_slots", &[]) >= 1.0);
    // web's readiness check is a builtin: its calls share one instance.
    let created = samples(families, "vigil_wasm_instances_created", "counter");
    let created = sample(created, "vigil_wasm_instances_created_total", &[]);
    assert!(
        created >= 1.0 && created < count,
        "{created} instances for {count} checks"
    );
    let start = samples(families, "process_start_time_seconds", "gauge");
    assert!(sample(start, "process_start_time_seconds", &[]) > 1.6e9);
    let started = samples(families, "vigil_service_start_time_seconds", "gauge");
    assert!(
        sample(
            started,
            "vigil_service_start_time_seconds",
            &[("service", "web")]
        ) > 1.6e9
    );
}

#[test]
fn metrics_parse_with_prometheus_parsers() {
    let setup = Setup::new("http-metrics");
    let flag = ready_flag(&setup);
    std::fs::write(&flag, "up").expect("flag");
    setup.service("web", &flag_manifest(&flag));
    let port = crate::support::closed_port();
    let addr = format!("127.0.0.1:{port}");
    let vigil = Vigil::start_with(&setup, &["--http", &addr]);
    vigil.wait_kind(0, "web", "ready");
    // A few readiness checks (100 ms period) have run.
    let classic = vigil.wait_for("three readiness checks counted in /metrics", || {
        let (status, body) = get(port, "/metrics", None).expect("GET /metrics");
        assert_eq!(status, 200, "{body}");
        let ok = "vigil_check_outcomes_total{service=\"web\",phase=\"readiness\",outcome=\"ok\"} ";
        let runs = body
            .lines()
            .find_map(|l| l.strip_prefix(ok))
            .and_then(|v| v.parse::<f64>().ok());
        runs.is_some_and(|n| n >= 3.0).then_some(body)
    });
    assert!(!classic.contains("# EOF"), "classic text by default");
    check_families(&parse(&classic, false));

    // What Prometheus asks for: OpenMetrics, through the strict parser.
    let (status, openmetrics) = get(
        port,
        "/metrics",
        Some("application/openmetrics-text; version=1.0.0"),
    )
    .expect("GET");
    assert_eq!(status, 200);
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
    check_families(&parse(&openmetrics, true));
}
