//! The object-store path against a real S3-compatible server (moto) on 127.0.0.1
//! (`tic_shards::s3test`; `TIC_S3_TEST=skip` skips deliberately on a machine without it).

#![cfg(feature = "remote")]

mod common;

use common::*;
use std::path::Path;
use tic_shards::s3test::MotoS3;
use tic_shards::storage::Location;
use tic_shards::{npy, Uid};
use tic_testkit::shards::{pool_uids, read_samples, synth_pool};
use tic_testkit::{ok, run};

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
    let Some(s3) = MotoS3::start() else {
        return;
    };
    s3.create_bucket("tic");

    let d = tempfile::tempdir().unwrap();
    let pool = synth_pool(&d.path().join("syn"), 120, 3, 16);
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
    let o = s3
        .command(env!("CARGO_BIN_EXE_tic-reshard"))
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
    let o = s3
        .command(env!("CARGO_BIN_EXE_tic-stats"))
        .args(["--url", "s3://tic/splits", "-q"])
        .output()
        .unwrap();
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 shards counted (25 samples)"));
    ok(&s3
        .command(env!("CARGO_BIN_EXE_tic-sizes"))
        .args(["--url", "s3://tic/splits"])
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
    ok(&s3
        .command(env!("CARGO_BIN_EXE_tic-wds-convert"))
        .args(["s3://tic/splits/2014", "retrieval"])
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

#[test]
fn synth_and_make_tars_on_s3() {
    let Some(s3) = MotoS3::start() else {
        return;
    };
    s3.create_bucket("gen");
    let bucket = Location::parse("s3://gen").unwrap();

    // tic-synth writes its pool and UID files straight to the bucket.
    ok(&s3
        .command(env!("CARGO_BIN_EXE_tic-synth"))
        .args([
            "--out",
            "s3://gen/synth",
            "--num-samples",
            "40",
            "--num-shards",
            "2",
        ])
        .args(["--image-size", "16", "--quiet"])
        .output()
        .unwrap());
    assert!(bucket.join("synth/pool/00000001.tar").exists().unwrap());
    assert!(bucket.join("synth/pool/sizes.json").exists().unwrap());
    assert!(bucket.join("synth/synth.json").exists().unwrap());

    // tic-make-tars: CSV and images read from the bucket, shards written to it.
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("img/a")).unwrap();
    for i in 0..3 {
        std::fs::write(src.join(format!("img/a/{i}.jpg")), format!("jpeg{i}")).unwrap();
    }
    std::fs::write(
        src.join("train_batch_0.csv"),
        "path\tcaption\na/0.jpg\tzero\na/gone.jpg\tmissing\na/1.jpg\tone\na/2.jpg\ttwo\n",
    )
    .unwrap();
    upload_dir(&src, &bucket.join("raw"));
    let o = s3
        .command(env!("CARGO_BIN_EXE_tic-make-tars"))
        .args(["--input", "s3://gen/raw/train_batch_0.csv"])
        .args([
            "--image-dir",
            "s3://gen/raw/img",
            "--output-dir",
            "s3://gen/tars",
        ])
        .args(["--datacomp-compat", "-z", "2", "-q"])
        .output()
        .unwrap();
    ok(&o);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("3 samples in 2 shards under s3://gen/tars"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        bucket.join("tars/sizes.json").read_to_string().unwrap(),
        "{\"train_batch_0__00000000.tar\": 2, \"train_batch_0__00000001.tar\": 1}"
    );
    let fetched = d.path().join("fetched");
    download_dir(&bucket.join("tars"), &fetched);
    let got = read_samples(&fetched);
    assert_eq!(got["3"]["txt"], b"two");
    assert_eq!(got["0"]["jpg"], b"jpeg0");
}

/// The object-store lock on S3's conditional writes: a second holder is refused naming the
/// first; a stale record from another host is taken over, after which the old holder's
/// heartbeat fails; release removes the object, and only its own.
#[test]
fn store_lock_on_s3() {
    use std::time::Duration;
    use tic_shards::store_lock::{StoreLock, LOCK_OBJECT};
    let Some(s3) = MotoS3::start() else {
        return;
    };
    s3.create_bucket("locks");
    let dir = Location::parse("s3://locks/run").unwrap();
    let stale_after = Duration::from_secs(900);
    let mut a = StoreLock::acquire(&dir, "tic-train", stale_after).unwrap();
    a.heartbeat().unwrap();
    let e = format!(
        "{:#}",
        StoreLock::acquire(&dir, "tic-train", stale_after).unwrap_err()
    );
    assert!(
        e.contains(&format!(
            "s3://locks/run is being written by another tic-train (pid {}",
            std::process::id()
        )) && e.contains(&a.record().owner)
            && e.contains("lock object s3://locks/run/.tic-lock"),
        "{e}"
    );
    // A's record, but from another host and silent for long: taken over.
    let mut old = a.record().clone();
    old.host = "elsewhere".into();
    old.heartbeat = 0;
    dir.join(LOCK_OBJECT)
        .write(&serde_json::to_vec(&old).unwrap())
        .unwrap();
    let c = StoreLock::acquire(&dir, "tic-train", stale_after).unwrap();
    let e = format!("{:#}", a.heartbeat().unwrap_err());
    assert!(e.contains("lost the lock s3://locks/run/.tic-lock"), "{e}");
    drop(a); // not the holder any more: leaves C's lock alone
    assert!(dir.join(LOCK_OBJECT).exists().unwrap());
    c.release().unwrap();
    assert!(!dir.join(LOCK_OBJECT).exists().unwrap());
}
