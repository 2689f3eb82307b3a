//! DataComp's Hugging Face sets read from `hf_cache` folders that the real `datasets` wrote
//! (`fixtures/make_hf_fixtures.py`: `fixtures/hf/hf_cache_old` by DataComp's pinned 2.8.0,
//! `fixtures/hf/hf_cache_new` by 5.2, sharded MSCOCO included): both layouts give the rows the
//! generator wrote; WinoGAViL scored on them equals DataComp's own `evaluate_winogavil_dataset`
//! to 1e-6; Flickr read from `hf_cache` scores as the same set read as WebDataset; missing and
//! malformed caches are failed tasks naming the path; `tic-eval` on the three tasks writes
//! records with DataComp's fields.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use tic_eval::hf_cache::{
    find_cached, for_each_retrieval_row, for_each_winogavil_row, HfSet, RetrievalRow, WinogavilRow,
};
use tic_eval::metrics::winogavil::{clip_prompt, score_instance, WinogavilMetrics};
use tic_shards::wds::TarSampleWriter;
use tic_testkit::fixture_dir;

const BIN: &str = env!("CARGO_BIN_EXE_tic-eval");
const SETS: [HfSet; 3] = [HfSet::Flickr, HfSet::Mscoco, HfSet::Winogavil];

fn hf_dir() -> PathBuf {
    fixture_dir("tic-eval").join("hf")
}

/// The data folder of a layout (`old` / `new`): it holds `hf_cache/`.
fn layout(name: &str) -> PathBuf {
    hf_dir().join(format!("hf_cache_{name}"))
}

fn expected() -> Value {
    serde_json::from_slice(&std::fs::read(hf_dir().join("expected.json")).unwrap()).unwrap()
}

/// The id in an image's first pixel (`make_hf_fixtures.tiny_image`; JPEG: within rounding).
fn image_id(bytes: &[u8]) -> u64 {
    let img = image::load_from_memory(bytes).unwrap().to_rgb8();
    let p = img.get_pixel(0, 0).0;
    p[0] as u64 + 256 * p[1] as u64
}

fn retrieval_rows(data: &Path, set: HfSet) -> Vec<RetrievalRow> {
    let cached = find_cached(data, set).unwrap();
    let mut rows = Vec::new();
    let n = for_each_retrieval_row(&cached, &mut |r| {
        rows.push(r);
        true
    })
    .unwrap();
    assert_eq!(n, rows.len());
    rows
}

fn wino_rows(data: &Path) -> Vec<WinogavilRow> {
    let cached = find_cached(data, HfSet::Winogavil).unwrap();
    let mut rows = Vec::new();
    for_each_winogavil_row(&cached, &mut |r| {
        rows.push(r);
        true
    })
    .unwrap();
    rows
}

#[test]
fn both_layouts_give_the_generated_rows() {
    let exp = expected();
    for l in ["old", "new"] {
        // The files found are those `datasets` reported as the set's cache files.
        for set in SETS {
            let cached = find_cached(&layout(l), set).unwrap();
            let files: Vec<String> = cached
                .files
                .iter()
                .map(|f| f.strip_prefix(layout(l)).unwrap().display().to_string())
                .collect();
            assert_eq!(
                Value::from(files),
                exp["layouts"][l]["sets"][set.dataset_name()]["files"],
                "{l} {set:?}"
            );
        }
        for set in [HfSet::Flickr, HfSet::Mscoco] {
            let rows = retrieval_rows(&layout(l), set);
            let want = exp["rows"][set.dataset_name()].as_array().unwrap();
            assert_eq!(rows.len(), want.len());
            for (r, w) in rows.iter().zip(want) {
                assert_eq!(
                    Value::from(r.captions.clone()),
                    w["caption"],
                    "{}",
                    r.origin
                );
                // PNG (Flickr) keeps the id exactly; a flat JPEG (MSCOCO) within rounding.
                let slack = if set == HfSet::Mscoco { 2 } else { 0 };
                let id = w["image_id"].as_u64().unwrap();
                assert!(image_id(&r.image).abs_diff(id) <= slack, "{}", r.origin);
            }
        }
        let rows = wino_rows(&layout(l));
        let want = exp["rows"]["winogavil"].as_array().unwrap();
        assert_eq!(rows.len(), want.len());
        for (r, w) in rows.iter().zip(want) {
            assert_eq!(r.cue, w["cue"].as_str().unwrap());
            assert_eq!(Value::from(r.candidates.clone()), w["candidates"]);
            assert_eq!(Value::from(r.associations.clone()), w["associations"]);
            assert_eq!(r.images.len() as u64, w["num_images"].as_u64().unwrap());
        }
    }
    // And the two layouts hold identical rows (image bytes included).
    for set in [HfSet::Flickr, HfSet::Mscoco] {
        let strip = |v: Vec<RetrievalRow>| -> Vec<_> {
            v.into_iter().map(|r| (r.image, r.captions)).collect()
        };
        assert_eq!(
            strip(retrieval_rows(&layout("old"), set)),
            strip(retrieval_rows(&layout("new"), set))
        );
    }
    let strip = |v: Vec<WinogavilRow>| -> Vec<_> {
        v.into_iter()
            .map(|r| (r.cue, r.candidates, r.associations, r.images))
            .collect()
    };
    assert_eq!(
        strip(wino_rows(&layout("old"))),
        strip(wino_rows(&layout("new")))
    );
}

