//! Shard lists: DataComp `train.py`'s `get_input_shards` for `--data_dir` / `--data_weights`,
//! with per-shard sample counts from `sizes.json` (or `*_stats.json`).
//!
//! Expansion rules (DataComp @ 7fdb5c6):
//! - the argument is split on `::`; each part is expanded on its own, with its own weight;
//! - a path ending in `.tar` is one shard;
//! - a folder: each sub-folder holding `meta.json` (resharder output) becomes
//!   `{first..last}` from `output_shard_count` / `output_shard_format`; other sub-folders are
//!   recursed into; `.tar` files of the folder itself are grouped by the prefix before their
//!   trailing digits and become `prefix{0..max}` with the zero-padding of the first name
//!   (numbering assumed contiguous from 0, as DataComp does);
//! - a part's weight is replicated for every shard pattern it expands to, so weights are per
//!   *shard* (OpenCLIP `--train-data-upsampling-factors`).
//!
//! Differences: sub-folders are visited in name order (Python's `iterdir` order is arbitrary);
//! a `data_dir` that itself holds `meta.json` is taken as one resharder output (DataComp would
//! only see its tar files, with the same result for contiguous names); and every shard must have
//! a sample count in its folder's `sizes.json` or stats files, since the loader plans by count.
//!
//! A part that is a webdataset `pipe:CMD` URL (`pipe:aws s3 cp s3://b/{00000000..00001023}.tar -`)
//! is brace-expanded ([`tic_shards::pipe::PipeUrl::expand`]) into one shard per item, streamed
//! through `sh -c`. Such shards have no sample count ([`Shard::samples`] is `None`); the run must
//! then sample with replacement for a given number of samples, as OpenCLIP requires.
//!
//! A folder whose `meta.json` says `"complete": false` (a `tic-reshard` run that lost input to a
//! truncated or corrupt tar) is refused unless the loss is accepted explicitly
//! ([`ACCEPT_INCOMPLETE_FLAG`]).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use tic_shards::counts::{shard_sizes, SIZES_FILE};
use tic_shards::pipe::{self, PipeUrl};
use tic_shards::reshard::{ReshardMeta, META_FILE};
use tic_shards::shardfmt::ShardFormat;
use tic_shards::storage::Location;

/// One shard to train on.
#[derive(Debug, Clone)]
pub struct Shard {
    /// Where it is.
    pub location: Location,
    /// Number of samples (from `sizes.json`); `None` for a `pipe:` shard (counted when streamed).
    pub samples: Option<u64>,
    /// Sampling weight of the shard (the weight of its `::` input; 1 without weights).
    pub weight: f64,
    /// Index of the `::` input it came from.
    pub input: usize,
}

/// A shard pattern as DataComp builds it: a folder and the shard names it stands for.
#[derive(Debug, Clone)]
pub struct ShardPattern {
    /// Folder of the shards.
    pub dir: Location,
    /// Shard file names, in order.
    pub names: Vec<String>,
    /// Index of the `::` input.
    pub input: usize,
}

impl ShardPattern {
    /// The pattern in DataComp's brace notation (webdataset's, [`pipe::brace_range`]), e.g.
    /// `dir/{00000000..00000011}.tar`.
    pub fn brace_string(&self) -> String {
        match self.names.as_slice() {
            [one] => self.dir.join(one).to_string(),
            [first, .., last] => format!(
                "{}/{}.tar",
                self.dir,
                pipe::brace_range(
                    first.trim_end_matches(".tar"),
                    last.trim_end_matches(".tar")
                )
            ),
            [] => format!("{}/(no shards)", self.dir),
        }
    }
}

/// Splits `digits at the end`: `("prefix", "000123")`.
fn split_trailing_digits(stem: &str) -> Option<(&str, &str)> {
    let n = stem.len() - stem.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    (n > 0).then(|| stem.split_at(stem.len() - n))
}

