//! `vigil run --grpc ADDR`: the standard `grpc.health.v1.Health` service,
//! read-only like `--http`, so kubelet's native gRPC probe, Envoy, Consul
//! and grpc-health-probe ask about a service without an exec.
//!
//! - `Check`: service `""` is `SERVING` when every service is ready (a
//!   one-shot that exited cleanly counts), as `/readyz` answers; a
//!   service by its name is `SERVING` when it is ready; an unknown name
//!   is gRPC status `NOT_FOUND`, as the protocol says. `NOT_SERVING` for
//!   everything once the instance is shutting down.
//! - `Watch`: the current status at once, then each change; an unknown
//!   name is `SERVICE_UNKNOWN` (and changes if a reload adds it). The
//!   stream ends with `UNAVAILABLE` when vigil shuts down.
//!
//! Hand-written on hyper's HTTP/2 server rather than tonic + tonic-health:
//! two methods with a one-field request and a one-field reply are a few
//! lines of protobuf, where tonic, prost and their tower stack would add
//! dozens of crates to the build for them. The HTTP/2 itself is h2, which
//! reqwest uses for the `http2` capability anyway.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::{Notify, mpsc, watch};

use super::listen;

use crate::supervisor::Supervisor;

/// What the handlers share.
pub struct GrpcState {
    pub sup: Supervisor,
    /// Set once the instance is shutting down: everything is `NOT_SERVING`.
    pub stopping: Arc<AtomicBool>,
    pub shutdown: watch::Receiver<bool>,
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

const CHECK: &str = "/grpc.health.v1.Health/Check";
const WATCH: &str = "/grpc.health.v1.Health/Watch";

/// Largest request message read (a service name).
const MAX_REQUEST: usize = 64 * 1024;

/// `HealthCheckResponse.ServingStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServingStatus {
    Serving = 1,
    NotServing = 2,
    /// Only in `Watch`; `Check` answers `NOT_FOUND` instead.
    ServiceUnknown = 3,
}

/// gRPC status codes this server answers with.
#[derive(Debug, Clone, Copy)]
enum Code {
    Ok = 0,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    Unimplemented = 12,
    Unavailable = 14,
}

/// How often a connection is pinged, and how long a ping may go
/// unanswered before the connection is dropped: a `Watch` whose client
/// vanished without a FIN (a lost network, a frozen peer) would otherwise
/// hold its slot until the next status change fails to send.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a connection with no call open stays, once it has made one.
/// Clients (Envoy, Consul, grpc-go) reconnect when told to go away, as
/// grpc-go's own `MaxConnectionIdle` does it; kubelet dials per probe.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Serve until `shutdown` flips. Open `Watch` streams end then; each
/// connection closes once its streams have. A client that sends no
/// preface or no call within [`listen::HEADER_TIMEOUT`], or stays without
/// a call for [`IDLE_TIMEOUT`], is told to go away; open connections are
/// capped ([`listen::GRPC_MAX_CONNECTIONS`]).
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<GrpcState>) {
    let shutdown = state.shutdown.clone();
    listen::accept_loop(
        listener,
        "--grpc listener",
        listen::GRPC_MAX_CONNECTIONS,
        shutdown,
        move |stream, stop| connection(stream, state.clone(), stop),
    )
    .await;
}

/// The calls open on one connection, from the moment hyper hands a
/// request over until its response body is dropped (sent or abandoned).
#[derive(Default)]
struct Calls {
    open: AtomicUsize,
    /// Whether the connection ever made a call (then its idle bound is
    /// [`IDLE_TIMEOUT`], before that [`listen::HEADER_TIMEOUT`]).
    seen: AtomicBool,
    changed: Notify,
}

/// One open call; dropping it closes the call.
struct Call(Arc<Calls>);

