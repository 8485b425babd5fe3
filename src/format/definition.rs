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
    /// `2024-10-12T23:14:21+09:00` (nginx `$time_iso8601`), also with a fraction of a second
    /// (`2015-03-08T16:35:33.465313Z`, AWS load balancers), which is dropped as the stores
    /// keep whole seconds.
    Iso8601,
    /// `25/Feb/2019:16:19:48.143`: HAProxy's accept date, milliseconds and no zone. HAProxy
    /// writes its local time and says nothing of the zone, so it is taken as UTC (the
    /// milliseconds are dropped, as the stores keep whole seconds).
    ClfMillis,
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

/// Several timers written as one field, `count` numbers joined by `sep` (ELB's `0.000033
/// 0.00082 0.000016`, HAProxy's `0/0/7/1457/1487`), in `unit`; `-1` is a timer that did not
/// run (the request never reached a backend). The response time is the sum of the timers at
/// `response` (absent when one of them did not run), the upstream time the timer at
/// `upstream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timings {
    pub unit: Unit,
    pub sep: u8,
    pub count: usize,
    pub response: &'static [usize],
    pub upstream: Option<usize>,
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
    /// `address:port` of the client (AWS load balancers, HAProxy `%ci:%cp`): the address is
    /// the client, the client's own port is dropped (it is not the server port of
    /// [`crate::entry::Extra::port`]). The port follows the last `:`, so an IPv6 address
    /// keeps its colons (and loses its brackets, if written with them).
    Peer,
    /// A request line whose target is the absolute URL a load balancer rebuilt from the
    /// listener and the Host header (`GET http://www.example.com:80/a?b HTTP/1.1`): its host
    /// is the virtual host, its port the port, its path and query the url, as a server
    /// behind the balancer would have logged them. A target that is not `scheme://host...`
    /// is kept whole as the url.
    AbsoluteRequest,
    /// The timers of a load balancer or proxy, in one field: see [`Timings`].
    Timings(Timings),
    /// A User-Agent that is percent-encoded (`curl%2F7.81.0`, `Mozilla/5.0%20(X11)`:
    /// CloudFront's `cs(User-Agent)`); stored decoded, as other formats write it.
    EncodedUserAgent,
    /// A syslog header before the message: `Feb 25 16:19:49 host tag[pid]:` (the day may be
    /// space-padded) or `2019-02-25T16:19:49+01:00 host tag:`; read past, as the message
    /// carries its own, better time (HAProxy).
    Syslog,
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
    Peer,
    AbsoluteRequest,
    Timings,
    EncodedUserAgent,
}

pub(crate) const SLOTS: usize = Slot::EncodedUserAgent as usize + 1;

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
            Field::Peer => Slot::Peer,
            Field::AbsoluteRequest => Slot::AbsoluteRequest,
            Field::Timings(_) => Slot::Timings,
            Field::EncodedUserAgent => Slot::EncodedUserAgent,
            Field::Opaque { .. } | Field::Syslog => return None,
        })
    }

    /// How many `stop` bytes the field's own text holds, so that a field ended by that byte
    /// reads past them (the space inside a CLF time, the tab between CloudFront's date and
    /// time, the spaces between ELB's timers).
    fn skips(&self, stop: u8) -> u8 {
        let count = match self {
            Field::Time(Clock::Clf) => usize::from(stop == b' '),
            Field::Time(Clock::Strftime { format, .. }) => {
                format.bytes().filter(|&b| b == stop).count()
            }
            Field::Timings(t) if t.sep == stop => t.count - 1,
            _ => 0,
        };
        count.min(255) as u8
    }

    /// Values that may hold `, `-separated lists when written bare.
    fn is_list(&self) -> bool {
        matches!(
            self,
            Field::UpstreamTime | Field::ForwardedFor | Field::Opaque { list: true }
        )
    }
}

/// The step from which a line may stop: the first separator after a field from which every
/// field left is one that `optional` says a line may leave out.
fn tail_of(steps: &[Step], sep: u8, optional: impl Fn(Option<Slot>) -> bool) -> Option<usize> {
    (1..steps.len()).find(|&k| {
        matches!(&steps[k], Step::Literal(b) if b[0] == sep)
            && !matches!(steps[k - 1], Step::Literal(_))
            && steps[k..].iter().any(|s| !matches!(s, Step::Literal(_)))
            && steps[k..].iter().all(|s| match s {
                Step::Literal(_) => true,
                Step::Token { slot, .. } | Step::Quoted { slot } | Step::List { slot, .. } => {
                    optional(*slot)
                }
                Step::Syslog => false,
            })
    })
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
                    | Slot::EncodedUserAgent
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
    /// A syslog header ([`Field::Syslog`]) up to its tag's `:`, followed by a space: see
    /// [`SYSLOG`] for the exact shape.
    Syslog,
}

