//! A temporary working directory per test, and the binaries run inside it.
//!
//! Commands go through assert_cmd, which on failure prints the command line, the exit status,
//! stdout and stderr: what one needs to understand a failure in CI without re-running it.

use std::path::{Path, PathBuf};

pub struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Workdir {
        Workdir {
            dir: tempfile::Builder::new()
                .prefix("log-pipeline-test")
                .tempdir()
                .expect("tempdir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A command for one of the crate's binaries, run in this directory. The variables that
    /// change how tables look are removed, so that a test sees what a pipe gets by default
    /// whatever the shell that runs it exports; tests of them set them.
    pub fn cmd(&self, bin: &str) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::new(bin_path(bin));
        cmd.current_dir(self.dir.path());
        cmd.env_remove("COLUMNS").env_remove("NO_COLOR");
        cmd
    }

    /// Starts one of the crate's binaries in this directory; it is killed if the test fails.
    pub fn spawn(&self, bin: &str, args: &[&str]) -> Running {
        Running::spawn(
            std::process::Command::new(bin_path(bin))
                .args(args)
                .current_dir(self.root()),
        )
    }

    /// [`Workdir::spawn`] with stderr written to the file `stderr` in this directory.
    pub fn spawn_logged(&self, bin: &str, args: &[&str], stderr: &str) -> Running {
        let file = std::fs::File::create(self.path(stderr)).unwrap();
        Running::spawn(
            std::process::Command::new(bin_path(bin))
                .args(args)
                .current_dir(self.root())
                .stderr(file),
        )
    }

    /// The text of a file, empty if it does not exist (yet).
    pub fn text(&self, rel: &str) -> String {
        String::from_utf8_lossy(&std::fs::read(self.path(rel)).unwrap_or_default()).into_owned()
    }

    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) {
        let path = self.path(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, contents).unwrap();
    }

    pub fn append(&self, rel: &str, contents: impl AsRef<[u8]>) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(rel))
            .unwrap();
        f.write_all(contents.as_ref()).unwrap();
    }

    /// Empties a file in place (same inode), as `copytruncate` does.
    pub fn truncate(&self, rel: &str) {
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(self.path(rel))
            .unwrap();
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }
}

pub fn bin_path(bin: &str) -> PathBuf {
    let exe = match bin {
        "generate-logs" => env!("CARGO_BIN_EXE_generate-logs"),
        "parse-to-csv" => env!("CARGO_BIN_EXE_parse-to-csv"),
        "parse-to-db" => env!("CARGO_BIN_EXE_parse-to-db"),
        "continuous-parse" => env!("CARGO_BIN_EXE_continuous-parse"),
        "aggregate-csv" => env!("CARGO_BIN_EXE_aggregate-csv"),
        "aggregate-db" => env!("CARGO_BIN_EXE_aggregate-db"),
        other => panic!("no binary {other}"),
    };
    PathBuf::from(exe)
}

/// The real-world logs shipped beside the project (see ../shared/data/real/SOURCES.md).
pub fn real_logs_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/real");
    assert!(
        dir.join("SOURCES.md").exists(),
        "the real-log test data is expected at {} (the shared/ folder beside the project)",
        dir.display()
    );
    dir
}

/// Splits a file's bytes into lines the way the tools count them: a final line without a
/// newline still counts.
pub fn lines(data: &[u8]) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

/// How many rows the `logs` table has (0 before it exists).
pub fn row_count(db: &Path) -> usize {
    rusqlite::Connection::open(db)
        .and_then(|c| c.query_row("SELECT count(*) FROM logs", [], |r| r.get::<_, i64>(0)))
        .map_or(0, |n| n as usize)
}

/// Every row of the `logs` table, in id order, as text (NULL as "").
pub fn db_rows(path: &Path) -> Vec<Vec<String>> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let columns = log_pipeline::entry::COLUMNS;
    let quoted: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {} FROM logs ORDER BY id",
            quoted.join(", ")
        ))
        .unwrap();
    stmt.query_map([], |r| {
        (0..columns.len())
            .map(|i| {
                r.get::<_, rusqlite::types::Value>(i).map(|v| match v {
                    rusqlite::types::Value::Null => String::new(),
                    rusqlite::types::Value::Integer(n) => n.to_string(),
                    rusqlite::types::Value::Text(t) => t,
                    other => format!("{other:?}"),
                })
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .unwrap()
    .collect::<Result<Vec<_>, _>>()
    .unwrap()
}

/// Every record of a CSV after its header.
pub fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new().from_path(path).unwrap();
    reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect()
}

/// Lines in Combined Log Format, numbered from `from`, for tests that need to know exactly
/// which lines went where: line n has URL `/page/n`.
pub fn numbered_lines(from: usize, to: usize) -> String {
    (from..to)
        .map(|n| format!("10.0.{}.{} - - [01/Jan/2024:00:{:02}:{:02} +0000] \"GET /page/{n} HTTP/1.1\" 200 {n} \"-\" \"test\"\n", n / 250 % 250, n % 250 + 1, n / 60 % 60, n % 60))
        .collect()
}

/// The URLs of rows (column 5), for comparing with [`numbered_lines`].
pub fn urls(rows: &[Vec<String>]) -> Vec<String> {
    rows.iter().map(|r| r[5].clone()).collect()
}

pub fn expected_urls(from: usize, to: usize) -> Vec<String> {
    (from..to).map(|n| format!("/page/{n}")).collect()
}

/// A small tmpfs mounted at `dir`, for disk-full and read-only tests. Needs root (CI runs as
/// root); returns None where mounting is not allowed, and the test says it was skipped.
pub struct Mount(PathBuf);

impl Mount {
    pub fn tmpfs(dir: &Path, options: &str) -> Option<Mount> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs at {} (not root?)",
                dir.display()
            );
        }
        ok.then(|| Mount(dir.to_owned()))
    }
}

