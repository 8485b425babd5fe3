//! Privacy (issue #18): what the tools make from a log is no more readable than the log.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use predicates::str::contains;

use crate::workdir::{Workdir, bin_path, numbered_lines};

/// One of the binaries, run under the usual umask 022 whatever the test runner's is.
fn under_umask_022(wd: &Workdir, bin: &str) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new("sh");
    cmd.args(["-c", "umask 022 && exec \"$0\" \"$@\""])
        .arg(bin_path(bin))
        .current_dir(wd.root())
        .env_remove("COLUMNS")
        .env_remove("NO_COLOR");
    cmd
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every file under `dir` but `except` (paths relative to `dir`), with its mode.
fn created(dir: &Path, except: &[&str]) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(at) = todo.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(dir).unwrap().display().to_string();
            if path.is_dir() {
                todo.push(path);
            } else if !except.contains(&name.as_str()) {
                out.push((name, mode(&path)));
            }
        }
    }
    out.sort();
    out
}

/// A 0640 log and umask 022: every file any ingest tool creates (the database and its WAL
/// files, the CSV, checkpoint and lock files, the rejects file, `.offset`) is 0640 or
/// narrower; without the change they were 0644.
#[test]
fn every_created_file_is_no_more_readable_than_a_0640_log() {
    let wd = Workdir::new();
    wd.write(
        "logs/access.log",
        format!("{}not a log line\n", numbered_lines(0, 20)),
    );
    set_mode(&wd.path("logs/access.log"), 0o640);
    under_umask_022(&wd, "parse-to-db")
        .args(["--rejects", "db-rejects.txt"])
        .assert()
        .success();
    under_umask_022(&wd, "parse-to-csv")
        .args(["--rejects", "csv-rejects.txt"])
        .assert()
        .success();
    under_umask_022(&wd, "continuous-parse")
        .args(["--once", "--db", "follow.db"])
        .assert()
        .success();
    // A reader that holds the database open keeps the WAL files the writer made after it
    // ends, so that they are checked too.
    let conn = rusqlite::Connection::open(wd.path("logs.db")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    under_umask_022(&wd, "parse-to-db").assert().success();
    let files = created(wd.root(), &["logs/access.log"]);
    drop(conn);
    for expected in [
        "logs.db",
        "logs.db-wal",
        "logs.db-shm",
        "logs.db.lock",
        "db-rejects.txt",
        "parsed_logs.csv",
        "parsed_logs.csv.checkpoint",
        "parsed_logs.csv.lock",
        "csv-rejects.txt",
        "follow.db",
        "logs/.offset",
    ] {
        assert!(
            files.iter().any(|(name, _)| name == expected),
            "{expected} not made: {files:?}"
        );
    }
    let wider: Vec<_> = files.iter().filter(|(_, m)| m & !0o640 != 0).collect();
    assert!(
        wider.is_empty(),
        "more readable than the log: {wider:?} (decimal modes)"
    );
}

/// A link to a 0600 file, and standard input: owner only.
#[test]
fn a_link_to_a_private_file_and_standard_input_give_owner_only_outputs() {
    let wd = Workdir::new();
    wd.write("secret.log", numbered_lines(0, 3));
    set_mode(&wd.path("secret.log"), 0o600);
    std::os::unix::fs::symlink(wd.path("secret.log"), wd.path("link.log")).unwrap();
    under_umask_022(&wd, "parse-to-db")
        .args(["link.log", "--db", "link.db"])
        .assert()
        .success();
    under_umask_022(&wd, "parse-to-csv")
        .args(["-", "--output", "stdin.csv"])
        .write_stdin(numbered_lines(0, 3))
        .assert()
        .success();
    for name in [
        "link.db",
        "link.db.lock",
        "stdin.csv",
        "stdin.csv.checkpoint",
    ] {
        assert_eq!(mode(&wd.path(name)), 0o600, "{name}");
    }
}

/// An output made before (or by someone else) more readable than its log is left alone,
/// with a warning that says how to fix it.
#[test]
fn a_wider_existing_output_is_left_as_it_is_with_a_warning() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 3));
    wd.cmd("parse-to-db").assert().success();
    set_mode(&wd.path("logs.db"), 0o644);
    set_mode(&wd.path("logs/access.log"), 0o640);
    wd.append("logs/access.log", numbered_lines(3, 5));
    under_umask_022(&wd, "parse-to-db")
        .assert()
        .success()
        .stderr(contains(
            "logs.db is readable or writable by more people (0644)",
        ))
        .stderr(contains("chmod 0640 logs.db"));
    assert_eq!(mode(&wd.path("logs.db")), 0o644);
}

