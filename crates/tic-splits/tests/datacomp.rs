//! tic-eval-uids, tic-datacompnet-classes and tic-tasklist against fixtures made by the
//! original scripts' logic in Python (see fixtures/make_fixtures.py).
mod common;
use common::*;
use serde_pickle::{HashableValue, SerOptions, Value};
use std::collections::HashMap;
use std::path::Path;
use tic_shards::uid::Uid;

const EVAL: &str = env!("CARGO_BIN_EXE_tic-eval-uids");
const CLASSES: &str = env!("CARGO_BIN_EXE_tic-datacompnet-classes");
const TASKLIST: &str = env!("CARGO_BIN_EXE_tic-tasklist");

/// `--output-path OUT --input-dir INPUT --no-download`: tic-eval-uids and tic-datacompnet-classes
/// on local input files.
fn local_input_args<'a>(out: &'a Path, input: &'a Path) -> [&'a str; 5] {
    [
        "--output-path",
        out.to_str().unwrap(),
        "--input-dir",
        input.to_str().unwrap(),
        "--no-download",
    ]
}

#[test]
fn eval_uids_byte_identical_to_numpy() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let input = fixture("eval_uids/input");
    let stdout = run_ok(EVAL, &local_input_args(&out, &input));
    let expected = fixture("eval_uids/expected");
    let want = files_under(&expected);
    assert_eq!(files_under(&out), want);
    for f in &want {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(expected.join(f)).unwrap(),
            "{f} differs from np.save's bytes"
        );
    }
    // Per-year unique counts summed, as the original prints: 2014 has 6 (one uid twice), 2015 5, 2016 0, 2022 4.
    assert!(stdout.contains("eval/retrieval/<year>.npy: 15"), "{stdout}");
    assert!(stdout.contains("eval/alluids.npy: "), "{stdout}");
}

#[test]
fn npy_headers_match_numpy_for_many_lengths() {
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(fixture("eval_uids/npy_headers.json")).unwrap())
            .unwrap();
    assert!(rows.len() >= 10);
    for r in rows {
        let n = r["n"].as_u64().unwrap() as usize;
        let header: Vec<u8> = r["header"]
            .as_str()
            .unwrap()
            .chars()
            .map(|c| c as u32 as u8)
            .collect();
        let bytes = tic_shards::npy::write_uids(&vec![Uid(0); n]);
        assert_eq!(bytes.len(), header.len() + 16 * n, "n={n}");
        assert_eq!(
            &bytes[..header.len()],
            &header[..],
            "n={n}: header differs from np.save"
        );
    }
}

#[test]
fn eval_uids_missing_input_is_named() {
    let d = tempfile::tempdir().unwrap();
    let e = run_err(
        EVAL,
        &["--output-path", d.path().to_str().unwrap(), "--no-download"],
    );
    assert!(
        e.contains("tic-datacomp_retrieval_evals_year2uids.pkl") && e.contains("not found"),
        "{e}"
    );
    // Offline download attempt: a clear message naming the file and where to put it.
    let e = run_err(
        EVAL,
        &[
            "--output-path",
            d.path().to_str().unwrap(),
            "--download-base-url",
            "http://127.0.0.1:9/none/",
        ],
    );
    assert!(
        e.contains("tic-datacomp_retrieval_evals_year2uids.pkl") && e.contains("put it at"),
        "{e}"
    );
}

fn pickle(v: &Value) -> Vec<u8> {
    serde_pickle::value_to_vec(v, SerOptions::new()).unwrap()
}

fn dict(items: Vec<(HashableValue, Value)>) -> Value {
    Value::Dict(items.into_iter().collect())
}

fn check_bad_pickle(retrieval: Value, dcnet: Value, must: &[&str]) {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("tic-datacomp_retrieval_evals_year2uids.pkl"),
        pickle(&retrieval),
    )
    .unwrap();
    std::fs::write(
        d.path().join("tic-datacompnet_year2uids.pkl"),
        pickle(&dcnet),
    )
    .unwrap();
    let out = d.path().join("out");
    let e = run_err(EVAL, &local_input_args(&out, d.path()));
    for m in must {
        assert!(e.contains(m), "error lacks {m:?}: {e}");
    }
    assert!(
        files_under(&out).is_empty(),
        "partial outputs left: {:?}",
        files_under(&out)
    );
}

