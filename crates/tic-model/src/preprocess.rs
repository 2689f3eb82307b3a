//! Image decoding and OpenCLIP's image transforms.
//!
//! - [`eval_transform`]: `Resize(S, bicubic)` of the shorter side → `CenterCrop(S)` → `ToTensor`
//!   → `Normalize(OpenAI mean/std)`, as `open_clip.image_transform(S, is_train=False)`.
//! - [`RandomResizedCrop`]: torchvision's `RandomResizedCrop(S, scale=(0.9, 1.0),
//!   ratio=(3/4, 4/3), bicubic)` (OpenCLIP's train transform), same sampling algorithm with a
//!   seeded RNG.
//!
//! Images are converted to RGB right after decoding, as the WebDataset pipeline
//! (`decode("pilrgb")`) does before the transform. Bicubic resampling uses `fast_image_resize`'s
//! Catmull-Rom convolution (SIMD), the same kernel as Pillow's `BICUBIC` with Pillow's
//! support widening on downscale; results differ from Pillow by rounding only (see
//! docs/model.md for the measured difference).

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use fast_image_resize::{
    images::Image as FirImage, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer,
};
use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// OpenAI CLIP normalisation mean (RGB).
pub const OPENAI_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// OpenAI CLIP normalisation std (RGB).
pub const OPENAI_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// Decodes JPEG/PNG/WebP bytes to 8-bit RGB.
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage> {
    let img = image::load_from_memory(bytes).context("decoding image")?;
    Ok(img.to_rgb8())
}

/// Reads and decodes an image file to RGB (the error names the file).
pub fn load_rgb(path: &std::path::Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).with_context(|| format!("reading image {}", path.display()))?;
    decode_rgb(&bytes).with_context(|| format!("decoding image {}", path.display()))
}

/// Bicubic (Pillow `BICUBIC`-equivalent) resize of an RGB image to `w`×`h`.
pub fn resize_bicubic(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    if img.width() == w && img.height() == h {
        return img.clone();
    }
    let src = FirImage::from_vec_u8(
        img.width(),
        img.height(),
        img.as_raw().clone(),
        PixelType::U8x3,
    )
    .expect("RGB buffer matches its dimensions");
    let mut dst = FirImage::new(w, h, PixelType::U8x3);
    let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom));
    Resizer::new()
        .resize(&src, &mut dst, &opts)
        .expect("same pixel type");
    RgbImage::from_raw(w, h, dst.into_vec()).expect("buffer size")
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
        let (i, j, h, w) = self.params(img.width(), img.height(), rng);
        let c = crop(img, j, i, w, h);
        to_chw_normalized(&resize_bicubic(&c, self.size, self.size))
    }
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
    fn normalisation_constants() {
        let img = RgbImage::from_pixel(2, 2, image::Rgb([255, 0, 128]));
        let v = to_chw_normalized(&img);
        assert!((v[0] - (1.0 - OPENAI_MEAN[0]) / OPENAI_STD[0]).abs() < 1e-6);
        assert!((v[4] - (-OPENAI_MEAN[1] / OPENAI_STD[1])).abs() < 1e-6);
    }
}
