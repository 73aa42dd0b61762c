//! The journal: what happened, one JSON object a line, in the state
//! directory.
//!
//! - `journal.lock` is held with an exclusive `flock` for the life of the
//!   instance and holds its pid, so a second instance is refused with
//!   "journal locked by another vigil (pid N)".
//! - Lifecycle events (anything about processes) are fsynced.
//! - On open, a torn or corrupt last line is truncated and a warning
//!   recorded; it is never fatal.
//! - `journal.jsonl` rotates by size to `journal.1.jsonl`, `journal.2.jsonl`, ...
//! - [`Journal::previous_children`] reads the previous instances' `spawned`
//!   events (pid + /proc start time) that never ended; whether one still
//!   lives and is stopped is recovery's decision (`supervisor::recover`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

mod event;
mod time;

pub use event::{Cause, Event, Line};
pub use time::{parse_timestamp, timestamp};

/// File names inside the state directory.
pub const FILE: &str = "journal.jsonl";
pub const LOCK: &str = "journal.lock";

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal locked by another vigil (pid {})", .pid.map(|p| p.to_string()).unwrap_or_else(|| "unknown".into()))]
    Locked { pid: Option<u32> },
    #[error("journal: cannot {op} {}: {source}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> JournalError {
    let path = path.to_path_buf();
    move |source| JournalError::Io { op, path, source }
}

/// Size rotation settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Rotate once the current file reaches this size.
    pub max_bytes: u64,
    /// Rotated files kept: journal.1.jsonl (newest) .. journal.N.jsonl.
    pub keep: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_bytes: 8 << 20,
            keep: 3,
        }
    }
}

/// The open journal, exclusively locked for the life of the instance.
pub struct Journal {
    dir: PathBuf,
    file: File,
    size: u64,
    options: Options,
    /// The time stamped on the last line written; see [`Journal::stamp`].
    last_at: Option<SystemTime>,
    _lock: Flock<File>,
}

/// How far back an event's own time may lie behind the last line written
/// and still be stamped with that line's time instead. Events reach the
/// writer from several threads, each stamped when it happened: two taken
/// a millisecond apart can arrive the other way round (seen at 1,000
/// services, by up to 3 ms). A larger step back is the clock itself being
/// set back, and is written as it is.
const REORDER_WINDOW: Duration = Duration::from_secs(1);

/// A child of a previous instance that may still be alive: its pid (also
/// its process group) and its start time, as journaled at spawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousChild {
    pub service: Option<String>,
    pub pid: i32,
    pub start_time: u64,
}

impl Journal {
    /// Lock and open the journal in `dir` (created if needed). A torn or
    /// corrupt last line is truncated and recorded as a warning. Records
    /// `acquired`.
    pub fn open(dir: &Path, options: Options) -> Result<Journal, JournalError> {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let lock_path = dir.join(LOCK);
        let lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io("open", &lock_path))?;
        let mut lock = match Flock::lock(lock_file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((mut f, Errno::EWOULDBLOCK)) => {
                let mut text = String::new();
                let _ = f.read_to_string(&mut text);
                return Err(JournalError::Locked {
                    pid: text.trim().parse().ok(),
                });
            }
            Err((_, e)) => return Err(io("lock", &lock_path)(std::io::Error::from(e))),
        };
        lock.set_len(0).map_err(io("write", &lock_path))?;
        lock.seek(SeekFrom::Start(0))
            .map_err(io("write", &lock_path))?;
        writeln!(lock, "{}", std::process::id()).map_err(io("write", &lock_path))?;
        lock.sync_all().map_err(io("sync", &lock_path))?;

