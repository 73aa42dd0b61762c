//! docs/writing-checks.md: the example checks in Python, JavaScript and C
//! (checks/examples, built by `make examples`), each run through the real
//! `vigil check` in its ok, retry and error states against real peers.

use std::collections::HashSet;

use sha2::Digest;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::servers::*;
use crate::support::*;

/// `make examples` builds into `<target-dir>/check-examples`.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target dir")
        .join("check-examples")
}

/// The built example `name.wasm`, compiled into the shared cache once
/// (one at a time: a Python component takes seconds of both cores).
pub fn example(name: &str) -> String {
    static WARMED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let path = examples_dir().join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: build the example checks with `make examples` \
         (scripts/build-examples.sh; `make setup` installs their toolchains)",
        path.display()
    );
    // The component must be built from the source in this tree.
    let source = match name {
        "json_health" => "checks/examples/python/app.py",
        "heartbeat" => "checks/examples/javascript/heartbeat.js",
        "redis_ping" => "checks/examples/c/redis_ping.c",
        other => panic!("no example named {other}"),
    };
    let text = std::fs::read(workspace().join(source)).expect("read the example's source");
    let recorded = std::fs::read_to_string(examples_dir().join(format!("{name}.source-sha256")))
        .unwrap_or_default();
    assert_eq!(
        recorded.trim(),
        hex::encode(sha2::Sha256::digest(&text)),
        "{source} changed since {} was built: run `make examples`",
        path.display()
    );
    let path = path.display().to_string();
    let mut warmed = WARMED.lock().unwrap_or_else(|e| e.into_inner());
    if warmed
        .get_or_insert_with(HashSet::new)
        .insert(name.to_string())
    {
        // Any run compiles and caches it; the verdict does not matter.
        let first = vigil_check(&path, &[]);
        assert_ne!(first.code, 2, "{name} does not load: {first:#?}");
    }
    path
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis()
}

// ---- Python: json_health (componentize-py) ---------------------------------------

#[test]
fn python_json_health_endpoint() {
    let check = example("json_health");
    let server = HttpServer::start();
    let grant = server.grant();
    let run = |path: &str, extra: &[&str]| {
        let url = format!("url={}", server.url(path));
        let mut args = vec!["--allow-host", &grant, "--config", &url];
        for setting in extra {
            args.extend(["--config", setting]);
        }
        vigil_check(&check, &args)
    };

    // ok: {"status": "ok", "checks": {"db": "ok"}}, nested fields included.
    run("/ok", &["components=checks"]).expect(0, "");
    run("/ok", &["status-field=checks.db"]).expect(0, "");
    run("/ok", &["latency-budget=2s", "components=checks"]).expect(0, "");

    // retry: an unhealthy component, a status, a slow answer, not JSON,
    // a missing field, nobody listening.
    run("/json/down", &["components=checks"]).expect(75, "unhealthy checks: db=down");
    run("/json/degraded", &["status-field=checks.db"]).expect(75, "checks.db is 'degraded'");
    run("/status/503", &[]).expect(75, "status 503");
    run("/slow/400", &["latency-budget=100ms"]).expect(75, "over the latency budget of 100 ms");
    run("/big/10", &[]).expect(75, "not JSON");
    run("/ok", &["status-field=health.state"]).expect(75, "no `health.state` field");
    let port = closed_port();
    let closed = format!("url=http://127.0.0.1:{port}/ok");
    let closed_grant = format!("http://127.0.0.1:{port}");
    vigil_check(
        &check,
        &["--allow-host", &closed_grant, "--config", &closed],
    )
    .expect(75, "refused");

    // error: not granted, bad settings (named).
    let url = format!("url={}", server.url("/ok"));
    vigil_check(&check, &["--config", &url]).expect(1, "denied");
    run("/ok", &["latency-budget=fast"]).expect(1, "`latency-budget`");
    vigil_check(&check, &[]).expect(1, "config key `url` is required");
    run("/ok", &["componets=checks"]).expect(1, "unknown config key `componets`");
}

