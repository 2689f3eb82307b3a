//! `tic-eval`: DataComp's `evaluate.py` (with the TiC patch) for tic-rs models.
//!
//! Evaluates one model on every task of a `tasklist.yml` (CLIP_benchmark WebDataset sets),
//! appends DataComp records to `{output_dir}/eval_results.jsonl`, skips tasks already done and
//! prints a summary table. Built with `--features mpi`, `mpirun -np W tic-eval …` spreads the
//! tasks over the ranks ([`tic_eval::spread`]). See `docs/eval.md`.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use clap::Parser;
use indicatif::ProgressBar;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tic_dist::Comm;
use tic_eval::embed::{ClipEncoder, EmbedOptions};
use tic_eval::evaluate::{evaluate_task, ModelSource, TaskOptions};
use tic_eval::metrics::ClassGroups;
use tic_eval::results::{EvalRecord, ResultsFile};
use tic_eval::spread::{self, Outcome, Status};
use tic_eval::tasklist::{Task, TaskList};
use tic_model::checkpoint;
use tic_shards::pipe;
use tic_shards::storage::{download_tree, fetch_file, Location, OutputDir};

/// Zero-shot evaluation of a CLIP model on DataComp / TiC-CLIP tasks (DataComp evaluate.py).
///
/// The model is either a training run (--train_output_dir DIR: the checkpoint is
/// DIR/checkpoints/epoch_latest.safetensors, else the highest DIR/checkpoints/epoch_N.{safetensors,pt};
/// the architecture is DIR/model_config.json, DIR/info.json {"model": NAME} or DIR/params.txt)
/// or --use_model "ARCH PATH".
///
/// Task keys tic/{datacomp,yfcc15m,redcaps}/{retrieval,datacompnet}/{yearly,monthly}/{YYYY|YYYYMM}
/// read DATA_DIR/tic/{ds}/{timescale}/eval/{retrieval|datacompnet}/{split}/; any other key K
/// reads DATA_DIR/wds_{K with / -> -}_test/test/ (DataComp). Each set is a CLIP_benchmark
/// WebDataset (nshards.txt, 0.tar.., dataset_type.txt, classnames.txt,
/// zeroshot_classification_templates.txt, count.txt), as tic-wds-convert writes it.
///
/// Results: one JSON line per task appended to OUTPUT_DIR/eval_results.jsonl; tasks whose name
/// already has a record are skipped. A failing task is reported (and logged to
/// OUTPUT_DIR/eval_failures.jsonl) without losing the others; the exit status is then 1.
/// A fatal error (bad arguments, model, output folder) exits with status 2.
///
/// Several processes (a build with --features mpi): `mpirun -np W tic-eval ...` deals the
/// pending tasks to the ranks in turn (pending task i to rank i mod W), W at a time; after each
/// round rank 0 appends the records in task-list order, as one process would, and alone writes
/// the output folder. Each rank uses cores/W compute threads unless RAYON_NUM_THREADS is set;
/// --device cuda means cuda:LOCAL_RANK.
///
/// Example:
///
///   tic-eval --train_output_dir runs/tic_medium/2016 --data_dir data --tasklist tasklist.yml
///   tic-eval --use_model "ViT-B-16 epoch_8.pt" --output_dir results/2016 --batch_size 128
#[derive(Debug, Parser)]
#[command(name = "tic-eval", version, verbatim_doc_comment)]
struct Args {
    /// Training run folder (local): model source and default --output_dir.
    #[arg(
        long = "train_output_dir",
        alias = "train-output-dir",
        value_name = "DIR"
    )]
    train_output_dir: Option<PathBuf>,

    /// "ARCH PATH": a built-in architecture (ViT-B-16, ViT-B-32, ViT-L-14, a -quickgelu variant
    /// for OpenAI weights, tiny-test) and a weights file (safetensors, OpenCLIP epoch_N.pt, or
    /// OpenAI weights in the Hugging Face layout), local or an object-store URL. Overrides
    /// --train_output_dir's checkpoint.
    #[arg(long = "use_model", alias = "use-model", value_name = "\"ARCH PATH\"")]
    use_model: Option<String>,

    /// OpenCLIP model-config JSON for a custom architecture (replaces ARCH / the run's config).
    #[arg(long = "model-config", alias = "model_config", value_name = "FILE")]
    model_config: Option<PathBuf>,

    /// Root of the evaluation sets: a folder, an object-store URL, or a `pipe:` template with
    /// `{}` where each file's path under the root goes, e.g. `pipe:aws s3 cp s3://b/eval/{} -`
    /// (each task's set is downloaded or streamed before it is evaluated, and deleted after).
    #[arg(
        long = "data_dir",
        alias = "data-dir",
        value_name = "DIR",
        default_value = "eval_data"
    )]
    data_dir: PathBuf,

    /// The task list (tic-tasklist / DataComp tasklist.yml), local or an object-store URL.
    #[arg(long, value_name = "FILE", default_value = "tasklist.yml")]
    tasklist: PathBuf,

    /// Only these task keys (default: every task of the list).
    #[arg(long, value_name = "KEY", num_args = 1..)]
    tasks: Vec<String>,

    /// Where eval_results.jsonl goes (default: --train_output_dir): a folder, or an
    /// object-store URL (previous results are downloaded to resume; results are uploaded after
    /// every task).
    #[arg(long = "output_dir", alias = "output-dir", value_name = "DIR")]
    output_dir: Option<PathBuf>,

    /// Images / texts per forward pass.
    #[arg(long = "batch_size", alias = "batch-size", default_value_t = 64)]
    batch_size: usize,

    /// Threads that read shards and decode images while the model runs.
    #[arg(long = "num_workers", alias = "num-workers", default_value_t = 4)]
    num_workers: usize,

    /// Device: cpu or cuda[:N] (needs the `cuda` feature of tic-model); under mpirun, `cuda`
    /// is cuda:LOCAL_RANK.
    #[arg(long, default_value = "cpu")]
    device: String,

    /// Class groups JSON of tic-restricted-classes: adds restricted_acc1/{group} metrics to
    /// classification tasks with that many classes (ImageNet, DataCompNet).
    #[arg(long = "class-groups", value_name = "FILE")]
    class_groups: Option<PathBuf>,

    /// Also write each task's embeddings and labels to DIR/{key with / -> _}/
    /// (image_features.npy, text_features.npy, labels.json), e.g. for external checks.
    #[arg(long = "dump-embeddings", value_name = "DIR")]
    dump_embeddings: Option<PathBuf>,

    /// Print the per-task summary as JSON lines on stdout instead of the Markdown table: one
    /// object per selected task, in task-list order, {"key", "dataset", "status" (done,
    /// skipped, failed), "main_metric", "metrics" (the task's record, also for tasks done
    /// before), "samples", "seconds", "images_per_s", "texts_per_s", "error"}; the results
    /// path goes to stderr. For `tic-eval --json | jq …`.
    #[arg(long)]
    json: bool,

    /// Accepted for compatibility with DataComp's evaluate.py; ignored.
    #[arg(long = "skip_hf", hide = true)]
    skip_hf: bool,
    /// Accepted for compatibility with DataComp's evaluate.py; ignored.
    #[arg(long = "skip_db", hide = true)]
    skip_db: bool,
    /// Accepted for compatibility with DataComp's evaluate.py; ignored.
    #[arg(long = "skip_notification", hide = true)]
    skip_notification: bool,

    /// Less output (no progress bars); repeat for errors only.
    #[arg(short, long, action = clap::ArgAction::Count)]
    quiet: u8,
    /// More log output.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// The device of `--device s`; a bare `cuda` is `cuda:local_rank`.
