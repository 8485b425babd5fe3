//! The table renderer: aligned, readable at 80 columns, a bar for each share.
//!
//! Log fields are written by strangers. A URL or user agent can carry terminal escape
//! sequences; printed raw, they could recolour, retitle or rewrite the user's terminal. So
//! every value is shown through [`safe`], which escapes control and bidi characters, and is
//! cut with an ellipsis to fit its column.

use std::fmt::Write;

use super::{CLASSES, Ranked, Report, Section, percent};

const WIDTH: usize = 80;
const BAR: usize = 20;

/// A value made safe for a terminal: control characters (C0, DEL, C1) and bidi overrides are
/// escaped as `\xHH` / `\u{HHHH}`, and the text is cut to `max` characters with `…`.
pub fn safe(value: &str, max: usize) -> String {
    let mut out = String::with_capacity(value.len().min(max + 8));
    let mut shown = 0;
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
            while shown + 1 > max && out.pop().is_some() {
                shown -= 1;
            }
            out.push('…');
            return out;
        }
        shown += len;
        out.push_str(&piece);
    }
    out
}

fn bar(part: u64, whole: u64) -> String {
    if whole == 0 {
        return String::new();
    }
    let cells = ((u128::from(part) * BAR as u128 * 2 + u128::from(whole)) / (2 * u128::from(whole)))
        as usize;
    let cells = if part > 0 { cells.max(1) } else { 0 };
    "█".repeat(cells)
}

/// Thousands separators, for counts people read.
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn heading(out: &mut String, title: &str) {
    let _ = writeln!(out, "\n{title}\n{}", "─".repeat(title.chars().count()));
}

/// "Top 10 URLs", or "All URLs" for a ranking that was not cut (`--top 0`).
fn ranking_title(top: usize, what: &str) -> String {
    if top == usize::MAX {
        format!("All {what}")
    } else {
        format!("Top {top} {what}")
    }
}

fn ranking(out: &mut String, title: &str, rows: &[Ranked], total: u64, label: &str) {
    heading(out, title);
    if rows.is_empty() {
        let _ = writeln!(out, "  (none)");
        return;
    }
    let _ = writeln!(out, "  {:>11} {:>6}  {:<BAR$}  {label}", "hits", "%", "");
    let key_width = WIDTH - (2 + 11 + 1 + 6 + 2 + BAR + 2);
    for r in rows {
        let _ = writeln!(
            out,
            "  {:>11} {:>6}  {:<BAR$}  {}",
            count(r.hits),
            percent(r.hits, total),
            bar(r.hits, total),
            safe(&r.key, key_width)
        );
    }
}

/// Renders the chosen sections as text tables.
pub fn render(report: &Report, sections: &[Section]) -> Vec<u8> {
    let mut out = String::new();
    let s = &report.summary;
    let total = s.requests;
    let _ = write!(out, "log-pipeline report");
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
        return out.into_bytes();
    }
    for section in sections {
        match section {
            Section::Summary => {
                heading(&mut out, "Summary");
                let rows = [
                    ("requests", count(s.requests)),
                    ("unique visitors", count(s.visitors)),
                    ("client IPs", count(s.distinct_ips)),
                    ("bytes sent", count(s.bytes)),
                    ("first request", s.first.clone().unwrap_or_default()),
                    ("last request", s.last.clone().unwrap_or_default()),
                    ("4xx share", format!("{}%", percent(s.client_errors, total))),
                    ("5xx share", format!("{}%", percent(s.server_errors, total))),
                ];
                for (k, v) in rows {
                    let _ = writeln!(out, "  {k:<18} {v}");
                }
            }
            Section::Status => {
                heading(&mut out, "Status codes");
                let _ = writeln!(out, "  {:<6} {:>11} {:>6}  bar", "status", "hits", "%");
                for (class, n) in CLASSES.iter().zip(report.classes) {
                    if n == 0 {
                        continue;
                    }
                    let _ = writeln!(
                        out,
                        "  {:<6} {:>11} {:>6}  {}",
                        class,
                        count(n),
                        percent(n, total),
                        bar(n, total)
                    );
                    let digit = class.as_bytes()[0];
                    for &(code, hits) in &report.status {
                        let in_class = match digit {
                            b'o' => !(200..600).contains(&code),
                            d => code / 100 == u16::from(d - b'0'),
                        };
                        if in_class {
                            let _ = writeln!(
                                out,
                                "    {:<4} {:>11} {:>6}  {}",
                                code,
                                count(hits),
                                percent(hits, total),
                                bar(hits, total)
                            );
                        }
                    }
                }
            }
            Section::Urls => {
                heading(&mut out, &ranking_title(report.top, "URLs"));
                let _ = writeln!(
                    out,
                    "  {:>11} {:>6} {:>14} {:>9}  url",
                    "hits", "%", "bytes", "visitors"
                );
                let key_width = WIDTH - (2 + 11 + 1 + 6 + 1 + 14 + 1 + 9 + 2);
                for r in &report.urls {
                    let _ = writeln!(
                        out,
                        "  {:>11} {:>6} {:>14} {:>9}  {}",
                        count(r.hits),
                        percent(r.hits, total),
                        count(r.bytes),
                        count(r.visitors),
                        safe(&r.key, key_width)
                    );
                }
            }
            Section::NotFound => ranking(
                &mut out,
                &ranking_title(report.top, "URLs answered 404"),
                &report.not_found,
                total,
                "url",
            ),
            Section::Clients => ranking(
                &mut out,
                &ranking_title(report.top, "clients"),
                &report.clients,
                total,
                "ip",
            ),
            Section::Agents => ranking(
                &mut out,
                &ranking_title(report.top, "user agents"),
                &report.agents,
                total,
                "user agent",
            ),
            Section::Referrers => ranking(
                &mut out,
                &ranking_title(report.top, "referrers"),
                &report.referrers,
                total,
                "referrer",
            ),
            Section::Methods => ranking(&mut out, "Methods", &report.methods, total, "method"),
            Section::Traffic => {
                heading(&mut out, &format!("Traffic per {}", report.bucket.name()));
                let peak = report.traffic.iter().map(|t| t.total()).max().unwrap_or(0);
                let _ = writeln!(
                    out,
                    "  {:<20} {:>9} {:>7} {:>7} {:>7} {:>7}  bar",
                    "start (UTC)", "hits", "2xx", "3xx", "4xx", "5xx"
                );
                for t in &report.traffic {
                    let _ = writeln!(
                        out,
                        "  {:<20} {:>9} {:>7} {:>7} {:>7} {:>7}  {}",
                        t.start,
                        count(t.total()),
                        count(t.counts[0]),
                        count(t.counts[1]),
                        count(t.counts[2]),
                        count(t.counts[3]),
                        bar(t.total(), peak).chars().take(13).collect::<String>()
                    );
                }
            }
        }
    }
    out.into_bytes()
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
    }

    #[test]
    fn counts_and_bars() {
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(12), "12");
        assert_eq!(bar(1, 2).chars().count(), 10);
        assert_eq!(bar(1, 1000).chars().count(), 1);
        assert_eq!(bar(0, 10), "");
    }
}
