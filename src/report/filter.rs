//! Which entries count: the filters of `--since`, `--until`, `--status`, `--url` and `--ip`,
//! as a value ([`Filters`]) and as the one predicate every store's rows go through ([`Filter`]).
//!
//! The predicate looks at numbers first (time and status), so that an entry they refuse costs
//! no string lookup; then at the client and the URL by their ids, remembering the answer for
//! each id, so that the regular expression runs once per distinct URL, not once per row.

use chrono::{DateTime, TimeDelta, Utc};
use regex::Regex;
use rustc_hash::FxHashMap;

use crate::entry::{Rfc3339, parse_rfc3339};
use crate::row::ClientKey;

/// `--status`: one code, or a class such as `5xx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// 100 to 599.
    Code(u16),
    /// 1 to 5 (`1xx` to `5xx`).
    Class(u16),
}

impl std::str::FromStr for StatusFilter {
    type Err = String;

    /// Takes only the codes and classes HTTP defines (100-599, 1xx-5xx). The parser stores any
    /// three digits a log holds, but a filter for `999` or `9xx` is a typo, and would print an
    /// empty report as if no such requests had come.
    fn from_str(s: &str) -> Result<Self, String> {
        let b = s.as_bytes();
        match b {
            [c @ b'1'..=b'5', b'x' | b'X', b'x' | b'X'] => {
                Ok(StatusFilter::Class(u16::from(c - b'0')))
            }
            [a @ b'1'..=b'5', b, c] if b.is_ascii_digit() && c.is_ascii_digit() => {
                Ok(StatusFilter::Code(
                    u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'),
                ))
            }
            _ => Err(format!(
                "'{s}' is not a status code from 100 to 599 (404) or a class from 1xx to 5xx"
            )),
        }
    }
}

/// Which entries count. Applied to every report.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub status: Option<StatusFilter>,
    pub url: Option<Regex>,
    pub ip: Option<String>,
}

/// Parses `--since`/`--until`: an RFC 3339 time, or a span back from now (`90s`, `30m`, `2h`,
/// `7d`, `2w`).
///
/// A span is digits and a unit, nothing else: a sign or a fraction (`-2h`, `+2h`, `1.5h`)
/// is refused rather than read, because `-2h` would silently mean two hours in the future.
pub fn parse_time_arg(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Some(t) = parse_rfc3339(s) {
        return Ok(t);
    }
    let not_a_time =
        || format!("'{s}' is neither an RFC 3339 time nor a span back from now like 2h or 7d");
    // Split on bytes: the last character may be more than one byte long.
    let (&unit, digits) = s.as_bytes().split_last().ok_or_else(not_a_time)?;
    let is_number = |d: &[u8]| !d.is_empty() && d.iter().all(u8::is_ascii_digit);
    if !is_number(digits) {
        return Err(match digits.strip_prefix(b"-") {
            Some(rest) if is_number(rest) => format!(
                "'{s}' is a negative span; spans count back from now (2h), \
                 a time in the future is written in RFC 3339"
            ),
            _ => not_a_time(),
        });
    }
    let too_far = || format!("'{s}' reaches too far back");
    // Only ASCII digits: the one way this parse fails is a number beyond i64.
    let n: i64 = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or_else(too_far)?;
    let span = match unit {
        b's' => TimeDelta::try_seconds(n),
        b'm' => TimeDelta::try_minutes(n),
        b'h' => TimeDelta::try_hours(n),
        b'd' => TimeDelta::try_days(n),
        b'w' => TimeDelta::try_weeks(n),
        _ => return Err(not_a_time()),
    }
    .ok_or_else(too_far)?;
    now.checked_sub_signed(span).ok_or_else(too_far)
}

impl Filters {
    /// No filter at all: every entry counts.
    pub fn is_empty(&self) -> bool {
        self.since.is_none()
            && self.until.is_none()
            && self.status.is_none()
            && self.url.is_none()
            && self.ip.is_none()
    }

    /// A human description, for the report header.
    pub fn describe(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(t) = self.since {
            out.push(("since".into(), Rfc3339(t).to_string()));
        }
        if let Some(t) = self.until {
            out.push(("until".into(), Rfc3339(t).to_string()));
        }
        match self.status {
            Some(StatusFilter::Code(c)) => out.push(("status".into(), c.to_string())),
            Some(StatusFilter::Class(c)) => out.push(("status".into(), format!("{c}xx"))),
            None => {}
        }
        if let Some(re) = &self.url {
            out.push(("url".into(), re.as_str().to_string()));
        }
        if let Some(ip) = &self.ip {
            out.push(("ip".into(), ip.clone()));
        }
        out
    }
}

