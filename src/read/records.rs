//! The records of a CSV file, split where they lie in the blocks read from it, by several
//! threads at once.
//!
//! Every counting thread gets every block, by reference, and takes from it the records of its
//! share of the clients ([`Records::next_in`]), passing over the others as fast as their line
//! end is found. A field is a slice of its block: only a record that straddles two blocks is copied
//! (into a buffer of its own), and only a field with doubled quotes is decoded into a new
//! string. With one thread splitting every record, copying its fields out and handing them to
//! the counting threads, that thread was the slowest of all and set the pace of
//! `aggregate-csv`.
//!
//! The dialect is the one parse-to-csv writes (the csv crate's): `,` between fields, `"`
//! around a field holding `,`, `"`, `\r` or `\n`, `""` for a quote inside one, and lines
//! ending in `\n` or `\r\n`. Beyond it, what other CSV readers take is taken too: a quote
//! inside a field opens a quoted part, blank lines and a leading byte-order mark are skipped,
//! and the last record may lack its line end.

use std::borrow::Cow;
use std::sync::Arc;

use crate::report::shard::Share;

/// A byte-order mark, which some tools put before the header.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A block of the file, or one record that straddled two.
type Shared = Arc<Buffer>;

/// Bytes read, checked as UTF-8 once, as a whole: the fields of a buffer that is text are
/// slices of it, with no check of their own. A block is not text when it holds bytes that are
/// not UTF-8, or ends inside a character; the fields of its records are checked one by one.
#[derive(Debug)]
pub enum Buffer {
    Text(String),
    Bytes(Vec<u8>),
}

impl Buffer {
    pub fn new(bytes: Vec<u8>) -> Buffer {
        String::from_utf8(bytes).map_or_else(|e| Buffer::Bytes(e.into_bytes()), Buffer::Text)
    }

    fn text(&self) -> Option<&str> {
        match self {
            Buffer::Text(text) => Some(text),
            Buffer::Bytes(_) => None,
        }
    }
}

impl Default for Buffer {
    fn default() -> Self {
        Buffer::Text(String::new())
    }
}

impl std::ops::Deref for Buffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Buffer::Text(text) => text.as_bytes(),
            Buffer::Bytes(bytes) => bytes,
        }
    }
}

/// Where a field's value lies in its record.
#[derive(Debug, Clone, Copy)]
struct Field {
    start: usize,
    end: usize,
    /// `start..end` is the value itself (a field without quotes, or the inside of one
    /// quoted whole without quotes inside), not the raw field to decode.
    plain: bool,
}

impl Field {
    /// The field at `start..end` of `input`, which holds `quotes` quotes.
    #[inline]
    fn new(input: &[u8], start: usize, end: usize, quotes: u32) -> Field {
        match quotes {
            0 => Field {
                start,
                end,
                plain: true,
            },
            2 if end - start >= 2 && input[start] == b'"' && input[end - 1] == b'"' => Field {
                start: start + 1,
                end: end - 1,
                plain: true,
            },
            _ => Field {
                start,
                end,
                plain: false,
            },
        }
    }
}

/// Bytes read at a time.
pub const BLOCK: usize = 1 << 20;

/// The records of a CSV file, one at a time, from its blocks in order (an empty block or the
/// end of `blocks` ends the input).
pub struct Records<I> {
    blocks: I,
    /// Records read or passed over, the header included (blank lines are none).
    number: u64,
    /// The block being split, and where in it the next record starts.
    block: Shared,
    pos: usize,
    /// The last block has been taken.
    eof: bool,
    /// The record that straddled two blocks, when the last record returned was one.
    joint: Shared,
    fields: Vec<Field>,
    /// The last record split: whether it is `joint`, and where it lies there or in `block`
    /// with its line end.
    current: (bool, usize, usize),
}

/// One record: its bytes in the buffer that holds them, and its fields.
pub struct Record<'a> {
    /// Records before it and itself, the header included (see [`Records::number`]).
    pub number: u64,
    /// The record's bytes, with its line end, and the same as text when its buffer is text.
    bytes: &'a [u8],
    text: Option<&'a str>,
    fields: &'a [Field],
}

impl<'a> Record<'a> {
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Field `i`'s value as a slice of its buffer's text, when the buffer is text and the
    /// field has no quotes to decode.
    #[inline]
    pub fn text(&self, i: usize) -> Option<&'a str> {
        let Field { start, end, plain } = self.fields[i];
        plain.then_some(())?;
        self.text?.get(start..end)
    }

    /// Field `i`'s value: a slice of the record unless its quotes need decoding.
    pub fn field(&self, i: usize) -> Cow<'a, [u8]> {
        let Field { start, end, plain } = self.fields[i];
        let bytes = &self.bytes[start..end];
        match plain {
            true => Cow::Borrowed(bytes),
            false => Cow::Owned(decode(bytes)),
        }
    }
}

