//! Running a loader: `spawn` gives a service's command, `decide` its
//! reaction to events, and (a loader of world `replace-loader`, new in
//! 0.1.2) `decide-replace` its say in a replace of the service's child.
//! Loaders are pure: each call is a fresh instance and the host passes in
//! all the state (history) a decision needs.
//!
//! What a loader returns is bounded where it enters the host: reasons are
//! cut to [`MAX_REASON`](super::checker::MAX_REASON) bytes, and a command
//! larger than the kernel would take ([`MAX_COMMAND_ENTRIES`],
//! [`MAX_COMMAND_BYTES`]) is refused.

use std::time::{Duration, Instant, SystemTime};

use wasmtime::Store;

use super::bindings::loader::vigil::health::policy;
use super::bindings::loader::{Loader as LoaderWorld, LoaderPre};
use super::bindings::replace_loader::exports::vigil::health::replace_policy;
use super::bindings::replace_loader::{ReplaceLoader as ReplaceWorld, ReplaceLoaderPre};
use super::checker::{bounded, failure_verdict};
use super::output::BoundedOutput;
use super::store::HostState;
use super::{CheckSource, Engine, Verdict};

pub use policy::{Action, CheckFailure, Command, Event, Exit, History, SpawnContext};
pub use replace_policy::{
    ReplaceChildren, ReplaceDecision, ReplaceEvent, ReplaceFailure, ReplaceRequest,
};

/// Deadline of one loader call; a policy decision is pure computation.
pub const LOADER_TIMEOUT: Duration = Duration::from_secs(1);
/// Memory cap of one loader call.
pub const LOADER_MEMORY: usize = 64 << 20;

/// Most arguments, and most environment variables, a loader's command may
/// have. The supervisor merges the variables into the service's own one by
/// one, and no real program takes more.
pub const MAX_COMMAND_ENTRIES: usize = 4096;

/// Most bytes of a loader's command: its arguments, variables (`KEY=VALUE`)
/// and directory, each with its terminating NUL, as `execve` counts them.
/// Linux refuses more than about 2 MiB (a quarter of the stack limit).
pub const MAX_COMMAND_BYTES: usize = 1 << 20;

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
    #[error("loader {check} returned a command too large to run: {problem}")]
    CommandTooLarge { check: CheckSource, problem: String },
}

/// A loaded loader; clones share the compiled code.
#[derive(Clone)]
pub struct Loader {
    engine: Engine,
    pre: LoaderPre<HostState>,
    /// The same component as world `replace-loader`, when it exports
    /// `replace-policy`.
    replace: Option<ReplaceLoaderPre<HostState>>,
    source: CheckSource,
}

impl Loader {
    pub(crate) fn new(engine: Engine, pre: LoaderPre<HostState>, source: CheckSource) -> Self {
        Loader {
            engine,
            pre,
            replace: None,
            source,
        }
    }

    /// The same loader's `replace-policy` export, when it has one.
    pub(crate) fn with_replace(mut self, replace: Option<ReplaceLoaderPre<HostState>>) -> Self {
        self.replace = replace;
        self
    }

    /// Whether it exports `replace-policy` (world `replace-loader`, 0.1.2):
    /// only then is it asked about replaces.
    pub fn takes_part_in_replaces(&self) -> bool {
        self.replace.is_some()
    }

    pub fn source(&self) -> &CheckSource {
        &self.source
    }

    /// The command to run for the service.
    pub async fn spawn(&self, ctx: &SpawnContext) -> Result<Command, LoaderError> {
        let answer = self
            .call(async |store, instance| instance.call_spawn(store, ctx).await)
            .await?;
        match answer {
            Ok(command) => match command_problem(&command) {
                None => Ok(command),
                Some(problem) => Err(LoaderError::CommandTooLarge {
                    check: self.source.clone(),
                    problem,
                }),
            },
            Err(reason) => Err(LoaderError::Declined {
                check: self.source.clone(),
                reason: bounded(reason),
            }),
        }
    }

    /// The action for `event`, given the service's `history`.
    pub async fn decide(&self, event: &Event, history: &History) -> Result<Action, LoaderError> {
        self.decide_at(event, history, None).await
    }

    /// [`Self::decide`] with the loader's wall clock frozen at `wall`
    /// (`vigil replay`: the time the event was recorded), or the host's
    /// clock for `None`.
    pub async fn decide_at(
        &self,
        event: &Event,
        history: &History,
        wall: Option<SystemTime>,
    ) -> Result<Action, LoaderError> {
        let action = self
            .call_at(wall, async |store, instance| {
                instance.call_decide(store, event, history).await
            })
            .await?;
        Ok(match action {
            Action::Stop(reason) => Action::Stop(bounded(reason)),
            action => action,
        })
    }

