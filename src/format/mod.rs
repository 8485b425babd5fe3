//! Log formats other than the built-in Combined: `--log-format` (issue #15).
//!
//! A format is given by name (`common`, `combined`, `vcombined`) or as the definition the
//! server was configured with (an Apache `LogFormat` string or an nginx `log_format` string).
//! A definition is read once into a [`Format`] and compiled into steps that a [`Scanner`]
//! runs over each line: no regex and no interpretation of the definition per line. The same
//! steps also give a regex ([`Format::regex`]), the readable definition the scanner is held
//! equal to by a differential test.
//!
//! Reading rules shared by all formats, so that Combined from its definition reads exactly
//! as the built-in parser does:
//! - a field ends at the first byte of the literal after it (a space, `]`, `:`); a field
//!   between `"` is quoted and may hold `\"` and `\\`;
//! - a line may stop where the rest of the format holds only fields a Common line also leaves
//!   out (referrer, user agent, forwarded-for, times, opaque fields), and may go on past the
//!   format's end after a space (fields a server appends);
//! - `-` or an empty value is absent, as in `parse`.

mod apache;
mod definition;
mod fields;
mod find;
mod json;
mod nginx;
mod pattern;
mod scanner;
mod vendor;
pub mod w3c;

use std::sync::Arc;

use regex::bytes::Regex;

use crate::entry::LogEntry;
use crate::parse::{Parser, Reject};

pub use apache::apache;
pub use definition::{Clock, Escape, Field, Format, FormatError, Piece, Unit};
pub use json::{JsonParser, Schema};
pub use nginx::nginx;
pub use pattern::RegexParser;
pub use scanner::Scanner;
pub use vendor::TRAEFIK_CLF;

/// Apache's `common`.
pub const COMMON: &str = r#"%h %l %u %t \"%r\" %>s %b"#;
/// Apache's `combined`.
pub const COMBINED: &str = r#"%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\""#;
/// ingress-nginx's default `upstreaminfo` (its documentation's `log-format-upstream`), the
/// access log of Kubernetes' most used ingress controller.
pub const INGRESS_NGINX: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_length $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length $upstream_response_time $upstream_status $req_id"#;
/// Debian's `vhost_combined`, written to `other_vhosts_access.log`.
pub const VCOMBINED: &str = r#"%v:%p %h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\""#;

impl Format {
    /// A parser for one thread.
    pub fn scanner(&self) -> Scanner {
        Scanner::new(Arc::new(self.clone()))
    }

    /// The format as a regex over bytes (field `i` of the compiled steps is group `s{i}`).
    pub fn regex(&self) -> Regex {
        Regex::new(&pattern::source(self)).expect("a format's regex compiles")
    }

    /// A parser through [`Format::regex`]: slower, for tests against the scanner.
    pub fn regex_parser(&self) -> RegexParser<'_> {
        RegexParser::new(self)
    }
}

/// A format as chosen on the command line (`--log-format`).
#[derive(Debug, Clone)]
pub struct LogFormat {
    name: String,
    format: Arc<Format>,
    /// How the lines are read beyond `format`.
    kind: Kind,
}

/// Which parser reads a [`LogFormat`]'s lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The built-in Combined scanner (`parse::Parser`).
    Builtin,
    /// The compiled `format`.
    Compiled,
    /// W3C extended: each `#Fields:` line compiles to a format of its own (see [`w3c`]).
    W3c,
    /// A JSON log, read by key (see [`json`]); `format` lists the fields its mapping fills.
    Json(Schema),
}

impl PartialEq for LogFormat {
    fn eq(&self, other: &LogFormat) -> bool {
        self.name == other.name
    }
}

impl Eq for LogFormat {}

