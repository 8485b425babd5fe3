//! A model-based test of following, in process: random scripts of what servers, logrotate
//! and crashes do to a log, run against the real ingest passes and a real SQLite store, and
//! checked after every step against a model of which lines must be stored.
//!
//! The server is a file handle that appends numbered lines, and keeps writing to its file
//! after a rotation until the script reopens it, as nginx does until `USR1`. Rotation is
//! logrotate's, with numbered names: `create` or `nocreate`, `compress` at once or delayed,
//! `copytruncate`. A crash is a pass whose store fails at its k-th commit: the batch is rolled
//! back and the follower's open files are dropped, which is what a `kill -9` leaves. Two
//! writers overlap on two threads, each with its own connection, as two processes would.
//!
//! After every step: no line stored twice, none that was not written, each file's lines in
//! order; after every pass that completed, every complete line written so far is stored.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use log_pipeline::checkpoint::Checkpoint;
use log_pipeline::ingest::{self, Held, IngestConfig, Input};
use log_pipeline::sink::sqlite::SqliteSink;
use log_pipeline::sink::{Rejected, Sink, Update};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// The server writes this many lines (finishing a half-written one first).
    Append(u8),
    /// The server writes the first half of a line.
    Partial,
    /// logrotate renames the log; with `create` it makes a new empty one.
    Rotate { create: bool },
    /// The server reopens its log (creating it if missing).
    Reopen,
    /// gzip `.N` (1: `compress`; 2: `delaycompress`), if the server no longer writes to it.
    Compress(u8),
    /// logrotate's copytruncate.
    CopyTruncate,
    /// A follower pass; `crash` makes its store fail at that commit.
    Pass { crash: Option<u8> },
    /// A one-time run (parse-to-db from cron) with a connection of its own.
    OneTime,
    /// Two one-time runs at once.
    Overlap,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..6).prop_map(Op::Append),
        1 => Just(Op::Partial),
        2 => any::<bool>().prop_map(|create| Op::Rotate { create }),
        2 => Just(Op::Reopen),
        1 => (1u8..3).prop_map(Op::Compress),
        1 => Just(Op::CopyTruncate),
        4 => proptest::option::weighted(0.4, 1u8..6).prop_map(|crash| Op::Pass { crash }),
        1 => Just(Op::OneTime),
        1 => Just(Op::Overlap),
    ]
}

/// A store that fails at its `n`-th commit, before anything of it is stored.
struct Crashing<'a> {
    inner: &'a mut SqliteSink,
    commits_left: u8,
}

