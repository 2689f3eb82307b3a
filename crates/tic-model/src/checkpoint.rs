//! Loading and saving CLIP weights.
//!
//! Accepted inputs ([`load_state_dict`]):
//! - safetensors state dicts with OpenCLIP names (what [`save_safetensors`] writes);
//! - OpenCLIP training checkpoints `epoch_N.pt` / `epoch_latest.pt` (torch zip pickle; the
//!   `state_dict` entry is used when present; a leading `module.` is stripped) and plain
//!   `torch.save(model.state_dict())` files;
//! - OpenAI CLIP weights in the Hugging Face layout (`openai/clip-vit-base-patch16`
//!   `model.safetensors` or `pytorch_model.bin`), mapped to OpenCLIP names
//!   ([`hf_to_openclip`]). These weights need a `-quickgelu` config.
//!
//! Every load is checked against [`param_specs`]: a missing, unexpected or mis-shaped tensor is
//! an error naming the key and the expected and found shapes.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

use crate::config::ClipConfig;
use crate::init::param_specs;
use crate::model::Clip;

/// A named set of tensors (a PyTorch-style state dict).
pub type StateDict = HashMap<String, Tensor>;

fn is_zip(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic)?;
    Ok(n == 4 && &magic == b"PK\x03\x04")
}

/// Longest `data.pkl` read from a torch checkpoint (a ViT-B/16 training checkpoint's is ~60 kB).
const MAX_TORCH_PICKLE: u64 = 256 << 20;

/// Checks every `data.pkl` of a torch zip against the pickle budget before Candle decodes it:
/// Candle's unpickler deep-copies every memo reference, so a small hostile pickle would expand
/// exponentially (`tic_shards::pickle::budget`).
fn check_torch_pickles(path: &Path) -> Result<()> {
    use std::io::Read;
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(f))
        .with_context(|| format!("{}: not a readable zip", path.display()))?;
    let names: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .filter(|n| n.ends_with("data.pkl"))
        .collect();
    for name in names {
        let mut pkl = Vec::new();
        zip.by_name(&name)
            .and_then(|m| Ok(m.take(MAX_TORCH_PICKLE).read_to_end(&mut pkl)?))
            .with_context(|| format!("{}: reading {name}", path.display()))?;
        tic_shards::pickle::budget::check(&pkl, tic_shards::pickle::budget::Sharing::Eager)
            .map_err(|e| {
                anyhow::anyhow!("{}: {name}: not a readable pickle: {e}", path.display())
            })?;
    }
    Ok(())
}

/// Checks that every tensor fits in its storage member: Candle allocates a tensor at the shape
/// the pickle declares before reading it, so a hostile shape would allocate without bound.
fn check_tensor_sizes(path: &Path, infos: &[candle_core::pickle::TensorInfo]) -> Result<()> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(f))
        .with_context(|| format!("{}: not a readable zip", path.display()))?;
    for info in infos {
        let Ok(member) = zip.by_name(&info.path) else {
            continue; // Candle names the missing member itself.
        };
        let need = (info.layout.start_offset() as u128 + info.layout.shape().elem_count() as u128)
            * info.dtype.size_in_bytes() as u128;
        if need > u128::from(member.size()) {
            bail!(
                "{}: tensor {:?} of shape {:?} needs {need} bytes, its storage {} holds {}",
                path.display(),
                info.name,
                info.layout.shape().dims(),
                info.path,
                member.size()
            );
        }
    }
    Ok(())
}

