//! Training readiness: every parameter of the tiny model receives a non-zero gradient that agrees
//! with central finite differences (f64).

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use tic_model::{init, init::param_specs, Clip, ClipConfig, Tokenizer};

/// OpenCLIP's ClipLoss for one device: mean of the two cross-entropies.
fn clip_loss(model: &Clip, images: &Tensor, ids: &Tensor) -> Tensor {
    let (img, txt, scale) = model.forward(images, ids).unwrap();
    let logits = img
        .matmul(&txt.t().unwrap())
        .unwrap()
        .broadcast_mul(&scale)
        .unwrap();
    let n = logits.dim(0).unwrap();
    let labels = Tensor::arange(0u32, n as u32, &Device::Cpu).unwrap();
    let a = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
    let b = candle_nn::loss::cross_entropy(&logits.t().unwrap(), &labels).unwrap();
    ((a + b).unwrap() / 2.0).unwrap()
}

fn loss_value(model: &Clip, images: &Tensor, ids: &Tensor) -> f64 {
    clip_loss(model, images, ids).to_scalar::<f64>().unwrap()
}

fn set_element(var: &Var, idx: usize, value: f64) {
    let shape = var.shape().clone();
    let mut v: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
    v[idx] = value;
    var.set(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap())
        .unwrap();
}

fn check(cfg_name: &str, samples_per_tensor: usize) {
    let cfg = ClipConfig::builtin(cfg_name).unwrap();
    let dev = Device::Cpu;
    let vm = VarMap::new();
    init::init_varmap(&cfg, &vm, 42, DType::F64, &dev).unwrap();
    // Scale LayerNorm weights/biases and logit_scale away from their constant init so that their
    // gradients are generic (not a special symmetric point).
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    {
        let data = vm.data().lock().unwrap();
        for (name, var) in data.iter() {
            if name.contains("ln_") || name.contains("bias") {
                let n = var.elem_count();
                let noise: Vec<f64> = (0..n).map(|_| rng.random_range(-0.1..0.1)).collect();
                let t = (var.as_tensor()
                    + Tensor::from_vec(noise, var.shape().clone(), &dev).unwrap())
                .unwrap();
                var.set(&t).unwrap();
            }
        }
    }
    let model = Clip::new(
        &cfg,
        candle_nn::VarBuilder::from_varmap(&vm, DType::F64, &dev),
    )
    .unwrap();
    let s = cfg.vision_cfg.image_size;
    let images = Tensor::randn(0f64, 1.0, (3, 3, s, s), &dev).unwrap();
    let texts = [
        "a photo of a cat",
        "two dogs playing in the snow!",
        "a diagram of a neural network",
    ];
    let ids = Tokenizer::shared().tokenize_tensor(&texts, &dev).unwrap();

    let loss = clip_loss(&model, &images, &ids);
    let grads = loss.backward().unwrap();
    let data = vm.data().lock().unwrap().clone();
    let specs = param_specs(&cfg);
    assert_eq!(data.len(), specs.len());
    let eps = 1e-6;
    let mut checked = 0;
    for spec in &specs {
        let var = &data[&spec.name];
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{cfg_name}: no gradient for `{}`", spec.name));
        let gv: Vec<f64> = g.flatten_all().unwrap().to_vec1().unwrap();
        let gmax = gv.iter().fold(0f64, |m, x| m.max(x.abs()));
        assert!(gmax > 0.0, "{cfg_name}: zero gradient for `{}`", spec.name);
        let argmax = gv.iter().position(|x| x.abs() == gmax).unwrap();
        let mut idxs = vec![argmax];
        for _ in 1..samples_per_tensor {
            idxs.push(rng.random_range(0..gv.len()));
        }
        let orig: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        for idx in idxs {
            set_element(var, idx, orig[idx] + eps);
            let lp = loss_value(&model, &images, &ids);
            set_element(var, idx, orig[idx] - eps);
            let lm = loss_value(&model, &images, &ids);
            set_element(var, idx, orig[idx]);
            let fd = (lp - lm) / (2.0 * eps);
            let an = gv[idx];
            let tol = 1e-6 + 1e-4 * an.abs().max(fd.abs());
            assert!(
                (fd - an).abs() <= tol,
                "{cfg_name} `{}`[{idx}]: analytic {an:e} vs finite difference {fd:e}",
                spec.name
            );
            checked += 1;
        }
    }
    eprintln!(
        "{cfg_name}: {} tensors, {checked} elements checked against finite differences",
        specs.len()
    );
    // The loss itself is a finite positive number.
    let l = loss.to_scalar::<f64>().unwrap();
    assert!(l.is_finite() && l > 0.0);
}

#[test]
fn gradients_match_finite_differences_gelu() {
    check("tiny-test", 3);
}

#[test]
fn gradients_match_finite_differences_quickgelu() {
    check("tiny-test-quickgelu", 1);
}