fn parse_device(s: &str, local_rank: usize) -> Result<Device> {
    match s {
        "cpu" => Ok(Device::Cpu),
        s if s.starts_with("cuda") => {
            let idx = s
                .strip_prefix("cuda:")
                .map(str::parse::<usize>)
                .transpose()
                .with_context(|| format!("--device {s:?}"))?
                .unwrap_or(local_rank);
            Device::new_cuda(idx)
                .context("opening the CUDA device (was tic-model built with --features cuda?)")
        }
        _ => bail!("unknown --device {s:?} (cpu, cuda, cuda:N)"),
    }
}

/// `eval_info.json`: which model the results in the folder belong to (DataComp's info.pkl
/// check). Results of another model in the same folder are refused.
fn check_info(out: &Path, model: &ModelSource) -> Result<()> {
    let path = out.join("eval_info.json");
    let ours = model.info();
    if path.exists() {
        let theirs: Value = serde_json::from_str(
            &std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{}: not JSON", path.display()))?;
        if theirs.get("checkpoint") != ours.get("checkpoint")
            || theirs.get("model_config") != ours.get("model_config")
        {
            bail!(
                "{} holds results of another model ({} / {}); this run evaluates {} / {}: \
                 use another --output_dir",
                out.display(),
                theirs["arch"],
                theirs["checkpoint"],
                ours["arch"],
                ours["checkpoint"]
            );
        }
        return Ok(());
    }
    tic_eval::write_output(&path, serde_json::to_string_pretty(&ours)?.as_bytes())
}

/// Where the evaluation sets are: a local root, or an object-store root whose task sets are
/// downloaded one at a time into a temporary folder.
enum DataRoot {
    Local(PathBuf),
    Remote(Location, tempfile::TempDir),
    /// A `pipe:` template with `{}` for each file's path (tic_shards::pipe::for_path).
    Pipe(String, tempfile::TempDir),
}

impl DataRoot {
    fn new(spec: &Path) -> Result<Self> {
        let s = spec.to_string_lossy();
        if pipe::is_pipe(&s) {
            pipe::for_path(&s, "")?;
            return Ok(DataRoot::Pipe(
                s.into_owned(),
                tempfile::Builder::new()
                    .prefix("tic-eval-data-")
                    .tempdir()
                    .context("creating a folder for streamed evaluation sets")?,
            ));
        }
        Ok(match Location::parse(&spec.to_string_lossy())? {
            Location::Local(p) => DataRoot::Local(p),
            remote => DataRoot::Remote(
                remote,
                tempfile::Builder::new()
                    .prefix("tic-eval-data-")
                    .tempdir()
                    .context("creating a folder for downloaded evaluation sets")?,
            ),
        })
    }

    /// The local root under which `task`'s set is found (downloading it first if remote).
    fn stage(&self, task: &Task) -> Result<PathBuf> {
        match self {
            DataRoot::Local(p) => Ok(p.clone()),
            DataRoot::Remote(url, tmp) => {
                let (rel, _) = task.parsed_key()?.data_location(Path::new(""));
                let rel_s = rel.to_string_lossy().replace('\\', "/");
                download_tree(&url.join(&rel_s), &tmp.path().join(&rel))?;
                Ok(tmp.path().to_path_buf())
            }
            DataRoot::Pipe(template, tmp) => {
                let (rel, split) = task.parsed_key()?.data_location(Path::new(""));
                stage_pipe(template, &rel, split, tmp.path())?;
                Ok(tmp.path().to_path_buf())
            }
        }
    }

    /// Deletes a downloaded set once evaluated.
    fn release(&self, task: &Task) {
        if let (DataRoot::Remote(_, tmp) | DataRoot::Pipe(_, tmp), Ok(key)) =
            (self, task.parsed_key())
        {
            let _ = std::fs::remove_dir_all(tmp.path().join(key.data_location(Path::new("")).0));
        }
    }
}

/// Streams the evaluation set `rel` (split `split`) of a `pipe:` `--data_dir` into `dst/rel`:
/// the optional metadata files (a failing command = no such file, logged at debug level), then
/// `nshards.txt` and every shard (a failing command or truncated tar is an error naming it).
fn stage_pipe(template: &str, rel: &Path, split: &str, dst: &Path) -> Result<()> {
    let rel_s = rel.to_string_lossy().replace('\\', "/");
    let under = |name: &str| -> String {
        [rel_s.as_str(), split, name]
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/")
    };
    let local = dst.join(rel);
    std::fs::create_dir_all(local.join(split))
        .with_context(|| format!("creating {}", local.display()))?;
    for name in [
        "dataset_type.txt",
        "count.txt",
        "classnames.txt",
        "zeroshot_classification_templates.txt",
    ] {
        let url = pipe::for_path(template, &[rel_s.as_str(), name].join("/"))?;
        match pipe::read_raw(&url) {
            Ok(b) => tic_eval::write_output(local.join(name), &b)?,
            Err(e) => tracing::debug!("{name} taken as absent: {e:#}"),
        }
    }
    let url = pipe::for_path(template, &under("nshards.txt"))?;
    let text = pipe::read_raw(&url)
        .with_context(|| format!("evaluation set {rel_s}: reading nshards.txt"))?;
    tic_eval::write_output(local.join(split).join("nshards.txt"), &text)?;
    let n: usize = String::from_utf8_lossy(&text)
        .trim()
        .parse()
        .with_context(|| format!("{url}: not a number of shards"))?;
    for i in 0..n {
        let url = pipe::for_path(template, &under(&format!("{i}.tar")))?;
        let path = local.join(split).join(format!("{i}.tar"));
        // Read back by the completeness check: opened for reading too.
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        pipe::fetch_into(&url, &mut f)?;
    }
    Ok(())
}

fn log_failure(out: &Path, key: &str, name: &str, err: &str) -> Result<()> {
    let path = out.join("eval_failures.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let when = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    writeln!(
        f,
        "{}",
        serde_json::json!({"key": key, "dataset": name, "error": err, "unix_time": when})
    )
    .with_context(|| format!("writing {}", path.display()))
}

fn main() {
    // `host` is dropped (MPI finalised) before the process exits.
    std::process::exit(run_main());
}

/// The exit status: 0 all tasks done, 1 some task failed, 2 a fatal error.
fn run_main() -> i32 {
    let args = Args::parse();
    tic_model::heap::reuse_freed_buffers();
    tic_shards::cli::init_logging(args.verbose, args.quiet);
    let host = match tic_dist::init_host() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e:#}");
            return 2;
        }
    };
    tic_dist::spread_cpu_threads(host.local_size());
    let result = if host.size() > 1 {
        // A fatal error on one rank ends every rank (status 2), naming the rank.
        tic_dist::or_abort_with(&host, "tic-eval", 2, || run(&args, &host))
    } else {
        run(&args, &host)
    };
    match result {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    }
}

