//! CUDA launches of the fused ops' kernels (`kernels/fused.cu`, compiled to PTX by build.rs
//! under the `cuda` feature): f32 and bf16 storages, contiguous inputs. The grids and
//! workspaces come from [`super::kernels`], as in the host emulation the tests run.
//!
//! Outputs with more than one tensor (a backward pass's gradients) are packed into one flat
//! buffer that the op's caller splits with `narrow`.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{CudaDevice, CudaStorage, DType, Layout, Result};

use super::kernels::{self as plan, Grid, THREADS};

/// The PTX of `kernels/fused.cu`.
const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/fused.ptx"));
/// The name the PTX module is cached under in the device.
const MODULE: &str = "tic_fused_ops";

/// An element type of the kernels: f32 or bf16.
pub(super) trait Elem: CudaDType + DeviceRepr + Copy {
    /// The kernel names' suffix.
    const SUFFIX: &'static str;
}

impl Elem for f32 {
    const SUFFIX: &'static str = "f32";
}

impl Elem for half::bf16 {
    const SUFFIX: &'static str = "bf16";
}

/// Runs `$body` with `$t` the element type of `$dtype` (f32 or bf16).
macro_rules! with_elem {
    ($dtype:expr, $op:expr, $t:ident => $body:expr) => {
        match $dtype {
            DType::F32 => {
                type $t = f32;
                $body
            }
            DType::BF16 => {
                type $t = half::bf16;
                $body
            }
            dt => candle_core::bail!("{}: no CUDA kernel for {dt:?}", $op),
        }
    };
}

/// A launch configuration of `grid` blocks of [`THREADS`] threads.
fn launch_cfg(grid: Grid) -> LaunchConfig {
    LaunchConfig {
        grid_dim: grid,
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Loads (once per device) and returns the kernel `{root}_{suffix}`.
macro_rules! kernel {
    ($dev:expr, $root:expr, $t:ty) => {
        $dev.get_or_load_custom_func(&format!("{}_{}", $root, <$t as Elem>::SUFFIX), MODULE, PTX)?
    };
}

/// The contiguous elements of an operand as a device view.
fn view<'a, T: Elem>(s: &'a CudaStorage, l: &Layout, op: &str) -> Result<CudaView<'a, T>> {
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("{op}: expected a contiguous input");
    };
    Ok(s.as_cuda_slice::<T>()?.slice(a..b))
}

/// An uninitialised device buffer of `len` elements (every caller's kernels write all of it).
fn alloc<T: DeviceRepr>(dev: &CudaDevice, len: usize) -> Result<CudaSlice<T>> {
    // SAFETY: the kernels launched on the buffer write every element before it is read
    // (documented at each call).
    unsafe { dev.alloc::<T>(len.max(1)) }
}

/// Checks that every operand has the element type `dtype`.
fn same_dtype(op: &str, dtype: DType, others: &[&CudaStorage]) -> Result<()> {
    if let Some(s) = others.iter().find(|s| s.dtype() != dtype) {
        candle_core::bail!("{op}: mixed dtypes {dtype:?} and {:?}", s.dtype());
    }
    Ok(())
}

/// `out[j] = Σ_b partial[b·width + j]` in block order, written to `out` (the second reduction).
fn col_sum_finish<T: Elem>(
    dev: &CudaDevice,
    partial: &CudaSlice<f32>,
    out: &mut candle_core::cuda_backend::cudarc::driver::CudaViewMut<'_, T>,
    blocks: usize,
    width: usize,
) -> Result<()> {
    let grid = plan::col_sum_finish(width, THREADS);
    if plan::is_empty(grid) || width == 0 {
        return Ok(());
    }
    let f = kernel!(dev, "tic_col_sum_finish", T);
    let (blocks, width) = (blocks as i32, width as i32);
    let mut b = f.builder();
    b.arg(partial);
    b.arg(out);
    b.arg(&blocks);
    b.arg(&width);
    // SAFETY: `partial` holds blocks × width floats and `out` width elements.
    unsafe { b.launch(launch_cfg(grid)) }.w()?;
    Ok(())
}

