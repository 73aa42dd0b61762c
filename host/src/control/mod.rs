//! How operators and fleets talk to a running `vigil run`.
//!
//! - [`server`]: HTTP/1.1 + JSON on a Unix socket in the state directory
//!   (mode 0600): status, start, stop, restart, reload, shutdown, journal.
//! - [`client`]: the same API from Rust; the `vigil status|start|...`
//!   subcommands are its users.
//! - [`http`]: the optional read-only TCP listener (`--http ADDR`) with
//!   `/livez`, `/readyz` and `/metrics` for kubelet probes and scrapers.
//! - [`grpc`]: the optional read-only `grpc.health.v1` listener
//!   (`--grpc ADDR`) for kubelet's gRPC probes, Envoy and Consul.
//! - [`metrics`]: what `/metrics` exposes, in Prometheus text format.
//! - [`page`]: the status page at `/` of the `--http` listener.
//! - [`api`]: the JSON types on the wire.
//! - [`listen`]: the accept loop they share: timeouts for slow clients
//!   and a cap on open connections per listener.

pub mod api;
pub mod client;
pub mod coalesce;
pub mod grpc;
pub mod http;
pub mod listen;
pub mod metrics;
pub mod page;
pub mod server;

#[cfg(test)]
mod fuzz_tests;

use std::path::{Path, PathBuf};

use tokio::sync::oneshot;

pub use client::{Client, ControlError};

/// The control socket's file name inside the state directory.
pub const SOCKET: &str = "control.sock";

/// Longest path a Unix socket address can hold (108 bytes with the NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// The control socket of the instance using `state_dir`.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET)
}

/// What the control servers ask of the run loop.
#[derive(Debug)]
pub enum Request {
    /// Rescan the checks directory; answered with why it was refused.
    Reload(oneshot::Sender<Result<(), String>>),
    /// Stop every service and exit.
    Shutdown,
    /// Answered at once by a loop that is alive (`/livez`).
    Ping(oneshot::Sender<()>),
}

/// Where to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The control socket (default: `control.sock` in the state directory).
    pub socket: PathBuf,
    /// The read-only TCP listener, off when `None`.
    pub http: Option<std::net::SocketAddr>,
    /// The read-only `grpc.health.v1` listener, off when `None`.
    pub grpc: Option<std::net::SocketAddr>,
    pub state_dir: PathBuf,
    /// When this instance started.
    pub started_at: std::time::SystemTime,
    /// Enables the status page's actions (`--http-token-file`).
    pub http_token: Option<String>,
}

/// The running control socket and `--http` listener.
pub struct Servers {
    shutdown: tokio::sync::watch::Sender<bool>,
    stopping: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    socket: PathBuf,
    inode: (u64, u64),
    /// The address `--http` is bound to (port 0 resolved).
    pub http_addr: Option<std::net::SocketAddr>,
    /// The address `--grpc` is bound to (port 0 resolved).
    pub grpc_addr: Option<std::net::SocketAddr>,
}

impl Servers {
    /// Bind the control socket (and the TCP listener) and serve them.
    pub async fn start(
        options: ServeOptions,
        sup: &crate::supervisor::Supervisor,
        engine: &crate::wasm::Engine,
        requests: tokio::sync::mpsc::UnboundedSender<Request>,
    ) -> Result<Servers, server::ServerError> {
        use std::sync::Arc;
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let http_listener = match options.http {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| server::ServerError::HttpBind { addr, source })?,
            ),
            None => None,
        };
        let http_addr = http_listener.as_ref().and_then(|l| l.local_addr().ok());
        let grpc_listener = match options.grpc {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| server::ServerError::GrpcBind { addr, source })?,
            ),
            None => None,
        };
        let grpc_addr = grpc_listener.as_ref().and_then(|l| l.local_addr().ok());
        let socket = server::bind(&options.socket)?;
        let inode = socket.inode();
        let mut tasks = Vec::new();
        let control = Arc::new(server::ControlState {
            sup: sup.clone(),
            state_dir: options.state_dir.clone(),
            started_at: options.started_at,
            requests: requests.clone(),
            shutdown: shutdown_rx.clone(),
            status: Default::default(),
        });
        tasks.push(tokio::spawn(server::serve(socket.listener, control)));
        if let Some(listener) = grpc_listener {
            let state = Arc::new(grpc::GrpcState {
                sup: sup.clone(),
                stopping: stopping.clone(),
                shutdown: shutdown_rx.clone(),
            });
            tasks.push(tokio::spawn(grpc::serve(listener, state)));
        }
        if let Some(listener) = http_listener {
            let state = Arc::new(http::HttpState {
                sup: sup.clone(),
                requests,
                registry: metrics::registry(sup, engine, options.started_at),
                stopping: stopping.clone(),
                shutdown: shutdown_rx,
                page: page::PageOptions {
                    state_dir: options.state_dir.clone(),
                    started_at: options.started_at,
                    token: options.http_token.clone(),
                },
            });
            tasks.push(tokio::spawn(http::serve(listener, state)));
        }
        Ok(Servers {
            shutdown,
            stopping,
            tasks,
            socket: socket.path,
            inode,
            http_addr,
            grpc_addr,
        })
    }

    /// The instance is shutting down: `/readyz` answers 503 from now on.
    pub fn begin_shutdown(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Stop accepting, end journal follows, let in-flight requests finish
    /// (up to `grace`), and remove the socket file.
    pub async fn stop(self, grace: std::time::Duration) {
        self.begin_shutdown();
        let _ = self.shutdown.send(true);
        let all = futures_util::future::join_all(self.tasks);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("control servers: requests still open after {grace:?}; closing");
        }
        server::Socket::remove_file(&self.socket, self.inode);
    }
}
