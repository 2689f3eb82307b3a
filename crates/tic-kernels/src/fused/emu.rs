//! The CUDA kernels of the fused ops (`kernels/fused.cu`) run on the host (the `kernel-emu`
//! feature, for tests): the same source compiled by the C++ compiler against `kernels/emu.h`,
//! one host thread per CUDA thread, launched with the grids of [`super::kernels`] as the CUDA
//! path launches them. Each function takes host slices, runs the kernels of one direction
//! (with the second reduction where the CUDA path has one) and returns host values.
//! `threads` is the block size (a power of two, at most 256; the GPU uses 256).

use std::ffi::c_void;

use candle_core::Result;

use super::kernels::{self as plan, Grid};

/// The bf16 type of the bf16 kernels' inputs and outputs.
pub use half::bf16;

/// An element type the kernels read and write: `f32` or [`bf16`].
pub trait Elem: Copy + Default + Send + Sync + 'static {
    /// Whether this is bf16 (the `_bf16` kernels) rather than f32 (the `_f32` kernels).
    const BF16: bool;
    /// From f32 (rounded to nearest even for bf16).
    fn from_f32(v: f32) -> Self;
    /// To f32 (exact).
    fn to_f32(self) -> f32;
}

impl Elem for f32 {
    const BF16: bool = false;
    fn from_f32(v: f32) -> Self {
        v
    }
    fn to_f32(self) -> f32 {
        self
    }
}

impl Elem for bf16 {
    const BF16: bool = true;
    fn from_f32(v: f32) -> Self {
        bf16::from_f32(v)
    }
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
}

/// Declares each wrapper of `kernels/emu.cpp` in its f32 and bf16 versions; every wrapper takes
/// the grid and the block size first.
macro_rules! wrappers {
    ($($f32:ident $bf16:ident ($($arg:ident: $ty:ty),*);)*) => {
        unsafe extern "C" {
            $(
                fn $f32(gx: u32, gy: u32, gz: u32, threads: u32, $($arg: $ty),*);
                fn $bf16(gx: u32, gy: u32, gz: u32, threads: u32, $($arg: $ty),*);
            )*
        }
    };
}

wrappers! {
    tic_emu_col_sum_finish_f32 tic_emu_col_sum_finish_bf16(
        partial: *const f32, out: *mut c_void, blocks: i32, width: i32);
    tic_emu_ln_fwd_f32 tic_emu_ln_fwd_bf16(
        x: *const c_void, w: *const c_void, b: *const c_void, y: *mut c_void,
        mean: *mut f32, rstd: *mut f32, n: i32, eps: f32);
    tic_emu_ln_bwd_f32 tic_emu_ln_bwd_bf16(
        x: *const c_void, w: *const c_void, g: *const c_void, mean: *const f32,
        rstd: *const f32, dx: *mut c_void, partial: *mut f32, rows: i32, n: i32,
        rows_per_block: i32);
    tic_emu_bias_gelu_fwd_f32 tic_emu_bias_gelu_fwd_bf16(
        z: *const c_void, b: *const c_void, out: *mut c_void, total: i64, n: i32, gelu: i32);
    tic_emu_bias_gelu_bwd_f32 tic_emu_bias_gelu_bwd_bf16(
        z: *const c_void, b: *const c_void, g: *const c_void, dz: *mut c_void,
        partial: *mut f32, rows: i32, n: i32, gelu: i32, rows_per_block: i32);
    tic_emu_attn_fwd_f32 tic_emu_attn_fwd_bf16(
        qkv: *const c_void, mask: *const f32, y: *mut c_void, len: i32, heads: i32, hd: i32,
        has_mask: i32);
    tic_emu_attn_bwd_f32 tic_emu_attn_bwd_bf16(
        qkv: *const c_void, y: *const c_void, dy: *const c_void, mask: *const f32,
        dqkv: *mut c_void, acc: *mut f32, len: i32, heads: i32, hd: i32, has_mask: i32);
    tic_emu_ce_fwd_rows_f32 tic_emu_ce_fwd_rows_bf16(
        x: *const c_void, loss: *mut f32, n: i32, offset: i32);
    tic_emu_ce_fwd_mean_f32 tic_emu_ce_fwd_mean_bf16(loss: *const f32, out: *mut c_void, m: i32);
    tic_emu_ce_bwd_f32 tic_emu_ce_bwd_bf16(
        x: *const c_void, dx: *mut c_void, n: i32, offset: i32, g: f32);
}

/// Launches the f32 or bf16 wrapper for element type `$e` over `$grid` (skipping an empty
/// grid, as the CUDA path does).
macro_rules! launch {
    ($e:ty, $f32:ident, $bf16:ident, $grid:expr, $threads:expr; $($arg:expr),* $(,)?) => {{
        let g: Grid = $grid;
        if !plan::is_empty(g) {
            // SAFETY: the callers check every buffer's length against the sizes they pass,
            // which are those the kernel reads and writes for this grid.
            unsafe {
                if <$e as Elem>::BF16 {
                    $bf16(g.0, g.1, g.2, $threads, $($arg),*)
                } else {
                    $f32(g.0, g.1, g.2, $threads, $($arg),*)
                }
            }
        }
    }};
}

