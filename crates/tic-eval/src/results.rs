//! DataComp `eval_results.jsonl`: one JSON record per evaluated task,
//! `{"key": task_key, "dataset": task_name, "metrics": {..., "main_metric": value}}`.
//!
//! [`ResultsFile`] reads such a file (also the ones written by DataComp's Python, whose
//! `json.dumps` may emit bare `NaN`/`Infinity`: we read them as `null`), tells which tasks are
//! already done (DataComp skips a task whose *name* already has a record, counting only records
//! whose key is in the current task list), and appends new records one line at a time with
//! `fsync`, so an interrupted evaluation loses at most the line being written; a torn last line
//! is skipped with a warning on the next read.

use crate::tasklist::{Task, TaskList};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The file name DataComp's `evaluate.py` writes in its output directory.
pub const RESULTS_FILE_NAME: &str = "eval_results.jsonl";

/// One line of `eval_results.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// Task key from `tasklist.yml` (e.g. `tic/datacomp/retrieval/yearly/2016`).
    pub key: String,
    /// Task display name (`name` in `tasklist.yml`, else the key).
    pub dataset: String,
    /// Metric name → value (numbers, `null`, or anything a task reports), incl. `main_metric`.
    pub metrics: Map<String, Value>,
}

impl EvalRecord {
    /// A record whose `main_metric` is `metrics[main_metric]` (`null` when the metric is
    /// missing or `main_metric` is `None`), as `evaluate.py` does.
    pub fn new(
        key: &str,
        dataset: &str,
        mut metrics: Map<String, Value>,
        main_metric: Option<&str>,
    ) -> Self {
        let main = main_metric
            .and_then(|m| metrics.get(m).cloned())
            .unwrap_or(Value::Null);
        metrics.insert("main_metric".into(), main);
        Self {
            key: key.to_string(),
            dataset: dataset.to_string(),
            metrics,
        }
    }

    /// A record for a task of the task list.
    pub fn for_task(task: &Task, metrics: Map<String, Value>) -> Self {
        Self::new(&task.key, task.name(), metrics, task.main_metric())
    }

    /// A numeric metric (`None` if absent, `null` or not a number).
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.get(name).and_then(Value::as_f64)
    }

    /// The `main_metric` value, if numeric.
    pub fn main_metric(&self) -> Option<f64> {
        self.metric("main_metric")
    }

    /// The record as one line as Python's `json.dumps` writes it by default (`", "` and `": "`
    /// separators, non-ASCII as `\u` escapes of UTF-16 units).
    pub fn to_line(&self) -> String {
        tic_shards::pyjson::to_string(self)
    }
}

/// Replaces the bare `NaN`, `Infinity` and `-Infinity` that Python's `json.dumps` writes
/// (outside strings) with `null`.
pub fn sanitize_python_json(line: &str) -> std::borrow::Cow<'_, str> {
    if !line.contains("NaN") && !line.contains("Infinity") {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut in_str = false;
    let mut escaped = false;
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if c == '"' {
            in_str = true;
        } else if let Some(tok) = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|t| rest.starts_with(t))
        {
            out.push_str("null");
            rest = &rest[tok.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    std::borrow::Cow::Owned(out)
}

/// Parses the text of an `eval_results.jsonl` file (`path` only names it in errors).
/// Blank lines are ignored; a final line without newline that does not parse (a write torn by
/// a crash) is skipped with a warning; any other bad line is an error naming `path:line`.
pub fn parse_results(text: &str, path: &Path) -> Result<Vec<EvalRecord>> {
    let mut records = Vec::new();
    let ends_clean = text.is_empty() || text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<EvalRecord>(&sanitize_python_json(line)) {
            Ok(r) => records.push(r),
            Err(e) if i + 1 == lines.len() && !ends_clean => {
                tracing::warn!(
                    "{}:{}: ignoring torn last line ({e})",
                    path.display(),
                    i + 1
                );
            }
            Err(e) => bail!("{}:{}: not an eval record: {e}", path.display(), i + 1),
        }
    }
    Ok(records)
}

/// An `eval_results.jsonl` file: its records, and appends.
#[derive(Debug, Clone)]
pub struct ResultsFile {
    path: PathBuf,
    records: Vec<EvalRecord>,
}