/// LayerNorm forward over the last dimension: `(y, mean, rstd)` (statistics in f32).
pub(super) fn layer_norm_forward(
    (x, lx): (&CudaStorage, &Layout),
    (w, lw): (&CudaStorage, &Layout),
    (b, lb): (&CudaStorage, &Layout),
    eps: f32,
) -> Result<(CudaStorage, CudaSlice<f32>, CudaSlice<f32>)> {
    const OP: &str = "tic-fused-layer-norm (CUDA)";
    same_dtype(OP, x.dtype(), &[w, b])?;
    let dev = x.device().clone();
    let n = lx.dims().last().copied().unwrap_or(1);
    let rows = lx.shape().elem_count() / n.max(1);
    if n == 0 || lw.shape().elem_count() != n || lb.shape().elem_count() != n {
        candle_core::bail!(
            "{OP}: width {n}, weight {:?}, bias {:?}",
            lw.shape(),
            lb.shape()
        );
    }
    with_elem!(x.dtype(), OP, T => {
        let (xv, wv, bv) = (view::<T>(x, lx, OP)?, view::<T>(w, lw, OP)?, view::<T>(b, lb, OP)?);
        // Written in full: one block per row writes its n values, its mean and its rstd.
        let y = alloc::<T>(&dev, rows * n)?;
        let mean = alloc::<f32>(&dev, rows)?;
        let rstd = alloc::<f32>(&dev, rows)?;
        let grid = plan::ln_fwd(rows);
        if !plan::is_empty(grid) {
            let f = kernel!(dev, "tic_ln_fwd", T);
            let ni = n as i32;
            let mut bld = f.builder();
            bld.arg(&xv);
            bld.arg(&wv);
            bld.arg(&bv);
            bld.arg(&y);
            bld.arg(&mean);
            bld.arg(&rstd);
            bld.arg(&ni);
            bld.arg(&eps);
            // SAFETY: x and y hold rows × n elements, w and b n, mean and rstd rows.
            unsafe { bld.launch(launch_cfg(grid)) }.w()?;
        }
        Ok((CudaStorage::wrap_cuda_slice(y, dev), mean, rstd))
    })
}

/// LayerNorm backward: `[dx (rows·n); dw (n); db (n)]` packed, for `x`, `w` and the gradient
/// `g`, with the forward pass's statistics.
pub(super) fn layer_norm_backward(
    (x, lx): (&CudaStorage, &Layout),
    (w, lw): (&CudaStorage, &Layout),
    (g, lg): (&CudaStorage, &Layout),
    mean: &CudaSlice<f32>,
    rstd: &CudaSlice<f32>,
) -> Result<CudaStorage> {
    const OP: &str = "tic-fused-layer-norm backward (CUDA)";
    same_dtype(OP, x.dtype(), &[w, g])?;
    let dev = x.device().clone();
    let n = lw.shape().elem_count();
    let total = lx.shape().elem_count();
    if n == 0 || total % n != 0 || lg.shape().elem_count() != total {
        candle_core::bail!(
            "{OP}: input {:?}, weight {n}, gradient {:?}",
            lx.shape(),
            lg.shape()
        );
    }
    let rows = total / n;
    if mean.len() < rows || rstd.len() < rows {
        candle_core::bail!("{OP}: statistics for {} rows, input has {rows}", mean.len());
    }
    with_elem!(x.dtype(), OP, T => {
        let (xv, wv, gv) = (view::<T>(x, lx, OP)?, view::<T>(w, lw, OP)?, view::<T>(g, lg, OP)?);
        let grid = plan::ln_bwd(rows);
        let blocks = grid.0 as usize;
        // Written in full: every row's dx by its block, dw and db by the finishing kernel;
        // each block zeroes its own partial sums first.
        let mut packed = alloc::<T>(&dev, total + 2 * n)?;
        let partial = alloc::<f32>(&dev, blocks * 2 * n)?;
        {
            let f = kernel!(dev, "tic_ln_bwd", T);
            let (ri, ni, rpb) = (rows as i32, n as i32, plan::LN_ROWS_PER_BLOCK as i32);
            let mut dx = packed.slice_mut(0..total);
            let mut bld = f.builder();
            bld.arg(&xv);
            bld.arg(&wv);
            bld.arg(&gv);
            bld.arg(mean);
            bld.arg(rstd);
            bld.arg(&mut dx);
            bld.arg(&partial);
            bld.arg(&ri);
            bld.arg(&ni);
            bld.arg(&rpb);
            // SAFETY: x, g and dx hold rows × n elements, w n, mean and rstd ≥ rows, partial
            // blocks × 2n.
            unsafe { bld.launch(launch_cfg(grid)) }.w()?;
        }
        let mut tail = packed.slice_mut(total..total + 2 * n);
        col_sum_finish::<T>(&dev, &partial, &mut tail, blocks, 2 * n)?;
        Ok(CudaStorage::wrap_cuda_slice(packed, dev))
    })
}

