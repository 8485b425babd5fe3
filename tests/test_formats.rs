//! `--log-format` and `--client` end to end: the real logs of other formats in
//! ../shared/data/formats/ (see SOURCES.md there) through the real binaries into both stores.

use predicates::str::contains;

use crate::workdir::{Workdir, csv_rows, db_rows, lines, numbered_lines};

/// A log of ../shared/data/formats/.
fn formats_log(name: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/formats")
        .join(name);
    assert!(
        path.exists(),
        "the format test data is expected at {}",
        path.display()
    );
    path
}

const VHOSTS: &str = "dmjacas-logs_other_vhosts_access.log";
const INGRESS: &str = "kyawzinmyolwin-cohort5website_ingress-nginx-controller.log";
/// ingress-nginx's documented default `upstreaminfo` format (SOURCES.md).
const UPSTREAMINFO: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_length $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length $upstream_response_time $upstream_status $req_id"#;

/// Debian's vhost_combined log: every line read, the virtual host and port stored, the same
/// rows in the CSV and the database.
#[test]
fn vcombined_lines_keep_their_virtual_host_and_port_in_both_stores() {
    let wd = Workdir::new();
    let log = formats_log(VHOSTS);
    let count = lines(&std::fs::read(&log).unwrap()).len();
    assert!((1000..1_000_000).contains(&count));
    for (tool, out) in [("parse-to-db", "--db"), ("parse-to-csv", "--output")] {
        let target = if tool == "parse-to-db" {
            "v.db"
        } else {
            "v.csv"
        };
        wd.cmd(tool)
            .arg(&log)
            .args(["--log-format", "vcombined", out, target])
            .assert()
            .success()
            .stderr(contains(format!(
                "wrote {},{:03}",
                count / 1000,
                count % 1000
            )));
    }
    let (db, csv) = (db_rows(&wd.path("v.db")), csv_rows(&wd.path("v.csv")));
    assert_eq!(db, csv);
    assert_eq!(db.len(), count);
    // neutralbank.app:443 200.25.27.118 - - [06/Aug/2024:00:01:35 +0000] "GET / HTTP/1.1" 200 6383 ...
    let first = &db[0];
    assert_eq!(
        (first[0].as_str(), first[5].as_str(), first[7].as_str()),
        ("200.25.27.118", "/", "200")
    );
    assert_eq!(
        (first[11].as_str(), first[12].as_str()),
        ("neutralbank.app", "443")
    );
    assert!(db.iter().all(|r| !r[11].is_empty() && !r[12].is_empty()));
}

/// An nginx definition: access lines read with their response and upstream times (in
/// microseconds), the controller's own lines rejected as not access lines.
#[test]
fn an_nginx_definition_reads_times_and_rejects_the_lines_that_are_not_requests() {
    let wd = Workdir::new();
    wd.cmd("parse-to-db")
        .arg(formats_log(INGRESS))
        .args(["--log-format", UPSTREAMINFO, "--db", "i.db"])
        .assert()
        .success()
        .stderr(contains("wrote 102, rejected 82 (format 82)"));
    let rows = db_rows(&wd.path("i.db"));
    // ... "GET /favicon.ico HTTP/1.1" 404 555 ... 809 0.005 [co5website-svc-main-80] [] 172.169.87.216:80 555 0.005 404 e3196d...
    let favicon = rows
        .iter()
        .find(|r| r[5] == "/favicon.ico" && r[7] == "404")
        .unwrap();
    assert_eq!(
        (favicon[13].as_str(), favicon[14].as_str()),
        ("5000", "5000")
    );
    // The TLS handshakes sent to the HTTP port have no upstream: `-`, absent.
    assert!(
        rows.iter()
            .any(|r| r[7] == "400" && r[14].is_empty() && !r[13].is_empty())
    );
}

/// `auto` names what it chose, picks vcombined for a vhost log and combined for a Combined
/// one, and refuses a file whose lines no one format reads.
#[test]
fn auto_says_what_it_chose_and_refuses_a_mixed_file() {
    let wd = Workdir::new();
    wd.cmd("parse-to-csv")
        .arg(formats_log(VHOSTS))
        .args(["--log-format", "auto", "-o", "v.csv"])
        .assert()
        .success()
        .stderr(contains("log format: vcombined (auto"));
    wd.write("logs/access.log", numbered_lines(0, 5));
    wd.cmd("parse-to-csv")
        .args(["--log-format", "auto", "-o", "c.csv"])
        .assert()
        .success()
        .stderr(contains("log format: combined (auto"));
    let vhost_lines = std::fs::read(formats_log(VHOSTS)).unwrap();
    let mut mixed = numbered_lines(0, 5).into_bytes();
    mixed.extend_from_slice(
        &vhost_lines[..vhost_lines.iter().position(|&b| b == b'\n').unwrap() + 1],
    );
    wd.write("mixed.log", mixed);
    wd.cmd("parse-to-csv")
        .args(["mixed.log", "--log-format", "auto", "-o", "m.csv"])
        .assert()
        .code(2)
        .stderr(contains("--log-format auto"))
        .stderr(contains("several formats"));
    assert!(
        !wd.path("m.csv").exists(),
        "nothing is created when the format is refused"
    );
}

