//! `builtin:tcp`: connect, optionally send a probe and look for a reply.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `host` | `127.0.0.1` | host name or address |
//! | `port` | required | port 1-65535 |
//! | `send` | | bytes to send after connecting; `\r` `\n` `\t` `\0` `\\` `\xNN` escapes |
//! | `expect` | | text the reply must contain (same escapes); read until found, the peer closes, or the timeout |
//! | `timeout` | `1s` | deadline for the whole exchange |
//!
//! Refused, timed out and wrong replies are `retry`; bad settings and a
//! denied destination are `error`.

use std::time::{Duration, Instant};

use vigil_sdk::config::Port;
use vigil_sdk::tcp::{self, Connection, ReadEnd};
use vigil_sdk::units::format_duration;
use vigil_sdk::{Outcome, Target, check};

/// `[checks.*.config]`, declared once: parsed by `Settings::new` and
/// embedded as the component's config schema.
#[derive(vigil_sdk::Config)]
struct Config {
    /// Host name or address.
    #[config(kind = "host", default = "127.0.0.1")]
    host: String,
    /// Port 1-65535.
    port: Port,
    /// Bytes to send after connecting; `\r` `\n` `\t` `\0` `\\` `\xNN` escapes.
    send: Option<String>,
    /// Text the reply must contain (same escapes); read until found, the peer closes, or the timeout.
    expect: Option<String>,
    /// Deadline for the whole exchange.
    #[config(default = "1s")]
    timeout: Duration,
}

/// Most bytes read while looking for `expect`.
const REPLY_LIMIT: usize = 64 * 1024;

/// How much of a reply a message quotes.
const SNIPPET: usize = 120;

#[check]
fn tcp_check(target: Target) -> Result<Outcome, Outcome> {
    let settings = Settings::new(&target)?;
    let deadline = Instant::now() + settings.timeout;
    let left = || deadline.saturating_duration_since(Instant::now());
    let address = format!("{}:{}", settings.host, settings.port);

    let conn = Connection::connect(&settings.host, settings.port, settings.timeout)
        .map_err(|e| e.outcome(format_args!("connect {address}")))?;
    if let Some(data) = &settings.send {
        conn.write_all(data, left())
            .map_err(|e| e.outcome(format_args!("send to {address}")))?;
    }
    let Some(expect) = &settings.expect else {
        return Ok(Outcome::Ok);
    };
    let (reply, end) = conn
        .read_until(expect, REPLY_LIMIT, left())
        .map_err(|e| e.outcome(format_args!("read from {address}")))?;
    Ok(judge(&address, expect, &reply, end, settings.timeout))
}

fn judge(address: &str, expect: &[u8], reply: &[u8], end: ReadEnd, timeout: Duration) -> Outcome {
    let wanted = tcp::escape(expect, SNIPPET);
    let got = tcp::escape(reply, SNIPPET);
    match end {
        ReadEnd::Found => Outcome::Ok,
        ReadEnd::Closed if reply.is_empty() => Outcome::retry(format!(
            "{address} closed the connection without replying (expected \"{wanted}\")"
        )),
        ReadEnd::Closed => Outcome::retry(format!(
            "{address} replied \"{got}\" and closed, expected \"{wanted}\""
        )),
        ReadEnd::TimedOut if reply.is_empty() => Outcome::retry(format!(
            "{address} sent nothing within {} (expected \"{wanted}\")",
            format_duration(timeout)
        )),
        ReadEnd::TimedOut => Outcome::retry(format!(
            "{address} replied \"{got}\" but no \"{wanted}\" within {}",
            format_duration(timeout)
        )),
        ReadEnd::Limit => Outcome::retry(format!(
            "{address} sent {} bytes without \"{wanted}\": \"{got}\"",
            reply.len()
        )),
    }
}

struct Settings {
    host: String,
    port: u16,
    send: Option<Vec<u8>>,
    expect: Option<Vec<u8>>,
    timeout: Duration,
}

impl Settings {
    fn new(target: &Target) -> Result<Self, Outcome> {
        let config: Config = target.settings()?;
        let host = config.host.trim();
        if host.is_empty() {
            return Err(Outcome::error("config key `host` must not be empty"));
        }
        let Port(port) = config.port;
        let escaped = |key: &str, text: Option<&str>| -> Result<Option<Vec<u8>>, Outcome> {
            text.map(|text| {
                tcp::unescape(text)
                    .map_err(|why| Outcome::error(format!("config key `{key}`: {why}")))
            })
            .transpose()
        };
        let expect = escaped("expect", config.expect.as_deref())?;
        if expect.as_ref().is_some_and(Vec::is_empty) {
            return Err(Outcome::error("config key `expect` must not be empty"));
        }
        Ok(Settings {
            host: host.to_string(),
            port,
            send: escaped("send", config.send.as_deref())?,
            expect,
            timeout: config.timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_sdk::testing::{config_error, target_with};

    fn error(config: &[(&str, &str)]) -> String {
        config_error(Settings::new, config)
    }

    #[test]
    fn settings() {
        let s = Settings::new(&target_with(&[
            ("port", "6379"),
            ("send", r"PING\r\n"),
            ("expect", "+PONG"),
            ("timeout", "250ms"),
        ]));
        let s = s.ok();
        assert_eq!(s.as_ref().map(|s| s.host.as_str()), Some("127.0.0.1"));
        assert_eq!(s.as_ref().map(|s| s.port), Some(6379));
        assert_eq!(
            s.as_ref().and_then(|s| s.send.clone()),
            Some(b"PING\r\n".to_vec())
        );
        assert_eq!(
            s.as_ref().map(|s| s.timeout),
            Some(Duration::from_millis(250))
        );
    }

    #[test]
    fn bad_settings_name_the_key() {
        assert_eq!(error(&[]), "config key `port` is required");
        assert!(error(&[("port", "99999")]).contains("`port`"));
        assert!(error(&[("port", "1"), ("send", r"\x4")]).contains("`send`"));
        assert!(error(&[("port", "1"), ("expect", "")]).contains("`expect`"));
        assert!(error(&[("port", "1"), ("timeout", "1 fortnight")]).contains("`timeout`"));
        assert!(error(&[("port", "1"), ("hots", "db")]).contains("`hots`"));
    }

    #[test]
    fn verdicts() {
        let t = Duration::from_secs(1);
        assert!(judge("a:1", b"+PONG", b"+PONG\r\n", ReadEnd::Found, t).is_ok());
        assert_eq!(
            judge("a:1", b"+PONG", b"-ERR\r\n", ReadEnd::Closed, t),
            Outcome::retry(r#"a:1 replied "-ERR\r\n" and closed, expected "+PONG""#)
        );
        assert_eq!(
            judge("a:1", b"+PONG", b"", ReadEnd::TimedOut, t),
            Outcome::retry(r#"a:1 sent nothing within 1s (expected "+PONG")"#)
        );
    }
}
