//! `vigil:health/http`: requests performed by the host with reqwest.
//!
//! The client never reads proxy settings from the environment and follows
//! no redirect by itself: [`send`] walks the hops, and for each one
//! resolves the name, keeps the addresses [`Grants::allows`] grants for
//! that hop's scheme and port (the rule `tcp` applies too), and hands
//! reqwest exactly those, pinned: [`PinnedResolver`] answers from the
//! request's own pins and never looks a name up again, so a DNS answer
//! cannot change between check and connect. Credentials are dropped when a
//! redirect leaves the origin.
//!
//! The pins travel in a task-local around `Client::execute`. Not in a map
//! keyed by host on the shared client: concurrent requests could then hand
//! one request the addresses checked for another request's port. Not in a
//! client per request (`resolve_to_addrs`): building one is cheap (1.7 µs
//! measured, the webpki roots are static), but the sandbox's one client
//! keeps its TLS session cache, so probes of an https service resume
//! sessions. reqwest resolves inside the future `execute` returns, on the
//! caller's task; were it ever to resolve elsewhere, the resolver finds no
//! pins and the request fails as denied (closed, not open).

use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Method, Url};

use super::HostError;
use super::tcp::{allowed_addresses, granted_addresses};
use crate::wasm::bindings::ErrorCode;
use crate::wasm::bindings::checker::vigil::health::http::{self, Request, Response};
use crate::wasm::grants::{Grants, Scheme};
use crate::wasm::store::{HostState, MAX_TRANSFER};

const MAX_REDIRECTS: usize = 10;

/// Request headers that carry credentials for one origin: dropped when a
/// redirect leads to another scheme, host or port (reqwest's list).
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "cookie2",
    "proxy-authorization",
    "www-authenticate",
];

/// Request headers a guest may not set: they frame the message or steer
/// the connection (hop-by-hop), which is the host's business, and a guest
/// that sets them could desynchronise what the server and the host think
/// was sent. `Host` stays allowed, as in Kubernetes' httpGet probes: the
/// grant names where a request goes, not which virtual host it asks for.
const FORBIDDEN_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "expect",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Methods a check has no use for: `CONNECT` asks a proxy for a tunnel,
/// `TRACE` echoes the request (credentials included) back.
const FORBIDDEN_METHODS: &[&str] = &["CONNECT", "TRACE"];

/// The guest's method and headers, refused when they are not a plain
/// request's (see [`FORBIDDEN_HEADERS`], [`FORBIDDEN_METHODS`]).
pub(super) fn check_request(
    method: &Method,
    headers: &[(String, String)],
) -> Result<(), ErrorCode> {
    if FORBIDDEN_METHODS.contains(&method.as_str()) {
        return Err(ErrorCode::Invalid(format!(
            "the {method} method is not allowed in a check"
        )));
    }
    if let Some((name, _)) = headers.iter().find(|(name, _)| {
        let name = name.trim();
        FORBIDDEN_HEADERS
            .iter()
            .any(|forbidden| name.eq_ignore_ascii_case(forbidden))
    }) {
        return Err(ErrorCode::Invalid(format!(
            "header `{name}` is set by the host, not by a check"
        )));
    }
    Ok(())
}

/// Builds the HTTP client for one set of grants.
pub(crate) fn client(grants: Arc<Grants>) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(PinnedResolver { grants }))
        // A probe should see the server as a new client would.
        .pool_max_idle_per_host(0)
        // HTTP/2 is `http2`'s (reqwest has it for that): this client stays
        // what it was, HTTP/1.1 only, also over TLS (ALPN).
        .http1_only()
        .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The checked addresses of the hop being sent.
struct Pins {
    scheme: Scheme,
    port: u16,
    /// The URL's host, which is the name reqwest asks to resolve.
    host: String,
    addresses: Vec<SocketAddr>,
}

tokio::task_local! {
    static PINS: Pins;
}

