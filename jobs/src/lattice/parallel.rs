//! Small threading helpers: a team of scoped threads, a published counter to
//! wait on, and range splitting.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::sched::{CpuSet, sched_getaffinity, sched_getcpu, sched_setaffinity};
use nix::unistd::Pid;

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
/// crossbeam scoped threads, each pinned to its own CPU ([`Pinning`]);
/// returns the results in thread order. A panic in any thread is
/// propagated.
pub(crate) fn team<R, F>(threads: usize, f: F) -> Vec<R>
where
    R: Send,
    F: Fn(usize) -> R + Sync,
{
    if threads <= 1 {
        return vec![f(0)];
    }
    let f = &f;
    let pin = Pinning::plan(threads);
    let pin = &pin;
    let result = crossbeam::thread::scope(|s| {
        let handles: Vec<_> = (1..threads)
            .map(|t| {
                s.spawn(move |_| {
                    pin.apply(t);
                    f(t)
                })
            })
            .collect();
        let mut out = Vec::with_capacity(threads);
        pin.apply(0);
        let restore = Restore(pin);
        out.push(f(0));
        drop(restore);
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

/// One CPU per thread of a team, for the team's lifetime. The service's
/// machines are virtual machines whose kernel packs runnable threads onto
/// as few virtual CPUs as it can: a freshly spawned worker was measured to
/// wait 1-3 ms to start, and at times to share the leader's CPU for most
/// of a search while the other CPU idled. Pinning the team to distinct
/// CPUs (the leader to the one it is on) avoids that; the leader's own
/// affinity is restored when the team is done. Nothing is pinned when the
/// process may use fewer CPUs than the team has threads.
struct Pinning {
    cpus: Vec<usize>,
    saved: Option<CpuSet>,
}

impl Pinning {
    fn plan(threads: usize) -> Self {
        let none = Pinning {
            cpus: Vec::new(),
            saved: None,
        };
        let (Ok(mask), Ok(here)) = (sched_getaffinity(Pid::from_raw(0)), sched_getcpu()) else {
            return none;
        };
        let mut cpus = vec![here];
        cpus.extend((0..CpuSet::count()).filter(|&c| c != here && mask.is_set(c).unwrap_or(false)));
        if cpus.len() < threads {
            return none;
        }
        Pinning {
            cpus,
            saved: Some(mask),
        }
    }

    /// Pins the calling thread, team member `t`. Failure is harmless (the
    /// thread runs wherever the kernel puts it).
    fn apply(&self, t: usize) {
        if self.saved.is_none() {
            return;
        }
        let mut one = CpuSet::new();
        if let Some(&cpu) = self.cpus.get(t)
            && one.set(cpu).is_ok()
        {
            let _ = sched_setaffinity(Pid::from_raw(0), &one);
        }
    }
}

/// Gives the leader its affinity back when dropped (also on a panic).
struct Restore<'a>(&'a Pinning);

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        if let Some(mask) = &self.0.saved {
            let _ = sched_setaffinity(Pid::from_raw(0), mask);
        }
    }
}

