//! `tic-fuzz` as `make fuzz-smoke` runs it: every target replays its seeds and its committed
//! regression inputs (`fuzz/regressions/<target>/`, each a crash once found) under the memory
//! cap; and the cap itself fails a run that allocates past it, saving the input.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn smoke(out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tic-fuzz"))
        .args(["smoke", "--seconds", "0", "--seed", "1"])
        .arg("--root")
        .arg(root())
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("running tic-fuzz")
}

#[test]
fn every_target_replays_its_seeds_and_regressions_under_the_cap() {
    let out = tempfile::tempdir().unwrap();
    let o = smoke(out.path(), &[]);
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{text}");
    for t in tic_fuzz::targets::TARGETS {
        assert!(
            text.contains(&format!("{}: ", t.name)),
            "{} did not report:\n{text}",
            t.name
        );
    }
    // Every committed regression input belongs to a target that exists.
    for dir in std::fs::read_dir(root().join("fuzz/regressions")).unwrap() {
        let name = dir.unwrap().file_name().into_string().unwrap();
        assert!(
            tic_fuzz::targets::find(&name).is_some(),
            "fuzz/regressions/{name}: no such target"
        );
    }
}

#[test]
fn the_memory_cap_fails_a_run_and_keeps_its_input() {
    let out = tempfile::tempdir().unwrap();
    let o = smoke(
        out.path(),
        &["--target", "selftest_alloc", "--mem-mb", "64"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("memory cap exceeded by an allocation of 104857600 bytes"),
        "{err}"
    );
    let saved: Vec<_> = std::fs::read_dir(out.path().join("failures"))
        .unwrap()
        .collect();
    assert_eq!(saved.len(), 1, "{err}");
    let input = std::fs::read(saved[0].as_ref().unwrap().path()).unwrap();
    assert_eq!(input, vec![0u8; 100]);
}
