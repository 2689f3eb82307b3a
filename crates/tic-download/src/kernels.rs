//! The pixel loops that dominate a download's CPU time (the face blur's two Gaussian passes,
//! the area resize's weighted sums), written so the compiler vectorises them across pixels, and
//! compiled once per instruction set picked at run time (`multiversion`), so a generic x86-64
//! build runs AVX2 / AVX-512 where the machine has it.
//!
//! Exactness: every output is the same sequence of float operations as the scalar definition
//! it replaces (each sum starts at `0.0` and adds `x·w` over the taps in order, one rounding for
//! the product and one for the sum: Rust never fuses them into an FMA), only many outputs at a
//! time; so the results are bit-identical to the scalar code, and through it to OpenCV's.

use multiversion::multiversion;

/// Outputs computed together by the convolutions: a few vector registers' worth, so the
/// accumulators stay in registers across the taps.
pub const CHUNK: usize = 32;

/// `out[i] = Σ_k rows[k][i]·kernel[k]` (summed in `k` order from `0.0`): one pass of a
/// separable filter — vertical with `rows` the source rows each tap reads, horizontal with
/// `rows[k]` the padded row shifted by `k`. `out.len()` must be a multiple of [`CHUNK`] and
/// every row at least as long.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
pub fn correlate(rows: &[&[f32]], kernel: &[f32], out: &mut [f32]) {
    assert!(out.len() % CHUNK == 0 && rows.len() == kernel.len());
    for (ci, chunk) in out.chunks_exact_mut(CHUNK).enumerate() {
        let base = ci * CHUNK;
        let mut acc = [0f32; CHUNK];
        for (row, &kv) in rows.iter().zip(kernel) {
            let s: &[f32; CHUNK] = row[base..base + CHUNK].try_into().unwrap();
            for (a, &v) in acc.iter_mut().zip(s) {
                *a += v * kv;
            }
        }
        chunk.copy_from_slice(&acc);
    }
}

/// `sum[i] = beta·buf[i]` (`first`) or `sum[i] += beta·buf[i]`: one source row's share of
/// the area resize's output row.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
pub fn scale_add(sum: &mut [f32], buf: &[f32], beta: f32, first: bool) {
    if first {
        for (s, &b) in sum.iter_mut().zip(buf) {
            *s = beta * b;
        }
    } else {
        for (s, &b) in sum.iter_mut().zip(buf) {
            *s += beta * b;
        }
    }
}

/// OpenCV's `saturate_cast<uchar>(float)`: round half to even, clamp to `0..=255` (NaN → 0).
///
/// Clamping first and rounding after gives the same result (the bounds are integers). The
/// rounding adds 1.5·2²³, which in the default rounding mode rounds a float in `[0, 255]` to the
/// nearest integer, ties to even, held in the low mantissa bits: branch-free integer and float
/// operations that vectorise (`round_ties_even` is a libm call before SSE4.1).
#[inline(always)]
pub fn sat_u8(v: f32) -> u8 {
    const ROUND: f32 = 12_582_912.0;
    let clamped = if v > 0.0 { v.min(255.0) } else { 0.0 };
    (clamped + ROUND).to_bits() as u8
}

/// `dst[i] = sat_u8(src[i])`.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
pub fn round_to_bytes(src: &[f32], dst: &mut [u8]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = sat_u8(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32
            })
            .collect()
    }

    #[test]
    fn sat_u8_rounds_half_to_even_and_saturates() {
        for (v, want) in [
            (-3.0, 0),
            (-0.4, 0),
            (0.5, 0),
            (1.5, 2),
            (2.5, 2),
            (2.500_001, 3),
            (254.5, 254),
            (255.49, 255),
            (300.0, 255),
            (f32::NAN, 0),
            (f32::INFINITY, 255),
        ] {
            assert_eq!(sat_u8(v), want, "{v}");
        }
        for i in 0..=4000 {
            let v = i as f32 * 0.0703;
            assert_eq!(
                sat_u8(v),
                v.round_ties_even().clamp(0.0, 255.0) as u8,
                "{v}"
            );
        }
    }

    #[test]
    fn correlate_equals_the_scalar_sum_bit_for_bit() {
        let kernel = pseudo(9, 3);
        let data: Vec<Vec<f32>> = (0..9).map(|k| pseudo(CHUNK, 10 + k)).collect();
        let rows: Vec<&[f32]> = data.iter().map(|r| r.as_slice()).collect();
        let mut out = vec![0f32; CHUNK];
        correlate(&rows, &kernel, &mut out);
        for (i, o) in out.iter().enumerate() {
            let mut s = 0f32;
            for (k, kv) in kernel.iter().enumerate() {
                s += data[k][i] * kv;
            }
            assert_eq!(o.to_bits(), s.to_bits(), "output {i}");
        }
    }
}
