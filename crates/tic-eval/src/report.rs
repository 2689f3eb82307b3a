//! `tic-report`: the human-facing report of a TiC experiment.
//!
//! Reads what `tic-metrics` wrote (`report.json` and the plots next to it), optionally the
//! training runs of `tic-train` and the synthetic pool's `synth.json`, and renders one
//! deterministic Markdown file (no timestamps: the same inputs give the same bytes):
//!
//! 1. title and what the report shows;
//! 2. the data (from `synth.json`);
//! 3. per task family, one row per method: ID, backward, forward transfer, static average
//!    and compute (cumulative samples seen, and × of the least-compute method);
//! 4. the paper's findings, each evaluated from the numbers ([`findings`]);
//! 5. every T×T matrix; 6. links to the plots; 7. the training runs ([`training_runs`]);
//! 8. the command that regenerates it.
//!
//! [`check`] lists what makes a report unfit to read (too few steps, incomplete matrices,
//! values missing or outside `[0, 1]`, no compute figure). See `docs/eval.md` §4.

use crate::dynamic::{FamilyKey, FamilyMatrix, Report, RunReport, TransferSummary};
use crate::tables::{self, human_count, markdown_table, percent, Align};

const R: Align = Align::Right;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

/// Method names the findings look for (matched exactly).
pub const SEQUENTIAL: &str = "sequential";
/// Warm start on all data seen so far.
pub const CUMULATIVE_ALL: &str = "cumulative-all";
/// Warm start with exponentially decaying replay of old data.
pub const CUMULATIVE_EXP: &str = "cumulative-exp";
/// Warm start with equal replay of every old step.
pub const CUMULATIVE_EQUAL: &str = "cumulative-equal";
/// Trained from scratch on all data at every step (the expensive reference).
pub const ORACLE: &str = "oracle";
/// Random init at every step with the sequential budget.
pub const RESTART: &str = "restart";

/// The default `--title`.
pub const DEFAULT_TITLE: &str = "TiC-CLIP report";
/// The default `--oracle-tolerance` (absolute, on metrics in `[0, 1]`).
pub const DEFAULT_ORACLE_TOLERANCE: f64 = 0.02;
/// The default `--min-signal`: a family whose best ID (over all methods) is below this is at
/// chance level and cannot support or refute a finding.
pub const DEFAULT_MIN_SIGNAL: f64 = 0.05;
/// Default smallest backward-transfer gap that counts for finding (a) (absolute: 1 point). A
/// smaller gap, either way, is within run-to-run noise and decides nothing.
pub const DEFAULT_MIN_GAP: f64 = 0.01;

/// Slack for floating-point ties in the findings' comparisons.
const EPS: f64 = 1e-12;

/// Reads `dir/report.json` as written by `tic-metrics`.
pub fn load_report(metrics_dir: &Path) -> Result<Report> {
    let path = metrics_dir.join("report.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (run tic-metrics --output-dir {} first)",
            path.display(),
            metrics_dir.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

// ---- small accessors -----------------------------------------------------------------------

/// The run called `name`.
pub fn method<'a>(report: &'a Report, name: &str) -> Option<&'a RunReport> {
    report.runs.iter().find(|r| r.name == name)
}

/// The run's matrix for `family`.
pub fn family_matrix<'a>(run: &'a RunReport, family: &FamilyKey) -> Option<&'a FamilyMatrix> {
    run.matrices.iter().find(|m| &m.family == family)
}

fn summary<'a>(run: &'a RunReport, family: &FamilyKey) -> Option<&'a TransferSummary> {
    family_matrix(run, family).map(|m| &m.summary)
}

/// The run's compute: cumulative samples seen by its last model.
pub fn final_compute(run: &RunReport) -> Option<f64> {
    run.per_step.last().and_then(|p| p.cumulative_samples)
}

/// The smallest positive, finite [`final_compute`] over the runs.
fn least_compute(report: &Report) -> Option<f64> {
    report
        .runs
        .iter()
        .filter_map(final_compute)
        .filter(|c| c.is_finite() && *c > 0.0)
        .min_by(f64::total_cmp)
}

fn family_title(f: &FamilyKey) -> String {
    format!("{} {} {}", f.dataset, f.family, f.timescale.as_str())
}

// ---- findings ------------------------------------------------------------------------------

/// The outcome of one finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every check that could be made holds.
    Reproduced,
    /// At least one check fails.
    NotReproduced,
    /// The methods or numbers it needs are missing.
    NotApplicable,
    /// Numbers only, no claim to check.
    Informational,
}

impl Verdict {
    /// The word printed in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Reproduced => "reproduced",
            Verdict::NotReproduced => "not reproduced",
            Verdict::NotApplicable => "not applicable",
            Verdict::Informational => "informational",
        }
    }
}

/// One number-backed statement behind a finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// The task family (`FamilyKey::id`) it is about; `None` for compute.
    pub family: Option<String>,
    /// Whether the check holds; `None` when it could not be made or is informational.
    pub holds: Option<bool>,
    /// The numbers, e.g. `datacomp-retrieval-yearly: backward sequential 38.3 < cumulative-all 58.0`.
    pub text: String,
}

