//! The JSON renderer: one document with a stable schema (documented in the README).
//!
//! Keys appear only for the sections asked for. Percentages are numbers with one decimal,
//! derived from the same integer computation as the other renderers.

use serde_json::{Map, Value, json};

use super::{ByClass, CLASSES, Ranked, Report, Section, TrafficRow, WEEKDAYS, percent};

fn pct(part: u64, whole: u64) -> Value {
    percent(part, whole)
        .parse::<f64>()
        .map_or(Value::Null, |p| json!(p))
}

fn ranking(rows: &[Ranked], total: u64, key: &str) -> Value {
    rows.iter()
        .map(|r| json!({ key: r.key, "hits": r.hits, "percent": pct(r.hits, total) }))
        .collect()
}

/// A traffic row: its start, its hits, and the hits of each class under the class's name
/// (`2xx` ... `other`), whatever classes [`CLASSES`] holds.
fn traffic_row(t: &TrafficRow) -> Value {
    let mut row = Map::new();
    row.insert("start".into(), json!(t.start));
    row.insert("hits".into(), json!(t.total()));
    for (class, n) in CLASSES.iter().zip(t.counts.iter()) {
        row.insert((*class).into(), json!(n));
    }
    Value::Object(row)
}

fn with_visitors(rows: &[Ranked], total: u64, key: &str) -> Value {
    rows.iter()
        .map(|r| json!({ key: r.key, "hits": r.hits, "percent": pct(r.hits, total), "visitors": r.visitors }))
        .collect()
}

fn url_row(r: &Ranked, total: u64) -> Value {
    json!({"url": r.key, "hits": r.hits, "percent": pct(r.hits, total), "bytes": r.bytes, "visitors": r.visitors})
}

/// A row of hits by class: `{key: name, "hits", "percent", "1xx", ...}`.
fn by_class(key: &str, name: Value, counts: &ByClass, total: u64) -> Value {
    let hits: u64 = counts.iter().sum();
    let mut row = Map::new();
    row.insert(key.into(), name);
    row.insert("hits".into(), json!(hits));
    row.insert("percent".into(), json!(pct(hits, total)));
    for (class, n) in CLASSES.iter().zip(counts) {
        row.insert((*class).into(), json!(n));
    }
    Value::Object(row)
}

/// Renders the chosen sections as one JSON document (and a newline).
pub fn render(report: &Report, sections: &[Section]) -> Vec<u8> {
    let total = report.summary.requests;
    let mut doc = Map::new();
    let filters: Map<String, Value> = report
        .filters
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    doc.insert("filters".into(), Value::Object(filters));
    doc.insert("time_zone".into(), json!(report.zone));
    for section in sections {
        let value = match section {
            Section::Summary => {
                let s = &report.summary;
                json!({
                    "requests": s.requests,
                    "unique_visitors": s.visitors,
                    "client_ips": s.distinct_ips,
                    "bytes": s.bytes,
                    "first": s.first,
                    "last": s.last,
                    "percent_4xx": pct(s.client_errors, total),
                    "percent_5xx": pct(s.server_errors, total),
                    "crawler_requests": s.crawler_requests,
                    "crawler_visitors": s.crawler_visitors,
                    "percent_crawlers": pct(s.crawler_requests, total),
                })
            }
            Section::Status => json!({
                "codes": report.status.iter().map(|&(code, hits)| json!({"status": code, "hits": hits, "percent": pct(hits, total)})).collect::<Vec<_>>(),
                "classes": CLASSES.iter().zip(report.classes).map(|(class, hits)| json!({"class": class, "hits": hits, "percent": pct(hits, total)})).collect::<Vec<_>>(),
            }),
            Section::Urls => report.urls.iter().map(|r| url_row(r, total)).collect(),
            Section::NotFound => ranking(&report.not_found, total, "url"),
            Section::Clients => ranking(&report.clients, total, "ip"),
            Section::Agents => ranking(&report.agents, total, "user_agent"),
            Section::Referrers => ranking(&report.referrers, total, "referrer"),
            Section::Methods => ranking(&report.methods, total, "method"),
            Section::Hosts => ranking(&report.hosts, total, "host"),
            Section::Pages | Section::Static => {
                let group = match section {
                    Section::Pages => &report.pages,
                    _ => &report.statics,
                };
                json!({
                    "requests": group.requests,
                    "percent": pct(group.requests, total),
                    "rows": group.rows.iter().map(|r| url_row(r, total)).collect::<Vec<_>>(),
                })
            }
            Section::Sites => ranking(&report.sites, total, "site"),
            Section::Browsers => with_visitors(&report.browsers, total, "browser"),
            Section::Os => with_visitors(&report.systems, total, "os"),
            Section::Devices => with_visitors(&report.devices, total, "device"),
            Section::Rejects => {
                let lines: u64 = report.rejects.iter().map(|r| r.lines).sum();
                json!({
                    "lines": lines,
                    "reasons": report.rejects.iter().map(|r| json!({
                        "reason": r.reason,
                        "lines": r.lines,
                        "percent": pct(r.lines, lines),
                        "sample": {"source": r.source, "line": r.line, "text": r.sample},
                    })).collect::<Vec<_>>(),
                })
            }
            Section::Days => report
                .days
                .iter()
                .map(|d| json!({"day": d.day, "hits": d.hits, "visitors": d.visitors}))
                .collect(),
            Section::Hours => (report.hours.iter().enumerate())
                .map(|(hour, counts)| by_class("hour", json!(hour), counts, total))
                .collect(),
            Section::Weekdays => (WEEKDAYS.iter().zip(&report.weekdays))
                .map(|(day, counts)| by_class("weekday", json!(day), counts, total))
                .collect(),
            Section::Times => {
                let t = &report.times;
                let url_row = |(url, stats): &(String, super::times::TimeStats)| {
                    let mut row = json!({"url": url});
                    row.as_object_mut()
                        .expect("an object")
                        .extend(stats_object(stats));
                    row
                };
                json!({
                    "requests": total,
                    "all": stats_object(&t.all),
                    "slowest_by_p95": t.slowest.iter().map(url_row).collect::<Vec<_>>(),
                    "by_total_time": t.most_time.iter().map(url_row).collect::<Vec<_>>(),
                })
            }
            Section::Traffic => json!({
                "bucket": report.bucket.name(),
                "rows": report.traffic.iter().map(traffic_row).collect::<Vec<_>>(),
            }),
        };
        doc.insert(section.name().replace('-', "_"), value);
    }
    let mut out = serde_json::to_vec_pretty(&Value::Object(doc)).expect("JSON values serialise");
    out.push(b'\n');
    out
}

/// The fields of some requests' time stats, in microseconds; `exact` says whether the
/// percentiles are (see [`super::times`]).
fn stats_object(stats: &super::times::TimeStats) -> Map<String, Value> {
    match serde_json::to_value(stats).expect("plain numbers serialise") {
        Value::Object(fields) => fields,
        _ => unreachable!("a struct serialises as an object"),
    }
}
