//! The SQLite store: the `logs` table of `logs.db`, with its checkpoints in the same database.
//!
//! Rows and the checkpoint that covers them are committed in one transaction, so the database
//! is always in step with itself whenever the process dies. WAL mode lets `aggregate-db` (and
//! anyone with `sqlite3`) read while a parser writes; a busy timeout makes two writers (cron's
//! `parse-to-db` and a running `continuous-parse`) wait for each other instead of failing.

use std::any::Any;
use std::ffi::{c_char, c_int, c_void};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use rusqlite::{Connection, OpenFlags, OptionalExtension, ffi, params};

use crate::batch::{Batch, Encoder, Position, Prepare};
use crate::checkpoint::Checkpoint;
use crate::entry::{COLUMNS, COMBINED_COLUMNS, LogEntry, Rfc3339};
use crate::packed::{BatchKeys, Packer};
use crate::parse::parse_stored_time;
use crate::row::{Arena, Row, Span};
use crate::sink::{Origin, Rejected, Sink, Update};
use crate::zone::LogOffsets;

/// `PRAGMA application_id` of our databases ("LOGP"), so a database that is not ours is
/// recognised before anything is written to it.
pub const APPLICATION_ID: i64 = 0x4C4F_4750;

/// `PRAGMA user_version`: the schema version, for migrations.
///
/// 1: `logs`, `checkpoints`, `rejects`. 2: the packed copy of the rows for reports
/// ([`crate::packed`]), built from the existing rows on the first open for writing. 3: the
/// columns of formats other than Combined ([`EXTRA_COLUMNS`]), NULL in older rows. 5: the
/// offsets the rows were written in (`log_offsets` in `settings`); rows stored by an earlier
/// version are of unknown offsets, so a database upgraded with rows records them as mixed,
/// and an earlier version, which would append rows without updating the record, refuses it.
pub const SCHEMA_VERSION: i64 = 5;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY,
    ip TEXT NOT NULL,
    ident TEXT,
    "user" TEXT,
    timestamp TEXT NOT NULL,
    method TEXT,
    url TEXT NOT NULL,
    protocol TEXT,
    status INTEGER NOT NULL,
    bytes INTEGER,
    referrer TEXT,
    user_agent TEXT,
    vhost TEXT,
    port INTEGER,
    response_time_us INTEGER,
    upstream_time_us INTEGER,
    forwarded_for TEXT
);
CREATE TABLE IF NOT EXISTS checkpoints (
    source TEXT PRIMARY KEY,
    dev INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    fingerprint_len INTEGER NOT NULL,
    fingerprint INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    line INTEGER NOT NULL,
    tail_hash INTEGER NOT NULL,
    updated TEXT NOT NULL,
    format TEXT
);
CREATE TABLE IF NOT EXISTS settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejects (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    line INTEGER NOT NULL,
    reason TEXT NOT NULL,
    raw BLOB NOT NULL,
    stored TEXT
);
"#;

/// The columns of `logs` added in schema 3, with their types: added in place to the tables of
/// earlier versions.
const EXTRA_COLUMNS: [(&str, &str); 5] = [
    ("vhost", "TEXT"),
    ("port", "INTEGER"),
    ("response_time_us", "INTEGER"),
    ("upstream_time_us", "INTEGER"),
    ("forwarded_for", "TEXT"),
];

/// The columns of the original scripts' `logs` table, which we migrate in place.
const LEGACY_COLUMNS: [&str; 6] = ["id", "ip", "timestamp", "url", "status", "user_agent"];

/// Opens a database for writing: creates or checks the schema, sets WAL and the busy timeout.
pub fn open_for_writing(
    path: &Path,
    busy_timeout: Duration,
    notify: &mut dyn FnMut(String),
) -> anyhow::Result<Connection> {
    let context = || format!("cannot open database {}", path.display());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        bail!(
            "cannot open database {}: directory {} does not exist",
            path.display(),
            dir.display()
        );
    }
    let conn = Connection::open(path).with_context(context)?;
    conn.busy_timeout(busy_timeout).with_context(context)?;
    // Ownership is checked before anything (even the WAL switch) touches the file.
    check_ownership(&conn, path).map_err(|e| explain_any(e, path, busy_timeout))?;
    // 16 KiB pages for a new database (an existing one keeps its own): a quarter of the
    // b-tree pages and page writes per row of the 4 KiB default, for the writer and for
    // readers of the packed copy alike.
    conn.execute_batch("PRAGMA page_size=16384")
        .with_context(context)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(|e| explain(e, path, busy_timeout))
        .with_context(context)?;
    if !mode.eq_ignore_ascii_case("wal") {
        notify(format!(
            "{}: could not switch to WAL mode (got {mode}); readers may wait for writers",
            path.display()
        ));
    }
    // NORMAL in WAL mode: a commit survives a killed process; only a power cut can lose the
    // last commits, never half of one. An 8 MiB page cache: a commit's pages spill to the WAL
    // before it either way (a commit of --batch-lines rows is far larger), so a bigger cache
    // only adds to the writer's memory, which must stay bounded whatever the database size.
    conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA cache_size=-8192")
        .with_context(context)?;
    migrate(&conn, path, notify).map_err(|e| explain_any(e, path, busy_timeout))?;
    Ok(conn)
}

/// The columns of `logs` that reports read.
const REPORT_COLUMNS: [&str; 9] = [
    "id",
    "ip",
    "timestamp",
    "method",
    "url",
    "status",
    "bytes",
    "referrer",
    "user_agent",
];

/// Opens a database for reports: read-only, creating nothing, and only once everything that
/// stands between the user and a report has been checked, so that each failure says what it
/// is: the path is a file (not missing, not a directory) that the user may read, it is a
/// SQLite database, and it holds a `logs` table with the columns reports read.
///
/// A WAL database needs its `-shm` file, which SQLite cannot create where the directory is
/// read-only (a backup mounted read-only): such a database is opened as immutable instead,
/// unless its `-wal` file holds changes, which an immutable reader would not see.
pub fn open_logs_for_reading(path: &Path, busy_timeout: Duration) -> anyhow::Result<Connection> {
    let cannot_read = || format!("cannot read database {}", path.display());
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "database {} does not exist: fill it first with `parse-to-db` (or `continuous-parse`)",
            path.display()
        ),
        Err(e) => return Err(e).with_context(cannot_read),
        Ok(meta) if meta.is_dir() => bail!(
            "{} is a directory, not a database file (give the path of a database, such as {})",
            path.display(),
            path.join("logs.db").display()
        ),
        Ok(_) => {}
    }
    // SQLite would say only "unable to open database file" (no permission, say).
    readable(path).with_context(cannot_read)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).with_context(cannot_read)?;
    conn.busy_timeout(busy_timeout).with_context(cannot_read)?;
    // The first read opens the WAL files: where that fails, whatever the reason, the file
    // itself is known to be readable (above), so what is missing is the right to create them.
    let conn = match conn.query_row("PRAGMA application_id", [], |r| r.get::<_, i64>(0)) {
        Err(e) if can_not_open_beside(&e) => {
            let wal = PathBuf::from(format!("{}-wal", path.display()));
            if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
                return Err(e).with_context(|| {
                    format!(
                        "cannot read database {} where it is: SQLite cannot create its -shm file \
                         there (a read-only directory?), and without one it would not see the \
                         changes in {}; copy both files to a writable directory",
                        path.display(),
                        wal.display()
                    )
                });
            }
            let uri = immutable_uri(path).with_context(cannot_read)?;
            Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
                .with_context(cannot_read)?
        }
        _ => conn,
    };
    check_logs(&conn, path).map_err(|e| explain_read(e, path, busy_timeout))?;
    Ok(conn)
}

/// Whether this process may read `path`, asked without opening it. Closing a descriptor of a
/// file drops every POSIX lock the process holds on it, those of SQLite's own connections
/// included: with a connection kept open (the live page's), a writer would then think itself
/// the database's last user and delete the WAL under it, leaving that connection reading a
/// stale index ("database disk image is malformed").
///
/// `access(2)`, not `faccessat`: glibc makes the latter the newer `faccessat2` system call,
/// which older container sandboxes refuse with EPERM. Only a refusal of the permission is an
/// answer; any other failure leaves the question to SQLite's open.
fn readable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c_path` is a NUL-terminated string that lives past the call, which only reads
    // it.
    if unsafe { libc::access(c_path.as_ptr(), libc::R_OK) } == 0 {
        return Ok(());
    }
    match std::io::Error::last_os_error() {
        e if e.raw_os_error() == Some(libc::EACCES) => Err(e),
        _ => Ok(()),
    }
}

/// Is this the error of SQLite failing to open or create the files beside a database (its
/// `-shm` and `-wal`)?
fn can_not_open_beside(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly)
    )
}

/// `path` as a SQLite URI filename that opens it immutable: no locks, no `-shm`, no `-wal`.
///
/// The path is made absolute (a URI's path must not begin with `//`, which would name a host)
/// and every byte but the unreserved ones is percent-encoded (`?`, `#` and `%` have a meaning
/// in a URI).
fn immutable_uri(path: &Path) -> std::io::Result<String> {
    use std::fmt::Write;
    use std::os::unix::ffi::OsStrExt;
    let absolute = std::fs::canonicalize(path)?;
    let mut uri = String::from("file:");
    for &b in absolute.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(char::from(b));
        } else {
            let _ = write!(uri, "%{b:02X}");
        }
    }
    uri.push_str("?immutable=1");
    Ok(uri)
}

