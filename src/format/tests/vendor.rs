//! The named formats of load balancers and proxies (`vendor.rs`) against their real logs in
//! `../shared/data/formats` (SOURCES.md gives each file's layout), against Traefik's
//! documented layout, and against their own regex.

use proptest::prelude::*;

use super::*;
use crate::format::vendor::{self, named};

const ELB_12: &str = "atombrenner-elb-lambda-analyse_elb.log";
const ELB_15: &str = "iamon3-java_examples_elb.log";
const ALB: &str = "crowdsecurity-hub_aws-alb-logs.log";
const CLOUDFRONT: &str = "crowdsecurity-hub_aws-cloudfront-logs.log";
const HAPROXY: &str = "tstack-lnav_logfile_haproxy.0";

fn format(name: &str) -> Format {
    named(name).unwrap()
}

/// Every line of `file` through `name`'s scanner and regex (which must agree): the entries,
/// and the rejected lines with their reasons.
fn read_file<'a>(name: &str, lines: &[&'a [u8]]) -> (Vec<LogEntry<'a>>, Vec<(Reject, String)>) {
    let results = parse_all(&format(name), lines);
    let mut entries = Vec::new();
    let mut rejects = Vec::new();
    for (result, line) in results.into_iter().zip(lines) {
        match result {
            Ok(e) => entries.push(e),
            Err(r) => rejects.push((r, String::from_utf8_lossy(line).into_owned())),
        }
    }
    (entries, rejects)
}

#[test]
fn elb_reads_both_the_12_and_the_15_field_layout_with_every_field() {
    for (file, total) in [(ELB_12, 4999), (ELB_15, 6301)] {
        let data = read("formats", file);
        let lines = lines(&data);
        assert_eq!(lines.len(), total, "{file}");
        let (entries, rejects) = read_file("elb", &lines);
        assert!(rejects.is_empty(), "{file}: {rejects:#?}");
        // The absolute URL is split back into host, port and target on every line.
        assert!(entries.iter().all(|e| e.url.starts_with('/')
            && e.extra.vhost.is_some()
            && e.extra.port == Some(80)
            && e.extra.response_time_us.is_some()
            && e.extra.upstream_time_us.is_some()));
    }
    let elb = format("elb");
    expect(
        br#"2015-03-08T16:35:33.465313Z atombrenner-ELB 66.249.81.123:63235 10.0.161.12:9000 0.000033 0.00082 0.000016 200 200 0 0 "OPTIONS http://www.atombrenner.de:80/atombrenner/list/V+4a4adadf-269f-41a7-a092-84632173d7c9?since=2014-03-08T16%3A35%3A25.796Z HTTP/1.1""#,
        &elb,
        &[
            ("ip", "66.249.81.123"),
            ("timestamp", "2015-03-08T16:35:33Z"),
            ("method", "OPTIONS"),
            ("url", "/atombrenner/list/V+4a4adadf-269f-41a7-a092-84632173d7c9?since=2014-03-08T16%3A35%3A25.796Z"),
            ("protocol", "HTTP/1.1"),
            ("status", "200"),
            ("bytes", "0"),
            ("vhost", "www.atombrenner.de"),
            ("port", "80"),
            // 33 + 820 + 16 µs: the three timers summed; the backend's alone upstream.
            ("response_us", "869"),
            ("upstream_us", "820"),
        ],
    );
    expect(
        br#"2015-03-08T16:35:35.101392Z atombrenner-ELB 46.5.78.123:35160 10.0.157.123:9000 0.000028 0.002116 0.000015 400 400 0 17 "GET http://www.atombrenner.de:80/atombrenner/list/V+undefined?since=2014-03-08T16%3A36%3A03.279Z HTTP/1.1""#,
        &elb,
        &[
            ("ip", "46.5.78.123"),
            ("timestamp", "2015-03-08T16:35:35Z"),
            ("method", "GET"),
            ("url", "/atombrenner/list/V+undefined?since=2014-03-08T16%3A36%3A03.279Z"),
            ("protocol", "HTTP/1.1"),
            ("status", "400"),
            ("bytes", "17"),
            ("vhost", "www.atombrenner.de"),
            ("port", "80"),
            ("response_us", "2159"),
            ("upstream_us", "2116"),
        ],
    );
    expect(
        br#"2018-06-09T07:40:37.627870Z elb123 23.57.74.53:43877 172.31.31.224:80 0.000054 0.135172 0.000082 200 200 74 83 "POST http://api.superprod.com:80/ws/shout/shoutByUser.json?platform=Cellular&pId=1 HTTP/1.1" "Dalvik/2.1.0 (Linux; U; Android 5.1; Lenovo A7010a48 Build/LMY47D)" - -"#,
        &elb,
        &[
            ("ip", "23.57.74.53"),
            ("timestamp", "2018-06-09T07:40:37Z"),
            ("method", "POST"),
            ("url", "/ws/shout/shoutByUser.json?platform=Cellular&pId=1"),
            ("protocol", "HTTP/1.1"),
            ("status", "200"),
            ("bytes", "83"),
            ("user_agent", "Dalvik/2.1.0 (Linux; U; Android 5.1; Lenovo A7010a48 Build/LMY47D)"),
            ("vhost", "api.superprod.com"),
            ("port", "80"),
            ("response_us", "135308"),
            ("upstream_us", "135172"),
        ],
    );
    // AWS documents `-1` timers for a request no backend answered, and `"- - - "` for a
    // request the balancer could not read; an IPv6 client keeps its colons.
    expect(
        br#"2018-06-09T07:40:37.999999Z elb123 2001:db8::7:43877 - -1 -1 -1 504 0 0 0 "- - - " "-" - -"#,
        &elb,
        &[
            ("ip", "2001:db8::7"),
            ("timestamp", "2018-06-09T07:40:37Z"),
            ("url", "- - - "),
            ("status", "504"),
            ("bytes", "0"),
        ],
    );
    // Timers that are not three numbers are a response-time reject, not a shifted line.
    let line = br#"2018-06-09T07:40:37.627870Z elb123 23.57.74.53:43877 172.31.31.224:80 0.000054 x 0.000082 200 200 74 83 "GET / HTTP/1.1""#;
    assert_eq!(elb.scanner().parse(line), Err(Reject::ResponseTime));
}

