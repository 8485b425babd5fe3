//! log-pipeline: turn Apache/Nginx access logs into CSV, SQLite (or ClickHouse) and reports.
//!
//! The binaries in `src/bin/` are thin: they parse arguments into a config from one of these
//! modules, call one function, and map the result to an exit code through [`cli`].

pub mod agent;
pub mod batch;
pub mod checkpoint;
pub mod cli;
pub mod clickhouse;
pub mod dashboard;
pub mod entry;
pub mod follow;
pub mod format;
pub mod generate;
pub mod human;
pub mod ingest;
pub mod lock;
mod mask;
pub mod packed;
pub mod parse;
pub mod privacy;
pub mod read;
pub mod report;
pub mod rotation;
pub mod row;
pub mod sink;
pub mod source;
pub mod store;
pub mod zone;

pub use entry::LogEntry;
pub use parse::{Reject, parse_line};
