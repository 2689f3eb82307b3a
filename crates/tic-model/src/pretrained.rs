//! Pretrained models as OpenCLIP names them: `ARCH TAG` (a pretrained tag of a built-in
//! architecture, e.g. `ViT-B-16 openai`) and `hf-hub:ORG/REPO` (a Hub repository holding
//! `open_clip_config.json` and the weights), resolved to a [`ClipConfig`] and a local weights file
//! through the Hugging Face cache.
//!
//! DataComp's `evaluate.py --use_model "ARCH X"` hands `X` to
//! `open_clip.create_model_and_transforms(ARCH, pretrained=X)`, so TiC-CLIP's README evaluates
//! `--use_model "ViT-B-16 openai"`; tic-eval and tic-embed resolve the same names here, once.
//!
//! The tag table ([`PRETRAINED_TAGS`]) is OpenCLIP's registry (`src/open_clip/pretrained.py` at
//! commit 89fb801, version 4.2.0.dev0) for the architectures tic-model builds: each tag's Hub
//! repository (the `hf_hub` entry), whether its weights were trained with QuickGELU, and whether
//! its preprocessing is OpenAI's. The weights file follows OpenCLIP's `download_pretrained_from_hf`:
//! `open_clip_model.safetensors` first, else `open_clip_pytorch_model.bin` (a torch zip state dict);
//! [`crate::checkpoint::load_state_dict`] reads both.
//!
//! Files come from the cache first, laid out as `huggingface_hub` lays it out
//! (`models--ORG--REPO/{refs/main, snapshots/<commit>/FILE, blobs/}`; the folder from
//! `HF_HUB_CACHE`, `HUGGINGFACE_HUB_CACHE`, `HF_HOME`/hub, `XDG_CACHE_HOME`/huggingface/hub or
//! ~/.cache/huggingface/hub, in that order). `HF_HUB_OFFLINE=1` (or `TRANSFORMERS_OFFLINE=1`)
//! never touches the network; otherwise a file missing from the cache is downloaded into it with
//! the `hf-hub` crate (endpoint `HF_ENDPOINT`; needs the `remote` feature).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::config::{ClipConfig, BUILTIN_MODELS};

/// The prefix OpenCLIP gives a Hub repository as a model name (`hf-hub:ORG/REPO`).
pub const HF_HUB_PREFIX: &str = "hf-hub:";
/// OpenCLIP's model-config file in a Hub repository (`{"model_cfg": …, "preprocess_cfg": …}`).
pub const HF_CONFIG_NAME: &str = "open_clip_config.json";
/// OpenCLIP's default weights file in a Hub repository (a torch zip state dict).
pub const HF_WEIGHTS_NAME: &str = "open_clip_pytorch_model.bin";
/// The safetensors file OpenCLIP prefers to [`HF_WEIGHTS_NAME`] when the repository has it.
pub const HF_SAFE_WEIGHTS_NAME: &str = "open_clip_model.safetensors";

/// One pretrained tag of an architecture, as OpenCLIP's registry maps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PretrainedTag {
    /// The architecture (OpenCLIP model name without `-quickgelu`).
    pub arch: &'static str,
    /// The tag (lower case, `_` separated; OpenCLIP also accepts `-` and upper case).
    pub tag: &'static str,
    /// `ORG/REPO/` (weights: the default file) or `ORG/REPO/FILE`.
    pub hf_hub: &'static str,
    /// The weights were trained with QuickGELU (OpenCLIP's `quick_gelu=True`).
    pub quick_gelu: bool,
    /// Preprocessing is OpenAI's mean/std, bicubic, shortest-side resize (tic-model's only one).
    pub openai_preprocess: bool,
}

const fn tag(
    arch: &'static str,
    tag: &'static str,
    hf_hub: &'static str,
    quick_gelu: bool,
) -> PretrainedTag {
    PretrainedTag {
        arch,
        tag,
        hf_hub,
        quick_gelu,
        openai_preprocess: true,
    }
}

