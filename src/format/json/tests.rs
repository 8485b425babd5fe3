//! The JSON schemas against the real Caddy and Traefik logs in `../shared/data/formats`, and
//! against a second, slow reading of the same mapping through `serde_json::Value`.

use std::borrow::Cow;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::format::tests::{assert_fields, head, lines as split_lines, pick, read};

const CADDY: &str = "sandip3120-project-Inventory-Tracking-System_caddy_access.log";
const CADDY_LNAV: &str = "tstack-lnav_logfile_caddy_log.1";
const CADDY_CONSOLE: &str = "petevdp-squad_gps_caddy.log";
const TRAEFIK: &str = "maborak-monitor-stack_access.log";

/// The mapping of the README's table, read a second way: untyped, key by key, through
/// `serde_json::Value`, with no code shared with the typed reading but the rejects' order.
fn slow(schema: Schema, line: &[u8]) -> Result<LogEntry<'static>, Reject> {
    use TimestampError::Shape;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let format = Err(Reject::Format);
    let (v, console_ts) = match schema {
        Schema::CaddyConsole => {
            let parts: Vec<&[u8]> = line.splitn(5, |&b| b == b'\t').collect();
            if parts.len() < 5 {
                return format;
            }
            let logger = String::from_utf8_lossy(parts[2]);
            if logger != "http.log.access" && !logger.starts_with("http.log.access.") {
                return format;
            }
            let v: Value = serde_json::from_slice(parts[4]).map_err(|_| Reject::Format)?;
            (v, Some(String::from_utf8_lossy(parts[0]).into_owned()))
        }
        _ => (
            serde_json::from_slice(line).map_err(|_| Reject::Format)?,
            None,
        ),
    };
    let Value::Object(top) = &v else {
        return format;
    };
    // A known key of the wrong type makes the line unreadable, as serde's typed reading does.
    let get = |obj: &serde_json::Map<String, Value>, key: &str| -> Option<Value> {
        obj.get(key).filter(|v| !v.is_null()).cloned()
    };
    let string = |v: Option<Value>| -> Result<Option<String>, Reject> {
        match v {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Reject::Format),
        }
    };
    let number = |v: Option<Value>| -> Result<Option<u64>, Reject> {
        match v {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or(Reject::Format),
        }
    };
    let header = |v: Option<Value>| -> Result<Option<String>, Reject> {
        match v {
            None => Ok(None),
            Some(Value::Array(items)) => {
                let texts: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                let texts = texts.ok_or(Reject::Format)?;
                Ok(Some(texts.join(", ")).filter(|t| !t.is_empty()))
            }
            Some(_) => Err(Reject::Format),
        }
    };
    let present = |s: Option<String>| s.filter(|s| !s.is_empty() && s != "-").map(Cow::Owned);
    let whole = |t: chrono::DateTime<chrono::Utc>| {
        chrono::DateTime::from_timestamp(t.timestamp(), 0).ok_or(Reject::Timestamp(Shape))
    };
    // The instant, and the offset it was written in.
    let rfc3339 = |s: &str| {
        let t = chrono::DateTime::parse_from_rfc3339(s).map_err(|_| Reject::Timestamp(Shape))?;
        Ok((whole(t.to_utc())?, Some(t.offset().local_minus_utc())))
    };
    // Seconds written in decimal, as whole units of `1/scale`, by string slicing.
    let scaled = |text: &str, digits: usize| -> Option<u64> {
        if text.contains(['e', 'E']) {
            let x: f64 = text.parse().ok()?;
            let x = x * 10f64.powi(digits as i32);
            return (0.0..1e18).contains(&x).then_some(x as u64);
        }
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        let ok = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !ok(int) || !ok(frac) || (text.contains('.') && frac.is_empty()) {
            return None;
        }
        let frac: String = frac
            .chars()
            .chain(std::iter::repeat('0'))
            .take(digits)
            .collect();
        int.parse::<u64>()
            .ok()?
            .checked_mul(10u64.pow(digits as u32))?
            .checked_add(frac.parse::<u64>().ok()?)
    };
    let hostport = |s: &str| -> (String, Option<String>) {
        if let Some(rest) = s.strip_prefix('[')
            && let Some(end) = rest.find(']')
        {
            let port = rest[end + 1..].strip_prefix(':').filter(|p| !p.is_empty());
            return (rest[..end].to_string(), port.map(str::to_string));
        }
        match s.matches(':').count() {
            1 => {
                let (h, p) = s.split_once(':').unwrap();
                (h.to_string(), Some(p.to_string()).filter(|p| !p.is_empty()))
            }
            _ => (s.to_string(), None),
        }
    };
    let check_client = |ip: &str| {
        if ip.is_empty() {
            Err(Reject::Format)
        } else if ip.bytes().any(|b| b < 0x20 || b == 0x7F) {
            Err(Reject::Client)
        } else {
            Ok(())
        }
    };
    let status = |s: Option<u64>| match s {
        Some(s) if (100..1000).contains(&s) => Ok(s as u16),
        _ => Err(Reject::Status),
    };
    let size = |s: Option<u64>| match s {
        Some(n) if n > i64::MAX as u64 => Err(Reject::Bytes),
        s => Ok(s),
    };
    match schema {
        Schema::Caddy | Schema::CaddyConsole => {
            let logger = string(get(top, "logger"))?;
            let user = string(get(top, "user_id"))?;
            let (status_v, size_v) = (number(get(top, "status"))?, number(get(top, "size"))?);
            let request = match get(top, "request") {
                None => None,
                Some(Value::Object(r)) => Some(r),
                Some(_) => return format,
            };
            let mut r = Vec::new();
            let mut headers = (None, None, None);
            if let Some(req) = &request {
                for key in ["remote_ip", "remote_addr", "proto", "method", "host", "uri"] {
                    r.push(string(get(req, key))?);
                }
                headers = match get(req, "headers") {
                    None => (None, None, None),
                    Some(Value::Object(h)) => (
                        header(get(&h, "Referer"))?,
                        header(get(&h, "User-Agent"))?,
                        header(get(&h, "X-Forwarded-For"))?,
                    ),
                    Some(_) => return format,
                };
            }
            if schema == Schema::Caddy
                && logger
                    .as_ref()
                    .is_some_and(|l| l != "http.log.access" && !l.starts_with("http.log.access."))
            {
                return format;
            }
            if request.is_none() {
                return format;
            }
            let [remote_ip, remote_addr, proto, method, host, uri] = &r[..] else {
                unreachable!()
            };
            let url = uri.clone().ok_or(Reject::Format)?;
            let ip = match (remote_ip, remote_addr) {
                (Some(ip), _) => ip.clone(),
                (None, Some(addr)) => hostport(addr).0,
                (None, None) => String::new(),
            };
            check_client(&ip)?;
            let (timestamp, utc_offset) = match (&console_ts, get(top, "ts")) {
                (Some(text), _) => {
                    let t = chrono::NaiveDateTime::parse_from_str(text, "%Y/%m/%d %H:%M:%S%.f")
                        .map_err(|_| Reject::Timestamp(Shape))?;
                    (whole(t.and_utc())?, None)
                }
                (None, Some(Value::String(s))) => rfc3339(&s)?,
                (None, Some(Value::Number(n))) => {
                    use chrono::Datelike;
                    let us = scaled(&n.to_string(), 6).ok_or(Reject::Timestamp(Shape))?;
                    let t = chrono::DateTime::from_timestamp((us / 1_000_000) as i64, 0)
                        .filter(|t| t.year() <= 9999)
                        .ok_or(Reject::Timestamp(TimestampError::Range))?;
                    (t, None)
                }
                (None, _) => return Err(Reject::Timestamp(Shape)),
            };
            let status = status(status_v)?;
            let response_time_us = match get(top, "duration") {
                None => None,
                Some(d) => Some(scaled(&d.to_string(), 6).ok_or(Reject::ResponseTime)?),
            };
            let bytes = size(size_v)?;
            let (vhost, port) = match host {
                None => (None, None),
                Some(h) => match hostport(h) {
                    (host, Some(port)) => match port.parse::<u16>() {
                        Ok(port) => (Some(host), Some(port)),
                        Err(_) => (Some(h.clone()), None),
                    },
                    (host, None) => (Some(host), None),
                },
            };
            Ok(LogEntry {
                ip: Cow::Owned(ip),
                ident: None,
                user: present(user),
                timestamp,
                utc_offset,
                method: present(method.clone()),
                url: Cow::Owned(url),
                protocol: present(proto.clone()),
                status,
                bytes,
                referrer: headers.0.map(Cow::Owned),
                user_agent: headers.1.map(Cow::Owned),
                extra: Extra {
                    vhost: vhost.filter(|v| !v.is_empty()).map(Cow::Owned),
                    port,
                    response_time_us,
                    upstream_time_us: None,
                    forwarded_for: headers.2.map(Cow::Owned),
                },
            })
        }
        Schema::Traefik => {
            let mut s = std::collections::HashMap::new();
            for key in [
                "ClientHost",
                "ClientAddr",
                "ClientUsername",
                "StartUTC",
                "time",
                "RequestMethod",
                "RequestPath",
                "RequestProtocol",
                "RequestHost",
                "RequestPort",
                "request_Referer",
                "request_User-Agent",
                "request_X-Forwarded-For",
            ] {
                s.insert(key, string(get(top, key))?);
            }
            let mut n = std::collections::HashMap::new();
            for key in [
                "DownstreamStatus",
                "DownstreamContentSize",
                "Duration",
                "OriginDuration",
            ] {
                n.insert(key, number(get(top, key))?);
            }
            let url = s["RequestPath"].clone().ok_or(Reject::Format)?;
            let ip = match (&s["ClientHost"], &s["ClientAddr"]) {
                (Some(ip), _) => ip.clone(),
                (None, Some(addr)) => hostport(addr).0,
                (None, None) => String::new(),
            };
            check_client(&ip)?;
            let start = s["StartUTC"].as_ref().or(s["time"].as_ref());
            let (timestamp, offset) = rfc3339(start.ok_or(Reject::Timestamp(Shape))?)?;
            // StartUTC's offset is always UTC's, not the server's.
            let utc_offset = offset.filter(|_| s["StartUTC"].is_none());
            let status = status(n["DownstreamStatus"])?;
            let bytes = size(n["DownstreamContentSize"])?;
            let port = match present(s["RequestPort"].clone()) {
                None => None,
                Some(p) => p.parse::<u16>().ok(),
            };
            Ok(LogEntry {
                ip: Cow::Owned(ip),
                ident: None,
                user: present(s["ClientUsername"].clone()),
                timestamp,
                utc_offset,
                method: present(s["RequestMethod"].clone()),
                url: Cow::Owned(url),
                protocol: present(s["RequestProtocol"].clone()),
                status,
                bytes,
                referrer: present(s["request_Referer"].clone()),
                user_agent: present(s["request_User-Agent"].clone()),
                extra: Extra {
                    vhost: present(s["RequestHost"].clone()),
                    port,
                    response_time_us: n["Duration"].map(|ns| ns / 1000),
                    upstream_time_us: n["OriginDuration"].map(|ns| ns / 1000),
                    forwarded_for: present(s["request_X-Forwarded-For"].clone()),
                },
            })
        }
    }
}

