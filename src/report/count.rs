//! Counting: the one counter every store feeds, and what it needs and gives.
//!
//! A store reduces each entry to a [`Hit`]: numbers, with its strings as dense ids. Rows read
//! as text get their ids from a [`RowCounter`], which numbers the strings of the kinds the
//! reports want (and only those); the packed copy has its ids already. The [`Counter`] keeps
//! only what the chosen reports need ([`Wants`]): `--report status` keeps no per-URL,
//! per-client or per-visitor state. Counters of threads that split the clients between them
//! give [`Counts`] that simply add up ([`Counts::add_other_clients`]).

use std::borrow::Cow;

use rustc_hash::FxHashMap;

use super::filter::{Filter, Filters};
use super::times::Times;
use super::visits::Visits;
use crate::privacy::strip_query;
use crate::row::{ABSENT, ClientKey, Interner, Row, canonical_ipv4, ipv4_bytes, ipv4_text};
use crate::zone::{Clock, Zone};

/// The names of the status classes, in the order of [`class_index`].
pub const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// Counts per status class, in [`CLASSES`] order.
pub type ByClass = [u64; CLASSES.len()];

/// What the chosen reports need counted; nothing else is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wants {
    /// Unique visitors, in all and per URL: a set per (client, day, agent).
    pub visits: bool,
    /// Hits per client, named (the clients report). How many clients there are is known
    /// from the visits too.
    pub clients: bool,
    /// Hits, bytes, 404s (and visitors, with `visits`) per URL.
    pub urls: bool,
    pub agents: bool,
    pub referrers: bool,
    pub methods: bool,
    /// Response times, in all and per URL.
    pub times: bool,
    /// The zone whose days and hours the counts are kept in.
    pub zone: Zone,
    /// Which requests make visitors.
    pub visitors: VisitorRule,
    /// Rows shown of each ranking (`usize::MAX` for all). Only the clients shown are named
    /// (see [`Counter::into_counts`]): a log can hold as many clients as lines.
    pub top: usize,
}

impl Wants {
    /// Nothing but the totals.
    pub const NONE: Wants = Wants {
        visits: false,
        clients: false,
        urls: false,
        agents: false,
        referrers: false,
        methods: false,
        times: false,
        zone: Zone::Utc,
        visitors: VisitorRule::All,
        top: usize::MAX,
    };

    /// Everything: every report, every row.
    pub const ALL: Wants = Wants {
        visits: true,
        clients: true,
        urls: true,
        agents: true,
        referrers: true,
        methods: true,
        times: true,
        zone: Zone::Utc,
        visitors: VisitorRule::All,
        top: usize::MAX,
    };
}

/// Which requests make unique visitors (`--visitors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum VisitorRule {
    /// Every request.
    #[default]
    All,
    /// Every request but the 4xx, as GoAccess counts them by default (its
    /// `--4xx-to-unique-count` off): a scanner's probes answered 404 make no visitor.
    Goaccess,
}

impl Default for Wants {
    fn default() -> Wants {
        Wants::NONE
    }
}

/// Which keys a store must give the counter for a query: those its reports count, and those
/// its filters look at. Both kinds of store (rows read as text, packed records) derive them
/// here, once per run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// Clients as keys (visitors, clients, `--ip`).
    pub client: bool,
    /// Clients' text (the clients report, `--ip`); the visitors need only their keys.
    pub client_text: bool,
    pub url: bool,
    /// Agents (the agents report and its groups, visitors, who are a client and an agent,
    /// `--agent` and `--crawlers`).
    pub agent: bool,
    pub referrer: bool,
    pub method: bool,
}

impl Needs {
    pub fn of(wants: Wants, filters: &Filters) -> Needs {
        let ip = filters.ip.is_some() || filters.exclude_ip.is_some();
        Needs {
            client: wants.clients || wants.visits || ip,
            client_text: wants.clients || ip,
            url: wants.urls
                || wants.times
                || filters.url.is_some()
                || filters.exclude_url.is_some(),
            agent: wants.agents
                || wants.visits
                || filters.agent.is_some()
                || filters.crawlers != super::filter::Crawlers::Include,
            referrer: wants.referrers,
            method: wants.methods || filters.method.is_some(),
        }
    }
}

/// The kinds of strings a report ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Url,
    Agent,
    Referrer,
    Method,
}

