//! continuous-parse: follow a growing log into SQLite (or ClickHouse) like `tail -f`
//! (continuous_parse_logs.py).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use log_pipeline::cli;
use log_pipeline::follow::{self, FollowConfig};

/// Follow an access log as it grows and insert each new complete line into SQLite, exactly
/// once, through rotation, truncation and restarts. Runs until Ctrl+C (or SIGTERM), which
/// commits what was read and exits 0.
#[derive(Parser)]
// The name, not the package's, so that `--version` says which tool this is.
#[command(name = "continuous-parse", version)]
struct Args {
    /// The log to follow.
    #[arg(value_name = "LOG", default_value = "logs/access.log")]
    log: PathBuf,
    /// The database, shared with parse-to-db: a SQLite file (created when missing), or
    /// ClickHouse's HTTP interface, clickhouse://[user[:password]@]host[:port]/database.
    /// [default: logs.db, or $CLICKHOUSE_URL when it is set]
    #[arg(long, value_name = "DB")]
    db: Option<String>,
    #[command(flatten)]
    fleet: log_pipeline::store::FleetArgs,
    /// After each pass, delete the rows older than this (30d, 12h, 2w; in steps of 1/720
    /// of it), with their packed copy, in one transaction.
    #[arg(long, value_name = "SPAN", value_parser = log_pipeline::privacy::Retention::parse)]
    retain: Option<log_pipeline::privacy::Retention>,
    /// Where to mirror the committed offset for people and scripts [default: .offset beside
    /// the log]. Read at start when the database has no checkpoint yet.
    #[arg(long, value_name = "PATH")]
    offset_file: Option<PathBuf>,
    /// Drain what is there now, commit and exit (for cron).
    #[arg(long)]
    once: bool,
    /// Start from the first byte of the log, ignoring saved progress (rows already in the
    /// database stay, so lines taken before are added again).
    #[arg(long)]
    from_start: bool,
    /// Look at the file this often even without file-system events.
    #[arg(long, default_value = "1", value_name = "SECS", value_parser = cli::parse_seconds, allow_negative_numbers = true)]
    poll_interval: Duration,
    /// Do not use file-system events, only poll (NFS, WSL and other file systems without inotify).
    #[arg(long)]
    poll: bool,
    /// After a wake-up, wait this long for more lines before reading them as one batch.
    #[arg(long, default_value = "0.02", value_name = "SECS", value_parser = cli::parse_seconds, allow_negative_numbers = true)]
    linger: Duration,
    /// Commit at least every N lines under load.
    #[arg(long, default_value_t = 50_000, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    batch_lines: u64,
    /// Seconds between status lines on stderr.
    #[arg(long, default_value = "10", value_name = "SECS", value_parser = cli::parse_seconds, allow_negative_numbers = true)]
    status_interval: Duration,
    /// How long to wait for another writer to release the database.
    #[arg(long, default_value = "10", value_name = "SECS", value_parser = cli::parse_busy_timeout, allow_negative_numbers = true)]
    busy_timeout: Duration,
    /// Append rejected lines here, verbatim, as `source:line: reason: bytes`.
    #[arg(long, value_name = "PATH")]
    rejects: Option<PathBuf>,
    /// Reject lines longer than this many bytes.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES", value_parser = cli::parse_line_limit, allow_negative_numbers = true)]
    max_line_bytes: usize,
    /// Where logrotate puts a rotated log, besides `<log>.N[.gz]` and `<log>-DATE[.gz]` (a glob).
    #[arg(long, value_name = "GLOB")]
    rotated: Option<String>,
    /// After a rotation, keep reading the rotated file until it has not changed for this
    /// long: the server writes to it until it reopens its log.
    #[arg(long, default_value = "5", value_name = "SECS", value_parser = cli::parse_seconds, allow_negative_numbers = true)]
    rotate_wait: Duration,
    /// No start, status or stop lines (warnings and errors still go to stderr).
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    reading: cli::ReadingArgs,
}

fn main() -> ExitCode {
    cli::main_with("continuous-parse", || {
        let args = Args::parse();
        let offset_file = args.offset_file.unwrap_or_else(|| {
            args.log
                .parent()
                .map_or_else(|| PathBuf::from(".offset"), |dir| dir.join(".offset"))
        });
        let input = log_pipeline::ingest::Input::File(args.log.clone());
        let source = log_pipeline::ingest::source_key(&args.log);
        let store = log_pipeline::store::Store::new(
            log_pipeline::store::Db::named(args.db.as_deref())?,
            &args.fleet,
        )?;
        let reading = args.reading.reading_or_saved(
            "continuous-parse",
            std::slice::from_ref(&input),
            || store.saved_format(&source),
        )?;
        cli::private_outputs(
            "continuous-parse",
            std::slice::from_ref(&input),
            &store.lock_path(),
            &[Some(&offset_file), args.rejects.as_deref()],
        );
        let config = FollowConfig {
            log: args.log,
            store,
            offset_file,
            busy_timeout: args.busy_timeout,
            poll_interval: args.poll_interval,
            events: !args.poll,
            linger: args.linger,
            batch_lines: args.batch_lines,
            status_interval: args.status_interval,
            once: args.once,
            from_start: args.from_start,
            quiet: args.quiet,
            rejects: args.rejects,
            max_line: args.max_line_bytes,
            rotated: args.rotated,
            rotate_wait: args.rotate_wait,
            reading,
            retain: args.retain,
        };
        let stop = cli::stop_flag()?;
        follow::run(&config, stop, "continuous-parse")?;
        Ok(ExitCode::SUCCESS)
    })
}
