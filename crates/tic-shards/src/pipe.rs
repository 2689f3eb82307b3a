//! WebDataset `pipe:CMD` shard URLs and brace patterns.
//!
//! A shard URL `pipe:CMD` (webdataset's `gopen` semantics) runs `sh -c CMD` once per shard; the
//! command's standard output is the shard's tar stream, e.g.
//! `pipe:aws s3 cp s3://bucket/00000007.tar -` or `pipe:curl -sf https://host/00000007.tar`.
//! A pattern such as `pipe:cat /data/{00000000..00000011}.tar` stands for one URL per brace
//! item ([`expand_braces`], webdataset's `braceexpand`); a folder template such as
//! `pipe:aws s3 cp s3://b/eval/{} -` reads each file of a folder ([`PATH_PLACEHOLDER`]).
//! [`PipeUrl`] is that grammar, and says which form supports what.
//!
//! A command that exits with a non-zero status, or whose output is not a complete tar stream
//! (cut inside a member, or without tar's end-of-archive block), is an error naming the shard
//! URL, the command's exit status and the end of its standard error.
//!
//! [`crate::storage::Location::parse`] turns a `pipe:` URL into
//! [`crate::storage::Location::Pipe`], so every tool that reads shards through
//! [`crate::storage::Location::fetch`] or [`crate::storage::Location::read`] takes them.

use anyhow::{bail, Context, Result};
use std::io::{Read, Seek, SeekFrom, Write};
use std::process::{Command, Stdio};

/// The prefix of a pipe URL.
pub const PREFIX: &str = "pipe:";

/// True when `url` is a `pipe:` URL.
pub fn is_pipe(url: &str) -> bool {
    url.starts_with(PREFIX)
}

/// The advice given where sample counts are needed but a `pipe:` input has none.
pub const COUNTS_HINT: &str = "pipe: URLs have no sizes.json or _stats.json to read sample \
     counts from; pass --train_num_samples N with --dataset_resampled (as OpenCLIP requires for \
     such URLs): shards are then drawn with replacement and counted as they are streamed";

/// How many bytes of a failing command's standard error go into the error message.
const STDERR_TAIL: usize = 2000;

/// Expands webdataset brace patterns: `{000..011}` (an inclusive numeric range, zero-padded to
/// the bounds' width when a bound has a leading zero) and `{a,b,c}` (a list). Several groups
/// expand to their product, leftmost slowest. A group with neither `..` nor `,` (such as the
/// `{print $1}` of an awk program) is kept as it is.
pub fn expand_braces(pattern: &str) -> Result<Vec<String>> {
    let mut search = 0;
    while let Some(rel) = pattern[search..].find('{') {
        let open = search + rel;
        let Some(close_rel) = pattern[open..].find('}') else {
            bail!("brace pattern {pattern:?}: `{{` at byte {open} is never closed");
        };
        let close = open + close_rel;
        let inner = &pattern[open + 1..close];
        let items: Vec<String> = if inner.contains('{') {
            bail!("brace pattern {pattern:?}: nested braces are not supported");
        } else if let Some((a, b)) = inner.split_once("..") {
            range(a, b).with_context(|| format!("brace pattern {pattern:?}"))?
        } else if inner.contains(',') {
            inner.split(',').map(str::to_string).collect()
        } else {
            search = close + 1;
            continue;
        };
        let (head, tail) = (&pattern[..open], &pattern[close + 1..]);
        let rest = expand_braces(tail)?;
        let mut out = Vec::with_capacity(items.len() * rest.len());
        for i in &items {
            for r in &rest {
                out.push(format!("{head}{i}{r}"));
            }
        }
        return Ok(out);
    }
    Ok(vec![pattern.to_string()])
}

/// The brace group of the inclusive range `first..last` as [`expand_braces`] reads it:
/// `{first..last}` (the bounds as given, so their zero padding is kept).
pub fn brace_range(first: &str, last: &str) -> String {
    format!("{{{first}..{last}}}")
}