impl ResultsFile {
    /// Reads `path` (a missing file is an empty result set).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let records = match std::fs::read_to_string(&path) {
            Ok(text) => parse_results(&text, &path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Self { path, records })
    }

    /// `{dir}/eval_results.jsonl`.
    pub fn open_in_dir(dir: &Path) -> Result<Self> {
        Self::open(dir.join(RESULTS_FILE_NAME))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All records, in file order.
    pub fn records(&self) -> &[EvalRecord] {
        &self.records
    }

    /// The last record for task `key`, if any.
    pub fn by_key(&self, key: &str) -> Option<&EvalRecord> {
        self.records.iter().rev().find(|r| r.key == key)
    }

    /// Names of the tasks of `tasks` already evaluated (DataComp: records whose key is in the
    /// task list, identified by their `dataset` name).
    pub fn done_names(&self, tasks: &TaskList) -> HashSet<String> {
        self.records
            .iter()
            .filter(|r| tasks.get(&r.key).is_some())
            .map(|r| r.dataset.clone())
            .collect()
    }

    /// Whether `task` already has a record: DataComp's rule, a record with the task's name
    /// whose key is in `tasks`.
    pub fn is_done(&self, task: &Task, tasks: &TaskList) -> bool {
        self.records
            .iter()
            .any(|r| r.dataset == task.name() && tasks.get(&r.key).is_some())
    }

    /// Appends `record` as one line and `fsync`s it. Creates the file (and its directory) if
    /// needed; if the file ends in a torn line, the new record starts on a fresh line.
    pub fn append(&mut self, record: EvalRecord) -> Result<()> {
        self.write_line(&record.to_line())?;
        self.records.push(record);
        Ok(())
    }

    /// Appends a record serialised elsewhere with [`EvalRecord::to_line`] (e.g. on another
    /// rank of an MPI job), verbatim, as [`ResultsFile::append`] does: the file gets the same
    /// bytes as if the record had been appended where it was made (no float is re-printed).
    pub fn append_line(&mut self, line: &str) -> Result<()> {
        if line.contains('\n') {
            bail!("an eval record line must not contain a newline: {line:?}");
        }
        let record: EvalRecord = serde_json::from_str(&sanitize_python_json(line))
            .with_context(|| format!("not an eval record: {line:?}"))?;
        self.write_line(line)?;
        self.records.push(record);
        Ok(())
    }

    fn write_line(&self, record_line: &str) -> Result<()> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut f = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("opening {} for appending", self.path.display()))?;
        let mut existing = String::new();
        f.read_to_string(&mut existing)
            .with_context(|| format!("reading {}", self.path.display()))?;
        let mut line = String::new();
        if !existing.is_empty() && !existing.ends_with('\n') {
            let cut = existing.rfind('\n').map_or(0, |i| i + 1);
            let tail = &existing[cut..];
            if serde_json::from_str::<EvalRecord>(&sanitize_python_json(tail)).is_ok() {
                // A complete record without its newline: keep it.
                line.push('\n');
            } else {
                tracing::warn!(
                    "{}: dropping torn last line {:?}",
                    self.path.display(),
                    tail
                );
                f.set_len(cut as u64)
                    .with_context(|| format!("truncating {}", self.path.display()))?;
            }
        }
        line.push_str(record_line);
        line.push('\n');
        f.write_all(line.as_bytes())
            .and_then(|_| f.sync_data())
            .with_context(|| format!("appending to {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(pairs: &[(&str, Value)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn record_line_is_python_style_and_round_trips() {
        let r = EvalRecord::new(
            "imagenet1k",
            "ImageNet 1k",
            metrics(&[("acc1", 0.5.into()), ("acc5", Value::Null)]),
            Some("acc1"),
        );
        let line = r.to_line();
        assert_eq!(
            line,
            r#"{"key": "imagenet1k", "dataset": "ImageNet 1k", "metrics": {"acc1": 0.5, "acc5": null, "main_metric": 0.5}}"#
        );
        let back = parse_results(&format!("{line}\n"), Path::new("x")).unwrap();
        assert_eq!(back, vec![r]);
        // Missing metric / no main metric -> null, like `metrics.get(...)`.
        let r = EvalRecord::new(
            "k",
            "n",
            metrics(&[("acc1", 1.into())]),
            Some("mean_recall@1"),
        );
        assert_eq!(r.metrics["main_metric"], Value::Null);
        assert_eq!(r.main_metric(), None);
        // Non-ASCII names are escaped, as `json.dumps` does by default, and read back.
        let r = EvalRecord::new("fr", "Café ☃", metrics(&[]), None);
        let line = r.to_line();
        assert!(line.contains(r#""dataset": "Caf\u00e9 \u2603""#), "{line}");
        let back = parse_results(&format!("{line}\n"), Path::new("x")).unwrap();
        assert_eq!(back, vec![r]);
    }

    #[test]
    fn python_nan_is_read_as_null() {
        let s = sanitize_python_json(
            r#"{"a": NaN, "b": -Infinity, "s": "NaN \" Infinity", "c": [Infinity]}"#,
        );
        assert_eq!(
            s,
            r#"{"a": null, "b": null, "s": "NaN \" Infinity", "c": [null]}"#
        );
        let text = "{\"key\": \"k\", \"dataset\": \"d\", \"metrics\": {\"acc5\": NaN}}\n";
        let r = parse_results(text, Path::new("f")).unwrap();
        assert!(r[0].metrics["acc5"].is_null());
    }

    #[test]
    fn torn_last_line_is_skipped_but_bad_middle_line_is_an_error() {
        let good = r#"{"key": "k", "dataset": "d", "metrics": {}}"#;
        let torn = format!("{good}\n{{\"key\": \"k2\", \"data");
        assert_eq!(parse_results(&torn, Path::new("f")).unwrap().len(), 1);
        let bad = format!("{good}\nnot json\n{good}\n");
        let err = parse_results(&bad, Path::new("res.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("res.jsonl:2"), "{err}");
    }

    #[test]
    fn append_drops_a_torn_last_line_and_keeps_a_complete_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(RESULTS_FILE_NAME);
        let mut f = ResultsFile::open(&path).unwrap();
        assert!(f.records().is_empty());
        f.append(EvalRecord::new("a", "A", Map::new(), None))
            .unwrap();
        // Simulate a crash mid-write.
        let mut raw = OpenOptions::new().append(true).open(&path).unwrap();
        raw.write_all(b"{\"key\": \"b\", \"da").unwrap();
        drop(raw);
        let mut f = ResultsFile::open(&path).unwrap();
        assert_eq!(f.records().len(), 1);
        f.append(EvalRecord::new("c", "C", Map::new(), None))
            .unwrap();
        let f = ResultsFile::open(&path).unwrap();
        let keys: Vec<_> = f.records().iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["a", "c"]);
        assert!(f.by_key("c").is_some());
        // A complete record without its newline (another writer) is kept.
        let mut raw = OpenOptions::new().append(true).open(&path).unwrap();
        raw.write_all(br#"{"key": "d", "dataset": "D", "metrics": {}}"#)
            .unwrap();
        drop(raw);
        let mut f = ResultsFile::open(&path).unwrap();
        f.append(EvalRecord::new("e", "E", Map::new(), None))
            .unwrap();
        let f = ResultsFile::open(&path).unwrap();
        let keys: Vec<_> = f.records().iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["a", "c", "d", "e"]);
    }

    #[test]
    fn append_line_writes_the_line_verbatim() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RESULTS_FILE_NAME);
        let mut f = ResultsFile::open(&path).unwrap();
        // 17 significant digits: written as given, not re-printed from a parsed f64.
        let line = r#"{"key": "k", "dataset": "K", "metrics": {"acc1": 0.12345678901234568, "main_metric": 0.12345678901234568}}"#;
        f.append_line(line).unwrap();
        assert_eq!(f.by_key("k").unwrap().dataset, "K");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{line}\n"));
        assert!(f.append_line("{\"key\": 1}").is_err());
        assert!(f.append_line(&format!("{line}\n{line}")).is_err());
        assert_eq!(ResultsFile::open(&path).unwrap().records().len(), 1);
    }
}
