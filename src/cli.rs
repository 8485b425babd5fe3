//! What every binary shares at its edge: the one place an error reaches the user, and the
//! Ctrl+C / SIGTERM flag that long-running tools poll.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::batch::{ClientFrom, Reading};
use crate::format::{Field, LogFormat};
use crate::report::filter::Alternatives;

/// Runs a binary's body and turns its outcome into an exit code.
///
/// Errors are printed once, as `name: error: cause: cause`, and exit 2. A broken pipe (the
/// output piped into `head`) is not an error for a command-line tool: it exits 0.
pub fn main_with(name: &str, body: impl FnOnce() -> anyhow::Result<ExitCode>) -> ExitCode {
    match body() {
        Ok(code) => code,
        Err(err) => {
            for cause in err.chain() {
                if let Some(io) = cause.downcast_ref::<std::io::Error>()
                    && io.kind() == std::io::ErrorKind::BrokenPipe
                {
                    return ExitCode::SUCCESS;
                }
            }
            let _ = writeln!(std::io::stderr().lock(), "{name}: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// A flag set by the first Ctrl+C (SIGINT) or SIGTERM, for tools that stop cleanly between
/// two units of work. A second signal while stopping exits at once with 130, as shells expect.
pub fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let handler_flag = Arc::clone(&flag);
    ctrlc::set_handler(move || {
        if handler_flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    })?;
    Ok(flag)
}

/// The options `parse-to-csv` and `parse-to-db` share (and `continuous-parse --once`).
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Log files to read (`-` for standard input; `.gz` files are decompressed).
    #[arg(value_name = "LOG", default_value = "logs/access.log")]
    pub inputs: Vec<std::path::PathBuf>,
    /// Reject lines longer than this many bytes (they are skipped without being held in memory).
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES", value_parser = parse_line_limit, allow_negative_numbers = true)]
    pub max_line_bytes: usize,
    /// Take a last line that has no newline yet once the file has not changed for this long.
    #[arg(long, default_value = "3", value_name = "SECS", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub settle: Duration,
    /// Take a last line without newline now (the writer is known to be done).
    #[arg(long = "final")]
    pub take_partial: bool,
    /// Ignore saved checkpoints and read every input from its first byte. Rows already in the
    /// output stay: re-reading lines that were taken before adds them again, so remove the
    /// output first for a clean rebuild.
    #[arg(long)]
    pub from_start: bool,
    /// Where logrotate puts a rotated log, besides `<log>.N[.gz]` and `<log>-DATE[.gz]` (a glob).
    #[arg(long, value_name = "GLOB")]
    pub rotated: Option<String>,
    /// After a rotation, keep reading the rotated file until it has not changed for this
    /// long: the server writes to it until it reopens its log. A run that finds it still
    /// changing leaves the rest to the next run.
    #[arg(long, default_value = "5", value_name = "SECS", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub rotate_wait: Duration,
    /// If another process is writing to the output, fail at once instead of waiting for it.
    #[arg(long)]
    pub no_wait: bool,
    /// Append rejected lines here, verbatim, as `source:line: reason: bytes`.
    #[arg(long, value_name = "PATH")]
    pub rejects: Option<std::path::PathBuf>,
    /// Lines per commit (each commit makes rows and checkpoint durable together).
    #[arg(long, default_value_t = 200_000, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_lines: u64,
    /// Print no summary (warnings and errors still go to stderr), for cron.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub reading: ReadingArgs,
}

/// How lines are read: the options of every tool that parses logs.
#[derive(Debug, Clone, clap::Args)]
pub struct ReadingArgs {
    /// The log's format: `combined` (which also reads Common lines), `common`, `vcombined`
    /// (Apache's vhost_combined), `ingress-nginx` (its default upstreaminfo), `w3c` (IIS), a load balancer's or proxy's own (`elb`,
    /// `alb`, `cloudfront`, `haproxy`, `traefik-clf`), `caddy` and `caddy-console` (Caddy's
    /// JSON and console access logs), `traefik` (Traefik's JSON access log), `auto` (chosen
    /// from the log's first lines, and said), or the server's own definition: an Apache
    /// LogFormat string or an nginx log_format string, `escape=json` included (see the
    /// README's "Log formats").
    #[arg(long, value_name = "FORMAT", default_value = "combined", value_parser = parse_log_format)]
    pub log_format: FormatChoice,
    /// Who the client is: `remote`, the address that connected, or `forwarded`, the first
    /// address of X-Forwarded-For when the line has one (behind a proxy).
    #[arg(long, value_enum, value_name = "FROM", default_value_t = ClientFrom::Remote)]
    pub client: ClientFrom,
    /// Store only the network of each client address: IPv4 to /24 and IPv6 to /64, or
    /// `--anonymize-ip V4[/V6]` for other prefixes (`16/48`). The full address is never
    /// stored, rejects included (see the README's "Privacy").
    #[arg(long, value_name = "BITS", num_args = 0..=1,
          default_missing_value = "24/64", value_parser = parse_prefixes,
          conflicts_with = "pseudonymize_ip")]
    pub anonymize_ip: Option<(u8, u8)>,
    /// Store a keyed hash of each client address instead of the address: per-client counts
    /// and unique visitors stay exact. The key is read from PATH, created (0600) if
    /// missing; keep it to add to the same store later.
    #[arg(long, value_name = "PATH")]
    pub pseudonymize_ip: Option<std::path::PathBuf>,
    /// Replace the values of these query parameters with REDACTED, in URLs and referrers
    /// (`--redact-query=token,sid`; alone: token, key, password, passwd, secret, session,
    /// auth, sig, signature, code).
    #[arg(long, value_name = "NAMES", num_args = 0..=1, require_equals = true,
          value_delimiter = ',', default_missing_value = crate::privacy::REDACTED_BY_DEFAULT,
          conflicts_with = "strip_query")]
    pub redact_query: Option<Vec<String>>,
    /// Drop query strings from URLs and referrers before they are stored. (The reports'
    /// --strip-query groups a store that kept them the same way, for one report.)
    #[arg(long)]
    pub strip_query: bool,
}

