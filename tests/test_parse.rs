//! parse-to-csv and parse-to-db: one pass, exactly once, from cron, through rotation,
//! truncation, half-written lines and kill -9.

use std::time::Duration;

use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

use crate::workdir::{
    Mount, Running, Workdir, csv_offset, csv_rows, db_offset, db_rows, expected_urls,
    numbered_lines, urls,
};

#[derive(Clone, Copy, Debug)]
enum Tool {
    Csv,
    Db,
}

const BOTH: [Tool; 2] = [Tool::Csv, Tool::Db];

impl Tool {
    fn bin(self) -> &'static str {
        match self {
            Tool::Csv => "parse-to-csv",
            Tool::Db => "parse-to-db",
        }
    }

    fn out_args(self) -> [&'static str; 2] {
        match self {
            Tool::Csv => ["--output", "out.csv"],
            Tool::Db => ["--db", "out.db"],
        }
    }

    /// Runs the tool on `args` (quietly) and asserts success.
    fn run(self, wd: &Workdir, args: &[&str]) -> String {
        let out = wd
            .cmd(self.bin())
            .args(self.out_args())
            .args(args)
            .assert()
            .success();
        String::from_utf8_lossy(&out.get_output().stderr).into_owned()
    }

    fn rows(self, wd: &Workdir) -> Vec<Vec<String>> {
        match self {
            Tool::Csv => csv_rows(&wd.path("out.csv")),
            Tool::Db => db_rows(&wd.path("out.db")),
        }
    }
}

#[test]
fn a_rerun_adds_nothing_and_appended_lines_are_added_once() {
    for tool in BOTH {
        let wd = Workdir::new();
        wd.write("logs/access.log", numbered_lines(0, 100));
        tool.run(&wd, &[]);
        assert_eq!(urls(&tool.rows(&wd)), expected_urls(0, 100), "{tool:?}");
        tool.run(&wd, &[]);
        assert_eq!(tool.rows(&wd).len(), 100, "{tool:?}: a re-run adds nothing");
        wd.append("logs/access.log", numbered_lines(100, 150));
        tool.run(&wd, &[]);
        assert_eq!(urls(&tool.rows(&wd)), expected_urls(0, 150), "{tool:?}");
    }
}

#[test]
fn rotation_between_runs_drains_the_old_file_first() {
    for tool in BOTH {
        let wd = Workdir::new();
        wd.write("logs/access.log", numbered_lines(0, 100));
        tool.run(&wd, &[]);
        // The server writes more to the old file, then logrotate renames it and a new file starts.
        wd.append("logs/access.log", numbered_lines(100, 120));
        std::fs::rename(wd.path("logs/access.log"), wd.path("logs/access.log.1")).unwrap();
        wd.write("logs/access.log", numbered_lines(120, 130));
        let stderr = tool.run(&wd, &[]);
        assert!(stderr.contains("rotated"), "{stderr}");
        assert_eq!(urls(&tool.rows(&wd)), expected_urls(0, 130), "{tool:?}");
        tool.run(&wd, &[]);
        assert_eq!(tool.rows(&wd).len(), 130, "{tool:?}");
    }
}

#[test]
fn rotation_to_a_custom_name_is_found_with_rotated_glob() {
    let wd = Workdir::new();
    let tool = Tool::Db;
    wd.write("logs/access.log", numbered_lines(0, 10));
    tool.run(&wd, &[]);
    wd.append("logs/access.log", numbered_lines(10, 20));
    std::fs::rename(
        wd.path("logs/access.log"),
        wd.path("logs/access.log-20240101"),
    )
    .unwrap();
    wd.write("logs/access.log", numbered_lines(20, 25));
    tool.run(&wd, &["--rotated", "logs/access.log-*"]);
    assert_eq!(urls(&tool.rows(&wd)), expected_urls(0, 25));
}

#[test]
fn truncation_and_regrowth_past_the_offset_lose_and_duplicate_nothing() {
    for tool in BOTH {
        let wd = Workdir::new();
        wd.write("logs/access.log", numbered_lines(0, 50));
        tool.run(&wd, &[]);
        // copytruncate: emptied in place, then new lines.
        wd.truncate("logs/access.log");
        wd.append("logs/access.log", numbered_lines(50, 60));
        let stderr = tool.run(&wd, &[]);
        assert!(stderr.contains("truncated"), "{stderr}");
        assert_eq!(urls(&tool.rows(&wd)), expected_urls(0, 60), "{tool:?}");
        // Truncated again, and regrown past the old offset before the next run.
        wd.truncate("logs/access.log");
        wd.append("logs/access.log", numbered_lines(60, 200));
        tool.run(&wd, &[]);
        assert_eq!(urls(&tool.rows(&wd)), expected_urls(0, 200), "{tool:?}");
    }
}

