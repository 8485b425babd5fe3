//! The records of a CSV file: found once, as the file is read, and split by several counting
//! threads at once.
//!
//! The reading thread cuts the file into blocks of whole records ([`Blocks`]) and indexes
//! each: where every field ends (the comma or line end after it) and how many quotes it holds.
//! It finds them 64 bytes at a time as bit masks, the running parity of the quotes telling
//! which commas and line ends lie inside a quoted part, with no branch per byte: a record has
//! a dozen fields in 200 bytes, and a search that stops at each byte of interest costs more
//! than the masks. Every counting thread then gets every block, by reference, and takes the
//! records of its share of the clients ([`Records::next_in`]): the reading thread tagged each
//! record with its client's share, so passing over another share's record is a comparison,
//! and splitting one's own is reading its entries.
//! When each thread split every record for itself, passing over the others' records to their
//! line end, the threads did twice the splitting the file needs.
//!
//! A field is a slice of its block; only a field with doubled quotes is decoded into a new
//! string. The dialect is the one parse-to-csv writes (the csv crate's): `,` between fields,
//! `"` around a field holding `,`, `"`, `\r` or `\n`, `""` for a quote inside one, and lines
//! ending in `\n` or `\r\n`. Beyond it, what other CSV readers take is taken too: a quote
//! inside a field opens a quoted part, blank lines and a leading byte-order mark are skipped,
//! and the last record may lack its line end.

use std::borrow::Cow;
use std::io::Read;
use std::sync::Arc;

use crate::mask::masks;
#[cfg(target_arch = "x86_64")]
use crate::mask::masks_avx2;
use crate::report::shard::{self, Share};

/// A byte-order mark, which some tools put before the header.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Bytes read at a time, and the size from which a block is handed out.
pub const BLOCK: usize = 1 << 20;

/// An entry of the index is a field's end (the position of the comma or line end after it) in
/// its low 30 bits, and the number of quotes in the field (3 meaning three or more) in the top
/// two: a block, and so a record, is shorter than 1 GiB.
const POSITION: u32 = (1 << 30) - 1;

/// Bytes read, checked as UTF-8 once, as a whole: the fields of a buffer that is text are
/// slices of it, with no check of their own. A block that holds bytes that are not UTF-8 is
/// not text; the fields of its records are checked one by one.
#[derive(Debug)]
pub enum Buffer {
    Text(String),
    Bytes(Vec<u8>),
}

impl Buffer {
    pub fn new(bytes: Vec<u8>) -> Buffer {
        String::from_utf8(bytes).map_or_else(|e| Buffer::Bytes(e.into_bytes()), Buffer::Text)
    }

    fn into_bytes(self) -> Vec<u8> {
        match self {
            Buffer::Text(text) => text.into_bytes(),
            Buffer::Bytes(bytes) => bytes,
        }
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

/// Where a record lies in its block: its first byte, and its fields' entries in the index.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: u32,
    from: u32,
    to: u32,
    /// The share of the clients its client is in (see [`Blocks::new`]).
    share: u32,
}

/// Whole records, read from a file, and where their fields end.
#[derive(Debug, Default)]
pub struct Block {
    buffer: Buffer,
    /// The fields of every record, in order (see [`POSITION`]).
    ends: Vec<u32>,
    records: Vec<Span>,
    /// Records in the blocks before this one, the header included.
    before: u64,
    /// The number of shares the records' `share` is of.
    shares: usize,
}

impl Block {
    fn record(&self, i: usize) -> Record<'_> {
        let Span {
            start, from, to, ..
        } = self.records[i];
        Record {
            number: self.before + i as u64 + 1,
            input: &self.buffer,
            text: self.buffer.text(),
            start: start as usize,
            ends: &self.ends[from as usize..to as usize],
        }
    }
}

/// One record: its fields, as slices of its block.
pub struct Record<'a> {
    /// Records before it and itself, the header included (blank lines are none).
    pub number: u64,
    input: &'a [u8],
    text: Option<&'a str>,
    start: usize,
    ends: &'a [u32],
}

