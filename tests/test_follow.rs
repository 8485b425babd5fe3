//! continuous-parse, with writers appending, rotating, truncating and killing around it.

use std::time::Duration;

use crate::workdir::{
    Running, Workdir, db_offset, db_rows, expected_urls, lines, numbered_lines, urls, wait_until,
};

/// Starts a follower in `wd` with fast polling; it is killed if the test fails.
fn follower(wd: &Workdir, extra: &[&str]) -> Running {
    let args: Vec<&str> = ["--quiet", "--poll-interval", "0.1"]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    wd.spawn("continuous-parse", &args)
}

/// logrotate's copytruncate: copy the log to `access.log.1`, then empty it in place.
fn copytruncate(wd: &Workdir) {
    std::fs::copy(wd.path("logs/access.log"), wd.path("logs/access.log.1")).unwrap();
    wd.truncate("logs/access.log");
}

/// `continuous-parse --once`: drain what is there and exit, successfully.
fn once(wd: &Workdir) {
    wd.cmd("continuous-parse")
        .args(["--once", "--quiet"])
        .assert()
        .success();
}

fn row_count(wd: &Workdir) -> usize {
    let Ok(conn) = rusqlite::Connection::open(wd.path("logs.db")) else {
        return 0;
    };
    conn.query_row("SELECT count(*) FROM logs", [], |r| r.get::<_, i64>(0))
        .map_or(0, |n| n as usize)
}

/// Waits until the table has `n` rows.
fn wait_for_rows(wd: &Workdir, n: usize) {
    wait_until(&format!("{n} rows"), || row_count(wd) >= n);
}

/// Stops a process with `sig` and checks it exits 0.
fn stop(child: Running, sig: &str) {
    let status = child.signal_and_wait(sig);
    assert!(status.success(), "exited with {status} on {sig}");
}

#[test]
fn follows_a_running_generator_exactly_once_and_stops_on_ctrl_c() {
    let wd = Workdir::new();
    let parser = follower(&wd, &[]);
    let writer = wd.spawn(
        "generate-logs",
        &[
            "--interval",
            "0.01",
            "--lines-per-batch",
            "50",
            "--quiet",
            "--seed",
            "5",
        ],
    );
    // Stop the writer once the follower has taken some of its lines while it runs.
    wait_for_rows(&wd, 500);
    stop(writer, "-INT");
    let data = wd.read("logs/access.log");
    let file_lines = lines(&data);
    wait_for_rows(&wd, file_lines.len());
    stop(parser, "-INT");
    let rows = db_rows(&wd.path("logs.db"));
    assert_eq!(rows.len(), file_lines.len());
    for (row, line) in rows.iter().zip(&file_lines) {
        let e = log_pipeline::parse_line(line).unwrap();
        assert_eq!(
            (row[0].as_str(), row[5].as_str()),
            (e.ip.as_ref(), e.url.as_ref())
        );
    }
    // The offset mirror equals the file's length: everything was taken.
    let offset: u64 = String::from_utf8(wd.read("logs/.offset"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(offset, data.len() as u64);
}

#[test]
fn rotation_by_rename_while_running_and_while_stopped() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 100));
    let parser = follower(&wd, &[]);
    wait_for_rows(&wd, 100);
    // Lines land in the old file, then it is renamed away and a new one starts at once.
    wd.append("logs/access.log", numbered_lines(100, 120));
    std::fs::rename(wd.path("logs/access.log"), wd.path("logs/access.log.1")).unwrap();
    wd.write("logs/access.log", numbered_lines(120, 130));
    wait_for_rows(&wd, 130);
    stop(parser, "-TERM");
    assert_eq!(urls(&db_rows(&wd.path("logs.db"))), expected_urls(0, 130));

    // Now while stopped: more lines in the old file, rotated, new file; then --once.
    wd.append("logs/access.log", numbered_lines(130, 140));
    std::fs::rename(wd.path("logs/access.log"), wd.path("logs/access.log.1")).unwrap();
    wd.write("logs/access.log", numbered_lines(140, 145));
    once(&wd);
    assert_eq!(urls(&db_rows(&wd.path("logs.db"))), expected_urls(0, 145));
}

