//! Reports: one [`Report`] model, computed in one pass from either store, rendered three ways.
//!
//! `aggregate-csv` and `aggregate-db` differ only in where rows come from ([`read_csv`],
//! [`read_db`]): filtering, counting, ordering and rendering are this module's, once, which is
//! what makes their outputs byte-identical. Memory grows with the number of distinct keys
//! (URLs, clients, agents, visitors), never with the number of rows.

pub mod csv;
pub mod json;
mod records;
pub mod table;
mod visits;

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use chrono::{DateTime, TimeDelta, Utc};
use regex::Regex;
use rustc_hash::FxHashMap;

use crate::batch::{Arena, Span};
use crate::entry::{COLUMNS, Rfc3339, parse_rfc3339};
use records::{Record, Records, Share};
pub(crate) use visits::{ClientKey, Visits};

/// The reports, in their default order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Section {
    Summary,
    Status,
    Urls,
    NotFound,
    Clients,
    Agents,
    Referrers,
    Methods,
    Traffic,
}

impl Section {
    pub const ALL: [Section; 9] = [
        Section::Summary,
        Section::Status,
        Section::Urls,
        Section::NotFound,
        Section::Clients,
        Section::Agents,
        Section::Referrers,
        Section::Methods,
        Section::Traffic,
    ];

    /// The name used in `--report`, JSON keys and the CSV `report` column.
    pub fn name(self) -> &'static str {
        match self {
            Section::Summary => "summary",
            Section::Status => "status",
            Section::Urls => "urls",
            Section::NotFound => "not-found",
            Section::Clients => "clients",
            Section::Agents => "agents",
            Section::Referrers => "referrers",
            Section::Methods => "methods",
            Section::Traffic => "traffic",
        }
    }
}

/// Time bucket of the traffic report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Bucket {
    Minute,
    Hour,
    Day,
}

impl Bucket {
    fn seconds(self) -> i64 {
        match self {
            Bucket::Minute => 60,
            Bucket::Hour => 3600,
            Bucket::Day => 86_400,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Bucket::Minute => "minute",
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        }
    }

    /// Minutes for up to two hours, hours for up to three days, days beyond: a chart of a few
    /// dozen to a hundred-odd bars.
    fn for_span(seconds: i64) -> Bucket {
        match seconds {
            s if s <= 2 * 3600 => Bucket::Minute,
            s if s <= 3 * 86_400 => Bucket::Hour,
            _ => Bucket::Day,
        }
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

    fn accepts(&self, row: &Row<'_>, timestamp: i64) -> bool {
        self.since.is_none_or(|t| timestamp >= t.timestamp())
            && self.until.is_none_or(|t| timestamp <= t.timestamp())
            && match self.status {
                None => true,
                Some(StatusFilter::Code(c)) => row.status == c,
                Some(StatusFilter::Class(c)) => row.status / 100 == c,
            }
            && self.ip.as_deref().is_none_or(|ip| row.ip == ip)
            && self.url.as_ref().is_none_or(|re| re.is_match(row.url))
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

/// One stored entry, as the reports read it (borrowed from the store's row buffer).
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub ip: &'a str,
    /// Seconds since the Unix epoch.
    pub timestamp: i64,
    pub method: Option<&'a str>,
    pub url: &'a str,
    pub status: u16,
    pub bytes: Option<u64>,
    pub referrer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

impl<'a> Row<'a> {
    /// The fields of a parsed entry that the reports read.
    pub fn of(e: &'a crate::entry::LogEntry<'_>) -> Row<'a> {
        Row {
            ip: &e.ip,
            timestamp: e.timestamp.timestamp(),
            method: e.method.as_deref(),
            url: &e.url,
            status: e.status,
            bytes: e.bytes,
            referrer: e.referrer.as_deref(),
            user_agent: e.user_agent.as_deref(),
        }
    }
}

/// Strings to dense ids, in order of first sight: sets of visitors hold small integers, and
/// the packed copy looks up each distinct string of a batch once.
///
/// Each string is held once, in `names`; the table holds only ids and finds them by the hash
/// of their string. A map from string to id held every key twice, which doubled the memory of
/// a report over long distinct URLs (300 of 900 KB took aggregate-csv to 930 MB).
#[derive(Debug, Default)]
pub(crate) struct Interner {
    ids: hashbrown::HashTable<u32>,
    /// The strings by id.
    pub(crate) names: Vec<Box<str>>,
}

impl Interner {
    pub(crate) fn id(&mut self, s: &str) -> u32 {
        use std::hash::BuildHasher;
        let hash = |s: &str| rustc_hash::FxBuildHasher.hash_one(s);
        let (names, hashed) = (&self.names, hash(s));
        if let Some(&id) = self.ids.find(hashed, |&id| &*names[id as usize] == s) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(s.into());
        let names = &self.names;
        self.ids
            .insert_unique(hashed, id, |&id| hash(&names[id as usize]));
        id
    }
}

/// Counts of one URL.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UrlStat {
    pub hits: u64,
    pub bytes: u64,
    /// Hits answered 404.
    pub not_found: u64,
    /// Unique visitors (see [`Aggregator`]).
    pub visitors: u64,
}

/// Counts of the same URL from other clients (so other visitors) add up field by field.
impl std::ops::AddAssign for UrlStat {
    fn add_assign(&mut self, other: UrlStat) {
        self.hits += other.hits;
        self.bytes += other.bytes;
        self.not_found += other.not_found;
        self.visitors += other.visitors;
    }
}

/// The counts that do not depend on keys, kept the same way from rows and packed records.
#[derive(Debug, Default, Clone)]
pub struct Totals {
    pub requests: u64,
    pub bytes: u64,
    /// First and last timestamp, in seconds since the Unix epoch.
    pub first: Option<i64>,
    pub last: Option<i64>,
    /// Hits by status code, the index.
    status: Vec<u64>,
    /// Per minute since the epoch: 2xx, 3xx, 4xx, 5xx, other.
    minutes: FxHashMap<i64, [u64; 5]>,
    /// The minute of the last row and the counts of its rows not yet in `minutes`: rows come
    /// in time order, so most fall in the minute of the row before and cost no lookup.
    minute: (i64, [u64; 5]),
}

impl Totals {
    pub fn add(&mut self, timestamp: i64, status: u16, bytes: u64) {
        self.requests += 1;
        self.bytes += bytes;
        self.first = Some(self.first.map_or(timestamp, |f| f.min(timestamp)));
        self.last = Some(self.last.map_or(timestamp, |l| l.max(timestamp)));
        let code = usize::from(status);
        if code >= self.status.len() {
            self.status.resize(code + 1, 0);
        }
        self.status[code] += 1;
        let minute = timestamp.div_euclid(60);
        if minute != self.minute.0 {
            self.put_minute();
            self.minute.0 = minute;
        }
        self.minute.1[class_index(status)] += 1;
    }

