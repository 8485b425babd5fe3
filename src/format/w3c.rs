//! W3C extended logs, as IIS writes them: the fields of each line are named by the last
//! `#Fields:` directive before it, and a file holds a new header block (`#Software`,
//! `#Version`, `#Date`, `#Fields`) each time the server starts or the site's settings change,
//! so the field list may change within one file.
//!
//! Each `#Fields:` line is compiled into a [`Format`] (fields separated by single spaces) and
//! run by the same [`Scanner`] as Apache and nginx definitions: the differential test against
//! the format's regex, and every field's checks, hold for W3C lines too. What is W3C's own:
//! - `date time` (UTC, as the specification and IIS write them) is one time field;
//! - `cs-uri-stem` and `cs-uri-query` are the path and the query (`-` is no query);
//! - IIS writes each space of a header value as `+` (`Mozilla/5.0+(Windows+NT+10.0…)`), so a
//!   `+` in the user agent or referrer is read back as a space;
//! - `time-taken` is in milliseconds (IIS; the specification says seconds, IIS never did).
//!
//! The field list in force is state carried from line to line: [`W3cParser`] takes it from
//! the `#Fields:` lines it parses, and a reader that starts past the first line (a resumed
//! file, a batch parsed on another thread) gives it the last one before its start through
//! [`W3cParser::set_fields`] (see [`fields_before`]).

use std::borrow::Cow;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use crate::entry::LogEntry;
use crate::parse::Reject;

use super::definition::{Clock, Field, Format, FormatError, Piece, Unit};
use super::scanner::Scanner;

/// The directive that names the fields of the lines after it.
const FIELDS: &[u8] = b"#Fields:";

/// Is `line` a `#Fields:` directive (whose field list the lines after it follow)?
pub fn is_fields_line(line: &[u8]) -> bool {
    line.starts_with(FIELDS)
}

/// The format a `#Fields:` line (with or without its `#Fields:`) names.
pub fn fields_format(line: &[u8]) -> Result<Format, FormatError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (skip, list) = match line.strip_prefix(FIELDS) {
        Some(rest) => (FIELDS.len(), rest),
        None => (0, line),
    };
    let text = String::from_utf8_lossy(list);
    let names: Vec<(usize, &str)> = text
        .split(' ')
        .scan(skip, |at, name| {
            let here = *at;
            *at += name.len() + 1;
            Some((here, name))
        })
        .filter(|(_, name)| !name.is_empty())
        .collect();
    let has_host = names
        .iter()
        .any(|(_, n)| matches!(&*n.to_ascii_lowercase(), "cs-host" | "cs(host)"));
    let mut pieces = Vec::new();
    let mut i = 0;
    while i < names.len() {
        let (at, name) = names[i];
        let lower = name.to_ascii_lowercase();
        let field = if lower == "date" && names.get(i + 1).is_some_and(|(_, n)| *n == "time") {
            // One time field spanning both: the scanner reads past the space inside it.
            i += 1;
            Field::Time(Clock::Strftime {
                format: "%Y-%m-%d %H:%M:%S".into(),
                zoned: false,
            })
        } else {
            field(&lower, has_host)
        };
        if !pieces.is_empty() {
            pieces.push(Piece::Literal(b" ".to_vec()));
        }
        pieces.push(Piece::Field { field, at });
        i += 1;
    }
    Format::new(pieces, line.len())
}

/// What a W3C field name carries. `has_host`: the list also names the Host header, which is
/// the virtual host; `s-sitename` (IIS's `W3SVC1`) is one only when it does not.
fn field(name: &str, has_host: bool) -> Field {
    match name {
        "c-ip" => Field::Client,
        "cs-username" => Field::User,
        "cs-method" => Field::Method,
        "cs-uri-stem" => Field::Path,
        "cs-uri-query" => Field::Query,
        "cs-uri" => Field::Uri,
        "cs-version" => Field::Protocol,
        "sc-status" => Field::Status,
        "sc-bytes" => Field::Bytes,
        "cs(referer)" => Field::Referrer,
        "cs(user-agent)" => Field::UserAgent,
        "cs-host" | "cs(host)" => Field::Vhost,
        "s-sitename" if !has_host => Field::Vhost,
        "s-port" => Field::Port,
        "time-taken" => Field::ResponseTime(Unit::Millis),
        "x-forwarded-for" | "cs(x-forwarded-for)" => Field::ForwardedFor,
        // A time alone (no `date` before it) is not enough for an instant.
        _ => Field::Opaque { list: false },
    }
}

/// Parses W3C lines, following the `#Fields:` lines among them; one per thread.
#[derive(Debug, Default)]
pub struct W3cParser {
    /// The `#Fields:` line in force, and what it compiled to (an error when it cannot be
    /// used: its lines are then rejected as `format`).
    fields: Option<InForce>,
}

