//! What every control listener shares: a cap on open connections and an
//! HTTP/1.1 server with a timer, so that slow and greedy clients cost a
//! bounded number of descriptors and tasks, for a bounded time.
//!
//! `axum::serve` runs hyper without a timer, so hyper's header read
//! timeout never applied and a client sending its headers a byte every
//! 2 s kept its connection (and a descriptor, and a task) for as long as
//! it liked; nothing capped how many. Here:
//!
//! - a request's headers must arrive within [`HEADER_TIMEOUT`] of their
//!   first byte, and an idle keep-alive connection is closed after the
//!   same time (hyper arms the header timer as soon as a connection is
//!   idle). Nothing bounds a response: a `journal?follow=true` stream or
//!   the status page's events run for hours.
//! - each listener has its own cap ([`CONTROL_MAX_CONNECTIONS`],
//!   [`HTTP_MAX_CONNECTIONS`], [`GRPC_MAX_CONNECTIONS`]), so clients
//!   filling `--http` never lock the operator out of the control socket.
//!   At the cap the listener stops accepting until a connection closes:
//!   newcomers wait in the kernel's backlog and are served in turn (a
//!   slowloris slot frees within [`HEADER_TIMEOUT`]) rather than being
//!   refused, so `vigil status` keeps working under a flood of its own.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

/// How long a client has to send a request's headers, and how long an
/// idle connection stays open. Generous for any real client (the CLI,
/// curl, kubelet and Prometheus send theirs in one write), short enough
/// that a slowloris connection frees its slot quickly.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Open connections on the control socket. Local clients only (mode
/// 0600), so it is a bound on descriptors, not a defence line: room for
/// 100 journal followers, a few hundred concurrent `vigil status` and
/// slow clients at once (the soak's load is 500), while keeping the
/// memory of a full house bounded (each costs at most [`MAX_BUF`] of
/// buffers plus a task).
pub const CONTROL_MAX_CONNECTIONS: u32 = 1024;

/// Open connections on `--http`, the listener that may face a network.
/// Scrapers and probes use a few; each status page holds one for its
/// events. Its own cap, so filling it does not touch the control socket.
pub const HTTP_MAX_CONNECTIONS: u32 = 256;

/// Open connections on `--grpc`. A gRPC client multiplexes its calls and
/// watches over one connection, so few are needed.
pub const GRPC_MAX_CONNECTIONS: u32 = 256;

/// The largest buffered request head (and write buffer) per HTTP/1
/// connection; hyper's default is ~400 KiB, which times the caps above
/// would let slow clients pin hundreds of MiB. Requests to Vigil are a
/// request line and a few headers.
pub const MAX_BUF: usize = 64 * 1024;

/// At most one "cap reached" warning per listener this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// A listener the accept loop can take connections from.
pub trait Accept: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Send + Unpin + 'static;
    fn accept(&self) -> impl Future<Output = std::io::Result<Self::Io>> + Send;
}

impl Accept for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&self) -> std::io::Result<Self::Io> {
        let (stream, _) = tokio::net::TcpListener::accept(self).await?;
        // Small answers; do not wait for an ACK to send the rest.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

impl Accept for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&self) -> std::io::Result<Self::Io> {
        Ok(tokio::net::UnixListener::accept(self).await?.0)
    }
}

/// Accept connections on `listener` until `shutdown` flips, at most `cap`
/// open at once, each served by `serve` in its own task (which gets the
/// shutdown flag to wind down gracefully). Returns once every connection
/// has closed. `what` names the listener in logs.
pub async fn accept_loop<L, F, Fut>(
    listener: L,
    what: &'static str,
    cap: u32,
    mut shutdown: watch::Receiver<bool>,
    serve: F,
) where
    L: Accept,
    F: Fn(L::Io, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(cap as usize));
    let mut warned: Option<Instant> = None;
    let mut held_back = 0u64;
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                held_back += 1;
                if warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                    warned = Some(Instant::now());
                    tracing::warn!(
                        "{what}: {cap} connections open, the most it serves at once; \
                         new ones wait until one closes ({held_back} times so far; \
                         this warning repeats at most every {}s)",
                        WARN_EVERY.as_secs()
                    );
                }
                tokio::select! {
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break, // never closed
                    },
                    _ = stopped(&mut shutdown) => break,
                }
            }
        };
        let io = tokio::select! {
            _ = stopped(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok(io) => io,
                Err(e) => {
                    // Out of descriptors and the like: the listener stays.
                    tracing::warn!("{what}: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let connection = serve(io, shutdown.clone());
        tokio::spawn(async move {
            connection.await;
            drop(permit);
        });
    }
    // Every permit back: every connection has closed.
    let _ = permits.acquire_many(cap).await;
}

/// Once `shutdown` has flipped (or its sender is gone). Holds no read
/// guard of the flag, so a future awaiting it stays `Send`.
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Serve one HTTP/1.1 connection with `router`: headers within
/// [`HEADER_TIMEOUT`], idle keep-alive closed after it, buffers bounded
/// by [`MAX_BUF`]. Once `shutdown` flips, the request in flight finishes
/// and the connection closes.
pub async fn serve_http1<I>(
    io: I,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
    what: &'static str,
) where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true)
        .max_buf_size(MAX_BUF)
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(router));
    let mut conn = std::pin::pin!(conn);
    let stopping = tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!("{what} connection: {e}");
            }
            false
        }
        _ = stopped(&mut shutdown) => true,
    };
    if stopping {
        conn.as_mut().graceful_shutdown();
        if let Err(e) = conn.await {
            tracing::debug!("{what} connection: {e}");
        }
    }
}
