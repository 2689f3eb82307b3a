//! The command line of `tic-download`: DataComp's `download_upstream.py` flags under the same
//! names, the img2dataset settings that script fixes (as defaults), and tic-rs' own additions
//! (`--subset`, connection limits, timeouts). Kept apart from the run so the flags can
//! be documented and tested on their own.

use clap::{Parser, ValueEnum};
use std::path::PathBuf;

/// DataComp's pool scales (`scale_configs.available_scales` and `datacomp_1b`).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum Scale {
    /// 12.8M samples (`mlfoundations/datacomp_small`).
    Small,
    /// 128M samples.
    Medium,
    /// 1.28B samples.
    Large,
    /// 12.8B samples (parquets in `part_*/` folders, flattened after the download).
    Xlarge,
    /// DataComp-1B (`mlfoundations/datacomp_1b`).
    #[value(name = "datacomp_1b")]
    Datacomp1b,
}

impl Scale {
    /// The Hugging Face dataset repository holding this scale's metadata.
    pub fn hub_repo(self) -> &'static str {
        match self {
            Scale::Small => "mlfoundations/datacomp_small",
            Scale::Medium => "mlfoundations/datacomp_medium",
            Scale::Large => "mlfoundations/datacomp_large",
            Scale::Xlarge => "mlfoundations/datacomp_xlarge",
            Scale::Datacomp1b => "mlfoundations/datacomp_1b",
        }
    }
}

/// img2dataset's resize modes.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum ResizeMode {
    /// Keep the image as decoded (still re-encoded).
    No,
    /// Shorter side to `image_size`, ratio kept.
    KeepRatio,
    /// Longer side to `image_size`, ratio kept (DataComp's choice).
    KeepRatioLargest,
    /// Shorter side to `image_size`, then a centred square crop.
    CenterCrop,
    /// Longer side to `image_size`, then padded white to a square.
    Border,
}

/// Output image encodings img2dataset offers.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "lower")]
pub enum EncodeFormat {
    /// JPEG, quality `--encode_quality` (95).
    Jpg,
    /// PNG (lossless).
    Png,
    /// WebP (lossless in this build: the `image` crate encodes lossless WebP only).
    Webp,
}

impl EncodeFormat {
    /// The member extension (`jpg`, `png`, `webp`).
    pub fn ext(self) -> &'static str {
        match self {
            EncodeFormat::Jpg => "jpg",
            EncodeFormat::Png => "png",
            EncodeFormat::Webp => "webp",
        }
    }
}

/// img2dataset 1.40's `--output_format` choices (its `writer.py` sample writers). Every format
/// but `dummy` writes the `{id:08d}.parquet` table; all write `{id:08d}_stats.json`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "lower")]
pub enum OutputFormat {
    /// `{id:08d}.tar` of `KEY.jpg`/`KEY.txt`/`KEY.json` (DataComp's choice; what `tic-reshard`
    /// and every later stage read).
    Webdataset,
    /// A folder `{id:08d}/` holding `KEY.jpg`, `KEY.txt`, `KEY.json` per success.
    Files,
    /// The images inside `{id:08d}.parquet`, in a binary column named after the encoding.
    Parquet,
    /// TensorFlow's TFRecord: not supported (refused with the reason; see docs/download.md).
    Tfrecord,
    /// Only `{id:08d}_stats.json` (a download benchmark: no samples, no table).
    Dummy,
}

