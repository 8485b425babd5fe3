//! Finding the first of two bytes in the short fields of a log line.
//!
//! Most fields (an address, a status, a port) end within a few bytes, where `memchr`'s
//! vector set-up costs more than it saves, and a byte-at-a-time loop is slow on the long
//! ones (an ARN, a user agent). Eight bytes at a time in a `u64` suits both.

const ONES: u64 = u64::from_le_bytes([0x01; 8]);
const HIGH: u64 = u64::from_le_bytes([0x80; 8]);

/// The high bit of each byte of `word` that equals `byte`. Bits above the first match may be
/// wrong (a borrow carries into them), but the lowest set bit is exact, and only it is used.
fn equal(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * u64::from(byte));
    x.wrapping_sub(ONES) & !x & HIGH
}

/// Where the first `a` or `b` in `bytes` is.
pub(crate) fn either(bytes: &[u8], a: u8, b: u8) -> Option<usize> {
    let mut words = bytes.chunks_exact(8);
    for (n, word) in (&mut words).enumerate() {
        let word = u64::from_le_bytes(word.try_into().expect("chunks of 8"));
        let found = equal(word, a) | equal(word, b);
        if found != 0 {
            return Some(n * 8 + found.trailing_zeros() as usize / 8);
        }
    }
    let tail = words.remainder();
    let at = bytes.len() - tail.len();
    tail.iter().position(|&c| c == a || c == b).map(|i| at + i)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    // By its full path: the layout test reads `super::` in this file as the file's parent.
    use crate::format::find::either;

    proptest! {
        #[test]
        fn finds_what_a_plain_search_finds(
            bytes in proptest::collection::vec(any::<u8>(), 0..40),
            a in any::<u8>(),
            b in any::<u8>(),
        ) {
            let plain = bytes.iter().position(|&c| c == a || c == b);
            prop_assert_eq!(either(&bytes, a, b), plain);
        }

        #[test]
        fn finds_bytes_next_to_their_neighbours_in_value(
            len in 0..24usize,
            at in 0..24usize,
            byte in any::<u8>(),
        ) {
            // A word of the byte just above or below the one sought is where a borrow could
            // mislead a careless test.
            let mut bytes = vec![byte.wrapping_add(1); len];
            if at < len {
                bytes[at] = byte;
            }
            let plain = bytes.iter().position(|&c| c == byte);
            prop_assert_eq!(either(&bytes, byte, byte), plain);
        }
    }
}
