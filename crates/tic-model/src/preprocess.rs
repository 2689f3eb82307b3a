//! Image decoding and OpenCLIP's image transforms.
//!
//! - [`eval_transform`]: `Resize(S, bicubic)` of the shorter side → `CenterCrop(S)` → `ToTensor`
//!   → `Normalize(OpenAI mean/std)`, as `open_clip.image_transform(S, is_train=False)`.
//! - [`RandomResizedCrop`]: torchvision's `RandomResizedCrop(S, scale=(0.9, 1.0),
//!   ratio=(3/4, 4/3), bicubic)` (OpenCLIP's train transform), same sampling algorithm with a
//!   seeded RNG.
//!
//! Images are converted to RGB right after decoding, as the WebDataset pipeline
//! (`decode("pilrgb")`) does before the transform. Bicubic resampling is a bit-exact port of
//! Pillow's 8-bit resampler ([`resize_bicubic`]); general-purpose SIMD resizers
//! (`fast_image_resize`) run the two passes in another order and with other fixed-point weights,
//! which moved pixels by up to 22/255 at high-contrast edges in our fixtures. The remaining
//! difference to OpenCLIP comes from JPEG decoding (see docs/model.md).

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::os::raw::c_int;

/// OpenAI CLIP normalisation mean (RGB).
pub const OPENAI_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// OpenAI CLIP normalisation std (RGB).
// Written as in OpenCLIP's constants.py; the f32 rounding equals torch's.
#[allow(clippy::excessive_precision)]
pub const OPENAI_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// Decodes JPEG/PNG/WebP bytes to 8-bit RGB.
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        if let Some(img) = decode_jpeg_libjpeg(bytes) {
            return Ok(img);
        }
    }
    let img = image::load_from_memory(bytes).context("decoding image")?;
    Ok(img.to_rgb8())
}

/// Decodes a JPEG with libjpeg-turbo's decoder (mozjpeg build: accurate integer IDCT, fancy
/// upsampling — PIL's defaults), so pixels equal what OpenCLIP's PIL preprocessing sees.
/// `None` when libjpeg cannot produce RGB (CMYK/YCCK, corrupt data): the caller falls back to
/// the `image` crate, whose error is the one reported.
fn decode_jpeg_libjpeg(bytes: &[u8]) -> Option<RgbImage> {
    // libjpeg reports errors (and here warnings) by unwinding, without the panic hook.
    std::panic::catch_unwind(|| -> std::io::Result<RgbImage> {
        let d = mozjpeg::Decompress::with_err(strict_error_mgr()).from_mem(bytes)?;
        let mut started = d.rgb()?;
        let (w, h) = (started.width() as u32, started.height() as u32);
        let px = started.read_scanlines::<u8>()?;
        started.finish()?;
        RgbImage::from_raw(w, h, px).ok_or_else(|| std::io::Error::other("short pixel buffer"))
    })
    .ok()?
    .ok()
}

/// Reads and decodes an image file to RGB (the error names the file).
pub fn load_rgb(path: &std::path::Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).with_context(|| format!("reading image {}", path.display()))?;
    decode_rgb(&bytes).with_context(|| format!("decoding image {}", path.display()))
}

/// A libjpeg error manager that unwinds on errors and on corrupt-data warnings (libjpeg would
/// otherwise pad a truncated JPEG with grey and carry on; PIL refuses truncated images).
fn strict_error_mgr() -> mozjpeg_sys::jpeg_error_mgr {
    extern "C-unwind" fn on_error(_: &mut mozjpeg_sys::jpeg_common_struct) {
        std::panic::resume_unwind(Box::new("libjpeg error"));
    }
    extern "C-unwind" fn on_message(_: &mut mozjpeg_sys::jpeg_common_struct, level: c_int) {
        if level < 0 {
            std::panic::resume_unwind(Box::new("libjpeg warning: corrupt data"));
        }
    }
    // SAFETY: jpeg_std_error fills every field of the zeroed struct (function pointers to
    // libjpeg's defaults and its static message table); it holds no pointer to itself, so it
    // may be moved.
    let mut err: mozjpeg_sys::jpeg_error_mgr = unsafe { std::mem::zeroed() };
    unsafe { mozjpeg_sys::jpeg_std_error(&mut err) };
    err.error_exit = Some(on_error);
    err.emit_message = Some(on_message);
    err
}

