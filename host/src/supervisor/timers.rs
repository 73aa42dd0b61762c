//! A service's pending timers, kept by its own task: one `sleep` for the
//! earliest, instead of a spawned task and a channel message per timer (at
//! 1,000 services with 1 s checks, a thousand of each every second).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use tokio::time::Instant;

use super::service::Timer;

/// Timers of one service, earliest first; ties fire in the order set.
#[derive(Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<Pending>>,
    set: u64,
}

struct Pending {
    at: Instant,
    order: u64,
    timer: Timer,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

impl Timers {
    /// Fire `timer` at `at`. A timer of a past child life is not removed:
    /// the reducer ignores it by its epoch when it fires.
    pub fn add(&mut self, at: Instant, timer: Timer) {
        self.set += 1;
        self.heap.push(Reverse(Pending {
            at,
            order: self.set,
            timer,
        }));
    }

    /// Waits for the earliest timer and removes it; never returns when
    /// none is set. Cancel-safe (for `select!`): a timer is removed only
    /// in the same poll that returns it.
    pub async fn next(&mut self) -> Timer {
        loop {
            let Some(Reverse(earliest)) = self.heap.peek() else {
                return std::future::pending().await;
            };
            tokio::time::sleep_until(earliest.at).await;
            if let Some(Reverse(due)) = self.heap.pop() {
                return due.timer;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::supervisor::service::TimerKind;

    fn timer(epoch: u64) -> Timer {
        Timer {
            kind: TimerKind::Backoff,
            epoch,
        }
    }

    #[tokio::test]
    async fn timers_fire_earliest_first_and_ties_in_the_order_set() {
        let mut timers = Timers::default();
        let now = Instant::now();
        let ms = Duration::from_millis;
        timers.add(now + ms(30), timer(3));
        timers.add(now + ms(10), timer(1));
        timers.add(now + ms(30), timer(4));
        timers.add(now + ms(20), timer(2));
        for epoch in 1..=4 {
            assert_eq!(timers.next().await, timer(epoch));
        }
        assert!(Instant::now() >= now + ms(30));
        // None left: `next` never returns.
        let waited = tokio::time::timeout(ms(50), timers.next()).await;
        assert!(waited.is_err());
    }

    #[tokio::test]
    async fn a_cancelled_wait_loses_no_timer() {
        let mut timers = Timers::default();
        let now = Instant::now();
        timers.add(now + Duration::from_millis(100), timer(7));
        // The wait is dropped before the timer is due, as `select!` does
        // when a message wins.
        let early = tokio::time::timeout_at(now + Duration::from_millis(20), timers.next()).await;
        assert!(early.is_err());
        assert_eq!(timers.next().await, timer(7));
    }
}
