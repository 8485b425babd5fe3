//! aggregate-csv and aggregate-db: the same reports from either store, checked against an
//! independent count, safe with hostile input, and readable while a writer runs.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

use crate::workdir::{Workdir, bin_path, lines, wait_until};

/// Fills `out.csv` and `out.db` from the same inputs.
fn both_stores(wd: &Workdir, inputs: &[&str]) {
    wd.cmd("parse-to-csv")
        .args(["--output", "out.csv", "--final", "--quiet"])
        .args(inputs)
        .assert()
        .success();
    wd.cmd("parse-to-db")
        .args(["--db", "out.db", "--final", "--quiet"])
        .args(inputs)
        .assert()
        .success();
}

/// Fills both stores from the named logs of `../shared/data/real`.
fn both_stores_of_real(wd: &Workdir, names: &[&str]) {
    let real = crate::workdir::real_logs_dir();
    let files: Vec<String> = (names.iter())
        .map(|f| real.join(f).display().to_string())
        .collect();
    let inputs: Vec<&str> = files.iter().map(String::as_str).collect();
    both_stores(wd, &inputs);
}

fn report(wd: &Workdir, bin: &str, args: &[&str]) -> Vec<u8> {
    let store = if bin == "aggregate-csv" {
        "out.csv"
    } else {
        "out.db"
    };
    wd.cmd(bin)
        .arg(store)
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone()
}

/// The JSON of `reports` with `args`, which both stores must give byte for byte.
fn both_json(wd: &Workdir, args: &[&str], reports: &str) -> serde_json::Value {
    let all = [args, &["--format", "json", "--report", reports]].concat();
    let docs: Vec<Vec<u8>> = ["aggregate-csv", "aggregate-db"]
        .iter()
        .map(|bin| report(wd, bin, &all))
        .collect();
    assert_eq!(docs[0], docs[1], "the stores differ with {args:?}");
    serde_json::from_slice(&docs[0]).unwrap()
}

const FILTER_SETS: &[&[&str]] = &[
    &[],
    &["--status", "404"],
    &["--status", "5xx", "--top", "3"],
    &["--url", "^/(products|api)", "--bucket", "hour"],
    &[
        "--since",
        "2024-01-01T06:00:00Z",
        "--until",
        "2024-01-01T12:00:00Z",
    ],
    &["--report", "urls,traffic,summary", "--top", "25"],
    &["--status", "404,5xx", "--method", "GET,head"],
    &["--status", "!200", "--exclude-ip", "2001:db8::/32"],
    &[
        "--ip",
        "128.0.0.0/1,!200.0.0.0/8",
        "--exclude-url",
        "^/static/",
    ],
    &["--agent", "!(?i)bot", "--url", "!^/api"],
    &[
        "--since",
        "2024-01-01",
        "--until",
        "2024-01-01",
        "--method",
        "!GET",
    ],
    &[
        "--strip-query",
        "--report",
        "urls,referrers,not-found",
        "--top",
        "0",
    ],
    // (Relative spans such as `--since 2h` are resolved against the clock of each run, and the
    // reports print the resolved time, so two runs a second apart legitimately differ: they
    // are covered by the unit tests of parse_time_arg.)
];

