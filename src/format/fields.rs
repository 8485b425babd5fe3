//! A line's raw fields, checked and decoded into a [`LogEntry`]: the half of a parse that
//! the compiled scanner and the regex share, so that they can differ only in how they split.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDateTime, Timelike};

use crate::entry::{Extra, LineTime, LogEntry};
use crate::parse::{
    LastTime, Line, Reject, TimestampError, absent_dash, may_be_client, parse_clf_time,
    parse_status, parse_time, parse_u64, split_request,
};

use super::definition::{Clock, Escape, Format, Slot, Slots, Timings};

/// Decodes the fields of `line` found by either splitter. `time` converts the time field
/// (the scanner's remembers the last one).
pub(crate) fn build<'a>(
    slots: &Slots<'a>,
    line: &'a [u8],
    format: &Format,
    time: impl FnOnce(&[u8]) -> Result<LineTime, TimestampError>,
) -> Result<LogEntry<'a>, Reject> {
    let get = |slot: Slot| slots[slot as usize];
    let line = Line::new(line);
    // Under `escape=json` every quoted value may hold escapes, and `""` is an absent value
    // (see `absent_dash`); the other escapings leave the unquoted fields as written.
    let unescape = |field| match format.escape {
        Escape::Default => line.unescape(field),
        Escape::Json if memchr::memchr(b'\\', field).is_some() => unescape_json(field),
        Escape::Json | Escape::None => line.text(field),
    };
    let text = |field| match format.escape {
        Escape::Json => unescape(field),
        Escape::Default | Escape::None => line.text(field),
    };
    let client = get(Slot::Client).or(get(Slot::Peer).map(address));
    let ip = client.unwrap_or(b"");
    if !may_be_client(ip) {
        return Err(Reject::Client);
    }
    if ip.is_empty() && client.is_some() {
        return Err(Reject::Format);
    }
    // Under escape=json, `\u0001` is a control byte once decoded: checked as stored.
    let ip_text = text(ip);
    if !may_be_client(ip_text.as_bytes()) {
        return Err(Reject::Client);
    }
    let time = time(get(Slot::Time).unwrap_or(b"")).map_err(Reject::Timestamp)?;
    let status = parse_status(get(Slot::Status).unwrap_or(b"")).ok_or(Reject::Status)?;
    let bytes = match get(Slot::Bytes) {
        None | Some(b"-") => None,
        Some(digits) => Some(
            parse_u64(match digits {
                [b'+', rest @ ..] if format.signed_size => rest,
                _ => digits,
            })
            .filter(|&n| i64::try_from(n).is_ok())
            .ok_or(Reject::Bytes)?,
        ),
    };
    let request = get(Slot::Request).or(get(Slot::AbsoluteRequest));
    // Split once: the method and protocol are the request's, the URL maybe not (below).
    let split = request.map(split_request);
    // The balancer's absolute target: its host and port, and the path it leads to.
    let absolute = match (split, get(Slot::Request)) {
        (Some((_, target, _)), None) => absolute(target),
        _ => None,
    };
    let (absolute_host, absolute_port, request_target) = match &absolute {
        Some(a) => (Some(a.host), a.port, Some(a.target)),
        None => (None, None, None),
    };
    let port_of = |digits: &[u8]| parse_u64(digits).and_then(|n| u16::try_from(n).ok());
    let port = match get(Slot::Port).and_then(absent_dash) {
        Some(digits) => Some(port_of(digits).ok_or(Reject::Port)?),
        // The port of an absolute URL is the client's to write: one that is no port is
        // none, not a reason to lose the request.
        None => absolute_port.and_then(absent_dash).and_then(port_of),
    };
    let response_time_us = match get(Slot::ResponseTime).and_then(absent_dash) {
        None => None,
        Some(value) => Some(decimal(value, format.unit.micros()).ok_or(Reject::ResponseTime)?),
    };
    let mut upstream_time_us = match get(Slot::UpstreamTime).and_then(absent_dash) {
        None => None,
        Some(values) => upstream_sum(values).ok_or(Reject::ResponseTime)?,
    };
    let mut response_time_us = response_time_us;
    if let (Some(values), Some(spec)) = (get(Slot::Timings), &format.timings) {
        let (response, upstream) = timings(values, spec).ok_or(Reject::ResponseTime)?;
        response_time_us = response_time_us.or(response);
        upstream_time_us = upstream_time_us.or(upstream);
    }
    let (method, url, protocol) = match split {
        Some((method, url, protocol)) => {
            let url = request_target.unwrap_or(url);
            (method.map(text), unescape(url), protocol.map(text))
        }
        None => (
            get(Slot::Method).and_then(absent_dash).map(text),
            target(get(Slot::Uri), get(Slot::Path), get(Slot::Query), &unescape),
            get(Slot::Protocol).and_then(absent_dash).map(text),
        ),
    };
    Ok(LogEntry {
        ip: ip_text,
        ident: get(Slot::Ident).and_then(absent_dash).map(text),
        user: get(Slot::User).and_then(absent_dash).map(text),
        timestamp: time.utc,
        utc_offset: time.offset,
        method,
        url,
        protocol,
        status,
        bytes,
        referrer: get(Slot::Referrer).and_then(absent_dash).map(unescape),
        user_agent: match get(Slot::EncodedUserAgent) {
            Some(encoded) if get(Slot::UserAgent).is_none() => {
                absent_dash(encoded).map(|a| percent_decoded(a, &line))
            }
            _ => get(Slot::UserAgent).and_then(absent_dash).map(unescape),
        },
        extra: Extra {
            vhost: get(Slot::Vhost)
                .or(absolute_host)
                .and_then(absent_dash)
                .map(text),
            port,
            response_time_us,
            upstream_time_us,
            forwarded_for: get(Slot::ForwardedFor).and_then(absent_dash).map(unescape),
        },
    })
}

