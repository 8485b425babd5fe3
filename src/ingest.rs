//! One pass over log sources into a sink: the engine of `parse-to-csv` and `parse-to-db`.
//!
//! Each source file resumes from the checkpoint its sink saved, after checking that the file is
//! still the one the checkpoint was taken on (see [`crate::checkpoint`]). When the file at the
//! path was rotated away since, the rotated file is drained from the saved offset first, so the
//! lines written to it after the last run are not lost. Rows are committed in batches together
//! with the checkpoint that covers them.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;

use crate::batch;
use crate::checkpoint::{self, Checkpoint, Mismatch};
use crate::parse::Reject;
use crate::sink::{Rejected, Sink};
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
    /// Append rejected lines here (`--rejects PATH`).
    pub rejects: Option<PathBuf>,
    /// Lines per commit.
    pub batch_lines: u64,
    /// Show a progress bar (only honoured when stderr is a terminal).
    pub progress: bool,
    /// Set by Ctrl+C/SIGTERM: the pass ends at its next commit.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
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
            rejects: None,
            batch_lines: 200_000,
            progress: true,
            stop: None,
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
}

impl Summary {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    fn rate(&self) -> f64 {
        self.read as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The one-line summary for stderr.
    pub fn line(&self, tool: &str) -> String {
        let mut s = format!(
            "{tool}: read {} lines, wrote {}, rejected {}",
            self.read,
            self.written,
            self.rejected_total()
        );
        if !self.rejected.is_empty() {
            let parts: Vec<_> = self
                .rejected
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            s.push_str(&format!(" ({})", parts.join(", ")));
        }
        if self.nul_padded > 0 {
            s.push_str(&format!(
                ", skipped NUL padding before {} line{}",
                self.nul_padded,
                if self.nul_padded == 1 { "" } else { "s" }
            ));
        }
        if self.pending_bytes > 0 {
            s.push_str(&format!(
                ", left an unfinished last line ({} bytes) for later",
                self.pending_bytes
            ));
        }
        s.push_str(&format!(
            " in {:.2}s ({:.0} lines/s)",
            self.elapsed.as_secs_f64(),
            self.rate()
        ));
        s
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
        })
    }
}

/// The state one pass carries across its sources.
struct Pass<'a> {
    sink: &'a mut dyn Sink,
    config: &'a IngestConfig,
    notify: &'a mut dyn FnMut(String),
    rejects: Option<(PathBuf, io::BufWriter<File>)>,
    summary: Summary,
    /// The last file read (a follower keeps it open across passes, so a file renamed to any
    /// name, or deleted, can still be drained after rotation).
    held: Option<File>,
}

/// Reads every input of `config` into `sink`. `notify` receives what the user should know
/// (a truncated or rotated file, a reset checkpoint); it is printed even with `--quiet`.
pub fn run(
    sink: &mut dyn Sink,
    config: &IngestConfig,
    notify: &mut dyn FnMut(String),
) -> anyhow::Result<Summary> {
    run_holding(sink, config, notify, &mut None)
}

/// [`run`] for a follower: `held` is the file the previous pass read, kept open, and is
/// replaced by the one this pass read.
pub fn run_holding(
    sink: &mut dyn Sink,
    config: &IngestConfig,
    notify: &mut dyn FnMut(String),
    held: &mut Option<File>,
) -> anyhow::Result<Summary> {
    let started = Instant::now();
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
        held: held.take(),
    };
    let result = config.inputs.iter().try_for_each(|input| match input {
        Input::Stdin => pass.stdin(),
        Input::File(path) => pass.file(path),
    });
    // Kept even when the pass failed: a follower waiting for a missing log still holds the old one.
    *held = pass.held.take();
    result?;
    pass.summary.elapsed = started.elapsed();
    Ok(pass.summary)
}

/// The key a source's checkpoint is saved under: its absolute path, so that runs from
/// different working directories share it.
pub fn source_key(path: &Path) -> String {
    let absolute = match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) if !dir.as_os_str().is_empty() => std::fs::canonicalize(dir)
            .map(|d| d.join(name))
            .unwrap_or_else(|_| path.to_owned()),
        _ => std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_owned()),
    };
    absolute.display().to_string()
}

/// What the caller should do with a last line that has no `\n` yet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PartialRule {
    Take,
    Leave,
}

