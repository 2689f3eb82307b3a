//! Several seeds of one experiment: one `tic-metrics` report per seed, each number's per-seed
//! values, mean and spread, and the rule that decides a comparison beyond the seed spread.

use super::lookup::{family_matrix, final_compute, method, summary, SummaryField};
use crate::aggregate::AggregateScore;
use crate::dynamic::{FamilyKey, Report};
use crate::tables::{human_count, percent};
use anyhow::{bail, Result};

/// One number over the seeds: the value of each seed (`None` where a seed lacks it).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stat {
    /// The per-seed values, in seed order.
    pub values: Vec<Option<f64>>,
}

impl Stat {
    fn present(&self) -> impl Iterator<Item = f64> + '_ {
        self.values.iter().flatten().copied()
    }

    /// Number of seeds with a value.
    pub fn n(&self) -> usize {
        self.present().count()
    }

    /// Mean over the seeds with a value (`None` when none has one).
    pub fn mean(&self) -> Option<f64> {
        let n = self.n();
        (n > 0).then(|| self.present().sum::<f64>() / n as f64)
    }

    /// Sample standard deviation (divisor n − 1) over the seeds with a value; `None` below 2.
    pub fn std(&self) -> Option<f64> {
        let (n, mean) = (self.n(), self.mean()?);
        (n >= 2).then(|| {
            let ss: f64 = self.present().map(|v| (v - mean).powi(2)).sum();
            (ss / (n - 1) as f64).sqrt()
        })
    }

    /// The mean in percent, `± std` when there are several values: `23.4 ± 2.4`.
    pub fn percent(&self) -> String {
        match self.std() {
            Some(s) => format!("{} ± {}", percent(self.mean()), percent(Some(s))),
            None => percent(self.mean()),
        }
    }

    /// The mean as a short count, `± std` when the seeds differ: `15.4k`, `15.4k ± 0.1k`.
    pub fn count(&self) -> String {
        match self.std().filter(|s| *s > 0.0) {
            Some(s) => format!("{} ± {}", human_count(self.mean()), human_count(Some(s))),
            None => human_count(self.mean()),
        }
    }
}

/// Pooled sample standard deviation of two methods' values over the seeds,
/// `√(((n_a−1)·s_a² + (n_b−1)·s_b²) / (n_a + n_b − 2))`; `None` without two values on a side.
pub fn pooled_std(a: &Stat, b: &Stat) -> Option<f64> {
    let (sa, sb) = (a.std()?, b.std()?);
    let (na, nb) = (a.n() as f64, b.n() as f64);
    Some((((na - 1.0) * sa * sa + (nb - 1.0) * sb * sb) / (na + nb - 2.0)).sqrt())
}

/// Decides one comparison from `margin`, how far the claim holds on the means (positive: it
/// holds, negative: the opposite holds). `None` (undecided) when `|margin|` is below `floor`
/// or not beyond `spread` (the pooled standard deviation; `None` for a single seed);
/// otherwise whether the claim holds.
pub fn decide(margin: f64, floor: f64, spread: Option<f64>) -> Option<bool> {
    let within = margin.abs() < floor || spread.is_some_and(|s| margin.abs() <= s);
    (!within).then_some(margin > 0.0)
}

/// The reports of one experiment's seeds (same steps, task families and methods).
#[derive(Debug, Clone)]
pub struct Seeds {
    /// One label per seed (the `--metrics` folder as given).
    pub labels: Vec<String>,
    /// One `tic-metrics` report per seed.
    pub reports: Vec<Report>,
    /// The first seed's report with every matrix cell, transfer summary, static average and
    /// compute figure replaced by its mean over the seeds (the report itself for one seed).
    pub mean: Report,
}

impl Seeds {
    /// Checks that the reports describe the same experiment (steps, families and methods in
    /// the same order) and computes their mean.
    pub fn new(labels: Vec<String>, reports: Vec<Report>) -> Result<Self> {
        let Some(first) = reports.first() else {
            bail!("no report (give at least one --metrics folder)");
        };
        if labels.len() != reports.len() {
            bail!("{} labels for {} reports", labels.len(), reports.len());
        }
        let names = |r: &Report| r.runs.iter().map(|x| x.name.clone()).collect::<Vec<_>>();
        let fams = |r: &Report| r.families.iter().map(FamilyKey::id).collect::<Vec<_>>();
        for (label, r) in labels.iter().zip(&reports).skip(1) {
            let what = if r.steps != first.steps {
                Some(("steps", r.steps.join(", "), first.steps.join(", ")))
            } else if fams(r) != fams(first) {
                Some(("task families", fams(r).join(", "), fams(first).join(", ")))
            } else if names(r) != names(first) {
                Some(("methods", names(r).join(", "), names(first).join(", ")))
            } else {
                None
            };
            if let Some((what, got, want)) = what {
                bail!(
                    "{label}: {what} [{got}] differ from {}'s [{want}]: every --metrics folder \
                     must be a seed of the same experiment",
                    labels[0]
                );
            }
        }
        let mut seeds = Self {
            mean: first.clone(),
            labels,
            reports,
        };
        seeds.average();
        Ok(seeds)
    }