/// The items of `{a..b}`.
fn range(a: &str, b: &str) -> Result<Vec<String>> {
    let lo: u64 = a
        .parse()
        .with_context(|| format!("range bound {a:?} is not a number"))?;
    let hi: u64 = b
        .parse()
        .with_context(|| format!("range bound {b:?} is not a number"))?;
    if lo > hi {
        bail!("range {{{a}..{b}}} is empty (the first bound is larger)");
    }
    let padded = (a.len() > 1 && a.starts_with('0')) || (b.len() > 1 && b.starts_with('0'));
    let width = if padded { a.len().max(b.len()) } else { 0 };
    Ok((lo..=hi).map(|i| format!("{i:0width$}")).collect())
}

/// Runs the command of the pipe URL `url` (`pipe:CMD`, or `CMD` alone) and streams its standard
/// output into `out`; returns the number of bytes written. A non-zero exit status is an error
/// naming the URL, the status and the end of the command's standard error. The child is always
/// waited for (killed first if writing fails), so no zombie is left behind.
pub fn run_into(url: &str, out: &mut dyn Write) -> Result<u64> {
    let cmd = url.strip_prefix(PREFIX).unwrap_or(url);
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("shard {PREFIX}{cmd}: starting `sh -c {cmd:?}`"))?;
    let mut stderr = child.stderr.take().expect("piped stderr");
    // Drained on its own thread (a full stderr pipe would block the command); only the end is
    // kept for the error message.
    let err_reader = std::thread::spawn(move || {
        let mut tail = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            match stderr.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    tail.extend_from_slice(&chunk[..n]);
                    if tail.len() > 4 * STDERR_TAIL {
                        tail.drain(..tail.len() - 2 * STDERR_TAIL);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        tail
    });
    let mut stdout = child.stdout.take().expect("piped stdout");
    let copied = std::io::copy(&mut stdout, out);
    drop(stdout);
    if copied.is_err() {
        let _ = child.kill();
    }
    let status = child.wait();
    let err_bytes = err_reader.join().unwrap_or_default();
    let tail = stderr_tail(&err_bytes);
    let status = status.with_context(|| format!("shard {PREFIX}{cmd}: waiting for the command"))?;
    let n = copied
        .with_context(|| format!("shard {PREFIX}{cmd}: copying the command's output{tail}"))?;
    if !status.success() {
        bail!("shard {PREFIX}{cmd}: the command `{cmd}` failed ({status}){tail}");
    }
    Ok(n)
}

/// `: its standard error ends: …` for a non-empty standard error.
fn stderr_tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim();
    if s.is_empty() {
        return String::new();
    }
    let start = s
        .char_indices()
        .map(|(i, _)| i)
        .find(|&i| s.len() - i <= STDERR_TAIL)
        .unwrap_or(0);
    format!("; its standard error: {}", &s[start..])
}

/// The placeholder of a `pipe:` folder template (tic-eval's `--data_dir`): each file under the
/// folder is read by running the template with `{}` replaced by the file's relative path.
pub const PATH_PLACEHOLDER: &str = "{}";

/// A `pipe:` URL: the one definition of what its command may hold.
///
/// `pipe:CMD` runs `sh -c CMD`; the command's standard output is the data. Inside CMD:
/// - a brace group, `{a..b}` (an inclusive numeric range) or `{x,y,z}` (a list), makes the URL
///   a **list**: it stands for one URL per item, several groups for their product
///   ([`expand_braces`]);
/// - the placeholder `{}` ([`PATH_PLACEHOLDER`]) makes it a **folder template**: the file at
///   relative path `P` under the folder is read by the command with `{}` replaced by `P`;
/// - any other `{…}` (such as awk's `{print $1}`) is part of the command.
///
/// What each form supports:
///
/// | form | [`PipeUrl::expand`] (shard lists: tic-train `--data_dir`, tic-embed `--images`, tic-stats) | [`PipeUrl::for_path`] (folders: tic-eval `--data_dir`) |
/// | --- | --- | --- |
/// | plain, `pipe:cat /d/7.tar` | the URL itself | error: no `{}` |
/// | list, `pipe:cat /d/{0..9}.tar` | one URL per item | error: no `{}` |
/// | template, `pipe:cat /d/{}` | the URL itself (`{}` reaches the shell as written) | one URL per file |
/// | list and template | one URL per item, each keeping `{}` | one URL per file, braces as written |
///
/// Running a URL ([`read`], [`fetch_into`], [`read_raw`]) runs its command as written: expand a
/// list and fill a template first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeUrl {
    /// What follows `pipe:`.
    cmd: String,
}

