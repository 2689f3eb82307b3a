//! The check every crate's CLI tests make: every binary's `-h` and `--help` open with the
//! binary's own job and the original script it replaces (or say there is none), never with the
//! crate's description (what clap's bare `about` prints).
//!
//! A crate's test calls [`check_help!`](crate::check_help), which fills in the crate's folder,
//! description and binary paths from the test's own compile-time environment.

use std::path::Path;
use std::process::Command;

/// One binary of the crate under test: its name, its path (`env!("CARGO_BIN_EXE_…")`) and a
/// piece of text its help must open with (the original script's name, or "no original script").
pub struct Bin {
    /// File stem under `src/bin/`.
    pub name: &'static str,
    /// Path of the built binary.
    pub exe: &'static str,
    /// Text the first help line must contain.
    pub replaces: &'static str,
}

/// Checks that `bins` lists every binary under `{manifest_dir}/src/bin` and that each one's
/// `-h` and `--help` open with its own one-line description naming what it replaces, not with
/// `crate_description`.
pub fn check_help(manifest_dir: &str, crate_description: &str, bins: &[Bin]) {
    let mut on_disk: Vec<String> = std::fs::read_dir(Path::new(manifest_dir).join("src/bin"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = bins.iter().map(|b| b.name.to_string()).collect();
    listed.sort();
    assert_eq!(
        listed, on_disk,
        "the help test must list every binary of src/bin"
    );
    let crate_start: String = crate_description.chars().take(30).collect();
    for b in bins {
        let mut firsts = Vec::new();
        for flag in ["-h", "--help"] {
            let o = Command::new(b.exe).arg(flag).output().unwrap();
            assert!(o.status.success(), "{} {flag} failed: {o:?}", b.name);
            let out = String::from_utf8(o.stdout).unwrap();
            let first = out.lines().next().unwrap_or("").trim().to_string();
            assert!(
                !first.is_empty() && !first.starts_with("Usage:"),
                "{} {flag} opens without a description:\n{out}",
                b.name
            );
            assert!(
                !first.starts_with(&crate_start),
                "{} {flag} opens with the crate description: {first}",
                b.name
            );
            assert!(
                first.contains(b.replaces),
                "{} {flag}: first line {first:?} does not name {:?}",
                b.name,
                b.replaces
            );
            firsts.push(first.trim_end_matches('.').to_string());
        }
        assert_eq!(
            firsts[0], firsts[1],
            "{}: -h and --help open differently",
            b.name
        );
    }
}

/// One [`Bin`] of the crate under test, by the file stem of its `src/bin/*.rs`:
/// `bin!("tic-eval", "evaluate.py")`. Expands in the calling test, so that
/// `env!("CARGO_BIN_EXE_…")` is that crate's binary.
#[macro_export]
macro_rules! bin {
    ($name:literal, $replaces:expr) => {
        $crate::help::Bin {
            name: $name,
            exe: env!(concat!("CARGO_BIN_EXE_", $name)),
            replaces: $replaces,
        }
    };
}

/// Runs [`check_help`] for the calling crate's binaries, given as `(file stem, text the first
/// help line must contain)` pairs: `check_help!(("tic-eval", "evaluate.py"))`.
#[macro_export]
macro_rules! check_help {
    ($(($name:literal, $replaces:expr)),+ $(,)?) => {
        $crate::help::check_help(
            env!("CARGO_MANIFEST_DIR"),
            env!("CARGO_PKG_DESCRIPTION"),
            &[$($crate::bin!($name, $replaces)),+],
        )
    };
}
