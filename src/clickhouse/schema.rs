//! The tables of a ClickHouse database: one `logs` table for entries, rejects and the
//! writers' progress, its `Distributed` table over a cluster's shards, and the version.

use super::address::Address;
use super::http::{Client, Failure};
use super::sql::quote;

/// The version of our tables in a database; kept in the `log_pipeline` table. A program
/// refuses tables of a later version than its own, so it goes up only for a change that an
/// earlier program would get wrong. Columns that an earlier program may leave out of its
/// INSERTs (they name their columns) are [`ADDED`] without it.
pub const SCHEMA_VERSION: u32 = 1;

/// Columns added to version 1's table, each after which column: a writer adds those missing
/// when it opens the tables, so that the writers of a fleet can be updated one by one (the
/// rows of an older writer leave them 0).
/// - `byte_offset`, `file_dev`, `file_inode`: where each row was read, beside `source` and
///   `line` (which rejects always had).
const ADDED: &[(&str, &str)] = &[
    ("byte_offset", "line"),
    ("file_dev", "byte_offset"),
    ("file_inode", "file_dev"),
];

/// The columns of `logs`, in the order the writers send them. Rows of three kinds share the
/// table (see [`Kind`]) so that one INSERT, which the server applies whole or not at all,
/// carries a batch's entries, its rejects and the progress they make.
pub const COLUMNS: &[(&str, &str)] = &[
    ("host", "String"),
    ("seq", "UInt64"),
    ("kind", "UInt8"),
    ("day", "Date"),
    ("ip", "String"),
    ("ident", "Nullable(String)"),
    ("user", "Nullable(String)"),
    ("timestamp", "Int64"),
    ("method", "Nullable(String)"),
    ("url", "String"),
    ("protocol", "Nullable(String)"),
    ("status", "UInt16"),
    ("bytes", "Nullable(UInt64)"),
    ("referrer", "Nullable(String)"),
    ("user_agent", "Nullable(String)"),
    ("vhost", "Nullable(String)"),
    ("port", "Nullable(UInt16)"),
    ("response_time_us", "Nullable(UInt64)"),
    ("upstream_time_us", "Nullable(UInt64)"),
    ("forwarded_for", "Nullable(String)"),
    ("source", "String"),
    ("line", "UInt64"),
    ("byte_offset", "UInt64"),
    ("file_dev", "UInt64"),
    ("file_inode", "UInt64"),
    ("reason", "String"),
    ("state", "String"),
];

/// What a row of `logs` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A request.
    Entry = 0,
    /// A rejected line: `source`, `line`, `reason`, and its bytes in `url`.
    Reject = 1,
    /// The last row of each INSERT: the writer's progress after it, in `state` (see
    /// [`crate::sink::clickhouse`]).
    Progress = 2,
}

/// The tables of a database: `logs` (on each node), and with a cluster the `Distributed`
/// table `logs_all` over them, through which the tools read and write.
#[derive(Debug, Clone)]
pub struct Tables {
    pub client: Client,
    /// `--cluster`: the cluster's name in the servers' `remote_servers`.
    pub cluster: Option<String>,
}