/// One of the paper's findings, evaluated on a report.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// `a`, `b`, `c`.
    pub id: &'static str,
    /// The claim.
    pub claim: &'static str,
    /// The outcome.
    pub verdict: Verdict,
    /// The checks, per family (and compute).
    pub evidence: Vec<Evidence>,
    /// Why it is not applicable, when it is not.
    pub reason: Option<String>,
}

impl Finding {
    fn not_applicable(id: &'static str, claim: &'static str, reason: String) -> Self {
        Self {
            id,
            claim,
            verdict: Verdict::NotApplicable,
            evidence: Vec::new(),
            reason: Some(reason),
        }
    }

    /// The finding as one Markdown line: claim, verdict and the numbers used.
    pub fn line(&self) -> String {
        let mut s = format!(
            "- ({}) {}: **{}**",
            self.id,
            self.claim,
            self.verdict.as_str()
        );
        let mut parts: Vec<String> = self.reason.iter().cloned().collect();
        parts.extend(self.evidence.iter().map(|e| e.text.clone()));
        if !parts.is_empty() {
            s.push_str(" — ");
            s.push_str(&parts.join("; "));
        }
        s
    }
}

/// (a): sequential fine-tuning.
pub const CLAIM_A: &str = "sequential loses backward transfer against cumulative";
/// (b): cumulative warm starts versus the oracle.
pub const CLAIM_B: &str =
    "cumulative warm starts reach the oracle's level at a fraction of its compute";
/// (c): restart versus the oracle.
pub const CLAIM_C: &str = "restart (sequential budget, random init) vs oracle";

/// `Reproduced` if some check holds and none fails, `NotReproduced` if one fails.
fn verdict_of(evidence: &[Evidence]) -> Verdict {
    if evidence.iter().any(|e| e.holds == Some(false)) {
        Verdict::NotReproduced
    } else if evidence.iter().any(|e| e.holds == Some(true)) {
        Verdict::Reproduced
    } else {
        Verdict::NotApplicable
    }
}

fn missing_methods(report: &Report, names: &[&str]) -> Option<String> {
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| method(report, n).is_none())
        .collect();
    (!missing.is_empty()).then(|| format!("no method named {}", missing.join(", ")))
}

fn compute_text(c: Option<f64>) -> String {
    human_count(c)
}

/// Evaluates the findings (a), (b) and (c) on `report`; `oracle_tolerance` is the absolute
/// slack of (b) on ID and backward transfer (metrics in `[0, 1]`). See `docs/eval.md` §4.
/// Families at chance level ([`DEFAULT_MIN_SIGNAL`]) are not counted.
pub fn findings(report: &Report, oracle_tolerance: f64) -> Vec<Finding> {
    findings_with(report, oracle_tolerance, DEFAULT_MIN_SIGNAL)
}

/// [`findings`] with an explicit `min_signal`: families whose best ID over all methods is below
/// it are reported but count neither for nor against (a) and (b).
pub fn findings_with(report: &Report, oracle_tolerance: f64, min_signal: f64) -> Vec<Finding> {
    findings_with_gap(report, oracle_tolerance, min_signal, DEFAULT_MIN_GAP)
}

/// [`findings_with`] with an explicit `min_gap` for (a): sequential's backward transfer must be
/// at least `min_gap` below each cumulative method's to count for the finding, at least
/// `min_gap` above one to count against it; closer gaps decide nothing.
pub fn findings_with_gap(
    report: &Report,
    oracle_tolerance: f64,
    min_signal: f64,
    min_gap: f64,
) -> Vec<Finding> {
    vec![
        finding_a(report, min_signal, min_gap),
        finding_b(report, oracle_tolerance, min_signal),
        finding_c(report),
    ]
}

/// Why `fam` cannot support a finding: every method's ID is below `min_signal`.
fn uninformative(report: &Report, fam: &FamilyKey, min_signal: f64) -> Option<String> {
    let best = report
        .runs
        .iter()
        .filter_map(|r| summary(r, fam).and_then(|s| s.id))
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    match best {
        Some(b) if b >= min_signal => None,
        _ => Some(format!(
            "not counted: at chance level (best ID {} < {})",
            percent(best),
            percent(Some(min_signal))
        )),
    }
}

fn no_families(report: &Report) -> Option<String> {
    report
        .families
        .is_empty()
        .then(|| "report.json has no TiC task family".to_string())
}

