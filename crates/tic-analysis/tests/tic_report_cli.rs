//! End to end: `tic-metrics` then `tic-report` on a tiny results tree (3 methods × 3 steps),
//! checking the report's numbers against hand-computed values, the exit codes of `--check` /
//! `--require-findings`, and that a rerun writes the same bytes.

use std::path::Path;
use std::process::{Command, Output};

// Retrieval matrices E[train][eval] (DataCompNet gets half of each value).
// sequential: ID (.60+.62+.64)/3 = 62.0, backward (.40+.30+.45)/3 = 38.3, forward (.20+.10+.25)/3 = 18.3
const SEQ: [[f64; 3]; 3] = [[0.60, 0.20, 0.10], [0.40, 0.62, 0.25], [0.30, 0.45, 0.64]];
// cumulative-all: ID 1.84/3 = 61.3, backward 1.74/3 = 58.0, forward 0.56/3 = 18.7
const CUM: [[f64; 3]; 3] = [[0.60, 0.20, 0.10], [0.58, 0.61, 0.26], [0.57, 0.59, 0.63]];
// oracle: ID 1.86/3 = 62.0, backward 1.77/3 = 59.0, forward 0.57/3 = 19.0
const ORACLE: [[f64; 3]; 3] = [[0.60, 0.20, 0.10], [0.59, 0.62, 0.27], [0.58, 0.60, 0.64]];
const YEARS: [u32; 3] = [2014, 2015, 2016];

/// Writes `dir/{year}/eval_results.jsonl` (+ `compute.json` when `samples` is given) for the
/// models of steps `rows` of `m`.
fn write_run(
    dir: &Path,
    m: &[[f64; 3]; 3],
    rows: &[usize],
    static_v: f64,
    samples: Option<&[u64]>,
) {
    for &i in rows {
        let d = dir.join(YEARS[i].to_string());
        std::fs::create_dir_all(&d).unwrap();
        let mut lines = String::new();
        for (j, year) in YEARS.iter().enumerate() {
            let v = m[i][j];
            lines.push_str(&format!(
                "{{\"key\": \"tic/datacomp/retrieval/yearly/{year}\", \"dataset\": \"TiC-DataComp-Retrieval-Yearly-{year}\", \"metrics\": {{\"image_retrieval_recall@1\": {v}, \"text_retrieval_recall@1\": {v}, \"mean_recall@1\": {v}, \"main_metric\": {v}}}}}\n"
            ));
            let a = v / 2.0;
            lines.push_str(&format!(
                "{{\"key\": \"tic/datacomp/datacompnet/yearly/{year}\", \"dataset\": \"TiC-DataCompNet-Yearly-{year}\", \"metrics\": {{\"acc1\": {a}, \"acc5\": NaN, \"main_metric\": {a}}}}}\n"
            ));
        }
        lines.push_str(&format!(
            "{{\"key\": \"synth_static\", \"dataset\": \"Synth static\", \"metrics\": {{\"acc1\": {static_v}, \"main_metric\": {static_v}}}}}\n"
        ));
        std::fs::write(d.join("eval_results.jsonl"), lines).unwrap();
        if let Some(s) = samples {
            std::fs::write(
                d.join("compute.json"),
                format!("{{\"samples_seen\": {}}}", s[i]),
            )
            .unwrap();
        }
    }
}

/// The three methods of the main example under `r`, each matrix passed through `adjust`:
/// sequential and cumulative-all see 5120 samples per step; the oracle trains from scratch on
/// all data so far: 1, 2, 3 steps' worth.
fn write_methods(r: &Path, adjust: impl Fn([[f64; 3]; 3]) -> [[f64; 3]; 3]) {
    let warm: &[u64] = &[5120; 3];
    for (name, m, static_v, samples) in [
        ("sequential", SEQ, 0.30, warm),
        ("cumulative-all", CUM, 0.35, warm),
        ("oracle", ORACLE, 0.36, &[5120, 10240, 15360][..]),
    ] {
        write_run(
            &r.join(name),
            &adjust(m),
            &[0, 1, 2],
            static_v,
            Some(samples),
        );
    }
}

/// Runs binary `bin` with `args` in the folder `root`.
fn run_in(root: &Path, bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .current_dir(root)
        .args(args)
        .output()
        .unwrap()
}

