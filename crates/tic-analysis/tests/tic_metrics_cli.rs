//! End to end: `tic-metrics` on a tiny synthetic results tree.

use std::path::Path;
use std::process::Command;

/// Value of model `train` (index) on eval year `eval`: a simple known function.
fn value(train: usize, eval: usize) -> f64 {
    0.1 * (train as f64 + 1.0) + 0.01 * eval as f64
}

fn write_model(dir: &Path, time: &str, train: usize, with_imagenet: bool) {
    let d = dir.join(time);
    std::fs::create_dir_all(&d).unwrap();
    let mut lines = String::new();
    for (e, year) in (2015..=2018).enumerate() {
        let v = value(train, e);
        lines.push_str(&format!(
            "{{\"key\": \"tic/datacomp/retrieval/yearly/{year}\", \"dataset\": \"TiC-DataComp-Retrieval-Yearly-{year}\", \"metrics\": {{\"image_retrieval_recall@1\": {v}, \"text_retrieval_recall@1\": {v}, \"mean_recall@1\": {v}, \"main_metric\": {v}}}}}\n"
        ));
        lines.push_str(&format!(
            "{{\"key\": \"tic/datacomp/datacompnet/yearly/{year}\", \"dataset\": \"TiC-DataCompNet-Yearly-{year}\", \"metrics\": {{\"acc1\": {}, \"acc5\": NaN, \"mean_per_class_recall\": 0.1, \"main_metric\": {}}}}}\n",
            v / 2.0,
            v / 2.0
        ));
    }
    if with_imagenet {
        let v = 0.2 + 0.05 * train as f64;
        lines.push_str(&format!(
            "{{\"key\": \"imagenet1k\", \"dataset\": \"ImageNet 1k\", \"metrics\": {{\"acc1\": {v}, \"acc5\": 0.5, \"mean_per_class_recall\": 0.2, \"main_metric\": {v}}}}}\n"
        ));
        lines.push_str(&format!(
            "{{\"key\": \"imagenetv2\", \"dataset\": \"ImageNet v2\", \"metrics\": {{\"acc1\": {}, \"main_metric\": {}}}}}\n",
            v - 0.1,
            v - 0.1
        ));
    }
    std::fs::write(d.join("eval_results.jsonl"), lines).unwrap();
}

#[test]
fn tic_metrics_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // sequential & cumulative: 3 steps (2016 covers eval 2015+2016); oracle: trained once.
    for (run, offset) in [("sequential", 0usize), ("cumulative", 0)] {
        for (i, t) in ["2016", "2017", "2018"].iter().enumerate() {
            write_model(&root.join(run), t, i + offset, true);
        }
    }
    write_model(&root.join("oracle"), "2018", 5, true);
    std::fs::write(
        root.join("oracle/2018/compute.json"),
        r#"{"samples_seen": 300}"#,
    )
    .unwrap();
    std::fs::create_dir_all(root.join("sequential/logs")).unwrap(); // ignored entry
    let out = root.join("metrics");

    let status = Command::new(env!("CARGO_BIN_EXE_tic-metrics"))
        .args(["--runs"])
        .arg(format!("sequential={}", root.join("sequential").display()))
        .arg(format!("cumulative={}", root.join("cumulative").display()))
        .arg("--runs")
        .arg(format!("oracle={}", root.join("oracle").display()))
        .args([
            "--samples-per-step",
            "100",
            "--macs-per-sample",
            "2",
            "--output-dir",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(stdout.contains("| sequential |"), "{stdout}");

    // JSON report: hand-computed transfer numbers for the sequential retrieval matrix.
    // Steps: 2016 (evals 2015, 2016 -> e = 0, 1), 2017 (e = 2), 2018 (e = 3).
    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(rep["steps"], serde_json::json!(["2016", "2017", "2018"]));
    let e = |i: usize, j: usize| -> f64 {
        match j {
            0 => (value(i, 0) + value(i, 1)) / 2.0,
            1 => value(i, 2),
            _ => value(i, 3),
        }
    };
    let seq = &rep["runs"][0];
    assert_eq!(seq["name"], "sequential");
    let fam = seq["matrices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["family"]["family"] == "retrieval")
        .unwrap();
    let s = &fam["summary"];
    let close = |a: &serde_json::Value, b: f64| {
        assert!((a.as_f64().unwrap() - b).abs() < 1e-12, "{a} vs {b}")
    };
    close(&s["id"], (e(0, 0) + e(1, 1) + e(2, 2)) / 3.0);
    close(&s["backward"], (e(1, 0) + e(2, 0) + e(2, 1)) / 3.0);
    close(&s["forward"], (e(0, 1) + e(0, 2) + e(1, 2)) / 3.0);
    assert_eq!(s["complete"], true);
    // Static: last model's ImageNet, and ImageNet+shifts mean.
    close(&seq["static_tasks"]["imagenet"], 0.3);
    close(
        &seq["static_tasks"]["imagenet_and_shifts"],
        (0.3 + 0.2) / 2.0,
    );
    // Compute: 3 x 100 samples x 2 MACs.
    close(&seq["per_step"][2]["cumulative_macs"], 600.0);
    // Oracle: one row, incomplete, own compute.json.
    let oracle = &rep["runs"][2];
    close(&oracle["per_step"][0]["cumulative_samples"], 300.0);
    assert_eq!(oracle["matrices"][0]["summary"]["complete"], false);

    // CSV tables parse and carry the same numbers.
    let mut rdr = csv::Reader::from_path(out.join("summary.csv")).unwrap();
    let headers = rdr.headers().unwrap().clone();
    let id_col = headers.iter().position(|h| h == "id").unwrap();
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3 * 2); // runs x families
    let seq_ret = rows
        .iter()
        .find(|r| &r[0] == "sequential" && &r[2] == "retrieval")
        .unwrap();
    close(
        &serde_json::json!(seq_ret[id_col].parse::<f64>().unwrap()),
        s["id"].as_f64().unwrap(),
    );
    let m = csv::Reader::from_path(out.join("matrix_datacomp-retrieval-yearly_sequential.csv"))
        .unwrap()
        .records()
        .count();
    assert_eq!(m, 3);
    assert!(out.join("steps.csv").is_file());
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("## Matrices") && md.contains("| oracle |"));

    // Plots: PNG and SVG per run and family, plus the compute plot.
    for stem in [
        "heatmap_datacomp-retrieval-yearly_sequential",
        "heatmap_datacomp-datacompnet-yearly_oracle",
        "compute",
    ] {
        let png = std::fs::read(out.join(format!("{stem}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{stem}.png");
        assert!(png.len() > 2000, "{stem}.png is suspiciously small");
        let svg = std::fs::read_to_string(out.join(format!("{stem}.svg"))).unwrap();
        assert!(svg.contains("<svg") && svg.contains("<text"), "{stem}.svg");
    }
    let svg = std::fs::read_to_string(out.join("compute.svg")).unwrap();
    assert!(svg.contains("cumulative") && svg.contains("oracle"));
}

#[test]
fn tic_metrics_reports_a_missing_results_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("run/2016")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tic-metrics"))
        .arg("--runs")
        .arg(format!("seq={}", tmp.path().join("run").display()))
        .arg("--output-dir")
        .arg(tmp.path().join("o"))
        .output()
        .unwrap();
    let err = tic_testkit::failed_stderr(&out);
    assert!(
        err.contains("2016") && err.contains("eval_results.jsonl"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_tic-metrics"))
        .args(["--runs", "no-equals-sign"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAME=VALUE"));
}
