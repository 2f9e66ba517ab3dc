//! The typed error of the lattice engine.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which coordinate vector an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// The `start` of a shortest-path request.
    Start,
    /// The `end` of a shortest-path request.
    End,
    /// A coordinate vector given to [`LatticeSpec::coords_to_index`](super::LatticeSpec::coords_to_index).
    Point,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Endpoint::Start => "start",
            Endpoint::End => "end",
            Endpoint::Point => "point",
        })
    }
}

/// Everything that can go wrong in the lattice engine. Validation errors are
/// returned up front, before any work; `Cancelled` is returned when the
/// caller's `is_cancelled` callback said so.
#[derive(Debug, Clone, PartialEq)]
pub enum LatticeError {
    /// `dimensions` outside `1..=10`.
    InvalidDimensions { dimensions: u32 },
    /// `size` (vertices per side) below 2.
    InvalidSize { size: u64 },
    /// `obstacle_density` outside `[0, 0.9]` (or NaN).
    InvalidDensity { density: f64 },
    /// A coordinate vector whose length is not `dimensions`.
    WrongCoordinateCount {
        which: Endpoint,
        expected: usize,
        got: usize,
    },
    /// A coordinate `value >= size` on `axis`.
    CoordinateOutOfRange {
        which: Endpoint,
        axis: usize,
        value: u64,
        size: u64,
    },
    /// A vertex index `>= vertices`.
    VertexOutOfRange { vertex: u64, vertices: u64 },
    /// `size^dimensions` exceeds `limit`; `vertices` is `None` when it does
    /// not even fit in a `u64`.
    TooManyVertices { vertices: Option<u64>, limit: u64 },
    /// An empty XOR key.
    EmptyKey,
    /// XOR rounds outside `1..=64`.
    InvalidRounds { rounds: u32 },
    /// The caller cancelled the operation.
    Cancelled,
}

impl fmt::Display for LatticeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LatticeError::InvalidDimensions { dimensions } => {
                write!(f, "dimensions must be in 1..=10, got {dimensions}")
            }
            LatticeError::InvalidSize { size } => {
                write!(f, "size must be at least 2, got {size}")
            }
            LatticeError::InvalidDensity { density } => {
                write!(f, "obstacle_density must be in [0, 0.9], got {density}")
            }
            LatticeError::WrongCoordinateCount {
                which,
                expected,
                got,
            } => write!(f, "{which} has {got} coordinates, expected {expected}"),
            LatticeError::CoordinateOutOfRange {
                which,
                axis,
                value,
                size,
            } => write!(
                f,
                "{which} coordinate on axis {axis} is {value}, must be below size {size}"
            ),
            LatticeError::VertexOutOfRange { vertex, vertices } => {
                write!(
                    f,
                    "vertex index {vertex} out of range (lattice has {vertices} vertices)"
                )
            }
            LatticeError::TooManyVertices {
                vertices: Some(v),
                limit,
            } => write!(f, "lattice has {v} vertices, limit is {limit}"),
            LatticeError::TooManyVertices {
                vertices: None,
                limit,
            } => write!(f, "lattice vertex count overflows u64 (limit is {limit})"),
            LatticeError::EmptyKey => f.write_str("xor key must not be empty"),
            LatticeError::InvalidRounds { rounds } => {
                write!(f, "xor rounds must be in 1..=64, got {rounds}")
            }
            LatticeError::Cancelled => f.write_str("lattice operation cancelled"),
        }
    }
}

impl std::error::Error for LatticeError {}