fn tic_metrics(root: &Path, runs: &[&str], out: &str, extra: &[&str]) {
    let runs: Vec<String> = runs.iter().map(|r| format!("{r}=results/{r}")).collect();
    let mut args = vec!["--runs"];
    args.extend(runs.iter().map(String::as_str));
    args.extend(["--output-dir", out]);
    args.extend_from_slice(extra);
    let o = run_in(root, env!("CARGO_BIN_EXE_tic-metrics"), &args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn tic_report(root: &Path, args: &[&str]) -> Output {
    run_in(root, env!("CARGO_BIN_EXE_tic-report"), args)
}

/// Runs `tic-report` with `args` in `root`, which must succeed; returns the Markdown it wrote
/// to `output` and its standard output.
fn report_ok(root: &Path, args: &[&str], output: &str) -> (String, String) {
    let o = tic_report(root, args);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    let md = std::fs::read_to_string(root.join(output)).unwrap();
    (md, text(&o.stdout))
}

/// Every one of `wants` is in the report and on standard output.
fn assert_in_both(md: &str, stdout: &str, wants: &[&str]) {
    for want in wants {
        assert!(md.contains(want), "missing {want:?} in\n{md}");
        assert!(
            stdout.contains(want),
            "missing {want:?} in stdout\n{stdout}"
        );
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every one of `wants` is in `text` (which a failure shows).
fn assert_contains_all(text: &str, wants: &[&str]) {
    for want in wants {
        assert!(text.contains(want), "{text}");
    }
}

/// Creates the training run folder `run` with a `compute.json` of a finished run of 20 steps
/// of 256 samples.
fn write_finished_compute(run: &Path) {
    std::fs::create_dir_all(run).unwrap();
    std::fs::write(
        run.join("compute.json"),
        r#"{"samples_seen": 5120, "steps": 20, "batch_size": 256, "finished": true}"#,
    )
    .unwrap();
}

/// Runs `tic-sweep` with `args` in `root`.
fn tic_sweep(root: &Path, args: &[&str]) -> Output {
    run_in(root, env!("CARGO_BIN_EXE_tic-sweep"), args)
}

fn write_training_runs(root: &Path) {
    let runs = root.join("runs");
    let init = runs.join("init_2014");
    write_finished_compute(&init);
    // Losses 4.0, 3.9, ..., 2.1: first 10 mean 3.55, last 10 mean 2.55; 20 × 0.25 s; 1024/s.
    let lines: String = (0..20)
        .map(|k| {
            format!(
                "{{\"step\": {}, \"epoch\": 0, \"loss\": {}, \"lr\": 0.001, \"samples_per_s\": 1024.0, \"data_wait_s\": 0.0, \"step_s\": 0.25, \"skipped\": false}}\n",
                k + 1,
                4.0 - 0.1 * k as f64
            )
        })
        .collect();
    std::fs::write(init.join("metrics.jsonl"), lines).unwrap();
    // Zero-shot results after steps 10 and 20, as tic-train --imagenet_val writes them.
    let zs = |top1: f64| tic_train::zeroshot::ZeroShotResult {
        top1,
        top5: 0.9,
        num_samples: 40,
    };
    let results = format!("{}\n{}\n", zs(0.25).record(1, 10), zs(0.5).record(2, 20));
    std::fs::create_dir_all(init.join("checkpoints")).unwrap();
    std::fs::write(init.join("checkpoints/results.jsonl"), results).unwrap();
    std::os::unix::fs::symlink("init_2014", runs.join("sequential_2014")).unwrap();
    write_finished_compute(&runs.join("sequential_2015"));
}

/// The training curves of `write_training_runs`' run: four figures next to the report, as PNG
/// (900 × 500) and SVG, linked in the "Training runs" section and listed on stdout.
fn check_training_curves(root: &Path, md: &str, stdout: &str) {
    let section = &md[md.find("## Training runs").expect("training section")..];
    for stem in [
        "training_loss",
        "training_lr",
        "training_samples_per_s",
        "training_zero_shot_top1",
    ] {
        let link = format!("(training_curves/{stem}.png)");
        assert!(section.contains(&link), "{link} not in {section}");
        let png = root
            .join("report/training_curves")
            .join(format!("{stem}.png"));
        assert!(
            stdout.contains(&png.display().to_string()) || stdout.contains(&format!("{stem}.png")),
            "{stdout}"
        );
        let img = image::open(&png).unwrap();
        assert_eq!((img.width(), img.height()), (900, 500));
        let svg = std::fs::read_to_string(png.with_extension("svg")).unwrap();
        assert!(
            svg.contains("init_2014"),
            "the run's name in the legend of {stem}.svg"
        );
    }
}

#[test]
fn tic_report_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let r = root.join("results");
    write_methods(&r, |m| m);
    tic_metrics(
        root,
        &["sequential", "cumulative-all", "oracle"],
        "metrics",
        &[],
    );
    write_training_runs(root);
    std::fs::write(
        root.join("synth.json"),
        r#"{"seed": 7, "num_samples": 3000, "num_shards": 4, "first_year": 2014, "num_years": 3,
            "image_size": 64, "eval_fraction": 0.1, "concepts": [],
            "samples_per_year": {"2014": 1000, "2015": 1000, "2016": 1000}, "bytes": 1}"#,
    )
    .unwrap();

    let args = [
        "--metrics",
        "metrics",
        "--runs-dir",
        "runs",
        "--synth",
        "synth.json",
        "--output",
        "report/report.md",
        "--check",
        "--require-findings",
    ];
    let (md, stdout) = report_ok(root, &args, "report/report.md");
    check_training_curves(root, &md, &stdout);

    // Main tables: hand-computed from the matrices above; compute 3 × 5120 = 15.4k for the
    // warm starts, 5120 × (1+2+3) = 30.7k (2×) for the oracle; static = synth_static.
    assert_in_both(
        &md,
        &stdout,
        &[
            "| sequential | 62.0 | 38.3 | 18.3 | 30.0 | 15.4k | 1.00× |",
            "| cumulative-all | 61.3 | 58.0 | 18.7 | 35.0 | 15.4k | 1.00× |",
            "| oracle | 62.0 | 59.0 | 19.0 | 36.0 | 30.7k | 2.00× |",
            // DataCompNet: half of every value.
            "| sequential | 31.0 | 19.2 | 9.2 | 30.0 | 15.4k | 1.00× |",
            "| cumulative-all | 30.7 | 29.0 | 9.3 | 35.0 | 15.4k | 1.00× |",
            "| oracle | 31.0 | 29.5 | 9.5 | 36.0 | 30.7k | 2.00× |",
        ],
    );
    assert!(md.starts_with("# TiC-CLIP report\n"), "{md}");
    assert!(
        md.contains("### datacomp retrieval yearly (mean_recall@1, %)"),
        "{md}"
    );
    assert!(
        md.contains("### datacomp datacompnet yearly (acc1, %)"),
        "{md}"
    );
    assert!(!md.contains("incomplete matrix"), "{md}");

    // Issue 16: `--output -` puts the Markdown (and only it) on stdout, the console summary on
    // stderr; the file written before is left alone.
    let mut to_stdout = args;
    to_stdout[7] = "-";
    let o2 = tic_report(root, &to_stdout);
    assert!(o2.status.success(), "stderr: {}", text(&o2.stderr));
    let md2 = text(&o2.stdout);
    assert!(md2.starts_with("# TiC-CLIP report\n"), "{md2}");
    assert!(md2.contains("| oracle | 62.0 | 59.0 | 19.0 | 36.0 | 30.7k | 2.00× |"));
    assert!(!md2.contains("\nreport: "), "{md2}");
    assert!(
        text(&o2.stderr).contains("report: -"),
        "{}",
        text(&o2.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(root.join("report/report.md")).unwrap(),
        md
    );

    // Findings.
    assert_in_both(
        &md,
        &stdout,
        &[
            "- (a) sequential loses backward transfer against cumulative: **reproduced** — \
             datacomp-retrieval-yearly: backward sequential 38.3 < cumulative-all 58.0; \
             datacomp-datacompnet-yearly: backward sequential 19.2 < cumulative-all 29.0",
            "- (b) cumulative warm starts reach the oracle's level at a fraction of its compute: \
             **reproduced**",
            "compute cumulative-all 15.4k = 0.50× oracle's 30.7k",
            "- (c) restart (sequential budget, random init) vs oracle: **not applicable** — no method named restart",
        ],
    );

    // One --metrics folder: the report says that its verdicts rest on one seed.
    for out in [&md, &stdout] {
        assert!(
            out.contains(
                "One seed: every number comes from a single run per method, so these verdicts \
                 cannot be judged beyond seed-to-seed noise"
            ),
            "{out}"
        );
    }

    // Data, matrices, plots, training runs, regenerate line.
    assert!(
        md.contains("seed 7, 3,000 samples in 4 shards, years 2014–2016"),
        "{md}"
    );
    assert!(md.contains("| 2015 | 1,000 |"), "{md}");
    assert!(
        md.contains("### datacomp retrieval yearly — sequential (mean_recall@1)"),
        "{md}"
    );
    assert!(md.contains("| 2015 | 40.0 | 62.0 | 25.0 |"), "{md}");
    assert!(md.contains(
        "![sequential — datacomp-retrieval-yearly](../metrics/heatmap_datacomp-retrieval-yearly_sequential.png)"
    ));
    assert!(
        md.contains("![accuracy vs compute](../metrics/compute.png)"),
        "{md}"
    );
    assert!(
        md.contains("| init_2014 (shared with sequential_2014) | 20 | 5.1k | 3.550 → 2.550 | 5.0 s | 1024.0 |"),
        "{md}"
    );
    assert!(
        md.contains("| sequential_2015 | 20 | 5.1k | – | – | – |"),
        "{md}"
    );
    assert!(md.contains(
        "tic-report --metrics metrics --runs-dir runs --synth synth.json --output report/report.md --check --require-findings\n"
    ));
    assert!(stdout.contains("report: report/report.md"), "{stdout}");
    assert!(
        stdout.contains("plot: metrics/heatmap_datacomp-datacompnet-yearly_oracle.png"),
        "{stdout}"
    );
    assert!(stdout.contains("plot: metrics/compute.png"), "{stdout}");

    // A rerun writes the same bytes.
    let o = tic_report(root, &args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(root.join("report/report.md")).unwrap(),
        md
    );

    // A tolerance of 0.5 points: ID 61.3 < 62.0 − 0.5, so (b) is not reproduced.
    let strict_args = [
        "--metrics",
        "metrics",
        "--output",
        "strict.md",
        "--oracle-tolerance",
        "0.005",
    ];
    let o = tic_report(root, &[&strict_args[..], &["--require-findings"]].concat());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("not reproduced"),
        "{}",
        text(&o.stderr)
    );
    let strict = std::fs::read_to_string(root.join("strict.md")).unwrap();
    assert_contains_all(
        &strict,
        &[
            "of its compute: **not reproduced** — datacomp-retrieval-yearly:",
            "ID cumulative-all 61.3 < oracle 62.0 − 0.5",
            "--oracle-tolerance 0.005",
        ],
    );
    assert!(!strict.contains("## Training runs") && !strict.contains("## Data"));
    // Without --require-findings the same report exits 0.
    let o = tic_report(root, &strict_args);
    assert!(o.status.success(), "{}", text(&o.stderr));
}

#[test]
fn tic_report_check_lists_problems() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let r = root.join("results");
    write_run(
        &r.join("sequential"),
        &SEQ,
        &[0, 1, 2],
        0.30,
        Some(&[100; 3]),
    );
    // Trained once: one row of the matrix.
    write_run(&r.join("oracle"), &ORACLE, &[2], 0.36, Some(&[0, 0, 300]));
    // No compute.json, and a percentage where a fraction belongs.
    let mut bad = SEQ;
    bad[1][0] = 40.0;
    write_run(&r.join("restart"), &bad, &[0, 1, 2], 0.30, None);
    tic_metrics(
        root,
        &["sequential", "oracle", "restart"],
        "m",
        &["--no-plots"],
    );

    let o = tic_report(root, &["--metrics", "m", "--output", "r.md", "--check"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    for p in [
        "oracle / datacomp-retrieval-yearly: incomplete matrix (3/9 cells)",
        "restart: no compute figure",
        "restart / datacomp-retrieval-yearly: cell (train 2015, eval 2014) = 40 is outside [0, 1]",
        "restart / datacomp-retrieval-yearly: backward = ",
    ] {
        assert!(err.contains(p), "missing {p:?} in\n{err}");
    }
    assert!(!err.contains("sequential"), "{err}");
    // The report is written all the same, with the incomplete matrix marked.
    let md = std::fs::read_to_string(root.join("r.md")).unwrap();
    assert!(md.contains("| oracle * |"), "{md}");
    assert!(md.contains("No plot in `m`"), "{md}");
    // Without --check: exit 0.
    let o = tic_report(root, &["--metrics", "m", "--output", "r.md"]);
    assert!(o.status.success(), "{}", text(&o.stderr));

    // A missing report.json is an error (exit 2) naming the file.
    let o = tic_report(root, &["--metrics", "nowhere", "--output", "x.md"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("nowhere/report.json"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn tic_report_over_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let r = root.join("results");
    let runs = ["sequential", "cumulative-all", "oracle"];
    // Two seeds: the second one's backward transfer is 2 points higher for every method.
    for (out, d) in [("m1", 0.0), ("m2", 0.02)] {
        let shift = |m: [[f64; 3]; 3]| {
            let mut m = m;
            for (i, row) in m.iter_mut().enumerate() {
                for v in row.iter_mut().take(i) {
                    *v += d;
                }
            }
            m
        };
        let _ = std::fs::remove_dir_all(&r);
        write_methods(&r, shift);
        tic_metrics(root, &runs, out, &["--no-plots"]);
    }
    let args = [
        "--metrics",
        "m1",
        "--metrics",
        "m2",
        "--output",
        "seeds.md",
        "--json",
        "seeds.json",
        "--check",
    ];
    let (md, stdout) = report_ok(root, &args, "seeds.md");
    assert_in_both(
        &md,
        &stdout,
        &[
            "### datacomp retrieval yearly (mean_recall@1, %, mean ± std over 2 seeds)",
            // Backward 38.3 and 40.3: mean 39.3, std 1.4.
            "| sequential | 62.0 ± 0.0 | 39.3 ± 1.4 | 18.3 ± 0.0 | 30.0 ± 0.0 | 15.4k | 1.00× |",
            "Judged on 2 seeds",
            "- (a) sequential loses backward transfer against cumulative: **reproduced** (2 seeds) — \
             datacomp-retrieval-yearly: backward sequential 39.3 ± 1.4 < cumulative-all 59.0 ± 1.4 \
             (gap 19.7, pooled std 1.4)",
        ],
    );
    assert!(md.contains("(`m1/report.json`, `m2/report.json`)"), "{md}");
    assert!(md.contains("values in %, mean over 2 seeds."), "{md}");
    assert!(md.contains(
        "tic-report --metrics m1 --metrics m2 --output seeds.md --json seeds.json --check\n"
    ));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("seeds.json")).unwrap()).unwrap();
    assert_eq!(j["seeds"], serde_json::json!(["m1", "m2"]));
    let back = &j["methods"][0]["families"][0]["backward"];
    assert_eq!(back["values"].as_array().unwrap().len(), 2, "{back}");
    assert_eq!(j["findings"][0]["verdict"], "reproduced");

    // tic-sweep over two "budgets" (the same report twice): points sorted by budget, the
    // oracle − cumulative-all ID gap paired by seed (62.0 − 61.3 on both seeds), plots written.
    let o = tic_sweep(
        root,
        &[
            "--budget",
            "100=seeds.json",
            "--budget",
            "50=seeds.json",
            "--output-dir",
            "sweep",
        ],
    );
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    let sweep = std::fs::read_to_string(root.join("sweep/sweep.md")).unwrap();
    let row = "| 2 | 61.3 ± 0.0 | 62.0 ± 0.0 | 0.7 ± 0.0 |";
    let (r50, r100) = (
        sweep.find(&format!("| 50 {row}")),
        sweep.find(&format!("| 100 {row}")),
    );
    assert!(r50.is_some() && r100 > r50, "{sweep}");
    for f in ["sweep.json", "sweep.png", "sweep.svg"] {
        assert!(root.join("sweep").join(f).is_file(), "{f}");
    }
    let o = tic_sweep(
        root,
        &[
            "--budget",
            "50=seeds.json",
            "--method",
            "lwf",
            "--output-dir",
            "sweep2",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("no method \"lwf\""),
        "{}",
        text(&o.stderr)
    );

    // A folder of another experiment (other methods) is an error.
    tic_metrics(root, &["sequential", "oracle"], "m3", &["--no-plots"]);
    let o = tic_report(
        root,
        &["--metrics", "m1", "--metrics", "m3", "--output", "x.md"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("m3: methods"),
        "{}",
        text(&o.stderr)
    );
}
