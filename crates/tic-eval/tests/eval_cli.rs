//! End-to-end tests of the `tic-eval` binary: eval sets built with the tic-shards tools
//! (synthetic pool → resharder with a subset and a class file → CLIP_benchmark layout), a tiny
//! random model saved as a training run, a task list; then the binary's records, resume, dumps
//! and bad-input handling.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{fixture, s, Fixture, NUM_CLASSES};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use tic_eval::evalset::splitlines;
use tic_eval::matrix::Matrix;
use tic_eval::metrics::{retrieval, ZeroShotClassifier};
use tic_model::{checkpoint, preprocess, Clip, ClipConfig, Tokenizer};
use tic_shards::storage::Location;
use tic_shards::wds::TarSampleWriter;
use tic_shards::Uid;
use tic_testkit::fixture_dir;
use tic_testkit::shards::{shard_samples, Members};

const BIN: &str = env!("CARGO_BIN_EXE_tic-eval");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// Runs `tic-eval MODEL_FLAG MODEL [--output_dir OUT] --data_dir DATA --tasklist TASKLIST`
/// (the fixture's task list), then `extra`.
fn eval(f: &Fixture, model: [&str; 2], out: Option<&Path>, data: &str, extra: &[&str]) -> Output {
    let mut args = model.to_vec();
    if let Some(out) = out {
        args.extend(["--output_dir", s(out)]);
    }
    args.extend(["--data_dir", data, "--tasklist", s(&f.tasklist)]);
    args.extend_from_slice(extra);
    run(&args)
}

/// [`eval`] of the fixture's training run (`--train_output_dir`) on the fixture's data.
fn eval_run(f: &Fixture, out: Option<&Path>, extra: &[&str]) -> Output {
    eval(
        f,
        ["--train_output_dir", s(&f.run_dir)],
        out,
        s(&f.data),
        extra,
    )
}

