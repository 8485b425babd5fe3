//! The CSV store: `parsed_logs.csv` and its checkpoint file beside it.
//!
//! A CSV cannot hold its own checkpoint, so `<csv>.checkpoint` records, per source, how far it
//! was read, and the length the CSV had at that moment. A commit writes the rows, syncs them,
//! and only then replaces the checkpoint (write, sync, rename). Killed between the two, the CSV
//! holds rows the checkpoint does not cover; the next run cuts the CSV back to the recorded
//! length before appending, so each row ends up in the file exactly once.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, write_atomically};
use crate::entry::{COLUMNS, LogEntry, Rfc3339, decimal};
use crate::sink::Sink;

/// What `<csv>.checkpoint` holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    version: u32,
    /// Length of the CSV covered by the checkpoints below.
    csv_len: u64,
    sources: BTreeMap<String, Checkpoint>,
}

const STATE_VERSION: u32 = 1;

/// Appends entries to a CSV file, exactly once per source line.
pub struct CsvSink {
    path: PathBuf,
    state_path: PathBuf,
    writer: csv::Writer<Guarded>,
    state: State,
    safe_spreadsheet: bool,
    scratch: Vec<u8>,
}

impl CsvSink {
    /// Opens (or creates) the CSV at `path`. `notify` receives what the user should know
    /// (a crashed run's tail cut off, a CSV changed behind the checkpoint's back).
    pub fn open(
        path: &Path,
        safe_spreadsheet: bool,
        notify: &mut dyn FnMut(String),
    ) -> anyhow::Result<CsvSink> {
        let state_path = PathBuf::from(format!("{}.checkpoint", path.display()));
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .with_context(|| format!("cannot open CSV output {}", path.display()))?;
        let len = file
            .metadata()
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
        let mut state = match std::fs::read(&state_path) {
            Ok(bytes) => serde_json::from_slice::<State>(&bytes).with_context(|| {
                format!(
                    "checkpoint {} is corrupt (delete it to re-read every input from the start)",
                    state_path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State {
                version: STATE_VERSION,
                csv_len: len,
                ..State::default()
            },
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read checkpoint {}", state_path.display()));
            }
        };
        if state.version > STATE_VERSION {
            bail!(
                "checkpoint {} was written by a newer log-pipeline",
                state_path.display()
            );
        }
        if len > state.csv_len {
            notify(format!(
                "{}: cutting {} bytes that an interrupted run wrote after its last checkpoint",
                path.display(),
                len - state.csv_len
            ));
            file.set_len(state.csv_len)
                .with_context(|| format!("cannot truncate {}", path.display()))?;
        } else if len < state.csv_len {
            notify(format!(
                "{}: the file is shorter than its checkpoint says (edited or replaced): every input will be read again from the start",
                path.display()
            ));
            state = State {
                version: STATE_VERSION,
                csv_len: len,
                ..State::default()
            };
        }
        let needs_header = state.csv_len == 0;
        if !needs_header {
            check_header(&file, path)?;
        }
        let first_run = !state_path.exists();
        let writer = csv::WriterBuilder::new()
            .buffer_capacity(1 << 20)
            .from_writer(Guarded {
                file,
                failed: false,
            });
        let mut sink = CsvSink {
            path: path.to_owned(),
            state_path,
            writer,
            state,
            safe_spreadsheet,
            scratch: Vec::new(),
        };
        if first_run {
            // Record the starting length before the first byte is appended: a run killed
            // before its first commit must not leave a torn tail that the next run would take
            // for content of the file.
            sink.save_state()?;
        }
        if needs_header {
            sink.writer
                .write_record(COLUMNS)
                .map_err(|e| sink.fail(e.into()))?;
        }
        Ok(sink)
    }

    fn write_error(&self) -> String {
        format!("cannot write to {}", self.path.display())
    }

    /// A write failed (disk full, say): take back what this batch wrote, so the file stays
    /// what its checkpoint says, and refuse further writes (the csv writer would otherwise
    /// flush its buffer again when dropped).
    fn fail(&mut self, e: anyhow::Error) -> anyhow::Error {
        let guarded = self.writer.get_ref();
        let _ = guarded.file.set_len(self.state.csv_len);
        e.context(self.write_error())
    }

    fn field(&mut self, value: &[u8]) -> csv::Result<()> {
        if self.safe_spreadsheet
            && matches!(
                value.first(),
                Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
            )
        {
            // A leading apostrophe makes spreadsheets show the text instead of running it.
            self.scratch.clear();
            self.scratch.push(b'\'');
            self.scratch.extend_from_slice(value);
            let scratch = std::mem::take(&mut self.scratch);
            let result = self.writer.write_field(&scratch);
            self.scratch = scratch;
            return result;
        }
        self.writer.write_field(value)
    }

    fn opt(&mut self, value: &Option<std::borrow::Cow<'_, str>>) -> csv::Result<()> {
        self.field(value.as_deref().unwrap_or("").as_bytes())
    }

    fn save_state(&self) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(&self.state)?;
        write_atomically(&self.state_path, &bytes)
    }
}

fn check_header(file: &File, path: &Path) -> anyhow::Result<()> {
    let expected = COLUMNS.join(",");
    let mut first = vec![0u8; expected.len() + 2];
    let mut reader = file;
    let n = reader
        .read(&mut first)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let first = &first[..n];
    let line = first.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line != expected.as_bytes() {
        bail!(
            "{} is not a log-pipeline CSV (its first line is not `{expected}`); choose another --output",
            path.display()
        );
    }
    Ok(())
}

impl Sink for CsvSink {
    fn checkpoint(&mut self, source: &str) -> anyhow::Result<Option<Checkpoint>> {
        Ok(self.state.sources.get(source).copied())
    }