/// `act(z + b)` over the `n`-wide rows of `z` (act: exact GELU with `gelu`).
pub(super) fn bias_gelu_forward(
    (z, lz): (&CudaStorage, &Layout),
    (b, lb): (&CudaStorage, &Layout),
    gelu: bool,
) -> Result<CudaStorage> {
    const OP: &str = "tic-fused-bias-gelu (CUDA)";
    same_dtype(OP, z.dtype(), &[b])?;
    let dev = z.device().clone();
    let n = lb.shape().elem_count();
    let total = lz.shape().elem_count();
    if n == 0 || lz.dims().last() != Some(&n) {
        candle_core::bail!("{OP}: input {:?}, bias {n}", lz.shape());
    }
    with_elem!(z.dtype(), OP, T => {
        let (zv, bv) = (view::<T>(z, lz, OP)?, view::<T>(b, lb, OP)?);
        // Written in full: one thread per element.
        let out = alloc::<T>(&dev, total)?;
        let grid = plan::bias_gelu_fwd(total, THREADS);
        if total > 0 {
            let f = kernel!(dev, "tic_bias_gelu_fwd", T);
            let (ti, ni, gi) = (total as i64, n as i32, gelu as i32);
            let mut bld = f.builder();
            bld.arg(&zv);
            bld.arg(&bv);
            bld.arg(&out);
            bld.arg(&ti);
            bld.arg(&ni);
            bld.arg(&gi);
            // SAFETY: z and out hold `total` elements, b n.
            unsafe { bld.launch(launch_cfg(grid)) }.w()?;
        }
        Ok(CudaStorage::wrap_cuda_slice(out, dev))
    })
}

/// Bias + GELU backward: `[dz (rows·n); db (n)]` packed, for the gradient `g` of the output.
pub(super) fn bias_gelu_backward(
    (z, lz): (&CudaStorage, &Layout),
    (b, lb): (&CudaStorage, &Layout),
    (g, lg): (&CudaStorage, &Layout),
    gelu: bool,
) -> Result<CudaStorage> {
    const OP: &str = "tic-fused-bias-gelu backward (CUDA)";
    same_dtype(OP, z.dtype(), &[b, g])?;
    let dev = z.device().clone();
    let n = lb.shape().elem_count();
    let total = lz.shape().elem_count();
    if n == 0 || total % n != 0 || lg.shape().elem_count() != total {
        candle_core::bail!(
            "{OP}: input {:?}, bias {n}, gradient {:?}",
            lz.shape(),
            lg.shape()
        );
    }
    let rows = total / n;
    with_elem!(z.dtype(), OP, T => {
        let (zv, bv, gv) = (view::<T>(z, lz, OP)?, view::<T>(b, lb, OP)?, view::<T>(g, lg, OP)?);
        let grid = plan::bias_gelu_bwd(rows, n, THREADS);
        let blocks = grid.1 as usize;
        // Written in full: dz and the partial sums by the first kernel (every column of every
        // row block), db by the second.
        let mut packed = alloc::<T>(&dev, total + n)?;
        let partial = alloc::<f32>(&dev, blocks * n)?;
        {
            let f = kernel!(dev, "tic_bias_gelu_bwd", T);
            let (ri, ni, gi) = (rows as i32, n as i32, gelu as i32);
            let rpb = plan::BIAS_ROWS_PER_BLOCK as i32;
            let mut dz = packed.slice_mut(0..total);
            let mut bld = f.builder();
            bld.arg(&zv);
            bld.arg(&bv);
            bld.arg(&gv);
            bld.arg(&mut dz);
            bld.arg(&partial);
            bld.arg(&ri);
            bld.arg(&ni);
            bld.arg(&gi);
            bld.arg(&rpb);
            // SAFETY: z, g and dz hold rows × n elements, b n, partial blocks × n.
            unsafe { bld.launch(launch_cfg(grid)) }.w()?;
        }
        let mut tail = packed.slice_mut(total..total + n);
        col_sum_finish::<T>(&dev, &partial, &mut tail, blocks, n)?;
        Ok(CudaStorage::wrap_cuda_slice(packed, dev))
    })
}

