//! The status page of `vigil run --http ADDR`, at `/`.
//!
//! One HTML page, a script and a style sheet, embedded in the binary
//! (`include_str!`: no CDN, no build step), fed by:
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /api/status` | [`PageStatus`]: services, recent check results, recent journal lines, whether actions are on |
//! | `GET /api/events` | Server-Sent Events: `journal` (one journal line) as it is recorded, `status` (a [`PageStatus`] without the journal) after a burst of lines and every 2 s |
//! | `GET /api/logs/{name}` | the last lines of a service's log file, as JSON strings |
//! | `POST /api/services/{name}/start\|stop\|restart\|replace` | only with `--http-token-file` |
//!
//! # Safety of what it shows
//! Everything on the page that a check, a service or its output controls
//! is set with `textContent` (the script never uses `innerHTML`), and a
//! Content-Security-Policy allows only the page's own script, so that
//! even a mistake could not run an injected one.
//!
//! # Actions
//! Off unless `--http-token-file FILE` is given; then a `POST` must carry
//! `Authorization: Bearer TOKEN`. A browser sends that header only from
//! the page's own script: a cross-site form cannot set headers, and a
//! cross-site `fetch` with one needs a CORS preflight this server never
//! grants. A request whose `Origin` is another site, or whose
//! `Sec-Fetch-Site` is `cross-site` or `same-site`, is refused as well
//! (CSRF protection does not rest on one check). Without a token the
//! endpoints answer 404 and the page draws no buttons.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::broadcast;

use super::api::{ServiceStatus, StatusReport};
use super::http::HttpState;
use crate::journal::{self, Line};
use crate::supervisor::service::{Event, Why};

/// What the page needs beyond the supervisor.
#[derive(Debug, Clone)]
pub struct PageOptions {
    pub state_dir: PathBuf,
    pub started_at: SystemTime,
    /// The bearer token that enables actions (`--http-token-file`).
    pub token: Option<String>,
}

/// `GET /api/status` and the `status` event.
#[derive(Debug, Clone, Serialize)]
pub struct PageStatus {
    #[serde(flatten)]
    pub report: StatusReport,
    /// Recent check results per service (latency plots).
    pub checks: std::collections::BTreeMap<String, Vec<super::api::CheckSample>>,
    /// The last journal lines (only in `GET /api/status`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub journal: Vec<Line>,
    /// Start, stop, restart and replace are allowed (a token is configured).
    pub actions: bool,
}

const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/page.js");
const STYLE: &str = include_str!("page/page.css");

/// Journal lines in `GET /api/status`.
const JOURNAL_LINES: usize = 50;
/// Log lines in `GET /api/logs/{name}`.
const LOG_LINES: usize = 40;
/// A `status` event at least this often (uptimes, latencies).
const STATUS_EVERY: Duration = Duration::from_secs(2);

/// Only what the page loads; no inline script or style, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// The status report as the control socket's `GET /v1/status` answers it.
fn report(state: &HttpState) -> StatusReport {
    let sup = &state.sup;
    StatusReport {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: state
            .page
            .started_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default(),
        state_dir: state.page.state_dir.clone(),
        cgroups: sup.cgroups().map(|t| t.path().to_path_buf()),
        services: sup
            .snapshots()
            .iter()
            .map(|(name, snap)| {
                super::server::with_definition(sup, super::server::service_status(name, snap))
            })
            .collect(),
    }
}

fn page_status(state: &HttpState, journal: Vec<Line>) -> PageStatus {
    PageStatus {
        report: report(state),
        checks: super::server::check_history(&state.sup, None).services,
        journal,
        actions: state.page.token.is_some(),
    }
}

pub async fn status(State(state): State<Arc<HttpState>>) -> Response {
    let dir = state.page.state_dir.clone();
    let journal = tokio::task::spawn_blocking(move || {
        journal::read_tail(
            &dir,
            journal::Options::default().keep,
            JOURNAL_LINES,
            0,
            |_| true,
        )
        .0
    })
    .await
    .unwrap_or_default();
    no_store(Json(page_status(&state, journal)).into_response())
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// One Server-Sent Event; the data is JSON (one line: serde escapes
/// newlines inside strings, so no field can end the event early).
fn sse<T: Serialize>(event: &str, value: &T) -> Bytes {
    match serde_json::to_string(value) {
        Ok(json) => Bytes::from(format!("event: {event}\ndata: {json}\n\n")),
        Err(e) => Bytes::from(format!(
            ": cannot encode: {}\n\n",
            e.to_string().replace('\n', " ")
        )),
    }
}

/// Journal lines as they are recorded, and the status after them (and
/// every [`STATUS_EVERY`]), until the instance shuts down.
pub async fn events(State(state): State<Arc<HttpState>>) -> Response {
    struct Feed {
        state: Arc<HttpState>,
        rx: broadcast::Receiver<Line>,
        /// A status event is owed (lines arrived since the last one).
        dirty: bool,
        first: bool,
        tick: tokio::time::Interval,
    }
    let mut tick = tokio::time::interval(STATUS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let feed = Feed {
        rx: state.sup.subscribe_journal(),
        state,
        dirty: false,
        first: true,
        tick,
    };
    let stream = futures_util::stream::unfold(feed, |mut f| async move {
        use broadcast::error::RecvError;
        if f.first {
            f.first = false;
            // Tell the browser to come back quickly after a restart of vigil.
            return Some((
                Ok::<_, std::convert::Infallible>(Bytes::from("retry: 2000\n\n")),
                f,
            ));
        }
        let mut stop = f.state.shutdown.clone();
        loop {
            if *stop.borrow() {
                return None;
            }
            let settle = tokio::time::sleep(if f.dirty {
                Duration::from_millis(100)
            } else {
                Duration::from_secs(3600)
            });
            tokio::select! {
                line = f.rx.recv() => match line {
                    Ok(line) => {
                        f.dirty = true;
                        return Some((Ok(sse("journal", &line)), f));
                    }
                    Err(RecvError::Lagged(_)) => f.dirty = true,
                    Err(RecvError::Closed) => return None,
                },
                _ = settle => {
                    f.dirty = false;
                    return Some((Ok(sse("status", &page_status(&f.state, Vec::new()))), f));
                }
                _ = f.tick.tick() => {
                    f.dirty = false;
                    return Some((Ok(sse("status", &page_status(&f.state, Vec::new()))), f));
                }
                _ = stop.changed() => return None,
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// The last lines of a service's log file, raw (the page shows them as text).
pub async fn logs(State(state): State<Arc<HttpState>>, UrlPath(name): UrlPath<String>) -> Response {
    if state.sup.service(&name).is_none() {
        return (StatusCode::NOT_FOUND, "no such service\n").into_response();
    }
    let dir = state.page.state_dir.join("logs");
    let lines = tokio::task::spawn_blocking(move || {
        let Some(files) = crate::supervisor::logs::files(&dir, &name) else {
            return Vec::new();
        };
        let all = files.read_all();
        all[all.len().saturating_sub(LOG_LINES)..].to_vec()
    })
    .await
    .unwrap_or_default();
    no_store(Json(lines).into_response())
}

/// Why an action request is refused, if it is.
fn refuse(token: Option<&str>, headers: &HeaderMap) -> Option<(StatusCode, &'static str)> {
    let Some(token) = token else {
        return Some((
            StatusCode::NOT_FOUND,
            "actions are off (no --http-token-file)\n",
        ));
    };
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site"))
        && !matches!(site, "same-origin" | "none")
    {
        return Some((StatusCode::FORBIDDEN, "cross-site request refused\n"));
    }
    if let Some(origin) = text(header::ORIGIN) {
        let host = text(header::HOST).unwrap_or_default();
        let same = origin
            .strip_prefix("http://")
            .is_some_and(|rest| rest == host);
        if !same {
            return Some((StatusCode::FORBIDDEN, "cross-origin request refused\n"));
        }
    }
    let given = text(header::AUTHORIZATION)
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !same_secret(given.as_bytes(), token.as_bytes()) {
        return Some((
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is required\n",
        ));
    }
    None
}

/// Compare without an early exit on the first differing byte.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `POST /api/services/{name}/{action}`: sent to the service and answered
/// with its status at once (the page follows the rest live).
pub async fn action(
    State(state): State<Arc<HttpState>>,
    UrlPath((name, action)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some((code, why)) = refuse(state.page.token.as_deref(), &headers) {
        return (code, why).into_response();
    }
    let event = match action.as_str() {
        "start" => Event::Start,
        "stop" => Event::Stop(Why::operator("status page: stop")),
        "restart" => Event::Restart(Why::operator("status page: restart")),
        // Answered at once as the others: the page shows the replace's
        // progress live (both pids, then the switch or its failure).
        "replace" => Event::Replace(Why::operator("status page: replace")),
        _ => {
            return (StatusCode::NOT_FOUND, "start, stop, restart or replace\n").into_response();
        }
    };
    if !state.sup.send_and_sync(&name, event).await {
        return (StatusCode::NOT_FOUND, "no such service\n").into_response();
    }
    match state.sup.snapshots().get(&name) {
        Some(snap) => {
            let status: ServiceStatus = super::server::service_status(&name, snap);
            (StatusCode::ACCEPTED, Json(status)).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such service\n").into_response(),
    }
}

/// Read `--http-token-file`: its first line, trimmed; empty is an error.
pub fn read_token(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--http-token-file {}: {e}", path.display()))?;
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    if token.is_empty() {
        return Err(format!(
            "--http-token-file {}: the file is empty",
            path.display()
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "--http-token-file {}: the token must be printable ASCII without spaces",
            path.display()
        ));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header value"));
        }
        h
    }

    #[test]
    fn actions_need_the_token_and_a_same_origin_request() {
        let ok = [("host", "127.0.0.1:9"), ("authorization", "Bearer s3cret")];
        assert_eq!(refuse(Some("s3cret"), &headers(&ok)), None);
        assert_eq!(
            refuse(None, &headers(&ok)).map(|r| r.0),
            Some(StatusCode::NOT_FOUND)
        );
        let wrong = [("authorization", "Bearer s3cre")];
        assert_eq!(
            refuse(Some("s3cret"), &headers(&wrong)).map(|r| r.0),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            refuse(Some("s3cret"), &headers(&[])).map(|r| r.0),
            Some(StatusCode::UNAUTHORIZED)
        );
        let mut cross = ok.to_vec();
        cross.push(("origin", "http://evil.example"));
        assert_eq!(
            refuse(Some("s3cret"), &headers(&cross)).map(|r| r.0),
            Some(StatusCode::FORBIDDEN)
        );
        let mut same = ok.to_vec();
        same.push(("origin", "http://127.0.0.1:9"));
        same.push(("sec-fetch-site", "same-origin"));
        assert_eq!(refuse(Some("s3cret"), &headers(&same)), None);
        let mut site = ok.to_vec();
        site.push(("sec-fetch-site", "cross-site"));
        assert_eq!(
            refuse(Some("s3cret"), &headers(&site)).map(|r| r.0),
            Some(StatusCode::FORBIDDEN)
        );
    }
}
