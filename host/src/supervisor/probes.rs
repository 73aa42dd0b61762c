//! [`Probes`] backed by the wasm engine: checks and loaders are loaded on
//! first use and cached per service until [`Probes::forget`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::service::{Action, History, HookKind, LoaderEvent, ReplaceAnswer, ReplaceQuestion, ms};
use super::{BoxFuture, ProbeTarget, Probes, manifest_command, spawn};
use crate::config::{HookAction, Service};
use crate::sync::LockExt;
use crate::wasm::{self, Checker, Engine, ExitStatus, Loader, Phase, Sandbox, Target, Verdict};

type CheckerCache = Mutex<HashMap<(String, Phase), (Checker, Arc<Sandbox>)>>;

/// Checks and loaders run by the wasm engine. A clone shares the engine
/// and both caches (what a call's future takes with it).
#[derive(Clone)]
pub struct WasmProbes {
    engine: Engine,
    checkers: Arc<CheckerCache>,
    loaders: Arc<Mutex<HashMap<String, Loader>>>,
}

impl WasmProbes {
    pub fn new(engine: Engine) -> Arc<WasmProbes> {
        Arc::new(WasmProbes {
            engine,
            checkers: Default::default(),
            loaders: Default::default(),
        })
    }
}

/// How much of a failing check's stdout and stderr is kept with its
/// reason: the end, where a traceback or a panic message is.
pub const OUTPUT_KEPT: usize = 2048;

/// A failing or trapped check's reason with the end of what the guest
/// printed (a Python traceback, a Rust panic message), so the journal's
/// `check` and `warning` lines and `vigil status` show it, as
/// docs/writing-checks.md promises. Kept exact here; whoever prints it
/// escapes it; a timeout keeps it too (what it printed last says where it
/// was stuck). `ok` keeps none.
pub fn with_output(outcome: Verdict, output: &str) -> Verdict {
    let output = output.trim_end();
    if output.trim().is_empty() {
        return outcome;
    }
    let mut start = output.len().saturating_sub(OUTPUT_KEPT);
    while !output.is_char_boundary(start) {
        start += 1;
    }
    let tail = if start > 0 {
        format!("[{start} bytes cut] {}", &output[start..])
    } else {
        output.to_string()
    };
    let add = |reason: String| format!("{reason}; check output: {tail}");
    match outcome {
        Verdict::Retry(r) => Verdict::Retry(add(r)),
        Verdict::Error(r) => Verdict::Error(add(r)),
        Verdict::Trapped(r) => Verdict::Trapped(add(r)),
        Verdict::TimedOut(r) => Verdict::TimedOut(add(r)),
        Verdict::Ok => Verdict::Ok,
    }
}

fn wit_exit(status: ExitStatus, uptime: Duration) -> wasm::Exit {
    wasm::Exit {
        status: status.into(),
        uptime_ms: ms(uptime),
    }
}

pub(crate) fn wit_event(event: &LoaderEvent) -> wasm::Event {
    match event {
        LoaderEvent::Started(pid) => wasm::Event::Started(*pid),
        LoaderEvent::Ready => wasm::Event::Ready,
        LoaderEvent::CheckFailed {
            phase,
            outcome,
            consecutive,
        } => wasm::Event::CheckFailed(wasm::CheckFailure {
            phase: (*phase).into(),
            outcome: outcome.into(),
            consecutive: *consecutive,
        }),
        LoaderEvent::Exited { status, uptime } => wasm::Event::Exited(wit_exit(*status, *uptime)),
    }
}

/// A step of a replace as WIT 0.1.2's `replace-event`.
fn wit_replace_event(event: &ReplaceQuestion) -> wasm::LoaderReplaceEvent {
    let pid = |p: i32| p.unsigned_abs();
    match event {
        ReplaceQuestion::Requested {
            pid: p,
            cause,
            reason,
        } => wasm::LoaderReplaceEvent::Requested(wasm::ReplaceRequest {
            pid: pid(*p),
            cause: cause.as_str().to_string(),
            reason: reason.clone(),
        }),
        ReplaceQuestion::NewReady { old_pid, new_pid } => {
            wasm::LoaderReplaceEvent::NewReady(wasm::ReplaceChildren {
                old_pid: pid(*old_pid),
                new_pid: pid(*new_pid),
            })
        }
        ReplaceQuestion::Failed {
            old_pid,
            new_pid,
            reason,
        } => wasm::LoaderReplaceEvent::Failed(wasm::ReplaceFailure {
            old_pid: pid(*old_pid),
            new_pid: new_pid.map(pid),
            reason: reason.clone(),
        }),
    }
}