#[test]
fn a_half_written_last_line_is_taken_only_once_complete() {
    for tool in BOTH {
        let wd = Workdir::new();
        let full = numbered_lines(0, 11);
        let (head, tail) = full.split_at(full.len() - 30);
        wd.write("logs/access.log", head);
        let stderr = tool.run(&wd, &["--settle", "60"]);
        assert!(stderr.contains("unfinished last line"), "{stderr}");
        assert_eq!(urls(&tool.rows(&wd)), expected_urls(0, 10), "{tool:?}");
        wd.append("logs/access.log", tail);
        tool.run(&wd, &["--settle", "60"]);
        assert_eq!(urls(&tool.rows(&wd)), expected_urls(0, 11), "{tool:?}");
        // A final line that never gets its newline is taken with --final (or once settled)...
        wd.append("logs/access.log", numbered_lines(11, 12).trim_end());
        tool.run(&wd, &["--final"]);
        assert_eq!(urls(&tool.rows(&wd)), expected_urls(0, 12), "{tool:?}");
        // ...and its newline arriving later is not an extra (empty) line.
        wd.append("logs/access.log", format!("\n{}", numbered_lines(12, 13)));
        let stderr = tool.run(&wd, &[]);
        assert!(stderr.contains("rejected 0"), "{stderr}");
        assert_eq!(urls(&tool.rows(&wd)), expected_urls(0, 13), "{tool:?}");
    }
}

#[test]
fn a_settled_unterminated_last_line_is_taken() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 3).trim_end());
    Tool::Db.run(&wd, &["--settle", "0"]);
    assert_eq!(urls(&Tool::Db.rows(&wd)), expected_urls(0, 3));
}

#[test]
fn csv_and_db_hold_the_same_entries() {
    let wd = Workdir::new();
    let real = crate::workdir::real_logs_dir();
    let inputs: Vec<String> = [
        "ployt0-nginx_log_parser_access.log",
        "phasinth-nikto-docker-apache_abnormal.log",
        "nasa-aug95-first20k_dbai-labs.log",
        "michael-meade_access.log.gz",
        "phasinth-almhuette-raith_access.log",
    ]
    .iter()
    .map(|f| real.join(f).display().to_string())
    .collect();
    let args: Vec<&str> = inputs
        .iter()
        .map(String::as_str)
        .chain(["--final"])
        .collect();
    Tool::Csv.run(&wd, &args);
    Tool::Db.run(&wd, &args);
    let (csv, db) = (Tool::Csv.rows(&wd), Tool::Db.rows(&wd));
    assert_eq!(csv.len(), 16912 + 13072 + 20000 + 114 + 997);
    assert_eq!(csv, db);
}

#[test]
fn gz_and_stdin_inputs_work() {
    let wd = Workdir::new();
    let gz = crate::workdir::real_logs_dir().join("michael-meade_access.log.gz");
    let gz = gz.to_str().unwrap();
    Tool::Db.run(&wd, &[gz]);
    assert_eq!(Tool::Db.rows(&wd).len(), 114);
    Tool::Db.run(&wd, &[gz]);
    assert_eq!(Tool::Db.rows(&wd).len(), 114, "a .gz is checkpointed too");

    wd.cmd("parse-to-csv")
        .args(["--output", "out.csv", "-"])
        .write_stdin(numbered_lines(0, 5).trim_end().to_string())
        .assert()
        .success();
    assert_eq!(
        urls(&Tool::Csv.rows(&wd)),
        expected_urls(0, 5),
        "stdin's last line needs no newline"
    );
}

