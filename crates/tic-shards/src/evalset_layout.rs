//! The CLIP_benchmark WebDataset evaluation-set layout (`build_wds_dataset`), as DataComp and
//! TiC use it, defined once: its file names, how shards are named, and the text of its
//! metadata files. [`crate::convert`] (`tic-wds-convert`) and [`crate::synth`] (the static set)
//! write it; tic-eval's `evalset` reads it (and its `data_root` stages it file by file), and
//! tic-train's `--imagenet_val` looks for it.
//!
//! ```text
//! {root}/dataset_type.txt                        retrieval | classification (default) | multilabel
//! {root}/classnames.txt                          one class name per line (classification)
//! {root}/zeroshot_classification_templates.txt   one template per line, `{c}` placeholder
//! {root}/count.txt                               optional: number of samples (DataComp/TiC)
//! {root}/{split}/nshards.txt                     number of shards N (TiC: split = "")
//! {root}/{split}/{0..N-1}.tar                    the shards, no zero padding
//! ```
//!
//! Numbers are written in decimal with a newline and read back trimmed; the line files hold one
//! entry per line, each with its newline.

/// What the set is for: `classification`, `retrieval` or `multilabel`.
pub const DATASET_TYPE_FILE: &str = "dataset_type.txt";
/// Class names, one per line, in class-id order (classification).
pub const CLASSNAMES_FILE: &str = "classnames.txt";
/// Zero-shot prompt templates, one per line, with a `{c}` placeholder (classification).
pub const TEMPLATES_FILE: &str = "zeroshot_classification_templates.txt";
/// The number of samples (optional; DataComp's and TiC's sets have it).
pub const COUNT_FILE: &str = "count.txt";
/// The number of shards, in the split folder next to them.
pub const NSHARDS_FILE: &str = "nshards.txt";

/// The split folder of DataComp's (non-TiC) sets, `{root}/test/`; TiC's sets have none.
pub const DATACOMP_SPLIT: &str = "test";

/// The metadata files at a set's root (all optional for a reader), in the order tic-eval
/// stages them; `nshards.txt` and the shards are in the split folder.
pub const ROOT_FILES: [&str; 4] = [
    DATASET_TYPE_FILE,
    COUNT_FILE,
    CLASSNAMES_FILE,
    TEMPLATES_FILE,
];

/// The file name of shard `i`: `{i}.tar`, without zero padding.
pub fn shard_file(i: impl std::fmt::Display) -> String {
    format!("{i}.tar")
}

/// The file name of shard `i`'s stats file once converted: `{i}.json` (TiC's `convert_wds.sh`
/// renames `{:08d}_stats.json` so).
pub fn shard_stats_file(i: impl std::fmt::Display) -> String {
    format!("{i}.json")
}

/// The text of a number file (`nshards.txt`, `count.txt`): the number and a newline.
pub fn number_text(n: u64) -> String {
    format!("{n}\n")
}

/// The number a number file holds (surrounding whitespace ignored).
pub fn parse_number(text: &str) -> Result<u64, std::num::ParseIntError> {
    text.trim().parse()
}

/// The dataset types CLIP_benchmark knows (`dataset_type.txt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DatasetType {
    /// Image-text retrieval (`txt` holds the captions).
    Retrieval,
    /// Zero-shot classification (`cls` holds the class id).
    Classification,
    /// Multi-label classification (`npy` labels).
    Multilabel,
}

impl DatasetType {
    /// The word written to `dataset_type.txt`.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetType::Retrieval => "retrieval",
            DatasetType::Classification => "classification",
            DatasetType::Multilabel => "multilabel",
        }
    }

    /// The type a `dataset_type.txt` names (surrounding whitespace ignored); `None` for a word
    /// CLIP_benchmark does not know.
    pub fn from_text(text: &str) -> Option<Self> {
        [Self::Retrieval, Self::Classification, Self::Multilabel]
            .into_iter()
            .find(|t| t.as_str() == text.trim())
    }
}

/// An evaluation set's metadata, as its text files hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetMetadata<'a> {
    /// `dataset_type.txt`.
    pub kind: DatasetType,
    /// `nshards.txt`.
    pub nshards: u64,
    /// `count.txt`.
    pub count: u64,
    /// `classnames.txt` and `zeroshot_classification_templates.txt`, each line with its
    /// newline (classification sets; `None` writes neither).
    pub classes: Option<(&'a str, &'a str)>,
}

impl SetMetadata<'_> {
    /// The metadata files to write: (path under the set root, content). `split` is the folder
    /// of `nshards.txt` and the shards under the root (`""` for TiC's sets, [`DATACOMP_SPLIT`]
    /// for DataComp's).
    pub fn files(&self, split: &str) -> Vec<(String, Vec<u8>)> {
        let nshards = if split.is_empty() {
            NSHARDS_FILE.to_string()
        } else {
            format!("{split}/{NSHARDS_FILE}")
        };
        let mut out = vec![
            (nshards, number_text(self.nshards).into_bytes()),
            (COUNT_FILE.to_string(), number_text(self.count).into_bytes()),
            (
                DATASET_TYPE_FILE.to_string(),
                format!("{}\n", self.kind.as_str()).into_bytes(),
            ),
        ];
        if let Some((classnames, templates)) = self.classes {
            out.push((CLASSNAMES_FILE.to_string(), classnames.as_bytes().to_vec()));
            out.push((TEMPLATES_FILE.to_string(), templates.as_bytes().to_vec()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(shard_file(12), "12.tar");
        assert_eq!(shard_stats_file(0), "0.json");
        assert_eq!(number_text(7), "7\n");
        assert_eq!(parse_number(" 7\n"), Ok(7));
        assert!(parse_number("seven").is_err());
    }

    #[test]
    fn dataset_types_round_trip() {
        for t in [
            DatasetType::Retrieval,
            DatasetType::Classification,
            DatasetType::Multilabel,
        ] {
            assert_eq!(
                DatasetType::from_text(&format!("{}\n", t.as_str())),
                Some(t)
            );
        }
        assert_eq!(DatasetType::from_text("regression"), None);
    }

    #[test]
    fn metadata_files() {
        let m = SetMetadata {
            kind: DatasetType::Classification,
            nshards: 2,
            count: 9,
            classes: Some(("cat\ndog\n", "a {c}.\n")),
        };
        let files = m.files("test");
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "test/nshards.txt",
                "count.txt",
                "dataset_type.txt",
                "classnames.txt",
                "zeroshot_classification_templates.txt"
            ]
        );
        assert_eq!(files[2].1, b"classification\n");
        let retrieval = SetMetadata {
            kind: DatasetType::Retrieval,
            classes: None,
            ..m
        };
        assert_eq!(retrieval.files("").len(), 3);
        assert_eq!(retrieval.files("")[0].0, "nshards.txt");
    }
}
