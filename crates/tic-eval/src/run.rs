//! A `tic-eval` run: the model and the task list from the command line, the output folder and
//! the tasks left to do (rank 0), then the tasks, `W` at a time over the ranks of an `mpirun`
//! job ([`crate::spread`]), each record appended as soon as its round is done, and the summary.
//!
//! Exit status ([`main_status`]): 0 when every task was done, 1 when some task failed (the
//! others are recorded), 2 on a fatal error (arguments, model, output folder).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::DType;
use indicatif::ProgressBar;
use tic_dist::Comm;
use tic_model::checkpoint;
use tic_model::device::DeviceSpec;
use tic_model::embed::{ClipEncoder, EmbedOptions};
use tic_shards::storage::fetch_file;

use crate::args::EvalArgs;
use crate::data_root::DataRoot;
use crate::evaluate::{evaluate_task, ModelSource, TaskOptions};
use crate::metrics::ClassGroups;
use crate::output::{log_failure, OutputFolder};
use crate::results::EvalRecord;
use crate::spread::{self, Outcome, Status};
use crate::summary;
use crate::tasklist::{Task, TaskList};

/// Runs `tic-eval` with `args` as one process or one rank of an `mpirun` job, and returns the
/// exit status: 0 all tasks done, 1 some task failed, 2 a fatal error (printed). The job's
/// communicator is finalised before this returns.
pub fn main_status(args: &EvalArgs) -> i32 {
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
        tic_dist::or_abort_with(&host, "tic-eval", 2, || run(args, &host))
    } else {
        run(args, &host)
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

/// The model to evaluate and `--output_dir` as given (default: `--train_output_dir`), after
/// checking the arguments that need no file.
fn model_and_output(args: &EvalArgs) -> Result<(ModelSource, PathBuf)> {
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
    Ok((model, shown_out))
}

/// `--tasklist`, with every `--tasks` key checked to be in it.
fn task_list(args: &EvalArgs) -> Result<TaskList> {
    let tasklist = fetch_file(&args.tasklist)?;
    let list = TaskList::from_path(tasklist.path())
        .with_context(|| format!("task list {}", args.tasklist.display()))?;
    for k in &args.tasks {
        if list.get(k).is_none() {
            bail!("--tasks {k:?} is not in {}", args.tasklist.display());
        }
    }
    Ok(list)
}

/// The model on `--device` (a bare `cuda` is the GPU of this process's local rank), in f32.
fn load_encoder(args: &EvalArgs, model: &ModelSource, comm: &dyn Comm) -> Result<ClipEncoder> {
    let device = args.device.parse::<DeviceSpec>()?.open(comm.local_rank())?;
    tracing::info!("model {} from {}", model.arch, model.checkpoint.display());
    let weights = fetch_file(&model.checkpoint)?;
    let clip = checkpoint::load_clip(&model.config, weights.path(), DType::F32, &device)
        .with_context(|| format!("loading the {} model", model.arch))?;
    Ok(ClipEncoder {
        model: clip,
        device,
    })
}

/// Runs this rank's share of the tasks; `Ok(false)` when some task failed (on any rank).
pub fn run(args: &EvalArgs, comm: &dyn Comm) -> Result<bool> {
    let (model, shown_out) = model_and_output(args)?;
    let list = task_list(args)?;
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

    // Rank 0 alone opens the output folder and decides what is left to do.
    let mut output = None;
    let mut pending = Vec::new();
    if comm.rank() == 0 {
        let out = OutputFolder::open(&shown_out, &model)?;
        pending = out.pending(&selected, &list);
        output = Some(out);
    }
    let pending = spread::share_pending(comm, pending)?;

    let enc = load_encoder(args, &model, comm)?;
    // An object-store --data_dir: each task's set is downloaded before it is evaluated.
    let data = DataRoot::new(&args.data_dir)?;
    let opts = TaskOptions {
        embed: Some(EmbedOptions {
            batch_size: args.batch_size,
            num_workers: args.num_workers,
        }),
        class_groups: groups,
        dump_dir: args.dump_embeddings.clone(),
        prompt_cache: Default::default(),
    };
    let tasks = Tasks {
        selected: &selected,
        enc: &enc,
        data: &data,
        opts: &opts,
        quiet: args.quiet > 0,
    };
    let done = tasks.evaluate(comm, &pending, output.as_mut())?;
    let ok = !done
        .iter()
        .flatten()
        .any(|o| matches!(o.status, Status::Failed(_)));
    if let Some(out) = &output {
        if args.json {
            summary::print_json(&selected, &done, &out.results, &shown_out);
        } else {
            summary::print_table(&selected, &done, &out.results, &shown_out);
        }
        if !ok {
            eprintln!(
                "some tasks failed (see above and {}); the others were recorded",
                shown_out.join(crate::output::FAILURES_FILE).display()
            );
        }
    }
    Ok(ok)
}

/// The selected tasks and what evaluating each of them takes.
struct Tasks<'a> {
    selected: &'a [&'a Task],
    enc: &'a ClipEncoder,
    data: &'a DataRoot,
    opts: &'a TaskOptions,
    /// `-q`: no progress bars.
    quiet: bool,
}

