//! Pack a tab-separated `path<TAB>caption` CSV and an image folder into WebDataset shards
//! (TiC's `create_tars.py`, used for TiC-YFCC15M and TiC-RedCaps).
//!
//! Shards are `{output_dir}/{csv stem}__{i:08d}.tar` holding `{row}.jpg` and `{row}.json`
//! (`{"caption": …}`), at most `--shard-size` samples each; rows whose image is missing are
//! counted and reported. Differences from the original: source images are deleted only with
//! `--delete-source` (and only after every shard is safely written); no empty trailing shard
//! is written; `--datacomp-compat` adds what the DataComp/OpenCLIP loaders need (a `.txt`
//! caption member, a 32-hex `uid` in the json, `_stats.json` files and `sizes.json`).

use crate::wds::TarSampleWriter;
use crate::{atomic, counts, pyjson};
use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Command-line arguments of `tic-make-tars`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "tic-make-tars",
    version,
    about = "Pack a path/caption TSV and its images into WebDataset shards (TiC's create_tars.py)"
)]
pub struct MakeTarsArgs {
    /// Tab-separated file with a header holding `path` and `caption` columns (local path or
    /// object-store URL); `-`: standard input (then --name is required).
    #[arg(long)]
    pub input: PathBuf,
    /// Shard name prefix, `{name}__00000000.tar` (default: the input file's stem).
    #[arg(long)]
    pub name: Option<String>,
    /// Folder the `path` column is relative to (an object-store prefix is downloaded first;
    /// `--delete-source` then deletes only the downloaded copies).
    #[arg(long)]
    pub image_dir: PathBuf,
    /// Folder for the shards (created if missing; an object-store URL gets them uploaded once
    /// all are written).
    #[arg(long)]
    pub output_dir: PathBuf,
    /// Samples per shard.
    #[arg(short = 'z', long, default_value_t = 1000)]
    pub shard_size: usize,
    /// Delete each source image once all shards are written (the original always deletes).
    #[arg(long)]
    pub delete_source: bool,
    /// Also write `.txt` captions, json `uid`s, `_stats.json` and `sizes.json` for DataComp loaders.
    #[arg(long)]
    pub datacomp_compat: bool,
    /// Less output.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// What [`run`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MakeTarsSummary {
    /// Samples written.
    pub added: u64,
    /// Rows skipped because their image is missing.
    pub skipped: u64,
    /// Shard paths written.
    pub shards: Vec<PathBuf>,
}

/// A stable 32-hex uid for a sample path (first 128 bits of its SHA-256).
pub fn path_uid(path: &str) -> String {
    hex::encode(&Sha256::digest(path.as_bytes())[..16])
}

/// The shard being filled: its writer (streaming to a temporary file) and sample count.
type OpenShard = (TarSampleWriter<atomic::AtomicFile>, u64);

/// The input table, opened: the shard name prefix, what errors call it, its reader and size.
struct CsvInput {
    stem: String,
    name: String,
    reader: Box<dyn std::io::Read>,
    len: u64,
}

/// Opens `--input` (a file, or standard input for `-`) and picks the shard name prefix.
fn open_input(a: &MakeTarsArgs) -> Result<CsvInput> {
    let from_stdin = a.input.as_os_str() == crate::storage::STDIO;
    let stem = match (&a.name, from_stdin) {
        (Some(n), _) => n.clone(),
        (None, true) => bail!("--input -: give the shard name prefix with --name"),
        (None, false) => a
            .input
            .file_stem()
            .with_context(|| format!("{}: no file name", a.input.display()))?
            .to_string_lossy()
            .into_owned(),
    };
    // What errors call the input.
    let name = if from_stdin {
        "standard input (--input -)".to_string()
    } else {
        a.input.display().to_string()
    };
    let (reader, len): (Box<dyn std::io::Read>, u64) = if from_stdin {
        let bytes = crate::storage::read_stdin("--input -")?;
        let n = bytes.len() as u64;
        (Box::new(std::io::Cursor::new(bytes)), n)
    } else {
        let f = std::fs::File::open(&a.input)
            .with_context(|| format!("opening {}", a.input.display()))?;
        let n = f.metadata().map_or(0, |m| m.len());
        (Box::new(f), n)
    };
    Ok(CsvInput {
        stem,
        name,
        reader,
        len,
    })
}

