//! Rows and their compact keys: what the stores, the pipeline and the report engine share.
//!
//! A [`Row`] is one stored entry as the reports read it, borrowed from whatever buffer holds it.
//! The rest turns rows into small integers cheaply: an [`Arena`] holds the text of many rows in
//! one allocation, an [`Interner`] numbers distinct strings, a [`ClientKey`] is a client as a
//! number. This module imports no other of the crate but the entry model, so that every layer
//! can use it without importing another.

use crate::entry::LogEntry;

/// What an absent user agent or method counts as in the reports: the log's own `-`.
pub const ABSENT: &str = "-";

/// One stored entry, as the reports read it (borrowed from the store's row buffer).
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub ip: &'a str,
    /// Seconds since the Unix epoch.
    pub timestamp: i64,
    pub method: Option<&'a str>,
    pub url: &'a str,
    pub status: u16,
    pub bytes: Option<u64>,
    pub referrer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// How long the server took to answer, in microseconds, when the log says.
    pub response_time_us: Option<u64>,
}

impl<'a> Row<'a> {
    /// The fields of a parsed entry that the reports read.
    pub fn of(e: &'a LogEntry<'_>) -> Row<'a> {
        Row {
            ip: &e.ip,
            timestamp: e.timestamp.timestamp(),
            method: e.method.as_deref(),
            url: &e.url,
            status: e.status,
            bytes: e.bytes,
            referrer: e.referrer.as_deref(),
            user_agent: e.user_agent.as_deref(),
            response_time_us: e.extra.response_time_us,
        }
    }
}

/// Where a string lies in an [`Arena`].
pub type Span = (u32, u32);

/// Many strings appended to one buffer and referred to by [`Span`]s: the text of thousands of
/// rows in one reused allocation, instead of one allocation per field.
#[derive(Debug, Default)]
pub struct Arena {
    text: String,
}

impl Arena {
    pub fn with_capacity(bytes: usize) -> Arena {
        Arena {
            text: String::with_capacity(bytes),
        }
    }

    pub fn push(&mut self, value: Option<&str>) -> Option<Span> {
        value.map(|v| {
            let start = self.text.len() as u32;
            self.text.push_str(v);
            (start, self.text.len() as u32)
        })
    }

    pub fn get(&self, span: Option<Span>) -> Option<&str> {
        span.map(|(a, b)| &self.text[a as usize..b as usize])
    }

    pub fn clear(&mut self) {
        self.text.clear();
    }

    /// Bytes of text held.
    pub fn len(&self) -> usize {
        self.text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

/// The text fields of a [`Row`] as spans of an [`Arena`]: a row that can wait in a batch.
#[derive(Debug, Clone, Copy)]
pub struct RowSpans {
    pub ip: Option<Span>,
    pub method: Option<Span>,
    pub url: Option<Span>,
    pub referrer: Option<Span>,
    pub user_agent: Option<Span>,
    pub timestamp: i64,
    pub status: u16,
    pub bytes: Option<u64>,
    pub response_time_us: Option<u64>,
}

impl RowSpans {
    /// Copies the text of `row` into `arena`.
    pub fn push(arena: &mut Arena, row: &Row<'_>) -> RowSpans {
        RowSpans {
            ip: arena.push(Some(row.ip)),
            method: arena.push(row.method),
            url: arena.push(Some(row.url)),
            referrer: arena.push(row.referrer),
            user_agent: arena.push(row.user_agent),
            timestamp: row.timestamp,
            status: row.status,
            bytes: row.bytes,
            response_time_us: row.response_time_us,
        }
    }

    /// The row, its text borrowed from `arena`.
    pub fn row<'a>(&self, arena: &'a Arena) -> Row<'a> {
        Row {
            ip: arena.get(self.ip).unwrap_or(""),
            timestamp: self.timestamp,
            method: arena.get(self.method),
            url: arena.get(self.url).unwrap_or(""),
            status: self.status,
            bytes: self.bytes,
            referrer: arena.get(self.referrer),
            user_agent: arena.get(self.user_agent),
            response_time_us: self.response_time_us,
        }
    }
}

