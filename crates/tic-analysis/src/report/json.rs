//! `--json`: the report's numbers and verdicts as data, with every seed's value.

use super::findings::Finding;
use super::seeds::{Seeds, Stat};
use serde_json::{json, Value};

fn stat(s: &Stat) -> Value {
    json!({"values": s.values, "mean": s.mean(), "std": s.std(), "n": s.n()})
}

/// The seeds (their `--metrics` folders), per method and family the per-seed ID, backward and
/// forward transfer, static average and compute with their mean, standard deviation and count,
/// and every finding with its verdict and evidence. Values are fractions in `[0, 1]`
/// (compute: samples); non-finite values are `null`.
pub fn report_json(seeds: &Seeds, findings: &[Finding]) -> Value {
    let report = &seeds.mean;
    let methods: Vec<Value> = report
        .runs
        .iter()
        .map(|run| {
            let families: Vec<Value> = report
                .families
                .iter()
                .map(|fam| {
                    json!({
                        "family": fam.id(),
                        "id": stat(&seeds.summary(&run.name, fam, |s| s.id)),
                        "backward": stat(&seeds.summary(&run.name, fam, |s| s.backward)),
                        "forward": stat(&seeds.summary(&run.name, fam, |s| s.forward)),
                    })
                })
                .collect();
            json!({
                "name": run.name,
                "families": families,
                "static": stat(&seeds.static_average(&run.name)),
                "compute": stat(&seeds.compute(&run.name)),
            })
        })
        .collect();
    let findings: Vec<Value> = findings
        .iter()
        .map(|f| {
            let evidence: Vec<Value> = f
                .evidence
                .iter()
                .map(|e| {
                    json!({"family": e.family, "holds": e.holds, "undecided": e.undecided,
                           "text": e.text})
                })
                .collect();
            json!({"id": f.id, "claim": f.claim, "verdict": f.verdict.as_str(), "seeds": f.seeds,
                   "reason": f.reason, "evidence": evidence})
        })
        .collect();
    json!({
        "seeds": seeds.labels,
        "steps": report.steps,
        "methods": methods,
        "findings": findings,
    })
}
