//! Reading a stream of lines that a writer rotates by renaming, with or
//! without the writer running: what `vigil journal` (no vigil running),
//! `vigil logs`, `vigil status` and `vigil run --daemon` read.
//!
//! The writers (the journal, a service's log) rotate the same way: the
//! current file is renamed to `<stem>.1.<ext>` (older ones moved up by one
//! first) and a new current file is created. So the stream is, oldest
//! first, `<stem>.N.<ext>` .. `<stem>.1.<ext>`, then the current file.
//!
//! A [`Follower`] keeps the current file *open*: a rename does not move
//! what it reads. Once the current name points at another file, the one it
//! holds is finished (the writer renames only after its last write), so it
//! is read to its end and the follower moves on to the file that came
//! after it. No line is lost or read twice across a rotation; only a file
//! that rotated out of existence before it was reached is lost (the
//! writer's `keep` count of rotations in one poll interval).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The files of one rotated stream.
#[derive(Clone)]
pub struct Rotated {
    current: PathBuf,
    /// `<stem>.i.<ext>`, i from 1 (the newest rotated file).
    rotated: fn(&Path, usize) -> PathBuf,
    /// What `rotated` is given: the directory, or the current file.
    base: PathBuf,
}

/// More rotated files than any writer keeps; a bound on the scan.
const MAX_ROTATED: usize = 1000;

/// A file's identity, stable across renames.
type FileId = (u64, u64);

fn id(meta: &std::fs::Metadata) -> FileId {
    (meta.dev(), meta.ino())
}

impl Rotated {
    /// `current`, with rotated files named by `rotated(base, i)`.
    pub fn new(current: PathBuf, base: PathBuf, rotated: fn(&Path, usize) -> PathBuf) -> Rotated {
        Rotated {
            current,
            rotated,
            base,
        }
    }

    /// The current file.
    pub fn current(&self) -> &Path {
        &self.current
    }

    fn rotated(&self, i: usize) -> PathBuf {
        (self.rotated)(&self.base, i)
    }

    /// The rotated files that exist, oldest first (they are numbered
    /// without gaps; the scan stops at the first one missing).
    pub fn rotated_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = (1..=MAX_ROTATED)
            .map(|i| self.rotated(i))
            .take_while(|p| p.exists())
            .collect();
        files.reverse();
        files
    }

    /// True when neither the current file nor a rotated one exists.
    pub fn is_empty(&self) -> bool {
        !self.current.exists() && !self.rotated(1).exists()
    }

    /// Every complete line of the stream now, oldest first, and a follower
    /// that continues right after the last one.
    pub fn read_and_follow(&self) -> (Vec<String>, Follower) {
        let mut follower = Follower {
            files: self.clone(),
            file: None,
            pending: Vec::new(),
        };
        // Hold the current file before reading the rotated ones: a
        // rotation in between then shows as that file under a rotated
        // name, which is skipped (the follower reads it).
        follower.open_current();
        let held = follower.file.as_ref().map(|(_, id)| *id);
        let mut lines = Vec::new();
        for path in self.rotated_files() {
            let Ok(mut f) = File::open(&path) else {
                continue;
            };
            if f.metadata().ok().map(|m| id(&m)) == held && held.is_some() {
                continue;
            }
            let mut data = Vec::new();
            if f.read_to_end(&mut data).is_ok() {
                split_lines(&data, &mut lines, true);
            }
        }
        lines.extend(follower.poll());
        (lines, follower)
    }

    /// Every line of the stream now, oldest first.
    pub fn read_all(&self) -> Vec<String> {
        self.read_and_follow().0
    }
}

/// Reads what is appended to a rotated stream, across rotations.
pub struct Follower {
    files: Rotated,
    /// The file being read and its identity.
    file: Option<(File, FileId)>,
    /// The start of a line whose newline has not been written yet.
    pending: Vec<u8>,
}