/// One entry reduced to numbers: what the [`Counter`] counts. The id of a kind the reports do
/// not want is 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hit {
    /// Seconds since the Unix epoch.
    pub timestamp: i64,
    pub status: u16,
    pub bytes: u64,
    /// A [`ClientKey`].
    pub client: u64,
    pub url: u32,
    /// The user agent's id (an absent one counts as `-`).
    pub agent: u32,
    /// `None` for no referrer.
    pub referrer: Option<u32>,
    /// The method's id (an absent one counts as `-`).
    pub method: u32,
    /// The response time in microseconds, when the log has one (and the times are wanted).
    pub time_us: Option<u64>,
}

/// The strings behind a counter's ids, asked for once each when the counts are handed over.
pub trait Names {
    fn name(&mut self, kind: Kind, id: u32) -> Box<str>;
    /// The text of a [`ClientKey`].
    fn client(&mut self, key: u64) -> Box<str>;
}

/// Counts of one URL.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UrlStat {
    pub hits: u64,
    pub bytes: u64,
    /// Hits answered 404.
    pub not_found: u64,
    /// Unique visitors (see [`Wants::visits`]).
    pub visitors: u64,
}

/// Counts of the same URL from other clients (so other visitors) add up field by field.
impl std::ops::AddAssign for UrlStat {
    fn add_assign(&mut self, other: UrlStat) {
        self.hits += other.hits;
        self.bytes = self.bytes.saturating_add(other.bytes);
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
    /// Per minute since the epoch, by class.
    minutes: FxHashMap<i64, ByClass>,
    /// The minute of the last row and the counts of its rows not yet in `minutes`: rows come
    /// in time order, so most fall in the minute of the row before and cost no lookup.
    minute: (i64, ByClass),
}

impl Totals {
    #[inline]
    pub fn add(&mut self, timestamp: i64, status: u16, bytes: u64) {
        self.add_group(&Group::one(timestamp, bytes), status);
    }

    /// Adds `group.hits` requests of one status, all in the minute of `group.first`.
    #[inline]
    fn add_group(&mut self, group: &Group, status: u16) {
        self.requests += group.hits;
        self.bytes = self.bytes.saturating_add(group.bytes);
        self.first = Some(self.first.map_or(group.first, |f| f.min(group.first)));
        self.last = Some(self.last.map_or(group.last, |l| l.max(group.last)));
        let code = usize::from(status);
        if code >= self.status.len() {
            self.status.resize(code + 1, 0);
        }
        self.status[code] += group.hits;
        let minute = group.first.div_euclid(60);
        if minute != self.minute.0 {
            self.put_minute();
            self.minute.0 = minute;
        }
        self.minute.1[class_index(status)] += group.hits;
    }

    /// Moves the counts of the last minute into `minutes`.
    fn put_minute(&mut self) {
        let (minute, counts) = std::mem::take(&mut self.minute);
        if counts != ByClass::default() {
            self.add_minute(minute, counts);
        }
    }

    fn add_minute(&mut self, minute: i64, counts: ByClass) {
        let slot = self.minutes.entry(minute).or_default();
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

    /// Takes out the hits per minute since the epoch, by class; in no
    /// particular order.
    pub fn minutes(&mut self) -> impl Iterator<Item = (i64, ByClass)> + '_ {
        self.put_minute();
        self.minutes.drain()
    }