/// A source is never read in two formats into one store: the second run is refused and the
/// store is left as it was.
#[test]
fn another_format_on_a_source_already_read_is_refused() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 3));
    wd.cmd("parse-to-db").arg("--quiet").assert().success();
    wd.cmd("parse-to-csv").arg("--quiet").assert().success();
    wd.append("logs/access.log", numbered_lines(3, 5));
    for tool in ["parse-to-db", "parse-to-csv"] {
        wd.cmd(tool)
            .args(["--log-format", "common"])
            .assert()
            .code(2)
            .stderr(contains("as `combined`, and this run asks for `common`"));
    }
    assert_eq!(db_rows(&wd.path("logs.db")).len(), 3);
    assert_eq!(csv_rows(&wd.path("parsed_logs.csv")).len(), 3);
    // The same format goes on where it stopped.
    wd.cmd("parse-to-db")
        .args(["--log-format", "combined", "--quiet"])
        .assert()
        .success();
    assert_eq!(db_rows(&wd.path("logs.db")).len(), 5);
}

/// A definition that cannot be used is refused before anything is created, with where and why.
#[test]
fn an_unusable_definition_is_refused_with_its_position() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 3));
    wd.cmd("parse-to-db")
        .args(["--log-format", "%h %l %u %{Referer"])
        .assert()
        .code(2)
        .stderr(contains("at byte 9"))
        .stderr(contains("not closed"));
    assert!(!wd.path("logs.db").exists());
}

/// `--client forwarded` takes the first address of X-Forwarded-For; a line without one keeps
/// the address that connected.
#[test]
fn the_forwarded_client_is_the_first_address_of_x_forwarded_for() {
    let wd = Workdir::new();
    let format = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for""#;
    wd.write(
        "logs/access.log",
        concat!(
            "10.0.0.1 - - [01/Jan/2024:00:00:00 +0000] \"GET /a HTTP/1.1\" 200 5 \"-\" \"ua\" \"203.0.113.7, 10.0.0.9\"\n",
            "10.0.0.1 - - [01/Jan/2024:00:00:01 +0000] \"GET /b HTTP/1.1\" 200 5 \"-\" \"ua\" \"-\"\n",
            // A header no client address could be (the client writes it): a control byte.
            "10.0.0.2 - - [01/Jan/2024:00:00:02 +0000] \"GET /c HTTP/1.1\" 200 5 \"-\" \"ua\" \"9.9.9.9\\x01, 10.0.0.9\"\n",
        ),
    );
    wd.cmd("parse-to-db")
        .args(["--log-format", format, "--client", "forwarded", "--quiet"])
        .assert()
        .success();
    let rows = db_rows(&wd.path("logs.db"));
    let clients: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[0].as_str(), r[15].as_str()))
        .collect();
    assert_eq!(
        clients,
        [
            ("203.0.113.7", "203.0.113.7, 10.0.0.9"),
            ("10.0.0.1", ""),
            ("10.0.0.2", "9.9.9.9\u{1}, 10.0.0.9")
        ]
    );
    // Without the field in the format, the flag warns that it changes nothing.
    wd.cmd("parse-to-db")
        .args(["--db", "other.db", "--client", "forwarded", "--quiet"])
        .assert()
        .success()
        .stderr(contains("has no X-Forwarded-For field"));
}

/// A CSV of an earlier version has no columns for the fields of other formats: such a format
/// is refused for it, and the file is left as it is.
#[test]
fn a_format_with_more_fields_is_refused_for_a_csv_of_an_earlier_version() {
    let wd = Workdir::new();
    let old = "ip,ident,user,timestamp,method,url,protocol,status,bytes,referrer,user_agent\n";
    wd.write("parsed_logs.csv", old);
    wd.cmd("parse-to-csv")
        .arg(formats_log(VHOSTS))
        .args(["--log-format", "vcombined"])
        .assert()
        .code(2)
        .stderr(contains("only the 11 columns of an earlier log-pipeline"));
    assert_eq!(wd.read("parsed_logs.csv"), old.as_bytes());
}

