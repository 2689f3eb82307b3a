//! Run folders in an object store, against a real S3-compatible server (moto, started by
//! `tic_shards::s3test`; `TIC_S3_TEST=skip` skips on purpose): `--output_dir s3://…` killed with
//! SIGKILL in the middle of a checkpoint upload and resumed from the store alone on an empty
//! staging folder, bit-identical to an uninterrupted local run; the run's lock refusing a second
//! job and taken over from a dead one; `--remote_sync` copying a local run and bringing it back.
//! Each test has its own bucket: a process keeps one client per bucket, and each test starts
//! its own server.

#![cfg(feature = "remote")]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tic_shards::s3test::MotoS3;
use tic_shards::storage::Location;
use tic_shards::store_lock::StoreLock;

mod common;

/// tic-train, 16 per batch, `samples` samples in `checkpoints` epochs, on `data`, run `r`.
fn tiny(s3: &MotoS3, data: &Path, out: &str, samples: &str, checkpoints: &str) -> Command {
    let mut c = s3.command(env!("CARGO_BIN_EXE_tic-train"));
    c.args(common::tiny_cpu_args("16", samples, checkpoints))
        .args(["--data_dir", data.to_str().unwrap()])
        .args(["--output_dir", out, "--exp_name", "r"]);
    c
}

fn run(mut c: Command) -> Output {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every file under a store folder, relative, sorted.
fn remote_files(dir: &Location, prefix: &str, out: &mut Vec<String>) {
    for e in dir.list().unwrap() {
        if e.is_dir {
            remote_files(&dir.join(&e.name), &format!("{prefix}{}/", e.name), out);
        } else {
            out.push(format!("{prefix}{}", e.name));
        }
    }
}

/// A TCP proxy in front of the S3 server that forwards everything until a request line
/// contains `pattern`, then stops forwarding that connection (the upload hangs half-sent) and
/// raises its flag.
struct StallingProxy {
    port: u16,
    stalled: Arc<AtomicBool>,
}

impl StallingProxy {
    fn start(upstream: u16, pattern: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stalled = Arc::new(AtomicBool::new(false));
        let flag = stalled.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    return;
                };
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s2, &mut c2);
                    let _ = c2.shutdown(Shutdown::Both);
                });
                let (flag, pattern) = (flag.clone(), pattern.clone());
                std::thread::spawn(move || forward(client, server, pattern.as_bytes(), &flag));
            }
        });
        Self { port, stalled }
    }
}

fn forward(mut client: TcpStream, mut server: TcpStream, pattern: &[u8], flag: &AtomicBool) {
    let mut buf = vec![0u8; 1 << 16];
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        tail.extend_from_slice(&buf[..n]);
        let hit = tail.windows(pattern.len()).any(|w| w == pattern);
        if server.write_all(&buf[..n]).is_err() {
            break;
        }
        if hit && !flag.swap(true, Ordering::SeqCst) {
            // Swallow the rest of this upload: the server never gets it.
            while matches!(client.read(&mut buf), Ok(n) if n > 0) {}
            break;
        }
        let keep = tail.len().saturating_sub(pattern.len());
        tail.drain(..keep);
    }
    let _ = server.shutdown(Shutdown::Write);
}

