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

use crate::workdir::{Running, Workdir, bin_path, find_program, in_ci, wait_until};

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

fn get(addr: &str, path: &str) -> (u16, String, String) {
    http(addr, "GET", path, None)
}

/// aggregate-db serving `db` (with `args`), and the address it says it serves.
fn serve(wd: &Workdir, args: &[&str]) -> (Running, String) {
    let mut child = Command::new(bin_path("aggregate-db"))
        .args(args)
        .current_dir(wd.root())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (Running(child), addr)
}

/// The number in `data-v` of the element with `id` in some HTML.
fn data_v(page: &str, id: &str) -> Option<u64> {
    let rest = &page[page.find(&format!("id=\"{id}\""))?..];
    let start = rest.find("data-v=\"")? + "data-v=\"".len();
    rest[start..start + rest[start..].find('"')?].parse().ok()
}

fn json_report(wd: &Workdir, args: &[&str]) -> serde_json::Value {
    let out = wd
        .cmd("aggregate-db")
        .args(["--db", "out.db", "--format", "json"])
        .args(args)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
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
    let all = json_report(&wd, &[]);
    assert_eq!(
        data_v(&page, "summary-requests"),
        all["summary"]["requests"].as_u64()
    );
    // A query's filters are the options'.
    let (status, _, body) = get(&addr, "/body?status=404&report=summary");
    assert_eq!(status, 200);
    let filtered = json_report(&wd, &["--status", "404"]);
    assert_eq!(
        data_v(&body, "summary-requests"),
        filtered["summary"]["requests"].as_u64()
    );
    assert_eq!(data_v(&body, "summary-requests"), Some(10));
    assert!(!body.contains("<html"), "the body alone");
    for bad in ["status=999", "since=2024-13-01", "format=json", "nosuch=1"] {
        let (status, _, text) = get(&addr, &format!("/body?{bad}"));
        assert_eq!(status, 400, "{bad}: {text}");
    }
    let (status, head, script) = get(&addr, "/live.js");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/javascript"));
    assert!(script.contains("fetch(\"/body\""));
    // However many pages ask, a query's report is computed at most once a second.
    let runs = |addr: &str| -> u64 { get(addr, "/runs").2.trim().parse().unwrap() };
    let (before, started) = (runs(&addr), Instant::now());
    for _ in 0..40 {
        assert_eq!(get(&addr, "/body?report=status").0, 200);
    }
    let computed = runs(&addr) - before;
    let allowed = started.elapsed().as_secs() + 1;
    assert!(
        computed <= allowed,
        "{computed} runs for 40 pages in {allowed} s at most"
    );
    // Ctrl+C stops it, cleanly.
    assert!(server.signal_and_wait("-INT").success());
    // Beyond loopback it says there is no authentication.
    let mut open = Command::new(bin_path("aggregate-db"))
        .args(["--db", "out.db", "--serve", "0.0.0.0:0"])
        .current_dir(wd.root())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(open.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("no authentication"), "{first}");
    let _ = Running(open).signal_and_wait("-INT");
    // Options that make no sense for a page are refused.
    wd.cmd("aggregate-db")
        .args(["--db", "out.db", "--serve", "--format", "json"])
        .assert()
        .code(2);
}

/// chromium and chromedriver, or None after saying SKIPPED.
fn browser() -> Option<(PathBuf, PathBuf)> {
    match (find_program("chromium"), find_program("chromedriver")) {
        (Some(chromium), Some(driver)) => Some((chromium, driver)),
        _ => {
            assert!(!in_ci(), "chromium or chromedriver missing, and CI is set");
            eprintln!(
                "SKIPPED: chromium or chromedriver not found (apt-get install chromium chromium-driver)"
            );
            None
        }
    }
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
    let Some((chromium, chromedriver)) = browser() else {
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
        |wd: &Workdir| json_report(wd, &["--report", "summary"])["summary"]["requests"].as_u64();
    wait_until("the follower's first rows", || {
        wd.cmd("aggregate-db")
            .args(["--db", "out.db", "--report", "summary", "--format", "json"])
            .output()
            .is_ok_and(|o| o.status.success())
            && requests(&wd) == Some(30)
    });
    let (_server, addr) = serve(&wd, &["--db", "out.db", "--serve", "127.0.0.1:0"]);
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
}
