//! CLIP's byte-level BPE tokenizer, identical to OpenCLIP's `SimpleTokenizer` (`clean='lower'`).
//!
//! Vocabulary: 256 byte symbols, the same with `</w>`, 48,894 merges from OpenAI's
//! `bpe_simple_vocab_16e6.txt.gz` (shipped in `data/`, embedded at compile time), then
//! `<start_of_text>` = 49406 and `<end_of_text>` = 49407. Output rows are
//! `[sot] + bpe + [eot]`, truncated to the context length with `eot` forced into the last slot,
//! zero-padded.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{LazyLock, RwLock};

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use rayon::prelude::*;
use regex::Regex;

use crate::clean::clean_lower;

/// The merges file shipped with OpenCLIP (gzip-compressed text).
pub const BPE_VOCAB_GZ: &[u8] = include_bytes!("../data/bpe_simple_vocab_16e6.txt.gz");
/// `<start_of_text>` id.
pub const SOT: u32 = 49406;
/// `<end_of_text>` id.
pub const EOT: u32 = 49407;
/// CLIP's context length.
pub const CONTEXT_LENGTH: usize = 77;
/// Vocabulary size.
pub const VOCAB_SIZE: usize = 49408;

/// Entries kept in the BPE cache before it is cleared (bounds memory on endless caption streams).
const CACHE_LIMIT: usize = 1 << 20;

/// CLIP BPE tokenizer. Cheap to share across threads (`&Tokenizer` is `Sync`).
pub struct Tokenizer {
    byte_encoder: [char; 256],
    encoder: HashMap<String, u32>,
    bpe_ranks: HashMap<(String, String), u32>,
    cache: RwLock<HashMap<String, Vec<u32>>>,
    pat: Regex,
    context_length: usize,
}

/// GPT-2/CLIP `bytes_to_unicode`: printable bytes map to themselves, the others to 256+n.
fn bytes_to_unicode() -> (Vec<u8>, [char; 256]) {
    let mut bs: Vec<u8> = (b'!'..=b'~')
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs: Vec<u32> = bs.iter().map(|&b| b as u32).collect();
    let mut n = 0;
    for b in 0..=255u8 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    let mut map = ['\0'; 256];
    for (b, c) in bs.iter().zip(&cs) {
        map[*b as usize] = char::from_u32(*c).expect("valid char");
    }
    (bs, map)
}

impl Tokenizer {
    /// The tokenizer with the embedded merges and context length 77.
    pub fn new() -> Result<Self> {
        Self::from_gz_bytes(BPE_VOCAB_GZ, CONTEXT_LENGTH)
    }

