//! Exactly once under real operations: overlapping writers, and rotation the way servers and
//! logrotate do it (a late reopen, several rotations while stopped, compression).

use std::io::Write;
use std::process::Command;

use predicates::str::contains;

use crate::workdir::{
    Running, Workdir, bin_path, csv_rows, db_rows, expected_urls, numbered_lines, row_count, urls,
    wait_until,
};

/// Every URL of `rows`, sorted, for comparing overlapping runs (their order may interleave
/// only between whole runs, never within one).
fn sorted(mut urls: Vec<String>) -> Vec<String> {
    urls.sort_by_key(|u| u[6..].parse::<u64>().unwrap());
    urls
}

#[test]
fn overlapping_one_time_runs_store_every_line_once() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 5000));
    // Two writers on a fresh store at once, then again while lines keep coming.
    for round in 0..3 {
        let spawn = |bin: &str, out: [&str; 2]| {
            wd.spawn(bin, &[out[0], out[1], "--quiet", "--batch-lines", "500"])
        };
        let runs = [
            spawn("parse-to-db", ["--db", "logs.db"]),
            spawn("parse-to-db", ["--db", "logs.db"]),
            spawn("parse-to-csv", ["--output", "out.csv"]),
            spawn("parse-to-csv", ["--output", "out.csv"]),
        ];
        wd.append(
            "logs/access.log",
            numbered_lines(5000 + round * 100, 5100 + round * 100),
        );
        for run in runs {
            let status = run.wait();
            assert!(status.success(), "a writer failed: {status}");
        }
    }
    wd.cmd("parse-to-db").arg("--quiet").assert().success();
    wd.cmd("parse-to-csv")
        .args(["--output", "out.csv", "--quiet"])
        .assert()
        .success();
    assert_eq!(urls(&db_rows(&wd.path("logs.db"))), expected_urls(0, 5300));
    assert_eq!(urls(&csv_rows(&wd.path("out.csv"))), expected_urls(0, 5300));
}

#[test]
fn a_second_writer_waits_with_a_message_or_fails_with_no_wait() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 10));
    let lock = log_pipeline::lock::lock_store(
        &wd.path("logs.db"),
        "test-holder",
        log_pipeline::lock::Wait::Fail,
        None,
        &mut |_| {},
    )
    .unwrap();
    wd.cmd("parse-to-db")
        .arg("--no-wait")
        .assert()
        .code(2)
        .stderr(contains("logs.db is being written by test-holder"))
        .stderr(contains("--no-wait"));
    let waiting = Running::spawn(
        Command::new(bin_path("parse-to-db"))
            .arg("--quiet")
            .current_dir(wd.root())
            .stderr(std::process::Stdio::piped()),
    );
    // It says why it waits, and stores nothing while it waits.
    let mut waiting = waiting;
    let mut stderr = waiting.0.stderr.take().unwrap();
    let mut said = Vec::new();
    wait_until("the waiting message", || {
        let mut byte = [0u8; 1];
        use std::io::Read;
        if stderr.read(&mut byte).unwrap_or(0) == 1 {
            said.push(byte[0]);
        }
        said.ends_with(b"\n")
    });
    let said = String::from_utf8_lossy(&said).into_owned();
    assert!(said.contains("waiting for it to finish"), "{said}");
    assert!(!wd.path("logs.db").exists(), "nothing opened while waiting");
    drop(lock);
    assert!(waiting.wait().success());
    assert_eq!(urls(&db_rows(&wd.path("logs.db"))), expected_urls(0, 10));
}

#[test]
fn a_second_follower_of_the_same_log_and_store_is_refused() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 10));
    let _first = wd.spawn("continuous-parse", &["--quiet", "--poll-interval", "0.05"]);
    wait_until("the first follower's rows", || {
        row_count(&wd.path("logs.db")) == 10
    });
    wd.cmd("continuous-parse")
        .args(["--quiet", "--offset-file", "other.offset"])
        .assert()
        .code(2)
        .stderr(contains("already follows"))
        .stderr(contains("access.log"));
}