/// Every line through the typed parser and the slow reading: the two agree; the results.
fn parse_all<'a>(schema: Schema, lines: &[&'a [u8]]) -> Vec<Result<LogEntry<'a>, Reject>> {
    let mut parser = JsonParser::new(schema);
    lines
        .iter()
        .map(|line| {
            let got = parser.parse(line);
            assert_eq!(
                got,
                slow(schema, line),
                "typed and slow readings differ on {}",
                String::from_utf8_lossy(line)
            );
            got
        })
        .collect()
}

fn expect(schema: Schema, line: &[u8], expected: &[(&str, &str)]) {
    assert_fields(JsonParser::new(schema).parse(line), line, expected);
}

fn find<'a>(lines: &[&'a [u8]], needle: &str) -> &'a [u8] {
    let needle = needle.as_bytes();
    lines
        .iter()
        .find(|l| l.windows(needle.len()).any(|w| w == needle))
        .unwrap_or_else(|| panic!("no line holds {}", String::from_utf8_lossy(needle)))
}

#[test]
fn every_line_of_the_json_logs_parses_and_both_readings_agree() {
    for (name, schema, total) in [
        (CADDY, Schema::Caddy, 1270),
        (CADDY_LNAV, Schema::Caddy, 4),
        (CADDY_CONSOLE, Schema::CaddyConsole, 433),
        (TRAEFIK, Schema::Traefik, 243),
    ] {
        let data = read("formats", name);
        let lines = split_lines(&data);
        assert_eq!(lines.len(), total, "{name}");
        for (line, result) in lines.iter().zip(parse_all(schema, &lines)) {
            let entry =
                result.unwrap_or_else(|r| panic!("{name}: {r}: {}", String::from_utf8_lossy(line)));
            // Every line of these files has these fields.
            assert!(entry.method.is_some() && entry.protocol.is_some(), "{name}");
            assert!(
                entry.bytes.is_some() && entry.extra.vhost.is_some(),
                "{name}"
            );
            assert!(entry.extra.response_time_us.is_some(), "{name}");
        }
        // No other schema reads a line of the file.
        for other in [Schema::Caddy, Schema::CaddyConsole, Schema::Traefik] {
            if other != schema {
                let read = lines
                    .iter()
                    .filter(|l| JsonParser::new(other).parse(l).is_ok());
                assert_eq!(read.count(), 0, "{name} as {other:?}");
            }
        }
    }
}

