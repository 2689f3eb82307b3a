//! Parity with OpenCLIP 2.24.0 on fixtures made by `tests/fixtures/make_clip_fixtures.py`.

mod common;

use common::tiny_openclip_safetensors;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use tic_model::{checkpoint, preprocess, Clip, ClipConfig, Tokenizer};

fn fixtures() -> PathBuf {
    tic_testkit::fixture_dir("tic-model").join("tiny")
}

fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    (shape, npy.into_vec::<f32>().unwrap())
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn tiny_config() -> ClipConfig {
    ClipConfig::from_json_file(&fixtures().join("config.json")).unwrap()
}

fn tiny_model() -> Clip {
    let sd =
        candle_core::safetensors::load_buffer(&tiny_openclip_safetensors(), &Device::Cpu).unwrap();
    let cfg = tiny_config();
    checkpoint::validate(&cfg, &sd).unwrap();
    Clip::new(&cfg, VarBuilder::from_tensors(sd, DType::F32, &Device::Cpu)).unwrap()
}

/// max |a-b| / max |b|.
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let num = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    let den = b.iter().map(|y| y.abs()).fold(0f32, f32::max);
    num / den
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// [`rel_err`] of tensor `t` against the values of the `.npy` file `want`.
fn rel_err_to(t: &Tensor, want: &Path) -> f32 {
    rel_err(&flat(t), &read_npy(want).1)
}

/// The feature fixtures' inputs: the 32 px pixels (`pixels_32.npy`) and the texts
/// (`feature_texts.json`).
fn feature_inputs() -> (Tensor, Vec<String>) {
    let (pshape, pixels) = read_npy(&fixtures().join("pixels_32.npy"));
    let pixels = Tensor::from_vec(pixels, pshape, &Device::Cpu).unwrap();
    let texts: Vec<String> =
        serde_json::from_value(read_json(&fixtures().join("feature_texts.json"))).unwrap();
    (pixels, texts)
}

fn tokens(texts: &[String]) -> Tensor {
    Tokenizer::shared()
        .tokenize_tensor(texts, &Device::Cpu)
        .unwrap()
}

#[test]
fn tiny_config_matches_builtin() {
    assert_eq!(tiny_config(), ClipConfig::builtin("tiny-test").unwrap());
}

