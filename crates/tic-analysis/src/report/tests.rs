use super::data::thousands;
use super::training::training_section;
use super::*;
use crate::dynamic::{
    transfer_summary, FamilyKey, FamilyMatrix, RunReport, StaticSummary, StepPoint,
};
use crate::tables::human_count;
use std::path::Path;
use tic_splits::taskkey::{TicFamily, Timescale};

const STEPS: [&str; 3] = ["2014", "2015", "2016"];

fn fam(family: TicFamily) -> FamilyKey {
    FamilyKey {
        dataset: "datacomp".into(),
        family,
        timescale: Timescale::Yearly,
    }
}

fn full(m: [[f64; 3]; 3]) -> Vec<Vec<Option<f64>>> {
    m.iter()
        .map(|r| r.iter().map(|v| Some(*v)).collect())
        .collect()
}

/// A run with the same matrix for retrieval and DataCompNet.
fn run(name: &str, matrix: Vec<Vec<Option<f64>>>, compute: Option<f64>) -> RunReport {
    let fm = |family| FamilyMatrix {
        family: fam(family),
        metric: "m".into(),
        eval_times: STEPS.map(String::from).to_vec(),
        raw: matrix.clone(),
        matrix: matrix.clone(),
        summary: transfer_summary(&matrix),
    };
    RunReport {
        name: name.into(),
        train_times: STEPS.map(String::from).to_vec(),
        matrices: vec![fm(TicFamily::Retrieval), fm(TicFamily::Datacompnet)],
        static_tasks: StaticSummary {
            time: Some("2016".into()),
            average: Some(0.3),
            tasks: [("synth_static".to_string(), Some(0.3))].into(),
            ..Default::default()
        },
        per_step: vec![StepPoint {
            time: "2016".into(),
            samples_seen: compute,
            cumulative_samples: compute,
            cumulative_macs: None,
            imagenet: None,
            imagenet_and_shifts: None,
            seen_so_far: vec![None, None],
        }],
    }
}

fn report(runs: Vec<RunReport>) -> Report {
    Report {
        steps: STEPS.map(String::from).to_vec(),
        macs_per_sample: None,
        families: vec![fam(TicFamily::Retrieval), fam(TicFamily::Datacompnet)],
        runs,
    }
}

// ID 62.0, backward 38.3, forward 18.3
const M_SEQ: [[f64; 3]; 3] = [[0.60, 0.20, 0.10], [0.40, 0.62, 0.25], [0.30, 0.45, 0.64]];
// ID 61.3, backward 58.0, forward 18.7
const M_CUM: [[f64; 3]; 3] = [[0.60, 0.20, 0.10], [0.58, 0.61, 0.26], [0.57, 0.59, 0.63]];
// ID 62.0, backward 59.0, forward 19.0
const M_ORACLE: [[f64; 3]; 3] = [[0.60, 0.20, 0.10], [0.59, 0.62, 0.27], [0.58, 0.60, 0.64]];

fn good() -> Report {
    report(vec![
        run(SEQUENTIAL, full(M_SEQ), Some(15360.0)),
        run(CUMULATIVE_ALL, full(M_CUM), Some(15360.0)),
        run(ORACLE, full(M_ORACLE), Some(30720.0)),
    ])
}

/// Every one of `wants` is in `text` (which a failure shows).
fn assert_contains_all(text: &str, wants: &[&str]) {
    for want in wants {
        assert!(text.contains(want), "{text}");
    }
}

fn get<'a>(fs: &'a [Finding], id: &str) -> &'a Finding {
    fs.iter().find(|f| f.id == id).unwrap()
}

#[test]
fn findings_reproduced() {
    let fs = findings(&good(), 0.02);
    let a = get(&fs, "a");
    assert_eq!(a.verdict, Verdict::Reproduced, "{a:?}");
    assert_eq!(a.evidence.len(), 2);
    assert_eq!(
        a.evidence[0].text,
        "datacomp-retrieval-yearly: backward sequential 38.3 < cumulative-all 58.0"
    );
    let b = get(&fs, "b");
    assert_eq!(b.verdict, Verdict::Reproduced, "{b:?}");
    assert_eq!(
        b.evidence[0].text,
        "datacomp-retrieval-yearly: ID cumulative-all 61.3 ≥ oracle 62.0 − 2.0, \
         backward cumulative-all 58.0 ≥ oracle 59.0 − 2.0"
    );
    let compute = b.evidence.last().unwrap();
    assert_eq!(compute.family, None);
    assert_eq!(
        compute.text,
        "compute cumulative-all 15.4k = 0.50× oracle's 30.7k"
    );
    // No restart run: (c) does not apply.
    let c = get(&fs, "c");
    assert_eq!(c.verdict, Verdict::NotApplicable);
    assert!(c.line().contains("no method named restart"), "{}", c.line());
}

