//! `tic-tasklist`: drop-in for TiC-CLIP's `dataset_creation/tic-datacomp/generate_tasklist.py`.
use anyhow::{bail, Result};
use clap::Parser;
use tic_shards::storage::Location;
use tic_splits::tasklist::{self, TaskListConfig};

/// Write the TiC dynamic evaluation tasks as a DataComp `tasklist.yml` (TiC's generate_tasklist.py).
///
/// Same keys, names, metrics and periods as the original (years 2014–2022, its 102 months).
/// With --data-dir the years/months are those named by the files or folders found there
/// (`2016.npy`, `201403.tar`, `2017/`, …), for datasets other than DataComp.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Where to write the YAML file (local path or URL; `-` for standard output).
    #[arg(long)]
    yaml_path: String,
    /// Only 2014 and 201403 (a small task list for debugging).
    #[arg(long)]
    sample_eval: bool,
    /// Comma list of task families: retrieval/yearly, datacompnet/yearly, retrieval/monthly,
    /// datacompnet/monthly.
    #[arg(
        long,
        default_value = "retrieval/yearly,datacompnet/yearly,retrieval/monthly,datacompnet/monthly"
    )]
    eval_tasks: String,
    /// Derive years (YYYY) and months (YYYYMM) from the names under this folder (local or URL),
    /// searched up to --data-depth levels deep.
    #[arg(long)]
    data_dir: Option<String>,
    /// How many folder levels --data-dir is searched.
    #[arg(long, default_value_t = 3)]
    data_depth: usize,
    /// Dataset segment of the task keys (`tic/{dataset}/…`).
    #[arg(long, default_value = "datacomp")]
    dataset: String,
    /// A task list (local path or URL) whose tasks come first, e.g. DataComp's own
    /// `tasklist.yml` with the static tasks, or `tic-synth`'s `static/tasklist.yml`.
    #[arg(long, value_name = "FILE")]
    base: Option<String>,
    /// Dataset label in task names (`TiC-{label}-Retrieval-…`, `TiC-{label}Net-…`).
    #[arg(long, default_value = "DataComp")]
    dataset_label: String,
    #[command(flatten)]
    verbosity: tic_shards::cli::Verbosity,
}

fn main() -> Result<()> {
    let a = Args::parse();
    a.verbosity.init();
    let mut cfg = TaskListConfig {
        eval_tasks: a.eval_tasks.clone(),
        dataset: a.dataset.clone(),
        label: a.dataset_label.clone(),
        ..TaskListConfig::default()
    };
    if let Some(dir) = &a.data_dir {
        let names = tasklist::list_names(&Location::parse(dir)?, a.data_depth)?;
        let (years, months) = tasklist::periods_from_names(names.iter().map(String::as_str));
        if years.is_empty() && months.is_empty() {
            bail!("{dir}: no file or folder named like a year (YYYY) or month (YYYYMM) found");
        }
        tracing::info!("{dir}: years {years:?}, months {months:?}");
        cfg.years = years;
        cfg.months = months;
    }
    if a.sample_eval {
        cfg.years.truncate(1);
        cfg.months.truncate(1);
        if a.data_dir.is_none() {
            cfg = cfg.sample_eval();
        }
    }
    for u in tasklist::unknown_families(&a.eval_tasks) {
        tracing::warn!("--eval-tasks entry {u:?} is not a task family; ignored");
    }
    let tasks = tasklist::build(&cfg);
    let yaml = match &a.base {
        Some(b) => {
            let text = Location::parse(b)?.read()?;
            let text =
                String::from_utf8(text).map_err(|_| anyhow::anyhow!("{b}: not UTF-8 text"))?;
            tasklist::to_yaml_with_base(&text, b, &tasks)?
        }
        None => tasklist::to_yaml(&tasks)?,
    };
    tic_shards::storage::write_output(&a.yaml_path, yaml.as_bytes())?;
    tracing::info!("wrote {} TiC tasks to {}", tasks.len(), a.yaml_path);
    Ok(())
}
