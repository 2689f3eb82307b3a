//! Graceful preemption: SIGTERM (what Slurm sends before SIGKILL) or SIGINT (Ctrl-C) asks
//! `tic-train` to stop. The step in flight finishes, the resumable state is written exactly as a
//! `--checkpoint_every` save writes it, and the process exits with [`EXIT_PREEMPTED`], so a
//! requeued job loses no finished step and a `&&` chain never takes the interrupted run for a
//! finished one.
//!
//! A signal may reach one rank only (or only the launcher, which forwards it to some): every
//! rank votes with its own flag before each step and all stop at the same step when any voted
//! ([`StopSignal::agreed`], one all-gather of 8 bytes per rank and step). A second signal while
//! the first stop is under way exits at once with `128 + signal` (the shell's convention); the
//! state then on disk is the previous one, intact, because every checkpoint file is written to
//! a temporary file and renamed.
//!
//! The handlers are signal-hook's (`flag`): they only store to atomics, no hand-written
//! `unsafe`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};
use tic_dist::Comm;

/// Exit status of a run stopped by SIGTERM / SIGINT after saving its resumable state
/// (`EX_TEMPFAIL` of `sysexits.h`: "try again later"). Rerunning the same command resumes.
pub const EXIT_PREEMPTED: u8 = 75;

/// Exit status of a run that failed (any rank): an error was printed.
pub const EXIT_FAILURE: u8 = 1;

/// The stop request of this process: set by SIGTERM / SIGINT once [`StopSignal::install`]ed.
#[derive(Clone, Default)]
pub struct StopSignal {
    flag: Arc<AtomicBool>,
    signal: Arc<AtomicUsize>,
}

impl std::fmt::Debug for StopSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StopSignal({:?})", self.received())
    }
}

impl StopSignal {
    /// A stop request that no signal sets (library use and tests: [`StopSignal::request`]
    /// sets it by hand).
    pub fn never() -> Self {
        Self::default()
    }

    /// Installs the handlers of SIGTERM and SIGINT: the first sets the flag, a second one (of
    /// either) exits the process at once with status `128 + signal`.
    pub fn install() -> Result<Self> {
        let s = Self::default();
        for sig in [SIGTERM, SIGINT] {
            // Registered first, so it sees the flag as the previous signal left it.
            signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, s.flag.clone())
                .with_context(|| format!("installing the handler of signal {sig}"))?;
            signal_hook::flag::register_usize(sig, s.signal.clone(), sig as usize)
                .with_context(|| format!("installing the handler of signal {sig}"))?;
            signal_hook::flag::register(sig, s.flag.clone())
                .with_context(|| format!("installing the handler of signal {sig}"))?;
        }
        Ok(s)
    }

    /// Asks for a stop as a signal would (tests, embedding programs).
    pub fn request(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    /// True once this process was asked to stop.
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// The name of the signal received (`SIGTERM`, `SIGINT`), if one was.
    pub fn received(&self) -> Option<&'static str> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            s if s == SIGTERM as usize => Some("SIGTERM"),
            s if s == SIGINT as usize => Some("SIGINT"),
            _ => Some("a signal"),
        }
    }

    /// Whether any rank of `comm` was asked to stop (a collective: every rank calls it at the
    /// same step and gets the same answer). One process needs no communication.
    pub fn agreed(&self, comm: &dyn Comm) -> Result<bool> {
        let mine = u64::from(self.requested());
        if comm.size() == 1 {
            return Ok(mine == 1);
        }
        Ok(comm.all_gather_u64(&[mine])?.iter().any(|&v| v != 0))
    }
}

/// Why a run stopped before its last step, as [`crate::setup::run`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preempted {
    /// The step the saved state resumes from.
    pub step: u64,
    /// The run's total steps.
    pub total_steps: u64,
    /// The signal this rank received (`None` when another rank's signal stopped it).
    pub signal: Option<&'static str>,
}

/// How a `tic-train` invocation ended without an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The run reached its last step (or was already finished), or only timed the loader.
    Finished,
    /// Stopped by a signal with its resumable state saved: exit with [`EXIT_PREEMPTED`].
    Preempted(Preempted),
}

impl Outcome {
    /// The process exit status of this outcome.
    pub fn exit_status(&self) -> u8 {
        match self {
            Outcome::Finished => 0,
            Outcome::Preempted(_) => EXIT_PREEMPTED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_seen_and_agreed_by_one_process() {
        let s = StopSignal::never();
        assert!(!s.requested());
        assert!(!s.agreed(&tic_dist::Solo).unwrap());
        s.clone().request();
        assert!(s.requested() && s.agreed(&tic_dist::Solo).unwrap());
        assert_eq!(s.received(), None);
        assert_eq!(
            Outcome::Preempted(Preempted {
                step: 3,
                total_steps: 9,
                signal: None
            })
            .exit_status(),
            75
        );
        assert_eq!(Outcome::Finished.exit_status(), 0);
    }
}
