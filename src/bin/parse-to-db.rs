//! parse-to-db: one pass over access logs into SQLite, exactly once (parse_to_db.py).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use log_pipeline::cli::{self, IngestArgs};
use log_pipeline::privacy::Retention;
use log_pipeline::sink::sqlite::SqliteSink;

/// Parse access logs into the `logs` table of a SQLite database. A re-run (from cron, say)
/// adds only the lines that arrived since the last run: progress is kept in the database,
/// committed together with the rows.
#[derive(Parser)]
// The name, not the package's, so that `--version` says which tool this is.
#[command(name = "parse-to-db", version)]
struct Args {
    /// The SQLite database (created when missing).
    #[arg(long, value_name = "PATH", default_value = "logs.db")]
    db: PathBuf,
    /// How long to wait for another writer to release the database.
    #[arg(long, default_value = "10", value_name = "SECS", value_parser = cli::parse_busy_timeout, allow_negative_numbers = true)]
    busy_timeout: Duration,
    /// After the pass, delete the rows older than this (30d, 12h, 2w; in steps of 1/720
    /// of it), with their packed copy, in one transaction.
    #[arg(long, value_name = "SPAN", value_parser = Retention::parse)]
    retain: Option<Retention>,
    #[command(flatten)]
    ingest: IngestArgs,
}

fn main() -> ExitCode {
    cli::main_with("parse-to-db", || {
        let args = Args::parse();
        cli::check_inputs(&args.db, &args.ingest)?;
        let config = args.ingest.config("parse-to-db")?;
        cli::private_outputs(
            "parse-to-db",
            &config.inputs,
            &args.db,
            &[args.ingest.rejects.as_deref()],
        );
        let _lock = cli::lock_store("parse-to-db", &args.db, &args.ingest)?;
        let mut sink =
            SqliteSink::open(&args.db, args.busy_timeout, &mut cli::warn("parse-to-db"))?;
        if args.retain.is_some() {
            sink.erase_freed_space()?;
        }
        let code = cli::ingest("parse-to-db", &mut sink, (&args.ingest, &config))?;
        if let Some(retention) = args.retain {
            sink.retain(retention.cutoff(chrono::Utc::now()))?;
        }
        Ok(code)
    })
}