/// The format is checked for whatever record a run reads on under, not only the log's own:
/// here a rotated file given by its own name, which the store knows as the log's rotated file.
#[test]
fn another_format_is_refused_for_a_rotated_file_read_on_under_its_record() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 3));
    wd.cmd("parse-to-db").arg("--quiet").assert().success();
    std::fs::rename(wd.path("logs/access.log"), wd.path("logs/access.log.1")).unwrap();
    wd.write("logs/access.log", numbered_lines(3, 4));
    wd.cmd("parse-to-db").arg("--quiet").assert().success();
    // A writer still holding the old file.
    wd.append("logs/access.log.1", numbered_lines(4, 6));
    wd.cmd("parse-to-db")
        .args(["logs/access.log.1", "--log-format", "common"])
        .assert()
        .code(2)
        .stderr(contains("as `combined`, and this run asks for `common`"));
    assert_eq!(db_rows(&wd.path("logs.db")).len(), 4);
    wd.cmd("parse-to-db")
        .args(["logs/access.log.1", "--quiet"])
        .assert()
        .success();
    assert_eq!(db_rows(&wd.path("logs.db")).len(), 6);
}

/// IIS's W3C extended logs: each line is read by the last `#Fields:` line before it, also
/// when a run resumes in the middle of a block (the header is then found before the
/// checkpoint), and when the rest of a block is read from the log's compressed rotation.
#[test]
fn w3c_lines_follow_the_fields_line_before_them_across_runs_and_rotation() {
    let wd = Workdir::new();
    let a = "#Software: Microsoft Internet Information Services 10.0\r\n\
             #Fields: date time c-ip cs-method cs-uri-stem sc-status time-taken\r\n";
    let line_a = |n: u32| format!("2024-01-01 00:00:{n:02} 10.0.0.{n} GET /a/{n} 200 {n}\r\n");
    let b = "#Fields: date time cs-uri-stem c-ip sc-status cs(User-Agent)\r\n";
    let line_b = |n: u32| format!("2024-01-01 00:01:{n:02} /b/{n} 10.0.1.{n} 404 curl/8.0+(x)\r\n");
    let run = |expect: &str| {
        wd.cmd("parse-to-db")
            .args(["--log-format", "w3c"])
            .assert()
            .success()
            .stderr(contains(expect.to_string()));
    };
    wd.write("logs/access.log", format!("{a}{}{}", line_a(1), line_a(2)));
    run("wrote 2, rejected 2 (directive 2)");
    wd.append("logs/access.log", line_a(3));
    run("wrote 1, rejected 0 ");
    wd.append("logs/access.log", format!("{}{b}{}", line_a(4), line_b(5)));
    // logrotate with compress: the rest of the old log is read from its .gz.
    let old = wd.read("logs/access.log");
    std::fs::remove_file(wd.path("logs/access.log")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &old).unwrap();
    wd.write("logs/access.log.1.gz", gz.finish().unwrap());
    wd.write("logs/access.log", format!("{b}{}", line_b(6)));
    run("wrote 3, rejected 2 (directive 2)");
    let rows = db_rows(&wd.path("logs.db"));
    let got: Vec<[&str; 5]> = rows
        .iter()
        .map(|r| [&*r[0], &*r[5], &*r[7], &*r[10], &*r[13]])
        .collect();
    assert_eq!(
        got,
        [
            ["10.0.0.1", "/a/1", "200", "", "1000"],
            ["10.0.0.2", "/a/2", "200", "", "2000"],
            ["10.0.0.3", "/a/3", "200", "", "3000"],
            ["10.0.0.4", "/a/4", "200", "", "4000"],
            ["10.0.1.5", "/b/5", "404", "curl/8.0 (x)", ""],
            ["10.0.1.6", "/b/6", "404", "curl/8.0 (x)", ""],
        ]
    );
}

