//! CLIP_benchmark WebDataset evaluation sets (`build_wds_dataset`), as DataComp and TiC use them:
//! opened and read in the layout [`tic_shards::evalset_layout`] defines (which
//! `tic-wds-convert` writes).
//!
//! A sample's image is the first of its `webp`, `png`, `jpg`, `jpeg` members (CLIP_benchmark's
//! `to_tuple(["webp", "png", "jpg", "jpeg"], …)`); its label is `cls` (an integer class id) for
//! classification and `txt` (captions, split with Python's `str.splitlines`) for retrieval.
//! Multilabel sets (DataComp's FairFace and UTKFace) label a sample by its `npy` metadata alone,
//! as `to_tuple(…, "npy")` reads them.
//! DataComp's WILDS and fairness sets also carry an `npy` member per sample: a vector of
//! integer metadata fields (location, region, income group, …) that their evaluators group by;
//! it is read into [`EvalSample::metadata`].
//! Samples come in shard order, then tar order, exactly as a single-worker WebDataset reads them.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use tic_shards::evalset_layout::{
    parse_number, shard_file, DatasetType, CLASSNAMES_FILE, COUNT_FILE, DATASET_TYPE_FILE,
    NSHARDS_FILE, TEMPLATES_FILE,
};
use tic_shards::npy;
use tic_shards::wds::{member_bytes, scan_shard, SampleRef};

/// Image member extensions in CLIP_benchmark's order of preference.
pub const IMAGE_EXTS: [&str; 4] = ["webp", "png", "jpg", "jpeg"];

/// What an evaluation set is for (`dataset_type.txt`), of the types tic-eval evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    /// Zero-shot classification: `cls` labels, class names and templates.
    Classification,
    /// Image-text retrieval: `txt` captions.
    Retrieval,
    /// Multi-label (DataComp's FairFace / UTKFace): the `npy` metadata is the label; class
    /// names and templates are `objective:text` lines. A `dataset_type.txt` saying
    /// `classification` is read the same way for such a task (DataComp reads `npy` either way).
    Multilabel,
}

/// An opened evaluation set: its metadata, not yet its samples.
#[derive(Debug, Clone)]
pub struct EvalSet {
    /// The dataset root.
    pub root: PathBuf,
    /// The folder holding `nshards.txt` and the shards (`root/split`).
    pub shard_dir: PathBuf,
    /// Classification or retrieval.
    pub kind: SetKind,
    /// The shard files, in order.
    pub shards: Vec<PathBuf>,
    /// Class names (classification; empty for retrieval).
    pub classnames: Vec<String>,
    /// Zero-shot templates with a `{c}` placeholder (classification; empty for retrieval).
    pub templates: Vec<String>,
    /// `count.txt`, if present.
    pub count: Option<u64>,
}

/// A sample's label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Label {
    /// A class id (already checked against the class list).
    Class(usize),
    /// The captions of a retrieval sample (possibly none).
    Captions(Vec<String>),
    /// A multilabel sample: its label is its `npy` metadata ([`EvalSample::metadata`]).
    Metadata,
}

