//! The compiled scanner: a [`Format`]'s steps run over a line's bytes in one pass, with no
//! regex and no allocation, as `parse::Parser` does for the built-in Combined format.

use std::sync::Arc;

use crate::entry::LogEntry;
use crate::parse::Reject;

use super::definition::{Format, SLOTS, Slots, Step};
use super::fields::{LastSecond, build, parse_clock};
use super::find::either;

/// A per-thread parser for one compiled format. It remembers the last time it converted,
/// because consecutive lines of a busy log mostly share their second.
#[derive(Debug, Clone)]
pub struct Scanner {
    format: Arc<Format>,
    last: LastSecond,
}

impl Scanner {
    pub(crate) fn new(format: Arc<Format>) -> Scanner {
        Scanner {
            format,
            last: LastSecond::default(),
        }
    }

    /// Parses one line (without its `\n`; a trailing `\r` is ignored).
    pub fn parse<'a>(&mut self, line: &'a [u8]) -> Result<LogEntry<'a>, Reject> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if self.format.directive(line) {
            return Err(Reject::Directive);
        }
        let slots = split(&self.format, line).ok_or(Reject::Format)?;
        let clock = &self.format.clock;
        build(&slots, line, &self.format, |time| {
            (self.last).convert(Some(clock), time, |second| parse_clock(clock, second))
        })
    }
}

/// Splits `line` by the format's steps: each step mirrors one piece of the regex that
/// [`super::pattern`] builds from the same steps, which a differential test holds it to.
pub(crate) fn split<'a>(format: &Format, line: &'a [u8]) -> Option<Slots<'a>> {
    let mut slots: Slots<'a> = [None; SLOTS];
    run(format, line, 0, 0, &mut slots).then_some(slots)
}

/// Runs the steps from `first` on, at `pos`. Every step but a list has one way to match
/// (its field ends at a byte that cannot be in it); a list (`0.1, 0.2 : 0.3`) may end after
/// any of its values, and, as the regex does, the longest that lets the rest match wins.
fn run<'a>(
    format: &Format,
    line: &'a [u8],
    first: usize,
    mut pos: usize,
    slots: &mut Slots<'a>,
) -> bool {
    for (i, step) in format.steps.iter().enumerate().skip(first) {
        // The end of the line first: it is rarely there, and asking the format costs more.
        if pos == line.len() && format.may_stop(i) {
            return true;
        }
        let rest = &line[pos..];
        let (slot, value) = match step {
            Step::Literal(bytes) => {
                // Mostly one byte, the separator: compared as such, not by a call to `memcmp`.
                let found = match &bytes[..] {
                    [byte] => rest.first() == Some(byte),
                    _ => rest.starts_with(bytes),
                };
                if !found {
                    return false;
                }
                pos += bytes.len();
                continue;
            }
            Step::Token {
                slot,
                stop,
                also,
                skips,
            } => {
                let mut len = until(rest, *stop, *also);
                for _ in 0..*skips {
                    if len == rest.len() {
                        return false;
                    }
                    len += 1 + until(&rest[len + 1..], *stop, *also);
                }
                (slot, &rest[..len])
            }
            Step::Syslog => {
                pos += syslog(rest);
                continue;
            }
            Step::Quoted { slot } => {
                let Some(len) = quoted(rest) else {
                    return false;
                };
                pos += 2;
                (slot, &rest[1..len + 1])
            }
            Step::List { slot, stop } => {
                let first = item(rest, *stop);
                if separator(&rest[first..], *stop).is_none() {
                    // One value (`-`, `0.004`): the list ends there, as a token would.
                    (slot, &rest[..first])
                } else {
                    let ends = list_ends(rest, *stop);
                    for &len in ends.iter().rev() {
                        let mut tried = *slots;
                        if let Some(slot) = slot {
                            tried[*slot as usize].get_or_insert(&rest[..len]);
                        }
                        if run(format, line, i + 1, pos + len, &mut tried) {
                            *slots = tried;
                            return true;
                        }
                    }
                    return false;
                }
            }
        };
        pos += value.len();
        if let Some(slot) = slot {
            slots[*slot as usize].get_or_insert(value);
        }
    }
    // Fields a server appends after the format's own (as the built-in parser allows after
    // the user agent) are read past.
    pos == line.len() || line[pos] == format.sep
}

