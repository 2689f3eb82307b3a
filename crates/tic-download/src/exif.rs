//! The `exif` field of a sample, exactly as img2dataset 1.40 writes it. For every success its
//! downloader runs, on the downloaded bytes (before any resize),
//! `json.dumps({k: str(v).strip() for k, v in exifread.process_file(stream, details=False)
//! .items() if v is not None})`, and stores `null` when that raises. exifread is
//! `exifread-nocycle` 3.0.1, whose reading has quirks that decide the output, so this module
//! re-implements its walk rather than using a strict TIFF/EXIF crate (`kamadak-exif` rejects
//! what exifread prints and names, types and prints tags its own way):
//!
//! - the container: JPEG (the first `APP1 Exif` found by exifread's segment walk, which looks
//!   at most 4000 bytes past the JFIF/JFXX segments), WebP (`VP8X` + `EXIF` chunk), TIFF (the
//!   file itself); anything else (PNG, GIF, …) has no tags: `"{}"`. HEIC is not reproduced
//!   (no decoder here or in img2dataset's OpenCV reads it, so it never reaches this);
//! - IFD0 (`Image`), the chain after it (`Thumbnail`, `IFD 2`, …), the EXIF sub-IFD (`EXIF`),
//!   GPS (`GPS`) and Interoperability (`Interoperability`) with exifread's tag tables
//!   (`exif/tags.rs`, generated from the package); MakerNote, UserComment and ApplicationNotes
//!   are skipped as `details=False` does, and so are MakerNote decoding and thumbnails;
//! - values printed as exifread prints them: ratios reduced (`1/100`, `72`, `5/0`), lists as
//!   Python lists (the first 20 then `, ... ]` past 50 values; `[]` from 1000 values on), floats
//!   as 1-tuples (`(1.5,)`), enumerated values by name, BYTE / SBYTE / UNDEFINED values all `0`
//!   (exifread's 1-byte reads return 0), ASCII cut at the first NUL and, when not UTF-8, the
//!   Python bytes repr; offsets are file-relative, so pointers past the block read on into the
//!   file, and a short read of a 4- or 8-byte value raises (`null`) where an empty one gives 0.
//!
//! Beyond exifread: a block whose walk would visit more than [`MAX_WORK`] entries and values, or
//! print more than [`MAX_PRINTED`] bytes, gives up (`null`); exifread would take minutes or
//! gigabytes there.

mod tags;

use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt::Write as _;

/// How many IFD entries, values and ASCII bytes one image may cost before the walk gives up.
pub const MAX_WORK: u64 = 1 << 26;
/// How many bytes of printed tag values one image may hold before the walk gives up.
pub const MAX_PRINTED: u64 = 64 << 20;

/// Why no tags could be read: where exifread raises (img2dataset then stores `null`), or where
/// this reader gives up. Names the source and the byte offset in it.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: EXIF at byte {at}: {what}")]
pub struct ExifError {
    /// The file or URL the bytes came from.
    pub source_name: String,
    /// Byte offset in the file where reading failed.
    pub at: i64,
    /// What failed, and the Python exception exifread raises there.
    pub what: String,
}

/// What exifread raises (or where we stop), before the source is named.
#[derive(Debug)]
struct Raise {
    at: i64,
    what: String,
}

type Res<T> = Result<T, Raise>;

fn raise<T>(at: i64, what: impl Into<String>) -> Res<T> {
    Err(Raise {
        at,
        what: what.into(),
    })
}

/// The tag tables: which dictionary an IFD is read with.
#[derive(Clone, Copy, Debug)]
enum Dict {
    Exif,
    Gps,
    Interop,
}

/// How exifread prints a tag's values (the optional second element of its table entry).
enum Print {
    /// `str(values)`.
    Plain,
    /// Each value looked up (`repr(value)` when absent), concatenated.
    Map(&'static [(u32, &'static str)]),
    /// `make_string(values)`.
    MakeString,
    /// `make_string_uc(values)`: only UserComment, which `details=False` always skips
    /// ([`IGNORE_TAGS`]), so it is never printed.
    MakeStringUc,
    /// A pointer to a sub-IFD read with another table.
    SubIfd(Dict),
}

