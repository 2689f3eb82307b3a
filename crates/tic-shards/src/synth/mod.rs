//! A deterministic synthetic DataComp-like pool with a learnable time signal, and the TiC UID
//! files that go with it (what the real pipeline downloads).
//!
//! Each sample shows one object of a *concept* (an ImageNet class rendered as a distinct glyph)
//! with a colour, size, position and background that its caption names. Time enters three ways:
//! - concept mix: concepts appear in a birth year, peak the year after and fade afterwards, so
//!   every year brings classes that earlier years lack;
//! - appearance drift: each concept's glyph rotates a further 20° per year and its favoured
//!   colour changes every year;
//! - caption drift: every year has its own phrasing.
//!
//! A model trained on early years therefore meets unseen class names and renderings later
//! (weak forward transfer), and one trained only on recent years forgets old ones (weak
//! backward transfer), which is the structure TiC-CLIP's evaluation measures.
//!
//! Besides the pool, `--static-samples` writes a static classification set (the paper's
//! "static" column in miniature) and `--special-samples` small sets for DataComp's special
//! evaluators (`special`: WILDS FMoW, Dollar Street, GeoDE, FairFace; `hf_sets`: Flickr- and
//! MSCOCO-style retrieval and WinoGAViL in DataComp's `hf_cache`), rendered the same way.

pub mod hf_sets;
pub mod special;

use crate::shardfmt::{ShardFormat, DATACOMP_SHARD_FORMAT};
use crate::uid::{sort_unique, Uid};
use crate::wds::TarSampleWriter;
use crate::{atomic, counts, evalset_layout, imagenet, npy, pickle, pyjson};
use anyhow::{bail, Context, Result};
use clap::Parser;
use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// ImageNet class ids used as concepts (one glyph each), chosen to be everyday objects.
pub const CONCEPT_CLASSES: [usize; 16] = [
    1, 281, 207, 487, 620, 817, 404, 671, 879, 963, 954, 949, 849, 892, 770, 414,
];

const COLORS: [(&str, [u8; 3]); 8] = [
    ("red", [220, 40, 40]),
    ("green", [40, 180, 60]),
    ("blue", [40, 80, 220]),
    ("yellow", [235, 215, 40]),
    ("purple", [150, 50, 190]),
    ("orange", [245, 140, 30]),
    ("white", [245, 245, 245]),
    ("black", [20, 20, 20]),
];

const POSITIONS: [(&str, f32, f32); 9] = [
    ("top left", 0.28, 0.28),
    ("top", 0.5, 0.28),
    ("top right", 0.72, 0.28),
    ("left", 0.28, 0.5),
    ("center", 0.5, 0.5),
    ("right", 0.72, 0.5),
    ("bottom left", 0.28, 0.72),
    ("bottom", 0.5, 0.72),
    ("bottom right", 0.72, 0.72),
];

/// Names of the sample splits (`SampleSpec::split`).
const SPLITS: [&str; 3] = ["train", "retrieval", "datacompnet"];

/// Caption openings; year `i` uses phrases `2i` and `2i+1` (cycling).
const PHRASES: [&str; 12] = [
    "a photo of a",
    "a picture of a",
    "check out this",
    "my new",
    "look at this",
    "just got a",
    "throwback to a",
    "an aesthetic shot of a",
    "unboxing a",
    "pov: a",
    "low key obsessed with this",
    "ai generated image of a",
];