#[test]
fn winogavil_equals_datacomps_wino_eval() {
    let exp = expected();
    for l in ["old", "new"] {
        let rows = wino_rows(&layout(l));
        for case in exp["winogavil"].as_array().unwrap() {
            let mut scores = Vec::new();
            for (i, row) in rows.iter().enumerate() {
                let prompt = clip_prompt(&row.cue).unwrap();
                assert_eq!(prompt, case["prompts"][i].as_str().unwrap());
                let t = tic_testkit::fixtures::json_f32s(&case["prompt_embeddings"][&prompt]);
                let sims: Vec<f32> = row
                    .images
                    .iter()
                    .map(|b| {
                        let v = tic_testkit::fixtures::json_f32s(
                            &case["image_embeddings"][image_id(b).to_string()],
                        );
                        t.iter().zip(&v).map(|(a, b)| a * b).sum()
                    })
                    .collect();
                scores.push(score_instance(&sims, &row.truth()));
            }
            let m = WinogavilMetrics::from_scores(&scores);
            let want = case["expected"].as_object().unwrap();
            assert_eq!(m.fields.len(), want.len());
            for (name, v) in &m.fields {
                let w = want[*name].as_f64().unwrap();
                assert!(
                    (v.unwrap() - w).abs() < 1e-6,
                    "{l} seed {}: {name} {v:?} vs DataComp's {w}",
                    case["seed"]
                );
            }
        }
    }
}

/// Copies folder `from` to `to`, recursively.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// A tiny random model as a training run; returns the run folder.
fn tiny_run(root: &Path) -> PathBuf {
    let run = root.join("run");
    tic_testkit::model::tiny_run(&run, &[("epoch_latest", 3)]);
    run
}

const TASKLIST: &str = "\
retrieval/flickr_1k_test_image_text_retrieval:\n  name: Flickr\n  main_metric: mean_recall@1\n\
retrieval/mscoco_2014_5k_test_image_text_retrieval:\n  name: MSCOCO\n  main_metric: mean_recall@1\n\
misc/winogavil:\n  name: WinoGAViL\n  main_metric: jaccard_score_10-12\n";

/// Runs tic-eval on `data`; returns (exit status, records by key, stderr).
fn eval(root: &Path, run: &Path, data: &Path, out: &str) -> (i32, Vec<Value>, String) {
    let tasklist = root.join("tasklist.yml");
    std::fs::write(&tasklist, TASKLIST).unwrap();
    let out = root.join(out);
    let o = Command::new(BIN)
        .args(["--train_output_dir", run.to_str().unwrap(), "--output_dir"])
        .arg(&out)
        .args(["--data_dir", data.to_str().unwrap(), "--tasklist"])
        .arg(&tasklist)
        .args(["--batch_size", "4", "-q"])
        .output()
        .unwrap();
    let recs = std::fs::read_to_string(out.join("eval_results.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        o.status.code().unwrap_or(-1),
        recs,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn record<'a>(recs: &'a [Value], key: &str) -> &'a Value {
    recs.iter()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("no record of {key}"))
}