    /// Moves the counts of the last minute into `minutes`.
    fn put_minute(&mut self) {
        let (minute, counts) = std::mem::take(&mut self.minute);
        if counts != [0; 5] {
            self.add_minute(minute, counts);
        }
    }

    fn add_minute(&mut self, minute: i64, counts: [u64; 5]) {
        let slot = self.minutes.entry(minute).or_insert([0; 5]);
        for (s, c) in slot.iter_mut().zip(counts) {
            *s += c;
        }
    }

    /// Hits per status code, by code.
    pub fn status(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        (self.status.iter().enumerate())
            .filter(|&(_, &n)| n > 0)
            .map(|(code, &n)| (code as u16, n))
    }

    /// Takes out the hits per minute since the epoch: 2xx, 3xx, 4xx, 5xx, other; in no
    /// particular order.
    pub fn minutes(&mut self) -> impl Iterator<Item = (i64, [u64; 5])> + '_ {
        self.put_minute();
        self.minutes.drain()
    }

    /// Adds the totals of other rows.
    pub fn merge(&mut self, mut other: Totals) {
        self.requests += other.requests;
        self.bytes += other.bytes;
        self.first = self.first.into_iter().chain(other.first).min();
        self.last = self.last.into_iter().chain(other.last).max();
        if other.status.len() > self.status.len() {
            self.status.resize(other.status.len(), 0);
        }
        for (mine, theirs) in self.status.iter_mut().zip(&other.status) {
            *mine += theirs;
        }
        for (minute, counts) in other.minutes() {
            self.add_minute(minute, counts);
        }
    }
}

/// What every report is computed from: totals, and the count of each key of each ranking.
///
/// The [`Aggregator`] builds it from rows, [`crate::packed`] from a database's packed copy of
/// them. [`Counts::into_report`] is the one place that ranks and buckets, so
/// both give the same report.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub totals: Totals,
    /// Distinct (ip, day, user agent).
    pub visitors: u64,
    pub urls: Vec<(Box<str>, UrlStat)>,
    /// Hits per client IP, user agent (`-` when absent), referrer and method (`-` when
    /// absent), in any order.
    pub clients: Vec<(Box<str>, u64)>,
    pub agents: Vec<(Box<str>, u64)>,
    pub referrers: Vec<(Box<str>, u64)>,
    pub methods: Vec<(Box<str>, u64)>,
}

/// Counts rows; [`Aggregator::into_counts`] hands the counts to [`Counts::into_report`].
#[derive(Default)]
pub struct Aggregator {
    totals: Totals,
    /// Clients other than IPv4 addresses in their usual form (see [`ClientKey`]).
    ips: Interner,
    agents: Interner,
    agent_hits: Vec<u64>,
    urls: Interner,
    url_stats: Vec<UrlStat>,
    referrers: FxHashMap<Box<str>, u64>,
    methods: FxHashMap<Box<str>, u64>,
    /// Hits per client and unique visitors, by [`ClientKey`].
    visits: Visits<u64>,
}

/// Label of an absent user agent or method.
pub const ABSENT: &str = "-";

