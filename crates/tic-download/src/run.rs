//! The whole `tic-download` command: metadata (hub fetch unless present), then the shards —
//! `--processes_count` shards at a time on one tokio runtime, `--thread_count` rows in flight per
//! shard, decoding and resizing on a rayon pool sized to the machine — skipping shards a previous
//! run finished (checked: stats, table rows and samples agree, per `--output_format`) and
//! redoing the others.
//! A shard that fails (disk full, unreadable metadata) is reported and counted; the others go on.

use crate::args::{DownloadArgs, OutputFormat};
use crate::blur::BBox;
use crate::http::{is_transient_message, FetchOpts, Fetcher};
use crate::metadata::{self, ShardPlan, ShardRows};
use crate::pixels::{self, ResizeOpts};
use crate::writer::{self, RowOutcome, ShardWriter, Status};
use anyhow::{Context, Result};
use futures::StreamExt;
use indicatif::ProgressBar;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Shards downloaded by this run.
    pub shards_done: u64,
    /// Shards a previous run had finished (checked and kept).
    pub shards_kept: u64,
    /// Shards that failed (rerun to redo them).
    pub failed_shards: u64,
    /// Finished shards rewritten by `--retry_failed` (they had rows with a retryable error).
    pub shards_retried: u64,
    /// Rows fetched by this run.
    pub rows: u64,
    /// Of which successes.
    pub successes: u64,
}

/// Counters behind the progress bar.
#[derive(Default)]
struct Counters {
    rows: AtomicU64,
    ok: AtomicU64,
    dl: AtomicU64,
    resize: AtomicU64,
    bytes: AtomicU64,
}

/// What every row task needs.
struct Ctx {
    fetcher: Fetcher,
    pool: rayon::ThreadPool,
    opts: ResizeOpts,
    dir: PathBuf,
    /// `--output_format` (`opts.format` is the image encoding).
    output_format: OutputFormat,
    per_shard: usize,
    thread_count: usize,
    retry_failed: bool,
    counters: Counters,
    pb: ProgressBar,
    started: Instant,
}