#[test]
fn cron_runs_beside_a_follower_store_every_line_once() {
    let wd = Workdir::new();
    wd.write("logs/access.log", "");
    let follower = wd.spawn(
        "continuous-parse",
        &["--quiet", "--poll-interval", "0.01", "--linger", "0"],
    );
    for chunk in 0..20 {
        wd.append(
            "logs/access.log",
            numbered_lines(chunk * 250, (chunk + 1) * 250),
        );
        wd.cmd("parse-to-db").arg("--quiet").assert().success();
    }
    wait_until("every line", || row_count(&wd.path("logs.db")) >= 5000);
    assert!(follower.signal_and_wait("-INT").success());
    assert_eq!(urls(&db_rows(&wd.path("logs.db"))), expected_urls(0, 5000));
}

/// `create` rotation with a server that has not reopened yet: it writes to the renamed file.
#[test]
fn lines_written_to_the_renamed_file_before_the_reopen_are_kept() {
    for tool in ["parse-to-db", "parse-to-csv"] {
        let wd = Workdir::new();
        let out: &[&str] = if tool == "parse-to-db" {
            &["--db", "out.db"]
        } else {
            &["--output", "out.csv"]
        };
        let rows = |wd: &Workdir| {
            if tool == "parse-to-db" {
                urls(&db_rows(&wd.path("out.db")))
            } else {
                urls(&csv_rows(&wd.path("out.csv")))
            }
        };
        let run = |wd: &Workdir| {
            wd.cmd(tool).args(out).arg("--quiet").assert().success();
        };
        wd.write("logs/access.log", numbered_lines(0, 10));
        run(&wd);
        // logrotate renames and creates; the server still holds the old file.
        let mut server = std::fs::OpenOptions::new()
            .append(true)
            .open(wd.path("logs/access.log"))
            .unwrap();
        std::fs::rename(wd.path("logs/access.log"), wd.path("logs/access.log.1")).unwrap();
        wd.write("logs/access.log", "");
        server.write_all(numbered_lines(10, 20).as_bytes()).unwrap();
        run(&wd);
        assert_eq!(rows(&wd), expected_urls(0, 20), "{tool}");
        // More late lines, then the reopen: new lines go to the new file.
        server.write_all(numbered_lines(20, 25).as_bytes()).unwrap();
        drop(server);
        wd.append("logs/access.log", numbered_lines(25, 30));
        run(&wd);
        assert_eq!(sorted(rows(&wd)), expected_urls(0, 30), "{tool}");
        // Quiet for the rotate wait: the rotated file is done; nothing is read twice after.
        wd.cmd(tool)
            .args(out)
            .args(["--quiet", "--rotate-wait", "0"])
            .assert()
            .success();
        run(&wd);
        assert_eq!(sorted(rows(&wd)), expected_urls(0, 30), "{tool}");
        // The rotated file compressed later and given as an input: already taken.
        gzip(&wd, "logs/access.log.1", "logs/access.log.1.gz");
        wd.cmd(tool)
            .args(out)
            .args(["logs/access.log.1.gz", "logs/access.log"])
            .assert()
            .success()
            .stderr(contains("already taken"));
        assert_eq!(sorted(rows(&wd)), expected_urls(0, 30), "{tool}");
    }
}

fn gzip(wd: &Workdir, from: &str, to: &str) {
    let data = wd.read(from);
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(wd.path(to)).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(&data).unwrap();
    enc.finish().unwrap();
    std::fs::remove_file(wd.path(from)).unwrap();
}