#[test]
fn crlf_lines_and_rejects_are_kept_aside_with_source_and_line() {
    let wd = Workdir::new();
    let mut log = numbered_lines(0, 2).replace('\n', "\r\n");
    log.push_str("garbage line\n");
    log.push_str("1.1.1.1 - - [32/Jan/2024:00:00:00 +0000] \"GET / HTTP/1.1\" 200 1\n");
    log.push_str(&format!(
        "1.1.1.1 - - [01/Jan/2024:00:00:00 +0000] \"GET /{} HTTP/1.1\" 200 1\n",
        "x".repeat(3000)
    ));
    log.push_str(&numbered_lines(2, 3));
    wd.write("logs/access.log", &log);
    let out = wd
        .cmd("parse-to-db")
        .args([
            "--db",
            "out.db",
            "--rejects",
            "rejects.txt",
            "--max-line-bytes",
            "1000",
            "--json",
        ])
        .assert()
        .success();
    let summary: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(summary["read"], 6);
    assert_eq!(summary["written"], 3);
    assert_eq!(
        summary["rejected_by_reason"],
        serde_json::json!({"format": 1, "timestamp": 1, "too-long": 1})
    );
    assert_eq!(urls(&Tool::Db.rows(&wd)), expected_urls(0, 3));
    let rejects = String::from_utf8(wd.read("rejects.txt")).unwrap();
    let lines: Vec<&str> = rejects.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[0].ends_with("access.log:3: format: garbage line"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("access.log:4: timestamp: 1.1.1.1 - - [32/Jan"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("access.log:5: too-long: 1.1.1.1"),
        "{}",
        lines[2]
    );
    let conn = rusqlite::Connection::open(wd.path("out.db")).unwrap();
    let kept: i64 = conn
        .query_row("SELECT count(*) FROM rejects", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, 3, "the database keeps its rejects too");
}

#[test]
fn safe_spreadsheet_neutralises_formulas() {
    let wd = Workdir::new();
    wd.write("logs/access.log", "1.1.1.1 - - [01/Jan/2024:00:00:00 +0000] \"GET /a HTTP/1.1\" 200 1 \"-\" \"=HYPERLINK(\\\"http://evil\\\")\"\n");
    Tool::Csv.run(&wd, &["--safe-spreadsheet"]);
    assert_eq!(Tool::Csv.rows(&wd)[0][10], "'=HYPERLINK(\"http://evil\")");
}

/// Kills the writer with SIGKILL at many moments of a large parse, re-runs it, and checks that
/// the output equals a clean single run row for row.
///
/// Kills are placed by what was observed, never by the clock: some runs are killed as soon
/// as they start (before their first commit), the others once their checkpoint has moved 1 to
/// 3 commits past where the run began, so the kill lands mid-batch or on a commit. Small
/// batches keep work left for every kill however fast the machine is; the loop ends when a
/// run finishes by itself.
#[test]
fn kill_9_at_any_moment_then_rerun_equals_a_clean_run() {
    let wd = Workdir::new();
    wd.cmd("generate-logs")
        .args([
            "--count",
            "200000",
            "--seed",
            "3",
            "--start",
            "2024-01-01T00:00:00Z",
        ])
        .assert()
        .success();
    let log = wd.path("logs/access.log");
    let key = log_pipeline::ingest::source_key(&log);
    let log = log.to_str().unwrap();
    let log_len = std::fs::metadata(log).unwrap().len();
    for tool in BOTH {
        let clean = Workdir::new();
        clean
            .cmd(tool.bin())
            .args(tool.out_args())
            .args([log, "--quiet"])
            .assert()
            .success();
        let expected = tool.rows(&clean);
        assert_eq!(expected.len(), 200_000);

        let crashed = Workdir::new();
        let committed = || match tool {
            Tool::Csv => csv_offset(&crashed.path("out.csv"), &key),
            Tool::Db => db_offset(&crashed.path("out.db"), &key),
        };
        let (mut at_start, mut after_commits) = (0, 0);
        let mut round = 0u64;
        loop {
            round += 1;
            assert!(round < 10_000, "{tool:?}: the runs never finished");
            let before = committed();
            let mut child = Running::spawn(
                std::process::Command::new(crate::workdir::bin_path(tool.bin()))
                    .args(tool.out_args())
                    .args([log, "--quiet", "--batch-lines", "1000"])
                    .current_dir(crashed.root()),
            );
            if round.is_multiple_of(4) {
                // At start-up: opening the store, reading the checkpoint, the first batch.
                if child.try_wait().is_none() {
                    child.signal_and_wait("-KILL");
                    at_start += 1;
                }
                continue;
            }
            // Wait until the run has committed 1 to 3 times (or finished), then kill it.
            let commits = 1 + round % 3;
            let mut seen = before;
            let mut moved = 0;
            let finished = loop {
                if let Some(status) = child.try_wait() {
                    assert!(status.success(), "{tool:?}: a run failed: {status}");
                    break true;
                }
                let now = committed();
                if now != seen {
                    seen = now;
                    moved += 1;
                    if moved >= commits {
                        break false;
                    }
                }
                std::thread::sleep(Duration::from_micros(500));
            };
            if finished {
                break;
            }
            child.signal_and_wait("-KILL");
            after_commits += 1;
        }
        assert_eq!(
            committed(),
            log_len,
            "{tool:?}: the last run took the whole log"
        );
        // What the kills proved: runs died both before their first commit and between later
        // ones, and each time the next run went on from the checkpoint.
        assert!(
            at_start >= 1 && after_commits >= 5,
            "{tool:?}: kills at start {at_start}, after commits {after_commits}"
        );
        crashed
            .cmd(tool.bin())
            .args(tool.out_args())
            .args([log, "--quiet"])
            .assert()
            .success();
        let got = tool.rows(&crashed);
        assert_eq!(got.len(), expected.len(), "{tool:?}");
        assert!(got == expected, "{tool:?}: rows differ from a clean run");
        if matches!(tool, Tool::Db) {
            // The packed copy for reports went through every kill with the rows.
            crate::workdir::assert_packed_matches_rows(&crashed, "out.db");
            let report = |wd: &Workdir| {
                wd.cmd("aggregate-db")
                    .args(["out.db", "--format", "json"])
                    .assert()
                    .success()
                    .get_output()
                    .stdout
                    .clone()
            };
            assert!(
                report(&crashed) == report(&clean),
                "reports differ from a clean run"
            );
        }
    }
}

#[test]
fn missing_or_unreadable_input_is_a_clear_error() {
    let wd = Workdir::new();
    for tool in BOTH {
        wd.cmd(tool.bin())
            .args(tool.out_args())
            .arg("nope.log")
            .assert()
            .code(2)
            .stderr(contains("nope.log"))
            .stderr(contains("No such file"));
        std::fs::create_dir_all(wd.path("adir")).unwrap();
        wd.cmd(tool.bin())
            .args(tool.out_args())
            .arg("adir")
            .assert()
            .code(2)
            .stderr(contains("adir"))
            .stderr(contains("directory"));
    }
}

#[test]
fn missing_output_directory_is_a_clear_error() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 3));
    wd.cmd("parse-to-csv")
        .args(["--output", "no/such/dir/out.csv"])
        .assert()
        .code(2)
        .stderr(contains("no/such/dir/out.csv"));
    wd.cmd("parse-to-db")
        .args(["--db", "no/such/dir/out.db"])
        .assert()
        .code(2)
        .stderr(contains("no/such/dir"));
}

