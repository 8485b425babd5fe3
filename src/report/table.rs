//! The table renderer: aligned to the width it is given, a bar for each share, colour where
//! it tells something (the status classes).
//!
//! Log fields are written by strangers. A URL or user agent can carry terminal escape
//! sequences; printed raw, they could recolour, retitle or rewrite the user's terminal. So
//! every value is shown through [`safe`], which escapes control and bidi characters, and is
//! cut with an ellipsis to fit its column. The only escape sequences in a table are the
//! colours this module adds around its own text.

use std::fmt::Write;

use super::{
    ByClass, CLASSES, MAX_TRAFFIC_ROWS, Ranked, Report, Section, WEEKDAYS, class_index, percent,
};
use crate::human::{count, duration_us};

/// How a table is laid out. The renderer does not look at the terminal: the caller
/// (`crate::cli`) decides from the flags, the environment and where stdout goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Columns per line. The numbers keep their widths; the key columns (URL, user agent,
    /// referrer) and the traffic bars take what they leave.
    pub width: usize,
    /// Colour the status classes and the traffic bars (ANSI SGR codes).
    pub color: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            width: DEFAULT_WIDTH,
            color: false,
        }
    }
}

/// The width when nothing says otherwise (output to a file or a pipe).
pub const DEFAULT_WIDTH: usize = 80;
/// The narrowest layout: every section fits in it, with keys cut short.
pub const MIN_WIDTH: usize = 60;
/// The widest layout: beyond it a traffic bar is longer than any screen.
pub const MAX_WIDTH: usize = 1000;

/// Cells of a share bar at 100%. Shares are drawn on the same scale in every section, so
/// their bars compare; only the traffic chart, drawn against its peak, takes the free width.
const SHARE_BAR: usize = 20;
/// The shortest key column: share bars give up their cells to it first.
const MIN_KEY: usize = 12;
/// The shortest traffic bar, however wide the numbers.
const MIN_TRAFFIC_BAR: usize = 4;

/// A value made safe for a terminal: control characters (C0, DEL, C1) and bidi overrides are
/// escaped as `\xHH` / `\u{HHHH}`, and the text is cut to `max` characters with `…`.
pub fn safe(value: &str, max: usize) -> String {
    let mut out = String::with_capacity(value.len().min(max + 8));
    let mut shown = 0;
    // Where each piece put in `out` starts, and how many characters it shows.
    let mut pieces: Vec<(usize, usize)> = Vec::new();
    for c in value.chars() {
        let piece = match c {
            '\0'..='\x1f' | '\x7f'..='\u{9f}' => format!("\\x{:02X}", c as u32),
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' => {
                format!("\\u{{{:04X}}}", c as u32)
            }
            c => c.to_string(),
        };
        let len = piece.chars().count();
        if shown + len > max {
            // Cut whole pieces only (never half an escape), leaving room for the ellipsis.
            while shown + 1 > max
                && let Some((start, len)) = pieces.pop()
            {
                out.truncate(start);
                shown -= len;
            }
            out.push('…');
            return out;
        }
        pieces.push((out.len(), len));
        shown += len;
        out.push_str(&piece);
    }
    out
}

/// The partial cells of a bar, by eighths (index 0 is no partial cell).
const EIGHTHS: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];

/// `part` of `whole` in eighths of a cell, over `cells` cells for the whole, rounded; at least
/// one eighth when `part` is not 0, so that a row with hits never shows an empty bar.
fn eighths(part: u64, whole: u64, cells: usize) -> usize {
    if part == 0 || whole == 0 {
        return 0;
    }
    let whole = u128::from(whole);
    let units = (u128::from(part) * cells as u128 * 16 + whole) / (2 * whole);
    (units as usize).max(1)
}

/// A bar of `eighths` eighths of a cell: whole blocks, then the partial one.
fn blocks(eighths: usize) -> String {
    let mut bar = "█".repeat(eighths / 8);
    bar.push_str(EIGHTHS[eighths % 8]);
    bar
}

/// The bar of `part` of `whole`, `cells` cells long for the whole.
fn bar(part: u64, whole: u64, cells: usize) -> String {
    blocks(eighths(part, whole, cells))
}

