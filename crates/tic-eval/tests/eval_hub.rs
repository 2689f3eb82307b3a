//! `tic-eval --use_model` with OpenCLIP's pretrained names, offline: a Hugging Face cache folder
//! (laid out as `huggingface_hub` does, `tic_testkit::hub_cache`) under `HF_HOME`, holding the
//! fixture's tiny model as `hf-hub:ORG/REPO` (open_clip_config.json + safetensors) and as the
//! test-only tag `tiny-test hubtest`. Both evaluate to the same records as the weights file.

mod common;

use common::{fixture, s};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use tic_testkit::hub_cache::{put_file, put_open_clip_repo};

const BIN: &str = env!("CARGO_BIN_EXE_tic-eval");

/// `tic-eval --use_model MODEL` on the fixture's sets into `out`, with `HF_HOME=hf_home` and the
/// network off.
fn eval_with_hub(f: &common::Fixture, hf_home: &Path, model: &str, out: &Path) -> Output {
    Command::new(BIN)
        .args(["--use_model", model, "--output_dir", s(out)])
        .args(["--data_dir", s(&f.data), "--tasklist", s(&f.tasklist), "-q"])
        .env("HF_HOME", hf_home)
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("HF_HUB_CACHE")
        .env_remove("HUGGINGFACE_HUB_CACHE")
        .output()
        .unwrap()
}

/// The records of `out/eval_results.jsonl`, by task key.
fn records(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("eval_results.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn hub_names_evaluate_like_the_weights_file() {
    let f = fixture(false);
    let weights = f.run_dir.join("checkpoints/epoch_latest.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    let hf_home = f.root.join("hf");
    let cache = hf_home.join("hub");
    let config = std::fs::read_to_string(f.run_dir.join("model_config.json")).unwrap();
    let snap = put_open_clip_repo(&cache, "tic-test/tiny-clip", &config, &bytes);
    put_file(
        &cache,
        "tic-rs/tiny-test-clip",
        "open_clip_model.safetensors",
        &bytes,
    );

    let file_out = f.root.join("out-file");
    let o = eval_with_hub(
        &f,
        &hf_home,
        &format!("tiny-test {}", s(&weights)),
        &file_out,
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let expected = records(&file_out);
    assert_eq!(expected.len(), 3, "the 2017 set does not exist");

    for (model, out) in [
        ("hf-hub:tic-test/tiny-clip", "out-repo"),
        ("tiny-test hubtest", "out-tag"),
    ] {
        let out = f.root.join(out);
        let o = eval_with_hub(&f, &hf_home, model, &out);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{model}: {err}");
        assert_eq!(records(&out), expected, "{model}");
        let info: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("eval_info.json")).unwrap())
                .unwrap();
        assert!(
            info["checkpoint"].as_str().unwrap().contains("snapshots/"),
            "{info}"
        );
    }
    let info = std::fs::read_to_string(f.root.join("out-repo/eval_info.json")).unwrap();
    assert!(info.contains(s(&snap)), "{info}");

    // DataComp's README form; offline with an empty cache: the error names repo, files, cache.
    let o = eval_with_hub(&f, &hf_home, "ViT-B-16 openai", &f.root.join("out-openai"));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("timm/vit_base_patch16_clip_224.openai")
            && err.contains("open_clip_model.safetensors or open_clip_pytorch_model.bin")
            && err.contains(s(
                &cache.join("models--timm--vit_base_patch16_clip_224.openai")
            )),
        "{err}"
    );
    // Neither a file nor a tag: the tags of the architecture are listed.
    let o = eval_with_hub(&f, &hf_home, "ViT-B-16 opneai", &f.root.join("out-typo"));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("opneai is neither a file nor a pretrained tag of ViT-B-16"),
        "{err}"
    );
    assert!(err.contains("openai, laion400m_e31"), "{err}");
}
