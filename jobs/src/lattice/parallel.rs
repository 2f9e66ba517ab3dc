//! Small threading helpers: a team of scoped threads, a spinning barrier and
//! range splitting.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::control::Control;

/// Lattices with at least this many vertices use `Control::threads` threads;
/// smaller ones run on the calling thread (spawning would cost more than it
/// saves).
pub const PARALLEL_MIN_VERTICES: u64 = 1_000_000;

/// Threads an operation on `vertices` vertices uses.
pub(crate) fn threads_for(ctl: &Control<'_>, vertices: u64) -> usize {
    if vertices < PARALLEL_MIN_VERTICES {
        1
    } else {
        ctl.threads.max(1)
    }
}

/// `[total * part / parts, total * (part + 1) / parts)`.
pub(crate) fn split(total: u64, parts: usize, part: usize) -> (u64, u64) {
    let t = u128::from(total);
    let p = parts as u128;
    let i = part as u128;
    ((t * i / p) as u64, (t * (i + 1) / p) as u64)
}

/// Runs `f(0..threads)` with `f(0)` on the calling thread and the others on
/// crossbeam scoped threads; returns the results in thread order. A panic in
/// any thread is propagated.
pub(crate) fn team<R, F>(threads: usize, f: F) -> Vec<R>
where
    R: Send,
    F: Fn(usize) -> R + Sync,
{
    if threads <= 1 {
        return vec![f(0)];
    }
    let f = &f;
    let result = crossbeam::thread::scope(|s| {
        let handles: Vec<_> = (1..threads).map(|t| s.spawn(move |_| f(t))).collect();
        let mut out = Vec::with_capacity(threads);
        out.push(f(0));
        for h in handles {
            match h.join() {
                Ok(r) => out.push(r),
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        out
    });
    match result {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// A barrier for a fixed team: spins briefly, then polls while yielding
/// the core for up to 2 ms (a balanced BFS step leaves the threads tens of
/// microseconds apart; waking a sleeping thread costs about as much, twice
/// per step; yielding lets a partner that shares the core run), then sleeps
/// on a condition variable (workers may wait a long time while the leader
/// runs small levels alone). [`release`](Self::release) opens it for good
/// (used when a thread panics, so nobody waits forever).
pub(crate) struct SpinBarrier {
    parties: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    released: AtomicBool,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

const SPINS: u32 = 1000;
/// How long a waiter keeps polling (yielding the core between polls) before
/// it sleeps.
const POLL_BEFORE_SLEEP: Duration = Duration::from_millis(2);

impl SpinBarrier {
    pub(crate) fn new(parties: usize) -> Self {
        SpinBarrier {
            parties: parties.max(1),
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            released: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    fn passed(&self, generation: usize) -> bool {
        self.generation.load(Ordering::SeqCst) != generation || self.released.load(Ordering::SeqCst)
    }

    pub(crate) fn wait(&self) {
        if self.parties == 1 {
            return;
        }
        let generation = self.generation.load(Ordering::SeqCst);
        if self.arrived.fetch_add(1, Ordering::SeqCst) + 1 == self.parties {
            self.arrived.store(0, Ordering::SeqCst);
            self.generation.fetch_add(1, Ordering::SeqCst);
            if self.sleepers.load(Ordering::SeqCst) > 0 {
                let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
                self.wake.notify_all();
            }
            return;
        }
        for _ in 0..SPINS {
            if self.passed(generation) {
                return;
            }
            std::hint::spin_loop();
        }
        let polling = Instant::now();
        while polling.elapsed() < POLL_BEFORE_SLEEP {
            if self.passed(generation) {
                return;
            }
            std::thread::yield_now();
        }
        let mut guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        while !self.passed(generation) {
            guard = self
                .wake
                .wait_timeout(guard, Duration::from_millis(1))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Opens the barrier permanently.
    pub(crate) fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.wake.notify_all();
    }

    pub(crate) fn is_released(&self) -> bool {
        self.released.load(Ordering::SeqCst)
    }
}

/// Releases the barrier if the owning thread unwinds.
pub(crate) struct ReleaseOnPanic<'a>(pub(crate) &'a SpinBarrier);

impl Drop for ReleaseOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn split_covers() {
        for total in [0u64, 1, 7, 1000] {
            for parts in 1..5 {
                let mut next = 0;
                for p in 0..parts {
                    let (a, b) = split(total, parts, p);
                    assert_eq!(a, next);
                    next = b;
                }
                assert_eq!(next, total);
            }
        }
    }

    #[test]
    fn team_and_barrier() {
        let b = SpinBarrier::new(3);
        let counter = AtomicU64::new(0);
        let out = team(3, |t| {
            for round in 0..50u64 {
                counter.fetch_add(1, Ordering::Relaxed);
                b.wait();
                assert!(counter.load(Ordering::Relaxed) >= (round + 1) * 3);
                b.wait();
            }
            t * 10
        });
        assert_eq!(out, vec![0, 10, 20]);
        assert_eq!(counter.load(Ordering::Relaxed), 150);
    }
}
