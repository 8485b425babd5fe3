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

use crate::batch::{Batch, Encoder, Position, Prepare};
use crate::checkpoint::{Checkpoint, write_atomically};
use crate::entry::{COLUMNS, COMBINED_COLUMNS, LogEntry, Rfc3339, decimal};
use crate::mask;
use crate::sink::{Origin, Sink, Update};
use crate::zone::LogOffsets;

/// The CSV store's work on the parsing threads: its rows, encoded there.
impl Encoder for RowEncoder {
    fn push(&mut self, entry: &LogEntry<'_>, _: Position) {
        self.encode(entry);
    }

    fn finish(&mut self) -> Box<dyn std::any::Any + Send> {
        Box::new(self.take())
    }
}

/// What `<csv>.checkpoint` holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    version: u32,
    /// Length of the CSV covered by the checkpoints below.
    csv_len: u64,
    sources: BTreeMap<String, Checkpoint>,
    /// The log format each source was read with; a source missing here was read before
    /// formats were recorded, as `combined`.
    #[serde(default)]
    formats: BTreeMap<String, String>,
    /// The privacy choices the rows were stored with (see `Sink::scrubbed`).
    #[serde(default)]
    scrubbed: Option<String>,
    /// The offsets the rows' times were written in ([`LogOffsets::to_setting`]); absent
    /// while none is known, and in a file of an earlier version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log_offsets: Option<String>,
}

impl State {
    fn offsets(&self) -> LogOffsets {
        (self.log_offsets.as_deref()).map_or(LogOffsets::Unknown, LogOffsets::from_setting)
    }
}

/// The offsets the rows of the CSV at `path` were written in, as its checkpoint file records
/// them: unknown without one (a CSV written by another program, or by an earlier version).
pub fn stored_offsets(path: &Path) -> LogOffsets {
    std::fs::read(state_path(path))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<State>(&bytes).ok())
        .map_or(LogOffsets::Unknown, |state| state.offsets())
}

fn state_path(csv: &Path) -> PathBuf {
    PathBuf::from(format!("{}.checkpoint", csv.display()))
}

/// 2: the privacy choices are recorded (`scrubbed`); an older parse-to-csv, which would
/// append raw rows and drop them, refuses the file. 3: the offsets the rows were written in
/// (`log_offsets`); the rows of a CSV of an earlier version are of unknown offsets, recorded
/// as mixed, and an older parse-to-csv, which would append rows without updating the
/// record, refuses the file.
const STATE_VERSION: u32 = 3;

/// How entries are written as CSV rows.
#[derive(Debug, Clone, Copy, Default)]
pub struct CsvFormat {
    /// Neutralise fields that a spreadsheet would run as a formula.
    pub safe_spreadsheet: bool,
    /// Write only the Combined columns: rows appended to a CSV of an earlier version, whose
    /// header has no others.
    pub combined_only: bool,
}

impl CsvFormat {
    fn columns(&self) -> &'static [&'static str] {
        crate::entry::columns(!self.combined_only)
    }
}

/// Encodes entries as CSV rows in memory, quoted the way the csv crate quotes.
///
/// Encoding is a large part of parse-to-csv's work, so it runs on the parsing threads, in
/// parallel (it is the store's [`crate::batch::Encoder`]); the sink then only appends bytes
/// to the file.
pub struct RowEncoder {
    format: CsvFormat,
    out: Vec<u8>,
    scratch: Vec<u8>,
    /// The last timestamp written and its text: consecutive entries mostly share it.
    last_time: Option<(chrono::DateTime<chrono::Utc>, Vec<u8>)>,
}

impl RowEncoder {
    pub fn new(format: CsvFormat) -> RowEncoder {
        RowEncoder {
            format,
            out: Vec::new(),
            scratch: Vec::new(),
            last_time: None,
        }
    }

