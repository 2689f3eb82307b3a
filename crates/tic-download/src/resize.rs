//! OpenCV's `cv2.resize` for 8-bit images, as img2dataset 1.40 calls it (through
//! albumentations' `longest_max_size` / `smallest_max_size`): `INTER_AREA` when shrinking,
//! `INTER_LANCZOS4` when enlarging.
//!
//! `INTER_AREA` is ported from OpenCV's `resize.cpp` operation for operation, because a generic
//! box or Lanczos resampler (`fast_image_resize`, `image`) weighs the cells differently and lands
//! several grey levels away: integer factors take `resizeAreaFast` (the 2×2 case rounds
//! `(sum + 2) >> 2`, the others `cvRound(sum * (1.f / area))`), other factors `resizeArea_`
//! (`computeResizeAreaTab`'s float weights, rows accumulated in `f32` in OpenCV's order, then
//! rounded half to even). Lanczos-4 follows OpenCV's fixed-point `resizeGeneric` (11-bit
//! coefficients, replicated borders); upscaling happens only with `--no_resize_only_if_bigger`.

use crate::kernels::{round_to_bytes, sat_u8, scale_add};

/// An 8-bit image, channels interleaved (1 = grey, 3 = colour), rows packed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Channels per pixel (1 or 3).
    pub channels: usize,
    /// `height * width * channels` bytes.
    pub data: Vec<u8>,
}

#[cfg(test)]
impl Image {
    /// A deterministic pseudo-random image (the tests' input for comparing two implementations).
    pub(crate) fn noise(width: usize, height: usize, channels: usize, seed: u64) -> Self {
        let mut s = seed;
        let data = (0..width * height * channels)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (s >> 56) as u8
            })
            .collect();
        Image {
            width,
            height,
            channels,
            data,
        }
    }
}

/// Python 3's `round` (half to even) of a non-negative float, as albumentations' `py3round`.
fn py3round(x: f64) -> usize {
    x.round_ties_even() as usize
}

/// The size albumentations' `longest_max_size(img, max_size)` (`largest = true`) or
/// `smallest_max_size` resizes `(width, height)` to.
pub fn max_size_dims(width: usize, height: usize, max_size: u32, largest: bool) -> (usize, usize) {
    let side = if largest {
        width.max(height)
    } else {
        width.min(height)
    };
    let scale = max_size as f64 / side as f64;
    if scale == 1.0 {
        return (width, height);
    }
    (
        py3round(width as f64 * scale).max(1),
        py3round(height as f64 * scale).max(1),
    )
}

/// `cv2.resize(img, (w, h), interpolation)`: area when both sides shrink (or stay), Lanczos-4
/// otherwise (img2dataset picks area for downscaling and Lanczos for upscaling; OpenCV's area
/// filter itself falls back to linear when enlarging, which img2dataset never asks for).
pub fn resize(img: &Image, w: usize, h: usize, area: bool) -> Image {
    if w == img.width && h == img.height {
        return img.clone();
    }
    if area && w <= img.width && h <= img.height {
        resize_area(img, w, h)
    } else {
        resize_lanczos4(img, w, h)
    }
}

/// OpenCV's `INTER_AREA` for shrinking.
pub fn resize_area(img: &Image, w: usize, h: usize) -> Image {
    let scale_x = 1.0 / (w as f64 / img.width as f64);
    let scale_y = 1.0 / (h as f64 / img.height as f64);
    let (ix, iy) = (scale_x.round() as usize, scale_y.round() as usize);
    if (scale_x - ix as f64).abs() < f64::EPSILON && (scale_y - iy as f64).abs() < f64::EPSILON {
        return resize_area_fast(img, w, h, ix, iy);
    }
    let xtab = area_tab(img.width, w, scale_x);
    let ytab = area_tab(img.height, h, scale_y);
    let cn = img.channels;
    let spans = tab_spans(&xtab, w);
    let mut out = vec![0u8; w * h * cn];
    let mut buf = vec![0f32; w * cn];
    let mut sum = vec![0f32; w * cn];
    let mut prev_dy = ytab[0].0;
    let mut buf_row = None;
    let row = img.width * cn;
    // The source row as floats (the conversion is exact; done once, not once per tap).
    let mut src = vec![0f32; row];
    for &(dy, sy, beta) in &ytab {
        // A source row on a cell border serves two output rows: its sums are computed once.
        if buf_row != Some(sy) {
            for (f, &v) in src.iter_mut().zip(&img.data[sy * row..(sy + 1) * row]) {
                *f = v as f32;
            }
            match cn {
                1 => area_row::<1>(&src, &xtab, &spans, &mut buf),
                3 => area_row::<3>(&src, &xtab, &spans, &mut buf),
                _ => area_row_any(&src, cn, &xtab, &mut buf),
            }
            buf_row = Some(sy);
        }
        if dy != prev_dy {
            round_to_bytes(&sum, &mut out[prev_dy * w * cn..(prev_dy + 1) * w * cn]);
            prev_dy = dy;
            scale_add(&mut sum, &buf, beta, true);
        } else {
            scale_add(&mut sum, &buf, beta, false);
        }
    }
    round_to_bytes(&sum, &mut out[prev_dy * w * cn..(prev_dy + 1) * w * cn]);
    Image {
        width: w,
        height: h,
        channels: cn,
        data: out,
    }
}

