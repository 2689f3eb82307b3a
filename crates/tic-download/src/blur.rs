//! Face blurring as img2dataset 1.40's `blurrer.py` (`BoundingBoxBlurrer`), which DataComp runs
//! on every image with its `face_bboxes`: each relative box `[x0, y0, x1, y1]` is scaled to the
//! (resized) image with `int()`, grown by 10 % of its larger side, clipped; the mask of the boxes
//! and the image (as `float32 / 255`) are blurred with a Gaussian of `sigma = 0.1 × the largest
//! box side` and `ksize = 2·ceil(4·sigma) + 1` (OpenCV's `GaussianBlur`, reflect-101 borders);
//! the result `img·(1 − m) + blurred·m` goes back to `uint8` by truncation.
//!
//! The blur is separable and computed only where the blurred mask can be non-zero (the boxes
//! grown by the kernel radius); elsewhere the pixel is the float round trip of the input,
//! exactly as the whole-image computation gives it.

use crate::kernels::{correlate, CHUNK};
use crate::resize::Image;

/// A face box in relative coordinates `[x_min, y_min, x_max, y_max]`.
pub type BBox = [f64; 4];

/// OpenCV's `borderInterpolate` for `BORDER_REFLECT_101`.
fn reflect101(mut p: i64, len: usize) -> usize {
    let len = len as i64;
    if len == 1 {
        return 0;
    }
    while p < 0 || p >= len {
        p = if p < 0 { -p } else { 2 * (len - 1) - p };
    }
    p as usize
}

/// `cv::getGaussianKernel(ksize, sigma, CV_32F)`.
fn gaussian_kernel(ksize: usize, sigma: f64) -> Vec<f32> {
    let scale2x = -0.5 / (sigma * sigma);
    let mut k: Vec<f32> = (0..ksize)
        .map(|i| {
            let x = i as f64 - (ksize as f64 - 1.0) * 0.5;
            (scale2x * x * x).exp() as f32
        })
        .collect();
    let sum: f64 = k.iter().map(|&v| v as f64).sum();
    let inv = 1.0 / sum;
    for v in &mut k {
        *v = (*v as f64 * inv) as f32;
    }
    k
}

/// blurrer.py's kernel for a largest box side of `max_diag` pixels: `sigma = 0.1 · max_diag`,
/// `ksize = 2·ceil(4·sigma) + 1`; a box of side 0 gives one tap (OpenCV derives sigma from
/// ksize when it is 0: no blur).
fn blur_kernel(max_diag: i64) -> Vec<f32> {
    let sigma = 0.1 * max_diag as f64;
    if sigma > 0.0 {
        gaussian_kernel(2 * (4.0 * sigma).ceil() as usize + 1, sigma)
    } else {
        vec![1.0]
    }
}

/// The mask rectangles (pixel, end-exclusive) and the largest box side, as blurrer.py computes
/// them on a `width × height` image.
fn mask_rects(boxes: &[BBox], width: usize, height: usize) -> (Vec<[usize; 4]>, i64) {
    let (w, h) = (width as f64, height as f64);
    let mut max_diag = 0i64;
    let mut rects = Vec::with_capacity(boxes.len());
    for b in boxes {
        let a = [
            (b[0] * w) as i64,
            (b[1] * h) as i64,
            (b[2] * w) as i64,
            (b[3] * h) as i64,
        ];
        let diag = (a[2] - a[0]).max(a[3] - a[1]);
        max_diag = max_diag.max(diag);
        let grow = 0.1 * diag as f64;
        let clip = |v: f64, n: usize| (v as i64).clamp(0, n as i64 - 1) as usize;
        rects.push([
            clip(a[0] as f64 - grow, width),
            clip(a[1] as f64 - grow, height),
            clip(a[2] as f64 + grow, width),
            clip(a[3] as f64 + grow, height),
        ]);
    }
    (rects, max_diag)
}

/// The rectangle `[x0, x1) × [y0, y1)` where the blurred mask can be non-zero: the mask's
/// rectangles grown by the kernel radius `r`, clipped to the image.
fn blur_region(rects: &[[usize; 4]], r: usize, w: usize, h: usize) -> [usize; 4] {
    let min = |i: usize| {
        rects
            .iter()
            .map(|b| b[i])
            .min()
            .unwrap_or(0)
            .saturating_sub(r)
    };
    let max = |i: usize, n: usize| (rects.iter().map(|b| b[i]).max().unwrap_or(0) + r).min(n);
    [min(0), max(2, w), min(1), max(3, h)]
}

