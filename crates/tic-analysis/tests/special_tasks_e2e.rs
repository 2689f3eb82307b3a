//! End to end, from images to the report: tic-eval (its library run, what the binary's `main`
//! calls) scores tic-synth's synthetic special sets with a tiny random model, named as
//! DataComp's `tasklist.yml` names them (FMoW, Dollar Street, GeoDE, FairFace, and Flickr and
//! MSCOCO and WinoGAViL from the synthetic `hf_cache`); then
//! `tic-aggregate`, `tic-metrics` and `tic-report` read the records as DataComp does: the
//! FairFace record's `null` main metric enters no mean (not DataComp's Average, not the static
//! column, `–` in the static tasks table), its fields fill the fairness tables.

use clap::Parser;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use tic_eval::args::EvalArgs;
use tic_eval::results::ResultsFile;
use tic_testkit::model::tiny_run;
use tic_testkit::shards::special_eval_data;

/// DataComp's names for the special tasks (its `tasklist.yml`), in place of tic-synth's.
const DATACOMP_NAMES: [(&str, &str); 7] = [
    ("Synthetic FMoW (DataComp's wilds/fmow evaluator)", "FMoW"),
    (
        "Synthetic Dollar Street (DataComp's fairness/dollar_street evaluator)",
        "Dollar Street",
    ),
    (
        "Synthetic GeoDE (DataComp's fairness/geode evaluator)",
        "GeoDE",
    ),
    (
        "Synthetic FairFace (DataComp's fairness/fairface evaluator)",
        "FairFace",
    ),
    (
        "Synthetic Flickr (DataComp's retrieval/flickr_1k_test_image_text_retrieval evaluator)",
        "Flickr",
    ),
    (
        "Synthetic MSCOCO (DataComp's retrieval/mscoco_2014_5k_test_image_text_retrieval evaluator)",
        "MSCOCO",
    ),
    (
        "Synthetic WinoGAViL (DataComp's misc/winogavil evaluator)",
        "WinoGAViL",
    ),
];

fn run(bin: &str, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(bin).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn fairface_has_no_main_metric_downstream() {
    let d = tempfile::tempdir().unwrap();
    let (data, tasklist) = special_eval_data(&d.path().join("synth"), 16, 14);
    let mut yaml = std::fs::read_to_string(&tasklist).unwrap();
    for (ours, datacomp) in DATACOMP_NAMES {
        yaml = yaml.replace(&format!("\"{ours}\""), datacomp);
    }
    std::fs::write(&tasklist, yaml).unwrap();
    let model = d.path().join("run");
    tiny_run(&model, &[("epoch_latest", 11)]);
    let results = d.path().join("results/sequential/2016");
    let args = EvalArgs::parse_from([
        "tic-eval",
        "--train_output_dir",
        s(&model),
        "--output_dir",
        s(&results),
        "--data_dir",
        s(&data),
        "--tasklist",
        s(&tasklist),
        "-q",
    ]);
    assert_eq!(tic_eval::run::main_status(&args), 0);
    let file = results.join("eval_results.jsonl");
    let records = ResultsFile::open(&file).unwrap().records().to_vec();
    let main = |name: &str| {
        records
            .iter()
            .find(|r| r.dataset == name)
            .unwrap_or_else(|| panic!("no record of {name}"))
            .main_metric()
    };
    assert_eq!(main("FairFace"), None);
    let scored: Vec<f64> = [
        "FMoW",
        "Dollar Street",
        "GeoDE",
        "Flickr",
        "MSCOCO",
        "WinoGAViL",
    ]
    .iter()
    .map(|n| main(n).unwrap())
    .collect();
    let static_v = main("Synthetic static (16 concepts, all years)").unwrap();

    // tic-aggregate: the six enter DataComp's Average (of 38: partial), FairFace nothing,
    // synth_static is outside DataComp's suite.
    let (code, out, err) = run(
        env!("CARGO_BIN_EXE_tic-aggregate"),
        &["--input", s(&file), "--allow-missing"],
    );
    assert_eq!(code, 0, "{err}");
    let mean = scored.iter().sum::<f64>() / 6.0;
    assert!(
        out.contains(&format!("Average: {mean:.3} (partial: 6 of 38 tasks)\n")),
        "{out}"
    );
    assert!(out.contains("ImageNet: n/a"), "{out}");
    assert!(
        err.contains("left out 1 task(s) outside DataComp's suite"),
        "{err}"
    );
    assert!(
        !err.contains("FairFace"),
        "FairFace is not a missing task: {err}"
    );
    let (code, _, err) = run(env!("CARGO_BIN_EXE_tic-aggregate"), &["--input", s(&file)]);
    assert_eq!(code, 1, "32 main metrics missing: {err}");

    // A TiC task's record, so that the report has a family table with its Static column.
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("{\"key\": \"tic/datacomp/retrieval/yearly/2016\", \"dataset\": \"TiC-DataComp-Retrieval-Yearly-2016\", \"metrics\": {\"mean_recall@1\": 0.5, \"main_metric\": 0.5}}\n");
    std::fs::write(&file, text).unwrap();

    // tic-metrics: the static average is over the 7 tasks with a main metric, of 8.
    let metrics = d.path().join("metrics");
    let runs = format!("sequential={}", s(&d.path().join("results/sequential")));
    let (code, _, err) = run(
        env!("CARGO_BIN_EXE_tic-metrics"),
        &["--runs", &runs, "--output-dir", s(&metrics)],
    );
    assert_eq!(code, 0, "{err}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(metrics.join("report.json")).unwrap())
            .unwrap();
    let st = &report["runs"][0]["static_tasks"];
    assert_eq!(st["tasks"].as_object().unwrap().len(), 8, "{st}");
    assert_eq!(st["tasks"]["FairFace"], Value::Null);
    let average = (scored.iter().sum::<f64>() + static_v) / 7.0;
    assert!(
        (st["average"].as_f64().unwrap() - average).abs() < 1e-12,
        "{st}"
    );
    assert!(st["fairness"]["fairness/fairface"]["acc_race_avg"].is_number());

    // tic-report: the Static cell says 7 of 8 were averaged; the fairness tables are there.
    let md = d.path().join("report.md");
    let (code, _, err) = run(
        env!("CARGO_BIN_EXE_tic-report"),
        &["--metrics", s(&metrics), "--output", s(&md)],
    );
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(
        text.contains(&format!("{:.1} (7/8)", 100.0 * average)),
        "{text}"
    );
    // The static tasks table: each main metric, FairFace's as `–`.
    assert!(text.contains("| FairFace | – |\n"), "{text}");
    let fmow = format!("| FMoW | {:.1} |\n", 100.0 * scored[0]);
    assert!(text.contains(&fmow), "{fmow} in {text}");
    assert!(
        text.contains("### fairness/fairface — sequential"),
        "{text}"
    );
    let ff = &st["fairness"]["fairness/fairface"];
    let overall: Vec<String> = ["race", "gender", "age"]
        .iter()
        .map(|o| {
            format!(
                "{:.1}",
                100.0 * ff[format!("acc_{o}_avg")].as_f64().unwrap()
            )
        })
        .collect();
    assert!(
        text.contains(&format!("| overall | {} |", overall.join(" | "))),
        "{text}"
    );
}
