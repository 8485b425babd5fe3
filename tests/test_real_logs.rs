//! The parser against real logs written by real servers (../shared/data/real): every line a
//! human would call a valid access-log line parses, sample lines give exact fields, and each
//! rejected line is one of the known damaged ones.

use std::io::Read;

use log_pipeline::entry::Rfc3339;
use log_pipeline::{Reject, parse_line};

use crate::workdir::{lines, real_logs_dir};

fn read(name: &str) -> Vec<u8> {
    let path = real_logs_dir().join(name);
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if name.ends_with(".gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        raw
    }
}

/// (file, lines, rejected as not-the-format). The rejects are explained in SOURCES.md: the
/// Elastic file's one line whose user agent lost its closing quote, and the pre-fix copy's 14
/// lines cut down to a bare `host - - [date]"` or to the tail of a user agent.
const EXPECTED: &[(&str, usize, usize)] = &[
    ("agungbahtiarr-webserver_attack_access.log", 1791, 0),
    ("crowdsec-hub_apache2-malformed.log", 11, 0),
    ("crowdsec-hub_nginx-http-malformed.log", 12, 0),
    ("ddoser-test_data_access.log", 858, 0),
    ("elastic-examples_apache_logs.log", 10000, 1),
    ("elastic-examples_apache_logs.pre-fix.log", 10000, 14),
    ("lnav_zanbil-shop_access_log.log", 1000, 0),
    ("michael-meade_2021-10-04.access.log", 191, 0),
    ("michael-meade_access.log.gz", 114, 0),
    ("nasa-aug95-first20k_dbai-labs.log", 20000, 0),
    ("nielsbasjes-logparser_hackers-access.log", 3456, 0),
    ("phasinth-almhuette-raith_access.log", 997, 0),
    ("phasinth-nikto-docker-apache_abnormal.log", 13072, 0),
    ("ployt0-nginx_log_parser_access.log", 16912, 0),
    ("romanshved-epam_apache_logs.txt", 201, 0),
    ("stanis-apachestats_access.log", 4517, 0),
    ("usask-1995_public_notebooks.log", 400, 0),
];