/// Pillow's fixed-point precision for 8-bit resampling.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's `BICUBIC` kernel (a = −0.5), support 2.
fn bicubic_kernel(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Per-output-pixel source window (`start`, `len`) and fixed-point weights, as Pillow's
/// `precompute_coeffs` + `normalize_coeffs_8bpc` (support widened by the scale on downscale,
/// window clipped to the image and renormalised).
struct Coeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

fn precompute_coeffs(in_size: usize, out_size: usize) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C casts truncate toward zero; negative values are clamped to 0 anyway.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(xmax) {
            let w = bicubic_kernel((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        for x in 0..xmax {
            let v = if ww != 0.0 { k[x] / ww } else { k[x] };
            let f = v * (1u32 << PRECISION_BITS) as f64;
            weights[xx * ksize + x] = if v < 0.0 {
                (f - 0.5) as i32
            } else {
                (f + 0.5) as i32
            };
        }
        bounds.push((xmin, xmax));
    }
    Coeffs {
        ksize,
        bounds,
        weights,
    }
}

#[inline]
fn clip8(v: i32) -> u8 {
    if v >= (1i32 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// Bicubic resize of an RGB image to `w`×`h`, bit-exact with Pillow's
/// `Image.resize((w, h), Image.BICUBIC)` (what torchvision's `Resize` calls on PIL images):
/// horizontal pass first, 8-bit intermediate, 22-bit fixed-point weights.
pub fn resize_bicubic(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    let (in_w, in_h) = (img.width() as usize, img.height() as usize);
    let (out_w, out_h) = (w as usize, h as usize);
    if in_w == out_w && in_h == out_h {
        return img.clone();
    }
    let src = img.as_raw();
    let horiz = precompute_coeffs(in_w, out_w);
    let vert = precompute_coeffs(in_h, out_h);
    let need_h = out_w != in_w;
    let need_v = out_h != in_h;
    // Rows of the source used by the vertical pass.
    let y_first = vert.bounds[0].0;
    let y_last = vert.bounds[out_h - 1].0 + vert.bounds[out_h - 1].1;
    let half = 1i32 << (PRECISION_BITS - 1);

    let (tmp, tmp_w, tmp_y0): (std::borrow::Cow<[u8]>, usize, usize) = if need_h {
        let rows = y_last - y_first;
        let mut out = vec![0u8; rows * out_w * 3];
        for (r, orow) in out.chunks_exact_mut(out_w * 3).enumerate() {
            let irow = &src[(r + y_first) * in_w * 3..(r + y_first + 1) * in_w * 3];
            for xx in 0..out_w {
                let (xmin, xlen) = horiz.bounds[xx];
                let k = &horiz.weights[xx * horiz.ksize..xx * horiz.ksize + xlen];
                let (mut s0, mut s1, mut s2) = (half, half, half);
                for (x, &kx) in k.iter().enumerate() {
                    let p = (xmin + x) * 3;
                    s0 += irow[p] as i32 * kx;
                    s1 += irow[p + 1] as i32 * kx;
                    s2 += irow[p + 2] as i32 * kx;
                }
                orow[xx * 3] = clip8(s0);
                orow[xx * 3 + 1] = clip8(s1);
                orow[xx * 3 + 2] = clip8(s2);
            }
        }
        (std::borrow::Cow::Owned(out), out_w, y_first)
    } else {
        (std::borrow::Cow::Borrowed(src.as_slice()), in_w, 0)
    };
    if !need_v {
        return RgbImage::from_raw(w, h, tmp.into_owned()).expect("buffer size");
    }
    let mut out = vec![0u8; out_h * out_w * 3];
    for (yy, orow) in out.chunks_exact_mut(out_w * 3).enumerate() {
        let (ymin, ylen) = vert.bounds[yy];
        let k = &vert.weights[yy * vert.ksize..yy * vert.ksize + ylen];
        for (c, o) in orow.iter_mut().enumerate() {
            let mut s = half;
            for (y, &ky) in k.iter().enumerate() {
                s += tmp[(ymin + y - tmp_y0) * tmp_w * 3 + c] as i32 * ky;
            }
            *o = clip8(s);
        }
    }
    RgbImage::from_raw(w, h, out).expect("buffer size")
}

/// Copies the `w`×`h` region at (`left`, `top`).
pub fn crop(img: &RgbImage, left: u32, top: u32, w: u32, h: u32) -> RgbImage {
    image::imageops::crop_imm(img, left, top, w, h).to_image()
}

/// `ToTensor` + `Normalize(OpenAI)`: CHW f32, `(v/255 - mean)/std` in f32 like torchvision.
pub fn to_chw_normalized(img: &RgbImage) -> Vec<f32> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut out = vec![0f32; 3 * w * h];
    let raw = img.as_raw();
    for c in 0..3 {
        let plane = &mut out[c * w * h..(c + 1) * w * h];
        for (i, v) in plane.iter_mut().enumerate() {
            let x = raw[i * 3 + c] as f32 / 255.0;
            *v = (x - OPENAI_MEAN[c]) / OPENAI_STD[c];
        }
    }
    out
}

/// Output size of torchvision `Resize(size)` with an int size: shorter side = `size`, the other
/// `int(size * long / short)`.
pub fn shortest_side_size(w: u32, h: u32, size: u32) -> (u32, u32) {
    if w <= h {
        (size, (size as u64 * h as u64 / w as u64) as u32)
    } else {
        ((size as u64 * w as u64 / h as u64) as u32, size)
    }
}

/// Eval transform to CHW f32 (`size`×`size`).
pub fn eval_transform(img: &RgbImage, size: u32) -> Vec<f32> {
    let (rw, rh) = shortest_side_size(img.width(), img.height(), size);
    let resized = resize_bicubic(img, rw, rh);
    // torchvision center_crop: int(round((H - S) / 2)), Python round = half to even.
    let top = ((rh - size) as f64 / 2.0).round_ties_even() as u32;
    let left = ((rw - size) as f64 / 2.0).round_ties_even() as u32;
    to_chw_normalized(&crop(&resized, left, top, size, size))
}

/// torchvision `RandomResizedCrop` (OpenCLIP train transform: scale (0.9, 1), ratio (3/4, 4/3)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomResizedCrop {
    /// Output side.
    pub size: u32,
    /// Area fraction range.
    pub scale: (f64, f64),
    /// Aspect-ratio range (w/h).
    pub ratio: (f64, f64),
}

impl RandomResizedCrop {
    /// OpenCLIP's training crop at `size`.
    pub fn openclip(size: u32) -> Self {
        Self {
            size,
            scale: (0.9, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        }
    }

    /// torchvision `get_params`: (top, left, height, width) of the crop.
    pub fn params(&self, width: u32, height: u32, rng: &mut impl Rng) -> (u32, u32, u32, u32) {
        let area = (width as f64) * (height as f64);
        let (lr0, lr1) = (self.ratio.0.ln(), self.ratio.1.ln());
        for _ in 0..10 {
            let target_area = area * rng.random_range(self.scale.0..self.scale.1);
            let aspect = rng.random_range(lr0..lr1).exp();
            let w = (target_area * aspect).sqrt().round_ties_even() as i64;
            let h = (target_area / aspect).sqrt().round_ties_even() as i64;
            if 0 < w && w <= width as i64 && 0 < h && h <= height as i64 {
                let i = rng.random_range(0..=(height as i64 - h)) as u32;
                let j = rng.random_range(0..=(width as i64 - w)) as u32;
                return (i, j, h as u32, w as u32);
            }
        }
        // Fallback: central crop clamped to the ratio range.
        let in_ratio = width as f64 / height as f64;
        let (w, h) = if in_ratio < self.ratio.0 {
            (
                width,
                ((width as f64) / self.ratio.0).round_ties_even() as u32,
            )
        } else if in_ratio > self.ratio.1 {
            (
                ((height as f64) * self.ratio.1).round_ties_even() as u32,
                height,
            )
        } else {
            (width, height)
        };
        ((height - h) / 2, (width - w) / 2, h, w)
    }

    /// Crops with [`Self::params`] and resizes (bicubic) to `size`×`size`; CHW f32 normalised.
    pub fn apply(&self, img: &RgbImage, rng: &mut impl Rng) -> Vec<f32> {
        let p = self.params(img.width(), img.height(), rng);
        resized_crop(img, p, self.size)
    }
}

/// torchvision `resized_crop` + `ToTensor` + `Normalize`: crops (top, left, height, width), then
/// bicubic-resizes to `size`×`size`; CHW f32.
pub fn resized_crop(
    img: &RgbImage,
    (top, left, h, w): (u32, u32, u32, u32),
    size: u32,
) -> Vec<f32> {
    let c = crop(img, left, top, w, h);
    to_chw_normalized(&resize_bicubic(&c, size, size))
}

/// Eval-transforms encoded images (JPEG/PNG/WebP bytes) in parallel into `[B,3,S,S]` f32.
/// The error names the index of an image that fails to decode.
pub fn eval_batch<B: AsRef<[u8]> + Sync>(
    images: &[B],
    size: u32,
    device: &Device,
) -> Result<Tensor> {
    let rows: Vec<Vec<f32>> = images
        .par_iter()
        .enumerate()
        .map(|(i, b)| {
            let img = decode_rgb(b.as_ref()).with_context(|| format!("image #{i} of the batch"))?;
            Ok(eval_transform(&img, size))
        })
        .collect::<Result<_>>()?;
    stack_chw(rows, size, device)
}

/// Train-transforms encoded images in parallel; image `i` uses a ChaCha RNG seeded with
/// `(seed, i)`, so a batch is reproducible regardless of thread scheduling.
pub fn train_batch<B: AsRef<[u8]> + Sync>(
    images: &[B],
    size: u32,
    seed: u64,
    device: &Device,
) -> Result<Tensor> {
    let rrc = RandomResizedCrop::openclip(size);
    let rows: Vec<Vec<f32>> = images
        .par_iter()
        .enumerate()
        .map(|(i, b)| {
            let img = decode_rgb(b.as_ref()).with_context(|| format!("image #{i} of the batch"))?;
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(i as u64);
            Ok(rrc.apply(&img, &mut rng))
        })
        .collect::<Result<_>>()?;
    stack_chw(rows, size, device)
}

/// Stacks CHW images (`3·size·size` values each) into a `[B,3,size,size]` tensor.
pub fn stack_chw(rows: Vec<Vec<f32>>, size: u32, device: &Device) -> Result<Tensor> {
    let b = rows.len();
    let s = size as usize;
    let flat: Vec<f32> = rows.into_iter().flatten().collect();
    Ok(Tensor::from_vec(flat, (b, 3, s, s), device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32, gray: bool) -> Vec<u8> {
        let rgb = RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 9) as u8, (y * 5) as u8, 77]));
        let img = if gray {
            image::DynamicImage::ImageLuma8(image::DynamicImage::ImageRgb8(rgb).to_luma8())
        } else {
            image::DynamicImage::ImageRgb8(rgb)
        };
        let mut out = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut out),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
        out
    }

    #[test]
    fn jpeg_decoding_is_strict_and_handles_grey() {
        let ok = jpeg(40, 24, false);
        let img = decode_jpeg_libjpeg(&ok).expect("libjpeg decodes a baseline JPEG");
        assert_eq!(img.dimensions(), (40, 24));
        // Greyscale JPEGs come out as RGB with equal channels.
        let g = decode_rgb(&jpeg(16, 16, true)).unwrap();
        assert!(g.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
        // A truncated JPEG is not silently padded by libjpeg; the fallback decoder decides.
        let cut = &ok[..ok.len() / 2];
        assert!(decode_jpeg_libjpeg(cut).is_none());
        assert!(decode_jpeg_libjpeg(b"\xFF\xD8\xFFnot a jpeg").is_none());
        assert!(decode_rgb(b"\xFF\xD8\xFFnot a jpeg").is_err());
    }

    #[test]
    fn shortest_side_like_torchvision() {
        assert_eq!(shortest_side_size(120, 90, 32), (42, 32));
        assert_eq!(shortest_side_size(70, 150, 224), (224, 480));
        assert_eq!(shortest_side_size(100, 100, 224), (224, 224));
    }

    #[test]
    fn random_resized_crop_bounds_and_determinism() {
        let rrc = RandomResizedCrop::openclip(224);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for (w, h) in [
            (640u32, 480u32),
            (100, 1000),
            (1000, 100),
            (224, 224),
            (5, 7),
        ] {
            for _ in 0..200 {
                let (i, j, ch, cw) = rrc.params(w, h, &mut rng);
                assert!(ch > 0 && cw > 0 && i + ch <= h && j + cw <= w);
                let area = (ch * cw) as f64 / (w * h) as f64;
                let r = cw as f64 / ch as f64;
                // Either a sampled crop (area ≥ ~0.9, ratio in range up to rounding) or fallback.
                let sampled = area > 0.85 && r > 0.7 && r < 1.4;
                let fallback = i == (h - ch) / 2 && j == (w - cw) / 2;
                assert!(sampled || fallback, "{w}x{h}: {i} {j} {ch} {cw}");
            }
        }
        // Extreme aspect ratios always take the fallback (no sample fits).
        let p = rrc.params(1000, 100, &mut rng);
        assert_eq!(p, (0, (1000 - 133) / 2, 100, 133));
        let a = rrc.params(640, 480, &mut ChaCha8Rng::seed_from_u64(9));
        let b = rrc.params(640, 480, &mut ChaCha8Rng::seed_from_u64(9));
        assert_eq!(a, b);
    }

    #[test]
    fn decodes_png_and_webp() {
        let img = RgbImage::from_fn(7, 5, |x, y| {
            image::Rgb([(x * 30) as u8, (y * 50) as u8, 200])
        });
        for fmt in [image::ImageFormat::Png, image::ImageFormat::WebP] {
            let mut buf = std::io::Cursor::new(Vec::new());
            image::DynamicImage::ImageRgb8(img.clone())
                .write_to(&mut buf, fmt)
                .unwrap();
            assert_eq!(decode_rgb(buf.get_ref()).unwrap(), img, "{fmt:?}");
        }
        let e = format!("{:#}", decode_rgb(b"not an image").unwrap_err());
        assert!(e.contains("decoding image"), "{e}");
    }

    #[test]
    fn normalisation_constants() {
        let img = RgbImage::from_pixel(2, 2, image::Rgb([255, 0, 128]));
        let v = to_chw_normalized(&img);
        assert!((v[0] - (1.0 - OPENAI_MEAN[0]) / OPENAI_STD[0]).abs() < 1e-6);
        assert!((v[4] - (-OPENAI_MEAN[1] / OPENAI_STD[1])).abs() < 1e-6);
    }
}