#[test]
fn a_database_that_is_not_ours_or_corrupt_is_refused_untouched() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 3));
    let conn = rusqlite::Connection::open(wd.path("other.db")).unwrap();
    conn.execute_batch("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        .unwrap();
    drop(conn);
    let before = wd.read("other.db");
    wd.cmd("parse-to-db")
        .args(["--db", "other.db"])
        .assert()
        .code(2)
        .stderr(contains("other.db"))
        .stderr(contains("not a log-pipeline database"));
    assert!(
        wd.read("other.db") == before,
        "the foreign database was modified"
    );

    wd.write(
        "corrupt.db",
        "this is not a database, just text that is long enough to look like a header.....",
    );
    wd.cmd("parse-to-db")
        .args(["--db", "corrupt.db"])
        .assert()
        .code(2)
        .stderr(contains("corrupt.db"))
        .stderr(contains("not a SQLite database"));

    wd.write("other.csv", "name,email\nbob,bob@example.com\n");
    wd.cmd("parse-to-csv")
        .args(["--output", "other.csv"])
        .assert()
        .code(2)
        .stderr(contains("other.csv"))
        .stderr(contains("not a log-pipeline CSV"));
    assert!(
        wd.read("other.csv") == b"name,email\nbob,bob@example.com\n",
        "the foreign CSV was modified"
    );
}

