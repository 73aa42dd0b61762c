//! Check durations and outcomes, recorded by the supervisor as checks end.
//!
//! `control::metrics` only encodes them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use super::CheckResult;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    pub service: String,
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub service: String,
    pub phase: String,
    pub outcome: String,
}

/// 100 µs .. 10 s: a builtin check takes well under a millisecond, a
/// Python one tens of milliseconds, a slow server seconds.
const DURATION_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The families are shared handles: what an encoder registers sees every
/// later observation.
pub type Durations = Family<CheckLabels, Histogram, fn() -> Histogram>;
pub type Outcomes = Family<OutcomeLabels, Counter>;

/// Check durations and outcomes, observed by the service tasks as checks
/// end; read (never written) by whoever exposes them.
#[derive(Debug)]
pub struct CheckMetrics {
    durations: Durations,
    outcomes: Outcomes,
    /// The last results with their time, for the live views.
    history: super::history::History,
}

impl Default for CheckMetrics {
    fn default() -> Self {
        CheckMetrics {
            durations: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            outcomes: Family::default(),
            history: Default::default(),
        }
    }
}

impl CheckMetrics {
    /// Record one finished check.
    pub(super) fn observe(&self, service: &str, result: &CheckResult) {
        let phase = result.phase.as_str().to_string();
        self.durations
            .get_or_create(&CheckLabels {
                service: service.to_string(),
                phase: phase.clone(),
            })
            .observe(result.latency.as_secs_f64());
        self.outcomes
            .get_or_create(&OutcomeLabels {
                service: service.to_string(),
                phase,
                outcome: result.outcome.kind().to_string(),
            })
            .inc();
        self.history
            .record(service, result, std::time::SystemTime::now());
    }

    /// The last results of each service, with their time.
    pub fn history(&self) -> &super::history::History {
        &self.history
    }

    /// How long checks took, from call to outcome (seconds).
    pub fn durations(&self) -> &Durations {
        &self.durations
    }

    /// Check results by outcome.
    pub fn outcomes(&self) -> &Outcomes {
        &self.outcomes
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::wasm::{Phase, Verdict};

    #[test]
    fn each_check_counts_once_under_its_service_phase_and_outcome() {
        let metrics = CheckMetrics::default();
        let result = |outcome| CheckResult {
            phase: Phase::Liveness,
            outcome,
            latency: Duration::from_millis(3),
        };
        metrics.observe("db", &result(Verdict::Ok));
        metrics.observe("db", &result(Verdict::Ok));
        metrics.observe("db", &result(Verdict::timed_out(None)));
        let count = |outcome: &str| {
            metrics
                .outcomes()
                .get_or_create(&OutcomeLabels {
                    service: "db".into(),
                    phase: "liveness".into(),
                    outcome: outcome.into(),
                })
                .get()
        };
        assert_eq!(count(Verdict::Ok.kind()), 2);
        assert_eq!(count(Verdict::timed_out(None).kind()), 1);
    }
}