/// Where each destination column's entries start and end in an [`area_tab`] (its entries are
/// grouped by destination, in source order).
fn tab_spans(tab: &[(usize, usize, f32)], dsize: usize) -> Vec<(usize, usize)> {
    let mut spans = vec![(0, 0); dsize];
    for (i, &(d, _, _)) in tab.iter().enumerate() {
        if spans[d].1 == 0 {
            spans[d].0 = i;
        }
        spans[d].1 = i + 1;
    }
    spans
}

/// One source row's horizontal area sums: `buf[dx·CN + c] = Σ src[sx·CN + c]·alpha` over
/// `dx`'s table entries in order, from `0.0` (OpenCV's `buf[dxn] += S[sxn]*alpha`), with the
/// channel count known at compile time.
fn area_row<const CN: usize>(
    src: &[f32],
    tab: &[(usize, usize, f32)],
    spans: &[(usize, usize)],
    buf: &mut [f32],
) {
    for (out, &(a, b)) in buf.chunks_exact_mut(CN).zip(spans) {
        let mut acc = [0f32; CN];
        for &(_, sx, alpha) in &tab[a..b] {
            let px: &[f32; CN] = src[sx * CN..sx * CN + CN].try_into().unwrap();
            for (s, &v) in acc.iter_mut().zip(px) {
                *s += v * alpha;
            }
        }
        out.copy_from_slice(&acc);
    }
}

/// [`area_row`] for any channel count.
fn area_row_any(src: &[f32], cn: usize, tab: &[(usize, usize, f32)], buf: &mut [f32]) {
    buf.fill(0.0);
    for &(dx, sx, alpha) in tab {
        for c in 0..cn {
            buf[dx * cn + c] += src[sx * cn + c] * alpha;
        }
    }
}

/// OpenCV's `computeResizeAreaTab`: `(dst index, src index, weight)` triples.
fn area_tab(ssize: usize, dsize: usize, scale: f64) -> Vec<(usize, usize, f32)> {
    let mut tab = Vec::with_capacity(ssize * 2);
    for dx in 0..dsize {
        let fsx1 = dx as f64 * scale;
        let fsx2 = fsx1 + scale;
        let cell = scale.min(ssize as f64 - fsx1);
        let mut sx2 = fsx2.floor() as i64;
        sx2 = sx2.min(ssize as i64 - 1);
        let sx1 = (fsx1.ceil() as i64).min(sx2);
        if sx1 as f64 - fsx1 > 1e-3 {
            tab.push((dx, (sx1 - 1) as usize, ((sx1 as f64 - fsx1) / cell) as f32));
        }
        for sx in sx1..sx2 {
            tab.push((dx, sx as usize, (1.0 / cell) as f32));
        }
        if fsx2 - sx2 as f64 > 1e-3 {
            let a = (fsx2 - sx2 as f64).min(1.0).min(cell) / cell;
            tab.push((dx, sx2 as usize, a as f32));
        }
    }
    tab
}

/// OpenCV's `resizeAreaFast` (integer factors `ix` × `iy`).
fn resize_area_fast(img: &Image, w: usize, h: usize, ix: usize, iy: usize) -> Image {
    let cn = img.channels;
    let row = img.width * cn;
    let mut out = vec![0u8; w * h * cn];
    let area = ix * iy;
    let scale = 1.0f32 / area as f32;
    let two_by_two = ix == 2 && iy == 2;
    for dy in 0..h {
        for dx in 0..w {
            for c in 0..cn {
                let mut s = 0u32;
                for ky in 0..iy {
                    let base = (dy * iy + ky) * row + (dx * ix) * cn + c;
                    for kx in 0..ix {
                        s += img.data[base + kx * cn] as u32;
                    }
                }
                out[(dy * w + dx) * cn + c] = if two_by_two {
                    ((s + 2) >> 2) as u8
                } else {
                    sat_u8(s as f32 * scale)
                };
            }
        }
    }
    Image {
        width: w,
        height: h,
        channels: cn,
        data: out,
    }
}