    /// Its say about a step of a replace (`None`: it has no
    /// `replace-policy`, and is not asked). A refusal's reason is cut like
    /// a stop's.
    pub async fn decide_replace(
        &self,
        event: &ReplaceEvent,
        history: &History,
    ) -> Result<Option<ReplaceDecision>, LoaderError> {
        let Some(pre) = self.replace.clone() else {
            return Ok(None);
        };
        let decision = self
            .call_on(
                None,
                async move |store: &mut Store<HostState>| pre.instantiate_async(store).await,
                async |store, instance: ReplaceWorld| {
                    instance
                        .vigil_health_replace_policy()
                        .call_decide_replace(store, event, history)
                        .await
                },
            )
            .await?;
        Ok(Some(match decision {
            ReplaceDecision::Refuse(reason) => ReplaceDecision::Refuse(bounded(reason)),
            other => other,
        }))
    }

    /// One call of the loader: a fresh instance (loaders are pure) in a
    /// store with the loader's deadline, memory cap and captured output,
    /// `call` on it, and a trap or a timeout turned into
    /// [`LoaderError::Failed`] with what the loader wrote.
    async fn call<T>(
        &self,
        call: impl AsyncFnOnce(&mut Store<HostState>, LoaderWorld) -> wasmtime::Result<T>,
    ) -> Result<T, LoaderError> {
        self.call_at(None, call).await
    }

    /// [`Self::call`] with the wall clock frozen at `wall`, when given.
    async fn call_at<T>(
        &self,
        wall: Option<SystemTime>,
        call: impl AsyncFnOnce(&mut Store<HostState>, LoaderWorld) -> wasmtime::Result<T>,
    ) -> Result<T, LoaderError> {
        let pre = self.pre.clone();
        self.call_on(
            wall,
            async move |store: &mut Store<HostState>| pre.instantiate_async(store).await,
            call,
        )
        .await
    }

    /// [`Self::call_at`] on an instance that `instantiate` makes (of either
    /// world).
    async fn call_on<I, T>(
        &self,
        wall: Option<SystemTime>,
        instantiate: impl AsyncFnOnce(&mut Store<HostState>) -> wasmtime::Result<I>,
        call: impl AsyncFnOnce(&mut Store<HostState>, I) -> wasmtime::Result<T>,
    ) -> Result<T, LoaderError> {
        let output = BoundedOutput::new(super::engine::OUTPUT_CAP);
        let _call = self.engine.begin_call().await;
        let mut store = self.engine.new_store_at(
            None,
            None,
            None,
            Instant::now() + LOADER_TIMEOUT,
            LOADER_MEMORY,
            &output,
            wall,
        );
        let result = tokio::time::timeout(LOADER_TIMEOUT, async {
            let instance = instantiate(&mut store).await?;
            call(&mut store, instance).await
        })
        .await;
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(self.failed(
                failure_verdict(&err, store.data().limits.hit, LOADER_MEMORY, LOADER_TIMEOUT),
                &output,
            )),
            Err(_) => Err(self.failed(Verdict::timed_out(Some(LOADER_TIMEOUT)), &output)),
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

/// Why `command` is too large to run, if it is.
fn command_problem(command: &Command) -> Option<String> {
    if command.argv.len() > MAX_COMMAND_ENTRIES {
        return Some(format!(
            "{} arguments (at most {MAX_COMMAND_ENTRIES})",
            command.argv.len()
        ));
    }
    if command.env.len() > MAX_COMMAND_ENTRIES {
        return Some(format!(
            "{} environment variables (at most {MAX_COMMAND_ENTRIES})",
            command.env.len()
        ));
    }
    let argv = command.argv.iter().map(|arg| arg.len() + 1);
    let env = command.env.iter().map(|(k, v)| k.len() + v.len() + 2);
    let cwd = command.cwd.iter().map(|cwd| cwd.len() + 1);
    let bytes: usize = argv.chain(env).chain(cwd).sum();
    (bytes > MAX_COMMAND_BYTES).then(|| {
        format!(
            "{bytes} bytes of arguments, environment and directory (at most {MAX_COMMAND_BYTES})"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(argv: Vec<String>, env: Vec<(String, String)>) -> Command {
        Command {
            argv,
            env,
            cwd: None,
        }
    }

    #[test]
    fn a_command_the_kernel_would_take_passes() {
        let argv = vec!["x".repeat(100); MAX_COMMAND_ENTRIES];
        let env = vec![("K".into(), "v".repeat(100)); MAX_COMMAND_ENTRIES];
        assert_eq!(command_problem(&command(argv, env)), None);
    }

    #[test]
    fn too_many_entries_or_bytes_are_refused() {
        let many = vec![String::new(); MAX_COMMAND_ENTRIES + 1];
        let problem = command_problem(&command(many, vec![])).expect("too many");
        assert!(problem.contains("4097 arguments"), "{problem}");
        let env = vec![(String::new(), String::new()); MAX_COMMAND_ENTRIES + 1];
        let problem = command_problem(&command(vec!["a".into()], env)).expect("too many");
        assert!(problem.contains("4097 environment variables"), "{problem}");
        let long = vec!["x".repeat(MAX_COMMAND_BYTES)];
        let problem = command_problem(&command(long, vec![])).expect("too long");
        assert!(problem.contains("bytes of arguments"), "{problem}");
    }
}
