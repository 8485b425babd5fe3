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

impl<R: Read> LineReader<R> {
    /// `offset` is the position of `inner` in the stream (for offsets reported back).
    pub fn new(inner: R, offset: u64, max_line: usize) -> Self {
        LineReader {
            inner,
            buf: vec![0; READ_SIZE],
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
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < READ_SIZE / 2 {
            self.buf.resize(self.end + READ_SIZE, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// A reader whose reads were done ahead of time on another thread.
///
/// Copying file data out of the kernel costs as much as parsing it, on a machine with slow
/// memory copies: done on a thread of its own, it overlaps with the parsing of the previous
/// block instead of adding to it. Memory stays bounded by a few blocks in flight.
pub struct Prefetch {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    block: Vec<u8>,
    pos: usize,
    done: bool,
}

/// Starts reading `inner` ahead on a thread of `scope`.
pub fn prefetch<'scope, R: Read + Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    mut inner: R,
) -> Prefetch {
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    scope.spawn(move || {
        loop {
            let mut block = vec![0; READ_SIZE];
            let message = match inner.read(&mut block) {
                Ok(n) => {
                    block.truncate(n);
                    Ok(block)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
            let last = !matches!(&message, Ok(b) if !b.is_empty());
            // A closed channel means the reading side is done (or failed): stop too.
            if tx.send(message).is_err() || last {
                return;
            }
        }
    });
    Prefetch {
        rx,
        block: Vec::new(),
        pos: 0,
        done: false,
    }
}

impl Read for Prefetch {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.block.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(block)) => {
                    self.done = block.is_empty();
                    self.block = block;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.block.len() - self.pos);
        buf[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &[u8], max: usize) -> (Vec<String>, u64) {
        let mut r = LineReader::new(input, 0, max);
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
    fn prefetched_reads_give_the_same_bytes() {
        let input: Vec<u8> = (0..3 * READ_SIZE + 17).map(|i| (i % 251) as u8).collect();
        let mut out = Vec::new();
        std::thread::scope(|scope| {
            let mut reader = prefetch(scope, &input[..]);
            reader.read_to_end(&mut out).unwrap();
        });
        assert!(out == input);
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
