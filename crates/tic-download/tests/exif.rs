//! tic-download's `exif` field against img2dataset 1.40's (exifread-nocycle 3.0.1 as its
//! downloader calls it), byte for byte: the synthetic images of `tests/fixtures/exif/cases/`
//! (every TIFF field type, GPS, Interoperability, enumerated values, both byte orders, JPEG
//! segment layouts, WebP, PNG, TIFF, malformed and truncated blocks) and 400 byte-level
//! mutations of them, all with the strings `gen_exif.py` recorded from the real package.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use tic_download::exif::{img2dataset_exif, read_tags};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/exif");

fn case(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/cases/{name}")).unwrap()
}

#[test]
fn every_case_as_exifread_prints_it() {
    let text = std::fs::read_to_string(format!("{FIXTURES}/expected.json")).unwrap();
    let expected: BTreeMap<String, Option<String>> = serde_json::from_str(&text).unwrap();
    assert!(expected.len() >= 30, "{} cases", expected.len());
    let mut wrong = Vec::new();
    for (name, want) in &expected {
        let got = img2dataset_exif(&case(name));
        if &got != want {
            wrong.push(format!(
                "{name}:\n  exifread: {want:?}\n  ours:     {got:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let tagged = expected.values().flatten().filter(|s| s.len() > 2).count();
    let nulls = expected.values().filter(|s| s.is_none()).count();
    assert!(
        tagged >= 15 && nulls >= 5,
        "{tagged} with tags, {nulls} null"
    );
}

#[test]
fn mutated_blocks_as_exifread_reads_them() {
    let text = std::fs::read_to_string(format!("{FIXTURES}/mutants.json")).unwrap();
    let mutants: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(mutants.len(), 400);
    let mut bases = BTreeMap::new();
    let mut wrong = Vec::new();
    for (i, m) in mutants.iter().enumerate() {
        let base = m["base"].as_str().unwrap();
        let mut data = bases
            .entry(base.to_string())
            .or_insert_with(|| case(base))
            .clone();
        for flip in m["flips"].as_array().unwrap() {
            data[flip[0].as_u64().unwrap() as usize] = flip[1].as_u64().unwrap() as u8;
        }
        let got = img2dataset_exif(&data);
        let digest = got
            .as_ref()
            .map(|s| hex::encode(Sha256::digest(s.as_bytes())));
        if digest.as_deref() != m["exif_sha256"].as_str() {
            wrong.push(format!("mutant {i} of {base}: ours {got:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn errors_name_the_source_and_offset() {
    let err = read_tags(&case("truncated_long.tif"), "http://x/a.tif").unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("http://x/a.tif: EXIF at byte "), "{msg}");
    assert!(msg.contains("struct.error"), "{msg}");
    let err = read_tags(&case("bad_byte_order.jpg"), "b.jpg").unwrap_err();
    assert!(err.to_string().contains("KeyError"), "{err}");
}
