//! Packed rows: a compact copy of every row of `logs`, which reports read instead of the rows.
//!
//! Reading ten million rows of text through SQLite takes ten seconds; the reports need eight
//! small fields of each. So the SQLite sink also writes each row as a fixed 52-byte record
//! (time, status, bytes, client address, and ids of its URL, agent, referrer and method in
//! `packed_strings`), [`BLOCK_ROWS`] records to a blob in `packed_blocks`, in the same
//! transaction as the rows. A report then reads a tenth of the bytes and counts integers, with
//! any filter, and a reader's snapshot always has rows and records in step.
//!
//! We tried summary tables kept up to date per key instead: they answer an unfiltered report
//! at once, but maintaining per-visitor and per-URL counts cost SQLite a b-tree update per
//! key, which slowed parse-to-db by half. Appending records costs a blob write per block.
//!
//! `packed_state.covered` is the last `logs.id` packed. When it falls behind (rows written by
//! another program, a database from an older version), the next writer packs the missing rows,
//! and until then reports read the rows. Client addresses in canonical form are stored inline
//! (an IPv4 or IPv6 address prints back to the same text); anything else is a string id.

use std::net::IpAddr;

use rusqlite::{Connection, OptionalExtension, params};
use rustc_hash::FxHashMap;

use crate::report::{
    ABSENT, ClientKey, Counts, Filters, Interner, Row, StatusFilter, Totals, UrlStat, Visits,
};

/// The packed tables; part of the schema since version 2.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS packed_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    covered INTEGER
);
INSERT OR IGNORE INTO packed_state (id, covered) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS packed_strings (
    id INTEGER PRIMARY KEY,
    kind INTEGER NOT NULL,
    value TEXT NOT NULL,
    UNIQUE (kind, value)
);
CREATE TABLE IF NOT EXISTS packed_blocks (
    seq INTEGER PRIMARY KEY,
    rows INTEGER NOT NULL,
    data BLOB NOT NULL
);
"#;

/// Records per block: small enough that rewriting the last, open block at every commit of a
/// follower stays cheap, large enough that a block row costs little.
pub const BLOCK_ROWS: usize = 1024;

/// Bytes per record.
const RECORD: usize = 52;

/// What a string id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
enum Kind {
    Url = 0,
    Agent = 1,
    Referrer = 2,
    Method = 3,
    Ip = 4,
}

/// A client address: inline when it prints back to the same text, else a string id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    V4(u32),
    V6(u128),
    Text(u32),
}

impl Client {
    const V4_TAG: u8 = 0;
    const V6_TAG: u8 = 1;
    const TEXT_TAG: u8 = 2;

    /// The inline form of `ip`, if it has one.
    fn inline(ip: &str) -> Option<Client> {
        use std::io::Write;
        if let Some(v4) = canonical_ipv4(ip.as_bytes()) {
            return Some(Client::V4(v4));
        }
        let addr: IpAddr = ip.parse().ok()?;
        let mut buf = [0u8; 64];
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        write!(cursor, "{addr}").ok()?;
        let len = cursor.position() as usize;
        if &buf[..len] != ip.as_bytes() {
            return None;
        }
        Some(match addr {
            IpAddr::V4(a) => Client::V4(u32::from(a)),
            IpAddr::V6(a) => Client::V6(u128::from(a)),
        })
    }

    /// Which of two halves of all clients this one is in.
    fn half(self) -> u64 {
        let x = match self {
            Client::V4(a) => u64::from(a),
            Client::V6(a) => (a as u64) ^ (a >> 64) as u64,
            Client::Text(id) => u64::from(id) ^ 0x5555,
        };
        x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 63
    }

    fn text(self, strings: &[Option<Box<str>>]) -> Box<str> {
        match self {
            Client::V4(a) => ipv4_text(a),
            Client::V6(a) => std::net::Ipv6Addr::from(a).to_string().into(),
            Client::Text(id) => strings
                .get(id as usize)
                .cloned()
                .flatten()
                .unwrap_or_default(),
        }
    }
}

