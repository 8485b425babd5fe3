//! The HTML renderer (`--format html`): one self-contained page to open from a file or share.
//! Inline CSS, charts as inline SVG drawn here, no script, no font and nothing fetched, so it
//! opens without a network and reads the same with JavaScript off; light or dark as the
//! reader's system prefers, and plain on paper.
//!
//! Log fields are written by strangers. Every value from a log goes through [`text`], which
//! escapes it for text and attributes alike (and shows control and bidi characters as the
//! tables do); nothing from a log becomes a link; and the page's Content-Security-Policy
//! allows no script at all. A `<script>` in a user agent is shown, never run.
//!
//! Numbers are shown with separators and carried bare in `data-v`, so that a test (or a
//! scraper) reads the same numbers as `--format json`.

use std::fmt::Write;

use super::table::safe;
use super::{ByClass, CLASSES, Ranked, Report, Section, WEEKDAYS, class_index, percent};
use crate::human::{bytes, count, duration_us};

/// The longest value shown, in characters: a URL can be a megabyte long.
const MAX_VALUE: usize = 300;

/// No script may run, no resource may load: only the page's own styles, and images written
/// into it.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                   base-uri 'none'; form-action 'none'";

/// The live page's ([`Page::Live`]): the same, and the one script its server sends, which
/// fetches the report from that server.
pub const LIVE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                            script-src 'self'; connect-src 'self'; base-uri 'none'; \
                            form-action 'none'";

/// What the page is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// A file: no script at all.
    File,
    /// Served by `aggregate-db --serve`: its script (`/live.js`) replaces the report in place
    /// as the database grows.
    Live,
}

const STYLE: &str = r#"
:root { --fg: #1d2125; --muted: #5f6b76; --bg: #ffffff; --panel: #f4f6f8; --line: #d9dee3;
  --bar: #4f7cac; --c1xx: #8d6cab; --c2xx: #3d9a5b; --c3xx: #3a8fb7; --c4xx: #d19a1d;
  --c5xx: #cf4a3c; --cother: #8a8f94; color-scheme: light dark; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e3e6e9; --muted: #9aa5b0; --bg: #16191c; --panel: #1f2327; --line: #343a40;
    --bar: #6f9bd1; }
}
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1200px; padding: 1.5rem; background: var(--bg);
  color: var(--fg); font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.1rem; margin: 0 0 .5rem; }
.meta { color: var(--muted); margin: 0 0 1rem; }
section { background: var(--panel); border: 1px solid var(--line); border-radius: 6px;
  padding: 1rem; margin: 0 0 1rem; break-inside: avoid; overflow-x: auto; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr));
  gap: .5rem; }
.tile { background: var(--bg); border: 1px solid var(--line); border-radius: 4px;
  padding: .5rem; }
