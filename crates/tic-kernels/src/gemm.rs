//! One typed front for the `gemm` crate's f32 matrix product (`gemm::gemm`, 19 positional
//! arguments: dimensions, three pointers with their column and row strides, `read_dst`, the
//! scaling factors, three conjugation flags and the threading). Every GEMM of the kernels goes
//! through [`gemm`] here, so that the strides of row-major and transposed operands, the
//! accumulate-or-overwrite choice and the threading are spelled once, by name.
//!
//! The wrapper passes exactly what it is given (no conjugation; `read_dst` only when
//! accumulating): a call through it computes the same bits as the raw call it replaces.

pub use ::gemm::Parallelism;

/// The strides, in elements, of a matrix view: the step between two columns of a row and the
/// step between two rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strides {
    /// Elements between `(i, j)` and `(i, j + 1)`.
    pub col: usize,
    /// Elements between `(i, j)` and `(i + 1, j)`.
    pub row: usize,
}

impl Strides {
    /// Rows `row_stride` elements apart with adjacent columns: a row-major matrix, or a block
    /// of columns of a wider one (e.g. one head of packed `qkv`).
    pub const fn row_major(row_stride: usize) -> Self {
        Self {
            col: 1,
            row: row_stride,
        }
    }

    /// The transpose of a row-major matrix whose rows are `row_stride` elements apart: row `i`
    /// of the view is column `i` of the stored matrix (e.g. `Wᵀ` of a `[out, in]` weight).
    pub const fn transposed(row_stride: usize) -> Self {
        Self {
            col: row_stride,
            row: 1,
        }
    }
}

/// A read-only strided matrix operand.
#[derive(Debug, Clone, Copy)]
pub struct MatRef {
    /// The element `(0, 0)`.
    pub ptr: *const f32,
    /// How the other elements lie from it.
    pub strides: Strides,
}

impl MatRef {
    /// The view at `ptr` with `strides`.
    pub const fn new(ptr: *const f32, strides: Strides) -> Self {
        Self { ptr, strides }
    }
}

/// The strided destination of a product.
#[derive(Debug, Clone, Copy)]
pub struct MatMut {
    /// The element `(0, 0)`.
    pub ptr: *mut f32,
    /// How the other elements lie from it.
    pub strides: Strides,
}

impl MatMut {
    /// The view at `ptr` with `strides`.
    pub const fn new(ptr: *mut f32, strides: Strides) -> Self {
        Self { ptr, strides }
    }
}

/// How the product is written: `dst = beta · lhs · rhs`, or with `accumulate = Some(alpha)`,
/// `dst = alpha · dst + beta · lhs · rhs`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scaling {
    /// `Some(alpha)`: the destination is read and scaled by `alpha`; `None`: it is only
    /// written (it may be uninitialised).
    pub accumulate: Option<f32>,
    /// The product's factor.
    pub beta: f32,
}

impl Scaling {
    /// `dst = beta · lhs · rhs` (the destination is not read).
    pub const fn product(beta: f32) -> Self {
        Self {
            accumulate: None,
            beta,
        }
    }

    /// `dst = alpha · dst + beta · lhs · rhs`.
    pub const fn accumulate(alpha: f32, beta: f32) -> Self {
        Self {
            accumulate: Some(alpha),
            beta,
        }
    }
}