/// OpenCLIP's pretrained tags for ViT-B-32, ViT-B-16 and ViT-L-14 (see the module doc for the
/// version), plus one test-only tag: `tiny-test hubtest` (the random tiny model of tic-model's
/// tests, in a repository that exists only in the tests' cache folders).
#[rustfmt::skip]
pub const PRETRAINED_TAGS: &[PretrainedTag] = &[
    tag("ViT-B-32", "openai", "timm/vit_base_patch32_clip_224.openai/", true),
    tag("ViT-B-32", "laion400m_e31", "timm/vit_base_patch32_clip_224.laion400m_e31/", true),
    tag("ViT-B-32", "laion400m_e32", "timm/vit_base_patch32_clip_224.laion400m_e32/", true),
    tag("ViT-B-32", "laion2b_e16", "timm/vit_base_patch32_clip_224.laion2b_e16/", false),
    tag("ViT-B-32", "laion2b_s34b_b79k", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K/", false),
    tag("ViT-B-32", "datacomp_xl_s13b_b90k", "laion/CLIP-ViT-B-32-DataComp.XL-s13B-b90K/", false),
    tag("ViT-B-32", "datacomp_m_s128m_b4k", "laion/CLIP-ViT-B-32-DataComp.M-s128M-b4K/", false),
    tag("ViT-B-32", "commonpool_m_clip_s128m_b4k", "laion/CLIP-ViT-B-32-CommonPool.M.clip-s128M-b4K/", false),
    tag("ViT-B-32", "commonpool_m_laion_s128m_b4k", "laion/CLIP-ViT-B-32-CommonPool.M.laion-s128M-b4K/", false),
    tag("ViT-B-32", "commonpool_m_image_s128m_b4k", "laion/CLIP-ViT-B-32-CommonPool.M.image-s128M-b4K/", false),
    tag("ViT-B-32", "commonpool_m_text_s128m_b4k", "laion/CLIP-ViT-B-32-CommonPool.M.text-s128M-b4K/", false),
    tag("ViT-B-32", "commonpool_m_basic_s128m_b4k", "laion/CLIP-ViT-B-32-CommonPool.M.basic-s128M-b4K/", false),
    tag("ViT-B-32", "commonpool_m_s128m_b4k", "laion/CLIP-ViT-B-32-CommonPool.M-s128M-b4K/", false),
    tag("ViT-B-32", "datacomp_s_s13m_b4k", "laion/CLIP-ViT-B-32-DataComp.S-s13M-b4K/", false),
    tag("ViT-B-32", "commonpool_s_clip_s13m_b4k", "laion/CLIP-ViT-B-32-CommonPool.S.clip-s13M-b4K/", false),
    tag("ViT-B-32", "commonpool_s_laion_s13m_b4k", "laion/CLIP-ViT-B-32-CommonPool.S.laion-s13M-b4K/", false),
    tag("ViT-B-32", "commonpool_s_image_s13m_b4k", "laion/CLIP-ViT-B-32-CommonPool.S.image-s13M-b4K/", false),
    tag("ViT-B-32", "commonpool_s_text_s13m_b4k", "laion/CLIP-ViT-B-32-CommonPool.S.text-s13M-b4K/", false),
    tag("ViT-B-32", "commonpool_s_basic_s13m_b4k", "laion/CLIP-ViT-B-32-CommonPool.S.basic-s13M-b4K/", false),
    tag("ViT-B-32", "commonpool_s_s13m_b4k", "laion/CLIP-ViT-B-32-CommonPool.S-s13M-b4K/", false),
    tag("ViT-B-32", "metaclip_400m", "timm/vit_base_patch32_clip_224.metaclip_400m/", true),
    tag("ViT-B-32", "metaclip_fullcc", "timm/vit_base_patch32_clip_224.metaclip_2pt5b/", true),
    tag("ViT-B-16", "openai", "timm/vit_base_patch16_clip_224.openai/", true),
    tag("ViT-B-16", "laion400m_e31", "timm/vit_base_patch16_clip_224.laion400m_e31/", false),
    tag("ViT-B-16", "laion400m_e32", "timm/vit_base_patch16_clip_224.laion400m_e32/", false),
    tag("ViT-B-16", "laion2b_s34b_b88k", "laion/CLIP-ViT-B-16-laion2B-s34B-b88K/", false),
    tag("ViT-B-16", "datacomp_xl_s13b_b90k", "laion/CLIP-ViT-B-16-DataComp.XL-s13B-b90K/", false),
    tag("ViT-B-16", "datacomp_l_s1b_b8k", "laion/CLIP-ViT-B-16-DataComp.L-s1B-b8K/", false),
    tag("ViT-B-16", "commonpool_l_clip_s1b_b8k", "laion/CLIP-ViT-B-16-CommonPool.L.clip-s1B-b8K/", false),
    tag("ViT-B-16", "commonpool_l_laion_s1b_b8k", "laion/CLIP-ViT-B-16-CommonPool.L.laion-s1B-b8K/", false),
    tag("ViT-B-16", "commonpool_l_image_s1b_b8k", "laion/CLIP-ViT-B-16-CommonPool.L.image-s1B-b8K/", false),
    tag("ViT-B-16", "commonpool_l_text_s1b_b8k", "laion/CLIP-ViT-B-16-CommonPool.L.text-s1B-b8K/", false),
    tag("ViT-B-16", "commonpool_l_basic_s1b_b8k", "laion/CLIP-ViT-B-16-CommonPool.L.basic-s1B-b8K/", false),
    tag("ViT-B-16", "commonpool_l_s1b_b8k", "laion/CLIP-ViT-B-16-CommonPool.L-s1B-b8K/", false),
    tag("ViT-B-16", "dfn2b", "apple/DFN2B-CLIP-ViT-B-16/", true),
    tag("ViT-B-16", "metaclip_400m", "timm/vit_base_patch16_clip_224.metaclip_400m/", true),
    tag("ViT-B-16", "metaclip_fullcc", "timm/vit_base_patch16_clip_224.metaclip_2pt5b/", true),
    tag("ViT-L-14", "openai", "timm/vit_large_patch14_clip_224.openai/", true),
    tag("ViT-L-14", "laion400m_e31", "timm/vit_large_patch14_clip_224.laion400m_e31/", false),
    tag("ViT-L-14", "laion400m_e32", "timm/vit_large_patch14_clip_224.laion400m_e32/", false),
    // Normalised with the Inception mean/std (0.5) in OpenCLIP.
    PretrainedTag {
        arch: "ViT-L-14",
        tag: "laion2b_s32b_b82k",
        hf_hub: "laion/CLIP-ViT-L-14-laion2B-s32B-b82K/",
        quick_gelu: false,
        openai_preprocess: false,
    },
    tag("ViT-L-14", "datacomp_xl_s13b_b90k", "laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K/", false),
    tag("ViT-L-14", "commonpool_xl_clip_s13b_b90k", "laion/CLIP-ViT-L-14-CommonPool.XL.clip-s13B-b90K/", false),
    tag("ViT-L-14", "commonpool_xl_laion_s13b_b90k", "laion/CLIP-ViT-L-14-CommonPool.XL.laion-s13B-b90K/", false),
    tag("ViT-L-14", "commonpool_xl_s13b_b90k", "laion/CLIP-ViT-L-14-CommonPool.XL-s13B-b90K/", false),
    tag("ViT-L-14", "metaclip_400m", "timm/vit_large_patch14_clip_224.metaclip_400m/", true),
    tag("ViT-L-14", "metaclip_fullcc", "timm/vit_large_patch14_clip_224.metaclip_2pt5b/", true),
    tag("ViT-L-14", "dfn2b", "apple/DFN2B-CLIP-ViT-L-14/", true),
    tag("ViT-L-14", "dfn2b_s39b", "apple/DFN2B-CLIP-ViT-L-14-39B/", false),
    // Test only: tic-model's random tiny model (no such repository on the Hub).
    tag("tiny-test", "hubtest", "tic-rs/tiny-test-clip/", false),
];

/// OpenCLIP's tag normalisation: lower case, `-` → `_`.
fn clean_tag(tag: &str) -> String {
    tag.to_lowercase().replace('-', "_")
}

/// The tags `arch` takes: those of its base architecture; a `-quickgelu` name takes only the
/// QuickGELU-trained ones (OpenCLIP registers exactly those under `ARCH-quickgelu`).
pub fn tags_for(arch: &str) -> Vec<&'static PretrainedTag> {
    let (base, quick_only) = match arch.strip_suffix("-quickgelu") {
        Some(b) => (b, true),
        None => (arch, false),
    };
    PRETRAINED_TAGS
        .iter()
        .filter(|t| t.arch == base && (!quick_only || t.quick_gelu))
        .collect()
}

