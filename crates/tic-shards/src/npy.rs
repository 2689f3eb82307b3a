//! numpy's `.npy` format as tic-rs reads and writes it: UID arrays (structured dtype `u8,u8`,
//! also as raw 16-byte records), float32 matrices (embedding dumps), and the small integer
//! vectors DataComp's evaluation sets carry per sample (the `npy` metadata member of the WILDS
//! and fairness sets, [`read_int_vector`]).
//!
//! [`write_uids`] produces the same bytes as `np.save(path, np.array(rows, np.dtype("u8,u8")))`,
//! [`write_i64_vector`] those of `np.save(path, np.array(values, "<i8"))`
//! (format version 1.0, header padded to 64 bytes with numpy's growth-axis spare space).

use crate::uid::Uid;
use npyz::{DType, NpyHeader};
use std::io::Cursor;

/// What went wrong reading a UID array.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// The npy header could not be parsed.
    #[error("{file}: bad npy header: {msg}")]
    Header {
        /// The file being read.
        file: String,
        /// The parser's message.
        msg: String,
    },
    /// The dtype or shape is not a 1-D array of `u8,u8` records.
    #[error("{file}: expected a 1-D numpy array of dtype u8,u8 (uid high/low 64 bits), found dtype {dtype} with shape {shape:?}")]
    Dtype {
        /// The file being read.
        file: String,
        /// The dtype found.
        dtype: String,
        /// The shape found.
        shape: Vec<u64>,
    },
    /// A per-sample metadata vector that is not a 0-D or 1-D array of whole numbers.
    #[error("{file}: expected a 0-D or 1-D numpy array of integers (per-sample metadata), found dtype {dtype} with shape {shape:?}{detail}")]
    IntVector {
        /// The member being read.
        file: String,
        /// The dtype found.
        dtype: String,
        /// The shape found.
        shape: Vec<u64>,
        /// What else is wrong (a non-integral value), or empty.
        detail: String,
    },
    /// The data section is shorter or longer than the header promises.
    #[error("{file}: header declares {expected} records ({expected_bytes} bytes) but the data section has {found_bytes} bytes")]
    Length {
        /// The file being read.
        file: String,
        /// Records the header declares.
        expected: u64,
        /// Bytes the data section should have.
        expected_bytes: u64,
        /// Bytes the data section has.
        found_bytes: u64,
    },
    /// A file named `*.npy` that does not start with numpy's magic string: resharder.py loads
    /// such a name with `np.load`, which refuses it; only other names are raw record files.
    #[error("{file}: named .npy but not a numpy file (it does not start with the magic \\x93NUMPY; first bytes {head:02x?}); a raw uid file of 16-byte records must not be named .npy")]
    NotNpy {
        /// The file being read.
        file: String,
        /// Its first bytes (at most 8).
        head: Vec<u8>,
    },
    /// A raw (headerless) record file whose size is not a multiple of 16.
    #[error("{file}: raw uid file of {len} bytes is not a whole number of 16-byte records")]
    RawLength {
        /// The file being read.
        file: String,
        /// Its size in bytes.
        len: u64,
    },
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// Deepest bracket nesting accepted in a header (a structured dtype's header nests 3 deep).
const MAX_HEADER_NESTING: usize = 8;