impl Dict {
    fn lookup(self, tag: u16) -> Option<&'static (u16, &'static str, Print)> {
        let table = match self {
            Dict::Exif => tags::EXIF,
            Dict::Gps => tags::GPS,
            Dict::Interop => tags::INTEROP,
        };
        table
            .binary_search_by_key(&tag, |e| e.0)
            .ok()
            .map(|i| &table[i])
    }
}

/// exifread's `IGNORE_TAGS`, skipped in every IFD with `details=False`.
const IGNORE_TAGS: [u16; 3] = [0x02BC, 0x927C, 0x9286];
/// Byte length of each TIFF field type (exifread's `FIELD_TYPES`, index = type).
const FIELD_LEN: [i64; 14] = [0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8, 4];

/// One value as exifread holds it.
#[derive(Clone, Debug)]
enum Val {
    Int(i64),
    /// A `Fraction`, reduced; a zero denominator is kept as read (exifread's `Ratio` hack).
    Ratio(i64, i64),
    /// `struct.unpack` of a float: a 1-tuple.
    Float(f64),
}

/// A tag's `values`: a list, or for ASCII a `str` (UTF-8) or `bytes` (not UTF-8).
#[derive(Clone, Debug)]
enum Values {
    List(Vec<Val>),
    Str(String),
    Bytes(Vec<u8>),
}

/// The `exif` string img2dataset 1.40 stores for an image with these bytes: exifread's tags as
/// Python's `json.dumps` writes them, `"{}"` without tags, `None` where exifread raises.
pub fn img2dataset_exif(bytes: &[u8]) -> Option<String> {
    let tags = read_tags(bytes, "image").ok()?;
    let map: Map<String, Value> = tags.into_iter().map(|(k, v)| (k, v.into())).collect();
    Some(tic_shards::pyjson::to_string(&map))
}

/// exifread's tags of the image `bytes` (from `source_name`), in its order, each value as
/// img2dataset prints it (`str(tag).strip()`); an error where exifread raises.
pub fn read_tags(bytes: &[u8], source_name: &str) -> Result<Vec<(String, String)>, ExifError> {
    let named = |r: Raise| ExifError {
        source_name: source_name.to_string(),
        at: r.at,
        what: r.what,
    };
    let Some((offset, endian)) = find_block(bytes).map_err(named)? else {
        return Ok(Vec::new());
    };
    let mut h = Header::new(bytes, offset, endian);
    h.process().map_err(named)?;
    Ok(h.tags
        .into_iter()
        .map(|(k, v)| (k, python_strip(&v).to_string()))
        .collect())
}

/// A Python `BytesIO` over the file: reads past the end return what is there.
struct Cursor<'a> {
    data: &'a [u8],
    pos: i64,
}

impl<'a> Cursor<'a> {
    /// `read(n)`; a negative `n` reads to the end.
    fn read(&mut self, n: i64) -> &'a [u8] {
        let len = self.data.len() as i64;
        if self.pos >= len {
            return &[];
        }
        let end = if n < 0 { len } else { (self.pos + n).min(len) };
        let out = &self.data[self.pos as usize..end as usize];
        self.pos = end;
        out
    }
}

/// Python's `data[a:b]` for non-negative bounds.
fn slice(data: &[u8], a: i64, b: i64) -> &[u8] {
    let len = data.len() as i64;
    let (a, b) = (a.clamp(0, len), b.clamp(0, len));
    if a >= b {
        &[]
    } else {
        &data[a as usize..b as usize]
    }
}

/// Python's `data[i]` (an `IndexError` past the end).
fn byte(data: &[u8], i: i64, at: i64) -> Res<i64> {
    match usize::try_from(i).ok().and_then(|i| data.get(i)) {
        Some(&b) => Ok(i64::from(b)),
        None => raise(at + i, "index past the data read (IndexError)"),
    }
}