/// Each example carries its config schema (scripts/build-examples.sh adds
/// it), so a Python, JavaScript or C check gets what a Rust one does:
/// `vigil inspect` lists its keys, `vigil validate` names a misspelt key
/// with the right one, and `vigil check` says the same when the check
/// refuses its settings.
#[test]
fn every_example_carries_its_config_schema() {
    let cases = [
        ("json_health", "url", "componets", "components"),
        ("heartbeat", "path", "max-ag", "max-age"),
        ("redis_ping", "port", "timout", "timeout"),
    ];
    for (name, key, typo, meant) in cases {
        let check = example(name);
        let out = vigil_command()
            .args(["inspect", &check])
            .output()
            .expect("vigil inspect");
        expect_code(&out, 0, "vigil inspect");
        let shown = text(&out.stdout);
        let config = shown
            .split_once("\nconfig\n")
            .map(|(_, keys)| keys.to_string())
            .unwrap_or_else(|| panic!("{name}: no config section:\n{shown}"));
        assert!(config.contains(&format!("  {key} ")), "{name}:\n{shown}");
        assert!(config.contains(&format!("  {meant} ")), "{name}:\n{shown}");

        let checks = scratch(&format!("languages-schema-{name}"));
        let file = Path::new(&check).file_name().expect("file name");
        service(
            &checks,
            "svc",
            &check,
            &format!(
                "command = [\"sleep\", \"1\"]\n[checks.readiness]\ncheck = {:?}\n\
                 [checks.readiness.config]\n{typo} = \"1s\"\n",
                file.to_string_lossy()
            ),
        );
        let out = vigil_command()
            .args(["validate"])
            .arg(&checks)
            .output()
            .expect("vigil validate");
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_ne!(out.status.code(), Some(0), "{name}: {said}");
        assert!(
            said.contains(&format!("checks.readiness.config.{typo}: unknown key"))
                && said.contains(&format!("did you mean `checks.readiness.config.{meant}`")),
            "{name}: {said}"
        );

        let out = vigil_command()
            .args(["check", &check, "--config", &format!("{typo}=1s")])
            .env("XDG_CACHE_HOME", cli_cache())
            .output()
            .expect("vigil check");
        let said = text(&out.stderr);
        assert!(
            said.contains(&format!(
                "--config {typo}: unknown key (fix: did you mean `--config {meant}`?)"
            )),
            "{name}: {said}"
        );
    }
}

// ---- JavaScript: heartbeat (componentize-js) ------------------------------------

