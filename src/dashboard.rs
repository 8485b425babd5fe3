//! The live dashboard (`aggregate-db --serve`): the HTML report served over HTTP and kept up
//! to date in the open page while a parser writes the database.
//!
//! The page is [`html::page`]'s, with one script of ours (`/live.js`) that fetches the report
//! body (`/body`) every second and puts it in place when it changed: no reload, no framework.
//! Filters are the page's query parameters, named as the options (`?status=404&since=today`)
//! and read by the same parser as the command line; a page without any shows the command
//! line's report.
//!
//! Whatever the number of open pages, each query's report is computed at most once a second:
//! the last report of each query is kept and served again until it is a second old (longer
//! for a report that takes long, see [`fresh_for`]), and the pages that ask while it is
//! computed wait for it. Past that it is computed again only if the store changed ([`Watch`])
//! or the clock moved the query's `--since` or `--until`: a page left open on a database
//! nobody writes costs a few small queries a second, not a report. Each report reads the
//! store as `aggregate-db` does: a SQLite file opened read-only, or a ClickHouse database's
//! queries. A
//! page's query replaces all the command line's report options, `--host` among them. On
//! loopback, a request must name this server as its host, so a web page elsewhere cannot read
//! it by pointing its own name at 127.0.0.1.
//!
//! axum serves it (on a single-threaded tokio runtime; the reports run on the blocking pool):
//! a maintained server, which writes only headers of our own, never from a request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use clap::Parser;

use crate::cli::ReportArgs;
use crate::report::html::{self, LIVE_CSP, Page};
use crate::store::{Reports, Watch};

/// Where `--serve` listens when given no address: this machine only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// How long a computed report is served again, at least, before it is computed anew.
const FRESH: Duration = Duration::from_secs(1);