/// `dst[m×n] (=|+=) lhs[m×k] · rhs[k×n]` as `scaling` says, on strided views (`dims` = (m, n,
/// k)), threaded as `parallelism` says.
///
/// # Safety
/// `lhs` and `rhs` must be valid for reads over their strided `m×k` and `k×n` extents, `dst`
/// for writes (and reads, when accumulating) over its `m×n` extent, and `dst` must not overlap
/// the operands.
pub unsafe fn gemm(
    (m, n, k): (usize, usize, usize),
    dst: MatMut,
    lhs: MatRef,
    rhs: MatRef,
    scaling: Scaling,
    parallelism: Parallelism,
) {
    // SAFETY: per this function's contract.
    unsafe {
        ::gemm::gemm(
            m,
            n,
            k,
            dst.ptr,
            dst.strides.col as isize,
            dst.strides.row as isize,
            scaling.accumulate.is_some(),
            lhs.ptr,
            lhs.strides.col as isize,
            lhs.strides.row as isize,
            rhs.ptr,
            rhs.strides.col as isize,
            rhs.strides.row as isize,
            scaling.accumulate.unwrap_or(0.0),
            scaling.beta,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a[m×k] · b[k×n]` by the definition, in f64, for row-major slices.
    fn reference(a: &[f32], b: &[f32], (m, n, k): (usize, usize, usize)) -> Vec<f64> {
        (0..m * n)
            .map(|ij| {
                let (i, j) = (ij / n, ij % n);
                (0..k)
                    .map(|p| a[i * k + p] as f64 * b[p * n + j] as f64)
                    .sum()
            })
            .collect()
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 37 + seed * 11) % 23) as f32 / 7.0 - 1.5)
            .collect()
    }

    fn assert_close(got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!(
                (*g as f64 - w).abs() <= 1e-4 * w.abs().max(1.0),
                "{g} vs {w}"
            );
        }
    }

    #[test]
    fn row_major_transposed_and_accumulated_products_match_the_definition() {
        let (m, n, k) = (5, 7, 9);
        let a = values(m * k, 1);
        let b = values(k * n, 2);
        let want = reference(&a, &b, (m, n, k));
        // b stored transposed (`[n, k]`, as a weight is) and read through `transposed`.
        let bt: Vec<f32> = (0..n * k).map(|jp| b[(jp % k) * n + jp / k]).collect();
        for (rhs, strides) in [(&b, Strides::row_major(n)), (&bt, Strides::transposed(k))] {
            for par in [Parallelism::None, Parallelism::Rayon(2)] {
                let mut out = vec![f32::NAN; m * n];
                // SAFETY: every view lies inside its buffer; `out` is a separate buffer.
                unsafe {
                    gemm(
                        (m, n, k),
                        MatMut::new(out.as_mut_ptr(), Strides::row_major(n)),
                        MatRef::new(a.as_ptr(), Strides::row_major(k)),
                        MatRef::new(rhs.as_ptr(), strides),
                        Scaling::product(1.0),
                        par,
                    )
                };
                // The destination's NaNs were not read.
                assert_close(&out, &want);
            }
        }
        // out = 2·out + 0.5·a·b, with out = 1 beforehand.
        let mut out = vec![1f32; m * n];
        // SAFETY: as above.
        unsafe {
            gemm(
                (m, n, k),
                MatMut::new(out.as_mut_ptr(), Strides::row_major(n)),
                MatRef::new(a.as_ptr(), Strides::row_major(k)),
                MatRef::new(b.as_ptr(), Strides::row_major(n)),
                Scaling::accumulate(2.0, 0.5),
                Parallelism::None,
            )
        };
        let scaled: Vec<f64> = want.iter().map(|w| 2.0 + 0.5 * w).collect();
        assert_close(&out, &scaled);
    }

    #[test]
    fn the_same_bits_as_the_raw_call() {
        // `a · bᵀ` for row-major `a` [m×k] and `b` [n×k], single-threaded (tic-eval's scores).
        let (m, n, k) = (6, 4, 33);
        let (a, b) = (values(m * k, 3), values(n * k, 4));
        let (mut raw, mut typed) = (vec![0f32; m * n], vec![0f32; m * n]);
        // SAFETY: every view lies inside its buffer; the outputs are separate buffers.
        unsafe {
            ::gemm::gemm(
                m,
                n,
                k,
                raw.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                k as isize,
                b.as_ptr(),
                k as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            );
            gemm(
                (m, n, k),
                MatMut::new(typed.as_mut_ptr(), Strides::row_major(n)),
                MatRef::new(a.as_ptr(), Strides::row_major(k)),
                MatRef::new(b.as_ptr(), Strides::transposed(k)),
                Scaling::product(1.0),
                Parallelism::None,
            );
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&typed), bits(&raw));
    }
}
