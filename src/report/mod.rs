//! Reports: one [`Report`] model, counted in one pass from any store, rendered three ways.
//!
//! The stores' readers ([`crate::read`]) only turn what they hold into rows or hits; filtering
//! ([`filter`]), counting ([`count`]), the parallel fan-out ([`shard`]), ranking and bucketing
//! ([`Counts::into_report`]) are this module's, once, which is what makes the outputs of
//! `aggregate-csv` and `aggregate-db` byte-identical. Memory grows with the number of distinct
//! keys the chosen reports need (URLs, clients, agents, visitors), never with the number of rows.

pub mod classify;
pub mod count;
pub mod csv;
pub mod filter;
pub mod html;
pub mod json;
pub mod shard;
pub mod table;
pub mod times;
mod visits;

use chrono::DateTime;

use crate::zone::Zone;
pub use classify::StaticExtensions;
pub use count::{ByClass, CLASSES, Counts, RejectGroup, VisitorRule, Wants, class_index};
pub use filter::{Edge, Filters, StatusFilter, parse_time_arg};
use times::{TimeStats, Times};

/// The reports, in their default order. The doc comments of the variants are `--report`'s
/// help, so they name no code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Section {
    Summary,
    Status,
    Urls,
    /// URLs that are not static files (by extension: styles, scripts, images, fonts...).
    Pages,
    /// URLs that are static files.
    Static,
    NotFound,
    Clients,
    Agents,
    /// User agents grouped by browser (or crawler) family.
    Browsers,
    /// User agents grouped by operating system.
    Os,
    /// User agents grouped by class of device (desktop, mobile, tablet, bot, other).
    Devices,
    Referrers,
    /// Referrers rolled up to their host.
    Sites,
    Methods,
    Traffic,
    /// Hits and unique visitors per day.
    Days,
    /// Hits by hour of the day, whatever the day.
    Hours,
    /// Hits by day of the week.
    Weekdays,
    /// Rejected lines by reason, with a sample of each.
    Rejects,
    /// Response times, in all and of the slowest URLs.
    Times,
    /// Hits per web server (`--host` of the writers): a ClickHouse store's, which keeps
    /// the rows of many.
    Hosts,
}

