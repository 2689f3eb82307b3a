//! Decoding parity with img2dataset 1.40 beyond RGB JPEG: WebP (lossy, lossless, alpha), BMP,
//! TIFF, palette / grey / grey+alpha PNG, CMYK JPEG, and GIF (which OpenCV 4.10 cannot decode,
//! so img2dataset fails it: so must we). The reference is img2dataset's own `Resizer` (resize mode "no", PNG
//! output: lossless, so its pixels are exactly the decode + alpha matting), recorded by
//! `tests/fixtures/formats/gen_formats.py`; here each file goes through `pixels::process` with
//! the same settings and the decoded pixels' SHA-256 must match.

use sha2::{Digest, Sha256};
use std::path::Path;
use tic_download::args::{EncodeFormat, ResizeMode};
use tic_download::pixels::{process, ResizeOpts};

#[test]
fn non_jpeg_formats_decode_to_img2dataset_pixels() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formats");
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let opts = ResizeOpts {
        image_size: 64,
        mode: ResizeMode::No,
        only_if_bigger: true,
        format: EncodeFormat::Png,
        quality: 9,
        max_pixels: 1 << 30,
    };
    let cases = expected.as_object().unwrap();
    let mut checked = 0;
    for (name, want) in cases.iter().filter(|(n, _)| !n.starts_with('_')) {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        match (process(&bytes, &opts, None), want.get("error")) {
            (Err(e), Some(w)) => assert_eq!(e, w.as_str().unwrap(), "{name}"),
            (Ok(p), None) => {
                let img = image::load_from_memory(&p.bytes).unwrap();
                let channels = img.color().channel_count();
                let px = img.into_bytes();
                assert_eq!(
                    channels as u64,
                    want["channels"].as_u64().unwrap(),
                    "{name}"
                );
                assert_eq!(p.width as u64, want["width"].as_u64().unwrap(), "{name}");
                assert_eq!(p.height as u64, want["height"].as_u64().unwrap(), "{name}");
                assert_eq!(
                    hex::encode(Sha256::digest(&px)),
                    want["pixels_sha256"].as_str().unwrap(),
                    "{name}: pixels differ from img2dataset's"
                );
            }
            (got, _) => panic!(
                "{name}: got {:?}, img2dataset gave {want}",
                got.map(|p| p.width)
            ),
        }
        checked += 1;
    }
    assert!(checked >= 13, "only {checked} cases in expected.json");
}