#[test]
fn chance_level_families_do_not_count() {
    // DataCompNet at chance for every method, with sequential "better" there: (a) and (b)
    // are decided by retrieval alone, and the DataCompNet line says why it is not counted.
    let mut r = good();
    let chance = |m: [[f64; 3]; 3]| full(m.map(|row| row.map(|v| v / 20.0)));
    for run in &mut r.runs {
        let m = match run.name.as_str() {
            SEQUENTIAL => chance(M_CUM),
            _ => chance(M_SEQ),
        };
        run.matrices[1].summary = transfer_summary(&m);
        run.matrices[1].matrix = m;
    }
    let fs = findings(&r, 0.02);
    for id in ["a", "b"] {
        let f = get(&fs, id);
        assert_eq!(f.verdict, Verdict::Reproduced, "{f:?}");
        let dcn = f
            .evidence
            .iter()
            .find(|e| e.family.as_deref() == Some("datacomp-datacompnet-yearly"));
        let dcn = dcn.unwrap();
        assert_eq!(dcn.holds, None);
        assert!(
            dcn.text
                .contains("not counted: at chance level (best ID 3.1 < 5.0)"),
            "{}",
            dcn.text
        );
    }
    // With no minimum signal the chance-level family takes part; its backward gap (0.98
    // points) is below the default 1-point margin, so it decides nothing...
    let a = get(&findings_with(&r, 0.02, 0.0), "a").clone();
    assert_eq!(a.verdict, Verdict::Reproduced);
    assert!(a.line().contains("gap below 1.0"), "{}", a.line());
    // ... and without a margin either, it decides (a): not reproduced.
    let a = get(&findings_with_gap(&r, 0.02, 0.0, 0.0), "a").clone();
    assert_eq!(a.verdict, Verdict::NotReproduced);
}

#[test]
fn findings_not_reproduced() {
    // Sequential keeps more of the past than cumulative-all.
    let r = report(vec![
        run(SEQUENTIAL, full(M_CUM), Some(1.0)),
        run(CUMULATIVE_ALL, full(M_SEQ), Some(1.0)),
    ]);
    let a = get(&findings(&r, 0.02), "a").clone();
    assert_eq!(a.verdict, Verdict::NotReproduced);
    assert!(
        a.line().contains("58.0 ≥ cumulative-all 38.3"),
        "{}",
        a.line()
    );

    // cumulative-exp present and worse than sequential: (a) fails even if -all holds.
    let mut r = good();
    let worse = M_SEQ.map(|row| row.map(|v| v * 0.5));
    r.runs.push(run(CUMULATIVE_EXP, full(worse), Some(1.0)));
    let a = get(&findings(&r, 0.02), "a").clone();
    assert_eq!(a.verdict, Verdict::NotReproduced);
    assert_eq!(a.evidence[0].holds, Some(false));

    // ... while one exactly as good as sequential is within the margin: undecided.
    let mut r = good();
    r.runs.push(run(CUMULATIVE_EXP, full(M_SEQ), Some(1.0)));
    let a = get(&findings(&r, 0.02), "a").clone();
    assert_eq!(a.evidence[0].holds, None, "{a:?}");
    assert!(a.evidence[0].undecided, "{a:?}");
    assert_eq!(a.verdict, Verdict::Undecided);

    // A tighter tolerance: ID 61.3 < 62.0 − 0.5.
    let b = get(&findings(&good(), 0.005), "b").clone();
    assert_eq!(b.verdict, Verdict::NotReproduced, "{b:?}");
    assert!(
        b.line().contains("61.3 < oracle 62.0 − 0.5"),
        "{}",
        b.line()
    );

    // Same numbers but the oracle cost less than cumulative-all.
    let mut r = good();
    r.runs[2].per_step[0].cumulative_samples = Some(10000.0);
    let b = get(&findings(&r, 0.02), "b").clone();
    assert_eq!(b.verdict, Verdict::NotReproduced);
    assert_eq!(b.evidence.last().unwrap().holds, Some(false));
}

