//! Typed access to the key/value settings a check or loader receives.
//!
//! Every accessor that can fail returns a ready-made [`Outcome::Error`]
//! naming the key, so a check can use `?` and stop at the first bad
//! setting:
//!
//! ```
//! use std::time::Duration;
//! use vigil_sdk::{Outcome, Target, config::Port};
//! # use vigil_sdk::testing::target_with as target;
//!
//! fn settings(target: &Target) -> Result<(Port, Duration), Outcome> {
//!     let port: Port = target.parse_required("port")?;
//!     let timeout = target.parse_or("timeout", Duration::from_secs(1))?;
//!     Ok((port, timeout))
//! }
//!
//! let bad = target(&[("port", "x")]);
//! assert_eq!(
//!     settings(&bad).unwrap_err(),
//!     Outcome::Error("config key `port`: expected a port number 1-65535, got \"x\"".into()),
//! );
//! let missing = target(&[]);
//! assert_eq!(
//!     settings(&missing).unwrap_err(),
//!     Outcome::Error("config key `port` is required".into()),
//! );
//! ```

use std::time::Duration;

use crate::Outcome;

/// A type a config value can be parsed into.
///
/// Implemented for `String`, `bool`, the integer types, `f64`,
/// [`Duration`] (see [`crate::units::parse_duration`]), [`Port`] and
/// [`Size`]. Implement it for your own types to get the same error
/// messages.
pub trait FromConfig: Sized {
    /// What a valid value looks like, completing "expected ...": for
    /// example `"a port number 1-65535"`.
    fn expected() -> &'static str;

    /// Parse `value`. `Err(Some(hint))` adds a hint to the message,
    /// `Err(None)` uses [`FromConfig::expected`] alone.
    fn from_config(value: &str) -> Result<Self, Option<String>>;
}

/// A TCP/UDP port number, 1-65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port(pub u16);

/// A size in bytes, written like `"64MiB"` or `"512k"` (see
/// [`crate::units::parse_size`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size(pub u64);

impl FromConfig for String {
    fn expected() -> &'static str {
        "a string"
    }
    fn from_config(value: &str) -> Result<Self, Option<String>> {
        Ok(value.to_string())
    }
}

impl FromConfig for bool {
    fn expected() -> &'static str {
        "true or false"
    }
    fn from_config(value: &str) -> Result<Self, Option<String>> {
        match value.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err(None),
        }
    }
}

macro_rules! from_config_int {
    ($($ty:ty => $expected:literal),* $(,)?) => {$(
        impl FromConfig for $ty {
            fn expected() -> &'static str {
                $expected
            }
            fn from_config(value: &str) -> Result<Self, Option<String>> {
                value.trim().parse().map_err(|_| None)
            }
        }
    )*};
}

from_config_int! {
    u8 => "a whole number 0-255",
    u16 => "a whole number 0-65535",
    u32 => "a whole number 0-4294967295",
    u64 => "a whole number",
    usize => "a whole number",
    i32 => "a whole number",
    i64 => "a whole number",
}

impl FromConfig for f64 {
    fn expected() -> &'static str {
        "a number"
    }
    fn from_config(value: &str) -> Result<Self, Option<String>> {
        match value.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(None),
        }
    }
}

impl FromConfig for Duration {
    fn expected() -> &'static str {
        "a duration like 500ms, 30s or 2m"
    }
    fn from_config(value: &str) -> Result<Self, Option<String>> {
        crate::units::parse_duration(value).map_err(|e| Some(e.to_string()))
    }
}

impl FromConfig for Port {
    fn expected() -> &'static str {
        "a port number 1-65535"
    }
    fn from_config(value: &str) -> Result<Self, Option<String>> {
        match value.trim().parse::<u16>() {
            Ok(0) | Err(_) => Err(None),
            Ok(port) => Ok(Port(port)),
        }
    }
}