impl<'a> Record<'a> {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Where field `i` lies in the block, and whether that is its value itself (a field
    /// without quotes, or the inside of one quoted whole with no quote inside) rather than
    /// the raw field to decode.
    #[inline]
    fn range(&self, i: usize) -> (usize, usize, bool) {
        let start = match i {
            0 => self.start,
            _ => (self.ends[i - 1] & POSITION) as usize + 1,
        };
        let end = (self.ends[i] & POSITION) as usize;
        match self.ends[i] >> 30 {
            0 => (start, end, true),
            2 if end - start >= 2 && self.input[start] == b'"' && self.input[end - 1] == b'"' => {
                (start + 1, end - 1, true)
            }
            _ => (start, end, false),
        }
    }

    /// Field `i`'s value as a slice of its block's text, when the block is text and the
    /// field has no quotes to decode.
    #[inline]
    pub fn text(&self, i: usize) -> Option<&'a str> {
        let (start, end, plain) = self.range(i);
        plain.then_some(())?;
        self.text?.get(start..end)
    }

    /// Field `i`'s value: a slice of the block unless its quotes need decoding.
    pub fn field(&self, i: usize) -> Cow<'a, [u8]> {
        let (start, end, plain) = self.range(i);
        let bytes = &self.input[start..end];
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

/// What the index looks for, a mask each (see [`crate::mask`]).
const SOUGHT: [u8; 3] = [b'"', b',', b'\n'];

/// Bit `i` is the parity of the bits `0..=i` of `x`: for a quote mask, whether byte `i`
/// lies inside a quoted part (its opening quote included, its closing one not).
#[inline]
fn prefix_xor(mut x: u64) -> u64 {
    for shift in [1, 2, 4, 8, 16, 32] {
        x ^= x << shift;
    }
    x
}

/// The index of the bytes read so far, built 64 bytes at a time, and resumed where it
/// stopped when more bytes are appended.
#[derive(Debug, Default)]
struct Index {
    /// The entries, `len` of them, then room for a chunk's: a chunk writes its entries
    /// in place, with no check of capacity or length for each (a record has a dozen).
    ends: Vec<u32>,
    len: usize,
    records: Vec<Span>,
    /// Bytes indexed.
    at: usize,
    /// All ones when `at` lies inside a quoted part.
    inside: u64,
    /// Quotes in the field being indexed so far, before its chunk.
    quotes: u32,
    /// The record being indexed: where it starts, and its first entry.
    start: usize,
    from: usize,
}

impl Index {
    /// Indexes the whole 64-byte chunks of `input` not yet indexed; with `all`, the rest
    /// too, after which no byte may be appended (the input ends, or the index is to be cut or
    /// given up); at the end of the input (`eof`), where a last record without a line end
    /// ends.
    fn extend(&mut self, input: &[u8], all: bool, eof: bool) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: this processor has AVX2: it was just asked.
            unsafe { self.whole_chunks_avx2(input) };
        }
        while let Some(chunk) = input.get(self.at..self.at + 64) {
            self.chunk(input, masks(chunk.try_into().expect("64 bytes"), SOUGHT));
            self.at += 64;
        }
        if !all {
            return;
        }
        if self.at < input.len() {
            // Zeros are none of the bytes looked for.
            let mut chunk = [0; 64];
            chunk[..input.len() - self.at].copy_from_slice(&input[self.at..]);
            self.chunk(input, masks(&chunk, SOUGHT));
            self.at = input.len();
        }
        if eof && self.start < input.len() {
            self.ends.truncate(self.len);
            self.ends.push(input.len() as u32 | quote_bits(self.quotes));
            self.len += 1;
            self.end_record(input, self.len, input.len());
        }
    }

    /// [`Index::extend`]'s loop over the whole chunks, with [`masks_avx2`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn whole_chunks_avx2(&mut self, input: &[u8]) {
        while let Some(chunk) = input.get(self.at..self.at + 64) {
            self.chunk(
                input,
                masks_avx2(chunk.try_into().expect("64 bytes"), SOUGHT),
            );
            self.at += 64;
        }
    }

    /// Indexes the chunk of 64 bytes of `input` from `at` (zeros past its end), given the
    /// [`masks`] of its quotes, commas and line ends.
    #[inline]
    fn chunk(&mut self, input: &[u8], [quotes, commas, lines]: [u64; 3]) {
        let inside = prefix_xor(quotes) ^ self.inside;
        self.inside = ((inside as i64) >> 63) as u64;
        let found = (commas | lines) & !inside;
        if self.ends.len() < self.len + 64 {
            self.ends.resize(self.len + 64 + 4096, 0);
        }
        // Every field end first, in a loop of a few instructions with nothing else to do,
        // then the line ends among them, which end records.
        let first = self.len;
        let (mut ends, mut n) = (found, 0);
        let room: &mut [u32; 64] = (&mut self.ends[first..first + 64])
            .try_into()
            .expect("room for a chunk");
        while ends != 0 {
            room[n & 63] = (self.at + ends.trailing_zeros() as usize) as u32;
            n += 1;
            ends &= ends - 1;
        }
        self.len += n;
        let mut records = found & lines;
        while records != 0 {
            let bit = records.trailing_zeros();
            // Entries up to this line end, its own included.
            let through = (found & (u64::MAX >> (63 - bit))).count_ones() as usize;
            self.end_record(input, first + through, self.at + bit as usize + 1);
            records &= records - 1;
        }
        // Quotes are few (a field is quoted only when it holds a comma or a quote): each is
        // counted for the field it lies in, the one whose end is the next found, or the one
        // going on into the next chunk.
        if self.len > first {
            self.ends[first] |= quote_bits(self.quotes);
            self.quotes = 0;
        }
        let mut rest = quotes;
        while rest != 0 {
            let field = (found & (rest ^ (rest - 1))).count_ones() as usize;
            match first + field < self.len {
                true => {
                    let entry = &mut self.ends[first + field];
                    *entry = (*entry & POSITION) | quote_bits((*entry >> 30) + 1);
                }
                false => self.quotes += 1,
            }
            rest &= rest - 1;
        }
    }

    /// Ends the record being indexed, whose entries end at `to`; the next starts at `next`.
    /// A blank line is no record (its entry stays, unused).
    #[inline]
    fn end_record(&mut self, input: &[u8], to: usize, next: usize) {
        let blank = to == self.from + 1
            && matches!(&input[self.start..next], b"\n" | b"\r\n" | b"\r" | b"");
        if !blank {
            // The last field ends before the `\r` of a `\r\n`: its entry says so, rather
            // than each reading of the field checking whether it is the last.
            let last = &self.ends[self.from..to];
            let start = match last {
                [.., before, _] => (before & POSITION) as usize + 1,
                _ => self.start,
            };
            let end = (last[last.len() - 1] & POSITION) as usize;
            if end > start && input[end - 1] == b'\r' {
                self.ends[to - 1] -= 1;
            }
            self.records.push(Span {
                start: self.start as u32,
                from: self.from as u32,
                to: to as u32,
                share: 0,
            });
        }
        (self.start, self.from) = (next, to);
    }
}

