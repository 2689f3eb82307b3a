//! `--val_data`'s metrics against OpenCLIP's own `training.train.evaluate` (open_clip_torch
//! 2.24.0) on fixed features: `fixtures/val_metrics.json`, made by
//! `fixtures/make_val_fixture.py`.

use tic_train::val::{due, ValMetrics};

fn fixture() -> serde_json::Value {
    let p = tic_testkit::fixture_dir("tic-train").join("val_metrics.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

#[test]
fn val_metrics_match_openclip_evaluate() {
    let f = fixture();
    for case in f["cases"].as_array().unwrap() {
        let dim = case["dim"].as_u64().unwrap() as usize;
        let m = ValMetrics::from_features(
            &tic_testkit::fixtures::json_f32s(&case["image_features"]),
            &tic_testkit::fixtures::json_f32s(&case["text_features"]),
            dim,
            case["logit_scale"].as_f64().unwrap() as f32,
            case["batch_size"].as_u64().unwrap() as usize,
        )
        .unwrap();
        let want = case["metrics"].as_object().unwrap();
        let got = m.metrics(1);
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for ((k, v), (wk, wv)) in got.iter().zip(want) {
            assert_eq!(k, wk, "OpenCLIP's key order");
            let w = wv.as_f64().unwrap();
            assert!(
                (v - w).abs() <= 1e-6 * w.abs().max(1.0),
                "{k}: {v} vs OpenCLIP {w}"
            );
        }
        // The results.jsonl record reads back.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("results.jsonl");
        std::fs::write(
            &p,
            format!(
                "{}\n{{\"imagenet-zeroshot-val-top1\": 0.5}}\n",
                m.record(1, 7)
            ),
        )
        .unwrap();
        let back = ValMetrics::read_records(&p).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!((back[0].0, back[0].1), (1, 7));
        for ((k, a), (_, b)) in back[0].2.metrics(1).iter().zip(m.metrics(1)) {
            assert!(
                (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                "{k}: {a} read back, {b} written"
            );
        }
    }
}

#[test]
fn frequencies_follow_openclip() {
    // OpenCLIP: `epoch % frequency == 0 or epoch == epochs`, never with 0.
    let picked: Vec<u64> = (1..=5).filter(|&e| due(2, e, 5)).collect();
    assert_eq!(picked, [2, 4, 5]);
    assert!((1..=5).all(|e| due(1, e, 5)));
    assert!(!(1..=5).any(|e| due(0, e, 5)));
}
