//! aggregate-csv: reports from parsed_logs.csv (aggregate_csv.py).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use log_pipeline::cli::{self, ReportArgs};
use log_pipeline::read;

/// Print reports (status codes, top URLs, clients, agents, referrers, methods, traffic over
/// time) from a CSV written by parse-to-csv. aggregate-db prints the same from SQLite.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The CSV written by parse-to-csv.
    #[arg(default_value = "parsed_logs.csv")]
    csv: PathBuf,
    #[command(flatten)]
    report: ReportArgs,
}

fn main() -> ExitCode {
    cli::main_with("aggregate-csv", || {
        let args = Args::parse();
        cli::report(&args.report, |query| read::csv::counts(&args.csv, query))
    })
}
