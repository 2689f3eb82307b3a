//! The paper's findings (a), (b), (c), each evaluated from the numbers of a [`Report`].

use super::{
    final_compute, method, summary, CUMULATIVE_ALL, CUMULATIVE_EXP, ORACLE, RESTART, SEQUENTIAL,
};
use crate::dynamic::{FamilyKey, Report, RunReport, TransferSummary};
use crate::tables::{human_count, percent};
use std::fmt::Write as _;

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