/// `Ipv4Addr`'s text, written without the formatting machinery: a report names every client,
/// a million of them in a large log.
pub(crate) fn ipv4_text(address: u32) -> Box<str> {
    let mut text = String::with_capacity(15);
    for (i, octet) in address.to_be_bytes().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text.into()
}

/// A dotted quad without leading zeros (the form that prints back the same), as a number:
/// the common case, parsed without the general parser and a round trip through text. In one
/// pass over the bytes: splitting at the dots first cost the reports twice as much.
pub(crate) fn canonical_ipv4(s: &[u8]) -> Option<u32> {
    if !(7..=15).contains(&s.len()) {
        return None;
    }
    let (mut value, mut octet, mut digits, mut dots) = (0u32, 0u32, 0u32, 0u32);
    for &b in s {
        match b {
            // No digit after a leading zero, no fourth digit.
            b'0'..=b'9' if digits == 0 || (octet != 0 && digits < 3) => {
                octet = octet * 10 + u32::from(b - b'0');
                digits += 1;
            }
            b'.' if digits > 0 && octet <= 255 && dots < 3 => {
                value = value << 8 | octet;
                (octet, digits) = (0, 0);
                dots += 1;
            }
            _ => return None,
        }
    }
    (dots == 3 && digits > 0 && octet <= 255).then_some(value << 8 | octet)
}

/// One row as the reports read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    timestamp: i64,
    bytes: u64,
    client: Client,
    url: u32,
    agent: u32,
    /// 0 for none.
    referrer: u32,
    method: u32,
    status: u16,
}

impl Record {
    fn write(&self, out: &mut Vec<u8>) {
        let (tag, address) = match self.client {
            Client::V4(a) => (Client::V4_TAG, u128::from(a)),
            Client::V6(a) => (Client::V6_TAG, a),
            Client::Text(id) => (Client::TEXT_TAG, u128::from(id)),
        };
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.extend_from_slice(&self.bytes.to_le_bytes());
        out.extend_from_slice(&address.to_le_bytes());
        out.extend_from_slice(&self.url.to_le_bytes());
        out.extend_from_slice(&self.agent.to_le_bytes());
        out.extend_from_slice(&self.referrer.to_le_bytes());
        out.extend_from_slice(&self.method.to_le_bytes());
        out.extend_from_slice(&((u32::from(self.status) << 8) | u32::from(tag)).to_le_bytes());
        debug_assert_eq!(out.len() % RECORD, 0);
    }

    fn read(b: &[u8]) -> Record {
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let address = u128::from_le_bytes(b[16..32].try_into().expect("16 bytes"));
        let status_tag = u32_at(48);
        let client = match (status_tag & 0xff) as u8 {
            Client::V4_TAG => Client::V4(address as u32),
            Client::V6_TAG => Client::V6(address),
            _ => Client::Text(address as u32),
        };
        Record {
            timestamp: u64_at(0) as i64,
            bytes: u64_at(8),
            client,
            url: u32_at(32),
            agent: u32_at(36),
            referrer: u32_at(40),
            method: u32_at(44),
            status: (status_tag >> 8) as u16,
        }
    }
}

/// Text to string id, bounded: a kind's map is emptied when full, by count or by bytes (a
/// log of megabyte-long URLs fills it after a few), so memory does not grow with the number
/// or size of distinct strings. A committed id never changes, so entries stay right across
/// transactions; a rollback empties it, as it may have taken ids with it.
#[derive(Default)]
struct Strings {
    ids: [FxHashMap<Box<str>, u32>; 5],
    /// Bytes of text held, per kind.
    bytes: [usize; 5],
}

impl Strings {
    const FULL: usize = 100_000;
    const FULL_BYTES: usize = 4 << 20;

