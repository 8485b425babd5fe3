//! Following a growing log into SQLite (`continuous-parse`), like `tail -f`.
//!
//! A follower is a loop of small one-time passes: each wake-up runs the same [`ingest`] pass
//! that `parse-to-db` runs from cron, so the two share one checkpoint and one exactly-once
//! mechanism, and may run side by side on one database. Between passes the follower keeps the
//! last file open, so when the log is renamed away (or deleted) the rest of it is still read
//! before the new file is started.
//!
//! File-system events (inotify, through `notify`) only wake the loop early; it also polls, so
//! lost or overflowed events, and file systems without events (NFS, WSL), cost latency, never
//! lines.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::checkpoint::{self, write_atomically};
use crate::human::{self, Line};
use crate::ingest::{self, Held, IngestConfig, Input, source_key};
use crate::lock;
use crate::sink::{Sink, Update};
use crate::store::Store;

/// Everything `continuous-parse` needs, already validated.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    pub log: PathBuf,
    pub store: Store,
    /// Mirror of the committed offset, for people and the original scripts.
    pub offset_file: PathBuf,
    pub busy_timeout: Duration,
    /// How often to look at the file when no event arrives.
    pub poll_interval: Duration,
    /// Use file-system events as wake-ups (off: poll only).
    pub events: bool,
    /// After a wake-up, wait this long for more lines before reading (batches a fast writer).
    pub linger: Duration,
    pub batch_lines: u64,
    pub status_interval: Duration,
    /// Drain what is there, commit and exit (cron mode).
    pub once: bool,
    pub from_start: bool,
    pub quiet: bool,
    pub rejects: Option<PathBuf>,
    pub max_line: usize,
    pub rotated: Option<String>,
    /// Read a rotated file until it has not changed for this long.
    pub rotate_wait: Duration,
    /// The log format and the client taken (`--log-format`, `--client`).
    pub reading: crate::batch::Reading,
    /// `--retain`: after each pass, rows older than this go.
    pub retain: Option<crate::privacy::Retention>,
}

/// Lines a follower read, wrote and rejected over its whole run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunTotals {
    pub read: u64,
    pub written: u64,
    pub rejected: u64,
}