/// Runs `tic-download` with `args`.
pub fn run(args: &DownloadArgs) -> Result<Summary> {
    if args.output_format == OutputFormat::Tfrecord {
        anyhow::bail!("{}", writer::unsupported_tfrecord());
    }
    let metadata_dir = args
        .metadata_dir
        .clone()
        .unwrap_or_else(|| args.data_dir.join("metadata"));
    if args.overwrite_metadata || !metadata_dir.exists() {
        if metadata_dir.exists() {
            tracing::info!("Cleaning up {}", metadata_dir.display());
            std::fs::remove_dir_all(&metadata_dir)
                .with_context(|| format!("removing {}", metadata_dir.display()))?;
        }
        tracing::info!("Downloading metadata to {}...", metadata_dir.display());
        metadata::fetch_from_hub(args.scale, &metadata_dir, args.download_npz, !args.quiet)?;
    } else {
        tracing::info!(
            "Skipping download of metadata because {} exists. Use --overwrite_metadata to force re-downloading.",
            metadata_dir.display()
        );
    }
    if args.skip_shards {
        return Ok(Summary::default());
    }
    let files = metadata::parquet_files(&metadata_dir)?;
    let subset = if args.subset.is_empty() {
        None
    } else {
        Some(metadata::read_subsets(&args.subset)?)
    };
    let dir = args.data_dir.join("shards");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _lock = tic_shards::lock::DirLock::acquire(&dir, "tic-download")?;
    tic_shards::atomic::remove_stale_temps(&dir)
        .with_context(|| format!("cleaning {}", dir.display()))?;
    let plan = ShardPlan::new(
        files,
        !args.skip_bbox_blurring,
        subset,
        args.number_sample_per_shard,
    );
    let ctx = Arc::new(make_ctx(args, dir)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let summary = runtime.block_on(drive(ctx.clone(), plan, args.processes_count.max(1)))?;
    ctx.pb.finish_and_clear();
    tracing::info!(
        "{} shards downloaded, {} kept from a previous run ({} of them rewritten by --retry_failed), {} failed; {} rows fetched, {} successes in {:.1}s",
        summary.shards_done,
        summary.shards_kept,
        summary.shards_retried,
        summary.failed_shards,
        summary.rows,
        summary.successes,
        ctx.started.elapsed().as_secs_f64()
    );
    Ok(summary)
}

fn make_ctx(args: &DownloadArgs, dir: PathBuf) -> Result<Ctx> {
    let fetcher = Fetcher::new(FetchOpts {
        timeout: Duration::from_secs_f64(args.timeout),
        retries: args.retries,
        token: args
            .user_agent_token
            .as_ref()
            .map(|t| t.trim().to_lowercase()),
        robots: !args.ignore_robots_tag,
        max_connections: args.max_connections,
        max_per_host: args.max_per_host,
        max_body: args.max_body_mb << 20,
        backoff: Duration::from_millis(500),
    })?;
    let mut pool =
        rayon::ThreadPoolBuilder::new().thread_name(|i| format!("tic-download-pixels-{i}"));
    if let Some(n) = args.workers {
        pool = pool.num_threads(n);
    }
    let pb = tic_shards::cli::progress(0, "rows", args.quiet);
    Ok(Ctx {
        fetcher,
        pool: pool.build()?,
        opts: ResizeOpts {
            image_size: args.image_size,
            mode: args.resize_mode,
            only_if_bigger: !args.no_resize_only_if_bigger,
            format: args.encode_format,
            quality: args.encode_quality,
            max_pixels: args.max_image_pixels,
        },
        dir,
        output_format: args.output_format,
        per_shard: args.number_sample_per_shard,
        thread_count: args.thread_count.max(1),
        retry_failed: args.retry_failed,
        counters: Counters::default(),
        pb,
        started: Instant::now(),
    })
}

/// Plans shards and keeps `parallel` of them downloading.
async fn drive(ctx: Arc<Ctx>, mut plan: ShardPlan, parallel: usize) -> Result<Summary> {
    let mut summary = Summary::default();
    let mut set = tokio::task::JoinSet::new();
    while let Some(shards) = tokio::task::block_in_place(|| plan.next_shards())? {
        for s in shards {
            ctx.pb.inc_length(s.rows.num_rows() as u64);
            let mut previous = None;
            let ext = ctx.opts.format.ext();
            if writer::shard_is_complete(&ctx.dir, s.id, s.rows.num_rows(), ctx.output_format, ext)
            {
                summary.shards_kept += 1;
                previous = match ctx.retry_failed {
                    true => tokio::task::block_in_place(|| retry_plan(&ctx, s.id)),
                    false => None,
                };
                if previous.is_none() {
                    ctx.pb.inc(s.rows.num_rows() as u64);
                    continue;
                }
                summary.shards_retried += 1;
            }
            // A stats file that does not check out, or of a shard --retry_failed rewrites, is
            // removed first: until its new stats file the shard is unfinished (a kill redoes it).
            let stats = writer::stats_file(&ctx.dir, s.id);
            if stats.exists() {
                std::fs::remove_file(&stats)
                    .with_context(|| format!("removing {}", stats.display()))?;
            }
            while set.len() >= parallel {
                join_one(&mut set, &mut summary).await?;
            }
            let id = s.id;
            let c = ctx.clone();
            set.spawn(async move { (id, download_shard(c, s, previous).await) });
        }
    }
    while !set.is_empty() {
        join_one(&mut set, &mut summary).await?;
    }
    Ok(summary)
}

/// `--retry_failed` on a finished shard: its previous outcomes with `None` for the rows whose
/// error is retryable ([`is_transient_message`]), or `None` when it has none (kept as is). A shard
/// that cannot be read back is redone whole, and so is a `dummy` shard (no per-row record) whose
/// stats count a retryable error.
fn retry_plan(ctx: &Ctx, id: u64) -> Option<Vec<Option<RowOutcome>>> {
    let ext = ctx.opts.format.ext();
    if ctx.output_format == OutputFormat::Dummy {
        let stats = writer::read_stats(&ctx.dir, id).ok()?;
        let errors = stats.get("status_dict")?.as_object()?;
        return errors
            .keys()
            .any(|m| is_transient_message(m))
            .then(Vec::new);
    }
    let prev = match writer::read_outcomes(&ctx.dir, id, ctx.per_shard, ctx.output_format, ext) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("shard {id:08}: {e:#}; redoing it");
            return Some(Vec::new());
        }
    };
    let retry = |o: &RowOutcome| {
        o.status == Status::FailedToDownload
            && o.error_message.as_deref().is_some_and(is_transient_message)
    };
    prev.iter().any(retry).then(|| {
        prev.into_iter()
            .map(|o| (!retry(&o)).then_some(o))
            .collect()
    })
}

/// Whether a shard error is the output running out of room (ENOSPC, EFBIG, EDQUOT): then every
/// other shard fails too, so the run stops instead of going on.
fn is_out_of_space(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
    e.chain().any(|c| {
        let io = c.downcast_ref::<std::io::Error>();
        io.is_some_and(|io| matches!(io.kind(), StorageFull | FileTooLarge | QuotaExceeded))
            // Errors of other crates (parquet, tar) that carry the OS message only.
            || ["(os error 27)", "(os error 28)", "(os error 122)"]
                .iter()
                .any(|m| c.to_string().contains(m))
    })
}

type ShardResult = (u64, Result<(u64, u64)>);

