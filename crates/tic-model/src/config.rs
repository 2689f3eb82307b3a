//! [`ClipConfig`]: OpenCLIP's model-config JSON (`embed_dim`, `vision_cfg`, `text_cfg`, `quick_gelu`).
//!
//! The JSON layout is exactly the one of `open_clip/model_configs/*.json` (v2.24.0); omitted fields
//! take OpenCLIP's `CLIPVisionCfg` / `CLIPTextCfg` defaults. Only the plain ViT/Transformer CLIP is
//! supported: options that select another architecture (timm towers, HF text towers, attentional
//! pooling, ...) are rejected when set to a non-default value, so a config never silently means a
//! different model.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Vision tower settings (OpenCLIP `CLIPVisionCfg`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisionCfg {
    /// Number of transformer blocks.
    pub layers: usize,
    /// Residual stream width.
    pub width: usize,
    /// Width of one attention head; heads = width / head_width.
    #[serde(default = "default_head_width")]
    pub head_width: usize,
    /// MLP hidden size = width * mlp_ratio.
    #[serde(default = "default_mlp_ratio")]
    pub mlp_ratio: f64,
    /// Patch size (stride = kernel of `conv1`).
    pub patch_size: usize,
    /// Input resolution (square).
    pub image_size: usize,
    /// Must be absent/null (LayerScale is not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ls_init_value: Option<f64>,
    /// Must be 0 (patch dropout is not supported).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub patch_dropout: f64,
    /// Must be false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub attentional_pool: bool,
    /// Must be false (`ln_pre` is always present).
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_ln_pre: bool,
    /// Must be `"tok"` (CLS-token pooling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_type: Option<String>,
    /// Must be absent (timm towers are not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timm_model_name: Option<String>,
}

/// Text tower settings (OpenCLIP `CLIPTextCfg`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextCfg {
    /// Token positions (77 for every CLIP model; the tokenizer pads/truncates to it).
    #[serde(default = "default_context_length")]
    pub context_length: usize,
    /// Vocabulary size (49408 for CLIP's BPE).
    #[serde(default = "default_vocab_size")]
    pub vocab_size: usize,
    /// Residual stream width.
    #[serde(default = "default_text_width")]
    pub width: usize,
    /// Attention heads.
    #[serde(default = "default_text_heads")]
    pub heads: usize,
    /// Number of transformer blocks.
    #[serde(default = "default_text_layers")]
    pub layers: usize,
    /// MLP hidden size = width * mlp_ratio.
    #[serde(default = "default_mlp_ratio")]
    pub mlp_ratio: f64,
    /// Must be absent/null (LayerScale is not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ls_init_value: Option<f64>,
    /// Must be absent or `"argmax"` (pool at the end-of-text token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_type: Option<String>,
    /// Must be absent/false (`text_projection` is a bias-free matrix).
    #[serde(default, skip_serializing_if = "is_false")]
    pub proj_bias: bool,
    /// Must be absent (HF text towers are not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hf_model_name: Option<String>,
}

/// A CLIP model configuration in OpenCLIP's model-config JSON format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipConfig {
    /// Joint embedding dimension (output of `visual.proj` / `text_projection`).
    pub embed_dim: usize,
    /// Vision tower.
    pub vision_cfg: VisionCfg,
    /// Text tower.
    pub text_cfg: TextCfg,
    /// QuickGELU (`x * sigmoid(1.702 x)`, OpenAI weights) instead of exact erf GELU.
    #[serde(default, skip_serializing_if = "is_false")]
    pub quick_gelu: bool,
}

fn default_head_width() -> usize {
    64
}
fn default_mlp_ratio() -> f64 {
    4.0
}
fn default_context_length() -> usize {
    77
}
fn default_vocab_size() -> usize {
    49408
}
fn default_text_width() -> usize {
    512
}
fn default_text_heads() -> usize {
    8
}
fn default_text_layers() -> usize {
    12
}
fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// Names accepted by [`ClipConfig::builtin`].
pub const BUILTIN_MODELS: &[&str] = &[
    "ViT-B-16",
    "ViT-B-32",
    "ViT-L-14",
    "ViT-B-16-quickgelu",
    "ViT-B-32-quickgelu",
    "ViT-L-14-quickgelu",
    "tiny-test",
    "tiny-test-quickgelu",
];