impl Mount {
    /// Makes the file system read-only, as a backup mounted read-only is. False (after saying
    /// SKIPPED) where that is not allowed.
    pub fn remount_read_only(&self) -> bool {
        let ok = std::process::Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: cannot remount {} read-only", self.0.display());
        }
        ok
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Checks that `db`'s packed copy covers every row and that aggregate-db answers from it
/// exactly what it answers from the rows (`--scan`), in every format, with and without
/// filters.
pub fn assert_packed_matches_rows(wd: &Workdir, db: &str) {
    let conn = rusqlite::Connection::open(wd.path(db)).unwrap();
    let (covered, last): (Option<i64>, i64) = conn
        .query_row(
            "SELECT (SELECT covered FROM packed_state), (SELECT coalesce(max(id), 0) FROM logs)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        covered,
        Some(last),
        "{db}: the packed copy covers every row"
    );
    conn.execute_batch("BEGIN").unwrap();
    let query = log_pipeline::report::Query::all();
    assert!(
        log_pipeline::read::packed::counts(&conn, &query)
            .unwrap()
            .is_some(),
        "{db}: reports are answered from the packed copy"
    );
    for args in [
        &["--format", "json"][..],
        &["--format", "csv", "--status", "4xx", "--top", "5"],
        &["--url", "^/(products|api)", "--bucket", "hour"],
        &["--until", "2024-01-01T06:00:00Z"],
    ] {
        let run = |scan: bool| {
            let mut cmd = wd.cmd("aggregate-db");
            cmd.arg(db).args(args);
            if scan {
                cmd.arg("--scan");
            }
            cmd.assert().success().get_output().stdout.clone()
        };
        let (packed, rows) = (run(false), run(true));
        assert!(
            packed == rows,
            "{db} {args:?}: packed and rows differ:\n{}\n---\n{}",
            String::from_utf8_lossy(&packed),
            String::from_utf8_lossy(&rows)
        );
    }
}

/// A spawned process that is killed (SIGKILL) and reaped when dropped, so a failing test never
/// leaves a follower or a writer running behind it.
pub struct Running(pub std::process::Child);

impl Running {
    pub fn spawn(cmd: &mut std::process::Command) -> Running {
        Running(cmd.spawn().expect("spawn"))
    }

    /// Sends `sig` (`-INT`, `-TERM`, `-KILL`) and waits for the exit status.
    pub fn signal_and_wait(mut self, sig: &str) -> std::process::ExitStatus {
        let sent = std::process::Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill {sig} failed");
        self.0.wait().expect("wait")
    }

    /// Waits for it to exit by itself.
    pub fn wait(mut self) -> std::process::ExitStatus {
        self.0.wait().expect("wait")
    }

    /// Has it exited already? Then its status.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.0.try_wait().expect("try_wait")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `done` every few milliseconds until it holds; fails with `what` after a deadline
/// that only a broken program reaches (generous, so a loaded machine never trips it).
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// The committed offset of `source` (an absolute path) in a database's checkpoints, or 0.
pub fn db_offset(db: &Path, source: &str) -> u64 {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    conn.query_row(
        r#"SELECT "offset" FROM checkpoints WHERE source = ?1"#,
        [source],
        |r| r.get::<_, i64>(0),
    )
    .map_or(0, |n| n as u64)
}

/// The committed offset of `source` in a CSV's checkpoint file, or 0.
pub fn csv_offset(csv: &Path, source: &str) -> u64 {
    let Ok(bytes) = std::fs::read(format!("{}.checkpoint", csv.display())) else {
        return 0;
    };
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return 0;
    };
    doc["sources"][source]["offset"].as_u64().unwrap_or(0)
}

/// Looks in PATH and in the sbin directories, which a non-root PATH often lacks.
pub fn find_program(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Whether this runs under CI, where a missing tool the tests need is a failure, not a skip:
/// `.ci/run` installs them.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The programs `names`, found as [`find_program`] finds them, or None after saying SKIPPED
/// (with `install`, the command that installs them). Under CI a missing one fails the test:
/// `.ci/run` installs them.
pub fn programs_or_skip(names: &[&str], install: &str) -> Option<Vec<PathBuf>> {
    let found: Vec<Option<PathBuf>> = names.iter().map(|n| find_program(n)).collect();
    if let Some(i) = found.iter().position(Option::is_none) {
        let missing = names[i];
        assert!(
            !in_ci(),
            "{missing} not found, and CI is set: .ci/run installs it"
        );
        eprintln!("SKIPPED: {missing} not found ({install})");
        return None;
    }
    Some(found.into_iter().flatten().collect())
}

/// The value of `data-v` on the element whose id is `id` in some HTML: the bare number (or
/// text) the HTML report shows formatted.
pub fn data_v(html: &str, id: &str) -> Option<String> {
    let rest = &html[html.find(&format!("id=\"{id}\""))?..];
    let start = rest.find("data-v=\"")? + "data-v=\"".len();
    Some(rest[start..start + rest[start..].find('"')?].to_string())
}

/// `aggregate-db --format json` on the database `out.db` of `wd`, with `args`.
pub fn out_db_json(wd: &Workdir, args: &[&str]) -> serde_json::Value {
    let out = wd
        .cmd("aggregate-db")
        .args(["--db", "out.db", "--format", "json"])
        .args(args)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}