/// The output folder, on rank 0 only: where results go, and those already there.
struct Output {
    /// --output_dir (an object-store one is staged locally and synced back after each round).
    staged: OutputDir,
    /// Its local folder.
    dir: PathBuf,
    results: ResultsFile,
}

/// Runs this rank's share of the tasks; `Ok(false)` when some task failed (on any rank).
fn run(args: &Args, comm: &dyn Comm) -> Result<bool> {
    if args.batch_size == 0 {
        bail!("--batch_size must be positive");
    }
    if let Some(t) = &args.train_output_dir {
        if t.to_string_lossy().contains("://") {
            bail!(
                "--train_output_dir {} must be a local folder; for a checkpoint in an object \
                 store use --use_model \"ARCH URL\" (and --model_config)",
                t.display()
            );
        }
    }
    let model = match (&args.use_model, &args.train_output_dir) {
        (Some(spec), _) => ModelSource::from_use_model(spec, args.model_config.as_deref())?,
        (None, Some(dir)) => ModelSource::from_train_dir(dir, args.model_config.as_deref())?,
        (None, None) => bail!("give --train_output_dir or --use_model \"ARCH PATH\""),
    };
    let shown_out = match (&args.output_dir, &args.train_output_dir) {
        (Some(o), _) => o.clone(),
        (None, Some(t)) => t.clone(),
        (None, None) => bail!("--use_model without --train_output_dir needs --output_dir"),
    };
    let tasklist = fetch_file(&args.tasklist)?;
    let list = TaskList::from_path(tasklist.path())
        .with_context(|| format!("task list {}", args.tasklist.display()))?;
    for k in &args.tasks {
        if list.get(k).is_none() {
            bail!("--tasks {k:?} is not in {}", args.tasklist.display());
        }
    }
    let groups = args
        .class_groups
        .as_deref()
        .map(ClassGroups::from_path)
        .transpose()?;
    let selected: Vec<_> = list
        .tasks()
        .iter()
        .filter(|t| args.tasks.is_empty() || args.tasks.contains(&t.key))
        .collect();
    let (rank, world) = (comm.rank(), comm.size());

    // Rank 0 alone opens the output folder and decides what is left to do.
    let mut output = None;
    let mut pending = Vec::new();
    if rank == 0 {
        // An object-store --output_dir: previous results are downloaded (resume), results are
        // uploaded after every task.
        let staged = OutputDir::resume(&shown_out)?;
        let dir = staged.path().to_path_buf();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        tic_shards::atomic::remove_stale_temps(&dir)
            .with_context(|| format!("cleaning {}", dir.display()))?;
        check_info(&dir, &model)?;
        let results = ResultsFile::open_in_dir(&dir)?;
        pending = (0..selected.len())
            .filter(|&i| !results.is_done(selected[i], &list))
            .collect();
        output = Some(Output {
            staged,
            dir,
            results,
        });
    }
    let pending = spread::share_pending(comm, pending)?;

    let device = parse_device(&args.device, comm.local_rank())?;
    tracing::info!("model {} from {}", model.arch, model.checkpoint.display());
    let weights = fetch_file(&model.checkpoint)?;
    let clip = checkpoint::load_clip(&model.config, weights.path(), DType::F32, &device)
        .with_context(|| format!("loading the {} model", model.arch))?;
    // An object-store --data_dir: each task's set is downloaded before it is evaluated.
    let data = DataRoot::new(&args.data_dir)?;
    let enc = ClipEncoder {
        model: clip,
        device,
    };
    let opts = TaskOptions {
        embed: Some(EmbedOptions {
            batch_size: args.batch_size,
            num_workers: args.num_workers,
        }),
        class_groups: groups,
        dump_dir: args.dump_embeddings.clone(),
        prompt_cache: Default::default(),
    };

    let n = selected.len();
    let mut done: Vec<Option<Outcome>> = vec![None; n];
    // Selected tasks up to here have been logged (skipped ones by rank 0, in task-list order).
    let mut logged = 0;
    let log_skipped = |upto: usize, logged: &mut usize| {
        if rank == 0 {
            for (i, task) in selected.iter().enumerate().take(upto).skip(*logged) {
                if pending.binary_search(&i).is_err() {
                    tracing::info!("[{}/{n}] {}: already evaluated, skipped", i + 1, task.key);
                }
            }
        }
        *logged = (*logged).max(upto);
    };
    for round in spread::rounds(&pending, world) {
        if let Some(&last) = round.last() {
            log_skipped(last + 1, &mut logged);
        }
        let mine = round.get(rank).map(|&i| {
            let task = selected[i];
            let on = if world > 1 {
                format!(" on rank {rank}")
            } else {
                String::new()
            };
            tracing::info!("[{}/{n}] evaluating {}{on}", i + 1, task.key);
            let quiet = args.quiet > 0 || rank > 0;
            evaluate_one(i, task, &enc, &data, &opts, quiet)
        });
        let outcomes = spread::gather_round(comm, round, mine.as_ref())?;
        if let Some(out) = &mut output {
            for o in &outcomes {
                let task = selected[o.task];
                if let Some(line) = &o.record {
                    out.results.append_line(line)?;
                }
                if let Status::Failed(msg) = &o.status {
                    log_failure(&out.dir, &task.key, task.name(), msg)?;
                }
            }
            out.staged.sync()?;
        }
        for o in outcomes {
            let i = o.task;
            done[i] = Some(o);
        }
    }
    log_skipped(n, &mut logged);
    let ok = !done
        .iter()
        .flatten()
        .any(|o| matches!(o.status, Status::Failed(_)));
    if let Some(out) = &output {
        if args.json {
            print_json_summary(&selected, &done, &out.results, &shown_out);
        } else {
            print_summary(&selected, &done, &out.results, &shown_out);
        }
        if !ok {
            eprintln!(
                "some tasks failed (see above and {}); the others were recorded",
                shown_out.join("eval_failures.jsonl").display()
            );
        }
    }
    Ok(ok)
}

