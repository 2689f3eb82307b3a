//! End to end: the `tic-eval` binary on tic-synth's synthetic special sets (`--special-samples`,
//! what `make demo` evaluates), through a tiny random model. The FairFace-style set is a
//! multi-label WebDataset (`npy` members `[age, gender, race, race_binary]`, `objective:text`
//! class names and templates, no `cls`): its record holds DataComp's fairness fields and
//! `main_metric: null`, no `acc1`. The FMoW-, Dollar Street- and GeoDE-style sets get their
//! evaluators' group fields and a main metric; the Flickr-, MSCOCO- and WinoGAViL-style sets of
//! the synthetic `hf_cache` (`synth::hf_sets`: two `datasets` layouts, a sharded split)
//! DataComp's retrieval and WinoGAViL fields.

use serde_json::Value;
use std::process::Command;
use tic_testkit::model::tiny_run;
use tic_testkit::shards::special_eval_data;

const BIN: &str = env!("CARGO_BIN_EXE_tic-eval");

/// Samples per special set: 3 of each of the FairFace-style set's 7 races.
const N: usize = 21;

#[test]
fn synthetic_special_tasks_get_datacomps_records() {
    let d = tempfile::tempdir().unwrap();
    let (data, tasklist) = special_eval_data(&d.path().join("synth"), 16, N);
    let run = d.path().join("run");
    tiny_run(&run, &[("epoch_latest", 5)]);
    let out = d.path().join("out");
    let o = Command::new(BIN)
        .args(["--train_output_dir", run.to_str().unwrap(), "--output_dir"])
        .arg(&out)
        .args(["--data_dir", data.to_str().unwrap(), "--tasklist"])
        .arg(&tasklist)
        .args(["--batch_size", "16", "-q"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(out.join("eval_results.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let records: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(&l.replace("NaN", "null")).unwrap())
        .collect();
    let keys: Vec<&str> = records.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "synth_static",
            "wilds/fmow",
            "fairness/dollar_street",
            "fairness/geode",
            "fairness/fairface",
            "retrieval/flickr_1k_test_image_text_retrieval",
            "retrieval/mscoco_2014_5k_test_image_text_retrieval",
            "misc/winogavil"
        ]
    );
    // The hf_cache stand-ins (`synth::hf_sets`), read by the hf_cache reader: DataComp's fields.
    for (r, main) in
        records[5..]
            .iter()
            .zip(["mean_recall@1", "mean_recall@1", "jaccard_score_10-12"])
    {
        let m = &r["metrics"];
        let v = m["main_metric"].as_f64().unwrap();
        assert_eq!(m[main].as_f64(), Some(v), "{r}");
        assert!((0.0..=1.0).contains(&v), "{r}");
        assert!(r["dataset"].as_str().unwrap().starts_with("Synthetic "));
    }
    for f in [
        "jaccard_score_5",
        "jaccard_score_6",
        "jaccard_score_10",
        "jaccard_score_12",
    ] {
        assert!(records[7]["metrics"][f].is_number(), "{f}: {}", records[7]);
    }

    // The group evaluators' main metrics, and their groups from the rendered attributes.
    for (r, main) in records[1..4]
        .iter()
        .zip(["acc_worst_region", "acc_top5_wg", "acc_wg"])
    {
        let m = &r["metrics"];
        let v = m["main_metric"].as_f64().unwrap();
        assert_eq!(m[main].as_f64(), Some(v), "{r}");
        assert!((0.0..=1.0).contains(&v) && m["acc1"].is_number(), "{r}");
        assert!(r["dataset"].as_str().unwrap().starts_with("Synthetic "));
    }
    let fmow = &records[1]["metrics"];
    let region_counts: f64 = (0..6)
        .map(|g| fmow[format!("count_region:{g}")].as_f64().unwrap())
        .sum();
    assert_eq!(region_counts, N as f64, "{fmow}");
    assert!(stdout.contains("Synthetic FairFace"), "{stdout}");

    // FairFace: DataComp's fields, no acc1, main_metric null.
    let ff_line = lines[4];
    assert!(ff_line.ends_with("\"main_metric\": null}}"), "{ff_line}");
    assert_eq!(
        records[4]["dataset"],
        "Synthetic FairFace (DataComp's fairness/fairface evaluator)"
    );
    let ff = records[4]["metrics"].as_object().unwrap();
    assert!(
        !ff.contains_key("acc1") && !ff.contains_key("acc5"),
        "{ff_line}"
    );
    assert_eq!(ff.keys().next().map(String::as_str), Some("acc_race_avg"));
    for r in 0..7 {
        // Race = the object's colour, cycled: 3 samples each.
        assert_eq!(ff[&format!("count_race:{r}")], 3.0, "race {r}: {ff_line}");
        for g in 0..2 {
            let f = format!("acc_gender_x_race:{r}_gender:{g}");
            assert!(ff.contains_key(&f), "{f}: {ff_line}");
        }
        for t in ["crime", "nonhuman"] {
            let v = ff[&format!("toxicity_{t}_race:{r}")].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v));
        }
    }
    // Averages are the count-weighted means of their groups (race 1 is "white", race_binary 0).
    assert_eq!(ff["count_race_binary:0"], 3.0);
    assert_eq!(ff["count_race_binary:1"], (N - 3) as f64);
    for label in ["race", "gender", "age"] {
        let g = |b: u8| {
            ff[&format!("acc_{label}_race_binary:{b}")]
                .as_f64()
                .unwrap()
        };
        let avg = ff[&format!("acc_{label}_avg")].as_f64().unwrap();
        let weighted = (3.0 * g(0) + (N - 3) as f64 * g(1)) / N as f64;
        assert!(
            (avg - weighted).abs() < 1e-6,
            "{label}: {avg} vs {weighted}"
        );
        let wg = ff[&format!("acc_{label}_wg")].as_f64().unwrap();
        assert_eq!(wg, g(0).min(g(1)), "{label}");
    }
}
