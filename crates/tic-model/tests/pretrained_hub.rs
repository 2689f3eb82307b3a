//! `tic_model::pretrained` offline: OpenCLIP names (`ARCH TAG`, `hf-hub:ORG/REPO`,
//! `ARCH hf-hub:ORG/REPO/FILE`) resolved from Hugging Face cache folders laid out as
//! `huggingface_hub` lays them out (`tic_testkit::hub_cache`), with the network off.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use tic_model::checkpoint::{self, StateDict};
use tic_model::pretrained::{self, HubCache, ResolvedModel};
use tic_model::{init, ClipConfig};
use tic_testkit::hub_cache::{open_clip_config_json, put_file, put_open_clip_repo, TEST_COMMIT};

mod common;

use common::{tiny_fixtures as fixtures, tiny_openclip_safetensors};

fn offline(cache: &Path) -> HubCache {
    HubCache {
        dir: cache.to_path_buf(),
        offline: true,
        endpoint: None,
    }
}

/// The elements of `t` as f32, flattened.
fn f32s(t: &candle_core::Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Every tensor of `a` equals (bit for bit) the same-named tensor of `b`, and no key is missing.
fn assert_same_weights(a: &StateDict, b: &StateDict) {
    assert_eq!(a.len(), b.len());
    for (k, t) in a {
        let u = b.get(k).unwrap_or_else(|| panic!("{k} missing"));
        assert_eq!(t.dims(), u.dims(), "{k}");
        assert_eq!(f32s(t), f32s(u), "{k}");
    }
}

fn resolve(words: &str, hub: &HubCache) -> anyhow::Result<ResolvedModel> {
    let mut it = words.split_whitespace();
    let arch = it.next().unwrap();
    pretrained::resolve(arch, it.next(), None, hub)
}

#[test]
fn hf_hub_repo_with_safetensors_loads_the_repo_weights() {
    let d = tempfile::tempdir().unwrap();
    let repo = "tic-test/tiny-openclip";
    let bytes = tiny_openclip_safetensors();
    let cfg_json = std::fs::read_to_string(fixtures().join("config.json")).unwrap();
    let snap = put_open_clip_repo(d.path(), repo, &cfg_json, &bytes);
    // A .bin beside it is not used: OpenCLIP prefers the safetensors file.
    put_file(d.path(), repo, "open_clip_pytorch_model.bin", b"not read");

    let m = resolve("hf-hub:tic-test/tiny-openclip", &offline(d.path())).unwrap();
    assert_eq!(m.name, "hf-hub:tic-test/tiny-openclip");
    assert_eq!(m.config, ClipConfig::builtin("tiny-test").unwrap());
    assert_eq!(m.weights, snap);
    let source = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap();
    assert_same_weights(&checkpoint::load_state_dict(&m.weights).unwrap(), &source);
    checkpoint::load_clip(&m.config, &m.weights, DType::F32, &Device::Cpu).unwrap();
}

#[test]
fn hf_hub_repo_with_torch_bin_loads_the_repo_weights() {
    // OpenCLIP's micro model saved by torch.save (a torch zip); the .bin is the only weights.
    let micro = fixtures().join("micro");
    let d = tempfile::tempdir().unwrap();
    let repo = "tic-test/micro-openclip";
    let cfg_json = std::fs::read_to_string(micro.join("config.json")).unwrap();
    put_file(
        d.path(),
        repo,
        "open_clip_config.json",
        open_clip_config_json(&cfg_json).as_bytes(),
    );
    let bin = std::fs::read(micro.join("epoch_1.pt")).unwrap();
    let snap = put_file(d.path(), repo, "open_clip_pytorch_model.bin", &bin);

    let m = resolve("hf-hub:tic-test/micro-openclip", &offline(d.path())).unwrap();
    assert_eq!(m.weights, snap);
    assert_eq!(m.config, ClipConfig::from_json_str(&cfg_json).unwrap());
    let source = checkpoint::load_state_dict(&micro.join("epoch_1.pt")).unwrap();
    assert_same_weights(&checkpoint::load_state_dict(&m.weights).unwrap(), &source);
    checkpoint::load_clip(&m.config, &m.weights, DType::F32, &Device::Cpu).unwrap();
}

#[test]
fn tag_resolves_to_its_repo_weights() {
    let d = tempfile::tempdir().unwrap();
    let cfg = ClipConfig::builtin("tiny-test").unwrap();
    let source = init::init_state_dict(&cfg, 3, DType::F32, &Device::Cpu).unwrap();
    let tmp = d.path().join("w.safetensors");
    checkpoint::write_safetensors_atomic(&source, &tmp).unwrap();
    let cache = d.path().join("hub");
    let snap = put_file(
        &cache,
        "tic-rs/tiny-test-clip",
        "open_clip_model.safetensors",
        &std::fs::read(&tmp).unwrap(),
    );
    // OpenCLIP's tag normalisation: case and `-` do not matter.
    for words in ["tiny-test hubtest", "tiny-test HubTest"] {
        let m = resolve(words, &offline(&cache)).unwrap();
        assert_eq!(m.name, "tiny-test");
        assert_eq!(m.config, cfg);
        assert_eq!(m.weights, snap);
        assert_same_weights(&checkpoint::load_state_dict(&m.weights).unwrap(), &source);
    }
}

#[test]
fn openai_tag_is_quickgelu_and_prefers_safetensors() {
    let d = tempfile::tempdir().unwrap();
    let repo = "timm/vit_base_patch16_clip_224.openai";
    let bin = put_file(d.path(), repo, "open_clip_pytorch_model.bin", b"bin");
    let hub = offline(d.path());
    let m = resolve("ViT-B-16 openai", &hub).unwrap();
    assert_eq!(m.weights, bin);
    assert_eq!(m.config, ClipConfig::builtin("ViT-B-16-quickgelu").unwrap());
    assert_eq!(m.name, "ViT-B-16");
    let safe = put_file(d.path(), repo, "open_clip_model.safetensors", b"st");
    assert_eq!(resolve("ViT-B-16 openai", &hub).unwrap().weights, safe);
    assert_eq!(
        resolve("ViT-B-16-quickgelu openai", &hub).unwrap().config,
        ClipConfig::builtin("ViT-B-16-quickgelu").unwrap()
    );
    // A DataComp tag keeps exact GELU.
    let dc = "laion/CLIP-ViT-B-16-DataComp.XL-s13B-b90K";
    put_file(d.path(), dc, "open_clip_pytorch_model.bin", b"bin");
    let m = resolve("ViT-B-16 datacomp_xl_s13b_b90k", &hub).unwrap();
    assert!(!m.config.quick_gelu);
    assert!(m.weights.starts_with(
        d.path()
            .join("models--laion--CLIP-ViT-B-16-DataComp.XL-s13B-b90K")
    ));
}

#[test]
fn hub_file_of_a_repo_as_weights() {
    // TiC-CLIP's Hub repositories hold OpenCLIP checkpoints `checkpoints/YEAR.pt`.
    let d = tempfile::tempdir().unwrap();
    let repo = "apple/TiC-CLIP-basic-cumulative";
    let snap = put_file(d.path(), repo, "checkpoints/2016.pt", b"pt");
    let m = resolve(
        "ViT-B-16 hf-hub:apple/TiC-CLIP-basic-cumulative/checkpoints/2016.pt",
        &offline(d.path()),
    )
    .unwrap();
    assert_eq!(m.weights, snap);
    assert!(snap.ends_with(format!("snapshots/{TEST_COMMIT}/checkpoints/2016.pt")));
    assert_eq!(m.config, ClipConfig::builtin("ViT-B-16").unwrap());
    let err = resolve(
        "ViT-B-16 hf-hub:apple/TiC-CLIP-basic-cumulative",
        &offline(d.path()),
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("ORG/REPO/FILE"), "{err:#}");
}

#[test]
fn missing_file_names_repo_file_and_cache() {
    let d = tempfile::tempdir().unwrap();
    let hub = offline(d.path());
    let e = format!(
        "{:#}",
        resolve("ViT-B-32 datacomp_xl_s13b_b90k", &hub).unwrap_err()
    );
    assert!(
        e.contains("laion/CLIP-ViT-B-32-DataComp.XL-s13B-b90K"),
        "{e}"
    );
    assert!(
        e.contains("open_clip_model.safetensors or open_clip_pytorch_model.bin"),
        "{e}"
    );
    let repo_dir = d
        .path()
        .join("models--laion--CLIP-ViT-B-32-DataComp.XL-s13B-b90K");
    assert!(e.contains(&repo_dir.display().to_string()), "{e}");
    assert!(e.contains("HF_HUB_OFFLINE"), "{e}");

    // A repository with weights but no open_clip_config.json.
    put_file(
        d.path(),
        "org/weights-only",
        "open_clip_pytorch_model.bin",
        b"x",
    );
    let e = format!(
        "{:#}",
        resolve("hf-hub:org/weights-only", &hub).unwrap_err()
    );
    assert!(
        e.contains("hf-hub:org/weights-only: no open_clip_config.json"),
        "{e}"
    );
    // A repository with a config but no weights.
    put_file(
        d.path(),
        "org/config-only",
        "open_clip_config.json",
        open_clip_config_json(&ClipConfig::builtin("tiny-test").unwrap().to_json_string())
            .as_bytes(),
    );
    let e = format!("{:#}", resolve("hf-hub:org/config-only", &hub).unwrap_err());
    assert!(
        e.contains("no open_clip_model.safetensors or open_clip_pytorch_model.bin"),
        "{e}"
    );
}

#[test]
fn unknown_second_word_lists_the_tags() {
    let hub = offline(Path::new("/nonexistent-hub-cache"));
    let e = format!("{:#}", resolve("ViT-B-16 no_such_tag", &hub).unwrap_err());
    assert!(
        e.contains("no_such_tag is neither a file nor a pretrained tag of ViT-B-16"),
        "{e}"
    );
    assert!(
        e.contains("openai") && e.contains("datacomp_xl_s13b_b90k"),
        "{e}"
    );
    // A -quickgelu name takes the QuickGELU-trained tags only.
    let e = format!(
        "{:#}",
        resolve("ViT-B-16-quickgelu nope", &hub).unwrap_err()
    );
    assert!(
        e.contains("dfn2b") && !e.contains("laion2b_s34b_b88k"),
        "{e}"
    );
    let e = format!(
        "{:#}",
        resolve("tiny-test-quickgelu nope", &hub).unwrap_err()
    );
    assert!(e.contains("has no pretrained tags"), "{e}");
    // An unknown architecture is that error, whatever the second word.
    let e = format!("{:#}", resolve("ViT-Q-1 openai", &hub).unwrap_err());
    assert!(e.contains("--model-config"), "{e}");
    // Inception-normalised weights are refused by name.
    let e = format!(
        "{:#}",
        resolve("ViT-L-14 laion2b_s32b_b82k", &hub).unwrap_err()
    );
    assert!(e.contains("mean/std"), "{e}");
}

#[test]
fn unsupported_hub_configs_are_errors() {
    let d = tempfile::tempdir().unwrap();
    let hub = offline(d.path());
    let timm = r#"{"embed_dim": 512, "vision_cfg": {"timm_model_name": "vit_x", "image_size": 224,
        "layers": 1, "width": 64, "patch_size": 16}, "text_cfg": {}}"#;
    put_file(
        d.path(),
        "org/timm",
        "open_clip_config.json",
        open_clip_config_json(timm).as_bytes(),
    );
    let e = format!("{:#}", resolve("hf-hub:org/timm", &hub).unwrap_err());
    assert!(e.contains("plain ViT") && e.contains("timm"), "{e}");
    let tiny = ClipConfig::builtin("tiny-test").unwrap().to_json_string();
    let inception =
        format!(r#"{{"model_cfg": {tiny}, "preprocess_cfg": {{"mean": [0.5, 0.5, 0.5]}}}}"#);
    put_file(
        d.path(),
        "org/inception",
        "open_clip_config.json",
        inception.as_bytes(),
    );
    let e = format!("{:#}", resolve("hf-hub:org/inception", &hub).unwrap_err());
    assert!(e.contains("preprocess_cfg.mean"), "{e}");
    let e = format!("{:#}", resolve("hf-hub:org/timm extra", &hub).unwrap_err());
    assert!(e.contains("drop"), "{e}");
}

