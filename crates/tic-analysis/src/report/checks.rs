//! `--check`: what makes a report unfit to read.

use super::lookup::{family_matrix, final_compute};
use crate::dynamic::Report;

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