/// `--anonymize-ip=V4[/V6]`: prefix lengths in bits.
fn parse_prefixes(s: &str) -> Result<(u8, u8), String> {
    let (v4, v6) = s.split_once('/').unwrap_or((s, "64"));
    let bits = |text: &str, max: u8| {
        text.parse::<u8>()
            .ok()
            .filter(|&b| b <= max)
            .ok_or_else(|| {
                format!(
                    "`{text}` is not a prefix length of 0 to {max} bits (a log named right \
                     after --anonymize-ip is taken for its value: put the log first)"
                )
            })
    };
    Ok((bits(v4, 32)?, bits(v6, 128)?))
}

/// `--log-format`: a format, or `auto`.
#[derive(Debug, Clone)]
pub enum FormatChoice {
    Auto,
    Given(LogFormat),
}

fn parse_log_format(s: &str) -> Result<FormatChoice, String> {
    match s.trim() {
        "auto" => Ok(FormatChoice::Auto),
        _ => LogFormat::from_arg(s)
            .map(FormatChoice::Given)
            .map_err(|e| e.to_string()),
    }
}

/// Lines `auto` looks at, at most.
const AUTO_LINES: usize = 200;

impl ReadingArgs {
    /// The reading of a run over `inputs`. `auto` looks at the first lines of the first
    /// input, and says on stderr which format it chose.
    pub fn reading(&self, tool: &str, inputs: &[crate::ingest::Input]) -> anyhow::Result<Reading> {
        self.reading_or_saved(tool, inputs, || None)
    }

