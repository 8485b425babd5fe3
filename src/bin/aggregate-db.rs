//! aggregate-db: reports from logs.db, or from ClickHouse (aggregate_db.py).

use std::process::ExitCode;

use clap::Parser;
use log_pipeline::cli::{self, ReportArgs};
use log_pipeline::store::{Db, Reports};

/// Print reports (status codes, top URLs, pages and static files, clients, agents, referrers
/// and their sites, methods, traffic over time, days, hours, weekdays, rejects, response
/// times) from the SQLite database written by parse-to-db or continuous-parse, opened
/// read-only: it works while they write; or from the ClickHouse database they write with
/// --db clickhouse://... aggregate-csv prints the same from a CSV.
#[derive(Parser)]
// The name, not the package's, so that `--version` says which tool this is.
#[command(name = "aggregate-db", version)]
struct Args {
    /// The database, as parse-to-db and continuous-parse name it: a SQLite file, or
    /// clickhouse://[user[:password]@]host[:port]/database [default: logs.db, or
    /// $CLICKHOUSE_URL when it is set].
    #[arg(long, value_name = "DB")]
    db: Option<String>,
    /// The database as the first argument, the way it was given before --db: kept so that
    /// scripts written then still work.
    #[arg(value_name = "PATH", hide = true, conflicts_with = "db")]
    db_arg: Option<String>,
    /// With a ClickHouse store: only the rows of these hosts (as parse-to-db --host named
    /// them), separated by commas.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    host: Vec<String>,
    /// With a ClickHouse store: the cluster whose shards hold the rows (as parse-to-db
    /// --cluster named it).
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
    /// Read the rows themselves, not the packed copy that parse-to-db and continuous-parse
    /// keep for reports: slower, and the same output (a cross-check).
    #[arg(long)]
    scan: bool,
    /// Serve the report as a live web page on ADDR (default 127.0.0.1:8080, this machine
    /// only) until Ctrl+C: it updates in place while continuous-parse writes. A page's query
    /// parameters are its options (?status=404&since=today); without any, these. No
    /// authentication: bind beyond loopback only where everyone who can reach it may read.
    #[arg(long, value_name = "ADDR", num_args = 0..=1,
          default_missing_value = log_pipeline::dashboard::DEFAULT_ADDR,
          conflicts_with_all = ["format", "output", "scan"])]
    serve: Option<std::net::SocketAddr>,
    #[command(flatten)]
    report: ReportArgs,
}

fn main() -> ExitCode {
    cli::main_with("aggregate-db", || {
        let args = Args::parse();
        let named = Db::named(args.db.as_deref().or(args.db_arg.as_deref()))?;
        let store = Reports::new(named, args.host, args.cluster)?;
        if let Some(addr) = args.serve {
            let stop = cli::stop_flag()?;
            let mut warn = cli::warn("aggregate-db");
            log_pipeline::dashboard::serve(store, addr, args.report, stop, &mut warn)?;
            return Ok(ExitCode::SUCCESS);
        }
        for host in store.unknown_hosts()? {
            cli::warn("aggregate-db")(format!(
                "--host {host}: no rows of this host (see the hosts report for their names)"
            ));
        }
        let offsets = || store.log_offsets();
        cli::report(
            "aggregate-db",
            &args.report,
            store.path(),
            offsets,
            |query| store.counts(query, !args.scan),
        )
    })
}
