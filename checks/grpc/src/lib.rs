//! `builtin:grpc`: the standard `grpc.health.v1.Health/Check` call, over
//! HTTP/2 cleartext (prior knowledge) or TLS, through the host's `http2`
//! capability (WIT 0.1.1).
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `host` | `127.0.0.1` | host name or address |
//! | `port` | required | port 1-65535 |
//! | `service` | `""` | the service to ask about; `""` is the server as a whole |
//! | `tls` | `false` | TLS (`https` grant) instead of cleartext HTTP/2 (`http` grant) |
//! | `tls-ca` | | PEM file of the CA(s) to trust instead of the web roots; read through the `fs` grant (`[grants] paths`, `--allow-path`) |
//! | `tls-server-name` | | DNS name to verify the certificate for and send as SNI, when it is not `host` |
//! | `timeout` | `1s` | deadline of the whole call, also sent as `grpc-timeout` |
//! | `connect-timeout` | | deadline of the TCP and TLS connect |
//!
//! `SERVING` is `ok`; `NOT_SERVING`, `UNKNOWN`, a refused connection, a
//! timeout and any other gRPC status are `retry` (waiting may fix them);
//! `SERVICE_UNKNOWN` (gRPC status `NOT_FOUND`), an authentication
//! failure, bad settings and a denied destination are `error`. A failed
//! call's reason carries its `grpc-status` and `grpc-message`.

use std::fmt::Write as _;
use std::time::Duration;

use vigil_sdk::config::Port;
use vigil_sdk::http2::{Request, Response, TlsOptions};
use vigil_sdk::units::format_duration;
use vigil_sdk::{Outcome, Target, check, fs};

/// `[checks.*.config]`, declared once: parsed by `Settings::new` and
/// embedded as the component's config schema.
#[derive(vigil_sdk::Config)]
struct Config {
    /// Host name or address.
    #[config(default = "127.0.0.1")]
    host: String,
    /// Port 1-65535.
    port: Port,
    /// The service to ask about; "" is the server as a whole.
    #[config(default = "")]
    service: String,
    /// TLS (an `https` grant) instead of cleartext HTTP/2 (an `http` grant).
    #[config(default = "false")]
    tls: bool,
    /// PEM file of the CA(s) to trust instead of the web roots; needs a `paths` grant.
    #[config(kind = "path")]
    tls_ca: Option<String>,
    /// DNS name to verify the certificate for and send as SNI, when it is not `host`.
    tls_server_name: Option<String>,
    /// Deadline of the whole call, also sent as `grpc-timeout`.
    #[config(default = "1s")]
    timeout: Duration,
    /// Deadline of the TCP and TLS connect.
    connect_timeout: Option<Duration>,
}

/// The method every gRPC health server answers.
const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// Largest CA file read.
const MAX_CA: u32 = 256 * 1024;

#[check]
fn grpc_check(target: Target) -> Result<Outcome, Outcome> {
    let settings = Settings::new(&target)?;
    let what = format!(
        "gRPC health {}{}",
        settings.authority,
        service_label(&settings.service)
    );
    let response = settings
        .request()?
        .send()
        .map_err(|e| e.outcome(format_args!("{what}")))?;
    Ok(judge(&what, &settings, &response))
}

fn service_label(service: &str) -> String {
    if service.is_empty() {
        String::new()
    } else {
        format!(" service {service:?}")
    }
}

struct Settings {
    url: String,
    authority: String,
    service: String,
    tls: Option<TlsOptions>,
    timeout: Duration,
    connect_timeout: Option<Duration>,
}

