//! The format compiler against the real logs in `../shared/data/formats` (SOURCES.md there
//! gives each file's format string) and `../shared/data/real`, and against its own regex.

use std::io::Read;
use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::entry::Rfc3339;
use crate::parse::parse_line;

/// ingress-nginx's documented default `upstreaminfo`.
const UPSTREAMINFO: &str = r#"'$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_length $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length $upstream_response_time $upstream_status $req_id'"#;

/// The OTUS `ui_short` as published: two spaces after `$remote_addr`.
const UI_SHORT_PUBLISHED: &str = r#"log_format ui_short '$remote_addr  $remote_user $http_x_real_ip [$time_local] "$request" ' '$status $body_bytes_sent "$http_referer" ' '"$http_user_agent" "$http_x_forwarded_for" "$http_X_REQUEST_ID" "$http_X_RB_USER" ' '$request_time';"#;

/// `ui_short` as the data has it: the two spaces come after `$remote_user`.
const UI_SHORT: &str = r#"$remote_addr $remote_user  $http_x_real_ip [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for" "$http_X_REQUEST_ID" "$http_X_RB_USER" $request_time"#;

/// The private-isu `log_format`, pasted as it stands in its `nginx.conf`.
const ISU_JSON: &str = r#"log_format json escape=json '{"time":"$time_iso8601","host":"$remote_addr","port":$remote_port,"method":"$request_method","uri":"$request_uri","status":"$status","body_bytes":$body_bytes_sent,"referer":"$http_referer","ua":"$http_user_agent","request_time":"$request_time","response_time":"$upstream_response_time"}';"#;

pub(super) fn read(dir: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(dir)
        .join(name);
    if !name.ends_with(".gz") {
        return std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    crate::rotation::decoder(file)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// A file's lines as the tools count them (a final line without a newline counts).
pub(super) fn lines(data: &[u8]) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

fn real_files() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/real");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "SOURCES.md")
        .collect();
    names.sort();
    assert!(names.len() > 10, "{names:?}");
    names
}

/// Every line through the scanner and through the regex: the two agree; the results.
fn parse_all<'a>(format: &Format, lines: &[&'a [u8]]) -> Vec<Result<LogEntry<'a>, Reject>> {
    let mut scanner = format.scanner();
    let regex = format.regex_parser();
    lines
        .iter()
        .map(|line| {
            let got = scanner.parse(line);
            assert_eq!(
                got,
                regex.parse(line),
                "scanner and regex differ on {}",
                String::from_utf8_lossy(line)
            );
            got
        })
        .collect()
}

/// The exact fields of an entry, for sample lines: (name, value) with absent fields left out.
pub(super) fn fields(e: &LogEntry<'_>) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("ip", e.ip.to_string()),
        ("timestamp", Rfc3339(e.timestamp).to_string()),
        ("url", e.url.to_string()),
        ("status", e.status.to_string()),
    ];
    let optional = [
        ("ident", e.ident.as_deref().map(str::to_string)),
        ("user", e.user.as_deref().map(str::to_string)),
        ("method", e.method.as_deref().map(str::to_string)),
        ("protocol", e.protocol.as_deref().map(str::to_string)),
        ("bytes", e.bytes.map(|b| b.to_string())),
        ("referrer", e.referrer.as_deref().map(str::to_string)),
        ("user_agent", e.user_agent.as_deref().map(str::to_string)),
        ("vhost", e.extra.vhost.as_deref().map(str::to_string)),
        ("port", e.extra.port.map(|p| p.to_string())),
        (
            "response_us",
            e.extra.response_time_us.map(|t| t.to_string()),
        ),
        (
            "upstream_us",
            e.extra.upstream_time_us.map(|t| t.to_string()),
        ),
        (
            "forwarded_for",
            e.extra.forwarded_for.as_deref().map(str::to_string),
        ),
    ];
    out.extend(
        optional
            .into_iter()
            .filter_map(|(name, value)| value.map(|v| (name, v))),
    );
    out
}

fn expect(line: &[u8], format: &Format, expected: &[(&str, &str)]) {
    assert_fields(format.scanner().parse(line), line, expected);
}

