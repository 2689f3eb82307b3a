//! The object-store path against a real S3-compatible server (moto) on 127.0.0.1.
//!
//! Requires `moto_server` (`pip install 'moto[server]'`; `.ci/run` and `make deps` install it).
//! Set `TIC_S3_TEST=skip` to skip deliberately on a machine without it.

#![cfg(feature = "remote")]

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tic_shards::storage::Location;
use tic_shards::{npy, Uid};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_moto(port: u16) -> Server {
    let port_s = port.to_string();
    let spawn = |cmd: &str, pre: &[&str]| {
        Command::new(cmd)
            .args(pre)
            .args(["-H", "127.0.0.1", "-p", &port_s])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    };
    // The console script, or the module when a fresh pip install left no shim on PATH yet.
    let child = spawn("moto_server", &[])
        .or_else(|_| spawn("python3", &["-m", "moto.server"]))
        .unwrap_or_else(|e| {
            panic!("cannot start moto_server ({e}): install it with `pip install 'moto[server]'` (make deps)")
        });
    let server = Server(child);
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "moto_server did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

/// S3 CreateBucket: `PUT /bucket` (moto accepts unsigned requests).
fn create_bucket(port: u16, bucket: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}

fn upload_dir(local: &Path, remote: &Location) {
    for e in std::fs::read_dir(local).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_dir() {
            upload_dir(&e.path(), &remote.join(&name));
        } else {
            // Exercise both upload paths: streaming multipart for tars, single PUT otherwise.
            if name.ends_with(".tar") {
                let tmp = tempfile::NamedTempFile::new().unwrap();
                std::fs::copy(e.path(), tmp.path()).unwrap();
                remote.join(&name).put_file(tmp.path()).unwrap();
            } else {
                remote
                    .join(&name)
                    .write(&std::fs::read(e.path()).unwrap())
                    .unwrap();
            }
        }
    }
}

fn download_dir(remote: &Location, local: &Path) {
    std::fs::create_dir_all(local).unwrap();
    for e in remote.list().unwrap() {
        if e.is_dir {
            download_dir(&remote.join(&e.name), &local.join(&e.name));
        } else {
            std::fs::write(local.join(&e.name), remote.join(&e.name).read().unwrap()).unwrap();
        }
    }
}

#[test]
fn reshard_stats_and_sizes_on_s3() {
    if std::env::var("TIC_S3_TEST").as_deref() == Ok("skip") {
        eprintln!("TIC_S3_TEST=skip: S3 test skipped on purpose");
        return;
    }
    let port = free_port();
    let _server = start_moto(port);
    let endpoint = format!("http://127.0.0.1:{port}");
    let env = [
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ];
    for (k, v) in env {
        std::env::set_var(k, v);
    }
    create_bucket(port, "tic");

    let d = tempfile::tempdir().unwrap();
    let pool = pool(&d.path().join("syn"), 120, 3, 16);
    let bucket = Location::parse("s3://tic").unwrap();
    upload_dir(&pool, &bucket.join("pool"));
    assert!(bucket.join("pool/00000002.tar").exists().unwrap());

    let mut uids: Vec<Uid> = pool_uids(&pool).iter().map(|x| x.0).step_by(2).collect();
    uids.sort();
    let sub = d.path().join("s.npy");
    std::fs::write(&sub, npy::write_uids(&uids)).unwrap();
    // The subset itself is read from S3 too.
    bucket
        .join("subset.npy")
        .write(&std::fs::read(&sub).unwrap())
        .unwrap();

    let local_out = d.path().join("local");
    ok(&run(
        env!("CARGO_BIN_EXE_tic-reshard"),
        &[
            "-i",
            pool.to_str().unwrap(),
            "-o",
            local_out.to_str().unwrap(),
            "-s",
            sub.to_str().unwrap(),
            "-q",
            "--shard-size",
            "25",
        ],
    ));
    let o = Command::new(env!("CARGO_BIN_EXE_tic-reshard"))
        .args([
            "-i",
            "s3://tic/pool",
            "-o",
            "s3://tic/splits/2014",
            "-s",
            "s3://tic/subset.npy",
            "-q",
            "--shard-size",
            "25",
        ])
        .envs(env)
        .output()
        .unwrap();
    ok(&o);
    let fetched = d.path().join("fetched");
    download_dir(&bucket.join("splits/2014"), &fetched);
    // Same shards, stats and sample ids as the local run.
    assert_eq!(
        tree(&fetched, &["meta.json"]),
        tree(&local_out, &["meta.json"])
    );
    assert_eq!(read_samples(&fetched).len(), 60);

    // tic-stats regenerates removed stats on S3; tic-sizes writes the table there.
    bucket
        .join("splits/2014/00000001_stats.json")
        .remove()
        .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_tic-stats"))
        .args(["--url", "s3://tic/splits", "-q"])
        .envs(env)
        .output()
        .unwrap();
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 shards counted (25 samples)"));
    ok(&Command::new(env!("CARGO_BIN_EXE_tic-sizes"))
        .args(["--url", "s3://tic/splits"])
        .envs(env)
        .output()
        .unwrap());
    assert_eq!(
        bucket
            .join("splits/2014/sizes.json")
            .read_to_string()
            .unwrap(),
        "{\"00000000.tar\": 25, \"00000001.tar\": 25, \"00000002.tar\": 10}"
    );
    // And the CLIP_benchmark conversion renames objects in place.
    ok(&Command::new(env!("CARGO_BIN_EXE_tic-wds-convert"))
        .args(["s3://tic/splits/2014", "retrieval"])
        .envs(env)
        .output()
        .unwrap());
    assert!(bucket.join("splits/2014/2.tar").exists().unwrap());
    assert_eq!(
        bucket
            .join("splits/2014/count.txt")
            .read_to_string()
            .unwrap(),
        "60\n"
    );
}