/// exifread's `_determine_type`: the file offset of the TIFF header and its byte-order byte, or
/// `None` when exifread finds no EXIF (it returns `{}`).
fn find_block(bytes: &[u8]) -> Res<Option<(i64, u8)>> {
    let mut f = Cursor {
        data: bytes,
        pos: 0,
    };
    let data = f.read(12);
    let found = if slice(data, 0, 2) == b"II" || slice(data, 0, 2) == b"MM" {
        Some((0, data[0..1].to_vec()))
    } else if slice(data, 4, 12) == b"ftypheic" {
        return raise(4, "HEIC container: not reproduced");
    } else if slice(data, 0, 4) == b"RIFF" && slice(data, 8, 12) == b"WEBP" {
        find_webp(&mut f)?
    } else if slice(data, 0, 2) == b"\xff\xd8" {
        find_jpeg(&mut f, data)?
    } else {
        None
    };
    let Some((offset, endian)) = found else {
        return Ok(None);
    };
    match endian.first() {
        None => raise(offset, "no byte-order byte (IndexError)"),
        Some(&e @ (b'I' | b'M' | 1 | b'd')) => Ok(Some((offset, e))),
        Some(e) => raise(offset, format!("byte order {e:#04x} (KeyError)")),
    }
}

/// exifread's `_find_webp_exif` (the cursor is past the 12-byte RIFF header).
fn find_webp(f: &mut Cursor) -> Res<Option<(i64, Vec<u8>)>> {
    let data = f.read(5);
    if slice(data, 0, 4) != b"VP8X" || byte(data, 4, 12)? & 8 == 0 {
        return Ok(None);
    }
    f.pos += 13;
    loop {
        let head = f.read(8);
        if head.len() != 8 {
            return Ok(None);
        }
        if &head[0..4] == b"EXIF" {
            let offset = f.pos;
            return Ok(Some((offset, f.read(1).to_vec())));
        }
        f.pos += i64::from(u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")));
    }
}

/// exifread's `increment_base`: the segment length at `base` plus 2.
fn increment_base(data: &[u8], base: i64) -> Res<i64> {
    Ok(byte(data, base + 2, 0)? * 256 + byte(data, base + 3, 0)? + 2)
}

/// exifread's `_find_jpeg_exif`: skips JFIF/JFXX segments, then walks the segments in a window
/// of `base + 4000` bytes for `APP1 Exif` (stopping at DQT).
fn find_jpeg(f: &mut Cursor, first: &[u8]) -> Res<Option<(i64, Vec<u8>)>> {
    byte(first, 3, 0)?; // exifread's debug logging indexes data[2] and data[3]
    let mut data = first.to_vec();
    let mut base = 2i64;
    while byte(&data, 2, f.pos)? == 0xFF
        && [&b"JFIF"[..], b"JFXX", b"OLYM", b"Phot"].contains(&slice(&data, 6, 10))
    {
        let length = i64::from(data[4]) * 256 + i64::from(data[5]);
        f.read(length - 8);
        data = [&[0xFF, 0][..], f.read(10)].concat();
        base = if base > 2 {
            base + length + 4 - 2
        } else {
            length + 4
        };
    }
    f.pos = 0;
    let data = f.read(base + 4000);
    loop {
        match slice(data, base, base + 2) {
            b"\xff\xe1" if slice(data, base + 4, base + 8) == b"Exif" => {
                base -= 2;
                break;
            }
            b"\xff\xe1" | b"\xff\xe0" | b"\xff\xe2" | b"\xff\xee" | b"\xff\xd8" | b"\xff\xec" => {
                base += increment_base(data, base)?;
            }
            b"\xff\xdb" => break,
            _ => match increment_base(data, base) {
                Ok(inc) => base += inc,
                Err(_) => return Ok(None), // InvalidExif: exifread returns {}
            },
        }
    }
    f.pos = base + 12;
    let marker = byte(data, 2 + base, 0)? == 0xFF;
    let code = slice(data, 6 + base, 11 + base);
    if marker && (code.starts_with(b"Exif") || code == b"Ducky" || code == b"Adobe") {
        let offset = f.pos;
        Ok(Some((offset, f.read(1).to_vec())))
    } else {
        Ok(None)
    }
}

/// exifread's `ExifHeader` with `details=False`: reads IFDs, keeps tags in insertion order.
struct Header<'a> {
    data: &'a [u8],
    offset: i64,
    big_endian: bool,
    tags: Vec<(String, String)>,
    index: HashMap<String, usize>,
    /// The values of the `Image ExifOffset` tag, when read.
    exif_offset: Option<Values>,
    work: u64,
    printed: u64,
}