/// The named formats of load balancers and proxies through parse-to-db: HAProxy's syslog
/// lines with HAProxy's own date and timers, its startup and TLS-failure lines rejected;
/// an ELB log chosen by `auto`, its absolute URLs stored as vhost, port and path.
#[test]
fn vendor_formats_store_their_times_hosts_and_timers() {
    let wd = Workdir::new();
    wd.cmd("parse-to-db")
        .arg(formats_log("tstack-lnav_logfile_haproxy.0"))
        .args(["--log-format", "haproxy", "--db", "h.db"])
        .assert()
        .success()
        .stderr(contains("wrote 13, rejected 4 (format 4)"));
    let rows = db_rows(&wd.path("h.db"));
    // Feb 25 16:19:49 ... haproxy[7]: 141.35.244.171:53332 [25/Feb/2019:16:19:48.143] ...
    //   0/0/7/1457/1487 200 11394 ... "GET /admin/colt/administration?survey=130... HTTP/1.1"
    let first = &rows[0];
    assert_eq!(
        (
            first[0].as_str(),
            first[3].as_str(),
            first[4].as_str(),
            first[7].as_str(),
            first[8].as_str()
        ),
        (
            "141.35.244.171",
            "2019-02-25T16:19:48Z",
            "GET",
            "200",
            "11394"
        )
    );
    assert!(first[5].starts_with("/admin/colt/administration?survey=130"));
    assert_eq!(
        (first[13].as_str(), first[14].as_str()),
        ("1487000", "1457000")
    );

    let elb = formats_log("iamon3-java_examples_elb.log");
    wd.cmd("parse-to-db")
        .arg(&elb)
        .args(["--log-format", "auto", "--db", "e.db"])
        .assert()
        .success()
        .stderr(contains("log format: elb (auto"))
        .stderr(contains("wrote 6,301"));
    let rows = db_rows(&wd.path("e.db"));
    assert_eq!(rows.len(), 6301);
    // 2018-06-09T07:40:37.627870Z elb123 23.57.74.53:43877 172.31.31.224:80 0.000054
    //   0.135172 0.000082 200 200 74 83 "POST http://api.superprod.com:80/ws/shout/... HTTP/1.1"
    let first = &rows[0];
    assert_eq!(
        (
            first[0].as_str(),
            first[3].as_str(),
            first[5].as_str(),
            first[11].as_str(),
            first[12].as_str(),
            first[13].as_str(),
            first[14].as_str()
        ),
        (
            "23.57.74.53",
            "2018-06-09T07:40:37Z",
            "/ws/shout/shoutByUser.json?platform=Cellular&pId=1",
            "api.superprod.com",
            "80",
            "135308",
            "135172"
        )
    );
    assert!(
        rows.iter()
            .all(|r| r[11] == "api.superprod.com" && r[12] == "80")
    );
}

/// A Caddy JSON access log through parse-to-db: every line stored, with the fields the
/// README's key mapping gives (the float duration as exact microseconds), and `auto` names
/// the format of a Caddy console log.
#[test]
fn caddy_json_lines_are_stored_with_their_mapped_fields() {
    let wd = Workdir::new();
    let log = formats_log("sandip3120-project-Inventory-Tracking-System_caddy_access.log");
    wd.cmd("parse-to-db")
        .arg(&log)
        .args(["--log-format", "caddy", "--db", "c.db"])
        .assert()
        .success()
        .stderr(contains("wrote 1,270"));
    let rows = db_rows(&wd.path("c.db"));
    assert_eq!(rows.len(), 1270);
    // {"ts":1754047611.399995,...,"remote_ip":"192.168.2.101",...,"proto":"HTTP/1.1",
    // "method":"GET","host":"192.168.2.101","uri":"/",...,"User-Agent":["curl/8.13.0"]},
    // ...,"duration":0.0294296,"size":0,"status":302,...}
    let first = rows
        .iter()
        .find(|r| r[3] == "2025-08-01T11:26:51Z")
        .expect("the first line");
    let columns = [0, 4, 5, 6, 7, 8, 10, 11, 13];
    assert_eq!(
        columns.map(|c| first[c].as_str()),
        [
            "192.168.2.101",
            "GET",
            "/",
            "HTTP/1.1",
            "302",
            "0",
            "curl/8.13.0",
            "192.168.2.101",
            "29429"
        ]
    );
    assert!(rows.iter().all(|r| !r[13].is_empty() && !r[11].is_empty()));
    wd.cmd("parse-to-csv")
        .arg(formats_log("petevdp-squad_gps_caddy.log"))
        .args(["--log-format", "auto", "-o", "console.csv"])
        .assert()
        .success()
        .stderr(contains("log format: caddy-console (auto"))
        .stderr(contains("wrote 433"));
}