    fn write(&mut self, e: &LogEntry<'_>) -> anyhow::Result<()> {
        let mut ts = Vec::with_capacity(20);
        Rfc3339(e.timestamp).write_to(&mut ts);
        let mut num = [0u8; 20];
        let result = (|| -> csv::Result<()> {
            self.field(e.ip.as_bytes())?;
            self.opt(&e.ident)?;
            self.opt(&e.user)?;
            self.writer.write_field(&ts)?;
            self.opt(&e.method)?;
            self.field(e.url.as_bytes())?;
            self.opt(&e.protocol)?;
            self.writer
                .write_field(decimal(&mut num, u64::from(e.status)))?;
            match e.bytes {
                Some(b) => self.writer.write_field(decimal(&mut num, b))?,
                None => self.writer.write_field(b"")?,
            }
            self.opt(&e.referrer)?;
            self.opt(&e.user_agent)?;
            self.writer.write_record(None::<&[u8]>)
        })();
        result.map_err(|e| self.fail(e.into()))
    }

    fn commit(&mut self, checkpoint: Option<(&str, &Checkpoint)>) -> anyhow::Result<()> {
        let flushed = self
            .writer
            .flush()
            .map_err(anyhow::Error::from)
            .and_then(|()| {
                self.writer.get_ref().file.sync_data()?;
                Ok(self.writer.get_ref().file.metadata()?.len())
            });
        let len = flushed.map_err(|e| self.fail(e))?;
        self.state.csv_len = len;
        if let Some((source, cp)) = checkpoint {
            self.state.sources.insert(source.to_owned(), *cp);
        }
        self.save_state()
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// The CSV file behind the csv writer. After the first failed write every further write fails
/// too, so nothing lands after the tail that [`CsvSink::fail`] cut off.
struct Guarded {
    file: File,
    failed: bool,
}

impl Write for Guarded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.failed {
            return Err(std::io::Error::other("an earlier write failed"));
        }
        (&self.file).write(buf).inspect_err(|_| self.failed = true)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.failed {
            return Err(std::io::Error::other("an earlier write failed"));
        }
        Ok(())
    }
}
