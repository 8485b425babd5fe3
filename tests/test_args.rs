//! What the tools refuse at their edge, and how they say it: a bad argument exits 2 with a
//! message naming its flag (never a panic's 101, never a report that silently means something
//! else), and a log line whose client would hold control bytes never reaches a store.

use std::time::Duration;

use crate::workdir::{Workdir, csv_rows, db_rows, numbered_lines};

/// Runs `bin` with `args`, which it must refuse as bad arguments: exit 2 (not a panic's 101,
/// not a run), nothing on stdout, and a message on stderr that names `flag`. Returns stderr.
fn refused(bin: &str, args: &[&str], flag: &str) -> String {
    let wd = Workdir::new();
    // The timeout ends a follower or a generator that took the argument and started running.
    let assert = wd
        .cmd(bin)
        .args(args)
        .timeout(Duration::from_secs(30))
        .assert()
        .code(2);
    let out = assert.get_output();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains(flag),
        "{bin} {args:?}: the message names {flag}:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{bin} {args:?}:\n{stderr}");
    assert!(out.stdout.is_empty(), "{bin} {args:?}: nothing on stdout");
    stderr
}

/// Every flag that takes seconds, with the arguments that keep its tool from running long
/// should the value be taken after all.
const SECONDS_FLAGS: &[(&str, &str, &[&str])] = &[
    ("parse-to-csv", "--settle", &[]),
    ("parse-to-db", "--settle", &[]),
    ("parse-to-db", "--busy-timeout", &[]),
    ("continuous-parse", "--poll-interval", &["--once"]),
    ("continuous-parse", "--linger", &["--once"]),
    ("continuous-parse", "--status-interval", &["--once"]),
    ("continuous-parse", "--busy-timeout", &["--once"]),
    ("generate-logs", "--interval", &["--count", "1"]),
];

#[test]
fn seconds_flags_refuse_what_no_duration_holds() {
    for &(bin, flag, rest) in SECONDS_FLAGS {
        for value in ["1e20", "1e300", "inf", "-1", "-0.5", "nan", "soon"] {
            // `--flag=value` and `--flag value`: a negative number is a value, not a flag.
            let joined = format!("{flag}={value}");
            for arg in [&[joined.as_str()][..], &[flag, value]] {
                let args: Vec<&str> = arg.iter().chain(rest).copied().collect();
                let stderr = refused(bin, &args, flag);
                assert!(
                    stderr.contains(&format!("invalid value '{value}' for '{flag} <")),
                    "{bin} {arg:?}: clap names the value and the flag:\n{stderr}"
                );
                let why = match value {
                    "1e20" | "1e300" | "inf" if flag == "--busy-timeout" => "(24 days)",
                    "1e20" | "1e300" | "inf" => "(10 years)",
                    _ => "is not a number of seconds >= 0",
                };
                assert!(stderr.contains(why), "{bin} {arg:?}: says {why}:\n{stderr}");
            }
        }
    }
}

#[test]
fn seconds_up_to_the_bound_are_taken() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 3));
    wd.cmd("parse-to-csv")
        .args(["--settle", "315360000", "--quiet"])
        .assert()
        .success();
    wd.cmd("parse-to-db")
        .args([
            "--settle",
            "0.5",
            "--busy-timeout",
            "2147483.647",
            "--quiet",
        ])
        .assert()
        .success();
    wd.cmd("continuous-parse")
        .args(["--once", "--quiet", "--db", "follow.db"])
        .args(["--poll-interval", "315360000", "--linger", "0"])
        .args(["--status-interval", "0", "--busy-timeout", "0.001"])
        .timeout(Duration::from_secs(30))
        .assert()
        .success();
    assert_eq!(csv_rows(&wd.path("parsed_logs.csv")).len(), 3);
    assert_eq!(db_rows(&wd.path("logs.db")).len(), 3);
    assert_eq!(db_rows(&wd.path("follow.db")).len(), 3);
}

#[test]
fn a_line_limit_of_zero_bytes_is_refused() {
    for (bin, rest) in [
        ("parse-to-csv", &[][..]),
        ("parse-to-db", &[][..]),
        ("continuous-parse", &["--once"][..]),
    ] {
        for value in ["0", "-1"] {
            let args: Vec<&str> = ["--max-line-bytes", value]
                .iter()
                .chain(rest)
                .copied()
                .collect();
            let stderr = refused(bin, &args, "--max-line-bytes");
            assert!(
                stderr.contains(&format!("'{value}' is not a number of bytes >= 1")),
                "{bin} {value}:\n{stderr}"
            );
        }
    }
}