impl PipeUrl {
    /// `s` as a pipe URL when it starts with `pipe:`, else `None`.
    pub fn parse(s: &str) -> Option<Self> {
        s.strip_prefix(PREFIX).map(|cmd| PipeUrl {
            cmd: cmd.to_string(),
        })
    }

    /// The command: what follows `pipe:`.
    pub fn command(&self) -> &str {
        &self.cmd
    }

    /// The command, owned (what a [`crate::storage::Location::Pipe`] holds).
    pub fn into_command(self) -> String {
        self.cmd
    }

    /// True when the command holds the `{}` placeholder (a folder template).
    pub fn is_template(&self) -> bool {
        self.cmd.contains(PATH_PLACEHOLDER)
    }

    /// Fails unless the URL is a folder template, with an example of one.
    pub fn require_template(&self) -> Result<()> {
        if !self.is_template() {
            bail!(
                "{self}: a pipe: folder needs `{PATH_PLACEHOLDER}` where each file's path goes, \
                 e.g. 'pipe:aws s3 cp s3://bucket/eval_data/{PATH_PLACEHOLDER} -'"
            );
        }
        Ok(())
    }

    /// The URL that reads the file `rel` under this folder template, e.g.
    /// `pipe:aws s3 cp s3://b/eval/{} -` and `2016/0.tar` give
    /// `pipe:aws s3 cp s3://b/eval/2016/0.tar -`. A URL without `{}` is an error
    /// ([`PipeUrl::require_template`]).
    pub fn for_path(&self, rel: &str) -> Result<String> {
        self.require_template()?;
        Ok(self.to_string().replace(PATH_PLACEHOLDER, rel))
    }

    /// The URLs of a list, one per brace item ([`expand_braces`]); a URL without brace groups
    /// is its only item.
    pub fn expand(&self) -> Result<Vec<PipeUrl>> {
        // Brace groups lie after `pipe:`, so every item keeps the prefix.
        Ok(expand_braces(&self.to_string())?
            .iter()
            .filter_map(|u| PipeUrl::parse(u))
            .collect())
    }
}

impl std::fmt::Display for PipeUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PREFIX}{}", self.cmd)
    }
}

/// Runs the pipe URL `url` and returns its output as it is (any file, not checked as a tar).
pub fn read_raw(url: &str) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    run_into(url, &mut v)?;
    Ok(v)
}

/// Runs the pipe URL `url` into `file` (from its start; opened for reading and writing) and checks that the output is one
/// complete tar stream ([`check_tar_complete`]).
pub fn fetch_into(url: &str, file: &mut std::fs::File) -> Result<()> {
    let mut w = std::io::BufWriter::with_capacity(1 << 20, &mut *file);
    run_into(url, &mut w)?;
    w.flush()
        .with_context(|| format!("shard {url}: writing the command's output"))?;
    drop(w);
    file.seek(SeekFrom::Start(0))?;
    check_tar_complete(file, url)
}

/// Runs the pipe URL `url` and returns its output, checked to be one complete tar stream.
pub fn read(url: &str) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    run_into(url, &mut v)?;
    check_tar_complete(&mut std::io::Cursor::new(&v), url)?;
    Ok(v)
}