/// [`super::definition::SYSLOG`] at the start of `b`: the length of the header up to and
/// with the space after its tag's `:`, or 0 when there is none (HAProxy logging to stdout,
/// `log stdout format raw`). A `<PRI>` may lead it, and a BSD timestamp may have a fraction
/// of a second (journald's `short-precise`). The tag is `[^ ]*:` before a space, that is the
/// whole word up to the space, ending with `:`.
fn syslog(b: &[u8]) -> usize {
    let pri = match b {
        [b'<', rest @ ..] => {
            let d = rest.iter().take_while(|c| c.is_ascii_digit()).count();
            if (1..=3).contains(&d) && rest.get(d) == Some(&b'>') {
                d + 2
            } else {
                0
            }
        }
        _ => 0,
    };
    syslog_after(&b[pri..]).map_or(0, |len| pri + len)
}

fn syslog_after(b: &[u8]) -> Option<usize> {
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let stamp = if b.first().is_some_and(u8::is_ascii_uppercase)
        && b.get(1..3)
            .is_some_and(|m| m.iter().all(u8::is_ascii_lowercase))
        && at(3, b' ')
        && b.get(4).is_some_and(|&c| c == b' ' || c.is_ascii_digit())
        && digits(5..6)
        && at(6, b' ')
        && digits(7..9)
        && at(9, b':')
        && digits(10..12)
        && at(12, b':')
        && digits(13..15)
    {
        let fraction = b[15..]
            .iter()
            .skip(1)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if at(15, b'.') && fraction > 0 {
            16 + fraction
        } else {
            15
        }
    } else if digits(0..4)
        && at(4, b'-')
        && digits(5..7)
        && at(7, b'-')
        && digits(8..10)
        && at(10, b'T')
    {
        11 + until(&b[11..], b' ', b' ')
    } else {
        return None;
    };
    if !at(stamp, b' ') {
        return None;
    }
    let host = until(&b[stamp + 1..], b' ', b' ');
    let tag_at = stamp + 1 + host;
    if host == 0 || !at(tag_at, b' ') {
        return None;
    }
    let end = tag_at + 1 + until(&b[tag_at + 1..], b' ', b' ');
    (b[end - 1] == b':' && end > tag_at + 1 && at(end, b' ')).then_some(end + 1)
}

/// `"(?:[^"\\]|\\.)*"` at the start of `b`: the length of the text between the quotes.
fn quoted(b: &[u8]) -> Option<usize> {
    if b.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    loop {
        i += memchr::memchr2(b'"', b'\\', &b[i..])?;
        if b[i] == b'"' {
            return Some(i - 1);
        }
        i += 2;
        if i > b.len() {
            return None;
        }
    }
}

/// Where a list at the start of `b` may end: after its first value, and after each further
/// one joined by `, ` or ` : `, shortest first.
fn list_ends(b: &[u8], stop: u8) -> Vec<usize> {
    let mut len = item(b, stop);
    let mut ends = vec![len];
    while let Some(sep) = separator(&b[len..], stop) {
        len += sep + item(&b[len + sep..], stop);
        ends.push(len);
    }
    ends
}

/// One value of a list: `[^ ,stop]*`.
fn item(b: &[u8], stop: u8) -> usize {
    b.iter()
        .position(|&c| c == b' ' || c == b',' || c == stop)
        .unwrap_or(b.len())
}

/// The length of the `, ` or ` : ` that joins another value to a list, when one follows.
fn separator(b: &[u8], stop: u8) -> Option<usize> {
    let sep = if b.starts_with(b", ") {
        2
    } else if b.starts_with(b" : ") {
        3
    } else {
        return None;
    };
    (item(&b[sep..], stop) > 0).then_some(sep)
}

/// The length of `b` up to its first `stop` or `also` byte.
fn until(b: &[u8], stop: u8, also: u8) -> usize {
    either(b, stop, also).unwrap_or(b.len())
}