/// A published counter that other threads wait on: [`wait_past`]
/// (Self::wait_past) spins briefly, then polls while yielding the core for
/// up to 2 ms, then sleeps on a condition variable; [`publish`]
/// (Self::publish) wakes sleepers. Used so the BFS leader never waits for a
/// worker to *arrive* anywhere (a worker descheduled on a busy machine only
/// delays work it has already taken).
pub(crate) struct Signal {
    value: AtomicU64,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

/// How long a waiter spins (no system call) before it starts yielding:
/// longer than the gap between two BFS steps, so a worker picks up the
/// next step within a fraction of a microsecond. (A fixed 1000 spins, about
/// 25 us, was measured to leave the worker yielding, one system call per
/// poll, in many gaps: about 10 us of latency per step.)
const SPIN_FOR: Duration = Duration::from_micros(500);
/// How long a waiter keeps polling (yielding the core between polls) before
/// it sleeps.
const POLL_BEFORE_SLEEP: Duration = Duration::from_millis(2);

impl Signal {
    pub(crate) fn new() -> Self {
        Signal {
            value: AtomicU64::new(0),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    pub(crate) fn get(&self) -> u64 {
        self.value.load(Ordering::SeqCst)
    }

    /// Stores `value` (release) and wakes sleeping waiters.
    pub(crate) fn publish(&self, value: u64) {
        self.value.store(value, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
            self.wake.notify_all();
        }
    }

    /// Waits until the value differs from `seen` or `give_up()` holds;
    /// returns the value.
    pub(crate) fn wait_past(&self, seen: u64, give_up: impl Fn() -> bool) -> u64 {
        wait_until(
            || self.get() != seen || give_up(),
            || self.sleep_while(seen, &give_up),
        );
        self.get()
    }

    fn sleep_while(&self, seen: u64, give_up: &impl Fn() -> bool) {
        let mut guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        while self.get() == seen && !give_up() {
            guard = self
                .wake
                .wait_timeout(guard, Duration::from_millis(1))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Spins for `limit` at most; true when `done()` came to hold.
fn spin(done: &impl Fn() -> bool, limit: Duration) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if done() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= limit {
            return false;
        }
    }
}

/// Spins for [`SPIN_FOR`], then polls while yielding for up to 2 ms, then
/// calls `sleep` (which must return once `done()` holds, or soon after).
pub(crate) fn wait_until(done: impl Fn() -> bool, sleep: impl FnOnce()) {
    if spin(&done, SPIN_FOR) {
        return;
    }
    let polling = Instant::now();
    while polling.elapsed() < POLL_BEFORE_SLEEP {
        if done() {
            return;
        }
        std::thread::yield_now();
    }
    if !done() {
        sleep();
    }
}

/// Waits (spin for [`SPIN_FOR`], then yield) until `done()` holds; for
/// waits on work that a running thread has already taken.
pub(crate) fn wait_busy(done: impl Fn() -> bool) {
    if spin(&done, SPIN_FOR) {
        return;
    }
    while !done() {
        std::thread::yield_now();
    }
}

/// Sets the flag if the owning thread unwinds.
pub(crate) struct FlagOnPanic<'a>(pub(crate) &'a AtomicBool);

impl Drop for FlagOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
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

    /// Team threads run on distinct CPUs while the team lasts (when the
    /// process may use enough of them), and the caller gets its affinity
    /// back afterwards, also when it panicked.
    #[test]
    fn team_pins_and_restores() {
        let me = || sched_getaffinity(Pid::from_raw(0)).unwrap();
        let allowed = |m: &CpuSet| {
            (0..CpuSet::count())
                .filter(|&c| m.is_set(c).unwrap())
                .collect::<Vec<_>>()
        };
        let before = allowed(&me());
        let inside = team(2, |_| allowed(&me()));
        if before.len() >= 2 {
            assert_eq!(inside[0].len(), 1, "{inside:?}");
            assert_eq!(inside[1].len(), 1, "{inside:?}");
            assert_ne!(inside[0], inside[1]);
        } else {
            assert_eq!(inside[0], before);
        }
        assert_eq!(allowed(&me()), before);
        let panicked = std::panic::catch_unwind(|| {
            team(2, |t| {
                assert_ne!(t, 0, "leader fails");
            })
        });
        assert!(panicked.is_err());
        assert_eq!(allowed(&me()), before);
    }

    #[test]
    fn team_and_signal() {
        let signal = Signal::new();
        let acks = AtomicU64::new(0);
        let out = team(3, |t| {
            if t == 0 {
                for round in 1..=50u64 {
                    signal.publish(round);
                    wait_busy(|| acks.load(Ordering::SeqCst) >= round * 2);
                }
                // Let the workers sleep, then wake them.
                std::thread::sleep(Duration::from_millis(5));
                signal.publish(u64::MAX);
            } else {
                let mut seen = 0;
                loop {
                    seen = signal.wait_past(seen, || false);
                    if seen == u64::MAX {
                        break;
                    }
                    acks.fetch_add(1, Ordering::SeqCst);
                }
            }
            t * 10
        });
        assert_eq!(out, vec![0, 10, 20]);
        assert_eq!(acks.load(Ordering::SeqCst), 100);
    }
}