/// `--output_dir s3://…`, killed while the epoch-2 state uploads (the store then still holds
/// the epoch-1 state whole), rerun on an empty staging folder: it takes over the dead job's
/// lock, reads the run back from the store and ends with the weights and losses of an
/// uninterrupted local run; the store holds the whole run folder and no lock.
#[test]
fn killed_during_an_upload_resumes_from_the_store_alone() {
    let Some(s3) = MotoS3::start() else { return };
    s3.create_bucket("killed");
    let d = tempfile::tempdir().unwrap();
    let years = common::yearly_pool(d.path(), 1, 480, 1, 0.1);
    let local = d.path().join("local");
    run(tiny(&s3, &years[0], local.to_str().unwrap(), "960", "3"));

    // 20 steps per epoch: the state of step 40 is the second one.
    let proxy = StallingProxy::start(
        s3.port,
        "PUT /killed/exp/r/checkpoints/state_step00000040.safetensors".into(),
    );
    let mut c = tiny(&s3, &years[0], "s3://killed/exp", "960", "3");
    c.env("AWS_ENDPOINT", format!("http://127.0.0.1:{}", proxy.port))
        .args(["--staging_dir", d.path().join("stage1").to_str().unwrap()])
        .args(["--report_to", "tensorboard", "--remote_sync_frequency", "1"])
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let t0 = Instant::now();
    while !proxy.stalled.load(Ordering::SeqCst) {
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "the upload of the step-40 state never started"
        );
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Mid-upload: the store's state is the epoch-1 one, and its tensors are there.
    let store = Location::parse("s3://killed/exp/r").unwrap();
    let st: serde_json::Value =
        serde_json::from_slice(&store.join("checkpoints/train_state.json").read().unwrap())
            .unwrap();
    assert_eq!(st["step"], 20, "{st}");
    let tensors = st["tensors"].as_str().unwrap();
    assert!(store.join("checkpoints").join(tensors).exists().unwrap());
    assert!(store.join(".tic-lock").exists().unwrap());
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());

    // Resumed from the store alone: a new, empty staging folder, straight to the server.
    let mut c = tiny(&s3, &years[0], "s3://killed/exp", "960", "3");
    c.args(["--staging_dir", d.path().join("stage2").to_str().unwrap()])
        .args(["--report_to", "tensorboard"]);
    let out = run(c);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("took over the lock of tic-train"),
        "{stderr}"
    );
    assert!(stderr.contains("is gone"), "{stderr}");
    let log = store.join("out.log").read_to_string().unwrap();
    assert!(
        log.contains("downloaded the state at step 20 from s3://killed/exp/r"),
        "{log}"
    );
    assert!(log.contains("resuming at step 20/60"), "{log}");

    let mut files = Vec::new();
    remote_files(&store, "", &mut files);
    for f in [
        "checkpoints/epoch_3.safetensors",
        "checkpoints/epoch_latest.safetensors",
        "checkpoints/state_step00000060.safetensors",
        "checkpoints/train_state.json",
        "compute.json",
        "info.json",
        "metrics.jsonl",
        "model_config.json",
        "out.log",
        "params.txt",
        "params.yaml",
    ] {
        assert!(files.iter().any(|x| x == f), "{f} missing: {files:?}");
    }
    assert!(!files.iter().any(|f| f.ends_with(".tic-lock")), "{files:?}");
    let states: Vec<_> = files.iter().filter(|f| f.contains("state_step")).collect();
    assert_eq!(states.len(), 1, "older states left: {files:?}");
    let events = files
        .iter()
        .filter(|f| f.starts_with("tensorboard/"))
        .count();
    assert_eq!(events, 2, "one event file per invocation: {files:?}");

    let latest = store
        .join("checkpoints/epoch_latest.safetensors")
        .read()
        .unwrap();
    let reference = std::fs::read(local.join("r/checkpoints/epoch_latest.safetensors")).unwrap();
    assert!(latest == reference, "the resumed run's weights differ");
    let staged = d.path().join("stage2/metrics.jsonl");
    std::fs::write(&staged, store.join("metrics.jsonl").read().unwrap()).unwrap();
    assert_eq!(
        common::metrics_losses(&staged),
        common::metrics_losses(&local.join("r/metrics.jsonl"))
    );
    let compute: serde_json::Value =
        serde_json::from_slice(&store.join("compute.json").read().unwrap()).unwrap();
    assert_eq!(compute["finished"], true);
    let info: serde_json::Value =
        serde_json::from_slice(&store.join("info.json").read().unwrap()).unwrap();
    assert_eq!(
        info["checkpoint"],
        "s3://killed/exp/r/checkpoints/epoch_latest.safetensors"
    );
}

