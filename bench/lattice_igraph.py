#!/usr/bin/env python3
"""igraph baseline for scripts/bench-lattice.

usage: lattice_igraph.py D N DENSITY SEED

Builds the open D-dimensional lattice of side N with igraph's Graph.Lattice
(vertex index c0 + c1*N + ..., the engine's numbering), deletes the vertices
blocked by the engine's obstacle rule

    blocked(v) = splitmix64(seed ^ v) < floor(density * 2^64)

(the corner endpoints are never blocked for the path), then runs one
shortest path from corner (0,...,0) to corner (N-1,...,N-1) and the
connected components (of the rule's open vertices: a corner forced open for
the path is deleted again first, as in the engine).
Prints one line of key=value pairs (seconds; peak_rss_kb from ru_maxrss at
the end; baseline_rss_kb = ru_maxrss just before the timed work starts,
after importing igraph and numpy and computing the obstacle mask;
work_peak_kb = the difference, the peak memory of the timed work itself).
The obstacle mask is computed with numpy and timed separately (mask_s); it
is not part of total_s, nor of work_peak_kb (ru_maxrss is a high-water mark,
so the baseline includes the mask's own peak: conservative for igraph).
"""

import math
import resource
import sys
import time

import igraph as ig
import numpy as np

CHUNK = 1 << 20


def splitmix64(x):
    """splitmix64 on a uint64 numpy array (wrapping arithmetic)."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def blocked_mask(vertices, density, seed):
    threshold = min(math.floor(density * 2.0**64), 2**64 - 1) if density > 0 else 0
    mask = np.zeros(vertices, dtype=bool)
    if threshold == 0:
        return mask
    thr = np.uint64(threshold)
    s = np.uint64(seed)
    with np.errstate(over="ignore"):
        for lo in range(0, vertices, CHUNK):
            hi = min(lo + CHUNK, vertices)
            idx = np.arange(lo, hi, dtype=np.uint64)
            mask[lo:hi] = splitmix64(idx ^ s) < thr
    return mask


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    d, n, density, seed = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    vertices = n**d
    start, end = 0, vertices - 1

    t = time.perf_counter()
    mask = blocked_mask(vertices, density, seed)
    # The path's endpoints are open whatever the rule says; components are
    # over the rule's open vertices only, so forced endpoints are deleted
    # again before counting them.
    forced = [v for v in (start, end) if mask[v]]
    mask[start] = False
    mask[end] = False
    blocked = np.flatnonzero(mask).tolist()
    # Index of `end` once the blocked vertices below it are deleted.
    end_new = end - int(np.count_nonzero(mask[:end]))
    forced_new = sorted({0 if v == start else end_new for v in forced})
    del mask
    mask_s = time.perf_counter() - t

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    g = ig.Graph.Lattice(dim=[n] * d, circular=False)
    if blocked:
        g.delete_vertices(blocked)
    build_s = time.perf_counter() - t
    del blocked

    t = time.perf_counter()
    path = g.get_shortest_path(start, end_new, output="vpath")
    path_s = time.perf_counter() - t
    distance = str(len(path) - 1) if path else "none"

    t = time.perf_counter()
    if forced_new:
        g.delete_vertices(forced_new)
    sizes = g.connected_components().sizes()
    components_s = time.perf_counter() - t

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fields = {
        "d": d,
        "n": n,
        "density": density,
        "seed": seed,
        "vertices": vertices,
        "open_vertices": g.vcount(),
        "edges": g.ecount(),
        "mask_s": f"{mask_s:.6f}",
        "build_s": f"{build_s:.6f}",
        "path_s": f"{path_s:.6f}",
        "components_s": f"{components_s:.6f}",
        "total_s": f"{build_s + path_s + components_s:.6f}",
        "distance": distance,
        "components": len(sizes),
        "largest": max(sizes) if sizes else 0,
        "baseline_rss_kb": baseline,
        "peak_rss_kb": rss,
        "work_peak_kb": rss - baseline,
    }
    print(" ".join(f"{k}={v}" for k, v in fields.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
