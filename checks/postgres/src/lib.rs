//! `builtin:postgres`: the server accepts connections, like `pg_isready`,
//! by sending a protocol 3.0 startup packet and reading the answer.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `host` | `127.0.0.1` | host name or address |
//! | `port` | `5432` | port 1-65535 |
//! | `user` | `postgres` | role named in the startup packet |
//! | `database` | the `user` | database named in the startup packet |
//! | `primary` | `false` | also require a primary: a server in recovery (a standby) is `retry`; needs `trust` authentication for `user` |
//! | `timeout` | `1s` | deadline for the whole exchange |
//!
//! `ok`: the server authenticated the role (`trust`) or asked for a
//! password, which is as far as `pg_isready` goes: it is accepting
//! connections. `retry`: refused, timed out, "the database system is
//! starting up", "... is shutting down", "... is not accepting
//! connections" (recovery), too many connections, anything that is not a
//! PostgreSQL reply. `error`: bad settings, a destination that is not
//! granted, a database that does not exist, a role that does not exist or
//! may not log in (SQLSTATE class 28), missing privileges.

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
    #[config(default = "5432")]
    port: Port,
    /// Role named in the startup packet.
    #[config(default = "postgres")]
    user: String,
    /// Database named in the startup packet; default: the `user`.
    database: Option<String>,
    /// Also require a primary: a server in recovery (a standby) is `retry`; needs `trust` authentication for `user`.
    #[config(default = "false")]
    primary: bool,
    /// Deadline for the whole exchange.
    #[config(default = "1s")]
    timeout: Duration,
}

/// Protocol 3.0.
const PROTOCOL: i32 = 196_608;

/// Largest message accepted from the server.
const MESSAGE_LIMIT: usize = 64 * 1024;

/// How much of a server's message is quoted.
const SNIPPET: usize = 200;

#[check]
fn postgres_check(target: Target) -> Result<Outcome, Outcome> {
    let settings = Settings::new(&target)?;
    // A partial message is at most MESSAGE_LIMIT bytes (parse_message
    // refuses longer ones), so twice that bounds the buffer.
    let mut session = Exchange::connect(
        &settings.host,
        settings.port,
        settings.timeout,
        2 * MESSAGE_LIMIT,
    )?;
    let address = session.address().to_string();

    session.send("the startup packet", &startup_packet(&settings))?;
    loop {
        let message = next(&mut session, "the startup packet")?;
        match message.tag {
            b'E' => return Err(judge_error(&address, &ServerError::parse(&message.body))),
            b'R' => match auth_code(&message.body) {
                Some(0) => {}
                Some(code) if settings.primary => {
                    return Err(Outcome::error(format!(
                        "{address} asks role {:?} for a password ({}), so `primary` cannot be \
                         checked: allow it `trust` for this host in pg_hba.conf, or set \
                         `primary = \"false\"`",
                        settings.user,
                        auth_name(code)
                    )));
                }
                // Asking for a password means the server accepts
                // connections: that is all pg_isready reports too.
                Some(_) => return Ok(Outcome::Ok),
                None => return Err(not_postgres(&address, &message.body)),
            },
            b'Z' => break,
            // ParameterStatus, BackendKeyData, notices, protocol
            // negotiation: nothing to judge.
            _ => {}
        }
    }

    let verdict = if settings.primary {
        session.send("a query", &query("SELECT pg_catalog.pg_is_in_recovery()"))?;
        let mut in_recovery = None;
        loop {
            let message = next(&mut session, "SELECT pg_is_in_recovery()")?;
            match message.tag {
                b'E' => return Err(judge_error(&address, &ServerError::parse(&message.body))),
                b'D' => in_recovery = first_column(&message.body),
                b'Z' => break,
                _ => {}
            }
        }
        match in_recovery.as_deref() {
            Some("f") => Outcome::Ok,
            Some("t") => Outcome::retry(format!(
                "{address} is in recovery (a standby), and `primary` is set"
            )),
            other => Outcome::retry(format!(
                "{address} answered pg_is_in_recovery() with {other:?}"
            )),
        }
    } else {
        Outcome::Ok
    };
    // Terminate; the verdict stands whether or not it arrives.
    let _ = session.send("Terminate", b"X\0\0\0\x04");
    Ok(verdict)
}

struct Settings {
    host: String,
    port: u16,
    user: String,
    database: String,
    primary: bool,
    timeout: Duration,
}

impl Settings {
    fn new(target: &Target) -> Result<Self, Outcome> {
        let config: Config = target.settings()?;
        let text = |key: &str, value: &str| -> Result<String, Outcome> {
            let value = value.trim();
            if value.is_empty() {
                return Err(Outcome::error(format!(
                    "config key `{key}` must not be empty"
                )));
            }
            if value.contains('\0') {
                return Err(Outcome::error(format!(
                    "config key `{key}` must not contain a NUL byte"
                )));
            }
            Ok(value.to_string())
        };
        let host = text("host", &config.host)?;
        let user = text("user", &config.user)?;
        let database = text("database", config.database.as_deref().unwrap_or(&user))?;
        let Port(port) = config.port;
        Ok(Settings {
            host,
            port,
            user,
            database,
            primary: config.primary,
            timeout: config.timeout,
        })
    }
}