        let path = dir.join(FILE);
        let truncated = repair_tail(&path)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io("open", &path))?;
        let size = file.metadata().map_err(io("stat", &path))?.len();
        let mut journal = Journal {
            dir: dir.to_path_buf(),
            file,
            size,
            options,
            last_at: None,
            _lock: lock,
        };
        journal.record(
            None,
            &Event::Acquired {
                pid: std::process::id(),
            },
        )?;
        if let Some(bytes) = truncated {
            journal.record(
                None,
                &Event::Warning {
                    message: format!(
                        "journal: truncated a torn or corrupt last line ({bytes} bytes)"
                    ),
                },
            )?;
        }
        Ok(journal)
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Append one event (fsynced when it is a lifecycle event), rotating
    /// by size.
    pub fn record(&mut self, service: Option<&str>, event: &Event) -> Result<(), JournalError> {
        self.write(service, event)?;
        if event.is_lifecycle() {
            let path = self.dir.join(FILE);
            self.file.sync_data().map_err(io("sync", &path))?;
        }
        Ok(())
    }

    /// Append one event without syncing, rotating by size. Returns the
    /// line as written.
    fn write(&mut self, service: Option<&str>, event: &Event) -> Result<Line, JournalError> {
        self.write_at(SystemTime::now(), service, event)
    }

    /// Write one line stamped `at` (when the event happened, which may be
    /// before the writer thread got to it).
    fn write_at(
        &mut self,
        at: SystemTime,
        service: Option<&str>,
        event: &Event,
    ) -> Result<Line, JournalError> {
        let at = self.stamp(at);
        let line = Line {
            ts: timestamp(at),
            service: service.map(str::to_string),
            event: event.clone(),
        };
        let mut text = serde_json::to_string(&line)
            .map_err(|e| io("encode", &self.dir)(std::io::Error::other(e)))?;
        text.push('\n');
        let path = self.dir.join(FILE);
        if let Err(e) = self.file.write_all(text.as_bytes()) {
            // A full disk takes what fits of the line and refuses the
            // rest: cut the piece off, or the next line written would
            // continue it and neither would parse.
            let _ = self.file.set_len(self.size);
            return Err(io("write", &path)(e));
        }
        self.size += text.len() as u64;
        // The line is written: a rotation that fails must not make the
        // caller write it again.
        if self.size >= self.options.max_bytes
            && let Err(e) = self.rotate()
        {
            tracing::error!("{e}");
        }
        Ok(line)
    }

    /// The time to write for an event that happened `at`: never before
    /// the last line's (within [`REORDER_WINDOW`]), so the journal's lines
    /// are in time order as well as in the order they were written.
    fn stamp(&mut self, at: SystemTime) -> SystemTime {
        let at = match self.last_at {
            Some(last) if last.duration_since(at).is_ok_and(|d| d <= REORDER_WINDOW) => last,
            _ => at,
        };
        self.last_at = Some(at);
        at
    }

    fn rotate(&mut self) -> Result<(), JournalError> {
        let current = self.dir.join(FILE);
        if self.options.keep == 0 {
            self.file.set_len(0).map_err(io("truncate", &current))?;
            self.size = 0;
            return Ok(());
        }
        for i in (1..self.options.keep).rev() {
            let from = rotated(&self.dir, i);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.dir, i + 1)).map_err(io("rotate", &from))?;
            }
        }
        self.file.sync_all().map_err(io("sync", &current))?;
        std::fs::rename(&current, rotated(&self.dir, 1)).map_err(io("rotate", &current))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&current)
            .map_err(io("open", &current))?;
        self.size = 0;
        Ok(())
    }

    /// Children of previous instances that may still be alive, oldest
    /// first: spawned with a known start time and never seen ending
    /// (`exited` is journaled once the whole group is gone, `orphan-reaped`
    /// and `recovered` end one too). Only what was journaled: whether the
    /// pid still names that child is for the caller to find out.
    pub fn previous_children(&self) -> Vec<PreviousChild> {
        previous_children(&self.dir, self.options.keep)
    }

    /// When each service last had a child spawned, as journaled by
    /// previous instances: a scheduled job's last run, for `catch-up`.
    pub fn last_spawns(&self) -> std::collections::BTreeMap<String, SystemTime> {
        let mut last = std::collections::BTreeMap::new();
        for line in read_all(&self.dir, self.options.keep) {
            if let (Event::Spawned { .. }, Some(service)) = (&line.event, line.service)
                && let Some(at) = parse_timestamp(&line.ts)
            {
                last.insert(service, at);
            }
        }
        last
    }
}

