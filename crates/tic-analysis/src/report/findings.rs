//! The paper's findings (a), (b), (c), each evaluated from the numbers of one report or, over
//! several seeds, from their means against the seed spread ([`super::seeds`]).

use super::lookup::{
    method, summary, SummaryField, CUMULATIVE_ALL, CUMULATIVE_EXP, ORACLE, RESTART, SEQUENTIAL,
};
use super::seeds::{decide, pooled_std, Seeds};
use crate::dynamic::{FamilyKey, Report};
use crate::tables::percent;
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
    /// The numbers are there, but no check is decided: every gap is within the margin
    /// (`--min-gap`) or, over several seeds, within the seed spread.
    Undecided,
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
            Verdict::Undecided => "undecided",
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
    /// Whether the check holds; `None` when it could not be made, is undecided or is
    /// informational.
    pub holds: Option<bool>,
    /// True when the numbers are there but the gap is within the margin or the seed spread.
    pub undecided: bool,
    /// The numbers, e.g. `datacomp-retrieval-yearly: backward sequential 38.3 < cumulative-all 58.0`.
    pub text: String,
}

/// One of the paper's findings, evaluated on a report (or on several seeds).
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
    /// Why it is not applicable or undecided, when it is.
    pub reason: Option<String>,
    /// Number of seeds the numbers are means over (1: a single run per method).
    pub seeds: usize,
}

impl Finding {
    fn not_applicable(id: &'static str, claim: &'static str, reason: String, seeds: usize) -> Self {
        Self {
            id,
            claim,
            verdict: Verdict::NotApplicable,
            evidence: Vec::new(),
            reason: Some(reason),
            seeds,
        }
    }

