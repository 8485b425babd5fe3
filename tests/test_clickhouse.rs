//! The ClickHouse store against real servers: Debian's `clickhouse-server`, started here as
//! throwaway servers (own config, data in the test's directory, loopback ports), one alone or
//! two as the shards of a cluster. Without the program the tests say SKIPPED, except under
//! CI, which installs it.
//!
//! `.ci/run` also starts a two-shard cluster of its own (`.ci/clickhouse-cluster`) and names
//! it in [`CLUSTER_VARIABLE`]: the two-shard cases that need no server killed run on it, each
//! after dropping its databases there. The fleet case, which kills and restarts a shard, and
//! every single-server case (one of them needs a second user) start servers of their own.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use log_pipeline::clickhouse::{Address, Client};

use crate::workdir::{Running, Workdir, bin_path, numbered_lines, programs_or_skip, wait_until};

fn server_program() -> Option<PathBuf> {
    programs_or_skip(
        &["clickhouse-server"],
        "apt-get install clickhouse-server clickhouse-client",
    )
    .map(|mut found| found.remove(0))
}

/// A test's directory and a server of its own in it, or `None` (the tests say SKIPPED)
/// without the program.
fn with_server() -> Option<(Workdir, Servers)> {
    let program = server_program()?;
    let wd = Workdir::new();
    let servers = Servers::start(&wd, &program, 1);
    Some((wd, servers))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One throwaway server.
struct Server {
    program: PathBuf,
    dir: PathBuf,
    http: u16,
    process: Option<Running>,
}

impl Server {
    fn config(&self, tcp: u16, inter: u16, remote: &str) -> String {
        let dir = self.dir.display();
        format!(
            r#"<yandex>
  <logger><level>warning</level><log>{dir}/server.log</log><errorlog>{dir}/error.log</errorlog></logger>
  <http_port>{}</http_port><tcp_port>{tcp}</tcp_port>
  <interserver_http_port>{inter}</interserver_http_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{dir}/data/</path><tmp_path>{dir}/tmp/</tmp_path>
  <users_config>{dir}/users.xml</users_config>
  <default_profile>default</default_profile><default_database>default</default_database>
  <mark_cache_size>5368709</mark_cache_size>
  <remote_servers>{remote}</remote_servers>
</yandex>
"#,
            self.http
        )
    }

    /// Starts the server and waits until it answers. A server that exits at start gives its
    /// error log: a port taken since it was chosen (a client's connection can be given any
    /// free port) is worth another try, anything else fails the test.
    fn start(&mut self) -> Result<(), String> {
        let mut cmd = std::process::Command::new(&self.program);
        cmd.arg(format!("--config-file={}/config.xml", self.dir.display()))
            .current_dir(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("stderr")).unwrap());
        self.process = Some(Running::spawn(&mut cmd));
        let client = self.client("default");
        let process = self.process.as_mut().unwrap();
        let mut exited = None;
        wait_until("clickhouse-server to answer", || {
            exited = process.try_wait();
            exited.is_some() || client.query("SELECT 1").is_ok()
        });
        let Some(status) = exited else {
            return Ok(());
        };
        self.process = None;
        let log = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        if log.contains("already in use") {
            return Err(log);
        }
        panic!("clickhouse-server exited at start ({status}):\n{log}");
    }

    /// Starts it again on its ports, once the one that was killed has let them go.
    fn restart(&mut self) {
        wait_until("the server's ports to be free again", || {
            self.start().is_ok()
        });
    }

    /// Killed at once, as a crash or a power cut would.
    fn kill(&mut self) {
        drop(self.process.take());
    }

    fn client(&self, database: &str) -> Client {
        Address::parse(&format!("clickhouse://127.0.0.1:{}/{database}", self.http))
            .unwrap()
            .unwrap()
            .client()
    }
}

const USERS: &str = r#"<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users>
    <default><password></password><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota></default>
    <ann><password>s3cret</password><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota></ann>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
"#;

/// The HTTP addresses (`127.0.0.1:port,127.0.0.1:port`: on loopback, as the tests' own
/// servers) of the two shards of the cluster `fleet` that `.ci/clickhouse-cluster` started.
const CLUSTER_VARIABLE: &str = "LOG_PIPELINE_CLICKHOUSE_CLUSTER";

/// One server, or two as the shards of cluster `fleet`.
struct Servers {
    servers: Vec<Server>,
}

impl Servers {
    /// One server of this test's own, or two shards: those of [`CLUSTER_VARIABLE`] when set
    /// (under CI it must be: `.ci/run` sets it), with `databases` dropped on both so that the
    /// test starts empty, else servers of its own. For a test that kills no server.
    fn alone_or_cluster(
        wd: &Workdir,
        program: &Path,
        shards: usize,
        databases: &[&str],
    ) -> Servers {
        let cluster = std::env::var(CLUSTER_VARIABLE).ok();
        if shards == 1 || cluster.is_none() {
            assert!(
                shards == 1 || !crate::workdir::in_ci(),
                "{CLUSTER_VARIABLE} is not set, and CI is: .ci/run starts the cluster"
            );
            return Servers::start(wd, program, shards);
        }
        let servers: Vec<Server> = (cluster.unwrap().split(','))
            .map(|node| Server {
                program: program.to_owned(),
                dir: wd.path("ci-cluster"),
                http: (node.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
                    .unwrap_or_else(|| panic!("{CLUSTER_VARIABLE}: {node} is not host:port")),
                process: None,
            })
            .collect();
        assert_eq!(servers.len(), 2, "{CLUSTER_VARIABLE} names two shards");
        for server in &servers {
            for database in databases {
                let drop = format!("DROP DATABASE IF EXISTS {database}");
                server.client("default").query(&drop).unwrap();
            }
        }
        eprintln!("two shards: the cluster of {CLUSTER_VARIABLE}");
        Servers { servers }
    }

    fn start(wd: &Workdir, program: &Path, shards: usize) -> Servers {
        loop {
            if let Some(servers) = Servers::try_start(wd, program, shards) {
                return servers;
            }
        }
    }

    /// Servers on free ports, or `None` when one of the ports was taken before its server
    /// could listen on it (then the others are stopped, and new ports are needed).
    fn try_start(wd: &Workdir, program: &Path, shards: usize) -> Option<Servers> {
        let ports: Vec<(u16, u16, u16)> = (0..shards)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let remote = match shards {
            1 => String::new(),
            _ => {
                let each: String = ports
                    .iter()
                    .map(|(_, tcp, _)| {
                        format!(
                            "<shard><replica><host>127.0.0.1</host><port>{tcp}</port></replica></shard>"
                        )
                    })
                    .collect();
                format!("<fleet>{each}</fleet>")
            }
        };
        let mut servers = Vec::new();
        for &(http, tcp, inter) in &ports {
            // Servers of their own: a later set in the same test starts empty.
            let dir = wd.path(&format!("clickhouse-{http}"));
            std::fs::create_dir_all(&dir).unwrap();
            let server = Server {
                program: program.to_owned(),
                dir: dir.clone(),
                http,
                process: None,
            };
            std::fs::write(dir.join("config.xml"), server.config(tcp, inter, &remote)).unwrap();
            std::fs::write(dir.join("users.xml"), USERS).unwrap();
            servers.push(server);
        }
        for server in &mut servers {
            server.start().ok()?;
        }
        Some(Servers { servers })
    }

    /// `--db` for `database` on these servers (every shard's, for a cluster).
    fn url(&self, database: &str) -> String {
        let nodes: Vec<String> = (self.servers.iter())
            .map(|s| format!("127.0.0.1:{}", s.http))
            .collect();
        format!("clickhouse://{}/{database}", nodes.join(","))
    }

    /// The options that name the store: `--db`, and `--cluster` with two shards.
    fn store_args(&self, database: &str) -> Vec<String> {
        let mut args = vec!["--db".to_owned(), self.url(database)];
        if self.servers.len() > 1 {
            args.extend(["--cluster".to_owned(), "fleet".to_owned()]);
        }
        args
    }

    /// The table the rows are read from: `logs`, or the Distributed table over the shards.
    fn table(&self) -> &'static str {
        match self.servers.len() {
            1 => "logs",
            _ => "logs_all",
        }
    }

