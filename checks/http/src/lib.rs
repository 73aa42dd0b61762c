//! `builtin:http`: an HTTP request whose status, body or JSON field
//! decides the verdict.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `url` | required | absolute `http://` or `https://` URL |
//! | `method` | `GET` | request method (`POST /drain` from a pre-stop hook, say) |
//! | `body` | | request body, sent as written (set `header.Content-Type` to say what it is) |
//! | `expect-status` | `200-399` | accepted statuses: `200`, `200-299`, `200,204`, `200-299,304` |
//! | `body-contains` | | text the body must contain |
//! | `json-field` | | `path=value`: the body is JSON and the field at the dotted path (`status.db`, `checks.0.ok`) equals `value` as a string |
//! | `header.<Name>` | | a request header |
//! | `timeout` | `1s` | request deadline |
//! | `follow-redirects` | `true` | follow redirects (only to granted destinations) |
//!
//! Connection failures, timeouts and unexpected responses are `retry`; bad
//! settings and a denied destination are `error`.

use std::time::Duration;

use vigil_sdk::{Outcome, Target, check, http};

/// `[checks.*.config]`, declared once: parsed by `Settings::new` and
/// embedded as the component's config schema.
#[derive(vigil_sdk::Config)]
struct Config {
    /// Absolute `http://` or `https://` URL.
    #[config(kind = "url")]
    url: String,
    /// Request method.
    #[config(default = "GET")]
    method: String,
    /// Request body, sent as written (set `header.Content-Type` to say what it is).
    body: Option<String>,
    /// Accepted statuses: `200`, `200-299`, `200,204`, `200-299,304`.
    #[config(default = "200-399")]
    expect_status: String,
    /// Text the body must contain.
    body_contains: Option<String>,
    /// `path=value`: the body is JSON and the field at the dotted path (`status.db`, `checks.0.ok`) equals `value` as a string.
    json_field: Option<String>,
    /// A request header, `header.<Name> = "value"`.
    #[config(prefix = "header.")]
    headers: Vec<(String, String)>,
    /// Request deadline.
    #[config(default = "1s")]
    timeout: Duration,
    /// Follow redirects (only to granted destinations).
    #[config(default = "true")]
    follow_redirects: bool,
}

/// How much of a body a message quotes.
const SNIPPET: usize = 120;

#[check]
fn http_check(target: Target) -> Result<Outcome, Outcome> {
    let settings = Settings::new(&target)?;
    let what = format!("{} {}", settings.request.method, settings.request.url);
    let response = settings
        .request
        .send()
        .map_err(|e| e.outcome(format_args!("{what}")))?;
    Ok(settings.judge(&what, &response))
}

struct Settings {
    request: http::Request,
    statuses: StatusSet,
    body_contains: Option<String>,
    json_field: Option<(String, String)>,
}

impl Settings {
    fn new(target: &Target) -> Result<Self, Outcome> {
        let config: Config = target.settings()?;
        let url = config.url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Outcome::error(format!(
                "config key `url`: expected an absolute http:// or https:// URL, got {url:?}"
            )));
        }
        let method = config.method.trim();
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(Outcome::error(format!(
                "config key `method`: expected a method like GET or HEAD, got {method:?}"
            )));
        }
        let text = &config.expect_status;
        let statuses = StatusSet::parse(text).map_err(|why| {
            Outcome::error(format!(
                "config key `expect-status`: expected a status (200), a range (200-299) or \
                 a list (200,204), got {text:?} ({why})"
            ))
        })?;
        let json_field = match &config.json_field {
            None => None,
            Some(text) => Some(parse_json_field(text)?),
        };
        let mut request = http::Request::new(&method.to_ascii_uppercase(), url)
            .timeout(config.timeout)
            .follow_redirects(config.follow_redirects);
        if let Some(body) = config.body {
            request = request.body(body);
        }
        for (name, value) in &config.headers {
            if !is_token(name) {
                return Err(Outcome::error(format!(
                    "config key `header.{name}`: {name:?} is not a valid header name"
                )));
            }
            request = request.header(name, value);
        }
        Ok(Settings {
            request,
            statuses,
            body_contains: config.body_contains,
            json_field,
        })
    }

    fn judge(&self, what: &str, response: &http::Response) -> Outcome {
        let status = response.status;
        if !self.statuses.contains(status) {
            return Outcome::retry(format!(
                "{what}: status {status}, expected {}{}",
                self.statuses,
                body_note(response)
            ));
        }
        let body = response.text();
        if let Some(needle) = &self.body_contains
            && !body.contains(needle.as_str())
        {
            let cut = if response.truncated {
                " (body truncated by the host's cap)"
            } else {
                ""
            };
            return Outcome::retry(format!(
                "{what}: body does not contain {needle:?}{cut}{}",
                body_note(response)
            ));
        }
        if let Some((path, expected)) = &self.json_field {
            let json: serde_json::Value = match serde_json::from_slice(&response.body) {
                Ok(json) => json,
                Err(e) => {
                    return Outcome::retry(format!(
                        "{what}: body is not JSON ({e}){}",
                        body_note(response)
                    ));
                }
            };
            match lookup(&json, path) {
                None => {
                    return Outcome::retry(format!("{what}: JSON has no field `{path}`"));
                }
                Some(value) => {
                    let actual = as_string(value);
                    if actual != *expected {
                        return Outcome::retry(format!(
                            "{what}: JSON field `{path}` is {actual:?}, expected {expected:?}"
                        ));
                    }
                }
            }
        }
        Outcome::Ok
    }
}

