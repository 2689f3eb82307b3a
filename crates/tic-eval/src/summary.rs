//! The summary `tic-eval` prints once every task is done: a Markdown table, or JSON lines
//! (`--json`) for scripts, one entry per selected task in task-list order.

use std::io::Write;
use std::path::Path;

use serde_json::Value;

use crate::results::{EvalRecord, ResultsFile};
use crate::spread::{Outcome, Status};
use crate::tasklist::Task;

/// `--json`: the summary (rank 0) as one JSON object per selected task on stdout, in task-list
/// order; the results path on stderr. `done` holds the outcome of each task evaluated by this
/// run (`None`: skipped); `shown_out` is `--output_dir` as given.
pub fn print_json(
    selected: &[&Task],
    done: &[Option<Outcome>],
    results: &ResultsFile,
    shown_out: &Path,
) {
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

/// The summary as a Markdown table on stdout (rank 0): one row per selected task, in task-list
/// order, then the results path. Arguments as for [`print_json`].
pub fn print_table(
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