/// Lines from many clients, IPv4 and IPv6, with tokens in their query strings and
/// referrers, and two rejects that hold a client address and a token.
fn private_lines() -> (String, Vec<String>) {
    let mut text = String::new();
    let mut addresses = Vec::new();
    for n in 0..300u32 {
        let ip = if n % 3 == 0 {
            format!("2001:db8:{:x}:1:dead:beef:{:x}:7", n % 40, n)
        } else {
            format!("10.{}.{}.{}", n % 7, n % 11 + 1, n % 97 + 2)
        };
        text.push_str(&format!(
            "{ip} - - [01/Jan/2024:{:02}:{:02}:00 +0000] \"GET /reset?token=tok{n}x&page={n}&session=ses{n}x HTTP/1.1\" 200 {n} \"https://example.org/?auth=aut{n}x\" \"agent {}\"\n",
            n / 60 % 24,
            n % 60,
            n % 5
        ));
        addresses.push(ip);
    }
    text.push_str("192.0.2.55 - - [garbage \"GET /x?token=tokbadx HTTP/1.1\" 200 1\n");
    text.push_str("garbage from [2001:db8:ffff:1:dead:beef:1:7]:443 ?token=tokbad2x\n");
    addresses.push("192.0.2.55".into());
    (text, addresses)
}

/// The bytes of every file under the working directory but the log.
fn stored_bytes(wd: &Workdir) -> Vec<(String, Vec<u8>)> {
    created(wd.root(), &["logs/access.log"])
        .into_iter()
        .map(|(name, _)| {
            let bytes = wd.read(&name);
            (name, bytes)
        })
        .collect()
}

/// The first of `needles` in `haystack`, found in one pass.
fn find_any(haystack: &[u8], needles: &[String]) -> Option<String> {
    let alternatives: Vec<String> = needles.iter().map(|n| regex::escape(n)).collect();
    let pattern = regex::bytes::Regex::new(&alternatives.join("|")).unwrap();
    (pattern.find(haystack)).map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
}

fn report(wd: &Workdir, tool: &str, args: &[&str]) -> serde_json::Value {
    let out = wd
        .cmd(tool)
        .args(["--format", "json", "--top", "0"])
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).unwrap()
}

