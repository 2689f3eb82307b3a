//! The CUDA kernels of the fused training ops (`kernels/fused.cu`), compiled by the C++
//! compiler and run with CUDA threads as host threads (`--features kernel-emu`), against the
//! host kernels of the same ops (`tic_kernels::fused` on the CPU, Candle's composed ops for bias +
//! GELU), forward and backward: f32 within 1e-5 of the largest reference value, bf16 (inputs
//! rounded to bf16, the reference run on the rounded values in f32) within bf16 tolerance.
//! Every kernel runs twice and must give the same bits. Small shapes, sizes that are not
//! multiples of the block size, block sizes 32 and 256 (the GPU's).
#![cfg(feature = "kernel-emu")]

use candle_core::{Device, Result, Tensor, Var};
use tic_kernels::fused::{self, emu};

/// Tolerance of f32 kernels, relative to the largest reference value.
const F32_TOL: f32 = 1e-5;
/// Tolerance of bf16 kernels (8 significant bits), relative to the largest reference value.
const BF16_TOL: f32 = 1.2e-2;

/// Deterministic pseudo-normal values (sum of four uniforms, centred), times `scale`.
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut uniform = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..n)
        .map(|_| (uniform() + uniform() + uniform() + uniform() - 2.0) * 1.7 * scale)
        .collect()
}

fn to_bf16(v: &[f32]) -> Vec<emu::bf16> {
    v.iter().map(|&x| emu::bf16::from_f32(x)).collect()
}

fn from_bf16(v: &[emu::bf16]) -> Vec<f32> {
    v.iter().map(|x| x.to_f32()).collect()
}

/// f32 values rounded to bf16 (the reference's inputs for the bf16 kernels).
fn rounded(v: &[f32]) -> Vec<f32> {
    from_bf16(&to_bf16(v))
}

/// `max |got − want| ≤ tol · max |want|`, all finite.
fn close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let err = got
        .iter()
        .zip(want)
        .fold(0f32, |m, (g, w)| m.max((g - w).abs()));
    assert!(
        got.iter().all(|v| v.is_finite()) && err <= tol * scale,
        "{what}: max |error| {err:.3e} > {tol:.1e} × {scale:.3e}"
    );
}

/// Same bits in two runs.
fn same_bits<E: emu::Elem>(what: &str, a: &[E], b: &[E]) {
    let bits = |v: &[E]| v.iter().map(|x| x.to_f32().to_bits()).collect::<Vec<_>>();
    assert!(bits(a) == bits(b), "{what}: two runs differ");
}

fn var(v: &[f32], shape: &[usize]) -> Result<Var> {
    Var::from_vec(v.to_vec(), shape, &Device::Cpu)
}

