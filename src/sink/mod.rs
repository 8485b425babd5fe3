//! Sinks: where parsed entries go. One trait, three stores (CSV, SQLite and ClickHouse).
//!
//! A sink owns its checkpoints. Entries written since the last [`Sink::commit`] become durable
//! only together with the checkpoint that covers them; that pairing is the whole exactly-once
//! guarantee, so each store implements it in the way its medium allows (one transaction, or data
//! first and then an atomically renamed checkpoint file).

pub mod clickhouse;
pub mod csv;
pub mod sqlite;

use crate::batch::{Batch, Position, Prepare};
use crate::checkpoint::Checkpoint;
use crate::parse::Reject;

/// Where a batch's lines were read: the record they are taken under (the checkpoint's key:
/// the log's path, a rotated file's record, or `-`), and, for a file, its device and inode,
/// which tell apart the files a path named in turn across rotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    pub source: &'a str,
    pub file: Option<(u64, u64)>,
}

/// A line that was not taken, as kept aside.
#[derive(Debug)]
pub struct Rejected<'a> {
    pub origin: Origin<'a>,
    /// Its 1-based line number and byte offset in the source.
    pub at: Position,
    pub reason: Reject,
    /// The bytes as read (only the head of an over-long line).
    pub raw: &'a [u8],
}

/// A change to the saved checkpoints, made durable together with the rows before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update<'a> {
    /// Save `Checkpoint` under the key.
    Set(&'a str, Checkpoint),
    /// Forget the key (a rotated file that has been read to its end is kept as done instead).
    Remove(&'a str),
}

/// A store of log entries with per-source checkpoints.
///
/// Writers hold the store's lock ([`crate::lock`]) from reading a checkpoint to committing the
/// rows it covers; nothing in the trait is safe to interleave between two processes without it.
pub trait Sink {
    /// The writer has (again) taken the store's lock: a store that keeps its checkpoints in
    /// memory between commits reads them again, since another writer may have committed
    /// since (the ClickHouse store; the others read them from the store at each call).
    fn refresh(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    /// The checkpoint saved for `source` (an absolute path), if any.
    fn checkpoint(&mut self, source: &str) -> anyhow::Result<Option<Checkpoint>>;

    /// Every saved checkpoint, with its key: the current files of the logs, and the records of
    /// their rotated files (see [`crate::rotation`]).
    fn checkpoints(&mut self) -> anyhow::Result<Vec<(String, Checkpoint)>>;

    /// The log format the rows of `source` were read with (`--log-format`), as saved with its
    /// checkpoint: `None` without a checkpoint, `combined` for one saved before formats were
    /// recorded (the only format then).
    fn log_format(&mut self, source: &str) -> anyhow::Result<Option<String>>;

    /// The log format this run reads with, saved with every checkpoint it commits.
    fn set_log_format(&mut self, name: &str);

    /// Does the store hold any rows already (from this or an earlier run)?
    fn holds_rows(&mut self) -> anyhow::Result<bool>;

    /// The privacy choices its rows were stored with ([`crate::privacy::Scrub::describe`]):
    /// `None` when none was recorded (a store of an earlier version, or a new one).
    fn scrubbed(&mut self) -> anyhow::Result<Option<String>>;

    /// Records the privacy choices of this run; made durable by its first commit at the
    /// latest.
    fn set_scrubbed(&mut self, choices: &str) -> anyhow::Result<()>;

    /// What the parsing threads should prepare in each batch for [`Sink::write_batch`].
    fn prepare(&self) -> Prepare {
        Prepare::default()
    }

    /// Adds the entries of a batch read from `origin`, prepared as [`Sink::prepare`] asked, to
    /// the pending batch. The store may take what its encoder built ([`Batch::take_encoded`])
    /// rather than copy it.
    fn write_batch(&mut self, origin: Origin<'_>, batch: &mut Batch) -> anyhow::Result<()>;

    /// Keeps a rejected line with the pending batch, where the store has room for it.
    fn reject(&mut self, _rejected: &Rejected<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    /// Makes the pending batch durable, together with the checkpoint `updates` that cover it
    /// (none for a source that has no checkpoint, such as stdin).
    fn commit(&mut self, updates: &[Update<'_>]) -> anyhow::Result<()>;

    /// Forgets the pending batch: the store stays as its last commit left it, so a pass that
    /// failed half-way (a log truncated under it) can be retried without a row twice.
    fn abort(&mut self);

    /// The store's path, for messages.
    fn describe(&self) -> String;
}
