//! A small mutation fuzzer for the parsers of outside input, on stable
//! Rust and inside the unit tests, so that `make test` replays every
//! corpus and `make fuzz` runs the same targets for as long as it is told.
//!
//! Each target is a `#[test] fn fuzz_*` next to the parser it feeds (a
//! `fuzz_tests` module, so it reaches private functions) and calls [`run`]
//! with a closure that parses one input and asserts the parser's contract:
//! a clear error or a value, never a panic, a hang or an allocation out of
//! proportion to the input. [`run`] first replays
//! `tests/fuzz-corpus/<target>/*` (seeds, and every input that ever broke
//! the target, kept as a regression test), then feeds mutations of them:
//! bit flips, bytes, tokens of the target's dictionary, splices, repeats
//! and cuts. A panicking input is written to
//! `$TMPDIR/vigil-fuzz-found/<target>/` and the test fails naming it.
//!
//! Knobs (environment): `VIGIL_FUZZ_SECS` runs each target for that many
//! seconds instead of [`DEFAULT_ITERATIONS`] inputs (and reports an input
//! slower than [`SLOW`] as a hang), `VIGIL_FUZZ_SEED` picks another
//! sequence. Without them a run is deterministic: a failure repeats.
//!
//! Coverage-guided fuzzers (cargo-fuzz, AFL++) would have to build
//! wasmtime instrumented, a long build on this project's machines; a
//! dictionary-driven mutator over hand-written seeds reaches the parsers'
//! branches well enough, and runs everywhere `cargo test` does.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Mutated inputs per target in a normal test run (a fraction of a
/// second for most targets; the corpus is replayed in full besides).
pub(crate) const DEFAULT_ITERATIONS: u64 = 3000;

/// In a timed run, an input that takes longer than this is a finding (a
/// parser that hangs). Not checked in normal test runs: a loaded machine
/// is no place for timing assertions.
pub(crate) const SLOW: Duration = Duration::from_secs(2);

/// xorshift64*: deterministic, so a failure repeats from its seed.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True one time in `n`.
    pub(crate) fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub(crate) fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
        &from[self.below(from.len())]
    }
}

/// Tokens every target's mutations may insert, besides its own
/// dictionary: boundaries of numbers, encodings and lines.
const COMMON: &[&str] = &[
    "\0",
    "\n",
    "\r\n",
    "\\",
    "\"",
    "'",
    " ",
    "\t",
    "0",
    "-1",
    "255",
    "256",
    "65535",
    "65536",
    "2147483647",
    "4294967296",
    "9223372036854775807",
    "18446744073709551616",
    "1e308",
    "NaN",
    "é",
    "\u{202e}",
    "\u{1b}[2J",
    "💡",
    "\u{fffd}",
];

/// The corpus of `target`: (file name, bytes), sorted by name.
pub(crate) fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fuzz corpus {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| {
            let bytes = std::fs::read(e.path()).expect("read a corpus file");
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "fuzz corpus {} is empty", dir.display());
    files
}

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fuzz-corpus")
        .join(target)
}

/// One mutation of `input`, in place, at most `max_len` bytes long.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>, seeds: &[Vec<u8>], dict: &[&str], max_len: usize) {
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(input.len() + 1);
        match rng.below(9) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] = rng.next() as u8;
            }
            2 | 3 => {
                let token = if dict.is_empty() || rng.one_in(3) {
                    rng.pick(COMMON)
                } else {
                    rng.pick(dict)
                };
                input.splice(at..at, token.bytes());
            }
            4 if !input.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(input.len());
                let start = at.min(end);
                input.drain(start..end);
            }
            5 if !input.is_empty() => {
                // Repeat a piece: long runs, deep nesting.
                let start = rng.below(input.len());
                let end = (start + 1 + rng.below(8)).min(input.len());
                let piece = input[start..end].to_vec();
                let most = if rng.one_in(8) { 512 } else { 4 };
                for _ in 0..1 + rng.below(most) {
                    input.splice(start..start, piece.iter().copied());
                }
            }
            6 if !seeds.is_empty() => {
                // Splice in a piece of another seed.
                let other = rng.pick(seeds);
                if !other.is_empty() {
                    let start = rng.below(other.len());
                    let end = (start + 1 + rng.below(64)).min(other.len());
                    input.splice(at..at, other[start..end].iter().copied());
                }
            }
            7 => input.truncate(at),
            _ => {
                let line = rng.pick(seeds).clone();
                if let Some(nl) = line.iter().position(|b| *b == b'\n') {
                    input.splice(at..at, line[..=nl].iter().copied());
                }
            }
        }
        input.truncate(max_len);
    }
}

