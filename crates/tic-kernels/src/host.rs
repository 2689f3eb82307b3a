//! Host-memory plumbing shared by the CPU kernels ([`crate::cpu_kernels`], [`crate::fused`]):
//! f32 views of Candle's CPU storages, and the raw pointers that parallel tasks share to write
//! disjoint parts of one output buffer (which safe Rust cannot split along strided blocks).

use candle_core::{CpuStorage, Layout, Result};

/// The f32 values of a contiguous CPU storage (`op` names the caller in errors).
pub(crate) fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(d), Some((a, b))) => Ok(&d[a..b]),
        (CpuStorage::F32(_), None) => candle_core::bail!("{op}: expected a contiguous input"),
        _ => candle_core::bail!("{op}: expected f32"),
    }
}

/// [`contiguous_f32`] of a three-operand op's storages, in order.
pub(crate) fn contiguous_f32_3<'a>(
    op: &str,
    (s1, l1): (&'a CpuStorage, &Layout),
    (s2, l2): (&'a CpuStorage, &Layout),
    (s3, l3): (&'a CpuStorage, &Layout),
) -> Result<(&'a [f32], &'a [f32], &'a [f32])> {
    Ok((
        contiguous_f32(s1, l1, op)?,
        contiguous_f32(s2, l2, op)?,
        contiguous_f32(s3, l3, op)?,
    ))
}

/// A raw pointer to an output that parallel tasks write disjoint parts of.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr(pub(crate) *mut f32);
// SAFETY: every user writes disjoint parts of the buffer from its tasks (documented there).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// A read-only raw pointer shared by parallel tasks.
#[derive(Clone, Copy)]
pub(crate) struct ConstPtr(pub(crate) *const f32);
// SAFETY: only read, while the caller keeps the buffer alive.
unsafe impl Send for ConstPtr {}
unsafe impl Sync for ConstPtr {}