/// Command-line arguments of `tic-synth`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "tic-synth",
    version,
    about = "Write a synthetic DataComp-like pool and TiC UID files (stands in for download_upstream.py)",
    long_about = "Write a synthetic DataComp-like pool and TiC UID files (stands in for download_upstream.py)\n\n\
Writes, deterministically from --seed, everything the real TiC-DataComp pipeline downloads \
(DataComp's download_upstream.py and the TiC UID files), with a time signal:\n\
  OUT/pool/{00000000..}.tar       WebDataset shards (KEY.jpg, KEY.json, KEY.txt), img2dataset-style\n\
  OUT/pool/*_stats.json, sizes.json\n\
  OUT/uids/tic-datacomp_training_yearly_noeval/YEAR.npy   (u8,u8, sorted, unique; no eval uids)\n\
  OUT/uids/tic-datacomp_training_monthly/YEAR.tar         (YEAR/YYYYMM.npy members, eval uids included)\n\
  OUT/uids/tic-datacomp_retrieval_evals_year2uids.pkl     (dict year -> [uid])\n\
  OUT/uids/tic-datacompnet_year2uids.pkl                  (dict year -> {synset -> [uid]})\n\
  OUT/static/                     with --static-samples: a static classification set (key synth_static)\n\
  OUT/special/wds_*_test/         with --special-samples: DataComp's special tasks (FMoW, Dollar Street, GeoDE, FairFace)\n\
  OUT/special/hf_cache/           with --special-samples: Flickr/MSCOCO-style retrieval and WinoGAViL, as `datasets` caches them\n\
  OUT/synth.json                                          (settings and per-year counts)"
)]
pub struct SynthArgs {
    /// Output folder (local path, or an object-store URL: written locally, then uploaded).
    #[arg(long)]
    pub out: PathBuf,
    /// Random seed: the same seed and sizes give the same bytes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of samples in the pool.
    #[arg(long, default_value_t = 4000)]
    pub num_samples: usize,
    /// Number of pool shards.
    #[arg(long, default_value_t = 8)]
    pub num_shards: usize,
    /// First year of the time range.
    #[arg(long, default_value_t = 2014)]
    pub first_year: u32,
    /// Number of years.
    #[arg(long, default_value_t = 4)]
    pub num_years: u32,
    /// Image side in pixels.
    #[arg(long, default_value_t = 64)]
    pub image_size: u32,
    /// Fraction of each year held out for evaluation (half retrieval, half DataCompNet).
    #[arg(long, default_value_t = 0.1)]
    pub eval_fraction: f64,
    /// Pixel noise amplitude (0-255); larger makes bigger JPEGs.
    #[arg(long, default_value_t = 12)]
    pub noise: u8,
    /// JPEG quality (1-100).
    #[arg(long, default_value_t = 90)]
    pub jpeg_quality: u8,
    /// Also write `bench_subset.npy` (each sample kept with this probability, plus 100 uids
    /// absent from the pool) and `bench_uid2classid.pkl` (its uids -> class ids) for benchmarks.
    #[arg(long)]
    pub bench_subset: Option<f64>,
    /// Also write a static (time-independent) zero-shot classification set of this many samples
    /// under `OUT/static/` (CLIP_benchmark layout, task key `synth_static`): every concept
    /// equally often, rendered in the style of a uniformly drawn year. It plays the role of
    /// ImageNet and the other fixed benchmarks in the paper's "static" column.
    #[arg(long, default_value_t = 0)]
    pub static_samples: usize,
    /// Also write small synthetic sets, this many samples each, for DataComp's special
    /// evaluators under DataComp's own folder names in `OUT/special/` (`wds_wilds-fmow_test`,
    /// `wds_dollar_street_test`, `wds_geode_test`, `wds_fairface_test`: `npy` metadata derived
    /// from what each image shows), listed in `OUT/static/tasklist.yml` after `synth_static`
    /// (so it needs `--static-samples`), and `OUT/special/hf_cache/` with stand-ins for
    /// `nlphuji/flickr_1k_test_image_text_retrieval` and
    /// `nlphuji/mscoco_2014_5k_test_image_text_retrieval` (this many images each, 5 captions
    /// each) and `nlphuji/winogavil` (⌈N/8⌉ instances, at least 4), as `datasets` caches them
    /// (MSCOCO in the current layout, the others as DataComp's pinned 2.8). Copy them into
    /// tic-eval's `--data_dir` as they are.
    #[arg(long, default_value_t = 0)]
    pub special_samples: usize,
    /// Less logging.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// Task key of the static classification set (`--static-samples`).
pub const STATIC_TASK_KEY: &str = "synth_static";

/// What one sample is, before rendering.
#[derive(Debug, Clone)]
pub struct SampleSpec {
    /// Its uid.
    pub uid: Uid,
    /// Year.
    pub year: u32,
    /// Month 1-12.
    pub month: u32,
    /// Concept index into [`CONCEPT_CLASSES`].
    pub concept: usize,
    /// Colour index.
    pub color: usize,
    /// Position index.
    pub position: usize,
    /// Large (true) or small.
    pub large: bool,
    /// Dark background (true) or light.
    pub dark: bool,
    /// 0 = train, 1 = retrieval eval, 2 = DataCompNet eval.
    pub split: u8,
}

/// Popularity of concept `c` in year index `t` (0-based) out of `years`.
pub fn concept_weight(c: usize, t: u32, years: u32) -> f64 {
    let n = CONCEPT_CLASSES.len() as f64;
    let birth = (c as f64 * years as f64 / n).floor() - 1.0;
    let peak = birth + 1.0;
    let t = t as f64;
    if t < birth {
        0.0
    } else {
        (-(t - peak).powi(2) / 2.0).exp() + 0.1
    }
}

fn sample_rng(seed: u64, i: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(
        seed ^ (i as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(17),
    )
}

fn pick_weighted(rng: &mut ChaCha8Rng, w: &[f64]) -> usize {
    let total: f64 = w.iter().sum();
    let mut x = rng.random::<f64>() * total;
    for (i, wi) in w.iter().enumerate() {
        if x < *wi {
            return i;
        }
        x -= wi;
    }
    w.len() - 1
}

/// The favoured colour of year index `t` (60 %), else any colour.
fn pick_color(rng: &mut ChaCha8Rng, concept: usize, t: u32) -> usize {
    if rng.random::<f64>() < 0.6 {
        (concept + t as usize * 3) % COLORS.len()
    } else {
        rng.random_range(0..COLORS.len())
    }
}

/// Draws the rest of a spec (month, position, size, background), in this order.
fn finish_spec(
    rng: &mut ChaCha8Rng,
    a: &SynthArgs,
    uid: Uid,
    t: u32,
    concept: usize,
    color: usize,
    split: u8,
) -> SampleSpec {
    SampleSpec {
        uid,
        year: a.first_year + t,
        month: rng.random_range(1..=12),
        concept,
        color,
        position: rng.random_range(0..POSITIONS.len()),
        large: rng.random(),
        dark: rng.random(),
        split,
    }
}

/// Draws the spec of sample `i`.
pub fn sample_spec(a: &SynthArgs, i: usize) -> SampleSpec {
    let mut rng = sample_rng(a.seed, i);
    let uid = Uid(rng.random::<u128>());
    let year_w: Vec<f64> = (0..a.num_years).map(|t| 1.0 + 0.25 * t as f64).collect();
    let t = pick_weighted(&mut rng, &year_w) as u32;
    let cw: Vec<f64> = (0..CONCEPT_CLASSES.len())
        .map(|c| concept_weight(c, t, a.num_years))
        .collect();
    let concept = pick_weighted(&mut rng, &cw);
    let color = pick_color(&mut rng, concept, t);
    let u = rng.random::<f64>();
    let split = if u < a.eval_fraction / 2.0 {
        1
    } else if u < a.eval_fraction {
        2
    } else {
        0
    };
    finish_spec(&mut rng, a, uid, t, concept, color, split)
}

/// Draws the spec of sample `i` of the static set: concept `i mod 16` (balanced classes), a
/// uniformly drawn year's style, otherwise as [`sample_spec`].
pub fn static_spec(a: &SynthArgs, i: usize) -> SampleSpec {
    balanced_spec(a, 0x57A7_1C00, i)
}

/// Sample `i` of a balanced evaluation set whose random stream is salted with `salt`: concept
/// `i mod 16`, a uniformly drawn year's style and colour, the rest as [`sample_spec`].
fn balanced_spec(a: &SynthArgs, salt: u64, i: usize) -> SampleSpec {
    let mut rng = sample_rng(a.seed ^ salt, i);
    let uid = Uid(rng.random::<u128>());
    let t = rng.random_range(0..a.num_years);
    let concept = i % CONCEPT_CLASSES.len();
    let color = pick_color(&mut rng, concept, t);
    finish_spec(&mut rng, a, uid, t, concept, color, 2)
}

/// The 16 concepts' class names, one line each (a classification set's `classnames.txt`).
fn concept_classnames() -> String {
    let names = imagenet::classnames();
    CONCEPT_CLASSES
        .iter()
        .map(|&c| format!("{}\n", names[c]))
        .collect()
}

/// ImageNet's 80 zero-shot templates, one line each (`zeroshot_classification_templates.txt`).
fn imagenet_templates() -> String {
    imagenet::templates()
        .iter()
        .map(|t| format!("{t}\n"))
        .collect()
}

/// One sample of a synthetic evaluation set: its key, JPEG, and label members (`cls`, the
/// `npy` metadata vector).
struct SetSample {
    key: String,
    jpg: Vec<u8>,
    cls: Option<usize>,
    npy: Option<Vec<i64>>,
}

/// Writes a one-shard evaluation set under `dir` in DataComp's layout (the metadata files of
/// `evalset_layout`, `test/nshards.txt`, `test/0.tar` with each sample's `jpg`, `cls` and `npy`
/// members), each file atomically.
fn write_eval_set(
    dir: &Path,
    samples: &[SetSample],
    kind: evalset_layout::DatasetType,
    classes: (&str, &str),
) -> Result<()> {
    let test = dir.join(evalset_layout::DATACOMP_SPLIT);
    std::fs::create_dir_all(&test).with_context(|| format!("creating {}", test.display()))?;
    let mut f = atomic::AtomicFile::create(test.join(evalset_layout::shard_file(0)))?;
    {
        let mut tw = TarSampleWriter::new(&mut f);
        for s in samples {
            let cls = s.cls.map(|c| c.to_string());
            let npy = s.npy.as_deref().map(npy::write_i64_vector);
            let mut members = vec![("jpg", s.jpg.as_slice(), 0)];
            if let Some(c) = &cls {
                members.push(("cls", c.as_bytes(), 0));
            }
            if let Some(m) = &npy {
                members.push(("npy", m.as_slice(), 0));
            }
            tw.append_sample(&s.key, &mut members)?;
        }
        tw.finish()?;
    }
    f.flush()?;
    f.commit()?;
    let metadata = evalset_layout::SetMetadata {
        kind,
        nshards: 1,
        count: samples.len() as u64,
        classes: Some(classes),
    };
    for (name, bytes) in metadata.files(evalset_layout::DATACOMP_SPLIT) {
        atomic::write_atomic(dir.join(name), &bytes)?;
    }
    Ok(())
}

/// Writes the static classification set under `dir` (CLIP_benchmark layout: `classnames.txt`,
/// `zeroshot_classification_templates.txt`, `dataset_type.txt`, `count.txt`,
/// `test/nshards.txt`, `test/0.tar` with `jpg` + `cls` members) and the static tasks'
/// `tasklist.yml`: `synth_static`, then (with `--special-samples`) the special tasks of
/// [`special`], whose sets [`special::write_special_sets`] writes.
pub fn write_static_set(a: &SynthArgs, dir: &Path) -> Result<()> {
    let n = a.static_samples;
    let samples: Vec<SetSample> = (0..n)
        .into_par_iter()
        .map(|i| -> Result<_> {
            let s = static_spec(a, i);
            Ok(SetSample {
                key: format!("s{i:07}"),
                jpg: encode_jpeg(&render(a, &s), a.jpeg_quality)?,
                cls: Some(s.concept),
                npy: None,
            })
        })
        .collect::<Result<_>>()?;
    write_eval_set(
        dir,
        &samples,
        evalset_layout::DatasetType::Classification,
        (&concept_classnames(), &imagenet_templates()),
    )?;
    let mut tasks = format!(
        "{STATIC_TASK_KEY}:\n  name: Synthetic static ({} concepts, all years)\n  size: {n}\n  num_classes: {}\n  tags:\n  - static\n  - classification\n",
        CONCEPT_CLASSES.len(),
        CONCEPT_CLASSES.len()
    );
    if a.special_samples > 0 {
        tasks.push_str(&special::tasklist_entries(a.special_samples));
        tasks.push_str(&hf_sets::tasklist_entries(a.special_samples));
    }
    atomic::write_atomic(dir.join("tasklist.yml"), tasks.as_bytes())?;
    Ok(())
}

/// The caption of a sample.
pub fn caption(a: &SynthArgs, s: &SampleSpec) -> String {
    let names = imagenet::classnames();
    let t = (s.year - a.first_year) as usize;
    let phrase = PHRASES[(2 * t + (s.uid.0 as usize & 1)) % PHRASES.len()];
    format!(
        "{phrase} {} {} {} in the {} on a {} background",
        if s.large { "large" } else { "small" },
        COLORS[s.color].0,
        names[CONCEPT_CLASSES[s.concept]],
        POSITIONS[s.position].0,
        if s.dark { "dark" } else { "light" }
    )
}

/// Whether point (u, v) in [-1, 1]² lies inside glyph `g`.
fn glyph(g: usize, u: f32, v: f32) -> bool {
    let (au, av) = (u.abs(), v.abs());
    let r = (u * u + v * v).sqrt();
    match g % 16 {
        0 => r < 1.0,
        1 => au < 0.85 && av < 0.85,
        2 => v > -0.8 && v < 0.8 && au < (0.8 - v) * 0.6,
        3 => au + av < 1.0,
        4 => au < 0.3 || av < 0.3,
        5 => r < 1.0 && r > 0.55,
        6 => au < 0.9 && av < 0.9 && ((v + 1.0) * 2.5) as i32 % 2 == 0,
        7 => au < 0.9 && av < 0.9 && ((u + 1.0) * 2.5) as i32 % 2 == 0,
        8 => au < 0.9 && av < 0.9 && (((u + 1.0) * 2.0) as i32 + ((v + 1.0) * 2.0) as i32) % 2 == 0,
        9 => (u - v).abs() < 0.35 || (u + v).abs() < 0.35,
        10 => r < 1.0 && v < 0.0,
        11 => (au < 0.3 && v > -0.9 && v < 0.9) || (v > 0.5 && v < 0.9 && u > -0.9 && u < 0.9),
        12 => (au < 0.3 && v > -0.9) || (v < -0.5 && v > -0.9 && au < 0.9),
        13 => au < 0.9 && av < 0.9 && (au > 0.6 || av > 0.6),
        14 => {
            let (fu, fv) = ((u + 1.0) * 1.5, (v + 1.0) * 1.5);
            let (du, dv) = (fu - fu.floor() - 0.5, fv - fv.floor() - 0.5);
            au < 1.0 && av < 1.0 && du * du + dv * dv < 0.1
        }
        _ => r < 1.0 && (v.atan2(u) * 5.0 / std::f32::consts::PI).rem_euclid(2.0) < 1.0,
    }
}

/// Renders a sample's image.
pub fn render(a: &SynthArgs, s: &SampleSpec) -> RgbImage {
    let size = a.image_size;
    let mut rng = sample_rng(a.seed ^ 0x5EED, s.uid.0 as usize);
    let bg: [u8; 3] = if s.dark {
        [45, 45, 55]
    } else {
        [205, 205, 195]
    };
    let fg = COLORS[s.color].1;
    let (_, px, py) = POSITIONS[s.position];
    let half = if s.large { 0.26 } else { 0.16 } * size as f32;
    let t = (s.year - a.first_year) as f32;
    let angle = (s.concept as f32 * 11.0 + 20.0 * t).to_radians();
    let (sin, cos) = angle.sin_cos();
    let (cx, cy) = (px * size as f32, py * size as f32);
    let noise = a.noise as i32;
    RgbImage::from_fn(size, size, |x, y| {
        let (dx, dy) = ((x as f32 + 0.5 - cx) / half, (y as f32 + 0.5 - cy) / half);
        let (u, v) = (cos * dx + sin * dy, -sin * dx + cos * dy);
        let base = if glyph(s.concept, u, v) { fg } else { bg };
        let mut p = [0u8; 3];
        for (k, c) in base.iter().enumerate() {
            let n = if noise > 0 {
                rng.random_range(-noise..=noise)
            } else {
                0
            };
            p[k] = (*c as i32 + n).clamp(0, 255) as u8;
        }
        Rgb(p)
    })
}

fn encode_jpeg(img: &RgbImage, quality: u8) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality.clamp(1, 100))
        .encode_image(img)
        .context("encoding JPEG")?;
    Ok(buf)
}