/// Evaluates task `i` (`task`) on this rank: its record line, or the failure.
fn evaluate_one(
    i: usize,
    task: &Task,
    enc: &ClipEncoder,
    data: &DataRoot,
    opts: &TaskOptions,
    quiet: bool,
) -> Outcome {
    let t0 = Instant::now();
    let pb = if quiet {
        ProgressBar::hidden()
    } else {
        tic_shards::cli::progress(0, "items", false)
    };
    pb.set_message(task.key.clone());
    let progress = |what: &str, n: usize| {
        pb.set_message(format!("{} {what}", task.key));
        pb.set_position(n as u64);
    };
    let r = data
        .stage(task)
        .and_then(|root| evaluate_task(enc, task, &root, opts, &progress));
    data.release(task);
    pb.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    match r {
        Ok(r) => {
            let rec = EvalRecord::for_task(task, r.metrics);
            Outcome {
                task: i,
                record: Some(rec.to_line()),
                status: Status::Done {
                    main: rec.main_metric(),
                    samples: r.num_samples,
                    images_per_s: r.num_samples as f64 / r.image_secs.max(1e-9),
                    texts_per_s: r.num_texts as f64 / r.text_secs.max(1e-9),
                },
                secs,
            }
        }
        Err(e) => {
            let msg = format!("{e:#}");
            tracing::error!("task {} failed: {msg}", task.key);
            Outcome {
                task: i,
                record: None,
                status: Status::Failed(msg),
                secs,
            }
        }
    }
}

