//! Parks inside the host: connects to config `host` (default 127.0.0.1)
//! and `port` with a one-minute timeout, then waits a minute for a reply
//! that never comes. Only the check's wall-clock deadline ends it.

use std::time::Duration;

use vigil_sdk::config::Port;
use vigil_sdk::tcp::Connection;
use vigil_sdk::{Outcome, Target, check};

const LONG: Duration = Duration::from_secs(60);

#[check]
fn check(target: Target) -> Result<Outcome, Outcome> {
    let host = target.config("host").unwrap_or("127.0.0.1");
    let Port(port) = target.parse_required("port")?;
    let conn = Connection::connect(host, port, LONG)
        .map_err(|code| Outcome::error(format!("{code:?}")))?;
    match conn.read(1, LONG) {
        Ok(reply) => Ok(Outcome::retry(format!("got {} bytes", reply.len()))),
        Err(code) => Ok(Outcome::error(format!("{code:?}"))),
    }
}

fn main() {}
