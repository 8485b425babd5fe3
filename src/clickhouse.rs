//! ClickHouse, the store for fleets: its address, a small HTTP client for its HTTP interface,
//! and the schema the writers and the reports share.
//!
//! Why a client of our own rather than a crate: exactly-once rests on one property of the
//! connection, that a writer which dies mid-INSERT leaves nothing behind. ClickHouse (18.16
//! and later) takes an INSERT body that simply ends, at a line boundary, as complete: a writer
//! killed half-way through sending a batch would store half of it. So every connection is
//! closed abortively (`SO_LINGER` 0): when the process dies the kernel sends a reset, the
//! server's read fails, and the INSERT is dropped whole. Everything else needed is a POST and
//! its answer, which fits in this file.
//!
//! Only SQL and HTTP features that both Debian's ClickHouse 18.16 and current releases have are
//! used: `MergeTree` with `PARTITION BY`, `Distributed`, Basic authentication, the `database`,
//! `query_id` and settings parameters, `TabSeparated`.

use std::fmt;
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::Context;

/// The version of our tables in a database; kept in the `log_pipeline` table.
pub const SCHEMA_VERSION: u32 = 1;

/// The prefix that makes `--db` a ClickHouse address rather than a SQLite path.
pub const SCHEME: &str = "clickhouse://";

/// Where a ClickHouse database is: `clickhouse://[user[:password]@]host[:port][,host[:port]...]/database`.
/// Several hosts are the nodes of a cluster (`--cluster`): the tables are created on each,
/// and reads and writes go to the first that answers.
#[derive(Clone, PartialEq, Eq)]
pub struct Address {
    pub user: Option<String>,
    password: Option<String>,
    pub nodes: Vec<(String, u16)>,
    pub database: String,
}

/// The password is never shown: not in messages, not in `{:?}`.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SCHEME)?;
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        for (i, (host, port)) in self.nodes.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            match host.contains(':') {
                true => write!(f, "{sep}[{host}]:{port}")?,
                false => write!(f, "{sep}{host}:{port}")?,
            }
        }
        write!(f, "/{}", self.database)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Address {
    /// Reads an address; `None` when `s` is not a `clickhouse://` one (a SQLite path).
    pub fn parse(s: &str) -> Option<Result<Address, String>> {
        let rest = s.strip_prefix(SCHEME)?;
        Some(Address::parse_rest(rest))
    }

    fn parse_rest(rest: &str) -> Result<Address, String> {
        let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
        let database = match database.trim_end_matches('/') {
            "" => "default".to_owned(),
            name if name.eq_ignore_ascii_case("system")
                || name.eq_ignore_ascii_case("information_schema") =>
            {
                return Err(format!("{name} is the server's own database: name another"));
            }
            // A name SQL takes as it is, unquoted.
            name if name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                name.to_owned()
            }
            name => {
                return Err(format!(
                    "the database name {name:?} is not a letter or _ followed by letters, \
                     digits and _"
                ));
            }
        };
        let (credentials, hosts) = match authority.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, authority),
        };
        let (user, password) = match credentials {
            None => (None, None),
            Some(c) => {
                let (u, p) = match c.split_once(':') {
                    Some((u, p)) => (u, Some(percent_decode(p)?)),
                    None => (c, None),
                };
                (Some(percent_decode(u)?), p)
            }
        };
        let mut nodes = Vec::new();
        for node in hosts.split(',') {
            nodes.push(parse_node(node)?);
        }
        Ok(Address {
            user,
            password,
            nodes,
            database,
        })
    }

    /// The same database on one node only.
    pub fn node(&self, i: usize) -> Address {
        Address {
            nodes: vec![self.nodes[i].clone()],
            ..self.clone()
        }
    }

    /// A client of this address.
    pub fn client(&self) -> Client {
        Client {
            address: self.clone(),
        }
    }
}