/// A field's value from its raw bytes: quotes open and close quoted parts, and `""` inside
/// one is a quote.
fn decode(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut quoted = false;
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'"' if quoted && raw.get(i + 1) == Some(&b'"') => {
                out.push(b'"');
                i += 1;
            }
            b'"' => quoted = !quoted,
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Positions of the commas (if `COMMAS`), quotes and line ends of a slice, in order.
///
/// Found sixteen bytes at a time, as a mask with a bit for each of them: a record has a
/// dozen in 200 bytes, and a search that stops at each one costs more than the split itself.
struct Specials<'a, const COMMAS: bool> {
    input: &'a [u8],
    /// Where the chunk after the current one starts.
    next: usize,
    /// A bit for each byte of the current chunk that is one of them.
    mask: u32,
}

impl<'a, const COMMAS: bool> Specials<'a, COMMAS> {
    fn new(input: &'a [u8]) -> Self {
        Specials {
            input,
            next: 0,
            mask: 0,
        }
    }

    /// Goes on from `at`, leaving out what lies before.
    fn resume(&mut self, at: usize) {
        self.next = at;
        self.mask = 0;
    }
}

impl<const COMMAS: bool> Iterator for Specials<'_, COMMAS> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            let at = self.next;
            let chunk: [u8; 16] = match self.input.get(at..at + 16) {
                Some(chunk) => chunk.try_into().expect("sixteen bytes"),
                None if at < self.input.len() => {
                    let mut chunk = [0; 16];
                    chunk[..self.input.len() - at].copy_from_slice(&self.input[at..]);
                    chunk
                }
                None => return None,
            };
            self.mask = specials(&chunk, COMMAS);
            self.next = at + 16;
        }
        let bit = self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        Some(self.next - 16 + bit)
    }
}

/// A bit for each byte of `chunk` that is a comma (if `commas`), a quote or a line end (bit
/// `i` for byte `i`), with SSE2, which every x86-64 processor has.
#[cfg(target_arch = "x86_64")]
#[inline]
fn specials(chunk: &[u8; 16], commas: bool) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of x86-64 itself, and `chunk` is 16 readable bytes, which `loadu`
    // takes at any alignment.
    unsafe {
        let bytes = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
        let is = |byte: u8| _mm_cmpeq_epi8(bytes, _mm_set1_epi8(byte as i8));
        let quotes_and_ends = _mm_or_si128(is(b'"'), is(b'\n'));
        let found = match commas {
            true => _mm_or_si128(quotes_and_ends, is(b',')),
            false => quotes_and_ends,
        };
        _mm_movemask_epi8(found) as u32
    }
}

/// [`specials`] byte by byte, for other processors (and as the reference in tests).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn specials_portable(chunk: &[u8; 16], commas: bool) -> u32 {
    (chunk.iter().enumerate())
        .filter(|&(_, &b)| matches!(b, b'"' | b'\n') || (commas && b == b','))
        .fold(0, |mask, (i, _)| mask | 1 << i)
}

#[cfg(not(target_arch = "x86_64"))]
use specials_portable as specials;