    /// Adds the totals of other rows.
    pub fn merge(&mut self, mut other: Totals) {
        self.requests += other.requests;
        self.bytes = self.bytes.saturating_add(other.bytes);
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
/// A [`Counter`] gives it, whichever store fed it; [`Counts::into_report`] is the one place
/// that ranks and buckets, so every store gives the same report. A list a report did not ask
/// for is empty.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub totals: Totals,
    /// Distinct (ip, day, user agent).
    pub visitors: u64,
    /// Distinct visitors per day since the epoch (with the visitors), in any order.
    pub days: Vec<(i64, u64)>,
    /// Distinct clients (when the summary or the clients report asked).
    pub distinct_clients: u64,
    pub urls: Vec<(Box<str>, UrlStat)>,
    /// Hits per client IP (only of the clients that can be shown, see [`Wants::top`]), user
    /// agent (`-` when absent), referrer and method (`-` when absent), in any order.
    pub clients: Vec<(Box<str>, u64)>,
    pub agents: Vec<(Box<str>, u64)>,
    pub referrers: Vec<(Box<str>, u64)>,
    pub methods: Vec<(Box<str>, u64)>,
    /// Hits per host (from the store's reader, when the hosts report asked; only a
    /// ClickHouse store has hosts).
    pub hosts: Vec<(Box<str>, u64)>,
    /// Unique visitors per user agent (when both are counted), in any order.
    pub agent_visitors: Vec<(Box<str>, u64)>,
    /// Response times of all requests that have one, and per URL (only URLs with times), in
    /// any order.
    pub times: Times,
    pub url_times: Vec<(Box<str>, Times)>,
    /// The rejected lines by reason (only when the rejects report asked, from the store's
    /// reader, not from the counter: see `crate::read::rejects`).
    pub rejects: Vec<RejectGroup>,
    /// Filters the store's reader applied itself (a ClickHouse store's `--host`), named and
    /// described as [`crate::report::Filters::describe`] names the others.
    pub store_filters: Vec<(String, String)>,
}

/// The rejected lines of one reason, with the first of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectGroup {
    /// The reason's stable name (`format`, `timestamp`...).
    pub reason: String,
    pub lines: u64,
    /// Where the sample comes from: its log (as the store names it) and line number.
    pub source: String,
    pub line: u64,
    /// The first rejected line of the reason, as kept (invalid UTF-8 replaced).
    pub sample: String,
}

/// The one counter: totals always, and per key only what [`Wants`] asks for.
#[derive(Debug, Default)]
pub struct Counter {
    wants: Wants,
    totals: Totals,
    /// By URL id.
    urls: Vec<UrlStat>,
    /// Hits by agent, referrer and method id.
    agents: Vec<u64>,
    referrers: Vec<u64>,
    methods: Vec<u64>,
    /// Response times, in all and by URL id.
    times: Times,
    url_times: Vec<Times>,
    /// Shifts each hit's time into [`Wants::zone`].
    clock: Clock,
    /// Visitors, and the hits of each client: without visits wanted, each client is counted
    /// as one visitor.
    visits: Visits<u64>,
}

/// The order of every ranking: hits descending, then key (its text's bytes) ascending. A
/// total order, so that every store, and the counter that names only the clients shown, agree.
pub fn rank_order(hits: (u64, u64), keys: (&[u8], &[u8])) -> std::cmp::Ordering {
    hits.1.cmp(&hits.0).then_with(|| keys.0.cmp(keys.1))
}

/// The clients of the first `top` rows of the clients ranking ([`rank_order`]), named; ties
/// at the cut are settled here by text, so the ranking of the names kept is the ranking of
/// all. Naming a million clients
/// (a log where every line comes from a new address) to show ten would cost more than
/// counting them; comparing the texts of IPv4 addresses allocates nothing.
fn named_clients(
    mut clients: Vec<(u64, u64)>,
    top: usize,
    names: &mut dyn Names,
) -> Vec<(Box<str>, u64)> {
    if clients.len() <= top {
        return (clients.into_iter())
            .map(|(key, hits)| (names.client(key), hits))
            .collect();
    }
    if top == 0 {
        return Vec::new();
    }
    // The hits of the top-th client: those with more are in, those with as many compete.
    let cut = clients
        .select_nth_unstable_by(top - 1, |a, b| b.1.cmp(&a.1))
        .1
        .1;
    let mut named: Vec<(Box<str>, u64)> = Vec::with_capacity(top);
    let mut tied = Vec::new();
    for (key, hits) in clients {
        if hits > cut {
            named.push((names.client(key), hits));
        } else if hits == cut {
            tied.push(ClientText::of(key, names));
        }
    }
    // Fewer than `top` have more hits than the top-th, so at least one tied client is in.
    let room = top - named.len();
    if tied.len() > room {
        // All tied on hits: the rank order is their texts'.
        tied.select_nth_unstable_by(room - 1, |a, b| {
            rank_order((cut, cut), (a.bytes(), b.bytes()))
        });
        tied.truncate(room);
    }
    named.extend(tied.into_iter().map(|text| (text.into_name(), cut)));
    named
}

/// A client's text, without allocating for an IPv4 address.
enum ClientText {
    V4([u8; 15], usize, u32),
    Named(Box<str>),
}

impl ClientText {
    fn of(key: u64, names: &mut dyn Names) -> ClientText {
        match ClientKey::of(key) {
            ClientKey::V4(address) => {
                let (bytes, len) = ipv4_bytes(address);
                ClientText::V4(bytes, len, address)
            }
            ClientKey::Other(_) => ClientText::Named(names.client(key)),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            ClientText::V4(bytes, len, _) => &bytes[..*len],
            ClientText::Named(name) => name.as_bytes(),
        }
    }