#[test]
fn javascript_heartbeat_file() {
    let check = example("heartbeat");
    let dir = scratch("heartbeat");
    let file = dir.join("beat.json");
    let allow = dir.display().to_string();
    let path = format!("path={}", file.display());
    let write = |content: String| std::fs::write(&file, content).expect("write heartbeat");
    let run = |extra: &[&str]| {
        let mut args = vec!["--allow-path", &allow, "--config", &path];
        for setting in extra {
            args.extend(["--config", setting]);
        }
        vigil_check(&check, &args)
    };

    // retry: no heartbeat yet.
    run(&[]).expect(75, "no heartbeat yet");

    // ok: fresh and running; a time in seconds or ISO 8601; no time at
    // all uses the file's modification time.
    write(format!(r#"{{"time": {}, "state": "running"}}"#, now_ms()));
    run(&[]).expect(0, "");
    write(format!(
        r#"{{"time": {}, "state": "idle"}}"#,
        now_ms() / 1000
    ));
    run(&[]).expect(0, "");
    write(r#"{"state": "ok"}"#.into());
    run(&["max-age=1m"]).expect(0, "");
    write(r#"{"at": "2020-01-01T00:00:00Z", "phase": "up"}"#.into());
    run(&["time-field=at", "state-field=phase", "ok-states=up"]).expect(75, "last heartbeat");

    // retry: stale, not ok yet, half-written.
    write(format!(
        r#"{{"time": {}, "state": "running"}}"#,
        now_ms() - 90_000
    ));
    run(&["max-age=30s"])
        .expect(75, "last heartbeat 90")
        .expect(75, "ago (max-age 30.0s)");
    write(r#"{"state": "starting"}"#.into());
    run(&[]).expect(75, "reports state \"starting\"");
    write(r#"{"time": 17"#.into());
    run(&[]).expect(75, "not JSON yet");

    // error: the service says it gave up; not granted; bad settings.
    write(r#"{"state": "failed", "message": "disk full"}"#.into());
    run(&[]).expect(1, "reports state \"failed\": disk full");
    vigil_check(&check, &["--config", &path]).expect(1, "denied");
    run(&["max-age=soon"]).expect(1, "`max-age`");
    run(&["max_age=1s"]).expect(1, "unknown config key `max_age`");
}

// ---- C: redis_ping (wit-bindgen + zig + the preview1 adapter) --------------------

#[test]
fn c_redis_ping() {
    let check = example("redis_ping");

    let redis = Redis::start(&[]);
    let grant = redis.grant();
    let port = format!("port={}", redis.port);
    vigil_check(&check, &["--allow-host", &grant, "--config", &port]).expect(0, "");

    // error: not granted; bad settings.
    vigil_check(&check, &["--config", &port]).expect(1, "denied");
    vigil_check(&check, &["--allow-host", &grant, "--config", "port=70000"]).expect(1, "`port`");
    vigil_check(&check, &["--allow-host", &grant, "--config", "db=1"])
        .expect(1, "unknown config key `db`");

    // retry: nobody listening.
    let port_number = redis.port;
    redis.stop();
    let closed = format!("tcp://127.0.0.1:{port_number}");
    vigil_check(&check, &["--allow-host", &closed, "--config", &port]).expect(75, "refused");

    // With a password: none is an error, the wrong one too, the right one ok.
    let redis = Redis::start(&["--requirepass", "s3cret"]);
    let grant = redis.grant();
    let port = format!("port={}", redis.port);
    vigil_check(&check, &["--allow-host", &grant, "--config", &port])
        .expect(1, "requires a password: set `password`");
    vigil_check(
        &check,
        &[
            "--allow-host",
            &grant,
            "--config",
            &port,
            "--config",
            "password=nope",
        ],
    )
    .expect(1, "rejected `password`");
    vigil_check(
        &check,
        &[
            "--allow-host",
            &grant,
            "--config",
            &port,
            "--config",
            "password=s3cret",
        ],
    )
    .expect(0, "");
}

// ---- inside `vigil run` --------------------------------------------------------------

/// Writes a service directory: `service.toml` and a copy of `check`.
fn service(checks: &Path, name: &str, check: &str, manifest: &str) {
    let dir = checks.join(name);
    std::fs::create_dir_all(&dir).expect("service dir");
    let file = Path::new(check).file_name().expect("a file name");
    std::fs::copy(check, dir.join(file)).expect("copy the check");
    std::fs::write(dir.join("service.toml"), manifest).expect("service.toml");
}

/// One `vigil run` with a service per language, each gated by its check:
/// an HTTP server judged by the Python check, a worker's heartbeat judged
/// by the JavaScript check, and a redis-server judged by the C check. Each
/// starts unready (`retry`: refused, or "starting") and becomes ready once
/// its check says `ok`. The components come from the cache that the
/// `vigil check` runs above share.
#[test]
fn each_language_gates_readiness_inside_vigil_run() {
    let python = example("json_health");
    let javascript = example("heartbeat");
    let c = example("redis_ping");
    let redis_server = Redis::binary();
    let root = scratch("languages-run");
    let checks = root.join("checks");
    let state = root.join("state");
    let (http_port, redis_port) = (closed_port(), closed_port());
    let fixture = workspace().join("tests/fixtures/http_server.py");

    // Each service starts listening (or beating) only after a second, so
    // the first results are `retry`.
    service(
        &checks,
        "api",
        &python,
        &format!(
            r#"shell = "sleep 1; exec python3 {fixture} {http_port}"
[checks.readiness]
check = "json_health.wasm"
period = "200ms"
timeout = "2s"
[checks.readiness.config]
url = "http://127.0.0.1:{http_port}/ok"
components = "checks"
latency-budget = "1s"
[grants]
hosts = ["http://127.0.0.1:{http_port}"]
"#,
            fixture = fixture.display()
        ),
    );
    service(
        &checks,
        "worker",
        &javascript,
        r#"shell = """
printf '{"state": "starting"}' > beat.tmp && mv beat.tmp beat.json
sleep 1
while true; do
    printf '{"time": %s, "state": "running"}' "$(date +%s%3N)" > beat.tmp && mv beat.tmp beat.json
    sleep 0.2
done
"""
[checks.readiness]
check = "heartbeat.wasm"
period = "200ms"
timeout = "2s"
[checks.readiness.config]
path = "beat.json"
max-age = "5s"
[grants]
paths = ["."]
"#,
    );
    service(
        &checks,
        "cache",
        &c,
        &format!(
            r#"shell = "sleep 1; exec {redis} --port {redis_port} --bind 127.0.0.1 --save '' --appendonly no"
[checks.readiness]
check = "redis_ping.wasm"
period = "200ms"
timeout = "2s"
[checks.readiness.config]
port = "{redis_port}"
[grants]
hosts = ["tcp://127.0.0.1:{redis_port}"]
"#,
            redis = redis_server.display()
        ),
    );

    let cache = cli_cache();
    let cache = cache.to_str().expect("a UTF-8 cache path");
    let mut vigil = Vigil::start_in_with(&root, &checks, &state, &[], &[("XDG_CACHE_HOME", cache)]);
    let services = ["api", "worker", "cache"];
    // A minute: a component missing from the cache compiles first.
    poll_until(
        "every service is ready",
        std::time::Duration::from_secs(60),
        || {
            let events = vigil.journal();
            services
                .iter()
                .all(|s| events.iter().any(|e| is(e, s, "ready")))
                .then_some(())
        },
        || vigil.diagnostics(),
    );
    let status = vigil.terminate();
    let events = vigil.journal();

    let dump = || format!("{events:#?}");
    let checks_of = |name: &str| -> Vec<&serde_json::Value> {
        events
            .iter()
            .filter(|e| e["service"] == name && e["kind"] == "check")
            .collect()
    };
    for (name, waiting) in [
        ("api", "connection refused"),
        ("worker", "reports state \"starting\""),
        ("cache", "connection refused"),
    ] {
        let results = checks_of(name);
        assert!(
            results.iter().any(|e| e["outcome"] == "retry"
                && e["reason"].as_str().is_some_and(|r| r.contains(waiting))),
            "{name}: its check said retry ({waiting}) before the service was up: {}",
            dump()
        );
        assert!(
            results.iter().any(|e| e["outcome"] == "ok"),
            "{name}: its check said ok: {}",
            dump()
        );
        assert!(
            events
                .iter()
                .any(|e| e["service"] == name && e["kind"] == "ready"),
            "{name} became ready: {}",
            dump()
        );
    }
    assert!(status.success(), "vigil run shut down cleanly: {status}");
}
