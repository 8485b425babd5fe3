//! The ClickHouse store's writer: exactly once without transactions.
//!
//! ClickHouse has no transaction spanning two INSERTs, but it applies one INSERT that forms
//! one block of one partition as one part, whole or not at all. So a commit is exactly one
//! INSERT: the batch's entries, its rejects, and, as its last row, a progress row holding this
//! host's checkpoints after the commit (the same checkpoints a SQLite store keeps in its
//! `checkpoints` table), its sequence number and a random id. Every row of the INSERT carries
//! one `day`, the partition (the latest day of its entries), and the INSERT is one block of
//! the Native format, so that the server writes one part.
//!
//! A writer that starts (or starts a pass, or retries a failed commit) first waits until no
//! INSERT of its host is still running on the server, then reads its host's last progress row
//! and resumes from it: an INSERT that landed is seen, one that did not is sent again. One
//! that was cut short by the writer's death never lands: connections are closed abortively
//! (see [`crate::clickhouse::http`]). Two writers of one host take turns through a local
//! lock, as SQLite writers do; different hosts never share a row, a progress row or a lock.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::{Origin, Rejected, Sink, Update};
use crate::batch::{Batch, Encoder, Position, Prepare};
use crate::checkpoint::{Checkpoint, fnv1a};
use crate::clickhouse::{self, COLUMNS, Client, Failure, Kind, Tables, quote};
use crate::entry::{self, LogEntry};
use crate::zone::LogOffsets;

/// How long a commit keeps trying through a server that is down or restarting.
const PATIENCE: Duration = Duration::from_secs(60);

/// A host's progress, as its last progress row holds it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct State {
    /// Commits of this host so far; the next is `seq + 1`.
    seq: u64,
    /// Which commit this is (see [`ClickHouseSink::commit`]).
    id: u64,
    checkpoints: BTreeMap<String, Checkpoint>,
    /// The `--log-format` of each source, saved with its checkpoint.
    formats: BTreeMap<String, String>,
    scrubbed: Option<String>,
    /// The offsets this host's entries were written in ([`LogOffsets::to_setting`]).
    offsets: Option<String>,
}

impl State {
    /// The log format saved with the checkpoint of `source`: `None` without a checkpoint.
    fn format_of(&self, source: &str) -> Option<String> {
        let format = self.formats.get(source).map_or("combined", String::as_str);
        self.checkpoints
            .contains_key(source)
            .then(|| format.to_owned())
    }
}

/// The columns the commit puts before each row's: the commit's own, then its origin's.
const PREFIX: [&str; 6] = ["host", "seq", "day", "source", "file_dev", "file_inode"];

/// The columns each row brings, in the order of the INSERT after [`PREFIX`]: its kind, the
/// entry's [`entry::COLUMNS`], then where it was read and a reject's or a progress row's own.
/// With PREFIX, every column of the table.
fn row_columns() -> impl Iterator<Item = &'static str> {
    let after = ["line", "byte_offset", "reason", "state"];
    std::iter::once("kind").chain(entry::COLUMNS).chain(after)
}

/// How many columns each row brings.
const ROW: usize = 1 + entry::COLUMNS.len() + 4;

/// The index in [`row_columns`] of the entry's column `name`, at compile time.
const fn of_entry(name: &str) -> usize {
    1 + entry::column(name)
}

const KIND: usize = 0;
const IP: usize = of_entry("ip");
const IDENT: usize = of_entry("ident");
const USER: usize = of_entry("user");
const TIMESTAMP: usize = of_entry("timestamp");
const METHOD: usize = of_entry("method");
const URL: usize = of_entry("url");
const PROTOCOL: usize = of_entry("protocol");
const STATUS: usize = of_entry("status");
const BYTES: usize = of_entry("bytes");
const REFERRER: usize = of_entry("referrer");
const USER_AGENT: usize = of_entry("user_agent");
const VHOST: usize = of_entry("vhost");
const PORT: usize = of_entry("port");
const RESPONSE_TIME_US: usize = of_entry("response_time_us");
const UPSTREAM_TIME_US: usize = of_entry("upstream_time_us");
const FORWARDED_FOR: usize = of_entry("forwarded_for");
const LINE: usize = 1 + entry::COLUMNS.len();
const BYTE_OFFSET: usize = LINE + 1;
const REASON: usize = LINE + 2;
const STATE: usize = LINE + 3;

/// The columns of an INSERT, in the order of its block: [`PREFIX`], then [`row_columns`].
fn insert_columns() -> Vec<&'static str> {
    PREFIX.into_iter().chain(row_columns()).collect()
}

