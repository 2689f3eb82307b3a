//! `tic-sweep`: a budget sweep read from one multi-seed `tic-report --json` per per-step
//! budget, as a Markdown table, JSON and a plot: its flags and the run. The sweep itself is
//! [`crate::sweep`]; see `docs/eval.md`.

use crate::sweep::{self, DEFAULT_METHOD, DEFAULT_REFERENCE};
use anyhow::Result;
use clap::Parser;
use std::path::PathBuf;

/// A budget sweep over multi-seed tic-report outputs (no original script: new in tic-rs).
///
/// Each --budget SAMPLES=FILE names the per-step training budget of one experiment and its
/// `tic-report --json` (one --metrics per seed). Writes into --output-dir: sweep.md (table:
/// both methods' ID, the reference − method gap paired by seed as mean ± std, the pooled std,
/// compute and its ratio, finding (b)'s verdict), sweep.json, and sweep.{png,svg} (the gap with
/// its seed spread and the compute ratio against the budget). Prints the table.
///
/// Example:
///
///   tic-sweep --budget 3840=out/demo-paper/n3840/report.json
///     --budget 7680=out/demo-paper/n7680/report.json --output-dir out/demo-paper/sweep
#[derive(Debug, Parser)]
#[command(name = "tic-sweep", version, verbatim_doc_comment)]
pub struct SweepArgs {
    /// SAMPLES=FILE: a per-step budget and the tic-report --json of that experiment. Repeat it
    /// (at least once); points are sorted by budget.
    #[arg(long, value_name = "SAMPLES=FILE", required = true)]
    pub budget: Vec<String>,

    /// Task family whose ID is compared (default: the report's first family).
    #[arg(long, value_name = "ID")]
    pub family: Option<String>,

    /// Method compared with the reference.
    #[arg(long, default_value = DEFAULT_METHOD)]
    pub method: String,

    /// The reference method.
    #[arg(long, default_value = DEFAULT_REFERENCE)]
    pub reference: String,

    /// Tolerance line of the plot (absolute, 0.02 = 2 points; tic-report's --oracle-tolerance).
    #[arg(long, value_name = "ABS", default_value_t = crate::report::DEFAULT_ORACLE_TOLERANCE)]
    pub tolerance: f64,

    /// Folder for sweep.md, sweep.json and sweep.{png,svg} (created).
    #[arg(long, value_name = "DIR")]
    pub output_dir: PathBuf,

    /// `-v` / `-q`.
    #[command(flatten)]
    pub verbosity: tic_shards::cli::Verbosity,
}

/// Reads every budget's point, writes sweep.md, sweep.json and the plot into `--output-dir`
/// and prints the table and the paths written.
pub fn run(args: &SweepArgs) -> Result<()> {
    let mut points = Vec::new();
    let mut family = args.family.clone();
    for spec in &args.budget {
        let (p, f) = sweep::load_point(spec, family.as_deref(), &args.method, &args.reference)?;
        family.get_or_insert(f);
        points.push(p);
    }
    points.sort_by(|a, b| a.budget.total_cmp(&b.budget));
    let family = family.unwrap_or_default();
    std::fs::create_dir_all(&args.output_dir)?;
    let md = sweep::markdown(&points, &family, &args.method, &args.reference);
    let doc = format!(
        "# Budget sweep: {} vs {}\n\n{md}\n![sweep](sweep.png)\n",
        args.method, args.reference
    );
    crate::write_output(args.output_dir.join("sweep.md"), doc.as_bytes())?;
    let json = sweep::to_json(&points, &family, &args.method, &args.reference);
    crate::write_output(
        args.output_dir.join("sweep.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    let title = format!("{} vs {} | {family}", args.method, args.reference);
    let plots = crate::plots::sweep_plot(
        &points,
        &args.output_dir.join("sweep"),
        &title,
        (&args.method, &args.reference),
        args.tolerance,
    )?;
    print!("{md}");
    println!("table: {}", args.output_dir.join("sweep.md").display());
    for p in plots {
        println!("plot: {}", p.display());
    }
    Ok(())
}
