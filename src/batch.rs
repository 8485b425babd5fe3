//! Parsed batches: how reading and parsing run on one core while the sink writes on the other.
//!
//! A parse pass is two loops that each take about half the time: reading and parsing lines,
//! and storing entries (SQLite inserts, CSV encoding). The reading side fills a [`Batch`] (the
//! text of many entries in one string, the entries as spans into it) and hands it over a
//! bounded channel, so memory stays at a few batches whatever the input size.

use std::io::Read;
use std::sync::mpsc::SyncSender;

use chrono::{DateTime, Utc};

use crate::entry::LogEntry;
use crate::parse::{Reject, parse_line};
use crate::source::{Line, LineReader};

/// Where a string lies in an [`Arena`].
pub type Span = (u32, u32);

/// Many strings appended to one buffer and referred to by [`Span`]s: the text of thousands of
/// rows in one reused allocation, instead of one allocation per field.
#[derive(Debug, Default)]
pub struct Arena {
    text: String,
}

impl Arena {
    pub fn push(&mut self, value: Option<&str>) -> Option<Span> {
        value.map(|v| {
            let start = self.text.len() as u32;
            self.text.push_str(v);
            (start, self.text.len() as u32)
        })
    }

    pub fn get(&self, span: Option<Span>) -> Option<&str> {
        span.map(|(a, b)| &self.text[a as usize..b as usize])
    }

    pub fn clear(&mut self) {
        self.text.clear();
    }
}

/// One parsed entry, its text held by its [`Batch`].
#[derive(Debug, Clone, Copy)]
struct Spans {
    text: [Option<Span>; 8],
    timestamp: DateTime<Utc>,
    status: u16,
    bytes: Option<u64>,
}

/// Entries, rejects and the position reached, for a run of consecutive lines.
#[derive(Debug, Default)]
pub struct Batch {
    text: Arena,
    entries: Vec<Spans>,
    /// Line number, reason and bytes (the head only, for an over-long line) of each reject.
    pub rejects: Vec<(u64, Reject, Vec<u8>)>,
    /// Lines read in this batch (entries and rejects).
    pub lines: u64,
    /// Stream offset just past the last line of the batch.
    pub end_offset: u64,
    /// Number of the last line of the batch.
    pub end_line: u64,
    /// Bytes of an unfinished last line that were left for later.
    pub pending_bytes: u64,
    /// The entries' strings numbered for the packed copy, when the sink keeps one.
    pub keys: Option<crate::packed::BatchKeys>,
}

/// Lines per batch: enough to amortise the hand-over, few enough to keep memory small.
pub const BATCH_LINES: u64 = 8192;

impl Batch {
    fn push(&mut self, e: &LogEntry<'_>) {
        let mut span = |value: Option<&str>| self.text.push(value);
        let spans = [
            span(Some(&e.ip)),
            span(e.ident.as_deref()),
            span(e.user.as_deref()),
            span(e.method.as_deref()),
            span(Some(&e.url)),
            span(e.protocol.as_deref()),
            span(e.referrer.as_deref()),
            span(e.user_agent.as_deref()),
        ];
        self.entries.push(Spans {
            text: spans,
            timestamp: e.timestamp,
            status: e.status,
            bytes: e.bytes,
        });
        if let Some(keys) = &mut self.keys {
            keys.push(&crate::report::Row::of(e));
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, borrowed from the batch.
    pub fn entries(&self) -> impl Iterator<Item = LogEntry<'_>> {
        let text = |s: Option<Span>| self.text.get(s).map(std::borrow::Cow::Borrowed);
        self.entries.iter().map(move |s| LogEntry {
            ip: text(s.text[0]).unwrap_or_default(),
            ident: text(s.text[1]),
            user: text(s.text[2]),
            timestamp: s.timestamp,
            method: text(s.text[3]),
            url: text(s.text[4]).unwrap_or_default(),
            protocol: text(s.text[5]),
            status: s.status,
            bytes: s.bytes,
            referrer: text(s.text[6]),
            user_agent: text(s.text[7]),
        })
    }
}

/// Reads and parses lines from `reader` and sends them in batches until the end of input.
/// `first_line` is the number of lines before the reader's position; `take_partial` says
/// whether an unfinished last line is taken or left; `keys`, whether batches carry
/// [`crate::packed::BatchKeys`]. Stops early when the receiver is gone.
pub fn produce<R: Read>(
    mut reader: LineReader<R>,
    first_line: u64,
    (take_partial, keys): (bool, bool),
    tx: &SyncSender<std::io::Result<Batch>>,
) {
    let new_batch = || Batch {
        keys: keys.then(crate::packed::BatchKeys::default),
        ..Batch::default()
    };
    let mut line = first_line;
    let mut batch = new_batch();
    loop {
        let item = match reader.next_line() {
            Ok(item) => item,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        let Some(item) = item else { break };
        line += 1;
        match item {
            Line::Complete(bytes) => match parse_line(bytes) {
                Ok(entry) => batch.push(&entry),
                Err(reason) => batch.rejects.push((line, reason, bytes.to_vec())),
            },
            Line::TooLong { head, .. } => {
                batch.rejects.push((line, Reject::TooLong, head.to_vec()))
            }
            Line::Partial(bytes) if take_partial => {
                let owned = bytes.to_vec();
                reader.take_partial();
                match parse_line(&owned) {
                    Ok(entry) => batch.push(&entry),
                    Err(reason) => batch.rejects.push((line, reason, owned.clone())),
                }
            }
            Line::PartialTooLong { head, .. } if take_partial => {
                let head = head.to_vec();
                reader.take_partial();
                batch.rejects.push((line, Reject::TooLong, head));
            }
            Line::Partial(bytes) => {
                batch.pending_bytes = bytes.len() as u64;
                line -= 1;
                break;
            }
            Line::PartialTooLong { len, .. } => {
                batch.pending_bytes = len;
                line -= 1;
                break;
            }
        }
        batch.lines += 1;
        if batch.lines >= BATCH_LINES {
            batch.end_offset = reader.offset();
            batch.end_line = line;
            if tx
                .send(Ok(std::mem::replace(&mut batch, new_batch())))
                .is_err()
            {
                return;
            }
        }
    }
    batch.end_offset = reader.offset();
    batch.end_line = line;
    let _ = tx.send(Ok(batch));
}