impl Calls {
    fn begin(self: &Arc<Self>) -> Call {
        self.seen.store(true, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
        // A stored permit if nobody waits: no change is missed.
        self.changed.notify_one();
        Call(self.clone())
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        self.0.changed.notify_one();
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    state: Arc<GrpcState>,
    mut stop: watch::Receiver<bool>,
) {
    let calls = Arc::new(Calls::default());
    let tracked = calls.clone();
    let service = hyper::service::service_fn(move |request| {
        let state = state.clone();
        let call = tracked.begin();
        async move {
            let response = handle(&state, request).await;
            // The call stays open as long as its body (a `Watch`) does.
            Ok::<_, Infallible>(response.map(|body| {
                body.map_frame(move |frame| {
                    let _open = &call;
                    frame
                })
                .boxed_unsync()
            }))
        }
    });
    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let stopping = loop {
        let idle_for = if calls.open.load(Ordering::Relaxed) > 0 {
            None
        } else if calls.seen.load(Ordering::Relaxed) {
            Some(IDLE_TIMEOUT)
        } else {
            Some(listen::HEADER_TIMEOUT)
        };
        let idle = async {
            match idle_for {
                Some(bound) => tokio::time::sleep(bound).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("--grpc connection: {e}");
                }
                return;
            }
            _ = listen::stopped(&mut stop) => break true,
            _ = calls.changed.notified() => continue,
            _ = idle => break false,
        }
    };
    conn.as_mut().graceful_shutdown();
    if stopping {
        // `Watch` streams end at shutdown; the caller bounds the wait.
        let _ = conn.await;
    } else {
        // No call open: a client that does not even read the GOAWAY is
        // not waited for long.
        let _ = tokio::time::timeout(listen::HEADER_TIMEOUT, conn).await;
    }
}

async fn handle(state: &GrpcState, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    if request.method() != hyper::Method::POST || (path != CHECK && path != WATCH) {
        return status_only(
            Code::Unimplemented,
            &format!("vigil serves only {CHECK} and {WATCH}, not {path}"),
        );
    }
    // A request message trickled in slowly holds a call open: bounded
    // as request headers are.
    let read = Limited::new(request.into_body(), MAX_REQUEST).collect();
    let body = match tokio::time::timeout(listen::HEADER_TIMEOUT, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) => {
            return status_only(
                Code::InvalidArgument,
                &format!("cannot read the request: {e}"),
            );
        }
        Err(_) => {
            return status_only(
                Code::DeadlineExceeded,
                &format!(
                    "the request message did not arrive within {}s",
                    listen::HEADER_TIMEOUT.as_secs()
                ),
            );
        }
    };
    let service = match decode_request(&body) {
        Ok(service) => service,
        Err(why) => return status_only(Code::InvalidArgument, why),
    };
    if path == CHECK {
        match status(state, &service) {
            ServingStatus::ServiceUnknown => {
                status_only(Code::NotFound, &format!("unknown service {service:?}"))
            }
            serving => unary(serving),
        }
    } else {
        watch(state, service)
    }
}

/// The status of `service` now (`""`: all of them).
fn status(state: &GrpcState, service: &str) -> ServingStatus {
    let stopping = state.stopping.load(Ordering::Relaxed) || *state.shutdown.borrow();
    let snapshots = state.sup.snapshots();
    let ready = if service.is_empty() {
        snapshots.values().all(|snap| snap.satisfies_after)
    } else {
        match snapshots.get(service) {
            Some(snap) => snap.satisfies_after,
            // A replicated service's name: serving when every replica is,
            // as `after = ["web"]` judges it.
            None => {
                let replicas = state.sup.members(service);
                if replicas.is_empty() {
                    return ServingStatus::ServiceUnknown;
                }
                replicas.iter().all(|r| {
                    snapshots
                        .get(&r.name)
                        .is_some_and(|snap| snap.satisfies_after)
                })
            }
        }
    };
    if ready && !stopping {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

/// `Check`'s answer: one message, then `grpc-status: 0`.
fn unary(serving: ServingStatus) -> Response<Body> {
    let frames = [
        Frame::data(message(serving)),
        Frame::trailers(trailers(Code::Ok, "")),
    ];
    let stream = futures_util::stream::iter(frames.map(Ok::<_, Infallible>));
    grpc_response(StreamBody::new(stream).boxed_unsync())
}

/// `Watch`: a message per change of the status, until the client goes
/// away or vigil shuts down.
fn watch(state: &GrpcState, service: String) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Frame<Bytes>>(4);
    let sup = state.sup.clone();
    let stopping = state.stopping.clone();
    let mut shutdown = state.shutdown.clone();
    let mut changes = state.sup.changes();
    tokio::spawn(async move {
        let state = GrpcState {
            sup,
            stopping,
            shutdown: shutdown.clone(),
        };
        let mut last = None;
        loop {
            // Read before looking, so no change between the two is missed.
            drop(changes.borrow_and_update());
            let now = status(&state, &service);
            if last != Some(now) {
                last = Some(now);
                if tx.send(Frame::data(message(now))).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { break },
                _ = shutdown.wait_for(|s| *s) => break,
                _ = tx.closed() => return,
            }
        }
        let _ = tx
            .send(Frame::trailers(trailers(
                Code::Unavailable,
                "vigil is shutting down",
            )))
            .await;
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|frame| (Ok::<_, Infallible>(frame), rx))
    });
    grpc_response(StreamBody::new(stream).boxed_unsync())
}

