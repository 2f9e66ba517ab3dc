//! Benchmark of the lattice engine (run in release mode).
//!
//! ```text
//! lattice_bench D N DENSITY THREADS OP [REPEAT] [BOUNDARY] [SEED]
//!   OP       path | components | both | stats | xor | bfs-path | bfs-both
//!            | scaling | bfs-scaling
//!            (bfs-*: the path by bidirectional BFS even when the monotone
//!            sweep would answer; scaling: the path's speed-up from a
//!            second thread, see `scaling.rs`, THREADS ignored)
//!   REPEAT   runs of each operation; the fastest is reported (default 1);
//!            for scaling, the rounds (default 1)
//!   BOUNDARY open | periodic (default open)
//!   SEED     obstacle seed (default 42)
//! ```
//!
//! Paths go from the corner `(0, ..., 0)` to the opposite corner
//! `(N-1, ..., N-1)`. Prints one line of `key=value` pairs: times in
//! seconds, `peak_rss_kb` from `/proc/self/status` (VmHWM at the end),
//! `baseline_rss_kb` (VmHWM just before the work starts: the process's own
//! fixed footprint, binary and allocator) and `work_peak_kb` (the
//! difference: the peak memory of the work itself).

mod scaling;

use std::process::ExitCode;
use std::time::Instant;

use catalytic_jobs::lattice::{
    Boundary, Control, LatticeSpec, PathMethod, connected_components, shortest_path, statistics,
    xor_transform,
};

fn usage() -> ExitCode {
    eprintln!(
        "usage: lattice_bench D N DENSITY THREADS path|components|both|stats|xor|scaling|bfs-path|bfs-both|bfs-scaling [REPEAT] [open|periodic] [SEED]"
    );
    ExitCode::from(2)
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs `f` `repeat` times, returning the fastest time and the last result.
fn best<T>(repeat: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(r);
    }
    (best, out.expect("at least one run"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        return usage();
    }
    let (Ok(d), Ok(n), Ok(density), Ok(threads)) = (
        args[0].parse::<u32>(),
        args[1].parse::<u64>(),
        args[2].parse::<f64>(),
        args[3].parse::<usize>(),
    ) else {
        return usage();
    };
    let (op, sweep) = match args[4].strip_prefix("bfs-") {
        Some(op) => (op, false),
        None => (args[4].as_str(), true),
    };
    let repeat = args.get(5).and_then(|r| r.parse().ok()).unwrap_or(1usize);
    let boundary = match args.get(6).map(String::as_str) {
        None | Some("open") => Boundary::Open,
        Some("periodic") => Boundary::Periodic,
        Some(_) => return usage(),
    };
    let seed = args.get(7).and_then(|s| s.parse().ok()).unwrap_or(42u64);

    let baseline_kb = peak_rss_kb();
    let t_build = Instant::now();
    let spec = match LatticeSpec::new(d, n, density, seed, boundary) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("invalid lattice: {e}");
            return ExitCode::from(2);
        }
    };
    let build_s = t_build.elapsed().as_secs_f64();
    if op == "scaling" {
        return match scaling::run(&spec, sweep, repeat) {
            Ok(summary) => {
                println!(
                    "op={} d={d} n={n} density={density} seed={seed} {summary}",
                    args[4]
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("scaling failed: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let ctl = Control::none().with_threads(threads).with_sweep(sweep);
    let start = vec![0u64; d as usize];
    let end = vec![n - 1; d as usize];

    let mut out = vec![
        format!("op={}", args[4]),
        format!("d={d}"),
        format!("n={n}"),
        format!("density={density}"),
        format!("threads={threads}"),
        format!(
            "boundary={}",
            if boundary == Boundary::Open {
                "open"
            } else {
                "periodic"
            }
        ),
        format!("seed={seed}"),
        format!("vertices={}", spec.vertices()),
        format!("build_s={build_s:.6}"),
    ];
    let mut total = build_s;

    if matches!(op, "path" | "both") {
        let (secs, r) = best(repeat, || {
            shortest_path(&spec, &start, &end, usize::MAX, &ctl)
        });
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                eprintln!("path failed: {e}");
                return ExitCode::FAILURE;
            }
        };
        total += secs;
        let method = match r.method {
            PathMethod::ClosedForm => "closed_form",
            PathMethod::MonotoneSweep => "monotone_sweep",
            PathMethod::BidirectionalBfs => "bidirectional_bfs",
        };
        out.push(format!("path_s={secs:.6}"));
        out.push(format!("method={method}"));
        out.push(format!("reachable={}", r.reachable));
        out.push(format!(
            "distance={}",
            r.distance.map_or("none".to_string(), |d| d.to_string())
        ));
        out.push(format!("visited={}", r.visited));
        if r.visited > 0 {
            out.push(format!(
                "ns_per_visited={:.3}",
                secs * 1e9 / r.visited as f64
            ));
        }
    }
    if matches!(op, "components" | "both") {
        let (secs, r) = best(repeat, || connected_components(&spec, &ctl));
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                eprintln!("components failed: {e}");
                return ExitCode::FAILURE;
            }
        };
        total += secs;
        out.push(format!("components_s={secs:.6}"));
        out.push(format!("components={}", r.count));
        out.push(format!("largest={}", r.largest));
        out.push(format!("open_vertices={}", r.open_vertices));
    }
    if op == "stats" {
        let (secs, r) = best(repeat, || statistics(&spec, &ctl));
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                eprintln!("statistics failed: {e}");
                return ExitCode::FAILURE;
            }
        };
        total += secs;
        out.push(format!("stats_s={secs:.6}"));
        out.push(format!("open_edges={}", r.open_edges));
        out.push(format!(
            "diameter={}",
            r.diameter.map_or("none".to_string(), |d| d.to_string())
        ));
    }
    if op == "xor" {
        let (secs, r) = best(repeat, || xor_transform(&spec, b"catalytic", 8, &ctl));
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                eprintln!("xor failed: {e}");
                return ExitCode::FAILURE;
            }
        };
        total += secs;
        out.push(format!("xor_s={secs:.6}"));
        out.push(format!("restored={}", r.restored));
    }
    if !matches!(op, "path" | "components" | "both" | "stats" | "xor") {
        return usage();
    }
    out.push(format!("total_s={total:.6}"));
    out.push(format!("memory_bytes={}", spec.memory_bytes()));
    out.push(format!(
        "explicit_memory_bytes={}",
        spec.explicit_memory_bytes()
    ));
    let peak_kb = peak_rss_kb();
    out.push(format!("baseline_rss_kb={baseline_kb}"));
    out.push(format!("peak_rss_kb={peak_kb}"));
    out.push(format!(
        "work_peak_kb={}",
        peak_kb.saturating_sub(baseline_kb)
    ));
    println!("{}", out.join(" "));
    ExitCode::SUCCESS
}
