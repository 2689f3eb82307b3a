//! The MPI backend: collectives on host buffers (rsmpi).

use anyhow::{bail, Result};
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Threading;

use crate::{chunks, Comm};

/// MPI's world communicator. MPI is initialised with `MPI_THREAD_FUNNELED`: other threads
/// (data loading, compute pools) exist, but only the thread that called [`MpiComm::init`]
/// makes MPI calls. Dropping it finalises MPI.
pub struct MpiComm {
    world: SimpleCommunicator,
    local_rank: usize,
    local_size: usize,
    // Dropped last: MPI_Finalize.
    _universe: Universe,
}

impl MpiComm {
    /// Initialises MPI (once per process) and finds the local rank with a shared-memory split
    /// of the world (`MPI_COMM_TYPE_SHARED`, as nccl-tests' host-hash grouping).
    pub fn init() -> Result<Self> {
        let Some((universe, level)) = mpi::initialize_with_threading(Threading::Funneled) else {
            bail!("MPI was already initialised in this process");
        };
        if level < Threading::Funneled {
            tracing::warn!(
                "MPI gives thread level {level:?} (< funneled); calls stay on the main thread"
            );
        }
        let world = universe.world();
        let node = world.split_shared(world.rank());
        let (local_rank, local_size) = (node.rank() as usize, node.size() as usize);
        Ok(Self {
            world,
            local_rank,
            local_size,
            _universe: universe,
        })
    }

    /// The world communicator (for backends bootstrapped over MPI).
    pub fn world(&self) -> &SimpleCommunicator {
        &self.world
    }
}

impl Comm for MpiComm {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }
    fn size(&self) -> usize {
        self.world.size() as usize
    }
    fn local_rank(&self) -> usize {
        self.local_rank
    }
    fn local_size(&self) -> usize {
        self.local_size
    }
    fn backend(&self) -> &'static str {
        "mpi"
    }

    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()> {
        for r in chunks(buf.len()) {
            let send = buf[r.clone()].to_vec();
            self.world
                .all_reduce_into(&send[..], &mut buf[r], SystemOperation::sum());
        }
        Ok(())
    }

    fn all_gather_f32(&self, local: &[f32]) -> Result<Vec<f32>> {
        if local.len() * self.size() > i32::MAX as usize {
            bail!(
                "all-gather of {} floats per rank is too large for one MPI call",
                local.len()
            );
        }
        let mut out = vec![0f32; local.len() * self.size()];
        self.world.all_gather_into(local, &mut out[..]);
        Ok(out)
    }

    fn reduce_scatter_sum_f32(&self, full: &[f32]) -> Result<Vec<f32>> {
        let w = self.size();
        if full.len() % w != 0 || full.len() > i32::MAX as usize {
            bail!("reduce-scatter of {} floats over {w} ranks", full.len());
        }
        let mut out = vec![0f32; full.len() / w];
        self.world
            .reduce_scatter_block_into(full, &mut out[..], SystemOperation::sum());
        Ok(out)
    }

    fn all_gather_u64(&self, local: &[u64]) -> Result<Vec<u64>> {
        let mut out = vec![0u64; local.len() * self.size()];
        self.world.all_gather_into(local, &mut out[..]);
        Ok(out)
    }

    fn broadcast_bytes(&self, root: usize, bytes: Vec<u8>) -> Result<Vec<u8>> {
        let root_proc = self.world.process_at_rank(root as i32);
        let mut len = bytes.len() as u64;
        root_proc.broadcast_into(&mut len);
        let mut buf = if self.rank() == root {
            bytes
        } else {
            vec![0u8; len as usize]
        };
        root_proc.broadcast_into(&mut buf[..]);
        Ok(buf)
    }

    fn barrier(&self) -> Result<()> {
        self.world.barrier();
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}
