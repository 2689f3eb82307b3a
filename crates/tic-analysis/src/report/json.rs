//! `--json`: the report's numbers and verdicts as data, with every seed's value; written by
//! [`report_json`] and read back (by `tic-sweep`) through the `read_*` functions here, which
//! tolerate missing parts (each caller words its own error).

use super::findings::Finding;
use super::seeds::{Seeds, Stat};
use serde_json::{json, Value};

/// A statistic as the document holds it: its per-seed values, mean, standard deviation and
/// count.
pub fn stat_json(s: &Stat) -> Value {
    json!({"values": s.values, "mean": s.mean(), "std": s.std(), "n": s.n()})
}

/// The per-seed values of a statistic written by [`stat_json`] (none when absent; a value that
/// is not a number is missing).
pub fn read_stat(v: &Value) -> Stat {
    let values = v
        .get("values")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(Value::as_f64).collect())
        .unwrap_or_default();
    Stat { values }
}

/// The entry of method `name` in a report document.
pub fn read_method<'a>(report: &'a Value, name: &str) -> Option<&'a Value> {
    report
        .get("methods")
        .and_then(Value::as_array)
        .and_then(|ms| ms.iter().find(|m| m["name"] == name))
}

/// The per-seed ID of task family `family` in a method entry.
pub fn read_family_id(method: &Value, family: &str) -> Option<Stat> {
    method["families"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["family"] == family))
        .map(|f| read_stat(&f["id"]))
}

/// The mean cumulative compute (samples) of a method entry.
pub fn read_compute_mean(method: &Value) -> Option<f64> {
    method["compute"]["mean"].as_f64()
}

/// The first task family of a report document (its main table's first family).
pub fn read_first_family(report: &Value) -> Option<String> {
    report["methods"][0]["families"][0]["family"]
        .as_str()
        .map(str::to_string)
}

/// The verdict of finding `id` in a report document.
pub fn read_verdict(report: &Value, id: &str) -> Option<String> {
    report["findings"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["id"] == id))
        .and_then(|f| f["verdict"].as_str())
        .map(str::to_string)
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
                        "id": stat_json(&seeds.summary(&run.name, fam, |s| s.id)),
                        "backward": stat_json(&seeds.summary(&run.name, fam, |s| s.backward)),
                        "forward": stat_json(&seeds.summary(&run.name, fam, |s| s.forward)),
                    })
                })
                .collect();
            json!({
                "name": run.name,
                "families": families,
                "static": stat_json(&seeds.static_average(&run.name)),
                "compute": stat_json(&seeds.compute(&run.name)),
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