impl VisionCfg {
    fn new(image_size: usize, patch_size: usize, width: usize, layers: usize) -> Self {
        Self {
            layers,
            width,
            head_width: 64,
            mlp_ratio: 4.0,
            patch_size,
            image_size,
            ls_init_value: None,
            patch_dropout: 0.0,
            attentional_pool: false,
            no_ln_pre: false,
            pool_type: None,
            timm_model_name: None,
        }
    }

    /// Number of attention heads (`width / head_width`).
    pub fn heads(&self) -> usize {
        self.width / self.head_width
    }

    /// Patches per side (`image_size / patch_size`).
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Tokens per image: grid² patches + the class token.
    pub fn num_tokens(&self) -> usize {
        self.grid() * self.grid() + 1
    }

    /// MLP hidden width.
    pub fn mlp_width(&self) -> usize {
        (self.width as f64 * self.mlp_ratio) as usize
    }
}

impl TextCfg {
    fn new(width: usize, heads: usize, layers: usize) -> Self {
        Self {
            context_length: 77,
            vocab_size: 49408,
            width,
            heads,
            layers,
            mlp_ratio: 4.0,
            ls_init_value: None,
            pool_type: None,
            proj_bias: false,
            hf_model_name: None,
        }
    }

    /// MLP hidden width.
    pub fn mlp_width(&self) -> usize {
        (self.width as f64 * self.mlp_ratio) as usize
    }
}

impl ClipConfig {
    /// A built-in configuration by OpenCLIP model name (see [`BUILTIN_MODELS`]); a `-quickgelu`
    /// suffix selects QuickGELU as OpenCLIP's `*-quickgelu` configs do.
    ///
    /// `tiny-test` is a small random-init model for tests and CPU demos only (image 32, patch 8,
    /// widths 64, 2 layers); its text context stays 77 so tokenisation is unchanged.
    pub fn builtin(name: &str) -> Result<Self> {
        let (base, quick_gelu) = match name.strip_suffix("-quickgelu") {
            Some(b) => (b, true),
            None => (name, false),
        };
        let mut cfg = match base {
            "ViT-B-16" => Self {
                embed_dim: 512,
                vision_cfg: VisionCfg::new(224, 16, 768, 12),
                text_cfg: TextCfg::new(512, 8, 12),
                quick_gelu: false,
            },
            "ViT-B-32" => Self {
                embed_dim: 512,
                vision_cfg: VisionCfg::new(224, 32, 768, 12),
                text_cfg: TextCfg::new(512, 8, 12),
                quick_gelu: false,
            },
            "ViT-L-14" => Self {
                embed_dim: 768,
                vision_cfg: VisionCfg::new(224, 14, 1024, 24),
                text_cfg: TextCfg::new(768, 12, 12),
                quick_gelu: false,
            },
            "tiny-test" => {
                let mut v = VisionCfg::new(32, 8, 64, 2);
                v.head_width = 32;
                Self {
                    embed_dim: 32,
                    vision_cfg: v,
                    text_cfg: TextCfg::new(64, 2, 2),
                    quick_gelu: false,
                }
            }
            _ => bail!(
                "unknown model name {name:?}; built-in models: {}",
                BUILTIN_MODELS.join(", ")
            ),
        };
        cfg.quick_gelu = quick_gelu;
        Ok(cfg)
    }

    /// Parses OpenCLIP model-config JSON text and validates it.
    pub fn from_json_str(s: &str) -> Result<Self> {
        let cfg: Self = serde_json::from_str(s).context("parsing OpenCLIP model-config JSON")?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads an OpenCLIP model-config JSON file (e.g. `open_clip/model_configs/ViT-B-16.json`).
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let s = std::fs::read_to_string(path)
            .with_context(|| format!("reading model config {}", path.display()))?;
        Self::from_json_str(&s).with_context(|| format!("in model config {}", path.display()))
    }

