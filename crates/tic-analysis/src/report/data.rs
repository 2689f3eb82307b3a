//! The "Data" section: the parts of `tic-synth`'s `synth.json` ([`SynthManifest`]) the report
//! shows.

use crate::tables::{markdown_table, Align};
use std::fmt::Write as _;
use tic_shards::synth::SynthManifest;

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

pub(super) fn data_section(synth: &SynthManifest) -> String {
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
            .map(|(y, n)| vec![y.to_string(), thousands(*n)])
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
