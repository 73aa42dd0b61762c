//! How a manifest's problems are collected, named and suggested for.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One thing wrong with a service directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    /// Dotted manifest key (`checks.liveness.period`), or `-` for the file.
    pub field: String,
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {} (fix: {})",
            self.path.display(),
            self.field,
            self.problem,
            self.fix
        )
    }
}

/// Every problem found in a service directory. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationReport {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ValidationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(f, "{n} problem{}:", if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

/// Problems of one manifest, gathered as they are found.
pub(super) struct Collector<'a> {
    path: &'a Path,
    pub(super) problems: Vec<Problem>,
    /// What will fail at run time but is not wrong in the manifest itself
    /// (a program not installed yet): `vigil validate` shows them as
    /// warnings.
    pub(super) warnings: Vec<Problem>,
}

impl<'a> Collector<'a> {
    pub(super) fn new(path: &'a Path) -> Self {
        Collector {
            path,
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub(super) fn warn(
        &mut self,
        field: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.warnings.push(Problem {
            path: self.path.to_path_buf(),
            field: field.into(),
            problem: problem.into(),
            fix: fix.into(),
        });
    }

    pub(super) fn push(
        &mut self,
        field: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.problems.push(Problem {
            path: self.path.to_path_buf(),
            field: field.into(),
            problem: problem.into(),
            fix: fix.into(),
        });
    }
}

/// Field names serde expects for a struct, learnt from the derive itself so
/// the "did you mean" list can never drift from the struct.
pub(super) fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Probe(std::cell::Cell<&'static [&'static str]>);
    #[derive(Debug)]
    struct Stop;
    impl fmt::Display for Stop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("probe")
        }
    }
    impl std::error::Error for Stop {}
    impl serde::de::Error for Stop {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> serde::Deserializer<'de> for &Probe {
        type Error = Stop;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0.set(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let probe = Probe(std::cell::Cell::new(&[]));
    let _ = T::deserialize(&probe);
    probe.0.get()
}

/// The closest known name to `unknown`, if it is close enough to be a typo.
pub fn did_you_mean<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(unknown, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}
