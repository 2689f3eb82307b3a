//! Data-parallel collectives for tic-rs.
//!
//! One small interface, [`Comm`] (all-reduce sum, all-gather, reduce-scatter sum, broadcast,
//! barrier), with three backends:
//! - [`Solo`]: one process (the default build): every collective is the identity;
//! - `MpiComm` (feature `mpi`): MPI on host buffers, for CPU tensors; launched with
//!   `mpirun -np W …` or `srun --mpi=pmi2 …` (MPICH; `--mpi=pmix` for Open MPI with PMIx);
//! - `NcclComm` (feature `nccl`): NCCL on CUDA tensors, bootstrapped over MPI (the unique id is
//!   broadcast from rank 0, as nccl-tests does).
//!
//! [`init_host`] picks the host backend, reads rank / world size from MPI and the local rank from an MPI
//! shared-memory split, and cross-checks them against the launcher's environment
//! ([`check_launch`]): a multi-process launch that MPI does not see (e.g. `srun` with a PMI
//! flavour this MPI does not speak, or a build without the `mpi` feature) is an error, not W
//! independent runs writing one folder.
//!
//! Collectives concatenate / split along dimension 0 in rank order, the layout of
//! `torch.distributed.all_gather` + `torch.cat` that OpenCLIP's `gather_features` uses.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};

#[cfg(feature = "mpi")]
mod mpi_comm;
#[cfg(feature = "mpi")]
pub use mpi_comm::MpiComm;
#[cfg(feature = "nccl")]
mod nccl_comm;
#[cfg(feature = "nccl")]
pub use nccl_comm::NcclComm;

/// Largest element count of one MPI call (MPI counts are C ints); larger buffers are split.
pub const MAX_CALL_ELEMS: usize = 1 << 30;

/// A communicator over the W processes of a job. Calls are collective: every rank makes the
/// same calls in the same order, from one thread.
///
/// The host-buffer methods are the primitives; the tensor methods default to a round trip
/// through host memory (CPU tensors under MPI) and are overridden by backends that work on
/// device memory (NCCL on CUDA tensors).
pub trait Comm {
    /// This process's rank, `0..size`.
    fn rank(&self) -> usize;
    /// Number of processes (the world size W).
    fn size(&self) -> usize;
    /// Rank among the processes of this node (selects `cuda:local_rank`).
    fn local_rank(&self) -> usize;
    /// Number of processes on this node.
    fn local_size(&self) -> usize;
    /// The backend's name, for logs (`solo`, `mpi`, `nccl`).
    fn backend(&self) -> &'static str;
    /// True when every collective is the identity, so callers may skip them (one process).
    /// NCCL answers false even alone, so that a one-GPU run exercises the library.
    fn is_identity(&self) -> bool {
        self.size() == 1
    }

    /// In place: `buf ← Σ_ranks buf`.
    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()>;
    /// Rank-ordered concatenation of every rank's `local` (all of equal length).
    fn all_gather_f32(&self, local: &[f32]) -> Result<Vec<f32>>;
    /// `full` (length W·k, on every rank) summed over ranks; rank r keeps block r (length k).
    fn reduce_scatter_sum_f32(&self, full: &[f32]) -> Result<Vec<f32>>;
    /// Rank-ordered concatenation of every rank's `local` integers (all of equal length).
    fn all_gather_u64(&self, local: &[u64]) -> Result<Vec<u64>>;
    /// Rank `root`'s bytes on every rank (other ranks' `bytes` are ignored; any length).
    fn broadcast_bytes(&self, root: usize, bytes: Vec<u8>) -> Result<Vec<u8>>;
    /// Waits until every rank has reached it.
    fn barrier(&self) -> Result<()>;
    /// Ends the whole job at once (every rank), with `code` as exit status. Used when one rank
    /// fails, so the others do not wait forever in a collective.
    fn abort(&self, code: i32) -> !;