/// Refuses a header that claims more bytes than the file holds (the npy reader allocates the
/// header at its declared length, up to 4 GiB in format 2 and 3, before reading it), or that
/// nests brackets deeper than [`MAX_HEADER_NESTING`] (the npy reader's header parser takes time
/// exponential in the nesting: 30 `{` took minutes).
fn check_header(bytes: &[u8], file: &str) -> Result<(), NpyError> {
    let field = |at: usize, width: usize| -> Option<u64> {
        let b = bytes.get(at..at + width)?;
        Some(b.iter().rev().fold(0, |acc, &x| (acc << 8) | u64::from(x)))
    };
    let (start, len) = match bytes.get(6) {
        Some(1) => (10, field(8, 2)),
        Some(_) => (12, field(8, 4)),
        None => return Ok(()),
    };
    let err = |msg: String| {
        Err(NpyError::Header {
            file: file.to_string(),
            msg,
        })
    };
    let Some(n) = len else { return Ok(()) };
    if start + n > bytes.len() as u64 {
        return err(format!(
            "the header claims {n} bytes, the file holds {}",
            bytes.len()
        ));
    }
    let (mut depth, mut deepest) = (0usize, 0usize);
    for &b in &bytes[start as usize..(start + n) as usize] {
        match b {
            b'{' | b'[' | b'(' => depth += 1,
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        deepest = deepest.max(depth);
    }
    if deepest > MAX_HEADER_NESTING {
        return err(format!(
            "the header nests brackets {deepest} deep (at most {MAX_HEADER_NESTING} accepted)"
        ));
    }
    Ok(())
}

/// The npy header at the start of `cur` (over `bytes`), after [`check_header`]. npyz computes
/// the element count with an unchecked product, which panics on a crafted shape in builds with
/// overflow checks (found by tic-fuzz's `npy_uids`): that is reported as a bad header.
fn read_header(bytes: &[u8], cur: &mut Cursor<&[u8]>, file: &str) -> Result<NpyHeader, NpyError> {
    check_header(bytes, file)?;
    let err = |msg: String| NpyError::Header {
        file: file.to_string(),
        msg,
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| NpyHeader::from_reader(cur)))
        .map_err(|_| err("its shape's element count overflows".into()))?
        .map_err(|e| err(e.to_string()))
}

/// True when `bytes` starts with the npy magic string.
pub fn is_npy(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// A zero-copy view of a uid array (e.g. over a memory-mapped `.npy`), decoded on access.
#[derive(Clone, Copy)]
pub struct UidView<'a> {
    data: &'a [u8],
    big_endian: bool,
}

impl<'a> UidView<'a> {
    /// Views an `.npy` of dtype `u8,u8` or a raw file of 16-byte little-endian `(hi, lo)`
    /// records (resharder's memmap format). `file` names the source in errors and decides the
    /// format as resharder.py does: a name ending in `.npy` must be a numpy file (magic
    /// `\x93NUMPY`), any other name may also be raw records.
    pub fn new(bytes: &'a [u8], file: &str) -> Result<Self, NpyError> {
        let (data, big_endian) = locate_records(bytes, file)?;
        Ok(UidView { data, big_endian })
    }
    /// Number of records.
    pub fn len(&self) -> usize {
        self.data.len() / 16
    }
    /// True when there are no records.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// Record `i`.
    pub fn get(&self, i: usize) -> Uid {
        decode_one(&self.data[i * 16..i * 16 + 16], self.big_endian)
    }
    /// Index of the first record that is out of order, if any.
    pub fn first_unsorted(&self) -> Option<usize> {
        (1..self.len()).find(|&i| self.get(i - 1) > self.get(i))
    }
    /// Half-open index range of `uid` (numpy `searchsorted` left/right); requires sorted data.
    pub fn equal_range(&self, uid: Uid) -> std::ops::Range<usize> {
        let lower = |strict: bool| {
            let (mut lo, mut hi) = (0usize, self.len());
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                let v = self.get(mid);
                if v < uid || (!strict && v == uid) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            lo
        };
        lower(true)..lower(false)
    }
    /// Decodes every record.
    pub fn to_vec(&self) -> Vec<Uid> {
        decode_records(self.data, self.big_endian)
    }
}

/// Reads uids from an `.npy` of dtype `u8,u8`, or from a raw file of 16-byte little-endian
/// `(hi, lo)` records (resharder's memmap format). `file` names the source in errors; a name
/// ending in `.npy` must be a numpy file (see [`UidView::new`]).
pub fn read_uids(bytes: &[u8], file: &str) -> Result<Vec<Uid>, NpyError> {
    Ok(UidView::new(bytes, file)?.to_vec())
}

