//! README "Loaders": the engine calls both exports of a real loader.

use vigil::wasm::{Action, CheckSource, Event, Exit, ExitStatus, History, SpawnContext};

use crate::support::*;

fn history(restarts: u32) -> History {
    History {
        service: "web".into(),
        restarts,
        uptime_ms: 1500,
        recent_exits: vec![],
        config: vec![("argv".into(), "sleep 5".into())],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn loader_spawn_and_decide() {
    let source = CheckSource::File(programs::LOADER_POLICY.into());
    let loader = engine().load_loader(&source).await.expect("load loader");

    let ctx = SpawnContext {
        service: "web".into(),
        restarts: 0,
        config: vec![("argv".into(), "sleep 5".into())],
    };
    let command = loader.spawn(&ctx).await.expect("spawn");
    assert_eq!(command.argv, vec!["sleep".to_string(), "5".to_string()]);

    let exited = Event::Exited(Exit {
        status: ExitStatus::Code(1).into(),
        uptime_ms: 10,
    });
    let action = loader.decide(&exited, &history(3)).await.expect("decide");
    assert!(matches!(action, Action::Restart(30)), "{action:?}");

    let started = loader
        .decide(&Event::Started(42), &history(0))
        .await
        .expect("decide");
    assert!(matches!(started, Action::None), "{started:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_check_is_not_a_loader() {
    let source = CheckSource::File(programs::OK.into());
    match engine().load_loader(&source).await {
        Ok(_) => panic!("a check loaded as a loader"),
        Err(err) => assert!(err.to_string().contains("is a check"), "{err}"),
    }
}

/// A loader is untrusted code too: whatever delay it asks for, the
/// supervisor schedules it without overflowing a deadline, keeps
/// answering, and journals the delay as asked.
#[test]
fn a_restart_delay_past_the_clock_range_does_not_take_the_supervisor_down() {
    let setup = crate::support::Setup::new("loader-hostile-delay");
    let dir = setup.service("forever", "[loader.config]\nargv = \"sleep 0.5\"\n");
    std::fs::copy(programs::LOADER_HOSTILE, dir.join("loader.wasm")).expect("copy loader");
    setup.service("bystander", &crate::support::command(&["sleep", "1000"]));
    let vigil = setup.run();
    let (_, restarting) = vigil.wait_kind(0, "forever", "restarting");
    assert_eq!(restarting["delay_ms"], u64::MAX, "{restarting}");
    // Still supervising it: the operator can stop it and start it again, and the
    // other service runs.
    vigil.wait_kind(0, "bystander", "spawned");
    let spawned_before = vigil
        .events("forever")
        .iter()
        .filter(|e| is(e, "forever", "spawned"))
        .count();
    for verb in ["stop", "start"] {
        let answer = crate::support::vigil_command()
            .args([verb, "forever", "--state-dir"])
            .arg(&setup.state)
            .output()
            .expect("vigil stop/start");
        assert!(
            answer.status.success(),
            "vigil {verb}: {}{}",
            String::from_utf8_lossy(&answer.stdout),
            String::from_utf8_lossy(&answer.stderr)
        );
    }
    wait_until(
        "a new child of the started service",
        std::time::Duration::from_secs(20),
        || {
            vigil
                .events("forever")
                .iter()
                .filter(|e| is(e, "forever", "spawned"))
                .count()
                > spawned_before
        },
    );
}
