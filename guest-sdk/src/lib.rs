//! Write Vigil health checks and loaders in Rust.
//!
//! A check is a WebAssembly component that judges a running service. With
//! this crate it is one function:
//!
//! ```
//! use std::time::Duration;
//! use vigil_sdk::{check, http, Outcome, Target};
//!
//! #[check]
//! fn healthz(target: Target) -> Result<Outcome, Outcome> {
//!     let url = target.require("url")?;
//!     let timeout = target.parse_or("timeout", Duration::from_secs(1))?;
//!     let response = http::Request::get(url)
//!         .timeout(timeout)
//!         .send()
//!         .map_err(|e| e.outcome(format_args!("GET {url}")))?;
//!     Ok(match response.status {
//!         200..=399 => Outcome::Ok,
//!         status => Outcome::retry(format!("GET {url}: status {status}")),
//!     })
//! }
//!
//! // The function stays an ordinary function, so it can be unit-tested
//! // natively; anything that does not touch a capability runs as is.
//! let target = vigil_sdk::testing::target_with(&[("timeout", "soon")]);
//! assert_eq!(
//!     healthz(target),
//!     Err(Outcome::error("config key `url` is required")),
//! );
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` from a crate
//! with `crate-type = ["cdylib"]`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the component.
//!
//! # What a check gets
//!
//! - [`Target`]: who is judged (service, [`Phase`], pid, attempt, restarts)
//!   and the check's settings, read with [`Target::config`],
//!   [`Target::require`], [`Target::parse`], [`Target::parse_or`] and
//!   [`Target::parse_required`]; a missing or malformed setting becomes an
//!   [`Outcome::Error`] that names the key (see [`config`]).
//! - Capabilities, each limited by the service's grants: [`http`], [`tcp`],
//!   [`process`], [`fs`], [`log`], [`output`] (the service's own recent
//!   output). A component imports only the
//!   capabilities it calls, so `vigil inspect` shows what it can touch.
//!   A failed call is an [`ErrorCode`], never a trap;
//!   [`ErrorCode::outcome`] turns it into the verdict Vigil's semantics
//!   call for (`denied` and `invalid` are errors, everything else is
//!   worth a retry).
//! - Parsers for durations and sizes in [`units`].
//! - `#[derive(Config)]` ([`config::Config`]): the settings as a struct,
//!   whose schema travels in the component so that `vigil validate`
//!   catches a mistyped key or a bad value before the check runs.
//!
//! # The verdict
//!
//! [`Outcome::Ok`] is healthy/ready; [`Outcome::Retry`] means "not yet,
//! ask again" (use it for anything waiting might fix: refused, timeout,
//! unexpected status); [`Outcome::Error`] means waiting will not help (bad
//! config, a denied grant). A `#[check]` function may return an
//! [`Outcome`] or a `Result<Outcome, E>` with `E: Into<Outcome>` (see
//! [`IntoOutcome`]), so `?` works on config accessors.
//!
//! # Loaders
//!
//! A loader gives the service's command and restart policy. Enable the
//! crate's `loader` feature, implement `loader::Loader` and mark the impl
//! with `#[vigil_sdk::loader]` (see the `loader` module). The feature is off
//! by default so that checks do not import the loader's `policy` types.

extern crate self as vigil_sdk;

mod bindings;
pub mod config;
pub mod fs;
pub mod http;
pub mod http2;
#[cfg(feature = "loader")]
pub mod loader;
pub mod log;
pub mod output;
pub mod process;
pub mod tcp;
pub mod testing;
pub mod units;

use std::fmt::Display;
use std::time::Duration;

pub use bindings::checker::vigil::health::types::{ErrorCode, Outcome, Phase, Target};

/// Export a function as the component's `check`.
///
/// The function takes one [`Target`] and returns an [`Outcome`] or a
/// `Result<Outcome, E>` with `E: Into<Outcome>`; any name works. It stays
/// callable as an ordinary function. A crate exports one check, and a check
/// cannot also be a loader: a second `#[check]` or `#[loader]` in the same
/// module fails with "the name `__vigil_sdk_one_check_or_loader_per_crate`
/// is defined multiple times", in another module with "symbol
/// `cabi_post_check` is already defined", both pointing at the attribute.
///
/// ```
/// use vigil_sdk::{check, Outcome, Target};
///
/// #[check]
/// fn always_ok(_target: Target) -> Outcome {
///     Outcome::Ok
/// }
/// # fn main() {}
/// ```
///
/// Misuse is a compile error pointing at the problem:
///
/// ```compile_fail
/// #[vigil_sdk::check]
/// async fn check(target: vigil_sdk::Target) -> vigil_sdk::Outcome {
///     vigil_sdk::Outcome::Ok
/// }
/// ```
///
/// ```compile_fail
/// #[vigil_sdk::check]
/// fn check(target: vigil_sdk::Target, extra: u32) -> vigil_sdk::Outcome {
///     vigil_sdk::Outcome::Ok
/// }
/// ```
///
/// ```compile_fail
/// #[vigil_sdk::check]
/// fn check(port: u16) -> vigil_sdk::Outcome {
///     vigil_sdk::Outcome::Ok
/// }
/// ```
///
/// ```compile_fail
/// #[vigil_sdk::check]
/// fn check(target: vigil_sdk::Target) -> bool {
///     true
/// }
/// ```
///
/// ```compile_fail
/// use vigil_sdk::{check, Outcome, Target};
///
/// #[check]
/// fn one(_: Target) -> Outcome { Outcome::Ok }
///
/// #[check]
/// fn two(_: Target) -> Outcome { Outcome::Ok }
/// ```
pub use vigil_sdk_macros::check;