#[test]
fn caddy_lines_give_their_exact_fields() {
    let data = read("formats", CADDY);
    let lines = split_lines(&data);
    expect(
        Schema::Caddy,
        lines[0],
        &[
            ("ip", "192.168.2.101"),
            ("timestamp", "2025-08-01T11:26:51Z"),
            ("method", "GET"),
            ("url", "/"),
            ("protocol", "HTTP/1.1"),
            ("status", "302"),
            ("bytes", "0"),
            ("user_agent", "curl/8.13.0"),
            ("vhost", "192.168.2.101"),
            // "duration":0.0294296 s
            ("response_us", "29429"),
        ],
    );
    expect(
        Schema::Caddy,
        find(&lines, "\"ts\":1754047925.2093496"),
        &[
            ("ip", "192.168.2.10"),
            ("timestamp", "2025-08-01T11:32:05Z"),
            ("method", "GET"),
            ("url", "/favicon.ico"),
            ("protocol", "HTTP/2.0"),
            ("status", "404"),
            ("bytes", "1283"),
            ("referrer", "https://192.168.2.101/accounts/login/"),
            (
                "user_agent",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36",
            ),
            ("vhost", "192.168.2.101"),
            ("response_us", "18385"),
        ],
    );
    let data = read("formats", CADDY_LNAV);
    let lines = split_lines(&data);
    // Behind a proxy: the client is the proxy, X-Forwarded-For names the real one; the Host
    // header's port is the port.
    expect(
        Schema::Caddy,
        find(&lines, "1716723840.6541977"),
        &[
            ("ip", "10.5.1.1"),
            ("timestamp", "2024-05-26T11:44:00Z"),
            ("method", "GET"),
            (
                "url",
                "/gentoo/gentoo-distfiles/distfiles/b6/libvirt-python-9.9.0.tar.gz",
            ),
            ("protocol", "HTTP/2.0"),
            ("status", "200"),
            ("bytes", "246357"),
            (
                "user_agent",
                "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
            ),
            ("vhost", "mirrors.tnonline.net"),
            ("port", "400"),
            ("response_us", "24626"),
            ("forwarded_for", "10.10.10.132"),
        ],
    );
    expect(
        Schema::Caddy,
        find(&lines, "240e:1:1::1234"),
        &[
            ("ip", "240e:1:1::1234"),
            ("timestamp", "2024-05-26T14:16:03Z"),
            ("method", "GET"),
            ("url", "/res/browse.css"),
            ("protocol", "HTTP/3.0"),
            ("status", "200"),
            ("bytes", "1577"),
            (
                "referrer",
                "https://mirrors.tnonline.net/gentoo/gentoo-portage/app-dicts/aspell-lt/",
            ),
            (
                "user_agent",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/117.0.5938.60 Safari/537.36",
            ),
            ("vhost", "mirrors.tnonline.net"),
            ("response_us", "275"),
        ],
    );
}

#[test]
fn caddy_console_and_traefik_lines_give_their_exact_fields() {
    let data = read("formats", CADDY_CONSOLE);
    let lines = split_lines(&data);
    expect(
        Schema::CaddyConsole,
        lines[0],
        &[
            ("ip", "::1"),
            ("timestamp", "2024-01-23T23:27:57Z"),
            ("method", "POST"),
            ("url", "/api/realtime"),
            ("protocol", "HTTP/1.1"),
            ("status", "204"),
            ("bytes", "0"),
            (
                "referrer",
                "http://localhost:2080/route_viewer?map=AlBasrah",
            ),
            (
                "user_agent",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            ),
            ("vhost", "localhost"),
            ("port", "2080"),
            ("response_us", "1244"),
        ],
    );
    let data = read("formats", TRAEFIK);
    let lines = split_lines(&data);
    // A 404 Traefik answered itself; `RequestPort` is `-`, absent.
    expect(
        Schema::Traefik,
        lines[0],
        &[
            ("ip", "10.0.0.4"),
            ("timestamp", "2021-02-05T07:57:16Z"),
            ("method", "HEAD"),
            ("url", "/"),
            ("protocol", "HTTP/1.1"),
            ("status", "404"),
            ("bytes", "19"),
            ("user_agent", "REDACTED"),
            ("vhost", "prometheus.local"),
            ("response_us", "188"),
            ("upstream_us", "22"),
        ],
    );
    expect(
        Schema::Traefik,
        find(&lines, "\"DownstreamStatus\":502"),
        &[
            ("ip", "10.0.0.4"),
            ("timestamp", "2021-02-05T08:03:19Z"),
            ("method", "GET"),
            ("url", "/"),
            ("protocol", "HTTP/1.1"),
            ("status", "502"),
            ("bytes", "11"),
            ("user_agent", "REDACTED"),
            ("vhost", "grafana.local"),
            ("response_us", "620"),
            ("upstream_us", "528"),
        ],
    );
}