    fn id(&mut self, conn: &Connection, kind: Kind, value: &str) -> rusqlite::Result<u32> {
        if let Some(&id) = self.ids[kind as usize].get(value) {
            return Ok(id);
        }
        let inserted = conn
            .prepare_cached("INSERT OR IGNORE INTO packed_strings (kind, value) VALUES (?1, ?2)")?
            .execute(params![kind as u8, value])?;
        let id = if inserted == 1 {
            conn.last_insert_rowid()
        } else {
            conn.prepare_cached("SELECT id FROM packed_strings WHERE kind = ?1 AND value = ?2")?
                .query_row(params![kind as u8, value], |r| r.get(0))?
        };
        let id = u32::try_from(id).map_err(|_| {
            rusqlite::Error::ToSqlConversionFailure("more than 2^32 distinct strings".into())
        })?;
        let (map, bytes) = (&mut self.ids[kind as usize], &mut self.bytes[kind as usize]);
        if map.len() >= Self::FULL || *bytes + value.len() > Self::FULL_BYTES {
            map.clear();
            *bytes = 0;
        }
        map.insert(value.into(), id);
        *bytes += value.len();
        Ok(id)
    }

    fn clear(&mut self) {
        self.ids.iter_mut().for_each(FxHashMap::clear);
        self.bytes = [0; 5];
    }
}

/// Rows waiting to be packed, their strings numbered against the rows' own distinct ones.
///
/// Looking up four strings per row in the id cache took a fifth of the writer's time, and the
/// writer is the bottleneck of parse-to-db. So the reading thread, which has time to spare,
/// builds these for each batch, and the writer then looks up only the batch's distinct
/// strings (a few thousand per 8,192 rows) and indexes arrays for the rows.
#[derive(Debug, Default)]
pub struct BatchKeys {
    /// Per [`Kind`], the distinct strings numbered in order of first sight.
    distinct: [Interner; 5],
    rows: Vec<KeyedRow>,
}

/// A row of [`BatchKeys`]: its record but for the string ids.
#[derive(Debug)]
struct KeyedRow {
    timestamp: i64,
    bytes: u64,
    status: u16,
    /// The client, when it is inline.
    client: Option<Client>,
    /// Local string numbers by [`Kind`] ([`NONE`] where absent).
    local: [u32; 5],
}

/// No string: an absent referrer, or the ip of an inline client.
const NONE: u32 = u32::MAX;