fn finding_a(report: &Report, min_signal: f64, min_gap: f64) -> Finding {
    let reason =
        missing_methods(report, &[SEQUENTIAL, CUMULATIVE_ALL]).or_else(|| no_families(report));
    if let Some(reason) = reason {
        return Finding::not_applicable("a", CLAIM_A, reason);
    }
    let seq = method(report, SEQUENTIAL).expect("checked");
    let others: Vec<&RunReport> = [CUMULATIVE_ALL, CUMULATIVE_EXP]
        .iter()
        .filter_map(|n| method(report, n))
        .collect();
    let mut evidence = Vec::new();
    for fam in &report.families {
        let s = summary(seq, fam).and_then(|s| s.backward);
        let mut holds = Some(true);
        let mut parts = Vec::new();
        for other in &others {
            let o = summary(other, fam).and_then(|s| s.backward);
            match (s, o) {
                (Some(s), Some(o)) if (o - s).abs() < min_gap => {
                    // Within noise: undecided unless another comparison fails.
                    holds = holds.and_then(|h| if h { None } else { Some(false) });
                    parts.push(format!(
                        "≈ {} {} (gap below {})",
                        other.name,
                        percent(Some(o)),
                        percent(Some(min_gap))
                    ));
                }
                (Some(s), Some(o)) => {
                    let ok = s < o;
                    holds = if ok { holds } else { Some(false) };
                    parts.push(format!(
                        "{} {} {}",
                        if ok { "<" } else { "≥" },
                        other.name,
                        percent(Some(o))
                    ));
                }
                _ => {
                    holds = None;
                    parts.push(format!("vs {} {} (missing)", other.name, percent(o)));
                }
            }
        }
        if s.is_none() {
            holds = None;
        }
        let mut text = format!(
            "{}: backward sequential {} {}",
            fam.id(),
            percent(s),
            parts.join(", ")
        );
        if let Some(why) = uninformative(report, fam, min_signal) {
            holds = None;
            let _ = write!(text, " ({why})");
        }
        evidence.push(Evidence {
            family: Some(fam.id()),
            holds,
            text,
        });
    }
    let verdict = verdict_of(&evidence);
    let reason = (verdict == Verdict::NotApplicable).then(|| {
        "no family above chance level separates these methods' backward transfer by the margin"
            .to_string()
    });
    Finding {
        id: "a",
        claim: CLAIM_A,
        verdict,
        evidence,
        reason,
    }
}

/// Picks ID, backward or forward out of a [`TransferSummary`].
type SummaryField = fn(&TransferSummary) -> Option<f64>;

fn finding_b(report: &Report, tol: f64, min_signal: f64) -> Finding {
    let reason = missing_methods(report, &[CUMULATIVE_ALL, ORACLE]).or_else(|| no_families(report));
    if let Some(reason) = reason {
        return Finding::not_applicable("b", CLAIM_B, reason);
    }
    let cum = method(report, CUMULATIVE_ALL).expect("checked");
    let oracle = method(report, ORACLE).expect("checked");
    let (cc, oc) = (final_compute(cum), final_compute(oracle));
    let (Some(c), Some(o)) = (
        cc.filter(|c| c.is_finite() && *c > 0.0),
        oc.filter(|o| o.is_finite() && *o > 0.0),
    ) else {
        return Finding::not_applicable(
            "b",
            CLAIM_B,
            format!(
                "compute unknown (cumulative-all {}, oracle {})",
                compute_text(cc),
                compute_text(oc)
            ),
        );
    };
    let tol_text = percent(Some(tol));
    let mut evidence = Vec::new();
    for fam in &report.families {
        let (cs, os) = (summary(cum, fam), summary(oracle, fam));
        let mut holds = Some(true);
        let mut parts = Vec::new();
        let getters: [(&str, SummaryField); 2] = [("ID", |s| s.id), ("backward", |s| s.backward)];
        for (label, get) in getters {
            let a = cs.and_then(get);
            let b = os.and_then(get);
            match (a, b) {
                (Some(a), Some(b)) => {
                    let ok = a >= b - tol - EPS;
                    holds = holds.map(|h| h && ok);
                    parts.push(format!(
                        "{label} cumulative-all {} {} oracle {} − {tol_text}",
                        percent(Some(a)),
                        if ok { "≥" } else { "<" },
                        percent(Some(b)),
                    ));
                }
                _ => {
                    holds = None;
                    parts.push(format!(
                        "{label} cumulative-all {} vs oracle {} (missing)",
                        percent(a),
                        percent(b)
                    ));
                }
            }
        }
        let mut text = format!("{}: {}", fam.id(), parts.join(", "));
        if let Some(os) = os.filter(|s| !s.complete) {
            let t = report.steps.len();
            let _ = write!(
                text,
                " (oracle matrix incomplete: {}/{} cells)",
                os.cells,
                t * t
            );
        }
        if let Some(why) = uninformative(report, fam, min_signal) {
            holds = None;
            let _ = write!(text, " ({why})");
        }
        evidence.push(Evidence {
            family: Some(fam.id()),
            holds,
            text,
        });
    }
    if evidence.iter().all(|e| e.holds.is_none()) {
        let mut f = Finding::not_applicable(
            "b",
            CLAIM_B,
            "no family above chance level has ID and backward transfer for both methods"
                .to_string(),
        );
        f.evidence = evidence;
        return f;
    }
    let ok = c < o;
    evidence.push(Evidence {
        family: None,
        holds: Some(ok),
        text: format!(
            "compute cumulative-all {} = {:.2}× oracle's {}",
            compute_text(Some(c)),
            c / o,
            compute_text(Some(o))
        ),
    });
    Finding {
        id: "b",
        claim: CLAIM_B,
        verdict: verdict_of(&evidence),
        evidence,
        reason: None,
    }
}

