//! A small client of ClickHouse's HTTP interface.
//!
//! Why a client of our own rather than a crate: exactly-once rests on one property of the
//! connection, that a writer which dies mid-INSERT leaves nothing behind. ClickHouse (18.16
//! and later) takes an INSERT body that simply ends, at a row or block boundary, as complete:
//! a writer killed half-way through sending a batch could store part of it. So every
//! connection is closed abortively (`SO_LINGER` 0): when the process dies the kernel sends a
//! reset, the server's read fails, and the INSERT is dropped whole. Everything else needed is
//! a POST and its answer, which fits in this file.

use std::fmt;
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::address::{Address, percent_encode};

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
    data: Option<&'a [&'a [u8]]>,
    settings: &'a [(&'a str, String)],
    query_id: Option<&'a str>,
}

/// A client of one database. Each request has a connection of its own, closed abortively
/// (see the module's comment).
#[derive(Clone, Debug)]
pub struct Client {
    pub(super) address: Address,
}

/// Longest a request may take before it is abandoned (a report over a billion rows is read
/// as it streams, so this is between two reads, not for the whole answer).
const READ_TIMEOUT: Duration = Duration::from_secs(600);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Kept here, not beside the address: the client knows the address, not the other way.
impl Address {
    /// A client of this address.
    pub fn client(&self) -> Client {
        Client {
            address: self.clone(),
        }
    }

    /// A client of each node alone, in order: the tables of a cluster are made on each, and
    /// each is asked what it runs.
    pub fn node_clients(&self) -> Vec<Client> {
        (self.nodes.iter())
            .map(|node| Client {
                address: Address {
                    nodes: vec![node.clone()],
                    ..self.clone()
                },
            })
            .collect()
    }
}

