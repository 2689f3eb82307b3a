//! The fused training ops (`tic_kernels::fused`) against the model's composed ops (Candle's),
//! forward and backward, and their gradients against central finite differences; the fused
//! inference attention (`tic_kernels::cpu_kernels`) against the composed attention.

use candle_core::{Device, Result, Tensor, Var, D};
use tic_kernels::{cpu_kernels, fused};
use tic_testkit::tensors::max_abs_diff as max_diff;

/// Largest |a − b| relative to the largest |b| (1 when b is all zero).
fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let d = max_diff(a, b);
    let m = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
    d / m.to_scalar::<f32>().unwrap().max(1e-6)
}

fn var(shape: &[usize], std: f32, seed: u64) -> Var {
    // Deterministic values without a seeded RNG in Candle: a fixed pseudo-random sequence.
    let n: usize = shape.iter().product();
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 3.46 * std
        })
        .collect();
    Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
}

fn composed_layer_norm(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    tic_model::nn::layer_norm_differentiable(x, w, b, 1e-5)
}

fn composed_attention(qkv: &Tensor, h: usize, mask: Option<&Tensor>) -> Result<Tensor> {
    tic_model::nn::attention_composed(qkv, h, mask)
}

fn composed_linear(x: &Tensor, w: &Tensor, b: &Tensor, gelu: bool) -> Result<Tensor> {
    let y = x.matmul(&w.t()?)?.broadcast_add(b)?;
    if gelu {
        y.gelu_erf()
    } else {
        Ok(y)
    }
}

fn composed_cross_entropy(x: &Tensor, offset: usize) -> Result<Tensor> {
    let (m, n) = x.dims2()?;
    let lse = candle_nn::ops::log_softmax(x, D::Minus1)?;
    let mut mask = vec![0f32; m * n];
    for i in 0..m {
        mask[i * n + offset + i] = 1.0;
    }
    let mask = Tensor::from_vec(mask, (m, n), &Device::Cpu)?;
    ((lse * mask)?.sum_all()? * (-1.0 / m as f64))?.reshape(())
}

