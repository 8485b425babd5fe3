//! `--format html`: one self-contained page whose numbers are the JSON report's, where log
//! data is only ever text. Checked in the file itself, and in a real browser (Debian's
//! chromium, headless: `apt-get install chromium`), which runs whatever the page would run;
//! without chromium that part says SKIPPED, except under CI, which installs it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::workdir::{Workdir, data_v, out_db_json, programs_or_skip};

/// What a hostile line tries to make the page run: each would change the title.
const HOSTILE_AGENT: &str = "<script>document.title='PWNED'</script>";
const HOSTILE_AGENT_SVG: &str = "</svg><svg onload=document.title='PWNED'>";
const HOSTILE_URL: &str = "/<img src=x onerror=document.title='PWNED'>";
const HOSTILE_REFERRER: &str = "javascript:document.title='PWNED'";

/// A log of a few hours, with hostile user agents, URL and referrer among ordinary lines.
fn hostile_log(wd: &Workdir) {
    let mut log = String::new();
    for i in 0..60 {
        let (url, status, referrer, agent) = match i % 6 {
            0 => (
                HOSTILE_URL,
                404,
                "-",
                "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
            ),
            1 => ("/index.html", 200, HOSTILE_REFERRER, HOSTILE_AGENT),
            2 => ("/style.css", 200, "https://example.org/", HOSTILE_AGENT_SVG),
            3 => ("/api/items?id=7", 500, "-", "curl/8.4.0"),
            _ => (
                "/index.html",
                304,
                "-",
                "Mozilla/5.0 (Windows NT 10.0) Chrome/120.0",
            ),
        };
        log.push_str(&format!(
            "10.0.0.{} - - [05/Jan/2024:{:02}:{:02}:00 +0000] \"GET {url} HTTP/1.1\" {status} {} \"{referrer}\" \"{agent}\"\n",
            i % 7,
            10 + i / 20,
            i % 60,
            100 + i
        ));
    }
    wd.write("logs/access.log", log);
    wd.cmd("parse-to-db")
        .args(["--db", "out.db", "--quiet", "logs/access.log"])
        .assert()
        .success();
}

#[test]
fn the_html_file_holds_the_json_numbers_and_log_data_only_as_text() {
    let wd = Workdir::new();
    hostile_log(&wd);
    wd.cmd("aggregate-db")
        .args(["--db", "out.db", "--format", "html", "-o", "report.html"])
        .assert()
        .success()
        .stdout("");
    let page = std::fs::read_to_string(wd.path("report.html")).unwrap();
    let json = out_db_json(&wd, &[]);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.len() < 1 << 20, "{} bytes", page.len());
    // Nothing to fetch, nothing to run: no script, and a policy that allows none.
    assert!(page.contains("Content-Security-Policy\" content=\"default-src 'none'"));
    for fetch in [
        "<script",
        "<link",
        "<iframe",
        "src=\"http",
        "url(",
        "@import",
    ] {
        assert!(!page.contains(fetch), "{fetch} in the page");
    }
    // The hostile values are there, escaped.
    for hostile in [HOSTILE_AGENT, HOSTILE_AGENT_SVG, HOSTILE_URL] {
        assert!(!page.contains(hostile), "{hostile} unescaped");
    }
    assert!(page.contains("&lt;script&gt;document.title=&#39;PWNED&#39;&lt;/script&gt;"));
    assert!(page.contains("/&lt;img src=x onerror=document.title=&#39;PWNED&#39;&gt;"));
    assert!(!page.contains("href"), "a link made of log data");
    // The numbers are the JSON report's.
    let summary = &json["summary"];
    for (id, key) in [
        ("summary-requests", "requests"),
        ("summary-unique-visitors", "unique_visitors"),
        ("summary-client-ips", "client_ips"),
        ("summary-bytes", "bytes"),
    ] {
        assert_eq!(data_v(&page, id), Some(summary[key].to_string()), "{id}");
    }
    let buckets = page.matches("<g class=\"bucket\"").count();
    assert_eq!(buckets, json["traffic"]["rows"].as_array().unwrap().len());
    for code in json["status"]["codes"].as_array().unwrap() {
        let row = format!(
            "data-status=\"{}\"><td>{}</td><td class=\"n\" data-v=\"{}\"",
            code["status"], code["status"], code["hits"]
        );
        assert!(page.contains(&row), "{row}");
    }
    // A report never replaces its own store.
    wd.cmd("aggregate-db")
        .args(["--db", "out.db", "-o", "out.db"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("is the store itself"));
    assert!(wd.path("out.db").metadata().unwrap().len() > 0);
    // An empty store is said in words.
    wd.write("logs/empty.log", "");
    wd.cmd("parse-to-db")
        .args(["--db", "empty.db", "--quiet", "logs/empty.log"])
        .assert()
        .success();
    let empty = wd
        .cmd("aggregate-db")
        .args(["--db", "empty.db", "--format", "html"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8(empty.stdout)
            .unwrap()
            .contains("No log entries.")
    );
}

/// Runs headless chromium on the file `page` with `args`, in a profile of its own; its
/// output, and its stderr with the page's console messages.
fn headless(chromium: &Path, wd: &Workdir, page: &Path, args: &[&str]) -> (String, String) {
    let profile = wd.path(&format!("chromium-{}", args.join("").len()));
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn in_a_browser_the_page_runs_nothing_from_the_log_and_shows_it_as_text() {
    let Some([chromium]) = programs_or_skip(&["chromium"], "apt-get install chromium")
        .map(|found| <[PathBuf; 1]>::try_from(found).unwrap())
    else {
        return;
    };
    let wd = Workdir::new();
    hostile_log(&wd);
    wd.cmd("aggregate-db")
        .args(["--db", "out.db", "--format", "html", "-o", "report.html"])
        .assert()
        .success();
    let page = wd.path("report.html");
    // The DOM after scripts ran (there are none to run): had any hostile value run, the title
    // would say so.
    let (dom, console) = headless(
        &chromium,
        &wd,
        &page,
        &["--virtual-time-budget=2000", "--dump-dom"],
    );
    assert!(dom.contains("<title>log-pipeline report</title>"), "{dom}");
    assert!(!dom.contains("PWNED</title>"));
    // Shown as text: the DOM holds them as text nodes, which it prints escaped.
    assert!(
        dom.contains("&lt;script&gt;document.title='PWNED'&lt;/script&gt;"),
        "{dom}"
    );
    assert!(dom.contains("&lt;/svg&gt;&lt;svg onload=document.title='PWNED'&gt;"));
    assert!(dom.contains("javascript:document.title='PWNED'"));
    // The numbers the browser holds are the JSON report's, and each traffic bucket is drawn.
    let json = out_db_json(&wd, &[]);
    for (id, key) in [
        ("summary-requests", "requests"),
        ("summary-unique-visitors", "unique_visitors"),
        ("summary-client-ips", "client_ips"),
    ] {
        assert_eq!(
            data_v(&dom, id),
            Some(json["summary"][key].to_string()),
            "{id}"
        );
    }
    let buckets = dom.matches("<g class=\"bucket\"").count();
    assert_eq!(buckets, json["traffic"]["rows"].as_array().unwrap().len());
    // No error in the console: no script refused by the policy, none failed.
    let logged: Vec<&str> = console.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(logged.is_empty(), "the page logged: {logged:?}");
    // A picture for a person to look at.
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("html-report.png");
    let _ = std::fs::remove_file(&shot);
    headless(
        &chromium,
        &wd,
        &page,
        &[
            "--window-size=1280,2400",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
    eprintln!("screenshot of the HTML report: {}", shot.display());
}
