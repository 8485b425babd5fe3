//! The access-log parser: bytes of one line in, a [`LogEntry`] or a typed [`Reject`] out.
//!
//! [`FORMAT`] is the one definition of what a Common or Combined Log Format line looks like.
//! The regex only splits the line into raw fields; each field is then checked on its own so a
//! rejected line says *which* field was wrong and why (a reject report that only says "no
//! match" is useless on a million-line log).
//!
//! Lines are bytes, never `&str`: real logs hold invalid UTF-8 and escaped binary, and a parse
//! must never panic whatever it is given (a property test in this module holds it to that).

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use regex::bytes::Regex;

use crate::entry::{Extra, LineTime, LogEntry};

/// The format, as a regex over bytes.
///
/// - host, ident and user are space-free tokens; the time sits in `[...]`;
/// - quoted fields allow the escapes servers write (`\"`, `\\`, `\xhh`), so an escaped quote
///   does not end the field;
/// - the referrer and user agent are optional (Common Log Format has neither);
/// - anything after the user agent (`%D` response times, nginx's `"$http_x_forwarded_for"`)
///   is captured apart as `extra`, so it is never folded into the user agent.
///
/// Every group is delimited by a byte its own class excludes, so the regex crate can run it
/// as a one-pass DFA: no backtracking, one look at each byte.
pub const FORMAT: &str = concat!(
    r#"(?s-u)^(?P<ip>[^ ]+) (?P<ident>[^ ]+) (?P<user>[^ ]+) \[(?P<time>[^\]]*)\] "#,
    r#""(?P<request>(?:[^"\\]|\\.)*)" (?P<status>[^ ]+) (?P<bytes>[^ "]+)"#,
    r#"(?: "(?P<referrer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)"(?P<extra> .*)?)?$"#,
);

static REGEX: LazyLock<Regex> = LazyLock::new(|| Regex::new(FORMAT).expect("FORMAT compiles"));

/// Why a line was not taken. The variants are what a reject summary counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Reject {
    /// Not a Common/Combined Log Format line at all (wrong shape, unbalanced quotes, blank).
    Format,
    /// The `[...]` time is not `dd/Mon/yyyy:HH:MM:SS +zzzz` or names no real instant.
    Timestamp(TimestampError),
    /// The status is not three digits.
    Status,
    /// The size is neither digits nor `-`, or beyond what SQLite's integers hold (2⁶³ - 1):
    /// no response is that large, and a store could not hold it as the others do.
    Bytes,
    /// The line is longer than the reader's limit; it was skipped without being held in memory.
    TooLong,
    /// The client field holds a control byte (0x00-0x1F or 0x7F). No address or host name
    /// does; such a field is damage (NUL padding fused to the line, binary sent to the port),
    /// and storing it would make a client no one can type in `--ip` or see in a report.
    Client,
    /// A response or upstream time (`%D`, `%T`, `$request_time`, `$upstream_response_time`)
    /// is not a number in the unit its format gives.
    ResponseTime,
    /// The server port (`%p`, `$server_port`) is not a number from 0 to 65535.
    Port,
    /// A directive of a W3C extended log (`#Fields:`, `#Version:`, `#Date:`…): a header the
    /// server writes, not a request. Kept with the rejects, so that no line goes uncounted.
    Directive,
}

/// What exactly is wrong with a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TimestampError {
    /// Not the `dd/Mon/yyyy:HH:MM:SS` shape.
    Shape,
    /// The month is not one of `Jan`..`Dec`.
    Month,
    /// No `+hhmm`/`-hhmm` offset follows the time.
    Zone,
    /// The date or time does not exist (day 32, 30 February, hour 25, offset out of range).
    Range,
}

impl Reject {
    /// A short stable name, used as the key in summaries and JSON output.
    pub fn slug(self) -> &'static str {
        match self {
            Reject::Format => "format",
            Reject::Timestamp(_) => "timestamp",
            Reject::Status => "status",
            Reject::Bytes => "bytes",
            Reject::TooLong => "too-long",
            Reject::Client => "client",
            Reject::ResponseTime => "response-time",
            Reject::Port => "port",
            Reject::Directive => "directive",
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reject::Format => f.write_str("not an access-log line"),
            Reject::Timestamp(e) => write!(f, "bad timestamp: {e}"),
            Reject::Status => f.write_str("status is not three digits"),
            Reject::Bytes => f.write_str("size is neither digits nor '-', or above 2^63-1"),
            Reject::TooLong => f.write_str("line longer than the limit"),
            Reject::Client => f.write_str("client field holds control bytes"),
            Reject::ResponseTime => f.write_str("response time is not a number"),
            Reject::Port => f.write_str("port is not a number up to 65535"),
            Reject::Directive => f.write_str("a header directive (#Fields…), not a request"),
        }
    }
}