/// `"; body: ..."` with the start of the body, or nothing for an empty one.
fn body_note(response: &http::Response) -> String {
    let text = response.text();
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    // One line, whitespace runs collapsed.
    let words: Vec<&str> = text.split_whitespace().collect();
    let flat = words.join(" ");
    let mut snippet: String = flat
        .chars()
        .take(SNIPPET)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().nth(SNIPPET).is_some() {
        snippet.push_str("...");
    }
    format!("; body: {snippet}")
}

/// An RFC 9110 token (header names, methods).
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Accepted statuses: inclusive ranges.
#[derive(Debug, PartialEq)]
struct StatusSet(Vec<(u16, u16)>);

impl Default for StatusSet {
    /// 200-399, as kubelet counts success.
    fn default() -> Self {
        StatusSet(vec![(200, 399)])
    }
}

impl StatusSet {
    fn parse(text: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for part in text.split(',').map(str::trim) {
            let (low, high) = match part.split_once('-') {
                Some((low, high)) => (status(low)?, status(high)?),
                None => {
                    let s = status(part)?;
                    (s, s)
                }
            };
            if low > high {
                return Err(format!("{low}-{high} is an empty range"));
            }
            ranges.push((low, high));
        }
        Ok(StatusSet(ranges))
    }

    fn contains(&self, status: u16) -> bool {
        self.0
            .iter()
            .any(|&(low, high)| (low..=high).contains(&status))
    }
}

impl std::fmt::Display for StatusSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, &(low, high)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if low == high {
                write!(f, "{low}")?;
            } else {
                write!(f, "{low}-{high}")?;
            }
        }
        Ok(())
    }
}

fn status(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(s) if (100..=599).contains(&s) => Ok(s),
        _ => Err(format!("`{}` is not a status 100-599", text.trim())),
    }
}

