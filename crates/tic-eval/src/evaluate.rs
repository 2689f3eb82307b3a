//! DataComp `evaluate.py` as a library: a model to evaluate (a training run's, found in its
//! folder by [`crate::run_folder`], or a given weights file), one task of a task list evaluated
//! (embed its WebDataset, compute CLIP_benchmark metrics), embeddings dumped.

use crate::embed::{embed_images, embed_texts, ImageEmbeddings};
use crate::error::MetricsError;
use crate::evalset::{EvalSet, Label, SetKind};
use crate::hf_cache::{cache_root, find_cached, HfSet};
use crate::hf_eval;
use crate::matrix::Matrix;
use crate::metrics::fairface::{self, LabelPrompts};
use crate::metrics::{
    restricted, retrieval, ClassGroups, GroupEvaluator, Predictions, RestrictedAccuracy,
    ZeroShotClassifier,
};
use crate::run_folder::{find_checkpoint, find_model_config};
use crate::tasklist::Task;
use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tic_model::embed::{EmbedOptions, Encoder};
use tic_model::pretrained::{self, HubCache};
use tic_model::ClipConfig;
use tic_shards::atomic::write_file;
use tic_shards::npy;

/// Where a model comes from: its architecture and its weights file.
#[derive(Debug, Clone)]
pub struct ModelSource {
    /// A name for records and messages (`ViT-B-16`, or the model-config file).
    pub arch: String,
    /// The architecture.
    pub config: ClipConfig,
    /// The weights (safetensors, OpenCLIP `.pt` / `.bin`, or HF-layout OpenAI weights): a local
    /// file (a Hub file is its path in the Hugging Face cache) or an object-store URL.
    pub checkpoint: PathBuf,
}

impl ModelSource {
    /// `--use_model` as DataComp's `evaluate.py` takes it (OpenCLIP's names, resolved by
    /// [`tic_model::pretrained`]): `"ARCH PATH"` (a weights file, local or an object-store URL),
    /// `"ARCH TAG"` (an OpenCLIP pretrained tag, e.g. `ViT-B-16 openai`),
    /// `"ARCH hf-hub:ORG/REPO/FILE"` or `"hf-hub:ORG/REPO"` (config and weights of a Hub
    /// repository); Hub files come from the Hugging Face cache, else the Hub. ARCH is a
    /// built-in architecture, or with `config` (`--model-config`) any label.
    pub fn from_use_model(spec: &str, config: Option<&Path>) -> Result<Self> {
        let spec_trimmed = spec.trim();
        let (arch, weights) = match spec_trimmed.split_once(char::is_whitespace) {
            Some((a, w)) => (a, Some(w.trim())),
            None => (spec_trimmed, None),
        };
        if arch.is_empty() {
            bail!(
                "--use_model {spec:?}: expected \"ARCH PATH\", \"ARCH TAG\" or \"hf-hub:ORG/REPO\""
            );
        }
        let config = config.map(ClipConfig::from_json_file).transpose()?;
        let m = pretrained::resolve(arch, weights, config, &HubCache::from_env())
            .with_context(|| format!("--use_model {spec:?}"))?;
        Ok(Self {
            arch: m.name,
            config: m.config,
            checkpoint: m.weights,
        })
    }

    /// The model of a training run (`--train_output_dir`); `config` overrides the run's own.
    pub fn from_train_dir(dir: &Path, config: Option<&Path>) -> Result<Self> {
        if !dir.is_dir() {
            bail!("--train_output_dir {} is not a folder", dir.display());
        }
        let checkpoint = find_checkpoint(dir)?;
        let (arch, config) = match config {
            Some(c) => (c.display().to_string(), ClipConfig::from_json_file(c)?),
            None => find_model_config(dir)?,
        };
        Ok(Self {
            arch,
            config,
            checkpoint,
        })
    }
}

