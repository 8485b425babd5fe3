//! One pass over log sources into a sink: the engine of `parse-to-csv` and `parse-to-db`.
//!
//! Each source file resumes from the checkpoint its sink saved, after checking that the file is
//! still the one the checkpoint was taken on (see [`crate::checkpoint`]). When the file at the
//! path was rotated away since, the rotated file is drained from the saved offset first, so the
//! lines written to it after the last run are not lost. Rows are committed in batches together
//! with the checkpoint that covers them.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};

use crate::batch::{self, Position, Reading};
use crate::checkpoint::{self, Checkpoint, Mismatch};
use crate::parse::Reject;
use crate::rotation::{self, Located, Opened, Records};
use crate::sink::{Origin, Rejected, Sink, Update};
use crate::source::{LineReader, prefetch};

/// A source named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// `-`: read once, never checkpointed.
    Stdin,
    /// A log file; `.gz` files are decompressed.
    File(PathBuf),
}

impl Input {
    pub fn from_arg(arg: &Path) -> Input {
        if arg == Path::new("-") {
            Input::Stdin
        } else {
            Input::File(arg.to_owned())
        }
    }
}

/// How a pass reads its sources.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub inputs: Vec<Input>,
    /// Lines longer than this are rejected without being held in memory.
    pub max_line: usize,
    /// A last line without `\n` is taken once the file has not changed for this long.
    pub settle: Duration,
    /// Take a last line without `\n` regardless (`--final`).
    pub take_partial: bool,
    /// Ignore saved checkpoints (`--from-start`).
    pub from_start: bool,
    /// Extra places a rotated file may be found (`--rotated GLOB`).
    pub rotated: Option<String>,
    /// A rotated file is read until it has not changed for this long: the server writes to
    /// it until it reopens its log (`--rotate-wait`).
    pub rotate_wait: Duration,
    /// Append rejected lines here (`--rejects PATH`).
    pub rejects: Option<PathBuf>,
    /// Lines per commit.
    pub batch_lines: u64,
    /// Show a progress bar (only honoured when stderr is a terminal).
    pub progress: bool,
    /// Set by Ctrl+C/SIGTERM: the pass ends at its next commit.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// The log format and the client taken (`--log-format`, `--client`).
    pub reading: Reading,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            inputs: vec![Input::File(PathBuf::from("logs/access.log"))],
            max_line: 1 << 20,
            settle: Duration::from_secs(3),
            take_partial: false,
            from_start: false,
            rotated: None,
            rotate_wait: Duration::from_secs(5),
            rejects: None,
            batch_lines: 200_000,
            progress: true,
            stop: None,
            reading: Reading::default(),
        }
    }
}

/// What a pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Lines read (taken or rejected).
    pub read: u64,
    pub written: u64,
    pub rejected: BTreeMap<&'static str, u64>,
    /// Bytes of a last line left for a later run because it had no `\n` yet.
    pub pending_bytes: u64,
    /// Lines that began with NUL padding, stripped before parsing (a crash happened while
    /// the log was written; see [`crate::batch::Batch::padded_lines`]).
    pub nul_padded: u64,
    pub elapsed: Duration,
    /// Inputs read and committed in full.
    pub committed: Vec<String>,
    /// Inputs that failed, with the cause: rolled back to their last commit.
    pub failed: Vec<(String, String)>,
}

impl Summary {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    fn rate(&self) -> f64 {
        self.read as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The summary for stderr, of a run that wrote `into`: one line, which
    /// [`Line::fit`](crate::human::Line::fit) breaks to fit a terminal.
    pub fn line(&self, tool: &str, into: &str) -> crate::human::Line {
        use crate::human::{Line, count, counted};
        let mut line = Line::new(&format!("{tool}: read"));
        line.piece(counted(self.read, "line")).glue(",");
        line.piece(format!("wrote {},", count(self.written)));
        line.piece(format!("rejected {}", count(self.rejected_total())));
        let reasons = self.rejected.len();
        for (i, (reason, n)) in self.rejected.iter().enumerate() {
            let open = if i == 0 { "(" } else { "" };
            let close = if i + 1 == reasons { ")" } else { "," };
            line.piece(format!("{open}{reason} {}{close}", count(*n)));
        }
        if self.nul_padded > 0 {
            line.glue(",").words("skipped NUL padding before");
            line.piece(counted(self.nul_padded, "line"));
        }
        if self.pending_bytes > 0 {
            line.glue(",").words("left an unfinished last line");
            line.piece(format!("({})", counted(self.pending_bytes, "byte")));
            line.words("for later");
        }
        line.piece(format!("in {:.2}s", self.elapsed.as_secs_f64()));
        line.piece(format!("({} lines/s)", count(self.rate().round() as u64)));
        line.path("into ", into);
        if !self.failed.is_empty() {
            let inputs = self.committed.len() + self.failed.len();
            line.glue(";");
            line.piece(format!(
                "committed {} of",
                count(self.committed.len() as u64)
            ));
            line.piece(format!("{},", counted(inputs as u64, "input")));
            line.words("FAILED:");
            for (i, (name, _)) in self.failed.iter().enumerate() {
                line.path("", name);
                if i + 1 < self.failed.len() {
                    line.glue(",");
                }
            }
        }
        line
    }

    /// The summary as a JSON document (`--json`).
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "read": self.read,
            "written": self.written,
            "rejected": self.rejected_total(),
            "rejected_by_reason": self.rejected,
            "pending_bytes": self.pending_bytes,
            "nul_padded": self.nul_padded,
            "seconds": self.elapsed.as_secs_f64(),
            "lines_per_second": self.rate(),
            "committed": self.committed,
            "failed": self.failed.iter().map(|(input, error)| serde_json::json!({"input": input, "error": error})).collect::<Vec<_>>(),
        })
    }
}

