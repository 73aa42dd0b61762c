//! When timers fire: a service's pending timers, their jitter and grids.
//!
//! The timers are kept by the service's own task: one `sleep` for the
//! earliest, instead of a spawned task and a channel message per timer (at
//! 1,000 services with 1 s checks, a thousand of each every second).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

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

/// When a timer set at `now` for `after` fires, or `None` for at once (a
/// zero delay). `spread`: a random part of it is added (the first check
/// of a service, spread over its period); `jitter`: `after` may move by
/// ±10 % (periodic checks); `check`: the deadline goes to the next point
/// of the check grid.
pub(super) fn deadline(
    now: Instant,
    after: Duration,
    spread: Duration,
    jitter: bool,
    check: bool,
) -> Option<Instant> {
    let grid = if check {
        check_grid(after.max(spread))
    } else {
        Duration::ZERO
    };
    let after = if jitter { self::jitter(after) } else { after } + random_below(spread);
    if after.is_zero() {
        return None;
    }
    // Saturating: a loader may ask for any delay up to u64::MAX ms, and
    // `Instant + Duration` panics past the clock's range.
    let at = now.checked_add(after).unwrap_or_else(|| far_future(now));
    Some(on_grid(at, grid))
}

/// A pseudo-random number for timer jitter (xorshift, seeded by the clock):
/// spreading timers needs no cryptographic quality.
fn random_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEED: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let mut x = SEED.load(Ordering::Relaxed) ^ u64::from(now.subsec_nanos());
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    SEED.store(x, Ordering::Relaxed);
    x
}

/// A uniformly random duration in `[0, range)`.
pub(super) fn random_below(range: Duration) -> Duration {
    match u64::try_from(range.as_nanos()) {
        Ok(0) => Duration::ZERO,
        Ok(nanos) => Duration::from_nanos(random_u64() % nanos),
        Err(_) => Duration::ZERO,
    }
}

/// A little jitter for periodic checks (±10 %), so that 1,000 services
/// with the same period do not all fire in the same millisecond.
pub(super) fn jitter(after: Duration) -> Duration {
    let spread = after / 10;
    (after + random_below(2 * spread)).saturating_sub(spread)
}

/// Check timers fire on grids shared by every service, a tenth of the
/// check's period (at most 100 ms, the same order as its jitter): the checks
/// of a thousand services that fall due in the same cell wake the runtime
/// once, not once each. A wake-up (epoll, futex, a parked worker) costs more
/// than a builtin check's call; at 1,000 × 1 s checks the grid takes
/// Vigil's CPU from 24 % to about 10 % of a core.
const CHECK_GRIDS: [Duration; 6] = [
    Duration::from_millis(100),
    Duration::from_millis(50),
    Duration::from_millis(25),
    Duration::from_millis(10),
    Duration::from_millis(5),
    Duration::from_millis(1),
];

/// The grid for a check that repeats every `period` (zero: none).
pub(super) fn check_grid(period: Duration) -> Duration {
    let tenth = period / 10;
    CHECK_GRIDS
        .into_iter()
        .find(|grid| *grid <= tenth)
        .unwrap_or(Duration::ZERO)
}

/// A deadline no timer reaches in practice (about 30 years from `now`),
/// for a delay past the clock's range.
pub(super) fn far_future(now: Instant) -> Instant {
    now + Duration::from_secs(30 * 365 * 24 * 3600)
}

/// `deadline`, rounded up to the next point of `grid` (counted from the
/// first use, so that every service shares the points).
pub(super) fn on_grid(deadline: Instant, grid: Duration) -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    let grid = grid.as_nanos();
    if grid == 0 {
        return deadline;
    }
    let since = deadline.saturating_duration_since(origin).as_nanos();
    let rounded = u64::try_from(since.div_ceil(grid) * grid).unwrap_or(u64::MAX);
    origin + Duration::from_nanos(rounded)
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn timer_spread_stays_in_range_and_varies() {
        let period = Duration::from_millis(100);
        let phases: Vec<Duration> = (0..1000).map(|_| random_below(period)).collect();
        assert!(phases.iter().all(|p| *p < period));
        // Spread over the period, not bunched: both halves are well used.
        let early = phases.iter().filter(|p| **p < period / 2).count();
        assert!(
            (300..=700).contains(&early),
            "{early} of 1000 in the first half"
        );
        for _ in 0..1000 {
            let j = jitter(Duration::from_secs(1));
            assert!(j >= Duration::from_millis(900) && j < Duration::from_millis(1100));
        }
        assert_eq!(random_below(Duration::ZERO), Duration::ZERO);
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn check_timers_share_grid_points_a_tenth_of_their_period() {
        let ms = Duration::from_millis;
        assert_eq!(check_grid(Duration::from_secs(10)), ms(100));
        assert_eq!(check_grid(Duration::from_secs(1)), ms(100));
        assert_eq!(check_grid(ms(300)), ms(25));
        assert_eq!(check_grid(ms(50)), ms(5));
        assert_eq!(check_grid(ms(5)), Duration::ZERO);

        let now = Instant::now();
        let grid = ms(100);
        for offset in [0, 1, 37, 99, 100, 101, 250] {
            let deadline = now + ms(offset);
            let point = on_grid(deadline, grid);
            assert!(point >= deadline && point < deadline + grid, "{offset} ms");
        }
        // Deadlines in one cell meet at one point; the next cell is one grid on.
        let a = on_grid(now + ms(1000), grid);
        let cell: Vec<_> = (0..100)
            .map(|i| on_grid(a - grid + ms(1) + ms(i) / 2, grid))
            .collect();
        assert!(cell.iter().all(|p| *p == a));
        assert_eq!(on_grid(a + ms(1), grid), a + grid);
        assert_eq!(on_grid(now, Duration::ZERO), now);
    }

    #[test]
    fn deadlines_are_now_late_enough_and_never_past_the_clock() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(
            deadline(now, Duration::ZERO, Duration::ZERO, true, true),
            None
        );
        // A backoff fires after its delay, off the grid, without jitter.
        assert_eq!(
            deadline(now, ms(1500), Duration::ZERO, false, false),
            Some(now + ms(1500))
        );
        // A periodic check: at most 10 % early, on the grid after that.
        for _ in 0..100 {
            let at = deadline(now, ms(1000), Duration::ZERO, true, true).expect("later");
            assert!(at >= now + ms(900) && at < now + ms(1100) + ms(100));
        }
        // A first check spread over the period: never before its delay.
        for _ in 0..100 {
            let at = deadline(now, ms(200), ms(1000), false, true).expect("later");
            assert!(at >= now + ms(200) && at < now + ms(1200) + ms(100));
        }
        // The longest delay a loader may ask for does not panic.
        let far = deadline(now, ms(u64::MAX), Duration::ZERO, false, false).expect("later");
        assert!(far >= now + Duration::from_secs(29 * 365 * 24 * 3600));
    }
}