/// The pretrained tag `tag` of `arch` (normalised as OpenCLIP does), if it is one.
pub fn find_tag(arch: &str, tag: &str) -> Option<&'static PretrainedTag> {
    let tag = clean_tag(tag);
    tags_for(arch).into_iter().find(|t| t.tag == tag)
}

impl PretrainedTag {
    /// The Hub repository id (`ORG/REPO`).
    pub fn repo(&self) -> &'static str {
        self.hf_hub
            .rsplit_once('/')
            .map_or(self.hf_hub, |(repo, _)| repo)
    }

    /// The weights files to look for, in OpenCLIP's order: the safetensors alternative first.
    pub fn weight_files(&self) -> Vec<String> {
        let file = self.hf_hub.rsplit_once('/').map_or("", |(_, f)| f);
        weight_candidates(if file.is_empty() {
            HF_WEIGHTS_NAME
        } else {
            file
        })
    }
}

/// OpenCLIP's `_get_safe_alternatives` then the file itself: `open_clip_pytorch_model.bin` →
/// `open_clip_model.safetensors`; another `.bin` / `.pth` → the same stem `.safetensors`.
pub fn weight_candidates(file: &str) -> Vec<String> {
    let safe = if file == HF_WEIGHTS_NAME {
        Some(HF_SAFE_WEIGHTS_NAME.to_string())
    } else {
        file.strip_suffix(".bin")
            .or_else(|| file.strip_suffix(".pth"))
            .map(|stem| format!("{stem}.safetensors"))
    };
    safe.into_iter().chain([file.to_string()]).collect()
}

