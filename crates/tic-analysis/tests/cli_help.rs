//! The binaries' `--help` (moved here from tic-eval's `eval_cli.rs` with the binaries).

#[path = "../../../tests/support/help.rs"]
mod help;
use help::Bin;

/// Every binary's `-h` / `--help` opens with its own job and the script it replaces (issue 16).
#[test]
fn help_opens_with_each_binarys_job() {
    help::check_help(
        env!("CARGO_MANIFEST_DIR"),
        env!("CARGO_PKG_DESCRIPTION"),
        &[
            Bin {
                name: "tic-metrics",
                exe: env!("CARGO_BIN_EXE_tic-metrics"),
                replaces: "no original script",
            },
            Bin {
                name: "tic-report",
                exe: env!("CARGO_BIN_EXE_tic-report"),
                replaces: "no original script",
            },
            Bin {
                name: "tic-sweep",
                exe: env!("CARGO_BIN_EXE_tic-sweep"),
                replaces: "no original script",
            },
        ],
    );
}
