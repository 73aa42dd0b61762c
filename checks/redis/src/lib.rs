//! `builtin:redis`: the server answers `PING` with `PONG`, and a replica
//! has a working link to its master.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `host` | `127.0.0.1` | host name or address |
//! | `port` | `6379` | port 1-65535 |
//! | `password` | | sent with `AUTH` before anything else |
//! | `user` | | ACL user for `AUTH` (needs `password`) |
//! | `replica-link` | `true` | ask `INFO replication`: a replica whose master link is down, or that is still syncing, is `retry` |
//! | `timeout` | `1s` | deadline for the whole exchange |
//!
//! `retry`: refused, timed out, `LOADING` (the dataset is being loaded),
//! `MASTERDOWN`, `BUSY`, a replica without its master link, anything that
//! is not a Redis reply. `error`: bad settings, a destination that is not
//! granted, and authentication failures (`NOAUTH`, `WRONGPASS`, a password
//! the server does not expect, `NOPERM`), which waiting cannot fix.

use std::time::Duration;

use vigil_sdk::config::Port;
use vigil_sdk::tcp::{self, Exchange};
use vigil_sdk::{Outcome, Target, check};

/// `[checks.*.config]`, declared once: parsed by `Settings::new` and
/// embedded as the component's config schema.
#[derive(vigil_sdk::Config)]
struct Config {
    /// Host name or address.
    #[config(kind = "host", default = "127.0.0.1")]
    host: String,
    /// Port 1-65535.
    #[config(default = "6379")]
    port: Port,
    /// Sent with `AUTH` before anything else.
    password: Option<String>,
    /// ACL user for `AUTH` (needs `password`).
    user: Option<String>,
    /// Ask `INFO replication`: a replica whose master link is down, or that is still syncing, is `retry`.
    #[config(default = "true")]
    replica_link: bool,
    /// Deadline for the whole exchange.
    #[config(default = "1s")]
    timeout: Duration,
}

/// Largest reply accepted; `INFO replication` is well under 1 KiB.
const REPLY_LIMIT: usize = 256 * 1024;

/// Deepest nesting of arrays accepted in a reply.
const MAX_DEPTH: usize = 4;

/// How much of a server's message is quoted.
const SNIPPET: usize = 160;

#[check]
fn redis_check(target: Target) -> Result<Outcome, Outcome> {
    let settings = Settings::new(&target)?;
    let mut session =
        Exchange::connect(&settings.host, settings.port, settings.timeout, REPLY_LIMIT)?;
    let address = session.address().to_string();

    if let Some(password) = &settings.password {
        let mut args: Vec<&[u8]> = vec![b"AUTH"];
        if let Some(user) = &settings.user {
            args.push(user.as_bytes());
        }
        args.push(password.as_bytes());
        let reply = command(&mut session, "AUTH", &args)?;
        judge_auth(&address, &reply)?;
    }

    let reply = command(&mut session, "PING", &[b"PING"])?;
    judge_ping(&address, &reply)?;

    if settings.replica_link {
        let reply = command(&mut session, "INFO replication", &[b"INFO", b"replication"])?;
        return Ok(judge_replication(&address, &reply));
    }
    Ok(Outcome::Ok)
}

struct Settings {
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<String>,
    replica_link: bool,
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
        let non_empty = |key: &str, value: Option<String>| match value.as_deref() {
            Some("") => Err(Outcome::error(format!(
                "config key `{key}` must not be empty (leave it out instead)"
            ))),
            _ => Ok(value),
        };
        let user = non_empty("user", config.user)?;
        let password = non_empty("password", config.password)?;
        if user.is_some() && password.is_none() {
            return Err(Outcome::error(
                "config key `user` needs `password` as well (AUTH takes both)",
            ));
        }
        Ok(Settings {
            host: host.to_string(),
            port,
            user,
            password,
            replica_link: config.replica_link,
            timeout: config.timeout,
        })
    }
}

