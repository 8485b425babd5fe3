//! The log generator behind `generate-logs`: realistic Combined/Common Log Format lines.
//!
//! Realistic means a report over the output looks like one over a real site: visitors come
//! back (the same IP and user agent make several requests), URLs follow a skewed popularity
//! with query strings, most answers are 2xx/3xx with some 4xx from scanners and a few 5xx, and
//! time moves forward. Lines are produced straight into a byte buffer so that `--count` mode
//! reaches millions of lines per second.
//!
//! Output is appended in whole lines: every `write` ends at a line boundary, so a reader
//! tailing the file (continuous-parse) never sees half a line, and Ctrl+C is only acted on
//! between writes.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Which of the two standard formats to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Common plus referrer and user agent (Apache's `combined`, nginx's default).
    Combined,
    /// Host, ident, user, time, request, status, size only.
    Common,
}

/// Everything `generate-logs` needs, already validated.
#[derive(Debug, Clone)]
pub struct GenerateConfig {
    pub output: PathBuf,
    pub lines_per_batch: u64,
    pub interval: Duration,
    /// Write this many lines as fast as possible, then stop (tests and benchmarks).
    pub count: Option<u64>,
    /// Same seed, same lines (the timestamps excepted unless `start` is set).
    pub seed: Option<u64>,
    /// Fixes the first timestamp; later ones advance by a simulated, seeded clock.
    pub start: Option<DateTime<Utc>>,
    pub format: LogFormat,
}

/// One simulated visitor: the unit that makes several requests in a row.
struct Visitor {
    ip: String,
    user: &'static str,
    agent: &'static str,
}

/// Produces lines. Holds the RNG, the visitor pool and the simulated clock.
pub struct Generator {
    rng: StdRng,
    visitors: Vec<Visitor>,
    clock: DateTime<Utc>,
    fixed_clock: bool,
    format: LogFormat,
}

const VISITOR_POOL: usize = 200;

/// (path, weight). Static files are requested after pages; scanners probe for files that
/// are not there.
const URLS: &[(&str, u32)] = &[
    ("/", 200),
    ("/index.html", 60),
    ("/about", 30),
    ("/contact", 20),
    ("/products", 80),
    ("/products/{id}", 120),
    ("/cart", 40),
    ("/checkout", 20),
    ("/login", 30),
    ("/logout", 10),
    ("/search?q={word}", 60),
    ("/search?q={word}&page={n}", 20),
    ("/api/v1/items?id={id}", 70),
    ("/api/v1/users/{id}", 25),
    ("/static/app.js", 110),
    ("/static/style.css", 110),
    ("/images/logo.png", 90),
    ("/images/products/{id}.jpg", 70),
    ("/blog", 25),
    ("/blog/post-{n}", 40),
    ("/favicon.ico", 50),
    ("/robots.txt", 10),
    ("/wp-login.php", 6),
    ("/.env", 4),
    ("/phpmyadmin/index.php", 3),
];

const WORDS: &[&str] = &[
    "rust",
    "shoes",
    "laptop",
    "coffee",
    "gift+card",
    "red+dress",
    "headphones",
    "desk",
    "lamp",
    "sale",
];

const METHODS: &[(&str, u32)] = &[
    ("GET", 850),
    ("POST", 80),
    ("HEAD", 30),
    ("PUT", 20),
    ("DELETE", 10),
    ("OPTIONS", 10),
];

const PROTOCOLS: &[(&str, u32)] = &[("HTTP/1.1", 80), ("HTTP/2.0", 17), ("HTTP/1.0", 3)];

const AGENTS: &[(&str, u32)] = &[
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        300,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 13_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Safari/605.1.15",
        150,
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
        100,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
        150,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
        120,
    ),
    (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        60,
    ),
    (
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        30,
    ),
    ("curl/8.4.0", 20),
    ("python-requests/2.31.0", 20),
    ("Go-http-client/1.1", 10),
    ("-", 5),
];

const REFERRERS: &[(&str, u32)] = &[
    ("-", 400),
    ("https://www.google.com/", 200),
    ("https://www.bing.com/", 40),
    ("https://duckduckgo.com/", 30),
    ("https://news.ycombinator.com/", 20),
    ("https://example.com/", 150),
    ("https://example.com/products", 100),
    ("https://t.co/x7Qz", 20),
];

const USERS: &[(&str, u32)] = &[("-", 960), ("alice", 15), ("bob", 15), ("admin", 10)];

fn pick<T: Copy>(rng: &mut StdRng, table: &[(T, u32)]) -> T {
    let total: u32 = table.iter().map(|(_, w)| w).sum();
    let mut roll = rng.random_range(0..total);
    for &(item, weight) in table {
        if roll < weight {
            return item;
        }
        roll -= weight;
    }
    table[table.len() - 1].0
}