impl<'a> Header<'a> {
    fn new(data: &'a [u8], offset: i64, endian: u8) -> Self {
        Header {
            data,
            offset,
            big_endian: endian != b'I',
            tags: Vec::new(),
            index: HashMap::new(),
            exif_offset: None,
            work: 0,
            printed: 0,
        }
    }

    fn charge(&mut self, work: u64, at: i64) -> Res<()> {
        self.work += work;
        if self.work > MAX_WORK {
            return raise(
                at,
                format!("more than {MAX_WORK} entries and values: given up"),
            );
        }
        Ok(())
    }

    /// `seek(self.offset + offset); read(length)`.
    fn read_at(&self, offset: i64, length: i64) -> Res<&'a [u8]> {
        let pos = self.offset + offset;
        if pos < 0 {
            return raise(pos, "negative seek (ValueError)");
        }
        Ok(slice(self.data, pos, pos.saturating_add(length)))
    }

    /// exifread's `s2n`: an integer of 1, 2 or 4 bytes; an empty or 1-byte read gives 0, a
    /// 2- or 3-byte read of a 4-byte value raises `struct.error`.
    fn s2n(&self, offset: i64, length: i64, signed: bool) -> Res<i64> {
        let buf = self.read_at(offset, length)?;
        if buf.len() < 2 {
            return Ok(0);
        }
        if buf.len() as i64 != length {
            let what = format!("{} of {length} bytes read (struct.error)", buf.len());
            return raise(self.offset + offset, what);
        }
        let mut b = [0u8; 4];
        b[..buf.len()].copy_from_slice(buf);
        Ok(match (length, self.big_endian, signed) {
            (2, false, false) => i64::from(u16::from_le_bytes([b[0], b[1]])),
            (2, false, true) => i64::from(i16::from_le_bytes([b[0], b[1]])),
            (2, true, false) => i64::from(u16::from_be_bytes([b[0], b[1]])),
            (2, true, true) => i64::from(i16::from_be_bytes([b[0], b[1]])),
            (_, false, false) => i64::from(u32::from_le_bytes(b)),
            (_, false, true) => i64::from(i32::from_le_bytes(b)),
            (_, true, false) => i64::from(u32::from_be_bytes(b)),
            (_, true, true) => i64::from(i32::from_be_bytes(b)),
        })
    }

    /// `process_file` after the block is found: the IFD chain, then the EXIF sub-IFD.
    fn process(&mut self) -> Res<()> {
        let mut ifds = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut i = self.s2n(4, 4, false)?;
        while i != 0 && seen.insert(i) {
            self.charge(1, i)?;
            ifds.push(i);
            let entries = self.s2n(i, 2, false)?;
            let next = self.s2n(i + 2 + 12 * entries, 4, false)?;
            i = if next == i { 0 } else { next };
        }
        for (ctr, ifd) in ifds.into_iter().enumerate() {
            let name = match ctr {
                0 => "Image".to_string(),
                1 => "Thumbnail".to_string(),
                n => format!("IFD {n}"),
            };
            self.dump_ifd(ifd, &name, Dict::Exif)?;
        }
        if let Some(values) = self.exif_offset.take() {
            match first_value(&values) {
                None => return raise(self.offset, "Image ExifOffset without values (IndexError)"),
                Some(Some(at)) => self.dump_ifd(at, "EXIF", Dict::Exif)?,
                Some(None) => {} // not an int: dump_ifd's TypeError, swallowed
            }
        }
        Ok(())
    }

    fn dump_ifd(&mut self, ifd: i64, ifd_name: &str, dict: Dict) -> Res<()> {
        let entries = self.s2n(ifd, 2, false)?;
        for i in 0..entries {
            let entry = ifd + 2 + 12 * i;
            self.charge(1, entry)?;
            let tag = self.s2n(entry, 2, false)? as u16;
            let (tag_name, print) = match dict.lookup(tag) {
                Some((_, name, print)) => ((*name).to_string(), Some(print)),
                None => (format!("Tag 0x{tag:04X}"), None),
            };
            if !IGNORE_TAGS.contains(&tag) {
                self.process_tag(entry, ifd_name, &tag_name, print)?;
            }
        }
        Ok(())
    }

    fn process_tag(
        &mut self,
        entry: i64,
        ifd_name: &str,
        tag_name: &str,
        print: Option<&Print>,
    ) -> Res<()> {
        let field_type = self.s2n(entry + 2, 2, false)?;
        if !(1..14).contains(&field_type) {
            return Ok(());
        }
        let type_length = FIELD_LEN[field_type as usize];
        let count = self.s2n(entry + 4, 4, false)?;
        let mut offset = entry + 8;
        if count * type_length > 4 {
            offset = self.s2n(offset, 4, false)?;
        }
        let values = if field_type == 2 {
            self.ascii(count, offset)?
        } else {
            self.field(count, field_type, type_length, offset)?
        };
        let mut printable = default_printable(&values, count, field_type);
        match print {
            // UserComment (`MakeStringUc`) is in IGNORE_TAGS: dump_ifd never gets here with it.
            None | Some(Print::Plain | Print::MakeStringUc) => {}
            Some(Print::Map(map)) => printable = map_printable(&values, map),
            Some(Print::MakeString) => printable = make_string(&values),
            Some(Print::SubIfd(sub)) => {
                if let Some(Some(at)) = first_value(&values) {
                    let name = match sub {
                        Dict::Gps => "GPS",
                        _ => "Interoperability",
                    };
                    self.dump_ifd(at, name, *sub)?;
                }
            }
        }
        let key = format!("{ifd_name} {tag_name}");
        self.printed += (printable.len() + key.len()) as u64;
        if self.printed > MAX_PRINTED {
            return raise(
                entry,
                format!("more than {MAX_PRINTED} bytes printed: given up"),
            );
        }
        if key == "Image ExifOffset" {
            self.exif_offset = Some(values);
        }
        match self.index.get(&key) {
            Some(&i) => self.tags[i].1 = printable,
            None => {
                self.index.insert(key.clone(), self.tags.len());
                self.tags.push((key, printable));
            }
        }
        Ok(())
    }

    /// exifread's `_process_field2`: `count` bytes, cut at the first NUL, as UTF-8 or bytes.
    fn ascii(&mut self, count: i64, offset: i64) -> Res<Values> {
        if count == 0 {
            return Ok(Values::Str(String::new()));
        }
        let raw = self.read_at(offset, count)?;
        self.charge(raw.len() as u64, self.offset + offset)?;
        let cut = raw.split(|&b| b == 0).next().unwrap_or_default();
        Ok(match std::str::from_utf8(cut) {
            Ok(s) => Values::Str(s.to_string()),
            Err(_) => Values::Bytes(cut.to_vec()),
        })
    }

    /// exifread's `_process_field`: `count` values (none from 1000 on).
    fn field(&mut self, count: i64, field_type: i64, type_length: i64, at: i64) -> Res<Values> {
        let mut values = Vec::new();
        if count >= 1000 {
            return Ok(Values::List(values));
        }
        self.charge(count as u64, self.offset + at)?;
        let signed = matches!(field_type, 6 | 8 | 9 | 10);
        let mut offset = at;
        for _ in 0..count {
            values.push(match field_type {
                5 | 10 => ratio(
                    self.s2n(offset, 4, signed)?,
                    self.s2n(offset + 4, 4, signed)?,
                ),
                11 | 12 => Val::Float(self.float(offset, type_length)?),
                _ => Val::Int(self.s2n(offset, type_length, signed)?),
            });
            offset += type_length;
        }
        Ok(Values::List(values))
    }

    fn float(&self, offset: i64, length: i64) -> Res<f64> {
        let buf = self.read_at(offset, length)?;
        if buf.len() as i64 != length {
            let what = format!("{} of {length} float bytes read (struct.error)", buf.len());
            return raise(self.offset + offset, what);
        }
        Ok(match (length, self.big_endian) {
            (4, false) => f64::from(f32::from_le_bytes(buf.try_into().expect("4"))),
            (4, true) => f64::from(f32::from_be_bytes(buf.try_into().expect("4"))),
            (_, false) => f64::from_le_bytes(buf.try_into().expect("8")),
            (_, true) => f64::from_be_bytes(buf.try_into().expect("8")),
        })
    }
}

