//! Cross-module tests against independent reference implementations
//! (plain `Vec<u32>` BFS and union-find over explicit coordinates).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::components::connected_components_in;
use super::*;

/// Tiny deterministic generator for test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        splitmix64(self.0 ^ 0x1234_5678)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Neighbours computed from coordinates, independently of the engine.
fn ref_neighbours(spec: &LatticeSpec, v: u64) -> Vec<u64> {
    let n = spec.size();
    let c = spec.index_to_coords(v).unwrap();
    let periodic = spec.boundary() == Boundary::Periodic;
    let mut out = Vec::new();
    for k in 0..c.len() {
        let mut targets = Vec::new();
        if c[k] > 0 {
            targets.push(c[k] - 1);
        } else if periodic {
            targets.push(n - 1);
        }
        if c[k] + 1 < n {
            targets.push(c[k] + 1);
        } else if periodic {
            targets.push(0);
        }
        targets.sort_unstable();
        targets.dedup();
        for t in targets {
            if t != c[k] {
                let mut cc = c.clone();
                cc[k] = t;
                out.push(spec.coords_to_index(&cc).unwrap());
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Plain BFS distances (u32::MAX = unreached).
fn ref_bfs(spec: &LatticeSpec, s: u64, e: u64) -> Vec<u32> {
    let open = |v: u64| v == s || v == e || !spec.is_blocked(v);
    let mut dist = vec![u32::MAX; spec.vertices() as usize];
    let mut q = VecDeque::new();
    dist[s as usize] = 0;
    q.push_back(s);
    while let Some(v) = q.pop_front() {
        for w in ref_neighbours(spec, v) {
            if open(w) && dist[w as usize] == u32::MAX {
                dist[w as usize] = dist[v as usize] + 1;
                q.push_back(w);
            }
        }
    }
    dist
}

fn ref_components(spec: &LatticeSpec) -> BTreeMap<u64, u64> {
    let v = spec.vertices() as usize;
    let mut parent: Vec<usize> = (0..v).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for a in 0..v as u64 {
        if spec.is_blocked(a) {
            continue;
        }
        for b in ref_neighbours(spec, a) {
            if !spec.is_blocked(b) {
                let (ra, rb) = (find(&mut parent, a as usize), find(&mut parent, b as usize));
                parent[ra] = rb;
            }
        }
    }
    let mut sizes: BTreeMap<usize, u64> = BTreeMap::new();
    for a in 0..v {
        if !spec.is_blocked(a as u64) {
            let r = find(&mut parent, a);
            *sizes.entry(r).or_insert(0) += 1;
        }
    }
    let mut hist = BTreeMap::new();
    for (_, s) in sizes {
        *hist.entry(s).or_insert(0) += 1;
    }
    hist
}

fn hist_of(r: &ComponentsResult) -> BTreeMap<u64, u64> {
    r.sizes.iter().map(|s| (s.size, s.components)).collect()
}

/// Checks a returned path step by step.
fn check_path(spec: &LatticeSpec, start: &[u64], end: &[u64], path: &[Vec<u64>]) {
    let n = spec.size();
    let wraps = spec.boundary() == Boundary::Periodic && n > 2;
    assert_eq!(path.first().unwrap(), start);
    assert_eq!(path.last().unwrap(), end);
    for (i, step) in path.windows(2).enumerate() {
        let (a, b) = (&step[0], &step[1]);
        let moved: Vec<usize> = (0..a.len()).filter(|&k| a[k] != b[k]).collect();
        assert_eq!(moved.len(), 1, "step {i} moves along {moved:?}");
        let k = moved[0];
        let diff = a[k].abs_diff(b[k]);
        assert!(
            diff == 1 || (wraps && diff == n - 1),
            "step {i}: {a:?} -> {b:?}"
        );
    }
    for (i, c) in path.iter().enumerate() {
        assert!(c.iter().all(|&x| x < n));
        if i != 0 && i != path.len() - 1 {
            let v = spec.coords_to_index(c).unwrap();
            assert!(!spec.is_blocked(v), "blocked vertex {c:?} on the path");
        }
    }
}

/// One and two threads give the same answer: reachability, distance and
/// method, and each a valid path of that length when given (with two
/// threads the far phase shares its levels by progress, so the path may be
/// another of the shortest ones, and `visited` may differ).
fn assert_same_answer(
    spec: &LatticeSpec,
    (start, end): (&[u64], &[u64]),
    one: &PathResult,
    two: &PathResult,
    ctx: &str,
) {
    let key = |r: &PathResult| {
        (
            r.reachable,
            r.distance,
            r.path_length,
            r.method,
            r.path.is_some(),
        )
    };
    assert_eq!(key(one), key(two), "{ctx}");
    for r in [one, two] {
        if let Some(path) = &r.path {
            assert_eq!(Some(path.len() as u64), r.path_length);
            check_path(spec, start, end, path);
        }
    }
}

#[test]
fn paths_match_reference_bfs() {
    let mut rng = Rng(1);
    let mut reachable = 0;
    let mut unreachable = 0;
    // Paths with obstacles answered by [BFS, monotone sweep].
    let mut methods = [0; 2];
    for case in 0..700 {
        let d = 1 + (case % 7) as u32;
        let max_n = [300u64, 45, 14, 8, 5, 4, 3][d as usize - 1];
        let n = 2 + rng.below(max_n - 1);
        let density = [0.0, 0.2, 0.4][(case / 7) % 3];
        let boundary = if (case / 21) % 2 == 0 {
            Boundary::Open
        } else {
            Boundary::Periodic
        };
        let spec = LatticeSpec::new(d, n, density, rng.next(), boundary).unwrap();
        let s = rng.below(spec.vertices());
        let e = if case % 17 == 0 {
            s
        } else {
            rng.below(spec.vertices())
        };
        let start = spec.index_to_coords(s).unwrap();
        let end = spec.index_to_coords(e).unwrap();
        let r = shortest_path(&spec, &start, &end, usize::MAX, &Control::none()).unwrap();
        let dist = ref_bfs(&spec, s, e);
        let want = dist[e as usize];
        let ctx = format!("case {case}: d={d} n={n} density={density} {boundary:?} s={s} e={e}");
        if density == 0.0 {
            assert_eq!(r.method, PathMethod::ClosedForm, "{ctx}");
            assert_eq!(r.visited, 0);
        } else if s != e {
            methods[usize::from(r.method == PathMethod::MonotoneSweep)] += 1;
            // The BFS alone (no sweep) finds the same distance.
            let ctl = Control::none().with_sweep(false);
            let bfs = shortest_path(&spec, &start, &end, usize::MAX, &ctl).unwrap();
            assert_eq!(bfs.method, PathMethod::BidirectionalBfs, "{ctx}");
            assert_eq!(bfs.distance, r.distance, "{ctx}");
            if r.method == PathMethod::MonotoneSweep {
                // Only when the obstacle-free distance is attained.
                let manhattan: u64 = start.iter().zip(&end).map(|(a, b)| a.abs_diff(*b)).sum();
                assert_eq!(r.distance, Some(manhattan), "{ctx}");
            }
        }
        if want == u32::MAX {
            unreachable += 1;
            assert!(!r.reachable, "{ctx}");
            assert_eq!((r.distance, r.path_length, &r.path), (None, None, &None));
        } else {
            reachable += 1;
            assert!(r.reachable, "{ctx}");
            assert_eq!(r.distance, Some(u64::from(want)), "{ctx}");
            assert_eq!(r.path_length, Some(u64::from(want) + 1), "{ctx}");
            let path = r.path.as_ref().unwrap();
            assert_eq!(path.len() as u64, u64::from(want) + 1, "{ctx}");
            check_path(&spec, &start, &end, path);
            if density > 0.0 {
                assert!(r.visited > u64::from(want), "{ctx}");
                assert!(r.visited <= spec.vertices() * 2, "{ctx}");
            }
        }
    }
    assert!(
        reachable > 300 && unreachable > 10,
        "{reachable} {unreachable}"
    );
    assert!(methods[0] > 50 && methods[1] > 50, "{methods:?}");
}

#[test]
fn path_limit_and_closed_form_wrap() {
    let spec = LatticeSpec::new(2, 10, 0.0, 0, Boundary::Periodic).unwrap();
    let r = shortest_path(&spec, &[0, 0], &[9, 8], 100, &Control::none()).unwrap();
    assert_eq!(r.distance, Some(3));
    assert_eq!(
        r.path.unwrap(),
        vec![vec![0, 0], vec![9, 0], vec![9, 9], vec![9, 8]]
    );
    let r = shortest_path(&spec, &[0, 0], &[9, 8], 3, &Control::none()).unwrap();
    assert_eq!(r.path_length, Some(4));
    assert!(r.path.is_none());
    let open = LatticeSpec::new(3, 200, 0.0, 0, Boundary::Open).unwrap();
    let r = shortest_path(&open, &[0, 0, 0], &[199, 199, 199], 10, &Control::none()).unwrap();
    assert_eq!((r.distance, r.visited, r.path), (Some(597), 0, None));
    // Huge lattice, closed form still fine.
    let huge = LatticeSpec::new(2, 1 << 31, 0.0, 0, Boundary::Open).unwrap();
    let r = shortest_path(&huge, &[0, 0], &[5, 7], 100, &Control::none()).unwrap();
    assert_eq!(r.distance, Some(12));
    // Validation errors name the endpoint and axis.
    let e = shortest_path(&spec, &[0, 0], &[0, 10], 1, &Control::none()).unwrap_err();
    assert_eq!(
        e,
        LatticeError::CoordinateOutOfRange {
            which: Endpoint::End,
            axis: 1,
            value: 10,
            size: 10
        }
    );
    let e = shortest_path(&spec, &[0], &[0, 1], 1, &Control::none()).unwrap_err();
    assert!(matches!(
        e,
        LatticeError::WrongCoordinateCount {
            which: Endpoint::Start,
            ..
        }
    ));
}

#[test]
fn walled_off_start_is_unreachable() {
    // Find a seed whose obstacles block both neighbours of the corner.
    let seed = (0..10_000u64)
        .find(|&seed| {
            let s = LatticeSpec::new(2, 10, 0.5, seed, Boundary::Open).unwrap();
            s.is_blocked(1) && s.is_blocked(10)
        })
        .unwrap();
    let spec = LatticeSpec::new(2, 10, 0.5, seed, Boundary::Open).unwrap();
    let r = shortest_path(&spec, &[0, 0], &[9, 9], 1000, &Control::none()).unwrap();
    assert!(!r.reachable);
    assert_eq!(r.distance, None);
    assert_eq!(r.method, PathMethod::BidirectionalBfs);
    // The search stopped at once: the start's frontier ran dry.
    assert!(r.visited <= 4, "visited {}", r.visited);
}

#[test]
fn components_match_reference_union_find() {
    let mut rng = Rng(7);
    for case in 0..150 {
        let d = 1 + (case % 4) as u32;
        let max_n = [400u64, 50, 14, 8][d as usize - 1];
        let n = 2 + rng.below(max_n - 1);
        let density = [0.0, 0.2, 0.4, 0.6][(case / 4) % 4];
        let boundary = if (case / 16) % 2 == 0 {
            Boundary::Open
        } else {
            Boundary::Periodic
        };
        let spec = LatticeSpec::new(d, n, density, rng.next(), boundary).unwrap();
        let want = ref_components(&spec);
        let ctx = format!("case {case}: d={d} n={n} density={density} {boundary:?}");
        for threads in [1, 2, 3] {
            let r = connected_components_in(&spec, &Control::none(), threads).unwrap();
            assert_eq!(hist_of(&r), want, "{ctx} threads={threads}");
            assert_eq!(r.count, want.values().sum::<u64>(), "{ctx}");
            assert_eq!(r.largest, want.keys().last().copied().unwrap_or(0), "{ctx}");
            assert_eq!(r.open_vertices + r.blocked, spec.vertices());
        }
    }
}

#[test]
fn components_without_obstacles_is_one() {
    for (d, n, b) in [
        (1, 5, Boundary::Open),
        (3, 7, Boundary::Periodic),
        (2, 40, Boundary::Open),
    ] {
        let spec = LatticeSpec::new(d, n, 0.0, 1, b).unwrap();
        let r = connected_components(&spec, &Control::none()).unwrap();
        assert_eq!(r.count, 1);
        assert_eq!(r.largest, spec.vertices());
        assert_eq!(
            r.sizes,
            vec![ComponentSizeCount {
                size: spec.vertices(),
                components: 1
            }]
        );
    }
}

#[test]
fn statistics_small() {
    let spec = LatticeSpec::new(2, 3, 0.0, 0, Boundary::Open).unwrap();
    let s = statistics(&spec, &Control::none()).unwrap();
    assert_eq!(s.vertices, 9);
    assert_eq!(s.edges, 12);
    assert_eq!(s.open_edges, 12);
    assert_eq!(s.blocked, 0);
    assert_eq!(s.degree_histogram, vec![0, 0, 4, 4, 1]);
    assert_eq!(s.diameter, Some(4));
    assert_eq!(s.diameter_method, DiameterMethod::ExactFormula);
    let per = LatticeSpec::new(3, 5, 0.0, 0, Boundary::Periodic).unwrap();
    let s = statistics(&per, &Control::none()).unwrap();
    assert_eq!(s.diameter, Some(6));
    assert_eq!(s.degree_histogram, vec![0, 0, 0, 0, 0, 0, 125]);
    assert_eq!(s.open_edges, 375);
    assert!(s.memory_reduction > 1.0);

    let mut rng = Rng(3);
    for case in 0..60 {
        let d = 1 + (case % 3) as u32;
        let n = 2 + rng.below([200, 30, 9][d as usize - 1]);
        let b = if case % 2 == 0 {
            Boundary::Open
        } else {
            Boundary::Periodic
        };
        let spec = LatticeSpec::new(d, n, 0.3, rng.next(), b).unwrap();
        let s = statistics(&spec, &Control::none()).unwrap();
        let open: Vec<u64> = (0..spec.vertices())
            .filter(|&v| !spec.is_blocked(v))
            .collect();
        assert_eq!(s.open_vertices, open.len() as u64);
        let mut hist = vec![0u64; 2 * d as usize + 1];
        let mut deg_sum = 0;
        for &v in &open {
            let deg = ref_neighbours(&spec, v)
                .into_iter()
                .filter(|&w| !spec.is_blocked(w))
                .count();
            hist[deg] += 1;
            deg_sum += deg as u64;
        }
        assert_eq!(s.degree_histogram, hist);
        assert_eq!(s.open_edges, deg_sum / 2);
        if let Some(&first) = open.first() {
            if s.blocked > 0 {
                assert_eq!(s.diameter_method, DiameterMethod::DoubleSweepLowerBound);
                // Lower bound: at most the largest finite distance in the
                // first vertex's component, at least first's eccentricity.
                let d0 = ref_bfs(&spec, first, first);
                let ecc0 = d0
                    .iter()
                    .filter(|&&x| x != u32::MAX)
                    .max()
                    .copied()
                    .unwrap();
                let comp: Vec<u64> = (0..spec.vertices())
                    .filter(|&v| d0[v as usize] != u32::MAX)
                    .collect();
                let true_diam = comp
                    .iter()
                    .map(|&v| {
                        ref_bfs(&spec, v, v)
                            .iter()
                            .filter(|&&x| x != u32::MAX)
                            .max()
                            .copied()
                            .unwrap()
                    })
                    .max()
                    .unwrap();
                let got = s.diameter.unwrap();
                assert!(
                    got >= u64::from(ecc0) && got <= u64::from(true_diam),
                    "case {case}"
                );
            }
        } else {
            assert_eq!(s.diameter_method, DiameterMethod::NoOpenVertices);
        }
    }
}

/// The far endpoint of test searches: the opposite corner when open, the
/// centre when periodic (the opposite corner is next door on a torus).
fn far_point(spec: &LatticeSpec) -> Vec<u64> {
    let c = match spec.boundary() {
        Boundary::Open => spec.size() - 1,
        Boundary::Periodic => spec.size() / 2,
    };
    vec![c; spec.dimensions() as usize]
}

fn run_op(spec: &LatticeSpec, ctl: &Control<'_>, op: usize) -> Result<(), LatticeError> {
    let d = spec.dimensions() as usize;
    match op {
        0 => shortest_path(spec, &vec![0; d], &far_point(spec), 10, ctl).map(|_| ()),
        1 => connected_components(spec, ctl).map(|_| ()),
        2 => xor_transform(spec, b"key", 3, ctl).map(|_| ()),
        _ => statistics(spec, ctl).map(|_| ()),
    }
}

#[test]
fn cancellation() {
    let spec = LatticeSpec::new(2, 300, 0.2, 5, Boundary::Open).unwrap();
    let progress = |_: u8| {};
    let yes = || true;
    let ctl = Control::new(&progress, &yes);
    for op in 0..4 {
        assert_eq!(run_op(&spec, &ctl, op), Err(LatticeError::Cancelled));
    }
    // Cancelled part-way through, on both thread counts.
    let big = LatticeSpec::new(2, 1100, 0.2, 5, Boundary::Periodic).unwrap();
    for threads in [1, 2] {
        for op in 0..4 {
            let calls = AtomicU64::new(0);
            let later = || calls.fetch_add(1, Ordering::Relaxed) >= 3;
            let ctl = Control::new(&progress, &later).with_threads(threads);
            let r = run_op(&big, &ctl, op);
            assert_eq!(r, Err(LatticeError::Cancelled), "op {op} threads {threads}");
        }
    }
}

#[test]
fn progress_is_monotone_and_reaches_100() {
    for (spec, threads) in [
        (LatticeSpec::new(2, 60, 0.2, 5, Boundary::Open).unwrap(), 1),
        (LatticeSpec::new(2, 60, 0.0, 5, Boundary::Open).unwrap(), 1),
        (
            LatticeSpec::new(3, 101, 0.25, 9, Boundary::Periodic).unwrap(),
            2,
        ),
    ] {
        for op in 0..4 {
            let seen = Mutex::new(Vec::new());
            let progress = |p: u8| seen.lock().unwrap().push(p);
            let no = || false;
            let ctl = Control::new(&progress, &no).with_threads(threads);
            run_op(&spec, &ctl, op).unwrap();
            let seen = seen.into_inner().unwrap();
            assert_eq!(seen.first(), Some(&0), "op {op}");
            assert_eq!(seen.last(), Some(&100), "op {op}");
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "op {op}: {seen:?}");
            if spec.vertices() > 1_000_000 {
                assert!(seen.len() >= 10, "op {op}: too few reports {seen:?}");
                // Whole-lattice scans report at least every ~5%; a path
                // search may end early (the searches met) and jump to 100.
                let body = &seen[..seen.len() - 1];
                if op != 0 {
                    assert!(
                        body.windows(2).all(|w| w[1] - w[0] <= 6),
                        "op {op}: gap in {seen:?}"
                    );
                }
            }
        }
    }
}

/// Two-thread bricked searches on many small open lattices of 3 and 4
/// dimensions (two threads whatever the size): the same answer as one
/// thread, and the reference distance.
#[test]
fn two_thread_bricked_paths_match_one_thread_and_reference() {
    let mut rng = Rng(7);
    let ctl = Control::none().with_sweep(false);
    let mut reachable = 0;
    for case in 0..240 {
        let d = 3 + (case % 2) as u32;
        let n = 2 + rng.below(if d == 3 { 24 } else { 9 });
        let density = [0.1, 0.3, 0.45][case % 3];
        let spec = LatticeSpec::new(d, n, density, rng.next(), Boundary::Open).unwrap();
        let s = rng.below(spec.vertices());
        let e = rng.below(spec.vertices());
        if s == e {
            continue;
        }
        let start = spec.index_to_coords(s).unwrap();
        let end = spec.index_to_coords(e).unwrap();
        let ctx = format!("case {case}: d={d} n={n} density={density} s={s} e={e}");
        let one = path::shortest_path_on(&spec, &start, &end, usize::MAX, &ctl, 1).unwrap();
        let two = path::shortest_path_on(&spec, &start, &end, usize::MAX, &ctl, 2).unwrap();
        assert_same_answer(&spec, (&start, &end), &one, &two, &ctx);
        let want = ref_bfs(&spec, s, e)[e as usize];
        if want == u32::MAX {
            assert!(!two.reachable, "{ctx}");
        } else {
            reachable += 1;
            assert_eq!(two.distance, Some(u64::from(want)), "{ctx}");
            check_path(&spec, &start, &end, two.path.as_ref().unwrap());
        }
    }
    assert!(reachable > 100, "{reachable}");
}

#[test]
fn parallel_equals_single_thread_on_a_million_vertices() {
    for (d, n, density, boundary) in [
        (2u32, 1000u64, 0.2, Boundary::Open),
        (3, 101, 0.25, Boundary::Periodic),
        // The bricked numbering (open, d >= 3).
        (3, 101, 0.2, Boundary::Open),
    ] {
        let spec = LatticeSpec::new(d, n, density, 11, boundary).unwrap();
        assert!(spec.vertices() >= PARALLEL_MIN_VERTICES);
        let one = Control::none().with_threads(1);
        let two = Control::none().with_threads(2);
        let start = vec![0; d as usize];
        let end = far_point(&spec);
        let p1 = shortest_path(&spec, &start, &end, usize::MAX, &one).unwrap();
        let p2 = shortest_path(&spec, &start, &end, usize::MAX, &two).unwrap();
        assert_same_answer(&spec, (&start, &end), &p1, &p2, "sweep allowed");
        // The same through the bidirectional BFS (no monotone sweep).
        let b1 = shortest_path(&spec, &start, &end, usize::MAX, &one.with_sweep(false)).unwrap();
        let b2 = shortest_path(&spec, &start, &end, usize::MAX, &two.with_sweep(false)).unwrap();
        assert_eq!(b1.method, PathMethod::BidirectionalBfs);
        assert_same_answer(&spec, (&start, &end), &b1, &b2, "bfs");
        assert_eq!(b1.distance, p1.distance);
        assert!(p1.reachable);
        let s = spec.coords_to_index(&start).unwrap();
        let e = spec.coords_to_index(&end).unwrap();
        let want = ref_bfs(&spec, s, e)[e as usize];
        assert_eq!(p1.distance, Some(u64::from(want)));
        check_path(&spec, &start, &end, p1.path.as_ref().unwrap());
        assert!(p1.visited > 100_000);

        let c1 = connected_components(&spec, &one).unwrap();
        let c2 = connected_components(&spec, &two).unwrap();
        assert_eq!(c1, c2);
        assert_eq!(hist_of(&c1), ref_components(&spec));

        let s1 = statistics(&spec, &one).unwrap();
        let s2 = statistics(&spec, &two).unwrap();
        assert_eq!(s1, s2);

        let x1 = xor_transform(&spec, b"k", 2, &one).unwrap();
        let x2 = xor_transform(&spec, b"k", 2, &two).unwrap();
        assert_eq!(x1, x2);
    }
}

#[test]
fn results_serialize() {
    let spec = LatticeSpec::new(2, 5, 0.0, 0, Boundary::Open).unwrap();
    let r = shortest_path(&spec, &[0, 0], &[1, 1], 10, &Control::none()).unwrap();
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains("\"method\":\"closed_form\""), "{json}");
    let back: PathResult = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
    let s = statistics(&spec, &Control::none()).unwrap();
    let json = serde_json::to_string(&s).unwrap();
    assert!(
        json.contains("\"diameter_method\":\"exact_formula\""),
        "{json}"
    );
    let p: LatticeParams =
        serde_json::from_str(r#"{"dimensions":3,"size":4,"boundary":"periodic"}"#).unwrap();
    assert_eq!(p.validate().unwrap().boundary(), Boundary::Periodic);
}

#[test]
fn padded_numbering_matches_the_lattice() {
    use super::bfs::fill_padded;
    use super::geometry::{Grid, Ids};
    let mut checked = 0;
    for (d, n) in [
        (1u32, 70u64),
        (2, 5),
        (2, 63),
        (2, 130),
        (3, 9),
        (4, 20),
        (5, 30),
    ] {
        let spec = LatticeSpec::new(d, n, 0.3, 11, Boundary::Open).unwrap();
        let grid = Grid::new(&spec);
        let Ids::Padded(p) = Ids::for_grid(&grid) else {
            continue;
        };
        let ids = Ids::Padded(p);
        checked += 1;
        // Every vertex maps to an id and back, in the same order; its moves
        // are +- side^k, and a move off the lattice lands on padding.
        let mut words = vec![0u64; (p.ids + 1).div_ceil(64) as usize];
        let blocked = fill_padded(&p, spec.seed(), spec.obstacle_threshold(), 0, &mut words);
        let bit = |id: u64| (words[(id >> 6) as usize] >> (id & 63)) & 1 == 1;
        let mut real = 0;
        let mut prev = None;
        for v in (0..spec.vertices()).step_by(1 + spec.vertices() as usize / 5000) {
            let id = ids.id(v);
            assert_eq!(ids.vertex(id), v, "d={d} n={n}");
            assert!(prev.is_none_or(|p| p < id));
            prev = Some(id);
            assert_eq!(bit(id), spec.is_blocked(v), "d={d} n={n} v={v}");
            let c = spec.index_to_coords(v).unwrap();
            for (k, &ck) in c.iter().enumerate() {
                let (minus, plus) = (id - p.strides[k], id + p.strides[k]);
                if ck > 0 {
                    assert_eq!(ids.vertex(minus), v - grid.strides[k]);
                } else {
                    assert!(bit(minus), "padding below v={v} axis {k}");
                }
                if ck + 1 < n {
                    assert_eq!(ids.vertex(plus), v + grid.strides[k]);
                } else {
                    assert!(bit(plus), "padding above v={v} axis {k}");
                }
            }
        }
        // Exactly the blocked vertices and the padding are set.
        for id in 0..p.ids {
            real += u64::from(!bit(id));
        }
        assert_eq!(real + blocked, spec.vertices(), "d={d} n={n}");
        assert!(bit(p.ids), "the bit past the last id is set");
    }
    assert!(checked >= 5, "padded numbering applied to {checked} cases");
}