impl Generator {
    /// A generator seeded with `seed` (or from the OS when `None`). With `start`, timestamps
    /// come from a simulated clock starting there; without, from the wall clock passed to
    /// [`Generator::write_line`].
    pub fn new(seed: Option<u64>, start: Option<DateTime<Utc>>, format: LogFormat) -> Self {
        let rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Generator {
            rng,
            visitors: Vec::with_capacity(VISITOR_POOL),
            clock: start.unwrap_or_else(Utc::now),
            fixed_clock: start.is_some(),
            format,
        }
    }

    fn new_visitor(rng: &mut StdRng) -> Visitor {
        let ip = if rng.random_ratio(1, 10) {
            format!(
                "2001:db8:{:x}:{:x}::{:x}",
                rng.random::<u16>(),
                rng.random::<u16>(),
                rng.random_range(1..0xffffu32)
            )
        } else {
            let a = rng.random_range(1..=223u8);
            let a = if a == 10 || a == 127 { a + 1 } else { a };
            format!(
                "{a}.{}.{}.{}",
                rng.random::<u8>(),
                rng.random::<u8>(),
                rng.random_range(1..=254u8)
            )
        };
        Visitor {
            ip,
            user: pick(rng, USERS),
            agent: pick(rng, AGENTS),
        }
    }

    /// Appends one line (with its `\n`) to `out`. `now` is used as the time unless the
    /// generator runs on its simulated clock.
    pub fn write_line(&mut self, now: DateTime<Utc>, out: &mut Vec<u8>) {
        let rng = &mut self.rng;
        // The gap is drawn in both clock modes so that the random sequence, and so every
        // other field, does not depend on whether --start was given.
        let gap_ms = rng.random_range(0..500u32);
        if self.fixed_clock {
            self.clock += TimeDelta::milliseconds(i64::from(gap_ms));
        } else {
            self.clock = now;
        }

        // Mostly a returning visitor; sometimes a new one takes a slot.
        let slot = rng.random_range(0..VISITOR_POOL);
        if slot >= self.visitors.len() {
            self.visitors.push(Self::new_visitor(rng));
        } else if rng.random_ratio(1, 8) {
            self.visitors[slot] = Self::new_visitor(rng);
        }
        let visitor = &self.visitors[slot.min(self.visitors.len() - 1)];

        let method = pick(rng, METHODS);
        let template = pick(rng, URLS);
        let protocol = pick(rng, PROTOCOLS);
        let referrer = pick(rng, REFERRERS);
        let roll = rng.random_range(0..1000u32);
        let status: u16 =
            if template == "/wp-login.php" || template == "/.env" || template.starts_with("/php") {
                if roll < 900 { 404 } else { 403 }
            } else {
                match roll {
                    0..=799 => 200,
                    800..=829 => 304,
                    830..=849 => 301,
                    850..=879 => 302,
                    880..=889 => 201,
                    890..=899 => 204,
                    900..=939 => 404,
                    940..=959 => 400,
                    960..=969 => 401,
                    970..=979 => 403,
                    980..=989 => 500,
                    990..=994 => 502,
                    _ => 503,
                }
            };
        let size: Option<u64> = match status {
            204 | 304 => None,
            301 | 302 => Some(rng.random_range(150..400)),
            200 if template.starts_with("/images") => Some(rng.random_range(2_000..400_000)),
            200 | 201 => Some(rng.random_range(200..60_000)),
            _ => Some(rng.random_range(100..2_000)),
        };
        let id = rng.random_range(1..5_000u32);
        let n = rng.random_range(1..50u32);
        let word = WORDS[rng.random_range(0..WORDS.len())];

        out.extend_from_slice(visitor.ip.as_bytes());
        out.extend_from_slice(b" - ");
        out.extend_from_slice(visitor.user.as_bytes());
        out.extend_from_slice(b" [");
        write_clf_time(self.clock, out);
        out.extend_from_slice(b"] \"");
        out.extend_from_slice(method.as_bytes());
        out.push(b' ');
        expand_url(template, id, n, word, out);
        out.push(b' ');
        out.extend_from_slice(protocol.as_bytes());
        out.extend_from_slice(b"\" ");
        push_u64(out, u64::from(status));
        out.push(b' ');
        match size {
            Some(size) => push_u64(out, size),
            None => out.push(b'-'),
        }
        if self.format == LogFormat::Combined {
            out.extend_from_slice(b" \"");
            out.extend_from_slice(referrer.as_bytes());
            out.extend_from_slice(b"\" \"");
            out.extend_from_slice(visitor.agent.as_bytes());
            out.push(b'"');
        }
        out.push(b'\n');
    }
}