fn startup_packet(settings: &Settings) -> Vec<u8> {
    let mut body = PROTOCOL.to_be_bytes().to_vec();
    for (key, value) in [
        ("user", settings.user.as_str()),
        ("database", settings.database.as_str()),
        ("application_name", "vigil"),
    ] {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let len = (body.len() + 4) as u32;
    let mut packet = len.to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    packet
}

fn query(sql: &str) -> Vec<u8> {
    let mut packet = vec![b'Q'];
    packet.extend_from_slice(&((sql.len() + 5) as u32).to_be_bytes());
    packet.extend_from_slice(sql.as_bytes());
    packet.push(0);
    packet
}

/// One backend message: its type byte and body.
#[derive(Debug, PartialEq, Eq)]
struct Message {
    tag: u8,
    body: Vec<u8>,
}

/// Split one message off the start of `buf`: `Ok(None)` when more bytes
/// are needed, or why it is not a backend message.
fn parse_message(buf: &[u8]) -> Result<Option<(Message, usize)>, String> {
    let Some(&tag) = buf.first() else {
        return Ok(None);
    };
    if !tag.is_ascii_alphabetic() {
        return Err(format!("unexpected message type byte 0x{tag:02x}"));
    }
    let Some(len) = buf.get(1..5) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if !(4..=MESSAGE_LIMIT).contains(&len) {
        return Err(format!("message length {len}"));
    }
    let end = 1 + len;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((
        Message {
            tag,
            body: buf[5..end].to_vec(),
        },
        end,
    )))
}

fn auth_code(body: &[u8]) -> Option<u32> {
    let bytes = body.get(..4)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn auth_name(code: u32) -> &'static str {
    match code {
        3 => "cleartext password",
        5 => "MD5",
        7 | 8 => "GSSAPI",
        9 => "SSPI",
        10 => "SASL/SCRAM",
        _ => "an authentication exchange",
    }
}

/// The first column of a DataRow, as text.
fn first_column(body: &[u8]) -> Option<String> {
    let columns = body.get(..2)?;
    if u16::from_be_bytes([columns[0], columns[1]]) == 0 {
        return None;
    }
    let len = body.get(2..6)?;
    let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    let len = usize::try_from(len).ok()?;
    let value = body.get(6..6 + len)?;
    Some(String::from_utf8_lossy(value).into_owned())
}

/// The fields of an ErrorResponse that matter here.
#[derive(Debug, Default, PartialEq, Eq)]
struct ServerError {
    code: String,
    message: String,
    detail: Option<String>,
}

impl ServerError {
    fn parse(body: &[u8]) -> ServerError {
        let mut error = ServerError::default();
        let mut rest = body;
        while let Some((&field, after)) = rest.split_first() {
            if field == 0 {
                break;
            }
            let end = after.iter().position(|&b| b == 0).unwrap_or(after.len());
            let value = String::from_utf8_lossy(&after[..end]).into_owned();
            match field {
                b'C' => error.code = value,
                b'M' => error.message = value,
                b'D' => error.detail = Some(value),
                _ => {}
            }
            rest = after.get(end + 1..).unwrap_or(&[]);
        }
        error
    }

    fn describe(&self) -> String {
        let mut text = clip(&self.message);
        if let Some(detail) = &self.detail {
            text.push_str(": ");
            text.push_str(&clip(detail));
        }
        format!("{text} (SQLSTATE {})", clip(&self.code))
    }
}

fn clip(text: &str) -> String {
    tcp::escape(text.as_bytes(), SNIPPET)
}

/// The verdict on an ErrorResponse, by SQLSTATE.
fn judge_error(address: &str, error: &ServerError) -> Outcome {
    let what = error.describe();
    let class = error.code.get(..2).unwrap_or("");
    match (error.code.as_str(), class) {
        // cannot_connect_now: starting up, shutting down, in recovery,
        // not yet consistent, hot standby disabled.
        ("57P03", _) => Outcome::retry(format!("{address} is not accepting connections: {what}")),
        // admin/crash shutdown, too many connections, out of resources,
        // connection problems: waiting may fix these.
        ("57P01" | "57P02", _) | (_, "53" | "08") => Outcome::retry(format!("{address}: {what}")),
        ("3D000", _) => Outcome::error(format!(
            "{address} refused the database: {what}; create it or set `database`"
        )),
        (_, "28") => Outcome::error(format!(
            "{address} refused the role: {what}; set `user` to a role that may log in \
             (and check pg_hba.conf)"
        )),
        ("42501", _) => Outcome::error(format!(
            "{address} refused the connection: {what}; grant CONNECT on the database \
             or set `user`"
        )),
        _ => Outcome::retry(format!("{address}: {what}")),
    }
}