impl Section {
    /// The reports printed when `--report` names none: all but `rejects`, which a CSV store
    /// cannot answer without the `--rejects` file its parser wrote, and `times`, which most
    /// logs (Common, Combined) cannot answer at all and which a database answers from its
    /// rows, not from its faster packed copy.
    pub const DEFAULT: [Section; 18] = [
        Section::Summary,
        Section::Status,
        Section::Urls,
        Section::Pages,
        Section::Static,
        Section::NotFound,
        Section::Clients,
        Section::Agents,
        Section::Browsers,
        Section::Os,
        Section::Devices,
        Section::Referrers,
        Section::Sites,
        Section::Methods,
        Section::Traffic,
        Section::Days,
        Section::Hours,
        Section::Weekdays,
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
            Section::Pages => "pages",
            Section::Static => "static",
            Section::Sites => "sites",
            Section::Days => "days",
            Section::Hours => "hours",
            Section::Weekdays => "weekdays",
            Section::Rejects => "rejects",
            Section::Browsers => "browsers",
            Section::Os => "os",
            Section::Devices => "devices",
            Section::Times => "times",
            Section::Hosts => "hosts",
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

/// What a report run asks of a store: which entries count, which reports, on how many
/// threads.
#[derive(Debug, Clone)]
pub struct Query {
    pub filters: Filters,
    /// The reports to compute; nothing another report alone needs is counted.
    pub sections: Vec<Section>,
    /// Counting threads (see [`shard`]).
    pub threads: usize,
    /// Rows shown of each ranking (`usize::MAX` for all).
    pub top: usize,
    /// What makes a URL a static file, for the pages and static reports.
    pub static_ext: StaticExtensions,
    /// The zone of the days, hours and times shown.
    pub zone: Zone,
    /// Which requests make unique visitors.
    pub visitors: VisitorRule,
}

impl Query {
    /// The default reports, no filter, one counting thread per core.
    pub fn all() -> Query {
        Query {
            filters: Filters::default(),
            sections: Section::DEFAULT.to_vec(),
            threads: shard::default_threads(),
            top: usize::MAX,
            static_ext: StaticExtensions::default(),
            zone: Zone::Utc,
            visitors: VisitorRule::All,
        }
    }

    /// What must be counted for the chosen reports.
    pub fn wants(&self) -> Wants {
        let mut wants = Wants {
            top: self.top,
            zone: self.zone,
            visitors: self.visitors,
            ..Wants::NONE
        };
        for section in &self.sections {
            match section {
                // Visitors, and how many clients (which the visitors tell); the summary's
                // crawler share is the hits and visitors of the agents that are crawlers.
                Section::Summary | Section::Browsers | Section::Os | Section::Devices => {
                    wants.visits = true;
                    wants.agents = true;
                }
                Section::Days => wants.visits = true,
                // The totals keep the hits per status and per minute anyway (traffic, hours and
                // weekdays come from the minutes); the rejects come from the store's reader.
                Section::Status
                | Section::Traffic
                | Section::Hours
                | Section::Weekdays
                | Section::Rejects
                | Section::Hosts => {}
                Section::Urls | Section::Pages | Section::Static => {
                    wants.urls = true;
                    wants.visits = true;
                }
                Section::NotFound => wants.urls = true,
                Section::Clients => wants.clients = true,
                Section::Agents => wants.agents = true,
                Section::Referrers | Section::Sites => wants.referrers = true,
                Section::Methods => wants.methods = true,
                Section::Times => wants.times = true,
            }
        }
        wants
    }
}

impl Counts {
    /// The report of `query` (its `top` rows per ranking, its filters and static files),
    /// with traffic in `bucket` (or one chosen from the span of the entries).
    pub fn into_report(self, query: &Query, bucket: Option<Bucket>) -> Report {
        let top = query.top;
        let mut totals = self.totals;
        let requests = totals.requests;
        let status: Vec<(u16, u64)> = totals.status().collect();
        let mut classes = ByClass::default();
        for &(code, n) in &status {
            classes[class_index(code)] += n;
        }
        let by_hits = |items: Vec<(Box<str>, u64)>, top: usize| -> Vec<Ranked> {
            ranked(
                items.into_iter().map(|(k, n)| Ranked::hits(k.into(), n)),
                top,
            )
        };
        let not_found = ranked(
            (self.urls.iter())
                .filter(|(_, s)| s.not_found > 0)
                .map(|(k, s)| Ranked::hits(k.to_string(), s.not_found)),
            top,
        );
        let asked = |section: Section| query.sections.contains(&section);
        let url = |(k, s): &(Box<str>, count::UrlStat)| Ranked {
            key: k.to_string(),
            hits: s.hits,
            bytes: s.bytes,
            visitors: s.visitors,
        };
        // URLs are ranked by reference and only the rows shown are copied: a log can hold as
        // many distinct URLs as lines.
        let top_urls = |entries: Vec<&(Box<str>, count::UrlStat)>| -> Vec<Ranked> {
            top_of(entries, top, |e| (e.1.hits, &e.0))
                .into_iter()
                .map(url)
                .collect()
        };
        let (mut pages, mut statics) = (UrlGroup::default(), UrlGroup::default());
        if asked(Section::Pages) || asked(Section::Static) {
            let (mut page_urls, mut static_urls) = (Vec::new(), Vec::new());
            for entry in &self.urls {
                let (group, list) = match query.static_ext.is_static(&entry.0) {
                    true => (&mut statics, &mut static_urls),
                    false => (&mut pages, &mut page_urls),
                };
                group.requests += entry.1.hits;
                list.push(entry);
            }
            (pages.rows, statics.rows) = (top_urls(page_urls), top_urls(static_urls));
        }
        let urls = top_urls(self.urls.iter().collect());
        let distinct_ips = self.distinct_clients;
        let clients = by_hits(self.clients, top);
        let groups = match [
            Section::Summary,
            Section::Browsers,
            Section::Os,
            Section::Devices,
        ]
        .into_iter()
        .any(asked)
        {
            true => agent_groups(&self.agents, &self.agent_visitors, top),
            false => AgentGroups::default(),
        };
        let agents = by_hits(self.agents, top);
        let mut sites: rustc_hash::FxHashMap<String, u64> = Default::default();
        if asked(Section::Sites) {
            for (referrer, n) in &self.referrers {
                *sites
                    .entry(classify::site_of(referrer).into_owned())
                    .or_default() += n;
            }
        }
        let sites = ranked(sites.into_iter().map(|(k, n)| Ranked::hits(k, n)), top);
        let referrers = by_hits(self.referrers, top);
        let methods = by_hits(self.methods, usize::MAX);
        let hosts = by_hits(self.hosts, top);
        let times = match asked(Section::Times) {
            true => TimesReport::of(self.times, self.url_times, top),
            false => TimesReport::default(),
        };
        let mut rejects = self.rejects;
        rejects.sort_unstable_by(|a, b| {
            count::rank_order(
                (a.lines, b.lines),
                (a.reason.as_bytes(), b.reason.as_bytes()),
            )
        });

        let range = totals.first.zip(totals.last);
        let minutes: Vec<(i64, ByClass)> = totals.minutes().collect();
        let mut hours = [ByClass::default(); 24];
        let mut weekdays = [ByClass::default(); 7];
        for &(minute, counts) in &minutes {
            let hour = minute.div_euclid(60);
            // 1970-01-01 was a Thursday: day 0 is weekday 3 counted from Monday.
            let weekday = (hour.div_euclid(24) + 3).rem_euclid(7);
            let add = |slot: &mut ByClass| slot.iter_mut().zip(counts).for_each(|(s, n)| *s += n);
            add(&mut hours[hour.rem_euclid(24) as usize]);
            add(&mut weekdays[weekday as usize]);
        }
        let visitors_on: rustc_hash::FxHashMap<i64, u64> = self.days.into_iter().collect();
        let zone = &query.zone;
        let (_, per_day, _) =
            traffic_buckets(minutes.iter().copied(), (range, zone), Some(Bucket::Day));
        let days = per_day
            .into_iter()
            .map(|(start, counts)| DayRow {
                day: day_text(start),
                hits: counts.iter().sum(),
                visitors: visitors_on
                    .get(&start.div_euclid(86_400))
                    .copied()
                    .unwrap_or(0),
            })
            .collect();
        let (bucket, buckets, traffic_gaps) =
            traffic_buckets(minutes.into_iter(), (range, zone), bucket);
        let traffic = buckets
            .into_iter()
            .map(|(start, counts)| TrafficRow {
                start: query.zone.show(start),
                counts,
            })
            .collect();

        let mut filters = query.filters.describe();
        let rejects_escape_filters = !filters.is_empty();
        filters.extend(self.store_filters);
        Report {
            filters,
            rejects_escape_filters,
            zone: query.zone.name(),
            summary: SummaryStats {
                requests,
                visitors: self.visitors,
                distinct_ips,
                bytes: totals.bytes,
                first: totals.first.map(|t| query.zone.show(t)),
                last: totals.last.map(|t| query.zone.show(t)),
                client_errors: classes[class_index(400)],
                server_errors: classes[class_index(500)],
                crawler_requests: groups.crawlers.hits,
                crawler_visitors: groups.crawlers.visitors,
            },
            status,
            classes,
            urls,
            pages,
            statics,
            not_found,
            clients,
            agents,
            browsers: groups.browsers,
            systems: groups.systems,
            devices: groups.devices,
            referrers,
            sites,
            methods,
            hosts,
            bucket,
            traffic,
            traffic_gaps,
            days,
            hours,
            weekdays,
            rejects,
            times,
            top,
        }
    }
}

/// The times report: all requests that have a time, and the URLs that took longest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimesReport {
    pub all: TimeStats,
    /// The first URLs by p95, then by total time, each with its stats.
    pub slowest: Vec<(String, TimeStats)>,
    pub most_time: Vec<(String, TimeStats)>,
}

impl TimesReport {
    fn of(all: Times, urls: Vec<(Box<str>, Times)>, top: usize) -> TimesReport {
        let urls: Vec<(Box<str>, TimeStats)> =
            urls.into_iter().map(|(url, t)| (url, t.stats())).collect();
        let first = |by: fn(&TimeStats) -> u64| -> Vec<(String, TimeStats)> {
            top_of(urls.iter().collect(), top, |e| (by(&e.1), &*e.0))
                .into_iter()
                .map(|(url, stats)| (url.to_string(), *stats))
                .collect()
        };
        TimesReport {
            all: all.stats(),
            slowest: first(|s| s.p95_us),
            most_time: first(|s| s.total_us),
        }
    }
}

/// The user agents grouped by what [`crate::agent::classify`] makes of them.
#[derive(Default)]
struct AgentGroups {
    browsers: Vec<Ranked>,
    systems: Vec<Ranked>,
    devices: Vec<Ranked>,
    /// The hits and visitors of all crawlers.
    crawlers: Ranked,
}

/// Classifies each distinct agent once (`hits` has each once; `visitors` the same agents)
/// and adds up the hits and visitors of each browser, OS and device class.
fn agent_groups(hits: &[(Box<str>, u64)], visitors: &[(Box<str>, u64)], top: usize) -> AgentGroups {
    let visitors: rustc_hash::FxHashMap<&str, u64> =
        visitors.iter().map(|(k, n)| (&**k, *n)).collect();
    type Sums = rustc_hash::FxHashMap<String, (u64, u64)>;
    let (mut browsers, mut systems, mut devices) =
        (Sums::default(), Sums::default(), Sums::default());
    let mut crawlers = Ranked::hits("crawlers".into(), 0);
    for (agent, n) in hits {
        let seen = visitors.get(&**agent).copied().unwrap_or(0);
        let class = crate::agent::classify(agent);
        for (sums, key) in [
            (&mut browsers, &*class.browser),
            (&mut systems, &*class.os),
            (&mut devices, class.device.name()),
        ] {
            let sum = sums.entry(key.to_string()).or_default();
            (sum.0, sum.1) = (sum.0 + n, sum.1 + seen);
        }
        if class.crawler {
            crawlers.hits += n;
            crawlers.visitors += seen;
        }
    }
    let rank = |sums: Sums| {
        let rows = sums.into_iter().map(|(key, (hits, visitors))| Ranked {
            visitors,
            ..Ranked::hits(key, hits)
        });
        ranked(rows, top)
    };
    AgentGroups {
        browsers: rank(browsers),
        systems: rank(systems),
        // Five classes at most: never cut.
        devices: ranked(
            devices.into_iter().map(|(key, (hits, visitors))| Ranked {
                visitors,
                ..Ranked::hits(key, hits)
            }),
            usize::MAX,
        ),
        crawlers,
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
    (range, zone): (Option<(i64, i64)>, &Zone),
    requested: Option<Bucket>,
) -> (Bucket, std::collections::BTreeMap<i64, [u64; N]>, bool) {
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
    let fill = rows(bucket) <= MAX_TRAFFIC_ROWS;
    if let Some((&first, &last)) = ends
        && fill
    {
        // Not a bucket the zone's clocks never show (the hour skipped in spring): it would
        // look like an outage.
        let shown = |start: i64| zone.shows(start) || zone.shows(start + step - 1);
        for start in (first..last).step_by(step as usize).skip(1) {
            if shown(start) {
                buckets.entry(start).or_insert([0; N]);
            }
        }
    }
    // Starts are the zone's own seconds: an hour shown twice in autumn is one bucket, right
    // after the one before it.
    let next = buckets.keys().skip(1);
    let gaps = !fill && buckets.keys().zip(next).any(|(a, b)| b - a > step);
    (bucket, buckets, gaps)
}

/// Sorted in [`count::rank_order`] and cut to `top`.
fn ranked(items: impl Iterator<Item = Ranked>, top: usize) -> Vec<Ranked> {
    top_of(items.collect(), top, |r| (r.hits, &r.key))
}

/// The first `top` of `all` in [`count::rank_order`] of their `(hits, key)`, sorted.
fn top_of<T>(mut all: Vec<T>, top: usize, rank: impl Fn(&T) -> (u64, &str)) -> Vec<T> {
    let order = |a: &T, b: &T| {
        let ((hits_a, key_a), (hits_b, key_b)) = (rank(a), rank(b));
        count::rank_order((hits_a, hits_b), (key_a.as_bytes(), key_b.as_bytes()))
    };
    if all.len() > top {
        all.select_nth_unstable_by(top, order);
        all.truncate(top);
    }
    all.sort_unstable_by(order);
    all
}

/// The day of a time (in the zone it was shifted to), `2024-01-05`.
fn day_text(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0).map_or_else(
        || secs.div_euclid(86_400).to_string(),
        |t| t.format("%Y-%m-%d").to_string(),
    )
}

/// One line of a ranking.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ranked {
    pub key: String,
    pub hits: u64,
    /// Only for URLs.
    pub bytes: u64,
    /// Only for URLs and groups of user agents: unique visitors.
    pub visitors: u64,
}

