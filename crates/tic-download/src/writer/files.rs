//! `--output_format files`: img2dataset's `FilesSampleWriter`, a folder `{id:08d}/` holding
//! `KEY.jpg` (the image), `KEY.txt` (the caption) and `KEY.json` (`json.dumps(meta, indent=4)`)
//! per success. img2dataset writes the folder in place; here it is filled under a temporary
//! name (`.tic-tmp-{id:08d}.files/`, removed by the next run if killed), synced
//! (`tic_shards::atomic::sync_folder`) and renamed into place when the shard is done, replacing
//! any folder an unfinished earlier run left.

use super::Sample;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use tic_shards::atomic::TEMP_PREFIX;

/// The folder `{id:08d}/` of shard `id`.
pub fn folder(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:08}"))
}

/// A shard's folder being filled.
pub struct FolderSink {
    tmp: PathBuf,
    target: PathBuf,
}

impl FolderSink {
    /// Starts the folder of shard `id` (under a temporary name).
    pub fn create(dir: &Path, id: u64) -> Result<Self> {
        let tmp = dir.join(format!("{TEMP_PREFIX}{id:08}.files"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
        }
        fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        Ok(FolderSink {
            tmp,
            target: folder(dir, id),
        })
    }

    /// Writes a sample's three files.
    pub fn add(&mut self, s: &Sample) -> Result<()> {
        for (ext, data) in [
            (s.ext, s.image),
            ("txt", s.txt.as_bytes()),
            ("json", s.json.as_bytes()),
        ] {
            let p = self.tmp.join(format!("{}.{ext}", s.key));
            let shown = self.target.join(format!("{}.{ext}", s.key));
            fs::write(&p, data).with_context(|| format!("writing {}", shown.display()))?;
        }
        Ok(())
    }

    /// Makes its files durable, then renames the folder into place (an older folder of the same
    /// shard is removed first).
    pub fn commit(self) -> Result<()> {
        tic_shards::atomic::sync_folder(&self.tmp)
            .with_context(|| format!("syncing {}", self.tmp.display()))?;
        if self.target.exists() {
            fs::remove_dir_all(&self.target)
                .with_context(|| format!("removing {}", self.target.display()))?;
        }
        fs::rename(&self.tmp, &self.target)
            .with_context(|| format!("renaming {} into place", self.target.display()))?;
        Ok(())
    }
}

impl Drop for FolderSink {
    fn drop(&mut self) {
        // Not committed (a failed shard): the next run would remove it anyway.
        let _ = fs::remove_dir_all(&self.tmp);
    }
}

/// The samples in shard `id`'s folder, or `None` unless every key there has its image, `txt`
/// and `json` file and nothing else is there.
pub fn count_samples(dir: &Path, id: u64, ext: &str) -> Result<Option<u64>> {
    let mut per_key: HashMap<String, [bool; 3]> = HashMap::new();
    for e in fs::read_dir(folder(dir, id))? {
        let name = e?.file_name().to_string_lossy().to_string();
        let Some((key, x)) = name.rsplit_once('.') else {
            return Ok(None);
        };
        let Some(slot) = [ext, "txt", "json"].iter().position(|&w| w == x) else {
            return Ok(None);
        };
        per_key.entry(key.to_string()).or_default()[slot] = true;
    }
    let whole = per_key.values().all(|m| m.iter().all(|&b| b));
    Ok(whole.then_some(per_key.len() as u64))
}

/// Key → image lookup in shard `id`'s folder.
pub fn images(dir: &Path, id: u64, ext: &str) -> impl FnMut(&str) -> Result<Vec<u8>> {
    let folder = folder(dir, id);
    let ext = ext.to_string();
    move |key: &str| {
        let p = folder.join(format!("{key}.{ext}"));
        fs::read(&p).with_context(|| format!("reading {} (a success in the parquet)", p.display()))
    }
}
