//! The NCCL backend: collectives on CUDA tensors' device memory (cudarc's NCCL bindings), on
//! the Candle device's own stream, bootstrapped over MPI.
//!
//! Rank 0 creates NCCL's 128-byte unique id, MPI broadcasts it, and every rank joins the NCCL
//! communicator with `ncclCommInitRank` (the nccl-tests pattern). Tensor collectives on CUDA
//! tensors run in NCCL on the stream Candle launches its kernels on, so they are ordered after
//! the kernels that produced their input and before those that consume their output, with no
//! host synchronisation. CPU tensors and every host-buffer method go through the wrapped
//! [`MpiComm`].

use std::ffi::c_char;

use anyhow::{anyhow, bail, Context, Result};
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView, DeviceRepr};
use candle_core::cuda_backend::CudaDType;
use candle_core::op::BackpropOp;
use candle_core::{CudaDevice, CudaStorage, DType, Device, Shape, Storage, Tensor};
use cudarc::nccl::result::{NcclError, NcclStatus};
use cudarc::nccl::{Comm as RawNccl, Id, NcclType, ReduceOp};

use crate::{Comm, MpiComm};

/// Bytes in NCCL's unique id (`NCCL_UNIQUE_ID_BYTES`).
const ID_BYTES: usize = 128;

/// NCCL on CUDA tensors, MPI for everything else.
///
/// Built by [`NcclComm::new`] on every rank, after the rank's CUDA device (normally
/// `cuda:local_rank`) is open. The tensor collectives ([`Comm::all_reduce_sum`],
/// [`Comm::all_gather`], [`Comm::reduce_scatter_sum`]) run in NCCL when the tensor lives on that
/// device: f32 and bf16 natively (a bf16 sum is NCCL's bf16 reduction, as PyTorch DDP does for bf16
/// gradients), other dtypes through f32 on the device. They run through NCCL at W = 1 too (a
/// device copy), so one GPU exercises this path. The result is a new tensor (no gradient
/// tracking) on the same device, with the input's dtype; it is ready in stream order.
///
/// Like the other backends, calls are collective and come from one thread; the communicator is
/// not `Send`.
pub struct NcclComm {
    // Field order is drop order: the NCCL communicator (`ncclCommAbort`) goes before MPI is
    // finalised with `host`.
    nccl: RawNccl,
    device: CudaDevice,
    host: MpiComm,
}

/// Turns cudarc's NCCL error (which has no `Display`) into an error naming the call.
fn nccl_err(what: &'static str) -> impl FnOnce(NcclError) -> anyhow::Error {
    move |e| anyhow!("NCCL {what} failed: {:?}", e.0)
}

impl NcclComm {
    /// Joins the NCCL communicator of all MPI ranks on `device` (a CUDA device; its Candle stream
    /// becomes NCCL's stream). Collective over MPI and NCCL: every rank calls it. `host` is taken
    /// over, so with W > 1 a failure on any rank ends the whole job at once ([`crate::or_abort`]:
    /// `MPI_Abort`) rather than leaving the others waiting inside `ncclCommInitRank`; with W = 1
    /// the error is returned.
    pub fn new(host: MpiComm, device: &Device) -> Result<NcclComm> {
        let (nccl, device) =
            crate::or_abort(&host, "NCCL initialisation", || Self::join(&host, device))?;
        Ok(NcclComm { nccl, device, host })
    }