/// Summary of a generated pool.
#[derive(Debug, Clone, Default)]
pub struct SynthSummary {
    /// Samples per year (all splits).
    pub per_year: BTreeMap<u32, usize>,
    /// Bytes of shard data written.
    pub bytes: u64,
}

fn write_npy(path: &Path, mut uids: Vec<Uid>) -> Result<()> {
    sort_unique(&mut uids);
    atomic::write_atomic(path, &npy::write_uids(&uids))
        .with_context(|| format!("writing {}", path.display()))
}

/// Generates the pool and UID files.
pub fn run(a: &SynthArgs) -> Result<SynthSummary> {
    if a.num_shards == 0 || a.num_samples == 0 || a.num_years == 0 {
        bail!("--num-samples, --num-shards and --num-years must be positive");
    }
    if a.special_samples > 0 && a.static_samples == 0 {
        bail!("--special-samples needs --static-samples: the special tasks are listed in OUT/static/tasklist.yml");
    }
    let pool = a.out.join("pool");
    std::fs::create_dir_all(&pool)?;
    let specs: Vec<SampleSpec> = (0..a.num_samples)
        .into_par_iter()
        .map(|i| sample_spec(a, i))
        .collect();
    let bytes = write_pool(a, &specs, &pool)?;
    let per_year = write_uid_files(a, &specs, &a.out.join("uids"))?;
    let summary = SynthSummary { per_year, bytes };
    if let Some(f) = a.bench_subset {
        write_bench_subset(a, &specs, f)?;
    }
    if a.static_samples > 0 {
        write_static_set(a, &a.out.join("static"))?;
    }
    if a.special_samples > 0 {
        special::write_special_sets(a, &a.out.join(special::SPECIAL_DIR))?;
        hf_sets::write_hf_sets(a, &a.out.join(special::SPECIAL_DIR))?;
    }
    write_manifest(a, &summary)?;
    Ok(summary)
}

