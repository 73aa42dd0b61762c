//! docs/contract-versions.md: components built against an older patch of
//! the contract keep loading. `contract_v010_check` and
//! `contract_v010_loader` are built from the frozen `wit-0.1.0/` package
//! with their own bindings (no SDK), so every import and export they have
//! names `@0.1.0`, while this host implements the newest patch.

use vigil::wasm::{Action, CheckSource, Event, Exit, ExitStatus, History, SpawnContext, Verdict};

use crate::servers::vigil_check;
use crate::support::*;

fn inspect_json(path: &str) -> serde_json::Value {
    let out = vigil_command()
        .args(["inspect", path, "--json"])
        .output()
        .expect("run vigil inspect");
    expect_code(&out, 0, "vigil inspect --json");
    serde_json::from_slice(&out.stdout).expect("inspect prints JSON")
}

fn vigil_health_imports(report: &serde_json::Value) -> Vec<String> {
    report["imports"]
        .as_array()
        .expect("imports")
        .iter()
        .filter_map(|i| i.as_str())
        .filter(|i| i.starts_with("vigil:health/"))
        .map(str::to_owned)
        .collect()
}

/// The components really are 0.1.0 ones (else the tests below prove
/// nothing), and `vigil inspect` says so, and that they load.
#[test]
fn inspect_shows_the_contract_version_a_component_was_built_against() {
    let check = inspect_json(programs::CONTRACT_V010_CHECK);
    assert_eq!(check["world"], "vigil:health/checker");
    assert_eq!(check["contract_version"], "0.1.0", "{check:#}");
    let imports = vigil_health_imports(&check);
    assert!(
        imports.contains(&"vigil:health/process@0.1.0".to_owned())
            && imports.contains(&"vigil:health/log@0.1.0".to_owned()),
        "{imports:?}"
    );
    assert!(imports.iter().all(|i| i.ends_with("@0.1.0")), "{imports:?}");

    let loader = inspect_json(programs::CONTRACT_V010_LOADER);
    assert_eq!(loader["world"], "vigil:health/loader");
    assert_eq!(loader["contract_version"], "0.1.0", "{loader:#}");
    let imports = vigil_health_imports(&loader);
    assert!(
        imports.contains(&"vigil:health/policy@0.1.0".to_owned()),
        "the loader's policy interface: {imports:?}"
    );
    assert!(imports.iter().all(|i| i.ends_with("@0.1.0")), "{imports:?}");

    // A component built with the SDK names the newest version.
    let current = inspect_json(programs::OK);
    assert_eq!(current["contract_version"], vigil::wasm::WIT_VERSION);
    assert_ne!(vigil::wasm::WIT_VERSION, "0.1.0");

    let human = vigil_command()
        .args(["inspect", programs::CONTRACT_V010_CHECK])
        .output()
        .expect("run vigil inspect");
    expect_code(&human, 0, "vigil inspect");
    let text = text(&human.stdout);
    assert!(
        text.contains(&format!(
            "contract      vigil:health@0.1.0 (this vigil implements {}; loads)",
            vigil::wasm::WIT_VERSION
        )),
        "{text}"
    );
}

/// A 0.1.0 check links to the current host, calls 0.1.0 capabilities
/// (`process`, `log`) and gets its verdicts through, in-process and through
/// `vigil check`.
#[tokio::test(flavor = "multi_thread")]
async fn a_0_1_0_check_loads_and_runs() {
    let sandbox = sandbox(&[], &[], std::time::Duration::from_secs(10));
    let pid = std::process::id();
    let report = run(programs::CONTRACT_V010_CHECK, &[], Some(pid), &sandbox).await;
    assert!(matches!(report.verdict, Verdict::Ok), "{report:?}");
    assert!(
        report
            .logs
            .iter()
            .any(|l| l.contains(&format!("0.1.0 check for vigil-check: target pid {pid}"))),
        "{report:?}"
    );
    let report = run(
        programs::CONTRACT_V010_CHECK,
        &[("answer", "retry")],
        Some(pid),
        &sandbox,
    )
    .await;
    assert!(matches!(report.verdict, Verdict::Retry(_)), "{report:?}");

    vigil_check(programs::CONTRACT_V010_CHECK, &[]).expect(0, "");
    vigil_check(programs::CONTRACT_V010_CHECK, &["--config", "answer=retry"])
        .expect(75, "0.1.0 says retry");
    vigil_check(programs::CONTRACT_V010_CHECK, &["--config", "answer=no"])
        .expect(1, "0.1.0 says no");
}

/// A 0.1.0 loader links to the current host (its `policy@0.1.0` types
/// included) and both of its exports answer.
#[tokio::test(flavor = "multi_thread")]
async fn a_0_1_0_loader_loads_and_runs() {
    let source = CheckSource::File(programs::CONTRACT_V010_LOADER.into());
    let loader = engine()
        .load_loader(&source)
        .await
        .expect("a 0.1.0 loader loads");
    let ctx = SpawnContext {
        service: "old".into(),
        restarts: 0,
        config: vec![("argv".into(), "sleep 5".into())],
    };
    let command = loader.spawn(&ctx).await.expect("spawn");
    assert_eq!(command.argv, ["sleep", "5"]);
    let history = History {
        service: "old".into(),
        restarts: 1,
        uptime_ms: 5,
        recent_exits: vec![],
        config: vec![],
    };
    let exited = Event::Exited(Exit {
        status: ExitStatus::Code(3).into(),
        uptime_ms: 5,
    });
    let action = loader.decide(&exited, &history).await.expect("decide");
    assert!(matches!(action, Action::Restart(7)), "{action:?}");
}

/// Under the real supervisor: a service whose loader and readiness check
/// are both 0.1.0 components is spawned by the loader's command and
/// becomes ready by the check's verdict.
#[test]
fn a_service_of_0_1_0_components_runs_under_the_current_supervisor() {
    let setup = Setup::new("contract-v010");
    let dir = setup.service(
        "old",
        "[loader.config]\nargv = \"sleep 1000\"\n\n\
         [checks.readiness]\ncheck = \"check.wasm\"\nperiod = \"100ms\"\n",
    );
    std::fs::copy(programs::CONTRACT_V010_LOADER, dir.join("loader.wasm")).expect("copy loader");
    std::fs::copy(programs::CONTRACT_V010_CHECK, dir.join("check.wasm")).expect("copy check");
    let vigil = setup.run();
    let (at, pid) = vigil.wait_spawned(0, "old");
    assert!(cmdline(pid).starts_with("sleep"), "{}", cmdline(pid));
    vigil.wait_kind(at, "old", "ready");
}