/// A [`Journal`] owned by a writer thread, so that recording never blocks
/// the caller on disk I/O or fsync: lines are queued, written in order,
/// and fsynced once per batch that holds a lifecycle event. Clones share
/// the writer. Every line written is also broadcast to subscribers
/// (`vigil journal -f`), so followers never poll the file.
#[derive(Clone)]
pub struct JournalHandle {
    tx: std::sync::mpsc::Sender<Cmd>,
    lines: tokio::sync::broadcast::Sender<Line>,
}

/// Lines a follower may fall behind by before it is told it missed some.
const FOLLOW_BACKLOG: usize = 4096;

/// Lines kept in memory while they cannot be written (a full disk), to be
/// written in order once they can; beyond this many the newest are
/// dropped and counted, so a long outage costs bounded memory.
const UNWRITTEN_MAX: usize = 10_000;

/// How often lines kept back by a write error are tried again when
/// nothing new is recorded.
const RETRY_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// What the writer could not write yet, oldest first, and what it had to
/// drop: a full state directory delays lines (keeping their times and
/// order) instead of losing them, and tearing one.
#[derive(Default)]
struct Unwritten {
    lines: std::collections::VecDeque<(SystemTime, Option<String>, Event)>,
    dropped: u64,
}

impl Unwritten {
    /// Write what was kept back, then `new`, in order; stop at the first
    /// failure and keep the rest. Lines written are passed to `sent`.
    fn write(
        &mut self,
        journal: &mut Journal,
        new: Vec<(SystemTime, Option<String>, Event)>,
        mut sent: impl FnMut(Line),
    ) {
        let was_failing = !self.lines.is_empty();
        for record in new {
            if self.lines.len() < UNWRITTEN_MAX {
                self.lines.push_back(record);
            } else {
                self.dropped += 1;
            }
        }
        while let Some((at, service, event)) = self.lines.front() {
            match journal.write_at(*at, service.as_deref(), event) {
                Ok(line) => {
                    sent(line);
                    self.lines.pop_front();
                }
                Err(e) => {
                    if !was_failing {
                        tracing::error!("{e}; keeping lines until they can be written");
                    }
                    return;
                }
            }
        }
        if self.dropped > 0 {
            let message = format!(
                "journal: {} lines lost: the state directory could not be written",
                self.dropped
            );
            if let Ok(line) = journal.write_at(SystemTime::now(), None, &Event::Warning { message })
            {
                sent(line);
                self.dropped = 0;
            }
        }
    }
}

enum Cmd {
    /// Stamped by the caller: the writer may be behind (an fsync).
    Record(SystemTime, Option<String>, Event),
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl Journal {
    /// Hand the journal to its writer thread.
    pub fn into_writer(self) -> std::io::Result<JournalHandle> {
        let (tx, rx) = std::sync::mpsc::channel::<Cmd>();
        let (lines, _) = tokio::sync::broadcast::channel(FOLLOW_BACKLOG);
        let followers = lines.clone();
        std::thread::Builder::new()
            .name("vigil-journal".into())
            .spawn(move || {
                let mut journal = self;
                let mut unwritten = Unwritten::default();
                loop {
                    let first = if unwritten.lines.is_empty() {
                        match rx.recv() {
                            Ok(cmd) => Some(cmd),
                            Err(_) => break,
                        }
                    } else {
                        match rx.recv_timeout(RETRY_EVERY) {
                            Ok(cmd) => Some(cmd),
                            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                        }
                    };
                    let mut batch: Vec<Cmd> = first.into_iter().collect();
                    batch.extend(rx.try_iter());
                    let mut sync = unwritten.lines.iter().any(|(_, _, e)| e.is_lifecycle());
                    let mut waiters = Vec::new();
                    let mut records = Vec::new();
                    for cmd in batch {
                        match cmd {
                            Cmd::Record(at, service, event) => {
                                sync |= event.is_lifecycle();
                                records.push((at, service, event));
                            }
                            Cmd::Flush(done) => waiters.push(done),
                        }
                    }
                    unwritten.write(&mut journal, records, |line| {
                        // No follower is not an error.
                        let _ = followers.send(line);
                    });
                    if sync && let Err(e) = journal.file.sync_data() {
                        tracing::error!("journal: cannot sync: {e}");
                    }
                    for done in waiters {
                        let _ = done.send(());
                    }
                }
            })?;
        Ok(JournalHandle { tx, lines })
    }
}

impl JournalHandle {
    /// Queue one event.
    pub fn record(&self, service: Option<&str>, event: &Event) {
        if self
            .tx
            .send(Cmd::Record(
                SystemTime::now(),
                service.map(str::to_string),
                event.clone(),
            ))
            .is_err()
        {
            tracing::error!("journal writer is gone; lost {event:?}");
        }
    }

