//! `aggregate-db --serve`: the live report over HTTP, its query parameters, its refusals, its
//! once-a-second report runs, and, in a real browser (chromium driven through chromedriver's
//! WebDriver protocol), lines appended while continuous-parse runs appearing on the open page
//! without a reload, hostile log data never running. Without chromium and chromedriver the
//! browser test says SKIPPED, except under CI, which installs them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::workdir::{
    Running, Workdir, bin_path, data_v, out_db_json, programs_or_skip, wait_until,
};

/// An HTTP/1.1 request to `addr`, with the connection closed after it: status, headers
/// (lowercased names) and body.
fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Read by the length the headers give: chromedriver says `Connection: close` and keeps
    // the connection open.
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    let complete = |raw: &[u8]| -> bool {
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            return false;
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        let body = &raw[end + 4..];
        match head.lines().find_map(|l| l.strip_prefix("content-length:")) {
            Some(n) => body.len() >= n.trim().parse::<usize>().unwrap(),
            None if head.contains("transfer-encoding: chunked") => body.ends_with(b"0\r\n\r\n"),
            None => false,
        }
    };
    while !complete(&raw) {
        let n = stream.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
    }
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = raw.split_once("\r\n\r\n").expect("a response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let head = head.to_ascii_lowercase();
    let body = match head.contains("transfer-encoding: chunked") {
        false => rest.to_string(),
        true => unchunk(rest),
    };
    (status, head, body)
}

fn unchunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    out
}

/// The whole reply to a GET of `path` on `addr` naming `host` as its host.
fn reply_as(addr: &str, host: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

/// The status of a GET of `path` on `addr` naming `host` as its host.
fn http_as(addr: &str, host: &str, path: &str) -> u16 {
    let reply = reply_as(addr, host, path);
    reply.split(' ').nth(1).unwrap().parse().unwrap()
}

pub(crate) fn get(addr: &str, path: &str) -> (u16, String, String) {
    http(addr, "GET", path, None)
}

/// aggregate-db serving `db` (with `args`), and the address it says it serves.
pub(crate) fn serve(wd: &Workdir, args: &[&str]) -> (Running, String) {
    let mut child = Command::new(bin_path("aggregate-db"))
        .args(args)
        .current_dir(wd.root())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (line, _) = first_line_then_drain(&mut child);
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (Running(child), addr)
}

/// The first line the child writes on stderr; the rest is read on a thread (so the child
/// never writes to a closed pipe), and collected for the test to look at when it exits.
fn first_line_then_drain(
    child: &mut std::process::Child,
) -> (String, std::thread::JoinHandle<String>) {
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let rest = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        rest
    });
    (line, rest)
}

/// The number in `data-v` of the element with `id` in some HTML.
pub(crate) fn number(html: &str, id: &str) -> Option<u64> {
    data_v(html, id)?.parse().ok()
}

/// The server's `/stats`: reports computed, and reports kept because the store was unchanged.
pub(crate) fn stats(addr: &str) -> (u64, u64) {
    let numbers = stats_lines(addr);
    (numbers[0], numbers[1])
}

/// Each line of `/stats`, as its number.
fn stats_lines(addr: &str) -> Vec<u64> {
    let text = get(addr, "/stats").2;
    (text.lines())
        .map(|line| line.rsplit(": ").next().unwrap().parse().unwrap())
        .collect()
}

fn a_log(wd: &Workdir, lines: usize) {
    let mut log = String::new();
    for i in 0..lines {
        log.push_str(&format!(
            "10.0.0.{} - - [05/Jan/2024:10:{:02}:00 +0000] \"GET /p{} HTTP/1.1\" {} 10 \"-\" \"<img src=x onerror=window.__pwned=1>\"\n",
            i % 9,
            i % 60,
            i % 4,
            if i % 5 == 0 { 404 } else { 200 }
        ));
    }
    wd.write("logs/access.log", log);
}

