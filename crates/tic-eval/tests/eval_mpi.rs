//! `tic-eval` under MPI (`mpirun -np 2`, MPICH): the same `eval_results.jsonl`, byte for byte,
//! and the same summary table as one process, on the fixture of `eval_cli.rs` (one task of
//! which fails); a rerun resumes with nothing to do; a run resuming half-way with another
//! split of the tasks still writes the single-process file; a fatal error on rank 0 stops the
//! job with status 2 naming the rank. Needs `mpirun` on PATH (`make deps` installs MPICH) and a
//! build with `--features mpi`.
#![cfg(feature = "mpi")]

mod common;

use common::{fixture, s, Fixture};
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_tic-eval");

/// `tic-eval` on the fixture's run and tasks, writing to `out`: one process, or `mpirun -np W`.
fn eval(world: usize, f: &Fixture, out: &Path, extra: &[&str]) -> Output {
    let mut c = if world == 1 {
        Command::new(BIN)
    } else {
        let mut c = Command::new("mpirun");
        c.args(["-np", &world.to_string(), BIN]);
        c
    };
    c.args(["--train_output_dir", s(&f.run_dir), "--output_dir", s(out)])
        .args(["--data_dir", s(&f.data), "--tasklist", s(&f.tasklist)])
        .args(["--batch_size", "4", "--num_workers", "1", "-q"])
        .args(extra);
    c.output()
        .expect("starting mpirun / tic-eval (is MPICH installed? make deps)")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The summary table without its timing columns (seconds, images/s, texts/s).
fn table(stdout: &[u8]) -> Vec<String> {
    text(stdout)
        .lines()
        .filter(|l| l.starts_with("| "))
        .map(|l| l.split(" | ").take(5).collect::<Vec<_>>().join(" | "))
        .collect()
}

/// `eval_failures.jsonl` without its `unix_time` fields.
fn failures(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("eval_failures.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("unix_time");
            v
        })
        .collect()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn two_ranks_write_what_one_process_writes_and_resume() {
    let f = fixture(false);
    let (one, two) = (f.root.join("one"), f.root.join("two"));
    let solo = eval(1, &f, &one, &[]);
    // tic/datacomp/retrieval/yearly/2017 has no set: it fails, the others are recorded.
    assert_eq!(solo.status.code(), Some(1), "{}", text(&solo.stderr));
    let mpi = eval(2, &f, &two, &[]);
    assert_eq!(mpi.status.code(), Some(1), "{}", text(&mpi.stderr));
    let results = std::fs::read(one.join("eval_results.jsonl")).unwrap();
    assert_eq!(text(&results).lines().count(), 3);
    assert_eq!(
        text(&std::fs::read(two.join("eval_results.jsonl")).unwrap()),
        text(&results)
    );
    assert_eq!(failures(&two), failures(&one));
    assert_eq!(failures(&two).len(), 1);
    // Rank 0 alone prints the table (the same rows) and writes files (the same ones).
    assert_eq!(table(&mpi.stdout), table(&solo.stdout));
    assert_eq!(table(&mpi.stdout).len(), 6, "{}", text(&mpi.stdout));
    assert_eq!(files(&two), files(&one));
    let err = text(&mpi.stderr);
    assert!(
        err.contains("retrieval/yearly/2017") && err.contains("some tasks failed"),
        "{err}"
    );

    // A rerun of the recorded tasks has nothing to do.
    let tasks = [
        "--tasks",
        "tic/datacomp/retrieval/yearly/2016",
        "tic/datacomp/datacompnet/yearly/2016",
        "retrieval/tiny",
    ];
    let again = eval(2, &f, &two, &tasks);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let out = text(&again.stdout);
    assert_eq!(out.matches("skipped (done before)").count(), 3, "{out}");
    assert_eq!(
        std::fs::read(two.join("eval_results.jsonl")).unwrap(),
        results
    );

    // Resuming after the first record deals the other tasks differently; same file.
    let three = f.root.join("three");
    std::fs::create_dir_all(&three).unwrap();
    let first = text(&results).lines().next().unwrap().to_string() + "\n";
    std::fs::write(three.join("eval_results.jsonl"), first).unwrap();
    let resumed = eval(2, &f, &three, &[]);
    assert_eq!(resumed.status.code(), Some(1), "{}", text(&resumed.stderr));
    assert_eq!(
        text(&std::fs::read(three.join("eval_results.jsonl")).unwrap()),
        text(&results)
    );
    assert_eq!(text(&resumed.stdout).matches("skipped").count(), 1);

    // A fatal error on rank 0 (results of another model in the folder) stops every rank.
    let other = format!(
        "tiny-test {}",
        s(&f.run_dir.join("checkpoints/epoch_1.safetensors"))
    );
    let fatal = eval(2, &f, &two, &["--use_model", &other]);
    let err = text(&fatal.stderr);
    assert_eq!(fatal.status.code(), Some(2), "{err}");
    assert!(
        err.contains("rank 0 of 2") && err.contains("another model"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(two.join("eval_results.jsonl")).unwrap(),
        results
    );
}