    fn into_name(self) -> Box<str> {
        match self {
            ClientText::V4(_, _, address) => ipv4_text(address),
            ClientText::Named(name) => name,
        }
    }
}

/// Adds `n` to `counts[id]`, growing it as ids come.
#[inline]
fn bump(counts: &mut Vec<u64>, id: u32, n: u64) {
    let i = id as usize;
    if i >= counts.len() {
        counts.resize(i + 1, 0);
    }
    counts[i] += n;
}

/// Requests alike in all a counter keeps of them, counted as one: a store that groups its
/// rows itself (ClickHouse, with GROUP BY) hands over each group once. Only for counters
/// that keep no visitor or client, which need each request (see [`Counter::groups_allowed`]);
/// response times are kept, of a group that shares one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    pub hits: u64,
    /// Their bytes added up.
    pub bytes: u64,
    /// Their first and last time, in seconds since the epoch, in one minute.
    pub first: i64,
    pub last: i64,
}

impl Group {
    /// One request.
    #[inline]
    pub fn one(timestamp: i64, bytes: u64) -> Group {
        Group {
            hits: 1,
            bytes,
            first: timestamp,
            last: timestamp,
        }
    }
}

impl Counter {
    pub fn new(wants: Wants) -> Counter {
        Counter {
            wants,
            clock: Clock::new(wants.zone),
            ..Counter::default()
        }
    }

    /// Whether [`Counter::add_group`] may be used: the counts asked for need no single
    /// request (no visitors or clients). Response times group too: requests alike and of the
    /// same time, as a group, count as many times of that time.
    pub fn groups_allowed(wants: Wants) -> bool {
        !(wants.visits || wants.clients)
    }

    /// Counts the requests of `group`, all alike `hit` (its time and bytes aside): see
    /// [`Group`].
    pub fn add_group(&mut self, hit: &Hit, group: &Group) {
        debug_assert!(Counter::groups_allowed(self.wants));
        let group = Group {
            first: self.clock.local(group.first),
            last: self.clock.local(group.last),
            ..*group
        };
        self.add_counts(hit, &group);
    }

    #[inline]
    pub fn add(&mut self, hit: &Hit) {
        // Every time counted from here on is the zone's: its minutes, hours and days.
        let timestamp = self.clock.local(hit.timestamp);
        let timestamp = self.add_counts(hit, &Group::one(timestamp, hit.bytes));
        self.add_visit(hit, timestamp);
    }

    /// The counts kept per key, for `group.hits` requests alike `hit`; returns the time of
    /// the first, in the zone.
    #[inline]
    fn add_counts(&mut self, hit: &Hit, group: &Group) -> i64 {
        let n = group.hits;
        self.totals.add_group(group, hit.status);
        let wants = self.wants;
        if wants.agents {
            bump(&mut self.agents, hit.agent, n);
        }
        if wants.methods {
            bump(&mut self.methods, hit.method, n);
        }
        if wants.referrers
            && let Some(referrer) = hit.referrer
        {
            bump(&mut self.referrers, referrer, n);
        }
        // Which URLs a visitor hit matters only to the URLs report: without it, every hit of a
        // visitor is on one URL, and the visitor keeps no set.
        if wants.urls {
            let i = hit.url as usize;
            if i >= self.urls.len() {
                self.urls.resize(i + 1, UrlStat::default());
            }
            let stat = &mut self.urls[i];
            stat.hits += n;
            stat.bytes = stat.bytes.saturating_add(group.bytes);
            stat.not_found += n * u64::from(hit.status == 404);
        }
        if wants.times
            && let Some(us) = hit.time_us
        {
            self.times.add_n(us, n);
            let i = hit.url as usize;
            if i >= self.url_times.len() {
                self.url_times.resize_with(i + 1, Times::default);
            }
            self.url_times[i].add_n(us, n);
        }
        group.first
    }

