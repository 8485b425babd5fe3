//! The ClickHouse store's writer: exactly once without transactions.
//!
//! ClickHouse has no transaction spanning two INSERTs, but it applies one INSERT that forms
//! one block of one partition as one part, whole or not at all. So a commit is exactly one
//! INSERT: the batch's entries, its rejects, and, as its last row, a progress row holding this
//! host's checkpoints after the commit (the same checkpoints a SQLite store keeps in its
//! `checkpoints` table), its sequence number and a random id. Every row of the INSERT carries
//! one `day`, the partition (the latest day of its entries), and the INSERT asks for a block as
//! large as its rows, so that the server writes one part.
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
use crate::entry::LogEntry;
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

/// Entries of one batch as rows of ClickHouse's RowBinary format, from the parsing threads.
/// Binary rather than text: the server then only copies the values, and newer servers cut
/// only text INSERTs into pieces parsed in parallel (which would split one into parts).
#[derive(Default)]
struct Rows {
    bytes: Vec<u8>,
    /// Where each row ends in `bytes`.
    ends: Vec<usize>,
    /// Latest time of the entries, in seconds since the epoch.
    latest: Option<i64>,
}

/// Encodes entries into [`Rows`], in the parsing threads.
#[derive(Default)]
struct RowEncoder {
    rows: Rows,
}

impl Encoder for RowEncoder {
    fn push(&mut self, e: &LogEntry<'_>, at: Position) {
        let ts = e.timestamp.timestamp();
        self.rows.latest = Some(self.rows.latest.map_or(ts, |l| l.max(ts)));
        encode_entry(e, at, &mut self.rows.bytes);
        self.rows.ends.push(self.rows.bytes.len());
    }

    fn finish(&mut self) -> Box<dyn std::any::Any + Send> {
        Box::new(std::mem::take(&mut self.rows))
    }
}

/// The columns the commit puts before each row: the commit's own, then its origin's.
const PREFIX: [&str; 6] = ["host", "seq", "day", "source", "file_dev", "file_inode"];

/// The columns of an INSERT, in the order of each row: [`PREFIX`] first, then the row's own.
fn insert_columns() -> Vec<&'static str> {
    let mut names = PREFIX.to_vec();
    names.extend(
        COLUMNS
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| !PREFIX.contains(n)),
    );
    names
}

/// The origin columns of [`PREFIX`]: where the rows after it were read.
fn encode_origin(origin: Origin<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    string(origin.source.as_bytes(), &mut out);
    let (dev, inode) = origin.file.unwrap_or((0, 0));
    out.extend_from_slice(&dev.to_le_bytes());
    out.extend_from_slice(&inode.to_le_bytes());
    out
}

/// RowBinary values: a String is its length (LEB128) and its bytes; a Nullable is a byte, 1
/// for NULL, else 0 and the value; integers are little-endian.
fn string(value: &[u8], out: &mut Vec<u8>) {
    let mut n = value.len() as u64;
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(value);
}

fn nullable_string(value: Option<&str>, out: &mut Vec<u8>) {
    match value {
        Some(v) => {
            out.push(0);
            string(v.as_bytes(), out);
        }
        None => out.push(1),
    }
}

fn nullable_u64(value: Option<u64>, out: &mut Vec<u8>) {
    match value {
        Some(v) => {
            out.push(0);
            out.extend_from_slice(&v.to_le_bytes());
        }
        None => out.push(1),
    }
}

/// One entry as a row, from `kind` on (see [`insert_columns`]).
fn encode_entry(e: &LogEntry<'_>, at: Position, out: &mut Vec<u8>) {
    out.push(Kind::Entry as u8);
    string(e.ip.as_bytes(), out);
    nullable_string(e.ident.as_deref(), out);
    nullable_string(e.user.as_deref(), out);
    out.extend_from_slice(&e.timestamp.timestamp().to_le_bytes());
    nullable_string(e.method.as_deref(), out);
    string(e.url.as_bytes(), out);
    nullable_string(e.protocol.as_deref(), out);
    out.extend_from_slice(&e.status.to_le_bytes());
    nullable_u64(e.bytes, out);
    nullable_string(e.referrer.as_deref(), out);
    nullable_string(e.user_agent.as_deref(), out);
    nullable_string(e.extra.vhost.as_deref(), out);
    match e.extra.port {
        Some(port) => {
            out.push(0);
            out.extend_from_slice(&port.to_le_bytes());
        }
        None => out.push(1),
    }
    nullable_u64(e.extra.response_time_us, out);
    nullable_u64(e.extra.upstream_time_us, out);
    nullable_string(e.extra.forwarded_for.as_deref(), out);
    out.extend_from_slice(&at.line.to_le_bytes());
    out.extend_from_slice(&at.offset.to_le_bytes());
    // reason, state: a reject's and a progress row's.
    out.extend_from_slice(&[0; 2]);
}