    /// Makes (rank 0) and broadcasts (MPI) the unique id, then `ncclCommInitRank` on `device`'s
    /// stream.
    fn join(host: &MpiComm, device: &Device) -> Result<(RawNccl, CudaDevice)> {
        let Device::Cuda(cuda) = device else {
            bail!("NcclComm needs a CUDA device, got {device:?}");
        };
        let (rank, world) = (host.rank(), host.size());
        let stream = cuda.cuda_stream();
        // NCCL picks the device from the calling thread's current context.
        stream
            .context()
            .bind_to_thread()
            .map_err(|e| anyhow!("binding the CUDA context of {device:?}: {e:?}"))?;

        // Rank 0 makes the id; on failure it broadcasts nothing, so every rank fails together
        // instead of the others waiting for an id that never comes.
        let made = if rank == 0 {
            Some(Id::new().map_err(nccl_err("ncclGetUniqueId")))
        } else {
            None
        };
        let mine = match &made {
            Some(Ok(id)) => id.internal().iter().map(|&c| c as u8).collect(),
            _ => Vec::new(),
        };
        let bytes = host.broadcast_bytes(0, mine)?;
        if let Some(Err(e)) = made {
            return Err(e);
        }
        if bytes.len() != ID_BYTES {
            bail!(
                "NCCL unique id from rank 0 has {} bytes, expected {ID_BYTES} (rank 0 could not create one)",
                bytes.len()
            );
        }
        let mut internal = [0 as c_char; ID_BYTES];
        for (d, &b) in internal.iter_mut().zip(&bytes) {
            *d = b as c_char;
        }
        let nccl = RawNccl::from_rank(stream, rank, world, Id::uninit(internal))
            .map_err(nccl_err("ncclCommInitRank"))
            .with_context(|| format!("rank {rank} of {world} on {device:?}"))?;
        if let Ok(v) = cudarc::nccl::result::get_nccl_version() {
            tracing::debug!(rank, world, nccl_version = v, "NCCL communicator ready");
        }
        Ok((nccl, cuda.clone()))
    }

    /// The MPI communicator underneath (host buffers, CPU tensors).
    pub fn host(&self) -> &MpiComm {
        &self.host
    }

    /// The CUDA device whose stream NCCL runs on.
    pub fn device(&self) -> &CudaDevice {
        &self.device
    }

    /// The NCCL version of the loaded library (e.g. 22809 for 2.28.9).
    pub fn nccl_version(&self) -> Result<i32> {
        cudarc::nccl::result::get_nccl_version().map_err(nccl_err("ncclGetVersion"))
    }

    /// Whether `t` is on this communicator's CUDA device (NCCL path), on the CPU (MPI path), or
    /// elsewhere (an error).
    fn on_device(&self, t: &Tensor) -> Result<bool> {
        match t.device() {
            Device::Cpu => Ok(false),
            d @ Device::Cuda(_) if d.same_device(&Device::Cuda(self.device.clone())) => Ok(true),
            other => bail!(
                "NCCL collective on a tensor on {other:?}, but the communicator is on {:?}",
                self.device
            ),
        }
    }

    /// Runs `op` on the device: `t` in f32 or bf16 (other dtypes through f32), a fresh output of
    /// `out_len` elements, wrapped as a tensor of shape `out_shape` and `t`'s dtype.
    fn device_op(
        &self,
        t: &Tensor,
        out_len: usize,
        out_shape: Shape,
        op: impl Fn(&Self, &Tensor, usize) -> Result<Storage>,
    ) -> Result<Tensor> {
        let dtype = t.dtype();
        if out_len == 0 || t.elem_count() == 0 {
            return Ok(Tensor::zeros(out_shape, dtype, t.device())?);
        }
        let wire = match dtype {
            DType::F32 | DType::BF16 => t.contiguous()?,
            _ => t.to_dtype(DType::F32)?.contiguous()?,
        };
        let storage = op(self, &wire, out_len)?;
        let out = Tensor::from_storage(storage, out_shape, BackpropOp::none(), false);
        Ok(if out.dtype() == dtype {
            out
        } else {
            out.to_dtype(dtype)?
        })
    }

