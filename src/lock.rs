//! Locks: one writer per store at a time, and one follower per log and store.
//!
//! A checkpoint is only as good as the guarantee that nobody else moves it between the moment
//! it is read and the moment the rows it covers are committed. Two `parse-to-db` runs on one
//! database, a cron run beside a follower, two `parse-to-csv` into one CSV: each read the same
//! checkpoint and stored the same lines. So every writer takes an exclusive lock on a file
//! beside its store (`logs.db.lock`, `parsed_logs.csv.lock`) before it opens the store (schema
//! creation and upgrade happen under it too) and holds it until its rows are committed: a
//! one-time run for the whole run, a follower for one pass at a time, so a cron run can take
//! its turn between two passes.
//!
//! The locks are `flock(2)` locks (through `std::fs::File::lock`): the kernel drops them when
//! the process dies, however it dies, so a `kill -9` never leaves a store locked. The lock
//! file holds the holder's pid and name, for the message a waiting writer prints. Lock files
//! are never deleted: removing one while another process waits on it would let two writers in.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};

/// What a writer does when another one holds the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wait {
    /// Wait for its turn, saying so once (the default: cron beside a follower).
    #[default]
    Block,
    /// Fail at once with an error that names the holder (`--no-wait`).
    Fail,
}

/// An exclusive lock on a file, held until dropped.
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
}

impl Lock {
    /// The lock file's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// The lock file beside a store.
pub fn store_lock_path(store: &Path) -> PathBuf {
    PathBuf::from(format!("{}.lock", store.display()))
}

/// Takes the write lock of `store` for `tool`. With [`Wait::Block`] it waits, telling
/// `notify` once who it waits for, until the lock is free or `stop` is set (then it fails).
pub fn lock_store(
    store: &Path,
    tool: &str,
    wait: Wait,
    stop: Option<&AtomicBool>,
    notify: &mut dyn FnMut(String),
) -> anyhow::Result<Lock> {
    let path = store_lock_path(store);
    let file = open(&path)?;
    let mut said = false;
    let mut pause = Duration::from_millis(1);
    loop {
        match file.try_lock() {
            Ok(()) => return claim(file, path, tool),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        let holder = holder(&file);
        if wait == Wait::Fail {
            bail!(
                "{} is being written by {holder}; not waiting (--no-wait)",
                store.display()
            );
        }
        if !said {
            notify(format!(
                "{} is being written by {holder}: waiting for it to finish",
                store.display()
            ));
            said = true;
        }
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            bail!(
                "stopped while waiting for {holder} to finish with {}",
                store.display()
            );
        }
        // Short at first (a follower's pass takes milliseconds), then at most a quarter second.
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// Takes the lock that makes a follower of `source` into `store` the only one, or fails at
/// once naming the follower that has it.
pub fn lock_follower(store: &Path, source: &str, tool: &str) -> anyhow::Result<Lock> {
    let path = PathBuf::from(format!(
        "{}.follow-{:016x}.lock",
        store.display(),
        crate::checkpoint::fnv1a(source.as_bytes())
    ));
    let file = open(&path)?;
    match file.try_lock() {
        Ok(()) => claim(file, path, tool),
        Err(TryLockError::WouldBlock) => bail!(
            "{} already follows {source} into {}: stop it first (one follower per log and store)",
            holder(&file),
            store.display()
        ),
        Err(TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

fn open(path: &Path) -> anyhow::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        // A ClickHouse writer's lock is in the shared temporary directory: a link planted
        // there under its name must not make it write into another file.
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("cannot open lock file {}", path.display()))
}

/// Writes who holds the lock into it, for the messages of those who wait.
fn claim(mut file: File, path: PathBuf, tool: &str) -> anyhow::Result<Lock> {
    let who = format!("{tool} (pid {})\n", std::process::id());
    // Best effort: the lock is held whatever this says.
    let _ = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(who.as_bytes()));
    Ok(Lock { file, path })
}

/// Who holds the lock, as its holder wrote it.
fn holder(file: &File) -> String {
    let mut text = String::new();
    let mut reader = file;
    let read = reader
        .rewind()
        .and_then(|()| reader.take(200).read_to_string(&mut text));
    match read {
        Ok(_) if !text.trim().is_empty() => text.trim().to_owned(),
        _ => "another process".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_fails_or_waits_and_a_dropped_lock_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("logs.db");
        let first = lock_store(&store, "first", Wait::Fail, None, &mut |_| {}).unwrap();
        let err = lock_store(&store, "second", Wait::Fail, None, &mut |_| {}).unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains(&format!("first (pid {})", std::process::id())),
            "{message}"
        );

        // A waiting writer says once whom it waits for, and gets the lock once it is free.
        let (said_tx, said_rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn({
            let store = store.clone();
            move || {
                lock_store(&store, "second", Wait::Block, None, &mut |m| {
                    said_tx.send(m).unwrap()
                })
                .map(|_| ())
            }
        });
        let said = said_rx.recv().unwrap();
        assert!(said.contains("waiting for it to finish"), "{said}");
        drop(first);
        waiter.join().unwrap().unwrap();
        assert!(said_rx.try_recv().is_err(), "said once");
    }

    #[test]
    fn a_stop_ends_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("out.csv");
        let _held = lock_store(&store, "held", Wait::Block, None, &mut |_| {}).unwrap();
        let stop = AtomicBool::new(true);
        let err = lock_store(&store, "w", Wait::Block, Some(&stop), &mut |_| {}).unwrap_err();
        assert!(format!("{err:#}").contains("stopped while waiting"));
    }

    #[test]
    fn one_follower_per_source_and_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("logs.db");
        let _a = lock_follower(&store, "/var/log/a.log", "continuous-parse").unwrap();
        let err = lock_follower(&store, "/var/log/a.log", "continuous-parse").unwrap_err();
        assert!(format!("{err:#}").contains("already follows /var/log/a.log"));
        // Another log into the same store is fine.
        lock_follower(&store, "/var/log/b.log", "continuous-parse").unwrap();
    }
}