#[test]
fn findings_not_applicable_and_informational() {
    // Only sequential: (a) and (b) need other methods.
    let r = report(vec![run(SEQUENTIAL, full(M_SEQ), Some(1.0))]);
    for f in findings(&r, 0.02) {
        assert_eq!(f.verdict, Verdict::NotApplicable, "{f:?}");
    }
    // (b) without a compute figure for the oracle.
    let mut r = good();
    r.runs[2].per_step[0].cumulative_samples = None;
    let b = get(&findings(&r, 0.02), "b").clone();
    assert_eq!(b.verdict, Verdict::NotApplicable);
    assert!(b.line().contains("compute unknown"), "{}", b.line());
    // T = 1: no backward transfer anywhere.
    let one = |name: &str| {
        let mut x = run(name, vec![vec![Some(0.5)]], Some(1.0));
        for m in &mut x.matrices {
            m.summary = transfer_summary(&m.matrix);
        }
        x
    };
    let mut r = report(vec![one(SEQUENTIAL), one(CUMULATIVE_ALL), one(ORACLE)]);
    r.steps.truncate(1);
    let fs = findings(&r, 0.02);
    assert_eq!(get(&fs, "a").verdict, Verdict::NotApplicable);
    assert_eq!(get(&fs, "b").verdict, Verdict::NotApplicable);
    // restart + oracle: (c) prints numbers.
    let mut r = good();
    r.runs.push(run(RESTART, full(M_SEQ), Some(15360.0)));
    let c = get(&findings(&r, 0.02), "c").clone();
    assert_eq!(c.verdict, Verdict::Informational);
    assert_contains_all(
        &c.line(),
        &[
            "datacomp-retrieval-yearly: ID 62.0 vs 62.0, backward 38.3 vs 59.0, forward 18.3 vs 19.0",
            "compute 15.4k vs 30.7k (0.50×)",
        ],
    );
}

#[test]
fn check_accepts_a_sound_report() {
    assert_eq!(check(&good()), Vec::<String>::new());
}

#[test]
fn check_flags_nan_out_of_range_and_incomplete() {
    // A NaN cell (and the summaries it poisons).
    let mut m = full(M_SEQ);
    m[1][0] = Some(f64::NAN);
    let r = report(vec![run(SEQUENTIAL, m, Some(1.0))]);
    let p = check(&r).join("\n");
    assert!(
        p.contains("sequential / datacomp-retrieval-yearly: cell (train 2015, eval 2014) is not finite (NaN)"),
        "{p}"
    );
    assert!(p.contains("backward is not finite"), "{p}");

    // A value > 1 (a percentage where a fraction belongs).
    let mut m = full(M_SEQ);
    m[2][2] = Some(64.0);
    let p = check(&report(vec![run(SEQUENTIAL, m, Some(1.0))])).join("\n");
    assert!(p.contains("ID = 21.74"), "{p}");
    assert!(
        p.contains("cell (train 2016, eval 2016) = 64 is outside [0, 1]"),
        "{p}"
    );

    // An oracle trained once: incomplete matrix.
    let mut m = vec![vec![None; 3]; 3];
    m[2] = vec![Some(0.5), Some(0.5), Some(0.5)];
    let p = check(&report(vec![run(ORACLE, m, Some(1.0))]));
    assert!(
        p.contains(
            &"oracle / datacomp-retrieval-yearly: incomplete matrix (3/9 cells)".to_string()
        ),
        "{p:?}"
    );

    // A static value > 1, a missing static average, no compute, one step.
    let mut r = good();
    r.runs[0].static_tasks.tasks.insert("x".into(), Some(1.5));
    r.runs[1].static_tasks.average = None;
    r.runs[2].per_step[0].cumulative_samples = None;
    r.steps.truncate(1);
    let p = check(&r).join("\n");
    assert_contains_all(
        &p,
        &[
            "sequential / static: x = 1.5 is outside [0, 1]",
            "cumulative-all / static: average is missing",
            "oracle: no compute figure",
            "report.json has 1 training step(s)",
        ],
    );
}

