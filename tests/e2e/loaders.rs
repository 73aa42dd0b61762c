//! README "Loaders": the engine calls both exports of a real loader.

use vigil::wasm::{Action, CheckSource, Event, Exit, ExitStatus, History, SpawnContext};

use crate::helpers::*;

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
        status: ExitStatus::Code(1),
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
