//! The Python pickles TiC-CLIP publishes: year → uids, year → synset → uids, uid → class id.
//!
//! Read with `serde-pickle` (protocols 0–5) after [`budget::check`] has accounted for the whole
//! opcode stream: serde-pickle decodes every shared reference as a copy, so a small hostile
//! pickle could otherwise expand exponentially; a pickle that would take more than
//! [`budget::budget_for`] its length (64 MiB plus 16 bytes per byte) or nest deeper than
//! [`budget::MAX_DEPTH`] is refused as unreadable. Written as protocol-3 pickles that
//! `pickle.load` reads.

use crate::uid::Uid;
use serde_pickle::{DeOptions, HashableValue, SerOptions, Value};
use std::collections::{BTreeMap, HashMap};

pub mod budget;

/// File name of TiC-CLIP's retrieval-eval pickle (dict year → list of uids), which
/// [`write_year_uids`] writes and [`read_year_uids`] reads.
pub const RETRIEVAL_PKL: &str = "tic-datacomp_retrieval_evals_year2uids.pkl";
/// File name of TiC-CLIP's DataCompNet pickle (dict year → dict synset → list of uids), which
/// [`write_year_synset_uids`] writes and [`read_year_synset_uids`] reads.
pub const DATACOMPNET_PKL: &str = "tic-datacompnet_year2uids.pkl";

/// What went wrong decoding a pickle.
#[derive(Debug, thiserror::Error)]
pub enum PickleError {
    /// The bytes are not a readable pickle.
    #[error("{file}: not a readable pickle: {msg}")]
    Decode {
        /// The file being read.
        file: String,
        /// The decoder's message.
        msg: String,
    },
    /// The pickle's structure is not what was expected.
    #[error("{file}: {at}: expected {expected}, found {found}")]
    Shape {
        /// The file being read.
        file: String,
        /// Where in the structure (a key path).
        at: String,
        /// What was expected there.
        expected: &'static str,
        /// What was found.
        found: String,
    },
    /// A string that should be a uid is not one.
    #[error("{file}: {at}: {source}")]
    Uid {
        /// The file being read.
        file: String,
        /// Where in the structure.
        at: String,
        /// The uid error.
        source: crate::uid::UidError,
    },
}

fn decode(bytes: &[u8], file: &str) -> Result<Value, PickleError> {
    budget::check(bytes, budget::Sharing::Lazy).map_err(|e| PickleError::Decode {
        file: file.to_string(),
        msg: e.to_string(),
    })?;
    // serde-pickle 1.2 can panic on hostile input: a set holding NaN floats makes its
    // `HashableValue` order non-total, and the standard library's sort then panics (found by
    // fuzz/pickles). Such a file is reported as unreadable instead.
    let decoded = std::panic::catch_unwind(|| {
        serde_pickle::value_from_slice(bytes, DeOptions::new().decode_strings())
    });
    let err = |msg: String| PickleError::Decode {
        file: file.to_string(),
        msg,
    };
    match decoded {
        Ok(r) => r.map_err(|e| err(e.to_string())),
        Err(_) => Err(err(
            "the pickle decoder failed on it (a set or dict key it cannot order, e.g. NaN)".into(),
        )),
    }
}

fn kind(v: &Value) -> String {
    let s = match v {
        Value::None => "None",
        Value::Bool(_) => "bool",
        Value::I64(_) | Value::Int(_) => "int",
        Value::F64(_) => "float",
        Value::Bytes(_) => "bytes",
        Value::String(_) => "str",
        Value::List(_) => "list",
        Value::Tuple(_) => "tuple",
        Value::Set(_) => "set",
        Value::FrozenSet(_) => "frozenset",
        Value::Dict(_) => "dict",
    };
    s.to_string()
}

fn key_string(k: &HashableValue, file: &str, at: &str) -> Result<String, PickleError> {
    match k {
        HashableValue::String(s) => Ok(s.clone()),
        HashableValue::I64(i) => Ok(i.to_string()),
        HashableValue::Int(i) => Ok(i.to_string()),
        HashableValue::Bytes(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        other => Err(PickleError::Shape {
            file: file.to_string(),
            at: at.to_string(),
            expected: "a str or int key",
            found: kind(&other.clone().into_value()),
        }),
    }
}

fn as_dict<'a>(
    v: &'a Value,
    file: &str,
    at: &str,
) -> Result<&'a BTreeMap<HashableValue, Value>, PickleError> {
    match v {
        Value::Dict(d) => Ok(d),
        other => Err(PickleError::Shape {
            file: file.to_string(),
            at: at.to_string(),
            expected: "a dict",
            found: kind(other),
        }),
    }
}

fn uid_list(v: &Value, file: &str, at: &str) -> Result<Vec<Uid>, PickleError> {
    let items = match v {
        Value::List(l) | Value::Tuple(l) => l,
        other => {
            return Err(PickleError::Shape {
                file: file.to_string(),
                at: at.to_string(),
                expected: "a list of uid strings",
                found: kind(other),
            })
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at_i = format!("{at}[{i}]");
            let s = match item {
                Value::String(s) => s.as_str(),
                other => {
                    return Err(PickleError::Shape {
                        file: file.to_string(),
                        at: at_i,
                        expected: "a uid string",
                        found: kind(other),
                    })
                }
            };
            Uid::parse(s).map_err(|source| PickleError::Uid {
                file: file.to_string(),
                at: at_i,
                source,
            })
        })
        .collect()
}

/// Reads `dict year → list[uid str]` (TiC's retrieval-eval pickle). Keys become strings.
pub fn read_year_uids(bytes: &[u8], file: &str) -> Result<BTreeMap<String, Vec<Uid>>, PickleError> {
    let v = decode(bytes, file)?;
    let mut out = BTreeMap::new();
    for (k, v) in as_dict(&v, file, "top level")? {
        let year = key_string(k, file, "top-level key")?;
        let uids = uid_list(v, file, &format!("[{year:?}]"))?;
        out.insert(year, uids);
    }
    Ok(out)
}