#[test]
fn lines_that_are_not_requests_are_rejected_with_a_reason() {
    let cases: [(Schema, &str, Reject); 12] = [
        (Schema::Caddy, "not json", Reject::Format),
        (Schema::Caddy, "", Reject::Format),
        // Caddy's other loggers write to the same file.
        (
            Schema::Caddy,
            r#"{"level":"info","ts":1716723772.6,"logger":"tls.obtain","msg":"certificate obtained","request":{"remote_ip":"1.2.3.4","uri":"/"},"status":200}"#,
            Reject::Format,
        ),
        (
            Schema::Caddy,
            r#"{"level":"info","ts":1716723772.6,"logger":"http.log.access","msg":"handled request"}"#,
            Reject::Format,
        ),
        (
            Schema::Caddy,
            r#"{"ts":1716723772.6,"logger":"http.log.access.log0","request":{"remote_ip":"1.2.3.4","uri":"/"},"status":0}"#,
            Reject::Status,
        ),
        (
            Schema::Caddy,
            r#"{"ts":"yesterday","request":{"remote_ip":"1.2.3.4","uri":"/"},"status":200}"#,
            Reject::Timestamp(TimestampError::Shape),
        ),
        (
            Schema::Caddy,
            r#"{"ts":1,"request":{"remote_ip":"1.2.3.4","uri":"/"},"status":200,"duration":"slow"}"#,
            Reject::ResponseTime,
        ),
        // A known key of the wrong type.
        (
            Schema::Caddy,
            r#"{"ts":1,"request":{"remote_ip":"1.2.3.4","uri":"/"},"status":"200"}"#,
            Reject::Format,
        ),
        (
            Schema::Caddy,
            "{\"ts\":1,\"request\":{\"remote_ip\":\"1.2.3.4\\u0000\",\"uri\":\"/\"},\"status\":200}",
            Reject::Client,
        ),
        (
            Schema::CaddyConsole,
            "2024/01/23 23:27:57.060\tinfo\thttp.handlers.reverse_proxy\tselected upstream\t{\"request\": {\"remote_ip\": \"::1\", \"uri\": \"/\"}, \"status\": 200}",
            Reject::Format,
        ),
        // Traefik's own log lines, when they share the access log's file.
        (
            Schema::Traefik,
            r#"{"level":"info","msg":"Configuration loaded from flags.","time":"2021-02-05T07:56:46Z"}"#,
            Reject::Format,
        ),
        // Milliseconds where seconds belong (Caddy's `time_format` changed): no year 57,000.
        (
            Schema::Caddy,
            r#"{"ts":1754047611399.995,"logger":"http.log.access","request":{"remote_ip":"1.2.3.4","uri":"/"},"status":200}"#,
            Reject::Timestamp(TimestampError::Range),
        ),
    ];
    for (schema, line, reject) in cases {
        assert_eq!(
            JsonParser::new(schema).parse(line.as_bytes()),
            Err(reject),
            "{line}"
        );
        assert_eq!(slow(schema, line.as_bytes()), Err(reject), "{line}");
    }
}

#[test]
fn hosts_ports_and_header_values() {
    let split = |h: &str| {
        let (host, port) = host_and_port(Cow::Borrowed(h));
        (host.into_owned(), port)
    };
    assert_eq!(
        split("example.org:8443"),
        ("example.org".into(), Some(8443))
    );
    assert_eq!(split("[::1]:2080"), ("::1".into(), Some(2080)));
    assert_eq!(split("[::1]"), ("::1".into(), None));
    assert_eq!(split("::1"), ("::1".into(), None));
    assert_eq!(split("example.org"), ("example.org".into(), None));
    assert_eq!(split("example.org:"), ("example.org".into(), None));
    assert_eq!(split("example.org:http"), ("example.org:http".into(), None));
    // Repeated headers are joined as HTTP joins them; escapes are decoded.
    let line = br#"{"ts":1.5,"request":{"remote_ip":"1.2.3.4","uri":"/\u00e9","headers":{"X-Forwarded-For":["1.1.1.1","2.2.2.2, 3.3.3.3"],"User-Agent":[],"Referer":["\"q\""]}},"status":200,"duration":1e-05}"#;
    let entry = JsonParser::new(Schema::Caddy).parse(line).unwrap();
    assert_eq!(entry.url, "/é");
    assert_eq!(
        entry.extra.forwarded_for.as_deref(),
        Some("1.1.1.1, 2.2.2.2, 3.3.3.3")
    );
    assert_eq!(
        (entry.user_agent.as_deref(), entry.referrer.as_deref()),
        (None, Some("\"q\""))
    );
    assert_eq!(entry.extra.response_time_us, Some(10));
    assert_eq!(Ok(entry), slow(Schema::Caddy, line));
    // Durations are read from their text: a float would make 0.001 s 999 µs or 1000 µs
    // depending on rounding; the text makes it 1000.
    for (text, us) in [("0.001", 1000), ("0.0294296", 29429), ("2", 2_000_000)] {
        assert_eq!(seconds_us(text), Some(us), "{text}");
    }
    assert_eq!(seconds_us("-0.5"), None);
}

/// One of `options`, chosen by a byte: mostly from the first half, which holds the values a
/// server writes, so that most lines parse and the rest fail each in their own way.
fn one(pick: u8, options: Vec<Option<Value>>) -> Option<Value> {
    let n = if pick.is_multiple_of(8) {
        options.len()
    } else {
        options.len().div_ceil(2)
    };
    options[(pick / 8) as usize % n].clone()
}