/// Per-run evaluation options.
#[derive(Debug, Clone, Default)]
pub struct TaskOptions {
    /// Batch size and decode threads.
    pub embed: Option<EmbedOptions>,
    /// Class groups for restricted accuracy (added to tasks with a matching class count).
    pub class_groups: Option<ClassGroups>,
    /// Write each task's embeddings and labels under this folder.
    pub dump_dir: Option<PathBuf>,
    /// The last classifier's prompt embeddings, reused by the next task with the same prompts
    /// (TiC's DataCompNet tasks all share ImageNet's 1000 classes × 80 templates).
    pub prompt_cache: PromptCache,
}

/// Remembers the text embeddings of the most recent prompt list (one entry, so memory stays
/// bounded), keyed by a SHA-256 of the prompts. Shared between tasks of one run of one model.
#[derive(Debug, Clone, Default)]
pub struct PromptCache(Arc<Mutex<Option<CachedPrompts>>>);

/// SHA-256 of a prompt list and its embeddings.
type CachedPrompts = ([u8; 32], Arc<Matrix>);

impl PromptCache {
    fn digest(prompts: &[String]) -> [u8; 32] {
        let mut h = Sha256::new();
        for p in prompts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p.as_bytes());
        }
        h.finalize().into()
    }

    /// The embeddings of `prompts`: cached if the previous call had the same prompts, else
    /// computed by `embed` and remembered.
    pub fn get_or_embed(
        &self,
        prompts: &[String],
        embed: impl FnOnce() -> Result<Matrix>,
    ) -> Result<(Arc<Matrix>, bool)> {
        let key = Self::digest(prompts);
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, m)) = slot.as_ref() {
            if *k == key {
                return Ok((m.clone(), true));
            }
        }
        let m = Arc::new(embed()?);
        *slot = Some((key, m.clone()));
        Ok((m, false))
    }
}

/// What one task evaluation produced.
#[derive(Debug, Clone)]
pub struct TaskResult {
    /// The record's `metrics` (without `main_metric`).
    pub metrics: Map<String, Value>,
    /// Number of images evaluated.
    pub num_samples: usize,
    /// Number of texts encoded (prompts or captions).
    pub num_texts: usize,
    /// Seconds spent reading, decoding and encoding the images.
    pub image_secs: f64,
    /// Seconds spent tokenising and encoding the texts.
    pub text_secs: f64,
}

/// The folder name of a task in a dump: its key with `/` → `_`.
pub fn dump_name(key: &str) -> String {
    key.replace('/', "_")
}

fn write_npy(path: &Path, m: &Matrix) -> Result<()> {
    write_file(path, &npy::write_f32_matrix(m.data(), m.rows(), m.cols()))
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    write_file(path, format!("{}\n", serde_json::to_string(v)?).as_bytes())
}

/// Evaluates `task` with `enc` on the set under `data_dir` (DataComp/TiC path rules).
pub fn evaluate_task(
    enc: &dyn Encoder,
    task: &Task,
    data_dir: &Path,
    opts: &TaskOptions,
    progress: &(dyn Fn(&str, usize) + Sync),
) -> Result<TaskResult> {
    let key = task.parsed_key()?;
    let (root, split) = key.data_location(data_dir);
    if let Some(hf) = HfSet::for_key(&task.key) {
        // DataComp reads these from `hf_cache`; a WebDataset copy is read only without one.
        if cache_root(data_dir).is_dir() || !hf.is_retrieval() || !root.is_dir() {
            return evaluate_hf(enc, hf, data_dir, &task.key, opts, progress);
        }
    }
    let expected = if key.is_retrieval() {
        SetKind::Retrieval
    } else if fairface::is_fairface_task(&task.key) {
        SetKind::Multilabel
    } else {
        SetKind::Classification
    };
    let set = EvalSet::open(&root, split, Some(expected))?;
    evaluate_set(enc, &set, &task.key, opts, progress)
}