/// `n` quotes as an entry holds them (see [`POSITION`]).
#[inline]
fn quote_bits(n: u32) -> u32 {
    n.min(3) << 30
}

/// The blocks of whole records of a CSV, indexed as they are read. A read error, or a record
/// too long to index, ends them; [`Blocks::error`] tells it.
pub struct Blocks<R> {
    input: R,
    /// Bytes read and not yet handed out, and their index.
    pending: Vec<u8>,
    index: Index,
    /// Records handed out, the header included.
    records: u64,
    eof: bool,
    error: Option<std::io::Error>,
    /// Bytes read at a time, and so about the size of a block.
    size: usize,
    /// The most bytes `pending` may hold: the longest record (its line end aside), and so
    /// the highest position an entry holds.
    longest: usize,
    /// The number of shares records are tagged for.
    shares: usize,
    /// A block the counting threads are done with, whose memory the next block takes
    /// ([`Blocks::give_back`]).
    spare: Option<Block>,
}

impl<R: Read> Blocks<R> {
    /// The blocks of `input`, each record tagged with the share of the clients (of
    /// `shares`) its client is in, so that each counting thread finds its own records
    /// without hashing every client of the file itself (see [`Records::next_in`]).
    pub fn new(input: R, shares: usize) -> Blocks<R> {
        Blocks::sized(input, BLOCK, POSITION as usize - 1, shares)
    }

    fn sized(input: R, size: usize, longest: usize, shares: usize) -> Blocks<R> {
        Blocks {
            shares,
            input,
            pending: Vec::new(),
            index: Index::default(),
            records: 0,
            eof: false,
            error: None,
            size,
            longest,
            spare: None,
        }
    }

    /// Gives back a block handed out before, that nothing reads any more: the next block is
    /// read into its memory, which is already the process's, rather than into memory asked
    /// of the system (page faults, zeroed pages).
    pub fn give_back(&mut self, block: Block) {
        self.spare = Some(block);
    }

    /// The error that ended the blocks, if any.
    pub fn error(self) -> Option<std::io::Error> {
        self.error
    }