/// Writes the pool's shards (in parallel), their `_stats.json` files and `sizes.json` into
/// `pool`; returns the bytes of shard data written.
fn write_pool(a: &SynthArgs, specs: &[SampleSpec], pool: &Path) -> Result<u64> {
    let per_shard = a.num_samples.div_ceil(a.num_shards);
    let pb = crate::cli::progress(a.num_samples as u64, "samples", a.quiet);
    pb.set_message("synth");
    let shard_bytes: Vec<(String, usize, u64)> = (0..a.num_shards)
        .into_par_iter()
        .map(|sh| -> Result<(String, usize, u64)> {
            let lo = (sh * per_shard).min(a.num_samples);
            let hi = ((sh + 1) * per_shard).min(a.num_samples);
            let r = write_pool_shard(a, &specs[lo..hi], sh, per_shard, pool, &pb)?;
            let n = hi - lo;
            // DataComp's download stats (readers use only `successes`).
            let download_stats = json!({
                "count": n, "successes": n, "failed_to_download": 0, "failed_to_resize": 0,
                "duration": 0.0, "start_time": 0.0, "end_time": 0.0, "status_dict": {"success": n},
            });
            atomic::write_atomic(
                pool.join(counts::stats_file_of(&r.0)),
                pyjson::to_string(&download_stats).as_bytes(),
            )?;
            Ok(r)
        })
        .collect::<Result<_>>()?;
    pb.finish_and_clear();
    let sizes = shard_bytes.iter().map(|(n, c, _)| (n.clone(), *c as u64));
    atomic::write_atomic(
        pool.join(counts::SIZES_FILE),
        counts::sizes_json(sizes).as_bytes(),
    )?;
    Ok(shard_bytes.iter().map(|x| x.2).sum())
}