fn locate_records<'a>(bytes: &'a [u8], file: &str) -> Result<(&'a [u8], bool), NpyError> {
    if !is_npy(bytes) {
        if names_npy(file) {
            return Err(NpyError::NotNpy {
                file: file.to_string(),
                head: bytes[..bytes.len().min(8)].to_vec(),
            });
        }
        if bytes.len() % 16 != 0 {
            return Err(NpyError::RawLength {
                file: file.to_string(),
                len: bytes.len() as u64,
            });
        }
        return Ok((bytes, false));
    }
    let mut cur = Cursor::new(bytes);
    let header = read_header(bytes, &mut cur, file)?;
    let data = &bytes[cur.position() as usize..];
    let shape = header.shape().to_vec();
    let dtype = header.dtype();
    let big_endian = match uid_record_endianness(&dtype) {
        Some(be) if shape.len() == 1 => be,
        _ => {
            return Err(NpyError::Dtype {
                file: file.to_string(),
                dtype: dtype.descr(),
                shape,
            })
        }
    };
    let n = shape[0];
    // A crafted header may declare more records than any file holds: never let n·16 wrap.
    if n.checked_mul(16) != Some(data.len() as u64) {
        return Err(NpyError::Length {
            file: file.to_string(),
            expected: n,
            expected_bytes: n.saturating_mul(16),
            found_bytes: data.len() as u64,
        });
    }
    Ok((data, big_endian))
}

/// `Some(big_endian)` when the dtype is a record of exactly two unsigned 64-bit fields.
/// Whether `file` (a path or URL) names an `.npy` file: its last path segment ends in `.npy`
/// (Python's `Path(file).suffix == ".npy"`, case-sensitive as there).
fn names_npy(file: &str) -> bool {
    let last = file.rsplit(['/', '\\']).next().unwrap_or(file);
    last.len() > ".npy".len() && last.ends_with(".npy")
}

fn uid_record_endianness(dtype: &DType) -> Option<bool> {
    let DType::Record(fields) = dtype else {
        return None;
    };
    if fields.len() != 2 {
        return None;
    }
    let mut be = None;
    for f in fields {
        let DType::Plain(ts) = &f.dtype else {
            return None;
        };
        let s = ts.to_string();
        let this = match s.as_str() {
            "<u8" => false,
            ">u8" => true,
            _ => return None,
        };
        if be.is_some_and(|b| b != this) {
            return None;
        }
        be = Some(this);
    }
    be
}

fn decode_one(c: &[u8], big_endian: bool) -> Uid {
    let a: [u8; 8] = c[..8].try_into().unwrap();
    let b: [u8; 8] = c[8..16].try_into().unwrap();
    if big_endian {
        Uid::from_parts(u64::from_be_bytes(a), u64::from_be_bytes(b))
    } else {
        Uid::from_parts(u64::from_le_bytes(a), u64::from_le_bytes(b))
    }
}

fn decode_records(data: &[u8], big_endian: bool) -> Vec<Uid> {
    data.chunks_exact(16)
        .map(|c| decode_one(c, big_endian))
        .collect()
}

/// Encodes a row-major `rows × cols` float32 matrix as a 2-D `<f4` `.npy` (what the embedding
/// dumps of `tic-embed` and `tic-eval` write). `data.len()` must be `rows · cols`.
pub fn write_f32_matrix(data: &[f32], rows: usize, cols: usize) -> Vec<u8> {
    use npyz::WriterBuilder;
    assert_eq!(
        data.len(),
        rows * cols,
        "matrix data does not match its shape"
    );
    let mut buf = Vec::with_capacity(data.len() * 4 + 128);
    let mut w = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(&[rows as u64, cols as u64])
        .writer(&mut buf)
        .begin_nd()
        .expect("writing to memory");
    w.extend(data.iter().copied()).expect("writing to memory");
    w.finish().expect("writing to memory");
    buf
}