/// Strings to dense ids, in order of first sight: counts are then kept in arrays, and sets of
/// visitors hold small integers.
///
/// Each string is held once, in `names`; the table holds only ids and finds them by the hash
/// of their string: a map from string to id would hold every key twice, which matters for a
/// report over long distinct URLs.
#[derive(Debug)]
pub struct Interner {
    ids: hashbrown::HashTable<u32>,
    /// The strings by id.
    pub names: Vec<Box<str>>,
    /// By length (shorter than [`Interner::BY_LENGTH`] bytes), the id of the last string of
    /// that length asked for ([`Interner::NONE`] before the first). A string compared with it
    /// first is often found without hashing: a client's requests come in runs with the same
    /// user agent and referrer, and the few user agents of a log mostly differ in length. A
    /// wrong guess costs a comparison that stops at the first differing bytes.
    by_length: Vec<u32>,
}

impl Default for Interner {
    fn default() -> Self {
        Interner {
            ids: hashbrown::HashTable::new(),
            names: Vec::new(),
            by_length: vec![Self::NONE; Self::BY_LENGTH],
        }
    }
}

impl Interner {
    const BY_LENGTH: usize = 256;
    /// No id: `names` never holds that many strings, so looking it up finds none.
    const NONE: u32 = u32::MAX;

    pub fn id(&mut self, s: &str) -> u32 {
        use std::hash::BuildHasher;
        let guess = self.by_length.get(s.len()).copied().unwrap_or(Self::NONE);
        if let Some(name) = self.names.get(guess as usize)
            && **name == *s
        {
            return guess;
        }
        let hash = |s: &str| rustc_hash::FxBuildHasher.hash_one(s);
        let (names, hashed) = (&self.names, hash(s));
        let id = match self.ids.find(hashed, |&id| &*names[id as usize] == s) {
            Some(&id) => id,
            None => {
                let id = self.names.len() as u32;
                self.names.push(s.into());
                let names = &self.names;
                (self.ids).insert_unique(hashed, id, |&id| hash(&names[id as usize]));
                id
            }
        };
        if let Some(slot) = self.by_length.get_mut(s.len()) {
            *slot = id;
        }
        id
    }

    /// Number of distinct strings.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// A client as one number that hashes and compares at once: an IPv4 address in its usual form
/// (most clients) is its own number, with nothing to look up; other clients are numbered by
/// whoever reads them, and those numbers are keyed from 2³² up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKey {
    V4(u32),
    Other(u32),
}

impl ClientKey {
    const OTHERS: u64 = 1 << 32;

    pub fn key(self) -> u64 {
        match self {
            ClientKey::V4(address) => u64::from(address),
            ClientKey::Other(number) => Self::OTHERS + u64::from(number),
        }
    }

    pub fn of(key: u64) -> ClientKey {
        match key.checked_sub(Self::OTHERS) {
            None => ClientKey::V4(key as u32),
            Some(number) => ClientKey::Other(number as u32),
        }
    }
}

/// `Ipv4Addr`'s text, written without the formatting machinery: a report may compare the
/// texts of millions of clients.
pub fn ipv4_text(address: u32) -> Box<str> {
    let (bytes, len) = ipv4_bytes(address);
    // Digits and dots only, so never lossy.
    String::from_utf8_lossy(&bytes[..len]).into()
}

/// The text of an IPv4 address in a buffer of its own, and its length: for comparing texts
/// without allocating one.
pub fn ipv4_bytes(address: u32) -> ([u8; 15], usize) {
    let (mut bytes, mut len) = ([0u8; 15], 0);
    for (i, octet) in address.to_be_bytes().into_iter().enumerate() {
        if i > 0 {
            bytes[len] = b'.';
            len += 1;
        }
        if octet >= 100 {
            bytes[len] = b'0' + octet / 100;
            len += 1;
        }
        if octet >= 10 {
            bytes[len] = b'0' + octet / 10 % 10;
            len += 1;
        }
        bytes[len] = b'0' + octet % 10;
        len += 1;
    }
    (bytes, len)
}