    /// A process-wide shared instance (built once).
    pub fn shared() -> &'static Tokenizer {
        static TOK: LazyLock<Tokenizer> =
            LazyLock::new(|| Tokenizer::new().expect("embedded BPE vocabulary is valid"));
        &TOK
    }

    /// Builds from a gzip-compressed merges file and a context length.
    pub fn from_gz_bytes(gz: &[u8], context_length: usize) -> Result<Self> {
        let mut text = String::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_string(&mut text)
            .context("decompressing the BPE merges file")?;
        let lines: Vec<&str> = text.split('\n').collect();
        let n_merges = 49152 - 256 - 2;
        anyhow::ensure!(
            lines.len() > n_merges,
            "BPE merges file has only {} lines",
            lines.len()
        );
        let merges: Vec<(String, String)> = lines[1..=n_merges]
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let mut it = l.split_whitespace();
                match (it.next(), it.next()) {
                    (Some(a), Some(b)) => Ok((a.to_string(), b.to_string())),
                    _ => anyhow::bail!("BPE merges line {} is not a pair: {l:?}", i + 2),
                }
            })
            .collect::<Result<_>>()?;
        let (bs, byte_encoder) = bytes_to_unicode();
        let mut vocab: Vec<String> = bs
            .iter()
            .map(|&b| byte_encoder[b as usize].to_string())
            .collect();
        let with_w: Vec<String> = vocab.iter().map(|v| format!("{v}</w>")).collect();
        vocab.extend(with_w);
        vocab.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
        vocab.push("<start_of_text>".into());
        vocab.push("<end_of_text>".into());
        let mut encoder = HashMap::with_capacity(vocab.len());
        for (i, v) in vocab.into_iter().enumerate() {
            encoder.insert(v, i as u32); // later duplicates win, as in Python's dict(zip(..))
        }
        let mut bpe_ranks = HashMap::with_capacity(merges.len());
        for (i, m) in merges.into_iter().enumerate() {
            bpe_ranks.insert(m, i as u32);
        }
        let pat = Regex::new(
            r"(?i)<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
        )
        .expect("valid regex");
        let mut cache = HashMap::new();
        cache.insert("<start_of_text>".to_string(), vec![SOT]);
        cache.insert("<end_of_text>".to_string(), vec![EOT]);
        Ok(Self {
            byte_encoder,
            encoder,
            bpe_ranks,
            cache: RwLock::new(cache),
            pat,
            context_length,
        })
    }

    /// Context length rows are padded/truncated to.
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// BPE of one pre-token already mapped to byte symbols; returns vocabulary ids.
    fn bpe(&self, token: &str) -> Vec<u32> {
        if let Some(ids) = self.cache.read().expect("cache lock").get(token) {
            return ids.clone();
        }
        let chars: Vec<char> = token.chars().collect();
        let mut word: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
        if let Some(last) = word.last_mut() {
            last.push_str("</w>");
        }
        while word.len() > 1 {
            // Lowest-ranked adjacent pair.
            let mut best: Option<(u32, usize)> = None;
            for i in 0..word.len() - 1 {
                if let Some(&r) = self.bpe_ranks.get(&(word[i].clone(), word[i + 1].clone())) {
                    if best.is_none_or(|(br, _)| r < br) {
                        best = Some((r, i));
                    }
                }
            }
            let Some((_, bi)) = best else { break };
            let (first, second) = (word[bi].clone(), word[bi + 1].clone());
            let mut new_word = Vec::with_capacity(word.len());
            let mut i = 0;
            while i < word.len() {
                if i + 1 < word.len() && word[i] == first && word[i + 1] == second {
                    new_word.push(format!("{first}{second}"));
                    i += 2;
                } else {
                    new_word.push(std::mem::take(&mut word[i]));
                    i += 1;
                }
            }
            word = new_word;
        }
        let ids: Vec<u32> = word
            .iter()
            .map(|w| {
                *self
                    .encoder
                    .get(w)
                    .expect("every BPE symbol is in the vocabulary")
            })
            .collect();
        let mut cache = self.cache.write().expect("cache lock");
        if cache.len() >= CACHE_LIMIT {
            cache.retain(|k, _| k.starts_with('<') && k.ends_with('>'));
        }
        cache.insert(token.to_string(), ids.clone());
        ids
    }

    /// Cleans and BPE-encodes `text` (no start/end tokens, no truncation).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let text = clean_lower(text);
        let mut out = Vec::new();
        let mut buf = String::new();
        for m in self.pat.find_iter(&text) {
            buf.clear();
            buf.extend(m.as_str().bytes().map(|b| self.byte_encoder[b as usize]));
            out.extend(self.bpe(&buf));
        }
        out
    }

    /// One row of `context_length` ids: `[sot] + encode(text) + [eot]`, truncated with `eot` in the
    /// last slot, zero-padded.
    pub fn tokenize_one(&self, text: &str) -> Vec<u32> {
        self.tokenize_one_to(text, self.context_length)
    }

    /// [`Self::tokenize_one`] for a model with another context length `c` (OpenCLIP's
    /// `tokenize(texts, context_length=c)`; e.g. 32 for tic-train's `tiny` scale).
    pub fn tokenize_one_to(&self, text: &str, c: usize) -> Vec<u32> {
        let c = c.max(2);
        let mut row = Vec::with_capacity(c);
        row.push(SOT);
        row.extend(self.encode(text));
        row.push(EOT);
        if row.len() > c {
            row.truncate(c);
            row[c - 1] = EOT;
        }
        row.resize(c, 0);
        row
    }

    /// Tokenizes a batch in parallel; rows in input order.
    pub fn tokenize_batch<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Vec<Vec<u32>> {
        self.tokenize_batch_to(texts, self.context_length)
    }

    /// [`Self::tokenize_batch`] with context length `c` (see [`Self::tokenize_one_to`]).
    pub fn tokenize_batch_to<S: AsRef<str> + Sync>(&self, texts: &[S], c: usize) -> Vec<Vec<u32>> {
        texts
            .par_iter()
            .map(|t| self.tokenize_one_to(t.as_ref(), c))
            .collect()
    }

    /// Tokenizes a batch into a `[N, context_length]` u32 tensor (the text tower's input).
    pub fn tokenize_tensor<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        device: &Device,
    ) -> Result<Tensor> {
        self.tokenize_tensor_to(texts, self.context_length, device)
    }

    /// [`Self::tokenize_tensor`] for a text tower with context length `c` (use the model
    /// config's `text_cfg.context_length`).
    pub fn tokenize_tensor_to<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        c: usize,
        device: &Device,
    ) -> Result<Tensor> {
        let c = c.max(2);
        let flat: Vec<u32> = self.tokenize_batch_to(texts, c).concat();
        Ok(Tensor::from_vec(flat, (texts.len(), c), device)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_ids() {
        let t = Tokenizer::shared();
        let row = t.tokenize_one("a photo of a cat");
        // Ids from OpenCLIP's tokenizer (also checked against the fixtures in tests/).
        assert_eq!(&row[..7], &[49406, 320, 1125, 539, 320, 2368, 49407]);
        assert!(row[7..].iter().all(|&x| x == 0));
        assert_eq!(row.len(), 77);
        let long = "word ".repeat(200);
        let row = t.tokenize_one(&long);
        assert_eq!(row[76], EOT);
        assert_eq!(row[0], SOT);
        assert_eq!(t.tokenize_one("<start_of_text>")[1], SOT);
        // A shorter context: the same ids, truncated with eot last, as OpenCLIP's
        // tokenize(text, context_length=8).
        let short = t.tokenize_one_to("a photo of a cat", 8);
        assert_eq!(short, &[49406, 320, 1125, 539, 320, 2368, 49407, 0]);
        let cut = t.tokenize_one_to(&long, 8);
        assert_eq!(cut.len(), 8);
        assert_eq!((cut[0], cut[7]), (SOT, EOT));
        assert_eq!(&cut[1..7], &t.tokenize_one(&long)[1..7]);
        let ids = t
            .tokenize_tensor_to(&["a cat", "a dog"], 32, &Device::Cpu)
            .unwrap();
        assert_eq!(ids.dims(), &[2, 32]);
    }
}
