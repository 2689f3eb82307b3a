//! `tic-embed`: embed images and/or texts with a CLIP model and write L2-normalised features.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use tic_model::{checkpoint, preprocess, Clip, ClipConfig};
use tic_shards::storage::Location;
use tic_shards::{pipe, wds};

/// Embed images and/or texts with a CLIP model (no original script: OpenCLIP's encode_image/_text).
///
/// Writes DIR/image_features.npy (float32 [N_images, embed_dim], one row per image: the images of
/// a folder in sorted file-name order, WebDataset shards in sample order),
/// DIR/text_features.npy (one row per line of the text file, in order) and DIR/logit_scale.json.
/// Features are L2-normalised.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Built-in architecture: ViT-B-16, ViT-B-32, ViT-L-14 (add -quickgelu for OpenAI weights),
    /// tiny-test.
    #[arg(
        long,
        conflicts_with = "model_config",
        required_unless_present = "model_config"
    )]
    model: Option<String>,
    /// OpenCLIP model-config JSON file instead of --model.
    #[arg(long)]
    model_config: Option<PathBuf>,
    /// Weights: OpenCLIP safetensors, OpenCLIP epoch_N.pt checkpoint, or OpenAI CLIP in the
    /// Hugging Face layout (model.safetensors / pytorch_model.bin).
    #[arg(long)]
    weights: PathBuf,
    /// A folder of images (.jpg/.jpeg/.png/.webp), or WebDataset shards: .tar files, a folder of
    /// .tar files, or a brace pattern such as `shards/{00000..00009}.tar`; a shard may be a
    /// webdataset `pipe:CMD` URL, e.g. `pipe:aws s3 cp s3://bucket/{00000..00009}.tar -` (run
    /// through `sh -c` once per shard, its output the tar stream).
    #[arg(long, num_args = 1..)]
    images: Vec<String>,
    /// A UTF-8 text file with one caption per line.
    #[arg(long)]
    texts: Option<PathBuf>,
    /// Output folder (created if missing).
    #[arg(long)]
    output: PathBuf,
    /// Batch size for the forward passes.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Device: `cpu` or `cuda[:N]` (needs the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Compute dtype: f32, bf16 or f16 (features are written as float32).
    #[arg(long, default_value = "f32")]
    dtype: String,
}

fn parse_device(s: &str) -> Result<Device> {
    match s {
        "cpu" => Ok(Device::Cpu),
        s if s.starts_with("cuda") => {
            let idx = s
                .strip_prefix("cuda:")
                .map(str::parse::<usize>)
                .transpose()?
                .unwrap_or(0);
            Device::new_cuda(idx)
                .context("opening the CUDA device (was tic-model built with --features cuda?)")
        }
        _ => bail!("unknown --device {s:?} (cpu, cuda, cuda:N)"),
    }
}

fn parse_dtype(s: &str) -> Result<DType> {
    Ok(match s {
        "f32" => DType::F32,
        "bf16" => DType::BF16,
        "f16" => DType::F16,
        _ => bail!("unknown --dtype {s:?} (f32, bf16, f16)"),
    })
}

const IMAGE_EXTS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

enum ImageSource {
    Files(Vec<PathBuf>),
    Shards(Vec<Location>),
}

fn image_source(args: &[String]) -> Result<ImageSource> {
    if args.len() == 1 && Path::new(&args[0]).is_dir() {
        let dir = Path::new(&args[0]);
        let mut files = Vec::new();
        let mut tars = Vec::new();
        for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
            let p = e?.path();
            let ext = p
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            match ext.as_deref() {
                Some(x) if IMAGE_EXTS.contains(&x) => files.push(p),
                Some("tar") => tars.push(p),
                _ => {}
            }
        }
        // Sorted by file name (as bytes), like Python's sorted(os.listdir()).
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        tars.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        if !files.is_empty() {
            return Ok(ImageSource::Files(files));
        }
        if !tars.is_empty() {
            return Ok(ImageSource::Shards(
                tars.into_iter().map(Location::Local).collect(),
            ));
        }
        bail!(
            "{}: no images (.jpg/.jpeg/.png/.webp) or .tar shards",
            dir.display()
        );
    }
    let mut shards = Vec::new();
    for a in args {
        for p in pipe::expand_braces(a)? {
            if pipe::is_pipe(&p) {
                shards.push(Location::parse(&p)?);
                continue;
            }
            let p = PathBuf::from(p);
            if !p.is_file() {
                bail!(
                    "{}: not a file (expected a .tar shard or an image folder)",
                    p.display()
                );
            }
            shards.push(Location::Local(p));
        }
    }
    Ok(ImageSource::Shards(shards))
}

/// Calls `f` with each sample's image bytes from a WebDataset shard, in sample order. Samples are
/// grouped as webdataset does ([`tic_shards::wds::scan_shard`]); the image member is the first
/// of [`IMAGE_EXTS`] present (OpenCLIP's `rename(image="jpg;png;jpeg;webp")`). A corrupt
/// shard is an error naming it and the byte offset.
fn for_each_shard_image(
    shard: &Location,
    mut f: impl FnMut(String, Vec<u8>) -> Result<()>,
) -> Result<()> {
    let data = shard
        .read()
        .with_context(|| format!("reading shard {shard}"))?;
    let scan = wds::scan_shard(&data, &shard.to_string());
    if let Some(e) = scan.errors.first() {
        bail!("{e}");
    }
    for sample in scan.samples {
        match IMAGE_EXTS.iter().find_map(|e| sample.member(e)) {
            Some(m) => f(sample.key.clone(), wds::member_bytes(&data, m).to_vec())?,
            None => tracing::warn!(
                "{}: sample {} has no image member, skipped",
                shard,
                sample.key
            ),
        }
    }
    Ok(())
}