impl Aggregator {
    /// Counts `row` if it passes `filters`. Errors on a timestamp that is not a time.
    pub fn add(&mut self, row: &Row<'_>, filters: &Filters) {
        let timestamp = row.timestamp;
        if !filters.accepts(row, timestamp) {
            return;
        }
        let bytes = row.bytes.unwrap_or(0);
        self.totals.add(timestamp, row.status, bytes);

        let ip = self.client(row.ip);
        let agent = self.agents.id(row.user_agent.unwrap_or(ABSENT));
        if agent as usize == self.agent_hits.len() {
            self.agent_hits.push(0);
        }
        self.agent_hits[agent as usize] += 1;

        let url = self.urls.id(row.url);
        if url as usize == self.url_stats.len() {
            self.url_stats.push(UrlStat::default());
        }
        let stat = &mut self.url_stats[url as usize];
        stat.hits += 1;
        stat.bytes += bytes;
        stat.not_found += u64::from(row.status == 404);
        if self.visits.hit(timestamp, ip, agent, url) {
            stat.visitors += 1;
        }

        if let Some(referrer) = row.referrer {
            bump(&mut self.referrers, referrer);
        }
        bump(&mut self.methods, row.method.unwrap_or(ABSENT));
    }

    /// The key of a client; other clients than IPv4 addresses are numbered by `ips`.
    fn client(&mut self, ip: &str) -> u64 {
        match crate::packed::canonical_ipv4(ip.as_bytes()) {
            Some(v4) => ClientKey::V4(v4),
            None => ClientKey::Other(self.ips.id(ip)),
        }
        .key()
    }

    /// The counts of the rows added.
    pub fn into_counts(self) -> Counts {
        let visitors = self.visits.visitors();
        let mut ips = self.ips.names;
        Counts {
            totals: self.totals,
            visitors,
            urls: self.urls.names.into_iter().zip(self.url_stats).collect(),
            clients: (self.visits.into_clients().into_iter())
                .map(|(key, n)| match ClientKey::of(key) {
                    // Each key comes once.
                    ClientKey::Other(id) => (std::mem::take(&mut ips[id as usize]), n),
                    ClientKey::V4(address) => (crate::packed::ipv4_text(address), n),
                })
                .collect(),
            agents: self.agents.names.into_iter().zip(self.agent_hits).collect(),
            referrers: self.referrers.into_iter().collect(),
            methods: self.methods.into_iter().collect(),
        }
    }
}

/// Index of a status's class in [`CLASSES`].
pub fn class_index(status: u16) -> usize {
    match status / 100 {
        c @ 2..=5 => usize::from(c - 2),
        _ => 4,
    }
}

impl Counts {
    /// Adds the counts of rows from other clients than these (so from other visitors too): how
    /// the counts of threads that split the clients between them are put together.
    pub fn add_other_clients(&mut self, other: Counts) {
        self.totals.merge(other.totals);
        self.visitors += other.visitors;
        self.clients.extend(other.clients);
        add_by_key(&mut self.urls, other.urls, |a, b| *a += b);
        for (mine, theirs) in [
            (&mut self.agents, other.agents),
            (&mut self.referrers, other.referrers),
            (&mut self.methods, other.methods),
        ] {
            add_by_key(mine, theirs, |a, b| *a += b);
        }
    }

    /// The report, with `top` rows per ranking and traffic in `bucket` (or one chosen from the
    /// span of the entries).
    pub fn into_report(self, top: usize, bucket: Option<Bucket>, filters: &Filters) -> Report {
        let mut totals = self.totals;
        let requests = totals.requests;
        let status: Vec<(u16, u64)> = totals.status().collect();
        let mut classes = [0u64; 5];
        for &(code, n) in &status {
            classes[class_index(code)] += n;
        }
        let by_hits = |items: Vec<(Box<str>, u64)>, top: usize| -> Vec<Ranked> {
            ranked(
                items.into_iter().map(|(k, n)| Ranked {
                    key: k.into(),
                    hits: n,
                    bytes: 0,
                    visitors: 0,
                }),
                top,
            )
        };
        let not_found = ranked(
            self.urls
                .iter()
                .filter(|(_, s)| s.not_found > 0)
                .map(|(k, s)| Ranked {
                    key: k.to_string(),
                    hits: s.not_found,
                    bytes: 0,
                    visitors: 0,
                }),
            top,
        );
        let urls = ranked(
            self.urls.into_iter().map(|(k, s)| Ranked {
                key: k.into(),
                hits: s.hits,
                bytes: s.bytes,
                visitors: s.visitors,
            }),
            top,
        );
        let distinct_ips = self.clients.len() as u64;
        let clients = by_hits(self.clients, top);
        let agents = by_hits(self.agents, top);
        let referrers = by_hits(self.referrers, top);
        let methods = by_hits(self.methods, usize::MAX);

        let range = totals.first.zip(totals.last);
        let (bucket, buckets) = traffic_buckets(totals.minutes(), range, bucket);
        let traffic = buckets
            .into_iter()
            .map(|(start, counts)| TrafficRow {
                start: time_text(start),
                counts,
            })
            .collect();

        Report {
            filters: filters.describe(),
            summary: SummaryStats {
                requests,
                visitors: self.visitors,
                distinct_ips,
                bytes: totals.bytes,
                first: totals.first.map(time_text),
                last: totals.last.map(time_text),
                client_errors: classes[2],
                server_errors: classes[3],
            },
            status,
            classes,
            urls,
            not_found,
            clients,
            agents,
            referrers,
            methods,
            bucket,
            traffic,
            top,
        }
    }
}

