//! The embedding pipeline of `tic-embed` and `tic-eval` (one implementation for both).
//!
//! Images: the caller's reader runs on its own thread and hands over the encoded images in
//! order; each batch of `batch_size` is decoded and eval-transformed on `num_workers` decode
//! threads while the model encodes the previous batch, and the features come back in input
//! order. Texts: tokenised and encoded in batches of `batch_size`, in order. The batching and
//! the forward passes are the same whoever calls, so the features are too.
//!
//! A failure says where it happened ([`EmbedError`]); each tool phrases it as it always has
//! ([`EmbedError::into_anyhow`] is tic-eval's phrasing).

use std::sync::mpsc::sync_channel;

use anyhow::{anyhow, Context};
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use crate::{preprocess, Clip};

/// Features of several inputs: `rows × dim` values, row-major, in input order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Features {
    /// Number of inputs.
    pub rows: usize,
    /// Feature size (0 when there were no inputs).
    pub dim: usize,
    /// The values, `rows · dim` of them.
    pub data: Vec<f32>,
}

/// A model that maps images and texts to embeddings (rows need not be normalised).
pub trait Encoder: Sync {
    /// Input image side in pixels (the eval transform's output size).
    fn image_size(&self) -> u32;
    /// Encodes `n` eval-transformed CHW images (`n · 3 · size · size` values).
    fn encode_images(&self, pixels: Vec<f32>, n: usize) -> anyhow::Result<Features>;
    /// Encodes texts.
    fn encode_texts(&self, texts: &[String]) -> anyhow::Result<Features>;
}

/// [`Encoder`] for a [`Clip`]: L2-normalised features computed on `device` in the model's
/// dtype, returned as f32.
pub struct ClipEncoder {
    /// The model.
    pub model: Clip,
    /// Where it runs.
    pub device: Device,
}

/// The rows of a `[n, d]` feature tensor, as f32.
fn features(t: &Tensor) -> anyhow::Result<Features> {
    let t = t.to_dtype(DType::F32)?;
    let (rows, dim) = t.dims2()?;
    let data = t.flatten_all()?.to_vec1::<f32>()?;
    Ok(Features { rows, dim, data })
}

impl Encoder for ClipEncoder {
    fn image_size(&self) -> u32 {
        self.model.config().vision_cfg.image_size as u32
    }

    fn encode_images(&self, pixels: Vec<f32>, n: usize) -> anyhow::Result<Features> {
        let s = self.image_size() as usize;
        let px = Tensor::from_vec(pixels, (n, 3, s, s), &self.device)?;
        features(&self.model.encode_image_normalized(&px)?)
    }

    fn encode_texts(&self, texts: &[String]) -> anyhow::Result<Features> {
        features(&self.model.encode_texts_normalized(texts)?)
    }
}

/// Options of the embedding pipeline.
#[derive(Debug, Clone, Copy)]
pub struct EmbedOptions {
    /// Images / texts per forward pass.
    pub batch_size: usize,
    /// Threads that decode + transform images (at least 1).
    pub num_workers: usize,
}

/// One image handed to [`embed_images`].
#[derive(Debug, Clone)]
pub struct ImageItem<T> {
    /// Where it came from (`shard:key`, a file path): named when it cannot be decoded.
    pub origin: String,
    /// The encoded image (JPEG, PNG or WebP).
    pub bytes: Vec<u8>,
    /// What the caller keeps alongside its features (a label; `()` for none).
    pub meta: T,
}

/// What [`embed_images`] returns: one feature row, origin and meta per image, in input order.
#[derive(Debug, Clone)]
pub struct ImageFeatures<T> {
    /// The features.
    pub features: Features,
    /// Each image's [`ImageItem::origin`].
    pub origins: Vec<String>,
    /// Each image's [`ImageItem::meta`].
    pub metas: Vec<T>,
}

/// Where the pipeline failed.
#[derive(Debug)]
pub enum EmbedError {
    /// Reading the input failed, or the encoder broke its contract: the error as it is.
    Other(anyhow::Error),
    /// An image could not be decoded.
    Decode {
        /// Its [`ImageItem::origin`].
        origin: String,
        /// The decoder's error.
        source: anyhow::Error,
    },
    /// A forward pass over images failed.
    EncodeImages {
        /// The origin of the batch's first image.
        first: String,
        /// The model's error.
        source: anyhow::Error,
    },
    /// A forward pass over texts failed.
    EncodeTexts {
        /// The batch's first text.
        first: String,
        /// The model's error.
        source: anyhow::Error,
    },
}