#[test]
fn the_original_scripts_database_is_upgraded_in_place() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 3));
    let conn = rusqlite::Connection::open(wd.path("logs.db")).unwrap();
    conn.execute_batch("CREATE TABLE logs (id INTEGER PRIMARY KEY AUTOINCREMENT, ip TEXT, timestamp TEXT, url TEXT, status INTEGER, user_agent TEXT); INSERT INTO logs (ip, timestamp, url, status, user_agent) VALUES ('1.1.1.1', '01/Jan/2024:00:00:00 +0000', '/old', 200, 'ua');").unwrap();
    drop(conn);
    wd.cmd("parse-to-db")
        .assert()
        .success()
        .stderr(contains("upgrading"))
        .stderr(contains("packed 1 row written"));
    let rows = db_rows(&wd.path("logs.db"));
    assert_eq!(urls(&rows), ["/old", "/page/0", "/page/1", "/page/2"]);
    crate::workdir::assert_packed_matches_rows(&wd, "logs.db");
    // An existing database keeps its page size; a new one gets 16 KiB pages.
    assert_eq!(page_size(&wd.path("logs.db")), 4096);
    wd.cmd("parse-to-db")
        .args(["--db", "new.db"])
        .assert()
        .success();
    assert_eq!(page_size(&wd.path("new.db")), 16384);
}

fn page_size(db: &std::path::Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap()
}

/// A database written by the first version (schema 1, no packed copy) gets one on the first
/// write, covering its old rows.
#[test]
fn a_schema_1_database_gets_its_packed_copy_on_the_first_write() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 5));
    wd.cmd("parse-to-db").arg("--quiet").assert().success();
    let conn = rusqlite::Connection::open(wd.path("logs.db")).unwrap();
    conn.execute_batch(
        "DROP TABLE packed_state; DROP TABLE packed_strings; DROP TABLE packed_blocks; PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(conn);
    wd.append("logs/access.log", numbered_lines(5, 8));
    wd.cmd("parse-to-db")
        .assert()
        .success()
        .stderr(contains("packed 5 rows"));
    assert_eq!(urls(&db_rows(&wd.path("logs.db"))), expected_urls(0, 8));
    crate::workdir::assert_packed_matches_rows(&wd, "logs.db");
}

/// A database of schema 2 (before the columns of other log formats) gets them in place on the
/// first write: its rows stay, NULL in the new columns.
#[test]
fn a_schema_2_database_gets_the_columns_of_other_formats_in_place() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 3));
    wd.cmd("parse-to-db").arg("--quiet").assert().success();
    let conn = rusqlite::Connection::open(wd.path("logs.db")).unwrap();
    conn.execute_batch(
        "ALTER TABLE logs DROP COLUMN vhost; ALTER TABLE logs DROP COLUMN port;
         ALTER TABLE logs DROP COLUMN response_time_us; ALTER TABLE logs DROP COLUMN upstream_time_us;
         ALTER TABLE logs DROP COLUMN forwarded_for; PRAGMA user_version = 2;",
    )
    .unwrap();
    drop(conn);
    wd.append("logs/access.log", numbered_lines(3, 5));
    wd.cmd("parse-to-db").arg("--quiet").assert().success();
    let rows = db_rows(&wd.path("logs.db"));
    assert_eq!(urls(&rows), expected_urls(0, 5));
    assert!(rows.iter().all(|r| r[11..].iter().all(String::is_empty)));
    let conn = rusqlite::Connection::open(wd.path("logs.db")).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5);
    // Schema 4's table of settings, where the privacy choices are recorded: none here; and
    // schema 5's record of the rows' offsets, kept as the first run made it (a database of
    // an earlier version without one is tested in test_aggregate).
    let setting = |name: &str| -> String {
        conn.query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .unwrap()
    };
    assert_eq!(setting("scrubbed"), "");
    assert_eq!(setting("log_offsets"), "+00:00");
    crate::workdir::assert_packed_matches_rows(&wd, "logs.db");
}