/// Writes pool shard `sh` holding `specs` (`per_shard` samples per shard sets the key width);
/// returns its name, sample count and size in bytes.
fn write_pool_shard(
    a: &SynthArgs,
    specs: &[SampleSpec],
    sh: usize,
    per_shard: usize,
    pool: &Path,
    pb: &indicatif::ProgressBar,
) -> Result<(String, usize, u64)> {
    let idx_width = per_shard.saturating_sub(1).to_string().len().max(4);
    let name = ShardFormat::parse(DATACOMP_SHARD_FORMAT)?.format(sh as u64);
    let mut f = atomic::AtomicFile::create(pool.join(&name))?;
    let mut tw = TarSampleWriter::new(&mut f);
    for (j, s) in specs.iter().enumerate() {
        let key = format!("{sh:08}{j:0idx_width$}");
        let img = render(a, s);
        let jpg = encode_jpeg(&img, a.jpeg_quality)?;
        let cap = caption(a, s);
        let meta = pyjson::to_string(&sample_json(a, s, &key, &cap));
        let mtime = 1_400_000_000 + (s.year as u64 - 2014) * 31_536_000;
        tw.append_sample(
            &key,
            &mut [
                ("jpg", &jpg, mtime),
                ("json", meta.as_bytes(), mtime),
                ("txt", cap.as_bytes(), mtime),
            ],
        )?;
        pb.inc(1);
    }
    tw.finish()?;
    f.flush()?;
    f.commit()?;
    let bytes = std::fs::metadata(pool.join(&name))?.len();
    Ok((name, specs.len(), bytes))
}

