//! `vigil run --daemon`'s checker: ask the daemon's control socket
//! (`GET /v1/status`) whether it is up.
//!
//! Up means: the socket answers with the daemon's own pid, and every
//! service that has a startup gate reports `startup_passed`. A service in
//! state `failed` that never passed its gate is an error (it gave up);
//! anything else is "not yet". The request is plain HTTP/1.1 with
//! `Connection: close`, so no client library is needed for one GET.

use std::path::Path;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Health;

/// File name of the control socket inside the state directory (the
/// control module owns it; the name is part of the contract).
pub const SOCKET: &str = "control.sock";

#[derive(Debug, Deserialize)]
struct Report {
    pid: u32,
    #[serde(default)]
    services: Vec<ServiceStatus>,
}

#[derive(Debug, Deserialize)]
struct ServiceStatus {
    name: String,
    state: String,
    #[serde(default)]
    startup_passed: bool,
    #[serde(default)]
    last_reason: Option<String>,
}

/// One probe of the daemon `pid` through `socket`.
pub async fn probe(socket: &Path, pid: u32) -> Health {
    let body = match get_status(socket).await {
        Ok(body) => body,
        Err(e) => return Health::Retry(format!("control socket {}: {e}", socket.display())),
    };
    judge(&body, pid)
}

fn judge(body: &str, pid: u32) -> Health {
    let report: Report = match serde_json::from_str(body) {
        Ok(r) => r,
        Err(e) => return Health::Retry(format!("unexpected status answer: {e}")),
    };
    if report.pid != pid {
        return Health::Retry(format!(
            "the control socket is answered by pid {}, not the daemon (pid {pid})",
            report.pid
        ));
    }
    let mut waiting = Vec::new();
    for s in &report.services {
        if s.startup_passed {
            continue;
        }
        if s.state == "failed" {
            return Health::Error(format!(
                "service {} failed to start{}",
                s.name,
                s.last_reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ));
        }
        waiting.push(format!("{} ({})", s.name, s.state));
    }
    if waiting.is_empty() {
        Health::Ok
    } else {
        Health::Retry(format!("starting: {}", waiting.join(", ")))
    }
}

async fn get_status(socket: &Path) -> std::io::Result<String> {
    let mut stream = tokio::net::UnixStream::connect(socket).await?;
    stream
        .write_all(b"GET /v1/status HTTP/1.1\r\nHost: vigil\r\nConnection: close\r\n\r\n")
        .await?;
    let mut raw = Vec::new();
    stream.take(4 << 20).read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("truncated HTTP answer"))?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200") {
        return Err(std::io::Error::other(format!("answered `{status}`")));
    }
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    Ok(if chunked {
        dechunk(body)
    } else {
        body.to_string()
    })
}

/// The payload of a chunked body (sizes in hex, then data).
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_only_when_the_daemon_answers_and_every_gate_passed() {
        let body = |pid: u32, a: (&str, bool), b: (&str, bool)| {
            format!(
                r#"{{"pid":{pid},"services":[{{"name":"a","state":"{}","startup_passed":{}}},{{"name":"b","state":"{}","startup_passed":{},"last_reason":"boom"}}]}}"#,
                a.0, a.1, b.0, b.1
            )
        };
        assert_eq!(
            judge(&body(7, ("ready", true), ("running", true)), 7),
            Health::Ok
        );
        assert!(matches!(
            judge(&body(8, ("ready", true), ("ready", true)), 7),
            Health::Retry(r) if r.contains("pid 8")
        ));
        assert!(matches!(
            judge(&body(7, ("ready", true), ("starting", false)), 7),
            Health::Retry(r) if r.contains("b (starting)")
        ));
        assert_eq!(
            judge(&body(7, ("ready", true), ("failed", false)), 7),
            Health::Error("service b failed to start: boom".into())
        );
        assert_eq!(dechunk("5\r\nhello\r\n3\r\n wo\r\n0\r\n\r\n"), "hello wo");
    }
}