/// The address of an `address:port` pair, without the brackets of `[2001:db8::1]:443`.
fn address(peer: &[u8]) -> &[u8] {
    split_port(peer).0
}

/// `host:port` split at the last `:` when digits follow it (else no port), the host without
/// its IPv6 brackets.
fn split_port(pair: &[u8]) -> (&[u8], Option<&[u8]>) {
    let (host, port) = match pair.iter().rposition(|&c| c == b':') {
        Some(colon)
            if colon + 1 < pair.len() && pair[colon + 1..].iter().all(u8::is_ascii_digit) =>
        {
            (&pair[..colon], Some(&pair[colon + 1..]))
        }
        _ => (pair, None),
    };
    match host {
        [b'[', inner @ .., b']'] => (inner, port),
        _ => (host, port),
    }
}

/// What an absolute request target `scheme://host[:port]/path?query` holds.
struct Absolute<'a> {
    host: &'a [u8],
    port: Option<&'a [u8]>,
    /// The path and query; `/` when the URL has none.
    target: &'a [u8],
}

/// `target` as an absolute URL; `None` when it is not one (`*`, `/a`, a malformed request),
/// which then stays the url as written.
fn absolute(target: &[u8]) -> Option<Absolute<'_>> {
    // The scheme is letters, so the first byte that is not one is where `://` must be (a
    // `memmem` search would set up a searcher at every line for it).
    let scheme_end = target.iter().position(|c| !c.is_ascii_alphabetic())?;
    if scheme_end == 0 || !target[scheme_end..].starts_with(b"://") {
        return None;
    }
    let rest = &target[scheme_end + 3..];
    let authority_len = rest
        .iter()
        .position(|&c| c == b'/' || c == b'?')
        .unwrap_or(rest.len());
    // `user:password@host`: the credentials are not the host (nor anything to store).
    let authority = &rest[..authority_len];
    let authority = match memchr::memrchr(b'@', authority) {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    let (host, port) = split_port(authority);
    Some(Absolute {
        host,
        port,
        target: match &rest[authority_len..] {
            [] => b"/",
            path => path,
        },
    })
}