/// A CSV of an earlier version (the Combined columns only) is appended to in its own columns,
/// never given a second header or rows of another width, and reports read it.
#[test]
fn a_csv_of_an_earlier_version_keeps_its_columns() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 3));
    wd.cmd("parse-to-csv").arg("--quiet").assert().success();
    // Make it the earlier version's file: its header and rows cut to 11 columns.
    let old: String = String::from_utf8(wd.read("parsed_logs.csv"))
        .unwrap()
        .lines()
        .map(|l| l.splitn(12, ',').take(11).collect::<Vec<_>>().join(",") + "\n")
        .collect();
    assert!(old.starts_with(
        "ip,ident,user,timestamp,method,url,protocol,status,bytes,referrer,user_agent\n"
    ));
    wd.write("parsed_logs.csv", &old);
    wd.write(
        "parsed_logs.csv.checkpoint",
        format!(r#"{{"version":1,"csv_len":{},"sources":{{}}}}"#, old.len()),
    );
    wd.write("logs/other.log", numbered_lines(3, 5));
    wd.cmd("parse-to-csv")
        .args(["logs/other.log", "--quiet"])
        .assert()
        .success();
    let text = String::from_utf8(wd.read("parsed_logs.csv")).unwrap();
    assert!(text.starts_with(&old), "the earlier rows are untouched");
    assert!(text.lines().all(|l| l.split(',').count() == 11), "{text}");
    assert_eq!(
        urls(&csv_rows(&wd.path("parsed_logs.csv"))),
        expected_urls(0, 5)
    );
    wd.cmd("aggregate-csv")
        .args(["--report", "summary", "--format", "json"])
        .assert()
        .success()
        .stdout(contains("\"requests\": 5"));
}

#[test]
fn a_database_locked_longer_than_the_busy_timeout_fails_cleanly() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 3));
    wd.cmd("parse-to-db")
        .args(["--db", "out.db"])
        .assert()
        .success();
    wd.append("logs/access.log", numbered_lines(3, 6));
    let holder = rusqlite::Connection::open(wd.path("out.db")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    wd.cmd("parse-to-db")
        .args(["--db", "out.db", "--busy-timeout", "0.3"])
        .assert()
        .code(2)
        .stderr(contains("out.db"))
        .stderr(contains("locked"))
        // The log was read fine: the message must not blame it.
        .stderr(contains("cannot read log").not());
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    assert_eq!(db_rows(&wd.path("out.db")).len(), 3, "nothing half-written");
    wd.cmd("parse-to-db")
        .args(["--db", "out.db"])
        .assert()
        .success();
    assert_eq!(urls(&db_rows(&wd.path("out.db"))), expected_urls(0, 6));
}

#[test]
fn disk_full_and_read_only_outputs_fail_cleanly() {
    let wd = Workdir::new();
    wd.cmd("generate-logs")
        .args(["--count", "20000", "--seed", "1"])
        .assert()
        .success();
    let Some(_full) = Mount::tmpfs(&wd.path("small"), "size=512k") else {
        return;
    };
    for tool in BOTH {
        let out = match tool {
            Tool::Csv => ["--output", "small/out.csv"],
            Tool::Db => ["--db", "small/out.db"],
        };
        wd.cmd(tool.bin())
            .args(out)
            .assert()
            .code(2)
            .stderr(contains("small/out"));
    }
    // The CSV kept only what its checkpoint covers: nothing torn.
    let rows = csv_rows(&wd.path("small/out.csv"));
    assert!(rows.iter().all(|r| r.len() == 11));
    let Some(_ro) = Mount::tmpfs(&wd.path("ro"), "size=64k,ro") else {
        return;
    };
    wd.cmd("parse-to-csv")
        .args(["--output", "ro/out.csv"])
        .assert()
        .code(2)
        .stderr(contains("ro/out.csv"))
        .stderr(contains("Read-only"));
    wd.cmd("parse-to-db")
        .args(["--db", "ro/out.db"])
        .assert()
        .code(2)
        .stderr(contains("ro/out.db"));
}

#[test]
fn a_run_that_can_read_no_input_creates_nothing() {
    let wd = Workdir::new();
    std::fs::create_dir(wd.path("adir")).unwrap();
    for tool in BOTH {
        let [_, out] = tool.out_args();
        for (inputs, says) in [
            (
                &["nope.log"][..],
                &["cannot open log nope.log", "No such file"][..],
            ),
            (&["adir"], &["cannot read log adir: it is a directory"]),
            (&["nope.log.gz"], &["nope.log.gz", "No such file"]),
            (
                &["nope.log", "adir"],
                &["none of the 2 inputs can be read", "nope.log", "adir"],
            ),
        ] {
            let mut assert = wd
                .cmd(tool.bin())
                .args(tool.out_args())
                .args(inputs)
                .assert()
                .code(2);
            for s in says {
                assert = assert.stderr(contains(*s));
            }
            let left: Vec<_> = std::fs::read_dir(wd.root())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|name| name.starts_with(out))
                .collect();
            assert!(left.is_empty(), "{tool:?} {inputs:?} left {left:?}");
        }
    }
}

