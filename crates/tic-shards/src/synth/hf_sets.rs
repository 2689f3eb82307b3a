//! Synthetic stand-ins for DataComp's Hugging Face evaluation sets (`tic-synth
//! --special-samples N` writes them to `OUT/special/hf_cache/`), so that `make demo` runs
//! tic-eval's `hf_cache` reader and its retrieval and WinoGAViL evaluators end to end.
//!
//! Why synthetic: the real sets are downloaded from the Hugging Face hub by DataComp's
//! `download_evalsets.py`; the demo runs offline in minutes. Flickr and WinoGAViL are written
//! in the layout DataComp's pinned `datasets` 2.8 leaves, MSCOCO in the current `datasets`
//! layout (`crate::hf_cache_layout`, the one definition of both), with the real sets' columns;
//! their content is derived from what the
//! images show (rendered as the pool's samples), so the metrics mean something:
//!
//! * `nlphuji/flickr_1k_test_image_text_retrieval` (task `retrieval/flickr_1k_test_image_text_retrieval`):
//!   N images, each with 5 captions that name what it shows (the pool's caption; size, colour
//!   and concept; concept and position; colour, concept and background; the concept alone);
//! * `nlphuji/mscoco_2014_5k_test_image_text_retrieval` (task
//!   `retrieval/mscoco_2014_5k_test_image_text_retrieval`): the same kind of rows from other
//!   images, cached in the *current* `datasets` layout (`nlphuji___NAME/default/0.0.0/<revision>`)
//!   and split over two Arrow files (as `datasets` shards a split larger than its shard size),
//!   so that the demo reads both layouts and a sharded split;
//! * `nlphuji/winogavil` (task `misc/winogavil`): ⌈N/8⌉ (at least 4) instances whose cue is a
//!   concept's name and whose 5, 6, 10 or 12 candidates (cycling, so every `jaccard_score_*`
//!   field is filled) are images: the associations show the cue's concept, the other
//!   candidates other concepts. A candidate's name says its colour and concept.
//!
//! Task names say "Synthetic … (DataComp's X evaluator)" so no one takes them for the real
//! sets; the hash folder (config hash or hub revision) is derived from the set's name and the
//! seed.