#[test]
fn a_report_is_computed_again_only_once_the_database_or_its_window_changed() {
    let wd = Workdir::new();
    a_log(&wd, 50);
    let parse = || {
        wd.cmd("parse-to-db")
            .args(["--db", "out.db", "--quiet", "logs/access.log"])
            .assert()
            .success();
    };
    parse();
    let (server, addr) = serve(&wd, &["--db", "out.db", "--serve", "127.0.0.1:0"]);
    let requests =
        |query: &str| number(&get(&addr, &format!("/body?{query}")).2, "summary-requests");
    assert_eq!(requests("report=summary"), Some(50));
    let (computed, _) = stats(&addr);
    // Past the second a report is kept, a page that asks again finds the database unchanged
    // and gets the same report, not computed again.
    wait_until("a report kept, the database unchanged", || {
        assert_eq!(requests("report=summary"), Some(50));
        stats(&addr).1 > 0
    });
    assert_eq!(stats(&addr).0, computed);
    // Lines written: the next report past the second has them.
    wd.append(
        "logs/access.log",
        "10.0.0.1 - - [05/Jan/2024:11:00:00 +0000] \"GET /new HTTP/1.1\" 200 5 \"-\" \"x\"\n",
    );
    parse();
    wait_until("the report of the new line", || {
        requests("report=summary") == Some(51)
    });
    assert!(stats(&addr).0 > computed);
    // A refused query has no report to keep.
    let kept = stats_lines(&addr)[2];
    assert_eq!(get(&addr, "/body?top=many").0, 400);
    assert_eq!(stats_lines(&addr)[2], kept);
    // A window relative to now moves with the clock: that report is computed again with no
    // write (the database has nothing in the last hour: what matters is that it is asked).
    // However many queries are asked, the reports of a few dozen at most are kept.
    for top in 1..=40 {
        assert_eq!(get(&addr, &format!("/body?report=status&top={top}")).0, 200);
    }
    assert!(stats_lines(&addr)[2] <= 32, "{:?}", stats_lines(&addr));
    let recent = "/body?report=summary&since=1h";
    assert_eq!(get(&addr, recent).0, 200);
    let (computed, _) = stats(&addr);
    wait_until("the report of a moved window", || {
        assert_eq!(get(&addr, recent).0, 200);
        stats(&addr).0 > computed
    });
    // The database removed (the page fails meanwhile) and made again from another log: its
    // report, not the last one of the old file.
    for file in ["out.db", "out.db-wal", "out.db-shm"] {
        let _ = std::fs::remove_file(wd.path(file));
    }
    wait_until("the report of a removed database to fail", || {
        get(&addr, "/body?report=summary").0 == 500
    });
    // A page opened meanwhile asks again by itself (no script needed).
    let (status, _, page) = get(&addr, "/?report=summary");
    assert_eq!(status, 500);
    assert!(
        page.contains(r#"<meta http-equiv="refresh" content="2">"#),
        "{page}"
    );
    a_log(&wd, 7);
    parse();
    wait_until("the report of the new database", || {
        requests("report=summary") == Some(7)
    });
    assert!(server.signal_and_wait("-INT").success());
}

#[test]
fn writers_that_come_and_go_never_break_the_open_page() {
    let wd = Workdir::new();
    let log = |n: usize| {
        let name = format!("l{n}.log");
        (wd.cmd("generate-logs"))
            .args([
                "--quiet",
                "--count",
                "100",
                "--seed",
                &n.to_string(),
                "-o",
                &name,
            ])
            .assert()
            .success();
        name
    };
    let parse = |name: &str| {
        (wd.cmd("parse-to-db"))
            .args(["--db", "out.db", "--quiet", name])
            .assert()
            .success();
    };
    parse(&log(0));
    let (server, addr) = serve(&wd, &["--db", "out.db", "--serve", "127.0.0.1:0"]);
    // Each writer is, as it exits, the last user of the database it sees: it must see the
    // server's connection too, or it checkpoints and deletes the WAL under it, and the page
    // says "database disk image is malformed" from then on.
    for n in 1..=4 {
        let (status, _, body) = get(&addr, "/body");
        assert_eq!(status, 200, "after {n} writers: {body}");
        assert_eq!(number(&body, "summary-requests"), Some(100 * n as u64));
        parse(&log(n));
        wait_until("the report of the new lines", || {
            let (status, _, body) = get(&addr, "/body");
            assert_eq!(status, 200, "after {n} writers: {body}");
            number(&body, "summary-requests") == Some(100 * (n as u64 + 1))
        });
    }
    assert!(server.signal_and_wait("-INT").success());
}

#[test]
fn the_server_answers_the_json_numbers_refuses_bad_queries_and_stops_on_ctrl_c() {
    let wd = Workdir::new();
    a_log(&wd, 50);
    wd.cmd("parse-to-db")
        .args(["--db", "out.db", "--quiet", "logs/access.log"])
        .assert()
        .success();
    let (server, addr) = serve(
        &wd,
        &["--db", "out.db", "--serve", "127.0.0.1:0", "--top", "5"],
    );
    let (status, head, page) = get(&addr, "/");
    assert_eq!(status, 200);
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    assert!(head.contains("script-src 'self'"));
    assert!(page.contains(r#"<script src="/live.js" defer></script>"#));
    assert!(page.contains("Top 5 URLs"), "the command line's --top");
    let all = out_db_json(&wd, &[]);
    assert_eq!(
        number(&page, "summary-requests"),
        all["summary"]["requests"].as_u64()
    );
    // A query's filters are the options'.
    let (status, _, body) = get(&addr, "/body?status=404&report=summary");
    assert_eq!(status, 200);
    let filtered = out_db_json(&wd, &["--status", "404"]);
    assert_eq!(
        number(&body, "summary-requests"),
        filtered["summary"]["requests"].as_u64()
    );
    assert_eq!(number(&body, "summary-requests"), Some(10));
    assert!(!body.contains("<html"), "the body alone");
    for bad in [
        "status=999",
        "since=2024-13-01",
        "format=json",
        "nosuch=1",
        "host=web1",
    ] {
        let (status, _, text) = get(&addr, &format!("/body?{bad}"));
        assert_eq!(status, 400, "{bad}: {text}");
    }
    let (status, head, script) = get(&addr, "/live.js");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/javascript"));
    assert!(script.contains("fetch(\"/body\""));
    // The values from the log are escaped text in the page.
    assert!(page.contains("&lt;img src=x onerror=window.__pwned=1&gt;"));
    assert!(!page.contains("<img src=x"));
    // However many pages ask at once, for the page or its body, a query's report is computed
    // at most once a second.
    let computed = |addr: &str| stats(addr).0;
    let (before, started) = (computed(&addr), Instant::now());
    let pages: Vec<_> = (0..40)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                get(
                    &addr,
                    if i % 2 == 0 {
                        "/?report=status"
                    } else {
                        "/body?report=status"
                    },
                )
                .0
            })
        })
        .collect();
    assert!(pages.into_iter().all(|p| p.join().unwrap() == 200));
    let runs = computed(&addr) - before;
    let allowed = started.elapsed().as_secs() + 1;
    assert!(
        runs <= allowed,
        "{runs} reports for 40 pages in {allowed} s at most"
    );
    // Neither threads nor another host's name: a page elsewhere that points its own name at
    // 127.0.0.1 is refused.
    assert_eq!(get(&addr, "/body?threads=256").0, 400);
    let port = addr.rsplit(':').next().unwrap();
    let refused = reply_as(&addr, &format!("evil.example:{port}"), "/");
    assert!(refused.starts_with("HTTP/1.1 421"), "{refused}");
    assert_eq!(http_as(&addr, &format!("localhost:{port}"), "/stats"), 200);
    // Ctrl+C stops it, cleanly.
    assert!(server.signal_and_wait("-INT").success());
    // Beyond loopback it says there is no authentication.
    let mut open = Command::new(bin_path("aggregate-db"))
        .args(["--db", "out.db", "--serve", "0.0.0.0:0"])
        .current_dir(wd.root())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (first, rest) = first_line_then_drain(&mut open);
    assert!(first.contains("no authentication"), "{first}");
    assert!(Running(open).signal_and_wait("-INT").success());
    assert!(rest.join().unwrap().contains("serving http://0.0.0.0:"));
    // A database that cannot be read is a 500 that says where to look, not why.
    let (missing, at) = serve(&wd, &["--db", "nothing.db", "--serve", "127.0.0.1:0"]);
    let (status, _, text) = get(&at, "/body");
    assert_eq!(status, 500, "{text}");
    assert!(text.contains("the server's log says why") && !text.contains("nothing.db"));
    assert!(missing.signal_and_wait("-INT").success());
    // Options that make no sense for a page are refused.
    wd.cmd("aggregate-db")
        .args(["--db", "out.db", "--serve", "--format", "json"])
        .assert()
        .code(2);
}

