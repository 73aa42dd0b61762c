//! Connects to config `host` (default 127.0.0.1) and `port`, sends config
//! `send` (escapes allowed), reads one reply: logs it and answers ok, or an
//! error with the error code's debug text.

use std::time::Duration;

use vigil_sdk::config::Port;
use vigil_sdk::tcp::{self, Connection};
use vigil_sdk::{ErrorCode, Outcome, Target, check};

const TIMEOUT: Duration = Duration::from_secs(2);

#[check]
fn check(target: Target) -> Result<Outcome, Outcome> {
    let host = target.config("host").unwrap_or("127.0.0.1");
    let Port(port) = target.parse_required("port")?;
    let send = tcp::unescape(target.config("send").unwrap_or(""))
        .map_err(|why| Outcome::error(format!("config key `send`: {why}")))?;
    match ping(host, port, &send) {
        Ok(reply) => {
            vigil_sdk::info!("reply: {}", tcp::escape(&reply, 256));
            Ok(Outcome::Ok)
        }
        Err(code) => Ok(Outcome::error(format!("{code:?}"))),
    }
}

fn ping(host: &str, port: u16, send: &[u8]) -> Result<Vec<u8>, ErrorCode> {
    let conn = Connection::connect(host, port, TIMEOUT)?;
    if !send.is_empty() {
        conn.write_all(send, TIMEOUT)?;
    }
    conn.read(4096, TIMEOUT)
}

fn main() {}
