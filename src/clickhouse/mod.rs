//! ClickHouse, the store for fleets: its address ([`address`]), a small client of its HTTP
//! interface ([`http`]), the tables the writers and the reports share ([`schema`]), and the
//! text of its SQL and its answers ([`sql`]).
//!
//! Only SQL and HTTP features that both Debian's ClickHouse 18.16 and current releases have are
//! used: `MergeTree` with `PARTITION BY`, `Distributed`, Basic authentication, the `database`,
//! `query_id` and settings parameters, `Native` and `TabSeparated`.

pub mod address;
pub mod http;
pub mod schema;
pub mod sql;

pub use address::Address;
pub use http::{Client, Failure, with_retries};
pub use schema::{COLUMNS, Kind, SCHEMA_VERSION, Tables};
pub use sql::{quote, tsv_unescape};

use anyhow::Context;

/// The machine's host name, the default `--host`.
pub fn machine_host() -> anyhow::Result<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the live buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot read the host name");
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
}
