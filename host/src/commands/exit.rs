//! Every exit code of the `vigil` binary, in one place. The numbers are a
//! contract with scripts, init systems and probes (README: "Exit codes"),
//! and each means one thing whichever command returns it.

use crate::wasm::Verdict;

/// How a `vigil` command ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done. The check said `ok`, the daemon or program is up, the
    /// service settled, the instance reloaded or shut down.
    Ok,
    /// 1: failed or refused. A check's `error`, a daemon or program that
    /// did not come up, an invalid checks directory for `validate`, a
    /// refused reload, a service that has not settled, an I/O error.
    Failed,
    /// 2: bad usage (clap exits with 2 for a bad flag as well), a check or
    /// component that cannot be loaded, a checks directory `run` refuses.
    Usage,
    /// 3: client commands: no vigil is running (no control socket). The
    /// LSB init-script convention for "program is not running", as
    /// `systemctl status` answers for a stopped unit.
    NotRunning,
    /// 4: client commands: the running vigil has no service by that name.
    UnknownService,
    /// 5: `run`, `daemonize`: another instance holds the pid file (or the
    /// state directory's journal).
    AlreadyRunning,
    /// 6: `status`: some service is neither ready, nor stopped by an
    /// operator, nor a one-shot that finished cleanly (it is starting,
    /// waiting, unready, restarting, failed, or exited with an error), so
    /// that scripts and `watch` can tell "all is well" from the exit code.
    Degraded,
    /// 75: `vigil check`: not yet, or inconclusive (a trap or a timeout).
    /// `EX_TEMPFAIL` of sysexits.h, "try again later".
    Retry,
    /// `vigil check --exit-codes nagios|docker`: the code that convention
    /// gives the verdict (see [`ExitCodes`]); never one of the above
    /// meanings for another command.
    Convention(u8),
}

/// The exit-code convention `vigil check` answers in (`--exit-codes`):
/// each prober reads the code its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ExitCodes {
    /// 0 ok, 75 retry (a trap or timeout too), 1 error, 2 cannot load:
    /// kubelet counts anything but 0 as a failure, scripts tell them apart.
    #[default]
    K8s,
    /// The Nagios plugin convention that Consul and Nomad script checks
    /// read: 0 OK, 1 WARNING (retry), 2 CRITICAL (error), 3 UNKNOWN (the
    /// check trapped, timed out, or could not be loaded).
    Nagios,
    /// Docker's HEALTHCHECK: 0 healthy, 1 unhealthy for everything else,
    /// never the reserved 2 (retries are counted by Docker's `--retries`).
    Docker,
}

impl ExitCodes {
    /// The exit for a check's verdict in this convention.
    pub fn of_verdict(self, verdict: &Verdict) -> Exit {
        match (self, verdict) {
            (ExitCodes::K8s, verdict) => Exit::of_verdict(verdict),
            (_, Verdict::Ok) => Exit::Ok,
            (ExitCodes::Nagios, Verdict::Retry(_)) => Exit::Convention(1),
            (ExitCodes::Nagios, Verdict::Error(_)) => Exit::Convention(2),
            (ExitCodes::Nagios, Verdict::Trapped(_) | Verdict::TimedOut(_)) => Exit::Convention(3),
            (ExitCodes::Docker, _) => Exit::Convention(1),
        }
    }

    /// The exit for a check that could not be loaded or run at all (bad
    /// usage, a component that does not load).
    pub fn of_load_error(self) -> Exit {
        match self {
            ExitCodes::K8s => Exit::Usage,
            ExitCodes::Nagios => Exit::Convention(3),
            ExitCodes::Docker => Exit::Convention(1),
        }
    }
}

impl Exit {
    /// Every exit, for tests and documentation.
    pub const ALL: [Exit; 8] = [
        Exit::Ok,
        Exit::Failed,
        Exit::Usage,
        Exit::NotRunning,
        Exit::UnknownService,
        Exit::AlreadyRunning,
        Exit::Degraded,
        Exit::Retry,
    ];

    /// The process exit code.
    pub const fn code(self) -> i32 {
        match self {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::NotRunning => 3,
            Exit::UnknownService => 4,
            Exit::AlreadyRunning => 5,
            Exit::Degraded => 6,
            Exit::Retry => 75,
            Exit::Convention(code) => code as i32,
        }
    }

    /// `vigil check`'s exit for a verdict: a probe reads 0 as healthy, 75
    /// as "not yet" (traps and timeouts are inconclusive, like `retry`)
    /// and 1 as failed. The only mapping from verdicts to exit codes.
    pub fn of_verdict(verdict: &Verdict) -> Exit {
        match verdict {
            Verdict::Ok => Exit::Ok,
            Verdict::Retry(_) | Verdict::Trapped(_) | Verdict::TimedOut(_) => Exit::Retry,
            Verdict::Error(_) => Exit::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented numbers (README "Exit codes"), each used once.
    #[test]
    fn codes_are_the_documented_ones_and_distinct() {
        let codes: Vec<i32> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6, 75]);
        for (i, a) in codes.iter().enumerate() {
            assert!(!codes[i + 1..].contains(a), "{a} means two things");
        }
    }

    #[test]
    fn verdicts() {
        assert_eq!(Exit::of_verdict(&Verdict::Ok), Exit::Ok);
        assert_eq!(Exit::of_verdict(&Verdict::Retry("x".into())), Exit::Retry);
        assert_eq!(Exit::of_verdict(&Verdict::Trapped("x".into())), Exit::Retry);
        assert_eq!(Exit::of_verdict(&Verdict::timed_out(None)), Exit::Retry);
        assert_eq!(Exit::of_verdict(&Verdict::Error("x".into())), Exit::Failed);
    }

    /// Every verdict and a load error, in each convention, as documented
    /// (README "vigil check"): Nagios 0/1/2/3, Docker never 2.
    #[test]
    fn conventions() {
        let verdicts = [
            Verdict::Ok,
            Verdict::Retry("x".into()),
            Verdict::Error("x".into()),
            Verdict::Trapped("x".into()),
            Verdict::timed_out(None),
        ];
        let codes = |convention: ExitCodes| -> Vec<i32> {
            verdicts
                .iter()
                .map(|v| convention.of_verdict(v).code())
                .chain([convention.of_load_error().code()])
                .collect()
        };
        assert_eq!(codes(ExitCodes::K8s), [0, 75, 1, 75, 75, 2]);
        assert_eq!(codes(ExitCodes::Nagios), [0, 1, 2, 3, 3, 3]);
        assert_eq!(codes(ExitCodes::Docker), [0, 1, 1, 1, 1, 1]);
    }
}
