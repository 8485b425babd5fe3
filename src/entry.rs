//! The log-entry model: one request of the Apache/Nginx Combined Log Format.
//!
//! Every store (CSV, SQLite) and every report speaks this model, so it is the one place that
//! decides what "absent" means and how a timestamp is written. Fields borrow from the line they
//! were parsed from whenever no unescaping was needed, which keeps the hot parse loop free of
//! allocations.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc};

/// One access-log request.
///
/// `None` stands for the log's `-` or an empty value (ident, user, bytes, referrer, user agent) and for the
/// method and protocol of a request line that is not `METHOD target PROTOCOL` (a 408's `"-"`,
/// an empty `""`, scanner garbage): such a request keeps its raw text in `url` so that nothing
/// the server wrote is lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry<'a> {
    /// Client host as written: IPv4, IPv6 (with `%zone`), or a host name.
    pub ip: Cow<'a, str>,
    pub ident: Option<Cow<'a, str>>,
    pub user: Option<Cow<'a, str>>,
    /// Normalised to UTC; written as RFC 3339 with a `Z` (see [`Rfc3339`]).
    pub timestamp: DateTime<Utc>,
    /// The offset from UTC, in seconds east, that the line wrote its time in: `None` for a
    /// time written without one (epoch seconds, W3C, HAProxy) and for a row read back from a
    /// store, which keeps only UTC. Stores record whether all their lines shared one offset
    /// (see [`crate::zone::LogOffsets`]): reports count in it by default.
    pub utc_offset: Option<i32>,
    pub method: Option<Cow<'a, str>>,
    pub url: Cow<'a, str>,
    pub protocol: Option<Cow<'a, str>>,
    pub status: u16,
    pub bytes: Option<u64>,
    pub referrer: Option<Cow<'a, str>>,
    pub user_agent: Option<Cow<'a, str>>,
    /// The fields that only some formats carry (see `--log-format`); all absent in Common
    /// and Combined lines.
    pub extra: Extra<'a>,
}

/// A time as a line wrote it: the instant, and the offset it was written in (see
/// [`LogEntry::utc_offset`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTime {
    pub utc: DateTime<Utc>,
    pub offset: Option<i32>,
}

impl LineTime {
    /// A time written without an offset.
    pub fn unzoned(utc: DateTime<Utc>) -> LineTime {
        LineTime { utc, offset: None }
    }

    /// A time written with its offset.
    pub fn zoned<Tz: chrono::TimeZone>(t: DateTime<Tz>) -> LineTime {
        use chrono::Offset;
        LineTime {
            offset: Some(t.offset().fix().local_minus_utc()),
            utc: t.with_timezone(&Utc),
        }
    }
}

/// What formats other than Common and Combined add to a request, and users report on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extra<'a> {
    /// The virtual host that answered (Apache `%v`, nginx `$host`/`$server_name`, IIS
    /// `s-sitename` or `cs(Host)`), as written.
    pub vhost: Option<Cow<'a, str>>,
    /// The server port the request came in on (`%p`, `$server_port`, `s-port`).
    pub port: Option<u16>,
    /// Time taken to answer, in whole microseconds: `%D` as is, seconds (`%T`,
    /// `$request_time`, Caddy's `duration`) and milliseconds (`%{ms}T`, IIS `time-taken`)
    /// converted. An integer, so that sums and percentiles are exact in every store.
    pub response_time_us: Option<u64>,
    /// Time the upstream (backend) took, in microseconds (`$upstream_response_time`): the
    /// sum of its values when the request tried several upstreams (`0.004, 0.010`).
    pub upstream_time_us: Option<u64>,
    /// The X-Forwarded-For header as written: the addresses of the proxies' clients, the
    /// original client first.
    pub forwarded_for: Option<Cow<'a, str>>,
}

impl Extra<'_> {
    /// None of the fields is there (a Common or Combined line).
    pub fn is_empty(&self) -> bool {
        let Extra {
            vhost,
            port,
            response_time_us,
            upstream_time_us,
            forwarded_for,
        } = self;
        vhost.is_none()
            && port.is_none()
            && response_time_us.is_none()
            && upstream_time_us.is_none()
            && forwarded_for.is_none()
    }
}

/// The column names, in the order every store writes them: those of Common and Combined,
/// then those of [`Extra`] (a CSV of an earlier version has only the first
/// [`COMBINED_COLUMNS`]).
pub const COLUMNS: [&str; 16] = [
    "ip",
    "ident",
    "user",
    "timestamp",
    "method",
    "url",
    "protocol",
    "status",
    "bytes",
    "referrer",
    "user_agent",
    "vhost",
    "port",
    "response_time_us",
    "upstream_time_us",
    "forwarded_for",
];

