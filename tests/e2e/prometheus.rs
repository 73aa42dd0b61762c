//! A real Prometheus server (Debian's `prometheus`, installed by
//! `scripts/setup.sh prometheus`) scrapes `vigil run --http` on loopback,
//! evaluates the shipped alerting rules (examples/deploy/prometheus) and
//! answers through its own query API: the series arrive with the right
//! names and labels, the rules evaluate, the alerts that should fire do, and
//! every query of the Grafana dashboard (examples/deploy/grafana) is valid
//! PromQL that Prometheus runs. Nothing is skipped: a missing Prometheus
//! fails with the setup step that installs it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::support::*;

fn deploy() -> PathBuf {
    workspace().join("examples/deploy")
}

fn rules_file() -> PathBuf {
    deploy().join("prometheus/vigil-rules.yml")
}

/// A program from the `prometheus` package, or a panic naming the setup step.
fn tool(name: &str) -> PathBuf {
    ["/usr/bin", "/usr/local/bin", "/usr/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed: run `scripts/setup.sh prometheus`"))
}

/// A Prometheus server on loopback; killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Scrapes `target` every second and evaluates `rules` every second.
    fn start(dir: &Path, target: &str, rules: &Path) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {rules:?}\n\
                 scrape_configs:\n  - job_name: vigil\n    static_configs:\n      - targets: [{target:?}]\n",
                rules = rules.display().to_string(),
            ),
        )
        .expect("prometheus.yml");
        let port = closed_port();
        let log = dir.join("prometheus.log");
        let child = Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(File::create(dir.join("prometheus.out")).expect("stdout file"))
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .expect("start prometheus");
        let prometheus = Prometheus { child, port, log };
        poll_until(
            "prometheus is ready",
            SOON,
            || {
                prometheus
                    .get("/-/ready", &[])
                    .filter(|b| b.contains("Ready"))
            },
            || prometheus.diagnostics(),
        );
        prometheus
    }

    /// GET a path with URL-encoded parameters (curl, which setup installs).
    fn get(&self, path: &str, params: &[(&str, &str)]) -> Option<String> {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--fail", "--max-time", "10", "--get"]);
        for (k, v) in params {
            cmd.arg("--data-urlencode").arg(format!("{k}={v}"));
        }
        let out = cmd
            .arg(format!("http://127.0.0.1:{}{path}", self.port))
            .output()
            .ok()?;
        out.status.success().then(|| text(&out.stdout))
    }

    /// An API call's `data`; panics on an error answer (bad PromQL).
    fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let body = self
            .get(path, params)
            .unwrap_or_else(|| panic!("GET {path} {params:?} failed\n{}", self.diagnostics()));
        let v: Value = serde_json::from_str(&body).expect("API answers JSON");
        assert_eq!(v["status"], "success", "{path} {params:?}: {v}");
        v["data"].clone()
    }

    /// The instant vector `query` gives now.
    fn query(&self, query: &str) -> Vec<Value> {
        let data = self.api("/api/v1/query", &[("query", query)]);
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// Poll `query` until some series satisfies `pred`; returns it.
    fn wait_series(&self, query: &str, pred: impl Fn(&Value) -> bool, vigil: &Vigil) -> Value {
        let last = std::cell::RefCell::new(Vec::new());
        poll_until(
            &format!("prometheus answers `{query}` as expected"),
            SOON,
            || {
                let result = self.query(query);
                let found = result.iter().find(|s| pred(s)).cloned();
                *last.borrow_mut() = result;
                found
            },
            || {
                format!(
                    "last result {:?}\n{}\n{}",
                    last.borrow(),
                    self.diagnostics(),
                    vigil.diagnostics()
                )
            },
        )
    }

    fn diagnostics(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("--- prometheus log (tail) ---\n{}", tail.join("\n"))
    }
}

/// A sample's value as a number.
fn value(series: &Value) -> f64 {
    series["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

fn label<'a>(series: &'a Value, name: &str) -> &'a str {
    series["metric"][name].as_str().unwrap_or("")
}

/// A service whose readiness is builtin:file on `flag` (100 ms period).
fn file_ready(flag: &Path) -> String {
    let dir = flag.parent().expect("flag dir");
    format!(
        "{}\n[checks.readiness]\ncheck = \"builtin:file\"\nperiod = \"100ms\"\n\
         [checks.readiness.config]\npath = {}\n\n[grants]\npaths = [{}]\n",
        command(&["sleep", "1000"]),
        toml_str(&flag.display().to_string()),
        toml_str(&dir.display().to_string()),
    )
}