/// The most rows the traffic report fills in. A report of a year per minute would be half a
/// million lines that no one reads; 3,000 rows are two days per minute, four months per hour,
/// eight years per day.
pub const MAX_TRAFFIC_ROWS: i64 = 3_000;

/// The traffic report's bucket and its rows: the counts per class of the minutes of
/// `minutes`, added up per bucket, with every bucket from the first to the last, empty ones
/// included, so that an outage shows as a run of zeros rather than not at all.
///
/// The bucket is `requested`, or one chosen from the span `range` of the entries
/// ([`Bucket::for_span`]), made coarser (minute, hour, day) while it would fill more than
/// [`MAX_TRAFFIC_ROWS`] rows; `--bucket minute` over a month gives hours (the binaries say
/// so). Days over a longer span (a stray timestamp from 1970 makes one) are not filled in:
/// only the days with requests are rows then (the table says so).
///
/// Generic over the number of classes, so that it follows [`CLASSES`].
fn traffic_buckets<const N: usize>(
    minutes: impl Iterator<Item = (i64, [u64; N])>,
    range: Option<(i64, i64)>,
    requested: Option<Bucket>,
) -> (Bucket, std::collections::BTreeMap<i64, [u64; N]>) {
    let rows = |bucket: Bucket| {
        range.map_or(0, |(first, last)| {
            last.div_euclid(bucket.seconds()) - first.div_euclid(bucket.seconds()) + 1
        })
    };
    let span = range.map_or(0, |(first, last)| last - first);
    let mut bucket = requested.unwrap_or_else(|| Bucket::for_span(span));
    while rows(bucket) > MAX_TRAFFIC_ROWS && bucket != Bucket::Day {
        bucket = match bucket {
            Bucket::Minute => Bucket::Hour,
            _ => Bucket::Day,
        };
    }
    let step = bucket.seconds();
    let mut buckets = std::collections::BTreeMap::new();
    for (minute, counts) in minutes {
        let start = (minute * 60).div_euclid(step) * step;
        let slot = buckets.entry(start).or_insert([0; N]);
        for (s, c) in slot.iter_mut().zip(counts) {
            *s += c;
        }
    }
    let ends = buckets.keys().next().zip(buckets.keys().next_back());
    if let Some((&first, &last)) = ends
        && rows(bucket) <= MAX_TRAFFIC_ROWS
    {
        for start in (first..last).step_by(step as usize).skip(1) {
            buckets.entry(start).or_insert([0; N]);
        }
    }
    (bucket, buckets)
}

/// Adds `theirs` to `mine`, combining the values of a key both have.
fn add_by_key<V>(
    mine: &mut Vec<(Box<str>, V)>,
    theirs: Vec<(Box<str>, V)>,
    combine: impl Fn(&mut V, V),
) {
    if mine.is_empty() {
        *mine = theirs;
        return;
    }
    let index: FxHashMap<Box<str>, usize> = mine
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.clone(), i))
        .collect();
    for (key, value) in theirs {
        match index.get(&key) {
            Some(&i) => combine(&mut mine[i].1, value),
            None => mine.push((key, value)),
        }
    }
}

fn bump(map: &mut FxHashMap<Box<str>, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.into(), 1);
        }
    }
}

/// Sorted by hits descending, then key ascending (a total order, so both stores agree), and
/// cut to `top`.
fn ranked(items: impl Iterator<Item = Ranked>, top: usize) -> Vec<Ranked> {
    let mut all: Vec<Ranked> = items.collect();
    let order = |a: &Ranked, b: &Ranked| b.hits.cmp(&a.hits).then_with(|| a.key.cmp(&b.key));
    if all.len() > top {
        all.select_nth_unstable_by(top, order);
        all.truncate(top);
    }
    all.sort_unstable_by(order);
    all
}

fn time_text(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0).map_or_else(|| secs.to_string(), |t| Rfc3339(t).to_string())
}

/// Stored timestamps are RFC 3339; a database upgraded from the original scripts also holds
/// their `10/Oct/2000:13:55:36 -0700` form in its old rows.
fn parse_stored_time(s: &str) -> Option<DateTime<Utc>> {
    parse_rfc3339(s).or_else(|| crate::parse::parse_time(s.as_bytes()).ok())
}

