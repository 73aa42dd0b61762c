//! `vigil replay`: a restart policy tested against a real journal.
//!
//! The recorded lives of one service (spawns, check results, stops, exits)
//! are fed through the supervisor's own reducer
//! ([`crate::supervisor::service::ServiceState`]) configured with a
//! candidate: the built-in policy with a manifest's restart settings, or a
//! loader. There is no second implementation of any policy: the reducer
//! is pure (time and every outside answer are passed in), so the replay
//! drives it on a virtual clock and answers its effects from the record.
//!
//! - [`record`]: journal lines back into the reducer's vocabulary.
//! - [`driver`]: the virtual clock, the feeding, the comparison.
//! - [`report`]: the result, as a table or JSON.

pub mod driver;
pub mod record;
pub mod report;

#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime};

pub use driver::{BuiltIn, Decider};
pub use report::{Decision, Report, Step, Summary};

use crate::config::{CheckSpec, Service};
use crate::journal::Line;
use crate::wasm::{CheckSource, Phase};

/// Replay the lines of `service.name` in `lines` (at or after `since`)
/// with `decider` answering the loader's questions (use [`BuiltIn`] for
/// a manifest without a loader). `candidate` names it in the report.
pub async fn replay<D: Decider>(
    lines: &[Line],
    service: &Service,
    since: Option<SystemTime>,
    decider: &D,
    candidate: String,
) -> Report {
    let recording = record::read(lines, &service.name, since);
    // What the record shows decides when a child may start; replay only
    // compares policies, so `after`, `requires` and `notify` (whose
    // messages are not journaled) are the record's business.
    let mut service = service.clone();
    service.after.clear();
    service.requires.clear();
    service.notify = None;
    let mut report = driver::replay(&recording, &service, decider, candidate.clone()).await;
    // A loader decides on every failed result, so a check the record shows
    // and the candidate's manifest lacks (a loader given alone) is taken
    // as configured; the built-in policy without it would ignore it.
    if service.loader.is_some() {
        let mut added = Vec::new();
        for rec in &recording.recs {
            if let record::RecKind::Check { phase, .. } = &rec.kind
                && service.checks.get(*phase).is_none()
            {
                let spec = recorded_check();
                match phase {
                    Phase::Startup => service.checks.startup = Some(spec),
                    Phase::Readiness => service.checks.readiness = Some(spec),
                    Phase::Liveness => service.checks.liveness = Some(spec),
                }
                added.push(phase.as_str());
            }
        }
        if !added.is_empty() {
            report = driver::replay(&recording, &service, decider, candidate).await;
            report.not_compared.push(format!(
                "the record's {} check(s) are not in the candidate's manifest: taken as configured (threshold 1; give --policy for its own)",
                added.join(", ")
            ));
        }
    }
    report
}

/// A check the record shows but no manifest describes: every result is
/// passed on, one failure is a failure.
fn recorded_check() -> CheckSpec {
    CheckSpec {
        check: CheckSource::Builtin("recorded".into()),
        period: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        initial_delay: Duration::ZERO,
        failure_threshold: 1,
        success_threshold: 1,
        startup_timeout: Duration::from_secs(3600),
        startup_failures: None,
        config: vec![],
    }
}
