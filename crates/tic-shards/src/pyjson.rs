//! JSON written the way Python's `json.dumps` (and simdjson's `dump`) writes it: `", "` and
//! `": "` separators, non-ASCII escaped as `\uXXXX`, floats as Python's `repr` (`1e-05`,
//! `1e+16`, `12.0`) and NaN as bare `NaN`. Downstream shell tools (TiC's `convert_wds.sh`
//! reads `meta.json` with a `sed` regex) depend on that exact spacing, and DataComp's
//! `eval_results.jsonl` records carry `NaN` for empty WILDS groups.
//!
//! A `serde_json::Value` cannot hold NaN, so [`float`] stores it as the string [`NAN_MARKER`]
//! (a Unicode noncharacter no real text carries), which [`to_string`] writes as `NaN`.

use serde::Serialize;
use std::io;

/// The in-memory stand-in for Python's `float('nan')` in a `Value` ([`float`]): written as
/// bare `NaN`.
pub const NAN_MARKER: &str = "\u{FDD0}NaN";

/// How [`NAN_MARKER`] looks once escaped by the formatter.
const NAN_MARKER_ESCAPED: &[u8] = b"\\ufdd0NaN";

/// A float as a JSON value that [`to_string`] writes as Python does: NaN as `NaN`, infinities
/// as `null` (no record carries them), others as numbers.
pub fn float(x: f64) -> serde_json::Value {
    if x.is_nan() {
        serde_json::Value::String(NAN_MARKER.to_string())
    } else {
        serde_json::Value::from(x)
    }
}

/// Python's `repr(x)` of a finite float: the shortest round-trip digits, positional for
/// decimal exponents -4..=15 (with at least one decimal), else `d.ddde±XX`.
pub fn python_float_repr(x: f64) -> String {
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').expect("LowerExp writes an exponent");
    let exp: i32 = exp.parse().expect("LowerExp exponent is an integer");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    if !(-4..16).contains(&exp) {
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{mantissa}e{esign}{:02}", exp.abs());
    }
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let point = exp as usize + 1;
    if digits.len() <= point {
        format!("{sign}{digits}{}.0", "0".repeat(point - digits.len()))
    } else {
        format!("{sign}{}.{}", &digits[..point], &digits[point..])
    }
}

/// The formatter; `string` collects a string's escaped text until its end, where
/// [`NAN_MARKER`] turns into `NaN`.
#[derive(Default)]
struct PyFormatter {
    string: Option<Vec<u8>>,
}

/// Python's item separator: `", "` before every array value and object key but the first.
fn item_separator<W: ?Sized + io::Write>(w: &mut W, first: bool) -> io::Result<()> {
    if first {
        Ok(())
    } else {
        w.write_all(b", ")
    }
}

impl serde_json::ser::Formatter for PyFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        item_separator(w, first)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        item_separator(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(python_float_repr(value).as_bytes())
    }
    fn write_f32<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(w, f64::from(value))
    }
    fn begin_string<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.string = Some(Vec::new());
        Ok(())
    }
    fn end_string<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        let text = self.string.take().unwrap_or_default();
        if text == NAN_MARKER_ESCAPED {
            return w.write_all(b"NaN");
        }
        w.write_all(b"\"")?;
        w.write_all(&text)?;
        w.write_all(b"\"")
    }
    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        char_escape: serde_json::ser::CharEscape,
    ) -> io::Result<()> {
        let mut compact = serde_json::ser::CompactFormatter;
        match self.string.as_mut() {
            Some(buf) => compact.write_char_escape(buf, char_escape),
            None => compact.write_char_escape(w, char_escape),
        }
    }
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        match self.string.as_mut() {
            Some(buf) => write_escaped_fragment(buf, fragment),
            None => write_escaped_fragment(w, fragment),
        }
    }
}

/// A string fragment with non-ASCII characters as `\uXXXX` escapes of their UTF-16 units.
fn write_escaped_fragment<W: ?Sized + io::Write>(w: &mut W, fragment: &str) -> io::Result<()> {
    if fragment.is_ascii() {
        return w.write_all(fragment.as_bytes());
    }
    let mut buf = [0u16; 2];
    for c in fragment.chars() {
        if c.is_ascii() {
            w.write_all(&[c as u8])?;
        } else {
            for unit in c.encode_utf16(&mut buf) {
                write!(w, "\\u{unit:04x}")?;
            }
        }
    }
    Ok(())
}

/// Serialises `value` as Python's `json.dumps(value)` would.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter::default());
    value
        .serialize(&mut ser)
        .expect("serialising to memory cannot fail");
    String::from_utf8(out).expect("JSON output is ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_style() {
        let v = json!({"successes": 3, "a": [1, 2], "s": "é☃😀"});
        assert_eq!(
            to_string(&v),
            r#"{"successes": 3, "a": [1, 2], "s": "\u00e9\u2603\ud83d\ude00"}"#
        );
    }

    #[test]
    fn floats_as_python_repr_and_nan_bare() {
        for (x, py) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (12.0, "12.0"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (1e-5, "1e-05"),
            (1.52587890625e-05, "1.52587890625e-05"),
            (0.3333333432674408, "0.3333333432674408"),
            (123456789012345.6, "123456789012345.6"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (-2.5e-300, "-2.5e-300"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ] {
            assert_eq!(python_float_repr(x), py, "{x}");
        }
        let mut m = serde_json::Map::new();
        m.insert("acc".into(), float(f64::NAN));
        m.insert("n".into(), float(3.0));
        m.insert("s".into(), json!("NaN \" x\u{fdd0}"));
        assert_eq!(
            to_string(&m),
            r#"{"acc": NaN, "n": 3.0, "s": "NaN \" x\ufdd0"}"#
        );
    }
}
