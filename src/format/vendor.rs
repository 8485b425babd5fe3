//! The named formats of load balancers and proxies (`elb`, `alb`, `cloudfront`, `haproxy`,
//! `traefik-clf`): layouts their users cannot change, so they are given by name rather than
//! by a definition string, and written here as the [`Format`] the vendor documents. They
//! compile to the same scanner and regex as a definition does, with the fields these layouts
//! need ([`Field::Peer`], [`Field::AbsoluteRequest`], [`Field::Timings`],
//! [`Field::EncodedUserAgent`], [`Field::Syslog`], [`Clock::ClfMillis`]).
//!
//! What each maps to the entry is in the README's "Log formats" section.

use super::apache;
use super::definition::{Clock, Field, Format, Piece, Timings, Unit};

/// The names, in the order `auto` tries them and the help lists them.
pub const NAMES: [&str; 5] = ["elb", "alb", "cloudfront", "haproxy", "traefik-clf"];

/// The format a name gives, `None` for a name that is not one of [`NAMES`].
pub fn named(name: &str) -> Option<Format> {
    Some(match name {
        "elb" => elb(),
        "alb" => alb(),
        "cloudfront" => cloudfront(),
        "haproxy" => haproxy(),
        "traefik-clf" => traefik_clf(),
        _ => return None,
    })
}

/// Traefik's `common` access log (its default): Combined, then the number of requests since
/// Traefik started, the router name, the server URL and the duration in whole milliseconds.
/// From Traefik's `CommonLogFormatter` (pkg/middlewares/accesslog/logger_formatters.go):
/// `"%s - %s [%s] \"%s %s %s\" %v %v %s %s %v %s %s %dms"`, and its documentation
/// (doc.traefik.io, observability/access-logs, "Common Log Format"). Traefik always writes
/// `-` for the ident; it is read as `%l` all the same, so that `auto` sees that this format
/// reads more of a Traefik line than `combined` does.
pub const TRAEFIK_CLF: &str = r#"%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\" %{RequestCount}x \"%{RouterName}x\" \"%{ServiceURL}x\" %{ms}Tms"#;

/// AWS Classic ELB: `timestamp elb client:port backend:port request_processing_time
/// backend_processing_time response_processing_time elb_status_code backend_status_code
/// received_bytes sent_bytes "request" "user_agent" ssl_cipher ssl_protocol`. Lines of the
/// original 12-field layout stop after the request (the last three are optional).
pub fn elb() -> Format {
    let mut pieces = vec![
        field(Field::Time(Clock::Iso8601)),
        lit(" "),
        opaque(), // elb
        lit(" "),
    ];
    pieces.extend(balancer_tail());
    pieces.extend([lit(" "), opaque(), lit(" "), opaque()]); // ssl_cipher ssl_protocol
    build(pieces, b' ')
}

/// AWS ALB: `type time elb client:port target:port` and the timers, statuses, sizes,
/// request and agent as ELB, then 14 fields of its own; the 4 fields added since 2024
/// (`conn_trace_id "transformed_host" "transformed_uri" "request_transform_status"`) are
/// read past as fields a server appends.
pub fn alb() -> Format {
    let mut pieces = vec![
        opaque(), // type
        lit(" "),
        field(Field::Time(Clock::Iso8601)),
        lit(" "),
        opaque(), // elb
        lit(" "),
    ];
    pieces.extend(balancer_tail());
    // ssl_cipher ssl_protocol target_group_arn
    for _ in 0..3 {
        pieces.extend([lit(" "), opaque()]);
    }
    // "trace_id" "domain_name" "chosen_cert_arn"
    for _ in 0..3 {
        pieces.extend([lit(" \""), opaque(), lit("\"")]);
    }
    // matched_rule_priority request_creation_time
    pieces.extend([lit(" "), opaque(), lit(" "), opaque()]);
    // "actions_executed" "redirect_url" "error_reason" "target:port_list"
    // "target_status_code_list" "classification" "classification_reason"
    for _ in 0..7 {
        pieces.extend([lit(" \""), opaque(), lit("\"")]);
    }
    build(pieces, b' ').grown()
}

/// What ELB and ALB share from the client on: `client:port target:port` then the three
/// timers (seconds, `-1` when the request reached no target), `elb_status_code
/// target_status_code received_bytes sent_bytes "request" "user_agent"`. The response time
/// is the sum of the three timers (the time from the balancer receiving the request to its
/// sending the response), the upstream time the target's own (`backend_processing_time`).
fn balancer_tail() -> Vec<Piece> {
    vec![
        field(Field::Peer),
        lit(" "),
        opaque(), // backend:port
        lit(" "),
        field(Field::Timings(Timings {
            unit: Unit::Seconds,
            sep: b' ',
            count: 3,
            response: &[0, 1, 2],
            upstream: Some(1),
        })),
        lit(" "),
        field(Field::Status),
        lit(" "),
        opaque(), // backend_status_code
        lit(" "),
        opaque(), // received_bytes
        lit(" "),
        field(Field::Bytes),
        lit(" \""),
        field(Field::AbsoluteRequest),
        lit("\" \""),
        field(Field::UserAgent),
        lit("\""),
    ]
}