#[test]
fn a_deleted_and_recreated_log_loses_nothing() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 50));
    let parser = follower(&wd, &[]);
    wait_for_rows(&wd, 50);
    wd.append("logs/access.log", numbered_lines(50, 60));
    std::fs::remove_file(wd.path("logs/access.log")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    wd.write("logs/access.log", numbered_lines(60, 70));
    wait_for_rows(&wd, 70);
    stop(parser, "-INT");
    assert_eq!(urls(&db_rows(&wd.path("logs.db"))), expected_urls(0, 70));
}

#[test]
fn a_database_removed_or_replaced_under_it_stops_it_loudly() {
    for replaced in [false, true] {
        let wd = Workdir::new();
        wd.write("logs/access.log", numbered_lines(0, 50));
        let args = ["--quiet", "--poll-interval", "0.1"];
        let mut parser = wd.spawn_logged("continuous-parse", &args, "stderr.txt");
        wait_for_rows(&wd, 50);
        if replaced {
            // At once, as a restore from a backup does.
            wd.write("other.db", "");
            std::fs::rename(wd.path("other.db"), wd.path("logs.db")).unwrap();
        } else {
            for file in ["logs.db", "logs.db-wal", "logs.db-shm"] {
                let _ = std::fs::remove_file(wd.path(file));
            }
        }
        // Lines written after it would go into the removed file, which nobody reads again.
        wd.append("logs/access.log", numbered_lines(50, 60));
        wait_until("the follower to stop", || parser.try_wait().is_some());
        let status = parser.wait();
        assert_eq!(status.code(), Some(2), "{status}");
        let said = wd.text("stderr.txt");
        let what = if replaced {
            "was replaced"
        } else {
            "was removed"
        };
        assert!(said.contains(what), "{said}");
    }
}

#[test]
fn a_half_written_line_waits_for_its_end() {
    let wd = Workdir::new();
    let all = numbered_lines(0, 6);
    let (head, tail) = all.split_at(all.len() - 20);
    wd.write("logs/access.log", head);
    let parser = follower(&wd, &[]);
    wait_for_rows(&wd, 5);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(row_count(&wd), 5, "the unfinished line is not taken");
    wd.append("logs/access.log", tail);
    wait_for_rows(&wd, 6);
    stop(parser, "-INT");
    assert_eq!(urls(&db_rows(&wd.path("logs.db"))), expected_urls(0, 6));
}

#[test]
fn copytruncate_loses_nothing_written_before_the_copy() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 40));
    once(&wd);
    // Lines arrive while the parser is not looking; then copytruncate.
    wd.append("logs/access.log", numbered_lines(40, 55));
    copytruncate(&wd);
    wd.append("logs/access.log", numbered_lines(55, 60));
    once(&wd);
    assert_eq!(urls(&db_rows(&wd.path("logs.db"))), expected_urls(0, 60));

    // And while running.
    let parser = follower(&wd, &[]);
    wd.append("logs/access.log", numbered_lines(60, 70));
    wait_for_rows(&wd, 70);
    copytruncate(&wd);
    wd.append("logs/access.log", numbered_lines(70, 75));
    wait_for_rows(&wd, 75);
    stop(parser, "-INT");
    assert_eq!(urls(&db_rows(&wd.path("logs.db"))), expected_urls(0, 75));
}

#[test]
fn the_original_scripts_offset_file_is_adopted() {
    let wd = Workdir::new();
    let log = numbered_lines(0, 20);
    wd.write("logs/access.log", &log);
    // The original scripts stored the first 12 lines and wrote their offset.
    let conn = rusqlite::Connection::open(wd.path("logs.db")).unwrap();
    conn.execute_batch("CREATE TABLE logs (id INTEGER PRIMARY KEY AUTOINCREMENT, ip TEXT, timestamp TEXT, url TEXT, status INTEGER, user_agent TEXT)").unwrap();
    for n in 0..12 {
        conn.execute(
            "INSERT INTO logs (ip, timestamp, url, status, user_agent) VALUES ('10.0.0.1', '01/Jan/2024:00:00:00 +0000', ?1, 200, 'test')",
            [format!("/page/{n}")],
        )
        .unwrap();
    }
    drop(conn);
    let offset = numbered_lines(0, 12).len();
    wd.write("logs/.offset", offset.to_string());
    once(&wd);
    assert_eq!(urls(&db_rows(&wd.path("logs.db"))), expected_urls(0, 20));

    // Removing the database to rebuild it: our own mirror of the offset is stale now, and
    // adopting it would skip every line before it.
    std::fs::remove_file(wd.path("logs.db")).unwrap();
    wd.cmd("continuous-parse")
        .args(["--once", "--quiet"])
        .assert()
        .success()
        .stderr(predicates::str::contains("ignoring"));
    assert_eq!(urls(&db_rows(&wd.path("logs.db"))), expected_urls(0, 20));
}