    /// Every rank's `bytes` (any length, differing between ranks), in rank order, on every
    /// rank. Two all-gathers: the lengths, then the bytes packed into `u64` words and padded
    /// to the longest, so it suits small messages (each rank receives W × the longest).
    fn all_gather_bytes(&self, bytes: Vec<u8>) -> Result<Vec<Vec<u8>>> {
        if self.size() == 1 {
            return Ok(vec![bytes]);
        }
        let lens = self.all_gather_u64(&[bytes.len() as u64])?;
        let words = lens.iter().max().map_or(0, |&m| m.div_ceil(8)) as usize;
        if words == 0 {
            return Ok(vec![Vec::new(); lens.len()]);
        }
        let mut local = vec![0u64; words];
        for (w, c) in local.iter_mut().zip(bytes.chunks(8)) {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            *w = u64::from_le_bytes(b);
        }
        let all = self.all_gather_u64(&local)?;
        if all.len() != words * lens.len() {
            bail!(
                "all-gather of {words} words from {} ranks received {} words",
                lens.len(),
                all.len()
            );
        }
        Ok(lens
            .iter()
            .zip(all.chunks_exact(words))
            .map(|(&n, ws)| {
                ws.iter()
                    .flat_map(|w| w.to_le_bytes())
                    .take(n as usize)
                    .collect()
            })
            .collect())
    }

    /// Rank `root`'s floats on every rank (all ranks pass buffers of the same length).
    fn broadcast_f32(&self, root: usize, buf: &mut [f32]) -> Result<()> {
        if self.size() == 1 {
            return Ok(());
        }
        let bytes: Vec<u8> = if self.rank() == root {
            buf.iter().flat_map(|x| x.to_le_bytes()).collect()
        } else {
            Vec::new()
        };
        let got = self.broadcast_bytes(root, bytes)?;
        if got.len() != buf.len() * 4 {
            bail!(
                "broadcast of {} floats from rank {root} received {} bytes",
                buf.len(),
                got.len()
            );
        }
        for (x, b) in buf.iter_mut().zip(got.chunks_exact(4)) {
            *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        Ok(())
    }

    /// `Σ_ranks t` (any shape, f32 on the wire; the result has `t`'s dtype and device).
    fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor> {
        if self.size() == 1 {
            return Ok(t.clone());
        }
        let (dtype, dev, shape) = (t.dtype(), t.device().clone(), t.shape().clone());
        let mut v = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        self.all_reduce_sum_f32(&mut v)?;
        Ok(Tensor::from_vec(v, shape, &dev)?.to_dtype(dtype)?)
    }

    /// All ranks' `t` (each `[n, …]`) concatenated along dimension 0 in rank order: `[W·n, …]`.
    fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        if self.size() == 1 {
            return Ok(t.clone());
        }
        let (dtype, dev) = (t.dtype(), t.device().clone());
        let mut dims = t.dims().to_vec();
        let v = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let all = self.all_gather_f32(&v)?;
        dims[0] *= self.size();
        Ok(Tensor::from_vec(all, dims, &dev)?.to_dtype(dtype)?)
    }

    /// `t` (`[W·n, …]` on every rank) summed over ranks; rank r gets rows `r·n..(r+1)·n`.
    /// The backward of [`Comm::all_gather`].
    fn reduce_scatter_sum(&self, t: &Tensor) -> Result<Tensor> {
        if self.size() == 1 {
            return Ok(t.clone());
        }
        let (dtype, dev) = (t.dtype(), t.device().clone());
        let mut dims = t.dims().to_vec();
        if dims.first().is_none_or(|&d| d % self.size() != 0) {
            bail!(
                "reduce-scatter of shape {:?} over {} ranks: dimension 0 must divide evenly",
                dims,
                self.size()
            );
        }
        let v = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let mine = self.reduce_scatter_sum_f32(&v)?;
        dims[0] /= self.size();
        Ok(Tensor::from_vec(mine, dims, &dev)?.to_dtype(dtype)?)
    }
}