    /// The visitor and the client of one request, at `timestamp` in the zone.
    #[inline]
    fn add_visit(&mut self, hit: &Hit, timestamp: i64) {
        let wants = self.wants;
        // After the URL's stat exists: the visits count visitors into the stats of URLs seen.
        let visits = &mut self.visits;
        let visiting = match wants.visitors {
            VisitorRule::All => true,
            VisitorRule::Goaccess => !(400..500).contains(&hit.status),
        };
        if wants.visits {
            let urls = &mut self.urls;
            // Which URLs a visitor hit matters only to the URLs report (see above).
            let url = if wants.urls { hit.url } else { 0 };
            let first_visit = |url: u32| {
                if wants.urls {
                    urls[url as usize].visitors += 1;
                }
            };
            if visiting {
                visits.hit(timestamp, hit.client, hit.agent, url, first_visit);
            } else {
                visits.hit_without_visit(timestamp, hit.client, hit.agent, first_visit);
            }
        } else if wants.clients {
            visits.hit(0, hit.client, 0, 0, |_| {});
        }
    }

    /// The counts, named.
    pub fn into_counts(mut self, names: &mut dyn Names) -> Counts {
        let wants = self.wants;
        let urls = &mut self.urls;
        let visited = self.visits.finish(|url| {
            if wants.urls {
                urls[url as usize].visitors += 1;
            }
        });
        let mut counts = Counts {
            totals: self.totals,
            visitors: if wants.visits { visited.visitors } else { 0 },
            days: if wants.visits {
                visited.days
            } else {
                Vec::new()
            },
            ..Counts::default()
        };
        // The summary needs only how many clients; the clients report needs them named.
        if wants.clients || wants.visits {
            counts.distinct_clients = visited.clients.len() as u64;
            if wants.clients {
                counts.clients = named_clients(visited.clients, wants.top, names);
            }
        }
        // A URL is named once (see the agents below): its stat and its times share the name.
        counts.times = self.times;
        let mut url_times = self.url_times;
        for (id, stat) in (self.urls.into_iter().enumerate()).filter(|(_, s)| s.hits > 0) {
            let name = names.name(Kind::Url, id as u32);
            if let Some(times) = url_times.get_mut(id).filter(|t| t.count > 0) {
                counts.url_times.push((name.clone(), std::mem::take(times)));
            }
            counts.urls.push((name, stat));
        }
        // Without the URLs report, its times are all the counter kept of a URL.
        for (id, times) in (url_times.into_iter().enumerate()).filter(|(_, t)| t.count > 0) {
            counts
                .url_times
                .push((names.name(Kind::Url, id as u32), times));
        }
        // An agent is named once (a store may hand its text over, not copy it): its hits and
        // its visitors, who are among its hits, share the name.
        if wants.visits && wants.agents {
            let visitors = |id: usize| visited.agents.get(id).copied().unwrap_or(0);
            for (id, &hits) in self.agents.iter().enumerate().filter(|(_, n)| **n > 0) {
                let name = names.name(Kind::Agent, id as u32);
                counts.agent_visitors.push((name.clone(), visitors(id)));
                counts.agents.push((name, hits));
            }
            self.agents.clear();
        }
        for (kind, hits, list) in [
            (Kind::Agent, self.agents, &mut counts.agents),
            (Kind::Referrer, self.referrers, &mut counts.referrers),
            (Kind::Method, self.methods, &mut counts.methods),
        ] {
            list.extend(
                (hits.into_iter().enumerate())
                    .filter(|&(_, n)| n > 0)
                    .map(|(id, n)| (names.name(kind, id as u32), n)),
            );
        }
        counts
    }
}

/// Counts rows read as text (from a CSV, or the rows of a database): filters them, numbers
/// their strings of the kinds wanted, and hands them to a [`Counter`]. One per counting thread.
pub struct RowCounter<'f> {
    filter: Filter<'f>,
    /// Any filter at all: most reports have none, and then ask the filter nothing.
    filtered: bool,
    /// `--strip-query`: URLs and referrers are numbered without their query string.
    strip_query: bool,
    counter: Counter,
    needs: Needs,
    /// Clients other than IPv4 addresses in their usual form.
    clients: Interner,
    urls: Interner,
    agents: Interner,
    referrers: Interner,
    methods: Interner,
}