fn expand_one(loc: &Location, input: usize, out: &mut Vec<ShardPattern>) -> Result<()> {
    let s = loc.to_string();
    if s.ends_with(".tar") {
        let name = loc.name();
        let dir = Location::parse(s.trim_end_matches(&name).trim_end_matches('/'))?;
        out.push(ShardPattern {
            dir,
            names: vec![name],
            input,
        });
        return Ok(());
    }
    let meta = loc.join(META_FILE);
    if meta.exists()? {
        out.push(meta_pattern(loc, input)?);
        return Ok(());
    }
    let entries = loc
        .list()
        .with_context(|| format!("listing --data_dir entry {loc}"))?;
    let mut prefixes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &entries {
        if e.is_dir {
            let sub = loc.join(&e.name);
            if sub.join(META_FILE).exists()? {
                out.push(meta_pattern(&sub, input)?);
            } else {
                expand_one(&sub, input, out)?;
            }
        } else if let Some(stem) = e.name.strip_suffix(".tar") {
            if let Some((prefix, digits)) = split_trailing_digits(stem) {
                prefixes
                    .entry(prefix.to_string())
                    .or_default()
                    .push(digits.to_string());
            } else {
                bail!(
                    "{}: shard name has no trailing digits (DataComp's expansion needs NNN.tar)",
                    loc.join(&e.name)
                );
            }
        }
    }
    for (prefix, suffixes) in prefixes {
        let width = suffixes[0].len();
        let last = suffixes
            .iter()
            .map(|d| d.parse::<u64>().unwrap_or(0))
            .max()
            .unwrap_or(0);
        let names = (0..=last)
            .map(|i| format!("{prefix}{i:0width$}.tar"))
            .collect();
        out.push(ShardPattern {
            dir: loc.clone(),
            names,
            input,
        });
    }
    Ok(())
}

fn meta_pattern(dir: &Location, input: usize) -> Result<ShardPattern> {
    let meta = dir.join(META_FILE);
    let v = ReshardMeta::from_slice(&meta.read()?)
        .with_context(|| format!("{meta}: not valid JSON"))?;
    let count = v
        .output_shard_count()
        .with_context(|| format!("{meta}: missing integer key `output_shard_count`"))?;
    let fmt = v
        .output_shard_format()
        .with_context(|| format!("{meta}: missing string key `output_shard_format`"))?;
    let fmt = ShardFormat::parse(fmt).with_context(|| format!("{meta}: output_shard_format"))?;
    Ok(ShardPattern {
        dir: dir.clone(),
        names: (0..count).map(|i| fmt.format(i)).collect(),
        input,
    })
}

/// DataComp's `get_input_shards`: expands `data_dir` (`::`-joined local paths or URLs) into
/// shard patterns, in DataComp's order. `pipe:` entries are left out (see [`input_shards`]).
pub fn input_patterns(data_dir: &str) -> Result<Vec<ShardPattern>> {
    let mut out = Vec::new();
    for (i, part) in data_dir.split("::").enumerate() {
        if !pipe::is_pipe(part) {
            out.extend(part_patterns(data_dir, part, i)?);
        }
    }
    Ok(out)
}

/// The shard patterns of `--data_dir` entry #`i` (`part`, not a `pipe:` URL).
fn part_patterns(data_dir: &str, part: &str, i: usize) -> Result<Vec<ShardPattern>> {
    if part.is_empty() {
        bail!("--data_dir {data_dir:?}: empty entry #{i}");
    }
    let loc = Location::parse(part)?;
    let mut out = Vec::new();
    expand_one(&loc, i, &mut out)?;
    if out.iter().all(|p| p.names.is_empty()) {
        bail!("--data_dir entry {part:?} holds no shards (no .tar files, no meta.json)");
    }
    Ok(out)
}

/// Parses `--data_weights` (`1::2::0.5`), one per `::` input.
pub fn parse_weights(weights: Option<&str>, inputs: usize) -> Result<Vec<f64>> {
    let Some(w) = weights else {
        return Ok(vec![1.0; inputs]);
    };
    let v: Vec<f64> = w
        .split("::")
        .map(|x| {
            x.trim()
                .parse::<f64>()
                .with_context(|| format!("--data_weights {w:?}: {x:?} is not a number"))
        })
        .collect::<Result<_>>()?;
    if v.len() != inputs {
        bail!(
            "--data_weights has {} values but --data_dir has {inputs} entries",
            v.len()
        );
    }
    if v.iter().any(|x| !x.is_finite() || *x < 0.0) {
        bail!("--data_weights {w:?}: weights must be finite and >= 0");
    }
    Ok(v)
}

/// The tic-train option that accepts incomplete reshards (named in the refusal).
pub const ACCEPT_INCOMPLETE_FLAG: &str = "--accept_incomplete";

