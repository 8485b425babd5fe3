//! JSON access logs (Caddy, Traefik): one JSON object per request, read by key.
//!
//! A JSON log names its fields, so it has no definition to compile: each server's keys are
//! read into typed structs that borrow from the line ([`keys`]; unknown keys are skipped
//! without being built), then mapped to a [`LogEntry`] by one function per server. The
//! mapping is the table in the README's "Log formats" section; [`Schema::fields`] lists the
//! entry fields it can fill, for the stores' columns and `--client forwarded`.
//!
//! Numbers that are times are read from their JSON text, never through a float, so Caddy's
//! `"duration":0.0294296` is exactly 29429 µs.

use std::borrow::Cow;

use chrono::{DateTime, Datelike, NaiveDateTime, Utc};
use serde::Deserialize;

use crate::entry::{Extra, LineTime, LogEntry};
use crate::parse::{Reject, TimestampError, may_be_client};

use super::definition::{Clock, Field, Format, Piece, Unit};
use super::fields::{LastSecond, decimal};

mod keys;
mod scan;

use keys::{CaddyLine, Text, TraefikLine, Values};

/// The JSON access logs read by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Caddy v2's access log with its default `json` encoder.
    Caddy,
    /// Caddy v2's `console` encoder: `time\tlevel\tlogger\tmessage\t{JSON}`.
    CaddyConsole,
    /// Traefik v2's access log with `--accesslog.format=json`.
    Traefik,
}

impl Schema {
    /// The `--log-format` name.
    pub fn name(self) -> &'static str {
        match self {
            Schema::Caddy => "caddy",
            Schema::CaddyConsole => "caddy-console",
            Schema::Traefik => "traefik",
        }
    }

    /// The schema a `--log-format` name names.
    pub fn from_name(name: &str) -> Option<Schema> {
        [Schema::Caddy, Schema::CaddyConsole, Schema::Traefik]
            .into_iter()
            .find(|s| s.name() == name)
    }

    /// The entry fields the mapping fills when the line has their keys.
    pub fn fields(self) -> Vec<Field> {
        let mut fields = vec![
            Field::Client,
            Field::User,
            Field::Time(match self {
                Schema::Caddy => Clock::EpochSeconds,
                Schema::CaddyConsole | Schema::Traefik => Clock::Iso8601,
            }),
            Field::Method,
            Field::Uri,
            Field::Protocol,
            Field::Status,
            Field::Bytes,
            Field::Referrer,
            Field::UserAgent,
            Field::Vhost,
            Field::Port,
            Field::ResponseTime(Unit::Micros),
            Field::ForwardedFor,
        ];
        if self == Schema::Traefik {
            fields.push(Field::UpstreamTime);
        }
        fields
    }

    /// [`Schema::fields`] as a [`Format`], so that what is asked of a format's fields (the
    /// stores' columns, `--client forwarded`, how specific `auto` finds it) is answered as
    /// for a definition. Its scanner is not used: [`JsonParser`] reads the lines.
    pub(crate) fn format(self) -> Format {
        let mut pieces = Vec::new();
        for (at, field) in self.fields().into_iter().enumerate() {
            if at > 0 {
                pieces.push(Piece::Literal(b" ".to_vec()));
            }
            pieces.push(Piece::Field { field, at });
        }
        Format::new(pieces, 0).expect("a JSON mapping has a time, a URL and a status")
    }
}

/// Parses the lines of one [`Schema`]; one per thread. It remembers the last time it
/// converted, as the scanner does: consecutive lines mostly share their second.
#[derive(Debug, Clone)]
pub struct JsonParser {
    schema: Schema,
    marks: scan::Marks,
    last: LastSecond,
}

impl JsonParser {
    pub fn new(schema: Schema) -> JsonParser {
        JsonParser {
            schema,
            marks: scan::Marks::default(),
            last: LastSecond::default(),
        }
    }