impl<'f> RowCounter<'f> {
    pub fn new(wants: Wants, filters: &'f Filters) -> RowCounter<'f> {
        RowCounter {
            filter: Filter::new(filters),
            filtered: !filters.is_empty(),
            strip_query: filters.strip_query,
            counter: Counter::new(wants),
            needs: Needs::of(wants, filters),
            clients: Interner::default(),
            urls: Interner::default(),
            agents: Interner::default(),
            referrers: Interner::default(),
            methods: Interner::default(),
        }
    }

    /// Counts `row` if it passes the filters.
    #[inline]
    pub fn add(&mut self, row: &Row<'_>) {
        if let Some(hit) = self.hit(row) {
            self.counter.add(&hit);
        }
    }

    /// Counts `group.hits` requests alike `row` if it passes the filters (its time is the
    /// group's first, its bytes the group's): see [`Group`]. Returns whether it passed.
    pub fn add_group(&mut self, row: &Row<'_>, group: &Group) -> bool {
        match self.hit(row) {
            Some(hit) => {
                self.counter.add_group(&hit, group);
                true
            }
            None => false,
        }
    }

    /// `row` as the counter takes it, if it passes the filters.
    #[inline]
    fn hit(&mut self, row: &Row<'_>) -> Option<Hit> {
        let (needs, filter, filtered) = (self.needs, &mut self.filter, self.filtered);
        if filtered && !filter.accepts_time_and_status(row.timestamp, row.status) {
            return None;
        }
        let client = match needs.client {
            true => match canonical_ipv4(row.ip.as_bytes()) {
                Some(v4) => ClientKey::V4(v4),
                None => ClientKey::Other(self.clients.id(row.ip)),
            }
            .key(),
            false => 0,
        };
        if filtered && !filter.accepts_client(client, || Cow::Borrowed(row.ip)) {
            return None;
        }
        let url = match needs.url {
            true => self.urls.id(&grouped(self.strip_query, row.url)),
            false => 0,
        };
        let urls = &self.urls;
        if filtered && !filter.accepts_url(url, || &urls.names[url as usize]) {
            return None;
        }
        let method = match needs.method {
            true => self.methods.id(row.method.unwrap_or(ABSENT)),
            false => 0,
        };
        if filtered && !filter.accepts_method(method, || row.method.unwrap_or(ABSENT)) {
            return None;
        }
        let agent = match needs.agent {
            true => self.agents.id(row.user_agent.unwrap_or(ABSENT)),
            false => 0,
        };
        if filtered && !filter.accepts_agent(agent, || row.user_agent.unwrap_or(ABSENT)) {
            return None;
        }
        Some(Hit {
            timestamp: row.timestamp,
            status: row.status,
            bytes: row.bytes.unwrap_or(0),
            client,
            url,
            agent,
            referrer: match needs.referrer {
                true => row
                    .referrer
                    .map(|r| self.referrers.id(&grouped(self.strip_query, r))),
                false => None,
            },
            method,
            time_us: row.response_time_us,
        })
    }

    pub fn into_counts(self) -> Counts {
        /// Each id is asked for once: its string is moved out, not copied.
        struct Taken {
            urls: Vec<Box<str>>,
            agents: Vec<Box<str>>,
            referrers: Vec<Box<str>>,
            methods: Vec<Box<str>>,
            clients: Vec<Box<str>>,
        }
        impl Names for Taken {
            fn name(&mut self, kind: Kind, id: u32) -> Box<str> {
                let names = match kind {
                    Kind::Url => &mut self.urls,
                    Kind::Agent => &mut self.agents,
                    Kind::Referrer => &mut self.referrers,
                    Kind::Method => &mut self.methods,
                };
                std::mem::take(&mut names[id as usize])
            }
            fn client(&mut self, key: u64) -> Box<str> {
                match ClientKey::of(key) {
                    ClientKey::V4(address) => ipv4_text(address),
                    ClientKey::Other(id) => std::mem::take(&mut self.clients[id as usize]),
                }
            }
        }
        let mut names = Taken {
            urls: self.urls.names,
            agents: self.agents.names,
            referrers: self.referrers.names,
            methods: self.methods.names,
            clients: self.clients.names,
        };
        self.counter.into_counts(&mut names)
    }
}

/// A URL or referrer as the counts group it: without its query string with `--strip-query`.
#[inline]
fn grouped(strip: bool, text: &str) -> Cow<'_, str> {
    match strip {
        true => strip_query(text),
        false => Cow::Borrowed(text),
    }
}