/// Refuses a database that holds no `logs` table that reports can read.
fn check_logs(conn: &Connection, path: &Path) -> anyhow::Result<()> {
    let app_id: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    if app_id != 0 && app_id != APPLICATION_ID {
        bail!(
            "{} is not a log-pipeline database (application id {app_id:#x})",
            path.display()
        );
    }
    let columns = table_columns(conn, "logs")?;
    if columns.is_empty() {
        bail!(
            "{} has no `logs` table: fill it first with `parse-to-db` (or `continuous-parse`)",
            path.display()
        );
    }
    if columns.iter().map(String::as_str).eq(LEGACY_COLUMNS) {
        bail!(
            "{} holds the original scripts' `logs` table: open it once with `parse-to-db --db {}` \
             (or `continuous-parse`), which upgrades it in place",
            path.display(),
            path.display()
        );
    }
    let missing: Vec<&str> = (REPORT_COLUMNS.iter().copied())
        .filter(|c| !columns.iter().any(|have| have == c))
        .collect();
    if !missing.is_empty() {
        bail!(
            "{} is not a log-pipeline database: its `logs` table has the columns {}, and lacks {}",
            path.display(),
            columns.join(", "),
            missing.join(", ")
        );
    }
    Ok(())
}

/// [`explain_any`] for a reader: SQLite's terse errors turned into what a user can act on.
fn explain_read(e: anyhow::Error, path: &Path, busy_timeout: Duration) -> anyhow::Error {
    let code = e
        .chain()
        .find_map(|c| c.downcast_ref::<rusqlite::Error>())
        .and_then(|e| e.sqlite_error_code());
    match code {
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
            e.context(format!("{} is not a SQLite database or is corrupt", path.display()))
        }
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => e.context(format!(
            "database {} stayed locked by another process for longer than the busy timeout ({:.1}s)",
            path.display(),
            busy_timeout.as_secs_f64()
        )),
        Some(_) => e.context(format!("cannot read database {}", path.display())),
        // Our own message, which names the database already.
        None => e,
    }
}

fn explain(e: rusqlite::Error, path: &Path, busy_timeout: Duration) -> anyhow::Error {
    explain_any(e.into(), path, busy_timeout)
}

/// Turns SQLite's terse errors into what a user can act on.
fn explain_any(e: anyhow::Error, path: &Path, busy_timeout: Duration) -> anyhow::Error {
    let code = e
        .chain()
        .find_map(|c| c.downcast_ref::<rusqlite::Error>())
        .and_then(|e| e.sqlite_error_code());
    match code {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => e.context(format!(
            "database {} stayed locked by another process for longer than the busy timeout ({:.1}s; see --busy-timeout)",
            path.display(),
            busy_timeout.as_secs_f64()
        )),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
            e.context(format!("{} is not a SQLite database or is corrupt", path.display()))
        }
        Some(rusqlite::ErrorCode::DiskFull) => e.context(format!("disk full while writing {}", path.display())),
        Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::PermissionDenied) => {
            e.context(format!("cannot write database {}", path.display()))
        }
        _ => e.context(format!("database {}", path.display())),
    }
}

fn table_columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info(\"{table}\")"))?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(1))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(names)
}

/// Refuses a database that is not ours: another application's, a newer schema, or tables we
/// do not know. A new empty database and the original scripts' one are accepted.
fn check_ownership(conn: &Connection, path: &Path) -> anyhow::Result<()> {
    let app_id: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if app_id == APPLICATION_ID {
        if version > SCHEMA_VERSION {
            bail!(
                "{} was written by a newer log-pipeline (schema {version}, this one knows {SCHEMA_VERSION})",
                path.display()
            );
        }
        return Ok(());
    }
    if app_id != 0 {
        bail!(
            "{} is not a log-pipeline database (application id {app_id:#x})",
            path.display()
        );
    }
    let logs = table_columns(conn, "logs")?;
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
        [],
        |r| r.get(0),
    )?;
    if !logs.is_empty() && logs.iter().map(String::as_str).ne(LEGACY_COLUMNS) {
        bail!(
            "{} is not a log-pipeline database (it has a `logs` table with columns {}); choose another --db",
            path.display(),
            logs.join(", ")
        );
    }
    if logs.is_empty() && tables > 0 {
        bail!(
            "{} is not a log-pipeline database (it has other tables and no `logs`); choose another --db",
            path.display()
        );
    }
    Ok(())
}

