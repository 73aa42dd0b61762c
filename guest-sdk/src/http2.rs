//! Outbound HTTP/2 with trailers through the host (`vigil:health/http2`,
//! since WIT 0.1.1): what a gRPC call needs. Granted like [`crate::http`]:
//! every request is checked against the service's `[grants] hosts`
//! (`--allow-host` with `vigil check`). `http://` is HTTP/2 with prior
//! knowledge (h2c); `https://` negotiates `h2`. Redirects are not followed.
//!
//! ```no_run
//! use std::time::Duration;
//! use vigil_sdk::http2::Request;
//!
//! # fn demo() -> Result<(), vigil_sdk::ErrorCode> {
//! let response = Request::new("POST", "http://127.0.0.1:50051/pkg.Svc/Method")
//!     .header("content-type", "application/grpc")
//!     .body(vec![0, 0, 0, 0, 0])
//!     .timeout(Duration::from_secs(1))
//!     .send()?;
//! println!("grpc-status {:?}", response.trailer("grpc-status"));
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use crate::ErrorCode;
use crate::bindings::checker::vigil::health::http2 as raw;

pub use raw::{Request, Response, TlsOptions};

impl Request {
    /// A request with no headers, no body, no TLS options and no deadline
    /// of its own (the check's deadline still applies).
    pub fn new(method: &str, url: &str) -> Self {
        Request {
            method: method.to_string(),
            url: url.to_string(),
            headers: Vec::new(),
            body: None,
            timeout_ms: None,
            connect_timeout_ms: None,
            tls: None,
        }
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

    /// A deadline for the whole exchange (saturates at about 49 days).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout_ms = Some(crate::millis_u32(timeout));
        self
    }

    /// A deadline for connecting (TCP and TLS).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout_ms = Some(crate::millis_u32(timeout));
        self
    }

    /// How to verify an `https://` server.
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = Some(tls);
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
        find(&self.headers, name)
    }

    /// The first trailer called `name`, compared case-insensitively.
    pub fn trailer(&self, name: &str) -> Option<&str> {
        find(&self.trailers, name)
    }
}

fn find<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}