/// [`Filters`] compiled for one counting thread: the one predicate of the reports.
///
/// Stores hand it ids (a client's key, a URL's id) and the text behind an id only when it has
/// not seen that id yet; the answer per id is kept, since ids are dense and few next to rows.
#[derive(Debug)]
pub struct Filter<'f> {
    filters: &'f Filters,
    since: Option<i64>,
    until: Option<i64>,
    /// `--ip` as an IPv4 key, when it is an IPv4 address: compared as a number.
    ip_v4: Option<u64>,
    /// `--ip` as an address, when it is one: a client written another way (`2001:DB8::1` for
    /// `2001:db8::1`) is the same client.
    ip_addr: Option<std::net::IpAddr>,
    /// Per client key other than such an address: does its text equal `--ip`?
    clients: FxHashMap<u64, bool>,
    /// Per URL id: 0 not seen yet, 1 refused, 2 accepted by `--url`.
    urls: Vec<u8>,
}

impl<'f> Filter<'f> {
    pub fn new(filters: &'f Filters) -> Filter<'f> {
        Filter {
            filters,
            since: filters.since.map(|t| t.timestamp()),
            until: filters.until.map(|t| t.timestamp()),
            ip_v4: (filters.ip.as_deref())
                .and_then(|ip| ip.parse::<std::net::Ipv4Addr>().ok())
                .map(|a| ClientKey::V4(u32::from(a)).key()),
            ip_addr: (filters.ip.as_deref()).and_then(|ip| ip.parse().ok()),
            clients: FxHashMap::default(),
            urls: Vec::new(),
        }
    }

    /// The part of the predicate on numbers: time and status.
    #[inline]
    pub fn accepts_time_and_status(&self, timestamp: i64, status: u16) -> bool {
        self.since.is_none_or(|t| timestamp >= t)
            && self.until.is_none_or(|t| timestamp <= t)
            && match self.filters.status {
                None => true,
                Some(StatusFilter::Code(c)) => status == c,
                Some(StatusFilter::Class(c)) => status / 100 == c,
            }
    }

    /// The part on the client with key `client`, whose text `text` gives when asked.
    #[inline]
    pub fn accepts_client<'t>(
        &mut self,
        client: u64,
        text: impl FnOnce() -> std::borrow::Cow<'t, str>,
    ) -> bool {
        let Some(ip) = self.filters.ip.as_deref() else {
            return true;
        };
        if let Some(v4) = self.ip_v4 {
            return client == v4;
        }
        if let ClientKey::V4(_) = ClientKey::of(client) {
            // `--ip` is not an IPv4 address in its usual form, so no such client is it.
            return false;
        }
        let addr = self.ip_addr;
        *self.clients.entry(client).or_insert_with(|| {
            let text = text();
            text == ip || addr.is_some_and(|a| text.parse() == Ok(a))
        })
    }