    /// The records indexed so far, as a block; what follows them starts the next block.
    fn cut(&mut self) -> Block {
        let end = self.index.start;
        let (mut rest, mut next_ends, mut next_records) = match self.spare.take() {
            // A block grown far past the block size by a long record is let go, not kept
            // going round.
            Some(spare) if spare.buffer.len() <= 2 * self.size => {
                (spare.buffer.into_bytes(), spare.ends, spare.records)
            }
            _ => Default::default(),
        };
        rest.clear();
        rest.reserve(self.size + (self.pending.len() - end));
        rest.extend_from_slice(&self.pending[end..]);
        let mut bytes = std::mem::replace(&mut self.pending, rest);
        bytes.truncate(end);
        let Index {
            mut ends,
            mut records,
            from,
            ..
        } = std::mem::take(&mut self.index);
        ends.truncate(from);
        // The next block is much like this one: room for its entries from the start saves
        // growing the index by doubling, which copies it and may leave half of it unused.
        next_ends.clear();
        next_ends.reserve(ends.len() + ends.len() / 8 + 4096 + 64);
        next_records.clear();
        self.index.ends = next_ends;
        self.index.records = next_records;
        if self.records == 0
            && let Some(first) = records.first_mut()
            && bytes[first.start as usize..].starts_with(BOM)
        {
            first.start += BOM.len() as u32;
        }
        let before = self.records;
        self.records += records.len() as u64;
        let mut block = Block {
            buffer: Buffer::new(bytes),
            ends,
            records,
            before,
            shares: self.shares,
        };
        if self.shares > 1 {
            for i in 0..block.records.len() {
                let share = shard::share_of(&block.record(i).field(0), self.shares);
                block.records[i].share = share as u32;
            }
        }
        block
    }
}

impl<R: Read> Iterator for Blocks<R> {
    type Item = Block;

    fn next(&mut self) -> Option<Block> {
        loop {
            if !self.eof {
                // No more than `longest` bytes pending, and one more to tell a record that is
                // longer (what is pending before reading is one record not yet ended).
                let room = (self.longest - self.pending.len())
                    .saturating_add(1)
                    .min(self.size);
                // Filled to the end, unlike a single `read`, and with no zeroing first.
                self.pending.reserve(room);
                match (&mut self.input)
                    .take(room as u64)
                    .read_to_end(&mut self.pending)
                {
                    Ok(n) => self.eof = n < room,
                    Err(e) => {
                        self.error = Some(e);
                        return None;
                    }
                }
            }
            let full = self.pending.len() > self.longest;
            self.index.extend(&self.pending, self.eof || full, self.eof);
            if !self.index.records.is_empty()
                && (self.eof || full || self.pending.len() >= self.size)
            {
                return Some(self.cut());
            }
            if self.eof {
                return None;
            }
            if self.index.start > 0 {
                // Only blank lines so far, which are no records: they go.
                self.pending.drain(..self.index.start);
                self.index = Index::default();
            } else if full {
                // Records after the header, counted from 1, as the rows' errors count them.
                let what = match self.records {
                    0 => "the header".to_string(),
                    n => format!("record {n}"),
                };
                self.error = Some(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{what} is longer than {} bytes (a quote that never closes?)",
                        self.longest
                    ),
                ));
                return None;
            }
        }
    }
}

/// The records of a CSV file, one at a time, from its blocks in order.
pub struct Records<I> {
    blocks: I,
    block: Arc<Block>,
    /// The next record of `block`.
    next: usize,
}

impl<I: Iterator<Item = Arc<Block>>> Records<I> {
    pub fn new(blocks: I) -> Records<I> {
        Records {
            blocks,
            block: Arc::default(),
            next: 0,
        }
    }

    /// How many records were read or passed over, the header included.
    pub fn number(&self) -> u64 {
        self.block.before + self.next as u64
    }

