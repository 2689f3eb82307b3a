//! `tic-embed` end to end on the tiny fixture: image folder, WebDataset shard, text file.

mod common;

use common::tiny_openclip_safetensors;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device};
use tic_model::{checkpoint, preprocess, ClipConfig, Tokenizer};

fn fixtures() -> PathBuf {
    tic_testkit::fixture_dir("tic-model").join("tiny")
}

fn read_npy(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec::<f32>().unwrap())
}

/// `tic-embed --model MODEL --weights WEIGHTS`, to which a test adds its inputs and output.
fn tic_embed(model: &str, weights: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tic-embed"));
    c.args(["--model", model, "--weights"]).arg(weights);
    c
}

/// The elements of `t`, flattened.
fn flat(t: candle_core::Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn setup(dir: &Path) -> PathBuf {
    let w = dir.join("tiny.safetensors");
    std::fs::write(&w, tiny_openclip_safetensors()).unwrap();
    w
}

#[test]
fn embeds_folder_shards_and_texts() {
    let tmp = tempfile::tempdir().unwrap();
    let weights = setup(tmp.path());
    // Image folder: copies in an order that differs from sorted order.
    let imgs = tmp.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    for (src, dst) in [("e.jpg", "1.jpg"), ("c.png", "0.png"), ("a.jpg", "2.jpg")] {
        std::fs::copy(fixtures().join("images").join(src), imgs.join(dst)).unwrap();
    }
    std::fs::write(imgs.join("notes.txt"), "not an image").unwrap();
    let texts = tmp.path().join("texts.txt");
    std::fs::write(&texts, "a photo of a cat\n\nA DIAGRAM &amp; more\n").unwrap();
    let out = tmp.path().join("out");
    let st = tic_embed("tiny-test", &weights)
        .arg("--images")
        .arg(&imgs)
        .arg("--texts")
        .arg(&texts)
        .arg("--output")
        .arg(&out)
        .args(["--batch-size", "2"])
        .status()
        .unwrap();
    assert!(st.success());
    let (shape, img) = read_npy(&out.join("image_features.npy"));
    assert_eq!(shape, vec![3, 32]);
    let (tshape, txt) = read_npy(&out.join("text_features.npy"));
    assert_eq!(tshape, vec![3, 32]);
    let ls: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("logit_scale.json")).unwrap())
            .unwrap();
    assert!((ls["logit_scale_exp"].as_f64().unwrap() - 1.0 / 0.07).abs() < 1e-3);

    // Same numbers as the library, in sorted file-name order (0.png, 1.jpg, 2.jpg).
    let cfg = ClipConfig::builtin("tiny-test").unwrap();
    let model = checkpoint::load_clip(&cfg, &weights, DType::F32, &Device::Cpu).unwrap();
    let bytes: Vec<Vec<u8>> = ["c.png", "e.jpg", "a.jpg"]
        .iter()
        .map(|n| std::fs::read(fixtures().join("images").join(n)).unwrap())
        .collect();
    let px = preprocess::eval_batch(&bytes, 32, &Device::Cpu).unwrap();
    let want: Vec<f32> = flat(model.encode_image_normalized(&px).unwrap());
    for (a, b) in img.iter().zip(&want) {
        assert!((a - b).abs() < 1e-5);
    }
    for row in img.chunks(32).chain(txt.chunks(32)) {
        let n: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-5);
    }
    let ids = Tokenizer::shared()
        .tokenize_tensor(
            &["a photo of a cat", "", "A DIAGRAM &amp; more"],
            &Device::Cpu,
        )
        .unwrap();
    let want_t: Vec<f32> = flat(model.encode_text_normalized(&ids).unwrap());
    for (a, b) in txt.iter().zip(&want_t) {
        assert!((a - b).abs() < 1e-5);
    }

    // A WebDataset shard: samples in tar order (not sorted), one sample without an image.
    let shard = tmp.path().join("shard-000000.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&shard).unwrap());
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, data).unwrap();
        };
        add("0002.jpg", &bytes[2]);
        add("0002.txt", b"caption");
        add("0001.txt", b"no image here");
        add("0000.png", &bytes[0]);
        add("0000.json", b"{}");
        b.finish().unwrap();
    }
    let out2 = tmp.path().join("out2");
    let st = tic_embed("tiny-test", &weights)
        .arg("--images")
        .arg(&shard)
        .arg("--output")
        .arg(&out2)
        .status()
        .unwrap();
    assert!(st.success());
    let (shape, sh) = read_npy(&out2.join("image_features.npy"));
    assert_eq!(shape, vec![2, 32]);
    for (a, b) in sh[..32].iter().zip(&want[64..96]) {
        assert!((a - b).abs() < 1e-5, "first shard sample is a.jpg");
    }
    for (a, b) in sh[32..].iter().zip(&want[..32]) {
        assert!((a - b).abs() < 1e-5, "second shard sample is c.png");
    }

    // Issue 16: the same shard streamed through `pipe:cat` (a brace pattern) gives the same
    // features, byte for byte; a failing command and a truncated stream are named errors.
    let out3 = tmp.path().join("out3");
    let embed = |images: &str, out: &Path| {
        tic_embed("tiny-test", &weights)
            .args(["--images", images, "--output"])
            .arg(out)
            .output()
            .unwrap()
    };
    let piped = format!(
        "pipe:cat {}/shard-{{000000..000000}}.tar",
        tmp.path().display()
    );
    let o = embed(&piped, &out3);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read(out3.join("image_features.npy")).unwrap(),
        std::fs::read(out2.join("image_features.npy")).unwrap()
    );
    let missing = tmp.path().join("nonexistent.tar");
    for (url, want) in [
        ("pipe:false".to_string(), "exit status: 1"),
        (format!("pipe:cat {}", missing.display()), "No such file"),
        (
            format!("pipe:head -c 1000 {}", shard.display()),
            "truncated tar stream",
        ),
    ] {
        let o = embed(&url, &tmp.path().join("bad"));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{url}");
        assert!(err.contains(&url) && err.contains(want), "{url}: {err}");
    }
}