    /// [`ReadingArgs::reading`], where `auto` on a log that is missing or empty takes the
    /// format `saved` gives (the one saved with the log's checkpoint): a follower started
    /// before its log has lines again, after a rotation say.
    pub fn reading_or_saved(
        &self,
        tool: &str,
        inputs: &[crate::ingest::Input],
        saved: impl FnOnce() -> Option<String>,
    ) -> anyhow::Result<Reading> {
        let format = match &self.log_format {
            FormatChoice::Given(format) => format.clone(),
            FormatChoice::Auto => {
                let Some(crate::ingest::Input::File(path)) = inputs.first() else {
                    anyhow::bail!(
                        "--log-format auto needs a file to look at, not standard input; give the format"
                    );
                };
                let head = match crate::ingest::first_lines(path, AUTO_LINES) {
                    Ok(head) => head,
                    Err(_) if !path.exists() => Vec::new(),
                    Err(e) => return Err(e),
                };
                let lines: Vec<&[u8]> = head.iter().map(Vec::as_slice).collect();
                let saved = match lines.is_empty() {
                    true => saved().and_then(|name| LogFormat::from_arg(&name).ok()),
                    false => None,
                };
                if let Some(format) = saved {
                    let _ = writeln!(
                        std::io::stderr().lock(),
                        "{tool}: log format: {} (auto, as saved with the checkpoint of {})",
                        format.name(),
                        path.display()
                    );
                    return self.with_format(tool, format);
                }
                if lines.is_empty() {
                    anyhow::bail!(
                        "--log-format auto: {} has no line to tell its format by; give the format",
                        path.display()
                    );
                }
                let format = crate::format::detect(&lines)
                    .map_err(|e| anyhow::anyhow!("--log-format auto: {}: {e}", path.display()))?;
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "{tool}: log format: {} (auto, from the first {} lines of {})",
                    format.name(),
                    lines.len(),
                    path.display()
                );
                format
            }
        };
        self.with_format(tool, format)
    }

    /// The reading in `format`, with the other options.
    fn with_format(&self, tool: &str, format: LogFormat) -> anyhow::Result<Reading> {
        if self.client == ClientFrom::Forwarded && !format.has(|f| *f == Field::ForwardedFor) {
            warn(tool)(format!(
                "--client forwarded: the format `{}` has no X-Forwarded-For field; every client is the address that connected",
                format.name()
            ));
        }
        Ok(Reading {
            format,
            client: self.client,
            scrub: self.scrub(tool)?,
        })
    }

    /// What the privacy options take out of each line.
    fn scrub(&self, tool: &str) -> anyhow::Result<crate::privacy::Scrub> {
        use crate::privacy::{Addresses, Key, Query, Scrub};
        let addresses = match (&self.anonymize_ip, &self.pseudonymize_ip) {
            (Some((v4, v6)), _) => Addresses::Truncate { v4: *v4, v6: *v6 },
            (None, Some(path)) => {
                let key = Key::load_or_create(path)?;
                if let Some(message) = crate::privacy::key_exposure(path) {
                    warn(tool)(message);
                }
                Addresses::Pseudonym(Arc::new(key))
            }
            (None, None) => Addresses::Keep,
        };
        let query = match (&self.redact_query, self.strip_query) {
            (_, true) => Query::Strip,
            (Some(names), false) => {
                let names: Vec<String> = (names.iter())
                    .map(|n| n.trim().to_owned())
                    .filter(|n| !n.is_empty())
                    .collect();
                if names.is_empty() {
                    anyhow::bail!("--redact-query= names no parameter");
                }
                Query::Redact(names)
            }
            (None, false) => Query::Keep,
        };
        Ok(Scrub::new(addresses, query))
    }
}

/// The longest wait a seconds flag takes. Nothing the tools wait for is longer; a bound makes
/// a typo (`1e20`) an argument error, and keeps `Instant + duration` far from overflowing.
const MAX_SECONDS: Duration = Duration::from_secs(10 * 365 * 86_400);

/// The longest `--busy-timeout`: SQLite takes it as milliseconds in an `i32` (24 days), and
/// rusqlite panics on a longer one.
const MAX_BUSY_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

/// Parses a number of seconds (fractions allowed) up to 10 years.
///
/// It returns the `Duration` itself, so that a value no `Duration` holds (negative, NaN,
/// infinite, `1e20`) is refused by clap, naming the flag, rather than panicking later where
/// the number is first turned into a `Duration`. Flags using it set `allow_negative_numbers`,
/// so that `--settle -1` is refused here too, not taken by clap for an unknown flag `-1`.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    seconds_at_most(s, MAX_SECONDS, "10 years")
}

/// [`parse_seconds`] for `--busy-timeout`, which SQLite bounds more tightly.
pub fn parse_busy_timeout(s: &str) -> Result<Duration, String> {
    seconds_at_most(s, MAX_BUSY_TIMEOUT, "24 days")
}

fn seconds_at_most(s: &str, max: Duration, max_text: &str) -> Result<Duration, String> {
    let not_seconds = || format!("'{s}' is not a number of seconds >= 0");
    let secs: f64 = s.parse().map_err(|_| not_seconds())?;
    if secs.is_nan() || secs < 0.0 {
        return Err(not_seconds());
    }
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if d <= max => Ok(d),
        // Infinite or beyond what a Duration holds: too long, like any value above the bound.
        _ => Err(format!(
            "'{s}' is more than {} seconds ({max_text})",
            max.as_secs()
        )),
    }
}

/// Parses `--max-line-bytes`: a limit of 0 would reject every line as too long, which is never
/// what was meant.
pub fn parse_line_limit(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "'{s}' is not a number of bytes >= 1 (a limit of 0 would reject every line)"
        )),
    }
}