/// Follows `config.log` until `stop` is set (or once, with `--once`).
///
/// Only one follower of a log into a store runs at a time (a second one is refused). The
/// store's write lock is held for each pass only, so a cron `parse-to-db` takes its turn
/// between two passes. Once started, a follower does not exit on a failed pass (a log
/// truncated under it, a full disk, a database locked for long): it says why and tries again,
/// backing off up to [`MAX_BACKOFF`]; a retried pass neither loses nor repeats a line, since
/// nothing of a failed pass was committed. It exits, with an error, only when its SQLite
/// database was removed or renamed over (see [`check_same_file`]).
pub fn run(config: &FollowConfig, stop: Arc<AtomicBool>, tool: &str) -> anyhow::Result<RunTotals> {
    let mut warn = crate::cli::warn(tool);
    let key = source_key(&config.log);
    let local = config.store.lock_path();
    let _follower = lock::lock_follower(&local, &key, tool)?;
    let lock_pass = |warn: &mut dyn FnMut(String)| {
        lock::lock_store(&local, tool, lock::Wait::Block, Some(&stop), warn)
    };
    let mut writer = {
        let _lock = lock_pass(&mut warn)?;
        let mut writer = config
            .store
            .open(config.busy_timeout, &mut warn, tool, true)?;
        if config.retain.is_some() {
            writer.erase_freed_space()?;
        }
        // Only a SQLite file can be one the original scripts wrote.
        if !config.from_start && config.store.path().is_some() {
            adopt_offset_file(writer.sink(), config, &key, &mut warn)?;
        }
        writer
    };
    let start_offset = writer.sink().checkpoint(&key)?.map_or(0, |cp| cp.offset);
    let database = match config.store.path() {
        Some(path) => Some((path, file_identity(path)?)),
        None => None,
    };
    // Status lines fit the terminal they go to (see `human::Line`), whole in a file.
    let width = human::stderr_width();
    if !config.quiet {
        let mut line = Line::new(&format!("{tool}: following"));
        line.path("", config.log.display());
        let offset = if config.from_start { 0 } else { start_offset };
        line.piece(format!("from offset {}", human::count(offset)));
        line.path("into ", &config.store);
        if config.once {
            line.piece("(once)");
        }
        eprintln!("{}", line.fit(width));
    }

    let (wake_tx, wake_rx) = mpsc::channel::<()>();
    let _watcher = if config.events && !config.once {
        watch(&config.log, wake_tx, &mut warn)
    } else {
        None
    };

    let mut ingest_config = IngestConfig {
        inputs: vec![Input::File(config.log.clone())],
        max_line: config.max_line,
        // While following, a line without its newline is still being written: wait for it.
        // Once, it is taken when settled, as parse-to-db does.
        settle: if config.once {
            Duration::from_secs(3)
        } else {
            Duration::MAX
        },
        take_partial: false,
        from_start: config.from_start,
        rotated: config.rotated.clone(),
        rotate_wait: config.rotate_wait,
        rejects: config.rejects.clone(),
        batch_lines: config.batch_lines,
        progress: false,
        stop: Some(Arc::clone(&stop)),
        reading: config.reading.clone(),
    };
    let mut held = Held::default();
    let mut totals = RunTotals::default();
    let mut missing_said = false;
    let mut last_status = (Instant::now(), 0u64);
    let mut mirrored = None;
    let mut backoff = Duration::ZERO;

    loop {
        let lock = lock_pass(&mut warn);
        // Under the lock: a file renamed over while a cron run held it is seen before anything
        // more is written. Not a failed pass, which would be tried again: the end of the run.
        if lock.is_ok()
            && let Some((path, identity)) = &database
        {
            check_same_file(path, *identity)?;
        }
        let pass = lock.and_then(|_lock| {
            let summary = ingest::run_holding(writer.sink(), &ingest_config, &mut warn, &mut held)?;
            if let Some(retention) = &config.retain
                && let Some(removed) = writer.retain(retention.cutoff(chrono::Utc::now()))?
                && !config.quiet
            {
                eprintln!("continuous-parse: {removed}");
            }
            Ok(summary)
        });
        match pass {
            Ok(summary) => {
                missing_said = false;
                backoff = Duration::ZERO;
                totals.read += summary.read;
                totals.written += summary.written;
                totals.rejected += summary.rejected_total();
                mirror_offset(
                    writer.sink(),
                    &key,
                    &config.offset_file,
                    &mut mirrored,
                    &mut warn,
                );
            }
            Err(e) if is_not_found(&e) && !config.once => {
                if !missing_said {
                    warn(format!(
                        "{} does not exist (yet): waiting for it to appear",
                        config.log.display()
                    ));
                    missing_said = true;
                }
            }
            Err(_) if stop.load(Ordering::Relaxed) => {
                // Stopped while waiting for the store: nothing was read.
                break;
            }
            Err(e) if !config.once => {
                backoff = (backoff * 2).clamp(config.poll_interval.max(MIN_BACKOFF), MAX_BACKOFF);
                warn(format!(
                    "{e:#}; nothing of this pass was stored: trying again in {:.1}s",
                    backoff.as_secs_f64()
                ));
            }
            Err(e) => return Err(e),
        }
        // --from-start applies to the first pass only.
        ingest_config.from_start = false;

        if config.once || stop.load(Ordering::Relaxed) {
            break;
        }
        if !config.quiet && last_status.0.elapsed() >= config.status_interval {
            let elapsed = last_status.0.elapsed().as_secs_f64();
            let lag = lag_bytes(
                &config.log,
                writer.sink().checkpoint(&key)?.map_or(0, |cp| cp.offset),
            );
            let rate = ((totals.read - last_status.1) as f64 / elapsed).round() as u64;
            // Short enough for one line of 80 columns with ten-digit totals; the rejected
            // count only when there are some (the stop line always gives it).
            let mut line = Line::new(&format!("{tool}:"));
            line.piece(format!("{} in total,", human::counted(totals.read, "line")));
            line.piece(format!("{} lines/s,", human::count(rate)));
            if totals.rejected > 0 {
                line.piece(format!("{} rejected,", human::count(totals.rejected)));
            }
            line.piece(format!("{} behind", human::bytes(lag)));
            eprintln!("{}", line.fit(width));
            last_status = (Instant::now(), totals.read);
        }
        if backoff.is_zero() {
            wait(&wake_rx, config, &stop);
        } else {
            sleep_unless_stopped(backoff, &stop);
        }
    }
    if !config.quiet {
        let mut line = Line::new(&format!("{tool}: stopped after"));
        line.piece(human::counted(totals.read, "line"));
        line.piece(format!("({} written,", human::count(totals.written)));
        line.piece(format!("{} rejected)", human::count(totals.rejected)));
        eprintln!("{}", line.fit(width));
    }
    Ok(totals)
}