/// `v / 255` as `f32` for every byte (blurrer.py's `img.astype(np.float32) / 255`).
fn unit_floats() -> [f32; 256] {
    std::array::from_fn(|v| v as f32 / 255.0)
}

/// blurrer.py's way back to bytes: `(v * 255).astype(np.uint8)` after the clip (truncation).
fn to_byte(v: f32) -> u8 {
    (v * 255.0).clamp(0.0, 255.0) as u8
}

/// A padded row seen through each tap: `taps[k][i] = pad[i + k]`, so a horizontal correlation
/// is [`correlate`] over these views.
fn shifted(pad: &[f32], taps: usize) -> Vec<&[f32]> {
    (0..taps).map(|k| &pad[k..]).collect()
}

/// The horizontal pass: for every row the vertical pass reads (`ya..yb`), each plane (the
/// image's channels, then the mask) correlated with `kernel` over the region's columns, with
/// reflect-101 borders. Returns `(yb − ya) × planes` rows of `pw` floats (`pw` a multiple of
/// [`CHUNK`]; the columns past the region's are computed and ignored).
fn horizontal_pass(
    img: &Image,
    floats: &[f32; 256],
    rects: &[[usize; 4]],
    kernel: &[f32],
    (rx0, pw): (usize, usize),
    (ya, yb): (usize, usize),
) -> Vec<f32> {
    let (w, cn, planes) = (img.width, img.channels, img.channels + 1);
    let r = kernel.len() / 2;
    // Source column of each padded position: reflect-101 of `rx0 + j − r`.
    let cols: Vec<usize> = (0..pw + kernel.len() - 1)
        .map(|j| reflect101(rx0 as i64 + j as i64 - r as i64, w))
        .collect();
    let mut rows = vec![0f32; (yb - ya) * planes * pw];
    let mut pad = vec![0f32; cols.len()];
    let mut mask = MaskRows::default();
    for (y, out) in (ya..yb).zip(rows.chunks_exact_mut(planes * pw)) {
        let src = &img.data[y * w * cn..(y + 1) * w * cn];
        let (channels, mask_out) = out.split_at_mut(cn * pw);
        for (p, out) in channels.chunks_exact_mut(pw).enumerate() {
            for (d, &x) in pad.iter_mut().zip(&cols) {
                *d = floats[src[x * cn + p] as usize];
            }
            correlate(&shifted(&pad, kernel.len()), kernel, out);
        }
        mask_out.copy_from_slice(mask.row(y, rects, (w, &cols), kernel, pw));
    }
    rows
}

/// The horizontal pass of the mask plane, computed once per set of rectangles covering a row
/// (the mask rows in between are equal, and so are their sums) and reused while it repeats.
#[derive(Default)]
struct MaskRows {
    /// The rectangles covering the row last computed, and its correlated row.
    last: Option<(Vec<usize>, Vec<f32>)>,
}

impl MaskRows {
    /// The correlated mask row `y` (`pw` floats) over the padded columns `cols` of a `w`-wide
    /// image.
    fn row(
        &mut self,
        y: usize,
        rects: &[[usize; 4]],
        (w, cols): (usize, &[usize]),
        kernel: &[f32],
        pw: usize,
    ) -> &[f32] {
        let cover: Vec<usize> = (0..rects.len())
            .filter(|&i| (rects[i][1]..rects[i][3]).contains(&y))
            .collect();
        if self.last.as_ref().is_none_or(|(c, _)| *c != cover) {
            let mut mask = vec![0f32; w];
            for &i in &cover {
                mask[rects[i][0]..rects[i][2]].fill(1.0);
            }
            let pad: Vec<f32> = cols.iter().map(|&x| mask[x]).collect();
            let mut out = vec![0f32; pw];
            correlate(&shifted(&pad, kernel.len()), kernel, &mut out);
            self.last = Some((cover, out));
        }
        &self.last.as_ref().expect("computed above").1
    }
}