/// Where Hub files are looked up and (when online) downloaded to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubCache {
    /// The hub cache folder (the one holding `models--ORG--REPO`).
    pub dir: PathBuf,
    /// Never use the network (`HF_HUB_OFFLINE`).
    pub offline: bool,
    /// The Hub endpoint (`HF_ENDPOINT`), default `https://huggingface.co`.
    pub endpoint: Option<String>,
}

/// `huggingface_hub`'s truth test of an environment flag.
fn env_flag(v: Option<String>) -> bool {
    v.is_some_and(|v| {
        matches!(
            v.trim().to_uppercase().as_str(),
            "1" | "ON" | "YES" | "TRUE"
        )
    })
}

impl HubCache {
    /// The cache as `huggingface_hub` finds it from the environment (see the module doc).
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// [`Self::from_env`] with the variables read by `var` (for tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let dir = var("HF_HUB_CACHE")
            .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
                    var("XDG_CACHE_HOME")
                        .map(PathBuf::from)
                        .unwrap_or_else(|| {
                            PathBuf::from(var("HOME").unwrap_or_default()).join(".cache")
                        })
                        .join("huggingface")
                });
                home.join("hub")
            });
        Self {
            dir,
            offline: env_flag(var("HF_HUB_OFFLINE")) || env_flag(var("TRANSFORMERS_OFFLINE")),
            endpoint: var("HF_ENDPOINT"),
        }
    }

    /// A repository's folder in the cache (`models--ORG--REPO`).
    pub fn repo_dir(&self, repo: &str) -> PathBuf {
        self.dir
            .join(format!("models--{}", repo.replace('/', "--")))
    }

    /// `file` of `repo` at `main` if the cache holds it.
    pub fn cached(&self, repo: &str, file: &str) -> Option<PathBuf> {
        let cache = hf_hub::Cache::new(self.dir.clone());
        cache.model(repo.to_string()).get(file)
    }

    /// The first of `files` of `repo` (at `main`): from the cache if any of them is there, else
    /// downloaded (trying each in turn) unless offline. The error names the repository, the
    /// files and the cache folder.
    pub fn fetch(&self, repo: &str, files: &[String]) -> Result<PathBuf> {
        check_repo_id(repo)?;
        if let Some(p) = files.iter().find_map(|f| self.cached(repo, f)) {
            return Ok(p);
        }
        let missing = || {
            format!(
                "{HF_HUB_PREFIX}{repo}: no {} in the Hugging Face cache {} (looked for \
                 snapshots/<refs/main>/FILE there)",
                files.join(" or "),
                self.repo_dir(repo).display()
            )
        };
        if self.offline {
            bail!(
                "{}; HF_HUB_OFFLINE is set, so nothing is downloaded",
                missing()
            );
        }
        self.download(repo, files).with_context(missing)
    }

    #[cfg(feature = "remote")]
    fn download(&self, repo: &str, files: &[String]) -> Result<PathBuf> {
        let mut builder =
            hf_hub::api::sync::ApiBuilder::from_cache(hf_hub::Cache::new(self.dir.clone()));
        if let Some(e) = &self.endpoint {
            builder = builder.with_endpoint(e.clone());
        }
        let api = builder
            .build()
            .context("starting the Hugging Face Hub client")?;
        let api_repo = api.model(repo.to_string());
        let mut errors = Vec::new();
        for f in files {
            tracing::info!("downloading {f} of {repo} into {}", self.dir.display());
            match api_repo.download(f) {
                Ok(p) => return Ok(p),
                Err(e) => errors.push(format!("{f}: {e}")),
            }
        }
        bail!("download failed: {}", errors.join("; "))
    }

    #[cfg(not(feature = "remote"))]
    fn download(&self, _repo: &str, _files: &[String]) -> Result<PathBuf> {
        bail!("this build has no `remote` feature: Hub files are read from the cache only")
    }
}

