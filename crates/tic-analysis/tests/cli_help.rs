//! The binaries' `--help` (moved here from tic-eval's `eval_cli.rs` with the binaries).

/// Every binary's `-h` / `--help` opens with its own job and the script it replaces (issue 16).
#[test]
fn help_opens_with_each_binarys_job() {
    tic_testkit::check_help!(
        ("tic-aggregate", "aggregate_scores.py"),
        ("tic-metrics", "no original script"),
        ("tic-report", "no original script"),
        ("tic-sweep", "no original script"),
    );
}
