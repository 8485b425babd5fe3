//! Reading a ClickHouse database back for the reports: its entries, streamed as
//! TabSeparated rows of only the columns the reports use, into the same counter as every other
//! store (so the reports are those of a SQLite store of the same lines); the rejects grouped
//! by the server.

use anyhow::bail;

use crate::clickhouse::{Failure, Kind, Tables, quote, tsv_unescape};
use crate::report::count::RowCounter;
use crate::report::shard;
use crate::report::{Counts, Query, RejectGroup, Section};
use crate::row::{Arena, Row, RowSpans};
use crate::zone::LogOffsets;

/// `WHERE` for rows of `kind` of the hosts asked for (all without `--host`).
fn rows_of(kind: Kind, hosts: &[String]) -> String {
    let mut sql = format!("kind = {}", kind as u8);
    if !hosts.is_empty() {
        let list: Vec<String> = hosts.iter().map(|h| quote(h)).collect();
        sql.push_str(&format!(" AND host IN ({})", list.join(", ")));
    }
    sql
}

fn failed(tables: &Tables, e: Failure) -> anyhow::Error {
    match e {
        Failure::Invalid(message) => anyhow::anyhow!("{message}"),
        e => anyhow::anyhow!("{}: {e}", tables.client.address()),
    }
}

/// The offsets the entries of `hosts` were written in, as their writers recorded them.
pub fn log_offsets(tables: &Tables, hosts: &[String]) -> anyhow::Result<LogOffsets> {
    tables.check().map_err(|e| failed(tables, e))?;
    let answer = (tables.client)
        .query(&format!(
            "SELECT argMax(state, seq) FROM {} WHERE {} GROUP BY host FORMAT TabSeparated",
            tables.logs(),
            rows_of(Kind::Progress, hosts)
        ))
        .map_err(|e| failed(tables, e))?;
    let mut all = LogOffsets::Unknown;
    for line in answer.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let mut json = Vec::new();
        tsv_unescape(line, &mut json);
        let state: serde_json::Value = serde_json::from_slice(&json)?;
        if let Some(setting) = state["offsets"].as_str() {
            all.merge(LogOffsets::from_setting(setting));
        }
    }
    Ok(all)
}

/// Rows per block handed to the counting threads, and bytes of text at most.
const ROWS_PER_BLOCK: usize = 4096;
const BLOCK_BYTES: usize = 512 << 10;

#[derive(Default)]
struct RowBlock {
    text: Arena,
    rows: Vec<RowSpans>,
}

/// The counts of the entries of `hosts` that pass the query's filters, counted here.
pub fn counts(tables: &Tables, hosts: &[String], query: &Query) -> anyhow::Result<Counts> {
    tables.check().map_err(|e| failed(tables, e))?;
    let wants = query.wants();
    let needs = crate::report::count::Needs::of(wants, &query.filters);
    // What no report asks for is not sent: the server gives a constant instead.
    let column = |name: &str, needed: bool, none: &str| match needed {
        true => format!("`{name}`"),
        false => none.to_owned(),
    };
    let sql = format!(
        "SELECT ip, timestamp, {}, {}, status, bytes, {}, {}, {} FROM {} WHERE {} \
         FORMAT TabSeparated",
        column("method", needs.method, "NULL"),
        column("url", needs.url, "''"),
        column("referrer", needs.referrer, "NULL"),
        column("user_agent", needs.agent, "NULL"),
        column("response_time_us", wants.times, "NULL"),
        tables.logs(),
        rows_of(Kind::Entry, hosts)
    );
    let mut bad = None;
    let (read, results) = shard::fan_out(
        query.threads,
        4,
        |send| {
            let mut block = RowBlock::default();
            let mut rest = Vec::new();
            let mut fields: [Vec<u8>; 9] = Default::default();
            let mut stopped = false;
            let mut line_no = 0u64;
            let mut take = |line: &[u8], block: &mut RowBlock| -> bool {
                line_no += 1;
                match row_of(line, &mut fields, block) {
                    Some(()) => true,
                    None => {
                        bad.get_or_insert(line_no);
                        false
                    }
                }
            };
            (tables.client)
                .stream(&sql, &mut |chunk| {
                    if stopped {
                        return Ok(());
                    }
                    rest.extend_from_slice(chunk);
                    let mut start = 0;
                    while let Some(end) = memchr::memchr(b'\n', &rest[start..]) {
                        let line = &rest[start..start + end];
                        start += end + 1;
                        if !take(line, &mut block) {
                            stopped = true;
                            return Ok(());
                        }
                        let full =
                            block.rows.len() == ROWS_PER_BLOCK || block.text.len() >= BLOCK_BYTES;
                        if full && !send(std::mem::take(&mut block)) {
                            stopped = true;
                            return Ok(());
                        }
                    }
                    rest.drain(..start);
                    Ok(())
                })
                .map_err(|e| failed(tables, e))?;
            if !stopped {
                send(block);
            }
            Ok(())
        },
        |share, blocks| {
            let mut counter = RowCounter::new(wants, &query.filters);
            for block in blocks {
                for spans in &block.rows {
                    let row = spans.row(&block.text);
                    if share.has(row.ip.as_bytes()) {
                        counter.add(&row);
                    }
                }
            }
            counter.into_counts()
        },
    )?;
    if let Some(n) = bad {
        bail!(
            "{}: row {n} of the answer is not what log-pipeline writes",
            tables.client.address()
        );
    }
    read?;
    let mut counts = Counts::default();
    for other in results {
        counts.add_other_clients(other);
    }
    if query.sections.contains(&Section::Rejects) {
        counts.rejects = rejects(tables, hosts)?;
    }
    Ok(counts)
}