impl Settings {
    fn new(target: &Target) -> Result<Self, Outcome> {
        let config: Config = target.settings()?;
        let host = config.host.trim();
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(Outcome::error(
                "config key `host` must be a host name or address",
            ));
        }
        let Port(port) = config.port;
        // An IPv6 literal goes in brackets in a URL.
        let authority = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let tls = if config.tls {
            let ca_pem = config
                .tls_ca
                .as_deref()
                .map(|path| {
                    fs::read(path, MAX_CA)
                        .map_err(|e| e.outcome(format_args!("config key `tls-ca`: read {path}")))
                })
                .transpose()?;
            Some(TlsOptions {
                ca_pem,
                server_name: config.tls_server_name.map(|n| n.trim().to_owned()),
            })
        } else {
            if config.tls_ca.is_some() || config.tls_server_name.is_some() {
                return Err(Outcome::error(
                    "config keys `tls-ca` and `tls-server-name` need `tls = \"true\"`",
                ));
            }
            None
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        if config.timeout.is_zero() {
            return Err(Outcome::error("config key `timeout` must be more than 0"));
        }
        Ok(Settings {
            url: format!("{scheme}://{authority}{CHECK_PATH}"),
            authority,
            service: config.service,
            tls,
            timeout: config.timeout,
            connect_timeout: config.connect_timeout,
        })
    }

    fn request(&self) -> Result<Request, Outcome> {
        let mut request = Request::new("POST", &self.url)
            .header("content-type", "application/grpc")
            .header("grpc-timeout", grpc_timeout(self.timeout))
            .body(frame(&health_check_request(&self.service)))
            .timeout(self.timeout);
        if let Some(connect) = self.connect_timeout {
            request = request.connect_timeout(connect);
        }
        if let Some(tls) = &self.tls {
            request = request.tls(tls.clone());
        }
        Ok(request)
    }
}

/// `grpc-timeout`: at most 8 digits and a unit; milliseconds, or seconds
/// past what 8 digits of milliseconds hold.
fn grpc_timeout(timeout: Duration) -> String {
    let ms = timeout.as_millis().max(1);
    if ms < 100_000_000 {
        format!("{ms}m")
    } else {
        format!("{}S", timeout.as_secs().min(99_999_999))
    }
}