/// Nested year → synset → uids (DataCompNet).
pub type YearSynsetUids = BTreeMap<String, BTreeMap<String, Vec<Uid>>>;

/// Reads `dict year → dict synset → list[uid str]` (TiC's DataCompNet pickle).
pub fn read_year_synset_uids(bytes: &[u8], file: &str) -> Result<YearSynsetUids, PickleError> {
    let v = decode(bytes, file)?;
    let mut out = BTreeMap::new();
    for (k, v) in as_dict(&v, file, "top level")? {
        let year = key_string(k, file, "top-level key")?;
        let at = format!("[{year:?}]");
        let mut synsets = BTreeMap::new();
        for (sk, sv) in as_dict(v, file, &at)? {
            let synset = key_string(sk, file, &at)?;
            let uids = uid_list(sv, file, &format!("{at}[{synset:?}]"))?;
            synsets.insert(synset, uids);
        }
        out.insert(year, synsets);
    }
    Ok(out)
}

/// Reads `dict uid str → int` (the resharder's `-c/--cls-file`).
pub fn read_uid_classes(bytes: &[u8], file: &str) -> Result<HashMap<Uid, i64>, PickleError> {
    let v = decode(bytes, file)?;
    let d = as_dict(&v, file, "top level")?;
    let mut out = HashMap::with_capacity(d.len());
    for (k, v) in d {
        let ks = key_string(k, file, "key")?;
        let at = format!("[{ks:?}]");
        let uid = Uid::parse(&ks).map_err(|source| PickleError::Uid {
            file: file.to_string(),
            at: at.clone(),
            source,
        })?;
        let cls = match v {
            Value::I64(i) => *i,
            other => {
                return Err(PickleError::Shape {
                    file: file.to_string(),
                    at,
                    expected: "an int class id",
                    found: kind(other),
                })
            }
        };
        out.insert(uid, cls);
    }
    Ok(out)
}

fn str_list(uids: &[Uid]) -> Value {
    Value::List(uids.iter().map(|u| Value::String(u.to_hex())).collect())
}

fn year_key(year: &str) -> HashableValue {
    match year.parse::<i64>() {
        Ok(i) => HashableValue::I64(i),
        Err(_) => HashableValue::String(year.to_string()),
    }
}

fn encode(v: &Value) -> Vec<u8> {
    serde_pickle::value_to_vec(v, SerOptions::new())
        .expect("pickling an in-memory value cannot fail")
}

/// Pickles `dict year → list[uid str]`; numeric years become int keys.
pub fn write_year_uids(map: &BTreeMap<String, Vec<Uid>>) -> Vec<u8> {
    let d = map
        .iter()
        .map(|(y, u)| (year_key(y), str_list(u)))
        .collect();
    encode(&Value::Dict(d))
}

/// Pickles `dict year → dict synset → list[uid str]`; numeric years become int keys.
pub fn write_year_synset_uids(map: &YearSynsetUids) -> Vec<u8> {
    let d = map
        .iter()
        .map(|(y, s)| {
            let inner = s
                .iter()
                .map(|(syn, u)| (HashableValue::String(syn.clone()), str_list(u)))
                .collect();
            (year_key(y), Value::Dict(inner))
        })
        .collect();
    encode(&Value::Dict(d))
}

/// Pickles `dict uid str → int`.
pub fn write_uid_classes<'a>(pairs: impl IntoIterator<Item = (&'a Uid, &'a i64)>) -> Vec<u8> {
    let d = pairs
        .into_iter()
        .map(|(u, c)| (HashableValue::String(u.to_hex()), Value::I64(*c)))
        .collect();
    encode(&Value::Dict(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn year_uids_roundtrip() {
        let mut m = BTreeMap::new();
        m.insert("2014".to_string(), vec![Uid(1), Uid(2)]);
        let b = write_year_uids(&m);
        assert_eq!(read_year_uids(&b, "f").unwrap(), m);
    }

    #[test]
    fn nested_roundtrip_and_errors() {
        let mut m = YearSynsetUids::new();
        m.entry("2015".into())
            .or_default()
            .insert("n01440764".into(), vec![Uid(7)]);
        let b = write_year_synset_uids(&m);
        assert_eq!(read_year_synset_uids(&b, "f").unwrap(), m);
        // A flat year→list pickle is not a nested one: the error names the file and key.
        let flat = write_year_uids(&[("2014".to_string(), vec![Uid(1)])].into_iter().collect());
        let e = read_year_synset_uids(&flat, "dcnet.pkl")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dcnet.pkl") && e.contains("2014") && e.contains("dict"),
            "{e}"
        );
        assert!(read_year_uids(b"garbage", "g.pkl")
            .unwrap_err()
            .to_string()
            .contains("g.pkl"));
    }

    #[test]
    fn bad_uid_named() {
        let v = Value::Dict(
            [(
                HashableValue::I64(2016),
                Value::List(vec![Value::String("xyz".into())]),
            )]
            .into_iter()
            .collect(),
        );
        let e = read_year_uids(&encode(&v), "r.pkl")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("r.pkl") && e.contains("[\"2016\"][0]") && e.contains("xyz"),
            "{e}"
        );
    }

    #[test]
    fn classes_roundtrip() {
        let m: HashMap<Uid, i64> = [(Uid(5), 3), (Uid(9), 999)].into_iter().collect();
        let b = write_uid_classes(m.iter());
        assert_eq!(read_uid_classes(&b, "c").unwrap(), m);
    }
}
