//! The split files: `path<TAB>caption` with a header, as pandas' `to_csv(sep="\t", index=False)`
//! writes them (minimal quoting with `"`, `\n` line ends), written atomically.
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use tic_shards::atomic::AtomicFile;

/// A split file being written under a temporary name.
pub struct SplitWriter {
    inner: csv::Writer<AtomicFile>,
    path: PathBuf,
    rows: u64,
}

impl SplitWriter {
    /// Starts `path` and writes the header `path<TAB>caption`.
    pub fn create(path: &Path) -> Result<Self> {
        let f = AtomicFile::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut inner = csv::WriterBuilder::new()
            .delimiter(b'\t')
            .terminator(csv::Terminator::Any(b'\n'))
            .quote_style(csv::QuoteStyle::Necessary)
            .from_writer(f);
        inner
            .write_record(["path", "caption"])
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(SplitWriter {
            inner,
            path: path.to_path_buf(),
            rows: 0,
        })
    }

    /// Appends one row.
    pub fn write(&mut self, path: &str, caption: &str) -> Result<()> {
        self.rows += 1;
        self.inner
            .write_record([path, caption])
            .with_context(|| format!("writing {}", self.path.display()))
    }

    /// Rows written (without the header).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Flushes and renames the file into place.
    pub fn commit(self) -> Result<()> {
        let f = self
            .inner
            .into_inner()
            .map_err(|e| anyhow::anyhow!("flushing {}: {}", self.path.display(), e.error()))?;
        f.commit()
            .with_context(|| format!("writing {}", self.path.display()))
    }
}
