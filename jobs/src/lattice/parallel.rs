//! Small threading helpers: a team of threads (a persistent pinned pool), a
//! published counter to wait on, and range splitting.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
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

/// Runs `f(0..threads)` concurrently, one call per thread, and returns the
/// results in thread order; a panic in any call is propagated (after all
/// have finished).
///
/// The calls run on a process-wide pool of `threads` threads kept between
/// teams, each pinned to its own CPU ([`Pool`]); the caller waits. While
/// another team holds that pool (two operations at once), the calls run on
/// fresh scoped threads instead, so teams never queue behind each other.
pub(crate) fn team<R, F>(threads: usize, f: F) -> Vec<R>
where
    R: Send,
    F: Fn(usize) -> R + Sync,
{
    if threads <= 1 {
        return vec![f(0)];
    }
    if let Some(pool) = Pool::get(threads) {
        let held = match pool.busy.try_lock() {
            Ok(guard) => Some(guard),
            // A team panicked while holding it: the pool itself is fine.
            Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        if let Some(_held) = held {
            return pool.threads.broadcast(|ctx| f(ctx.index()));
        }
    }
    scoped(threads, &f)
}

/// [`team`] on fresh, unpinned scoped threads, `f(0)` on the caller.
fn scoped<R, F>(threads: usize, f: &F) -> Vec<R>
where
    R: Send,
    F: Fn(usize) -> R + Sync,
{
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

/// A team's threads, kept for the life of the process (one pool per team
/// size, created on first use), each pinned to its own CPU when the process
/// may use enough of them. The service's machines are virtual machines
/// whose kernel packs runnable threads onto as few virtual CPUs as it can:
/// a thread spawned while the caller computes was measured to start 2-4 ms
/// later, queued behind the caller on the caller's CPU, and one moved to
/// the other CPU by pinning itself 1-3 ms later; a parked thread already
/// pinned to the other CPU wakes in 30-100 us. The idle pool threads sleep
/// (no polling).
struct Pool {
    threads: rayon_core::ThreadPool,
    /// Held by the team running on the pool.
    busy: Mutex<()>,
}

impl Pool {
    /// The pool of `threads` threads, `None` if it cannot be created
    /// (threads cannot be spawned).
    fn get(threads: usize) -> Option<&'static Pool> {
        static POOLS: Mutex<Vec<(usize, &'static Pool)>> = Mutex::new(Vec::new());
        let mut pools = POOLS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&(_, pool)) = pools.iter().find(|(n, _)| *n == threads) {
            return Some(pool);
        }
        let cpus = allowed_cpus();
        let pin = cpus.len() >= threads;
        let pool = rayon_core::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|t| format!("lattice-team-{t}"))
            .start_handler(move |t| {
                if pin {
                    pin_to(cpus[t]);
                }
            })
            .build()
            .ok()?;
        // Leaked on purpose: the pool lives as long as the process.
        let pool: &'static Pool = Box::leak(Box::new(Pool {
            threads: pool,
            busy: Mutex::new(()),
        }));
        pools.push((threads, pool));
        Some(pool)
    }
}

/// The CPUs the process may run on (empty if unknown).
fn allowed_cpus() -> Vec<usize> {
    sched_getaffinity(Pid::from_raw(0))
        .map(|mask| {
            (0..CpuSet::count())
                .filter(|&c| mask.is_set(c).unwrap_or(false))
                .collect()
        })
        .unwrap_or_default()
}

/// Pins the calling thread to `cpu`. Failure is harmless (the thread runs
/// wherever the kernel puts it).
fn pin_to(cpu: usize) {
    let mut one = CpuSet::new();
    if one.set(cpu).is_ok() {
        let _ = sched_setaffinity(Pid::from_raw(0), &one);
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

    /// Team threads run on distinct CPUs (when the process may use enough
    /// of them), the caller's own affinity is left alone, and a panic in a
    /// team is propagated without breaking the pool for the next team.
    #[test]
    fn team_pins_and_survives_a_panic() {
        let me = || sched_getaffinity(Pid::from_raw(0)).unwrap();
        let cpus = |m: &CpuSet| {
            (0..CpuSet::count())
                .filter(|&c| m.is_set(c).unwrap())
                .collect::<Vec<_>>()
        };
        let before = cpus(&me());
        for _ in 0..2 {
            let inside = team(2, |_| cpus(&me()));
            if before.len() >= 2 {
                assert_eq!(inside[0].len(), 1, "{inside:?}");
                assert_eq!(inside[1].len(), 1, "{inside:?}");
                assert_ne!(inside[0], inside[1]);
            }
            assert_eq!(cpus(&me()), before);
            let panicked = std::panic::catch_unwind(|| {
                team(2, |t| {
                    assert_ne!(t, 0, "leader fails");
                })
            });
            assert!(panicked.is_err());
        }
        assert_eq!(team(2, |t| t + 1), vec![1, 2]);
    }

    /// Two teams at once (two operations on one machine) both run all
    /// their threads together: each team's threads meet at a barrier, which
    /// would hang if one team queued behind the other.
    #[test]
    fn concurrent_teams_run_side_by_side() {
        let run = || {
            let barrier = std::sync::Barrier::new(2);
            team(2, |t| {
                barrier.wait();
                t
            })
        };
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(run);
            let b = s.spawn(run);
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_eq!(a, vec![0, 1]);
        assert_eq!(b, vec![0, 1]);
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
