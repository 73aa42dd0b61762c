//! Outbound HTTP through the host (`vigil:health/http`). Every request
//! and every redirect is checked against the service's `[grants] hosts` (`--allow-host` with `vigil check`).
//!
//! ```no_run
//! use std::time::Duration;
//! use vigil_sdk::http;
//!
//! # fn demo() -> Result<(), vigil_sdk::ErrorCode> {
//! let response = http::get("http://127.0.0.1:8080/healthz")?;
//! assert!(response.is_success());
//!
//! let response = http::Request::new("POST", "http://127.0.0.1:8080/probe")
//!     .header("content-type", "application/json")
//!     .body(r#"{"deep":true}"#)
//!     .timeout(Duration::from_millis(500))
//!     .follow_redirects(false)
//!     .send()?;
//! println!("{} {}", response.status, response.text());
//! # Ok(())
//! # }
//! ```

use std::borrow::Cow;
use std::time::Duration;

use crate::ErrorCode;
use crate::bindings::checker::vigil::health::http as raw;

pub use raw::{Request, Response};

/// `GET url`, following redirects (to granted destinations), under the
/// check's own deadline.
pub fn get(url: &str) -> Result<Response, ErrorCode> {
    Request::get(url).send()
}

impl Request {
    /// A request with no headers and no body that follows redirects and has
    /// no deadline of its own (the check's deadline still applies).
    pub fn new(method: &str, url: &str) -> Self {
        Request {
            method: method.to_string(),
            url: url.to_string(),
            headers: Vec::new(),
            body: None,
            timeout_ms: None,
            follow_redirects: true,
        }
    }

    /// A `GET` request.
    pub fn get(url: &str) -> Self {
        Self::new("GET", url)
    }

    /// Add a request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Set the request body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// A deadline for this request (saturates at about 49 days).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout_ms = Some(crate::millis_u32(timeout));
        self
    }

    /// Whether to follow redirects (default `true`). A redirect to a
    /// destination that is not granted is never followed: the check sees
    /// the 3xx response.
    pub fn follow_redirects(mut self, follow: bool) -> Self {
        self.follow_redirects = follow;
        self
    }

    /// Perform the request.
    pub fn send(&self) -> Result<Response, ErrorCode> {
        raw::send(self)
    }
}

impl Response {
    /// The first header called `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text, invalid UTF-8 replaced.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// Status 200-299.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}
