//! Which entries count: the filters of `--since`, `--until`, `--status`, `--ip`,
//! `--exclude-ip`, `--url`, `--exclude-url`, `--method`, `--agent` and `--crawlers`, as a value
//! ([`Filters`]) and as the one predicate every store's rows go through ([`Filter`]).
//!
//! Every filter takes its values the same way ([`Alternatives`]): values separated by commas
//! are alternatives, any of which lets an entry through; a value that starts with `!` leaves
//! out what it matches; with only such values, everything else passes. The `--exclude-*`
//! options are the `!` values of their filter, spelt so that a shell needs no quotes.
//!
//! The predicate looks at numbers first (time and status), so that an entry they refuse costs
//! no string lookup; then at the client, the URL, the method and the agent by their ids,
//! remembering the answer for each id, so that a regular expression runs once per distinct
//! URL or agent, not once per row.

use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use regex::Regex;
use rustc_hash::FxHashMap;

use crate::entry::{Rfc3339, parse_rfc3339};
use crate::row::ClientKey;
use crate::zone::Zone;

/// The values of one filter: those that let an entry through (any of them; every entry when
/// there are none) and those that leave it out (any of them).
#[derive(Debug, Clone)]
pub struct Alternatives<T> {
    pub keep: Vec<T>,
    pub drop: Vec<T>,
}

impl<T> Default for Alternatives<T> {
    fn default() -> Self {
        Alternatives {
            keep: Vec::new(),
            drop: Vec::new(),
        }
    }
}

impl<T> Alternatives<T> {
    /// `404,5xx,!503`: values separated by commas, each read by `value`; a leading `!` makes
    /// one a value to leave out.
    pub fn list(s: &str, value: impl Fn(&str) -> Result<T, String>) -> Result<Self, String> {
        let mut out = Alternatives::default();
        for item in s.split(',') {
            out.push(s, item, &value)?;
        }
        Ok(out)
    }

    /// One value, not split at commas (a regular expression may hold some); a leading `!`
    /// makes it a value to leave out.
    pub fn one(s: &str, value: impl Fn(&str) -> Result<T, String>) -> Result<Self, String> {
        let mut out = Alternatives::default();
        out.push(s, s, &value)?;
        Ok(out)
    }

    /// Values to leave out, as an `--exclude-*` option takes them: a `!` there would say it
    /// twice, and is refused rather than guessed at.
    pub fn excluding(
        s: &str,
        split: bool,
        value: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Self, String> {
        let items: Vec<&str> = match split {
            true => s.split(',').collect(),
            false => vec![s],
        };
        let mut out = Alternatives::default();
        for item in items {
            if item.starts_with('!') {
                return Err(format!(
                    "'{item}': values given here are left out already, without a `!`"
                ));
            }
            out.drop.push(Self::value(s, item, &value)?);
        }
        Ok(out)
    }

    fn push(
        &mut self,
        whole: &str,
        item: &str,
        value: &impl Fn(&str) -> Result<T, String>,
    ) -> Result<(), String> {
        match item.strip_prefix('!') {
            Some(rest) => self.drop.push(Self::value(whole, rest, value)?),
            None => self.keep.push(Self::value(whole, item, value)?),
        }
        Ok(())
    }

    fn value(
        whole: &str,
        item: &str,
        value: &impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, String> {
        match item {
            "" if whole.is_empty() => Err("an empty value filters nothing".into()),
            "" => Err(format!("'{whole}' has an empty value")),
            _ => value(item),
        }
    }

    /// Does an entry pass, `matches` telling which values match it?
    #[inline]
    pub fn accepts(&self, matches: impl Fn(&T) -> bool) -> bool {
        (self.keep.is_empty() || self.keep.iter().any(&matches)) && !self.drop.iter().any(matches)
    }

    /// The values as given, normalized by `text`: `404,5xx,!503`.
    pub fn describe(&self, text: impl Fn(&T) -> String) -> String {
        let keep = self.keep.iter().map(&text);
        let drop = self.drop.iter().map(|v| format!("!{}", text(v)));
        keep.chain(drop).collect::<Vec<_>>().join(",")
    }

    /// The values to leave out, without their `!`: as an `--exclude-*` option took them.
    fn describe_excluded(&self, text: impl Fn(&T) -> String) -> String {
        self.drop.iter().map(text).collect::<Vec<_>>().join(",")
    }

    /// This filter's values and `other`'s, by reference: `--url` and `--exclude-url` as one.
    fn with<'a>(this: Option<&'a Self>, other: Option<&'a Self>) -> Option<Alternatives<&'a T>> {
        if this.is_none() && other.is_none() {
            return None;
        }
        let both = || this.into_iter().chain(other);
        Some(Alternatives {
            keep: both().flat_map(|a| &a.keep).collect(),
            drop: both().flat_map(|a| &a.drop).collect(),
        })
    }
}

/// `--status`: one code, or a class such as `5xx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// 100 to 599.
    Code(u16),
    /// 1 to 5 (`1xx` to `5xx`).
    Class(u16),
}

impl StatusFilter {
    fn matches(self, status: u16) -> bool {
        match self {
            StatusFilter::Code(c) => status == c,
            StatusFilter::Class(c) => status / 100 == c,
        }
    }
}

impl std::fmt::Display for StatusFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusFilter::Code(c) => write!(f, "{c}"),
            StatusFilter::Class(c) => write!(f, "{c}xx"),
        }
    }
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