    /// Serialises to OpenCLIP's model-config JSON (pretty-printed).
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(self).expect("ClipConfig serialises")
    }

    /// Checks that the config describes the supported architecture.
    pub fn validate(&self) -> Result<()> {
        let v = &self.vision_cfg;
        let t = &self.text_cfg;
        if v.ls_init_value.is_some() || t.ls_init_value.is_some() {
            bail!("ls_init_value (LayerScale) is not supported");
        }
        if v.patch_dropout != 0.0 {
            bail!(
                "vision_cfg.patch_dropout must be 0, got {}",
                v.patch_dropout
            );
        }
        if v.attentional_pool || v.no_ln_pre {
            bail!("vision_cfg.attentional_pool / no_ln_pre are not supported");
        }
        if v.pool_type.as_deref().is_some_and(|p| p != "tok") {
            bail!(
                "vision_cfg.pool_type must be \"tok\", got {:?}",
                v.pool_type
            );
        }
        if t.pool_type.as_deref().is_some_and(|p| p != "argmax") {
            bail!(
                "text_cfg.pool_type must be \"argmax\", got {:?}",
                t.pool_type
            );
        }
        if t.proj_bias {
            bail!("text_cfg.proj_bias is not supported");
        }
        if v.timm_model_name.is_some() || t.hf_model_name.is_some() {
            bail!("timm / Hugging Face towers are not supported");
        }
        if v.patch_size == 0 || v.image_size % v.patch_size != 0 {
            bail!(
                "vision_cfg.image_size {} must be a multiple of patch_size {}",
                v.image_size,
                v.patch_size
            );
        }
        if v.head_width == 0 || v.width % v.head_width != 0 {
            bail!(
                "vision_cfg.width {} must be a multiple of head_width {}",
                v.width,
                v.head_width
            );
        }
        if t.heads == 0 || t.width % t.heads != 0 {
            bail!(
                "text_cfg.width {} must be a multiple of heads {}",
                t.width,
                t.heads
            );
        }
        if v.layers == 0 || t.layers == 0 || self.embed_dim == 0 {
            bail!("layers and embed_dim must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openclip_vit_b_16_json() {
        let s = r#"{"embed_dim": 512, "vision_cfg": {"image_size": 224, "layers": 12, "width": 768,
            "patch_size": 16}, "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512,
            "heads": 8, "layers": 12}}"#;
        let c = ClipConfig::from_json_str(s).unwrap();
        assert_eq!(c, ClipConfig::builtin("ViT-B-16").unwrap());
        assert_eq!(c.vision_cfg.heads(), 12);
        assert_eq!(c.vision_cfg.num_tokens(), 197);
        assert_eq!(c.vision_cfg.mlp_width(), 3072);
        // Round trip through our own JSON.
        let back = ClipConfig::from_json_str(&c.to_json_string()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn quickgelu_and_errors() {
        let q = ClipConfig::builtin("ViT-B-32-quickgelu").unwrap();
        assert!(q.quick_gelu);
        assert!(q.to_json_string().contains("\"quick_gelu\": true"));
        assert!(ClipConfig::builtin("ViT-H-14").is_err());
        let bad = r#"{"embed_dim": 8, "vision_cfg": {"image_size": 30, "layers": 1, "width": 64,
            "patch_size": 8}, "text_cfg": {}}"#;
        let e = ClipConfig::from_json_str(bad).unwrap_err();
        assert!(format!("{e:#}").contains("multiple of patch_size"), "{e:#}");
        let unknown = r#"{"embed_dim": 8, "vision_cfg": {"image_size": 32, "layers": 1, "width": 64,
            "patch_size": 8, "foo": 1}, "text_cfg": {}}"#;
        assert!(ClipConfig::from_json_str(unknown).is_err());
    }

    #[test]
    fn all_builtins_validate() {
        for n in BUILTIN_MODELS {
            ClipConfig::builtin(n).unwrap().validate().unwrap();
        }
    }
}
