//! A client of the control socket: HTTP/1.1 over a Unix socket, one
//! connection per request.
//!
//! ```no_run
//! # async fn demo() -> Result<(), vigil::control::ControlError> {
//! let client = vigil::control::Client::new("/var/lib/vigil/control.sock");
//! for service in client.status().await?.services {
//!     println!("{} {}", service.name, service.state);
//! }
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;

use super::api::{
    CheckHistory, ErrorBody, JournalQuery, ReloadReply, ServiceStatus, ShutdownProgress,
    StatusReport,
};
use crate::journal::Line;
use crate::supervisor::replicas::Scaled;

/// Errors talking to a running vigil.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Nothing listens on the socket (no file, or a stale one).
    #[error("no vigil is running (no control socket at {})", .socket.display())]
    NotRunning { socket: PathBuf },
    #[error("cannot connect to the control socket {}: {source}", .socket.display())]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("control socket {}: {source}", .socket.display())]
    Http {
        socket: PathBuf,
        #[source]
        source: hyper::Error,
    },
    /// The service does not exist; `known` lists those that do.
    #[error("{message}")]
    UnknownService {
        name: String,
        known: Vec<String>,
        message: String,
    },
    /// The server refused the request (e.g. a reload of an invalid directory).
    #[error("{message}")]
    Refused { status: u16, message: String },
    #[error("unexpected answer on the control socket {}: {reason}", .socket.display())]
    Protocol { socket: PathBuf, reason: String },
}

/// The result of start, stop or restart.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The service; for a replicated service's name, its first replica.
    pub service: ServiceStatus,
    /// For a replicated service's name (`web`): every replica, by index
    /// (`service` is the first). Empty for one service.
    pub replicas: Vec<ServiceStatus>,
    /// False when the service had not settled (stopped, or a new child
    /// spawned) within its stop grace; `service` is then where it was.
    pub settled: bool,
}

