//! The "Data" section: the parts of `tic-synth`'s `synth.json` the report shows.

use crate::tables::{markdown_table, Align};
use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

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
pub(super) fn thousands(n: u64) -> String {
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

pub(super) fn data_section(synth: &SynthInfo) -> String {
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