/// Splits the record at the start of `input` into `fields` (ranges of `input`). Its length
/// with its line end, or `None` when `input` ends inside it and more may come (`!eof`).
///
/// One pass over the record finds every comma, quote and line end; inside a quoted part,
/// only quotes count.
fn split(input: &[u8], eof: bool, fields: &mut Vec<Field>) -> Option<usize> {
    fields.clear();
    let (mut start, mut quotes) = (0, 0);
    // The last field ends before the `\r` of a `\r\n` (outside quotes, as here).
    let last = |fields: &mut Vec<Field>, start: usize, end: usize, quotes: u32| {
        let end = if end > start && input[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        fields.push(Field::new(input, start, end, quotes));
    };
    let mut specials = Specials::<true>::new(input);
    while let Some(i) = specials.next() {
        match input[i] {
            b'"' => {
                // A quoted part: its closing quote is the next quote, usually past a long
                // user agent that `memchr` crosses faster than words are searched.
                quotes += 2;
                match memchr::memchr(b'"', &input[i + 1..]) {
                    Some(n) => specials.resume(i + 1 + n + 1),
                    None => {
                        quotes -= 1;
                        specials.resume(input.len());
                    }
                }
            }
            b',' => {
                fields.push(Field::new(input, start, i, quotes));
                (start, quotes) = (i + 1, 0);
            }
            _ => {
                last(fields, start, i, quotes);
                return Some(i + 1);
            }
        }
    }
    eof.then(|| {
        last(fields, start, input.len(), quotes);
        input.len()
    })
}

impl<I: Iterator<Item = Shared>> Records<I> {
    pub fn new(blocks: I) -> Records<I> {
        Records {
            blocks,
            number: 0,
            block: Shared::default(),
            pos: 0,
            eof: false,
            joint: Shared::default(),
            fields: Vec::new(),
            current: (false, 0, 0),
        }
    }

    /// Takes the next block as the one to split; an empty one at the end of the input.
    fn next_block(&mut self) {
        self.block = self.blocks.next().unwrap_or_default();
        self.eof = self.block.is_empty();
        self.pos = 0;
    }

    /// How many records were read or passed over, the header included.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The next record of a client of `share`, or `None` at the end of the input; the records
    /// of other clients are passed over, as fast as their line end is found.
    pub fn next_in(&mut self, share: Share) -> Option<Record<'_>> {
        loop {
            if share.of > 1
                && self.pos < self.block.len()
                && let Some(len) = self.pass_over(share)
            {
                self.pos += len;
                continue;
            }
            // Split whole: the record is ours, straddles two blocks, or its ip is quoted.
            if !self.advance() {
                return None;
            }
            if share.has(&self.current().field(0)) {
                return Some(self.current());
            }
        }
    }

    /// The length of the record at `pos` when it is a blank line, or when it lies whole in
    /// the block with an unquoted ip of a client of another share than `share`.
    fn pass_over(&mut self, share: Share) -> Option<usize> {
        let input = &self.block[self.pos..];
        let comma = memchr::memchr3(b',', b'\n', b'"', input)?;
        match input[comma] {
            // A blank line, as `advance` tells them.
            b'\n' if matches!(&input[..comma], b"" | b"\r") => return Some(comma + 1),
            b',' => {}
            _ => return None,
        }
        if share.has(&input[..comma]) {
            return None;
        }
        // The line end is the first `\n` outside quotes (a quoted field may hold line ends).
        let mut quoted = false;
        for i in Specials::<false>::new(&input[comma..]) {
            match input[comma + i] {
                b'"' => quoted = !quoted,
                _ if quoted => {}
                _ => {
                    self.number += 1;
                    return Some(comma + i + 1);
                }
            }
        }
        None
    }

    /// The next record, or `None` at the end of the input.
    pub fn next_record(&mut self) -> Option<Record<'_>> {
        self.advance().then(|| self.current())
    }

    /// Splits the next record, for [`Records::current`]; false at the end of the input.
    fn advance(&mut self) -> bool {
        loop {
            if self.pos == self.block.len() {
                if self.eof {
                    return false;
                }
                self.next_block();
                continue;
            }
            let input = &self.block[self.pos..];
            let (straddles, start, len) = match split(input, self.eof, &mut self.fields) {
                Some(len) => {
                    self.pos += len;
                    (false, self.pos - len, len)
                }
                None => {
                    self.joint = Arc::new(Buffer::new(self.straddling()));
                    (true, 0, self.joint.len())
                }
            };
            let buffer = if straddles { &self.joint } else { &self.block };
            let record = &buffer[start..start + len];
            // A blank line is no record.
            if !matches!(record, b"\n" | b"\r\n" | b"\r" | b"") {
                if self.number == 0 && record.starts_with(BOM) {
                    self.fields[0].start += BOM.len();
                }
                self.number += 1;
                self.current = (straddles, start, len);
                return true;
            }
        }
    }

    /// The record [`Records::advance`] split.
    fn current(&self) -> Record<'_> {
        let (straddles, start, len) = self.current;
        let buffer = if straddles { &self.joint } else { &self.block };
        let end = start + len;
        Record {
            number: self.number,
            bytes: &buffer[start..end],
            text: buffer.text().and_then(|text| text.get(start..end)),
            fields: &self.fields,
        }
    }

    /// The record that starts at `pos` and does not end in its block, copied whole from the
    /// blocks it lies in, with `fields` split. The blocks are added to it a line at a time, so
    /// that only the record is copied, not the rest of the block it ends in.
    fn straddling(&mut self) -> Vec<u8> {
        let mut joint = self.block[self.pos..].to_vec();
        self.pos = self.block.len();
        loop {
            if self.pos == self.block.len() {
                self.next_block();
            }
            let rest = &self.block[self.pos..];
            let take = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
            joint.extend_from_slice(&rest[..take]);
            self.pos += take;
            if let Some(len) = split(&joint, self.eof, &mut self.fields) {
                debug_assert_eq!(len, joint.len());
                return joint;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `input` in blocks of `size` bytes.
    fn blocks(input: &[u8], size: usize) -> impl Iterator<Item = Shared> {
        (input.chunks(size.max(1)))
            .map(|block| Arc::new(Buffer::new(block.to_vec())))
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// The records of `input` read in blocks of `size` bytes, fields decoded.
    fn read(input: &[u8], size: usize) -> Vec<Vec<Vec<u8>>> {
        let mut records = Records::new(blocks(input, size));
        let mut out = Vec::new();
        while let Some(r) = records.next_record() {
            out.push((0..r.len()).map(|i| r.field(i).into_owned()).collect());
        }
        out
    }

    fn fields(rows: &[&[&str]]) -> Vec<Vec<Vec<u8>>> {
        (rows.iter())
            .map(|r| r.iter().map(|f| f.as_bytes().to_vec()).collect())
            .collect()
    }

    #[test]
    fn the_vector_search_finds_the_bytes_the_portable_one_does() {
        let mut chunk = *b"ab,\"c\nd\r\0\xff,,\"\n\nz";
        for round in 0..4096u32 {
            for commas in [true, false] {
                let (vector, portable) =
                    (specials(&chunk, commas), specials_portable(&chunk, commas));
                assert_eq!(vector, portable, "{chunk:?}");
            }
            // Another mix of special and plain bytes.
            let i = (round as usize * 7) % 16;
            chunk[i] = [b',', b'"', b'\n', b'x', 0x2b, 0x8a][(round as usize / 3) % 6];
        }
    }

    #[test]
    fn records_are_the_same_whatever_the_blocks() {
        let cases: &[(&str, &[&[&str]])] = &[
            ("a,b\n1,2\n", &[&["a", "b"], &["1", "2"]]),
            ("a,b\r\n1,2\r\n", &[&["a", "b"], &["1", "2"]]),
            ("a,b\n1,2", &[&["a", "b"], &["1", "2"]]),
            ("\u{feff}a,b\n\n1,\n\r\n", &[&["a", "b"], &["1", ""]]),
            (
                "\"x, y\",\"say \"\"hi\"\"\",\"\"\n",
                &[&["x, y", "say \"hi\"", ""]],
            ),
            (
                "\"two\nlines\",\"cr\r\"\r\nz\n",
                &[&["two\nlines", "cr\r"], &["z"]],
            ),
            ("a\"b,c\"\"d\n", &[&["ab,c\"d\n"]]),
            ("\"open", &[&["open"]]),
            ("", &[]),
        ];
        for &(input, expected) in cases {
            for size in [1, 2, 3, 5, 7, 64] {
                assert_eq!(
                    read(input.as_bytes(), size),
                    fields(expected),
                    "{input:?} in blocks of {size}"
                );
            }
        }
    }

    #[test]
    fn a_field_is_a_slice_of_its_block_unless_it_needs_decoding() {
        let mut records = Records::new(blocks(b"ab,\"cd\",\"e\"\"f\"\n", 64));
        let r = records.next_record().unwrap();
        let (cd, e_f) = (r.text(1).unwrap().as_ptr(), r.text(2));
        assert_eq!(r.text(1), Some("cd"));
        assert_eq!(e_f, None);
        assert_eq!(r.field(2), Cow::<[u8]>::Owned(b"e\"f".to_vec()));
        assert!(records.block.as_ptr_range().contains(&cd));
    }

    #[test]
    fn shares_take_each_record_once_numbered_as_in_the_file() {
        // Quoted and unquoted ips (the same client either way), blank lines, quoted line ends
        // and quotes, CRLF, and records across blocks of every size.
        let mut input = String::from("ip,x\n");
        for i in 0..300 {
            let ip = format!("10.0.{}.{}", i % 3, i % 37);
            input += &match i % 5 {
                0 => format!("\"{ip}\",\"a\nb\"\n"),
                1 => "\n\r\n".to_string(),
                2 => format!("{ip},\"q,\"\"\"\r\n"),
                _ => format!("{ip},x\n"),
            };
        }
        let expected: Vec<(u64, Vec<u8>)> = (read(input.as_bytes(), 1 << 20).into_iter())
            .skip(1)
            .zip(2..)
            .map(|(fields, number)| (number, fields[0].clone()))
            .collect();
        for size in [1, 2, 7, 64, 4096] {
            let mut seen = Vec::new();
            for index in 0..2 {
                let share = Share { index, of: 2 };
                let mut records = Records::new(blocks(input.as_bytes(), size));
                assert!(records.next_record().is_some());
                let before = seen.len();
                while let Some(r) = records.next_in(share) {
                    let ip = r.field(0).into_owned();
                    assert_eq!(
                        crate::report::shard::share_of(&ip, 2),
                        index,
                        "{ip:?} in blocks of {size}"
                    );
                    seen.push((r.number, ip));
                }
                assert!(seen.len() > before, "share {index} is empty");
                assert_eq!(records.number(), expected.len() as u64 + 1);
            }
            seen.sort();
            assert_eq!(seen, expected, "in blocks of {size}");
        }
    }
}
