//! `builtin:file`: a file exists, is fresh and big enough; the classic
//! heartbeat check.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `path` | required | the file; must be granted in `[grants] paths` |
//! | `max-age` | | at most this long since the last modification, e.g. `30s` |
//! | `min-size` | | at least this big, e.g. `1` or `4k` |
//!
//! Missing, too old or too small is `retry`; bad settings and a denied
//! path are `error`.

use std::time::Duration;

use vigil_sdk::config::Size;
use vigil_sdk::fs::{self, Metadata};
use vigil_sdk::units::{format_duration, format_size};
use vigil_sdk::{ErrorCode, Outcome, Target, check};

/// `[checks.*.config]`, declared once: parsed by `Settings::new` and
/// embedded as the component's config schema.
#[derive(vigil_sdk::Config)]
struct Config {
    /// The file; must be granted in `[grants] paths`.
    #[config(kind = "path")]
    path: String,
    /// At most this long since the last modification, e.g. `30s`.
    max_age: Option<Duration>,
    /// At least this big, e.g. `1` or `4k`.
    min_size: Option<Size>,
}

#[check]
fn file_check(target: Target) -> Result<Outcome, Outcome> {
    let settings = Settings::new(&target)?;
    let path = &settings.path;
    let meta = fs::stat(path).map_err(|e| match e {
        ErrorCode::NotFound => Outcome::retry(format!("{path} does not exist")),
        other => other.outcome(format_args!("stat {path}")),
    })?;
    Ok(settings.judge(&meta))
}

struct Settings {
    path: String,
    max_age: Option<Duration>,
    min_size: Option<u64>,
}

impl Settings {
    fn new(target: &Target) -> Result<Self, Outcome> {
        let config: Config = target.settings()?;
        Ok(Settings {
            path: config.path,
            max_age: config.max_age,
            min_size: config.min_size.map(|Size(bytes)| bytes),
        })
    }

    fn judge(&self, meta: &Metadata) -> Outcome {
        let path = &self.path;
        if let Some(min) = self.min_size
            && meta.size < min
        {
            return Outcome::retry(format!(
                "{path} is {}, expected at least {}",
                format_size(meta.size),
                format_size(min)
            ));
        }
        if let Some(max) = self.max_age
            && meta.age() > max
        {
            return Outcome::retry(format!(
                "{path} is {} old (max-age {})",
                format_duration(meta.age()),
                format_duration(max)
            ));
        }
        Outcome::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_sdk::fs::Kind;
    use vigil_sdk::testing::target_with;

    fn meta(size: u64, age_ms: u64) -> Metadata {
        Metadata {
            kind: Kind::File,
            size,
            modified_ms: 0,
            age_ms,
        }
    }

    fn judge(config: &[(&str, &str)], meta: Metadata) -> Outcome {
        let mut pairs = vec![("path", "/run/hb")];
        pairs.extend_from_slice(config);
        match Settings::new(&target_with(&pairs)) {
            Ok(settings) => settings.judge(&meta),
            Err(outcome) => outcome,
        }
    }

    #[test]
    fn verdicts() {
        assert!(judge(&[], meta(0, 1_000_000)).is_ok());
        assert!(judge(&[("max-age", "30s")], meta(1, 29_000)).is_ok());
        assert_eq!(
            judge(&[("max-age", "30s")], meta(1, 45_200)),
            Outcome::retry("/run/hb is 45.2s old (max-age 30s)")
        );
        assert_eq!(
            judge(&[("min-size", "1k")], meta(10, 0)),
            Outcome::retry("/run/hb is 10B, expected at least 1.0KiB")
        );
    }

    #[test]
    fn bad_settings_name_the_key() {
        assert_eq!(
            Settings::new(&target_with(&[])).err(),
            Some(Outcome::error("config key `path` is required"))
        );
        for (key, value) in [("max-age", "old"), ("min-size", "big"), ("maxage", "1s")] {
            match judge(&[(key, value)], meta(0, 0)) {
                Outcome::Error(message) => assert!(message.contains(key), "{message}"),
                other => panic!("{key}={value}: {other:?}"),
            }
        }
    }
}
