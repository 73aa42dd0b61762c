//! `vigil:health/http2` (since WIT 0.1.1): one HTTP/2 request with its
//! trailers, performed by the host with reqwest. What `builtin:grpc`
//! speaks `grpc.health.v1.Health/Check` over.
//!
//! Every request gets a client of its own, built for that request only
//! (1.7 µs measured for `http`'s, plus parsing the guest's CA): its TLS
//! settings are the guest's, so they cannot be shared with another
//! request. The grants are checked as for `http` ([`granted_addresses`]
//! on the URL's scheme, host and port), and the client is handed exactly
//! the granted addresses with `resolve_to_addrs`; its resolver refuses
//! every other name, so no lookup happens after the check. A TLS
//! `server-name` only changes the name the client verifies and sends as
//! SNI and `:authority`: the connection goes to the URL host's granted
//! addresses, and an IP address as server name is refused (reqwest would
//! connect to it directly, around the pins).
//!
//! No redirect is followed (gRPC has none), no proxy is used, and the host
//! sends `te: trailers` itself (hyper passes exactly that value on HTTP/2).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use reqwest::dns::{Name, Resolve, Resolving};
use reqwest::{Method, Url};

use super::HostError;
use super::http::check_request;
use super::tcp::granted_addresses;
use crate::wasm::bindings::ErrorCode;
use crate::wasm::bindings::checker::vigil::health::http2::{self, Request, Response, TlsOptions};
use crate::wasm::grants::{Grants, Scheme};
use crate::wasm::store::{HostState, MAX_TRANSFER};

/// Refuses every lookup: the only names a request's client may connect to
/// are those it was handed with `resolve_to_addrs`, after the grant check.
struct NoLookups;

#[derive(Debug, thiserror::Error)]
#[error("{0}: no checked address to connect to")]
struct NotPinned(String);

impl Resolve for NoLookups {
    fn resolve(&self, name: Name) -> Resolving {
        let err = NotPinned(name.as_str().to_owned());
        Box::pin(std::future::ready(Err(
            Box::new(err) as Box<dyn std::error::Error + Send + Sync>
        )))
    }
}

/// What one request connects to, after the grant check.
struct Prepared {
    /// The URL sent: the guest's, its host replaced by the TLS server name
    /// when there is one.
    url: Url,
    client: reqwest::Client,
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

/// Checks the destination against the grants and builds the client that
/// can reach only its granted addresses.
async fn prepare(
    grants: &Grants,
    url: &str,
    tls: Option<TlsOptions>,
    connect_timeout: Option<Duration>,
) -> Result<Prepared, ErrorCode> {
    let mut url =
        Url::parse(url).map_err(|err| ErrorCode::Invalid(format!("bad URL `{url}`: {err}")))?;
    let scheme = scheme_of(&url)?;
    let host = url
        .host_str()
        .ok_or_else(|| ErrorCode::Invalid(format!("{url} has no host")))?
        .to_owned();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| ErrorCode::Invalid(format!("{url} has no port")))?;
    if scheme == Scheme::Http && tls.is_some() {
        return Err(ErrorCode::Invalid(
            "TLS options need an https:// URL".to_owned(),
        ));
    }
    let addresses: Vec<SocketAddr> = granted_addresses(grants, scheme, &host, port).await?;

    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(NoLookups))
        .http2_prior_knowledge()
        .pool_max_idle_per_host(0)
        .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")));
    if let Some(timeout) = connect_timeout {
        builder = builder.connect_timeout(timeout);
    }
    let mut name = host.clone();
    if let Some(tls) = tls {
        if let Some(pem) = tls.ca_pem {
            let roots = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|err| ErrorCode::Invalid(format!("TLS CA certificates: {err}")))?;
            if roots.is_empty() {
                return Err(ErrorCode::Invalid(
                    "TLS CA certificates: no PEM certificate found".to_owned(),
                ));
            }
            builder = builder.tls_built_in_root_certs(false);
            for root in roots {
                builder = builder.add_root_certificate(root);
            }
        }
        if let Some(server_name) = tls.server_name {
            let server_name = server_name.trim().to_owned();
            let bare = server_name.trim_start_matches('[').trim_end_matches(']');
            if server_name.is_empty() || bare.parse::<std::net::IpAddr>().is_ok() {
                return Err(ErrorCode::Invalid(format!(
                    "TLS server name `{server_name}` must be a DNS name (an IP address is verified as the URL's host)"
                )));
            }
            url.set_host(Some(&server_name)).map_err(|err| {
                ErrorCode::Invalid(format!("TLS server name `{server_name}`: {err}"))
            })?;
            name = server_name;
        }
    }
    // An IP literal is connected to as is (it was checked above); a name
    // gets exactly its granted addresses.
    builder = builder.resolve_to_addrs(&name, &addresses);
    let client = builder
        .build()
        .map_err(|err| ErrorCode::Invalid(format!("cannot build the HTTP/2 client: {err}")))?;
    Ok(Prepared { url, client })
}

fn request_error(err: &reqwest::Error) -> ErrorCode {
    use std::error::Error as _;
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(denied) = cause.downcast_ref::<NotPinned>() {
            return ErrorCode::Denied(denied.to_string());
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
        return ErrorCode::Timeout;
    }
    let chain: Vec<String> = std::iter::successors(err.source(), |e| (*e).source())
        .map(|e| e.to_string())
        .collect();
    ErrorCode::Io(format!("{err}: {}", chain.join(": ")))
}

fn pairs(headers: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

async fn send(grants: &Grants, request: Request) -> Result<Response, ErrorCode> {
    let method = Method::from_bytes(request.method.as_bytes())
        .map_err(|_| ErrorCode::Invalid(format!("bad HTTP method `{}`", request.method)))?;
    check_request(&method, &request.headers)?;
    let connect_timeout = request
        .connect_timeout_ms
        .map(|ms| Duration::from_millis(u64::from(ms)));
    let Prepared { url, client } =
        prepare(grants, &request.url, request.tls, connect_timeout).await?;
    let mut builder = client
        .request(method, url)
        .header(reqwest::header::TE, "trailers");
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    if let Some(body) = request.body {
        builder = builder.body(body);
    }
    let built = builder
        .build()
        .map_err(|err| ErrorCode::Invalid(err.to_string()))?;
    let response = client
        .execute(built)
        .await
        .map_err(|err| request_error(&err))?;
    let status = response.status().as_u16();
    let headers = pairs(response.headers());
    let mut body = hyper::Response::from(response).into_body();
    let mut collected = Vec::new();
    let mut trailers = Vec::new();
    let mut truncated = false;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| request_error(&err))?;
        match frame.into_data() {
            Ok(chunk) => {
                let room = MAX_TRANSFER - collected.len();
                if chunk.len() > room {
                    collected.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    break;
                }
                collected.extend_from_slice(&chunk);
            }
            Err(frame) => {
                if let Ok(map) = frame.into_trailers() {
                    trailers.extend(pairs(&map));
                }
            }
        }
    }
    Ok(Response {
        status,
        headers,
        body: collected,
        truncated,
        trailers,
    })
}

impl http2::Host for HostState {
    async fn send(&mut self, request: Request) -> Result<Response, HostError> {
        let timeout = self.caps.call_timeout(request.timeout_ms);
        match tokio::time::timeout(timeout, send(&self.caps.grants, request)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(ErrorCode::Timeout.into()),
        }
    }
}