#[test]
fn alb_reads_29_and_33_field_lines_alike() {
    let data = read("formats", ALB);
    let lines = lines(&data);
    assert_eq!(lines.len(), 14);
    let (entries, rejects) = read_file("alb", &lines);
    assert!(rejects.is_empty(), "{rejects:#?}");
    // Lines 8 to 14 repeat earlier ones with the 4 newer fields appended: the same entries
    // but for the client (rewritten per line) and two of the times.
    assert_eq!(entries[8].url, entries[1].url);
    assert_eq!(entries[8].extra, entries[1].extra);
    assert_eq!(entries[10].extra, entries[3].extra);
    let alb = format("alb");
    expect(
        lines[0],
        &alb,
        &[
            ("ip", "192.168.1.10"),
            ("timestamp", "2023-04-26T12:22:55Z"),
            ("method", "GET"),
            ("url", "/"),
            ("protocol", "HTTP/1.1"),
            ("status", "200"),
            ("bytes", "366"),
            ("user_agent", "curl/7.46.0"),
            ("vhost", "www.example.com"),
            ("port", "80"),
            ("response_us", "1000"),
            ("upstream_us", "1000"),
        ],
    );
    expect(
        lines[2],
        &alb,
        &[
            ("ip", "192.168.1.12"),
            ("timestamp", "2023-04-26T12:23:14Z"),
            ("method", "GET"),
            ("url", "/index.html"),
            ("protocol", "HTTP/2.0"),
            ("status", "200"),
            ("bytes", "257"),
            ("user_agent", "curl/7.46.0"),
            ("vhost", "10.0.2.105"),
            ("port", "773"),
            ("response_us", "2000"),
            ("upstream_us", "2000"),
        ],
    );
    // Answered by the balancer itself (WAF): no target, `-1` timers.
    expect(
        lines[4],
        &alb,
        &[
            ("ip", "192.168.1.14"),
            ("timestamp", "2023-04-26T19:53:47Z"),
            ("method", "GET"),
            ("url", "/.awscfg"),
            ("protocol", "HTTP/1.1"),
            ("status", "404"),
            ("bytes", "167"),
            ("user_agent", "${jndi:ldap://${java:version}.domain/a}"),
            ("vhost", "api.example.com"),
            ("port", "443"),
        ],
    );
    // A 33-field line.
    expect(
        lines[7],
        &alb,
        &[
            ("ip", "192.168.131.39"),
            ("timestamp", "2018-07-02T22:23:00Z"),
            ("method", "GET"),
            ("url", "/"),
            ("protocol", "HTTP/1.1"),
            ("status", "200"),
            ("bytes", "57"),
            ("user_agent", "curl/7.46.0"),
            ("vhost", "www.example.com"),
            ("port", "443"),
            ("response_us", "171000"),
            ("upstream_us", "48000"),
        ],
    );
    // A Classic ELB line is not an ALB line (no `type` first), and the reverse.
    let elb_line = read("formats", ELB_15);
    let elb_line = super::lines(&elb_line)[0];
    assert!(alb.scanner().parse(elb_line).is_err());
    assert!(format("elb").scanner().parse(lines[0]).is_err());
}

