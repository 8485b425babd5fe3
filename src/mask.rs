//! Where given bytes are in a 64-byte chunk, one bit per byte (bit `i` for byte `i`).
//!
//! Readers that look for a few kinds of byte in long text (the CSV reader's quotes, commas
//! and line ends; a JSON line's quotes and backslashes) find them a chunk at a time with
//! vector comparisons, then walk the bits. A byte-at-a-time search, or eight bytes at a time
//! in a `u64`, costs several times more on lines of a kilobyte or more.

/// The bytes of `chunk` equal to each of `bytes`, a mask each, with SSE2, which every x86-64
/// processor has.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn masks<const N: usize>(chunk: &[u8; 64], bytes: [u8; N]) -> [u64; N] {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    let mut masks = [0u64; N];
    for (part, block) in chunk.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of x86-64 itself, and `block` is 16 readable bytes, which
        // `loadu` takes at any alignment.
        unsafe {
            let block = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
            for (mask, byte) in masks.iter_mut().zip(bytes) {
                let found = _mm_movemask_epi8(_mm_cmpeq_epi8(block, _mm_set1_epi8(byte as i8)));
                *mask |= u64::from(found as u16) << (16 * part);
            }
        }
    }
    masks
}

/// [`masks`] with AVX2's 32-byte comparisons, for processors that have it (most). Callers
/// check for AVX2 once, then run their whole loop in a function with the same target
/// feature, so that this is inlined there.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn masks_avx2<const N: usize>(chunk: &[u8; 64], bytes: [u8; N]) -> [u64; N] {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_set1_epi8,
    };
    let mut masks = [0u64; N];
    for (half, block) in chunk.chunks_exact(32).enumerate() {
        // SAFETY: `block` is 32 readable bytes, which `loadu` takes at any alignment.
        let block = unsafe { _mm256_loadu_si256(block.as_ptr().cast::<__m256i>()) };
        for (mask, byte) in masks.iter_mut().zip(bytes) {
            let found =
                _mm256_movemask_epi8(_mm256_cmpeq_epi8(block, _mm256_set1_epi8(byte as i8)));
            *mask |= u64::from(found as u32) << (32 * half);
        }
    }
    masks
}

/// [`masks`] byte by byte, for other processors (and as the reference in tests).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
pub(crate) fn masks_portable<const N: usize>(chunk: &[u8; 64], bytes: [u8; N]) -> [u64; N] {
    let mut masks = [0u64; N];
    for (i, &b) in chunk.iter().enumerate() {
        for (mask, byte) in masks.iter_mut().zip(bytes) {
            *mask |= u64::from(b == byte) << i;
        }
    }
    masks
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) use masks_portable as masks;

/// The bytes of `chunk` from 0x20 to 0x7f, with SSE2: ASCII that is no control byte. A JSON
/// reader must refuse control bytes, and a text with no byte past 0x7f is UTF-8 without a
/// further check. One signed comparison: as `i8`, the bytes from 0x80 are negative.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn plain(chunk: &[u8; 64]) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpgt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    let mut mask = 0u64;
    for (part, block) in chunk.chunks_exact(16).enumerate() {
        // SAFETY: as in `masks`.
        unsafe {
            let block = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
            let found = _mm_movemask_epi8(_mm_cmpgt_epi8(block, _mm_set1_epi8(0x1f)));
            mask |= u64::from(found as u16) << (16 * part);
        }
    }
    mask
}

/// Whether each byte of `chunk` is [`plain`], with AVX2 (callers check for it as for
/// [`masks_avx2`]): a byte of all ones where it is. Kept as a vector, for the caller to fold
/// over a line with `and` and test once with [`all_plain`]: moving each chunk's answer out
/// of the vector registers costs about as much as finding it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn plain_avx2(chunk: &[u8; 64]) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::{
        __m256i, _mm256_and_si256, _mm256_cmpgt_epi8, _mm256_loadu_si256, _mm256_set1_epi8,
    };
    // SAFETY: `chunk` is 64 readable bytes, and `loadu` reads 32 of them from 0 and from 32
    // at any alignment.
    let [low, high] = unsafe {
        let at = chunk.as_ptr().cast::<__m256i>();
        [_mm256_loadu_si256(at), _mm256_loadu_si256(at.add(1))]
    };
    let floor = _mm256_set1_epi8(0x1f);
    _mm256_and_si256(
        _mm256_cmpgt_epi8(low, floor),
        _mm256_cmpgt_epi8(high, floor),
    )
}

/// Whether every byte of the [`plain_avx2`] answers `folded` (with `and`) says plain.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn all_plain(folded: std::arch::x86_64::__m256i) -> bool {
    std::arch::x86_64::_mm256_movemask_epi8(folded) == -1
}

/// [`plain`] byte by byte, for other processors (and as the reference in tests).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
pub(crate) fn plain_portable(chunk: &[u8; 64]) -> u64 {
    (chunk.iter().enumerate()).fold(0, |mask, (i, &b)| {
        mask | u64::from((0x20..0x80).contains(&b)) << i
    })
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) use plain_portable as plain;