#[test]
fn tic_eval_on_the_three_hf_tasks_and_flickr_as_webdataset() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let run = tiny_run(root);
    for l in ["old", "new"] {
        let (code, recs, err) = eval(root, &run, &layout(l), &format!("out_{l}"));
        assert_eq!(code, 0, "{err}");
        assert_eq!(recs.len(), 3);
        for key in [
            "retrieval/flickr_1k_test_image_text_retrieval",
            "retrieval/mscoco_2014_5k_test_image_text_retrieval",
        ] {
            let m = &record(&recs, key)["metrics"];
            for k in [1, 5, 10] {
                assert!(m[format!("image_retrieval_recall@{k}")].is_number(), "{m}");
                assert!(m[format!("text_retrieval_recall@{k}")].is_number(), "{m}");
            }
            assert_eq!(m["main_metric"], m["mean_recall@1"]);
        }
        let w = &record(&recs, "misc/winogavil")["metrics"];
        for f in [
            "avg_jaccard_score",
            "jaccard_score_5",
            "jaccard_score_6",
            "jaccard_score_10",
            "jaccard_score_12",
            "jaccard_score_5-6",
            "jaccard_score_10-12",
        ] {
            let v = w[f].as_f64().unwrap_or_else(|| panic!("{f} in {w}"));
            assert!((0.0..=1.0).contains(&v));
        }
        assert_eq!(w["main_metric"], w["jaccard_score_10-12"]);
    }

    // The Flickr rows as a DataComp WebDataset set (captions joined by newlines), no hf_cache.
    let wds = root.join("wds_data/wds_retrieval-flickr_1k_test_image_text_retrieval_test");
    std::fs::create_dir_all(wds.join("test")).unwrap();
    let mut w = TarSampleWriter::new(Vec::new());
    for (i, r) in retrieval_rows(&layout("new"), HfSet::Flickr)
        .iter()
        .enumerate()
    {
        let key = format!("s{i:03}");
        w.append(&key, "png", &r.image, 0).unwrap();
        w.append(&key, "txt", r.captions.join("\n").as_bytes(), 0)
            .unwrap();
    }
    std::fs::write(wds.join("test/0.tar"), w.finish().unwrap()).unwrap();
    std::fs::write(wds.join("test/nshards.txt"), "1\n").unwrap();
    let (_, wds_recs, _) = eval(root, &run, &root.join("wds_data"), "out_wds");
    let (_, hf_recs, _) = eval(root, &run, &layout("new"), "out_new");
    let key = "retrieval/flickr_1k_test_image_text_retrieval";
    assert_eq!(
        record(&wds_recs, key)["metrics"],
        record(&hf_recs, key)["metrics"]
    );
    // The WebDataset run had no hf_cache: WinoGAViL failed naming where it looked.
    assert!(wds_recs.iter().all(|r| r["key"] != "misc/winogavil"));

    // hf_cache wins when both exist (DataComp reads these keys from hf_cache only).
    copy_tree(
        &layout("new").join("hf_cache"),
        &root.join("wds_data/hf_cache"),
    );
    let (code, recs, err) = eval(root, &run, &root.join("wds_data"), "out_both");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        record(&recs, key)["metrics"],
        record(&hf_recs, key)["metrics"]
    );
}

