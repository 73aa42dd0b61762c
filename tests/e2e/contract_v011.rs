//! docs/contract-versions.md, for the second frozen patch: components
//! built against `wit-0.1.1/` (with their own bindings, no SDK) name
//! `@0.1.1` in every import and export, and keep loading and running on
//! this host, which implements 0.1.2 (as the 0.1.0 ones of contract.rs).

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

/// The components really are 0.1.1 ones, one of them importing what 0.1.1
/// added (`output`), and this host says it loads them.
#[test]
fn the_0_1_1_components_are_0_1_1_ones_and_load() {
    let check = inspect_json(programs::CONTRACT_V011_CHECK);
    assert_eq!(check["contract_version"], "0.1.1", "{check:#}");
    let imports = vigil_health_imports(&check);
    assert!(
        imports.contains(&"vigil:health/output@0.1.1".to_owned()),
        "{imports:?}"
    );
    assert!(imports.iter().all(|i| i.ends_with("@0.1.1")), "{imports:?}");
    let loader = inspect_json(programs::CONTRACT_V011_LOADER);
    assert_eq!(loader["contract_version"], "0.1.1", "{loader:#}");
    let imports = vigil_health_imports(&loader);
    assert!(imports.iter().all(|i| i.ends_with("@0.1.1")), "{imports:?}");
    assert_ne!(vigil::wasm::WIT_VERSION, "0.1.1");
    let human = vigil_command()
        .args(["inspect", programs::CONTRACT_V011_CHECK])
        .output()
        .expect("run vigil inspect");
    expect_code(&human, 0, "vigil inspect");
    assert!(
        text(&human.stdout).contains(&format!(
            "contract      vigil:health@0.1.1 (this vigil implements {}; loads)",
            vigil::wasm::WIT_VERSION
        )),
        "{}",
        text(&human.stdout)
    );
}

/// A 0.1.1 check links, calls 0.1.0 and 0.1.1 capabilities (`output` is
/// denied without its grant: an answer, not a trap) and gets its verdicts
/// through, in process and through `vigil check`.
#[tokio::test(flavor = "multi_thread")]
async fn a_0_1_1_check_loads_and_runs() {
    let sandbox = sandbox(&[], &[], std::time::Duration::from_secs(10));
    let pid = std::process::id();
    let report = run(programs::CONTRACT_V011_CHECK, &[], Some(pid), &sandbox).await;
    assert!(matches!(report.verdict, Verdict::Ok), "{report:?}");
    assert!(
        report.logs.iter().any(|l| l.contains(&format!(
            "0.1.1 check for vigil-check: target pid {pid}, output ErrorCode::Denied"
        ))),
        "{report:?}"
    );
    vigil_check(programs::CONTRACT_V011_CHECK, &["--config", "answer=retry"])
        .expect(75, "0.1.1 says retry");
}

/// A 0.1.1 loader links (its `policy@0.1.1` types included) and both of
/// its exports answer; it has no `replace-policy`, so it is never asked
/// about a replace.
#[tokio::test(flavor = "multi_thread")]
async fn a_0_1_1_loader_loads_and_runs() {
    let source = CheckSource::File(programs::CONTRACT_V011_LOADER.into());
    let loader = engine()
        .load_loader(&source)
        .await
        .expect("a 0.1.1 loader loads");
    assert!(!loader.takes_part_in_replaces());
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

/// Under the real supervisor: a 0.1.1 loader and a 0.1.1 readiness check.
#[test]
fn a_service_of_0_1_1_components_runs_under_the_current_supervisor() {
    let setup = Setup::new("contract-v011");
    let dir = setup.service(
        "old",
        "[loader.config]\nargv = \"sleep 1000\"\n\n\
         [checks.readiness]\ncheck = \"check.wasm\"\nperiod = \"100ms\"\n",
    );
    std::fs::copy(programs::CONTRACT_V011_LOADER, dir.join("loader.wasm")).expect("copy loader");
    std::fs::copy(programs::CONTRACT_V011_CHECK, dir.join("check.wasm")).expect("copy check");
    let vigil = setup.run();
    let (at, pid) = vigil.wait_spawned(0, "old");
    assert!(cmdline(pid).starts_with("sleep"), "{}", cmdline(pid));
    vigil.wait_kind(at, "old", "ready");
}