#[derive(Debug)]
struct InForce {
    line: Arc<[u8]>,
    scanner: Result<Scanner, FormatError>,
}

impl W3cParser {
    /// Makes `fields` (a `#Fields:` line, or none) the list in force, as if the parser had
    /// just read it. Compiles it only when it differs from the one in force.
    pub fn set_fields(&mut self, fields: Option<&Arc<[u8]>>) {
        match fields {
            None => self.fields = None,
            Some(line) => {
                if self.fields.as_ref().is_some_and(|now| &now.line == line) {
                    return;
                }
                self.fields = Some(InForce {
                    line: Arc::clone(line),
                    scanner: fields_format(line).map(|f| Scanner::new(Arc::new(f))),
                });
            }
        }
    }

    /// Parses one line (without its `\n`; a trailing `\r` is ignored). A directive (`#…`)
    /// is not a request: it is rejected as one, and a `#Fields:` line is followed from here.
    pub fn parse<'a>(&mut self, line: &'a [u8]) -> Result<LogEntry<'a>, Reject> {
        if line.starts_with(b"#") {
            if is_fields_line(line) {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                self.set_fields(Some(&Arc::from(line)));
            }
            return Err(Reject::Directive);
        }
        let Some(InForce {
            scanner: Ok(scanner),
            ..
        }) = &mut self.fields
        else {
            // No `#Fields:` line before it, or one that names no time, URL or status.
            return Err(Reject::Format);
        };
        let mut entry = scanner.parse(line)?;
        entry.user_agent = entry.user_agent.map(plus_is_space);
        entry.referrer = entry.referrer.map(plus_is_space);
        Ok(entry)
    }
}