/// Bits of OpenCV's fixed-point resize coefficients (`INTER_RESIZE_COEF_BITS`).
const COEF_BITS: u32 = 11;

/// OpenCV's `interpolateLanczos4`: the 8 weights for fractional offset `fx`, normalised.
fn lanczos4_coeffs(fx: f32) -> [f32; 8] {
    const S45: f64 = std::f64::consts::FRAC_1_SQRT_2;
    const CS: [[f64; 2]; 8] = [
        [1.0, 0.0],
        [-S45, -S45],
        [0.0, 1.0],
        [S45, -S45],
        [-1.0, 0.0],
        [S45, S45],
        [0.0, -1.0],
        [-S45, S45],
    ];
    let mut c = [0f32; 8];
    if fx < f32::EPSILON {
        c[3] = 1.0;
        return c;
    }
    let pi4 = std::f64::consts::PI / 4.0;
    let x = fx as f64 + 3.0;
    let y0 = -x * pi4;
    let (s0, c0) = y0.sin_cos();
    let mut sum = 0.0f64;
    for (i, cs) in CS.iter().enumerate() {
        let y = -(x - i as f64) * pi4;
        let v = (cs[0] * s0 + cs[1] * c0) / (y * y);
        c[i] = v as f32;
        sum += v;
    }
    let inv = 1.0 / sum;
    for v in &mut c {
        *v = (*v as f64 * inv) as f32;
    }
    c
}

/// Per destination index: the first of 8 source taps (before clamping) and the fixed-point
/// weights, as OpenCV's `resize` builds `xofs`/`ialpha` for `INTER_LANCZOS4`.
fn lanczos4_tab(ssize: usize, dsize: usize) -> Vec<(i64, [i32; 8])> {
    let scale = 1.0 / (dsize as f64 / ssize as f64);
    (0..dsize)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let s = f.floor();
            let coeffs = lanczos4_coeffs(f - s);
            let mut w = [0i32; 8];
            for (wi, ci) in w.iter_mut().zip(coeffs) {
                *wi = (ci * (1 << COEF_BITS) as f32).round_ties_even() as i32;
            }
            (s as i64 - 3, w)
        })
        .collect()
}

