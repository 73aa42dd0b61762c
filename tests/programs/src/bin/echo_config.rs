//! Echoes what the host passed, as a retry reason:
//! `service=web,phase=startup,pid=1,attempt=1,restarts=0,started-at-ms=0,k1=v1,...`
//! (config pairs in the order given; `pid=none` without a pid).

use vigil_sdk::{Outcome, Target, check};

#[check]
fn check(target: Target) -> Outcome {
    let pid = target
        .pid
        .map_or_else(|| "none".to_string(), |pid| pid.to_string());
    let mut parts = vec![
        format!("service={}", target.service),
        format!("phase={}", target.phase),
        format!("pid={pid}"),
        format!("attempt={}", target.attempt),
        format!("restarts={}", target.restarts),
        format!("started-at-ms={}", target.started_at_ms),
    ];
    parts.extend(target.config.iter().map(|(k, v)| format!("{k}={v}")));
    Outcome::retry(parts.join(","))
}

fn main() {}
