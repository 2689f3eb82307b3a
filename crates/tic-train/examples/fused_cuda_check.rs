//! The CUDA kernels of the fused training ops (`tic_kernels::fused`,
//! `crates/tic-kernels/kernels/fused.cu`) against their CPU f32 kernels on a GPU: each op
//! forward and backward on random inputs of ViT-B-16 sizes, on CUDA in f32 and bf16, against
//! the CPU in f32. Prints one row per (op, dtype) with
//! the largest absolute and relative (to the largest reference value) difference of the output
//! and of every input gradient, whether two CUDA runs gave the same bits, the CUDA time of one
//! forward + backward, and PASS/FAIL (f32 within 1e-4, bf16 within 3e-2 relative); exits 1 on a
//! FAIL. Part of the GPU run of `bench/gpu/train_throughput.sh`.
//!
//! `cargo run --release --features cuda -p tic-train --example fused_cuda_check -- [BATCH]`
//! (default 16 images: LayerNorm and linear rows 16·197, attention [16, 197, 3·768] with 12
//! heads and a causal text case [16, 77, 3·512] with 8 heads, cross-entropy logits [256, 1024]).
//! Without the `cuda` feature it only says so.

#[cfg(not(feature = "cuda"))]
fn main() {
    println!("fused_cuda_check: built without the `cuda` feature: nothing to check (skipped)");
}

#[cfg(feature = "cuda")]
fn main() -> anyhow::Result<()> {
    check::run()
}

#[cfg(feature = "cuda")]
mod check {
    use anyhow::Result;
    use candle_core::{DType, Device, Tensor, Var};
    use tic_kernels::fused;

    /// An op under test, applied to its inputs.
    type Op = Box<dyn Fn(&[Tensor]) -> candle_core::Result<Tensor>>;

    /// One op's inputs (CPU f32), upstream gradient and the op itself.
    struct Case {
        name: String,
        inputs: Vec<Tensor>,
        /// The upstream gradient of the output (None: the output is a scalar loss).
        grad: Option<Tensor>,
        op: Op,
    }