/// A JSON line of `schema`'s shape: each known key absent, of its type, or of another type,
/// among keys the mapping ignores.
fn generated(schema: Schema, picks: &[u8]) -> Vec<u8> {
    let mut picks = picks.iter().copied().cycle();
    let mut next = || picks.next().unwrap_or(0);
    let mut obj = serde_json::Map::new();
    let put = |obj: &mut serde_json::Map<String, Value>, key: &str, v: Option<Value>| {
        if let Some(v) = v {
            obj.insert(key.to_string(), v);
        }
    };
    let text = |s: &str| Some(json!(s));
    match schema {
        Schema::Caddy | Schema::CaddyConsole => {
            let mut headers = serde_json::Map::new();
            for key in ["User-Agent", "Referer", "X-Forwarded-For", "Accept"] {
                let v = one(
                    next(),
                    vec![
                        None,
                        Some(json!([])),
                        Some(json!(["curl/8.5.0"])),
                        Some(json!(["1.2.3.4", "10.0.0.1, 10.0.0.2"])),
                        Some(json!([""])),
                        Some(json!("not an array")),
                        Some(json!([1])),
                        Some(Value::Null),
                    ],
                );
                put(&mut headers, key, v);
            }
            let mut request = serde_json::Map::new();
            let strings: [(&str, Vec<Option<Value>>); 6] = [
                (
                    "remote_ip",
                    vec![
                        None,
                        text("192.168.2.10"),
                        text("::1"),
                        text(""),
                        text("a\u{1}"),
                    ],
                ),
                (
                    "remote_addr",
                    vec![None, text("10.0.0.1:80"), text("[::1]:8080")],
                ),
                ("proto", vec![None, text("HTTP/2.0"), text("")]),
                ("method", vec![None, text("GET"), text("-"), Some(json!(7))]),
                (
                    "host",
                    vec![
                        None,
                        text("example.org"),
                        text("example.org:8443"),
                        text("[::1]:2080"),
                        text("x:y"),
                        text(""),
                        text("::1"),
                    ],
                ),
                (
                    "uri",
                    vec![text("/"), text("/a?b=\"c\"&d=\u{e9}"), None, Some(json!(7))],
                ),
            ];
            for (key, options) in strings {
                put(&mut request, key, one(next(), options));
            }
            let headers = Some(Value::Object(headers));
            put(
                &mut request,
                "headers",
                one(next(), vec![headers.clone(), headers, None, text("h")]),
            );
            put(
                &mut request,
                "tls",
                Some(json!({"version": 772, "proto": "h2"})),
            );
            let request = Some(Value::Object(request));
            put(
                &mut obj,
                "request",
                one(next(), vec![request.clone(), request, None, Some(json!(1))]),
            );
            let logger = vec![
                None,
                text("http.log.access.log0"),
                text("http.log.access"),
                text("http.log.accessory"),
                text("tls.handshake"),
                Some(json!(5)),
            ];
            put(&mut obj, "logger", one(next(), logger));
            let ts = vec![
                Some(json!(1754047611.399995)),
                Some(json!(1716723772u64)),
                text("2024-05-26T11:42:52.601+02:00"),
                text("nonsense"),
                Some(Value::Null),
                Some(json!(true)),
                None,
            ];
            put(&mut obj, "ts", one(next(), ts));
            let status = vec![
                Some(json!(200)),
                Some(json!(404)),
                Some(json!(0)),
                Some(json!(1000)),
                text("200"),
                Some(json!(200.5)),
                None,
            ];
            put(&mut obj, "status", one(next(), status));
            let size = vec![
                Some(json!(0)),
                Some(json!(1234)),
                None,
                Some(json!(-1)),
                Some(json!(9223372036854775808u64)),
            ];
            put(&mut obj, "size", one(next(), size));
            let duration = vec![
                Some(json!(0.0294296)),
                Some(json!(1)),
                Some(json!(0.000724332)),
                Some(json!(1.5e-5)),
                Some(json!(-0.5)),
                text("fast"),
                None,
            ];
            put(&mut obj, "duration", one(next(), duration));
            put(
                &mut obj,
                "user_id",
                one(next(), vec![None, text(""), text("bob")]),
            );
            put(&mut obj, "resp_headers", Some(json!({"Etag": ["\"x\""]})));
        }
        Schema::Traefik => {
            let strings: [(&str, Vec<Option<Value>>); 13] = [
                (
                    "ClientHost",
                    vec![text("10.0.0.4"), text("::1"), None, text("")],
                ),
                (
                    "ClientAddr",
                    vec![None, text("10.0.0.4:33854"), text("[::1]:80")],
                ),
                ("ClientUsername", vec![None, text("-"), text("bob")]),
                (
                    "StartUTC",
                    vec![
                        text("2021-02-05T07:57:16.396057908Z"),
                        None,
                        text("x"),
                        Some(json!(1)),
                    ],
                ),
                ("time", vec![None, text("2021-02-05T07:57:16Z")]),
                ("RequestMethod", vec![None, text("GET")]),
                (
                    "RequestPath",
                    vec![text("/"), text("/a?b=1"), None, Some(json!(1))],
                ),
                ("RequestProtocol", vec![None, text("HTTP/1.1")]),
                ("RequestHost", vec![None, text("grafana.local"), text("-")]),
                (
                    "RequestPort",
                    vec![None, text("-"), text("443"), text("http"), text("70000")],
                ),
                ("request_Referer", vec![None, text("http://a/"), text("")]),
                ("request_User-Agent", vec![None, text("REDACTED")]),
                (
                    "request_X-Forwarded-For",
                    vec![None, text("1.2.3.4, 10.0.0.1")],
                ),
            ];
            for (key, options) in strings {
                put(&mut obj, key, one(next(), options));
            }
            for key in [
                "DownstreamStatus",
                "DownstreamContentSize",
                "Duration",
                "OriginDuration",
            ] {
                let v = one(
                    next(),
                    vec![
                        Some(json!(200)),
                        Some(json!(502)),
                        Some(json!(188279)),
                        None,
                        Some(json!(-3)),
                        Some(json!(1.5)),
                        text("9"),
                    ],
                );
                put(&mut obj, key, v);
            }
            put(
                &mut obj,
                "ServiceURL",
                Some(json!({"Scheme": "http", "User": null})),
            );
        }
    }
    let json = serde_json::to_vec(&Value::Object(obj)).unwrap();
    if schema != Schema::CaddyConsole {
        return json;
    }
    let prefix = one(
        next(),
        vec![
            text("2024/01/23 23:27:57.060\tinfo\thttp.log.access.log0\thandled request\t"),
            text("2024/01/23 23:27:57\tinfo\thttp.log.access\thandled request\t"),
            text("2024-01-23 23:27:57\tinfo\thttp.log.access.log0\thandled request\t"),
            text("2024/01/23 23:27:57.060\terror\thttp.handlers.reverse_proxy\taborting\t"),
            text("2024/01/23 23:27:57.060\tinfo\t"),
        ],
    );
    let mut line = prefix.unwrap().as_str().unwrap().as_bytes().to_vec();
    line.extend_from_slice(&json);
    line
}

