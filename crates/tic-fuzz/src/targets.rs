//! The fuzz targets: one per family of readers of untrusted input, each with its seeds (files
//! our writers produce and the committed fixtures real Python wrote), a dictionary of format
//! tokens for the mutator, and what must hold for every input (no panic; results consistent).
//! The memory cap is not checked here but by the process that runs a target ([`crate::runner`]).

use anyhow::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tic_shards::uid::Uid;

/// A file path a target writes its input to (for readers that open files), in a folder of its own.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// A new scratch folder (removed when dropped).
    pub fn new() -> Result<Self> {
        Ok(Self {
            dir: tempfile::Builder::new().prefix("tic-fuzz").tempdir()?,
        })
    }

    /// Writes `data` to `name` in the scratch folder and returns its path.
    pub fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, data).expect("writing the scratch file");
        path
    }
}

/// One fuzz target.
pub struct Target {
    /// Its name (also the folder of its regression inputs, `fuzz/regressions/<name>/`).
    pub name: &'static str,
    /// What it fuzzes, for `--help` and the docs.
    pub about: &'static str,
    /// Longest input generated.
    pub max_len: usize,
    /// Tokens of the format that the mutator inserts.
    pub dict: &'static [&'static [u8]],
    /// Seed inputs, given the repository root (for committed fixtures).
    pub seeds: fn(&Path) -> Vec<Vec<u8>>,
    /// Repairs a mutated input so that it gets past a checksum (tar headers), sometimes.
    pub fixup: Option<fn(&mut [u8])>,
    /// Runs the readers on one input; panics when a property fails.
    pub run: fn(&Scratch, &[u8]),
}

