//! The `tic-eval` test fixture shared by the binary's end-to-end tests (`eval_cli.rs`,
//! `eval_mpi.rs`): evaluation sets built with the tic-shards tools, a tiny random model saved
//! as a training run, a task list.
// Each test crate uses a part of it.
#![allow(dead_code)]

use clap::Parser;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tic_model::preprocess;
use tic_shards::convert::{convert, DatasetType};
use tic_shards::reshard::{self, ReshardArgs};
use tic_shards::storage::Location;
use tic_shards::wds::TarSampleWriter;
use tic_shards::{pickle, Uid};
use tic_testkit::model::tiny_run;
use tic_testkit::shards::{pool_uids, reshard_args, synth_pool, write_subset};

/// A path as the `&str` argument the tools take.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Reshards `uids` of `pool` into `out` (optionally with a uid → class pickle) and converts it.
pub fn make_set(pool: &Path, out: &Path, uids: &[Uid], cls: Option<&Path>, kind: DatasetType) {
    let sub = out.with_extension("subset.npy");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    write_subset(&sub, uids);
    let mut argv = vec!["tic-reshard".to_string()];
    argv.extend(reshard_args(pool, out, &sub, 7));
    if let Some(c) = cls {
        argv.extend(["-c".to_string(), s(c).to_string()]);
    }
    reshard::run(&ReshardArgs::parse_from(argv)).unwrap();
    convert(&Location::local(out), kind).unwrap();
}

/// A built fixture (removed on drop unless built under `$TIC_EVAL_E2E_OUT`).
pub struct Fixture {
    _dir: tempfile::TempDir,
    /// Root folder of everything below.
    pub root: PathBuf,
    /// The `--data_dir`.
    pub data: PathBuf,
    /// The training run (`--train_output_dir`): model config and checkpoints.
    pub run_dir: PathBuf,
    /// The task list: two 2016 TiC sets, a 2017 set that does not exist, a static set.
    pub tasklist: PathBuf,
    /// uid → class of the DataCompNet set.
    pub classes: HashMap<Uid, i64>,
}

/// Number of classes of the DataCompNet set.
pub const NUM_CLASSES: usize = 6;

/// Pool of 60 samples; retrieval set 2016 (25 samples), DataCompNet set 2016 (20 samples with
/// classes 0..6, 6 class names × 2 templates), a hand-made static retrieval set with multi-line
/// captions and PNG+JPEG samples; tiny-test model as a training run.
///
/// `keep`: build under `$TIC_EVAL_E2E_OUT` (if set) instead of a temp folder, so that
/// `crates/tic-eval/tests/fixtures/check_tic_eval_dump.py` can check the result against CLIP_benchmark.
pub fn fixture(keep: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = match std::env::var_os("TIC_EVAL_E2E_OUT").filter(|_| keep) {
        Some(p) => {
            let p = PathBuf::from(p);
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            p
        }
        None => dir.path().to_path_buf(),
    };
    let pool = synth_pool(&root.join("syn"), 60, 2, 24);
    let uids: Vec<Uid> = pool_uids(&pool).iter().map(|x| x.0).collect();
    let data = root.join("data");
    let tic = data.join("tic/datacomp/yearly/eval");
    make_set(
        &pool,
        &tic.join("retrieval/2016"),
        &uids[..25],
        None,
        DatasetType::Retrieval,
    );
    let classes: HashMap<Uid, i64> = uids[30..50]
        .iter()
        .enumerate()
        .map(|(i, u)| (*u, ((i * 5) % NUM_CLASSES) as i64))
        .collect();
    let cls = root.join("classes.pkl");
    std::fs::write(&cls, pickle::write_uid_classes(classes.iter())).unwrap();
    let dcn = tic.join("datacompnet/2016");
    make_set(
        &pool,
        &dcn,
        &uids[30..50],
        Some(&cls),
        DatasetType::Classification,
    );
    // Fewer classes and templates than ImageNet's 1000 x 80 keep the test fast.
    std::fs::write(
        dcn.join("classnames.txt"),
        "tench\ngoldfish\ngreat white shark\ntiger shark\nhammerhead shark\nelectric ray\n",
    )
    .unwrap();
    std::fs::write(
        dcn.join("zeroshot_classification_templates.txt"),
        "a photo of a {c}.\nitap of the {c}.\n",
    )
    .unwrap();

    // Static retrieval set (DataComp layout: root/test/{nshards.txt,0.tar}).
    let ret = data.join("wds_retrieval-tiny_test");
    std::fs::create_dir_all(ret.join("test")).unwrap();
    let pool_imgs: Vec<Vec<u8>> = pool_uids(&pool)
        .into_iter()
        .take(4)
        .map(|(_, m)| m["jpg"].clone())
        .collect();
    let mut w = TarSampleWriter::new(Vec::new());
    let png = |b: &[u8]| {
        let img = preprocess::decode_rgb(b).unwrap();
        let mut out = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    };
    // s0: jpg + png (png is used), 3 captions (one blank line kept as an empty caption);
    // s1: no captions; s2: CRLF captions; s3: one caption.
    let caps = ["a red cat\r\n\nblue square", "", "x\r\ny", "last one"];
    for (i, cap) in caps.iter().enumerate() {
        let key = format!("s{i}");
        if i == 0 {
            w.append(&key, "jpg", &pool_imgs[1], 0).unwrap();
            w.append(&key, "png", &png(&pool_imgs[0]), 0).unwrap();
        } else {
            w.append(&key, "jpg", &pool_imgs[i], 0).unwrap();
        }
        w.append(&key, "txt", cap.as_bytes(), 0).unwrap();
    }
    std::fs::write(ret.join("test/0.tar"), w.finish().unwrap()).unwrap();
    std::fs::write(ret.join("test/nshards.txt"), "1\n").unwrap();
    std::fs::write(ret.join("dataset_type.txt"), "retrieval\n").unwrap();

    // The model: a training run with model_config.json and checkpoints.
    let run_dir = root.join("run/exp");
    tiny_run(&run_dir, &[("epoch_1", 1), ("epoch_latest", 7)]);

    let tasklist = root.join("tasklist.yml");
    std::fs::write(
        &tasklist,
        "tic/datacomp/retrieval/yearly/2016:\n  name: TiC-DataComp-Retrieval-Yearly-2016\n  \
         main_metric: mean_recall@1\n\
         tic/datacomp/datacompnet/yearly/2016:\n  name: TiC-DataCompNet-Yearly-2016\n  num_classes: 6\n\
         tic/datacomp/retrieval/yearly/2017:\n  name: TiC-DataComp-Retrieval-Yearly-2017\n  \
         main_metric: mean_recall@1\n\
         retrieval/tiny:\n  name: Tiny retrieval\n  main_metric: mean_recall@1\n",
    )
    .unwrap();
    Fixture {
        _dir: dir,
        root,
        data,
        run_dir,
        tasklist,
        classes,
    }
}