/// Walks the tar headers of `r` (from its current position) and fails, naming `shard`, when the
/// stream ends inside a header or a member's data, or before tar's end-of-archive block (a zero
/// block): a stream cut short, e.g. by a dropped connection.
pub fn check_tar_complete<R: Read + Seek>(r: &mut R, shard: &str) -> Result<()> {
    let mut pos = 0u64;
    let mut block = [0u8; 512];
    loop {
        let got = read_block(r, &mut block)
            .with_context(|| format!("shard {shard}: reading the tar stream"))?;
        if got == 0 {
            bail!(
                "shard {shard}: truncated tar stream: it ends at byte {pos} without tar's \
                 end-of-archive block{}",
                if pos == 0 {
                    " (the command wrote nothing)"
                } else {
                    ""
                }
            );
        }
        if got < 512 {
            bail!("shard {shard}: truncated tar stream: it ends inside the header at byte {pos}");
        }
        if block.iter().all(|&b| b == 0) {
            return Ok(());
        }
        let header = tar::Header::from_byte_slice(&block);
        let size = header
            .entry_size()
            .with_context(|| format!("shard {shard}: corrupt tar header at byte {pos}"))?;
        let padded = size.div_ceil(512) * 512;
        let data_end = pos + 512 + padded;
        let here = r.seek(SeekFrom::Current(padded as i64))?;
        // Seeking past the end succeeds; the real length tells whether the data is there.
        let len = r.seek(SeekFrom::End(0))?;
        if len < pos + 512 + size {
            bail!(
                "shard {shard}: truncated tar stream: the member at byte {pos} needs {size} bytes \
                 but the stream ends at byte {len}"
            );
        }
        r.seek(SeekFrom::Start(here))?;
        pos = data_end;
    }
}