/// A Hub repository id must be `ORG/REPO` (or a bare `REPO`), without empty parts.
fn check_repo_id(repo: &str) -> Result<()> {
    let parts: Vec<&str> = repo.split('/').collect();
    if parts.len() > 2
        || parts
            .iter()
            .any(|p| p.is_empty() || p.contains(char::is_whitespace))
    {
        bail!("{HF_HUB_PREFIX}{repo}: not a Hub repository id (ORG/REPO)");
    }
    Ok(())
}

/// A model resolved from OpenCLIP-style names: its configuration and a weights file.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    /// A name for records and messages (`ViT-B-16`, `hf-hub:ORG/REPO`).
    pub name: String,
    /// The architecture (a pretrained tag may switch QuickGELU on).
    pub config: ClipConfig,
    /// A local weights file, or an object-store URL (fetched by the caller).
    pub weights: PathBuf,
}

/// Resolves `--use_model`'s words: `hf-hub:ORG/REPO` alone, or `ARCH WEIGHTS` where WEIGHTS is a
/// pretrained tag of ARCH, `hf-hub:ORG/REPO/FILE` (one file of a Hub repository, e.g. a TiC-CLIP
/// `checkpoints/2016.pt`), an object-store URL, or a local file. `config` (a `--model-config`)
/// replaces the architecture ARCH names (ARCH is then only a label).
pub fn resolve(
    arch: &str,
    weights: Option<&str>,
    config: Option<ClipConfig>,
    hub: &HubCache,
) -> Result<ResolvedModel> {
    if let Some(repo) = arch.strip_prefix(HF_HUB_PREFIX) {
        if let Some(w) = weights {
            bail!(
                "{arch} takes its config and weights from the repository; drop {w:?} \
                 (for one file of a repository use \"ARCH {HF_HUB_PREFIX}ORG/REPO/FILE\")"
            );
        }
        let (repo_config, weights) = resolve_hub_repo(repo, hub)?;
        return Ok(ResolvedModel {
            name: arch.to_string(),
            config: config.unwrap_or(repo_config),
            weights,
        });
    }
    let Some(w) = weights else {
        bail!("{arch:?}: expected \"ARCH WEIGHTS\" (a pretrained tag or a weights file) or \"{HF_HUB_PREFIX}ORG/REPO\"");
    };
    let config = match config {
        Some(c) => c,
        None => ClipConfig::builtin(arch)
            .with_context(|| format!("{arch:?} (use --model-config for other architectures)"))?,
    };
    let weights = if let Some(spec) = w.strip_prefix(HF_HUB_PREFIX) {
        let (repo, file) = split_repo_file(spec)?;
        hub.fetch(&repo, &[file])?
    } else if let Some(t) = find_tag(arch, w) {
        return resolve_tag(arch, t, config, hub);
    } else if w.contains("://") || Path::new(w).is_file() {
        PathBuf::from(w)
    } else {
        bail!("{}", unknown_weights(arch, w));
    };
    Ok(ResolvedModel {
        name: arch.to_string(),
        config,
        weights,
    })
}

