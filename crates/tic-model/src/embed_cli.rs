//! `tic-embed`'s command line and run: which images and texts to embed, the model, and the
//! files written (`image_features.npy`, `text_features.npy`, `logit_scale.json`). The
//! embedding itself is [`crate::embed`], the pipeline `tic-eval` uses too.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::DType;
use clap::Parser;
use tic_shards::pipe;
use tic_shards::storage::Location;
use tic_shards::wds;

use crate::device::DeviceSpec;
use crate::embed::{self, ClipEncoder, EmbedError, EmbedOptions, Features, ImageItem};
use crate::{checkpoint, pretrained, ClipConfig};

/// Embed images and/or texts with a CLIP model (no original script: OpenCLIP's encode_image/_text).
///
/// Writes DIR/image_features.npy (float32 [N_images, embed_dim], one row per image: the images of
/// a folder in sorted file-name order, WebDataset shards in sample order),
/// DIR/text_features.npy (one row per line of the text file, in order) and DIR/logit_scale.json.
/// Features are L2-normalised.
#[derive(Parser, Debug)]
#[command(version)]
pub struct EmbedArgs {
    /// Built-in architecture: ViT-B-16, ViT-B-32, ViT-L-14 (add -quickgelu for OpenAI weights),
    /// tiny-test; or `hf-hub:ORG/REPO`, an OpenCLIP Hub repository (its open_clip_config.json
    /// and weights; no --weights).
    #[arg(
        long,
        conflicts_with = "model_config",
        required_unless_present = "model_config"
    )]
    pub model: Option<String>,
    /// OpenCLIP model-config JSON file instead of --model.
    #[arg(long)]
    pub model_config: Option<PathBuf>,
    /// Weights: OpenCLIP safetensors, OpenCLIP epoch_N.pt checkpoint or .bin state dict, or
    /// OpenAI CLIP in the Hugging Face layout (model.safetensors / pytorch_model.bin); or an
    /// OpenCLIP pretrained tag of --model (e.g. `openai`, `datacomp_xl_s13b_b90k`), or
    /// `hf-hub:ORG/REPO/FILE`. Hub files come from the Hugging Face cache, else the Hub
    /// (HF_HUB_OFFLINE=1: the cache only), as for tic-eval --use_model.
    #[arg(long, value_name = "FILE|TAG")]
    pub weights: Option<String>,
    /// A folder of images (.jpg/.jpeg/.png/.webp), or WebDataset shards: .tar files, a folder of
    /// .tar files, or a brace pattern such as `shards/{00000..00009}.tar`; a shard may be a
    /// webdataset `pipe:CMD` URL, e.g. `pipe:aws s3 cp s3://bucket/{00000..00009}.tar -` (run
    /// through `sh -c` once per shard, its output the tar stream).
    #[arg(long, num_args = 1..)]
    pub images: Vec<String>,
    /// A UTF-8 text file with one caption per line.
    #[arg(long)]
    pub texts: Option<PathBuf>,
    /// Output folder (created if missing).
    #[arg(long)]
    pub output: PathBuf,
    /// Batch size for the forward passes.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Device: `cpu` or `cuda[:N]` (needs the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Compute dtype: f32, bf16 or f16 (features are written as float32).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
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

/// Where `--images` points: image files, or WebDataset shards.
enum ImageSource {
    Files(Vec<PathBuf>),
    Shards(Vec<Location>),
}