impl BatchKeys {
    /// Numbers the strings of the next row.
    pub fn push(&mut self, row: &Row<'_>) {
        let client = Client::inline(row.ip);
        let mut local = [NONE; 5];
        let values = [
            Some(row.url),
            Some(row.user_agent.unwrap_or(ABSENT)),
            row.referrer,
            Some(row.method.unwrap_or(ABSENT)),
            client.is_none().then_some(row.ip),
        ];
        for (kind, value) in values.into_iter().enumerate() {
            if let Some(value) = value {
                local[kind] = self.distinct[kind].id(value);
            }
        }
        self.rows.push(KeyedRow {
            timestamp: row.timestamp,
            bytes: row.bytes.unwrap_or(0),
            status: row.status,
            client,
            local,
        });
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// The block being filled: rewritten at each commit until it is full.
#[derive(Default)]
struct OpenBlock {
    seq: i64,
    data: Vec<u8>,
    /// Holds records not yet written.
    dirty: bool,
}

/// Keeps the packed copy of one database's rows; owned by its writer.
#[derive(Default)]
pub struct Packer {
    strings: Strings,
    /// Read from the database at the start of each transaction.
    open: Option<OpenBlock>,
    /// Packing is off for this database (a row that cannot be packed); reports read rows.
    disabled: bool,
}

impl Packer {
    /// At the start of a transaction: finds the open block, and packs rows that are not packed
    /// yet (written by another program or an older version), so that at commit every row is.
    /// Returns a message for the user when it did either of those at length.
    pub fn begin(&mut self, conn: &Connection) -> anyhow::Result<Option<String>> {
        let covered: Option<i64> = conn
            .query_row("SELECT covered FROM packed_state WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()?
            .flatten();
        let Some(covered) = covered else {
            self.disabled = true;
            return Ok(None);
        };
        self.disabled = false;
        // Read the open block afresh at every transaction: another writer (a cron run beside
        // a follower) may have filled it since our last commit.
        let block: Option<(i64, Vec<u8>)> = conn
            .query_row(
                "SELECT seq, data FROM packed_blocks ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        self.open = Some(match block {
            Some((seq, data)) if data.len() < BLOCK_ROWS * RECORD => OpenBlock {
                seq,
                data,
                dirty: false,
            },
            Some((seq, _)) => OpenBlock {
                seq: seq + 1,
                ..OpenBlock::default()
            },
            None => OpenBlock::default(),
        });
        let last: i64 =
            conn.query_row("SELECT coalesce(max(id), 0) FROM logs", [], |r| r.get(0))?;
        if last <= covered {
            return Ok(None);
        }
        let mut bad = None;
        let mut keys = BatchKeys::default();
        crate::report::for_each_row(conn, covered, &mut |row| match row {
            Ok(row) => {
                keys.push(row);
                if keys.len() == crate::batch::BATCH_LINES as usize {
                    self.add(conn, &std::mem::take(&mut keys))?;
                }
                Ok(())
            }
            Err(id) => {
                bad = Some(id);
                anyhow::bail!("row {id} has no valid timestamp")
            }
        })
        .or_else(|e| if bad.is_some() { Ok(()) } else { Err(e) })?;
        if bad.is_none() {
            self.add(conn, &keys)?;
        }
        if let Some(id) = bad {
            // A row whose timestamp is not a time cannot be counted; reports read the rows
            // (and name the row) rather than count it wrong.
            conn.execute_batch(
                "UPDATE packed_state SET covered = NULL WHERE id = 1; DELETE FROM packed_blocks;",
            )?;
            self.open = None;
            self.disabled = true;
            return Ok(Some(format!(
                "row {id} of `logs` has no valid timestamp: reports will read the rows (slower)"
            )));
        }
        Ok(Some(format!(
            "packed {} rows written by another program or an older version, for reports",
            last - covered
        )))
    }

    /// Packs rows just inserted into `logs`, in order.
    pub fn add(&mut self, conn: &Connection, keys: &BatchKeys) -> rusqlite::Result<()> {
        if self.disabled {
            return Ok(());
        }
        const KINDS: [Kind; 5] = [
            Kind::Url,
            Kind::Agent,
            Kind::Referrer,
            Kind::Method,
            Kind::Ip,
        ];
        let mut ids: [Vec<u32>; 5] = Default::default();
        for (kind, distinct) in KINDS.into_iter().zip(&keys.distinct) {
            ids[kind as usize] = distinct
                .names
                .iter()
                .map(|value| self.strings.id(conn, kind, value))
                .collect::<rusqlite::Result<_>>()?;
        }
        let id = |kind: Kind, local: u32| {
            if local == NONE {
                0
            } else {
                ids[kind as usize][local as usize]
            }
        };
        for row in &keys.rows {
            let local = row.local;
            let record = Record {
                timestamp: row.timestamp,
                bytes: row.bytes,
                client: row
                    .client
                    .unwrap_or_else(|| Client::Text(id(Kind::Ip, local[4]))),
                url: id(Kind::Url, local[0]),
                agent: id(Kind::Agent, local[1]),
                referrer: id(Kind::Referrer, local[2]),
                method: id(Kind::Method, local[3]),
                status: row.status,
            };
            self.push(conn, &record)?;
        }
        Ok(())
    }

    fn push(&mut self, conn: &Connection, record: &Record) -> rusqlite::Result<()> {
        let open = self.open.get_or_insert_with(OpenBlock::default);
        record.write(&mut open.data);
        open.dirty = true;
        if open.data.len() >= BLOCK_ROWS * RECORD {
            write_block(conn, open)?;
            *open = OpenBlock {
                seq: open.seq + 1,
                ..OpenBlock::default()
            };
        }
        Ok(())
    }

    /// Before COMMIT: writes the open block and records that every row is packed.
    pub fn commit(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        if self.disabled {
            return Ok(());
        }
        if let Some(open) = &mut self.open
            && open.dirty
        {
            write_block(conn, open)?;
        }
        conn.execute(
            "UPDATE packed_state SET covered = (SELECT coalesce(max(id), 0) FROM logs) WHERE id = 1",
            [],
        )?;
        Ok(())
    }

    /// The transaction was rolled back: forget what it may have taken with it.
    pub fn abort(&mut self) {
        self.open = None;
        self.strings.clear();
    }
}

fn write_block(conn: &Connection, open: &mut OpenBlock) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO packed_blocks (seq, rows, data) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![
        open.seq,
        (open.data.len() / RECORD) as i64,
        open.data
    ])?;
    open.dirty = false;
    Ok(())
}