/// Creates the schema in a new database and upgrades the original scripts' five-column `logs`
/// table in place (old rows keep NULL in the new columns). Ownership was checked before.
fn migrate(conn: &Connection, path: &Path, notify: &mut dyn FnMut(String)) -> anyhow::Result<()> {
    let app_id: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if app_id == APPLICATION_ID && version == SCHEMA_VERSION {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| -> anyhow::Result<()> {
        let logs = table_columns(conn, "logs")?;
        if !logs.is_empty() && app_id != APPLICATION_ID {
            notify(format!(
                "{}: upgrading the original scripts' `logs` table to the full schema",
                path.display()
            ));
            for (column, kind) in [
                ("ident", "TEXT"),
                ("\"user\"", "TEXT"),
                ("method", "TEXT"),
                ("protocol", "TEXT"),
                ("bytes", "INTEGER"),
                ("referrer", "TEXT"),
            ] {
                conn.execute_batch(&format!("ALTER TABLE logs ADD COLUMN {column} {kind}"))?;
            }
        }
        if !logs.is_empty() {
            for (column, kind) in EXTRA_COLUMNS {
                if !logs.iter().any(|c| c == column) {
                    conn.execute_batch(&format!("ALTER TABLE logs ADD COLUMN {column} {kind}"))?;
                }
            }
        }
        let rejects = table_columns(conn, "rejects")?;
        if !rejects.is_empty() && !rejects.iter().any(|c| c == "stored") {
            // When each reject was stored (it has no time of its own): what --retain goes by.
            conn.execute_batch("ALTER TABLE rejects ADD COLUMN stored TEXT")?;
        }
        let packed_state = table_columns(conn, "packed_state")?;
        if !packed_state.is_empty() && !packed_state.iter().any(|c| c == "strings_generation") {
            conn.execute_batch(
                "ALTER TABLE packed_state ADD COLUMN strings_generation INTEGER NOT NULL DEFAULT 0",
            )?;
        }
        let checkpoints = table_columns(conn, "checkpoints")?;
        if !checkpoints.is_empty() && !checkpoints.iter().any(|c| c == "format") {
            conn.execute_batch("ALTER TABLE checkpoints ADD COLUMN format TEXT")?;
        }
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(crate::packed::SCHEMA)?;
        // Rows of an earlier version: their offsets are not known, so none can be the
        // store's own (see `SCHEMA_VERSION`).
        if !logs.is_empty() && version < 5 {
            conn.execute(
                "INSERT OR IGNORE INTO settings (name, value) \
                 SELECT 'log_offsets', ?1 WHERE EXISTS (SELECT 1 FROM logs)",
                [LogOffsets::Mixed.to_setting()],
            )?;
        }
        conn.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
        ))?;
        Ok(())
    })();
    match result {
        Ok(()) => {
            conn.execute_batch("COMMIT")?;
            Ok(())
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// What a timestamp the tools write looks like: the rows `--retain` compares as text.
const CANONICAL_TIME: &str =
    "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]Z";

/// The deletion of [`SqliteSink::retain`], inside its transaction. Rows compare by their
/// timestamp text, which the index orders, so the text must be the tools' own form: the
/// first time, the old rows of a database upgraded from the original scripts
/// (`10/Oct/2000:13:55:36 -0700`) are rewritten to it, once for all (recorded in
/// `settings`). A timestamp that is not a time at all is never deleted (and the packed
/// copy is off for such a store).
fn retain_rows(conn: &Connection, before: chrono::DateTime<chrono::Utc>) -> rusqlite::Result<u64> {
    let canonical: Option<String> = conn
        .query_row(
            "SELECT value FROM settings WHERE name = 'timestamps'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if canonical.is_none() {
        let old: Vec<(i64, String)> = conn
            .prepare(&format!(
                "SELECT id, timestamp FROM logs WHERE timestamp NOT GLOB '{CANONICAL_TIME}'"
            ))?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut update = conn.prepare("UPDATE logs SET timestamp = ?2 WHERE id = ?1")?;
        for (id, text) in old {
            if let Some(t) = crate::parse::parse_stored_time(&text) {
                update.execute(params![id, crate::entry::Rfc3339(t).to_string()])?;
            }
        }
        conn.execute(
            "INSERT INTO settings (name, value) VALUES ('timestamps', 'rfc3339')",
            [],
        )?;
    }
    let cutoff = crate::entry::Rfc3339(before).to_string();
    let deleted = conn.execute(
        &format!("DELETE FROM logs WHERE timestamp < ?1 AND timestamp GLOB '{CANONICAL_TIME}'"),
        [&cutoff],
    )? as u64;
    conn.execute("DELETE FROM rejects WHERE stored < ?1", [&cutoff])?;
    crate::packed::retain(conn, before.timestamp(), deleted)?;
    Ok(deleted)
}

/// The offsets the stored rows' times were written in (see [`LogOffsets`]): unknown while
/// no stored line had one (and in a database of an earlier version only read, never
/// written to: [`migrate`] marks one with rows as mixed).
pub fn stored_offsets(conn: &Connection) -> rusqlite::Result<LogOffsets> {
    let value: Option<String> = conn
        .query_row(
            "SELECT value FROM settings WHERE name = 'log_offsets'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(value.map_or(LogOffsets::Unknown, |v| LogOffsets::from_setting(&v)))
}

/// The log format saved with `source`'s checkpoint in the database at `db`, if it has one:
/// for a follower asked for `auto` before its log has lines to tell the format by. Read
/// only; any failure (no database yet, not ours) is no saved format.
pub fn saved_format(db: &Path, source: &str) -> Option<String> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    let format: Option<String> = conn
        .query_row(
            "SELECT format FROM checkpoints WHERE source = ?1",
            [source],
            |r| r.get(0),
        )
        .ok()?;
    // Saved before formats were: the only format there was.
    Some(format.unwrap_or_else(|| "combined".to_owned()))
}

/// Reads every saved checkpoint, with its key.
pub fn load_checkpoints(conn: &Connection) -> rusqlite::Result<Vec<(String, Checkpoint)>> {
    let mut stmt = conn.prepare_cached(
        r#"SELECT source, dev, inode, fingerprint_len, fingerprint, "offset", line, tail_hash FROM checkpoints ORDER BY source"#,
    )?;
    stmt.query_map([], |r| Ok((r.get(0)?, checkpoint_of(r, 1)?)))?
        .collect()
}

/// The checkpoint in the seven columns of `r` from `first` on.
fn checkpoint_of(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Checkpoint> {
    let n = |i: usize| r.get::<_, i64>(first + i).map(|v| v as u64);
    Ok(Checkpoint {
        dev: n(0)?,
        inode: n(1)?,
        fingerprint_len: n(2)?,
        fingerprint: n(3)?,
        offset: n(4)?,
        line: n(5)?,
        tail_hash: n(6)?,
    })
}

/// Reads the checkpoint saved for `source`.
pub fn load_checkpoint(conn: &Connection, source: &str) -> rusqlite::Result<Option<Checkpoint>> {
    conn.query_row(
        r#"SELECT dev, inode, fingerprint_len, fingerprint, "offset", line, tail_hash FROM checkpoints WHERE source = ?1"#,
        [source],
        |r| checkpoint_of(r, 0),
    )
    .optional()
}

/// Writes entries into `logs`, rejects into `rejects`, checkpoints into `checkpoints`.
pub struct SqliteSink {
    conn: WriteConnection,
    path: PathBuf,
    busy_timeout: Duration,
    in_transaction: bool,
    packer: Packer,
    /// The checkpoints as this writer last read or wrote them. A commit checks, inside its
    /// transaction, that the database still holds these: if another writer moved one (it
    /// would have to ignore the store's lock), the batch is rolled back instead of storing its
    /// lines a second time.
    known: std::collections::HashMap<String, Option<Checkpoint>>,
    /// Saved with each checkpoint (see [`Sink::set_log_format`]).
    log_format: String,
    /// Where the last `--retain` cut ([`SqliteSink::retain`]).
    retained: Option<chrono::DateTime<chrono::Utc>>,
    /// Drops the thread with the sink (its connection is the database's last: SQLite then
    /// copies back what is left and removes the WAL).
    _wal_copier: Option<WalCopier>,
    /// Frames in the WAL from which the writer copies it back before its next transaction (see
    /// [`SqliteSink::copy_back_for_wal_restart`]); a field, for tests.
    wal_restart_frames: i64,
}

/// [`SqliteSink::wal_restart_frames`]: 256 MiB of our 16 KiB pages (64 MiB for a database of
/// 4 KiB pages from an earlier version). Large next to a commit's pages, so that the writer
/// copies back once every several commits, not after each.
const WAL_RESTART_FRAMES: i64 = 16_384;

/// Copies the WAL back into the database on a thread of its own.
///
/// Left to itself, SQLite checkpoints inside the writer's COMMIT, so the writer (the bottleneck
/// of parse-to-db) also pays for writing every page a second time and for the fsyncs. A
/// passive checkpoint from another connection does the same work beside it, without blocking
/// it or any reader.
struct WalCopier {
    /// Dropped to stop the thread: it wakes at once, instead of after its pause.
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WalCopier {
    fn start(path: &Path, busy_timeout: Duration) -> Option<WalCopier> {
        let conn = Connection::open(path).ok()?;
        conn.busy_timeout(busy_timeout).ok()?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            loop {
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                match stopped.recv_timeout(Duration::from_millis(100)) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            }
        });
        Some(WalCopier {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for WalCopier {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A batch's rows as they are bound to the INSERT, built by a parsing thread (the store's
/// [`Encoder`]) and inserted [`ROWS_PER_INSERT`] at a time by the writer.
///
/// One multi-row `INSERT ... VALUES (...), (...), ...` costs SQLite far less than as many
/// single-row statements (one VDBE run and one reset for many rows). The writer's thread sets
/// parse-to-db's pace, so what can be done before SQLite's part (the timestamp's text, the
/// values laid out in the order they are bound) is done by the parsing thread, beside it.
#[derive(Default)]
struct BatchRows {
    text: Arena,
    ts: Vec<u8>,
    rows: Vec<BatchRow>,
    /// A row holds a value of a column beyond Combined's: the rows are inserted with every
    /// column, not only Combined's (which leaves the others NULL, at less cost per row).
    extra: bool,
}

/// A row of a batch: its text columns as spans of [`BatchRows::text`] (`None` for NULL).
#[derive(Debug, Clone, Copy)]
struct BatchRow {
    ip: Option<Span>,
    ident: Option<Span>,
    user: Option<Span>,
    timestamp: Option<Span>,
    method: Option<Span>,
    url: Option<Span>,
    protocol: Option<Span>,
    status: i64,
    bytes: Option<i64>,
    referrer: Option<Span>,
    user_agent: Option<Span>,
    vhost: Option<Span>,
    port: Option<i64>,
    response_time_us: Option<i64>,
    upstream_time_us: Option<i64>,
    forwarded_for: Option<Span>,
}

impl BatchRow {
    /// Its values in the column order of [`insert_sql`]: the one place that knows that order.
    fn values<'t>(&self, text: &'t Arena) -> [Value<'t>; COLUMNS.len()] {
        let t = |span| Value::Text(text.get(span));
        [
            t(self.ip),
            t(self.ident),
            t(self.user),
            t(self.timestamp),
            t(self.method),
            t(self.url),
            t(self.protocol),
            Value::Int(Some(self.status)),
            Value::Int(self.bytes),
            t(self.referrer),
            t(self.user_agent),
            t(self.vhost),
            Value::Int(self.port),
            Value::Int(self.response_time_us),
            Value::Int(self.upstream_time_us),
            t(self.forwarded_for),
        ]
    }
}

/// Rows per multi-row INSERT: 64 rows of 16 values stay far below SQLite's 32,766 variables.
const ROWS_PER_INSERT: usize = 64;

/// The INSERT of `rows` rows of the first `columns` of [`COLUMNS`].
///
/// It is `OR FAIL`, not the default `ABORT`: a statement that may abort after some of its rows
/// went in (a multi-row INSERT into NOT NULL columns) makes SQLite copy every page it touches
/// into a statement journal first, so that it can undo the statement alone, and that journal
/// spills to a temporary file. We never keep a transaction whose statement failed (the writer
/// rolls the whole batch back), so nothing needs undoing at the statement's level.
fn insert_sql(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(","));
    let columns: Vec<String> = COLUMNS[..columns]
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect();
    let mut sql = format!("INSERT OR FAIL INTO logs ({}) VALUES ", columns.join(", "));
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&row);
    }
    sql
}

impl BatchRows {
    /// Room for as many rows and as much text as `like` held, so that a batch's rows are not
    /// grown to their size by doubling, batch after batch.
    fn with_room_of(like: &BatchRows) -> BatchRows {
        BatchRows {
            text: Arena::with_capacity(like.text.len()),
            rows: Vec::with_capacity(like.rows.len()),
            ..BatchRows::default()
        }
    }

    fn push(&mut self, e: &LogEntry<'_>) {
        fn b<'a>(c: &'a Option<std::borrow::Cow<'_, str>>) -> Option<&'a str> {
            c.as_deref()
        }
        self.ts.clear();
        Rfc3339(e.timestamp).write_to(&mut self.ts);
        let ts = std::str::from_utf8(&self.ts).expect("ASCII digits");
        let text = &mut self.text;
        self.rows.push(BatchRow {
            ip: text.push(Some(&e.ip)),
            ident: text.push(b(&e.ident)),
            user: text.push(b(&e.user)),
            timestamp: text.push(Some(ts)),
            method: text.push(b(&e.method)),
            url: text.push(Some(&e.url)),
            protocol: text.push(b(&e.protocol)),
            status: i64::from(e.status),
            bytes: e.bytes.map(|n| n as i64),
            referrer: text.push(b(&e.referrer)),
            user_agent: text.push(b(&e.user_agent)),
            vhost: text.push(b(&e.extra.vhost)),
            port: e.extra.port.map(i64::from),
            // Within i64: no response takes 292,000 years.
            response_time_us: e
                .extra
                .response_time_us
                .map(|n| n.min(i64::MAX as u64) as i64),
            upstream_time_us: e
                .extra
                .upstream_time_us
                .map(|n| n.min(i64::MAX as u64) as i64),
            forwarded_for: text.push(b(&e.extra.forwarded_for)),
        });
        self.extra |= !e.extra.is_empty();
    }

    /// How many of [`COLUMNS`] the rows are inserted with (see [`BatchRows::extra`]).
    fn columns(&self) -> usize {
        crate::entry::columns(self.extra).len()
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    #[cfg(test)]
    fn clear(&mut self) {
        self.text.clear();
        self.rows.clear();
        self.extra = false;
    }

    /// Passes every value of the rows in `range`, with its 1-based parameter index in an
    /// INSERT made by [`insert_sql`] for that many rows and [`BatchRows::columns`], to `bind`.
    fn each_value<E>(
        &self,
        range: Range<usize>,
        mut bind: impl FnMut(usize, Value<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut index = 1;
        for row in &self.rows[range] {
            for value in row.values(&self.text).into_iter().take(self.columns()) {
                bind(index, value)?;
                index += 1;
            }
        }
        Ok(())
    }

    /// Binds the rows in `range` to `stmt` (made by [`insert_sql`] for that many rows and
    /// [`BatchRows::columns`]) and runs it.
    fn insert(
        &self,
        range: Range<usize>,
        stmt: &mut rusqlite::Statement<'_>,
    ) -> rusqlite::Result<()> {
        self.each_value(range, |index, value| match value {
            Value::Text(t) => stmt.raw_bind_parameter(index, t),
            Value::Int(n) => stmt.raw_bind_parameter(index, n),
        })?;
        stmt.raw_execute()?;
        Ok(())
    }
}

/// What the parsing threads build from a batch for this store: its rows, and their keys in
/// the packed copy. It is the store's [`Encoder`] too: built entry by entry, then handed over
/// whole with the batch.
#[derive(Default)]
struct Encoded {
    rows: BatchRows,
    keys: BatchKeys,
}

impl Encoder for Encoded {
    fn push(&mut self, entry: &LogEntry<'_>, at: Position) {
        self.rows.push(entry);
        Encoder::push(&mut self.keys, entry, at);
    }

    fn finish(&mut self) -> Box<dyn Any + Send> {
        let next = Encoded {
            rows: BatchRows::with_room_of(&self.rows),
            keys: BatchKeys::with_room_of(&self.keys),
        };
        Box::new(std::mem::replace(self, next))
    }
}

/// A value of a row (`None` is NULL).
#[derive(Clone, Copy)]
enum Value<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
}

impl SqliteSink {
    pub fn open(
        path: &Path,
        busy_timeout: Duration,
        notify: &mut dyn FnMut(String),
    ) -> anyhow::Result<SqliteSink> {
        let conn = open_for_writing(path, busy_timeout, notify)?;
        // Two cached statements per partial-batch size (Combined's columns, or every
        // column: see `BatchRows::columns`), plus the few others.
        conn.set_prepared_statement_cache_capacity(2 * ROWS_PER_INSERT + 8);
        let mut conn = WriteConnection::new(conn)?;
        let wal_copier = WalCopier::start(path, busy_timeout);
        if wal_copier.is_some() {
            // The copier copies instead of SQLite's automatic checkpoints, whose WAL hook
            // then counts the WAL's frames for `copy_back_for_wal_restart`.
            conn.execute_batch("PRAGMA wal_autocheckpoint=0")?;
            conn.count_wal_frames();
        }
        let mut sink = SqliteSink {
            conn,
            path: path.to_owned(),
            busy_timeout,
            in_transaction: false,
            packer: Packer::default(),
            known: Default::default(),
            log_format: "combined".to_owned(),
            retained: None,
            _wal_copier: wal_copier,
            wal_restart_frames: WAL_RESTART_FRAMES,
        };
        sink.catch_up(notify).inspect_err(|_| sink.rollback())?;
        Ok(sink)
    }

    fn begin(&mut self) -> anyhow::Result<Option<String>> {
        if self.in_transaction {
            return Ok(None);
        }
        self.copy_back_for_wal_restart();
        // IMMEDIATE takes the write lock now (waiting up to the busy timeout), so a batch
        // never fails half-way because another writer got there first.
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| explain(e, &self.path, self.busy_timeout))?;
        self.in_transaction = true;
        self.packer
            .begin(&self.conn, &for_each_row)
            .map_err(|e| explain_any(e, &self.path, self.busy_timeout))
            .inspect_err(|_| self.rollback())
    }

    /// Before a transaction begins, once the WAL holds [`SqliteSink::wal_restart_frames`]
    /// frames, copies back into the database what [`WalCopier`] has not copied yet, so that
    /// this transaction may write the WAL from its start again.
    ///
    /// SQLite writes the WAL from its start again only when a write transaction begins with
    /// every frame of it copied back and no reader using it. The copier copies a commit's
    /// pages after the commit, but the writer begins its next transaction at once: in a long
    /// run that never happened, and the WAL grew by every page written, to the size of the
    /// database itself beside it (a second copy of a large import on disk, each page in newly
    /// allocated blocks).
    ///
    /// The checkpoint is PASSIVE: it waits for no reader and no other checkpoint. Whenever the
    /// WAL could not start over (the copier was copying, or a reader was still on an older
    /// snapshot), the next commit finds it as large and the writer tries again before the
    /// transaction after. Where the disk is slower than the writer, the copier falls behind,
    /// and the writer's checkpoint then copies that backlog itself: the writer waits for the
    /// disk rather than the WAL growing without end. Best effort: a checkpoint that fails
    /// leaves the WAL as it was, and a real fault shows in the transaction itself.
    ///
    /// Without the copier, SQLite's automatic checkpoints do this in the commits, and the
    /// frames are not counted (0).
    fn copy_back_for_wal_restart(&mut self) {
        if self.conn.wal_frames() >= self.wal_restart_frames {
            let _ = (self.conn).query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        }
    }

    /// Packs rows that others wrote (or that a database from an older version holds) in a
    /// transaction of its own, so that the first batch does not pay for it and the user hears
    /// about it.
    fn catch_up(&mut self, notify: &mut dyn FnMut(String)) -> anyhow::Result<()> {
        let behind: bool = self
            .conn
            .query_row(
                "SELECT coalesce((SELECT covered FROM packed_state WHERE id = 1) < (SELECT max(id) FROM logs), 0)",
                [],
                |r| r.get(0),
            )
            .map_err(|e| explain(e, &self.path, self.busy_timeout))?;
        if behind {
            if let Some(message) = self.begin()? {
                notify(format!("{}: {message}", self.path.display()));
            }
            self.commit_batch(&[])?;
        }
        Ok(())
    }

    /// Inserts a batch's rows, [`ROWS_PER_INSERT`] at a time, and the fewer left at its end
    /// with a statement of their size: the rows are the batch's, and go with it. On an error,
    /// the rows inserted before it stay in the transaction (see [`insert_sql`]): the caller
    /// rolls it back.
    fn insert_rows(&mut self, rows: &BatchRows) -> rusqlite::Result<()> {
        let mut start = 0;
        while start < rows.len() {
            let end = rows.len().min(start + ROWS_PER_INSERT);
            if end - start == ROWS_PER_INSERT {
                self.conn.insert_full(rows, start)?;
            } else {
                let mut stmt =
                    (self.conn).prepare_cached(&insert_sql(end - start, rows.columns()))?;
                rows.insert(start..end, &mut stmt)?;
            }
            start = end;
        }
        Ok(())
    }
}

impl Sink for SqliteSink {
    fn checkpoint(&mut self, source: &str) -> anyhow::Result<Option<Checkpoint>> {
        let cp = load_checkpoint(&self.conn, source)
            .map_err(|e| explain(e, &self.path, self.busy_timeout))?;
        self.known.insert(source.to_owned(), cp);
        Ok(cp)
    }

    fn log_format(&mut self, source: &str) -> anyhow::Result<Option<String>> {
        let format: Option<Option<String>> = (self.conn)
            .query_row(
                "SELECT format FROM checkpoints WHERE source = ?1",
                [source],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| explain(e, &self.path, self.busy_timeout))?;
        Ok(format.map(|f| f.unwrap_or_else(|| "combined".to_owned())))
    }

    fn set_log_format(&mut self, name: &str) {
        name.clone_into(&mut self.log_format);
    }

    fn scrubbed(&mut self) -> anyhow::Result<Option<String>> {
        (self.conn)
            .query_row(
                "SELECT value FROM settings WHERE name = 'scrubbed'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| explain(e, &self.path, self.busy_timeout))
    }

    fn set_scrubbed(&mut self, choices: &str) -> anyhow::Result<()> {
        (self.conn)
            .execute(
                "INSERT INTO settings (name, value) VALUES ('scrubbed', ?1) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [choices],
            )
            .map(|_| ())
            .map_err(|e| explain(e, &self.path, self.busy_timeout))
    }

    fn holds_rows(&mut self) -> anyhow::Result<bool> {
        self.conn
            .query_row("SELECT EXISTS (SELECT 1 FROM logs)", [], |r| r.get(0))
            .map_err(|e| explain(e, &self.path, self.busy_timeout))
    }

    fn checkpoints(&mut self) -> anyhow::Result<Vec<(String, Checkpoint)>> {
        let all =
            load_checkpoints(&self.conn).map_err(|e| explain(e, &self.path, self.busy_timeout))?;
        self.known.clear();
        self.known
            .extend(all.iter().map(|(key, cp)| (key.clone(), Some(*cp))));
        Ok(all)
    }

    fn prepare(&self) -> Prepare {
        Prepare {
            encoder: Some(std::sync::Arc::new(|| {
                Box::new(Encoded::default()) as Box<dyn Encoder>
            })),
            ..Prepare::default()
        }
    }

    fn write_batch(&mut self, _: Origin<'_>, batch: &mut Batch) -> anyhow::Result<()> {
        if batch.is_empty() {
            // No transaction for nothing: a follower whose pass found nothing new commits
            // nothing, and must not keep the write lock.
            return Ok(());
        }
        let Some(Encoded { rows, keys }) = batch.take_encoded::<Encoded>() else {
            bail!("internal error: a batch without the rows this store asks for in `prepare`");
        };
        self.begin()?;
        self.insert_rows(&rows)
            .and_then(|()| self.packer.add(&self.conn, &keys))
            .map_err(|err| explain(err, &self.path, self.busy_timeout))
            .inspect_err(|_| self.rollback())?;
        self.record_offsets(batch.offsets)
            .map_err(|err| explain(err, &self.path, self.busy_timeout))
            .inspect_err(|_| self.rollback())
    }

    fn reject(&mut self, r: &Rejected<'_>) -> anyhow::Result<()> {
        self.begin()?;
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO rejects (source, line, reason, raw, stored) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        stmt.execute(params![
            r.origin.source,
            r.at.line as i64,
            r.reason.to_string(),
            r.raw,
            crate::entry::Rfc3339(chrono::Utc::now()).to_string()
        ])
        .map_err(|err| explain(err, &self.path, self.busy_timeout))?;
        Ok(())
    }

    fn commit(&mut self, updates: &[Update<'_>]) -> anyhow::Result<()> {
        self.commit_batch(updates).inspect_err(|_| self.rollback())
    }

    fn abort(&mut self) {
        self.rollback()
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

impl SqliteSink {
    /// Takes the offsets of a batch's lines into the store's record of them, in the batch's
    /// transaction, so that the record always describes exactly the rows stored.
    fn record_offsets(&mut self, offsets: LogOffsets) -> rusqlite::Result<()> {
        if offsets == LogOffsets::Unknown {
            return Ok(());
        }
        let stored = stored_offsets(&self.conn)?;
        let mut all = stored;
        all.merge(offsets);
        if all != stored
            && let Some(value) = all.to_setting()
        {
            self.conn.execute(
                "INSERT INTO settings (name, value) VALUES ('log_offsets', ?1) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [value],
            )?;
        }
        Ok(())
    }

    fn commit_batch(&mut self, updates: &[Update<'_>]) -> anyhow::Result<()> {
        if !updates.is_empty() {
            self.begin()?;
        }
        for update in updates {
            let source = match update {
                Update::Set(source, _) | Update::Remove(source) => *source,
            };
            self.check_unmoved(source)?;
            let result = match update {
                Update::Set(source, cp) => self.save_checkpoint(source, cp),
                Update::Remove(source) => self
                    .conn
                    .prepare_cached("DELETE FROM checkpoints WHERE source = ?1")
                    .and_then(|mut stmt| stmt.execute([source])),
            };
            result.map_err(|err| explain(err, &self.path, self.busy_timeout))?;
        }
        if self.in_transaction {
            self.packer
                .commit(&self.conn)
                .map_err(|e| explain(e, &self.path, self.busy_timeout))?;
            self.conn
                .execute_batch("COMMIT")
                .map_err(|e| explain(e, &self.path, self.busy_timeout))?;
            self.in_transaction = false;
        }
        for update in updates {
            match update {
                Update::Set(source, cp) => self.known.insert((*source).to_owned(), Some(*cp)),
                Update::Remove(source) => self.known.insert((*source).to_owned(), None),
            };
        }
        Ok(())
    }

    /// Inside the committing transaction: is the checkpoint of `source` still the one this
    /// writer read? See [`SqliteSink::known`].
    fn check_unmoved(&self, source: &str) -> anyhow::Result<()> {
        let Some(expected) = self.known.get(source) else {
            return Ok(());
        };
        let now = load_checkpoint(&self.conn, source)
            .map_err(|e| explain(e, &self.path, self.busy_timeout))?;
        if now != *expected {
            bail!(
                "{}: another writer moved the checkpoint of {source} while this one read it \
                 (is an older log-pipeline, which takes no lock, writing to it?); \
                 nothing of this batch was stored",
                self.path.display()
            );
        }
        Ok(())
    }

    fn save_checkpoint(&self, source: &str, cp: &Checkpoint) -> rusqlite::Result<usize> {
        let mut stmt = self.conn.prepare_cached(
            r#"INSERT INTO checkpoints (source, dev, inode, fingerprint_len, fingerprint, "offset", line, tail_hash, updated, format)
               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), ?9)
               ON CONFLICT(source) DO UPDATE SET dev = excluded.dev, inode = excluded.inode,
                 fingerprint_len = excluded.fingerprint_len, fingerprint = excluded.fingerprint,
                 "offset" = excluded."offset", line = excluded.line, tail_hash = excluded.tail_hash,
                 updated = excluded.updated, format = excluded.format"#,
        )?;
        stmt.execute(params![
            source,
            cp.dev as i64,
            cp.inode as i64,
            cp.fingerprint_len as i64,
            cp.fingerprint as i64,
            cp.offset as i64,
            cp.line as i64,
            cp.tail_hash as i64,
            self.log_format,
        ])
    }

    /// For `--retain`: from now on, what SQLite frees is overwritten with zeros, the copies
    /// a page split leaves behind as much as deleted rows, so that a row's bytes do not
    /// outlive it in the file (`PRAGMA secure_delete`; a few percent of the writer's time).
    pub fn erase_freed_space(&mut self) -> anyhow::Result<()> {
        (self.conn)
            .execute_batch("PRAGMA secure_delete = ON")
            .map_err(|e| explain(e, &self.path, self.busy_timeout))
    }

    /// `--retain`: deletes the rows older than `before`, their packed records, the strings
    /// only they used, and the rejects stored before it, in one transaction, so a reader
    /// sees all of them or none gone, and a crash loses nothing. Deleted content is
    /// overwritten, so data past its window does not linger in free space (with
    /// [`SqliteSink::erase_freed_space`], which the caller turns on before it writes).
    /// Nothing is done (no lock taken) when `before` is where the last call left it, so an
    /// idle follower writes nothing. Returns the rows deleted.
    pub fn retain(&mut self, before: chrono::DateTime<chrono::Utc>) -> anyhow::Result<u64> {
        if self.retained == Some(before) {
            return Ok(0);
        }
        // Whatever is pending is committed first: the deletion is a transaction of its own.
        self.commit_batch(&[])?;
        // Finding the old rows must not read every row at every step of a follower.
        (self.conn)
            .execute_batch(
                "CREATE INDEX IF NOT EXISTS logs_timestamp ON logs (timestamp); \
                 BEGIN IMMEDIATE",
            )
            .map_err(|e| explain(e, &self.path, self.busy_timeout))?;
        let result = retain_rows(&self.conn, before).and_then(|deleted| {
            self.conn.execute_batch("COMMIT")?;
            Ok(deleted)
        });
        match result {
            Ok(deleted) => {
                self.retained = Some(before);
                Ok(deleted)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(explain(e, &self.path, self.busy_timeout))
            }
        }
    }

    /// A batch failed: roll back the open transaction and the packed copy's unwritten block,
    /// so that the caller can retry from the last checkpoint (the follower does, on a database
    /// locked for too long) without a row being inserted twice.
    fn rollback(&mut self) {
        if self.in_transaction {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.in_transaction = false;
        }
        self.packer.abort();
    }
}

/// Reads the `logs` rows with an id above `after`, in id order, passing each to `emit`: the
/// row, or the id of a row whose timestamp is not a time. Stops at the first error of `emit`.
pub fn for_each_row(
    conn: &rusqlite::Connection,
    after: i64,
    emit: &mut dyn FnMut(Result<&Row<'_>, i64>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    // A database of schema 2, read without being upgraded, has no times.
    let time = match table_columns(conn, "logs")?
        .iter()
        .any(|c| c == "response_time_us")
    {
        true => "response_time_us",
        false => "NULL",
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT ip, timestamp, method, url, status, bytes, referrer, user_agent, id, {time} \
         FROM logs WHERE id > ?1 ORDER BY id"
    ))?;
    let mut rows = stmt.query([after])?;
    while let Some(r) = rows.next()? {
        use rusqlite::types::ValueRef;
        let text = |i: usize| -> Option<&str> {
            match r.get_ref(i) {
                Ok(ValueRef::Text(t)) => std::str::from_utf8(t).ok(),
                _ => None,
            }
        };
        let int = |i: usize| -> Option<i64> {
            match r.get_ref(i) {
                Ok(ValueRef::Integer(n)) => Some(n),
                _ => None,
            }
        };
        let Some(timestamp) = text(1).and_then(parse_stored_time) else {
            emit(Err(int(8).unwrap_or(0)))?;
            continue;
        };
        emit(Ok(&Row {
            ip: text(0).unwrap_or(""),
            timestamp: timestamp.timestamp(),
            method: text(2),
            url: text(3).unwrap_or(""),
            status: int(4).and_then(|n| u16::try_from(n).ok()).unwrap_or(0),
            bytes: int(5).and_then(|n| u64::try_from(n).ok()),
            referrer: text(6),
            user_agent: text(7),
            response_time_us: int(9).and_then(|n| u64::try_from(n).ok()),
        }))?;
    }
    Ok(())
}

/// Is this error a database held by another process for longer than the busy timeout?
pub fn is_busy(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<rusqlite::Error>())
        .any(|e| {
            matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            )
        })
}

/// The writer's connection, with the full-size multi-row INSERT prepared on it and bound
/// without copying the values.
///
/// rusqlite binds every string as `SQLITE_TRANSIENT`, so SQLite copies each value into an
/// allocation of its own before copying it again into the record: nine allocations, copies and
/// frees per row, on the thread that sets parse-to-db's pace. Here text is bound as
/// `SQLITE_STATIC`, pointing into [`BatchRows`]. This is the one place where we step outside
/// rusqlite, and the type is shaped so that no use of its safe methods can leave SQLite
/// reading freed memory:
///
/// - the one method that binds, [`WriteConnection::insert_full`], borrows the rows for the
///   whole call and resets the statement and clears its bindings before it returns (or
///   unwinds), so no binding outlives the borrow of the text it points to;
/// - it owns the connection, lending it only as `&Connection` (through `Deref`), so nothing
///   can close it or move it away while the statement lives; `Drop` finalizes the statement
///   before the connection closes;
/// - lengths go through [`c_len`], and the result of every SQLite call is checked.
struct WriteConnection {
    /// The INSERT of [`ROWS_PER_INSERT`] rows of the Combined columns, and of every column
    /// (see [`BatchRows::columns`]).
    stmts: [NonNull<ffi::sqlite3_stmt>; 2],
    conn: Connection,
    /// The frames the WAL held after this connection's last commit, as SQLite reports them to
    /// [`record_wal_frames`] once [`WriteConnection::count_wal_frames`] asked; boxed, so that
    /// the pointer SQLite keeps stays put.
    wal_frames: Option<Box<AtomicI32>>,
}

impl WriteConnection {
    /// Prepares the INSERTs of [`ROWS_PER_INSERT`] rows on `conn`, which it keeps.
    fn new(conn: Connection) -> rusqlite::Result<WriteConnection> {
        let combined = prepare_persistent(&conn, &insert_sql(ROWS_PER_INSERT, COMBINED_COLUMNS))?;
        match prepare_persistent(&conn, &insert_sql(ROWS_PER_INSERT, COLUMNS.len())) {
            Ok(all) => Ok(WriteConnection {
                stmts: [combined, all],
                conn,
                wal_frames: None,
            }),
            Err(e) => {
                // SAFETY: `combined` was prepared on `conn`, which is still open, and is
                // finalized once, here, never used again.
                unsafe { ffi::sqlite3_finalize(combined.as_ptr()) };
                Err(e)
            }
        }
    }

    /// Inserts the [`ROWS_PER_INSERT`] rows of `rows` from `start` with one run of the
    /// statement, their text bound in place, without a copy.
    ///
    /// Before it returns, whatever happened, the statement is reset and its bindings are
    /// cleared: the rows may change as soon as it has.
    fn insert_full(&mut self, rows: &BatchRows, start: usize) -> rusqlite::Result<()> {
        let columns = rows.columns();
        let range = start..start + ROWS_PER_INSERT;
        if range.end > rows.len() {
            return Err(rusqlite::Error::InvalidParameterCount(
                rows.len().saturating_sub(start) * columns,
                ROWS_PER_INSERT * columns,
            ));
        }
        let which = usize::from(columns == COLUMNS.len());
        let stmt = self.stmts[which].as_ptr();
        // Every way out of this function from here, an error or a panic included, resets the
        // statement and clears its bindings.
        let cleared = ClearOnExit {
            conn: self,
            which,
            done: false,
        };
        let bound = rows.each_value(range, |index, value| {
            let index = c_int::try_from(index).map_err(|_| {
                rusqlite::Error::InvalidParameterCount(index, ROWS_PER_INSERT * columns)
            })?;
            let rc = match value {
                Value::Text(Some(text)) => {
                    let len = c_len(text.len())?;
                    // SAFETY: `stmt` is live (finalized only when `self` is dropped, which
                    // `cleared` borrows). `text` lies in `rows`, borrowed for this whole call,
                    // and `cleared` clears the bindings before the call ends, so SQLite never
                    // reads it afterwards; SQLITE_STATIC tells SQLite neither to copy nor to
                    // free it. `len` is its exact length.
                    unsafe {
                        ffi::sqlite3_bind_text(
                            stmt,
                            index,
                            text.as_ptr().cast(),
                            len,
                            ffi::SQLITE_STATIC(),
                        )
                    }
                }
                // SAFETY: `stmt` is live; an integer is copied into the statement.
                Value::Int(Some(n)) => unsafe { ffi::sqlite3_bind_int64(stmt, index, n) },
                // Nothing to bind: every parameter is NULL until bound, the bindings being
                // cleared after each run (`cleared`) and none made before the first. Most rows
                // of most formats leave several columns NULL.
                Value::Text(None) | Value::Int(None) => ffi::SQLITE_OK,
            };
            cleared.conn.check(rc)
        });
        let inserted = bound.and_then(|()| {
            // SAFETY: `stmt` is live. Every value bound to it is one bound above, from `rows`,
            // which is in place; any parameter not bound since the last clear is NULL.
            let rc = unsafe { ffi::sqlite3_step(stmt) };
            match rc {
                ffi::SQLITE_DONE => Ok(()),
                // The message is read before the reset.
                _ => Err(error_of(&cleared.conn.conn, rc)),
            }
        });
        // A failed step makes the reset report the same error: the first one is kept.
        inserted.and(cleared.finish())
    }

    /// From now on, has SQLite tell [`WriteConnection::wal_frames`] after each commit. This
    /// takes the connection's WAL hook, which SQLite's automatic checkpoints use too: only for
    /// a connection that has them off (`wal_autocheckpoint=0`).
    fn count_wal_frames(&mut self) {
        let frames = self
            .wal_frames
            .get_or_insert_with(|| Box::new(AtomicI32::new(0)));
        let arg: *const AtomicI32 = &**frames;
        // SAFETY: the handle is that of `self.conn`, which is open. `arg` points into a box
        // that `self` owns and that `Drop` frees only after removing the hook; the hook only
        // stores into it, as the atomic it is.
        unsafe {
            ffi::sqlite3_wal_hook(
                self.conn.handle(),
                Some(record_wal_frames),
                arg.cast_mut().cast(),
            )
        };
    }

    /// The frames the WAL held after this connection's last commit (0 before the first, or
    /// when not counted).
    fn wal_frames(&self) -> i64 {
        (self.wal_frames.as_ref()).map_or(0, |f| i64::from(f.load(Ordering::Relaxed)))
    }

    /// Resets statement `which` and clears its bindings (all become NULL).
    fn reset_and_clear(&self, which: usize) -> rusqlite::Result<()> {
        let stmt = self.stmts[which].as_ptr();
        // SAFETY: `stmt` is live; resetting reads no bound value.
        let reset = unsafe { ffi::sqlite3_reset(stmt) };
        // SAFETY: `stmt` is live; clearing only drops the pointers (SQLITE_STATIC: no free).
        let clear = unsafe { ffi::sqlite3_clear_bindings(stmt) };
        self.check(reset).and(self.check(clear))
    }

    /// `rc` from a call on the statement: SQLITE_OK, or the connection's error.
    fn check(&self, rc: c_int) -> rusqlite::Result<()> {
        match rc {
            ffi::SQLITE_OK => Ok(()),
            _ => Err(error_of(&self.conn, rc)),
        }
    }

    /// Statement `which` with its current bindings expanded, for tests: `NULL` for a cleared
    /// one.
    #[cfg(test)]
    fn expanded_sql(&self, which: usize) -> String {
        // SAFETY: `stmt` is live. `sqlite3_expanded_sql` returns a NUL-terminated string that
        // we own (or NULL when out of memory), copied before it is freed once.
        unsafe {
            let sql = ffi::sqlite3_expanded_sql(self.stmts[which].as_ptr());
            assert!(!sql.is_null(), "sqlite3_expanded_sql ran out of memory");
            let copy = std::ffi::CStr::from_ptr(sql).to_string_lossy().into_owned();
            ffi::sqlite3_free(sql.cast());
            copy
        }
    }
}

/// Prepares `sql` on `conn` as a statement kept for the connection's life: the caller
/// finalizes it before `conn` closes.
fn prepare_persistent(
    conn: &Connection,
    sql: &str,
) -> rusqlite::Result<NonNull<ffi::sqlite3_stmt>> {
    let len = c_len(sql.len())?;
    let mut stmt = std::ptr::null_mut();
    // SAFETY: `conn.handle()` is the live connection `conn` is; `sql` outlives the call and
    // its length is passed, so no terminator is needed; `stmt` is a valid out-pointer.
    let rc = unsafe {
        ffi::sqlite3_prepare_v3(
            conn.handle(),
            sql.as_ptr().cast(),
            len,
            ffi::SQLITE_PREPARE_PERSISTENT,
            &mut stmt,
            std::ptr::null_mut(),
        )
    };
    // On an error SQLite leaves `stmt` NULL: there is nothing to finalize.
    match NonNull::new(stmt) {
        Some(stmt) if rc == ffi::SQLITE_OK => Ok(stmt),
        _ => Err(error_of(conn, rc)),
    }
}

impl std::ops::Deref for WriteConnection {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl Drop for WriteConnection {
    fn drop(&mut self) {
        if self.wal_frames.is_some() {
            // SAFETY: the handle is that of `self.conn`, still open; removing the hook makes
            // SQLite forget the pointer into `self.wal_frames` before that box is freed.
            unsafe { ffi::sqlite3_wal_hook(self.conn.handle(), None, std::ptr::null_mut()) };
        }
        for stmt in self.stmts {
            // SAFETY: each statement is live and finalized once, here, before `self.conn` (a
            // field, dropped after this) closes the connection it belongs to. The result only
            // repeats the last step's error, which was reported then.
            unsafe { ffi::sqlite3_finalize(stmt.as_ptr()) };
        }
    }
}

/// Resets the statement of a [`WriteConnection`] and clears its bindings when an insert ends:
/// through [`ClearOnExit::finish`], which reports a failure, or when dropped by a panic.
struct ClearOnExit<'a> {
    conn: &'a WriteConnection,
    /// The statement of the insert.
    which: usize,
    done: bool,
}

impl ClearOnExit<'_> {
    fn finish(mut self) -> rusqlite::Result<()> {
        self.done = true;
        self.conn.reset_and_clear(self.which)
    }
}

impl Drop for ClearOnExit<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.conn.reset_and_clear(self.which);
        }
    }
}