/// `HealthCheckRequest { string service = 1; }` in protobuf's wire format.
fn health_check_request(service: &str) -> Vec<u8> {
    let mut message = Vec::new();
    if !service.is_empty() {
        message.push(0x0a); // field 1, length-delimited
        put_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    message
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn get_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// One gRPC message: uncompressed flag, 4-byte big-endian length, bytes.
fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// `ServingStatus` of `HealthCheckResponse { ServingStatus status = 1; }`.
#[derive(Debug, PartialEq, Eq)]
enum ServingStatus {
    Unknown,
    Serving,
    NotServing,
    ServiceUnknown,
    Other(u64),
}

/// The status in the first message of a response body.
fn parse_response(body: &[u8]) -> Result<ServingStatus, String> {
    let (&flag, rest) = body.split_first().ok_or("an empty response body")?;
    if flag != 0 {
        return Err("a compressed response (none was asked for)".to_owned());
    }
    let len = rest
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .ok_or("a truncated message header")? as usize;
    let mut message = rest.get(4..4 + len).ok_or("a truncated message")?;
    // The last occurrence of a field wins; a missing status is 0 (UNKNOWN).
    let mut status = 0u64;
    while !message.is_empty() {
        let (key, used) = get_varint(message).ok_or("a malformed message")?;
        message = &message[used..];
        match key & 7 {
            0 => {
                let (value, used) = get_varint(message).ok_or("a malformed message")?;
                message = &message[used..];
                if key >> 3 == 1 {
                    status = value;
                }
            }
            1 => message = message.get(8..).ok_or("a malformed message")?,
            5 => message = message.get(4..).ok_or("a malformed message")?,
            2 => {
                let (len, used) = get_varint(message).ok_or("a malformed message")?;
                message = message
                    .get(used..)
                    .and_then(|m| m.get(len as usize..))
                    .ok_or("a malformed message")?;
            }
            _ => return Err("a malformed message".to_owned()),
        }
    }
    Ok(match status {
        0 => ServingStatus::Unknown,
        1 => ServingStatus::Serving,
        2 => ServingStatus::NotServing,
        3 => ServingStatus::ServiceUnknown,
        other => ServingStatus::Other(other),
    })
}

/// gRPC status codes by number, for reasons.
const CODES: &[&str] = &[
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// `grpc-message` is percent-encoded (gRPC over HTTP/2).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a reply's statuses mean (see the module's table).
fn judge(what: &str, settings: &Settings, response: &Response) -> Outcome {
    if response.status != 200 {
        return Outcome::retry(format!(
            "{what}: HTTP status {} (not a gRPC reply)",
            response.status
        ));
    }
    // A trailers-only reply (an error without a body) carries the status
    // in its headers.
    let status = response
        .trailer("grpc-status")
        .or_else(|| response.header("grpc-status"));
    let message = response
        .trailer("grpc-message")
        .or_else(|| response.header("grpc-message"))
        .map(percent_decode)
        .filter(|m| !m.is_empty());
    let Some(status) = status else {
        return Outcome::retry(format!("{what}: no grpc-status in the reply"));
    };
    let code: Option<usize> = status.trim().parse().ok();
    if code != Some(0) {
        let name = code.and_then(|c| CODES.get(c)).copied().unwrap_or("?");
        let mut reason = format!("{what}: grpc-status {} {name}", status.trim());
        if let Some(message) = &message {
            let _ = write!(reason, ": {message}");
        }
        return match code {
            // Check's answer for a service the server does not know.
            Some(5) => Outcome::error(format!("{reason} (SERVICE_UNKNOWN)")),
            Some(7 | 16) => Outcome::error(reason),
            _ => Outcome::retry(reason),
        };
    }
    match parse_response(&response.body) {
        Ok(ServingStatus::Serving) => Outcome::Ok,
        Ok(ServingStatus::NotServing) => Outcome::retry(format!("{what}: NOT_SERVING")),
        Ok(ServingStatus::Unknown) => Outcome::retry(format!("{what}: UNKNOWN")),
        Ok(ServingStatus::ServiceUnknown) => Outcome::error(format!("{what}: SERVICE_UNKNOWN")),
        Ok(ServingStatus::Other(n)) => {
            Outcome::retry(format!("{what}: unknown serving status {n}"))
        }
        Err(why) => Outcome::retry(format!(
            "{what}: grpc-status 0 but {why} (within {})",
            format_duration(settings.timeout)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_encoding() {
        assert_eq!(frame(&health_check_request("")), [0, 0, 0, 0, 0]);
        assert_eq!(
            frame(&health_check_request("web")),
            [0, 0, 0, 0, 5, 0x0a, 3, b'w', b'e', b'b']
        );
        let long = "x".repeat(200);
        let message = health_check_request(&long);
        assert_eq!(&message[..3], [0x0a, 0xc8, 0x01]);
    }

    #[test]
    fn response_decoding() {
        assert_eq!(
            parse_response(&frame(&[0x08, 1])),
            Ok(ServingStatus::Serving)
        );
        assert_eq!(
            parse_response(&frame(&[0x08, 2])),
            Ok(ServingStatus::NotServing)
        );
        assert_eq!(parse_response(&frame(&[])), Ok(ServingStatus::Unknown));
        assert_eq!(
            parse_response(&frame(&[0x12, 1, b'x', 0x08, 3])),
            Ok(ServingStatus::ServiceUnknown)
        );
        assert!(parse_response(&[0, 0, 0, 0, 9, 0x08]).is_err());
        assert!(parse_response(&[]).is_err());
        assert!(parse_response(&frame(&[0x08])).is_err());
    }

    #[test]
    fn timeouts_and_messages() {
        assert_eq!(grpc_timeout(Duration::from_millis(1500)), "1500m");
        assert_eq!(grpc_timeout(Duration::ZERO), "1m");
        assert_eq!(grpc_timeout(Duration::from_secs(200_000)), "200000S");
        assert_eq!(percent_decode("not%20found%3A x%"), "not found: x%");
    }
}
