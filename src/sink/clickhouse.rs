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
//! (see [`crate::clickhouse`]). Two writers of one host take turns through a local lock, as
//! SQLite writers do; different hosts never share a row, a progress row or a lock.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::{Rejected, Sink, Update};
use crate::batch::{Batch, Encoder, Prepare};
use crate::checkpoint::{Checkpoint, fnv1a};
use crate::clickhouse::{self, COLUMNS, Client, Failure, Kind, Tables, quote, tsv_field};
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

/// Entries of one batch as TabSeparated lines, from the parsing threads.
#[derive(Default)]
struct Lines {
    tsv: Vec<u8>,
    /// Latest time of the entries, in seconds since the epoch.
    latest: Option<i64>,
}

/// Encodes entries into [`Lines`], in the parsing threads.
#[derive(Default)]
struct LineEncoder {
    lines: Lines,
}

impl Encoder for LineEncoder {
    fn push(&mut self, e: &LogEntry<'_>) {
        let ts = e.timestamp.timestamp();
        self.lines.latest = Some(self.lines.latest.map_or(ts, |l| l.max(ts)));
        encode_entry(e, &mut self.lines.tsv);
    }

    fn finish(&mut self) -> Box<dyn std::any::Any + Send> {
        Box::new(std::mem::take(&mut self.lines))
    }
}

/// The columns of an INSERT, in the order of each line: `host`, `seq` and `day` first, which
/// the commit puts before each line; then the line's own.
fn insert_columns() -> String {
    let mut names = vec!["host", "seq", "day"];
    names.extend(
        COLUMNS
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| !["host", "seq", "day"].contains(n)),
    );
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn text(value: Option<&str>, out: &mut Vec<u8>) {
    match value {
        Some(v) => tsv_field(v.as_bytes(), out),
        None => out.extend_from_slice(b"\\N"),
    }
}

fn number(value: Option<u64>, out: &mut Vec<u8>) {
    match value {
        Some(v) => out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
        None => out.extend_from_slice(b"\\N"),
    }
}

/// One entry as a line, from `kind` on (see [`insert_columns`]).
fn encode_entry(e: &LogEntry<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\t");
    tsv_field(e.ip.as_bytes(), out);
    out.push(b'\t');
    text(e.ident.as_deref(), out);
    out.push(b'\t');
    text(e.user.as_deref(), out);
    out.push(b'\t');
    out.extend_from_slice(
        itoa::Buffer::new()
            .format(e.timestamp.timestamp())
            .as_bytes(),
    );
    out.push(b'\t');
    text(e.method.as_deref(), out);
    out.push(b'\t');
    tsv_field(e.url.as_bytes(), out);
    out.push(b'\t');
    text(e.protocol.as_deref(), out);
    out.push(b'\t');
    number(Some(u64::from(e.status)), out);
    out.push(b'\t');
    number(e.bytes, out);
    out.push(b'\t');
    text(e.referrer.as_deref(), out);
    out.push(b'\t');
    text(e.user_agent.as_deref(), out);
    out.push(b'\t');
    text(e.extra.vhost.as_deref(), out);
    out.push(b'\t');
    number(e.extra.port.map(u64::from), out);
    out.push(b'\t');
    number(e.extra.response_time_us, out);
    out.push(b'\t');
    number(e.extra.upstream_time_us, out);
    out.push(b'\t');
    text(e.extra.forwarded_for.as_deref(), out);
    // source, line, reason, state: a reject's and a progress row's.
    out.extend_from_slice(b"\t\t0\t\t\n");
}

/// A row that is not an entry, from `kind` on: every entry column empty or absent.
fn encode_other(
    kind: Kind,
    source: &str,
    line: u64,
    reason: &str,
    raw: &[u8],
    state: &str,
) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(itoa::Buffer::new().format(kind as u8).as_bytes());
    // ip, ident, user, timestamp, method
    out.extend_from_slice(b"\t\t\\N\t\\N\t0\t\\N\t");
    tsv_field(raw, &mut out);
    // protocol .. forwarded_for
    out.extend_from_slice(b"\t\\N\t0\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t");
    tsv_field(source.as_bytes(), &mut out);
    out.push(b'\t');
    out.extend_from_slice(itoa::Buffer::new().format(line).as_bytes());
    out.push(b'\t');
    tsv_field(reason.as_bytes(), &mut out);
    out.push(b'\t');
    tsv_field(state.as_bytes(), &mut out);
    out.push(b'\n');
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
    let state = last_state(tables, host).ok()?;
    state
        .checkpoints
        .contains_key(source)
        .then(|| (state.formats.get(source).cloned()).unwrap_or_else(|| "combined".into()))
}