impl fmt::Display for TimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimestampError::Shape => "not dd/Mon/yyyy:HH:MM:SS +zzzz",
            TimestampError::Month => "unknown month",
            TimestampError::Zone => "no UTC offset",
            TimestampError::Range => "no such date or time",
        })
    }
}

impl std::error::Error for Reject {}

/// A line split into its raw fields, before any field is checked or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RawFields<'a> {
    ip: &'a [u8],
    ident: &'a [u8],
    user: &'a [u8],
    time: &'a [u8],
    request: &'a [u8],
    status: &'a [u8],
    bytes: &'a [u8],
    referrer: Option<&'a [u8]>,
    agent: Option<&'a [u8]>,
    extra: Option<&'a [u8]>,
}

/// Parses one line (without its `\n`; a trailing `\r` is ignored).
///
/// This is the hot path: it splits the line with [`split_fast`], a hand-written scanner that
/// accepts exactly what [`FORMAT`] accepts (a differential test holds the two equal on every
/// real log in the test data and on random bytes). [`parse_line_regex`] is the same parse
/// through the regex itself.
pub fn parse_line(line: &[u8]) -> Result<LogEntry<'_>, Reject> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    build(
        split_fast(line).ok_or(Reject::Format)?,
        line,
        parse_clf_time,
    )
}

/// [`parse_line`] for a run of lines: it remembers the last time it converted, because
/// consecutive lines of a busy log mostly share their second, and converting a time is a
/// good part of the parse.
#[derive(Debug, Default)]
pub struct Parser {
    last: LastTime,
}

impl Parser {
    pub fn parse<'a>(&mut self, line: &'a [u8]) -> Result<LogEntry<'a>, Reject> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let raw = split_fast(line).ok_or(Reject::Format)?;
        build(raw, line, |time| self.last.convert(time, parse_clf_time))
    }
}

/// The last time field a parser converted, and what it converted to: consecutive lines of a
/// busy log mostly share their second, so most lines convert nothing. One per parser (this
/// module's, and through `format::fields::LastSecond` the format scanner's and the JSON
/// reader's).
#[derive(Debug, Clone, Default)]
pub(crate) struct LastTime {
    text: Vec<u8>,
    time: Option<LineTime>,
}

impl LastTime {
    /// `field` converted by `convert`, or the last conversion when the field is the same.
    #[inline]
    pub(crate) fn convert(
        &mut self,
        field: &[u8],
        convert: impl FnOnce(&[u8]) -> Result<LineTime, TimestampError>,
    ) -> Result<LineTime, TimestampError> {
        match self.time {
            Some(t) if self.text == field => Ok(t),
            _ => {
                let t = convert(field)?;
                self.text.clear();
                self.text.extend_from_slice(field);
                self.time = Some(t);
                Ok(t)
            }
        }
    }
}

/// [`parse_line`] through the [`FORMAT`] regex: the definition the fast path is tested against.
pub fn parse_line_regex(line: &[u8]) -> Result<LogEntry<'_>, Reject> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    build(
        split_regex(line).ok_or(Reject::Format)?,
        line,
        parse_clf_time,
    )
}

fn split_regex(line: &[u8]) -> Option<RawFields<'_>> {
    let caps = REGEX.captures(line)?;
    let field = |name: &str| caps.name(name).map_or(&b""[..], |m| m.as_bytes());
    Some(RawFields {
        ip: field("ip"),
        ident: field("ident"),
        user: field("user"),
        time: field("time"),
        request: field("request"),
        status: field("status"),
        bytes: field("bytes"),
        referrer: caps.name("referrer").map(|m| m.as_bytes()),
        agent: caps.name("agent").map(|m| m.as_bytes()),
        extra: caps.name("extra").map(|m| m.as_bytes()),
    })
}

/// A cursor over a line that mirrors the regex's pieces one for one.
struct Scanner<'a> {
    line: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    /// `[^ ]+` (or `[^ "]+`) followed by nothing consumed: one or more bytes not in `stop`.
    fn token(&mut self, stop: &[u8]) -> Option<&'a [u8]> {
        let rest = &self.line[self.pos..];
        // Tokens are short (`-`, `200`, an address): a plain loop beats memchr's set-up.
        let found = match *stop {
            [a] => rest.iter().position(|&c| c == a),
            [a, b] => rest.iter().position(|&c| c == a || c == b),
            _ => rest.iter().position(|c| stop.contains(c)),
        };
        let len = found.unwrap_or(rest.len());
        (len > 0).then(|| {
            self.pos += len;
            &rest[..len]
        })
    }

    /// Of a length known when compiled, so that the comparison is a load or two rather than
    /// a call to `memcmp` for each of a line's separators.
    #[inline]
    fn literal<const N: usize>(&mut self, lit: &[u8; N]) -> Option<()> {
        let next: &[u8; N] = self.line.get(self.pos..self.pos + N)?.try_into().ok()?;
        (next == lit).then(|| self.pos += N)
    }

    /// `"(?:[^"\\]|\\.)*"`: a quoted field in which a backslash escapes the next byte.
    fn quoted(&mut self) -> Option<&'a [u8]> {
        self.literal(b"\"")?;
        let start = self.pos;
        let mut i = start;
        loop {
            i += memchr::memchr2(b'"', b'\\', &self.line[i..])?;
            if self.line[i] == b'"' {
                break;
            }
            i += 2;
            if i > self.line.len() {
                return None;
            }
        }
        self.pos = i + 1;
        Some(&self.line[start..i])
    }

    /// `[^\]]*`: any bytes up to a `]`.
    fn until(&mut self, stop: u8) -> Option<&'a [u8]> {
        let rest = &self.line[self.pos..];
        let len = memchr::memchr(stop, rest)?;
        self.pos += len;
        Some(&rest[..len])
    }
}