/// The device and inode of a file.
fn file_identity(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map(|m| (m.dev(), m.ino()))
}

/// Fails when the database file the writer holds open is no longer the one at its path,
/// removed (`rm`) or renamed over (`mv`): its connection would go on writing into a file that
/// nobody reads again, and the user would see lines vanish. Stopping is the only way to say
/// so. A file rewritten in place (`cp` over it, `sqlite3 .restore`) is the same file, and
/// SQLite sees its new content. A path that cannot be looked at for another reason (a network
/// file system's hiccup) is left to the pass itself.
fn check_same_file(path: &Path, identity: (u64, u64)) -> anyhow::Result<()> {
    match file_identity(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "database {} was removed while this process wrote to it: stopped, since what it \
             wrote would go into the removed file, which nobody reads",
            path.display()
        ),
        Ok(now) if now != identity => anyhow::bail!(
            "database {} was replaced by another file while this process wrote to it: stopped, \
             since what it wrote would go into the old one (run again to write to the new one)",
            path.display()
        ),
        _ => Ok(()),
    }
}

/// The first and the longest pause before a failed pass is tried again.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

fn sleep_unless_stopped(pause: Duration, stop: &AtomicBool) {
    let until = Instant::now() + pause;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// Sleeps until an event, the poll interval, or a stop. After an event, lingers briefly so
/// that a burst of appends is read (and committed) as one batch.
fn wait(wake: &mpsc::Receiver<()>, config: &FollowConfig, stop: &AtomicBool) {
    let deadline = Instant::now() + config.poll_interval;
    while !stop.load(Ordering::Relaxed) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        match wake.recv_timeout(left.min(Duration::from_millis(100))) {
            Ok(()) => {
                std::thread::sleep(config.linger);
                while wake.try_recv().is_ok() {}
                return;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(left.min(Duration::from_millis(100)));
            }
        }
    }
}

/// Watches the log's directory (not the file: a rotation replaces the file) for any change.
fn watch(
    log: &Path,
    wake: mpsc::Sender<()>,
    warn: &mut dyn FnMut(String),
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let dir = match log.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = log.file_name().map(|n| n.to_owned());
    let result = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // A change to the log or to one of its rotated files (or an error, such as an
        // overflowed queue) is a wake-up. Access events are not: our own opens and reads of
        // the log would wake us in a loop.
        let relevant = match &event {
            Ok(e) if matches!(e.kind, notify::EventKind::Access(_)) => false,
            Ok(e) => {
                e.need_rescan()
                    || e.paths.is_empty()
                    || e.paths.iter().any(|p| {
                        let (Some(file), Some(log)) = (p.file_name(), name.as_deref()) else {
                            return false;
                        };
                        file.as_encoded_bytes().starts_with(log.as_encoded_bytes())
                    })
            }
            Err(_) => true,
        };
        if relevant {
            let _ = wake.send(());
        }
    })
    .and_then(|mut watcher| {
        watcher
            .watch(&dir, notify::RecursiveMode::NonRecursive)
            .map(|()| watcher)
    });
    match result {
        Ok(watcher) => Some(watcher),
        Err(e) => {
            warn(format!(
                "cannot watch {} for changes ({e}): polling instead",
                dir.display()
            ));
            None
        }
    }
}