fn finding_c(report: &Report) -> Finding {
    let reason = missing_methods(report, &[RESTART, ORACLE]).or_else(|| no_families(report));
    if let Some(reason) = reason {
        return Finding::not_applicable("c", CLAIM_C, reason);
    }
    let restart = method(report, RESTART).expect("checked");
    let oracle = method(report, ORACLE).expect("checked");
    let mut evidence = Vec::new();
    for fam in &report.families {
        let (r, o) = (summary(restart, fam), summary(oracle, fam));
        let pair = |get: SummaryField| {
            format!(
                "{} vs {}",
                percent(r.and_then(get)),
                percent(o.and_then(get))
            )
        };
        evidence.push(Evidence {
            family: Some(fam.id()),
            holds: None,
            text: format!(
                "{}: ID {}, backward {}, forward {}",
                fam.id(),
                pair(|s| s.id),
                pair(|s| s.backward),
                pair(|s| s.forward)
            ),
        });
    }
    let (rc, oc) = (final_compute(restart), final_compute(oracle));
    let ratio = rc
        .zip(oc)
        .filter(|(_, o)| *o > 0.0)
        .map_or_else(String::new, |(r, o)| format!(" ({:.2}×)", r / o));
    evidence.push(Evidence {
        family: None,
        holds: None,
        text: format!(
            "compute {} vs {}{ratio}",
            compute_text(rc),
            compute_text(oc)
        ),
    });
    Finding {
        id: "c",
        claim: CLAIM_C,
        verdict: Verdict::Informational,
        evidence,
        reason: None,
    }
}

// ---- --check -------------------------------------------------------------------------------

fn check_value(problems: &mut Vec<String>, ctx: &str, what: &str, v: Option<f64>, expected: bool) {
    match v {
        None if expected => problems.push(format!("{ctx}: {what} is missing")),
        None => {}
        Some(v) if !v.is_finite() => problems.push(format!("{ctx}: {what} is not finite ({v})")),
        Some(v) if !(0.0..=1.0).contains(&v) => {
            problems.push(format!("{ctx}: {what} = {v} is outside [0, 1]"))
        }
        Some(_) => {}
    }
}

/// What makes `report` unfit to read, one message per problem (empty: fine):
/// fewer than 2 steps; a method without a complete matrix for some family; an ID, backward,
/// forward, matrix cell or static value missing where expected, not finite or outside
/// `[0, 1]`; a method without a compute figure (cumulative samples seen).
pub fn check(report: &Report) -> Vec<String> {
    let mut problems = Vec::new();
    let t = report.steps.len();
    if t < 2 {
        problems.push(format!(
            "report.json has {t} training step(s); backward/forward transfer need at least 2"
        ));
    }
    if report.runs.is_empty() {
        problems.push("report.json has no method".to_string());
    }
    if report.families.is_empty() {
        problems.push("report.json has no TiC task family (no tic/... results)".to_string());
    }
    let any_static = report
        .runs
        .iter()
        .any(|r| r.static_tasks.average.is_some() || !r.static_tasks.tasks.is_empty());
    for run in &report.runs {
        for fam in &report.families {
            let ctx = format!("{} / {}", run.name, fam.id());
            let Some(fm) = family_matrix(run, fam) else {
                problems.push(format!("{ctx}: no matrix"));
                continue;
            };
            let sm = &fm.summary;
            if !sm.complete {
                problems.push(format!(
                    "{ctx}: incomplete matrix ({}/{} cells)",
                    sm.cells,
                    t * t
                ));
            }
            check_value(&mut problems, &ctx, "ID", sm.id, sm.complete && t >= 1);
            check_value(
                &mut problems,
                &ctx,
                "backward",
                sm.backward,
                sm.complete && t >= 2,
            );
            check_value(
                &mut problems,
                &ctx,
                "forward",
                sm.forward,
                sm.complete && t >= 2,
            );
            for (i, row) in fm.matrix.iter().enumerate() {
                for (j, v) in row.iter().enumerate() {
                    let at = |k: usize| report.steps.get(k).map_or("?", String::as_str);
                    let what = format!("cell (train {}, eval {})", at(i), at(j));
                    check_value(&mut problems, &ctx, &what, *v, false);
                }
            }
        }
        let st = &run.static_tasks;
        let ctx = format!("{} / static", run.name);
        check_value(&mut problems, &ctx, "average", st.average, any_static);
        check_value(&mut problems, &ctx, "ImageNet", st.imagenet, false);
        check_value(
            &mut problems,
            &ctx,
            "ImageNet + shifts",
            st.imagenet_and_shifts,
            false,
        );
        for (task, v) in &st.tasks {
            check_value(&mut problems, &ctx, task, *v, false);
        }
        match final_compute(run) {
            None => problems.push(format!(
                "{}: no compute figure (give tic-metrics a compute.json per model or --samples-per-step)",
                run.name
            )),
            Some(c) if !c.is_finite() || c <= 0.0 => problems.push(format!(
                "{}: compute figure {c} is not a positive number",
                run.name
            )),
            Some(_) => {}
        }
    }
    problems
}

// ---- data (synth.json) ---------------------------------------------------------------------

/// The parts of `tic-synth`'s `synth.json` the report shows.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SynthInfo {
    /// Random seed.
    pub seed: u64,
    /// Samples in the pool.
    pub num_samples: u64,
    /// Shards of the pool.
    #[serde(default)]
    pub num_shards: Option<u64>,
    /// First year.
    pub first_year: u32,
    /// Number of years.
    pub num_years: u32,
    /// Image side in pixels.
    #[serde(default)]
    pub image_size: Option<u32>,
    /// Fraction of each year held out for evaluation.
    #[serde(default)]
    pub eval_fraction: Option<f64>,
    /// Samples per year (all splits), keyed by year.
    #[serde(default)]
    pub samples_per_year: BTreeMap<String, u64>,
}