#[test]
fn main_table_values_and_compute_ratio() {
    let mut r = good();
    r.runs[2].static_tasks.average = None;
    let mut m = full(M_ORACLE);
    m[0][0] = None;
    r.runs[2].matrices[0].summary = transfer_summary(&m);
    let t = main_tables(&r);
    assert!(
        t.contains("| sequential | 62.0 | 38.3 | 18.3 | 30.0 | 15.4k | 1.00× |"),
        "{t}"
    );
    assert!(
        t.contains("| oracle * | 63.0 | 59.0 | 19.0 | – | 30.7k | 2.00× |"),
        "{t}"
    );
    assert!(t.contains("`*` incomplete matrix"), "{t}");
}

#[test]
fn human_counts_and_quoting() {
    assert_eq!(human_count(Some(15360.0)), "15.4k");
    assert_eq!(human_count(Some(960.0)), "960");
    assert_eq!(human_count(Some(999_960.0)), "1.0M");
    assert_eq!(human_count(Some(18_432_000.0)), "18.4M");
    assert_eq!(human_count(Some(1.847e9)), "1.8B");
    assert_eq!(human_count(None), "–");
    assert_eq!(shell_quote("out/demo/report.md"), "out/demo/report.md");
    assert_eq!(shell_quote("My report"), "'My report'");
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
    assert_eq!(thousands(1234567), "1,234,567");
    assert_eq!(thousands(12), "12");
}

#[test]
fn relative_links() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("a/metrics")).unwrap();
    std::fs::create_dir_all(root.join("b/c")).unwrap();
    let l = relative_link(&root.join("b/c"), &root.join("a/metrics/x.png")).unwrap();
    assert_eq!(l, "../../a/metrics/x.png");
    let l = relative_link(&root.join("a"), &root.join("a/metrics/x.png")).unwrap();
    assert_eq!(l, "metrics/x.png");
}

#[test]
fn training_runs_summarize_and_share_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path();
    let init = runs.join("init_2014");
    std::fs::create_dir_all(&init).unwrap();
    std::fs::write(
        init.join("compute.json"),
        r#"{"samples_seen": 3840, "steps": 12, "batch_size": 32, "finished": true}"#,
    )
    .unwrap();
    // Losses 12, 11, ..., 1; step_s 0.5; samples_per_s 64 then 32.
    let mut lines = String::new();
    for k in 0..12 {
        let rate = if k < 6 { 64.0 } else { 32.0 };
        lines.push_str(&format!(
            "{{\"step\": {}, \"epoch\": 0, \"loss\": {}, \"lr\": 0.001, \"samples_per_s\": {rate}, \"step_s\": 0.5, \"skipped\": false}}\n",
            k + 1,
            12 - k
        ));
    }
    // A skipped step (no loss) still took time.
    lines.push_str("{\"step\": 13, \"loss\": null, \"samples_per_s\": 1.0, \"step_s\": 1.0, \"skipped\": true}\n");
    std::fs::write(init.join("metrics.jsonl"), lines).unwrap();
    std::os::unix::fs::symlink("init_2014", runs.join("sequential_2014")).unwrap();
    std::os::unix::fs::symlink("init_2014", runs.join("cumulative-all_2014")).unwrap();
    let seq = runs.join("sequential_2015");
    std::fs::create_dir_all(&seq).unwrap();
    std::fs::write(
        seq.join("compute.json"),
        r#"{"samples_seen": 100, "steps": 3, "finished": false}"#,
    )
    .unwrap();
    std::fs::create_dir_all(runs.join("logs")).unwrap(); // not a run

    let got = training_runs(runs).unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    let r = &got[0];
    assert_eq!(r.name, "init_2014");
    assert_eq!(r.shared_with, ["cumulative-all_2014", "sequential_2014"]);
    assert_eq!(r.steps, Some(12));
    assert_eq!(r.samples_seen, Some(3840.0));
    assert_eq!(r.first_loss, Some(7.5)); // mean of 12..3
    assert_eq!(r.last_loss, Some(5.5)); // mean of 10..1
    assert_eq!(r.train_seconds, Some(7.0));
    assert_eq!(r.mean_samples_per_s, Some(48.0));
    assert_eq!(got[1].name, "sequential_2015");
    assert_eq!(got[1].first_loss, None);
    // Curves: applied steps only for the loss and throughput; the skipped step has no lr.
    let c = &r.curves;
    assert_eq!(c.loss.len(), 12);
    assert_eq!((c.loss[0], c.loss[11]), ((1.0, 12.0), (12.0, 1.0)));
    assert_eq!(c.lr.len(), 12);
    assert_eq!(c.samples_per_s.len(), 12);
    assert!(c.zero_shot_top1.is_empty());
    assert!(got[1].curves.is_empty());
    let s = training_section("runs", &got, &[]);
    assert!(
        s.contains("| init_2014 (shared with cumulative-all_2014, sequential_2014) | 12 | 3.8k | 7.500 → 5.500 | 7.0 s | 48.0 |"),
        "{s}"
    );
    assert!(
        s.contains("| sequential_2015 | 3 (unfinished) | 100 | – | – | – |"),
        "{s}"
    );
}