/// A load balancer's timers ([`Timings`]): (response time, upstream time) in µs; `None`
/// when the field is not `count` numbers joined by `sep` (`-1` and a leading `+` allowed).
fn timings(field: &[u8], spec: &Timings) -> Option<(Option<u64>, Option<u64>)> {
    let mut values = [None; 8];
    let mut count = 0;
    for part in field.split(|&c| c == spec.sep) {
        let slot = values.get_mut(count)?;
        *slot = match part {
            b"-1" => None,
            _ => Some(decimal(
                part.strip_prefix(b"+").unwrap_or(part),
                spec.unit.micros(),
            )?),
        };
        count += 1;
    }
    if count != spec.count {
        return None;
    }
    let response = spec
        .response
        .iter()
        .try_fold(0u64, |sum, &i| sum.checked_add(values[i]?));
    Some((response, spec.upstream.and_then(|i| values[i])))
}

/// A percent-encoded field, decoded; bytes that are not UTF-8 afterwards are kept as `\xHH`.
fn percent_decoded<'a>(field: &'a [u8], line: &Line<'a>) -> Cow<'a, str> {
    if memchr::memchr(b'%', field).is_none() {
        return line.text(field);
    }
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        match (
            field[i],
            field.get(i + 1).and_then(|&c| hex(c)),
            field.get(i + 2).and_then(|&c| hex(c)),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi * 16 + lo);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(crate::parse::bytes_to_text(e.as_bytes())),
    }
}

/// The request target from separate fields: the target as sent, else the path with the
/// query (`%q` writes its `?`, `$args` does not; `-` or empty is no query).
fn target<'a>(
    uri: Option<&'a [u8]>,
    path: Option<&'a [u8]>,
    query: Option<&'a [u8]>,
    unescape: &impl Fn(&'a [u8]) -> Cow<'a, str>,
) -> Cow<'a, str> {
    if let Some(uri) = uri {
        return unescape(uri);
    }
    let path = unescape(path.unwrap_or(b""));
    match query.and_then(absent_dash) {
        None | Some(b"?") => path,
        Some(query) => {
            let mut url = path.into_owned();
            if !query.starts_with(b"?") {
                url.push('?');
            }
            url.push_str(&unescape(query));
            Cow::Owned(url)
        }
    }
}