/// A WebDriver session of chromedriver at `driver`.
struct Session {
    driver: String,
    id: String,
}

impl Session {
    fn new(driver: &str, chromium: &std::path::Path, profile: &std::path::Path) -> Session {
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--no-first-run",
                         format!("--user-data-dir={}", profile.display())],
            },
        }}});
        let (status, _, body) = http(driver, "POST", "/session", Some(&caps.to_string()));
        assert_eq!(status, 200, "{body}");
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        Session {
            driver: driver.to_string(),
            id: doc["value"]["sessionId"].as_str().unwrap().to_string(),
        }
    }

    fn post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let path = format!("/session/{}/{path}", self.id);
        let (status, _, text) = http(&self.driver, "POST", &path, Some(&body.to_string()));
        assert_eq!(status, 200, "{path}: {text}");
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["value"].take()
    }

    fn run(&self, script: &str) -> serde_json::Value {
        self.post(
            "execute/sync",
            serde_json::json!({"script": script, "args": []}),
        )
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = http(
            &self.driver,
            "DELETE",
            &format!("/session/{}", self.id),
            None,
        );
    }
}

#[test]
fn in_a_browser_lines_appended_while_continuous_parse_runs_appear_without_a_reload() {
    let Some([chromium, chromedriver]) = programs_or_skip(
        &["chromium", "chromedriver"],
        "apt-get install chromium chromium-driver",
    )
    .map(|found| <[PathBuf; 2]>::try_from(found).unwrap()) else {
        return;
    };
    let wd = Workdir::new();
    a_log(&wd, 30);
    let _parser = wd.spawn(
        "continuous-parse",
        &[
            "--db",
            "out.db",
            "--quiet",
            "--poll-interval",
            "0.05",
            "--linger",
            "0",
            "logs/access.log",
        ],
    );
    let requests =
        |wd: &Workdir| out_db_json(wd, &["--report", "summary"])["summary"]["requests"].as_u64();
    wait_until("the follower's first rows", || {
        wd.cmd("aggregate-db")
            .args(["--db", "out.db", "--report", "summary", "--format", "json"])
            .output()
            .is_ok_and(|o| o.status.success())
            && requests(&wd) == Some(30)
    });
    let (server, addr) = serve(&wd, &["--db", "out.db", "--serve", "127.0.0.1:0"]);
    // chromedriver on a port the system picks (free when asked).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _driver = Running::spawn(
        Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let driver = format!("127.0.0.1:{port}");
    wait_until("chromedriver to answer", || {
        TcpStream::connect(&driver).is_ok() && get(&driver, "/status").0 == 200
    });
    let session = Session::new(&driver, &chromium, &wd.path("profile"));
    session.post(
        "url",
        serde_json::json!({"url": format!("http://{addr}/?report=summary,urls")}),
    );
    let shown = || session.run("return document.getElementById('summary-requests').dataset.v");
    assert_eq!(shown(), "30");
    // A mark that a reload would wipe out.
    session.run("window.__same_page = true; return null");
    let mut log = String::new();
    for i in 0..12 {
        log.push_str(&format!(
            "10.1.0.{i} - - [05/Jan/2024:11:00:{i:02} +0000] \"GET /new HTTP/1.1\" 200 5 \"-\" \"</svg><script>window.__pwned=1</script>\"\n"
        ));
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(wd.path("logs/access.log"))
        .unwrap()
        .write_all(log.as_bytes())
        .unwrap();
    wait_until("the follower to store the new lines", || {
        requests(&wd) == Some(42)
    });
    let stored = Instant::now();
    wait_until("the page to show the new lines", || shown() == "42");
    eprintln!(
        "the page showed the new lines {:?} after they were stored (it fetches each second)",
        stored.elapsed()
    );
    assert_eq!(
        session.run("return window.__same_page === true"),
        true,
        "the page reloaded"
    );
    assert_eq!(session.run("return typeof window.__pwned"), "undefined");
    let page_text = session.run("return document.body.innerText").to_string();
    assert!(page_text.contains("/new"), "{page_text}");
    // Nothing went wrong in the page: no script refused, no error.
    let logs = session.post("se/log", serde_json::json!({"type": "browser"}));
    let severe: Vec<&serde_json::Value> = (logs.as_array().unwrap().iter())
        .filter(|entry| entry["level"] == "SEVERE")
        .collect();
    assert!(severe.is_empty(), "the page logged errors: {severe:?}");
    // The server gone, the page says that what it shows is no longer live.
    assert!(server.signal_and_wait("-INT").success());
    wait_until("the page to say it is not updated", || {
        session.run("return document.documentElement.dataset.stale || null") == "1"
    });
    let notice = session.run("return document.getElementById('stale').innerText");
    assert!(notice.to_string().contains("Not updated since"), "{notice}");
    assert_eq!(shown(), "42");
}
