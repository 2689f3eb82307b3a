//! Fuzzing of tic-rs' readers of untrusted input on the stable toolchain (`make fuzz-smoke`,
//! part of `make test`; `docs/fuzzing.md`).
//!
//! Each [`targets::Target`] feeds bytes to one family of readers (tar shards, `.npy`, pickles,
//! the JSON count files, task lists, checkpoints, Arrow streams) and asserts what must hold for
//! any input: no panic, no allocation past the cap, results that are self-consistent. The
//! [`smoke`] driver runs every target in its own child process ([`runner`]) for a bounded time
//! under a memory cap (a counting global allocator, plus `RLIMIT_AS` as a backstop): first the
//! seeds and the committed regression inputs (`fuzz/regressions/<target>/`), then inputs made
//! by [`mutate`] from them. A child that panics, aborts, exceeds the cap or hangs is a failure,
//! and the input it was running is saved for replay. The same targets are the cargo-fuzz
//! targets of `fuzz/` (coverage-guided, on nightly), so a longer run finds more with no new code.
//!
//! Modules, bottom up: [`mutate`] → [`targets`] → [`runner`] → [`smoke`] → [`cli`].

pub mod cli;
pub mod mutate;
pub mod runner;
pub mod smoke;
pub mod targets;
