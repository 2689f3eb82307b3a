//! A minimal row-major `f32` matrix and the blocked `A · Bᵀ` product the metrics are built on.
//!
//! Embeddings are stored one row per item (image, caption, class), so every similarity in this
//! crate is a dot product between two rows: `scores = A · Bᵀ`. [`for_each_score_row`] computes
//! that product a block of `A`'s rows at a time (in parallel with rayon, single-threaded `gemm`
//! per block), hands each block to a callback and drops it, so a 100k × 100k retrieval never
//! materialises the full score matrix.

use crate::error::MetricsError;
use rayon::prelude::*;
use tic_kernels::gemm::{gemm, MatMut, MatRef, Parallelism, Scaling, Strides};

/// Default number of `f32` scores held by one block (4 Mi floats = 16 MiB per worker).
pub const DEFAULT_BLOCK_ELEMS: usize = 4 << 20;

/// A dense row-major `f32` matrix (`rows × cols`).
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Matrix {
    /// Wraps row-major `data` of length `rows * cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self, MetricsError> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(MetricsError::Shape(format!(
                "matrix of {rows} x {cols} needs {} values, got {}",
                rows.saturating_mul(cols),
                data.len()
            )));
        }
        Ok(Self { rows, cols, data })
    }

    /// A `rows × cols` matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// Builds a matrix from equally long rows (`cols` is needed when `rows` is empty).
    pub fn from_rows<R: AsRef<[f32]>>(rows: &[R], cols: usize) -> Result<Self, MetricsError> {
        let mut data = Vec::with_capacity(rows.len() * cols);
        for (i, r) in rows.iter().enumerate() {
            let r = r.as_ref();
            if r.len() != cols {
                return Err(MetricsError::Shape(format!(
                    "row {i} has {} values, expected {cols}",
                    r.len()
                )));
            }
            data.extend_from_slice(r);
        }
        Self::new(rows.len(), cols, data)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (the embedding dimension for embedding matrices).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The row-major values.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Consumes the matrix and returns its row-major values.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// Row `i` as a slice.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Row `i` as a mutable slice.
    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        &mut self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Fails with the first non-finite value (`what` names the matrix in the error).
    pub fn check_finite(&self, what: &str) -> Result<(), MetricsError> {
        if let Some(pos) = self.data.iter().position(|v| !v.is_finite()) {
            return Err(MetricsError::NonFinite {
                what: what.to_string(),
                row: pos / self.cols.max(1),
                col: pos % self.cols.max(1),
            });
        }
        Ok(())
    }

    /// Divides every row by `max(‖row‖₂, 1e-12)`: `torch.nn.functional.normalize(x, dim=-1)`.
    pub fn l2_normalize_rows(&mut self) {
        let cols = self.cols;
        if cols == 0 {
            return;
        }
        self.data.par_chunks_mut(cols).for_each(normalize_in_place);
    }

    /// Multiplies every value by `factor`.
    pub fn scale(&mut self, factor: f32) {
        self.data.iter_mut().for_each(|v| *v *= factor);
    }
}

/// `F.normalize` on one vector: `x / max(‖x‖₂, 1e-12)` (norm accumulated in `f64`).
pub(crate) fn normalize_in_place(x: &mut [f32]) {
    let norm = l2_norm(x).max(1e-12);
    x.iter_mut().for_each(|v| *v /= norm);
}

/// Euclidean norm, accumulated in `f64`, returned as `f32`.
pub(crate) fn l2_norm(x: &[f32]) -> f32 {
    x.iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt() as f32
}

/// Writes `a_block · bᵀ` into `out` (row-major, `a_rows × b.rows()`), where `a_block` holds
/// `a_rows` rows of `b.cols()` values. Single-threaded: callers parallelise over blocks.
pub fn matmul_nt_into(a_block: &[f32], a_rows: usize, b: &Matrix, out: &mut [f32]) {
    matmul_nt_slices(a_block, a_rows, b.data(), b.rows(), b.cols(), out);
}

/// Writes `a · bᵀ` into `out` (row-major, `a_rows × b_rows`) for row-major `a` (`a_rows × d`)
/// and `b` (`b_rows × d`). Single-threaded. The result for a given pair of slices is
/// deterministic (same call, same bits).
pub fn matmul_nt_slices(
    a: &[f32],
    a_rows: usize,
    b: &[f32],
    b_rows: usize,
    d: usize,
    out: &mut [f32],
) {
    let n = b_rows;
    assert_eq!(a.len(), a_rows * d, "lhs block shape");
    assert_eq!(b.len(), b_rows * d, "rhs block shape");
    assert_eq!(out.len(), a_rows * n, "output block shape");
    if a_rows == 0 || n == 0 {
        return;
    }
    if d == 0 {
        out.iter_mut().for_each(|v| *v = 0.0);
        return;
    }
    // SAFETY: the three buffers are valid for the strides given: `out` is a_rows × n row-major,
    // `a` is a_rows × d row-major, and `b` read as d × n with element (k, j) at b[j * d + k]
    // (Bᵀ of the row-major b_rows × d). All lengths were checked above and `out` does not
    // alias the inputs.
    unsafe {
        gemm(
            (a_rows, n, d),
            MatMut::new(out.as_mut_ptr(), Strides::row_major(n)),
            MatRef::new(a.as_ptr(), Strides::row_major(d)),
            MatRef::new(b.as_ptr(), Strides::transposed(d)),
            Scaling::product(1.0),
            Parallelism::None,
        );
    }
}