    /// Output and input gradients (as CPU f32 tensors) of `case` with inputs on `dev` in `dtype`.
    fn run_case(case: &Case, dev: &Device, dtype: DType) -> Result<(Tensor, Vec<Tensor>, f64)> {
        let vars = case
            .inputs
            .iter()
            .map(|t| Var::from_tensor(&t.to_device(dev)?.to_dtype(dtype)?))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let ts = vars
            .iter()
            .map(|v| v.as_tensor().clone())
            .collect::<Vec<_>>();
        dev.synchronize()?;
        let t0 = std::time::Instant::now();
        let y = (case.op)(&ts)?;
        let loss = match &case.grad {
            Some(g) => (&y * g.to_device(dev)?.to_dtype(dtype)?)?.sum_all()?,
            None => y.clone(),
        };
        let grads = loss.backward()?;
        dev.synchronize()?;
        let secs = t0.elapsed().as_secs_f64();
        let host = |t: &Tensor| t.to_dtype(DType::F32)?.to_device(&Device::Cpu);
        let gs = vars
            .iter()
            .map(|v| match grads.get(v.as_tensor()) {
                Some(g) => host(g),
                None => candle_core::bail!("{}: no gradient for an input", case.name),
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok((host(&y)?, gs, secs))
    }

    /// (max |a − b|, that over max |b|).
    fn diff(a: &Tensor, b: &Tensor) -> Result<(f32, f32)> {
        let a = a.flatten_all()?.to_vec1::<f32>()?;
        let b = b.flatten_all()?.to_vec1::<f32>()?;
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
        let err = a.iter().zip(&b).fold(0f32, |m, (x, y)| {
            let d = (x - y).abs();
            if d.is_nan() {
                f32::INFINITY
            } else {
                m.max(d)
            }
        });
        Ok((err, err / scale))
    }

    fn same_bits(a: &[Tensor], b: &[Tensor]) -> Result<bool> {
        for (x, y) in a.iter().zip(b) {
            let x = x.flatten_all()?.to_vec1::<f32>()?;
            let y = y.flatten_all()?.to_vec1::<f32>()?;
            if x.iter().zip(&y).any(|(p, q)| p.to_bits() != q.to_bits()) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn cases(batch: usize) -> Result<Vec<Case>> {
        let cpu = Device::Cpu;
        let rn = |shape: &[usize], s: f64| Tensor::randn(0f32, s as f32, shape, &cpu);
        let (rows, d) = (batch * 197, 768);
        let mut out = vec![
            Case {
                name: format!("layer_norm [{rows}, {d}]"),
                inputs: vec![
                    rn(&[rows, d], 1.0)?,
                    (rn(&[d], 0.2)? + 1.0)?,
                    rn(&[d], 0.2)?,
                ],
                grad: Some(rn(&[rows, d], 1.0)?),
                op: Box::new(|t| fused::layer_norm(&t[0], &t[1], &t[2], 1e-5)),
            },
            Case {
                name: format!("linear+gelu [{rows}, {d}]x[{}, {d}]", 4 * d),
                inputs: vec![
                    rn(&[rows, d], 1.0)?,
                    rn(&[4 * d, d], 0.03)?,
                    rn(&[4 * d], 0.1)?,
                ],
                grad: Some(rn(&[rows, 4 * d], 1.0)?),
                op: Box::new(|t| fused::linear(&t[0], &t[1], &t[2], true)),
            },
            Case {
                name: format!("linear [{rows}, {}]x[{d}, {}]", 4 * d, 4 * d),
                inputs: vec![
                    rn(&[rows, 4 * d], 1.0)?,
                    rn(&[d, 4 * d], 0.02)?,
                    rn(&[d], 0.1)?,
                ],
                grad: Some(rn(&[rows, d], 1.0)?),
                op: Box::new(|t| fused::linear(&t[0], &t[1], &t[2], false)),
            },
            Case {
                name: format!("attention [{batch}, 197, {}] 12 heads", 3 * d),
                inputs: vec![rn(&[batch, 197, 3 * d], 1.0)?],
                grad: Some(rn(&[batch, 197, d], 1.0)?),
                op: Box::new(|t| fused::attention(&t[0], 12, None)),
            },
        ];
        // The text tower's causal mask: -inf above the diagonal.
        let len = 77;
        let mask = (0..len * len)
            .map(|i| {
                if i % len > i / len {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect::<Vec<_>>();
        let mask = Tensor::from_vec(mask, (len, len), &cpu)?;
        out.push(Case {
            name: format!("attention causal [{batch}, {len}, 1536] 8 heads"),
            inputs: vec![rn(&[batch, len, 1536], 1.0)?],
            grad: Some(rn(&[batch, len, 512], 1.0)?),
            op: Box::new(move |t| fused::attention(&t[0], 8, Some(&mask))),
        });
        out.push(Case {
            name: "cross_entropy [256, 1024] offset 256".into(),
            inputs: vec![rn(&[256, 1024], 5.0)?],
            grad: None,
            op: Box::new(|t| fused::shifted_diagonal_cross_entropy(&t[0], 256)),
        });
        Ok(out)
    }

    /// Runs every case on the CPU (f32) and on CUDA device 0 (f32, bf16) and prints the table.
    pub fn run() -> Result<()> {
        let batch = std::env::args()
            .nth(1)
            .map(|b| b.parse::<usize>())
            .transpose()?
            .unwrap_or(16);
        let gpu = Device::new_cuda(0)?;
        println!(
            "{:<44} {:>5} {:>10} {:>10} {:>10} {:>10} {:>6} {:>9} {:>6}",
            "op", "dtype", "out_abs", "out_rel", "grad_abs", "grad_rel", "det", "cuda_ms", "result"
        );
        let mut failed = 0;
        for case in cases(batch)? {
            let (y0, g0, _) = run_case(&case, &Device::Cpu, DType::F32)?;
            for (dtype, tol) in [(DType::F32, 1e-4f32), (DType::BF16, 3e-2)] {
                let row = (|| -> Result<String> {
                    // A warm-up run (kernel loading), the timed run, and a third for the bits.
                    run_case(&case, &gpu, dtype)?;
                    let (y, g, secs) = run_case(&case, &gpu, dtype)?;
                    let (y2, g2, _) = run_case(&case, &gpu, dtype)?;
                    let det = same_bits(std::slice::from_ref(&y), &[y2])? && same_bits(&g, &g2)?;
                    let (oa, or) = diff(&y, &y0)?;
                    let (mut ga, mut gr) = (0f32, 0f32);
                    for (a, b) in g.iter().zip(&g0) {
                        let (x, r) = diff(a, b)?;
                        ga = ga.max(x);
                        gr = gr.max(r);
                    }
                    let pass = or <= tol && gr <= tol && det;
                    if !pass {
                        failed += 1;
                    }
                    Ok(format!(
                        "{:>10.2e} {:>10.2e} {:>10.2e} {:>10.2e} {:>6} {:>9.2} {:>6}",
                        oa,
                        or,
                        ga,
                        gr,
                        if det { "yes" } else { "NO" },
                        secs * 1e3,
                        if pass { "PASS" } else { "FAIL" }
                    ))
                })();
                let row = row.unwrap_or_else(|e| {
                    failed += 1;
                    format!("ERROR {e}")
                });
                println!(
                    "{:<44} {:>5} {row}",
                    case.name,
                    format!("{dtype:?}").to_lowercase()
                );
            }
        }
        if failed > 0 {
            println!("fused_cuda_check: {failed} FAIL");
            std::process::exit(1);
        }
        println!("fused_cuda_check: all PASS");
        Ok(())
    }
}