/// Rotates `logs/access.log` the way logrotate does with `rotate N` and numbered names:
/// shift `.k` (and `.k.gz`) up by one, rename the log to `.1`, compress `.2` when
/// `delaycompress`, or `.1` at once when `compress` alone, and create a new log.
fn logrotate(wd: &Workdir, compress: bool, delay: bool) {
    for k in (1..10).rev() {
        for ext in ["", ".gz"] {
            let from = wd.path(&format!("logs/access.log.{k}{ext}"));
            if from.exists() {
                std::fs::rename(&from, wd.path(&format!("logs/access.log.{}{ext}", k + 1)))
                    .unwrap();
            }
        }
    }
    std::fs::rename(wd.path("logs/access.log"), wd.path("logs/access.log.1")).unwrap();
    wd.write("logs/access.log", "");
    if compress {
        let target = if delay { 2 } else { 1 };
        let plain = format!("logs/access.log.{target}");
        if wd.path(&plain).exists() {
            gzip(wd, &plain, &format!("{plain}.gz"));
        }
    }
}

#[test]
fn several_rotations_while_stopped_are_drained_oldest_first() {
    for (compress, delay) in [(false, false), (true, true), (true, false)] {
        for tool in ["parse-to-db", "continuous-parse"] {
            let wd = Workdir::new();
            let run = |wd: &Workdir| {
                let mut cmd = wd.cmd(tool);
                if tool == "continuous-parse" {
                    cmd.arg("--once");
                }
                cmd.arg("--quiet").assert().success();
            };
            wd.write("logs/access.log", numbered_lines(0, 100));
            run(&wd);
            // While stopped: more lines, then three rotations with lines in between.
            wd.append("logs/access.log", numbered_lines(100, 150));
            logrotate(&wd, compress, delay);
            wd.append("logs/access.log", numbered_lines(150, 200));
            logrotate(&wd, compress, delay);
            wd.append("logs/access.log", numbered_lines(200, 250));
            logrotate(&wd, compress, delay);
            wd.append("logs/access.log", numbered_lines(250, 260));
            run(&wd);
            let got = urls(&db_rows(&wd.path("logs.db")));
            assert_eq!(
                got,
                expected_urls(0, 260),
                "{tool} compress={compress} delaycompress={delay}"
            );
            // And nothing again, whatever is given as an input.
            let mut inputs: Vec<String> = std::fs::read_dir(wd.path("logs"))
                .unwrap()
                .map(|e| e.unwrap().path().display().to_string())
                .filter(|p| p.contains("access.log"))
                .collect();
            inputs.sort();
            wd.cmd("parse-to-db")
                .args(&inputs)
                .args(["--quiet", "--rotate-wait", "0"])
                .assert()
                .success();
            assert_eq!(
                urls(&db_rows(&wd.path("logs.db"))),
                expected_urls(0, 260),
                "{tool} compress={compress} delaycompress={delay}: inputs given again"
            );
        }
    }
}

#[test]
fn a_follower_keeps_reading_a_deleted_log_until_it_is_quiet() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 10));
    let follower = wd.spawn("continuous-parse", &["--quiet", "--poll-interval", "0.05"]);
    wait_until("10 rows", || row_count(&wd.path("logs.db")) == 10);
    // delete + touch, while the server still writes to the deleted file.
    let mut server = std::fs::OpenOptions::new()
        .append(true)
        .open(wd.path("logs/access.log"))
        .unwrap();
    std::fs::remove_file(wd.path("logs/access.log")).unwrap();
    wd.write("logs/access.log", "");
    wait_until("the follower to see the new file", || {
        let key = log_pipeline::ingest::source_key(&wd.path("logs/access.log"));
        crate::workdir::db_offset(&wd.path("logs.db"), &key) == 0 && db_checkpoint_count(&wd) >= 2
    });
    server.write_all(numbered_lines(10, 30).as_bytes()).unwrap();
    wait_until("the late lines", || row_count(&wd.path("logs.db")) == 30);
    drop(server);
    wd.append("logs/access.log", numbered_lines(30, 40));
    wait_until("the new file's lines", || {
        row_count(&wd.path("logs.db")) == 40
    });
    assert!(follower.signal_and_wait("-INT").success());
    assert_eq!(urls(&db_rows(&wd.path("logs.db"))), expected_urls(0, 40));
}

