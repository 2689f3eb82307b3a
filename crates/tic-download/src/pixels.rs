//! One downloaded image through img2dataset 1.40's `Resizer.__call__`: decode as
//! `cv2.imdecode(…, IMREAD_UNCHANGED)` (grey stays grey; an alpha channel is matted on white as
//! `alpha / 255 * img + 255 - alpha`, rounded), the resize mode, face blurring, re-encoding.
//!
//! JPEGs are decoded and encoded with libjpeg-turbo's code (the mozjpeg build, in its
//! libjpeg-turbo compatible profile), the library OpenCV's wheels link: same IDCT, same fancy
//! upsampling, same quantisation tables at quality 95 and 4:2:0 sampling. Other formats go
//! through the `image` crate. Errors are img2dataset's strings where it has one
//! (`Image decoding error`), so per-row statuses compare equal.

use crate::args::{EncodeFormat, ResizeMode};
use crate::blur::{blur_boxes, BBox};
use crate::resize::{max_size_dims, resize, Image};
use std::io::Cursor;

/// The resizer's settings (img2dataset's `Resizer` arguments).
#[derive(Clone, Debug)]
pub struct ResizeOpts {
    /// Target size.
    pub image_size: u32,
    /// Resize mode.
    pub mode: ResizeMode,
    /// Only shrink, never enlarge.
    pub only_if_bigger: bool,
    /// Output encoding.
    pub format: EncodeFormat,
    /// JPEG quality.
    pub quality: u8,
    /// Larger images fail before decoding (decompression-bomb guard).
    pub max_pixels: u64,
}

/// A re-encoded image and its sizes.
#[derive(Debug, Clone)]
pub struct Processed {
    /// The encoded bytes.
    pub bytes: Vec<u8>,
    /// Output width.
    pub width: u32,
    /// Output height.
    pub height: u32,
    /// Decoded width.
    pub original_width: u32,
    /// Decoded height.
    pub original_height: u32,
}

/// img2dataset's message for an undecodable image.
pub const DECODE_ERROR: &str = "Image decoding error";

/// Decodes, resizes, blurs `boxes` (when given) and re-encodes, as img2dataset's resizer.
pub fn process(
    bytes: &[u8],
    opts: &ResizeOpts,
    boxes: Option<&[BBox]>,
) -> Result<Processed, String> {
    let img = decode(bytes, opts.max_pixels)?;
    let (ow, oh) = (img.width, img.height);
    let img = transform(img, opts, boxes);
    let out = encode(&img, opts)?;
    Ok(Processed {
        bytes: out,
        width: img.width as u32,
        height: img.height as u32,
        original_width: ow as u32,
        original_height: oh as u32,
    })
}

/// The resize mode, then blurring (after the resize, on the resized image, as img2dataset).
fn transform(mut img: Image, o: &ResizeOpts, boxes: Option<&[BBox]>) -> Image {
    let (w, h) = (img.width, img.height);
    let largest = matches!(o.mode, ResizeMode::KeepRatioLargest | ResizeMode::Border);
    if o.mode != ResizeMode::No {
        let side = if largest { w.max(h) } else { w.min(h) };
        let downscale = side > o.image_size as usize;
        if !o.only_if_bigger || downscale {
            let (nw, nh) = max_size_dims(w, h, o.image_size, largest);
            img = resize(&img, nw, nh, downscale);
            if let Some(b) = boxes {
                blur_boxes(&mut img, b);
            }
            match o.mode {
                ResizeMode::CenterCrop => img = center_crop(&img, o.image_size as usize),
                ResizeMode::Border => img = pad_white(&img, o.image_size as usize),
                _ => {}
            }
            return img;
        }
    }
    if let Some(b) = boxes {
        blur_boxes(&mut img, b);
    }
    img
}

/// albumentations' `center_crop(img, s, s)`.
fn center_crop(img: &Image, s: usize) -> Image {
    let (cw, ch) = (s.min(img.width), s.min(img.height));
    let (x0, y0) = ((img.width - cw) / 2, (img.height - ch) / 2);
    let cn = img.channels;
    let mut data = Vec::with_capacity(cw * ch * cn);
    for y in y0..y0 + ch {
        let start = (y * img.width + x0) * cn;
        data.extend_from_slice(&img.data[start..start + cw * cn]);
    }
    Image {
        width: cw,
        height: ch,
        channels: cn,
        data,
    }
}

