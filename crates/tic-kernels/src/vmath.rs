//! Vectorised f32 element-wise math for the fused CPU kernels: `exp`, exact-GELU and the
//! row softmax, written as branch-free straight-line code that the compiler turns into
//! AVX-512 / AVX2 loops, with one clone per instruction set picked at run time
//! (`multiversion`), so a generic x86-64 build still runs 16-wide on AVX-512 machines.
//! (`multiversion`'s own `"simd"` target list leaves AVX-512 out, hence the explicit list.)
//!
//! Accuracy: `exp` is the Cephes single-precision polynomial (≤ 2 ulp on the range used);
//! GELU uses the Abramowitz–Stegun 7.1.26 `erf` (absolute error ≤ 1.5e-7), the same
//! approximation as PyTorch's vectorised CPU GELU.

use multiversion::multiversion;

/// Compiles the function once per instruction set below, picked at run time (the one target
/// list for every dispatched function here).
macro_rules! dispatched {
    ($f:item) => {
        #[multiversion(targets(
            "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
            "x86_64+avx2+fma",
            "aarch64+neon"
        ))]
        $f
    };
}

/// Lanes of the hand-split accumulators (one AVX-512 register of f32).
const LANES: usize = 16;

/// `e^x` for `x ≤ 88.3` (0 below −87.3, where the f32 result would be denormal); `-inf` → 0.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that n·ln2 is exact in the first part.
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    // Round to nearest via the 1.5·2^23 trick (|x·log2e| < 2^22 after the clamp).
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(-87.3, 88.3);
    let shifted = xc * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = xc - n * C1 - n * C2;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n from the integer n held in the low mantissa bits of `shifted` (integer ops only,
    // which vectorise; a float-to-int cast would not).
    let n_int = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(n_int.wrapping_add(127) << 23);
    if x < -87.3 {
        0.0
    } else {
        y * scale
    }
}

/// `(1 + erf(x/√2), e^(−x²/2))` with the A&S 7.1.26 `erf` (`erfc(|z|) = poly(t)·e^(−z²)` for
/// `z = x/√2`): what GELU and its derivative are made of.
#[inline(always)]
fn one_plus_erf_and_gauss(x: f32) -> (f32, f32) {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_74;
    const A3: f32 = 1.421_413_7;
    const A4: f32 = -1.453_152;
    const A5: f32 = 1.061_405_4;
    let z = (x * std::f32::consts::FRAC_1_SQRT_2).abs();
    let t = 1.0 / (1.0 + P * z);
    let poly = ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t;
    let e = exp(-z * z);
    // erfc(|z|) = poly · e^(−z²); 1 + erf(x/√2) is 2 − erfc for x ≥ 0 and erfc for x < 0.
    let erfc = poly * e;
    (if x < 0.0 { erfc } else { 2.0 - erfc }, e)
}

/// Exact (erf) GELU, `0.5·x·(1 + erf(x/√2))`, with the A&S 7.1.26 `erf`.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * one_plus_erf_and_gauss(x).0
}

/// The derivative of [`gelu`], `Φ(x) + x·φ(x)`, with the same `erf` approximation.
#[inline(always)]
pub fn gelu_grad(x: f32) -> f32 {
    // 1/√(2π)
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let (one_plus_erf, e) = one_plus_erf_and_gauss(x);
    0.5 * one_plus_erf + x * e * INV_SQRT_2PI
}

dispatched! {
    /// `g ·= gelu'(pre)`, element by element: the gradient through GELU of its input `pre`.
    pub fn gelu_backward(pre: &[f32], g: &mut [f32]) {
        for (g, &p) in g.iter_mut().zip(pre) {
            *g *= gelu_grad(p);
        }
    }
}

dispatched! {
    /// Adds `bias` (length `n`) to every `n`-wide row of `rows`, then applies GELU with `gelu`.
    pub fn bias_gelu_rows(rows: &mut [f32], n: usize, bias: Option<&[f32]>, gelu_after: bool) {
        for row in rows.chunks_exact_mut(n) {
            match (bias, gelu_after) {
                (Some(b), true) => {
                    for (y, b) in row.iter_mut().zip(b) {
                        *y = gelu(*y + b);
                    }
                }
                (Some(b), false) => {
                    for (y, b) in row.iter_mut().zip(b) {
                        *y += b;
                    }
                }
                (None, true) => {
                    for y in row.iter_mut() {
                        *y = gelu(*y);
                    }
                }
                (None, false) => {}
            }
        }
    }
}