const SCHEMAS: [Schema; 3] = [Schema::Caddy, Schema::CaddyConsole, Schema::Traefik];

/// Where a line's JSON starts: after the console encoder's four tab-separated fields.
fn json_of(schema: Schema, line: &[u8]) -> &[u8] {
    match schema {
        Schema::CaddyConsole => line.splitn(5, |&b| b == b'\t').nth(4).unwrap_or(b""),
        Schema::Caddy | Schema::Traefik => line,
    }
}

/// The fast reading of `json`, checked against serde's: `Some(true)` when it answered (and
/// agreed), `Some(false)` when it left the line to serde, `None` when the text is not UTF-8.
fn fast_agrees(schema: Schema, json: &[u8]) -> Result<Option<bool>, String> {
    // One set of marks for every line a thread checks, as a parser keeps: a longer line's
    // marks must not outlive it.
    thread_local!(static MARKS: std::cell::RefCell<scan::Marks> = Default::default());
    let marks = &mut MARKS.with(|m| m.take());
    let answer = match marks.text(json) {
        None => {
            assert!(std::str::from_utf8(json).is_err(), "refused as not UTF-8");
            Ok(None)
        }
        Some((text, may_be_fast)) => {
            assert_eq!(Ok(text), std::str::from_utf8(json));
            assert_eq!(may_be_fast, !json.iter().any(|&b| b < 0x20));
            if may_be_fast {
                fast_answer(schema, text, marks)
            } else {
                Ok(Some(false))
            }
        }
    };
    MARKS.with(|m| m.replace(std::mem::take(marks)));
    answer
}

fn fast_answer(schema: Schema, text: &str, marks: &scan::Marks) -> Result<Option<bool>, String> {
    let differ = |fast: &dyn std::fmt::Debug, serde: &dyn std::fmt::Debug| {
        Err(format!("fast {fast:?}, serde {serde:?}, on {text}"))
    };
    match schema {
        Schema::Caddy | Schema::CaddyConsole => match scan::caddy(text, marks) {
            None => Ok(Some(false)),
            Some(fast) => match serde_json::from_str::<CaddyLine>(text) {
                Ok(serde) if serde == fast => Ok(Some(true)),
                serde => differ(&fast, &serde),
            },
        },
        Schema::Traefik => match scan::traefik(text, marks) {
            None => Ok(Some(false)),
            Some(fast) => match serde_json::from_str::<TraefikLine>(text) {
                Ok(serde) if serde == fast => Ok(Some(true)),
                serde => differ(&fast, &serde),
            },
        },
    }
}

#[test]
fn the_fast_reading_answers_for_every_real_line_as_serde_does() {
    for (name, schema) in [
        (CADDY, Schema::Caddy),
        (CADDY_LNAV, Schema::Caddy),
        (CADDY_CONSOLE, Schema::CaddyConsole),
        (TRAEFIK, Schema::Traefik),
    ] {
        let data = read("formats", name);
        for line in split_lines(&data) {
            let json = json_of(schema, line);
            assert_eq!(fast_agrees(schema, json), Ok(Some(true)), "{name}");
        }
    }
}

/// `json` with `spaces(n)` spaces after its `n`th colon or comma outside strings.
fn spaced(json: &[u8], spaces: impl Fn(usize) -> usize) -> Vec<u8> {
    let (mut out, mut inside, mut escaped, mut n) = (Vec::new(), false, false, 0);
    for &b in json {
        out.push(b);
        match b {
            _ if escaped => escaped = false,
            b'\\' if inside => escaped = true,
            b'"' => inside = !inside,
            b':' | b',' if !inside => {
                out.extend(std::iter::repeat_n(b' ', spaces(n)));
                n += 1;
            }
            _ => {}
        }
    }
    out
}

#[test]
fn the_fast_reading_answers_for_lines_spaced_out_as_for_compact_ones() {
    // Compact lines (Caddy's default), one space after each separator (its console
    // encoder), and runs of spaces, all read alike and without serde.
    for (name, schema) in [(CADDY, Schema::Caddy), (TRAEFIK, Schema::Traefik)] {
        let data = read("formats", name);
        for line in split_lines(&data).into_iter().take(50) {
            for spaces in [|_| 0, |_| 1, |n| n % 4, |n| 3 - n % 4] {
                let json = spaced(line, spaces);
                assert_eq!(
                    fast_agrees(schema, &json),
                    Ok(Some(true)),
                    "{}",
                    String::from_utf8_lossy(&json)
                );
                let spaced = JsonParser::new(schema).parse(&json);
                assert_eq!(spaced, JsonParser::new(schema).parse(line));
            }
        }
    }
}