/// The single-process communicator: W = 1, every collective is the identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct Solo;

impl Comm for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn local_rank(&self) -> usize {
        0
    }
    fn local_size(&self) -> usize {
        1
    }
    fn backend(&self) -> &'static str {
        "solo"
    }
    fn all_reduce_sum_f32(&self, _buf: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn all_gather_f32(&self, local: &[f32]) -> Result<Vec<f32>> {
        Ok(local.to_vec())
    }
    fn reduce_scatter_sum_f32(&self, full: &[f32]) -> Result<Vec<f32>> {
        Ok(full.to_vec())
    }
    fn all_gather_u64(&self, local: &[u64]) -> Result<Vec<u64>> {
        Ok(local.to_vec())
    }
    fn broadcast_bytes(&self, _root: usize, bytes: Vec<u8>) -> Result<Vec<u8>> {
        Ok(bytes)
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// The host-side communicator of this build: MPI with the `mpi` feature, [`Solo`] without.
#[cfg(feature = "mpi")]
pub type HostComm = MpiComm;
/// The host-side communicator of this build: MPI with the `mpi` feature, [`Solo`] without.
#[cfg(not(feature = "mpi"))]
pub type HostComm = Solo;

/// Starts the job's host communicator: MPI when the build has the `mpi` feature (a process
/// started without a launcher is an MPI singleton, W = 1), [`Solo`] otherwise; checked against
/// the launcher's environment ([`check_launch`]). On GPUs, wrap it in `NcclComm::new` (feature
/// `nccl`) once the device `cuda:local_rank` is open.
pub fn init_host() -> Result<HostComm> {
    let env = LaunchEnv::from_process();
    #[cfg(feature = "mpi")]
    {
        let env = LaunchEnv {
            mpi_library: mpi::environment::library_version().ok(),
            ..env
        };
        let mpi = MpiComm::init()?;
        check_launch(mpi.rank(), mpi.size(), mpi.local_rank(), &env)?;
        Ok(mpi)
    }
    #[cfg(not(feature = "mpi"))]
    {
        if let Some((var, world)) = env.launcher_world() {
            if world > 1 {
                bail!(
                    "{var}={world}: this process was launched as one of {world}, but this build has no \
                     MPI support; rebuild with `--features mpi` (e.g. `cargo build --release -p tic-train \
                     --features mpi`) or run a single process"
                );
            }
        }
        check_launch(0, 1, 0, &env)?;
        Ok(Solo)
    }
}

/// What the launcher (mpirun, srun, torchrun-style env) says about this process.
#[derive(Debug, Clone, Default)]
pub struct LaunchEnv {
    /// `(variable, value)` pairs of the rank / world / local-rank variables that are set.
    pub vars: Vec<(String, String)>,
    /// `SLURM_MPI_TYPE`: the PMI flavour `srun --mpi=…` (or Slurm's `MpiDefault`) gave the tasks.
    pub slurm_mpi_type: Option<String>,
    /// The MPI library's version string (`MPI_Get_library_version`), when MPI is linked.
    pub mpi_library: Option<String>,
}

/// Local-rank variables, in OpenCLIP's order (`world_info_from_env`).
const LOCAL_RANK_VARS: [&str; 4] = [
    "LOCAL_RANK",
    "MPI_LOCALRANKID",
    "SLURM_LOCALID",
    "OMPI_COMM_WORLD_LOCAL_RANK",
];
/// World-size variables set by launchers that start every process of the job. SLURM's
/// `SLURM_NTASKS` is left out: it is also set for a batch script's single process.
const WORLD_VARS: [&str; 4] = [
    "PMI_SIZE",
    "OMPI_COMM_WORLD_SIZE",
    "SLURM_STEP_NUM_TASKS",
    "WORLD_SIZE",
];
/// Rank variables.
const RANK_VARS: [&str; 4] = ["PMI_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID", "RANK"];

impl LaunchEnv {
    /// Reads the launcher variables of this process.
    pub fn from_process() -> Self {
        let vars = LOCAL_RANK_VARS
            .iter()
            .chain(&WORLD_VARS)
            .chain(&RANK_VARS)
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
            .collect();
        Self {
            vars,
            slurm_mpi_type: std::env::var("SLURM_MPI_TYPE").ok(),
            mpi_library: None,
        }
    }

    fn get(&self, names: &[&str]) -> Option<(String, usize)> {
        names.iter().find_map(|n| {
            self.vars
                .iter()
                .find(|(k, _)| k == n)
                .and_then(|(k, v)| v.trim().parse().ok().map(|x| (k.clone(), x)))
        })
    }

    /// The world size a launcher announced, with the variable that says it.
    pub fn launcher_world(&self) -> Option<(String, usize)> {
        self.get(&WORLD_VARS)
    }

    /// How to launch this build so that its processes form one MPI job: which `srun --mpi=…`
    /// flavour its MPI speaks (PMI-2 for MPICH and its derivatives, PMIx for Open MPI), and
    /// which one `srun` used this time (`SLURM_MPI_TYPE`).
    pub fn launch_advice(&self) -> String {
        let lib = self.mpi_library.as_deref().unwrap_or("");
        let first_line = lib
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let flavour = if lib.contains("Open MPI") {
            Some("pmix")
        } else if ["MPICH", "Intel(R) MPI", "MVAPICH"]
            .iter()
            .any(|m| lib.contains(m))
        {
            Some("pmi2")
        } else {
            None
        };
        let mut s = String::new();
        match &self.slurm_mpi_type {
            Some(used) => {
                s.push_str(&format!("srun ran these tasks with --mpi={used} (SLURM_MPI_TYPE); "))
            }
            // srun sets SLURM_MPI_TYPE for every PMI plugin but `none`.
            None if self.get(&["SLURM_STEP_NUM_TASKS"]).is_some() => s.push_str(
                "srun ran these tasks without PMI (no --mpi or --mpi=none: SLURM_MPI_TYPE is unset); ",
            ),
            None => {}
        }
        match flavour {
            Some(f) => s.push_str(&format!(
                "this build's MPI ({first_line}) needs `srun --mpi={f}`"
            )),
            None => s.push_str("under Slurm use `srun --mpi=pmi2` for MPICH"),
        }
        s.push_str(
            " (MPICH, Intel MPI and MVAPICH speak PMI-2: `--mpi=pmi2`; Open MPI built with PMIx: \
             `--mpi=pmix`; `srun --mpi=list` shows what this Slurm offers), or launch with mpirun",
        );
        s
    }
}

/// Cross-checks MPI's view of this process (rank, world size, local rank from the
/// shared-memory split) against the launcher's environment. A mismatch means the processes do
/// not form one job (W separate trainings would write one run folder) or devices would be
/// picked wrongly: an error naming both values.
pub fn check_launch(rank: usize, size: usize, local_rank: usize, env: &LaunchEnv) -> Result<()> {
    if let Some((var, world)) = env.launcher_world() {
        if world != size {
            bail!(
                "{var}={world} but MPI sees {size} process(es): the launcher started processes that do \
                 not form one MPI job; {}",
                env.launch_advice()
            );
        }
    }
    if size > 1 {
        if let Some((var, r)) = env.get(&RANK_VARS) {
            if r != rank {
                bail!("{var}={r} but MPI gives this process rank {rank}");
            }
        }
        if let Some((var, l)) = env.get(&LOCAL_RANK_VARS) {
            if l != local_rank {
                bail!(
                    "{var}={l} but MPI's shared-memory split gives local rank {local_rank} (rank {rank})"
                );
            }
        }
    }
    Ok(())
}

/// Splits `len` elements into chunks of at most [`MAX_CALL_ELEMS`] (MPI counts are C ints).
pub fn chunks(len: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..len)
        .step_by(MAX_CALL_ELEMS)
        .map(move |lo| lo..(lo + MAX_CALL_ELEMS).min(len))
}

/// Runs `f` and, on error, reports it naming this rank and ends the whole job (so the other
/// ranks do not hang in a collective). With one process the error is returned as usual.
pub fn or_abort<T>(comm: &dyn Comm, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    or_abort_with(comm, what, 1, f)
}

/// [`or_abort`] with `code` as the job's exit status when a rank fails (e.g. `tic-eval`'s 2,
/// its status for a fatal error, where 1 means "some tasks failed").
pub fn or_abort_with<T>(
    comm: &dyn Comm,
    what: &str,
    code: i32,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    match f() {
        Ok(v) => Ok(v),
        Err(e) if comm.size() > 1 => {
            eprintln!(
                "error: {what} failed on rank {} of {} ({:#}); stopping every rank",
                comm.rank(),
                comm.size(),
                e
            );
            // mpirun (MPICH's hydra) may drop output still on its way when a rank aborts:
            // give it a moment to forward the message.
            let _ = std::io::Write::flush(&mut std::io::stdout());
            std::thread::sleep(std::time::Duration::from_millis(250));
            comm.abort(code)
        }
        Err(e) => Err(e).with_context(|| what.to_string()),
    }
}

/// With several ranks on one machine, gives each its share of the cores for its compute
/// threads: sets `RAYON_NUM_THREADS` to `cores / local_ranks` (at least 1) unless it is already
/// set, instead of every rank using all of them. Call it before any compute thread pool starts
/// (rayon's and Candle's read the variable when they start).
pub fn spread_cpu_threads(local_ranks: usize) {
    if local_ranks > 1 && std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var(
            "RAYON_NUM_THREADS",
            (cores / local_ranks).max(1).to_string(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> LaunchEnv {
        LaunchEnv {
            vars: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..LaunchEnv::default()
        }
    }

    #[test]
    fn launch_checks() {
        check_launch(0, 1, 0, &env(&[])).unwrap();
        check_launch(1, 2, 1, &env(&[("PMI_SIZE", "2"), ("PMI_RANK", "1")])).unwrap();
        // srun without PMI: every process is an MPI singleton.
        let e = check_launch(0, 1, 0, &env(&[("SLURM_STEP_NUM_TASKS", "8")])).unwrap_err();
        assert!(e.to_string().contains("srun --mpi=pmi2"), "{e}");
        // The flavour srun used and the one this MPI speaks are both named.
        let mut mpich = env(&[("SLURM_STEP_NUM_TASKS", "2")]);
        mpich.slurm_mpi_type = Some("pmix".into());
        mpich.mpi_library = Some("MPICH Version:      4.0.2\nMPICH Release date: ...".into());
        let e = check_launch(0, 1, 0, &mpich).unwrap_err().to_string();
        assert!(e.contains("with --mpi=pmix (SLURM_MPI_TYPE)"), "{e}");
        assert!(
            e.contains("(MPICH Version: 4.0.2) needs `srun --mpi=pmi2`"),
            "{e}"
        );
        mpich.slurm_mpi_type = None;
        let e = check_launch(0, 1, 0, &mpich).unwrap_err().to_string();
        assert!(e.contains("without PMI (no --mpi or --mpi=none"), "{e}");
        let mut ompi = mpich.clone();
        ompi.slurm_mpi_type = Some("pmi2".into());
        ompi.mpi_library = Some("Open MPI v4.1.4, package: Debian OpenMPI".into());
        let e = check_launch(0, 1, 0, &ompi).unwrap_err().to_string();
        assert!(e.contains("needs `srun --mpi=pmix`"), "{e}");
        let e = check_launch(1, 2, 0, &env(&[("SLURM_LOCALID", "1")])).unwrap_err();
        assert!(e.to_string().contains("SLURM_LOCALID=1"), "{e}");
        let e = check_launch(1, 2, 1, &env(&[("OMPI_COMM_WORLD_RANK", "0")])).unwrap_err();
        assert!(e.to_string().contains("rank 1"), "{e}");
    }

    #[test]
    fn solo_collectives_are_the_identity() {
        let t = Tensor::arange(0f32, 6.0, &candle_core::Device::Cpu)
            .unwrap()
            .reshape((3, 2))
            .unwrap();
        let s = Solo;
        for out in [
            s.all_gather(&t).unwrap(),
            s.reduce_scatter_sum(&t).unwrap(),
            s.all_reduce_sum(&t).unwrap(),
        ] {
            assert_eq!(out.to_vec2::<f32>().unwrap(), t.to_vec2::<f32>().unwrap());
        }
        assert_eq!(s.broadcast_bytes(0, b"x".to_vec()).unwrap(), b"x");
        assert_eq!(s.all_gather_bytes(b"xy".to_vec()).unwrap(), [b"xy"]);
    }

    /// Three ranks with fixed payloads: the first u64 all-gather returns their lengths, later
    /// ones their bytes packed like `local` (checks the packing of `all_gather_bytes`).
    struct FakeThree(Vec<Vec<u8>>, std::cell::Cell<usize>);

    impl Comm for FakeThree {
        fn rank(&self) -> usize {
            0
        }
        fn size(&self) -> usize {
            3
        }
        fn local_rank(&self) -> usize {
            0
        }
        fn local_size(&self) -> usize {
            1
        }
        fn backend(&self) -> &'static str {
            "fake"
        }
        fn all_reduce_sum_f32(&self, _buf: &mut [f32]) -> Result<()> {
            bail!("not used by all_gather_bytes")
        }
        fn all_gather_f32(&self, _local: &[f32]) -> Result<Vec<f32>> {
            bail!("not used by all_gather_bytes")
        }
        fn reduce_scatter_sum_f32(&self, _full: &[f32]) -> Result<Vec<f32>> {
            bail!("not used by all_gather_bytes")
        }
        fn all_gather_u64(&self, local: &[u64]) -> Result<Vec<u64>> {
            self.1.set(self.1.get() + 1);
            if self.1.get() == 1 {
                return Ok(self.0.iter().map(|b| b.len() as u64).collect());
            }
            let mut out = Vec::new();
            for b in &self.0 {
                let mut padded = b.clone();
                padded.resize(local.len() * 8, 0);
                out.extend(
                    padded
                        .chunks_exact(8)
                        .map(|c| u64::from_le_bytes(c.try_into().unwrap())),
                );
            }
            Ok(out)
        }
        fn broadcast_bytes(&self, _root: usize, bytes: Vec<u8>) -> Result<Vec<u8>> {
            Ok(bytes)
        }
        fn barrier(&self) -> Result<()> {
            Ok(())
        }
        fn abort(&self, code: i32) -> ! {
            std::process::exit(code)
        }
    }

    #[test]
    fn all_gather_bytes_keeps_lengths_and_rank_order() {
        let payloads = vec![
            b"first rank".to_vec(),
            Vec::new(),
            b"0123456789abcdefg".to_vec(),
        ];
        let fake = FakeThree(payloads.clone(), Default::default());
        assert_eq!(
            fake.all_gather_bytes(payloads[0].clone()).unwrap(),
            payloads
        );
        let empty = FakeThree(vec![Vec::new(); 3], Default::default());
        assert_eq!(
            empty.all_gather_bytes(Vec::new()).unwrap(),
            vec![Vec::<u8>::new(); 3]
        );
    }

    #[test]
    fn chunking_covers_the_buffer() {
        let c: Vec<_> = chunks(2 * MAX_CALL_ELEMS + 3).collect();
        assert_eq!(c.len(), 3);
        assert_eq!(c[2], 2 * MAX_CALL_ELEMS..2 * MAX_CALL_ELEMS + 3);
        assert_eq!(chunks(0).count(), 0);
    }
}