/// Expands `data_dir` and reads every shard's sample count. Shards listed with 0 samples are
/// kept (they are never drawn); a shard missing from its folder's `sizes.json` is an error; a
/// folder that `tic-reshard` marked incomplete is refused (see [`input_shards_accepting`]).
/// A `pipe:` entry gives one shard per brace item, without a count.
pub fn input_shards(data_dir: &str, weights: Option<&str>) -> Result<Vec<Shard>> {
    input_shards_accepting(data_dir, weights, false)
}

/// [`input_shards`], with `accept_incomplete` deciding whether folders that `tic-reshard` marked
/// incomplete (`"complete": false` in `meta.json`) are refused (false) or used with a warning.
pub fn input_shards_accepting(
    data_dir: &str,
    weights: Option<&str>,
    accept_incomplete: bool,
) -> Result<Vec<Shard>> {
    let inputs = data_dir.split("::").count();
    let w = parse_weights(weights, inputs)?;
    let mut sizes_cache: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut flush = |patterns: &mut Vec<ShardPattern>, out: &mut Vec<Shard>| {
        push_patterns(patterns, &w, &mut sizes_cache, accept_incomplete, out)
    };
    let mut out = Vec::new();
    let mut patterns = Vec::new();
    for (i, part) in data_dir.split("::").enumerate() {
        let Some(url) = PipeUrl::parse(part) else {
            patterns.extend(part_patterns(data_dir, part, i)?);
            continue;
        };
        // Flush the file patterns before this entry so shards stay in --data_dir order.
        flush(&mut patterns, &mut out)?;
        for shard in url
            .expand()
            .with_context(|| format!("--data_dir entry {part:?}"))?
        {
            out.push(Shard {
                location: shard.into(),
                samples: None,
                weight: w[i],
                input: i,
            });
        }
    }
    flush(&mut patterns, &mut out)?;
    Ok(out)
}

