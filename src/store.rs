//! The database a tool writes or reads: a SQLite file, the embedded default, or a ClickHouse
//! database for fleets of web servers (`--db clickhouse://...`, or `CLICKHOUSE_URL`).
//!
//! parse-to-db, continuous-parse and aggregate-db take the same `--db`, and turn it into a
//! [`Store`] before any work: the rest of the tools see a [`Sink`] to write and a reader to
//! count from, whichever it is.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;

use crate::checkpoint::fnv1a;
use crate::clickhouse::{Address, Tables};
use crate::entry::Rfc3339;
use crate::sink::Sink;
use crate::sink::clickhouse::ClickHouseSink;
use crate::sink::sqlite::SqliteSink;

/// `--db` as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Db {
    Sqlite(PathBuf),
    ClickHouse(Address),
}

impl Db {
    /// A `clickhouse://` address, else a SQLite path.
    pub fn parse(s: &str) -> Result<Db, String> {
        match Address::parse(s) {
            Some(address) => address.map(Db::ClickHouse),
            None => Ok(Db::Sqlite(PathBuf::from(s))),
        }
    }

    /// The database a tool was given (`--db`, or aggregate-db's older first argument), else
    /// `CLICKHOUSE_URL`, else `logs.db`. Read here, not by clap, which would print an address
    /// it cannot read whole, password and all.
    pub fn named(given: Option<&str>) -> anyhow::Result<Db> {
        if let Some(given) = given {
            return Db::parse(given).map_err(|e| anyhow::anyhow!("--db: {e}"));
        }
        match std::env::var("CLICKHOUSE_URL") {
            Ok(url) if !url.is_empty() => match Address::parse(&url) {
                Some(address) => (address.map(Db::ClickHouse))
                    .map_err(|e| anyhow::anyhow!("CLICKHOUSE_URL: {e}")),
                None => bail!("CLICKHOUSE_URL is set, but not to a clickhouse:// address"),
            },
            _ => Ok(Db::Sqlite(PathBuf::from("logs.db"))),
        }
    }
}

/// `--host` and `--cluster`, which only a ClickHouse store takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FleetArgs {
    /// With a ClickHouse store: the web server these lines come from, recorded in every row
    /// [default: this machine's host name]. Each host keeps its own progress.
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// With a ClickHouse store: the cluster (as the servers' remote_servers names it) whose
    /// shards share the rows, each host's on one shard. --db then names one server per shard:
    /// clickhouse://shard1:8123,shard2:8123/logs.
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
}

/// A store to write, ready to be locked and opened.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(PathBuf),
    ClickHouse {
        tables: Tables,
        /// The host whose rows and progress a writer keeps.
        host: String,
    },
}

impl Store {
    /// The store `--db` and the fleet options name. A host or cluster for a SQLite file is
    /// refused rather than ignored.
    pub fn new(db: Db, fleet: &FleetArgs) -> anyhow::Result<Store> {
        match db {
            Db::Sqlite(path) => {
                only_for_clickhouse(&path, fleet.host.is_some() || fleet.cluster.is_some())?;
                Ok(Store::Sqlite(path))
            }
            Db::ClickHouse(address) => {
                let host = match &fleet.host {
                    Some(host) => host.clone(),
                    None => crate::clickhouse::machine_host()?,
                };
                check_host(&host)?;
                Ok(Store::ClickHouse {
                    tables: Tables {
                        client: address.client(),
                        cluster: fleet.cluster.clone(),
                    },
                    host,
                })
            }
        }
    }