fn expand_url(template: &str, id: u32, n: u32, word: &str, out: &mut Vec<u8>) {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.extend_from_slice(&rest.as_bytes()[..open]);
        let close = open
            + rest[open..]
                .find('}')
                .expect("templates close their braces");
        match &rest[open + 1..close] {
            "id" => push_u64(out, u64::from(id)),
            "n" => push_u64(out, u64::from(n)),
            _ => out.extend_from_slice(word.as_bytes()),
        }
        rest = &rest[close + 1..];
    }
    out.extend_from_slice(rest.as_bytes());
}

/// `10/Oct/2000:13:55:36 +0000`, the time format of both log formats.
pub fn write_clf_time(t: DateTime<Utc>, out: &mut Vec<u8>) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let two = |out: &mut Vec<u8>, v: u32| {
        out.extend_from_slice(&[b'0' + (v / 10) as u8, b'0' + (v % 10) as u8])
    };
    two(out, t.day());
    out.push(b'/');
    out.extend_from_slice(MONTHS[t.month0() as usize].as_bytes());
    out.push(b'/');
    push_u64(out, t.year().max(0) as u64);
    out.push(b':');
    two(out, t.hour());
    out.push(b':');
    two(out, t.minute());
    out.push(b':');
    two(out, t.second());
    out.extend_from_slice(b" +0000");
}

fn push_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(crate::entry::decimal(&mut [0; 20], v));
}

/// Runs `generate-logs`: appends to the output until `count` lines are written or `stop` is
/// set, and returns how many lines were written.
pub fn run(config: &GenerateConfig, stop: &AtomicBool) -> anyhow::Result<u64> {
    if let Some(dir) = config.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&config.output)
        .with_context(|| format!("cannot open {} for appending", config.output.display()))?;
    let mut generator = Generator::new(config.seed, config.start, config.format);
    let mut buf = Vec::with_capacity(1 << 20);
    let mut written = 0u64;
    let write_err = || format!("cannot write to {}", config.output.display());

    if let Some(count) = config.count {
        // Batch mode: 1 MiB writes, each ending on a line boundary.
        let now = Utc::now();
        while written < count && !stop.load(Ordering::Relaxed) {
            while written < count && buf.len() < (1 << 20) - 4096 {
                generator.write_line(now, &mut buf);
                written += 1;
            }
            file.write_all(&buf).with_context(write_err)?;
            buf.clear();
        }
        return Ok(written);
    }

    while !stop.load(Ordering::Relaxed) {
        let now = Utc::now();
        for _ in 0..config.lines_per_batch {
            generator.write_line(now, &mut buf);
        }
        // One write per batch: a tailing reader sees the batch whole or not at all.
        file.write_all(&buf).with_context(write_err)?;
        written += config.lines_per_batch;
        buf.clear();
        let until = Instant::now() + config.interval;
        while !stop.load(Ordering::Relaxed) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_line;
    use chrono::TimeZone;

    fn lines(seed: u64, start: Option<DateTime<Utc>>, n: usize, format: LogFormat) -> Vec<u8> {
        let mut g = Generator::new(Some(seed), start, format);
        let mut out = Vec::new();
        let now = Utc::now();
        for _ in 0..n {
            g.write_line(now, &mut out);
        }
        out
    }

    #[test]
    fn same_seed_and_start_give_the_same_bytes() {
        let start = Some(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap());
        assert_eq!(
            lines(7, start, 2000, LogFormat::Combined),
            lines(7, start, 2000, LogFormat::Combined)
        );
        assert_ne!(
            lines(7, start, 2000, LogFormat::Combined),
            lines(8, start, 2000, LogFormat::Combined)
        );
    }

    #[test]
    fn simulated_clock_moves_forward() {
        let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let out = lines(3, Some(start), 5000, LogFormat::Combined);
        let times: Vec<_> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| parse_line(l).unwrap().timestamp)
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        assert!(times[0] >= start && *times.last().unwrap() > start + TimeDelta::minutes(5));
    }

    #[test]
    fn visitors_return_and_statuses_are_mixed() {
        let out = lines(11, None, 20_000, LogFormat::Combined);
        let mut ips = std::collections::HashMap::new();
        let mut classes = [0u32; 6];
        for l in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let e = parse_line(l).unwrap();
            *ips.entry(e.ip.into_owned()).or_insert(0u32) += 1;
            classes[(e.status / 100) as usize] += 1;
        }
        assert!(
            ips.len() < 10_000,
            "visitors should come back: {} distinct",
            ips.len()
        );
        assert!(ips.keys().any(|ip| ip.contains(':')), "some IPv6 clients");
        let total = 20_000f64;
        assert!(f64::from(classes[2]) / total > 0.7);
        assert!(classes[3] > 0 && classes[4] > 0 && classes[5] > 0);
    }
}