/// `--anonymize-ip`: no full client address from the log is anywhere in what the tools
/// store (the database file and its WAL, the CSV, the rejects table and file), and the
/// reports still work on the networks.
#[test]
fn anonymized_addresses_are_stored_nowhere_in_full() {
    let wd = Workdir::new();
    let (text, addresses) = private_lines();
    // In two runs, with a reader holding the database between them: the second run's
    // frames stay in the WAL, which is searched too.
    let half = text.len() / 2;
    let half = half + text[half..].find('\n').unwrap() + 1;
    wd.write("logs/access.log", &text[..half]);
    wd.cmd("parse-to-db")
        .arg("--anonymize-ip")
        .assert()
        .success();
    let reader = rusqlite::Connection::open(wd.path("logs.db")).unwrap();
    let _: i64 = reader
        .query_row("SELECT count(*) FROM logs", [], |r| r.get(0))
        .unwrap();
    wd.append("logs/access.log", &text[half..]);
    wd.cmd("parse-to-db")
        .args(["--anonymize-ip", "--rejects", "db-rejects.txt"])
        .assert()
        .success()
        .stderr(contains("rejected 2"));
    wd.cmd("parse-to-csv")
        .args(["--anonymize-ip", "--rejects", "csv-rejects.txt"])
        .assert()
        .success();
    wd.cmd("continuous-parse")
        .args(["--once", "--db", "follow.db", "--anonymize-ip=24/64"])
        .assert()
        .success();
    let stored = stored_bytes(&wd);
    drop(reader);
    for made in ["follow.db", "logs.db", "logs.db-wal", "parsed_logs.csv"] {
        assert!(stored.iter().any(|(n, _)| n == made), "{made} not made");
    }
    let mut needles = addresses.clone();
    needles.push(":dead:beef:".into());
    for (name, bytes) in &stored {
        assert_eq!(find_any(bytes, &needles), None, "in {name}");
    }
    let rejects = wd.text("db-rejects.txt");
    assert!(rejects.contains("192.0.2.0 - - [garbage"), "{rejects}");
    assert!(rejects.contains("[2001:db8:ffff:1::]:443"), "{rejects}");
    let db = report(&wd, "aggregate-db", &["--report", "summary,clients"]);
    let csv = report(&wd, "aggregate-csv", &["--report", "summary,clients"]);
    assert_eq!(db, csv);
    assert_eq!(db["summary"]["requests"], 300);
    let clients: Vec<&str> = db["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["ip"].as_str().unwrap())
        .collect();
    assert!(
        clients.contains(&"10.1.2.0") && clients.contains(&"2001:db8:3:1::"),
        "{clients:?}"
    );
}

/// `--pseudonymize-ip`: no address stored, and unique visitors and per-client counts equal
/// those of a run that keeps the addresses; the key file is created owner-only.
#[test]
fn pseudonyms_count_exactly_what_addresses_count() {
    let wd = Workdir::new();
    let (text, addresses) = private_lines();
    wd.write("logs/access.log", &text);
    wd.cmd("parse-to-db")
        .args(["--pseudonymize-ip", "ip.key", "--db", "hashed.db"])
        .assert()
        .success();
    assert_eq!(mode(&wd.path("ip.key")), 0o600);
    // A key others can read is used, with a warning.
    set_mode(&wd.path("ip.key"), 0o644);
    wd.cmd("parse-to-db")
        .args(["--pseudonymize-ip", "ip.key", "--db", "hashed.db"])
        .assert()
        .success()
        .stderr(contains("ip.key can be read by others (0644)"));
    set_mode(&wd.path("ip.key"), 0o600);
    wd.cmd("parse-to-db")
        .args(["--db", "raw.db"])
        .assert()
        .success();
    let mut needles = addresses.clone();
    needles.push(":dead:beef:".into());
    assert_eq!(find_any(&wd.read("hashed.db"), &needles), None);
    let counts = |db: &str| {
        let r = report(
            &wd,
            "aggregate-db",
            &["--db", db, "--report", "summary,clients"],
        );
        let mut hits: Vec<u64> = r["clients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["hits"].as_u64().unwrap())
            .collect();
        hits.sort();
        (
            r["summary"]["unique_visitors"].clone(),
            r["summary"]["client_ips"].clone(),
            hits,
        )
    };
    let (hashed, raw) = (counts("hashed.db"), counts("raw.db"));
    assert_eq!(hashed, raw);
    assert!(raw.1.as_u64().unwrap() > 100, "{raw:?}");
}

/// `--redact-query` (its default list) and `--strip-query`: no value of a listed parameter
/// is stored, in URLs, referrers or rejects.
#[test]
fn redacted_query_values_are_stored_nowhere() {
    let wd = Workdir::new();
    let (text, _) = private_lines();
    wd.write("logs/access.log", &text);
    wd.cmd("parse-to-db")
        .args(["--redact-query", "--rejects", "rejects.txt"])
        .assert()
        .success();
    wd.cmd("parse-to-csv")
        .args(["--strip-query", "--output", "stripped.csv"])
        .assert()
        .success();
    // Every value is `<kind><n>x`, and the rejects' `tokbad…`.
    let values = regex::bytes::Regex::new(r"(tok|ses|aut)([0-9]+|bad[0-9]*)x").unwrap();
    for (name, bytes) in stored_bytes(&wd) {
        let leaked = values
            .find(&bytes)
            .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned());
        assert_eq!(leaked, None, "in {name}");
    }
    let rows = crate::workdir::db_rows(&wd.path("logs.db"));
    assert_eq!(rows[1][5], "/reset?token=REDACTED&page=1&session=REDACTED");
    assert_eq!(rows[1][9], "https://example.org/?auth=REDACTED");
    let stripped = crate::workdir::csv_rows(&wd.path("stripped.csv"));
    assert_eq!(
        (&*stripped[1][5], &*stripped[1][9]),
        ("/reset", "https://example.org/")
    );
}

/// The choices are recorded in the store: a later run with others is refused, before it
/// adds anything; the same choices go on.
#[test]
fn a_store_refuses_rows_scrubbed_otherwise() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 5));
    for (tool, store) in [
        ("parse-to-db", "logs.db"),
        ("parse-to-csv", "parsed_logs.csv"),
    ] {
        wd.cmd(tool).arg("--anonymize-ip").assert().success();
        wd.append("logs/access.log", numbered_lines(5, 6));
        for other in [
            &[][..],
            &["--anonymize-ip", "16"][..],
            &["--pseudonymize-ip", "k"][..],
        ] {
            wd.cmd(tool)
                .args(other)
                .assert()
                .failure()
                .stderr(contains(format!(
                    "{store} holds rows stored with `anonymize-ip=24/64`"
                )));
        }
        wd.cmd(tool)
            .arg("--anonymize-ip=24/64")
            .assert()
            .success()
            .stderr(contains("wrote 1,"));
        std::fs::write(wd.path("logs/access.log"), numbered_lines(0, 5)).unwrap();
        let _ = std::fs::remove_file(wd.path("logs/access.log"));
        wd.write("logs/access.log", numbered_lines(0, 5));
    }
    // A log right after the flag is taken for its prefix, and said so.
    wd.cmd("parse-to-db")
        .args(["--anonymize-ip", "logs/access.log"])
        .assert()
        .failure()
        .stderr(contains("put the log first"));
    // A store of an earlier version holds raw rows: anonymizing into it is refused too.
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 5));
    wd.cmd("parse-to-db").assert().success();
    let conn = rusqlite::Connection::open(wd.path("logs.db")).unwrap();
    conn.execute("DELETE FROM settings", []).unwrap();
    drop(conn);
    wd.cmd("parse-to-db")
        .arg("--strip-query")
        .assert()
        .failure()
        .stderr(contains("with no privacy option (full addresses and query strings), and this run asks for `strip-query`"));
}