/// `len` as the `int` SQLite takes for a length. A value of 2 GiB or more is an error, where
/// `as` would wrap it to a negative length, which SQLite reads as "up to the first NUL".
fn c_len(len: usize) -> rusqlite::Result<c_int> {
    c_int::try_from(len).map_err(|_| {
        rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_TOOBIG),
            Some(format!(
                "a value of {len} bytes is more than SQLite takes (2 GiB)"
            )),
        )
    })
}

/// SQLite's WAL hook for [`WriteConnection::count_wal_frames`], called after each commit with
/// the number of frames the WAL holds.
unsafe extern "C" fn record_wal_frames(
    frames_seen: *mut c_void,
    _: *mut ffi::sqlite3,
    _: *const c_char,
    frames: c_int,
) -> c_int {
    // SAFETY: `frames_seen` is the atomic that `count_wal_frames` registered, alive until
    // `Drop` removes the hook.
    unsafe { (*frames_seen.cast::<AtomicI32>()).store(frames, Ordering::Relaxed) };
    ffi::SQLITE_OK
}

/// The error SQLite holds for `conn` after a call returned `rc`.
fn error_of(conn: &Connection, rc: c_int) -> rusqlite::Error {
    // SAFETY: `conn.handle()` is live; sqlite3_errmsg returns a NUL-terminated string that is
    // copied before any other call on the connection.
    let message = unsafe {
        std::ffi::CStr::from_ptr(ffi::sqlite3_errmsg(conn.handle()))
            .to_string_lossy()
            .into_owned()
    };
    rusqlite::Error::SqliteFailure(ffi::Error::new(rc), Some(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Combined Log Format line with URL `url`, client `10.0.0.n` and size `n`.
    fn line(n: usize, url: &str) -> String {
        format!(
            "10.0.0.{} - bob [01/Jan/2024:00:00:{:02} +0000] \"GET {url} HTTP/1.1\" 200 {n} \"http://ref/{n}\" \"agent {n}\"",
            n % 250,
            n % 60
        )
    }

    /// `ROWS_PER_INSERT` lines with URLs `{prefix}{n}`.
    fn lines(prefix: &str) -> Vec<String> {
        (0..ROWS_PER_INSERT)
            .map(|n| line(n, &format!("{prefix}{n}")))
            .collect()
    }

    fn batch_rows(lines: &[String]) -> BatchRows {
        let mut rows = BatchRows::default();
        fill(&mut rows, lines);
        rows
    }

    /// Replaces what `rows` holds, reusing its buffers.
    fn fill(rows: &mut BatchRows, lines: &[String]) {
        rows.clear();
        for l in lines {
            rows.push(&crate::parse::parse_line(l.as_bytes()).unwrap());
        }
    }

    fn writer() -> WriteConnection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        WriteConnection::new(conn).unwrap()
    }

    /// The number of rows in `logs`.
    fn stored(conn: &Connection) -> usize {
        conn.query_row("SELECT count(*) FROM logs", [], |r| r.get(0))
            .unwrap()
    }

    /// Every row, as its columns in text (NULL as "").
    fn rows(conn: &Connection) -> Vec<Vec<String>> {
        let sql = r#"SELECT ip, ident, "user", timestamp, method, url, protocol, status, bytes, referrer, user_agent FROM logs ORDER BY id"#;
        texts(conn, sql, 0..11, "")
    }

    /// The values of the `columns` of the rows `sql` selects, as text (NULL as `null`).
    fn texts(conn: &Connection, sql: &str, columns: Range<usize>, null: &str) -> Vec<Vec<String>> {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |r| {
            (columns.clone())
                .map(|i| {
                    r.get::<_, rusqlite::types::Value>(i).map(|v| match v {
                        rusqlite::types::Value::Null => null.to_string(),
                        rusqlite::types::Value::Integer(n) => n.to_string(),
                        rusqlite::types::Value::Text(t) => t,
                        other => format!("{other:?}"),
                    })
                })
                .collect()
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    /// The rows `lines` make, as [`rows`] reads them back.
    fn expected(lines: &[String]) -> Vec<Vec<String>> {
        lines
            .iter()
            .map(|l| {
                let fields: Vec<&str> = l.split(' ').collect();
                let (url, n) = (fields[6], fields[9].parse::<usize>().unwrap());
                [
                    format!("10.0.0.{}", n % 250),
                    String::new(),
                    "bob".into(),
                    format!("2024-01-01T00:00:{:02}Z", n % 60),
                    "GET".into(),
                    url.into(),
                    "HTTP/1.1".into(),
                    "200".into(),
                    n.to_string(),
                    format!("http://ref/{n}"),
                    format!("agent {n}"),
                ]
                .to_vec()
            })
            .collect()
    }

    /// No parameter of either statement is bound to anything but NULL.
    fn assert_nothing_bound(conn: &WriteConnection) {
        for (which, columns) in [COMBINED_COLUMNS, COLUMNS.len()].into_iter().enumerate() {
            let sql = conn.expanded_sql(which);
            assert_eq!(
                sql.matches("NULL").count(),
                ROWS_PER_INSERT * columns,
                "{sql}"
            );
            assert!(!sql.contains('\''), "a text value is still bound: {sql}");
        }
    }

    #[test]
    fn rows_inserted_in_place_are_stored_whole_and_nothing_stays_bound() {
        let mut conn = writer();
        let first = lines("/first/");
        let mut rows_of = batch_rows(&first);
        conn.insert_full(&rows_of, 0).unwrap();
        assert_nothing_bound(&conn);
        // The buffers the text was bound from now hold other text: the database must not care.
        let second = lines("/2nd/");
        fill(&mut rows_of, &second);
        assert_eq!(rows(&conn), expected(&first));
        conn.insert_full(&rows_of, 0).unwrap();
        drop(rows_of);
        assert_nothing_bound(&conn);
        let both: Vec<String> = first.iter().chain(&second).cloned().collect();
        assert_eq!(rows(&conn), expected(&both));
    }

    #[test]
    fn a_failed_insert_leaves_nothing_bound_and_the_statement_usable() {
        let mut conn = writer();
        conn.execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON logs WHEN NEW.url = '/refused'
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        )
        .unwrap();
        let mut bad = lines("/ok/");
        bad[7] = line(7, "/refused");
        let err = conn.insert_full(&batch_rows(&bad), 0).unwrap_err();
        assert!(err.to_string().contains("refused by the test"), "{err}");
        assert_nothing_bound(&conn);
        assert!(
            rows(&conn).is_empty(),
            "the failed statement inserted nothing"
        );

        // A bind that fails (a value longer than the connection takes) stops before the step.
        // SAFETY: the connection is live; sqlite3_limit only sets a number.
        let old = unsafe { ffi::sqlite3_limit(conn.handle(), ffi::SQLITE_LIMIT_LENGTH, 100) };
        let mut long = lines("/ok/");
        long[3] = line(3, &format!("/{}", "x".repeat(200)));
        let err = conn.insert_full(&batch_rows(&long), 0).unwrap_err();
        assert_eq!(err.sqlite_error_code(), Some(rusqlite::ErrorCode::TooBig));
        // SAFETY: as above.
        unsafe { ffi::sqlite3_limit(conn.handle(), ffi::SQLITE_LIMIT_LENGTH, old) };
        // (Expanding the statement needs more than 100 bytes too.)
        assert_nothing_bound(&conn);

        let good = lines("/ok/");
        conn.insert_full(&batch_rows(&good), 0).unwrap();
        assert_eq!(rows(&conn), expected(&good));
    }

    #[test]
    fn a_statement_that_cannot_be_prepared_is_an_error() {
        let conn = Connection::open_in_memory().unwrap();
        let Err(err) = WriteConnection::new(conn) else {
            panic!("prepared an INSERT into a table that does not exist");
        };
        assert!(err.to_string().contains("no such table: logs"), "{err}");
    }

    #[test]
    fn only_a_full_set_of_rows_is_inserted() {
        let mut conn = writer();
        let mut short = lines("/x/");
        short.pop();
        assert!(matches!(
            conn.insert_full(&batch_rows(&short), 0),
            Err(rusqlite::Error::InvalidParameterCount(n, all))
                if n == (ROWS_PER_INSERT - 1) * COMBINED_COLUMNS && all == ROWS_PER_INSERT * COMBINED_COLUMNS
        ));
        // A full set's worth of rows that starts too late to have it.
        assert!(matches!(
            conn.insert_full(&batch_rows(&lines("/y/")), 1),
            Err(rusqlite::Error::InvalidParameterCount(n, _))
                if n == (ROWS_PER_INSERT - 1) * COMBINED_COLUMNS
        ));
        assert!(rows(&conn).is_empty());
    }

    #[test]
    fn a_full_set_is_taken_from_where_it_starts() {
        let mut conn = writer();
        let (first, second) = (lines("/first/"), lines("/2nd/"));
        let both: Vec<String> = first.iter().chain(&second).cloned().collect();
        conn.insert_full(&batch_rows(&both), ROWS_PER_INSERT)
            .unwrap();
        assert_eq!(rows(&conn), expected(&second));
        // And rows left at a batch's end go in with a statement of their own size.
        let rows_of = batch_rows(&both[..ROWS_PER_INSERT + 3]);
        let mut stmt = conn.prepare(&insert_sql(3, COMBINED_COLUMNS)).unwrap();
        rows_of
            .insert(ROWS_PER_INSERT..ROWS_PER_INSERT + 3, &mut stmt)
            .unwrap();
        drop(stmt);
        assert_eq!(rows(&conn), expected(&[&second[..], &second[..3]].concat()));
    }

    /// A sink on a new database in a temporary directory (kept alive by the caller).
    fn sink(dir: &tempfile::TempDir) -> SqliteSink {
        let path = dir.path().join("logs.db");
        SqliteSink::open(&path, Duration::from_secs(5), &mut |_| {}).unwrap()
    }

    /// Every column of every row but the id, in id order, as text (NULL as "NULL").
    fn all_columns(conn: &Connection) -> Vec<Vec<String>> {
        texts(
            conn,
            "SELECT * FROM logs ORDER BY id",
            1..1 + COLUMNS.len(),
            "NULL",
        )
    }

    /// The columns an entry is stored as, written out one by one: the reference.
    fn columns_of(e: &LogEntry<'_>) -> Vec<String> {
        let t = |v: Option<&str>| v.map_or("NULL".to_string(), str::to_string);
        let n = |v: Option<u64>| v.map_or("NULL".to_string(), |n| n.to_string());
        vec![
            e.ip.to_string(),
            t(e.ident.as_deref()),
            t(e.user.as_deref()),
            Rfc3339(e.timestamp).to_string(),
            t(e.method.as_deref()),
            e.url.to_string(),
            t(e.protocol.as_deref()),
            e.status.to_string(),
            n(e.bytes),
            t(e.referrer.as_deref()),
            t(e.user_agent.as_deref()),
            t(e.extra.vhost.as_deref()),
            n(e.extra.port.map(u64::from)),
            n(e.extra.response_time_us),
            n(e.extra.upstream_time_us),
            t(e.extra.forwarded_for.as_deref()),
        ]
    }

    /// A batch's rows go in whole and in order, 64 at a time and the rest by a statement of
    /// their own size, whatever the batch's length; a batch whose later rows have columns
    /// beyond Combined's stores every row's, NULL where a row has none.
    #[test]
    fn a_batch_of_any_size_is_stored_whole_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = sink(&dir);
        let mut expected = Vec::new();
        let r = ROWS_PER_INSERT;
        for (batch, len) in [0, 1, r - 1, r, r + 1, 2 * r + 5].into_iter().enumerate() {
            let mut rows = BatchRows::default();
            for n in 0..len {
                let text = line(n, &format!("/{batch}/{n}"));
                let mut e = crate::parse::parse_line(text.as_bytes()).unwrap();
                if batch == 5 && n == r + 2 {
                    e.extra.vhost = Some("example.org".into());
                    e.extra.port = Some(8443);
                    e.extra.response_time_us = Some(1234);
                }
                expected.push(columns_of(&e));
                rows.push(&e);
            }
            sink.begin().unwrap();
            sink.insert_rows(&rows).unwrap();
            sink.commit(&[]).unwrap();
        }
        assert_eq!(all_columns(&sink.conn), expected);
    }

    /// A window of a batch that fails after others went in: the rollback takes them all back.
    #[test]
    fn a_batch_that_fails_half_way_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = sink(&dir);
        let mut rows = BatchRows::default();
        for n in 0..2 * ROWS_PER_INSERT + 5 {
            // A text longer than the connection takes, in the second window.
            let url = match n == ROWS_PER_INSERT + 6 {
                true => format!("/{}", "x".repeat(200)),
                false => format!("/{n}"),
            };
            rows.push(&crate::parse::parse_line(line(n, &url).as_bytes()).unwrap());
        }
        // SAFETY: the connection is live; sqlite3_limit only sets a number.
        unsafe { ffi::sqlite3_limit(sink.conn.handle(), ffi::SQLITE_LIMIT_LENGTH, 100) };
        sink.begin().unwrap();
        assert!(sink.insert_rows(&rows).is_err());
        sink.rollback();
        assert!(all_columns(&sink.conn).is_empty());
    }

    /// Rows of two full statements and a few, with a NULL in a NOT NULL column at row `bad`.
    fn rows_failing_at(bad: usize) -> BatchRows {
        let lines: Vec<String> = (0..2 * ROWS_PER_INSERT + 5)
            .map(|n| line(n, &format!("/{n}")))
            .collect();
        let mut rows = batch_rows(&lines);
        rows.rows[bad].ip = None;
        rows
    }

    /// A statement that fails half-way keeps the rows it inserted before (it is `OR FAIL`: see
    /// [`insert_sql`]), and the batch's rollback takes them back with the others.
    #[test]
    fn a_statement_that_fails_half_way_is_taken_back_by_the_rollback() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = sink(&dir);
        let rows = rows_failing_at(ROWS_PER_INSERT + 6);
        sink.begin().unwrap();
        let err = sink.insert_rows(&rows).unwrap_err();
        assert_eq!(
            err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::ConstraintViolation)
        );
        assert_eq!(
            stored(&sink.conn),
            ROWS_PER_INSERT + 6,
            "the statement stopped at its bad row"
        );
        sink.rollback();
        assert!(all_columns(&sink.conn).is_empty());
    }

    /// A batch whose insert fails partway is rolled back by `write_batch` itself: a commit
    /// after the error stores none of its rows.
    #[test]
    fn a_batch_that_fails_partway_is_rolled_back_by_write_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = sink(&dir);
        let rows = rows_failing_at(ROWS_PER_INSERT + 6);
        let count = rows.len();
        let encoded = Encoded {
            rows,
            keys: BatchKeys::default(),
        };
        let mut batch = Batch::encoded_as(Box::new(encoded), count);
        let origin = Origin {
            source: "access.log",
            file: None,
        };
        let err = sink.write_batch(origin, &mut batch).unwrap_err();
        assert!(format!("{err:#}").contains("NOT NULL"), "{err:#}");
        sink.commit(&[]).unwrap();
        assert_eq!(stored(&sink.conn), 0);
    }

    /// A sink whose copier never copies, so that only the writer's own checkpoints copy the WAL
    /// back (and no test waits on, or races, the copier's), copying back from `frames` frames.
    fn sink_copying_back_at(dir: &tempfile::TempDir, frames: i64) -> SqliteSink {
        let mut sink = sink(dir);
        assert!(
            sink._wal_copier.is_some(),
            "the copier runs beside the writer"
        );
        sink._wal_copier = Some(WalCopier {
            stop: None,
            thread: None,
        });
        sink.wal_restart_frames = frames;
        sink
    }

    /// Commits a batch of `n` rows with long URLs; returns the frames the WAL then holds.
    fn commit_rows(sink: &mut SqliteSink, commit: usize, n: usize) -> i64 {
        let lines: Vec<String> = (0..n)
            .map(|i| line(i, &format!("/{commit}/{i}/{}", "x".repeat(200))))
            .collect();
        sink.begin().unwrap();
        sink.insert_rows(&batch_rows(&lines)).unwrap();
        sink.commit(&[]).unwrap();
        sink.conn.wal_frames()
    }

    /// Commit after commit, the WAL grows until it holds the threshold's frames, and the next
    /// transaction writes it from its start again (see
    /// [`SqliteSink::copy_back_for_wal_restart`]), not before.
    #[test]
    fn the_wal_starts_over_once_it_holds_enough_frames() {
        let dir = tempfile::tempdir().unwrap();
        let threshold = 16;
        let mut sink = sink_copying_back_at(&dir, threshold);
        let (commits, per_commit) = (30, 4 * ROWS_PER_INSERT);
        let (mut last, mut restarts) = (0, 0);
        for commit in 0..commits {
            let frames = commit_rows(&mut sink, commit, per_commit);
            if last >= threshold {
                assert!(
                    frames < last,
                    "commit {commit}: {last} frames, then {frames}"
                );
                restarts += 1;
            } else {
                assert!(
                    frames > last,
                    "commit {commit}: restarted under the threshold"
                );
            }
            last = frames;
        }
        assert!(restarts >= 5, "the WAL started over {restarts} times");
        assert_eq!(stored(&sink.conn), commits * per_commit);
    }

    /// A reader on an older snapshot keeps the WAL from starting over; once it is done, the
    /// writer's next try succeeds.
    #[test]
    fn a_reader_on_an_older_snapshot_holds_the_wal_until_it_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let threshold = 16;
        let mut sink = sink_copying_back_at(&dir, threshold);
        let mut last = commit_rows(&mut sink, 0, 4 * ROWS_PER_INSERT);
        let reader = Connection::open(dir.path().join("logs.db")).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let seen = stored(&reader);
        for commit in 1..10 {
            let frames = commit_rows(&mut sink, commit, 4 * ROWS_PER_INSERT);
            assert!(
                frames > last,
                "commit {commit}: the WAL started over under a reader"
            );
            last = frames;
        }
        assert!(last >= 2 * threshold, "{last} frames: too few to tell");
        assert_eq!(stored(&reader), seen, "the reader kept its snapshot");
        reader.execute_batch("COMMIT").unwrap();
        let frames = commit_rows(&mut sink, 10, 4 * ROWS_PER_INSERT);
        assert!(
            frames < last,
            "{last} frames, then {frames}: the WAL did not start over"
        );
    }

    #[test]
    fn lengths_of_2_gib_and_more_are_refused_not_wrapped() {
        assert_eq!(c_len(0).unwrap(), 0);
        assert_eq!(c_len(i32::MAX as usize).unwrap(), i32::MAX);
        for len in [i32::MAX as usize + 1, u32::MAX as usize + 5, usize::MAX] {
            let err = c_len(len).unwrap_err();
            assert_eq!(err.sqlite_error_code(), Some(rusqlite::ErrorCode::TooBig));
            assert!(err.to_string().contains(&len.to_string()), "{err}");
        }
    }

    #[test]
    fn an_immutable_uri_names_any_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odd ?#%é&=name.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (42)")
            .unwrap();
        let uri = immutable_uri(&path).unwrap();
        assert!(
            uri.starts_with("file:/") && !uri.starts_with("file://"),
            "{uri}"
        );
        let conn = Connection::open_with_flags(
            &uri,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
        )
        .unwrap();
        let x: i64 = conn.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(x, 42);
    }
}
