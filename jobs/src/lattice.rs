//! The lattice engine: pure computation (no I/O) on implicit
//! `size^dimensions` lattices with pseudo-random obstacles.
//!
//! * [`LatticeSpec`] validates the parameters and does the index arithmetic
//!   (`v = c0 + c1*n + c2*n^2 + ...`) and the memory accounting.
//! * Obstacles are a pure function of `(seed, v)` ([`splitmix64`], see the
//!   `obstacles` module docs): nothing is stored per vertex beyond a few bits
//!   of working state; neighbours come from strides, never an edge list.
//! * Operations: [`shortest_path`] (closed form without obstacles,
//!   bidirectional BFS otherwise), [`connected_components`],
//!   [`xor_transform`] and [`statistics`]. Each takes a [`Control`] for
//!   progress (monotone `0..=100`), cancellation (checked between chunks,
//!   returns [`LatticeError::Cancelled`]) and a thread budget used on
//!   lattices of at least [`PARALLEL_MIN_VERTICES`] vertices.
//!
//! Plan limits are the caller's: check them with
//! [`LatticeSpec::check_vertex_limit`] before running an operation.

mod bfs;
mod bitset;
mod bricks;
mod components;
mod control;
mod error;
mod geometry;
mod monotone;
mod obstacles;
mod parallel;
mod path;
mod spec;
mod stats;
mod xor;

#[cfg(test)]
mod tests;

pub use components::{ComponentSizeCount, ComponentsResult, connected_components};
pub use control::{Control, default_threads};
pub use error::{Endpoint, LatticeError};
pub use obstacles::{obstacle_threshold, splitmix64};
pub use parallel::PARALLEL_MIN_VERTICES;
pub use path::{PathMethod, PathResult, shortest_path};
pub use spec::{
    Boundary, ENGINE_MAX_VERTICES, LatticeParams, LatticeSpec, MAX_DENSITY, MAX_DIMENSIONS,
    MIN_DIMENSIONS, MIN_SIZE,
};
pub use stats::{DiameterMethod, StatisticsResult, statistics};
pub use xor::{
    CHECKSUM_SALT, CHUNK_BYTES, FIELD_SALT, MAX_ROUNDS, XorResult, field_byte, field_checksum,
    xor_transform,
};