/// Turns the file patterns (drained) into shards with their counts from `sizes.json`.
fn push_patterns(
    patterns: &mut Vec<ShardPattern>,
    w: &[f64],
    sizes_cache: &mut BTreeMap<String, BTreeMap<String, u64>>,
    accept_incomplete: bool,
    out: &mut Vec<Shard>,
) -> Result<()> {
    for p in patterns.drain(..) {
        let key = p.dir.to_string();
        if !sizes_cache.contains_key(&key) {
            tic_shards::reshard::check_complete(&p.dir, accept_incomplete, ACCEPT_INCOMPLETE_FLAG)?;
            let sizes = shard_sizes(&p.dir)
                .with_context(|| format!("reading sample counts of {}", p.dir))?;
            sizes_cache.insert(key.clone(), sizes);
        }
        let sizes = &sizes_cache[&key];
        for name in &p.names {
            let n = *sizes.get(name).with_context(|| {
                format!(
                    "{}: no sample count for shard {name} (run tic-sizes / tic-stats on the folder)",
                    p.dir.join(SIZES_FILE)
                )
            })?;
            out.push(Shard {
                location: p.dir.join(name),
                samples: Some(n),
                weight: w[p.input],
                input: p.input,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn touch(p: &std::path::Path) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b"").unwrap();
    }

    #[test]
    fn expands_like_datacomp() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        // A resharder output folder.
        fs::create_dir_all(root.join("a/2014")).unwrap();
        fs::write(
            root.join("a/2014/meta.json"),
            r#"{"output_shard_count": 3, "output_shard_format": "{:08d}.tar", "output_count": 7}"#,
        )
        .unwrap();
        fs::write(
            root.join("a/2014/sizes.json"),
            r#"{"00000000.tar": 3, "00000001.tar": 3, "00000002.tar": 1}"#,
        )
        .unwrap();
        // Plain tars with two prefixes, a gap (DataComp fills the range 0..max).
        for n in ["x_000.tar", "x_002.tar", "x_001.tar", "y7.tar", "y0.tar"] {
            touch(&root.join("b").join(n));
        }
        fs::write(
            root.join("b/sizes.json"),
            r#"{"x_000.tar": 1, "x_001.tar": 2, "x_002.tar": 3, "y0.tar": 4, "y1.tar": 0,
               "y2.tar": 0, "y3.tar": 0, "y4.tar": 0, "y5.tar": 0, "y6.tar": 0, "y7.tar": 5}"#,
        )
        .unwrap();
        let dd = format!("{}::{}", root.join("a").display(), root.join("b").display());
        let pats = input_patterns(&dd).unwrap();
        assert_eq!(pats.len(), 3);
        assert_eq!(
            pats[0].names,
            ["00000000.tar", "00000001.tar", "00000002.tar"]
        );
        assert!(pats[0]
            .brace_string()
            .ends_with("a/2014/{00000000..00000002}.tar"));
        assert_eq!(pats[1].names, ["x_000.tar", "x_001.tar", "x_002.tar"]);
        assert_eq!(pats[2].names.len(), 8);
        assert_eq!(pats[2].names[7], "y7.tar");
        let shards = input_shards(&dd, Some("2::0.5")).unwrap();
        assert_eq!(shards.len(), 14);
        assert_eq!(
            shards.iter().map(|s| s.samples.unwrap()).sum::<u64>(),
            7 + 6 + 9
        );
        assert!(shards[..3].iter().all(|s| s.weight == 2.0 && s.input == 0));
        assert!(shards[3..].iter().all(|s| s.weight == 0.5 && s.input == 1));
        // A single tar and a bad weight count.
        let one = root.join("b/x_001.tar");
        let s = input_shards(one.to_str().unwrap(), None).unwrap();
        assert_eq!((s.len(), s[0].samples), (1, Some(2)));
        let e = format!("{:#}", input_shards(&dd, Some("1")).unwrap_err());
        assert!(e.contains("--data_weights has 1 values"), "{e}");
    }

    /// Issue 15 item 5: a reshard that lost input is refused unless the loss is accepted.
    #[test]
    fn incomplete_reshard_is_refused_unless_accepted() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("2014");
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("meta.json"),
            r#"{"output_shard_count": 1, "output_shard_format": "{:08d}.tar", "complete": false, "damaged_inputs": ["00000004.tar"]}"#,
        )
        .unwrap();
        fs::write(dir.join("sizes.json"), r#"{"00000000.tar": 5}"#).unwrap();
        let dd = dir.to_str().unwrap();
        let e = format!("{:#}", input_shards(dd, None).unwrap_err());
        assert!(
            e.contains("incomplete reshard")
                && e.contains("00000004.tar")
                && e.contains("--accept_incomplete"),
            "{e}"
        );
        let s = input_shards_accepting(dd, None, true).unwrap();
        assert_eq!((s.len(), s[0].samples), (1, Some(5)));
        // Complete (or older, without the field) reshards pass.
        fs::write(
            dir.join("meta.json"),
            r#"{"output_shard_count": 1, "output_shard_format": "{:08d}.tar", "complete": true}"#,
        )
        .unwrap();
        assert_eq!(input_shards(dd, None).unwrap().len(), 1);
    }

    /// Issue 16: a `pipe:` entry is one shard per brace item, without a count, in entry order.
    #[test]
    fn pipe_entries_expand_braces() {
        let d = tempfile::tempdir().unwrap();
        touch(&d.path().join("s/00.tar"));
        fs::write(d.path().join("s/sizes.json"), r#"{"00.tar": 3}"#).unwrap();
        let dd = format!(
            "pipe:cat /x/{{000..002}}.tar::{}::pipe:curl -s https://h/{{a,b}}.tar",
            d.path().join("s").display()
        );
        let s = input_shards(&dd, Some("1::2::3")).unwrap();
        let got: Vec<_> = s
            .iter()
            .map(|s| (s.location.to_string(), s.samples, s.input))
            .collect();
        assert_eq!(got[0], ("pipe:cat /x/000.tar".to_string(), None, 0));
        assert_eq!(got[2], ("pipe:cat /x/002.tar".to_string(), None, 0));
        assert_eq!(got[3].1, Some(3));
        assert_eq!(got[4].0, "pipe:curl -s https://h/a.tar");
        assert_eq!((s.len(), s[5].weight, s[5].input), (6, 3.0, 2));
    }

    #[test]
    fn missing_count_names_the_file() {
        let d = tempfile::tempdir().unwrap();
        touch(&d.path().join("s/00.tar"));
        touch(&d.path().join("s/01.tar"));
        fs::write(d.path().join("s/sizes.json"), r#"{"00.tar": 3}"#).unwrap();
        let e = format!(
            "{:#}",
            input_shards(d.path().join("s").to_str().unwrap(), None).unwrap_err()
        );
        assert!(e.contains("sizes.json") && e.contains("01.tar"), "{e}");
        let e = format!(
            "{:#}",
            input_patterns(d.path().join("nothing").to_str().unwrap()).unwrap_err()
        );
        assert!(e.contains("nothing"), "{e}");
    }
}
