//! Caption cleaning, tic-yfcc-splits, tic-redcaps-splits and tic-synth-captions against
//! fixtures made by the original scripts' logic (ftfy, urllib, pandas, sklearn).
mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::Path;

const YFCC: &str = env!("CARGO_BIN_EXE_tic-yfcc-splits");
const REDCAPS: &str = env!("CARGO_BIN_EXE_tic-redcaps-splits");
const SYNTH: &str = env!("CARGO_BIN_EXE_tic-synth-captions");

/// A splitter's arguments: `INPUT_FLAG INPUT --output-dir OUT`, then `extra`.
fn splitter_args<'a>(
    input_flag: &'a str,
    input: &'a Path,
    out: &'a Path,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        input_flag,
        input.to_str().unwrap(),
        "--output-dir",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args
}

/// tic-yfcc-splits' arguments: `--input CSV --output-dir OUT`, then `extra`.
fn yfcc_args<'a>(csv: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    splitter_args("--input", csv, out, extra)
}

/// tic-redcaps-splits' arguments: `--annotations-dir ANN --output-dir OUT`, then `extra`.
fn redcaps_args<'a>(ann: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    splitter_args("--annotations-dir", ann, out, extra)
}

/// Runs `tic-synth-captions KIND --out OUT --rows ROWS --seed SEED`, then `extra`, and asserts
/// it succeeded.
fn synth_captions(kind: &str, out: &Path, rows: &str, seed: &str, extra: &[&str]) {
    let mut args = vec![
        kind,
        "--out",
        out.to_str().unwrap(),
        "--rows",
        rows,
        "--seed",
        seed,
    ];
    args.extend_from_slice(extra);
    run_ok(SYNTH, &args);
}

/// The JSON fixture `crates/tic-splits/tests/fixtures/<rel>`.
fn json_fixture(rel: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture(rel)).unwrap()).unwrap()
}

/// Asserts that every record of the split files under `splits` names an image that exists
/// under `root/images`; returns how many records they hold.
fn rows_with_images(splits: &Path, root: &Path) -> usize {
    let mut rows = 0;
    for f in files_under(splits) {
        let recs = raw_records(&splits.join(&f));
        for rec in &recs[1..] {
            let path = String::from_utf8_lossy(rec)
                .split('\t')
                .next()
                .unwrap()
                .to_string();
            assert!(
                root.join("images").join(&path).is_file(),
                "no image at {path}"
            );
        }
        rows += recs.len() - 1;
    }
    rows
}

/// Asserts that nothing is left under `out`.
fn assert_nothing_left(out: &Path) {
    assert!(
        files_under(out).is_empty(),
        "left behind: {:?}",
        files_under(out)
    );
}

#[test]
fn captions_match_ftfy_and_urllib() {
    let cases: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(fixture("captions/cases.json")).unwrap()).unwrap();
    assert!(cases.len() >= 10);
    for c in &cases {
        let s = |k: &str| c[k].as_str().unwrap();
        let got = tic_splits::captions::yfcc_caption(s("title"), s("description"), s("usertags"));
        assert_eq!(got, s("caption"), "case {}", s("title"));
    }
}

/// Multiset of raw records (header excluded).
fn records(paths: &[&Path]) -> BTreeMap<Vec<u8>, usize> {
    let mut m = BTreeMap::new();
    for p in paths {
        let r = raw_records(p);
        assert_eq!(r[0], b"path\tcaption\n", "{}", p.display());
        for rec in &r[1..] {
            *m.entry(rec.clone()).or_insert(0) += 1;
        }
    }
    m
}

fn check_split(out: &Path, expected_all: &Path, tag: &str, summary: &serde_json::Value) {
    let train = out.join(format!("train_batch_{tag}.csv"));
    let test = out.join(format!("test_batch_{tag}.csv"));
    let got = records(&[&train, &test]);
    let want = records(&[expected_all]);
    assert_eq!(got, want, "rows of {tag} differ from the original's");
    let n_test = raw_records(&test).len() - 1;
    let n_train = raw_records(&train).len() - 1;
    assert_eq!(
        n_test as u64,
        summary["test"].as_u64().unwrap(),
        "test size of {tag}"
    );
    assert_eq!(
        n_train as u64,
        summary["train"].as_u64().unwrap(),
        "train size of {tag}"
    );
}

