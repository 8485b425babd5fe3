//! A log format as the server's configuration states it, and the plan it compiles to.
//!
//! The Apache and nginx readers both turn their definition string into the same list of
//! [`Piece`]s (literal bytes and the fields between them); everything after that (the checks
//! that a format can be used at all, the compiled [`Step`]s, the regex) is shared, so the two
//! syntaxes cannot drift apart in what they accept.

use std::fmt;

/// Why a format definition cannot be used, and where in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    /// Byte offset into the definition as given (its length when something is missing).
    pub position: usize,
    pub reason: String,
}

impl FormatError {
    pub(crate) fn new(position: usize, reason: impl Into<String>) -> FormatError {
        FormatError {
            position,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.position, self.reason)
    }
}

impl std::error::Error for FormatError {}

/// How a format writes its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clock {
    /// `10/Oct/2000:13:55:36 -0700` (Apache `%t` without its brackets, nginx `$time_local`).
    Clf,
    /// `2024-10-12T23:14:21+09:00` (nginx `$time_iso8601`).
    Iso8601,
    /// Seconds since the epoch, with or without a fraction (`$msec`, `%{sec}t`).
    EpochSeconds,
    /// Milliseconds since the epoch (`%{msec}t`).
    EpochMillis,
    /// Microseconds since the epoch (`%{usec}t`).
    EpochMicros,
    /// An Apache `%{...}t` strftime format; a time without `%z` is taken as UTC.
    Strftime { format: String, zoned: bool },
}

/// The unit a response time is written in; it is stored as microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Millis,
    Micros,
}

impl Unit {
    pub(crate) fn micros(self) -> u64 {
        match self {
            Unit::Seconds => 1_000_000,
            Unit::Millis => 1_000,
            Unit::Micros => 1,
        }
    }
}

/// How the server escaped the bytes of a quoted value, so that they are decoded as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Escape {
    /// Apache's `\"`, `\\` and `\xhh`, nginx's default `\xHH`.
    #[default]
    Default,
    /// nginx `escape=json`: JSON string escapes (`\"`, `\\`, `\n`, `\u00XX`...); an
    /// absent variable is written `""` (absent here too), where the default writes `-`.
    Json,
    /// nginx `escape=none`: nothing is escaped, values are taken as written.
    None,
}

/// What one field of a format carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Client,
    Ident,
    User,
    Time(Clock),
    /// The request line, `METHOD target PROTOCOL`.
    Request,
    Method,
    /// The target as sent, path and query (`$request_uri`).
    Uri,
    /// The path alone (`%U`, `$uri`).
    Path,
    /// The query string, with (`%q`) or without (`$args`) its `?`.
    Query,
    Protocol,
    Status,
    Bytes,
    Referrer,
    UserAgent,
    Vhost,
    Port,
    ResponseTime(Unit),
    /// `$upstream_response_time`: one value per upstream tried, summed.
    UpstreamTime,
    ForwardedFor,
    /// A field the entry has no place for; it is read past and dropped. `list` says it may
    /// hold several values joined by `, ` or ` : ` (nginx's `$upstream_*` variables).
    Opaque {
        list: bool,
    },
}

/// Where a field's value goes in [`Slots`]: one index per entry field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Client,
    Ident,
    User,
    Time,
    Request,
    Method,
    Uri,
    Path,
    Query,
    Protocol,
    Status,
    Bytes,
    Referrer,
    UserAgent,
    Vhost,
    Port,
    ResponseTime,
    UpstreamTime,
    ForwardedFor,
}

pub(crate) const SLOTS: usize = Slot::ForwardedFor as usize + 1;

/// The raw bytes of each field a line held, by [`Slot`].
pub(crate) type Slots<'a> = [Option<&'a [u8]>; SLOTS];