// ---- several seeds ---------------------------------------------------------------------------

/// `m` with `d` added to every cell below the diagonal (backward transfer + `d`).
fn backward_plus(m: [[f64; 3]; 3], d: f64) -> Vec<Vec<Option<f64>>> {
    let mut out = full(m);
    for (i, row) in out.iter_mut().enumerate() {
        for cell in row.iter_mut().take(i) {
            *cell = cell.map(|x| x + d);
        }
    }
    out
}

/// Three seeds of [`good`] whose backward transfer moves by `seq[k]` (sequential) and
/// `cum[k]` (cumulative-all) in seed `k`.
fn three_seeds(seq: [f64; 3], cum: [f64; 3]) -> Seeds {
    let reports = (0..3)
        .map(|k| {
            report(vec![
                run(SEQUENTIAL, backward_plus(M_SEQ, seq[k]), Some(15360.0)),
                run(CUMULATIVE_ALL, backward_plus(M_CUM, cum[k]), Some(15360.0)),
                run(ORACLE, full(M_ORACLE), Some(30720.0)),
            ])
        })
        .collect();
    Seeds::new(vec!["s0".into(), "s1".into(), "s2".into()], reports).unwrap()
}

fn judge(seeds: &Seeds) -> Vec<Finding> {
    seed_findings(seeds, 0.02, DEFAULT_MIN_SIGNAL, DEFAULT_MIN_GAP)
}

#[test]
fn stats_over_seeds() {
    let s = Stat {
        values: vec![Some(0.1), None, Some(0.3)],
    };
    assert_eq!(s.n(), 2);
    assert!((s.mean().unwrap() - 0.2).abs() < 1e-12);
    assert!((s.std().unwrap() - 0.02f64.sqrt()).abs() < 1e-12);
    assert_eq!(s.percent(), "20.0 ± 14.1");
    let one = Stat {
        values: vec![Some(0.5)],
    };
    assert_eq!((one.std(), one.percent()), (None, "50.0".to_string()));
    assert_eq!(pooled_std(&one, &s), None);
    let t = Stat {
        values: vec![Some(0.0), Some(0.2), Some(0.4)],
    };
    // ((2−1)·0.02 + (3−1)·0.04) / 3 = 0.1/3.
    assert!((pooled_std(&s, &t).unwrap() - (0.1f64 / 3.0).sqrt()).abs() < 1e-12);
    // Beyond the spread it decides, within it (or below the floor) it does not.
    assert_eq!(decide(0.05, 0.01, Some(0.02)), Some(true));
    assert_eq!(decide(-0.05, 0.01, Some(0.02)), Some(false));
    assert_eq!(decide(0.02, 0.01, Some(0.02)), None);
    assert_eq!(decide(0.005, 0.01, None), None);
    assert_eq!(decide(0.005, 0.0, None), Some(true));
}

#[test]
fn one_seed_says_that_it_is_one_seed() {
    let seeds = Seeds::single(good());
    let fs = judge(&seeds);
    // The same verdicts and words as on the report alone, no seed count in the lines...
    assert_eq!(fs, findings(&good(), 0.02));
    assert!(fs
        .iter()
        .all(|f| f.seeds == 1 && !f.line().contains("seeds)")));
    assert_eq!(seed_tables(&seeds), main_tables(&good()));
    // ... and the report says plainly that the verdicts rest on one seed.
    let out = console(&seeds, &fs, Path::new("r.md"), &[]);
    assert!(
        out.contains(
            "One seed: every number comes from a single run per method, so these verdicts \
             cannot be judged beyond seed-to-seed noise"
        ),
        "{out}"
    );
    assert!(!out.contains("Judged on"), "{out}");
}

