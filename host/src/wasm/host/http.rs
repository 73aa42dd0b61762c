//! `vigil:health/http`: requests performed by the host with reqwest.
//!
//! The client never reads proxy settings from the environment, follows no
//! redirect by itself (each hop is re-checked against the grants here), and
//! resolves names through [`GrantedResolver`], which drops addresses the
//! grants do not allow.

use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Method, Url};

use crate::wasm::bindings::ErrorCode;
use crate::wasm::bindings::checker::vigil::health::http::{self, Request, Response};
use crate::wasm::grants::{Grants, Scheme};
use crate::wasm::store::{HostState, MAX_TRANSFER};

const MAX_REDIRECTS: usize = 10;

/// Builds the HTTP client for one set of grants.
pub(crate) fn client(grants: Arc<Grants>) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GrantedResolver { grants }))
        // A probe should see the server as a new client would.
        .pool_max_idle_per_host(0)
        .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Resolves names and keeps only granted addresses (no DNS rebinding).
struct GrantedResolver {
    grants: Arc<Grants>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct AddressDenied(String);

impl Resolve for GrantedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let grants = self.grants.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|addr| grants.allows_address(None, &host, addr.ip()))
                .collect();
            if allowed.is_empty() {
                let shown: Vec<String> = resolved.iter().map(|a| a.ip().to_string()).collect();
                return Err(Box::new(AddressDenied(format!(
                    "{host} resolves to {}, which the grants do not allow (a name granted by name may only reach public addresses)",
                    shown.join(", ")
                )))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
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

fn check_granted(grants: &Grants, url: &Url) -> Result<(), ErrorCode> {
    let scheme = scheme_of(url)?;
    let host = url
        .host_str()
        .ok_or_else(|| ErrorCode::Invalid(format!("{url} has no host")))?;
    let port = url.port_or_known_default().unwrap_or(0);
    if grants.allows_destination(scheme, host, port) {
        Ok(())
    } else {
        Err(ErrorCode::Denied(format!(
            "{}://{host}:{port} is not in allowed-hosts",
            scheme.as_str()
        )))
    }
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
    let mut body = request.body;
    check_granted(grants, &url)?;
    for hop in 0..=MAX_REDIRECTS {
        let mut builder = client.request(method.clone(), url.clone());
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = &body {
            builder = builder.body(body.clone());
        }
        let built = builder
            .build()
            .map_err(|err| ErrorCode::Invalid(err.to_string()))?;
        let mut response = client
            .execute(built)
            .await
            .map_err(|err| request_error(&err))?;
        let status = response.status();
        let next = status
            .is_redirection()
            .then(|| response.headers().get(reqwest::header::LOCATION))
            .flatten()
            .and_then(|location| location.to_str().ok())
            .and_then(|location| url.join(location).ok());
        // A redirect to a destination that is not granted is not followed:
        // the guest sees the 3xx itself.
        let follow = request.follow_redirects && hop < MAX_REDIRECTS;
        if let Some(next) = next.filter(|next| follow && check_granted(grants, next).is_ok()) {
            if status == reqwest::StatusCode::SEE_OTHER
                || (matches!(status.as_u16(), 301 | 302) && method == Method::POST)
            {
                method = Method::GET;
                body = None;
            }
            url = next;
            continue;
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
    async fn send(&mut self, request: Request) -> Result<Response, ErrorCode> {
        let Some(client) = self.caps.http.as_ref().and_then(|h| h.get()) else {
            return Err(ErrorCode::Io("HTTP client unavailable".into()));
        };
        let timeout = self.caps.call_timeout(request.timeout_ms);
        match tokio::time::timeout(timeout, send(&client, &self.caps.grants, request)).await {
            Ok(result) => result,
            Err(_) => Err(ErrorCode::Timeout),
        }
    }
}
