//! aggregate-csv: reports from parsed_logs.csv (aggregate_csv.py).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use log_pipeline::cli::{self, ReportArgs};
use log_pipeline::report;

/// Print reports (status codes, top URLs, clients, agents, referrers, methods, traffic over
/// time) from a CSV written by parse-to-csv. aggregate-db prints the same from SQLite.
#[derive(Parser)]
// The name, not the package's, so that `--version` says which tool this is.
#[command(name = "aggregate-csv", version)]
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
        cli::report(&args.report, |filters| report::from_csv(&args.csv, filters))
    })
}