/// Lines around a 30-day window: `old` of them 31 to 40 days back (URL `/old/N`, agent
/// `old agent N`), `kept` of them 1 to 29 days back (`/kept/N`), mixed as Apache's are not
/// in time order. None is within a day of the edge, so the window's steps do not matter.
fn window_lines(old: usize, kept: usize) -> (String, String) {
    let now = chrono::Utc::now();
    let stamp = |days_back: f64| {
        let t = now - chrono::TimeDelta::seconds((days_back * 86_400.0) as i64);
        t.format("%d/%b/%Y:%H:%M:%S +0000").to_string()
    };
    let mut all = Vec::new();
    let mut only_kept = String::new();
    for n in 0..old.max(kept) {
        if n < old {
            let back = 31.0 + 9.0 * (n as f64 / old as f64);
            all.push(format!(
                "10.9.{}.{} - - [{}] \"GET /old/{n} HTTP/1.1\" 200 {n} \"-\" \"old agent {n}\"\n",
                n % 200,
                n % 250 + 1,
                stamp(back)
            ));
        }
        if n < kept {
            let back = 1.0 + 28.0 * (n as f64 / kept as f64);
            let line = format!(
                "10.1.{}.{} - - [{}] \"GET /kept/{} HTTP/1.1\" {} {n} \"-\" \"agent {}\"\n",
                n % 200,
                n % 250 + 1,
                stamp(back),
                n % 50,
                [200, 404, 500][n % 3],
                n % 7
            );
            all.push(line.clone());
            only_kept.push_str(&line);
        }
    }
    (all.concat(), only_kept)
}