/// The counts of the rows that pass `filters`, from the packed copy, if the database has one
/// that covers every row. Run inside a read transaction, so that rows and records come from
/// one snapshot.
pub fn counts(conn: &Connection, filters: &Filters) -> rusqlite::Result<Option<Counts>> {
    let has_state: bool = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'packed_state'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has_state {
        return Ok(None);
    }
    let covered: Option<i64> =
        conn.query_row("SELECT covered FROM packed_state WHERE id = 1", [], |r| {
            r.get(0)
        })?;
    let rows: i64 = conn.query_row("SELECT coalesce(max(id), 0) FROM logs", [], |r| r.get(0))?;
    if covered != Some(rows) {
        return Ok(None);
    }

    // Strings by id, and their kinds.
    let mut strings: Vec<Option<Box<str>>> = Vec::new();
    let mut kinds: Vec<u8> = Vec::new();
    {
        let mut stmt = conn.prepare("SELECT id, kind, value FROM packed_strings")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let id = r.get::<_, i64>(0)? as usize;
            if id >= strings.len() {
                strings.resize(id + 1, None);
                kinds.resize(id + 1, u8::MAX);
            }
            strings[id] = Some(r.get_ref(2)?.as_str()?.into());
            kinds[id] = r.get(1)?;
        }
    }
    let url_passes: Option<Vec<bool>> = filters.url.as_ref().map(|re| {
        strings
            .iter()
            .zip(&kinds)
            .map(|(s, &k)| k == Kind::Url as u8 && s.as_deref().is_some_and(|s| re.is_match(s)))
            .collect()
    });
    // The one client that passes --ip; `None` inside when no row can have it.
    let ip_filter: Option<Option<Client>> = filters.ip.as_deref().map(|ip| {
        Client::inline(ip).or_else(|| {
            strings
                .iter()
                .zip(&kinds)
                .position(|(s, &k)| k == Kind::Ip as u8 && s.as_deref() == Some(ip))
                .map(|id| Client::Text(id as u32))
        })
    });

    let passes = |record: &Record| {
        filters
            .since
            .is_none_or(|t| record.timestamp >= t.timestamp())
            && filters
                .until
                .is_none_or(|t| record.timestamp <= t.timestamp())
            && match filters.status {
                None => true,
                Some(StatusFilter::Code(c)) => record.status == c,
                Some(StatusFilter::Class(c)) => record.status / 100 == c,
            }
            && ip_filter.is_none_or(|want| want == Some(record.client))
            && url_passes
                .as_ref()
                .is_none_or(|p| p.get(record.url as usize).copied().unwrap_or(false))
    };
    // Two counting threads, each taking the clients of its half (so each visitor is counted
    // by one of them and their counts simply add up), fed by this one reading the blocks.
    std::thread::scope(|scope| -> rusqlite::Result<Option<Counts>> {
        let mut senders = Vec::new();
        let mut workers = Vec::new();
        for half in 0..2u64 {
            let (tx, rx) = std::sync::mpsc::sync_channel::<std::sync::Arc<Vec<u8>>>(16);
            senders.push(tx);
            let (passes, strings, kinds) = (&passes, &strings, &kinds);
            workers.push(scope.spawn(move || {
                let mut tally = Tally::new(strings.len());
                for block in rx {
                    for bytes in block.chunks_exact(RECORD) {
                        let record = Record::read(bytes);
                        if record.client.half() == half && passes(&record) {
                            tally.add(&record);
                        }
                    }
                }
                tally.into_counts(strings, kinds)
            }));
        }
        let mut stmt = conn.prepare("SELECT data FROM packed_blocks ORDER BY seq")?;
        let mut blocks = stmt.query([])?;
        while let Some(r) = blocks.next()? {
            let block = std::sync::Arc::new(r.get_ref(0)?.as_blob()?.to_vec());
            for tx in &senders {
                // A worker only stops by panicking, which the join below reports.
                let _ = tx.send(std::sync::Arc::clone(&block));
            }
        }
        drop(senders);
        let mut counts = Counts::default();
        for worker in workers {
            counts.add_other_clients(worker.join().expect("a counting thread panicked"));
        }
        Ok(Some(counts))
    })
}