/// A pool sample's `json` member (img2dataset's fields plus `tic_synth`, the ground truth).
fn sample_json(a: &SynthArgs, s: &SampleSpec, key: &str, cap: &str) -> serde_json::Value {
    json!({
        "uid": s.uid.to_hex(),
        "url": format!("https://synthetic.tic-rs.invalid/{}/{}.jpg", s.year, s.uid),
        "caption": cap,
        "key": key,
        "status": "success",
        "error_message": null,
        "width": a.image_size,
        "height": a.image_size,
        "original_width": a.image_size,
        "original_height": a.image_size,
        "tic_synth": {
            "year": s.year,
            "month": s.month,
            "class_id": CONCEPT_CLASSES[s.concept],
            "split": SPLITS[s.split as usize],
        },
    })
}

/// Writes the TiC UID files under `uids_dir` (yearly training npy files without eval uids,
/// monthly tars, the retrieval and DataCompNet eval pickles); returns the samples per year.
fn write_uid_files(
    a: &SynthArgs,
    specs: &[SampleSpec],
    uids_dir: &Path,
) -> Result<BTreeMap<u32, usize>> {
    let mut per_year: BTreeMap<u32, usize> = BTreeMap::new();
    let mut yearly: BTreeMap<u32, Vec<Uid>> = BTreeMap::new();
    let mut monthly: BTreeMap<u32, BTreeMap<u32, Vec<Uid>>> = BTreeMap::new();
    let mut retrieval: BTreeMap<String, Vec<Uid>> = BTreeMap::new();
    let mut dcnet: pickle::YearSynsetUids = BTreeMap::new();
    let synsets = imagenet::synsets();
    for s in specs {
        *per_year.entry(s.year).or_default() += 1;
        monthly
            .entry(s.year)
            .or_default()
            .entry(s.month)
            .or_default()
            .push(s.uid);
        match s.split {
            0 => yearly.entry(s.year).or_default().push(s.uid),
            1 => retrieval.entry(s.year.to_string()).or_default().push(s.uid),
            _ => dcnet
                .entry(s.year.to_string())
                .or_default()
                .entry(synsets[CONCEPT_CLASSES[s.concept]].to_string())
                .or_default()
                .push(s.uid),
        }
    }
    for y in a.first_year..a.first_year + a.num_years {
        let uids = yearly.remove(&y).unwrap_or_default();
        write_npy(
            &uids_dir.join(format!("tic-datacomp_training_yearly_noeval/{y}.npy")),
            uids,
        )?;
        write_monthly_tar(
            &uids_dir.join(format!("tic-datacomp_training_monthly/{y}.tar")),
            y,
            monthly.remove(&y).unwrap_or_default(),
        )?;
    }
    atomic::write_atomic(
        uids_dir.join(pickle::RETRIEVAL_PKL),
        &pickle::write_year_uids(&retrieval),
    )?;
    atomic::write_atomic(
        uids_dir.join(pickle::DATACOMPNET_PKL),
        &pickle::write_year_synset_uids(&dcnet),
    )?;
    Ok(per_year)
}