#[test]
fn the_fast_reading_leaves_what_serde_refuses_or_reads_otherwise_to_serde() {
    let deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
    let cases = [
        r#"{"status":200,}"#,
        r#"{"status":200}{"#,
        r#"{"status":200} x"#,
        r#"{"status":200,"status":201}"#,
        r#"{"status":200.0}"#,
        r#"{"status":2e2}"#,
        r#"{"status":-0}"#,
        r#"{"status":0200}"#,
        r#"{"size":18446744073709551616}"#,
        r#"{"a":01,"status":200}"#,
        r#"{"a":1.,"status":200}"#,
        r#"{"a":-,"status":200}"#,
        r#"{"a":1e,"status":200}"#,
        r#"{"a":1e+,"status":200}"#,
        r#"{"a":-0,"status":200}"#,
        r#"{"a":-01,"status":200}"#,
        r#"{"a":1x,"status":200}"#,
        r#"{"a":-1.5e-3,"status":200}"#,
        r#"{"a":tru,"status":200}"#,
        r#"{"a":[1,],"status":200}"#,
        r#"{"a":"\x","status":200}"#,
        r#"{"a":"\u12g4","status":200}"#,
        r#"{"a":"\ud800","status":200}"#,
        r#"{"a":"\ud83d\ude00","status":200}"#,
        r#"{"st\u0061tus":200}"#,
        r#"{"request":{"uri":"/a\"b"}}"#,
        r#"{"request":{"uri":"/\u00e9"}}"#,
        r#"{"request":{"headers":{"User-Agent":["a","b\"c"]}}}"#,
        r#"{"request":{"headers":{"User-Agent":"a"}}}"#,
        r#"{"ts":"x" ,"duration":1e-05 , "request" : null}"#,
        "{\"status\":\t200}",
        "{\"a\":\"\u{1}\",\"status\":200}",
        r#"["a",200]"#,
        r#"{"DownstreamStatus":200,"DownstreamStatus":200}"#,
        r#"{"Duration":1.5}"#,
        r#"{"ClientHost":"a\/b","RequestPath":"/"}"#,
        &deep,
        r#"{"status":200}"#,
    ];
    for schema in SCHEMAS {
        for case in cases {
            assert!(fast_agrees(schema, case.as_bytes()).is_ok(), "{case}");
        }
    }
    // The plain ones are answered by the fast reading itself.
    for plain in [
        r#"{"status":200}"#,
        r#"{"ts":"x" ,"duration":1e-05 , "request" : null}"#,
        r#"{"a":"\ud800","status":200}"#,
        r#"{"request":{"uri":"/\u00e9?a=1\u0026b=\"2\"","headers":{"User-Agent":["a\/b"]}}}"#,
    ] {
        assert_eq!(fast_agrees(Schema::Caddy, plain.as_bytes()), Ok(Some(true)));
    }
}