/// Derive [`config::Config`] for a struct of settings and embed its schema
/// in the component (a `vigil:config-schema` custom section), so that
/// `vigil validate` checks manifests against it and `vigil inspect` shows
/// it. See [`config::Config`].
pub use vigil_sdk_macros::Config;

pub use config::Config;

/// Export an `impl Loader for T` as the component's `spawn` and `decide`.
/// See the [`loader`](mod@loader) module.
#[cfg(feature = "loader")]
pub use vigil_sdk_macros::loader;

impl Outcome {
    /// [`Outcome::Retry`] with a reason.
    pub fn retry(reason: impl Into<String>) -> Self {
        Outcome::Retry(reason.into())
    }

    /// [`Outcome::Error`] with a reason.
    pub fn error(reason: impl Into<String>) -> Self {
        Outcome::Error(reason.into())
    }

    /// Whether this is [`Outcome::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok)
    }

    /// The reason of a retry or error, `None` for ok.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Ok => None,
            Outcome::Retry(r) | Outcome::Error(r) => Some(r),
        }
    }
}

impl Phase {
    /// `startup`, `readiness` or `liveness`, as in the manifest.
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Startup => "startup",
            Phase::Readiness => "readiness",
            Phase::Liveness => "liveness",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ErrorCode {
    /// A short human-readable description: `"connection refused"`,
    /// `"denied: host 10.0.0.1 is not granted"`, ...
    pub fn message(&self) -> String {
        match self {
            ErrorCode::Denied(why) => format!("denied: {why}"),
            ErrorCode::Timeout => "timed out".into(),
            ErrorCode::Refused => "connection refused".into(),
            ErrorCode::NotFound => "not found".into(),
            ErrorCode::Invalid(why) => format!("invalid: {why}"),
            ErrorCode::Io(why) => format!("I/O error: {why}"),
        }
    }

    /// Whether waiting might fix this: everything but `denied` and
    /// `invalid`, which need a change of grants or config.
    pub fn is_transient(&self) -> bool {
        !matches!(self, ErrorCode::Denied(_) | ErrorCode::Invalid(_))
    }

    /// The verdict for this failure, as `"<what>: <message>"`:
    /// [`Outcome::Retry`] when [transient](Self::is_transient), else
    /// [`Outcome::Error`].
    ///
    /// ```
    /// use vigil_sdk::{ErrorCode, Outcome};
    ///
    /// assert_eq!(
    ///     ErrorCode::Refused.outcome("connect 127.0.0.1:6379"),
    ///     Outcome::retry("connect 127.0.0.1:6379: connection refused"),
    /// );
    /// assert!(matches!(ErrorCode::Denied("no".into()).outcome("GET /"), Outcome::Error(_)));
    /// ```
    pub fn outcome(&self, what: impl Display) -> Outcome {
        let reason = format!("{what}: {}", self.message());
        if self.is_transient() {
            Outcome::Retry(reason)
        } else {
            Outcome::Error(reason)
        }
    }
}

impl From<ErrorCode> for Outcome {
    /// [`ErrorCode::outcome`] without context.
    fn from(code: ErrorCode) -> Self {
        let reason = code.message();
        if code.is_transient() {
            Outcome::Retry(reason)
        } else {
            Outcome::Error(reason)
        }
    }
}

/// What a `#[check]` function may return.
#[diagnostic::on_unimplemented(
    message = "a #[check] function must return `Outcome` or `Result<Outcome, E>` with `E: Into<Outcome>`, not `{Self}`",
    label = "this return type"
)]
pub trait IntoOutcome {
    /// The verdict.
    fn into_outcome(self) -> Outcome;
}

impl IntoOutcome for Outcome {
    fn into_outcome(self) -> Outcome {
        self
    }
}

impl<E: Into<Outcome>> IntoOutcome for Result<Outcome, E> {
    fn into_outcome(self) -> Outcome {
        self.unwrap_or_else(Into::into)
    }
}

/// Milliseconds as the WIT's `u32`, saturating.
pub(crate) fn millis_u32(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}

/// Used by the code `#[check]` and `#[loader]` expand to; not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::checker;
    #[cfg(feature = "loader")]
    pub use crate::bindings::loader;
    pub use wit_bindgen;

    /// The type a check's parameter must have (for a spanned error).
    pub fn target_arg(target: crate::Target) -> crate::Target {
        target
    }
}