    /// One seed: `report` alone.
    pub fn single(report: Report) -> Self {
        Self::new(vec![String::new()], vec![report]).expect("one report is always consistent")
    }

    /// Number of seeds.
    pub fn len(&self) -> usize {
        self.reports.len()
    }

    /// True when there is no seed (never, for a [`Seeds::new`]).
    pub fn is_empty(&self) -> bool {
        self.reports.is_empty()
    }

    /// A transfer-summary field (`|s| s.id`, …) of `method` on `family`, over the seeds.
    pub fn summary(&self, method_name: &str, family: &FamilyKey, field: SummaryField) -> Stat {
        self.over(|r| {
            method(r, method_name)
                .and_then(|run| summary(run, family))
                .and_then(field)
        })
    }

    /// The static average of `method`'s last model, over the seeds.
    pub fn static_average(&self, method_name: &str) -> Stat {
        self.over(|r| method(r, method_name).and_then(|run| run.static_tasks.average))
    }

    /// The main metric of the static task named `task` of `method`'s last model, over the
    /// seeds (`None` where it is `null` or the seed has no record of it).
    pub fn static_task(&self, method_name: &str, task: &str) -> Stat {
        self.over(|r| {
            method(r, method_name)
                .and_then(|run| run.static_tasks.tasks.get(task).copied().flatten())
        })
    }

    /// How many static tasks of `method`'s last model entered its static average, and how
    /// many it has, per seed (`None` where a seed lacks the method).
    pub fn static_counts(&self, method_name: &str) -> Vec<Option<(usize, usize)>> {
        self.reports
            .iter()
            .map(|r| {
                let st = &method(r, method_name)?.static_tasks;
                Some((st.averaged_tasks(), st.tasks.len()))
            })
            .collect()
    }

    /// DataComp's aggregates of `method`'s last model in each seed whose static tasks are
    /// DataComp's suite (`None` for the others).
    pub fn datacomp(&self, method_name: &str) -> Vec<Option<Vec<AggregateScore>>> {
        self.reports
            .iter()
            .map(|r| Some(method(r, method_name)?.static_tasks.datacomp()?.scores()))
            .collect()
    }

    /// The compute (cumulative samples seen by the last model) of `method`, over the seeds.
    pub fn compute(&self, method_name: &str) -> Stat {
        self.over(|r| method(r, method_name).and_then(final_compute))
    }

    fn over(&self, get: impl Fn(&Report) -> Option<f64>) -> Stat {
        Stat {
            values: self.reports.iter().map(get).collect(),
        }
    }

    /// Fills [`Seeds::mean`]: cell-wise means (over the seeds that have the cell) and mean
    /// summaries; a summary is complete when every seed's is.
    fn average(&mut self) {
        if self.len() == 1 {
            return;
        }
        let mut mean = self.mean.clone();
        for run in &mut mean.runs {
            for fm in &mut run.matrices {
                let cells: Vec<Vec<Stat>> = (0..fm.matrix.len())
                    .map(|i| {
                        (0..fm.matrix[i].len())
                            .map(|j| {
                                self.over(|r| {
                                    method(r, &run.name)
                                        .and_then(|x| family_matrix(x, &fm.family))
                                        .and_then(|m| m.matrix.get(i)?.get(j).copied().flatten())
                                })
                            })
                            .collect()
                    })
                    .collect();
                fm.matrix = cells
                    .iter()
                    .map(|row| row.iter().map(Stat::mean).collect())
                    .collect();
                let s = &mut fm.summary;
                s.id = self.summary(&run.name, &fm.family, |s| s.id).mean();
                s.backward = self.summary(&run.name, &fm.family, |s| s.backward).mean();
                s.forward = self.summary(&run.name, &fm.family, |s| s.forward).mean();
                s.complete = self.reports.iter().all(|r| {
                    method(r, &run.name)
                        .and_then(|x| summary(x, &fm.family))
                        .is_some_and(|s| s.complete)
                });
            }
            run.static_tasks.average = self.static_average(&run.name).mean();
            let compute = self.compute(&run.name).mean();
            if let Some(last) = run.per_step.last_mut() {
                last.cumulative_samples = compute;
            }
        }
        self.mean = mean;
    }
}