impl EmbedError {
    /// The error as `tic-eval` words it: the failing image, or the first input of the failing
    /// batch, as context over the cause.
    pub fn into_anyhow(self) -> anyhow::Error {
        match self {
            EmbedError::Other(e) => e,
            EmbedError::Decode { origin, source } => {
                source.context(format!("{origin}: cannot decode the image"))
            }
            EmbedError::EncodeImages { first, source } => {
                source.context(format!("encoding the batch starting at {first}"))
            }
            EmbedError::EncodeTexts { first, source } => {
                source.context(format!("encoding texts starting with {first:?}"))
            }
        }
    }
}

/// A decoded, eval-transformed batch on its way to the model.
struct Batch<T> {
    pixels: Vec<f32>,
    n: usize,
    origins: Vec<String>,
    metas: Vec<T>,
}

/// Decodes and eval-transforms `items` (in parallel on the current pool) into one batch.
fn prepare<T>(items: Vec<ImageItem<T>>, size: u32) -> Result<Batch<T>, EmbedError> {
    let n = items.len();
    let (mut origins, mut images, mut metas) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for it in items {
        origins.push(it.origin);
        images.push(it.bytes);
        metas.push(it.meta);
    }
    let rows: Vec<Vec<f32>> = images
        .par_iter()
        .zip(&origins)
        .map(|(bytes, origin)| {
            let img = preprocess::decode_rgb(bytes).map_err(|source| EmbedError::Decode {
                origin: origin.clone(),
                source,
            })?;
            Ok(preprocess::eval_transform(&img, size))
        })
        .collect::<Result<_, EmbedError>>()?;
    drop(images);
    let mut pixels = Vec::with_capacity(rows.iter().map(Vec::len).sum());
    rows.into_iter().for_each(|r| pixels.extend(r));
    Ok(Batch {
        pixels,
        n,
        origins,
        metas,
    })
}

/// Embeds the images that `read` hands over, in that order. `read` runs on a reader thread
/// and passes each image to its sink, which returns `false` once the pipeline has stopped (a
/// failure further on): `read` should then return. Batches of `opts.batch_size` are decoded on
/// `opts.num_workers` threads while `enc` encodes the previous one. `progress` is called with
/// the number of images done after each batch. The first failure in input order is returned.
pub fn embed_images<T: Send>(
    enc: &dyn Encoder,
    opts: EmbedOptions,
    read: impl FnOnce(&mut dyn FnMut(ImageItem<T>) -> bool) -> anyhow::Result<()> + Send,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<ImageFeatures<T>, EmbedError> {
    let bs = opts.batch_size.max(1);
    let size = enc.image_size();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.num_workers.max(1))
        .thread_name(|i| format!("tic-embed-decode-{i}"))
        .build()
        .context("starting decode threads")
        .map_err(EmbedError::Other)?;
    let (tx, rx) = sync_channel::<Result<Batch<T>, EmbedError>>(2);
    let mut out = ImageFeatures {
        features: Features::default(),
        origins: Vec::new(),
        metas: Vec::new(),
    };
    std::thread::scope(|scope| -> Result<(), EmbedError> {
        scope.spawn(move || {
            let send = |items: Vec<ImageItem<T>>| -> bool {
                let b = pool.install(|| prepare(items, size));
                let failed = b.is_err();
                tx.send(b).is_ok() && !failed
            };
            let mut pending: Vec<ImageItem<T>> = Vec::with_capacity(bs);
            let mut stopped = false;
            let mut sink = |item: ImageItem<T>| -> bool {
                if stopped {
                    return false;
                }
                pending.push(item);
                if pending.len() == bs {
                    stopped = !send(std::mem::take(&mut pending));
                }
                !stopped
            };
            match read(&mut sink) {
                Err(e) => {
                    let _ = tx.send(Err(EmbedError::Other(e)));
                }
                Ok(()) if !stopped && !pending.is_empty() => {
                    send(pending);
                }
                Ok(()) => {}
            }
        });
        for batch in rx {
            let b = batch?;
            append_encoded(enc, b, &mut out)?;
            progress(out.metas.len());
        }
        Ok(())
    })?;
    out.features.rows = out.metas.len();
    Ok(out)
}