/// Every target, in the order `make fuzz-smoke` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "shard_scan",
        about: "WebDataset tar scanning and sample grouping (tic_shards::wds::scan_shard)",
        max_len: 1 << 16,
        dict: &[
            b"ustar\0",
            b"ustar  \0",
            b".jpg",
            b".txt",
            b".json",
            b"././@LongLink",
            b"/",
            b"..",
        ],
        seeds: |_| vec![tar_seed()],
        fixup: Some(fix_tar_checksums),
        run: |_, data| {
            let scan = tic_shards::wds::scan_shard(data, "fuzz.tar");
            for s in &scan.samples {
                for m in &s.members {
                    assert!(m.data_offset + m.size <= data.len() as u64);
                    let _ = tic_shards::wds::member_bytes(data, m);
                }
            }
        },
    },
    Target {
        name: "npy_uids",
        about: "uid arrays: `u8,u8` .npy and raw 16-byte records (tic_shards::npy)",
        max_len: 1 << 14,
        dict: NPY_DICT,
        seeds: |root| {
            let mut s = files_in(&root.join("crates/tic-shards/tests/fixtures/npy"), "npy");
            s.push(tic_shards::npy::write_uids(&[
                Uid(3),
                Uid(1 << 100),
                Uid(u128::MAX),
            ]));
            s
        },
        fixup: None,
        run: |_, data| {
            use tic_shards::npy::{read_uids, write_uids, UidView};
            if let Ok(uids) = read_uids(data, "fuzz.npy") {
                let again = read_uids(&write_uids(&uids), "w").expect("our own output reads back");
                assert_eq!(uids, again);
                let v = UidView::new(data, "fuzz.npy").expect("read_uids accepted it");
                assert_eq!(v.len(), uids.len());
                if let Some(first) = uids.first() {
                    assert!(v.equal_range(*first).len() <= uids.len());
                }
            }
        },
    },
    Target {
        name: "npy_int_vector",
        about: "per-sample metadata vectors (tic_shards::npy::read_int_vector)",
        max_len: 1 << 12,
        dict: NPY_DICT,
        seeds: |_| npy_vector_seeds(),
        fixup: None,
        run: |_, data| {
            let _ = tic_shards::npy::read_int_vector(data, "fuzz.npy");
        },
    },
    Target {
        name: "pickles",
        about:
            "the TiC pickles: year → uids, year → synset → uids, uid → class (tic_shards::pickle)",
        max_len: 1 << 14,
        dict: PICKLE_DICT,
        seeds: |root| {
            let mut s = files_in(&root.join("crates/tic-shards/tests/fixtures/pickle"), "pkl");
            let m: BTreeMap<String, Vec<Uid>> = [("2014".to_string(), vec![Uid(1), Uid(2)])].into();
            s.push(tic_shards::pickle::write_year_uids(&m));
            s
        },
        fixup: None,
        run: |_, data| {
            use tic_shards::pickle::*;
            if let Ok(m) = read_year_uids(data, "fuzz.pkl") {
                let again = read_year_uids(&write_year_uids(&m), "w").expect("our output reads");
                assert_eq!(m.len(), again.len());
            }
            let _ = read_year_synset_uids(data, "fuzz.pkl");
            let _ = read_uid_classes(data, "fuzz.pkl");
        },
    },
    Target {
        name: "torch_pickle",
        about: "the pickle of a .pt checkpoint under Candle's decoder, behind tic-rs' budget check",
        max_len: 1 << 14,
        dict: PICKLE_DICT,
        seeds: |root| zip_members(&root.join(PT_FIXTURE), ".pkl"),
        fixup: None,
        run: |_, data| {
            use tic_shards::pickle::budget::{check, Sharing};
            if check(data, Sharing::Eager).is_ok() {
                let mut stack = candle_core::pickle::Stack::empty();
                if stack.read_loop(&mut std::io::Cursor::new(data)).is_ok() {
                    let _ = stack.finalize();
                }
            }
        },
    },
    Target {
        name: "count_json",
        about:
            "sizes.json, {stem}_stats.json and meta.json (tic_shards::counts, reshard::ReshardMeta)",
        max_len: 1 << 12,
        dict: JSON_DICT,
        seeds: |_| json_seeds(),
        fixup: None,
        run: |_, data| {
            let _ = tic_shards::counts::parse_sizes(data);
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
                let _ = tic_shards::counts::stats_successes(&v);
            }
            if let Ok(m) = tic_shards::reshard::ReshardMeta::from_slice(data) {
                let _ = (
                    m.output_count(),
                    m.output_shard_count(),
                    m.output_shard_format(),
                );
                let _ = (m.lost_inputs(), m.plan_fingerprint(), m.shard_records());
            }
        },
    },
    Target {
        name: "tasklist",
        about: "tasklist.yml (tic_eval::tasklist over tic_splits::taskspec and taskkey)",
        max_len: 1 << 12,
        dict: YAML_DICT,
        seeds: |root| {
            files_in(
                &root.join("crates/tic-splits/tests/fixtures/tasklist"),
                "yml",
            )
        },
        fixup: None,
        run: |_, data| {
            let text = String::from_utf8_lossy(data);
            if let Ok(list) = tic_eval::tasklist::TaskList::from_yaml_str(&text, "fuzz.yml") {
                for t in list.tasks() {
                    t.parsed_key().expect("a listed task's key parses");
                }
            }
        },
    },
    Target {
        name: "checkpoint",
        about: "safetensors and torch zip checkpoints (tic_model::checkpoint::load_state_dict)",
        max_len: 1 << 18,
        dict: &[
            b"PK\x03\x04",
            b"PK\x01\x02",
            b"PK\x05\x06",
            b"\"dtype\"",
            b"\"shape\"",
            b"\"data_offsets\"",
            b"F32",
        ],
        seeds: |root| {
            let mut s = vec![safetensors_seed()];
            s.extend(std::fs::read(root.join(PT_FIXTURE)));
            s
        },
        fixup: None,
        run: |scratch, data| {
            let path = scratch.file("fuzz.ckpt", data);
            let _ = tic_model::checkpoint::load_state_dict(&path);
        },
    },
    Target {
        name: "hf_cache",
        about: "the Arrow IPC streams of DataComp's hf_cache (tic_eval::hf_cache)",
        max_len: 1 << 15,
        dict: &[
            b"\xff\xff\xff\xff",
            b"ARROW1",
            b"image",
            b"caption",
            b"bytes",
            b"path",
            b"cue",
        ],
        seeds: |root| {
            let dir = root.join("crates/tic-eval/tests/fixtures/hf/hf_cache_new/hf_cache");
            let mut files = Vec::new();
            tic_arrow_files(&dir, &mut files);
            files
        },
        fixup: None,
        run: |scratch, data| {
            use tic_eval::hf_cache::*;
            let file = scratch.file("fuzz.arrow", data);
            let set = CachedSet {
                dir: file.parent().expect("in the scratch folder").to_path_buf(),
                files: vec![file],
                num_examples: None,
            };
            let _ = for_each_retrieval_row(&set, &mut |_| true);
            let _ = for_each_winogavil_row(&set, &mut |_| true);
        },
    },
    Target {
        name: "exif",
        about:
            "EXIF blocks of downloaded JPEG / WebP / TIFF bytes, read as img2dataset's exifread \
                reads them (tic_download::exif)",
        max_len: 1 << 14,
        dict: &[
            b"\xff\xe1",
            b"Exif\0\0",
            b"II*\0\x08\0\0\0",
            b"MM\0*\0\0\0\x08",
            b"\x87\x69",
            b"\x69\x87",
            b"\x88\x25",
            b"\xa0\x05",
            b"\xff\xff",
            b"\xe8\x03\0\0",
            b"VP8X",
            b"EXIF",
        ],
        seeds: |root| {
            let dir = root.join("crates/tic-download/tests/fixtures/exif/cases");
            ["jpg", "webp", "tif"]
                .iter()
                .flat_map(|ext| files_in(&dir, ext))
                .collect()
        },
        fixup: None,
        run: |_, data| match tic_download::exif::read_tags(data, "fuzz.jpg") {
            Ok(tags) => {
                let text = tic_download::exif::img2dataset_exif(data).expect("read_tags was Ok");
                let v: serde_json::Value = serde_json::from_str(&text).expect("the field is JSON");
                assert_eq!(v.as_object().map(|m| m.len()), Some(tags.len()));
            }
            Err(e) => assert!(e.to_string().starts_with("fuzz.jpg: EXIF at byte "), "{e}"),
        },
    },
    Target {
        name: "download_metadata",
        about: "DataComp metadata parquets as tic-download reads them (tic_download::metadata)",
        max_len: 1 << 15,
        dict: &[
            b"PAR1",
            b"uid",
            b"url",
            b"text",
            b"face_bboxes",
            b"large_string",
            b"\x15\x04",
            b"\x15\x00",
            b"\x19\x1c",
            b"\xff\xff\xff\x7f",
        ],
        seeds: |root| {
            files_in(
                &root.join("crates/tic-download/tests/fixtures/metadata"),
                "parquet",
            )
        },
        fixup: None,
        run: |scratch, data| {
            let path = scratch.file("fuzz.parquet", data);
            for bbox in [true, false] {
                check_metadata(&path, bbox);
            }
        },
    },
];