    /// Encodes the header line.
    pub(crate) fn header(&mut self) {
        for (i, column) in self.format.columns().iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            field(&mut self.out, column.as_bytes());
        }
        self.out.push(b'\n');
    }

    /// Encodes an entry as a row.
    pub fn encode(&mut self, e: &LogEntry<'_>) {
        self.text(e.ip.as_bytes());
        self.out.push(b',');
        self.opt(&e.ident);
        self.out.push(b',');
        self.opt(&e.user);
        self.out.push(b',');
        match &mut self.last_time {
            Some((t, text)) if *t == e.timestamp => self.out.extend_from_slice(text),
            last => {
                let mut text = Vec::with_capacity(20);
                Rfc3339(e.timestamp).write_to(&mut text);
                self.out.extend_from_slice(&text);
                *last = Some((e.timestamp, text));
            }
        }
        self.out.push(b',');
        self.opt(&e.method);
        self.out.push(b',');
        self.text(e.url.as_bytes());
        self.out.push(b',');
        self.opt(&e.protocol);
        self.out.push(b',');
        let mut num = [0u8; 20];
        self.out
            .extend_from_slice(decimal(&mut num, u64::from(e.status)));
        self.out.push(b',');
        if let Some(b) = e.bytes {
            self.out.extend_from_slice(decimal(&mut num, b));
        }
        self.out.push(b',');
        self.opt(&e.referrer);
        self.out.push(b',');
        self.opt(&e.user_agent);
        if !self.format.combined_only {
            let x = &e.extra;
            self.out.push(b',');
            self.opt(&x.vhost);
            for n in [
                x.port.map(u64::from),
                x.response_time_us,
                x.upstream_time_us,
            ] {
                self.out.push(b',');
                if let Some(n) = n {
                    self.out.extend_from_slice(decimal(&mut num, n));
                }
            }
            self.out.push(b',');
            self.opt(&x.forwarded_for);
        }
        self.out.push(b'\n');
    }

    /// Adds a text field, neutralised for spreadsheets if asked.
    fn text(&mut self, value: &[u8]) {
        if self.format.safe_spreadsheet
            && matches!(
                value.first(),
                Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
            )
        {
            // A leading apostrophe makes spreadsheets show the text instead of running it.
            self.scratch.clear();
            self.scratch.push(b'\'');
            self.scratch.extend_from_slice(value);
            field(&mut self.out, &self.scratch);
        } else {
            field(&mut self.out, value);
        }
    }

    fn opt(&mut self, value: &Option<std::borrow::Cow<'_, str>>) {
        self.text(value.as_deref().unwrap_or("").as_bytes())
    }

    /// The rows encoded since the last call.
    pub fn take(&mut self) -> Vec<u8> {
        let capacity = self.out.capacity();
        std::mem::replace(&mut self.out, Vec::with_capacity(capacity))
    }
}

/// Appends `value` as one CSV field, as the csv crate's writer does by default
/// (`QuoteStyle::Necessary`): as it is, unless it holds a comma, a quote or a line break; then
/// in quotes, with the csv crate's own quoting (`csv_core::quote`, quotes doubled).
///
/// Deciding this is a large share of encoding a row. The csv writer decides byte by byte
/// through its state machine; here the bytes that need quoting are looked for sixteen at a
/// time ([`mask::any_of`]). A property test holds the two equal.
fn field(out: &mut Vec<u8>, value: &[u8]) {
    if !mask::any_of(value, [b',', b'"', b'\n', b'\r']) {
        out.extend_from_slice(value);
        return;
    }
    out.push(b'"');
    if memchr::memchr(b'"', value).is_none() {
        // Nothing to double (a user agent with a comma, typically).
        out.extend_from_slice(value);
    } else {
        let start = out.len();
        // At worst every byte is a quote, doubled.
        out.resize(start + 2 * value.len(), 0);
        let (_, _, written) = csv_core::quote(value, &mut out[start..], b'"', b'\\', true);
        out.truncate(start + written);
    }
    out.push(b'"');
}

/// Appends entries to a CSV file, exactly once per source line.
pub struct CsvSink {
    path: PathBuf,
    state_path: PathBuf,
    file: Guarded,
    /// The header of a new file, until it is appended with the first rows (the rows come
    /// encoded by the parsing threads, in the format this encoder holds).
    encoder: RowEncoder,
    state: State,
    /// Saved with each checkpoint (see [`Sink::set_log_format`]).
    log_format: String,
    /// The offsets of the rows written since the last commit.
    pending_offsets: LogOffsets,
}