/// `--json`: the summary (rank 0) as one JSON object per selected task on stdout, in task-list
/// order; the results path on stderr.
fn print_json_summary(
    selected: &[&Task],
    done: &[Option<Outcome>],
    results: &ResultsFile,
    shown_out: &Path,
) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for (task, o) in selected.iter().zip(done) {
        let (st, secs) = o
            .as_ref()
            .map_or((&Status::Skipped, None), |o| (&o.status, Some(o.secs)));
        let record = results.by_key(&task.key);
        let mut v = serde_json::json!({
            "key": task.key,
            "dataset": task.name(),
            "main_metric": record.and_then(EvalRecord::main_metric),
            "metrics": record.map(|r| Value::Object(r.metrics.clone())),
            "samples": null, "seconds": secs, "images_per_s": null, "texts_per_s": null,
            "error": null,
        });
        match st {
            Status::Done {
                main,
                samples,
                images_per_s,
                texts_per_s,
            } => {
                v["status"] = "done".into();
                v["main_metric"] = serde_json::json!(main);
                v["samples"] = (*samples).into();
                v["images_per_s"] = (*images_per_s).into();
                v["texts_per_s"] = (*texts_per_s).into();
            }
            Status::Skipped => v["status"] = "skipped".into(),
            Status::Failed(e) => {
                v["status"] = "failed".into();
                v["error"] = e.as_str().into();
            }
        }
        let _ = writeln!(out, "{v}");
    }
    let _ = out.flush();
    eprintln!(
        "results: {}",
        shown_out
            .join(results.path().file_name().unwrap_or_default())
            .display()
    );
}