/// The type of column `name` in the table.
fn type_of(name: &str) -> &'static str {
    let column = COLUMNS.iter().find(|(n, _)| *n == name);
    column
        .expect("every column of an INSERT is one of COLUMNS")
        .1
}

/// One column of a block in ClickHouse's Native format: for a Nullable column its null map
/// (a byte per row, 1 for NULL), then the values of every row (a NULL's is the type's
/// default). A String is its length (LEB128) and its bytes; integers are little-endian.
#[derive(Default)]
struct Column {
    nulls: Vec<u8>,
    values: Vec<u8>,
}

impl Column {
    fn string(&mut self, value: &[u8]) {
        string(value, &mut self.values);
    }

    fn nullable_string(&mut self, value: Option<&str>) {
        self.nulls.push(u8::from(value.is_none()));
        self.string(value.map_or(&[][..], str::as_bytes));
    }

    fn fixed(&mut self, value: &[u8]) {
        self.values.extend_from_slice(value);
    }

    fn nullable_fixed<const N: usize>(&mut self, value: Option<[u8; N]>) {
        self.nulls.push(u8::from(value.is_none()));
        self.fixed(&value.unwrap_or([0; N]));
    }
}

fn string(value: &[u8], out: &mut Vec<u8>) {
    varint(value.len() as u64, out);
    out.extend_from_slice(value);
}

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Rows in the columns of [`row_columns`], as a Native block holds them. Columns rather than rows
/// (RowBinary): the server then copies each column whole instead of reading value after value,
/// and it takes the body as one block as sent, not cut at a block size of its own.
#[derive(Default)]
struct Rows {
    columns: [Column; ROW],
    count: usize,
    /// Latest time of the entries, in seconds since the epoch.
    latest: Option<i64>,
}

impl Rows {
    /// Adds one entry, read at `at`.
    fn entry(&mut self, e: &LogEntry<'_>, at: Position) {
        let ts = e.timestamp.timestamp();
        self.latest = Some(self.latest.map_or(ts, |l| l.max(ts)));
        let c = &mut self.columns;
        c[KIND].fixed(&[Kind::Entry as u8]);
        c[IP].string(e.ip.as_bytes());
        c[IDENT].nullable_string(e.ident.as_deref());
        c[USER].nullable_string(e.user.as_deref());
        c[TIMESTAMP].fixed(&ts.to_le_bytes());
        c[METHOD].nullable_string(e.method.as_deref());
        c[URL].string(e.url.as_bytes());
        c[PROTOCOL].nullable_string(e.protocol.as_deref());
        c[STATUS].fixed(&e.status.to_le_bytes());
        c[BYTES].nullable_fixed(e.bytes.map(u64::to_le_bytes));
        c[REFERRER].nullable_string(e.referrer.as_deref());
        c[USER_AGENT].nullable_string(e.user_agent.as_deref());
        c[VHOST].nullable_string(e.extra.vhost.as_deref());
        c[PORT].nullable_fixed(e.extra.port.map(u16::to_le_bytes));
        c[RESPONSE_TIME_US].nullable_fixed(e.extra.response_time_us.map(u64::to_le_bytes));
        c[UPSTREAM_TIME_US].nullable_fixed(e.extra.upstream_time_us.map(u64::to_le_bytes));
        c[FORWARDED_FOR].nullable_string(e.extra.forwarded_for.as_deref());
        self.end(at, "", "");
    }

    /// Adds a row that is not an entry: every entry column empty or absent, the raw bytes of
    /// a reject in `url`.
    fn other(&mut self, kind: Kind, at: Position, reason: &str, raw: &[u8], state: &str) {
        let c = &mut self.columns;
        c[KIND].fixed(&[kind as u8]);
        c[IP].string(b"");
        for column in [IDENT, USER, METHOD, PROTOCOL, REFERRER, USER_AGENT, VHOST] {
            c[column].nullable_string(None);
        }
        c[TIMESTAMP].fixed(&0i64.to_le_bytes());
        c[URL].string(raw);
        c[STATUS].fixed(&0u16.to_le_bytes());
        for column in [BYTES, RESPONSE_TIME_US, UPSTREAM_TIME_US] {
            c[column].nullable_fixed::<8>(None);
        }
        c[PORT].nullable_fixed::<2>(None);
        c[FORWARDED_FOR].nullable_string(None);
        self.end(at, reason, state);
    }