/// One line of a ranking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    pub key: String,
    pub hits: u64,
    /// Only for URLs.
    pub bytes: u64,
    /// Only for URLs: unique visitors.
    pub visitors: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryStats {
    pub requests: u64,
    pub visitors: u64,
    pub distinct_ips: u64,
    pub bytes: u64,
    pub first: Option<String>,
    pub last: Option<String>,
    pub client_errors: u64,
    pub server_errors: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficRow {
    pub start: String,
    /// 2xx, 3xx, 4xx, 5xx, other.
    pub counts: [u64; 5],
}

impl TrafficRow {
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Everything the reports show, computed once; the renderers only format it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub filters: Vec<(String, String)>,
    pub summary: SummaryStats,
    pub status: Vec<(u16, u64)>,
    /// 2xx, 3xx, 4xx, 5xx, other.
    pub classes: [u64; 5],
    pub urls: Vec<Ranked>,
    pub not_found: Vec<Ranked>,
    pub clients: Vec<Ranked>,
    pub agents: Vec<Ranked>,
    pub referrers: Vec<Ranked>,
    pub methods: Vec<Ranked>,
    pub bucket: Bucket,
    pub traffic: Vec<TrafficRow>,
    pub top: usize,
}

/// The names of the status classes, in [`Report::classes`] order.
pub const CLASSES: [&str; 5] = ["2xx", "3xx", "4xx", "5xx", "other"];

/// `part` of `whole` as a percentage with one decimal, computed in integers so that the text
/// is the same on every platform.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0.0".into();
    }
    let tenths = (u128::from(part) * 1000 + u128::from(whole) / 2) / u128::from(whole);
    format!("{}.{}", tenths / 10, tenths % 10)
}

/// Receives each row a store yields.
pub type Emit<'e> = dyn FnMut(&Row<'_>) + 'e;

/// Reads `parsed_logs.csv`, passing each row to `emit`.
///
/// A property test writes rows through parse-to-csv's encoder (the csv crate's quoting) and
/// holds what this reads back equal to them.
pub fn read_csv(path: &Path, emit: &mut Emit<'_>) -> anyhow::Result<()> {
    let file = open_csv(path)?;
    std::thread::scope(|scope| {
        let records = records::read_ahead(scope, file, 1).remove(0);
        let share = Share { index: 0, of: 1 };
        read_share(path, records, share, &AtomicU64::new(u64::MAX), emit).map_err(|(_, e)| e)
    })
}

fn open_csv(path: &Path) -> anyhow::Result<std::fs::File> {
    if !path.exists() {
        bail!(
            "{} does not exist: fill it first with `parse-to-csv`",
            path.display()
        );
    }
    std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))
}

/// Reads the rows of the clients of `share`, passing each to `emit`. Stops early, with no
/// error, once past record `stop` (another share's first error: only the first error of the
/// file is told). An error comes with the number of its record, also put in `stop` if it
/// comes before; both count the header, as [`Records::number`] does.
fn read_share(
    path: &Path,
    mut records: Records,
    share: Share,
    stop: &AtomicU64,
    emit: &mut Emit<'_>,
) -> Result<(), (u64, anyhow::Error)> {
    let result = (|| {
        let cannot_read = || format!("cannot read {}", path.display());
        let Some(header) = records.next_record().with_context(cannot_read)? else {
            return Ok(());
        };
        if (0..header.len())
            .map(|i| header.field(i))
            .ne(COLUMNS.iter().map(|c| Cow::Borrowed(c.as_bytes())))
        {
            bail!(
                "{} is not a log-pipeline CSV (its header is not `{}`)",
                path.display(),
                COLUMNS.join(",")
            );
        }
        // The last time read and its value: consecutive rows mostly share their second.
        let mut last_time = (String::new(), None);
        while let Some(record) = records.next_in(share).with_context(cannot_read)? {
            if record.number > stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            // Records after the header, counted from 1.
            let number = record.number - 1;
            with_csv_row(&record, &mut last_time, emit)
                .map_err(|e| anyhow::anyhow!("{}: record {number}: {e}", path.display()))?;
        }
        Ok(())
    })();
    result.map_err(|e| {
        let number = records.number();
        stop.fetch_min(number, Ordering::Relaxed);
        (number, e)
    })
}