/// Index of a status's class in [`CLASSES`]: 1xx to 5xx, and anything else a log holds
/// (the parser keeps any three digits) as "other".
pub fn class_index(status: u16) -> usize {
    match status / 100 {
        c @ 1..=5 => usize::from(c - 1),
        _ => CLASSES.len() - 1,
    }
}

impl Counts {
    /// Adds the counts of rows from other clients than these (so from other visitors too): how
    /// the counts of threads that split the clients between them are put together.
    pub fn add_other_clients(&mut self, other: Counts) {
        self.totals.merge(other.totals);
        self.visitors += other.visitors;
        // Threads split the clients, so a visitor (a client's) is in one count only.
        for (day, visitors) in other.days {
            match self.days.iter_mut().find(|(d, _)| *d == day) {
                Some((_, mine)) => *mine += visitors,
                None => self.days.push((day, visitors)),
            }
        }
        // Threads split the clients: no client is in two counts.
        self.distinct_clients += other.distinct_clients;
        self.clients.extend(other.clients);
        add_by_key(&mut self.urls, other.urls, |a, b| *a += b);
        self.times.merge(other.times);
        add_by_key(&mut self.url_times, other.url_times, Times::merge);
        for (mine, theirs) in [
            (&mut self.agents, other.agents),
            (&mut self.referrers, other.referrers),
            (&mut self.methods, other.methods),
            (&mut self.agent_visitors, other.agent_visitors),
        ] {
            add_by_key(mine, theirs, |a, b| *a += b);
        }
    }
}