/// How long a report that took `cost` to compute is served again: [`FRESH`], or twice its
/// cost when longer, so that however often the database changes the server spends at most a
/// third of its time on one query's reports. A report of a large database can take longer
/// than [`FRESH`]: computed again as soon as it is done, it would keep every core busy for as
/// long as a page is open.
fn fresh_for(cost: Duration) -> Duration {
    FRESH.max(cost * 2)
}
/// How long a report that no page asked for is kept, to be served again if the store has not
/// changed: an open page asks every second.
const KEPT: Duration = Duration::from_secs(60);
/// Queries whose reports are kept at most: a script that asks with ever new parameters would
/// otherwise keep a report per query string for [`KEPT`].
const MAX_SLOTS: usize = 32;
/// The memory the kept reports may take together, roughly (see [`kept_size`]): a report with a
/// large `top` holds its rows, and a few dozen of them would hold hundreds of megabytes.
const MAX_KEPT_BYTES: usize = 64 << 20;
/// How often reports no page asked for in [`KEPT`] are let go when no request comes.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// The page's script: every second, the report body of the page's own query, put in place
/// when it changed. It only ever inserts the server's HTML, in which every value from a log
/// is escaped.
const LIVE_JS: &str = r#""use strict";
(function () {
  var report = document.getElementById("report");
  var last = null;
  // Shown while the report cannot be had, so that an old report never passes for a live one.
  var stale = document.createElement("p");
  stale.id = "stale";
  stale.setAttribute("role", "status");
  stale.hidden = true;
  report.parentNode.insertBefore(stale, report);
  var since = null;
  function failed(why) {
    since = since || new Date();
    stale.textContent = "Not updated since " + since.toLocaleTimeString() + ": " + why +
      ". Trying again every second.";
    stale.hidden = false;
    document.documentElement.dataset.stale = "1";
  }
  function tick() {
    fetch("/body" + location.search, { cache: "no-store" })
      .then(function (r) {
        if (r.ok) { return r.text(); }
        failed("the server could not compute the report (HTTP " + r.status + ")");
        return null;
      }, function () { failed("the server does not answer"); return null; })
      .then(function (body) {
        if (body === null) { return; }
        if (body !== last) {
          report.innerHTML = body;
          last = body;
        }
        since = null;
        stale.hidden = true;
        delete document.documentElement.dataset.stale;
        document.documentElement.dataset.updated = String(Date.now());
      })
      .catch(function () { failed("the server does not answer"); })
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
    /// With a ClickHouse store: only the rows of these hosts, as aggregate-db --host.
    #[arg(long, value_delimiter = ',')]
    host: Vec<String>,
}

/// A computed report: what the page and its body are both made from.
struct Computed {
    report: crate::report::Report,
    sections: Vec<crate::report::Section>,
    /// The store's version before it was counted (`None`: unknown, never the same).
    version: Option<String>,
    /// The query's `--since` and `--until` as they were then (`today` or `2h` move).
    window: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    /// How long it took to compute.
    cost: Duration,
    /// Roughly the memory it holds ([`kept_size`]).
    size: usize,
}

/// One query's last report and when it was computed or last found still true. Its lock is
/// held while the report is computed, so that the pages that ask meanwhile wait for that one
/// report.
type Slot = tokio::sync::Mutex<Option<(Instant, Arc<Computed>)>>;

struct Live {
    store: Reports,
    /// The command line's options, for a page without a query.
    defaults: ReportArgs,
    /// The `Host` a request may name when the server listens on loopback: its own address,
    /// or `localhost` and its port (a web page elsewhere that renamed itself to 127.0.0.1
    /// through DNS names its own host, and is refused). `None` beyond loopback.
    hosts: Option<Vec<String>>,
    /// The slot of each query asked for in the last [`KEPT`], or being computed.
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    /// What tells whether the store changed, opened on first use (again after it failed).
    watch: Mutex<Option<Watch>>,
    /// Reports computed since the start, and reports found stale but kept, the store
    /// unchanged (`/stats`).
    computed: AtomicU64,
    unchanged: AtomicU64,
}

/// Serves the live report of `store` on `addr` until `stop` is set; `defaults` are the report
/// options of the command line (filters, `--report`, `--top`...).
pub fn serve(
    store: Reports,
    addr: SocketAddr,
    defaults: ReportArgs,
    stop: Arc<AtomicBool>,
    warn: &mut dyn FnMut(String),
) -> anyhow::Result<()> {
    // A bad default is an error now, not on the first page.
    defaults.query(|| Ok(crate::zone::LogOffsets::Unknown))?;
    if !addr.ip().is_loopback() {
        warn(format!(
            "serving on {addr}, beyond this machine, with no authentication: anyone who can \
             reach it can read these reports"
        ));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let bound = listener.local_addr()?;
        let hosts = bound.ip().is_loopback().then(|| {
            let port = bound.port();
            let mut hosts = vec![bound.to_string(), format!("localhost:{port}")];
            if port == 80 {
                hosts.extend([bound.ip().to_string(), "localhost".into()]);
            }
            hosts
        });
        let live = Arc::new(Live {
            store,
            defaults,
            hosts,
            slots: Mutex::new(HashMap::new()),
            watch: Mutex::new(None),
            computed: AtomicU64::new(0),
            unchanged: AtomicU64::new(0),
        });
        // Scripts (and tests) read the address from this line: with port 0 the system chose.
        eprintln!("aggregate-db: serving http://{bound}/ (Ctrl+C stops)");
        let app = axum::Router::new()
            .route("/", get(page))
            .route("/body", get(body))
            .route("/live.js", get(script))
            .route("/stats", get(stats))
            .with_state(Arc::clone(&live));
        // Reports are let go a while after the last page that asked closed, requests or not.
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SWEEP_EVERY).await;
                let mut slots = live.slots.lock().expect("no thread panics holding it");
                sweep(&mut slots, None, Instant::now());
            }
        });
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
async fn page(
    State(live): State<Arc<Live>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let response = live
        .answer(&headers, query, |c| {
            html::page(&c.report, &c.sections, Page::Live)
        })
        .await;
    // A page opened while the report fails (the database not made yet, being replaced) asks
    // again by itself, as the open page's script does, instead of staying an error.
    match response.status() {
        StatusCode::INTERNAL_SERVER_ERROR => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/html; charset=utf-8",
            "default-src 'none'",
            RETRY_PAGE.into(),
        ),
        _ => response,
    }
}