/// `--status 404,5xx,!503`.
pub fn parse_statuses(s: &str) -> Result<Alternatives<StatusFilter>, String> {
    Alternatives::list(s, str::parse)
}

/// A value of `--ip` or `--exclude-ip`: an address, a network, or a client that is no address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpFilter {
    /// An address and a prefix length (its own length for one address), the bits past the
    /// prefix zero.
    Net(IpAddr, u8),
    /// A client that is no address (a host name, a pseudonym `h:…`): the same text, exactly.
    Text(String),
}

impl IpFilter {
    /// The network as the mask and the bits every address in it has, in one space for both
    /// families: an IPv4 address is compared as the IPv6 address that maps it
    /// (`::ffff:a.b.c.d`), which is how a dual-stack server may log the same client.
    fn bits(&self) -> Option<(u128, u128)> {
        let IpFilter::Net(addr, prefix) = self else {
            return None;
        };
        let prefix = match addr {
            IpAddr::V4(_) => 96 + u32::from(*prefix),
            IpAddr::V6(_) => u32::from(*prefix),
        };
        let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
        Some((mask, address_bits(*addr) & mask))
    }
}

/// An address in the one space of [`IpFilter::bits`].
fn address_bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    }
}

impl std::fmt::Display for IpFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IpFilter::Net(addr, prefix) if *prefix == full_length(*addr) => write!(f, "{addr}"),
            IpFilter::Net(addr, prefix) => write!(f, "{addr}/{prefix}"),
            IpFilter::Text(text) => f.write_str(text),
        }
    }
}

fn full_length(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

impl std::str::FromStr for IpFilter {
    type Err = String;

    /// An address (`10.0.0.1`, `2001:db8::1`), a network (`10.0.0.0/8`, `2001:db8::/32`,
    /// host bits ignored), or any other text, which is a client as the log wrote it. A `/`
    /// makes a network, and a network that cannot be one is refused: `/33` is a typo, not
    /// a client.
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some((addr, bits)) = s.split_once('/') {
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| format!("'{s}' is not a network: '{addr}' is not an IP address"))?;
            let max = full_length(addr);
            let prefix = (bits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| bits.parse::<u8>().ok())
                .flatten()
                .filter(|&p| p <= max)
                .ok_or_else(|| {
                    format!("'{s}' is not a network: its prefix is not a length of 0 to {max} bits")
                })?;
            let masked = match addr {
                IpAddr::V4(a) => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                    IpAddr::V4((u32::from(a) & mask).into())
                }
                IpAddr::V6(a) => {
                    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                    IpAddr::V6((u128::from(a) & mask).into())
                }
            };
            return Ok(IpFilter::Net(masked, prefix));
        }
        match s.parse::<IpAddr>() {
            Ok(addr) => Ok(IpFilter::Net(addr, full_length(addr))),
            // Only digits and dots, or a colon or bracket: an address mistyped (`10.0.0.256`,
            // `[::1]`), which as a host name would match nothing and print an empty report.
            Err(_)
                if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') || s.contains([':', '[']) =>
            {
                Err(format!(
                    "'{s}' is not an IP address (10.0.0.1, 2001:db8::1) or a network"
                ))
            }
            Err(_) => Ok(IpFilter::Text(s.to_owned())),
        }
    }
}

/// `--ip 10.0.0.0/8,2001:db8::/32,!10.1.2.3`.
pub fn parse_ips(s: &str) -> Result<Alternatives<IpFilter>, String> {
    Alternatives::list(s, str::parse)
}

/// `--exclude-ip 10.0.0.0/8,::1`.
pub fn parse_excluded_ips(s: &str) -> Result<Alternatives<IpFilter>, String> {
    Alternatives::excluding(s, true, str::parse)
}

/// A regular expression, searched anywhere in the text.
fn regex(s: &str) -> Result<Regex, String> {
    Regex::new(s).map_err(|e| e.to_string())
}

/// `--url REGEX` and `--agent REGEX`: one expression, not split at commas; `!REGEX` leaves
/// out what it matches (`\!` at the start is a `!` to match).
pub fn parse_pattern(s: &str) -> Result<Alternatives<Regex>, String> {
    Alternatives::one(s, regex)
}

/// `--exclude-url REGEX`.
pub fn parse_excluded_pattern(s: &str) -> Result<Alternatives<Regex>, String> {
    Alternatives::excluding(s, false, regex)
}

/// A value of `--method`: a method's name, compared without regard to case (logs hold what
/// clients sent, and `get` is GET to every server that answers it), or `-` for lines that
/// name none, as the methods report shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodFilter(String);

