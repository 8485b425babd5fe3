//! parse-to-csv: one pass over access logs into a CSV file, exactly once (parse_logs.py).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use log_pipeline::cli::{self, IngestArgs};
use log_pipeline::sink::csv::CsvSink;

/// Parse access logs into a CSV file. A re-run (from cron, say) adds only the lines that
/// arrived since the last run: progress is kept in `<output>.checkpoint`.
#[derive(Parser)]
// The name, not the package's, so that `--version` says which tool this is.
#[command(name = "parse-to-csv", version)]
struct Args {
    /// The CSV file to append to (created with a header when new). Also --csv, the flag
    /// aggregate-csv reads it with.
    #[arg(
        long,
        short,
        visible_alias = "csv",
        value_name = "PATH",
        default_value = "parsed_logs.csv"
    )]
    output: PathBuf,
    /// Prefix values that start with = + - @ with ' so spreadsheets do not run them as
    /// formulas. Use it for CSVs that people open in Excel or LibreOffice, not for CSVs that
    /// aggregate-csv or other programs read.
    #[arg(long)]
    safe_spreadsheet: bool,
    #[command(flatten)]
    ingest: IngestArgs,
}

fn main() -> ExitCode {
    cli::main_with("parse-to-csv", || {
        let args = Args::parse();
        cli::check_inputs(&args.output, &args.ingest)?;
        let config = args.ingest.config("parse-to-csv")?;
        cli::private_outputs(
            "parse-to-csv",
            &config.inputs,
            &args.output,
            &[args.ingest.rejects.as_deref()],
        );
        let _lock = cli::lock_store("parse-to-csv", &args.output, &args.ingest)?;
        let mut sink = CsvSink::open(
            &args.output,
            args.safe_spreadsheet,
            config.reading.format.has_extra_fields(),
            &mut cli::warn("parse-to-csv"),
        )?;
        cli::ingest("parse-to-csv", &mut sink, (&args.ingest, &config))
    })
}