/// `Ratio(num, den)`: reduced as `Fraction` does; a zero denominator kept as read.
fn ratio(num: i64, den: i64) -> Val {
    if den == 0 {
        return Val::Ratio(num, 0);
    }
    let (mut a, mut b) = (num.unsigned_abs(), den.unsigned_abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    let g = if den < 0 { -(a as i64) } else { a as i64 };
    Val::Ratio(num / g, den / g)
}

/// `values[0]` as a sub-IFD offset: `None` when there is no first value (`IndexError`),
/// `Some(None)` when it is no int (`dump_ifd` swallows the `TypeError`).
fn first_value(values: &Values) -> Option<Option<i64>> {
    match values {
        Values::List(v) => v.first().map(|x| match x {
            Val::Int(i) => Some(*i),
            _ => None,
        }),
        Values::Str(s) => s.chars().next().map(|_| None),
        Values::Bytes(b) => b.first().map(|&b| Some(i64::from(b))),
    }
}

/// `str(value)` (also its `repr`, the element of a printed list).
fn val_str(v: &Val) -> String {
    match v {
        Val::Int(i) => i.to_string(),
        Val::Ratio(n, 1) => n.to_string(),
        Val::Ratio(n, d) => format!("{n}/{d}"),
        Val::Float(x) => format!("({},)", tic_shards::pyjson::float_repr(*x)),
    }
}

/// `str(list)`.
fn list_str(v: &[Val]) -> String {
    let items: Vec<String> = v.iter().map(val_str).collect();
    format!("[{}]", items.join(", "))
}

/// `str(values)` as `_process_tag` prints before any table lookup.
fn default_printable(values: &Values, count: i64, field_type: i64) -> String {
    match values {
        Values::List(v) if count == 1 && field_type != 2 => val_str(&v[0]),
        Values::List(v) if count > 50 && v.len() > 20 => {
            let head = list_str(&v[..20]);
            format!("{}, ... ]", &head[..head.len() - 1])
        }
        Values::Bytes(b) if count > 50 && b.len() > 20 => {
            let head = bytes_repr(&b[..20]);
            format!("{}, ... ]", &head[..head.len() - 1])
        }
        Values::List(v) => list_str(v),
        Values::Str(s) => s.clone(),
        Values::Bytes(b) => bytes_repr(b),
    }
}

/// An enumerated tag: each value's name, or its `repr` when the table lacks it.
fn map_printable(values: &Values, map: &[(u32, &str)]) -> String {
    let name = |k: i64| {
        u32::try_from(k)
            .ok()
            .and_then(|k| map.iter().find(|e| e.0 == k))
            .map(|e| e.1.to_string())
    };
    match values {
        Values::List(v) => v
            .iter()
            .map(|x| match x {
                Val::Int(i) | Val::Ratio(i, 1) => name(*i).unwrap_or_else(|| val_str(x)),
                _ => val_str(x),
            })
            .collect(),
        Values::Str(s) => s.chars().map(char_repr).collect(),
        Values::Bytes(b) => b
            .iter()
            .map(|&b| name(i64::from(b)).unwrap_or_else(|| b.to_string()))
            .collect(),
    }
}

/// exifread's `make_string`: the values in 32..256 as characters, else the values joined
/// (`''` when all zeros), stripped of spaces and NULs.
fn make_string(values: &Values) -> String {
    let mut s = String::new();
    match values {
        Values::List(v) => s.extend(v.iter().filter_map(|x| match x {
            Val::Int(i) if (32..256).contains(i) => char::from_u32(*i as u32),
            _ => None,
        })),
        Values::Bytes(b) => s.extend(b.iter().filter(|&&b| b >= 32).map(|&b| char::from(b))),
        Values::Str(_) => {}
    }
    if s.is_empty() {
        match values {
            Values::List(v) => {
                s = v.iter().map(val_str).collect();
                if !s.is_empty() && s.chars().all(|c| c == '0') {
                    return String::new();
                }
            }
            Values::Str(t) => s = t.clone(),
            Values::Bytes(b) => s = bytes_repr(b),
        }
    }
    s.trim_matches([' ', '\0']).to_string()
}

/// Python's `repr(bytes)`.
fn bytes_repr(b: &[u8]) -> String {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut s = format!("b{quote}");
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            _ if char::from(c) == quote => {
                s.push('\\');
                s.push(quote);
            }
            32..=126 => s.push(char::from(c)),
            _ => write!(s, "\\x{c:02x}").expect("to a String"),
        }
    }
    s.push(quote);
    s
}

