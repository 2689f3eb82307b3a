//! Parity of `tic_eval::metrics::fairface` with DataComp's own FairFace / UTKFace evaluation,
//! on the fixtures `tests/fixtures/make_fairface_fixtures.py` made by running DataComp's
//! `FairFaceEvaluator` and `evaluate_fairface_dataset` (7fdb5c6, with the real `wilds` and
//! CLIP_benchmark code).
//!
//! Checked per case: the same fields in the same order; every value within 1e-6 of DataComp's
//! (NaN where DataComp has NaN, counts exact); and the metrics object written as tic-eval writes
//! it into `eval_results.jsonl` (`tic_shards::pyjson`) byte for byte equal to what Python's
//! `json` wrote for DataComp's dict. The end-to-end case also checks every per-label prediction
//! from the prompts' embeddings.

use serde_json::{Map, Value};
use tic_eval::matrix::Matrix;
use tic_eval::metrics::fairface::{self, LabelPrompts, MetadataRow, PredictionRow};
use tic_eval::metrics::ZeroShotClassifier;
use tic_eval::results::sanitize_python_json;

const TOL: f64 = 1e-6;

/// The fixture's text and its JSON (bare `NaN` read as `null`).
fn fixture(name: &str) -> (String, Value) {
    let path = tic_testkit::fixture_dir("tic-eval").join(format!("fairface/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v = serde_json::from_str(&sanitize_python_json(&text)).unwrap();
    (text, v)
}

fn rows4(v: &Value) -> Vec<[i64; 4]> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let r: Vec<i64> = r
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect();
            [r[0], r[1], r[2], r[3]]
        })
        .collect()
}

/// The `"metrics": {…}` object of the fixture as Python's json wrote it.
fn python_metrics_text(text: &str) -> &str {
    let start = text.find("\"metrics\": {").unwrap() + "\"metrics\": ".len();
    let end = start + text[start..].find('}').unwrap() + 1;
    &text[start..end]
}

fn check_metrics(name: &str, text: &str, want: &Value, ours: &Map<String, Value>) {
    let ours_text = tic_shards::pyjson::to_string(ours);
    let ours_back: Map<String, Value> =
        serde_json::from_str(&sanitize_python_json(&ours_text)).unwrap();
    let want = want.as_object().unwrap();
    let keys: Vec<&String> = ours_back.keys().collect();
    let want_keys: Vec<&String> = want.keys().collect();
    assert_eq!(keys, want_keys, "{name}: fields or their order differ");
    for (k, w) in want {
        let o = &ours_back[k];
        match (o.as_f64(), w.as_f64()) {
            (Some(a), Some(b)) => {
                assert!(
                    (a - b).abs() <= TOL,
                    "{name}: {k}: ours {a} vs DataComp {b}"
                )
            }
            (None, None) => assert!(o.is_null() && w.is_null(), "{name}: {k}: {o} vs {w}"),
            _ => panic!("{name}: {k}: ours {o} vs DataComp {w} (NaN is null here)"),
        }
        if k.starts_with("count_") {
            assert_eq!(o.as_f64().unwrap().fract(), 0.0, "{name}: {k}");
        }
    }
    assert_eq!(
        ours_text,
        python_metrics_text(text),
        "{name}: the record's metrics are not written as DataComp's evaluate.py writes them"
    );
}

#[test]
fn evaluator_matches_datacomp_on_every_case() {
    for name in [
        "metrics_fairface_random",
        "metrics_utkface_random",
        "metrics_empty_groups",
        "metrics_single_group",
        "metrics_toxic_thresholds",
    ] {
        let (text, f) = fixture(name);
        let preds: Vec<PredictionRow> = rows4(&f["y_pred"]);
        let meta: Vec<MetadataRow> = rows4(&f["metadata"]);
        let ours = fairface::evaluate(&preds, &meta).unwrap();
        check_metrics(name, &text, &f["metrics"], &ours);
    }
}

#[test]
fn empty_groups_are_nan_with_count_zero() {
    let (_, f) = fixture("metrics_empty_groups");
    let m = &f["metrics"];
    // DataComp writes NaN (read here as null) for them, and count 0.0.
    assert!(m["acc_gender_x_race:1_gender:0"].is_null());
    assert_eq!(m["count_race:1_gender:0"].as_f64(), Some(0.0));
    assert!(m["acc_race_race_binary:0"].is_null());
    let ours = fairface::evaluate(&rows4(&f["y_pred"]), &rows4(&f["metadata"])).unwrap();
    let line = tic_shards::pyjson::to_string(&ours);
    assert!(
        line.contains("\"acc_gender_x_race:1_gender:0\": NaN"),
        "{line}"
    );
}

/// A JSON array of rows as a matrix (numbers read as f64, then f32, as numpy does).
fn matrix(v: &Value) -> Matrix {
    let rows: Vec<Vec<f32>> = serde_json::from_value(v.clone()).unwrap();
    Matrix::from_rows(&rows, rows.first().map_or(0, Vec::len)).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn pipeline_matches_evaluate_fairface_dataset() {
    let (text, f) = fixture("e2e_stub_pipeline");
    let labels = LabelPrompts::from_set(
        &strings(&f["classnames"]),
        &strings(&f["templates"]),
        "fixture",
    )
    .unwrap();
    // The stub tokenizer: prompt text -> row of the text embeddings.
    let prompts = strings(&f["prompts"]);
    let text_emb = matrix(&f["text_emb"]);
    let images = matrix(&f["image_emb"]);
    let mut preds = vec![[0i64; 4]; images.rows()];
    for (l, label) in labels.iter().enumerate() {
        let rows: Vec<Vec<f32>> = label
            .prompts()
            .iter()
            .map(|p| {
                let i = prompts.iter().position(|q| q == p).unwrap();
                text_emb.row(i).to_vec()
            })
            .collect();
        let emb = Matrix::from_rows(&rows, text_emb.cols()).unwrap();
        let clf = ZeroShotClassifier::from_flat(&emb, label.templates.len()).unwrap();
        for (row, c) in preds.iter_mut().zip(clf.argmax(&images).unwrap()) {
            row[l] = c as i64;
        }
    }
    let want_preds = rows4(&f["y_pred"]);
    for (i, (a, b)) in preds.iter().zip(&want_preds).enumerate() {
        assert_eq!(
            a, b,
            "image {i}: per-label predictions (race, gender, age, toxic)"
        );
    }
    // The tie: age classes 3 and 4 have identical prompts' embeddings; argmax keeps 3.
    assert!(want_preds.iter().any(|p| p[2] == 3));
    assert!(want_preds.iter().all(|p| p[2] != 4));
    let ours = fairface::evaluate(&preds, &rows4(&f["metadata"])).unwrap();
    check_metrics("e2e_stub_pipeline", &text, &f["metrics"], &ours);
}
