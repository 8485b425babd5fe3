//! Reading the `logs` table of a database back for the reports: from its packed copy when it
//! covers every row ([`super::packed`]), else from the rows themselves.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::report::shard;
use crate::report::{Counts, Query, Section};
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

/// Tells whether the database at a path changed. SQLite's `data_version`, read on a
/// connection kept open, differs between two reads when another connection committed in
/// between. Beside it: the file's identity, for a database replaced by another of the same
/// name (whose inode cannot be the old one's while the connection holds that file open); the
/// sizes and times of the file and its WAL, for a connection that SQLite opened immutable (a
/// reader that may not create the `-shm` beside it), whose `data_version` never moves; and
/// the number of the connection, since a new one counts from where any other started.
///
/// While one is open, nothing else in the process may open and close the database file
/// outside SQLite: closing any descriptor of a file drops the process's POSIX locks on it,
/// this connection's included, and a writer that exits then deletes the WAL under it.
pub struct Changes {
    path: PathBuf,
    /// Device and inode of the file `conn` reads.
    file: (u64, u64),
    conn: rusqlite::Connection,
    /// Which of the connections this process opened to tell changes `conn` is.
    number: u64,
}

impl Changes {
    /// Opens the database read-only, as a report does, and keeps it open.
    pub fn open(path: &Path) -> anyhow::Result<Changes> {
        static OPENED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let file = identity(path)?;
        let conn = open_logs_for_reading(path, BUSY_TIMEOUT)?;
        Ok(Changes {
            path: path.to_owned(),
            file: (file.dev(), file.ino()),
            conn,
            number: OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// A value that differs from the last one given when the database changed since.
    pub fn version(&mut self) -> anyhow::Result<String> {
        let file = identity(&self.path)?;
        if (file.dev(), file.ino()) != self.file {
            *self = Changes::open(&self.path)?;
        }
        let version: i64 = self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .with_context(|| format!("cannot read database {}", self.path.display()))?;
        let wal = std::fs::metadata(format!("{}-wal", self.path.display())).ok();
        let stamp = |m: Option<&std::fs::Metadata>| {
            m.map_or((0, 0, 0), |m| (m.len(), m.mtime(), m.mtime_nsec()))
        };
        Ok(format!(
            "{} {:?} {version} {:?} {:?}",
            self.number,
            self.file,
            stamp(Some(&file)),
            stamp(wal.as_ref())
        ))
    }
}

fn identity(path: &Path) -> anyhow::Result<std::fs::Metadata> {
    std::fs::metadata(path).with_context(|| format!("cannot read database {}", path.display()))
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

/// The counts from the rows themselves, read on this thread and counted on `query.threads`.
fn from_rows(path: &Path, conn: &rusqlite::Connection, query: &Query) -> anyhow::Result<Counts> {
    let mut bad = None;
    let (read, results) = shard::fan_out(
        query.threads,
        4,
        |feed| {
            let mut block = super::RowBlock::default();
            let mut stopped = false;
            for_each_row(conn, 0, &mut |row| {
                let row = row.map_err(|id| {
                    bad = Some(id);
                    anyhow::anyhow!("row {id} has no valid timestamp")
                })?;
                let full = block.push(row);
                // Only a counting thread that panicked stops taking blocks; the join says so.
                if full && !feed.send(std::mem::take(&mut block)) {
                    stopped = true;
                    bail!("the counting threads stopped");
                }
                Ok(())
            })?;
            if !stopped {
                feed.send(block);
            }
            Ok(())
        },
        |share, blocks| super::count_share(share, blocks, query),
    )?;
    if let Some(id) = bad {
        bail!("{}: row {id} has no valid timestamp", path.display());
    }
    read.with_context(|| format!("cannot read database {}", path.display()))?;
    Ok(super::add_up(results))
}