/// Reads `path` as tic-download does and every cell of what it returns; an error must name the
/// file.
fn check_metadata(path: &Path, bbox: bool) {
    use tic_download::metadata::{boxes_at, filter_subset, read_rows, string_at};
    let names = |e: &anyhow::Error| format!("{e:#}").contains("fuzz.parquet");
    match read_rows(path, bbox) {
        Ok(batch) => {
            for row in 0..batch.num_rows() {
                for (i, col) in batch.columns().iter().enumerate() {
                    if bbox && i == 1 {
                        let _ = boxes_at(col.as_ref(), row);
                    } else {
                        let _ = string_at(col.as_ref(), row);
                    }
                }
            }
            if let Err(e) = filter_subset(&batch, &[Uid(1)], path) {
                assert!(names(&e), "{e:#}");
            }
        }
        Err(e) => assert!(names(&e), "{e:#}"),
    }
}

/// The committed torch checkpoint the checkpoint seeds come from.
const PT_FIXTURE: &str = "crates/tic-model/tests/fixtures/tiny/micro/epoch_1.pt";

const NPY_DICT: &[&[u8]] = &[
    b"\x93NUMPY",
    b"'descr': ",
    b"'<i8'",
    b"'>u2'",
    b"'|b1'",
    b"'<f8'",
    b"[('f0', 'u1'), ('f1', 'u1')]",
    b"'fortran_order': True",
    b"'shape': (",
    b"(1000000000000,)",
    b"}",
];

const PICKLE_DICT: &[&[u8]] = &[
    b"(",
    b"0",
    b"2",
    b"]",
    b"}",
    b")",
    b"\x85",
    b"\x86",
    b"\x87",
    b"t",
    b"l",
    b"d",
    b"a",
    b"e",
    b"s",
    b"u",
    b"q\x00",
    b"h\x00",
    b"q\x01",
    b"h\x01",
    b"\x94",
    b"R",
    b"b",
    b"\x81",
    b"\x8f",
    b"\x90",
    b"\x91",
    b"cbuiltins\nset\n",
    b"\x8c\x04year",
    b"G\x7f\xf8\0\0\0\0\0\0",
    b"K\x07",
    b".",
];

const JSON_DICT: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"successes\"",
    b"\"shards\"",
    b"\"output_count\"",
    b"1e400",
    b"-1",
    b"18446744073709551616",
    b"null",
    b"\"\\ud800\"",
    b"[[[[[[[[[[[[[[[[",
];

const YAML_DICT: &[&[u8]] = &[
    b"&a ",
    b"*a",
    b"[*a,*a,*a,*a]",
    b"<<: *a",
    b"!!binary ",
    b"? ",
    b"- ",
    b": ",
    b"\n  ",
    b"main_metric: ",
    b"tic/datacomp/retrieval/yearly/2016",
    b"null",
    b"~",
    b".nan",
    b"{",
    b"[",
];

/// The regular files with extension `ext` directly in `dir`, sorted (none if it is missing).
pub fn files_in(dir: &Path, ext: &str) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn tic_arrow_files(dir: &Path, out: &mut Vec<Vec<u8>>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            tic_arrow_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "arrow") {
            out.extend(std::fs::read(&p));
        }
    }
}

