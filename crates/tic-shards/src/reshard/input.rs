//! What a reshard reads before it writes: input files memory-mapped, the subset (sorted, from
//! a file or standard input), the `-c` class map, the input shard names and their size table.

use super::ReshardArgs;
use crate::npy::UidView;
use crate::pickle;
use crate::shardfmt::ShardFormat;
use crate::storage::{read_stdin, LocalCopy, Location, STDIO};
use crate::uid::Uid;
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use tracing::{info, warn};

/// Raw bytes of a file: memory-mapped when possible.
pub(super) enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// A local copy of a file with its bytes mapped.
pub(super) struct Mapped {
    _copy: LocalCopy,
    /// The file's bytes.
    pub(super) bytes: Bytes,
}

/// Maps a file (object-store files are fetched to a local copy first).
pub(super) fn map_location(loc: &Location) -> Result<Mapped> {
    let copy = loc.fetch()?;
    let file = std::fs::File::open(copy.path()).with_context(|| format!("opening {loc}"))?;
    let len = file.metadata()?.len();
    let bytes = if len == 0 {
        Bytes::Owned(Vec::new())
    } else {
        // SAFETY: input files are not modified while tic-reshard runs (documented).
        Bytes::Mapped(
            unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("mapping {loc}"))?,
        )
    };
    Ok(Mapped { _copy: copy, bytes })
}

/// The subset: sorted uids, memory-mapped (or sorted in memory when the file was unsorted, or
/// read from standard input).
pub(super) struct Subset {
    bytes: Bytes,
    _mapped: Option<Mapped>,
    /// What logs and errors call it.
    pub(super) name: String,
    /// SHA-256 of the bytes as given (part of the plan fingerprint).
    pub(super) sha256: String,
    /// The bytes as given, when they came from standard input (`-s -`).
    pub(super) stdin: Option<Vec<u8>>,
}

impl Subset {
    /// Reads the subset from standard input: an `.npy` when it starts with the numpy magic,
    /// otherwise raw 16-byte records (the name rule of [`UidView::new`] cannot apply).
    pub(super) fn from_stdin() -> Result<Self> {
        let raw = read_stdin("-s -")?;
        let name = "standard input (-s -)".to_string();
        let sha256 = hex::encode(Sha256::digest(&raw));
        let view = UidView::new(&raw, &name)?;
        let bytes = match view.first_unsorted() {
            Some(i) => {
                warn!(
                    "{name}: subset is not sorted (row {i} < row {}); sorting {} rows in memory",
                    i - 1,
                    view.len()
                );
                let mut v = view.to_vec();
                v.sort_unstable();
                crate::npy::write_uids(&v)
            }
            None => raw.clone(),
        };
        Ok(Subset {
            bytes: Bytes::Owned(bytes),
            _mapped: None,
            name,
            sha256,
            stdin: Some(raw),
        })
    }

    /// Maps the subset file at `loc` (sorted in memory when it is not sorted).
    pub(super) fn load(loc: &Location) -> Result<Self> {
        let name = loc.to_string();
        let mapped = map_location(loc)?;
        let sha256 = hex::encode(Sha256::digest(&*mapped.bytes));
        let view = UidView::new(&mapped.bytes, &name)?;
        if let Some(i) = view.first_unsorted() {
            warn!(
                "{name}: subset is not sorted (row {i} < row {}); sorting {} rows in memory \
                 (resharder.py would silently miss matches)",
                i - 1,
                view.len()
            );
            let mut v = view.to_vec();
            v.sort_unstable();
            return Ok(Subset {
                bytes: Bytes::Owned(crate::npy::write_uids(&v)),
                _mapped: None,
                name,
                sha256,
                stdin: None,
            });
        }
        Ok(Subset {
            bytes: Bytes::Owned(Vec::new()),
            _mapped: Some(mapped),
            name,
            sha256,
            stdin: None,
        })
    }

    /// The sorted uids.
    pub(super) fn view(&self) -> UidView<'_> {
        let bytes: &[u8] = match &self._mapped {
            Some(m) => &m.bytes,
            None => &self.bytes,
        };
        UidView::new(bytes, &self.name).expect("validated at load")
    }
}

/// The subset of `-s` (a file, or standard input for `-s -`) and its location when it is a file.
pub(super) fn read_subset(subset_file: &str) -> Result<(Subset, Option<Location>)> {
    if subset_file == STDIO {
        return Ok((Subset::from_stdin()?, None));
    }
    let loc = Location::parse(subset_file)?;
    let s = Subset::load(&loc).with_context(|| format!("loading subset file {loc}"))?;
    Ok((s, Some(loc)))
}

/// The class map of `-c` (a file, or standard input for `-c -`) and the SHA-256 of its bytes.
pub(super) fn read_classes(cls_file: &str) -> Result<(HashMap<Uid, i64>, String)> {
    let (bytes, name) = if cls_file == STDIO {
        (read_stdin("-c -")?, "standard input (-c -)".to_string())
    } else {
        let loc = Location::parse(cls_file)?;
        (loc.read()?, loc.to_string())
    };
    let map = pickle::read_uid_classes(&bytes, &name)?;
    info!("class file {name} maps {} uids", map.len());
    Ok((map, hex::encode(Sha256::digest(&bytes))))
}

/// Lists the input shards: `(index, name)` in index order.
pub(super) fn list_input_shards(
    input: &Location,
    args: &ReshardArgs,
    fmt: &ShardFormat,
) -> Result<Vec<(u64, String)>> {
    if let Some(n) = args.num_shards {
        return Ok((args.first_shard..args.first_shard + n)
            .map(|i| (i, fmt.format(i)))
            .collect());
    }
    let mut found: Vec<(u64, String)> = input
        .list()
        .with_context(|| format!("listing input folder {input}"))?
        .into_iter()
        .filter(|e| !e.is_dir)
        .filter_map(|e| fmt.index_of(&e.name).map(|i| (i, e.name)))
        .filter(|(i, _)| *i >= args.first_shard)
        .collect();
    found.sort();
    if found.is_empty() {
        bail!(
            "no input shards named like {:?} (from index {}) in {input}",
            fmt.as_str(),
            args.first_shard
        );
    }
    Ok(found)
}

/// Reads the input size table, if present: shard name -> sample count.
pub(super) fn load_shard_table(
    input: &Location,
    table: &str,
) -> Result<Option<HashMap<String, u64>>> {
    let loc = input.join(table);
    if !loc.exists()? {
        return Ok(None);
    }
    let text = loc.read()?;
    let map: HashMap<String, u64> = crate::counts::parse_sizes(&text)
        .with_context(|| format!("{loc}: expected a JSON object of shard name -> sample count"))?
        .into_iter()
        .collect();
    info!("loaded shard table {loc} with {} shards", map.len());
    Ok(Some(map))
}