/// Splits a line exactly as [`FORMAT`] does, without the regex engine: parsing is most of
/// a parse run's work, and a hand-written scanner does it in one pass with no backtracking.
fn split_fast(line: &[u8]) -> Option<RawFields<'_>> {
    let mut s = Scanner { line, pos: 0 };
    let ip = s.token(b" ")?;
    s.literal(b" ")?;
    let ident = s.token(b" ")?;
    s.literal(b" ")?;
    let user = s.token(b" ")?;
    s.literal(b" [")?;
    let time = s.until(b']')?;
    s.literal(b"] ")?;
    let request = s.quoted()?;
    s.literal(b" ")?;
    let status = s.token(b" ")?;
    s.literal(b" ")?;
    let bytes = s.token(b" \"")?;
    let mut fields = RawFields {
        ip,
        ident,
        user,
        time,
        request,
        status,
        bytes,
        referrer: None,
        agent: None,
        extra: None,
    };
    if s.pos == line.len() {
        return Some(fields);
    }
    s.literal(b" ")?;
    fields.referrer = Some(s.quoted()?);
    s.literal(b" ")?;
    fields.agent = Some(s.quoted()?);
    if s.pos < line.len() {
        s.literal(b" ")?;
        fields.extra = Some(&line[s.pos - 1..]);
    }
    Some(fields)
}

/// Checks and decodes the raw fields of `line`: the part of the parse shared by both splitters.
fn build<'a>(
    raw: RawFields<'a>,
    line: &'a [u8],
    parse_time: impl FnOnce(&[u8]) -> Result<LineTime, TimestampError>,
) -> Result<LogEntry<'a>, Reject> {
    let line = Line::new(line);
    let text = |field| line.text(field);
    let unescape = |field| line.unescape(field);
    // Checked here rather than in a splitter, so that the regex and the fast scanner, which
    // both take any byte but a space in the client, still agree line for line.
    if !may_be_client(raw.ip) {
        return Err(Reject::Client);
    }
    let time = parse_time(raw.time).map_err(Reject::Timestamp)?;
    let status = parse_status(raw.status).ok_or(Reject::Status)?;
    let bytes = match raw.bytes {
        b"-" => None,
        digits => Some(
            parse_u64(digits)
                .filter(|&n| i64::try_from(n).is_ok())
                .ok_or(Reject::Bytes)?,
        ),
    };
    let (method, url, protocol) = split_request(raw.request);
    Ok(LogEntry {
        ip: text(raw.ip),
        ident: absent_dash(raw.ident).map(text),
        user: absent_dash(raw.user).map(text),
        timestamp: time.utc,
        utc_offset: time.offset,
        method: method.map(text),
        url: unescape(url),
        protocol: protocol.map(text),
        status,
        bytes,
        referrer: raw.referrer.and_then(absent_dash).map(unescape),
        user_agent: raw.agent.and_then(absent_dash).map(unescape),
        extra: Extra::default(),
    })
}

/// Could `field` name a client? No address or host name holds a control byte (see
/// [`Reject::Client`]): every way a client is read (a format's client field, or the first
/// address of X-Forwarded-For) asks this.
pub(crate) fn may_be_client(field: &[u8]) -> bool {
    !field.iter().any(u8::is_ascii_control)
}

/// `-` is the log's "absent". An empty quoted field (`""`) says the same thing, and is treated
/// so, because a CSV cannot tell an empty value from a missing one: both stores must hold the
/// same entries.
pub(crate) fn absent_dash(field: &[u8]) -> Option<&[u8]> {
    (field != b"-" && !field.is_empty()).then_some(field)
}

pub(crate) fn parse_status(b: &[u8]) -> Option<u16> {
    match b {
        [a, b, c] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

pub(crate) fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() {
        return None;
    }
    b.iter().try_fold(0u64, |acc, &c| {
        if c.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
        } else {
            None
        }
    })
}