/// The page of a report that failed: the reason is in the server's log, and a browser asks
/// again every two seconds (with no script).
const RETRY_PAGE: &str = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"refresh\" content=\"2\"><title>aggregate-db: no report yet</title></head>\
<body><p id=\"stale\">The report could not be computed: the server's log says why. This page \
tries again every two seconds.</p></body></html>\n";

/// The report body of a query, which the page's script puts in place.
async fn body(
    State(live): State<Arc<Live>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    live.answer(&headers, query, |c| html::body(&c.report, &c.sections))
        .await
}

async fn script() -> Response {
    let mut response = LIVE_JS.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    response
}

/// How many reports the server computed, and how many it kept the store unchanged: how to see
/// that many pages cost one report a second, and an unchanged store none.
async fn stats(State(live): State<Arc<Live>>, headers: HeaderMap) -> Response {
    if let Some(refused) = live.refuse_host(&headers) {
        return refused;
    }
    let computed = live.computed.load(Ordering::SeqCst);
    let unchanged = live.unchanged.load(Ordering::SeqCst);
    // A refused query leaves an empty slot until the next sweep: not counted. A slot being
    // computed again still holds its last report.
    let queries = (live.slots.lock().expect("no thread panics holding it"))
        .values()
        .filter(|slot| slot.try_lock().map_or(true, |held| held.is_some()))
        .count();
    plain(
        StatusCode::OK,
        format!(
            "reports computed: {computed}\nreports kept, the store unchanged: {unchanged}\n\
             queries whose report is kept: {queries}\n"
        ),
    )
}

fn html_response(text: String) -> Response {
    reply(StatusCode::OK, "text/html; charset=utf-8", LIVE_CSP, text)
}

/// A text reply that a browser shows as text and nothing else.
fn plain(status: StatusCode, text: String) -> Response {
    reply(
        status,
        "text/plain; charset=utf-8",
        "default-src 'none'",
        text,
    )
}