/// A torch zip checkpoint's tensors (its `state_dict` entry when it has one), after the checks
/// above.
fn load_torch_zip(path: &Path) -> Result<StateDict> {
    use candle_core::pickle::read_pth_tensor_info;
    check_torch_pickles(path)?;
    let context = || format!("reading torch checkpoint {}", path.display());
    let (key, infos) = match read_pth_tensor_info(path, false, Some("state_dict")) {
        Ok(infos) => (Some("state_dict"), infos),
        Err(e) if e.to_string().contains("not found") => (
            None,
            read_pth_tensor_info(path, false, None).with_context(context)?,
        ),
        Err(e) => return Err(anyhow::Error::new(e)).with_context(context),
    };
    check_tensor_sizes(path, &infos)?;
    let pairs = candle_core::pickle::read_all_with_key(path, key).with_context(context)?;
    Ok(pairs.into_iter().collect())
}

/// Reads a state dict from a safetensors file or a torch zip checkpoint, strips `module.`, and
/// converts Hugging Face CLIP names to OpenCLIP names when the file uses that layout.
/// Tensors are returned on the CPU in their stored dtype.
pub fn load_state_dict(path: &Path) -> Result<StateDict> {
    let sd: StateDict = if is_zip(path)? {
        load_torch_zip(path)?
    } else {
        candle_core::safetensors::load(path, &Device::Cpu).with_context(|| {
            format!(
                "reading safetensors {} (neither a torch zip checkpoint)",
                path.display()
            )
        })?
    };
    if sd.is_empty() {
        bail!("{}: no tensors found", path.display());
    }
    let sd = strip_module_prefix(sd);
    let sd = if sd
        .keys()
        .any(|k| k.starts_with("vision_model.") || k.starts_with("text_model."))
    {
        hf_to_openclip(sd)
            .with_context(|| format!("mapping Hugging Face CLIP names in {}", path.display()))?
    } else {
        sd
    };
    Ok(sd)
}

/// OpenCLIP's rule: strip a leading `module.` from all keys if the first key has it.
pub fn strip_module_prefix(sd: StateDict) -> StateDict {
    if sd.keys().any(|k| k.starts_with("module.")) {
        sd.into_iter()
            .map(|(k, v)| {
                (
                    k.strip_prefix("module.").map(str::to_string).unwrap_or(k),
                    v,
                )
            })
            .collect()
    } else {
        sd
    }
}

/// Maps a Hugging Face `CLIPModel` state dict (OpenAI weights) to OpenCLIP names: q/k/v are
/// concatenated into `in_proj_*`, the projections are transposed.
pub fn hf_to_openclip(mut sd: StateDict) -> Result<StateDict> {
    let mut out = StateDict::new();
    hf_blocks_to_openclip(&mut sd, &mut out)?;
    hf_embeddings_to_openclip(&mut sd, &mut out)?;
    // Non-parameter buffers of the HF model.
    sd.retain(|k, _| !k.ends_with("position_ids"));
    if let Some(k) = sd.keys().next() {
        bail!(
            "unexpected tensor `{k}` in Hugging Face CLIP weights ({} left unmapped)",
            sd.len()
        );
    }
    Ok(out)
}

/// Removes `k` from a Hugging Face state dict, or names it as missing.
fn take_hf(sd: &mut StateDict, k: &str) -> Result<Tensor> {
    sd.remove(k)
        .with_context(|| format!("missing tensor `{k}` in Hugging Face CLIP weights"))
}

