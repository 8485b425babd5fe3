//! nginx `log_format` strings, read into a [`Format`].
//!
//! Accepted as written in `nginx.conf` too: a `log_format name` prefix, several quoted pieces
//! (`'...' '...'`, nginx joins them) and the closing `;`, so a user can paste the directive.
//! Its `escape=` parameter says how quoted values are decoded; a bare definition that is a
//! JSON object (`{"time":"$time_iso8601",...}`) is taken as `escape=json`, the only escaping
//! under which nginx writes valid JSON.

use super::definition::{Clock, Escape, Field, Format, FormatError, Piece, Unit};

/// Reads an nginx `log_format` definition.
pub fn nginx(def: &str) -> Result<Format, FormatError> {
    let escape = escape_parameter(def)?;
    let (body, offsets) = join_pieces(def);
    let escape = escape.unwrap_or(if body.trim_start().starts_with('{') {
        Escape::Json
    } else {
        Escape::Default
    });
    let b = body.as_bytes();
    let mut pieces = Vec::new();
    let mut literal = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            literal.push(b[i]);
            i += 1;
            continue;
        }
        let at = offsets(i);
        let (name, next) = if b.get(i + 1) == Some(&b'{') {
            let end = b[i..]
                .iter()
                .position(|&c| c == b'}')
                .ok_or_else(|| FormatError::new(at, "`${` is not closed by `}`"))?;
            (&body[i + 2..i + end], i + end + 1)
        } else {
            let len = b[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            (&body[i + 1..i + 1 + len], i + 1 + len)
        };
        if name.is_empty() {
            return Err(FormatError::new(at, "`$` names no variable"));
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut literal)));
        }
        pieces.push(Piece::Field {
            field: variable(&name.to_ascii_lowercase()),
            at,
        });
        i = next;
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    let mut format = Format::new(pieces, def.len())?;
    format.escape = escape;
    Ok(format)
}

/// The `escape=` parameter of a pasted `log_format name escape=json '...'` (or of a bare
/// `escape=json '...'`), when it has one.
fn escape_parameter(def: &str) -> Result<Option<Escape>, FormatError> {
    let start = def.len() - def.trim_start().len();
    let head = &def[start..];
    if !(head.starts_with("log_format") || head.starts_with("escape=")) {
        return Ok(None);
    }
    let head = &head[..head.find(['\'', '"']).unwrap_or(head.len())];
    let mut escape = None;
    for word in head.split_ascii_whitespace() {
        let Some(value) = word.strip_prefix("escape=") else {
            continue;
        };
        let at = start + (word.as_ptr() as usize - head.as_ptr() as usize);
        escape = Some(match value {
            "default" => Escape::Default,
            "json" => Escape::Json,
            "none" => Escape::None,
            _ => {
                return Err(FormatError::new(at, "escape= takes default, json or none"));
            }
        });
    }
    Ok(escape)
}

/// What `$name` writes.
fn variable(name: &str) -> Field {
    match name {
        "remote_addr" => Field::Client,
        "remote_user" => Field::User,
        "time_local" => Field::Time(Clock::Clf),
        "time_iso8601" => Field::Time(Clock::Iso8601),
        "msec" => Field::Time(Clock::EpochSeconds),
        "request" => Field::Request,
        "request_method" => Field::Method,
        "request_uri" => Field::Uri,
        "uri" | "document_uri" => Field::Path,
        "args" | "query_string" => Field::Query,
        "server_protocol" => Field::Protocol,
        "status" => Field::Status,
        "body_bytes_sent" | "bytes_sent" => Field::Bytes,
        "http_referer" => Field::Referrer,
        "http_user_agent" => Field::UserAgent,
        "http_x_forwarded_for" => Field::ForwardedFor,
        "request_time" => Field::ResponseTime(Unit::Seconds),
        "upstream_response_time" => Field::UpstreamTime,
        "host" | "server_name" => Field::Vhost,
        "server_port" => Field::Port,
        other => Field::Opaque {
            list: other.starts_with("upstream_"),
        },
    }
}

/// The format text out of `log_format name [escape=..] 'piece' 'piece';`, or the definition
/// itself when it is not a run of quoted pieces; with a map from a byte of the text back to
/// its offset in `def`, for errors.
fn join_pieces(def: &str) -> (String, impl Fn(usize) -> usize) {
    let mut starts: Vec<(usize, usize)> = Vec::new(); // (offset in text, offset in def)
    let mut text = String::new();
    let plain = |def: &str| (def.to_string(), vec![(0, 0)]);
    let (text, starts) = (|| {
        let b = def.as_bytes();
        let mut i = 0;
        // Skip `log_format name escape=json` up to the first quote. Without it, only
        // single quotes make pieces: a bare definition may well start with `"$request"`.
        let head = def.trim_start();
        if head.starts_with("log_format") || head.starts_with("escape=") {
            i = b.iter().position(|&c| c == b'\'' || c == b'"')?;
        } else if !def.trim_start().starts_with('\'') {
            return None;
        }
        loop {
            while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b';') {
                i += 1;
            }
            if i == b.len() {
                break;
            }
            let quote = b[i];
            if quote != b'\'' && quote != b'"' {
                return None;
            }
            i += 1;
            starts.push((text.len(), i));
            let start = i;
            while i < b.len() && b[i] != quote {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            if i >= b.len() {
                return None;
            }
            text.push_str(&def[start..i]);
            i += 1;
        }
        (!starts.is_empty()).then_some((text, starts))
    })()
    .unwrap_or_else(|| plain(def));
    let map = move |at: usize| {
        let (t, d) = starts
            .iter()
            .rev()
            .find(|(t, _)| *t <= at)
            .copied()
            .unwrap_or((0, 0));
        d + (at - t)
    };
    (text, map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_directive_and_bare_string_read_alike() {
        let bare = nginx(
            r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent"#,
        )
        .unwrap();
        let pasted = nginx(
            r#"log_format main '$remote_addr - $remote_user [$time_local] "$request" '
                   '$status ${body_bytes_sent}';"#,
        )
        .unwrap();
        assert_eq!(bare.steps, pasted.steps);
    }

    #[test]
    fn errors_point_into_the_definition_as_given() {
        let err = nginx(r#"'$remote_addr [$time_local] ' '"$request" $status ${x'"#).unwrap_err();
        assert_eq!(err.position, 50, "{err}");
        let err = nginx(r#"$remote_addr [$time_local] "$request" $ $status"#).unwrap_err();
        assert_eq!(err.position, 38, "{err}");
        assert!(nginx("$remote_addr [$time_local] $status").is_err());
        // A bare definition that starts with a quote is not a run of pieces.
        assert!(nginx(r#""$request" $status [$time_local]"#).is_ok());
    }
}