impl Ranked {
    /// A line that has only hits.
    fn hits(key: String, hits: u64) -> Ranked {
        Ranked {
            key,
            hits,
            bytes: 0,
            visitors: 0,
        }
    }
}

/// The URLs of one kind (pages, or static files): how many requests they had, and the top
/// of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlGroup {
    pub requests: u64,
    pub rows: Vec<Ranked>,
}

/// One day: its hits and its unique visitors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRow {
    /// `2024-01-05`.
    pub day: String,
    pub hits: u64,
    pub visitors: u64,
}

/// The names of the days of the week, in the order of [`Report::weekdays`].
pub const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

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
    /// Requests and unique visitors whose user agent is a crawler's ([`crate::agent`]).
    pub crawler_requests: u64,
    pub crawler_visitors: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficRow {
    pub start: String,
    /// By class, in [`CLASSES`] order.
    pub counts: ByClass,
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
    /// Some filter was given that rejected lines, which hold no request, escape (all but the
    /// store's own, such as a ClickHouse store's `--host`).
    pub rejects_escape_filters: bool,
    /// The zone of its days, hours and times ([`crate::zone::Zone::name`]).
    pub zone: String,
    pub summary: SummaryStats,
    pub status: Vec<(u16, u64)>,
    /// By class, in [`CLASSES`] order.
    pub classes: ByClass,
    pub urls: Vec<Ranked>,
    pub pages: UrlGroup,
    pub statics: UrlGroup,
    pub not_found: Vec<Ranked>,
    pub clients: Vec<Ranked>,
    pub agents: Vec<Ranked>,
    /// The agents grouped by browser family, OS and device class, with their visitors.
    pub browsers: Vec<Ranked>,
    pub systems: Vec<Ranked>,
    pub devices: Vec<Ranked>,
    pub referrers: Vec<Ranked>,
    pub sites: Vec<Ranked>,
    pub methods: Vec<Ranked>,
    /// Hits per host, of a store that keeps several (ClickHouse).
    pub hosts: Vec<Ranked>,
    pub bucket: Bucket,
    pub traffic: Vec<TrafficRow>,
    /// Buckets between the first and the last are left out: there would be more than
    /// [`MAX_TRAFFIC_ROWS`] (only those with requests are rows).
    pub traffic_gaps: bool,
    /// Every day from the first to the last (as the traffic report fills them in).
    pub days: Vec<DayRow>,
    /// Hits by hour of the day (0 to 23) and by class, in UTC.
    pub hours: [ByClass; 24],
    /// Hits by day of the week ([`WEEKDAYS`]) and by class, in UTC.
    pub weekdays: [ByClass; 7],
    /// Every reason, most lines first.
    pub rejects: Vec<RejectGroup>,
    pub times: TimesReport,
    pub top: usize,
}