/// The regex of [`Step::Syslog`]: a BSD timestamp (`Feb 25 16:19:49`, `Feb  5 ...`) or an
/// RFC 3339 one as rsyslog writes (`2019-02-25T16:19:49.123+01:00`), the host, and a tag
/// ending with `:`. The scanner reads the same by hand (`scanner::syslog`).
pub(crate) const SYSLOG: &str = "(?:(?:<[0-9]{1,3}>)?(?:[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\\.[0-9]+)?|[0-9]{4}-[0-9]{2}-[0-9]{2}T[^ ]*) [^ ]+ [^ ]*: )?";

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
    /// The format's [`Field::Timings`], when it has one.
    pub(crate) timings: Option<Timings>,
    /// The byte between fields (a space, CloudFront's tab): fields a server appends after
    /// the format's own follow it, and a line may stop before one (see `tail`).
    pub(crate) sep: u8,
    /// Lines starting with `#` are header directives (CloudFront's `#Version:` and
    /// `#Fields:`, as in W3C logs), rejected as [`crate::parse::Reject::Directive`].
    pub(crate) directives: bool,
    /// The size may have a `+` before it: HAProxy's `option logasap` logs the bytes sent so
    /// far that way, as it does its timers.
    pub(crate) signed_size: bool,
    /// A line may also stop before any later field of the tail: the vendor grew its layout
    /// by appending fields (ALB had 25 fields before 29 and 33, CloudFront 23 and 26 before
    /// 33), and older logs stop earlier.
    pub(crate) grown: bool,
    /// How quoted values are decoded (nginx `escape=`; Apache's is always the default).
    pub(crate) escape: Escape,
}

impl Format {
    /// Checks `pieces` (read from a definition `len` bytes long) and compiles them.
    pub(crate) fn new(pieces: Vec<Piece>, len: usize) -> Result<Format, FormatError> {
        Format::separated(pieces, len, b' ')
    }

    /// [`Format::new`] for a format whose fields are separated by `sep` rather than a space.
    pub(crate) fn separated(
        pieces: Vec<Piece>,
        len: usize,
        sep: u8,
    ) -> Result<Format, FormatError> {
        let pieces = merge_literals(pieces);
        let mut clock = None;
        let mut unit = None;
        let mut timings = None;
        let has = |slot: Slot| {
            pieces
                .iter()
                .any(|p| matches!(p, Piece::Field { field, .. } if field.slot() == Some(slot)))
        };
        if !has(Slot::Time) {
            return Err(FormatError::new(len, "the format has no time field"));
        }
        if !(has(Slot::Request) || has(Slot::AbsoluteRequest) || has(Slot::Uri) || has(Slot::Path))
        {
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
                Piece::Field {
                    field,
                    at: field_at,
                } => {
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
                        Field::Timings(t) if timings.is_none() => timings = Some(t.clone()),
                        Field::Time(_) | Field::ResponseTime(_) | Field::Timings(_) => slot = None,
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
                    if *field == Field::Syslog {
                        if !next.is_some_and(|n| n.starts_with(b" ")) {
                            return Err(FormatError::new(
                                *field_at,
                                "a syslog header is followed by a space",
                            ));
                        }
                        // The header takes the space after it: a line may have none.
                        steps.push(Step::Syslog);
                        quote_taken = true;
                        continue;
                    }
                    let stop = next.map_or(sep, |n| n[0]);
                    // A list's values may be joined by `, `: only a space-separated format
                    // needs to tell them from the next field.
                    steps.push(if field.is_list() && sep == b' ' {
                        Step::List { slot, stop }
                    } else {
                        Step::Token {
                            slot,
                            stop,
                            also: also.unwrap_or(stop),
                            skips: field.skips(stop),
                        }
                    });
                }
            }
        }
        let tail = tail_of(&steps, sep, Slot::optional);
        Ok(Format {
            pieces,
            steps,
            tail,
            clock: clock.expect("checked above"),
            unit: unit.unwrap_or(Unit::Micros),
            timings,
            sep,
            directives: false,
            signed_size: false,
            grown: false,
            escape: Escape::Default,
        })
    }

    /// The format, with a `+` allowed before its size (see `signed_size`).
    pub(crate) fn with_signed_size(self) -> Format {
        Format {
            signed_size: true,
            ..self
        }
    }

    /// The format, for a layout that grew by appending fields (see `grown`). Such a
    /// vendor's oldest layout may also lack the protocol version (CloudFront's 23 fields),
    /// so the tail may begin before it.
    pub(crate) fn grown(self) -> Format {
        let optional = |slot| Slot::optional(slot) || slot == Some(Slot::Protocol);
        Format {
            grown: true,
            tail: tail_of(&self.steps, self.sep, optional),
            ..self
        }
    }

    /// May a line stop where step `i` begins? At the tail, and, in a grown layout, before
    /// each field after it (at a separator that follows a field).
    pub(crate) fn may_stop(&self, i: usize) -> bool {
        match self.tail {
            Some(t) if t == i => true,
            Some(t) if self.grown && i > t => {
                matches!(&self.steps[i], Step::Literal(b) if b.first() == Some(&self.sep))
                    && !matches!(self.steps[i - 1], Step::Literal(_))
            }
            _ => false,
        }
    }

    /// The format, with its `#` lines read as header directives.
    pub(crate) fn with_directives(self) -> Format {
        Format {
            directives: true,
            ..self
        }
    }

    /// Is `line` a header directive of this format (see `directives`)?
    pub(crate) fn directive(&self, line: &[u8]) -> bool {
        self.directives && line.first() == Some(&b'#')
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