    /// The part on the URL with id `url`, whose text `text` gives when asked.
    #[inline]
    pub fn accepts_url<'t>(&mut self, url: u32, text: impl FnOnce() -> &'t str) -> bool {
        let Some(re) = &self.filters.url else {
            return true;
        };
        let i = url as usize;
        if i >= self.urls.len() {
            self.urls.resize(i + 1, 0);
        }
        if self.urls[i] == 0 {
            self.urls[i] = 1 + u8::from(re.is_match(text()));
        }
        self.urls[i] == 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_args_take_rfc3339_and_spans() {
        let now = parse_rfc3339("2024-01-10T00:00:00Z").unwrap();
        assert_eq!(
            parse_time_arg("2h", now).unwrap(),
            parse_rfc3339("2024-01-09T22:00:00Z").unwrap()
        );
        assert_eq!(
            parse_time_arg("7d", now).unwrap(),
            parse_rfc3339("2024-01-03T00:00:00Z").unwrap()
        );
        assert_eq!(
            parse_time_arg("2024-01-01T00:00:00Z", now).unwrap(),
            parse_rfc3339("2024-01-01T00:00:00Z").unwrap()
        );
        assert_eq!(parse_time_arg("0s", now).unwrap(), now);
        assert!(parse_time_arg("yesterday", now).is_err());
        assert!(parse_time_arg("5y", now).is_err());
    }

    #[test]
    fn time_args_refuse_spans_that_are_not_digits_and_a_unit() {
        let now = parse_rfc3339("2024-01-10T00:00:00Z").unwrap();
        // A negative span would be a time in the future: refused, and said so.
        let err = parse_time_arg("-2h", now).unwrap_err();
        assert!(err.contains("'-2h' is a negative span"), "{err}");
        for arg in [
            "+2h", "1.5h", "2", "h", "", " 2h", "2h ", "--2h", "-h", "2é", "é", "2hh",
        ] {
            let err = parse_time_arg(arg, now).unwrap_err();
            assert!(
                err.starts_with(&format!("'{arg}' is neither an RFC 3339 time")),
                "{arg:?}: {err}"
            );
        }
        // Digits beyond i64, or a span beyond what a time can go back.
        for arg in [
            "99999999999999999999s",
            "9223372036854775807w",
            "300000000d",
        ] {
            let err = parse_time_arg(arg, now).unwrap_err();
            assert_eq!(err, format!("'{arg}' reaches too far back"));
        }
    }

    #[test]
    fn status_filters() {
        assert_eq!("404".parse(), Ok(StatusFilter::Code(404)));
        assert_eq!("100".parse(), Ok(StatusFilter::Code(100)));
        assert_eq!("599".parse(), Ok(StatusFilter::Code(599)));
        assert_eq!("5xx".parse(), Ok(StatusFilter::Class(5)));
        assert_eq!("1XX".parse(), Ok(StatusFilter::Class(1)));
        // Outside what HTTP defines: a typo, not a filter that matches nothing.
        for arg in [
            "999", "600", "099", "000", "9xx", "6xx", "0xx", "4x", "40", "4040", "+40", "", "abc",
        ] {
            let err = arg.parse::<StatusFilter>().unwrap_err();
            assert!(
                err.contains("100 to 599") && err.contains("1xx to 5xx"),
                "{arg}: {err}"
            );
        }
    }

    #[test]
    fn the_predicate_takes_ids_and_asks_each_text_once() {
        let filters = Filters {
            status: Some(StatusFilter::Class(4)),
            url: Some(Regex::new("^/api").unwrap()),
            ip: Some("::1".into()),
            ..Filters::default()
        };
        let mut filter = Filter::new(&filters);
        assert!(filter.accepts_time_and_status(0, 404));
        assert!(!filter.accepts_time_and_status(0, 500));
        let mut asked = 0;
        for _ in 0..3 {
            assert!(filter.accepts_url(3, || {
                asked += 1;
                "/api/x"
            }));
            assert!(!filter.accepts_url(0, || {
                asked += 1;
                "/home"
            }));
        }
        assert_eq!(asked, 2, "the regex ran once per URL id");
        let other = ClientKey::Other(5).key();
        assert!(filter.accepts_client(other, || "::1".into()));
        assert!(!filter.accepts_client(ClientKey::Other(6).key(), || "::2".into()));
        assert!(!filter.accepts_client(ClientKey::V4(1).key(), || "0.0.0.1".into()));
        let v4 = Filters {
            ip: Some("10.0.0.1".into()),
            ..Filters::default()
        };
        let mut filter = Filter::new(&v4);
        assert!(filter.accepts_client(ClientKey::V4(0x0A00_0001).key(), || unreachable!()));
        assert!(!filter.accepts_client(ClientKey::Other(0).key(), || unreachable!()));
        // An address written another way is the same client; text that is no address is
        // matched as written.
        let v6 = Filters {
            ip: Some("2001:DB8::1".into()),
            ..Filters::default()
        };
        let mut filter = Filter::new(&v6);
        assert!(filter.accepts_client(ClientKey::Other(0).key(), || "2001:db8::1".into()));
        assert!(filter.accepts_client(ClientKey::Other(1).key(), || "2001:db8:0:0:0:0:0:1".into()));
        assert!(!filter.accepts_client(ClientKey::Other(2).key(), || "2001:db8::2".into()));
        let host = Filters {
            ip: Some("proxy.example".into()),
            ..Filters::default()
        };
        let mut filter = Filter::new(&host);
        assert!(filter.accepts_client(ClientKey::Other(0).key(), || "proxy.example".into()));
        assert!(!filter.accepts_client(ClientKey::Other(1).key(), || "Proxy.example".into()));
    }
}