/// Passes the row of a record of `parsed_logs.csv` to `emit`; `last_time` is the last
/// timestamp read and its value (consecutive rows mostly share their second).
fn with_csv_row(
    record: &Record<'_>,
    last_time: &mut (String, Option<DateTime<Utc>>),
    emit: &mut Emit<'_>,
) -> Result<(), String> {
    if record.len() != COLUMNS.len() {
        return Err(format!(
            "{} fields instead of {}",
            record.len(),
            COLUMNS.len()
        ));
    }
    // Each field as text, `None` when it is not UTF-8. ident, user and protocol (1, 2, 6)
    // are in no report.
    const READ: [usize; 8] = [0, 3, 4, 5, 7, 8, 9, 10];
    let mut values: [Option<&str>; 11] = [Some(""); 11];
    let decoded: [Option<Cow<'_, str>>; 11];
    let plain = READ.iter().all(|&i| {
        values[i] = record.text(i);
        values[i].is_some()
    });
    if !plain {
        // A field with quotes to decode, or a block that is not all UTF-8.
        decoded = std::array::from_fn(|i| match record.field(i) {
            Cow::Borrowed(bytes) => std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
            Cow::Owned(bytes) => String::from_utf8(bytes).ok().map(Cow::Owned),
        });
        for i in READ {
            values[i] = decoded[i].as_deref();
        }
    }
    let bad = |what: &str| format!("bad {what}");
    let text = |i: usize, what: &str| values[i].ok_or_else(|| bad(what));
    // An optional field: empty means absent; one that is not text, empty.
    let opt = |i: usize| match values[i] {
        Some("") => None,
        value => Some(value.unwrap_or("")),
    };
    let time = text(3, "timestamp")?;
    // Stored times are 20 bytes: compared as such, the comparison is a few loads instead of a
    // call to `memcmp`, which took 6% of aggregate-csv.
    let same = match (
        <&[u8; 20]>::try_from(time.as_bytes()),
        <&[u8; 20]>::try_from(last_time.0.as_bytes()),
    ) {
        (Ok(time), Ok(last)) => time == last,
        _ => last_time.0 == time,
    };
    if !same || last_time.1.is_none() {
        last_time.0.clear();
        last_time.0.push_str(time);
        last_time.1 = parse_stored_time(time);
    }
    let timestamp = last_time.1.ok_or_else(|| bad("timestamp"))?;
    emit(&Row {
        ip: text(0, "ip")?,
        timestamp: timestamp.timestamp(),
        method: opt(4),
        url: text(5, "url")?,
        status: (text(7, "status")?.parse().ok()).ok_or_else(|| bad("status"))?,
        bytes: match text(8, "bytes")? {
            "" => None,
            bytes => Some(bytes.parse().map_err(|_| bad("bytes"))?),
        },
        referrer: opt(9),
        user_agent: opt(10),
    });
    Ok(())
}

/// Reads the `logs` table, passing each row to `emit`, through a read-only connection (it
/// works while a parser writes: WAL readers see the last commit).
pub fn read_db(path: &Path, emit: &mut Emit<'_>) -> anyhow::Result<()> {
    let conn = crate::sink::sqlite::open_for_reading(path, std::time::Duration::from_secs(10))?;
    let context = || format!("cannot read database {}", path.display());
    let has_logs: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'logs'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => {
                anyhow::anyhow!("{} is not a SQLite database or is corrupt", path.display())
            }
            _ => anyhow::Error::from(e).context(context()),
        })?;
    if !has_logs {
        bail!(
            "{} has no `logs` table: fill it first with `parse-to-db` (or `continuous-parse`)",
            path.display()
        );
    }
    let mut bad = None;
    let result = for_each_row(&conn, 0, &mut |row| match row {
        Ok(row) => {
            emit(row);
            Ok(())
        }
        Err(id) => {
            bad = Some(id);
            bail!("a row has no valid timestamp")
        }
    });
    if let Some(id) = bad {
        bail!("{}: row {id} has no valid timestamp", path.display());
    }
    result.with_context(context)
}

/// Reads the `logs` rows with an id above `after`, in id order, passing each to `emit`: the
/// row, or the id of a row whose timestamp is not a time. Stops at the first error of `emit`.
pub fn for_each_row(
    conn: &rusqlite::Connection,
    after: i64,
    emit: &mut dyn FnMut(Result<&Row<'_>, i64>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut stmt = conn.prepare(
        r#"SELECT ip, timestamp, method, url, status, bytes, referrer, user_agent, id FROM logs WHERE id > ?1 ORDER BY id"#,
    )?;
    let mut rows = stmt.query([after])?;
    while let Some(r) = rows.next()? {
        use rusqlite::types::ValueRef;
        let text = |i: usize| -> Option<&str> {
            match r.get_ref(i) {
                Ok(ValueRef::Text(t)) => std::str::from_utf8(t).ok(),
                _ => None,
            }
        };
        let int = |i: usize| -> Option<i64> {
            match r.get_ref(i) {
                Ok(ValueRef::Integer(n)) => Some(n),
                _ => None,
            }
        };
        let Some(timestamp) = text(1).and_then(parse_stored_time) else {
            emit(Err(int(8).unwrap_or(0)))?;
            continue;
        };
        emit(Ok(&Row {
            ip: text(0).unwrap_or(""),
            timestamp: timestamp.timestamp(),
            method: text(2),
            url: text(3).unwrap_or(""),
            status: int(4).and_then(|n| u16::try_from(n).ok()).unwrap_or(0),
            bytes: int(5).and_then(|n| u64::try_from(n).ok()),
            referrer: text(6),
            user_agent: text(7),
        }))?;
    }
    Ok(())
}