/// `--retain 30d`: the rows older than the window are gone, with their packed records and
/// every string only they used (their bytes are not left in the file either); the reports
/// equal those of a store that was only ever given the kept lines.
#[test]
fn retained_stores_report_only_the_window() {
    let wd = Workdir::new();
    let (all, kept) = window_lines(500, 700);
    wd.write("logs/access.log", &all);
    wd.write("kept.log", &kept);
    wd.cmd("parse-to-db")
        .args(["--retain", "30d"])
        .assert()
        .success();
    wd.cmd("continuous-parse")
        .args(["--once", "--db", "follow.db", "--retain", "30d"])
        .assert()
        .success();
    wd.cmd("parse-to-db")
        .args(["kept.log", "--db", "kept.db"])
        .assert()
        .success();
    let all_reports = |db: &str| report(&wd, "aggregate-db", &["--db", db]);
    let expected = all_reports("kept.db");
    assert_eq!(expected["summary"]["requests"], 700);
    let old = regex::bytes::Regex::new("/old/|old agent").unwrap();
    for db in ["logs.db", "follow.db"] {
        assert_eq!(all_reports(db), expected, "{db}");
        crate::workdir::assert_packed_matches_rows(&wd, db);
        assert!(!old.is_match(&wd.read(db)), "{db} still holds old data");
    }
}

/// A `--retain` killed at any moment of its deletion (observed through the WAL growing)
/// leaves every kept row, and the old rows all there or all gone, with the packed copy in
/// step; a run after it finishes the job.
#[test]
fn a_retention_killed_midway_loses_nothing_it_should_keep() {
    let wd = Workdir::new();
    let (all, kept) = window_lines(12_000, 8_000);
    wd.write("logs/access.log", &all);
    wd.cmd("parse-to-db").assert().success();
    let urls = |wd: &Workdir| {
        let conn = rusqlite::Connection::open(wd.path("logs.db")).unwrap();
        let count = |like: &str| -> i64 {
            conn.query_row("SELECT count(*) FROM logs WHERE url LIKE ?1", [like], |r| {
                r.get(0)
            })
            .unwrap()
        };
        (count("/old/%"), count("/kept/%"))
    };
    assert_eq!(urls(&wd), (12_000, 8_000));
    let wal = wd.path("logs.db-wal");
    for threshold in [1u64, 64 << 10, 256 << 10, 1 << 20] {
        let mut writer = crate::workdir::Running::spawn(
            std::process::Command::new(bin_path("parse-to-db"))
                .args(["--retain", "30d", "--quiet"])
                .current_dir(wd.root()),
        );
        crate::workdir::wait_until("the WAL to grow, or the run to end", || {
            std::fs::metadata(&wal).is_ok_and(|m| m.len() >= threshold)
                || writer.try_wait().is_some()
        });
        drop(writer);
        let (old, kept_rows) = urls(&wd);
        assert_eq!(kept_rows, 8_000, "kill at WAL >= {threshold}");
        assert!(
            old == 12_000 || old == 0,
            "half deleted: {old} old rows left"
        );
        eprintln!("killed at WAL >= {threshold}: {old} old rows left");
        crate::workdir::assert_packed_matches_rows(&wd, "logs.db");
    }
    wd.cmd("parse-to-db")
        .args(["--retain", "30d"])
        .assert()
        .success();
    assert_eq!(urls(&wd), (0, 8_000));
    let _ = kept;
}