/// Encodes batch `b` with `enc` and appends its features, origins and metas to `out`.
fn append_encoded<T>(
    enc: &dyn Encoder,
    b: Batch<T>,
    out: &mut ImageFeatures<T>,
) -> Result<(), EmbedError> {
    let f = enc
        .encode_images(b.pixels, b.n)
        .map_err(|source| EmbedError::EncodeImages {
            first: b.origins[0].clone(),
            source,
        })?;
    if f.rows != b.n {
        return Err(EmbedError::Other(anyhow!(
            "encoder returned {} rows for {} images",
            f.rows,
            b.n
        )));
    }
    out.features.dim = f.dim;
    out.features.data.extend_from_slice(&f.data);
    out.origins.extend(b.origins);
    out.metas.extend(b.metas);
    Ok(())
}

/// Embeds `texts` in batches of `batch_size`, in order. `progress` gets the number done after
/// each batch.
pub fn embed_texts(
    enc: &dyn Encoder,
    texts: &[String],
    batch_size: usize,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Features, EmbedError> {
    let mut out = Features {
        rows: texts.len(),
        ..Features::default()
    };
    let mut done = 0;
    for chunk in texts.chunks(batch_size.max(1)) {
        let f = enc
            .encode_texts(chunk)
            .map_err(|source| EmbedError::EncodeTexts {
                first: chunk[0].clone(),
                source,
            })?;
        out.dim = f.dim;
        out.data.extend_from_slice(&f.data);
        done += chunk.len();
        progress(done);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An encoder whose feature of an image is its first pixel value and of a text its length.
    struct Probe;

    impl Encoder for Probe {
        fn image_size(&self) -> u32 {
            8
        }
        fn encode_images(&self, pixels: Vec<f32>, n: usize) -> anyhow::Result<Features> {
            let step = pixels.len() / n.max(1);
            let data = pixels.iter().step_by(step.max(1)).copied().collect();
            Ok(Features {
                rows: n,
                dim: 1,
                data,
            })
        }
        fn encode_texts(&self, texts: &[String]) -> anyhow::Result<Features> {
            if texts.iter().any(|t| t == "fail") {
                anyhow::bail!("cannot encode");
            }
            let data = texts.iter().map(|t| t.len() as f32).collect();
            Ok(Features {
                rows: texts.len(),
                dim: 1,
                data,
            })
        }
    }

    fn png(gray: u8) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(8, 8, image::Rgb([gray, gray, gray]));
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    fn items(n: usize) -> Vec<ImageItem<usize>> {
        (0..n)
            .map(|i| ImageItem {
                origin: format!("s:{i}"),
                bytes: png(20 * i as u8),
                meta: i,
            })
            .collect()
    }

    fn run(items: Vec<ImageItem<usize>>, bs: usize) -> Result<ImageFeatures<usize>, EmbedError> {
        let opts = EmbedOptions {
            batch_size: bs,
            num_workers: 2,
        };
        embed_images(
            &Probe,
            opts,
            move |sink| {
                for it in items {
                    if !sink(it) {
                        break;
                    }
                }
                Ok(())
            },
            &|_| {},
        )
    }

    #[test]
    fn images_come_back_in_order_whatever_the_batch_size() {
        let one = run(items(7), 1).unwrap();
        for bs in [2, 3, 7, 64] {
            let got = run(items(7), bs).unwrap();
            assert_eq!(got.features, one.features, "{bs}");
            assert_eq!(got.metas, (0..7).collect::<Vec<_>>());
            assert_eq!(got.origins[6], "s:6");
        }
        assert_eq!((one.features.rows, one.features.dim), (7, 1));
        let none = run(Vec::new(), 4).unwrap();
        assert_eq!((none.features.rows, none.features.dim), (0, 0));
    }

    #[test]
    fn failures_name_where() {
        let mut bad = items(5);
        bad[3].bytes = b"not an image".to_vec();
        let e = format!("{:#}", run(bad, 2).unwrap_err().into_anyhow());
        assert!(e.starts_with("s:3: cannot decode the image"), "{e}");
        let e = embed_texts(&Probe, &["ok".into(), "fail".into()], 1, &|_| {}).unwrap_err();
        let e = format!("{:#}", e.into_anyhow());
        assert_eq!(e, "encoding texts starting with \"fail\": cannot encode");
        let t = embed_texts(&Probe, &["a".into(), "bb".into(), "ccc".into()], 2, &|_| {});
        assert_eq!(t.unwrap().data, [1.0, 2.0, 3.0]);
    }
}