/// Blurs the face boxes of `img` in place (blurrer.py's `__call__`); no boxes, no change.
pub fn blur_boxes(img: &mut Image, boxes: &[BBox]) {
    if boxes.is_empty() {
        return;
    }
    let (w, h, cn) = (img.width, img.height, img.channels);
    let (rects, max_diag) = mask_rects(boxes, w, h);
    let kernel = blur_kernel(max_diag);
    let r = kernel.len() / 2;
    let [rx0, rx1, ry0, ry1] = blur_region(&rects, r, w, h);
    let planes = cn + 1;
    let pw = (rx1 - rx0).div_ceil(CHUNK) * CHUNK;
    // Reflect-101 keeps the rows the vertical pass reads within [ry0 − r, ry1 + r).
    let (ya, yb) = (ry0.saturating_sub(r), (ry1 + r).min(h));
    let floats = unit_floats();
    let rows = horizontal_pass(img, &floats, &rects, &kernel, (rx0, pw), (ya, yb));
    let round_trip: [u8; 256] = std::array::from_fn(|v| to_byte(floats[v]));
    let mut out: Vec<u8> = img.data.iter().map(|&v| round_trip[v as usize]).collect();
    let mut blurred = vec![0f32; planes * pw];
    let mut taps: Vec<&[f32]> = Vec::with_capacity(kernel.len());
    for y in ry0..ry1 {
        for (p, acc) in blurred.chunks_exact_mut(pw).enumerate() {
            taps.clear();
            taps.extend((0..kernel.len()).map(|k| {
                let row = reflect101(y as i64 + k as i64 - r as i64, h) - ya;
                &rows[(row * planes + p) * pw..(row * planes + p + 1) * pw]
            }));
            correlate(&taps, &kernel, acc);
        }
        let mask = &blurred[cn * pw..];
        for (xi, x) in (rx0..rx1).enumerate() {
            let m = mask[xi];
            for c in 0..cn {
                let i = (y * w + x) * cn + c;
                out[i] =
                    to_byte(floats[img.data[i] as usize] * (1.0 - m) + blurred[c * pw + xi] * m);
            }
        }
    }
    img.data = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scalar definition the vectorised [`blur_boxes`] must equal byte for byte.
    fn reference_blur(img: &mut Image, boxes: &[BBox]) {
        if boxes.is_empty() {
            return;
        }
        let (w, h, cn) = (img.width, img.height, img.channels);
        let (rects, max_diag) = mask_rects(boxes, w, h);
        let kernel = blur_kernel(max_diag);
        let r = kernel.len() / 2;
        let mut mask = vec![0f32; w * h];
        for &[x0, y0, x1, y1] in &rects {
            for y in y0..y1 {
                mask[y * w + x0..y * w + x1].fill(1.0);
            }
        }
        let to_f = |v: u8| v as f32 / 255.0;
        let back = |v: f32| (v * 255.0).clamp(0.0, 255.0) as u8;
        // Region where the blurred mask may be non-zero.
        let rx0 = rects
            .iter()
            .map(|r| r[0])
            .min()
            .unwrap_or(0)
            .saturating_sub(r);
        let ry0 = rects
            .iter()
            .map(|r| r[1])
            .min()
            .unwrap_or(0)
            .saturating_sub(r);
        let rx1 = (rects.iter().map(|r| r[2]).max().unwrap_or(0) + r).min(w);
        let ry1 = (rects.iter().map(|r| r[3]).max().unwrap_or(0) + r).min(h);
        let planes = cn + 1; // the image's channels, then the mask
        let kl = kernel.len();
        let rw = rx1.saturating_sub(rx0);
        // Horizontal pass over the rows the vertical pass reads (reflect-101 keeps them within
        // [ry0 - r, ry1 + r)); tap indices precomputed. Sums run over the taps in order, as before.
        let xs: Vec<usize> = (rx0..rx1)
            .flat_map(|x| (0..kl).map(move |k| reflect101(x as i64 + k as i64 - r as i64, w)))
            .collect();
        let (ya, yb) = (ry0.saturating_sub(r), (ry1 + r).min(h));
        let mut rows = vec![0f32; h * rw * planes];
        let mut src = vec![0f32; w * planes];
        for y in ya..yb {
            for x in 0..w {
                for p in 0..cn {
                    src[x * planes + p] = to_f(img.data[(y * w + x) * cn + p]);
                }
                src[x * planes + cn] = mask[y * w + x];
            }
            for xi in 0..rw {
                let taps = &xs[xi * kl..(xi + 1) * kl];
                for p in 0..planes {
                    let mut s = 0f32;
                    for (&sx, kv) in taps.iter().zip(&kernel) {
                        s += src[sx * planes + p] * kv;
                    }
                    rows[(y * rw + xi) * planes + p] = s;
                }
            }
        }
        let mut out = img.data.iter().map(|&v| back(to_f(v))).collect::<Vec<u8>>();
        let mut acc = vec![0f32; rw * planes];
        for y in ry0..ry1 {
            acc.fill(0.0);
            for (k, kv) in kernel.iter().enumerate() {
                let yy = reflect101(y as i64 + k as i64 - r as i64, h);
                let row = &rows[yy * rw * planes..(yy + 1) * rw * planes];
                for (a, v) in acc.iter_mut().zip(row) {
                    *a += v * kv;
                }
            }
            for (xi, x) in (rx0..rx1).enumerate() {
                let px = &acc[xi * planes..(xi + 1) * planes];
                let m = px[cn];
                for (c, blurred) in px[..cn].iter().enumerate() {
                    let i = (y * w + x) * cn + c;
                    out[i] = back(to_f(img.data[i]) * (1.0 - m) + blurred * m);
                }
            }
        }
        img.data = out;
    }

    #[test]
    fn reflect101_matches_opencv() {
        assert_eq!(reflect101(-1, 5), 1);
        assert_eq!(reflect101(-2, 5), 2);
        assert_eq!(reflect101(5, 5), 3);
        assert_eq!(reflect101(6, 5), 2);
        assert_eq!(reflect101(-7, 3), 1);
        assert_eq!(reflect101(3, 1), 0);
    }

    #[test]
    fn kernel_is_normalised_and_symmetric() {
        let k = gaussian_kernel(9, 1.0);
        let s: f32 = k.iter().sum();
        assert!((s - 1.0).abs() < 1e-6);
        assert_eq!(k[0], k[8]);
        assert!(k[4] > k[3]);
    }

    #[test]
    fn blur_changes_only_near_the_box() {
        let (w, h) = (64, 48);
        let data = (0..w * h * 3).map(|i| ((i * 37) % 251) as u8).collect();
        let mut img = Image {
            width: w,
            height: h,
            channels: 3,
            data,
        };
        let orig = img.clone();
        blur_boxes(&mut img, &[[0.25, 0.25, 0.5, 0.5]]);
        // box 16..32 x 12..24, side 16, sigma 1.6, ksize 15, radius 7; grown by 1.6
        let changed = |x: usize, y: usize| {
            (0..3).any(|c| img.data[(y * w + x) * 3 + c] != orig.data[(y * w + x) * 3 + c])
        };
        assert!(changed(24, 18));
        assert!(!changed(60, 45));
        assert!(!changed(2, 2));
        blur_boxes(&mut img, &[]);
    }

    #[test]
    fn vectorised_blur_equals_the_scalar_definition() {
        let cases: &[(usize, usize, usize, &[BBox])] = &[
            (64, 48, 3, &[[0.25, 0.25, 0.5, 0.5]]),
            (512, 384, 3, &[[0.3, 0.2, 0.6, 0.6]]),
            (300, 512, 3, &[[0.0, 0.0, 0.2, 0.1], [0.7, 0.8, 1.0, 1.0]]),
            (97, 33, 1, &[[0.1, 0.1, 0.9, 0.95]]),
            (5, 7, 3, &[[0.0, 0.0, 1.0, 1.0]]),
            (1, 9, 3, &[[0.0, 0.2, 1.0, 0.6]]),
            (200, 150, 3, &[[0.45, 0.45, 0.46, 0.46]]),
        ];
        for (i, &(w, h, cn, boxes)) in cases.iter().enumerate() {
            let img = Image::noise(w, h, cn, i as u64 + 1);
            let mut fast = img.clone();
            blur_boxes(&mut fast, boxes);
            let mut slow = img.clone();
            reference_blur(&mut slow, boxes);
            assert!(fast == slow, "case {i}: {w}x{h}x{cn} {boxes:?}");
        }
    }
}