/// The writer of one host into a ClickHouse database.
pub struct ClickHouseSink {
    tables: Tables,
    host: String,
    /// Hash of the host, in the ids of its INSERTs.
    host_tag: String,
    state: State,
    /// Lines of the pending commit, from `kind` on.
    pending: Vec<u8>,
    pending_lines: u64,
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
        if host.is_empty() {
            bail!("the host name is empty: give one with --host");
        }
        let mut sink = ClickHouseSink {
            host: host.to_owned(),
            host_tag: format!("{:016x}", fnv1a(host.as_bytes())),
            state: State::default(),
            pending: Vec::new(),
            pending_lines: 0,
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
        let id = quote(&format!("log-pipeline-{}-%", self.host_tag));
        let sql = format!(
            "SELECT count() FROM system.processes WHERE query_id LIKE {id} OR \
             initial_query_id LIKE {id}"
        );
        let address = self.tables.client.address();
        let nodes: Vec<Client> = match self.tables.cluster {
            None => vec![self.tables.client.clone()],
            Some(_) => (0..address.nodes.len())
                .map(|i| address.node(i).client())
                .collect(),
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
        let insert = format!(
            "INSERT INTO {} ({}) FORMAT TabSeparated",
            self.tables.logs(),
            insert_columns()
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
        self.patiently("cannot store the batch", |s| {
            match s.tables.client.insert(&insert, body, &settings, &query_id) {
                Ok(()) => Ok(()),
                Err(e) if e.is_transient() => {
                    // Did it land before the connection failed? Only the progress says.
                    s.wait_idle()?;
                    let now = s.last_state()?;
                    if now.seq == next.seq && now.id == next.id {
                        Ok(())
                    } else if now.seq == before {
                        Err(e)
                    } else {
                        Err(Failure::Invalid(format!(
                            "{}: another writer of host {} committed while this one did (is a \
                             log-pipeline on another machine using --host {}?); nothing of \
                             this batch was stored",
                            s.describe_address(),
                            s.host,
                            s.host
                        )))
                    }
                }
                Err(e) => Err(e),
            }
        })
    }

    /// For `--retain`: drops the days before `before`, but the partitions that hold a
    /// host's last progress row (a writer resumes from it). Returns the partitions dropped.
    pub fn retain(&mut self, before: chrono::DateTime<chrono::Utc>) -> anyhow::Result<u64> {
        let address = self.tables.client.address().clone();
        let cutoff = before.date_naive().format("%Y-%m-%d").to_string();
        let mut dropped = 0;
        for i in 0..address.nodes.len() {
            let node = address.node(i).client();
            let said = |e: Failure| anyhow::anyhow!("{}: --retain: {e}", node.address());
            let keep = format!(
                "SELECT DISTINCT toYYYYMMDD(argMax(day, seq)) FROM logs WHERE kind = {} GROUP BY host",
                Kind::Progress as u8
            );
            let parts = node
                .query(&format!(
                    "SELECT DISTINCT partition FROM system.parts WHERE database = {} AND \
                     table = 'logs' AND active AND max_date < toDate({}) AND \
                     toUInt32(partition_id) NOT IN ({keep}) FORMAT TabSeparated",
                    quote(&address.database),
                    quote(&cutoff)
                ))
                .map_err(said)?;
            for part in String::from_utf8_lossy(&parts).lines() {
                node.query(&format!("ALTER TABLE logs DROP PARTITION {}", quote(part)))
                    .map_err(said)?;
                dropped += 1;
            }
        }
        Ok(dropped)
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
        Ok(match self.state.checkpoints.contains_key(source) {
            true => Some(
                self.state
                    .formats
                    .get(source)
                    .cloned()
                    .unwrap_or_else(|| "combined".into()),
            ),
            false => None,
        })
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
                Box::new(LineEncoder::default()) as Box<dyn Encoder>
            })),
            entries: false,
        }
    }

    fn write_batch(&mut self, batch: &Batch) -> anyhow::Result<()> {
        let Some(lines) = batch.encoded::<Lines>() else {
            bail!("internal error: a batch without the lines this store asks for in `prepare`");
        };
        self.pending.extend_from_slice(&lines.tsv);
        self.pending_lines += batch.len() as u64;
        if let Some(t) = lines.latest {
            self.latest = Some(self.latest.map_or(t, |l| l.max(t)));
        }
        self.pending_offsets.merge(batch.offsets);
        Ok(())
    }

    fn reject(&mut self, r: &Rejected<'_>) -> anyhow::Result<()> {
        let reason = r.reason.to_string();
        let line = encode_other(Kind::Reject, r.source, r.line, &reason, r.raw, "");
        self.pending.extend_from_slice(&line);
        self.pending_lines += 1;
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
        let day = self
            .latest
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .unwrap_or_else(chrono::Utc::now)
            .format("%Y-%m-%d")
            .to_string();
        let mut prefix = Vec::new();
        tsv_field(self.host.as_bytes(), &mut prefix);
        prefix.push(b'\t');
        prefix.extend_from_slice(itoa::Buffer::new().format(next.seq).as_bytes());
        prefix.push(b'\t');
        prefix.extend_from_slice(day.as_bytes());
        prefix.push(b'\t');
        let lines = self.pending_lines + 1;
        let mut body = Vec::with_capacity(
            self.pending.len() + (prefix.len() * lines as usize) + json.len() + 256,
        );
        for line in self.pending.split_inclusive(|&b| b == b'\n') {
            body.extend_from_slice(&prefix);
            body.extend_from_slice(line);
        }
        body.extend_from_slice(&prefix);
        body.extend_from_slice(&encode_other(Kind::Progress, "", 0, "", b"", &json));
        self.send(&body, lines, &next)?;
        self.state = next;
        self.abort();
        Ok(())
    }

    fn abort(&mut self) {
        self.pending.clear();
        self.pending_lines = 0;
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

    #[test]
    fn every_line_has_as_many_fields_as_the_insert_names() {
        let columns = insert_columns().split(", ").count();
        let e = crate::parse_line(
            r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a\tb HTTP/1.0" 200 2326 "-" "x""#
                .as_bytes(),
        )
        .unwrap();
        let mut line = Vec::new();
        encode_entry(&e, &mut line);
        let other = encode_other(Kind::Reject, "/var/log/x", 3, "status", b"a\tb\n", "");
        for l in [&line[..], &other[..]] {
            assert_eq!(l.iter().filter(|&&b| b == b'\n').count(), 1);
            // host, seq and day come from the commit.
            assert_eq!(
                l.split(|&b| b == b'\t').count() + 3,
                columns,
                "{}",
                String::from_utf8_lossy(l)
            );
        }
    }
}