.tile .k { display: block; color: var(--muted); font-size: .8rem; }
.tile .v { display: block; font-size: 1.2rem; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .15rem .5rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.key { word-break: break-all; }
td.bar { width: 22%; min-width: 80px; }
.bar > span { display: inline-block; height: .8rem; background: var(--bar); }
.stack { display: flex; height: .8rem; }
.stack span { display: block; height: 100%; }
.c1xx { background: var(--c1xx); fill: var(--c1xx); }
.c2xx { background: var(--c2xx); fill: var(--c2xx); }
.c3xx { background: var(--c3xx); fill: var(--c3xx); }
.c4xx { background: var(--c4xx); fill: var(--c4xx); }
.c5xx { background: var(--c5xx); fill: var(--c5xx); }
.cother { background: var(--cother); fill: var(--cother); }
.legend span { display: inline-block; width: .8rem; height: .8rem; margin: 0 .25rem 0 .75rem;
  vertical-align: middle; }
svg.chart { width: 100%; height: 220px; display: block; }
svg.chart text { fill: var(--muted); font-size: 11px; }
.sample { color: var(--muted); font-family: ui-monospace, monospace; word-break: break-all; }
@media print {
  body { max-width: none; padding: 0; background: #fff; color: #000; }
  section { border: none; background: none; padding: 0; }
}
"#;

/// `value` for HTML text or a quoted attribute: control and bidi characters shown escaped
/// (as in the tables), cut to `max` characters, and `& < > " '` as entities.
fn text(value: &str, max: usize) -> String {
    let shown = safe(value, max);
    let mut out = String::with_capacity(shown.len());
    for c in shown.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number cell: shown with separators, bare in `data-v`.
fn num(n: u64) -> String {
    format!(r#"<td class="n" data-v="{n}">{}</td>"#, count(n))
}

/// A share: `12.5`, in a number cell.
fn share(part: u64, whole: u64) -> String {
    format!(r#"<td class="n">{}</td>"#, percent(part, whole))
}

/// A bar as wide as `part` is of `whole`.
fn bar(part: u64, whole: u64) -> String {
    let width = match whole {
        0 => 0.0,
        w => part as f64 * 100.0 / w as f64,
    };
    format!(r#"<td class="bar"><span style="width:{width:.1}%"></span></td>"#)
}

/// A bar split by status class, as long as the row's hits are of `peak`.
fn stacked(counts: &ByClass, peak: u64) -> String {
    let mut cell = String::from(r#"<td class="bar"><div class="stack">"#);
    for (class, &n) in CLASSES.iter().zip(counts) {
        if n > 0 && peak > 0 {
            let width = n as f64 * 100.0 / peak as f64;
            let _ = write!(
                cell,
                r#"<span class="c{class}" style="width:{width:.2}%"></span>"#
            );
        }
    }
    cell.push_str("</div></td>");
    cell
}

fn open(out: &mut String, id: &str, title: &str) {
    let _ = write!(out, r#"<section id="{id}"><h2>{}</h2>"#, text(title, 200));
}

/// Renders the chosen sections as one HTML page.
pub fn render(report: &Report, sections: &[Section]) -> Vec<u8> {
    page(report, sections, Page::File).into_bytes()
}

/// The whole page: head, styles, and the report in `<main id="report">`.
pub fn page(report: &Report, sections: &[Section], kind: Page) -> String {
    let (csp, script) = match kind {
        Page::File => (CSP, ""),
        Page::Live => (LIVE_CSP, r#"<script src="/live.js" defer></script>"#),
    };
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>log-pipeline report</title><style>{STYLE}</style>{script}</head>
<body><main id="report">{}</main></body></html>
"#,
        body(report, sections)
    )
}

/// The report itself, which the live page replaces in place.
pub fn body(report: &Report, sections: &[Section]) -> String {
    let mut out = String::with_capacity(64 << 10);
    let _ = write!(
        out,
        r#"<header><h1>log-pipeline report</h1><p class="meta">Times in <span id="zone">{}</span>"#,
        text(&report.zone, 60)
    );
    for (k, v) in &report.filters {
        let _ = write!(out, " · {}={}", text(k, 40), text(v, 200));
    }
    out.push_str("</p></header>\n");
    let total = report.summary.requests;
    if total == 0 {
        let filtered = !report.filters.is_empty();
        let _ = write!(
            out,
            r#"<section id="empty"><p>No log entries{}.</p></section>"#,
            if filtered { " match the filters" } else { "" }
        );
    }
    for section in sections {
        if total == 0 && *section != Section::Rejects {
            continue;
        }
        let id = section.name();
        if let Some((heading, rows, label, columns)) = ranking_of(report, *section) {
            ranked(&mut out, id, &heading, rows, total, label, columns);
            continue;
        }
        match section {
            Section::Summary => summary(&mut out, report),
            Section::Status => status(&mut out, report),
            Section::Traffic => traffic(&mut out, report),
            Section::Days => days(&mut out, report),
            Section::Hours => {
                let rows: Vec<(String, &ByClass)> = (report.hours.iter().enumerate())
                    .map(|(hour, counts)| (format!("{hour:02}"), counts))
                    .collect();
                let heading = format!("Hits by hour of day ({})", report.zone);
                by_class(&mut out, id, &heading, "hour", &rows, total);
            }
            Section::Weekdays => {
                let rows: Vec<(String, &ByClass)> = (WEEKDAYS.iter().zip(&report.weekdays))
                    .map(|(day, counts)| (day.to_string(), counts))
                    .collect();
                let heading = format!("Hits by day of week ({})", report.zone);
                by_class(&mut out, id, &heading, "day", &rows, total);
            }
            Section::Rejects => rejects(&mut out, report),
            Section::Times => times(&mut out, report),
            // The rankings, above.
            _ => {}
        }
    }
    out
}

fn summary(out: &mut String, report: &Report) {
    let s = &report.summary;
    let total = s.requests;
    open(out, "summary", "Summary");
    out.push_str(r#"<div class="tiles">"#);
    let tile = |out: &mut String, id: &str, label: &str, value: String, bare: String| {
        let _ = write!(
            out,
            r#"<div class="tile" id="summary-{id}" data-v="{}"><span class="k">{label}</span><span class="v">{}</span></div>"#,
            text(&bare, 60),
            text(&value, 60)
        );
    };
    for (id, label, n) in [
        ("requests", "requests", s.requests),
        ("unique-visitors", "unique visitors", s.visitors),
        ("client-ips", "client IPs", s.distinct_ips),
        ("crawler-visitors", "crawler visitors", s.crawler_visitors),
    ] {
        tile(out, id, label, count(n), n.to_string());
    }
    tile(
        out,
        "bytes",
        "bytes sent",
        bytes(s.bytes),
        s.bytes.to_string(),
    );
    for (id, label, part) in [
        ("percent-4xx", "4xx share", s.client_errors),
        ("percent-5xx", "5xx share", s.server_errors),
        ("percent-crawlers", "crawler share", s.crawler_requests),
    ] {
        let p = percent(part, total);
        tile(out, id, label, format!("{p}%"), p);
    }
    for (id, label, time) in [
        ("first", "first request", &s.first),
        ("last", "last request", &s.last),
    ] {
        let t = time.clone().unwrap_or_default();
        tile(out, id, label, t.clone(), t);
    }
    out.push_str("</div></section>\n");
}

fn status(out: &mut String, report: &Report) {
    let total = report.summary.requests;
    open(out, "status", "Status codes");
    out.push_str(
        r#"<table><tr><th>status</th><th class="n">hits</th><th class="n">%</th><th></th></tr>"#,
    );
    for (i, class) in CLASSES.iter().enumerate() {
        let hits = report.classes[i];
        if hits == 0 {
            continue;
        }
        let _ = write!(
            out,
            r#"<tr class="class"><th>{class}</th>{}{}{}</tr>"#,
            num(hits),
            share(hits, total),
            bar(hits, total)
        );
        for &(code, n) in report.status.iter().filter(|(c, _)| class_index(*c) == i) {
            let _ = write!(
                out,
                r#"<tr class="code" data-status="{code}"><td>{code}</td>{}{}{}</tr>"#,
                num(n),
                share(n, total),
                bar(n, total)
            );
        }
    }
    out.push_str("</table></section>\n");
}

/// The columns a ranking has besides hits, share and its key.
#[derive(Clone, Copy)]
struct Columns {
    bytes: bool,
    visitors: bool,
}

const PLAIN: Columns = Columns {
    bytes: false,
    visitors: false,
};
/// Groups of user agents: their visitors too.
const GROUPS: Columns = Columns {
    bytes: false,
    visitors: true,
};
const URLS: Columns = Columns {
    bytes: true,
    visitors: true,
};

/// The ranking a section shows, if it is one: heading, rows, what its key is, its columns.
fn ranking_of(
    report: &Report,
    section: Section,
) -> Option<(String, &[Ranked], &'static str, Columns)> {
    let top = |what: &str| report.ranking_title(what);
    Some(match section {
        Section::Urls => (top("URLs"), &report.urls[..], "url", URLS),
        Section::Pages | Section::Static => {
            let (heading, group) = report.url_group(section);
            (heading, &group.rows[..], "url", URLS)
        }
        Section::NotFound => (
            top("URLs answered 404"),
            &report.not_found[..],
            "url",
            PLAIN,
        ),
        Section::Clients => (top("clients"), &report.clients[..], "client", PLAIN),
        Section::Agents => (top("user agents"), &report.agents[..], "user agent", PLAIN),
        Section::Referrers => (top("referrers"), &report.referrers[..], "referrer", PLAIN),
        Section::Sites => (top("referring sites"), &report.sites[..], "site", PLAIN),
        Section::Methods => ("Methods".into(), &report.methods[..], "method", PLAIN),
        Section::Hosts => (top("hosts"), &report.hosts[..], "host", PLAIN),
        Section::Browsers => (
            top("browsers and crawlers"),
            &report.browsers[..],
            "browser",
            GROUPS,
        ),
        Section::Os => (top("operating systems"), &report.systems[..], "os", GROUPS),
        Section::Devices => (
            "Device classes".into(),
            &report.devices[..],
            "device",
            GROUPS,
        ),
        _ => return None,
    })
}

/// A ranking: hits, share, a bar, the columns asked for, the key.
fn ranked(
    out: &mut String,
    id: &str,
    heading: &str,
    rows: &[Ranked],
    total: u64,
    label: &str,
    columns: Columns,
) {
    open(out, id, heading);
    if rows.is_empty() {
        out.push_str("<p>(none)</p></section>\n");
        return;
    }
    out.push_str(r#"<table><tr><th class="n">hits</th><th class="n">%</th><th></th>"#);
    if columns.bytes {
        out.push_str(r#"<th class="n">bytes</th>"#);
    }
    if columns.visitors {
        out.push_str(r#"<th class="n">visitors</th>"#);
    }
    let _ = write!(out, "<th>{label}</th></tr>");
    for r in rows {
        let _ = write!(
            out,
            "<tr>{}{}{}",
            num(r.hits),
            share(r.hits, total),
            bar(r.hits, total)
        );
        if columns.bytes {
            out.push_str(&num(r.bytes));
        }
        if columns.visitors {
            out.push_str(&num(r.visitors));
        }
        let _ = write!(
            out,
            r#"<td class="key">{}</td></tr>"#,
            text(&r.key, MAX_VALUE)
        );
    }
    out.push_str("</table></section>\n");
}

fn legend(out: &mut String) {
    out.push_str(r#"<p class="legend">"#);
    for class in CLASSES {
        let _ = write!(out, r#"<span class="c{class}"></span>{class}"#);
    }
    out.push_str("</p>");
}

/// Requests per bucket, stacked by status class: one `<g class="bucket">` per bucket, every
/// bucket of the range (an empty one is a gap in the chart), against the busiest.
fn traffic(out: &mut String, report: &Report) {
    let rows = &report.traffic;
    let heading = format!("Traffic per {} ({})", report.bucket.name(), report.zone);
    open(out, "traffic", &heading);
    legend(out);
    let peak = rows.iter().map(|r| r.total()).max().unwrap_or(0).max(1);
    // Chart units: a bar per bucket, 10 units wide, in a 200-unit high plot under a margin
    // for the peak's label.
    let (width, top, height) = ((rows.len().max(1) * 10) as f64, 14.0, 200.0);
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {width} {}" preserveAspectRatio="none" role="img" aria-label="requests per {}"><text x="0" y="11">peak {}</text>"#,
        top + height,
        report.bucket.name(),
        count(peak)
    );
    for (i, row) in rows.iter().enumerate() {
        let x = i as f64 * 10.0;
        let _ = write!(
            out,
            r#"<g class="bucket" data-start="{}" data-hits="{}"><title>{}: {} requests</title>"#,
            text(&row.start, 40),
            row.total(),
            text(&row.start, 40),
            count(row.total())
        );
        let mut y = top + height;
        for (class, &n) in CLASSES.iter().zip(&row.counts) {
            if n == 0 {
                continue;
            }
            let h = n as f64 * height / peak as f64;
            y -= h;
            let _ = write!(
                out,
                r#"<rect class="c{class}" x="{x:.1}" y="{y:.2}" width="9" height="{h:.2}"></rect>"#
            );
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        let _ = write!(
            out,
            r#"<p class="meta">{} to {}, {} buckets</p>"#,
            text(&first.start, 40),
            text(&last.start, 40),
            count(rows.len() as u64)
        );
    }
    out.push_str("</section>\n");
}

fn days(out: &mut String, report: &Report) {
    open(out, "days", &format!("Days ({})", report.zone));
    let peak = report.days.iter().map(|d| d.hits).max().unwrap_or(0);
    out.push_str(
        r#"<table><tr><th>day</th><th class="n">hits</th><th class="n">visitors</th><th></th></tr>"#,
    );
    for d in &report.days {
        let _ = write!(
            out,
            r#"<tr><td>{}</td>{}{}{}</tr>"#,
            text(&d.day, 20),
            num(d.hits),
            num(d.visitors),
            bar(d.hits, peak)
        );
    }
    out.push_str("</table></section>\n");
}

/// Rows of hits by class (hours of the day, days of the week), each bar against the busiest.
fn by_class(
    out: &mut String,
    id: &str,
    heading: &str,
    label: &str,
    rows: &[(String, &ByClass)],
    total: u64,
) {
    open(out, id, heading);
    let peak = (rows.iter())
        .map(|(_, c)| c.iter().sum::<u64>())
        .max()
        .unwrap_or(0);
    let _ = write!(
        out,
        r#"<table><tr><th>{label}</th><th class="n">hits</th><th class="n">%</th><th></th></tr>"#
    );
    for (name, counts) in rows {
        let hits: u64 = counts.iter().sum();
        let _ = write!(
            out,
            r#"<tr><td>{}</td>{}{}{}</tr>"#,
            text(name, 20),
            num(hits),
            share(hits, total),
            stacked(counts, peak)
        );
    }
    out.push_str("</table></section>\n");
}

fn rejects(out: &mut String, report: &Report) {
    let lines: u64 = report.rejects.iter().map(|r| r.lines).sum();
    let mut heading = format!("Rejected lines ({})", count(lines));
    if report.rejects_escape_filters {
        heading.push_str(": filters do not apply");
    }
    open(out, "rejects", &heading);
    if report.rejects.is_empty() {
        out.push_str("<p>(none)</p></section>\n");
        return;
    }
    out.push_str(
        r#"<table><tr><th class="n">lines</th><th class="n">%</th><th>reason, and its first line</th></tr>"#,
    );
    for r in &report.rejects {
        let sample = format!("{}:{}: {}", r.source, r.line, r.sample);
        let _ = write!(
            out,
            r#"<tr>{}{}<td>{}<div class="sample">{}</div></td></tr>"#,
            num(r.lines),
            share(r.lines, lines),
            text(&r.reason, 40),
            text(&sample, MAX_VALUE)
        );
    }
    out.push_str("</table></section>\n");
}

fn times(out: &mut String, report: &Report) {
    let all = &report.times.all;
    open(out, "times", &report.times_title());
    if all.count == 0 {
        let _ = writeln!(out, "<p>{}</p></section>", text(super::NO_TIMES, 200));
        return;
    }
    let d = |us: u64| format!(r#"<td class="n" data-v="{us}">{}</td>"#, duration_us(us));
    let _ = write!(
        out,
        r#"<table><tr><th class="n">requests</th><th class="n">mean</th><th class="n">p50</th><th class="n">p95</th><th class="n">p99</th><th class="n">max</th><th class="n">total</th></tr><tr>{}{}{}{}{}{}{}</tr></table>"#,
        num(all.count),
        d(all.mean_us),
        d(all.p50_us),
        d(all.p95_us),
        d(all.p99_us),
        d(all.max_us),
        d(all.total_us)
    );
    if let Some(note) = report.times_note() {
        let _ = write!(out, r#"<p class="meta">{note}</p>"#);
    }
    let _ = write!(
        out,
        "<h2>{}</h2>",
        text(&report.ranking_title("slowest URLs, by p95"), 100)
    );
    out.push_str(
        r#"<table><tr><th class="n">requests</th><th class="n">mean</th><th class="n">p95</th><th class="n">p99</th><th class="n">max</th><th>url</th></tr>"#,
    );
    for (url, s) in &report.times.slowest {
        let _ = write!(
            out,
            r#"<tr>{}{}{}{}{}<td class="key">{}</td></tr>"#,
            num(s.count),
            d(s.mean_us),
            d(s.p95_us),
            d(s.p99_us),
            d(s.max_us),
            text(url, MAX_VALUE)
        );
    }
    out.push_str("</table>");
    let _ = write!(
        out,
        "<h2>{}</h2>",
        text(&report.ranking_title("URLs by total time"), 100)
    );
    out.push_str(
        r#"<table><tr><th class="n">requests</th><th class="n">total</th><th class="n">%</th><th class="n">mean</th><th class="n">p95</th><th>url</th></tr>"#,
    );
    for (url, s) in &report.times.most_time {
        let _ = write!(
            out,
            r#"<tr>{}{}{}{}{}<td class="key">{}</td></tr>"#,
            num(s.count),
            d(s.total_us),
            share(s.total_us, all.total_us),
            d(s.mean_us),
            d(s.p95_us),
            text(url, MAX_VALUE)
        );
    }
    out.push_str("</table></section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_for_text_and_attributes() {
        assert_eq!(
            text(r#"<script>alert('x')</script> & "q""#, 100),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(
            text("\"><img src=x onerror=y>", 100),
            "&quot;&gt;&lt;img src=x onerror=y&gt;"
        );
        // Control and bidi characters as the tables show them; long values cut.
        assert_eq!(text("a\x1b[31m\u{202e}b", 100), "a\\x1B[31m\\u{202E}b");
        assert_eq!(text(&"x".repeat(500), 10), format!("{}…", "x".repeat(9)));
    }
}