    /// The columns every row has last.
    fn end(&mut self, at: Position, reason: &str, state: &str) {
        let c = &mut self.columns;
        c[LINE].fixed(&at.line.to_le_bytes());
        c[BYTE_OFFSET].fixed(&at.offset.to_le_bytes());
        c[REASON].string(reason.as_bytes());
        c[STATE].string(state.as_bytes());
        self.count += 1;
    }

    /// Empties the rows, keeping their room.
    fn clear(&mut self) {
        for column in &mut self.columns {
            column.nulls.clear();
            column.values.clear();
        }
        self.count = 0;
        self.latest = None;
    }

    /// Empty rows with room for as many bytes as these have: the next batch is about as large.
    fn like(&self) -> Rows {
        let mut rows = Rows::default();
        for (column, was) in rows.columns.iter_mut().zip(&self.columns) {
            column.nulls.reserve(was.nulls.len());
            column.values.reserve(was.values.len());
        }
        rows
    }
}

/// Rows of commits sent, emptied, for the encoders to fill again: memory already mapped and
/// touched, where new buffers would cost the parsing threads a page fault every 4 KiB.
type Spare = std::sync::Arc<std::sync::Mutex<Vec<Rows>>>;

/// Encodes entries into [`Rows`], in the parsing threads.
struct RowEncoder {
    rows: Rows,
    spare: Spare,
}

impl Encoder for RowEncoder {
    fn push(&mut self, e: &LogEntry<'_>, at: Position) {
        self.rows.entry(e, at);
    }

    fn finish(&mut self) -> Box<dyn std::any::Any + Send> {
        let spare = self.spare.lock().ok().and_then(|mut s| s.pop());
        let next = spare.unwrap_or_else(|| self.rows.like());
        Box::new(std::mem::replace(&mut self.rows, next))
    }
}

/// Where rows were read: a source and the file's device and inode.
struct Read {
    source: String,
    file: (u64, u64),
}

impl Read {
    fn of(origin: Origin<'_>) -> Read {
        Read {
            source: origin.source.to_owned(),
            file: Read::file(origin),
        }
    }

    /// Whether rows read from `origin` were read here (without making a [`Read`] of it:
    /// asked for every rejected line).
    fn is(&self, origin: Origin<'_>) -> bool {
        self.source == origin.source && self.file == Read::file(origin)
    }

    /// The file's device and inode; both 0 for a source that is no file (stdin).
    fn file(origin: Origin<'_>) -> (u64, u64) {
        origin.file.unwrap_or((0, 0))
    }
}

/// Rows read in one place, and where.
struct Chunk {
    read: Read,
    rows: Rows,
}

/// What one commit sends: the rows of `chunks`, then its progress row (read nowhere), each
/// after the commit's [`PREFIX`] columns.
struct Commit<'a> {
    host: &'a str,
    seq: u64,
    /// The partition: days since the epoch.
    day: u16,
    chunks: &'a [Chunk],
    progress: &'a Rows,
}

impl<'a> Commit<'a> {
    /// The commit as one block of the Native format, as an HTTP body carries it (the number of
    /// columns and of rows, then each column's name, type and values), in pieces: what the
    /// commit adds is built in `buf`, the rows' own columns are sent from where they are.
    fn block(&self, buf: &'a mut Vec<u8>) -> Vec<&'a [u8]> {
        buf.clear();
        let nowhere = Read {
            source: String::new(),
            file: (0, 0),
        };
        let mut reads: Vec<(&Read, usize)> = self
            .chunks
            .iter()
            .map(|c| (&c.read, c.rows.count))
            .collect();
        reads.push((&nowhere, self.progress.count));
        let rows: usize = reads.iter().map(|(_, n)| n).sum();
        varint((PREFIX.len() + ROW) as u64, buf);
        varint(rows as u64, buf);
        let header = |name: &str, buf: &mut Vec<u8>| {
            string(name.as_bytes(), buf);
            string(type_of(name).as_bytes(), buf);
        };
        for name in PREFIX {
            header(name, buf);
            let mut each =
                |value: &[u8], n: usize| (0..n).for_each(|_| buf.extend_from_slice(value));
            match name {
                "host" => each(&with_length(self.host.as_bytes()), rows),
                "seq" => each(&self.seq.to_le_bytes(), rows),
                "day" => each(&self.day.to_le_bytes(), rows),
                "source" => reads
                    .iter()
                    .for_each(|(r, n)| each(&with_length(r.source.as_bytes()), *n)),
                "file_dev" => reads
                    .iter()
                    .for_each(|(r, n)| each(&r.file.0.to_le_bytes(), *n)),
                "file_inode" => reads
                    .iter()
                    .for_each(|(r, n)| each(&r.file.1.to_le_bytes(), *n)),
                _ => unreachable!("PREFIX has no other column"),
            }
        }
        let mut headers = vec![buf.len()];
        for name in row_columns() {
            header(name, buf);
            headers.push(buf.len());
        }
        let buf: &'a [u8] = buf;
        let mut pieces = vec![&buf[..headers[0]]];
        let all = || self.chunks.iter().map(|c| &c.rows).chain([self.progress]);
        for (i, at) in headers.windows(2).enumerate() {
            pieces.push(&buf[at[0]..at[1]]);
            pieces.extend(all().map(|r| &r.columns[i].nulls[..]));
            pieces.extend(all().map(|r| &r.columns[i].values[..]));
        }
        pieces.retain(|p| !p.is_empty());
        pieces
    }
}

/// A String value of the Native format: its length, then its bytes.
fn with_length(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 2);
    string(value, &mut out);
    out
}