impl CsvSink {
    /// Opens (or creates) the CSV at `path`. `notify` receives what the user should know
    /// (a crashed run's tail cut off, a CSV changed behind the checkpoint's back).
    /// `extra_fields`: the log format carries fields beyond Combined's, which a CSV of an
    /// earlier version has no columns for.
    pub fn open(
        path: &Path,
        safe_spreadsheet: bool,
        extra_fields: bool,
        notify: &mut dyn FnMut(String),
    ) -> anyhow::Result<CsvSink> {
        let state_path = state_path(path);
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
        let mut reset = false;
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
            reset = true;
        }
        // Rows whose offsets no record covers: those of an earlier version, of another
        // program (no checkpoint file), or kept by the reset above. None of them can be
        // told apart by offset, so the record says mixed (see `LogOffsets`).
        let unrecorded = state.version < STATE_VERSION || !state_path.exists() || reset;
        state.version = STATE_VERSION;
        let needs_header = state.csv_len == 0;
        let combined_only = !needs_header && check_header(&file, path)? == COMBINED_COLUMNS;
        if combined_only && extra_fields {
            bail!(
                "{} has only the {COMBINED_COLUMNS} columns of an earlier log-pipeline, and this log format has fields beyond them; choose another --output (the file is left as it is)",
                path.display()
            );
        }
        let first_run = !state_path.exists();
        let mut sink = CsvSink {
            path: path.to_owned(),
            state_path,
            file: Guarded {
                file,
                failed: false,
            },
            encoder: RowEncoder::new(CsvFormat {
                safe_spreadsheet,
                combined_only,
            }),
            state,
            log_format: "combined".to_owned(),
            pending_offsets: LogOffsets::Unknown,
        };
        if unrecorded && sink.state.log_offsets.is_none() && sink.holds_rows()? {
            sink.state.log_offsets = LogOffsets::Mixed.to_setting();
        }
        if first_run {
            // Record the starting length before the first byte is appended: a run killed
            // before its first commit must not leave a torn tail that the next run would take
            // for content of the file.
            sink.save_state()?;
        }
        if needs_header {
            sink.encoder.header();
        }
        Ok(sink)
    }

    fn write_error(&self) -> String {
        format!("cannot write to {}", self.path.display())
    }

    /// A write failed (disk full, say): take back what this batch wrote, so the file stays
    /// what its checkpoint says; [`Guarded`] refuses every later write.
    fn fail(&mut self, e: anyhow::Error) -> anyhow::Error {
        let _ = self.file.file.set_len(self.state.csv_len);
        e.context(self.write_error())
    }

    /// Appends `rows` to the file.
    fn append(&mut self, rows: &[u8]) -> anyhow::Result<()> {
        self.file.write_all(rows).map_err(|e| self.fail(e.into()))
    }

    /// Appends what the encoder holds: the header of a new file.
    fn append_pending(&mut self) -> anyhow::Result<()> {
        let rows = self.encoder.take();
        self.append(&rows)
    }

    fn save_state(&self) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(&self.state)?;
        write_atomically(&self.state_path, &bytes)
    }
}

/// Checks the first line of an existing CSV: the header of this version or of an earlier one
/// (the Combined columns only); returns how many columns it names.
fn check_header(file: &File, path: &Path) -> anyhow::Result<usize> {
    let expected = COLUMNS.join(",");
    let mut first = vec![0u8; expected.len() + 2];
    let mut reader = file;
    let n = reader
        .read(&mut first)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let first = &first[..n];
    let line = first.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let earlier = crate::entry::columns(false).join(",");
    if line == expected.as_bytes() {
        Ok(COLUMNS.len())
    } else if line == earlier.as_bytes() {
        Ok(COMBINED_COLUMNS)
    } else {
        bail!(
            "{} is not a log-pipeline CSV (its first line is not `{expected}`); choose another --output",
            path.display()
        )
    }
}

impl Sink for CsvSink {
    fn checkpoint(&mut self, source: &str) -> anyhow::Result<Option<Checkpoint>> {
        Ok(self.state.sources.get(source).copied())
    }

    fn log_format(&mut self, source: &str) -> anyhow::Result<Option<String>> {
        Ok(self.state.sources.contains_key(source).then(|| {
            (self.state.formats.get(source)).map_or_else(|| "combined".to_owned(), Clone::clone)
        }))
    }

    fn set_log_format(&mut self, name: &str) {
        name.clone_into(&mut self.log_format);
    }

    fn scrubbed(&mut self) -> anyhow::Result<Option<String>> {
        Ok(self.state.scrubbed.clone())
    }

    fn set_scrubbed(&mut self, choices: &str) -> anyhow::Result<()> {
        // Saved with the checkpoints at the next commit, in the same file.
        self.state.scrubbed = Some(choices.to_owned());
        Ok(())
    }

    fn holds_rows(&mut self) -> anyhow::Result<bool> {
        // More than a header line.
        let header = self.encoder.format.columns().join(",").len() as u64 + 1;
        Ok(self.state.csv_len > header)
    }

    fn checkpoints(&mut self) -> anyhow::Result<Vec<(String, Checkpoint)>> {
        Ok(self
            .state
            .sources
            .iter()
            .map(|(key, cp)| (key.clone(), *cp))
            .collect())
    }

    fn prepare(&self) -> Prepare {
        let format = self.encoder.format;
        Prepare {
            // Appending bytes is light: every core can parse.
            parsers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            encoder: Some(std::sync::Arc::new(move || {
                Box::new(RowEncoder::new(format)) as Box<dyn Encoder>
            })),
            ..Prepare::default()
        }
    }

    fn write_batch(&mut self, _: Origin<'_>, batch: &mut Batch) -> anyhow::Result<()> {
        let Some(rows) = batch.encoded::<Vec<u8>>() else {
            bail!("internal error: a batch without the CSV rows this store asks for in `prepare`");
        };
        // The header, before the first rows of a new file.
        self.append_pending()?;
        self.append(rows)?;
        self.pending_offsets.merge(batch.offsets);
        Ok(())
    }