#[test]
fn cloudfront_reads_its_tab_separated_fields_and_rejects_its_header_lines() {
    let data = read("formats", CLOUDFRONT);
    let lines = lines(&data);
    assert_eq!(lines.len(), 2);
    let (entries, rejects) = read_file("cloudfront", &lines);
    assert!(rejects.is_empty(), "{rejects:#?}");
    // The second copy differs only in `sc-content-len`, which is not stored.
    assert_eq!(entries[0], entries[1]);
    let cloudfront = format("cloudfront");
    expect(
        lines[0],
        &cloudfront,
        &[
            ("ip", "1.2.3.4"),
            ("timestamp", "2024-03-12T15:22:28Z"),
            ("method", "GET"),
            ("url", "/testseb?query_param=42"),
            ("protocol", "HTTP/2.0"),
            ("status", "400"),
            ("bytes", "703"),
            ("user_agent", "curl/7.81.0"),
            ("vhost", "hub-cdn.crowdsec.net"),
            ("response_us", "113000"),
        ],
    );
    // The header CloudFront writes first, and a line of AWS's documentation example with a
    // percent-encoded agent, a referrer, a forwarded-for and no query.
    let header = b"#Version: 1.0";
    let fields = format!("#Fields: {}", vendor_fields().join(" "));
    for line in [&header[..], fields.as_bytes()] {
        assert_eq!(cloudfront.scanner().parse(line), Err(Reject::Directive));
        assert_eq!(
            cloudfront.regex_parser().parse(line),
            Err(Reject::Directive)
        );
    }
    let documented = "2019-12-04\t21:02:31\tLAX1\t392\t192.0.2.100\tGET\td111111abcdef8.cloudfront.net\t/index.html\t200\thttps://example.com/\tMozilla/5.0%20(Windows%20NT%2010.0;%20Win64;%20x64)\t-\t-\tHit\tSOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ==\twww.example.com\thttps\t23\t0.001\t203.0.113.7\tTLSv1.2\tECDHE-RSA-AES128-GCM-SHA256\tHit\tHTTP/1.1\t-\t-\t11040\t0.001\tHit\ttext/html\t78\t-\t-";
    expect(
        documented.as_bytes(),
        &cloudfront,
        &[
            ("ip", "192.0.2.100"),
            ("timestamp", "2019-12-04T21:02:31Z"),
            ("method", "GET"),
            ("url", "/index.html"),
            ("protocol", "HTTP/1.1"),
            ("status", "200"),
            ("bytes", "392"),
            ("referrer", "https://example.com/"),
            ("user_agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"),
            ("vhost", "www.example.com"),
            ("response_us", "1000"),
            ("forwarded_for", "203.0.113.7"),
        ],
    );
    // Fields AWS may append later follow a tab and are read past.
    let appended = format!("{documented}\tnew-field");
    assert!(cloudfront.scanner().parse(appended.as_bytes()).is_ok());
}

/// The 33 names of CloudFront's `#Fields:` line.
fn vendor_fields() -> Vec<&'static str> {
    "date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len sc-range-start sc-range-end"
        .split(' ')
        .collect()
}

