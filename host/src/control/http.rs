//! `vigil run --http ADDR`: a read-only TCP listener for kubelet probes
//! and Prometheus.
//!
//! - `GET /livez`: 200 while the run loop answers (a ping through it).
//! - `GET /readyz`: 200 when every service is ready (a one-shot that
//!   exited cleanly counts), 503 otherwise and while shutting down;
//!   `?verbose` lists each service as kubelet's endpoints do.
//! - `GET /metrics`: see [`super::metrics`].
//! - `GET /`: the status page, and its `/api/...`: see [`super::page`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, oneshot, watch};

use super::Request;
use super::metrics;
use super::page;
use crate::supervisor::Supervisor;

/// What the handlers share.
pub struct HttpState {
    pub sup: Supervisor,
    pub requests: mpsc::UnboundedSender<Request>,
    pub registry: Registry,
    /// Set once the instance is shutting down: `/readyz` answers 503.
    pub stopping: Arc<AtomicBool>,
    pub shutdown: watch::Receiver<bool>,
    pub page: super::page::PageOptions,
}

/// How long `/livez` waits for the run loop.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/", get(page::index))
        .route("/page.js", get(page::script))
        .route("/page.css", get(page::style))
        .route("/api/status", get(page::status))
        .route("/api/events", get(page::events))
        .route("/api/logs/{name}", get(page::logs))
        .route("/api/services/{name}/{action}", post(page::action))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "not found: /, /livez, /readyz, /metrics\n",
            )
        })
        .with_state(state)
}

/// Serve until `shutdown` flips; in-flight requests finish. Slow clients
/// are timed out and open connections capped, apart from the control
/// socket's: see [`super::listen`].
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<HttpState>) {
    let shutdown = state.shutdown.clone();
    let app = router(state);
    super::listen::accept_loop(
        listener,
        "--http listener",
        super::listen::HTTP_MAX_CONNECTIONS,
        shutdown,
        move |io, stop| super::listen::serve_http1(io, app.clone(), stop, "--http"),
    )
    .await;
}

async fn livez(State(state): State<Arc<HttpState>>) -> Response {
    let (reply, answer) = oneshot::channel();
    if state.requests.send(Request::Ping(reply)).is_ok()
        && matches!(tokio::time::timeout(PING_TIMEOUT, answer).await, Ok(Ok(())))
    {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the supervisor loop does not answer\n",
        )
            .into_response()
    }
}

async fn readyz(
    State(state): State<Arc<HttpState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let verbose = query.contains_key("verbose");
    let stopping = state.stopping.load(Ordering::Relaxed);
    let mut body = String::new();
    let mut ready = !stopping;
    if stopping {
        body.push_str("[-]vigil failed: shutting down\n");
    }
    for (name, snap) in state.sup.snapshots() {
        if snap.satisfies_after {
            body.push_str(&format!("[+]{name} ok\n"));
        } else {
            ready = false;
            body.push_str(&format!("[-]{name} failed: {}\n", snap.status));
        }
    }
    let (status, verdict) = if ready {
        (StatusCode::OK, "readyz check passed\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "readyz check failed\n")
    };
    let text = if verbose {
        body + verdict
    } else if ready {
        "ok\n".to_string()
    } else {
        verdict.to_string()
    };
    (status, text).into_response()
}

/// OpenMetrics for scrapers that ask for it (Prometheus does), the
/// classic text format for everyone else (`curl`, older scrapers).
async fn metrics_text(
    State(state): State<Arc<HttpState>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    match metrics::encode(&state.registry) {
        Ok(text) if openmetrics => {
            ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
        }
        Ok(text) => (
            [(header::CONTENT_TYPE, metrics::CLASSIC_CONTENT_TYPE)],
            metrics::to_classic(&text),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {e}\n"),
        )
            .into_response(),
    }
}