/// Send one command as a RESP array and read its reply. `name` is what
/// messages call the command (never its arguments: they may hold a
/// password).
fn command(session: &mut Exchange, name: &str, args: &[&[u8]]) -> Result<Reply, Outcome> {
    session.send(name, &encode(args))?;
    session.receive(
        name,
        |buffer| parse(buffer, 0),
        |address, bytes, why| {
            Outcome::retry(format!(
                "{address} answered {name} with something that is not a Redis reply \
                 ({why}): \"{}\"",
                tcp::escape(bytes, SNIPPET)
            ))
        },
    )
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    /// `+OK`
    Status(String),
    /// `-ERR message`
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$5\r\nhello` (`None` for `$-1`)
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n...` (`None` for `*-1`)
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// A short description for messages.
    fn describe(&self) -> String {
        match self {
            Reply::Status(s) => format!("+{}", clip(s)),
            Reply::Error(s) => format!("-{}", clip(s)),
            Reply::Integer(n) => format!(":{n}"),
            Reply::Bulk(None) => "a nil bulk string".into(),
            Reply::Bulk(Some(bytes)) => format!("\"{}\"", tcp::escape(bytes, SNIPPET)),
            Reply::Array(None) => "a nil array".into(),
            Reply::Array(Some(items)) => format!("an array of {} items", items.len()),
        }
    }
}

fn clip(text: &str) -> String {
    tcp::escape(text.as_bytes(), SNIPPET)
}

/// A command as a RESP array of bulk strings (safe for any bytes).
fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Parse one reply at the start of `buf`: `Ok(None)` when more bytes are
/// needed, `Ok(Some((reply, bytes used)))`, or why it is not RESP.
fn parse(buf: &[u8], depth: usize) -> Result<Option<(Reply, usize)>, String> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return match buf.first() {
            Some(b'+' | b'-' | b':' | b'$' | b'*') | None => Ok(None),
            Some(&other) => Err(format!("unexpected first byte {:?}", other as char)),
        };
    };
    if end == 0 {
        return Err("an empty line".into());
    }
    let line = std::str::from_utf8(&buf[1..end]).map_err(|_| "a line that is not UTF-8")?;
    let after = end + 2;
    let number = || {
        line.parse::<i64>()
            .map_err(|_| format!("bad length or number {line:?}"))
    };
    match buf[0] {
        b'+' => Ok(Some((Reply::Status(line.to_string()), after))),
        b'-' => Ok(Some((Reply::Error(line.to_string()), after))),
        b':' => Ok(Some((Reply::Integer(number()?), after))),
        b'$' => {
            let len = number()?;
            if len < 0 {
                return Ok(Some((Reply::Bulk(None), after)));
            }
            let len = usize::try_from(len).map_err(|_| "bulk length out of range")?;
            if len > REPLY_LIMIT {
                return Err(format!("bulk string of {len} bytes"));
            }
            if buf.len() < after + len + 2 {
                return Ok(None);
            }
            if &buf[after + len..after + len + 2] != b"\r\n" {
                return Err("bulk string without its CRLF".into());
            }
            let data = buf[after..after + len].to_vec();
            Ok(Some((Reply::Bulk(Some(data)), after + len + 2)))
        }
        b'*' => {
            let count = number()?;
            if count < 0 {
                return Ok(Some((Reply::Array(None), after)));
            }
            if depth >= MAX_DEPTH || count > 1024 {
                return Err("array too deep or too long".into());
            }
            let mut items = Vec::new();
            let mut used = after;
            for _ in 0..count {
                match parse(&buf[used..], depth + 1)? {
                    Some((item, n)) => {
                        items.push(item);
                        used += n;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Reply::Array(Some(items)), used)))
        }
        other => Err(format!("unexpected first byte {:?}", other as char)),
    }
}

/// The verdict on an error reply, by its code (the first word).
fn judge_error(address: &str, command: &str, message: &str) -> Outcome {
    let code = message.split_whitespace().next().unwrap_or("");
    let quoted = clip(message);
    let lower = message.to_ascii_lowercase();
    match code {
        "NOAUTH" => Outcome::error(format!(
            "{address} requires authentication: set `password` (and `user` for an ACL user); \
             it answered {command} with: {quoted}"
        )),
        "WRONGPASS" => Outcome::error(format!(
            "{address} rejected the credentials in `user`/`password`: {quoted}"
        )),
        "NOPERM" => Outcome::error(format!(
            "{address}: the user may not run {command}: {quoted}"
        )),
        "ERR" if lower.contains("invalid password") => Outcome::error(format!(
            "{address} rejected the password in `password`: {quoted}"
        )),
        "ERR" if lower.contains("without any password configured") => Outcome::error(format!(
            "{address} has no password set, but `password` is given: remove it or set \
             requirepass on the server ({quoted})"
        )),
        "LOADING" => Outcome::retry(format!(
            "{address} is loading its dataset into memory: {quoted}"
        )),
        "MASTERDOWN" => Outcome::retry(format!(
            "{address} is a replica without its master: {quoted}"
        )),
        "BUSY" => Outcome::retry(format!("{address} is busy: {quoted}")),
        _ => Outcome::retry(format!("{address} answered {command} with -{quoted}")),
    }
}

