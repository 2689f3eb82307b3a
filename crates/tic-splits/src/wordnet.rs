//! A small reader for the WordNet 3.0 database files (`index.*`, `data.*`, `*.exc`), enough to
//! reproduce nltk's `wn.synsets(name)` and `Synset.hyponyms()` offline.
//!
//! Debian's `wordnet-base` package installs the database in `/usr/share/wordnet`. Lookups follow
//! nltk 3.9+: `synsets(lemma)` visits the parts of speech in the order noun, verb, adjective,
//! adverb; for each it tries the lemma and its morphological base forms (`_morphy`: the
//! exception list when the lemma is in it, else one round of suffix rules) and keeps the forms
//! the index lists. `hyponyms()` follows the semantic (`0000`) `~` pointers of a synset.
use anyhow::{bail, Context, Result};
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

/// Where Debian's `wordnet-base` installs the database.
pub const DEFAULT_DIR: &str = "/usr/share/wordnet";

/// Parts of speech in nltk's `POS_LIST` order, with their file suffixes.
pub const POS: [(char, &str); 4] = [('n', "noun"), ('v', "verb"), ('a', "adj"), ('r', "adv")];

/// A synset: the part-of-speech file it lives in (index into [`POS`]) and its byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SynsetId {
    /// Index into [`POS`] (adjective satellites live in the adjective file).
    pub pos: usize,
    /// Byte offset of the synset's line in `data.{pos}`.
    pub offset: u64,
}

impl SynsetId {
    /// The ImageNet-style id nltk's callers build with `"n{:08d}".format(offset)`.
    pub fn wnid(&self) -> String {
        format!("n{:08}", self.offset)
    }
}

/// An opened WordNet database.
pub struct WordNet {
    dir: PathBuf,
    data: Vec<Vec<u8>>,
    index: Vec<HashMap<String, Vec<u64>>>,
    exceptions: Vec<HashMap<String, Vec<String>>>,
}

fn pos_index(c: &str) -> Option<usize> {
    match c {
        "n" => Some(0),
        "v" => Some(1),
        "a" | "s" => Some(2),
        "r" => Some(3),
        _ => None,
    }
}

fn read_db_file(dir: &Path, name: &str) -> Result<Vec<u8>> {
    let p = dir.join(name);
    if !p.is_file() {
        bail!(
            "WordNet database not found: {} is missing (expected the WordNet 3.0 files \
             index.*, data.*, *.exc; install them with `apt-get install wordnet-base`, which \
             puts them in {DEFAULT_DIR}, or pass --wordnet-dir)",
            p.display()
        );
    }
    std::fs::read(&p).with_context(|| format!("reading {}", p.display()))
}