/// The JSON file at `path`.
fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Samples of a converted set in CLIP_benchmark order: shard 0.., tar order.
fn set_samples(dir: &Path) -> Vec<Members> {
    let n: usize = std::fs::read_to_string(dir.join("nshards.txt"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut out = Vec::new();
    for i in 0..n {
        let data = std::fs::read(dir.join(format!("{i}.tar"))).unwrap();
        out.extend(shard_samples(&data, "x").into_iter().map(|(_, m)| m));
    }
    out
}

fn read_npy(path: &Path) -> Matrix {
    let bytes = std::fs::read(path).unwrap();
    let arr = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = arr.shape().to_vec();
    let data: Vec<f32> = arr.into_vec().unwrap();
    Matrix::new(shape[0] as usize, shape[1] as usize, data).unwrap()
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The model of the run, loaded independently of the binary.
fn model(f: &Fixture) -> Clip {
    let cfg = ClipConfig::builtin("tiny-test").unwrap();
    checkpoint::load_clip(
        &cfg,
        &f.run_dir.join("checkpoints/epoch_latest.safetensors"),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap()
}

fn encode_image(m: &Clip, bytes: &[u8]) -> Vec<f32> {
    let img = preprocess::decode_rgb(bytes).unwrap();
    let px = Tensor::from_vec(
        preprocess::eval_transform(&img, 32),
        (1, 3, 32, 32),
        &Device::Cpu,
    )
    .unwrap();
    m.encode_image_normalized(&px)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn encode_text(m: &Clip, text: &str) -> Vec<f32> {
    let ids = Tokenizer::shared()
        .tokenize_tensor(&[text], &Device::Cpu)
        .unwrap();
    m.encode_text_normalized(&ids)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn assert_close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    let d = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(d < 1e-5, "{what}: max diff {d}");
}

#[test]
fn evaluates_records_resumes_and_reports_failures() {
    let f = fixture(true);
    let dump = f.root.join("dump");
    let extra = [
        "--batch_size",
        "4",
        "--num_workers",
        "2",
        "--dump-embeddings",
        s(&dump),
        "-q",
    ];
    let o = eval_run(&f, None, &extra);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    // The 2017 set does not exist: that task fails, the others are recorded, exit status 1.
    assert_eq!(o.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("retrieval/2017") && stderr.contains("does not exist"),
        "{stderr}"
    );
    assert!(stdout.contains("FAILED"), "{stdout}");
    let results = f.run_dir.join("eval_results.jsonl");
    let recs = records(&results);
    let keys: Vec<&str> = recs.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "tic/datacomp/retrieval/yearly/2016",
            "tic/datacomp/datacompnet/yearly/2016",
            "retrieval/tiny"
        ]
    );
    let failures = std::fs::read_to_string(f.run_dir.join("eval_failures.jsonl")).unwrap();
    assert!(failures.contains("tic/datacomp/retrieval/yearly/2017"));

    // Retrieval record: DataComp's metric names; main metric = mean_recall@1.
    let r = &recs[0]["metrics"];
    assert_eq!(recs[0]["dataset"], "TiC-DataComp-Retrieval-Yearly-2016");
    for k in [1, 5, 10] {
        assert!(r[format!("image_retrieval_recall@{k}")].is_number());
        assert!(r[format!("text_retrieval_recall@{k}")].is_number());
    }
    assert_eq!(r["main_metric"], r["mean_recall@1"]);
    // Classification record: acc1, acc5, mean_per_class_recall; main = acc1.
    let c = &recs[1]["metrics"];
    assert!(c["acc5"].is_number() && c["mean_per_class_recall"].is_number());
    assert_eq!(c["main_metric"], c["acc1"]);

    // --- Pipeline parity: labels, captions and order, and the embeddings themselves. ---
    let m = model(&f);
    let tic = f.data.join("tic/datacomp/yearly/eval");
    // DataCompNet: targets are the classes of the pickled uid -> class map, in set order.
    let dcn = dump.join("tic_datacomp_datacompnet_yearly_2016");
    let labels = read_json(&dcn.join("labels.json"));
    let samples = set_samples(&tic.join("datacompnet/2016"));
    assert_eq!(samples.len(), 20);
    let want: Vec<i64> = samples
        .iter()
        .map(|m| {
            let j: Value = serde_json::from_slice(&m["json"]).unwrap();
            let cls: i64 = String::from_utf8_lossy(&m["cls"]).trim().parse().unwrap();
            assert_eq!(
                f.classes[&Uid::parse(j["uid"].as_str().unwrap()).unwrap()],
                cls
            );
            cls
        })
        .collect();
    let got: Vec<i64> = labels["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(got, want);
    let img = read_npy(&dcn.join("image_features.npy"));
    for (i, smp) in samples.iter().enumerate() {
        assert_close(
            img.row(i),
            &encode_image(&m, &smp["jpg"]),
            "datacompnet image",
        );
    }
    let txt = read_npy(&dcn.join("text_features.npy"));
    assert_eq!(txt.rows(), NUM_CLASSES * 2);
    assert_close(
        txt.row(0),
        &encode_text(&m, "a photo of a tench."),
        "prompt 0",
    );
    assert_close(
        txt.row(5),
        &encode_text(&m, "itap of the great white shark."),
        "prompt 5",
    );
    // Metrics from the dumped embeddings (the metric code is checked against CLIP_benchmark
    // by tests/parity.rs) equal the record.
    let targets: Vec<usize> = want.iter().map(|&c| c as usize).collect();
    let clf = ZeroShotClassifier::from_flat(&txt, 2).unwrap();
    let cm = clf.evaluate(&img, &targets).unwrap().to_json();
    for k in ["acc1", "acc5", "mean_per_class_recall"] {
        assert_eq!(cm[k], c[k], "{k}");
    }

    // Static retrieval: png preferred over jpg; captions split like str.splitlines.
    let tiny = dump.join("retrieval_tiny");
    let labels = read_json(&tiny.join("labels.json"));
    assert_eq!(
        labels["captions"],
        serde_json::json!(["a red cat", "", "blue square", "x", "y", "last one"])
    );
    assert_eq!(
        labels["text_image_index"],
        serde_json::json!([0, 0, 0, 2, 2, 3])
    );
    let img = read_npy(&tiny.join("image_features.npy"));
    let ret_samples = set_samples(&f.data.join("wds_retrieval-tiny_test/test"));
    assert_close(img.row(0), &encode_image(&m, &ret_samples[0]["png"]), "png");
    assert_close(img.row(1), &encode_image(&m, &ret_samples[1]["jpg"]), "jpg");
    let txt = read_npy(&tiny.join("text_features.npy"));
    assert_close(txt.row(2), &encode_text(&m, "blue square"), "caption 2");
    let rm = retrieval::evaluate(&img, &txt, &[0, 0, 0, 2, 2, 3])
        .unwrap()
        .to_json();
    for (k, v) in &rm {
        assert_eq!(&recs[2]["metrics"][k], v, "{k}");
    }

    // TiC retrieval: one caption per sample, the sample's txt.
    let ret = dump.join("tic_datacomp_retrieval_yearly_2016");
    let labels = read_json(&ret.join("labels.json"));
    let samples = set_samples(&tic.join("retrieval/2016"));
    let caps: Vec<String> = samples
        .iter()
        .flat_map(|m| {
            splitlines(std::str::from_utf8(&m["txt"]).unwrap())
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(caps.len(), 25);
    assert_eq!(labels["captions"], serde_json::json!(caps));

    // --- CLIP_benchmark on the same data and embeddings (fixture written by
    // tests/fixtures/check_tic_eval_dump.py from this test's output): it read the same
    // labels / captions in the same order and computed the same metrics. ---
    let fx = read_json(&fixture_dir("tic-eval").join("e2e_clip_benchmark.json"));
    for rec in &recs {
        let key = rec["key"].as_str().unwrap();
        let want = &fx[key];
        let labels = read_json(&dump.join(key.replace('/', "_")).join("labels.json"));
        for field in ["targets", "captions", "text_image_index"] {
            if !want[field].is_null() {
                assert_eq!(labels[field], want[field], "{key} {field}");
            }
        }
        for (k, v) in want["metrics"].as_object().unwrap() {
            if v.is_null() {
                assert!(rec["metrics"][k].is_null(), "{key} {k}");
                continue;
            }
            let got = rec["metrics"][k].as_f64().unwrap();
            let v = v.as_f64().unwrap();
            assert!(
                (got - v).abs() < 1e-6,
                "{key} {k}: tic-eval {got}, CLIP_benchmark {v}"
            );
        }
    }

    // --- Resume: a rerun skips every recorded task and appends nothing. ---
    let before = std::fs::read(&results).unwrap();
    let extra = [
        "--tasks",
        "tic/datacomp/retrieval/yearly/2016",
        "retrieval/tiny",
        "-q",
    ];
    let o = eval_run(&f, None, &extra);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("skipped"));
    assert_eq!(std::fs::read(&results).unwrap(), before);

    // Issue 16: --json prints one parseable object per task on stdout (nothing else): tasks
    // done before carry their recorded metrics, the failing one its error.
    let lines = |o: &Output| -> Vec<Value> {
        String::from_utf8(o.stdout.clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    };
    let o = eval_run(&f, None, &["--json", "-q"]);
    assert_eq!(o.status.code(), Some(1));
    let v = lines(&o);
    let status: Vec<(&str, &str)> = v
        .iter()
        .map(|x| (x["key"].as_str().unwrap(), x["status"].as_str().unwrap()))
        .collect();
    assert_eq!(status.len(), 4, "{status:?}");
    for (x, rec) in v.iter().filter(|x| x["status"] == "skipped").zip(&recs) {
        assert_eq!((&x["key"], &x["metrics"]), (&rec["key"], &rec["metrics"]));
        assert_eq!(x["main_metric"], rec["metrics"]["main_metric"]);
    }
    let failed: Vec<_> = v.iter().filter(|x| x["status"] == "failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["key"], "tic/datacomp/retrieval/yearly/2017");
    assert!(failed[0]["error"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("results: "));
    // A task done now: its metrics are those recorded in the (new) results folder.
    let fresh = f.root.join("fresh");
    let o = eval_run(
        &f,
        Some(&fresh),
        &["--tasks", "retrieval/tiny", "--json", "-q"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = lines(&o);
    assert_eq!((v.len(), v[0]["status"].as_str()), (1, Some("done")));
    let rec = &records(&fresh.join("eval_results.jsonl"))[0];
    assert_eq!(v[0]["metrics"], rec["metrics"]);
    assert_eq!(v[0]["main_metric"], rec["metrics"]["main_metric"]);
    assert!(v[0]["samples"].as_u64().unwrap() > 0 && v[0]["seconds"].is_number());

    // Issue 16: a `pipe:` --data_dir streams every file of each set (`{}` = its path): the same
    // records as reading the folder; a failing command and a truncated shard fail the tasks,
    // naming the command.
    let eval_with = |data: &str, out: &Path| {
        let extra = [
            "--tasks",
            "tic/datacomp/retrieval/yearly/2016",
            "tic/datacomp/datacompnet/yearly/2016",
            "retrieval/tiny",
            "--batch_size",
            "4",
            "--num_workers",
            "2",
            "-q",
        ];
        eval(
            &f,
            ["--train_output_dir", s(&f.run_dir)],
            Some(out),
            data,
            &extra,
        )
    };
    let piped = f.root.join("piped");
    let o = eval_with(&format!("pipe:cat {}/{{}}", s(&f.data)), &piped);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(records(&piped.join("eval_results.jsonl")), recs);
    for (data, want) in [
        ("pipe:false {}".to_string(), "pipe:false tic/"),
        (
            format!("pipe:head -c 1000 {}/{{}}", s(&f.data)),
            "truncated tar stream",
        ),
    ] {
        let o = eval_with(&data, &f.root.join("bad"));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{data}: {err}");
        assert!(err.contains(want), "{data}: {err}");
    }

    // Results of another model in the same folder are refused.
    let model = format!(
        "tiny-test {}",
        s(&f.run_dir.join("checkpoints/epoch_1.safetensors"))
    );
    let o = eval(
        &f,
        ["--use_model", &model],
        Some(&f.run_dir),
        s(&f.data),
        &["-q"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("another model"));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(f.run_dir.join("eval_info.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        // tic_model::checkpoint writes through tic_shards::atomic with the same permissions.
        let mode = std::fs::metadata(f.run_dir.join("checkpoints/epoch_latest.safetensors"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        for d in ["tic_datacomp_datacompnet_yearly_2016", "retrieval_tiny"] {
            let mode = std::fs::metadata(dump.join(d).join("labels.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o644, "{d}");
        }
    }
}

#[test]
fn bad_inputs_name_task_file_and_sample() {
    let f = fixture(false);
    let tic = f.data.join("tic/datacomp/yearly/eval");
    // A corrupt image in the retrieval set; a class id outside the class list in DataCompNet.
    let ret = tic.join("retrieval/2016/0.tar");
    let mut w = TarSampleWriter::new(Vec::new());
    w.append("bad-0", "jpg", b"\xff\xd8\xff not a jpeg", 0)
        .unwrap();
    w.append("bad-0", "txt", b"caption", 0).unwrap();
    std::fs::write(&ret, w.finish().unwrap()).unwrap();
    let dcn = tic.join("datacompnet/2016/1.tar");
    let mut w = TarSampleWriter::new(Vec::new());
    let jpg = set_samples(&tic.join("datacompnet/2016"))[0]["jpg"].clone();
    w.append("c-9", "cls", b"9", 0).unwrap();
    w.append("c-9", "jpg", &jpg, 0).unwrap();
    std::fs::write(&dcn, w.finish().unwrap()).unwrap();
    // An empty shard in the static set.
    std::fs::write(
        f.data.join("wds_retrieval-tiny_test/test/0.tar"),
        TarSampleWriter::new(Vec::new()).finish().unwrap(),
    )
    .unwrap();

    let out = f.root.join("out");
    let o = eval_run(&f, Some(&out), &["-q"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("retrieval/2016/0.tar") && err.contains("\"bad-0\"") && err.contains("decode"),
        "{err}"
    );
    assert!(
        err.contains("datacompnet/2016/1.tar")
            && err.contains("\"c-9\"")
            && err.contains("class id 9 is outside the 6 classes"),
        "{err}"
    );
    assert!(err.contains("empty shard"), "{err}");
    // Every task failed: no record, four failures logged.
    assert!(!out.join("eval_results.jsonl").exists());
    let failures = std::fs::read_to_string(out.join("eval_failures.jsonl")).unwrap();
    assert_eq!(failures.lines().count(), 4);

    // A checkpoint of another architecture: a clear error naming the tensor and shapes.
    let model = format!(
        "ViT-B-32 {}",
        s(&f.run_dir.join("checkpoints/epoch_latest.safetensors"))
    );
    let out2 = f.root.join("out2");
    let o = eval(&f, ["--use_model", &model], Some(&out2), s(&f.data), &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("epoch_latest.safetensors") && err.contains("shape"),
        "{err}"
    );
    // Neither a run nor a model.
    let o = run(&["--tasklist", s(&f.tasklist)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--use_model"));
}

/// Evaluation sets, task list, checkpoint and results all in an object store (moto S3): the
/// same records as a local run, and a rerun resumes from the uploaded results.
#[cfg(feature = "remote")]
#[test]
fn object_store_data_model_and_results() {
    use tic_shards::s3test::MotoS3;
    use tic_shards::storage::upload_tree;
    let Some(s3) = MotoS3::start() else {
        return;
    };
    s3.create_bucket("evals");
    let f = fixture(false);
    let bucket = Location::parse("s3://evals").unwrap();
    upload_tree(&f.data, &bucket.join("data")).unwrap();
    bucket
        .join("tasklist.yml")
        .write(&std::fs::read(&f.tasklist).unwrap())
        .unwrap();
    let ckpt = f.run_dir.join("checkpoints/epoch_latest.safetensors");
    bucket
        .join("ckpt/epoch_latest.safetensors")
        .write(&std::fs::read(&ckpt).unwrap())
        .unwrap();
    let tasks = ["tic/datacomp/retrieval/yearly/2016", "retrieval/tiny"];
    let eval = |model: &str, data: &str, tasklist: &str, out: &str| {
        let o = s3
            .command(BIN)
            .args([
                "--use_model",
                model,
                "--data_dir",
                data,
                "--tasklist",
                tasklist,
            ])
            .args(["--output_dir", out, "--batch_size", "4", "-q", "--tasks"])
            .args(tasks)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let local_out = f.root.join("local-results");
    eval(
        &format!("tiny-test {}", s(&ckpt)),
        s(&f.data),
        s(&f.tasklist),
        s(&local_out),
    );
    let stdout = eval(
        "tiny-test s3://evals/ckpt/epoch_latest.safetensors",
        "s3://evals/data",
        "s3://evals/tasklist.yml",
        "s3://evals/results",
    );
    assert!(
        stdout.contains("results: s3://evals/results/eval_results.jsonl"),
        "{stdout}"
    );
    let metrics = |text: &str| -> Vec<(String, Value)> {
        text.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (v["key"].as_str().unwrap().to_string(), v["metrics"].clone())
            })
            .collect()
    };
    let remote = bucket
        .join("results/eval_results.jsonl")
        .read_to_string()
        .unwrap();
    let local = std::fs::read_to_string(local_out.join("eval_results.jsonl")).unwrap();
    assert_eq!(metrics(&remote), metrics(&local));
    assert!(bucket.join("results/eval_info.json").exists().unwrap());
    // A rerun downloads the results and skips both tasks.
    let stdout = eval(
        "tiny-test s3://evals/ckpt/epoch_latest.safetensors",
        "s3://evals/data",
        "s3://evals/tasklist.yml",
        "s3://evals/results",
    );
    assert_eq!(stdout.matches("skipped").count(), 2, "{stdout}");
    assert_eq!(
        bucket
            .join("results/eval_results.jsonl")
            .read_to_string()
            .unwrap(),
        remote
    );
}

/// Every binary's `-h` / `--help` opens with its own job and the script it replaces (issue 16).
#[test]
fn help_opens_with_each_binarys_job() {
    tic_testkit::check_help!(("tic-eval", "evaluate.py"));
}
