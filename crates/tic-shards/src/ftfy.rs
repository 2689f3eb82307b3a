//! The part of ftfy 6's `fix_text` (default settings) that matters for photo captions.
//!
//! Covered, in ftfy's order and repeated until nothing changes, per `\n`-terminated line:
//! - `unescape_html` ("auto": only while no line so far contained `<`): the entities ending in
//!   `;` of ftfy's table (HTML5 names plus all-caps variants, `data/ftfy_html_entities.tsv`)
//!   and numeric references with Python `html.unescape`'s rules ([`crate::html`], the ftfy
//!   dialect);
//! - `fix_encoding`, restricted to UTF-8 mojibake decoded as Latin-1 or Windows-1252: when the
//!   text shows a UTF-8 lead byte followed by a continuation byte in one of those encodings, it
//!   is re-encoded (Latin-1, then sloppy Windows-1252) and decoded as UTF-8 if that succeeds;
//! - `fix_c1_controls`, `fix_latin_ligatures`, `fix_character_width`, `uncurl_quotes`,
//!   `fix_line_breaks`, `remove_terminal_escapes`, `remove_control_chars`, NFC.
//!
//! Not covered: ftfy's full badness heuristics and the other single-byte encodings it tries
//! (Windows-1250/1251/1253/1254/1257, ISO-8859-2, MacRoman, CP437), `restore_byte_a0`,
//! `replace_lossy_sequences`, `decode_inconsistent_utf8` (mixed mojibake and good UTF-8 in one
//! line), and the 1,000,000-character segment limit. Surrogates cannot occur in Rust strings.
use crate::html::{self, Dialect, CP1252_HIGH};
use regex::Regex;
use std::sync::OnceLock;
use unicode_normalization::UnicodeNormalization;

/// ftfy's `unescape_html`: [`crate::html::unescape`] in the ftfy dialect.
pub fn unescape_html(text: &str) -> String {
    html::unescape(text, Dialect::Ftfy)
}

fn re(cell: &'static OnceLock<Regex>, pat: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pat).expect("valid regex"))
}

fn latin1_byte(c: char) -> Option<u8> {
    u8::try_from(c as u32).ok()
}

fn sloppy1252_byte(c: char) -> Option<u8> {
    let n = c as u32;
    if n < 0x80 || (0xA0..=0xFF).contains(&n) {
        return Some(n as u8);
    }
    if let Some(i) = CP1252_HIGH.iter().position(|x| *x == Some(c)) {
        return Some(0x80 + i as u8);
    }
    if (0x80..=0x9F).contains(&n) && CP1252_HIGH[(n - 0x80) as usize].is_none() {
        return Some(n as u8);
    }
    None
}

/// True when some character that is a UTF-8 lead byte (0xC2–0xF4) in Latin-1/Windows-1252 is
/// followed by one that is a continuation byte (0x80–0xBF): the signature of UTF-8 mojibake.
fn looks_like_mojibake(text: &str) -> bool {
    let byte = |c: char| latin1_byte(c).or_else(|| sloppy1252_byte(c));
    let mut prev: Option<u8> = None;
    for c in text.chars() {
        let b = if (c as u32) < 0x80 { None } else { byte(c) };
        if let (Some(p), Some(b)) = (prev, b) {
            if (0xC2..=0xF4).contains(&p) && (0x80..=0xBF).contains(&b) {
                return true;
            }
        }
        prev = b;
    }
    false
}

/// ftfy's `fix_encoding`, restricted to Latin-1 / Windows-1252 mojibake of UTF-8.
pub fn fix_encoding(text: &str) -> String {
    let mut text = text.to_string();
    loop {
        if text.is_ascii() || !looks_like_mojibake(&text) {
            return text;
        }
        let mut fixed = None;
        for enc in [latin1_byte as fn(char) -> Option<u8>, sloppy1252_byte] {
            let bytes: Option<Vec<u8>> = text.chars().map(enc).collect();
            if let Some(b) = bytes {
                if let Ok(s) = String::from_utf8(b) {
                    fixed = Some(s);
                    break;
                }
            }
        }
        match fixed {
            Some(f) if f != text => text = f,
            _ => return text,
        }
    }
}

fn fix_c1_controls(text: &str) -> String {
    text.chars()
        .map(|c| match c as u32 {
            n @ 0x80..=0x9F => CP1252_HIGH[(n - 0x80) as usize].unwrap_or(c),
            _ => c,
        })
        .collect()
}