/// The members of a stored (uncompressed) zip whose names end in `suffix`, read from its local
/// headers (torch writes stored zips).
fn zip_members(path: &Path, suffix: &str) -> Vec<Vec<u8>> {
    let Ok(zip) = std::fs::read(path) else {
        return Vec::new();
    };
    let u16_at = |i: usize| usize::from(u16::from_le_bytes([zip[i], zip[i + 1]]));
    let u32_at = |i: usize| u32::from_le_bytes(zip[i..i + 4].try_into().expect("4")) as usize;
    let (mut out, mut at) = (Vec::new(), 0);
    while at + 30 <= zip.len() && zip[at..at + 4] == *b"PK\x03\x04" {
        let (size, name_len, extra) = (u32_at(at + 18), u16_at(at + 26), u16_at(at + 28));
        let data = at + 30 + name_len + extra;
        let name = String::from_utf8_lossy(&zip[at + 30..at + 30 + name_len]);
        if name.ends_with(suffix) && data + size <= zip.len() {
            out.push(zip[data..data + size].to_vec());
        }
        at = data + size;
    }
    out
}

fn tar_seed() -> Vec<u8> {
    let mut w = tic_shards::wds::TarSampleWriter::new(Vec::new());
    for (i, key) in ["000000000", "000000001", "dir/000000002"]
        .iter()
        .enumerate()
    {
        let json = format!("{{\"uid\": \"{:032x}\", \"key\": \"{key}\"}}", i + 1);
        let mut members: Vec<(&str, &[u8], u64)> = vec![
            ("jpg", b"\xff\xd8\xff\xe0 not really a jpeg", 0),
            ("txt", b"a caption", 0),
            ("json", json.as_bytes(), 0),
        ];
        w.append_sample(key, &mut members).expect("in memory");
    }
    w.finish().expect("in memory")
}

/// Recomputes the checksum of every 512-byte block that looks like a ustar header, so that a
/// mutated header is read as one (without this almost every mutation dies at the checksum).
pub fn fix_tar_checksums(data: &mut [u8]) {
    for block in data.chunks_exact_mut(512) {
        if &block[257..262] != b"ustar" {
            continue;
        }
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        let text = format!("{sum:06o}\0 ");
        block[148..156].copy_from_slice(text.as_bytes());
    }
}

fn npy(descr: &str, shape: &str, body: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
    out
}

fn npy_vector_seeds() -> Vec<Vec<u8>> {
    let ints: Vec<u8> = [1i64, -2, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
    let floats: Vec<u8> = [1.0f64, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    vec![
        npy("<i8", "(3,)", &ints),
        npy(">u2", "(2,)", &[0, 1, 0, 2]),
        npy("|b1", "(3,)", &[1, 0, 1]),
        npy("<f8", "(2,)", &floats),
        npy("|u1", "()", &[7]),
    ]
}

fn json_seeds() -> Vec<Vec<u8>> {
    let sizes =
        tic_shards::counts::sizes_json([("00000000.tar".into(), 12), ("00000001.tar".into(), 3)]);
    let meta =
        br#"{"output_count": 15, "output_shard_count": 2, "output_shard_format": "{:08d}.tar",
 "complete": true, "damaged_inputs": [], "plan_fingerprint": "ab12",
 "shards": [{"name": "00000000.tar", "samples": 12, "bytes": 10240, "crc32": "0badf00d"}]}"#;
    vec![
        sizes.into_bytes(),
        tic_shards::counts::stats_json(12).into_bytes(),
        meta.to_vec(),
    ]
}

fn safetensors_seed() -> Vec<u8> {
    use candle_core::{Device, Tensor};
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("seed.safetensors");
    let sd: tic_model::checkpoint::StateDict = [
        (
            "logit_scale".to_string(),
            Tensor::new(&[4.6f32], &Device::Cpu).expect("cpu"),
        ),
        (
            "positional_embedding".to_string(),
            Tensor::zeros((4, 2), candle_core::DType::F32, &Device::Cpu).expect("cpu"),
        ),
    ]
    .into();
    tic_model::checkpoint::write_safetensors_atomic(&sd, &path).expect("writing the seed");
    std::fs::read(&path).expect("reading the seed back")
}

/// Not a reader: allocates 1 MiB per input byte, so that the tests can check that the memory
/// cap fails a run (found by [`find`], not run by `smoke` unless named).
pub const SELFTEST_ALLOC: Target = Target {
    name: "selftest_alloc",
    about: "allocates 1 MiB per input byte (checks the memory cap itself)",
    max_len: 1 << 10,
    dict: &[],
    seeds: |_| vec![vec![0; 100]],
    fixup: None,
    run: |_, data| {
        let v = vec![1u8; data.len() << 20];
        assert!(std::hint::black_box(v).len() == data.len() << 20);
    },
};

/// The target called `name`.
pub fn find(name: &str) -> Option<&'static Target> {
    TARGETS
        .iter()
        .chain([&SELFTEST_ALLOC])
        .find(|t| t.name == name)
}
