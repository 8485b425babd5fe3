//! Each store read back for the reports: a CSV written by parse-to-csv ([`csv`]), the rows of
//! a database ([`sqlite`]) or their packed copy ([`packed`]), and the rejected lines either
//! kept ([`rejects`]).
//!
//! A reader only turns what its store holds into rows or hits for the report engine
//! ([`crate::report`]), which filters, counts and ranks them the same way for every store.

pub mod clickhouse;
pub mod csv;
pub mod packed;
mod records;
pub mod rejects;
pub mod sqlite;

use crate::report::count::RowCounter;
use crate::report::shard::{Blocks, Share};
use crate::report::{Counts, Query, Section};
use crate::row::{Arena, Row, RowSpans};

/// Refuses the hosts report for a store of one host (a CSV, a SQLite file), rather than
/// answering it with an empty list.
fn one_host(query: &Query, store: &std::path::Path) -> anyhow::Result<()> {
    if query.sections.contains(&Section::Hosts) {
        anyhow::bail!(
            "the hosts report needs a ClickHouse store, which keeps the rows of many web \
             servers (--db clickhouse://...); {} holds those of one",
            store.display()
        );
    }
    Ok(())
}

/// Rows per [`RowBlock`].
const ROWS_PER_BLOCK: usize = 4096;

/// Bytes of text per [`RowBlock`], at most (but for one row): a block of 4,096 rows of
/// megabyte-long URLs would hold gigabytes, and the few in flight would all be that size.
const BLOCK_BYTES: usize = 512 << 10;

/// Rows handed from a store's reading thread to the counting ones, their text in one arena.
#[derive(Default)]
struct RowBlock {
    text: Arena,
    rows: Vec<RowSpans>,
}

impl RowBlock {
    /// Adds `row`; true when the block is full, to be sent.
    fn push(&mut self, row: &Row<'_>) -> bool {
        self.rows.push(RowSpans::push(&mut self.text, row));
        self.rows.len() == ROWS_PER_BLOCK || self.text.len() >= BLOCK_BYTES
    }
}

/// A counting thread's work: the rows of its share of the clients, in every block.
fn count_share(share: Share, blocks: Blocks<RowBlock>, query: &Query) -> Counts {
    let mut counter = RowCounter::new(query.wants(), &query.filters);
    for block in blocks {
        for spans in &block.rows {
            let row = spans.row(&block.text);
            if share.has(row.ip.as_bytes()) {
                counter.add(&row);
            }
        }
    }
    counter.into_counts()
}

/// The counts of the threads, which split the clients between them, added up.
fn add_up(results: Vec<Counts>) -> Counts {
    let mut counts = Counts::default();
    for other in results {
        counts.add_other_clients(other);
    }
    counts
}