fn parse_node(node: &str) -> Result<(String, u16), String> {
    if node.is_empty() {
        return Err("no host: clickhouse://[user[:password]@]host[:port]/database".into());
    }
    let (host, port) = if let Some(v6) = node.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{node:?}: an IPv6 address needs its closing ]"))?;
        (host, after.strip_prefix(':'))
    } else {
        match node.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (node, None),
        }
    };
    let port = match port {
        None => 8123,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("{p:?} is not a port (1-65535)"))?,
    };
    Ok((host.to_owned(), port))
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a % in the user or password is not followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the user or password is not UTF-8".to_owned())
}

fn percent_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            match i <= chunk.len() {
                true => out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char),
                false => out.push('='),
            }
        }
    }
    out
}

/// Why a request failed: the server said no (an error of ours, or of the set-up), or it could
/// not be reached or answered (worth trying again).
#[derive(Debug)]
pub enum Failure {
    /// The server answered with an exception: its code and its message.
    Refused { code: u32, message: String },
    /// No answer: down, restarting, or the network.
    Unreachable(String),
    /// Something this program found wrong (tables that are not ours, a cluster that does not
    /// match): the whole message.
    Invalid(String),
}

impl Failure {
    /// Worth trying again later: the server was not reached, or was shutting down.
    pub fn is_transient(&self) -> bool {
        match self {
            Failure::Unreachable(_) => true,
            // 210 NETWORK_ERROR, 209 SOCKET_TIMEOUT, 159 TIMEOUT_EXCEEDED, 394 QUERY_WAS_CANCELLED,
            // 279 ALL_CONNECTION_TRIES_FAILED (a shard down behind a Distributed table).
            Failure::Refused { code, .. } => matches!(code, 159 | 209 | 210 | 279 | 394),
            Failure::Invalid(_) => false,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused { code, message } => match code {
                192 => f.write_str("unknown user"),
                193 => f.write_str("wrong password"),
                194 => f.write_str("a password is needed"),
                _ => write!(f, "{message} (code {code})"),
            },
            Failure::Unreachable(why) => write!(f, "cannot reach the server: {why}"),
            Failure::Invalid(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Failure {}

/// One query's HTTP request.
struct Request<'a> {
    /// The query text; in the body when there is no `data`, else in the URL.
    sql: &'a str,
    data: Option<&'a [u8]>,
    settings: &'a [(&'a str, String)],
    query_id: Option<&'a str>,
}

/// A client of one database. Each request has a connection of its own, closed abortively
/// (see the module's comment).
#[derive(Clone, Debug)]
pub struct Client {
    address: Address,
}

/// Longest a request may take before it is abandoned (a report over a billion rows is read
/// as it streams, so this is between two reads, not for the whole answer).
const READ_TIMEOUT: Duration = Duration::from_secs(600);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Client {
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The same server, in its `default` database (which every server has).
    fn in_default_database(&self) -> Client {
        Client {
            address: Address {
                database: "default".into(),
                ..self.address.clone()
            },
        }
    }

    /// Runs a query that answers nothing or little, and returns its answer.
    pub fn query(&self, sql: &str) -> Result<Vec<u8>, Failure> {
        let mut out = Vec::new();
        self.request(
            &Request {
                sql,
                data: None,
                settings: &[],
                query_id: None,
            },
            &mut |chunk| {
                out.extend_from_slice(chunk);
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Runs a query and hands its answer on in pieces as it arrives.
    pub fn stream(
        &self,
        sql: &str,
        each: &mut dyn FnMut(&[u8]) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        self.request(
            &Request {
                sql,
                data: None,
                settings: &[],
                query_id: None,
            },
            each,
        )
    }

    /// Sends `data` as the body of `insert` (an `INSERT ... FORMAT ...` statement).
    pub fn insert(
        &self,
        insert: &str,
        data: &[u8],
        settings: &[(&str, String)],
        query_id: &str,
    ) -> Result<(), Failure> {
        self.request(
            &Request {
                sql: insert,
                data: Some(data),
                settings,
                query_id: Some(query_id),
            },
            &mut |_| Ok(()),
        )
    }

    /// Tries each node in turn; the first that can be reached answers. Only a node that
    /// could not be connected to is passed over: a request sent to one and not answered may
    /// have been carried out, and sending it to the next could do it twice (the caller, who
    /// knows, asks first).
    fn request(
        &self,
        req: &Request<'_>,
        each: &mut dyn FnMut(&[u8]) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let mut last = None;
        for node in &self.address.nodes {
            let Some(stream) = Client::connect(node, &mut last) else {
                continue;
            };
            return self.request_node(stream, node, req, each);
        }
        Err(last.unwrap_or_else(|| Failure::Unreachable("no host".into())))
    }

    /// A connection to `node`, or the reason there is none in `error`.
    fn connect((host, port): &(String, u16), error: &mut Option<Failure>) -> Option<TcpStream> {
        let addrs: Vec<_> = match (host.as_str(), *port).to_socket_addrs() {
            Ok(addrs) => addrs.collect(),
            Err(e) => {
                *error = Some(Failure::Unreachable(format!("cannot resolve {host}: {e}")));
                return None;
            }
        };
        let mut why = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(s) => return Some(s),
                Err(e) => why = Some(e),
            }
        }
        *error = Some(Failure::Unreachable(match why {
            Some(e) => format!("{host}:{port}: {e}"),
            None => format!("{host}:{port}: no address"),
        }));
        None
    }

    fn request_node(
        &self,
        mut stream: TcpStream,
        (host, port): &(String, u16),
        req: &Request<'_>,
        each: &mut dyn FnMut(&[u8]) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let unreachable = |e: std::io::Error| Failure::Unreachable(e.to_string());
        abort_on_close(&stream).map_err(unreachable)?;
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .map_err(unreachable)?;
        stream.set_nodelay(true).map_err(unreachable)?;

        let mut target = String::from("/?database=");
        percent_encode(&self.address.database, &mut target);
        if req.data.is_some() {
            target.push_str("&query=");
            percent_encode(req.sql, &mut target);
        }
        if let Some(id) = req.query_id {
            target.push_str("&query_id=");
            percent_encode(id, &mut target);
        }
        for (name, value) in req.settings {
            target.push('&');
            target.push_str(name);
            target.push('=');
            percent_encode(value, &mut target);
        }
        let body = req.data.unwrap_or(req.sql.as_bytes());
        let mut head = format!(
            "POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        if self.address.user.is_some() || self.address.password.is_some() {
            let user = self.address.user.as_deref().unwrap_or("default");
            let password = self.address.password.as_deref().unwrap_or("");
            head.push_str(&format!(
                "Authorization: Basic {}\r\n",
                base64(format!("{user}:{password}").as_bytes())
            ));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).map_err(unreachable)?;
        stream.write_all(body).map_err(unreachable)?;
        read_response(&mut stream, each)
    }
}

/// `SO_LINGER` with a zero timeout: closing the socket (or dying) resets the connection, so
/// the server drops what it has not read instead of taking the body as complete.
fn abort_on_close(stream: &TcpStream) -> std::io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads `size_of::<linger>()` bytes from a valid, live `linger`, on a
    // descriptor `stream` owns for the whole call.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Reads an HTTP/1.1 answer: its status, headers, and a body of a given length, chunked, or
/// up to the end of the connection. A status other than 200 is the server's exception.
fn read_response(
    stream: &mut TcpStream,
    each: &mut dyn FnMut(&[u8]) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let unreachable = |e: std::io::Error| Failure::Unreachable(e.to_string());
    let mut reader = std::io::BufReader::with_capacity(1 << 16, stream);
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = std::io::BufRead::read_until(&mut reader, b'\n', &mut line).map_err(unreachable)?;
        if n == 0 {
            return Err(Failure::Unreachable(
                "the connection closed before an answer".into(),
            ));
        }
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        head.push(String::from_utf8_lossy(&line).trim_end().to_owned());
    }
    let status: u16 = head
        .first()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Failure::Unreachable("not an HTTP answer".into()))?;
    let header = |name: &str| {
        head.iter().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let chunked = header("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let length: Option<u64> = header("Content-Length").and_then(|v| v.parse().ok());
    if status != 200 {
        let mut body = Vec::new();
        read_body(&mut reader, chunked, length, &mut |c| {
            body.extend_from_slice(c);
            Ok(())
        })?;
        return Err(exception(status, &body));
    }
    read_body(&mut reader, chunked, length, each)
}

fn read_body(
    reader: &mut impl std::io::BufRead,
    chunked: bool,
    length: Option<u64>,
    each: &mut dyn FnMut(&[u8]) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let unreachable = |e: std::io::Error| Failure::Unreachable(e.to_string());
    let mut buf = vec![0u8; 1 << 16];
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).map_err(unreachable)?;
            let size = size.trim().split(';').next().unwrap_or("");
            let mut left = u64::from_str_radix(size, 16)
                .map_err(|_| Failure::Unreachable("a malformed chunked answer".into()))?;
            if left == 0 {
                return Ok(());
            }
            while left > 0 {
                let want = left.min(buf.len() as u64) as usize;
                let n = reader.read(&mut buf[..want]).map_err(unreachable)?;
                if n == 0 {
                    return Err(Failure::Unreachable("the answer was cut short".into()));
                }
                each(&buf[..n])?;
                left -= n as u64;
            }
            let mut crlf = String::new();
            reader.read_line(&mut crlf).map_err(unreachable)?;
        }
    }
    let mut left = length.unwrap_or(u64::MAX);
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = reader.read(&mut buf[..want]).map_err(unreachable)?;
        if n == 0 {
            if length.is_some() {
                return Err(Failure::Unreachable("the answer was cut short".into()));
            }
            return Ok(());
        }
        each(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// The server's exception, from an answer such as `Code: 60, e.displayText() =
/// DB::Exception: Table default.x doesn't exist., e.what() = DB::Exception` (18.16) or
/// `Code: 60. DB::Exception: Table ... doesn't exist. (UNKNOWN_TABLE) (version ...)` (later).
fn exception(status: u16, body: &[u8]) -> Failure {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let code = text
        .strip_prefix("Code: ")
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|c| c.parse().ok());
    let message = match text.split_once("DB::Exception: ") {
        Some((_, m)) => m
            .split(", e.what()")
            .next()
            .unwrap_or(m)
            .split(" (version ")
            .next()
            .unwrap_or(m)
            .trim()
            .to_owned(),
        None => text.lines().next().unwrap_or("").to_owned(),
    };
    match code {
        Some(code) => Failure::Refused { code, message },
        None => Failure::Unreachable(format!("HTTP {status}: {message}")),
    }
}