impl SynthInfo {
    /// Reads a `synth.json`.
    pub fn from_path(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn data_section(synth: &SynthInfo) -> String {
    let mut s = String::from("## Data\n\n");
    let last = synth.first_year + synth.num_years.saturating_sub(1);
    let _ = write!(
        s,
        "Synthetic pool (`tic-synth`): seed {}, {} samples",
        synth.seed,
        thousands(synth.num_samples)
    );
    if let Some(n) = synth.num_shards {
        let _ = write!(s, " in {n} shards");
    }
    let _ = write!(
        s,
        ", years {}–{} ({} years)",
        synth.first_year, last, synth.num_years
    );
    if let Some(px) = synth.image_size {
        let _ = write!(s, ", {px}×{px} px images");
    }
    if let Some(f) = synth.eval_fraction {
        let pct = (1000.0 * f).round() / 10.0;
        let _ = write!(s, ", {pct}% of each year held out for evaluation");
    }
    s.push_str(".\n\n");
    if !synth.samples_per_year.is_empty() {
        let rows: Vec<Vec<String>> = synth
            .samples_per_year
            .iter()
            .map(|(y, n)| vec![y.clone(), thousands(*n)])
            .collect();
        s.push_str(&markdown_table(
            &["Year", "Samples (train + eval)"],
            &[Align::Left, Align::Right],
            &rows,
        ));
        s.push('\n');
    }
    s
}

// ---- training runs -------------------------------------------------------------------------

/// Summary of one `tic-train` output folder (`{strategy}_{step}/`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrainingRun {
    /// Folder name (the real folder when others link to it).
    pub name: String,
    /// Other names (symlinks) of the same folder, sorted.
    pub shared_with: Vec<String>,
    /// Optimizer steps (`compute.json`, else lines of `metrics.jsonl`).
    pub steps: Option<u64>,
    /// Samples seen (`compute.json`).
    pub samples_seen: Option<f64>,
    /// Whether training finished (`compute.json`).
    pub finished: Option<bool>,
    /// Mean loss of the first 10 logged steps (fewer if fewer were logged).
    pub first_loss: Option<f64>,
    /// Mean loss of the last 10 logged steps.
    pub last_loss: Option<f64>,
    /// Sum of `step_s` (training seconds).
    pub train_seconds: Option<f64>,
    /// Mean of the per-step `samples_per_s`.
    pub mean_samples_per_s: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
struct ComputeJson {
    #[serde(default)]
    samples_seen: Option<f64>,
    #[serde(default)]
    steps: Option<u64>,
    #[serde(default)]
    finished: Option<bool>,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Summarizes one run folder (`compute.json`, `metrics.jsonl`; either may be missing).
pub fn summarize_training_run(name: &str, dir: &Path) -> Result<TrainingRun> {
    let mut run = TrainingRun {
        name: name.to_string(),
        ..Default::default()
    };
    let compute_path = dir.join("compute.json");
    if compute_path.is_file() {
        let text = std::fs::read_to_string(&compute_path)
            .with_context(|| format!("reading {}", compute_path.display()))?;
        let c: ComputeJson = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", compute_path.display()))?;
        run.samples_seen = c.samples_seen;
        run.steps = c.steps;
        run.finished = c.finished;
    }
    let metrics_path = dir.join("metrics.jsonl");
    if metrics_path.is_file() {
        let text = std::fs::read_to_string(&metrics_path)
            .with_context(|| format!("reading {}", metrics_path.display()))?;
        let lines: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .collect();
        let (mut losses, mut rates, mut seconds) = (Vec::new(), Vec::new(), Vec::new());
        for (k, (no, line)) in lines.iter().enumerate() {
            let v: Value = match serde_json::from_str(line) {
                Ok(v) => v,
                // A torn last line of a run being written.
                Err(_) if k + 1 == lines.len() => {
                    tracing::warn!(
                        "{}:{}: skipping a torn last line",
                        metrics_path.display(),
                        no + 1
                    );
                    continue;
                }
                Err(e) => bail!("{}:{}: {e}", metrics_path.display(), no + 1),
            };
            if let Some(s) = v.get("step_s").and_then(Value::as_f64) {
                seconds.push(s);
            }
            if v.get("skipped").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            if let Some(l) = v
                .get("loss")
                .and_then(Value::as_f64)
                .filter(|l| l.is_finite())
            {
                losses.push(l);
            }
            if let Some(r) = v
                .get("samples_per_s")
                .and_then(Value::as_f64)
                .filter(|r| r.is_finite())
            {
                rates.push(r);
            }
        }
        let k = losses.len().min(10);
        run.first_loss = mean(&losses[..k]);
        run.last_loss = mean(&losses[losses.len() - k..]);
        run.train_seconds = (!seconds.is_empty()).then(|| seconds.iter().sum());
        run.mean_samples_per_s = mean(&rates);
        if run.steps.is_none() {
            run.steps = Some(lines.len() as u64);
        }
    }
    Ok(run)
}

/// Every training run under `runs_dir` (a folder with `compute.json` or `metrics.jsonl`),
/// in name order. Names that resolve to the same folder (`sequential_2014 -> init_2014`)
/// give one entry, named after the real folder, with the others in `shared_with`.
pub fn training_runs(runs_dir: &Path) -> Result<Vec<TrainingRun>> {
    let entries = std::fs::read_dir(runs_dir)
        .with_context(|| format!("reading runs directory {}", runs_dir.display()))?;
    let mut names = Vec::new();
    for e in entries {
        let e = e.with_context(|| format!("reading {}", runs_dir.display()))?;
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    // canonical folder -> [(name, is_symlink)] in name order
    let mut groups: BTreeMap<PathBuf, Vec<(String, bool)>> = BTreeMap::new();
    for name in names {
        let path = runs_dir.join(&name);
        if !path.is_dir()
            || !(path.join("compute.json").is_file() || path.join("metrics.jsonl").is_file())
        {
            tracing::debug!("{}: not a training run, skipped", path.display());
            continue;
        }
        let is_link = std::fs::symlink_metadata(&path)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
        let canonical = std::fs::canonicalize(&path)
            .with_context(|| format!("resolving {}", path.display()))?;
        groups.entry(canonical).or_default().push((name, is_link));
    }
    let mut runs = Vec::new();
    for (canonical, members) in groups {
        let main = members
            .iter()
            .position(|(_, link)| !link)
            .unwrap_or_default();
        let mut run = summarize_training_run(&members[main].0, &canonical)?;
        run.shared_with = members
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != main)
            .map(|(_, (n, _))| n.clone())
            .collect();
        runs.push(run);
    }
    runs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(runs)
}

fn duration(s: Option<f64>) -> String {
    match s {
        None => "–".to_string(),
        Some(s) if s < 60.0 => format!("{s:.1} s"),
        Some(s) if s < 3600.0 => format!("{:.1} min", s / 60.0),
        Some(s) => format!("{:.2} h", s / 3600.0),
    }
}

fn training_section(runs_dir: &str, runs: &[TrainingRun]) -> String {
    let mut s = String::from("## Training runs\n\n");
    if runs.is_empty() {
        let _ = writeln!(
            s,
            "No training run (`compute.json` / `metrics.jsonl`) under `{runs_dir}`.\n"
        );
        return s;
    }
    let _ = writeln!(
        s,
        "From `{runs_dir}`. Loss: mean of the first and last 10 logged steps; time: summed \
         `step_s`; samples/s: mean over steps.\n"
    );
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let mut name = r.name.clone();
            if !r.shared_with.is_empty() {
                let _ = write!(name, " (shared with {})", r.shared_with.join(", "));
            }
            let mut steps = r.steps.map_or_else(|| "–".to_string(), |n| n.to_string());
            if r.finished == Some(false) {
                steps.push_str(" (unfinished)");
            }
            let loss = match (r.first_loss, r.last_loss) {
                (Some(a), Some(b)) => format!("{a:.3} → {b:.3}"),
                _ => "–".to_string(),
            };
            vec![
                name,
                steps,
                human_count(r.samples_seen),
                loss,
                duration(r.train_seconds),
                r.mean_samples_per_s
                    .map_or_else(|| "–".to_string(), |v| format!("{v:.1}")),
            ]
        })
        .collect();
    s.push_str(&markdown_table(
        &[
            "Run",
            "Steps",
            "Samples seen",
            "Loss first → last",
            "Training time",
            "Samples/s",
        ],
        &[Align::Left, R, R, R, R, R],
        &rows,
    ));
    s.push('\n');
    s
}

// ---- plots ---------------------------------------------------------------------------------

/// A plot of the metrics folder, linked from the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Plot {
    /// Alt text.
    pub label: String,
    /// Path relative to the report's folder (`/`-separated).
    pub link: String,
    /// The metrics folder (as given) joined with the file name.
    pub path: PathBuf,
}