/// Splits a request line into method, target and protocol.
///
/// A request is `METHOD target [HTTP/x.y]` only when the method is an upper-case token; the
/// version is optional because HTTP/0.9-style requests (`"GET /path"`) fill old logs. Anything
/// else (`-`, an empty request, TLS bytes sent to a plain-HTTP port) comes back as a raw target
/// with no method and no protocol, so the request is still counted with its status.
pub(crate) fn split_request(raw: &[u8]) -> (Option<&[u8]>, &[u8], Option<&[u8]>) {
    let Some(space) = raw.iter().position(|&b| b == b' ') else {
        return (None, raw, None);
    };
    let (method, rest) = (&raw[..space], &raw[space + 1..]);
    if !is_method(method) || rest.is_empty() {
        return (None, raw, None);
    }
    if let Some(last) = rest.iter().rposition(|&b| b == b' ') {
        let protocol = &rest[last + 1..];
        if last > 0 && is_protocol(protocol) {
            return (Some(method), &rest[..last], Some(protocol));
        }
    }
    (Some(method), rest, None)
}

fn is_method(b: &[u8]) -> bool {
    matches!(b.first(), Some(b'A'..=b'Z'))
        && b.len() <= 32
        && b.iter()
            .all(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
}

fn is_protocol(b: &[u8]) -> bool {
    b.len() > 5
        && b.starts_with(b"HTTP/")
        && b[5..].iter().all(|&c| c.is_ascii_digit() || c == b'.')
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Parses `dd/Mon/yyyy:HH:MM:SS +zzzz` and normalises it to UTC.
pub fn parse_time(b: &[u8]) -> Result<DateTime<Utc>, TimestampError> {
    parse_clf_time(b).map(|t| t.utc)
}

/// Parses `dd/Mon/yyyy:HH:MM:SS +zzzz`: the instant and the offset it was written in.
///
/// Written by hand rather than with chrono's format strings: it runs once per line, and the
/// typed error tells a user which part of the time was wrong.
pub fn parse_clf_time(b: &[u8]) -> Result<LineTime, TimestampError> {
    use TimestampError::*;
    if b.len() < 20
        || b[2] != b'/'
        || b[6] != b'/'
        || b[11] != b':'
        || b[14] != b':'
        || b[17] != b':'
    {
        return Err(Shape);
    }
    let num = |r: std::ops::Range<usize>| -> Result<u32, TimestampError> {
        b[r].iter().try_fold(0u32, |acc, &c| {
            if c.is_ascii_digit() {
                Ok(acc * 10 + u32::from(c - b'0'))
            } else {
                Err(Shape)
            }
        })
    };
    let day = num(0..2)?;
    let month = MONTHS.iter().position(|m| m[..] == b[3..6]).ok_or(Month)? as u32 + 1;
    let year = num(7..11)? as i32;
    let (hour, minute, second) = (num(12..14)?, num(15..17)?, num(18..20)?);
    let zone = &b[20..];
    if zone.is_empty() {
        return Err(Zone);
    }
    let offset = match zone {
        [b' ', sign @ (b'+' | b'-'), digits @ ..] if digits.len() == 4 => {
            let d = |i: usize| -> Result<i32, TimestampError> {
                digits[i]
                    .is_ascii_digit()
                    .then(|| i32::from(digits[i] - b'0'))
                    .ok_or(Zone)
            };
            let (hh, mm) = (d(0)? * 10 + d(1)?, d(2)? * 10 + d(3)?);
            if mm >= 60 {
                return Err(Range);
            }
            let secs = (hh * 60 + mm) * 60;
            FixedOffset::east_opt(if *sign == b'-' { -secs } else { secs }).ok_or(Range)?
        }
        _ => return Err(Zone),
    };
    let date = NaiveDate::from_ymd_opt(year, month, day).ok_or(Range)?;
    // Leap seconds (:60) are not accepted: no server writes them in access logs.
    let time = NaiveTime::from_hms_opt(hour, minute, second).ok_or(Range)?;
    let local = NaiveDateTime::new(date, time);
    local
        .and_local_timezone(offset)
        .single()
        .map(LineTime::zoned)
        .ok_or(Range)
}

/// A line, checked for UTF-8 once as a whole rather than field by field (eight short checks
/// cost more than one long one).
pub(crate) struct Line<'a> {
    /// The line as text, when all of it is UTF-8 (nearly always).
    text: Option<&'a str>,
}

impl<'a> Line<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Line<'a> {
        Line {
            text: std::str::from_utf8(bytes).ok(),
        }
    }

    /// A field of the line as text. Fields end at ASCII delimiters, and an ASCII byte is never
    /// part of a longer UTF-8 sequence, so a field of a valid line is valid on its own.
    pub(crate) fn text(&self, field: &'a [u8]) -> Cow<'a, str> {
        match self.text.and_then(|t| sub_str(t, field)) {
            Some(t) => Cow::Borrowed(t),
            None => text(field),
        }
    }

    /// [`unescape`], with the line's UTF-8 check.
    pub(crate) fn unescape(&self, field: &'a [u8]) -> Cow<'a, str> {
        if memchr::memchr(b'\\', field).is_some() {
            unescape(field)
        } else {
            self.text(field)
        }
    }
}

/// `part`, a slice of the bytes of `whole`, as a slice of `whole`; `None` when it is not part
/// of it or does not fall on character boundaries. This is how a text checked once as a whole
/// hands out its fields without checking each again.
pub(crate) fn sub_str<'a>(whole: &'a str, part: &[u8]) -> Option<&'a str> {
    let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    whole
        .get(start..start.checked_add(part.len())?)
        .filter(|s| s.as_ptr() == part.as_ptr())
}