#[test]
fn bad_weights_error_names_file_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let weights = setup(tmp.path());
    let texts = tmp.path().join("t.txt");
    std::fs::write(&texts, "x\n").unwrap();
    let out = tic_embed("ViT-B-32", &weights)
        .arg("--texts")
        .arg(&texts)
        .arg("--output")
        .arg(tmp.path().join("o"))
        .output()
        .unwrap();
    let err = tic_testkit::failed_stderr(&out);
    assert!(
        err.contains("tiny.safetensors") && err.contains("expected shape"),
        "{err}"
    );
}

/// `--model hf-hub:ORG/REPO` and `--weights TAG` read the same weights from a Hugging Face cache
/// (`HF_HOME`, offline) as `--weights FILE`: identical features.
#[test]
fn hub_names_embed_like_the_weights_file() {
    use tic_testkit::hub_cache::{put_file, put_open_clip_repo};
    let tmp = tempfile::tempdir().unwrap();
    let weights = setup(tmp.path());
    let bytes = std::fs::read(&weights).unwrap();
    let cache = tmp.path().join("hf/hub");
    let cfg = std::fs::read_to_string(fixtures().join("config.json")).unwrap();
    put_open_clip_repo(&cache, "tic-test/tiny", &cfg, &bytes);
    put_file(
        &cache,
        "tic-rs/tiny-test-clip",
        "open_clip_model.safetensors",
        &bytes,
    );
    let texts = tmp.path().join("t.txt");
    std::fs::write(&texts, "a photo of a cat\na diagram\n").unwrap();
    let embed = |args: &[&str], out: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tic-embed"));
        c.args(args)
            .arg("--texts")
            .arg(&texts)
            .arg("--output")
            .arg(tmp.path().join(out))
            .env("HF_HOME", tmp.path().join("hf"))
            .env("HF_HUB_OFFLINE", "1")
            .env_remove("HF_HUB_CACHE")
            .env_remove("HUGGINGFACE_HUB_CACHE");
        let o = c.output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        read_npy(&tmp.path().join(out).join("text_features.npy")).1
    };
    let file = embed(
        &[
            "--model",
            "tiny-test",
            "--weights",
            weights.to_str().unwrap(),
        ],
        "f",
    );
    assert_eq!(embed(&["--model", "hf-hub:tic-test/tiny"], "repo"), file);
    assert_eq!(
        embed(&["--model", "tiny-test", "--weights", "hubtest"], "tag"),
        file
    );
    // A tag missing from the cache, offline: the error names the repository and the cache.
    let o = tic_embed("ViT-B-32", Path::new("openai"))
        .arg("--texts")
        .arg(&texts)
        .arg("--output")
        .arg(tmp.path().join("o"))
        .env("HF_HOME", tmp.path().join("hf"))
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    let err = tic_testkit::failed_stderr(&o);
    assert!(
        err.contains("timm/vit_base_patch32_clip_224.openai")
            && err.contains("hf/hub/models--timm"),
        "{err}"
    );
}

/// Every binary's `-h` / `--help` opens with its own job and the script it replaces (issue 16).
#[test]
fn help_opens_with_each_binarys_job() {
    tic_testkit::check_help!(("tic-embed", "no original script"));
}
