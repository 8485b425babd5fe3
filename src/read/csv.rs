//! Reading a CSV that parse-to-csv wrote back into rows, for the reports.
//!
//! The file is read once, in blocks of whole records indexed as they are read, on the calling
//! thread; each counting thread gets every block and takes the records of its own share of the
//! clients (see [`super::records`] and [`crate::report::shard`]).

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};

use super::records::{Block, Blocks, Record, Records};
use crate::entry::{COLUMNS, COMBINED_COLUMNS, column};
use crate::parse::parse_stored_time;
use crate::report::count::RowCounter;
use crate::report::shard::{self, Share};
use crate::report::{Counts, Query, Section};
use crate::row::Row;
use crate::zone::LogOffsets;

const IP: usize = column("ip");
const TIMESTAMP: usize = column("timestamp");
const METHOD: usize = column("method");
const URL: usize = column("url");
const STATUS: usize = column("status");
const BYTES: usize = column("bytes");
const REFERRER: usize = column("referrer");
const USER_AGENT: usize = column("user_agent");
const RESPONSE_TIME_US: usize = column("response_time_us");

/// Blocks of about [`super::records::BLOCK`] bytes that may wait for the slowest counting
/// thread. The reader keeps that many and two more in circulation (see
/// [`shard::Feed`]), which is most of what `--report status` holds: one fewer keeps it well
/// within its memory budget.
const BLOCKS_AHEAD: usize = 3;

/// Receives each row read.
pub type Emit<'e> = dyn FnMut(&Row<'_>) + 'e;

/// Reads `parsed_logs.csv`, passing each row to `emit`, in file order, on this thread.
///
/// A property test writes rows through parse-to-csv's encoder (the csv crate's quoting) and
/// holds what this reads back equal to them.
pub fn rows(path: &Path, emit: &mut Emit<'_>) -> anyhow::Result<()> {
    let mut blocks = Blocks::new(open_csv(path)?, 1);
    let records = Records::new(blocks.by_ref().map(Arc::new));
    let result = read_share(path, records, Share::ALL, &AtomicU64::new(u64::MAX), emit);
    read_error(blocks, path)?;
    result.map_err(|(_, e)| e)
}

/// The offsets the rows of the CSV at `path` were written in, as its checkpoint file
/// recorded them (unknown without one: a CSV written by another program).
pub fn log_offsets(path: &Path) -> LogOffsets {
    crate::sink::csv::stored_offsets(path)
}

/// The counts of the entries of `path` that pass the query's filters, for its reports; the
/// rejects report reads the `rejects` file `parse-to-csv --rejects` wrote beside it.
///
/// Only the first error of the file is told: a share stops at its first error, and the
/// others once past it.
pub fn counts(path: &Path, rejects: Option<&Path>, query: &Query) -> anyhow::Result<Counts> {
    super::one_host(query, path)?;
    let rejects = match (query.sections.contains(&Section::Rejects), rejects) {
        (false, _) => Vec::new(),
        (true, Some(file)) => super::rejects::from_file(file)?,
        (true, None) => bail!(
            "the rejects report needs --rejects FILE, the file `parse-to-csv --rejects FILE` \
             wrote: a CSV holds only the lines that were read"
        ),
    };
    let mut counts = rows_counts(path, query)?;
    counts.rejects = rejects;
    Ok(counts)
}

fn rows_counts(path: &Path, query: &Query) -> anyhow::Result<Counts> {
    let file = open_csv(path)?;
    let (wants, stop) = (query.wants(), AtomicU64::new(u64::MAX));
    let (read, results) = shard::fan_out(
        query.threads,
        BLOCKS_AHEAD,
        |feed| {
            let mut blocks = Blocks::new(file, query.threads.max(1));
            while let Some(block) = blocks.next() {
                if !feed.send(block) {
                    break;
                }
                if let Some(spent) = feed.spent() {
                    blocks.give_back(spent);
                }
            }
            read_error(blocks, path)
        },
        |share, blocks| {
            let mut counter = RowCounter::new(wants, &query.filters);
            read_share(path, Records::new(blocks), share, &stop, &mut |row| {
                counter.add(row)
            })?;
            Ok::<_, (u64, anyhow::Error)>(counter.into_counts())
        },
    )?;
    let mut counts = Counts::default();
    let mut error: Option<(u64, anyhow::Error)> = None;
    for result in results {
        match result {
            Ok(other) => counts.add_other_clients(other),
            Err(e) if error.as_ref().is_none_or(|first| e.0 < first.0) => error = Some(e),
            Err(_) => {}
        }
    }
    match error {
        Some((_, e)) => Err(e),
        None => read.map(|()| counts),
    }
}

