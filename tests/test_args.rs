//! What the tools refuse at their edge, and how they say it: a bad argument exits 2 with a
//! message naming its flag (never a panic's 101, never a report that silently means something
//! else).

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
