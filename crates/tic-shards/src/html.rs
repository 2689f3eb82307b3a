//! The one HTML character-reference decoder of tic-rs, in the two dialects the pipeline needs:
//! Python's `html.unescape` (OpenCLIP's tokenizer cleaning, `tic_model::clean`) and ftfy's
//! `unescape_html` (a step of `fix_text`, [`crate::ftfy`]).
//!
//! Both dialects decode numeric references with the same HTML5 rules (Python's
//! `html._replace_charref`): `&#0;` → U+FFFD, `&#13;` → `\r`, `&#128;`–`&#159;` → their
//! Windows-1252 meaning (the five undefined bytes map to themselves), surrogates and numbers
//! above U+10FFFF → U+FFFD, the invalid code points of `html._invalid_codepoints` (controls,
//! U+FDD0–U+FDEF, every `…FFFE`/`…FFFF`) → nothing. They differ in what counts as a reference
//! and which names they know:
//!
//! | | [`Dialect::Python`] | [`Dialect::Ftfy`] |
//! |---|---|---|
//! | references | `&#65`, `&#x41`, `&name`, the `;` optional | only `&…;` of 1–24 ASCII letters and digits after `&` or `&#` |
//! | names | WHATWG `entities.json` (htmlize's table, = Python's `html.entities.html5`), legacy names without `;` matched as the longest prefix (`&ampx` → `&x`) | ftfy's table (`data/ftfy_html_entities.tsv`: the names ending in `;` plus all-caps variants, `&EACUTE;` → `É`), whole reference only |
//! | `&#12ab;` | the digits decode, the rest stays (`\u{c}ab;`) | kept as written |
//!
//! Unknown names stay as written in both. (ftfy itself also keeps a numeric reference whose
//! decoding leaves a `;`, such as `&#59;`; here, as in tic-rs before the two decoders became
//! one, the ftfy dialect decodes it.)

use regex::Regex;
use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock};

/// Which decoder's rules to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Python's `html.unescape`: HTML5 named references (with the legacy semicolon-less forms
    /// and longest-prefix matching) and numeric references, the `;` optional.
    Python,
    /// ftfy's `unescape_html`: only references ending in `;`, names from ftfy's table.
    Ftfy,
}

/// Windows-1252 for bytes 0x80–0x9F; `None` where it is undefined (the byte then stands for
/// the same code point, as in ftfy's "sloppy" codec and Python's `html._invalid_charrefs`).
pub const CP1252_HIGH: [Option<char>; 32] = [
    Some('\u{20AC}'),
    None,
    Some('\u{201A}'),
    Some('\u{0192}'),
    Some('\u{201E}'),
    Some('\u{2026}'),
    Some('\u{2020}'),
    Some('\u{2021}'),
    Some('\u{02C6}'),
    Some('\u{2030}'),
    Some('\u{0160}'),
    Some('\u{2039}'),
    Some('\u{0152}'),
    None,
    Some('\u{017D}'),
    None,
    None,
    Some('\u{2018}'),
    Some('\u{2019}'),
    Some('\u{201C}'),
    Some('\u{201D}'),
    Some('\u{2022}'),
    Some('\u{2013}'),
    Some('\u{2014}'),
    Some('\u{02DC}'),
    Some('\u{2122}'),
    Some('\u{0161}'),
    Some('\u{203A}'),
    Some('\u{0153}'),
    None,
    Some('\u{017E}'),
    Some('\u{0178}'),
];

/// Decodes the character references of `text` by the rules of `dialect` (see the module docs).
pub fn unescape(text: &str, dialect: Dialect) -> String {
    match dialect {
        Dialect::Python => {
            if !text.contains('&') {
                return text.to_string();
            }
            static REF: LazyLock<Regex> = LazyLock::new(|| {
                Regex::new(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\x0C <&#;]{1,32};?)").unwrap()
            });
            REF.replace_all(text, |c: &regex::Captures| python_reference(&c[1]))
                .into_owned()
        }
        Dialect::Ftfy => {
            static REF: LazyLock<Regex> =
                LazyLock::new(|| Regex::new(r"&#?[0-9A-Za-z]{1,24};").unwrap());
            REF.replace_all(text, |c: &regex::Captures| ftfy_reference(&c[0]))
                .into_owned()
        }
    }
}

/// The value of a numeric reference's digits (saturating: every overflow is above U+10FFFF).
fn reference_number(digits: &str, radix: u32) -> u64 {
    digits.chars().fold(0u64, |acc, c| {
        acc.saturating_mul(radix as u64)
            .saturating_add(c.to_digit(radix).unwrap_or(0) as u64)
    })
}

/// What the numeric reference to `n` decodes to (the rules of the module docs).
fn numeric_reference(n: u64) -> String {
    // html._invalid_charrefs
    match n {
        0x00 => return "\u{FFFD}".into(),
        0x0D => return "\r".into(),
        0x80..=0x9F => {
            let c = CP1252_HIGH[(n - 0x80) as usize].unwrap_or(char::from(n as u8));
            return c.to_string();
        }
        _ => {}
    }
    if (0xD800..=0xDFFF).contains(&n) || n > 0x10FFFF {
        return "\u{FFFD}".into();
    }
    // html._invalid_codepoints
    let invalid = matches!(n, 0x1..=0x8 | 0xB | 0xE..=0x1F | 0x7F..=0x9F | 0xFDD0..=0xFDEF)
        || (n & 0xFFFE) == 0xFFFE;
    if invalid {
        return String::new();
    }
    char::from_u32(n as u32)
        .map(String::from)
        .unwrap_or_default()
}

/// Python's replacement of one reference (`s`: the match without its `&`).
fn python_reference(s: &str) -> String {
    if let Some(num) = s.strip_prefix('#') {
        let num = num.trim_end_matches(';');
        let n = match num.strip_prefix(['x', 'X']) {
            Some(hex) => reference_number(hex, 16),
            None => reference_number(num, 10),
        };
        return numeric_reference(n);
    }
    if let Some(v) = whatwg_entity(s) {
        return v.to_string();
    }
    // Longest prefix that is an entity (only the legacy semicolon-less names can match).
    let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).skip(2).collect();
    for &x in bounds.iter().rev() {
        if let Some(v) = whatwg_entity(&s[..x]) {
            return format!("{v}{}", &s[x..]);
        }
    }
    format!("&{s}")
}