/// The mask as a device buffer (a one-element dummy without a mask) and the kernels' flag.
fn mask_buffer(dev: &CudaDevice, mask: Option<&[f32]>) -> Result<(CudaSlice<f32>, i32)> {
    match mask {
        Some(m) => Ok((dev.clone_htod(m)?, 1)),
        None => Ok((dev.clone_htod(&[0f32][..])?, 0)),
    }
}

/// Attention forward: the merged heads `[B, L, D]` of packed `qkv` `[B, L, 3·D]`.
pub(super) fn attention_forward(
    (qkv, l): (&CudaStorage, &Layout),
    heads: usize,
    mask: Option<&[f32]>,
) -> Result<CudaStorage> {
    const OP: &str = "tic-fused-attention (CUDA)";
    let dev = qkv.device().clone();
    let (b, len, d3) = l.shape().dims3()?;
    let (h, hd) = plan::attention_dims(len, d3, heads)?;
    if mask.is_some_and(|m| m.len() != len * len) {
        candle_core::bail!("{OP}: mask for length {len} expected");
    }
    let (mask, has_mask) = mask_buffer(&dev, mask)?;
    with_elem!(qkv.dtype(), OP, T => {
        let qv = view::<T>(qkv, l, OP)?;
        // Written in full: block (i, h, b) writes row i of head h in batch row b.
        let y = alloc::<T>(&dev, b * len * d3 / 3)?;
        let grid = plan::attn_fwd(b, len, h);
        if !plan::is_empty(grid) {
            let f = kernel!(dev, "tic_attn_fwd", T);
            let (li, hi, hdi) = (len as i32, h as i32, hd as i32);
            let mut bld = f.builder();
            bld.arg(&qv);
            bld.arg(&mask);
            bld.arg(&y);
            bld.arg(&li);
            bld.arg(&hi);
            bld.arg(&hdi);
            bld.arg(&has_mask);
            // SAFETY: qkv holds B·L·3D elements, y B·L·D, mask L·L (or one, unread).
            unsafe { bld.launch(launch_cfg(grid)) }.w()?;
        }
        Ok(CudaStorage::wrap_cuda_slice(y, dev))
    })
}

/// Attention backward: the gradient of `qkv` given the output `y` and its gradient `dy`.
pub(super) fn attention_backward(
    (qkv, lq): (&CudaStorage, &Layout),
    (y, ly): (&CudaStorage, &Layout),
    (dy, ldy): (&CudaStorage, &Layout),
    heads: usize,
    mask: Option<&[f32]>,
) -> Result<CudaStorage> {
    const OP: &str = "tic-fused-attention backward (CUDA)";
    same_dtype(OP, qkv.dtype(), &[y, dy])?;
    let dev = qkv.device().clone();
    let (b, len, d3) = lq.shape().dims3()?;
    let (h, hd) = plan::attention_dims(len, d3, heads)?;
    let out_len = b * len * d3 / 3;
    if ly.shape().elem_count() != out_len || ldy.shape().elem_count() != out_len {
        candle_core::bail!("{OP}: output {:?}, gradient {:?}", ly.shape(), ldy.shape());
    }
    if mask.is_some_and(|m| m.len() != len * len) {
        candle_core::bail!("{OP}: mask for length {len} expected");
    }
    let (mask, has_mask) = mask_buffer(&dev, mask)?;
    with_elem!(qkv.dtype(), OP, T => {
        let (qv, yv, gv) = (view::<T>(qkv, lq, OP)?, view::<T>(y, ly, OP)?, view::<T>(dy, ldy, OP)?);
        // Written in full: block (h, b) writes dq, dk and dv of head h in batch row b (and
        // zeroes its part of the workspace first).
        let dqkv = alloc::<T>(&dev, b * len * d3)?;
        let acc = alloc::<f32>(&dev, b * h * 2 * len * hd)?;
        let grid = plan::attn_bwd(b, h);
        if !plan::is_empty(grid) && len > 0 {
            let f = kernel!(dev, "tic_attn_bwd", T);
            let (li, hi, hdi) = (len as i32, h as i32, hd as i32);
            let mut bld = f.builder();
            bld.arg(&qv);
            bld.arg(&yv);
            bld.arg(&gv);
            bld.arg(&mask);
            bld.arg(&dqkv);
            bld.arg(&acc);
            bld.arg(&li);
            bld.arg(&hi);
            bld.arg(&hdi);
            bld.arg(&has_mask);
            // SAFETY: qkv and dqkv hold B·L·3D elements, y and dy B·L·D, acc B·H·2·L·hd,
            // mask L·L (or one, unread).
            unsafe { bld.launch(launch_cfg(grid)) }.w()?;
        }
        Ok(CudaStorage::wrap_cuda_slice(dqkv, dev))
    })
}