fn progress(len: Option<u64>, what: &str) -> ProgressBar {
    let pb = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec})",
        )
        .expect("valid template"),
    );
    pb.set_message(what.to_string());
    pb
}

fn embed_images(model: &Clip, src: ImageSource, bs: usize, device: &Device) -> Result<Vec<f32>> {
    let size = model.config().vision_cfg.image_size as u32;
    let mut rows = Vec::new();
    let run = |batch: &mut Vec<(String, Vec<u8>)>, rows: &mut Vec<f32>| -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let chw: Vec<Vec<f32>> = batch
            .par_iter()
            .map(|(name, b)| {
                let img = preprocess::decode_rgb(b).with_context(|| format!("image {name}"))?;
                Ok(preprocess::eval_transform(&img, size))
            })
            .collect::<Result<_>>()?;
        let px = preprocess::stack_chw(chw, size, device)?;
        let f = model.encode_image_normalized(&px)?.to_dtype(DType::F32)?;
        rows.extend(f.flatten_all()?.to_vec1::<f32>()?);
        batch.clear();
        Ok(())
    };
    let mut batch: Vec<(String, Vec<u8>)> = Vec::with_capacity(bs);
    match src {
        ImageSource::Files(files) => {
            let pb = progress(Some(files.len() as u64), "images");
            for p in files {
                let b = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
                batch.push((p.display().to_string(), b));
                if batch.len() == bs {
                    run(&mut batch, &mut rows)?;
                }
                pb.inc(1);
            }
            run(&mut batch, &mut rows)?;
            pb.finish();
        }
        ImageSource::Shards(shards) => {
            let pb = progress(None, "images");
            for s in shards {
                for_each_shard_image(&s, |key, bytes| {
                    batch.push((format!("{s}:{key}"), bytes));
                    if batch.len() == bs {
                        run(&mut batch, &mut rows)?;
                    }
                    pb.inc(1);
                    Ok(())
                })?;
            }
            run(&mut batch, &mut rows)?;
            pb.finish();
        }
    }
    Ok(rows)
}

fn embed_texts(model: &Clip, path: &Path, bs: usize) -> Result<Vec<f32>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let lines: Vec<String> = std::io::BufReader::new(f)
        .lines()
        .enumerate()
        .map(|(i, l)| l.with_context(|| format!("{}: line {} is not UTF-8", path.display(), i + 1)))
        .collect::<Result<_>>()?;
    let pb = progress(Some(lines.len() as u64), "texts");
    let mut rows = Vec::new();
    for chunk in lines.chunks(bs) {
        let f = model.encode_texts_normalized(chunk)?.to_dtype(DType::F32)?;
        rows.extend(f.flatten_all()?.to_vec1::<f32>()?);
        pb.inc(chunk.len() as u64);
    }
    pb.finish();
    Ok(rows)
}

/// Writes a float32 2-D npy atomically (temp file in the same folder, then rename).
fn write_npy(path: &Path, rows: &[f32], dim: usize) -> Result<()> {
    let n = rows.len() / dim;
    tic_model::write_output(path, &tic_shards::npy::write_f32_matrix(rows, n, dim))
}

fn write_json_atomic(path: &Path, v: &serde_json::Value) -> Result<()> {
    tic_model::write_output(
        path,
        format!("{}\n", serde_json::to_string_pretty(v)?).as_bytes(),
    )
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    tic_model::heap::reuse_freed_buffers();
    if args.images.is_empty() && args.texts.is_none() {
        bail!("nothing to do: give --images and/or --texts");
    }
    if args.batch_size == 0 {
        bail!("--batch-size must be positive");
    }
    let cfg = match (&args.model, &args.model_config) {
        (_, Some(p)) => ClipConfig::from_json_file(p)?,
        (Some(m), None) => ClipConfig::builtin(m)?,
        (None, None) => unreachable!("clap requires one"),
    };
    let device = parse_device(&args.device)?;
    let dtype = parse_dtype(&args.dtype)?;
    let model = checkpoint::load_clip(&cfg, &args.weights, dtype, &device)?;
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let dim = cfg.embed_dim;
    if !args.images.is_empty() {
        let src = image_source(&args.images)?;
        let rows = embed_images(&model, src, args.batch_size, &device)?;
        write_npy(&args.output.join("image_features.npy"), &rows, dim)?;
        eprintln!("wrote {} image features", rows.len() / dim);
    }
    if let Some(t) = &args.texts {
        let rows = embed_texts(&model, t, args.batch_size)?;
        write_npy(&args.output.join("text_features.npy"), &rows, dim)?;
        eprintln!("wrote {} text features", rows.len() / dim);
    }
    let ls: f32 = model.logit_scale.to_dtype(DType::F32)?.to_scalar()?;
    write_json_atomic(
        &args.output.join("logit_scale.json"),
        &serde_json::json!({"logit_scale": ls, "logit_scale_exp": ls.exp()}),
    )?;
    Ok(())
}
