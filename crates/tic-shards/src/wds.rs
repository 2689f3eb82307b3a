//! WebDataset tar shards: grouping tar members into samples, and writing samples.
//!
//! Grouping follows webdataset 0.2.31: only regular files count; the key is the path up to the
//! first `.` of the file name and the extension the rest (lower-cased); consecutive members with
//! the same key form one sample; `__*__` metadata members are skipped; a repeated extension inside
//! one sample is an error.

use std::io::{self, Cursor, Write};

/// One member of a shard: where its bytes are, without reading them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRef {
    /// Extension (after the key's first dot), lower-cased, e.g. `jpg`, `json`, `txt`.
    pub ext: String,
    /// Offset of the member's tar header in the shard.
    pub header_offset: u64,
    /// Offset of the member's data.
    pub data_offset: u64,
    /// Size of the member's data.
    pub size: u64,
    /// Modification time from the header.
    pub mtime: u64,
}

/// One sample: a key and its members, in tar order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleRef {
    /// The sample key (`__key__`).
    pub key: String,
    /// Its members.
    pub members: Vec<MemberRef>,
}

impl SampleRef {
    /// The member with extension `ext`.
    pub fn member(&self, ext: &str) -> Option<&MemberRef> {
        self.members.iter().find(|m| m.ext == ext)
    }
    /// Offset of the sample's first header (for error messages).
    pub fn offset(&self) -> u64 {
        self.members.first().map_or(0, |m| m.header_offset)
    }
}

/// A problem found while reading a shard.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ShardError {
    /// The tar stream is truncated or corrupt from this offset on; later samples are lost.
    #[error("{shard}: corrupt or truncated tar at byte {offset}: {msg}")]
    Corrupt {
        /// Shard name.
        shard: String,
        /// Byte offset where reading failed.
        offset: u64,
        /// The reader's message.
        msg: String,
    },
    /// A sample repeats a member extension (webdataset refuses such shards).
    #[error("{shard}: member {member} at byte {offset}: duplicate file name in sample {key:?}")]
    DuplicateMember {
        /// Shard name.
        shard: String,
        /// Member name.
        member: String,
        /// Byte offset of its header.
        offset: u64,
        /// Sample key.
        key: String,
    },
}

/// The result of scanning a shard: the complete samples, and the problems met.
#[derive(Debug, Default)]
pub struct Scan {
    /// Samples in tar order.
    pub samples: Vec<SampleRef>,
    /// Problems: a bad sample is dropped; a corrupt stream ends the scan.
    pub errors: Vec<ShardError>,
}

/// Splits a member path into (key, extension) as webdataset's `base_plus_ext`.
pub fn split_key(path: &str) -> Option<(&str, &str)> {
    let slash = path.rfind('/').map_or(0, |i| i + 1);
    let dot = path[slash..].find('.')? + slash;
    if dot == slash {
        return None;
    }
    let ext = &path[dot + 1..];
    Some((&path[..dot], ext))
}

fn is_meta(path: &str) -> bool {
    let name = &path[path.rfind('/').map_or(0, |i| i + 1)..];
    name.starts_with("__") && name.ends_with("__") || path.starts_with("__") && path.contains("__/")
}

/// Groups consecutive members with the same key into samples, as [`scan_shard`] reads them.
#[derive(Default)]
struct SampleGrouper {
    /// The sample being read.
    current: Option<SampleRef>,
    /// The current sample repeats a member extension: it is dropped.
    bad_current: bool,
}

impl SampleGrouper {
    /// The key of the sample being read.
    fn current_key(&self) -> Option<&str> {
        self.current.as_ref().map(|c| c.key.as_str())
    }

