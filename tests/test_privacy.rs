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

/// Every file under `dir` but `except`, with its mode.
fn created(dir: &Path, except: &[&str]) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.strip_prefix(dir).unwrap().display().to_string();
        if path.is_dir() {
            for (inner, m) in created(&path, except) {
                out.push((format!("{name}/{inner}"), m));
            }
        } else if !except.contains(&name.as_str()) {
            out.push((name, mode(&path)));
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