/// The number of encoder layers `{prefix}{i}.…` in a Hugging Face state dict.
fn hf_layer_count(sd: &StateDict, prefix: &str) -> usize {
    sd.keys()
        .filter_map(|k| {
            k.strip_prefix(prefix)?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .map_or(0, |m| m + 1)
}

/// Moves both towers' encoder layers from `sd` into `out` as OpenCLIP residual blocks (q, k and
/// v concatenated into `in_proj`).
fn hf_blocks_to_openclip(sd: &mut StateDict, out: &mut StateDict) -> Result<()> {
    for (hf, oc) in [
        ("vision_model", "visual.transformer"),
        ("text_model", "transformer"),
    ] {
        let enc = format!("{hf}.encoder.layers.");
        for i in 0..hf_layer_count(sd, &enc) {
            let h = format!("{enc}{i}");
            let o = format!("{oc}.resblocks.{i}");
            for (a, b) in [
                ("layer_norm1", "ln_1"),
                ("layer_norm2", "ln_2"),
                ("mlp.fc1", "mlp.c_fc"),
                ("mlp.fc2", "mlp.c_proj"),
                ("self_attn.out_proj", "attn.out_proj"),
            ] {
                for p in ["weight", "bias"] {
                    out.insert(
                        format!("{o}.{b}.{p}"),
                        take_hf(sd, &format!("{h}.{a}.{p}"))?,
                    );
                }
            }
            for p in ["weight", "bias"] {
                let q = take_hf(sd, &format!("{h}.self_attn.q_proj.{p}"))?;
                let k = take_hf(sd, &format!("{h}.self_attn.k_proj.{p}"))?;
                let v = take_hf(sd, &format!("{h}.self_attn.v_proj.{p}"))?;
                out.insert(format!("{o}.attn.in_proj_{p}"), Tensor::cat(&[q, k, v], 0)?);
            }
        }
    }
    Ok(())
}

/// Moves the embeddings, the towers' outer LayerNorms, `logit_scale` and the (transposed)
/// projections from `sd` into `out` under their OpenCLIP names.
fn hf_embeddings_to_openclip(sd: &mut StateDict, out: &mut StateDict) -> Result<()> {
    let direct = [
        (
            "vision_model.embeddings.patch_embedding.weight",
            "visual.conv1.weight",
        ),
        (
            "vision_model.embeddings.class_embedding",
            "visual.class_embedding",
        ),
        (
            "vision_model.embeddings.position_embedding.weight",
            "visual.positional_embedding",
        ),
        ("vision_model.pre_layrnorm.weight", "visual.ln_pre.weight"),
        ("vision_model.pre_layrnorm.bias", "visual.ln_pre.bias"),
        (
            "vision_model.post_layernorm.weight",
            "visual.ln_post.weight",
        ),
        ("vision_model.post_layernorm.bias", "visual.ln_post.bias"),
        (
            "text_model.embeddings.token_embedding.weight",
            "token_embedding.weight",
        ),
        (
            "text_model.embeddings.position_embedding.weight",
            "positional_embedding",
        ),
        ("text_model.final_layer_norm.weight", "ln_final.weight"),
        ("text_model.final_layer_norm.bias", "ln_final.bias"),
        ("logit_scale", "logit_scale"),
    ];
    for (a, b) in direct {
        out.insert(b.to_string(), take_hf(sd, a)?);
    }
    out.insert(
        "visual.proj".into(),
        take_hf(sd, "visual_projection.weight")?.t()?.contiguous()?,
    );
    out.insert(
        "text_projection".into(),
        take_hf(sd, "text_projection.weight")?.t()?.contiguous()?,
    );
    Ok(())
}

/// Checks a state dict against the parameters of `cfg`: every key present with the right shape,
/// no unexpected keys.
pub fn validate(cfg: &ClipConfig, sd: &StateDict) -> Result<()> {
    let specs = param_specs(cfg);
    for s in &specs {
        match sd.get(&s.name) {
            None => bail!("missing tensor `{}` (expected shape {:?})", s.name, s.shape),
            Some(t) if t.dims() != s.shape.as_slice() => {
                bail!(
                    "tensor `{}`: expected shape {:?}, found {:?}",
                    s.name,
                    s.shape,
                    t.dims()
                )
            }
            Some(_) => {}
        }
    }
    if sd.len() != specs.len() {
        let known: std::collections::HashSet<&str> =
            specs.iter().map(|s| s.name.as_str()).collect();
        let mut extra: Vec<&String> = sd.keys().filter(|k| !known.contains(k.as_str())).collect();
        extra.sort();
        bail!("unexpected tensor `{}` ({} unexpected in all); not a plain OpenCLIP CLIP of this config", extra[0], extra.len());
    }
    Ok(())
}

/// Loads weights from `path` (any supported format), validates them against `cfg` and builds an
/// inference model with the given dtype/device.
pub fn load_clip(cfg: &ClipConfig, path: &Path, dtype: DType, device: &Device) -> Result<Clip> {
    let sd = load_state_dict(path)?;
    validate(cfg, &sd).with_context(|| format!("weights {}", path.display()))?;
    let vb = VarBuilder::from_tensors(sd, dtype, device);
    Clip::new(cfg, vb).with_context(|| format!("building the model from {}", path.display()))
}

/// Loads weights from `path` into a fresh `VarMap` of trainable `Var`s (for fine-tuning /
/// resuming) and builds the model on it.
pub fn load_trainable(
    cfg: &ClipConfig,
    path: &Path,
    dtype: DType,
    device: &Device,
) -> Result<(VarMap, Clip)> {
    let sd = load_state_dict(path)?;
    validate(cfg, &sd).with_context(|| format!("weights {}", path.display()))?;
    let vm = VarMap::new();
    {
        let mut data = vm.data().lock().expect("varmap lock");
        for (k, t) in sd {
            data.insert(k, Var::from_tensor(&t.to_dtype(dtype)?.to_device(device)?)?);
        }
    }
    let model = Clip::new(cfg, VarBuilder::from_varmap(&vm, dtype, device))?;
    Ok((vm, model))
}

/// Writes tensors as safetensors atomically with the ordinary `0644` permissions, streaming
/// tensor by tensor (no copy of the whole file in memory: a training state is weights + two
/// AdamW moments, 1.8 GB for ViT-B). The file is written inside a temporary folder named with
/// [`tic_shards::atomic::TEMP_PREFIX`] next to `path` (safetensors makes its own temporary
/// file beside the name it is given), then renamed into place; a kill leaves only that folder,
/// which reruns remove.
pub fn write_safetensors_atomic(tensors: &StateDict, path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp_dir = tempfile::Builder::new()
        .prefix(tic_shards::atomic::TEMP_PREFIX)
        .tempdir_in(&dir)
        .with_context(|| format!("creating a temporary folder in {}", dir.display()))?;
    let tmp = tmp_dir.path().join("tensors.safetensors");
    safetensors::serialize_to_file(tensors.iter(), None, &tmp)
        .with_context(|| format!("writing {}", path.display()))?;
    let finish = || -> std::io::Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
        }
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    finish().with_context(|| format!("writing {}", path.display()))
}

/// Saves the model's parameters with OpenCLIP key names and shapes, as f32 on the CPU, so that
/// `open_clip.create_model(arch)` + `load_state_dict` accepts the file.
pub fn save_safetensors(model: &Clip, path: &Path) -> Result<()> {
    let mut out = StateDict::new();
    for (k, t) in model.named_parameters() {
        out.insert(
            k.clone(),
            t.to_dtype(DType::F32)?
                .to_device(&Device::Cpu)?
                .contiguous()?,
        );
    }
    write_safetensors_atomic(&out, path)
}

/// Saves a `VarMap` (e.g. the trainer's) with OpenCLIP names as f32 safetensors; only the
/// model's parameters are written, and all of them must be present.
pub fn save_varmap_safetensors(cfg: &ClipConfig, vm: &VarMap, path: &Path) -> Result<()> {
    let data = vm.data().lock().expect("varmap lock");
    let mut out = StateDict::new();
    for s in param_specs(cfg) {
        let v = data
            .get(&s.name)
            .with_context(|| format!("VarMap has no `{}`", s.name))?;
        out.insert(
            s.name,
            v.as_tensor()
                .to_dtype(DType::F32)?
                .to_device(&Device::Cpu)?
                .contiguous()?,
        );
    }
    drop(data);
    validate(cfg, &out)?;
    write_safetensors_atomic(&out, path)
}
