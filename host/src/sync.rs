//! Locks that carry on after a panic: `lock_unpoisoned()`, `read_unpoisoned()`
//! and `write_unpoisoned()` on the standard `Mutex` and `RwLock`.
//!
//! Recovering is right here because every lock in Vigil guards data that
//! stays valid between any two statements of the code holding it (tables
//! of children, caches, capped buffers, counters): a panic in one holder
//! leaves nothing half-written that a later holder could misread. The
//! alternative, propagating the poison, would turn one panicked check call
//! or reaper route into a supervisor that can no longer reap, spawn or
//! answer, which is the failure a supervisor exists to prevent.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// [`Mutex::lock`], taking the guard from a poisoned lock too (see the
/// module documentation for why that is sound in Vigil).
pub trait LockExt<T: ?Sized> {
    fn lock_unpoisoned(&self) -> MutexGuard<'_, T>;
}

impl<T: ?Sized> LockExt<T> for Mutex<T> {
    fn lock_unpoisoned(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// [`RwLock::read`] and [`RwLock::write`], taking the guard from a
/// poisoned lock too.
pub trait RwLockExt<T: ?Sized> {
    fn read_unpoisoned(&self) -> RwLockReadGuard<'_, T>;
    fn write_unpoisoned(&self) -> RwLockWriteGuard<'_, T>;
}

impl<T: ?Sized> RwLockExt<T> for RwLock<T> {
    fn read_unpoisoned(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_unpoisoned(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A holder that panics poisons the lock; the next holder still gets
    /// the data, as the panicking one left it.
    #[test]
    fn a_panicked_holder_does_not_lock_the_others_out() {
        let mutex = Mutex::new(vec![1]);
        let rw = RwLock::new(1);
        std::thread::scope(|s| {
            let _ = s
                .spawn(|| {
                    let mut held = mutex.lock_unpoisoned();
                    let mut written = rw.write_unpoisoned();
                    held.push(2);
                    *written = 2;
                    panic!("a holder panics");
                })
                .join();
        });
        assert!(mutex.is_poisoned() && rw.is_poisoned());
        mutex.lock_unpoisoned().push(3);
        assert_eq!(*mutex.lock_unpoisoned(), [1, 2, 3]);
        assert_eq!(*rw.read_unpoisoned(), 2);
        *rw.write_unpoisoned() = 3;
        assert_eq!(*rw.read_unpoisoned(), 3);
    }
}