#[test]
fn csv_and_db_reports_are_byte_identical_in_every_format_with_every_filter() {
    let wd = Workdir::new();
    wd.cmd("generate-logs")
        .args([
            "--count",
            "30000",
            "--seed",
            "4",
            "--start",
            "2024-01-01T00:00:00Z",
        ])
        .assert()
        .success();
    both_stores(&wd, &["logs/access.log"]);
    let ip = String::from_utf8(
        lines(&wd.read("logs/access.log"))[0]
            .split(|&b| b == b' ')
            .next()
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let ip_filter = ["--ip", ip.as_str()];
    let mut sets: Vec<&[&str]> = FILTER_SETS.to_vec();
    sets.push(&ip_filter);
    for format in ["table", "json", "csv"] {
        for filters in &sets {
            let args: Vec<&str> = ["--format", format]
                .iter()
                .chain(filters.iter())
                .copied()
                .collect();
            let from_csv = report(&wd, "aggregate-csv", &args);
            let from_db = report(&wd, "aggregate-db", &args);
            assert!(!from_csv.is_empty());
            assert!(
                from_csv == from_db,
                "outputs differ for {args:?}:\n{}\n---\n{}",
                String::from_utf8_lossy(&from_csv),
                String::from_utf8_lossy(&from_db)
            );
        }
    }
}

/// A log made by hand for the filters of #16, each line there for a filter to take or leave:
/// two days' edges (the last second of the 4th, the first and last of the 5th, the 6th),
/// clients of both families and a name (an IPv6 written with capitals, an IPv4 client logged
/// by a dual-stack server as `::ffff:10.0.0.9`), URLs with and without a query, methods and
/// agents absent (`-`) or not.
const FILTER_LOG: &str = concat!(
    // 1
    "10.0.0.1 - - [04/Jan/2024:23:59:59 +0000] \"GET /x.php?a=1 HTTP/1.1\" 200 100 \"-\" \"Mozilla/5.0\"\n",
    // 2
    "10.0.0.1 - - [05/Jan/2024:00:00:00 +0000] \"GET /x.php?a=2 HTTP/1.1\" 200 100 \"https://ref.example/p?q=1\" \"Mozilla/5.0\"\n",
    // 3
    "10.0.0.2 - - [05/Jan/2024:01:00:00 +0000] \"POST /x.php HTTP/1.1\" 500 10 \"-\" \"curl/8.0\"\n",
    // 4
    "10.1.2.3 - - [05/Jan/2024:02:00:00 +0000] \"GET /static/a.css HTTP/1.1\" 404 0 \"https://ref.example/p?q=2\" \"Mozilla/5.0\"\n",
    // 5
    "192.168.1.5 - - [05/Jan/2024:03:00:00 +0000] \"HEAD / HTTP/1.1\" 301 0 \"-\" \"Googlebot/2.1\"\n",
    // 6
    "2001:db8::1 - - [05/Jan/2024:04:00:00 +0000] \"GET /api/v1?token=abc HTTP/1.1\" 503 20 \"-\" \"Googlebot/2.1\"\n",
    // 7
    "2001:DB8:ff::7 - - [05/Jan/2024:05:00:00 +0000] \"GET /api/v1 HTTP/1.1\" 200 30 \"-\" \"-\"\n",
    // 8
    "::ffff:10.0.0.9 - - [05/Jan/2024:06:00:00 +0000] \"DELETE /api/v1?id=3 HTTP/1.1\" 404 5 \"-\" \"curl/8.0\"\n",
    // 9
    "gw.example - - [05/Jan/2024:23:59:59 +0000] \"GET /x.php?a=1 HTTP/1.1\" 200 100 \"-\" \"Mozilla/5.0\"\n",
    // 10
    "10.0.0.2 - - [06/Jan/2024:00:00:00 +0000] \"GET / HTTP/1.1\" 404 7 \"-\" \"Mozilla/5.0\"\n",
    // 11
    "10.0.0.1 - - [06/Jan/2024:00:00:01 +0000] \"-\" 400 0 \"-\" \"-\"\n",
);

/// The three ways a report is read: the CSV, the packed copy of the database, its rows.
const READERS: [(&str, &[&str]); 3] = [
    ("aggregate-csv", &[]),
    ("aggregate-db", &[]),
    ("aggregate-db", &["--scan"]),
];

/// Each filter of #16 alone and together, with the requests and bytes of the lines of
/// [`FILTER_LOG`] it keeps (counted by hand, line numbers in the comments): the same from
/// every store, and the same output, byte for byte, in every format.
#[test]
fn filters_keep_exactly_the_lines_they_say_from_every_store() {
    let wd = Workdir::new();
    wd.write("logs/access.log", FILTER_LOG);
    both_stores(&wd, &["logs/access.log"]);
    crate::workdir::assert_packed_matches_rows(&wd, "out.db");
    let cases: &[(&[&str], u64, u64)] = &[
        (&[], 11, 372),
        // 3, 4, 6, 8, 10.
        (&["--status", "404,5xx"], 5, 42),
        // All but 4, 8, 10.
        (&["--status", "!404"], 8, 360),
        // 11.
        (&["--status", "4xx,!404"], 1, 0),
        (&["--status", "!4xx,!5xx"], 5, 330),
        // 1, 2, 3, 4, 8 (an IPv4 client written as IPv6), 10, 11.
        (&["--ip", "10.0.0.0/8"], 7, 222),
        (&["--ip", "10.0.0.0/8", "--exclude-ip", "10.0.0.1"], 4, 22),
        (&["--ip", "10.0.0.0/8,!10.0.0.1"], 4, 22),
        (&["--ip", "10.0.0.9"], 1, 5),
        (&["--ip", "::ffff:10.0.0.0/104"], 7, 222),
        // 6, and 7 written with capitals.
        (&["--ip", "2001:db8::/32"], 2, 50),
        (&["--ip", "2001:db8:ff::7,192.168.1.5"], 2, 30),
        // 5 and 9: neither in 10/8 nor in 2001:db8::/32.
        (&["--exclude-ip", "10.0.0.0/8,2001:db8::/32"], 2, 100),
        (&["--ip", "gw.example"], 1, 100),
        (&["--exclude-ip", "gw.example,::/0"], 0, 0),
        // 1, 2, 3, 9.
        (&["--url", "^/x\\.php"], 4, 310),
        (&["--url", "!^/x\\.php"], 7, 62),
        (&["--exclude-url", "^/x\\.php"], 7, 62),
        // 7, 8.
        (&["--url", "^/api", "--exclude-url", "token="], 2, 35),
        // 1, 2, 4, 6, 7, 9, 10.
        (&["--method", "GET"], 7, 357),
        (&["--method", "get,post"], 8, 367),
        // 3, 5, 8, 11.
        (&["--method", "!GET"], 4, 15),
        (&["--method", "-"], 1, 0),
        // 5, 6.
        (&["--agent", "(?i)BOT"], 2, 20),
        (&["--agent", "!^Mozilla"], 6, 65),
        // 7, 11.
        (&["--agent", "^-$"], 2, 30),
        // 2 to 11; 1 to 9; 2 to 9.
        (&["--since", "2024-01-05"], 10, 272),
        (&["--until", "2024-01-05"], 9, 365),
        (&["--since", "2024-01-05", "--until", "2024-01-05"], 8, 265),
        (
            &["--since", "2024-01-05T23:59:59Z", "--until", "2024-01-06"],
            3,
            107,
        ),
        // 2, 6, 7, 9.
        (
            &[
                "--since",
                "2024-01-05",
                "--until",
                "2024-01-05",
                "--status",
                "!404",
                "--exclude-ip",
                "10.0.0.2",
                "--method",
                "GET",
            ],
            4,
            250,
        ),
        // 1, 2, 9: without their queries, and --url sees them so.
        (
            &["--strip-query", "--url", "^/x\\.php$", "--method", "GET"],
            3,
            300,
        ),
        (&["--strip-query", "--url", "a="], 0, 0),
        (&["--url", "a="], 3, 300),
    ];
    for &(filters, requests, bytes) in cases {
        for (bin, scan) in READERS {
            let args = [&["--format", "json"], scan, filters].concat();
            let doc: serde_json::Value = serde_json::from_slice(&report(&wd, bin, &args)).unwrap();
            assert_eq!(
                (&doc["summary"]["requests"], &doc["summary"]["bytes"]),
                (&requests.into(), &bytes.into()),
                "{bin} {args:?}"
            );
        }
        for format in ["table", "json", "csv"] {
            let args = [&["--format", format, "--top", "0"], filters].concat();
            let outputs: Vec<Vec<u8>> = (READERS.iter())
                .map(|(bin, scan)| report(&wd, bin, &[&args[..], scan].concat()))
                .collect();
            for (output, (bin, scan)) in outputs.iter().zip(READERS).skip(1) {
                assert!(
                    *output == outputs[0],
                    "{bin} {scan:?} {args:?} differs from aggregate-csv:\n{}\n---\n{}",
                    String::from_utf8_lossy(output),
                    String::from_utf8_lossy(&outputs[0])
                );
            }
        }
    }
    // The rankings of what is kept, not only its totals.
    let doc: serde_json::Value = serde_json::from_slice(&report(
        &wd,
        "aggregate-db",
        &[
            "--format",
            "json",
            "--top",
            "0",
            "--ip",
            "10.0.0.0/8",
            "--report",
            "clients",
        ],
    ))
    .unwrap();
    let clients: Vec<(&str, u64)> = (doc["clients"].as_array().unwrap().iter())
        .map(|c| (c["ip"].as_str().unwrap(), c["hits"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        clients,
        [
            ("10.0.0.1", 3),
            ("10.0.0.2", 2),
            ("10.1.2.3", 1),
            ("::ffff:10.0.0.9", 1)
        ]
    );
    let doc: serde_json::Value = serde_json::from_slice(&report(
        &wd,
        "aggregate-csv",
        &[
            "--format", "json", "--method", "!GET", "--report", "methods",
        ],
    ))
    .unwrap();
    let methods: Vec<(&str, u64)> = (doc["methods"].as_array().unwrap().iter())
        .map(|m| (m["method"].as_str().unwrap(), m["hits"].as_u64().unwrap()))
        .collect();
    assert_eq!(methods, [("-", 1), ("DELETE", 1), ("HEAD", 1), ("POST", 1)]);
}

/// `--format json` names every filter as it was applied, and the table's header too.
#[test]
fn the_filters_applied_are_said_in_json_and_in_the_table() {
    let wd = Workdir::new();
    wd.write("logs/access.log", FILTER_LOG);
    both_stores(&wd, &["logs/access.log"]);
    let args = [
        "--since",
        "2024-01-05",
        "--until",
        "2024-01-05",
        "--status",
        "404,5XX,!503",
        "--ip",
        "10.1.2.3/8,!2001:DB8::1",
        "--exclude-ip",
        "gw.example",
        "--url",
        "!^/static",
        "--exclude-url",
        "\\.css$",
        "--method",
        "get,-",
        "--agent",
        "(?i)bot",
        "--strip-query",
    ];
    for bin in ["aggregate-csv", "aggregate-db"] {
        let doc: serde_json::Value = serde_json::from_slice(&report(
            &wd,
            bin,
            &[&args[..], &["--format", "json"]].concat(),
        ))
        .unwrap();
        assert_eq!(
            doc["filters"],
            serde_json::json!({
                "since": "2024-01-05T00:00:00Z",
                "until": "2024-01-05T23:59:59Z",
                "status": "404,5xx,!503",
                "ip": "10.0.0.0/8,!2001:db8::1",
                "exclude_ip": "gw.example",
                "url": "!^/static",
                "exclude_url": "\\.css$",
                "method": "GET,-",
                "agent": "(?i)bot",
                "query": "stripped",
            }),
            "{bin}"
        );
        let table = String::from_utf8(report(&wd, bin, &args)).unwrap();
        assert!(
            table.starts_with(
                "log-pipeline report, times in UTC (filters: since=2024-01-05T00:00:00Z, \
                 until=2024-01-05T23:59:59Z, status=404,5xx,!503, "
            ),
            "{bin}: {table}"
        );
    }
}

/// The reports' `--strip-query` groups a store that kept its query strings exactly as the
/// ingest option of that name stores them: the same reports, number for number.
#[test]
fn strip_query_groups_as_the_ingest_option_stores() {
    let wd = Workdir::new();
    wd.write("logs/access.log", FILTER_LOG);
    both_stores(&wd, &["logs/access.log"]);
    wd.cmd("parse-to-csv")
        .args([
            "--output",
            "stripped.csv",
            "--final",
            "--quiet",
            "--strip-query",
        ])
        .arg("logs/access.log")
        .assert()
        .success();
    wd.cmd("parse-to-db")
        .args(["--db", "stripped.db", "--final", "--quiet", "--strip-query"])
        .arg("logs/access.log")
        .assert()
        .success();
    let all = ["--top", "0", "--format"];
    for (bin, kept, stripped) in [
        ("aggregate-csv", "out.csv", "stripped.csv"),
        ("aggregate-db", "out.db", "stripped.db"),
    ] {
        let run = |store: &str, args: &[&str]| {
            let out = wd.cmd(bin).arg(store).args(args).assert().success();
            out.get_output().stdout.clone()
        };
        // CSV output names no filter: byte for byte.
        let grouped = run(kept, &[&all[..], &["csv", "--strip-query"]].concat());
        assert!(
            grouped == run(stripped, &[&all[..], &["csv"]].concat()),
            "{bin}:\n{}",
            String::from_utf8_lossy(&grouped)
        );
        let mut grouped: serde_json::Value =
            serde_json::from_slice(&run(kept, &[&all[..], &["json", "--strip-query"]].concat()))
                .unwrap();
        let mut as_stored: serde_json::Value =
            serde_json::from_slice(&run(stripped, &[&all[..], &["json"]].concat())).unwrap();
        assert_eq!(grouped["filters"], serde_json::json!({"query": "stripped"}));
        grouped["filters"].take();
        as_stored["filters"].take();
        assert_eq!(grouped, as_stored, "{bin}");
        let urls: Vec<(&str, u64, u64, u64)> = (grouped["urls"].as_array().unwrap().iter())
            .map(|u| {
                let n = |k: &str| u[k].as_u64().unwrap();
                (
                    u["url"].as_str().unwrap(),
                    n("hits"),
                    n("bytes"),
                    n("visitors"),
                )
            })
            .collect();
        assert_eq!(
            urls,
            [
                ("/x.php", 4, 310, 4),
                ("/api/v1", 3, 55, 3),
                ("/", 2, 7, 2),
                ("-", 1, 0, 1),
                ("/static/a.css", 1, 0, 1),
            ],
            "{bin}"
        );
        assert_eq!(
            grouped["referrers"],
            serde_json::json!([{"referrer": "https://ref.example/p", "hits": 2, "percent": 18.2}]),
            "{bin}"
        );
    }
    // Both the packed copy and the rows group so.
    crate::workdir::assert_packed_matches_rows(&wd, "out.db");
    let scan = |args: &[&str]| report(&wd, "aggregate-db", args);
    assert!(
        scan(&["--strip-query", "--top", "0"]) == scan(&["--strip-query", "--top", "0", "--scan"])
    );
}

/// `today` and `yesterday` are days in UTC, whatever the clock of the machine says.
#[test]
fn today_and_yesterday_are_days_in_utc() {
    let now = chrono::Utc::now();
    let today = now.date_naive();
    let day = |days_ago: i64, hour: u32| {
        (today - chrono::TimeDelta::days(days_ago))
            .and_hms_opt(hour, 0, 0)
            .unwrap()
            .and_utc()
            .format("%d/%b/%Y:%H:%M:%S +0000")
            .to_string()
    };
    let log: String = [day(2, 12), day(1, 0), day(1, 23), day(0, 0), day(0, 23)]
        .iter()
        .map(|t| format!("10.0.0.1 - - [{t}] \"GET / HTTP/1.1\" 200 1 \"-\" \"a\"\n"))
        .collect();
    let wd = Workdir::new();
    wd.write("logs/access.log", log);
    both_stores(&wd, &["logs/access.log"]);
    let requests = |bin: &str, args: &[&str]| {
        let doc: serde_json::Value =
            serde_json::from_slice(&report(&wd, bin, &[args, &["--format", "json"]].concat()))
                .unwrap();
        doc["summary"]["requests"].as_u64().unwrap()
    };
    let mut got = Vec::new();
    for bin in ["aggregate-csv", "aggregate-db"] {
        got.push(requests(bin, &["--since", "today"]));
        got.push(requests(
            bin,
            &["--since", "yesterday", "--until", "yesterday"],
        ));
        got.push(requests(bin, &["--until", "yesterday"]));
        got.push(requests(bin, &["--since", "yesterday"]));
    }
    if chrono::Utc::now().date_naive() != today {
        eprintln!("SKIPPED: the day changed (UTC) while the test ran");
        return;
    }
    assert_eq!(got, [2, 2, 3, 4, 2, 2, 3, 4]);
}

#[test]
fn csv_and_db_reports_are_identical_on_real_logs() {
    let wd = Workdir::new();
    both_stores_of_real(
        &wd,
        &[
            "ployt0-nginx_log_parser_access.log",
            "nasa-aug95-first20k_dbai-labs.log",
            "agungbahtiarr-webserver_attack_access.log",
            "crowdsec-hub_nginx-http-malformed.log",
            "phasinth-nikto-docker-apache_abnormal.log",
        ],
    );
    for format in ["table", "json", "csv"] {
        for filters in [
            &[][..],
            &["--status", "4xx", "--top", "20"],
            &["--url", "\\.php"],
        ] {
            let args: Vec<&str> = ["--format", format]
                .iter()
                .chain(filters.iter())
                .copied()
                .collect();
            assert!(
                report(&wd, "aggregate-csv", &args) == report(&wd, "aggregate-db", &args),
                "{args:?}"
            );
        }
    }
}

/// Every report, alone and together, is the same from one counting thread or many, from either
/// store and from the rows themselves (`--scan`): threads split the clients, each report counts
/// only what it needs, and none of that may change a number.
#[test]
fn every_report_is_the_same_whatever_the_threads_and_the_other_reports() {
    let wd = Workdir::new();
    both_stores_of_real(
        &wd,
        &[
            "nasa-aug95-first20k_dbai-labs.log",
            "agungbahtiarr-webserver_attack_access.log",
            "michael-meade_access.log.gz",
        ],
    );
    let json = |bin: &str, args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--format", "json", "--top", "0"];
        all.extend_from_slice(args);
        serde_json::from_slice(&report(&wd, bin, &all)).unwrap()
    };
    let sections = [
        ("summary", "summary"),
        ("status", "status"),
        ("urls", "urls"),
        ("not-found", "not_found"),
        ("clients", "clients"),
        ("agents", "agents"),
        ("referrers", "referrers"),
        ("methods", "methods"),
        ("traffic", "traffic"),
        ("pages", "pages"),
        ("static", "static"),
        ("sites", "sites"),
        ("days", "days"),
        ("hours", "hours"),
        ("weekdays", "weekdays"),
        ("browsers", "browsers"),
        ("os", "os"),
        ("devices", "devices"),
        ("times", "times"),
    ];
    // Every report at once (the default ones and those asked for by name).
    let every: Vec<&str> = sections.iter().map(|(section, _)| *section).collect();
    let whole = json(
        "aggregate-db",
        &["--threads", "1", "--report", &every.join(",")],
    );
    for (section, key) in sections {
        assert!(
            whole[key].is_object() || whole[key].is_array(),
            "{key} in {whole}"
        );
        for bin in ["aggregate-db", "aggregate-csv"] {
            for threads in ["1", "2", "5"] {
                for scan in [&[][..], &["--scan"]] {
                    if bin == "aggregate-csv" && !scan.is_empty() {
                        continue;
                    }
                    let mut args = vec!["--report", section, "--threads", threads];
                    args.extend_from_slice(scan);
                    let alone = json(bin, &args);
                    assert_eq!(alone[key], whole[key], "{bin} {args:?}");
                    let mut keys: Vec<&str> = alone
                        .as_object()
                        .unwrap()
                        .keys()
                        .map(String::as_str)
                        .collect();
                    keys.sort_unstable();
                    let mut expected = ["filters", "time_zone", key];
                    expected.sort_unstable();
                    assert_eq!(keys, expected, "only what was asked: {bin} {args:?}");
                }
            }
        }
    }
    for bad in ["0", "-1", "x", "257"] {
        wd.cmd("aggregate-db")
            .args(["out.db", "--threads", bad])
            .assert()
            .code(2)
            .stderr(contains("--threads"));
    }
    // A time range that is empty by its own bounds is a mistake, not an empty report.
    wd.cmd("aggregate-csv")
        .args([
            "out.csv",
            "--since",
            "2024-02-01T00:00:00Z",
            "--until",
            "2024-01-01T00:00:00Z",
        ])
        .assert()
        .code(2)
        .stderr(contains(
            "--since 2024-02-01T00:00:00Z is later than --until",
        ));
    // An IPv6 client written with capitals is the same client, in every store.
    let v6 = Workdir::new();
    let line = |ip: &str, n: u32| {
        format!(
            "{ip} - - [01/Jan/2024:00:00:{n:02} +0000] \"GET /{n} HTTP/1.1\" 200 5 \"-\" \"a\"\n"
        )
    };
    let log: String = (0..30)
        .map(|n| {
            line(
                ["2001:db8::1", "2001:db8::2", "10.0.0.1"][n as usize % 3],
                n,
            )
        })
        .collect();
    v6.write("logs/access.log", log);
    both_stores(&v6, &["logs/access.log"]);
    for bin in ["aggregate-db", "aggregate-csv"] {
        for scan in [&[][..], &["--scan"]] {
            if bin == "aggregate-csv" && !scan.is_empty() {
                continue;
            }
            let requests = |ip: &str| {
                let mut args = vec!["--report", "summary", "--format", "json", "--ip", ip];
                args.extend_from_slice(scan);
                let doc: serde_json::Value =
                    serde_json::from_slice(&report(&v6, bin, &args)).unwrap();
                doc["summary"]["requests"].as_u64().unwrap()
            };
            for ip in ["2001:db8::1", "2001:DB8::1", "2001:db8:0:0:0:0:0:1"] {
                assert_eq!(requests(ip), 10, "{bin} {scan:?} --ip {ip}");
            }
            assert_eq!(requests("10.0.0.1"), 10, "{bin} {scan:?}");
        }
    }
}

/// Counts computed here, straight from the raw lines with a plain split, not with the crate.
#[test]
fn reports_equal_an_independent_count_over_the_raw_lines() {
    let wd = Workdir::new();
    wd.cmd("generate-logs")
        .args([
            "--count",
            "20000",
            "--seed",
            "12",
            "--start",
            "2024-02-01T00:00:00Z",
        ])
        .assert()
        .success();
    wd.cmd("parse-to-db")
        .args(["--db", "out.db", "--quiet"])
        .assert()
        .success();
    let data = wd.read("logs/access.log");
    let (mut status, mut urls, mut ips, mut not_found) = (
        HashMap::new(),
        HashMap::new(),
        HashMap::new(),
        HashMap::new(),
    );
    let mut bytes = 0u64;
    for line in lines(&data) {
        let line = std::str::from_utf8(line).unwrap();
        // ip - user [time] "METHOD url PROTO" status size "ref" "agent"
        let ip = line.split(' ').next().unwrap();
        let request = line.split('"').nth(1).unwrap();
        let url = request.split(' ').nth(1).unwrap();
        let after = line.split('"').nth(2).unwrap().trim();
        let mut fields = after.split(' ');
        let code: u16 = fields.next().unwrap().parse().unwrap();
        let size = fields.next().unwrap();
        bytes += size.parse::<u64>().unwrap_or(0);
        *status.entry(code).or_insert(0u64) += 1;
        *urls.entry(url.to_string()).or_insert(0u64) += 1;
        *ips.entry(ip.to_string()).or_insert(0u64) += 1;
        if code == 404 {
            *not_found.entry(url.to_string()).or_insert(0u64) += 1;
        }
    }
    let out = report(&wd, "aggregate-db", &["--format", "json", "--top", "5"]);
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(doc["summary"]["requests"], 20000);
    assert_eq!(doc["summary"]["bytes"], bytes);
    assert_eq!(doc["summary"]["client_ips"], ips.len());
    let codes: HashMap<u16, u64> = doc["status"]["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["status"].as_u64().unwrap() as u16,
                c["hits"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(codes, status);
    let top = |counts: &HashMap<String, u64>| {
        let mut v: Vec<(String, u64)> = counts.iter().map(|(k, n)| (k.clone(), *n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(5);
        v
    };
    let got = |section: &str, key: &str| -> Vec<(String, u64)> {
        doc[section]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r[key].as_str().unwrap().to_string(),
                    r["hits"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(got("urls", "url"), top(&urls));
    assert_eq!(got("clients", "ip"), top(&ips));
    assert_eq!(got("not_found", "url"), top(&not_found));
}

#[test]
fn hostile_fields_are_escaped_in_every_format() {
    let wd = Workdir::new();
    // nginx writes control bytes as \xHH: an ESC sequence that would turn the terminal red, and a
    // user agent with quotes, commas and a newline escape.
    let line = "6.6.6.6 - - [01/Jan/2024:00:00:00 +0000] \"GET /\\x1B[31mred\\x1B]0;pwned\\x07 HTTP/1.1\" 200 5 \"-\" \"evil, \\\"quoted\\\"\\nagent\"\n";
    wd.write("logs/access.log", line);
    both_stores(&wd, &["logs/access.log"]);
    let table = report(&wd, "aggregate-db", &[]);
    assert!(
        !table.contains(&0x1b) && !table.contains(&0x07),
        "raw control bytes reached the table output"
    );
    assert!(String::from_utf8_lossy(&table).contains("/\\x1B[31mred\\x1B]0;pwned\\x07"));
    let json: serde_json::Value =
        serde_json::from_slice(&report(&wd, "aggregate-db", &["--format", "json"])).unwrap();
    assert_eq!(json["urls"][0]["url"], "/\u{1b}[31mred\u{1b}]0;pwned\u{7}");
    assert_eq!(json["agents"][0]["user_agent"], "evil, \"quoted\"\nagent");
    let csv_out = report(
        &wd,
        "aggregate-csv",
        &["--format", "csv", "--report", "agents"],
    );
    let mut reader = csv::Reader::from_reader(&csv_out[..]);
    let record = reader.records().next().unwrap().unwrap();
    assert_eq!(&record[1], "evil, \"quoted\"\nagent");
}

#[test]
fn long_values_are_cut_in_tables_only() {
    let wd = Workdir::new();
    let long_url = format!("/{}", "a".repeat(300));
    wd.write("logs/access.log", format!("1.1.1.1 - - [01/Jan/2024:00:00:00 +0000] \"GET {long_url} HTTP/1.1\" 200 5 \"-\" \"ua\"\n"));
    both_stores(&wd, &["logs/access.log"]);
    let table = String::from_utf8(report(&wd, "aggregate-csv", &["--report", "urls"])).unwrap();
    assert!(table.lines().all(|l| l.chars().count() <= 80), "{table}");
    assert!(table.contains('…'));
    let json: serde_json::Value =
        serde_json::from_slice(&report(&wd, "aggregate-csv", &["--format", "json"])).unwrap();
    assert_eq!(json["urls"][0]["url"], long_url);
}

#[test]
fn missing_empty_and_unfilled_inputs_get_clear_messages() {
    let wd = Workdir::new();
    wd.cmd("aggregate-csv")
        .assert()
        .code(2)
        .stderr(contains("parsed_logs.csv does not exist"))
        .stderr(contains("parse-to-csv"));
    wd.cmd("aggregate-db")
        .assert()
        .code(2)
        .stderr(contains("logs.db does not exist"))
        .stderr(contains("parse-to-db"));
    rusqlite::Connection::open(wd.path("empty.db"))
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    wd.cmd("aggregate-db")
        .arg("empty.db")
        .assert()
        .code(2)
        .stderr(contains("no `logs` table"))
        .stderr(contains("parse-to-db"));
    wd.write("logs/access.log", "");
    both_stores(&wd, &["logs/access.log"]);
    wd.cmd("aggregate-csv")
        .arg("out.csv")
        .assert()
        .success()
        .stdout(contains("No log entries."));
    wd.cmd("aggregate-db")
        .arg("out.db")
        .assert()
        .success()
        .stdout(contains("No log entries."));
    wd.write("other.csv", "a,b\n1,2\n");
    wd.cmd("aggregate-csv")
        .arg("other.csv")
        .assert()
        .code(2)
        .stderr(contains("not a log-pipeline CSV"));
}

/// The header parse-to-csv writes.
const CSV_HEADER: &str =
    "ip,ident,user,timestamp,method,url,protocol,status,bytes,referrer,user_agent\n";

#[test]
fn a_damaged_csv_row_is_named_not_skipped() {
    let wd = Workdir::new();
    let header = CSV_HEADER;
    let good = "1.2.3.4,,,2024-01-01T00:00:00Z,GET,/,HTTP/1.1,200,5,,ua\n";
    for (row, cause) in [
        (
            "1.2.3.4,,,yesterday,GET,/,HTTP/1.1,200,5,,ua\n",
            "record 2: bad timestamp",
        ),
        (
            "1.2.3.4,,,2024-01-01T00:00:00Z,GET,/,HTTP/1.1,OK,5,,ua\n",
            "record 2: bad status",
        ),
        (
            "1.2.3.4,,,2024-01-01T00:00:00Z,GET,/,HTTP/1.1,200,lots,,ua\n",
            "record 2: bad bytes",
        ),
        ("1.2.3.4,,,2024-01-01T00:00:00Z,GET,/\n", "record 2"),
    ] {
        wd.write("bad.csv", format!("{header}{good}{row}{good}"));
        wd.cmd("aggregate-csv")
            .arg("bad.csv")
            .assert()
            .code(2)
            .stderr(contains("bad.csv"))
            .stderr(contains(cause));
    }
}

/// Each counting thread reads the rows of its share of the clients: of bad rows of many
/// clients, the one told is still the first in the file.
#[test]
fn the_first_damaged_row_is_named_whichever_thread_reads_it() {
    let wd = Workdir::new();
    let mut csv = String::from(CSV_HEADER);
    for i in 0..2000 {
        let time = if (700..800).contains(&i) {
            "soon"
        } else {
            "2024-01-01T00:00:00Z"
        };
        csv += &format!(
            "10.0.{}.{},,,{time},GET,/,HTTP/1.1,200,5,,ua\n",
            i / 256,
            i % 256
        );
    }
    wd.write("bad.csv", csv);
    for _ in 0..5 {
        wd.cmd("aggregate-csv")
            .arg("bad.csv")
            .assert()
            .code(2)
            .stderr(contains("record 701: bad timestamp"));
    }
}

/// A client is the same whether its address is quoted or not, so its rows go to one
/// counting thread and it is counted once.
#[test]
fn a_quoted_client_is_the_same_client() {
    let wd = Workdir::new();
    let mut csv = String::from(CSV_HEADER);
    for i in 0..50 {
        csv += &format!("10.0.0.{i},,,2024-01-01T00:00:00Z,GET,/,HTTP/1.1,200,5,,ua\n");
        csv += &format!("\"10.0.0.{i}\",,,2024-01-01T00:00:01Z,GET,/,HTTP/1.1,200,5,,\"ua\"\n");
    }
    wd.write("quoted.csv", csv);
    let out = wd
        .cmd("aggregate-csv")
        .args(["quoted.csv", "--format", "json", "--top", "100"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["summary"]["requests"], 100, "{json}");
    assert_eq!(json["summary"]["client_ips"], 50, "{json}");
    assert_eq!(json["summary"]["unique_visitors"], 50, "{json}");
    let clients = json["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 50, "{json}");
    assert!(clients.iter().all(|c| c["hits"] == 2), "{json}");
}

#[test]
fn aggregate_db_reads_while_continuous_parse_writes() {
    let wd = Workdir::new();
    wd.cmd("generate-logs")
        .args(["--count", "20000"])
        .assert()
        .success();
    let parser = wd.spawn(
        "continuous-parse",
        &["--quiet", "--poll-interval", "0.05", "--linger", "0"],
    );
    wait_until("the follower's first rows", || {
        wd.cmd("aggregate-db")
            .args(["--report", "summary", "--format", "json"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let writer = wd.spawn(
        "generate-logs",
        &["--interval", "0.002", "--lines-per-batch", "500", "--quiet"],
    );
    let requests = |wd: &Workdir| {
        let out = wd
            .cmd("aggregate-db")
            .args(["--report", "summary", "--format", "json"])
            .assert()
            .success();
        let doc: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
        doc["summary"]["requests"].as_u64().unwrap()
    };
    // Each report sees a consistent state: never fewer rows than the one before, never more
    // than the lines in the file.
    let mut last = 0;
    for _ in 0..15 {
        let seen = requests(&wd);
        let lines = crate::workdir::lines(&wd.read("logs/access.log")).len() as u64;
        assert!(
            seen >= last && seen <= lines,
            "report saw {seen} requests after {last}, with {lines} lines in the log"
        );
        last = seen;
    }
    assert!(writer.signal_and_wait("-INT").success());
    let lines = crate::workdir::lines(&wd.read("logs/access.log")).len() as u64;
    wait_until("the follower to take every line", || requests(&wd) == lines);
    assert!(parser.signal_and_wait("-INT").success());
    assert_eq!(
        requests(&wd),
        lines,
        "after both stopped, every line is reported"
    );
}

/// The packed copy that reports read keeps up with incremental runs, and rows that another
/// program inserts: reports read the rows until the next writer packs them.
#[test]
fn packed_copy_follows_runs_and_rows_written_by_others() {
    let wd = Workdir::new();
    let generate = |count: &str, start: &str| {
        wd.cmd("generate-logs")
            .args(["--count", count, "--seed", "5", "--start", start])
            .assert()
            .success();
    };
    generate("7000", "2024-01-01T00:00:00Z");
    // Batches that end mid-block, then more lines appended between runs.
    let parse = || {
        wd.cmd("parse-to-db")
            .args(["--quiet", "--batch-lines", "2500"])
            .assert()
            .success();
    };
    parse();
    generate("3000", "2024-01-01T01:00:00Z");
    parse();
    crate::workdir::assert_packed_matches_rows(&wd, "logs.db");

    let requests = |scan: bool| {
        let mut cmd = wd.cmd("aggregate-db");
        cmd.args(["--report", "summary", "--format", "json"]);
        if scan {
            cmd.arg("--scan");
        }
        let out = cmd.assert().success().get_output().stdout.clone();
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        doc["summary"]["requests"].as_u64().unwrap()
    };
    assert_eq!(requests(false), 10_000);

    // Another program appends a row (from an IPv6 address that does not print back the same,
    // and a hostname): reports see it at once, from the rows.
    let conn = rusqlite::Connection::open(wd.path("logs.db")).unwrap();
    conn.execute_batch(
        "INSERT INTO logs (ip, timestamp, url, status, user_agent) VALUES
           ('2001:DB8::1', '2024-01-01T02:00:00Z', '/by-hand', 200, 'curl'),
           ('gw.example', '2024-01-01T02:00:01Z', '/by-hand', 404, NULL);",
    )
    .unwrap();
    assert_eq!(requests(false), 10_002);
    assert_eq!(requests(true), 10_002);

    // The next writer packs them, and says so.
    wd.cmd("parse-to-db")
        .assert()
        .success()
        .stderr(contains("packed 2 rows written by another program"));
    crate::workdir::assert_packed_matches_rows(&wd, "logs.db");
    assert_eq!(requests(false), 10_002);

    // A foreign row whose time is not a time cannot be packed: the writer says so, goes on,
    // and reports read the rows (which name the row), as they always did.
    conn.execute(
        "INSERT INTO logs (ip, timestamp, url, status) VALUES ('1.2.3.4', 'yesterday', '/x', 200)",
        [],
    )
    .unwrap();
    wd.cmd("parse-to-db")
        .assert()
        .success()
        .stderr(contains("no valid timestamp: reports will read the rows"));
    for scan in [false, true] {
        let mut cmd = wd.cmd("aggregate-db");
        if scan {
            cmd.arg("--scan");
        }
        cmd.assert()
            .code(2)
            .stderr(contains("logs.db: row 10003 has no valid timestamp"));
    }
}

/// A follower and a one-time run writing the same database in turn: the block they both
/// append to keeps the records of both.
#[test]
fn packed_copy_stays_whole_when_two_writers_take_turns() {
    /// Killed on the way out even when an assertion fails, so no follower outlives the test.
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    // Rows committed so far; 0 while the follower is still creating the database.
    let count = |wd: &Workdir| -> usize {
        let Ok(conn) = rusqlite::Connection::open(wd.path("logs.db")) else {
            return 0;
        };
        let _ = conn.busy_timeout(Duration::from_secs(5));
        conn.query_row("SELECT count(*) FROM logs", [], |r| r.get::<_, i64>(0))
            .map_or(0, |n| n as usize)
    };
    let wait_for = |wd: &Workdir, rows: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while count(wd) < rows && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(count(wd), rows);
    };
    let wd = Workdir::new();
    wd.write("a.log", crate::workdir::numbered_lines(0, 300));
    let mut follower = Stop(
        Command::new(bin_path("continuous-parse"))
            .args([
                "a.log",
                "--quiet",
                "--poll-interval",
                "0.05",
                "--linger",
                "0",
            ])
            .current_dir(wd.root())
            .spawn()
            .unwrap(),
    );
    wait_for(&wd, 300);
    wd.write("b.log", crate::workdir::numbered_lines(1000, 1100));
    wd.cmd("parse-to-db")
        .args(["b.log", "--quiet"])
        .assert()
        .success();
    wd.append("a.log", crate::workdir::numbered_lines(300, 400));
    wait_for(&wd, 500);
    Command::new("kill")
        .args(["-INT", &follower.0.id().to_string()])
        .status()
        .unwrap();
    assert!(follower.0.wait().unwrap().success());
    crate::workdir::assert_packed_matches_rows(&wd, "logs.db");
}

#[test]
fn a_path_that_is_no_log_database_is_named_for_what_it_is() {
    let wd = Workdir::new();
    std::fs::create_dir(wd.path("adir")).unwrap();
    wd.cmd("aggregate-db")
        .arg("adir")
        .assert()
        .code(2)
        .stderr(contains("adir is a directory"))
        .stderr(contains("Error code").not());
    rusqlite::Connection::open(wd.path("foreign.db"))
        .unwrap()
        .execute_batch("CREATE TABLE logs (foo, bar); INSERT INTO logs VALUES (1, 2)")
        .unwrap();
    wd.cmd("aggregate-db")
        .arg("foreign.db")
        .assert()
        .code(2)
        .stderr(contains("foreign.db is not a log-pipeline database"))
        .stderr(contains("columns foo, bar"))
        .stderr(contains("no such column").not());
    // The original scripts' table: parse-to-db upgrades it, and says so.
    rusqlite::Connection::open(wd.path("legacy.db"))
        .unwrap()
        .execute_batch(
            "CREATE TABLE logs (id INTEGER PRIMARY KEY, ip TEXT, timestamp TEXT, url TEXT, status INTEGER, user_agent TEXT)",
        )
        .unwrap();
    wd.cmd("aggregate-db")
        .arg("legacy.db")
        .assert()
        .code(2)
        .stderr(contains("original scripts"))
        .stderr(contains("parse-to-db --db legacy.db"));
    wd.write(
        "text.db",
        "not a database, but text long enough to fill a header......",
    );
    wd.cmd("aggregate-db")
        .arg("text.db")
        .assert()
        .code(2)
        .stderr(contains("text.db is not a SQLite database"));
}

#[test]
fn an_unreadable_database_says_permission_denied() {
    use std::os::unix::fs::PermissionsExt;
    let wd = Workdir::new();
    wd.write("logs/access.log", crate::workdir::numbered_lines(0, 5));
    both_stores(&wd, &["logs/access.log"]);
    std::fs::set_permissions(wd.path("out.db"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut cmd = if std::fs::read(wd.path("out.db")).is_ok() {
        // Root reads any file: without the two capabilities that let it, it is denied too.
        let mut cmd = assert_cmd::Command::new("setpriv");
        cmd.args(["--bounding-set", "-dac_override,-dac_read_search"])
            .arg(bin_path("aggregate-db"))
            .current_dir(wd.root());
        let works = Command::new("setpriv")
            .args(["--bounding-set", "-dac_override,-dac_read_search", "true"])
            .status()
            .is_ok_and(|s| s.success());
        if !works {
            eprintln!("SKIPPED: running as root, and setpriv cannot drop CAP_DAC_OVERRIDE");
            return;
        }
        cmd
    } else {
        wd.cmd("aggregate-db")
    };
    cmd.arg("out.db")
        .assert()
        .code(2)
        .stderr(contains("cannot read database out.db: Permission denied"))
        .stderr(contains("unable to open").not());
}

#[test]
fn a_database_on_a_read_only_mount_is_read() {
    let wd = Workdir::new();
    let Some(mount) = crate::workdir::Mount::tmpfs(&wd.path("ro"), "size=4m") else {
        return;
    };
    wd.write("logs/access.log", crate::workdir::numbered_lines(0, 50));
    wd.cmd("parse-to-db")
        .args(["--db", "ro/logs.db", "--final", "--quiet"])
        .assert()
        .success();
    let report = |args: &[&str]| {
        wd.cmd("aggregate-db")
            .args(["ro/logs.db", "--format", "json"])
            .args(args)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone()
    };
    let before = report(&[]);
    // The case to cover: a database closed cleanly by its writer, so no -shm for a reader to
    // use (the reader just now left one behind, and an empty -wal).
    assert_eq!(
        std::fs::metadata(wd.path("ro/logs.db-wal")).map_or(0, |m| m.len()),
        0
    );
    let _ = std::fs::remove_file(wd.path("ro/logs.db-shm"));
    // A copy taken while a writer had changes in its -wal: read without them, it would be stale.
    wd.cmd("parse-to-db")
        .args(["--db", "live.db", "--final", "--quiet"])
        .assert()
        .success();
    let writer = rusqlite::Connection::open(wd.path("live.db")).unwrap();
    writer
        .execute_batch(
            "PRAGMA wal_autocheckpoint = 0;
             INSERT INTO logs (ip, timestamp, url, status) SELECT ip, timestamp, url, status FROM logs LIMIT 1;",
        )
        .unwrap();
    std::fs::copy(wd.path("live.db"), wd.path("ro/copy.db")).unwrap();
    std::fs::copy(wd.path("live.db-wal"), wd.path("ro/copy.db-wal")).unwrap();
    if !mount.remount_read_only() {
        return;
    }
    assert!(
        report(&[]) == before,
        "the report from a read-only mount differs"
    );
    assert!(
        report(&["--scan"]) == before,
        "the rows on a read-only mount differ"
    );
    wd.cmd("aggregate-db")
        .arg("ro/copy.db")
        .assert()
        .code(2)
        .stderr(contains("ro/copy.db-wal"))
        .stderr(contains("writable directory"));
}

/// `-n` is `--top`; `--top 0` ranks every key (it printed headers over no rows), and the
/// titles say so.
#[test]
fn top_zero_ranks_every_key() {
    let wd = Workdir::new();
    let log: String = (0..25)
        .map(|n| format!("10.0.0.{n} - - [01/Jan/2024:00:00:{n:02} +0000] \"GET /p/{n} HTTP/1.1\" 404 5 \"-\" \"a{n}\"\n"))
        .collect();
    wd.write("logs/access.log", log);
    both_stores(&wd, &["logs/access.log"]);
    let json = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--format", "json"];
        all.extend(args);
        serde_json::from_slice(&report(&wd, "aggregate-db", &all)).unwrap()
    };
    for section in ["urls", "not_found", "clients", "agents"] {
        assert_eq!(json(&["-n", "0"])[section].as_array().unwrap().len(), 25);
        assert_eq!(json(&["--top", "0"])[section].as_array().unwrap().len(), 25);
        assert_eq!(json(&["-n", "3"])[section].as_array().unwrap().len(), 3);
    }
    let table = String::from_utf8(report(&wd, "aggregate-csv", &["-n", "0"])).unwrap();
    for title in [
        "All URLs",
        "All URLs answered 404",
        "All clients",
        "All user agents",
    ] {
        assert!(table.contains(&format!("\n{title}\n")), "{title}:\n{table}");
    }
    assert!(!table.contains("Top "), "{table}");
    assert!(
        table.contains("\nAll pages (25 requests, 100.0%)\n"),
        "{table}"
    );
    assert_eq!(
        table.matches("/p/").count(),
        75,
        "every URL three times (URLs, pages, 404s):\n{table}"
    );
    let table = String::from_utf8(report(&wd, "aggregate-csv", &["-n", "3"])).unwrap();
    assert!(table.contains("\nTop 3 URLs\n"), "{table}");
}

/// Lines longer than `width` characters, for the message of a failed check.
fn too_wide(table: &str, width: usize) -> Vec<&str> {
    table
        .lines()
        .filter(|l| l.chars().count() > width)
        .collect()
}

/// Tables are as wide as they are told (`--width`, then `COLUMNS`, then the terminal, then
/// 80): the key columns show more of a long URL or agent, and the traffic bars take the
/// rest, the busiest bucket's bar reaching the last column.
#[test]
fn tables_take_the_width_they_are_given() {
    let wd = Workdir::new();
    wd.cmd("generate-logs")
        .args([
            "--count",
            "20000",
            "--seed",
            "3",
            "--start",
            "2024-01-01T00:00:00Z",
        ])
        .assert()
        .success();
    let long_url = format!("/{}", "u".repeat(300));
    wd.append(
        "logs/access.log",
        format!("1.1.1.1 - - [01/Jan/2024:00:00:00 +0000] \"GET {long_url} HTTP/1.1\" 200 5 \"-\" \"ua\"\n"),
    );
    both_stores(&wd, &["logs/access.log"]);
    let table = |columns: Option<&str>, args: &[&str]| {
        let mut cmd = wd.cmd("aggregate-db");
        cmd.args(["--db", "out.db"]).args(args);
        if let Some(c) = columns {
            cmd.env("COLUMNS", c);
        }
        String::from_utf8(cmd.assert().success().get_output().stdout.clone()).unwrap()
    };
    let longest_url_cell = |t: &str| {
        t.lines()
            .filter_map(|l| l.split_whitespace().last())
            .filter(|w| w.starts_with("/uuu"))
            .map(|w| w.chars().count())
            .max()
            .unwrap()
    };
    let traffic_width = |t: &str| {
        let traffic = &t[t.find("Traffic per").unwrap()..];
        traffic.lines().map(|l| l.chars().count()).max().unwrap()
    };
    for (columns, args, width) in [
        (None, &[][..], 80),
        (Some("120"), &[][..], 120),
        (Some("200"), &["--width", "100"][..], 100),
        (None, &["--width", "60"][..], 60),
        (Some("junk"), &[][..], 80),
    ] {
        let t = table(columns, args);
        assert!(
            too_wide(&t, width).is_empty(),
            "{columns:?} {args:?}: lines over {width}: {:#?}",
            too_wide(&t, width)
        );
        // The URL takes what the numbers leave (47 columns of them), the bar of the busiest
        // hour reaches the last column.
        let urls = table(
            columns,
            &[args, &["--report", "urls", "--url", "^/uuu"]].concat(),
        );
        assert_eq!(
            longest_url_cell(&urls),
            width - 47,
            "{columns:?} {args:?}:\n{urls}"
        );
        assert_eq!(traffic_width(&t), width, "{columns:?} {args:?}:\n{t}");
    }
    wd.cmd("aggregate-db")
        .args(["--width", "59"])
        .assert()
        .code(2)
        .stderr(contains("'59' is not a number of columns from 60 to 1000"));
}

/// The traffic chart has a column for 2xx to 5xx always, and for any other class only when
/// some bucket has requests in it: 80 columns are kept for the bar.
#[test]
fn traffic_shows_the_rarer_classes_only_when_there_are_some() {
    let wd = Workdir::new();
    let line = |status: u16| {
        format!(
            "1.1.1.1 - - [01/Jan/2024:00:00:00 +0000] \"GET / HTTP/1.1\" {status} 5 \"-\" \"ua\"\n"
        )
    };
    let header = |log: String| {
        wd.write("logs/access.log", log);
        std::fs::remove_file(wd.path("out.db")).ok();
        wd.cmd("parse-to-db")
            .args(["--db", "out.db", "--final", "--quiet"])
            .assert()
            .success();
        let table =
            String::from_utf8(report(&wd, "aggregate-db", &["--report", "traffic"])).unwrap();
        let header = table
            .lines()
            .find(|l| l.contains("start (UTC)"))
            .unwrap()
            .to_string();
        header
            .split_whitespace()
            .skip(3)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(header(line(200) + &line(404)), "2xx 3xx 4xx 5xx bar");
    let with_101 = header(line(200) + &line(101));
    assert_eq!(with_101.split(' ').count(), 6, "{with_101}");
    assert!(
        with_101.starts_with("1xx 2xx") || with_101.ends_with("5xx other bar"),
        "{with_101}"
    );
}

/// Removes the colours the table renderer adds (SGR sequences), to compare with the plain
/// table and to see that nothing else escapes.
fn without_colour(table: &str) -> String {
    regex::Regex::new("\x1b\\[[0-9;]*m")
        .unwrap()
        .replace_all(table, "")
        .into_owned()
}

/// `--color always` colours the status classes (2xx green, 3xx cyan, 4xx yellow, 5xx red)
/// and nothing else changes; `auto` colours only a terminal, and `never` and JSON and CSV
/// never. A log's own escape bytes are still shown escaped.
#[test]
fn colour_is_asked_for_or_given_to_terminals_only() {
    let wd = Workdir::new();
    let line = |status: u16, url: &str| {
        format!(
            "1.1.1.1 - - [01/Jan/2024:00:00:00 +0000] \"GET {url} HTTP/1.1\" {status} 5 \"-\" \"ua\"\n"
        )
    };
    wd.write(
        "logs/access.log",
        [
            line(200, "/"),
            line(301, "/old"),
            line(404, "/\\x1B[31mred\\x1B]0;pwned\\x07"),
            line(503, "/api"),
        ]
        .concat(),
    );
    both_stores(&wd, &["logs/access.log"]);
    let plain = report(&wd, "aggregate-db", &[]);
    let table = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = wd.cmd("aggregate-db");
        cmd.args(["--db", "out.db"]).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.assert().success().get_output().stdout.clone()
    };
    let coloured = String::from_utf8(table(&["--color", "always"], &[("NO_COLOR", "1")])).unwrap();
    for (sgr, class) in [("32", "2xx"), ("36", "3xx"), ("33", "4xx"), ("31", "5xx")] {
        assert!(
            coloured.contains(&format!("\x1b[{sgr}m{class:<6}\x1b[0m")),
            "{class} in \\x1b[{sgr}m:\n{coloured}"
        );
    }
    assert_eq!(
        without_colour(&coloured).as_bytes(),
        plain,
        "only colour is added"
    );
    assert!(
        !without_colour(&coloured).contains('\x1b'),
        "the log's escape bytes stay escaped:\n{coloured}"
    );
    assert!(coloured.contains("/\\x1B[31mred\\x1B]0;pwned\\x07"));
    assert_eq!(table(&["--color", "never"], &[]), plain);
    assert_eq!(table(&["--color", "auto"], &[]), plain, "stdout is a pipe");
    for format in ["json", "csv"] {
        let out = table(&["--color", "always", "--format", format], &[]);
        // (The CSV holds the log's escape byte as it came, as CSV does.)
        assert_eq!(out, table(&["--format", format], &[]), "{format}");
    }

    // On a terminal (a pseudo-terminal from util-linux's script), auto colours unless
    // NO_COLOR is set or the terminal is dumb.
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: colour on a terminal (no `script` to make one)");
        return;
    }
    let on_terminal = |env: &[(&str, &str)]| {
        let command = format!(
            "{} --db out.db --report status",
            bin_path("aggregate-db").display()
        );
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &command, "/dev/null"])
            .current_dir(wd.root())
            .env("TERM", "xterm")
            .env_remove("NO_COLOR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(
        on_terminal(&[]).contains("\x1b[32m2xx"),
        "{}",
        on_terminal(&[])
    );
    assert!(!on_terminal(&[("NO_COLOR", "1")]).contains('\x1b'));
    assert!(!on_terminal(&[("TERM", "dumb")]).contains('\x1b'));
}

/// Every bucket from the first to the last is a row, the empty ones with zeros: an outage
/// was invisible when empty buckets were left out. A bucket that would make more than 3,000
/// rows is made coarser, and said; days beyond that are not filled in, and the table says so.
#[test]
fn traffic_shows_empty_buckets_between_the_first_and_the_last() {
    let wd = Workdir::new();
    let line = |time: &str, status: u16| {
        format!("1.1.1.1 - - [{time} +0000] \"GET / HTTP/1.1\" {status} 5 \"-\" \"ua\"\n")
    };
    let fill = |lines: &[String]| {
        wd.write("logs/access.log", lines.concat());
        for store in ["out.csv", "out.csv.checkpoint", "out.db"] {
            std::fs::remove_file(wd.path(store)).ok();
        }
        both_stores(&wd, &["logs/access.log"]);
    };
    let traffic = |args: &[&str]| -> (serde_json::Value, String) {
        let run = wd
            .cmd("aggregate-csv")
            .args([
                "--csv", "out.csv", "--report", "traffic", "--format", "json",
            ])
            .args(args)
            .assert()
            .success();
        let doc: serde_json::Value = serde_json::from_slice(&run.get_output().stdout).unwrap();
        let stderr = String::from_utf8(run.get_output().stderr.clone()).unwrap();
        (doc["traffic"].clone(), stderr)
    };
    let hits = |traffic: &serde_json::Value| -> Vec<u64> {
        (traffic["rows"].as_array().unwrap().iter())
            .map(|r| r["hits"].as_u64().unwrap())
            .collect()
    };

    // Five minutes without a request.
    fill(&[
        line("01/Jan/2024:00:00:10", 200),
        line("01/Jan/2024:00:00:50", 200),
        line("01/Jan/2024:00:06:10", 503),
    ]);
    let (t, stderr) = traffic(&[]);
    assert_eq!(t["bucket"], "minute");
    assert_eq!(hits(&t), [2, 0, 0, 0, 0, 0, 1]);
    assert_eq!(t["rows"][3]["start"], "2024-01-01T00:03:00Z");
    assert_eq!(t["rows"][3]["2xx"], 0);
    assert!(stderr.is_empty(), "{stderr}");
    let table = String::from_utf8(report(&wd, "aggregate-db", &["--report", "traffic"])).unwrap();
    assert!(
        table.contains("\n  2024-01-01 00:03     0    0    0    0    0\n"),
        "{table}"
    );
    assert_eq!(
        table,
        String::from_utf8(report(&wd, "aggregate-csv", &["--report", "traffic"])).unwrap()
    );

    // Three days and more per minute: 4,326 rows, so per hour, and said.
    fill(&[
        line("01/Jan/2024:00:00:10", 200),
        line("04/Jan/2024:00:05:10", 200),
    ]);
    let (t, stderr) = traffic(&["--bucket", "minute"]);
    assert_eq!(t["bucket"], "hour");
    assert_eq!(hits(&t).len(), 73);
    assert!(
        stderr.contains("aggregate-csv: warning: traffic is shown per hour: per minute it would be more than 3,000 rows"),
        "{stderr}"
    );
    let (t, stderr) = traffic(&["--bucket", "day"]);
    assert_eq!((hits(&t), stderr.as_str()), (vec![1, 0, 0, 1], ""));

    // A stray timestamp 53 years back: only the days with requests.
    fill(&[
        line("01/Jan/1971:00:00:10", 200),
        line("01/Jan/2024:00:00:10", 200),
    ]);
    let (t, _) = traffic(&[]);
    assert_eq!((t["bucket"].as_str(), hits(&t)), (Some("day"), vec![1, 1]));
    let table = String::from_utf8(report(&wd, "aggregate-db", &["--report", "traffic"])).unwrap();
    assert!(
        table.contains("(only the days with requests: first to last is more than 3,000 days)"),
        "{table}"
    );
}

/// Each format counts each class in its own place, by the class's name: JSON a key per
/// class, CSV the columns 2xx to 5xx, the table a column per class it shows.
#[test]
fn traffic_counts_each_class_under_its_name_in_every_format() {
    let wd = Workdir::new();
    let log: String = [200, 200, 301, 404, 503, 101]
        .iter()
        .map(|status| format!("1.1.1.1 - - [01/Jan/2024:00:00:00 +0000] \"GET / HTTP/1.1\" {status} 5 \"-\" \"ua\"\n"))
        .collect();
    wd.write("logs/access.log", log);
    both_stores(&wd, &["logs/access.log"]);
    let args = ["--report", "traffic", "--format"];
    let out = |format: &str| report(&wd, "aggregate-db", &[&args[..], &[format]].concat());

    let json: serde_json::Value = serde_json::from_slice(&out("json")).unwrap();
    let row = json["traffic"]["rows"][0].as_object().unwrap();
    assert_eq!(row["hits"], 6);
    for (class, n) in [("2xx", 2), ("3xx", 1), ("4xx", 1), ("5xx", 1)] {
        assert_eq!(row[class], n, "{class}: {row:?}");
    }
    let by_class: u64 = (row.iter())
        .filter(|(k, _)| !["start", "hits"].contains(&k.as_str()))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_class, 6, "every hit in one class: {row:?}");

    let csv = String::from_utf8(out("csv")).unwrap();
    assert_eq!(
        csv,
        "report,key,value,percent,bytes,visitors,2xx,3xx,4xx,5xx\n\
         traffic,2024-01-01T00:00:00Z,6,,,,2,1,1,1\n"
    );

    let table = String::from_utf8(out("table")).unwrap();
    let mut lines = table.lines().skip_while(|l| !l.contains("start (UTC)"));
    let header: Vec<&str> = (lines.next().unwrap().split_whitespace().skip(3))
        .filter(|&h| h != "bar")
        .collect();
    let values: Vec<&str> = lines.next().unwrap().split_whitespace().skip(3).collect();
    let columns: HashMap<&str, &str> = header.into_iter().zip(values).collect();
    assert_eq!(columns.len(), 5, "2xx to 5xx and the class of 101: {table}");
    for (class, n) in [("2xx", "2"), ("3xx", "1"), ("4xx", "1"), ("5xx", "1")] {
        assert_eq!(columns[class], n, "{class}: {table}");
    }
}

/// The reports decided per URL or referrer, or from the hits per minute, on a log whose
/// every number is known: pages and static files, referring sites, days, hours, weekdays.
#[test]
fn pages_sites_days_hours_and_weekdays_count_exactly_in_every_store() {
    let wd = Workdir::new();
    let line = |ip: &str, time: &str, request: &str, status: u16, referrer: &str, agent: &str| {
        format!(
            "{ip} - - [{time} +0000] \"{request} HTTP/1.1\" {status} 10 \"{referrer}\" \"{agent}\"\n"
        )
    };
    let log = [
        line(
            "1.1.1.1",
            "05/Jan/2024:10:15:00",
            "GET /index.html",
            200,
            "https://www.Google.com/search?q=x",
            "A",
        ),
        line(
            "1.1.1.1",
            "05/Jan/2024:10:40:00",
            "GET /style.css",
            200,
            "https://example.org/page",
            "A",
        ),
        line(
            "2.2.2.2",
            "05/Jan/2024:23:59:59",
            "GET /app.js?v=1",
            304,
            "-",
            "B",
        ),
        line(
            "2.2.2.2",
            "06/Jan/2024:00:01:00",
            "GET /",
            200,
            "http://www.google.com:80/",
            "B",
        ),
        line(
            "1.1.1.1",
            "06/Jan/2024:00:30:00",
            "GET /img/LOGO.PNG",
            404,
            "android-app://com.x/",
            "A",
        ),
        line(
            "3.3.3.3",
            "08/Jan/2024:13:00:00",
            "POST /api",
            500,
            "-",
            "C",
        ),
    ]
    .concat();
    wd.write("logs/access.log", log);
    both_stores(&wd, &["logs/access.log"]);
    let sections = "summary,pages,static,sites,days,hours,weekdays";
    for format in ["table", "json", "csv"] {
        for ext in [&[][..], &["--static-ext", "HTML,.txt"]] {
            let mut args = vec!["--report", sections, "--format", format];
            args.extend_from_slice(ext);
            let db = report(&wd, "aggregate-db", &args);
            assert_eq!(db, report(&wd, "aggregate-csv", &args), "{args:?}");
            args.push("--scan");
            assert_eq!(db, report(&wd, "aggregate-db", &args), "{args:?}");
        }
    }
    let json = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--report", sections, "--format", "json"];
        all.extend_from_slice(args);
        serde_json::from_slice(&report(&wd, "aggregate-db", &all)).unwrap()
    };
    let keys = |rows: &serde_json::Value, key: &str| -> Vec<(String, u64)> {
        (rows.as_array().unwrap().iter())
            .map(|r| {
                (
                    r[key].as_str().unwrap().to_string(),
                    r["hits"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let owned = |pairs: &[(&str, u64)]| -> Vec<(String, u64)> {
        pairs.iter().map(|&(k, n)| (k.to_string(), n)).collect()
    };
    let doc = json(&[]);
    assert_eq!(doc["pages"]["requests"], 3);
    assert_eq!(
        keys(&doc["pages"]["rows"], "url"),
        owned(&[("/", 1), ("/api", 1), ("/index.html", 1)])
    );
    assert_eq!(doc["static"]["requests"], 3);
    assert_eq!(
        keys(&doc["static"]["rows"], "url"),
        owned(&[("/app.js?v=1", 1), ("/img/LOGO.PNG", 1), ("/style.css", 1)])
    );
    assert_eq!(
        keys(&doc["sites"], "site"),
        owned(&[("www.google.com", 2), ("com.x", 1), ("example.org", 1)])
    );
    let days: Vec<(String, u64, u64)> = (doc["days"].as_array().unwrap().iter())
        .map(|d| {
            let n = |k: &str| d[k].as_u64().unwrap();
            (
                d["day"].as_str().unwrap().to_string(),
                n("hits"),
                n("visitors"),
            )
        })
        .collect();
    let day = |d: &str, hits, visitors| (d.to_string(), hits, visitors);
    assert_eq!(
        days,
        [
            day("2024-01-05", 3, 2),
            day("2024-01-06", 2, 2),
            day("2024-01-07", 0, 0),
            day("2024-01-08", 1, 1),
        ]
    );
    assert_eq!(
        doc["summary"]["unique_visitors"], 5,
        "the days' visitors add up"
    );
    let hours: Vec<u64> = (doc["hours"].as_array().unwrap().iter())
        .map(|h| h["hits"].as_u64().unwrap())
        .collect();
    let mut expected = [0u64; 24];
    (expected[0], expected[10], expected[13], expected[23]) = (2, 2, 1, 1);
    assert_eq!(hours, expected);
    assert_eq!(doc["hours"][10]["2xx"], 2);
    assert_eq!(doc["hours"][0]["4xx"], 1);
    let weekdays = keys(&doc["weekdays"], "weekday");
    assert_eq!(
        weekdays,
        owned(&[
            ("Monday", 1),
            ("Tuesday", 0),
            ("Wednesday", 0),
            ("Thursday", 0),
            ("Friday", 3),
            ("Saturday", 2),
            ("Sunday", 0)
        ])
    );
    // `--static-ext` replaces the list: only .html and .txt are static now.
    let doc = json(&["--static-ext", "HTML,.txt"]);
    assert_eq!(
        (
            doc["pages"]["requests"].as_u64(),
            doc["static"]["requests"].as_u64()
        ),
        (Some(5), Some(1))
    );
    assert_eq!(
        keys(&doc["static"]["rows"], "url"),
        owned(&[("/index.html", 1)])
    );
    for bad in ["", "css,", "a/b"] {
        wd.cmd("aggregate-db")
            .args(["out.db", "--static-ext", bad])
            .assert()
            .code(2)
            .stderr(contains("--static-ext"));
    }
}

/// `--report rejects`: the rejected lines by reason with the first of each, the same from the
/// database and from the CSV's `--rejects` file, shown escaped, and asked for by name only.
#[test]
fn rejects_are_grouped_by_reason_with_a_sample_in_every_store() {
    let wd = Workdir::new();
    let good = |n: u32| {
        format!(
            "10.0.0.{n} - - [05/Jan/2024:10:00:{n:02} +0000] \"GET /{n} HTTP/1.1\" 200 1 \"-\" \"a\"\n"
        )
    };
    let log = [
        good(1),
        "\x1b[31mred\n".to_string(),
        "10.0.0.2 - - [05/Foo/2024:10:00:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"a\"\n".into(),
        good(3),
        "scanner garbage\n".into(),
        "10.0.0.4 - - [32/Jan/2024:10:00:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"a\"\n".into(),
        "10.0.0.5 - - [05/Jan/2024:10:00:00 +0000] \"GET / HTTP/1.1\" 2000 1 \"-\" \"a\"\n".into(),
        "more garbage\n".into(),
    ]
    .concat();
    wd.write("logs/access.log", log);
    wd.cmd("parse-to-csv")
        .args(["--output", "out.csv", "--rejects", "rejects.txt", "--quiet"])
        .args(["logs/access.log"])
        .assert()
        .success();
    wd.cmd("parse-to-db")
        .args(["--db", "out.db", "--quiet", "logs/access.log"])
        .assert()
        .success();
    for format in ["table", "json", "csv"] {
        let args = ["--report", "summary,rejects", "--format", format];
        let db = report(&wd, "aggregate-db", &args);
        let mut csv_args = vec!["--rejects", "rejects.txt"];
        csv_args.extend_from_slice(&args);
        assert_eq!(
            String::from_utf8_lossy(&db),
            String::from_utf8_lossy(&report(&wd, "aggregate-csv", &csv_args)),
            "{format}"
        );
    }
    let doc: serde_json::Value = serde_json::from_slice(&report(
        &wd,
        "aggregate-db",
        &["--report", "rejects", "--format", "json"],
    ))
    .unwrap();
    assert_eq!(doc["rejects"]["lines"], 6);
    let reasons: Vec<(String, u64, u64, String)> = (doc["rejects"]["reasons"].as_array())
        .unwrap()
        .iter()
        .map(|r| {
            let sample = &r["sample"];
            (
                r["reason"].as_str().unwrap().to_string(),
                r["lines"].as_u64().unwrap(),
                sample["line"].as_u64().unwrap(),
                sample["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let reason =
        |name: &str, lines, line, text: &str| (name.to_string(), lines, line, text.to_string());
    assert_eq!(
        reasons,
        [
            reason("format", 3, 2, "\x1b[31mred"),
            // A month that is no month and a day 32: two causes, one reason.
            reason(
                "timestamp",
                2,
                3,
                "10.0.0.2 - - [05/Foo/2024:10:00:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"a\""
            ),
            reason(
                "status",
                1,
                7,
                "10.0.0.5 - - [05/Jan/2024:10:00:00 +0000] \"GET / HTTP/1.1\" 2000 1 \"-\" \"a\""
            ),
        ]
    );
    // Not in the default reports (a CSV cannot answer it alone); asked of a CSV without the
    // file, it says what is missing.
    assert!(
        !String::from_utf8(report(&wd, "aggregate-db", &[]))
            .unwrap()
            .contains("Rejected")
    );
    wd.cmd("aggregate-csv")
        .args(["out.csv", "--report", "rejects"])
        .assert()
        .failure()
        .stderr(contains("--rejects FILE"));
    // A log with no entry at all still shows why.
    let table = String::from_utf8(report(
        &wd,
        "aggregate-db",
        &["--report", "rejects", "--status", "500"],
    ))
    .unwrap();
    assert!(
        table.contains("No log entries match the filters."),
        "{table}"
    );
    assert!(
        table.contains("Rejected lines (6): filters do not apply"),
        "{table}"
    );
    assert!(
        table.contains("logs/access.log:2: \\x1B[31m"),
        "escaped: {table}"
    );
    assert!(!table.contains('\x1b'), "escaped: {table}");
}

/// The Nikto log: one client, 5,780 "unique visitors" because every probe sends a new agent.
/// Grouped by browser, the scanner is one crawler with nearly all of them, and the summary
/// says how much of the traffic crawlers made.
#[test]
fn agents_grouped_by_browser_show_a_scanner_as_one_crawler() {
    let wd = Workdir::new();
    both_stores_of_real(&wd, &["phasinth-nikto-docker-apache_abnormal.log"]);
    let args = ["--report", "summary,browsers,os,devices", "--top", "0"];
    for format in ["table", "json", "csv"] {
        let mut all = args.to_vec();
        all.extend(["--format", format]);
        let db = report(&wd, "aggregate-db", &all);
        assert_eq!(db, report(&wd, "aggregate-csv", &all), "{format}");
        all.push("--scan");
        assert_eq!(db, report(&wd, "aggregate-db", &all), "{format} --scan");
    }
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let doc: serde_json::Value =
        serde_json::from_slice(&report(&wd, "aggregate-db", &all)).unwrap();
    let summary = &doc["summary"];
    assert_eq!(summary["unique_visitors"], 5780);
    assert_eq!(summary["client_ips"], 1);
    let browser = |name: &str| {
        (doc["browsers"].as_array().unwrap().iter())
            .find(|b| b["browser"] == name)
            .unwrap_or_else(|| panic!("{name} in {}", doc["browsers"]))
            .clone()
    };
    let nikto = browser("Nikto");
    assert_eq!(nikto["visitors"], 5776, "{nikto}");
    assert_eq!(doc["browsers"][0]["browser"], "Nikto", "the first by hits");
    // Every visitor is in exactly one browser, one OS and one device class.
    for section in ["browsers", "os", "devices"] {
        let sum = |key: &str| -> u64 {
            (doc[section].as_array().unwrap().iter())
                .map(|r| r[key].as_u64().unwrap())
                .sum()
        };
        assert_eq!(sum("visitors"), 5780, "{section}");
        assert_eq!(Some(sum("hits")), summary["requests"].as_u64(), "{section}");
    }
    let bots = (doc["devices"].as_array().unwrap().iter())
        .find(|d| d["device"] == "bot")
        .unwrap()
        .clone();
    assert_eq!(summary["crawler_requests"], bots["hits"]);
    assert_eq!(summary["crawler_visitors"], bots["visitors"]);
    assert!(
        summary["crawler_visitors"].as_u64().unwrap() >= 5776,
        "{summary}"
    );
}

/// The times report: exact percentiles (nearest rank) for few requests, the same from every
/// store and thread count, the slowest URLs by p95 and by total time, and a clear "none" for
/// a log whose format records no time.
#[test]
fn response_times_are_exact_and_the_same_from_every_store() {
    let wd = Workdir::new();
    let format = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_time"#;
    let line = |n: usize, url: &str, time: &str| {
        format!(
            "10.0.{}.{} - - [05/Jan/2024:10:{:02}:00 +0000] \"GET {url} HTTP/1.1\" 200 5 \"-\" \"a\" {time}\n",
            n / 250,
            n % 250,
            n % 60
        )
    };
    // /a: 1 ms to 100 ms; /b: 2 s once; /c: no time; /many: 1,000 requests, past what a URL
    // keeps exactly.
    let mut log: Vec<String> = (1..=100)
        .map(|i| line(i, "/a", &format!("0.{i:03}")))
        .collect();
    log.push(line(101, "/b", "2.000"));
    log.push(line(102, "/c", "-"));
    log.extend((0..1000).map(|i| line(200 + i, "/many", &format!("0.{:03}", 1 + i % 7))));
    wd.write("logs/access.log", log.concat());
    for (bin, out) in [("parse-to-csv", "--output"), ("parse-to-db", "--db")] {
        let store = if bin == "parse-to-csv" {
            "out.csv"
        } else {
            "out.db"
        };
        wd.cmd(bin)
            .args([
                "--log-format",
                format,
                out,
                store,
                "--quiet",
                "logs/access.log",
            ])
            .assert()
            .success();
    }
    for output in ["json", "table", "csv"] {
        let mut seen = Vec::new();
        for bin in ["aggregate-csv", "aggregate-db"] {
            for threads in ["1", "2"] {
                let args = [
                    "--report",
                    "times",
                    "--format",
                    output,
                    "--threads",
                    threads,
                ];
                seen.push(report(&wd, bin, &args));
            }
        }
        assert!(
            seen.windows(2).all(|w| w[0] == w[1]),
            "{output}: the stores differ"
        );
    }
    let json: serde_json::Value = serde_json::from_slice(&report(
        &wd,
        "aggregate-db",
        &["--report", "times", "--format", "json", "--url", "^/[ab]$"],
    ))
    .unwrap();
    let t = &json["times"];
    // 101 times: 1..=100 ms and 2 s. Nearest rank: p50 is the 51st, p95 the 96th, p99 the
    // 100th.
    assert_eq!(t["requests"], 101);
    let total = 5_050_000 + 2_000_000;
    assert_eq!(
        t["all"],
        serde_json::json!({
            "count": 101, "total_us": total, "mean_us": total / 101, "p50_us": 51_000,
            "p95_us": 96_000, "p99_us": 100_000, "max_us": 2_000_000, "exact": true,
        })
    );
    let urls = |key: &str| -> Vec<(String, u64)> {
        let field = if key == "slowest_by_p95" {
            "p95_us"
        } else {
            "total_us"
        };
        (t[key].as_array().unwrap().iter())
            .map(|r| {
                (
                    r["url"].as_str().unwrap().to_string(),
                    r[field].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        urls("slowest_by_p95"),
        [("/b".into(), 2_000_000), ("/a".into(), 95_000)]
    );
    assert_eq!(
        urls("by_total_time"),
        [("/a".into(), 5_050_000), ("/b".into(), 2_000_000)]
    );
    // /many is past the exact limit: its percentiles are within 1% of the truth (1 to 7 ms,
    // each a seventh of the requests: p50 is 4 ms, p95 and p99 7 ms).
    let json: serde_json::Value = serde_json::from_slice(&report(
        &wd,
        "aggregate-csv",
        &["--report", "times", "--format", "json", "--url", "^/many$"],
    ))
    .unwrap();
    let many = &json["times"]["all"];
    assert_eq!(
        (many["count"].as_u64(), many["exact"].as_bool()),
        (Some(1000), Some(false))
    );
    for (field, truth) in [
        ("p50_us", 4_000.0),
        ("p95_us", 7_000.0),
        ("p99_us", 7_000.0),
    ] {
        let got = many[field].as_f64().unwrap();
        assert!((got - truth).abs() / truth <= 0.01, "{field}: {got}");
    }
    assert_eq!(many["max_us"], 7_000);
    // The table says so, and a Combined log has no times to show.
    let table = String::from_utf8(report(&wd, "aggregate-db", &["--report", "times"])).unwrap();
    assert!(
        table.contains("Response times (1,101 of 1,102 requests)"),
        "{table}"
    );
    assert!(table.contains("within 1%"), "{table}");
    wd.write(
        "logs/combined.log",
        "1.2.3.4 - - [05/Jan/2024:10:00:00 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"a\"\n",
    );
    wd.cmd("parse-to-db")
        .args(["--db", "c.db", "--quiet", "logs/combined.log"])
        .assert()
        .success();
    wd.cmd("aggregate-db")
        .args(["c.db", "--report", "times"])
        .assert()
        .success()
        .stdout(contains("Response times (0 of 1 request)").and(contains("records no time")));
}

/// `--tz` moves days, hours, weekdays, visitors per day, the days of `--since`, and shown
/// times into the zone, the same from every store; `--visitors goaccess` leaves 4xx requests
/// out of the visitors only.
#[test]
fn a_time_zone_sets_days_hours_and_times_and_goaccess_visitors_leave_out_4xx() {
    let wd = Workdir::new();
    let line = |ip: &str, time: &str, url: &str, status: u16, agent: &str| {
        format!("{ip} - - [{time} +0000] \"GET {url} HTTP/1.1\" {status} 1 \"-\" \"{agent}\"\n")
    };
    let log = [
        line("2.2.2.2", "05/Jan/2024:10:00:00", "/c", 200, "B"),
        line("1.1.1.1", "05/Jan/2024:20:30:00", "/a", 200, "A"),
        line("1.1.1.1", "06/Jan/2024:01:00:00", "/b", 200, "A"),
        line(
            "3.3.3.3",
            "06/Jan/2024:01:30:00",
            "/wp-login.php",
            404,
            "scanner",
        ),
    ]
    .concat();
    wd.write("logs/access.log", log);
    both_stores(&wd, &["logs/access.log"]);
    let json = |args: &[&str]| both_json(&wd, args, "summary,days,hours,weekdays,traffic");
    let days = |doc: &serde_json::Value| -> Vec<(String, u64, u64)> {
        (doc["days"].as_array().unwrap().iter())
            .map(|d| {
                let field = |k: &str| d[k].as_u64().unwrap();
                (
                    d["day"].as_str().unwrap().into(),
                    field("hits"),
                    field("visitors"),
                )
            })
            .collect()
    };
    let busy = |doc: &serde_json::Value, key: &str, name: &str| -> Vec<String> {
        (doc[key].as_array().unwrap().iter())
            .filter(|r| r["hits"].as_u64() > Some(0))
            .map(|r| r[name].to_string().trim_matches('"').to_string())
            .collect()
    };
    let utc = json(&[]);
    assert_eq!(utc["time_zone"], "UTC");
    assert_eq!(
        days(&utc),
        [("2024-01-05".into(), 2, 2), ("2024-01-06".into(), 2, 2)]
    );
    assert_eq!(busy(&utc, "hours", "hour"), ["1", "10", "20"]);
    assert_eq!(utc["summary"]["first"], "2024-01-05T10:00:00Z");

    // At +07:00, 20:30 UTC is 03:30 the next day: 1.1.1.1 with agent A is one visitor.
    for zone in ["+07:00", "+0700", "Asia/Bangkok"] {
        let doc = json(&["--tz", zone]);
        let name = if zone == "Asia/Bangkok" {
            zone
        } else {
            "+07:00"
        };
        assert_eq!(doc["time_zone"], name);
        assert_eq!(
            days(&doc),
            [("2024-01-05".into(), 1, 1), ("2024-01-06".into(), 3, 2)],
            "{zone}"
        );
        assert_eq!(busy(&doc, "hours", "hour"), ["3", "8", "17"], "{zone}");
        assert_eq!(
            busy(&doc, "weekdays", "weekday"),
            ["Friday", "Saturday"],
            "{zone}"
        );
        assert_eq!(doc["summary"]["first"], "2024-01-05T17:00:00+07:00");
        assert_eq!(doc["summary"]["last"], "2024-01-06T08:30:00+07:00");
        assert_eq!(doc["summary"]["unique_visitors"], 3);
        let traffic = doc["traffic"]["rows"].as_array().unwrap();
        assert_eq!(traffic[0]["start"], "2024-01-05T17:00:00+07:00");
        // A day given to --since is the zone's.
        let since = json(&["--tz", zone, "--since", "2024-01-06"]);
        assert_eq!(since["summary"]["requests"], 3, "{zone}");
    }
    assert_eq!(json(&["--since", "2024-01-06"])["summary"]["requests"], 2);

    // The scanner's 404 makes no visitor as GoAccess counts them, but is still a request
    // and a client.
    let goaccess = json(&["--visitors", "goaccess"]);
    assert_eq!(utc["summary"]["unique_visitors"], 4);
    assert_eq!(goaccess["summary"]["unique_visitors"], 3);
    assert_eq!(goaccess["summary"]["client_ips"], 3);
    assert_eq!(goaccess["summary"]["requests"], 4);
    assert_eq!(
        days(&goaccess),
        [("2024-01-05".into(), 2, 2), ("2024-01-06".into(), 2, 1)]
    );

    // The table's header and headings name the zone; `local` is $TZ.
    let table = wd
        .cmd("aggregate-db")
        .args(["out.db", "--tz", "local", "--report", "days,hours"])
        .env("TZ", "Asia/Bangkok")
        .output()
        .unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.starts_with("log-pipeline report, times in Asia/Bangkok\n"),
        "{table}"
    );
    assert!(table.contains("Days (Asia/Bangkok)") && table.contains("(Asia/Bangkok)"));
    for bad in ["Mars/Olympus", "+25:00", "7"] {
        wd.cmd("aggregate-csv")
            .args(["out.csv", "--tz", bad])
            .assert()
            .code(2)
            .stderr(contains("--tz"));
    }
}

/// Without `--tz`, a report counts in the log's own offset when all its lines were written in
/// one (as GoAccess shows a log's own dates), else in UTC; the stores record the offsets with
/// the rows they cover, so every store says the same, and the header names the zone.
#[test]
fn without_tz_a_report_counts_in_the_logs_own_offset_when_its_lines_share_one() {
    let wd = Workdir::new();
    let line = |time: &str, url: &str| {
        format!("1.1.1.1 - - [{time}] \"GET {url} HTTP/1.1\" 200 1 \"-\" \"A\"\n")
    };
    // One day at +07:00 is two in UTC.
    wd.write(
        "logs/access.log",
        [
            line("05/Jan/2024:01:00:00 +0700", "/a"),
            line("05/Jan/2024:23:00:00 +0700", "/b"),
        ]
        .concat(),
    );
    both_stores(&wd, &["logs/access.log"]);
    let json = |args: &[&str]| both_json(&wd, args, "summary,days");
    let days = |doc: &serde_json::Value| -> Vec<String> {
        (doc["days"].as_array().unwrap().iter())
            .map(|d| d["day"].as_str().unwrap().to_owned())
            .collect()
    };
    let own = json(&[]);
    assert_eq!(own["time_zone"], "+07:00");
    assert_eq!(days(&own), ["2024-01-05"]);
    assert_eq!(own["summary"]["first"], "2024-01-05T01:00:00+07:00");
    // The day of --since is the log's too: 2024-01-05 starts at 17:00 UTC the day before.
    assert_eq!(json(&["--since", "2024-01-05"])["summary"]["requests"], 2);
    let utc = json(&["--tz", "UTC"]);
    assert_eq!(days(&utc), ["2024-01-04", "2024-01-05"]);
    let table = String::from_utf8(report(&wd, "aggregate-db", &["--report", "days"])).unwrap();
    assert!(
        table.starts_with("log-pipeline report, times in +07:00\n"),
        "{table}"
    );

    // A time written without an offset (Caddy's epoch seconds) says nothing of the zone.
    wd.write(
        "logs/caddy.log",
        r#"{"level":"info","ts":1704420000.5,"logger":"http.log.access","msg":"handled request","request":{"remote_ip":"9.9.9.9","proto":"HTTP/1.1","method":"GET","host":"x","uri":"/c","headers":{}},"status":200,"size":3}
"#,
    );
    for (bin, out) in [
        ("parse-to-csv", "--output=out.csv"),
        ("parse-to-db", "--db=out.db"),
    ] {
        wd.cmd(bin)
            .args([out, "--log-format", "caddy", "--quiet", "logs/caddy.log"])
            .assert()
            .success();
    }
    let with_epoch = json(&[]);
    assert_eq!(with_epoch["summary"]["requests"], 3);
    assert_eq!(with_epoch["time_zone"], "+07:00");

    // A line of another offset, taken by a later run: the lines share none any more.
    let mut log = String::from_utf8(wd.read("logs/access.log")).unwrap();
    log.push_str(&line("05/Jan/2024:12:00:00 -0500", "/c"));
    wd.write("logs/access.log", log);
    both_stores(&wd, &["logs/access.log"]);
    let mixed = json(&[]);
    assert_eq!(mixed["summary"]["requests"], 4);
    assert_eq!(mixed["time_zone"], "UTC");
    assert_eq!(days(&mixed), ["2024-01-04", "2024-01-05"]);
    assert_eq!(json(&["--tz", "+07:00"])["time_zone"], "+07:00");

    // A store that recorded no offsets (written by an earlier version, or by another
    // program) counts in UTC, also once this version has appended lines of one offset to it:
    // the earlier rows' offsets are not known.
    wd.write("logs/west.log", line("04/Jan/2024:23:00:00 -0700", "/w"));
    wd.write("logs/east.log", line("05/Jan/2024:23:00:00 +0700", "/e"));
    let zone_of = |bin: &str, store: &str| -> serde_json::Value {
        let out = wd
            .cmd(bin)
            .args([store, "--format", "json", "--report", "summary"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        serde_json::from_slice::<serde_json::Value>(&out).unwrap()["time_zone"].clone()
    };
    wd.cmd("parse-to-db")
        .args(["--db", "old.db", "--quiet", "logs/west.log"])
        .assert()
        .success();
    assert_eq!(zone_of("aggregate-db", "old.db"), "-07:00");
    // As schema 4 left it.
    let conn = rusqlite::Connection::open(wd.path("old.db")).unwrap();
    conn.execute_batch("DELETE FROM settings WHERE name = 'log_offsets'; PRAGMA user_version = 4")
        .unwrap();
    drop(conn);
    assert_eq!(zone_of("aggregate-db", "old.db"), "UTC");
    wd.cmd("parse-to-db")
        .args(["--db", "old.db", "--quiet", "logs/east.log"])
        .assert()
        .success();
    assert_eq!(zone_of("aggregate-db", "old.db"), "UTC");
    // A CSV: with a checkpoint file of the version before, and with none.
    for state in ["earlier", "none"] {
        let csv = format!("{state}.csv");
        let checkpoint = format!("{csv}.checkpoint");
        wd.cmd("parse-to-csv")
            .args(["-o", &csv, "--quiet", "logs/west.log"])
            .assert()
            .success();
        assert_eq!(zone_of("aggregate-csv", &csv), "-07:00");
        if state == "none" {
            std::fs::remove_file(wd.path(&checkpoint)).unwrap();
        } else {
            let mut doc: serde_json::Value = serde_json::from_slice(&wd.read(&checkpoint)).unwrap();
            doc["version"] = 2.into();
            doc.as_object_mut().unwrap().remove("log_offsets");
            wd.write(&checkpoint, serde_json::to_string(&doc).unwrap());
        }
        wd.cmd("parse-to-csv")
            .args(["-o", &csv, "--quiet", "logs/east.log"])
            .assert()
            .success();
        assert_eq!(zone_of("aggregate-csv", &csv), "UTC", "{state}");
    }

    // --since and --until are compared in the store's zone: at -07:00 the 4th ends at
    // 06:59:59 UTC on the 5th, after 05:00 UTC (in UTC the 4th would end before it).
    wd.cmd("parse-to-db")
        .args(["--db", "west.db", "--quiet", "logs/west.log"])
        .assert()
        .success();
    let out = wd
        .cmd("aggregate-db")
        .args([
            "west.db",
            "--since",
            "2024-01-05T05:00:00Z",
            "--until",
            "2024-01-04",
        ])
        .args(["--format", "json", "--report", "summary"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(doc["time_zone"], "-07:00");
    assert_eq!(doc["summary"]["requests"], 1);
}

#[test]
fn traffic_in_a_zone_that_changes_its_offset_has_no_hour_the_clocks_skip() {
    let wd = Workdir::new();
    // Every 10 minutes across Paris's spring change (2024-03-31, 02:00 local is skipped),
    // and three lines across its autumn change (02:00 to 02:59 local is shown twice).
    let line = |t: i64| {
        let t = chrono::DateTime::from_timestamp(t, 0).unwrap();
        format!(
            "10.0.0.1 - - [{}] \"GET / HTTP/1.1\" 200 5 \"-\" \"a\"\n",
            t.format("%d/%b/%Y:%H:%M:%S +0000")
        )
    };
    let spring: String = (0..62).map(|i| line(1_711_821_600 + i * 600)).collect();
    let autumn: String = [1_729_985_400, 1_729_990_000, 1_729_995_360]
        .map(line)
        .concat();
    for (log, hours) in [(spring, 11), (autumn, 3)] {
        wd.write("dst.log", &log);
        let _ = std::fs::remove_file(wd.path("out.csv"));
        let _ = std::fs::remove_file(wd.path("out.db"));
        both_stores(&wd, &["dst.log"]);
        let args = ["--tz", "Europe/Paris", "--bucket", "hour"];
        let doc = both_json(&wd, &args, "traffic");
        let starts: Vec<&str> = (doc["traffic"]["rows"].as_array().unwrap().iter())
            .map(|row| row["start"].as_str().unwrap())
            .collect();
        assert_eq!(starts.len(), hours, "{starts:?}");
        // Each row an hour after the one before, by the clock: none skipped, none made up.
        assert!(
            !starts.iter().any(|s| s.starts_with("2024-03-31T02:")),
            "{starts:?}"
        );
        let table = report(
            &wd,
            "aggregate-db",
            &[&args[..], &["--report", "traffic"]].concat(),
        );
        let table = String::from_utf8(table).unwrap();
        assert!(!table.contains("only the hours"), "{table}");
    }
}
