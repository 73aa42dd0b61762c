//! The control socket: HTTP/1.1 + JSON on a Unix socket, mode 0600.
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /v1/status` | [`StatusReport`] |
//! | `GET /v1/status/{name}` | [`ServiceStatus`]; a list of them, by index, for a replicated service's name (`web`); 404 for an unknown name |
//! | `POST /v1/services/{name}/start\|stop\|restart` | [`ServiceStatus`] once settled (202 if not within its grace); a list of them for a replicated service's name |
//! | `POST /v1/services/{name}/scale?instances=N` | [`Scaled`](crate::supervisor::replicas::Scaled), 422 with the reason when refused |
//! | `POST /v1/reload` | [`ReloadReply`], 422 with the reason when refused |
//! | `POST /v1/shutdown` | [`ShutdownProgress`] lines, the last once every service stopped |
//! | `GET /v1/checks?service=` | [`CheckHistory`](super::api::CheckHistory): recent check results with latency (every replica's for a replicated service's name) |
//! | `GET /v1/journal?service=&lines=&follow=&since=&kind=` | journal lines (JSON lines), streamed with `follow=true`; a replicated service's name has every replica's lines |

use std::convert::Infallible;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::api::{
    DEFAULT_JOURNAL_LINES, ErrorBody, JournalQuery, ReloadReply, ServiceStatus, ShutdownProgress,
    StatusReport,
};
use super::{MAX_SOCKET_PATH, Request};
use crate::journal::{self, Line};
use crate::supervisor::service::{Event, Why};
use crate::supervisor::state::Status;
use crate::supervisor::{Snapshot, Supervisor};

/// Errors setting up the control socket.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "the control socket path {} is {len} bytes, longer than the {MAX_SOCKET_PATH} a Unix socket allows; use a shorter --state-dir (or --socket)",
        .path.display()
    )]
    PathTooLong { path: PathBuf, len: usize },
    #[error(
        "another process answers on the control socket {}; is another vigil using it (--socket)?",
        .path.display()
    )]
    InUse { path: PathBuf },
    #[error("{} exists and is not a socket; move it away or choose another --socket", .path.display())]
    NotASocket { path: PathBuf },
    #[error("--http {addr}: cannot listen: {source}")]
    HttpBind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("--grpc {addr}: cannot listen: {source}")]
    GrpcBind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("control socket: cannot {op} {}: {source}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ServerError {
    let path = path.to_path_buf();
    move |source| ServerError::Io { op, path, source }
}

/// A bound control socket; remembers its inode so that only our own file
/// is removed at shutdown.
pub struct Socket {
    pub listener: tokio::net::UnixListener,
    pub path: PathBuf,
    inode: (u64, u64),
}

impl Socket {
    /// Remove the socket file if it is still the one we bound.
    pub fn remove_file(path: &Path, inode: (u64, u64)) {
        if let Ok(meta) = std::fs::symlink_metadata(path)
            && (meta.dev(), meta.ino()) == inode
        {
            let _ = std::fs::remove_file(path);
        }
    }

    pub fn inode(&self) -> (u64, u64) {
        self.inode
    }
}

/// Refuse a socket path longer than a Unix socket address holds.
pub fn check_path(path: &Path) -> Result<(), ServerError> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(ServerError::PathTooLong {
            path: path.to_path_buf(),
            len,
        });
    }
    Ok(())
}

/// Bind the control socket at `path` with mode 0600, race-free: it is
/// bound inside a fresh 0700 directory, chmodded there (nobody else can
/// reach it yet) and renamed into place. A stale socket file is removed
/// only when nothing answers on it; anything else at `path` is an error.
pub fn bind(path: &Path) -> Result<Socket, ServerError> {
    check_path(path)?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => {
                    return Err(ServerError::InUse {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    tracing::info!("removing the stale control socket {}", path.display());
                    std::fs::remove_file(path).map_err(io("remove the stale", path))?;
                }
                Err(e) => return Err(io("probe", path)(e)),
            }
        }
        Ok(_) => {
            return Err(ServerError::NotASocket {
                path: path.to_path_buf(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("stat", path)(e)),
    }
    // Same length as `control.sock` in the same directory, so it fits
    // whenever the final path does.
    let private = dir.join(format!(".c{:06}", std::process::id() % 1_000_000));
    let _ = std::fs::remove_dir_all(&private); // left by a crashed vigil with our pid
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(io("create", &private))?;
    let result = (|| -> Result<Socket, ServerError> {
        let temp = private.join("s");
        let listener = std::os::unix::net::UnixListener::bind(&temp).map_err(io("bind", &temp))?;
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600))
            .map_err(io("chmod", &temp))?;
        std::fs::rename(&temp, path).map_err(io("move into place", path))?;
        listener
            .set_nonblocking(true)
            .map_err(io("configure", path))?;
        let meta = std::fs::symlink_metadata(path).map_err(io("stat", path))?;
        let listener = tokio::net::UnixListener::from_std(listener).map_err(io("listen", path))?;
        Ok(Socket {
            listener,
            path: path.to_path_buf(),
            inode: (meta.dev(), meta.ino()),
        })
    })();
    let _ = std::fs::remove_dir_all(&private);
    result
}

/// What the handlers share.
pub struct ControlState {
    pub sup: Supervisor,
    pub state_dir: PathBuf,
    pub started_at: SystemTime,
    pub requests: mpsc::UnboundedSender<Request>,
    /// Flips to true when the servers must wind down (ends journal follows).
    pub shutdown: watch::Receiver<bool>,
    /// `GET /v1/status`, computed once for a burst of requests.
    pub status: super::coalesce::Coalesced,
}

/// The control API's routes.
pub fn router(state: Arc<ControlState>) -> Router {
    Router::new()
        .route("/v1/status", get(status_all))
        .route("/v1/status/{name}", get(status_one))
        .route("/v1/services/{name}/scale", post(scale))
        .route("/v1/services/{name}/{action}", post(service_action))
        .route("/v1/reload", post(reload))
        .route("/v1/shutdown", post(shutdown))
        .route("/v1/journal", get(journal_lines))
        .route("/v1/checks", get(checks))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint; see /v1/status") })
        .with_state(state)
}

/// Serve `socket` until `shutdown` flips; in-flight requests finish and
/// journal follows end. Slow clients are timed out and open connections
/// capped: see [`super::listen`].
pub async fn serve(socket: tokio::net::UnixListener, state: Arc<ControlState>) {
    let shutdown = state.shutdown.clone();
    let app = router(state);
    super::listen::accept_loop(
        socket,
        "control socket",
        super::listen::CONTROL_MAX_CONNECTIONS,
        shutdown,
        move |io, stop| super::listen::serve_http1(io, app.clone(), stop, "control socket"),
    )
    .await;
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorBody {
            error: message.into(),
            known: Vec::new(),
        }),
    )
        .into_response()
}

fn unknown_service(sup: &Supervisor, name: &str) -> Response {
    // A replicated service's name (`web`) is known too: it names every
    // replica.
    let mut known = std::collections::BTreeSet::new();
    for name in sup.snapshots().into_keys() {
        if let Some((group, _)) = crate::config::replicas::split_name(&name) {
            known.insert(group.to_string());
        }
        known.insert(name);
    }
    let known: Vec<String> = known.into_iter().collect();
    let list = if known.is_empty() {
        "there are no services".to_string()
    } else {
        format!("known: {}", known.join(", "))
    };
    (
        StatusCode::NOT_FOUND,
        Json(ErrorBody {
            error: format!("no service named `{name}` ({list})"),
            known,
        }),
    )
        .into_response()
}

/// A scheduled job's view as the API shows it.
fn job_status(job: &crate::supervisor::JobView) -> crate::control::api::JobStatus {
    use crate::journal::timestamp;
    crate::control::api::JobStatus {
        schedule: job.schedule.clone(),
        next_run_at: job.next_due.map(|(wall, _)| timestamp(wall)),
        last_run: job.last_run.as_ref().map(|r| crate::control::api::JobRun {
            code: r.code,
            signal: r.signal.clone(),
            cause: r.cause.map(|c| c.as_str().to_string()),
            duration_secs: r.duration.as_secs_f64(),
            ended_at: timestamp(r.ended),
            ok: r.ok,
        }),
        last_success_at: job.last_success.map(timestamp),
    }
}

/// A snapshot as the API shows it.
pub fn service_status(name: &str, snap: &Snapshot) -> ServiceStatus {
    let check = snap.last_check.as_ref();
    ServiceStatus {
        name: name.to_string(),
        state: snap.status.as_str().to_string(),
        pid: snap.pid,
        uptime_secs: snap.uptime().map(|d| d.as_secs_f64()),
        restarts: snap.restarts,
        ready: snap.status == Status::Ready,
        startup_passed: snap.startup_passed,
        last_outcome: check.map(|c| c.outcome.kind().to_string()),
        last_reason: check.and_then(|c| c.outcome.reason().map(str::to_owned)),
        last_phase: check.map(|c| c.phase.as_str().to_string()),
        check_latency_ms: check.map(|c| c.latency.as_secs_f64() * 1000.0),
        status_text: snap.status_text.clone(),
        finished: snap.status == Status::Exited && snap.satisfies_after,
        failing: snap
            .failing
            .map(|(phase, failures, threshold)| match threshold {
                Some(t) => format!("{phase} {failures}/{t}"),
                None => format!("{phase} {failures}"),
            }),
        waiting_for: snap.waiting_for.clone(),
        restart_in_secs: snap.restart_at.map(|at| {
            at.saturating_duration_since(tokio::time::Instant::now())
                .as_secs_f64()
        }),
        note: snap.note.clone(),
        next_run_in_secs: snap.job.as_ref().and_then(|j| j.next_due).map(|(_, at)| {
            at.saturating_duration_since(tokio::time::Instant::now())
                .as_secs_f64()
        }),
        job: snap.job.as_ref().map(job_status),
        cgroup: snap.cgroup.as_ref().map(|c| c.path().display().to_string()),
        cpu_secs: snap
            .cgroup
            .as_ref()
            .and_then(|c| c.cpu_usage())
            .map(|d| d.as_secs_f64()),
        memory_bytes: snap.cgroup.as_ref().and_then(|c| c.memory_usage()),
        after: Vec::new(),
        sockets: snap
            .sockets
            .iter()
            .zip(3..)
            .map(|((name, listen), fd)| crate::control::api::SocketStatus {
                name: name.clone(),
                listen: listen.clone(),
                fd,
            })
            .collect(),
        awaiting_connection: snap.awaiting_connection,
        replacing_pid: snap.successor,
        replaced_pid: snap.predecessor,
        replace_failed: snap.replace_failed.clone(),
    }
}

/// [`service_status`] with what its definition says (its `after` list).
pub fn with_definition(sup: &Supervisor, mut status: ServiceStatus) -> ServiceStatus {
    if let Some(service) = sup.service(&status.name) {
        status.after = service.after.clone();
    }
    status
}

/// The whole status report.
pub fn status_report(state: &ControlState) -> StatusReport {
    StatusReport {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: state
            .started_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default(),
        state_dir: state.state_dir.clone(),
        cgroups: state.sup.cgroups().map(|t| t.path().to_path_buf()),
        services: state
            .sup
            .snapshots()
            .iter()
            .map(|(name, snap)| with_definition(&state.sup, service_status(name, snap)))
            .collect(),
    }
}

async fn status_all(State(state): State<Arc<ControlState>>) -> Response {
    let arrived = tokio::time::Instant::now();
    let shared = state.clone();
    let report = state
        .status
        .get(arrived, move || {
            serde_json::to_vec(&status_report(&shared))
                .map(Bytes::from)
                .unwrap_or_default()
        })
        .await;
    match report {
        Some(body) if !body.is_empty() => {
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        _ => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the status report could not be built",
        ),
    }
}

/// What `GET /v1/checks` takes.
#[derive(Debug, Default, serde::Deserialize)]
pub struct HistoryQuery {
    /// Only this service.
    pub service: Option<String>,
}

/// The recent check results of the services that exist now (or of one,
/// or of every replica of a replicated service's name).
pub fn check_history(sup: &Supervisor, only: Option<&str>) -> super::api::CheckHistory {
    let names = sup.snapshots();
    let wanted = |name: &str| {
        only.is_none_or(|o| {
            o == name
                || crate::config::replicas::split_name(name).is_some_and(|(group, _)| group == o)
        })
    };
    super::api::CheckHistory {
        services: sup
            .check_metrics()
            .history()
            .recent(|name| names.contains_key(name) && wanted(name)),
    }
}

/// Whether `name` is a service, or a replicated service's name.
fn exists(sup: &Supervisor, name: &str) -> bool {
    sup.service(name).is_some() || !sup.members(name).is_empty()
}

async fn checks(
    State(state): State<Arc<ControlState>>,
    Query(query): Query<HistoryQuery>,
) -> Response {
    if let Some(name) = &query.service
        && !exists(&state.sup, name)
    {
        return unknown_service(&state.sup, name);
    }
    Json(check_history(&state.sup, query.service.as_deref())).into_response()
}

async fn status_one(
    State(state): State<Arc<ControlState>>,
    UrlPath(name): UrlPath<String>,
) -> Response {
    let snapshots = state.sup.snapshots();
    if let Some(snap) = snapshots.get(&name) {
        return Json(with_definition(&state.sup, service_status(&name, snap))).into_response();
    }
    // A replicated service's name: every replica, by index.
    let replicas: Vec<ServiceStatus> = state
        .sup
        .members(&name)
        .iter()
        .filter_map(|s| {
            let snap = snapshots.get(&s.name)?;
            Some(with_definition(&state.sup, service_status(&s.name, snap)))
        })
        .collect();
    if replicas.is_empty() {
        return unknown_service(&state.sup, &name);
    }
    Json(replicas).into_response()
}

/// Start, stop or restart one service, answering once it has settled:
/// stopped, or a child spawned (or waiting for its dependencies, or
/// failed). A service that takes longer gets 202 and its current status.
async fn service_action(
    State(state): State<Arc<ControlState>>,
    UrlPath((name, action)): UrlPath<(String, String)>,
) -> Response {
    let event = match action.as_str() {
        "start" => Event::Start,
        "stop" => Event::Stop(Why::operator("vigil stop")),
        "restart" => Event::Restart(Why::operator("vigil restart")),
        "replace" => Event::Replace(Why::operator("vigil replace")),
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!("unknown action `{other}`: start, stop, restart or replace"),
            );
        }
    };
    if state.sup.service(&name).is_none() {
        // A replicated service's name: every replica, at once.
        let replicas = state.sup.members(&name);
        if !replicas.is_empty() {
            let all = replicas
                .iter()
                .map(|r| settle(&state, r.name.clone(), event.clone()));
            let mut answers = Vec::new();
            let mut settled = true;
            for answer in futures_util::future::join_all(all).await {
                match answer {
                    Ok((status, done)) => {
                        settled &= done;
                        answers.push(status);
                    }
                    // Retired by a scale meanwhile.
                    Err(_) => continue,
                }
            }
            let code = if settled {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            return (code, Json(answers)).into_response();
        }
    }
    match settle(&state, name, event).await {
        Ok((status, true)) => Json(status).into_response(),
        Ok((status, false)) => (StatusCode::ACCEPTED, Json(status)).into_response(),
        Err(response) => response,
    }
}

/// Send `event` to the service `name` and wait until it has settled (see
/// [`service_action`]): its status, and whether it settled in time.
async fn settle(
    state: &ControlState,
    name: String,
    event: Event,
) -> Result<(ServiceStatus, bool), Response> {
    let Some(service) = state.sup.service(&name) else {
        return Err(unknown_service(&state.sup, &name));
    };
    let before = state.sup.snapshots().remove(&name);
    if matches!(event, Event::Start) {
        state.sup.start_held_dependencies(&name);
    }
    if !state.sup.send_and_sync(&name, event.clone()).await {
        return Err(unknown_service(&state.sup, &name));
    }
    // A start asked while the old child still stops is queued behind the
    // stop: it has settled once a new child runs, as for a restart.
    let was_stopping = before.as_ref().map(|s| s.status) == Some(Status::Stopping);
    let old_pid = before.as_ref().and_then(|s| s.pid);
    let replaces_before = before.as_ref().map(|s| s.replace_count).unwrap_or(0);
    let settled = move |s: &Snapshot| match &event {
        Event::Stop(_) => s.status.is_down(),
        // Over when the new child took over or was dropped (or the
        // service was not running, and the replace was a restart).
        Event::Replace(_) => {
            s.successor.is_none()
                && (s.replace_count > replaces_before
                    || s.pid.is_some_and(|p| Some(p) != old_pid)
                    || s.status.is_down())
        }
        Event::Start if !was_stopping => {
            s.pid.is_some()
                || matches!(
                    s.status,
                    Status::Waiting | Status::Exited | Status::Failed | Status::Backoff
                )
        }
        _ => {
            s.pid.is_some_and(|p| Some(p) != old_pid)
                || matches!(
                    s.status,
                    Status::Waiting | Status::Exited | Status::Failed | Status::Stopped
                )
        }
    };
    // Stopping may take the whole grace before SIGKILL; a replace waits
    // for the new child's checks first.
    let limit = service.stop_grace + service.sockets.replace_timeout + Duration::from_secs(10);
    match state.sup.wait_for(&name, limit, settled).await {
        Some(snap) => Ok((service_status(&name, &snap), true)),
        None => match state.sup.snapshots().get(&name) {
            Some(snap) => Ok((service_status(&name, snap), false)),
            None => Err(unknown_service(&state.sup, &name)),
        },
    }
}

/// What `POST /v1/services/{name}/scale` takes.
#[derive(Debug, serde::Deserialize)]
pub struct ScaleQuery {
    pub instances: u32,
}

/// `vigil scale NAME N`: the replicas there are once the new ones are
/// started (not yet ready) or the surplus ones stopped.
async fn scale(
    State(state): State<Arc<ControlState>>,
    UrlPath(name): UrlPath<String>,
    Query(query): Query<ScaleQuery>,
) -> Response {
    use crate::supervisor::replicas::ScaleError;
    match state.sup.scale(&name, query.instances).await {
        Ok(scaled) => Json(scaled).into_response(),
        Err(ScaleError::Unknown(_)) => unknown_service(&state.sup, &name),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}

async fn reload(State(state): State<Arc<ControlState>>) -> Response {
    let (reply, answer) = oneshot::channel();
    if state.requests.send(Request::Reload(reply)).is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "vigil is shutting down");
    }
    match answer.await {
        Ok(Ok(())) => Json(ReloadReply { reloaded: true }).into_response(),
        Ok(Err(reason)) => error(StatusCode::UNPROCESSABLE_ENTITY, reason),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "vigil is shutting down"),
    }
}

fn json_line<T: serde::Serialize>(value: &T) -> Bytes {
    let mut text = serde_json::to_string(value).unwrap_or_else(|e| {
        serde_json::json!({ "error": format!("cannot encode: {e}") }).to_string()
    });
    text.push('\n');
    Bytes::from(text)
}

fn ndjson(body: Body) -> Response {
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

/// Ask the run loop to shut down; the answer streams a first line at once
/// and a last one when every service has stopped.
async fn shutdown(State(state): State<Arc<ControlState>>) -> Response {
    let pid = std::process::id();
    let _ = state.requests.send(Request::Shutdown);
    let mut stop = state.shutdown.clone();
    let first = json_line(&ShutdownProgress {
        pid,
        stopped: false,
    });
    let last = async move {
        let _ = stop.wait_for(|s| *s).await;
        Ok::<_, Infallible>(json_line(&ShutdownProgress { pid, stopped: true }))
    };
    let stream = futures_util::stream::once(async move { Ok::<_, Infallible>(first) })
        .chain(futures_util::stream::once(last));
    ndjson(Body::from_stream(stream))
}

/// Lines of the journal files, oldest first, and with `follow` every line
/// recorded afterwards until the instance shuts down.
async fn journal_lines(
    State(state): State<Arc<ControlState>>,
    Query(query): Query<JournalQuery>,
) -> Response {
    if let Some(name) = &query.service
        && !exists(&state.sup, name)
    {
        return unknown_service(&state.sup, name);
    }
    // Subscribe before reading the files, so nothing falls in between;
    // what is in both is sent once.
    let live = query.follow.then(|| state.sup.subscribe_journal());
    let dir = state.state_dir.clone();
    let wanted = query.clone();
    let n = query.lines.unwrap_or(DEFAULT_JOURNAL_LINES);
    let (past, recent) = tokio::task::spawn_blocking(move || {
        // Only the newest lines can also arrive live: 256 of them are kept.
        journal::read_tail(&dir, journal::Options::default().keep, n, 256, |l| {
            wanted.matches(l)
        })
    })
    .await
    .unwrap_or_default();
    let past_stream = futures_util::stream::iter(
        past.into_iter()
            .map(|l| Ok::<_, Infallible>(json_line(&l)))
            .collect::<Vec<_>>(),
    );
    let Some(live) = live else {
        return ndjson(Body::from_stream(past_stream));
    };
    let follow = Follow {
        rx: live,
        stop: state.shutdown.clone(),
        query,
        recent,
    };
    let live_stream = futures_util::stream::unfold(follow, |mut f| async move {
        f.next().await.map(|bytes| (Ok::<_, Infallible>(bytes), f))
    });
    ndjson(Body::from_stream(past_stream.chain(live_stream)))
}

/// A journal follower: new lines for one service (or all) until shutdown.
struct Follow {
    rx: broadcast::Receiver<Line>,
    stop: watch::Receiver<bool>,
    /// Which lines to send.
    query: JournalQuery,
    /// Lines already sent from the file that may come again live.
    recent: Vec<Line>,
}

impl Follow {
    async fn next(&mut self) -> Option<Bytes> {
        use broadcast::error::{RecvError, TryRecvError};
        loop {
            // Once stopping, drain what was recorded (the `quit` line) and end.
            let line = if *self.stop.borrow() {
                match self.rx.try_recv() {
                    Ok(line) => Ok(line),
                    Err(TryRecvError::Lagged(n)) => Err(n),
                    Err(_) => return None,
                }
            } else {
                tokio::select! {
                    biased;
                    line = self.rx.recv() => match line {
                        Ok(line) => Ok(line),
                        Err(RecvError::Lagged(n)) => Err(n),
                        Err(RecvError::Closed) => return None,
                    },
                    changed = self.stop.changed() => {
                        if changed.is_err() {
                            return None;
                        }
                        continue;
                    }
                }
            };
            match line {
                Ok(line) => {
                    if !self.recent.is_empty() {
                        if self.recent.contains(&line) {
                            continue;
                        }
                        self.recent.clear(); // past the overlap
                    }
                    if self.query.matches(&line) {
                        return Some(json_line(&line));
                    }
                }
                Err(n) => {
                    let warning = Line {
                        ts: journal::timestamp(SystemTime::now()),
                        service: None,
                        event: journal::Event::Warning {
                            message: format!("journal follow fell behind: {n} lines skipped"),
                        },
                    };
                    return Some(json_line(&warning));
                }
            }
        }
    }
}
