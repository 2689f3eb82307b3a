//! Shared command-line plumbing: logging verbosity and progress bars.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Duration;

/// Installs a `tracing` subscriber on stderr. Each `-v` raises and each `-q` lowers the level
/// from `info`; `RUST_LOG` overrides both.
pub fn init_logging(verbose: u8, quiet: u8) {
    let level = match 2i32 + verbose as i32 - quiet as i32 {
        i32::MIN..=0 => "error",
        1 => "warn",
        2 => "info",
        3 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// The `-v`/`-q` flags every binary takes; `#[command(flatten)]` it into a clap struct.
#[derive(clap::Args, Debug, Clone, Copy, Default)]
pub struct Verbosity {
    /// More log output (repeatable).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less log output (repeatable).
    #[arg(short = 'q', long = "quiet", action = clap::ArgAction::Count)]
    pub quiet: u8,
}

impl Verbosity {
    /// Installs the logger at this verbosity (see [`init_logging`]).
    pub fn init(&self) {
        init_logging(self.verbose, self.quiet);
    }
    /// True when at least one `-q` was given (progress bars are hidden).
    pub fn is_quiet(&self) -> bool {
        self.quiet > 0
    }
}

/// A progress bar over `total` items of `unit` (e.g. "samples"), showing rate and ETA.
/// Hidden when stderr is not a terminal or `quiet` is set.
pub fn progress(total: u64, unit: &str, quiet: bool) -> ProgressBar {
    let pb = ProgressBar::new(total);
    if quiet {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {{msg}} [{{elapsed_precise}}] {{wide_bar}} {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, ETA {{eta}})"
        ))
        .expect("valid template"),
    );
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}
