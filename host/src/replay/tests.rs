//! The replay driver on hand-written journals: the reducer runs on the
//! virtual clock, no process and no wall time involved.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::*;
use crate::config::{CheckSpec, GiveUp, RestartPolicy};
use crate::journal::Line;
use crate::supervisor::service::{Action, History, LoaderEvent};
use crate::wasm::CheckSource;

fn service(backoff_ms: &[u64], give_up: Option<u32>) -> Service {
    Service {
        restart: RestartPolicy {
            backoff: backoff_ms
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
            give_up: give_up.map(|restarts| GiveUp {
                restarts,
                window: Duration::from_secs(10),
            }),
            ..RestartPolicy::default()
        },
        ..Service::for_test("web", PathBuf::from("/srv/web"), &["web"])
    }
}

fn liveness(threshold: u32) -> CheckSpec {
    CheckSpec {
        check: CheckSource::Builtin("http".into()),
        period: Duration::from_secs(1),
        timeout: Duration::from_millis(500),
        initial_delay: Duration::ZERO,
        failure_threshold: threshold,
        success_threshold: 1,
        startup_timeout: Duration::from_secs(10),
        startup_failures: None,
        config: vec![],
    }
}

/// Journal lines from `(seconds, service?, event JSON)`.
fn journal(lines: &[(f64, bool, &str)]) -> Vec<Line> {
    lines
        .iter()
        .map(|(secs, own, event)| {
            let at = SystemTime::UNIX_EPOCH
                + Duration::from_secs(1_800_000_000)
                + Duration::from_secs_f64(*secs);
            let service = if *own { r#""service":"web","# } else { "" };
            let ts = crate::journal::timestamp(at);
            let text = format!(r#"{{"ts":"{ts}",{service}{}"#, &event[1..]);
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
        })
        .collect()
}

/// Three crashes under backoff 100 ms, 200 ms and "more than 2 restarts
/// in 10 s": restart, restart, give up.
fn crash_loop() -> Vec<Line> {
    journal(&[
        (0.0, false, r#"{"kind":"acquired","pid":1}"#),
        (
            0.010,
            true,
            r#"{"kind":"spawned","pid":10,"start_time":1,"restarts":0}"#,
        ),
        (
            0.060,
            true,
            r#"{"kind":"exited","pid":10,"code":1,"signal":null,"uptime_ms":50}"#,
        ),
        (
            0.060,
            true,
            r#"{"kind":"restarting","delay_ms":100,"restarts":1}"#,
        ),
        (
            0.161,
            true,
            r#"{"kind":"spawned","pid":11,"start_time":2,"restarts":1}"#,
        ),
        (
            0.211,
            true,
            r#"{"kind":"exited","pid":11,"code":null,"signal":"SIGSEGV","uptime_ms":50}"#,
        ),
        (
            0.211,
            true,
            r#"{"kind":"restarting","delay_ms":200,"restarts":2}"#,
        ),
        (
            0.412,
            true,
            r#"{"kind":"spawned","pid":12,"start_time":3,"restarts":2}"#,
        ),
        (
            0.462,
            true,
            r#"{"kind":"exited","pid":12,"code":1,"signal":null,"uptime_ms":50}"#,
        ),
        (
            0.462,
            true,
            r#"{"kind":"gave-up","reason":"more than 2 restarts within 10s"}"#,
        ),
        (1.462, false, r#"{"kind":"quit","clean":true}"#),
    ])
}

async fn run(lines: &[Line], svc: &Service) -> Report {
    replay(lines, svc, None, &BuiltIn, "built-in policy".into()).await
}

#[tokio::test]
async fn the_policy_that_wrote_a_crash_loop_reproduces_it() {
    let report = run(&crash_loop(), &service(&[100, 200], Some(2))).await;
    assert!(report.matches, "{}", report.text());
    let decisions: Vec<_> = report.steps.iter().map(|s| s.candidate.clone()).collect();
    assert_eq!(
        decisions,
        vec![
            Decision::Restart { delay_ms: 100 },
            Decision::Restart { delay_ms: 200 },
            Decision::GiveUp {
                reason: "more than 2 restarts within 10s".into()
            },
        ]
    );
    assert_eq!(report.recorded.restarts, 2);
    assert_eq!(report.candidate_summary, report.recorded);
    // Down 100 + 201 ms between lives, then a second until vigil quit.
    assert_eq!(report.recorded.downtime_ms, 101 + 201 + 1000);
}

#[tokio::test]
async fn other_restart_settings_differ_and_shift_the_later_lives() {
    // Backoff 300 ms, 1 s, and no give-up.
    let report = run(&crash_loop(), &service(&[300, 1000], None)).await;
    assert!(!report.matches);
    assert_eq!(report.differences, 3, "{}", report.text());
    assert_eq!(
        report.steps[0].candidate,
        Decision::Restart { delay_ms: 300 }
    );
    // The second life came 200 ms later on the candidate's clock.
    assert_eq!(report.steps[1].at.get(17..23), Some("00.211"));
    assert_eq!(report.steps[1].candidate_at.get(17..23), Some("00.411"));
    // Where the record gave up, the candidate restarts: what it would have
    // run next is not recorded.
    assert_eq!(
        report.steps[2].candidate,
        Decision::Restart { delay_ms: 1000 }
    );
    assert!(report.candidate_summary.gave_up_at.is_none());
    assert!(!report.candidate_summary.downtime_known);
    assert!(report.text().contains("DIFFERS"), "{}", report.text());
}

#[tokio::test]
async fn a_tighter_give_up_stops_early_and_waits_for_the_next_start() {
    let mut lines = crash_loop();
    // An operator starts it again later: both worlds meet there.
    lines.pop();
    lines.extend(journal(&[
        (
            5.0,
            true,
            r#"{"kind":"spawned","pid":20,"start_time":4,"restarts":2}"#,
        ),
        (
            5.5,
            true,
            r#"{"kind":"exited","pid":20,"code":1,"signal":null,"uptime_ms":500}"#,
        ),
        (
            5.5,
            true,
            r#"{"kind":"restarting","delay_ms":100,"restarts":3}"#,
        ),
    ]));
    let report = run(&lines, &service(&[100, 200], Some(1))).await;
    let candidate: Vec<_> = report.steps.iter().map(|s| s.candidate.clone()).collect();
    assert!(
        matches!(candidate[1], Decision::GiveUp { .. }),
        "{}",
        report.text()
    );
    // The third recorded life never happened for the candidate; the
    // operator's start at 5 s did (with the policy's memory afresh), and
    // its end is compared again.
    assert_eq!(report.steps.len(), 3, "{}", report.text());
    assert_eq!(report.steps[2].at.get(17..23), Some("05.500"));
    assert!(report.steps[2].matches);
    assert_eq!(report.differences, 1);
}

#[tokio::test]
async fn a_liveness_stop_replays_through_the_candidates_threshold() {
    let lines = journal(&[
        (0.0, false, r#"{"kind":"acquired","pid":1}"#),
        (
            0.0,
            true,
            r#"{"kind":"spawned","pid":10,"start_time":1,"restarts":0}"#,
        ),
        (
            1.0,
            true,
            r#"{"kind":"check","phase":"liveness","outcome":"ok","reason":null}"#,
        ),
        (
            4.0,
            true,
            r#"{"kind":"check","phase":"liveness","outcome":"retry","reason":"refused"}"#,
        ),
        (
            6.0,
            true,
            r#"{"kind":"stopping","pid":10,"cause":"liveness","reason":"liveness builtin:http failed 3/3: refused","signal":"SIGTERM"}"#,
        ),
        (
            6.1,
            true,
            r#"{"kind":"exited","pid":10,"code":null,"signal":"SIGTERM","uptime_ms":6100,"cause":"liveness"}"#,
        ),
        (
            6.1,
            true,
            r#"{"kind":"restarting","delay_ms":100,"restarts":1}"#,
        ),
        (
            6.2,
            true,
            r#"{"kind":"spawned","pid":11,"start_time":2,"restarts":1}"#,
        ),
    ]);
    let mut svc = service(&[100], None);
    svc.checks.liveness = Some(liveness(3));
    let report = run(&lines, &svc).await;
    assert!(report.matches, "{}", report.text());
    assert_eq!(report.steps.len(), 2);
    assert!(
        matches!(&report.steps[0].candidate, Decision::Stop { cause, .. } if cause == "liveness")
    );

    // A candidate without a liveness check keeps the child.
    let report = run(&lines, &service(&[100], None)).await;
    assert!(!report.matches);
    assert_eq!(
        report.steps[0].candidate,
        Decision::Keep,
        "{}",
        report.text()
    );
}

#[tokio::test]
async fn an_operator_restart_is_no_decision_of_the_policy() {
    let lines = journal(&[
        (0.0, false, r#"{"kind":"acquired","pid":1}"#),
        (
            0.0,
            true,
            r#"{"kind":"spawned","pid":10,"start_time":1,"restarts":0}"#,
        ),
        (
            2.0,
            true,
            r#"{"kind":"stopping","pid":10,"cause":"operator","reason":"vigil restart","signal":"SIGTERM"}"#,
        ),
        (
            2.1,
            true,
            r#"{"kind":"exited","pid":10,"code":0,"signal":null,"uptime_ms":2100,"cause":"operator"}"#,
        ),
        (
            2.1,
            true,
            r#"{"kind":"restarting","delay_ms":0,"restarts":1}"#,
        ),
        (
            2.1,
            true,
            r#"{"kind":"spawned","pid":11,"start_time":2,"restarts":1}"#,
        ),
        (
            3.0,
            true,
            r#"{"kind":"exited","pid":11,"code":3,"signal":null,"uptime_ms":900}"#,
        ),
        (
            3.0,
            true,
            r#"{"kind":"restarting","delay_ms":5000,"restarts":2}"#,
        ),
    ]);
    let report = run(&lines, &service(&[5000], None)).await;
    assert!(report.matches, "{}", report.text());
    assert_eq!(report.steps.len(), 1, "{}", report.text());
    assert_eq!(
        report.recorded.downtime_ms,
        report.candidate_summary.downtime_ms
    );
}

/// A loader stand-in: restarts after 10 ms per restart so far, and
/// remembers the wall-clock times it was asked at.
struct Linear(std::sync::Mutex<Vec<SystemTime>>);

impl Decider for Linear {
    async fn decide(
        &self,
        event: &LoaderEvent,
        history: &History,
        wall: SystemTime,
    ) -> Result<Action, String> {
        self.0.lock().map_err(|e| e.to_string())?.push(wall);
        Ok(match event {
            LoaderEvent::Exited { .. } => {
                Action::Restart(Duration::from_millis(10 * u64::from(history.restarts)))
            }
            _ => Action::None,
        })
    }
}

#[tokio::test]
async fn a_loader_is_asked_at_the_recorded_times() {
    let mut svc = service(&[100, 200], Some(2));
    svc.loader = Some(crate::config::LoaderSpec {
        path: PathBuf::from("loader.wasm"),
        config: vec![],
        embedded: false,
    });
    let loader = Linear(Default::default());
    let report = replay(&crash_loop(), &svc, None, &loader, "loader".into()).await;
    let candidate: Vec<_> = report.steps.iter().map(|s| s.candidate.clone()).collect();
    assert_eq!(
        candidate,
        vec![
            Decision::Restart { delay_ms: 0 },
            Decision::Restart { delay_ms: 10 },
            Decision::Restart { delay_ms: 20 },
        ],
        "{}",
        report.text()
    );
    // Asked at each start (`started`, `ready`) and each exit: the first
    // exit at 0.060 s of the record.
    let asked = loader.0.lock().map(|v| v.clone()).unwrap_or_default();
    let origin = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    assert!(
        asked.contains(&(origin + Duration::from_millis(60))),
        "{asked:?}"
    );
}
