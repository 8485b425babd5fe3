//! Apache `LogFormat` strings, read into a [`Format`].
//!
//! The string is accepted as it stands in `apache2.conf`: with its `\"` escapes and even
//! with the surrounding quotes and the nickname, or with plain quotes, so that a user can
//! paste whichever they have. Directives the entry has no place for are read past as opaque
//! fields, as the issue asks; conditions (`%!200,304{Referer}i`) and `<`/`>` are ignored.

use super::definition::{Clock, Field, Format, FormatError, Piece, Unit};

/// Reads an Apache `LogFormat` definition.
pub fn apache(def: &str) -> Result<Format, FormatError> {
    let (body, offset) = unwrap_directive(def);
    let b = body.as_bytes();
    let mut pieces = Vec::new();
    let mut literal = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if i + 1 < b.len() => {
                literal.push(match b[i + 1] {
                    b'n' => b'\n',
                    b't' => b'\t',
                    other => other,
                });
                i += 2;
            }
            b'%' => {
                let at = offset + i;
                i += 1;
                if b.get(i) == Some(&b'%') {
                    literal.push(b'%');
                    i += 1;
                    continue;
                }
                // Conditions and the original/final markers change nothing we read.
                while i < b.len() && matches!(b[i], b'<' | b'>' | b'!' | b',' | b'0'..=b'9') {
                    i += 1;
                }
                let mut arg = None;
                if b.get(i) == Some(&b'{') {
                    let end = b[i..]
                        .iter()
                        .position(|&c| c == b'}')
                        .ok_or_else(|| FormatError::new(at, "`%{` is not closed by `}`"))?;
                    arg = Some(&body[i + 1..i + end]);
                    i += end + 1;
                }
                let Some(&letter) = b.get(i) else {
                    return Err(FormatError::new(at, "`%` at the end names no directive"));
                };
                i += 1;
                if letter == b'^' {
                    // `%{..}^ti`, `%{..}^to`: trailers, two letters after the caret.
                    i = (i + 2).min(b.len());
                }
                let field = directive(letter, arg);
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.extend(field.into_iter().map(|f| match f {
                    Expansion::Literal(l) => Piece::Literal(l.to_vec()),
                    Expansion::Field(field) => Piece::Field { field, at },
                }));
            }
            c => {
                literal.push(c);
                i += 1;
            }
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Format::new(pieces, def.len())
}

enum Expansion {
    Literal(&'static [u8]),
    Field(Field),
}

/// What `%{arg}letter` writes.
fn directive(letter: u8, arg: Option<&str>) -> Vec<Expansion> {
    use Expansion::Field as F;
    let arg_is = |name: &str| arg.is_some_and(|a| a.eq_ignore_ascii_case(name));
    let field = match letter {
        b'h' | b'a' => Field::Client,
        b'l' => Field::Ident,
        b'u' => Field::User,
        b't' => match arg.map(|a| a.trim_start_matches("begin:").trim_start_matches("end:")) {
            None | Some("") => {
                return vec![
                    Expansion::Literal(b"["),
                    F(Field::Time(Clock::Clf)),
                    Expansion::Literal(b"]"),
                ];
            }
            Some("sec") => Field::Time(Clock::EpochSeconds),
            Some("msec") => Field::Time(Clock::EpochMillis),
            Some("usec") => Field::Time(Clock::EpochMicros),
            Some("msec_frac" | "usec_frac") => Field::Opaque { list: false },
            Some("%d/%b/%Y:%H:%M:%S %z") => Field::Time(Clock::Clf),
            Some(format) => Field::Time(Clock::Strftime {
                zoned: format.contains("%z") || format.contains("%:z"),
                format: format.to_string(),
            }),
        },
        b'r' => Field::Request,
        b'm' => Field::Method,
        b'U' => Field::Path,
        b'q' => Field::Query,
        b'H' => Field::Protocol,
        b's' => Field::Status,
        b'b' | b'B' | b'O' => Field::Bytes,
        b'D' => Field::ResponseTime(Unit::Micros),
        b'T' if arg_is("ms") => Field::ResponseTime(Unit::Millis),
        b'T' if arg_is("us") => Field::ResponseTime(Unit::Micros),
        b'T' if arg.is_none() || arg_is("s") => Field::ResponseTime(Unit::Seconds),
        b'v' | b'V' => Field::Vhost,
        b'p' if arg.is_none() || arg_is("canonical") || arg_is("local") => Field::Port,
        b'i' if arg_is("Referer") => Field::Referrer,
        b'i' if arg_is("User-Agent") => Field::UserAgent,
        b'i' if arg_is("X-Forwarded-For") => Field::ForwardedFor,
        _ => Field::Opaque { list: false },
    };
    vec![F(field)]
}

/// The format string out of a pasted `LogFormat "..." nickname` line or a `"..."` argument,
/// and where it starts in `def`. A string with unescaped quotes inside is taken as it is.
fn unwrap_directive(def: &str) -> (&str, usize) {
    let trimmed = def.trim_start();
    let mut start = def.len() - trimmed.len();
    let mut rest = trimmed;
    if let Some(after) = rest.strip_prefix("LogFormat") {
        let after_ws = after.trim_start();
        start += rest.len() - after_ws.len();
        rest = after_ws;
    }
    let b = rest.as_bytes();
    if b.first() == Some(&b'"') {
        let mut i = 1;
        while i < b.len() {
            match b[i] {
                b'\\' => i += 2,
                b'"' => break,
                _ => i += 1,
            }
        }
        // The closing quote must end the string, up to a nickname.
        if i < b.len() {
            let after = rest[i + 1..].trim();
            if after.is_empty()
                || after
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_')
            {
                return (&rest[1..i], start + 1);
            }
        }
    }
    (def, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::definition::Step;

    #[test]
    fn escaped_plain_and_wrapped_forms_read_alike() {
        let plain = apache(r#"%h %l %u %t "%r" %>s %b"#).unwrap();
        let escaped = apache(r#"%h %l %u %t \"%r\" %>s %b"#).unwrap();
        let wrapped = apache(r#"LogFormat "%h %l %u %t \"%r\" %>s %b" common"#).unwrap();
        assert_eq!(plain.steps, escaped.steps);
        assert_eq!(plain.steps, wrapped.steps);
        assert!(plain.steps.iter().any(|s| matches!(s, Step::Quoted { .. })));
    }

    #[test]
    fn unusable_definitions_say_where_and_why() {
        let cases = [
            ("%h %t \"%r\" %{Referer i %>s", 11, "not closed"),
            ("%h \"%r\" %>s", 11, "no time"),
            ("%h %t %>s", 9, "no request"),
            ("%h %t \"%r\"", 10, "no status"),
            ("%h %t \"%r\" %>s%b", 14, "nothing between"),
            ("%h %t \"%r\" %>s %", 15, "end"),
        ];
        for (def, position, reason) in cases {
            let err = apache(def).unwrap_err();
            assert_eq!(err.position, position, "{def}: {err}");
            assert!(err.reason.contains(reason), "{def}: {err}");
            assert!(err.to_string().contains(&position.to_string()));
        }
    }

    #[test]
    fn unknown_directives_and_modifiers_are_read_past() {
        let f = apache(r#"%h %!200,304{X-Foo}i %<s %t "%r" %>s %b %{Foo}x %z %%"#).unwrap();
        assert_eq!(f.field_count(), 5);
    }
}
