//! Running a loader: `spawn` gives a service's command, `decide` its
//! reaction to events. Loaders are pure: each call is a fresh instance and
//! the host passes in all the state (history) a decision needs.

use std::time::{Duration, Instant};

use super::bindings::loader::LoaderPre;
use super::bindings::loader::vigil::health::policy;
use super::checker::{Verdict, failure_verdict};
use super::output::BoundedOutput;
use super::store::HostState;
use super::{CheckSource, Engine};

pub use policy::{Action, CheckFailure, Command, Event, Exit, ExitStatus, History, SpawnContext};

/// Deadline of one loader call; a policy decision is pure computation.
pub const LOADER_TIMEOUT: Duration = Duration::from_secs(1);
/// Memory cap of one loader call.
pub const LOADER_MEMORY: usize = 64 << 20;

impl policy::Host for HostState {}

/// A loader that could not answer; the supervisor falls back to the
/// built-in policy and journals this.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error("loader {check}: {verdict}")]
    Failed {
        check: CheckSource,
        verdict: Verdict,
        output: String,
    },
    #[error("loader {check} declined to spawn: {reason}")]
    Declined { check: CheckSource, reason: String },
}

/// A loaded loader; clones share the compiled code.
#[derive(Clone)]
pub struct Loader {
    engine: Engine,
    pre: LoaderPre<HostState>,
    source: CheckSource,
}

impl Loader {
    pub(crate) fn new(engine: Engine, pre: LoaderPre<HostState>, source: CheckSource) -> Self {
        Loader {
            engine,
            pre,
            source,
        }
    }

    pub fn source(&self) -> &CheckSource {
        &self.source
    }

    /// The command to run for the service.
    pub async fn spawn(&self, ctx: &SpawnContext) -> Result<Command, LoaderError> {
        let output = BoundedOutput::new(super::engine::OUTPUT_CAP);
        let _call = self.engine.begin_call().await;
        let mut store = self.engine.new_store(
            None,
            None,
            Instant::now() + LOADER_TIMEOUT,
            LOADER_MEMORY,
            &output,
        );
        let call = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            instance.call_spawn(&mut store, ctx).await
        };
        let result = tokio::time::timeout(LOADER_TIMEOUT, call).await;
        match result {
            Ok(Ok(Ok(command))) => Ok(command),
            Ok(Ok(Err(reason))) => Err(LoaderError::Declined {
                check: self.source.clone(),
                reason,
            }),
            Ok(Err(err)) => Err(self.failed(
                failure_verdict(&err, store.data().limits.hit, LOADER_MEMORY),
                &output,
            )),
            Err(_) => Err(self.failed(Verdict::TimedOut, &output)),
        }
    }

    /// The action for `event`, given the service's `history`.
    pub async fn decide(&self, event: &Event, history: &History) -> Result<Action, LoaderError> {
        let output = BoundedOutput::new(super::engine::OUTPUT_CAP);
        let _call = self.engine.begin_call().await;
        let mut store = self.engine.new_store(
            None,
            None,
            Instant::now() + LOADER_TIMEOUT,
            LOADER_MEMORY,
            &output,
        );
        let call = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            instance.call_decide(&mut store, event, history).await
        };
        let result = tokio::time::timeout(LOADER_TIMEOUT, call).await;
        match result {
            Ok(Ok(action)) => Ok(action),
            Ok(Err(err)) => Err(self.failed(
                failure_verdict(&err, store.data().limits.hit, LOADER_MEMORY),
                &output,
            )),
            Err(_) => Err(self.failed(Verdict::TimedOut, &output)),
        }
    }

    fn failed(&self, verdict: Verdict, output: &BoundedOutput) -> LoaderError {
        LoaderError::Failed {
            check: self.source.clone(),
            verdict,
            output: output.text(),
        }
    }
}
