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
}