/// `--retain` on a database upgraded from the original scripts, whose old rows keep their
/// `01/Jan/2024:00:00:00 +0000` timestamps: by text those would sort wrong (a recent row on
/// the 1st before an old one on the 28th); the old rows are rewritten to the tools' form
/// first, and exactly those past the window go.
#[test]
fn retain_reads_the_original_scripts_timestamps_as_times() {
    let wd = Workdir::new();
    let now = chrono::Utc::now();
    let clf = |days_back: i64| {
        (now - chrono::TimeDelta::days(days_back))
            .format("%d/%b/%Y:%H:%M:%S +0000")
            .to_string()
    };
    let conn = rusqlite::Connection::open(wd.path("logs.db")).unwrap();
    conn.execute_batch("CREATE TABLE logs (id INTEGER PRIMARY KEY AUTOINCREMENT, ip TEXT, timestamp TEXT, url TEXT, status INTEGER, user_agent TEXT)").unwrap();
    for (n, days_back) in [40, 35, 2, 10, 45, 1, 20, 31].into_iter().enumerate() {
        conn.execute(
            "INSERT INTO logs (ip, timestamp, url, status, user_agent) VALUES ('1.1.1.1', ?1, ?2, 200, 'ua')",
            [clf(days_back), format!("/{}/{n}", if days_back > 30 { "old" } else { "kept" })],
        )
        .unwrap();
    }
    drop(conn);
    wd.write("logs/access.log", "");
    wd.cmd("parse-to-db")
        .args(["--retain", "30d"])
        .assert()
        .success();
    let mut urls: Vec<String> = crate::workdir::db_rows(&wd.path("logs.db"))
        .into_iter()
        .map(|r| r[5].clone())
        .collect();
    urls.sort();
    assert_eq!(urls, ["/kept/2", "/kept/3", "/kept/5", "/kept/6"]);
    crate::workdir::assert_packed_matches_rows(&wd, "logs.db");
}

/// A follower keeps writing after another process's `--retain` deleted strings it had
/// cached the ids of: the ids are forgotten (`strings_generation`), so the packed copy
/// still says what the rows say.
#[test]
fn a_writer_forgets_string_ids_that_a_retention_deleted() {
    let wd = Workdir::new();
    let (old, _) = window_lines(3, 0);
    wd.write("logs/access.log", &old);
    let mut follower = wd.spawn(
        "continuous-parse",
        &["--poll", "--poll-interval", "0.05", "--quiet"],
    );
    let rows = |wd: &Workdir| crate::workdir::row_count(&wd.path("logs.db"));
    crate::workdir::wait_until("the follower to store the old lines", || {
        wd.path("logs.db").exists() && rows(&wd) == 3
    });
    wd.cmd("parse-to-db")
        .args(["--retain", "30d", "--final"])
        .assert()
        .success();
    // A recent line with the same URL and agent as a deleted one: a cached id would point
    // at a string that no longer exists.
    let now = chrono::Utc::now().format("%d/%b/%Y:%H:%M:%S +0000");
    wd.append(
        "logs/access.log",
        format!("10.9.0.1 - - [{now}] \"GET /old/0 HTTP/1.1\" 200 0 \"-\" \"old agent 0\"\n"),
    );
    crate::workdir::wait_until("the follower to store the new line", || rows(&wd) == 1);
    assert!(
        follower.try_wait().is_none(),
        "the follower is still running"
    );
    drop(follower);
    crate::workdir::assert_packed_matches_rows(&wd, "logs.db");
    let r = report(&wd, "aggregate-db", &["--report", "urls"]);
    assert_eq!(r["urls"][0]["url"], "/old/0");
}