/// `"status.db=ok"` into `("status.db", "ok")`.
fn parse_json_field(text: &str) -> Result<(String, String), Outcome> {
    match text.split_once('=') {
        Some((path, value)) if !path.trim().is_empty() => {
            Ok((path.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(Outcome::error(format!(
            "config key `json-field`: expected `path=value` like `status.db=ok`, got {text:?}"
        ))),
    }
}

/// Walk a dotted path; a numeric segment indexes an array.
fn lookup<'a>(json: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.')
        .try_fold(json, |value, segment| match value {
            serde_json::Value::Object(map) => map.get(segment),
            serde_json::Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
            _ => None,
        })
}

/// A JSON value as a string for comparison: strings without quotes,
/// everything else as compact JSON (`true`, `3`, `null`, `[1,2]`).
fn as_string(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_sdk::testing::target_with;

    fn response(status: u16, body: &str) -> http::Response {
        http::Response {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
            truncated: false,
        }
    }

    fn judge(config: &[(&str, &str)], status: u16, body: &str) -> Outcome {
        let mut pairs = vec![("url", "http://127.0.0.1/")];
        pairs.extend_from_slice(config);
        match Settings::new(&target_with(&pairs)) {
            Ok(settings) => settings.judge("GET /", &response(status, body)),
            Err(outcome) => outcome,
        }
    }

    #[test]
    fn statuses() {
        assert_eq!(StatusSet::parse("200"), Ok(StatusSet(vec![(200, 200)])));
        assert_eq!(
            StatusSet::parse("200-299, 304"),
            Ok(StatusSet(vec![(200, 299), (304, 304)]))
        );
        assert!(StatusSet::parse("abc").is_err());
        assert!(StatusSet::parse("299-200").is_err());
        assert!(StatusSet::parse("700").is_err());
        assert!(StatusSet::parse("").is_err());
        assert_eq!(StatusSet::default().to_string(), "200-399");
        assert!(judge(&[], 302, "").is_ok());
        assert_eq!(
            judge(&[], 503, "down for maintenance"),
            Outcome::retry("GET /: status 503, expected 200-399; body: down for maintenance")
        );
        assert!(judge(&[("expect-status", "200,204")], 204, "").is_ok());
        assert!(matches!(
            judge(&[("expect-status", "200,204")], 201, ""),
            Outcome::Retry(_)
        ));
    }

    #[test]
    fn body_and_json() {
        assert!(judge(&[("body-contains", "up")], 200, "all up").is_ok());
        assert!(matches!(
            judge(&[("body-contains", "up")], 200, "down"),
            Outcome::Retry(_)
        ));
        let body = r#"{"status":{"db":"ok","workers":3,"ready":true},"list":[{"n":"a"}]}"#;
        assert!(judge(&[("json-field", "status.db=ok")], 200, body).is_ok());
        assert!(judge(&[("json-field", "status.workers=3")], 200, body).is_ok());
        assert!(judge(&[("json-field", "status.ready = true")], 200, body).is_ok());
        assert!(judge(&[("json-field", "list.0.n=a")], 200, body).is_ok());
        assert_eq!(
            judge(&[("json-field", "status.db=down")], 200, body),
            Outcome::retry("GET /: JSON field `status.db` is \"ok\", expected \"down\"")
        );
        assert_eq!(
            judge(&[("json-field", "status.cache=ok")], 200, body),
            Outcome::retry("GET /: JSON has no field `status.cache`")
        );
        assert!(matches!(
            judge(&[("json-field", "a=b")], 200, "<html>"),
            Outcome::Retry(_)
        ));
    }

    #[test]
    fn bad_config_is_an_error_naming_the_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("json-field", "nope")], "`json-field`"),
            (&[("expect-status", "2xx")], "`expect-status`"),
            (&[("timeout", "soon")], "`timeout`"),
            (&[("follow-redirects", "maybe")], "`follow-redirects`"),
            (&[("method", "GET /")], "`method`"),
            (&[("header.Bad Name", "x")], "`header.Bad Name`"),
            (&[("expect_status", "200")], "`expect_status`"),
        ];
        for (config, key) in cases {
            match judge(config, 200, "") {
                Outcome::Error(message) => assert!(message.contains(key), "{message}"),
                other => panic!("{config:?}: {other:?}"),
            }
        }
        let missing = Settings::new(&target_with(&[])).err();
        assert_eq!(
            missing,
            Some(Outcome::error("config key `url` is required"))
        );
        let relative = Settings::new(&target_with(&[("url", "/healthz")])).err();
        assert!(matches!(relative, Some(Outcome::Error(m)) if m.contains("`url`")));
    }

    #[test]
    fn request_is_built_from_config() {
        let target = target_with(&[
            ("url", "https://example.test/h"),
            ("method", "head"),
            ("header.Accept", "application/json"),
            ("timeout", "250ms"),
            ("follow-redirects", "false"),
        ]);
        let request = Settings::new(&target).map(|s| s.request).ok();
        let request = request.as_ref();
        assert_eq!(request.map(|r| r.method.as_str()), Some("HEAD"));
        assert_eq!(request.map(|r| r.timeout_ms), Some(Some(250)));
        assert_eq!(request.map(|r| r.follow_redirects), Some(false));
        assert_eq!(
            request.map(|r| r.headers.clone()),
            Some(vec![("Accept".to_string(), "application/json".to_string())])
        );
        assert_eq!(request.map(|r| r.body.clone()), Some(None));
    }

    #[test]
    fn a_body_is_sent_as_written() {
        let target = target_with(&[
            ("url", "http://127.0.0.1:8080/drain"),
            ("method", "post"),
            ("body", "{\"drain\": true}"),
        ]);
        let request = Settings::new(&target).map(|s| s.request).ok();
        let request = request.as_ref();
        assert_eq!(request.map(|r| r.method.as_str()), Some("POST"));
        assert_eq!(
            request.and_then(|r| r.body.clone()),
            Some(b"{\"drain\": true}".to_vec())
        );
    }
}