/// A live holder of the run's lock refuses a second job, naming the lock object and the holder;
/// a holder on another host whose heartbeat is old is taken over.
#[test]
fn a_second_job_on_the_run_is_refused() {
    let Some(s3) = MotoS3::start() else { return };
    s3.create_bucket("busy");
    let d = tempfile::tempdir().unwrap();
    let years = common::yearly_pool(d.path(), 1, 480, 1, 0.1);
    let store = Location::parse("s3://busy/run/r").unwrap();
    let holder = StoreLock::acquire(&store, "tic-train", Duration::from_secs(900)).unwrap();

    let mut c = tiny(&s3, &years[0], "s3://busy/run", "320", "1");
    c.args(["--staging_dir", d.path().join("stage").to_str().unwrap()]);
    let out = c.output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("s3://busy/run/r is being written by another tic-train (pid "),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("pid {}, host ", std::process::id())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("owner {}", holder.record().owner)),
        "{stderr}"
    );
    assert!(
        stderr.contains("lock object s3://busy/run/r/.tic-lock"),
        "{stderr}"
    );
    assert!(
        !store.join("out.log").exists().unwrap(),
        "the refused job wrote"
    );
    std::mem::forget(holder); // the lock object stays, as a killed job's would

    // The same holder, but on another host and silent for an hour: taken over.
    let stale = serde_json::json!({"tool": "tic-train", "pid": 1, "host": "elsewhere",
        "owner": "0123456789abcdef", "started": 0, "heartbeat": 0});
    store
        .join(".tic-lock")
        .write(stale.to_string().as_bytes())
        .unwrap();
    let mut c = tiny(&s3, &years[0], "s3://busy/run", "320", "1");
    c.args(["--staging_dir", d.path().join("stage").to_str().unwrap()]);
    let out = run(c);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("took over the lock of tic-train (pid 1, host elsewhere"),
        "{stderr}"
    );
    assert!(stderr.contains("no heartbeat for"), "{stderr}");
    assert!(!store.join(".tic-lock").exists().unwrap());
    assert!(store
        .join("checkpoints/epoch_latest.safetensors")
        .exists()
        .unwrap());
}

/// `--remote_sync`: the store's copy of a finished local run is the local folder, file for file;
/// with the local folder gone, `--resume latest` reads the state back from the store.
#[test]
fn remote_sync_copies_the_run_and_brings_it_back() {
    let Some(s3) = MotoS3::start() else { return };
    s3.create_bucket("synced");
    let d = tempfile::tempdir().unwrap();
    let years = common::yearly_pool(d.path(), 1, 480, 1, 0.1);
    let local = d.path().join("out");
    let cmd = || {
        let mut c = tiny(&s3, &years[0], local.to_str().unwrap(), "320", "1");
        c.args([
            "--remote_sync",
            "s3://synced/copy",
            "--remote_sync_frequency",
            "1",
        ])
        .args(["--report_to", "tensorboard"]);
        c
    };
    run(cmd());
    let store = Location::parse("s3://synced/copy/r").unwrap();
    let mut files = Vec::new();
    remote_files(&store, "", &mut files);
    let mut local_files: Vec<String> = walk(&local.join("r"))
        .into_iter()
        .filter(|f| !f.ends_with(".tic-lock"))
        .collect();
    local_files.sort();
    assert_eq!(files, local_files);
    for f in &files {
        assert!(
            store.join(f).read().unwrap() == std::fs::read(local.join("r").join(f)).unwrap(),
            "{f} differs in the store"
        );
    }

    std::fs::remove_dir_all(local.join("r")).unwrap();
    run(cmd());
    let log = std::fs::read_to_string(local.join("r/out.log")).unwrap();
    assert!(
        log.contains("downloaded the state at step 20 from s3://synced/copy/r"),
        "{log}"
    );
    assert!(log.contains("resuming at step 20/20"), "{log}");
}

/// Every file under `dir`, relative, with `/` separators.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()).into_iter().map(|f| format!("{name}/{f}")));
        } else {
            out.push(name);
        }
    }
    out
}