#[test]
fn promtool_checks_and_unit_tests_the_shipped_rules() {
    let promtool = tool("promtool");
    for args in [
        vec!["check", "rules", "vigil-rules.yml"],
        vec!["test", "rules", "vigil-rules.test.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(&args)
            .current_dir(deploy().join("prometheus"))
            .output()
            .expect("run promtool");
        expect_code(&out, 0, &format!("promtool {}", args.join(" ")));
    }
}

#[test]
fn prometheus_scrapes_vigil_and_evaluates_the_rules() {
    let setup = Setup::new("prometheus");
    let flags = setup.root.join("flags");
    std::fs::create_dir_all(&flags).expect("flags dir");
    std::fs::write(flags.join("up"), "up").expect("flag");
    // web: ready, its readiness check runs ten times a second.
    setup.service("web", &file_ready(&flags.join("up")));
    // gated: its readiness never holds.
    setup.service("gated", &file_ready(&flags.join("never")));
    // crashy: exits 1 after 0.3 s and comes back after 100 ms, again and again.
    setup.service(
        "crashy",
        &format!(
            "{}backoff = [\"100ms\"]\n",
            command(&["sh", "-c", "sleep 0.3; exit 1"])
        ),
    );
    let vigil_port = closed_port();
    let target = format!("127.0.0.1:{vigil_port}");
    let vigil = Vigil::start_with(&setup, &["--http", &target]);
    vigil.wait_kind(0, "web", "ready");

    let prometheus = Prometheus::start(&setup.root, &target, &rules_file());
    let ours = |s: &Value| label(s, "job") == "vigil" && label(s, "instance") == target;

    // Readiness, one series per service, labelled by service.
    let web = prometheus.wait_series(
        "vigil_service_ready",
        |s| label(s, "service") == "web" && value(s) == 1.0,
        &vigil,
    );
    assert!(ours(&web), "{web}");
    let gated = prometheus.wait_series(
        "vigil_service_ready",
        |s| label(s, "service") == "gated",
        &vigil,
    );
    assert_eq!(value(&gated), 0.0, "{gated}");
    let state = prometheus.wait_series(
        r#"vigil_service_state{service="gated"} == 1"#,
        |_| true,
        &vigil,
    );
    assert_eq!(label(&state, "state"), "running", "{state}");

    // Restarts: the counter of crashy climbs.
    let restarts = prometheus.wait_series(
        r#"vigil_service_restarts_total{service="crashy"}"#,
        |s| value(s) >= 3.0,
        &vigil,
    );
    assert!(ours(&restarts), "{restarts}");
    let web_restarts = prometheus.query(r#"vigil_service_restarts_total{service="web"}"#);
    assert_eq!(web_restarts.len(), 1, "{web_restarts:?}");
    assert_eq!(value(&web_restarts[0]), 0.0);

    // Check durations: a histogram per service and phase, with buckets.
    let count = prometheus.wait_series(
        r#"vigil_check_duration_seconds_count{service="web", phase="readiness"}"#,
        |s| value(s) >= 5.0,
        &vigil,
    );
    assert!(ours(&count), "{count}");
    let buckets = prometheus.query(r#"vigil_check_duration_seconds_bucket{service="web"}"#);
    assert!(
        buckets.len() >= 16 && buckets.iter().any(|b| label(b, "le") == "+Inf"),
        "{buckets:?}"
    );
    let p99 = prometheus.wait_series(
        "histogram_quantile(0.99, sum by (service, phase, le) \
         (rate(vigil_check_duration_seconds_bucket{service=\"web\"}[1m])))",
        |s| value(s).is_finite(),
        &vigil,
    );
    assert_eq!(label(&p99, "phase"), "readiness", "{p99}");
    assert!(value(&p99) > 0.0 && value(&p99) <= 10.0, "{p99}");

    // The shipped rules: loaded, evaluated without error, and the alerts
    // that should fire do: crashy restarts (firing: no `for`), gated is not
    // ready (pending: its `for` is 5 minutes); web is in neither.
    let alerts = poll_until(
        "VigilServiceRestarting fires and VigilServiceNotReady is pending",
        SOON,
        || {
            let alerts = prometheus.api("/api/v1/alerts", &[]);
            let list = alerts["alerts"].as_array().cloned().unwrap_or_default();
            let has = |name: &str, service: &str, state: &str| {
                list.iter().any(|a| {
                    a["labels"]["alertname"] == name
                        && a["labels"]["service"] == service
                        && a["state"] == state
                })
            };
            (has("VigilServiceRestarting", "crashy", "firing")
                && has("VigilServiceNotReady", "gated", "pending"))
            .then_some(list)
        },
        || prometheus.diagnostics(),
    );
    assert!(
        !alerts.iter().any(|a| a["labels"]["service"] == "web"),
        "{alerts:?}"
    );
    let groups = prometheus.api("/api/v1/rules", &[]);
    let rules: Vec<&Value> = groups["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules"))
        .collect();
    assert_eq!(rules.len(), 4, "{groups}");
    for rule in rules {
        assert_eq!(rule["health"], "ok", "{rule}");
        assert!(
            !rule["lastEvaluation"]
                .as_str()
                .unwrap_or("0001")
                .starts_with("0001"),
            "never evaluated: {rule}"
        );
    }

    // Every query of the dashboard is valid PromQL; the ready-count panel
    // counts web.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy().join("grafana/vigil-dashboard.json")).expect("dashboard"),
    )
    .expect("dashboard is JSON");
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().expect("targets") {
            let expr = t["expr"]
                .as_str()
                .expect("expr")
                .replace("$__rate_interval", "1m")
                .replace("$job", ".*")
                .replace("$instance", ".*")
                .replace("$service", ".*");
            let result = prometheus.query(&expr);
            if panel["title"] == "Ready services" {
                assert_eq!(result.len(), 1, "{expr}: {result:?}");
                assert!(value(&result[0]) >= 1.0, "{expr}: {result:?}");
            }
            queries += 1;
        }
    }
    assert!(queries >= 10, "{queries} queries in the dashboard");
}
