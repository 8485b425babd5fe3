//! Outputs as private as the logs they come from, and what can be left out of them
//! (issue #18).
//!
//! Access logs hold personal data, and servers keep them private (Debian writes
//! `access.log` 0640, readable by `adm`). Everything a tool makes from them (the database
//! and its `-wal`/`-shm`, the CSV, checkpoints, locks, the rejects file, `.offset`) is
//! created no more readable than the most restrictive input: the process's umask is widened
//! to mask every permission bit the logs do not have, before anything is created. One
//! setting covers every file, the ones SQLite creates on its own included, where a mode
//! passed at each creation would miss some. No tool that reads logs creates directories, to
//! which the mask would deny `x`.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use hmac::{Hmac, Mac};
use regex::bytes::Regex;

use crate::entry::LogEntry;

/// The permission bits an output may have: those every input has (a symbolic link counts
/// as its target, whose bits protect the content), read and write only. Standard input
/// (`None`), or an input that is not there yet, gives 0600: nothing says who else may read
/// it.
pub fn output_mode<'a>(inputs: impl IntoIterator<Item = Option<&'a Path>>) -> u32 {
    inputs.into_iter().fold(0o666, |mode, input| {
        let bits = match input {
            None => 0o600,
            Some(path) => std::fs::metadata(path).map_or(0o600, |m| m.mode() & 0o666),
        };
        mode & bits
    })
}

/// Makes every file this process creates from now on no more readable than `mode` allows
/// (the umask keeps what it already masked). Call before anything is created, and before
/// any thread starts: the umask is the process's.
pub fn restrict_created_files(mode: u32) {
    let mask = !mode & 0o777;
    // SAFETY: umask only swaps the process's file-creation mask; it cannot fail.
    unsafe {
        let old = libc::umask(mask as libc::mode_t);
        libc::umask(old | mask as libc::mode_t);
    }
}

/// Warns about each of `outputs` that exists and lets more people read or write it than
/// `mode` allows: it was made before, or by something else. It is left as it is (changing
/// modes behind the user's back could break their set-up), with the command that fixes it.
pub fn warn_if_wider(outputs: &[&Path], mode: u32, warn: &mut dyn FnMut(String)) {
    for path in outputs {
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        let bits = meta.permissions().mode() & 0o777;
        if bits & !mode & 0o666 != 0 {
            warn(format!(
                "{} is readable or writable by more people ({bits:04o}) than the logs it comes \
                 from ({mode:04o}); to fix: chmod {:04o} {}",
                path.display(),
                bits & mode,
                path.display()
            ));
        }
    }
}

/// What is taken out of every line before anything of it is stored: in the rows, in the
/// packed copy (made from the rows), and in the rejects, whose raw bytes are scrubbed by
/// pattern since they could not be parsed.
#[derive(Debug, Clone, Default)]
pub struct Scrub {
    pub addresses: Addresses,
    pub query: Query,
    /// The pattern of `--redact-query`, compiled once (see [`Scrub::new`]), for URLs and
    /// referrers ([`strip_query`] strips them)...
    query_pattern: Option<Regex>,
    /// ... and for rejected lines.
    raw_query_pattern: Option<Regex>,
}

/// What becomes of client addresses (`ip` and `forwarded_for`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Addresses {
    #[default]
    Keep,
    /// `--anonymize-ip`: only the network is kept, IPv4 to `v4` bits, IPv6 to `v6` bits. A
    /// host name loses its first label (`gw1.att.com` becomes `*.att.com`).
    Truncate { v4: u8, v6: u8 },
    /// `--pseudonymize-ip`: a keyed hash of the address, the same for the same address.
    Pseudonym(Arc<Key>),
}

/// What becomes of query strings (in the URL and the referrer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Query {
    #[default]
    Keep,
    /// `--redact-query`: these parameters' values become `REDACTED` (names compared without
    /// case).
    Redact(Vec<String>),
    /// `--strip-query`: the query string is dropped.
    Strip,
}

/// A query string in a URL or a referrer: from its `?` to a fragment (`#`), a space or a
/// quote (where a field of a raw line ends).
const QUERY_STRING: &str = r#"\?[^#\s"]*"#;