/// A dotted quad without leading zeros (the form that prints back the same), as a number:
/// the common case, parsed without the general parser and a round trip through text. In one
/// pass over the bytes, which matters: every row of every report goes through it.
pub fn canonical_ipv4(s: &[u8]) -> Option<u32> {
    if !(7..=15).contains(&s.len()) {
        return None;
    }
    let (mut value, mut octet, mut digits, mut dots) = (0u32, 0u32, 0u32, 0u32);
    for &b in s {
        match b {
            // No digit after a leading zero, no fourth digit.
            b'0'..=b'9' if digits == 0 || (octet != 0 && digits < 3) => {
                octet = octet * 10 + u32::from(b - b'0');
                digits += 1;
            }
            b'.' if digits > 0 && octet <= 255 && dots < 3 => {
                value = value << 8 | octet;
                (octet, digits) = (0, 0);
                dots += 1;
            }
            _ => return None,
        }
    }
    (dots == 3 && digits > 0 && octet <= 255).then_some(value << 8 | octet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_interner_numbers_each_distinct_string_once() {
        let mut interner = Interner::default();
        let words: Vec<String> = (0..5000).map(|i| format!("/{}", i % 1700)).collect();
        let ids: Vec<u32> = words.iter().map(|w| interner.id(w)).collect();
        assert_eq!(interner.len(), 1700);
        for (w, &id) in words.iter().zip(&ids) {
            assert_eq!(&*interner.names[id as usize], w.as_str());
            assert_eq!(interner.id(w), id);
        }
        assert_eq!(interner.id(""), 1700);
        assert_eq!(interner.id(""), 1700);
    }

    #[test]
    fn the_guess_by_length_never_takes_one_string_for_another() {
        let mut interner = Interner::default();
        // Runs of one string, strings of one length in turn, and strings longer than the
        // lengths guessed for.
        let long = |c: char| c.to_string().repeat(Interner::BY_LENGTH + 10);
        let words: Vec<String> = (0..3000)
            .map(|i| match i % 7 {
                0 | 1 => "same".to_string(),
                2 => format!("{:04}", i % 13),
                3 => long(['a', 'b'][i % 2]),
                4 => long('a') + "z",
                _ => format!("w{}", i % 5),
            })
            .collect();
        let mut first: HashMap<&str, u32> = HashMap::new();
        for w in &words {
            let id = interner.id(w);
            assert_eq!(&*interner.names[id as usize], w.as_str());
            assert_eq!(*first.entry(w).or_insert(id), id, "{w:?}");
        }
        assert_eq!(interner.len(), first.len());
    }

    #[test]
    fn client_keys_round_trip_and_never_collide() {
        for key in [
            ClientKey::V4(0),
            ClientKey::V4(u32::MAX),
            ClientKey::Other(0),
            ClientKey::Other(u32::MAX),
        ] {
            assert_eq!(ClientKey::of(key.key()), key);
        }
        assert_ne!(ClientKey::V4(7).key(), ClientKey::Other(7).key());
    }

    #[test]
    fn row_spans_give_the_row_back() {
        let row = Row {
            ip: "::1",
            timestamp: -5,
            method: None,
            url: "/a,b",
            status: 418,
            bytes: Some(7),
            referrer: Some(""),
            user_agent: Some("é"),
            response_time_us: Some(1_500),
        };
        let mut arena = Arena::default();
        let spans = RowSpans::push(&mut arena, &row);
        let back = spans.row(&arena);
        assert_eq!(format!("{back:?}"), format!("{row:?}"));
    }

    #[test]
    fn canonical_ipv4_takes_what_prints_back_the_same() {
        let mut x = 0x2545_F491u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let alphabet = b"0123456789..1259x";
        for round in 0..200_000 {
            // Mostly near misses: random strings of digits and dots of an address's length.
            let len = 1 + next() as usize % 17;
            let text: Vec<u8> = match round % 4 {
                0 => std::net::Ipv4Addr::from(next()).to_string().into_bytes(),
                _ => (0..len)
                    .map(|_| alphabet[next() as usize % alphabet.len()])
                    .collect(),
            };
            let expected = std::str::from_utf8(&text)
                .ok()
                .and_then(|t| {
                    t.parse::<std::net::Ipv4Addr>()
                        .ok()
                        .filter(|a| a.to_string() == t)
                })
                .map(u32::from);
            assert_eq!(
                canonical_ipv4(&text),
                expected,
                "{:?}",
                String::from_utf8_lossy(&text)
            );
        }
    }

    #[test]
    fn ipv4_text_is_the_standard_text() {
        let mut x = 0x9E37_79B9u32;
        for a in [
            0,
            1,
            9,
            10,
            99,
            100,
            255,
            0x0A00_0001,
            0xFFFF_FFFF,
            0x6464_6464,
        ]
        .into_iter()
        .chain(std::iter::repeat_with(|| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        }))
        .take(100_000)
        {
            assert_eq!(&*ipv4_text(a), std::net::Ipv4Addr::from(a).to_string());
        }
    }
}