impl FromConfig for Size {
    fn expected() -> &'static str {
        "a size like 512k, 64MiB or 1G"
    }
    fn from_config(value: &str) -> Result<Self, Option<String>> {
        crate::units::parse_size(value)
            .map(Size)
            .map_err(|e| Some(e.to_string()))
    }
}

/// A check's settings as one struct: `#[derive(vigil_sdk::Config)]`
/// implements this and embeds the struct's schema in the component, so
/// `vigil validate` can check a manifest's `[checks.*.config]` against it
/// (unknown keys, wrong kinds, missing required keys) before anything
/// runs, and `vigil inspect` can print it.
///
/// ```
/// use std::time::Duration;
/// use vigil_sdk::config::Port;
/// use vigil_sdk::{Config, Outcome};
/// # use vigil_sdk::testing::target_with as target;
///
/// /// Settings of a TCP check.
/// #[derive(Config, Debug)]
/// struct Settings {
///     /// Host name or address.
///     #[config(kind = "host", default = "127.0.0.1")]
///     host: String,
///     /// Port to connect to.
///     port: Port,
///     /// Text the reply must contain.
///     expect: Option<String>,
///     /// Deadline for the whole exchange.
///     #[config(default = "1s")]
///     timeout: Duration,
///     /// Request headers, `header.<Name> = "value"`.
///     #[config(prefix = "header.")]
///     headers: Vec<(String, String)>,
/// }
///
/// let s: Settings = target(&[("port", "6379"), ("header.A", "1")]).settings().unwrap();
/// assert_eq!((s.host.as_str(), s.port, s.timeout), ("127.0.0.1", Port(6379), Duration::from_secs(1)));
/// assert_eq!(s.headers, [("A".to_string(), "1".to_string())]);
/// assert_eq!(
///     target(&[("prot", "1")]).settings::<Settings>().unwrap_err(),
///     Outcome::error("unknown config key `prot` (known keys: host, port, expect, timeout, header.<name>)"),
/// );
/// assert!(<Settings as Config>::SCHEMA.contains(r#""name":"port","kind":"port","required":true"#));
/// ```
///
/// A field's key is its name with `_` as `-` (`#[config(rename = "...")]`
/// to choose another). `T` is required, `Option<T>` optional, and
/// `#[config(default = "...")]` gives the default as it would be written
/// in the manifest. The kind of value (`string`, `bool`, `integer`,
/// `number`, `duration`, `size`, `port`, `url`, `host`, `path`) follows
/// from the type or from `#[config(kind = "...")]`; `url`, `host` and
/// `port` also let `vigil validate` check that the service's grants reach
/// the destination. A `Vec<(String, String)>` field with
/// `#[config(prefix = "header.")]` collects every key with that prefix.
/// The doc comment of each field is the key's documentation.
///
/// One `Config` struct per component: two would put two schemas in its
/// custom section, which the host reports as malformed.
pub trait Config: Sized {
    /// The schema as JSON, version 1 (docs/writing-checks.md).
    const SCHEMA: &'static str;
    /// Every key, prefixes ending in `.`, for [`Target::reject_unknown_keys`](crate::Target::reject_unknown_keys).
    const KEYS: &'static [&'static str];

    /// Parse the settings, stopping at the first unknown key, missing
    /// required key or malformed value with an [`Outcome::Error`] naming
    /// it.
    fn from_pairs(pairs: &[(String, String)]) -> Result<Self, Outcome>;
}

/// What `#[derive(Config)]` expands to; not public API.
#[doc(hidden)]
pub mod __private {
    use super::{FromConfig, lookup, parse};
    use crate::Outcome;

    pub fn reject_unknown(pairs: &[(String, String)], known: &[&str]) -> Result<(), Outcome> {
        super::reject_unknown(pairs, known)
    }

    pub fn required<T: FromConfig>(pairs: &[(String, String)], key: &str) -> Result<T, Outcome> {
        match lookup(pairs, key) {
            None => Err(Outcome::Error(format!("config key `{key}` is required"))),
            Some(v) if v.trim().is_empty() => Err(Outcome::Error(format!(
                "config key `{key}` must not be empty"
            ))),
            Some(v) => parse(key, v),
        }
    }