/// Writes year `y`'s monthly uid tar at `path`: `YEAR/YYYYMM.npy` members (sorted, unique).
fn write_monthly_tar(path: &Path, y: u32, months: BTreeMap<u32, Vec<Uid>>) -> Result<()> {
    let mut f = atomic::AtomicFile::create(path)?;
    {
        let mut b = tar::Builder::new(&mut f);
        for (m, uids) in months {
            let mut uids = uids;
            sort_unique(&mut uids);
            let bytes = npy::write_uids(&uids);
            let mut h = tar::Header::new_ustar();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            // As Apple's archives: `tar -xf YEAR.tar -C DIR` gives `DIR/YEAR/YYYYMM.npy`.
            b.append_data(&mut h, format!("{y}/{y}{m:02}.npy"), &bytes[..])?;
        }
        b.finish()?;
    }
    f.commit()?;
    Ok(())
}

/// `--bench-subset F`: `bench_subset.npy` (each sample with probability `f`, plus 100 uids
/// absent from the pool) and `bench_uid2classid.pkl` (its uids -> class ids).
fn write_bench_subset(a: &SynthArgs, specs: &[SampleSpec], f: f64) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed ^ 0xBE4C);
    let mut subset: Vec<Uid> = specs
        .iter()
        .filter(|_| rng.random::<f64>() < f)
        .map(|s| s.uid)
        .collect();
    let classes: BTreeMap<Uid, i64> = specs
        .iter()
        .map(|s| (s.uid, CONCEPT_CLASSES[s.concept] as i64))
        .collect();
    subset.extend((0..100).map(|_| Uid(rng.random::<u128>())));
    sort_unique(&mut subset);
    let classes: BTreeMap<&Uid, &i64> = subset
        .iter()
        .filter_map(|u| classes.get_key_value(u))
        .collect();
    atomic::write_atomic(a.out.join("bench_subset.npy"), &npy::write_uids(&subset))?;
    atomic::write_atomic(
        a.out.join("bench_uid2classid.pkl"),
        &pickle::write_uid_classes(classes),
    )?;
    Ok(())
}

/// The pool's manifest, `OUT/synth.json`.
pub const MANIFEST_FILE: &str = "synth.json";

/// `synth.json`: a pool's settings, its concepts and its per-year counts, as `tic-synth` writes
/// it (pretty-printed, fields in this order) and `tic-report` reads it (its "Data" section).
/// When read, only `seed`, `num_samples`, `first_year` and `num_years` are required (older
/// manifests lack some of the others).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SynthManifest {
    /// Random seed.
    pub seed: u64,
    /// Samples in the pool.
    pub num_samples: u64,
    /// Shards of the pool.
    #[serde(default)]
    pub num_shards: Option<u64>,
    /// First year.
    pub first_year: u32,
    /// Number of years.
    pub num_years: u32,
    /// Image side in pixels.
    #[serde(default)]
    pub image_size: Option<u32>,
    /// Fraction of each year held out for evaluation.
    #[serde(default)]
    pub eval_fraction: Option<f64>,
    /// Samples of the static classification set (`--static-samples`).
    #[serde(default)]
    pub static_samples: Option<u64>,
    /// Samples of each special-task set (`--special-samples`; absent when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub special_samples: Option<u64>,
    /// The concepts drawn, one ImageNet class each.
    #[serde(default)]
    pub concepts: Vec<SynthConcept>,
    /// Samples per year (all splits), keyed by year.
    #[serde(default)]
    pub samples_per_year: BTreeMap<u32, u64>,
    /// Bytes of shard data written.
    #[serde(default)]
    pub bytes: Option<u64>,
}