impl MethodFilter {
    /// The method, in capitals (`-` for a line that names none).
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for MethodFilter {
    type Err = String;

    /// The characters HTTP allows in a method (a token), so that a shell's leftovers
    /// (`GET POST`, a quote) are refused rather than matched against nothing.
    fn from_str(s: &str) -> Result<Self, String> {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        match !s.is_empty() && s.bytes().all(token) {
            true => Ok(MethodFilter(s.to_ascii_uppercase())),
            false => Err(format!(
                "'{s}' is not a method (GET, POST, ...; - for none)"
            )),
        }
    }
}

/// `--method GET,POST` or `--method '!GET'`.
pub fn parse_methods(s: &str) -> Result<Alternatives<MethodFilter>, String> {
    Alternatives::list(s, str::parse)
}

/// Which entries count. Applied to every report.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub status: Option<Alternatives<StatusFilter>>,
    pub ip: Option<Alternatives<IpFilter>>,
    /// Values to leave out only.
    pub exclude_ip: Option<Alternatives<IpFilter>>,
    pub url: Option<Alternatives<Regex>>,
    /// Values to leave out only.
    pub exclude_url: Option<Alternatives<Regex>>,
    pub method: Option<Alternatives<MethodFilter>>,
    pub agent: Option<Alternatives<Regex>>,
    /// `--crawlers`: whether requests from crawlers ([`crate::agent`]) count.
    pub crawlers: Crawlers,
    /// Not a filter but a grouping: URLs and referrers are counted without their query
    /// string ([`crate::privacy::strip_query`]), as the ingest option of the same name stores
    /// them; `--url` sees them so too. Here because every store applies it where it reads
    /// URLs, as it applies the filters.
    pub strip_query: bool,
}

/// `--crawlers`: the requests whose user agent is a crawler's, a scanner's or a tool's
/// ([`crate::agent::classify`]) are counted with the others, left out, or counted alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Crawlers {
    #[default]
    Include,
    Exclude,
    Only,
}

impl Crawlers {
    fn accepts(self, crawler: bool) -> bool {
        match self {
            Crawlers::Include => true,
            Crawlers::Exclude => !crawler,
            Crawlers::Only => crawler,
        }
    }
}

/// Which end of a day a date stands for: `--since` takes its first second, `--until` its
/// last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    Start,
    End,
}

/// Parses `--since`/`--until`: an RFC 3339 time; a day (`2024-01-05`, `today`,
/// `yesterday`, in UTC), which stands for its first second at the `Start` and its last at the
/// `End`, so that `--since D --until D` is the whole day; or a span back from now (`90s`,
/// `30m`, `2h`, `7d`, `2w`).
///
/// A span is digits and a unit, nothing else: a sign or a fraction (`-2h`, `+2h`, `1.5h`)
/// is refused rather than read, because `-2h` would silently mean two hours in the future.
/// A date that is no day of the calendar (`2024-13-01`, `2023-02-29`) is refused too.
pub fn parse_time_arg(
    s: &str,
    now: DateTime<Utc>,
    edge: Edge,
    zone: &Zone,
) -> Result<DateTime<Utc>, String> {
    if let Some(t) = parse_rfc3339(s) {
        return Ok(t);
    }
    let today = zone.today(now);
    let day = match s {
        "today" => Some(today),
        "yesterday" => today.pred_opt(),
        _ => parse_date(s)?,
    };
    if let Some(day) = day {
        // A day of the zone: from its first second to the last before the next day's.
        return match edge {
            Edge::Start => Ok(zone.start_of(day)),
            Edge::End => day
                .succ_opt()
                .map(|next| zone.start_of(next) - chrono::TimeDelta::seconds(1))
                .ok_or_else(|| format!("'{s}' is the last day there is")),
        };
    }
    let not_a_time = || {
        format!(
            "'{s}' is neither an RFC 3339 time, a day (2024-01-05, today, yesterday) nor a \
             span back from now like 2h or 7d"
        )
    };
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

/// `YYYY-MM-DD`: `None` for text of another shape, an error for that shape with no such day.
fn parse_date(s: &str) -> Result<Option<NaiveDate>, String> {
    let b = s.as_bytes();
    let shaped = b.len() == 10
        && (b.iter().enumerate()).all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    if !shaped {
        return Ok(None);
    }
    let number = |r: std::ops::Range<usize>| s[r].parse::<u32>().expect("digits");
    NaiveDate::from_ymd_opt(number(0..4) as i32, number(5..7), number(8..10))
        .map(Some)
        .ok_or_else(|| format!("'{s}' is not a day of the calendar (YYYY-MM-DD)"))
}

impl Filters {
    /// No filter at all: every entry counts. (`strip_query` filters nothing.)
    pub fn is_empty(&self) -> bool {
        self.since.is_none()
            && self.until.is_none()
            && self.status.is_none()
            && self.ip.is_none()
            && self.exclude_ip.is_none()
            && self.url.is_none()
            && self.exclude_url.is_none()
            && self.method.is_none()
            && self.agent.is_none()
            && self.crawlers == Crawlers::Include
    }

    /// A description, for the report header and the JSON `filters`: each option given, under
    /// its name (`_` for `-`), with its values as they are applied (`--since 2024-01-05` as
    /// the time it stands for, `--method get` as GET, `--ip 10.1.2.3/8` as 10.0.0.0/8).
    pub fn describe(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut put = |name: &str, value: String| out.push((name.to_owned(), value));
        if let Some(t) = self.since {
            put("since", Rfc3339(t).to_string());
        }
        if let Some(t) = self.until {
            put("until", Rfc3339(t).to_string());
        }
        let shown = |v: &dyn std::fmt::Display| v.to_string();
        if let Some(status) = &self.status {
            put("status", status.describe(|s| shown(s)));
        }
        if let Some(ip) = &self.ip {
            put("ip", ip.describe(|v| shown(v)));
        }
        if let Some(ip) = &self.exclude_ip {
            put("exclude_ip", ip.describe_excluded(|v| shown(v)));
        }
        let pattern = |re: &Regex| re.as_str().to_owned();
        if let Some(url) = &self.url {
            put("url", url.describe(pattern));
        }
        if let Some(url) = &self.exclude_url {
            put("exclude_url", url.describe_excluded(pattern));
        }
        if let Some(method) = &self.method {
            put("method", method.describe(|m| m.0.clone()));
        }
        if self.crawlers != Crawlers::Include {
            let value = if self.crawlers == Crawlers::Exclude {
                "exclude"
            } else {
                "only"
            };
            put("crawlers", value.to_owned());
        }
        if let Some(agent) = &self.agent {
            put("agent", agent.describe(pattern));
        }
        if self.strip_query {
            put("query", "stripped".to_owned());
        }
        out
    }
}

/// The answer for each id of one kind of string, found once: 0 not asked yet, 1 refused,
/// 2 accepted.
#[derive(Debug, Default)]
struct Answers(Vec<u8>);

impl Answers {
    #[inline]
    fn get(&mut self, id: u32, answer: impl FnOnce() -> bool) -> bool {
        let i = id as usize;
        if i >= self.0.len() {
            self.0.resize(i + 1, 0);
        }
        if self.0[i] == 0 {
            self.0[i] = 1 + u8::from(answer());
        }
        self.0[i] == 2
    }
}

/// A value of `--ip`, ready to compare.
#[derive(Debug)]
enum ClientTest<'f> {
    /// Mask and bits (see [`IpFilter::bits`]).
    Net(u128, u128),
    Text(&'f str),
}

/// [`Filters`] compiled for one counting thread: the one predicate of the reports.
///
/// Stores hand it ids (a client's key, a URL's, a method's or an agent's id) and the text
/// behind an id only when it has not seen that id yet; the answer per id is kept, since ids
/// are dense and few next to rows.
#[derive(Debug)]
pub struct Filter<'f> {
    since: Option<i64>,
    until: Option<i64>,
    /// Per status code up to 999, when there is `--status`: does it pass?
    statuses: Option<Vec<bool>>,
    status: Option<&'f Alternatives<StatusFilter>>,
    /// `--ip` and `--exclude-ip` as one.
    clients: Option<Alternatives<ClientTest<'f>>>,
    /// Per client key other than an IPv4 address in its usual form: does it pass?
    client_answers: FxHashMap<u64, bool>,
    /// `--url` and `--exclude-url` as one.
    urls: Option<Alternatives<&'f Regex>>,
    url_answers: Answers,
    methods: Option<&'f Alternatives<MethodFilter>>,
    method_answers: Answers,
    agents: Option<&'f Alternatives<Regex>>,
    crawlers: Crawlers,
    agent_answers: Answers,
}

