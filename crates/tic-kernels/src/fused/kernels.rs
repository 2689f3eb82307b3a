//! Launch plans of the CUDA kernels in `kernels/fused.cu`, shared by the CUDA launches
//! ([`super::cuda`]) and the host emulation ([`super::emu`], tests only), so that the tests
//! exercise the grids and workspaces the GPU gets.

use candle_core::Result;

/// Threads per block on the GPU (a power of two, at most `TIC_MAX_THREADS` of fused.cu).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) const THREADS: u32 = 256;
/// The `TIC_MAX_THREADS` of fused.cu: the size of its shared reduction buffers.
#[cfg_attr(not(feature = "kernel-emu"), allow(dead_code))]
pub(crate) const MAX_THREADS: u32 = 256;
/// The longest sequence the attention kernels take (`TIC_MAX_LEN`).
pub(crate) const MAX_LEN: usize = 1024;
/// The widest head the attention kernels take (`TIC_MAX_HEAD`).
pub(crate) const MAX_HEAD: usize = 256;
/// Rows per block of the LayerNorm backward kernel (one partial `dw`/`db` per block).
pub(crate) const LN_ROWS_PER_BLOCK: usize = 32;
/// Rows per block of the bias + GELU backward kernel (one partial `db` per block).
pub(crate) const BIAS_ROWS_PER_BLOCK: usize = 64;

/// A grid `(x, y, z)` in blocks.
pub(crate) type Grid = (u32, u32, u32);

/// `ceil(n / per)` blocks, at least one (the kernels handle an empty range).
pub(crate) fn blocks(n: usize, per: usize) -> u32 {
    n.div_ceil(per).max(1) as u32
}

/// Checks a block size: a power of two, at most [`MAX_THREADS`] (the emulation's callers
/// choose theirs; the GPU's is [`THREADS`]).
#[cfg_attr(not(feature = "kernel-emu"), allow(dead_code))]
pub(crate) fn check_threads(threads: u32) -> Result<()> {
    if !threads.is_power_of_two() || threads > MAX_THREADS {
        candle_core::bail!("fused kernels: {threads} threads per block (a power of two ≤ 256)");
    }
    Ok(())
}

/// `(length, heads, head size)` of packed `qkv` `[B, L, 3·D]`, checked against the kernels'
/// limits.
pub(crate) fn attention_dims(len: usize, d3: usize, heads: usize) -> Result<(usize, usize)> {
    if heads == 0 || d3 % 3 != 0 || (d3 / 3) % heads != 0 {
        candle_core::bail!("fused attention: width {d3} is not 3 × heads {heads} × head size");
    }
    let hd = d3 / 3 / heads;
    if len > MAX_LEN || hd > MAX_HEAD {
        candle_core::bail!(
            "fused attention kernels: length {len} (≤ {MAX_LEN}), head size {hd} (≤ {MAX_HEAD})"
        );
    }
    Ok((heads, hd))
}

/// Whether a grid has no blocks (a launch to skip: CUDA rejects empty grids).
pub(crate) fn is_empty((x, y, z): Grid) -> bool {
    x == 0 || y == 0 || z == 0
}

/// LayerNorm forward: one block per row.
pub(crate) fn ln_fwd(rows: usize) -> Grid {
    (rows as u32, 1, 1)
}

/// LayerNorm backward: [`LN_ROWS_PER_BLOCK`] rows per block; the partial sums are
/// `blocks × 2n` floats.
pub(crate) fn ln_bwd(rows: usize) -> Grid {
    (blocks(rows, LN_ROWS_PER_BLOCK), 1, 1)
}

/// The second reduction: one thread per column of `width`.
pub(crate) fn col_sum_finish(width: usize, threads: u32) -> Grid {
    (blocks(width, threads as usize), 1, 1)
}

/// Bias + GELU forward: one thread per element.
pub(crate) fn bias_gelu_fwd(total: usize, threads: u32) -> Grid {
    (blocks(total, threads as usize), 1, 1)
}

/// Bias + GELU backward: one thread per column, [`BIAS_ROWS_PER_BLOCK`] rows per block row;
/// the partial sums are `grid.1 × n` floats.
pub(crate) fn bias_gelu_bwd(rows: usize, n: usize, threads: u32) -> Grid {
    (
        blocks(n, threads as usize),
        blocks(rows, BIAS_ROWS_PER_BLOCK),
        1,
    )
}

/// Attention forward: one block per (query row, head, batch).
pub(crate) fn attn_fwd(b: usize, len: usize, heads: usize) -> Grid {
    (len as u32, heads as u32, b as u32)
}

/// Attention backward: one block per (head, batch); the workspace is `B·H·2·L·hd` floats.
pub(crate) fn attn_bwd(b: usize, heads: usize) -> Grid {
    (heads as u32, b as u32, 1)
}

/// Cross-entropy forward (per-row losses) and backward: one block per row.
pub(crate) fn ce_rows(m: usize) -> Grid {
    (m as u32, 1, 1)
}
