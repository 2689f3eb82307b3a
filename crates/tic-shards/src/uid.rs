//! 128-bit DataComp sample identifiers.
//!
//! A DataComp `uid` is 32 lowercase hex characters. TiC UID files store it as a numpy structured
//! record `u8,u8` = (high 64 bits, low 64 bits), which sorts exactly like the 128-bit integer.

use std::fmt;
use std::str::FromStr;

/// A 128-bit sample identifier, ordered as the unsigned integer it spells.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Uid(pub u128);

/// Why a string is not a uid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UidError {
    /// The string does not have 32 characters.
    #[error("uid {0:?} has {1} characters, expected 32 hex digits")]
    Length(String, usize),
    /// The string has a character that is not a hex digit.
    #[error("uid {0:?} has a non-hex character")]
    NotHex(String),
}

impl Uid {
    /// Builds a uid from its high and low 64-bit halves.
    pub fn from_parts(hi: u64, lo: u64) -> Self {
        Uid(((hi as u128) << 64) | lo as u128)
    }
    /// The high 64 bits (the first 16 hex digits).
    pub fn hi(self) -> u64 {
        (self.0 >> 64) as u64
    }
    /// The low 64 bits (the last 16 hex digits).
    pub fn lo(self) -> u64 {
        self.0 as u64
    }
    /// Parses 32 hex digits (either case), as DataComp's `int(uid, 16)` on a well-formed uid.
    pub fn parse(s: &str) -> Result<Self, UidError> {
        if s.len() != 32 {
            return Err(UidError::Length(s.to_string(), s.chars().count()));
        }
        if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(UidError::NotHex(s.to_string()));
        }
        u128::from_str_radix(s, 16)
            .map(Uid)
            .map_err(|_| UidError::NotHex(s.to_string()))
    }
    /// The 32-character lowercase hex form.
    pub fn to_hex(self) -> String {
        format!("{:032x}", self.0)
    }
}

impl FromStr for Uid {
    type Err = UidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uid::parse(s)
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uid({:032x})", self.0)
    }
}

/// Sorts and deduplicates uids, as TiC's `uids_str_to_np` (`sort` then `np.unique`).
pub fn sort_unique(uids: &mut Vec<Uid>) {
    uids.sort_unstable();
    uids.dedup();
}

/// Half-open index range of `uid` in a sorted slice (numpy `searchsorted` left/right).
pub fn equal_range(sorted: &[Uid], uid: Uid) -> std::ops::Range<usize> {
    let a = sorted.partition_point(|x| *x < uid);
    let b = a + sorted[a..].partition_point(|x| *x <= uid);
    a..b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_parts() {
        let s = "0123456789abcdef00000000000000ff";
        let u = Uid::parse(s).unwrap();
        assert_eq!(u.hi(), 0x0123456789abcdef);
        assert_eq!(u.lo(), 0xff);
        assert_eq!(u.to_hex(), s);
        assert_eq!(Uid::from_parts(u.hi(), u.lo()), u);
        assert_eq!(Uid::parse("0123456789ABCDEF00000000000000FF").unwrap(), u);
    }

    #[test]
    fn rejects_bad() {
        assert!(matches!(Uid::parse("abc"), Err(UidError::Length(_, 3))));
        assert!(matches!(
            Uid::parse("g123456789abcdef00000000000000ff"),
            Err(UidError::NotHex(_))
        ));
        assert!(Uid::parse("+123456789abcdef00000000000000ff").is_err());
    }

    #[test]
    fn ranges() {
        let v: Vec<Uid> = [1u128, 3, 3, 3, 7].into_iter().map(Uid).collect();
        assert_eq!(equal_range(&v, Uid(3)), 1..4);
        assert_eq!(equal_range(&v, Uid(4)), 4..4);
        assert_eq!(equal_range(&v, Uid(0)), 0..0);
        assert_eq!(equal_range(&v, Uid(9)), 5..5);
    }
}