/// Quotes a string for a ClickHouse SQL literal.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Writes `bytes` as one TabSeparated field: backslash, tab, newline and carriage return
/// escaped, everything else as is (a String column holds any bytes).
pub fn tsv_field(bytes: &[u8], out: &mut Vec<u8>) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            0 => b"\\0",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escaped);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Reads back a field written by [`tsv_field`] (or by the server), in place.
pub fn tsv_unescape(field: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\' && i + 1 < field.len() {
            out.push(match field[i + 1] {
                b't' => b'\t',
                b'n' => b'\n',
                b'r' => b'\r',
                b'0' => 0,
                b'b' => 8,
                b'f' => 12,
                b'a' => 7,
                b'v' => 11,
                other => other,
            });
            i += 2;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
}

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
        for i in 0..address.nodes.len() {
            let node = address.node(i).client();
            let at = |e: Failure| match e {
                Failure::Refused { .. } => Failure::Invalid(format!("{}: {e}", node.address())),
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
            None => {}
        }
        let version = self
            .client
            .query("SELECT max(version) FROM log_pipeline")
            .map_err(|e| match e {
                Failure::Refused { code: 60 | 81, .. } => Failure::Invalid(format!(
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
    let n = client.query(&format!(
        "SELECT count() FROM system.tables WHERE database = {} AND name = {}",
        quote(&client.address().database),
        quote(table)
    ))?;
    Ok(String::from_utf8_lossy(&n).trim() != "0")
}

/// Is `table` ours? A table of the same name with other columns belongs to someone else, and
/// is neither written nor read.
fn check_columns(client: &Client, table: &str) -> Result<(), Failure> {
    let address = client.address();
    let have = client.query(&format!(
        "SELECT name FROM system.columns WHERE database = {} AND table = {} FORMAT TabSeparated",
        quote(&address.database),
        quote(table)
    ))?;
    let have = String::from_utf8_lossy(&have);
    let have: Vec<&str> = have.lines().collect();
    let missing: Vec<&str> = COLUMNS
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !have.contains(name))
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

/// Retries `attempt` while it fails in a way worth retrying, backing off from 100 ms to 5 s,
/// until `patience` has passed; `on_retry` hears each failure.
pub fn with_retries<T>(
    patience: Duration,
    on_retry: &mut dyn FnMut(&Failure, Duration),
    mut attempt: impl FnMut() -> Result<T, Failure>,
) -> Result<T, Failure> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        match attempt() {
            Err(e) if e.is_transient() && started.elapsed() + pause < patience => {
                on_retry(&e, pause);
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// The machine's host name, the default `--host`.
pub fn machine_host() -> anyhow::Result<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the live buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot read the host name");
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_names_its_nodes_and_database_and_never_shows_the_password() {
        let a = Address::parse("clickhouse://ann:s%40cret@db1:9000,[::1]/web")
            .unwrap()
            .unwrap();
        assert_eq!(a.user.as_deref(), Some("ann"));
        assert_eq!(a.password.as_deref(), Some("s@cret"));
        assert_eq!(
            a.nodes,
            [("db1".to_owned(), 9000), ("::1".to_owned(), 8123)]
        );
        assert_eq!(a.database, "web");
        assert_eq!(a.to_string(), "clickhouse://ann@db1:9000,[::1]:8123/web");
        assert!(!format!("{a:?}").contains("cret"));
        let plain = Address::parse("clickhouse://localhost").unwrap().unwrap();
        assert_eq!(plain.to_string(), "clickhouse://localhost:8123/default");
        assert!(Address::parse("logs.db").is_none());
        assert!(Address::parse("clickhouse://h:0/x").unwrap().is_err());
        assert!(Address::parse("clickhouse:///x").unwrap().is_err());
        assert!(Address::parse("clickhouse://h/x;drop").unwrap().is_err());
    }

    #[test]
    fn fields_escape_and_unescape_to_the_same_bytes() {
        for s in [&b"plain"[..], b"a\tb\nc\\d\re\0", b"\\N", b"\xff\xfe"] {
            let mut out = Vec::new();
            tsv_field(s, &mut out);
            assert!(!out.contains(&b'\t') && !out.contains(&b'\n'));
            let mut back = Vec::new();
            tsv_unescape(&out, &mut back);
            assert_eq!(back, s);
        }
    }

    #[test]
    fn base64_is_rfc_4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"default:"), "ZGVmYXVsdDo=");
    }

    #[test]
    fn exceptions_of_old_and_new_servers_give_their_code_and_message() {
        let old = b"Code: 193, e.displayText() = DB::Exception: Wrong password for user default, e.what() = DB::Exception\n";
        match exception(500, old) {
            Failure::Refused { code, message } => {
                assert_eq!(code, 193);
                assert_eq!(message, "Wrong password for user default");
            }
            other => panic!("{other:?}"),
        }
        let new = b"Code: 60. DB::Exception: Table default.x does not exist. (UNKNOWN_TABLE) (version 24.1.1)\n";
        match exception(404, new) {
            Failure::Refused { code, message } => {
                assert_eq!(code, 60);
                assert_eq!(message, "Table default.x does not exist. (UNKNOWN_TABLE)");
            }
            other => panic!("{other:?}"),
        }
    }
}
