//! Zero-shot metrics, computed exactly as CLIP_benchmark 1.4.0 and DataComp compute them.
//!
//! * [`classification`]: the zero-shot classifier (per-class mean of normalised template
//!   embeddings, renormalised), logits `(100·x̂)·Wᵀ`, top-1/top-5 accuracy and mean per-class
//!   recall (scikit-learn's `balanced_accuracy_score`).
//! * [`retrieval`]: text→image and image→text recall@k with several captions per image
//!   (an image counts as found when *any* of its captions is in its top k) and DataComp's
//!   `mean_recall@1`.
//! * [`restricted`]: accuracy restricted to groups of classes (TiC's restricted ImageNet).
//! * [`fairface`]: DataComp's FairFace / UTKFace multi-label fairness evaluation (race, gender,
//!   age and toxic predictions, grouped accuracies by race and gender).
//! * [`wilds`]: DataComp's group evaluators of iWildCam, Camelyon17, FMoW, Dollar Street and
//!   GeoDE (WILDS' grouped accuracy, macro recall / F1, worst group), over the predictions
//!   and each sample's `npy` metadata.
//! * [`winogavil`]: DataComp's WinoGAViL scores (top-k associations, Jaccard index per
//!   instance, means by number of candidates); its ties follow numpy's `argsort`, not the rule
//!   below.
//!
//! Their errors are [`crate::error::MetricsError`]s.
//!
//! # Ties
//!
//! Every ranking in this module orders candidates by score, descending, and breaks exact
//! ties by the **lower index first** (a stable sort): this is `torch.argmax` and
//! `torch.topk(k=1)` (which keeps the earliest maximum). For `k > 1`, `torch.topk` on CPU does
//! not specify which of several equal values straddling the k-th place it returns (it depends
//! on its heap / selection order), so CLIP_benchmark's own result is arbitrary there; ours is
//! deterministic and always within the "all ties lose" / "all ties win" bounds, as is torch's.
//! CLIP_benchmark's `acc1` is `topk(5)[:, 0]`, arbitrary among values tied for the maximum;
//! ours is the argmax, the prediction that also feeds `mean_per_class_recall`. Exact ties do
//! not occur with real float embeddings; the `cls_ties` / `ret_ties` fixtures pin the rule.

pub mod classification;
pub mod fairface;
pub mod restricted;
pub mod retrieval;
pub mod wilds;
pub mod winogavil;

pub use classification::{ClassificationMetrics, Predictions, ZeroShotClassifier};
pub use restricted::{ClassGroups, RestrictedAccuracy};
pub use retrieval::{RetrievalMetrics, RetrievalRanks};
pub use wilds::{GroupEvaluator, GroupMetrics};
