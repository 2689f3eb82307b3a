//! OpenCLIP / PyTorch parity of the schedule, step counts, AdamW (both parameter groups, with
//! clipping) and the contrastive loss with its gradient. Fixtures: tests/fixtures/
//! (made by make_fixtures.py with torch + open_clip_torch 2.24.0).

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor, Var};
use tic_train::loss::clip_loss;
use tic_train::optim::{clip_grad_norm, exclude_from_decay, AdamW, AdamWConfig};
use tic_train::schedule::{cosine_lr, StepCounts};

fn fixtures() -> PathBuf {
    tic_testkit::fixture_dir("tic-train")
}

fn load(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixtures().join(name), &Device::Cpu).unwrap()
}

/// The largest |a − b| of two tensors of the same dimensions (asserted first).
fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    tic_testkit::tensors::max_abs_diff(a, b)
}

#[test]
fn cosine_schedule_matches_openclip() {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("schedule.json")).unwrap()).unwrap();
    for case in v["cases"].as_array().unwrap() {
        let base = case["base_lr"].as_f64().unwrap();
        let warmup = case["warmup"].as_u64().unwrap();
        let steps = case["steps"].as_u64().unwrap();
        for (i, want) in case["lr"].as_array().unwrap().iter().enumerate() {
            let got = cosine_lr(base, warmup, steps, i as u64);
            let want = want.as_f64().unwrap();
            assert!(
                (got - want).abs() <= 1e-15 + 1e-12 * want.abs(),
                "step {i}: {got} vs {want} ({case:?})"
            );
        }
    }
    for c in v["step_counts"].as_array().unwrap() {
        let g = |k: &str| c[k].as_u64().unwrap();
        let s = StepCounts::new(
            g("train_num_samples"),
            g("batch_size"),
            g("num_checkpoints"),
            g("workers"),
            g("accum_freq"),
            1,
        );
        assert_eq!(s.batches_per_epoch, g("batches_per_epoch"), "{c}");
        assert_eq!(s.total_steps, g("total_steps"), "{c}");
    }
}

#[test]
fn adamw_two_steps_match_torch() {
    adamw_case(true);
    adamw_case(false);
}

fn adamw_case(host_loop: bool) {
    let t = load("adamw.safetensors");
    let mut names: Vec<String> = t
        .keys()
        .filter_map(|k| k.strip_prefix("init/").map(str::to_string))
        .collect();
    names.sort();
    let vars: Vec<(String, Var)> = names
        .iter()
        .map(|n| {
            (
                n.clone(),
                Var::from_tensor(&t[&format!("init/{n}")]).unwrap(),
            )
        })
        .collect();
    // The groups are OpenCLIP's.
    let decayed: Vec<&str> = vars
        .iter()
        .filter(|(n, v)| !exclude_from_decay(n, v.rank()))
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        decayed,
        [
            "positional_embedding",
            "text_projection",
            "token_embedding.weight",
            "transformer.resblocks.0.attn.in_proj_weight",
            "visual.conv1.weight"
        ]
    );
    let mut opt = AdamW::new(vars.clone(), AdamWConfig::default());
    opt.host_loop = host_loop;
    let grads = |step: u32| -> Vec<Option<Tensor>> {
        names
            .iter()
            .map(|n| Some(t[&format!("grad{step}/{n}")].clone()))
            .collect()
    };
    opt.step(&grads(1), 1e-2).unwrap();
    for (n, v) in &vars {
        let d = max_abs_diff(v.as_tensor(), &t[&format!("after1/{n}")]);
        assert!(d < 1e-6, "step 1 {n}: {d}");
    }
    let mut g2 = grads(2);
    let norm = clip_grad_norm(&mut g2, 1.0).unwrap();
    let want: f32 = t["grad2_total_norm"].to_scalar().unwrap();
    assert!(
        (norm - want as f64).abs() < 1e-4 * want as f64,
        "{norm} vs {want}"
    );
    for (n, g) in names.iter().zip(&g2) {
        let d = max_abs_diff(g.as_ref().unwrap(), &t[&format!("clipped2/{n}")]);
        assert!(d < 1e-6, "clipped {n}: {d}");
    }
    opt.step(&g2, 5e-3).unwrap();
    for (n, v) in &vars {
        let d = max_abs_diff(v.as_tensor(), &t[&format!("after2/{n}")]);
        assert!(d < 1e-6, "step 2 {n}: {d}");
    }
    // State round trip.
    let st = opt.state_tensors().unwrap();
    let mut other = AdamW::new(vars.clone(), AdamWConfig::default());
    other.load_state(&st, "test").unwrap();
    assert_eq!(other.params[3].step, 2);
}

#[test]
fn clip_loss_and_gradient_match_openclip() {
    let t = load("loss.safetensors");
    let img = Var::from_tensor(&t["image_features"]).unwrap();
    let txt = Var::from_tensor(&t["text_features"]).unwrap();
    let ls = Var::from_tensor(&t["logit_scale"]).unwrap();
    let loss = clip_loss(
        img.as_tensor(),
        txt.as_tensor(),
        &ls.as_tensor().exp().unwrap(),
    )
    .unwrap();
    let want: f32 = t["loss"].to_scalar().unwrap();
    let got: f32 = loss.to_scalar().unwrap();
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    let g = loss.backward().unwrap();
    let d = max_abs_diff(g.get(img.as_tensor()).unwrap(), &t["grad_image"]);
    assert!(d < 1e-5, "grad image {d}");
    let d = max_abs_diff(g.get(txt.as_tensor()).unwrap(), &t["grad_text"]);
    assert!(d < 1e-5, "grad text {d}");
    let d = max_abs_diff(g.get(ls.as_tensor()).unwrap(), &t["grad_logit_scale"]);
    assert!(d < 1e-5, "grad logit_scale {d}");
}