#[test]
fn a_status_http_does_not_define_is_refused() {
    for bin in ["aggregate-csv", "aggregate-db"] {
        for value in ["999", "9xx", "600", "6xx", "099", "0xx", "000", "-1"] {
            let stderr = refused(bin, &["--status", value], "--status");
            assert!(
                stderr.contains(&format!(
                    "'{value}' is not a status code from 100 to 599 (404) or a class from 1xx to 5xx"
                )),
                "{bin} --status {value}:\n{stderr}"
            );
        }
    }
}

#[test]
fn a_span_that_is_not_digits_and_a_unit_is_refused() {
    for bin in ["aggregate-csv", "aggregate-db"] {
        for flag in ["--since", "--until"] {
            // Was read as two hours in the future, and printed a report of nothing. Without `=`,
            // clap took `-2` for an unknown flag and did not say which option it was for.
            let joined = format!("{flag}=-2h");
            for args in [&[joined.as_str()][..], &[flag, "-2h"]] {
                let stderr = refused(bin, args, flag);
                assert!(
                    stderr.contains(&format!("{flag}: '-2h' is a negative span")),
                    "{bin} {args:?}:\n{stderr}"
                );
            }
            for value in ["+2h", "1.5h", "2y", "2é"] {
                let stderr = refused(bin, &[&format!("{flag}={value}")], flag);
                assert!(
                    stderr.contains(&format!("{flag}: '{value}' is neither an RFC 3339 time")),
                    "{bin} {flag}={value}:\n{stderr}"
                );
            }
            let stderr = refused(bin, &[&format!("{flag}=99999999999w")], flag);
            assert!(stderr.contains("reaches too far back"), "{bin}:\n{stderr}");
        }
    }
}

/// The filters of the reports refuse a value they cannot read, naming the option and saying
/// why, rather than print a report of nothing as if nothing had matched.
#[test]
fn filter_values_that_cannot_be_read_are_refused() {
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["--status", "99"],
            "--status",
            "'99' is not a status code from 100 to 599",
        ),
        (
            &["--status", "404,99"],
            "--status",
            "'99' is not a status code",
        ),
        (&["--status=!600"], "--status", "'600' is not a status code"),
        (
            &["--status", "404,"],
            "--status",
            "'404,' has an empty value",
        ),
        (&["--status", "!"], "--status", "'!' has an empty value"),
        (
            &["--ip", "10.0.0.256"],
            "--ip",
            "'10.0.0.256' is not an IP address",
        ),
        (
            &["--ip", "10.0.0.0/33"],
            "--ip",
            "'10.0.0.0/33' is not a network: its prefix is not a length of 0 to 32 bits",
        ),
        (
            &["--ip", "10.0.0.1,2001:db8::/129"],
            "--ip",
            "0 to 128 bits",
        ),
        (
            &["--ip", "host.example/24"],
            "--ip",
            "'host.example' is not an IP address",
        ),
        (
            &["--exclude-ip", "10.0.0.256/8"],
            "--exclude-ip",
            "is not an IP address",
        ),
        (
            &["--exclude-ip", "!10.0.0.1"],
            "--exclude-ip",
            "'!10.0.0.1': values given here",
        ),
        (
            &["--since", "2024-13-01"],
            "--since",
            "--since: '2024-13-01' is not a day of the calendar (YYYY-MM-DD)",
        ),
        (
            &["--until", "2023-02-29"],
            "--until",
            "is not a day of the calendar",
        ),
        (
            &["--until", "tomorrow"],
            "--until",
            "'tomorrow' is neither an RFC 3339 time",
        ),
        (
            &["--since", "today", "--until", "yesterday"],
            "--since",
            "is later than --until",
        ),
        (
            &["--method", ""],
            "--method",
            "an empty value filters nothing",
        ),
        (
            &["--method", "GET POST"],
            "--method",
            "'GET POST' is not a method",
        ),
        (&["--method", "GET,,POST"], "--method", "has an empty value"),
        (&["--url", "("], "--url", "regex parse error"),
        (&["--agent", "!["], "--agent", "regex parse error"),
        (
            &["--exclude-url", "!x"],
            "--exclude-url",
            "values given here are left out",
        ),
    ];
    for bin in ["aggregate-csv", "aggregate-db"] {
        for &(args, flag, why) in cases {
            let stderr = refused(bin, args, flag);
            assert!(
                stderr.contains(why),
                "{bin} {args:?}: says {why}:\n{stderr}"
            );
        }
    }
}