/// Waits for one shard; a full disk stops the run (the error names the shard and file).
async fn join_one(
    set: &mut tokio::task::JoinSet<ShardResult>,
    summary: &mut Summary,
) -> Result<()> {
    match set.join_next().await {
        Some(Ok((_, Ok((rows, ok))))) => {
            summary.shards_done += 1;
            summary.rows += rows;
            summary.successes += ok;
        }
        Some(Ok((id, Err(e)))) if is_out_of_space(&e) => {
            return Err(e.context(format!(
                "shard {id:08}: out of space; stopping (free space and rerun the same command: finished shards are kept)"
            )));
        }
        Some(Ok((id, Err(e)))) => {
            tracing::error!("shard {id:08} failed: {e:#}");
            summary.failed_shards += 1;
        }
        Some(Err(e)) => {
            tracing::error!("a shard task died: {e}");
            summary.failed_shards += 1;
        }
        None => {}
    }
    Ok(())
}

/// Downloads one shard, or with `previous` (`--retry_failed`) only its rows that are `None`
/// there, the others kept; returns (rows fetched, successes among them).
async fn download_shard(
    ctx: Arc<Ctx>,
    s: ShardRows,
    previous: Option<Vec<Option<RowOutcome>>>,
) -> Result<(u64, u64)> {
    let rows = s.rows.clone();
    let n = rows.num_rows();
    let mut previous = previous.filter(|p| p.len() == n).unwrap_or_default();
    let todo: Vec<usize> = (0..n)
        .filter(|&i| previous.get(i).is_none_or(Option::is_none))
        .collect();
    let schema = rows.schema();
    let url_col = rows.column(schema.index_of("url")?).clone();
    let bbox_col = schema
        .index_of(metadata::BBOX_COL)
        .ok()
        .map(|i| rows.column(i).clone());
    let ext = ctx.opts.format.ext();
    let mut w = tokio::task::block_in_place(|| -> Result<ShardWriter> {
        let mut w =
            ShardWriter::create(&ctx.dir, s.id, rows, ctx.per_shard, ctx.output_format, ext)?;
        for (i, o) in previous.iter_mut().enumerate() {
            if let Some(o) = o.take() {
                ctx.pb.inc(1);
                w.add(i, o)?;
            }
        }
        Ok(w)
    })?;
    let fetched = todo.len() as u64;
    let mut results = futures::stream::iter(todo)
        .map(|i| {
            let ctx = ctx.clone();
            let url = metadata::string_at(url_col.as_ref(), i);
            let boxes = bbox_col
                .as_ref()
                .and_then(|c| metadata::boxes_at(c.as_ref(), i));
            async move { (i, process_row(&ctx, url, boxes).await) }
        })
        .buffer_unordered(ctx.thread_count);
    let mut ok = 0;
    while let Some((i, o)) = results.next().await {
        ok += u64::from(o.status == Status::Success);
        count(&ctx, &o);
        tokio::task::block_in_place(|| w.add(i, o))?;
    }
    tokio::task::block_in_place(|| w.finish())?;
    Ok((fetched, ok))
}

fn count(ctx: &Ctx, o: &RowOutcome) {
    let c = &ctx.counters;
    let rows = c.rows.fetch_add(1, Relaxed) + 1;
    match o.status {
        Status::Success => c.ok.fetch_add(1, Relaxed),
        Status::FailedToDownload => c.dl.fetch_add(1, Relaxed),
        Status::FailedToResize => c.resize.fetch_add(1, Relaxed),
    };
    ctx.pb.inc(1);
    if rows % 64 == 1 {
        let mb = c.bytes.load(Relaxed) as f64 / 1e6 / ctx.started.elapsed().as_secs_f64().max(1e-3);
        ctx.pb.set_message(format!(
            "ok {} | download failed {} | resize failed {} | {mb:.1} MB/s",
            c.ok.load(Relaxed),
            c.dl.load(Relaxed),
            c.resize.load(Relaxed)
        ));
    }
}

fn failed(status: Status, msg: String) -> RowOutcome {
    RowOutcome {
        status,
        error_message: Some(msg),
        sizes: None,
        exif: None,
        sha256: None,
        image: None,
    }
}

/// Fetches, then decodes / resizes / encodes on the pixel pool.
async fn process_row(ctx: &Arc<Ctx>, url: Option<String>, boxes: Option<Vec<BBox>>) -> RowOutcome {
    let Some(url) = url else {
        return failed(Status::FailedToDownload, "unknown url type: 'None'".into());
    };
    let body = match ctx.fetcher.fetch(&url).await {
        Ok(b) => b,
        Err(e) => return failed(Status::FailedToDownload, e.message),
    };
    ctx.counters.bytes.fetch_add(body.len() as u64, Relaxed);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let opts = ctx.opts.clone();
    ctx.pool.spawn(move || {
        let res = pixels::process(&body, &opts, boxes.as_deref());
        let _ = tx.send((res, body));
    });
    let Ok((res, body)) = rx.await else {
        return failed(Status::FailedToResize, "pixel worker died".into());
    };
    match res {
        Err(e) => failed(Status::FailedToResize, e),
        Ok(p) => RowOutcome {
            status: Status::Success,
            error_message: None,
            sizes: Some([p.width, p.height, p.original_width, p.original_height]),
            exif: crate::exif::img2dataset_exif(&body),
            sha256: Some(hex::encode(Sha256::digest(&body))),
            image: Some(p.bytes),
        },
    }
}