/// The message of a caught panic.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".into())
}

/// Keep a failing input where a person can take it into the corpus.
fn save(target: &str, input: &[u8]) -> PathBuf {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in input {
        hash = (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    let dir = std::env::temp_dir().join("vigil-fuzz-found").join(target);
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{hash:016x}"));
    let _ = std::fs::write(&path, input);
    path
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// What one run did, printed for RELIABILITY.md.
pub(crate) struct Stats {
    pub inputs: u64,
    pub slowest: Duration,
}

/// Fuzz `target`: replay its corpus, then mutations of it, through
/// `check`, which panics when the parser breaks its contract (or panics
/// itself). `max_len` bounds a mutated input.
pub(crate) fn run(target: &str, dict: &[&str], max_len: usize, check: impl FnMut(&[u8])) -> Stats {
    run_with(target, dict, max_len, DEFAULT_ITERATIONS, check)
}

/// [`run`] with another number of mutated inputs in a normal test run,
/// for a target whose every input costs milliseconds (a compile, a
/// connection).
pub(crate) fn run_with(
    target: &str,
    dict: &[&str],
    max_len: usize,
    iterations: u64,
    mut check: impl FnMut(&[u8]),
) -> Stats {
    let corpus = corpus(target);
    let mut stats = Stats {
        inputs: 0,
        slowest: Duration::ZERO,
    };
    let timed = env_u64("VIGIL_FUZZ_SECS").map(Duration::from_secs);
    let mut one = |input: &[u8], origin: &str, stats: &mut Stats| {
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| check(input)));
        let took = started.elapsed();
        stats.inputs += 1;
        stats.slowest = stats.slowest.max(took);
        let failure = match outcome {
            Err(payload) => Some(format!("panicked: {}", panic_message(&*payload))),
            Ok(()) if timed.is_some() && took > SLOW => Some(format!("took {took:?}")),
            Ok(()) => None,
        };
        if let Some(failure) = failure {
            let saved = save(target, input);
            let shown: String = String::from_utf8_lossy(&input[..input.len().min(300)]).into();
            panic!(
                "fuzz target `{target}` {failure}\n  input ({origin}, {} bytes) saved at {} \
                 (once fixed, add it to tests/fuzz-corpus/{target}/):\n  {shown:?}",
                input.len(),
                saved.display()
            );
        }
    };
    for (name, bytes) in &corpus {
        one(bytes, &format!("corpus file {name}"), &mut stats);
    }
    let seeds: Vec<Vec<u8>> = corpus.into_iter().map(|(_, b)| b).collect();
    let seed = env_u64("VIGIL_FUZZ_SEED").unwrap_or(0)
        ^ target
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let mut i = 0u64;
    loop {
        let more = match timed {
            Some(limit) => started.elapsed() < limit,
            None => i < iterations,
        };
        if !more {
            break;
        }
        let mut input = if rng.one_in(16) {
            Vec::new()
        } else {
            rng.pick(&seeds).clone()
        };
        input.truncate(max_len);
        mutate(&mut rng, &mut input, &seeds, dict, max_len);
        one(&input, &format!("mutation {i} of seed {seed}"), &mut stats);
        i += 1;
    }
    eprintln!(
        "fuzz {target}: {} inputs in {:.1?} (slowest {:?})",
        stats.inputs,
        started.elapsed(),
        stats.slowest
    );
    stats
}

/// `input` as text, as a parser of text sees a file: invalid UTF-8 made
/// U+FFFD (the targets of `&str` parsers use it).
pub(crate) fn text(input: &[u8]) -> String {
    String::from_utf8_lossy(input).into_owned()
}

/// An error message is clear: one non-empty line, and not a copy of a huge
/// input (a message may quote what it refuses, shortened).
pub(crate) fn assert_clear(message: &str, input_len: usize) {
    assert!(!message.trim().is_empty(), "empty error message");
    assert!(
        message.len() <= 2 * input_len + 2048,
        "an error message of {} bytes for {input_len} bytes of input: {:?}",
        message.len(),
        message.chars().take(200).collect::<String>()
    );
}

/// A loopback port nothing listens on (bound, then released): a
/// connection to it is refused at once, and nothing leaves the host.
pub(crate) fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("local address").port()
}
