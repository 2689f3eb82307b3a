//! JSON written the way Python's `json.dumps` (and simdjson's `dump`) writes it: `", "` and
//! `": "` separators, non-ASCII escaped as `\uXXXX`. Downstream shell tools (TiC's
//! `convert_wds.sh` reads `meta.json` with a `sed` regex) depend on that exact spacing.
//!
//! Floats are spelled as Python's `repr` spells them (`1e-05`, `1e+16`, `0.0001`, `12.0`), and
//! the non-finite values that Python's `json` writes as bare `NaN` / `Infinity` / `-Infinity`
//! (DataComp's eval records hold `NaN` for empty groups) can be carried in a
//! `serde_json::Value`, whose numbers cannot hold them, through [`float`].

use serde::Serialize;
use serde_json::Value;
use std::io;

/// The strings [`float`] puts in a `Value` for the non-finite floats, and the bare tokens
/// [`to_string`] writes for them. The leading NUL keeps them apart from any real string.
const NON_FINITE: [(&str, &str); 3] = [
    ("\u{0}py:NaN", "NaN"),
    ("\u{0}py:Infinity", "Infinity"),
    ("\u{0}py:-Infinity", "-Infinity"),
];

/// A float as a JSON value for [`to_string`]: a number when finite, else a stand-in that
/// [`to_string`] writes as Python's bare `NaN`, `Infinity` or `-Infinity` (read back by
/// Python's `json` as the same float; `tic_eval::results` reads them as `null`).
pub fn float(x: f64) -> Value {
    match serde_json::Number::from_f64(x) {
        Some(n) => Value::Number(n),
        None if x.is_nan() => Value::String(NON_FINITE[0].0.into()),
        None if x > 0.0 => Value::String(NON_FINITE[1].0.into()),
        None => Value::String(NON_FINITE[2].0.into()),
    }
}

/// Reads a float back from a `Value` built with [`float`]: numbers, and the non-finite
/// stand-ins as NaN / ±infinity; `None` for anything else.
pub fn as_float(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| {
        let s = v.as_str()?;
        let (_, token) = NON_FINITE.iter().find(|(stand_in, _)| *stand_in == s)?;
        Some(match *token {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            _ => f64::NEG_INFINITY,
        })
    })
}

/// Writes `x` as Python's `repr(float)`: the shortest digits that round-trip, in positional
/// notation when the decimal exponent is in `-4..16` (with `.0` for integral values), else as
/// `d.ddde±XX` (at least two exponent digits).
fn write_python_float<W: ?Sized + io::Write>(w: &mut W, x: f64) -> io::Result<()> {
    let sci = format!("{x:e}"); // shortest round-trip digits, e.g. "-4.218875e-5"
    let (mantissa, exp) = sci.split_once('e').expect("LowerExp writes an exponent");
    let exp: i32 = exp.parse().expect("LowerExp writes an integer exponent");
    if (-4..16).contains(&exp) {
        let text = x.to_string(); // positional, shortest round-trip digits
        if text.contains('.') {
            w.write_all(text.as_bytes())
        } else {
            write!(w, "{text}.0")
        }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        write!(w, "{mantissa}e{sign}{:02}", exp.abs())
    }
}

/// Python's `repr(x)` for any float: [`write_python_float`]'s spelling for finite values, and
/// `nan`, `inf`, `-inf` (what exifread's printed float values hold, `tic_download::exif`).
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    let mut out = Vec::new();
    write_python_float(&mut out, x).expect("writing to memory cannot fail");
    String::from_utf8(out).expect("a float is ASCII")
}

struct PyFormatter;

/// Python's item separator: `", "` before every array value and object key but the first.
fn item_separator<W: ?Sized + io::Write>(w: &mut W, first: bool) -> io::Result<()> {
    if first {
        Ok(())
    } else {
        w.write_all(b", ")
    }
}

impl serde_json::ser::Formatter for PyFormatter {
    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        write_python_float(w, value)
    }
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
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // Python escapes everything outside ' '..='~' (serde_json already escapes the controls
        // below 0x20, `"` and `\\`): DEL and all non-ASCII, the latter as UTF-16 units.
        if fragment.is_ascii() && !fragment.contains('\x7f') {
            return w.write_all(fragment.as_bytes());
        }
        let mut buf = [0u16; 2];
        for c in fragment.chars() {
            if c.is_ascii() && c != '\x7f' {
                w.write_all(&[c as u8])?;
            } else {
                for unit in c.encode_utf16(&mut buf) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

/// Python's `json.dumps(value, indent=4)`: [`PyFormatter`]'s floats and escapes inside
/// serde_json's pretty layout (which is Python's: `",\n"` + indent, `": "`, `[]` / `{}` empty).
struct PyIndentFormatter<'a>(serde_json::ser::PrettyFormatter<'a>);

macro_rules! delegate {
    ($($name:ident($($arg:ident: $t:ty),*)),* $(,)?) => {$(
        fn $name<W: ?Sized + io::Write>(&mut self, w: &mut W $(, $arg: $t)*) -> io::Result<()> {
            self.0.$name(w $(, $arg)*)
        }
    )*};
}

impl serde_json::ser::Formatter for PyIndentFormatter<'_> {
    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        write_python_float(w, value)
    }
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        PyFormatter.write_string_fragment(w, fragment)
    }
    delegate!(
        begin_array(),
        end_array(),
        begin_array_value(first: bool),
        end_array_value(),
        begin_object(),
        end_object(),
        begin_object_key(first: bool),
        begin_object_value(),
        end_object_value(),
    );
}