    /// Adds `member` to the sample of `key`, finishing the current sample (into `samples`)
    /// when the key changes. False when the sample already has a member with that extension:
    /// the member is left out and the whole sample dropped.
    fn add(&mut self, samples: &mut Vec<SampleRef>, key: &str, member: MemberRef) -> bool {
        if self.current_key() != Some(key) {
            if let Some(c) = self.current.take() {
                if !self.bad_current {
                    samples.push(c);
                }
            }
            self.bad_current = false;
            self.current = Some(SampleRef {
                key: key.to_string(),
                members: Vec::with_capacity(4),
            });
        }
        let cur = self.current.as_mut().unwrap();
        if cur.members.iter().any(|m| m.ext == member.ext) {
            self.bad_current = true;
            return false;
        }
        cur.members.push(member);
        true
    }

    /// Finishes the last sample, unless it repeated an extension or `cut` (the stream broke
    /// where it may be incomplete).
    fn finish(self, samples: &mut Vec<SampleRef>, cut: bool) {
        if let Some(c) = self.current {
            // A sample that a corrupt or truncated stream may have cut is dropped.
            if !self.bad_current && !cut {
                samples.push(c);
            }
        }
    }
}

/// Scans the tar bytes of one shard into samples, reading only headers.
///
/// `shard` names the shard in errors. A trailing sample cut by truncation is dropped.
pub fn scan_shard(data: &[u8], shard: &str) -> Scan {
    let mut scan = Scan::default();
    let corrupt = |offset: u64, msg: String| ShardError::Corrupt {
        shard: shard.to_string(),
        offset,
        msg,
    };
    let mut archive = tar::Archive::new(Cursor::new(data));
    let entries = match archive.entries_with_seek() {
        Ok(e) => e,
        Err(e) => {
            scan.errors.push(corrupt(0, e.to_string()));
            return scan;
        }
    };
    let mut grouper = SampleGrouper::default();
    let mut last_end = 0u64;
    // Set when the stream breaks where the current sample may be incomplete.
    let mut cut_member = false;
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                scan.errors.push(corrupt(last_end, e.to_string()));
                // The break may have cut the current sample's next member: drop it.
                cut_member = true;
                break;
            }
        };
        let header_offset = entry.raw_header_position();
        let data_offset = entry.raw_file_position();
        let size = entry.size();
        let path_bytes = entry.path_bytes();
        let path = String::from_utf8_lossy(&path_bytes).into_owned();
        if data_offset + size > data.len() as u64 {
            scan.errors.push(corrupt(
                header_offset,
                format!(
                    "member {path} of {size} bytes runs past the end of the file ({} bytes)",
                    data.len()
                ),
            ));
            // The cut member belongs to the current sample only if it shares its key.
            cut_member = split_key(&path).is_some_and(|(k, _)| grouper.current_key() == Some(k));
            break;
        }
        last_end = data_offset + size.div_ceil(512) * 512;
        if !entry.header().entry_type().is_file() || is_meta(&path) {
            continue;
        }
        let Some((key, ext)) = split_key(&path) else {
            continue;
        };
        let member = MemberRef {
            ext: ext.to_lowercase(),
            header_offset,
            data_offset,
            size,
            mtime: entry.header().mtime().unwrap_or(0),
        };
        if !grouper.add(&mut scan.samples, key, member) {
            scan.errors.push(ShardError::DuplicateMember {
                shard: shard.to_string(),
                member: path.clone(),
                offset: header_offset,
                key: key.to_string(),
            });
        }
    }
    grouper.finish(&mut scan.samples, cut_member);
    scan
}

/// Bytes of a member inside the shard data.
pub fn member_bytes<'a>(data: &'a [u8], m: &MemberRef) -> &'a [u8] {
    &data[m.data_offset as usize..(m.data_offset + m.size) as usize]
}

/// Writes samples to a tar stream with deterministic headers (mode 0444, owner 0/0
/// `bigdata`, the given mtime), like webdataset's `TarWriter` but reproducible.
pub struct TarSampleWriter<W: Write> {
    builder: tar::Builder<W>,
}

impl<W: Write> TarSampleWriter<W> {
    /// Wraps a writer.
    pub fn new(w: W) -> Self {
        TarSampleWriter {
            builder: tar::Builder::new(w),
        }
    }

