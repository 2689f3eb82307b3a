//! `tic-redcaps-splits`: TiC-RedCaps per-year train/test files from RedCaps annotations.
//!
//! Mirrors `tic-redcaps/create_splits.py`: for each year (2017–2020) every
//! `annotations/*_{year}.json` (`{"annotations": [{"subreddit", "image_id", "caption", …}]}`)
//! contributes rows `{subreddit}/{image_id}.jpg` → caption (unchanged), split per year with
//! [`crate::split`] into `train_batch_{year}.csv` / `test_batch_{year}.csv`. Files are read in
//! sorted name order (the original's `glob` order is the file system's). Each file is parsed
//! twice (count, then write), so memory is bounded by the largest single file.
use crate::split::{test_count, Splitter};
use crate::tsv::SplitWriter;
use anyhow::{bail, Context, Result};
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The years of TiC-RedCaps.
pub const DEFAULT_YEARS: [&str; 4] = ["2017", "2018", "2019", "2020"];

#[derive(Deserialize)]
struct CountFile {
    annotations: Vec<IgnoredAny>,
}

/// A string or a number, formatted as Python's f-string would.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Str(String),
    Int(i64),
    Float(f64),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Str(s) => f.write_str(s),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x:?}"),
        }
    }
}

/// One annotation (other keys are ignored).
#[derive(Deserialize)]
pub struct Annotation {
    subreddit: Scalar,
    image_id: Scalar,
    caption: String,
}

#[derive(Deserialize)]
struct AnnFile {
    annotations: Vec<Annotation>,
}

impl Annotation {
    /// `{subreddit}/{image_id}.jpg`.
    pub fn path(&self) -> String {
        format!("{}/{}.jpg", self.subreddit, self.image_id)
    }
    /// The caption.
    pub fn caption(&self) -> &str {
        &self.caption
    }
}

/// The annotation files of `year` in `dir` (`*_{year}.json`, no hidden files), sorted.
pub fn year_files(dir: &Path, year: &str) -> Result<Vec<PathBuf>> {
    let suffix = format!("_{year}.json");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(&suffix) && !name.starts_with('.') && e.file_type()?.is_file() {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Reads all annotations of one file; errors name the file and position.
pub fn read_annotations(path: &Path) -> Result<Vec<Annotation>> {
    let f: AnnFile = serde_json::from_slice(&read(path)?).with_context(|| {
        format!(
            "{}: expected {{\"annotations\": [{{\"subreddit\": str, \"image_id\": str, \
             \"caption\": str, ...}}, ...]}}",
            path.display()
        )
    })?;
    Ok(f.annotations)
}

fn count_annotations(path: &Path) -> Result<usize> {
    let f: CountFile = serde_json::from_slice(&read(path)?).with_context(|| {
        format!(
            "{}: expected a JSON object with an \"annotations\" list",
            path.display()
        )
    })?;
    Ok(f.annotations.len())
}

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct RedcapsConfig {
    /// The `annotations/` folder.
    pub annotations_dir: PathBuf,
    /// Folder for `{train,test}_batch_{year}.csv`.
    pub output_dir: PathBuf,
    /// Years to split.
    pub years: Vec<String>,
    /// Split seed.
    pub seed: u64,
    /// sklearn-style test size (fraction or row count).
    pub test_size: f64,
    /// Hide progress bars.
    pub quiet: bool,
}

/// Rows per year.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct YearCounts {
    /// The year.
    pub year: String,
    /// Annotation files read.
    pub files: usize,
    /// Train rows.
    pub train: u64,
    /// Test rows.
    pub test: u64,
}

/// Splits every year.
pub fn run(cfg: &RedcapsConfig) -> Result<Vec<YearCounts>> {
    if !cfg.annotations_dir.is_dir() {
        bail!(
            "annotations folder {} not found (expected RedCaps' annotations/*_{{year}}.json)",
            cfg.annotations_dir.display()
        );
    }
    let mut out = Vec::new();
    for year in &cfg.years {
        let files = year_files(&cfg.annotations_dir, year)?;
        let pb = tic_shards::cli::progress(2 * files.len() as u64, "files", cfg.quiet);
        pb.set_message(year.clone());
        let mut n = 0usize;
        for f in &files {
            n += count_annotations(f)?;
            pb.inc(1);
        }
        let n_test = test_count(n, cfg.test_size)?;
        if n < 2 || n_test >= n {
            tracing::warn!(
                "year {year} has {n} annotations in {} files: sklearn's train_test_split would \
                 fail here; writing all of them to train_batch_{year}.csv",
                files.len()
            );
        }
        let n_test = if n_test >= n { 0 } else { n_test };
        let stream: u64 = year.parse().unwrap_or(0);
        let mut split = Splitter::new(n, n_test, cfg.seed, stream);
        let mut train =
            SplitWriter::create(&cfg.output_dir.join(format!("train_batch_{year}.csv")))?;
        let mut test = SplitWriter::create(&cfg.output_dir.join(format!("test_batch_{year}.csv")))?;
        for f in &files {
            let anns = read_annotations(f)?;
            for a in &anns {
                if split.rows_seen() as usize >= n {
                    bail!(
                        "{}: changed while being read (more annotations than counted)",
                        f.display()
                    );
                }
                if split.next_is_test() {
                    test.write(&a.path(), a.caption())?;
                } else {
                    train.write(&a.path(), a.caption())?;
                }
            }
            pb.inc(1);
        }
        if split.rows_seen() as usize != n {
            bail!(
                "annotations of {year} changed while being read ({} rows, counted {n})",
                split.rows_seen()
            );
        }
        pb.finish_and_clear();
        let counts = YearCounts {
            year: year.clone(),
            files: files.len(),
            train: train.rows(),
            test: test.rows(),
        };
        train.commit()?;
        test.commit()?;
        out.push(counts);
    }
    Ok(out)
}
