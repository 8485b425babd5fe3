//! Reading the `logs` table of a database back for the reports: from its packed copy when it
//! covers every row ([`super::packed`]), else from the rows themselves.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::report::count::RowCounter;
use crate::report::shard;
use crate::report::{Counts, Query, Section};
use crate::row::{Arena, RowSpans};
use crate::sink::sqlite::{for_each_row, open_logs_for_reading, stored_offsets};
use crate::zone::LogOffsets;

/// How long a report waits for a writer's lock: readers in WAL mode rarely wait at all.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The offsets the rows of the database at `path` were written in, as it recorded them
/// (unknown in a database of an earlier version).
pub fn log_offsets(path: &Path) -> anyhow::Result<LogOffsets> {
    let conn = open_logs_for_reading(path, BUSY_TIMEOUT)?;
    // A database too old to have the settings table has no record either.
    Ok(stored_offsets(&conn).unwrap_or_default())
}

/// The counts of the entries of the database at `path` that pass the query's filters: from
/// its packed copy of the rows when it has one that covers every row (and `packed` allows),
/// else from its rows. Both are read in one snapshot, through a read-only connection, so a
/// report works while a parser writes.
pub fn counts(path: &Path, query: &Query, packed: bool) -> anyhow::Result<Counts> {
    super::one_host(query, path)?;
    let conn = open_logs_for_reading(path, BUSY_TIMEOUT)?;
    let context = || format!("cannot read database {}", path.display());
    conn.execute_batch("BEGIN").with_context(context)?;
    // No packed copy, or one behind the rows (written by another program, or an older
    // version): the rows answer. A packed copy that cannot be read is an error, not a reason
    // to answer silently from elsewhere.
    let mut counts = match packed {
        true => super::packed::counts(&conn, query)
            .with_context(|| format!("cannot read the packed rows of {}", path.display()))?,
        false => None,
    };
    if counts.is_none() {
        counts = Some(from_rows(path, &conn, query)?);
    }
    let mut counts = counts.expect("counted from one or the other");
    if query.sections.contains(&Section::Rejects) {
        counts.rejects = super::rejects::from_database(&conn).with_context(context)?;
    }
    Ok(counts)
}

/// Rows per [`RowBlock`].
const ROWS_PER_BLOCK: usize = 4096;

/// Bytes of text per [`RowBlock`], at most (but for one row): a block of 4,096 rows of
/// megabyte-long URLs would hold gigabytes, and the few in flight would all be that size.
const BLOCK_BYTES: usize = 512 << 10;

/// Rows handed from the reading thread to the counting ones, their text in one arena.
#[derive(Default)]
struct RowBlock {
    text: Arena,
    rows: Vec<RowSpans>,
}

/// The counts from the rows themselves, read on this thread and counted on `query.threads`.
fn from_rows(path: &Path, conn: &rusqlite::Connection, query: &Query) -> anyhow::Result<Counts> {
    let wants = query.wants();
    let mut bad = None;
    let (read, results) = shard::fan_out(
        query.threads,
        4,
        |send| {
            let mut block = RowBlock::default();
            let mut stopped = false;
            for_each_row(conn, 0, &mut |row| {
                let row = row.map_err(|id| {
                    bad = Some(id);
                    anyhow::anyhow!("row {id} has no valid timestamp")
                })?;
                block.rows.push(RowSpans::push(&mut block.text, row));
                let full = block.rows.len() == ROWS_PER_BLOCK || block.text.len() >= BLOCK_BYTES;
                // Only a counting thread that panicked stops taking blocks; the join says so.
                if full && !send(std::mem::take(&mut block)) {
                    stopped = true;
                    bail!("the counting threads stopped");
                }
                Ok(())
            })?;
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
    if let Some(id) = bad {
        bail!("{}: row {id} has no valid timestamp", path.display());
    }
    read.with_context(|| format!("cannot read database {}", path.display()))?;
    let mut counts = Counts::default();
    for other in results {
        counts.add_other_clients(other);
    }
    Ok(counts)
}
