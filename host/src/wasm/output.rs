//! Bounded capture of a guest's stdout and stderr.
//!
//! A check's output is diagnostic only, so a flood must cost the host
//! nothing: bytes past the cap are counted and dropped while the guest keeps
//! running (a write error would turn a chatty check into a trapped one).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::sync::LockExt;

/// A shared, capped byte buffer; clones write to the same buffer.
#[derive(Clone, Debug)]
pub struct BoundedOutput {
    inner: Arc<Mutex<Buffer>>,
    cap: usize,
}

#[derive(Debug, Default)]
struct Buffer {
    bytes: Vec<u8>,
    dropped: u64,
}

impl BoundedOutput {
    pub fn new(cap: usize) -> Self {
        Self {
            inner: Arc::default(),
            cap,
        }
    }

    fn append(&self, data: &[u8]) {
        let mut buffer = self.inner.lock_unpoisoned();
        let room = self.cap.saturating_sub(buffer.bytes.len());
        let (kept, rest) = data.split_at(room.min(data.len()));
        buffer.bytes.extend_from_slice(kept);
        buffer.dropped += rest.len() as u64;
    }

    /// The captured text (lossily decoded), with a note when bytes were dropped.
    pub fn text(&self) -> String {
        let buffer = self.inner.lock_unpoisoned();
        Self::decode(&buffer)
    }

    /// The captured text, leaving the buffer empty for the next call.
    pub fn take_text(&self) -> String {
        let mut buffer = self.inner.lock_unpoisoned();
        let text = Self::decode(&buffer);
        *buffer = Buffer::default();
        text
    }

    fn decode(buffer: &Buffer) -> String {
        let mut text = String::from_utf8_lossy(&buffer.bytes).into_owned();
        if buffer.dropped > 0 {
            text.push_str(&format!(
                "\n[vigil: {} more bytes of output dropped]",
                buffer.dropped
            ));
        }
        text
    }
}

impl IsTerminal for BoundedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for BoundedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for BoundedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for BoundedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for BoundedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_the_cap_and_counts_the_rest() {
        let out = BoundedOutput::new(4);
        out.append(b"abc");
        out.append(b"defg");
        assert_eq!(out.text(), "abcd\n[vigil: 3 more bytes of output dropped]");
    }
}
