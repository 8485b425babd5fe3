//! The CSV renderer: every section as rows of one table, told apart by a `report` column.
//!
//! Columns: `report,key,value,percent,bytes,visitors,2xx,3xx,4xx,5xx`; a column that does not
//! apply to a section is empty. Quoting is the csv crate's, so any value round-trips.
//!
//! The times report does not fit these columns: its stats of all requests are rows of
//! `times` keyed by the stat's name, and its rankings rows of `times-p95-us` and
//! `times-total-us` keyed by URL, each with the time it is ranked by.

use super::{ByClass, CLASSES, Report, Section, WEEKDAYS, percent};

type Writer = csv::Writer<Vec<u8>>;

/// The classes that have a column, found in [`CLASSES`] by name: the columns stay the same
/// whatever other classes (1xx, other) the counts hold, whose hits are in `value` only.
const COLUMN_CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

fn row(w: &mut Writer, fields: [&str; 10]) {
    w.write_record(fields).expect("writing to memory");
}

/// A row of a ranking or a status count: key, hits and share, other columns empty.
fn counted(w: &mut Writer, name: &str, key: &str, hits: u64, total: u64) {
    row(
        w,
        [
            name,
            key,
            &hits.to_string(),
            &percent(hits, total),
            "",
            "",
            "",
            "",
            "",
            "",
        ],
    );
}

/// A row of hits split by class (a traffic bucket, an hour, a weekday), with its share of
/// `total` when it has one.
fn by_class(w: &mut Writer, name: &str, key: &str, counts: &ByClass, total: Option<u64>) {
    let hits: u64 = counts.iter().sum();
    let share = total.map(|t| percent(hits, t)).unwrap_or_default();
    let [c2, c3, c4, c5] = COLUMN_CLASSES.map(|class| {
        (CLASSES.iter().zip(counts.iter()))
            .find(|(c, _)| **c == class)
            .map_or(0, |(_, &n)| n)
            .to_string()
    });
    row(
        w,
        [
            name,
            key,
            &hits.to_string(),
            &share,
            "",
            "",
            &c2,
            &c3,
            &c4,
            &c5,
        ],
    );
}

/// Renders the chosen sections as CSV.
pub fn render(report: &Report, sections: &[Section]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let w = &mut writer;
    let total = report.summary.requests;
    row(
        w,
        [
            "report", "key", "value", "percent", "bytes", "visitors", "2xx", "3xx", "4xx", "5xx",
        ],
    );
    for section in sections {
        let name = section.name();
        match section {
            Section::Summary => {
                let s = &report.summary;
                let p4 = percent(s.client_errors, total);
                let p5 = percent(s.server_errors, total);
                let pc = percent(s.crawler_requests, total);
                let values = [
                    ("requests", s.requests.to_string(), ""),
                    ("unique_visitors", s.visitors.to_string(), ""),
                    ("client_ips", s.distinct_ips.to_string(), ""),
                    ("bytes", s.bytes.to_string(), ""),
                    ("first", s.first.clone().unwrap_or_default(), ""),
                    ("last", s.last.clone().unwrap_or_default(), ""),
                    ("4xx", s.client_errors.to_string(), p4.as_str()),
                    ("5xx", s.server_errors.to_string(), p5.as_str()),
                    (
                        "crawler_requests",
                        s.crawler_requests.to_string(),
                        pc.as_str(),
                    ),
                    ("crawler_visitors", s.crawler_visitors.to_string(), ""),
                ];
                for (k, v, p) in &values {
                    row(w, [name, k, v, p, "", "", "", "", "", ""]);
                }
            }
            Section::Status => {
                for &(code, hits) in &report.status {
                    counted(w, name, &code.to_string(), hits, total);
                }
                for (class, hits) in CLASSES.iter().zip(report.classes) {
                    counted(w, name, class, hits, total);
                }
            }
            Section::Browsers | Section::Os | Section::Devices => {
                let rows = match section {
                    Section::Browsers => &report.browsers,
                    Section::Os => &report.systems,
                    _ => &report.devices,
                };
                for r in rows {
                    let (hits, visitors) = (r.hits.to_string(), r.visitors.to_string());
                    let share = percent(r.hits, total);
                    row(
                        w,
                        [name, &r.key, &hits, &share, "", &visitors, "", "", "", ""],
                    );
                }
            }
            Section::Urls | Section::Pages | Section::Static => {
                let rows = match section {
                    Section::Urls => &report.urls,
                    Section::Pages => &report.pages.rows,
                    _ => &report.statics.rows,
                };
                for r in rows {
                    let (hits, bytes, visitors) = (
                        r.hits.to_string(),
                        r.bytes.to_string(),
                        r.visitors.to_string(),
                    );
                    row(
                        w,
                        [
                            name,
                            &r.key,
                            &hits,
                            &percent(r.hits, total),
                            &bytes,
                            &visitors,
                            "",
                            "",
                            "",
                            "",
                        ],
                    );
                }
            }
            Section::NotFound
            | Section::Clients
            | Section::Agents
            | Section::Referrers
            | Section::Sites
            | Section::Methods
            | Section::Hosts => {
                let rows = match section {
                    Section::NotFound => &report.not_found,
                    Section::Clients => &report.clients,
                    Section::Agents => &report.agents,
                    Section::Referrers => &report.referrers,
                    Section::Sites => &report.sites,
                    Section::Hosts => &report.hosts,
                    _ => &report.methods,
                };
                for r in rows {
                    counted(w, name, &r.key, r.hits, total);
                }
            }
            Section::Traffic => {
                for t in &report.traffic {
                    by_class(w, name, &t.start, &t.counts, None);
                }
            }
            Section::Hours => {
                for (hour, counts) in report.hours.iter().enumerate() {
                    by_class(w, name, &format!("{hour:02}"), counts, Some(total));
                }
            }
            Section::Weekdays => {
                for (day, counts) in WEEKDAYS.iter().zip(&report.weekdays) {
                    by_class(w, name, day, counts, Some(total));
                }
            }
            Section::Rejects => {
                // The samples are in the table and JSON outputs: a CSV column of raw lines
                // would be empty in every other report.
                let lines: u64 = report.rejects.iter().map(|r| r.lines).sum();
                for r in &report.rejects {
                    counted(w, name, &r.reason, r.lines, lines);
                }
            }
            Section::Times => {
                // The stats of all requests, one per row; then each URL of the two rankings
                // with what it is ranked by (the other stats are in the table and JSON outputs).
                let all = &report.times.all;
                for (key, value) in [
                    ("requests", all.count),
                    ("mean_us", all.mean_us),
                    ("p50_us", all.p50_us),
                    ("p95_us", all.p95_us),
                    ("p99_us", all.p99_us),
                    ("max_us", all.max_us),
                    ("total_us", all.total_us),
                ] {
                    row(
                        w,
                        [name, key, &value.to_string(), "", "", "", "", "", "", ""],
                    );
                }
                for (url, s) in &report.times.slowest {
                    row(
                        w,
                        [
                            "times-p95-us",
                            url,
                            &s.p95_us.to_string(),
                            "",
                            "",
                            "",
                            "",
                            "",
                            "",
                            "",
                        ],
                    );
                }
                for (url, s) in &report.times.most_time {
                    counted(w, "times-total-us", url, s.total_us, all.total_us);
                }
            }
            Section::Days => {
                for d in &report.days {
                    let (hits, visitors) = (d.hits.to_string(), d.visitors.to_string());
                    row(w, [name, &d.day, &hits, "", "", &visitors, "", "", "", ""]);
                }
            }
        }
    }
    writer.into_inner().expect("writing to memory")
}