impl Follower {
    fn open_current(&mut self) {
        self.file = File::open(&self.files.current)
            .ok()
            .and_then(|f| f.metadata().ok().map(|m| (f, id(&m))));
    }

    /// Complete lines appended since the last call, oldest first.
    pub fn poll(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.file.is_none() {
            // Nothing written yet: wait for the writer to create it.
            self.open_current();
        }
        // A bound on the moves per call: each one is to a newer file.
        for _ in 0..=MAX_ROTATED {
            let Some((file, held)) = self.file.as_mut() else {
                break;
            };
            let held = *held;
            read_appended(file, &mut self.pending, &mut lines);
            let current = std::fs::metadata(&self.files.current).map(|m| id(&m));
            match current {
                Ok(now) if now != held => {
                    // Rotated away: finished. Read what was written
                    // before the rename, then the file after it.
                    read_appended(file, &mut self.pending, &mut lines);
                    if !self.pending.is_empty() {
                        // A torn last line (the writer died mid-line).
                        let torn = std::mem::take(&mut self.pending);
                        lines.push(String::from_utf8_lossy(&torn).into_owned());
                    }
                    match self.successor(held) {
                        Some(next) => self.file = Some(next),
                        // Mid-rotation: the finished file is kept (read
                        // to its end, it gives nothing twice); next call.
                        None => break,
                    }
                }
                // Still the current file, or between the rename and the
                // new file's creation (next call).
                _ => break,
            }
        }
        lines
    }

    /// The file written after the one with identity `finished`: the one
    /// numbered one lower than where it sits now (the current file when it
    /// is `.1`). When it is gone (rotated out: it was the oldest), the
    /// oldest file left. `None` when that file cannot be opened yet (a
    /// rename in progress).
    fn successor(&self, finished: FileId) -> Option<(File, FileId)> {
        let mut oldest = None;
        let mut next = None;
        // A rotation moves files one at a time: tolerate one missing
        // number in between.
        let mut misses = 0;
        for i in 1..=MAX_ROTATED {
            match std::fs::metadata(self.files.rotated(i)) {
                Ok(m) if id(&m) == finished => {
                    next = Some(i - 1);
                    break;
                }
                Ok(_) => {
                    misses = 0;
                    oldest = Some(i);
                }
                Err(_) => {
                    misses += 1;
                    if misses > 1 {
                        break;
                    }
                }
            }
        }
        let path = match next.or(oldest) {
            Some(0) | None => self.files.current.clone(),
            Some(i) => self.files.rotated(i),
        };
        let file = File::open(path).ok()?;
        let meta = file.metadata().ok()?;
        (id(&meta) != finished).then(|| (file, id(&meta)))
    }
}

/// Read `file` from its position to its end, appending complete lines to
/// `lines` and keeping an unfinished one in `pending`. A file cut shorter
/// than the position (the journal's repair of a torn tail) is read on from
/// its new end.
fn read_appended(file: &mut File, pending: &mut Vec<u8>, lines: &mut Vec<String>) {
    if let (Ok(pos), Ok(meta)) = (file.stream_position(), file.metadata())
        && meta.len() < pos
    {
        pending.clear();
        let _ = file.seek(SeekFrom::Start(meta.len()));
    }
    let mut data = std::mem::take(pending);
    if file.read_to_end(&mut data).is_err() {
        *pending = data;
        return;
    }
    let end = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    split_lines(&data[..end], lines, false);
    *pending = data[end..].to_vec();
}

/// Split `data` into lines (without their newline); with `torn_too`, bytes
/// after the last newline are a line as well.
fn split_lines(data: &[u8], lines: &mut Vec<String>, torn_too: bool) {
    let mut rest = data;
    while let Some(i) = rest.iter().position(|b| *b == b'\n') {
        lines.push(String::from_utf8_lossy(&rest[..i]).into_owned());
        rest = &rest[i + 1..];
    }
    if torn_too && !rest.is_empty() {
        lines.push(String::from_utf8_lossy(rest).into_owned());
    }
}