/// Decodes an unquoted field. Invalid UTF-8 is kept readable and lossless as `\xHH`.
pub(crate) fn text(raw: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(raw) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(bytes_to_text(raw)),
    }
}

/// Decodes a quoted field: undoes the escapes Apache (`\"`, `\\`, `\xhh`, `\n`, `\t`, `\r`)
/// and nginx (`\xHH`) write, then turns the bytes into text. Any bytes that are still not
/// UTF-8 afterwards (the TLS handshakes scanners send) are written back as `\xHH` rather than
/// replaced, so no byte the server logged is lost.
pub fn unescape(raw: &[u8]) -> Cow<'_, str> {
    if memchr::memchr(b'\\', raw).is_none() {
        return text(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if c != b'\\' || i + 1 == raw.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let next = raw[i + 1];
        match next {
            b'"' | b'\\' => {
                out.push(next);
                i += 2;
            }
            b'n' => {
                out.push(b'\n');
                i += 2;
            }
            b't' => {
                out.push(b'\t');
                i += 2;
            }
            b'r' => {
                out.push(b'\r');
                i += 2;
            }
            b'x' if i + 3 < raw.len() => match (hex(raw[i + 2]), hex(raw[i + 3])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 4;
                }
                _ => {
                    out.push(c);
                    i += 1;
                }
            },
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(bytes_to_text(e.as_bytes())),
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// UTF-8 where the bytes are valid, `\xHH` for each byte where they are not.
pub(crate) fn bytes_to_text(mut raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len() + 8);
    loop {
        match std::str::from_utf8(raw) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (good, bad) = raw.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).expect("valid prefix"));
                let n = e.error_len().unwrap_or(bad.len());
                for b in &bad[..n] {
                    out.push_str(&format!("\\x{b:02X}"));
                }
                raw = &bad[n..];
            }
        }
    }
}

