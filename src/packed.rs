//! Packed rows: a compact copy of every row of `logs`, which reports read instead of the rows.
//!
//! Reading rows of text through SQLite costs far more than the reports' work on them, and
//! the reports need eight small fields of each. So the SQLite sink also writes each row as a
//! fixed 52-byte record (time, status, bytes, client address, and ids of its URL, agent,
//! referrer and method in `packed_strings`), [`BLOCK_ROWS`] records to a blob in
//! `packed_blocks`, in the same transaction as the rows. A report then reads a fraction of
//! the bytes and counts integers, with any filter, and a reader's snapshot always has rows
//! and records in step. Reading them back is [`crate::read::packed`]'s.
//!
//! Summary tables kept up to date per key would answer an unfiltered report at once, but
//! they cost SQLite a b-tree update per key and row, on the writer, which is parse-to-db's
//! bottleneck; appending records costs a blob write per block.
//!
//! `packed_state.covered` is the last `logs.id` packed. When it falls behind (rows written by
//! another program, a database from an older version), the next writer packs the missing rows,
//! and until then reports read the rows. Client addresses in canonical form are stored inline
//! (an IPv4 or IPv6 address prints back to the same text); anything else is a string id.

use std::net::IpAddr;

use rusqlite::{Connection, OptionalExtension, params};
use rustc_hash::FxHashMap;

use crate::batch::{BATCH_LINES, Encoder, Position};
use crate::entry::LogEntry;
use crate::row::{ABSENT, Interner, Row, canonical_ipv4, ipv4_text};

/// The packed tables; part of the schema since version 2.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS packed_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    covered INTEGER,
    strings_generation INTEGER NOT NULL DEFAULT 0
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
pub(crate) const RECORD: usize = 52;

/// What a string id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub(crate) enum StringKind {
    Url = 0,
    Agent = 1,
    Referrer = 2,
    Method = 3,
    Ip = 4,
}

/// A client address: inline when it prints back to the same text, else a string id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Client {
    V4(u32),
    V6(u128),
    Text(u32),
}

impl Client {
    const V4_TAG: u8 = 0;
    const V6_TAG: u8 = 1;
    const TEXT_TAG: u8 = 2;

    /// The inline form of `ip`, if it has one.
    pub(crate) fn inline(ip: &str) -> Option<Client> {
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

    /// The client's text; `strings` holds the text of [`Client::Text`] ids.
    pub(crate) fn text(self, strings: &[Box<str>]) -> Box<str> {
        match self {
            Client::V4(a) => ipv4_text(a),
            Client::V6(a) => std::net::Ipv6Addr::from(a).to_string().into(),
            Client::Text(id) => strings.get(id as usize).cloned().unwrap_or_default(),
        }
    }
}

/// One row as the reports read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PackedRow {
    pub(crate) timestamp: i64,
    pub(crate) bytes: u64,
    pub(crate) client: Client,
    pub(crate) url: u32,
    pub(crate) agent: u32,
    /// 0 for none.
    pub(crate) referrer: u32,
    pub(crate) method: u32,
    pub(crate) status: u16,
}

impl PackedRow {
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

    /// The ids of `packed_strings` the record uses.
    fn string_ids(&self) -> impl Iterator<Item = u32> + use<> {
        let client = match self.client {
            Client::Text(id) => Some(id),
            _ => None,
        };
        [self.url, self.agent, self.referrer, self.method]
            .into_iter()
            .chain(client)
            // 0 is no referrer.
            .filter(|&id| id != 0)
    }