/// `text` (a URL or a referrer) without its query string: what `--strip-query` stores at
/// ingest, and what the reports' `--strip-query` groups by, so that a report of a store kept
/// whole and grouped without queries is the report of a store that dropped them.
pub fn strip_query(text: &str) -> Cow<'_, str> {
    static PATTERN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(QUERY_STRING).expect("a valid query pattern")
    });
    // Most URLs have no query: a search for `?` is far cheaper than a call to the regex.
    if memchr::memchr(b'?', text.as_bytes()).is_none() {
        return Cow::Borrowed(text);
    }
    PATTERN.replace_all(text, "")
}

/// The parameters `--redact-query` redacts when given no list.
pub const REDACTED_BY_DEFAULT: &str =
    "token,key,password,passwd,secret,session,auth,sig,signature,code";

/// The secret of `--pseudonymize-ip`.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never printed, not even in a debug dump.
        write!(f, "Key(id {})", self.id())
    }
}

type HmacSha256 = Hmac<sha2::Sha256>;

impl Key {
    /// Reads the key in `path` (64 hex digits), or creates it, mode 0600, from 32 random
    /// bytes when there is no file.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Key> {
        let context = || format!("cannot read key file {}", path.display());
        match std::fs::read_to_string(path) {
            Ok(text) => Key::from_hex(text.trim())
                .with_context(|| format!("{} does not hold a key (64 hex digits)", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let bytes: [u8; 32] = rand::random();
                let key = Key(bytes);
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .with_context(|| format!("cannot create key file {}", path.display()))?;
                std::io::Write::write_all(&mut file, format!("{}\n", key.hex()).as_bytes())
                    .and_then(|()| file.sync_all())
                    .with_context(|| format!("cannot write key file {}", path.display()))?;
                Ok(key)
            }
            Err(e) => Err(e).with_context(context),
        }
    }

    fn from_hex(text: &str) -> anyhow::Result<Key> {
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("not 64 hex digits");
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)?;
        }
        Ok(Key(bytes))
    }

    fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn mac(&self, data: &[u8]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// What the store records of the key: a hash that tells keys apart and reveals nothing
    /// of them.
    pub fn id(&self) -> String {
        self.mac(b"log-pipeline key id")[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The pseudonym of `address`: 96 bits of HMAC-SHA-256 over its text as written, enough
    /// that two addresses of a billion never share one. The text, not a canonical form: the
    /// counts then equal those of the raw store exactly, where `2001:DB8::1` and
    /// `2001:db8::1` are two clients too.
    fn pseudonym(&self, address: &str) -> String {
        let mac = self.mac(address.as_bytes());
        let mut out = String::with_capacity(26);
        out.push_str("h:");
        for b in &mac[..12] {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

/// A warning when the key file at `path` may be read by others than its owner: whoever
/// reads it can find any address's requests (see the README's "Privacy").
pub fn key_exposure(path: &Path) -> Option<String> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "{} can be read by others ({mode:04o}): whoever has the key can tell which \
             requests an address made; to fix: chmod 0600 {}",
            path.display(),
            path.display()
        )
    })
}

/// An address as logs write it: bare, `[v6]`, with a `%zone`, or with a `:port` (an
/// X-Forwarded-For behind Azure's gateways or IIS ARR: `203.0.113.7:51234`,
/// `[2001:db8::1]:443`).
fn parse_ip(text: &str) -> Option<IpAddr> {
    let bare = |t: &str| -> Option<IpAddr> {
        let t = t.trim_start_matches('[').trim_end_matches(']');
        t.split('%').next().unwrap_or(t).parse().ok()
    };
    bare(text).or_else(|| {
        let (address, port) = text.rsplit_once(':')?;
        let bracketed = address.starts_with('[') && address.ends_with(']');
        let dotted = !address.contains(':');
        (port.bytes().all(|b| b.is_ascii_digit()) && (bracketed || dotted))
            .then(|| bare(address))
            .flatten()
    })
}

/// A host name (`gw1.att.com`), not a mangled address: it has a letter, and its last label
/// is not all digits (`010.001.002.003` is an address, zero-padded).
fn is_host_name(text: &str) -> bool {
    text.bytes().any(|b| b.is_ascii_alphabetic())
        && text
            .rsplit('.')
            .next()
            .is_some_and(|last| !last.bytes().all(|b| b.is_ascii_digit()))
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

fn truncate(ip: IpAddr, v4: u8, v6: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = u32::MAX
                .checked_shl(32 - u32::from(v4.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & mask))
        }
        // An IPv4 address written as IPv6 (`::ffff:10.1.2.3`, from a dual-stack socket) is
        // an IPv4 client: its network is its IPv4 network.
        IpAddr::V6(a) if a.to_ipv4_mapped().is_some() => {
            let IpAddr::V4(v4) = truncate(IpAddr::V4(a.to_ipv4_mapped().expect("mapped")), v4, v6)
            else {
                unreachable!("an IPv4 address stays one")
            };
            IpAddr::V6(v4.to_ipv6_mapped())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = u128::MAX
                .checked_shl(128 - u32::from(v6.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & mask))
        }
    }
}

