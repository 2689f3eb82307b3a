//! `tic-eval`'s command line: DataComp `evaluate.py`'s flags (with the TiC patch) and tic-rs's
//! own. The help text is the doc comments below; [`crate::run`] carries the run out.

use std::path::PathBuf;

use clap::Parser;

/// Zero-shot evaluation of a CLIP model on DataComp / TiC-CLIP tasks (DataComp evaluate.py).
///
/// The model is either a training run (--train_output_dir DIR: the checkpoint is
/// DIR/checkpoints/epoch_latest.safetensors, else the highest DIR/checkpoints/epoch_N.{safetensors,pt};
/// the architecture is DIR/model_config.json, DIR/info.json {"model": NAME} or DIR/params.txt)
/// or --use_model "ARCH PATH" (also OpenCLIP's "ARCH TAG", e.g. "ViT-B-16 openai", and
/// "hf-hub:ORG/REPO").
///
/// Task keys tic/{datacomp,yfcc15m,redcaps}/{retrieval,datacompnet}/{yearly,monthly}/{YYYY|YYYYMM}
/// read DATA_DIR/tic/{ds}/{timescale}/eval/{retrieval|datacompnet}/{split}/; any other key K
/// reads DATA_DIR/wds_{K with / -> -}_test/test/ (DataComp; fairness/X reads wds_X_test). Each set is a CLIP_benchmark
/// WebDataset (nshards.txt, 0.tar.., dataset_type.txt, classnames.txt,
/// zeroshot_classification_templates.txt, count.txt), as tic-wds-convert writes it.
///
/// Results: one JSON line per task appended to OUTPUT_DIR/eval_results.jsonl; tasks whose name
/// already has a record are skipped. A failing task is reported (and logged to
/// OUTPUT_DIR/eval_failures.jsonl) without losing the others; the exit status is then 1.
/// A fatal error (bad arguments, model, output folder) exits with status 2.
///
/// Several processes (a build with --features mpi): `mpirun -np W tic-eval ...` deals the
/// pending tasks to the ranks in turn (pending task i to rank i mod W), W at a time; after each
/// round rank 0 appends the records in task-list order, as one process would, and alone writes
/// the output folder. Each rank uses cores/W compute threads unless RAYON_NUM_THREADS is set;
/// --device cuda means cuda:LOCAL_RANK.
///
/// Example:
///
///   tic-eval --train_output_dir runs/tic_medium/2016 --data_dir data --tasklist tasklist.yml
///   tic-eval --use_model "ViT-B-16 epoch_8.pt" --output_dir results/2016 --batch_size 128
///   tic-eval --use_model "ViT-B-16 openai" --output_dir results/openai
#[derive(Debug, Parser)]
#[command(name = "tic-eval", version, verbatim_doc_comment)]
pub struct EvalArgs {
    /// Training run folder (local): model source and default --output_dir.
    #[arg(
        long = "train_output_dir",
        alias = "train-output-dir",
        value_name = "DIR"
    )]
    pub train_output_dir: Option<PathBuf>,

    /// The model, as DataComp's evaluate.py / OpenCLIP name it: "ARCH PATH", "ARCH TAG",
    /// "ARCH hf-hub:ORG/REPO/FILE" or "hf-hub:ORG/REPO". ARCH: a built-in architecture
    /// (ViT-B-16, ViT-B-32, ViT-L-14, a -quickgelu variant, tiny-test). PATH: a weights file
    /// (safetensors, OpenCLIP epoch_N.pt / .bin, or OpenAI weights in the Hugging Face layout),
    /// local or an object-store URL. TAG: an OpenCLIP pretrained tag of ARCH (openai,
    /// datacomp_xl_s13b_b90k, laion2b_s34b_b88k, ...; a wrong one lists them), read from the
    /// tag's Hub repository (QuickGELU when the tag's weights use it). hf-hub:ORG/REPO: the
    /// repository's open_clip_config.json and weights; hf-hub:ORG/REPO/FILE: one file (e.g.
    /// a TiC-CLIP checkpoints/2016.pt). Hub files come from the Hugging Face cache (HF_HUB_CACHE,
    /// else HF_HOME/hub, else ~/.cache/huggingface/hub), else are downloaded into it
    /// (HF_ENDPOINT); HF_HUB_OFFLINE=1 never downloads. Overrides --train_output_dir's
    /// checkpoint.
    #[arg(
        long = "use_model",
        alias = "use-model",
        value_name = "\"ARCH PATH|TAG\""
    )]
    pub use_model: Option<String>,

    /// OpenCLIP model-config JSON for a custom architecture (replaces ARCH / the run's config).
    #[arg(long = "model-config", alias = "model_config", value_name = "FILE")]
    pub model_config: Option<PathBuf>,

    /// Root of the evaluation sets: a folder, an object-store URL, or a `pipe:` template with
    /// `{}` where each file's path under the root goes, e.g. `pipe:aws s3 cp s3://b/eval/{} -`
    /// (each task's set is downloaded or streamed before it is evaluated, and deleted after).
    #[arg(
        long = "data_dir",
        alias = "data-dir",
        value_name = "DIR",
        default_value = "eval_data"
    )]
    pub data_dir: PathBuf,

    /// The task list (tic-tasklist / DataComp tasklist.yml), local or an object-store URL.
    #[arg(long, value_name = "FILE", default_value = "tasklist.yml")]
    pub tasklist: PathBuf,

    /// Only these task keys (default: every task of the list).
    #[arg(long, value_name = "KEY", num_args = 1..)]
    pub tasks: Vec<String>,

    /// Where eval_results.jsonl goes (default: --train_output_dir): a folder, or an
    /// object-store URL (previous results are downloaded to resume; results are uploaded after
    /// every task).
    #[arg(long = "output_dir", alias = "output-dir", value_name = "DIR")]
    pub output_dir: Option<PathBuf>,

    /// Images / texts per forward pass.
    #[arg(long = "batch_size", alias = "batch-size", default_value_t = 64)]
    pub batch_size: usize,

    /// Threads that read shards and decode images while the model runs.
    #[arg(long = "num_workers", alias = "num-workers", default_value_t = 4)]
    pub num_workers: usize,

    /// Device: cpu or cuda[:N] (needs the `cuda` feature of tic-model); under mpirun, `cuda`
    /// is cuda:LOCAL_RANK.
    #[arg(long, default_value = "cpu")]
    pub device: String,

    /// Class groups JSON of tic-restricted-classes: adds restricted_acc1/{group} metrics to
    /// classification tasks with that many classes (ImageNet, DataCompNet).
    #[arg(long = "class-groups", value_name = "FILE")]
    pub class_groups: Option<PathBuf>,

    /// Also write each task's embeddings and labels to DIR/{key with / -> _}/
    /// (image_features.npy, text_features.npy, labels.json), e.g. for external checks.
    #[arg(long = "dump-embeddings", value_name = "DIR")]
    pub dump_embeddings: Option<PathBuf>,

    /// Print the per-task summary as JSON lines on stdout instead of the Markdown table: one
    /// object per selected task, in task-list order, {"key", "dataset", "status" (done,
    /// skipped, failed), "main_metric", "metrics" (the task's record, also for tasks done
    /// before), "samples", "seconds", "images_per_s", "texts_per_s", "error"}; the results
    /// path goes to stderr. For `tic-eval --json | jq …`.
    #[arg(long)]
    pub json: bool,

    /// Accepted for compatibility with DataComp's evaluate.py; ignored.
    #[arg(long = "skip_hf", hide = true)]
    pub skip_hf: bool,
    /// Accepted for compatibility with DataComp's evaluate.py; ignored.
    #[arg(long = "skip_db", hide = true)]
    pub skip_db: bool,
    /// Accepted for compatibility with DataComp's evaluate.py; ignored.
    #[arg(long = "skip_notification", hide = true)]
    pub skip_notification: bool,

    /// Less output (no progress bars); repeat for errors only.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub quiet: u8,
    /// More log output.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}