/// A log as a crash leaves it: NULs where the file grew before its data reached the disk, the
/// server's next line right after them, then a line whose client holds an escape byte.
fn crashed_log() -> Vec<u8> {
    let line = |ip: &str, url: &str| {
        format!(
            "{ip} - - [01/Jan/2024:00:00:00 +0000] \"GET {url} HTTP/1.1\" 200 5 \"-\" \"test\"\n"
        )
    };
    let mut log = vec![0u8; 200];
    log.extend_from_slice(line("10.1.2.3", "/after-crash").as_bytes());
    log.extend_from_slice(line("10.0.0.\x1b9", "/escape").as_bytes());
    log.extend_from_slice(line("10.0.0.5", "/plain").as_bytes());
    log
}

#[test]
fn nul_padding_is_skipped_and_a_control_byte_in_the_client_is_rejected() {
    for (bin, out, report) in [
        ("parse-to-csv", ["--output", "out.csv"], "aggregate-csv"),
        ("parse-to-db", ["--db", "out.db"], "aggregate-db"),
    ] {
        let wd = Workdir::new();
        wd.write("logs/access.log", crashed_log());
        let run = wd
            .cmd(bin)
            .args(out)
            .args(["--json", "--rejects", "rejects.txt"])
            .assert()
            .success();
        let summary: serde_json::Value = serde_json::from_slice(&run.get_output().stdout).unwrap();
        assert_eq!(summary["read"], 3, "{bin}: {summary}");
        assert_eq!(summary["written"], 2, "{bin}: {summary}");
        assert_eq!(summary["rejected"], 1, "{bin}: {summary}");
        assert_eq!(
            summary["rejected_by_reason"],
            serde_json::json!({"client": 1}),
            "{bin}: {summary}"
        );
        assert_eq!(summary["nul_padded"], 1, "{bin}: {summary}");

        let rows = if bin == "parse-to-csv" {
            csv_rows(&wd.path("out.csv"))
        } else {
            db_rows(&wd.path("out.db"))
        };
        let stored: Vec<(&str, &str)> = rows.iter().map(|r| (&r[0][..], &r[5][..])).collect();
        assert_eq!(
            stored,
            [("10.1.2.3", "/after-crash"), ("10.0.0.5", "/plain")],
            "{bin}: the padded line is kept with a clean client"
        );
        let rejects = wd.read("rejects.txt");
        assert!(
            rejects.ends_with(b"access.log:2: client: 10.0.0.\x1b9 - - [01/Jan/2024:00:00:00 +0000] \"GET /escape HTTP/1.1\" 200 5 \"-\" \"test\"\n"),
            "{bin}: {}",
            String::from_utf8_lossy(&rejects)
        );

        // The client can be asked for by the address the server wrote.
        let found = wd
            .cmd(report)
            .arg(out[1])
            .args(["--ip", "10.1.2.3", "--format", "json"])
            .args(["--report", "summary,clients"])
            .assert()
            .success();
        let doc: serde_json::Value = serde_json::from_slice(&found.get_output().stdout).unwrap();
        assert_eq!(doc["summary"]["requests"], 1, "{report}: {doc}");
        assert_eq!(doc["clients"][0]["ip"], "10.1.2.3", "{report}: {doc}");
    }
}

#[test]
fn the_summary_line_names_nul_padding_only_when_there_was_some() {
    for (bin, out) in [
        ("parse-to-csv", ["--output", "out.csv"]),
        ("parse-to-db", ["--db", "out.db"]),
    ] {
        let wd = Workdir::new();
        let run = wd
            .cmd(bin)
            .args(out)
            .arg("-")
            .write_stdin(crashed_log())
            .assert()
            .success();
        let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
        assert!(
            stderr.contains(
                "read 3 lines, wrote 2, rejected 1 (client 1), skipped NUL padding before 1 line in "
            ),
            "{bin}: {stderr}"
        );

        let clean = wd
            .cmd(bin)
            .args(out)
            .arg("-")
            .write_stdin(numbered_lines(0, 3))
            .assert()
            .success();
        let stderr = String::from_utf8_lossy(&clean.get_output().stderr).into_owned();
        assert!(
            stderr.contains("read 3 lines, wrote 3, rejected 0 in ") && !stderr.contains("NUL"),
            "{bin}: {stderr}"
        );
    }
}