impl Field {
    fn slot(&self) -> Option<Slot> {
        Some(match self {
            Field::Client => Slot::Client,
            Field::Ident => Slot::Ident,
            Field::User => Slot::User,
            Field::Time(_) => Slot::Time,
            Field::Request => Slot::Request,
            Field::Method => Slot::Method,
            Field::Uri => Slot::Uri,
            Field::Path => Slot::Path,
            Field::Query => Slot::Query,
            Field::Protocol => Slot::Protocol,
            Field::Status => Slot::Status,
            Field::Bytes => Slot::Bytes,
            Field::Referrer => Slot::Referrer,
            Field::UserAgent => Slot::UserAgent,
            Field::Vhost => Slot::Vhost,
            Field::Port => Slot::Port,
            Field::ResponseTime(_) => Slot::ResponseTime,
            Field::UpstreamTime => Slot::UpstreamTime,
            Field::ForwardedFor => Slot::ForwardedFor,
            Field::Opaque { .. } => return None,
        })
    }

    /// Spaces the field's own text holds, so that a field ended by a space reads past them.
    fn spaces(&self) -> u8 {
        match self {
            Field::Time(Clock::Clf) => 1,
            Field::Time(Clock::Strftime { format, .. }) => {
                format.bytes().filter(|&b| b == b' ').count().min(255) as u8
            }
            _ => 0,
        }
    }

    /// Values that may hold `, `-separated lists when written bare.
    fn is_list(&self) -> bool {
        matches!(
            self,
            Field::UpstreamTime | Field::ForwardedFor | Field::Opaque { list: true }
        )
    }
}

impl Slot {
    /// Fields a line may leave out when it stops early, as Common lines leave out the
    /// referrer and user agent of Combined.
    fn optional(slot: Option<Slot>) -> bool {
        matches!(
            slot,
            None | Some(
                Slot::Referrer
                    | Slot::UserAgent
                    | Slot::ForwardedFor
                    | Slot::ResponseTime
                    | Slot::UpstreamTime
            )
        )
    }
}

/// One piece of a definition: bytes written as they are, or a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Literal(Vec<u8>),
    /// `at` is the field's byte offset in the definition, for errors.
    Field {
        field: Field,
        at: usize,
    },
}

/// One step of the compiled scanner; the regex is built from the same steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// These bytes, exactly.
    Literal(Box<[u8]>),
    /// `[^stop also]*`, reading past `skips` stop bytes (`[^ ]*(?: [^ ]*){skips}`). `also`
    /// is a second stop byte (`?` ends `%U` before `%q`), or `stop` again.
    Token {
        slot: Option<Slot>,
        stop: u8,
        also: u8,
        skips: u8,
    },
    /// `"(?:[^"\\]|\\.)*"`: a quoted field in which a backslash escapes the next byte.
    Quoted { slot: Option<Slot> },
    /// `[^ ,stop]*(?:(?:, | : )[^ ,stop]+)*`: values joined by `, ` or ` : `.
    List { slot: Option<Slot>, stop: u8 },
}

/// A format that can be used: its pieces, checked, and the steps they compile to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub(crate) pieces: Vec<Piece>,
    pub(crate) steps: Vec<Step>,
    /// The step from which a line may stop (see [`Slot::optional`]); `None` when every
    /// step must be there.
    pub(crate) tail: Option<usize>,
    pub(crate) clock: Clock,
    pub(crate) unit: Unit,
    /// How quoted values are decoded (nginx `escape=`; Apache's is always the default).
    pub(crate) escape: Escape,
}

