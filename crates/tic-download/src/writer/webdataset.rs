//! `--output_format webdataset`: img2dataset's `WebDatasetSampleWriter`, a tar `{id:08d}.tar`
//! with `KEY.{jpg,json,txt}` per success in webdataset's sorted member order (samples in
//! completion order), written under a temporary name and renamed when the shard is done. This
//! is the format `tic-reshard` and every later stage read.

use super::Sample;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use tic_shards::atomic::AtomicFile;
use tic_shards::wds::TarSampleWriter;

/// The tar `{id:08d}.tar` of shard `id`.
pub fn tar_file(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:08}.tar"))
}

/// A shard's tar being written.
pub struct TarSink {
    path: PathBuf,
    tar: TarSampleWriter<AtomicFile>,
    mtime: u64,
}

impl TarSink {
    /// Starts the tar of shard `id` (under a temporary name).
    pub fn create(dir: &Path, id: u64) -> Result<Self> {
        let path = tar_file(dir, id);
        let file =
            AtomicFile::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mtime = super::now() as u64;
        Ok(TarSink {
            path,
            tar: TarSampleWriter::new(file),
            mtime,
        })
    }

    /// Appends a sample's three members.
    pub fn add(&mut self, s: &Sample) -> Result<()> {
        let mut members: [(&str, &[u8], u64); 3] = [
            (s.ext, s.image, self.mtime),
            ("txt", s.txt.as_bytes(), self.mtime),
            ("json", s.json.as_bytes(), self.mtime),
        ];
        self.tar
            .append_sample(s.key, &mut members)
            .with_context(|| format!("writing {}", self.path.display()))
    }

    /// Ends the tar and renames it into place.
    pub fn commit(self) -> Result<()> {
        let ctx = || format!("writing {}", self.path.display());
        self.tar
            .finish()
            .with_context(ctx)?
            .commit()
            .with_context(ctx)
    }
}

/// The samples in shard `id`'s tar, or `None` when the tar does not scan clean.
pub fn count_samples(dir: &Path, id: u64) -> Result<Option<u64>> {
    let tar = tar_file(dir, id);
    let data = fs::read(&tar)?;
    let scan = tic_shards::wds::scan_shard(&data, &tar.display().to_string());
    Ok(scan.errors.is_empty().then_some(scan.samples.len() as u64))
}

/// Key → image lookup over shard `id`'s tar (its `.EXT` members).
pub fn images(dir: &Path, id: u64, ext: &str) -> Result<impl FnMut(&str) -> Result<Vec<u8>>> {
    let tar = tar_file(dir, id);
    let data = fs::read(&tar).with_context(|| format!("reading {}", tar.display()))?;
    let scan = tic_shards::wds::scan_shard(&data, &tar.display().to_string());
    let mut found: HashMap<String, Vec<u8>> = scan
        .samples
        .iter()
        .filter_map(|s| {
            let m = s.member(ext)?;
            Some((
                s.key.clone(),
                tic_shards::wds::member_bytes(&data, m).to_vec(),
            ))
        })
        .collect();
    Ok(move |key: &str| {
        found.remove(key).with_context(|| {
            format!(
                "{}: sample {key} is a success in the parquet but not in the tar",
                tar.display()
            )
        })
    })
}