/// Evaluates `enc` on an opened evaluation set: zero-shot classification (`acc1`, `acc5`,
/// `mean_per_class_recall`, …) or retrieval, by the set's type. `name` labels dumps and logs;
/// when it is the key of a task with a DataComp group evaluator (`wilds/iwildcam`,
/// `wilds/camelyon17`, `wilds/fmow`, `fairness/dollar_street`, `fairness/geode`), that
/// evaluator's fields follow the classification metrics (`metrics::wilds`).
pub fn evaluate_set(
    enc: &dyn Encoder,
    set: &EvalSet,
    name: &str,
    opts: &TaskOptions,
    progress: &(dyn Fn(&str, usize) + Sync),
) -> Result<TaskResult> {
    let eo = embed_options(opts);
    let t0 = std::time::Instant::now();
    let imgs = embed_images(enc, set, eo, &|n| progress("images", n))?;
    let image_secs = t0.elapsed().as_secs_f64();
    if let Some(c) = set.count.filter(|&c| c != imgs.labels.len() as u64) {
        tracing::warn!(
            "{}: count.txt says {c} samples, the shards hold {}",
            set.root.display(),
            imgs.labels.len()
        );
    }
    let dump = opts.dump_dir.as_ref().map(|d| d.join(dump_name(name)));
    if let Some(d) = &dump {
        write_npy(&d.join("image_features.npy"), &imgs.features)?;
    }
    let n = imgs.labels.len();
    let t1 = std::time::Instant::now();
    let result = match set.kind {
        SetKind::Classification => classify(enc, set, &imgs, opts, eo, dump.as_deref(), progress)
            .and_then(|(mut metrics, texts, preds)| {
                metrics.extend(group_metrics(name, &preds, &imgs)?);
                Ok((metrics, texts))
            }),
        SetKind::Retrieval => retrieve(enc, &imgs, eo, dump.as_deref(), progress),
        SetKind::Multilabel => fairface_labels(enc, set, &imgs, eo, progress),
    }
    .with_context(|| format!("task {name} ({})", set.root.display()))?;
    // Text time includes the (small) metric computation.
    let text_secs = t1.elapsed().as_secs_f64();
    tracing::info!(
        "{name}: {n} images in {image_secs:.1} s ({:.2} images/s), {} texts + metrics in {text_secs:.1} s ({:.2} texts/s)",
        n as f64 / image_secs,
        result.1,
        result.1 as f64 / text_secs
    );
    Ok(TaskResult {
        metrics: result.0,
        num_samples: n,
        num_texts: result.1,
        image_secs,
        text_secs,
    })
}

/// DataComp's extra metrics for the five tasks with a group evaluator (WILDS, Dollar Street,
/// GeoDE: `metrics.update(evaluator.eval(...))` after the plain classification metrics);
/// nothing for other tasks. A sample whose metadata the evaluator cannot use is an error
/// naming its shard and key.
fn group_metrics(
    task_key: &str,
    preds: &Predictions,
    imgs: &ImageEmbeddings,
) -> Result<Map<String, Value>> {
    let Some(evaluator) = GroupEvaluator::for_task(task_key) else {
        return Ok(Map::new());
    };
    match evaluator.evaluate(preds, &imgs.metadata) {
        Ok(m) => Ok(m.to_json()),
        Err(MetricsError::Metadata { index, reason }) => {
            bail!("{}: {reason}", imgs.origins[index])
        }
        Err(e) => Err(e.into()),
    }
}

