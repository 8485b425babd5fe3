//! Parsed batches: how reading, parsing and storing share the cores.
//!
//! A parse pass has three kinds of work: finding the lines, parsing them, and storing the
//! entries. One thread finds the lines and copies them into a [`RawBatch`] (cheap: a `memchr`
//! and a copy). One or more threads ([`Prepare::parsers`]) parse raw batches side by side,
//! each into a [`Batch`], handing each entry to what the store asked for through its
//! [`Encoder`] (the CSV store encodes its rows there, the SQLite store lays out its rows and
//! numbers strings for its packed copy), without this module knowing any store. The batches
//! reach the sink in input order, whichever parser finished first. Every channel is bounded,
//! so memory stays at a few batches whatever the input size.

use std::any::Any;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use crate::entry::LogEntry;
use crate::format::{LineParser, LogFormat};
use crate::parse::Reject;
use crate::source::{Fill, Line, LineReader};
use crate::zone::LogOffsets;

/// Where a line was read: its number (from 1) and the offset of its first byte in the stream
/// (the decompressed text, for a compressed file). A store that keeps where each row came
/// from (ClickHouse) records it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    pub line: u64,
    pub offset: u64,
}

/// Work a store has the parsing threads do on each entry, beside parsing, so that its own
/// thread (the slowest stage) has less to do. One per parsing thread.
pub trait Encoder: Send {
    /// Takes the next entry of the batch, read at `at`.
    fn push(&mut self, entry: &LogEntry<'_>, at: Position);
    /// What was built from the batch's entries, handed to the store with the batch (see
    /// [`Batch::encoded`]); the encoder is then empty for the next batch.
    fn finish(&mut self) -> Box<dyn Any + Send>;
}

/// Makes the [`Encoder`] of each parsing thread.
pub type MakeEncoder = Arc<dyn Fn() -> Box<dyn Encoder> + Send + Sync>;

/// What a sink asks of the parsing threads: how many to run, and what to do with each batch
/// there, in parallel, rather than on the sink's thread.
#[derive(Clone)]
pub struct Prepare {
    /// Threads that parse. One per core for a sink whose own work is light (CSV: appending
    /// bytes); one for a sink that needs a core of its own (SQLite's inserts take longer than
    /// parsing), so that extra parsers only compete with it.
    pub parsers: usize,
    /// The store's work on each entry ([`Batch::encoded`]): what the batch holds of them.
    pub encoder: Option<MakeEncoder>,
    /// A commit's worth of parsed batches may wait for the store: a store that waits for a
    /// server during its commits asks for it, so that parsing goes on meanwhile (holding about
    /// as much again as the pending commit).
    pub ahead: bool,
}

/// For a run of consecutive lines: how many entries, what the store's encoder built from
/// them, the rejects, and the position reached.
#[derive(Default)]
pub struct Batch {
    /// What the store's encoder built, when it has one.
    encoded: Option<Box<dyn Any + Send>>,
    /// Number of entries.
    count: usize,
    /// The offsets the entries' times were written in, which the store records.
    pub offsets: LogOffsets,
    /// Position, reason and bytes (the head only, for an over-long line) of each reject.
    pub rejects: Vec<(Position, Reject, Vec<u8>)>,
    /// Lines read in this batch (entries and rejects).
    pub lines: u64,
    /// Stream offset just past the last line of the batch.
    pub end_offset: u64,
    /// Number of the last line of the batch.
    pub end_line: u64,
    /// Bytes of an unfinished last line that were left for later.
    pub pending_bytes: u64,
    /// Lines that began with NUL bytes, stripped before parsing. A crash can leave a file
    /// longer than the data that reached the disk (the size was journaled, the blocks were
    /// not); that tail reads as NULs, and the server's next line is appended right after it.
    /// The line itself is whole, so it is kept; the count tells the user the crash happened.
    pub padded_lines: u64,
}

impl Prepare {
    /// Batches that may wait between two stages. None with one parser: the sink is then the
    /// slower stage, and batches queued for it would only hold memory. With more, a few, so
    /// that no parser waits while the sink writes.
    pub fn queue(&self) -> usize {
        2 * (self.parsers.max(1) - 1)
    }