    /// Every line written from now on, in order. A follower that falls
    /// more than a few thousand lines behind gets `Lagged` and continues.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Line> {
        self.lines.subscribe()
    }

    /// Wait until everything queued so far is written and synced.
    pub async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.tx.send(Cmd::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

/// The `i`th newest rotated journal file in `dir` (from 1).
pub fn rotated(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("journal.{i}.jsonl"))
}

/// Truncate a torn (no final newline) or unparsable last line. Returns how
/// many bytes were cut.
fn repair_tail(path: &Path) -> Result<Option<u64>, JournalError> {
    let mut data = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut data).map_err(io("read", path))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("open", path)(e)),
    }
    let mut keep = data.len();
    // A torn line: bytes after the last newline.
    keep = data[..keep]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    // A complete but corrupt last line.
    if keep > 0 {
        let start = data[..keep - 1]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        // Read as the readers read it ([`parse_lines`]): a byte that is not
        // UTF-8 does not make a line corrupt.
        let last = String::from_utf8_lossy(&data[start..keep - 1]);
        if serde_json::from_str::<serde_json::Value>(&last).is_err() {
            keep = start;
        }
    }
    if keep == data.len() {
        return Ok(None);
    }
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io("open", path))?;
    f.set_len(keep as u64).map_err(io("truncate", path))?;
    f.sync_all().map_err(io("sync", path))?;
    Ok(Some((data.len() - keep) as u64))
}

/// Every parsable line of one journal file; corrupt lines are skipped.
pub fn read_lines(path: &Path) -> Vec<Line> {
    read_counted(path).0
}

/// The journal lines in `data` (the bytes of a journal file), and how many
/// lines were skipped: torn, corrupt, of an unknown kind or with fields of
/// the wrong type. A byte that is not UTF-8 spoils only the string it is
/// in (read as U+FFFD, as `vigil logs` reads output), never the file: a
/// flipped bit on disk once hid every line around it, `spawned` events
/// included, from recovery and from `vigil journal`.
pub fn parse_lines(data: &[u8]) -> (Vec<Line>, usize) {
    let mut lines = Vec::new();
    let mut skipped = 0;
    for raw in data.split(|b| *b == b'\n') {
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_line(raw) {
            Some(line) => lines.push(line),
            None => skipped += 1,
        }
    }
    (lines, skipped)
}

/// One journal line from its bytes (without the newline), a byte that is
/// not UTF-8 read as U+FFFD; `None` for a torn or corrupt one.
fn parse_line(raw: &[u8]) -> Option<Line> {
    serde_json::from_str(&String::from_utf8_lossy(raw)).ok()
}

/// [`parse_lines`] of the file at `path` (none when it cannot be read).
fn read_counted(path: &Path) -> (Vec<Line>, usize) {
    match std::fs::read(path) {
        Ok(data) => parse_lines(&data),
        Err(_) => (Vec::new(), 0),
    }
}

/// Lines of the rotated files (oldest first) and then of the current one.
pub fn read_all(dir: &Path, keep: usize) -> Vec<Line> {
    read_all_counted(dir, keep).0
}

/// [`read_all`], and how many lines of the files were skipped.
pub fn read_all_counted(dir: &Path, keep: usize) -> (Vec<Line>, usize) {
    let mut lines = Vec::new();
    let mut skipped = 0;
    for path in (1..=keep)
        .rev()
        .map(|i| rotated(dir, i))
        .chain([dir.join(FILE)])
    {
        let (more, bad) = read_counted(&path);
        lines.extend(more);
        skipped += bad;
    }
    (lines, skipped)
}

