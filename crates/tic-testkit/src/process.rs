//! Running a crate's binaries from its tests (`env!("CARGO_BIN_EXE_…")`) and asserting how
//! they ended, with the binary's output in the failure message.

use std::process::{Command, Output};

/// How tests run binaries: the environment variables set for every binary on top of the
/// test's own.
#[derive(Clone, Copy, Debug)]
pub struct Runner {
    env: &'static [(&'static str, &'static str)],
}

impl Runner {
    /// Binaries run in the test's own environment.
    pub const INHERIT: Runner = Runner { env: &[] };
    /// Binaries log warnings and errors only (`RUST_LOG=warn`), whatever `RUST_LOG` the tests
    /// run under.
    pub const WARN_LOG: Runner = Runner {
        env: &[("RUST_LOG", "warn")],
    };

    /// Runs binary `bin` with `args`; returns its output. Panics when it cannot start.
    pub fn run(&self, bin: &str, args: &[&str]) -> Output {
        Command::new(bin)
            .args(args)
            .envs(self.env.iter().copied())
            .output()
            .unwrap_or_else(|e| panic!("running {bin}: {e}"))
    }

    /// Runs binary `bin` with `args` and asserts it succeeded; returns its standard output.
    pub fn run_ok(&self, bin: &str, args: &[&str]) -> String {
        let o = self.run(bin, args);
        assert!(
            o.status.success(),
            "{bin} {args:?} failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Runs binary `bin` with `args` and asserts it failed; returns its standard error.
    pub fn run_err(&self, bin: &str, args: &[&str]) -> String {
        let o = self.run(bin, args);
        assert!(!o.status.success(), "{bin} {args:?} unexpectedly succeeded");
        String::from_utf8_lossy(&o.stderr).into_owned()
    }
}

/// Runs binary `bin` with `args` in the test's own environment; returns its output.
pub fn run(bin: &str, args: &[&str]) -> Output {
    Runner::INHERIT.run(bin, args)
}

/// Asserts that a command failed (exit status other than 0); returns its standard error.
pub fn failed_stderr(o: &Output) -> String {
    assert!(!o.status.success());
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts that a command succeeded; otherwise fails with its exit code, stdout and stderr.
pub fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Whether the python `py` runs and imports `modules` (a comma-separated list, as in an
/// `import` statement); run from the temp folder, so no module of the caller's folder shadows
/// the installed one. Tests that need a Python package use it to skip with a message.
pub fn python_imports(py: &str, modules: &str) -> bool {
    Command::new(py)
        .args(["-c", &format!("import {modules}")])
        .current_dir(std::env::temp_dir())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