/// The fields of CloudFront's standard log, tab-separated, as its `#Fields:` line names them.
const CLOUDFRONT_FIELDS: [&str; 33] = [
    "date",
    "time",
    "x-edge-location",
    "sc-bytes",
    "c-ip",
    "cs-method",
    "cs(Host)",
    "cs-uri-stem",
    "sc-status",
    "cs(Referer)",
    "cs(User-Agent)",
    "cs-uri-query",
    "cs(Cookie)",
    "x-edge-result-type",
    "x-edge-request-id",
    "x-host-header",
    "cs-protocol",
    "cs-bytes",
    "time-taken",
    "x-forwarded-for",
    "ssl-protocol",
    "ssl-cipher",
    "x-edge-response-result-type",
    "cs-protocol-version",
    "fle-status",
    "fle-encrypted-fields",
    "c-port",
    "time-to-first-byte",
    "x-edge-detailed-result-type",
    "sc-content-type",
    "sc-content-len",
    "sc-range-start",
    "sc-range-end",
];

/// AWS CloudFront's standard (access) log: 33 tab-separated fields ([`CLOUDFRONT_FIELDS`]),
/// `date` and `time` in UTC. The virtual host is `x-host-header` (the name the viewer asked
/// for, not `cs(Host)`, the distribution's own `*.cloudfront.net`); the url is
/// `cs-uri-stem` with `cs-uri-query`; the response time `time-taken` (seconds). The
/// `#Version:` and `#Fields:` lines CloudFront writes first are rejected as directives, as
/// `w3c` counts them.
pub fn cloudfront() -> Format {
    let mut pieces = Vec::new();
    for name in CLOUDFRONT_FIELDS {
        let field = match name {
            "date" => Field::Time(Clock::Strftime {
                format: "%Y-%m-%d\t%H:%M:%S".into(),
                zoned: false,
            }),
            // Read with the date, as one field.
            "time" => continue,
            "sc-bytes" => Field::Bytes,
            "c-ip" => Field::Client,
            "cs-method" => Field::Method,
            "cs-uri-stem" => Field::Path,
            "sc-status" => Field::Status,
            "cs(Referer)" => Field::Referrer,
            "cs(User-Agent)" => Field::EncodedUserAgent,
            "cs-uri-query" => Field::Query,
            "x-host-header" => Field::Vhost,
            "time-taken" => Field::ResponseTime(Unit::Seconds),
            "x-forwarded-for" => Field::ForwardedFor,
            "cs-protocol-version" => Field::Protocol,
            _ => Field::Opaque { list: false },
        };
        if !pieces.is_empty() {
            pieces.push(lit("\t"));
        }
        pieces.push(self::field(field));
    }
    build(pieces, b'\t').with_directives().grown()
}

/// HAProxy's `option httplog` line as syslog carries it: the syslog header (read past), then
/// `%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc
/// %sq/%bq %hr %hs %{+Q}r` (1.8 and earlier: `%Tq/%Tw/%Tc/%Tr/%Tt`, the same shape). The
/// time is HAProxy's accept date (`[%tr]`, with its year and milliseconds, unlike the
/// syslog header), taken as UTC; the response time `%Ta` (or `%Tt`), the upstream time
/// `%Tr` (the server's response headers), in milliseconds. The captured headers (`{...}`)
/// hold whatever `capture request header` chose, so they are read past.
pub fn haproxy() -> Format {
    let mut pieces = vec![
        field(Field::Syslog),
        lit(" "),
        field(Field::Peer),
        lit(" ["),
        field(Field::Time(Clock::ClfMillis)),
        lit("] "),
        opaque(), // %ft
        lit(" "),
        opaque(), // %b/%s
        lit(" "),
        field(Field::Timings(Timings {
            unit: Unit::Millis,
            sep: b'/',
            count: 5,
            response: &[4],
            upstream: Some(3),
        })),
        lit(" "),
        field(Field::Status),
        lit(" "),
        field(Field::Bytes),
    ];
    // %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq
    for _ in 0..5 {
        pieces.extend([lit(" "), opaque()]);
    }
    // The captured headers, if any, up to the request's quote.
    pieces.extend([
        lit(" "),
        opaque(),
        lit("\""),
        field(Field::Request),
        lit("\""),
    ]);
    build(pieces, b' ').with_signed_size()
}

/// [`TRAEFIK_CLF`], compiled.
pub fn traefik_clf() -> Format {
    apache(TRAEFIK_CLF).expect("Traefik's format is a valid definition")
}

fn build(pieces: Vec<Piece>, sep: u8) -> Format {
    Format::separated(pieces, 0, sep).expect("a vendor's format is valid")
}

fn lit(text: &str) -> Piece {
    Piece::Literal(text.as_bytes().to_vec())
}

fn field(field: Field) -> Piece {
    Piece::Field { field, at: 0 }
}

fn opaque() -> Piece {
    field(Field::Opaque { list: false })
}