/// Serialises `value` as Python's `json.dumps(value, indent=4)` (img2dataset's sample `.json`
/// and `_stats.json`), non-finite stand-ins as in [`to_string`].
pub fn to_string_indent4<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::new();
    let fmt = PyIndentFormatter(serde_json::ser::PrettyFormatter::with_indent(b"    "));
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    value
        .serialize(&mut ser)
        .expect("serialising to memory cannot fail");
    bare_non_finite(out)
}

/// Serialises `value` as Python's `json.dumps(value)` would (the stand-ins of [`float`] as
/// bare `NaN` / `Infinity` / `-Infinity`).
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter);
    value
        .serialize(&mut ser)
        .expect("serialising to memory cannot fail");
    bare_non_finite(out)
}

/// The serialised bytes as text, the non-finite stand-ins written bare.
fn bare_non_finite(out: Vec<u8>) -> String {
    let mut text = String::from_utf8(out).expect("JSON output is ASCII");
    if text.contains("\\u0000py:") {
        for (stand_in, token) in NON_FINITE {
            let quoted = format!("\"\\u0000{}\"", &stand_in[1..]);
            text = text.replace(&quoted, token);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn indent4_as_python() {
        // json.dumps({"a": [[0.1, 1e-05]], "b": [], "c": None, "d": "\u00e9"}, indent=4)
        let v = json!({"a": [[0.1, 1e-05]], "b": [], "c": null, "d": "\u{e9}"});
        assert_eq!(
            to_string_indent4(&v),
            "{\n    \"a\": [\n        [\n            0.1,\n            1e-05\n        ]\n    ],\n    \"b\": [],\n    \"c\": null,\n    \"d\": \"\\u00e9\"\n}"
        );
    }

    #[test]
    fn python_style() {
        let v = json!({"successes": 3, "a": [1, 2], "s": "é☃😀"});
        assert_eq!(
            to_string(&v),
            r#"{"successes": 3, "a": [1, 2], "s": "\u00e9\u2603\ud83d\ude00"}"#
        );
    }

    #[test]
    fn del_and_controls_escaped_as_python() {
        // json.dumps("a\x7fb\x05\n") == '"a\\u007fb\\u0005\\n"'
        assert_eq!(
            to_string(&json!("a\u{7f}b\u{5}\n")),
            r#""a\u007fb\u0005\n""#
        );
    }

    #[test]
    fn floats_as_python_repr_and_bare_non_finite() {
        // Expected strings from CPython 3.11 `json.dumps`.
        let cases = [
            (0.5, "0.5"),
            (12.0, "12.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (0.0001, "0.0001"),
            (1e-5, "1e-05"),
            (4.218875e-5, "4.218875e-05"),
            (0.6666666865348816, "0.6666666865348816"),
            (1234567890123456.0, "1234567890123456.0"),
            (1e16, "1e+16"),
            (1.5e300, "1.5e+300"),
            (-2.5e-7, "-2.5e-07"),
            (5e-324, "5e-324"),
            (1e15, "1000000000000000.0"),
            (123456789012345.6, "123456789012345.6"),
            (-2.5e-300, "-2.5e-300"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (1.52587890625e-05, "1.52587890625e-05"),
        ];
        for (x, py) in cases {
            assert_eq!(to_string(&x), py, "{x:e}");
        }
        let v = json!({"a": float(f64::NAN), "b": [float(f64::INFINITY), float(f64::NEG_INFINITY)],
            "c": float(0.25), "s": "NaN"});
        assert_eq!(
            to_string(&v),
            r#"{"a": NaN, "b": [Infinity, -Infinity], "c": 0.25, "s": "NaN"}"#
        );
        assert!(as_float(&v["a"]).unwrap().is_nan());
        assert_eq!(as_float(&v["b"][1]), Some(f64::NEG_INFINITY));
        assert_eq!(as_float(&v["c"]), Some(0.25));
        assert_eq!(as_float(&v["s"]), None);
    }
}
