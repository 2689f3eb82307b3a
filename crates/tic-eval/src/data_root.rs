//! Where `tic-eval --data_dir` finds the evaluation sets: a local folder, an object-store root
//! (each task's set downloaded before it is evaluated and deleted after), or a `pipe:` folder
//! template (each file of the set streamed through its command, [`tic_shards::pipe::PipeUrl`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tic_shards::evalset_layout::{parse_number, shard_file, NSHARDS_FILE, ROOT_FILES};
use tic_shards::pipe::{self, PipeUrl};
use tic_shards::storage::{download_tree, Location};

use crate::tasklist::Task;

/// Where the evaluation sets are: a local root, or a remote root whose task sets are staged
/// one at a time in a temporary folder.
pub enum DataRoot {
    /// A local folder.
    Local(PathBuf),
    /// An object-store root; sets are downloaded into the folder.
    Remote(Location, tempfile::TempDir),
    /// A `pipe:` folder template with `{}` for each file's path; sets are streamed into the
    /// folder.
    Pipe(PipeUrl, tempfile::TempDir),
}

/// A temporary folder for the staged sets; `what` says how they arrive.
fn staging_dir(what: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("tic-eval-data-")
        .tempdir()
        .with_context(|| format!("creating a folder for {what} evaluation sets"))
}

impl DataRoot {
    /// The root of `--data_dir spec`. A `pipe:` URL must be a folder template (hold `{}`).
    pub fn new(spec: &Path) -> Result<Self> {
        let s = spec.to_string_lossy();
        if let Some(url) = PipeUrl::parse(&s) {
            url.require_template()?;
            return Ok(DataRoot::Pipe(url, staging_dir("streamed")?));
        }
        Ok(match Location::parse(&s)? {
            Location::Local(p) => DataRoot::Local(p),
            remote => DataRoot::Remote(remote, staging_dir("downloaded")?),
        })
    }

    /// The local root under which `task`'s set is found (staging it first if remote).
    pub fn stage(&self, task: &Task) -> Result<PathBuf> {
        match self {
            DataRoot::Local(p) => Ok(p.clone()),
            DataRoot::Remote(url, tmp) => {
                let (rel, _) = task.parsed_key()?.data_location(Path::new(""));
                let rel_s = rel.to_string_lossy().replace('\\', "/");
                download_tree(&url.join(&rel_s), &tmp.path().join(&rel))?;
                Ok(tmp.path().to_path_buf())
            }
            DataRoot::Pipe(template, tmp) => {
                let (rel, split) = task.parsed_key()?.data_location(Path::new(""));
                stage_pipe_set(template, &rel, split, tmp.path())?;
                Ok(tmp.path().to_path_buf())
            }
        }
    }

    /// Deletes a staged set once evaluated.
    pub fn release(&self, task: &Task) {
        if let (DataRoot::Remote(_, tmp) | DataRoot::Pipe(_, tmp), Ok(key)) =
            (self, task.parsed_key())
        {
            let _ = std::fs::remove_dir_all(tmp.path().join(key.data_location(Path::new("")).0));
        }
    }
}

/// Streams the evaluation set `rel` (split `split`) of a `pipe:` `--data_dir` into `dst/rel`:
/// the optional metadata files (a failing command = no such file, logged at debug level), then
/// `nshards.txt` and every shard (a failing command or truncated tar is an error naming it).
pub fn stage_pipe_set(template: &PipeUrl, rel: &Path, split: &str, dst: &Path) -> Result<()> {
    let rel_s = rel.to_string_lossy().replace('\\', "/");
    let under = |name: &str| -> String {
        [rel_s.as_str(), split, name]
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/")
    };
    let local = dst.join(rel);
    std::fs::create_dir_all(local.join(split))
        .with_context(|| format!("creating {}", local.display()))?;
    for name in ROOT_FILES {
        let url = template.for_path(&[rel_s.as_str(), name].join("/"))?;
        match pipe::read_raw(&url) {
            Ok(b) => crate::write_output(local.join(name), &b)?,
            Err(e) => tracing::debug!("{name} taken as absent: {e:#}"),
        }
    }
    let url = template.for_path(&under(NSHARDS_FILE))?;
    let text = pipe::read_raw(&url)
        .with_context(|| format!("evaluation set {rel_s}: reading {NSHARDS_FILE}"))?;
    crate::write_output(local.join(split).join(NSHARDS_FILE), &text)?;
    let n = parse_number(&String::from_utf8_lossy(&text))
        .with_context(|| format!("{url}: not a number of shards"))?;
    for i in 0..n {
        let url = template.for_path(&under(&shard_file(i)))?;
        let path = local.join(split).join(shard_file(i));
        // Read back by the completeness check: opened for reading too.
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        pipe::fetch_into(&url, &mut f)?;
    }
    Ok(())
}
