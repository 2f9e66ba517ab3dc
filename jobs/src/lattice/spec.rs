//! Lattice parameters, validation, index arithmetic and memory formulas.

use serde::{Deserialize, Serialize};

use super::bfs::checkpoint_every;
use super::bricks::searches_use;
use super::error::{Endpoint, LatticeError};
use super::obstacles::{blocked_by_rule, obstacle_threshold};

/// Smallest accepted `dimensions`.
pub const MIN_DIMENSIONS: u32 = 1;
/// Largest accepted `dimensions`.
pub const MAX_DIMENSIONS: u32 = 10;
/// Smallest accepted `size` (vertices per side).
pub const MIN_SIZE: u64 = 2;
/// Largest accepted `obstacle_density`.
pub const MAX_DENSITY: f64 = 0.9;
/// Hard ceiling on the vertex count of any operation that walks the lattice
/// (2^34 vertices: the path search would allocate 8 GiB of labels). The
/// caller's plan bound, checked with [`LatticeSpec::check_vertex_limit`], is
/// normally far lower. The closed-form path has no such ceiling.
pub const ENGINE_MAX_VERTICES: u64 = 1 << 34;

/// Boundary condition along every axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Boundary {
    /// Coordinates stop at `0` and `size - 1`.
    #[default]
    Open,
    /// Coordinates wrap (a torus). With `size == 2` the wrap edge coincides
    /// with the ordinary edge, so the lattice is the same simple graph as
    /// the open one.
    Periodic,
}

/// Unvalidated lattice parameters as they arrive in a job payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatticeParams {
    pub dimensions: u32,
    pub size: u64,
    #[serde(default)]
    pub obstacle_density: f64,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub boundary: Boundary,
}

impl LatticeParams {
    /// Validates into a [`LatticeSpec`].
    pub fn validate(&self) -> Result<LatticeSpec, LatticeError> {
        LatticeSpec::new(
            self.dimensions,
            self.size,
            self.obstacle_density,
            self.seed,
            self.boundary,
        )
    }
}

/// A validated lattice: `size^dimensions` vertices, vertex
/// `v = c0 + c1*n + c2*n^2 + ...`, neighbours `±1` along one axis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatticeSpec {
    dimensions: u32,
    size: u64,
    obstacle_density: f64,
    seed: u64,
    boundary: Boundary,
    #[serde(skip)]
    vertices: u64,
    #[serde(skip)]
    threshold: u64,
}

impl LatticeSpec {
    /// Validates the parameters. Fails on `dimensions` outside `1..=10`,
    /// `size < 2`, density outside `[0, 0.9]` and `size^dimensions`
    /// overflowing `u64`.
    pub fn new(
        dimensions: u32,
        size: u64,
        obstacle_density: f64,
        seed: u64,
        boundary: Boundary,
    ) -> Result<Self, LatticeError> {
        if !(MIN_DIMENSIONS..=MAX_DIMENSIONS).contains(&dimensions) {
            return Err(LatticeError::InvalidDimensions { dimensions });
        }
        if size < MIN_SIZE {
            return Err(LatticeError::InvalidSize { size });
        }
        if !(0.0..=MAX_DENSITY).contains(&obstacle_density) {
            return Err(LatticeError::InvalidDensity {
                density: obstacle_density,
            });
        }
        let vertices = size
            .checked_pow(dimensions)
            .ok_or(LatticeError::TooManyVertices {
                vertices: None,
                limit: u64::MAX,
            })?;
        Ok(Self {
            dimensions,
            size,
            obstacle_density,
            seed,
            boundary,
            vertices,
            threshold: obstacle_threshold(obstacle_density),
        })
    }

    /// Fails with `TooManyVertices` when the lattice has more than `max`
    /// vertices (the caller's plan bound).
    pub fn check_vertex_limit(&self, max: u64) -> Result<(), LatticeError> {
        if self.vertices > max {
            return Err(LatticeError::TooManyVertices {
                vertices: Some(self.vertices),
                limit: max,
            });
        }
        Ok(())
    }

