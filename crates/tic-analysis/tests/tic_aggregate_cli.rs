//! `tic-aggregate` against DataComp's own `aggregate_scores.py`: what the original printed on
//! the fixtures of `tests/fixtures/aggregate/` (made by `make_aggregate_fixtures.py`), byte for
//! byte; and the same aggregates in `tic-metrics` and `tic-report`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use tic_analysis::aggregate::{
    Aggregate, SuiteMetrics, DATACOMP_MAIN_TASKS, DATACOMP_UNSCORED_TASKS,
};
use tic_eval::results::ResultsFile;

fn fixtures() -> PathBuf {
    tic_testkit::fixture_dir("tic-analysis").join("aggregate")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn aggregate(input: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tic-aggregate"))
        .arg("--input")
        .arg(input)
        .args(extra)
        .output()
        .unwrap()
}

const ALL_COUNTED: &str =
    "tasks averaged: ImageNet 1/1, ImageNet dist. shifts 6/6, VTAB 13/13, Retrieval 3/3, Average 38/38";

/// DataComp's suite and groups, as its `tasklist.yml` and `aggregate_scores.py` define them.
#[test]
fn the_suite_and_groups_are_datacomps() {
    let exp = expected();
    let tasks = exp["tasks"].as_array().unwrap();
    let scored: Vec<(&str, &str)> = tasks
        .iter()
        .filter(|t| !t[2].is_null())
        .map(|t| (t[0].as_str().unwrap(), t[1].as_str().unwrap()))
        .collect();
    let ours: Vec<(&str, &str)> = DATACOMP_MAIN_TASKS
        .iter()
        .map(|t| (t.key, t.name))
        .collect();
    assert_eq!(ours, scored);
    let unscored: Vec<(&str, &str)> = tasks
        .iter()
        .filter(|t| t[2].is_null())
        .map(|t| (t[0].as_str().unwrap(), t[1].as_str().unwrap()))
        .collect();
    assert_eq!(unscored, DATACOMP_UNSCORED_TASKS);
    let groups = exp["groups"].as_object().unwrap();
    assert_eq!(groups.len(), 3);
    for (label, names) in groups {
        let agg = Aggregate::ALL
            .into_iter()
            .find(|a| a.label() == label)
            .unwrap_or_else(|| panic!("no aggregate {label:?}"));
        let mut ours: Vec<&str> = DATACOMP_MAIN_TASKS
            .iter()
            .filter(|t| t.group == Some(agg))
            .map(|t| t.name)
            .collect();
        ours.sort_unstable();
        let theirs: Vec<&str> = names
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        assert_eq!(ours, theirs, "{label}");
    }
}

/// Every file the original accepts: the same stdout, byte for byte; the counts on stderr.
#[test]
fn complete_files_print_what_aggregate_scores_py_prints() {
    let exp = expected();
    let mut checked = 0;
    for (case, want) in exp["cases"].as_object().unwrap() {
        if want["returncode"] != 0 {
            continue;
        }
        let o = aggregate(&fixtures().join(format!("{case}.jsonl")), &[]);
        tic_testkit::ok(&o);
        assert_eq!(
            String::from_utf8(o.stdout).unwrap(),
            want["stdout"].as_str().unwrap(),
            "{case}"
        );
        let err = String::from_utf8(o.stderr).unwrap();
        assert!(err.contains(ALL_COUNTED), "{case}: {err}");
        checked += 1;
    }
    assert_eq!(checked, 9);
}

/// The lines `--allow-missing` must print for a case the original rejects: numpy's means over
/// the main metrics present, short ones marked.
fn partial_lines(partial: &Value) -> String {
    Aggregate::ALL
        .iter()
        .map(|a| {
            let p = &partial[a.label()];
            let (n, of) = (p["tasks"].as_u64().unwrap(), p["of"].as_u64().unwrap());
            let mean = format!("{:.3}", p["mean"].as_f64().unwrap());
            let mark = if n == of {
                String::new()
            } else {
                format!(" (partial: {n} of {of} tasks)")
            };
            format!("{}: {mean}{mark}\n", a.label())
        })
        .collect()
}

#[test]
fn missing_tasks_are_named_and_averaged_only_when_allowed() {
    let exp = expected();
    let want = &exp["cases"]["missing"];
    assert_eq!(want["returncode"], 1);
    assert_eq!(
        want["stderr_last_line"],
        "AssertionError: Results file has unexpected size, 35"
    );
    let input = fixtures().join("missing.jsonl");
    let o = aggregate(&input, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let err = String::from_utf8(o.stderr).unwrap();
    for name in [
        "3 of DataComp's 38 main metrics missing",
        "WinoGAViL (misc/winogavil: no record)",
        "iWildCam (wilds/iwildcam: main_metric null)",
        "GeoDE (fairness/geode: no record)",
        "--allow-missing",
        "missing.jsonl",
    ] {
        assert!(err.contains(name), "{name:?} not in {err}");
    }

    let o = aggregate(&input, &["--allow-missing"]);
    tic_testkit::ok(&o);
    let partial = &want["partial_means"];
    assert_eq!(String::from_utf8(o.stdout).unwrap(), partial_lines(partial));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("partial: 3 of DataComp's 38"), "{err}");
    assert!(err.contains("Retrieval 2/3") && err.contains("Average 35/38"));
    // The means are numpy's (summed in tasklist order), not only to three decimals.
    let records = ResultsFile::open(&input).unwrap();
    let scores = SuiteMetrics::from_records(records.records()).scores();
    for sc in scores {
        let want = partial[sc.aggregate.label()]["mean"].as_f64().unwrap();
        let got = sc.mean.unwrap();
        assert!(
            (got - want).abs() <= 1e-15,
            "{:?}: {got} vs {want}",
            sc.aggregate
        );
    }
}

/// A TiC results file holds DataComp's records and `tic/...` ones: the original rejects it
/// (44 records), we leave the TiC tasks out and print the aggregates of DataComp's.
#[test]
fn tasks_outside_the_suite_are_left_out_and_listed() {
    let exp = expected();
    assert_eq!(exp["cases"]["with_tic_tasks"]["returncode"], 1);
    let o = aggregate(&fixtures().join("with_tic_tasks.jsonl"), &[]);
    tic_testkit::ok(&o);
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        exp["cases"]["datacomp_nulls"]["stdout"].as_str().unwrap()
    );
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(
        err.contains("left out 6 task(s) outside DataComp's suite")
            && err.contains("tic/datacomp/retrieval/yearly/2014")
            && err.contains("and 1 more"),
        "{err}"
    );
}