    pub(crate) fn read(b: &[u8]) -> PackedRow {
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let address = u128::from_le_bytes(b[16..32].try_into().expect("16 bytes"));
        let status_tag = u32_at(48);
        let client = match (status_tag & 0xff) as u8 {
            Client::V4_TAG => Client::V4(address as u32),
            Client::V6_TAG => Client::V6(address),
            _ => Client::Text(address as u32),
        };
        PackedRow {
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

    fn id(&mut self, conn: &Connection, kind: StringKind, value: &str) -> rusqlite::Result<u32> {
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

/// Rows waiting to be packed, their strings numbered against the batch's own distinct ones.
///
/// Looking up four strings per row in the id cache would cost the writer, the bottleneck of
/// parse-to-db, a hash lookup per string. So the parsing threads, which have time to spare,
/// build these for each batch (as its [`Encoder`]), and the writer then looks up only the
/// batch's distinct strings and indexes arrays for the rows.
#[derive(Debug, Default)]
pub struct BatchKeys {
    urls: Interner,
    agents: Interner,
    referrers: Interner,
    methods: Interner,
    /// Clients that are not inline ([`Client::inline`]).
    ips: Interner,
    rows: Vec<KeyedRow>,
}

/// A row of [`BatchKeys`]: its record, with the batch's own string numbers for ids (a
/// [`Client::Text`] too).
#[derive(Debug)]
struct KeyedRow {
    timestamp: i64,
    bytes: u64,
    status: u16,
    client: Client,
    url: u32,
    agent: u32,
    referrer: Option<u32>,
    method: u32,
}

impl BatchKeys {
    /// Room for as many rows as `like` held, so that each batch's rows are not grown to their
    /// size by doubling again (as [`crate::sink::sqlite`] does for the rows it binds).
    pub fn with_room_of(like: &BatchKeys) -> BatchKeys {
        BatchKeys {
            rows: Vec::with_capacity(like.rows.len()),
            ..BatchKeys::default()
        }
    }

    /// Numbers the strings of the next row.
    pub fn push(&mut self, row: &Row<'_>) {
        let client = Client::inline(row.ip).unwrap_or_else(|| Client::Text(self.ips.id(row.ip)));
        self.rows.push(KeyedRow {
            timestamp: row.timestamp,
            bytes: row.bytes.unwrap_or(0),
            status: row.status,
            client,
            url: self.urls.id(row.url),
            agent: self.agents.id(row.user_agent.unwrap_or(ABSENT)),
            referrer: row.referrer.map(|r| self.referrers.id(r)),
            method: self.methods.id(row.method.unwrap_or(ABSENT)),
        });
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

impl Encoder for BatchKeys {
    fn push(&mut self, entry: &LogEntry<'_>, _: Position) {
        BatchKeys::push(self, &Row::of(entry));
    }

    fn finish(&mut self) -> Box<dyn std::any::Any + Send> {
        let next = BatchKeys::with_room_of(self);
        Box::new(std::mem::replace(self, next))
    }
}

/// Reads the rows of `logs` with an id above the one given, in id order, passing each (or the
/// id of a row whose timestamp is not a time) to the callback. The SQLite store's own reader,
/// handed in, so that the packed copy does not name the store that keeps it.
pub type ReadRows<'a> = &'a dyn Fn(
    &Connection,
    i64,
    &mut dyn FnMut(Result<&Row<'_>, i64>) -> anyhow::Result<()>,
) -> anyhow::Result<()>;

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
    /// `packed_state.strings_generation` when `strings` was filled: [`retain`] deletes
    /// strings no record uses any more and moves it, and every writer then forgets the ids
    /// it holds, which may be of deleted strings.
    generation: i64,
    /// Read from the database at the start of each transaction.
    open: Option<OpenBlock>,
    /// Packing is off for this database (a row that cannot be packed); reports read rows.
    disabled: bool,
}

impl Packer {
    /// At the start of a transaction: finds the open block, and packs rows that are not packed
    /// yet (written by another program or an older version), so that at commit every row is.
    /// Returns a message for the user when it did either of those at length.
    pub fn begin(
        &mut self,
        conn: &Connection,
        rows: ReadRows<'_>,
    ) -> anyhow::Result<Option<String>> {
        let state: Option<(Option<i64>, i64)> = conn
            .query_row(
                "SELECT covered, strings_generation FROM packed_state WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (covered, generation) = state.unwrap_or((None, 0));
        if generation != self.generation {
            self.strings.clear();
            self.generation = generation;
        }
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
        rows(conn, covered, &mut |row| match row {
            Ok(row) => {
                keys.push(row);
                if keys.len() == BATCH_LINES as usize {
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
        // Ids can have gaps (rows deleted by another program): the message counts rows.
        let rows: i64 =
            conn.query_row("SELECT count(*) FROM logs WHERE id > ?1", [covered], |r| {
                r.get(0)
            })?;
        Ok(Some(format!(
            "packed {} written by another program or an older version, for reports",
            crate::human::counted(rows as u64, "row")
        )))
    }

    /// Packs rows just inserted into `logs`, in order.
    pub fn add(&mut self, conn: &Connection, keys: &BatchKeys) -> rusqlite::Result<()> {
        if self.disabled {
            return Ok(());
        }
        let mut ids = |interner: &Interner, kind: StringKind| -> rusqlite::Result<Vec<u32>> {
            (interner.names.iter())
                .map(|value| self.strings.id(conn, kind, value))
                .collect()
        };
        let urls = ids(&keys.urls, StringKind::Url)?;
        let agents = ids(&keys.agents, StringKind::Agent)?;
        let referrers = ids(&keys.referrers, StringKind::Referrer)?;
        let methods = ids(&keys.methods, StringKind::Method)?;
        let ips = ids(&keys.ips, StringKind::Ip)?;
        for row in &keys.rows {
            let record = PackedRow {
                timestamp: row.timestamp,
                bytes: row.bytes,
                client: match row.client {
                    Client::Text(local) => Client::Text(ips[local as usize]),
                    inline => inline,
                },
                url: urls[row.url as usize],
                agent: agents[row.agent as usize],
                // String ids start at 1: 0 is no referrer.
                referrer: row.referrer.map_or(0, |r| referrers[r as usize]),
                method: methods[row.method as usize],
                status: row.status,
            };
            self.push(conn, &record)?;
        }
        Ok(())
    }

    fn push(&mut self, conn: &Connection, record: &PackedRow) -> rusqlite::Result<()> {
        let open = self.open.get_or_insert_with(OpenBlock::default);
        record.write(&mut open.data);
        open.dirty = true;
        if open.data.len() >= BLOCK_ROWS * RECORD {
            write_block(conn, open)?;
            // The next block of the transaction is filled in the same buffer, which has its
            // full size already: a new one grew by doubling, block after block, on the
            // writer's thread.
            open.seq += 1;
            open.data.clear();
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

/// `--retain`: removes from the packed copy the records of rows older than `before` (epoch
/// seconds), in the transaction that just deleted those `deleted` rows from `logs` by the
/// same test. The scan of the blocks stops once it has removed as many records (rows are
/// roughly in time order, so that is usually early). Then the strings that no record uses any more are deleted
/// (the retained data must not outlive its window in them either), and every writer is told
/// to forget its string ids. If the records do not match the rows (rows that another program
/// deleted), the packed copy is dropped, its strings with it, and the next writer packs every
/// row again. `covered` follows the rows when the last of them went.
pub fn retain(conn: &Connection, before: i64, deleted: u64) -> rusqlite::Result<()> {
    let covered: Option<i64> = conn
        .query_row("SELECT covered FROM packed_state WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?
        .flatten();
    if deleted == 0 || covered.is_none() {
        return Ok(());
    }
    let mut removed = 0u64;
    // String ids the removed records used: deleted unless a kept record uses them too.
    let mut unused = rustc_hash::FxHashSet::default();
    let blocks: Vec<(i64, Vec<u8>)> = {
        let mut stmt = conn.prepare("SELECT seq, data FROM packed_blocks ORDER BY seq")?;
        let mut out = Vec::new();
        let mut rows = stmt.query([])?;
        while removed < deleted
            && let Some(r) = rows.next()?
        {
            let (seq, data): (i64, Vec<u8>) = (r.get(0)?, r.get(1)?);
            let mut kept = Vec::with_capacity(data.len());
            for record in data.chunks_exact(RECORD) {
                let row = PackedRow::read(record);
                if row.timestamp < before {
                    removed += 1;
                    unused.extend(row.string_ids());
                } else {
                    kept.extend_from_slice(record);
                }
            }
            if kept.len() != data.len() {
                out.push((seq, kept));
            }
        }
        out
    };
    if removed != deleted {
        conn.execute_batch(
            "UPDATE packed_state SET covered = 0, strings_generation = strings_generation + 1 \
             WHERE id = 1; DELETE FROM packed_blocks; DELETE FROM packed_strings;",
        )?;
        return Ok(());
    }
    // Every row was packed (`covered` at or past the last id): it still is, whichever went.
    conn.execute(
        "UPDATE packed_state SET covered = (SELECT coalesce(max(id), 0) FROM logs) \
         WHERE id = 1 AND covered >= (SELECT coalesce(max(id), 0) FROM logs)",
        [],
    )?;
    for (seq, kept) in &blocks {
        if kept.is_empty() {
            conn.execute("DELETE FROM packed_blocks WHERE seq = ?1", [seq])?;
        } else {
            conn.execute(
                "UPDATE packed_blocks SET rows = ?2, data = ?3 WHERE seq = ?1",
                params![seq, (kept.len() / RECORD) as i64, kept],
            )?;
        }
    }
    let mut stmt = conn.prepare("SELECT data FROM packed_blocks")?;
    let mut rows = stmt.query([])?;
    while !unused.is_empty()
        && let Some(r) = rows.next()?
    {
        let data: Vec<u8> = r.get(0)?;
        for record in data.chunks_exact(RECORD) {
            for id in PackedRow::read(record).string_ids() {
                unused.remove(&id);
            }
        }
    }
    let mut delete = conn.prepare("DELETE FROM packed_strings WHERE id = ?1")?;
    for id in &unused {
        delete.execute([id])?;
    }
    if !unused.is_empty() {
        conn.execute(
            "UPDATE packed_state SET strings_generation = strings_generation + 1 WHERE id = 1",
            [],
        )?;
    }
    Ok(())
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
            .map(|i| strings.id(&conn, StringKind::Url, &long(i)).unwrap())
            .collect();
        assert!(strings.bytes[StringKind::Url as usize] <= Strings::FULL_BYTES);
        assert!(strings.ids[StringKind::Url as usize].len() < 20);
        // Strings that fell out of the cache get their committed id back from the table.
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(strings.id(&conn, StringKind::Url, &long(i)).unwrap(), *id);
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
    fn records_round_trip() {
        let record = PackedRow {
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
        assert_eq!(PackedRow::read(&bytes), record);
        let text = PackedRow {
            client: Client::Text(42),
            ..record
        };
        bytes.clear();
        text.write(&mut bytes);
        assert_eq!(PackedRow::read(&bytes), text);
    }
}
