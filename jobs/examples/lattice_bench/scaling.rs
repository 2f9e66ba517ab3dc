//! `lattice_bench D N DENSITY 2 bfs-scaling ROUNDS [BOUNDARY] [SEED]`: the
//! second thread's speed-up on one machine, measured in short rounds in
//! this one process.
//!
//! The two virtual CPUs of a shared host change speed over seconds (one
//! slowed while the other is not, or both slowed while both are busy), so
//! each round takes, within about a tenth of a second, in an order that
//! rotates from round to round:
//! * `one_a`, `one_b`: the path on one thread pinned to CPU A, then B;
//! * `two`: the path on two threads;
//! * `pair_a`, `pair_b`: two independent one-thread paths at once, one
//!   pinned to each CPU: what the machine itself gives from its second CPU
//!   at that moment, whatever the engine does.
//!
//! Per round: `one` = the faster of `one_a` and `one_b`, and the speed-up
//! `one / two`. Over the rounds: the medians; the machine's capacity
//! `base / pair_a + base / pair_b`, `base` the median of `one` over all
//! rounds (the two CPUs' throughput at once over one CPU's alone: 2 when
//! both run at full speed together); the engine's share of the machine,
//! `1 / (two * (1 / pair_a + 1 / pair_b))` (the 2-thread run's throughput
//! over that of two independent one-thread runs at the same moment: 1 when
//! the engine uses both CPUs as fully as two separate jobs would; no
//! single-thread run enters it). Prints one line per round and a summary
//! line.

use std::sync::Barrier;
use std::time::Instant;

use catalytic_jobs::lattice::{Control, LatticeSpec, shortest_path};
use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

/// One round's times, in seconds.
struct Round {
    one_a: f64,
    one_b: f64,
    two: f64,
    pair: [f64; 2],
    /// Vertices the 2-thread run visited.
    visited: u64,
}

impl Round {
    fn one(&self) -> f64 {
        self.one_a.min(self.one_b)
    }

    fn speedup(&self) -> f64 {
        self.one() / self.two
    }

    /// The two CPUs' throughput at once over `base`'s (one CPU alone).
    fn machine(&self, base: f64) -> f64 {
        base / self.pair[0] + base / self.pair[1]
    }

    fn share(&self) -> f64 {
        1.0 / (self.two * (1.0 / self.pair[0] + 1.0 / self.pair[1]))
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// The CPUs this thread may run on.
fn allowed() -> Result<Vec<usize>, String> {
    let set = sched_getaffinity(Pid::from_raw(0)).map_err(|e| format!("sched_getaffinity: {e}"))?;
    Ok((0..CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .collect())
}

/// Restricts the calling thread to `cpus`.
fn pin(cpus: &[usize]) -> Result<(), String> {
    let mut set = CpuSet::new();
    for &c in cpus {
        set.set(c).map_err(|e| format!("cpu {c}: {e}"))?;
    }
    sched_setaffinity(Pid::from_raw(0), &set).map_err(|e| format!("sched_setaffinity: {e}"))
}

/// Runs the rounds and prints them; returns the summary line.
pub fn run(spec: &LatticeSpec, sweep: bool, rounds: usize) -> Result<String, String> {
    let cpus = allowed()?;
    let [a, b, ..] = cpus[..] else {
        return Err(format!("needs two CPUs, this process may use {cpus:?}"));
    };
    let d = spec.dimensions() as usize;
    let (start, end) = (vec![0u64; d], vec![spec.size() - 1; d]);
    let distance = std::cell::Cell::new(None);
    // One timed path; every run must find the same distance.
    let path = |threads: usize| -> Result<(f64, u64), String> {
        let ctl = Control::none().with_threads(threads).with_sweep(sweep);
        let t = Instant::now();
        let r = shortest_path(spec, &start, &end, usize::MAX, &ctl).map_err(|e| e.to_string())?;
        let secs = t.elapsed().as_secs_f64();
        match distance.replace(Some(r.distance)) {
            Some(before) if before != r.distance => Err(format!(
                "distance {:?} on {threads} thread(s) differs from {before:?}",
                r.distance
            )),
            _ => Ok((secs, r.visited)),
        }
    };
    let pinned = |cpu: usize| -> Result<f64, String> {
        pin(&[cpu])?;
        let secs = path(1);
        pin(&cpus)?;
        Ok(secs?.0)
    };
    let pair = || -> Result<[f64; 2], String> {
        let ready = Barrier::new(2);
        let run = |cpu: usize| -> Result<(f64, Option<u64>), String> {
            pin(&[cpu])?;
            ready.wait();
            let ctl = Control::none().with_threads(1).with_sweep(sweep);
            let t = Instant::now();
            let r =
                shortest_path(spec, &start, &end, usize::MAX, &ctl).map_err(|e| e.to_string())?;
            Ok((t.elapsed().as_secs_f64(), r.distance))
        };
        let (x, y) = std::thread::scope(|s| {
            let other = s.spawn(|| run(b));
            let mine = run(a);
            let other = other
                .join()
                .unwrap_or_else(|_| Err("pair thread panicked".into()));
            (mine, other)
        });
        pin(&cpus)?;
        let (x, y) = (x?, y?);
        if x.1 != y.1 || Some(x.1) != distance.get() {
            return Err(format!("pair distances {:?} and {:?} differ", x.1, y.1));
        }
        Ok([x.0, y.0])
    };
    let mut out = Vec::with_capacity(rounds);
    // Round 0 is a warm-up (first allocations, the thread pool), not kept.
    for r in 0..=rounds {
        let mut round = Round {
            one_a: 0.0,
            one_b: 0.0,
            two: 0.0,
            pair: [0.0; 2],
            visited: 0,
        };
        for k in 0..4 {
            match (k + r) % 4 {
                0 => round.one_a = pinned(a)?,
                1 => round.one_b = pinned(b)?,
                2 => (round.two, round.visited) = path(2)?,
                _ => round.pair = pair()?,
            }
        }
        if r == 0 {
            continue;
        }
        println!(
            "round={r} one_a_s={:.6} one_b_s={:.6} two_s={:.6} pair_a_s={:.6} pair_b_s={:.6} speedup={:.3} share={:.3}",
            round.one_a,
            round.one_b,
            round.two,
            round.pair[0],
            round.pair[1],
            round.speedup(),
            round.share()
        );
        out.push(round);
    }
    let med = |f: &dyn Fn(&Round) -> f64| median(out.iter().map(f).collect());
    let base = med(&Round::one);
    Ok(format!(
        "cpus={a},{b} rounds={rounds} distance={} one_a_s={:.6} one_b_s={:.6} one_s={base:.6} two_s={:.6} ns_per_visited={:.3} speedup={:.3} pair_a_s={:.6} pair_b_s={:.6} machine={:.3} share={:.3}",
        distance
            .get()
            .flatten()
            .map_or("none".into(), |d| d.to_string()),
        med(&|r| r.one_a),
        med(&|r| r.one_b),
        med(&|r| r.two),
        med(&|r| r.two * 1e9 / r.visited as f64),
        med(&Round::speedup),
        med(&|r| r.pair[0]),
        med(&|r| r.pair[1]),
        med(&|r| r.machine(base)),
        med(&Round::share),
    ))
}
