//! The engine and sandboxes of the in-process check tests.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use vigil::wasm::{
    CheckReport, CheckSource, Checker, Engine, EngineOptions, Grants, Phase, Sandbox, Target,
};

/// One engine per test binary, caching compiled components in the target
/// dir so each component compiles once per run.
pub fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("vigil-e2e-cache");
            Engine::new(EngineOptions {
                cache_dir: Some(cache),
                max_instances: 64,
                max_memory: 256 << 20,
            })
            .expect("engine")
        })
        .clone()
}

pub async fn load(source: &str) -> Checker {
    let source: CheckSource = source.parse().expect("infallible");
    engine()
        .load_checker(&source)
        .await
        .unwrap_or_else(|err| panic!("load {source}: {err}"))
}

pub fn sandbox(hosts: &[String], paths: &[PathBuf], timeout: Duration) -> Sandbox {
    let grants = Grants::parse(hosts, paths).expect("valid grants");
    Sandbox::new(grants, timeout, 64 << 20)
}

pub fn target(config: &[(&str, &str)], pid: Option<u32>) -> Target {
    let config = config
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Target::one_shot(Phase::Liveness, pid, config)
}

/// Runs a check, failing the test (rather than hanging) if it never ends.
pub async fn run(
    source: &str,
    config: &[(&str, &str)],
    pid: Option<u32>,
    sandbox: &Sandbox,
) -> CheckReport {
    let checker = load(source).await;
    tokio::time::timeout(
        Duration::from_secs(60),
        checker.check(&target(config, pid), sandbox),
    )
    .await
    .expect("a check must always return")
}