/// The bytes before the data of a 1-D array of `n` elements of dtype `descr` (a Python literal:
/// `'<i8'`, `[('f0', '<u8'), ('f1', '<u8')]`), as `np.save` writes them: format version 1.0,
/// numpy's spare room for the length to grow to 21 digits, padded to a multiple of 64 bytes.
fn vector_header(descr: &str, n: usize) -> Vec<u8> {
    let mut header = format!("{{'descr': {descr}, 'fortran_order': False, 'shape': ({n},), }}");
    let digits = n.to_string().len();
    header.push_str(&" ".repeat(21usize.saturating_sub(digits)));
    // magic(6) + version(2) + header_len(2) + header + '\n' is padded to a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    header.push_str(&" ".repeat(pad));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

/// Encodes uids as numpy's `np.save` would for a 1-D `u8,u8` array (byte-identical).
pub fn write_uids(uids: &[Uid]) -> Vec<u8> {
    let mut out = vector_header("[('f0', '<u8'), ('f1', '<u8')]", uids.len());
    out.reserve(16 * uids.len());
    for u in uids {
        out.extend_from_slice(&u.hi().to_le_bytes());
        out.extend_from_slice(&u.lo().to_le_bytes());
    }
    out
}

/// Encodes a 1-D int64 vector as `np.save(f, np.array(values, "<i8"))` does (byte-identical):
/// the `npy` metadata member of a DataComp WILDS or fairness evaluation sample, which
/// [`read_int_vector`] reads back.
pub fn write_i64_vector(values: &[i64]) -> Vec<u8> {
    let mut out = vector_header("'<i8'", values.len());
    out.reserve(8 * values.len());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Reads a 0-D or 1-D numpy array of integers (any width, either byte order), booleans, or
/// floats holding whole numbers, as `i64`s: a per-sample metadata vector as DataComp's eval sets
/// store it (webdataset decodes the member with `np.load`; the evaluators group by its fields).
/// `file` names the source (shard and sample) in errors.
pub fn read_int_vector(bytes: &[u8], file: &str) -> Result<Vec<i64>, NpyError> {
    if !is_npy(bytes) {
        return Err(NpyError::Header {
            file: file.to_string(),
            msg: format!(
                "not a numpy array (no \\x93NUMPY magic; first bytes {:02x?})",
                &bytes[..bytes.len().min(8)]
            ),
        });
    }
    let mut cur = Cursor::new(bytes);
    let header = read_header(bytes, &mut cur, file)?;
    let data = &bytes[cur.position() as usize..];
    let shape = header.shape().to_vec();
    let dtype = header.dtype();
    let bad = |detail: String| NpyError::IntVector {
        file: file.to_string(),
        dtype: dtype.descr(),
        shape: shape.clone(),
        detail,
    };
    let scalar = match &dtype {
        DType::Plain(ts) if shape.len() <= 1 => Scalar::parse(&ts.to_string()),
        _ => None,
    };
    let Some(scalar) = scalar else {
        return Err(bad(String::new()));
    };
    let n: u64 = shape.iter().product();
    let expected_bytes = n.saturating_mul(scalar.size as u64);
    if expected_bytes != data.len() as u64 {
        return Err(NpyError::Length {
            file: file.to_string(),
            expected: n,
            expected_bytes,
            found_bytes: data.len() as u64,
        });
    }
    data.chunks_exact(scalar.size)
        .enumerate()
        .map(|(i, c)| {
            scalar
                .decode(c)
                .ok_or_else(|| bad(format!(" (element {i} is not a whole number in i64 range)")))
        })
        .collect()
}

/// One element type of a plain npy dtype (`<i8`, `|u1`, `|b1`, `>f4`, …).
struct Scalar {
    kind: u8,
    size: usize,
    big_endian: bool,
}

impl Scalar {
    fn parse(descr: &str) -> Option<Self> {
        let b = descr.as_bytes();
        if b.len() < 3 {
            return None;
        }
        let big_endian = match b[0] {
            b'<' | b'|' | b'=' => false,
            b'>' => true,
            _ => return None,
        };
        let size: usize = descr[2..].parse().ok()?;
        let ok = match b[1] {
            b'i' | b'u' => matches!(size, 1 | 2 | 4 | 8),
            b'b' => size == 1,
            b'f' => matches!(size, 4 | 8),
            _ => false,
        };
        ok.then_some(Self {
            kind: b[1],
            size,
            big_endian,
        })
    }

    /// The element as an `i64`; `None` for a float that is not a whole number in range, or
    /// an unsigned value above `i64::MAX`.
    fn decode(&self, c: &[u8]) -> Option<i64> {
        let mut raw = [0u8; 8];
        if self.big_endian {
            raw[8 - self.size..].copy_from_slice(c);
            raw.reverse();
        } else {
            raw[..self.size].copy_from_slice(c);
        }
        let bits = u64::from_le_bytes(raw);
        match self.kind {
            b'u' | b'b' => i64::try_from(bits).ok(),
            b'i' => {
                let shift = 64 - 8 * self.size as u32;
                Some(((bits << shift) as i64) >> shift)
            }
            _ => {
                let x = if self.size == 4 {
                    f64::from(f32::from_bits(bits as u32))
                } else {
                    f64::from_bits(bits)
                };
                let whole = x.fract() == 0.0 && x.abs() < 9.2e18;
                whole.then_some(x as i64)
            }
        }
    }
}

/// True when the uids are sorted ascending (duplicates allowed).
pub fn is_sorted(uids: &[Uid]) -> bool {
    uids.windows(2).all(|w| w[0] <= w[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy_with(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n");
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn int64_vectors_are_written_as_np_save_writes_them() {
        // `np.save(b, np.array([4, 0, 2017], dtype="<i8"))`, numpy 1.23.4 and 2.4.6 alike.
        let mut want =
            b"\x93NUMPY\x01\x00v\x00{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }"
                .to_vec();
        want.extend_from_slice(&[b' '; 60]);
        want.push(b'\n');
        for v in [4i64, 0, 2017] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(write_i64_vector(&[4, 0, 2017]), want);
        for v in [vec![], vec![-3i64], (0..40).collect::<Vec<i64>>()] {
            let bytes = write_i64_vector(&v);
            assert_eq!((bytes.len() - 8 * v.len()) % 64, 0);
            assert_eq!(read_int_vector(&bytes, "m").unwrap(), v);
        }
    }

    #[test]
    fn int_vectors_of_every_integer_width_and_order() {
        let le: Vec<u8> = [3i64, -2, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            read_int_vector(&npy_with("<i8", "(3,)", &le), "m").unwrap(),
            [3, -2, 7]
        );
        let be: Vec<u8> = [3i32, -2].iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(
            read_int_vector(&npy_with(">i4", "(2,)", &be), "m").unwrap(),
            [3, -2]
        );
        assert_eq!(
            read_int_vector(&npy_with("|u1", "(2,)", &[255, 1]), "m").unwrap(),
            [255, 1]
        );
        assert_eq!(
            read_int_vector(&npy_with("|b1", "()", &[1]), "m").unwrap(),
            [1]
        );
        let f: Vec<u8> = [2.0f64, 5.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            read_int_vector(&npy_with("<f8", "(2,)", &f), "m").unwrap(),
            [2, 5]
        );
    }

    #[test]
    fn int_vector_errors_name_the_member() {
        let f: Vec<u8> = 2.5f32.to_le_bytes().to_vec();
        let e = read_int_vector(&npy_with("<f4", "(1,)", &f), "s.tar: sample \"k\"").unwrap_err();
        assert!(e.to_string().contains("s.tar: sample \"k\""), "{e}");
        assert!(e.to_string().contains("element 0"), "{e}");
        let e = read_int_vector(&npy_with("<i8", "(2,)", &[0; 8]), "m").unwrap_err();
        assert!(matches!(e, NpyError::Length { .. }), "{e}");
        let e = read_int_vector(&npy_with("<i8", "(1, 1)", &[0; 8]), "m").unwrap_err();
        assert!(matches!(e, NpyError::IntVector { .. }), "{e}");
        let e = read_int_vector(b"not npy", "m").unwrap_err();
        assert!(matches!(e, NpyError::Header { .. }), "{e}");
    }

    #[test]
    fn roundtrip() {
        let uids = vec![Uid(1), Uid(u128::MAX), Uid(0x1234 << 64)];
        let bytes = write_uids(&uids);
        assert_eq!(&bytes[..6], MAGIC);
        assert_eq!(bytes.len(), 128 + 16 * 3);
        assert_eq!(read_uids(&bytes, "x").unwrap(), uids);
    }

    #[test]
    fn view_search() {
        let uids: Vec<Uid> = [1u128, 3, 3, 9].into_iter().map(Uid).collect();
        let bytes = write_uids(&uids);
        let v = UidView::new(&bytes, "v").unwrap();
        assert_eq!(v.len(), 4);
        assert_eq!(v.equal_range(Uid(3)), 1..3);
        assert_eq!(v.equal_range(Uid(4)), 3..3);
        assert_eq!(v.first_unsorted(), None);
        let bad = write_uids(&[Uid(2), Uid(1)]);
        assert_eq!(UidView::new(&bad, "b").unwrap().first_unsorted(), Some(1));
    }

    #[test]
    fn raw_records() {
        let mut raw = Vec::new();
        raw.extend_from_slice(&5u64.to_le_bytes());
        raw.extend_from_slice(&6u64.to_le_bytes());
        assert_eq!(read_uids(&raw, "r").unwrap(), vec![Uid::from_parts(5, 6)]);
        assert!(matches!(
            read_uids(&raw[..15], "r"),
            Err(NpyError::RawLength { len: 15, .. })
        ));
    }

    #[test]
    fn npy_names_need_the_numpy_magic() {
        // 32 bytes: two whole raw records, so only the name tells it is not what it claims.
        let mut raw = Vec::new();
        for v in [1u64, 2, 3, 4] {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        for name in ["2016.npy", "/data/uids/2016.npy", "s3://b/uids/2016.npy"] {
            let err = read_uids(&raw, name).unwrap_err();
            assert!(matches!(err, NpyError::NotNpy { .. }), "{err}");
            let msg = err.to_string();
            assert!(msg.starts_with(name) && msg.contains("magic"), "{msg}");
            assert!(UidView::new(&raw, name).is_err());
        }
        // An empty .npy-named file is not a numpy file either.
        assert!(matches!(
            read_uids(&[], "e.npy"),
            Err(NpyError::NotNpy { .. })
        ));
        // Raw memmaps keep working under other names (resharder.py's np.memmap branch) ...
        for name in [
            "2016.bin",
            "uids",
            "2016.npy.raw",
            "dir.npy/uids",
            "2016.NPY",
            ".npy",
        ] {
            assert_eq!(
                read_uids(&raw, name).unwrap(),
                vec![Uid::from_parts(1, 2), Uid::from_parts(3, 4)],
                "{name}"
            );
        }
        // ... and real .npy files under any name.
        let npy = write_uids(&[Uid(7)]);
        assert_eq!(read_uids(&npy, "a.npy").unwrap(), vec![Uid(7)]);
        assert_eq!(read_uids(&npy, "a.bin").unwrap(), vec![Uid(7)]);
    }

    #[test]
    fn huge_declared_length_is_an_error() {
        let mut bytes = write_uids(&[]);
        // Declare 2^60 records (n·16 wraps to 0 in u64) with an empty data section.
        let h = String::from_utf8(bytes[10..128].to_vec()).unwrap();
        let h2 = h.replacen("(0,)", "(1152921504606846976,)", 1);
        let h2 = format!(
            "{}{}",
            h2.trim_end(),
            " ".repeat(h.len() - h2.trim_end().len() - 1)
        ) + "\n";
        assert_eq!(h2.len(), h.len());
        bytes.splice(10..128, h2.bytes());
        assert!(matches!(
            read_uids(&bytes, "big.npy"),
            Err(NpyError::Length { .. })
        ));
    }

    #[test]
    fn truncated_npy_is_an_error() {
        let bytes = write_uids(&[Uid(1), Uid(2)]);
        let err = read_uids(&bytes[..bytes.len() - 3], "t.npy").unwrap_err();
        assert!(err.to_string().contains("t.npy"), "{err}");
    }
}