/// `parsed`, a parse of `line`, is an entry with exactly the `expected` fields (in any
/// order; absent fields left out): what each format's sample-line checks assert.
pub(crate) fn assert_fields(
    parsed: Result<LogEntry<'_>, Reject>,
    line: &[u8],
    expected: &[(&str, &str)],
) {
    let entry = parsed.unwrap_or_else(|r| panic!("{r}: {}", String::from_utf8_lossy(line)));
    let got = fields(&entry);
    let got: Vec<(&str, &str)> = got.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let mut expected = expected.to_vec();
    let order = |n: &str| got.iter().position(|(g, _)| *g == n).unwrap_or(usize::MAX);
    expected.sort_by_key(|(n, _)| order(n));
    assert_eq!(got, expected, "{}", String::from_utf8_lossy(line));
}

#[test]
fn vhost_combined_files_parse_every_line() {
    let format = apache(VCOMBINED).unwrap();
    for (name, total) in [
        ("dmjacas-logs_other_vhosts_access.log", 1603),
        ("lovecoding1987-sample_logs_other_vhosts_access.log.5", 2582),
    ] {
        let data = read("formats", name);
        let lines = lines(&data);
        assert_eq!(lines.len(), total, "{name}");
        let results = parse_all(&format, &lines);
        let rejects: Vec<_> = results
            .iter()
            .zip(&lines)
            .filter_map(|(r, l)| r.as_ref().err().map(|e| (e, String::from_utf8_lossy(l))))
            .collect();
        assert!(rejects.is_empty(), "{name}: {rejects:#?}");
    }
    expect(
        br#"neutralbank.app:443 8.137.17.195 - - [06/Aug/2024:00:50:25 +0000] "GET /index.php?lang=../../../../../../../../usr/local/lib/php/pearcmd&+config-create+/&/<?echo(md5(\"hi\"));?>+/tmp/index1.php HTTP/1.1" 200 4025 "-" "Custom-AsyncHttpClient""#,
        &format,
        &[
            ("vhost", "neutralbank.app"),
            ("port", "443"),
            ("ip", "8.137.17.195"),
            ("timestamp", "2024-08-06T00:50:25Z"),
            ("method", "GET"),
            ("url", r#"/index.php?lang=../../../../../../../../usr/local/lib/php/pearcmd&+config-create+/&/<?echo(md5("hi"));?>+/tmp/index1.php"#),
            ("protocol", "HTTP/1.1"),
            ("status", "200"),
            ("bytes", "4025"),
            ("user_agent", "Custom-AsyncHttpClient"),
        ],
    );
    expect(
        br#"127.0.0.1:80 66.249.73.75 - - [26/Nov/2020:06:29:07 +0000] "\x16\x03\x01\x02" 400 0 "-" "-""#,
        &format,
        &[
            ("vhost", "127.0.0.1"),
            ("port", "80"),
            ("ip", "66.249.73.75"),
            ("timestamp", "2020-11-26T06:29:07Z"),
            ("url", "\u{16}\u{3}\u{1}\u{2}"),
            ("status", "400"),
            ("bytes", "0"),
        ],
    );
    expect(
        br#"geolynx.com.ar:80 ::1 - - [26/Nov/2020:21:16:27 +0000] "OPTIONS * HTTP/1.0" 200 126 "-" "Apache/2.4.29 (Ubuntu) OpenSSL/1.1.1 (internal dummy connection)""#,
        &format,
        &[
            ("vhost", "geolynx.com.ar"),
            ("port", "80"),
            ("ip", "::1"),
            ("timestamp", "2020-11-26T21:16:27Z"),
            ("method", "OPTIONS"),
            ("url", "*"),
            ("protocol", "HTTP/1.0"),
            ("status", "200"),
            ("bytes", "126"),
            ("user_agent", "Apache/2.4.29 (Ubuntu) OpenSSL/1.1.1 (internal dummy connection)"),
        ],
    );
}

#[test]
fn ui_short_parses_with_the_data_s_spacing_and_the_published_one_says_format() {
    let data = read("formats", "WeirdIdea-OTUS_01_nginx-access-ui.log-20170630");
    let lines = lines(&data);
    assert_eq!(lines.len(), 49);
    let format = nginx(UI_SHORT).unwrap();
    let results = parse_all(&format, &lines);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    expect(
        lines[0],
        &format,
        &[
            ("ip", "1.196.116.32"),
            ("timestamp", "2017-06-29T00:50:22Z"),
            ("method", "GET"),
            ("url", "/api/v2/banner/25019354"),
            ("protocol", "HTTP/1.1"),
            ("status", "200"),
            ("bytes", "927"),
            (
                "user_agent",
                "Lynx/2.8.8dev.9 libwww-FM/2.14 SSL-MM/1.4.1 GNUTLS/2.10.5",
            ),
            ("response_us", "390000"),
        ],
    );
    let with_user = lines
        .iter()
        .find(|l| l.starts_with(b"1.99.174.176 3b81f63526fa8"))
        .unwrap();
    let entry = format.scanner().parse(with_user).unwrap();
    assert_eq!(entry.user.as_deref(), Some("3b81f63526fa8"));
    assert_eq!(entry.extra.response_time_us, Some(133_000));

    // The string as published puts the double space elsewhere: a clear `format` on every
    // line, never a line read with its fields shifted.
    let published = nginx(UI_SHORT_PUBLISHED).unwrap();
    let results = parse_all(&published, &lines);
    assert!(
        results.iter().all(|r| *r == Err(Reject::Format)),
        "{results:?}"
    );
}

#[test]
fn ingress_upstreaminfo_reads_every_access_line_and_no_other() {
    let data = read(
        "formats",
        "kyawzinmyolwin-cohort5website_ingress-nginx-controller.log",
    );
    let lines = lines(&data);
    assert_eq!(lines.len(), 184);
    let format = nginx(UPSTREAMINFO).unwrap();
    let results = parse_all(&format, &lines);
    // An access line is one that starts with its client address.
    let is_access = |l: &[u8]| l.first().is_some_and(u8::is_ascii_digit);
    for (line, result) in lines.iter().zip(&results) {
        if is_access(line) {
            assert!(
                result.is_ok(),
                "{result:?}: {}",
                String::from_utf8_lossy(line)
            );
        } else {
            assert_eq!(
                *result,
                Err(Reject::Format),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 82);
    expect(
        lines
            .iter()
            .find(|l| {
                l.starts_with(b"192.168.56.10 - - [26/May/2025:13:39:04 +0000] \"GET /favicon.ico")
            })
            .unwrap(),
        &format,
        &[
            ("ip", "192.168.56.10"),
            ("timestamp", "2025-05-26T13:39:04Z"),
            ("method", "GET"),
            ("url", "/favicon.ico"),
            ("protocol", "HTTP/1.1"),
            ("status", "404"),
            ("bytes", "555"),
            ("referrer", "http://cohort5.io:31586/"),
            (
                "user_agent",
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/137.0.0.0 Safari/537.36",
            ),
            ("response_us", "5000"),
            ("upstream_us", "5000"),
        ],
    );
    let tls = results
        .iter()
        .flatten()
        .find(|e| e.url.starts_with('\u{16}'))
        .expect("a TLS handshake logged as the request");
    assert_eq!((tls.status, tls.method.as_deref()), (400, None));
    assert_eq!(tls.extra.upstream_time_us, None);
}

#[test]
fn nginx_escape_json_reads_every_line_pasted_or_bare() {
    let data = read("formats", "y4-aoki-private-isu_access.log");
    let lines = lines(&data);
    assert_eq!(lines.len(), 4122);
    let format = nginx(ISU_JSON).unwrap();
    assert_eq!(format.escape, Escape::Json);
    // The bare string is a JSON object: escape=json without saying so.
    let body = &ISU_JSON[ISU_JSON.find('\'').unwrap() + 1..ISU_JSON.rfind('\'').unwrap()];
    let bare = nginx(body).unwrap();
    assert_eq!((&bare.steps, bare.escape), (&format.steps, Escape::Json));
    let results = parse_all(&format, &lines);
    for (line, result) in lines.iter().zip(&results) {
        assert!(
            result.is_ok(),
            "{result:?}: {}",
            String::from_utf8_lossy(line)
        );
    }
    // `""` is how escape=json writes an absent Referer.
    let no_referrer = results.iter().flatten().filter(|e| e.referrer.is_none());
    assert_eq!(no_referrer.count(), 4009);
    // A client that decodes to a control byte is damage, as it is written raw.
    let control = lines[1]
        .windows(22)
        .position(|w| w.starts_with(b"\"host\":\""))
        .map(|at| {
            let mut line = lines[1].to_vec();
            line.splice(at + 8..at + 8, br"\u0001".iter().copied());
            line
        })
        .expect("a host key");
    assert_eq!(
        parse_all(&format, &[&control]).remove(0),
        Err(Reject::Client)
    );
    expect(
        lines[1],
        &format,
        &[
            ("ip", "172.31.7.82"),
            ("timestamp", "2024-10-12T14:14:20Z"),
            ("method", "POST"),
            ("url", "/login"),
            ("status", "302"),
            ("bytes", "0"),
            ("user_agent", "benchmarker"),
            ("response_us", "9000"),
            ("upstream_us", "9000"),
        ],
    );
    let other = lines
        .iter()
        .find(|l| l.windows(12).any(|w| w == b"80.82.77.202"));
    expect(
        other.unwrap(),
        &format,
        &[
            ("ip", "80.82.77.202"),
            ("timestamp", "2024-10-12T14:15:02Z"),
            ("method", "GET"),
            ("url", "/"),
            ("status", "200"),
            ("bytes", "17542"),
            (
                "user_agent",
                "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/72.0.3626.122 Safari/537.36",
            ),
            ("response_us", "30868000"),
            ("upstream_us", "5340000"),
        ],
    );
    // What escape=json writes for quotes, backslashes, control bytes and non-ASCII, in a
    // line of the same format; the default escaping would keep `\u00e9` as it stands.
    let escaped = br#"{"time":"2024-10-12T23:14:20+09:00","host":"10.0.0.1","port":1,"method":"GET","uri":"/a\"b\\c\/d?q=caf\u00e9","status":"200","body_bytes":5,"referer":"http://x/\u0001","ua":"say \"hi\"\t","request_time":"0.001","response_time":""}"#;
    expect(
        escaped,
        &format,
        &[
            ("ip", "10.0.0.1"),
            ("timestamp", "2024-10-12T14:14:20Z"),
            ("method", "GET"),
            ("url", "/a\"b\\c/d?q=café"),
            ("status", "200"),
            ("bytes", "5"),
            ("referrer", "http://x/\u{1}"),
            ("user_agent", "say \"hi\"\t"),
            ("response_us", "1000"),
        ],
    );
    assert_eq!(
        format.regex_parser().parse(escaped),
        format.scanner().parse(escaped)
    );
    let mut default = format.clone();
    default.escape = Escape::Default;
    let url = default.scanner().parse(escaped).unwrap().url.into_owned();
    assert!(url.ends_with(r"caf\u00e9"), "{url}");
    // escape=none: the values as written; an unknown escaping is refused where it stands.
    let none = nginx(&ISU_JSON.replace("escape=json", "escape=none")).unwrap();
    assert_eq!(none.escape, Escape::None);
    assert_eq!(
        none.scanner().parse(escaped).unwrap().url,
        r#"/a\"b\\c\/d?q=caf\u00e9"#
    );
    let err = nginx(&ISU_JSON.replace("escape=json", "escape=xml")).unwrap_err();
    assert_eq!(err.position, 16, "{err}");
}

#[test]
fn combined_from_its_definition_reads_the_real_logs_as_the_builtin_parser_does() {
    let format = apache(COMBINED).unwrap();
    for name in real_files() {
        let data = read("real", &name);
        let lines = lines(&data);
        let mut scanner = format.scanner();
        let regex = format.regex_parser();
        for line in &lines {
            let builtin = parse_line(line);
            assert_eq!(
                scanner.parse(line),
                builtin,
                "{name}: {}",
                String::from_utf8_lossy(line)
            );
            assert_eq!(
                regex.parse(line),
                builtin,
                "{name}: {}",
                String::from_utf8_lossy(line)
            );
        }
    }
}

#[test]
fn response_times_ports_and_separate_request_fields() {
    let format = apache(
        r#"%v %{canonical}p %a %l %u %{%Y-%m-%d %H:%M:%S}t %m %U %q %H %s %B %D %{ms}T %T "%{X-Forwarded-For}i""#,
    )
    .unwrap();
    expect(
        br#"example.org 8080 10.0.0.1 - bob 2024-01-02 03:04:05 POST /a/b ?x=1 HTTP/2.0 201 12 1500 1 0 "203.0.113.9, 10.0.0.1""#,
        &format,
        &[
            ("vhost", "example.org"),
            ("port", "8080"),
            ("ip", "10.0.0.1"),
            ("user", "bob"),
            ("timestamp", "2024-01-02T03:04:05Z"),
            ("method", "POST"),
            ("url", "/a/b?x=1"),
            ("protocol", "HTTP/2.0"),
            ("status", "201"),
            ("bytes", "12"),
            ("response_us", "1500"),
            ("forwarded_for", "203.0.113.9, 10.0.0.1"),
        ],
    );
    let line = br#"example.org 99999 10.0.0.1 - bob 2024-01-02 03:04:05 POST /a/b ?x=1 HTTP/2.0 201 12 1500 1 0 "-""#;
    assert_eq!(format.scanner().parse(line), Err(Reject::Port));
    let line = br#"example.org 80 10.0.0.1 - bob 2024-01-02 03:04:05 POST /a/b ?x=1 HTTP/2.0 201 12 1.5ms 1 0 "-""#;
    assert_eq!(format.scanner().parse(line), Err(Reject::ResponseTime));

    let ms = apache(r#"%h %{sec}t "%r" %>s %b %{ms}T"#).unwrap();
    expect(
        br#"::1 1498697422 "GET / HTTP/1.1" 200 - 12"#,
        &ms,
        &[
            ("ip", "::1"),
            ("timestamp", "2017-06-29T00:50:22Z"),
            ("method", "GET"),
            ("url", "/"),
            ("protocol", "HTTP/1.1"),
            ("status", "200"),
            ("response_us", "12000"),
        ],
    );

    let nginx_fields = nginx(
        r#"$host:$server_port $remote_addr [$time_iso8601] $msec "$request_method $uri?$args $server_protocol" $status $bytes_sent $request_time $upstream_response_time "$http_x_forwarded_for""#,
    )
    .unwrap();
    expect(
        br#"shop.example:443 192.0.2.1 [2024-10-12T23:14:21+09:00] 1728742461.123 "GET /p?id=7 HTTP/1.1" 200 512 0.390 0.004, 0.010 : 0.100 "-""#,
        &nginx_fields,
        &[
            ("vhost", "shop.example"),
            ("port", "443"),
            ("ip", "192.0.2.1"),
            ("timestamp", "2024-10-12T14:14:21Z"),
            ("method", "GET"),
            ("url", "/p?id=7"),
            ("protocol", "HTTP/1.1"),
            ("status", "200"),
            ("bytes", "512"),
            ("response_us", "390000"),
            ("upstream_us", "114000"),
        ],
    );
}

#[test]
fn log_format_names_and_parsers() {
    for (arg, name) in [
        ("combined", "combined"),
        ("common", "common"),
        ("vhost_combined", "vcombined"),
        (COMMON, &format!("apache:{COMMON}")),
        (UI_SHORT, &format!("nginx:{UI_SHORT}")),
    ] {
        let format = LogFormat::from_arg(arg).unwrap();
        assert_eq!(format.name(), name);
        // What a checkpoint records gives the same format back.
        assert_eq!(LogFormat::from_arg(&format.name()).unwrap(), format);
    }
    let err = LogFormat::from_arg("  nginx:$remote_addr ${x").unwrap_err();
    assert_eq!(err.position, 21, "{err}");
    assert!(LogFormat::from_arg("auto").is_err());
    assert!(LogFormat::from_arg("%h %t").is_err());
    // `combined` is the built-in parser, Common lines and all.
    let line: &[u8] = b"gw1.att.com - - [01/Aug/1995:00:03:53 -0400] \"GET /x HTTP/1.0\" 302 -\r";
    let mut parser = LogFormat::from_arg("combined").unwrap().parser();
    assert_eq!(parser.parse(line), parse_line(line));
    let mut parser = LogFormat::from_arg(COMBINED).unwrap().parser();
    assert_eq!(parser.parse(line), parse_line(line));
}

/// The first lines of `data`, as many as `auto` looks at.
pub(crate) fn head(data: &[u8]) -> Vec<Vec<u8>> {
    lines(data)
        .into_iter()
        .take(200)
        .map(<[u8]>::to_vec)
        .collect()
}

/// The name of the format `auto` picks for `lines`, or why it picks none.
pub(crate) fn pick(lines: &[Vec<u8>]) -> Result<String, String> {
    let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
    detect(&refs).map(|f| f.name())
}

#[test]
fn detect_picks_the_format_of_each_file_and_refuses_a_mix() {
    let vhost = head(&read("formats", "dmjacas-logs_other_vhosts_access.log"));
    assert_eq!(pick(&vhost), Ok("vcombined".to_string()));
    let nasa = head(&read("real", "nasa-aug95-first20k_dbai-labs.log"));
    assert_eq!(pick(&nasa), Ok("common".to_string()));
    let elastic = head(&read("real", "elastic-examples_apache_logs.log"));
    assert_eq!(pick(&elastic), Ok("combined".to_string()));
    // The controller's banner and klog lines among them are read by no format.
    let ingress = head(&read(
        "formats",
        "kyawzinmyolwin-cohort5website_ingress-nginx-controller.log",
    ));
    assert_eq!(pick(&ingress), Ok("ingress-nginx".to_string()));
    let mixed: Vec<Vec<u8>> = vhost
        .iter()
        .take(20)
        .chain(elastic.iter().take(20))
        .cloned()
        .collect();
    let refused = pick(&mixed).unwrap_err();
    assert!(refused.contains("several formats"), "{refused}");
    assert!(pick(&[b"hello".to_vec()]).is_err());
}

#[test]
fn detect_reads_each_real_log_as_common_or_combined() {
    let mut picked = Vec::new();
    for name in real_files() {
        let data = read("real", &name);
        let head: Vec<&[u8]> = lines(&data).into_iter().take(200).collect();
        let format = detect(&head).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut parser = format.parser();
        for line in &head {
            if parse_line(line).is_ok() {
                assert!(parser.parse(line).is_ok(), "{name}: {}", format.name());
            }
        }
        picked.push((name, format.name()));
    }
    // The Common logs are the two of 1995; the others are Combined, including the crowdsec
    // files whose referrer and agent are all `-`.
    let common: Vec<&str> = picked
        .iter()
        .filter(|(_, f)| f == "common")
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        common,
        [
            "nasa-aug95-first20k_dbai-labs.log",
            "usask-1995_public_notebooks.log"
        ]
    );
    assert!(picked.iter().all(|(_, f)| f == "common" || f == "combined"));
}

/// The formats the property tests run: the named ones, the real files' nginx formats and
/// definitions that use every kind of step.
fn formats() -> Vec<Format> {
    vec![
        apache(COMBINED).unwrap(),
        apache(COMMON).unwrap(),
        apache(VCOMBINED).unwrap(),
        nginx(UI_SHORT).unwrap(),
        nginx(UPSTREAMINFO).unwrap(),
        apache(r#"%h %{%d/%b/%Y:%H:%M:%S %z}t %m %U%q %H %>s %b %D "%{X-Forwarded-For}i""#).unwrap(),
        nginx(r#"$remote_addr [$time_iso8601] "$request" $status $upstream_response_time $upstream_addr $request_time"#).unwrap(),
        w3c::fields_format(b"#Fields: date time s-sitename s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) sc-status sc-substatus sc-win32-status sc-bytes cs-bytes time-taken").unwrap(),
        w3c::fields_format(b"#Fields: date time c-ip cs-method cs-uri-stem cs-uri-query cs-version sc-status sc-bytes cs(Referer) cs-host X-Forwarded-For time-taken").unwrap(),
        nginx(ISU_JSON).unwrap(),
    ]
}

/// A plausible value for each step, chosen by `pick`, with the format's literals between:
/// lines the format reads, before mutation.
fn generated(format: &Format, picks: &[u8]) -> Vec<u8> {
    use super::definition::{Slot, Step};
    let mut out = Vec::new();
    for (i, step) in format.steps.iter().enumerate() {
        let pick = picks[i % picks.len()] as usize;
        let one = |values: &[&str]| values[pick % values.len()].as_bytes().to_vec();
        let slot = match step {
            Step::Literal(b) => {
                out.extend_from_slice(b);
                continue;
            }
            Step::Syslog => {
                out.extend(one(&[
                    "Feb 25 16:19:49 192.168.4.2 haproxy[7]: ",
                    "Feb  5 01:02:03 lb haproxy: ",
                    "2019-02-25T16:19:49.123+01:00 lb1 haproxy[12]: ",
                    "<134>Feb 25 16:19:49.123456 lb haproxy[7]: ",
                    "",
                ]));
                continue;
            }
            Step::Token { slot, .. } | Step::Quoted { slot } | Step::List { slot, .. } => *slot,
        };
        let mut value = match slot {
            Some(Slot::Client) => one(&["1.2.3.4", "2001:db8::1", "gw1.att.com"]),
            Some(Slot::Time) => match &format.clock {
                Clock::Clf => one(&["10/Oct/2000:13:55:36 -0700", "29/Feb/2024:00:00:00 +0000"]),
                Clock::Iso8601 => {
                    one(&["2024-10-12T23:14:21+09:00", "2015-03-08T16:35:33.465313Z"])
                }
                Clock::ClfMillis => one(&["25/Feb/2019:16:19:48.143"]),
                Clock::Strftime { format, .. } => chrono::NaiveDate::from_ymd_opt(2024, 3, 12)
                    .and_then(|d| d.and_hms_opt(15, 22, 28))
                    .unwrap()
                    .format(format)
                    .to_string()
                    .into_bytes(),
                _ => one(&["1498697422.123"]),
            },
            Some(Slot::Peer) => one(&["1.2.3.4:5678", "[2001:db8::1]:443", "2001:db8::1:443"]),
            Some(Slot::AbsoluteRequest) => one(&[
                "GET http://www.example.com:80/a?b=1 HTTP/1.1",
                "POST https://[2001:db8::1]:443 HTTP/2.0",
                "- - - ",
                "GET /relative HTTP/1.1",
            ]),
            Some(Slot::Timings) => match format.timings.as_ref().map(|t| t.sep) {
                Some(b' ') => one(&["0.000033 0.00082 0.000016", "-1 -1 -1", "0.086 0.048 0.037"]),
                _ => one(&["0/0/7/1457/1487", "0/-1/-1/-1/+3"]),
            },
            Some(Slot::EncodedUserAgent) => {
                one(&["curl/7.81.0", "Mozilla/5.0%20(X11)", "-", "%E2%82%AC%zz"])
            }
            Some(Slot::Request) => one(&["GET /a HTTP/1.1", "-", "", r#"GET /q?\"x\\ HTTP/1.0"#]),
            Some(Slot::Method) => one(&["GET", "POST"]),
            Some(Slot::Path | Slot::Uri) => one(&["/a", "/b/c.html"]),
            Some(Slot::Query) => one(&["", "?x=1"]),
            Some(Slot::Protocol) => one(&["HTTP/1.1"]),
            Some(Slot::Status) => one(&["200", "404", "408"]),
            Some(Slot::Bytes) => one(&["0", "-", "2326"]),
            Some(Slot::Vhost) => one(&["example.org", "-"]),
            Some(Slot::Port) => one(&["80", "443"]),
            Some(Slot::ResponseTime) => one(&["0.390", "12", "-"]),
            Some(Slot::UpstreamTime) => one(&["0.004, 0.010", "-", "0.1 : 0.2", "0.005"]),
            _ if matches!(step, Step::List { .. }) => {
                one(&["-", "10.0.0.1:80", "10.0.0.1:80, 10.0.0.2:80", "502 : 200"])
            }
            _ => one(&["-", "x", "Mozilla/5.0 (X11)", "a, b"]),
        };
        if matches!(step, Step::Quoted { .. }) {
            value.insert(0, b'"');
            value.push(b'"');
        } else if let Step::Token {
            stop, also, skips, ..
        } = step
        {
            // A value holds a field's delimiter only where the format says it may.
            if *skips == 0 {
                value.retain(|c| c != stop && c != also);
            }
        } else if let Step::List { stop, .. } = step
            && *stop != b' '
        {
            value.retain(|c| c != stop);
        }
        out.extend_from_slice(&value);
    }
    out
}

fn mutated(line: Vec<u8>, edits: Vec<(usize, u8, u8)>) -> Vec<u8> {
    let mut line = line;
    for (at, byte, kind) in edits {
        if line.is_empty() {
            break;
        }
        let at = at.min(line.len() - 1);
        match kind {
            0 => line[at] = byte,
            1 => line.insert(at, [b'"', b'\\', b' ', b']', b',', byte][byte as usize % 6]),
            _ => line.truncate(at),
        }
    }
    line
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn generated_lines_parse_the_same_through_scanner_and_regex(
        which in 0..10usize,
        picks in proptest::collection::vec(any::<u8>(), 1..8),
        edits in proptest::collection::vec((0..400usize, any::<u8>(), 0..3u8), 0..4),
    ) {
        let format = &formats()[which];
        let clean = generated(format, &picks);
        if format.steps.iter().all(|s| !matches!(s, super::definition::Step::Literal(b) if b.contains(&b'?'))) {
            // Every clean line but an impossible date parses.
            prop_assert!(format.scanner().parse(&clean).is_ok(), "{}", String::from_utf8_lossy(&clean));
        }
        let line = mutated(clean, edits);
        let regex = format.regex_parser();
        prop_assert_eq!(format.scanner().parse(&line), regex.parse(&line), "{}", String::from_utf8_lossy(&line));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_agree(
        which in 0..10usize,
        line in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let format = &formats()[which];
        prop_assert_eq!(format.scanner().parse(&line), format.regex_parser().parse(&line));
    }
}

/// The IIS files: every line that is not a directive parses, through the format its last
/// `#Fields:` line names (scanner and regex agreeing); the directives are rejected as such.
#[test]
fn w3c_files_parse_every_request_line_by_their_fields_lines() {
    let w3c = LogFormat::from_arg("w3c").unwrap();
    for (name, total, directives, blocks) in [
        ("bherila-waikolai_u_ex091107.log", 412, 60, 15),
        ("tstack-lnav_logfile_w3c_big.0", 254, 44, 11),
    ] {
        let data = read("formats", name);
        let lines = lines(&data);
        assert_eq!(lines.len(), total, "{name}");
        let mut parser = w3c.parser();
        let mut rejected = Vec::new();
        let mut fields_lines = 0;
        // Each request line also through the scanner and regex of the format in force.
        let mut in_force: Option<Format> = None;
        for line in &lines {
            let got = parser.parse(line);
            if line.starts_with(b"#") {
                assert_eq!(got, Err(Reject::Directive), "{name}");
                if w3c::is_fields_line(line) {
                    fields_lines += 1;
                    in_force = Some(w3c::fields_format(line).unwrap());
                }
                continue;
            }
            match got {
                Ok(entry) => {
                    let format = in_force.as_ref().expect("a #Fields line came first");
                    let direct = parse_all(format, &[line]).remove(0).unwrap();
                    assert_eq!(entry.ip, direct.ip);
                    assert_eq!(entry.url, direct.url);
                }
                Err(reason) => rejected.push((reason, String::from_utf8_lossy(line))),
            }
        }
        assert!(rejected.is_empty(), "{name}: {rejected:#?}");
        assert_eq!(
            (
                lines.iter().filter(|l| l.starts_with(b"#")).count(),
                fields_lines
            ),
            (directives, blocks),
            "{name}"
        );
    }
    let mut parser = w3c.parser();
    let iis7 = b"#Fields: date time s-sitename s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) sc-status sc-substatus sc-win32-status sc-bytes cs-bytes time-taken\r";
    let _ = parser.parse(iis7);
    let e = parser
        .parse(b"2009-11-07 01:42:05 W3SVC20 67.222.136.138 GET /flash/Current/finish.swf - 80 - 67.182.226.34 Mozilla/5.0+(Macintosh;+U;+Intel+Mac+OS+X+10_5_8;+en-us)+AppleWebKit/531.9+(KHTML,+like+Gecko)+Version/4.0.3+Safari/531.9 200 0 0 233848 329 2983\r")
        .unwrap();
    let got = fields(&e);
    let got: Vec<(&str, &str)> = got.iter().map(|(n, v)| (*n, v.as_str())).collect();
    assert_eq!(
        got,
        [
            ("ip", "67.182.226.34"),
            ("timestamp", "2009-11-07T01:42:05Z"),
            ("url", "/flash/Current/finish.swf"),
            ("status", "200"),
            ("method", "GET"),
            ("bytes", "233848"),
            (
                "user_agent",
                "Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10_5_8; en-us) AppleWebKit/531.9 (KHTML, like Gecko) Version/4.0.3 Safari/531.9"
            ),
            ("vhost", "W3SVC20"),
            ("port", "80"),
            ("response_us", "2983000"),
        ]
    );
    let iis85 = b"#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status sc-bytes cs-bytes time-taken";
    let _ = parser.parse(iis85);
    let e = parser
        .parse(b"2015-01-13 22:30:11 100.79.192.81 GET /index.php m=admin 80 - 183.60.244.30 Mozilla/5.0+(Macintosh;+Intel+Mac+OS+X+10_9_4)+AppleWebKit/537.36+(KHTML,+like+Gecko)+Chrome/36.0.1985.125+Safari/537.36 - 404 0 2 1405 255 314")
        .unwrap();
    assert_eq!(
        (
            &*e.url,
            e.status,
            e.extra.vhost,
            e.referrer,
            e.extra.response_time_us
        ),
        ("/index.php?m=admin", 404, None, None, Some(314_000))
    );
}

#[test]
fn detect_picks_w3c_for_the_iis_files() {
    for name in [
        "bherila-waikolai_u_ex091107.log",
        "tstack-lnav_logfile_w3c_big.0",
    ] {
        let data = read("formats", name);
        assert_eq!(pick(&head(&data)), Ok("w3c".to_string()), "{name}");
    }
}

mod vendor;