/// What ended the blocks of `path` early, if anything did.
fn read_error(blocks: Blocks<std::fs::File>, path: &Path) -> anyhow::Result<()> {
    match blocks.error() {
        Some(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        None => Ok(()),
    }
}

fn open_csv(path: &Path) -> anyhow::Result<std::fs::File> {
    if !path.exists() {
        bail!(
            "{} does not exist: fill it first with `parse-to-csv`",
            path.display()
        );
    }
    std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))
}

/// Reads the rows of the clients of `share`, passing each to `emit`. Stops early, with no
/// error, once past record `stop` (another share's first error: only the first error of the
/// file is told). An error comes with the number of its record, also put in `stop` if it
/// comes before; both count the header, as [`Records::number`] does.
fn read_share(
    path: &Path,
    mut records: Records<impl Iterator<Item = Arc<Block>>>,
    share: Share,
    stop: &AtomicU64,
    emit: &mut Emit<'_>,
) -> Result<(), (u64, anyhow::Error)> {
    let result = (|| {
        let Some(header) = records.next_record() else {
            return Ok(());
        };
        // This version's columns, or an earlier version's (the Combined ones only).
        let columns = header.len();
        if ![COLUMNS.len(), COMBINED_COLUMNS].contains(&columns)
            || (0..columns).map(|i| header.field(i)).ne(COLUMNS[..columns]
                .iter()
                .map(|c| Cow::Borrowed(c.as_bytes())))
        {
            bail!(
                "{} is not a log-pipeline CSV (its header is not `{}`)",
                path.display(),
                COLUMNS.join(",")
            );
        }
        // The last time read and its value: consecutive rows mostly share their second.
        let mut last_time = (String::new(), None);
        while let Some(record) = records.next_in(share) {
            if record.number > stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            // Records after the header, counted from 1.
            let number = record.number - 1;
            with_csv_row(&record, columns, &mut last_time, emit)
                .map_err(|e| anyhow::anyhow!("{}: record {number}: {e}", path.display()))?;
        }
        Ok(())
    })();
    result.map_err(|e| {
        let number = records.number();
        stop.fetch_min(number, Ordering::Relaxed);
        (number, e)
    })
}