/// The position of the column `name` in [`COLUMNS`], found when compiling: a store's
/// reader or writer names the columns it uses, and a renamed column fails the build.
pub const fn column(name: &str) -> usize {
    let mut i = 0;
    while i < COLUMNS.len() {
        let (a, b) = (COLUMNS[i].as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("no such column in COLUMNS")
}

/// How many of [`COLUMNS`] the Combined fields are.
pub const COMBINED_COLUMNS: usize = 11;

/// The columns a store writes: all of [`COLUMNS`], or only Combined's (for rows with no
/// [`Extra`] field, or a CSV of an earlier version).
pub fn columns(extra: bool) -> &'static [&'static str] {
    match extra {
        true => &COLUMNS,
        false => &COLUMNS[..COMBINED_COLUMNS],
    }
}

/// Displays a timestamp as RFC 3339 UTC with a `Z`, e.g. `2000-10-10T20:55:36Z`.
///
/// This one fixed-width form sorts as text and is understood by SQLite's date functions, so
/// the CSV, the database and the reports can compare timestamps as plain strings.
pub struct Rfc3339(pub DateTime<Utc>);

impl Rfc3339 {
    /// Appends the 20-byte form to `out` without going through `fmt` (the hot path of the
    /// sinks writes one per line).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let t = self.0.naive_utc();
        let year = t.year();
        if (0..=9999).contains(&year) {
            push_digits(out, year as u32, 4);
        } else {
            out.extend_from_slice(year.to_string().as_bytes());
        }
        out.push(b'-');
        push_digits(out, t.month(), 2);
        out.push(b'-');
        push_digits(out, t.day(), 2);
        out.push(b'T');
        push_digits(out, t.hour(), 2);
        out.push(b':');
        push_digits(out, t.minute(), 2);
        out.push(b':');
        push_digits(out, t.second(), 2);
        out.push(b'Z');
    }
}

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = Vec::with_capacity(20);
        self.write_to(&mut buf);
        f.write_str(std::str::from_utf8(&buf).expect("ASCII digits"))
    }
}

/// Parses the RFC 3339 form that [`Rfc3339`] writes (any offset is accepted and normalised).
pub fn parse_rfc3339(text: &str) -> Option<DateTime<Utc>> {
    if let Some(fast) = parse_rfc3339_z(text.as_bytes()) {
        return Some(fast);
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The exact `YYYY-MM-DDTHH:MM:SSZ` shape, without chrono's general parser: reading a large
/// CSV back parses one per row.
fn parse_rfc3339_z(b: &[u8]) -> Option<DateTime<Utc>> {
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let date = chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let time = chrono::NaiveTime::from_hms_opt(num(11..13)?, num(14..16)?, num(17..19)?)?;
    Some(NaiveDateTime::new(date, time).and_utc())
}

/// Writes `v` in decimal into `buf` and returns the digits: integer formatting for the hot
/// paths (the generator, the CSV sink) without `fmt` or an allocation.
pub fn decimal(buf: &mut [u8; 20], mut v: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

fn push_digits(out: &mut Vec<u8>, mut value: u32, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for slot in out[start..].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn decimal_digits() {
        let mut buf = [0; 20];
        assert_eq!(decimal(&mut buf, 0), b"0");
        assert_eq!(decimal(&mut buf, 40213), b"40213");
        assert_eq!(decimal(&mut buf, u64::MAX), u64::MAX.to_string().as_bytes());
    }

    #[test]
    fn rfc3339_is_fixed_width_utc_with_z() {
        let t = Utc.with_ymd_and_hms(2000, 10, 10, 20, 55, 36).unwrap();
        assert_eq!(Rfc3339(t).to_string(), "2000-10-10T20:55:36Z");
        let t = Utc.with_ymd_and_hms(995, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(Rfc3339(t).to_string(), "0995-01-02T03:04:05Z");
    }

    #[test]
    fn rfc3339_round_trips_and_accepts_offsets() {
        let t = Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 59).unwrap();
        assert_eq!(parse_rfc3339(&Rfc3339(t).to_string()), Some(t));
        assert_eq!(parse_rfc3339("2024-03-01T01:59:59+02:00"), Some(t));
        assert_eq!(parse_rfc3339("2023-02-29T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