impl Tables {
    /// The table the tools read and write: `logs`, or `logs_all` with a cluster.
    pub fn logs(&self) -> &'static str {
        match self.cluster {
            Some(_) => "logs_all",
            None => "logs",
        }
    }

    /// Creates the tables where missing (on every node of a cluster), or checks that those
    /// there are ours and of a version this program reads.
    pub fn create(&self) -> Result<(), Failure> {
        let address = self.client.address();
        if self.cluster.is_none() && address.nodes.len() > 1 {
            return Err(Failure::Invalid(format!(
                "{address}: several hosts are the nodes of a cluster: name it with --cluster"
            )));
        }
        self.refuse_one_shard()?;
        for node in address.node_clients() {
            // A refusal names the node; one worth trying again (a network error behind the
            // node, a timeout) stays one, so that a writer waits for the server, as it does
            // for its INSERTs.
            let at = |e: Failure| match e {
                Failure::Refused { .. } if !e.is_transient() => {
                    Failure::Invalid(format!("{}: {e}", node.address()))
                }
                e => e,
            };
            if let Some(cluster) = &self.cluster {
                // In the server's default database: ours may not exist yet.
                let shards = node
                    .in_default_database()
                    .query(&format!(
                        "SELECT count(DISTINCT shard_num) FROM system.clusters WHERE cluster = {}",
                        quote(cluster)
                    ))
                    .map_err(at)?;
                let shards = String::from_utf8_lossy(&shards).trim().to_owned();
                if shards == "0" {
                    return Err(Failure::Invalid(format!(
                        "{}: the server has no cluster {cluster:?} in its remote_servers",
                        node.address()
                    )));
                }
                if shards != address.nodes.len().to_string() {
                    return Err(Failure::Invalid(format!(
                        "{}: cluster {cluster:?} has {shards} shards, but --db names {} hosts: \
                         name one host per shard",
                        node.address(),
                        address.nodes.len()
                    )));
                }
            }
            create_on(&node, self.cluster.as_deref()).map_err(at)?;
        }
        // Every shard's table first, then the Distributed ones: an INSERT through one whose
        // columns a shard lacks would fail.
        let nodes = address.node_clients();
        for node in &nodes {
            add_columns(node, "logs")?;
        }
        if self.cluster.is_some() {
            for node in &nodes {
                add_columns(node, "logs_all")?;
            }
        }
        Ok(())
    }

    /// Refuses, without `--cluster`, a database that is one shard of a cluster (it holds the
    /// `Distributed` table): a writer would store its host a second time on this shard, a
    /// reader would report this shard's hosts alone, both without a word.
    fn refuse_one_shard(&self) -> Result<(), Failure> {
        if self.cluster.is_none() && has_table(&self.client, "logs_all")? {
            return Err(Failure::Invalid(format!(
                "{}: this database is a shard of a cluster (it has logs_all): name the cluster \
                 with --cluster, and every shard in --db",
                self.client.address()
            )));
        }
        Ok(())
    }

    /// Checks, for a reader, that the tables are there and ours.
    pub fn check(&self) -> Result<(), Failure> {
        let address = self.client.address();
        match &self.cluster {
            // Only the first would be read.
            None if address.nodes.len() > 1 => {
                return Err(Failure::Invalid(format!(
                    "{address}: several hosts are the nodes of a cluster: name it with --cluster"
                )));
            }
            None => self.refuse_one_shard()?,
            Some(cluster) => {
                let shards = self.client.in_default_database().query(&format!(
                    "SELECT count() FROM system.clusters WHERE cluster = {}",
                    quote(cluster)
                ))?;
                if String::from_utf8_lossy(&shards).trim() == "0" {
                    return Err(Failure::Invalid(format!(
                        "{address}: the server has no cluster {cluster:?} in its remote_servers"
                    )));
                }
            }
        }
        let version = self
            .client
            .query("SELECT max(version) FROM log_pipeline")
            .map_err(|e| match e {
                Failure::Refused { code: 81, .. } => Failure::Invalid(format!(
                    "{address}: the server has no database {} (parse-to-db or \
                     continuous-parse create it)",
                    address.database
                )),
                Failure::Refused { code: 60, .. } => Failure::Invalid(format!(
                    "{address}: no log-pipeline tables here (parse-to-db or continuous-parse \
                     create them)"
                )),
                Failure::Refused { .. } => Failure::Invalid(format!("{address}: {e}")),
                e => e,
            })?;
        check_version(address, &version)?;
        check_columns(&self.client, self.logs())
    }
}

fn check_version(address: &Address, version: &[u8]) -> Result<(), Failure> {
    let version: u32 = String::from_utf8_lossy(version).trim().parse().unwrap_or(0);
    if version > SCHEMA_VERSION {
        return Err(Failure::Invalid(format!(
            "{address}: the tables are of schema version {version}, newer than this program's \
             ({SCHEMA_VERSION}): use a newer log-pipeline"
        )));
    }
    Ok(())
}

fn has_table(client: &Client, table: &str) -> Result<bool, Failure> {
    // Asked in the server's default database: this one may not exist yet.
    let n = client.in_default_database().query(&format!(
        "SELECT count() FROM system.tables WHERE database = {} AND name = {}",
        quote(&client.address().database),
        quote(table)
    ))?;
    Ok(String::from_utf8_lossy(&n).trim() != "0")
}

/// The names of the columns of `table`.
fn columns_of(client: &Client, table: &str) -> Result<Vec<String>, Failure> {
    let have = client.query(&format!(
        "SELECT name FROM system.columns WHERE database = {} AND table = {} FORMAT TabSeparated",
        quote(&client.address().database),
        quote(table)
    ))?;
    Ok(String::from_utf8_lossy(&have)
        .lines()
        .map(str::to_owned)
        .collect())
}

/// Is `table` ours? A table of the same name without the columns of our first version belongs
/// to someone else, and is neither written nor read. (Readers need no later column.)
fn check_columns(client: &Client, table: &str) -> Result<(), Failure> {
    let address = client.address();
    let have = columns_of(client, table)?;
    let missing: Vec<&str> = COLUMNS
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !ADDED.iter().any(|(added, _)| added == name))
        .filter(|name| !have.iter().any(|h| h == name))
        .collect();
    if !missing.is_empty() {
        return Err(Failure::Invalid(format!(
            "{address}: table {table} is not log-pipeline's (it has no column {}): use \
             another database",
            missing.join(", ")
        )));
    }
    Ok(())
}

