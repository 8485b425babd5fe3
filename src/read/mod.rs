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

use crate::report::{Query, Section};

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