#[test]
fn eval_uids_bad_pickles_are_named() {
    let good_uid = Value::String("0123456789abcdef0123456789abcdef".into());
    let ok_ret = dict(vec![(
        HashableValue::I64(2014),
        Value::List(vec![good_uid.clone()]),
    )]);
    let ok_dcn = dict(vec![(
        HashableValue::I64(2014),
        dict(vec![(
            HashableValue::String("n01440764".into()),
            Value::List(vec![good_uid.clone()]),
        )]),
    )]);
    // Non-hex uid.
    let bad = dict(vec![(
        HashableValue::I64(2015),
        Value::List(vec![
            good_uid.clone(),
            Value::String("zz23456789abcdef0123456789abcdef".into()),
        ]),
    )]);
    check_bad_pickle(
        bad,
        ok_dcn.clone(),
        &["retrieval_evals_year2uids.pkl", "2015", "[1]", "non-hex"],
    );
    // Wrong length.
    let bad = dict(vec![(
        HashableValue::I64(2016),
        Value::List(vec![Value::String("abc".into())]),
    )]);
    check_bad_pickle(bad, ok_dcn.clone(), &["2016", "32 hex"]);
    // Wrong structure: the DataCompNet pickle is flat.
    check_bad_pickle(
        ok_ret.clone(),
        ok_ret.clone(),
        &["tic-datacompnet_year2uids.pkl", "2014", "dict"],
    );
    // Not a pickle at all.
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("tic-datacomp_retrieval_evals_year2uids.pkl"),
        b"garbage",
    )
    .unwrap();
    std::fs::write(
        d.path().join("tic-datacompnet_year2uids.pkl"),
        pickle(&ok_dcn),
    )
    .unwrap();
    let e = run_err(EVAL, &local_input_args(&d.path().join("o"), d.path()));
    assert!(
        e.contains("retrieval_evals_year2uids.pkl") && e.contains("pickle"),
        "{e}"
    );
}

fn read_classes(p: &Path) -> HashMap<Uid, i64> {
    tic_shards::pickle::read_uid_classes(&std::fs::read(p).unwrap(), &p.display().to_string())
        .unwrap()
}

#[test]
fn datacompnet_classes_match_python() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let input = fixture("eval_uids/input");
    let stdout = run_ok(CLASSES, &local_input_args(&out, &input));
    let expected = fixture("datacompnet_classes/expected/uid2classid");
    let years: Vec<String> = files_under(&expected);
    assert_eq!(years, ["2014.pkl", "2015.pkl", "2017.pkl"]);
    for y in &years {
        let want = read_classes(&expected.join(y));
        let got = read_classes(&out.join("uid2classid").join(y));
        assert!(!want.is_empty() || y == "2015.pkl");
        assert_eq!(got, want, "uid2classid/{y}");
        assert!(
            stdout.contains(&format!("uid2classid/{}: {}", y, want.len())),
            "{stdout}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(out.join("classnames.txt")).unwrap(),
        tic_splits::imagenet::CLASSNAMES
    );
    // Python's own pickle.load reads what we wrote, to the same dict.
    for y in &years {
        let want = read_classes(&expected.join(y));
        let got = python_pickle_as_json(&out.join("uid2classid").join(y));
        let got: std::collections::BTreeMap<String, i64> = serde_json::from_str(&got).unwrap();
        assert_eq!(got.len(), want.len(), "{y}");
        for (uid, class) in &want {
            assert_eq!(got[&uid.to_string()], *class, "{y}: {uid}");
        }
    }
}

/// `pickle.load` of `path` by Python 3 (standard library only), dumped as JSON. CI has
/// python3 (it installs moto with it).
fn python_pickle_as_json(path: &std::path::Path) -> String {
    let o = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, pickle, sys; print(json.dumps(pickle.load(open(sys.argv[1], 'rb'))))",
        ])
        .arg(path)
        .output()
        .expect("python3 runs (it is needed by the S3 tests too)");
    assert!(
        o.status.success(),
        "pickle.load({}) failed: {}",
        path.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn datacompnet_unknown_synset_is_named() {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("datacompnet_classes/bad_synset.pkl"),
        d.path().join("tic-datacompnet_year2uids.pkl"),
    )
    .unwrap();
    let out = d.path().join("out");
    let e = run_err(CLASSES, &local_input_args(&out, d.path()));
    assert!(
        e.contains("n99999999")
            && e.contains("2014")
            && e.contains("tic-datacompnet_year2uids.pkl"),
        "{e}"
    );
    assert!(files_under(&out).is_empty());
}

