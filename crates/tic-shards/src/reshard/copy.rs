//! Pass 2: output shards are written in parallel, each from the input shards its matches come
//! from (re-scanned, member bytes copied straight from the mapped input into a temporary file
//! that is renamed when complete), its stats file after its tar.

use super::input::{map_location, Mapped};
use super::meta::{crc_hex, ShardRecord};
use super::resume::{check_kept_shard, KeptRecords};
use super::scan::{sample_uid, InputShard};
use super::{Job, ReshardSummary};
use crate::storage::Location;
use crate::uid::Uid;
use crate::wds::{member_bytes, scan_shard, Scan, TarSampleWriter};
use crate::{atomic, cli};
use anyhow::{Context, Result};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tracing::{info, warn};

/// A writer that counts bytes and computes their CRC-32 on the way through.
struct CrcWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A reference to one output sample: (input shard, match, copy).
#[derive(Clone, Copy)]
struct Item {
    /// Index of the input shard.
    shard: usize,
    /// Index of the match in it.
    m: usize,
    /// Which copy (added to the match's `base` for the key).
    copy: u32,
}

/// Items of output shard `o`, in input order.
fn items_for(shards: &[InputShard], starts: &[u64], o: u64, size: u64) -> Vec<Item> {
    let (lo, hi) = (o * size, (o + 1) * size);
    let mut items = Vec::with_capacity(size as usize);
    let first = starts.partition_point(|&s| s <= lo).saturating_sub(1);
    for (si, shard) in shards.iter().enumerate().skip(first) {
        let mut pos = starts[si];
        if pos >= hi {
            break;
        }
        if pos + shard.outputs <= lo {
            continue;
        }
        for (mi, m) in shard.matches.iter().enumerate() {
            for c in 0..m.k {
                if pos >= lo && pos < hi {
                    items.push(Item {
                        shard: si,
                        m: mi,
                        copy: c,
                    });
                }
                pos += 1;
            }
        }
    }
    items
}

/// webdataset-style buffered shuffle of `items`, seeded.
fn buffered_shuffle(items: Vec<Item>, bufsize: usize, seed: u64) -> Vec<Item> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut buf: Vec<Item> = Vec::with_capacity(bufsize);
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        if buf.len() < bufsize {
            buf.push(it);
            continue;
        }
        let k = rng.random_range(0..buf.len());
        out.push(std::mem::replace(&mut buf[k], it));
    }
    buf.shuffle(&mut rng);
    out.extend(buf);
    out
}

/// Writes output shard `o`; returns its record (samples, bytes, CRC-32).
fn write_output_shard(
    input: &Location,
    out: &Location,
    shards: &[InputShard],
    items: &[Item],
    classes: Option<&HashMap<Uid, i64>>,
    tar_name: &str,
) -> Result<ShardRecord> {
    let mut opened: HashMap<usize, (Mapped, Scan)> = HashMap::new();
    let target = out.join(tar_name);
    let (mut tmp_remote, mut file) = (None, None);
    let writer: Box<dyn Write> = match target.as_local() {
        Some(p) => {
            file = Some(atomic::AtomicFile::create(p)?);
            Box::new(file.as_mut().unwrap())
        }
        None => {
            tmp_remote = Some(tempfile::NamedTempFile::new()?);
            Box::new(std::io::BufWriter::with_capacity(
                1 << 20,
                tmp_remote.as_ref().unwrap().reopen()?,
            ))
        }
    };
    let mut tw = TarSampleWriter::new(CrcWriter {
        inner: writer,
        crc: crc32fast::Hasher::new(),
        len: 0,
    });
    for it in items {
        let (mapped, scan) = match opened.entry(it.shard) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => {
                let loc = input.join(&shards[it.shard].name);
                let mapped = map_location(&loc)?;
                let scan = scan_shard(&mapped.bytes, &loc.to_string());
                v.insert((mapped, scan))
            }
        };
        let data = &mapped.bytes[..];
        let m = shards[it.shard].matches[it.m];
        let sample = scan.samples.get(m.sample as usize).with_context(|| {
            format!(
                "input shard {} changed since it was scanned",
                shards[it.shard].name
            )
        })?;
        let (uid, uid_str) = sample_uid(data, &shards[it.shard].name, sample)
            .map_err(|e| anyhow::anyhow!("input shard changed since it was scanned: {e}"))?;
        let key = format!("{uid_str}-{}", m.base + it.copy);
        let cls_text;
        let json_mtime = sample.member("json").map_or(0, |j| j.mtime);
        let mut members: Vec<(&str, &[u8], u64)> = sample
            .members
            .iter()
            .filter(|mm| !(classes.is_some() && mm.ext == "cls"))
            .map(|mm| (mm.ext.as_str(), member_bytes(data, mm), mm.mtime))
            .collect();
        if let Some(c) = classes {
            cls_text = c[&uid].to_string();
            members.push(("cls", cls_text.as_bytes(), json_mtime));
        }
        tw.append_sample(&key, &mut members)
            .with_context(|| format!("writing {target}"))?;
    }
    let mut w = tw.finish().with_context(|| format!("writing {target}"))?;
    w.flush()?;
    let record = ShardRecord {
        name: tar_name.to_string(),
        samples: items.len() as u64,
        bytes: w.len,
        crc32: crc_hex(w.crc.clone().finalize()),
    };
    drop(w);
    if let Some(f) = file {
        f.commit().with_context(|| format!("writing {target}"))?;
    }
    if let Some(t) = tmp_remote {
        target.put_file(t.path())?;
    }
    Ok(record)
}