impl IngestArgs {
    /// The configuration of a run of `tool`.
    pub fn config(&self, tool: &str) -> anyhow::Result<crate::ingest::IngestConfig> {
        let inputs: Vec<_> = (self.inputs.iter())
            .map(|p| crate::ingest::Input::from_arg(p))
            .collect();
        Ok(crate::ingest::IngestConfig {
            reading: self.reading.reading(tool, &inputs)?,
            inputs,
            max_line: self.max_line_bytes,
            settle: self.settle,
            take_partial: self.take_partial,
            from_start: self.from_start,
            rotated: self.rotated.clone(),
            rotate_wait: self.rotate_wait,
            rejects: self.rejects.clone(),
            batch_lines: self.batch_lines,
            progress: !self.quiet,
            stop: None,
        })
    }
}

/// Prints a warning for the user on stderr: `tool: warning: ...`.
pub fn warn(tool: &str) -> impl FnMut(String) + '_ {
    move |message| {
        let _ = writeln!(std::io::stderr().lock(), "{tool}: warning: {message}");
    }
}

/// Fails when no input of a one-time run can be read, before anything of `store` is created
/// or locked (see [`crate::ingest::check_inputs`]).
pub fn check_inputs(store: &std::path::Path, args: &IngestArgs) -> anyhow::Result<()> {
    let inputs: Vec<_> = (args.inputs.iter())
        .map(|p| crate::ingest::Input::from_arg(p))
        .collect();
    crate::ingest::check_inputs(&inputs, store.exists())
}

/// Makes the files of an ingest run as private as its logs (see [`crate::privacy`]): warns
/// about those of `outputs` that exist and are not, and masks every file the run creates.
/// `store` names the store's own files (`-wal`, `-shm`, `.checkpoint`, `.lock` beside it).
pub fn private_outputs(
    tool: &str,
    inputs: &[crate::ingest::Input],
    store: &std::path::Path,
    others: &[Option<&std::path::Path>],
) {
    let mode = crate::privacy::output_mode(inputs.iter().map(|input| match input {
        crate::ingest::Input::Stdin => None,
        crate::ingest::Input::File(path) => Some(path.as_path()),
    }));
    let beside = |suffix: &str| std::path::PathBuf::from(format!("{}{suffix}", store.display()));
    let mut outputs = vec![store.to_path_buf()];
    outputs.extend(["-wal", "-shm", ".checkpoint", ".lock"].map(beside));
    outputs.extend(others.iter().flatten().map(|p| p.to_path_buf()));
    let outputs: Vec<&std::path::Path> = outputs.iter().map(|p| p.as_path()).collect();
    crate::privacy::warn_if_wider(&outputs, mode, &mut warn(tool));
    crate::privacy::restrict_created_files(mode);
}

/// Takes the write lock of `store` for a one-time run, before the store is opened (its schema
/// is created or upgraded under the lock), to be held until the run ends.
pub fn lock_store(
    tool: &str,
    store: &std::path::Path,
    args: &IngestArgs,
) -> anyhow::Result<crate::lock::Lock> {
    let wait = if args.no_wait {
        crate::lock::Wait::Fail
    } else {
        crate::lock::Wait::Block
    };
    crate::lock::lock_store(store, tool, wait, None, &mut warn(tool))
}

/// Runs one ingest pass and reports it as the flags ask. Inputs that failed are named after
/// the summary, and make the exit status 2.
pub fn ingest(
    tool: &str,
    sink: &mut dyn crate::sink::Sink,
    (args, config): (&IngestArgs, &crate::ingest::IngestConfig),
) -> anyhow::Result<ExitCode> {
    let summary = crate::ingest::run(sink, config, &mut warn(tool))?;
    if args.json {
        let mut doc = summary.json();
        doc["output"] = sink.describe().into();
        println!("{doc}");
    } else if !args.quiet {
        let line = summary.line(tool, &sink.describe());
        let _ = writeln!(
            std::io::stderr().lock(),
            "{}",
            line.fit(crate::human::stderr_width())
        );
    }
    if summary.failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for (_, error) in &summary.failed {
        let _ = writeln!(std::io::stderr().lock(), "{tool}: error: {error}");
    }
    Ok(ExitCode::from(2))
}

/// Output format of the reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
    /// One self-contained page: inline CSS and SVG charts, no script, nothing fetched.
    Html,
}

