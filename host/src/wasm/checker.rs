//! Running a check: a fresh instance per call (a bundled check may reuse
//! one of its own, see [`super::warm`]), bounded in time, memory and
//! output; whatever the guest does, the caller gets a [`CheckReport`].
//! What the guest hands back is bounded too: a reason longer than
//! [`MAX_REASON`] is cut where it enters the host.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wasmtime::Trap;

use super::bindings;
use super::host::output::OutputRing;
use super::output::BoundedOutput;
use super::warm::{WarmInstance, WarmInstances};
use super::{CheckSource, Engine, Grants, Phase, Verdict};

/// Who a check judges (host side of the WIT `target`).
#[derive(Debug, Clone)]
pub struct Target {
    pub service: String,
    pub phase: Phase,
    pub pid: Option<u32>,
    /// When the current child was spawned; `UNIX_EPOCH` when unknown.
    pub started_at: SystemTime,
    pub attempt: u32,
    pub restarts: u32,
    pub config: Vec<(String, String)>,
    /// The service's recent output, for the `output` capability (which
    /// the grants must allow too); `None` without a service around.
    pub output: Option<Arc<OutputRing>>,
}

impl Target {
    /// A target for a one-shot check with no service around it.
    pub fn one_shot(phase: Phase, pid: Option<u32>, config: Vec<(String, String)>) -> Self {
        Target {
            service: "vigil-check".into(),
            phase,
            pid,
            started_at: UNIX_EPOCH,
            attempt: 1,
            restarts: 0,
            config,
            output: None,
        }
    }

    fn to_wit(&self) -> bindings::Target {
        bindings::Target {
            service: self.service.clone(),
            phase: self.phase.into(),
            pid: self.pid,
            started_at_ms: self
                .started_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            attempt: self.attempt,
            restarts: self.restarts,
            config: self.config.clone(),
        }
    }
}

/// The limits a check runs under: grants, deadline, memory.
#[derive(Debug)]
pub struct Sandbox {
    pub grants: Arc<Grants>,
    /// Wall-clock deadline of the whole call, instantiation included.
    pub timeout: Duration,
    /// Cap on the instance's linear memories and tables together, in
    /// bytes: a component may have several of each.
    pub memory_limit: usize,
    /// Relative paths a check passes to `fs` are resolved against this
    /// (the service directory; the current directory for `vigil check`).
    pub base_dir: Option<PathBuf>,
    http: LazyHttpClient,
}

impl Sandbox {
    /// Default memory cap for a check.
    pub const DEFAULT_MEMORY: usize = 64 << 20;

    pub fn new(grants: Grants, timeout: Duration, memory_limit: usize) -> Self {
        let grants = Arc::new(grants);
        Sandbox {
            http: LazyHttpClient {
                grants: grants.clone(),
                client: Arc::default(),
            },
            grants,
            timeout,
            memory_limit,
            base_dir: None,
        }
    }

    /// Resolve relative `fs` paths against `dir`.
    pub fn with_base_dir(mut self, dir: PathBuf) -> Self {
        self.base_dir = Some(dir);
        self
    }

    /// The HTTP client for these grants, built on first use and reused.
    pub(crate) fn http_client(&self) -> LazyHttpClient {
        self.http.clone()
    }
}

/// A sandbox's HTTP client, built on the first HTTP request and shared by
/// its later calls: most checks never make one, and a client (TLS roots,
/// connection pool) is not small when there are a thousand services.
#[derive(Clone)]
pub(crate) struct LazyHttpClient {
    grants: Arc<Grants>,
    client: Arc<OnceLock<Option<reqwest::Client>>>,
}

impl std::fmt::Debug for LazyHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyHttpClient")
            .field("built", &self.client.get().is_some())
            .finish()
    }
}

impl LazyHttpClient {
    pub(crate) fn get(&self) -> Option<reqwest::Client> {
        self.client
            .get_or_init(|| match super::host::http::client(self.grants.clone()) {
                Ok(client) => Some(client),
                Err(err) => {
                    tracing::error!("cannot build the HTTP client: {err}");
                    None
                }
            })
            .clone()
    }
}

/// The longest reason, in bytes, Vigil keeps from a guest. A reason is
/// written to the journal and the log, shown by `vigil status` and kept per
/// service, so its size must not be the guest's to choose; a few lines are
/// all a human reads.
pub const MAX_REASON: usize = 4096;

/// `text` cut to [`MAX_REASON`] bytes (at a character boundary), with a
/// note saying how much was cut.
pub(crate) fn bounded(mut text: String) -> String {
    if text.len() <= MAX_REASON {
        return text;
    }
    let mut end = MAX_REASON;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    text.truncate(end);
    text.push_str(&format!(" [truncated: {cut} more bytes]"));
    text
}

/// Everything one call produced.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub verdict: Verdict,
    pub duration: Duration,
    /// The guest's stdout and stderr, capped.
    pub output: String,
    /// Lines from the `log` interface, capped.
    pub logs: Vec<String>,
}