fn create_on(node: &Client, cluster: Option<&str>) -> Result<(), Failure> {
    let address = node.address();
    // The database may not exist yet: this one statement runs in the server's default.
    node.in_default_database().query(&format!(
        "CREATE DATABASE IF NOT EXISTS {}",
        address.database
    ))?;
    // Someone else's `logs` is refused before anything of ours is written beside it.
    if has_table(node, "logs")? {
        check_columns(node, "logs")?;
    }
    node.query(
        "CREATE TABLE IF NOT EXISTS log_pipeline (version UInt32, created DateTime) ENGINE = Log",
    )?;
    let version = node.query("SELECT max(version) FROM log_pipeline")?;
    check_version(address, &version)?;
    if String::from_utf8_lossy(&version).trim() == "0" {
        let empty = node.query("SELECT count() FROM log_pipeline")?;
        if String::from_utf8_lossy(&empty).trim() == "0" {
            node.query(&format!(
                "INSERT INTO log_pipeline VALUES ({SCHEMA_VERSION}, now())"
            ))?;
        }
    }
    let columns: Vec<String> = COLUMNS
        .iter()
        .map(|(name, ty)| format!("`{name}` {ty}"))
        .collect();
    // Partitioned by day so that --retain drops whole days; each INSERT is one day's
    // partition (see sink::clickhouse) so that the server writes it as one part, atomically.
    // Ordered by host, kind and seq: a writer finds its progress at once, a report for one
    // host reads that host's rows only.
    node.query(&format!(
        "CREATE TABLE IF NOT EXISTS logs ({}) ENGINE = MergeTree() PARTITION BY day \
         ORDER BY (host, kind, seq)",
        columns.join(", ")
    ))?;
    check_columns(node, "logs")?;
    if let Some(cluster) = cluster {
        // Rows go to the shard of their host: a writer's INSERT, all of one host, lands whole
        // on one shard.
        node.query(&format!(
            "CREATE TABLE IF NOT EXISTS logs_all AS logs ENGINE = Distributed({}, {}, logs, \
             cityHash64(host))",
            quote(cluster),
            quote(&address.database)
        ))?;
        check_columns(node, "logs_all")?;
    }
    Ok(())
}

/// Adds to `table` the [`ADDED`] columns it lacks. The rows it holds get their defaults (0).
/// Two writers may add them at once: a column the other added first is not an error.
fn add_columns(node: &Client, table: &str) -> Result<(), Failure> {
    let have = columns_of(node, table)?;
    for (name, after) in ADDED
        .iter()
        .filter(|(name, _)| !have.iter().any(|h| h == name))
    {
        let ty = COLUMNS.iter().find(|(n, _)| n == name).map(|(_, ty)| *ty);
        let ty = ty.expect("an added column is one of COLUMNS");
        let added = node.query(&format!(
            "ALTER TABLE {table} ADD COLUMN `{name}` {ty} AFTER `{after}`"
        ));
        if let Err(e) = added
            && !columns_of(node, table)?.iter().any(|have| have == name)
        {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use super::*;
    use crate::clickhouse::address::Address;

    /// Answers each request in turn with the next of `answers` (status and body), then stops.
    fn server_answering(answers: Vec<(u16, &'static str)>) -> (u16, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for (status, body) in answers {
                let (conn, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(conn);
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(n) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = n.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                reader.read_exact(&mut vec![0; length]).unwrap();
                let answer = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                reader.get_mut().write_all(answer.as_bytes()).unwrap();
            }
        });
        (port, server)
    }

    fn create_against(answers: Vec<(u16, &'static str)>) -> Result<(), Failure> {
        let (port, server) = server_answering(answers);
        let address = Address::parse(&format!("clickhouse://127.0.0.1:{port}/db"))
            .unwrap()
            .unwrap();
        let tables = Tables {
            client: address.client(),
            cluster: None,
        };
        let result = tables.create();
        // Not joined: a create that stopped asking early would leave it waiting for ever.
        drop(server);
        result
    }

    #[test]
    fn creating_the_tables_through_a_network_error_is_tried_again_not_refused() {
        // No `logs_all` here; then the server cannot reach something behind it.
        let network = "Code: 210, e.displayText() = DB::Exception: Net Exception: Connection reset by peer, e.what() = DB::Exception\n";
        match create_against(vec![(200, "0\n"), (500, network)]) {
            Err(failure @ Failure::Refused { code: 210, .. }) => assert!(failure.is_transient()),
            other => panic!("{other:?}"),
        }
        // A refusal for good names the node.
        let denied = "Code: 497, e.displayText() = DB::Exception: Not enough privileges, e.what() = DB::Exception\n";
        match create_against(vec![(200, "0\n"), (500, denied)]) {
            Err(Failure::Invalid(message)) => {
                assert!(message.starts_with("clickhouse://127.0.0.1:"), "{message}");
                assert!(message.contains("Not enough privileges"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