/// The options `aggregate-csv` and `aggregate-db` share.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Reports to print, in order (default: all but rejects and times, which are asked for by
    /// name).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub report: Vec<crate::report::Section>,
    /// Rows per ranking; 0 for every row.
    #[arg(long, short = 'n', value_name = "N", default_value_t = 10)]
    pub top: usize,
    /// Only entries at or after this time: RFC 3339, a day (2024-01-05, today, yesterday:
    /// from its first second, in the --tz zone), or a span back from now (30m, 2h, 7d).
    // Hyphen values are taken so that `--since -2h` reaches `parse_time_arg`, which says what
    // is wrong with it, instead of clap reading `-2` as an unknown flag.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<String>,
    /// Only entries at or before this time: RFC 3339, a day (up to its last second, in the
    /// --tz zone), or a span back from now.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub until: Option<String>,
    /// Only these status codes (100-599) or classes (1xx-5xx). Values separated by commas
    /// are alternatives, here and in --ip and --method: `404,5xx` is either; a value after
    /// `!` is left out (`'!404'`), and with only such values every other status counts.
    #[arg(long, value_name = "CODES", allow_negative_numbers = true,
          value_parser = crate::report::filter::parse_statuses)]
    pub status: Option<Alternatives<crate::report::StatusFilter>>,
    /// Only URLs matching this regular expression, anywhere in the URL (anchor it with ^ and
    /// $ to match it whole); `!REGEX` leaves out the URLs it matches instead.
    #[arg(long, value_name = "REGEX", value_parser = crate::report::filter::parse_pattern)]
    pub url: Option<Alternatives<regex::Regex>>,
    /// Leave out URLs matching this regular expression (with --url: those it lets through).
    #[arg(long, value_name = "REGEX",
          value_parser = crate::report::filter::parse_excluded_pattern)]
    pub exclude_url: Option<Alternatives<regex::Regex>>,
    /// Only these clients: addresses and networks (10.0.0.0/8, 2001:db8::/32), or a client
    /// as stored when it is no address (a host name); `!` before one leaves it out.
    /// Addresses are compared as addresses: 2001:DB8::1 is 2001:db8::1, and an IPv4 client
    /// logged as ::ffff:1.2.3.4 is 1.2.3.4.
    #[arg(long, value_name = "IPS", value_parser = crate::report::filter::parse_ips)]
    pub ip: Option<Alternatives<crate::report::filter::IpFilter>>,
    /// Leave out these clients (addresses, networks or names, as --ip takes them).
    #[arg(long, value_name = "IPS", value_parser = crate::report::filter::parse_excluded_ips)]
    pub exclude_ip: Option<Alternatives<crate::report::filter::IpFilter>>,
    /// Only these request methods, without regard to case: `GET,POST`; `!GET` leaves one
    /// out; `-` is a line that names none.
    #[arg(long, value_name = "METHODS", value_parser = crate::report::filter::parse_methods)]
    pub method: Option<Alternatives<crate::report::filter::MethodFilter>>,
    /// Only user agents matching this regular expression, anywhere (`(?i)bot` ignores case);
    /// `!REGEX` leaves them out; a line without one is `-`.
    #[arg(long, value_name = "REGEX", value_parser = crate::report::filter::parse_pattern)]
    pub agent: Option<Alternatives<regex::Regex>>,
    /// Requests from crawlers, scanners and scripts (see the README's browsers report):
    /// counted with the others, left out, or counted alone.
    #[arg(long, value_enum, value_name = "WHICH", default_value_t = crate::report::filter::Crawlers::Include)]
    pub crawlers: crate::report::filter::Crawlers,
    /// Count URLs and referrers without their query string: /x.php?a=1 is /x.php (and --url
    /// sees it so). The same as parse-to-db --strip-query, which drops the query before it
    /// is stored: here the store keeps it, and only this report leaves it out.
    #[arg(long)]
    pub strip_query: bool,
    /// Extensions that make a URL a static file for the pages and static reports, replacing
    /// the default list (see the README): css,js,png...
    #[arg(long, value_name = "EXTS")]
    pub static_ext: Option<crate::report::StaticExtensions>,
    /// Time zone of days, hours and times: UTC, local (the machine's), an offset (+07:00) or
    /// an IANA name (Asia/Bangkok). It sets the traffic buckets, the days, hours and
    /// weekdays, the day of each unique visitor, the days of --since and --until, and how
    /// times are shown. Default: the log's own offset when all its lines were written in one
    /// (as the store recorded them), else UTC.
    #[arg(long, value_name = "ZONE", allow_hyphen_values = true,
          value_parser = crate::zone::Zone::parse)]
    pub tz: Option<crate::zone::Zone>,
    /// Which requests make unique visitors: all, or all but 4xx as GoAccess counts them by
    /// default.
    #[arg(long, value_enum, value_name = "RULE", default_value_t = crate::report::VisitorRule::All)]
    pub visitors: crate::report::VisitorRule,
    /// Time bucket of the traffic report (default: chosen from the time span).
    #[arg(long, value_enum)]
    pub bucket: Option<crate::report::Bucket>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
    /// Write the report to this file instead of standard output (made as private as the
    /// store, and whole or not at all).
    #[arg(long, short = 'o', value_name = "PATH")]
    pub output: Option<std::path::PathBuf>,
    /// Counting threads, 1 to 256 (default: one per core). Each reads every block of the
    /// store, so more threads than cores only add work.
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256), allow_negative_numbers = true)]
    pub threads: Option<u16>,
    /// Width of tables in columns [default: $COLUMNS, else the terminal's width, else 80].
    #[arg(long, value_name = "N", value_parser = parse_width)]
    pub width: Option<usize>,
    /// Colour tables: auto colours when stdout is a terminal and NO_COLOR is not set. JSON
    /// and CSV are never coloured.
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// Whether tables are coloured. `auto` colours only a terminal (a file or a pipe would keep
/// the escape codes), and not when `NO_COLOR` is set to anything but the empty string
/// (no-color.org) or the terminal is `dumb`; `always` and `never`, asked for on the command
/// line, win over the environment, as no-color.org has it.
fn use_color(
    choice: ColorChoice,
    terminal: bool,
    no_color: Option<&std::ffi::OsStr>,
    term: Option<&std::ffi::OsStr>,
) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            terminal && no_color.is_none_or(|v| v.is_empty()) && term.is_none_or(|t| t != "dumb")
        }
    }
}