/// Answers reqwest's lookups with the pins of the request being sent.
/// It checks them once more against the grants, so that whatever pins a
/// future caller sets, no socket opens that the grants refuse.
struct PinnedResolver {
    grants: Arc<Grants>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct AddressDenied(String);

impl PinnedResolver {
    /// The pins for `name`, as long as the grants still allow them.
    fn addresses(&self, pins: &Pins, name: &str) -> Option<Vec<SocketAddr>> {
        if !pins.host.eq_ignore_ascii_case(name) {
            return None;
        }
        let addresses =
            allowed_addresses(&self.grants, pins.scheme, pins.port, name, &pins.addresses);
        (!addresses.is_empty()).then_some(addresses)
    }
}

impl Resolve for PinnedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let name = name.as_str();
        let pinned = PINS
            .try_with(|pins| self.addresses(pins, name))
            .ok()
            .flatten();
        let result = match pinned {
            Some(addresses) => Ok(Box::new(addresses.into_iter()) as Addrs),
            None => Err(Box::new(AddressDenied(format!(
                "{name}: no checked address to connect to (names are resolved only by the request that checks them)"
            ))) as Box<dyn std::error::Error + Send + Sync>),
        };
        Box::pin(std::future::ready(result))
    }
}

fn request_error(err: &reqwest::Error) -> ErrorCode {
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(denied) = cause.downcast_ref::<AddressDenied>() {
            return ErrorCode::Denied(denied.0.clone());
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset => {
                    return ErrorCode::Refused;
                }
                std::io::ErrorKind::TimedOut => return ErrorCode::Timeout,
                _ => {}
            }
        }
        source = cause.source();
    }
    if err.is_timeout() {
        ErrorCode::Timeout
    } else {
        let chain: Vec<String> = std::iter::successors(err.source(), |e| (*e).source())
            .map(|e| e.to_string())
            .collect();
        ErrorCode::Io(format!("{err}: {}", chain.join(": ")))
    }
}

fn scheme_of(url: &Url) -> Result<Scheme, ErrorCode> {
    match url.scheme() {
        "http" => Ok(Scheme::Http),
        "https" => Ok(Scheme::Https),
        other => Err(ErrorCode::Invalid(format!(
            "unsupported URL scheme `{other}` (use http or https)"
        ))),
    }
}

/// The checked addresses for `url`'s scheme, host and port: the hop may
/// connect to these and nothing else.
async fn pin(grants: &Grants, url: &Url) -> Result<Pins, ErrorCode> {
    let scheme = scheme_of(url)?;
    let host = url
        .host_str()
        .ok_or_else(|| ErrorCode::Invalid(format!("{url} has no host")))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| ErrorCode::Invalid(format!("{url} has no port")))?;
    let addresses = granted_addresses(grants, scheme, host, port).await?;
    Ok(Pins {
        scheme,
        port,
        host: host.to_owned(),
        addresses,
    })
}

/// Scheme, host and port: what credentials are bound to.
fn origin(url: &Url) -> (&str, Option<&str>, Option<u16>) {
    (url.scheme(), url.host_str(), url.port_or_known_default())
}