fn cp<E>(s: &[E]) -> *const c_void {
    s.as_ptr().cast()
}

fn mp<E>(s: &mut [E]) -> *mut c_void {
    s.as_mut_ptr().cast()
}

fn check(what: &str, ok: bool) -> Result<()> {
    if !ok {
        candle_core::bail!("emulated kernels: {what}");
    }
    Ok(())
}

/// Adds up per-block partial sums `[blocks, width]` column by column in block order (the
/// second reduction kernel).
fn finish<E: Elem>(partial: &[f32], blocks: usize, width: usize, threads: u32) -> Vec<E> {
    let mut out = vec![E::default(); width];
    launch!(E, tic_emu_col_sum_finish_f32, tic_emu_col_sum_finish_bf16,
        plan::col_sum_finish(width, threads), threads;
        partial.as_ptr(), mp(&mut out), blocks as i32, width as i32);
    out
}

/// LayerNorm forward over `n`-wide rows: `(y, mean, rstd)`.
pub fn layer_norm_forward<E: Elem>(
    x: &[E],
    w: &[E],
    b: &[E],
    n: usize,
    eps: f32,
    threads: u32,
) -> Result<(Vec<E>, Vec<f32>, Vec<f32>)> {
    plan::check_threads(threads)?;
    check(
        "layer norm shapes",
        n > 0 && x.len() % n == 0 && w.len() == n && b.len() == n,
    )?;
    let rows = x.len() / n;
    let (mut y, mut mean, mut rstd) = (
        vec![E::default(); x.len()],
        vec![0f32; rows],
        vec![0f32; rows],
    );
    launch!(E, tic_emu_ln_fwd_f32, tic_emu_ln_fwd_bf16, plan::ln_fwd(rows), threads;
        cp(x), cp(w), cp(b), mp(&mut y), mean.as_mut_ptr(), rstd.as_mut_ptr(), n as i32, eps);
    Ok((y, mean, rstd))
}

/// LayerNorm backward: `(dx, dw, db)` for the upstream gradient `g`.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward<E: Elem>(
    x: &[E],
    w: &[E],
    g: &[E],
    mean: &[f32],
    rstd: &[f32],
    n: usize,
    threads: u32,
) -> Result<(Vec<E>, Vec<E>, Vec<E>)> {
    plan::check_threads(threads)?;
    check(
        "layer norm shapes",
        n > 0 && x.len() % n == 0 && w.len() == n && g.len() == x.len(),
    )?;
    let rows = x.len() / n;
    check(
        "layer norm statistics",
        mean.len() == rows && rstd.len() == rows,
    )?;
    let grid = plan::ln_bwd(rows);
    let blocks = grid.0 as usize;
    let mut partial = vec![0f32; blocks * 2 * n];
    let mut dx = vec![E::default(); x.len()];
    launch!(E, tic_emu_ln_bwd_f32, tic_emu_ln_bwd_bf16, grid, threads;
        cp(x), cp(w), cp(g), mean.as_ptr(), rstd.as_ptr(), mp(&mut dx), partial.as_mut_ptr(),
        rows as i32, n as i32, plan::LN_ROWS_PER_BLOCK as i32);
    let mut dwb = finish::<E>(&partial, blocks, 2 * n, threads);
    let db = dwb.split_off(n);
    Ok((dx, dwb, db))
}

/// `act(z + b)` over `n`-wide rows (act: exact GELU with `gelu`, else identity).
pub fn bias_gelu_forward<E: Elem>(
    z: &[E],
    b: &[E],
    n: usize,
    gelu: bool,
    threads: u32,
) -> Result<Vec<E>> {
    plan::check_threads(threads)?;
    check("bias shapes", n > 0 && z.len() % n == 0 && b.len() == n)?;
    let mut out = vec![E::default(); z.len()];
    launch!(E, tic_emu_bias_gelu_fwd_f32, tic_emu_bias_gelu_fwd_bf16,
        plan::bias_gelu_fwd(z.len(), threads), threads;
        cp(z), cp(b), mp(&mut out), z.len() as i64, n as i32, gelu as i32);
    Ok(out)
}

/// Bias + GELU backward: `(dz, db)` for the upstream gradient `g`.
pub fn bias_gelu_backward<E: Elem>(
    z: &[E],
    b: &[E],
    g: &[E],
    n: usize,
    gelu: bool,
    threads: u32,
) -> Result<(Vec<E>, Vec<E>)> {
    plan::check_threads(threads)?;
    check(
        "bias shapes",
        n > 0 && z.len() % n == 0 && b.len() == n && g.len() == z.len(),
    )?;
    let rows = z.len() / n;
    let grid = plan::bias_gelu_bwd(rows, n, threads);
    let blocks = grid.1 as usize;
    let mut partial = vec![0f32; blocks * n];
    let mut dz = vec![E::default(); z.len()];
    launch!(E, tic_emu_bias_gelu_bwd_f32, tic_emu_bias_gelu_bwd_bf16, grid, threads;
        cp(z), cp(b), cp(g), mp(&mut dz), partial.as_mut_ptr(), rows as i32, n as i32,
        gelu as i32, plan::BIAS_ROWS_PER_BLOCK as i32);
    let db = finish::<E>(&partial, blocks, n, threads);
    Ok((dz, db))
}

