//! A check that declares its settings with `#[derive(Config)]`, under
//! names no builtin uses, so that `vigil validate` and `vigil inspect` are
//! tested against a schema read from any component (the destination is
//! found by the kinds `host` and `port`, not by key names). Echoes what it
//! parsed as a retry reason.

use std::time::Duration;

use vigil_sdk::config::Port;
use vigil_sdk::{Config, Outcome, Target, check};

#[derive(Config)]
struct Settings {
    /// Where the service listens.
    #[config(kind = "host", default = "127.0.0.1")]
    address: String,
    /// Its port.
    #[config(default = "7000")]
    listen_port: Port,
    /// How long to wait for it.
    #[config(default = "1s")]
    patience: Duration,
    /// Attempts before giving up.
    retries: Option<u8>,
    /// The service's name for itself.
    label: String,
}

#[check]
fn check(target: Target) -> Result<Outcome, Outcome> {
    let s: Settings = target.settings()?;
    Ok(Outcome::retry(format!(
        "address={},port={},patience={:?},retries={:?},label={}",
        s.address, s.listen_port.0, s.patience, s.retries, s.label
    )))
}

fn main() {}