/// Evaluates one of DataComp's Hugging Face sets from `data_dir/hf_cache` ([`crate::hf_cache`],
/// [`crate::hf_eval`]): Flickr / MSCOCO as any retrieval set, WinoGAViL as `wino_eval.py`.
fn evaluate_hf(
    enc: &dyn Encoder,
    hf: HfSet,
    data_dir: &Path,
    name: &str,
    opts: &TaskOptions,
    progress: &(dyn Fn(&str, usize) + Sync),
) -> Result<TaskResult> {
    let set = find_cached(data_dir, hf)?;
    tracing::info!("{name}: reading {}", set.dir.display());
    let eo = embed_options(opts);
    let t0 = std::time::Instant::now();
    if !hf.is_retrieval() {
        let r = hf_eval::evaluate_winogavil(enc, &set, eo, progress)
            .with_context(|| format!("task {name} ({})", set.dir.display()))?;
        return Ok(TaskResult {
            metrics: r.metrics.to_json(),
            num_samples: r.images,
            num_texts: r.prompts,
            image_secs: r.image_secs,
            text_secs: r.text_secs,
        });
    }
    let imgs = hf_eval::embed_retrieval_images(enc, &set, eo, &|n| progress("images", n))?;
    let image_secs = t0.elapsed().as_secs_f64();
    let dump = opts.dump_dir.as_ref().map(|d| d.join(dump_name(name)));
    if let Some(d) = &dump {
        write_npy(&d.join("image_features.npy"), &imgs.features)?;
    }
    let t1 = std::time::Instant::now();
    let (metrics, num_texts) = retrieve(enc, &imgs, eo, dump.as_deref(), progress)
        .with_context(|| format!("task {name} ({})", set.dir.display()))?;
    Ok(TaskResult {
        metrics,
        num_samples: imgs.labels.len(),
        num_texts,
        image_secs,
        text_secs: t1.elapsed().as_secs_f64(),
    })
}

/// The embedding options of a run (DataComp's defaults: batch 64, 4 workers).
fn embed_options(opts: &TaskOptions) -> EmbedOptions {
    opts.embed.unwrap_or(EmbedOptions {
        batch_size: 64,
        num_workers: 4,
    })
}

fn classify(
    enc: &dyn Encoder,
    set: &EvalSet,
    imgs: &ImageEmbeddings,
    opts: &TaskOptions,
    eo: EmbedOptions,
    dump: Option<&Path>,
    progress: &(dyn Fn(&str, usize) + Sync),
) -> Result<(Map<String, Value>, usize, Predictions)> {
    let prompts = set.prompts();
    let (text, cached) = opts.prompt_cache.get_or_embed(&prompts, || {
        embed_texts(enc, &prompts, eo.batch_size, &|n| progress("prompts", n))
    })?;
    if cached {
        tracing::debug!(
            "{}: prompt embeddings reused from the previous task",
            set.root.display()
        );
    }
    let targets: Vec<usize> = imgs
        .labels
        .iter()
        .map(|l| match l {
            Label::Class(c) => *c,
            Label::Captions(_) | Label::Metadata => {
                unreachable!("classification sets carry class labels")
            }
        })
        .collect();
    if let Some(d) = dump {
        write_npy(&d.join("text_features.npy"), &text)?;
        write_json(
            &d.join("labels.json"),
            &serde_json::json!({"kind": "classification", "targets": targets,
                "templates_per_class": set.templates.len(), "origins": imgs.origins}),
        )?;
    }
    let clf = ZeroShotClassifier::from_flat(&text, set.templates.len())?;
    let preds = clf.predict(&imgs.features, &targets)?;
    let mut metrics = preds.metrics()?.to_json();
    if let Some(g) = &opts.class_groups {
        if g.check_num_classes(clf.num_classes()).is_ok() {
            let r = restricted::evaluate(&clf, &imgs.features, &targets, g)?;
            metrics.extend(RestrictedAccuracy::to_json(&r));
        }
    }
    Ok((metrics, prompts.len(), preds))
}

/// DataComp's FairFace / UTKFace evaluation (`metrics::fairface`): each of the four labels'
/// prompts embedded and turned into a zero-shot classifier, every image's argmax per label,
/// the grouped fairness metrics. No `acc1`: the record's main metric is `null`.
fn fairface_labels(
    enc: &dyn Encoder,
    set: &EvalSet,
    imgs: &ImageEmbeddings,
    eo: EmbedOptions,
    progress: &(dyn Fn(&str, usize) + Sync),
) -> Result<(Map<String, Value>, usize)> {
    let source = set.root.display().to_string();
    let labels = LabelPrompts::from_set(&set.classnames, &set.templates, &source)?;
    let meta = fairface::metadata_rows(&imgs.metadata, &imgs.origins)?;
    let mut preds = vec![[0i64; 4]; meta.len()];
    let mut texts = 0;
    for (l, label) in labels.iter().enumerate() {
        let prompts = label.prompts();
        let text = embed_texts(enc, &prompts, eo.batch_size, &|n| progress("prompts", n))?;
        texts += prompts.len();
        let clf = ZeroShotClassifier::from_flat(&text, label.templates.len())?;
        for (row, c) in preds.iter_mut().zip(clf.argmax(&imgs.features)?) {
            row[l] = c as i64;
        }
    }
    Ok((fairface::evaluate(&preds, &meta)?, texts))
}