impl Report {
    /// "Top 10 URLs", or "All URLs" for rankings that were not cut (`--top 0`).
    pub fn ranking_title(&self, what: &str) -> String {
        match self.top {
            usize::MAX => format!("All {what}"),
            top => format!("Top {top} {what}"),
        }
    }

    /// "Response times (1,101 of 1,102 requests)": the requests with a time, of all.
    pub fn times_title(&self) -> String {
        format!(
            "Response times ({} of {})",
            crate::human::count(self.times.all.count),
            crate::human::counted(self.summary.requests, "request")
        )
    }

    /// What the times report says when a percentile it shows may be approximate. A URL with
    /// more times than are kept exactly puts all requests past that limit too, so the stats
    /// of all requests tell for every row.
    pub fn times_note(&self) -> Option<String> {
        (!self.times.all.exact).then(|| {
            format!(
                "Percentiles of more than {} requests are within 1%.",
                crate::human::count(times::EXACT as u64)
            )
        })
    }

    /// The pages or the static files (`section`), titled with their share of the requests:
    /// "Top 10 pages (4,282 requests, 42.8%)".
    pub fn url_group(&self, section: Section) -> (String, &UrlGroup) {
        let (what, group) = match section {
            Section::Static => ("static files", &self.statics),
            _ => ("pages", &self.pages),
        };
        let title = format!(
            "{} ({} requests, {}%)",
            self.ranking_title(what),
            crate::human::count(group.requests),
            percent(group.requests, self.summary.requests)
        );
        (title, group)
    }
}