    fn query(&self, database: &str, sql: &str) -> String {
        let answer = self.servers[0].client(database).query(sql).unwrap();
        String::from_utf8(answer).unwrap()
    }
}

fn strings(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// `aggregate-db --format json` over every report, from `store`.
fn all_reports(wd: &Workdir, store: &[&str], extra: &[&str]) -> String {
    let all = "summary,status,urls,pages,static,not-found,clients,agents,browsers,os,devices,\
               referrers,sites,methods,traffic,days,hours,weekdays,rejects,times";
    reports(wd, store, &[&["--report", all], extra].concat())
}

/// Reports the server counts: those that need no single request, which it groups (with
/// filters that a group must not straddle: times within a minute, and the others on the
/// keys); and, without filters but the times, the status and the method, visitors and
/// clients too (uniqExact), in a zone of one offset.
const ON_SERVER: &[&[&str]] = &[
    &[],
    &["--status", "2xx,!206,404", "--method", "get,-"],
    &[
        "--status",
        "!3xx",
        "--method",
        "!POST",
        "--visitors",
        "goaccess",
    ],
    &["--visitors", "goaccess", "--tz", "+05:30"],
    &["-n", "3", "--report", "clients,urls,summary"],
    &[
        "--since",
        "1995-08-01T04:10:30Z",
        "--until",
        "1995-08-01T07:00:10Z",
        "--tz",
        "-04:00",
    ],
    &[
        "--report",
        "status,traffic,hours,weekdays,not-found,agents,referrers,sites,methods,rejects",
    ],
    &[
        "--report",
        "status,traffic,methods",
        "--since",
        "1995-08-01T04:10:30Z",
        "--until",
        "1995-08-01T07:00:10Z",
        "--tz",
        "Asia/Kolkata",
    ],
    &[
        "--report",
        "not-found,agents,sites",
        "--status",
        "!200",
        "--method",
        "GET,-",
        "--url",
        "!^/images",
        "--strip-query",
        "--crawlers",
        "exclude",
    ],
    &["--report", "status", "--ip", "!10.0.0.0/8"],
    // Visitors under filters only the counter applies: the values of their column that pass
    // are listed in the server's query.
    &[
        "--agent",
        "Firefox|MSIE",
        "--report",
        "summary,urls,clients,agents,days",
    ],
    &[
        "--crawlers",
        "exclude",
        "--ip",
        "!10.0.0.0/8,!2001:db8::/32",
        "--visitors",
        "goaccess",
    ],
    &[
        "--url",
        "^/(images|shuttle)",
        "--exclude-url",
        "\\.gif$",
        "-n",
        "5",
    ],
    &[
        "--crawlers",
        "only",
        "--tz",
        "Europe/Paris",
        "--status",
        "!404",
    ],
    &[
        "--ip",
        "199.0.0.0/8,2001:db8::/32",
        "--report",
        "summary,clients,urls",
    ],
    // URLs without their query string: the server maps those that have one.
    &["--strip-query", "--report", "summary,urls,pages,static"],
    &[
        "--strip-query",
        "--url",
        "^/(images|shuttle|$)",
        "--report",
        "urls",
        "-n",
        "5",
    ],
];

/// Writes `text` as `log` and parses it into the SQLite file `db` and, as host `w`, into
/// `database` on `servers`; returns the options that name the ClickHouse store.
fn into_both(
    wd: &Workdir,
    (log, text): (&str, &str),
    (db, servers, database): (&str, &Servers, &str),
) -> Vec<String> {
    wd.write(log, text);
    wd.cmd("parse-to-db")
        .args([log, "--db", db, "-q"])
        .assert()
        .success();
    let store = servers.store_args(database);
    wd.cmd("parse-to-db")
        .args([log, "-q", "--host", "w"])
        .args(strings(&store))
        .assert()
        .success();
    store
}

/// Asserts that each of `sets` of arguments gives the same reports (as JSON) from `store` as
/// from the SQLite file `db` of the same lines.
fn same_as_sqlite(wd: &Workdir, store: &[&str], db: &str, sets: &[&[&str]]) {
    for args in sets {
        assert_eq!(
            json(&reports(wd, store, args)),
            json(&reports(wd, &["--db", db], args)),
            "{args:?}"
        );
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

/// A report's JSON without its `host` filter (which only a ClickHouse store takes), once
/// checked that it names `hosts`.
fn without_host(report: &str, hosts: &str) -> serde_json::Value {
    let mut doc = json(report);
    let filters = doc["filters"].as_object_mut().unwrap();
    assert_eq!(filters.remove("host"), Some(serde_json::json!(hosts)));
    doc
}

/// `aggregate-db --format json` with `args` (and `-n 0` unless they give `-n`), from `store`.
fn reports(wd: &Workdir, store: &[&str], args: &[&str]) -> String {
    let top: &[&str] = match args.contains(&"-n") {
        true => &[],
        false => &["-n", "0"],
    };
    let out = wd
        .cmd("aggregate-db")
        .args(store)
        .args(["--format", "json"])
        .args(top)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aggregate-db {store:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn reports_from_clickhouse_equal_those_from_sqlite_alone_and_in_two_shards() {
    let Some(program) = server_program() else {
        return;
    };
    let wd = Workdir::new();
    // Real logs, with their rejects, and the generator's lines (the response times have a
    // test of their own).
    let real = crate::workdir::real_logs_dir();
    let mut logs: Vec<PathBuf> = [
        "nasa-aug95-first20k_dbai-labs.log",
        "elastic-examples_apache_logs.log",
        "crowdsec-hub_nginx-http-malformed.log",
    ]
    .iter()
    .map(|n| real.join(n))
    .filter(|p| p.exists())
    .collect();
    assert_eq!(logs.len(), 3, "real logs missing in {}", real.display());
    wd.cmd("generate-logs")
        .args([
            "--count",
            "5000",
            "--seed",
            "7",
            "--start",
            "2024-03-01T00:00:00Z",
            "-q",
        ])
        .args(["-o", "gen.log"])
        .assert()
        .success();
    logs.push(wd.path("gen.log"));
    let logs: Vec<&str> = logs.iter().map(|p| p.to_str().unwrap()).collect();
    wd.cmd("parse-to-db")
        .args(&logs)
        .args(["--db", "all.db", "-q"])
        .assert()
        .success();
    let sqlite = all_reports(&wd, &["--db", "all.db"], &[]);

    for shards in [1, 2] {
        let servers = Servers::alone_or_cluster(&wd, &program, shards, &["web"]);
        let store = servers.store_args("web");
        // Two hosts (one on each shard of two): the first log from one, the rest from the
        // other.
        wd.cmd("parse-to-db")
            .arg(logs[0])
            .args(strings(&store))
            .args(["--host", "one", "-q"])
            .assert()
            .success();
        wd.cmd("parse-to-db")
            .args(&logs[1..])
            .args(strings(&store))
            .args(["--host", "two", "-q"])
            .assert()
            .success();
        if shards > 1 {
            // One shard named alone is refused: its host would be stored a second time
            // there, and a report would count that shard's hosts alone.
            let one = format!("clickhouse://127.0.0.1:{}/web", servers.servers[0].http);
            for (tool, args) in [
                ("parse-to-db", vec![logs[0], "--host", "one", "--db", &one]),
                ("aggregate-db", vec!["--db", &one]),
            ] {
                let out = wd.cmd(tool).args(&args).output().unwrap();
                assert_eq!(out.status.code(), Some(2), "{tool}");
                let said = String::from_utf8_lossy(&out.stderr);
                assert!(said.contains("is a shard of a cluster"), "{tool}: {said}");
            }
        }
        let both = all_reports(&wd, &strings(&store), &[]);
        assert_eq!(
            both, sqlite,
            "{shards} shard(s): ClickHouse and SQLite disagree"
        );
        for args in ON_SERVER {
            assert_eq!(
                reports(&wd, &strings(&store), args),
                reports(&wd, &["--db", "all.db"], args),
                "{shards} shard(s), {args:?}"
            );
        }
        // --host is a filter: the first host alone is the first log alone; both, as a shell
        // user may type them, are all.
        let one = all_reports(&wd, &strings(&store), &["--host", "one"]);
        let one = without_host(&one, "one");
        assert_eq!(
            without_host(
                &all_reports(&wd, &strings(&store), &["--host", "one, two"]),
                "one,two"
            ),
            json(&sqlite)
        );
        wd.cmd("parse-to-db")
            .arg(logs[0])
            .args(["--db", "one.db", "-q"])
            .assert()
            .success();
        assert_eq!(one, json(&all_reports(&wd, &["--db", "one.db"], &[])));
        // The hits of each host, through the filters, are those of its logs alone.
        let requests = |store: &[&str], args: &[&str]| -> u64 {
            let doc: serde_json::Value = serde_json::from_str(&reports(
                &wd,
                store,
                &[&["--report", "summary"], args].concat(),
            ))
            .unwrap();
            doc["summary"]["requests"].as_u64().unwrap()
        };
        for filter in [
            &[][..],
            &["--status", "!404", "--since", "1995-08-01T04:10:30Z"],
        ] {
            let doc: serde_json::Value = serde_json::from_str(&reports(
                &wd,
                &strings(&store),
                &[&["--report", "hosts"], filter].concat(),
            ))
            .unwrap();
            let hits = |host: &str| {
                let rows = doc["hosts"].as_array().unwrap();
                let row = rows.iter().find(|r| r["host"] == host).unwrap();
                row["hits"].as_u64().unwrap()
            };
            let one = requests(&["--db", "one.db"], filter);
            assert_eq!(hits("one"), one, "{filter:?}");
            assert_eq!(
                hits("two"),
                requests(&["--db", "all.db"], filter) - one,
                "{filter:?}"
            );
        }
        if shards == 2 {
            // Each host's rows are on one shard, and both shards hold some.
            let on = |i: usize| {
                let c = servers.servers[i].client("web");
                String::from_utf8(
                    c.query("SELECT DISTINCT host FROM logs ORDER BY host")
                        .unwrap(),
                )
                .unwrap()
            };
            let (a, b) = (on(0), on(1));
            assert!(!a.is_empty() && !b.is_empty(), "shards: {a:?} {b:?}");
            assert_eq!(format!("{a}{b}").lines().count(), 2, "{a:?} {b:?}");
        }
        std::fs::remove_file(wd.path("one.db")).unwrap();
    }
}

#[test]
fn a_writer_killed_while_it_sends_an_insert_stores_nothing_of_it() {
    let Some((wd, servers)) = with_server() else {
        return;
    };
    // One batch of many lines: one INSERT that takes a while to send.
    wd.write("big.log", numbered_lines(0, 3000).repeat(80));
    let store = servers.store_args("db");
    let client = servers.servers[0].client("default");
    let mut killed_mid_insert = 0;
    for attempt in 0..10 {
        let mut writer = wd.spawn(
            "parse-to-db",
            &[
                "big.log",
                &store[0],
                &store[1],
                "--host",
                "h",
                "--batch-lines",
                "1000000",
                "-q",
            ],
        );
        // Until its INSERT is running on the server (observed), then SIGKILL.
        let mut running = false;
        wait_until("the INSERT to start, or the writer to finish", || {
            let n = client
                .query("SELECT count() FROM system.processes WHERE query_id LIKE 'log-pipeline-%'")
                .map(|a| String::from_utf8_lossy(&a).trim() != "0")
                .unwrap_or(false);
            running = n;
            n || writer.try_wait().is_some()
        });
        let status = writer.signal_and_wait("-KILL");
        if running && status.code().is_none() {
            killed_mid_insert += 1;
        }
        // Whatever the server had of it: nothing, or the whole batch, never a part.
        wait_until("the server to finish with the INSERT", || {
            client
                .query("SELECT count() FROM system.processes WHERE query_id LIKE 'log-pipeline-%'")
                .is_ok_and(|a| String::from_utf8_lossy(&a).trim() == "0")
        });
        let rows = servers.query("db", "SELECT count() FROM logs WHERE kind = 0");
        let rows: u64 = rows.trim().parse().unwrap();
        assert!(
            rows == 0 || rows == 240_000,
            "attempt {attempt}: {rows} rows of a batch of 240,000"
        );
        if rows > 0 {
            break;
        }
    }
    assert!(killed_mid_insert > 0, "never killed during an INSERT");
    wd.cmd("parse-to-db")
        .args(["big.log", &store[0], &store[1], "--host", "h", "-q"])
        .assert()
        .success();
    let counted = servers.query(
        "db",
        "SELECT count(), uniqExact(url) FROM logs WHERE kind = 0 FORMAT TabSeparated",
    );
    assert_eq!(counted.trim(), "240000\t3000");
}

#[test]
fn bad_addresses_passwords_tables_and_servers_are_one_line_errors_that_write_nothing() {
    let Some((wd, servers)) = with_server() else {
        return;
    };
    wd.write("a.log", numbered_lines(0, 10));
    let port = servers.servers[0].http;
    let one_line_error = |args: &[&str], says: &str| {
        let out = wd
            .cmd("parse-to-db")
            .arg("a.log")
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        // clap adds its hint to a value it refuses: the first line is the error.
        let lines = stderr
            .lines()
            .filter(|l| !l.is_empty() && !l.contains("try '--help'"));
        assert_eq!(lines.count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("s3cret") && !stderr.contains("wrong1"),
            "{stderr}"
        );
        stderr
    };
    one_line_error(&["--db", "clickhouse://127.0.0.1:http/x"], "not a port");
    // Not even an address that cannot be read shows its password.
    one_line_error(
        &["--db", "clickhouse://ann:s3cret@127.0.0.1:http/x"],
        "not a port",
    );
    one_line_error(
        &["--db", &format!("clickhouse://127.0.0.1:{port}/system")],
        "the server's own database",
    );
    one_line_error(
        &[
            "--db",
            &format!("clickhouse://ann:wrong1@127.0.0.1:{port}/x"),
        ],
        "wrong password",
    );
    let down = free_port();
    one_line_error(
        &["--db", &format!("clickhouse://127.0.0.1:{down}/x")],
        "cannot reach the server",
    );
    servers.query("default", "CREATE DATABASE theirs");
    servers.query(
        "theirs",
        "CREATE TABLE logs (foo String, bar UInt8) ENGINE = MergeTree() ORDER BY foo",
    );
    one_line_error(
        &["--db", &format!("clickhouse://127.0.0.1:{port}/theirs")],
        "not log-pipeline's",
    );
    let theirs = servers.query("theirs", "SELECT count() FROM logs");
    assert_eq!(theirs.trim(), "0");
    assert_eq!(servers.query("theirs", "SHOW TABLES").trim(), "logs");
    // A host name that aggregate-db --host could not name again is refused.
    let db = format!("clickhouse://127.0.0.1:{port}/x");
    one_line_error(&["--db", &db, "--host", "a,b"], "no comma");
    one_line_error(&["--db", &db, "--host", " web1"], "no space");
    // A port of the native protocol is named as such.
    let native = std::fs::read_to_string(servers.servers[0].dir.join("config.xml")).unwrap();
    let tcp = native
        .split("<tcp_port>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap();
    one_line_error(
        &["--db", &format!("clickhouse://127.0.0.1:{tcp}/x")],
        "native port",
    );
    // --host for a SQLite file is refused rather than ignored.
    one_line_error(&["--db", "x.db", "--host", "web1"], "--host");
    assert!(!wd.path("x.db").exists());
    let databases = servers.query("default", "SHOW DATABASES");
    assert!(!databases.lines().any(|d| d == "x"), "{databases}");
    // The right password works, and is never shown.
    let out = wd
        .cmd("parse-to-db")
        .args([
            "a.log",
            "--db",
            &format!("clickhouse://ann:s3cret@127.0.0.1:{port}/ok"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("clickhouse://ann@127.0.0.1") && !said.contains("s3cret"),
        "{said}"
    );
    // CLICKHOUSE_URL names the database when nothing else does; a path given still wins.
    let url = format!("clickhouse://ann:s3cret@127.0.0.1:{port}/ok");
    let out = wd
        .cmd("aggregate-db")
        .env("CLICKHOUSE_URL", &url)
        .args(["--format", "json", "--report", "status"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"]["codes"][0]["hits"], 10);
    wd.cmd("parse-to-db")
        .args(["a.log", "--db", "local.db", "-q"])
        .assert()
        .success();
    wd.cmd("aggregate-db")
        .env("CLICKHOUSE_URL", &url)
        .arg("local.db")
        .assert()
        .success();
    // Two servers without --cluster: only the first would be read.
    let two = format!("clickhouse://127.0.0.1:{port},127.0.0.1:{port}/ok");
    let out = wd
        .cmd("aggregate-db")
        .args(["--db", &two])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cluster"));
}

#[test]
fn three_hosts_killed_again_and_again_store_every_line_once_alone_and_in_two_shards() {
    let Some(program) = server_program() else {
        return;
    };
    for shards in [1, 2] {
        fleet(&program, shards);
    }
}

/// Prints the files a failing test leaves, before its directory goes.
struct DumpOnPanic<'a, const N: usize>(&'a Workdir, [String; N]);

impl<const N: usize> Drop for DumpOnPanic<'_, N> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for file in &self.1 {
                eprintln!("--- {file}:\n{}", self.0.text(file));
            }
        }
    }
}

/// Three followers, one per host and log, each killed 20 times while its log grows; one
/// server killed and restarted half-way.
fn fleet(program: &Path, shards: usize) {
    const KILLS: usize = 20;
    let wd = Workdir::new();
    let mut servers = Servers::start(&wd, program, shards);
    let store = servers.store_args("fleet");
    let hosts = ["a", "b", "c"];
    let _dump = DumpOnPanic(&wd, hosts.map(|h| format!("{h}.stderr")));
    for host in hosts {
        wd.write(&format!("{host}.log"), "");
    }
    // Each log grows while its follower is killed and restarted.
    let stop = Arc::new(AtomicBool::new(false));
    let written: Vec<Arc<AtomicUsize>> = hosts.iter().map(|_| Arc::default()).collect();
    let appenders: Vec<_> = hosts
        .iter()
        .zip(&written)
        .map(|(host, count)| {
            let (stop, count) = (Arc::clone(&stop), Arc::clone(count));
            let path = wd.path(&format!("{host}.log"));
            std::thread::spawn(move || {
                use std::io::Write;
                let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    file.write_all(numbered_lines(n, n + 7).as_bytes()).unwrap();
                    n += 7;
                    count.store(n, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(3));
                }
            })
        })
        .collect();
    let (reader, table) = (servers.servers[0].client("fleet"), servers.table());
    let stored = |host: &str| -> u64 {
        (reader)
            .query(&format!(
                "SELECT count() FROM {table} WHERE kind = 0 AND host = '{host}'"
            ))
            .ok()
            .and_then(|a| String::from_utf8_lossy(&a).trim().parse().ok())
            .unwrap_or(0)
    };
    let follower = |host: &str| {
        let log = format!("{host}.log");
        let mut args = vec![
            log.as_str(),
            "--host",
            host,
            "--poll-interval",
            "0.05",
            "-q",
        ];
        args.extend(strings(&store));
        wd.spawn_logged("continuous-parse", &args, &format!("{host}.stderr"))
    };
    let started = Instant::now();
    for round in 0..KILLS {
        if round == KILLS / 2 {
            // A crash of a server (the second shard of two): the followers retry.
            let server = &mut servers.servers[shards - 1];
            server.kill();
            server.restart();
        }
        let mut running: Vec<Running> = hosts.iter().map(|h| follower(h)).collect();
        let before: Vec<u64> = hosts.iter().map(|h| stored(h)).collect();
        // Each is killed once it has stored something more (observed), at a moment that
        // varies with the round: right away, or a little later.
        for (i, host) in hosts.iter().enumerate() {
            wait_until("a follower to store more lines", || {
                stored(host) > before[i]
            });
            std::thread::sleep(Duration::from_millis((round as u64 * 7) % 23));
            let status = running.remove(0).signal_and_wait("-KILL");
            assert!(status.code().is_none(), "{host} exited by itself: {status}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    for a in appenders {
        a.join().unwrap();
    }
    // What is left is drained once, and each log checked line by line.
    for host in hosts {
        let mut args = vec![format!("{host}.log"), "--host".into(), host.into()];
        args.extend(store.iter().cloned());
        wd.cmd("continuous-parse")
            .args(&args)
            .args(["--once", "-q"])
            .assert()
            .success();
    }
    for (host, count) in hosts.iter().zip(&written) {
        let n = count.load(Ordering::Relaxed);
        let got = servers.query(
            "fleet",
            &format!(
                "SELECT count(), uniqExact(url), uniqExact(file_inode, byte_offset), \
                 uniqExact(line) FROM {} WHERE kind = 0 AND host = '{host}' FORMAT TabSeparated",
                servers.table()
            ),
        );
        // Every line once, and each row where its own line was read.
        assert_eq!(
            got.trim(),
            format!("{n}\t{n}\t{n}\t{n}"),
            "{shards} shard(s), host {host}"
        );
    }
    // The reports equal a SQLite store of the same lines.
    let logs: Vec<String> = hosts.iter().map(|h| format!("{h}.log")).collect();
    wd.cmd("parse-to-db")
        .args(&logs)
        .args(["--db", "same.db", "-q"])
        .assert()
        .success();
    assert_eq!(
        all_reports(&wd, &strings(&store), &[]),
        all_reports(&wd, &["--db", "same.db"], &[]),
        "{shards} shard(s)"
    );
    eprintln!(
        "{shards} shard(s): {KILLS} kills of each of 3 followers in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn retain_drops_whole_old_days_but_never_a_hosts_progress() {
    let Some((wd, servers)) = with_server() else {
        return;
    };
    let db = servers.url("kept");
    // Lines of 2024-01-01, then lines of today: two partitions.
    wd.write("a.log", numbered_lines(0, 100));
    wd.cmd("parse-to-db")
        .args(["a.log", "--db", &db, "--host", "h", "-q"])
        .assert()
        .success();
    let entries = || {
        servers
            .query("kept", "SELECT count() FROM logs WHERE kind = 0")
            .trim()
            .to_owned()
    };
    // The old day holds the host's last progress: --retain keeps it.
    wd.cmd("parse-to-db")
        .args(["a.log", "--db", &db, "--host", "h", "-q", "--retain", "30d"])
        .assert()
        .success();
    assert_eq!(entries(), "100");
    wd.cmd("generate-logs")
        .args(["--count", "10", "-q", "-o", "a.log"])
        .assert()
        .success();
    let out = wd
        .cmd("parse-to-db")
        .args(["a.log", "--db", &db, "--host", "h", "--retain", "30d"])
        .assert()
        .success();
    let said = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(
        said.contains("parse-to-db: --retain: removed 1 day from before "),
        "{said}"
    );
    assert_eq!(entries(), "10");
    // The progress survived: a new run adds nothing.
    wd.cmd("parse-to-db")
        .args(["a.log", "--db", &db, "--host", "h", "-q"])
        .assert()
        .success();
    assert_eq!(entries(), "10");
}

#[test]
fn the_hosts_report_is_refused_for_a_store_of_one_host() {
    let wd = Workdir::new();
    wd.write("a.log", numbered_lines(0, 10));
    wd.cmd("parse-to-db")
        .args(["a.log", "-q"])
        .assert()
        .success();
    wd.cmd("parse-to-csv")
        .args(["a.log", "-q"])
        .assert()
        .success();
    for bin in ["aggregate-db", "aggregate-csv"] {
        let out = wd.cmd(bin).args(["--report", "hosts"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("needs a ClickHouse store"), "{said}");
    }
}

#[test]
fn a_commit_of_many_batches_from_two_logs_with_rejects_alone_is_one_part() {
    let Some(program) = server_program() else {
        return;
    };
    for shards in [1, 2] {
        let wd = Workdir::new();
        let servers = Servers::alone_or_cluster(&wd, &program, shards, &["parts"]);
        let mut args = vec![
            "a.log",
            "b.log",
            "--host",
            "h",
            "-q",
            "--batch-lines",
            "1000000",
        ];
        let store = servers.store_args("parts");
        args.extend(strings(&store));
        // A first run over empty logs creates the tables and commits only progress.
        wd.write("a.log", "");
        wd.write("b.log", "");
        wd.cmd("parse-to-db").args(&args).assert().success();
        for server in &servers.servers {
            server
                .client("parts")
                .query("SYSTEM STOP MERGES parts.logs")
                .unwrap();
        }
        // Batches of 8,192 lines: the garbage fills whole batches of rejects alone.
        let garbage: String = (0..20_000).map(|i| format!("garbage {i}\n")).collect();
        wd.write(
            "a.log",
            numbered_lines(0, 20_000) + &garbage + &numbered_lines(20_000, 25_000),
        );
        wd.write("b.log", numbered_lines(25_000, 28_000));
        wd.cmd("parse-to-db").args(&args).assert().success();

        let parts: Vec<u64> = (servers.servers.iter())
            .flat_map(|server| {
                let rows = server
                    .client("parts")
                    .query(
                        "SELECT rows FROM system.parts WHERE database = 'parts' AND \
                         table = 'logs' AND active FORMAT TabSeparated",
                    )
                    .unwrap();
                let rows = String::from_utf8(rows).unwrap();
                rows.lines().map(|r| r.parse().unwrap()).collect::<Vec<_>>()
            })
            .collect();
        let commits = servers.query(
            "parts",
            &format!("SELECT count() FROM {} WHERE kind = 2", servers.table()),
        );
        // Each commit one part, and one of them holds all of a.log: 45,000 lines and its
        // progress row, from batches of entries, of rejects, and of both.
        assert_eq!(parts.len().to_string(), commits.trim(), "{parts:?}");
        assert!(parts.contains(&45_001), "{parts:?}");
        let rows = servers.query(
            "parts",
            &format!(
                "SELECT source LIKE '%a.log', kind, count(), min(line), max(line), \
                 sum(line), uniqExact(url) FROM {} WHERE kind IN (0, 1) GROUP BY source, kind \
                 ORDER BY source LIKE '%a.log' DESC, kind FORMAT TabSeparated",
                servers.table()
            ),
        );
        let sum = |from: u64, to: u64| (from..=to).sum::<u64>();
        let expected = [
            format!(
                "1\t0\t25000\t1\t45000\t{}\t25000",
                sum(1, 20_000) + sum(40_001, 45_000)
            ),
            format!("1\t1\t20000\t20001\t40000\t{}\t20000", sum(20_001, 40_000)),
            format!("0\t0\t3000\t1\t3000\t{}\t3000", sum(1, 3000)),
        ];
        assert_eq!(rows.lines().collect::<Vec<_>>(), expected);
    }
}

/// The table a writer of schema version 1 created before rows said where they were read, as
/// it created it.
const LOGS_OF_VERSION_1: &str = "CREATE TABLE logs (host String, seq UInt64, kind UInt8, \
    day Date, ip String, ident Nullable(String), user Nullable(String), timestamp Int64, \
    method Nullable(String), url String, protocol Nullable(String), status UInt16, \
    bytes Nullable(UInt64), referrer Nullable(String), user_agent Nullable(String), \
    vhost Nullable(String), port Nullable(UInt16), response_time_us Nullable(UInt64), \
    upstream_time_us Nullable(UInt64), forwarded_for Nullable(String), source String, \
    line UInt64, reason String, state String) ENGINE = MergeTree() PARTITION BY day \
    ORDER BY (host, kind, seq)";

#[test]
fn every_row_says_where_it_was_read_and_older_tables_get_the_columns() {
    use std::os::unix::fs::MetadataExt;
    let Some(program) = server_program() else {
        return;
    };
    for shards in [1, 2] {
        let wd = Workdir::new();
        let servers = Servers::alone_or_cluster(&wd, &program, shards, &["up"]);
        // Version 1's tables on every node, holding a row of that version.
        for server in &servers.servers {
            server
                .client("default")
                .query("CREATE DATABASE up")
                .unwrap();
            let node = server.client("up");
            node.query("CREATE TABLE log_pipeline (version UInt32, created DateTime) ENGINE = Log")
                .unwrap();
            node.query("INSERT INTO log_pipeline VALUES (1, now())")
                .unwrap();
            node.query(LOGS_OF_VERSION_1).unwrap();
            if shards > 1 {
                node.query(
                    "CREATE TABLE logs_all AS logs ENGINE = Distributed('fleet', 'up', logs, \
                     cityHash64(host))",
                )
                .unwrap();
            }
        }
        servers.query(
            "up",
            "INSERT INTO logs (host, seq, kind, day, ip, url, status, timestamp, source, line) \
             VALUES ('old', 1, 0, toDate('2024-01-01'), '10.9.9.9', '/old', 200, 1704067200, '', 0)",
        );

        // A reject among the lines, and a line of several bytes per character.
        let mut text = numbered_lines(0, 20);
        text.push_str("garbage\n");
        text.push_str(&numbered_lines(20, 40).replace("/page/25 ", "/page/25-é "));
        wd.write("a.log", &text);
        let store = servers.store_args("up");
        let mut args = vec!["a.log", "--host", "h", "-q"];
        args.extend(strings(&store));
        wd.cmd("parse-to-db").args(&args).assert().success();
        // A second run resumes where the first stopped, in the middle of the file.
        let more = numbered_lines(40, 45);
        std::fs::OpenOptions::new()
            .append(true)
            .open(wd.path("a.log"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, more.as_bytes()))
            .unwrap();
        text.push_str(&more);
        wd.cmd("parse-to-db").args(&args).assert().success();

        let meta = std::fs::metadata(wd.path("a.log")).unwrap();
        // The record a log's checkpoint is kept under: its whole path.
        let source = std::fs::canonicalize(wd.path("a.log")).unwrap();
        let source = source.to_str().unwrap();
        let rows = servers.query(
            "up",
            &format!(
                "SELECT kind, line, byte_offset, source, file_dev, file_inode FROM {} \
                 WHERE host = 'h' AND kind IN (0, 1) ORDER BY line FORMAT TabSeparated",
                servers.table()
            ),
        );
        let rows: Vec<Vec<&str>> = rows.lines().map(|r| r.split('\t').collect()).collect();
        assert_eq!(rows.len(), 46, "{rows:?}");
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let mut expected_offset = 0;
        for (i, row) in rows.iter().enumerate() {
            let kind = if lines[i] == "garbage\n" { "1" } else { "0" };
            let offset = expected_offset.to_string();
            let (dev, inode) = (meta.dev().to_string(), meta.ino().to_string());
            let expected = [kind, &(i + 1).to_string(), &offset, source, &dev, &inode];
            assert_eq!(row, &expected, "line {}", i + 1);
            expected_offset += lines[i].len();
        }
        // The old row is still there, counted, and says it does not know where it was read.
        let old = servers.query(
            "up",
            &format!(
                "SELECT url, byte_offset, file_inode FROM {} WHERE host = 'old' \
                 FORMAT TabSeparated",
                servers.table()
            ),
        );
        assert_eq!(old, "/old\t0\t0\n");
        // Still version 1: the writers of a fleet not updated yet keep writing (their rows
        // leave the new columns 0), and its readers keep reading.
        let version = servers.query("up", "SELECT max(version) FROM log_pipeline");
        assert_eq!(version.trim(), "1");
        let mut args = vec!["--report", "summary", "--format", "json"];
        args.extend(strings(&store));
        let out = wd.cmd("aggregate-db").args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["summary"]["requests"], 46, "{summary}");
    }
}

#[test]
fn writers_that_start_together_on_older_tables_all_add_the_columns_and_write() {
    let Some((wd, servers)) = with_server() else {
        return;
    };
    let node = servers.servers[0].client("default");
    node.query("CREATE DATABASE up").unwrap();
    let node = servers.servers[0].client("up");
    node.query("CREATE TABLE log_pipeline (version UInt32, created DateTime) ENGINE = Log")
        .unwrap();
    node.query("INSERT INTO log_pipeline VALUES (1, now())")
        .unwrap();
    node.query(LOGS_OF_VERSION_1).unwrap();
    // Started at once, each finds the columns missing and adds them: an ALTER that fails
    // because another writer added the column first is not an error.
    let db = servers.url("up");
    let writers: Vec<_> = (0..6)
        .map(|i| {
            wd.write(&format!("{i}.log"), numbered_lines(0, 10 + i));
            std::process::Command::new(bin_path("parse-to-db"))
                .args([
                    &format!("{i}.log"),
                    "--db",
                    &db,
                    "--host",
                    &format!("h{i}"),
                    "-q",
                ])
                .current_dir(wd.root())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let writers: Vec<_> = writers
        .into_iter()
        .map(|w| w.wait_with_output().unwrap())
        .collect();
    for (i, out) in writers.iter().enumerate() {
        assert!(
            out.status.success(),
            "writer {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let hosts = servers.query(
        "up",
        "SELECT host, count() FROM logs WHERE kind = 0 GROUP BY host ORDER BY host \
         FORMAT TabSeparated",
    );
    let expected: String = (0..6).map(|i| format!("h{i}\t{}\n", 10 + i)).collect();
    assert_eq!(hosts, expected);
}

#[test]
fn the_live_page_serves_a_clickhouse_store_and_follows_its_rows() {
    use crate::test_serve::{get, number, serve, stats};
    let Some((wd, servers)) = with_server() else {
        return;
    };
    let db = servers.url("live");
    let parse = |wd: &Workdir, host: &str| {
        wd.cmd("parse-to-db")
            .args([&format!("{host}.log"), "--db", &db, "--host", host, "-q"])
            .assert()
            .success();
    };
    wd.write("a.log", numbered_lines(0, 30));
    wd.write("b.log", numbered_lines(30, 50));
    parse(&wd, "a");
    parse(&wd, "b");
    let (_server, addr) = serve(&wd, &["--db", &db, "--serve", "127.0.0.1:0"]);
    let (status, _, page) = get(&addr, "/");
    assert_eq!(status, 200, "{page}");
    assert_eq!(number(&page, "summary-requests"), Some(50));
    // The command line's --host is the page's without a query of its own.
    let (_one, one) = serve(&wd, &["--db", &db, "--serve", "127.0.0.1:0", "--host", "a"]);
    assert_eq!(number(&get(&one, "/").2, "summary-requests"), Some(30));
    // The page's query takes --host as the command line does.
    let (status, _, body) = get(&addr, "/body?host=b&report=summary");
    assert_eq!(status, 200, "{body}");
    assert_eq!(number(&body, "summary-requests"), Some(20));
    // A host no writer wrote for is named, not just reported as nothing.
    let out = wd
        .cmd("aggregate-db")
        .args(["--db", &db, "--host", "b,nosuch", "--report", "status"])
        .assert()
        .success();
    let said = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(
        said.contains("--host nosuch: no rows of this host"),
        "{said}"
    );
    assert!(!said.contains("--host b:"), "{said}");
    // The page names it beside its filters.
    let (status, _, body) = get(&addr, "/body?host=b,nosuch&report=summary");
    assert_eq!(status, 200, "{body}");
    assert_eq!(number(&body, "summary-requests"), Some(20));
    assert!(
        body.contains("no rows of host") && body.contains("nosuch"),
        "{body}"
    );
    let (_, _, body) = get(&addr, "/body?host=b&report=summary");
    assert!(!body.contains("no rows of host"), "{body}");
    // Rejects hold no request: the report's filters pass them by, but --host does not.
    let rejects = |args: &[&str]| {
        let out = wd
            .cmd("aggregate-db")
            .args(["--db", &db, "--report", "rejects"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(!rejects(&["--host", "b"]).contains("filters do not apply"));
    assert!(rejects(&["--host", "b", "--status", "200"]).contains("filters do not apply"));
    // Past the second a report is kept, a page finds the store unchanged and gets it again.
    let requests = || number(&get(&addr, "/body?report=summary").2, "summary-requests");
    assert_eq!(requests(), Some(50));
    let (computed, _) = stats(&addr);
    wait_until("a report kept, the store unchanged", || {
        assert_eq!(requests(), Some(50));
        stats(&addr).1 > 0
    });
    assert_eq!(stats(&addr).0, computed);
    // Rows a writer adds appear in the page's next report.
    wd.write("a.log", numbered_lines(0, 40));
    parse(&wd, "a");
    wait_until("the page to count the new rows", || requests() == Some(60));
}

#[test]
fn response_times_grouped_by_the_server_equal_sqlites() {
    let Some(program) = server_program() else {
        return;
    };
    let wd = Workdir::new();
    // Apache's %D (microseconds): times of a few values, so that the server's groups hold
    // many requests; a URL past the times kept exactly (its percentiles from a histogram),
    // others with a few; two days, some statuses and clients.
    let mut log = String::new();
    for i in 0..4000u64 {
        let url = match i % 5 {
            0..=2 => "/hot".to_string(),
            3 => format!("/page/{}", i % 40),
            _ => format!("/once/{i}"),
        };
        let us = match i % 7 {
            0 => 1_000 * (i % 13),
            6 => 123_457 + i,
            _ => 2_000 * (i % 5) + 500,
        };
        log.push_str(&format!(
            "10.{}.0.{} - - [0{}/Mar/2024:{:02}:{:02}:{:02} +0000] \"GET {url} HTTP/1.1\" {} 10 \"-\" \"agent {}\" {us}\n",
            i % 3,
            i % 50,
            1 + i / 2000,
            i / 100 % 24,
            i % 60,
            i % 59,
            [200, 200, 404, 500, 304][(i % 5) as usize],
            i % 4
        ));
    }
    wd.write("timed.log", &log);
    let format = r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i" %D"#;
    wd.cmd("parse-to-db")
        .args(["timed.log", "--db", "t.db", "-q", "--log-format", format])
        .assert()
        .success();
    for shards in [1, 2] {
        let servers = Servers::alone_or_cluster(&wd, &program, shards, &["timed"]);
        let store = servers.store_args("timed");
        wd.cmd("parse-to-db")
            .args(["timed.log", "-q", "--host", "w", "--log-format", format])
            .args(strings(&store))
            .assert()
            .success();
        for args in [
            &["--report", "times"][..],
            &["--report", "times,status,urls", "--status", "2xx,5xx"],
            &[
                "--report",
                "times",
                "--url",
                "^/hot",
                "--ip",
                "!10.1.0.0/16",
            ],
            &["--report", "times,traffic", "--tz", "Asia/Kolkata"],
            &[
                "--report",
                "times",
                "--since",
                "2024-03-02T00:00:00Z",
                "-n",
                "3",
            ],
            // With visitors, counted by the server, beside them.
            &["--report", "summary,urls,times", "--status", "!404"],
        ] {
            let ours = reports(&wd, &strings(&store), args);
            assert!(ours.contains("\"p95_us\""), "{ours}");
            assert_eq!(
                json(&ours),
                json(&reports(&wd, &["--db", "t.db"], args)),
                "{shards} shard(s), {args:?}"
            );
        }
    }
}

#[test]
fn visitors_in_a_zone_that_changes_its_offset_are_counted_by_the_server_as_here() {
    let Some(program) = server_program() else {
        return;
    };
    let wd = Workdir::new();
    // Around Paris's two changes of 2024: days of 23 and 25 hours, with visits near their
    // midnights, by visitors who come once or twice, so that each hour's visitors show in
    // the count of their day. Then two evenings, in winter and in summer time, with no row
    // at the change between them. Then Santiago's changes of 2024, which fall at its local
    // midnight, with rows on each side of each.
    let mut times: Vec<i64> = Vec::new();
    for start in [1_711_828_800i64, 1_729_972_800] {
        times.extend((0..300).map(|i| start + i * 419));
    }
    for start in [1_707_604_200i64, 1_715_376_600] {
        times.extend((0..60).map(|i| start + i * 97));
    }
    for change in [1_712_458_800i64, 1_725_768_000] {
        times.extend([-3_601, -3_600, -1, 0, 1, 3_599, 3_600].map(|d| change + d));
    }
    let mut log = String::new();
    for (i, &t) in times.iter().enumerate() {
        let t = chrono::DateTime::from_timestamp(t, 0).unwrap();
        log.push_str(&format!(
            "10.0.{}.{} - - [{}] \"GET /{} HTTP/1.1\" {} 5 \"-\" \"agent {}\"\n",
            i / 150 % 4,
            i % 150,
            t.format("%d/%b/%Y:%H:%M:%S +0000"),
            ["a", "b", "c"][i % 3],
            if i % 9 == 0 { 404 } else { 200 },
            i % 2
        ));
    }
    let servers = Servers::start(&wd, &program, 1);
    let store = into_both(&wd, ("dst.log", &log), ("d.db", &servers, "dst"));
    let all = "summary,urls,days,clients,agents,browsers";
    let sets: &[&[&str]] = &[
        &["--report", all, "--tz", "Europe/Paris"][..],
        &[
            "--report",
            all,
            "--tz",
            "Europe/Paris",
            "--visitors",
            "goaccess",
        ],
        &[
            "--report",
            all,
            "--tz",
            "America/New_York",
            "--status",
            "!404",
        ],
        &[
            "--report",
            all,
            "--tz",
            "Europe/Paris",
            "--since",
            "2024-10-27",
        ],
        &["--report", all, "--tz", "America/Santiago"],
        &[
            "--report",
            all,
            "--tz",
            "America/Santiago",
            "--until",
            "2024-09-01",
        ],
    ];
    same_as_sqlite(&wd, &strings(&store), "d.db", sets);
}

#[test]
fn filters_with_long_lists_of_values_still_give_sqlites_reports() {
    let Some((wd, servers)) = with_server() else {
        return;
    };
    // 12,000 clients and URLs, half of each passing the filters: each list alone fits in a
    // query, both together would not; and 40,000 clients, whose list alone would not.
    let mut log = String::new();
    for i in 0..52_000u32 {
        let (ip, url) = match i < 12_000 {
            true => (
                format!("10.{}.{}.1", (i % 2) * 64 + i / 2 / 250 % 64, i / 2 % 250),
                format!("/{}/page-{i:07}", ["a", "b"][(i / 3 % 2) as usize]),
            ),
            false => (
                format!("11.{}.{}.{}", i % 2, i / 250 % 250, i % 250),
                "/c".to_string(),
            ),
        };
        log.push_str(&format!(
            "{ip} - - [05/Jan/2024:10:{:02}:00 +0000] \"GET {url} HTTP/1.1\" 200 5 \"-\" \"a\"\n",
            i % 60
        ));
    }
    let store = into_both(&wd, ("many.log", &log), ("m.db", &servers, "many"));
    let sets: &[&[&str]] = &[
        &[
            "--ip",
            "10.0.0.0/10",
            "--url",
            "^/a/",
            "--report",
            "summary,urls",
        ][..],
        &[
            "--ip",
            "11.0.0.0/8,!11.0.0.0/16",
            "--report",
            "summary,clients",
            "-n",
            "3",
        ],
    ];
    same_as_sqlite(&wd, &strings(&store), "m.db", sets);
}