/// albumentations' `pad(img, s, s, BORDER_CONSTANT, white)`: top/left get the floor half.
fn pad_white(img: &Image, s: usize) -> Image {
    let (w, h) = (img.width.max(s), img.height.max(s));
    let (left, top) = ((w - img.width) / 2, (h - img.height) / 2);
    let cn = img.channels;
    let mut data = vec![255u8; w * h * cn];
    for y in 0..img.height {
        let src = &img.data[y * img.width * cn..(y + 1) * img.width * cn];
        let dst = ((y + top) * w + left) * cn;
        data[dst..dst + src.len()].copy_from_slice(src);
    }
    Image {
        width: w,
        height: h,
        channels: cn,
        data,
    }
}

fn too_large(w: u64, h: u64, max: u64) -> Result<(), String> {
    if w * h > max {
        Err(format!(
            "image too large: {w}x{h} pixels is over --max_image_pixels {max}"
        ))
    } else {
        Ok(())
    }
}

/// `cv2.imdecode(buf, IMREAD_UNCHANGED)` then img2dataset's alpha matting.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<Image, String> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        if let Some(img) = decode_jpeg(bytes, max_pixels)? {
            return Ok(img);
        }
    }
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| DECODE_ERROR.to_string())?;
    let (w, h) = reader
        .into_dimensions()
        .map_err(|_| DECODE_ERROR.to_string())?;
    too_large(w as u64, h as u64, max_pixels)?;
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| DECODE_ERROR.to_string())?;
    reader.no_limits();
    let img = reader.decode().map_err(|_| DECODE_ERROR.to_string())?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if !img.color().has_color() && !img.color().has_alpha() {
        let data = img.into_luma8().into_raw();
        return Ok(Image {
            width: w,
            height: h,
            channels: 1,
            data,
        });
    }
    if img.color().has_alpha() {
        let rgba = img.into_rgba8().into_raw();
        let data = rgba
            .chunks_exact(4)
            .flat_map(|p| {
                let a = p[3] as f64;
                let m = move |c: u8| {
                    (a / 255.0 * c as f64 + 255.0 - a)
                        .clamp(0.0, 255.0)
                        .round_ties_even() as u8
                };
                [m(p[0]), m(p[1]), m(p[2])]
            })
            .collect();
        return Ok(Image {
            width: w,
            height: h,
            channels: 3,
            data,
        });
    }
    Ok(Image {
        width: w,
        height: h,
        channels: 3,
        data: img.into_rgb8().into_raw(),
    })
}

/// OpenCV's CMYK → BGR for JPEGs (`icvCvt_CMYK2BGR_8u_C4C3R`, on the values libjpeg gives,
/// which Adobe's CMYK JPEGs store inverted): each of C, M, Y becomes `k − ((255 − v)·k >> 8)`;
/// returned in RGB order.
fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    cmyk.chunks_exact(4)
        .flat_map(|p| {
            let k = p[3] as i32;
            let f = |v: u8| (k - (((255 - v as i32) * k) >> 8)) as u8;
            [f(p[0]), f(p[1]), f(p[2])]
        })
        .collect()
}

/// libjpeg-turbo decoding; `Ok(None)` when libjpeg cannot give grey or RGB (the `image` crate
/// then tries). Corrupt-data warnings are tolerated, as OpenCV does.
fn decode_jpeg(bytes: &[u8], max_pixels: u64) -> Result<Option<Image>, String> {
    let res = std::panic::catch_unwind(|| -> std::io::Result<Result<Image, String>> {
        let d = mozjpeg::Decompress::new_mem(bytes)?;
        if let Err(e) = too_large(d.width() as u64, d.height() as u64, max_pixels) {
            return Ok(Err(e));
        }
        let space = d.color_space();
        let (data, w, h, channels) = if space == mozjpeg::ColorSpace::JCS_GRAYSCALE {
            let mut s = d.grayscale()?;
            let (w, h) = (s.width(), s.height());
            let px = s.read_scanlines::<u8>()?;
            s.finish()?;
            (px, w, h, 1)
        } else if matches!(
            space,
            mozjpeg::ColorSpace::JCS_CMYK | mozjpeg::ColorSpace::JCS_YCCK
        ) {
            let mut s = d.to_colorspace(mozjpeg::ColorSpace::JCS_CMYK)?;
            let (w, h) = (s.width(), s.height());
            let px = s.read_scanlines::<u8>()?;
            s.finish()?;
            (cmyk_to_rgb(&px), w, h, 3)
        } else {
            let mut s = d.rgb()?;
            let (w, h) = (s.width(), s.height());
            let px = s.read_scanlines::<u8>()?;
            s.finish()?;
            (px, w, h, 3)
        };
        Ok(Ok(Image {
            width: w,
            height: h,
            channels,
            data,
        }))
    });
    match res {
        Ok(Ok(Ok(img))) if img.data.len() == img.width * img.height * img.channels => Ok(Some(img)),
        Ok(Ok(Err(too_big))) => Err(too_big),
        _ => Ok(None),
    }
}