/// The last progress row of `host`: where its writers resume.
fn last_state(tables: &Tables, host: &str) -> Result<State, Failure> {
    let answer = tables.client.query(&format!(
        "SELECT state FROM {} WHERE host = {} AND kind = {} ORDER BY seq DESC LIMIT 1 \
         FORMAT TabSeparated",
        tables.logs(),
        quote(host),
        Kind::Progress as u8
    ))?;
    let line = answer.strip_suffix(b"\n").unwrap_or(&answer);
    if line.is_empty() {
        return Ok(State::default());
    }
    let mut json = Vec::new();
    clickhouse::tsv_unescape(line, &mut json);
    serde_json::from_slice(&json).map_err(|e| {
        Failure::Invalid(format!(
            "{}: the progress row of host {host} cannot be read: {e}",
            tables.client.address()
        ))
    })
}

/// The log format saved with the checkpoint of `source` by the writers of `host`, if any.
pub fn saved_format(tables: &Tables, host: &str, source: &str) -> Option<String> {
    last_state(tables, host).ok()?.format_of(source)
}

/// The writer of one host into a ClickHouse database.
pub struct ClickHouseSink {
    tables: Tables,
    host: String,
    /// Hash of the database and the host, in the ids of its INSERTs: a server refuses an id
    /// that a running query has, and one host may write into two databases of one server.
    host_tag: String,
    state: State,
    /// Rows of the pending commit, as the parsing threads encoded them.
    pending: Vec<Chunk>,
    /// Where a commit builds what it sends, kept from one to the next.
    buf: Vec<u8>,
    spare: Spare,
    pending_offsets: LogOffsets,
    log_format: String,
    scrubbed: Option<String>,
    notify: Box<dyn FnMut(String)>,
    /// How long a request is retried through a server that cannot be reached.
    patience: Duration,
}

impl ClickHouseSink {
    /// Opens the database for `host`, creating the tables where missing, and reads the host's
    /// progress. The caller holds the host's lock. A server that cannot be reached fails the
    /// opening at once, unless `wait_at_start` (a follower, started with the machine, may
    /// start before its server); once open, every request is retried for a while.
    pub fn open(
        tables: Tables,
        host: &str,
        notify: Box<dyn FnMut(String)>,
        wait_at_start: bool,
    ) -> anyhow::Result<ClickHouseSink> {
        let mut sink = ClickHouseSink {
            host: host.to_owned(),
            host_tag: format!(
                "{:016x}",
                fnv1a(format!("{}\0{host}", tables.client.address().database).as_bytes())
            ),
            state: State::default(),
            pending: Vec::new(),
            buf: Vec::new(),
            spare: Spare::default(),
            pending_offsets: LogOffsets::Unknown,
            log_format: "combined".into(),
            scrubbed: None,
            notify,
            tables,
            patience: match wait_at_start {
                true => PATIENCE,
                false => Duration::ZERO,
            },
        };
        sink.patiently("cannot create the tables", |s| s.tables.create())?;
        sink.reload()?;
        sink.patience = PATIENCE;
        Ok(sink)
    }

    fn describe_address(&self) -> String {
        self.tables.client.address().to_string()
    }