impl Client {
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The same server, in its `default` database (which every server has).
    pub(super) fn in_default_database(&self) -> Client {
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

    /// Sends `data`, one piece after the other, as the body of `insert` (an
    /// `INSERT ... FORMAT ...` statement).
    pub fn insert(
        &self,
        insert: &str,
        data: &[&[u8]],
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
        let sql = [req.sql.as_bytes()];
        let body = req.data.unwrap_or(&sql);
        let length: usize = body.iter().map(|piece| piece.len()).sum();
        let mut head = format!(
            "POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {length}\r\n\
             Connection: close\r\n"
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
        // A small request goes in one write, so in one segment as far as the network allows:
        // a server that answers and closes at once (the native port does) then has nothing of
        // it left unread, and closes without resetting the connection over its own answer.
        let mut head = head.into_bytes();
        let sent = match length <= ONE_WRITE {
            true => {
                body.iter().for_each(|piece| head.extend_from_slice(piece));
                stream.write_all(&head)
            }
            false => {
                // A block comes in many pieces, some of a few bytes: they go out in writes of
                // ONE_WRITE or more, not in a segment each.
                let mut out = std::io::BufWriter::with_capacity(ONE_WRITE, &mut stream);
                (out.write_all(&head))
                    .and_then(|()| body.iter().try_for_each(|piece| out.write_all(piece)))
                    .and_then(|()| out.flush())
            }
        };
        match sent {
            Ok(()) => read_response(&mut stream, each),
            // A server may answer and close before it has taken the whole request (the native
            // port's message, which is a reset away from being lost): its answer, when it
            // is a refusal, says more than the reset. Anything else is the failed send.
            // Only an answer already sent is wanted, hence the short wait; a success cannot
            // be one (the body was not all sent) and leaves the failed send, which the caller
            // may retry once it knows the INSERT did not land.
            Err(e) => {
                let _ = stream.set_read_timeout(Some(ANSWER_AFTER_FAILED_SEND));
                match read_response(&mut stream, &mut |_| Ok(())) {
                    Err(answer @ (Failure::Refused { .. } | Failure::Invalid(_))) => Err(answer),
                    _ => Err(unreachable(e)),
                }
            }
        }
    }
}

/// The largest body sent in one write with the request's head (see `request_node`).
const ONE_WRITE: usize = 64 << 10;

/// How long an answer is waited for once sending the request failed.
const ANSWER_AFTER_FAILED_SEND: Duration = Duration::from_secs(5);

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
        // ALL_CONNECTION_TRIES_FAILED: what a Distributed table says of a shard that is down,
        // without naming it.
        Some(279) => Failure::Refused {
            code: 279,
            message: format!("a shard of the cluster cannot be reached ({message})"),
        },
        Some(code) => Failure::Refused { code, message },
        // The native protocol's port, asked over HTTP, says so in plain text.
        None if message.contains("clickhouse-client") => Failure::Invalid(format!(
            "{message} (that is the native port: --db takes the HTTP interface's, 8123 by \
             default)"
        )),
        None => Failure::Unreachable(format!("HTTP {status}: {message}")),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a request's head, up to and with its empty line, byte by byte (not past it).
    fn read_head(conn: &mut TcpStream) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            std::io::Read::read_exact(conn, &mut byte).unwrap();
            head.push(byte[0]);
        }
        String::from_utf8(head).unwrap()
    }

    /// Sends an INSERT of a body far larger than the socket buffers to a server that reads
    /// the request's head, answers `answer`, and closes with the body unread (which resets
    /// the connection): what the client makes of it.
    fn insert_to_a_server_that_answers_early(answer: &'static [u8]) -> Result<(), Failure> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            read_head(&mut conn);
            conn.write_all(answer).unwrap();
        });
        let address = Address::parse(&format!("clickhouse://127.0.0.1:{port}/db"))
            .unwrap()
            .unwrap();
        let body = vec![b'x'; 64 << 20];
        let result = address
            .client()
            .insert("INSERT INTO t FORMAT Native", &[&body], &[], "q");
        server.join().unwrap();
        result
    }

    #[test]
    fn a_body_in_pieces_arrives_whole_and_in_order() {
        // Below ONE_WRITE (sent with the head) and above (sent through the buffer), with
        // pieces of one byte, empty ones, and one larger than the buffer.
        let small: Vec<Vec<u8>> = vec![b"\x1b".to_vec(), vec![], b"abc".to_vec(), vec![7; 1000]];
        let large: Vec<Vec<u8>> = (0..600u32)
            .map(|i| vec![i as u8; (i as usize * 37) % 300])
            .chain([vec![b'z'; 3 * ONE_WRITE], vec![1]])
            .collect();
        for pieces in [small, large] {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = std::thread::spawn(move || {
                let (mut conn, _) = listener.accept().unwrap();
                let head = read_head(&mut conn);
                let length: usize = (head.lines())
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .unwrap()
                    .parse()
                    .unwrap();
                let mut body = vec![0; length];
                std::io::Read::read_exact(&mut conn, &mut body).unwrap();
                conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .unwrap();
                // Nothing follows the body: the client closes (abortively, so a reset is an
                // end too).
                let mut more = [0u8; 1];
                let after = std::io::Read::read(&mut conn, &mut more);
                assert!(!matches!(after, Ok(1)), "bytes after the body");
                body
            });
            let address = Address::parse(&format!("clickhouse://127.0.0.1:{port}/db"))
                .unwrap()
                .unwrap();
            let slices: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
            (address.client())
                .insert("INSERT INTO t FORMAT Native", &slices, &[], "q")
                .unwrap();
            assert_eq!(server.join().unwrap(), pieces.concat());
        }
    }

    #[test]
    fn a_refusal_sent_before_the_body_was_read_is_told_and_never_a_success() {
        let refusal: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Length: 67\r\n\r\nCode: 60, e.displayText() = DB::Exception: Table db.t doesn't exist";
        match insert_to_a_server_that_answers_early(refusal) {
            Err(Failure::Refused { code: 60, message }) => {
                assert!(message.contains("doesn't exist"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        // A success read after a failed send is not one: the body never all reached it.
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        match insert_to_a_server_that_answers_early(ok) {
            Err(failure @ Failure::Unreachable(_)) => assert!(failure.is_transient()),
            other => panic!("{other:?}"),
        }
        match insert_to_a_server_that_answers_early(b"") {
            Err(failure @ Failure::Unreachable(_)) => assert!(failure.is_transient()),
            other => panic!("{other:?}"),
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

    /// The code and message of a refusal, as `exception` reads them.
    fn refused(status: u16, body: &[u8]) -> (u32, String) {
        match exception(status, body) {
            Failure::Refused { code, message } => (code, message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn exceptions_of_old_and_new_servers_give_their_code_and_message() {
        let old = b"Code: 193, e.displayText() = DB::Exception: Wrong password for user default, e.what() = DB::Exception\n";
        assert_eq!(
            refused(500, old),
            (193, "Wrong password for user default".into())
        );
        let down = b"Code: 279, e.displayText() = DB::Exception: All connection tries failed. Log: \n\n, e.what() = DB::Exception\n";
        let (code, message) = refused(500, down);
        assert_eq!(code, 279);
        assert!(message.starts_with("a shard of the cluster cannot be reached"));
        let new = b"Code: 60. DB::Exception: Table default.x does not exist. (UNKNOWN_TABLE) (version 24.1.1)\n";
        assert_eq!(
            refused(404, new),
            (60, "Table default.x does not exist. (UNKNOWN_TABLE)".into())
        );
    }
}