/// Counts of records by id: the [`crate::report::Aggregator`] of packed rows.
struct Tally {
    totals: Totals,
    /// Per string id (each id is of one kind, so one array serves every kind).
    hits: Vec<u64>,
    url_stats: Vec<UrlStat>,
    visits: Visits<u64>,
    clients: ClientKeys,
}

/// Clients as [`ClientKey`]s, which hash and compare at once: other clients than IPv4 are
/// numbered in order of first sight.
#[derive(Default)]
struct ClientKeys {
    numbers: FxHashMap<Client, u32>,
    others: Vec<Client>,
}

impl ClientKeys {
    fn key(&mut self, client: Client) -> u64 {
        match client {
            Client::V4(a) => ClientKey::V4(a),
            other => ClientKey::Other(*self.numbers.entry(other).or_insert_with(|| {
                self.others.push(other);
                self.others.len() as u32 - 1
            })),
        }
        .key()
    }

    fn client(&self, key: u64) -> Client {
        match ClientKey::of(key) {
            ClientKey::V4(a) => Client::V4(a),
            ClientKey::Other(number) => self.others[number as usize],
        }
    }
}

impl Tally {
    fn new(strings: usize) -> Tally {
        Tally {
            totals: Totals::default(),
            hits: vec![0; strings],
            url_stats: vec![UrlStat::default(); strings],
            visits: Visits::default(),
            clients: ClientKeys::default(),
        }
    }

    fn add(&mut self, r: &Record) {
        let t = r.timestamp;
        self.totals.add(t, r.status, r.bytes);
        // Referrer 0 is none; string ids start at 1.
        for id in [r.agent, r.referrer, r.method] {
            if let Some(n) = self.hits.get_mut(id as usize).filter(|_| id != 0) {
                *n += 1;
            }
        }
        let client = self.clients.key(r.client);
        let first_visit = self.visits.hit(t, client, r.agent, r.url);
        if let Some(stat) = self.url_stats.get_mut(r.url as usize) {
            stat.hits += 1;
            stat.bytes += r.bytes;
            stat.not_found += u64::from(r.status == 404);
            stat.visitors += u64::from(first_visit);
        }
    }