impl Tasks<'_> {
    /// Evaluates the `pending` tasks (indices into `selected`) over the ranks of `comm`, round
    /// by round; on rank 0 (`output`), each round's records and failures are written and the
    /// folder synced. Returns each selected task's outcome (`None`: skipped, done before).
    fn evaluate(
        &self,
        comm: &dyn Comm,
        pending: &[usize],
        mut output: Option<&mut OutputFolder>,
    ) -> Result<Vec<Option<Outcome>>> {
        let (rank, world) = (comm.rank(), comm.size());
        let n = self.selected.len();
        let mut done: Vec<Option<Outcome>> = vec![None; n];
        // Selected tasks up to here have been logged (skipped ones by rank 0, in task-list order).
        let mut logged = 0;
        let log_skipped = |upto: usize, logged: &mut usize| {
            if rank == 0 {
                for (i, task) in self.selected.iter().enumerate().take(upto).skip(*logged) {
                    if pending.binary_search(&i).is_err() {
                        tracing::info!("[{}/{n}] {}: already evaluated, skipped", i + 1, task.key);
                    }
                }
            }
            *logged = (*logged).max(upto);
        };
        for round in spread::rounds(pending, world) {
            if let Some(&last) = round.last() {
                log_skipped(last + 1, &mut logged);
            }
            let mine = round.get(rank).map(|&i| {
                let task = self.selected[i];
                let on = if world > 1 {
                    format!(" on rank {rank}")
                } else {
                    String::new()
                };
                tracing::info!("[{}/{n}] evaluating {}{on}", i + 1, task.key);
                self.evaluate_one(i, task, self.quiet || rank > 0)
            });
            let outcomes = spread::gather_round(comm, round, mine.as_ref())?;
            if let Some(out) = output.as_deref_mut() {
                self.record(out, &outcomes)?;
            }
            for o in outcomes {
                let i = o.task;
                done[i] = Some(o);
            }
        }
        log_skipped(n, &mut logged);
        Ok(done)
    }

    /// Rank 0: appends a round's records and failures to the output folder, then syncs it.
    fn record(&self, out: &mut OutputFolder, outcomes: &[Outcome]) -> Result<()> {
        for o in outcomes {
            let task = self.selected[o.task];
            if let Some(line) = &o.record {
                out.results.append_line(line)?;
            }
            if let Status::Failed(msg) = &o.status {
                log_failure(&out.dir, &task.key, task.name(), msg)?;
            }
        }
        out.staged.sync()?;
        Ok(())
    }

    /// Evaluates task `i` (`task`) on this rank: its record line, or the failure.
    fn evaluate_one(&self, i: usize, task: &Task, quiet: bool) -> Outcome {
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
        let r = self
            .data
            .stage(task)
            .and_then(|root| evaluate_task(self.enc, task, &root, self.opts, &progress));
        self.data.release(task);
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
}