#[test]
fn tasklists_byte_identical_to_pyyaml() {
    let cases: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(fixture("tasklist/cases.json")).unwrap()).unwrap();
    assert!(cases.len() >= 5);
    let d = tempfile::tempdir().unwrap();
    for (name, c) in cases {
        let out = d.path().join(format!("{name}.yml"));
        let mut args = vec![
            "--yaml-path",
            out.to_str().unwrap(),
            "--eval-tasks",
            c["eval_tasks"].as_str().unwrap(),
        ];
        if c["sample_eval"].as_bool().unwrap() {
            args.push("--sample-eval");
        }
        run_ok(TASKLIST, &args);
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            std::fs::read_to_string(fixture(&format!("tasklist/{name}.yml"))).unwrap(),
            "case {name}"
        );
        // Issue 16: `--yaml-path -` writes the same bytes to stdout (logs stay on stderr).
        args[1] = "-";
        let o = std::process::Command::new(TASKLIST)
            .args(&args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            String::from_utf8(o.stdout).unwrap(),
            std::fs::read_to_string(&out).unwrap(),
            "case {name} on stdout"
        );
    }
}

#[test]
fn tasklist_periods_from_data_dir() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    for f in [
        "eval/retrieval/2016.npy",
        "eval/retrieval/2018.npy",
        "monthly/201403.tar",
        "monthly/201911.tar",
        "notes.txt",
    ] {
        let p = data.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"").unwrap();
    }
    let out = d.path().join("t.yml");
    run_ok(
        TASKLIST,
        &[
            "--yaml-path",
            out.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--dataset",
            "redcaps",
            "--dataset-label",
            "RedCaps",
            "--eval-tasks",
            "retrieval/yearly,retrieval/monthly",
        ],
    );
    let y: serde_yaml::Mapping =
        serde_yaml::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let keys: Vec<&str> = y.keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "tic/redcaps/retrieval/monthly/201403",
            "tic/redcaps/retrieval/monthly/201911",
            "tic/redcaps/retrieval/yearly/2016",
            "tic/redcaps/retrieval/yearly/2018"
        ]
    );
    assert_eq!(
        y["tic/redcaps/retrieval/yearly/2016"]["name"].as_str(),
        Some("TiC-RedCaps-Retrieval-Yearly-2016")
    );
    let e = run_err(
        TASKLIST,
        &[
            "--yaml-path",
            out.to_str().unwrap(),
            "--data-dir",
            d.path().join("nope").to_str().unwrap(),
        ],
    );
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn synthetic_tic_pickles_load_in_python() {
    let d = tempfile::tempdir().unwrap();
    let args = tic_shards::synth::SynthArgs {
        out: d.path().to_path_buf(),
        seed: 5,
        num_samples: 80,
        num_shards: 1,
        first_year: 2014,
        num_years: 2,
        image_size: 16,
        eval_fraction: 0.2,
        noise: 12,
        jpeg_quality: 90,
        bench_subset: None,
        static_samples: 0,
        special_samples: 0,
        quiet: true,
    };
    tic_shards::synth::run(&args).unwrap();
    let uids = d.path().join("uids");
    let retrieval = uids.join("tic-datacomp_retrieval_evals_year2uids.pkl");
    let want =
        tic_shards::pickle::read_year_uids(&std::fs::read(&retrieval).unwrap(), "r").unwrap();
    let got: std::collections::BTreeMap<String, Vec<String>> =
        serde_json::from_str(&python_pickle_as_json(&retrieval)).unwrap();
    assert_eq!(got.len(), want.len());
    for (year, list) in &want {
        let strs: Vec<String> = list.iter().map(|u| u.to_string()).collect();
        assert_eq!(got[year], strs, "{year}");
    }
    let net = uids.join("tic-datacompnet_year2uids.pkl");
    let want =
        tic_shards::pickle::read_year_synset_uids(&std::fs::read(&net).unwrap(), "n").unwrap();
    let got: std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<String>>> =
        serde_json::from_str(&python_pickle_as_json(&net)).unwrap();
    assert_eq!(got.len(), want.len());
    for (year, synsets) in &want {
        for (synset, list) in synsets {
            let strs: Vec<String> = list.iter().map(|u| u.to_string()).collect();
            assert_eq!(got[year][synset], strs, "{year} {synset}");
        }
    }
}

/// Every binary's `-h` / `--help` opens with its own job and the script it replaces (issue 16).
#[test]
fn help_opens_with_each_binarys_job() {
    tic_testkit::check_help!(
        (
            "tic-datacompnet-classes",
            "generate_datacompnet_uid2classid.py"
        ),
        ("tic-eval-uids", "generate_eval_uids.py"),
        ("tic-redcaps-splits", "tic-redcaps/create_splits.py"),
        ("tic-restricted-classes", "imagenet_restricted_classes.py"),
        ("tic-synth-captions", "no original script"),
        ("tic-tasklist", "generate_tasklist.py"),
        ("tic-yfcc-splits", "tic-yfcc15m/create_splits.py"),
    );
}