    /// Parses one line (without its `\n`; a trailing `\r` is ignored). A line that is not
    /// JSON, or a JSON line that is not a request (a server's own messages, another logger's
    /// lines), is [`Reject::Format`].
    pub fn parse<'a>(&mut self, line: &'a [u8]) -> Result<LogEntry<'a>, Reject> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match self.schema {
            Schema::Caddy => {
                let caddy = read(line, &mut self.marks, scan::caddy)?;
                if caddy
                    .logger
                    .as_ref()
                    .is_some_and(|l| !is_access_logger(&l.0))
                {
                    return Err(Reject::Format);
                }
                let ts = caddy.ts.map(|raw| raw.0.as_bytes());
                self.caddy_entry(caddy, ts, epoch_or_rfc3339)
            }
            Schema::CaddyConsole => {
                let mut parts = line.splitn(5, |&b| b == b'\t');
                let (Some(ts), Some(_level), Some(logger), Some(_msg), Some(json)) = (
                    parts.next(),
                    parts.next(),
                    parts.next(),
                    parts.next(),
                    parts.next(),
                ) else {
                    return Err(Reject::Format);
                };
                if !is_access_logger(std::str::from_utf8(logger).unwrap_or("")) {
                    return Err(Reject::Format);
                }
                let caddy = read(json, &mut self.marks, scan::caddy)?;
                self.caddy_entry(caddy, Some(console_second(ts)), console_time)
            }
            Schema::Traefik => {
                let traefik = read(line, &mut self.marks, scan::traefik)?;
                self.traefik_entry(traefik)
            }
        }
    }

    /// `text` converted by `convert`, or the last conversion when it says the same (see
    /// [`LastSecond`]). An RFC 3339 time is given its `clock` (ISO 8601): compared without its
    /// fraction of a second, which changes at every line (Traefik writes nanoseconds) and
    /// which the stores drop.
    fn time(
        &mut self,
        text: Option<&[u8]>,
        clock: Option<&Clock>,
        convert: fn(&[u8]) -> Result<LineTime, TimestampError>,
    ) -> Result<LineTime, Reject> {
        let text = text.ok_or(Reject::Timestamp(TimestampError::Shape))?;
        (self.last)
            .convert(clock, text, convert)
            .map_err(Reject::Timestamp)
    }
}

/// How many entry fields `line` fills: how much of it a schema understood, for `auto`.
pub(crate) fn fields_read(schema: Schema, line: &[u8]) -> usize {
    let Ok(e) = JsonParser::new(schema).parse(line) else {
        return 0;
    };
    let x = &e.extra;
    // The client, the time, the URL and the status are always there.
    4 + [
        e.user.is_some(),
        e.method.is_some(),
        e.protocol.is_some(),
        e.bytes.is_some(),
        e.referrer.is_some(),
        e.user_agent.is_some(),
        x.vhost.is_some(),
        x.port.is_some(),
        x.response_time_us.is_some(),
        x.upstream_time_us.is_some(),
        x.forwarded_for.is_some(),
    ]
    .iter()
    .filter(|&&b| b)
    .count()
}