/// Python's `repr` of a one-character `str`. Non-ASCII characters count as printable except
/// the C1 controls, the Unicode spaces and format characters and private use listed below
/// (Python asks its Unicode database; unassigned code points are not told apart here).
fn char_repr(c: char) -> String {
    let quote = if c == '\'' { '"' } else { '\'' };
    let body = match c {
        '\\' => "\\\\".to_string(),
        '\t' => "\\t".to_string(),
        '\n' => "\\n".to_string(),
        '\r' => "\\r".to_string(),
        ' '..='~' => c.to_string(),
        _ if python_printable(c) => c.to_string(),
        _ if (c as u32) < 0x100 => format!("\\x{:02x}", c as u32),
        _ if (c as u32) < 0x10000 => format!("\\u{:04x}", c as u32),
        _ => format!("\\U{:08x}", c as u32),
    };
    format!("{quote}{body}{quote}")
}

/// Python's `str.isprintable` for one non-ASCII-printable character (approximate; see
/// [`char_repr`]).
fn python_printable(c: char) -> bool {
    let u = c as u32;
    !(u < 0xA1
        || u == 0xAD
        || u == 0x1680
        || (0x2000..=0x200F).contains(&u)
        || (0x2028..=0x202F).contains(&u)
        || (0x205F..=0x206F).contains(&u)
        || u == 0x3000
        || u == 0xFEFF
        || (0xFFF9..=0xFFFB).contains(&u)
        || (0xE000..=0xF8FF).contains(&u)
        || (0xF0000..).contains(&u))
}

