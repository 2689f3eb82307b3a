//! OpenCLIP's text cleaning (`clean='lower'`): `ftfy.fix_text` → `html.unescape` twice → strip →
//! collapse whitespace → strip → lower-case.
//!
//! `ftfy.fix_text` is `tic_shards::ftfy::fix_text` (shared with TiC-YFCC15M's caption cleaning;
//! its module docs list the ftfy subset it reproduces, mojibake repair of UTF-8 read as
//! Latin-1/Windows-1252 included).

use std::sync::LazyLock;

use regex::Regex;

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

/// OpenCLIP `_clean_lower`: `whitespace_clean(basic_clean(text)).lower()`.
pub fn clean_lower(text: &str) -> String {
    static WS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\s+").unwrap());
    let t = tic_shards::ftfy::fix_text(text);
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
    fn clean_lower_collapses_and_lowers() {
        assert_eq!(
            clean_lower("  Hello\t\n World &amp;amp; ÄÖ  "),
            "hello world & äö"
        );
    }
}
