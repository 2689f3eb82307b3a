//! A Hugging Face hub cache folder as `huggingface_hub` lays it out, for tests of tic-model's
//! `pretrained` resolution without a network: `models--ORG--REPO/blobs/<sha256>` (the file),
//! `snapshots/<commit>/<file>` (a relative symlink to the blob) and `refs/main` (the commit).
//! `crates/tic-model/tests/fixtures/check_hub_cache.py` checks this layout with the real
//! `huggingface_hub` (`try_to_load_from_cache`, `scan_cache_dir`).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The commit every test repository's `refs/main` names (40 hex digits, as the Hub's).
pub const TEST_COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Puts `bytes` as `file` (may contain `/`) of model repository `repo` (`ORG/REPO`) at
/// [`TEST_COMMIT`] into the hub cache folder `cache`; returns the snapshot path.
pub fn put_file(cache: &Path, repo: &str, file: &str, bytes: &[u8]) -> PathBuf {
    let root = cache.join(format!("models--{}", repo.replace('/', "--")));
    let digest: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let blob = root.join("blobs").join(&digest);
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::write(&blob, bytes).unwrap();
    let snapshot = root.join("snapshots").join(TEST_COMMIT).join(file);
    std::fs::create_dir_all(snapshot.parent().unwrap()).unwrap();
    // ../../blobs/<sha> from snapshots/<commit>/, one more `..` per folder inside the file name.
    let ups = 2 + file.matches('/').count();
    let target = format!("{}blobs/{digest}", "../".repeat(ups));
    let _ = std::fs::remove_file(&snapshot);
    #[cfg(unix)]
    std::os::unix::fs::symlink(&target, &snapshot).unwrap();
    #[cfg(not(unix))]
    std::fs::copy(&blob, &snapshot).unwrap();
    std::fs::create_dir_all(root.join("refs")).unwrap();
    std::fs::write(root.join("refs/main"), TEST_COMMIT).unwrap();
    snapshot
}

/// An OpenCLIP Hub repository's `open_clip_config.json` with the given `model_cfg` (JSON text)
/// and OpenCLIP's default (OpenAI) `preprocess_cfg`.
pub fn open_clip_config_json(model_cfg: &str) -> String {
    format!(
        r#"{{"model_cfg": {model_cfg}, "preprocess_cfg": {{"mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711], "interpolation": "bicubic",
        "resize_mode": "shortest"}}}}"#
    )
}

/// An OpenCLIP Hub repository `repo` in `cache`: `open_clip_config.json` (see
/// [`open_clip_config_json`]) and `open_clip_model.safetensors`; returns the weights' snapshot path.
pub fn put_open_clip_repo(
    cache: &Path,
    repo: &str,
    model_cfg: &str,
    safetensors: &[u8],
) -> PathBuf {
    let cfg = open_clip_config_json(model_cfg);
    put_file(cache, repo, "open_clip_config.json", cfg.as_bytes());
    put_file(cache, repo, "open_clip_model.safetensors", safetensors)
}
