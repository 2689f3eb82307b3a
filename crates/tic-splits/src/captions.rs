//! Caption cleaning of TiC-YFCC15M: `remove_html(ftfy.fix_text(unquote_plus(text)))[:500]`.
use regex::Regex;
use std::sync::OnceLock;
use tic_shards::ftfy;

/// Captions are cut to this many characters (Unicode code points, as Python slices).
pub const MAX_CAPTION_CHARS: usize = 500;

fn hexval(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Python's `urllib.parse.unquote_to_bytes` on an ASCII string.
fn unquote_to_bytes(s: &str, out: &mut Vec<u8>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hexval(b[i + 1]), hexval(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
}

/// Python's `urllib.parse.unquote` (UTF-8, `errors="replace"`): percent escapes are decoded
/// within runs of ASCII characters; other characters pass through.
pub fn unquote(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while !rest.is_empty() {
        let ascii_len = rest.bytes().take_while(|b| b.is_ascii()).count();
        if ascii_len > 0 {
            let mut bytes = Vec::with_capacity(ascii_len);
            unquote_to_bytes(&rest[..ascii_len], &mut bytes);
            out.push_str(&String::from_utf8_lossy(&bytes));
            rest = &rest[ascii_len..];
        }
        let other_len: usize = rest
            .chars()
            .take_while(|c| !c.is_ascii())
            .map(char::len_utf8)
            .sum();
        out.push_str(&rest[..other_len]);
        rest = &rest[other_len..];
    }
    out
}

/// Python's `urllib.parse.unquote_plus`: `+` → space, then [`unquote`].
pub fn unquote_plus(s: &str) -> String {
    unquote(&s.replace('+', " "))
}

/// The original's `remove_html`: `re.sub("<.*?>", "", text)` (`.` does not cross newlines).
pub fn remove_html(s: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new("<.*?>").expect("valid regex"))
        .replace_all(s, "")
        .into_owned()
}

/// The original's `clean_text`.
pub fn clean_text(s: &str) -> String {
    remove_html(&ftfy::fix_text(&unquote_plus(s)))
}

/// The first `n` characters of `s` (Python `s[:n]`).
pub fn truncate_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A TiC-YFCC15M caption: `clean_text(f"{title}. {description}. {usertags}")[:500]`.
pub fn yfcc_caption(title: &str, description: &str, usertags: &str) -> String {
    let c = clean_text(&format!("{title}. {description}. {usertags}"));
    truncate_chars(&c, MAX_CAPTION_CHARS).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquoting() {
        assert_eq!(unquote_plus("a+b%20c%2B"), "a b c+");
        assert_eq!(unquote("%C3%A9t%C3%A9"), "été");
        assert_eq!(unquote("100%"), "100%");
        assert_eq!(unquote("%zz%4"), "%zz%4");
        assert_eq!(unquote("%FF"), "\u{FFFD}");
        assert_eq!(unquote("é%41"), "éA");
    }

    #[test]
    fn captions() {
        assert_eq!(
            yfcc_caption("My+%3Cb%3Ecat%3C%2Fb%3E", "", "cat,pet"),
            "My cat. . cat,pet"
        );
        assert_eq!(truncate_chars("ééé", 2), "éé");
    }
}