/// Parses `--width`: from the narrowest to the widest table the renderer lays out.
fn parse_width(s: &str) -> Result<usize, String> {
    use crate::report::table::{MAX_WIDTH, MIN_WIDTH};
    match s.parse::<usize>() {
        Ok(n) if (MIN_WIDTH..=MAX_WIDTH).contains(&n) => Ok(n),
        _ => Err(format!(
            "'{s}' is not a number of columns from {MIN_WIDTH} to {MAX_WIDTH}"
        )),
    }
}

/// The width of tables: `--width`, else `$COLUMNS` (as `ls` reads it, and for scripts that
/// want a width without a terminal), else the terminal's when stdout is one, else 80.
/// `$COLUMNS` and the terminal are taken within the renderer's bounds.
fn table_width(flag: Option<usize>, columns: Option<&str>, terminal: Option<usize>) -> usize {
    use crate::report::table::{DEFAULT_WIDTH, MAX_WIDTH, MIN_WIDTH};
    let columns = columns.and_then(|c| c.trim().parse::<usize>().ok());
    flag.or(columns.filter(|&c| c > 0))
        .or(terminal.filter(|&w| w > 0))
        .unwrap_or(DEFAULT_WIDTH)
        .clamp(MIN_WIDTH, MAX_WIDTH)
}

impl ReportArgs {
    /// How tables are laid out for where stdout goes.
    pub fn table_options(&self) -> crate::report::table::Options {
        use std::io::IsTerminal;
        let stdout = std::io::stdout();
        let is_terminal = stdout.is_terminal();
        let terminal = (is_terminal)
            .then(|| terminal_size::terminal_size_of(&stdout))
            .flatten()
            .map(|(width, _)| usize::from(width.0));
        crate::report::table::Options {
            width: table_width(
                self.width,
                std::env::var("COLUMNS").ok().as_deref(),
                terminal,
            ),
            color: use_color(
                self.color,
                is_terminal,
                std::env::var_os("NO_COLOR").as_deref(),
                std::env::var_os("TERM").as_deref(),
            ),
        }
    }

    /// --since and --until, a day read in `zone`.
    #[allow(clippy::type_complexity)]
    fn times(
        &self,
        zone: &crate::zone::Zone,
    ) -> anyhow::Result<(
        Option<chrono::DateTime<chrono::Utc>>,
        Option<chrono::DateTime<chrono::Utc>>,
    )> {
        use crate::report::Edge;
        let now = chrono::Utc::now();
        let time = |arg: &Option<String>, flag: &str, edge: Edge| -> anyhow::Result<_> {
            arg.as_deref()
                .map(|s| {
                    crate::report::parse_time_arg(s, now, edge, zone)
                        .map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
                })
                .transpose()
        };
        Ok((
            time(&self.since, "since", Edge::Start)?,
            time(&self.until, "until", Edge::End)?,
        ))
    }