/// IIS writes a space in a header value as `+`.
fn plus_is_space(value: Cow<'_, str>) -> Cow<'_, str> {
    if value.contains('+') {
        Cow::Owned(value.replace('+', " "))
    } else {
        value
    }
}

/// The last `#Fields:` line that starts at or after `from` (a line start) and before
/// `offset` in `file`, for a read that resumes at `offset`: read backwards a block at a time,
/// down to `from` at most (a follower gives where its last pass began, whose header it
/// knows; a first read, the file's top).
pub fn fields_before(
    file: &std::fs::File,
    from: u64,
    offset: u64,
) -> io::Result<Option<Arc<[u8]>>> {
    const BLOCK: u64 = 64 << 10;
    let mut end = offset;
    // The bytes from `end` up to the first line start after it that was already searched: at
    // first, the rest of the line `offset` falls in, which may be a header begun before it.
    let mut carry = vec![0u8; BLOCK as usize];
    let n = file.read_at(&mut carry, offset)?;
    carry.truncate(memchr::memchr(b'\n', &carry[..n]).map_or(n, |nl| nl + 1));
    while end > from {
        let start = end.saturating_sub(BLOCK).max(from);
        let mut block = vec![0u8; (end - start) as usize];
        file.read_exact_at(&mut block, start)?;
        block.extend_from_slice(&carry);
        // Line starts in this block: after each `\n`, and the file's start.
        let mut starts: Vec<usize> = memchr::memchr_iter(b'\n', &block)
            .map(|i| i + 1)
            .filter(|&i| i < block.len())
            .collect();
        if start == from {
            starts.insert(0, 0);
        }
        for &s in starts.iter().rev() {
            if is_fields_line(&block[s..]) && start + (s as u64) < offset {
                let line_end = memchr::memchr(b'\n', &block[s..]).map_or(block.len(), |e| s + e);
                let line = &block[s..line_end];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                return Ok(Some(Arc::from(line)));
            }
        }
        // The head of this block, up to its first line start, may be the end of a line that
        // begins in the block before.
        let first = starts.first().copied().unwrap_or(block.len());
        carry = block[..first].to_vec();
        end = start;
    }
    Ok(None)
}

/// The last `#Fields:` line among `lines` (bytes read from a file's start), for a
/// compressed file whose skipped head is read anyway.
pub fn last_fields_in(bytes: &[u8], carry: &mut Vec<u8>) -> Option<Arc<[u8]>> {
    carry.extend_from_slice(bytes);
    let mut found = None;
    let mut rest: &[u8] = carry;
    let mut consumed = 0;
    while let Some(nl) = memchr::memchr(b'\n', rest) {
        let line = &rest[..nl];
        if is_fields_line(line) {
            found = Some(Arc::from(line.strip_suffix(b"\r").unwrap_or(line)));
        }
        consumed += nl + 1;
        rest = &rest[nl + 1..];
    }
    carry.drain(..consumed);
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Rfc3339;
    use std::io::Write;

    const IIS7: &[u8] = b"#Fields: date time s-sitename s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) sc-status sc-substatus sc-win32-status sc-bytes cs-bytes time-taken";

    #[test]
    fn a_fields_line_names_the_fields_of_the_lines_after_it() {
        let mut p = W3cParser::default();
        let line = b"2009-11-07 01:15:45 W3SVC20 67.222.136.138 GET /robots.txt - 80 - 67.195.112.32 Mozilla/5.0+(compatible;++Yahoo!+Slurp) 404 0 2 1424 193 84";
        assert_eq!(p.parse(line).unwrap_err(), Reject::Format, "no #Fields yet");
        assert_eq!(p.parse(IIS7).unwrap_err(), Reject::Directive);
        let e = p.parse(line).unwrap();
        assert_eq!(e.ip, "67.195.112.32");
        assert_eq!(Rfc3339(e.timestamp).to_string(), "2009-11-07T01:15:45Z");
        assert_eq!(e.method.as_deref(), Some("GET"));
        assert_eq!(e.url, "/robots.txt");
        assert_eq!(e.protocol, None);
        assert_eq!(e.status, 404);
        assert_eq!(e.bytes, Some(1424));
        assert_eq!(e.user, None);
        assert_eq!(
            e.user_agent.as_deref(),
            Some("Mozilla/5.0 (compatible;  Yahoo! Slurp)")
        );
        assert_eq!(e.extra.vhost.as_deref(), Some("W3SVC20"));
        assert_eq!(e.extra.port, Some(80));
        assert_eq!(e.extra.response_time_us, Some(84_000));
        // A new list: the referrer comes in, the site name goes, the host is the vhost.
        let other = b"#Fields: date time c-ip cs-method cs-uri-stem cs-uri-query sc-status sc-bytes cs(Referer) cs-host time-taken";
        assert_eq!(p.parse(other).unwrap_err(), Reject::Directive);
        let e = p
            .parse(b"2015-01-13 00:32:17 ::1 POST /a b=1&c=2 200 5 http://x/?q=a+b example.org 7")
            .unwrap();
        assert_eq!(e.ip, "::1");
        assert_eq!(e.url, "/a?b=1&c=2");
        assert_eq!(e.referrer.as_deref(), Some("http://x/?q=a b"));
        assert_eq!(e.extra.vhost.as_deref(), Some("example.org"));
        assert_eq!(e.extra.response_time_us, Some(7_000));
        assert!(p.parse(b"#Date: 2015-01-13 00:32:17").is_err());
    }

    #[test]
    fn a_fields_line_without_time_url_or_status_rejects_its_lines() {
        let mut p = W3cParser::default();
        assert_eq!(
            p.parse(b"#Fields: time c-ip cs-uri-stem sc-status")
                .unwrap_err(),
            Reject::Directive
        );
        assert_eq!(
            p.parse(b"01:02:03 1.2.3.4 / 200").unwrap_err(),
            Reject::Format
        );
        assert!(fields_format(b"#Fields: time c-ip cs-uri-stem sc-status").is_err());
    }

    #[test]
    fn the_fields_in_force_at_an_offset_are_found_reading_backwards() {
        let mut f = tempfile::tempfile().unwrap();
        let a = "#Fields: date time c-ip cs-uri-stem sc-status\r\n";
        let line = "2020-01-01 00:00:00 1.2.3.4 /x 200\r\n";
        let b = "#Fields: date time c-ip cs-method cs-uri-stem sc-status\n";
        let mut text = String::new();
        text.push_str(a);
        // Enough lines that the search crosses several blocks.
        for _ in 0..5000 {
            text.push_str(line);
        }
        let second = text.len() as u64;
        text.push_str(b);
        text.push_str(line);
        f.write_all(text.as_bytes()).unwrap();
        let at = |offset: u64| {
            fields_before(&f, 0, offset)
                .unwrap()
                .map(|l| String::from_utf8(l.to_vec()).unwrap())
        };
        assert_eq!(at(0), None);
        assert_eq!(at(1).as_deref(), Some(a.trim_end()));
        assert_eq!(at(second).as_deref(), Some(a.trim_end()));
        assert_eq!(at(second + 1).as_deref(), Some(b.trim_end()));
        assert_eq!(at(text.len() as u64).as_deref(), Some(b.trim_end()));
        // From a line start on: only what lies between.
        let line_start = (a.len() + line.len()) as u64;
        assert_eq!(fields_before(&f, line_start, second).unwrap(), None);
        let from = fields_before(&f, line_start, second + 1).unwrap();
        assert_eq!(from.as_deref(), Some(b.trim_end().as_bytes()));
        let mut carry = Vec::new();
        let bytes = text.as_bytes();
        let mut last = None;
        for chunk in bytes[..second as usize + 10].chunks(7) {
            if let Some(found) = last_fields_in(chunk, &mut carry) {
                last = Some(found);
            }
        }
        assert_eq!(last.as_deref(), Some(a.trim_end().as_bytes()));
    }
}
