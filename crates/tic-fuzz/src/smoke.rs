//! The driver `make fuzz-smoke` runs: every target in a child process of its own (this binary's
//! `run` command) under the memory cap, a few at a time, each for a bounded time; a child that
//! fails or outlives its time is reported with the input it was running, saved for replay.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What `tic-fuzz smoke` is asked for: every target (or those named) replays its seeds and
/// fuzz/regressions/<target>/, then runs mutated inputs for --seconds.
#[derive(clap::Args, Debug)]
pub struct SmokeOpts {
    /// Targets to run (default: all; `tic-fuzz list` names them).
    #[arg(long = "target")]
    pub targets: Vec<String>,
    /// Seconds of mutated inputs per target after the replay (0: replay only).
    #[arg(long, default_value_t = 6.0)]
    pub seconds: f64,
    /// Memory cap per target in MiB: an allocation past it fails the target.
    #[arg(long, default_value_t = 512)]
    pub mem_mb: u64,
    /// Targets run at once.
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Random seed of the mutators (default: from the clock; printed, to rerun a failure).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Folder for input logs, child logs and failing inputs.
    #[arg(long, default_value = "target/fuzz-smoke")]
    pub out: PathBuf,
    /// The repository root (fixtures and fuzz/regressions).
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
}

/// How one child ended.
struct Outcome {
    target: String,
    failure: Option<String>,
    log: String,
}

/// Time a child gets beyond its fuzzing time (start, replay, writing its summary).
const GRACE: Duration = Duration::from_secs(60);

fn run_one(opts: &SmokeOpts, seed: u64, target: &str) -> Result<Outcome> {
    let input_log = opts.out.join(format!("{target}.input"));
    let child_log = opts.out.join(format!("{target}.log"));
    let log_file = std::fs::File::create(&child_log)?;
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["run", target, "--seconds", &opts.seconds.to_string()])
        .args([
            "--mem-mb",
            &opts.mem_mb.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .arg("--input-log")
        .arg(&input_log)
        .arg("--corpus")
        .arg(opts.root.join("fuzz/regressions").join(target))
        .arg("--root")
        .arg(&opts.root)
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .stdin(Stdio::null())
        .spawn()
        .context("starting a fuzz child")?;
    let limit = Duration::from_secs_f64(opts.seconds) + GRACE;
    let start = Instant::now();
    let status: Option<ExitStatus> = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if start.elapsed() > limit {
            child.kill()?;
            child.wait()?;
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(&child_log).unwrap_or_default();
    let failure = match status {
        Some(s) if s.success() => None,
        Some(s) => Some(format!("{s}")),
        None => Some(format!(
            "no result after {:.0} s (a hang?)",
            limit.as_secs_f64()
        )),
    };
    let failure = match failure {
        Some(why) => Some(format!("{why}; {}", save_input(opts, target, &input_log)?)),
        None => None,
    };
    Ok(Outcome {
        target: target.to_string(),
        failure,
        log,
    })
}

/// Copies the failing input out of the child's input log; says where it is and how to replay.
fn save_input(opts: &SmokeOpts, target: &str, input_log: &Path) -> Result<String> {
    let Ok(data) = crate::runner::InputLog::read(input_log) else {
        return Ok("it failed before running any input".into());
    };
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let dir = opts.out.join("failures");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{target}-{hash:016x}"));
    std::fs::write(&path, &data)?;
    Ok(format!(
        "the input ({} bytes) is saved as {} (replay: tic-fuzz replay {target} {}; once fixed, \
         keep it in fuzz/regressions/{target}/)",
        data.len(),
        path.display(),
        path.display()
    ))
}

/// Runs the targets; fails if any child failed, naming each failure and its saved input.
pub fn smoke(opts: &SmokeOpts) -> Result<()> {
    let names: Vec<String> = if opts.targets.is_empty() {
        crate::targets::TARGETS
            .iter()
            .map(|t| t.name.to_string())
            .collect()
    } else {
        opts.targets.clone()
    };
    for n in &names {
        crate::targets::find(n).with_context(|| format!("no fuzz target {n:?}"))?;
    }
    std::fs::create_dir_all(&opts.out)?;
    let seed = opts.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    println!(
        "fuzzing {} targets, {} s each after replaying seeds and fuzz/regressions, {} MiB cap, \
         {} at a time, seed {}",
        names.len(),
        opts.seconds,
        opts.mem_mb,
        opts.jobs,
        seed
    );
    let queue = Mutex::new(names.into_iter());
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.max(1) {
            s.spawn(|| loop {
                let Some(name) = queue.lock().expect("queue").next() else {
                    break;
                };
                let outcome = run_one(opts, seed, &name);
                if let Ok(o) = &outcome {
                    print!(
                        "{}",
                        o.log
                            .lines()
                            .last()
                            .map(|l| format!("{l}\n"))
                            .unwrap_or_default()
                    );
                }
                outcomes.lock().expect("outcomes").push(outcome);
            });
        }
    });
    let mut failed = Vec::new();
    for o in outcomes.into_inner().expect("outcomes") {
        let o = o?;
        if let Some(why) = o.failure {
            let tail: Vec<&str> = o.log.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!("FAILED {}: {why}\n  {}", o.target, tail.join("\n  "));
            failed.push(o.target);
        }
    }
    if !failed.is_empty() {
        anyhow::bail!("fuzz targets failed: {}", failed.join(", "));
    }
    println!("no failures");
    Ok(())
}
