//! The rejected lines a store kept, grouped by reason, with the first of each as a sample:
//! from a database's `rejects` table, or from the `--rejects` file `parse-to-csv` wrote (a
//! CSV has no room for them). Both give the same groups for the same lines.
//!
//! Rejects have no time, status or URL of their own: the report's filters do not apply.

use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension};

use crate::parse::{Reject, TimestampError};
use crate::report::RejectGroup;

/// The reasons a line is rejected for, by their stable names (see [`Reject::slug`]).
fn slugs() -> impl Iterator<Item = &'static str> {
    reasons().map(Reject::slug)
}

fn reasons() -> impl Iterator<Item = Reject> {
    [
        Reject::Format,
        Reject::Timestamp(TimestampError::Shape),
        Reject::Status,
        Reject::Bytes,
        Reject::TooLong,
        Reject::Client,
        Reject::ResponseTime,
        Reject::Port,
        Reject::Directive,
    ]
    .into_iter()
}

/// A reason as the database stores it, which is the sentence the tools print (`not an
/// access-log line`, `bad timestamp: …`), by its stable name, as the rejects file has it.
/// A reason no version of the tools wrote is kept as it is.
pub(super) fn slug_of(stored: &str) -> String {
    let known = reasons().find(|r| {
        stored == r.slug()
            || stored == r.to_string()
            || (matches!(r, Reject::Timestamp(_)) && stored.starts_with("bad timestamp"))
    });
    known.map_or_else(|| stored.to_string(), |r| r.slug().to_string())
}

/// The groups of the `rejects` table, read in the caller's snapshot; none when the database
/// has no such table (one of the original scripts', say).
pub fn from_database(conn: &Connection) -> anyhow::Result<Vec<RejectGroup>> {
    let exists: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'rejects'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_none() {
        return Ok(Vec::new());
    }
    // With the id of its first line, the sample. Timestamps rejected for different causes
    // are stored as different sentences: one group, whose sample is the first of them all.
    let mut groups: Vec<(i64, RejectGroup)> = Vec::new();
    let mut by_reason =
        conn.prepare("SELECT reason, COUNT(*), MIN(id) FROM rejects GROUP BY reason")?;
    let mut rows = by_reason.query([])?;
    while let Some(row) = rows.next()? {
        let (stored, lines, first): (String, i64, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
        let reason = slug_of(&stored);
        match groups.iter_mut().find(|(_, g)| g.reason == reason) {
            Some((id, group)) => {
                group.lines += lines as u64;
                *id = (*id).min(first);
            }
            None => groups.push((
                first,
                RejectGroup {
                    reason,
                    lines: lines as u64,
                    source: String::new(),
                    line: 0,
                    sample: String::new(),
                },
            )),
        }
    }
    let mut sample = conn.prepare("SELECT source, line, raw FROM rejects WHERE id = ?1")?;
    for (id, group) in &mut groups {
        let (source, line, raw): (String, i64, Vec<u8>) =
            sample.query_row([*id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        (group.source, group.line) = (source, line as u64);
        group.sample = String::from_utf8_lossy(&raw).into_owned();
    }
    Ok(groups.into_iter().map(|(_, group)| group).collect())
}

/// The groups of a `--rejects` file, whose lines are `SOURCE:LINE: REASON: RAW`.
pub fn from_file(path: &Path) -> anyhow::Result<Vec<RejectGroup>> {
    let context = || format!("cannot read rejects file {}", path.display());
    let file = std::fs::File::open(path).with_context(context)?;
    let mut groups: Vec<RejectGroup> = Vec::new();
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    let mut number = 0u64;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).with_context(context)? == 0 {
            break;
        }
        number += 1;
        let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let Some((source, line, reason, raw)) = split(text) else {
            anyhow::bail!(
                "{}: line {number} is not SOURCE:LINE: REASON: TEXT as parse-to-csv \
                 --rejects writes (is this a rejects file?)",
                path.display()
            );
        };
        match groups.iter_mut().find(|g| g.reason == reason) {
            Some(group) => group.lines += 1,
            None => groups.push(RejectGroup {
                reason: reason.to_string(),
                lines: 1,
                source,
                line,
                sample: String::from_utf8_lossy(raw).into_owned(),
            }),
        }
    }
    Ok(groups)
}

/// `SOURCE:LINE: REASON: RAW` split. The source is a path and may hold `: ` itself, and the
/// raw line anything, so the split is at the first `:LINE: REASON: ` whose reason is one the
/// tools write.
fn split(text: &[u8]) -> Option<(String, u64, &'static str, &[u8])> {
    let colons = text.windows(2).enumerate().filter(|(_, w)| w == b": ");
    for (at, _) in colons {
        let before = &text[..at];
        let digits = before
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let colon = before.len() - digits;
        if digits == 0 || colon == 0 || before[colon - 1] != b':' {
            continue;
        }
        let after = &text[at + 2..];
        let Some(reason) = slugs()
            .find(|r| after.starts_with(r.as_bytes()) && after[r.len()..].starts_with(b": "))
        else {
            continue;
        };
        let line = std::str::from_utf8(&before[colon..]).ok()?.parse().ok()?;
        let source = String::from_utf8_lossy(&before[..colon - 1]).into_owned();
        return Some((source, line, reason, &after[reason.len() + 2..]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejects_line_splits_at_its_line_number_and_reason() {
        let (source, line, reason, raw) =
            split(b"logs/access.log:17: format: GET / \"a: format: b\"").unwrap();
        assert_eq!(
            (source.as_str(), line, reason),
            ("logs/access.log", 17, "format")
        );
        assert_eq!(raw, b"GET / \"a: format: b\"");
        // A path with `: ` and digits in it.
        let (source, line, reason, raw) = split(b"odd: 12: dir/x.log:3: too-long: ").unwrap();
        assert_eq!(
            (source.as_str(), line, reason, raw),
            ("odd: 12: dir/x.log", 3, "too-long", &b""[..])
        );
        assert!(split(b"no reason here").is_none());
        assert!(split(b"x: format: y").is_none(), "no line number");
        // The first reason wins, whatever the raw line holds after it.
        let (_, line, reason, raw) = split(b"a.log:3: status: x.log:9: format: y").unwrap();
        assert_eq!(
            (line, reason, raw),
            (3, "status", &b"x.log:9: format: y"[..])
        );
    }
}
