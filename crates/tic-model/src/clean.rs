//! OpenCLIP's text cleaning (`clean='lower'`): `ftfy.fix_text` → `html.unescape` twice → strip →
//! collapse whitespace → strip → lower-case.
//!
//! # The ftfy subset
//! [`fix_text`] reproduces ftfy 6.x `fix_text` with its default `TextFixerConfig`, *except* the
//! mojibake repair (`fix_encoding`: re-decoding text that looks like UTF-8 read as Latin-1 /
//! Windows-1252, with its sub-steps `restore_byte_a0`, `replace_lossy_sequences`,
//! `decode_inconsistent_utf8`). Everything else is reproduced, in ftfy's order, per line segment,
//! repeated until the text stops changing:
//! 1. `unescape_html` (ftfy's own, conservative: only `&name;` / `&#..;` forms from the HTML5 table
//!    plus upper-cased variants such as `&EACUTE;`), disabled for a line containing `<` and for
//!    every following line (as ftfy does);
//! 2. `fix_c1_controls` (U+0080–U+009F decoded as Windows-1252, holes kept);
//! 3. `fix_latin_ligatures` (ﬁ → fi, Ĳ → IJ, ǆ → dž ...);
//! 4. `fix_character_width` (fullwidth/halfwidth forms U+FF01–U+FFEF → NFKC, U+3000 → space);
//! 5. `uncurl_quotes` (U+02BC, U+2018–U+201B → `'`; U+201C–U+201F → `"`);
//! 6. `fix_line_breaks` (CRLF, CR, U+2028, U+2029, U+0085 → LF);
//! 7. `fix_surrogates` (nothing to do: a Rust `str` cannot hold surrogates);
//! 8. `remove_terminal_escapes` (`ESC [ digits/; letter`);
//! 9. `remove_control_chars` (U+0000–08, 0B, 0E–1F, 7F, 206A–206F, FEFF, FFF9–FFFC);
//! 10. NFC normalisation.
//!
//! Mojibake repair only changes text that ftfy's "badness" heuristic flags (sequences such as
//! `Ã©`); such captions are rare in web data and are tokenised as-is here.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

/// Python `html.unescape`: HTML5 named references (with the legacy semicolon-less forms and
/// longest-prefix matching) and numeric references with the HTML5 replacement rules.
pub fn html_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    static CHARREF: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\x0C <&#;]{1,32};?)").unwrap()
    });
    CHARREF
        .replace_all(s, |c: &regex::Captures| replace_charref(&c[1]))
        .into_owned()
}

fn entity(name: &str) -> Option<&'static str> {
    // htmlize's table is WHATWG entities.json, the same data as Python's `html.entities.html5`.
    let key = format!("&{name}");
    htmlize::ENTITIES
        .get(key.as_bytes())
        .map(|v| std::str::from_utf8(v).expect("entity values are UTF-8"))
}

fn replace_charref(s: &str) -> String {
    if let Some(num) = s.strip_prefix('#') {
        let num = num.trim_end_matches(';');
        let n = if let Some(hex) = num.strip_prefix(['x', 'X']) {
            u64::from_str_radix(hex, 16).unwrap_or(u64::MAX)
        } else {
            num.parse::<u64>().unwrap_or(u64::MAX)
        };
        if let Some(c) = invalid_charref(n) {
            return c.to_string();
        }
        if (0xD800..=0xDFFF).contains(&n) || n > 0x10FFFF {
            return '\u{FFFD}'.to_string();
        }
        if is_invalid_codepoint(n) {
            return String::new();
        }
        return char::from_u32(n as u32)
            .map(String::from)
            .unwrap_or_default();
    }
    if let Some(v) = entity(s) {
        return v.to_string();
    }
    // Longest prefix that is an entity (only the legacy semicolon-less names can match).
    let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).skip(2).collect();
    for &x in bounds.iter().rev() {
        if let Some(v) = entity(&s[..x]) {
            return format!("{v}{}", &s[x..]);
        }
    }
    format!("&{s}")
}

/// Python's `html._invalid_charrefs`: numeric references replaced per the HTML5 spec.
fn invalid_charref(n: u64) -> Option<char> {
    Some(match n {
        0x00 => '\u{FFFD}',
        0x0D => '\r',
        0x80..=0x9F => cp1252_c1(n as u8),
        _ => return None,
    })
}

/// Windows-1252 meaning of a C1 byte; the five undefined bytes map to themselves.
fn cp1252_c1(b: u8) -> char {
    const MAP: [u32; 32] = [
        0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
        0x2039, 0x0152, 0x8D, 0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013,
        0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178,
    ];
    char::from_u32(MAP[(b - 0x80) as usize]).expect("valid")
}

/// Python's `html._invalid_codepoints` (these numeric references decode to nothing).
fn is_invalid_codepoint(n: u64) -> bool {
    (0x1..=0x8).contains(&n)
        || (0xE..=0x1F).contains(&n)
        || (0x7F..=0x9F).contains(&n)
        || (0xFDD0..=0xFDEF).contains(&n)
        || n == 0xB
        || (n <= 0x10FFFF && (n & 0xFFFF) >= 0xFFFE)
}

/// ftfy's HTML entity table: `&name;` entries of HTML5 plus upper-cased variants of all-lower-case
/// names whose upper-case form is not itself an entity (`&NTILDE;` → `Ñ`).
fn ftfy_entities() -> &'static HashMap<String, String> {
    static MAP: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
        let mut m = HashMap::new();
        let mut entries: Vec<(&[u8], &[u8])> =
            htmlize::ENTITIES.entries().map(|(k, v)| (*k, *v)).collect();
        entries.sort();
        for (k, v) in entries {
            let k = std::str::from_utf8(k).expect("utf8");
            let v = std::str::from_utf8(v).expect("utf8");
            if !k.ends_with(';') {
                continue;
            }
            m.insert(k.to_string(), v.to_string());
        }
        let lower: Vec<(String, String)> = m
            .iter()
            .filter(|(k, _)| **k == k.to_lowercase())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in lower {
            let up = k.to_uppercase();
            if html_unescape(&up) == up {
                m.insert(up, v.to_uppercase());
            }
        }
        m
    });
    &MAP
}