    /// Parsed batches that may wait for the store, with a commit every `batch_lines` lines.
    pub fn waiting(&self, batch_lines: u64) -> usize {
        let commit = match self.ahead {
            true => usize::try_from(batch_lines.div_ceil(BATCH_LINES)).unwrap_or(usize::MAX),
            false => 0,
        };
        self.queue().max(commit)
    }
}

impl Default for Prepare {
    fn default() -> Prepare {
        Prepare {
            parsers: 1,
            encoder: None,
            ahead: false,
        }
    }
}

/// How the parsing threads read lines: in which format, and whom they take for the client.
#[derive(Debug, Clone)]
pub struct Reading {
    pub format: LogFormat,
    pub client: ClientFrom,
    /// What is taken out of each line before it is stored, rejects included.
    pub scrub: crate::privacy::Scrub,
}

impl Default for Reading {
    fn default() -> Reading {
        Reading {
            format: LogFormat::from_arg("combined").expect("a named format"),
            client: ClientFrom::Remote,
            scrub: crate::privacy::Scrub::default(),
        }
    }
}

/// Who a request's client is (`--client`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientFrom {
    /// The address that connected to the server.
    #[default]
    Remote,
    /// The first address of X-Forwarded-For when the line has one (behind a proxy or a load
    /// balancer, every request otherwise comes from it), else the address that connected.
    Forwarded,
}

impl ClientFrom {
    /// Makes the entry's client the one asked for. A first forwarded address that no client
    /// could be (empty, `unknown`, with a space or a control byte: the header is written by
    /// the client itself) leaves the address that connected.
    fn apply(self, entry: &mut LogEntry<'_>) {
        if self == ClientFrom::Forwarded
            && let Some(first) = (entry.extra.forwarded_for.as_deref())
                .and_then(|all| all.split(',').next())
                .map(str::trim)
                .filter(|first| {
                    !first.is_empty()
                        && !matches!(*first, "-" | "unknown")
                        && !first.contains(' ')
                        && crate::parse::may_be_client(first.as_bytes())
                })
        {
            entry.ip = std::borrow::Cow::Owned(first.to_owned());
        }
    }
}

/// Lines per batch: enough to amortise the hand-over, few enough to keep memory small.
pub const BATCH_LINES: u64 = 8192;

/// Bytes of line text after which a batch ends early, so that batches of very long lines
/// (up to the line limit each) still keep memory bounded.
const BATCH_BYTES: usize = 512 << 10;