    fn into_counts(self, strings: &[Option<Box<str>>], kinds: &[u8]) -> Counts {
        let name = |id: usize| strings[id].clone().unwrap_or_default();
        let mut counts = Counts {
            totals: self.totals,
            visitors: self.visits.visitors(),
            ..Counts::default()
        };
        let clients = self.clients;
        counts.clients = (self.visits.into_clients().into_iter())
            .map(|(key, n)| (clients.client(key).text(strings), n))
            .collect();
        for (id, stat) in self.url_stats.into_iter().enumerate() {
            if stat.hits > 0 {
                counts.urls.push((name(id), stat));
            }
        }
        // One array counts agents, referrers and methods; the kind of an id tells them apart.
        for (id, &n) in self.hits.iter().enumerate() {
            if n > 0 {
                let list = match kinds[id] {
                    k if k == Kind::Agent as u8 => &mut counts.agents,
                    k if k == Kind::Referrer as u8 => &mut counts.referrers,
                    _ => &mut counts.methods,
                };
                list.push((name(id), n));
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_string_cache_is_bounded_by_bytes_and_ids_stay_right() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        let mut strings = Strings::default();
        let long = |i: usize| format!("/{i}{}", "x".repeat(900_000));
        let ids: Vec<u32> = (0..20)
            .map(|i| strings.id(&conn, Kind::Url, &long(i)).unwrap())
            .collect();
        assert!(strings.bytes[Kind::Url as usize] <= Strings::FULL_BYTES);
        assert!(strings.ids[Kind::Url as usize].len() < 20);
        // Strings that fell out of the cache get their committed id back from the table.
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(strings.id(&conn, Kind::Url, &long(i)).unwrap(), *id);
        }
    }

    #[test]
    fn addresses_are_inline_only_when_they_print_back_the_same() {
        for ip in [
            "1.2.3.4",
            "0.0.0.0",
            "255.255.255.255",
            "2001:db8::1",
            "::1",
            "::ffff:1.2.3.4",
        ] {
            let client = Client::inline(ip).unwrap_or_else(|| panic!("{ip} is canonical"));
            assert_eq!(&*client.text(&[]), ip);
        }
        for ip in [
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "256.1.1.1",
            "2001:DB8::1",
            "2001:db8:0:0:0:0:0:1",
            "host.example",
            "-",
            "",
        ] {
            assert_eq!(Client::inline(ip), None, "{ip}");
        }
    }

    #[test]
    fn canonical_ipv4_takes_what_prints_back_the_same() {
        let mut x = 0x2545_F491u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let alphabet = b"0123456789..1259x";
        for round in 0..200_000 {
            // Mostly near misses: random strings of digits and dots of an address's length.
            let len = 1 + next() as usize % 17;
            let text: Vec<u8> = match round % 4 {
                0 => std::net::Ipv4Addr::from(next()).to_string().into_bytes(),
                _ => (0..len)
                    .map(|_| alphabet[next() as usize % alphabet.len()])
                    .collect(),
            };
            let expected = std::str::from_utf8(&text)
                .ok()
                .and_then(|t| {
                    t.parse::<std::net::Ipv4Addr>()
                        .ok()
                        .filter(|a| a.to_string() == t)
                })
                .map(u32::from);
            assert_eq!(
                canonical_ipv4(&text),
                expected,
                "{:?}",
                String::from_utf8_lossy(&text)
            );
        }
    }

    #[test]
    fn ipv4_text_is_the_standard_text() {
        let mut x = 0x9E37_79B9u32;
        for a in [
            0,
            1,
            9,
            10,
            99,
            100,
            255,
            0x0A00_0001,
            0xFFFF_FFFF,
            0x6464_6464,
        ]
        .into_iter()
        .chain(std::iter::repeat_with(|| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        }))
        .take(100_000)
        {
            assert_eq!(&*ipv4_text(a), std::net::Ipv4Addr::from(a).to_string());
        }
    }

    #[test]
    fn records_round_trip() {
        let record = Record {
            timestamp: -86_401,
            bytes: u64::MAX,
            client: Client::V6(u128::MAX - 5),
            url: 7,
            agent: u32::MAX,
            referrer: 0,
            method: 3,
            status: 999,
        };
        let mut bytes = Vec::new();
        record.write(&mut bytes);
        assert_eq!(bytes.len(), RECORD);
        assert_eq!(Record::read(&bytes), record);
        let text = Record {
            client: Client::Text(42),
            ..record
        };
        bytes.clear();
        text.write(&mut bytes);
        assert_eq!(Record::read(&bytes), text);
    }
}
