//! The last check results of every service, with their latency, for the
//! live views (`vigil top`, the status page, `vigil status --wide`).
//!
//! The journal records a check only when its outcome changes, and the
//! `/metrics` histograms have no time axis: neither can draw "latency
//! over the last minutes". This ring keeps [`KEEP`] results a service,
//! so its memory is bounded whatever the check period.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::SystemTime;

use super::CheckResult;
use serde::{Deserialize, Serialize};

/// Results kept per service: two minutes of a 1 s period.
pub const KEEP: usize = 120;

/// One finished check in `GET /v1/checks` (served by the control layer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckSample {
    /// When it ended, Unix milliseconds.
    pub at_ms: u64,
    /// `startup`, `readiness` or `liveness`.
    pub phase: String,
    /// `ok`, `retry`, `error`, `trapped`, `timed-out`.
    pub outcome: String,
    pub latency_ms: f64,
    /// Why it was not `ok` (cut to 200 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Longest reason kept in a sample, in characters: the full one is in
/// the status API and the journal.
const REASON_CHARS: usize = 200;

/// Recent check results by service.
#[derive(Debug, Default)]
pub struct History {
    services: Mutex<HashMap<String, VecDeque<CheckSample>>>,
}

impl History {
    /// Record one finished check, dropping the oldest beyond [`KEEP`].
    pub(super) fn record(&self, service: &str, result: &CheckResult, at: SystemTime) {
        let sample = CheckSample {
            at_ms: at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or_default(),
            phase: result.phase.as_str().to_string(),
            outcome: result.outcome.kind().to_string(),
            latency_ms: result.latency.as_secs_f64() * 1000.0,
            reason: result
                .outcome
                .reason()
                .map(|r| r.chars().take(REASON_CHARS).collect()),
        };
        // A poisoned lock only means a panic mid-push: the ring is still a ring.
        let mut services = self.services.lock().unwrap_or_else(|p| p.into_inner());
        let ring = services.entry(service.to_string()).or_default();
        if ring.len() == KEEP {
            ring.pop_front();
        }
        ring.push_back(sample);
    }

    /// The recent results of the services `keep` accepts, oldest first.
    pub fn recent(&self, keep: impl Fn(&str) -> bool) -> BTreeMap<String, Vec<CheckSample>> {
        let services = self.services.lock().unwrap_or_else(|p| p.into_inner());
        services
            .iter()
            .filter(|(name, _)| keep(name))
            .map(|(name, ring)| (name.clone(), ring.iter().cloned().collect()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::wasm::{Phase, Verdict};

    #[test]
    fn keeps_the_last_results_oldest_first() {
        let history = History::default();
        for i in 0..KEEP + 5 {
            let result = CheckResult {
                phase: Phase::Liveness,
                outcome: if i % 2 == 0 {
                    Verdict::Ok
                } else {
                    Verdict::Retry("x".repeat(500))
                },
                latency: Duration::from_millis(i as u64),
            };
            history.record("db", &result, SystemTime::UNIX_EPOCH);
        }
        let recent = history.recent(|_| true);
        let db = &recent["db"];
        assert_eq!(db.len(), KEEP);
        assert_eq!(db[0].latency_ms, 5.0);
        assert_eq!(db[KEEP - 1].latency_ms, (KEEP + 4) as f64);
        assert_eq!(db[0].reason.as_deref().map(str::len), Some(REASON_CHARS));
        assert!(history.recent(|name| name != "db").is_empty());
    }
}