/// Files a follower keeps open between passes: the current file and the rotated ones still
/// being read. A file renamed to any name, or deleted, can still be read through its handle
/// while the server goes on writing to it.
#[derive(Debug, Default)]
pub struct Held {
    files: Vec<(PathBuf, File)>,
    /// Per file (device, inode): the header line in force where the last pass began reading
    /// it (see `LogFormat::header`), so that the next one looks back only to there, not to
    /// the file's top (a W3C log has one `#Fields:` line at its top, and may be large).
    headers: Vec<HeaderAt>,
}

/// The header line in force at `offset` of the file `id` (see [`Held`]).
#[derive(Debug)]
struct HeaderAt {
    id: (u64, u64),
    offset: u64,
    header: Option<std::sync::Arc<[u8]>>,
}

impl Held {
    fn add(&mut self, name: &Path, file: &File) {
        let Ok(meta) = file.metadata() else { return };
        let id = (meta.dev(), meta.ino());
        if self.files.iter().any(|(_, f)| identity(f) == Some(id)) {
            return;
        }
        if let Ok(clone) = file.try_clone() {
            self.files.push((name.to_owned(), clone));
        }
    }

    fn pairs(&self) -> Vec<(PathBuf, &File)> {
        self.files.iter().map(|(n, f)| (n.clone(), f)).collect()
    }
}

/// The current record of a log that was missing at the last pass (see [`Pass::file`]).
const MISSING: Checkpoint = Checkpoint {
    dev: 0,
    inode: 0,
    fingerprint_len: 0,
    fingerprint: 0,
    offset: 0,
    line: 0,
    tail_hash: 0,
};

/// `rotated` without the records from which nothing was read that name the same file, with
/// the same head, as an earlier one; and the keys of those left out.
fn one_record_per_unread_file(
    rotated: Vec<(String, Checkpoint)>,
) -> (Vec<(String, Checkpoint)>, Vec<String>) {
    let unread_file = |cp: &Checkpoint| {
        (cp.offset == 0).then_some((cp.dev, cp.inode, cp.fingerprint_len, cp.fingerprint))
    };
    let mut kept: Vec<(String, Checkpoint)> = Vec::with_capacity(rotated.len());
    let mut dropped = Vec::new();
    for (key, cp) in rotated {
        let twice = unread_file(&cp)
            .is_some_and(|file| kept.iter().any(|(_, k)| unread_file(k) == Some(file)));
        match twice {
            true => dropped.push(key),
            false => kept.push((key, cp)),
        }
    }
    (kept, dropped)
}

/// A file's device and inode.
type Identity = (u64, u64);

fn identity(file: &File) -> Option<Identity> {
    file.metadata().ok().map(|m| (m.dev(), m.ino()))
}

/// The state one pass carries across its sources.
struct Pass<'a> {
    sink: &'a mut dyn Sink,
    config: &'a IngestConfig,
    notify: &'a mut dyn FnMut(String),
    rejects: Option<(PathBuf, io::BufWriter<File>)>,
    summary: Summary,
    /// What the previous pass held open (a follower's), and what this one uses.
    held: Held,
    used: Held,
}

/// Reads every input of `config` into `sink`. `notify` receives what the user should know
/// (a truncated or rotated file, a reset checkpoint); it is printed even with `--quiet`.
///
/// An input that fails is rolled back to its last commit and the others still run; the
/// summary lists it in [`Summary::failed`]. With a single input its error is returned.
pub fn run(
    sink: &mut dyn Sink,
    config: &IngestConfig,
    notify: &mut dyn FnMut(String),
) -> anyhow::Result<Summary> {
    run_holding(sink, config, notify, &mut Held::default())
}

/// [`run`] for a follower: `held` holds the files the previous pass read, kept open, and is
/// replaced by those this pass read.
pub fn run_holding(
    sink: &mut dyn Sink,
    config: &IngestConfig,
    notify: &mut dyn FnMut(String),
    held: &mut Held,
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    sink.refresh()?;
    check_scrub(sink, &config.reading.scrub)?;
    let rejects = match &config.rejects {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open rejects file {}", path.display()))?;
            Some((path.clone(), io::BufWriter::new(file)))
        }
        None => None,
    };
    let mut pass = Pass {
        sink,
        config,
        notify,
        rejects,
        summary: Summary::default(),
        held: std::mem::take(held),
        used: Held::default(),
    };
    pass.sink.set_log_format(&config.reading.format.name());
    let mut errors = Vec::new();
    for input in &config.inputs {
        let result = match input {
            Input::Stdin => pass.stdin(),
            Input::File(path) => pass.file(path),
        };
        let name = match input {
            Input::Stdin => "-".to_owned(),
            Input::File(path) => path.display().to_string(),
        };
        match result {
            Ok(()) => pass.summary.committed.push(name),
            Err(e) => {
                // Whatever this input had pending is dropped: the next run retries it from
                // its last commit, and the other inputs go on.
                pass.sink.abort();
                pass.summary.failed.push((name, format!("{e:#}")));
                errors.push(e);
            }
        }
    }
    // A follower keeps what this pass read, and what the last one held when this one could
    // not get to it (a log missing for a while).
    let mut keep = std::mem::take(&mut pass.used);
    keep.headers = std::mem::take(&mut pass.held.headers);
    if !errors.is_empty() {
        for (name, file) in &pass.held.files {
            keep.add(name, file);
        }
    }
    *held = keep;
    if config.inputs.len() == 1
        && let Some(e) = errors.pop()
    {
        return Err(e);
    }
    pass.summary.elapsed = started.elapsed();
    Ok(pass.summary)
}