impl Batch {
    fn push(&mut self, (e, at): (&LogEntry<'_>, Position), encoder: Option<&mut Box<dyn Encoder>>) {
        self.count += 1;
        self.offsets.add(e.utc_offset);
        if let Some(encoder) = encoder {
            encoder.push(e, at);
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count
    }

    /// A batch of `count` entries from which a store's encoder built `encoded`, for the
    /// stores' tests.
    #[cfg(test)]
    pub(crate) fn encoded_as(encoded: Box<dyn Any + Send>, count: usize) -> Batch {
        Batch {
            encoded: Some(encoded),
            count,
            ..Batch::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// What the store's [`Encoder`] built from the entries, if it has one of type `T`.
    pub fn encoded<T: 'static>(&self) -> Option<&T> {
        self.encoded.as_ref()?.downcast_ref()
    }

    /// Takes what the store's [`Encoder`] built, if it is of type `T`: a store that keeps it
    /// until its commit saves a copy.
    pub fn take_encoded<T: 'static>(&mut self) -> Option<T> {
        match self.encoded.take()?.downcast::<T>() {
            Ok(encoded) => Some(*encoded),
            Err(other) => {
                self.encoded = Some(other);
                None
            }
        }
    }
}

/// Lines found but not yet parsed: their bytes in one buffer.
#[derive(Debug, Default)]
struct RawBatch {
    text: Vec<u8>,
    /// Per line: its position, where it lies in `text`, and whether it is only the head of an
    /// over-long line.
    lines: Vec<(Position, usize, usize, bool)>,
    end_offset: u64,
    end_line: u64,
    pending_bytes: u64,
    /// The last header line before the first line (see `LogFormat::header`), which the
    /// parser follows from the batch's start.
    header: Option<Arc<[u8]>>,
}

impl RawBatch {
    fn push(&mut self, at: Position, bytes: &[u8], too_long: bool) {
        let start = self.text.len();
        self.text.extend_from_slice(bytes);
        self.lines.push((at, start, self.text.len(), too_long));
    }

    fn is_full(&self) -> bool {
        self.lines.len() as u64 >= BATCH_LINES || self.text.len() >= BATCH_BYTES
    }

    /// Parses the lines into a batch.
    fn parse(
        self,
        (parser, reading): (&mut LineParser, &Reading),
        encoder: &mut Option<Box<dyn Encoder>>,
    ) -> Batch {
        let scrub = &reading.scrub;
        let mut batch = Batch {
            lines: self.lines.len() as u64,
            end_offset: self.end_offset,
            end_line: self.end_line,
            pending_bytes: self.pending_bytes,
            ..Batch::default()
        };
        parser.follow(self.header.as_ref());
        for &(at, start, end, too_long) in &self.lines {
            let bytes = &self.text[start..end];
            if too_long {
                batch
                    .rejects
                    .push((at, Reject::TooLong, scrub.raw(bytes).into_owned()));
                continue;
            }
            let padding = bytes.iter().take_while(|&&b| b == 0).count();
            if padding > 0 {
                batch.padded_lines += 1;
            }
            match parser.parse(&bytes[padding..]) {
                Ok(mut entry) => {
                    reading.client.apply(&mut entry);
                    scrub.apply(&mut entry);
                    batch.push((&entry, at), encoder.as_mut())
                }
                // The reject keeps the line as read, padding included: rejects are verbatim,
                // but for what the scrub takes out.
                Err(reason) => batch
                    .rejects
                    .push((at, reason, scrub.raw(bytes).into_owned())),
            }
        }
        if let Some(encoder) = encoder {
            batch.encoded = Some(encoder.finish());
        }
        batch
    }
}

/// Reads and parses lines from `reader` and sends them in batches, in order, until the end of
/// input. `first_line` is the number of lines before the reader's position, and `header` the
/// last header line before it (see `LogFormat::header`); `take_partial` says whether an
/// unfinished last line is taken or left. Stops early when the receiver is gone.
pub fn produce<R: Fill + Send>(
    (reader, first_line, header): (LineReader<R>, u64, Option<Arc<[u8]>>),
    (take_partial, prepare, reading): (bool, Prepare, &Reading),
    tx: &SyncSender<std::io::Result<Batch>>,
) {
    /// A raw batch to parse, and where its parser sends the result.
    type Work = (RawBatch, SyncSender<Batch>);
    std::thread::scope(|scope| {
        let (work_tx, work_rx) = sync_channel::<Work>(prepare.queue());
        // In input order: where each batch's result will arrive.
        let (order_tx, order_rx) =
            sync_channel::<std::io::Result<Receiver<Batch>>>(prepare.queue() + 1);
        let work_rx = Arc::new(Mutex::new(work_rx));
        for _ in 0..prepare.parsers.max(1) {
            let work_rx = Arc::clone(&work_rx);
            let prepare = prepare.clone();
            scope.spawn(move || {
                let mut parser = reading.format.parser();
                let mut encoder = prepare.encoder.as_ref().map(|make| make());
                loop {
                    // The lock is held only while waiting for the next raw batch.
                    let next = work_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok((raw, result))) = next else { return };
                    // A closed result channel means the run stopped: drop the batch.
                    let parsed = raw.parse((&mut parser, reading), &mut encoder);
                    let _ = result.send(parsed);
                }
            });
        }
        scope.spawn(move || {
            let send = |raw: RawBatch| {
                let (result_tx, result_rx) = sync_channel(1);
                order_tx.send(Ok(result_rx)).is_ok() && work_tx.send((raw, result_tx)).is_ok()
            };
            let start = (first_line, header);
            if let Err(e) = find_lines(reader, start, &reading.format, take_partial, send) {
                let _ = order_tx.send(Err(e));
            }
        });
        for result in order_rx {
            let batch = result.and_then(|rx| {
                rx.recv()
                    .map_err(|_| std::io::Error::other("a parsing thread failed"))
            });
            let failed = batch.is_err();
            // A closed channel means the receiver stopped: dropping `order_rx` stops the rest.
            if tx.send(batch).is_err() || failed {
                return;
            }
        }
    });
}

/// Splits the input into raw batches and hands each to `send`, which says whether to go on.
/// The last batch (possibly empty) carries the final position. When the format has header
/// lines, each batch carries the last one before it (`header` at first).
fn find_lines<R: Fill>(
    mut reader: LineReader<R>,
    (first_line, mut header): (u64, Option<Arc<[u8]>>),
    format: &LogFormat,
    take_partial: bool,
    send: impl Fn(RawBatch) -> bool,
) -> std::io::Result<()> {
    let headers = format.has_headers();
    let mut line = first_line;
    let mut raw = RawBatch {
        header: header.clone(),
        ..RawBatch::default()
    };
    loop {
        let offset = reader.offset();
        let Some(item) = reader.next_line()? else {
            break;
        };
        line += 1;
        let at = Position { line, offset };
        match item {
            Line::Complete(bytes) => {
                if headers && format.header(bytes) {
                    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
                    header = Some(Arc::from(bytes));
                }
                raw.push(at, bytes, false)
            }
            Line::TooLong { head, .. } => raw.push(at, head, true),
            Line::Partial(bytes) if take_partial => {
                raw.push(at, bytes, false);
                reader.take_partial();
            }
            Line::PartialTooLong { head, .. } if take_partial => {
                raw.push(at, head, true);
                reader.take_partial();
            }
            Line::Partial(bytes) => {
                raw.pending_bytes = bytes.len() as u64;
                line -= 1;
                break;
            }
            Line::PartialTooLong { len, .. } => {
                raw.pending_bytes = len;
                line -= 1;
                break;
            }
        }
        if raw.is_full() {
            raw.end_offset = reader.offset();
            raw.end_line = line;
            // The next batch is likely the same size: reserve that, rather than regrow.
            let next = RawBatch {
                text: Vec::with_capacity(raw.text.capacity()),
                lines: Vec::with_capacity(raw.lines.capacity()),
                header: header.clone(),
                ..RawBatch::default()
            };
            if !send(std::mem::replace(&mut raw, next)) {
                return Ok(());
            }
        }
    }
    raw.end_offset = reader.offset();
    raw.end_line = line;
    send(raw);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: usize) -> String {
        if n % 7 == 3 {
            return format!("garbage {n}\n");
        }
        format!(
            "10.0.0.1 - - [01/Jan/2024:00:00:00 +0000] \"GET /{n} HTTP/1.1\" 200 1 \"-\" \"a\"\n"
        )
    }