    /// The path the store's local lock files are named after: the SQLite file itself, or,
    /// for a ClickHouse host, a name in the temporary directory that every writer of that
    /// host into a database of that name on this machine shares, however it spells the
    /// server's address (`localhost`, `127.0.0.1`): two databases of one name on two servers
    /// only take turns needlessly.
    pub fn lock_path(&self) -> PathBuf {
        match self {
            Store::Sqlite(path) => path.clone(),
            Store::ClickHouse { tables, host } => {
                let database = &tables.client.address().database;
                let who = format!("{database}\0{host}");
                // Readable in the message of a writer that waits for it; the hash keeps two
                // hosts apart whose names differ only in what is left out.
                let readable: String = (host.chars())
                    .map(
                        |c| match c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                            true => c,
                            false => '_',
                        },
                    )
                    .take(64)
                    .collect();
                std::env::temp_dir().join(format!(
                    "log-pipeline-clickhouse-{database}-{readable}-{:016x}",
                    fnv1a(who.as_bytes())
                ))
            }
        }
    }

    /// The SQLite file, for what only a file has (permissions, an offset file to adopt).
    pub fn path(&self) -> Option<&Path> {
        match self {
            Store::Sqlite(path) => Some(path),
            Store::ClickHouse { .. } => None,
        }
    }

    /// The log format saved with the checkpoint of `source`, if the store can be read and has
    /// one (for `--log-format auto` on a log with no line yet).
    pub fn saved_format(&self, source: &str) -> Option<String> {
        match self {
            Store::Sqlite(path) => crate::sink::sqlite::saved_format(path, source),
            Store::ClickHouse { tables, host } => {
                crate::sink::clickhouse::saved_format(tables, host, source)
            }
        }
    }

    /// Opens the store for writing; the caller holds its lock. A follower (`follows`) waits
    /// for a ClickHouse server that cannot be reached yet; a one-time run fails at once.
    pub fn open(
        &self,
        busy_timeout: Duration,
        warn: &mut dyn FnMut(String),
        tool: &str,
        follows: bool,
    ) -> anyhow::Result<Writer> {
        Ok(match self {
            Store::Sqlite(path) => Writer::Sqlite(SqliteSink::open(path, busy_timeout, warn)?),
            Store::ClickHouse { tables, host } => {
                let tool = tool.to_owned();
                let notify = Box::new(move |m: String| crate::cli::warn(&tool)(m));
                Writer::ClickHouse(ClickHouseSink::open(tables.clone(), host, notify, follows)?)
            }
        })
    }
}

impl std::fmt::Display for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Store::Sqlite(path) => write!(f, "{}", path.display()),
            Store::ClickHouse { tables, host } => {
                write!(f, "{} (host {host})", tables.client.address())
            }
        }
    }
}

/// A host name that `aggregate-db --host` can name again: not empty, no comma (which separates
/// names there), no space at either end, no control character.
fn check_host(host: &str) -> anyhow::Result<()> {
    if host.is_empty() {
        bail!("the host name is empty: give one with --host");
    }
    if host.contains(',') || host.trim() != host || host.chars().any(char::is_control) {
        bail!(
            "--host {host:?}: a host name has no comma, no space at either end and no control \
             character (aggregate-db --host takes a list separated by commas)"
        );
    }
    Ok(())
}

/// Refuses `--host` and `--cluster` (`given`) for a SQLite file rather than ignore them.
fn only_for_clickhouse(path: &Path, given: bool) -> anyhow::Result<()> {
    if given {
        bail!(
            "--host and --cluster are for a ClickHouse store (--db clickhouse://...), not for \
             the SQLite file {}",
            path.display()
        );
    }
    Ok(())
}

/// A store to read reports from: aggregate-db's and its `--serve` page's.
#[derive(Debug, Clone)]
pub enum Reports {
    Sqlite(PathBuf),
    /// The rows of `hosts` (all without any).
    ClickHouse {
        tables: Tables,
        hosts: Vec<String>,
    },
}

impl Reports {
    /// The store aggregate-db's `--db`, `--host` and `--cluster` name.
    pub fn new(db: Db, hosts: Vec<String>, cluster: Option<String>) -> anyhow::Result<Reports> {
        let all = match db {
            Db::Sqlite(path) => {
                only_for_clickhouse(&path, cluster.is_some())?;
                Reports::Sqlite(path)
            }
            Db::ClickHouse(address) => Reports::ClickHouse {
                tables: Tables {
                    client: address.client(),
                    cluster,
                },
                hosts: Vec::new(),
            },
        };
        all.of_hosts(hosts)
    }

    /// The same store, for the rows of `hosts` (all without any): what a `--serve` page's
    /// `host` asks.
    pub fn of_hosts(&self, hosts: Vec<String>) -> anyhow::Result<Reports> {
        match self {
            Reports::Sqlite(path) => {
                only_for_clickhouse(path, !hosts.is_empty())?;
                Ok(Reports::Sqlite(path.clone()))
            }
            Reports::ClickHouse { tables, .. } => Ok(Reports::ClickHouse {
                tables: tables.clone(),
                // `web1, web2` as a shell user types it: a host name has no space at its ends.
                hosts: hosts.iter().map(|h| h.trim().to_owned()).collect(),
            }),
        }
    }