/// The last `n` of `items`.
pub fn last<T>(mut items: Vec<T>, n: usize) -> Vec<T> {
    let cut = items.len().saturating_sub(n);
    items.drain(..cut);
    items
}

/// How often a follower without a running writer to stream from looks
/// at the files again.
pub const POLL: std::time::Duration = std::time::Duration::from_millis(200);

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn rotated(dir: &Path, i: usize) -> PathBuf {
        dir.join(format!("s.{i}.log"))
    }

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!("vigil-tail-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).expect("dir");
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        f.write_all(text.as_bytes()).expect("write");
    }

    /// The writers' rotation: move every rotated file up by one, the
    /// current one to `.1`; the next append creates a new current file.
    fn rotate(dir: &Path, keep: usize) {
        for i in (1..keep).rev() {
            let _ = std::fs::rename(rotated(dir, i), rotated(dir, i + 1));
        }
        std::fs::rename(dir.join("s.log"), rotated(dir, 1)).expect("rotate");
    }

    #[test]
    fn reads_across_rotations_and_follows_without_loss_or_repeat() {
        let t = TempDir::new("follow");
        let files = Rotated::new(t.0.join("s.log"), t.0.clone(), rotated);
        append(&t.0.join("s.log"), "1\n2\n");
        rotate(&t.0, 3);
        append(&t.0.join("s.log"), "3\n4 (half");
        let (lines, mut f) = files.read_and_follow();
        assert_eq!(lines, ["1", "2", "3"]);
        append(&t.0.join("s.log"), ")\n5\n");
        // Two rotations between two polls, a line written before each.
        rotate(&t.0, 3);
        append(&t.0.join("s.log"), "6\n");
        rotate(&t.0, 3);
        append(&t.0.join("s.log"), "7\n");
        assert_eq!(f.poll(), ["4 (half)", "5", "6", "7"]);
        assert!(f.poll().is_empty());
        // Renamed away, new file not yet created.
        rotate(&t.0, 3);
        assert!(f.poll().is_empty());
        append(&t.0.join("s.log"), "8\n");
        assert_eq!(f.poll(), ["8"]);
        assert_eq!(
            files.read_all(),
            ["3", "4 (half)", "5", "6", "7", "8"],
            "1 and 2 rotated out (keep 3)"
        );
    }

    #[test]
    fn a_held_file_rotated_out_of_existence_goes_on_with_the_oldest_left() {
        let t = TempDir::new("keep1");
        let files = Rotated::new(t.0.join("s.log"), t.0.clone(), rotated);
        append(&t.0.join("s.log"), "1\n");
        let (lines, mut f) = files.read_and_follow();
        assert_eq!(lines, ["1"]);
        // Keep 1 (the service logs): the second rotation deletes the
        // file the follower holds; it still reads it, then the next one.
        append(&t.0.join("s.log"), "2\n");
        rotate(&t.0, 1);
        append(&t.0.join("s.log"), "3\n");
        rotate(&t.0, 1);
        append(&t.0.join("s.log"), "4\n");
        assert_eq!(f.poll(), ["2", "3", "4"]);
    }

    #[test]
    fn follows_a_file_that_does_not_exist_yet() {
        let t = TempDir::new("later");
        let files = Rotated::new(t.0.join("s.log"), t.0.clone(), rotated);
        assert!(files.is_empty());
        let (lines, mut f) = files.read_and_follow();
        assert!(lines.is_empty());
        assert!(f.poll().is_empty());
        append(&t.0.join("s.log"), "a\n");
        assert_eq!(f.poll(), ["a"]);
    }

    #[test]
    fn last_n() {
        assert_eq!(last(vec![1, 2, 3], 2), [2, 3]);
        assert_eq!(last(vec![1], 5), [1]);
    }
}
