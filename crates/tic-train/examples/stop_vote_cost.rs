//! What the per-step stop vote of graceful preemption costs (docs/distributed.md,
//! "Preemption"): times `StopSignal::agreed`, one all-gather of 8 bytes per rank, under the
//! launcher. `cargo build -p tic-train --features mpi --example stop_vote_cost` then
//! `mpirun -np 2 $CARGO_TARGET_DIR/debug/examples/stop_vote_cost [CALLS]`.

use tic_dist::Comm;
use tic_train::preempt::StopSignal;

fn main() -> anyhow::Result<()> {
    let calls: u32 = std::env::args().nth(1).map_or(Ok(20_000), |s| s.parse())?;
    let comm = tic_dist::init_host()?;
    let stop = StopSignal::never();
    for _ in 0..100 {
        stop.agreed(&comm)?;
    }
    comm.barrier()?;
    let t0 = std::time::Instant::now();
    for _ in 0..calls {
        assert!(!stop.agreed(&comm)?);
    }
    let us = t0.elapsed().as_secs_f64() * 1e6 / f64::from(calls);
    if comm.rank() == 0 {
        println!(
            "stop vote on {} rank(s) ({}): {us:.2} µs per step ({calls} calls)",
            comm.size(),
            comm.backend()
        );
    }
    Ok(())
}