/// A loader's answer as the reducer takes it.
pub(crate) fn from_wit_action(action: wasm::Action) -> Action {
    match action {
        wasm::Action::None => Action::None,
        wasm::Action::Restart(after) => Action::Restart(Duration::from_millis(after)),
        wasm::Action::Stop(reason) => Action::Stop(reason),
        wasm::Action::Kill(sig) => Action::Kill(sig),
    }
}

pub(crate) fn wit_history(h: &History) -> wasm::History {
    wasm::History {
        service: h.service.clone(),
        restarts: h.restarts,
        uptime_ms: ms(h.uptime),
        recent_exits: h
            .recent_exits
            .iter()
            .map(|(s, up, ago)| (wit_exit(*s, *up), ms(*ago)))
            .collect(),
        config: h.config.clone(),
    }
}

impl WasmProbes {
    async fn loader(&self, service: &Service) -> Result<Loader, String> {
        let spec = service.loader.as_ref().ok_or("no loader")?;
        if let Some(l) = self.loaders.lock_unpoisoned().get(&service.name) {
            return Ok(l.clone());
        }
        let loader = self
            .engine
            .load_loader(&spec.source())
            .await
            .map_err(|e| e.to_string())?;
        self.loaders
            .lock_unpoisoned()
            .insert(service.name.clone(), loader.clone());
        Ok(loader)
    }
}

/// One call of `checker` about `service`'s child; its guest's logs to
/// tracing, its output kept with a failure's reason.
async fn call(
    checker: &Checker,
    sandbox: &Sandbox,
    service: &Service,
    phase: Phase,
    config: &[(String, String)],
    target: ProbeTarget,
) -> Verdict {
    let target = Target {
        service: service.name.clone(),
        phase,
        pid: target.pid,
        started_at: if target.pid.is_some() {
            target.started_at
        } else {
            SystemTime::UNIX_EPOCH
        },
        attempt: target.attempt,
        restarts: target.restarts,
        config: config.to_vec(),
        output: target.output,
    };
    let report = checker.check(&target, sandbox).await;
    for line in &report.logs {
        // tracing escapes ESC and C1, not CR or bidi controls (the
        // argument is only evaluated when the level is enabled).
        tracing::debug!(
            service = %service.name,
            %phase,
            "check log: {}",
            crate::untrusted::line(line)
        );
    }
    with_output(report.verdict, &report.output)
}

impl Probes for WasmProbes {
    fn check(
        &self,
        service: Arc<Service>,
        phase: Phase,
        target: ProbeTarget,
    ) -> BoxFuture<Verdict> {
        let engine = self.engine.clone();
        let cache = self.checkers.clone();
        Box::pin(async move {
            let Some(spec) = service.checks.get(phase).cloned() else {
                return Verdict::Error(format!("no {phase} check"));
            };
            let key = (service.name.clone(), phase);
            let cached = cache.lock_unpoisoned().get(&key).cloned();
            let (checker, sandbox) = match cached {
                Some(c) => c,
                None => {
                    let checker = match engine.load_checker(&spec.check).await {
                        Ok(c) => c,
                        Err(e) => {
                            return Verdict::Error(format!("cannot load {}: {e}", spec.check));
                        }
                    };
                    // Resolved once, when the manifest was loaded.
                    let grants = service.grants.resolved().clone();
                    let memory = usize::try_from(service.grants.memory).unwrap_or(usize::MAX);
                    let sandbox = Arc::new(
                        Sandbox::new(grants, spec.timeout, memory)
                            .with_base_dir(service.dir.clone()),
                    );
                    cache
                        .lock_unpoisoned()
                        .insert(key, (checker.clone(), sandbox.clone()));
                    (checker, sandbox)
                }
            };
            call(&checker, &sandbox, &service, phase, &spec.config, target).await
        })
    }

    fn hook_check(
        &self,
        service: Arc<Service>,
        hook: HookKind,
        target: ProbeTarget,
        timeout: Duration,
    ) -> BoxFuture<Verdict> {
        let engine = self.engine.clone();
        Box::pin(async move {
            let Some(HookAction::Check { check, config }) =
                service.hooks.get(hook).map(|h| h.action.clone())
            else {
                return Verdict::Error(format!("no {hook} check hook"));
            };
            // Loaded at each run (hooks are rare; the engine caches the
            // compiled component), in the service's checks' sandbox.
            let checker = match engine.load_checker(&check).await {
                Ok(c) => c,
                Err(e) => return Verdict::Error(format!("cannot load {check}: {e}")),
            };
            let grants = service.grants.resolved().clone();
            let memory = usize::try_from(service.grants.memory).unwrap_or(usize::MAX);
            let sandbox = Sandbox::new(grants, timeout, memory).with_base_dir(service.dir.clone());
            // The WIT phase has no hooks: start hooks are told `startup`,
            // stop hooks `liveness`.
            let phase = match hook {
                HookKind::PreStart | HookKind::PostStart => Phase::Startup,
                HookKind::PreStop | HookKind::PostStop => Phase::Liveness,
            };
            call(&checker, &sandbox, &service, phase, &config, target).await
        })
    }