impl Pass<'_> {
    fn stdin(&mut self) -> anyhow::Result<()> {
        let stdin = io::stdin();
        self.drain((stdin, 0), "-", 0, PartialRule::Take, &mut |_, _| Ok(None))
            .context("cannot read standard input")?;
        Ok(())
    }

    fn file(&mut self, path: &Path) -> anyhow::Result<()> {
        let key = source_key(path);
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) => {
                if e.kind() == io::ErrorKind::NotFound && !self.config.from_start {
                    self.drain_held_while_missing(path, &key)?;
                }
                return Err(e).with_context(|| format!("cannot open log {}", path.display()));
            }
        };
        let meta = file
            .metadata()
            .with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_dir() {
            anyhow::bail!("cannot read log {}: it is a directory", path.display());
        }
        let compressed = path.extension().is_some_and(|e| e == "gz");
        let saved = if self.config.from_start {
            None
        } else {
            self.sink.checkpoint(&key)?
        };
        let mut start = (0u64, 0u64);
        if let Some(cp) = saved {
            match checkpoint::verify(&file, &cp, compressed)
                .with_context(|| format!("cannot read {}", path.display()))?
            {
                Ok(()) => start = (cp.offset, cp.line),
                Err(why) => {
                    let drained = !compressed && self.drain_predecessor(path, &key, &cp)?;
                    if !drained {
                        (self.notify)(format!(
                            "{}: {why}; reading it from the start{}",
                            path.display(),
                            if why == Mismatch::OtherFile {
                                " (the old file was not found among its rotated siblings: see --rotated)"
                            } else {
                                ""
                            }
                        ));
                    }
                    self.reset(&file, &key, compressed)?;
                }
            }
        }
        if !compressed {
            self.held = Some(
                file.try_clone()
                    .with_context(|| format!("cannot read {}", path.display()))?,
            );
        }
        if compressed {
            self.compressed(file, path, &key, start)
        } else {
            let rule = if self.config.take_partial || settled(&file, self.config.settle) {
                PartialRule::Take
            } else {
                PartialRule::Leave
            };
            self.plain(&file, path, &key, start, rule)
        }
    }

    /// The log was renamed or deleted and nothing has replaced it yet. A server keeps writing
    /// to its old file until it reopens its log, so a follower keeps reading the file it holds.
    fn drain_held_while_missing(&mut self, path: &Path, key: &str) -> anyhow::Result<()> {
        let Some(cp) = self.sink.checkpoint(key)? else {
            return Ok(());
        };
        let Some(held) = self.held.take() else {
            return Ok(());
        };
        if matches!(checkpoint::verify(&held, &cp, false), Ok(Ok(()))) {
            self.plain(&held, path, key, (cp.offset, cp.line), PartialRule::Leave)?;
            self.held = Some(held);
        }
        Ok(())
    }

    /// The file at `path` is no longer the one `cp` was taken on. Finds the old one (the handle
    /// a follower still holds, `<log>.1`, a `--rotated` match, or a copytruncate copy) and
    /// reads the rest of it from the saved offset, so the lines written to it after the last
    /// read are not lost. Returns whether it found one.
    fn drain_predecessor(
        &mut self,
        path: &Path,
        key: &str,
        cp: &Checkpoint,
    ) -> anyhow::Result<bool> {
        let held = self
            .held
            .take()
            .filter(|f| matches!(checkpoint::verify(f, cp, false), Ok(Ok(()))));
        let (name, old) = match held {
            Some(file) => (
                PathBuf::from(format!("{} (renamed or deleted)", path.display())),
                file,
            ),
            None => match checkpoint::find_rotated(path, self.config.rotated.as_deref(), cp) {
                Some(found) => found,
                None => return Ok(false),
            },
        };
        (self.notify)(format!(
            "{}: rotated or truncated; reading the rest of {} first",
            path.display(),
            name.display()
        ));
        // A rotated file is complete: its last line is taken even without a newline.
        self.plain(&old, &name, key, (cp.offset, cp.line), PartialRule::Take)?;
        Ok(true)
    }

    /// Commits a checkpoint at the start of `file` at once, so a crash right after a detected
    /// truncation or rotation does not make the next run resume from the stale offset.
    fn reset(&mut self, file: &File, key: &str, compressed: bool) -> anyhow::Result<()> {
        let cp = if compressed {
            checkpoint::take_compressed(file, 0, 0)?
        } else {
            checkpoint::take(file, 0, 0)?
        };
        self.sink.commit(Some((key, &cp)))
    }

    fn plain(
        &mut self,
        file: &File,
        path: &Path,
        key: &str,
        (mut offset, line): (u64, u64),
        rule: PartialRule,
    ) -> anyhow::Result<()> {
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
        let total = file.metadata().map(|m| m.len()).unwrap_or(0);
        let progress = self.progress_bar(total.saturating_sub(offset), path);
        let start = offset;
        let result = self.drain((handle, offset), key, line, rule, &mut |offset, line| {
            if let Some(bar) = &progress {
                bar.set_position(offset.saturating_sub(start));
            }
            checkpoint::take(file, offset, line).map(Some)
        });
        if let Some(bar) = progress {
            bar.finish_and_clear();
        }
        result
    }

    fn compressed(
        &mut self,
        file: File,
        path: &Path,
        key: &str,
        (offset, line): (u64, u64),
    ) -> anyhow::Result<()> {
        let context = || format!("cannot read log {}", path.display());
        let identity = file.try_clone().with_context(context)?;
        // Rotated logs may be several gzip members in a row (`cat a.gz b.gz`).
        let mut decoder =
            flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 16, file));
        let skipped =
            io::copy(&mut (&mut decoder).take(offset), &mut io::sink()).with_context(context)?;
        if skipped < offset {
            anyhow::bail!(
                "{}: shorter than its checkpoint; it was replaced (use --from-start)",
                path.display()
            );
        }
        self.drain(
            (decoder, offset),
            key,
            line,
            PartialRule::Take,
            &mut |offset, line| checkpoint::take_compressed(&identity, offset, line).map(Some),
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
                "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(path.display().to_string());
        Some(bar)
    }

    /// Reads lines until the end of input, committing every `batch_lines` lines (rounded up
    /// to a whole batch) and at the end. `checkpoint(offset, line)` builds the checkpoint for a
    /// position. Reading and parsing run on other threads (see [`crate::batch`]).
    fn drain<R: Read + Send>(
        &mut self,
        (input, offset): (R, u64),
        key: &str,
        line: u64,
        rule: PartialRule,
        checkpoint: &mut dyn FnMut(u64, u64) -> io::Result<Option<Checkpoint>>,
    ) -> anyhow::Result<()> {
        std::thread::scope(|scope| {
            let prepare = self.sink.prepare();
            let (tx, rx) = std::sync::mpsc::sync_channel(prepare.queue());
            let reader = LineReader::new(prefetch(scope, input), offset, self.config.max_line);
            scope.spawn(move || {
                batch::produce(reader, line, (rule == PartialRule::Take, prepare), &tx)
            });
            let mut since_commit = 0u64;
            let mut position = None;
            // Errors of the input are the log's; the sink's own (a locked database, a full
            // disk) already name the store.
            let cannot_read = || format!("cannot read log {key}");
            for batch in rx.iter() {
                let batch = batch.with_context(cannot_read)?;
                self.sink.write_batch(&batch)?;
                self.summary.written += batch.len() as u64;
                for (number, reason, raw) in &batch.rejects {
                    self.reject(key, *number, *reason, raw)?;
                }
                self.summary.read += batch.lines;
                self.summary.pending_bytes += batch.pending_bytes;
                self.summary.nul_padded += batch.padded_lines;
                since_commit += batch.lines;
                position = Some((batch.end_offset, batch.end_line));
                if since_commit >= self.config.batch_lines {
                    self.commit(
                        checkpoint(batch.end_offset, batch.end_line)
                            .with_context(cannot_read)?
                            .as_ref()
                            .map(|cp| (key, cp)),
                    )?;
                    since_commit = 0;
                    if self.stopping() {
                        // Dropping the receiver ends the reading thread at its next batch.
                        return Ok(());
                    }
                }
            }
            let (offset, line) = position.expect("the reading thread always sends a last batch");
            // Also when nothing was new: a first run on an empty file records its identity,
            // and the fingerprint grows with the file.
            let checkpoint = checkpoint(offset, line).with_context(cannot_read)?;
            self.commit(checkpoint.as_ref().map(|cp| (key, cp)))
        })
    }

    fn stopping(&self) -> bool {
        self.config
            .stop
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn reject(&mut self, key: &str, line: u64, reason: Reject, raw: &[u8]) -> anyhow::Result<()> {
        *self.summary.rejected.entry(reason.slug()).or_insert(0) += 1;
        self.sink.reject(&Rejected {
            source: key,
            line,
            reason,
            raw,
        })?;
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

    fn commit(&mut self, checkpoint: Option<(&str, &Checkpoint)>) -> anyhow::Result<()> {
        // Rejects go to their file before the rows are committed: a crash in between repeats
        // a rejected line in that file rather than losing it.
        if let Some((path, out)) = &mut self.rejects {
            out.flush()
                .with_context(|| format!("cannot write rejects file {}", path.display()))?;
        }
        self.sink.commit(checkpoint)
    }
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