/// The error for a second word that is neither a file nor a tag: lists ARCH's tags.
fn unknown_weights(arch: &str, w: &str) -> String {
    let tags: Vec<&str> = tags_for(arch).iter().map(|t| t.tag).collect();
    let known = if tags.is_empty() {
        let with_tags: Vec<&str> = BUILTIN_MODELS
            .iter()
            .copied()
            .filter(|a| !tags_for(a).is_empty())
            .collect();
        format!(
            "{arch} has no pretrained tags (architectures with tags: {})",
            with_tags.join(", ")
        )
    } else {
        format!("pretrained tags of {arch}: {}", tags.join(", "))
    };
    format!("{w} is neither a file nor a pretrained tag of {arch}; {known}")
}

/// `ORG/REPO/FILE...` → (`ORG/REPO`, `FILE...`).
fn split_repo_file(spec: &str) -> Result<(String, String)> {
    let mut parts = spec.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(org), Some(repo), Some(file))
            if !org.is_empty() && !repo.is_empty() && !file.is_empty() =>
        {
            Ok((format!("{org}/{repo}"), file.to_string()))
        }
        _ => {
            bail!("{HF_HUB_PREFIX}{spec}: expected {HF_HUB_PREFIX}ORG/REPO/FILE for a weights file")
        }
    }
}

/// `ARCH TAG`: the tag's weights; QuickGELU when the tag's weights were trained with it (as
/// OpenCLIP 2.16's `pretrained="openai"` did; later OpenCLIP versions only warn).
fn resolve_tag(
    arch: &str,
    t: &PretrainedTag,
    mut cfg: ClipConfig,
    hub: &HubCache,
) -> Result<ResolvedModel> {
    if !t.openai_preprocess {
        bail!(
            "{arch} {}: OpenCLIP preprocesses it with another mean/std; tic-model's \
             preprocessing is OpenAI's only",
            t.tag
        );
    }
    if t.quick_gelu && !cfg.quick_gelu {
        tracing::info!(
            "{arch} {}: weights trained with QuickGELU, so the model uses QuickGELU",
            t.tag
        );
        cfg.quick_gelu = true;
    }
    let weights = hub.fetch(t.repo(), &t.weight_files())?;
    Ok(ResolvedModel {
        name: arch.to_string(),
        config: cfg,
        weights,
    })
}

