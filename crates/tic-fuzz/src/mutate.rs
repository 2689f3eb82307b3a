//! The input generator: AFL-style "havoc" mutations of a seed (bit flips, interesting integers
//! at random offsets, inserted and deleted runs, copied blocks, splices with another seed, and
//! tokens from the target's dictionary). Not coverage-guided: it is what runs on the stable
//! toolchain in a bounded time; cargo-fuzz on nightly runs the same targets with coverage.

use rand::{Rng, RngCore};

/// Integers that often sit on a boundary of a length or count check.
const INTERESTING: [u64; 14] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    u64::MAX,
];

/// Applies 1 to 8 random mutations to `data`, keeping it at most `max_len` bytes long.
/// `dict` holds tokens of the format (opcodes, keywords); `other` is another seed to splice.
pub fn mutate(
    rng: &mut impl RngCore,
    data: &mut Vec<u8>,
    max_len: usize,
    dict: &[&[u8]],
    other: &[u8],
) {
    let rounds = 1 << rng.random_range(0..4);
    for _ in 0..rounds {
        mutate_once(rng, data, dict, other);
    }
    data.truncate(max_len);
}

fn offset(rng: &mut impl RngCore, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        rng.random_range(0..len)
    }
}

fn mutate_once(rng: &mut impl RngCore, data: &mut Vec<u8>, dict: &[&[u8]], other: &[u8]) {
    let len = data.len();
    match rng.random_range(0..10) {
        0 if len > 0 => {
            let i = offset(rng, len);
            data[i] ^= 1 << rng.random_range(0..8);
        }
        1 if len > 0 => {
            let i = offset(rng, len);
            data[i] = rng.random();
        }
        2 if len > 0 => {
            let width = [1usize, 2, 4, 8][rng.random_range(0..4)];
            let mut v = INTERESTING[rng.random_range(0..INTERESTING.len())];
            if rng.random_bool(0.3) {
                v = v.wrapping_add(rng.random_range(0..4)).wrapping_sub(2);
            }
            let bytes = if rng.random_bool(0.5) {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            };
            let i = offset(rng, len);
            let n = width.min(len - i);
            let src = if bytes[0] == 0 && rng.random_bool(0.5) {
                &bytes[8 - n..]
            } else {
                &bytes[..n]
            };
            data[i..i + n].copy_from_slice(src);
        }
        3 if len > 0 => {
            let i = offset(rng, len);
            let n = rng.random_range(1..=(len - i).min(64));
            data.drain(i..i + n);
        }
        4 if len > 0 => {
            let (from, to) = (offset(rng, len), offset(rng, len));
            let n = rng.random_range(1..=(len - from).min(256));
            let block: Vec<u8> = data[from..from + n].to_vec();
            data.splice(to..to, block);
        }
        5 => {
            let i = offset(rng, len + 1);
            let n = rng.random_range(1..32);
            let byte: u8 = rng.random();
            data.splice(i..i, std::iter::repeat_n(byte, n));
        }
        6 if !other.is_empty() => {
            let cut = offset(rng, len + 1);
            let from = offset(rng, other.len());
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
        7 | 8 if !dict.is_empty() => {
            let token = dict[rng.random_range(0..dict.len())];
            let i = offset(rng, len + 1);
            if rng.random_bool(0.5) || i + token.len() > len {
                data.splice(i..i, token.iter().copied());
            } else {
                data[i..i + token.len()].copy_from_slice(token);
            }
        }
        _ if len > 0 => data.truncate(offset(rng, len)),
        _ => data.push(rng.random()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn mutations_change_inputs_and_respect_the_length() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let seed = b"hello world, a seed of some length".to_vec();
        let mut changed = 0;
        for _ in 0..1000 {
            let mut d = seed.clone();
            mutate(&mut rng, &mut d, 40, &[b"TOKEN"], b"other seed");
            assert!(d.len() <= 40);
            changed += usize::from(d != seed);
        }
        assert!(changed > 900, "{changed}");
    }
}