#[test]
fn haproxy_reads_the_http_lines_and_rejects_startup_and_tls_failures() {
    let data = read("formats", HAPROXY);
    let lines = lines(&data);
    assert_eq!(lines.len(), 17);
    let (entries, rejects) = read_file("haproxy", &lines);
    assert_eq!(entries.len(), 13);
    let reasons: Vec<(Reject, bool)> = rejects
        .iter()
        .map(|(r, l)| {
            (
                *r,
                l.ends_with("started.") || l.ends_with("SSL handshake failure"),
            )
        })
        .collect();
    assert_eq!(reasons, [(Reject::Format, true); 4], "{rejects:#?}");
    let haproxy = format("haproxy");
    // HAProxy's own accept date (16:19:48), not syslog's (16:19:49); `%Ta` 1487 ms, `%Tr`
    // 1457 ms.
    expect(
        lines[3],
        &haproxy,
        &[
            ("ip", "141.35.244.171"),
            ("timestamp", "2019-02-25T16:19:48Z"),
            ("method", "GET"),
            (
                "url",
                "/admin/colt/administration?survey=130&input_stats=1&ajax=1&&ajax=1&refresh=1&ihandle=1",
            ),
            ("protocol", "HTTP/1.1"),
            ("status", "200"),
            ("bytes", "11394"),
            ("response_us", "1487000"),
            ("upstream_us", "1457000"),
        ],
    );
    expect(
        lines[8],
        &haproxy,
        &[
            ("ip", "89.247.124.65"),
            ("timestamp", "2019-02-25T16:20:06Z"),
            ("method", "GET"),
            (
                "url",
                "/portal/?Script=934&onlinetest=korrektur&anm=13915&currentPage=0",
            ),
            ("protocol", "HTTP/1.1"),
            ("status", "200"),
            ("bytes", "26170"),
            ("response_us", "2707000"),
            ("upstream_us", "43000"),
        ],
    );
    // A padded syslog day, no captured headers, a request that never reached a server
    // (`-1` timers) and an IPv6 client; rsyslog's RFC 3339 header.
    expect(
        br#"Mar  5 01:02:03 lb haproxy[12]: [2001:db8::1]:4711 [05/Mar/2019:01:02:03.004] fe be/<NOSRV> 0/-1/-1/-1/0 503 212 - - SC-- 1/1/0/0/0 0/0 "GET / HTTP/1.1""#,
        &haproxy,
        &[
            ("ip", "2001:db8::1"),
            ("timestamp", "2019-03-05T01:02:03Z"),
            ("method", "GET"),
            ("url", "/"),
            ("protocol", "HTTP/1.1"),
            ("status", "503"),
            ("bytes", "212"),
            ("response_us", "0"),
        ],
    );
    let rfc3339 = br#"2019-02-25T16:19:49.123+01:00 lb haproxy: 10.0.0.1:1 [25/Feb/2019:16:19:48.143] fe be/s 0/0/1/2/3 200 5 - - ---- 1/1/0/0/0 0/0 {x} {} "GET /a HTTP/1.1""#;
    assert!(haproxy.scanner().parse(rfc3339).is_ok());
    // No syslog header (`log stdout format raw`): the message alone reads the same.
    let raw = haproxy.scanner().parse(&rfc3339[42..]).unwrap();
    assert_eq!((&*raw.ip, &*raw.url), ("10.0.0.1", "/a"));
}

/// Traefik's `common` format as its formatter writes it (`TestCommonLogFormatter_Format` in
/// traefik's pkg/middlewares/accesslog/logger_formatters_test.go, and the layout in its
/// documentation, observability/access-logs): there is no real log of it in the data.
#[test]
fn traefik_clf_reads_the_documented_layout() {
    let traefik = format("traefik-clf");
    expect(
        br#"10.0.0.1 - Client [10/Nov/2009:23:00:00 +0000] "GET /foo http" 123 132 "referer" "agent" - "foo" "http://10.0.0.2/toto" 123000ms"#,
        &traefik,
        &[
            ("ip", "10.0.0.1"),
            ("user", "Client"),
            ("timestamp", "2009-11-10T23:00:00Z"),
            ("method", "GET"),
            // `http` is not an HTTP/x.y protocol: kept in the url, as for any log.
            ("url", "/foo http"),
            ("status", "123"),
            ("bytes", "132"),
            ("referrer", "referer"),
            ("user_agent", "agent"),
            ("response_us", "123000000"),
        ],
    );
    expect(
        br#"10.0.0.1 - Client [10/Nov/2009:14:00:00 -0900] "GET /foo HTTP/1.1" 200 132 "-" "curl/7.68.0" 17 "grafana@docker" "http://172.18.0.3:3000" 3ms"#,
        &traefik,
        &[
            ("ip", "10.0.0.1"),
            ("user", "Client"),
            ("timestamp", "2009-11-10T23:00:00Z"),
            ("method", "GET"),
            ("url", "/foo"),
            ("protocol", "HTTP/1.1"),
            ("status", "200"),
            ("bytes", "132"),
            ("user_agent", "curl/7.68.0"),
            ("response_us", "3000"),
        ],
    );
    // Traefik writes `-` for a status it did not get: a status reject.
    let no_status = br#"10.0.0.1 - Client [10/Nov/2009:23:00:00 +0000] "GET /foo http" - - "-" "-" 0 "-" "-" 123000ms"#;
    assert_eq!(traefik.scanner().parse(no_status), Err(Reject::Status));
}