#[test]
fn three_seeds_gap_beyond_the_spread_reproduces() {
    // Backward: sequential 38.3 ± 1.0, cumulative-all 58.0 ± 1.0 — a gap of 19.7 points.
    let seeds = three_seeds([0.01, 0.0, -0.01], [-0.01, 0.0, 0.01]);
    let fs = judge(&seeds);
    let a = get(&fs, "a");
    assert_eq!(a.verdict, Verdict::Reproduced, "{a:?}");
    assert_eq!(a.seeds, 3);
    assert_eq!(
        a.evidence[0].text,
        "datacomp-retrieval-yearly: backward sequential 38.3 ± 1.0 < cumulative-all \
         58.0 ± 1.0 (gap 19.7, pooled std 1.0)"
    );
    assert!(
        a.line()
            .starts_with("- (a) sequential loses backward transfer against cumulative: **reproduced** (3 seeds) — "),
        "{}",
        a.line()
    );
    // (b): backward 58.0 ± 1.0 vs the oracle's 59.0 (± 0.0) − 2.0 holds beyond the spread.
    let b = get(&fs, "b");
    assert_eq!(b.verdict, Verdict::Reproduced, "{b:?}");
    assert!(
        b.line().contains(
            "backward cumulative-all 58.0 ± 1.0 ≥ oracle 59.0 ± 0.0 − 2.0 (oracle − cumulative-all 1.0, pooled std 0.7)"
        ),
        "{}",
        b.line()
    );
    let table = seed_tables(&seeds);
    assert!(table.contains("(m, %, mean ± std over 3 seeds)"), "{table}");
    assert!(
        table.contains(
            "| sequential | 62.0 ± 0.0 | 38.3 ± 1.0 | 18.3 ± 0.0 | 30.0 ± 0.0 | 15.4k | 1.00× |"
        ),
        "{table}"
    );
    let out = console(&seeds, &fs, Path::new("r.md"), &[]);
    assert!(out.contains("Judged on 3 seeds"), "{out}");
    assert!(!out.contains("One seed"), "{out}");
}

#[test]
fn three_seeds_gap_within_the_spread_is_undecided() {
    // Backward: sequential 38.3 ± 10.0, cumulative-all 41.0 ± 10.0. On any one seed
    // cumulative-all is ahead by 2.7 points (beyond --min-gap), but the seeds spread by 10.
    let seeds = three_seeds([0.10, 0.0, -0.10], [-0.07, -0.17, -0.27]);
    for (k, r) in seeds.reports.iter().enumerate() {
        let one = get(&findings(r, 0.02), "a").clone();
        assert_eq!(one.verdict, Verdict::Reproduced, "seed {k}: {one:?}");
    }
    let fs = judge(&seeds);
    let a = get(&fs, "a");
    assert_eq!(a.verdict, Verdict::Undecided, "{a:?}");
    assert!(a.evidence.iter().all(|e| e.undecided && e.holds.is_none()));
    assert_contains_all(
        &a.line(),
        &[
            "backward sequential 38.3 ± 10.0 ≈ cumulative-all 41.0 ± 10.0 (gap 2.7 within pooled std 10.0)",
            "by the margin and the seed spread",
        ],
    );
    // (b): cumulative-all's backward 41.0 is 18 points below the oracle's, far beyond the
    // spread: not reproduced.
    assert_eq!(get(&fs, "b").verdict, Verdict::NotReproduced);
}

#[test]
fn seeds_must_be_the_same_experiment() {
    let mut other = good();
    other.runs[1].name = CUMULATIVE_EXP.into();
    let e = Seeds::new(vec!["x".into(), "y".into()], vec![good(), other]).unwrap_err();
    assert!(
        e.to_string()
            .contains("y: methods [sequential, cumulative-exp, oracle] differ from x's"),
        "{e}"
    );
    let mut fewer = good();
    fewer.steps.pop();
    assert!(Seeds::new(vec!["x".into(), "y".into()], vec![good(), fewer]).is_err());
}

