//! Vigil's own signals: SIGTERM/SIGINT ask for a graceful shutdown (a
//! second one forces it), SIGHUP asks for a reload. SIGCHLD belongs to the
//! reaper ([`crate::supervisor::reaper`]).

use tokio::signal::unix::{Signal, SignalKind, signal};

/// What a signal asks of Vigil.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// SIGTERM or SIGINT.
    Shutdown,
    /// SIGHUP: rescan the checks directory.
    Reload,
}

/// The signal streams; create them early so nothing is missed.
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Install the handlers (needs a tokio runtime).
    pub fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next request.
    pub async fn recv(&mut self) -> Request {
        tokio::select! {
            _ = self.term.recv() => Request::Shutdown,
            _ = self.int.recv() => Request::Shutdown,
            _ = self.hup.recv() => Request::Reload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sighup_is_a_reload() {
        let mut s = Signals::new().expect("signals");
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGHUP).expect("raise");
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), s.recv()).await;
        assert_eq!(got.ok(), Some(Request::Reload));
    }
}
