//! `builtin:log`: judges a service by its own output, e.g. ready once
//! redis-server printed "Ready to accept connections", failed once a line
//! says "FATAL". Needs `[grants] output = true`.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `pattern` | | a regex: ok once a matching line appeared since the child started, retry until then |
//! | `fail-pattern` | | a regex: error once a matching line appeared since the child started |
//! | `stream` | `both` | which output to read: `stdout`, `stderr` or `both` |
//!
//! At least one of `pattern` and `fail-pattern` is required. With both, a
//! fail-pattern line wins. With only `fail-pattern`, no such line is ok
//! (for liveness). Only the current child's lines count (those vigil read
//! since it started), so a restart starts over. vigil keeps the last 1000
//! lines (256 KiB) of a service: a very chatty service can push its ready
//! line out, which is why a ready line belongs in `[checks.startup]`,
//! which stops asking once it is ok. A bad regex or a denied grant is an
//! error. Lines are matched whole, up to 4 KiB each.

use regex::Regex;
use vigil_sdk::output::{Channel, Query};
use vigil_sdk::{Outcome, Target, check};

/// `[checks.*.config]`, declared once: parsed by `Settings::new` and
/// embedded as the component's config schema.
#[derive(vigil_sdk::Config)]
struct Config {
    /// A regex: ok once a matching line appeared since the child started.
    pattern: Option<String>,
    /// A regex: error once a matching line appeared since the child started.
    fail_pattern: Option<String>,
    /// Which output to read: `stdout`, `stderr` or `both`.
    #[config(default = "both")]
    stream: String,
}

/// Longest reason quoted from a matching line.
const QUOTED: usize = 200;

#[check]
fn log_check(target: Target) -> Result<Outcome, Outcome> {
    let settings = Settings::new(&target)?;
    let mut query = Query::since_start(&target);
    if let Some(channel) = settings.channel {
        query = query.channel(channel);
    }
    let read = query
        .fetch()
        .map_err(|e| e.outcome("read the service's output"))?;
    Ok(settings.judge(read.lines.iter().map(|l| l.text.as_str())))
}

struct Settings {
    pattern: Option<Regex>,
    fail_pattern: Option<Regex>,
    channel: Option<Channel>,
}

fn regex(key: &str, text: Option<String>) -> Result<Option<Regex>, Outcome> {
    text.map(|text| {
        Regex::new(&text)
            .map_err(|e| Outcome::error(format!("config key `{key}` is not a valid regex: {e}")))
    })
    .transpose()
}

/// The first [`QUOTED`] bytes of `line`, cut at a character boundary.
fn quoted(line: &str) -> &str {
    let mut end = line.len().min(QUOTED);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

impl Settings {
    fn new(target: &Target) -> Result<Self, Outcome> {
        let config: Config = target.settings()?;
        let channel = match config.stream.as_str() {
            "both" => None,
            "stdout" => Some(Channel::Stdout),
            "stderr" => Some(Channel::Stderr),
            other => {
                return Err(Outcome::error(format!(
                    "config key `stream` is `{other}`: expected stdout, stderr or both"
                )));
            }
        };
        let settings = Settings {
            pattern: regex("pattern", config.pattern)?,
            fail_pattern: regex("fail-pattern", config.fail_pattern)?,
            channel,
        };
        if settings.pattern.is_none() && settings.fail_pattern.is_none() {
            return Err(Outcome::error(
                "config key `pattern` or `fail-pattern` is required",
            ));
        }
        Ok(settings)
    }

    fn judge<'a>(&self, lines: impl Iterator<Item = &'a str> + Clone) -> Outcome {
        if let Some(fail) = &self.fail_pattern
            && let Some(line) = lines.clone().find(|l| fail.is_match(l))
        {
            return Outcome::error(format!(
                "the output matched fail-pattern `{fail}`: {:?}",
                quoted(line)
            ));
        }
        match &self.pattern {
            None => Outcome::Ok,
            Some(pattern) if lines.clone().any(|l| pattern.is_match(l)) => Outcome::Ok,
            Some(pattern) => Outcome::retry(format!(
                "no line matching `{pattern}` since the child started ({} lines read)",
                lines.count()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_sdk::testing::target_with;

    fn judge(config: &[(&str, &str)], lines: &[&str]) -> Outcome {
        match Settings::new(&target_with(config)) {
            Ok(settings) => settings.judge(lines.iter().copied()),
            Err(outcome) => outcome,
        }
    }

    #[test]
    fn pattern_fail_pattern_and_settings() {
        let ready = [("pattern", "Ready to accept")];
        assert_eq!(
            judge(&ready, &["boot", "* Ready to accept connections tcp"]),
            Outcome::Ok
        );
        assert!(
            matches!(judge(&ready, &["boot"]), Outcome::Retry(r) if r.contains("1 lines read"))
        );
        let both = [("pattern", "ready"), ("fail-pattern", "^FATAL")];
        assert!(
            matches!(judge(&both, &["ready", "FATAL: disk"]), Outcome::Error(r) if r.contains("FATAL: disk"))
        );
        assert_eq!(judge(&[("fail-pattern", "FATAL")], &["fine"]), Outcome::Ok);
        assert!(matches!(judge(&[], &[]), Outcome::Error(r) if r.contains("required")));
        assert!(
            matches!(judge(&[("pattern", "(")], &[]), Outcome::Error(r) if r.contains("`pattern` is not a valid regex"))
        );
        assert!(
            matches!(judge(&[("pattern", "x"), ("stream", "stdin")], &[]), Outcome::Error(r) if r.contains("`stream`"))
        );
    }
}