impl Scrub {
    pub fn new(addresses: Addresses, query: Query) -> Scrub {
        let query_pattern = match &query {
            Query::Keep => None,
            // A name after `?`, `&` or `;`, or alone at the start of a field (W3C's
            // `cs-uri-query` and CloudFront's have no `?`: in a rejected line, it is a field).
            Query::Redact(names) => {
                let names: Vec<String> = names.iter().map(|n| regex::escape(n)).collect();
                Some(format!(
                    r#"(?i)((?:^|[?&;\s"])(?:{})=)[^&;#\s"]*"#,
                    names.join("|")
                ))
            }
            Query::Strip => None,
        };
        // In a rejected line, a query may also be a field of `name=value` pairs alone
        // (W3C's `cs-uri-query`), with no `?` before it.
        let raw_query_pattern = match &query {
            Query::Strip => Some(format!(r#"{QUERY_STRING}|(?:^|\s)[^\s"=?/]+=[^\s"]*"#)),
            _ => query_pattern.clone(),
        };
        let compile = |p: String| Regex::new(&p).expect("a valid query pattern");
        Scrub {
            addresses,
            query,
            query_pattern: query_pattern.map(compile),
            raw_query_pattern: raw_query_pattern.map(compile),
        }
    }

    /// Does it change anything?
    pub fn is_none(&self) -> bool {
        self.addresses == Addresses::Keep && self.query == Query::Keep
    }

    /// The choices as the store records them, to refuse a later run that makes others
    /// (rows kept raw beside rows without addresses would count wrong). Empty for none.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match &self.addresses {
            Addresses::Keep => {}
            Addresses::Truncate { v4, v6 } => parts.push(format!("anonymize-ip={v4}/{v6}")),
            Addresses::Pseudonym(key) => parts.push(format!("pseudonymize-ip=key:{}", key.id())),
        }
        match &self.query {
            Query::Keep => {}
            Query::Redact(names) => {
                let mut names: Vec<String> = names.iter().map(|n| n.to_lowercase()).collect();
                names.sort();
                names.dedup();
                parts.push(format!("redact-query={}", names.join(",")));
            }
            Query::Strip => parts.push("strip-query".to_owned()),
        }
        parts.join(" ")
    }

    /// One address, as stored.
    fn address(&self, text: &str) -> Option<String> {
        match &self.addresses {
            Addresses::Keep => None,
            // A port is dropped with the host part: it tells connections apart.
            Addresses::Truncate { v4, v6 } => Some(match parse_ip(text) {
                Some(ip) => truncate(ip, *v4, *v6).to_string(),
                None => match text.split_once('.') {
                    Some((_, domain)) if is_host_name(text) && !domain.is_empty() => {
                        format!("*.{domain}")
                    }
                    // Anything else may be an address in a form not read: nothing of it.
                    _ => "*".to_owned(),
                },
            }),
            Addresses::Pseudonym(key) => Some(key.pseudonym(text)),
        }
    }

