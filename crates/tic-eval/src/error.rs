//! The error of the embedding matrices and the metrics built on them ([`crate::matrix`],
//! [`crate::metrics`]): bad shapes, labels or values. It lives below both, so that the matrix
//! can raise it without depending on the metrics that are built on the matrix.

/// Errors from matrix and metric computations (bad shapes, labels or values).
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Matrices or label vectors whose sizes do not fit together.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A NaN or infinite value in an input.
    #[error("{what}: non-finite value at row {row}, column {col}")]
    NonFinite {
        /// Which input (e.g. "image features").
        what: String,
        /// Row of the first bad value.
        row: usize,
        /// Column of the first bad value.
        col: usize,
    },
    /// A class id outside `0..num_classes`, or a caption pointing at a missing image.
    #[error("{what} {index}: id {id} is outside 0..{limit}")]
    IdOutOfRange {
        /// What carries the bad id (e.g. "sample", "caption").
        what: &'static str,
        /// Position of the offending item.
        index: usize,
        /// The bad id.
        id: usize,
        /// The exclusive upper bound.
        limit: usize,
    },
    /// A sample's `npy` metadata that a group evaluator cannot use (missing, too short,
    /// a negative group value).
    #[error("sample {index}: {reason}")]
    Metadata {
        /// Position of the sample in the set.
        index: usize,
        /// What is wrong with its metadata.
        reason: String,
    },
    /// An input that must not be empty.
    #[error("empty input: {0}")]
    Empty(String),
}
