//! Read-only access to the paths granted in `[grants] paths` (`--allow-path` with `vigil check`)
//! (`vigil:health/fs`). The host decides the grant on the path as written
//! (`..` removed lexically), then opens it beneath the granted directory,
//! following only relative symlinks that stay inside it, so neither `..`
//! nor a symlink can escape.
//!
//! ```no_run
//! use std::time::Duration;
//! use vigil_sdk::fs;
//!
//! # fn demo() -> Result<(), vigil_sdk::ErrorCode> {
//! let meta = fs::stat("/run/app/heartbeat")?;
//! let stale = meta.age() > Duration::from_secs(30);
//! let pid_text = fs::read_to_string("/run/app/pid", 64)?;
//! # Ok(())
//! # }
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ErrorCode;
use crate::bindings::checker::vigil::health::fs as raw;

pub use raw::{Kind, Metadata};

/// Largest read the host serves.
pub const MAX_READ: u32 = 1 << 20;

/// Metadata of `path`.
pub fn stat(path: &str) -> Result<Metadata, ErrorCode> {
    raw::stat(path)
}

/// At most `max_bytes` (capped at [`MAX_READ`]) from the start of `path`.
pub fn read(path: &str, max_bytes: u32) -> Result<Vec<u8>, ErrorCode> {
    raw::read(path, max_bytes.min(MAX_READ))
}

/// Like [`read`], as text with invalid UTF-8 replaced.
pub fn read_to_string(path: &str, max_bytes: u32) -> Result<String, ErrorCode> {
    read(path, max_bytes).map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

impl Metadata {
    /// Time since the last modification, by the host's clock.
    pub fn age(&self) -> Duration {
        Duration::from_millis(self.age_ms)
    }

    /// The modification time.
    pub fn modified(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.modified_ms)
    }

    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.kind == Kind::File
    }

    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Directory
    }
}