impl Sink for Crashing<'_> {
    fn checkpoint(&mut self, source: &str) -> anyhow::Result<Option<Checkpoint>> {
        self.inner.checkpoint(source)
    }
    fn checkpoints(&mut self) -> anyhow::Result<Vec<(String, Checkpoint)>> {
        self.inner.checkpoints()
    }
    fn log_format(&mut self, source: &str) -> anyhow::Result<Option<String>> {
        self.inner.log_format(source)
    }
    fn set_log_format(&mut self, name: &str) {
        self.inner.set_log_format(name)
    }
    fn scrubbed(&mut self) -> anyhow::Result<Option<String>> {
        self.inner.scrubbed()
    }

    fn set_scrubbed(&mut self, choices: &str) -> anyhow::Result<()> {
        self.inner.set_scrubbed(choices)
    }

    fn holds_rows(&mut self) -> anyhow::Result<bool> {
        self.inner.holds_rows()
    }
    fn prepare(&self) -> log_pipeline::batch::Prepare {
        self.inner.prepare()
    }
    fn write_batch(
        &mut self,
        origin: log_pipeline::sink::Origin<'_>,
        batch: &mut log_pipeline::batch::Batch,
    ) -> anyhow::Result<()> {
        self.inner.write_batch(origin, batch)
    }
    fn reject(&mut self, rejected: &Rejected<'_>) -> anyhow::Result<()> {
        self.inner.reject(rejected)
    }
    fn commit(&mut self, updates: &[Update<'_>]) -> anyhow::Result<()> {
        if self.commits_left == 0 {
            anyhow::bail!("killed");
        }
        self.commits_left -= 1;
        self.inner.commit(updates)
    }
    fn abort(&mut self) {
        self.inner.abort()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

struct World {
    dir: tempfile::TempDir,
    /// The file the server appends to, and the rest of its half-written line.
    server: File,
    partial: Option<String>,
    next: u64,
    /// Line number -> the file it was written to, for the order check. Files are numbered
    /// as they are made (inodes are reused once gzip frees them, so they cannot say).
    file_of: HashMap<u64, u64>,
    /// The number of the file the server writes to, and the last number given.
    server_file: u64,
    files: u64,
    /// The follower: its connection and its open files, lost in a crash.
    follower: Option<(SqliteSink, Held)>,
}

fn line(n: u64) -> String {
    format!(
        "10.0.{}.{} - - [01/Jan/2024:00:00:00 +0000] \"GET /page/{n} HTTP/1.1\" 200 {n} \"-\" \"model\"\n",
        n / 250 % 250,
        n % 250 + 1
    )
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("logs")).unwrap();
        let server = append(&dir.path().join("logs/access.log"));
        World {
            dir,
            server,
            partial: None,
            next: 0,
            file_of: HashMap::new(),
            server_file: 0,
            files: 0,
            follower: None,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn log(&self) -> PathBuf {
        self.path("logs/access.log")
    }

    fn db(&self) -> PathBuf {
        self.path("logs.db")
    }

    fn server_inode(&self) -> u64 {
        self.server.metadata().unwrap().ino()
    }

    /// Does the server write to the file at `rel`?
    fn serves(&self, rel: &str) -> bool {
        std::fs::metadata(self.path(rel)).is_ok_and(|m| m.ino() == self.server_inode())
    }

    fn finish_partial(&mut self) {
        if let Some(rest) = self.partial.take() {
            self.server.write_all(rest.as_bytes()).unwrap();
        }
    }

    fn config(&self, finalize: bool) -> IngestConfig {
        IngestConfig {
            inputs: vec![Input::File(self.log())],
            settle: Duration::MAX,
            // Rotated files are finished only once the server has reopened (so nothing more
            // can come to them); until then they are read on at every pass.
            rotate_wait: if finalize {
                Duration::ZERO
            } else {
                Duration::from_secs(3600)
            },
            batch_lines: 2,
            progress: false,
            ..IngestConfig::default()
        }
    }

    /// Runs one step; returns whether every complete line must now be stored.
    fn step(&mut self, op: &Op) -> bool {
        let finalize = self.serves("logs/access.log");
        match op {
            Op::Append(n) => {
                self.finish_partial();
                for _ in 0..*n {
                    self.server.write_all(line(self.next).as_bytes()).unwrap();
                    self.file_of.insert(self.next, self.server_file);
                    self.next += 1;
                }
            }
            Op::Partial => {
                if self.partial.is_none() {
                    let text = line(self.next);
                    let (head, tail) = text.split_at(text.len() / 2);
                    self.server.write_all(head.as_bytes()).unwrap();
                    self.file_of.insert(self.next, self.server_file);
                    self.next += 1;
                    self.partial = Some(tail.to_owned());
                }
            }
            Op::Rotate { create } => {
                if self.log().exists() {
                    self.finish_partial();
                    self.shift();
                    std::fs::rename(self.log(), self.path("logs/access.log.1")).unwrap();
                    if *create {
                        File::create(self.log()).unwrap();
                    }
                }
            }
            Op::Reopen => {
                self.finish_partial();
                let before = self.server_inode();
                self.server = append(&self.log());
                if self.server_inode() != before {
                    self.files += 1;
                    self.server_file = self.files;
                }
            }
            Op::Compress(k) => {
                let rel = format!("logs/access.log.{k}");
                if self.path(&rel).exists() && !self.serves(&rel) {
                    gzip(&self.path(&rel));
                }
            }
            Op::CopyTruncate => {
                if finalize && self.log().exists() {
                    self.finish_partial();
                    self.shift();
                    std::fs::copy(self.log(), self.path("logs/access.log.1")).unwrap();
                    // The copied lines now live in the copy: for the order check, a new file.
                    self.files += 1;
                    let copy = self.files;
                    for file in self.file_of.values_mut() {
                        if *file == self.server_file {
                            *file = copy;
                        }
                    }
                    OpenOptions::new()
                        .write(true)
                        .truncate(true)
                        .open(self.log())
                        .unwrap();
                }
            }
            Op::Pass { crash } => {
                let config = self.config(finalize);
                let db = self.db();
                let (sink, held) = self.follower.get_or_insert_with(|| {
                    (
                        SqliteSink::open(&db, Duration::from_secs(10), &mut |_| {}).unwrap(),
                        Held::default(),
                    )
                });
                let result = match crash {
                    Some(k) => {
                        let mut crashing = Crashing {
                            inner: sink,
                            commits_left: *k,
                        };
                        ingest::run_holding(&mut crashing, &config, &mut |_| {}, held)
                    }
                    None => ingest::run_holding(sink, &config, &mut |m| verbose(&m), held),
                };
                match result {
                    Ok(_) => return self.log().exists(),
                    Err(e) if crash.is_some() && format!("{e:#}").contains("killed") => {
                        // The process died: its connection and open files are gone.
                        self.follower = None;
                    }
                    Err(e) if !self.log().exists() => {
                        assert!(format!("{e:#}").contains("cannot open log"), "{e:#}");
                    }
                    Err(e) => panic!("pass failed: {e:#}"),
                }
            }
            Op::OneTime => {
                one_time(&self.db(), &self.config(finalize));
                return self.log().exists();
            }
            Op::Overlap => {
                let (db, config) = (self.db(), self.config(finalize));
                std::thread::scope(|scope| {
                    for _ in 0..2 {
                        scope.spawn(|| one_time(&db, &config));
                    }
                });
                return self.log().exists();
            }
        }
        false
    }

    /// Moves `.k` and `.k.gz` to `.k+1`, as logrotate does before renaming the log to `.1`.
    fn shift(&self) {
        for k in (1..30).rev() {
            for ext in ["", ".gz"] {
                let from = self.path(&format!("logs/access.log.{k}{ext}"));
                if from.exists() {
                    let to = self.path(&format!("logs/access.log.{}{ext}", k + 1));
                    std::fs::rename(from, to).unwrap();
                }
            }
        }
    }

    /// The line numbers stored, in the order they were stored.
    fn stored(&self) -> Vec<u64> {
        if !self.db().exists() {
            return Vec::new();
        }
        crate::workdir::db_rows(&self.db())
            .iter()
            .map(|r| r[5].strip_prefix("/page/").unwrap().parse().unwrap())
            .collect()
    }

    fn check(&self, complete: bool, script: &[Op], step: usize) {
        let stored = self.stored();
        let context = || format!("after step {step} of {:?}", &script[..=step]);
        let mut seen = std::collections::HashSet::new();
        for n in &stored {
            assert!(seen.insert(*n), "line {n} stored twice {}", context());
            assert!(*n < self.next, "line {n} was never written {}", context());
        }
        let mut last_of_file: HashMap<u64, u64> = HashMap::new();
        for n in &stored {
            let file = self.file_of[n];
            if let Some(last) = last_of_file.insert(file, *n) {
                assert!(
                    last < *n,
                    "line {n} stored after {last} of the same file {}",
                    context()
                );
            }
        }
        if complete {
            let pending = self.partial.as_ref().map(|_| self.next - 1);
            let expected: Vec<u64> = (0..self.next).filter(|n| Some(*n) != pending).collect();
            let mut got = stored.clone();
            got.sort();
            assert_eq!(
                got,
                expected,
                "not every complete line is stored {}",
                context()
            );
        }
    }
}

/// A run of its own, as parse-to-db is: the store's lock, a connection, no open files.
fn one_time(db: &Path, config: &IngestConfig) {
    let _lock = log_pipeline::lock::lock_store(
        db,
        "model",
        log_pipeline::lock::Wait::Block,
        None,
        &mut |_| {},
    )
    .unwrap();
    let mut sink = SqliteSink::open(db, Duration::from_secs(10), &mut |_| {}).unwrap();
    if let Err(e) = ingest::run(&mut sink, config, &mut |m| verbose(&m)) {
        let Input::File(log) = &config.inputs[0] else {
            unreachable!()
        };
        assert!(
            !log.exists() && format!("{e:#}").contains("cannot open log"),
            "{e:#}"
        );
    }
}

/// What the passes say, printed with MODEL_VERBOSE set (to follow a failing script).
fn verbose(message: &str) {
    if std::env::var_os("MODEL_VERBOSE").is_some() {
        eprintln!("  pass: {message}");
    }
}

fn append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

fn gzip(path: &Path) {
    let data = std::fs::read(path).unwrap();
    let gz = PathBuf::from(format!("{}.gz", path.display()));
    let mut enc =
        flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
    enc.write_all(&data).unwrap();
    enc.finish().unwrap();
    std::fs::remove_file(path).unwrap();
}

/// Runs `script` from a log the follower has seen once, then ends the day (the server
/// reopens, writes a last line, a pass finishes all), checking after every step.
fn run(script: &[Op]) {
    let mut world = World::new();
    // The follower has seen the log once before the script starts: rotated files that existed
    // before its first run are history, not its to read.
    world.step(&Op::Append(1));
    world.step(&Op::Pass { crash: None });
    for (i, op) in script.iter().enumerate() {
        let complete = world.step(op);
        world.check(complete, script, i);
    }
    world.step(&Op::Reopen);
    world.step(&Op::Append(1));
    let complete = world.step(&Op::Pass { crash: None });
    assert!(complete, "the last pass completed");
    world.check(true, script, script.len().saturating_sub(1));
}

/// The smallest scripts the random ones shrank to when they found a bug, kept so that each
/// bug stays fixed whatever the random scripts draw.
#[test]
fn scripts_that_once_lost_or_doubled_lines() {
    use Op::*;
    let nocreate = Rotate { create: false };
    let create = Rotate { create: true };
    let pass = Pass { crash: None };
    let scripts: Vec<Vec<Op>> = vec![
        // An empty log's inode freed by gzip and reused by the reopened log: the current
        // record and the empty file's rotated record both named the new file, and both read
        // it from its start.
        vec![
            create.clone(),
            create.clone(),
            OneTime,
            nocreate.clone(),
            Compress(1),
            Compress(2),
            Append(5),
            Reopen,
            Pass { crash: Some(3) },
            CopyTruncate,
            Append(1),
            Partial,
            Append(2),
            nocreate.clone(),
        ],
        // An inode freed by gzip and reused by the next log.
        vec![
            nocreate.clone(),
            Reopen,
            pass.clone(),
            pass.clone(),
            nocreate.clone(),
            Compress(2),
            Reopen,
            nocreate.clone(),
            Append(1),
        ],
        // A checkpoint on an empty log, then a rotation and compression.
        vec![
            nocreate.clone(),
            Reopen,
            pass.clone(),
            Append(1),
            nocreate.clone(),
            Reopen,
            Compress(1),
            OneTime,
        ],
        // copytruncate of a log that was empty at the last pass, then a rotation.
        vec![
            CopyTruncate,
            pass.clone(),
            Append(1),
            CopyTruncate,
            nocreate.clone(),
        ],
        // A rotated file that was empty when found, compressed later.
        vec![
            nocreate.clone(),
            Reopen,
            nocreate.clone(),
            pass.clone(),
            Append(1),
            Reopen,
            Compress(1),
        ],
        vec![
            CopyTruncate,
            pass.clone(),
            nocreate.clone(),
            Append(1),
            Reopen,
            nocreate.clone(),
            Compress(2),
        ],
        // A rotated record of an empty file whose inode a newer file reused.
        vec![
            create.clone(),
            nocreate.clone(),
            OneTime,
            Reopen,
            Compress(1),
            create.clone(),
            nocreate.clone(),
            Append(1),
        ],
        // An empty copy found by a pass, compressed, and its inode reused by a later copy:
        // the record of the empty copy must not say where the files it had not seen stand.
        vec![
            Append(1),
            Reopen,
            Append(1),
            Append(4),
            create.clone(),
            Append(5),
            Append(5),
            Compress(1),
            Overlap,
            Reopen,
            Overlap,
            Reopen,
            pass.clone(),
            Pass { crash: Some(1) },
            CopyTruncate,
            pass.clone(),
            Pass { crash: Some(1) },
            Append(2),
            Compress(1),
            CopyTruncate,
            Append(4),
            CopyTruncate,
            OneTime,
        ],
    ];
    for script in &scripts {
        run(script);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("MODEL_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2000),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_line_is_stored_exactly_once_whatever_happens(
        script in proptest::collection::vec(op(), 1..30)
    ) {
        run(&script);
    }
}