/// A loaded check, ready to run; clones share the compiled code.
#[derive(Clone)]
pub struct Checker {
    engine: Engine,
    pre: bindings::checker::CheckerPre<super::store::HostState>,
    /// Idle instances to reuse: only for bundled checks.
    warm: Option<Arc<WarmInstances>>,
    source: CheckSource,
}

impl Checker {
    pub(crate) fn new(
        engine: Engine,
        pre: bindings::checker::CheckerPre<super::store::HostState>,
        warm: Option<Arc<WarmInstances>>,
        source: CheckSource,
    ) -> Self {
        Checker {
            engine,
            pre,
            warm,
            source,
        }
    }

    pub fn source(&self) -> &CheckSource {
        &self.source
    }

    /// Runs the check once. Never fails: a guest that traps, loops or
    /// exhausts its memory yields an inconclusive verdict.
    pub async fn check(&self, target: &Target, sandbox: &Sandbox) -> CheckReport {
        let started = Instant::now();
        let deadline = started + sandbox.timeout;
        let _call = self.engine.begin_call().await;
        let reused = self
            .warm
            .as_ref()
            .and_then(|warm| warm.take(sandbox.memory_limit));
        let (mut store, instance, output) = match reused {
            Some(WarmInstance {
                mut store,
                instance,
                output,
            }) => {
                let data = store.data_mut();
                data.caps = Engine::capabilities(
                    Some(sandbox),
                    target.pid,
                    target.output.clone(),
                    deadline,
                );
                data.limits.rearm(sandbox.memory_limit);
                store.set_epoch_deadline(1);
                (store, Some(instance), output)
            }
            None => {
                let output = BoundedOutput::new(super::engine::OUTPUT_CAP);
                let store = self.engine.new_store(
                    Some(sandbox),
                    target.pid,
                    target.output.clone(),
                    deadline,
                    sandbox.memory_limit,
                    &output,
                );
                (store, None, output)
            }
        };
        let wit_target = target.to_wit();
        let call = async {
            let instance = match instance {
                Some(instance) => instance,
                None => self.pre.instantiate_async(&mut store).await?,
            };
            let outcome = instance.call_check(&mut store, &wit_target).await?;
            wasmtime::Result::Ok((instance, outcome))
        };
        let (verdict, finished) = match tokio::time::timeout(sandbox.timeout, call).await {
            Err(_) => (Verdict::timed_out(Some(sandbox.timeout)), None),
            Ok(Ok((instance, outcome))) => (outcome.into(), Some(instance)),
            Ok(Err(err)) => (
                failure_verdict(
                    &err,
                    store.data().limits.hit,
                    sandbox.memory_limit,
                    sandbox.timeout,
                ),
                None,
            ),
        };
        let logs = store.data().caps.log.lines();
        let report = CheckReport {
            verdict,
            duration: started.elapsed(),
            output: output.take_text(),
            logs,
        };
        if let (Some(warm), Some(instance)) = (&self.warm, finished) {
            warm.put(WarmInstance {
                store,
                instance,
                output,
            });
        }
        report
    }
}

/// Turns a wasmtime error from a call into a verdict a human understands.
/// The message is bounded: a backtrace names guest functions, and the guest
/// chooses their names and how deep it recurses.
pub(crate) fn failure_verdict(
    err: &wasmtime::Error,
    memory_cap_hit: bool,
    memory_limit: usize,
    timeout: std::time::Duration,
) -> Verdict {
    if let Some(wasmtime::component::ResourceTableError::Full) =
        err.downcast_ref::<wasmtime::component::ResourceTableError>()
    {
        return Verdict::Trapped(format!(
            "resource limit reached: at most {} host resources (pollables, streams, connections) may be open at once",
            super::engine::MAX_RESOURCES
        ));
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Verdict::timed_out(Some(timeout)),
        // A trap after a refused growth, or an instantiation whose memories
        // and tables did not fit at all.
        trap if memory_cap_hit => Verdict::Trapped(format!(
            "memory limit of {} MiB reached ({})",
            memory_limit >> 20,
            match trap {
                Some(trap) => trap.to_string(),
                None => bounded(format!("{err:#}")),
            }
        )),
        Some(Trap::StackOverflow) => Verdict::Trapped("stack overflow (recursion too deep)".into()),
        Some(Trap::UnreachableCodeReached) => Verdict::Trapped(
            "the check panicked or aborted (wasm `unreachable`); see its output".into(),
        ),
        Some(trap) => Verdict::Trapped(trap.to_string()),
        None => match err.downcast_ref::<wasmtime_wasi::I32Exit>() {
            Some(exit) => Verdict::Trapped(format!("the check called exit({})", exit.0)),
            None => Verdict::Trapped(bounded(format!("{err:#}"))),
        },
    }
}