impl<'f> Filter<'f> {
    pub fn new(filters: &'f Filters) -> Filter<'f> {
        let status = filters.status.as_ref();
        let clients =
            Alternatives::with(filters.ip.as_ref(), filters.exclude_ip.as_ref()).map(|ips| {
                let test = |v: &&'f IpFilter| {
                    let v: &'f IpFilter = v;
                    match (v.bits(), v) {
                        (Some((mask, bits)), _) => ClientTest::Net(mask, bits),
                        (None, IpFilter::Text(text)) => ClientTest::Text(text),
                        (None, IpFilter::Net(..)) => unreachable!("a network has bits"),
                    }
                };
                Alternatives {
                    keep: ips.keep.iter().map(test).collect(),
                    drop: ips.drop.iter().map(test).collect(),
                }
            });
        Filter {
            since: filters.since.map(|t| t.timestamp()),
            until: filters.until.map(|t| t.timestamp()),
            statuses: status.map(|s| {
                (0..1000u16)
                    .map(|code| s.accepts(|f| f.matches(code)))
                    .collect()
            }),
            status,
            clients,
            client_answers: FxHashMap::default(),
            urls: Alternatives::with(filters.url.as_ref(), filters.exclude_url.as_ref()),
            url_answers: Answers::default(),
            methods: filters.method.as_ref(),
            method_answers: Answers::default(),
            agents: filters.agent.as_ref(),
            crawlers: filters.crawlers,
            agent_answers: Answers::default(),
        }
    }

    /// The part of the predicate on numbers: time and status.
    #[inline]
    pub fn accepts_time_and_status(&self, timestamp: i64, status: u16) -> bool {
        self.since.is_none_or(|t| timestamp >= t)
            && self.until.is_none_or(|t| timestamp <= t)
            && match (&self.statuses, self.status) {
                (Some(table), Some(filter)) => match table.get(usize::from(status)) {
                    Some(&answer) => answer,
                    None => filter.accepts(|f| f.matches(status)),
                },
                _ => true,
            }
    }