/// Cross-entropy forward: the scalar mean loss of logits `[m, n]` (row i's target column
/// `offset + i`), in the logits' dtype.
pub(super) fn cross_entropy_forward(
    (x, l): (&CudaStorage, &Layout),
    offset: usize,
) -> Result<CudaStorage> {
    const OP: &str = "tic-fused-cross-entropy (CUDA)";
    let dev = x.device().clone();
    let (m, n) = l.shape().dims2()?;
    with_elem!(x.dtype(), OP, T => {
        let xv = view::<T>(x, l, OP)?;
        // Written in full: one block per row; the mean by the second kernel's one block.
        let loss = alloc::<f32>(&dev, m)?;
        let out = alloc::<T>(&dev, 1)?;
        let (ni, oi, mi) = (n as i32, offset as i32, m as i32);
        let grid = plan::ce_rows(m);
        if !plan::is_empty(grid) {
            let f = kernel!(dev, "tic_ce_fwd_rows", T);
            let mut bld = f.builder();
            bld.arg(&xv);
            bld.arg(&loss);
            bld.arg(&ni);
            bld.arg(&oi);
            // SAFETY: x holds m × n elements, loss m; offset + m ≤ n (checked by the op).
            unsafe { bld.launch(launch_cfg(grid)) }.w()?;
        }
        let f = kernel!(dev, "tic_ce_fwd_mean", T);
        let mut bld = f.builder();
        bld.arg(&loss);
        bld.arg(&out);
        bld.arg(&mi);
        // SAFETY: loss holds m floats (none read when m = 0), out one element.
        unsafe { bld.launch(launch_cfg((1, 1, 1))) }.w()?;
        Ok(CudaStorage::wrap_cuda_slice(out, dev))
    })
}

/// Cross-entropy backward: the gradient of the logits for `g` = the loss's gradient / m.
pub(super) fn cross_entropy_backward(
    (x, l): (&CudaStorage, &Layout),
    offset: usize,
    g: f32,
) -> Result<CudaStorage> {
    const OP: &str = "tic-fused-cross-entropy backward (CUDA)";
    let dev = x.device().clone();
    let (m, n) = l.shape().dims2()?;
    with_elem!(x.dtype(), OP, T => {
        let xv = view::<T>(x, l, OP)?;
        // Written in full: one block per row.
        let dx = alloc::<T>(&dev, m * n)?;
        let grid = plan::ce_rows(m);
        if !plan::is_empty(grid) {
            let f = kernel!(dev, "tic_ce_bwd", T);
            let (ni, oi) = (n as i32, offset as i32);
            let mut bld = f.builder();
            bld.arg(&xv);
            bld.arg(&dx);
            bld.arg(&ni);
            bld.arg(&oi);
            bld.arg(&g);
            // SAFETY: x and dx hold m × n elements; offset + m ≤ n (checked by the op).
            unsafe { bld.launch(launch_cfg(grid)) }.w()?;
        }
        Ok(CudaStorage::wrap_cuda_slice(dx, dev))
    })
}