fn grpc_response(body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}

/// A reply with no message: the status in the headers ("trailers-only").
fn status_only(code: Code, message: &str) -> Response<Body> {
    let mut response = grpc_response(Empty::new().boxed_unsync());
    response.headers_mut().extend(trailers(code, message));
    response
}

fn trailers(code: Code, message: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert("grpc-status", HeaderValue::from(code as u16));
    if !message.is_empty()
        && let Ok(value) = HeaderValue::from_str(&percent_encode(message))
    {
        map.insert("grpc-message", value);
    }
    map
}

/// `grpc-message` is percent-encoded: anything but printable ASCII, and `%`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// One length-prefixed `HealthCheckResponse { status = 1 }`.
fn message(serving: ServingStatus) -> Bytes {
    let mut out = BytesMut::with_capacity(7);
    out.put_u8(0);
    out.put_u32(2);
    out.put_u8(0x08); // field 1, varint
    out.put_u8(serving as u8);
    out.freeze()
}

/// The service name in a length-prefixed `HealthCheckRequest`
/// `{ string service = 1; }`; unknown fields are skipped, the last
/// `service` wins, as protobuf parses.
fn decode_request(body: &[u8]) -> Result<String, &'static str> {
    if body.is_empty() {
        return Err("no request message");
    }
    let [flag, a, b, c, d, rest @ ..] = body else {
        return Err("a truncated message header");
    };
    if *flag != 0 {
        return Err("compressed messages are not supported");
    }
    let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
    let mut message = rest.get(..len).ok_or("a truncated message")?;
    let mut service = String::new();
    while !message.is_empty() {
        let (key, used) = varint(message).ok_or("a malformed message")?;
        message = &message[used..];
        match key & 7 {
            0 => message = &message[varint(message).ok_or("a malformed message")?.1..],
            1 => message = message.get(8..).ok_or("a malformed message")?,
            5 => message = message.get(4..).ok_or("a malformed message")?,
            2 => {
                let (len, used) = varint(message).ok_or("a malformed message")?;
                let field = message
                    .get(used..)
                    .and_then(|m| m.get(..usize::try_from(len).ok()?))
                    .ok_or("a malformed message")?;
                if key >> 3 == 1 {
                    service = std::str::from_utf8(field)
                        .map_err(|_| "the service name is not UTF-8")?
                        .to_owned();
                }
                message = &message[used + field.len()..];
            }
            _ => return Err("a malformed message"),
        }
    }
    Ok(service)
}

fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod fuzz_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_decode() {
        assert_eq!(decode_request(&[0, 0, 0, 0, 0]), Ok(String::new()));
        assert_eq!(
            decode_request(&[0, 0, 0, 0, 5, 0x0a, 3, b'w', b'e', b'b']),
            Ok("web".to_owned())
        );
        // An unknown varint field first, then the service.
        assert_eq!(
            decode_request(&[0, 0, 0, 0, 7, 0x10, 1, 0x0a, 3, b'w', b'e', b'b']),
            Ok("web".to_owned())
        );
        assert!(decode_request(&[]).is_err());
        assert!(decode_request(&[1, 0, 0, 0, 0]).is_err());
        assert!(decode_request(&[0, 0, 0, 0, 9, 0x0a]).is_err());
        assert!(decode_request(&[0, 0, 0, 0, 3, 0x0a, 9, b'x']).is_err());
        assert!(decode_request(&[0, 0, 0, 0, 4, 0x0a, 2, 0xff, 0xfe]).is_err());
    }

    #[test]
    fn replies_encode() {
        assert_eq!(
            &message(ServingStatus::Serving)[..],
            [0, 0, 0, 0, 2, 0x08, 1]
        );
        assert_eq!(
            &message(ServingStatus::ServiceUnknown)[..],
            [0, 0, 0, 0, 2, 0x08, 3]
        );
        assert_eq!(percent_encode("a%b é"), "a%25b %C3%A9");
    }
}