    pub fn dimensions(&self) -> u32 {
        self.dimensions
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn obstacle_density(&self) -> f64 {
        self.obstacle_density
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn boundary(&self) -> Boundary {
        self.boundary
    }

    /// `floor(obstacle_density * 2^64)`.
    pub fn obstacle_threshold(&self) -> u64 {
        self.threshold
    }

    /// `size^dimensions` (checked at construction).
    pub fn vertices(&self) -> u64 {
        self.vertices
    }

    /// True when wrap edges exist as distinct edges (periodic and `size > 2`).
    pub(crate) fn wraps(&self) -> bool {
        self.boundary == Boundary::Periodic && self.size > 2
    }

    /// Edges of the full lattice ignoring obstacles, as a simple graph:
    /// `d * n^(d-1) * (n-1)` when open (or periodic with `n == 2`),
    /// `d * n^d` when periodic with `n > 2`.
    pub fn edges(&self) -> u128 {
        let v = u128::from(self.vertices);
        let per_axis = if self.wraps() {
            v
        } else {
            v - v / u128::from(self.size)
        };
        per_axis * u128::from(self.dimensions)
    }

    /// Bytes of working state a shortest-path search (the engine's largest
    /// operation) allocates for this lattice:
    /// * per search direction a visited bitset, 1 bit per vertex (blocked
    ///   vertices are pre-set in it, so obstacles take no extra storage),
    ///   and on open lattices of 3 or 4 dimensions (the bricked search) a
    ///   bitset of the level being built beside it: `2 * ceil(V / 64) * 8`,
    ///   or twice that (the bricks' padding adds a few percent on large
    ///   lattices);
    /// * checkpoints, the vertices of every `k`-th BFS level (`k = 8`, or 4
    ///   when `d > 5`) as `u32` ids (`u64` beyond 2^32 vertices), to walk the
    ///   path back: the two searches together reach each vertex at most once
    ///   before they meet, and lattice BFS levels vary slowly in size, so
    ///   this is about `ceil(V / k) * id_bytes` at most (4 bits per vertex
    ///   for `d <= 5`, 8 above), usually less.
    ///
    /// Frontier queues (one BFS level each, not proportional to `V`) are not
    /// included. Components and statistics need 1 bit per vertex.
    pub fn memory_bytes(&self) -> u128 {
        let v = self.vertices;
        let id_bytes: u128 = if v <= 1 << 32 { 4 } else { 8 };
        let k = checkpoint_every(self.dimensions as usize);
        let bitsets: u128 = if searches_use(self.dimensions as usize, self.wraps()) {
            4
        } else {
            2
        };
        bitsets * u128::from(v.div_ceil(64)) * 8 + u128::from(v.div_ceil(k)) * id_bytes
    }

    /// Bytes an explicit adjacency-list graph needs: CSR with `u64` offsets
    /// and each undirected edge stored twice, `(V + 1) * 8 + 2 * E * w`
    /// where `w = 4` bytes when vertex ids fit in `u32`, else 8.
    pub fn explicit_memory_bytes(&self) -> u128 {
        let id_bytes: u128 = if self.vertices <= u64::from(u32::MAX) {
            4
        } else {
            8
        };
        (u128::from(self.vertices) + 1) * 8 + 2 * self.edges() * id_bytes
    }

    /// `explicit_memory_bytes / memory_bytes`.
    pub fn memory_reduction(&self) -> f64 {
        self.explicit_memory_bytes() as f64 / self.memory_bytes() as f64
    }

    /// The obstacle rule for vertex `v` (without the endpoint exception of
    /// path requests): `splitmix64(seed ^ v) < floor(density * 2^64)`.
    pub fn is_blocked(&self, v: u64) -> bool {
        blocked_by_rule(self.seed, self.threshold, v)
    }

    /// `c0 + c1*n + c2*n^2 + ...`.
    pub fn coords_to_index(&self, coords: &[u64]) -> Result<u64, LatticeError> {
        self.index_of(Endpoint::Point, coords)
    }

    pub(crate) fn index_of(&self, which: Endpoint, coords: &[u64]) -> Result<u64, LatticeError> {
        let d = self.dimensions as usize;
        if coords.len() != d {
            return Err(LatticeError::WrongCoordinateCount {
                which,
                expected: d,
                got: coords.len(),
            });
        }
        let mut index = 0u64;
        let mut stride = 1u64;
        for (axis, &c) in coords.iter().enumerate() {
            if c >= self.size {
                return Err(LatticeError::CoordinateOutOfRange {
                    which,
                    axis,
                    value: c,
                    size: self.size,
                });
            }
            // Cannot overflow: index < n^(axis+1) <= n^d <= u64::MAX.
            index += c * stride;
            stride = stride.saturating_mul(self.size);
        }
        Ok(index)
    }

    /// The inverse of [`coords_to_index`](Self::coords_to_index).
    pub fn index_to_coords(&self, v: u64) -> Result<Vec<u64>, LatticeError> {
        if v >= self.vertices {
            return Err(LatticeError::VertexOutOfRange {
                vertex: v,
                vertices: self.vertices,
            });
        }
        Ok(self.coords_unchecked(v))
    }

    pub(crate) fn coords_unchecked(&self, mut v: u64) -> Vec<u64> {
        (0..self.dimensions)
            .map(|_| {
                let c = v % self.size;
                v /= self.size;
                c
            })
            .collect()
    }

    /// Fails when an operation that walks the lattice would exceed the
    /// engine's hard ceiling.
    pub(crate) fn check_engine_limit(&self) -> Result<(), LatticeError> {
        self.check_vertex_limit(ENGINE_MAX_VERTICES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        use LatticeError::*;
        let b = Boundary::Open;
        assert_eq!(
            LatticeSpec::new(0, 4, 0.0, 0, b),
            Err(InvalidDimensions { dimensions: 0 })
        );
        assert_eq!(
            LatticeSpec::new(11, 4, 0.0, 0, b),
            Err(InvalidDimensions { dimensions: 11 })
        );
        assert_eq!(
            LatticeSpec::new(2, 1, 0.0, 0, b),
            Err(InvalidSize { size: 1 })
        );
        assert!(matches!(
            LatticeSpec::new(2, 4, 0.95, 0, b),
            Err(InvalidDensity { .. })
        ));
        assert!(matches!(
            LatticeSpec::new(2, 4, f64::NAN, 0, b),
            Err(InvalidDensity { .. })
        ));
        assert!(matches!(
            LatticeSpec::new(2, 4, -0.1, 0, b),
            Err(InvalidDensity { .. })
        ));
        assert_eq!(
            LatticeSpec::new(10, 1 << 7, 0.0, 0, b),
            Err(TooManyVertices {
                vertices: None,
                limit: u64::MAX
            })
        );
        let s = LatticeSpec::new(3, 10, 0.9, 0, b).unwrap();
        assert_eq!(s.vertices(), 1000);
        assert!(s.check_vertex_limit(1000).is_ok());
        assert_eq!(
            s.check_vertex_limit(999),
            Err(TooManyVertices {
                vertices: Some(1000),
                limit: 999
            })
        );
        assert_eq!(
            s.coords_to_index(&[1, 2]),
            Err(WrongCoordinateCount {
                which: Endpoint::Point,
                expected: 3,
                got: 2
            })
        );
        assert_eq!(
            s.coords_to_index(&[1, 10, 0]),
            Err(CoordinateOutOfRange {
                which: Endpoint::Point,
                axis: 1,
                value: 10,
                size: 10
            })
        );
        assert!(s.index_to_coords(1000).is_err());
        // Errors display.
        assert!(
            s.coords_to_index(&[1, 10, 0])
                .unwrap_err()
                .to_string()
                .contains("axis 1")
        );
    }

    #[test]
    fn index_round_trip() {
        for (d, n) in [(1u32, 7u64), (2, 5), (3, 4), (4, 3), (10, 2)] {
            let s = LatticeSpec::new(d, n, 0.0, 0, Boundary::Open).unwrap();
            for v in 0..s.vertices() {
                let c = s.index_to_coords(v).unwrap();
                assert_eq!(c.len(), d as usize);
                assert_eq!(s.coords_to_index(&c).unwrap(), v);
            }
        }
        let s = LatticeSpec::new(3, 10, 0.0, 0, Boundary::Open).unwrap();
        assert_eq!(s.coords_to_index(&[3, 2, 1]).unwrap(), 123);
        assert_eq!(s.index_to_coords(123).unwrap(), vec![3, 2, 1]);
    }

    #[test]
    fn edges_and_memory() {
        let open = LatticeSpec::new(2, 3, 0.0, 0, Boundary::Open).unwrap();
        assert_eq!(open.edges(), 12);
        let per = LatticeSpec::new(2, 3, 0.0, 0, Boundary::Periodic).unwrap();
        assert_eq!(per.edges(), 18);
        // n == 2 periodic is the same simple graph as open.
        let p2 = LatticeSpec::new(3, 2, 0.0, 0, Boundary::Periodic).unwrap();
        let o2 = LatticeSpec::new(3, 2, 0.0, 0, Boundary::Open).unwrap();
        assert_eq!(p2.edges(), 12);
        assert_eq!(o2.edges(), 12);
        let big = LatticeSpec::new(3, 200, 0.2, 0, Boundary::Open).unwrap();
        assert_eq!(big.memory_bytes(), 4 * 125_000 * 8 + 1_000_000 * 4);
        let plane = LatticeSpec::new(2, 1000, 0.2, 0, Boundary::Open).unwrap();
        assert_eq!(plane.memory_bytes(), 2 * 15_625 * 8 + 125_000 * 4);
        let e = 3u128 * 200 * 200 * 199;
        assert_eq!(big.explicit_memory_bytes(), 8_000_001 * 8 + 2 * e * 4);
        assert!(big.memory_reduction() > 20.0);
        let huge = LatticeSpec::new(1, u64::MAX, 0.0, 0, Boundary::Open).unwrap();
        assert!(huge.explicit_memory_bytes() > u128::from(u64::MAX));
        assert!(huge.check_engine_limit().is_err());
    }

    #[test]
    fn params_serde_defaults() {
        let p = LatticeParams {
            dimensions: 2,
            size: 4,
            obstacle_density: 0.1,
            seed: 9,
            boundary: Boundary::Periodic,
        };
        let s = p.validate().unwrap();
        assert_eq!(s.boundary(), Boundary::Periodic);
        assert_eq!(s.seed(), 9);
    }
}