    /// Those of `--host` that have no row here (a misspelt name reports nothing at all).
    pub fn unknown_hosts(&self) -> anyhow::Result<Vec<String>> {
        match self {
            Reports::Sqlite(_) => Ok(Vec::new()),
            Reports::ClickHouse { tables, hosts } => {
                crate::read::clickhouse::unknown_hosts(tables, hosts)
            }
        }
    }

    /// The SQLite file, which a report written beside it must not replace.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Reports::Sqlite(path) => Some(path),
            Reports::ClickHouse { .. } => None,
        }
    }

    /// The offsets the stored entries were written in, as their writers recorded them.
    pub fn log_offsets(&self) -> anyhow::Result<crate::zone::LogOffsets> {
        match self {
            Reports::Sqlite(path) => crate::read::sqlite::log_offsets(path),
            Reports::ClickHouse { tables, hosts } => {
                crate::read::clickhouse::log_offsets(tables, hosts)
            }
        }
    }

    /// What tells whether the store changed (see [`Watch`]).
    pub fn watch(&self) -> anyhow::Result<Watch> {
        match self {
            Reports::Sqlite(path) => Ok(Watch::Sqlite(crate::read::sqlite::Changes::open(path)?)),
            Reports::ClickHouse { tables, .. } => Ok(Watch::ClickHouse(tables.clone())),
        }
    }

    /// The counts of the stored entries that pass the query's filters. `packed`: a SQLite
    /// store reads its packed copy where it has one (`--scan` reads the rows).
    pub fn counts(
        &self,
        query: &crate::report::Query,
        packed: bool,
    ) -> anyhow::Result<crate::report::Counts> {
        match self {
            Reports::Sqlite(path) => crate::read::sqlite::counts(path, query, packed),
            Reports::ClickHouse { tables, hosts } => {
                crate::read::clickhouse::counts(tables, hosts, query)
            }
        }
    }
}

/// What tells whether a store changed since a report of it was computed: the live page
/// computes a report again only then, or when the clock moved the query's `--since` or
/// `--until`.
pub enum Watch {
    Sqlite(crate::read::sqlite::Changes),
    ClickHouse(Tables),
}

impl Watch {
    /// A value that differs from the last one given when the stored rows changed since (and
    /// may differ when they did not).
    pub fn version(&mut self) -> anyhow::Result<String> {
        match self {
            Watch::Sqlite(changes) => changes.version(),
            Watch::ClickHouse(tables) => crate::read::clickhouse::version(tables),
        }
    }
}

/// An open store, written through [`Sink`].
// One per process: the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Writer {
    Sqlite(SqliteSink),
    ClickHouse(ClickHouseSink),
}

impl Writer {
    pub fn sink(&mut self) -> &mut dyn Sink {
        match self {
            Writer::Sqlite(s) => s,
            Writer::ClickHouse(s) => s,
        }
    }

    /// Before a run with `--retain`: SQLite overwrites what it frees from then on.
    pub fn erase_freed_space(&mut self) -> anyhow::Result<()> {
        match self {
            Writer::Sqlite(s) => s.erase_freed_space(),
            // Dropped partitions are deleted files: nothing of them stays in the table.
            Writer::ClickHouse(_) => Ok(()),
        }
    }

    /// `--retain`: removes what is older than `before` (whole days in ClickHouse). Returns
    /// what it removed, for the user, when it removed anything.
    pub fn retain(
        &mut self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<Option<String>> {
        let (n, what, edge) = match self {
            Writer::Sqlite(s) => (s.retain(before)?, "row", Rfc3339(before).to_string()),
            // Whole days: those before the edge's own.
            Writer::ClickHouse(s) => (s.retain(before)?, "day", before.date_naive().to_string()),
        };
        Ok((n > 0).then(|| {
            format!(
                "--retain: removed {} from before {edge}",
                crate::human::counted(n, what)
            )
        }))
    }
}