/// `cv2.imencode(".jpg", img, [IMWRITE_JPEG_QUALITY, q])` (libjpeg defaults: baseline, 4:2:0,
/// no Huffman optimisation), or PNG / WebP through the `image` crate.
pub fn encode(img: &Image, o: &ResizeOpts) -> Result<Vec<u8>, String> {
    match o.format {
        EncodeFormat::Jpg => {
            encode_jpeg(img, o.quality).map_err(|e| format!("encoding error: {e}"))
        }
        EncodeFormat::Png | EncodeFormat::Webp => {
            let color = if img.channels == 1 {
                image::ExtendedColorType::L8
            } else {
                image::ExtendedColorType::Rgb8
            };
            let mut out = Cursor::new(Vec::new());
            let fmt = if o.format == EncodeFormat::Png {
                image::ImageFormat::Png
            } else {
                image::ImageFormat::WebP
            };
            image::write_buffer_with_format(
                &mut out,
                &img.data,
                img.width as u32,
                img.height as u32,
                color,
                fmt,
            )
            .map_err(|e| format!("encoding error: {e}"))?;
            Ok(out.into_inner())
        }
    }
}

fn encode_jpeg(img: &Image, quality: u8) -> std::io::Result<Vec<u8>> {
    std::panic::catch_unwind(|| -> std::io::Result<Vec<u8>> {
        let cs = if img.channels == 1 {
            mozjpeg::ColorSpace::JCS_GRAYSCALE
        } else {
            mozjpeg::ColorSpace::JCS_RGB
        };
        let mut c = mozjpeg::Compress::new(cs);
        c.set_fastest_defaults();
        c.set_size(img.width, img.height);
        c.set_quality(quality as f32);
        let mut started = c.start_compress(Vec::with_capacity(img.data.len() / 8))?;
        started.write_scanlines(&img.data)?;
        started.finish()
    })
    .map_err(|_| std::io::Error::other("libjpeg error"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ResizeOpts {
        ResizeOpts {
            image_size: 64,
            mode: ResizeMode::KeepRatioLargest,
            only_if_bigger: true,
            format: EncodeFormat::Jpg,
            quality: 95,
            max_pixels: 1 << 30,
        }
    }

    fn png(w: u32, h: u32, rgba: bool) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        if rgba {
            let img =
                image::RgbaImage::from_fn(w, h, |x, y| image::Rgba([x as u8, y as u8, 7, 128]));
            img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        } else {
            let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
            img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        }
        out.into_inner()
    }

    #[test]
    fn shrinks_the_longer_side_and_reencodes_jpeg() {
        let p = process(&png(200, 100, false), &opts(), None).unwrap();
        assert_eq!(
            (p.width, p.height, p.original_width, p.original_height),
            (64, 32, 200, 100)
        );
        assert!(p.bytes.starts_with(&[0xFF, 0xD8, 0xFF]));
        let back = decode(&p.bytes, 1 << 30).unwrap();
        assert_eq!((back.width, back.height, back.channels), (64, 32, 3));
    }

    #[test]
    fn small_images_keep_their_size_and_alpha_is_matted_on_white() {
        let img = decode(&png(10, 10, true), 1 << 30).unwrap();
        // alpha 128: 128/255*7 + 127 = 130.51 → 131
        assert_eq!(img.data[2], 131);
        let p = process(&png(10, 10, true), &opts(), None).unwrap();
        assert_eq!((p.width, p.height), (10, 10));
    }

    #[test]
    fn html_and_bombs_fail_with_their_messages() {
        assert_eq!(
            decode(b"<html>not an image</html>", 1 << 30).unwrap_err(),
            DECODE_ERROR
        );
        let e = decode(&png(200, 100, false), 10_000).unwrap_err();
        assert!(e.starts_with("image too large: 200x100"), "{e}");
    }

    #[test]
    fn border_and_center_crop_give_squares() {
        let mut o = opts();
        o.mode = ResizeMode::Border;
        let p = process(&png(200, 100, false), &o, None).unwrap();
        assert_eq!((p.width, p.height), (64, 64));
        o.mode = ResizeMode::CenterCrop;
        let p = process(&png(200, 100, false), &o, None).unwrap();
        assert_eq!((p.width, p.height), (64, 64));
    }
}