/// Decodes a value nginx wrote with `escape=json`: the JSON string escapes, `\uXXXX` with
/// its surrogate pairs. Anything else after a backslash (which nginx does not write) is kept
/// as written, and bytes that are not UTF-8 (nginx copies them as they came) become `\xHH`.
pub(crate) fn unescape_json(raw: &[u8]) -> Cow<'_, str> {
    if memchr::memchr(b'\\', raw).is_none() {
        return crate::parse::text(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        let simple = match raw.get(i + 1) {
            _ if c != b'\\' => None,
            Some(b'"') => Some(b'"'),
            Some(b'\\') => Some(b'\\'),
            Some(b'/') => Some(b'/'),
            Some(b'b') => Some(0x08),
            Some(b'f') => Some(0x0C),
            Some(b'n') => Some(b'\n'),
            Some(b'r') => Some(b'\r'),
            Some(b't') => Some(b'\t'),
            _ => None,
        };
        if let Some(byte) = simple {
            out.push(byte);
            i += 2;
        } else if let Some((ch, len)) = (c == b'\\').then(|| json_char(&raw[i..])).flatten() {
            out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
            i += len;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Cow::Owned(crate::parse::text(&out).into_owned())
}

/// `\uXXXX` (or a `\uD8xx\uDCxx` surrogate pair) at the start of `b`: the character and
/// the length of its escape. A lone surrogate is no character.
fn json_char(b: &[u8]) -> Option<(char, usize)> {
    let hex4 = |at: usize| -> Option<u32> {
        let digits = b.get(at..at + 4)?;
        digits
            .iter()
            .try_fold(0, |n, &d| Some(n * 16 + char::from(d).to_digit(16)?))
    };
    if b.get(..2)? != b"\\u" {
        return None;
    }
    let high = hex4(2)?;
    if !(0xD800..0xDC00).contains(&high) {
        return char::from_u32(high).map(|c| (c, 6));
    }
    let low = (b.get(6..8)? == b"\\u").then(|| hex4(8)).flatten()?;
    if !(0xDC00..0xE000).contains(&low) {
        return None;
    }
    char::from_u32(0x10000 + ((high - 0xD800) << 10 | (low - 0xDC00))).map(|c| (c, 12))
}

/// `value` (digits, optionally a `.` and more digits) times `scale`, exactly: the digits are
/// read as a decimal, never through a float, so `0.390` s is 390000 µs.
pub(crate) fn decimal(value: &[u8], scale: u64) -> Option<u64> {
    let (int, frac) = match value.iter().position(|&c| c == b'.') {
        Some(dot) => (&value[..dot], Some(&value[dot + 1..])),
        None => (value, None),
    };
    let mut total = parse_u64(int)?.checked_mul(scale)?;
    if let Some(frac) = frac {
        if frac.is_empty() || !frac.iter().all(u8::is_ascii_digit) {
            return None;
        }
        // Digits below the unit of the result (a nanosecond of a µs) are dropped.
        let mut unit = u128::from(scale);
        let mut part: u128 = 0;
        let mut denominator: u128 = 1;
        for &c in frac.iter().take(18) {
            part = part * 10 + u128::from(c - b'0');
            denominator *= 10;
        }
        unit *= part;
        total = total.checked_add(u64::try_from(unit / denominator).ok()?)?;
    }
    Some(total)
}

/// `$upstream_response_time`: `-`, one value, or one per upstream tried, joined by `, ` (or
/// ` : ` across an internal redirect). The sum, in µs; `None` when no upstream answered.
fn upstream_sum(values: &[u8]) -> Option<Option<u64>> {
    let mut sum: Option<u64> = None;
    for part in values.split(|&c| c == b',' || c == b':') {
        let part = part.trim_ascii();
        if part == b"-" {
            continue;
        }
        let us = decimal(part, 1_000_000)?;
        sum = Some(sum.unwrap_or(0).checked_add(us)?);
    }
    Some(sum)
}

/// A [`LastTime`] for the format scanner and the JSON reader, whose time fields may carry a
/// fraction of a second: with a clock, they are compared, and converted, without it (see
/// [`second_of`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct LastSecond {
    /// The field as compared: without its fraction of a second when a clock was given (or
    /// as the caller cut it: see `json::console_second`).
    last: LastTime,
    /// Room for a field without its fraction (see [`second_of`]).
    key: Vec<u8>,
}

impl LastSecond {
    /// `field` converted by `convert`, or the last conversion when it says the same. With a
    /// `clock`, without its fraction of a second; without one, as it is written.
    pub(crate) fn convert(
        &mut self,
        clock: Option<&Clock>,
        field: &[u8],
        convert: impl FnOnce(&[u8]) -> Result<LineTime, TimestampError>,
    ) -> Result<LineTime, TimestampError> {
        let field = match clock {
            Some(clock) => second_of(clock, field, &mut self.key),
            None => field,
        };
        self.last.convert(field, convert)
    }
}

/// What of a time field says its second, for a [`LastSecond`]: a fraction of a second (ISO
/// 8601's `.465313`, HAProxy's `.999`), which the stores drop, changes at every line of a
/// busy log, and would make every line parse its time again. The fraction's digits (one to
/// nine) are checked here; the rest is the converter's to check. An RFC 3339 reader
/// (chrono's, which [`parse_clock`] uses for ISO 8601) reads what follows such a fraction
/// as it reads it after the seconds, so the key converts to the same second and offset as
/// the whole field. A field without its fraction is written into `key`, the caller's, so
/// that no line allocates.
fn second_of<'b>(clock: &Clock, b: &'b [u8], key: &'b mut Vec<u8>) -> &'b [u8] {
    match clock {
        Clock::Iso8601 if b.get(19) == Some(&b'.') => {
            let digits = b[20..].iter().take_while(|c| c.is_ascii_digit()).count();
            // Longer fractions are left to the full parse, which decides whether they are
            // valid at all; so is a second fraction (`22.4.5313Z`), which, with the first
            // taken out, would read as a valid one.
            if !(1..=9).contains(&digits) || b.get(20 + digits) == Some(&b'.') {
                return b;
            }
            key.clear();
            key.extend_from_slice(&b[..19]);
            key.extend_from_slice(&b[20 + digits..]);
            key
        }
        Clock::ClfMillis => match b {
            [clf @ .., b'.', d1, d2, d3]
                if clf.len() == 20 && [d1, d2, d3].iter().all(|d| d.is_ascii_digit()) =>
            {
                key.clear();
                key.extend_from_slice(clf);
                key.extend_from_slice(b".000");
                key
            }
            _ => b,
        },
        _ => b,
    }
}

/// Converts a time field as `clock` writes it.
pub(crate) fn parse_clock(clock: &Clock, b: &[u8]) -> Result<LineTime, TimestampError> {
    use TimestampError::{Range, Shape};
    let epoch = |scale: u64| -> Result<LineTime, TimestampError> {
        // Whole seconds: the stores keep seconds, and a fraction would make two copies of
        // one line compare unequal after a round trip through them.
        let us = decimal(b, 1_000_000 / scale).ok_or(Shape)?;
        DateTime::from_timestamp(i64::try_from(us / 1_000_000).map_err(|_| Range)?, 0)
            .map(LineTime::unzoned)
            .ok_or(Range)
    };
    match clock {
        Clock::Clf => parse_clf_time(b),
        Clock::EpochSeconds => epoch(1),
        Clock::EpochMillis => epoch(1_000),
        Clock::EpochMicros => epoch(1_000_000),
        Clock::Iso8601 => {
            let s = std::str::from_utf8(b).map_err(|_| Shape)?;
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_nanosecond(0).expect("0 is a valid nanosecond"))
                .map(LineTime::zoned)
                .map_err(|_| Shape)
        }
        Clock::ClfMillis => {
            // `dd/Mon/yyyy:HH:MM:SS.mmm`: the fast CLF reader, given the seconds and `+0000`;
            // the time was written without an offset.
            match b {
                [clf @ .., b'.', d1, d2, d3]
                    if clf.len() == 20 && [d1, d2, d3].iter().all(|d| d.is_ascii_digit()) =>
                {
                    let mut zoned = [0u8; 26];
                    zoned[..20].copy_from_slice(clf);
                    zoned[20..].copy_from_slice(b" +0000");
                    parse_time(&zoned).map(LineTime::unzoned)
                }
                _ => Err(Shape),
            }
        }
        Clock::Strftime { format, zoned } => {
            let s = std::str::from_utf8(b).map_err(|_| Shape)?;
            if *zoned {
                DateTime::parse_from_str(s, format)
                    .map(LineTime::zoned)
                    .map_err(|_| Shape)
            } else {
                NaiveDateTime::parse_from_str(s, format)
                    .map(|t| LineTime::unzoned(t.and_utc()))
                    .map_err(|_| Shape)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_exact_integer_microseconds() {
        assert_eq!(decimal(b"0.390", 1_000_000), Some(390_000));
        assert_eq!(decimal(b"5.246", 1_000_000), Some(5_246_000));
        assert_eq!(decimal(b"12", 1_000), Some(12_000));
        assert_eq!(decimal(b"1234", 1), Some(1234));
        assert_eq!(decimal(b"0.0000019", 1_000_000), Some(1));
        assert_eq!(decimal(b"1.", 1), None);
        assert_eq!(decimal(b"-1", 1), None);
        assert_eq!(decimal(b"", 1), None);
        assert_eq!(upstream_sum(b"0.004, 0.010"), Some(Some(14_000)));
        assert_eq!(upstream_sum(b"0.004, 0.010 : 0.100"), Some(Some(114_000)));
        assert_eq!(upstream_sum(b"-"), Some(None));
        assert_eq!(upstream_sum(b"0.5, -"), Some(Some(500_000)));
        assert_eq!(upstream_sum(b"x"), None);
    }

    #[test]
    fn a_time_read_by_its_second_is_the_time_read_whole() {
        for (clock, text) in [
            (Clock::Iso8601, &b"2017-06-29T00:50:22.465313Z"[..]),
            (Clock::Iso8601, b"2017-06-29T03:50:22.4+03:00"),
            (Clock::Iso8601, b"2017-06-29T00:50:22Z"),
            (Clock::Iso8601, b"2017-06-29T00:50:22.Z"),
            (Clock::Iso8601, b"2017-06-29T00:50:22.12a3Z"),
            (Clock::Iso8601, b"2017-06-29T00:50:22.1234567890123Z"),
            (Clock::Iso8601, b"2017-06-29T00:50:22.4.5313Z"),
            (Clock::ClfMillis, b"29/Jun/2017:00:50:22.999"),
            (Clock::ClfMillis, b"29/Jun/2017:00:50:22.9x9"),
            (Clock::ClfMillis, b"29/Jun/2017:00:50:99.999"),
        ] {
            let whole = parse_clock(&clock, text);
            let by_second = parse_clock(&clock, second_of(&clock, text, &mut Vec::new()));
            assert_eq!(whole, by_second, "{}", String::from_utf8_lossy(text));
        }
        // The key's room held something else before: it is replaced, not appended to.
        let (mut one, mut other) = (b"stale".to_vec(), Vec::new());
        assert_eq!(
            second_of(&Clock::Iso8601, b"2017-06-29T00:50:22.465313Z", &mut one),
            b"2017-06-29T00:50:22Z"
        );
        assert_eq!(
            second_of(
                &Clock::Iso8601,
                b"2017-06-29T00:50:22.000001+01:00",
                &mut other
            ),
            b"2017-06-29T00:50:22+01:00"
        );
    }

    #[test]
    fn json_escapes_are_decoded() {
        let cases: [(&[u8], &str); 9] = [
            (br#"plain"#, "plain"),
            (br#"a\"b\\c\/d"#, "a\"b\\c/d"),
            (br#"\n\r\t\b\f"#, "\n\r\t\u{8}\u{c}"),
            (br#"caf\u00e9 \u00E9"#, "café é"),
            (br#"\ud83d\ude00!"#, "😀!"),
            // A lone surrogate, a short escape and a trailing backslash stay as written.
            (br#"\ud83d x"#, r#"\ud83d x"#),
            (br#"\u12"#, r#"\u12"#),
            (br#"end\"#, r#"end\"#),
            (b"\\\"\xff", "\"\\xFF"),
        ];
        for (raw, want) in cases {
            assert_eq!(unescape_json(raw), want, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn every_clock_reads_its_own_form_and_offset() {
        let t = "2017-06-29T00:50:22Z";
        // The offset is the line's when it wrote one, else none.
        let check = |clock: Clock, text: &[u8], offset: Option<i32>| {
            let got = parse_clock(&clock, text).unwrap();
            assert_eq!(crate::entry::Rfc3339(got.utc).to_string(), t, "{clock:?}");
            assert_eq!(got.offset, offset, "{clock:?}");
        };
        check(Clock::Clf, b"29/Jun/2017:03:50:22 +0300", Some(10800));
        check(Clock::Clf, b"28/Jun/2017:21:20:22 -0330", Some(-12600));
        check(Clock::Iso8601, b"2017-06-29T03:50:22+03:00", Some(10800));
        check(Clock::EpochSeconds, b"1498697422.123", None);
        check(Clock::EpochMillis, b"1498697422123", None);
        check(Clock::EpochMicros, b"1498697422123456", None);
        check(
            Clock::Strftime {
                format: "%Y-%m-%d %H:%M:%S".into(),
                zoned: false,
            },
            b"2017-06-29 00:50:22",
            None,
        );
        check(
            Clock::Strftime {
                format: "%d/%m/%Y %H:%M:%S %z".into(),
                zoned: true,
            },
            b"29/06/2017 03:50:22 +0300",
            Some(10800),
        );
        check(Clock::Iso8601, b"2017-06-29T00:50:22.465313Z", Some(0));
        check(Clock::ClfMillis, b"29/Jun/2017:00:50:22.999", None);
        assert!(parse_clock(&Clock::Iso8601, b"yesterday").is_err());
        assert!(parse_clock(&Clock::ClfMillis, b"29/Jun/2017:00:50:22").is_err());
        assert!(parse_clock(&Clock::ClfMillis, b"29/Jun/2017:00:50:22.1x3").is_err());
    }

    #[test]
    fn balancer_fields_split_as_documented() {
        assert_eq!(address(b"10.0.0.1:443"), b"10.0.0.1");
        assert_eq!(address(b"2001:db8::1:443"), b"2001:db8::1");
        assert_eq!(address(b"[2001:db8::1]:443"), b"2001:db8::1");
        assert_eq!(address(b"host"), b"host");
        let a = absolute(b"https://[::1]:8443/a/b?c=d").unwrap();
        assert_eq!(
            (a.host, a.port, a.target),
            (&b"::1"[..], Some(&b"8443"[..]), &b"/a/b?c=d"[..])
        );
        let a = absolute(b"http://example.com?q").unwrap();
        assert_eq!(
            (a.host, a.port, a.target),
            (&b"example.com"[..], None, &b"?q"[..])
        );
        assert_eq!(absolute(b"http://example.com").unwrap().target, b"/");
        assert!(absolute(b"/a?u=http://x").is_none());
        assert!(absolute(b"*").is_none());
        // No scheme, or one that is not letters only.
        assert!(absolute(b"://x/").is_none());
        assert!(absolute(b"h2c1://x/").is_none());
        assert!(absolute(b"http:/x").is_none());
        let elb = Timings {
            unit: super::super::definition::Unit::Seconds,
            sep: b' ',
            count: 3,
            response: &[0, 1, 2],
            upstream: Some(1),
        };
        assert_eq!(
            timings(b"0.000033 0.00082 0.000016", &elb),
            Some((Some(869), Some(820)))
        );
        assert_eq!(timings(b"-1 -1 -1", &elb), Some((None, None)));
        assert_eq!(timings(b"0.1 -1 0.1", &elb), Some((None, None)));
        assert_eq!(timings(b"0.1 0.1", &elb), None);
        assert_eq!(timings(b"0.1 0.1 0.1 0.1", &elb), None);
        assert_eq!(timings(b"0.1 x 0.1", &elb), None);
        let haproxy = Timings {
            unit: super::super::definition::Unit::Millis,
            sep: b'/',
            count: 5,
            response: &[4],
            upstream: Some(3),
        };
        assert_eq!(
            timings(b"0/0/7/1457/+1487", &haproxy),
            Some((Some(1_487_000), Some(1_457_000)))
        );
        let line = Line::new(b"Mozilla/5.0%20(X11)%zz%E2%82%AC%FF");
        assert_eq!(
            percent_decoded(b"Mozilla/5.0%20(X11)%zz%E2%82%AC%FF", &line),
            "Mozilla/5.0 (X11)%zz\u{20ac}\\xFF"
        );
    }
}