impl WordNet {
    /// Opens the database in `dir`, loading the index, exception and data files.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let mut data = Vec::new();
        let mut index = Vec::new();
        let mut exceptions = Vec::new();
        for (_, suffix) in POS {
            data.push(read_db_file(&dir, &format!("data.{suffix}"))?);
            let name = format!("index.{suffix}");
            let text = read_db_file(&dir, &name)?;
            index.push(parse_index(&text, &dir.join(&name))?);
            let name = format!("{suffix}.exc");
            let text = read_db_file(&dir, &name)?;
            let mut exc: HashMap<String, Vec<String>> = HashMap::new();
            for line in String::from_utf8_lossy(&text).lines() {
                let mut t = line.split_whitespace();
                if let Some(inflected) = t.next() {
                    exc.insert(inflected.to_string(), t.map(str::to_string).collect());
                }
            }
            exceptions.push(exc);
        }
        Ok(WordNet {
            dir,
            data,
            index,
            exceptions,
        })
    }

    /// The base forms nltk's `_morphy(form, pos)` returns (only forms in that pos's index).
    pub fn morphy(&self, form: &str, pos: usize) -> Vec<String> {
        let rules: &[(&str, &str)] = match pos {
            0 => &[
                ("s", ""),
                ("ses", "s"),
                ("ves", "f"),
                ("xes", "x"),
                ("zes", "z"),
                ("ches", "ch"),
                ("shes", "sh"),
                ("men", "man"),
                ("ies", "y"),
            ],
            1 => &[
                ("s", ""),
                ("ies", "y"),
                ("es", "e"),
                ("es", ""),
                ("ed", "e"),
                ("ed", ""),
                ("ing", "e"),
                ("ing", ""),
            ],
            2 => &[("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
            _ => &[],
        };
        let mut forms = vec![form.to_string()];
        match self.exceptions[pos].get(form) {
            Some(bases) => forms.extend(bases.iter().cloned()),
            None => {
                for (old, new) in rules {
                    if let Some(stem) = form.strip_suffix(old) {
                        forms.push(format!("{stem}{new}"));
                    }
                }
            }
        }
        let mut seen = HashSet::new();
        forms
            .into_iter()
            .filter(|f| self.index[pos].contains_key(f) && seen.insert(f.clone()))
            .collect()
    }

    /// nltk's `wn.synsets(lemma)`: every synset of every part of speech, in nltk's order.
    pub fn synsets(&self, lemma: &str) -> Vec<SynsetId> {
        let lemma = lemma.to_lowercase();
        let mut out = Vec::new();
        for pos in 0..POS.len() {
            for form in self.morphy(&lemma, pos) {
                for &offset in &self.index[pos][&form] {
                    out.push(SynsetId { pos, offset });
                }
            }
        }
        out
    }

    fn data_line(&self, id: SynsetId) -> Result<&str> {
        let data = &self.data[id.pos];
        let file = || self.dir.join(format!("data.{}", POS[id.pos].1));
        let start = id.offset as usize;
        if start >= data.len() {
            bail!(
                "{}: offset {} is past the end of the file",
                file().display(),
                id.offset
            );
        }
        let end = data[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(data.len(), |p| start + p);
        let line = std::str::from_utf8(&data[start..end])
            .with_context(|| format!("{}: offset {}: not UTF-8", file().display(), id.offset))?;
        if !line.starts_with(&format!("{:08} ", id.offset)) {
            bail!(
                "{}: offset {}: no synset starts there (found {:?})",
                file().display(),
                id.offset,
                &line[..line.len().min(20)]
            );
        }
        Ok(line)
    }

    /// Targets of the synset's semantic pointers with symbol `symbol` (`~` = hyponym).
    pub fn related(&self, id: SynsetId, symbol: &str) -> Result<Vec<SynsetId>> {
        let line = self.data_line(id)?;
        let bad = || {
            format!(
                "{}: synset at offset {}: malformed data line",
                self.dir.join(format!("data.{}", POS[id.pos].1)).display(),
                id.offset
            )
        };
        let mut t = line.split(' ');
        // synset_offset lex_filenum ss_type w_cnt (word lex_id)* p_cnt (sym off pos st)*
        t.nth(2).with_context(bad)?;
        let w_cnt = usize::from_str_radix(t.next().with_context(bad)?, 16).with_context(bad)?;
        t.nth(2 * w_cnt - 1).with_context(bad)?;
        let p_cnt: usize = t.next().with_context(bad)?.parse().with_context(bad)?;
        let mut out = Vec::new();
        for _ in 0..p_cnt {
            let sym = t.next().with_context(bad)?;
            let off: u64 = t.next().with_context(bad)?.parse().with_context(bad)?;
            let pos = pos_index(t.next().with_context(bad)?).with_context(bad)?;
            let st = t.next().with_context(bad)?;
            if sym == symbol && st == "0000" {
                out.push(SynsetId { pos, offset: off });
            }
        }
        Ok(out)
    }

    /// The synset and everything reachable through hyponym pointers (breadth-first).
    pub fn hyponym_closure(&self, root: SynsetId) -> Result<HashSet<SynsetId>> {
        let mut visited = HashSet::new();
        let mut queue = VecDeque::from([root]);
        while let Some(s) = queue.pop_front() {
            if visited.insert(s) {
                for c in self.related(s, "~")? {
                    if !visited.contains(&c) {
                        queue.push_back(c);
                    }
                }
            }
        }
        Ok(visited)
    }
}

fn parse_index(text: &[u8], file: &Path) -> Result<HashMap<String, Vec<u64>>> {
    let mut out = HashMap::new();
    for (i, line) in String::from_utf8_lossy(text).lines().enumerate() {
        if line.starts_with(' ') || line.is_empty() {
            continue;
        }
        let bad = || format!("{}: line {}: malformed index entry", file.display(), i + 1);
        let mut t = line.split_whitespace();
        let lemma = t.next().with_context(bad)?;
        t.next().with_context(bad)?; // pos
        let n_synsets: usize = t.next().with_context(bad)?.parse().with_context(bad)?;
        let n_ptrs: usize = t.next().with_context(bad)?.parse().with_context(bad)?;
        for _ in 0..n_ptrs + 2 {
            t.next().with_context(bad)?; // pointer symbols, sense_cnt, tagsense_cnt
        }
        let offs = (0..n_synsets)
            .map(|_| t.next().with_context(bad)?.parse::<u64>().with_context(bad))
            .collect::<Result<Vec<_>>>()?;
        out.insert(lemma.to_string(), offs);
    }
    Ok(out)
}
