//! A budget sweep: one multi-seed `tic-report --json` per per-step budget, read back as the
//! gap between a reference method (the oracle) and a method (cumulative-all) on one task
//! family's ID metric, and the two methods' compute ratio, against the budget (`tic-sweep`).

use crate::report::{
    pooled_std, read_compute_mean, read_family_id, read_method, read_verdict, stat_json, Stat,
};
use crate::tables::{human_count, percent};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The first task family of a report (its main table's first family).
pub use crate::report::read_first_family as first_family;

/// Method compared against the reference by default.
pub const DEFAULT_METHOD: &str = "cumulative-all";
/// The reference method by default.
pub const DEFAULT_REFERENCE: &str = "oracle";

/// One budget of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPoint {
    /// Per-step budget (training samples per time step).
    pub budget: f64,
    /// The report it was read from.
    pub source: PathBuf,
    /// The method's ID per seed.
    pub method_id: Stat,
    /// The reference's ID per seed.
    pub reference_id: Stat,
    /// reference − method ID, per seed (paired by seed).
    pub gap: Stat,
    /// Mean cumulative compute (samples) of the method and of the reference.
    pub compute: (Option<f64>, Option<f64>),
    /// Verdict of finding (b) in that report, if it has one.
    pub verdict_b: Option<String>,
}

impl SweepPoint {
    /// Pooled standard deviation of the two methods' ID over the seeds.
    pub fn pooled(&self) -> Option<f64> {
        pooled_std(&self.method_id, &self.reference_id)
    }

    /// method compute / reference compute.
    pub fn compute_ratio(&self) -> Option<f64> {
        match self.compute {
            (Some(m), Some(r)) if r > 0.0 => Some(m / r),
            _ => None,
        }
    }
}

fn method<'a>(report: &'a Value, name: &str, path: &Path) -> Result<&'a Value> {
    read_method(report, name).with_context(|| format!("{}: no method {name:?}", path.display()))
}

fn family_id(m: &Value, family: &str, path: &Path) -> Result<Stat> {
    read_family_id(m, family).with_context(|| format!("{}: no family {family:?}", path.display()))
}

/// Reads one budget's point from a parsed `tic-report --json` document.
pub fn point_from_json(
    budget: f64,
    source: &Path,
    report: &Value,
    family: &str,
    method_name: &str,
    reference: &str,
) -> Result<SweepPoint> {
    let (m, r) = (
        method(report, method_name, source)?,
        method(report, reference, source)?,
    );
    let (method_id, reference_id) = (family_id(m, family, source)?, family_id(r, family, source)?);
    if method_id.values.len() != reference_id.values.len() {
        bail!(
            "{}: {method_name} and {reference} have different seed counts",
            source.display()
        );
    }
    let gap = Stat {
        values: reference_id
            .values
            .iter()
            .zip(&method_id.values)
            .map(|(r, m)| Some((*r)? - (*m)?))
            .collect(),
    };
    let verdict_b = read_verdict(report, "b");
    Ok(SweepPoint {
        budget,
        source: source.to_path_buf(),
        method_id,
        reference_id,
        gap,
        compute: (read_compute_mean(m), read_compute_mean(r)),
        verdict_b,
    })
}

/// Reads `BUDGET=FILE` (a `tic-report --json` output) into a point.
pub fn load_point(
    spec: &str,
    family: Option<&str>,
    method: &str,
    reference: &str,
) -> Result<(SweepPoint, String)> {
    let (b, file) = spec
        .split_once('=')
        .with_context(|| format!("{spec:?}: expected BUDGET=REPORT_JSON"))?;
    let budget: f64 = b
        .trim()
        .parse()
        .with_context(|| format!("{spec:?}: the budget {b:?} is not a number"))?;
    let path = PathBuf::from(file);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let report: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let family = match family {
        Some(f) => f.to_string(),
        None => {
            first_family(&report).with_context(|| format!("{}: no task family", path.display()))?
        }
    };
    let p = point_from_json(budget, &path, &report, &family, method, reference)?;
    Ok((p, family))
}

fn pts(v: Option<f64>) -> String {
    percent(v)
}