/// OpenCV's fixed-point `INTER_LANCZOS4` (replicated borders).
pub fn resize_lanczos4(img: &Image, w: usize, h: usize) -> Image {
    let cn = img.channels;
    let xtab = lanczos4_tab(img.width, w);
    let ytab = lanczos4_tab(img.height, h);
    let clamp = |i: i64, n: usize| i.clamp(0, n as i64 - 1) as usize;
    // Horizontal pass into i32 rows (one per source row), then the vertical pass.
    let mut rows = vec![0i32; img.height * w * cn];
    for sy in 0..img.height {
        let src = &img.data[sy * img.width * cn..(sy + 1) * img.width * cn];
        for (dx, (x0, wx)) in xtab.iter().enumerate() {
            for c in 0..cn {
                let mut s = 0i32;
                for (k, wk) in wx.iter().enumerate() {
                    s += src[clamp(x0 + k as i64, img.width) * cn + c] as i32 * wk;
                }
                rows[(sy * w + dx) * cn + c] = s;
            }
        }
    }
    let mut out = vec![0u8; w * h * cn];
    let shift = COEF_BITS * 2;
    for (dy, (y0, wy)) in ytab.iter().enumerate() {
        for i in 0..w * cn {
            let mut s = 0i64;
            for (k, wk) in wy.iter().enumerate() {
                s += rows[clamp(y0 + k as i64, img.height) * w * cn + i] as i64 * *wk as i64;
            }
            out[dy * w * cn + i] = ((s + (1 << (shift - 1))) >> shift).clamp(0, 255) as u8;
        }
    }
    Image {
        width: w,
        height: h,
        channels: cn,
        data: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(width: usize, height: usize, f: impl Fn(usize, usize) -> u8) -> Image {
        let data = (0..height)
            .flat_map(|y| (0..width).map(move |x| (x, y)))
            .map(|(x, y)| f(x, y))
            .collect();
        Image {
            width,
            height,
            channels: 1,
            data,
        }
    }

    #[test]
    fn longest_side_rounds_half_to_even() {
        assert_eq!(max_size_dims(1024, 768, 512, true), (512, 384));
        // 1000 x 625 → scale 0.512: 625 * 0.512 = 320.0
        assert_eq!(max_size_dims(1000, 625, 512, true), (512, 320));
        // 1024 x 5 → 2.5 → 2 (half to even)
        assert_eq!(max_size_dims(1024, 5, 512, true), (512, 2));
        assert_eq!(max_size_dims(300, 200, 512, false), (768, 512));
    }

    #[test]
    fn area_two_by_two_rounds_half_up() {
        let img = grey(2, 2, |x, y| [[1, 2], [2, 1]][y][x]);
        // sum 6 → (6 + 2) >> 2 = 2 (cvRound(1.5) would give 2 too); sum 2+... check 1,1,1,3
        assert_eq!(resize_area(&img, 1, 1).data, vec![2]);
        let img = grey(2, 2, |x, y| [[1, 1], [1, 3]][y][x]);
        assert_eq!(resize_area(&img, 1, 1).data, vec![2]); // 6/4 = 1.5 → 2
        let img = grey(2, 2, |x, y| [[0, 1], [0, 1]][y][x]);
        assert_eq!(resize_area(&img, 1, 1).data, vec![1]); // (2 + 2) >> 2 = 1, cvRound(0.5) = 0
    }

    #[test]
    fn area_non_integer_preserves_constant_and_mean() {
        let img = grey(7, 5, |_, _| 200);
        let out = resize_area(&img, 3, 2);
        assert!(out.data.iter().all(|&v| v == 200), "{:?}", out.data);
        // A horizontal ramp keeps its order after a 3:2 shrink.
        let img = grey(3, 1, |x, _| [0, 90, 180][x]);
        let out = resize_area(&img, 2, 1);
        // cells [0, 1.5) and [1.5, 3): (0 + 0.5*90)/1.5 = 30, (0.5*90 + 180)/1.5 = 150
        assert_eq!(out.data, vec![30, 150]);
    }

    #[test]
    fn lanczos_keeps_constant_images() {
        let img = grey(5, 4, |_, _| 77);
        let out = resize_lanczos4(&img, 11, 9);
        assert!(out.data.iter().all(|&v| v == 77));
        assert_eq!((out.width, out.height), (11, 9));
    }

    /// The scalar definition the faster [`resize_area`] must equal byte for byte.
    fn reference_area(img: &Image, w: usize, h: usize) -> Image {
        let scale_x = 1.0 / (w as f64 / img.width as f64);
        let scale_y = 1.0 / (h as f64 / img.height as f64);
        let (ix, iy) = (scale_x.round() as usize, scale_y.round() as usize);
        if (scale_x - ix as f64).abs() < f64::EPSILON && (scale_y - iy as f64).abs() < f64::EPSILON
        {
            return resize_area_fast(img, w, h, ix, iy);
        }
        let xtab = area_tab(img.width, w, scale_x);
        let ytab = area_tab(img.height, h, scale_y);
        let cn = img.channels;
        let mut out = vec![0u8; w * h * cn];
        let mut buf = vec![0f32; w * cn];
        let mut sum = vec![0f32; w * cn];
        let mut prev_dy = ytab[0].0;
        let row = img.width * cn;
        for &(dy, sy, beta) in &ytab {
            buf.iter_mut().for_each(|b| *b = 0.0);
            let src = &img.data[sy * row..(sy + 1) * row];
            for &(dx, sx, alpha) in &xtab {
                for c in 0..cn {
                    buf[dx * cn + c] += src[sx * cn + c] as f32 * alpha;
                }
            }
            if dy != prev_dy {
                round_to_bytes(&sum, &mut out[prev_dy * w * cn..(prev_dy + 1) * w * cn]);
                for (s, b) in sum.iter_mut().zip(&buf) {
                    *s = beta * b;
                }
                prev_dy = dy;
            } else {
                for (s, b) in sum.iter_mut().zip(&buf) {
                    *s += beta * b;
                }
            }
        }
        round_to_bytes(&sum, &mut out[prev_dy * w * cn..(prev_dy + 1) * w * cn]);
        Image {
            width: w,
            height: h,
            channels: cn,
            data: out,
        }
    }

    #[test]
    fn area_equals_the_scalar_definition() {
        let cases = [
            (1230, 922, 3, 512, 384),
            (480, 360, 3, 512, 384),
            (1000, 625, 3, 512, 320),
            (777, 1333, 1, 298, 512),
            (640, 480, 4, 511, 383),
            (9, 7, 2, 4, 3),
            (31, 3, 3, 30, 1),
        ];
        for (i, &(sw, sh, cn, w, h)) in cases.iter().enumerate() {
            let img = Image::noise(sw, sh, cn, i as u64 + 7);
            let (w, h) = (w.min(sw), h.min(sh));
            assert!(
                resize_area(&img, w, h) == reference_area(&img, w, h),
                "case {i}"
            );
        }
    }
}