/// The last `n` lines that `wanted` accepts and the last `recent` lines
/// of all, across the rotated files (oldest first) and the current one,
/// read a line at a time: what a request holds is bounded by `n` and
/// `recent`, not by the journal's size. (Parsing the whole journal once
/// per request made 50 concurrent `journal -f` clients on a 23 MB journal
/// cost Vigil 2.3 GB of RSS, kept after they left.)
pub fn read_tail(
    dir: &Path,
    keep: usize,
    n: usize,
    recent: usize,
    wanted: impl Fn(&Line) -> bool,
) -> (Vec<Line>, Vec<Line>) {
    use std::collections::VecDeque;
    use std::io::BufRead;
    let mut mine: VecDeque<Line> = VecDeque::new();
    let mut last: VecDeque<Line> = VecDeque::new();
    let files = (1..=keep)
        .rev()
        .map(|i| rotated(dir, i))
        .chain(std::iter::once(dir.join(FILE)));
    for path in files {
        let Ok(file) = File::open(&path) else {
            continue;
        };
        for raw in std::io::BufReader::new(file).split(b'\n') {
            let Ok(raw) = raw else {
                break;
            };
            let Some(line) = parse_line(&raw) else {
                continue;
            };
            if n > 0 && wanted(&line) {
                if mine.len() == n {
                    mine.pop_front();
                }
                mine.push_back(line.clone());
            }
            if recent > 0 {
                if last.len() == recent {
                    last.pop_front();
                }
                last.push_back(line);
            }
        }
    }
    (mine.into(), last.into())
}

fn previous_children(dir: &Path, keep: usize) -> Vec<PreviousChild> {
    let mut live: Vec<PreviousChild> = Vec::new();
    for line in read_all(dir, keep) {
        match line.event {
            Event::Spawned {
                pid,
                start_time: Some(start_time),
                ..
            } => {
                live.retain(|c| c.pid != pid);
                live.push(PreviousChild {
                    service: line.service,
                    pid,
                    start_time,
                });
            }
            Event::Exited { pid: Some(pid), .. }
            | Event::OrphanReaped { pid, .. }
            | Event::Recovered { pid, .. } => {
                live.retain(|c| c.pid != pid);
            }
            _ => {}
        }
    }
    live
}