/// The counts of the entries of a CSV written by parse-to-csv that pass `filters`.
///
/// Each of [`COUNTERS`] threads reads the whole file and counts the rows of its share of the
/// clients, passing over the others as fast as it finds their line ends, so each visitor is
/// seen by one of them and their counts add up (see [`Counts::add_other_clients`]). Handing
/// rows from one reading thread to counting ones (as [`aggregate`] does for the database) made
/// that thread the bottleneck: splitting every record and copying its fields took longer than
/// counting half of them. Here nothing is handed over but the blocks read, by reference.
pub fn from_csv(path: &Path, filters: &Filters) -> anyhow::Result<Counts> {
    let file = open_csv(path)?;
    let stop = AtomicU64::new(u64::MAX);
    let results: Vec<_> = std::thread::scope(|scope| {
        let workers: Vec<_> = (records::read_ahead(scope, file, COUNTERS).into_iter())
            .enumerate()
            .map(|(index, records)| {
                let stop = &stop;
                scope.spawn(move || {
                    let mut agg = Aggregator::default();
                    let share = Share {
                        index,
                        of: COUNTERS,
                    };
                    read_share(path, records, share, stop, &mut |row| agg.add(row, filters))?;
                    Ok(agg.into_counts())
                })
            })
            .collect();
        (workers.into_iter())
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err((0, anyhow::anyhow!("a counting thread panicked"))))
            })
            .collect()
    });
    // Of the errors, the one of the first record in the file: a share stops at its first
    // error, and the others once past it.
    let mut counts = Counts::default();
    let mut error: Option<(u64, anyhow::Error)> = None;
    for result in results {
        match result {
            Ok(other) => counts.add_other_clients(other),
            Err(e) if error.as_ref().is_none_or(|first| e.0 < first.0) => error = Some(e),
            Err(_) => {}
        }
    }
    match error {
        Some((_, e)) => Err(e),
        None => Ok(counts),
    }
}

/// The counts of the entries of a database that pass `filters`: from its packed copy of the
/// rows when it has one that covers every row (and `packed` allows), else from its rows.
pub fn from_db(path: &Path, filters: &Filters, packed: bool) -> anyhow::Result<Counts> {
    if packed && let Some(counts) = db_packed(path, filters) {
        return Ok(counts);
    }
    aggregate(|emit| read_db(path, emit), filters)
}

/// The counts from a database's packed rows, read in one snapshot, if they cover every row.
/// Anything that stands in the way (no packed rows, an older schema, an unreadable file)
/// leaves the answer to the rows, which also report the error properly.
fn db_packed(path: &Path, filters: &Filters) -> Option<Counts> {
    let conn =
        crate::sink::sqlite::open_for_reading(path, std::time::Duration::from_secs(10)).ok()?;
    conn.execute_batch("BEGIN").ok()?;
    crate::packed::counts(&conn, filters).ok().flatten()
}

/// A row of a [`RowBatch`]: spans of ip, method, url, referrer and agent in the batch's text,
/// then timestamp, status and bytes.
type BatchedRow = ([Option<Span>; 5], i64, u16, Option<u64>);

/// Rows handed from the reading thread to a counting one, their text in one string.
#[derive(Default)]
struct RowBatch {
    text: Arena,
    rows: Vec<BatchedRow>,
}

/// Rows per [`RowBatch`].
const ROW_BATCH: usize = 4096;

/// Bytes of text per [`RowBatch`], at most (but for one row): a batch of 4,096 rows of
/// megabyte-long URLs would hold gigabytes, and the few in flight would all be that size.
const ROW_BATCH_BYTES: usize = 512 << 10;

impl RowBatch {
    fn push(&mut self, row: &Row<'_>) {
        let mut span = |v: Option<&str>| self.text.push(v);
        let spans = [
            span(Some(row.ip)),
            span(row.method),
            span(Some(row.url)),
            span(row.referrer),
            span(row.user_agent),
        ];
        self.rows
            .push((spans, row.timestamp, row.status, row.bytes));
    }