dispatched! {
    /// In-place `e^(x − max)` of one score row (after adding `mask` if given); returns the sum
    /// of the exponentials, by which the caller divides (softmax = row / sum).
    pub fn exp_shifted_row(row: &mut [f32], mask: Option<&[f32]>) -> f32 {
        if let Some(m) = mask {
            for (x, m) in row.iter_mut().zip(m) {
                *x += m;
            }
        }
        // Lane-wise accumulators so that the reductions vectorise (no reassociation otherwise).
        let mut acc = [f32::NEG_INFINITY; LANES];
        let mut chunks = row.chunks_exact(LANES);
        for c in &mut chunks {
            for (a, x) in acc.iter_mut().zip(c) {
                *a = a.max(*x);
            }
        }
        let max = chunks
            .remainder()
            .iter()
            .chain(&acc)
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        // A fully masked row stays all-zero (sum 0) rather than NaN.
        let shift = if max == f32::NEG_INFINITY { 0.0 } else { max };
        let mut sums = [0f32; LANES];
        let mut chunks = row.chunks_exact_mut(LANES);
        for c in &mut chunks {
            for (s, x) in sums.iter_mut().zip(c.iter_mut()) {
                *x = exp(*x - shift);
                *s += *x;
            }
        }
        let mut sum: f32 = 0.0;
        for x in chunks.into_remainder() {
            *x = exp(*x - shift);
            sum += *x;
        }
        sum + sums.iter().sum::<f32>()
    }
}

dispatched! {
    /// `acc += row` for every `acc.len()`-wide row of `rows`, element by element (the partial
    /// column sums of a bias gradient).
    pub fn add_rows(acc: &mut [f32], rows: &[f32]) {
        for row in rows.chunks_exact(acc.len()) {
            for (a, &r) in acc.iter_mut().zip(row) {
                *a += r;
            }
        }
    }
}

dispatched! {
    /// `x ·= s`.
    pub fn scale(x: &mut [f32], s: f32) {
        for v in x {
            *v *= s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_to_a_few_ulp() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp(x), x.exp());
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 3e-7, "max relative error {worst}");
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn gelu_matches_exact_erf_gelu() {
        let exact = |x: f32| {
            let x = x as f64;
            0.5 * x * (1.0 + libm_erf(x / std::f64::consts::SQRT_2))
        };
        let mut worst = 0f64;
        let mut x = -12.0f32;
        while x < 12.0 {
            worst = worst.max((gelu(x) as f64 - exact(x)).abs() / (x.abs() as f64).max(1.0));
            x += 0.001;
        }
        assert!(worst < 2e-7, "max error {worst}");
        assert_eq!(gelu(0.0), 0.0);
    }

    /// erf in f64 by its Taylor series (|x| < 3) or continued fraction (erfc, |x| ≥ 3).
    fn libm_erf(x: f64) -> f64 {
        let a = x.abs();
        let v = if a < 3.0 {
            let (mut term, mut sum, mut n) = (a, a, 0.0);
            while term.abs() > 1e-17 * sum.abs() {
                n += 1.0;
                term *= -a * a / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let mut f = 0.0;
            for k in (1..60).rev() {
                f = (k as f64 / 2.0) / (a + f);
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + f)
        };
        v.copysign(x)
    }

    #[test]
    fn softmax_row_parts_match_the_plain_softmax() {
        for len in [1usize, 7, 16, 197, 300] {
            let row: Vec<f32> = (0..len)
                .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.7)
                .collect();
            let mask: Vec<f32> = (0..len)
                .map(|i| if i % 3 == 2 { f32::NEG_INFINITY } else { 0.0 })
                .collect();
            for m in [None, Some(&mask[..])] {
                let mut got = row.clone();
                let sum = exp_shifted_row(&mut got, m);
                let masked: Vec<f32> = match m {
                    Some(m) => row.iter().zip(m).map(|(a, b)| a + b).collect(),
                    None => row.clone(),
                };
                let max = masked.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = masked.iter().map(|x| (x - max).exp()).collect();
                let want_sum: f32 = e.iter().sum();
                assert!((sum - want_sum).abs() < 1e-5 * want_sum, "{len}");
                for (g, w) in got.iter().zip(&e) {
                    assert!((g - w).abs() < 1e-6, "{len}: {g} vs {w}");
                }
            }
        }
        let mut all_masked = vec![f32::NEG_INFINITY; 5];
        assert_eq!(exp_shifted_row(&mut all_masked, None), 0.0);
    }
}