/// The sweep as a Markdown table (values in %, gap paired by seed, mean ± std).
pub fn markdown(points: &[SweepPoint], family: &str, method: &str, reference: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| budget / step | seeds | {method} ID | {reference} ID | {reference} − {method} | pooled std | compute {method} | compute {reference} | ratio | (b) |"
    );
    s.push_str("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n");
    for p in points {
        let _ = writeln!(
            s,
            "| {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            p.budget,
            p.gap.n(),
            p.method_id.percent(),
            p.reference_id.percent(),
            p.gap.percent(),
            pts(p.pooled()),
            human_count(p.compute.0),
            human_count(p.compute.1),
            p.compute_ratio()
                .map_or("–".to_string(), |r| format!("{r:.2}×")),
            p.verdict_b.as_deref().unwrap_or("–"),
        );
    }
    let _ = writeln!(
        s,
        "\nFamily `{family}`, ID in %; the gap is {reference} − {method} per seed (mean ± std over \
         the seeds); pooled std: of the two methods' ID; ratio: {method}'s cumulative compute over \
         {reference}'s; (b): the verdict of that budget's tic-report."
    );
    s
}

/// The sweep as JSON (fractions in `[0, 1]`, compute in samples).
pub fn to_json(points: &[SweepPoint], family: &str, method: &str, reference: &str) -> Value {
    json!({
        "family": family,
        "method": method,
        "reference": reference,
        "points": points.iter().map(|p| json!({
            "budget": p.budget,
            "source": p.source.display().to_string(),
            "method_id": stat_json(&p.method_id),
            "reference_id": stat_json(&p.reference_id),
            "gap": stat_json(&p.gap),
            "pooled_std": p.pooled(),
            "compute": {"method": p.compute.0, "reference": p.compute.1},
            "compute_ratio": p.compute_ratio(),
            "verdict_b": p.verdict_b,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(seq: [f64; 3], ora: [f64; 3]) -> Value {
        let fam = |v: [f64; 3]| json!([{"family": "retrieval", "id": {"values": v}}]);
        json!({
            "methods": [
                {"name": "cumulative-all", "families": fam(seq), "compute": {"mean": 4.0}},
                {"name": "oracle", "families": fam(ora), "compute": {"mean": 10.0}},
            ],
            "findings": [{"id": "b", "verdict": "undecided"}],
        })
    }

    #[test]
    fn gap_is_paired_by_seed_and_ratio_is_method_over_reference() {
        let r = report([0.20, 0.30, 0.25], [0.25, 0.33, 0.31]);
        let p = point_from_json(
            3840.0,
            Path::new("r.json"),
            &r,
            "retrieval",
            DEFAULT_METHOD,
            DEFAULT_REFERENCE,
        )
        .unwrap();
        let gap = p.gap.mean().unwrap();
        assert!((gap - (0.05 + 0.03 + 0.06) / 3.0).abs() < 1e-12);
        // Paired: the per-seed differences vary far less than either method's values.
        assert!(p.gap.std().unwrap() < p.pooled().unwrap());
        assert_eq!(p.compute_ratio(), Some(0.4));
        assert_eq!(p.verdict_b.as_deref(), Some("undecided"));
        assert_eq!(first_family(&r).as_deref(), Some("retrieval"));
        let md = markdown(
            std::slice::from_ref(&p),
            "retrieval",
            DEFAULT_METHOD,
            DEFAULT_REFERENCE,
        );
        assert!(
            md.contains("| 3840 | 3 | 25.0 ± 5.0 | 29.7 ± 4.2 | 4.7 ± 1.5 |"),
            "{md}"
        );
        assert!(md.contains("| 0.40× | undecided |"), "{md}");
        let j = to_json(&[p], "retrieval", DEFAULT_METHOD, DEFAULT_REFERENCE);
        assert_eq!(j["points"][0]["compute_ratio"], 0.4);
    }

    #[test]
    fn missing_method_or_family_is_named() {
        let r = report([0.2; 3], [0.3; 3]);
        let e = point_from_json(1.0, Path::new("r.json"), &r, "retrieval", "lwf", "oracle")
            .unwrap_err();
        assert!(e.to_string().contains("no method \"lwf\""), "{e}");
        let e = point_from_json(1.0, Path::new("r.json"), &r, "x", DEFAULT_METHOD, "oracle")
            .unwrap_err();
        assert!(e.to_string().contains("no family \"x\""), "{e}");
    }
}