/// The images of a folder (sorted by file name), else its `.tar` shards (sorted).
fn folder_source(dir: &Path) -> Result<ImageSource> {
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

/// `--images`: one folder, or shard files, brace patterns and `pipe:` URLs.
fn image_source(args: &[String]) -> Result<ImageSource> {
    if args.len() == 1 && Path::new(&args[0]).is_dir() {
        return folder_source(Path::new(&args[0]));
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

/// Hands each sample's image of a WebDataset shard to `sink`, in sample order; `false` once
/// `sink` refused one. Samples are grouped as webdataset does ([`tic_shards::wds::scan_shard`]);
/// the image member is the first of [`IMAGE_EXTS`] present (OpenCLIP's
/// `rename(image="jpg;png;jpeg;webp")`). A corrupt shard is an error naming it and the byte
/// offset.
fn shard_images(shard: &Location, sink: &mut dyn FnMut(ImageItem<()>) -> bool) -> Result<bool> {
    let data = shard
        .read()
        .with_context(|| format!("reading shard {shard}"))?;
    let scan = wds::scan_shard(&data, &shard.to_string());
    if let Some(e) = scan.errors.first() {
        bail!("{e}");
    }
    for sample in scan.samples {
        match IMAGE_EXTS.iter().find_map(|e| sample.member(e)) {
            Some(m) => {
                let item = ImageItem {
                    origin: format!("{shard}:{}", sample.key),
                    bytes: wds::member_bytes(&data, m).to_vec(),
                    meta: (),
                };
                if !sink(item) {
                    return Ok(false);
                }
            }
            // Logged under the binary's name, as before the run moved into the library.
            None => tracing::warn!(
                target: "tic_embed",
                "{}: sample {} has no image member, skipped",
                shard,
                sample.key
            ),
        }
    }
    Ok(true)
}

/// Hands every image of `src` to `sink`, in order, until it refuses one.
fn read_images(src: &ImageSource, sink: &mut dyn FnMut(ImageItem<()>) -> bool) -> Result<()> {
    match src {
        ImageSource::Files(files) => {
            for p in files {
                let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
                let origin = p.display().to_string();
                if !sink(ImageItem {
                    origin,
                    bytes,
                    meta: (),
                }) {
                    break;
                }
            }
        }
        ImageSource::Shards(shards) => {
            for s in shards {
                if !shard_images(s, sink)? {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// tic-embed's wording of a pipeline failure: an image that cannot be decoded is named, other
/// errors are passed on as they are.
fn worded(e: EmbedError) -> anyhow::Error {
    match e {
        EmbedError::Decode { origin, source } => source.context(format!("image {origin}")),
        EmbedError::Other(e)
        | EmbedError::EncodeImages { source: e, .. }
        | EmbedError::EncodeTexts { source: e, .. } => e,
    }
}

/// The features of every image of `src`, in order.
fn embed_images(enc: &ClipEncoder, src: ImageSource, opts: EmbedOptions) -> Result<Features> {
    let total = match &src {
        ImageSource::Files(files) => Some(files.len() as u64),
        ImageSource::Shards(_) => None,
    };
    let pb = tic_shards::cli::progress(total.unwrap_or(0), "images", false);
    if total.is_none() {
        pb.unset_length();
    }
    let read = move |sink: &mut dyn FnMut(ImageItem<()>) -> bool| read_images(&src, sink);
    let out = embed::embed_images(enc, opts, read, &|n| pb.set_position(n as u64));
    pb.finish();
    Ok(out.map_err(worded)?.features)
}

/// The features of every line of the text file `path`, in order.
fn embed_texts(enc: &ClipEncoder, path: &Path, batch_size: usize) -> Result<Features> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let lines: Vec<String> = std::io::BufReader::new(f)
        .lines()
        .enumerate()
        .map(|(i, l)| l.with_context(|| format!("{}: line {} is not UTF-8", path.display(), i + 1)))
        .collect::<Result<_>>()?;
    let pb = tic_shards::cli::progress(lines.len() as u64, "texts", false);
    let out = embed::embed_texts(enc, &lines, batch_size, &|n| pb.set_position(n as u64));
    pb.finish();
    out.map_err(worded)
}

/// Writes a float32 2-D npy atomically (temp file in the same folder, then rename).
fn write_npy(path: &Path, rows: &[f32], dim: usize) -> Result<()> {
    let n = rows.len() / dim;
    crate::write_output(path, &tic_shards::npy::write_f32_matrix(rows, n, dim))
}

fn write_json_atomic(path: &Path, v: &serde_json::Value) -> Result<()> {
    crate::write_output(
        path,
        format!("{}\n", serde_json::to_string_pretty(v)?).as_bytes(),
    )
}

/// Runs `tic-embed`: loads the model, embeds `--images` and `--texts`, writes the features and
/// `logit_scale.json` under `--output`.
pub fn run(args: &EmbedArgs) -> Result<()> {
    if args.images.is_empty() && args.texts.is_none() {
        bail!("nothing to do: give --images and/or --texts");
    }
    if args.batch_size == 0 {
        bail!("--batch-size must be positive");
    }
    let config = args
        .model_config
        .as_deref()
        .map(ClipConfig::from_json_file)
        .transpose()?;
    let label = match (&args.model, &args.model_config) {
        (Some(m), _) => m.clone(),
        (None, Some(p)) => p.display().to_string(),
        (None, None) => unreachable!("clap requires one"),
    };
    let resolved = pretrained::resolve(
        &label,
        args.weights.as_deref(),
        config,
        &pretrained::HubCache::from_env(),
    )
    .context("--model / --weights")?;
    let cfg = resolved.config;
    // One process: a bare `cuda` / `auto` is GPU 0.
    let device = args.device.parse::<DeviceSpec>()?.open(0)?;
    let dtype = parse_dtype(&args.dtype)?;
    let model = checkpoint::load_clip(&cfg, &resolved.weights, dtype, &device)?;
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let dim = cfg.embed_dim;
    let enc = ClipEncoder { model, device };
    if !args.images.is_empty() {
        let src = image_source(&args.images)?;
        // Decoding keeps every core busy, as it did before the pipeline overlapped it with
        // the forward passes.
        let opts = EmbedOptions {
            batch_size: args.batch_size,
            num_workers: rayon::current_num_threads(),
        };
        let rows = embed_images(&enc, src, opts)?.data;
        write_npy(&args.output.join("image_features.npy"), &rows, dim)?;
        eprintln!("wrote {} image features", rows.len() / dim);
    }
    if let Some(t) = &args.texts {
        let rows = embed_texts(&enc, t, args.batch_size)?.data;
        write_npy(&args.output.join("text_features.npy"), &rows, dim)?;
        eprintln!("wrote {} text features", rows.len() / dim);
    }
    let ls: f32 = enc.model.logit_scale.to_dtype(DType::F32)?.to_scalar()?;
    write_json_atomic(
        &args.output.join("logit_scale.json"),
        &serde_json::json!({"logit_scale": ls, "logit_scale_exp": ls.exp()}),
    )
}