    fn each(&self, mut f: impl FnMut(&Row<'_>)) {
        let text = |s: Option<Span>| self.text.get(s);
        for &(spans, timestamp, status, bytes) in &self.rows {
            f(&Row {
                ip: text(spans[0]).unwrap_or(""),
                timestamp,
                method: text(spans[1]),
                url: text(spans[2]).unwrap_or(""),
                status,
                bytes,
                referrer: text(spans[3]),
                user_agent: text(spans[4]),
            });
        }
    }

    fn clear(&mut self) {
        self.text.clear();
        self.rows.clear();
    }
}

/// Counting threads. Each counts the rows of its share of the clients, so that each visitor is
/// seen by one of them and their counts simply add up (see [`Counts::add_other_clients`]).
const COUNTERS: usize = 2;

/// Runs `read` ([`read_db`]) on one thread and counts the rows that pass
/// `filters` on [`COUNTERS`] others, splitting the clients between them: counting takes as long
/// as reading, and each half of it runs beside the reading. Batches go back to the reader once
/// counted, so a run allocates a few batches, not one per 4,096 rows.
pub fn aggregate(
    read: impl FnOnce(&mut Emit<'_>) -> anyhow::Result<()> + Send,
    filters: &Filters,
) -> anyhow::Result<Counts> {
    std::thread::scope(|scope| {
        let (recycle_tx, recycle_rx) = std::sync::mpsc::channel::<RowBatch>();
        let mut senders = Vec::new();
        let mut counters = Vec::new();
        for _ in 0..COUNTERS {
            let (tx, rx) = std::sync::mpsc::sync_channel::<RowBatch>(4);
            senders.push(tx);
            let recycle_tx = recycle_tx.clone();
            counters.push(scope.spawn(move || {
                let mut agg = Aggregator::default();
                for mut batch in rx {
                    batch.each(|row| agg.add(row, filters));
                    batch.clear();
                    let _ = recycle_tx.send(batch);
                }
                agg.into_counts()
            }));
        }
        drop(recycle_tx);
        let mut batches: Vec<RowBatch> = (0..COUNTERS).map(|_| RowBatch::default()).collect();
        let result = read(&mut |row: &Row<'_>| {
            let k = records::share_of(row.ip.as_bytes(), COUNTERS);
            batches[k].push(row);
            if batches[k].rows.len() == ROW_BATCH || batches[k].text.len() >= ROW_BATCH_BYTES {
                let next = recycle_rx.try_recv().unwrap_or_default();
                // A closed channel means a counting thread panicked; the join reports it.
                let _ = senders[k].send(std::mem::replace(&mut batches[k], next));
            }
        });
        for (tx, batch) in senders.into_iter().zip(batches) {
            let _ = tx.send(batch);
        }
        let mut counts = Counts::default();
        for counter in counters {
            let other = counter
                .join()
                .map_err(|_| anyhow::anyhow!("a counting thread panicked"))?;
            counts.add_other_clients(other);
        }
        result.map(|()| counts)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::LogEntry;
    use crate::sink::csv::{CsvFormat, RowEncoder};
    use proptest::prelude::*;
    use std::borrow::Cow;

    /// Text weighted towards what CSV must quote, and beyond ASCII.
    fn text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just(','),
                Just('"'),
                Just('\n'),
                Just('\r'),
                Just(' '),
                Just('é'),
                any::<char>(),
                proptest::char::range('a', 'z')
            ],
            1..30,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    fn entry() -> impl Strategy<Value = LogEntry<'static>> {
        (
            (text(), proptest::option::of(text()), text()),
            (
                0i64..250_000_000_000,
                100u16..600,
                proptest::option::of(any::<u64>()),
            ),
            (proptest::option::of(text()), proptest::option::of(text())),
        )
            .prop_map(
                |((ip, method, url), (secs, status, bytes), (referrer, agent))| LogEntry {
                    ip: Cow::Owned(ip),
                    ident: None,
                    user: None,
                    timestamp: DateTime::from_timestamp(secs, 0).unwrap(),
                    method: method.map(Cow::Owned),
                    url: Cow::Owned(url),
                    protocol: None,
                    status,
                    bytes,
                    referrer: referrer.map(Cow::Owned),
                    user_agent: agent.map(Cow::Owned),
                },
            )
    }

    type OwnedRow = (
        String,
        i64,
        Option<String>,
        String,
        u16,
        Option<u64>,
        Option<String>,
        Option<String>,
    );

    fn owned(r: &Row<'_>) -> OwnedRow {
        let o = |v: Option<&str>| v.map(str::to_owned);
        (
            r.ip.into(),
            r.timestamp,
            o(r.method),
            r.url.into(),
            r.status,
            r.bytes,
            o(r.referrer),
            o(r.user_agent),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// parse-to-csv writes with the csv crate's quoting and aggregate-csv reads with its
        /// own splitter (see `records`): every row must come back as it went in.
        #[test]
        fn rows_the_csv_sink_writes_read_back_the_same(entries in proptest::collection::vec(entry(), 1..30)) {
            let mut encoder = RowEncoder::new(CsvFormat::default());
            encoder.header();
            for e in &entries {
                encoder.encode(e);
            }
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("parsed_logs.csv");
            std::fs::write(&path, encoder.take()).unwrap();
            let mut rows = Vec::new();
            read_csv(&path, &mut |row| rows.push(owned(row))).unwrap();
            let expected: Vec<OwnedRow> = entries.iter().map(|e| owned(&Row::of(e))).collect();
            prop_assert_eq!(rows, expected);
        }
    }

    #[test]
    fn the_interner_numbers_each_distinct_string_once() {
        let mut interner = Interner::default();
        let words: Vec<String> = (0..5000).map(|i| format!("/{}", i % 1700)).collect();
        let ids: Vec<u32> = words.iter().map(|w| interner.id(w)).collect();
        assert_eq!(interner.names.len(), 1700);
        for (w, &id) in words.iter().zip(&ids) {
            assert_eq!(&*interner.names[id as usize], w.as_str());
            assert_eq!(interner.id(w), id);
        }
        assert_eq!(interner.id(""), 1700);
    }

    #[test]
    fn percent_rounds_half_up_in_integers() {
        assert_eq!(percent(1, 3), "33.3");
        assert_eq!(percent(2, 3), "66.7");
        assert_eq!(percent(1, 2000), "0.1");
        assert_eq!(percent(0, 0), "0.0");
        assert_eq!(percent(5, 5), "100.0");
    }

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
    fn rankings_are_ordered_by_hits_then_key() {
        let r = |k: &str, n| Ranked {
            key: k.into(),
            hits: n,
            bytes: 0,
            visitors: 0,
        };
        let got = ranked(
            vec![r("b", 2), r("a", 2), r("c", 5), r("d", 1)].into_iter(),
            3,
        );
        assert_eq!(
            got.iter().map(|x| x.key.as_str()).collect::<Vec<_>>(),
            ["c", "a", "b"]
        );
    }
}