impl LogFormat {
    /// A name (`common`, `combined`, `vcombined` or `vhost_combined`), an Apache definition
    /// (it holds `%`) or an nginx one (it holds `$`), or what [`LogFormat::name`] gave
    /// (`apache:<definition>`, `nginx:<definition>`). `auto` is not a format: see [`detect`].
    pub fn from_arg(arg: &str) -> Result<LogFormat, FormatError> {
        let trimmed = arg.trim();
        let offset = arg.len() - arg.trim_start().len();
        let prefixed = |prefix: &str| trimmed.strip_prefix(prefix);
        let located = |e: FormatError, skip: usize| FormatError {
            position: e.position + offset + skip,
            ..e
        };
        if let Some(def) = prefixed("apache:") {
            return Ok(LogFormat {
                name: format!("apache:{def}"),
                format: Arc::new(apache(def).map_err(|e| located(e, 7))?),
                kind: Kind::Compiled,
            });
        }
        if let Some(def) = prefixed("nginx:") {
            return Ok(LogFormat {
                name: format!("nginx:{def}"),
                format: Arc::new(nginx(def).map_err(|e| located(e, 6))?),
                kind: Kind::Compiled,
            });
        }
        let named = |name: &str, def: &str, kind| LogFormat {
            name: name.to_string(),
            format: Arc::new(apache(def).expect("the named definitions are valid")),
            kind,
        };
        match arg.trim() {
            "combined" => Ok(named("combined", COMBINED, Kind::Builtin)),
            "common" => Ok(named("common", COMMON, Kind::Compiled)),
            "vcombined" | "vhost_combined" => Ok(named("vcombined", VCOMBINED, Kind::Compiled)),
            "ingress-nginx" => Ok(LogFormat {
                name: "ingress-nginx".to_string(),
                format: Arc::new(nginx(INGRESS_NGINX).expect("a valid definition")),
                kind: Kind::Compiled,
            }),
            name @ ("caddy" | "caddy-console" | "traefik") => {
                let schema = Schema::from_name(name).expect("a JSON schema's name");
                Ok(LogFormat {
                    name: name.to_string(),
                    format: Arc::new(schema.format()),
                    kind: Kind::Json(schema),
                })
            }
            "w3c" | "iis" => Ok(LogFormat {
                name: "w3c".to_string(),
                // What the fields are is known line by line; this one says which fields the
                // format may fill (see `has`).
                format: Arc::new(w3c::fields_format(W3C_FIELDS).expect("a valid field list")),
                kind: Kind::W3c,
            }),
            name if vendor::NAMES.contains(&name) => Ok(LogFormat {
                name: name.to_string(),
                format: Arc::new(vendor::named(name).expect("one of the names")),
                kind: Kind::Compiled,
            }),
            def if def.contains('%') => Ok(LogFormat {
                name: format!("apache:{def}"),
                format: Arc::new(apache(def).map_err(|e| located(e, 0))?),
                kind: Kind::Compiled,
            }),
            def if def.contains('$') => Ok(LogFormat {
                name: format!("nginx:{def}"),
                format: Arc::new(nginx(def).map_err(|e| located(e, 0))?),
                kind: Kind::Compiled,
            }),
            _ => Err(FormatError::new(
                0,
                "not a format name (common, combined, vcombined, ingress-nginx, w3c, elb, alb, cloudfront, \
                 haproxy, traefik-clf, caddy, caddy-console, traefik), an Apache LogFormat \
                 string (with %) or an nginx log_format string (with $)",
            )),
        }
    }

    /// A stable description to record in a checkpoint: the name, or `apache:`/`nginx:` and
    /// the definition as given (trimmed).
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// The formats `auto` chooses from. An nginx `escape=json` log is not among them: its
    /// keys are the user's own, so only its definition says how to read it.
    pub fn candidates() -> Vec<LogFormat> {
        let names = ["common", "combined", "vcombined", "ingress-nginx", "w3c"];
        let json = ["caddy", "caddy-console", "traefik"];
        names
            .into_iter()
            .chain(vendor::NAMES)
            .chain(json)
            .map(|n| LogFormat::from_arg(n).expect("a named format"))
            .collect()
    }

    /// The compiled definition.
    pub fn format(&self) -> &Format {
        &self.format
    }

    /// Does the format hold a field that `wanted` picks?
    pub fn has(&self, wanted: impl Fn(&Field) -> bool) -> bool {
        (self.format.pieces.iter())
            .any(|p| matches!(p, Piece::Field { field, .. } if wanted(field)))
    }

    /// Does the format fill fields beyond Combined's (see [`crate::entry::Extra`]), which a
    /// CSV of an earlier version has no columns for?
    pub fn has_extra_fields(&self) -> bool {
        self.has(|f| {
            matches!(
                f,
                Field::Vhost
                    | Field::Port
                    | Field::ResponseTime(_)
                    | Field::UpstreamTime
                    | Field::ForwardedFor
                    | Field::AbsoluteRequest
                    | Field::Timings(_)
            )
        })
    }

    /// A parser for one thread.
    pub fn parser(&self) -> LineParser {
        LineParser(match self.kind {
            Kind::Builtin => Inner::Builtin(Parser::default()),
            Kind::Compiled => Inner::Compiled(Scanner::new(Arc::clone(&self.format))),
            Kind::W3c => Inner::W3c(w3c::W3cParser::default()),
            Kind::Json(schema) => Inner::Json(JsonParser::new(schema)),
        })
    }

    /// Do some lines say how the lines after them are written (W3C's `#Fields:`)? A reader
    /// then hands each parser the last such line before its first (see [`LineParser::follow`]).
    pub fn header(&self, line: &[u8]) -> bool {
        self.kind == Kind::W3c && w3c::is_fields_line(line)
    }

    /// Are lines read with the header lines before them (see [`LogFormat::header`])?
    pub fn has_headers(&self) -> bool {
        self.kind == Kind::W3c
    }