impl Format {
    /// Checks `pieces` (read from a definition `len` bytes long) and compiles them.
    pub(crate) fn new(pieces: Vec<Piece>, len: usize) -> Result<Format, FormatError> {
        let pieces = merge_literals(pieces);
        let mut clock = None;
        let mut unit = None;
        let has = |slot: Slot| {
            pieces
                .iter()
                .any(|p| matches!(p, Piece::Field { field, .. } if field.slot() == Some(slot)))
        };
        if !has(Slot::Time) {
            return Err(FormatError::new(len, "the format has no time field"));
        }
        if !(has(Slot::Request) || has(Slot::Uri) || has(Slot::Path)) {
            return Err(FormatError::new(
                len,
                "the format has no request or URL field",
            ));
        }
        if !has(Slot::Status) {
            return Err(FormatError::new(len, "the format has no status field"));
        }
        let mut steps = Vec::new();
        // Set when the previous field took the opening quote of the literal that follows.
        let mut quote_taken = false;
        for (i, piece) in pieces.iter().enumerate() {
            match piece {
                Piece::Literal(bytes) => {
                    let bytes = if quote_taken { &bytes[1..] } else { &bytes[..] };
                    quote_taken = false;
                    if !bytes.is_empty() {
                        steps.push(Step::Literal(bytes.into()));
                    }
                }
                Piece::Field { field, .. } => {
                    let mut also = None;
                    let next = match pieces.get(i + 1) {
                        Some(Piece::Literal(bytes)) => Some(&bytes[..]),
                        // `%U%q`: the query Apache writes starts with its `?`, and is empty
                        // when there is none; the path ends at either.
                        Some(Piece::Field {
                            field: Field::Query,
                            ..
                        }) if *field == Field::Path => {
                            also = Some(match pieces.get(i + 2) {
                                Some(Piece::Literal(bytes)) => bytes[0],
                                _ => b' ',
                            });
                            Some(&b"?"[..])
                        }
                        Some(Piece::Field { at, .. }) => {
                            return Err(FormatError::new(
                                *at,
                                "two fields with nothing between them cannot be told apart",
                            ));
                        }
                        None => None,
                    };
                    // A field's own first time and response-time unit decide the format's;
                    // a second such field is read past.
                    let mut slot = field.slot();
                    match field {
                        Field::Time(c) if clock.is_none() => clock = Some(c.clone()),
                        Field::ResponseTime(u) if unit.is_none() => unit = Some(*u),
                        Field::Time(_) | Field::ResponseTime(_) => slot = None,
                        _ => {}
                    }
                    let opened =
                        matches!(steps.last(), Some(Step::Literal(b)) if b.ends_with(b"\""));
                    let closed = next.is_some_and(|n| n.starts_with(b"\""));
                    if opened && closed {
                        if let Some(Step::Literal(b)) = steps.pop()
                            && b.len() > 1
                        {
                            steps.push(Step::Literal(b[..b.len() - 1].into()));
                        }
                        steps.push(Step::Quoted { slot });
                        quote_taken = true;
                        continue;
                    }
                    let stop = next.map_or(b' ', |n| n[0]);
                    steps.push(if field.is_list() {
                        Step::List { slot, stop }
                    } else {
                        Step::Token {
                            slot,
                            stop,
                            also: also.unwrap_or(stop),
                            skips: if stop == b' ' { field.spaces() } else { 0 },
                        }
                    });
                }
            }
        }
        let tail = (1..steps.len()).find(|&k| {
            matches!(&steps[k], Step::Literal(b) if b[0] == b' ')
                && !matches!(steps[k - 1], Step::Literal(_))
                && steps[k..].iter().any(|s| !matches!(s, Step::Literal(_)))
                && steps[k..].iter().all(|s| match s {
                    Step::Literal(_) => true,
                    Step::Token { slot, .. } | Step::Quoted { slot } | Step::List { slot, .. } => {
                        Slot::optional(*slot)
                    }
                })
        });
        Ok(Format {
            pieces,
            steps,
            tail,
            clock: clock.expect("checked above"),
            unit: unit.unwrap_or(Unit::Micros),
            escape: Escape::Default,
        })
    }

    /// The fields this format fills, counted once each: how specific it is.
    pub fn field_count(&self) -> usize {
        let mut seen = [false; SLOTS];
        for step in &self.steps {
            if let Step::Token { slot: Some(s), .. }
            | Step::Quoted { slot: Some(s) }
            | Step::List { slot: Some(s), .. } = step
            {
                seen[*s as usize] = true;
            }
        }
        seen.iter().filter(|&&b| b).count()
    }
}

/// Joins neighbouring literals (`%%` and the text around it), so that a field's delimiter is
/// always the whole literal after it.
fn merge_literals(pieces: Vec<Piece>) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::with_capacity(pieces.len());
    for piece in pieces {
        match (out.last_mut(), piece) {
            (_, Piece::Literal(b)) if b.is_empty() => {}
            (Some(Piece::Literal(prev)), Piece::Literal(b)) => prev.extend_from_slice(&b),
            (_, piece) => out.push(piece),
        }
    }
    out
}