/// One concept of the pool (an entry of [`SynthManifest::concepts`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SynthConcept {
    /// ImageNet class id.
    pub class_id: usize,
    /// Its WordNet id.
    pub synset: String,
    /// Its CLIP class name.
    pub name: String,
}

impl SynthManifest {
    /// The manifest of the pool `a` generated, with `summary`'s counts.
    pub fn of_pool(a: &SynthArgs, summary: &SynthSummary) -> Self {
        let synsets = imagenet::synsets();
        let names = imagenet::classnames();
        SynthManifest {
            seed: a.seed,
            num_samples: a.num_samples as u64,
            num_shards: Some(a.num_shards as u64),
            first_year: a.first_year,
            num_years: a.num_years,
            image_size: Some(a.image_size),
            eval_fraction: Some(a.eval_fraction),
            static_samples: Some(a.static_samples as u64),
            special_samples: (a.special_samples > 0).then_some(a.special_samples as u64),
            concepts: CONCEPT_CLASSES
                .iter()
                .map(|&c| SynthConcept {
                    class_id: c,
                    synset: synsets[c].to_string(),
                    name: names[c].to_string(),
                })
                .collect(),
            samples_per_year: summary
                .per_year
                .iter()
                .map(|(&y, &n)| (y, n as u64))
                .collect(),
            bytes: Some(summary.bytes),
        }
    }

    /// Reads a `synth.json`.
    pub fn from_path(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// Writes `synth.json` ([`SynthManifest`]).
fn write_manifest(a: &SynthArgs, summary: &SynthSummary) -> Result<()> {
    let manifest = SynthManifest::of_pool(a, summary);
    atomic::write_atomic(
        a.out.join(MANIFEST_FILE),
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> SynthArgs {
        SynthArgs::parse_from(["tic-synth", "--out", "/nonexistent"])
    }

    #[test]
    fn static_set_is_balanced_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args();
        a.out = dir.path().to_path_buf();
        a.static_samples = 40;
        a.image_size = 16;
        write_static_set(&a, dir.path()).unwrap();
        let names = std::fs::read_to_string(dir.path().join("classnames.txt")).unwrap();
        assert_eq!(names.lines().count(), CONCEPT_CLASSES.len());
        let bytes = std::fs::read(dir.path().join("test/0.tar")).unwrap();
        let scan = crate::wds::scan_shard(&bytes, "0.tar");
        assert!(scan.errors.is_empty(), "{:?}", scan.errors);
        assert_eq!(scan.samples.len(), 40);
        let mut per_class = vec![0; CONCEPT_CLASSES.len()];
        for r in &scan.samples {
            let m = r.member("cls").unwrap();
            let (lo, hi) = (m.data_offset as usize, (m.data_offset + m.size) as usize);
            let cls: usize = std::str::from_utf8(&bytes[lo..hi])
                .unwrap()
                .parse()
                .unwrap();
            per_class[cls] += 1;
        }
        assert!(per_class.iter().all(|&c| c == 2 || c == 3), "{per_class:?}");
        let task = std::fs::read_to_string(dir.path().join("tasklist.yml")).unwrap();
        assert!(task.starts_with("synth_static:\n"), "{task}");
        // Deterministic bytes.
        let dir2 = tempfile::tempdir().unwrap();
        write_static_set(&a, dir2.path()).unwrap();
        assert_eq!(
            bytes,
            std::fs::read(dir2.path().join("test/0.tar")).unwrap()
        );
    }

    #[test]
    fn specs_are_deterministic_and_drift() {
        let a = args();
        let s1 = sample_spec(&a, 17);
        let s2 = sample_spec(&a, 17);
        assert_eq!(s1.uid, s2.uid);
        assert_eq!(caption(&a, &s1), caption(&a, &s2));
        // Concept mix changes across years: the last concept is absent in the first year.
        assert_eq!(concept_weight(15, 0, 4), 0.0);
        assert!(concept_weight(15, 3, 4) > 0.5);
        assert!(concept_weight(0, 0, 4) > concept_weight(0, 3, 4));
    }

    #[test]
    fn render_differs_by_year() {
        let a = args();
        let mut s = sample_spec(&a, 3);
        s.concept = 1; // a square: not symmetric under a 40° turn
        let img1 = render(&a, &s);
        s.year += 2;
        let img2 = render(&a, &s);
        assert_eq!(img1.dimensions(), (64, 64));
        assert!(img1 != img2, "the year must change the rendering");
    }
}