/// What the workers of pass 2 share: the layout of the matches and what they found.
struct Pass2<'a> {
    shards: &'a [InputShard],
    /// Output position of each input shard's first match.
    starts: Vec<u64>,
    /// Each output shard's record, once written or kept.
    records: Mutex<KeptRecords>,
    /// Output shards kept (finished before this run).
    kept: AtomicU64,
    /// Shards left by an interrupted run that failed their check.
    rechecked: Mutex<Vec<String>>,
}

impl Job<'_> {
    /// Pass 2: writes every output shard not kept from an earlier run (parallel over output
    /// shards); returns every shard's record, in order.
    pub(super) fn write_outputs(
        &self,
        shards: &[InputShard],
        summary: &mut ReshardSummary,
        kept: KeptRecords,
    ) -> Result<Vec<ShardRecord>> {
        let mut starts = Vec::with_capacity(shards.len());
        let mut acc = 0u64;
        for s in shards {
            starts.push(acc);
            acc += s.outputs;
        }
        let pb = cli::progress(summary.output_count, "samples", self.args.quiet > 0);
        pb.set_message("write");
        let pass = Pass2 {
            shards,
            starts,
            records: Mutex::new(kept),
            kept: AtomicU64::new(0),
            rechecked: Mutex::new(Vec::new()),
        };
        self.pool.install(|| {
            (0..summary.output_shard_count)
                .into_par_iter()
                .try_for_each(|o| -> Result<()> {
                    let n = self.output_shard(&pass, o)?;
                    pb.inc(n);
                    Ok(())
                })
        })?;
        pb.finish_and_clear();
        let kept = pass.kept.into_inner();
        if kept > 0 {
            info!("{kept} output shards were already finished and were kept");
        }
        summary
            .redone_shards
            .extend(pass.rechecked.into_inner().unwrap());
        summary.redone_shards.sort();
        Ok(pass
            .records
            .into_inner()
            .unwrap()
            .into_iter()
            .map(|r| r.expect("every output shard is written or kept"))
            .collect())
    }

    /// Output shard `o`: kept when finished before (checked against meta.json, or left by an
    /// interrupted run and reading back whole), else written. Returns its sample count.
    fn output_shard(&self, pass: &Pass2, o: u64) -> Result<u64> {
        let output = &self.output;
        let tar_name = self.out_fmt.format(o);
        let stats = output.join(&self.out_stats_fmt.format(o));
        let items = items_for(pass.shards, &pass.starts, o, self.args.shard_size as u64);
        let n = items.len() as u64;
        let known = pass.records.lock().unwrap()[o as usize].is_some();
        let mut record = None;
        if known {
            // Checked against meta.json above.
            pass.kept.fetch_add(1, Ordering::Relaxed);
        } else if stats.exists()? && output.join(&tar_name).exists()? {
            // Left by an interrupted run: kept only if it reads back whole.
            match check_kept_shard(output, &tar_name, &stats, n) {
                Ok(r) => {
                    pass.kept.fetch_add(1, Ordering::Relaxed);
                    record = Some(r);
                }
                Err(why) => {
                    warn!("output shard {tar_name} cannot be kept: {why}; writing it again");
                    pass.rechecked.lock().unwrap().push(tar_name.clone());
                    stats.remove()?;
                }
            }
        }
        if !known && record.is_none() {
            let args = self.args;
            let items = if args.shuffle_bufsize > 0 {
                buffered_shuffle(
                    items,
                    args.shuffle_bufsize,
                    args.shuffle_seed ^ o.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                )
            } else {
                items
            };
            let r = write_output_shard(
                &self.input,
                output,
                pass.shards,
                &items,
                self.classes.as_ref(),
                &tar_name,
            )?;
            stats.write(crate::counts::stats_json(n).as_bytes())?;
            record = Some(r);
        }
        if let Some(r) = record {
            pass.records.lock().unwrap()[o as usize] = Some(r);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_permutation() {
        let items: Vec<Item> = (0..100)
            .map(|i| Item {
                shard: 0,
                m: i,
                copy: 0,
            })
            .collect();
        let out = buffered_shuffle(items, 10, 3);
        let mut ms: Vec<usize> = out.iter().map(|i| i.m).collect();
        assert_ne!(ms, (0..100).collect::<Vec<_>>());
        ms.sort();
        assert_eq!(ms, (0..100).collect::<Vec<_>>());
    }
}