/// Refuses a run whose privacy choices differ from those the store's rows were stored with
/// (raw addresses beside anonymized ones would count one client as two, and a visitor count
/// over both would be wrong), and records this run's in a store that holds no rows yet. A
/// store of an earlier version, which recorded nothing, holds raw rows.
fn check_scrub(sink: &mut dyn Sink, scrub: &crate::privacy::Scrub) -> anyhow::Result<()> {
    let wanted = scrub.describe();
    let recorded = sink.scrubbed()?;
    if recorded.as_deref() == Some(&wanted) {
        return Ok(());
    }
    let before = recorded.unwrap_or_default();
    if before != wanted && sink.holds_rows()? {
        let said = |choices: &str| match choices {
            "" => "no privacy option (full addresses and query strings)".to_owned(),
            some => format!("`{some}`"),
        };
        bail!(
            "{} holds rows stored with {}, and this run asks for {}: mixed, they would count \
             wrong; give the same options, or write to another output",
            sink.describe(),
            said(&before),
            said(&wanted)
        );
    }
    sink.set_scrubbed(&wanted)
}

/// The key a source's checkpoint is saved under: its absolute path, with symbolic links
/// resolved (a link to a log is the same source as the log), so that runs from different
/// working directories, and through different links, share it.
pub fn source_key(path: &Path) -> String {
    let absolute = if path.is_absolute() {
        path.to_owned()
    } else {
        match std::env::current_dir() {
            Ok(dir) => dir.join(path),
            Err(_) => path.to_owned(),
        }
    };
    // The longest part of the path that exists is resolved; the rest (a log, or its directory,
    // not created yet) is kept as written, so the key is the same before and after it exists.
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            let key = rest.iter().rev().fold(real, |key, part| key.join(part));
            return key.display().to_string();
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return absolute.display().to_string(),
        }
    }
}

/// What the caller should do with a last line that has no `\n` yet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PartialRule {
    Take,
    Leave,
}

fn is_gz(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

/// The first `n` lines of a log (decompressed when it ends in `.gz`), the last one even
/// without its newline: what `--log-format auto` looks at.
pub fn first_lines(path: &Path, n: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    use std::io::BufRead;
    let file = File::open(path).with_context(|| format!("cannot open log {}", path.display()))?;
    let read: Box<dyn Read> = match is_gz(path) {
        true => Box::new(crate::rotation::decoder(file)?),
        false => Box::new(file),
    };
    let mut lines = Vec::new();
    // At most 1 MiB of it: a first line without a line end could be the whole file.
    let mut reader = io::BufReader::new(read.take(1 << 20));
    while lines.len() < n {
        let mut line = Vec::new();
        let read = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read log {}", path.display()))?;
        if read == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        lines.push(line);
    }
    Ok(lines)
}

/// Opens a log named as an input. `Ok(Err(_))`: nothing is at the path, which may be a log
/// rotated away (only its checkpoint can tell); an error: something is there that cannot be
/// read (a directory, a file without permission).
fn open_log(path: &Path) -> anyhow::Result<Result<File, io::Error>> {
    match File::open(path) {
        Ok(file) => {
            let meta = file
                .metadata()
                .with_context(|| format!("cannot read {}", path.display()))?;
            if meta.is_dir() {
                anyhow::bail!("cannot read log {}: it is a directory", path.display());
            }
            Ok(Ok(file))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Err(e)),
        Err(e) => Err(e).with_context(|| format!("cannot open log {}", path.display())),
    }
}

/// Fails when no input can give a line, before the caller takes the store's lock or opens the
/// store: a run that can only fail then creates nothing (no empty database, no lock file, no
/// CSV with only a header). `store_exists`: a missing log may then be one rotated away, whose
/// rotated file the pass still reads (from the checkpoint in the store), so it counts as one
/// that can give lines.
///
/// When some input can, the pass runs as usual, and reports the others in
/// [`Summary::failed`].
pub fn check_inputs(inputs: &[Input], store_exists: bool) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    for input in inputs {
        let Input::File(path) = input else {
            return Ok(());
        };
        match open_log(path) {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(_)) if store_exists && !is_gz(path) => return Ok(()),
            Ok(Err(e)) => errors
                .push(anyhow::Error::new(e).context(format!("cannot open log {}", path.display()))),
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        n => {
            let each: Vec<String> = errors.iter().map(|e| format!("{e:#}")).collect();
            anyhow::bail!("none of the {n} inputs can be read: {}", each.join("; "))
        }
    }
}

/// The compression whose magic bytes `head` starts with, if any.
fn compression(head: &[u8]) -> Option<&'static str> {
    const MAGIC: [(&[u8], &str); 6] = [
        (b"\x1f\x8b", "gzip"),
        (b"BZh", "bzip2"),
        (b"\xfd7zXZ\x00", "xz"),
        (b"\x28\xb5\x2f\xfd", "zstd"),
        (b"PK\x03\x04", "zip"),
        (b"\x04\x22\x4d\x18", "lz4"),
    ];
    MAGIC
        .iter()
        .find(|(magic, _)| head.starts_with(magic))
        .map(|&(_, name)| name)
}