    /// Appends one member `{key}.{ext}`.
    pub fn append(&mut self, key: &str, ext: &str, data: &[u8], mtime: u64) -> io::Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o444);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_username("bigdata")?;
        h.set_groupname("bigdata")?;
        self.builder
            .append_data(&mut h, format!("{key}.{ext}"), data)
    }

    /// Appends a sample's members sorted by extension (webdataset's writer order).
    pub fn append_sample(
        &mut self,
        key: &str,
        members: &mut [(&str, &[u8], u64)],
    ) -> io::Result<()> {
        members.sort_by(|a, b| a.0.cmp(b.0));
        for (ext, data, mtime) in members.iter() {
            self.append(key, ext, data, *mtime)?;
        }
        Ok(())
    }

    /// Writes the end-of-archive blocks and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        self.builder.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Members<'a> = &'a [(&'a str, &'a [u8])];

    fn shard(samples: &[(&str, Members)]) -> Vec<u8> {
        let mut w = TarSampleWriter::new(Vec::new());
        for (key, members) in samples {
            for (ext, data) in members.iter() {
                w.append(key, ext, data, 7).unwrap();
            }
        }
        w.finish().unwrap()
    }

    #[test]
    fn keys() {
        assert_eq!(split_key("a/b/000001.jpg"), Some(("a/b/000001", "jpg")));
        assert_eq!(split_key("x.seg.png"), Some(("x", "seg.png")));
        assert_eq!(split_key("noext"), None);
        assert_eq!(split_key("dir.d/noext"), None);
    }

    #[test]
    fn groups_and_reads() {
        let data = shard(&[
            ("000", &[("jpg", b"img0"), ("json", b"{}"), ("txt", b"t0")]),
            ("001", &[("jpg", b"img1"), ("TXT", b"t1")]),
        ]);
        let s = scan_shard(&data, "s.tar");
        assert!(s.errors.is_empty());
        assert_eq!(s.samples.len(), 2);
        assert_eq!(s.samples[0].key, "000");
        assert_eq!(
            member_bytes(&data, s.samples[0].member("jpg").unwrap()),
            b"img0"
        );
        assert_eq!(
            member_bytes(&data, s.samples[1].member("txt").unwrap()),
            b"t1"
        );
        assert_eq!(s.samples[1].members[0].mtime, 7);
    }

    #[test]
    fn duplicate_member_drops_sample() {
        let data = shard(&[
            ("a", &[("jpg", b"1"), ("jpg", b"2")]),
            ("b", &[("jpg", b"3")]),
        ]);
        let s = scan_shard(&data, "d.tar");
        assert_eq!(s.samples.len(), 1);
        assert_eq!(s.samples[0].key, "b");
        assert!(matches!(
            &s.errors[0],
            ShardError::DuplicateMember { offset: 1024, .. }
        ));
    }

    #[test]
    fn truncation_keeps_complete_samples() {
        let data = shard(&[
            ("a", &[("jpg", &[1u8; 600]), ("json", b"{}")]),
            ("b", &[("jpg", &[2u8; 600]), ("json", b"{}")]),
        ]);
        // Layout: a.jpg hdr 0, data 512..1112; a.json hdr 1536; b.jpg hdr 2560, data 3072..3672;
        // b.json hdr 4096. A cut inside a member's data drops that member's sample; a cut
        // inside a header drops the sample in progress (it may be missing members).
        for (cut, keep) in [(3200usize, 1usize), (2660, 0), (4096 + 100, 1), (1000, 0)] {
            let s = scan_shard(&data[..cut], "t.tar");
            assert_eq!(s.samples.len(), keep, "cut at {cut}");
            assert!(s.samples.iter().all(|x| x.key == "a"));
            assert_eq!(s.errors.len(), 1, "cut at {cut}");
            let msg = s.errors[0].to_string();
            assert!(msg.contains("t.tar") && msg.contains("byte"), "{msg}");
        }
    }
}