/// Reads a line as `T`: by `fast` (see [`scan`]) when it is sure, else by serde. The line's
/// UTF-8 is checked once as a whole, by the pass that marks it, so that neither checks each
/// string again; a line that is not UTF-8 is no JSON of ours (Caddy and Traefik write UTF-8,
/// replacing what is not).
fn read<'a, T: Deserialize<'a>>(
    json: &'a [u8],
    marks: &mut scan::Marks,
    fast: fn(&'a str, &scan::Marks) -> Option<T>,
) -> Result<T, Reject> {
    let (text, may_be_fast) = marks.text(json).ok_or(Reject::Format)?;
    if may_be_fast && let Some(read) = fast(text, marks) {
        return Ok(read);
    }
    serde_json::from_str(text).map_err(|_| Reject::Format)
}

/// Caddy names its access loggers `http.log.access` and `http.log.access.<name>`; its other
/// loggers (`tls`, `http.handlers.reverse_proxy`...) may share the file.
fn is_access_logger(logger: &str) -> bool {
    logger
        .strip_prefix("http.log.access")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// Checked in this order, which the reference reading in the tests follows: the request
/// and its URL (else not an access line), the client, the time, then the numbers.
impl JsonParser {
    fn caddy_entry<'a>(
        &mut self,
        caddy: CaddyLine<'a>,
        ts: Option<&[u8]>,
        convert: fn(&[u8]) -> Result<LineTime, TimestampError>,
    ) -> Result<LogEntry<'a>, Reject> {
        let request = caddy.request.ok_or(Reject::Format)?;
        let url = request.uri.ok_or(Reject::Format)?.0;
        let ip = match (request.remote_ip, request.remote_addr) {
            (Some(ip), _) => ip.0,
            (None, Some(addr)) => host_and_port(addr.0).0,
            (None, None) => Cow::Borrowed(""),
        };
        client(&ip)?;
        let time = self.time(ts, None, convert)?;
        let status = status(caddy.status)?;
        let response_time_us = match caddy.duration {
            None => None,
            Some(raw) => Some(seconds_us(raw.0).ok_or(Reject::ResponseTime)?),
        };
        let bytes = caddy.size.map(bytes).transpose()?;
        let (vhost, port) = match request.host {
            Some(host) => host_and_port(host.0),
            None => (Cow::Borrowed(""), None),
        };
        let (referrer, user_agent, forwarded_for) = match request.headers {
            Some(h) => (
                values(h.referer),
                values(h.user_agent),
                values(h.forwarded_for),
            ),
            None => (None, None, None),
        };
        Ok(LogEntry {
            ip,
            ident: None,
            user: present(caddy.user_id),
            timestamp: time.utc,
            utc_offset: time.offset,
            method: present(request.method),
            url,
            protocol: present(request.proto),
            status,
            bytes,
            referrer,
            user_agent,
            extra: Extra {
                vhost: Some(vhost).filter(|v| !v.is_empty()),
                port,
                response_time_us,
                upstream_time_us: None,
                forwarded_for,
            },
        })
    }

    /// In the order of [`JsonParser::caddy_entry`].
    fn traefik_entry<'a>(&mut self, traefik: TraefikLine<'a>) -> Result<LogEntry<'a>, Reject> {
        let url = traefik.request_path.ok_or(Reject::Format)?.0;
        let ip = match (traefik.client_host, traefik.client_addr) {
            (Some(host), _) => host.0,
            (None, Some(addr)) => host_and_port(addr.0).0,
            (None, None) => Cow::Borrowed(""),
        };
        client(&ip)?;
        let from_utc = traefik.start_utc.is_some();
        let start = traefik.start_utc.or(traefik.time);
        let start = start.as_ref().map(|t| t.0.as_bytes());
        let mut time = self.time(start, Some(&Clock::Iso8601), rfc3339)?;
        if from_utc {
            // StartUTC is UTC whatever the server's zone: it says nothing of the log's own.
            time.offset = None;
        }
        let status = status(traefik.downstream_status)?;
        let bytes = traefik.downstream_content_size.map(bytes).transpose()?;
        // From the Host header, the client's to write: one that is no port is none.
        let port = present(traefik.request_port).and_then(|p| p.parse::<u16>().ok());
        Ok(LogEntry {
            ip,
            ident: None,
            user: present(traefik.client_username),
            timestamp: time.utc,
            utc_offset: time.offset,
            method: present(traefik.request_method),
            url,
            protocol: present(traefik.request_protocol),
            status,
            bytes,
            referrer: present(traefik.referer),
            user_agent: present(traefik.user_agent),
            extra: Extra {
                vhost: present(traefik.request_host),
                port,
                response_time_us: traefik.duration.map(|ns| ns / 1000),
                upstream_time_us: traefik.origin_duration.map(|ns| ns / 1000),
                forwarded_for: present(traefik.forwarded_for),
            },
        })
    }
}

/// A client is needed ([`Reject::Format`] without one) and must be one ([`may_be_client`]).
fn client(ip: &str) -> Result<(), Reject> {
    if ip.is_empty() {
        Err(Reject::Format)
    } else if !may_be_client(ip.as_bytes()) {
        Err(Reject::Client)
    } else {
        Ok(())
    }
}