/// The summary table (rank 0): one row per selected task, in task-list order.
fn print_summary(
    selected: &[&Task],
    done: &[Option<Outcome>],
    results: &ResultsFile,
    shown_out: &Path,
) {
    println!("| task | dataset | status | main metric | samples | seconds | images/s | texts/s |");
    println!("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for (task, o) in selected.iter().zip(done) {
        let (key, name) = (&task.key, task.name());
        let (st, secs) = o
            .as_ref()
            .map_or((&Status::Skipped, 0.0), |o| (&o.status, o.secs));
        let (status, main, n, rates) = match st {
            Status::Done {
                main,
                samples,
                images_per_s,
                texts_per_s,
            } => (
                "done".to_string(),
                main.map_or("-".into(), |m| format!("{m:.4}")),
                samples.to_string(),
                format!("{images_per_s:.2} | {texts_per_s:.2}"),
            ),
            Status::Skipped => {
                let m = results
                    .by_key(key)
                    .and_then(EvalRecord::main_metric)
                    .map_or("-".into(), |m| format!("{m:.4}"));
                (
                    "skipped (done before)".to_string(),
                    m,
                    "-".into(),
                    "- | -".into(),
                )
            }
            Status::Failed(e) => {
                let short: String = e.chars().take(120).collect();
                (
                    format!("FAILED: {short}"),
                    "-".into(),
                    "-".into(),
                    "- | -".into(),
                )
            }
        };
        println!("| {key} | {name} | {status} | {main} | {n} | {secs:.1} | {rates} |");
    }
    println!(
        "results: {}",
        shown_out
            .join(results.path().file_name().unwrap_or_default())
            .display()
    );
}