#[cfg(test)]
mod fuzz_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;
    use std::time::UNIX_EPOCH;

    fn kinds(dir: &Path) -> Vec<&'static str> {
        read_lines(&dir.join(FILE))
            .iter()
            .map(|l| l.event.kind())
            .collect()
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn timestamps_parse_back() {
        for t in [
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            UNIX_EPOCH + Duration::from_secs(951_782_400),
        ] {
            assert_eq!(parse_timestamp(&timestamp(t)), Some(t));
        }
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_timestamp("2023-11-14T22:13:20Z"), Some(t));
        assert_eq!(parse_timestamp("2023-11-15T00:13:20+02:00"), Some(t));
        assert_eq!(parse_timestamp("2023-11-14 21:13:20-01:00"), Some(t));
        assert_eq!(
            parse_timestamp("2023-11-14"),
            Some(UNIX_EPOCH + Duration::from_secs(1_699_920_000))
        );
        for bad in [
            "",
            "10m",
            "2023-11-14T22:13:20",
            "2023-13-01",
            "2023-02-29",
            "2023-11-14T25:00:00Z",
            "2023-11-14T22:13:20+2",
            "2023-1-14",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    /// Events stamped on other threads reach the writer a little out of
    /// order; the lines' times must still never go back (the soak's
    /// ordering invariant failed at 1,000 services). A real step back of
    /// the clock is written as it is.
    #[test]
    fn line_times_never_go_back_within_the_reorder_window() {
        let t = TempDir::new("order");
        let mut j = Journal::open(&t.0, Options::default()).expect("open");
        let now = SystemTime::now();
        let ready =
            |j: &mut Journal, at| j.write_at(at, Some("web"), &Event::Ready).expect("write");
        let first = ready(&mut j, now);
        let late = ready(&mut j, now - Duration::from_millis(3));
        assert_eq!(
            late.ts, first.ts,
            "a line 3 ms behind is stamped with the last line's time"
        );
        let stepped = ready(&mut j, now - Duration::from_secs(3600));
        assert_eq!(stepped.ts, timestamp(now - Duration::from_secs(3600)));
        let next = ready(
            &mut j,
            now - Duration::from_secs(3600) + Duration::from_millis(5),
        );
        assert!(next.ts > stepped.ts);
    }

    #[test]
    fn events_are_json_lines_with_kind_service_and_fields() {
        let t = TempDir::new("lines");
        let mut j = Journal::open(&t.0, Options::default()).expect("open");
        j.record(
            Some("web"),
            &Event::Spawned {
                pid: 12,
                start_time: Some(34),
                restarts: 0,
            },
        )
        .expect("record");
        j.record(Some("web"), &Event::Ready).expect("record");
        j.record(
            Some("web"),
            &Event::Exited {
                pid: Some(12),
                code: None,
                signal: Some("SIGKILL".into()),
                uptime_ms: 5,
                cause: None,
            },
        )
        .expect("record");
        let text = std::fs::read_to_string(t.0.join(FILE)).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        let v: serde_json::Value = serde_json::from_str(lines[1]).expect("json");
        assert_eq!(v["kind"], "spawned");
        assert_eq!(v["service"], "web");
        assert_eq!(v["pid"], 12);
        assert_eq!(v["start_time"], 34);
        assert!(v["ts"].as_str().is_some_and(|s| s.ends_with('Z')));
        assert_eq!(kinds(&t.0), vec!["acquired", "spawned", "ready", "exited"]);
        assert!(lines[2].contains("\"kind\":\"ready\""));
    }

    #[test]
    fn fields_text_escapes_what_the_json_keeps_exact() {
        let reason = "\x1b]0;pwned\x07\u{202e}\nok";
        let event = Event::Check {
            phase: "liveness".into(),
            outcome: "error".into(),
            reason: Some(reason.into()),
        };
        let text = event.fields_text();
        assert!(
            text.contains("reason=\\x1b]0;pwned\\x07\\u{202e}\\nok"),
            "{text:?}"
        );
        assert!(
            !text.contains(['\x1b', '\x07', '\u{202e}', '\n']),
            "{text:?}"
        );
        let json = serde_json::to_string(&event).expect("json");
        let back: Event = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, event);
    }

    #[test]
    fn fields_text_leaves_clock_ticks_out() {
        let event = Event::Spawned {
            pid: 12,
            start_time: Some(93_016),
            restarts: 0,
        };
        assert_eq!(event.fields_text(), "pid=12 restarts=0");
    }

    #[tokio::test]
    async fn the_writer_thread_keeps_order_and_flushes() {
        let t = TempDir::new("writer");
        let j = Journal::open(&t.0, Options::default()).expect("open");
        let h = j.into_writer().expect("writer");
        for i in 0..100 {
            h.record(
                Some("s"),
                &Event::Restarting {
                    delay_ms: i,
                    restarts: 0,
                },
            );
        }
        h.record(None, &Event::Quit { clean: true });
        h.flush().await;
        let lines = read_lines(&t.0.join(FILE));
        assert_eq!(lines.len(), 102);
        assert_eq!(
            lines[50].event,
            Event::Restarting {
                delay_ms: 49,
                restarts: 0
            }
        );
        assert_eq!(lines[101].event, Event::Quit { clean: true });
    }

    #[test]
    fn a_second_instance_is_refused() {
        let t = TempDir::new("lock");
        let _first = Journal::open(&t.0, Options::default()).expect("open");
        match Journal::open(&t.0, Options::default()) {
            Err(e @ JournalError::Locked { .. }) => {
                assert_eq!(
                    e.to_string(),
                    format!(
                        "journal locked by another vigil (pid {})",
                        std::process::id()
                    )
                );
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("second open must fail"),
        }
        drop(_first);
        Journal::open(&t.0, Options::default()).expect("free again once the first is gone");
    }

    #[test]
    fn a_torn_or_corrupt_tail_is_truncated_and_recorded() {
        for tail in ["{\"ts\":\"x\",\"kind\":\"rea", "not json at all\n"] {
            let t = TempDir::new("torn");
            drop(Journal::open(&t.0, Options::default()).expect("open"));
            let mut f = OpenOptions::new()
                .append(true)
                .open(t.0.join(FILE))
                .expect("open");
            f.write_all(tail.as_bytes()).expect("write");
            drop(f);
            let j = Journal::open(&t.0, Options::default()).expect("reopen");
            drop(j);
            let text = std::fs::read_to_string(t.0.join(FILE)).expect("read");
            assert!(
                text.lines()
                    .all(|l| serde_json::from_str::<Line>(l).is_ok()),
                "{text}"
            );
            assert_eq!(kinds(&t.0), vec!["acquired", "acquired", "warning"]);
            assert!(text.contains("truncated a torn or corrupt last line"));
        }
    }

    #[test]
    fn rotates_by_size_keeping_n_files() {
        let t = TempDir::new("rotate");
        let mut j = Journal::open(
            &t.0,
            Options {
                max_bytes: 300,
                keep: 2,
            },
        )
        .expect("open");
        for i in 0..40 {
            j.record(
                Some("s"),
                &Event::Warning {
                    message: format!("message number {i}"),
                },
            )
            .expect("record");
        }
        assert!(rotated(&t.0, 1).exists());
        assert!(rotated(&t.0, 2).exists());
        assert!(!rotated(&t.0, 3).exists());
        assert!(std::fs::metadata(t.0.join(FILE)).expect("stat").len() < 300);
        let all = read_all(&t.0, 2);
        let last = all.last().expect("lines");
        assert_eq!(
            last.event,
            Event::Warning {
                message: "message number 39".into()
            }
        );
    }

    #[test]
    fn previous_children_are_what_was_spawned_and_never_ended() {
        let t = TempDir::new("prev");
        let spawned = |pid, start_time| Event::Spawned {
            pid,
            start_time,
            restarts: 0,
        };
        {
            let mut j = Journal::open(&t.0, Options::default()).expect("open");
            j.record(Some("a"), &spawned(999_990, Some(7)))
                .expect("record");
            // Reused pids are not the journal's business: listed.
            j.record(Some("b"), &spawned(1, Some(u64::MAX)))
                .expect("record");
            // Spawned then exited.
            j.record(Some("c"), &spawned(999_999, Some(5)))
                .expect("record");
            j.record(
                Some("c"),
                &Event::Exited {
                    pid: Some(999_999),
                    code: Some(0),
                    signal: None,
                    uptime_ms: 1,
                    cause: None,
                },
            )
            .expect("record");
            // Ended by reaping or by an earlier recovery.
            j.record(Some("e"), &spawned(999_997, Some(5)))
                .expect("record");
            j.record(
                None,
                &Event::OrphanReaped {
                    pid: 999_997,
                    code: Some(0),
                    signal: None,
                },
            )
            .expect("record");
            j.record(Some("f"), &spawned(999_996, Some(5)))
                .expect("record");
            j.record(
                Some("f"),
                &Event::Recovered {
                    pid: 999_996,
                    start_time: 5,
                },
            )
            .expect("record");
            // No start time: nothing to tell it from a reused pid.
            j.record(Some("g"), &spawned(999_995, None))
                .expect("record");
            j.record(Some("d"), &spawned(999_998, Some(5)))
                .expect("record");
            // Crash: no quit.
        }
        let j = Journal::open(&t.0, Options::default()).expect("reopen");
        let child = |service: &str, pid, start_time| PreviousChild {
            service: Some(service.into()),
            pid,
            start_time,
        };
        assert_eq!(
            j.previous_children(),
            vec![
                child("a", 999_990, 7),
                child("b", 1, u64::MAX),
                child("d", 999_998, 5),
            ]
        );
    }
}
