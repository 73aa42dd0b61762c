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

use std::time::SystemTime;

pub use driver::{BuiltIn, Decider};
pub use report::{Decision, Report, Step, Summary};

use crate::config::Service;
use crate::journal::Line;

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
    driver::replay(&recording, &service, decider, candidate).await
}