#[test]
fn token_ids_match_openclip_on_all_fixture_strings() {
    let j = read_json(&fixtures().join("tokens.json"));
    let texts: Vec<String> = j["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let ids = j["ids"].as_array().unwrap();
    assert!(texts.len() >= 1000, "only {} strings", texts.len());
    let rows = Tokenizer::shared().tokenize_batch(&texts);
    let mut bad = Vec::new();
    for (i, (row, want)) in rows.iter().zip(ids).enumerate() {
        let mut want: Vec<u32> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        want.resize(77, 0);
        if *row != want {
            bad.push(i);
        }
    }
    for &i in bad.iter().take(5) {
        eprintln!(
            "mismatch #{i}: {:?}\n ours: {:?}\n want: {:?}",
            texts[i], rows[i], ids[i]
        );
    }
    assert!(
        bad.is_empty(),
        "{} of {} strings differ",
        bad.len(),
        texts.len()
    );
}

fn image_bytes() -> Vec<Vec<u8>> {
    let names = read_json(&fixtures().join("images.json"));
    names
        .as_array()
        .unwrap()
        .iter()
        .map(|n| std::fs::read(fixtures().join("images").join(n.as_str().unwrap())).unwrap())
        .collect()
}

fn pixel_diffs(got: &[f32], want: &[f32]) -> (f32, f32) {
    let max = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let mean = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / got.len() as f32;
    (max, mean)
}

/// The transform (bicubic resize, center crop, normalise) against OpenCLIP on the same decoded
/// RGB: PNGs directly, JPEGs through PIL's own decoding stored as PNG. Required: max abs ≤ 1e-2
/// (the resampler is a bit-exact Pillow port, so the difference is f32 rounding only).
#[test]
fn eval_transform_matches_openclip_pixels() {
    let names: Vec<String> =
        serde_json::from_value(read_json(&fixtures().join("images.json"))).unwrap();
    for size in [32u32, 64] {
        let (_, want) = read_npy(&fixtures().join(format!("pixels_{size}.npy")));
        let per_img = want.len() / names.len();
        for (k, n) in names.iter().enumerate() {
            let file = match n.strip_suffix(".jpg") {
                Some(stem) => format!("{stem}.pil-decoded.png"),
                None => n.clone(),
            };
            let img = preprocess::load_rgb(&fixtures().join("images").join(&file)).unwrap();
            let got = preprocess::eval_transform(&img, size);
            let (max, mean) = pixel_diffs(&got, &want[k * per_img..(k + 1) * per_img]);
            eprintln!("transform size {size} {file}: max abs diff {max:.2e}, mean {mean:.2e}");
            assert!(max <= 1e-2, "size {size} {file}: max abs diff {max}");
            assert!(
                max <= 1e-5,
                "the Pillow port should be exact up to f32 rounding: {max}"
            );
        }
    }
}

/// The train transform's crop + resize against torchvision's `resized_crop` for fixed boxes.
#[test]
fn train_crop_matches_torchvision_resized_crop() {
    let crops: Vec<(String, u32, u32, u32, u32)> =
        serde_json::from_value(read_json(&fixtures().join("train_crops.json"))).unwrap();
    let (_, want) = read_npy(&fixtures().join("train_pixels_32.npy"));
    let per = want.len() / crops.len();
    for (k, (n, i, j, h, w)) in crops.iter().enumerate() {
        let file = n
            .strip_suffix(".jpg")
            .map(|s| format!("{s}.pil-decoded.png"))
            .unwrap_or(n.clone());
        let img = preprocess::load_rgb(&fixtures().join("images").join(&file)).unwrap();
        let got = preprocess::resized_crop(&img, (*i, *j, *h, *w), 32);
        let (max, _) = pixel_diffs(&got, &want[k * per..(k + 1) * per]);
        eprintln!("train crop {file} ({i},{j},{h},{w}): max abs diff {max:.2e}");
        assert!(max <= 1e-5, "{file}: {max}");
    }
}

/// End to end from the encoded files (our JPEG decoder vs libjpeg-turbo in PIL): PNGs stay exact;
/// JPEG decoders differ by a few levels per pixel, bounded here at 3/255 in pixel space.
#[test]
fn eval_batch_from_files_matches_openclip_pixels() {
    let imgs = image_bytes();
    let names: Vec<String> =
        serde_json::from_value(read_json(&fixtures().join("images.json"))).unwrap();
    for size in [32u32, 64] {
        let (shape, want) = read_npy(&fixtures().join(format!("pixels_{size}.npy")));
        let got = preprocess::eval_batch(&imgs, size, &Device::Cpu).unwrap();
        assert_eq!(got.dims(), shape.as_slice());
        let got = flat(&got);
        let per_img = want.len() / imgs.len();
        for (k, (g, w)) in got.chunks(per_img).zip(want.chunks(per_img)).enumerate() {
            let (max, mean) = pixel_diffs(g, w);
            eprintln!(
                "end-to-end size {size} {}: max abs diff {max:.2e}, mean {mean:.2e}",
                names[k]
            );
            // JPEGs are decoded by libjpeg-turbo's decoder as in PIL: exact, like PNGs.
            let bound = 1e-6;
            assert!(max <= bound, "size {size} {}: max abs diff {max}", names[k]);
        }
    }
}

#[test]
fn features_and_logits_match_openclip() {
    let model = tiny_model();
    let (pixels, texts) = feature_inputs();
    let ids = tokens(&texts);

    let img = model.encode_image(&pixels).unwrap();
    let txt = model.encode_text(&ids).unwrap();
    let e_img = rel_err_to(&img, &fixtures().join("image_features.npy"));
    let e_txt = rel_err_to(&txt, &fixtures().join("text_features.npy"));
    let (img_n, txt_n, scale) = model.forward(&pixels, &ids).unwrap();
    let e_img_n = rel_err_to(&img_n, &fixtures().join("image_features_norm.npy"));
    let e_txt_n = rel_err_to(&txt_n, &fixtures().join("text_features_norm.npy"));
    let logits = img_n
        .matmul(&txt_n.t().unwrap())
        .unwrap()
        .broadcast_mul(&scale)
        .unwrap();
    let e_logits = rel_err_to(&logits, &fixtures().join("logits_per_image.npy"));
    let want_scale = read_json(&fixtures().join("logit_scale.json"))["logit_scale_exp"]
        .as_f64()
        .unwrap();
    let got_scale: f32 = scale.to_scalar().unwrap();
    eprintln!("relative errors: image {e_img:.2e} text {e_txt:.2e} image_norm {e_img_n:.2e} text_norm {e_txt_n:.2e} logits {e_logits:.2e}");
    for e in [e_img, e_txt, e_img_n, e_txt_n, e_logits] {
        assert!(e < 1e-4, "relative error {e}");
    }
    assert!((got_scale as f64 - want_scale).abs() < 1e-5);
}

#[test]
fn save_then_load_roundtrip_keeps_openclip_names() {
    let model = tiny_model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rust_tiny.safetensors");
    checkpoint::save_safetensors(&model, &path).unwrap();
    let sd = checkpoint::load_state_dict(&path).unwrap();
    let cfg = tiny_config();
    checkpoint::validate(&cfg, &sd).unwrap();
    let orig =
        candle_core::safetensors::load_buffer(&tiny_openclip_safetensors(), &Device::Cpu).unwrap();
    assert_eq!(sd.len(), orig.len());
    for (k, v) in &orig {
        assert_eq!(flat(v), flat(&sd[k]), "{k}");
    }
    let back = checkpoint::load_clip(&cfg, &path, DType::F32, &Device::Cpu).unwrap();
    let ids = tokens(&["a photo of a cat".to_string()]);
    assert_eq!(
        flat(&back.encode_text(&ids).unwrap()),
        flat(&model.encode_text(&ids).unwrap())
    );
}

#[test]
fn bad_checkpoints_name_the_key_and_shapes() {
    let cfg = tiny_config();
    let mut sd =
        candle_core::safetensors::load_buffer(&tiny_openclip_safetensors(), &Device::Cpu).unwrap();
    sd.insert(
        "visual.proj".into(),
        Tensor::zeros((64, 31), DType::F32, &Device::Cpu).unwrap(),
    );
    let e = format!("{:#}", checkpoint::validate(&cfg, &sd).unwrap_err());
    assert!(
        e.contains("visual.proj") && e.contains("[64, 32]") && e.contains("[64, 31]"),
        "{e}"
    );
    sd.remove("ln_final.bias");
    sd.insert(
        "visual.proj".into(),
        Tensor::zeros((64, 32), DType::F32, &Device::Cpu).unwrap(),
    );
    let e = format!("{:#}", checkpoint::validate(&cfg, &sd).unwrap_err());
    assert!(
        e.contains("missing tensor `ln_final.bias`") && e.contains("[64]"),
        "{e}"
    );
    // Through the file loader too, naming the file.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.safetensors");
    checkpoint::write_safetensors_atomic(&sd, &p).unwrap();
    let e = format!(
        "{:#}",
        checkpoint::load_clip(&cfg, &p, DType::F32, &Device::Cpu).unwrap_err()
    );
    assert!(
        e.contains("bad.safetensors") && e.contains("ln_final.bias"),
        "{e}"
    );
}

#[test]
fn hf_layout_maps_to_openclip() {
    // Build an HF-layout dict from the fixture by the documented name map, then map it back.
    let orig =
        candle_core::safetensors::load_buffer(&tiny_openclip_safetensors(), &Device::Cpu).unwrap();
    let cfg = tiny_config();
    let mut hf = checkpoint::StateDict::new();
    for (k, v) in &orig {
        let mut name = k
            .replace(
                "visual.transformer.resblocks.",
                "vision_model.encoder.layers.",
            )
            .replace("transformer.resblocks.", "text_model.encoder.layers.")
            .replace(".ln_1.", ".layer_norm1.")
            .replace(".ln_2.", ".layer_norm2.")
            .replace(".mlp.c_fc.", ".mlp.fc1.")
            .replace(".mlp.c_proj.", ".mlp.fc2.")
            .replace(".attn.out_proj.", ".self_attn.out_proj.");
        let mut value = v.clone();
        match k.as_str() {
            "visual.conv1.weight" => name = "vision_model.embeddings.patch_embedding.weight".into(),
            "visual.class_embedding" => name = "vision_model.embeddings.class_embedding".into(),
            "visual.positional_embedding" => {
                name = "vision_model.embeddings.position_embedding.weight".into()
            }
            "visual.ln_pre.weight" | "visual.ln_pre.bias" => {
                name = k.replace("visual.ln_pre", "vision_model.pre_layrnorm")
            }
            "visual.ln_post.weight" | "visual.ln_post.bias" => {
                name = k.replace("visual.ln_post", "vision_model.post_layernorm")
            }
            "token_embedding.weight" => {
                name = "text_model.embeddings.token_embedding.weight".into()
            }
            "positional_embedding" => {
                name = "text_model.embeddings.position_embedding.weight".into()
            }
            "ln_final.weight" | "ln_final.bias" => {
                name = k.replace("ln_final", "text_model.final_layer_norm")
            }
            "visual.proj" => {
                name = "visual_projection.weight".into();
                value = v.t().unwrap().contiguous().unwrap();
            }
            "text_projection" => {
                name = "text_projection.weight".into();
                value = v.t().unwrap().contiguous().unwrap();
            }
            _ => {}
        }
        if name.contains(".attn.in_proj_") {
            let d = v.dim(0).unwrap() / 3;
            let p = if name.ends_with("weight") {
                "weight"
            } else {
                "bias"
            };
            let base = name.split(".attn.in_proj_").next().unwrap().to_string();
            for (i, q) in ["q_proj", "k_proj", "v_proj"].iter().enumerate() {
                hf.insert(
                    format!("{base}.self_attn.{q}.{p}"),
                    v.narrow(0, i * d, d).unwrap(),
                );
            }
            continue;
        }
        hf.insert(name, value);
    }
    hf.insert(
        "text_model.embeddings.position_ids".into(),
        Tensor::zeros((1, 77), DType::I64, &Device::Cpu).unwrap(),
    );
    let mapped = checkpoint::hf_to_openclip(hf).unwrap();
    checkpoint::validate(&cfg, &mapped).unwrap();
    for (k, v) in &orig {
        assert_eq!(flat(v), flat(&mapped[k]), "{k}");
    }
}

#[test]
fn openclip_epoch_checkpoint_loads_and_matches() {
    let dir = fixtures().join("micro");
    let cfg = ClipConfig::from_json_file(&dir.join("config.json")).unwrap();
    let sd = checkpoint::load_state_dict(&dir.join("epoch_1.pt")).unwrap();
    assert!(sd.keys().all(|k| !k.starts_with("module.")));
    let model =
        checkpoint::load_clip(&cfg, &dir.join("epoch_1.pt"), DType::F32, &Device::Cpu).unwrap();
    let (pshape, pixels) = read_npy(&dir.join("pixels.npy"));
    let pixels = Tensor::from_vec(pixels, pshape, &Device::Cpu).unwrap();
    let ids: Vec<Vec<u32>> = serde_json::from_value(read_json(&dir.join("ids.json"))).unwrap();
    let n = ids.len();
    let ids = Tensor::from_vec(
        ids.into_iter().flatten().collect::<Vec<_>>(),
        (n, 77),
        &Device::Cpu,
    )
    .unwrap();
    let e_img = rel_err_to(
        &model.encode_image(&pixels).unwrap(),
        &dir.join("image_features.npy"),
    );
    let e_txt = rel_err_to(
        &model.encode_text(&ids).unwrap(),
        &dir.join("text_features.npy"),
    );
    eprintln!("epoch_1.pt relative errors: image {e_img:.2e} text {e_txt:.2e}");
    assert!(e_img < 1e-4 && e_txt < 1e-4);
}

/// Writes Rust-made safetensors for the OpenCLIP-side check (`make_clip_fixtures.py verify-rust`,
/// see docs/model.md): the tiny fixture model re-saved, and fresh Rust initialisations of
/// tiny-test and ViT-B-32.
#[test]
#[ignore = "writes files for the Python check; run with TIC_MODEL_PY_CHECK_DIR set"]
fn write_rust_files_for_python_check() {
    let dir =
        PathBuf::from(std::env::var("TIC_MODEL_PY_CHECK_DIR").expect("TIC_MODEL_PY_CHECK_DIR"));
    std::fs::create_dir_all(&dir).unwrap();
    checkpoint::save_safetensors(&tiny_model(), &dir.join("rust_tiny_resaved.safetensors"))
        .unwrap();
    for (name, file) in [
        ("tiny-test", "rust_tiny_init.safetensors"),
        ("ViT-B-32", "rust_vit_b_32_init.safetensors"),
    ] {
        let cfg = ClipConfig::builtin(name).unwrap();
        let vm = candle_nn::VarMap::new();
        tic_model::init::init_varmap(&cfg, &vm, 7, DType::F32, &Device::Cpu).unwrap();
        checkpoint::save_varmap_safetensors(&cfg, &vm, &dir.join(file)).unwrap();
    }
}

/// The training graph (Vars → differentiable LayerNorm/softmax) gives the same features.
#[test]
fn trainable_model_matches_openclip_too() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tiny.safetensors");
    std::fs::write(&p, tiny_openclip_safetensors()).unwrap();
    let (vm, model) =
        checkpoint::load_trainable(&tiny_config(), &p, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(
        vm.all_vars().len(),
        tic_model::init::param_specs(&tiny_config()).len()
    );
    let (pixels, texts) = feature_inputs();
    let img = model.encode_image(&pixels).unwrap();
    let txt = model.encode_text(&tokens(&texts)).unwrap();
    assert!(
        img.track_op() && txt.track_op(),
        "outputs must be part of the autograd graph"
    );
    let e_img = rel_err_to(&img, &fixtures().join("image_features.npy"));
    let e_txt = rel_err_to(&txt, &fixtures().join("text_features.npy"));
    eprintln!("trainable graph relative errors: image {e_img:.2e} text {e_txt:.2e}");
    assert!(e_img < 1e-4 && e_txt < 1e-4);
}