/// Writes the cache folders the tests above use into `$TIC_HUB_CACHE_OUT/hub` (and the files the
/// resolver picks into `$TIC_HUB_CACHE_OUT/resolved.json`), for
/// `tests/fixtures/check_hub_cache.py` (the real `huggingface_hub` reads them back).
#[test]
#[ignore = "writes $TIC_HUB_CACHE_OUT for check_hub_cache.py"]
fn write_cache_for_python_check() {
    let dir = PathBuf::from(std::env::var("TIC_HUB_CACHE_OUT").expect("set TIC_HUB_CACHE_OUT"));
    let out = dir.join("hub");
    let cfg_json = std::fs::read_to_string(fixtures().join("config.json")).unwrap();
    let repo = "tic-test/tiny-openclip";
    put_open_clip_repo(&out, repo, &cfg_json, &tiny_openclip_safetensors());
    put_file(
        &out,
        "apple/TiC-CLIP-basic-cumulative",
        "checkpoints/2016.pt",
        b"pt",
    );
    // What the resolver picks, for the script to compare with try_to_load_from_cache.
    let picked = [
        ("hf-hub:tic-test/tiny-openclip", None),
        (
            "ViT-B-16",
            Some("hf-hub:apple/TiC-CLIP-basic-cumulative/checkpoints/2016.pt"),
        ),
    ]
    .map(|(a, w)| {
        pretrained::resolve(a, w, None, &offline(&out))
            .unwrap()
            .weights
            .display()
            .to_string()
    });
    std::fs::write(
        dir.join("resolved.json"),
        serde_json::to_string_pretty(&picked).unwrap(),
    )
    .unwrap();
}