/// A name of WHATWG's `entities.json` (`name` without its `&`, with its `;` if any).
fn whatwg_entity(name: &str) -> Option<&'static str> {
    // htmlize's table is WHATWG entities.json, the same data as Python's `html.entities.html5`.
    let key = format!("&{name}");
    htmlize::ENTITIES
        .get(key.as_bytes())
        .map(|v| std::str::from_utf8(v).expect("entity values are UTF-8"))
}

/// ftfy's replacement of one reference `m` (`&…;`): a name of its table, or a numeric
/// reference whose body is all digits; anything else stays as written.
fn ftfy_reference(m: &str) -> String {
    if let Some(v) = ftfy_entities().get(m) {
        return v.clone();
    }
    let Some(body) = m.strip_prefix("&#") else {
        return m.to_string();
    };
    let body = &body[..body.len() - 1];
    let (digits, radix) = match body.strip_prefix(['x', 'X']) {
        Some(h) => (h, 16),
        None => (body, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return m.to_string();
    }
    numeric_reference(reference_number(digits, radix))
}

/// ftfy's entity table (`data/ftfy_html_entities.tsv`): `&name;` → its text.
fn ftfy_entities() -> &'static HashMap<&'static str, String> {
    const ENTITY_TSV: &str = include_str!("../data/ftfy_html_entities.tsv");
    static T: OnceLock<HashMap<&'static str, String>> = OnceLock::new();
    T.get_or_init(|| {
        ENTITY_TSV
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once('\t')?;
                let s: String = v
                    .split(' ')
                    .filter_map(|h| u32::from_str_radix(h, 16).ok().and_then(char::from_u32))
                    .collect();
                Some((k, s))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(s: &str) -> (String, String) {
        (unescape(s, Dialect::Python), unescape(s, Dialect::Ftfy))
    }

    /// The numeric rules are shared.
    #[test]
    fn numeric_references_decode_alike() {
        for (s, want) in [
            ("&#65;&#x42;&#X43;", "ABC"),
            ("&#128;&#129;&#159;", "€\u{81}Ÿ"),
            ("&#0;&#13;", "\u{FFFD}\r"),
            (
                "&#xD800;&#x110000;&#99999999999999999999999;",
                "\u{FFFD}\u{FFFD}\u{FFFD}",
            ),
            ("&#1;&#11;&#127;&#xFDD0;&#xFFFE;&#x1FFFF;", ""),
            ("&#x1F600;&#59;", "😀;"),
        ] {
            assert_eq!(both(s), (want.to_string(), want.to_string()), "{s}");
        }
    }

    /// Where the two dialects part: the `;`, legacy names, prefixes, all-caps names, bodies
    /// that are not all digits.
    #[test]
    fn dialects_differ_as_documented() {
        for (s, python, ftfy) in [
            ("&amp &#65 &#x42", "& A B", "&amp &#65 &#x42"),
            ("&ampx;", "&x;", "&ampx;"),
            ("&notit;", "¬it;", "&notit;"),
            ("&EACUTE; &NTILDE;", "&EACUTE; &NTILDE;", "É Ñ"),
            ("&#12ab;", "\u{c}ab;", "&#12ab;"),
            ("&#x;", "&#x;", "&#x;"),
            ("&bogus; & &#;", "&bogus; & &#;", "&bogus; & &#;"),
            ("&eacute; &amp;", "é &", "é &"),
        ] {
            assert_eq!(both(s), (python.to_string(), ftfy.to_string()), "{s}");
        }
    }
}
