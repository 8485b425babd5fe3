//! Sources: reading log lines with their byte offsets, from files, `.gz` files and stdin.
//!
//! A line is taken only with its `\n`: a last line without one may still be being written, and
//! the caller decides (settle time, `--final`, a stream that cannot grow) whether to take it.
//! Memory stays bounded whatever the input: a line longer than the limit is skipped while it
//! is read, keeping only its head for the rejects file.

use std::io::{self, Read};

/// One item read from a source.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A line and its `\n` (not included in `bytes`).
    Complete(&'a [u8]),
    /// A line longer than the limit: its first `limit` bytes, and its whole length.
    TooLong { head: &'a [u8], len: u64 },
    /// Bytes after the last `\n` at end of input. Not consumed: call
    /// [`LineReader::take_partial`] to take them as a line.
    Partial(&'a [u8]),
    /// Like [`Line::Partial`], but already longer than the limit.
    PartialTooLong { head: &'a [u8], len: u64 },
}

/// Where a [`LineReader`] gets more bytes. Any reader gives them by copying into the line
/// reader's buffer; [`Prefetch`] hands over the blocks it read instead.
pub trait Fill {
    /// Keeps `buf[*start..*end]` (the bytes not yet taken, which may move) and adds bytes
    /// after them, updating `start` and `end`; `false` when the input has ended.
    fn fill(&mut self, buf: &mut Vec<u8>, start: &mut usize, end: &mut usize) -> io::Result<bool>;
}

impl<R: Read> Fill for R {
    fn fill(&mut self, buf: &mut Vec<u8>, start: &mut usize, end: &mut usize) -> io::Result<bool> {
        if *start > 0 {
            buf.copy_within(*start..*end, 0);
            *end -= *start;
            *start = 0;
        }
        if buf.len() - *end < READ_SIZE / 2 {
            buf.resize(*end + READ_SIZE, 0);
        }
        let n = read_once(self, &mut buf[*end..])?;
        *end += n;
        Ok(n > 0)
    }
}

/// One read into `buf`, tried again when a signal interrupted it.
fn read_once(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            read => return read,
        }
    }
}

/// Splits a byte stream into lines, tracking the stream offset just past the last line taken.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    offset: u64,
    max_line: usize,
    /// The head of the over-long line being skipped.
    head: Vec<u8>,
    /// `Some(n)` while skipping an over-long line, of which `n` bytes were discarded so far.
    long: Option<u64>,
}

const READ_SIZE: usize = 1 << 20;

impl<R: Fill> LineReader<R> {
    /// `offset` is the position of `inner` in the stream (for offsets reported back).
    pub fn new(inner: R, offset: u64, max_line: usize) -> Self {
        LineReader {
            inner,
            // Sized at the first fill: a prefetched source replaces it with a block.
            buf: Vec::new(),
            start: 0,
            end: 0,
            eof: false,
            offset,
            max_line: max_line.max(1),
            head: Vec::new(),
            long: None,
        }
    }

    /// Stream offset just past the last line returned.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next line, or `None` at end of input (after any [`Line::Partial`]).
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        loop {
            if let Some(skipped) = self.long {
                // Inside an over-long line: discard up to its newline, keeping only the head.
                if let Some(pos) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                    let len = skipped + pos as u64;
                    self.start += pos + 1;
                    self.offset += len + 1;
                    self.long = None;
                    return Ok(Some(Line::TooLong {
                        head: &self.head,
                        len,
                    }));
                }
                let len = skipped + (self.end - self.start) as u64;
                if self.eof {
                    return Ok(Some(Line::PartialTooLong {
                        head: &self.head,
                        len,
                    }));
                }
                self.long = Some(len);
                self.start = self.end;
                self.fill()?;
                continue;
            }
            if let Some(pos) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                let line_start = self.start;
                if pos > self.max_line {
                    self.head.clear();
                    self.head
                        .extend_from_slice(&self.buf[line_start..line_start + self.max_line]);
                    self.start += pos + 1;
                    self.offset += pos as u64 + 1;
                    return Ok(Some(Line::TooLong {
                        head: &self.head,
                        len: pos as u64,
                    }));
                }
                self.start += pos + 1;
                self.offset += pos as u64 + 1;
                return Ok(Some(Line::Complete(
                    &self.buf[line_start..line_start + pos],
                )));
            }
            let pending = self.end - self.start;
            if pending > self.max_line {
                self.head.clear();
                self.head
                    .extend_from_slice(&self.buf[self.start..self.start + self.max_line]);
                self.long = Some(0);
                continue;
            }
            if self.eof {
                return Ok((pending > 0).then(|| Line::Partial(&self.buf[self.start..self.end])));
            }
            self.fill()?;
        }
    }

    /// Takes the pending [`Line::Partial`] or [`Line::PartialTooLong`] as a complete line.
    pub fn take_partial(&mut self) {
        let skipped = self.long.take().unwrap_or(0);
        self.offset += skipped + (self.end - self.start) as u64;
        self.start = self.end;
    }

    fn fill(&mut self) -> io::Result<()> {
        if !self
            .inner
            .fill(&mut self.buf, &mut self.start, &mut self.end)?
        {
            self.eof = true;
        }
        Ok(())
    }
}