    /// The last header line that starts from `from` (a line start) and before `offset` in
    /// `file`, for a read that resumes at `offset`.
    pub fn header_before(
        &self,
        file: &std::fs::File,
        from: u64,
        offset: u64,
    ) -> std::io::Result<Option<Arc<[u8]>>> {
        match self.has_headers() && offset > from {
            true => w3c::fields_before(file, from, offset),
            false => Ok(None),
        }
    }

    /// The last header line among `bytes`, the next bytes of a file read from its start
    /// (`carry` keeps a line cut between two calls), for a compressed file whose head before
    /// a resume is read anyway.
    pub fn last_header_in(&self, bytes: &[u8], carry: &mut Vec<u8>) -> Option<Arc<[u8]>> {
        match self.has_headers() {
            true => w3c::last_fields_in(bytes, carry),
            false => None,
        }
    }
}

/// Every field an IIS log may name that has a column: what `w3c` may fill.
const W3C_FIELDS: &[u8] = b"#Fields: date time s-sitename c-ip cs-username cs-method cs-uri-stem \
    cs-uri-query cs-version sc-status sc-bytes cs(Referer) cs(User-Agent) s-port time-taken \
    x-forwarded-for";

/// Parses lines of one [`LogFormat`]; one per thread.
#[derive(Debug)]
pub struct LineParser(Inner);

#[derive(Debug)]
enum Inner {
    Builtin(Parser),
    Compiled(Scanner),
    W3c(w3c::W3cParser),
    Json(JsonParser),
}

impl LineParser {
    /// Parses one line (without its `\n`; a trailing `\r` is ignored).
    pub fn parse<'a>(&mut self, line: &'a [u8]) -> Result<LogEntry<'a>, Reject> {
        match &mut self.0 {
            Inner::Builtin(p) => p.parse(line),
            Inner::Compiled(s) => s.parse(line),
            Inner::W3c(p) => p.parse(line),
            Inner::Json(p) => p.parse(line),
        }
    }

    /// Reads the next lines as following `header`, the last header line before them (see
    /// [`LogFormat::header`]), or none: for a parser that starts past a file's first line.
    pub fn follow(&mut self, header: Option<&Arc<[u8]>>) {
        if let Inner::W3c(p) = &mut self.0 {
            p.set_fields(header);
        }
    }
}

/// Picks the candidate format that reads `lines` (the first lines of a log).
///
/// The rule: the winner must parse every line that any candidate parses (when no format
/// does, the lines are of several formats and none is picked); among those, the one that
/// reads the most fields in all (`-` counts: it is a field the server wrote), then the one
/// with the fewest fields of its own (a file of Common lines is `common`: `combined` reads it
/// too but finds nothing more); a tie after that is refused, naming the tied formats.
pub fn detect(lines: &[&[u8]]) -> Result<LogFormat, String> {
    let candidates = LogFormat::candidates();
    let results: Vec<(Vec<bool>, usize)> = candidates
        .iter()
        .map(|format| {
            let mut parser = format.parser();
            let mut filled = 0;
            let parsed = lines
                .iter()
                .map(|line| {
                    let ok = parser.parse(line).is_ok();
                    if ok {
                        filled += match format.kind {
                            Kind::Json(schema) => json::fields_read(schema, line),
                            _ => fields_read(&format.format, line),
                        };
                    }
                    ok
                })
                .collect();
            (parsed, filled)
        })
        .collect();
    let readable: Vec<bool> = (0..lines.len())
        .map(|i| results.iter().any(|(parsed, _)| parsed[i]))
        .collect();
    if !readable.contains(&true) {
        return Err(format!(
            "none of the formats ({}) reads these lines",
            names(&candidates)
        ));
    }
    let complete: Vec<usize> = (0..candidates.len())
        .filter(|&c| results[c].0 == readable)
        .collect();
    if complete.is_empty() {
        let partial: Vec<&str> = (0..candidates.len())
            .filter(|&c| results[c].0.contains(&true))
            .map(|c| candidates[c].name.as_str())
            .collect();
        return Err(format!(
            "the lines are in several formats ({}): no one format reads them all",
            partial.join(", ")
        ));
    }
    let key = |c: usize| {
        (
            results[c].1,
            usize::MAX - candidates[c].format.field_count(),
        )
    };
    let best = complete.iter().map(|&c| key(c)).max().expect("not empty");
    let tied: Vec<usize> = complete.into_iter().filter(|&c| key(c) == best).collect();
    match tied[..] {
        [one] => Ok(candidates[one].clone()),
        _ => Err(format!(
            "the lines fit several formats equally ({}); give --log-format",
            tied.iter()
                .map(|&c| candidates[c].name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn names(formats: &[LogFormat]) -> String {
    formats
        .iter()
        .map(|f| f.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// How many of its fields `format` found in `line`, a `-` included: how much of the line a
/// format understood (a Combined line whose referrer and agent are `-` is still Combined).
fn fields_read(format: &Format, line: &[u8]) -> usize {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    scanner::split(format, line).map_or(0, |slots| slots.iter().flatten().count())
}

#[cfg(test)]
mod tests;
