//! parse-to-db: one pass over access logs into SQLite (or ClickHouse), exactly once
//! (parse_to_db.py).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use log_pipeline::cli::{self, IngestArgs};
use log_pipeline::privacy::Retention;
use log_pipeline::store::{Db, FleetArgs, Store};

/// Parse access logs into the `logs` table of a SQLite database. A re-run (from cron, say)
/// adds only the lines that arrived since the last run: progress is kept in the database,
/// committed together with the rows. With --db clickhouse://..., the rows go to ClickHouse,
/// each host's with its own progress.
#[derive(Parser)]
// The name, not the package's, so that `--version` says which tool this is.
#[command(name = "parse-to-db", version)]
struct Args {
    /// The database: a SQLite file (created when missing), or ClickHouse's HTTP interface,
    /// clickhouse://[user[:password]@]host[:port]/database (its tables created when missing).
    /// [default: logs.db, or $CLICKHOUSE_URL when it is set]
    #[arg(long, value_name = "DB")]
    db: Option<String>,
    /// How long to wait for another writer to release the database.
    #[arg(long, default_value = "10", value_name = "SECS", value_parser = cli::parse_busy_timeout, allow_negative_numbers = true)]
    busy_timeout: Duration,
    /// After the pass, delete the rows older than this (30d, 12h, 2w; in steps of 1/720
    /// of it), with their packed copy, in one transaction.
    #[arg(long, value_name = "SPAN", value_parser = Retention::parse)]
    retain: Option<Retention>,
    #[command(flatten)]
    fleet: FleetArgs,
    #[command(flatten)]
    ingest: IngestArgs,
}

fn main() -> ExitCode {
    cli::main_with("parse-to-db", || {
        let args = Args::parse();
        let store = Store::new(Db::named(args.db.as_deref())?, &args.fleet)?;
        // A ClickHouse store is named after its address: its lock files are local.
        let local = store.lock_path();
        cli::check_inputs(&local, &args.ingest)?;
        let config = args.ingest.config("parse-to-db")?;
        cli::private_outputs(
            "parse-to-db",
            &config.inputs,
            &local,
            &[args.ingest.rejects.as_deref()],
        );
        let _lock = cli::lock_store("parse-to-db", &local, &args.ingest)?;
        let mut writer = store.open(
            args.busy_timeout,
            &mut cli::warn("parse-to-db"),
            "parse-to-db",
            false,
        )?;
        if args.retain.is_some() {
            writer.erase_freed_space()?;
        }
        let code = cli::ingest("parse-to-db", writer.sink(), (&args.ingest, &config))?;
        if let Some(retention) = args.retain
            && let Some(removed) = writer.retain(retention.cutoff(chrono::Utc::now()))?
            && !args.ingest.quiet
        {
            eprintln!("parse-to-db: {removed}");
        }
        Ok(code)
    })
}
