//! Parity of DataComp's WILDS / Dollar Street / GeoDE evaluators (`metrics::wilds`) with the
//! originals, on the committed fixtures `tests/fixtures/groups/*.json` that
//! `tests/fixtures/make_group_fixtures.py` wrote by running DataComp's own
//! `evaluate_wilds_dataset` / `evaluate_{dollar_street,geode}_dataset` (7fdb5c6, wilds 2.0.0,
//! CLIP_benchmark 1.4.0, scikit-learn 1.1.3) end to end on stub embeddings.
//!
//! Every field is compared (1e-6; NaN with NaN; counts exactly), the predictions the evaluator
//! got are compared with ours, and the whole `eval_results.jsonl` line byte for byte.

use serde_json::Value;
use tic_eval::matrix::Matrix;
use tic_eval::metrics::classification::{Predictions, ZeroShotClassifier};
use tic_eval::metrics::GroupEvaluator;
use tic_eval::results::EvalRecord;

const TOL: f64 = 1e-6;

const CASES: [&str; 10] = [
    "iwildcam_random",
    "iwildcam_ties",
    "camelyon17_empty_slides",
    "camelyon17_one_slide",
    "fmow_other_worst",
    "fmow_empty_regions",
    "dollar_street_random",
    "dollar_street_ties",
    "geode_random",
    "geode_one_region",
];

/// The case `groups/{name}.json`.
fn fixture(name: &str) -> Value {
    let dir = tic_testkit::fixture_dir("tic-eval").join("groups");
    let bytes = std::fs::read(dir.join(format!("{name}.json"))).expect(name);
    serde_json::from_slice(&bytes).expect(name)
}

/// Rows of numbers as a matrix (f32, as the fixture's float32 inputs).
fn matrix(v: &Value) -> Matrix {
    let rows: Vec<Vec<f32>> = serde_json::from_value(v.clone()).unwrap();
    Matrix::from_rows(&rows, rows.first().map_or(0, Vec::len)).unwrap()
}

fn usize_of(v: &Value) -> usize {
    v.as_u64().unwrap() as usize
}

/// Our predictions and metrics object (classification + group fields) for a case.
fn evaluate(f: &Value) -> (Predictions, serde_json::Map<String, Value>) {
    let text = matrix(&f["text_embeddings"]);
    let images = matrix(&f["image_features"]);
    let targets: Vec<usize> = f["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(usize_of)
        .collect();
    let metadata: Vec<Option<Vec<i64>>> = f["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            Some(
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_i64().unwrap())
                    .collect(),
            )
        })
        .collect();
    let clf = ZeroShotClassifier::from_flat(&text, usize_of(&f["templates_per_class"])).unwrap();
    let preds = clf.predict(&images, &targets).unwrap();
    let evaluator = GroupEvaluator::for_task(f["task"].as_str().unwrap()).unwrap();
    let mut metrics = preds.metrics().unwrap().to_json();
    metrics.extend(evaluator.evaluate(&preds, &metadata).unwrap().to_json());
    (preds, metrics)
}

/// The fields CLIP_benchmark computes with `topk(5)`, arbitrary among tied logits: `acc1`
/// (its `topk(5)[:, 0]`) whenever classes tie, `acc5` when a tie straddles the 5th place.
fn tie_dependent(f: &Value, field: &str) -> bool {
    let block = usize_of(&f["tie_block"]);
    match field {
        "acc1" => block > 1,
        "acc5" => block > 1 && 5 % block != 0,
        _ => false,
    }
}