    fn commit(&mut self, updates: &[Update<'_>]) -> anyhow::Result<()> {
        self.append_pending()?;
        let file = &self.file.file;
        let synced = file.sync_data().and_then(|()| Ok(file.metadata()?.len()));
        let len = synced.map_err(|e| self.fail(e.into()))?;
        self.state.csv_len = len;
        let mut offsets = self.state.offsets();
        offsets.merge(std::mem::take(&mut self.pending_offsets));
        self.state.log_offsets = offsets.to_setting();
        for update in updates {
            match update {
                Update::Set(source, cp) => {
                    (self.state.formats).insert((*source).to_owned(), self.log_format.clone());
                    self.state.sources.insert((*source).to_owned(), *cp);
                }
                Update::Remove(source) => {
                    self.state.formats.remove(*source);
                    self.state.sources.remove(*source);
                }
            };
        }
        self.save_state()
    }

    fn abort(&mut self) {
        // Cut what this batch appended; the checkpoint file still says the old length.
        self.encoder.take();
        self.pending_offsets = LogOffsets::Unknown;
        if self.state.csv_len == 0 {
            // A new file: its header goes with the first commit.
            self.encoder.header();
        }
        if !self.file.failed {
            let _ = self.file.file.set_len(self.state.csv_len);
        }
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// The CSV file the sink appends to. After the first failed write every further write fails
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The csv crate's own writer, with its defaults: what [`field`] must equal.
    fn by_csv_crate(fields: &[Vec<u8>]) -> Vec<u8> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(fields).unwrap();
        writer.into_inner().unwrap()
    }

    fn by_encoder(fields: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            field(&mut out, f);
        }
        out.push(b'\n');
        out
    }

    /// Bytes weighted towards the ones that decide quoting.
    fn tricky_field() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                Just(b','),
                Just(b'"'),
                Just(b'\n'),
                Just(b'\r'),
                Just(b'\\'),
                Just(b' '),
                any::<u8>(),
                b'a'..=b'z'
            ],
            0..80,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn rows_are_encoded_exactly_as_the_csv_crate_writes_them(
            fields in proptest::collection::vec(tricky_field(), 2..12)
        ) {
            prop_assert_eq!(by_encoder(&fields), by_csv_crate(&fields));
        }
    }

    #[test]
    fn header_and_entries_read_back_through_the_csv_crate() {
        let line = br#"::1 - - [01/Jan/2024:00:00:00 +0000] "GET /a,b?q=\"x\" HTTP/1.1" 200 - "=cmd" "Mozilla (KHTML, like Gecko)""#;
        let entry = crate::parse::parse_line(line).unwrap();
        for safe_spreadsheet in [false, true] {
            let mut encoder = RowEncoder::new(CsvFormat {
                safe_spreadsheet,
                combined_only: false,
            });
            encoder.header();
            encoder.encode(&entry);
            let bytes = encoder.take();
            let mut reader = csv::Reader::from_reader(&bytes[..]);
            assert_eq!(reader.headers().unwrap(), COLUMNS.as_slice());
            let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
            assert_eq!(rows.len(), 1);
            let referrer = if safe_spreadsheet { "'=cmd" } else { "=cmd" };
            assert_eq!(
                rows[0].iter().collect::<Vec<_>>(),
                [
                    "::1",
                    "",
                    "",
                    "2024-01-01T00:00:00Z",
                    "GET",
                    r#"/a,b?q="x""#,
                    "HTTP/1.1",
                    "200",
                    "",
                    referrer,
                    "Mozilla (KHTML, like Gecko)",
                    "",
                    "",
                    "",
                    "",
                    ""
                ]
            );
        }
    }

    #[test]
    fn the_fields_of_other_formats_follow_the_combined_ones_unless_the_file_has_no_columns_for_them()
     {
        let line = br#"::1 - - [01/Jan/2024:00:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "-""#;
        let mut entry = crate::parse::parse_line(line).unwrap();
        entry.extra = crate::entry::Extra {
            vhost: Some("example.org".into()),
            port: Some(443),
            response_time_us: Some(390_000),
            upstream_time_us: Some(14_000),
            forwarded_for: Some("203.0.113.7, 10.0.0.1".into()),
        };
        let row = |combined_only| {
            let mut encoder = RowEncoder::new(CsvFormat {
                safe_spreadsheet: false,
                combined_only,
            });
            encoder.encode(&entry);
            String::from_utf8(encoder.take()).unwrap()
        };
        let combined = "::1,,,2024-01-01T00:00:00Z,GET,/,HTTP/1.1,200,5,,";
        assert_eq!(
            row(false),
            format!("{combined},example.org,443,390000,14000,\"203.0.113.7, 10.0.0.1\"\n")
        );
        assert_eq!(row(true), format!("{combined}\n"));
    }
}