/// Reads up to one 512-byte block; returns how many bytes were read.
fn read_block<R: Read>(r: &mut R, block: &mut [u8; 512]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < 512 {
        match r.read(&mut block[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A name for the shard a pipe URL streams, for tables keyed by shard file name (`sizes.json`):
/// the file name of the command's last word ending in `.tar` (`pipe:aws s3 cp s3://b/0007.tar -`
/// gives `0007.tar`), or the whole URL when no word ends in `.tar`.
pub fn shard_name(url: &str) -> String {
    let cmd = url.strip_prefix(PREFIX).unwrap_or(url);
    cmd.split_whitespace()
        .rev()
        .map(|w| w.trim_matches(|c| c == '\'' || c == '"'))
        .find(|w| w.ends_with(".tar"))
        .map(|w| w.rsplit('/').next().unwrap_or(w).to_string())
        .unwrap_or_else(|| url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brace_range_expands_back() {
        assert_eq!(
            expand_braces(&format!("d/{}.tar", brace_range("008", "010"))).unwrap(),
            ["d/008.tar", "d/009.tar", "d/010.tar"]
        );
    }

    #[test]
    fn braces() {
        assert_eq!(
            expand_braces("pipe:cat /d/{00..02}.tar").unwrap(),
            [
                "pipe:cat /d/00.tar",
                "pipe:cat /d/01.tar",
                "pipe:cat /d/02.tar"
            ]
        );
        assert_eq!(
            expand_braces("{a,b}/{8..10}").unwrap(),
            ["a/8", "a/9", "a/10", "b/8", "b/9", "b/10"]
        );
        assert_eq!(expand_braces("{000..011}").unwrap().len(), 12);
        assert_eq!(expand_braces("{000..011}").unwrap()[11], "011");
        assert_eq!(expand_braces("x.tar").unwrap(), ["x.tar"]);
        assert_eq!(
            expand_braces("awk '{print $1}' {1,2}").unwrap(),
            ["awk '{print $1}' 1", "awk '{print $1}' 2"]
        );
        assert!(expand_braces("{3..1}").is_err());
        assert!(expand_braces("{a..1}").is_err());
        assert!(expand_braces("x{0..2").is_err());
    }

    #[test]
    fn pipe_url_forms() {
        let url = |s: &str| PipeUrl::parse(s).unwrap();
        let expanded = |s: &str| -> Vec<String> {
            let items = url(s).expand().unwrap();
            items.iter().map(PipeUrl::to_string).collect()
        };
        assert!(PipeUrl::parse("/d/0.tar").is_none());
        let plain = url("pipe:cat /d/7.tar");
        assert_eq!(plain.command(), "cat /d/7.tar");
        assert_eq!(expanded("pipe:cat /d/7.tar"), ["pipe:cat /d/7.tar"]);
        assert!(!plain.is_template() && plain.for_path("x").is_err());
        let list = "pipe:cat /d/{8..10}.tar";
        assert_eq!(
            expanded(list),
            [
                "pipe:cat /d/8.tar",
                "pipe:cat /d/9.tar",
                "pipe:cat /d/10.tar"
            ]
        );
        let e = format!("{:#}", url(list).for_path("x").unwrap_err());
        assert!(
            e.starts_with(&format!("{list}: a pipe: folder needs `{{}}`")),
            "{e}"
        );
        let both = url("pipe:cat /{a,b}/{}");
        assert!(both.is_template() && both.require_template().is_ok());
        assert_eq!(both.for_path("0.tar").unwrap(), "pipe:cat /{a,b}/0.tar");
        assert_eq!(
            expanded("pipe:cat /{a,b}/{}"),
            ["pipe:cat /a/{}", "pipe:cat /b/{}"]
        );
        let e = format!("{:#}", url("pipe:cat {3..1}").expand().unwrap_err());
        assert!(e.contains("\"pipe:cat {3..1}\""), "{e}");
        let loc = crate::storage::Location::from(plain);
        assert!(loc.is_pipe() && loc.to_string() == "pipe:cat /d/7.tar");
    }

    fn tar_bytes() -> Vec<u8> {
        let mut w = crate::wds::TarSampleWriter::new(Vec::new());
        w.append("a", "jpg", &[1u8; 600], 0).unwrap();
        w.append("a", "txt", b"hi", 0).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn complete_and_truncated_streams() {
        let t = tar_bytes();
        check_tar_complete(&mut std::io::Cursor::new(&t), "s").unwrap();
        // A cut inside data, inside a header, at a member boundary, and an empty stream.
        for cut in [1000, 1600, 2048, 2560, 0] {
            let e = check_tar_complete(&mut std::io::Cursor::new(&t[..cut]), "s.tar")
                .unwrap_err()
                .to_string();
            assert!(e.contains("s.tar") && e.contains("truncated"), "{cut}: {e}");
        }
    }

    #[test]
    fn runs_commands() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.tar");
        std::fs::write(&p, tar_bytes()).unwrap();
        let url = format!("pipe:cat {}", p.display());
        assert_eq!(read(&url).unwrap(), tar_bytes());
        let mut f = tempfile::tempfile().unwrap();
        fetch_into(&url, &mut f).unwrap();
        let e = format!("{:#}", read("pipe:echo oops >&2; exit 3").unwrap_err());
        assert!(e.contains("exit 3") && e.contains("oops"), "{e}");
        // A long standard error is drained (the command does not block) and cut to its end.
        let e = format!(
            "{:#}",
            read("pipe:head -c 200000 /dev/zero | tr '\\0' x >&2; echo END >&2; false")
                .unwrap_err()
        );
        assert!(
            e.ends_with("END") && e.len() < 3 * STDERR_TAIL,
            "{}",
            e.len()
        );
        let cut = format!("pipe:head -c 1000 {}", p.display());
        let e = format!("{:#}", read(&cut).unwrap_err());
        assert!(e.contains("head -c 1000") && e.contains("truncated"), "{e}");
        assert_eq!(shard_name(&url), "x.tar");
        let for_path = |template: &str, rel: &str| PipeUrl::parse(template).unwrap().for_path(rel);
        assert_eq!(
            for_path("pipe:cat /e/{}", "2016/0.tar").unwrap(),
            "pipe:cat /e/2016/0.tar"
        );
        assert!(for_path("pipe:cat /e", "x").is_err());
        assert_eq!(read_raw("pipe:printf 3").unwrap(), b"3");
        assert_eq!(shard_name("pipe:aws s3 cp s3://b/0007.tar -"), "0007.tar");
    }
}