    /// The URLs of the lines of `1..=n` that [`line`] makes parseable, in order.
    fn urls_of_good_lines(n: usize) -> Vec<String> {
        (1..=n)
            .filter(|i| i % 7 != 3)
            .map(|i| format!("/{i}"))
            .collect()
    }

    /// Keeps the client and URL of its entries, as a store's encoder keeps what it builds.
    #[derive(Default)]
    struct Kept(Vec<(String, String)>);

    impl Encoder for Kept {
        fn push(&mut self, entry: &LogEntry<'_>, _: Position) {
            self.0.push((entry.ip.to_string(), entry.url.to_string()));
        }
        fn finish(&mut self) -> Box<dyn Any + Send> {
            Box::new(std::mem::take(&mut self.0))
        }
    }

    /// The client and URL of every entry of `batches` (made with the [`Kept`] encoder).
    fn kept(batches: &[Batch]) -> Vec<(String, String)> {
        (batches.iter())
            .flat_map(|b| b.encoded::<Vec<(String, String)>>().unwrap().clone())
            .collect()
    }

    /// Runs [`produce`] over `input` and collects its batches, parsed with the encoder of
    /// `prepare`, or else with [`Kept`].
    fn batches(input: &str, mut prepare: Prepare) -> Vec<Batch> {
        if prepare.encoder.is_none() {
            prepare.encoder = Some(Arc::new(|| Box::new(Kept::default()) as Box<dyn Encoder>));
        }
        let (tx, rx) = sync_channel(2);
        let reader = LineReader::new(input.as_bytes(), 0, 1 << 20);
        let reading = &Reading::default();
        std::thread::scope(|scope| {
            // Moved in: the channel closes when `produce` is done with it.
            scope.spawn(move || produce((reader, 0, None), (true, prepare, reading), &tx));
            rx.iter().map(Result::unwrap).collect()
        })
    }

    #[test]
    fn batches_parsed_side_by_side_arrive_in_input_order() {
        let n = 5 * BATCH_LINES as usize + 123;
        let input: String = (1..=n).map(line).collect();
        let batches = batches(
            &input,
            Prepare {
                parsers: 2,
                ..Prepare::default()
            },
        );
        assert!(batches.len() > 3, "enough batches to run in parallel");

        let urls: Vec<String> = kept(&batches).into_iter().map(|(_, url)| url).collect();
        let expected = urls_of_good_lines(n);
        assert_eq!(urls, expected);
        let rejects: Vec<u64> = batches
            .iter()
            .flat_map(|b| b.rejects.iter().map(|r| r.0.line))
            .collect();
        let expected: Vec<u64> = (1..=n as u64).filter(|i| i % 7 == 3).collect();
        assert_eq!(rejects, expected);

        // Each batch ends where the next begins, and the last at the end of the input.
        let mut last = 0;
        let mut offset = 0;
        for b in &batches {
            assert_eq!(b.end_line, last + b.lines);
            assert_eq!(b.lines as usize, b.len() + b.rejects.len());
            let text: usize = ((last + 1) as usize..=b.end_line as usize)
                .map(|i| line(i).len())
                .sum();
            assert_eq!(b.end_offset, offset + text as u64);
            last = b.end_line;
            offset = b.end_offset;
        }
        assert_eq!(last, n as u64);
        assert_eq!(offset, input.len() as u64);
    }