#[test]
fn missing_and_malformed_caches_fail_their_task_naming_the_path() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let run = tiny_run(root);
    // No hf_cache at all: every task fails, naming the cache folder.
    std::fs::create_dir_all(root.join("empty")).unwrap();
    let (code, recs, err) = eval(root, &run, &root.join("empty"), "out_empty");
    assert_eq!(code, 1);
    assert!(recs.is_empty());
    let cache = root.join("empty/hf_cache").display().to_string();
    assert!(err.contains(&cache), "{err}");

    // A truncated WinoGAViL Arrow file, a row count that disagrees with dataset_info.json:
    // those tasks fail naming the file / folder, MSCOCO is still recorded.
    let data = root.join("bad");
    copy_tree(&layout("old"), &data);
    let wino = find_cached(&data, HfSet::Winogavil).unwrap();
    let f = &wino.files[0];
    let bytes = std::fs::read(f).unwrap();
    std::fs::write(f, &bytes[..bytes.len() / 2]).unwrap();
    let flickr = find_cached(&data, HfSet::Flickr).unwrap();
    let info = flickr.dir.join("dataset_info.json");
    let text = std::fs::read_to_string(&info).unwrap();
    std::fs::write(
        &info,
        text.replace("\"num_examples\": 7", "\"num_examples\": 8"),
    )
    .unwrap();
    let (code, recs, err) = eval(root, &run, &data, "out_bad");
    assert_eq!(code, 1);
    assert_eq!(recs.len(), 1, "{err}");
    assert_eq!(
        recs[0]["key"],
        "retrieval/mscoco_2014_5k_test_image_text_retrieval"
    );
    assert!(err.contains(&f.display().to_string()), "{err}");
    assert!(
        err.contains(&flickr.dir.display().to_string()) && err.contains("8 rows"),
        "{err}"
    );
}

#[test]
fn several_builds_newest_wins_and_incomplete_shards_are_named() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    copy_tree(&layout("old"), &data);
    copy_tree(&layout("new"), &data);
    // Both layouts cached: the newest dataset_info.json wins.
    let old = find_cached(&layout("old"), HfSet::Mscoco).unwrap();
    let new = find_cached(&layout("new"), HfSet::Mscoco).unwrap();
    let info_of = |c: &tic_eval::hf_cache::CachedSet| {
        data.join(
            c.dir
                .strip_prefix(layout(if c.files.len() == 1 { "old" } else { "new" }))
                .unwrap(),
        )
        .join("dataset_info.json")
    };
    let touch = |p: &Path, secs: u64| {
        let f = std::fs::File::options().write(true).open(p).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
            .unwrap();
    };
    touch(&info_of(&old), 2_000_000_000);
    touch(&info_of(&new), 1_000_000_000);
    assert_eq!(find_cached(&data, HfSet::Mscoco).unwrap().files.len(), 1);
    touch(&info_of(&old), 1_000_000_000);
    touch(&info_of(&new), 2_000_000_000);
    let chosen = find_cached(&data, HfSet::Mscoco).unwrap();
    assert_eq!(chosen.files.len(), 2);
    // A missing shard is an error naming the folder and the shards found.
    std::fs::remove_file(&chosen.files[1]).unwrap();
    let e = format!("{:#}", find_cached(&data, HfSet::Mscoco).unwrap_err());
    assert!(
        e.contains(&chosen.dir.display().to_string()) && e.contains("00000-of-00002"),
        "{e}"
    );
}

#[test]
fn tic_synths_cache_round_trips_through_the_reader() {
    use clap::Parser;
    use tic_shards::hf_cache_layout::SetRows;
    use tic_shards::synth::{hf_sets, SynthArgs};
    let out = tempfile::tempdir().unwrap();
    let special = out.path().join("special");
    let a = SynthArgs::parse_from([
        "tic-synth",
        "--out",
        out.path().to_str().unwrap(),
        "--special-samples",
        "10",
        "--image-size",
        "16",
    ]);
    let dirs = hf_sets::write_hf_sets(&a, &special).unwrap();
    for ((set, rows), dir) in hf_sets::hf_rows(&a).unwrap().into_iter().zip(dirs) {
        assert_eq!(find_cached(&special, set).unwrap().dir, dir, "{set:?}");
        match rows {
            SetRows::Retrieval(want) => {
                let got = retrieval_rows(&special, set);
                assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!((&g.image, &g.captions), (&w.image.bytes, &w.captions));
                }
            }
            SetRows::Winogavil(want) => {
                let got = wino_rows(&special);
                assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    let images: Vec<&Vec<u8>> =
                        w.candidate_images.iter().map(|c| &c.bytes).collect();
                    assert_eq!(
                        (&g.cue, &g.candidates, &g.associations),
                        (&w.cue, &w.candidates, &w.associations)
                    );
                    assert_eq!(g.images.iter().collect::<Vec<_>>(), images);
                    assert!(g.truth().iter().any(|&t| t) && !g.truth().iter().all(|&t| t));
                }
            }
        }
    }
}