#[test]
fn json_carries_every_seed_and_the_verdicts() {
    let seeds = three_seeds([0.01, 0.0, -0.01], [-0.01, 0.0, 0.01]);
    let fs = judge(&seeds);
    let j = report_json(&seeds, &fs);
    assert_eq!(j["seeds"], serde_json::json!(["s0", "s1", "s2"]));
    let seq = &j["methods"][0];
    assert_eq!(seq["name"], "sequential");
    let back = &seq["families"][0]["backward"];
    assert_eq!(back["n"], 3);
    let values: Vec<f64> = back["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let base = 1.15 / 3.0;
    for (v, d) in values.iter().zip([0.01, 0.0, -0.01]) {
        assert!((v - (base + d)).abs() < 1e-9, "{values:?}");
    }
    assert!((back["std"].as_f64().unwrap() - 0.01).abs() < 1e-9);
    assert_eq!(seq["compute"]["mean"], 15360.0);
    assert_eq!(j["findings"][0]["verdict"], "reproduced");
    assert_eq!(j["findings"][0]["seeds"], 3);
    assert_eq!(j["findings"][0]["evidence"][0]["holds"], true);
    assert_eq!(j["findings"][2]["verdict"], "not applicable");
}

#[test]
fn three_seeds_oracle_gap_within_the_spread_leaves_b_undecided() {
    // Backward: cumulative-all 57.0 ± 6.0, exactly the oracle's 59.0 − 2.0 on the means:
    // whether it reaches the oracle's level is within the seed spread.
    let seeds = three_seeds([0.0; 3], [0.05, -0.01, -0.07]);
    let b = get(&judge(&seeds), "b").clone();
    assert_eq!(b.verdict, Verdict::Undecided, "{b:?}");
    assert_contains_all(
        &b.line(),
        &[
            "backward cumulative-all 57.0 ± 6.0 ≈ oracle 59.0 ± 0.0 − 2.0 (oracle − cumulative-all 2.0, pooled std 4.2)",
            "compute cumulative-all 15.4k = 0.50× oracle's 30.7k",
        ],
    );
}

#[test]
fn the_static_cell_counts_its_tasks_when_some_main_metric_is_null() {
    let plain = main_tables(&report(vec![run("sequential", full([[0.5; 3]; 3]), None)]));
    assert!(plain.contains("| 30.0 |"), "{plain}");
    let mut with_null = run("sequential", full([[0.5; 3]; 3]), None);
    with_null.static_tasks.tasks.insert("FairFace".into(), None);
    let tables = main_tables(&report(vec![with_null]));
    assert!(tables.contains("| 30.0 (1/2) |"), "{tables}");
    assert!(!tables.contains("DataComp aggregates"), "{tables}");
    assert_eq!(
        render::count_label(&[Some((3, 4)), None]),
        Some("3/4".into())
    );
    assert_eq!(
        render::count_label(&[Some((3, 4)), Some((4, 4))]),
        Some("3–4/4".into())
    );
    assert_eq!(render::count_label(&[None]), None);
}

#[test]
fn the_static_tasks_table_lists_each_main_metric_over_the_seeds() {
    let seed = |v: f64| {
        let mut r = run("sequential", full([[0.5; 3]; 3]), None);
        r.static_tasks.tasks.insert("synth_static".into(), Some(v));
        r.static_tasks.tasks.insert("FairFace".into(), None);
        report(vec![r])
    };
    let one = render::static_tasks_table(&Seeds::single(seed(0.3)));
    assert!(
        one.starts_with(
            "### Static tasks (main metric of the last model, %)\n\n| Task | sequential |\n"
        ),
        "{one}"
    );
    assert!(
        one.contains("| FairFace | – |\n| synth_static | 30.0 |\n"),
        "{one}"
    );
    let two = Seeds::new(vec!["a".into(), "b".into()], vec![seed(0.3), seed(0.5)]).unwrap();
    let table = render::static_tasks_table(&two);
    assert!(table.contains("mean ± std over 2 seeds"), "{table}");
    assert!(table.contains("| synth_static | 40.0 ± 14.1 |"), "{table}");
    let mut none = run("sequential", full([[0.5; 3]; 3]), None);
    none.static_tasks.tasks.clear();
    assert_eq!(
        render::static_tasks_table(&Seeds::single(report(vec![none]))),
        ""
    );
}