#[test]
fn yfcc_splits_match_original() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("splits");
    let input = fixture("yfcc/yfcc15m.csv");
    let stdout = run_ok(YFCC, &yfcc_args(&input, &out, &["-q"]));
    let summary = json_fixture("yfcc/summary.json");
    assert!(
        stdout.contains(&format!("{} not mapped paths", summary["unmapped"])),
        "{stdout}"
    );
    for g in 0..4 {
        let tag = g.to_string();
        check_split(
            &out,
            &fixture(&format!("yfcc/all_batch_{g}.csv")),
            &tag,
            &summary["groups"][&tag],
        );
    }
    assert_eq!(files_under(&out).len(), 8);
    // Same seed → same bytes; another seed → another test set.
    let out2 = d.path().join("again");
    let out3 = d.path().join("seed7");
    for (o, seed) in [(&out2, "0"), (&out3, "7")] {
        run_ok(YFCC, &yfcc_args(&input, o, &["--seed", seed, "-q"]));
    }
    let out4 = d.path().join("big");
    let out5 = d.path().join("big7");
    for (o, seed) in [(&out4, "0"), (&out5, "7")] {
        let extra = ["--seed", seed, "--test-size", "0.3", "-q"];
        run_ok(YFCC, &yfcc_args(&input, o, &extra));
    }
    for g in 0..4 {
        let f = format!("test_batch_{g}.csv");
        assert_eq!(
            std::fs::read(out.join(&f)).unwrap(),
            std::fs::read(out2.join(&f)).unwrap()
        );
        // 0.3 of n: sklearn's ceil.
        let n = summary["groups"][g.to_string()]["n"].as_u64().unwrap() as f64;
        assert_eq!(
            raw_records(&out4.join(&f)).len() - 1,
            (0.3 * n).ceil() as usize
        );
    }
    assert_ne!(
        std::fs::read(out4.join("test_batch_0.csv")).unwrap(),
        std::fs::read(out5.join("test_batch_0.csv")).unwrap()
    );
}

fn write(p: &Path, s: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, s).unwrap();
}

#[test]
fn yfcc_bad_input_is_named_and_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("splits");
    let csv = d.path().join("y.csv");
    write(
        &csv,
        "key,dateuploaded,title,description\nabc123,1200000000,t,d\n",
    );
    let e = run_err(YFCC, &yfcc_args(&csv, &out, &["-q"]));
    assert!(e.contains("y.csv") && e.contains("usertags"), "{e}");
    write(
        &csv,
        "key,dateuploaded,title,description,usertags\nabc123,1200000000,t,d,u\nabd456,yesterday,t,d,u\n",
    );
    let e = run_err(YFCC, &yfcc_args(&csv, &out, &["-q"]));
    assert!(
        e.contains("y.csv") && e.contains("line 3") && e.contains("yesterday"),
        "{e}"
    );
    write(
        &csv,
        "key,dateuploaded,title,description,usertags\n,1200000000,t,d,u\n",
    );
    let e = run_err(YFCC, &yfcc_args(&csv, &out, &["-q"]));
    assert!(e.contains("line 2") && e.contains("key"), "{e}");
    assert_nothing_left(&out);
    let e = run_err(YFCC, &yfcc_args(&d.path().join("none.csv"), &out, &[]));
    assert!(e.contains("none.csv"), "{e}");
}

/// Multiset of parsed (path, caption) rows of split files.
fn parsed(paths: &[&Path]) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for p in paths {
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(b'\t')
            .from_path(p)
            .unwrap();
        assert_eq!(rdr.headers().unwrap(), vec!["path", "caption"]);
        for r in rdr.records() {
            let r = r.unwrap();
            *m.entry((r[0].to_string(), r[1].to_string())).or_insert(0) += 1;
        }
    }
    m
}

