//! The `tic-tasklist` command line: its flags and the run from flags to the written YAML.
use super::TaskListConfig;
use super::{build, list_names, periods_from_names, to_yaml, to_yaml_with_base, unknown_families};
use anyhow::{bail, Result};
use clap::Parser;
use tic_shards::storage::Location;

/// Write the TiC dynamic evaluation tasks as a DataComp `tasklist.yml` (TiC's generate_tasklist.py).
///
/// Same keys, names, metrics and periods as the original (years 2014–2022, its 102 months).
/// With --data-dir the years/months are those named by the files or folders found there
/// (`2016.npy`, `201403.tar`, `2017/`, …), for datasets other than DataComp.
#[derive(Parser, Debug)]
#[command(version)]
pub struct TaskListArgs {
    /// Where to write the YAML file (local path or URL; `-` for standard output).
    #[arg(long)]
    pub yaml_path: String,
    /// Only 2014 and 201403 (a small task list for debugging).
    #[arg(long)]
    pub sample_eval: bool,
    /// Comma list of task families: retrieval/yearly, datacompnet/yearly, retrieval/monthly,
    /// datacompnet/monthly.
    #[arg(
        long,
        default_value = "retrieval/yearly,datacompnet/yearly,retrieval/monthly,datacompnet/monthly"
    )]
    pub eval_tasks: String,
    /// Derive years (YYYY) and months (YYYYMM) from the names under this folder (local or URL),
    /// searched up to --data-depth levels deep.
    #[arg(long)]
    pub data_dir: Option<String>,
    /// How many folder levels --data-dir is searched.
    #[arg(long, default_value_t = 3)]
    pub data_depth: usize,
    /// Dataset segment of the task keys (`tic/{dataset}/…`).
    #[arg(long, default_value = "datacomp")]
    pub dataset: String,
    /// A task list (local path or URL) whose tasks come first, e.g. DataComp's own
    /// `tasklist.yml` with the static tasks, or `tic-synth`'s `static/tasklist.yml`.
    #[arg(long, value_name = "FILE")]
    pub base: Option<String>,
    /// Dataset label in task names (`TiC-{label}-Retrieval-…`, `TiC-{label}Net-…`).
    #[arg(long, default_value = "DataComp")]
    pub dataset_label: String,
    /// `-v` / `-q`.
    #[command(flatten)]
    pub verbosity: tic_shards::cli::Verbosity,
}

/// What to generate for `a`: the families, dataset and label given, the years and months of
/// `--data-dir` (else TiC-DataComp's), cut to the first of each with `--sample-eval`.
fn config(a: &TaskListArgs) -> Result<TaskListConfig> {
    let mut cfg = TaskListConfig {
        eval_tasks: a.eval_tasks.clone(),
        dataset: a.dataset.clone(),
        label: a.dataset_label.clone(),
        ..TaskListConfig::default()
    };
    if let Some(dir) = &a.data_dir {
        let names = list_names(&Location::parse(dir)?, a.data_depth)?;
        let (years, months) = periods_from_names(names.iter().map(String::as_str));
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
    Ok(cfg)
}

/// Writes the task list `a` asks for to `--yaml-path` (after `--base`'s tasks, if given).
pub fn run(a: &TaskListArgs) -> Result<()> {
    let cfg = config(a)?;
    for u in unknown_families(&a.eval_tasks) {
        tracing::warn!("--eval-tasks entry {u:?} is not a task family; ignored");
    }
    let tasks = build(&cfg);
    let yaml = match &a.base {
        Some(b) => {
            let text = Location::parse(b)?.read()?;
            let text =
                String::from_utf8(text).map_err(|_| anyhow::anyhow!("{b}: not UTF-8 text"))?;
            to_yaml_with_base(&text, b, &tasks)?
        }
        None => to_yaml(&tasks)?,
    };
    tic_shards::storage::write_output(&a.yaml_path, yaml.as_bytes())?;
    tracing::info!("wrote {} TiC tasks to {}", tasks.len(), a.yaml_path);
    Ok(())
}