/// A header's values, absent when it was sent empty or not at all.
fn values(header: Option<Values<'_>>) -> Option<Cow<'_, str>> {
    header.and_then(|v| v.0).filter(|v| !v.is_empty())
}

/// A string value, absent when empty or `-` (Traefik writes `-` for what it lacks).
fn present(text: Option<Text<'_>>) -> Option<Cow<'_, str>> {
    text.map(|t| t.0).filter(|t| !t.is_empty() && t != "-")
}

fn status(status: Option<u64>) -> Result<u16, Reject> {
    match status {
        Some(s @ 100..=999) => Ok(s as u16),
        _ => Err(Reject::Status),
    }
}

/// A size the stores can hold (see [`Reject::Bytes`]).
fn bytes(n: u64) -> Result<u64, Reject> {
    i64::try_from(n).map(|_| n).map_err(|_| Reject::Bytes)
}

/// `host:port`, `[v6]:port`, a bare host or a bare IPv6 address, split; the port `None` when
/// there is none. A port that is not a number (the Host header is the client's to write) is
/// no port: the value is kept whole as the host rather than the request rejected.
fn host_and_port(hostport: Cow<'_, str>) -> (Cow<'_, str>, Option<u16>) {
    let (host, port) = split_port(&hostport);
    let port = match port.map(str::parse::<u16>) {
        Some(Err(_)) => return (hostport, None),
        Some(Ok(port)) => Some(port),
        None => None,
    };
    let start = host.as_ptr() as usize - hostport.as_ptr() as usize;
    let range = start..start + host.len();
    let host = match hostport {
        Cow::Borrowed(s) => Cow::Borrowed(&s[range]),
        Cow::Owned(s) => Cow::Owned(s[range].to_owned()),
    };
    (host, port)
}

fn split_port(hostport: &str) -> (&str, Option<&str>) {
    if let Some(rest) = hostport.strip_prefix('[')
        && let Some((host, after)) = rest.split_once(']')
    {
        return (host, after.strip_prefix(':').filter(|p| !p.is_empty()));
    }
    match hostport.rsplit_once(':') {
        // Two colons or more: a bare IPv6 address, no port.
        Some((host, port)) if !host.contains(':') => (host, Some(port).filter(|p| !p.is_empty())),
        _ => (hostport, None),
    }
}

/// A JSON number of seconds as whole microseconds: its decimal text read exactly
/// (`0.0294296` is 29429 µs). A number in exponent form (`1e-05`), which Go's encoder does not
/// write for durations, goes through a float.
fn seconds_us(number: &str) -> Option<u64> {
    if let Some(us) = decimal(number.as_bytes(), 1_000_000) {
        return Some(us);
    }
    let seconds: f64 = number.parse().ok()?;
    (0.0..1e12)
        .contains(&seconds)
        .then_some((seconds * 1e6) as u64)
}

/// Caddy's `ts`: seconds since the epoch with a fraction (the default), or an RFC 3339
/// string (`time_format rfc3339`/`iso8601`). Whole seconds, as every clock gives them.
fn epoch_or_rfc3339(raw: &[u8]) -> Result<LineTime, TimestampError> {
    match raw {
        [b'"', inner @ .., b'"'] => rfc3339(inner),
        _ => {
            let us = decimal(raw, 1_000_000).ok_or(TimestampError::Shape)?;
            let secs = i64::try_from(us / 1_000_000).map_err(|_| TimestampError::Range)?;
            // Past year 9999 the number is not seconds (Caddy's `time_format` set to
            // milliseconds, say): refused, rather than stored as a time 50,000 years away.
            DateTime::from_timestamp(secs, 0)
                .filter(|t| t.year() <= 9999)
                .map(LineTime::unzoned)
                .ok_or(TimestampError::Range)
        }
    }
}

fn rfc3339(text: &[u8]) -> Result<LineTime, TimestampError> {
    let text = std::str::from_utf8(text).map_err(|_| TimestampError::Shape)?;
    let t = DateTime::parse_from_rfc3339(text).map_err(|_| TimestampError::Shape)?;
    Ok(LineTime {
        utc: whole_second(t.with_timezone(&Utc))?,
        offset: LineTime::zoned(t).offset,
    })
}

/// The console encoder's `2024/01/23 23:27:57.060`, which has no zone: taken as UTC, as an
/// Apache time without `%z` is.
fn console_time(text: &[u8]) -> Result<LineTime, TimestampError> {
    let text = std::str::from_utf8(text).map_err(|_| TimestampError::Shape)?;
    let t = NaiveDateTime::parse_from_str(text, "%Y/%m/%d %H:%M:%S%.f")
        .map_err(|_| TimestampError::Shape)?;
    whole_second(t.and_utc()).map(LineTime::unzoned)
}

/// The console time without its milliseconds, when it is laid out exactly as the console
/// encoder writes it (`2024/01/23 23:27:57.060`): compared and converted without them, as
/// the milliseconds change at every line and would make every line parse its time again
/// (see [`LastSecond`]); the stores keep whole seconds either way. Any other text is kept
/// whole: chrono's format parser also reads other layouts (runs of spaces, one-digit or
/// signed fields), where a `.` at the same place is not the fraction's: cutting from it
/// to the digits' end would keep what follows (`23:27.5:57` read as 23:27:57).
fn console_second(ts: &[u8]) -> &[u8] {
    const LAYOUT: &[u8; 19] = b"dddd/dd/dd dd:dd:dd";
    let laid_out = |second: &[u8]| {
        (second.iter().zip(LAYOUT)).all(|(&b, &l)| {
            if l == b'd' {
                b.is_ascii_digit()
            } else {
                b == l
            }
        })
    };
    match ts.split_at_checked(LAYOUT.len()) {
        Some((second, [b'.', fraction @ ..]))
            if laid_out(second)
                && (1..=9).contains(&fraction.len())
                && fraction.iter().all(u8::is_ascii_digit) =>
        {
            second
        }
        _ => ts,
    }
}

/// The stores keep seconds; a fraction kept here would make a line differ from itself after
/// a round trip through them.
fn whole_second(t: DateTime<Utc>) -> Result<DateTime<Utc>, TimestampError> {
    DateTime::from_timestamp(t.timestamp(), 0).ok_or(TimestampError::Range)
}

#[cfg(test)]
mod tests;