/// A row that is not an entry, from `kind` on: every entry column empty or absent, the raw
/// bytes of a reject in `url`.
fn encode_other(kind: Kind, at: Position, reason: &str, raw: &[u8], state: &str) -> Vec<u8> {
    let mut out = vec![kind as u8];
    // ip, ident, user, timestamp, method
    out.extend_from_slice(&[0, 1, 1]);
    out.extend_from_slice(&0i64.to_le_bytes());
    out.push(1);
    string(raw, &mut out);
    // protocol, status, then bytes .. forwarded_for all NULL.
    out.push(1);
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&[1; 8]);
    out.extend_from_slice(&at.line.to_le_bytes());
    out.extend_from_slice(&at.offset.to_le_bytes());
    string(reason.as_bytes(), &mut out);
    string(state.as_bytes(), &mut out);
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
    /// Rows of the pending commit, from `kind` on, and where each ends.
    pending: Vec<u8>,
    pending_ends: Vec<usize>,
    /// The origins of the pending rows ([`encode_origin`]), each with the number of the
    /// first row read from it.
    pending_origins: Vec<(usize, Vec<u8>)>,
    latest: Option<i64>,
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
            pending_ends: Vec::new(),
            pending_origins: Vec::new(),
            latest: None,
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

    /// Sends one commit: `body` ends with its progress row, `next` is the state it records.
    fn send(&mut self, body: &[u8], lines: u64, next: &State) -> anyhow::Result<()> {
        let columns: Vec<String> = insert_columns().iter().map(|n| format!("`{n}`")).collect();
        let insert = format!(
            "INSERT INTO {} ({}) FORMAT RowBinary",
            self.tables.logs(),
            columns.join(", ")
        );
        let mut settings = vec![
            // One block, so one part: the whole INSERT or nothing.
            ("max_insert_block_size", (lines + 1).max(1024).to_string()),
        ];
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

    /// Makes `origin` the origin of the rows added next.
    fn origin(&mut self, origin: Origin<'_>) {
        let encoded = encode_origin(origin);
        if self.pending_origins.last().map(|(_, o)| o) != Some(&encoded) {
            self.pending_origins
                .push((self.pending_ends.len(), encoded));
        }
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
            encoder: Some(std::sync::Arc::new(|| {
                Box::new(RowEncoder::default()) as Box<dyn Encoder>
            })),
            entries: false,
            ..Prepare::default()
        }
    }

    fn write_batch(&mut self, origin: Origin<'_>, batch: &mut Batch) -> anyhow::Result<()> {
        let Some(rows) = batch.encoded::<Rows>() else {
            bail!("internal error: a batch without the rows this store asks for in `prepare`");
        };
        self.origin(origin);
        let base = self.pending.len();
        self.pending.extend_from_slice(&rows.bytes);
        self.pending_ends
            .extend(rows.ends.iter().map(|end| base + end));
        if let Some(t) = rows.latest {
            self.latest = Some(self.latest.map_or(t, |l| l.max(t)));
        }
        self.pending_offsets.merge(batch.offsets);
        Ok(())
    }

    fn reject(&mut self, r: &Rejected<'_>) -> anyhow::Result<()> {
        self.origin(r.origin);
        let reason = r.reason.to_string();
        let row = encode_other(Kind::Reject, r.at, &reason, r.raw, "");
        self.pending.extend_from_slice(&row);
        self.pending_ends.push(self.pending.len());
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
        let day = self.latest.map_or(now, |t| t.div_euclid(86_400));
        let day = u16::try_from(day).unwrap_or(now as u16);
        let mut prefix = Vec::new();
        string(self.host.as_bytes(), &mut prefix);
        prefix.extend_from_slice(&next.seq.to_le_bytes());
        prefix.extend_from_slice(&day.to_le_bytes());
        let rows = self.pending_ends.len() + 1;
        let longest = self.pending_origins.iter().map(|(_, o)| o.len()).max();
        let per_row = prefix.len() + longest.unwrap_or(0);
        let mut body = Vec::with_capacity(self.pending.len() + per_row * rows + json.len() + 256);
        let mut start = 0;
        let mut origins = self.pending_origins.iter().peekable();
        let mut origin: &[u8] = &[];
        for (row, &end) in self.pending_ends.iter().enumerate() {
            while let Some((_, next)) = origins.next_if(|(first, _)| *first <= row) {
                origin = next;
            }
            body.extend_from_slice(&prefix);
            body.extend_from_slice(origin);
            body.extend_from_slice(&self.pending[start..end]);
            start = end;
        }
        let progress = Origin {
            source: "",
            file: None,
        };
        body.extend_from_slice(&prefix);
        body.extend_from_slice(&encode_origin(progress));
        body.extend_from_slice(&encode_other(
            Kind::Progress,
            Position::default(),
            "",
            b"",
            &json,
        ));
        self.send(&body, rows as u64, &next)?;
        self.state = next;
        self.abort();
        Ok(())
    }

    fn abort(&mut self) {
        self.pending.clear();
        self.pending_ends.clear();
        self.pending_origins.clear();
        self.latest = None;
        self.pending_offsets = LogOffsets::Unknown;
    }

    fn describe(&self) -> String {
        self.describe_address()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads one RowBinary row of the types of `columns`; returns its values as text.
    fn decode(mut row: &[u8], columns: &[&str]) -> (Vec<String>, usize) {
        fn take<'a>(row: &mut &'a [u8], n: usize) -> &'a [u8] {
            let (head, rest) = row.split_at(n);
            *row = rest;
            head
        }
        let start = row.len();
        let mut values = Vec::new();
        for name in columns {
            let ty = COLUMNS.iter().find(|(n, _)| n == name).unwrap().1;
            let (nullable, ty) = match ty.strip_prefix("Nullable(") {
                Some(inner) => (true, inner.trim_end_matches(')')),
                None => (false, ty),
            };
            if nullable && take(&mut row, 1)[0] == 1 {
                values.push("NULL".into());
                continue;
            }
            values.push(match ty {
                "String" => {
                    let (mut len, mut shift) = (0usize, 0);
                    loop {
                        let b = take(&mut row, 1)[0];
                        len |= usize::from(b & 0x7f) << shift;
                        shift += 7;
                        if b < 0x80 {
                            break;
                        }
                    }
                    String::from_utf8_lossy(take(&mut row, len)).into_owned()
                }
                "UInt8" => take(&mut row, 1)[0].to_string(),
                "UInt16" | "Date" => {
                    u16::from_le_bytes(take(&mut row, 2).try_into().unwrap()).to_string()
                }
                "UInt64" => u64::from_le_bytes(take(&mut row, 8).try_into().unwrap()).to_string(),
                "Int64" => i64::from_le_bytes(take(&mut row, 8).try_into().unwrap()).to_string(),
                other => panic!("no decoder for {other}"),
            });
        }
        (values, start - row.len())
    }

    #[test]
    fn rows_hold_every_column_of_the_insert_in_its_type() {
        let columns = insert_columns();
        assert_eq!(columns.len(), COLUMNS.len());
        let e = crate::parse_line(
            r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a\tb HTTP/1.0" 200 2326 "-" "x""#
                .as_bytes(),
        )
        .unwrap();
        let mut entry = Vec::new();
        string(b"web1", &mut entry);
        entry.extend_from_slice(&7u64.to_le_bytes());
        entry.extend_from_slice(&11_000u16.to_le_bytes());
        entry.extend(encode_origin(Origin {
            source: "/var/log/x",
            file: Some((8, 1234)),
        }));
        let prefix = entry.len();
        let at = Position {
            line: 2,
            offset: 4096,
        };
        encode_entry(&e, at, &mut entry);
        let (values, used) = decode(&entry, &columns);
        assert_eq!(used, entry.len());
        let value = |name: &str| &values[columns.iter().position(|c| *c == name).unwrap()];
        assert_eq!(value("host"), "web1");
        assert_eq!(value("seq"), "7");
        assert_eq!(value("ip"), "1.2.3.4");
        assert_eq!(value("timestamp"), "971211336");
        assert_eq!(value("url"), &*e.url);
        assert_eq!(value("bytes"), "2326");
        assert_eq!(value("referrer"), "NULL");
        assert_eq!(value("user_agent"), "x");
        assert_eq!(value("source"), "/var/log/x");
        assert_eq!(value("file_dev"), "8");
        assert_eq!(value("file_inode"), "1234");
        assert_eq!(value("line"), "2");
        assert_eq!(value("byte_offset"), "4096");
        let mut other = entry[..prefix].to_vec();
        // A raw line longer than 127 bytes takes two bytes of length.
        let raw = [b'z'; 300];
        let at = Position {
            line: 3,
            offset: 5000,
        };
        other.extend(encode_other(Kind::Reject, at, "status", &raw, "{}"));
        let (values, used) = decode(&other, &columns);
        assert_eq!(used, other.len());
        let value = |name: &str| &values[columns.iter().position(|c| *c == name).unwrap()];
        assert_eq!(value("kind"), "1");
        assert_eq!(value("url").len(), 300);
        assert_eq!(value("source"), "/var/log/x");
        assert_eq!(value("line"), "3");
        assert_eq!(value("byte_offset"), "5000");
        assert_eq!(value("reason"), "status");
        assert_eq!(value("state"), "{}");
        assert_eq!(value("response_time_us"), "NULL");
    }
}