/// Passes the row of a record of `parsed_logs.csv` (whose header names `columns` columns) to
/// `emit`; `last_time` is the last timestamp read and its value (consecutive rows mostly
/// share their second).
fn with_csv_row(
    record: &Record<'_>,
    columns: usize,
    last_time: &mut (String, Option<DateTime<Utc>>),
    emit: &mut Emit<'_>,
) -> Result<(), String> {
    if record.len() != columns {
        return Err(format!("{} fields instead of {columns}", record.len()));
    }
    // Each field as text, `None` when it is not UTF-8. ident, user and protocol are in no
    // report.
    const READ: [usize; 8] = [
        IP, TIMESTAMP, METHOD, URL, STATUS, BYTES, REFERRER, USER_AGENT,
    ];
    let mut values: [Option<&str>; COLUMNS.len()] = [Some(""); COLUMNS.len()];
    let decoded: [Option<Cow<'_, str>>; COLUMNS.len()];
    let plain = READ.iter().all(|&i| {
        values[i] = record.text(i);
        values[i].is_some()
    });
    if !plain {
        // A field with quotes to decode, or a block that is not all UTF-8.
        decoded = std::array::from_fn(|i| match READ.contains(&i) {
            true => match record.field(i) {
                Cow::Borrowed(bytes) => std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
                Cow::Owned(bytes) => String::from_utf8(bytes).ok().map(Cow::Owned),
            },
            false => None,
        });
        for i in READ {
            values[i] = decoded[i].as_deref();
        }
    }
    let bad = |what: &str| format!("bad {what}");
    let text = |i: usize, what: &str| values[i].ok_or_else(|| bad(what));
    // An optional field: empty means absent; one that is not text, empty.
    let opt = |i: usize| match values[i] {
        Some("") => None,
        value => Some(value.unwrap_or("")),
    };
    let time = text(TIMESTAMP, "timestamp")?;
    // Stored times are 20 bytes: compared as such, the comparison is a few loads instead of a
    // call to `memcmp`, on every row.
    let same = match (
        <&[u8; 20]>::try_from(time.as_bytes()),
        <&[u8; 20]>::try_from(last_time.0.as_bytes()),
    ) {
        (Ok(time), Ok(last)) => time == last,
        _ => last_time.0 == time,
    };
    if !same || last_time.1.is_none() {
        last_time.0.clear();
        last_time.0.push_str(time);
        last_time.1 = parse_stored_time(time);
    }
    let timestamp = last_time.1.ok_or_else(|| bad("timestamp"))?;
    emit(&Row {
        ip: text(IP, "ip")?,
        timestamp: timestamp.timestamp(),
        method: opt(METHOD),
        url: text(URL, "url")?,
        status: (text(STATUS, "status")?.parse().ok()).ok_or_else(|| bad("status"))?,
        bytes: match text(BYTES, "bytes")? {
            "" => None,
            bytes => Some(bytes.parse().map_err(|_| bad("bytes"))?),
        },
        referrer: opt(REFERRER),
        user_agent: opt(USER_AGENT),
        // A CSV of Combined's columns only has no times.
        response_time_us: match columns > RESPONSE_TIME_US {
            false => None,
            true => match &*record.field(RESPONSE_TIME_US) {
                b"" => None,
                us => Some(
                    (std::str::from_utf8(us).ok())
                        .and_then(|us| us.parse().ok())
                        .ok_or_else(|| bad("response_time_us"))?,
                ),
            },
        },
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::LogEntry;
    use crate::sink::csv::{CsvFormat, RowEncoder};
    use proptest::prelude::*;

    /// Text weighted towards what CSV must quote, and beyond ASCII.
    fn text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just(','),
                Just('"'),
                Just('\n'),
                Just('\r'),
                Just(' '),
                Just('é'),
                any::<char>(),
                proptest::char::range('a', 'z')
            ],
            1..30,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    fn entry() -> impl Strategy<Value = LogEntry<'static>> {
        (
            (text(), proptest::option::of(text()), text()),
            (
                0i64..250_000_000_000,
                100u16..600,
                proptest::option::of(any::<u64>()),
            ),
            (proptest::option::of(text()), proptest::option::of(text())),
            proptest::option::of(any::<u64>()),
        )
            .prop_map(
                |((ip, method, url), (secs, status, bytes), (referrer, agent), time)| LogEntry {
                    ip: Cow::Owned(ip),
                    ident: None,
                    user: None,
                    timestamp: DateTime::from_timestamp(secs, 0).unwrap(),
                    utc_offset: None,
                    method: method.map(Cow::Owned),
                    url: Cow::Owned(url),
                    protocol: None,
                    status,
                    bytes,
                    referrer: referrer.map(Cow::Owned),
                    user_agent: agent.map(Cow::Owned),
                    extra: crate::entry::Extra {
                        response_time_us: time,
                        ..Default::default()
                    },
                },
            )
    }

    type OwnedRow = (
        String,
        i64,
        Option<String>,
        String,
        u16,
        Option<u64>,
        Option<String>,
        Option<String>,
        Option<u64>,
    );

    fn owned(r: &Row<'_>) -> OwnedRow {
        let o = |v: Option<&str>| v.map(str::to_owned);
        (
            r.ip.into(),
            r.timestamp,
            o(r.method),
            r.url.into(),
            r.status,
            r.bytes,
            o(r.referrer),
            o(r.user_agent),
            r.response_time_us,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// parse-to-csv writes with the csv crate's quoting and aggregate-csv reads with its
        /// own splitter (see `records`): every row must come back as it went in.
        #[test]
        fn rows_the_csv_sink_writes_read_back_the_same(entries in proptest::collection::vec(entry(), 1..30)) {
            let mut encoder = RowEncoder::new(CsvFormat::default());
            encoder.header();
            for e in &entries {
                encoder.encode(e);
            }
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("parsed_logs.csv");
            std::fs::write(&path, encoder.take()).unwrap();
            let mut rows = Vec::new();
            super::rows(&path, &mut |row| rows.push(owned(row))).unwrap();
            let expected: Vec<OwnedRow> = entries.iter().map(|e| owned(&Row::of(e))).collect();
            prop_assert_eq!(rows, expected);
        }
    }
}
