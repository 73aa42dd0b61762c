//! `builtin:process`: the service's main process is alive, not stopped,
//! and within optional resource limits.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `max-rss` | | resident memory limit, a size like `512MiB` |
//! | `max-threads` | | thread limit |
//! | `max-fds` | | open file descriptor limit |
//! | `include-children` | `false` | compare the sums over the whole process tree |
//!
//! Alive is `ok`; stopped (SIGSTOP, tracing stop) or over a limit is
//! `retry`; no pid, a zombie, a dead or vanished process and a denied
//! lookup are `error`.

use vigil_sdk::config::Size;
use vigil_sdk::process::{self, State, Stats};
use vigil_sdk::units::format_size;
use vigil_sdk::{ErrorCode, Outcome, Target, check};

/// `[checks.*.config]`, declared once: parsed by `Limits::new` and
/// embedded as the component's config schema.
#[derive(vigil_sdk::Config)]
struct Config {
    /// Resident memory limit, a size like `512MiB`.
    max_rss: Option<Size>,
    /// Thread limit.
    max_threads: Option<u64>,
    /// Open file descriptor limit.
    max_fds: Option<u64>,
    /// Compare the sums over the whole process tree.
    #[config(default = "false")]
    include_children: bool,
}

#[check]
fn process_check(target: Target) -> Result<Outcome, Outcome> {
    let limits = Limits::new(&target)?;
    let Some(pid) = target.pid else {
        return Err(Outcome::error("no pid: this check needs a running service"));
    };
    let main = process::stat(pid).map_err(|e| match e {
        ErrorCode::NotFound => Outcome::error(format!("process {pid} is gone")),
        other => other.outcome(format_args!("stat process {pid}")),
    })?;
    if let Some(verdict) = judge_state(&main) {
        return Ok(verdict);
    }
    if limits.is_empty() {
        return Ok(Outcome::Ok);
    }
    let usage = if limits.include_children {
        let tree = process::tree_stats().map_err(|e| e.outcome("stat process tree"))?;
        Usage::sum(&tree)
    } else {
        Usage::sum(std::slice::from_ref(&main))
    };
    Ok(limits.judge(pid, &usage))
}

/// The verdict for the main process's state, `None` when it runs.
fn judge_state(stats: &Stats) -> Option<Outcome> {
    let pid = stats.pid;
    match stats.state {
        State::Zombie => Some(Outcome::error(format!(
            "process {pid} is a zombie (exited, not yet reaped)"
        ))),
        State::Dead => Some(Outcome::error(format!("process {pid} is dead"))),
        _ if !stats.alive => Some(Outcome::error(format!(
            "process {pid} is not alive ({})",
            stats.state
        ))),
        State::Stopped => Some(Outcome::retry(format!(
            "process {pid} is stopped (SIGSTOP or job control)"
        ))),
        State::TracingStop => Some(Outcome::retry(format!(
            "process {pid} is stopped by a tracer"
        ))),
        _ => None,
    }
}

#[derive(Default)]
struct Limits {
    max_rss: Option<u64>,
    max_threads: Option<u64>,
    max_fds: Option<u64>,
    include_children: bool,
}

#[derive(Debug, Default, PartialEq)]
struct Usage {
    processes: usize,
    rss: u64,
    threads: u64,
    fds: u64,
}

impl Usage {
    fn sum(stats: &[Stats]) -> Self {
        stats.iter().fold(Usage::default(), |acc, s| Usage {
            processes: acc.processes + 1,
            rss: acc.rss.saturating_add(s.rss_bytes),
            threads: acc.threads + u64::from(s.threads),
            fds: acc.fds + u64::from(s.open_fds),
        })
    }
}

impl Limits {
    fn new(target: &Target) -> Result<Self, Outcome> {
        let config: Config = target.settings()?;
        Ok(Limits {
            max_rss: config.max_rss.map(|Size(bytes)| bytes),
            max_threads: config.max_threads,
            max_fds: config.max_fds,
            include_children: config.include_children,
        })
    }

    fn is_empty(&self) -> bool {
        self.max_rss.is_none() && self.max_threads.is_none() && self.max_fds.is_none()
    }

    fn judge(&self, pid: u32, usage: &Usage) -> Outcome {
        let mut over = Vec::new();
        if let Some(max) = self.max_rss
            && usage.rss > max
        {
            over.push(format!(
                "rss {} over max-rss {}",
                format_size(usage.rss),
                format_size(max)
            ));
        }
        if let Some(max) = self.max_threads
            && usage.threads > max
        {
            over.push(format!("{} threads over max-threads {max}", usage.threads));
        }
        if let Some(max) = self.max_fds
            && usage.fds > max
        {
            over.push(format!("{} open fds over max-fds {max}", usage.fds));
        }
        if over.is_empty() {
            return Outcome::Ok;
        }
        let scope = if self.include_children {
            let plural = if usage.processes == 1 { "" } else { "es" };
            format!(
                "process tree of {pid} ({} process{plural})",
                usage.processes
            )
        } else {
            format!("process {pid}")
        };
        Outcome::retry(format!("{scope}: {}", over.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_sdk::testing::target_with;

    fn stats(state: State, alive: bool) -> Stats {
        Stats {
            pid: 42,
            parent_pid: 1,
            alive,
            state,
            rss_bytes: 100 << 20,
            cpu_time_ms: 0,
            threads: 4,
            open_fds: 10,
            children: Vec::new(),
        }
    }

    #[test]
    fn states() {
        assert_eq!(judge_state(&stats(State::Sleeping, true)), None);
        assert_eq!(judge_state(&stats(State::Running, true)), None);
        assert!(matches!(
            judge_state(&stats(State::Stopped, true)),
            Some(Outcome::Retry(_))
        ));
        assert!(matches!(
            judge_state(&stats(State::Zombie, false)),
            Some(Outcome::Error(_))
        ));
        assert!(matches!(
            judge_state(&stats(State::Other, false)),
            Some(Outcome::Error(_))
        ));
    }

    #[test]
    fn limits() {
        let target = target_with(&[("max-rss", "64MiB"), ("max-threads", "8"), ("max-fds", "5")]);
        let limits = Limits::new(&target);
        let usage = Usage::sum(&[stats(State::Sleeping, true)]);
        assert_eq!(
            limits.as_ref().map(|l| l.judge(42, &usage)).ok(),
            Some(Outcome::retry(
                "process 42: rss 100.0MiB over max-rss 64.0MiB; 10 open fds over max-fds 5"
            ))
        );
        let children = target_with(&[("max-threads", "7"), ("include-children", "true")]);
        let two = Usage::sum(&[stats(State::Sleeping, true), stats(State::Running, true)]);
        assert_eq!(
            Limits::new(&children).map(|l| l.judge(42, &two)).ok(),
            Some(Outcome::retry(
                "process tree of 42 (2 processes): 8 threads over max-threads 7"
            ))
        );
    }

    #[test]
    fn bad_settings_name_the_key() {
        for (key, value) in [
            ("max-rss", "lots"),
            ("max-threads", "-1"),
            ("include-children", "2"),
        ] {
            match Limits::new(&target_with(&[(key, value)])) {
                Err(Outcome::Error(message)) => assert!(message.contains(key), "{message}"),
                _ => panic!("{key}={value} was accepted"),
            }
        }
    }
}