    /// Keeps the URLs of its entries, as a store's encoder keeps what it builds.
    #[derive(Default)]
    struct Urls(Vec<String>);

    impl Encoder for Urls {
        fn push(&mut self, entry: &LogEntry<'_>, _: Position) {
            self.0.push(entry.url.to_string());
        }
        fn finish(&mut self) -> Box<dyn Any + Send> {
            Box::new(std::mem::take(&mut self.0))
        }
    }

    #[test]
    fn what_encoders_build_arrives_in_input_order() {
        let n = 3 * BATCH_LINES as usize;
        let input: String = (1..=n).map(line).collect();
        let prepare = Prepare {
            parsers: 2,
            encoder: Some(Arc::new(|| Box::new(Urls::default()) as Box<dyn Encoder>)),
            ..Prepare::default()
        };
        let mut batches = batches(&input, prepare);
        let urls: Vec<String> = batches
            .iter()
            .flat_map(|b| b.encoded::<Vec<String>>().unwrap().clone())
            .collect();
        let expected = urls_of_good_lines(n);
        assert_eq!(urls, expected);
        assert_eq!(
            batches.iter().map(Batch::len).sum::<usize>(),
            expected.len()
        );
        // A store may take them: asked for another type, the batch keeps them; taken, they
        // are gone, and the batch still counts its entries.
        let first = &mut batches[0];
        assert!(first.take_encoded::<Vec<u8>>().is_none());
        let taken = first.take_encoded::<Vec<String>>().unwrap();
        assert_eq!(taken, expected[..taken.len()]);
        assert!(first.encoded::<Vec<String>>().is_none());
        assert_eq!(first.len(), taken.len());
    }

    #[test]
    fn long_lines_end_a_batch_early() {
        let long = format!(
            "10.0.0.1 - - [01/Jan/2024:00:00:00 +0000] \"GET /{} HTTP/1.1\" 200 1\n",
            "x".repeat(100_000)
        );
        let input = long.repeat(200);
        let batches = batches(&input, Prepare::default());
        assert!(batches.len() >= 4, "{} batches", batches.len());
        assert!(
            batches
                .iter()
                .all(|b| b.lines as usize <= BATCH_BYTES / 100_000 + 1)
        );
        assert_eq!(batches.iter().map(Batch::len).sum::<usize>(), 200);
    }

    #[test]
    fn nul_padding_before_a_line_is_stripped_and_counted() {
        let good = |url: &str| {
            format!(
                "10.0.0.1 - - [01/Jan/2024:00:00:00 +0000] \"GET {url} HTTP/1.1\" 200 1 \"-\" \"a\"\n"
            )
        };
        let input = [
            "\0".repeat(200) + &good("/after-crash"),
            good("/plain"),
            "\0".to_string() + &good("/one-nul"),
            // Padding stripped, a control byte still in the client: rejected, not stored.
            "\0\0".to_string() + &good("/escape").replacen("10.0.0.1", "10.0.\x1b.1", 1),
            // Padding and nothing after it: an empty line, rejected like any blank line.
            "\0\0\0\n".to_string(),
        ]
        .concat();
        let batches = batches(&input, Prepare::default());

        let entries = kept(&batches);
        let kept = ["/after-crash", "/plain", "/one-nul"].map(|u| ("10.0.0.1".into(), u.into()));
        assert_eq!(entries, kept);
        let rejects: Vec<(u64, Reject, usize)> = batches
            .iter()
            .flat_map(|b| (b.rejects.iter()).map(|(at, r, raw)| (at.line, *r, raw.len())))
            .collect();
        let escape_line = input.lines().nth(3).unwrap().len();
        // Rejects keep the line as read, padding included.
        assert_eq!(
            rejects,
            [(4, Reject::Client, escape_line), (5, Reject::Format, 3)]
        );
        let padded: u64 = batches.iter().map(|b| b.padded_lines).sum();
        assert_eq!(
            padded, 4,
            "every line that began with NULs, kept or rejected"
        );
    }
}
