//! The live dashboard (`aggregate-db --serve`): the HTML report served over HTTP and kept up
//! to date in the open page while a parser writes the database.
//!
//! The page is [`html::page`]'s, with one script of ours (`/live.js`) that fetches the report
//! body (`/body`) every second and puts it in place when it changed: no reload, no framework.
//! Filters are the page's query parameters, named as the options (`?status=404&since=today`)
//! and read by the same parser as the command line; a page without any shows the command
//! line's report.
//!
//! Whatever the number of open pages, each report is computed at most once a second: the
//! last body of each query is kept and served again until it is a second old. The database
//! is opened read-only for each report, as `aggregate-db` opens it.
//!
//! axum serves it (on a single-threaded tokio runtime; the reports run on the blocking pool):
//! a maintained server, which writes only headers of our own, never from a request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Parser;

use crate::cli::ReportArgs;
use crate::report::html::{self, LIVE_CSP, Page};

/// Where `--serve` listens when given no address: this machine only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// How long a computed report is served again before it is computed anew.
const FRESH: Duration = Duration::from_secs(1);

/// The page's script: every second, the report body of the page's own query, put in place
/// when it changed. It only ever inserts the server's HTML, in which every value from a log
/// is escaped.
const LIVE_JS: &str = r#""use strict";
(function () {
  var report = document.getElementById("report");
  var last = null;
  function tick() {
    fetch("/body" + location.search, { cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (body) {
        if (body !== null && body !== last) {
          if (last !== null) { report.innerHTML = body; }
          last = body;
        }
        document.documentElement.dataset.updated = String(Date.now());
      })
      .catch(function () {})
      .then(function () { setTimeout(tick, 1000); });
  }
  tick();
})();
"#;

/// The report options a page's query gives, parsed as the command line's.
#[derive(Parser)]
#[command(name = "aggregate-db --serve", no_binary_name = true)]
struct QueryArgs {
    #[command(flatten)]
    report: ReportArgs,
}

struct Live {
    db: PathBuf,
    /// The command line's options, for a page without a query.
    defaults: ReportArgs,
    /// The last body of each query, and when it was computed.
    bodies: Mutex<HashMap<String, (Instant, Arc<String>)>>,
    /// Reports computed since the start (what the cache saves is visible in tests).
    runs: std::sync::atomic::AtomicU64,
}

/// Serves the live report of the database `db` on `addr` until `stop` is set; `defaults` are
/// the report options of the command line (filters, `--report`, `--top`...).
pub fn serve(
    db: PathBuf,
    addr: SocketAddr,
    defaults: ReportArgs,
    stop: Arc<AtomicBool>,
    warn: &mut dyn FnMut(String),
) -> anyhow::Result<()> {
    // A bad default is an error now, not on the first page.
    defaults.query()?;
    if !addr.ip().is_loopback() {
        warn(format!(
            "serving on {addr}, beyond this machine, with no authentication: anyone who can \
             reach it can read these reports"
        ));
    }
    let live = Arc::new(Live {
        db,
        defaults,
        bodies: Mutex::new(HashMap::new()),
        runs: 0.into(),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let bound = listener.local_addr()?;
        // Scripts (and tests) read the address from this line: with port 0 the system chose.
        eprintln!("aggregate-db: serving http://{bound}/ (Ctrl+C stops)");
        let app = axum::Router::new()
            .route("/", get(page))
            .route("/body", get(body))
            .route("/live.js", get(script))
            .route("/runs", get(runs))
            .with_state(live);
        let stopped = async move {
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
            .context("the server failed")
    })
}

/// The whole page of a query.
async fn page(State(live): State<Arc<Live>>, RawQuery(query): RawQuery) -> Response {
    match rendered(live, query, true).await {
        Ok(page) => html_response(page.to_string()),
        Err(e) => refusal(e),
    }
}

/// The report body of a query, which the page's script puts in place.
async fn body(State(live): State<Arc<Live>>, RawQuery(query): RawQuery) -> Response {
    match rendered(live, query, false).await {
        Ok(body) => html_response(body.to_string()),
        Err(e) => refusal(e),
    }
}

async fn script() -> Response {
    let mut response = LIVE_JS.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    response
}

/// How many reports were computed: what the once-a-second rule is checked by.
async fn runs(State(live): State<Arc<Live>>) -> String {
    live.runs.load(Ordering::SeqCst).to_string()
}

fn html_response(text: String) -> Response {
    let mut response = text.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(LIVE_CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A query the options refuse, or a store that cannot be read: the reason, as text.
fn refusal(e: anyhow::Error) -> Response {
    match e.downcast_ref::<clap::Error>() {
        // clap's message is whole (and says which option).
        Some(usage) => (StatusCode::BAD_REQUEST, usage.to_string()).into_response(),
        None if e.is::<Refused>() => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        None => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}\n")).into_response(),
    }
}

/// A query that names an option a page does not take, or filters that cannot hold together.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The page (`whole`) or body of `query`: the one computed less than [`FRESH`] ago, or a new
/// one. The body of a page is cached, and a whole page is built around it.
async fn rendered(
    live: Arc<Live>,
    query: Option<String>,
    whole: bool,
) -> anyhow::Result<Arc<String>> {
    let key = query.unwrap_or_default();
    let cached = {
        let bodies = live.bodies.lock().expect("no thread panics holding it");
        bodies.get(&key).cloned()
    };
    let (report, sections) = match cached {
        Some((at, body)) if at.elapsed() < FRESH && !whole => return Ok(body),
        _ => {
            let live = Arc::clone(&live);
            let key = key.clone();
            tokio::task::spawn_blocking(move || compute(&live, &key))
                .await
                .context("the report panicked")??
        }
    };
    let body = Arc::new(html::body(&report, &sections));
    let mut bodies = live.bodies.lock().expect("no thread panics holding it");
    bodies.insert(key, (Instant::now(), Arc::clone(&body)));
    Ok(match whole {
        true => Arc::new(html::page(&report, &sections, Page::Live)),
        false => body,
    })
}

/// Runs the report of a query string on the database.
fn compute(
    live: &Live,
    query: &str,
) -> anyhow::Result<(crate::report::Report, Vec<crate::report::Section>)> {
    let parsed;
    let args = match query.is_empty() {
        true => &live.defaults,
        false => {
            parsed = QueryArgs::try_parse_from(query_args(query)?)?.report;
            &parsed
        }
    };
    // Filters that contradict each other (--since after --until) are the query's fault.
    let query = args.query().map_err(|e| Refused(format!("{e:#}")))?;
    live.runs.fetch_add(1, Ordering::SeqCst);
    let counts = crate::read::sqlite::counts(&live.db, &query, true)?;
    let report = counts.into_report(&query, args.bucket);
    Ok((report, query.sections))
}

/// `status=404&since=today&strip-query` as options: `--status 404 --since today
/// --strip-query` (a key with no value is a flag). Names are the options' own; `format` and
/// `output` do not apply to a page.
fn query_args(query: &str) -> anyhow::Result<Vec<String>> {
    let mut args = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (key, value) = (decode(key), decode(value));
        if matches!(key.as_str(), "format" | "output" | "o") {
            return Err(Refused(format!("the page has no --{key}: it is HTML, served")).into());
        }
        args.push(format!("--{}", key.replace('_', "-")));
        if !value.is_empty() {
            args.push(value);
        }
    }
    Ok(args)
}

/// A query string's `+` and `%XX` decoded (bytes that are not UTF-8 replaced).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_string_becomes_the_options() {
        assert_eq!(
            query_args("status=404%2C5xx&since=today&strip-query&url=%5E%2Fa+b").unwrap(),
            [
                "--status",
                "404,5xx",
                "--since",
                "today",
                "--strip-query",
                "--url",
                "^/a b"
            ]
        );
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert!(query_args("format=json").is_err());
        let args = QueryArgs::try_parse_from(query_args("status=999").unwrap());
        assert!(args.is_err());
    }
}