/// A database made by the original scripts has rows but no checkpoint at all, only
/// `logs/.offset`: start from it, if it still points just after a line of the file there.
///
/// Only then: our own mirror of the offset outlives a database removed to be rebuilt, and a
/// new, empty database that adopted it would skip every line before it.
fn adopt_offset_file(
    sink: &mut dyn Sink,
    config: &FollowConfig,
    key: &str,
    warn: &mut dyn FnMut(String),
) -> anyhow::Result<()> {
    if !sink.checkpoints()?.is_empty() || !config.offset_file.exists() {
        return Ok(());
    }
    if !sink.holds_rows()? {
        warn(format!(
            "ignoring {}: {} holds no rows, so the offset is not the original scripts' (reading {} from the start)",
            config.offset_file.display(),
            config.store,
            config.log.display()
        ));
        return Ok(());
    }
    let text = match std::fs::read_to_string(&config.offset_file) {
        Ok(text) => text,
        Err(_) => return Ok(()),
    };
    let Ok(offset) = text.trim().parse::<u64>() else {
        warn(format!(
            "{} does not hold an offset: ignoring it",
            config.offset_file.display()
        ));
        return Ok(());
    };
    let Ok(file) = File::open(&config.log) else {
        return Ok(());
    };
    let len = file.metadata()?.len();
    let mut before = [0u8; 1];
    use std::os::unix::fs::FileExt;
    let at_line_start = offset == 0
        || (offset <= len
            && file.read_exact_at(&mut before, offset - 1).is_ok()
            && before[0] == b'\n');
    if !at_line_start {
        warn(format!(
            "{} says offset {offset}, which is not the start of a line of {}: reading from the start",
            config.offset_file.display(),
            config.log.display()
        ));
        return Ok(());
    }
    let cp = checkpoint::take(&file, offset, 0)?;
    sink.commit(&[Update::Set(key, cp)])?;
    warn(format!(
        "starting from offset {offset}, found in {}",
        config.offset_file.display()
    ));
    Ok(())
}

/// Writes the committed offset to the mirror file when it moved (atomically: readers never
/// see half a number). The mirror is for people and scripts: failing to write it (its disk
/// full) is a warning, said once per cause, never a reason to stop.
fn mirror_offset(
    sink: &mut dyn Sink,
    key: &str,
    offset_file: &Path,
    mirrored: &mut Option<Result<u64, String>>,
    warn: &mut dyn FnMut(String),
) {
    let Ok(Some(cp)) = sink.checkpoint(key) else {
        return;
    };
    if *mirrored == Some(Ok(cp.offset)) {
        return;
    }
    match write_atomically(offset_file, format!("{}\n", cp.offset).as_bytes()) {
        Ok(()) => *mirrored = Some(Ok(cp.offset)),
        Err(e) => {
            let message = format!("{e:#}");
            if mirrored
                .as_ref()
                .is_none_or(|m| m.as_ref().err() != Some(&message))
            {
                warn(format!(
                    "cannot update {} ({message}); the database is up to date, the mirror is not",
                    offset_file.display()
                ));
            }
            *mirrored = Some(Err(message));
        }
    }
}

fn lag_bytes(log: &Path, offset: u64) -> u64 {
    std::fs::metadata(log).map_or(0, |m| m.len().saturating_sub(offset))
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::NotFound)
}