/// Reads one answer line into `block`; `None` if it is not 9 fields of the expected types.
fn row_of(line: &[u8], fields: &mut [Vec<u8>; 9], block: &mut RowBlock) -> Option<()> {
    let mut absent = [false; 9];
    let mut parts = line.split(|&b| b == b'\t');
    for (i, field) in fields.iter_mut().enumerate() {
        let raw = parts.next()?;
        field.clear();
        absent[i] = raw == b"\\N";
        if !absent[i] {
            tsv_unescape(raw, field);
        }
    }
    if parts.next().is_some() {
        return None;
    }
    let text = |i: usize| match absent[i] {
        true => None,
        false => std::str::from_utf8(&fields[i]).ok(),
    };
    let int = |i: usize| text(i).and_then(|t| t.parse::<u64>().ok());
    let row = Row {
        ip: text(0)?,
        timestamp: text(1)?.parse().ok()?,
        method: text(2),
        url: text(3).unwrap_or(""),
        status: u16::try_from(int(4)?).ok()?,
        bytes: int(5),
        referrer: text(6),
        user_agent: text(7),
        response_time_us: int(8),
    };
    block.rows.push(RowSpans::push(&mut block.text, &row));
    Some(())
}

/// The rejected lines of `hosts`, grouped by reason, with the first of each as the sample.
fn rejects(tables: &Tables, hosts: &[String]) -> anyhow::Result<Vec<RejectGroup>> {
    let answer = (tables.client)
        .query(&format!(
            "SELECT reason, count(), argMin(source, (seq, line)), argMin(line, (seq, line)), \
             argMin(url, (seq, line)) FROM {} WHERE {} GROUP BY reason FORMAT TabSeparated",
            tables.logs(),
            rows_of(Kind::Reject, hosts)
        ))
        .map_err(|e| failed(tables, e))?;
    let mut groups: Vec<RejectGroup> = Vec::new();
    for line in answer.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let fields: Vec<Vec<u8>> = line
            .split(|&b| b == b'\t')
            .map(|f| {
                let mut out = Vec::new();
                tsv_unescape(f, &mut out);
                out
            })
            .collect();
        let [reason, lines, source, number, raw] = &fields[..] else {
            bail!("{}: an unexpected answer", tables.client.address());
        };
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let reason = super::rejects::slug_of(&text(reason));
        let lines: u64 = text(lines).parse()?;
        match groups.iter_mut().find(|g| g.reason == reason) {
            Some(group) => group.lines += lines,
            None => groups.push(RejectGroup {
                reason,
                lines,
                source: text(source),
                line: text(number).parse()?,
                sample: text(raw),
            }),
        }
    }
    Ok(groups)
}