/// Colours our own text, never a value from a log (those are escaped by [`safe`] first).
#[derive(Debug, Clone, Copy)]
struct Paint(bool);

impl Paint {
    /// `text` in the colour of the SGR parameters `sgr`, when colouring.
    fn paint(self, sgr: &str, text: &str) -> String {
        if self.0 && !text.is_empty() {
            format!("\x1b[{sgr}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// The colour of a status class: success green, redirects cyan, client errors yellow,
/// server errors red; blue for informational, magenta for anything else.
fn class_sgr(class: &str) -> &'static str {
    match class {
        "1xx" => "34",
        "2xx" => "32",
        "3xx" => "36",
        "4xx" => "33",
        "5xx" => "31",
        _ => "35",
    }
}

fn heading(out: &mut String, title: &str, paint: Paint) {
    let _ = writeln!(
        out,
        "\n{}\n{}",
        paint.paint("1", title),
        "─".repeat(title.chars().count())
    );
}

/// Cells of a share bar in a line of `width` whose other columns take `fixed`: the bar gives
/// way to the key column on narrow screens.
fn share_bar(width: usize, fixed: usize) -> usize {
    SHARE_BAR.min(width.saturating_sub(fixed + MIN_KEY))
}

fn ranking(out: &mut String, title: &str, rows: &[Ranked], total: u64, label: &str, o: Options) {
    heading(out, title, Paint(o.color));
    if rows.is_empty() {
        let _ = writeln!(out, "  (none)");
        return;
    }
    // "  hits %  bar  key"
    let fixed = 2 + 11 + 1 + 6 + 2 + 2;
    let cells = share_bar(o.width, fixed);
    let key_width = o.width.saturating_sub(fixed + cells).max(MIN_KEY);
    let _ = writeln!(out, "  {:>11} {:>6}  {:<cells$}  {label}", "hits", "%", "");
    for r in rows {
        let _ = writeln!(
            out,
            "  {:>11} {:>6}  {:<cells$}  {}",
            count(r.hits),
            percent(r.hits, total),
            bar(r.hits, total, cells),
            safe(&r.key, key_width)
        );
    }
}

/// Renders the chosen sections as text tables, laid out as `options` say.
pub fn render(report: &Report, sections: &[Section], options: Options) -> Vec<u8> {
    let o = Options {
        width: options.width.clamp(MIN_WIDTH, MAX_WIDTH),
        ..options
    };
    let paint = Paint(o.color);
    let mut out = String::new();
    let s = &report.summary;
    let total = s.requests;
    let _ = write!(
        out,
        "log-pipeline report, times in {}",
        safe(&report.zone, 40)
    );
    if !report.filters.is_empty() {
        let parts: Vec<String> = report
            .filters
            .iter()
            .map(|(k, v)| format!("{k}={}", safe(v, 40)))
            .collect();
        let _ = write!(out, " (filters: {})", parts.join(", "));
    }
    let _ = writeln!(out);
    if total == 0 {
        let _ = writeln!(
            out,
            "\nNo log entries{}.",
            if report.filters.is_empty() {
                ""
            } else {
                " match the filters"
            }
        );
        // Why a log gave no entry is what the rejects tell.
        if sections.contains(&Section::Rejects) {
            rejects(&mut out, report, o);
        }
        return out.into_bytes();
    }
    for section in sections {
        match section {
            Section::Rejects => rejects(&mut out, report, o),
            Section::Summary => {
                heading(&mut out, "Summary", paint);
                let rows = [
                    ("requests", count(s.requests)),
                    ("unique visitors", count(s.visitors)),
                    ("client IPs", count(s.distinct_ips)),
                    ("bytes sent", count(s.bytes)),
                    ("first request", s.first.clone().unwrap_or_default()),
                    ("last request", s.last.clone().unwrap_or_default()),
                    ("4xx share", format!("{}%", percent(s.client_errors, total))),
                    ("5xx share", format!("{}%", percent(s.server_errors, total))),
                    (
                        "crawler share",
                        format!("{}%", percent(s.crawler_requests, total)),
                    ),
                    ("crawler visitors", count(s.crawler_visitors)),
                ];
                for (k, v) in rows {
                    let _ = writeln!(out, "  {k:<18} {v}");
                }
            }
            Section::Status => status(&mut out, report, o),
            Section::Urls => {
                let title = report.ranking_title("URLs");
                with_visitors(&mut out, &title, &report.urls, total, ("url", true), o);
            }
            Section::Pages | Section::Static => {
                let (title, group) = report.url_group(*section);
                with_visitors(&mut out, &title, &group.rows, total, ("url", true), o);
            }
            Section::Browsers | Section::Os | Section::Devices => {
                let (what, label, rows) = match section {
                    Section::Browsers => ("browsers and crawlers", "browser", &report.browsers),
                    Section::Os => ("operating systems", "os", &report.systems),
                    _ => ("device classes", "device", &report.devices),
                };
                let title = match section {
                    Section::Devices => "Device classes".to_string(),
                    _ => report.ranking_title(what),
                };
                with_visitors(&mut out, &title, rows, total, (label, false), o);
            }
            Section::Sites => ranking(
                &mut out,
                &report.ranking_title("referring sites"),
                &report.sites,
                total,
                "site",
                o,
            ),
            Section::Days => days(&mut out, report, o),
            Section::Hours => {
                let rows: Vec<(String, &ByClass)> = (report.hours.iter().enumerate())
                    .map(|(hour, counts)| (format!("{hour:02}"), counts))
                    .collect();
                by_class(
                    &mut out,
                    &format!("Hits by hour of day ({})", report.zone),
                    "hour",
                    &rows,
                    total,
                    o,
                );
            }
            Section::Weekdays => {
                let rows: Vec<(String, &ByClass)> = (WEEKDAYS.iter().zip(&report.weekdays))
                    .map(|(day, counts)| (day.to_string(), counts))
                    .collect();
                by_class(
                    &mut out,
                    &format!("Hits by day of week ({})", report.zone),
                    "day",
                    &rows,
                    total,
                    o,
                );
            }
            Section::NotFound => ranking(
                &mut out,
                &report.ranking_title("URLs answered 404"),
                &report.not_found,
                total,
                "url",
                o,
            ),
            Section::Clients => ranking(
                &mut out,
                &report.ranking_title("clients"),
                &report.clients,
                total,
                "ip",
                o,
            ),
            Section::Agents => ranking(
                &mut out,
                &report.ranking_title("user agents"),
                &report.agents,
                total,
                "user agent",
                o,
            ),
            Section::Referrers => ranking(
                &mut out,
                &report.ranking_title("referrers"),
                &report.referrers,
                total,
                "referrer",
                o,
            ),
            Section::Methods => ranking(&mut out, "Methods", &report.methods, total, "method", o),
            Section::Hosts => ranking(&mut out, "Hosts", &report.hosts, total, "host", o),
            Section::Traffic => traffic(&mut out, report, o),
            Section::Times => times(&mut out, report, o),
        }
    }
    out.into_bytes()
}

/// The response times: all requests that have one, then the slowest URLs by p95 and the
/// URLs that took the most time in all.
fn times(out: &mut String, report: &Report, o: Options) {
    let all = &report.times.all;
    heading(out, &report.times_title(), Paint(o.color));
    if all.count == 0 {
        let _ = writeln!(out, "  {}", super::NO_TIMES);
        return;
    }
    let d = duration_us;
    let _ = writeln!(
        out,
        "  {:>11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "requests", "mean", "p50", "p95", "p99", "max", "total"
    );
    let _ = writeln!(
        out,
        "  {:>11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        count(all.count),
        d(all.mean_us),
        d(all.p50_us),
        d(all.p95_us),
        d(all.p99_us),
        d(all.max_us),
        d(all.total_us)
    );
    if let Some(note) = report.times_note() {
        let _ = writeln!(out, "  {note}");
    }
    // "  requests mean p95 p99 max  url"
    let fixed = 2 + 11 + 4 * 9 + 2;
    let key_width = o.width.saturating_sub(fixed).max(MIN_KEY);
    heading(
        out,
        &report.ranking_title("slowest URLs, by p95"),
        Paint(o.color),
    );
    let _ = writeln!(
        out,
        "  {:>11} {:>8} {:>8} {:>8} {:>8}  url",
        "requests", "mean", "p95", "p99", "max"
    );
    for (url, s) in &report.times.slowest {
        let _ = writeln!(
            out,
            "  {:>11} {:>8} {:>8} {:>8} {:>8}  {}",
            count(s.count),
            d(s.mean_us),
            d(s.p95_us),
            d(s.p99_us),
            d(s.max_us),
            safe(url, key_width)
        );
    }
    heading(
        out,
        &report.ranking_title("URLs by total time"),
        Paint(o.color),
    );
    let _ = writeln!(
        out,
        "  {:>11} {:>8} {:>6} {:>8} {:>8}  url",
        "requests", "total", "%", "mean", "p95"
    );
    for (url, s) in &report.times.most_time {
        let _ = writeln!(
            out,
            "  {:>11} {:>8} {:>6} {:>8} {:>8}  {}",
            count(s.count),
            d(s.total_us),
            percent(s.total_us, all.total_us),
            d(s.mean_us),
            d(s.p95_us),
            safe(url, key_width)
        );
    }
}

/// A ranking with the unique visitors of each row: URLs (with their bytes too, `bytes`) or
/// groups of user agents (browsers, systems, devices).
fn with_visitors(
    out: &mut String,
    title: &str,
    rows: &[Ranked],
    total: u64,
    (label, bytes): (&str, bool),
    o: Options,
) {
    heading(out, title, Paint(o.color));
    if rows.is_empty() {
        let _ = writeln!(out, "  (none)");
        return;
    }
    let bytes_width = if bytes { 15 } else { 0 };
    let fixed = 2 + 11 + 1 + 6 + bytes_width + 1 + 9 + 2;
    let key_width = o.width.saturating_sub(fixed).max(MIN_KEY);
    let bytes_header = if bytes {
        format!(" {:>14}", "bytes")
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "  {:>11} {:>6}{bytes_header} {:>9}  {label}",
        "hits", "%", "visitors"
    );
    for r in rows {
        let bytes_cell = if bytes {
            format!(" {:>14}", count(r.bytes))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {:>11} {:>6}{bytes_cell} {:>9}  {}",
            count(r.hits),
            percent(r.hits, total),
            count(r.visitors),
            safe(&r.key, key_width)
        );
    }
}

/// Rows of hits by class (hours of the day, days of the week): every row, with a bar
/// against the busiest in the classes' colours, so that the quiet hours show.
fn by_class(
    out: &mut String,
    title: &str,
    label: &str,
    rows: &[(String, &ByClass)],
    total: u64,
    o: Options,
) {
    let paint = Paint(o.color);
    heading(out, title, paint);
    let label_width = rows
        .iter()
        .map(|(l, _)| l.len())
        .fold(label.len(), usize::max);
    let fixed = 2 + label_width + 2 + 11 + 1 + 6 + 2;
    let cells = o.width.saturating_sub(fixed + 2).max(MIN_TRAFFIC_BAR);
    let _ = writeln!(
        out,
        "  {label:<label_width$}  {:>11} {:>6}  bar",
        "hits", "%"
    );
    let peak = rows
        .iter()
        .map(|(_, c)| c.iter().sum::<u64>())
        .max()
        .unwrap_or(0);
    for (name, counts) in rows {
        let hits: u64 = counts.iter().sum();
        let bar = traffic_bar(&counts[..], peak, cells, paint);
        let line = format!(
            "  {name:<label_width$}  {:>11} {:>6}  {bar}",
            count(hits),
            percent(hits, total)
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

/// The rejected lines by reason, each with its first line as a sample.
fn rejects(out: &mut String, report: &Report, o: Options) {
    let lines: u64 = report.rejects.iter().map(|r| r.lines).sum();
    let mut title = format!("Rejected lines ({})", count(lines));
    if report.rejects_escape_filters {
        title.push_str(": filters do not apply");
    }
    heading(out, &title, Paint(o.color));
    if report.rejects.is_empty() {
        let _ = writeln!(out, "  (none)");
        return;
    }
    let _ = writeln!(
        out,
        "  {:>11} {:>6}  reason, and its first line",
        "lines", "%"
    );
    for r in &report.rejects {
        let _ = writeln!(
            out,
            "  {:>11} {:>6}  {}",
            count(r.lines),
            percent(r.lines, lines),
            safe(&r.reason, 40)
        );
        let sample = format!("{}:{}: {}", r.source, r.line, r.sample);
        let _ = writeln!(
            out,
            "  {:>18}  {}",
            "",
            safe(&sample, o.width.saturating_sub(22).max(MIN_KEY))
        );
    }
}

/// Hits and unique visitors per day, with a bar of the hits against the busiest day.
fn days(out: &mut String, report: &Report, o: Options) {
    heading(out, &format!("Days ({})", report.zone), Paint(o.color));
    let fixed = 2 + 10 + 2 + 11 + 1 + 9 + 2;
    let cells = o.width.saturating_sub(fixed + 2).max(MIN_TRAFFIC_BAR);
    let _ = writeln!(
        out,
        "  {:<10}  {:>11} {:>9}  bar",
        "day", "hits", "visitors"
    );
    let peak = report.days.iter().map(|d| d.hits).max().unwrap_or(0);
    let day = |d: &super::DayRow| chrono::NaiveDate::parse_from_str(&d.day, "%Y-%m-%d").ok();
    let gaps = (report.days.windows(2)).any(|w| {
        day(&w[0])
            .zip(day(&w[1]))
            .is_some_and(|(a, b)| (b - a).num_days() > 1)
    });
    for d in &report.days {
        let line = format!(
            "  {:<10}  {:>11} {:>9}  {}",
            safe(&d.day, 10),
            count(d.hits),
            count(d.visitors),
            bar(d.hits, peak, cells)
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if gaps {
        let _ = writeln!(
            out,
            "  (only the days with requests: first to last is more than {} days)",
            count(MAX_TRAFFIC_ROWS as u64)
        );
    }
}

/// Each status class that has hits, then its codes, with their share in the class's colour.
fn status(out: &mut String, report: &Report, o: Options) {
    let paint = Paint(o.color);
    let total = report.summary.requests;
    heading(out, "Status codes", paint);
    let cells = share_bar(o.width, 2 + 6 + 1 + 11 + 1 + 6 + 2);
    let _ = writeln!(out, "  {:<6} {:>11} {:>6}  bar", "status", "hits", "%");
    for (i, (class, &n)) in CLASSES.iter().zip(report.classes.iter()).enumerate() {
        if n == 0 {
            continue;
        }
        let sgr = class_sgr(class);
        let _ = writeln!(
            out,
            "  {} {:>11} {:>6}  {}",
            paint.paint(sgr, &format!("{class:<6}")),
            count(n),
            percent(n, total),
            paint.paint(sgr, &bar(n, total, cells))
        );
        for &(code, hits) in report.status.iter().filter(|s| class_index(s.0) == i) {
            let _ = writeln!(
                out,
                "    {} {:>11} {:>6}  {}",
                paint.paint(sgr, &format!("{code:<4}")),
                count(hits),
                percent(hits, total),
                paint.paint(sgr, &bar(hits, total, cells))
            );
        }
    }
}

/// The start of a traffic bucket as people read it: `2024-01-01 13:05` (the seconds of a
/// bucket are always 0), or the day alone for days. Anything else is shown as it is.
fn bucket_start(start: &str, bucket: super::Bucket) -> String {
    // `2024-01-02T13:05:00Z` or `2024-01-02T13:05:00+07:00`, on the minute.
    let rfc3339 = start.is_ascii()
        && start.len() >= 20
        && start.as_bytes()[10] == b'T'
        && &start[16..19] == ":00";
    match bucket {
        _ if !rfc3339 => start.to_owned(),
        super::Bucket::Day => start[..10].to_owned(),
        _ => format!("{} {}", &start[..10], &start[11..16]),
    }
}

/// The bar of a traffic row: its hits against the peak's over `cells` cells, in eighths of
/// a cell. In colour it is split by status class, in the classes' colours, in the order of
/// [`CLASSES`]; its length is the same either way.
fn traffic_bar(counts: &[u64], peak: u64, cells: usize, paint: Paint) -> String {
    let total: u64 = counts.iter().sum();
    let units = eighths(total, peak, cells);
    if !paint.0 {
        return blocks(units);
    }
    let whole_cells = units / 8;
    let last = counts.iter().rposition(|&n| n > 0);
    let mut out = String::new();
    let (mut drawn, mut so_far) = (0, 0u64);
    for (i, (class, &n)) in CLASSES.iter().zip(counts).enumerate() {
        if n == 0 {
            continue;
        }
        so_far += n;
        // Where this class's part ends, rounded to whole cells; the partial cell, if any,
        // goes to the last class.
        let end = if Some(i) == last {
            whole_cells
        } else {
            ((u128::from(so_far) * whole_cells as u128 * 2 + u128::from(total))
                / (2 * u128::from(total))) as usize
        };
        let mut part = "█".repeat(end - drawn);
        if Some(i) == last {
            part.push_str(EIGHTHS[units % 8]);
        }
        drawn = end;
        out.push_str(&paint.paint(class_sgr(class), &part));
    }
    out
}

/// Requests per bucket, split by status class, with a bar against the busiest bucket that
/// takes the width the numbers leave.
///
/// A column per class of [`CLASSES`]: 2xx to 5xx always, so that the layout does not move
/// from one report to the next, and the others (1xx, other) only when some bucket has them,
/// to keep 80 columns for the bar.
fn traffic(out: &mut String, report: &Report, o: Options) {
    let paint = Paint(o.color);
    heading(out, &format!("Traffic per {}", report.bucket.name()), paint);
    let rows = &report.traffic;
    let shown: Vec<usize> = (0..CLASSES.len())
        .filter(|&i| {
            matches!(CLASSES[i], "2xx" | "3xx" | "4xx" | "5xx")
                || rows.iter().any(|t| t.counts.get(i).is_some_and(|&n| n > 0))
        })
        .collect();
    let starts: Vec<String> = rows
        .iter()
        .map(|t| bucket_start(&t.start, report.bucket))
        .collect();
    let widest = |header: &str, values: &mut dyn Iterator<Item = usize>| {
        values.fold(header.chars().count(), usize::max)
    };
    let start_label = format!("start ({})", report.zone);
    let start_width = widest(&start_label, &mut starts.iter().map(|s| s.chars().count()));
    let hits_width = widest("hits", &mut rows.iter().map(|t| count(t.total()).len()));
    let class_widths: Vec<usize> = (shown.iter())
        .map(|&i| {
            widest(
                CLASSES[i],
                &mut rows.iter().map(|t| count(t.counts[i]).len()),
            )
        })
        .collect();
    // Columns two spaces apart, each as wide as its widest value.
    let fixed =
        2 + start_width + 2 + hits_width + class_widths.iter().map(|w| w + 2).sum::<usize>();
    let cells = o.width.saturating_sub(fixed + 2).max(MIN_TRAFFIC_BAR);

    let mut line = format!("  {:<start_width$}  {:>hits_width$}", start_label, "hits");
    for (&i, &w) in shown.iter().zip(&class_widths) {
        let _ = write!(
            line,
            "  {}",
            paint.paint(class_sgr(CLASSES[i]), &format!("{:>w$}", CLASSES[i]))
        );
    }
    let _ = writeln!(out, "{line}  bar");
    let peak = rows.iter().map(|t| t.total()).max().unwrap_or(0);
    for (t, start) in rows.iter().zip(&starts) {
        let mut line = format!("  {start:<start_width$}  {:>hits_width$}", count(t.total()));
        for (&i, &w) in shown.iter().zip(&class_widths) {
            let _ = write!(line, "  {:>w$}", count(t.counts[i]));
        }
        let bar = traffic_bar(&t.counts, peak, cells, paint);
        let _ = writeln!(out, "{}", format!("{line}  {bar}").trim_end());
    }
    if report.traffic_gaps {
        let _ = writeln!(
            out,
            "  (only the {}s with requests: first to last is more than {} {0}s)",
            report.bucket.name(),
            count(MAX_TRAFFIC_ROWS as u64)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(safe("/a\x1b[31mred\x07", 80), "/a\\x1B[31mred\\x07");
        assert_eq!(safe("evil\u{202e}txt.exe", 80), "evil\\u{202E}txt.exe");
        assert_eq!(safe("\u{9b}31m", 80), "\\x9B31m");
        assert_eq!(safe("héllo", 80), "héllo");
    }

    #[test]
    fn long_values_are_cut_with_an_ellipsis() {
        assert_eq!(safe("abcdefghij", 5), "abcd…");
        assert_eq!(safe("abcde", 5), "abcde");
        assert_eq!(
            safe("ab\x1bcdef", 5),
            "ab…",
            "an escape is never cut in half"
        );
        assert_eq!(safe("abcdef\x1b", 7), "abcdef…");
        // An escape just before the cut goes whole, not as `\x1…`.
        assert_eq!(safe("ab\x1bc", 6), "ab…");
        assert_eq!(safe("\x1bXY", 5), "\\x1B…");
    }

    #[test]
    fn bars() {
        assert_eq!(bar(1, 2, 20), "█".repeat(10));
        assert_eq!(bar(1, 1000, 20), "▏", "a part too small to see still shows");
        assert_eq!(bar(0, 10, 20), "");
        assert_eq!(bar(5, 0, 20), "");
        assert_eq!(bar(7, 7, 20), "█".repeat(20));
    }

    #[test]
    fn bars_are_drawn_to_an_eighth_of_a_cell() {
        // 1/3 of 10 cells: 26.7 eighths, so 3 whole cells and 3 eighths.
        assert_eq!(bar(1, 3, 10), "███▍");
        assert_eq!(bar(1, 16, 1), "▏");
        assert_eq!(bar(14, 16, 1), "▉");
        assert_eq!(bar(15, 16, 1), "█", "7.5 eighths round up");
        // Near values that whole cells drew alike (0.70 and 0.80 of 13 cells were both 13
        // cells after a 20-cell bar was cut) are told apart.
        assert_ne!(bar(70, 100, 13), bar(80, 100, 13));
        for part in 0..=200 {
            assert!(bar(part, 200, 13).chars().count() <= 13, "{part}");
        }
    }

    /// The bar of a traffic row is as long in colour as without; in colour each class has
    /// its part, in its colour.
    #[test]
    fn a_coloured_traffic_bar_is_the_plain_bar_split_by_class() {
        let strip = |s: &str| {
            regex::Regex::new("\x1b\\[[0-9;]*m")
                .unwrap()
                .replace_all(s, "")
                .into_owned()
        };
        let mut counts = vec![0u64; CLASSES.len()];
        let two = CLASSES.iter().position(|&c| c == "2xx").unwrap();
        let five = CLASSES.iter().position(|&c| c == "5xx").unwrap();
        counts[two] = 60;
        counts[five] = 20;
        for (peak, cells) in [(80, 20), (100, 13), (1000, 50), (80, 1)] {
            let plain = traffic_bar(&counts, peak, cells, Paint(false));
            let coloured = traffic_bar(&counts, peak, cells, Paint(true));
            assert_eq!(strip(&coloured), plain, "{peak} {cells}");
            assert!(!plain.contains('\x1b'));
        }
        let coloured = traffic_bar(&counts, 80, 20, Paint(true));
        assert_eq!(
            coloured,
            format!(
                "\x1b[32m{}\x1b[0m\x1b[31m{}\x1b[0m",
                "█".repeat(15),
                "█".repeat(5)
            )
        );
        assert_eq!(
            traffic_bar(&vec![0; CLASSES.len()], 80, 20, Paint(true)),
            ""
        );
    }

    #[test]
    fn bucket_starts_read_as_dates_and_times() {
        use super::super::Bucket;
        assert_eq!(
            bucket_start("2024-01-02T13:05:00Z", Bucket::Minute),
            "2024-01-02 13:05"
        );
        assert_eq!(
            bucket_start("2024-01-02T13:00:00Z", Bucket::Hour),
            "2024-01-02 13:00"
        );
        assert_eq!(
            bucket_start("2024-01-02T13:00:00+07:00", Bucket::Hour),
            "2024-01-02 13:00"
        );
        assert_eq!(
            bucket_start("2024-01-02T00:00:00Z", Bucket::Day),
            "2024-01-02"
        );
        assert_eq!(bucket_start("-99999", Bucket::Day), "-99999");
    }
}
