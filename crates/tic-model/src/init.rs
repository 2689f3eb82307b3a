//! Parameter list and OpenCLIP-exact random initialisation.
//!
//! [`param_specs`] lists every parameter of `CLIP.state_dict()` (OpenCLIP v2.24.0) in its order,
//! with shape and initial distribution:
//! - text tower (`TextTransformer.init_parameters`): `token_embedding ~ N(0, 0.02)`,
//!   `positional_embedding ~ N(0, 0.01)`, `in_proj_weight ~ N(0, w^-½)`,
//!   `out_proj.weight`, `c_proj.weight ~ N(0, w^-½ (2L)^-½)`, `c_fc.weight ~ N(0, (2w)^-½)`,
//!   `text_projection ~ N(0, w^-½)`; MHA biases 0; MLP biases keep PyTorch's Linear default;
//! - vision tower: `class_embedding`, `positional_embedding`, `proj` = `w^-½ · randn`; everything
//!   else keeps PyTorch's defaults (OpenCLIP's vision `init_parameters` body is commented out):
//!   `conv1` and Linear weights/biases `U(±1/√fan_in)` (kaiming_uniform with a=√5),
//!   `in_proj_weight` xavier_uniform `U(±√(6/(4w)))`, MHA biases 0, LayerNorm 1/0;
//! - `logit_scale = ln(1/0.07)`.
//!
//! [`init_varmap`] draws these from a seeded ChaCha RNG (deterministic, device-independent) and
//! inserts them as trainable `Var`s. The numbers differ from PyTorch's RNG stream, the
//! distributions are the same.

use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

use crate::config::ClipConfig;

/// How a parameter is initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InitKind {
    /// `N(0, std²)`.
    Normal(f64),
    /// `U(-bound, bound)`.
    Uniform(f64),
    /// All elements equal to the value (0 for biases, 1 for LayerNorm weights, ...).
    Const(f64),
}

/// One parameter of the model: OpenCLIP name, shape, initialisation.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// OpenCLIP `state_dict` key.
    pub name: String,
    /// Shape (`[]` for `logit_scale`).
    pub shape: Vec<usize>,
    /// Initial distribution.
    pub init: InitKind,
}

impl ParamSpec {
    fn new(name: impl Into<String>, shape: &[usize], init: InitKind) -> Self {
        Self {
            name: name.into(),
            shape: shape.to_vec(),
            init,
        }
    }