    /// The part on the client with key `client`, whose text `text` gives when asked.
    #[inline]
    pub fn accepts_client<'t>(
        &mut self,
        client: u64,
        text: impl FnOnce() -> std::borrow::Cow<'t, str>,
    ) -> bool {
        let Some(tests) = &self.clients else {
            return true;
        };
        let passes = |addr: Option<u128>, text: Option<&str>| {
            tests.accepts(|test| match test {
                ClientTest::Net(mask, bits) => addr.is_some_and(|a| a & mask == *bits),
                ClientTest::Text(t) => text == Some(*t),
            })
        };
        match ClientKey::of(client) {
            // Its text is its address's: no text value (which is no address) is it.
            ClientKey::V4(a) => passes(Some(address_bits(IpAddr::V4(a.into()))), None),
            ClientKey::Other(_) => *self.client_answers.entry(client).or_insert_with(|| {
                let text = text();
                let addr = text.parse::<IpAddr>().ok().map(address_bits);
                passes(addr, Some(&text))
            }),
        }
    }

    /// The part on the URL with id `url`, whose text `text` gives when asked.
    #[inline]
    pub fn accepts_url<'t>(&mut self, url: u32, text: impl FnOnce() -> &'t str) -> bool {
        let Some(patterns) = &self.urls else {
            return true;
        };
        self.url_answers.get(url, || {
            let text = text();
            patterns.accepts(|re| re.is_match(text))
        })
    }

    /// The part on the method with id `method` (`-` for none), whose text `text` gives.
    #[inline]
    pub fn accepts_method<'t>(&mut self, method: u32, text: impl FnOnce() -> &'t str) -> bool {
        let Some(methods) = self.methods else {
            return true;
        };
        self.method_answers.get(method, || {
            let text = text();
            methods.accepts(|m| text.eq_ignore_ascii_case(&m.0))
        })
    }

    /// The part on the user agent with id `agent` (`-` for none), whose text `text` gives:
    /// `--agent`, and `--crawlers` (each distinct agent classified once).
    #[inline]
    pub fn accepts_agent<'t>(&mut self, agent: u32, text: impl FnOnce() -> &'t str) -> bool {
        let (patterns, crawlers) = (self.agents, self.crawlers);
        if patterns.is_none() && crawlers == Crawlers::Include {
            return true;
        }
        self.agent_answers.get(agent, || {
            let text = text();
            patterns.is_none_or(|p| p.accepts(|re| re.is_match(text)))
                && (crawlers == Crawlers::Include
                    || crawlers.accepts(crate::agent::classify(text).crawler))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        parse_rfc3339(s).unwrap()
    }

    #[test]
    fn time_args_take_rfc3339_and_spans() {
        let now = at("2024-01-10T00:00:00Z");
        for edge in [Edge::Start, Edge::End] {
            assert_eq!(
                parse_time_arg("2h", now, edge, &Zone::Utc).unwrap(),
                at("2024-01-09T22:00:00Z")
            );
            assert_eq!(
                parse_time_arg("7d", now, edge, &Zone::Utc).unwrap(),
                at("2024-01-03T00:00:00Z")
            );
            assert_eq!(
                parse_time_arg("2024-01-01T00:00:00Z", now, edge, &Zone::Utc).unwrap(),
                at("2024-01-01T00:00:00Z")
            );
            assert_eq!(parse_time_arg("0s", now, edge, &Zone::Utc).unwrap(), now);
            assert!(parse_time_arg("5y", now, edge, &Zone::Utc).is_err());
        }
    }

    #[test]
    fn a_day_is_its_first_second_since_and_its_last_until() {
        let now = at("2024-03-01T13:14:15Z");
        for (arg, start, end) in [
            ("2024-01-05", "2024-01-05T00:00:00Z", "2024-01-05T23:59:59Z"),
            ("2024-02-29", "2024-02-29T00:00:00Z", "2024-02-29T23:59:59Z"),
            ("today", "2024-03-01T00:00:00Z", "2024-03-01T23:59:59Z"),
            // Across the end of a leap February.
            ("yesterday", "2024-02-29T00:00:00Z", "2024-02-29T23:59:59Z"),
        ] {
            assert_eq!(
                parse_time_arg(arg, now, Edge::Start, &Zone::Utc),
                Ok(at(start)),
                "{arg}"
            );
            assert_eq!(
                parse_time_arg(arg, now, Edge::End, &Zone::Utc),
                Ok(at(end)),
                "{arg}"
            );
        }
        // In a zone, a day is the zone's: at 20:00 UTC it is already tomorrow at +07:00.
        let bangkok = Zone::parse("+07:00").unwrap();
        let evening = at("2024-01-05T20:00:00Z");
        for (arg, start, end) in [
            ("2024-01-05", "2024-01-04T17:00:00Z", "2024-01-05T16:59:59Z"),
            ("today", "2024-01-05T17:00:00Z", "2024-01-06T16:59:59Z"),
        ] {
            assert_eq!(
                parse_time_arg(arg, evening, Edge::Start, &bangkok),
                Ok(at(start)),
                "{arg}"
            );
            assert_eq!(
                parse_time_arg(arg, evening, Edge::End, &bangkok),
                Ok(at(end)),
                "{arg}"
            );
        }
        // A day of 23 hours: New York's on the day summer time began.
        let new_york = Zone::parse("America/New_York").unwrap();
        assert_eq!(
            parse_time_arg("2024-03-10", now, Edge::End, &new_york),
            Ok(at("2024-03-11T03:59:59Z"))
        );
        // Just after midnight UTC, today is the new day whatever the local clock says.
        let midnight = at("2024-01-01T00:00:00Z");
        assert_eq!(
            parse_time_arg("yesterday", midnight, Edge::Start, &Zone::Utc),
            Ok(at("2023-12-31T00:00:00Z"))
        );
        for arg in [
            "2024-13-01",
            "2024-00-10",
            "2023-02-29",
            "2024-04-31",
            "0000-00-00",
        ] {
            assert_eq!(
                parse_time_arg(arg, now, Edge::Start, &Zone::Utc),
                Err(format!("'{arg}' is not a day of the calendar (YYYY-MM-DD)")),
                "{arg}"
            );
        }
        // Other shapes are no date at all; words other than the two are not read.
        for arg in [
            "2024-1-05",
            "24-01-05",
            "2024/01/05",
            "2024-01-05 ",
            "Today",
            "tomorrow",
        ] {
            let err = parse_time_arg(arg, now, Edge::End, &Zone::Utc).unwrap_err();
            assert!(err.contains("is neither an RFC 3339 time"), "{arg}: {err}");
        }
    }

    #[test]
    fn time_args_refuse_spans_that_are_not_digits_and_a_unit() {
        let now = at("2024-01-10T00:00:00Z");
        // A negative span would be a time in the future: refused, and said so.
        let err = parse_time_arg("-2h", now, Edge::Start, &Zone::Utc).unwrap_err();
        assert!(err.contains("'-2h' is a negative span"), "{err}");
        for arg in [
            "+2h", "1.5h", "2", "h", "", " 2h", "2h ", "--2h", "-h", "2é", "é", "2hh",
        ] {
            let err = parse_time_arg(arg, now, Edge::Start, &Zone::Utc).unwrap_err();
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
            let err = parse_time_arg(arg, now, Edge::Start, &Zone::Utc).unwrap_err();
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
            "99",
        ] {
            let err = arg.parse::<StatusFilter>().unwrap_err();
            assert!(
                err.contains("100 to 599") && err.contains("1xx to 5xx"),
                "{arg}: {err}"
            );
        }
    }

    #[test]
    fn lists_are_alternatives_and_a_bang_leaves_out() {
        let s = parse_statuses("404,5xx,!503").unwrap();
        assert_eq!(s.keep, [StatusFilter::Code(404), StatusFilter::Class(5)]);
        assert_eq!(s.drop, [StatusFilter::Code(503)]);
        assert_eq!(s.describe(|f| f.to_string()), "404,5xx,!503");
        let passes = |s: &Alternatives<StatusFilter>, code| s.accepts(|f| f.matches(code));
        assert!(passes(&s, 404) && passes(&s, 500) && passes(&s, 599));
        assert!(!passes(&s, 503) && !passes(&s, 200) && !passes(&s, 403));
        // Only exclusions: everything else passes.
        let only_out = parse_statuses("!404,!3xx").unwrap();
        assert!(passes(&only_out, 200) && passes(&only_out, 500) && passes(&only_out, 999));
        assert!(!passes(&only_out, 404) && !passes(&only_out, 301));
        // A bad value is named, whichever it is; an empty one too.
        assert!(
            parse_statuses("404,99")
                .unwrap_err()
                .starts_with("'99' is not a status")
        );
        assert!(
            parse_statuses("!99")
                .unwrap_err()
                .starts_with("'99' is not a status")
        );
        for arg in ["", "404,", ",404", "404,,5xx", "!", "404,!"] {
            let err = parse_statuses(arg).unwrap_err();
            assert!(err.contains("empty value"), "{arg:?}: {err}");
        }
        // An --exclude-* option takes no `!`: it would say the same twice.
        let err = parse_excluded_ips("10.0.0.1,!10.0.0.2").unwrap_err();
        assert!(err.contains("'!10.0.0.2'"), "{err}");
        let out = parse_excluded_ips("10.0.0.1,::1").unwrap();
        assert!(out.keep.is_empty() && out.drop.len() == 2);
        // A regular expression is one value, commas and all.
        let re = parse_pattern("^/a{1,3}$").unwrap();
        assert_eq!((re.keep.len(), re.drop.len()), (1, 0));
        assert!(re.accepts(|r| r.is_match("/aa")));
        let re = parse_pattern("!^/static/").unwrap();
        assert!(re.keep.is_empty() && re.accepts(|r| r.is_match("/x")));
        assert!(!re.accepts(|r| r.is_match("/static/a.css")));
        // `\!` is a `!` to match.
        let bang = parse_pattern(r"\!x").unwrap();
        assert!(bang.accepts(|r| r.is_match("!x")) && !bang.accepts(|r| r.is_match("x")));
        assert!(parse_pattern("(").is_err() && parse_excluded_pattern("!a").is_err());
    }

    #[test]
    fn ip_values_are_addresses_networks_or_text() {
        let net = |s: &str| s.parse::<IpFilter>();
        assert_eq!(
            net("10.0.0.0/8"),
            Ok(IpFilter::Net("10.0.0.0".parse().unwrap(), 8))
        );
        // Host bits are ignored, and shown so.
        assert_eq!(net("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(net("2001:DB8::1/32").unwrap().to_string(), "2001:db8::/32");
        assert_eq!(net("10.0.0.1/32").unwrap().to_string(), "10.0.0.1");
        assert_eq!(net("2001:DB8::1").unwrap().to_string(), "2001:db8::1");
        assert_eq!(net("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
        assert_eq!(net("gw.example"), Ok(IpFilter::Text("gw.example".into())));
        // A mistyped address is refused, not taken as a host name that matches nothing.
        for typo in ["10.0.0.01", "10.0.0.256", "10.0.0", "[::1]", "2001:db8::g"] {
            assert!(
                net(typo).unwrap_err().contains("is not an IP address"),
                "{typo}"
            );
        }
        for (arg, why) in [
            ("10.0.0.0/33", "0 to 32 bits"),
            ("::/129", "0 to 128 bits"),
            ("10.0.0.0/", "0 to 32 bits"),
            ("10.0.0.0/+8", "0 to 32 bits"),
            ("10.0.0.0/8/8", "0 to 32 bits"),
            ("10.0.0.256/8", "'10.0.0.256' is not an IP address"),
            ("gw.example/24", "is not an IP address"),
        ] {
            let err = net(arg).unwrap_err();
            assert!(
                err.starts_with(&format!("'{arg}' is not a network")),
                "{err}"
            );
            assert!(err.contains(why), "{arg}: {err}");
        }
        assert!(parse_ips("10.0.0.0/8,10.0.0.0/33").is_err());
    }

    #[test]
    fn methods_are_tokens_compared_without_case() {
        let m = parse_methods("get,Post").unwrap();
        assert_eq!(m.describe(|m| m.0.clone()), "GET,POST");
        for arg in ["", "GET POST", "GET,", "\"GET\"", "GÉT"] {
            assert!(parse_methods(arg).is_err(), "{arg:?}");
        }
        let filters = Filters {
            method: Some(parse_methods("GET,-").unwrap()),
            ..Filters::default()
        };
        let mut filter = Filter::new(&filters);
        assert!(filter.accepts_method(0, || "GET"));
        assert!(filter.accepts_method(1, || "get"));
        assert!(filter.accepts_method(2, || "-"));
        assert!(!filter.accepts_method(3, || "POST"));
        assert!(!filter.accepts_method(4, || "GETX"));
        let not_get = Filters {
            method: Some(parse_methods("!get").unwrap()),
            ..Filters::default()
        };
        let mut filter = Filter::new(&not_get);
        assert!(!filter.accepts_method(0, || "GET") && filter.accepts_method(1, || "HEAD"));
    }

    #[test]
    fn the_predicate_takes_ids_and_asks_each_text_once() {
        let filters = Filters {
            status: Some(parse_statuses("4xx").unwrap()),
            url: Some(parse_pattern("^/api").unwrap()),
            exclude_url: Some(parse_excluded_pattern("/private").unwrap()),
            agent: Some(parse_pattern("(?i)bot").unwrap()),
            ip: Some(parse_ips("::1").unwrap()),
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
            assert!(!filter.accepts_url(1, || {
                asked += 1;
                "/api/private"
            }));
            assert!(filter.accepts_agent(7, || {
                asked += 1;
                "GoogleBot/2.1"
            }));
            assert!(!filter.accepts_agent(2, || {
                asked += 1;
                "curl"
            }));
        }
        assert_eq!(asked, 5, "each expression ran once per id");
        let other = ClientKey::Other(5).key();
        assert!(filter.accepts_client(other, || "::1".into()));
        assert!(!filter.accepts_client(ClientKey::Other(6).key(), || "::2".into()));
        assert!(!filter.accepts_client(ClientKey::V4(1).key(), || unreachable!()));
        let v4 = Filters {
            ip: Some(parse_ips("10.0.0.1").unwrap()),
            ..Filters::default()
        };
        let mut filter = Filter::new(&v4);
        assert!(filter.accepts_client(ClientKey::V4(0x0A00_0001).key(), || unreachable!()));
        assert!(!filter.accepts_client(ClientKey::Other(0).key(), || "::1".into()));
        // An IPv4 client logged as IPv6 by a dual-stack server is the same client.
        assert!(filter.accepts_client(ClientKey::Other(1).key(), || "::ffff:10.0.0.1".into()));
        // An address written another way is the same client; text that is no address is
        // matched as written.
        let v6 = Filters {
            ip: Some(parse_ips("2001:DB8::1").unwrap()),
            ..Filters::default()
        };
        let mut filter = Filter::new(&v6);
        assert!(filter.accepts_client(ClientKey::Other(0).key(), || "2001:db8::1".into()));
        assert!(filter.accepts_client(ClientKey::Other(1).key(), || "2001:db8:0:0:0:0:0:1".into()));
        assert!(!filter.accepts_client(ClientKey::Other(2).key(), || "2001:db8::2".into()));
        let host = Filters {
            ip: Some(parse_ips("proxy.example").unwrap()),
            ..Filters::default()
        };
        let mut filter = Filter::new(&host);
        assert!(filter.accepts_client(ClientKey::Other(0).key(), || "proxy.example".into()));
        assert!(!filter.accepts_client(ClientKey::Other(1).key(), || "Proxy.example".into()));
        assert!(!filter.accepts_client(ClientKey::V4(7).key(), || unreachable!()));
    }

    #[test]
    fn networks_and_exclusions_of_both_families() {
        let filters = Filters {
            ip: Some(parse_ips("10.0.0.0/8,2001:db8::/32,!10.9.0.0/16").unwrap()),
            exclude_ip: Some(parse_excluded_ips("10.1.2.3,2001:db8:ff::/48").unwrap()),
            ..Filters::default()
        };
        let mut filter = Filter::new(&filters);
        let v4 = |s: &str| {
            let a: std::net::Ipv4Addr = s.parse().unwrap();
            ClientKey::V4(a.into()).key()
        };
        for (ip, passes) in [
            ("10.0.0.0", true),
            ("10.255.255.255", true),
            ("10.1.2.4", true),
            ("10.1.2.3", false),
            ("10.9.0.1", false),
            ("11.0.0.0", false),
            ("9.255.255.255", false),
        ] {
            assert_eq!(
                filter.accepts_client(v4(ip), || unreachable!()),
                passes,
                "{ip}"
            );
        }
        for (n, ip, passes) in [
            (0, "2001:db8::1", true),
            (1, "2001:DB8:1::", true),
            (2, "2001:db8:ff::1", false),
            (3, "2001:db9::1", false),
            (4, "::ffff:10.1.2.4", true),
            (5, "::ffff:10.1.2.3", false),
            (6, "gw.example", false),
            (7, "-", false),
        ] {
            let key = ClientKey::Other(n).key();
            assert_eq!(filter.accepts_client(key, || ip.into()), passes, "{ip}");
        }
        // Only exclusions: every other client passes, names included; ::/0 is every
        // address of both families.
        let out = Filters {
            exclude_ip: Some(parse_excluded_ips("10.0.0.0/8").unwrap()),
            ..Filters::default()
        };
        let mut filter = Filter::new(&out);
        assert!(filter.accepts_client(v4("192.168.0.1"), || unreachable!()));
        assert!(!filter.accepts_client(v4("10.3.3.3"), || unreachable!()));
        assert!(filter.accepts_client(ClientKey::Other(0).key(), || "gw.example".into()));
        let all = Filters {
            ip: Some(parse_ips("::/0").unwrap()),
            ..Filters::default()
        };
        let mut filter = Filter::new(&all);
        assert!(filter.accepts_client(v4("1.2.3.4"), || unreachable!()));
        assert!(filter.accepts_client(ClientKey::Other(0).key(), || "2001:db8::1".into()));
        assert!(!filter.accepts_client(ClientKey::Other(1).key(), || "gw.example".into()));
    }

    #[test]
    fn statuses_outside_the_table_are_still_answered() {
        let filters = Filters {
            status: Some(parse_statuses("!5xx").unwrap()),
            ..Filters::default()
        };
        let filter = Filter::new(&filters);
        assert!(filter.accepts_time_and_status(0, 200));
        assert!(filter.accepts_time_and_status(0, 999));
        assert!(
            filter.accepts_time_and_status(0, 5000),
            "no class of 1000 and up"
        );
        assert!(!filter.accepts_time_and_status(0, 503));
        let keep = Filters {
            status: Some(parse_statuses("5xx").unwrap()),
            ..Filters::default()
        };
        assert!(!Filter::new(&keep).accepts_time_and_status(0, 5000));
    }

    #[test]
    fn the_description_says_what_is_applied() {
        let now = at("2024-03-01T12:00:00Z");
        let filters = Filters {
            since: Some(parse_time_arg("2024-01-05", now, Edge::Start, &Zone::Utc).unwrap()),
            until: Some(parse_time_arg("2024-01-05", now, Edge::End, &Zone::Utc).unwrap()),
            status: Some(parse_statuses("404,5XX,!503").unwrap()),
            ip: Some(parse_ips("10.1.2.3/8,!2001:DB8::1").unwrap()),
            exclude_ip: Some(parse_excluded_ips("gw.example").unwrap()),
            url: Some(parse_pattern("!^/static").unwrap()),
            exclude_url: Some(parse_excluded_pattern(r"\.php$").unwrap()),
            method: Some(parse_methods("get").unwrap()),
            agent: Some(parse_pattern("bot").unwrap()),
            crawlers: Crawlers::Exclude,
            strip_query: true,
        };
        let expected: Vec<(String, String)> = [
            ("since", "2024-01-05T00:00:00Z"),
            ("until", "2024-01-05T23:59:59Z"),
            ("status", "404,5xx,!503"),
            ("ip", "10.0.0.0/8,!2001:db8::1"),
            ("exclude_ip", "gw.example"),
            ("url", "!^/static"),
            ("exclude_url", r"\.php$"),
            ("method", "GET"),
            ("crawlers", "exclude"),
            ("agent", "bot"),
            ("query", "stripped"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        assert_eq!(filters.describe(), expected);
        assert!(!filters.is_empty());
        let grouping_only = Filters {
            strip_query: true,
            ..Filters::default()
        };
        assert!(
            grouping_only.is_empty(),
            "stripping queries filters nothing"
        );
    }

    #[test]
    fn crawlers_are_left_out_or_kept_alone_by_their_agent() {
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                      (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        for (which, curl, browser, none) in [
            (Crawlers::Include, true, true, true),
            (Crawlers::Exclude, false, true, false),
            (Crawlers::Only, true, false, true),
        ] {
            let filters = Filters {
                crawlers: which,
                ..Filters::default()
            };
            assert_eq!(filters.is_empty(), which == Crawlers::Include);
            let mut filter = Filter::new(&filters);
            assert_eq!(filter.accepts_agent(1, || "curl/8.5.0"), curl, "{which:?}");
            assert_eq!(filter.accepts_agent(2, || chrome), browser, "{which:?}");
            assert_eq!(filter.accepts_agent(3, || "-"), none, "{which:?}");
            // The answer is kept per id: the text is not asked again.
            assert_eq!(
                filter.accepts_agent(1, || unreachable!("asked twice")),
                curl
            );
        }
    }
}
