//! One computation for a burst of identical requests.
//!
//! `GET /v1/status` at 1,000 services reads two cgroup files per service
//! and serialises 400 KB: about 11 ms of CPU. A burst of a hundred
//! `vigil status` (a dashboard fleet, a script in a loop, the soak's
//! bursts) made each compute its own on the runtime's workers, and the
//! service tasks' checks waited behind them (up to 4 s late, `make
//! soak-1000`). Requests that arrive while one is being computed now wait
//! for the next computation and share it; it runs on the blocking pool,
//! off the workers.

use bytes::Bytes;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The last computed value and when its computation started.
#[derive(Default)]
pub struct Coalesced {
    last: Mutex<Option<(Instant, Bytes)>>,
}

impl Coalesced {
    /// The value for a request that arrived at `arrived`: one computed by a
    /// computation that *started* no earlier, so an answer never predates
    /// its question (a `vigil status` right after `vigil stop` sees the
    /// stop). `compute` runs on the blocking pool.
    pub async fn get<F>(&self, arrived: Instant, compute: F) -> Option<Bytes>
    where
        F: FnOnce() -> Bytes + Send + 'static,
    {
        let mut last = self.last.lock().await;
        if let Some((started, value)) = last.as_ref()
            && *started >= arrived
        {
            return Some(value.clone());
        }
        let started = Instant::now();
        let value = tokio::task::spawn_blocking(compute).await.ok()?;
        *last = Some((started, value.clone()));
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A burst shares computations; a request never gets a value computed
    /// before it arrived.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_shares_one_computation_that_started_after_it() {
        let coalesced = Arc::new(Coalesced::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let compute = {
            let runs = runs.clone();
            move || {
                let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
                Bytes::from(n.to_string())
            }
        };
        let first = coalesced
            .get(Instant::now(), compute.clone())
            .await
            .expect("computed");
        assert_eq!(&first[..], b"1");
        let arrived = Instant::now();
        let burst: Vec<_> = (0..50)
            .map(|_| {
                let coalesced = coalesced.clone();
                let compute = compute.clone();
                tokio::spawn(async move { coalesced.get(arrived, compute).await })
            })
            .collect();
        for request in burst {
            let value = request.await.expect("joined").expect("computed");
            assert_ne!(
                &value[..],
                b"1",
                "a value computed before the request arrived"
            );
        }
        // The first of the burst computes; the others arrived before that
        // computation started only if they queued behind it, so at most
        // one more runs.
        assert!(
            runs.load(Ordering::SeqCst) <= 3,
            "{} computations for a burst of 50",
            runs.load(Ordering::SeqCst)
        );
    }
}