/// How many rows of `A` go into one block of `A · Bᵀ` with `b_rows` columns.
pub fn block_rows(a_rows: usize, b_rows: usize, block_elems: usize) -> usize {
    let by_memory = (block_elems / b_rows.max(1)).max(1);
    // Enough blocks to keep every rayon worker busy.
    let workers = rayon::current_num_threads().max(1);
    let by_parallelism = a_rows.div_ceil(4 * workers).max(1);
    by_memory.min(by_parallelism).min(a_rows.max(1))
}

/// Computes `scores = A · Bᵀ` one block of `A`'s rows at a time, in parallel, and calls
/// `per_row(i, scores_row_i)` for every row `i` of `A`; returns the per-row results in order.
///
/// At most `block_elems` scores per worker are alive at once, so memory stays bounded
/// whatever `A.rows() × B.rows()` is. `A` and `B` must have the same number of columns.
pub fn for_each_score_row<T, F>(
    a: &Matrix,
    b: &Matrix,
    block_elems: usize,
    per_row: F,
) -> Result<Vec<T>, MetricsError>
where
    T: Send,
    F: Fn(usize, &[f32]) -> T + Sync,
{
    if a.cols() != b.cols() {
        return Err(MetricsError::Shape(format!(
            "embedding dimensions differ: {} vs {}",
            a.cols(),
            b.cols()
        )));
    }
    let rows = a.rows();
    let n = b.rows();
    let d = a.cols();
    let br = block_rows(rows, n, block_elems);
    let blocks: Vec<Vec<T>> = (0..rows.div_ceil(br))
        .into_par_iter()
        .map_init(Vec::<f32>::new, |buf, blk| {
            let start = blk * br;
            let end = (start + br).min(rows);
            let m = end - start;
            buf.clear();
            buf.resize(m * n, 0.0);
            matmul_nt_into(&a.data()[start * d..end * d], m, b, buf);
            (0..m)
                .map(|r| per_row(start + r, &buf[r * n..(r + 1) * n]))
                .collect()
        })
        .collect();
    Ok(blocks.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_matches_naive() {
        let a = Matrix::new(3, 4, (0..12).map(|v| v as f32 * 0.5 - 2.0).collect()).unwrap();
        let b = Matrix::new(5, 4, (0..20).map(|v| (v as f32).sin()).collect()).unwrap();
        let mut out = vec![0.0; 15];
        matmul_nt_into(a.data(), 3, &b, &mut out);
        for i in 0..3 {
            for j in 0..5 {
                let want: f32 = a.row(i).iter().zip(b.row(j)).map(|(x, y)| x * y).sum();
                assert!((out[i * 5 + j] - want).abs() < 1e-5, "{i},{j}");
            }
        }
    }

    #[test]
    fn blocked_rows_cover_everything_in_order() {
        let a = Matrix::new(37, 3, (0..111).map(|v| v as f32).collect()).unwrap();
        let b = Matrix::new(2, 3, vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0]).unwrap();
        // Tiny blocks (1 row each) and one big block must agree.
        for elems in [1, 2, 7, 1 << 20] {
            let got = for_each_score_row(&a, &b, elems, |i, row| (i, row.to_vec())).unwrap();
            assert_eq!(got.len(), 37);
            for (i, (idx, row)) in got.iter().enumerate() {
                assert_eq!(*idx, i);
                assert_eq!(row, &vec![a.row(i)[0], a.row(i)[2]]);
            }
        }
    }

    #[test]
    fn normalize_matches_torch_semantics() {
        let mut m = Matrix::new(2, 2, vec![3.0, 4.0, 0.0, 0.0]).unwrap();
        m.l2_normalize_rows();
        assert_eq!(m.row(0), &[0.6, 0.8]);
        // Zero rows stay zero (eps clamp) instead of becoming NaN.
        assert_eq!(m.row(1), &[0.0, 0.0]);
    }

    #[test]
    fn shape_and_finiteness_errors() {
        assert!(Matrix::new(2, 2, vec![0.0; 3]).is_err());
        let m = Matrix::new(2, 2, vec![0.0, 1.0, f32::NAN, 0.0]).unwrap();
        let err = m.check_finite("image features").unwrap_err().to_string();
        assert!(
            err.contains("image features") && err.contains("row 1"),
            "{err}"
        );
        let a = Matrix::zeros(2, 3);
        let b = Matrix::zeros(2, 4);
        assert!(for_each_score_row(&a, &b, 16, |_, _| ()).is_err());
    }
}