#[test]
fn redcaps_splits_match_original() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("splits");
    let ann = fixture("redcaps/annotations");
    let stdout = run_ok(REDCAPS, &redcaps_args(&ann, &out, &["-q"]));
    let summary = json_fixture("redcaps/summary.json");
    let records = json_fixture("redcaps/records.json");
    for y in ["2017", "2018", "2019", "2020"] {
        let train = out.join(format!("train_batch_{y}.csv"));
        let test = out.join(format!("test_batch_{y}.csv"));
        let mut want = BTreeMap::new();
        for r in records[y].as_array().unwrap() {
            let k = (
                r[0].as_str().unwrap().to_string(),
                r[1].as_str().unwrap().to_string(),
            );
            *want.entry(k).or_insert(0) += 1;
        }
        assert_eq!(parsed(&[&train, &test]), want, "rows of {y}");
        assert_eq!(
            parsed(&[&test]).values().sum::<usize>() as u64,
            summary[y]["test"].as_u64().unwrap()
        );
        assert_eq!(
            parsed(&[&train]).values().sum::<usize>() as u64,
            summary[y]["train"].as_u64().unwrap()
        );
        assert!(stdout.contains(&format!("Year: {y}")), "{stdout}");
    }
    // Captions with tabs, quotes and newlines are quoted as pandas does.
    let text = std::fs::read_to_string(out.join("train_batch_2017.csv")).unwrap();
    assert!(text.contains("\"sunset \"\"over\"\" the bay"), "{text}");
    assert_eq!(files_under(&out).len(), 8);
}

#[test]
fn redcaps_bad_annotation_is_named() {
    let d = tempfile::tempdir().unwrap();
    let ann = d.path().join("annotations");
    write(
        &ann.join("a_2017.json"),
        r#"{"annotations": [{"subreddit": "a", "image_id": "x", "caption": "ok"}]}"#,
    );
    write(
        &ann.join("b_2017.json"),
        r#"{"annotations": [{"subreddit": "b", "image_id": "y"}]}"#,
    );
    let out = d.path().join("splits");
    let e = run_err(
        REDCAPS,
        &redcaps_args(&ann, &out, &["--years", "2017", "-q"]),
    );
    assert!(e.contains("b_2017.json") && e.contains("caption"), "{e}");
    assert_nothing_left(&out);
    write(&ann.join("b_2017.json"), r#"{"items": []}"#);
    let e = run_err(
        REDCAPS,
        &redcaps_args(&ann, &out, &["--years", "2017", "-q"]),
    );
    assert!(
        e.contains("b_2017.json") && e.contains("annotations"),
        "{e}"
    );
    let e = run_err(REDCAPS, &redcaps_args(&d.path().join("missing"), &out, &[]));
    assert!(e.contains("missing"), "{e}");
}

#[test]
fn synthetic_inputs_run_through_the_splitters() {
    let d = tempfile::tempdir().unwrap();
    let y = d.path().join("yfcc");
    synth_captions("yfcc", &y, "300", "3", &["--images", "-q"]);
    let out = y.join("splits");
    let stdout = run_ok(YFCC, &yfcc_args(&y.join("yfcc15m.csv"), &out, &["-q"]));
    let unmapped: usize = stdout.split_whitespace().next().unwrap().parse().unwrap();
    let rows = rows_with_images(&out, &y);
    assert_eq!(rows + unmapped, 300);
    assert!(unmapped > 0 && unmapped < 150, "{unmapped}");

    let r = d.path().join("redcaps");
    synth_captions("redcaps", &r, "200", "4", &["--images", "-q"]);
    let out = r.join("splits");
    run_ok(
        REDCAPS,
        &redcaps_args(&r.join("annotations"), &out, &["-q"]),
    );
    assert_eq!(rows_with_images(&out, &r), 200);
    // Same seed, same files.
    let r2 = d.path().join("redcaps2");
    synth_captions("redcaps", &r2, "200", "4", &["-q"]);
    assert_eq!(
        std::fs::read(r.join("annotations/cats_2018.json")).unwrap(),
        std::fs::read(r2.join("annotations/cats_2018.json")).unwrap()
    );
}
