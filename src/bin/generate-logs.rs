//! generate-logs: append realistic access-log lines to a file, like generate_logs.py.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use log_pipeline::cli;
use log_pipeline::generate::{self, GenerateConfig, LogFormat};
use log_pipeline::human::{self, Line};

/// Append realistic Apache/Nginx access-log lines to a file: 10 lines every 5 seconds until
/// Ctrl+C, or --count lines as fast as possible.
#[derive(Parser)]
// The name, not the package's, so that `--version` says which tool this is.
#[command(name = "generate-logs", version)]
struct Args {
    /// The log file to append to (its directory is created if missing).
    #[arg(long, short, value_name = "PATH", default_value = "logs/access.log")]
    output: PathBuf,
    /// Lines written per batch in the default loop.
    #[arg(long, value_name = "N", default_value_t = 10)]
    lines_per_batch: u64,
    /// Seconds between batches (fractions allowed, 0 = no pause).
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = cli::parse_seconds, allow_negative_numbers = true)]
    interval: Duration,
    /// Write N lines as fast as possible, then exit.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Seed the random generator: the same seed gives the same lines (timestamps excepted
    /// unless --start is set too).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// First timestamp (RFC 3339, e.g. 2024-01-01T00:00:00Z); later ones advance on a
    /// simulated clock instead of following the wall clock.
    #[arg(long, value_name = "TIME", value_parser = parse_start)]
    start: Option<chrono::DateTime<chrono::Utc>>,
    /// Line format.
    #[arg(long, value_enum, default_value_t = Format::Combined)]
    format: Format,
    /// Print nothing on stderr.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Combined,
    Common,
}

fn parse_start(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    log_pipeline::entry::parse_rfc3339(s)
        .ok_or_else(|| format!("'{s}' is not an RFC 3339 time such as 2024-01-01T00:00:00Z"))
}

fn main() -> ExitCode {
    cli::main_with("generate-logs", || {
        let args = Args::parse();
        let config = GenerateConfig {
            output: args.output,
            lines_per_batch: args.lines_per_batch,
            interval: args.interval,
            count: args.count,
            seed: args.seed,
            start: args.start,
            format: match args.format {
                Format::Combined => LogFormat::Combined,
                Format::Common => LogFormat::Common,
            },
        };
        let stop = cli::stop_flag()?;
        let width = human::stderr_width();
        if !args.quiet && config.count.is_none() {
            let mut line = Line::new("generate-logs: appending");
            line.piece(human::counted(config.lines_per_batch, "line"));
            line.piece(format!("every {}s", config.interval.as_secs_f64()));
            line.path("to ", config.output.display());
            line.words("(Ctrl+C to stop)");
            eprintln!("{}", line.fit(width));
        }
        let written = generate::run(&config, &stop)?;
        if !args.quiet {
            let mut line = Line::new("generate-logs: wrote");
            line.piece(human::counted(written, "line"));
            line.path("to ", config.output.display());
            eprintln!("{}", line.fit(width));
        }
        Ok(ExitCode::SUCCESS)
    })
}