/// Checks the block size and packed `qkv` `[B, L, 3·D]` (`dims`) for `heads` heads against
/// the attention kernels' limits: `(heads, head size)`.
fn attention_plan<E>(
    qkv: &[E],
    (b, len, d3): (usize, usize, usize),
    heads: usize,
    threads: u32,
) -> Result<(usize, usize)> {
    plan::check_threads(threads)?;
    let dims = plan::attention_dims(len, d3, heads)?;
    check("qkv shape", qkv.len() == b * len * d3)?;
    Ok(dims)
}

/// Checks an optional additive mask for length `len` (`[L, L]`).
fn check_mask(mask: Option<&[f32]>, len: usize) -> Result<()> {
    check("mask shape", mask.is_none_or(|m| m.len() == len * len))
}

/// The attention kernels' mask arguments: the mask (a one-element dummy, unread, without one)
/// and the flag saying whether there is one.
fn mask_args(mask: Option<&[f32]>) -> (*const f32, i32) {
    static NO_MASK: [f32; 1] = [0.0];
    (mask.unwrap_or(&NO_MASK).as_ptr(), mask.is_some() as i32)
}

/// Attention forward: the merged heads `[B, L, D]` of packed `qkv` `[B, L, 3·D]` (`dims`),
/// with an optional additive `[L, L]` mask.
pub fn attention_forward<E: Elem>(
    qkv: &[E],
    (b, len, d3): (usize, usize, usize),
    heads: usize,
    mask: Option<&[f32]>,
    threads: u32,
) -> Result<Vec<E>> {
    let (h, hd) = attention_plan(qkv, (b, len, d3), heads, threads)?;
    check_mask(mask, len)?;
    let mut y = vec![E::default(); b * len * d3 / 3];
    let (mask, has_mask) = mask_args(mask);
    launch!(E, tic_emu_attn_fwd_f32, tic_emu_attn_fwd_bf16, plan::attn_fwd(b, len, h), threads;
        cp(qkv), mask, mp(&mut y), len as i32, h as i32, hd as i32, has_mask);
    Ok(y)
}

/// Attention backward: the gradient of `qkv` given the forward output `y` and its gradient.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward<E: Elem>(
    qkv: &[E],
    y: &[E],
    dy: &[E],
    (b, len, d3): (usize, usize, usize),
    heads: usize,
    mask: Option<&[f32]>,
    threads: u32,
) -> Result<Vec<E>> {
    let (h, hd) = attention_plan(qkv, (b, len, d3), heads, threads)?;
    check(
        "output shapes",
        y.len() == b * len * d3 / 3 && dy.len() == y.len(),
    )?;
    check_mask(mask, len)?;
    let mut dqkv = vec![E::default(); qkv.len()];
    let mut acc = vec![0f32; b * h * 2 * len * hd];
    let (mask, has_mask) = mask_args(mask);
    launch!(E, tic_emu_attn_bwd_f32, tic_emu_attn_bwd_bf16, plan::attn_bwd(b, h), threads;
        cp(qkv), cp(y), cp(dy), mask, mp(&mut dqkv), acc.as_mut_ptr(), len as i32, h as i32,
        hd as i32, has_mask);
    Ok(dqkv)
}

/// Cross-entropy forward: `mean_i(logsumexp(x_i) − x_{i, offset+i})` of logits `[m, n]`.
pub fn cross_entropy_forward<E: Elem>(
    x: &[E],
    (m, n): (usize, usize),
    offset: usize,
    threads: u32,
) -> Result<E> {
    plan::check_threads(threads)?;
    check("logits shape", x.len() == m * n && offset + m <= n)?;
    let mut loss = vec![0f32; m];
    launch!(E, tic_emu_ce_fwd_rows_f32, tic_emu_ce_fwd_rows_bf16, plan::ce_rows(m), threads;
        cp(x), loss.as_mut_ptr(), n as i32, offset as i32);
    let mut out = [E::default()];
    launch!(E, tic_emu_ce_fwd_mean_f32, tic_emu_ce_fwd_mean_bf16, (1, 1, 1), threads;
        loss.as_ptr(), mp(&mut out), m as i32);
    Ok(out[0])
}

/// Cross-entropy backward: the gradient of the logits for `g` = the loss's gradient / m.
pub fn cross_entropy_backward<E: Elem>(
    x: &[E],
    (m, n): (usize, usize),
    offset: usize,
    g: f32,
    threads: u32,
) -> Result<Vec<E>> {
    plan::check_threads(threads)?;
    check("logits shape", x.len() == m * n && offset + m <= n)?;
    let mut dx = vec![E::default(); x.len()];
    launch!(E, tic_emu_ce_bwd_f32, tic_emu_ce_bwd_bf16, plan::ce_rows(m), threads;
        cp(x), mp(&mut dx), n as i32, offset as i32, g);
    Ok(dx)
}