/// One sample, with the bytes of its image.
#[derive(Debug, Clone)]
pub struct EvalSample {
    /// Where it came from: `shard path:key`, for error messages.
    pub origin: String,
    /// The encoded image (WebP/PNG/JPEG).
    pub image: Vec<u8>,
    /// Its label.
    pub label: Label,
    /// The `npy` metadata member as integers, when the sample has one (DataComp's WILDS and
    /// fairness sets; the evaluator's `metadata_fields` name the positions).
    pub metadata: Option<Vec<i64>>,
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn read_lines_file(path: &Path, what: &str) -> Result<Vec<String>> {
    let text = read_text(path).with_context(|| format!("the {what} of a classification set"))?;
    let lines: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
    // Python's `[l.strip() for l in f]` keeps empty lines; a trailing newline adds none.
    if lines.is_empty() {
        bail!("{}: no {what}", path.display());
    }
    Ok(lines)
}

impl EvalSet {
    /// Opens the set at `root` with WebDataset split `split` (`""` for TiC sets, `test` for
    /// DataComp's). `expected` is the kind the task key implies (DataComp routes by key): a
    /// `dataset_type.txt` that says otherwise is an error; without the file the set is
    /// `expected`, else classification (CLIP_benchmark's default). Errors name the missing or
    /// malformed file.
    pub fn open(root: &Path, split: &str, expected: Option<SetKind>) -> Result<Self> {
        if !root.is_dir() {
            bail!(
                "evaluation set {} does not exist (is --data_dir right? TiC sets are made by \
                 tic-reshard + tic-wds-convert)",
                root.display()
            );
        }
        let shard_dir = if split.is_empty() {
            root.to_path_buf()
        } else {
            root.join(split)
        };
        let type_path = root.join(DATASET_TYPE_FILE);
        let kind = if type_path.exists() {
            let text = read_text(&type_path)?;
            match DatasetType::from_text(&text) {
                Some(DatasetType::Classification) => SetKind::Classification,
                Some(DatasetType::Retrieval) => SetKind::Retrieval,
                Some(DatasetType::Multilabel) => SetKind::Multilabel,
                None => bail!(
                    "{}: unknown dataset type {:?} (classification, retrieval)",
                    type_path.display(),
                    text.trim()
                ),
            }
        } else {
            expected.unwrap_or(SetKind::Classification)
        };
        // DataComp reads a FairFace-style set's `npy` labels whatever its dataset type says.
        let kind = match (expected, kind) {
            (Some(SetKind::Multilabel), SetKind::Classification) => SetKind::Multilabel,
            _ => kind,
        };
        if let Some(e) = expected.filter(|&e| e != kind) {
            bail!(
                "{}: the task key implies a {e:?} set but the set is {kind:?}",
                root.display()
            );
        }
        let nshards_path = shard_dir.join(NSHARDS_FILE);
        let nshards = parse_number(&read_text(&nshards_path)?)
            .with_context(|| format!("{}: not a number of shards", nshards_path.display()))?;
        if nshards == 0 {
            bail!("{}: zero shards", nshards_path.display());
        }
        let shards: Vec<PathBuf> = (0..nshards)
            .map(|i| shard_dir.join(shard_file(i)))
            .collect();
        if let Some(missing) = shards.iter().find(|p| !p.is_file()) {
            bail!(
                "{} lists {nshards} shards but {} is missing",
                nshards_path.display(),
                missing.display()
            );
        }
        let count_path = root.join(COUNT_FILE);
        let count = if count_path.exists() {
            Some(
                parse_number(&read_text(&count_path)?)
                    .with_context(|| format!("{}: not a sample count", count_path.display()))?,
            )
        } else {
            None
        };
        let (classnames, templates) = match kind {
            SetKind::Classification | SetKind::Multilabel => {
                let c = read_lines_file(&root.join(CLASSNAMES_FILE), "class names")?;
                let t = read_lines_file(&root.join(TEMPLATES_FILE), "templates")?;
                (c, t)
            }
            SetKind::Retrieval => (Vec::new(), Vec::new()),
        };
        Ok(Self {
            root: root.to_path_buf(),
            shard_dir,
            kind,
            shards,
            classnames,
            templates,
            count,
        })
    }

    /// The zero-shot prompts, class-major: `templates[t]` with `{c}` replaced by class `c`'s
    /// name, for every class, then every template (CLIP_benchmark's `t.format(c=classname)`).
    pub fn prompts(&self) -> Vec<String> {
        self.classnames
            .iter()
            .flat_map(|c| self.templates.iter().map(move |t| t.replace("{c}", c)))
            .collect()
    }

    /// Reads shard `i` and returns its samples in tar order. Errors (unreadable or corrupt
    /// shard, no samples, a sample without image or label, a bad label) name the shard and the
    /// sample key.
    pub fn read_shard(&self, i: usize) -> Result<Vec<EvalSample>> {
        let path = &self.shards[i];
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let name = path.display().to_string();
        let scan = scan_shard(&data, &name);
        if let Some(e) = scan.errors.first() {
            bail!("{e}");
        }
        if scan.samples.is_empty() {
            bail!("{name}: empty shard (no samples)");
        }
        scan.samples
            .iter()
            .map(|s| self.sample(&data, &name, s))
            .collect()
    }