fn retrieve(
    enc: &dyn Encoder,
    imgs: &ImageEmbeddings,
    eo: EmbedOptions,
    dump: Option<&Path>,
    progress: &(dyn Fn(&str, usize) + Sync),
) -> Result<(Map<String, Value>, usize)> {
    let mut captions = Vec::new();
    let mut index = Vec::new();
    for (i, l) in imgs.labels.iter().enumerate() {
        if let Label::Captions(c) = l {
            index.extend(std::iter::repeat_n(i, c.len()));
            captions.extend(c.iter().cloned());
        }
    }
    if captions.is_empty() {
        bail!("no captions: every sample's `txt` is empty");
    }
    let text = embed_texts(enc, &captions, eo.batch_size, &|n| progress("captions", n))?;
    if let Some(d) = dump {
        write_npy(&d.join("text_features.npy"), &text)?;
        write_json(
            &d.join("labels.json"),
            &serde_json::json!({"kind": "retrieval", "text_image_index": index,
                "captions": captions, "origins": imgs.origins}),
        )?;
    }
    let m = retrieval::evaluate(&imgs.features, &text, &index)?;
    Ok((m.to_json(), captions.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_cache_reuses_only_identical_prompts() {
        let cache = PromptCache::default();
        let calls = std::cell::Cell::new(0);
        let embed = |v: f32| {
            calls.set(calls.get() + 1);
            Ok(Matrix::new(1, 1, vec![v]).unwrap())
        };
        let p = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (a, hit) = cache
            .get_or_embed(&p(&["a cat", "a dog"]), || embed(1.0))
            .unwrap();
        assert!(!hit);
        let (b, hit) = cache
            .get_or_embed(&p(&["a cat", "a dog"]), || embed(2.0))
            .unwrap();
        assert!(hit);
        assert!(Arc::ptr_eq(&a, &b));
        // Same concatenation, different split: not the same prompts.
        let (c, hit) = cache
            .get_or_embed(&p(&["a ca", "ta dog"]), || embed(3.0))
            .unwrap();
        assert!(!hit);
        assert_eq!(c.row(0), &[3.0]);
        // Only the latest entry is kept.
        let (_, hit) = cache
            .get_or_embed(&p(&["a cat", "a dog"]), || embed(4.0))
            .unwrap();
        assert!(!hit);
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn use_model_spec() {
        let d = tempfile::tempdir().unwrap();
        let w = d.path().join("w.safetensors");
        std::fs::write(&w, b"").unwrap();
        let m = ModelSource::from_use_model(&format!("ViT-B-32 {}", w.display()), None).unwrap();
        assert_eq!(m.arch, "ViT-B-32");
        assert!(ModelSource::from_use_model("ViT-B-32", None).is_err());
        let err = format!(
            "{:#}",
            ModelSource::from_use_model(&format!("NoSuch {}", w.display()), None).unwrap_err()
        );
        assert!(err.contains("--model-config"), "{err}");
        // A path with spaces stays one PATH.
        let spaced = d.path().join("my weights.safetensors");
        std::fs::write(&spaced, b"").unwrap();
        let m = ModelSource::from_use_model(&format!(" ViT-B-16  {} ", spaced.display()), None)
            .unwrap();
        assert_eq!(m.checkpoint, spaced);
        // Neither a file nor a tag: the error lists the architecture's tags.
        let err = format!(
            "{:#}",
            ModelSource::from_use_model("ViT-B-32 no_such_tag", None).unwrap_err()
        );
        assert!(
            err.contains("--use_model") && err.contains("datacomp_xl_s13b_b90k"),
            "{err}"
        );
    }
}