    /// Runs `attempt` until it succeeds or fails for good, saying (once) when it retries.
    fn patiently<T>(
        &mut self,
        what: &str,
        mut attempt: impl FnMut(&mut Self) -> Result<T, Failure>,
    ) -> anyhow::Result<T> {
        let address = self.describe_address();
        let mut notify = std::mem::replace(&mut self.notify, Box::new(|_| {}));
        let mut said = false;
        let patience = self.patience;
        let result = clickhouse::with_retries(
            patience,
            &mut |e, _| {
                if !std::mem::replace(&mut said, true) {
                    notify(format!(
                        "{address}: {e}: trying again for up to {}s",
                        patience.as_secs()
                    ));
                }
            },
            || attempt(self),
        );
        self.notify = notify;
        result.map_err(|e| match e {
            // Our own refusals carry their whole message.
            Failure::Invalid(message) => anyhow::anyhow!("{message}"),
            e => anyhow::anyhow!("{address}: {what}: {e}"),
        })
    }

    /// Waits until no INSERT of this host runs on the server, then reads the host's progress.
    fn reload(&mut self) -> anyhow::Result<()> {
        let state = self.patiently("cannot read this host's progress", |s| {
            s.wait_idle()?;
            s.last_state()
        })?;
        self.state = state;
        Ok(())
    }

    fn query_id(&self, seq: u64) -> String {
        format!("log-pipeline-{}-{seq}", self.host_tag)
    }

