//! tic-restricted-classes against nltk's WordNet reader over the same WordNet 3.0 database.
//! Needs Debian's `wordnet-base` (apt-get install wordnet-base): fails, not skips, without it.
mod common;
use common::*;
use std::path::Path;
use tic_splits::wordnet::{WordNet, DEFAULT_DIR, POS};

const BIN: &str = env!("CARGO_BIN_EXE_tic-restricted-classes");

/// tic-restricted-classes' arguments: `--output-path OUT --wordnet-dir WORDNET`, then `extra`.
fn restricted_args<'a>(out: &'a Path, wordnet: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--output-path",
        out.to_str().unwrap(),
        "--wordnet-dir",
        wordnet,
    ];
    args.extend_from_slice(extra);
    args
}

fn wordnet_dir() -> String {
    let dir = std::env::var("TIC_WORDNET_DIR").unwrap_or_else(|_| DEFAULT_DIR.to_string());
    assert!(
        std::path::Path::new(&dir).join("data.noun").is_file(),
        "WordNet 3.0 database missing at {dir}: install it with `apt-get install -y wordnet-base` \
         (or set TIC_WORDNET_DIR to a folder holding index.*, data.*, *.exc)"
    );
    dir
}

type Groups = serde_json::Map<String, serde_json::Value>;

fn load(rel: &str) -> Groups {
    serde_json::from_slice(&std::fs::read(fixture(rel)).unwrap()).unwrap()
}

#[test]
fn default_groups_match_nltk() {
    let dir = wordnet_dir();
    let d = tempfile::tempdir().unwrap();
    let stdout = run_ok(BIN, &restricted_args(d.path(), &dir, &[]));
    let want = load("restricted/default.json");
    let got: Groups =
        serde_json::from_slice(&std::fs::read(d.path().join("restricted_classes.json")).unwrap())
            .unwrap();
    assert_eq!(got, want);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        want["dog"].as_array().unwrap().len(),
        118,
        "nltk's dog group"
    );
    // The plain print: one Python list per group, in root order.
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 11);
    let ids: Vec<i64> = want["device"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(lines[0], tic_splits::restricted::python_list(&ids));
}

#[test]
fn morphology_and_other_parts_of_speech_match_nltk() {
    let dir = wordnet_dir();
    let d = tempfile::tempdir().unwrap();
    let want = load("restricted/extra.json");
    let roots: Vec<&str> = want.keys().map(String::as_str).collect();
    let roots = roots.join(",");
    run_ok(BIN, &restricted_args(d.path(), &dir, &["--roots", &roots]));
    let got: Groups =
        serde_json::from_slice(&std::fs::read(d.path().join("restricted_classes.json")).unwrap())
            .unwrap();
    assert_eq!(got, want);

    let wn = WordNet::open(&dir).unwrap();
    for (root, syns) in load("restricted/synsets.json") {
        let want: Vec<(String, u64)> = syns
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().replace('s', "a"),
                    p[1].as_u64().unwrap(),
                )
            })
            .collect();
        let got: Vec<(String, u64)> = wn
            .synsets(&root)
            .into_iter()
            .map(|s| (POS[s.pos].0.to_string(), s.offset))
            .collect();
        assert_eq!(got, want, "wn.synsets({root:?})");
    }
}

#[test]
fn missing_database_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let nowhere = d.path().join("nowhere");
    let e = run_err(
        BIN,
        &restricted_args(d.path(), nowhere.to_str().unwrap(), &[]),
    );
    assert!(e.contains("nowhere") && e.contains("wordnet-base"), "{e}");
    assert!(files_under(d.path()).is_empty());
}