    fn sample(&self, data: &[u8], shard: &str, s: &SampleRef) -> Result<EvalSample> {
        let origin = format!("{shard}: sample {:?}", s.key);
        let Some(img) = IMAGE_EXTS.iter().find_map(|e| s.member(e)) else {
            let exts: Vec<&str> = s.members.iter().map(|m| m.ext.as_str()).collect();
            bail!("{origin}: no image member (webp/png/jpg/jpeg); it has {exts:?}");
        };
        let label = match self.kind {
            SetKind::Classification => {
                let m = s
                    .member("cls")
                    .with_context(|| format!("{origin}: no `cls` member (class id)"))?;
                let text = String::from_utf8_lossy(member_bytes(data, m));
                let id: i64 = text
                    .trim()
                    .parse()
                    .with_context(|| format!("{origin}: `cls` {text:?} is not an integer"))?;
                if id < 0 || id as usize >= self.classnames.len() {
                    bail!(
                        "{origin}: class id {id} is outside the {} classes of {}",
                        self.classnames.len(),
                        self.root.join(CLASSNAMES_FILE).display()
                    );
                }
                Label::Class(id as usize)
            }
            SetKind::Retrieval => {
                let m = s
                    .member("txt")
                    .with_context(|| format!("{origin}: no `txt` member (captions)"))?;
                let text = std::str::from_utf8(member_bytes(data, m))
                    .with_context(|| format!("{origin}: `txt` is not UTF-8"))?;
                Label::Captions(splitlines(text).into_iter().map(String::from).collect())
            }
            SetKind::Multilabel => {
                if s.member("npy").is_none() {
                    bail!("{origin}: no `npy` member (the labels of a multilabel set)");
                }
                Label::Metadata
            }
        };
        let metadata = s
            .member("npy")
            .map(|m| npy::read_int_vector(member_bytes(data, m), &format!("{origin}: `npy`")))
            .transpose()?;
        Ok(EvalSample {
            image: member_bytes(data, img).to_vec(),
            origin,
            label,
            metadata,
        })
    }
}

/// Python's `str.splitlines()`: splits at `\n`, `\r`, `\r\n`, `\v`, `\f`, `\x1c`, `\x1d`,
/// `\x1e`, `\x85`, U+2028 and U+2029, without the line breaks; no empty line after a final break.
pub fn splitlines(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut it = s.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\x0b'
                | '\x0c'
                | '\x1c'
                | '\x1d'
                | '\x1e'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if is_break {
            out.push(&s[start..i]);
            let mut end = i + c.len_utf8();
            if c == '\r' {
                if let Some(&(j, '\n')) = it.peek() {
                    it.next();
                    end = j + 1;
                }
            }
            start = end;
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tic_shards::wds::TarSampleWriter;

    #[test]
    fn splitlines_matches_python() {
        // Expected values from CPython 3.11 `str.splitlines()`.
        assert_eq!(splitlines(""), Vec::<&str>::new());
        assert_eq!(splitlines("a"), ["a"]);
        assert_eq!(splitlines("a\n"), ["a"]);
        assert_eq!(splitlines("a\n\nb"), ["a", "", "b"]);
        assert_eq!(splitlines("\n"), [""]);
        assert_eq!(splitlines("a\r\nb\rc\n"), ["a", "b", "c"]);
        assert_eq!(splitlines("a\r\rb"), ["a", "", "b"]);
        assert_eq!(
            splitlines("x\u{2028}y\u{85}z\x0bw\x0cv\x1cu"),
            ["x", "y", "z", "w", "v", "u"]
        );
        assert_eq!(splitlines("tab\tstays"), ["tab\tstays"]);
    }

    /// A sample for [`write_set`]: key and (extension, bytes) members.
    type TestSample<'a> = (&'a str, &'a [(&'a str, &'a [u8])]);

    fn write_set(dir: &Path, kind: &str, samples: &[TestSample]) {
        std::fs::create_dir_all(dir).unwrap();
        let mut w = TarSampleWriter::new(Vec::new());
        for (key, members) in samples {
            for (ext, data) in *members {
                w.append(key, ext, data, 0).unwrap();
            }
        }
        std::fs::write(dir.join("0.tar"), w.finish().unwrap()).unwrap();
        std::fs::write(dir.join("nshards.txt"), "1\n").unwrap();
        std::fs::write(dir.join("dataset_type.txt"), format!("{kind}\n")).unwrap();
        std::fs::write(dir.join("classnames.txt"), "cat\ndog\n").unwrap();
        std::fs::write(
            dir.join("zeroshot_classification_templates.txt"),
            "a {c}.\nthe {c}!\n",
        )
        .unwrap();
    }

    #[test]
    fn reads_labels_images_and_prompts() {
        let d = tempfile::tempdir().unwrap();
        write_set(
            d.path(),
            "classification",
            &[
                ("a", &[("cls", b"1\n"), ("jpg", b"J"), ("png", b"P")]),
                ("b", &[("cls", b"0"), ("jpeg", b"E")]),
            ],
        );
        let set = EvalSet::open(d.path(), "", None).unwrap();
        assert_eq!(set.kind, SetKind::Classification);
        assert_eq!(set.prompts(), ["a cat.", "the cat!", "a dog.", "the dog!"]);
        let s = set.read_shard(0).unwrap();
        assert_eq!(s[0].image, b"P"); // png before jpg
        assert_eq!(s[0].label, Label::Class(1));
        assert_eq!(s[1].image, b"E");
        assert_eq!(s[1].label, Label::Class(0));
    }

    #[test]
    fn npy_metadata_member_is_read_as_integers() {
        let d = tempfile::tempdir().unwrap();
        let meta = npy_i64(&[4, 0, 2017]);
        write_set(
            d.path(),
            "classification",
            &[
                ("a", &[("cls", b"1"), ("jpg", b"J"), ("npy", &meta)]),
                ("b", &[("cls", b"0"), ("jpg", b"J")]),
            ],
        );
        let set = EvalSet::open(d.path(), "", None).unwrap();
        let s = set.read_shard(0).unwrap();
        assert_eq!(s[0].metadata.as_deref(), Some(&[4, 0, 2017][..]));
        assert_eq!(s[1].metadata, None);

        write_set(
            d.path(),
            "classification",
            &[("a", &[("cls", b"1"), ("jpg", b"J"), ("npy", b"oops")])],
        );
        let err = format!("{:#}", set.read_shard(0).unwrap_err());
        assert!(
            err.contains("0.tar") && err.contains("\"a\"") && err.contains("`npy`"),
            "{err}"
        );
    }

    /// A 1-D `<i8` npy array, as `np.save` writes it.
    fn npy_i64(v: &[i64]) -> Vec<u8> {
        let header = format!(
            "{{'descr': '<i8', 'fortran_order': False, 'shape': ({},), }}\n",
            v.len()
        );
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        out
    }

    #[test]
    fn multilabel_samples_are_labelled_by_their_npy_member() {
        let d = tempfile::tempdir().unwrap();
        let meta = npy_i64(&[3, 1, 2, 1]);
        write_set(
            d.path(),
            "multilabel",
            &[("a", &[("jpg", b"J"), ("npy", &meta)])],
        );
        let set = EvalSet::open(d.path(), "", None).unwrap();
        assert_eq!(set.kind, SetKind::Multilabel);
        let s = set.read_shard(0).unwrap();
        assert_eq!(s[0].label, Label::Metadata);
        assert_eq!(s[0].metadata.as_deref(), Some(&[3, 1, 2, 1][..]));
        // A classification-typed set read for a multilabel task: `npy`, no `cls` needed.
        write_set(
            d.path(),
            "classification",
            &[
                ("a", &[("jpg", b"J"), ("npy", &meta)]),
                ("b", &[("jpg", b"J")]),
            ],
        );
        let set = EvalSet::open(d.path(), "", Some(SetKind::Multilabel)).unwrap();
        assert_eq!(set.kind, SetKind::Multilabel);
        let err = format!("{:#}", set.read_shard(0).unwrap_err());
        assert!(err.contains("\"b\"") && err.contains("no `npy`"), "{err}");
        // Not the other way round: a multilabel set is no classification set.
        write_set(
            d.path(),
            "multilabel",
            &[("a", &[("jpg", b"J"), ("npy", &meta)])],
        );
        assert!(EvalSet::open(d.path(), "", Some(SetKind::Classification)).is_err());
    }

    #[test]
    fn retrieval_captions_are_split() {
        let d = tempfile::tempdir().unwrap();
        write_set(
            d.path(),
            "retrieval",
            &[("k", &[("txt", "one\r\ntwo\n".as_bytes()), ("webp", b"W")])],
        );
        let set = EvalSet::open(d.path(), "", None).unwrap();
        let s = set.read_shard(0).unwrap();
        assert_eq!(
            s[0].label,
            Label::Captions(vec!["one".into(), "two".into()])
        );
    }

    #[test]
    fn bad_inputs_name_file_and_sample() {
        let d = tempfile::tempdir().unwrap();
        let err = EvalSet::open(&d.path().join("nope"), "", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("nope") && err.contains("does not exist"),
            "{err}"
        );

        write_set(
            d.path(),
            "classification",
            &[("a", &[("cls", b"7"), ("jpg", b"J")])],
        );
        let set = EvalSet::open(d.path(), "", None).unwrap();
        let err = format!("{:#}", set.read_shard(0).unwrap_err());
        assert!(
            err.contains("0.tar") && err.contains("\"a\"") && err.contains("class id 7"),
            "{err}"
        );

        write_set(d.path(), "classification", &[("a", &[("cls", b"1")])]);
        let err = format!("{:#}", set.read_shard(0).unwrap_err());
        assert!(err.contains("no image member"), "{err}");

        write_set(d.path(), "classification", &[]);
        let err = format!("{:#}", set.read_shard(0).unwrap_err());
        assert!(err.contains("empty shard"), "{err}");

        std::fs::write(d.path().join("nshards.txt"), "2\n").unwrap();
        let err = format!("{:#}", EvalSet::open(d.path(), "", None).unwrap_err());
        assert!(err.contains("1.tar is missing"), "{err}");
    }
}