#[test]
fn shares_the_checkpoint_with_parse_to_db() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 30));
    wd.cmd("parse-to-db").arg("--quiet").assert().success();
    wd.append("logs/access.log", numbered_lines(30, 40));
    once(&wd);
    wd.append("logs/access.log", numbered_lines(40, 45));
    wd.cmd("parse-to-db").arg("--quiet").assert().success();
    assert_eq!(urls(&db_rows(&wd.path("logs.db"))), expected_urls(0, 45));
}

/// While a writer appends, kill -9 the follower at many moments and restart it: at the end
/// the table equals the file line for line. Every fifth follower is killed as it starts; the
/// others once their checkpoint has moved 1 to 3 times since they started (observed, so the
/// kills fall on start-up, mid-batch and commits whatever the machine's speed).
#[test]
fn chaos_kill_9_many_times_while_a_writer_appends() {
    let wd = Workdir::new();
    let writer = wd.spawn(
        "generate-logs",
        &[
            "--interval",
            "0.005",
            "--lines-per-batch",
            "200",
            "--quiet",
            "--seed",
            "9",
        ],
    );
    wait_until("the log", || wd.path("logs/access.log").exists());
    let key = log_pipeline::ingest::source_key(&wd.path("logs/access.log"));
    let committed = || db_offset(&wd.path("logs.db"), &key);
    let mut at_start = 0;
    for round in 0..60u64 {
        let before = committed();
        let mut parser = follower(&wd, &["--batch-lines", "300", "--linger", "0"]);
        if round % 5 == 0 {
            if parser.try_wait().is_none() {
                at_start += 1;
            }
        } else {
            let commits = 1 + round % 3;
            let mut seen = before;
            let mut moved = 0;
            wait_until("the follower to commit", || {
                let now = committed();
                if now != seen {
                    seen = now;
                    moved += 1;
                }
                moved >= commits
            });
        }
        let status = parser.signal_and_wait("-KILL");
        assert!(!status.success(), "the follower was killed, not stopped");
    }
    assert!(at_start >= 1, "no follower was killed at start-up");
    stop(writer, "-INT");
    once(&wd);
    crate::workdir::assert_packed_matches_rows(&wd, "logs.db");
    let data = wd.read("logs/access.log");
    let file_lines = lines(&data);
    let rows = db_rows(&wd.path("logs.db"));
    assert_eq!(rows.len(), file_lines.len(), "same count");
    for (i, (row, line)) in rows.iter().zip(&file_lines).enumerate() {
        let e = log_pipeline::parse_line(line).unwrap();
        let ts = log_pipeline::entry::Rfc3339(e.timestamp).to_string();
        assert_eq!(
            (
                row[0].as_str(),
                row[3].as_str(),
                row[5].as_str(),
                row[8].as_str()
            ),
            (
                e.ip.as_ref(),
                ts.as_str(),
                e.url.as_ref(),
                e.bytes.map(|b| b.to_string()).unwrap_or_default().as_str()
            ),
            "line {}",
            i + 1
        );
    }
}

#[test]
fn a_database_locked_by_another_writer_is_waited_for_not_fatal() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 10));
    let parser = follower(&wd, &["--busy-timeout", "0.2"]);
    wait_for_rows(&wd, 10);
    // Another writer holds the database for longer than the busy timeout while lines arrive.
    let holder = rusqlite::Connection::open(wd.path("logs.db")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    wd.append("logs/access.log", numbered_lines(10, 30));
    std::thread::sleep(Duration::from_millis(1200));
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    wait_for_rows(&wd, 30);
    stop(parser, "-INT");
    assert_eq!(urls(&db_rows(&wd.path("logs.db"))), expected_urls(0, 30));
}
