//! A [`Format`] as a regex: the readable definition the compiled scanner is tested against,
//! as `parse::FORMAT` is for the built-in scanner. Not used to parse logs.

use regex::bytes::Regex;

use crate::entry::LogEntry;
use crate::parse::Reject;

use super::definition::{Format, SLOTS, SYSLOG, Slots, Step};
use super::fields::{build, parse_clock};

/// The regex source for `format`: field `i` of the steps is the group `s{i}`.
pub(crate) fn source(format: &Format) -> String {
    let byte = |b: u8| format!("\\x{b:02X}");
    let mut out = String::from("(?s-u)^");
    // Each place a line may stop opens an optional group, closed at the end: nested, so
    // that a line stops at one of them or goes on to the next.
    let mut open = 0;
    for (i, step) in format.steps.iter().enumerate() {
        if format.may_stop(i) {
            out.push_str("(?:");
            open += 1;
        }
        let group = |slot: bool, body: String| {
            if slot {
                format!("(?P<s{i}>{body})")
            } else {
                format!("(?:{body})")
            }
        };
        match step {
            Step::Literal(bytes) => bytes.iter().for_each(|&b| out.push_str(&byte(b))),
            Step::Token {
                slot,
                stop,
                also,
                skips,
            } => {
                let not = format!("[^{}{}]*", byte(*stop), byte(*also));
                let mut body = not.clone();
                for _ in 0..*skips {
                    body.push_str(&byte(*stop));
                    body.push_str(&not);
                }
                out.push_str(&group(slot.is_some(), body));
            }
            Step::Quoted { slot } => {
                out.push('"');
                out.push_str(&group(slot.is_some(), r#"(?:[^"\\]|\\.)*"#.to_string()));
                out.push('"');
            }
            Step::List { slot, stop } => {
                let item = format!("[^ ,{}]", byte(*stop));
                let body = format!("{item}*(?:(?:, | : ){item}+)*");
                out.push_str(&group(slot.is_some(), body));
            }
            Step::Syslog => out.push_str(SYSLOG),
        }
    }
    out.push_str(&format!("(?:{}.*)?", byte(format.sep)));
    out.push_str(&")?".repeat(open));
    out.push('$');
    out
}

/// Parses through the regex: the same [`Format`], split by the regex engine instead of the
/// compiled scanner.
#[derive(Debug, Clone)]
pub struct RegexParser<'f> {
    format: &'f Format,
    regex: Regex,
}

impl<'f> RegexParser<'f> {
    pub(crate) fn new(format: &'f Format) -> RegexParser<'f> {
        RegexParser {
            format,
            regex: Regex::new(&source(format)).expect("a format's regex compiles"),
        }
    }

    pub fn regex(&self) -> &Regex {
        &self.regex
    }

    pub fn parse<'a>(&self, line: &'a [u8]) -> Result<LogEntry<'a>, Reject> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if self.format.directive(line) {
            return Err(Reject::Directive);
        }
        let slots = self.split(line).ok_or(Reject::Format)?;
        build(&slots, line, self.format, |t| {
            parse_clock(&self.format.clock, t)
        })
    }

    pub(crate) fn split<'a>(&self, line: &'a [u8]) -> Option<Slots<'a>> {
        let caps = self.regex.captures(line)?;
        let mut slots: Slots<'a> = [None; SLOTS];
        for (i, step) in self.format.steps.iter().enumerate() {
            if let Step::Token {
                slot: Some(slot), ..
            }
            | Step::Quoted { slot: Some(slot) }
            | Step::List {
                slot: Some(slot), ..
            } = step
                && let Some(m) = caps.name(&format!("s{i}"))
            {
                slots[*slot as usize].get_or_insert(m.as_bytes());
            }
        }
        Some(slots)
    }
}
