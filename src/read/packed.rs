//! Counting from the packed copy of a database's rows (see [`crate::packed`]): fixed-size
//! records whose strings are ids into `packed_strings`, read a block at a time.
//!
//! Only the strings of the kinds the query needs are loaded, renumbered per kind so that the
//! counter's arrays are dense: `--report status` loads none.

use std::borrow::Cow;

use rusqlite::Connection;
use rustc_hash::FxHashMap;

use crate::packed::{Client, PackedRow, RECORD, StringKind};
use crate::privacy::strip_query;
use crate::report::count::{self, Counter, Hit, Names, Needs};
use crate::report::filter::Filter;
use crate::report::shard::{self, Share};
use crate::report::{Counts, Query};
use crate::row::ClientKey;

/// Records handed to the counting threads at a time: several packed blocks (of
/// [`crate::packed::BLOCK_ROWS`] rows), so that the threads wake once per hundreds of
/// kilobytes rather than per block (on two cores the reader and the counters share them).
const RUN_ROWS: usize = 16 * crate::packed::BLOCK_ROWS;
/// Runs that may wait for the slowest counting thread.
const RUNS_AHEAD: usize = 4;

/// The counts of the rows that pass the query's filters, from the packed copy, if the
/// database has one that covers every row. Run inside a read transaction, so that the rows
/// and the records come from one snapshot. Response times are not in the packed records:
/// the times report reads the rows.
pub fn counts(conn: &Connection, query: &Query) -> anyhow::Result<Option<Counts>> {
    if query.wants().times || !covers_every_row(conn)? {
        return Ok(None);
    }
    let needs = Needs::of(query.wants(), &query.filters);
    let strings = LoadedStrings::load(conn, needs, query.filters.strip_query)?;
    let (read, results) = shard::fan_out(
        query.threads,
        RUNS_AHEAD,
        |feed: &mut shard::Feed<Vec<u8>>| {
            let mut stmt =
                conn.prepare("SELECT seq, rows, data FROM packed_blocks ORDER BY seq")?;
            let mut blocks = stmt.query([])?;
            let mut run = Vec::with_capacity(RUN_ROWS * RECORD);
            while let Some(r) = blocks.next()? {
                let data = r.get_ref(2)?.as_blob()?;
                let rows: i64 = r.get(1)?;
                if usize::try_from(rows)
                    .ok()
                    .and_then(|n| n.checked_mul(RECORD))
                    != Some(data.len())
                {
                    let seq: i64 = r.get(0)?;
                    anyhow::bail!(
                        "packed block {seq} holds {} bytes for {rows} rows: the packed copy is \
                         damaged (aggregate-db --scan reads the rows themselves)",
                        data.len()
                    );
                }
                run.extend_from_slice(data);
                if run.len() >= RUN_ROWS * RECORD {
                    // A run the threads are done with is filled again.
                    let next = match feed.spent() {
                        Some(mut spent) => {
                            spent.clear();
                            spent
                        }
                        None => Vec::with_capacity(RUN_ROWS * RECORD),
                    };
                    if !feed.send(std::mem::replace(&mut run, next)) {
                        return Ok(());
                    }
                }
            }
            if !run.is_empty() {
                feed.send(run);
            }
            Ok(())
        },
        |share, blocks| count_share(share, blocks, query, needs, &strings),
    )?;
    read?;
    let mut counts = Counts::default();
    for other in results {
        counts.add_other_clients(other);
    }
    Ok(Some(counts))
}

/// Does the database have a packed copy, and does it cover every row of `logs`?
fn covers_every_row(conn: &Connection) -> rusqlite::Result<bool> {
    let has_state: bool = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'packed_state'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has_state {
        return Ok(false);
    }
    let covered: Option<i64> =
        conn.query_row("SELECT covered FROM packed_state WHERE id = 1", [], |r| {
            r.get(0)
        })?;
    let rows: i64 = conn.query_row("SELECT coalesce(max(id), 0) FROM logs", [], |r| r.get(0))?;
    Ok(covered == Some(rows))
}

/// One counting thread: the records of its share of the clients that pass the filters, as
/// hits for the one counter.
fn count_share<'s>(
    share: Share,
    blocks: shard::Blocks<Vec<u8>>,
    query: &Query,
    needs: Needs,
    strings: &'s LoadedStrings,
) -> Counts {
    let mut filter = Filter::new(&query.filters);
    // Most reports filter nothing: their loop then asks the filter nothing either.
    let filtered = !query.filters.is_empty();
    let mut counter = Counter::new(query.wants());
    let mut clients = ClientNumbers::default();
    for block in blocks {
        for bytes in block.chunks_exact(RECORD) {
            let r = PackedRow::read(bytes);
            if !share.has_hash(client_hash(r.client)) {
                continue;
            }
            if filtered && !filter.accepts_time_and_status(r.timestamp, r.status) {
                continue;
            }
            let client = match needs.client {
                true => clients.key(r.client),
                false => 0,
            };
            let (url, method, agent) = (
                strings.dense(r.url),
                strings.dense(r.method),
                strings.dense(r.agent),
            );
            let text = |list: &'s [Box<str>], id: u32| list.get(id as usize).map_or("", |t| t);
            if filtered
                && (!filter
                    .accepts_client(client, || Cow::Owned(r.client.text(&strings.ips).into()))
                    || !filter.accepts_url(url, || text(&strings.urls, url))
                    || !filter.accepts_method(method, || text(&strings.methods, method))
                    || !filter.accepts_agent(agent, || text(&strings.agents, agent)))
            {
                continue;
            }
            counter.add(&Hit {
                timestamp: r.timestamp,
                status: r.status,
                bytes: r.bytes,
                client,
                url,
                agent,
                // String ids start at 1: 0 is no referrer.
                referrer: (r.referrer != 0).then(|| strings.dense(r.referrer)),
                method,
                time_us: None,
            });
        }
    }
    counter.into_counts(&mut PackedNames { strings, clients })
}