#[test]
fn every_valid_line_of_every_real_log_parses() {
    for &(name, total, rejected) in EXPECTED {
        let data = read(name);
        let lines = lines(&data);
        assert_eq!(lines.len(), total, "{name}: line count");
        let rejects: Vec<_> = lines
            .iter()
            .filter_map(|l| parse_line(l).err().map(|r| (r, *l)))
            .collect();
        for (reason, line) in &rejects {
            assert_eq!(
                *reason,
                Reject::Format,
                "{name}: {}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(rejects.len(), rejected, "{name}: rejects {rejects:?}");
    }
}

#[test]
fn the_fast_path_equals_the_regex_on_every_real_line() {
    for &(name, _, _) in EXPECTED {
        for line in lines(&read(name)) {
            assert_eq!(
                parse_line(line),
                log_pipeline::parse::parse_line_regex(line),
                "{name}: {}",
                String::from_utf8_lossy(line)
            );
        }
    }
}

/// `file:line` and the fields expected from it: ip, user, time, method, url, protocol, status,
/// bytes, referrer, user agent (all as displayed; "" for absent).
const SAMPLES: &[(&str, usize, [&str; 10])] = &[
    (
        "elastic-examples_apache_logs.log",
        1,
        [
            "83.149.9.216",
            "",
            "2015-05-17T10:05:03Z",
            "GET",
            "/presentations/logstash-monitorama-2013/images/kibana-search.png",
            "HTTP/1.1",
            "200",
            "203023",
            "http://semicomplete.com/presentations/logstash-monitorama-2013/",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36",
        ],
    ),
    (
        "nasa-aug95-first20k_dbai-labs.log",
        159,
        [
            "gw1.att.com",
            "",
            "1995-08-01T04:03:53Z",
            "GET",
            "/shuttle/missions/sts-73/news",
            "HTTP/1.0",
            "302",
            "",
            "",
            "",
        ],
    ),
    (
        "usask-1995_public_notebooks.log",
        1,
        [
            "202.32.92.47",
            "",
            "1995-06-01T06:00:59Z",
            "GET",
            "/~scottp/publish.html",
            "",
            "200",
            "271",
            "",
            "",
        ],
    ),
    (
        "nielsbasjes-logparser_hackers-access.log",
        2654,
        [
            "2400:8900::f03c:91ff:fe50:5089",
            "",
            "2015-10-29T08:59:21Z",
            "GET",
            "/",
            "HTTP/1.1",
            "200",
            "20478",
            "http://niels.basjes.nl/",
            "Mozilla/5.0 (Windows NT 6.1) AppleWebKit/537.36 (KHTML, like Gecko) Dragon/36.1.1.21 Chrome/36.0.1985.97 Safari/537.36",
        ],
    ),
    (
        "ployt0-nginx_log_parser_access.log",
        1949,
        [
            "76.72.172.0",
            "",
            "2022-09-03T02:43:16Z",
            "",
            "",
            "",
            "400",
            "0",
            "",
            "",
        ],
    ),
    (
        "ployt0-nginx_log_parser_access.log",
        147,
        [
            "62.233.50.0",
            "",
            "2022-09-02T03:33:24Z",
            "",
            "\u{3}\u{0}\u{0}/*\\xE0\u{0}\u{0}\u{0}\u{0}\u{0}Cookie: mstshash=Administr",
            "",
            "400",
            "157",
            "",
            "",
        ],
    ),
    (
        "phasinth-nikto-docker-apache_abnormal.log",
        768,
        [
            "172.17.0.1",
            "",
            "2019-02-12T08:08:27Z",
            "GET",
            "/site/' UNION",
            "",
            "400",
            "0",
            "",
            "",
        ],
    ),
    (
        "phasinth-nikto-docker-apache_abnormal.log",
        326,
        [
            "172.17.0.1",
            "",
            "2019-02-12T08:08:26Z",
            "GET",
            "/forumdisplay.php?GLOBALS[]=1&f=2&comma=\\\".system('id').\\\"",
            "HTTP/1.1",
            "404",
            "507",
            "",
            "Mozilla/5.00 (Nikto/2.1.5) (Evasions:None) (Test:000070)",
        ],
    ),
    (
        "agungbahtiarr-webserver_attack_access.log",
        278,
        [
            "206.168.34.41",
            "",
            "2024-12-09T19:57:25Z",
            "PRI",
            "*",
            "HTTP/2.0",
            "400",
            "157",
            "",
            "",
        ],
    ),
    (
        "michael-meade_2021-10-04.access.log",
        12,
        [
            "45.146.164.110",
            "",
            "2021-10-04T08:08:17Z",
            "GET",
            "/index.php?s=/Index/\\think\\app/invokefunction&function=call_user_func_array&vars[0]=md5&vars[1][]=HelloThinkPHP21",
            "HTTP/1.1",
            "404",
            "455",
            "",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/78.0.3904.108 Safari/537.36",
        ],
    ),
    (
        "michael-meade_access.log.gz",
        58,
        [
            "45.146.166.188",
            "",
            "2022-01-02T19:09:49Z",
            "",
            "\u{3}",
            "",
            "400",
            "0",
            "",
            "",
        ],
    ),
    (
        "romanshved-epam_apache_logs.txt",
        1,
        [
            "46.29.2.62",
            "",
            "2015-09-29T21:15:01Z",
            "GET",
            "/graffiti",
            "HTTP/1.0",
            "200",
            "146",
            "",
            "Wget/1.12 (linux-gnu)",
        ],
    ),
    (
        "stanis-apachestats_access.log",
        397,
        [
            "144.76.141.236",
            "",
            "2014-04-06T18:22:16Z",
            "GET",
            "/w00tw00t.at.ISC.SANS.DFind:)",
            "HTTP/1.1",
            "400",
            "508",
            "",
            "",
        ],
    ),
    (
        "phasinth-almhuette-raith_access.log",
        405,
        [
            "83.167.113.100",
            "",
            "2015-12-13T01:30:28Z",
            "GET",
            "/administrator/",
            "HTTP/1.1",
            "500",
            "88",
            "",
            "Mozilla/5.0 (Windows NT 6.0; rv:34.0) Gecko/20100101 Firefox/34.0",
        ],
    ),
    (
        "lnav_zanbil-shop_access_log.log",
        2,
        [
            "31.56.96.51",
            "",
            "2019-01-22T00:26:16Z",
            "GET",
            "/image/60844/productModel/200x200",
            "HTTP/1.1",
            "200",
            "5667",
            "https://www.zanbil.ir/m/filter/b113",
            "Mozilla/5.0 (Linux; Android 6.0; ALE-L21 Build/HuaweiALE-L21) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/66.0.3359.158 Mobile Safari/537.36",
        ],
    ),
    (
        "ddoser-test_data_access.log",
        858,
        [
            "142.116.105.111",
            "",
            "2023-07-18T13:44:19Z",
            "GET",
            "/",
            "HTTP/2.0",
            "499",
            "0",
            "",
            "Mozilla/5.0 (Windows NT 6.3; Win64; x64; rv:108.0) Gecko/20100101 Firefox/106.0",
        ],
    ),
    (
        "crowdsec-hub_apache2-malformed.log",
        1,
        [
            "1.2.3.4",
            "",
            "2023-10-16T18:57:49Z",
            "",
            "\u{16}\u{3}\u{1}\u{1} \u{2}",
            "",
            "400",
            "226",
            "",
            "",
        ],
    ),
];

#[test]
fn sample_lines_give_exact_fields() {
    for &(name, number, expected) in SAMPLES {
        let data = read(name);
        let line = lines(&data)[number - 1];
        let e = parse_line(line).unwrap_or_else(|r| panic!("{name}:{number}: {r}"));
        let opt = |o: &Option<std::borrow::Cow<'_, str>>| o.as_deref().unwrap_or("").to_string();
        let got = [
            e.ip.to_string(),
            opt(&e.user),
            Rfc3339(e.timestamp).to_string(),
            opt(&e.method),
            e.url.to_string(),
            opt(&e.protocol),
            e.status.to_string(),
            e.bytes.map(|b| b.to_string()).unwrap_or_default(),
            opt(&e.referrer),
            opt(&e.user_agent),
        ];
        assert_eq!(got, expected.map(String::from), "{name}:{number}");
    }
}