fn ftfy_unescape_html(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    static RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"&#?[0-9A-Za-z]{1,24};").unwrap());
    RE.replace_all(s, |c: &regex::Captures| {
        let t = &c[0];
        if let Some(v) = ftfy_entities().get(t) {
            v.clone()
        } else if t.starts_with("&#") {
            let u = html_unescape(t);
            if u.contains(';') {
                t.to_string()
            } else {
                u
            }
        } else {
            t.to_string()
        }
    })
    .into_owned()
}

fn map_chars(s: &str, f: impl Fn(char) -> Option<&'static str>) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match f(c) {
            Some(r) => out.push_str(r),
            None => out.push(c),
        }
    }
    out
}

fn ligature(c: char) -> Option<&'static str> {
    Some(match c {
        'Ĳ' => "IJ",
        'ĳ' => "ij",
        'ŉ' => "ʼn",
        'Ǳ' => "DZ",
        'ǲ' => "Dz",
        'ǳ' => "dz",
        'Ǆ' => "DŽ",
        'ǅ' => "Dž",
        'ǆ' => "dž",
        'Ǉ' => "LJ",
        'ǈ' => "Lj",
        'ǉ' => "lj",
        'Ǌ' => "NJ",
        'ǋ' => "Nj",
        'ǌ' => "nj",
        'ﬀ' => "ff",
        'ﬁ' => "fi",
        'ﬂ' => "fl",
        'ﬃ' => "ffi",
        'ﬄ' => "ffl",
        'ﬅ' => "ſt",
        'ﬆ' => "st",
        _ => return None,
    })
}

fn fix_character_width(s: &str) -> String {
    if !s
        .chars()
        .any(|c| c == '\u{3000}' || ('\u{FF01}'..'\u{FFF0}').contains(&c))
    {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\u{3000}' {
            out.push(' ');
        } else if ('\u{FF01}'..'\u{FFF0}').contains(&c) {
            out.extend(std::iter::once(c).nfkc());
        } else {
            out.push(c);
        }
    }
    out
}

fn uncurl_quotes(c: char) -> Option<&'static str> {
    match c {
        '\u{02BC}' | '\u{2018}'..='\u{201B}' => Some("'"),
        '\u{201C}'..='\u{201F}' => Some("\""),
        _ => None,
    }
}

fn fix_line_breaks(s: &str) -> String {
    s.replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace(['\u{2028}', '\u{2029}', '\u{0085}'], "\n")
}

fn is_removed_control(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{B}' | '\u{E}'..='\u{1F}' | '\u{7F}' | '\u{206A}'..='\u{206F}'
        | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFC}')
}

fn fix_segment(segment: &str, unescape: bool) -> String {
    static ANSI: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\x1b\[((?:\d|;)*)([a-zA-Z])").unwrap());
    let mut text = segment.to_string();
    loop {
        let orig = text.clone();
        if unescape {
            text = ftfy_unescape_html(&text);
        }
        // fix_c1_controls
        text = text
            .chars()
            .map(|c| {
                if ('\u{80}'..='\u{9F}').contains(&c) {
                    cp1252_c1(c as u32 as u8)
                } else {
                    c
                }
            })
            .collect();
        text = map_chars(&text, ligature);
        text = fix_character_width(&text);
        text = map_chars(&text, uncurl_quotes);
        text = fix_line_breaks(&text);
        text = ANSI.replace_all(&text, "").into_owned();
        text.retain(|c| !is_removed_control(c));
        text = text.nfc().collect();
        if text == orig {
            return text;
        }
    }
}

/// ftfy 6 `fix_text` with default settings, minus mojibake repair (see the module docs).
pub fn fix_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut unescape = true;
    // Segments end after each '\n' (ftfy's max_decode_length of 10^6 code points is not reached
    // by captions).
    for segment in text.split_inclusive('\n') {
        if segment.contains('<') {
            unescape = false;
        }
        out.push_str(&fix_segment(segment, unescape));
    }
    out
}

/// OpenCLIP `_clean_lower`: `whitespace_clean(basic_clean(text)).lower()`.
pub fn clean_lower(text: &str) -> String {
    static WS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\s+").unwrap());
    let t = fix_text(text);
    let t = html_unescape(&html_unescape(&t));
    let t = t.trim();
    let t = WS.replace_all(t, " ");
    t.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_html_unescape_rules() {
        assert_eq!(html_unescape("a &amp; b &lt;c&gt;"), "a & b <c>");
        assert_eq!(html_unescape("&ampx &notit; &notin;"), "&x ¬it; ∉");
        assert_eq!(html_unescape("&#65;&#x42;&#X43"), "ABC");
        assert_eq!(
            html_unescape("&#128; &#0; &#1; &#xD800; &#99999999999;"),
            "€ \u{FFFD}  \u{FFFD} \u{FFFD}"
        );
        assert_eq!(html_unescape("&bogus; & &#;"), "&bogus; & &#;");
    }

    #[test]
    fn ftfy_subset() {
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
    }

    #[test]
    fn clean_lower_collapses_and_lowers() {
        assert_eq!(
            clean_lower("  Hello\t\n World &amp;amp; ÄÖ  "),
            "hello world & äö"
        );
    }
}
