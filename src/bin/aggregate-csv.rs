//! aggregate-csv: reports from parsed_logs.csv (aggregate_csv.py).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use log_pipeline::cli::{self, ReportArgs};
use log_pipeline::read;

/// Print reports (status codes, top URLs, pages and static files, clients, agents, referrers
/// and their sites, methods, traffic over time, days, hours, weekdays, rejects, response
/// times) from a CSV written by parse-to-csv. aggregate-db prints the same from SQLite.
#[derive(Parser)]
// The name, not the package's, so that `--version` says which tool this is.
#[command(name = "aggregate-csv", version)]
struct Args {
    /// The CSV written by parse-to-csv (its -o/--output, also spelt --csv there).
    #[arg(long, value_name = "PATH", default_value = "parsed_logs.csv")]
    csv: PathBuf,
    /// The CSV as the first argument, the way it was given before --csv: kept so that
    /// scripts written then still work.
    #[arg(value_name = "PATH", hide = true, conflicts_with = "csv")]
    csv_arg: Option<PathBuf>,
    /// The rejected lines parse-to-csv wrote with --rejects, for `--report rejects`.
    #[arg(long, value_name = "PATH")]
    rejects: Option<PathBuf>,
    #[command(flatten)]
    report: ReportArgs,
}

fn main() -> ExitCode {
    cli::main_with("aggregate-csv", || {
        let args = Args::parse();
        let csv = args.csv_arg.as_ref().unwrap_or(&args.csv);
        let offsets = || Ok(read::csv::log_offsets(csv));
        cli::report("aggregate-csv", &args.report, Some(csv), offsets, |query| {
            read::csv::counts(csv, args.rejects.as_deref(), query)
        })
    })
}