    /// OpenCLIP's weight-decay rule (`training/main.py`): no decay for `ndim < 2`, names containing
    /// `bn`, `ln`, `bias` or `logit_scale`; decay for everything else.
    pub fn weight_decay(&self) -> bool {
        let n = &self.name;
        !(self.shape.len() < 2
            || n.contains("bn")
            || n.contains("ln")
            || n.contains("bias")
            || n.contains("logit_scale"))
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

fn ln(specs: &mut Vec<ParamSpec>, prefix: &str, w: usize) {
    specs.push(ParamSpec::new(
        format!("{prefix}.weight"),
        &[w],
        InitKind::Const(1.0),
    ));
    specs.push(ParamSpec::new(
        format!("{prefix}.bias"),
        &[w],
        InitKind::Const(0.0),
    ));
}

struct BlockInit {
    in_proj: InitKind,
    out_proj: InitKind,
    c_fc: InitKind,
    c_proj: InitKind,
}

fn blocks(
    specs: &mut Vec<ParamSpec>,
    prefix: &str,
    w: usize,
    layers: usize,
    mlp: usize,
    bi: &BlockInit,
) {
    let default_bias_w = InitKind::Uniform(1.0 / (w as f64).sqrt());
    let default_bias_mlp = InitKind::Uniform(1.0 / (mlp as f64).sqrt());
    for i in 0..layers {
        let p = format!("{prefix}.resblocks.{i}");
        ln(specs, &format!("{p}.ln_1"), w);
        specs.push(ParamSpec::new(
            format!("{p}.attn.in_proj_weight"),
            &[3 * w, w],
            bi.in_proj,
        ));
        specs.push(ParamSpec::new(
            format!("{p}.attn.in_proj_bias"),
            &[3 * w],
            InitKind::Const(0.0),
        ));
        specs.push(ParamSpec::new(
            format!("{p}.attn.out_proj.weight"),
            &[w, w],
            bi.out_proj,
        ));
        specs.push(ParamSpec::new(
            format!("{p}.attn.out_proj.bias"),
            &[w],
            InitKind::Const(0.0),
        ));
        ln(specs, &format!("{p}.ln_2"), w);
        specs.push(ParamSpec::new(
            format!("{p}.mlp.c_fc.weight"),
            &[mlp, w],
            bi.c_fc,
        ));
        specs.push(ParamSpec::new(
            format!("{p}.mlp.c_fc.bias"),
            &[mlp],
            default_bias_w,
        ));
        specs.push(ParamSpec::new(
            format!("{p}.mlp.c_proj.weight"),
            &[w, mlp],
            bi.c_proj,
        ));
        specs.push(ParamSpec::new(
            format!("{p}.mlp.c_proj.bias"),
            &[w],
            default_bias_mlp,
        ));
    }
}

/// Every parameter of the model in OpenCLIP `state_dict` order.
pub fn param_specs(cfg: &ClipConfig) -> Vec<ParamSpec> {
    let mut s = Vec::new();
    let t = &cfg.text_cfg;
    let v = &cfg.vision_cfg;
    let (tw, vw) = (t.width as f64, v.width as f64);

    // `CLIP`'s own Parameters come first in state_dict order, then its submodules.
    s.push(ParamSpec::new(
        "positional_embedding",
        &[t.context_length, t.width],
        InitKind::Normal(0.01),
    ));
    s.push(ParamSpec::new(
        "text_projection",
        &[t.width, cfg.embed_dim],
        InitKind::Normal(tw.powf(-0.5)),
    ));
    s.push(ParamSpec::new(
        "logit_scale",
        &[],
        InitKind::Const((1.0f64 / 0.07).ln()),
    ));

    let scale = vw.powf(-0.5);
    let p = v.patch_size;
    s.push(ParamSpec::new(
        "visual.class_embedding",
        &[v.width],
        InitKind::Normal(scale),
    ));
    s.push(ParamSpec::new(
        "visual.positional_embedding",
        &[v.num_tokens(), v.width],
        InitKind::Normal(scale),
    ));
    s.push(ParamSpec::new(
        "visual.proj",
        &[v.width, cfg.embed_dim],
        InitKind::Normal(scale),
    ));
    s.push(ParamSpec::new(
        "visual.conv1.weight",
        &[v.width, 3, p, p],
        InitKind::Uniform(1.0 / ((3 * p * p) as f64).sqrt()),
    ));
    ln(&mut s, "visual.ln_pre", v.width);
    let torch_default = BlockInit {
        in_proj: InitKind::Uniform((6.0 / (4.0 * vw)).sqrt()),
        out_proj: InitKind::Uniform(1.0 / vw.sqrt()),
        c_fc: InitKind::Uniform(1.0 / vw.sqrt()),
        c_proj: InitKind::Uniform(1.0 / (v.mlp_width() as f64).sqrt()),
    };
    blocks(
        &mut s,
        "visual.transformer",
        v.width,
        v.layers,
        v.mlp_width(),
        &torch_default,
    );
    ln(&mut s, "visual.ln_post", v.width);

    let proj_std = tw.powf(-0.5) * ((2 * t.layers) as f64).powf(-0.5);
    let text_init = BlockInit {
        in_proj: InitKind::Normal(tw.powf(-0.5)),
        out_proj: InitKind::Normal(proj_std),
        c_fc: InitKind::Normal((2.0 * tw).powf(-0.5)),
        c_proj: InitKind::Normal(proj_std),
    };
    blocks(
        &mut s,
        "transformer",
        t.width,
        t.layers,
        t.mlp_width(),
        &text_init,
    );
    s.push(ParamSpec::new(
        "token_embedding.weight",
        &[t.vocab_size, t.width],
        InitKind::Normal(0.02),
    ));
    ln(&mut s, "ln_final", t.width);
    s
}

/// Draws the initial value of one parameter.
fn sample(spec: &ParamSpec, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let n = spec.numel();
    match spec.init {
        InitKind::Const(c) => vec![c as f32; n],
        InitKind::Normal(std) => {
            let d = Normal::new(0.0f64, std).expect("std > 0");
            (0..n).map(|_| d.sample(rng) as f32).collect()
        }
        InitKind::Uniform(b) => {
            let d = Uniform::new(-b, b).expect("bound > 0");
            (0..n).map(|_| d.sample(rng) as f32).collect()
        }
    }
}

/// Fills `varmap` with freshly initialised, trainable parameters (OpenCLIP init, seeded). Build
/// the model afterwards with `Clip::new(cfg, VarBuilder::from_varmap(varmap, dtype, device))`.
/// Existing entries with the same names are replaced.
pub fn init_varmap(
    cfg: &ClipConfig,
    varmap: &VarMap,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut data = varmap.data().lock().expect("varmap lock");
    for spec in param_specs(cfg) {
        let vals = sample(&spec, &mut rng);
        let t = Tensor::from_vec(vals, spec.shape.clone(), device)?.to_dtype(dtype)?;
        data.insert(spec.name.clone(), Var::from_tensor(&t)?);
    }
    Ok(())
}

/// Freshly initialised parameters as plain (non-trainable) tensors, e.g. for inference
/// benchmarks: `Clip::new(cfg, VarBuilder::from_tensors(sd, dtype, device))`.
pub fn init_state_dict(
    cfg: &ClipConfig,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<std::collections::HashMap<String, Tensor>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = std::collections::HashMap::new();
    for spec in param_specs(cfg) {
        let vals = sample(&spec, &mut rng);
        let t = Tensor::from_vec(vals, spec.shape.clone(), device)?.to_dtype(dtype)?;
        out.insert(spec.name.clone(), t);
    }
    Ok(out)
}

/// Convenience: a new `VarMap` with initialised parameters and the model built on it.
pub fn new_trainable(
    cfg: &ClipConfig,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<(VarMap, crate::Clip)> {
    let vm = VarMap::new();
    init_varmap(cfg, &vm, seed, dtype, device)?;
    let model = crate::Clip::new(cfg, candle_nn::VarBuilder::from_varmap(&vm, dtype, device))?;
    Ok((vm, model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vit_b_16_parameter_count_matches_openclip() {
        let cfg = ClipConfig::builtin("ViT-B-16").unwrap();
        let specs = param_specs(&cfg);
        let total: usize = specs.iter().map(|s| s.numel()).sum();
        assert_eq!(total, 149_620_737);
        let vis: usize = specs
            .iter()
            .filter(|s| s.name.starts_with("visual."))
            .map(|s| s.numel())
            .sum();
        assert_eq!(vis, 86_192_640);
        let b32: usize = param_specs(&ClipConfig::builtin("ViT-B-32").unwrap())
            .iter()
            .map(|s| s.numel())
            .sum();
        assert_eq!(b32, 151_277_313);
    }

    #[test]
    fn weight_decay_rule() {
        let cfg = ClipConfig::builtin("tiny-test").unwrap();
        let specs = param_specs(&cfg);
        let wd = |n: &str| specs.iter().find(|s| s.name == n).unwrap().weight_decay();
        assert!(wd("visual.conv1.weight"));
        assert!(wd("positional_embedding"));
        assert!(wd("token_embedding.weight"));
        assert!(!wd("visual.class_embedding"));
        assert!(!wd("logit_scale"));
        assert!(!wd("ln_final.weight"));
        assert!(!wd("transformer.resblocks.0.attn.in_proj_bias"));
    }

    #[test]
    fn init_statistics() {
        let cfg = ClipConfig::builtin("ViT-B-32").unwrap();
        let vm = VarMap::new();
        init_varmap(&cfg, &vm, 0, DType::F32, &Device::Cpu).unwrap();
        let data = vm.data().lock().unwrap();
        let std = |n: &str| {
            let v: Vec<f32> = data[n]
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let m = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
            (v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
        };
        let close = |a: f64, b: f64| (a - b).abs() / b < 0.02;
        assert!(close(std("token_embedding.weight"), 0.02));
        assert!(close(
            std("transformer.resblocks.0.attn.in_proj_weight"),
            512f64.powf(-0.5)
        ));
        // U(-b, b) has std b/√3.
        assert!(close(
            std("visual.transformer.resblocks.0.mlp.c_fc.weight"),
            1.0 / 768f64.sqrt() / 3f64.sqrt()
        ));
        let ls: f32 = data["logit_scale"].as_tensor().to_scalar().unwrap();
        assert!((ls as f64 - (1.0f64 / 0.07).ln()).abs() < 1e-6);
    }
}