/// Lexically normalized absolute path (`.` and `..` resolved without touching the disk).
fn absolute(p: &Path) -> Result<PathBuf> {
    let p = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    };
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Resolves symlinks where the path exists, else normalizes it lexically.
fn resolved(p: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(p).or_else(|_| absolute(p))
}

/// The `/`-separated relative path from folder `from` to `to`.
pub fn relative_link(from: &Path, to: &Path) -> Result<String> {
    let (from, to) = (resolved(from)?, resolved(to)?);
    let fc: Vec<Component> = from.components().collect();
    let tc: Vec<Component> = to.components().collect();
    let common = fc.iter().zip(&tc).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_string(); fc.len() - common];
    parts.extend(
        tc[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    Ok(if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    })
}

/// The plots of `metrics_dir` that exist: each method's heatmap per family (family order,
/// then method order), then `compute.png`. Links are relative to `report_dir`.
pub fn find_plots(report: &Report, metrics_dir: &Path, report_dir: &Path) -> Result<Vec<Plot>> {
    let mut wanted = Vec::new();
    for fam in &report.families {
        for run in &report.runs {
            wanted.push((
                format!("{} — {}", run.name, fam.id()),
                format!("heatmap_{}_{}.png", fam.id(), tables::slug(&run.name)),
            ));
        }
    }
    wanted.push(("accuracy vs compute".to_string(), "compute.png".to_string()));
    let mut plots = Vec::new();
    for (label, file) in wanted {
        let path = metrics_dir.join(&file);
        if path.is_file() {
            plots.push(Plot {
                label,
                link: relative_link(report_dir, &path)?,
                path,
            });
        }
    }
    Ok(plots)
}