fn db_checkpoint_count(wd: &Workdir) -> i64 {
    rusqlite::Connection::open(wd.path("logs.db"))
        .and_then(|c| c.query_row("SELECT count(*) FROM checkpoints", [], |r| r.get(0)))
        .unwrap_or(0)
}

#[test]
fn a_symlink_to_a_log_is_the_same_source() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 20));
    std::os::unix::fs::symlink(wd.path("logs/access.log"), wd.path("link.log")).unwrap();
    wd.cmd("parse-to-db").arg("--quiet").assert().success();
    wd.cmd("parse-to-db")
        .args(["link.log", "--quiet"])
        .assert()
        .success();
    assert_eq!(urls(&db_rows(&wd.path("logs.db"))), expected_urls(0, 20));
}

#[test]
fn truncation_under_fast_writes_never_stops_the_follower() {
    let wd = Workdir::new();
    wd.write("logs/access.log", "");
    let mut follower = wd.spawn(
        "continuous-parse",
        &["--quiet", "--poll-interval", "0.01", "--linger", "0"],
    );
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(wd.path("logs/access.log"))
        .unwrap();
    // Full-speed appends, truncated every 2,000 lines, 30 times.
    for round in 0..30 {
        for chunk in 0..20 {
            let from = round * 2000 + chunk * 100;
            file.write_all(numbered_lines(from, from + 100).as_bytes())
                .unwrap();
        }
        wd.truncate("logs/access.log");
        assert!(
            follower.try_wait().is_none(),
            "the follower exited during truncation {round}"
        );
    }
    file.write_all(numbered_lines(60_000, 60_010).as_bytes())
        .unwrap();
    // It still follows: the last lines arrive. (On a loaded machine the follower may not have
    // made its schema yet: row_count waits that out, where db_rows would fail.)
    wait_until("the last lines", || {
        row_count(&wd.path("logs.db")) > 0
            && urls(&db_rows(&wd.path("logs.db")))
                .iter()
                .any(|u| u == "/page/60009")
    });
    assert!(follower.signal_and_wait("-INT").success());
    // Copytruncate loses lines by nature, but never stores one twice.
    let got = urls(&db_rows(&wd.path("logs.db")));
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), got.len(), "a line was stored twice");
}

#[test]
fn an_idle_follower_writes_nothing() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 10));
    let follower = wd.spawn("continuous-parse", &["--quiet", "--poll-interval", "0.02"]);
    wait_until("the offset mirror", || wd.path("logs/.offset").exists());
    let stamp = |p: &str| {
        std::fs::metadata(wd.path(p))
            .map(|m| (m.len(), m.modified().unwrap()))
            .ok()
    };
    // The WAL takes every commit (the database file itself is written by the background WAL
    // checkpoint, which may land after the last commit).
    let before = (stamp("logs.db-wal"), stamp("logs/.offset"));
    // Fifty poll intervals with nothing new: a follower that commits or rewrites the mirror
    // on each wake-up would have changed these.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let after = (stamp("logs.db-wal"), stamp("logs/.offset"));
    assert!(
        before == after,
        "an idle follower wrote: {before:?} -> {after:?}"
    );
    // And it is still following.
    wd.append("logs/access.log", numbered_lines(10, 11));
    wait_until("the new line", || row_count(&wd.path("logs.db")) == 11);
    assert!(follower.signal_and_wait("-INT").success());
}

#[test]
fn stdin_into_an_existing_store_says_it_is_not_checkpointed() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 3));
    wd.cmd("parse-to-db").arg("--quiet").assert().success();
    wd.cmd("parse-to-db")
        .arg("-")
        .write_stdin(numbered_lines(3, 5))
        .assert()
        .success()
        .stderr(contains("standard input is not checkpointed"));
}