    /// The filters, with the days of --since and --until in `zone`.
    pub fn filters(&self, zone: &crate::zone::Zone) -> anyhow::Result<crate::report::Filters> {
        let (since, until) = self.times(zone)?;
        if let (Some(s), Some(u)) = (since, until)
            && s > u
        {
            anyhow::bail!(
                "--since {} is later than --until {}: no entry could match",
                crate::entry::Rfc3339(s),
                crate::entry::Rfc3339(u)
            );
        }
        Ok(crate::report::Filters {
            since,
            until,
            status: self.status.clone(),
            ip: self.ip.clone(),
            exclude_ip: self.exclude_ip.clone(),
            url: self.url.clone(),
            exclude_url: self.exclude_url.clone(),
            method: self.method.clone(),
            agent: self.agent.clone(),
            crawlers: self.crawlers,
            strip_query: self.strip_query,
        })
    }

    /// The query a store's reader answers: filters, reports, threads. `offsets` reads the
    /// offsets the store's lines were written in, which choose the zone when --tz does not
    /// (and only then).
    pub fn query(
        &self,
        offsets: impl FnOnce() -> anyhow::Result<crate::zone::LogOffsets>,
    ) -> anyhow::Result<crate::report::Query> {
        use crate::report::{Section, shard};
        let zone = match self.tz {
            Some(zone) => zone,
            None => {
                // A --since or --until that cannot be read is told before the store is read;
                // both are read again, and compared, in the store's zone. A store that cannot
                // be read does not hide a --since later than --until in UTC either.
                self.times(&crate::zone::Zone::Utc)?;
                match offsets() {
                    Ok(log) => log.zone(),
                    Err(e) => {
                        self.filters(&crate::zone::Zone::Utc)?;
                        return Err(e);
                    }
                }
            }
        };
        Ok(crate::report::Query {
            filters: self.filters(&zone)?,
            sections: match self.report.is_empty() {
                true => Section::DEFAULT.to_vec(),
                false => self.report.clone(),
            },
            threads: self
                .threads
                .map_or_else(shard::default_threads, usize::from),
            // A ranking of every key is one cut at no row: `usize::MAX`, which the table
            // titles "All URLs" rather than "Top 0 URLs".
            top: match self.top {
                0 => usize::MAX,
                n => n,
            },
            static_ext: self.static_ext.clone().unwrap_or_default(),
            zone,
            visitors: self.visitors,
        })
    }
}

