//! Small synthetic inputs for the YFCC15M and RedCaps splitters (demo and tests without the
//! real data): a `yfcc15m.csv` in the real file's shape, or RedCaps-style
//! `annotations/{subreddit}_{year}.json` files, optionally with tiny JPEGs at the image paths
//! (under `images/`) so the split files can be packed into WebDataset tars.
//!
//! Captions exercise the cleaning: `+` and `%XX` escapes, HTML tags and entities, curly quotes,
//! empty fields; upload times span 2003–2016 so some rows fall outside the year groups.
//! Content drifts with time (the caption vocabulary slides over the years) and each image's
//! colour is set by its caption's first concept word, so a tiny CLIP trained on the time splits
//! learns something and models of different years differ, as on the DataComp-like pool.
use crate::yfcc::image_path;
use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::Write;
use std::path::Path;
use tic_shards::atomic::AtomicFile;

const WORDS: [&str; 24] = [
    "cat",
    "dog",
    "beach",
    "sunset",
    "mountain",
    "car",
    "bridge",
    "city",
    "flower",
    "bird",
    "river",
    "snow",
    "garden",
    "train",
    "market",
    "tower",
    "boat",
    "forest",
    "lake",
    "street",
    "caf%C3%A9",
    "na%C3%AFve",
    "M%C3%BCnchen",
    "%E6%9D%B1%E4%BA%AC",
];

const SUBREDDITS: [&str; 6] = [
    "itookapicture",
    "earthporn",
    "cats",
    "food",
    "pics",
    "birding",
];

/// Which synthetic dataset to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// `yfcc15m.csv`.
    Yfcc,
    /// `annotations/{subreddit}_{year}.json`.
    Redcaps,
}

/// `lo..hi` words joined by `sep`. Time drifts the vocabulary: at time `t` (0 = the first year,
/// 1 = the last) 70 % of the words come from a window of 6 of the 20 plain concept words that
/// slides from the first ones to the last ones, so captions (and the images coloured by their
/// first concept, see [`concept_color`]) differ from year to year as the TiC data do.
fn words(rng: &mut ChaCha8Rng, lo: usize, hi: usize, sep: &str, t: f64) -> String {
    let n = rng.random_range(lo..hi);
    let start = (t.clamp(0.0, 1.0) * 14.0).round() as usize;
    (0..n)
        .map(|_| {
            if rng.random_bool(0.7) {
                WORDS[start + rng.random_range(0..6)]
            } else {
                WORDS[rng.random_range(0..WORDS.len())]
            }
        })
        .collect::<Vec<_>>()
        .join(sep)
}

fn hex32(rng: &mut ChaCha8Rng) -> String {
    format!("{:032x}", rng.random::<u128>())
}

/// Unix seconds at the start of `year` (UTC).
fn year_start(year: i64) -> i64 {
    let days_before =
        |y: i64| 365 * (y - 1970) + ((y - 1969) / 4) - ((y - 1901) / 100) + ((y - 1601) / 400);
    days_before(year) * 86_400
}

/// The colour of the first plain concept word (one of the first 20 [`WORDS`]) in `text`, so a
/// model can learn to match captions and images; `None` when no concept word occurs.
fn concept_color(text: &str) -> Option<[u8; 3]> {
    let first = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find_map(|t| WORDS[..20].iter().position(|w| w.eq_ignore_ascii_case(t)))?;
    // 20 hues around the wheel at full saturation.
    let h = first as f32 / 20.0 * 6.0;
    let x = 1.0 - ((h % 2.0) - 1.0).abs();
    let (r, g, b) = match h as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    Some([r, g, b].map(|v| (40.0 + 200.0 * v) as u8))
}

/// A 16×16 JPEG: the caption's concept colour (see [`concept_color`]) with a little noise, or
/// a random gradient when the caption names no concept.
fn write_jpeg(path: &Path, rng: &mut ChaCha8Rng, color: Option<[u8; 3]>) -> Result<()> {
    let img = match color {
        Some(c) => image::RgbImage::from_fn(16, 16, |_, _| {
            image::Rgb(c.map(|v| v.saturating_add(rng.random_range(0..16))))
        }),
        None => {
            let c = [rng.random::<u8>(), rng.random::<u8>(), rng.random::<u8>()];
            image::RgbImage::from_fn(16, 16, |x, y| {
                image::Rgb([
                    c[0].wrapping_add(x as u8 * 8),
                    c[1].wrapping_add(y as u8 * 8),
                    c[2],
                ])
            })
        }
    };
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Jpeg,
        )
        .context("encoding a JPEG")?;
    tic_shards::atomic::write_atomic(path, &bytes)
        .with_context(|| format!("writing {}", path.display()))
}

