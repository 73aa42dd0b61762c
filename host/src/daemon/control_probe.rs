//! `vigil run --daemon`'s checker: ask the daemon's control socket
//! (`GET /v1/status`, through [`control::Client`](crate::control::Client))
//! whether it is up.
//!
//! Up means: the socket answers with the daemon's own pid, and every
//! service that has a startup gate reports `startup_passed`. A service in
//! state `failed` that never passed its gate is an error (it gave up);
//! anything else is "not yet".

use std::path::Path;

use super::Health;
use crate::control::Client;
use crate::control::api::StatusReport;

/// One probe of the daemon `pid` through `socket`.
pub async fn probe(socket: &Path, pid: u32) -> Health {
    match Client::new(socket).status().await {
        Ok(report) => judge(&report, pid),
        Err(e) => Health::Retry(e.to_string()),
    }
}

fn judge(report: &StatusReport, pid: u32) -> Health {
    if report.pid != pid {
        return Health::Retry(format!(
            "the control socket is answered by pid {}, not the daemon (pid {pid})",
            report.pid
        ));
    }
    let mut waiting = Vec::new();
    for s in &report.services {
        if s.startup_passed {
            continue;
        }
        if s.state == "failed" {
            return Health::Error(format!(
                "service {} failed to start{}",
                s.name,
                s.last_reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ));
        }
        waiting.push(format!("{} ({})", s.name, s.state));
    }
    if waiting.is_empty() {
        Health::Ok
    } else {
        Health::Retry(format!("starting: {}", waiting.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::api::ServiceStatus;

    fn report(pid: u32, services: &[(&str, &str, bool)]) -> StatusReport {
        StatusReport {
            pid,
            version: String::new(),
            started_at: 0,
            state_dir: Default::default(),
            cgroups: None,
            services: services
                .iter()
                .map(|&(name, state, startup_passed)| ServiceStatus {
                    name: name.into(),
                    state: state.into(),
                    pid: None,
                    uptime_secs: None,
                    restarts: 0,
                    ready: false,
                    startup_passed,
                    last_outcome: None,
                    last_reason: Some("boom".into()),
                    last_phase: None,
                    check_latency_ms: None,
                    status_text: None,
                    finished: false,
                    failing: None,
                    waiting_for: Vec::new(),
                    restart_in_secs: None,
                    note: None,
                    next_run_in_secs: None,
                    job: None,
                    cgroup: None,
                    cpu_secs: None,
                    memory_bytes: None,
                    after: Vec::new(),
                    sockets: Vec::new(),
                    awaiting_connection: false,
                    replacing_pid: None,
                    replaced_pid: None,
                    replace_failed: None,
                })
                .collect(),
        }
    }

    #[test]
    fn up_only_when_the_daemon_answers_and_every_gate_passed() {
        let up = report(7, &[("a", "ready", true), ("b", "running", true)]);
        assert_eq!(judge(&up, 7), Health::Ok);
        assert!(matches!(judge(&up, 8), Health::Retry(r) if r.contains("pid 7")));
        let starting = report(7, &[("a", "ready", true), ("b", "starting", false)]);
        assert!(matches!(judge(&starting, 7), Health::Retry(r) if r.contains("b (starting)")));
        let failed = report(7, &[("a", "ready", true), ("b", "failed", false)]);
        assert_eq!(
            judge(&failed, 7),
            Health::Error("service b failed to start: boom".into())
        );
    }
}
