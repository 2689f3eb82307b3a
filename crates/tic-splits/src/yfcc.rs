//! `tic-yfcc-splits`: TiC-YFCC15M year-group train/test files from `yfcc15m.csv`.
//!
//! Mirrors `tic-yfcc15m/create_splits.py` (fixed: it indexes empty lists and cannot run as
//! published). Each row's caption is `clean_text(f"{title}. {description}. {usertags}")[:500]`
//! ([`crate::captions`]; a missing field counts as empty, with pandas' default NA spellings),
//! its image path `key[:3]/key[3:6]/key.jpg`, its group the upload year (UTC) binned
//! 2004–2008 → 0, 2009–2010 → 1, 2011–2012 → 2, 2013–2014 → 3; other years are counted and
//! reported. Each group is split with [`crate::split`] into `train_batch_{g}.csv` and
//! `test_batch_{g}.csv`.
//!
//! The CSV is streamed twice (count, then write): memory holds one row plus the test-row
//! indices (1% of the rows), whatever the file size.
use crate::captions::yfcc_caption;
use crate::split::{test_count, Splitter};
use crate::tsv::SplitWriter;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Year groups of TiC-YFCC15M (inclusive ranges).
pub const GROUPS: [(i32, i32); 4] = [(2004, 2008), (2009, 2010), (2011, 2012), (2013, 2014)];

/// Columns the CSV must have.
pub const REQUIRED_COLUMNS: [&str; 5] = ["key", "dateuploaded", "title", "description", "usertags"];

/// Field values pandas' `read_csv` reads as NaN by default (the original then uses "").
pub const PANDAS_NA: [&str; 19] = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
];

/// The group of an upload year.
pub fn year_group(year: i32) -> Option<usize> {
    GROUPS.iter().position(|&(a, b)| (a..=b).contains(&year))
}

/// The UTC calendar year of a unix timestamp in seconds.
pub fn utc_year(secs: i64) -> i32 {
    // Howard Hinnant's civil_from_days.
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2)) as i32
}

/// Parses `dateuploaded` (unix seconds; pandas may have written it as a float).
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let t = s.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Some(i);
    }
    let f = t.parse::<f64>().ok()?;
    (f.is_finite() && f.abs() < 1e15).then(|| f.floor() as i64)
}

/// The image path `key[:3]/key[3:6]/key.jpg` (character slices, as Python).
pub fn image_path(key: &str) -> String {
    let a: String = key.chars().take(3).collect();
    let b: String = key.chars().skip(3).take(3).collect();
    format!("{a}/{b}/{key}.jpg")
}

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct YfccConfig {
    /// The `yfcc15m.csv` to read.
    pub input: PathBuf,
    /// Folder for `{train,test}_batch_{g}.csv`.
    pub output_dir: PathBuf,
    /// Split seed.
    pub seed: u64,
    /// sklearn-style test size (fraction or row count).
    pub test_size: f64,
    /// Hide progress bars.
    pub quiet: bool,
}

/// Rows per group and outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct YfccSummary {
    /// Data rows read.
    pub rows: u64,
    /// Rows whose year is in no group (the original's "not mapped paths").
    pub unmapped: u64,
    /// Train rows per group.
    pub train: [u64; 4],
    /// Test rows per group.
    pub test: [u64; 4],
}

struct Columns {
    idx: [usize; 5],
    width: usize,
}

fn open(path: &Path) -> Result<(csv::Reader<std::fs::File>, Columns)> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(f);
    let header = rdr
        .headers()
        .with_context(|| format!("{}: reading the header row", path.display()))?
        .clone();
    let mut idx = [0usize; 5];
    let mut missing = Vec::new();
    for (i, col) in REQUIRED_COLUMNS.iter().enumerate() {
        match header.iter().position(|h| h == *col) {
            Some(p) => idx[i] = p,
            None => missing.push(*col),
        }
    }
    if !missing.is_empty() {
        bail!(
            "{}: header lacks column(s) {} (expected at least {}; found {})",
            path.display(),
            missing.join(", "),
            REQUIRED_COLUMNS.join(", "),
            header.iter().collect::<Vec<_>>().join(", ")
        );
    }
    Ok((
        rdr,
        Columns {
            idx,
            width: header.len(),
        },
    ))
}

/// One parsed row: group (if any), key, title, description, usertags.
struct Row<'a> {
    group: Option<usize>,
    key: &'a str,
    text: [&'a str; 3],
}

fn field(rec: &csv::StringRecord, i: usize) -> &str {
    let v = rec.get(i).unwrap_or("");
    if PANDAS_NA.contains(&v) {
        ""
    } else {
        v
    }
}

