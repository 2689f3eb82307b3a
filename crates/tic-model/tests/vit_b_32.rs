//! ViT-B-32 parity against a random-init OpenCLIP model. The fixture (~600 MB) is generated on
//! demand and not committed:
//!
//! ```text
//! python crates/tic-model/tests/fixtures/make_clip_fixtures.py vit-b-32  # writes out/model-fixtures/vit-b-32
//! cargo test -p tic-model --release --test vit_b_32 -- --ignored
//! ```
//! `TIC_MODEL_VITB32_FIXTURES` overrides the folder.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use tic_model::{checkpoint, preprocess, ClipConfig, Tokenizer};

fn dir() -> PathBuf {
    std::env::var_os("TIC_MODEL_VITB32_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| tic_testkit::workspace_root().join("out/model-fixtures/vit-b-32"))
}

fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e} (generate the fixture first)", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    (shape, npy.into_vec::<f32>().unwrap())
}

fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    let num = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    num / b.iter().map(|y| y.abs()).fold(0f32, f32::max)
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
#[ignore = "needs the generated ViT-B-32 fixture (see the file header)"]
fn vit_b_32_matches_openclip() {
    let d = dir();
    let cfg = ClipConfig::builtin("ViT-B-32").unwrap();
    let (pshape, pixels) = read_npy(&d.join("pixels_224.npy"));
    let px = Tensor::from_vec(pixels.clone(), pshape, &Device::Cpu).unwrap();
    let texts: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(d.join("feature_texts.json")).unwrap())
            .unwrap();
    let ids = Tokenizer::shared()
        .tokenize_tensor(&texts, &Device::Cpu)
        .unwrap();
    for weights in ["weights.safetensors", "epoch_1.pt"] {
        let model =
            checkpoint::load_clip(&cfg, &d.join(weights), DType::F32, &Device::Cpu).unwrap();
        let e_img = rel_err(
            &flat(&model.encode_image(&px).unwrap()),
            &read_npy(&d.join("image_features.npy")).1,
        );
        let e_txt = rel_err(
            &flat(&model.encode_text(&ids).unwrap()),
            &read_npy(&d.join("text_features.npy")).1,
        );
        let (i, t, s) = model.forward(&px, &ids).unwrap();
        let logits = i
            .matmul(&t.t().unwrap())
            .unwrap()
            .broadcast_mul(&s)
            .unwrap();
        let e_log = rel_err(&flat(&logits), &read_npy(&d.join("logits_per_image.npy")).1);
        eprintln!("ViT-B-32 {weights}: relative errors image {e_img:.2e} text {e_txt:.2e} logits {e_log:.2e}");
        assert!(e_img < 1e-4 && e_txt < 1e-4 && e_log < 1e-4);
    }
    // 224-px preprocessing on the same images.
    let names: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(d.join("images.json")).unwrap()).unwrap();
    let per = pixels.len() / names.len();
    for (k, n) in names.iter().enumerate() {
        let file = n
            .strip_suffix(".jpg")
            .map(|s| format!("{s}.pil-decoded.png"))
            .unwrap_or(n.clone());
        let img = preprocess::load_rgb(&d.join("images").join(&file)).unwrap();
        let got = preprocess::eval_transform(&img, 224);
        let max = got
            .iter()
            .zip(&pixels[k * per..(k + 1) * per])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!("224 px {file}: max abs diff {max:.2e}");
        assert!(max <= 1e-2);
    }
}
