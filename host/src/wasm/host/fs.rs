//! `vigil:health/fs`: stat and read of granted paths only.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::wasm::bindings::ErrorCode;
use crate::wasm::bindings::checker::vigil::health::fs::{self, Kind, Metadata};
use crate::wasm::grants::PathDenied;
use crate::wasm::store::{HostState, MAX_TRANSFER};

impl HostState {
    fn granted_path(&self, path: &str) -> Result<std::path::PathBuf, ErrorCode> {
        let joined;
        let path = match &self.caps.base_dir {
            Some(base) if !path.starts_with('/') => {
                joined = base.join(path).to_string_lossy().into_owned();
                joined.as_str()
            }
            _ => path,
        };
        self.caps
            .grants
            .resolve_path(path)
            .map_err(|denied| match denied {
                PathDenied::NotGranted(real) => ErrorCode::Denied(format!(
                    "{path} (resolves to {}) is not in allowed-paths",
                    real.display()
                )),
                PathDenied::NotFound => ErrorCode::NotFound,
                PathDenied::Invalid(why) => ErrorCode::Invalid(format!("{path}: {why}")),
                PathDenied::Io(why) => ErrorCode::Io(format!("{path}: {why}")),
            })
    }
}

fn io_error(err: std::io::Error) -> ErrorCode {
    match err.kind() {
        std::io::ErrorKind::NotFound => ErrorCode::NotFound,
        std::io::ErrorKind::PermissionDenied => ErrorCode::Denied(err.to_string()),
        _ => ErrorCode::Io(err.to_string()),
    }
}

fn millis_since_epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

/// Runs blocking file I/O off the async workers, within the call deadline.
async fn blocking<T: Send + 'static>(
    timeout: Duration,
    work: impl FnOnce() -> Result<T, ErrorCode> + Send + 'static,
) -> Result<T, ErrorCode> {
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(ErrorCode::Io(join.to_string())),
        Err(_) => Err(ErrorCode::Timeout),
    }
}

impl fs::Host for HostState {
    async fn stat(&mut self, path: String) -> Result<Metadata, ErrorCode> {
        let real = self.granted_path(&path)?;
        let timeout = self.caps.call_timeout(None);
        blocking(timeout, move || {
            let meta = std::fs::metadata(&real).map_err(io_error)?;
            let modified = meta.modified().unwrap_or(UNIX_EPOCH);
            let kind = if meta.is_file() {
                Kind::File
            } else if meta.is_dir() {
                Kind::Directory
            } else {
                Kind::Other
            };
            Ok(Metadata {
                kind,
                size: meta.len(),
                modified_ms: millis_since_epoch(modified),
                age_ms: SystemTime::now()
                    .duration_since(modified)
                    .unwrap_or(Duration::ZERO)
                    .as_millis() as u64,
            })
        })
        .await
    }

    async fn read(&mut self, path: String, max_bytes: u32) -> Result<Vec<u8>, ErrorCode> {
        let real = self.granted_path(&path)?;
        let timeout = self.caps.call_timeout(None);
        let limit = (max_bytes as usize).min(MAX_TRANSFER);
        blocking(timeout, move || {
            // O_NOFOLLOW: the path was resolved, so a symlink appearing here
            // now is a swap under our feet. O_NONBLOCK: never hang on a FIFO.
            let file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
                .open(&real)
                .map_err(io_error)?;
            if !file.metadata().map_err(io_error)?.is_file() {
                return Err(ErrorCode::Invalid(format!(
                    "{} is not a regular file",
                    real.display()
                )));
            }
            let mut contents = Vec::with_capacity(limit.min(64 * 1024));
            file.take(limit as u64)
                .read_to_end(&mut contents)
                .map_err(io_error)?;
            Ok(contents)
        })
        .await
    }
}