/// `auto` names the vendor format of each file, and still refuses a file that mixes two.
#[test]
fn detect_picks_each_vendor_format_and_refuses_a_mix() {
    let head = |file: &str| head(&read("formats", file));
    for (file, name) in [
        (ELB_12, "elb"),
        (ELB_15, "elb"),
        (ALB, "alb"),
        (CLOUDFRONT, "cloudfront"),
        (HAPROXY, "haproxy"),
        // The new candidates take nothing from the formats auto chose before.
        ("dmjacas-logs_other_vhosts_access.log", "vcombined"),
        (
            "lovecoding1987-sample_logs_other_vhosts_access.log.5",
            "vcombined",
        ),
    ] {
        assert_eq!(pick(&head(file)), Ok(name.to_string()), "{file}");
    }
    let traefik = vec![
        br#"10.0.0.1 - Client [10/Nov/2009:23:00:00 +0000] "GET /foo HTTP/1.1" 200 132 "-" "agent" 1 "foo" "http://10.0.0.2/toto" 12ms"#.to_vec(),
        br#"10.0.0.2 - - [10/Nov/2009:23:00:01 +0000] "GET /bar HTTP/1.1" 404 19 "-" "agent" 2 "-" "-" 0ms"#.to_vec(),
    ];
    assert_eq!(pick(&traefik), Ok("traefik-clf".to_string()));
    let mixed: Vec<Vec<u8>> = head(ELB_15)
        .into_iter()
        .take(5)
        .chain(head(ALB).into_iter().take(5))
        .collect();
    let refused = pick(&mixed).unwrap_err();
    assert!(refused.contains("several formats"), "{refused}");
}

