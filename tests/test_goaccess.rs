//! Agreement with GoAccess 1.7 (`apt-get install goaccess`), which our users compare us with:
//! with `--visitors goaccess` (and no `--tz`: a report counts in the log's own offset by
//! default, as GoAccess does), the requests, unique visitors (in all and per day), status
//! codes and 404s are GoAccess's on every real log that both read alike. Without GoAccess the test says SKIPPED, except under CI, which installs it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::workdir::{Workdir, programs_or_skip, real_logs_dir};

/// GoAccess's JSON report of `log` in the first of its predefined formats that reads a line,
/// with host names allowed as clients (NASA's are names).
fn goaccess_report(goaccess: &Path, wd: &Workdir, log: &Path) -> Option<serde_json::Value> {
    let out = wd.path("goaccess.json");
    ["COMBINED", "COMMON"].into_iter().find_map(|format| {
        let _ = std::fs::remove_file(&out);
        let status = Command::new(goaccess)
            .arg(log)
            .arg(format!("--log-format={format}"))
            .args(["--no-ip-validation", "--no-global-config", "-o"])
            .arg(&out)
            .output()
            .expect("goaccess runs");
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out).ok()?).expect("GoAccess writes JSON");
        (status.status.success() && doc["general"]["valid_requests"].as_u64() > Some(0))
            .then_some(doc)
    })
}

/// The offset of the log's first timestamp, `+07:00`: each real log has one offset.
fn offset_of(log: &Path) -> String {
    let text = std::fs::read(log).unwrap();
    let first = String::from_utf8_lossy(text.split(|&b| b == b'\n').next().unwrap()).into_owned();
    let at = first.find("] \"").expect("a Common log line");
    let zone = &first[at - 5..at];
    format!("{}:{}", &zone[..3], &zone[3..])
}

#[test]
fn reports_agree_with_goaccess_on_the_real_logs_both_read_alike() {
    let Some([goaccess]) = programs_or_skip(&["goaccess"], "apt-get install goaccess")
        .map(|found| <[PathBuf; 1]>::try_from(found).unwrap())
    else {
        return;
    };
    let wd = Workdir::new();
    let mut compared = Vec::new();
    let mut differ = Vec::new();
    let mut logs: Vec<PathBuf> = std::fs::read_dir(real_logs_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log" || e == "txt"))
        .collect();
    logs.sort();
    for log in logs {
        let name = log.file_name().unwrap().to_string_lossy().into_owned();
        let db = format!("{name}.db");
        wd.cmd("parse-to-db")
            .args(["--db", &db, "--quiet"])
            .arg(&log)
            .assert()
            .success();
        let Some(theirs) = goaccess_report(&goaccess, &wd, &log) else {
            differ.push(format!("{name}: GoAccess reads no line"));
            continue;
        };
        let out = wd
            .cmd("aggregate-db")
            .arg(&db)
            .args(["--visitors", "goaccess"])
            .args([
                "--report",
                "summary,status,not-found,days",
                "--format",
                "json",
                "-n",
                "0",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ours: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let own = match offset_of(&log) {
            zero if zero == "+00:00" || zero == "-00:00" => "UTC".to_owned(),
            offset => offset,
        };
        assert_eq!(
            ours["time_zone"],
            own.as_str(),
            "{name}: the log's own offset"
        );
        let general = &theirs["general"];
        let requests = ours["summary"]["requests"].as_u64().unwrap();
        if Some(requests) != general["valid_requests"].as_u64() {
            differ.push(format!(
                "{name}: {requests} requests here, {} valid and {} failed in GoAccess",
                general["valid_requests"], general["failed_requests"]
            ));
            continue;
        }
        assert_eq!(
            ours["summary"]["unique_visitors"], general["unique_visitors"],
            "{name}: unique visitors"
        );
        // Status codes: GoAccess groups them by class, each item named `404 - Not Found...`.
        let mut their_codes: Vec<(u64, u64)> = (theirs["status_codes"]["data"].as_array())
            .unwrap()
            .iter()
            .flat_map(|class| class["items"].as_array().unwrap().iter())
            .map(|item| {
                let code = item["data"].as_str().unwrap()[..3].parse().unwrap();
                (code, item["hits"]["count"].as_u64().unwrap())
            })
            .collect();
        their_codes.sort_unstable();
        let our_codes: Vec<(u64, u64)> = (ours["status"]["codes"].as_array().unwrap().iter())
            .map(|c| (c["status"].as_u64().unwrap(), c["hits"].as_u64().unwrap()))
            .collect();
        assert_eq!(our_codes, their_codes, "{name}: status codes");
        // Requests answered 404 (GoAccess's 404 panel counts them, keyed by method, URL and
        // protocol, so its distinct URLs may be more: see the README).
        let our_404: u64 = (ours["not_found"].as_array().unwrap().iter())
            .map(|r| r["hits"].as_u64().unwrap())
            .sum();
        let their_404 = match theirs["not_found"]["data"].as_array() {
            Some(rows) if !rows.is_empty() => {
                theirs["not_found"]["metadata"]["hits"]["total"]["value"]
                    .as_u64()
                    .unwrap()
            }
            _ => 0,
        };
        assert_eq!(our_404, their_404, "{name}: requests answered 404");
        // Visitors per day: GoAccess's days are the log's own dates, `20240105`.
        let mut their_days: Vec<(String, u64)> = (theirs["visitors"]["data"].as_array())
            .unwrap()
            .iter()
            .map(|d| {
                let day = d["data"].as_str().unwrap();
                let day = format!("{}-{}-{}", &day[..4], &day[4..6], &day[6..]);
                (day, d["visitors"]["count"].as_u64().unwrap())
            })
            .collect();
        their_days.sort();
        let our_days: Vec<(String, u64)> = (ours["days"].as_array().unwrap().iter())
            .filter(|d| d["hits"].as_u64() > Some(0))
            .map(|d| {
                (
                    d["day"].as_str().unwrap().to_string(),
                    d["visitors"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(our_days, their_days, "{name}: visitors per day");
        compared.push(name);
    }
    eprintln!(
        "agree with GoAccess on {}; not compared: {}",
        compared.join(", "),
        differ.join("; ")
    );
    // The logs the README names as read alike: a change that loses one is a regression.
    for name in [
        "agungbahtiarr-webserver_attack_access.log",
        "lnav_zanbil-shop_access_log.log",
        "nasa-aug95-first20k_dbai-labs.log",
        "nielsbasjes-logparser_hackers-access.log",
        "phasinth-almhuette-raith_access.log",
        "stanis-apachestats_access.log",
        "usask-1995_public_notebooks.log",
    ] {
        assert!(
            compared.iter().any(|c| c == name),
            "{name} was not compared: {differ:?}"
        );
    }
}