    pub fn optional<T: FromConfig>(
        pairs: &[(String, String)],
        key: &str,
    ) -> Result<Option<T>, Outcome> {
        lookup(pairs, key).map(|v| parse(key, v)).transpose()
    }

    pub fn defaulted<T: FromConfig>(
        pairs: &[(String, String)],
        key: &str,
        default: &str,
    ) -> Result<T, Outcome> {
        parse(key, lookup(pairs, key).unwrap_or(default))
    }

    pub fn prefixed(pairs: &[(String, String)], prefix: &str) -> Vec<(String, String)> {
        pairs
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone())))
            .collect()
    }
}

/// The message for a value that does not parse, naming the key.
pub fn invalid_value<T: FromConfig>(key: &str, value: &str, hint: Option<&str>) -> Outcome {
    let mut message = format!(
        "config key `{key}`: expected {}, got {value:?}",
        T::expected()
    );
    if let Some(hint) = hint {
        message.push_str(" (");
        message.push_str(hint);
        message.push(')');
    }
    Outcome::Error(message)
}

/// Look `key` up in a list of pairs; the last occurrence wins, so a later
/// `--config k=v` overrides an earlier one.
pub(crate) fn lookup<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

pub(crate) fn reject_unknown(pairs: &[(String, String)], known: &[&str]) -> Result<(), Outcome> {
    let is_known = |key: &str| {
        known.iter().any(|k| {
            if k.ends_with('.') {
                key.len() > k.len() && key.starts_with(k)
            } else {
                key == *k
            }
        })
    };
    match pairs.iter().find(|(key, _)| !is_known(key)) {
        None => Ok(()),
        Some((key, _)) => Err(Outcome::Error(format!(
            "unknown config key `{key}` (known keys: {})",
            known
                .iter()
                .map(|k| if k.ends_with('.') {
                    format!("{k}<name>")
                } else {
                    k.to_string()
                })
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

pub(crate) fn parse<T: FromConfig>(key: &str, value: &str) -> Result<T, Outcome> {
    T::from_config(value).map_err(|hint| invalid_value::<T>(key, value, hint.as_deref()))
}

macro_rules! config_accessors {
    ($($ty:ty),*) => {$(
        impl $ty {
            /// The raw value of `key`, if set (the last one when set twice).
            pub fn config(&self, key: &str) -> Option<&str> {
                $crate::config::lookup(&self.config, key)
            }

            /// The value of `key`, or an [`Outcome::Error`] naming the key
            /// when it is missing or empty.
            pub fn require(&self, key: &str) -> Result<&str, Outcome> {
                match self.config(key) {
                    None => Err(Outcome::Error(format!("config key `{key}` is required"))),
                    Some(v) if v.trim().is_empty() => {
                        Err(Outcome::Error(format!("config key `{key}` must not be empty")))
                    }
                    Some(v) => Ok(v),
                }
            }

            /// `key` parsed as `T`, `None` when it is not set, an
            /// [`Outcome::Error`] naming the key when it does not parse.
            pub fn parse<T: $crate::config::FromConfig>(
                &self,
                key: &str,
            ) -> Result<Option<T>, Outcome> {
                self.config(key)
                    .map(|v| $crate::config::parse(key, v))
                    .transpose()
            }

            /// `key` parsed as `T`, `default` when it is not set.
            pub fn parse_or<T: $crate::config::FromConfig>(
                &self,
                key: &str,
                default: T,
            ) -> Result<T, Outcome> {
                Ok(self.parse(key)?.unwrap_or(default))
            }

            /// `key` parsed as `T`; missing, empty or malformed is an
            /// [`Outcome::Error`] naming the key.
            pub fn parse_required<T: $crate::config::FromConfig>(
                &self,
                key: &str,
            ) -> Result<T, Outcome> {
                let value = self.require(key)?;
                $crate::config::parse(key, value)
            }

            /// An [`Outcome::Error`] for the first setting whose key is not in
            /// `known`, to catch typos such as `expect_status`. An entry
            /// ending in `.` allows every key with that prefix
            /// (`"header."`).
            pub fn reject_unknown_keys(&self, known: &[&str]) -> Result<(), Outcome> {
                $crate::config::reject_unknown(&self.config, known)
            }

            /// Every setting at once, into a `#[derive(Config)]` struct
            /// (see [`Config`](crate::config::Config)).
            pub fn settings<T: $crate::config::Config>(&self) -> Result<T, Outcome> {
                T::from_pairs(&self.config)
            }

            /// Every setting whose key starts with `prefix`, with the
            /// prefix removed: `header.Accept=json` gives `("Accept",
            /// "json")` for the prefix `"header."`.
            pub fn config_with_prefix<'a>(
                &'a self,
                prefix: &'a str,
            ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
                self.config
                    .iter()
                    .filter_map(move |(k, v)| Some((k.strip_prefix(prefix)?, v.as_str())))
            }
        }
    )*};
}

config_accessors!(crate::Target);
#[cfg(feature = "loader")]
config_accessors!(crate::loader::SpawnContext, crate::loader::History);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn target(pairs: &[(&str, &str)]) -> crate::Target {
        testing::target_with(pairs)
    }

    #[test]
    fn lookup_last_wins() {
        let t = target(&[("a", "1"), ("a", "2")]);
        assert_eq!(t.config("a"), Some("2"));
        assert_eq!(t.config("b"), None);
    }

    #[test]
    fn errors_name_the_key() {
        let t = target(&[("port", "0"), ("timeout", "5"), ("empty", " ")]);
        assert_eq!(
            t.parse::<Port>("port"),
            Err(Outcome::Error(
                "config key `port`: expected a port number 1-65535, got \"0\"".into()
            ))
        );
        assert_eq!(
            t.parse::<Duration>("timeout"),
            Err(Outcome::Error(
                "config key `timeout`: expected a duration like 500ms, 30s or 2m, got \"5\" \
                 (`5` has no unit: add one of us, ms, s, m, h, d, like `5s`; only 0 goes without)"
                    .into()
            ))
        );
        assert_eq!(
            t.require("empty"),
            Err(Outcome::Error(
                "config key `empty` must not be empty".into()
            ))
        );
        assert_eq!(t.parse_or("missing", 7u32), Ok(7));
        assert_eq!(t.parse::<bool>("missing"), Ok(None));
    }

    #[test]
    fn prefixes() {
        let t = target(&[("header.Accept", "json"), ("url", "x"), ("header.X-A", "1")]);
        let headers: Vec<_> = t.config_with_prefix("header.").collect();
        assert_eq!(headers, [("Accept", "json"), ("X-A", "1")]);
    }

    #[test]
    fn unknown_keys() {
        let t = target(&[("url", "x"), ("header.A", "1"), ("expect_status", "200")]);
        assert_eq!(
            t.reject_unknown_keys(&["url", "expect-status", "header."]),
            Err(Outcome::Error(
                "unknown config key `expect_status` (known keys: url, expect-status, \
                 header.<name>)"
                    .into()
            ))
        );
        assert_eq!(
            t.reject_unknown_keys(&["url", "expect_status", "header."]),
            Ok(())
        );
        let bare = target(&[("header.", "1")]);
        assert!(bare.reject_unknown_keys(&["header."]).is_err());
    }

    #[test]
    fn sizes_and_bools() {
        let t = target(&[("rss", "64MiB"), ("follow", "no"), ("n", "-1")]);
        assert_eq!(t.parse_required::<Size>("rss"), Ok(Size(64 << 20)));
        assert_eq!(t.parse_required::<bool>("follow"), Ok(false));
        assert!(t.parse_required::<u32>("n").is_err());
    }
}
