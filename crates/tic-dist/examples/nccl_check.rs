//! Checks `NcclComm` on CUDA tensors against the MPI host path, and times a bf16 all-reduce.
//!
//! `cargo build --release -p tic-dist --features nccl --example nccl_check`, then on GPUs:
//! `mpirun -np W target/release/examples/nccl_check` (one GPU per rank, `cuda:local_rank`), or
//! the binary alone on one GPU (an MPI singleton, W = 1: NCCL still runs). Exit status 1 when a
//! check fails.

use std::time::Instant;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use tic_dist::{Comm, NcclComm};

/// Largest |a - b| over two tensors of one shape (compared in f32 on the CPU).
fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    anyhow::ensure!(
        a.dims() == b.dims(),
        "shapes {:?} vs {:?}",
        a.dims(),
        b.dims()
    );
    let d = (a.to_device(&Device::Cpu)?.to_dtype(DType::F32)?
        - b.to_device(&Device::Cpu)?.to_dtype(DType::F32)?)?;
    Ok(d.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

/// Checks passed and failed on this rank.
#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
}

impl Tally {
    /// Counts one check.
    fn count(&mut self, ok: bool) {
        if ok {
            self.passed += 1
        } else {
            self.failed += 1
        }
    }
}

fn main() -> Result<()> {
    let host = tic_dist::init_host()?;
    let (rank, world) = (host.rank(), host.size());
    let dev = Device::new_cuda(host.local_rank())?;
    let comm = NcclComm::new(host, &dev)?;
    if rank == 0 {
        println!(
            "nccl_check: W={world}, NCCL {}, rank 0 on {:?}",
            comm.nccl_version()?,
            comm.device()
        );
    }
    let mut tally = Tally::default();
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        // Small integers: every sum is exact in bf16 for W <= 8.
        let n = 2 * world;
        let vals: Vec<f32> = (0..n * 2 * n).map(|i| ((i + rank) % 7) as f32).collect();
        let base = Tensor::from_vec(vals, (n, 2 * n), &Device::Cpu)?.to_dtype(dtype)?;
        for contiguous in [true, false] {
            let x = if contiguous { base.clone() } else { base.t()? };
            check_collectives(&comm, &dev, &x, contiguous, &mut tally)?;
        }
    }
    // CPU tensors take the MPI path.
    let c = Tensor::ones((2 * world, 2), DType::F32, &Device::Cpu)?;
    let s = comm.all_reduce_sum(&c)?;
    tally.count(s.device().is_cpu() && max_diff(&s, &(c * world as f64)?)? == 0.0);
    time_all_reduce(&comm, &dev)?;
    let failed_anywhere = comm
        .host()
        .all_gather_u64(&[tally.failed as u64])?
        .iter()
        .sum::<u64>();
    if rank == 0 {
        println!(
            "nccl_check: {} passed, {} failed (rank 0)",
            tally.passed, tally.failed
        );
        println!("nccl_check: failures on all ranks: {failed_anywhere}");
    }
    drop(comm);
    std::process::exit(if failed_anywhere == 0 { 0 } else { 1 });
}

/// NCCL's all-reduce, all-gather and reduce-scatter of `x` (on `dev`) against the MPI host
/// path on the CPU: same dtype, on the GPU, equal values. Rank 0 prints one line per check.
fn check_collectives(
    comm: &NcclComm,
    dev: &Device,
    x: &Tensor,
    contiguous: bool,
    tally: &mut Tally,
) -> Result<()> {
    let dtype = x.dtype();
    let xd = x.to_device(dev)?;
    let cases: [(&str, Tensor, Tensor); 3] = [
        (
            "all_reduce_sum",
            comm.all_reduce_sum(&xd)?,
            comm.host().all_reduce_sum(x)?,
        ),
        (
            "all_gather",
            comm.all_gather(&xd)?,
            comm.host().all_gather(x)?,
        ),
        (
            "reduce_scatter_sum",
            comm.reduce_scatter_sum(&xd)?,
            comm.host().reduce_scatter_sum(x)?,
        ),
    ];
    for (name, got, want) in cases {
        let ok =
            got.dtype() == dtype && got.device().same_device(dev) && max_diff(&got, &want)? == 0.0;
        if comm.rank() == 0 {
            println!(
                "  {:<20} {:?} {:<14} {:?} -> {:?}: {}",
                name,
                dtype,
                if contiguous {
                    "contiguous"
                } else {
                    "transposed"
                },
                x.dims(),
                got.dims(),
                if ok { "ok" } else { "MISMATCH" }
            );
        }
        tally.count(ok);
    }
    Ok(())
}

/// Bandwidth: all-reduce of 64 Mi bf16 elements (128 MiB, ~ ViT-B/16's gradients), timed over
/// 20 calls after a warm-up; rank 0 prints the algorithm and bus bandwidths.
fn time_all_reduce(comm: &NcclComm, dev: &Device) -> Result<()> {
    let world = comm.size();
    let g = Tensor::ones(64 << 20, DType::BF16, dev)?;
    comm.all_reduce_sum(&g)?;
    dev.synchronize()?;
    let iters = 20;
    let t0 = Instant::now();
    for _ in 0..iters {
        let _ = comm.all_reduce_sum(&g)?;
    }
    dev.synchronize()?;
    let dt = t0.elapsed().as_secs_f64() / iters as f64;
    if comm.rank() == 0 {
        let bytes = (g.elem_count() * 2) as f64;
        println!(
            "  all_reduce bf16 128 MiB: {:.3} ms, algbw {:.1} GB/s, busbw {:.1} GB/s",
            dt * 1e3,
            bytes / dt / 1e9,
            bytes / dt / 1e9 * 2.0 * (world as f64 - 1.0) / world as f64
        );
    }
    Ok(())
}