fn fix_latin_ligatures(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            'Ĳ' => out.push_str("IJ"),
            'ĳ' => out.push_str("ij"),
            'ŉ' => out.push_str("ʼn"),
            'Ǳ' => out.push_str("DZ"),
            'ǲ' => out.push_str("Dz"),
            'ǳ' => out.push_str("dz"),
            'Ǆ' => out.push_str("DŽ"),
            'ǅ' => out.push_str("Dž"),
            'ǆ' => out.push_str("dž"),
            'Ǉ' => out.push_str("LJ"),
            'ǈ' => out.push_str("Lj"),
            'ǉ' => out.push_str("lj"),
            'Ǌ' => out.push_str("NJ"),
            'ǋ' => out.push_str("Nj"),
            'ǌ' => out.push_str("nj"),
            'ﬀ' => out.push_str("ff"),
            'ﬁ' => out.push_str("fi"),
            'ﬂ' => out.push_str("fl"),
            'ﬃ' => out.push_str("ffi"),
            'ﬄ' => out.push_str("ffl"),
            'ﬅ' => out.push_str("ſt"),
            'ﬆ' => out.push_str("st"),
            _ => out.push(c),
        }
    }
}

fn fix_character_width(text: &str, out: &mut String) {
    for c in text.chars() {
        match c as u32 {
            0x3000 => out.push(' '),
            0xFF01..=0xFFEF => {
                let alt: String = std::iter::once(c).nfkc().collect();
                out.push_str(&alt);
            }
            _ => out.push(c),
        }
    }
}

fn uncurl_quotes(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{02BC}' | '\u{2018}'..='\u{201B}' => '\'',
            '\u{201C}'..='\u{201F}' => '"',
            _ => c,
        })
        .collect()
}

fn fix_line_breaks(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace(['\r', '\u{2028}', '\u{2029}', '\u{0085}'], "\n")
}

fn remove_terminal_escapes(text: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    re(&RE, "\x1b\\[((?:\\d|;)*)([a-zA-Z])")
        .replace_all(text, "")
        .into_owned()
}

fn remove_control_chars(text: &str) -> String {
    text.chars()
        .filter(|&c| {
            !matches!(c as u32,
                0x00..=0x08 | 0x0B | 0x0E..=0x1F | 0x7F | 0x206A..=0x206F | 0xFEFF | 0xFFF9..=0xFFFC)
        })
        .collect()
}

/// ftfy's `fix_and_explain` for one line with default settings (`unescape` = HTML on/off).
fn fix_segment(text: &str, unescape: bool) -> String {
    let mut text = text.to_string();
    loop {
        let orig = text.clone();
        if unescape {
            text = unescape_html(&text);
        }
        text = fix_encoding(&text);
        text = fix_c1_controls(&text);
        let mut buf = String::with_capacity(text.len());
        fix_latin_ligatures(&text, &mut buf);
        let mut buf2 = String::with_capacity(buf.len());
        fix_character_width(&buf, &mut buf2);
        text = uncurl_quotes(&buf2);
        text = fix_line_breaks(&text);
        text = remove_terminal_escapes(&text);
        text = remove_control_chars(&text);
        text = text.nfc().collect();
        if text == orig {
            return text;
        }
    }
}

/// `ftfy.fix_text(text)` with default settings, for the subset described in the module docs.
pub fn fix_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut unescape = true;
    for seg in text.split_inclusive('\n') {
        if seg.contains('<') {
            unescape = false;
        }
        out.push_str(&fix_segment(seg, unescape));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basics() {
        assert_eq!(fix_text("P&eacute;rez &amp; co"), "Pérez & co");
        assert_eq!(fix_text("P&EACUTE;REZ"), "PÉREZ");
        assert_eq!(fix_text("caf\u{00C3}\u{00A9}"), "café");
        assert_eq!(fix_text("\u{201C}hi\u{201D} it\u{2019}s"), "\"hi\" it's");
        assert_eq!(fix_text("\u{FB01}ne \u{FF21}\u{FF22}"), "fine AB");
        assert_eq!(fix_text("a\r\nb\rc"), "a\nb\nc");
        assert_eq!(fix_text("<b>&amp;</b>"), "<b>&amp;</b>");
        assert_eq!(fix_text("&#65;&#x42;&#12ab;"), "AB&#12ab;");
        assert_eq!(fix_text("e\u{0301}"), "é");
        assert_eq!(fix_text("x\u{0093}y\u{0094}"), "x\"y\"");
    }

    /// Cases the tokenizer's cleaning was checked on against ftfy 6.
    #[test]
    fn ftfy_defaults() {
        assert_eq!(
            fix_text("P&EACUTE;REZ &ntilde; &nTILDE;"),
            "PÉREZ ñ &nTILDE;"
        );
        assert_eq!(fix_text("<b>&amp;</b>"), "<b>&amp;</b>");
        assert_eq!(
            fix_text("ﬁne ＬＯＵＤ “quoted” ‘s’"),
            "fine LOUD \"quoted\" 's'"
        );
        assert_eq!(fix_text("a\r\nb\rc\u{2028}d"), "a\nb\nc\nd");
        assert_eq!(fix_text("\x1b[36;44mblue\x1b[0m\u{feff}x\u{0}"), "bluex");
        assert_eq!(fix_text("e\u{301}"), "é");
        assert_eq!(fix_text("\u{80}\u{85}"), "€…");
        assert_eq!(fix_text("cafÃ©"), "café");
    }
}