#[test]
fn names_give_the_vendor_formats_back() {
    for name in vendor::NAMES {
        let format = LogFormat::from_arg(name).unwrap();
        assert_eq!(format.name(), name);
        assert_eq!(LogFormat::from_arg(&format.name()).unwrap(), format);
        assert!(format.has_extra_fields(), "{name}");
        assert!(LogFormat::candidates().contains(&format));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn generated_vendor_lines_parse_the_same_through_scanner_and_regex(
        which in 0..vendor::NAMES.len(),
        picks in proptest::collection::vec(any::<u8>(), 1..8),
        edits in proptest::collection::vec((0..400usize, any::<u8>(), 0..3u8), 0..4),
    ) {
        let format = format(vendor::NAMES[which]);
        let clean = generated(&format, &picks);
        prop_assert!(format.scanner().parse(&clean).is_ok(), "{}", String::from_utf8_lossy(&clean));
        prop_assert_eq!(format.scanner().parse(&clean), format.regex_parser().parse(&clean));
        let line = mutated(clean, edits);
        prop_assert_eq!(format.scanner().parse(&line), format.regex_parser().parse(&line), "{}", String::from_utf8_lossy(&line));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_agree_in_vendor_formats(
        which in 0..vendor::NAMES.len(),
        line in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let format = format(vendor::NAMES[which]);
        prop_assert_eq!(format.scanner().parse(&line), format.regex_parser().parse(&line));
    }
}

/// HAProxy's `option logasap` writes the size sent so far with a `+`, as it does the total
/// time; an absolute URL's port that is no port (the client wrote it) leaves the request
/// without one.
#[test]
fn logasap_sizes_and_ports_the_client_wrote_are_read() {
    let haproxy = named("haproxy").unwrap();
    let line: &[u8] = b"Feb 25 16:19:49 lb haproxy[7]: 1.2.3.4:5 [25/Feb/2019:16:19:48.143] fe be/s 0/0/7/1457/+1487 200 +11394 - - ---- 2/1/0/0/0 0/0 \"GET / HTTP/1.1\"";
    let e = parse_all(&haproxy, &[line]).remove(0).unwrap();
    assert_eq!(
        (e.bytes, e.extra.response_time_us),
        (Some(11394), Some(1_487_000))
    );
    let elb = named("elb").unwrap();
    let line: &[u8] = b"2018-06-09T07:40:37.627870Z elb123 23.57.74.53:43877 172.31.31.224:80 0.000054 0.135172 0.000082 200 200 74 83 \"POST http://api.example.com:99999/ws HTTP/1.1\" \"ua\" - -";
    let e = parse_all(&elb, &[line]).remove(0).unwrap();
    assert_eq!(
        (e.extra.vhost.as_deref(), e.extra.port, &*e.url),
        (Some("api.example.com"), None, "/ws")
    );
    let line: &[u8] = b"2018-06-09T07:40:37.627870Z elb123 23.57.74.53:43877 172.31.31.224:80 0.000054 0.135172 0.000082 200 200 74 83 \"GET http://bob:s3cret@api.example.com:8080/ws HTTP/1.1\" \"ua\" - -";
    let e = parse_all(&elb, &[line]).remove(0).unwrap();
    assert_eq!(
        (e.extra.vhost.as_deref(), e.extra.port, &*e.url),
        (Some("api.example.com"), Some(8080), "/ws")
    );
}

/// ALB logs from before 2020 have 25 fields, CloudFront's of 2017-2019 26 and older ones
/// 24 and 23 (no protocol version): the lines of today's files cut to those layouts read
/// with the same values, by the scanner and the regex alike.
#[test]
fn older_and_shorter_layouts_of_a_grown_format_are_read() {
    let alb_data = read("formats", "crowdsecurity-hub_aws-alb-logs.log");
    let cf_data = read("formats", "crowdsecurity-hub_aws-cloudfront-logs.log");
    for (name, data, sep, quoted, keep) in [
        ("alb", &alb_data, b' ', true, &[25usize, 29][..]),
        ("cloudfront", &cf_data, b'\t', false, &[23, 24, 26][..]),
    ] {
        let format = named(name).unwrap();
        for line in lines(data) {
            let whole = parse_all(&format, &[line]).remove(0).unwrap();
            // Field boundaries: separators outside quotes.
            let mut ends = Vec::new();
            let mut inside = false;
            for (i, &b) in line.iter().enumerate() {
                if quoted && b == b'"' {
                    inside = !inside;
                } else if b == sep && !inside {
                    ends.push(i);
                }
            }
            for &fields in keep {
                let Some(&end) = ends.get(fields - 1) else {
                    continue;
                };
                let short = &line[..end];
                let cut = parse_all(&format, &[short]).remove(0);
                let cut = cut.unwrap_or_else(|r| {
                    panic!(
                        "{name} cut to {fields} fields: {r}: {}",
                        String::from_utf8_lossy(short)
                    )
                });
                assert_eq!(
                    (&cut.ip, cut.timestamp, &cut.url, cut.status, cut.bytes),
                    (
                        &whole.ip,
                        whole.timestamp,
                        &whole.url,
                        whole.status,
                        whole.bytes
                    ),
                    "{name} cut to {fields} fields"
                );
            }
        }
    }
}

/// HAProxy's lines as other set-ups write them: with a syslog priority, with journald's
/// fractional seconds, and with no syslog header at all (`log stdout format raw`, as in
/// containers): each reads as the line with the usual header does.
#[test]
fn haproxy_lines_read_with_any_of_the_usual_headers_or_none() {
    let haproxy = named("haproxy").unwrap();
    let message = "141.35.244.171:53332 [25/Feb/2019:16:19:48.143] https~ backend/server 0/0/7/1457/1487 200 11394 - - ---- 2/2/0/0/0 0/0 \"GET /admin HTTP/1.1\"";
    let usual = format!("Feb 25 16:19:49 lb haproxy[7]: {message}");
    let want = parse_all(&haproxy, &[usual.as_bytes()]).remove(0).unwrap();
    for line in [
        format!("<134>Feb 25 16:19:49 lb haproxy[7]: {message}"),
        format!("Feb 25 16:19:49.123456 lb haproxy[7]: {message}"),
        format!("2019-02-25T16:19:49.123+01:00 lb haproxy[7]: {message}"),
        message.to_string(),
    ] {
        let got = parse_all(&haproxy, &[line.as_bytes()]).remove(0);
        assert_eq!(got.as_ref(), Ok(&want), "{line}");
    }
    // A header that is almost one is not taken for none: the line is refused.
    let broken = format!("Feb 25 16:19:49 {message}");
    assert!(parse_all(&haproxy, &[broken.as_bytes()]).remove(0).is_err());
}