#[test]
fn a_missing_input_beside_a_readable_one_fails_alone() {
    for tool in BOTH {
        let wd = Workdir::new();
        wd.write("a.log", numbered_lines(0, 5));
        wd.cmd(tool.bin())
            .args(tool.out_args())
            .args(["nope.log", "a.log"])
            .assert()
            .code(2)
            .stderr(contains("FAILED: nope.log"))
            .stderr(contains("No such file"));
        assert_eq!(urls(&tool.rows(&wd)), expected_urls(0, 5), "{tool:?}");
    }
}

#[test]
fn a_log_rotated_away_without_a_new_one_is_still_drained() {
    // logrotate's `nocreate`: the log is renamed, and no new one exists until the server
    // reopens it. Only the store's checkpoint knows where the rest of the lines went, so the
    // missing log must not stop the run before the store is opened.
    for tool in BOTH {
        let wd = Workdir::new();
        wd.write("logs/access.log", numbered_lines(0, 5));
        tool.run(&wd, &["--quiet"]);
        wd.append("logs/access.log", numbered_lines(5, 8));
        std::fs::rename(wd.path("logs/access.log"), wd.path("logs/access.log.1")).unwrap();
        wd.cmd(tool.bin())
            .args(tool.out_args())
            .assert()
            .code(2)
            .stderr(contains("reading the rest of"))
            .stderr(contains("No such file"));
        assert_eq!(urls(&tool.rows(&wd)), expected_urls(0, 8), "{tool:?}");
    }
}

#[test]
fn a_file_with_no_access_log_line_gets_a_hint() {
    let wd = Workdir::new();
    wd.write("notes.txt", "hello\nworld\n");
    wd.write("one.txt", "hello\n");
    wd.write("empty.log", "");
    for (name, magic, kind) in [
        ("a.bz2", &b"BZh91AY&SY"[..], "bzip2"),
        ("a.xz", b"\xfd7zXZ\x00\x00", "xz"),
        ("a.zst", b"\x28\xb5\x2f\xfd\x00", "zstd"),
        ("a.zip", b"PK\x03\x04\x14\x00", "zip"),
        ("a.lz4", b"\x04\x22\x4d\x18\x64", "lz4"),
        ("gzipped.log", b"\x1f\x8b\x08\x00", "gzip"),
    ] {
        let mut bytes = magic.to_vec();
        bytes.extend_from_slice(b"\x00\x01binary\nmore\x00\n");
        wd.write(name, bytes);
        for tool in BOTH {
            let [_, out] = tool.out_args();
            let _ = std::fs::remove_file(wd.path(out));
            let _ = std::fs::remove_file(wd.path(&format!("{out}.checkpoint")));
            wd.cmd(tool.bin())
                .args(tool.out_args())
                .arg(name)
                .assert()
                .success()
                .stderr(contains(format!(
                    "warning: {name}: none of its 2 lines is an access log line: it looks compressed ({kind})"
                )));
        }
    }
    for tool in BOTH {
        let [_, out] = tool.out_args();
        let _ = std::fs::remove_file(wd.path(out));
        let _ = std::fs::remove_file(wd.path(&format!("{out}.checkpoint")));
        wd.cmd(tool.bin())
            .args(tool.out_args())
            .args(["notes.txt", "one.txt", "empty.log"])
            .assert()
            .success()
            .stderr(contains(
                "warning: notes.txt: none of its 2 lines is an access log line: is it an access log",
            ))
            .stderr(contains("warning: one.txt: its one line is not an access log line"))
            .stderr(contains("empty.log:").not());
        // Read again from where it stopped, nothing new: nothing to say.
        wd.cmd(tool.bin())
            .args(tool.out_args())
            .arg("notes.txt")
            .assert()
            .success()
            .stderr(contains("warning").not());
        wd.cmd(tool.bin())
            .args(tool.out_args())
            .arg("-")
            .write_stdin("not a log\n")
            .assert()
            .success()
            .stderr(contains(
                "warning: standard input: its one line is not an access log line",
            ));
        // An access log with a bad line is an access log.
        wd.write("mixed.log", format!("garbage\n{}", numbered_lines(0, 2)));
        wd.cmd(tool.bin())
            .args(tool.out_args())
            .arg("mixed.log")
            .assert()
            .success()
            .stderr(contains("warning").not());
    }
}