async fn send(
    client: &reqwest::Client,
    grants: &Grants,
    request: Request,
) -> Result<Response, ErrorCode> {
    let mut url = Url::parse(&request.url)
        .map_err(|err| ErrorCode::Invalid(format!("bad URL `{}`: {err}", request.url)))?;
    let mut method = Method::from_bytes(request.method.as_bytes())
        .map_err(|_| ErrorCode::Invalid(format!("bad HTTP method `{}`", request.method)))?;
    check_request(&method, &request.headers)?;
    let mut body = request.body;
    let mut sent_headers = request.headers;
    let mut pins = pin(grants, &url).await?;
    for hop in 0..=MAX_REDIRECTS {
        let mut builder = client.request(method.clone(), url.clone());
        for (name, value) in &sent_headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = &body {
            builder = builder.body(body.clone());
        }
        let built = builder
            .build()
            .map_err(|err| ErrorCode::Invalid(err.to_string()))?;
        let mut response = PINS
            .scope(pins, client.execute(built))
            .await
            .map_err(|err| request_error(&err))?;
        let status = response.status();
        let next = status
            .is_redirection()
            .then(|| response.headers().get(reqwest::header::LOCATION))
            .flatten()
            .and_then(|location| location.to_str().ok())
            .and_then(|location| url.join(location).ok());
        let follow = request.follow_redirects && hop < MAX_REDIRECTS;
        if let Some(next) = next.filter(|_| follow) {
            // A redirect to a destination that is not granted, or whose
            // addresses are not, is not followed: the guest sees the 3xx.
            match pin(grants, &next).await {
                Ok(next_pins) => {
                    if origin(&next) != origin(&url) {
                        sent_headers.retain(|(name, _)| {
                            !CREDENTIAL_HEADERS
                                .iter()
                                .any(|credential| name.eq_ignore_ascii_case(credential))
                        });
                    }
                    if status == reqwest::StatusCode::SEE_OTHER
                        || (matches!(status.as_u16(), 301 | 302) && method == Method::POST)
                    {
                        method = Method::GET;
                        body = None;
                    }
                    url = next;
                    pins = next_pins;
                    continue;
                }
                Err(ErrorCode::Denied(_) | ErrorCode::Invalid(_)) => {}
                Err(other) => return Err(other),
            }
        }
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut collected = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = response.chunk().await.map_err(|err| request_error(&err))? {
            let room = MAX_TRANSFER - collected.len();
            if chunk.len() > room {
                collected.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            collected.extend_from_slice(&chunk);
        }
        return Ok(Response {
            status: status.as_u16(),
            headers,
            body: collected,
            truncated,
        });
    }
    Err(ErrorCode::Io(format!(
        "more than {MAX_REDIRECTS} redirects"
    )))
}

impl http::Host for HostState {
    async fn send(&mut self, request: Request) -> Result<Response, HostError> {
        let Some(client) = self.caps.http.as_ref().and_then(|h| h.get()) else {
            // Building the client failed (logged): the host's fault.
            return Err(HostError::fault(std::io::Error::other(
                "the host could not build its HTTP client",
            )));
        };
        let timeout = self.caps.call_timeout(request.timeout_ms);
        match tokio::time::timeout(timeout, send(&client, &self.caps.grants, request)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(ErrorCode::Timeout.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(names: &[&str]) -> Vec<(String, String)> {
        names.iter().map(|n| (n.to_string(), "x".into())).collect()
    }

    #[test]
    fn framing_and_hop_by_hop_headers_are_the_hosts() {
        let get = Method::GET;
        for name in [
            "Transfer-Encoding",
            "content-length",
            " Connection",
            "Upgrade",
            "TE",
            "Proxy-Connection",
        ] {
            assert!(
                matches!(
                    check_request(&get, &headers(&[name])),
                    Err(ErrorCode::Invalid(_))
                ),
                "{name} was allowed"
            );
        }
        assert!(
            check_request(
                &get,
                &headers(&[
                    "Host",
                    "Authorization",
                    "Proxy-Authorization",
                    "X-Probe",
                    "é"
                ])
            )
            .is_ok()
        );
    }

    #[test]
    fn connect_and_trace_are_refused() {
        for method in ["CONNECT", "TRACE"] {
            let method = Method::from_bytes(method.as_bytes()).expect("method");
            assert!(matches!(
                check_request(&method, &[]),
                Err(ErrorCode::Invalid(_))
            ));
        }
        for method in ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
            let method = Method::from_bytes(method.as_bytes()).expect("method");
            assert!(check_request(&method, &[]).is_ok(), "{method}");
        }
    }
}