    fn decide(
        &self,
        service: Arc<Service>,
        event: LoaderEvent,
        history: History,
    ) -> BoxFuture<Result<Action, String>> {
        let me = self.clone();
        Box::pin(async move {
            let loader = me.loader(&service).await?;
            let action = loader
                .decide(&wit_event(&event), &wit_history(&history))
                .await
                .map_err(|e| e.to_string())?;
            Ok(from_wit_action(action))
        })
    }

    fn decide_replace(
        &self,
        service: Arc<Service>,
        event: ReplaceQuestion,
        history: History,
    ) -> BoxFuture<Result<Option<ReplaceAnswer>, String>> {
        let me = self.clone();
        Box::pin(async move {
            let loader = me.loader(&service).await?;
            if !loader.takes_part_in_replaces() {
                return Ok(None);
            }
            let decision = loader
                .decide_replace(&wit_replace_event(&event), &wit_history(&history))
                .await
                .map_err(|e| e.to_string())?;
            Ok(decision.map(|d| match d {
                wasm::ReplaceDecision::Proceed => ReplaceAnswer::Proceed,
                wasm::ReplaceDecision::Restart => ReplaceAnswer::Restart,
                wasm::ReplaceDecision::Refuse(reason) => ReplaceAnswer::Refuse(reason),
            }))
        })
    }

    fn command(
        &self,
        service: Arc<Service>,
        restarts: u32,
    ) -> BoxFuture<Result<spawn::Command, String>> {
        let me = self.clone();
        Box::pin(async move {
            let Some(spec) = service.loader.as_ref() else {
                return manifest_command(&service);
            };
            let loader = me.loader(&service).await?;
            let ctx = wasm::SpawnContext {
                service: service.name.clone(),
                restarts,
                config: spec.config.clone(),
            };
            let cmd = loader.spawn(&ctx).await.map_err(|e| e.to_string())?;
            let mut env = service.child_env().map_err(|e| e.to_string())?;
            for (k, v) in cmd.env {
                env.retain(|(ek, _)| *ek != k);
                env.push((k, v));
            }
            let mut command = spawn::Command {
                argv: cmd.argv,
                env,
                cwd: cmd
                    .cwd
                    .map(|c| service.dir.join(c))
                    .unwrap_or_else(|| service.cwd.clone()),
                stdout: spawn::Output::Pipe,
                stderr: spawn::Output::Pipe,
                run_as: None,
                umask: None,
                cgroup_into: None,
                cgroup_procs: Vec::new(),
                rlimits: Vec::new(),
                listen: Vec::new(),
            };
            super::identity::apply(&service, &mut command);
            Ok(command)
        })
    }

    fn forget(&self, service: &str) {
        self.checkers
            .lock_unpoisoned()
            .retain(|(name, _), _| name != service);
        self.loaders.lock_unpoisoned().remove(service);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_checks_output_is_kept_bounded_at_its_end() {
        let out = "Traceback (most recent call last):\nValueError: boom\n";
        assert_eq!(
            with_output(Verdict::Trapped("wasm trap".into()), out),
            Verdict::Trapped(
                "wasm trap; check output: Traceback (most recent call last):\nValueError: boom"
                    .into()
            )
        );
        assert_eq!(
            with_output(Verdict::Retry("refused".into()), "\n"),
            Verdict::Retry("refused".into())
        );
        assert_eq!(with_output(Verdict::Ok, out), Verdict::Ok);
        // A timeout keeps what the check printed before it was cut off.
        assert_eq!(
            with_output(Verdict::timed_out(None), "connecting to db\n"),
            Verdict::TimedOut("timed out; check output: connecting to db".into())
        );
        // A flood keeps its last OUTPUT_KEPT bytes, cut at a character.
        let flood = format!("{}é{}END", "x".repeat(5000), "y".repeat(OUTPUT_KEPT - 4));
        let Verdict::Error(reason) = with_output(Verdict::Error("e".into()), &flood) else {
            panic!("an error stays an error");
        };
        assert!(reason.ends_with("END"), "{reason}");
        assert!(reason.contains("bytes cut]"), "{reason}");
        assert!(reason.len() < OUTPUT_KEPT + 100, "{}", reason.len());
    }
}