fn check_case(name: &str) {
    let f = fixture(name);
    let (preds, ours) = evaluate(&f);
    let task = f["task"].as_str().unwrap();
    // The predictions DataComp's evaluator received.
    for (i, want) in f["y_pred"].as_array().unwrap().iter().enumerate() {
        if task == "fairness/dollar_street" {
            let top5: Vec<usize> = want.as_array().unwrap().iter().map(usize_of).collect();
            let hit = top5.contains(&preds.targets[i]);
            assert_eq!(
                hit,
                preds.target_rank[i] < 5,
                "{name}: sample {i} top-5 hit"
            );
            if !tie_dependent(&f, "acc1") {
                assert_eq!(top5[0], preds.top1[i], "{name}: sample {i} top-1 of top-5");
            }
        } else {
            assert_eq!(usize_of(want), preds.top1[i], "{name}: sample {i} argmax");
        }
    }
    let expected = f["metrics"].as_array().unwrap();
    let main = f["main_metric"].as_str().unwrap();
    let mut names = Vec::new();
    for pair in expected {
        let key = pair[0].as_str().unwrap();
        let want = &pair[1];
        if key == "main_metric" {
            continue;
        }
        names.push(key);
        let got = ours
            .get(key)
            .unwrap_or_else(|| panic!("{name}: we do not write {key}"));
        if tie_dependent(&f, key) {
            continue;
        }
        let got_f = tic_shards::pyjson::as_float(got);
        match (got_f, want.as_f64()) {
            (None, None) => assert!(got.is_null() || got_f.is_none(), "{name}: {key}"),
            (Some(g), None) => assert!(g.is_nan(), "{name}: {key}: ours {g}, DataComp NaN/null"),
            (Some(g), Some(w)) if key.starts_with("count_") => {
                assert_eq!(g, w, "{name}: {key}")
            }
            (Some(g), Some(w)) => assert!((g - w).abs() <= TOL, "{name}: {key}: {g} vs {w}"),
            (None, Some(w)) => panic!("{name}: {key}: ours {got}, DataComp {w}"),
        }
    }
    // Same fields, same order (main_metric is added by the record).
    let ours_names: Vec<&str> = ours.keys().map(String::as_str).collect();
    assert_eq!(ours_names, names, "{name}: fields and their order");
    if !tie_dependent(&f, main) && !tie_dependent(&f, "acc1") && !tie_dependent(&f, "acc5") {
        let record = EvalRecord::new(task, f["dataset"].as_str().unwrap(), ours, Some(main));
        assert_eq!(
            record.to_line(),
            f["record_line"].as_str().unwrap(),
            "{name}: eval_results.jsonl line"
        );
    }
}

#[test]
fn group_evaluators_match_datacomp() {
    for name in CASES {
        check_case(name);
    }
}

#[test]
fn fixtures_cover_each_evaluator_and_the_edge_cases() {
    let all: Vec<Value> = CASES.iter().map(|c| fixture(c)).collect();
    for task in [
        "wilds/iwildcam",
        "wilds/camelyon17",
        "wilds/fmow",
        "fairness/dollar_street",
        "fairness/geode",
    ] {
        assert!(
            all.iter().filter(|f| f["task"] == task).count() >= 2,
            "{task}"
        );
    }
    let line = |n: &str| fixture(n)["record_line"].as_str().unwrap().to_string();
    // Empty groups are NaN with count 0.0 in DataComp's line.
    assert!(
        line("camelyon17_empty_slides").contains("\"acc_slide:0\": NaN, \"count_slide:0\": 0.0")
    );
    // FMoW's "Other" region (5) is DataComp's worst region.
    let fmow = fixture("fmow_other_worst");
    let m: Vec<&Value> = fmow["metrics"].as_array().unwrap().iter().collect();
    let get = |k: &str| m.iter().find(|p| p[0] == k).unwrap()[1].as_f64().unwrap();
    assert_eq!(get("acc_worst_region"), get("acc_region:5"));
    // Labels in y_pred absent from y_true, and target labels never predicted.
    let ties = fixture("iwildcam_ties");
    let (preds, _) = evaluate(&ties);
    assert!(preds.top1.iter().any(|p| !preds.targets.contains(p)));
    assert!(preds.targets.iter().any(|t| !preds.top1.contains(t)));
}
