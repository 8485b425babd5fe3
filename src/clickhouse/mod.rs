//! ClickHouse, the store for fleets: its address ([`address`]), a small client of its HTTP
//! interface ([`http`]), and the tables the writers and the reports share ([`schema`]).
//!
//! Only SQL and HTTP features that both Debian's ClickHouse 18.16 and current releases have are
//! used: `MergeTree` with `PARTITION BY`, `Distributed`, Basic authentication, the `database`,
//! `query_id` and settings parameters, `RowBinary` and `TabSeparated`.

pub mod address;
pub mod http;
pub mod schema;

pub use address::Address;
pub use http::{Client, Failure, with_retries};
pub use schema::{COLUMNS, Kind, SCHEMA_VERSION, Tables};

use anyhow::Context;

/// Quotes a string for a ClickHouse SQL literal.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Reads back a TabSeparated field as the server writes it: `\\t`, `\\n`, `\\\\`... unescaped.
pub fn tsv_unescape(field: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\' && i + 1 < field.len() {
            out.push(match field[i + 1] {
                b't' => b'\t',
                b'n' => b'\n',
                b'r' => b'\r',
                b'0' => 0,
                b'b' => 8,
                b'f' => 12,
                b'a' => 7,
                b'v' => 11,
                other => other,
            });
            i += 2;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_as_the_server_escapes_them_are_read_back() {
        for (field, bytes) in [
            (&b"plain"[..], &b"plain"[..]),
            (b"a\\tb\\nc\\\\d\\re\\0", b"a\tb\nc\\d\re\0"),
            (b"it\\'s", b"it's"),
            (b"\xff\xfe", b"\xff\xfe"),
        ] {
            let mut back = Vec::new();
            tsv_unescape(field, &mut back);
            assert_eq!(back, bytes);
        }
    }
}