fn causal(l: usize) -> Tensor {
    let m: Vec<f32> = (0..l * l)
        .map(|i| {
            if i % l > i / l {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    Tensor::from_vec(m, (l, l), &Device::Cpu).unwrap()
}

/// The gradients of `Σ y·r` (`r` a fixed random weighting of the output `y`).
fn grads_of_weighted_sum(y: Tensor, r: &Var) -> candle_core::backprop::GradStore {
    (y * r.as_tensor())
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap()
}

/// Forward outputs and the gradients of `Σ out·r` for every var, fused against composed.
fn check_against_composed(
    vars: &[&Var],
    fused_op: impl Fn() -> Result<Tensor>,
    composed: impl Fn() -> Result<Tensor>,
    what: &str,
) {
    let (yf, yc) = (fused_op().unwrap(), composed().unwrap());
    assert!(
        rel_diff(&yf, &yc) < 1e-5,
        "{what}: forward differs by {}",
        rel_diff(&yf, &yc)
    );
    let r = var(yf.dims(), 1.0, 99);
    let gf = grads_of_weighted_sum(yf, &r);
    let gc = grads_of_weighted_sum(yc, &r);
    for (i, v) in vars.iter().enumerate() {
        let (a, b) = (
            gf.get(v.as_tensor()).unwrap(),
            gc.get(v.as_tensor()).unwrap(),
        );
        let d = rel_diff(a, b);
        assert!(d < 1e-4, "{what}: gradient of operand {i} differs by {d}");
    }
}

/// Central finite differences of `Σ out·r` at a few coordinates of each var, against the
/// fused op's backward.
fn check_finite_differences(vars: &[&Var], op: impl Fn() -> Result<Tensor>, what: &str) {
    let y = op().unwrap();
    let r = var(y.dims(), 1.0, 7);
    let loss = |y: Tensor| -> f64 {
        let (y, r) = (
            y.flatten_all().unwrap(),
            r.as_tensor().flatten_all().unwrap(),
        );
        let (y, r) = (y.to_vec1::<f32>().unwrap(), r.to_vec1::<f32>().unwrap());
        y.iter().zip(&r).map(|(a, b)| *a as f64 * *b as f64).sum()
    };
    let grads = grads_of_weighted_sum(y, &r);
    for (i, v) in vars.iter().enumerate() {
        let g = grads.get(v.as_tensor()).unwrap().flatten_all().unwrap();
        let g = g.to_vec1::<f32>().unwrap();
        let base = v
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let n = base.len();
        for j in [0, n / 3, n / 2, n - 1] {
            let h = 1e-2f32;
            let at = |delta: f32| -> f64 {
                let mut p = base.clone();
                p[j] += delta;
                v.set(&Tensor::from_vec(p, v.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                let out = loss(op().unwrap());
                v.set(&Tensor::from_vec(base.clone(), v.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                out
            };
            let fd = (at(h) - at(-h)) / (2.0 * h as f64);
            let an = g[j] as f64;
            assert!(
                (fd - an).abs() <= 1e-2 * an.abs().max(1.0),
                "{what}: operand {i}[{j}]: finite difference {fd}, backward {an}"
            );
        }
    }
}

#[test]
fn layer_norm_equals_composition_and_finite_differences() {
    let x = var(&[3, 5, 24], 2.0, 1);
    let w = var(&[24], 1.0, 2);
    let b = var(&[24], 1.0, 3);
    let (xt, wt, bt) = (x.as_tensor(), w.as_tensor(), b.as_tensor());
    check_against_composed(
        &[&x, &w, &b],
        || fused::layer_norm(xt, wt, bt, 1e-5),
        || composed_layer_norm(xt, wt, bt),
        "layer norm",
    );
    check_finite_differences(
        &[&x, &w, &b],
        || fused::layer_norm(xt, wt, bt, 1e-5),
        "layer norm",
    );
}

#[test]
fn attention_equals_composition_and_finite_differences() {
    for (b, l, h, hd, masked) in [(2, 7, 2, 4, false), (2, 9, 3, 8, true), (1, 1, 1, 4, true)] {
        let qkv = var(&[b, l, 3 * h * hd], 1.0, 4);
        let mask = masked.then(|| causal(l));
        let t = qkv.as_tensor();
        let what = format!("attention b{b} l{l} h{h} hd{hd} mask {masked}");
        check_against_composed(
            &[&qkv],
            || fused::attention(t, h, mask.as_ref()),
            || composed_attention(t, h, mask.as_ref()),
            &what,
        );
        check_finite_differences(&[&qkv], || fused::attention(t, h, mask.as_ref()), &what);
    }
}

#[test]
fn fused_attention_matches_the_composed_ops() {
    let dev = Device::Cpu;
    for (b, l, h, hd) in [(3, 7, 2, 4), (2, 50, 4, 16), (1, 1, 1, 8)] {
        let qkv = Tensor::randn(0f32, 1.0, (b, l, 3 * h * hd), &dev).unwrap();
        let unfused = |mask: Option<&Tensor>| composed_attention(&qkv, h, mask).unwrap();
        let got = cpu_kernels::attention(&qkv, h, None).unwrap();
        assert!(max_diff(&got, &unfused(None)) < 1e-5, "{b} {l} {h} {hd}");
        // Causal mask as the text tower builds it.
        let mask = causal(l);
        let got = cpu_kernels::attention(&qkv, h, Some(&mask)).unwrap();
        assert!(max_diff(&got, &unfused(Some(&mask))) < 1e-5);
    }
}

#[test]
fn linear_with_and_without_gelu_equals_composition_and_finite_differences() {
    for gelu in [false, true] {
        let x = var(&[37, 16], 1.0, 5);
        let w = var(&[20, 16], 0.3, 6);
        let b = var(&[20], 0.5, 7);
        let (xt, wt, bt) = (x.as_tensor(), w.as_tensor(), b.as_tensor());
        let what = format!("linear gelu {gelu}");
        check_against_composed(
            &[&x, &w, &b],
            || fused::linear(xt, wt, bt, gelu),
            || composed_linear(xt, wt, bt, gelu),
            &what,
        );
        check_finite_differences(&[&x, &w, &b], || fused::linear(xt, wt, bt, gelu), &what);
    }
}

#[test]
fn cross_entropy_equals_composition_and_finite_differences() {
    // Square (one process) and a rank's rows against all columns (offset 4 of 12).
    for (m, n, offset) in [(6, 6, 0), (4, 12, 4), (3, 40, 37)] {
        let x = var(&[m, n], 3.0, 9);
        let t = x.as_tensor();
        let what = format!("cross-entropy {m}x{n} offset {offset}");
        check_against_composed(
            &[&x],
            || fused::shifted_diagonal_cross_entropy(t, offset),
            || composed_cross_entropy(t, offset),
            &what,
        );
        check_finite_differences(
            &[&x],
            || fused::shifted_diagonal_cross_entropy(t, offset),
            &what,
        );
    }
    assert!(
        fused::shifted_diagonal_cross_entropy(&var(&[3, 4], 1.0, 1).as_tensor().clone(), 2)
            .is_err()
    );
}

#[test]
fn the_switch_selects_composed_ops() {
    let x = var(&[2, 3, 8], 1.0, 8);
    let y_on = fused::with_mode(fused::Mode::On, || {
        assert!(fused::enabled(&[x.as_tensor()]));
        x.as_tensor().exp().unwrap()
    });
    fused::with_mode(fused::Mode::Off, || {
        assert!(!fused::enabled(&[x.as_tensor()]))
    });
    // Nothing tracked: inference, which has its own kernels.
    assert!(!fused::enabled(&[&y_on.detach()]));
    assert_eq!(fused::Mode::parse("OFF"), Some(fused::Mode::Off));
    assert_eq!(fused::Mode::parse("maybe"), None);
}

/// A residual block with its own backward pass (`ResidualBlock::segment` on CPU f32) against
/// Candle's autograd over the composed ops: output, input gradient and all twelve parameter
/// gradients, with and without the causal mask.
#[test]
fn block_backward_equals_autograd_over_composed_ops() {
    use candle_nn::{VarBuilder, VarMap};
    use tic_model::nn::{Activation, ResidualBlock};
    use tic_model::recompute::Segment;
    let (b, l, d, heads, mlp) = (3, 7, 16, 4, 64);
    for mask in [None, Some(causal(l))] {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, candle_core::DType::F32, &Device::Cpu);
        let block = ResidualBlock::new(vb, d, heads, mlp, Activation::GeluErf).unwrap();
        let x = var(&[b, l, d], 1.0, 3);
        let r = var(&[b, l, d], 1.0, 4);
        // Reference: the composed ops through Candle's autograd.
        let (y_ref, g_ref) = fused::with_mode(fused::Mode::Off, || {
            let Segment::Graph(f) = block.segment(mask.clone()).unwrap() else {
                panic!("composed mode must give an autograd segment");
            };
            let y = f(x.as_tensor()).unwrap();
            let g = (&y * r.as_tensor())
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            (y, g)
        });
        // The block's own backward pass.
        let Segment::Own(seg) =
            fused::with_mode(fused::Mode::On, || block.segment(mask.clone())).unwrap()
        else {
            panic!("fused mode must give a segment with its own backward pass");
        };
        let (y, saved) = seg.forward_saving(&x.as_tensor().detach()).unwrap();
        assert!(
            rel_diff(&y, &y_ref) < 1e-5,
            "forward differs by {}",
            rel_diff(&y, &y_ref)
        );
        let (dx, store) = seg
            .backward(&x.as_tensor().detach(), saved, r.as_tensor())
            .unwrap();
        let dx_ref = g_ref.get(x.as_tensor()).unwrap();
        assert!(
            rel_diff(&dx, dx_ref) < 1e-4,
            "input gradient differs by {}",
            rel_diff(&dx, dx_ref)
        );
        let vars = vm.data().lock().unwrap();
        assert_eq!(vars.len(), 12);
        for (name, v) in vars.iter() {
            let (got, want) = (
                store.get(v.as_tensor()).unwrap(),
                g_ref.get(v.as_tensor()).unwrap(),
            );
            let diff = rel_diff(got, want);
            assert!(
                diff < 1e-4,
                "{name}: gradient differs by {diff} (mask {})",
                mask.is_some()
            );
        }
    }
}