    fn query_text<'a>(&self, text: Cow<'a, str>) -> Cow<'a, str> {
        if self.query == Query::Strip {
            return match text {
                Cow::Borrowed(text) => strip_query(text),
                Cow::Owned(text) => match strip_query(&text) {
                    Cow::Borrowed(_) => Cow::Owned(text),
                    Cow::Owned(stripped) => Cow::Owned(stripped),
                },
            };
        }
        let Some(pattern) = &self.query_pattern else {
            return text;
        };
        let replaced = pattern.replace_all(text.as_bytes(), self.replacement());
        match replaced {
            Cow::Borrowed(_) => text,
            Cow::Owned(bytes) => Cow::Owned(String::from_utf8(bytes).expect("ASCII replaced")),
        }
    }

    fn replacement(&self) -> &'static [u8] {
        match self.query {
            Query::Strip => b"",
            _ => b"${1}REDACTED",
        }
    }

    /// Takes out of `entry` what the choices say: its addresses, its query strings.
    pub fn apply(&self, entry: &mut LogEntry<'_>) {
        if self.is_none() {
            return;
        }
        if let Some(ip) = self.address(&entry.ip) {
            entry.ip = Cow::Owned(ip);
        }
        if self.addresses != Addresses::Keep
            && let Some(list) = &entry.extra.forwarded_for
        {
            let scrubbed: Vec<String> = list
                .split(',')
                .map(|a| self.address(a.trim()).unwrap_or_default())
                .collect();
            entry.extra.forwarded_for = Some(Cow::Owned(scrubbed.join(", ")));
        }
        entry.url = self.query_text(std::mem::take(&mut entry.url));
        entry.referrer = entry.referrer.take().map(|r| self.query_text(r));
    }

    /// A line that could not be parsed, scrubbed by pattern: every run of bytes that reads as
    /// an IPv4 or IPv6 address (with a `:port` or not), and the query parameters, as
    /// [`Scrub::apply`] would have.
    pub fn raw<'a>(&self, line: &'a [u8]) -> Cow<'a, [u8]> {
        if self.is_none() {
            return Cow::Borrowed(line);
        }
        let mut out: Cow<'a, [u8]> = Cow::Borrowed(line);
        if self.addresses != Addresses::Keep {
            out = Cow::Owned(self.raw_addresses(line));
        }
        if let Some(pattern) = &self.raw_query_pattern {
            let replaced = pattern.replace_all(&out, self.replacement()).into_owned();
            out = Cow::Owned(replaced);
        }
        out
    }

    fn raw_addresses(&self, line: &[u8]) -> Vec<u8> {
        let in_address = |b: u8| b.is_ascii_hexdigit() || b == b':' || b == b'.';
        let mut out = Vec::with_capacity(line.len());
        let mut i = 0;
        while i < line.len() {
            if !in_address(line[i]) {
                out.push(line[i]);
                i += 1;
                continue;
            }
            let end = i + line[i..].iter().take_while(|&&b| in_address(b)).count();
            let run = std::str::from_utf8(&line[i..end]).expect("ASCII");
            // A whole address, or one followed by `:port` (or a sentence's `.`).
            // A run may start with the `:` before an address (`client:1.2.3.4`), but `::1`
            // is an address whole.
            let lead = run.len() - run.trim_start_matches(':').len();
            let found = [0, lead].into_iter().find_map(|lead| {
                let body = &run[lead..];
                [body, body.trim_end_matches('.')]
                    .into_iter()
                    .chain(body.rsplit_once(':').map(|(a, _)| a))
                    .find(|a| a.parse::<IpAddr>().is_ok())
                    .map(|a| (lead, a))
            });
            let lead = found.map_or(0, |(lead, _)| lead);
            match found.and_then(|(_, a)| self.address(a).map(|s| (a.len(), s))) {
                Some((len, scrubbed)) => {
                    out.extend_from_slice(&line[i..i + lead]);
                    out.extend_from_slice(scrubbed.as_bytes());
                    out.extend_from_slice(&line[i + lead + len..end]);
                }
                None => out.extend_from_slice(&line[i..end]),
            }
            i = end;
        }
        out
    }
}

/// `--retain`: how long rows are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    window: chrono::TimeDelta,
}

impl Retention {
    /// A span: digits and a unit, `s`, `m`, `h`, `d` or `w` (`30d`).
    pub fn parse(s: &str) -> Result<Retention, String> {
        let bad = || format!("'{s}' is not a span like 30d, 12h or 2w");
        let split = s.char_indices().last().map_or(0, |(i, _)| i);
        let (digits, unit) = s.split_at(split);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: i64 = digits.parse().map_err(|_| bad())?;
        let window = match unit {
            "s" => chrono::TimeDelta::try_seconds(n),
            "m" => chrono::TimeDelta::try_minutes(n),
            "h" => chrono::TimeDelta::try_hours(n),
            "d" => chrono::TimeDelta::try_days(n),
            "w" => chrono::TimeDelta::try_weeks(n),
            _ => None,
        }
        .filter(|w| *w > chrono::TimeDelta::zero())
        .ok_or_else(bad)?;
        Ok(Retention { window })
    }