/// A source whose reads were done ahead of time on another thread.
///
/// Copying file data out of the kernel costs as much as parsing it, on a machine with slow
/// memory copies: done on a thread of its own, it overlaps with the parsing of the previous
/// block instead of adding to it. Memory stays bounded by a few blocks in flight, and the
/// blocks are used again once read: a new one would be zeroed and faulted in each time.
pub struct Prefetch {
    rx: std::sync::mpsc::Receiver<io::Result<(Vec<u8>, usize)>>,
    /// Blocks read, going back to the reading thread.
    spare: std::sync::mpsc::Sender<Vec<u8>>,
    done: bool,
}

/// Room kept before each block's bytes, where the end of the previous block (the start of
/// a line it cut) is copied so that the block can become the line reader's buffer as it is.
/// Longer line starts are rare; they are copied the other way, the block after them.
const HEADROOM: usize = 64 << 10;

/// A block's size: its headroom, then the bytes of one read.
const BLOCK: usize = HEADROOM + READ_SIZE;

/// Starts reading `inner` ahead on a thread of `scope`.
pub fn prefetch<'scope, R: Read + Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    mut inner: R,
) -> Prefetch {
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    let (spare, spares) = std::sync::mpsc::channel::<Vec<u8>>();
    scope.spawn(move || {
        loop {
            let mut block = spares.try_recv().unwrap_or_default();
            // Zeroed once, when new: a block comes back at this length, or shorter.
            block.resize(BLOCK, 0);
            let message = read_once(&mut inner, &mut block[HEADROOM..]).map(|n| (block, n));
            let last = !matches!(&message, Ok((_, n)) if *n > 0);
            // A closed channel means the reading side is done (or failed): stop too.
            if tx.send(message).is_err() || last {
                return;
            }
        }
    });
    Prefetch {
        rx,
        spare,
        done: false,
    }
}

impl Fill for Prefetch {
    fn fill(&mut self, buf: &mut Vec<u8>, start: &mut usize, end: &mut usize) -> io::Result<bool> {
        if self.done {
            return Ok(false);
        }
        let (mut block, n) = match self.rx.recv() {
            Ok(Ok((block, n))) if n > 0 => (block, n),
            Ok(Err(e)) => {
                self.done = true;
                return Err(e);
            }
            Ok(Ok(_)) | Err(_) => {
                self.done = true;
                return Ok(false);
            }
        };
        let pending = *end - *start;
        let old = if pending <= HEADROOM {
            let at = HEADROOM - pending;
            block[at..HEADROOM].copy_from_slice(&buf[*start..*end]);
            *start = at;
            *end = HEADROOM + n;
            std::mem::replace(buf, block)
        } else {
            if *start > 0 {
                buf.copy_within(*start..*end, 0);
            }
            buf.truncate(pending);
            buf.extend_from_slice(&block[HEADROOM..HEADROOM + n]);
            *start = 0;
            *end = buf.len();
            block
        };
        // A buffer grown for a long line is freed, not kept: the blocks in flight stay at
        // their size. The reading thread may have stopped already (at the end of the
        // input): then the block is freed too.
        if old.capacity() <= BLOCK {
            let _ = self.spare.send(old);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &[u8], max: usize) -> (Vec<String>, u64) {
        lines(LineReader::new(input, 0, max))
    }

    /// Every line of `r`, written out, and the offset after the last.
    fn lines<R: Fill>(mut r: LineReader<R>) -> (Vec<String>, u64) {
        let mut out = Vec::new();
        while let Some(line) = r.next_line().unwrap() {
            match line {
                Line::Complete(l) => out.push(String::from_utf8_lossy(l).into_owned()),
                Line::TooLong { head, len } => out.push(format!("LONG({},{len})", head.len())),
                Line::Partial(p) => {
                    out.push(format!("PARTIAL({})", String::from_utf8_lossy(p)));
                    break;
                }
                Line::PartialTooLong { head, len } => {
                    out.push(format!("PARTIAL-LONG({},{len})", head.len()));
                    break;
                }
            }
        }
        (out, r.offset())
    }

    /// The lines of `input` read through [`prefetch`].
    fn prefetched(input: impl Read + Send, max: usize) -> (Vec<String>, u64) {
        std::thread::scope(|scope| lines(LineReader::new(prefetch(scope, input), 0, max)))
    }

    /// Reads of varying lengths, most of them short, as from a pipe or a decompressor.
    struct Short<'a> {
        bytes: &'a [u8],
        turn: usize,
    }