#[test]
fn strings_read_the_same_wherever_their_quotes_fall_in_the_marks() {
    // The marks are words of 64 bytes: move every quote, escape and the line's end across
    // their edges, one byte at a time, with a longer line first so that its marks are stale.
    let long = format!(r#"{{"msg":"{}","status":200}}"#, "x".repeat(300));
    for pad in 0..140 {
        assert_eq!(fast_agrees(Schema::Caddy, long.as_bytes()), Ok(Some(true)));
        let request = r#"{"uri":"/a\"b\\","headers":{"User-Agent":["u \"v\""]}}"#;
        let x = "x".repeat(pad);
        let line = format!(r#"{{"msg":"{x}","request":{request},"status":200}}"#);
        assert_eq!(
            fast_agrees(Schema::Caddy, line.as_bytes()),
            Ok(Some(true)),
            "{line}"
        );
        let mut short = format!(r#"{{"status":{}}}"#, "1".repeat(pad % 4 + 1));
        short.truncate(pad.min(short.len()));
        assert!(
            fast_agrees(Schema::Caddy, short.as_bytes()).is_ok(),
            "{short}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn lines_are_marked_alike_with_and_without_avx2(
        bytes in proptest::collection::vec(
            prop_oneof![
                Just(b'"'), Just(b'\\'), Just(b' '), Just(b'a'),
                Just(0x1f), Just(0x7f), Just(0x80), any::<u8>(),
            ],
            0..300,
        ),
    ) {
        if !std::is_x86_feature_detected!("avx2") {
            eprintln!("SKIPPED: this processor has no AVX2");
            return Ok(());
        }
        let whole = &bytes[..bytes.len() / 64 * 64];
        let (mut sse2, mut avx2) = (vec![0; whole.len() / 64], vec![0; whole.len() / 64]);
        let plain = scan::mark_chunks_without_avx2(&mut sse2, whole);
        // SAFETY: this processor has AVX2: it was just asked.
        prop_assert_eq!(unsafe { scan::mark_chunks_avx2(&mut avx2, whole) }, plain);
        prop_assert_eq!(avx2, sse2);
    }

    #[test]
    fn generated_json_lines_read_the_same_typed_and_untyped(
        which in 0..3usize,
        picks in proptest::collection::vec(any::<u8>(), 1..40),
    ) {
        let schema = SCHEMAS[which];
        let line = generated(schema, &picks);
        prop_assert_eq!(
            JsonParser::new(schema).parse(&line),
            slow(schema, &line),
            "{}",
            String::from_utf8_lossy(&line)
        );
    }

    #[test]
    fn the_fast_reading_agrees_with_serde_on_damaged_lines(
        which in 0..3usize,
        picks in proptest::collection::vec(any::<u8>(), 1..40),
        damage in proptest::collection::vec((any::<u16>(), any::<u8>(), 0..3u8), 0..4),
    ) {
        let schema = SCHEMAS[which];
        let mut line = generated(schema, &picks);
        for (at, byte, how) in damage {
            let at = usize::from(at) % (line.len() + 1);
            match how {
                0 => line.insert(at, byte),
                1 if at < line.len() => { line.remove(at); }
                _ if at < line.len() => line[at] = byte,
                _ => {}
            }
        }
        let json = json_of(schema, &line);
        prop_assert!(fast_agrees(schema, json).is_ok(), "{:?}", fast_agrees(schema, json));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_agree(
        which in 0..3usize,
        line in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let schema = SCHEMAS[which];
        prop_assert_eq!(JsonParser::new(schema).parse(&line), slow(schema, &line));
    }
}

#[test]
fn auto_picks_each_json_log_s_schema_and_not_a_user_s_own_keys() {
    let head = |name: &str| head(&read("formats", name));
    for (name, schema) in [
        (CADDY, "caddy"),
        (CADDY_LNAV, "caddy"),
        (CADDY_CONSOLE, "caddy-console"),
        (TRAEFIK, "traefik"),
    ] {
        assert_eq!(pick(&head(name)), Ok(schema.to_string()), "{name}");
        let format = crate::format::LogFormat::from_arg(schema).unwrap();
        assert_eq!(format.name(), schema);
        assert!(format.has_extra_fields());
        assert!(format.has(|f| *f == Field::ForwardedFor));
    }
    // nginx escape=json keys are the user's: auto names none, and says what it tried.
    let refused = pick(&head("y4-aoki-private-isu_access.log")).unwrap_err();
    assert!(
        refused.contains("caddy, caddy-console, traefik"),
        "{refused}"
    );
    // A Caddy file with a Traefik line in it is refused as mixed.
    let mut mixed = head(CADDY_LNAV);
    mixed.extend(head(TRAEFIK).into_iter().take(1));
    let refused = pick(&mixed).unwrap_err();
    assert!(
        refused.contains("several formats (caddy, traefik)"),
        "{refused}"
    );
}

/// Traefik's `RequestPort` comes from the Host header, which the client writes: one that is
/// no port is none, and the request is kept.
#[test]
fn a_port_the_client_wrote_that_is_no_port_is_absent() {
    let line = br#"{"ClientHost":"10.0.0.4","RequestPath":"/","RequestPort":"http","DownstreamStatus":200,"StartUTC":"2021-02-05T07:57:16.396057908Z"}"#;
    let typed = JsonParser::new(Schema::Traefik).parse(line).unwrap();
    assert_eq!((typed.extra.port, typed.status), (None, 200));
    assert_eq!(slow(Schema::Traefik, line).unwrap(), typed);
}

/// One parser over lines of one second: the cache of the last second read gives each the
/// time its own text says, to the second, and a fraction that is no fraction is still refused
/// though its second is the one remembered.
#[test]
fn times_of_one_second_share_the_cache_and_bad_fractions_are_still_refused() {
    let traefik = |start: &str| {
        format!(
            r#"{{"ClientHost":"10.0.0.4","RequestPath":"/","DownstreamStatus":200,"StartUTC":"{start}"}}"#
        )
    };
    let times = [
        "2021-02-05T07:57:16.396057908Z",
        "2021-02-05T07:57:16.4Z",
        "2021-02-05T07:57:16Z",
        "2021-02-05T07:57:17.000000001Z",
        "2021-02-05T07:57:16.999+00:00",
        "2021-02-05T07:57:16.1x3Z",
        "2021-02-05T07:57:16.Z",
        "2021-02-05T07:57:16.12.3Z",
        "2021-02-05T07:57:16.1234567890123Z",
    ];
    let seconds = ["2021-02-05T07:57:16.9Z", "2021-02-05T07:57:16.1Z"];
    cached_times_read_as_fresh(
        Schema::Traefik,
        traefik,
        &times,
        seconds,
        "2021-02-05T07:57:16.1x3Z",
    );

    // Caddy's console encoder writes milliseconds in a time of its own.
    let console = |time: &str| {
        format!(
            "{time}\tinfo\thttp.log.access\thandled request\t{}",
            r#"{"request":{"remote_ip":"::1","uri":"/"},"status":200}"#
        )
    };
    let times = [
        "2024/01/23 23:27:57.060",
        "2024/01/23 23:27:57.5",
        "2024/01/23 23:27:57",
        "2024/01/23 23:27:58.001",
        "2024/01/23 23:27:57.1x3",
        "2024/01/23 23:27:57.",
        "2024/01/23 23:27:57.12.3",
        "2024/01/23 23:27:57.1234567890123",
        // A `.` where the milliseconds' is, in layouts chrono's format parser also reads.
        "2024/01/23    23:27.5:57",
        "2024/01/23   23:27:.5 57",
        "+0002024/01/23 23:2.5:57",
    ];
    let seconds = ["2024/01/23 23:27:57.900", "2024/01/23 23:27:57.100"];
    let bad = "2024/01/23 23:27:57.1x3";
    cached_times_read_as_fresh(Schema::CaddyConsole, console, &times, seconds, bad);
}

/// Lines made by `line` from each of `times`, read in turn by one parser (its cache of the
/// last time in use), read as a fresh parser and the reference reading read them; the two
/// `seconds`, times of one second, give one timestamp; `bad` stays refused after them.
fn cached_times_read_as_fresh(
    schema: Schema,
    line: impl Fn(&str) -> String,
    times: &[&str],
    seconds: [&str; 2],
    bad: &str,
) {
    let mut parser = JsonParser::new(schema);
    for time in times {
        let text = line(time);
        let fresh = JsonParser::new(schema).parse(text.as_bytes());
        let cached = parser.parse(text.as_bytes());
        assert_eq!(cached, fresh, "{time}");
        assert_eq!(slow(schema, text.as_bytes()), fresh, "{time}");
    }
    let mut second = |time: &str| parser.parse(line(time).as_bytes()).map(|e| e.timestamp);
    let (late, early) = (second(seconds[0]), second(seconds[1]));
    assert!(late.is_ok());
    assert_eq!(late, early);
    assert!(second(bad).is_err());
}

#[test]
fn console_times_are_compared_without_milliseconds_only_when_laid_out_as_caddy_writes_them() {
    let second = |ts: &str| String::from_utf8(console_second(ts.as_bytes()).to_vec()).unwrap();
    for ts in [
        "2024/01/23 23:27:57.060",
        "2024/01/23 23:27:57.1",
        "2024/01/23 23:27:57.123456789",
    ] {
        assert_eq!(second(ts), "2024/01/23 23:27:57", "{ts}");
    }
    for ts in [
        "2024/01/23 23:27:57",
        "2024/01/23 23:27:57.",
        "2024/01/23 23:27:57.1234567890",
        "2024/01/23 23:27:57.1x3",
        "2024/01/23 23:27:57.12.3",
        "2024/01/23    23:27.5:57",
        "+0002024/01/23 23:2.5:57",
        "2024-01-23 23:27:57.060",
        "2024/01/23T23:27:57.060",
    ] {
        assert_eq!(second(ts), ts, "{ts}");
    }
}
