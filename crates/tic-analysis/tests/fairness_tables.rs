//! `tic_analysis::fairness` against DataComp's real `fairness_tables.py` (7fdb5c6): the
//! fixture `tests/fixtures/fairness/tables.json` (made by
//! `crates/tic-eval/tests/fixtures/make_fairface_fixtures.py`) holds small synthetic
//! `eval_results.jsonl` files (FairFace, UTKFace, values on the formatter's edges, an empty
//! race written as bare `NaN`, no record) and the script's stdout for each.
//!
//! Compared: [`fairness::script_output`] equals the script's whole stdout byte for byte (pandas'
//! layout included); and every cell of the report's Markdown tables is the script's cell text,
//! row by row (the Markdown framing — pipes, alignment row, row-label column — is the only
//! difference).

use serde_json::Value;
use tic_analysis::fairness;
use tic_eval::results::parse_results;

fn cases() -> Vec<Value> {
    let path = tic_testkit::fixture_dir("tic-analysis").join("fairness/tables.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["cases"].as_array().unwrap().clone()
}

#[test]
fn tables_equal_the_scripts_output() {
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let key = case["dataset"].as_str().unwrap();
        let jsonl = case["results_jsonl"].as_str().unwrap();
        let records = parse_results(jsonl, std::path::Path::new(name)).unwrap();
        // The script takes the first record of the key.
        let metrics = records.iter().find(|r| r.key == key).map(|r| &r.metrics);
        let ours = fairness::script_output(key, metrics).unwrap();
        let want = case["stdout"].as_str().unwrap();
        assert_eq!(
            ours, want,
            "{name}:\n{ours}\n---- fairness_tables.py:\n{want}"
        );

        // The Markdown tables carry the same cells, row by row.
        let Some(metrics) = metrics else { continue };
        let script_rows: Vec<Vec<&str>> = want
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(' '))
            .map(|l| l.split_whitespace().collect())
            .collect();
        let md_rows: Vec<Vec<String>> = fairness::tables(key, metrics)
            .unwrap()
            .iter()
            .flat_map(|t| {
                t.markdown()
                    .lines()
                    .skip(2)
                    .map(|l| {
                        let cells: Vec<String> =
                            l.split('|').map(|c| c.trim().to_string()).collect();
                        cells[2..cells.len() - 1].to_vec()
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(md_rows.len(), script_rows.len(), "{name}");
        for (md, py) in md_rows.iter().zip(&script_rows) {
            assert_eq!(md, &py[py.len() - md.len()..], "{name}");
        }
    }
}