/// Talks to the vigil whose control socket is at a path.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        Client {
            socket: socket.into(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Every service.
    pub async fn status(&self) -> Result<StatusReport, ControlError> {
        self.json(Method::GET, "/v1/status").await.map(|(v, _)| v)
    }

    /// Every service, as the JSON the server sent: a newer server's
    /// fields (CPU, memory, sockets) are kept for views that show them.
    pub async fn status_value(&self) -> Result<serde_json::Value, ControlError> {
        self.json(Method::GET, "/v1/status").await.map(|(v, _)| v)
    }

    /// One service.
    pub async fn service_status(&self, name: &str) -> Result<ServiceStatus, ControlError> {
        let path = format!("/v1/status/{}", encode(name));
        self.json(Method::GET, &path).await.map(|(v, _)| v)
    }

    /// One service, or every replica of a replicated service's name
    /// (`web`), by index.
    pub async fn statuses(&self, name: &str) -> Result<Vec<ServiceStatus>, ControlError> {
        let path = format!("/v1/status/{}", encode(name));
        let (answer, _) = self.json::<serde_json::Value>(Method::GET, &path).await?;
        let protocol = |e: serde_json::Error| ControlError::Protocol {
            socket: self.socket.clone(),
            reason: format!("{path}: {e}"),
        };
        if answer.is_array() {
            serde_json::from_value(answer).map_err(protocol)
        } else {
            serde_json::from_value(answer)
                .map(|one| vec![one])
                .map_err(protocol)
        }
    }

    /// The recent check results (with latency) of every service, or of one.
    pub async fn checks(&self, service: Option<&str>) -> Result<CheckHistory, ControlError> {
        let path = match service {
            Some(name) => format!("/v1/checks?service={}", encode(name)),
            None => "/v1/checks".to_string(),
        };
        self.json(Method::GET, &path).await.map(|(v, _)| v)
    }

    /// Start a stopped (or failed, or exited) service.
    pub async fn start(&self, name: &str) -> Result<Applied, ControlError> {
        self.action(name, "start").await
    }

    /// Stop a service and keep it stopped until started.
    pub async fn stop(&self, name: &str) -> Result<Applied, ControlError> {
        self.action(name, "stop").await
    }

    /// Stop a service and start it again at once.
    pub async fn restart(&self, name: &str) -> Result<Applied, ControlError> {
        self.action(name, "restart").await
    }

    /// Replace a service's child without downtime (see `vigil replace`).
    pub async fn replace(&self, name: &str) -> Result<Applied, ControlError> {
        self.action(name, "replace").await
    }

    async fn action(&self, name: &str, action: &str) -> Result<Applied, ControlError> {
        let path = format!("/v1/services/{}/{action}", encode(name));
        let (answer, status) = self.json::<serde_json::Value>(Method::POST, &path).await?;
        let protocol = |e: serde_json::Error| ControlError::Protocol {
            socket: self.socket.clone(),
            reason: format!("{path}: {e}"),
        };
        let (service, replicas) = if answer.is_array() {
            let replicas: Vec<ServiceStatus> = serde_json::from_value(answer).map_err(protocol)?;
            let first = replicas
                .first()
                .cloned()
                .ok_or_else(|| ControlError::Protocol {
                    socket: self.socket.clone(),
                    reason: format!("{path}: no replica in the answer"),
                })?;
            (first, replicas)
        } else {
            (
                serde_json::from_value(answer).map_err(protocol)?,
                Vec::new(),
            )
        };
        Ok(Applied {
            service,
            replicas,
            settled: status == StatusCode::OK,
        })
    }

    /// `vigil scale NAME N`: run `instances` replicas of the replicated
    /// service `name` from now on.
    pub async fn scale(&self, name: &str, instances: u32) -> Result<Scaled, ControlError> {
        let path = format!("/v1/services/{}/scale?instances={instances}", encode(name));
        self.json(Method::POST, &path).await.map(|(v, _)| v)
    }

    /// Rescan the checks directory (like SIGHUP), and say why it was
    /// refused if it was.
    pub async fn reload(&self) -> Result<ReloadReply, ControlError> {
        self.json(Method::POST, "/v1/reload").await.map(|(v, _)| v)
    }

    /// Ask the instance to shut down and wait until it has stopped every
    /// service. Returns its pid (the process exits right after).
    pub async fn shutdown(&self) -> Result<u32, ControlError> {
        let response = self.request(Method::POST, "/v1/shutdown").await?;
        let mut lines = self.lines(response).await?;
        let mut pid = None;
        // The process may exit before the last line is read: an error or
        // the end of the answer both mean it is going.
        while let Some(Ok(p)) = lines.next::<ShutdownProgress>().await {
            pid = Some(p.pid);
            if p.stopped {
                break;
            }
        }
        pid.ok_or_else(|| ControlError::Protocol {
            socket: self.socket.clone(),
            reason: "the shutdown answer had no pid".into(),
        })
    }

    /// Journal lines: the last `lines` (of `service`, or all), then with
    /// `follow` every new one until the instance shuts down.
    pub async fn journal(&self, query: &JournalQuery) -> Result<JournalStream, ControlError> {
        let mut path = format!("/v1/journal?follow={}", query.follow);
        if let Some(service) = &query.service {
            path.push_str(&format!("&service={}", encode(service)));
        }
        if let Some(n) = query.lines {
            path.push_str(&format!("&lines={n}"));
        }
        if let Some(since) = &query.since {
            path.push_str(&format!("&since={}", encode(since)));
        }
        if let Some(kind) = &query.kind {
            path.push_str(&format!("&kind={}", encode(kind)));
        }
        let response = self.request(Method::GET, &path).await?;
        Ok(JournalStream {
            inner: self.lines(response).await?,
        })
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
    ) -> Result<Response<Incoming>, ControlError> {
        let stream = match tokio::net::UnixStream::connect(&self.socket).await {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Err(ControlError::NotRunning {
                    socket: self.socket.clone(),
                });
            }
            Err(source) => {
                return Err(ControlError::Connect {
                    socket: self.socket.clone(),
                    source,
                });
            }
        };
        let http = |source| ControlError::Http {
            socket: self.socket.clone(),
            source,
        };
        let (mut sender, connection) =
            http1::handshake(TokioIo::new(stream)).await.map_err(http)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("control connection: {e}");
            }
        });
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "vigil")
            .body(Empty::<Bytes>::new())
            .map_err(|e| ControlError::Protocol {
                socket: self.socket.clone(),
                reason: format!("bad request {path}: {e}"),
            })?;
        sender.send_request(request).await.map_err(http)
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
    ) -> Result<(T, StatusCode), ControlError> {
        let response = self.request(method, path).await?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|source| ControlError::Http {
                socket: self.socket.clone(),
                source,
            })?
            .to_bytes();
        if !status.is_success() {
            return Err(self.error(status, &body));
        }
        serde_json::from_slice(&body)
            .map(|v| (v, status))
            .map_err(|e| ControlError::Protocol {
                socket: self.socket.clone(),
                reason: format!("{path}: {e}"),
            })
    }

    fn error(&self, status: StatusCode, body: &[u8]) -> ControlError {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(e) if status == StatusCode::NOT_FOUND && e.error.starts_with("no service named") => {
                let name = e.error.split('`').nth(1).unwrap_or_default().to_string();
                ControlError::UnknownService {
                    name,
                    known: e.known,
                    message: e.error,
                }
            }
            Ok(e) => ControlError::Refused {
                status: status.as_u16(),
                message: e.error,
            },
            Err(_) => ControlError::Refused {
                status: status.as_u16(),
                message: format!("{status}: {}", String::from_utf8_lossy(body).trim()),
            },
        }
    }

    async fn lines(&self, response: Response<Incoming>) -> Result<Lines, ControlError> {
        let status = response.status();
        if !status.is_success() {
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(self.error(status, &body));
        }
        Ok(Lines {
            socket: self.socket.clone(),
            body: response.into_body(),
            buf: Vec::new(),
        })
    }
}