/// A timestamp as the stores hold it: RFC 3339, or, in the old rows of a database upgraded
/// from the original scripts, their `10/Oct/2000:13:55:36 -0700` form.
pub fn parse_stored_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    crate::entry::parse_rfc3339(s).or_else(|| parse_time(s.as_bytes()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Rfc3339;
    use proptest::prelude::*;

    /// Expected field values, with `None` for absent, in column order.
    type Row<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
        Option<&'a str>,
        &'a str,
        Option<&'a str>,
        u16,
        Option<u64>,
        Option<&'a str>,
        Option<&'a str>,
    );

    fn fields(line: &[u8]) -> Row<'static> {
        let e =
            parse_line(line).unwrap_or_else(|r| panic!("{r}: {}", String::from_utf8_lossy(line)));
        let leak = |s: std::borrow::Cow<'_, str>| -> &'static str {
            Box::leak(s.into_owned().into_boxed_str())
        };
        (
            leak(e.ip),
            e.ident.map(leak),
            e.user.map(leak),
            leak(Rfc3339(e.timestamp).to_string().into()),
            e.method.map(leak),
            leak(e.url),
            e.protocol.map(leak),
            e.status,
            e.bytes,
            e.referrer.map(leak),
            e.user_agent.map(leak),
        )
    }

    #[test]
    fn accepted_lines_give_exact_fields() {
        let cases: &[(&[u8], Row<'_>)] = &[
            // Apache's documented combined example; the offset is normalised to UTC.
            (
                br#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#,
                ("127.0.0.1", None, Some("frank"), "2000-10-10T20:55:36Z", Some("GET"), "/apache_pb.gif", Some("HTTP/1.0"), 200, Some(2326), Some("http://www.example.com/start.html"), Some("Mozilla/4.08 [en] (Win98; I ;Nav)")),
            ),
            // Common Log Format: no referrer, no agent; a host name as client; size '-'.
            (
                b"gw1.att.com - - [01/Aug/1995:00:03:53 -0400] \"GET /shuttle/missions/sts-73/news HTTP/1.0\" 302 -",
                ("gw1.att.com", None, None, "1995-08-01T04:03:53Z", Some("GET"), "/shuttle/missions/sts-73/news", Some("HTTP/1.0"), 302, None, None, None),
            ),
            // No HTTP version (HTTP/0.9 style).
            (
                b"202.32.92.47 - - [01/Jun/1995:00:00:59 -0600] \"GET /~scottp/publish.html\" 200 271",
                ("202.32.92.47", None, None, "1995-06-01T06:00:59Z", Some("GET"), "/~scottp/publish.html", None, 200, Some(271), None, None),
            ),
            // IPv6, compressed.
            (
                br#"2001:41d0:8:f69::1 - - [29/Oct/2015:06:47:36 +0100] "GET / HTTP/1.1" 200 20526 "http://niels.basjes.nl/" "Mozilla/5.0""#,
                ("2001:41d0:8:f69::1", None, None, "2015-10-29T05:47:36Z", Some("GET"), "/", Some("HTTP/1.1"), 200, Some(20526), Some("http://niels.basjes.nl/"), Some("Mozilla/5.0")),
            ),
            // IPv6 with a zone.
            (
                br#"fe80::1%eth0 - - [01/Jan/2024:00:00:00 +0000] "GET /x HTTP/1.1" 200 1 "-" "-""#,
                ("fe80::1%eth0", None, None, "2024-01-01T00:00:00Z", Some("GET"), "/x", Some("HTTP/1.1"), 200, Some(1), None, None),
            ),
            // A 408 with request "-": kept, raw text in url.
            (
                br#"10.0.0.1 - - [01/Jan/2024:00:00:00 +0000] "-" 408 0 "-" "-""#,
                ("10.0.0.1", None, None, "2024-01-01T00:00:00Z", None, "-", None, 408, Some(0), None, None),
            ),
            // An empty request.
            (
                br#"76.72.172.0 - - [03/Sep/2022:03:33:24 +0000] "" 400 0 "-" "-""#,
                ("76.72.172.0", None, None, "2022-09-03T03:33:24Z", None, "", None, 400, Some(0), None, None),
            ),
            // Apache-escaped TLS bytes with a space: not a method, so raw; \x16 decoded.
            (
                br#"1.2.3.4 - - [17/Oct/2023:05:57:49 +1100] "\x16\x03\x01\x01 \x02" 400 226 "-" "-""#,
                ("1.2.3.4", None, None, "2023-10-16T18:57:49Z", None, "\u{16}\u{3}\u{1}\u{1} \u{2}", None, 400, Some(226), None, None),
            ),
            // nginx upper-case \xHH: invalid UTF-8 after decoding stays visible as \xHH.
            (
                br#"62.233.50.0 - - [02/Sep/2022:03:33:24 +0000] "\x03\x00\xE0Cookie: mstshash=A" 400 157 "-" "-""#,
                ("62.233.50.0", None, None, "2022-09-02T03:33:24Z", None, "\u{3}\u{0}\\xE0Cookie: mstshash=A", None, 400, Some(157), None, None),
            ),
            // Apache lower-case \xhh forming valid UTF-8 decodes to the character.
            (
                br#"172.17.0.1 - - [12/Feb/2019:08:08:33 +0000] "GET /administra\xc3\xa7ao.php HTTP/1.1" 404 509 "-" "Nikto""#,
                ("172.17.0.1", None, None, "2019-02-12T08:08:33Z", Some("GET"), "/administra\u{e7}ao.php", Some("HTTP/1.1"), 404, Some(509), None, Some("Nikto")),
            ),
            // Escaped quote and backslash inside the request (Apache writes \\\" for \").
            (
                br#"172.17.0.1 - - [12/Feb/2019:08:08:26 +0000] "GET /f.php?c=\\\".system('id').\\\" HTTP/1.1" 404 507 "-" "a \"quoted\" agent""#,
                ("172.17.0.1", None, None, "2019-02-12T08:08:26Z", Some("GET"), "/f.php?c=\\\".system('id').\\\"", Some("HTTP/1.1"), 404, Some(507), None, Some("a \"quoted\" agent")),
            ),
            // A trailing nginx "$http_x_forwarded_for" is not folded into the agent.
            (
                br#"54.36.149.41 - - [22/Jan/2019:03:56:14 +0330] "GET /a HTTP/1.1" 200 30577 "-" "AhrefsBot" "-""#,
                ("54.36.149.41", None, None, "2019-01-22T00:26:14Z", Some("GET"), "/a", Some("HTTP/1.1"), 200, Some(30577), None, Some("AhrefsBot")),
            ),
            // A trailing %D response time.
            (
                br#"1.1.1.1 - - [01/Jan/2024:00:00:00 +0000] "GET /a HTTP/1.1" 200 5 "-" "curl/8" 1234"#,
                ("1.1.1.1", None, None, "2024-01-01T00:00:00Z", Some("GET"), "/a", Some("HTTP/1.1"), 200, Some(5), None, Some("curl/8")),
            ),
            // CRLF: the \r is not part of the line.
            (
                b"46.29.2.62 - - [30/Sep/2015:00:15:01 +0300] \"GET /graffiti HTTP/1.0\" 200 146 \"-\" \"Wget/1.12 (linux-gnu)\"\r",
                ("46.29.2.62", None, None, "2015-09-29T21:15:01Z", Some("GET"), "/graffiti", Some("HTTP/1.0"), 200, Some(146), None, Some("Wget/1.12 (linux-gnu)")),
            ),
            // A non-'-' remote user, an unusual status.
            (
                br#"99.73.65.0 - 8hYTSUFk [06/Sep/2022:23:50:36 +0000] "GET /manager/html HTTP/1.1" 499 398 "-" "Firefox""#,
                ("99.73.65.0", None, Some("8hYTSUFk"), "2022-09-06T23:50:36Z", Some("GET"), "/manager/html", Some("HTTP/1.1"), 499, Some(398), None, Some("Firefox")),
            ),
            // A space inside the target (nikto): method kept, target is the rest.
            (
                br#"172.17.0.1 - - [12/Feb/2019:08:08:27 +0000] "GET /site/' UNION" 400 0 "-" "-""#,
                ("172.17.0.1", None, None, "2019-02-12T08:08:27Z", Some("GET"), "/site/' UNION", None, 400, Some(0), None, None),
            ),
            // Lower-case first token is not a method; invalid raw UTF-8 in the agent.
            (
                b"165.154.51.90 - - [10/Dec/2024:09:15:06 +0700] \"t3 12.1.2\" 400 157 \"-\" \"bad \xff byte\"",
                ("165.154.51.90", None, None, "2024-12-10T02:15:06Z", None, "t3 12.1.2", None, 400, Some(157), None, Some("bad \\xFF byte")),
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(
                &fields(line),
                expected,
                "line: {}",
                String::from_utf8_lossy(line)
            );
            // The regex definition agrees with the fast path on every case.
            assert_eq!(parse_line(line), parse_line_regex(line));
        }
    }

    #[test]
    fn rejected_lines_give_typed_reasons() {
        use TimestampError::*;
        let cases: &[(&[u8], Reject)] = &[
            (b"", Reject::Format),
            (b"hello world", Reject::Format),
            (b"46.161.41.24 - - [18/May/2015:19:05:46 +0000]\"", Reject::Format),
            // The agent lost its closing quote (a truncated line).
            (br#"1.1.1.1 - - [20/May/2015:12:05:17 +0000] "GET / HTTP/1.1" 200 235 "-" "Mozilla/5.0 (compatible"#, Reject::Format),
            (br#"1.1.1.1 - - [32/May/2015:12:05:17 +0000] "GET / HTTP/1.1" 200 1"#, Reject::Timestamp(Range)),
            (br#"1.1.1.1 - - [30/Feb/2015:12:05:17 +0000] "GET / HTTP/1.1" 200 1"#, Reject::Timestamp(Range)),
            (br#"1.1.1.1 - - [10/Foo/2015:12:05:17 +0000] "GET / HTTP/1.1" 200 1"#, Reject::Timestamp(Month)),
            (br#"1.1.1.1 - - [10/May/2015:12:05:17] "GET / HTTP/1.1" 200 1"#, Reject::Timestamp(Zone)),
            (br#"1.1.1.1 - - [10/May/2015:12:05:17 UTC] "GET / HTTP/1.1" 200 1"#, Reject::Timestamp(Zone)),
            (br#"1.1.1.1 - - [2015-05-10T12:05:17Z] "GET / HTTP/1.1" 200 1"#, Reject::Timestamp(Shape)),
            (br#"1.1.1.1 - - [10/May/2015:25:05:17 +0000] "GET / HTTP/1.1" 200 1"#, Reject::Timestamp(Range)),
            (br#"1.1.1.1 - - [10/May/2015:12:05:17 +0000] "GET / HTTP/1.1" 20 1"#, Reject::Status),
            (br#"1.1.1.1 - - [10/May/2015:12:05:17 +0000] "GET / HTTP/1.1" 2000 1"#, Reject::Status),
            (br#"1.1.1.1 - - [10/May/2015:12:05:17 +0000] "GET / HTTP/1.1" OK 1"#, Reject::Status),
            (br#"1.1.1.1 - - [10/May/2015:12:05:17 +0000] "GET / HTTP/1.1" 200 12k"#, Reject::Bytes),
            (br#"1.1.1.1 - - [10/May/2015:12:05:17 +0000] "GET / HTTP/1.1" 200 -1"#, Reject::Bytes),
            // One past i64::MAX: SQLite could not hold it as the CSV and packed copy do.
            (br#"1.1.1.1 - - [10/May/2015:12:05:17 +0000] "GET / HTTP/1.1" 200 9223372036854775808"#, Reject::Bytes),
            // NUL padding a crash left before the line, fused to the client (the ingest strips
            // it before parsing; a line that still holds it is not stored with a NUL client).
            (b"\x00\x00\x001.1.1.1 - - [10/May/2015:12:05:17 +0000] \"GET / HTTP/1.1\" 200 1", Reject::Client),
            // A control byte inside the client: escape, tab, DEL, and a NUL after the address.
            (b"1.1.\x1b1.1 - - [10/May/2015:12:05:17 +0000] \"GET / HTTP/1.1\" 200 1", Reject::Client),
            (b"1.1.1.1\t - - [10/May/2015:12:05:17 +0000] \"GET / HTTP/1.1\" 200 1", Reject::Client),
            (b"1.1.1.1\x7f - - [10/May/2015:12:05:17 +0000] \"GET / HTTP/1.1\" 200 1", Reject::Client),
            (b"1.1.1.1\0 - - [10/May/2015:12:05:17 +0000] \"GET / HTTP/1.1\" 200 1", Reject::Client),
            // The client is checked before the other fields: a bad time does not hide it.
            (b"\x16\x03 - - [no time] \"GET / HTTP/1.1\" 200 1", Reject::Client),
        ];
        for (line, reason) in cases {
            assert_eq!(
                parse_line(line).err(),
                Some(*reason),
                "line: {}",
                String::from_utf8_lossy(line)
            );
            assert_eq!(parse_line_regex(line).err(), Some(*reason));
        }
    }

    /// Valid-looking lines with random damage: the inputs most likely to split the two
    /// splitters apart.
    fn mutated_line() -> impl Strategy<Value = Vec<u8>> {
        let base = br#"2001:db8::1 - bob [10/Oct/2000:13:55:36 -0700] "GET /a\"b\\c\x41 HTTP/1.1" 200 2326 "http://r/" "UA \"x\"" "-""#.to_vec();
        (proptest::collection::vec((0..base.len(), any::<u8>(), 0..3u8), 0..4)).prop_map(
            move |edits| {
                let mut line = base.clone();
                for (at, byte, kind) in edits {
                    if line.is_empty() {
                        break;
                    }
                    let at = at.min(line.len().saturating_sub(1));
                    match kind {
                        0 => line[at] = byte,
                        1 => line.insert(at, [b'"', b'\\', b' ', b']', byte][byte as usize % 5]),
                        _ => {
                            line.truncate(at);
                        }
                    }
                }
                line
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn arbitrary_bytes_never_panic_and_both_splitters_agree(line in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(parse_line(&line), parse_line_regex(&line));
        }

        #[test]
        fn damaged_lines_split_the_same_both_ways(line in mutated_line()) {
            prop_assert_eq!(split_fast(&line), split_regex(&line));
            prop_assert_eq!(parse_line(&line), parse_line_regex(&line));
        }

        #[test]
        fn a_parser_that_remembers_times_parses_each_line_as_alone(
            lines in proptest::collection::vec(mutated_line(), 1..20)
        ) {
            let mut parser = Parser::default();
            for line in &lines {
                prop_assert_eq!(parser.parse(line), parse_line(line));
            }
        }

        #[test]
        fn a_line_checked_once_decodes_each_field_as_checking_it_alone(line in mutated_line()) {
            if let Some(raw) = split_fast(&line) {
                let checked = Line::new(&line);
                for field in [raw.ip, raw.ident, raw.user, raw.time, raw.request, raw.status, raw.bytes] {
                    prop_assert_eq!(checked.text(field), text(field));
                }
                for field in [raw.referrer, raw.agent].into_iter().flatten() {
                    prop_assert_eq!(checked.unescape(field), unescape(field));
                }
            }
        }
    }

    #[test]
    fn multibyte_text_survives_and_a_bad_byte_is_kept_as_hex() {
        let valid = "1.2.3.4 - jörg [01/Jan/2024:00:00:00 +0000] \"GET /café HTTP/1.1\" 200 5 \"-\" \"Zürich \\\"né\\\"\"";
        let e = parse_line(valid.as_bytes()).unwrap();
        assert_eq!(e.user.as_deref(), Some("jörg"));
        assert_eq!(e.url, "/café");
        assert_eq!(e.user_agent.as_deref(), Some("Zürich \"né\""));

        // One byte that is not UTF-8 makes the line invalid as a whole: each field is then
        // decoded on its own, and only the bad one changes.
        let invalid = valid.replace("jörg", "j\u{1}rg").into_bytes();
        let at = invalid.iter().position(|&b| b == 1).unwrap();
        let mut invalid = invalid;
        invalid[at] = 0xFF;
        let e = parse_line(&invalid).unwrap();
        assert_eq!(e.user.as_deref(), Some("j\\xFFrg"));
        assert_eq!(e.url, "/café");
        assert_eq!(e.user_agent.as_deref(), Some("Zürich \"né\""));
    }
}