/// Python's `str.strip()`: Unicode whitespace plus the separators `\x1c`..`\x1f`.
fn python_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_reduce_as_fraction() {
        assert_eq!(val_str(&ratio(10, 1000)), "1/100");
        assert_eq!(val_str(&ratio(72, 1)), "72");
        assert_eq!(val_str(&ratio(3, -6)), "-1/2");
        assert_eq!(val_str(&ratio(5, 0)), "5/0");
        assert_eq!(val_str(&ratio(0, 7)), "0");
    }

    #[test]
    fn python_reprs() {
        assert_eq!(bytes_repr(b"\xff'a"), "b\"\\xff'a\"");
        assert_eq!(bytes_repr(b"'\""), "b'\\'\"'");
        assert_eq!(char_repr('\''), "\"'\"");
        assert_eq!(char_repr('\u{e9}'), "'\u{e9}'");
        assert_eq!(char_repr('\u{85}'), "'\\x85'");
        assert_eq!(python_strip("\x1c a \u{3000}"), "a");
    }

    #[test]
    fn no_block_and_short_files() {
        assert_eq!(img2dataset_exif(b"GIF89a").as_deref(), Some("{}"));
        assert_eq!(img2dataset_exif(b"\xff\xd8\xff"), None);
        assert_eq!(img2dataset_exif(b"").as_deref(), Some("{}"));
    }
}