    /// The next record of a client of `share`, or `None` at the end of the input; the records
    /// of other clients are passed over, by their tag when their block was cut for as many
    /// shares, or else by their client.
    pub fn next_in(&mut self, share: Share) -> Option<Record<'_>> {
        loop {
            while self.next == self.block.records.len() {
                // Let go before waiting for the next block: the reader fills a block no
                // thread holds again ([`crate::report::shard::Feed::spent`]). What it was
                // is kept for [`Records::number`].
                let before = self.block.before + self.next as u64;
                self.block = Arc::new(Block {
                    before,
                    ..Block::default()
                });
                self.next = 0;
                self.block = self.blocks.next()?;
            }
            let i = self.next;
            self.next += 1;
            let mine = match share.of {
                1 => true,
                of if of == self.block.shares => {
                    self.block.records[i].share as usize == share.index
                }
                _ => share.has(&self.block.record(i).field(0)),
            };
            if mine {
                return Some(self.block.record(i));
            }
        }
    }

    /// The next record, or `None` at the end of the input.
    pub fn next_record(&mut self) -> Option<Record<'_>> {
        self.next_in(Share::ALL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The blocks of `input`, read `size` bytes at a time, with records of up to `longest`.
    fn blocks(input: &[u8], size: usize, longest: usize) -> Blocks<&[u8]> {
        Blocks::sized(input, size, longest, 1)
    }

    /// The records of `input` read `size` bytes at a time, fields decoded.
    fn read(input: &[u8], size: usize) -> Vec<Vec<Vec<u8>>> {
        let mut records = Records::new(blocks(input, size, usize::MAX).map(Arc::new));
        let mut out = Vec::new();
        while let Some(r) = records.next_record() {
            out.push((0..r.len()).map(|i| r.field(i).into_owned()).collect());
        }
        out
    }

    /// The dialect, byte by byte: the reference the index is held to.
    fn reference(input: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let (mut records, mut record, mut field) = (Vec::new(), Vec::new(), Vec::new());
        let mut quoted = false;
        let mut end = |record: &mut Vec<Vec<u8>>, mut field: Vec<u8>| {
            if field.last() == Some(&b'\r') {
                field.pop();
            }
            record.push(field);
            let record = std::mem::take(record);
            if record != [Vec::<u8>::new()] {
                records.push(record);
            }
        };
        // Raw fields first: quotes are decoded as the reader does, from the raw field.
        for &b in input {
            match b {
                b'"' => {
                    quoted = !quoted;
                    field.push(b);
                }
                b',' if !quoted => record.push(std::mem::take(&mut field)),
                b'\n' if !quoted => end(&mut record, std::mem::take(&mut field)),
                _ => field.push(b),
            }
        }
        if !field.is_empty() || !record.is_empty() {
            end(&mut record, field);
        }
        // The first record may start with a byte-order mark.
        if let Some(first) = records.first_mut().map(|r: &mut Vec<Vec<u8>>| &mut r[0])
            && first.starts_with(BOM)
        {
            first.drain(..BOM.len());
        }
        (records.into_iter())
            .map(|r| r.iter().map(|f| decode(f)).collect())
            .collect()
    }

    fn fields(rows: &[&[&str]]) -> Vec<Vec<Vec<u8>>> {
        (rows.iter())
            .map(|r| r.iter().map(|f| f.as_bytes().to_vec()).collect())
            .collect()
    }

    #[test]
    fn prefix_xor_is_the_parity_of_the_bits_up_to_each() {
        for x in [0, 1, 0b1001, u64::MAX, 1 << 63, 0xF0F0_0001_8000_0010] {
            let parity = (0..64).fold(0u64, |out, i| {
                out | u64::from((x & (u64::MAX >> (63 - i))).count_ones() % 2 == 1) << i
            });
            assert_eq!(prefix_xor(x), parity, "{x:#x}");
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
            ("\n\r\n", &[]),
        ];
        for &(input, expected) in cases {
            for size in [1, 2, 3, 5, 7, 64, 1000] {
                assert_eq!(
                    read(input.as_bytes(), size),
                    fields(expected),
                    "{input:?} in blocks of {size}"
                );
            }
            assert_eq!(reference(input.as_bytes()), fields(expected), "{input:?}");
        }
    }

    proptest! {
        /// Quotes, commas and line ends anywhere, across 64-byte chunks and blocks of any
        /// size: the index splits as the byte-by-byte reference does.
        #[test]
        fn the_index_splits_as_the_dialect_says(
            bytes in proptest::collection::vec(
                prop_oneof![
                    Just(b','), Just(b'"'), Just(b'\n'), Just(b'\r'), Just(b'a'), Just(0xC3),
                    Just(0xA9), any::<u8>()
                ],
                0..400,
            ),
            size in 1usize..200,
        ) {
            prop_assert_eq!(read(&bytes, size), reference(&bytes));
            prop_assert_eq!(read_refilled(&bytes, size), reference(&bytes));
        }
    }

    /// The reader fills again the blocks no counting thread holds, so a thread lets go of
    /// its block before it waits for the next, not once it has it.
    #[test]
    fn a_block_is_let_go_before_the_next_is_asked_for() {
        let input = b"a,b\n".repeat(100);
        let blocks: Vec<Arc<Block>> = blocks(&input, 16, usize::MAX).map(Arc::new).collect();
        assert!(blocks.len() > 3);
        let mut given = 0;
        let handed = std::iter::from_fn(|| {
            if given > 0 {
                let held = Arc::strong_count(&blocks[given - 1]) - 1;
                assert_eq!(held, 0, "block {} still held", given - 1);
            }
            given += 1;
            blocks.get(given - 1).cloned()
        });
        let mut records = Records::new(handed);
        let mut read = 0;
        while records.next_record().is_some() {
            read += 1;
        }
        assert_eq!((read, records.number()), (100, 100));
    }

    /// [`read`], each block given back once read, as the reading thread does: the next is
    /// read into its memory, which still holds its bytes and entries.
    fn read_refilled(input: &[u8], size: usize) -> Vec<Vec<Vec<u8>>> {
        let mut blocks = blocks(input, size, usize::MAX);
        let mut out = Vec::new();
        while let Some(block) = blocks.next() {
            for i in 0..block.records.len() {
                let r = block.record(i);
                out.push((0..r.len()).map(|i| r.field(i).into_owned()).collect());
            }
            blocks.give_back(block);
        }
        out
    }

    #[test]
    fn a_field_is_a_slice_of_its_block_unless_it_needs_decoding() {
        let mut blocks = blocks(b"ab,\"cd\",\"e\"\"f\"\n", 64, usize::MAX);
        let block = blocks.next().unwrap();
        let r = block.record(0);
        let (cd, e_f) = (r.text(1).unwrap().as_ptr(), r.text(2));
        assert_eq!(r.text(1), Some("cd"));
        assert_eq!(e_f, None);
        assert_eq!(r.field(2), Cow::<[u8]>::Owned(b"e\"f".to_vec()));
        assert!(block.buffer.as_ptr_range().contains(&cd));
    }

    #[test]
    fn a_record_longer_than_a_block_may_be_is_an_error_after_the_records_before_it() {
        let input = format!("a,b\n1,2\n\"never closed,{}\n4,5\n", "x".repeat(300));
        let mut blocks = blocks(input.as_bytes(), 4, 100);
        let records: Vec<_> = blocks.by_ref().flat_map(|b| b.records).collect();
        assert_eq!(records.len(), 2);
        let error = blocks.error().unwrap();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
        assert!(
            error
                .to_string()
                .starts_with("record 2 is longer than 100 bytes"),
            "{error}"
        );
    }

    #[test]
    fn a_record_as_long_as_a_block_may_be_is_read_and_blank_lines_never_fill_one() {
        // Records of exactly 100 bytes, their line end included, whatever the reads.
        let longest = format!("a\n{}\n{}\n", "x".repeat(99), "y".repeat(99));
        for size in [1, 7, 64, 100, 1000] {
            let mut blocks = blocks(longest.as_bytes(), size, 100);
            let records: usize = blocks.by_ref().map(|b| b.records.len()).sum();
            assert_eq!(records, 3, "in reads of {size}");
            assert!(blocks.error().is_none(), "in reads of {size}");
        }
        let header = format!("{}\n", "h".repeat(101));
        let mut long = blocks(header.as_bytes(), 7, 100);
        assert!(long.next().is_none());
        let error = long.error().unwrap().to_string();
        assert!(
            error.starts_with("the header is longer than 100 bytes"),
            "{error}"
        );
        // Five times as many blank lines as a block may hold, then a record.
        let blank = "\n".repeat(500) + "\r\n".repeat(100).as_str() + "a,b\n";
        let mut blanks = blocks(blank.as_bytes(), 7, 100);
        let records: Vec<_> = blanks.by_ref().flat_map(|b| b.records).collect();
        assert_eq!(records.len(), 1);
        assert!(blanks.error().is_none());
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
            // Blocks tagged for two shares, and blocks tagged for none, whose records are
            // then told apart by their client.
            for (index, tagged) in [(0, 2), (1, 2), (0, 1), (1, 1)] {
                let share = Share { index, of: 2 };
                let blocks = Blocks::sized(input.as_bytes(), size, usize::MAX, tagged);
                let mut records = Records::new(blocks.map(Arc::new));
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
            let twice: Vec<_> = (expected.iter())
                .flat_map(|e| [e.clone(), e.clone()])
                .collect();
            assert_eq!(seen, twice, "in blocks of {size}, tagged and not");
        }
    }
}