/// Runs a report: gets the counts of the entries that pass the filters from `counts` (see
/// [`crate::read`]), renders as asked, writes to stdout.
pub fn report(
    tool: &str,
    args: &ReportArgs,
    store: Option<&std::path::Path>,
    offsets: impl FnOnce() -> anyhow::Result<crate::zone::LogOffsets>,
    counts: impl FnOnce(&crate::report::Query) -> anyhow::Result<crate::report::Counts>,
) -> anyhow::Result<ExitCode> {
    use crate::report::{csv, html, json, table};
    // A report says what its store holds: its file is no more readable than the store (it
    // replaces any file of that name, so an older one's mode does not matter). The umask is
    // set before the counting threads start.
    if let Some(output) = &args.output {
        let same = |a: &std::path::Path, b: &std::path::Path| {
            std::fs::canonicalize(a)
                .ok()
                .is_some_and(|a| std::fs::canonicalize(b).ok() == Some(a))
        };
        if store.is_some_and(|store| same(output, store)) {
            anyhow::bail!(
                "--output {} is the store itself: the report would replace it",
                output.display()
            );
        }
        crate::privacy::restrict_created_files(crate::privacy::output_mode([store]));
    }
    let query = args.query(offsets)?;
    let report = counts(&query)?.into_report(&query, args.bucket);
    if let Some(asked) = args.bucket
        && asked != report.bucket
        && query.sections.contains(&crate::report::Section::Traffic)
    {
        warn(tool)(format!(
            "traffic is shown per {}: per {} it would be more than {} rows",
            report.bucket.name(),
            asked.name(),
            crate::human::count(crate::report::MAX_TRAFFIC_ROWS as u64)
        ));
    }
    let sections = &query.sections[..];
    let bytes = match args.format {
        ReportFormat::Table => table::render(&report, sections, args.table_options()),
        ReportFormat::Json => json::render(&report, sections),
        ReportFormat::Csv => csv::render(&report, sections),
        ReportFormat::Html => html::render(&report, sections),
    };
    match &args.output {
        Some(path) => write_whole(path, &bytes)?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&bytes)?;
            stdout.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `bytes` to `path` through a temporary file beside it, renamed over it once whole:
/// a reader (a browser reloading the page) never sees half a report. The file is created
/// under the umask [`report`] set, so it is as private as the store.
fn write_whole(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context;
    let context = || format!("cannot write the report to {}", path.display());
    let name = path.file_name().with_context(context)?.to_string_lossy();
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        // The rename itself is on disk once its directory is.
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => std::path::Path::new("."),
        };
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.with_context(context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_become_durations_or_a_clear_refusal() {
        assert_eq!(parse_seconds("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_seconds("0.02"), Ok(Duration::from_millis(20)));
        assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
        assert_eq!(parse_seconds("-0"), Ok(Duration::ZERO));
        assert_eq!(
            parse_seconds("315360000"),
            Ok(MAX_SECONDS),
            "10 years is taken"
        );
        for arg in ["-1", "-0.5", "NaN", "nan", "-inf", "", "3s", " 3", "1,5"] {
            assert_eq!(
                parse_seconds(arg),
                Err(format!("'{arg}' is not a number of seconds >= 0")),
                "{arg:?}"
            );
        }
        // What used to overflow `Duration::from_secs_f64` later and panic.
        for arg in ["315360001", "1e20", "1e300", "inf", "infinity", "1e309"] {
            assert_eq!(
                parse_seconds(arg),
                Err(format!("'{arg}' is more than 315360000 seconds (10 years)")),
                "{arg:?}"
            );
        }
    }

    #[test]
    fn busy_timeout_stops_where_sqlite_milliseconds_do() {
        assert_eq!(parse_busy_timeout("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_busy_timeout("2147483.647"), Ok(MAX_BUSY_TIMEOUT));
        assert_eq!(
            parse_busy_timeout("2147484"),
            Err("'2147484' is more than 2147483 seconds (24 days)".to_string())
        );
        assert!(parse_busy_timeout("-1").is_err());
        // The longest one taken is one SQLite takes (rusqlite panics on a longer one).
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.busy_timeout(MAX_BUSY_TIMEOUT).unwrap();
    }

    #[test]
    fn tables_take_the_flag_then_columns_then_the_terminal_then_80() {
        assert_eq!(table_width(Some(100), Some("120"), Some(140)), 100);
        assert_eq!(table_width(None, Some("120"), Some(140)), 120);
        assert_eq!(table_width(None, None, Some(140)), 140);
        assert_eq!(table_width(None, None, None), 80);
        // A $COLUMNS that is no width, or a terminal that reports none, is passed over.
        for columns in ["", "wide", "0", "-5"] {
            assert_eq!(
                table_width(None, Some(columns), Some(90)),
                90,
                "{columns:?}"
            );
            assert_eq!(table_width(None, Some(columns), None), 80, "{columns:?}");
        }
        assert_eq!(table_width(None, None, Some(0)), 80);
        // Within what the renderer lays out.
        assert_eq!(table_width(None, Some("12"), None), 60);
        assert_eq!(table_width(None, None, Some(5000)), 1000);
        assert_eq!(parse_width("60"), Ok(60));
        assert!(parse_width("59").unwrap_err().contains("from 60 to 1000"));
        assert!(parse_width("1001").is_err());
        assert!(parse_width("wide").is_err());
    }

    #[test]
    fn colour_when_asked_or_on_a_terminal_that_wants_it() {
        use std::ffi::OsStr;
        let (set, empty, dumb, xterm) = (
            Some(OsStr::new("1")),
            Some(OsStr::new("")),
            Some(OsStr::new("dumb")),
            Some(OsStr::new("xterm-256color")),
        );
        assert!(use_color(ColorChoice::Auto, true, None, xterm));
        assert!(use_color(ColorChoice::Auto, true, None, None));
        assert!(
            use_color(ColorChoice::Auto, true, empty, xterm),
            "an empty NO_COLOR is unset"
        );
        assert!(
            !use_color(ColorChoice::Auto, false, None, xterm),
            "a pipe or a file"
        );
        assert!(!use_color(ColorChoice::Auto, true, set, xterm));
        assert!(!use_color(ColorChoice::Auto, true, None, dumb));
        assert!(
            use_color(ColorChoice::Always, false, set, dumb),
            "the flag wins"
        );
        assert!(!use_color(ColorChoice::Never, true, None, xterm));
    }

    #[test]
    fn a_line_limit_is_at_least_one_byte() {
        assert_eq!(parse_line_limit("1"), Ok(1));
        assert_eq!(parse_line_limit("1048576"), Ok(1 << 20));
        for arg in ["0", "-1", "1k", "", "1.5"] {
            assert_eq!(
                parse_line_limit(arg),
                Err(format!(
                    "'{arg}' is not a number of bytes >= 1 (a limit of 0 would reject every line)"
                )),
                "{arg:?}"
            );
        }
    }
}