fn md_link_target(link: &str) -> String {
    if link.contains([' ', '(', ')', '<', '>']) {
        format!("<{link}>")
    } else {
        link.to_string()
    }
}

fn plots_section(plots: &[Plot], metrics: &str) -> String {
    let mut s = String::from("## Plots\n\n");
    if plots.is_empty() {
        let _ = writeln!(
            s,
            "No plot in `{metrics}` (tic-metrics ran with `--no-plots`?).\n"
        );
        return s;
    }
    for p in plots {
        let _ = writeln!(s, "![{}]({})\n", p.label, md_link_target(&p.link));
    }
    s
}

// ---- rendering -----------------------------------------------------------------------------

/// Quotes `arg` for a POSIX shell when needed.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// The main tables: per family, one row per method (report order) with ID, backward,
/// forward, static average (percent), compute and its ratio to the least-compute method.
pub fn main_tables(report: &Report) -> String {
    let mut s = String::new();
    let least = least_compute(report);
    let t = report.steps.len();
    let mut any_incomplete = false;
    for fam in &report.families {
        let metric = report
            .runs
            .iter()
            .find_map(|r| family_matrix(r, fam))
            .map_or_else(
                || fam.family.matrix_metric().to_string(),
                |m| m.metric.clone(),
            );
        let _ = writeln!(s, "### {} ({metric}, %)\n", family_title(fam));
        let rows: Vec<Vec<String>> = report
            .runs
            .iter()
            .map(|run| {
                let sm = summary(run, fam);
                let complete = sm.is_some_and(|s| s.complete);
                any_incomplete |= !complete;
                let compute = final_compute(run);
                let ratio = compute
                    .zip(least)
                    .filter(|(c, _)| c.is_finite())
                    .map_or_else(|| "–".to_string(), |(c, l)| format!("{:.2}×", c / l));
                vec![
                    if complete {
                        run.name.clone()
                    } else {
                        format!("{} *", run.name)
                    },
                    percent(sm.and_then(|s| s.id)),
                    percent(sm.and_then(|s| s.backward)),
                    percent(sm.and_then(|s| s.forward)),
                    percent(run.static_tasks.average),
                    human_count(compute),
                    ratio,
                ]
            })
            .collect();
        s.push_str(&markdown_table(
            &[
                "Method",
                "ID",
                "Backward",
                "Forward",
                "Static",
                "Compute",
                "× of least",
            ],
            &[Align::Left, R, R, R, R, R, R],
            &rows,
        ));
        s.push('\n');
    }
    if report.families.is_empty() {
        s.push_str("No TiC task family in report.json (no `tic/...` results).\n\n");
    }
    if any_incomplete {
        let _ = writeln!(
            s,
            "`*` incomplete matrix (fewer than {}×{t} cells): means over the cells present.\n",
            t
        );
    }
    s
}

/// Everything [`render`] needs.
#[derive(Debug, Clone)]
pub struct RenderInput<'a> {
    /// The `tic-metrics` report.
    pub report: &'a Report,
    /// Title line.
    pub title: &'a str,
    /// `--metrics` as given (shown in the text).
    pub metrics: &'a str,
    /// The pool description, if given.
    pub synth: Option<&'a SynthInfo>,
    /// `--runs-dir` as given and its runs, if given.
    pub training: Option<(&'a str, &'a [TrainingRun])>,
    /// Plots to link.
    pub plots: &'a [Plot],
    /// The evaluated findings.
    pub findings: &'a [Finding],
    /// The command line that regenerates the report.
    pub command: &'a str,
}