fn judge_auth(address: &str, reply: &Reply) -> Result<(), Outcome> {
    match reply {
        Reply::Status(s) if s == "OK" => Ok(()),
        Reply::Error(message) => Err(judge_error(address, "AUTH", message)),
        other => Err(Outcome::retry(format!(
            "{address} answered AUTH with {}, expected +OK",
            other.describe()
        ))),
    }
}

fn judge_ping(address: &str, reply: &Reply) -> Result<(), Outcome> {
    match reply {
        Reply::Status(s) if s == "PONG" => Ok(()),
        Reply::Error(message) => Err(judge_error(address, "PING", message)),
        other => Err(Outcome::retry(format!(
            "{address} answered PING with {}, expected +PONG",
            other.describe()
        ))),
    }
}

/// `role:master` is fine; a replica needs `master_link_status:up` and no
/// sync in progress.
fn judge_replication(address: &str, reply: &Reply) -> Outcome {
    let text = match reply {
        Reply::Bulk(Some(bytes)) => String::from_utf8_lossy(bytes),
        Reply::Error(message) if message.starts_with("NOPERM") => {
            return Outcome::error(format!(
                "{address}: the user may not run INFO (grant it +info, or set \
                 `replica-link = \"false\"`): {}",
                clip(message)
            ));
        }
        Reply::Error(message) => return judge_error(address, "INFO replication", message),
        other => {
            return Outcome::retry(format!(
                "{address} answered INFO replication with {}",
                other.describe()
            ));
        }
    };
    let field = |name: &str| {
        text.lines()
            .filter_map(|line| line.trim_end().split_once(':'))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_string())
    };
    match field("role").as_deref() {
        Some("master") => Outcome::Ok,
        Some("slave" | "replica") => {
            let master = format!(
                "{}:{}",
                field("master_host").unwrap_or_else(|| "?".into()),
                field("master_port").unwrap_or_else(|| "?".into())
            );
            match field("master_link_status").as_deref() {
                Some("up") if field("master_sync_in_progress").as_deref() == Some("1") => {
                    Outcome::retry(format!(
                        "{address} is a replica still syncing with its master {master}"
                    ))
                }
                Some("up") => Outcome::Ok,
                status => {
                    let since = field("master_link_down_since_seconds")
                        .filter(|s| s != "-1")
                        .map(|s| format!(" for {s}s"))
                        .unwrap_or_default();
                    Outcome::retry(format!(
                        "{address} is a replica whose link to its master {master} is {}{since}",
                        status.unwrap_or("unknown")
                    ))
                }
            }
        }
        Some(other) => Outcome::retry(format!(
            "{address} reports an unknown role {:?} in INFO replication",
            clip(other)
        )),
        None => Outcome::retry(format!(
            "{address} sent INFO replication without a role: \"{}\"",
            clip(&text)
        )),
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
        let s = Settings::new(&target_with(&[])).ok();
        assert_eq!(s.as_ref().map(|s| s.port), Some(6379));
        assert_eq!(s.as_ref().map(|s| s.replica_link), Some(true));
        let s = Settings::new(&target_with(&[
            ("port", "7000"),
            ("password", "s3cret"),
            ("user", "probe"),
            ("replica-link", "no"),
        ]))
        .ok();
        assert_eq!(s.as_ref().map(|s| s.port), Some(7000));
        assert_eq!(
            s.as_ref().and_then(|s| s.user.clone()),
            Some("probe".into())
        );
        assert_eq!(s.as_ref().map(|s| s.replica_link), Some(false));
    }

    #[test]
    fn bad_settings_name_the_key() {
        assert!(error(&[("port", "0")]).contains("`port`"));
        assert!(error(&[("password", "")]).contains("`password`"));
        assert!(error(&[("user", "probe")]).contains("`password`"));
        assert!(error(&[("replica-link", "maybe")]).contains("`replica-link`"));
        assert!(error(&[("pasword", "x")]).contains("`pasword`"));
    }

    #[test]
    fn encodes_commands_as_arrays() {
        assert_eq!(encode(&[b"PING"]), b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(
            encode(&[b"AUTH", b"a b"]),
            b"*2\r\n$4\r\nAUTH\r\n$3\r\na b\r\n"
        );
    }

    #[test]
    fn parses_replies() {
        assert_eq!(
            parse(b"+PONG\r\n", 0),
            Ok(Some((Reply::Status("PONG".into()), 7)))
        );
        assert_eq!(parse(b"+PON", 0), Ok(None));
        assert_eq!(parse(b"$5\r\nhel", 0), Ok(None));
        assert_eq!(
            parse(b"$5\r\nhello\r\n+", 0),
            Ok(Some((Reply::Bulk(Some(b"hello".to_vec())), 11)))
        );
        assert_eq!(parse(b"$-1\r\n", 0), Ok(Some((Reply::Bulk(None), 5))));
        assert_eq!(
            parse(b"*2\r\n:1\r\n-ERR x\r\n", 0),
            Ok(Some((
                Reply::Array(Some(vec![Reply::Integer(1), Reply::Error("ERR x".into())])),
                16
            )))
        );
        assert!(parse(b"HTTP/1.1 400 Bad Request\r\n", 0).is_err());
        assert!(parse(b"\r\n+OK\r\n", 0).is_err());
        assert!(parse(b"$1\r\n\r\n\r\n", 0).is_err());
        assert!(parse(b"$99999999\r\n", 0).is_err());
        assert!(parse(b"$3\r\nabcXY", 0).is_err());
        assert!(parse(b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", 0).is_err());
    }

    #[test]
    fn ping_verdicts() {
        let a = "127.0.0.1:6379";
        assert_eq!(judge_ping(a, &Reply::Status("PONG".into())), Ok(()));
        let loading = Reply::Error("LOADING Redis is loading the dataset in memory".into());
        assert!(matches!(judge_ping(a, &loading), Err(Outcome::Retry(m)) if m.contains("loading")));
        let noauth = Reply::Error("NOAUTH Authentication required.".into());
        assert!(
            matches!(judge_ping(a, &noauth), Err(Outcome::Error(m)) if m.contains("set `password`"))
        );
        let other = Reply::Bulk(Some(b"hi".to_vec()));
        assert!(matches!(judge_ping(a, &other), Err(Outcome::Retry(_))));
    }

    #[test]
    fn auth_verdicts() {
        let a = "db:6379";
        assert_eq!(judge_auth(a, &Reply::Status("OK".into())), Ok(()));
        for message in [
            "WRONGPASS invalid username-password pair or user is disabled.",
            "ERR invalid password",
            "ERR AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?",
        ] {
            assert!(
                matches!(
                    judge_auth(a, &Reply::Error(message.into())),
                    Err(Outcome::Error(_))
                ),
                "{message}"
            );
        }
    }

    #[test]
    fn replication_verdicts() {
        let a = "r:6380";
        let info = |text: &str| Reply::Bulk(Some(text.as_bytes().to_vec()));
        assert!(judge_replication(a, &info("# Replication\r\nrole:master\r\n")).is_ok());
        assert!(
            judge_replication(
                a,
                &info("role:slave\r\nmaster_host:m\r\nmaster_port:1\r\nmaster_link_status:up\r\nmaster_sync_in_progress:0\r\n")
            )
            .is_ok()
        );
        assert_eq!(
            judge_replication(
                a,
                &info(
                    "role:slave\r\nmaster_host:m\r\nmaster_port:1\r\nmaster_link_status:down\r\nmaster_link_down_since_seconds:-1\r\n"
                )
            ),
            Outcome::retry("r:6380 is a replica whose link to its master m:1 is down")
        );
        assert!(matches!(
            judge_replication(a, &info("role:slave\r\nmaster_link_status:up\r\nmaster_sync_in_progress:1\r\n")),
            Outcome::Retry(m) if m.contains("syncing")
        ));
        assert!(matches!(
            judge_replication(a, &Reply::Error("NOPERM no".into())),
            Outcome::Error(m) if m.contains("replica-link")
        ));
    }
}
