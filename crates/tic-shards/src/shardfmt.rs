//! Python `str.format` patterns for shard names, such as `{:08d}.tar` or `{:08d}_stats.json`.

use anyhow::{bail, Result};

/// DataComp's shard names, `00000000.tar`, … (the pool, resharder input and output).
pub const DATACOMP_SHARD_FORMAT: &str = "{:08d}.tar";
/// The stats files next to DataComp's shards, `00000000_stats.json`, …
/// ([`crate::counts::stats_file_of`] of [`DATACOMP_SHARD_FORMAT`]).
pub const DATACOMP_STATS_FORMAT: &str = "{:08d}_stats.json";

/// A name pattern with one integer field: `prefix{:0Wd}suffix` (also `{}`, `{:d}`, `{:Wd}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardFormat {
    prefix: String,
    suffix: String,
    width: usize,
    zero: bool,
    spec: String,
}

impl ShardFormat {
    /// Parses a Python format string with exactly one integer replacement field.
    pub fn parse(spec: &str) -> Result<Self> {
        let Some(open) = spec.find('{') else {
            bail!("shard format {spec:?} has no {{}} field");
        };
        let Some(close_rel) = spec[open..].find('}') else {
            bail!("shard format {spec:?} has an unclosed {{");
        };
        let close = open + close_rel;
        if spec[close + 1..].contains('{') {
            bail!("shard format {spec:?} has more than one field");
        }
        let field = &spec[open + 1..close];
        let fmt = match field.split_once(':') {
            Some(("", f)) | Some(("0", f)) => f,
            None if field.is_empty() || field == "0" => "",
            _ => bail!("shard format {spec:?}: unsupported field {{{field}}}"),
        };
        let fmt = fmt.strip_suffix('d').unwrap_or(fmt);
        let zero = fmt.starts_with('0');
        let width = if fmt.is_empty() {
            0
        } else {
            match fmt.parse::<usize>() {
                Ok(w) => w,
                Err(_) => bail!("shard format {spec:?}: unsupported spec {fmt:?}"),
            }
        };
        Ok(ShardFormat {
            prefix: spec[..open].to_string(),
            suffix: spec[close + 1..].to_string(),
            width,
            zero,
            spec: spec.to_string(),
        })
    }

    /// The name for shard `i`.
    pub fn format(&self, i: u64) -> String {
        if self.zero {
            format!("{}{:0w$}{}", self.prefix, i, self.suffix, w = self.width)
        } else {
            format!("{}{:>w$}{}", self.prefix, i, self.suffix, w = self.width)
        }
    }

    /// The shard index a name was formatted from, if it matches this pattern exactly.
    pub fn index_of(&self, name: &str) -> Option<u64> {
        let mid = name
            .strip_prefix(&self.prefix)?
            .strip_suffix(&self.suffix)?;
        let i: u64 = mid.trim_start().parse().ok()?;
        (self.format(i) == name).then_some(i)
    }

    /// The original pattern text.
    pub fn as_str(&self) -> &str {
        &self.spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let f = ShardFormat::parse("{:08d}.tar").unwrap();
        assert_eq!(f.format(12), "00000012.tar");
        assert_eq!(f.index_of("00000012.tar"), Some(12));
        assert_eq!(f.index_of("12.tar"), None);
        assert_eq!(f.index_of("00000012_stats.json"), None);
        let g = ShardFormat::parse("shard-{}.tar").unwrap();
        assert_eq!(g.format(3), "shard-3.tar");
        assert_eq!(g.index_of("shard-3.tar"), Some(3));
        assert_eq!(
            ShardFormat::parse("{:08d}_stats.json").unwrap().format(0),
            "00000000_stats.json"
        );
        assert!(ShardFormat::parse("x.tar").is_err());
        assert!(ShardFormat::parse("{}{}").is_err());
    }
}