/// A reply of ours: its type stated and never sniffed, its policy, never cached.
fn reply(status: StatusCode, kind: &'static str, csp: &'static str, text: String) -> Response {
    let mut response = (status, text).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A query the options refuse (400, with the reason), or a report that failed (500: the
/// reason goes to the server's stderr, not to whoever asked).
fn refusal(e: anyhow::Error) -> Response {
    match e.downcast_ref::<clap::Error>() {
        // clap's message is whole (and says which option).
        Some(usage) => plain(StatusCode::BAD_REQUEST, usage.to_string()),
        None if e.is::<Refused>() => plain(StatusCode::BAD_REQUEST, format!("{e}\n")),
        None => {
            eprintln!("aggregate-db: {e:#}");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the report could not be computed: the server's log says why\n".into(),
            )
        }
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

impl Live {
    /// A refusal for a request that names another host than this server (see [`Live::hosts`]).
    fn refuse_host(&self, headers: &HeaderMap) -> Option<Response> {
        let hosts = self.hosts.as_ref()?;
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        match host.is_some_and(|h| hosts.iter().any(|ours| ours.eq_ignore_ascii_case(h))) {
            true => None,
            false => Some(plain(
                StatusCode::MISDIRECTED_REQUEST,
                format!("this server answers for {} only\n", hosts.join(", ")),
            )),
        }
    }

    /// The report of `query`, rendered by `render`, for a request that names this server.
    async fn answer(
        self: &Arc<Self>,
        headers: &HeaderMap,
        query: Option<String>,
        render: impl FnOnce(&Computed) -> String,
    ) -> Response {
        if let Some(refused) = self.refuse_host(headers) {
            return refused;
        }
        match self.report(query).await {
            Ok(computed) => html_response(render(&computed)),
            Err(e) => refusal(e),
        }
    }

    /// The report of `query`: the one computed less than [`fresh_for`] its cost ago, or, if none, one
    /// computed now (or found still true), once for every page that asks meanwhile.
    async fn report(self: &Arc<Self>, query: Option<String>) -> anyhow::Result<Arc<Computed>> {
        let key = query.unwrap_or_default();
        let slot = {
            let mut slots = self.slots.lock().expect("no thread panics holding it");
            sweep(&mut slots, Some(&key), Instant::now());
            Arc::clone(slots.entry(key.clone()).or_default())
        };
        let mut held = slot.lock().await;
        if let Some((at, computed)) = &*held
            && at.elapsed() < fresh_for(computed.cost)
        {
            return Ok(Arc::clone(computed));
        }
        let live = Arc::clone(self);
        let last = held.as_ref().map(|(_, computed)| Arc::clone(computed));
        let computed = tokio::task::spawn_blocking(move || live.compute(&key, last))
            .await
            .context("the report panicked")??;
        *held = Some((Instant::now(), Arc::clone(&computed)));
        Ok(computed)
    }

    /// Runs the report of a query string on the database, unless `last`, its last report,
    /// is still true.
    fn compute(&self, query: &str, last: Option<Arc<Computed>>) -> anyhow::Result<Arc<Computed>> {
        let started = Instant::now();
        // Before anything is read: a write after this is seen by the next report.
        let version = self.version();
        let (parsed, hosts);
        let (args, store) = match query.is_empty() {
            true => (&self.defaults, &self.store),
            false => {
                let query = QueryArgs::try_parse_from(query_args(query)?)?;
                hosts = (self.store.of_hosts(query.host)).map_err(|e| Refused(format!("{e:#}")))?;
                parsed = query.report;
                (&parsed, &hosts)
            }
        };
        // The store's offsets, when --tz leaves the zone to them, are read again for each
        // report (lines of another zone may have arrived since the last), and before the
        // query: they set the days of --since.
        let log = match args.tz {
            Some(_) => crate::zone::LogOffsets::Unknown,
            None => store.log_offsets()?,
        };
        // Filters that contradict each other (--since after --until) are the query's fault.
        let query = args
            .query(|| Ok(log))
            .map_err(|e| Refused(format!("{e:#}")))?;
        let window = (query.filters.since, query.filters.until);
        if let Some(last) = last
            && version.is_some()
            && last.version == version
            && last.window == window
        {
            self.unchanged.fetch_add(1, Ordering::SeqCst);
            return Ok(last);
        }
        self.computed.fetch_add(1, Ordering::SeqCst);
        let counts = store.counts(&query, true)?;
        let mut report = counts.into_report(&query, args.bucket);
        // A misspelt host reports nothing at all: the command line warns of it on stderr,
        // the page names it beside its filters.
        let unknown = store.unknown_hosts()?;
        if !unknown.is_empty() {
            report
                .filters
                .push(("no rows of host".into(), unknown.join(",")));
        }
        Ok(Arc::new(Computed {
            size: kept_size(&report),
            report,
            sections: query.sections,
            version,
            window,
            cost: started.elapsed(),
        }))
    }

    /// The store's version now; `None` when it cannot be told (the report is then computed,
    /// and says what is wrong).
    fn version(&self) -> Option<String> {
        let mut watch = self.watch.lock().expect("no thread panics holding it");
        if watch.is_none() {
            *watch = self.store.watch().ok();
        }
        let version = watch.as_mut()?.version().ok();
        if version.is_none() {
            *watch = None;
        }
        version
    }
}

/// Lets go, at `now`, of the reports not worth keeping, before the slot of `coming` is
/// taken. A slot no request holds and whose report no page asked for in [`KEPT`] goes, so that
/// the queries kept are those of the pages open. Then, past [`MAX_SLOTS`], and past
/// [`MAX_KEPT_BYTES`] among the reports that no page asked for since they were last fresh
/// (idle), the reports asked for longest ago go first. Never `coming`'s, one a request holds,
/// or, for their size, those of open pages: a page whose report alone passes the bound would
/// otherwise have it computed from nothing at every ask.
fn sweep(slots: &mut HashMap<String, Arc<Slot>>, coming: Option<&str>, now: Instant) {
    let age = |at: Instant| now.saturating_duration_since(at);
    slots.retain(|_, slot| {
        Arc::strong_count(slot) > 1
            || slot
                .try_lock()
                .is_ok_and(|held| held.as_ref().is_some_and(|(at, _)| age(*at) < KEPT))
    });
    let idle =
        |(at, computed): &(Instant, Arc<Computed>)| age(*at) > fresh_for(computed.cost) + FRESH;
    // The slot asked for longest ago that may go (an idle one only, if `idle_only`).
    let oldest = |slots: &HashMap<String, Arc<Slot>>, idle_only: bool| -> Option<String> {
        (slots.iter())
            .filter(|(key, slot)| Some(key.as_str()) != coming && Arc::strong_count(slot) == 1)
            .filter_map(|(key, slot)| {
                let held = slot.try_lock().ok()?;
                (!idle_only || held.as_ref().is_none_or(idle)).then_some(())?;
                Some((held.as_ref().map(|(at, _)| *at), key))
            })
            .min_by_key(|&(at, _)| at)
            .map(|(_, key)| key.clone())
    };
    let idle_bytes = |slots: &HashMap<String, Arc<Slot>>| -> usize {
        (slots.values())
            .filter_map(|slot| {
                let held = slot.try_lock().ok()?;
                let kept = held.as_ref().filter(|kept| idle(kept))?;
                Some(kept.1.size)
            })
            .sum()
    };
    let new = coming.is_some_and(|key| !slots.contains_key(key));
    while new && slots.len() >= MAX_SLOTS {
        match oldest(slots, false) {
            Some(key) => slots.remove(&key),
            // Every slot is in use: the new one goes beside them.
            None => break,
        };
    }
    while idle_bytes(slots) > MAX_KEPT_BYTES {
        match oldest(slots, true) {
            Some(key) => slots.remove(&key),
            None => break,
        };
    }
}

/// Roughly the memory a report holds: its rows, which grow with `top`, the traffic's buckets
/// and the days; the rest is of a fixed size.
fn kept_size(report: &crate::report::Report) -> usize {
    /// Rows of a list, each with the text it owns.
    fn rows<T>(rows: &[T], text: impl Fn(&T) -> &String) -> usize {
        (rows.iter())
            .map(|row| std::mem::size_of_val(row) + text(row).capacity())
            .sum()
    }
    let lists = [
        &report.urls,
        &report.pages.rows,
        &report.statics.rows,
        &report.not_found,
        &report.clients,
        &report.agents,
        &report.browsers,
        &report.systems,
        &report.devices,
        &report.referrers,
        &report.sites,
        &report.methods,
        &report.hosts,
    ];
    std::mem::size_of_val(report)
        + (lists.into_iter())
            .map(|list| rows(list, |row| &row.key))
            .sum::<usize>()
        + rows(&report.times.slowest, |row| &row.0)
        + rows(&report.times.most_time, |row| &row.0)
        + rows(&report.traffic, |row| &row.start)
        + rows(&report.days, |row| &row.day)
}

/// `status=404&since=today&strip-query` as options: `--status=404 --since=today
/// --strip-query` (a key with no value is a flag). Names are the options' own; `format`,
/// `output` and `threads` are not a page's to choose.
fn query_args(query: &str) -> anyhow::Result<Vec<String>> {
    let mut args = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (key, value) = (decode(key), decode(value));
        let key = key.replace('_', "-");
        if matches!(key.as_str(), "format" | "output" | "o" | "threads" | "j") {
            return Err(Refused(format!(
                "a page has no --{key}: it is HTML, served, counted on the server's threads"
            ))
            .into());
        }
        // One argument per option, its value joined to it: a value is never read as an
        // option of its own.
        args.push(match value.is_empty() {
            true => format!("--{key}"),
            false => format!("--{key}={value}"),
        });
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
    fn a_report_is_served_again_for_a_second_or_twice_what_it_cost() {
        let ms = Duration::from_millis;
        assert_eq!(fresh_for(ms(3)), FRESH);
        assert_eq!(fresh_for(ms(500)), FRESH);
        assert_eq!(fresh_for(ms(1500)), ms(3000));
    }

    /// A slot holding a report computed at `at` whose rows hold about `bytes`.
    fn slot(at: Instant, bytes: usize) -> Arc<Slot> {
        let query = crate::report::Query::all();
        let mut report = crate::report::Counts::default().into_report(&query, None);
        report.urls.push(crate::report::Ranked {
            key: "u".repeat(bytes),
            ..Default::default()
        });
        let computed = Computed {
            size: kept_size(&report),
            report,
            sections: Vec::new(),
            version: None,
            window: (None, None),
            cost: Duration::ZERO,
        };
        Arc::new(tokio::sync::Mutex::new(Some((at, Arc::new(computed)))))
    }

    fn keys(slots: &HashMap<String, Arc<Slot>>) -> Vec<String> {
        let mut keys: Vec<String> = slots.keys().cloned().collect();
        keys.sort();
        keys
    }

    #[test]
    fn reports_go_when_no_page_asked_for_a_minute_or_they_hold_too_much() {
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        const MIB: usize = 1 << 20;
        // At 61 s: the report of 0 s is a minute old, unless a request holds it.
        let mut slots = HashMap::new();
        slots.insert("old".to_string(), slot(at(0), 10));
        slots.insert("recent".to_string(), slot(at(56), 10));
        let held = slot(at(0), 10);
        slots.insert("held".to_string(), Arc::clone(&held));
        sweep(&mut slots, None, at(61));
        assert_eq!(keys(&slots), ["held", "recent"]);
        drop(held);
        // Three idle reports of 40 MiB: the two asked for longest ago go, the last fits.
        let mut slots = HashMap::new();
        for (key, secs) in [("a", 0), ("b", 1), ("c", 2)] {
            slots.insert(key.to_string(), slot(at(secs), 40 * MIB));
        }
        sweep(&mut slots, None, at(10));
        assert_eq!(keys(&slots), ["c"]);
        // The report of an open page (asked for a second ago) stays, however large, and so
        // does the one asked for now.
        let mut slots = HashMap::new();
        slots.insert("open".to_string(), slot(at(9), 100 * MIB));
        slots.insert("asked".to_string(), slot(at(0), 100 * MIB));
        slots.insert("idle".to_string(), slot(at(1), 100 * MIB));
        sweep(&mut slots, Some("asked"), at(10));
        assert_eq!(keys(&slots), ["asked", "open"]);
        // Past the most queries, a new one takes the place of the one asked for longest ago.
        let mut slots = HashMap::new();
        for n in 0..MAX_SLOTS {
            slots.insert(n.to_string(), slot(at(n as u64), 10));
        }
        sweep(&mut slots, Some("new"), at(50));
        assert_eq!(slots.len(), MAX_SLOTS - 1);
        assert!(!slots.contains_key("0"));
    }

    #[test]
    fn a_query_string_becomes_the_options() {
        assert_eq!(
            query_args("status=404%2C5xx&since=today&strip-query&url=%5E%2Fa+b").unwrap(),
            [
                "--status=404,5xx",
                "--since=today",
                "--strip-query",
                "--url=^/a b"
            ]
        );
        assert_eq!(decode("%zz%4"), "%zz%4");
        for refused in ["format=json", "threads=256", "j=9", "output=x"] {
            assert!(query_args(refused).is_err(), "{refused}");
        }
        // A value is never an option: `--strip-query=--threads=256` is refused by clap.
        let smuggled =
            QueryArgs::try_parse_from(query_args("strip-query=--threads%3D256").unwrap());
        assert!(smuggled.is_err());
        let args = QueryArgs::try_parse_from(query_args("status=999").unwrap());
        assert!(args.is_err());
    }
}