/// What the times report says of a log without times.
pub const NO_TIMES: &str =
    "(none: the log's format records no time, as nginx's $request_time or Apache's %D do)";

/// `part` of `whole` as a percentage with one decimal, computed in integers so that the text
/// is the same on every platform.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0.0".into();
    }
    let tenths = (u128::from(part) * 1000 + u128::from(whole) / 2) / u128::from(whole);
    format!("{}.{}", tenths / 10, tenths % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_rounds_half_up_in_integers() {
        assert_eq!(percent(1, 3), "33.3");
        assert_eq!(percent(2, 3), "66.7");
        assert_eq!(percent(1, 2000), "0.1");
        assert_eq!(percent(0, 0), "0.0");
        assert_eq!(percent(5, 5), "100.0");
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

    #[test]
    fn informational_answers_have_a_class_of_their_own() {
        for (status, class) in [
            (101, "1xx"),
            (200, "2xx"),
            (304, "3xx"),
            (404, "4xx"),
            (503, "5xx"),
            (999, "other"),
            (0, "other"),
        ] {
            assert_eq!(CLASSES[class_index(status)], class, "{status}");
        }
        let mut counts = Counts::default();
        for (t, status) in [(0, 101), (60, 101), (120, 404), (180, 999), (240, 500)] {
            counts.totals.add(t, status, 0);
        }
        let query = Query {
            top: 10,
            ..Query::all()
        };
        let report = counts.into_report(&query, Some(Bucket::Minute));
        let class = |name: &str| report.classes[CLASSES.iter().position(|c| *c == name).unwrap()];
        assert_eq!(
            (class("1xx"), class("4xx"), class("5xx"), class("other")),
            (2, 1, 1, 1)
        );
        assert_eq!(
            (report.summary.client_errors, report.summary.server_errors),
            (1, 1)
        );
        let per_minute: Vec<u64> = report
            .traffic
            .iter()
            .map(|t| t.counts[class_index(101)])
            .collect();
        assert_eq!(per_minute, [1, 1, 0, 0, 0]);
    }
}