/// `1 step`, `3 steps`.
fn plural(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

fn intro(report: &Report, metrics: &str) -> String {
    let names: Vec<&str> = report.runs.iter().map(|r| r.name.as_str()).collect();
    format!(
        "This report compares {} ({}) over {} ({}). \
         Every model, one per method and step, was evaluated on the evaluation sets of every step, \
         which gives a T×T matrix per task family (row: training step, column: evaluation step). \
         ID is the mean of its diagonal (the current data), backward transfer the mean below it \
         (older data) and forward transfer the mean above it (future data). Static is the mean \
         over the static (non-TiC) tasks of each method's last model; compute is the cumulative \
         number of training samples seen up to the last step. Values are percentages, computed \
         by `tic-metrics` (`{}/report.json`).\n",
        plural(names.len(), "continual-training method"),
        names.join(", "),
        plural(report.steps.len(), "time step"),
        report.steps.join(", "),
        metrics.trim_end_matches('/'),
    )
}

/// The Markdown report.
pub fn render(inp: &RenderInput) -> String {
    let report = inp.report;
    let mut s = format!("# {}\n\n", inp.title);
    s.push_str(&intro(report, inp.metrics));
    s.push('\n');
    if let Some(synth) = inp.synth {
        s.push_str(&data_section(synth));
    }
    s.push_str("## Results\n\n");
    s.push_str(&main_tables(report));
    s.push_str("## Findings\n\n");
    for f in inp.findings {
        let _ = writeln!(s, "{}", f.line());
    }
    s.push('\n');
    s.push_str("## Matrices\n\nRows: training step; columns: evaluation step; values in %.\n\n");
    for fam in &report.families {
        for run in &report.runs {
            if let Some(fm) = family_matrix(run, fam) {
                let _ = writeln!(
                    s,
                    "### {} — {} ({})\n",
                    family_title(fam),
                    run.name,
                    fm.metric
                );
                s.push_str(&tables::matrix_markdown(&report.steps, fm, percent));
                s.push('\n');
            }
        }
    }
    s.push_str(&plots_section(inp.plots, inp.metrics));
    if let Some((dir, runs)) = inp.training {
        s.push_str(&training_section(dir, runs));
    }
    let _ = writeln!(s, "## Regenerate\n\n```sh\n{}\n```", inp.command);
    s
}

/// What `tic-report` prints: the main tables, the findings and the paths written.
pub fn console(report: &Report, findings: &[Finding], output: &Path, plots: &[Plot]) -> String {
    let mut s = main_tables(report);
    for f in findings {
        let _ = writeln!(s, "{}", f.line());
    }
    let _ = writeln!(s, "\nreport: {}", output.display());
    for p in plots {
        let _ = writeln!(s, "plot: {}", p.path.display());
    }
    s
}

// ---- end to end ----------------------------------------------------------------------------

/// The inputs of [`generate`].
#[derive(Debug, Clone)]
pub struct Options {
    /// The `tic-metrics` output folder.
    pub metrics: PathBuf,
    /// `tic-train` runs folder.
    pub runs_dir: Option<PathBuf>,
    /// `synth.json`.
    pub synth: Option<PathBuf>,
    /// Title.
    pub title: String,
    /// The Markdown file to write.
    pub output: PathBuf,
    /// Slack of finding (b).
    pub oracle_tolerance: f64,
    /// Families whose best ID is below this do not count for the findings.
    pub min_signal: f64,
    /// Smallest backward-transfer gap that decides finding (a).
    pub min_gap: f64,
    /// The command line shown under "Regenerate".
    pub command: String,
}

/// What [`generate`] produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The Markdown written to [`Options::output`].
    pub markdown: String,
    /// What to print on stdout.
    pub console: String,
    /// The findings.
    pub findings: Vec<Finding>,
    /// [`check`]'s problems.
    pub problems: Vec<String>,
}

/// Reads the inputs, renders the report and writes it atomically to `opts.output` (`-`: to
/// standard output; plot links are then relative to the working folder).
pub fn generate(opts: &Options) -> Result<Outcome> {
    if !opts.oracle_tolerance.is_finite() || opts.oracle_tolerance < 0.0 {
        bail!(
            "--oracle-tolerance must be a non-negative number, got {}",
            opts.oracle_tolerance
        );
    }
    let report = load_report(&opts.metrics)?;
    let synth = opts
        .synth
        .as_deref()
        .map(SynthInfo::from_path)
        .transpose()?;
    let training = opts.runs_dir.as_deref().map(training_runs).transpose()?;
    let report_dir = match opts.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&report_dir)
        .with_context(|| format!("creating {}", report_dir.display()))?;
    let plots = find_plots(&report, &opts.metrics, &report_dir)?;
    if !opts.min_gap.is_finite() || opts.min_gap < 0.0 {
        bail!(
            "--min-gap must be a non-negative number, got {}",
            opts.min_gap
        );
    }
    let findings = findings_with_gap(
        &report,
        opts.oracle_tolerance,
        opts.min_signal,
        opts.min_gap,
    );
    let metrics = opts.metrics.display().to_string();
    let runs_dir = opts.runs_dir.as_ref().map(|p| p.display().to_string());
    let markdown = render(&RenderInput {
        report: &report,
        title: &opts.title,
        metrics: &metrics,
        synth: synth.as_ref(),
        training: runs_dir.as_deref().zip(training.as_deref()),
        plots: &plots,
        findings: &findings,
        command: &opts.command,
    });
    if tic_shards::storage::is_stdio(&opts.output) {
        tic_shards::storage::write_output("-", markdown.as_bytes())?;
    } else {
        crate::write_output(&opts.output, markdown.as_bytes())?;
    }
    Ok(Outcome {
        console: console(&report, &findings, &opts.output, &plots),
        markdown,
        problems: check(&report),
        findings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamic::{transfer_summary, StaticSummary, StepPoint};
    use crate::tasklist::{TicFamily, Timescale};

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
        assert_eq!(a.verdict, Verdict::NotApplicable);

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
        assert!(
            c.line().contains(
                "datacomp-retrieval-yearly: ID 62.0 vs 62.0, backward 38.3 vs 59.0, forward 18.3 vs 19.0"
            ),
            "{}",
            c.line()
        );
        assert!(
            c.line().contains("compute 15.4k vs 30.7k (0.50×)"),
            "{}",
            c.line()
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
        assert!(
            p.contains("sequential / static: x = 1.5 is outside [0, 1]"),
            "{p}"
        );
        assert!(
            p.contains("cumulative-all / static: average is missing"),
            "{p}"
        );
        assert!(p.contains("oracle: no compute figure"), "{p}");
        assert!(p.contains("report.json has 1 training step(s)"), "{p}");
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
        let s = training_section("runs", &got);
        assert!(
            s.contains("| init_2014 (shared with cumulative-all_2014, sequential_2014) | 12 | 3.8k | 7.500 → 5.500 | 7.0 s | 48.0 |"),
            "{s}"
        );
        assert!(
            s.contains("| sequential_2015 | 3 (unfinished) | 100 | – | – | – |"),
            "{s}"
        );
    }
}