/// Whether `text` holds any of `bytes`, sixteen bytes at a time with SSE2. For a writer that
/// must know whether a field needs quoting: fields are short, so no 64-byte chunk, no call
/// (as to `memchr`) that costs more than the search, and no byte-by-byte tail: the last block
/// overlaps the one before it, and a text shorter than a block is read as two overlapping
/// halves (of 8 bytes, or of 4); only a text under 4 bytes is read byte by byte.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn any_of<const N: usize>(text: &[u8], bytes: [u8; N]) -> bool {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set_epi32,
        _mm_set_epi64x, _mm_set1_epi8, _mm_setzero_si128,
    };
    // Bit `i` set when byte `i` of `block` is one of `bytes`.
    let found = |block: __m128i| {
        // SAFETY: SSE2 is part of x86-64 itself; these only compute on registers.
        unsafe {
            let mut found = _mm_setzero_si128();
            for byte in bytes {
                found = _mm_or_si128(found, _mm_cmpeq_epi8(block, _mm_set1_epi8(byte as i8)));
            }
            _mm_movemask_epi8(found)
        }
    };
    let len = text.len();
    let word = |at: usize| u64::from_le_bytes(text[at..at + 8].try_into().expect("8 bytes"));
    let half = |at: usize| u32::from_le_bytes(text[at..at + 4].try_into().expect("4 bytes"));
    match len {
        // SAFETY (both loads): `loadu` reads the 16 bytes from `at`, which lie in `text`,
        // at any alignment.
        16.. => {
            let load = |at: usize| unsafe { _mm_loadu_si128(text[at..at + 16].as_ptr().cast()) };
            (0..len / 16).any(|i| found(load(16 * i)) != 0)
                || (!len.is_multiple_of(16) && found(load(len - 16)) != 0)
        }
        // SAFETY (both sets): they only build a register from integers.
        8.. => found(unsafe { _mm_set_epi64x(word(len - 8) as i64, word(0) as i64) }) != 0,
        // The upper eight bytes are zeros, which may be among those sought: not looked at.
        4.. => {
            let block = unsafe { _mm_set_epi32(0, 0, half(len - 4) as i32, half(0) as i32) };
            found(block) & 0xff != 0
        }
        _ => any_of_portable(text, bytes),
    }
}

/// [`any_of`] byte by byte, for other processors, for the shortest texts, and as the
/// reference in tests.
#[inline]
#[allow(clippy::manual_contains)] // See below.
pub(crate) fn any_of_portable<const N: usize>(text: &[u8], bytes: [u8; N]) -> bool {
    // Not `bytes.contains`: for bytes, that is a call to a `memchr` of its own for each.
    text.iter()
        .any(|&b| bytes.iter().any(|&sought| sought == b))
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) use any_of_portable as any_of;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte value, at every position, among bytes just above and below those sought
    /// (where a careless comparison would be off by one or by sign).
    fn chunks() -> impl Iterator<Item = [u8; 64]> {
        (0..=255u8).flat_map(|byte| {
            (0..64).map(move |at| {
                let mut chunk: [u8; 64] = std::array::from_fn(|i| (i as u8).wrapping_mul(37));
                chunk[at] = byte;
                chunk[(at + 1) % 64] = byte.wrapping_add(1);
                chunk[(at + 63) % 64] = byte.wrapping_sub(1);
                chunk
            })
        })
    }

    #[test]
    fn any_of_is_the_portable_search_at_every_length_and_position() {
        let sought = [b',', b'"', b'\n', b'\r'];
        for chunk in chunks() {
            // Every length crosses the 16-byte blocks differently; every start, too.
            for start in [0, 1, 15] {
                for end in start..=64 {
                    // Zeros, which the short texts' registers are padded with, sought too.
                    let text = &chunk[start..end];
                    let with_zero = [b',', 0];
                    assert_eq!(
                        any_of(text, with_zero),
                        any_of_portable(text, with_zero),
                        "{text:?}"
                    );
                    let expected = any_of_portable(text, sought);
                    assert_eq!(any_of(text, sought), expected, "{text:?}");
                }
            }
        }
        assert!(!any_of(b"", sought));
        assert!(any_of(
            &[b'x'; 40].iter().chain(b",").copied().collect::<Vec<_>>(),
            sought
        ));
    }

    #[test]
    fn the_vector_masks_are_the_portable_ones() {
        #[cfg(target_arch = "x86_64")]
        let avx2 = std::is_x86_feature_detected!("avx2");
        #[cfg(not(target_arch = "x86_64"))]
        let avx2 = false;
        if !avx2 {
            eprintln!("this processor has no AVX2: its masks are not tested here");
        }
        let sought = [b'"', b',', b'\n', b'\\', 0x00, 0x7f, 0x80, 0xff];
        for chunk in chunks() {
            let expected = masks_portable(&chunk, sought);
            assert_eq!(masks(&chunk, sought), expected, "{chunk:?}");
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: this processor has AVX2.
                assert_eq!(unsafe { masks_avx2(&chunk, sought) }, expected, "{chunk:?}");
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_plain_bytes_with_avx2_are_the_portable_ones() {
        if !std::is_x86_feature_detected!("avx2") {
            eprintln!("SKIPPED: this processor has no AVX2");
            return;
        }
        let mut plain_chunk: [u8; 64] = std::array::from_fn(|i| b' ' + i as u8);
        plain_chunk[63] = 0x7f;
        for chunk in chunks().chain([plain_chunk]) {
            let expected = plain_portable(&chunk) == u64::MAX;
            // SAFETY: this processor has AVX2: it was just asked.
            assert_eq!(
                unsafe { all_plain(plain_avx2(&chunk)) },
                expected,
                "{chunk:?}"
            );
        }
        assert!(unsafe { all_plain(plain_avx2(&plain_chunk)) });
    }

    #[test]
    fn the_vector_plain_bytes_are_the_portable_ones() {
        for chunk in chunks() {
            assert_eq!(plain(&chunk), plain_portable(&chunk), "{chunk:?}");
        }
        let chunk: [u8; 64] = std::array::from_fn(|i| i as u8 * 4);
        // 0x20, 0x24, ..., 0x7c: bytes 8 to 31.
        assert_eq!(plain_portable(&chunk), 0xffff_ff00);
    }
}
