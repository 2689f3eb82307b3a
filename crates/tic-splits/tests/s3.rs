//! The YFCC15M / RedCaps tools on object-store paths, against a real S3-compatible server (moto)
//! on 127.0.0.1 (`tic_shards::s3test`; `TIC_S3_TEST=skip` skips deliberately).

#![cfg(feature = "remote")]

use tic_shards::s3test::MotoS3;
use tic_shards::storage::Location;
use tic_testkit::ok;

#[test]
fn yfcc_and_redcaps_splits_on_s3() {
    let Some(s3) = MotoS3::start() else {
        return;
    };
    s3.create_bucket("raw");
    let bucket = Location::parse("s3://raw").unwrap();
    let run = |bin: &str, args: &[&str]| {
        let o = s3.command(bin).args(args).output().unwrap();
        ok(&o);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let synth = env!("CARGO_BIN_EXE_tic-synth-captions");

    run(
        synth,
        &["yfcc", "--out", "s3://raw/yfcc", "--rows", "60", "-q"],
    );
    assert!(bucket.join("yfcc/yfcc15m.csv").exists().unwrap());
    let stdout = run(
        env!("CARGO_BIN_EXE_tic-yfcc-splits"),
        &[
            "--input",
            "s3://raw/yfcc/yfcc15m.csv",
            "--output-dir",
            "s3://raw/yfcc/splits",
            "-q",
        ],
    );
    let unmapped: usize = stdout.split_whitespace().next().unwrap().parse().unwrap();
    let mut rows = 0;
    for g in 0..4 {
        for part in ["train", "test"] {
            let csv = bucket
                .join(&format!("yfcc/splits/{part}_batch_{g}.csv"))
                .read_to_string()
                .unwrap();
            assert!(csv.starts_with("path\tcaption\n"), "{csv}");
            rows += csv.lines().count() - 1;
        }
    }
    assert_eq!(rows + unmapped, 60);

    run(
        synth,
        &["redcaps", "--out", "s3://raw/rc", "--rows", "40", "-q"],
    );
    let stdout = run(
        env!("CARGO_BIN_EXE_tic-redcaps-splits"),
        &[
            "--annotations-dir",
            "s3://raw/rc/annotations",
            "--output-dir",
            "s3://raw/rc/splits",
            "-q",
        ],
    );
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
    let mut rows = 0;
    for y in ["2017", "2018", "2019", "2020"] {
        for part in ["train", "test"] {
            let csv = bucket
                .join(&format!("rc/splits/{part}_batch_{y}.csv"))
                .read_to_string()
                .unwrap();
            rows += csv.lines().count() - 1;
        }
    }
    assert_eq!(rows, 40);
}