use super::{balanced_spec, caption, encode_jpeg, render, SampleSpec, SynthArgs};
use super::{COLORS, CONCEPT_CLASSES, POSITIONS};
use crate::hf_cache_layout::{
    write_build, CacheLayout, HfSet, ImageCell, RetrievalRecord, SetRows, WinogavilRecord,
    HF_CACHE_DIR,
};
use crate::imagenet;
use anyhow::Result;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One synthetic set: its task (`tasklist.yml` name, DataComp's main metric) and how it is
/// cached.
#[derive(Debug, Clone, Copy)]
pub struct HfTask {
    /// The set.
    pub set: HfSet,
    /// The task's name in the task list.
    pub name: &'static str,
    /// DataComp's main metric of the task.
    pub main_metric: &'static str,
    /// The cache layout it is written in.
    pub layout: CacheLayout,
    /// The Arrow files its test split is written in (at most one per row).
    pub shards: usize,
}

/// The sets written, in task-key order.
pub const HF_TASKS: [HfTask; 3] = [
    HfTask {
        set: HfSet::Flickr,
        name: "Synthetic Flickr (DataComp's retrieval/flickr_1k_test_image_text_retrieval evaluator)",
        main_metric: "mean_recall@1",
        layout: CacheLayout::Datasets28,
        shards: 1,
    },
    HfTask {
        set: HfSet::Mscoco,
        name: "Synthetic MSCOCO (DataComp's retrieval/mscoco_2014_5k_test_image_text_retrieval evaluator)",
        main_metric: "mean_recall@1",
        layout: CacheLayout::Current,
        shards: 2,
    },
    HfTask {
        set: HfSet::Winogavil,
        name: "Synthetic WinoGAViL (DataComp's misc/winogavil evaluator)",
        main_metric: "jaccard_score_10-12",
        layout: CacheLayout::Datasets28,
        shards: 1,
    },
];

/// Candidates per WinoGAViL instance, cycled (the sizes DataComp's fields are named after).
const WINO_SIZES: [usize; 4] = [5, 6, 10, 12];
/// Salts of the sets' random streams.
const FLICKR_SALT: u64 = 0xF11C_0005;
const MSCOCO_SALT: u64 = 0xC0C0_0007;
const WINO_SALT: u64 = 0x3A10_0006;

/// The number of WinoGAViL instances for `--special-samples n`.
pub fn winogavil_instances(n: usize) -> usize {
    n.div_ceil(8).max(4)
}

/// `tasklist.yml` entries of the tasks (`samples`: `--special-samples`).
pub fn tasklist_entries(samples: usize) -> String {
    let mut s = String::new();
    for HfTask {
        set,
        name,
        main_metric: metric,
        ..
    } in HF_TASKS
    {
        let size = match set {
            HfSet::Winogavil => winogavil_instances(samples),
            _ => samples,
        };
        let _ = write!(
            s,
            "{}:\n  name: \"{name}\"\n  size: {size}\n  main_metric: {metric}\n  tags:\n  - static\n  - synthetic\n  - retrieval\n",
            set.key()
        );
    }
    s
}

/// The five captions of an image (see the module docs).
fn captions(a: &SynthArgs, s: &SampleSpec) -> Vec<String> {
    let concept = imagenet::classnames()[CONCEPT_CLASSES[s.concept]];
    let color = COLORS[s.color].0;
    let size = if s.large { "large" } else { "small" };
    let bg = if s.dark { "dark" } else { "light" };
    vec![
        caption(a, s),
        format!("a {size} {color} {concept}."),
        format!(
            "a {concept} in the {} of the picture.",
            POSITIONS[s.position].0
        ),
        format!("a {color} {concept} on a {bg} background."),
        format!("a {concept}."),
    ]
}

fn jpeg(a: &SynthArgs, s: &SampleSpec, path: Option<String>) -> Result<ImageCell> {
    Ok(ImageCell {
        bytes: encode_jpeg(&render(a, s), a.jpeg_quality)?,
        path,
    })
}

/// Retrieval rows: `a.special_samples` images, balanced over the concepts, from the random
/// stream `salt`; image `i` is named `file_name(i)`.
fn retrieval_rows(
    a: &SynthArgs,
    salt: u64,
    file_name: fn(usize) -> String,
) -> Result<Vec<RetrievalRecord>> {
    (0..a.special_samples)
        .into_par_iter()
        .map(|i| {
            let s = balanced_spec(a, salt, i);
            let filename = file_name(i);
            let captions = captions(a, &s);
            Ok(RetrievalRecord {
                image: jpeg(a, &s, Some(filename.clone()))?,
                sentids: (0..captions.len())
                    .map(|j| (5 * i + j).to_string())
                    .collect(),
                captions,
                img_id: i.to_string(),
                filename,
            })
        })
        .collect()
}

/// WinoGAViL instance `i` (see the module docs). Candidate `j` is an association when
/// `(7j + i) mod n < k` (7 is prime to every size, so the associations are spread out).
fn winogavil_row(a: &SynthArgs, i: usize) -> Result<WinogavilRecord> {
    let names = imagenet::classnames();
    let n = WINO_SIZES[i % WINO_SIZES.len()];
    let k = n / 3 + (i / WINO_SIZES.len()) % 2;
    let cue = i % CONCEPT_CLASSES.len();
    let (mut candidates, mut associations, mut images) = (vec![], vec![], vec![]);
    let mut other = 0;
    for j in 0..n {
        let mut s = balanced_spec(a, WINO_SALT ^ ((i as u64) << 8), j);
        let truth = (7 * j + i) % n < k;
        s.concept = if truth {
            cue
        } else {
            other += 1;
            (cue + other) % CONCEPT_CLASSES.len()
        };
        let name = format!(
            "{} {} {}",
            COLORS[s.color].0,
            names[CONCEPT_CLASSES[s.concept]],
            j + 1
        );
        if truth {
            associations.push(name.clone());
        }
        images.push(jpeg(a, &s, None)?);
        candidates.push(name);
    }
    Ok(WinogavilRecord {
        candidates,
        cue: names[CONCEPT_CLASSES[cue]].to_string(),
        associations,
        candidate_images: images,
        id: i as i64,
    })
}

/// The hash folder of a task's build (from the set's name and the seed): a 16-hex-digit
/// config hash (2.8 layout) or a 40-hex-digit hub revision (current layout).
fn build_hash(a: &SynthArgs, t: &HfTask) -> String {
    let d = Sha256::digest(format!(
        "tic-synth {} seed {}",
        t.set.dataset_name(),
        a.seed
    ));
    let n = match t.layout {
        CacheLayout::Datasets28 => 8,
        CacheLayout::Current => 20,
    };
    hex::encode(&d[..n])
}

/// The rows of a set.
fn set_rows(a: &SynthArgs, set: HfSet) -> Result<SetRows> {
    Ok(match set {
        HfSet::Flickr => SetRows::Retrieval(retrieval_rows(a, FLICKR_SALT, |i| {
            format!("synthetic_{i:07}.jpg")
        })?),
        HfSet::Mscoco => SetRows::Retrieval(retrieval_rows(a, MSCOCO_SALT, |i| {
            format!("COCO_val2014_synthetic_{i:06}.jpg")
        })?),
        HfSet::Winogavil => SetRows::Winogavil(
            (0..winogavil_instances(a.special_samples))
                .into_par_iter()
                .map(|i| winogavil_row(a, i))
                .collect::<Result<_>>()?,
        ),
    })
}

/// The rows of every set, in [`HF_TASKS`] order.
pub fn hf_rows(a: &SynthArgs) -> Result<Vec<(HfSet, SetRows)>> {
    HF_TASKS
        .iter()
        .map(|t| Ok((t.set, set_rows(a, t.set)?)))
        .collect()
}

/// Writes every set under `dir/hf_cache` (`dir`: tic-synth's `OUT/special`), each in its
/// task's layout; returns their build folders, in [`HF_TASKS`] order.
pub fn write_hf_sets(a: &SynthArgs, dir: &Path) -> Result<Vec<PathBuf>> {
    let cache = dir.join(HF_CACHE_DIR);
    HF_TASKS
        .iter()
        .zip(hf_rows(a)?)
        .map(|(t, (set, rows))| {
            let shards = t.shards.min(rows.len()).max(1);
            write_build(&cache, set, t.layout, &build_hash(a, t), &rows, shards)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn instances_follow_the_images() {
        let a = SynthArgs::parse_from(["tic-synth", "--out", "x", "--image-size", "16"]);
        for i in 0..8 {
            let w = winogavil_row(&a, i).unwrap();
            let n = WINO_SIZES[i % 4];
            assert_eq!(w.candidates.len(), n);
            assert_eq!(w.candidate_images.len(), n);
            assert!((1..n).contains(&w.associations.len()), "{w:?}");
            // The associations, and only they, name the cue's concept.
            for c in &w.candidates {
                let is_assoc = w.associations.contains(c);
                assert_eq!(
                    c.contains(&format!(" {} ", w.cue)),
                    is_assoc,
                    "{c} / {}",
                    w.cue
                );
            }
            let unique: std::collections::BTreeSet<_> = w.candidates.iter().collect();
            assert_eq!(unique.len(), n);
        }
        let y = tasklist_entries(28);
        assert!(
            y.contains("misc/winogavil:\n  name: \"Synthetic WinoGAViL"),
            "{y}"
        );
        assert!(
            y.contains("size: 4\n  main_metric: jaccard_score_10-12\n"),
            "{y}"
        );
        assert!(
            y.contains("size: 28\n  main_metric: mean_recall@1\n"),
            "{y}"
        );
    }
}