/// DataComp's `download_upstream.py`: metadata parquets from the Hugging Face hub, then every
/// image URL fetched, resized, face-blurred and written as WebDataset shards, as img2dataset
/// 1.40 does (same layout, statuses and per-shard files) — resumable, and with `--subset` only
/// the rows whose uid a TiC year file (or any uid npy) lists.
#[derive(Parser, Debug, Clone)]
#[command(name = "tic-download", version, about, long_about = None, rename_all = "snake_case")]
pub struct DownloadArgs {
    /// Competition scale (which `mlfoundations/datacomp_*` metadata to fetch).
    #[arg(long, value_enum, default_value = "small")]
    pub scale: Scale,
    /// Folder for the data: `metadata/` (unless --metadata_dir) and `shards/`.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Folder for the metadata parquets [default: DATA_DIR/metadata].
    #[arg(long)]
    pub metadata_dir: Option<PathBuf>,
    /// Also fetch the `.npz` embedding files with the metadata.
    #[arg(long)]
    pub download_npz: bool,
    /// Only fetch the metadata, no images.
    #[arg(long)]
    pub skip_shards: bool,
    /// Fetch the metadata again even if the metadata folder exists.
    #[arg(long)]
    pub overwrite_metadata: bool,
    /// Do not blur the `face_bboxes` boxes.
    #[arg(long)]
    pub skip_bbox_blurring: bool,
    /// Shards downloaded at once (img2dataset: processes).
    #[arg(long, default_value_t = 16)]
    pub processes_count: usize,
    /// Requests in flight per shard (img2dataset: threads per process).
    #[arg(long, default_value_t = 128)]
    pub thread_count: usize,
    /// Target size of the resize mode.
    #[arg(long, default_value_t = 512)]
    pub image_size: u32,
    /// How images are resized.
    #[arg(long, value_enum, default_value = "keep_ratio_largest")]
    pub resize_mode: ResizeMode,
    /// Resize images smaller than the target too (upscaling with Lanczos).
    #[arg(long)]
    pub no_resize_only_if_bigger: bool,
    /// Output image encoding.
    #[arg(long, value_enum, default_value = "jpg")]
    pub encode_format: EncodeFormat,
    /// Output format, as img2dataset 1.40 writes it (later tic-rs stages read webdataset only;
    /// tfrecord is refused).
    #[arg(long, value_enum, default_value = "webdataset")]
    pub output_format: OutputFormat,
    /// Retries of a failed download (transient errors only; see docs/download.md).
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
    /// Only the rows whose uid one of these `.npy` uid arrays lists (repeatable; TiC's
    /// `YEAR.npy`, eval uid lists). Rows of all parquets are then cut into shards in order.
    #[arg(long, value_name = "UIDS.npy")]
    pub subset: Vec<PathBuf>,
    /// Re-fetch, in finished shards, only the rows whose error is retryable (timeouts,
    /// connection errors, HTTP 5xx and 429, cut bodies: `http::is_transient_message`), rewriting
    /// just the shards that have such rows (atomically; other rows and shards are kept).
    #[arg(long)]
    pub retry_failed: bool,
    /// Socket timeout in seconds (connect, and each read), img2dataset's `timeout`.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// JPEG quality (img2dataset's `encode_quality`).
    #[arg(long, default_value_t = 95)]
    pub encode_quality: u8,
    /// Requests in flight over all shards.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Requests in flight to one host.
    #[arg(long, default_value_t = 16)]
    pub max_per_host: usize,
    /// Images with more pixels than this fail as a decompression bomb before decoding
    /// (OpenCV's `CV_IO_MAX_IMAGE_PIXELS`, 2^30).
    #[arg(long, default_value_t = 1 << 30)]
    pub max_image_pixels: u64,
    /// Largest response body accepted, in MB.
    #[arg(long, default_value_t = 100)]
    pub max_body_mb: u64,
    /// Rows per shard (DataComp: 10000).
    #[arg(long, default_value_t = 10_000)]
    pub number_sample_per_shard: usize,
    /// The user-agent token added to the User-Agent and matched against `X-Robots-Tag`
    /// (img2dataset's `user_agent_token`; DataComp gives none).
    #[arg(long)]
    pub user_agent_token: Option<String>,
    /// Ignore `X-Robots-Tag` opt-outs (img2dataset's `disallowed_header_directives=[]`).
    #[arg(long)]
    pub ignore_robots_tag: bool,
    /// Worker threads for decoding and resizing [default: the machine's cores].
    #[arg(long)]
    pub workers: Option<usize>,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}
