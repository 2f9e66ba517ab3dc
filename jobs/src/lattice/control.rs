//! Progress reporting, cancellation and the thread budget of an operation.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use super::error::LatticeError;

fn no_progress(_: u8) {}

fn never_cancelled() -> bool {
    false
}

/// What an operation may call back into, shared by reference with its worker
/// threads (hence the `Sync` bounds). Both callbacks are called at most a few
/// hundred times per operation (progress only when the percentage rises,
/// cancellation between chunks of work), so they may take a lock or read an
/// atomic.
#[derive(Clone, Copy)]
pub struct Control<'a> {
    /// Called with a percentage `0..=100`, never decreasing within one
    /// operation; `100` is reported exactly when the operation succeeds.
    pub progress: &'a (dyn Fn(u8) + Sync),
    /// Polled between chunks of work; when it returns `true` the operation
    /// stops and returns [`LatticeError::Cancelled`].
    pub is_cancelled: &'a (dyn Fn() -> bool + Sync),
    /// Worker threads for lattices of at least
    /// [`PARALLEL_MIN_VERTICES`](super::PARALLEL_MIN_VERTICES) vertices
    /// (smaller ones always run on the calling thread). At least 1.
    pub threads: usize,
    /// Try the monotone sweep before a BFS on shortest paths (default
    /// `true`; benchmarks and tests turn it off to measure the BFS itself).
    pub sweep: bool,
}

impl std::fmt::Debug for Control<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl Control<'static> {
    /// No progress reporting, never cancelled, default threads.
    pub fn none() -> Self {
        Control {
            progress: &no_progress,
            is_cancelled: &never_cancelled,
            threads: default_threads(),
            sweep: true,
        }
    }
}

impl<'a> Control<'a> {
    /// Callbacks with the default thread count.
    pub fn new(
        progress: &'a (dyn Fn(u8) + Sync),
        is_cancelled: &'a (dyn Fn() -> bool + Sync),
    ) -> Self {
        Control {
            progress,
            is_cancelled,
            threads: default_threads(),
            sweep: true,
        }
    }

    /// Same callbacks, `threads` worker threads (clamped to at least 1).
    pub fn with_threads(self, threads: usize) -> Self {
        Control {
            threads: threads.max(1),
            ..self
        }
    }

    /// Same callbacks, with or without the monotone sweep on paths.
    pub fn with_sweep(self, sweep: bool) -> Self {
        Control { sweep, ..self }
    }

    pub(crate) fn cancelled(&self) -> bool {
        (self.is_cancelled)()
    }
}

/// `available_parallelism()` capped at 2 (the service's machines have two
/// cores shared with everything else).
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 2)
}

/// Turns fractions of work into monotone percentages and calls
/// `Control::progress` only when the percentage rises. Safe to call from
/// several threads: calls are serialised and never go backwards.
pub(crate) struct Reporter<'a> {
    ctl: &'a Control<'a>,
    last: AtomicU8,
    lock: Mutex<()>,
}

impl<'a> Reporter<'a> {
    /// Reports 0.
    pub(crate) fn start(ctl: &'a Control<'a>) -> Self {
        (ctl.progress)(0);
        Reporter {
            ctl,
            last: AtomicU8::new(0),
            lock: Mutex::new(()),
        }
    }

    pub(crate) fn ctl(&self) -> &'a Control<'a> {
        self.ctl
    }

    /// Reports `pct` (clamped to 100) if it is above everything reported so
    /// far.
    pub(crate) fn report(&self, pct: u8) {
        let pct = pct.min(100);
        if pct <= self.last.load(Ordering::Relaxed) {
            return;
        }
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if pct > self.last.load(Ordering::Relaxed) {
            self.last.store(pct, Ordering::Relaxed);
            (self.ctl.progress)(pct);
        }
    }

    /// Reports `base + span * done / total` (a phase of the operation),
    /// capped at `min(base + span, 99)`: 100 is for [`finish`](Self::finish).
    pub(crate) fn phase(&self, base: u8, span: u8, done: u64, total: u64) {
        let total = total.max(1);
        let frac = (u128::from(done.min(total)) * u128::from(span)) / u128::from(total);
        let pct = (u128::from(base) + frac).min(99) as u8;
        self.report(pct);
    }

    /// Reports 100.
    pub(crate) fn finish(&self) {
        self.report(100);
    }

    /// `Err(Cancelled)` when the caller cancelled.
    pub(crate) fn check(&self) -> Result<(), LatticeError> {
        if self.ctl.cancelled() {
            Err(LatticeError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// A sticky "stop" flag shared by the threads of one operation, set when any
/// of them sees a cancellation.
#[derive(Default)]
pub(crate) struct StopFlag(AtomicBool);

impl StopFlag {
    /// Polls the flag and, if it is not set yet, the caller's callback.
    /// Returns true when the operation must stop.
    pub(crate) fn poll(&self, ctl: &Control<'_>) -> bool {
        if self.0.load(Ordering::Relaxed) {
            return true;
        }
        if ctl.cancelled() {
            self.0.store(true, Ordering::Relaxed);
            return true;
        }
        false
    }

    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn result(&self) -> Result<(), LatticeError> {
        if self.is_set() {
            Err(LatticeError::Cancelled)
        } else {
            Ok(())
        }
    }
}