/// `hf-hub:ORG/REPO`: the repository's `open_clip_config.json` (model and preprocessing) and
/// default weights.
fn resolve_hub_repo(repo: &str, hub: &HubCache) -> Result<(ClipConfig, PathBuf)> {
    let cfg_path = hub.fetch(repo, &[HF_CONFIG_NAME.to_string()])?;
    let config = read_open_clip_config(&cfg_path)
        .with_context(|| format!("{HF_HUB_PREFIX}{repo}: {}", cfg_path.display()))?;
    let weights = hub.fetch(repo, &weight_candidates(HF_WEIGHTS_NAME))?;
    Ok((config, weights))
}

/// Reads a Hub `open_clip_config.json`: `model_cfg` as a [`ClipConfig`] (what tic-model does not
/// build is an error), `preprocess_cfg` checked to be what tic-model's preprocessing does.
pub fn read_open_clip_config(path: &Path) -> Result<ClipConfig> {
    let text = std::fs::read_to_string(path).context("reading")?;
    let v: Value = serde_json::from_str(&text).context("not JSON")?;
    let model_cfg = v
        .get("model_cfg")
        .context("no \"model_cfg\" (not an OpenCLIP Hub config)")?;
    let config = ClipConfig::from_json_str(&model_cfg.to_string())
        .context("model_cfg: tic-model builds only the plain ViT / Transformer CLIP")?;
    if let Some(p) = v.get("preprocess_cfg") {
        check_preprocess(p)?;
    }
    Ok(config)
}

