//! End to end: `tic-eval` on tiny DataComp-layout WILDS and fairness sets whose samples carry
//! `npy` metadata (FMoW, Dollar Street, GeoDE), and a Camelyon17 set with a sample missing it.
//! The records get DataComp's group fields and a non-null main metric; empty groups are bare
//! `NaN` in `eval_results.jsonl`, as DataComp's `evaluate.py` writes them; the sample without
//! metadata fails its task, named by shard and key.

mod common;

use common::{fixture, s};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use tic_shards::wds::TarSampleWriter;
use tic_testkit::shards::shard_samples;

const BIN: &str = env!("CARGO_BIN_EXE_tic-eval");

/// `np.save` of an int64 vector.
fn npy_i64(dir: &Path, v: &[i64]) -> Vec<u8> {
    let p = dir.join("meta.npy");
    npyz::to_file_1d(&p, v.iter().copied()).unwrap();
    std::fs::read(p).unwrap()
}

/// A classification set in DataComp's layout (`root/test/0.tar`): one sample per metadata row
/// (`None`: no `npy` member), images taken round robin from `jpgs`, class `i % classes`.
fn write_set(root: &Path, jpgs: &[Vec<u8>], classes: usize, rows: &[Option<Vec<i64>>]) {
    std::fs::create_dir_all(root.join("test")).unwrap();
    let mut w = TarSampleWriter::new(Vec::new());
    for (i, row) in rows.iter().enumerate() {
        let key = format!("s{i:03}");
        w.append(&key, "cls", (i % classes).to_string().as_bytes(), 0)
            .unwrap();
        w.append(&key, "jpg", &jpgs[i % jpgs.len()], 0).unwrap();
        if let Some(row) = row {
            w.append(&key, "npy", &npy_i64(root, row), 0).unwrap();
        }
    }
    std::fs::write(root.join("test/0.tar"), w.finish().unwrap()).unwrap();
    std::fs::write(root.join("test/nshards.txt"), "1\n").unwrap();
    std::fs::write(root.join("dataset_type.txt"), "classification\n").unwrap();
    let names: String = (0..classes).map(|c| format!("thing {c}\n")).collect();
    std::fs::write(root.join("classnames.txt"), names).unwrap();
    std::fs::write(
        root.join("zeroshot_classification_templates.txt"),
        "a photo of a {c}.\n",
    )
    .unwrap();
}

#[test]
fn wilds_and_fairness_records_carry_group_metrics() {
    let f = fixture(false);
    let dcn = f
        .data
        .join("tic/datacomp/yearly/eval/datacompnet/2016/0.tar");
    let jpgs: Vec<Vec<u8>> = shard_samples(&std::fs::read(&dcn).unwrap(), "dcn")
        .into_iter()
        .map(|(_, m)| m["jpg"].clone())
        .collect();
    let rows = |n: usize, row: &dyn Fn(i64) -> Vec<i64>| -> Vec<Option<Vec<i64>>> {
        (0..n as i64).map(|i| Some(row(i))).collect()
    };
    // FMoW: region, year, y; years 1 and 3 only (year 0 and 2 empty), region 5 ("Other").
    write_set(
        &f.data.join("wds_wilds-fmow_test"),
        &jpgs,
        6,
        &rows(12, &|i| vec![i % 6, 1 + 2 * (i % 2), 0]),
    );
    // Dollar Street: income_ds, income_meta, region.
    write_set(
        &f.data.join("wds_dollar_street_test"),
        &jpgs,
        6,
        &rows(10, &|i| vec![i % 4, 7, i % 3]),
    );
    // GeoDE: region, country.
    write_set(
        &f.data.join("wds_geode_test"),
        &jpgs,
        4,
        &rows(9, &|i| vec![i % 3, 40]),
    );
    // Camelyon17 with sample s002 lacking its metadata.
    let mut cam = rows(5, &|i| vec![0, i, 0]);
    cam[2] = None;
    write_set(&f.data.join("wds_wilds-camelyon17_test"), &jpgs, 2, &cam);
    let tasklist = f.root.join("groups.yml");
    std::fs::write(
        &tasklist,
        "wilds/fmow:\n  name: FMoW\n  main_metric: acc_worst_region\n\
         fairness/dollar_street:\n  name: Dollar Street\n  main_metric: acc_top5_wg\n\
         fairness/geode:\n  name: GeoDE\n  main_metric: acc_wg\n\
         wilds/camelyon17:\n  name: Camelyon17\n",
    )
    .unwrap();
    let out = f.root.join("out");
    let o = Command::new(BIN)
        .args(["--train_output_dir", s(&f.run_dir), "--output_dir", s(&out)])
        .args(["--data_dir", s(&f.data), "--tasklist", s(&tasklist), "-q"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("wds_wilds-camelyon17_test/test/0.tar")
            && err.contains("s002")
            && err.contains("no `npy` metadata"),
        "{err}"
    );

    let text = std::fs::read_to_string(out.join("eval_results.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    // Empty groups: bare NaN with a 0.0 count, as Python's json.dumps writes them.
    assert!(
        lines[0].contains("\"acc_year:0\": NaN, \"count_year:0\": 0.0, \"acc_year:1\": "),
        "{}",
        lines[0]
    );
    let expect: [(&str, &[&str]); 3] = [
        (
            "wilds/fmow",
            &[
                "acc1",
                "acc_avg",
                "acc_year:3",
                "acc_worst_year",
                "acc_region:5",
                "count_region:5",
                "acc_worst_region",
            ],
        ),
        (
            "fairness/dollar_street",
            &[
                "acc5",
                "acc_top5_avg",
                "acc_top5_income_ds:3",
                "count_income_ds:3",
                "acc_top5_wg",
            ],
        ),
        (
            "fairness/geode",
            &[
                "mean_per_class_recall",
                "acc_avg",
                "acc_region:2",
                "count_region:2",
                "acc_wg",
            ],
        ),
    ];
    for (line, (key, fields)) in lines.iter().zip(expect) {
        let rec: Value = serde_json::from_str(&line.replace("NaN", "null")).unwrap();
        assert_eq!(rec["key"], key);
        let m = &rec["metrics"];
        let main = m["main_metric"]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: {line}"));
        assert!((0.0..=1.0).contains(&main), "{key}: {main}");
        for field in fields {
            assert!(m[field].is_number(), "{key}: {field} in {line}");
        }
    }
    let fmow: Value = serde_json::from_str(&lines[0].replace("NaN", "null")).unwrap();
    assert_eq!(fmow["metrics"]["count_region:5"], 2.0);
    assert_eq!(fmow["metrics"]["count_year:3"], 6.0);
}