/// A W3C log longer than a batch, whose field list changes in its middle: the batches
/// parsed on other threads after the change read by the new `#Fields:` line.
#[test]
fn w3c_batches_after_a_fields_line_read_by_it() {
    let wd = Workdir::new();
    let mut log = String::from("#Fields: date time c-ip cs-uri-stem sc-status\n");
    for n in 0..10_000 {
        log.push_str(&format!("2024-01-01 00:00:00 10.0.0.1 /a/{n} 200\n"));
    }
    log.push_str("#Fields: date time sc-status cs-uri-stem c-ip\n");
    for n in 0..20_000 {
        log.push_str(&format!("2024-01-01 00:00:01 404 /b/{n} 10.0.0.2\n"));
    }
    wd.write("logs/access.log", log);
    wd.cmd("parse-to-db")
        .args(["--log-format", "w3c"])
        .assert()
        .success()
        .stderr(contains("wrote 30,000, rejected 2 (directive 2)"));
    let rows = db_rows(&wd.path("logs.db"));
    assert!(
        rows[10_000..]
            .iter()
            .enumerate()
            .all(|(n, r)| r[0] == "10.0.0.2" && r[5] == format!("/b/{n}") && r[7] == "404")
    );
}

/// continuous-parse on a W3C log: each pass reads on by the `#Fields:` line in force where
/// it resumes, which it remembers from the pass before, also when a new one arrives.
#[test]
fn a_w3c_follower_reads_each_pass_by_the_fields_in_force() {
    let wd = Workdir::new();
    let row = |n: usize| format!("2024-01-01 00:00:00 10.0.0.1 /a/{n} 200\n");
    wd.write(
        "logs/access.log",
        format!("#Fields: date time c-ip cs-uri-stem sc-status\n{}", row(0)),
    );
    let _follower = wd.spawn(
        "continuous-parse",
        &[
            "--poll",
            "--poll-interval",
            "0.05",
            "--quiet",
            "--log-format",
            "w3c",
        ],
    );
    let rows = || crate::workdir::row_count(&wd.path("logs.db"));
    crate::workdir::wait_until("the first line", || rows() == 1);
    wd.append("logs/access.log", row(1));
    crate::workdir::wait_until("a line under the same #Fields", || rows() == 2);
    wd.append(
        "logs/access.log",
        "#Fields: date time sc-status cs-uri-stem c-ip\n2024-01-01 00:00:01 404 /b/2 10.0.0.2\n",
    );
    crate::workdir::wait_until("a line under new #Fields", || rows() == 3);
    wd.append("logs/access.log", "2024-01-01 00:00:01 404 /b/3 10.0.0.2\n");
    crate::workdir::wait_until("a line after them", || rows() == 4);
    let got: Vec<(String, String)> = db_rows(&wd.path("logs.db"))
        .into_iter()
        .map(|r| (r[5].clone(), r[7].clone()))
        .collect();
    let want: Vec<(String, String)> = [
        ("/a/0", "200"),
        ("/a/1", "200"),
        ("/b/2", "404"),
        ("/b/3", "404"),
    ]
    .map(|(u, s)| (u.to_owned(), s.to_owned()))
    .to_vec();
    assert_eq!(got, want);
}

/// continuous-parse `--log-format auto` started while its log is gone (rotated away, not yet
/// made again) takes the format saved with the log's checkpoint, and reads the new log by it;
/// with nothing saved it refuses, naming the way out.
#[test]
fn auto_on_a_missing_log_takes_the_format_saved_with_its_checkpoint() {
    let wd = Workdir::new();
    let data = std::fs::read(formats_log(VHOSTS)).unwrap();
    let vhost = lines(&data);
    let text = |range: std::ops::Range<usize>| -> Vec<u8> {
        vhost[range]
            .iter()
            .flat_map(|l| [*l, b"\n"].concat())
            .collect()
    };
    wd.cmd("continuous-parse")
        .args(["--once", "--log-format", "auto", "--db", "none.db"])
        .assert()
        .failure()
        .stderr(contains("give the format"));
    wd.write("logs/access.log", text(0..5));
    wd.cmd("continuous-parse")
        .args(["--once", "--log-format", "auto"])
        .assert()
        .success()
        .stderr(contains("log format: vcombined (auto, from"));
    std::fs::remove_file(wd.path("logs/access.log")).unwrap();
    let _follower = wd.spawn_logged(
        "continuous-parse",
        &["--poll", "--poll-interval", "0.05", "--log-format", "auto"],
        "follower.err",
    );
    crate::workdir::wait_until("the follower to take the saved format", || {
        wd.text("follower.err")
            .contains("log format: vcombined (auto, as saved with the checkpoint of")
    });
    wd.write("logs/access.log", text(5..10));
    let rows = || crate::workdir::row_count(&wd.path("logs.db"));
    crate::workdir::wait_until("the new log's lines", || rows() == 10);
    let stored = db_rows(&wd.path("logs.db"));
    assert!(
        stored.iter().all(|r| r[11] == "neutralbank.app"),
        "{stored:?}"
    );
}