fn not_postgres(address: &str, bytes: &[u8]) -> Outcome {
    Outcome::retry(format!(
        "{address} did not answer like a PostgreSQL server: \"{}\"",
        tcp::escape(bytes, SNIPPET)
    ))
}

/// The next backend message, in answer to `what`.
fn next(session: &mut Exchange, what: &str) -> Result<Message, Outcome> {
    session.receive(what, parse_message, |address, bytes, why| {
        let mut outcome = not_postgres(address, bytes);
        if let Outcome::Retry(text) = &mut outcome {
            text.push_str(&format!(" ({why})"));
        }
        outcome
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_sdk::testing::{config_error, target_with};

    fn error(config: &[(&str, &str)]) -> String {
        config_error(Settings::new, config)
    }

    fn settings(config: &[(&str, &str)]) -> Settings {
        match Settings::new(&target_with(config)) {
            Ok(s) => s,
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn defaults_follow_libpq() {
        let s = settings(&[("user", "app")]);
        assert_eq!(
            (s.port, s.user.as_str(), s.database.as_str()),
            (5432, "app", "app")
        );
        let s = settings(&[]);
        assert_eq!(s.database, "postgres");
        assert!(!s.primary);
    }

    #[test]
    fn bad_settings_name_the_key() {
        assert!(error(&[("user", "")]).contains("`user`"));
        assert!(error(&[("database", "a\0b")]).contains("`database`"));
        assert!(error(&[("port", "x")]).contains("`port`"));
        assert!(error(&[("primary", "perhaps")]).contains("`primary`"));
        assert!(error(&[("dbname", "x")]).contains("`dbname`"));
    }

    #[test]
    fn startup_packet_layout() {
        let packet = startup_packet(&settings(&[("user", "u"), ("database", "d")]));
        let expected: &[u8] =
            b"\0\0\0\x32\0\x03\0\0user\0u\0database\0d\0application_name\0vigil\0\0";
        assert_eq!(packet, expected);
        assert_eq!(packet.len(), 0x32);
        assert_eq!(query("SELECT 1"), b"Q\0\0\0\x0dSELECT 1\0");
    }

    #[test]
    fn splits_messages() {
        let bytes = b"R\0\0\0\x08\0\0\0\0Z\0\0\0\x05I";
        let (first, used) = parse_message(bytes).ok().flatten().expect("a message");
        assert_eq!(
            (first.tag, auth_code(&first.body), used),
            (b'R', Some(0), 9)
        );
        assert_eq!(parse_message(&bytes[..7]), Ok(None));
        assert!(parse_message(b"HTTP/1.1 400").is_err());
        assert!(parse_message(b"\x15\x03\x01").is_err());
        assert!(parse_message(b"E\xff\xff\xff\xff").is_err());
    }

    #[test]
    fn reads_a_data_row() {
        assert_eq!(first_column(b"\0\x01\0\0\0\x01t"), Some("t".into()));
        assert_eq!(first_column(b"\0\x01\xff\xff\xff\xff"), None);
        assert_eq!(first_column(b"\0\x01\0\0\0\x09t"), None);
    }

    fn server_error(code: &str, message: &str) -> ServerError {
        let mut body = Vec::new();
        for (field, value) in [(b'S', "FATAL"), (b'C', code), (b'M', message)] {
            body.push(field);
            body.extend_from_slice(value.as_bytes());
            body.push(0);
        }
        body.push(0);
        ServerError::parse(&body)
    }

    #[test]
    fn parses_error_fields() {
        let e = server_error("57P03", "the database system is starting up");
        assert_eq!(e.code, "57P03");
        assert_eq!(e.message, "the database system is starting up");
        assert_eq!(
            ServerError::parse(b"Cx"),
            ServerError {
                code: "x".into(),
                ..ServerError::default()
            }
        );
    }

    #[test]
    fn verdicts_by_sqlstate() {
        let a = "db:5432";
        let verdict = |code: &str, message: &str| judge_error(a, &server_error(code, message));
        assert_eq!(
            verdict("57P03", "the database system is starting up"),
            Outcome::retry(
                "db:5432 is not accepting connections: the database system is starting up \
                 (SQLSTATE 57P03)"
            )
        );
        assert!(matches!(
            verdict("53300", "sorry, too many clients already"),
            Outcome::Retry(_)
        ));
        assert!(matches!(
            verdict("3D000", "database \"nope\" does not exist"),
            Outcome::Error(m) if m.contains("`database`")
        ));
        assert!(matches!(
            verdict("28000", "role \"nope\" does not exist"),
            Outcome::Error(m) if m.contains("`user`")
        ));
        assert!(matches!(
            verdict("28P01", "password authentication failed"),
            Outcome::Error(_)
        ));
    }
}