/// Checks an OpenCLIP `preprocess_cfg` against tic-model's (OpenAI mean/std, bicubic,
/// shortest-side resize); absent keys take OpenCLIP's defaults, which are those.
fn check_preprocess(p: &Value) -> Result<()> {
    use crate::preprocess::{OPENAI_MEAN, OPENAI_STD};
    for (key, ours) in [("mean", OPENAI_MEAN), ("std", OPENAI_STD)] {
        if let Some(v) = p.get(key) {
            let theirs: Vec<f64> = serde_json::from_value(v.clone())
                .with_context(|| format!("preprocess_cfg.{key}: not a list of numbers"))?;
            let same = theirs.len() == 3
                && theirs
                    .iter()
                    .zip(ours)
                    .all(|(a, b)| (a - f64::from(b)).abs() < 1e-6);
            if !same {
                bail!("preprocess_cfg.{key} {theirs:?}: tic-model normalises with OpenAI's {ours:?} only");
            }
        }
    }
    for (key, ours) in [("interpolation", "bicubic"), ("resize_mode", "shortest")] {
        if let Some(v) = p.get(key) {
            if v.as_str() != Some(ours) {
                bail!("preprocess_cfg.{key} {v}: tic-model's preprocessing is {ours:?} only");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn every_tag_is_of_a_builtin_arch_once_with_a_repo() {
        let mut seen = HashSet::new();
        for t in PRETRAINED_TAGS {
            assert!(BUILTIN_MODELS.contains(&t.arch), "{t:?}");
            assert!(seen.insert((t.arch, t.tag)), "duplicate {t:?}");
            assert_eq!(clean_tag(t.tag), t.tag, "{t:?}");
            check_repo_id(t.repo()).unwrap();
            assert!(t.hf_hub.ends_with('/'), "{t:?}: default weights file");
            assert_eq!(t.weight_files(), [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]);
        }
        // OpenCLIP's counts at 89fb801 (ViT-L-14's laion2b_s32b_b82k included) + the test tag.
        let per_arch = |a: &str| tags_for(a).len();
        assert_eq!(
            (
                per_arch("ViT-B-32"),
                per_arch("ViT-B-16"),
                per_arch("ViT-L-14")
            ),
            (22, 15, 12)
        );
        assert_eq!(per_arch("tiny-test"), 1);
    }

    #[test]
    fn tags_resolve_as_openclip_names_them() {
        let t = find_tag("ViT-B-16", "openai").unwrap();
        assert_eq!(t.repo(), "timm/vit_base_patch16_clip_224.openai");
        assert!(t.quick_gelu);
        assert_eq!(
            find_tag("ViT-B-32", "DataComp-XL-s13B-b90K")
                .unwrap()
                .repo(),
            "laion/CLIP-ViT-B-32-DataComp.XL-s13B-b90K"
        );
        // `-quickgelu` names: OpenCLIP registers the QuickGELU-trained tags only.
        assert!(find_tag("ViT-B-32-quickgelu", "laion400m_e32").is_some());
        assert!(find_tag("ViT-B-32-quickgelu", "laion2b_s34b_b79k").is_none());
        assert!(find_tag("ViT-B-16", "no_such").is_none());
    }

    #[test]
    fn safetensors_alternatives_as_openclip() {
        assert_eq!(
            weight_candidates("open_clip_pytorch_model.bin"),
            ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        );
        assert_eq!(
            weight_candidates("pytorch_model.bin"),
            ["pytorch_model.safetensors", "pytorch_model.bin"]
        );
        assert_eq!(weight_candidates("x.pth"), ["x.safetensors", "x.pth"]);
        assert_eq!(
            weight_candidates("checkpoints/2016.pt"),
            ["checkpoints/2016.pt"]
        );
    }

    fn vars(kv: &[(&str, &str)]) -> HubCache {
        let m: HashMap<String, String> = kv
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HubCache::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn cache_folder_and_offline_from_the_environment() {
        assert_eq!(
            vars(&[("HOME", "/h")]).dir,
            PathBuf::from("/h/.cache/huggingface/hub")
        );
        assert_eq!(
            vars(&[("HOME", "/h"), ("XDG_CACHE_HOME", "/x")]).dir,
            PathBuf::from("/x/huggingface/hub")
        );
        assert_eq!(
            vars(&[("XDG_CACHE_HOME", "/x"), ("HF_HOME", "/hf")]).dir,
            PathBuf::from("/hf/hub")
        );
        assert_eq!(
            vars(&[("HF_HOME", "/hf"), ("HUGGINGFACE_HUB_CACHE", "/old")]).dir,
            PathBuf::from("/old")
        );
        let c = vars(&[
            ("HUGGINGFACE_HUB_CACHE", "/old"),
            ("HF_HUB_CACHE", "/new"),
            ("HF_ENDPOINT", "http://mirror"),
        ]);
        assert_eq!(c.dir, PathBuf::from("/new"));
        assert_eq!(c.endpoint.as_deref(), Some("http://mirror"));
        assert!(!c.offline);
        for on in ["1", "true", "YES", "on"] {
            assert!(vars(&[("HF_HUB_OFFLINE", on)]).offline, "{on}");
        }
        assert!(vars(&[("TRANSFORMERS_OFFLINE", "1")]).offline);
        assert!(!vars(&[("HF_HUB_OFFLINE", "0")]).offline);
        assert_eq!(c.repo_dir("a/b"), PathBuf::from("/new/models--a--b"));
    }

    #[test]
    fn repo_ids_are_checked() {
        for bad in ["", "a//b", "a/b/c", "a b/c"] {
            assert!(check_repo_id(bad).is_err(), "{bad:?}");
        }
        check_repo_id("gpt2").unwrap();
        assert_eq!(
            split_repo_file("a/b/c/d.pt").unwrap(),
            ("a/b".into(), "c/d.pt".into())
        );
        assert!(split_repo_file("a/b").is_err());
    }
}