    /// Calls `f(input view, output slice)` for the contiguous CUDA tensor `t` of element type
    /// `T`, with an output of `out_len` elements on this device; returns the output storage.
    fn with_slices<T>(
        &self,
        t: &Tensor,
        out_len: usize,
        f: impl FnOnce(&RawNccl, &CudaView<'_, T>, &mut CudaSlice<T>) -> Result<NcclStatus, NcclError>,
        what: &'static str,
    ) -> Result<Storage>
    where
        T: CudaDType + DeviceRepr + NcclType,
    {
        let (storage, layout) = t.storage_and_layout();
        let Storage::Cuda(cs) = &*storage else {
            bail!("NCCL {what}: tensor is not on a CUDA device");
        };
        let (lo, hi) = layout
            .contiguous_offsets()
            .with_context(|| format!("NCCL {what}: input is not contiguous"))?;
        let input = cs.as_cuda_slice::<T>()?.slice(lo..hi);
        // SAFETY: the buffer is fully written by the NCCL collective below (every one of the
        // `out_len` elements is an output element of it), which is enqueued on the same stream
        // as any later use of the tensor, so nothing reads it uninitialised.
        let mut out = unsafe { self.device.alloc::<T>(out_len)? };
        f(&self.nccl, &input, &mut out).map_err(nccl_err(what))?;
        drop(storage);
        Ok(Storage::Cuda(CudaStorage::wrap_cuda_slice(
            out,
            self.device.clone(),
        )))
    }
}

/// Dispatches a collective over the wire dtypes (f32, bf16).
macro_rules! by_wire_dtype {
    ($self:ident, $t:ident, $n:ident, $what:literal, |$c:ident, $i:ident, $o:ident| $call:expr) => {
        match $t.dtype() {
            DType::F32 => $self.with_slices::<f32>($t, $n, |$c, $i, $o| $call, $what),
            DType::BF16 => $self.with_slices::<half::bf16>($t, $n, |$c, $i, $o| $call, $what),
            d => bail!("NCCL {}: unexpected wire dtype {d:?}", $what),
        }
    };
}

impl Comm for NcclComm {
    fn rank(&self) -> usize {
        self.host.rank()
    }
    fn size(&self) -> usize {
        self.host.size()
    }
    fn local_rank(&self) -> usize {
        self.host.local_rank()
    }
    fn local_size(&self) -> usize {
        self.host.local_size()
    }
    fn backend(&self) -> &'static str {
        "nccl"
    }
    /// Never: even alone, callers run the collectives, so that a one-GPU run exercises NCCL.
    fn is_identity(&self) -> bool {
        false
    }

    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()> {
        self.host.all_reduce_sum_f32(buf)
    }
    fn all_gather_f32(&self, local: &[f32]) -> Result<Vec<f32>> {
        self.host.all_gather_f32(local)
    }
    fn reduce_scatter_sum_f32(&self, full: &[f32]) -> Result<Vec<f32>> {
        self.host.reduce_scatter_sum_f32(full)
    }
    fn all_gather_u64(&self, local: &[u64]) -> Result<Vec<u64>> {
        self.host.all_gather_u64(local)
    }
    fn broadcast_bytes(&self, root: usize, bytes: Vec<u8>) -> Result<Vec<u8>> {
        self.host.broadcast_bytes(root, bytes)
    }
    fn all_gather_bytes(&self, bytes: Vec<u8>) -> Result<Vec<Vec<u8>>> {
        self.host.all_gather_bytes(bytes)
    }
    fn broadcast_f32(&self, root: usize, buf: &mut [f32]) -> Result<()> {
        self.host.broadcast_f32(root, buf)
    }
    fn barrier(&self) -> Result<()> {
        self.host.barrier()
    }
    fn abort(&self, code: i32) -> ! {
        self.host.abort(code)
    }

    fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor> {
        if !self.on_device(t)? {
            return self.host.all_reduce_sum(t);
        }
        let n = t.elem_count();
        self.device_op(t, n, t.shape().clone(), |s, x, n| {
            by_wire_dtype!(s, x, n, "all-reduce", |c, i, o| c.all_reduce(
                i,
                o,
                &ReduceOp::Sum
            ))
        })
    }

    fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        if !self.on_device(t)? {
            return self.host.all_gather(t);
        }
        let mut dims = t.dims().to_vec();
        if dims.is_empty() {
            bail!("all-gather of a scalar: the tensor needs a dimension 0 to concatenate along");
        }
        dims[0] *= self.size();
        let n = t.elem_count() * self.size();
        self.device_op(t, n, Shape::from(dims), |s, x, n| {
            by_wire_dtype!(s, x, n, "all-gather", |c, i, o| c.all_gather(i, o))
        })
    }

    fn reduce_scatter_sum(&self, t: &Tensor) -> Result<Tensor> {
        if !self.on_device(t)? {
            return self.host.reduce_scatter_sum(t);
        }
        let w = self.size();
        let mut dims = t.dims().to_vec();
        if dims.first().is_none_or(|&d| d % w != 0) {
            bail!(
                "reduce-scatter of shape {dims:?} over {w} ranks: dimension 0 must divide evenly"
            );
        }
        dims[0] /= w;
        let n = t.elem_count() / w;
        self.device_op(t, n, Shape::from(dims), |s, x, n| {
            by_wire_dtype!(s, x, n, "reduce-scatter", |c, i, o| c.reduce_scatter(
                i,
                o,
                &ReduceOp::Sum
            ))
        })
    }
}