impl Pass<'_> {
    fn stdin(&mut self) -> anyhow::Result<()> {
        if self.sink.holds_rows()? {
            (self.notify)(format!(
                "standard input is not checkpointed: lines read from it again are stored again in {}",
                self.sink.describe()
            ));
        }
        let stdin = io::stdin();
        let before = self.counts();
        self.drain(
            (stdin, 0, None),
            Origin {
                source: "-",
                file: None,
            },
            0,
            PartialRule::Take,
            None,
            &mut |_, _| Ok(None),
        )
        .context("cannot read standard input")?;
        self.warn_if_no_entry(Path::new("standard input"), before, None);
        Ok(())
    }

    /// Refuses to go on reading `path` in another format than its saved checkpoint was read
    /// with: its rows would be of two formats, and a line already read as one could be read
    /// again as the other.
    fn check_format(&mut self, key: &str, path: &Path) -> anyhow::Result<()> {
        let asked = self.config.reading.format.name();
        match self.sink.log_format(key)? {
            Some(saved) if saved != asked => bail!(
                "{} was read into {} as `{saved}`, and this run asks for `{asked}`: give the same --log-format, or write to another output",
                path.display(),
                self.sink.describe()
            ),
            _ => Ok(()),
        }
    }

    fn file(&mut self, path: &Path) -> anyhow::Result<()> {
        let key = source_key(path);
        let (opened, mut missing) = match open_log(path)? {
            Ok(file) => (Some(file), None),
            Err(e) => (None, Some(e)),
        };
        let not_found = || {
            anyhow::Error::new(
                missing
                    .take()
                    .unwrap_or_else(|| io::ErrorKind::NotFound.into()),
            )
            .context(format!("cannot open log {}", path.display()))
        };
        let all = if self.config.from_start {
            Vec::new()
        } else {
            self.check_format(&key, path)?;
            self.sink.checkpoints()?
        };
        if is_gz(path) {
            let file = opened.ok_or_else(not_found)?;
            let before = self.counts();
            let from_start = self.gz_input(file, path, &key, &all)?;
            if from_start {
                self.warn_if_no_entry(path, before, None);
            }
            return Ok(());
        }
        let records = Records::of(&key, &all);
        if records.current.is_none()
            && records.rotated.is_empty()
            && let Some(file) = &opened
            && self.adopt(file, path, &key, &all)?
        {
            return Ok(());
        }
        let mut rotated = records.rotated.clone();
        self.refresh_unread(path, &mut rotated);
        let mut start = None;
        // The new checkpoint of the current record, when the file at the path changed.
        let mut reset = None;
        if records.current == Some(MISSING) {
            // The log was missing at the last pass: the file now at the path is new, and
            // others may have come and been rotated since (nocreate, then a reopen and a
            // rotation before this pass).
            if let Some(file) = &opened {
                let siblings = rotation::siblings(path, self.config.rotated.as_deref());
                self.unknown_newer(
                    path,
                    &key,
                    &siblings,
                    identity(file),
                    &records,
                    &mut rotated,
                );
                reset = Some(checkpoint::take(file, 0, 0)?);
            }
            start = Some((0, 0));
        } else if let Some(cp) = records.current {
            let verdict = match &opened {
                Some(file) => checkpoint::verify(file, &cp, false)
                    .with_context(|| format!("cannot read {}", path.display()))?,
                None => Err(Mismatch::OtherFile),
            };
            match verdict {
                Ok(()) => {
                    start = Some((cp.offset, cp.line));
                    if let (0, Some(file)) = (cp.fingerprint_len, &opened) {
                        // An empty file when last read: lines may have come and been copied
                        // away since (copytruncate).
                        let siblings = rotation::siblings(path, self.config.rotated.as_deref());
                        let skip = identity(file);
                        self.unknown_newer(path, &key, &siblings, skip, &records, &mut rotated);
                    }
                }
                Err(why) => {
                    let old = (&key[..], &cp, why);
                    self.rotated_away(path, old, opened.as_ref(), &records, &mut rotated);
                    reset = Some(match &opened {
                        Some(file) => checkpoint::take(file, 0, 0)?,
                        None => MISSING,
                    });
                }
            }
        }
        // Two records from which nothing was read that now name one file, head and all, would
        // each read it from its start: an empty file's record is known by its inode alone, so
        // once that inode is reused, `refresh_unread` gives it the head of the newer file,
        // which another record (the current one's, say, rotated away) may name too. The first
        // reads it; the others are forgotten.
        let (rotated, dropped) = one_record_per_unread_file(rotated);
        // The rotation is recorded before anything is read: a crash from here on resumes each
        // file where this pass found it.
        let saved = |key: &str| {
            records
                .rotated
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, cp)| cp)
        };
        let mut updates: Vec<Update<'_>> = rotated
            .iter()
            .filter(|(k, cp)| saved(k) != Some(cp))
            .map(|(k, cp)| Update::Set(k, *cp))
            .collect();
        updates.extend(
            (dropped.iter())
                .filter(|k| saved(k).is_some())
                .map(|k| Update::Remove(k)),
        );
        if let Some(cp) = reset {
            updates.push(Update::Set(&key, cp));
        }
        if !updates.is_empty() {
            self.commit(&updates)?;
        }
        for (rotated_key, cp) in &rotated {
            self.drain_rotated(path, rotated_key, cp)?;
        }
        let file = opened.ok_or_else(not_found)?;
        self.used.add(path, &file);
        let rule = if self.config.take_partial || settled(&file, self.config.settle) {
            PartialRule::Take
        } else {
            PartialRule::Leave
        };
        let saved = records.current.filter(|_| start.is_some());
        let start = start.unwrap_or((0, 0));
        let before = self.counts();
        self.plain(&file, path, &key, start, rule, saved)?;
        if start == (0, 0) {
            self.warn_if_no_entry(path, before, Some(&file));
        }
        Ok(())
    }

    /// Lines read and entries written so far: taken before an input is read, to tell what it
    /// gave ([`Pass::warn_if_no_entry`]).
    fn counts(&self) -> (u64, u64) {
        (self.summary.read, self.summary.written)
    }

    /// After an input was read from its first line: if it had lines and none was an entry, it
    /// is most likely not an access log at all (a binary, a compressed file, another log), which
    /// a run that ends well would otherwise not say. `file` is the plain file, whose first
    /// bytes may say how it is compressed.
    fn warn_if_no_entry(&mut self, path: &Path, (read, written): (u64, u64), file: Option<&File>) {
        let lines = self.summary.read - read;
        if lines == 0 || self.summary.written > written {
            return;
        }
        let mut head = [0u8; 6];
        let head = match file.map(|f| f.read_at(&mut head, 0)) {
            Some(Ok(n)) => &head[..n],
            _ => &[],
        };
        let what = match lines {
            1 => "its one line is not an access log line".to_owned(),
            n => format!(
                "none of its {} is an access log line",
                crate::human::counted(n, "line")
            ),
        };
        let hint = match compression(head) {
            Some("gzip") => {
                "it looks compressed (gzip): name it .gz to have it read decompressed, \
                 or decompress it first"
                    .to_owned()
            }
            Some(kind) => format!(
                "it looks compressed ({kind}): decompress it first (only .gz files are read compressed)"
            ),
            None => "is it an access log (Common or Combined Log Format)?".to_owned(),
        };
        (self.notify)(format!("{}: {what}: {hint}", path.display()));
    }

    /// The file at `path` is no longer what `cp` was taken on (`why`): the old file was
    /// renamed (or deleted, or its inode reused by the new one), or copied and truncated in
    /// place (copytruncate). Whatever holds the old content (the renamed file, its `.gz`, the
    /// copy) becomes a rotated record, read on from `cp`; so does every sibling rotated after
    /// it that no record knows (several rotations since the last run), oldest first. The
    /// records are appended to `rotated`.
    fn rotated_away(
        &mut self,
        path: &Path,
        (key, cp, why): (&str, &Checkpoint, Mismatch),
        current: Option<&File>,
        records: &Records,
        rotated: &mut Vec<(String, Checkpoint)>,
    ) {
        let siblings = rotation::siblings(path, self.config.rotated.as_deref());
        let skip = current.and_then(identity);
        let found = rotation::locate(cp, &self.held.pairs(), &siblings, skip);
        let why = if current.is_none() {
            "it is missing (rotated or deleted)".to_owned()
        } else {
            why.to_string()
        };
        let empty_before = cp.fingerprint_len == 0;
        let position = match &found {
            Located::Found(name, opened) => {
                (self.notify)(format!(
                    "{}: {why}; reading the rest of {} first",
                    path.display(),
                    name.display()
                ));
                // Nothing was read from it: its head as it is now recognises it better than
                // the (maybe empty) head it had, under any name it takes later.
                let cp = match cp.offset {
                    0 => rotation::start_of(opened).unwrap_or(*cp),
                    _ => *cp,
                };
                let cp = &cp;
                let seq = rotation::next_seq(key, rotated);
                rotated.push((rotation::rotated_key(key, seq, cp), *cp));
                // Where it stands among the siblings; unknown if it was empty when last read
                // (lines may have come and been copied away before it was rotated).
                siblings
                    .iter()
                    .position(|s| &s.path == name || rotation::holds(s, cp))
                    .filter(|_| !empty_before)
            }
            _ if cp.offset == 0 => {
                (self.notify)(format!(
                    "{}: {why}; nothing had been read from the old file",
                    path.display()
                ));
                None
            }
            _ => {
                (self.notify)(format!(
                    "{}: {why}; the old content was not found among its rotated siblings (see --rotated), so lines written to it after the last run are lost; reading it from the start",
                    path.display()
                ));
                None
            }
        };
        match position {
            Some(at) => self.newer_siblings(path, key, &siblings[at + 1..], skip, records, rotated),
            // Where the old file stood is not known: what no record knows, newer than what
            // one does, is new.
            _ => self.unknown_newer(path, key, &siblings, skip, records, rotated),
        }
    }

    /// Makes rotated records of the siblings newer than the newest one a record knows. For
    /// when the file last read cannot say where it stands: it was empty when its checkpoint was
    /// taken (lines may have come and been copied or rotated away since), or it is gone.
    fn unknown_newer(
        &mut self,
        path: &Path,
        key: &str,
        siblings: &[rotation::Sibling],
        skip: Option<Identity>,
        records: &Records,
        rotated: &mut Vec<(String, Checkpoint)>,
    ) {
        // The records this pass began with (their files stand somewhere among the siblings),
        // not the one just made of a file whose place is unknown; and only those that had
        // taken something when this pass began, since an empty file's record is known by its
        // inode alone, which a newer file may have reused: [`Pass::refresh_unread`] may have
        // just given such a record the head of that newer file, which says nothing of where
        // the empty file stood.
        let known = records
            .rotated
            .iter()
            .zip(&rotated[..records.rotated.len()])
            .filter(|((_, began), _)| began.fingerprint_len > 0)
            .map(|(_, now)| now);
        let done = records.done.iter().filter(|(_, cp)| cp.fingerprint_len > 0);
        let known: Vec<_> = known.chain(done).collect();
        let Some(newest_known) = siblings
            .iter()
            .rposition(|s| known.iter().any(|(_, cp)| rotation::holds(s, cp)))
        else {
            return;
        };
        let newer = &siblings[newest_known + 1..];
        self.newer_siblings(path, key, newer, skip, records, rotated);
    }

    /// A rotated record from which nothing was read yet was taken on its file as it was then,
    /// maybe empty: a head that recognises nothing. Its file's head as it is now recognises it
    /// under any name it takes later (compressed, say), so that it is never taken for new.
    fn refresh_unread(&mut self, path: &Path, rotated: &mut [(String, Checkpoint)]) {
        let mut siblings = None;
        for (_, cp) in rotated.iter_mut().filter(|(_, cp)| cp.offset == 0) {
            let found = match rotation::locate(cp, &self.held.pairs(), &[], None) {
                found @ Located::Found(..) => found,
                _ => {
                    let siblings = siblings.get_or_insert_with(|| {
                        rotation::siblings(path, self.config.rotated.as_deref())
                    });
                    rotation::locate(cp, &[], siblings, None)
                }
            };
            if let Located::Found(_, opened) = found
                && let Ok(now) = rotation::start_of(&opened)
            {
                *cp = now;
            }
        }
    }

    /// Makes a rotated record, read from its start, of each of `newer` that no record knows
    /// (oldest first).
    /// `skip` is the current file.
    fn newer_siblings(
        &mut self,
        path: &Path,
        key: &str,
        newer: &[rotation::Sibling],
        skip: Option<Identity>,
        records: &Records,
        rotated: &mut Vec<(String, Checkpoint)>,
    ) {
        for sibling in newer {
            // A record's file, under its name or another (compressed since, or copied), is
            // not new.
            let taken = rotated
                .iter()
                .chain(&records.done)
                .any(|(_, cp)| rotation::holds(sibling, cp));
            if Some((sibling.dev, sibling.inode)) == skip || taken {
                continue;
            }
            let Ok(file) = File::open(&sibling.path) else {
                continue;
            };
            let opened = if sibling.compressed {
                Opened::Compressed(file)
            } else {
                Opened::Plain(file)
            };
            let Ok(start) = rotation::start_of(&opened) else {
                continue;
            };
            (self.notify)(format!(
                "{}: {} was rotated since the last run too: reading it whole",
                path.display(),
                sibling.path.display()
            ));
            let seq = rotation::next_seq(key, rotated);
            rotated.push((rotation::rotated_key(key, seq, &start), start));
        }
    }

    /// Reads on a rotated record, from wherever its file is now. Once the file has been quiet
    /// for the rotate wait (the server has reopened its log) and is read to its end, the
    /// record becomes a done one.
    fn drain_rotated(&mut self, path: &Path, record: &str, cp: &Checkpoint) -> anyhow::Result<()> {
        // The files a follower holds open first: a pass then does not list the directory.
        let found = match rotation::locate(cp, &self.held.pairs(), &[], None) {
            found @ Located::Found(..) => found,
            _ => {
                let siblings = rotation::siblings(path, self.config.rotated.as_deref());
                rotation::locate(cp, &[], &siblings, None)
            }
        };
        match found {
            Located::Found(name, opened) => self.finish(&name, opened, record, cp, false),
            Located::Unsure => Ok(()),
            Located::Gone => {
                (self.notify)(format!(
                    "{}: the file it was rotated to (read up to byte {}) is gone: lines written to it after that are lost",
                    path.display(),
                    cp.offset
                ));
                self.commit(&[Update::Remove(record)])
            }
        }
    }

    /// Reads `opened` on from `cp` under the record `record`, and turns the record into a
    /// done one when the file is complete: a `.gz`, a copy (`complete`), or a file quiet for
    /// the rotate wait and read to its end.
    fn finish(
        &mut self,
        name: &Path,
        opened: Opened,
        record: &str,
        cp: &Checkpoint,
        complete: bool,
    ) -> anyhow::Result<()> {
        let (last, whole) = match opened {
            Opened::Plain(file) => {
                // Known to be complete (a copy, or --final), or quiet for the rotate wait.
                let finished = complete || self.config.take_partial;
                let quiet_since = quiet(&file, self.config.rotate_wait);
                let rule = if finished || quiet_since.is_some() {
                    PartialRule::Take
                } else {
                    PartialRule::Leave
                };
                self.used.add(name, &file);
                let last =
                    self.plain(&file, name, record, (cp.offset, cp.line), rule, Some(*cp))?;
                // Whole if read to its end, and nothing was written since it was found quiet.
                let whole = file.metadata().is_ok_and(|m| {
                    Some(m.len()) == last.map(|c| c.offset)
                        && (finished || (quiet_since.is_some() && m.modified().ok() == quiet_since))
                });
                (last, whole)
            }
            Opened::Compressed(gz) => {
                let head = rotation::gz_fingerprint(&gz)
                    .with_context(|| format!("cannot read log {}", name.display()))?;
                let last = self.gz_from(gz, name, record, (cp.offset, cp.line), head)?;
                (last, true)
            }
        };
        if let (true, Some(last)) = (whole, last) {
            let done = rotation::done_key(rotation::log_of(record).unwrap_or(record), cp);
            if last.offset == 0 {
                // It held no line: nothing to remember, and an empty file's identity would
                // only mislead once its inode is reused by a new file.
                self.commit(&[Update::Remove(record)])?;
            } else if done != record {
                self.commit(&[Update::Remove(record), Update::Set(&done, last)])?;
            }
        }
        Ok(())
    }

    /// A file that has no record of its own may hold lines already taken under another log's
    /// record (a rotated file given as an input after its log was read): then it is read on
    /// from there, under that record. Returns whether it was.
    fn adopt(
        &mut self,
        file: &File,
        path: &Path,
        key: &str,
        all: &[(String, Checkpoint)],
    ) -> anyhow::Result<bool> {
        let Some(id) = identity(file) else {
            return Ok(false);
        };
        for (record, cp) in all {
            // A record of a file that was empty is known by its inode alone, which this file
            // may have reused: it says nothing of this file.
            if record == key
                || rotation::log_of(record).is_none()
                || (cp.dev, cp.inode) != id
                || cp.fingerprint_len == 0
            {
                continue;
            }
            if matches!(checkpoint::verify_content(file, cp, false), Ok(Ok(()))) {
                // Read on under that record: in the format it was read with.
                self.check_format(record, path)?;
                (self.notify)(format!(
                    "{}: its first {} bytes were already taken (as {record}): reading on from there",
                    path.display(),
                    cp.offset
                ));
                let opened = Opened::Plain(file.try_clone()?);
                self.finish(path, opened, record, cp, false)?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A `.gz` named as an input: under its own checkpoint if it has one; else, if it holds
    /// lines a rotated or done record already took (the log's rotated file, compressed), read
    /// on from there under that record; else from its start. Returns whether it was read from
    /// its first line.
    fn gz_input(
        &mut self,
        file: File,
        path: &Path,
        key: &str,
        all: &[(String, Checkpoint)],
    ) -> anyhow::Result<bool> {
        let own = all.iter().find(|(k, _)| k == key).map(|(_, cp)| *cp);
        let mut start = (0, 0);
        match own {
            Some(cp) => match checkpoint::verify(&file, &cp, true)
                .with_context(|| format!("cannot read {}", path.display()))?
            {
                Ok(()) => start = (cp.offset, cp.line),
                Err(why) => {
                    (self.notify)(format!(
                        "{}: {why}; reading it from the start",
                        path.display()
                    ));
                    self.commit(&[Update::Set(key, checkpoint::take_compressed(&file, 0, 0)?)])?;
                }
            },
            None => {
                let id = identity(&file);
                for (record, cp) in all {
                    if rotation::log_of(record).is_none() {
                        continue;
                    }
                    let same_file = id == Some((cp.dev, cp.inode));
                    if rotation::gz_holds(&file, cp, same_file).unwrap_or(false) {
                        self.check_format(record, path)?;
                        (self.notify)(format!(
                            "{}: its first {} bytes were already taken (as {record}): reading on from there",
                            path.display(),
                            cp.offset
                        ));
                        self.finish(path, Opened::Compressed(file), record, cp, true)?;
                        return Ok(false);
                    }
                }
            }
        }
        self.compressed(file, path, key, start)?;
        Ok(start == (0, 0))
    }
    /// Reads a plain file from `(offset, line)` under the record `key`. Returns the last
    /// checkpoint committed (or found unchanged).
    fn plain(
        &mut self,
        file: &File,
        path: &Path,
        key: &str,
        (mut offset, line): (u64, u64),
        rule: PartialRule,
        saved: Option<Checkpoint>,
    ) -> anyhow::Result<Option<Checkpoint>> {
        let context = || format!("cannot read log {}", path.display());
        // A last line taken without its `\n` by an earlier run (settled or --final) may have
        // been finished since: its `\n` is then the next byte, and is not an empty line.
        if offset > 0 {
            let mut two = [0u8; 2];
            if file.read_exact_at(&mut two, offset - 1).is_ok()
                && two[0] != b'\n'
                && two[1] == b'\n'
            {
                offset += 1;
            }
        }
        let mut handle = file;
        handle
            .seek(io::SeekFrom::Start(offset))
            .with_context(context)?;
        let header = self.header_before(file, offset).with_context(context)?;
        let total = file.metadata().map(|m| m.len()).unwrap_or(0);
        let progress = self.progress_bar(total.saturating_sub(offset), path);
        let start = offset;
        let origin = Origin {
            source: key,
            file: identity(file),
        };
        let result = self.drain(
            (handle, offset, header),
            origin,
            line,
            rule,
            saved,
            &mut |offset, line| {
                if let Some(bar) = &progress {
                    bar.set_position(offset.saturating_sub(start));
                }
                checkpoint::take(file, offset, line).map(Some)
            },
        );
        if let Some(bar) = progress {
            bar.finish_and_clear();
        }
        result
    }

    /// The header line in force at `offset` in `file` (see `LogFormat::header`): looked for
    /// back to where the last pass of a follower began, and remembered for the next.
    fn header_before(
        &mut self,
        file: &File,
        offset: u64,
    ) -> io::Result<Option<std::sync::Arc<[u8]>>> {
        let format = &self.config.reading.format;
        if !format.has_headers() {
            return Ok(None);
        }
        let id = identity(file);
        let known = (self.held.headers.iter())
            .find(|at| Some(at.id) == id && at.offset <= offset)
            .map(|at| (at.offset, at.header.clone()));
        let (from, before) = known.unwrap_or((0, None));
        let header = format.header_before(file, from, offset)?.or(before);
        if let Some(id) = id {
            self.held.headers.retain(|at| at.id != id);
            self.held.headers.push(HeaderAt {
                id,
                offset,
                header: header.clone(),
            });
        }
        Ok(header)
    }

    /// Reads a `.gz` input under its own key, from `(offset, line)` in decompressed bytes.
    fn compressed(
        &mut self,
        file: File,
        path: &Path,
        key: &str,
        (offset, line): (u64, u64),
    ) -> anyhow::Result<()> {
        let identity = file
            .try_clone()
            .with_context(|| format!("cannot read log {}", path.display()))?;
        self.decompress(file, path, key, (offset, line), &mut |offset, line| {
            checkpoint::take_compressed(&identity, offset, line).map(Some)
        })?;
        Ok(())
    }

    /// Reads a `.gz` under a rotated or done record, with checkpoints on its decompressed
    /// content (see [`rotation::take_gz`]).
    fn gz_from(
        &mut self,
        file: File,
        path: &Path,
        record: &str,
        start: (u64, u64),
        head: (u64, u64),
    ) -> anyhow::Result<Option<Checkpoint>> {
        let identity = file
            .try_clone()
            .with_context(|| format!("cannot read log {}", path.display()))?;
        self.decompress(file, path, record, start, &mut |offset, line| {
            rotation::take_gz(&identity, head, offset, line).map(Some)
        })
    }

    fn decompress(
        &mut self,
        file: File,
        path: &Path,
        key: &str,
        (offset, line): (u64, u64),
        checkpoint: &mut dyn FnMut(u64, u64) -> io::Result<Option<Checkpoint>>,
    ) -> anyhow::Result<Option<Checkpoint>> {
        let context = || format!("cannot read log {}", path.display());
        let origin = Origin {
            source: key,
            file: identity(&file),
        };
        let mut decoder = rotation::decoder(file).with_context(context)?;
        // The head before `offset` is read anyway; the last header line in it is kept.
        let mut headers = Headers {
            format: &self.config.reading.format,
            carry: Vec::new(),
            last: None,
        };
        let skipped =
            io::copy(&mut (&mut decoder).take(offset), &mut headers).with_context(context)?;
        if skipped < offset {
            anyhow::bail!(
                "{}: shorter than its checkpoint; it was replaced (use --from-start)",
                path.display()
            );
        }
        // A compressed file is complete: its last line is taken even without a newline.
        self.drain(
            (decoder, offset, headers.last),
            origin,
            line,
            PartialRule::Take,
            None,
            checkpoint,
        )
    }

    fn progress_bar(&self, bytes: u64, path: &Path) -> Option<indicatif::ProgressBar> {
        use std::io::IsTerminal;
        if !self.config.progress || bytes < (64 << 20) || !io::stderr().is_terminal() {
            return None;
        }
        let bar = indicatif::ProgressBar::new(bytes);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{wide_bar}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        // The bar takes the width the rest leaves; a long path would leave it none and wrap.
        bar.set_message(crate::human::path_tail(&path.display().to_string(), 24));
        Some(bar)
    }

    /// Reads lines until the end of input, committing every `batch_lines` lines (rounded up
    /// to a whole batch) and at the end. `checkpoint(offset, line)` builds the checkpoint for a
    /// position. Reading and parsing run on other threads (see [`crate::batch`]). The last
    /// commit is skipped when nothing moved since `saved`: an idle follower writes nothing.
    /// Returns the last checkpoint.
    fn drain<R: Read + Send>(
        &mut self,
        (input, offset, header): (R, u64, Option<std::sync::Arc<[u8]>>),
        origin: Origin<'_>,
        line: u64,
        rule: PartialRule,
        saved: Option<Checkpoint>,
        checkpoint: &mut dyn FnMut(u64, u64) -> io::Result<Option<Checkpoint>>,
    ) -> anyhow::Result<Option<Checkpoint>> {
        std::thread::scope(|scope| {
            let prepare = self.sink.prepare();
            let (tx, rx) = std::sync::mpsc::sync_channel(prepare.waiting(self.config.batch_lines));
            let reader = LineReader::new(prefetch(scope, input), offset, self.config.max_line);
            let reading = &self.config.reading;
            scope.spawn(move || {
                batch::produce(
                    (reader, line, header),
                    (rule == PartialRule::Take, prepare, reading),
                    &tx,
                )
            });
            let mut since_commit = 0u64;
            let mut position = None;
            let mut moved = false;
            // Errors of the input are the log's; the sink's own (a locked database, a full
            // disk) already name the store.
            let key = origin.source;
            let cannot_read = || format!("cannot read log {key}");
            for batch in rx.iter() {
                let mut batch = batch.with_context(cannot_read)?;
                self.sink.write_batch(origin, &mut batch)?;
                self.summary.written += batch.len() as u64;
                for (at, reason, raw) in &batch.rejects {
                    self.reject(origin, *at, *reason, raw)?;
                }
                self.summary.read += batch.lines;
                self.summary.pending_bytes += batch.pending_bytes;
                self.summary.nul_padded += batch.padded_lines;
                since_commit += batch.lines;
                moved |= batch.lines > 0;
                position = Some((batch.end_offset, batch.end_line));
                if since_commit >= self.config.batch_lines {
                    let cp =
                        checkpoint(batch.end_offset, batch.end_line).with_context(cannot_read)?;
                    self.commit_at(key, cp.as_ref())?;
                    since_commit = 0;
                    if self.stopping() {
                        // Dropping the receiver ends the reading thread at its next batch.
                        return Ok(cp);
                    }
                }
            }
            let (offset, line) = position.expect("the reading thread always sends a last batch");
            // Also when no line was new: a first run on an empty file records its identity,
            // and the fingerprint grows with the file. Not when nothing changed at all.
            let cp = checkpoint(offset, line).with_context(cannot_read)?;
            if moved || cp.is_none() || cp != saved {
                self.commit_at(key, cp.as_ref())?;
            }
            Ok(cp)
        })
    }

    fn stopping(&self) -> bool {
        self.config
            .stop
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn reject(
        &mut self,
        origin: Origin<'_>,
        at: Position,
        reason: Reject,
        raw: &[u8],
    ) -> anyhow::Result<()> {
        *self.summary.rejected.entry(reason.slug()).or_insert(0) += 1;
        self.sink.reject(&Rejected {
            origin,
            at,
            reason,
            raw,
        })?;
        let (key, line) = (origin.source, at.line);
        if let Some((path, out)) = &mut self.rejects {
            let write = (|| -> io::Result<()> {
                write!(out, "{key}:{line}: {}: ", reason.slug())?;
                out.write_all(raw)?;
                out.write_all(b"\n")
            })();
            write.with_context(|| format!("cannot write rejects file {}", path.display()))?;
        }
        Ok(())
    }

    fn commit_at(&mut self, key: &str, cp: Option<&Checkpoint>) -> anyhow::Result<()> {
        match cp {
            Some(cp) => self.commit(&[Update::Set(key, *cp)]),
            None => self.commit(&[]),
        }
    }

    fn commit(&mut self, updates: &[Update<'_>]) -> anyhow::Result<()> {
        // Rejects go to their file before the rows are committed: a crash in between repeats
        // a rejected line in that file rather than losing it.
        if let Some((path, out)) = &mut self.rejects {
            out.flush()
                .with_context(|| format!("cannot write rejects file {}", path.display()))?;
        }
        self.sink.commit(updates)
    }
}

/// Bytes skipped unread at the head of a compressed file: the last header line among them
/// is kept when the format has any (see [`crate::format::LogFormat::header`]).
struct Headers<'a> {
    format: &'a crate::format::LogFormat,
    carry: Vec<u8>,
    last: Option<std::sync::Arc<[u8]>>,
}

impl Write for Headers<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if let Some(found) = self.format.last_header_in(bytes, &mut self.carry) {
            self.last = Some(found);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Has the file been left alone for `wait`? Then its modification time (to tell a later
/// write), else `None`.
fn quiet(file: &File, wait: Duration) -> Option<SystemTime> {
    let modified = file.metadata().and_then(|m| m.modified()).ok()?;
    let age = SystemTime::now()
        .duration_since(modified)
        .unwrap_or_default();
    (age >= wait).then_some(modified)
}

/// Has the file been left alone for `settle`? Then its unterminated last line is complete.
fn settled(file: &File, settle: Duration) -> bool {
    file.metadata()
        .and_then(|m| m.modified())
        .map(|modified| {
            SystemTime::now()
                .duration_since(modified)
                .unwrap_or_default()
                >= settle
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_has_one_key_before_and_after_it_exists_and_through_links() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("logs/access.log");
        let before = source_key(&log);
        std::fs::create_dir(dir.path().join("logs")).unwrap();
        assert_eq!(source_key(&log), before, "directory made");
        std::fs::write(&log, "x\n").unwrap();
        assert_eq!(source_key(&log), before, "log made");
        let link = dir.path().join("link.log");
        std::os::unix::fs::symlink(&log, &link).unwrap();
        assert_eq!(source_key(&link), before, "a link is the log");
        assert!(Path::new(&before).is_absolute());
    }
}