    impl Read for Short<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.turn += 1;
            let n = [1, 70_000, 4096, HEADROOM + 1, 13, READ_SIZE][self.turn % 6];
            let n = n.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    #[test]
    fn lines_offsets_and_partial_tail() {
        assert_eq!(collect(b"a\nbb\n", 10), (vec!["a".into(), "bb".into()], 5));
        assert_eq!(
            collect(b"a\nbb", 10),
            (vec!["a".into(), "PARTIAL(bb)".into()], 2)
        );
        assert_eq!(collect(b"", 10), (vec![], 0));
        assert_eq!(collect(b"\n\n", 10), (vec!["".into(), "".into()], 2));
    }

    #[test]
    fn long_lines_are_skipped_with_their_head() {
        let mut input = b"ok\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 3 * READ_SIZE));
        input.extend_from_slice(b"\nnext\n");
        let (lines, offset) = collect(&input, 100);
        assert_eq!(
            lines,
            vec![
                "ok".to_string(),
                format!("LONG(100,{})", 3 * READ_SIZE),
                "next".into()
            ]
        );
        assert_eq!(offset, input.len() as u64);
        // Within one buffer too.
        assert_eq!(
            collect(b"0123456789abc\nz\n", 5).0,
            vec!["LONG(5,13)".to_string(), "z".into()]
        );
        // An over-long unterminated tail is reported, not consumed.
        let (lines, offset) = collect(b"z\n0123456789abc", 5);
        assert_eq!(lines, vec!["z".to_string(), "PARTIAL-LONG(5,13)".into()]);
        assert_eq!(offset, 2);
    }

    #[test]
    fn prefetched_blocks_give_the_same_lines() {
        // Lines of every length around the headroom and the limit, across many blocks, some
        // cut by a block's end within their first bytes and some far into them.
        let mut input = Vec::new();
        let lengths = [
            0,
            1,
            80,
            4000,
            HEADROOM - 1,
            HEADROOM,
            HEADROOM + 1,
            3 * HEADROOM,
        ];
        for (i, len) in (0..).zip(lengths.into_iter().cycle().take(400)) {
            input.extend((0..len + i % 7).map(|j| b'a' + ((i + j) % 26) as u8));
            input.push(b'\n');
        }
        input.extend_from_slice(b"tail without a line end");
        let limit = 2 * HEADROOM;
        let plain = collect(&input, limit);
        assert!(input.len() > 5 * READ_SIZE);
        assert!(plain.0.iter().any(|l| l.starts_with("LONG")));
        assert!(prefetched(&input[..], limit) == plain);
        let short = Short {
            bytes: &input,
            turn: 0,
        };
        assert!(prefetched(short, limit) == plain);
    }

    #[test]
    fn a_line_cut_at_the_headroom_is_whole() {
        // A line that starts the headroom's length before the first block's end, a byte
        // nearer or a byte further: copied into the next block's headroom, filling it, or
        // the next block copied after it.
        for before in [HEADROOM - 1, HEADROOM, HEADROOM + 1] {
            let mut input = vec![b'a'; READ_SIZE - before - 1];
            input.push(b'\n');
            input.extend((0..2 * HEADROOM).map(|i| b'b' + (i % 7) as u8));
            input.extend_from_slice(b"\nlast\n");
            let plain = collect(&input, 4 * HEADROOM);
            assert_eq!(plain.0.len(), 3);
            assert!(prefetched(&input[..], 4 * HEADROOM) == plain, "{before}");
        }
    }

    #[test]
    fn reads_across_buffer_boundaries() {
        let line = "x".repeat(1000);
        let input: String = (0..3000).map(|_| format!("{line}\n")).collect();
        let (lines, offset) = collect(input.as_bytes(), 4096);
        assert_eq!(lines.len(), 3000);
        assert!(lines.iter().all(|l| l == &line));
        assert_eq!(offset, input.len() as u64);
    }
}