#[test]
fn an_unreadable_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let o = aggregate(&tmp.path().join("nope.jsonl"), &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("nope.jsonl"), "{err}");
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(&bad, "not json\n{}\n").unwrap();
    let err = tic_testkit::failed_stderr(&aggregate(&bad, &[]));
    assert!(err.contains("bad.jsonl:1"), "{err}");
    let o = Command::new(env!("CARGO_BIN_EXE_tic-aggregate"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// tic-metrics and tic-report give the same aggregates for a run evaluated on DataComp's
/// suite, and count only the static tasks with a main metric.
#[test]
fn tic_metrics_and_tic_report_show_datacomps_aggregates() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("runs/seq/2016");
    std::fs::create_dir_all(&model).unwrap();
    // DataComp's 40 records (FairFace, UTKFace null) and one TiC task.
    let mut text = std::fs::read_to_string(fixtures().join("datacomp_nulls.jsonl")).unwrap();
    text.push_str(
        "{\"key\": \"tic/datacomp/retrieval/yearly/2016\", \"dataset\": \"r2016\", \"metrics\": {\"mean_recall@1\": 0.5, \"main_metric\": 0.5}}\n",
    );
    std::fs::write(model.join("eval_results.jsonl"), text).unwrap();
    let metrics = tmp.path().join("metrics");
    let o = Command::new(env!("CARGO_BIN_EXE_tic-metrics"))
        .arg("--runs")
        .arg(format!("seq={}", tmp.path().join("runs/seq").display()))
        .arg("--no-plots")
        .arg("--output-dir")
        .arg(&metrics)
        .output()
        .unwrap();
    tic_testkit::ok(&o);
    let md = std::fs::read_to_string(metrics.join("summary.md")).unwrap();
    // 38 of the 40 static tasks entered the static average.
    assert!(md.contains("| 38/40 |"), "{md}");
    let exp = expected();
    let want: Vec<f64> = exp["cases"]["datacomp_nulls"]["stdout"]
        .as_str()
        .unwrap()
        .lines()
        .map(|l| l.rsplit(": ").next().unwrap().parse().unwrap())
        .collect();
    let row = md
        .lines()
        .skip_while(|l| !l.starts_with("## DataComp aggregates"))
        .find(|l| l.starts_with("| seq |"))
        .unwrap_or_else(|| panic!("no DataComp aggregates row:\n{md}"));
    let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
    assert_eq!(cells.len(), 6, "{row}");
    for ((cell, want), n) in cells[1..]
        .iter()
        .zip(&want)
        .zip(["1/1", "6/6", "13/13", "3/3", "38/38"])
    {
        let (value, count) = cell.split_once(' ').unwrap();
        let value: f64 = value.parse().unwrap();
        assert!((value - want).abs() <= 0.0005 + 1e-9, "{cell} vs {want}");
        assert_eq!(count, format!("({n})"));
    }
    // tic-report: the Static cell says 38 of 40 tasks, and the aggregates table follows.
    let out = tic_testkit::run(
        env!("CARGO_BIN_EXE_tic-report"),
        &[
            "--metrics",
            metrics.to_str().unwrap(),
            "--output",
            tmp.path().join("report.md").to_str().unwrap(),
        ],
    );
    tic_testkit::ok(&out);
    let report = std::fs::read_to_string(tmp.path().join("report.md")).unwrap();
    assert!(report.contains("(38/40) |"), "{report}");
    assert!(
        report.contains("### DataComp aggregates (static tasks, %)"),
        "{report}"
    );
    let records = ResultsFile::open(fixtures().join("datacomp_nulls.jsonl")).unwrap();
    let imagenet = SuiteMetrics::from_records(records.records()).scores()[0];
    let ours = format!("{:.1} (1/1)", 100.0 * imagenet.mean.unwrap());
    assert!(report.contains(&ours), "{ours} not in {report}");
}