/// The client's hash for [`Share::has_hash`]: from its numbers, which are at hand, not from
/// its text.
#[inline]
fn client_hash(client: Client) -> u64 {
    let x = match client {
        Client::V4(a) => u64::from(a),
        Client::V6(a) => (a as u64) ^ (a >> 64) as u64,
        Client::Text(id) => u64::from(id) ^ 0x5555,
    };
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The strings of the kinds needed, numbered densely per kind. With `--strip-query`, URLs
/// and referrers are loaded without their query string, and the ids of those that are then
/// the same text share one number: the rows are grouped so at no cost per row.
#[derive(Default)]
struct LoadedStrings {
    /// By string id: its number within its kind (0 for a kind not loaded).
    dense: Vec<u32>,
    urls: Vec<Box<str>>,
    agents: Vec<Box<str>>,
    referrers: Vec<Box<str>>,
    methods: Vec<Box<str>>,
    /// By string id, for [`Client::Text`] (which holds string ids): empty where not a client.
    ips: Vec<Box<str>>,
}

impl LoadedStrings {
    fn load(conn: &Connection, needs: Needs, strip: bool) -> rusqlite::Result<LoadedStrings> {
        let mut strings = LoadedStrings::default();
        // Per kind, with `strip`: the number of each text without its query.
        let mut stripped: [FxHashMap<Box<str>, u32>; 2] = Default::default();
        let mut kinds = [false; 256];
        for (need, kind) in [
            (needs.url, StringKind::Url),
            (needs.agent, StringKind::Agent),
            (needs.referrer, StringKind::Referrer),
            (needs.method, StringKind::Method),
            (needs.client_text, StringKind::Ip),
        ] {
            kinds[kind as usize] = need;
        }
        if !kinds.contains(&true) {
            return Ok(strings);
        }
        // The whole table in its own order, the kinds told apart here: a `WHERE kind IN`
        // would go through the (kind, value) index and then sort by id.
        let mut stmt = conn.prepare("SELECT id, kind, value FROM packed_strings")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let id = usize::try_from(r.get::<_, i64>(0)?).unwrap_or(usize::MAX);
            let kind: u8 = r.get(1)?;
            if id >= u32::MAX as usize || !kinds[usize::from(kind)] {
                continue;
            }
            let value: Box<str> = r.get_ref(2)?.as_str()?.into();
            if kind == StringKind::Ip as u8 {
                if id >= strings.ips.len() {
                    strings.ips.resize(id + 1, Box::default());
                }
                strings.ips[id] = value;
                continue;
            }
            let (list, grouped) = match kind {
                k if k == StringKind::Url as u8 => (&mut strings.urls, Some(0)),
                k if k == StringKind::Agent as u8 => (&mut strings.agents, None),
                k if k == StringKind::Referrer as u8 => (&mut strings.referrers, Some(1)),
                _ => (&mut strings.methods, None),
            };
            if id >= strings.dense.len() {
                strings.dense.resize(id + 1, 0);
            }
            strings.dense[id] = match grouped.filter(|_| strip) {
                Some(kind) => {
                    let text: Box<str> = strip_query(&value).into();
                    *stripped[kind].entry(text).or_insert_with_key(|text| {
                        list.push(text.clone());
                        list.len() as u32 - 1
                    })
                }
                None => {
                    list.push(value);
                    list.len() as u32 - 1
                }
            };
        }
        Ok(strings)
    }

    #[inline]
    fn dense(&self, id: u32) -> u32 {
        self.dense.get(id as usize).copied().unwrap_or(0)
    }
}

/// Clients other than IPv4 addresses, numbered in order of first sight for [`ClientKey`]s.
#[derive(Default)]
struct ClientNumbers {
    numbers: FxHashMap<Client, u32>,
    others: Vec<Client>,
}

impl ClientNumbers {
    #[inline]
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
}

struct PackedNames<'a> {
    strings: &'a LoadedStrings,
    clients: ClientNumbers,
}

impl Names for PackedNames<'_> {
    fn name(&mut self, kind: count::Kind, id: u32) -> Box<str> {
        let list = match kind {
            count::Kind::Url => &self.strings.urls,
            count::Kind::Agent => &self.strings.agents,
            count::Kind::Referrer => &self.strings.referrers,
            count::Kind::Method => &self.strings.methods,
        };
        list.get(id as usize).cloned().unwrap_or_default()
    }

    fn client(&mut self, key: u64) -> Box<str> {
        match ClientKey::of(key) {
            ClientKey::V4(a) => Client::V4(a).text(&[]),
            ClientKey::Other(n) => self.clients.others[n as usize].text(&self.strings.ips),
        }
    }
}