    /// The finding as one Markdown line: claim, verdict (and the number of seeds when more
    /// than one) and the numbers used.
    pub fn line(&self) -> String {
        let mut s = format!(
            "- ({}) {}: **{}**",
            self.id,
            self.claim,
            self.verdict.as_str()
        );
        if self.seeds > 1 {
            let _ = write!(s, " ({} seeds)", self.seeds);
        }
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

/// `NotReproduced` if a check fails, else `Reproduced` if one holds, else `Undecided` if one
/// is within the margin or the seed spread, else `NotApplicable`.
fn verdict_of(evidence: &[Evidence]) -> Verdict {
    if evidence.iter().any(|e| e.holds == Some(false)) {
        Verdict::NotReproduced
    } else if evidence.iter().any(|e| e.holds == Some(true)) {
        Verdict::Reproduced
    } else if evidence.iter().any(|e| e.undecided) {
        Verdict::Undecided
    } else {
        Verdict::NotApplicable
    }
}

/// Folds an undecided comparison into a family's outcome: a failure stays a failure,
/// anything else becomes undecided.
fn undecided(holds: Option<bool>) -> Option<bool> {
    holds.and_then(|h| if h { None } else { Some(false) })
}

/// ` (gap 5.5, pooled std 1.9)` over several seeds; nothing for one.
fn spread_text(gap_label: &str, gap: f64, spread: Option<f64>) -> String {
    spread.map_or_else(String::new, |s| {
        format!(
            " ({gap_label} {}, pooled std {})",
            percent(Some(gap)),
            percent(Some(s))
        )
    })
}

fn missing_methods(report: &Report, names: &[&str]) -> Option<String> {
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| method(report, n).is_none())
        .collect();
    (!missing.is_empty()).then(|| format!("no method named {}", missing.join(", ")))
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
/// `min_gap` above one to count against it; closer gaps are undecided.
pub fn findings_with_gap(
    report: &Report,
    oracle_tolerance: f64,
    min_signal: f64,
    min_gap: f64,
) -> Vec<Finding> {
    seed_findings(
        &Seeds::single(report.clone()),
        oracle_tolerance,
        min_signal,
        min_gap,
    )
}

/// The findings over several seeds: each comparison is made on the means over the seeds and
/// counts only when the gap is beyond the pooled standard deviation of the two methods (and,
/// for (a), at least `min_gap`); closer, it is undecided. With one seed this is
/// [`findings_with_gap`] (no spread to compare with).
pub fn seed_findings(
    seeds: &Seeds,
    oracle_tolerance: f64,
    min_signal: f64,
    min_gap: f64,
) -> Vec<Finding> {
    vec![
        finding_a(seeds, min_signal, min_gap),
        finding_b(seeds, oracle_tolerance, min_signal),
        finding_c(seeds),
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

/// A family's evidence line: `holds` and `undecided` count only when the family is above
/// chance ([`uninformative`] otherwise says why, appended to `text`).
fn family_evidence(
    report: &Report,
    fam: &FamilyKey,
    min_signal: f64,
    holds: Option<bool>,
    within: bool,
    mut text: String,
) -> Evidence {
    let why = uninformative(report, fam, min_signal);
    if let Some(why) = &why {
        let _ = write!(text, " ({why})");
    }
    let counted = why.is_none();
    let holds = holds.filter(|_| counted);
    Evidence {
        family: Some(fam.id()),
        holds,
        undecided: counted && within && holds.is_none(),
        text,
    }
}

fn no_families(report: &Report) -> Option<String> {
    report
        .families
        .is_empty()
        .then(|| "report.json has no TiC task family".to_string())
}

fn finding_a(seeds: &Seeds, min_signal: f64, min_gap: f64) -> Finding {
    let (report, n) = (&seeds.mean, seeds.len());
    let reason =
        missing_methods(report, &[SEQUENTIAL, CUMULATIVE_ALL]).or_else(|| no_families(report));
    if let Some(reason) = reason {
        return Finding::not_applicable("a", CLAIM_A, reason, n);
    }
    let others: Vec<&str> = [CUMULATIVE_ALL, CUMULATIVE_EXP]
        .into_iter()
        .filter(|name| method(report, name).is_some())
        .collect();
    let backward: SummaryField = |s| s.backward;
    let mut evidence = Vec::new();
    for fam in &report.families {
        let s = seeds.summary(SEQUENTIAL, fam, backward);
        let mut holds = Some(true);
        let mut within = false;
        let mut parts = Vec::new();
        for other in &others {
            let o = seeds.summary(other, fam, backward);
            match (s.mean(), o.mean()) {
                (Some(sm), Some(om)) => {
                    let (gap, spread) = (om - sm, pooled_std(&s, &o));
                    match decide(gap, min_gap, spread) {
                        None => {
                            holds = undecided(holds);
                            within = true;
                            let why = if gap.abs() < min_gap {
                                format!("gap below {}", percent(Some(min_gap)))
                            } else {
                                format!(
                                    "gap {} within pooled std {}",
                                    percent(Some(gap)),
                                    percent(spread)
                                )
                            };
                            parts.push(format!("≈ {other} {} ({why})", o.percent()));
                        }
                        Some(ok) => {
                            holds = if ok { holds } else { Some(false) };
                            parts.push(format!(
                                "{} {other} {}{}",
                                if ok { "<" } else { "≥" },
                                o.percent(),
                                spread_text("gap", gap, spread)
                            ));
                        }
                    }
                }
                _ => {
                    holds = None;
                    parts.push(format!("vs {other} {} (missing)", o.percent()));
                }
            }
        }
        if s.mean().is_none() {
            holds = None;
        }
        let text = format!(
            "{}: backward sequential {} {}",
            fam.id(),
            s.percent(),
            parts.join(", ")
        );
        evidence.push(family_evidence(
            report, fam, min_signal, holds, within, text,
        ));
    }
    let verdict = verdict_of(&evidence);
    let reason = matches!(verdict, Verdict::NotApplicable | Verdict::Undecided).then(|| {
        let beyond = if n > 1 { " and the seed spread" } else { "" };
        format!(
            "no family above chance level separates these methods' backward transfer by the \
             margin{beyond}"
        )
    });
    Finding {
        id: "a",
        claim: CLAIM_A,
        verdict,
        evidence,
        reason,
        seeds: n,
    }
}

fn finding_b(seeds: &Seeds, tol: f64, min_signal: f64) -> Finding {
    let (report, n) = (&seeds.mean, seeds.len());
    let reason = missing_methods(report, &[CUMULATIVE_ALL, ORACLE]).or_else(|| no_families(report));
    if let Some(reason) = reason {
        return Finding::not_applicable("b", CLAIM_B, reason, n);
    }
    let (cc, oc) = (seeds.compute(CUMULATIVE_ALL), seeds.compute(ORACLE));
    let (Some(c), Some(o)) = (
        cc.mean().filter(|c| c.is_finite() && *c > 0.0),
        oc.mean().filter(|o| o.is_finite() && *o > 0.0),
    ) else {
        return Finding::not_applicable(
            "b",
            CLAIM_B,
            format!(
                "compute unknown (cumulative-all {}, oracle {})",
                cc.count(),
                oc.count()
            ),
            n,
        );
    };
    let mut evidence: Vec<Evidence> = report
        .families
        .iter()
        .map(|fam| oracle_gap_evidence(seeds, fam, tol, min_signal))
        .collect();
    let compute = Evidence {
        family: None,
        holds: Some(c < o),
        undecided: false,
        text: format!(
            "compute cumulative-all {} = {:.2}× oracle's {}",
            cc.count(),
            c / o,
            oc.count()
        ),
    };
    let (verdict, reason) = match verdict_of(&evidence) {
        Verdict::NotApplicable => {
            let mut f = Finding::not_applicable(
                "b",
                CLAIM_B,
                "no family above chance level has ID and backward transfer for both methods"
                    .to_string(),
                n,
            );
            f.evidence = evidence;
            return f;
        }
        Verdict::Undecided => {
            evidence.push(compute);
            let why = "no family above chance level is decided: cumulative-all's ID or backward \
                       transfer is within the seed spread of the oracle's minus the tolerance";
            (Verdict::Undecided, Some(why.to_string()))
        }
        _ => {
            evidence.push(compute);
            (verdict_of(&evidence), None)
        }
    };
    Finding {
        id: "b",
        claim: CLAIM_B,
        verdict,
        evidence,
        reason,
        seeds: n,
    }
}

/// Finding (b) on one family: cumulative-all's ID and backward transfer against the
/// oracle's minus the tolerance (beyond the seed spread when there are several seeds).
fn oracle_gap_evidence(seeds: &Seeds, fam: &FamilyKey, tol: f64, min_signal: f64) -> Evidence {
    let report = &seeds.mean;
    let tol_text = percent(Some(tol));
    let mut holds = Some(true);
    let mut within = false;
    let mut parts = Vec::new();
    let getters: [(&str, SummaryField); 2] = [("ID", |s| s.id), ("backward", |s| s.backward)];
    for (label, get) in getters {
        let (a, b) = (
            seeds.summary(CUMULATIVE_ALL, fam, get),
            seeds.summary(ORACLE, fam, get),
        );
        match (a.mean(), b.mean()) {
            (Some(am), Some(bm)) => {
                let spread = pooled_std(&a, &b);
                // The claim a ≥ b − tol holds by this much on the means.
                let sign = match decide(am - bm + tol + EPS, 0.0, spread) {
                    None => {
                        holds = undecided(holds);
                        within = true;
                        "≈"
                    }
                    Some(ok) => {
                        holds = holds.map(|h| h && ok);
                        if ok {
                            "≥"
                        } else {
                            "<"
                        }
                    }
                };
                parts.push(format!(
                    "{label} cumulative-all {} {sign} oracle {} − {tol_text}{}",
                    a.percent(),
                    b.percent(),
                    spread_text("oracle − cumulative-all", bm - am, spread)
                ));
            }
            _ => {
                holds = None;
                parts.push(format!(
                    "{label} cumulative-all {} vs oracle {} (missing)",
                    a.percent(),
                    b.percent()
                ));
            }
        }
    }
    let mut text = format!("{}: {}", fam.id(), parts.join(", "));
    let os = method(report, ORACLE).and_then(|r| summary(r, fam));
    if let Some(os) = os.filter(|s| !s.complete) {
        let t = report.steps.len();
        let _ = write!(
            text,
            " (oracle matrix incomplete: {}/{} cells)",
            os.cells,
            t * t
        );
    }
    family_evidence(report, fam, min_signal, holds, within, text)
}

fn finding_c(seeds: &Seeds) -> Finding {
    let (report, n) = (&seeds.mean, seeds.len());
    let reason = missing_methods(report, &[RESTART, ORACLE]).or_else(|| no_families(report));
    if let Some(reason) = reason {
        return Finding::not_applicable("c", CLAIM_C, reason, n);
    }
    let mut evidence = Vec::new();
    for fam in &report.families {
        let pair = |get: SummaryField| {
            format!(
                "{} vs {}",
                seeds.summary(RESTART, fam, get).percent(),
                seeds.summary(ORACLE, fam, get).percent()
            )
        };
        evidence.push(Evidence {
            family: Some(fam.id()),
            holds: None,
            undecided: false,
            text: format!(
                "{}: ID {}, backward {}, forward {}",
                fam.id(),
                pair(|s| s.id),
                pair(|s| s.backward),
                pair(|s| s.forward)
            ),
        });
    }
    let (rc, oc) = (seeds.compute(RESTART), seeds.compute(ORACLE));
    let ratio = rc
        .mean()
        .zip(oc.mean())
        .filter(|(_, o)| *o > 0.0)
        .map_or_else(String::new, |(r, o)| format!(" ({:.2}×)", r / o));
    evidence.push(Evidence {
        family: None,
        holds: None,
        undecided: false,
        text: format!("compute {} vs {}{ratio}", rc.count(), oc.count()),
    });
    Finding {
        id: "c",
        claim: CLAIM_C,
        verdict: Verdict::Informational,
        evidence,
        reason: None,
        seeds: n,
    }
}