    /// Rows before this instant go. It moves in steps of 1/720 of the window (one hour for
    /// 30 days, at least a second), so a follower deletes, and looks for strings no longer
    /// used, once per step rather than at every pass: a row goes at most one step after it
    /// leaves the window.
    pub fn cutoff(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        let step = (self.window.num_seconds() / 720).clamp(1, 3600);
        let edge = (now - self.window).timestamp();
        let floored = edge - edge.rem_euclid(step);
        chrono::DateTime::from_timestamp(floored, 0).unwrap_or(now - self.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_mode_is_what_every_input_allows() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, mode: u32| {
            let path = dir.path().join(name);
            std::fs::write(&path, "x\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        };
        let adm = file("access.log", 0o640);
        let open = file("other.log", 0o644);
        let private = file("private.log", 0o600);
        let of = |paths: &[Option<&Path>]| output_mode(paths.iter().copied());
        assert_eq!(of(&[Some(&open)]), 0o644);
        assert_eq!(of(&[Some(&open), Some(&adm)]), 0o640);
        assert_eq!(of(&[Some(&adm), Some(&private)]), 0o600);
        assert_eq!(of(&[Some(&open), None]), 0o600);
        let link = dir.path().join("link.log");
        std::os::unix::fs::symlink(&private, &link).unwrap();
        assert_eq!(of(&[Some(&link)]), 0o600);
        let missing = dir.path().join("missing.log");
        assert_eq!(of(&[Some(&open), Some(&missing)]), 0o600);
    }

    fn entry(ip: &str, url: &str) -> LogEntry<'static> {
        let line = format!(
            r#"{ip} - - [10/Oct/2000:13:55:36 -0700] "GET {url} HTTP/1.0" 200 1 "https://ref/?token=abc&q=1" "ua""#
        );
        let line: &'static str = Box::leak(line.into_boxed_str());
        crate::parse::parse_line(line.as_bytes()).unwrap()
    }

    #[test]
    fn anonymized_addresses_keep_only_their_network() {
        let scrub = Scrub::new(Addresses::Truncate { v4: 24, v6: 64 }, Query::Keep);
        let mut e = entry("203.0.113.77", "/a");
        e.extra.forwarded_for = Some("198.51.100.9, 2001:db8:1:2:3:4:5:6, unknown".into());
        scrub.apply(&mut e);
        assert_eq!(e.ip, "203.0.113.0");
        assert_eq!(
            e.extra.forwarded_for.as_deref(),
            Some("198.51.100.0, 2001:db8:1:2::, *")
        );
        let narrow = Scrub::new(Addresses::Truncate { v4: 16, v6: 48 }, Query::Keep);
        let mut e = entry("2001:db8:aaaa:bbbb::1", "/a");
        narrow.apply(&mut e);
        assert_eq!(e.ip, "2001:db8:aaaa::");
        let mut e = entry("gw1.att.com", "/a");
        narrow.apply(&mut e);
        assert_eq!(e.ip, "*.att.com");
        let raw = scrub
            .raw(b"10.1.2.3:443 [::ffff:10.9.8.7] 2001:db8::1. v1.2 cafe 0.0.1 client:10.7.7.7");
        assert_eq!(
            String::from_utf8_lossy(&raw),
            "10.1.2.0:443 [::ffff:10.9.8.0] 2001:db8::. v1.2 cafe 0.0.1 client:10.7.7.0"
        );
        // Ports (X-Forwarded-For behind some gateways) and zero-padded or unreadable
        // addresses keep nothing of the host.
        let mut e = entry("203.0.113.7:51234", "/a");
        e.extra.forwarded_for = Some("[2001:db8:1:2::9]:443, 010.001.002.003, x:y".into());
        scrub.apply(&mut e);
        assert_eq!(e.ip, "203.0.113.0");
        assert_eq!(
            e.extra.forwarded_for.as_deref(),
            Some("2001:db8:1:2::, *, *")
        );
    }

    #[test]
    fn pseudonyms_are_stable_per_address_and_key_and_hide_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ip.key");
        let key = Key::load_or_create(&path).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(Key::load_or_create(&path).unwrap(), key);
        let scrub = Scrub::new(Addresses::Pseudonym(Arc::new(key.clone())), Query::Keep);
        let (mut a, mut b, mut c) = (
            entry("2001:db8::1", "/"),
            entry("2001:0db8:0::1", "/"),
            entry("2001:db8::2", "/"),
        );
        for e in [&mut a, &mut b, &mut c] {
            scrub.apply(e);
        }
        assert_ne!(a.ip, b.ip, "two texts, two clients, as in a raw store");
        assert_ne!(a.ip, c.ip);
        assert!(a.ip.starts_with("h:") && a.ip.len() == 26, "{}", a.ip);
        let other = Key::load_or_create(&dir.path().join("other.key")).unwrap();
        assert_ne!(other.pseudonym("2001:db8::1"), a.ip);
        assert_ne!(key.id(), other.id());
        assert!(!format!("{key:?}").contains(&key.hex()));
        std::fs::write(
            &path, "short
",
        )
        .unwrap();
        assert!(Key::load_or_create(&path).is_err());
    }

    #[test]
    fn query_parameters_are_redacted_or_stripped() {
        let names = REDACTED_BY_DEFAULT.split(',').map(str::to_owned).collect();
        let redact = Scrub::new(Addresses::Keep, Query::Redact(names));
        let mut e = entry("1.2.3.4", "/reset?Token=s3cr3t&page=2&session=x;code=9#top");
        redact.apply(&mut e);
        assert_eq!(
            e.url,
            "/reset?Token=REDACTED&page=2&session=REDACTED;code=REDACTED#top"
        );
        assert_eq!(
            e.referrer.as_deref(),
            Some("https://ref/?token=REDACTED&q=1")
        );
        assert_eq!(e.ip, "1.2.3.4");
        let raw = redact.raw(br#"x "GET /a?key=k1&keyboard=1 HTTP/1.1" y"#);
        assert_eq!(&*raw, br#"x "GET /a?key=REDACTED&keyboard=1 HTTP/1.1" y"#);
        // A rejected W3C line: its query is a field with no `?`.
        let w3c = b"2024-01-01 00:00:00 GET /reset token=abc&page=2 80";
        assert_eq!(
            &*redact.raw(w3c),
            b"2024-01-01 00:00:00 GET /reset token=REDACTED&page=2 80"
        );
        let strip = Scrub::new(Addresses::Keep, Query::Strip);
        let mut e = entry("1.2.3.4", "/reset?token=s3cr3t&page=2");
        strip.apply(&mut e);
        assert_eq!(
            (&*e.url, e.referrer.as_deref()),
            ("/reset", Some("https://ref/"))
        );
        assert_eq!(&*strip.raw(w3c), b"2024-01-01 00:00:00 GET /reset 80");
        // The one splitting of a query, which the reports' --strip-query uses too.
        assert_eq!(strip_query("/x.php?a=1&b=2"), "/x.php");
        assert_eq!(strip_query("/x?a=1#top"), "/x#top");
        assert_eq!(strip_query("/x?"), "/x");
        assert!(matches!(strip_query("/plain"), Cow::Borrowed("/plain")));
        assert_eq!(strip.describe(), "strip-query",);
        assert_eq!(
            redact.describe(),
            "redact-query=auth,code,key,passwd,password,secret,session,sig,signature,token"
        );
        assert_eq!(Scrub::default().describe(), "");
    }

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn retention_windows_are_spans_and_cut_in_steps() {
        use chrono::TimeZone;
        assert!(Retention::parse("30d").is_ok());
        for bad in [
            "",
            "d",
            "30",
            "-3d",
            "1.5d",
            "0d",
            "30y",
            "2024-01-01T00:00:00Z",
        ] {
            assert!(Retention::parse(bad).is_err(), "{bad}");
        }
        let now = chrono::Utc
            .with_ymd_and_hms(2024, 3, 31, 10, 42, 17)
            .unwrap();
        let cut =
            |s: &str| crate::entry::Rfc3339(Retention::parse(s).unwrap().cutoff(now)).to_string();
        assert_eq!(cut("30d"), "2024-03-01T10:00:00Z");
        assert_eq!(cut("1h"), "2024-03-31T09:42:15Z");
        assert_eq!(cut("60s"), "2024-03-31T10:41:17Z");
        assert!(Retention::parse("3é").is_err());
    }

    #[test]
    fn a_wider_output_is_named_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("logs.db");
        std::fs::write(&db, "").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut said = Vec::new();
        warn_if_wider(&[&db, &dir.path().join("none")], 0o640, &mut |m| {
            said.push(m)
        });
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].contains("(0644)") && said[0].contains("chmod 0640"),
            "{}",
            said[0]
        );
        said.clear();
        warn_if_wider(&[&db], 0o644, &mut |m| said.push(m));
        assert!(said.is_empty());
    }
}