fn host(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

/// Gradients of `Σ y ∘ g` for `vars`: the backward pass of `y` for the upstream gradient `g`.
fn grads(y: &Tensor, g: &[f32], vars: &[&Var]) -> Result<Vec<Vec<f32>>> {
    let gt = Tensor::from_vec(g.to_vec(), y.shape(), &Device::Cpu)?;
    let store = (y * gt)?.sum_all()?.backward()?;
    vars.iter()
        .map(|v| host(store.get(v.as_tensor()).expect("gradient")))
        .collect()
}

// ---- LayerNorm ---------------------------------------------------------------------------------

struct LnRef {
    y: Vec<f32>,
    dx: Vec<f32>,
    dw: Vec<f32>,
    db: Vec<f32>,
}

fn ln_reference(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    g: &[f32],
    rows: usize,
    n: usize,
) -> Result<LnRef> {
    let (xv, wv, bv) = (var(x, &[rows, n])?, var(w, &[n])?, var(b, &[n])?);
    let y = fused::layer_norm(xv.as_tensor(), wv.as_tensor(), bv.as_tensor(), 1e-5)?;
    let mut gr = grads(&y, g, &[&xv, &wv, &bv])?.into_iter();
    Ok(LnRef {
        y: host(&y)?,
        dx: gr.next().unwrap(),
        dw: gr.next().unwrap(),
        db: gr.next().unwrap(),
    })
}

/// Mean and rstd per row in f64.
fn ln_stats(x: &[f32], n: usize) -> (Vec<f32>, Vec<f32>) {
    x.chunks(n)
        .map(|r| {
            let m = r.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            let var = r.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n as f64;
            (m as f32, (1.0 / (var + 1e-5).sqrt()) as f32)
        })
        .unzip()
}

#[test]
fn layer_norm_f32_and_bf16() -> Result<()> {
    // (rows, width, threads): widths below, between and above the block size; 37 and 40 rows =
    // two row blocks of the backward kernel (32 each), the last one partial.
    for (case, &(rows, n, threads)) in [(37, 50, 32), (40, 300, 256), (5, 256, 64)]
        .iter()
        .enumerate()
    {
        let seed = 10 * case as u64;
        let x = values(rows * n, seed, 1.0)
            .iter()
            .enumerate()
            .map(|(i, v)| v + (i / n) as f32 * 0.3)
            .collect::<Vec<_>>();
        let w = values(n, seed + 1, 0.5)
            .iter()
            .map(|v| 1.0 + v)
            .collect::<Vec<_>>();
        let (b, g) = (values(n, seed + 2, 0.5), values(rows * n, seed + 3, 1.0));
        let what = format!("layer norm {rows}×{n}, {threads} threads");

        let r = ln_reference(&x, &w, &b, &g, rows, n)?;
        let (y, mean, rstd) = emu::layer_norm_forward(&x, &w, &b, n, 1e-5, threads)?;
        let (m64, r64) = ln_stats(&x, n);
        close(&format!("{what}: y"), &y, &r.y, F32_TOL);
        close(&format!("{what}: mean"), &mean, &m64, F32_TOL);
        close(&format!("{what}: rstd"), &rstd, &r64, F32_TOL);
        let (dx, dw, db) = emu::layer_norm_backward(&x, &w, &g, &mean, &rstd, n, threads)?;
        close(&format!("{what}: dx"), &dx, &r.dx, F32_TOL);
        close(&format!("{what}: dw"), &dw, &r.dw, F32_TOL);
        close(&format!("{what}: db"), &db, &r.db, F32_TOL);
        let again = emu::layer_norm_forward(&x, &w, &b, n, 1e-5, threads)?;
        same_bits(&what, &y, &again.0);
        same_bits(&what, &mean, &again.1);
        let again = emu::layer_norm_backward(&x, &w, &g, &mean, &rstd, n, threads)?;
        same_bits(&what, &dx, &again.0);
        same_bits(&what, &dw, &again.1);
        same_bits(&what, &db, &again.2);

        // bf16: the reference on the rounded inputs.
        let (xr, wr, br, gr) = (rounded(&x), rounded(&w), rounded(&b), rounded(&g));
        let r = ln_reference(&xr, &wr, &br, &gr, rows, n)?;
        let (xh, wh, bh, gh) = (to_bf16(&x), to_bf16(&w), to_bf16(&b), to_bf16(&g));
        let (y, mean, rstd) = emu::layer_norm_forward(&xh, &wh, &bh, n, 1e-5, threads)?;
        close(&format!("{what}: bf16 y"), &from_bf16(&y), &r.y, BF16_TOL);
        let (dx, dw, db) = emu::layer_norm_backward(&xh, &wh, &gh, &mean, &rstd, n, threads)?;
        close(
            &format!("{what}: bf16 dx"),
            &from_bf16(&dx),
            &r.dx,
            BF16_TOL,
        );
        close(
            &format!("{what}: bf16 dw"),
            &from_bf16(&dw),
            &r.dw,
            BF16_TOL,
        );
        close(
            &format!("{what}: bf16 db"),
            &from_bf16(&db),
            &r.db,
            BF16_TOL,
        );
        let again = emu::layer_norm_backward(&xh, &wh, &gh, &mean, &rstd, n, threads)?;
        same_bits(&what, &dx, &again.0);
        same_bits(&what, &dw, &again.1);
    }
    Ok(())
}

// ---- bias + GELU -------------------------------------------------------------------------------

/// `act(z + b)` and its gradients `(dz, db)` with Candle's composed ops.
fn bias_gelu_reference(
    z: &[f32],
    b: &[f32],
    g: &[f32],
    (rows, n): (usize, usize),
    gelu: bool,
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let (zv, bv) = (var(z, &[rows, n])?, var(b, &[n])?);
    let mut y = zv.as_tensor().broadcast_add(bv.as_tensor())?;
    if gelu {
        y = y.gelu_erf()?;
    }
    let mut gr = grads(&y, g, &[&zv, &bv])?.into_iter();
    Ok((host(&y)?, gr.next().unwrap(), gr.next().unwrap()))
}

#[test]
fn bias_gelu_f32_and_bf16() -> Result<()> {
    // 70 and 130 rows = two and three row blocks of the backward kernel (64 each), the last one
    // partial; widths not multiples of the block size.
    for (case, &(rows, n, threads)) in [(70, 37, 32), (130, 40, 256)].iter().enumerate() {
        for gelu in [false, true] {
            let seed = 100 + 10 * case as u64;
            let (z, b, g) = (
                values(rows * n, seed, 2.0),
                values(n, seed + 1, 0.5),
                values(rows * n, seed + 2, 1.0),
            );
            let what = format!("bias + gelu ({gelu}) {rows}×{n}, {threads} threads");
            let (y0, dz0, db0) = bias_gelu_reference(&z, &b, &g, (rows, n), gelu)?;
            let y = emu::bias_gelu_forward(&z, &b, n, gelu, threads)?;
            close(&format!("{what}: y"), &y, &y0, F32_TOL);
            let (dz, db) = emu::bias_gelu_backward(&z, &b, &g, n, gelu, threads)?;
            close(&format!("{what}: dz"), &dz, &dz0, F32_TOL);
            close(&format!("{what}: db"), &db, &db0, F32_TOL);
            same_bits(
                &what,
                &y,
                &emu::bias_gelu_forward(&z, &b, n, gelu, threads)?,
            );
            let again = emu::bias_gelu_backward(&z, &b, &g, n, gelu, threads)?;
            same_bits(&what, &dz, &again.0);
            same_bits(&what, &db, &again.1);

            let (zr, br, gr) = (rounded(&z), rounded(&b), rounded(&g));
            let (y0, dz0, db0) = bias_gelu_reference(&zr, &br, &gr, (rows, n), gelu)?;
            let (zh, bh, gh) = (to_bf16(&z), to_bf16(&b), to_bf16(&g));
            let y = emu::bias_gelu_forward(&zh, &bh, n, gelu, threads)?;
            close(&format!("{what}: bf16 y"), &from_bf16(&y), &y0, BF16_TOL);
            let (dz, db) = emu::bias_gelu_backward(&zh, &bh, &gh, n, gelu, threads)?;
            close(&format!("{what}: bf16 dz"), &from_bf16(&dz), &dz0, BF16_TOL);
            close(&format!("{what}: bf16 db"), &from_bf16(&db), &db0, BF16_TOL);
        }
    }
    Ok(())
}

// ---- attention ---------------------------------------------------------------------------------

/// `(y, dqkv)` of `tic_kernels::fused::attention` on the CPU.
fn attention_reference(
    qkv: &[f32],
    dy: &[f32],
    (b, len, d3): (usize, usize, usize),
    heads: usize,
    mask: Option<&[f32]>,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let qv = var(qkv, &[b, len, d3])?;
    let mask = mask
        .map(|m| Tensor::from_vec(m.to_vec(), (len, len), &Device::Cpu))
        .transpose()?;
    let y = fused::attention(qv.as_tensor(), heads, mask.as_ref())?;
    let dqkv = grads(&y, dy, &[&qv])?.remove(0);
    Ok((host(&y)?, dqkv))
}

#[test]
fn attention_f32_and_bf16() -> Result<()> {
    // (batch, length, heads, head size, threads, mask): lengths and head sizes that are not
    // multiples of the block size; a causal mask with a fully masked first row (its output and
    // gradients are 0 in both), and a finite random mask.
    let (b, len) = (2usize, 7usize);
    let mut causal = vec![0f32; len * len];
    for i in 0..len {
        for j in 0..len {
            if j > i || i == 0 {
                causal[i * len + j] = f32::NEG_INFINITY;
            }
        }
    }
    let random = values(len * len, 77, 1.0);
    let cases: [(usize, usize, u32, Option<&[f32]>); 4] = [
        (2, 5, 32, None),
        (2, 5, 32, Some(causal.as_slice())),
        (3, 4, 256, Some(random.as_slice())),
        (1, 16, 256, None),
    ];
    for (case, &(heads, hd, threads, mask)) in cases.iter().enumerate() {
        let d3 = 3 * heads * hd;
        let dims = (b, len, d3);
        let seed = 200 + 10 * case as u64;
        let qkv = values(b * len * d3, seed, 1.0);
        let dy = values(b * len * d3 / 3, seed + 1, 1.0);
        let what = format!(
            "attention {b}×{len}, {heads} heads of {hd}, mask {}, {threads} threads",
            mask.is_some()
        );
        let (y0, dqkv0) = attention_reference(&qkv, &dy, dims, heads, mask)?;
        let y = emu::attention_forward(&qkv, dims, heads, mask, threads)?;
        close(&format!("{what}: y"), &y, &y0, F32_TOL);
        let dqkv = emu::attention_backward(&qkv, &y0, &dy, dims, heads, mask, threads)?;
        close(&format!("{what}: dqkv"), &dqkv, &dqkv0, F32_TOL);
        same_bits(
            &what,
            &y,
            &emu::attention_forward(&qkv, dims, heads, mask, threads)?,
        );
        let again = emu::attention_backward(&qkv, &y0, &dy, dims, heads, mask, threads)?;
        same_bits(&what, &dqkv, &again);

        let (qr, gr) = (rounded(&qkv), rounded(&dy));
        let (y0, dqkv0) = attention_reference(&qr, &gr, dims, heads, mask)?;
        let (qh, gh) = (to_bf16(&qkv), to_bf16(&dy));
        let y = emu::attention_forward(&qh, dims, heads, mask, threads)?;
        close(&format!("{what}: bf16 y"), &from_bf16(&y), &y0, BF16_TOL);
        let dqkv = emu::attention_backward(&qh, &y, &gh, dims, heads, mask, threads)?;
        close(
            &format!("{what}: bf16 dqkv"),
            &from_bf16(&dqkv),
            &dqkv0,
            BF16_TOL,
        );
    }
    Ok(())
}

// ---- cross-entropy -----------------------------------------------------------------------------

/// `(loss, dx)` of `tic_kernels::fused::shifted_diagonal_cross_entropy` on the CPU.
fn ce_reference(x: &[f32], (m, n): (usize, usize), offset: usize) -> Result<(f32, Vec<f32>)> {
    let xv = var(x, &[m, n])?;
    let loss = fused::shifted_diagonal_cross_entropy(xv.as_tensor(), offset)?;
    let dx = host(loss.backward()?.get(xv.as_tensor()).expect("gradient"))?;
    Ok((loss.to_scalar::<f32>()?, dx))
}

#[test]
fn cross_entropy_f32_and_bf16() -> Result<()> {
    // (rows, columns, offset, threads): a square matrix, a shifted block (rank 1 of 3 under
    // local_loss), widths that are not multiples of the block size.
    for (case, &(m, n, offset, threads)) in [(3, 3, 0, 32), (5, 15, 5, 32), (10, 300, 120, 256)]
        .iter()
        .enumerate()
    {
        let x = values(m * n, 300 + case as u64, 4.0);
        let what = format!("cross-entropy {m}×{n} offset {offset}, {threads} threads");
        // The loss's gradient is 1: the kernel gets 1 / m, as the op's backward pass passes.
        let g = 1.0 / m as f32;
        let (l0, dx0) = ce_reference(&x, (m, n), offset)?;
        let l = emu::cross_entropy_forward(&x, (m, n), offset, threads)?;
        close(&format!("{what}: loss"), &[l], &[l0], F32_TOL);
        let dx = emu::cross_entropy_backward(&x, (m, n), offset, g, threads)?;
        close(&format!("{what}: dx"), &dx, &dx0, F32_TOL);
        let l2 = emu::cross_entropy_forward(&x, (m, n), offset, threads)?;
        same_bits(&what, &[l], &[l2]);
        same_bits(
            &what,
            &dx,
            &emu::cross_entropy_backward(&x, (m, n), offset, g, threads)?,
        );

        let (l0, dx0) = ce_reference(&rounded(&x), (m, n), offset)?;
        let xh = to_bf16(&x);
        let l = emu::cross_entropy_forward(&xh, (m, n), offset, threads)?;
        close(
            &format!("{what}: bf16 loss"),
            &[l.to_f32()],
            &[l0],
            BF16_TOL,
        );
        let dx = emu::cross_entropy_backward(&xh, (m, n), offset, g, threads)?;
        close(&format!("{what}: bf16 dx"), &from_bf16(&dx), &dx0, BF16_TOL);
    }
    Ok(())
}

#[test]
fn bf16_rounding_matches_the_half_crate() {
    // The emulation's f32 → bf16 store (round to nearest even) against half::bf16::from_f32:
    // bf16 z + bias, added in f32 and stored as bf16. 1 + 2⁻⁸ and 1 + 3·2⁻⁸ are ties (to even:
    // down, then up); also signed zeros, subnormals, overflow to infinity, infinities.
    let mut z = vec![
        1.0f32,
        -1.0,
        3.0,
        0.0,
        -0.0,
        1e-39,
        -2.5e-39,
        3.38e38,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1.0078125,
    ];
    z.extend(values(997, 9, 100.0));
    let zh = to_bf16(&z);
    for bias in [
        0.0f32,
        0.003_906_25,
        0.011_718_75,
        1.5e-3,
        -7.25,
        1e38,
        1e-39,
    ] {
        let bh = to_bf16(&[bias]);
        let got = emu::bias_gelu_forward(&zh, &bh, 1, false, 32).unwrap();
        for (g, zv) in got.iter().zip(&zh) {
            let want = emu::bf16::from_f32(zv.to_f32() + bh[0].to_f32());
            assert_eq!(g.to_bits(), want.to_bits(), "{zv} + {}", bh[0]);
        }
    }
}