/// Adds `theirs` to `mine`, combining the values of a key both have.
///
/// The index borrows `mine`'s keys rather than copying them: with a million distinct URLs, a
/// copy of each was the largest allocation of the whole report.
fn add_by_key<V>(
    mine: &mut Vec<(Box<str>, V)>,
    theirs: Vec<(Box<str>, V)>,
    combine: impl Fn(&mut V, V),
) {
    if mine.is_empty() {
        *mine = theirs;
        return;
    }
    let mut both = Vec::new();
    let mut new = Vec::new();
    {
        let index: FxHashMap<&str, usize> = (mine.iter().enumerate())
            .map(|(i, (k, _))| (&**k, i))
            .collect();
        for (key, value) in theirs {
            match index.get(&*key) {
                Some(&i) => both.push((i, value)),
                None => new.push((key, value)),
            }
        }
    }
    for (i, value) in both {
        combine(&mut mine[i].1, value);
    }
    mine.append(&mut new);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: u32) -> Row<'static> {
        let text = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        Row {
            ip: text(format!("2001:db8::{i:x}")),
            timestamp: i64::from(i) * 7,
            method: Some("GET"),
            url: text(format!("/p/{i}")),
            status: 200 + (i % 3) as u16 * 100,
            bytes: Some(u64::from(i)),
            referrer: Some(text(format!("https://r/{}", i % 5))),
            user_agent: Some(text(format!("agent {}", i % 4))),
            response_time_us: (!i.is_multiple_of(3)).then_some(u64::from(i % 11) * 1000),
        }
    }

    use proptest::prelude::*;

    proptest! {
        /// Naming only the clients shown ranks them as naming all would, whatever the ties at
        /// the cut, between IPv4 addresses and other clients (whose texts sort among them:
        /// "10.0.0.1" < "::1" < "9.0.0.1" < "unknown").
        #[test]
        fn only_the_clients_shown_are_named_and_they_rank_as_all(
            clients in proptest::collection::btree_map(
                prop_oneof![
                    (0u32..40).prop_map(|i| ClientKey::V4(i.rotate_right(5) ^ (0x0900_0000 * (i % 3)))),
                    (0u32..4).prop_map(ClientKey::Other),
                ].prop_map(ClientKey::key),
                1u64..4,
                0..40,
            ),
            top in 0usize..45,
        ) {
            struct Texts;
            impl Names for Texts {
                fn name(&mut self, _: Kind, _: u32) -> Box<str> {
                    unreachable!("only clients are named")
                }
                fn client(&mut self, key: u64) -> Box<str> {
                    match ClientKey::of(key) {
                        ClientKey::V4(address) => ipv4_text(address),
                        ClientKey::Other(id) => ["::1", "unknown", "-", "2001:db8::7"][id as usize].into(),
                    }
                }
            }
            let clients: Vec<(u64, u64)> = clients.into_iter().collect();
            let rank = |mut named: Vec<(Box<str>, u64)>| {
                named.sort_unstable_by(|a, b| rank_order((a.1, b.1), (a.0.as_bytes(), b.0.as_bytes())));
                named.truncate(top);
                named
            };
            let all = (clients.iter()).map(|&(key, hits)| (Texts.client(key), hits)).collect();
            let named = named_clients(clients.clone(), top, &mut Texts);
            prop_assert_eq!(named.len(), clients.len().min(top));
            prop_assert_eq!(rank(named), rank(all));
        }
    }

    #[test]
    fn a_status_report_keeps_no_state_per_key() {
        let filters = Filters::default();
        let mut counter = RowCounter::new(Wants::default(), &filters);
        for i in 0..5000 {
            counter.add(&row(i));
        }
        for (kind, interner) in [
            ("clients", &counter.clients),
            ("urls", &counter.urls),
            ("agents", &counter.agents),
            ("referrers", &counter.referrers),
            ("methods", &counter.methods),
        ] {
            assert!(interner.is_empty(), "{kind} were numbered");
        }
        let c = &counter.counter;
        assert!(c.urls.is_empty() && c.agents.is_empty() && c.referrers.is_empty());
        assert!(c.methods.is_empty() && c.visits.is_empty());
        let counts = counter.into_counts();
        assert_eq!(counts.totals.requests, 5000);
        assert_eq!(counts.totals.status().map(|(_, n)| n).sum::<u64>(), 5000);
        assert!(counts.urls.is_empty() && counts.clients.is_empty());
    }

    #[test]
    fn each_report_counts_what_it_needs_and_the_same_as_all() {
        let filters = Filters::default();
        let mut all = RowCounter::new(Wants::ALL, &filters);
        let only_urls = Wants {
            urls: true,
            ..Wants::default()
        };
        let mut urls = RowCounter::new(only_urls, &filters);
        for i in 0..3000 {
            all.add(&row(i % 1000));
            urls.add(&row(i % 1000));
        }
        assert!(urls.clients.is_empty() && urls.agents.is_empty());
        let (all, urls) = (all.into_counts(), urls.into_counts());
        let strip = |c: &Counts| -> Vec<(String, u64, u64, u64)> {
            let mut v: Vec<_> = (c.urls.iter())
                .map(|(k, s)| (k.to_string(), s.hits, s.bytes, s.not_found))
                .collect();
            v.sort();
            v
        };
        assert_eq!(strip(&all), strip(&urls));
        assert_eq!(all.clients.len(), 1000);
        assert_eq!(all.visitors, 1000, "a visitor per client, agent and day");
    }

    /// The times of each URL are the same whether the URLs report is asked too (both share
    /// the URL's name, which is handed over once) or alone.
    #[test]
    fn times_alone_are_the_times_with_every_report() {
        let filters = Filters::default();
        let only_times = Wants {
            times: true,
            ..Wants::default()
        };
        let (mut all, mut times) = (
            RowCounter::new(Wants::ALL, &filters),
            RowCounter::new(only_times, &filters),
        );
        for i in 0..3000 {
            all.add(&row(i % 100));
            times.add(&row(i % 100));
        }
        let stats = |c: Counts| {
            let mut v: Vec<_> = (c.url_times.into_iter())
                .map(|(url, t)| (url.to_string(), t.stats()))
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            (c.times.stats(), v)
        };
        let (all, times) = (stats(all.into_counts()), stats(times.into_counts()));
        // Rows `i` with `i % 3 == 0` have no time: 66 of the 100 URLs have some.
        assert_eq!(times.1.len(), 66);
        assert!(
            times
                .1
                .iter()
                .all(|(url, s)| url.starts_with("/p/") && s.count == 30)
        );
        assert_eq!(times.0.count, 66 * 30);
        assert_eq!(all, times);
    }
}
