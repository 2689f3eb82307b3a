//! OpenCLIP's text cleaning (`clean='lower'`): `ftfy.fix_text` → `html.unescape` twice → strip →
//! collapse whitespace → strip → lower-case.
//!
//! `ftfy.fix_text` is `tic_shards::ftfy::fix_text` (shared with TiC-YFCC15M's caption cleaning;
//! its module docs list the ftfy subset it reproduces, mojibake repair of UTF-8 read as
//! Latin-1/Windows-1252 included); `html.unescape` is `tic_shards::html::unescape` in its Python
//! dialect (the decoder whose ftfy dialect is `fix_text`'s `unescape_html` step).

use std::sync::LazyLock;

use regex::Regex;
use tic_shards::html::{unescape, Dialect};

/// Python `html.unescape`: HTML5 named references (with the legacy semicolon-less forms and
/// longest-prefix matching) and numeric references with the HTML5 replacement rules
/// ([`tic_shards::html`], the Python dialect).
pub fn html_unescape(s: &str) -> String {
    unescape(s, Dialect::Python)
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