#[test]
fn an_input_that_fails_does_not_stop_the_others() {
    let wd = Workdir::new();
    wd.write("a.log", numbered_lines(0, 5));
    wd.write("c.log", numbered_lines(5, 10));
    std::fs::create_dir(wd.path("b.log")).unwrap();
    let out = wd
        .cmd("parse-to-db")
        .args(["a.log", "b.log", "c.log", "--json"])
        .assert()
        .code(2)
        .stderr(contains("b.log"));
    let doc: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(doc["committed"], serde_json::json!(["a.log", "c.log"]));
    assert_eq!(doc["failed"][0]["input"], "b.log");
    assert_eq!(urls(&db_rows(&wd.path("logs.db"))), expected_urls(0, 10));
}

/// Writes to `path` until the file system is full.
fn fill(path: &std::path::Path) {
    let mut filler = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 4096];
    while filler.write_all(&chunk).is_ok() {}
    let _ = filler.sync_all();
}

#[test]
fn a_full_disk_under_the_database_or_the_offset_mirror_is_waited_out() {
    let wd = Workdir::new();
    let (Some(_db), Some(_meta)) = (
        crate::workdir::Mount::tmpfs(&wd.path("small"), "size=2m"),
        crate::workdir::Mount::tmpfs(&wd.path("meta"), "size=64k"),
    ) else {
        return;
    };
    wd.write("logs/access.log", numbered_lines(0, 10));
    fill(&wd.path("meta/filler"));
    let follower = wd.spawn_logged(
        "continuous-parse",
        &[
            "--db",
            "small/logs.db",
            "--offset-file",
            "meta/.offset",
            "--poll-interval",
            "0.05",
            "--status-interval",
            "3600",
        ],
        "stderr.txt",
    );
    let rows = || row_count(&wd.path("small/logs.db"));
    wait_until("the first rows", || rows() == 10);
    // The mirror cannot be written: a warning, and the follower goes on.
    wait_until("the mirror warning", || {
        wd.text("stderr.txt").contains("cannot update meta/.offset")
    });
    // Now the database's disk fills up while lines keep coming.
    fill(&wd.path("small/filler"));
    wd.append("logs/access.log", numbered_lines(10, 3000));
    wait_until("the retry warning", || {
        wd.text("stderr.txt").contains("trying again")
    });
    std::fs::remove_file(wd.path("small/filler")).unwrap();
    std::fs::remove_file(wd.path("meta/filler")).unwrap();
    wait_until("every line", || rows() == 3000);
    let log_len = std::fs::metadata(wd.path("logs/access.log")).unwrap().len();
    wait_until("the mirror", || {
        wd.text("meta/.offset").trim() == log_len.to_string()
    });
    assert!(
        follower.signal_and_wait("-INT").success(),
        "{}",
        wd.text("stderr.txt")
    );
    assert_eq!(
        urls(&db_rows(&wd.path("small/logs.db"))),
        expected_urls(0, 3000)
    );
}

#[test]
fn status_totals_count_the_lines_read_from_renamed_files() {
    let wd = Workdir::new();
    wd.write("logs/access.log", numbered_lines(0, 10));
    let follower = wd.spawn_logged(
        "continuous-parse",
        &["--poll-interval", "0.05", "--status-interval", "0"],
        "stderr.txt",
    );
    wait_until("10 rows", || row_count(&wd.path("logs.db")) == 10);
    let mut server = std::fs::OpenOptions::new()
        .append(true)
        .open(wd.path("logs/access.log"))
        .unwrap();
    std::fs::rename(wd.path("logs/access.log"), wd.path("logs/access.log.1")).unwrap();
    wd.write("logs/access.log", numbered_lines(20, 25));
    server.write_all(numbered_lines(10, 20).as_bytes()).unwrap();
    wait_until("25 rows", || row_count(&wd.path("logs.db")) == 25);
    // The status line counts the lines of the renamed file too.
    wait_until("a status line with every line", || {
        wd.text("stderr.txt").contains(" 25 lines in total")
    });
    assert!(follower.signal_and_wait("-INT").success());
    let stderr = wd.text("stderr.txt");
    assert!(
        stderr.contains("continuous-parse: stopped after 25 lines (25 written, 0 rejected)"),
        "{stderr}"
    );
}