/// Writes `out/yfcc15m.csv` with `rows` rows (and `out/images/…` when `images`).
pub fn write_yfcc(out: &Path, seed: u64, rows: usize, images: bool) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pixels = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_1A6E);
    let path = out.join("yfcc15m.csv");
    let f = AtomicFile::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = csv::Writer::from_writer(f);
    w.write_record([
        "photoid",
        "dateuploaded",
        "title",
        "description",
        "usertags",
        "downloadurl",
        "key",
    ])?;
    for i in 0..rows {
        let key = hex32(&mut rng);
        let year = rng.random_range(2003..=2016);
        let ts = year_start(year) + rng.random_range(0..365 * 86_400);
        let t = (year - 2003) as f64 / 13.0;
        let title = match rng.random_range(0..10) {
            0 => String::new(),
            1 => format!("%26quot%3B{}%26quot%3B", words(&mut rng, 2, 3, "+", t)),
            _ => words(&mut rng, 1, 4, "+", t),
        };
        let description = match rng.random_range(0..6) {
            0 => String::new(),
            1 => format!(
                "%3Cb%3E{}%3C%2Fb%3E+%26amp%3B+more",
                words(&mut rng, 3, 4, "+", t)
            ),
            2 => format!("%E2%80%9C{}%E2%80%9D", words(&mut rng, 4, 5, "+", t)),
            _ => words(&mut rng, 2, 12, "+", t),
        };
        let usertags = if rng.random_bool(0.3) {
            String::new()
        } else {
            words(&mut rng, 1, 5, ",", t)
        };
        let url = format!("http://farm{}.staticflickr.com/{}.jpg", i % 9, key);
        let color = concept_color(&format!("{title} {description} {usertags}"));
        w.write_record([
            (1_000_000 + i).to_string(),
            ts.to_string(),
            title,
            description,
            usertags,
            url,
            key.clone(),
        ])?;
        if images {
            write_jpeg(
                &out.join("images").join(image_path(&key)),
                &mut pixels,
                color,
            )?;
        }
    }
    w.into_inner()
        .map_err(|e| anyhow::anyhow!("writing {}: {}", path.display(), e.error()))?
        .commit()
        .with_context(|| format!("writing {}", path.display()))
}

/// Writes `out/annotations/{subreddit}_{year}.json` with `rows` annotations in all (and
/// `out/images/{subreddit}/{image_id}.jpg` when `images`).
pub fn write_redcaps(out: &Path, seed: u64, rows: usize, images: bool) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pixels = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_1A6E);
    let mut files: std::collections::BTreeMap<(usize, i64), Vec<serde_json::Value>> =
        Default::default();
    for i in 0..rows {
        let s = rng.random_range(0..SUBREDDITS.len());
        let year = rng.random_range(2017..=2020);
        let image_id = format!("{:06x}{}", rng.random::<u32>() & 0xffffff, i % 10);
        let t = (year - 2017) as f64 / 3.0;
        let raw = crate::captions::unquote_plus(&words(&mut rng, 2, 10, "+", t));
        let color = concept_color(&raw);
        let caption = if rng.random_bool(0.1) {
            format!("\"{raw}\"\tquoted")
        } else {
            raw.to_lowercase()
        };
        let created = year_start(year) + rng.random_range(0..365 * 86_400);
        files.entry((s, year)).or_default().push(serde_json::json!({
            "image_id": image_id,
            "author": format!("user{}", rng.random_range(0..1000)),
            "url": format!("https://i.redd.it/{image_id}.jpg"),
            "raw_caption": raw,
            "caption": caption,
            "subreddit": SUBREDDITS[s],
            "score": rng.random_range(1..5000),
            "created_utc": created,
            "permalink": format!("/r/{}/comments/{image_id}/", SUBREDDITS[s]),
        }));
        if images {
            write_jpeg(
                &out.join("images")
                    .join(SUBREDDITS[s])
                    .join(format!("{image_id}.jpg")),
                &mut pixels,
                color,
            )?;
        }
    }
    for ((s, year), anns) in files {
        let path = out
            .join("annotations")
            .join(format!("{}_{year}.json", SUBREDDITS[s]));
        let doc = serde_json::json!({
            "info": {"url": "https://redcaps.xyz", "subreddit": SUBREDDITS[s], "year": year},
            "annotations": anns,
        });
        let mut f =
            AtomicFile::create(&path).with_context(|| format!("creating {}", path.display()))?;
        serde_json::to_writer(&mut f, &doc)?;
        f.flush()?;
        f.commit()
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn year_starts() {
        assert_eq!(year_start(1970), 0);
        assert_eq!(crate::yfcc::utc_year(year_start(2004)), 2004);
        assert_eq!(crate::yfcc::utc_year(year_start(2004) - 1), 2003);
        assert_eq!(crate::yfcc::utc_year(year_start(2016) + 365 * 86_400), 2016);
        // leap year
    }

    #[test]
    fn captions_name_the_image_colour() {
        assert_eq!(concept_color("the cat sat"), concept_color("Cat+and+dog"));
        assert_ne!(concept_color("cat"), concept_color("dog"));
        // The first concept word decides; accents and unknown words do not count.
        assert_eq!(
            concept_color("na%C3%AFve,river,cat"),
            concept_color("river")
        );
        assert_eq!(concept_color("caf%C3%A9 nothing"), None);
        let all: std::collections::BTreeSet<_> =
            WORDS[..20].iter().map(|w| concept_color(w)).collect();
        assert_eq!(all.len(), 20, "every concept has its own colour");
    }
}