fn parse_row<'a>(rec: &'a csv::StringRecord, cols: &Columns, path: &Path) -> Result<Row<'a>> {
    let line = rec.position().map_or(0, |p| p.line());
    if rec.len() > cols.width {
        bail!(
            "{}: line {line}: {} fields, but the header has {}",
            path.display(),
            rec.len(),
            cols.width
        );
    }
    let key = field(rec, cols.idx[0]);
    if key.is_empty() {
        bail!(
            "{}: line {line}: column key is empty (expected the photo hash)",
            path.display()
        );
    }
    let raw_date = rec.get(cols.idx[1]).unwrap_or("");
    let Some(ts) = parse_timestamp(raw_date) else {
        bail!(
            "{}: line {line}: column dateuploaded = {raw_date:?} is not a unix timestamp in seconds",
            path.display()
        );
    };
    Ok(Row {
        group: year_group(utc_year(ts)),
        key,
        text: [
            field(rec, cols.idx[2]),
            field(rec, cols.idx[3]),
            field(rec, cols.idx[4]),
        ],
    })
}

fn for_each_row(
    path: &Path,
    quiet: bool,
    what: &str,
    mut f: impl FnMut(Row<'_>) -> Result<()>,
) -> Result<()> {
    let (mut rdr, cols) = open(path)?;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let pb = tic_shards::cli::progress(size, "bytes", quiet);
    pb.set_message(what.to_string());
    let mut rec = csv::StringRecord::new();
    let mut n = 0u64;
    loop {
        let more = rdr
            .read_record(&mut rec)
            .with_context(|| format!("{}: reading CSV", path.display()))?;
        if !more {
            break;
        }
        f(parse_row(&rec, &cols, path)?)?;
        n += 1;
        if n % 4096 == 0 {
            pb.set_position(rdr.position().byte());
        }
    }
    pb.finish_and_clear();
    Ok(())
}

/// Runs both passes and writes the eight split files.
pub fn run(cfg: &YfccConfig) -> Result<YfccSummary> {
    let mut s = YfccSummary::default();
    let mut counts = [0usize; 4];
    for_each_row(&cfg.input, cfg.quiet, "counting", |r| {
        s.rows += 1;
        match r.group {
            Some(g) => counts[g] += 1,
            None => s.unmapped += 1,
        }
        Ok(())
    })?;
    let mut splitters = Vec::new();
    let mut writers = Vec::new();
    for (g, &n) in counts.iter().enumerate() {
        let n_test = test_count(n, cfg.test_size)?;
        if n < 2 || n_test >= n {
            tracing::warn!(
                "group {g} has {n} rows: sklearn's train_test_split would fail here; \
                 writing all of them to train_batch_{g}.csv"
            );
        }
        let n_test = if n_test >= n { 0 } else { n_test };
        splitters.push(Splitter::new(n, n_test, cfg.seed, g as u64));
        writers.push((
            SplitWriter::create(&cfg.output_dir.join(format!("train_batch_{g}.csv")))?,
            SplitWriter::create(&cfg.output_dir.join(format!("test_batch_{g}.csv")))?,
        ));
    }
    for_each_row(&cfg.input, cfg.quiet, "writing", |r| {
        let Some(g) = r.group else { return Ok(()) };
        let caption = yfcc_caption(r.text[0], r.text[1], r.text[2]);
        let path = image_path(r.key);
        let (train, test) = &mut writers[g];
        if splitters[g].next_is_test() {
            test.write(&path, &caption)
        } else {
            train.write(&path, &caption)
        }
    })?;
    for (g, (train, test)) in writers.into_iter().enumerate() {
        s.train[g] = train.rows();
        s.test[g] = test.rows();
        train.commit()?;
        test.commit()?;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years_and_groups() {
        assert_eq!(utc_year(0), 1970);
        assert_eq!(utc_year(1_104_537_599), 2004); // 2004-12-31T23:59:59Z
        assert_eq!(utc_year(1_104_537_600), 2005);
        assert_eq!(utc_year(951_782_400), 2000); // 2000-02-29
        assert_eq!(utc_year(-1), 1969);
        assert_eq!(year_group(2004), Some(0));
        assert_eq!(year_group(2010), Some(1));
        assert_eq!(year_group(2014), Some(3));
        assert_eq!(year_group(2015), None);
        assert_eq!(year_group(2003), None);
        assert_eq!(image_path("d29e7c6a30"), "d29/e7c/d29e7c6a30.jpg");
        assert_eq!(image_path("ab"), "ab//ab.jpg");
        assert_eq!(parse_timestamp("1234567890.0"), Some(1_234_567_890));
        assert_eq!(parse_timestamp("x"), None);
        assert_eq!(parse_timestamp(""), None);
    }
}