/// Runs the packer.
pub fn run(a: &MakeTarsArgs) -> Result<MakeTarsSummary> {
    if a.shard_size == 0 {
        bail!("--shard-size must be at least 1");
    }
    let input = open_input(a)?;
    let input_name = input.name;
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .flexible(false)
        .from_reader(input.reader);
    let headers = rdr
        .headers()
        .with_context(|| format!("{input_name}: no header row"))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{input_name}: no {name:?} column (header: {:?})", headers))
    };
    let (pc, cc) = (col("path")?, col("caption")?);
    std::fs::create_dir_all(&a.output_dir)?;
    // Progress over the CSV's bytes (the row count is unknown until the end).
    let pb = crate::cli::progress(input.len, "CSV bytes", a.quiet);
    pb.set_message(input_name.clone());
    let mut packer = Packer {
        a,
        stem: input.stem,
        summary: MakeTarsSummary::default(),
        current: None,
        sizes: Vec::new(),
        added_sources: Vec::new(),
        pb,
    };
    // `read_record` rather than `records()`, so the reader's byte position is at hand.
    let mut rec = csv::StringRecord::new();
    for idx in 0usize.. {
        let more = rdr
            .read_record(&mut rec)
            .with_context(|| format!("{input_name}: row {}", idx + 2))?;
        if !more {
            break;
        }
        if idx % 256 == 0 {
            packer.pb.set_position(rdr.position().byte());
        }
        let rel = rec.get(pc).unwrap_or_default();
        let caption = rec.get(cc).unwrap_or_default();
        packer.add_row(idx, rel, caption)?;
    }
    packer.finish()
}

/// The packer's state while it reads the rows.
struct Packer<'a> {
    a: &'a MakeTarsArgs,
    /// Shard name prefix.
    stem: String,
    summary: MakeTarsSummary,
    current: Option<OpenShard>,
    /// `sizes.json` (`--datacomp-compat`): shard name and samples, in shard order.
    sizes: Vec<(String, u64)>,
    /// Source images to delete at the end (`--delete-source`).
    added_sources: Vec<PathBuf>,
    pb: indicatif::ProgressBar,
}

impl Packer<'_> {
    /// The path of shard `i`.
    fn shard_path(&self, i: usize) -> PathBuf {
        self.a.output_dir.join(format!("{}__{i:08}.tar", self.stem))
    }

    /// Adds row `idx` (its image at `rel`, its caption) as sample `idx`; a missing image is
    /// counted as skipped. A full shard is finished.
    fn add_row(&mut self, idx: usize, rel: &str, caption: &str) -> Result<()> {
        let a = self.a;
        let img = a.image_dir.join(rel);
        let bytes = match std::fs::read(&img) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.summary.skipped += 1;
                return Ok(());
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", img.display())),
        };
        let mtime = std::fs::metadata(&img)?
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        if self.current.is_none() {
            let file = atomic::AtomicFile::create(self.shard_path(self.summary.shards.len()))?;
            self.current = Some((TarSampleWriter::new(file), 0));
        }
        let (tw, n) = self.current.as_mut().unwrap();
        let key = idx.to_string();
        let mut meta = json!({ "caption": caption });
        if a.datacomp_compat {
            meta["uid"] = Value::String(path_uid(rel));
        }
        let meta = pyjson::to_string(&meta);
        let mut members: Vec<(&str, &[u8], u64)> =
            vec![("jpg", &bytes, mtime), ("json", meta.as_bytes(), mtime)];
        if a.datacomp_compat {
            members.push(("txt", caption.as_bytes(), mtime));
        }
        tw.append_sample(&key, &mut members)?;
        *n += 1;
        let full = *n as usize == a.shard_size;
        self.summary.added += 1;
        if a.delete_source {
            self.added_sources.push(img);
        }
        if full {
            self.finish_shard()?;
        }
        Ok(())
    }

    /// Finishes the open shard (and its stats file with `--datacomp-compat`).
    fn finish_shard(&mut self) -> Result<()> {
        let a = self.a;
        let (tw, n) = self.current.take().expect("a shard is open");
        let path = self.shard_path(self.summary.shards.len());
        let mut file = tw.finish()?;
        file.flush()?;
        file.commit()
            .with_context(|| format!("writing {}", path.display()))?;
        if !a.quiet {
            self.pb
                .suspend(|| eprintln!("Saved shard: {}", path.display()));
        }
        if a.datacomp_compat {
            let name = file_name(&path);
            let stats = path.with_file_name(counts::stats_file_of(&name));
            atomic::write_atomic(stats, counts::stats_json(n).as_bytes())?;
            self.sizes.push((name, n));
        }
        self.summary.shards.push(path);
        Ok(())
    }

    /// Finishes the last shard, writes `sizes.json` (`--datacomp-compat`) and deletes the
    /// sources (`--delete-source`), now that every shard is safely written.
    fn finish(mut self) -> Result<MakeTarsSummary> {
        if self.current.is_some() {
            self.finish_shard()?;
        }
        self.pb.finish_and_clear();
        let a = self.a;
        if a.datacomp_compat {
            atomic::write_atomic(
                a.output_dir.join(counts::SIZES_FILE),
                counts::sizes_json(self.sizes).as_bytes(),
            )?;
        }
        for p in self.added_sources {
            std::fs::remove_file(&p).with_context(|| format!("deleting {}", p.display()))?;
        }
        Ok(self.summary)
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}
