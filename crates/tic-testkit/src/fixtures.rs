//! Where the committed test fixtures are: each crate keeps its own under
//! `crates/<crate>/tests/fixtures/`, beside the tests that read them and the script that made
//! them. Tests find them here, so that the layout is written down once.

use std::path::{Path, PathBuf};

/// The workspace's root folder (the one holding `Cargo.toml`, `crates/`, `out/`).
pub fn workspace_root() -> PathBuf {
    let testkit = Path::new(env!("CARGO_MANIFEST_DIR"));
    // crates/tic-testkit -> crates -> the root.
    testkit
        .parent()
        .and_then(Path::parent)
        .expect("tic-testkit lives in <root>/crates/tic-testkit")
        .to_path_buf()
}

/// The committed fixtures folder of workspace crate `krate` (e.g. `"tic-model"`):
/// `crates/<krate>/tests/fixtures`. Panics when that folder does not exist.
pub fn fixture_dir(krate: &str) -> PathBuf {
    let dir = workspace_root()
        .join("crates")
        .join(krate)
        .join("tests/fixtures");
    assert!(
        dir.is_dir(),
        "{krate} has no fixtures folder {}",
        dir.display()
    );
    dir
}

/// A JSON array of numbers from a fixture (as Python's `json` wrote a float32 vector), as `f32`s.
/// Panics on anything else: a malformed fixture is a broken test.
pub fn json_f32s(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(|x| x.as_f64().expect("a JSON number") as f32)
        .collect()
}