/// JSON lines of a streamed answer.
struct Lines {
    socket: PathBuf,
    body: Incoming,
    buf: Vec<u8>,
}

impl Lines {
    async fn next<T: DeserializeOwned>(&mut self) -> Option<Result<T, ControlError>> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(
                    serde_json::from_slice(&line).map_err(|e| ControlError::Protocol {
                        socket: self.socket.clone(),
                        reason: format!("bad line {:?}: {e}", String::from_utf8_lossy(&line)),
                    }),
                );
            }
            match self.body.frame().await {
                None => return None,
                Some(Err(source)) => {
                    return Some(Err(ControlError::Http {
                        socket: self.socket.clone(),
                        source,
                    }));
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

/// Journal lines as they arrive.
pub struct JournalStream {
    inner: Lines,
}

impl JournalStream {
    /// The next line; `None` when the answer ended (all past lines sent
    /// without follow, or the instance shut down).
    pub async fn next(&mut self) -> Option<Result<Line, ControlError>> {
        self.inner.next().await
    }
}

/// Percent-encode everything but unreserved characters (RFC 3986), for a
/// path segment or a query value.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_reserved_characters() {
        assert_eq!(encode("web-1_a.b~"), "web-1_a.b~");
        assert_eq!(encode("a b/c&d"), "a%20b%2Fc%26d");
    }

    #[tokio::test]
    async fn no_socket_is_not_running() {
        let path = std::env::temp_dir().join(format!("vigil-no-such-{}.sock", std::process::id()));
        let err = Client::new(&path)
            .status()
            .await
            .expect_err("nothing listens");
        assert!(matches!(err, ControlError::NotRunning { .. }), "{err:?}");
        assert!(err.to_string().contains(&path.display().to_string()));
    }
}
