//! Reports: one [`Report`] model, counted in one pass from any store, rendered three ways.
//!
//! The stores' readers ([`crate::read`]) only turn what they hold into rows or hits; filtering
//! ([`filter`]), counting ([`count`]), the parallel fan-out ([`shard`]), ranking and bucketing
//! ([`Counts::into_report`]) are this module's, once, which is what makes the outputs of
//! `aggregate-csv` and `aggregate-db` byte-identical. Memory grows with the number of distinct
//! keys the chosen reports need (URLs, clients, agents, visitors), never with the number of rows.

pub mod count;
pub mod csv;
pub mod filter;
pub mod json;
pub mod shard;
pub mod table;
mod visits;

use chrono::DateTime;

use crate::entry::Rfc3339;
pub use count::{CLASSES, Counts, Wants, class_index};
pub use filter::{Filters, StatusFilter, parse_time_arg};

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

/// What a report run asks of a store: which entries count, which reports, on how many
/// threads.
#[derive(Debug, Clone)]
pub struct Query {
    pub filters: Filters,
    /// The reports to compute; nothing another report alone needs is counted.
    pub sections: Vec<Section>,
    /// Counting threads (see [`shard`]).
    pub threads: usize,
}

impl Query {
    /// Every report, no filter, one counting thread per core.
    pub fn all() -> Query {
        Query {
            filters: Filters::default(),
            sections: Section::ALL.to_vec(),
            threads: shard::default_threads(),
        }
    }

    /// What must be counted for the chosen reports.
    pub fn wants(&self) -> Wants {
        let mut wants = Wants::default();
        for section in &self.sections {
            match section {
                Section::Summary => {
                    wants.visits = true;
                    wants.clients = true;
                }
                Section::Status | Section::Traffic => {}
                Section::Urls => {
                    wants.urls = true;
                    wants.visits = true;
                }
                Section::NotFound => wants.urls = true,
                Section::Clients => wants.clients = true,
                Section::Agents => wants.agents = true,
                Section::Referrers => wants.referrers = true,
                Section::Methods => wants.methods = true,
            }
        }
        wants
    }
}

impl Counts {
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

        let span = match (totals.first, totals.last) {
            (Some(f), Some(l)) => l - f,
            _ => 0,
        };
        let bucket = bucket.unwrap_or_else(|| Bucket::for_span(span));
        let mut buckets: std::collections::BTreeMap<i64, [u64; 5]> =
            std::collections::BTreeMap::new();
        for (minute, counts) in totals.minutes() {
            let start = (minute * 60).div_euclid(bucket.seconds()) * bucket.seconds();
            let slot = buckets.entry(start).or_insert([0; 5]);
            for (s, c) in slot.iter_mut().zip(counts) {
                *s += c;
            }
        }
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
}