    /// Until no server runs an INSERT of this host: one sent by a writer that died may still
    /// be running, and what it does must be seen before progress is read. With a cluster,
    /// every node is asked, for the INSERT itself and for the part it passed on to a shard (a
    /// node that cannot be reached runs nothing).
    fn wait_idle(&self) -> Result<(), Failure> {
        // Also the ids of the writers before the database was in them (the host's hash
        // alone): one may still be sending when this one starts after an update.
        let older = format!("{:016x}", fnv1a(self.host.as_bytes()));
        let ids: Vec<String> = [&self.host_tag, &older]
            .iter()
            .map(|tag| quote(&format!("log-pipeline-{tag}-%")))
            .flat_map(|id| {
                [
                    format!("query_id LIKE {id}"),
                    format!("initial_query_id LIKE {id}"),
                ]
            })
            .collect();
        let sql = format!(
            "SELECT count() FROM system.processes WHERE {}",
            ids.join(" OR ")
        );
        let address = self.tables.client.address();
        let nodes: Vec<Client> = match self.tables.cluster {
            None => vec![self.tables.client.clone()],
            Some(_) => address.node_clients(),
        };
        let mut pause = Duration::from_millis(5);
        loop {
            let mut running = false;
            for node in &nodes {
                match node.query(&sql) {
                    Ok(n) => running |= String::from_utf8_lossy(&n).trim() != "0",
                    // A node of a cluster that is down runs nothing; a lone server must answer.
                    Err(Failure::Unreachable(_)) if nodes.len() > 1 => {}
                    Err(e) => return Err(e),
                }
            }
            if !running {
                return Ok(());
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    fn last_state(&self) -> Result<State, Failure> {
        last_state(&self.tables, &self.host)
    }

    /// Sends one commit: `body` is its block, in pieces; `next` is the state it records.
    fn send(&mut self, body: &[&[u8]], next: &State) -> anyhow::Result<()> {
        let columns: Vec<String> = insert_columns().iter().map(|n| format!("`{n}`")).collect();
        // One block, so one part: the whole INSERT or nothing.
        let insert = format!(
            "INSERT INTO {} ({}) FORMAT Native",
            self.tables.logs(),
            columns.join(", ")
        );
        let mut settings = vec![];
        if self.tables.cluster.is_some() {
            // Through the Distributed table, the INSERT is done only when the shard has it.
            settings.push(("insert_distributed_sync", "1".to_string()));
        }
        let query_id = self.query_id(next.seq);
        let before = self.state.seq;
        // Once an attempt may have reached the server, no other is sent before the progress
        // says that it did not land: also when asking fails, and the attempt after asks again.
        let mut maybe_landed = false;
        self.patiently("cannot store the batch", |s| {
            if maybe_landed {
                s.wait_idle()?;
                let now = s.last_state()?;
                if now.seq == next.seq && now.id == next.id {
                    return Ok(());
                }
                if now.seq != before {
                    return Err(s.another_writer());
                }
            }
            maybe_landed = true;
            // A failure worth retrying is retried; the attempt after it asks first.
            s.tables.client.insert(&insert, body, &settings, &query_id)
        })
    }

    /// The rows where rows read from `origin` go next.
    fn rows_of(&mut self, origin: Origin<'_>) -> &mut Rows {
        if !self.pending.last().is_some_and(|c| c.read.is(origin)) {
            self.pending.push(Chunk {
                read: Read::of(origin),
                rows: Rows::default(),
            });
        }
        &mut self
            .pending
            .last_mut()
            .expect("the last chunk is of `origin`")
            .rows
    }

    fn another_writer(&self) -> Failure {
        Failure::Invalid(format!(
            "{}: another writer of host {} committed while this one did (is a log-pipeline \
             on another machine using --host {}?); nothing of this batch was stored",
            self.describe_address(),
            self.host,
            self.host
        ))
    }

    /// For `--retain`: drops the days before `before`'s (UTC) day, but the partitions that
    /// hold a host's last progress row (a writer resumes from it). Returns the days dropped
    /// (on one shard or more).
    pub fn retain(&mut self, before: chrono::DateTime<chrono::Utc>) -> anyhow::Result<u64> {
        let address = self.tables.client.address().clone();
        let cutoff = before.date_naive().format("%Y-%m-%d").to_string();
        let mut dropped = std::collections::BTreeSet::new();
        for node in address.node_clients() {
            let said = |e: Failure| anyhow::anyhow!("{}: --retain: {e}", node.address());
            let parts = node
                .query(&format!(
                    "SELECT DISTINCT partition FROM system.parts WHERE database = {} AND \
                     table = 'logs' AND active AND max_date < toDate({}) FORMAT TabSeparated",
                    quote(&address.database),
                    quote(&cutoff)
                ))
                .map_err(said)?;
            for part in String::from_utf8_lossy(&parts).lines() {
                // Asked of each day just before it is dropped, not once for all: another host
                // may have committed its progress into an old day since (a backfill).
                let progress = node
                    .query(&format!(
                        "SELECT count() FROM logs WHERE kind = {} AND day = toDate({}) AND \
                         (host, seq) IN (SELECT host, max(seq) FROM logs WHERE kind = {0} \
                         GROUP BY host)",
                        Kind::Progress as u8,
                        quote(part)
                    ))
                    .map_err(said)?;
                if String::from_utf8_lossy(&progress).trim() != "0" {
                    continue;
                }
                node.query(&format!("ALTER TABLE logs DROP PARTITION {}", quote(part)))
                    .map_err(said)?;
                dropped.insert(part.to_owned());
            }
        }
        Ok(dropped.len() as u64)
    }
}

impl Sink for ClickHouseSink {
    fn refresh(&mut self) -> anyhow::Result<()> {
        self.reload()
    }

    fn checkpoint(&mut self, source: &str) -> anyhow::Result<Option<Checkpoint>> {
        Ok(self.state.checkpoints.get(source).copied())
    }

    fn checkpoints(&mut self) -> anyhow::Result<Vec<(String, Checkpoint)>> {
        Ok(self
            .state
            .checkpoints
            .iter()
            .map(|(k, cp)| (k.clone(), *cp))
            .collect())
    }

    fn log_format(&mut self, source: &str) -> anyhow::Result<Option<String>> {
        Ok(self.state.format_of(source))
    }

    fn set_log_format(&mut self, name: &str) {
        self.log_format = name.to_owned();
    }

    fn holds_rows(&mut self) -> anyhow::Result<bool> {
        Ok(self.state.seq > 0)
    }

    fn scrubbed(&mut self) -> anyhow::Result<Option<String>> {
        Ok(self.state.scrubbed.clone())
    }

    fn set_scrubbed(&mut self, choices: &str) -> anyhow::Result<()> {
        self.scrubbed = Some(choices.to_owned());
        Ok(())
    }

    fn prepare(&self) -> Prepare {
        Prepare {
            // Encoding is light and the server does the rest: every core can parse.
            parsers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            encoder: Some(std::sync::Arc::new({
                let spare = self.spare.clone();
                move || {
                    Box::new(RowEncoder {
                        rows: Rows::default(),
                        spare: spare.clone(),
                    }) as Box<dyn Encoder>
                }
            })),
            ahead: true,
        }
    }

    fn write_batch(&mut self, origin: Origin<'_>, batch: &mut Batch) -> anyhow::Result<()> {
        let Some(rows) = batch.take_encoded::<Rows>() else {
            bail!("internal error: a batch without the rows this store asks for in `prepare`");
        };
        // An idle follower's batches hold no rows: nothing to send.
        if rows.count > 0 {
            self.pending.push(Chunk {
                read: Read::of(origin),
                rows,
            });
        }
        self.pending_offsets.merge(batch.offsets);
        Ok(())
    }

    fn reject(&mut self, r: &Rejected<'_>) -> anyhow::Result<()> {
        let reason = r.reason.to_string();
        self.rows_of(r.origin)
            .other(Kind::Reject, r.at, &reason, r.raw, "");
        Ok(())
    }

    fn commit(&mut self, updates: &[Update<'_>]) -> anyhow::Result<()> {
        let mut next = self.state.clone();
        for update in updates {
            match update {
                Update::Set(source, cp) => {
                    next.checkpoints.insert((*source).to_owned(), *cp);
                    next.formats
                        .insert((*source).to_owned(), self.log_format.clone());
                }
                Update::Remove(source) => {
                    next.checkpoints.remove(*source);
                    next.formats.remove(*source);
                }
            }
        }
        let mut offsets =
            (next.offsets.as_deref()).map_or(LogOffsets::Unknown, LogOffsets::from_setting);
        offsets.merge(self.pending_offsets);
        next.offsets = offsets.to_setting();
        if let Some(s) = &self.scrubbed {
            next.scrubbed = Some(s.clone());
        }
        if self.pending.is_empty() && next == self.state {
            return Ok(());
        }
        next.seq = self.state.seq + 1;
        next.id = rand::random();
        let json = serde_json::to_string(&next).context("cannot encode the progress")?;
        // A Date is days since the epoch; its range ends in 2149, and a time out of it (a
        // log's garbage) puts its commit in the partition of today.
        let now = chrono::Utc::now().timestamp().div_euclid(86_400);
        let latest = self.pending.iter().filter_map(|c| c.rows.latest).max();
        let day = latest.map_or(now, |t| t.div_euclid(86_400));
        let mut progress = Rows::default();
        progress.other(Kind::Progress, Position::default(), "", b"", &json);
        // Taken for the time of the send, which needs the sink.
        let (mut buf, pending) = (
            std::mem::take(&mut self.buf),
            std::mem::take(&mut self.pending),
        );
        let host = self.host.clone();
        let commit = Commit {
            host: &host,
            seq: next.seq,
            day: u16::try_from(day).unwrap_or(now as u16),
            chunks: &pending,
            progress: &progress,
        };
        let body = commit.block(&mut buf);
        let sent = self.send(&body, &next);
        drop(body);
        (self.buf, self.pending) = (buf, pending);
        sent?;
        self.state = next;
        self.abort();
        Ok(())
    }

    fn abort(&mut self) {
        // As many spare rows as this commit had batches: after a burst of lines, the few
        // batches of an idle follower's commits let the rest of the memory go.
        if let Ok(mut spare) = self.spare.lock() {
            spare.truncate(self.pending.len());
            let room = self.pending.len() - spare.len();
            for mut chunk in self.pending.drain(..).take(room) {
                chunk.rows.clear();
                spare.push(chunk.rows);
            }
        }
        self.pending.clear();
        self.pending_offsets = LogOffsets::Unknown;
    }

    fn describe(&self) -> String {
        self.describe_address()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a Native block: each column's name, and its values as text (`NULL` for a NULL),
    /// checking that the types are the table's and that nothing is left over.
    fn decode(mut block: &[u8]) -> Vec<(String, Vec<String>)> {
        fn take<'a>(block: &mut &'a [u8], n: usize) -> &'a [u8] {
            let (head, rest) = block.split_at(n);
            *block = rest;
            head
        }
        fn varint(block: &mut &[u8]) -> usize {
            let (mut n, mut shift) = (0usize, 0);
            loop {
                let b = take(block, 1)[0];
                n |= usize::from(b & 0x7f) << shift;
                shift += 7;
                if b < 0x80 {
                    return n;
                }
            }
        }
        fn text(block: &mut &[u8]) -> String {
            let n = varint(block);
            String::from_utf8_lossy(take(block, n)).into_owned()
        }
        let columns = varint(&mut block);
        let rows = varint(&mut block);
        let mut out = Vec::new();
        for _ in 0..columns {
            let name = text(&mut block);
            let ty = text(&mut block);
            assert_eq!(ty, type_of(&name), "the type of {name}");
            let (nulls, ty) = match ty.strip_prefix("Nullable(") {
                Some(inner) => (take(&mut block, rows).to_vec(), inner.trim_end_matches(')')),
                None => (vec![0; rows], ty.as_str()),
            };
            let values = (0..rows)
                .map(|row| {
                    let value = match ty {
                        "String" => text(&mut block),
                        "UInt8" => take(&mut block, 1)[0].to_string(),
                        "UInt16" | "Date" => {
                            u16::from_le_bytes(take(&mut block, 2).try_into().unwrap()).to_string()
                        }
                        "UInt64" => {
                            u64::from_le_bytes(take(&mut block, 8).try_into().unwrap()).to_string()
                        }
                        "Int64" => {
                            i64::from_le_bytes(take(&mut block, 8).try_into().unwrap()).to_string()
                        }
                        other => panic!("no decoder for {other}"),
                    };
                    match nulls[row] {
                        0 => value,
                        _ => "NULL".to_owned(),
                    }
                })
                .collect();
            out.push((name, values));
        }
        assert!(block.is_empty(), "{} bytes after the block", block.len());
        out
    }

    #[test]
    fn rows_emptied_for_reuse_encode_as_new_ones_do() {
        fn parse(line: &str) -> LogEntry<'_> {
            crate::parse_line(line.as_bytes()).unwrap()
        }
        let first =
            parse(r#"1.2.3.4 - - [12/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.0" 200 1 "r" "x""#);
        let second =
            parse(r#"5.6.7.8 - bob [11/Oct/2000:13:55:36 +0000] "POST /b HTTP/1.1" 404 -"#);
        let at = Position {
            line: 9,
            offset: 99,
        };
        let mut reused = Rows::default();
        reused.entry(&first, at);
        reused.other(Kind::Reject, at, "status", b"raw", "");
        reused.clear();
        reused.entry(&second, at);
        let mut new = Rows::default();
        new.entry(&second, at);
        assert_eq!((reused.count, reused.latest), (new.count, new.latest));
        for (a, b) in reused.columns.iter().zip(&new.columns) {
            assert_eq!((&a.nulls, &a.values), (&b.nulls, &b.values));
        }
    }

    #[test]
    fn a_commit_is_one_block_with_every_column_of_the_table_in_its_type() {
        assert_eq!(row_columns().count(), ROW);
        let mut names = insert_columns();
        names.sort_unstable();
        let mut table: Vec<&str> = COLUMNS.iter().map(|(n, _)| *n).collect();
        table.sort_unstable();
        assert_eq!(names, table);

        let e = crate::parse_line(
            r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a\tb HTTP/1.0" 200 2326 "-" "x""#
                .as_bytes(),
        )
        .unwrap();
        let mut first = Rows::default();
        first.entry(
            &e,
            Position {
                line: 2,
                offset: 4096,
            },
        );
        // A raw line longer than 127 bytes takes two bytes of length.
        let mut second = Rows::default();
        second.other(
            Kind::Reject,
            Position {
                line: 3,
                offset: 5000,
            },
            "status",
            &[b'z'; 300],
            "",
        );
        let mut progress = Rows::default();
        progress.other(Kind::Progress, Position::default(), "", b"", "{}");
        let read = |source: &str, file| Read {
            source: source.into(),
            file,
        };
        let chunks = [
            Chunk {
                read: read("/var/log/x", (8, 1234)),
                rows: first,
            },
            Chunk {
                read: read("-", (0, 0)),
                rows: second,
            },
        ];
        let commit = Commit {
            host: "web1",
            seq: 7,
            day: 11_000,
            chunks: &chunks,
            progress: &progress,
        };
        let mut buf = Vec::new();
        let block = decode(&commit.block(&mut buf).concat());
        let names: Vec<&str> = block.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, insert_columns());
        let value = |name: &str, row: usize| {
            let column = block.iter().find(|(n, _)| n == name).unwrap();
            column.1[row].clone()
        };
        for row in 0..3 {
            assert_eq!(value("host", row), "web1");
            assert_eq!(value("seq", row), "7");
            assert_eq!(value("day", row), "11000");
        }
        assert_eq!(value("kind", 0), "0");
        assert_eq!(value("ip", 0), "1.2.3.4");
        assert_eq!(value("timestamp", 0), "971211336");
        assert_eq!(value("url", 0), *e.url);
        assert_eq!(value("bytes", 0), "2326");
        assert_eq!(value("referrer", 0), "NULL");
        assert_eq!(value("user_agent", 0), "x");
        assert_eq!(value("source", 0), "/var/log/x");
        assert_eq!(value("file_dev", 0), "8");
        assert_eq!(value("file_inode", 0), "1234");
        assert_eq!(value("line", 0), "2");
        assert_eq!(value("byte_offset", 0), "4096");
        assert_eq!(value("kind", 1), "1");
        assert_eq!(value("url", 1).len(), 300);
        assert_eq!(value("source", 1), "-");
        assert_eq!(value("line", 1), "3");
        assert_eq!(value("byte_offset", 1), "5000");
        assert_eq!(value("reason", 1), "status");
        assert_eq!(value("response_time_us", 1), "NULL");
        assert_eq!(value("kind", 2), "2");
        assert_eq!(value("source", 2), "");
        assert_eq!(value("state", 2), "{}");
        assert_eq!(value("file_inode", 2), "0");
    }
}
