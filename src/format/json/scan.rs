//! A fast reading of the plain JSON lines servers write; whatever it is not sure of, serde
//! reads.
//!
//! serde_json spends most of a Caddy line on the headers and TLS details that the entry does
//! not keep. This reader first marks the line's quotes and backslashes, 64 bytes at a time
//! ([`Marks`]), so that a string of any length ends at the next mark; it then walks the
//! tokens, checking the JSON grammar as it goes, and answers only for a plain line: no
//! control byte, no escaped key, no surrogate escape in a value it keeps, no key it keeps
//! given twice, nothing nested deeper than [`MAX_DEPTH`], integers where it wants integers.
//! For anything else it answers `None` and the caller reads the line with serde, so both
//! readings give the same struct for every line (the tests check it on generated and mutated
//! lines). Its own checks must only ever be stricter than serde's.

use std::borrow::Cow;

use super::keys::{CaddyHeaders, CaddyLine, CaddyRequest, Raw, Text, TraefikLine, Values};
use crate::mask::{self, masks};

/// Far deeper than any server nests, and well inside serde_json's own limit.
const MAX_DEPTH: u32 = 64;

/// Where a line's quotes and backslashes are, a bit each (bit `i % 64` of word `i / 64`).
/// Kept by the parser and filled again for each line, so that a line costs no allocation.
#[derive(Debug, Clone, Default)]
pub(super) struct Marks(Vec<u64>);

impl Marks {
    /// Marks `line` and gives it as text, with whether the fast reading may try it; `None`
    /// when it is not UTF-8. Servers write plain ASCII lines (they escape the rest), and the
    /// same pass finds those: such a line needs no UTF-8 check of its own and has no control
    /// byte. JSON allows none inside a string, and only tab, CR and LF between tokens, which
    /// servers do not write there, so a line with one is left to serde, and the fast reading
    /// spares a check per byte of every string.
    pub(super) fn text<'a>(&mut self, line: &'a [u8]) -> Option<(&'a str, bool)> {
        let (whole, rest) = line.split_at(line.len() - line.len() % 64);
        self.0.clear();
        self.0.resize(whole.len() / 64 + 1, 0);
        let (words, last_word) = self.0.split_at_mut(whole.len() / 64);
        let mut plain = mark_chunks(words, whole);
        // Spaces are plain and not marked.
        let mut last = [b' '; 64];
        last[..rest.len()].copy_from_slice(rest);
        plain &= mark_chunks_without_avx2(last_word, &last);
        if plain {
            // SAFETY: every byte of `line` is from 0x20 to 0x7f: ASCII, which is UTF-8.
            return Some((unsafe { std::str::from_utf8_unchecked(line) }, true));
        }
        let text = std::str::from_utf8(line).ok()?;
        Some((text, !line.iter().any(|&b| b < 0x20)))
    }
}

/// Marks `whole`, a multiple of 64 bytes, into `words` (a word for each 64 bytes); whether
/// all its bytes are [`mask::plain`]. With AVX2 where the processor has it.
fn mark_chunks(words: &mut [u64], whole: &[u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: this processor has AVX2: it was just asked.
        return unsafe { mark_chunks_avx2(words, whole) };
    }
    mark_chunks_without_avx2(words, whole)
}

/// [`mark_chunks`] with [`masks`] and [`mask::plain`]: 16 bytes at a time with SSE2, which
/// every x86-64 has; byte by byte on other processors.
pub(super) fn mark_chunks_without_avx2(words: &mut [u64], whole: &[u8]) -> bool {
    let mut plain = u64::MAX;
    for (word, chunk) in words.iter_mut().zip(whole.chunks_exact(64)) {
        let chunk = chunk.try_into().expect("64 bytes");
        let [quotes, backslashes] = masks(chunk, [b'"', b'\\']);
        *word = quotes | backslashes;
        plain &= mask::plain(chunk);
    }
    plain == u64::MAX
}

/// [`mark_chunks`] with AVX2's comparisons of 32 bytes. Into words sized beforehand: with a
/// `Vec::push` in this loop, the compiler took each mask apart bit by bit and built it again.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(super) fn mark_chunks_avx2(words: &mut [u64], whole: &[u8]) -> bool {
    use std::arch::x86_64::{_mm256_and_si256, _mm256_set1_epi8};
    let mut plain = _mm256_set1_epi8(-1);
    for (word, chunk) in words.iter_mut().zip(whole.chunks_exact(64)) {
        let chunk = chunk.try_into().expect("64 bytes");
        let [quotes, backslashes] = mask::masks_avx2(chunk, [b'"', b'\\']);
        *word = quotes | backslashes;
        plain = _mm256_and_si256(plain, mask::plain_avx2(chunk));
    }
    mask::all_plain(plain)
}

/// A position in one line of JSON. Every method returns `None` to mean "not sure: ask serde".
#[derive(Clone, Copy)]
struct Cursor<'a, 'm> {
    text: &'a str,
    marks: &'m [u64],
    at: usize,
    depth: u32,
}

impl<'a, 'm> Cursor<'a, 'm> {
    /// At the start of `text`, which `marks` marked (see [`Marks::text`]).
    fn new(text: &'a str, marks: &'m Marks) -> Cursor<'a, 'm> {
        Cursor {
            text,
            marks: &marks.0,
            at: 0,
            depth: 0,
        }
    }

    /// The first quote or backslash at or after the cursor.
    fn next_mark(&self) -> Option<usize> {
        let mut word = self.at / 64;
        let mut bits = self.marks.get(word)? & (u64::MAX << (self.at % 64));
        while bits == 0 {
            word += 1;
            bits = *self.marks.get(word)?;
        }
        Some(word * 64 + bits.trailing_zeros() as usize)
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.at).copied()
    }

    /// The byte that starts the next token, past any spaces; the cursor is left on it.
    /// Servers write no space between tokens, so the byte at the cursor is checked first
    /// and the loop is kept out of line: this is asked before every token of a line.
    #[inline(always)]
    fn token(&mut self) -> Option<u8> {
        match self.peek()? {
            b' ' => {
                self.at = past_spaces(self.bytes(), self.at);
                self.peek()
            }
            byte => Some(byte),
        }
    }

    #[inline(always)]
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.token()? == byte).then(|| self.at += 1)
    }

    /// Only spaces after the value, as serde requires.
    fn end(&mut self) -> Option<()> {
        while self.peek() == Some(b' ') {
            self.at += 1;
        }
        (self.at == self.text.len()).then_some(())
    }

    /// A string's text between its quotes, and whether it holds escapes (checked, not
    /// decoded). The quotes and backslashes are ASCII, so the slice is on char boundaries.
    /// Inlined: a line has dozens of strings, mostly short, and a call's saving and restoring
    /// of registers cost about as much as finding where one ends.
    #[inline(always)]
    fn string(&mut self) -> Option<(&'a str, bool)> {
        self.eat(b'"')?;
        let start = self.at;
        let escaped = self.string_end()?;
        Some((&self.text[start..self.at - 1], escaped))
    }

    /// Past the closing quote of the string the cursor is in, saying whether it held
    /// escapes. Not slicing the text spares a skipped string the checks of a slice.
    #[inline(always)]
    fn string_end(&mut self) -> Option<bool> {
        let mut escaped = false;
        loop {
            self.at = self.next_mark()?;
            if *self.bytes().get(self.at)? == b'"' {
                self.at += 1;
                return Some(escaped);
            }
            escaped = true;
            self.escape()?;
        }
    }

    /// The escape at the cursor's backslash. A `\\u` escape of a lone surrogate passes, as
    /// serde lets it pass in a value it skips; in a value kept, [`unescape`] refuses it.
    #[inline(always)]
    fn escape(&mut self) -> Option<()> {
        match *self.bytes().get(self.at + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 2,
            b'u' => {
                let hex = self.bytes().get(self.at + 2..self.at + 6)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                self.at += 6;
            }
            _ => return None,
        }
        Some(())
    }

    fn nest(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// An object, handing each key (which must have no escape) to `each` with the cursor
    /// before its value; `each` reads or skips the value.
    fn object(&mut self, mut each: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.nest()?;
        if self.token()? == b'}' {
            self.at += 1;
        } else {
            loop {
                let key = self.key()?;
                each(self, key)?;
                match self.token()? {
                    b',' => self.at += 1,
                    b'}' => {
                        self.at += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    /// An array, `each` reading or skipping every element.
    fn array(&mut self, mut each: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        self.nest()?;
        if self.token()? == b']' {
            self.at += 1;
        } else {
            loop {
                each(self)?;
                match self.token()? {
                    b',' => self.at += 1,
                    b']' => {
                        self.at += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    /// An object's key and the colon after it. A key with an escape is refused: `"u\u0072i"`
    /// is `uri` to serde.
    #[inline(always)]
    fn key(&mut self) -> Option<&'a str> {
        let (key, escaped) = self.string()?;
        if escaped {
            return None;
        }
        self.eat(b':')?;
        self.one_space();
        Some(key)
    }

    /// [`Cursor::key`], not kept.
    #[inline(always)]
    fn skip_key(&mut self) -> Option<()> {
        self.eat(b'"')?;
        if self.string_end()? {
            return None;
        }
        self.eat(b':')?;
        self.one_space();
        Some(())
    }

    /// Past one space, if there is one. Caddy's console encoder writes one after every colon
    /// and comma, and [`Cursor::token`] keeps spaces out of line: checked here, a line of it
    /// makes no call per token. Only ever after a colon or comma, where a space may be.
    #[inline(always)]
    fn one_space(&mut self) {
        if self.peek() == Some(b' ') {
            self.at += 1;
        }
    }

    /// Any value, checked and passed over. Most skipped values are a string or a header's
    /// values (an array of one string): those are passed here, without a call; the rest in
    /// [`Cursor::skip_any`].
    #[inline(always)]
    fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.at += 1;
                self.string_end().map(drop)
            }
            b'[' if self.one_string()? => Some(()),
            _ => self.skip_any(),
        }
    }

    /// [`Cursor::skip`] for a flat object, whose values are strings and numbers (Traefik's
    /// lines): a number, too, is passed here, without a call. Not in [`Cursor::skip`], whose
    /// callers it made slower: a Caddy line skips few numbers.
    #[inline(always)]
    fn skip_flat(&mut self) -> Option<()> {
        match self.token()? {
            b'-' | b'0'..=b'9' => self.number(),
            _ => self.skip(),
        }
    }

    /// At a `[`: passes over an array of one string and says `true`; says `false`, the
    /// cursor unmoved, when the array is not that.
    #[inline(always)]
    fn one_string(&mut self) -> Option<bool> {
        let start = self.at;
        if self.bytes().get(start + 1) != Some(&b'"') || self.depth >= MAX_DEPTH {
            return Some(false);
        }
        self.at += 2;
        self.string_end()?;
        if self.peek() == Some(b']') {
            self.at += 1;
            return Some(true);
        }
        self.at = start;
        Some(false)
    }

    /// Any value, checked and passed over, in one loop over its tokens whatever its
    /// nesting: skipped values are most of a Caddy line (the headers, the TLS details), and
    /// a call per value and per level cost more than checking the value.
    fn skip_any(&mut self) -> Option<()> {
        // On a copy, whose position the compiler can keep in a register throughout.
        let mut copy = *self;
        let skipped = copy.skip_value();
        *self = copy;
        skipped
    }

    #[inline(always)]
    fn skip_value(&mut self) -> Option<()> {
        // The containers open inside the value, innermost in bit 0: 1 for an object, 0 for
        // an array. [`MAX_DEPTH`] keeps them within the 64 bits.
        let mut objects = 0u64;
        let mut open = 0u32;
        loop {
            // At a value.
            match self.token()? {
                b'"' => {
                    self.at += 1;
                    self.string_end()?;
                }
                b'[' if self.one_string()? => {}
                bracket @ (b'{' | b'[') => {
                    self.at += 1;
                    self.nest()?;
                    let object = bracket == b'{';
                    let close = if object { b'}' } else { b']' };
                    if self.token()? != close {
                        objects = objects << 1 | u64::from(object);
                        open += 1;
                        if object {
                            self.skip_key()?;
                        }
                        continue;
                    }
                    self.at += 1;
                    self.depth -= 1;
                }
                b't' => self.word("true")?,
                b'f' => self.word("false")?,
                b'n' => self.word("null")?,
                _ => self.number()?,
            }
            // After a value: the next element, or the ends of the containers it closes.
            loop {
                if open == 0 {
                    return Some(());
                }
                let object = objects & 1 == 1;
                match (self.token()?, object) {
                    (b',', _) => {
                        self.at += 1;
                        self.one_space();
                        if object {
                            self.skip_key()?;
                        }
                        break;
                    }
                    (b'}', true) | (b']', false) => {
                        self.at += 1;
                        self.depth -= 1;
                        objects >>= 1;
                        open -= 1;
                    }
                    _ => return None,
                }
            }
        }
    }

    #[inline(always)]
    fn word(&mut self, word: &str) -> Option<()> {
        self.text[self.at..]
            .starts_with(word)
            .then(|| self.at += word.len())
    }

    /// JSON's number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    #[inline(always)]
    fn number(&mut self) -> Option<()> {
        let b = self.bytes();
        let digits = |at: &mut usize| {
            let start = *at;
            while b.get(*at).is_some_and(u8::is_ascii_digit) {
                *at += 1;
            }
            *at - start
        };
        let mut at = self.at;
        if b.get(at) == Some(&b'-') {
            at += 1;
        }
        let int = digits(&mut at);
        if int == 0 || (int > 1 && b[at - int] == b'0') {
            return None;
        }
        if b.get(at) == Some(&b'.') {
            at += 1;
            if digits(&mut at) == 0 {
                return None;
            }
        }
        if matches!(b.get(at), Some(b'e' | b'E')) {
            at += 1;
            if matches!(b.get(at), Some(b'+' | b'-')) {
                at += 1;
            }
            if digits(&mut at) == 0 {
                return None;
            }
        }
        self.at = at;
        Some(())
    }

    /// `null`, which every kept field of ours reads as absent.
    fn null(&mut self) -> bool {
        self.token() == Some(b'n') && self.word("null").is_some()
    }

    /// A string, borrowed unless it held escapes, or `null`.
    fn text(&mut self) -> Option<Option<Text<'a>>> {
        if self.null() {
            return Some(None);
        }
        self.decoded().map(|text| Some(Text(text)))
    }

    /// A string's value: Go's encoder writes `&`, `<` and `>` as `\\u0026`..., so query
    /// strings in Traefik's URLs are escaped often enough to be worth decoding here.
    fn decoded(&mut self) -> Option<Cow<'a, str>> {
        match self.string()? {
            (text, false) => Some(Cow::Borrowed(text)),
            (text, true) => unescape(text).map(Cow::Owned),
        }
    }

    /// An unsigned integer in plain digits, or `null`. serde reads a sign, a fraction or an
    /// exponent as another kind of number, and refuses leading zeros: all left to it.
    fn integer(&mut self) -> Option<Option<u64>> {
        if self.null() {
            return Some(None);
        }
        let b = self.bytes();
        let start = self.at;
        let mut n = 0u64;
        while let Some(d) = b.get(self.at).filter(|d| d.is_ascii_digit()) {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.at += 1;
        }
        let digits = self.at - start;
        let other = matches!(b.get(self.at), Some(b'.' | b'e' | b'E'));
        if digits == 0 || (digits > 1 && b[start] == b'0') || other {
            return None;
        }
        Some(Some(n))
    }

    /// Any value's text as written (what serde's `RawValue` holds), or `null`.
    fn raw(&mut self) -> Option<Option<Raw<'a>>> {
        if self.null() {
            return Some(None);
        }
        let start = self.at;
        self.skip()?;
        Some(Some(Raw(&self.text[start..self.at])))
    }

    /// A header's values: an array of strings, or `null`.
    fn values(&mut self) -> Option<Option<Values<'a>>> {
        if self.null() {
            return Some(None);
        }
        let mut joined: Option<Cow<'a, str>> = None;
        self.array(|c| {
            let value = c.decoded()?;
            joined = Some(match joined.take() {
                None => value,
                Some(first) => format!("{first}, {value}").into(),
            });
            Some(())
        })?;
        Some(Some(Values(joined)))
    }
}

/// The first position at or after `at` that holds no space. Out of line, and taking no
/// cursor, so that the cursor's position can stay in a register on the common path.
#[cold]
#[inline(never)]
fn past_spaces(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at) == Some(&b' ') {
        at += 1;
    }
    at
}

/// The value of a string's text whose escapes [`Cursor::escape`] checked.
fn unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at + 1..at + 2)?;
        let (c, len) = match escape {
            "u" => {
                let hex = rest.get(at + 2..at + 6)?;
                (char::from_u32(u32::from_str_radix(hex, 16).ok()?)?, 6)
            }
            _ => (
                match escape {
                    "b" => '\u{8}',
                    "f" => '\u{c}',
                    "n" => '\n',
                    "r" => '\r',
                    "t" => '\t',
                    other => other.chars().next()?,
                },
                2,
            ),
        };
        out.push(c);
        rest = &rest[at + len..];
    }
    out.push_str(rest);
    Some(out)
}

/// Puts the value read for key number `bit` in its slot; `None` when the key was read
/// before (serde refuses a known key given twice) or its value was not plain.
fn set<T>(seen: &mut u32, bit: u32, slot: &mut Option<T>, value: Option<Option<T>>) -> Option<()> {
    if *seen & (1 << bit) != 0 {
        return None;
    }
    *seen |= 1 << bit;
    *slot = value?;
    Some(())
}

/// A Caddy line, or `None` to ask serde.
pub(super) fn caddy<'a>(json: &'a str, marks: &Marks) -> Option<CaddyLine<'a>> {
    let mut c = Cursor::new(json, marks);
    let mut line = CaddyLine::default();
    let mut seen = 0;
    c.object(|c, key| match key {
        "logger" => set(&mut seen, 0, &mut line.logger, c.text()),
        "ts" => set(&mut seen, 1, &mut line.ts, c.raw()),
        "request" => set(&mut seen, 2, &mut line.request, request(c)),
        "user_id" => set(&mut seen, 3, &mut line.user_id, c.text()),
        "duration" => set(&mut seen, 4, &mut line.duration, c.raw()),
        "size" => set(&mut seen, 5, &mut line.size, c.integer()),
        "status" => set(&mut seen, 6, &mut line.status, c.integer()),
        _ => c.skip(),
    })?;
    c.end()?;
    Some(line)
}

fn request<'a>(c: &mut Cursor<'a, '_>) -> Option<Option<CaddyRequest<'a>>> {
    if c.null() {
        return Some(None);
    }
    let mut r = CaddyRequest::default();
    let mut seen = 0;
    c.object(|c, key| match key {
        "remote_ip" => set(&mut seen, 0, &mut r.remote_ip, c.text()),
        "remote_addr" => set(&mut seen, 1, &mut r.remote_addr, c.text()),
        "proto" => set(&mut seen, 2, &mut r.proto, c.text()),
        "method" => set(&mut seen, 3, &mut r.method, c.text()),
        "host" => set(&mut seen, 4, &mut r.host, c.text()),
        "uri" => set(&mut seen, 5, &mut r.uri, c.text()),
        "headers" => set(&mut seen, 6, &mut r.headers, headers(c)),
        _ => c.skip(),
    })?;
    Some(Some(r))
}

fn headers<'a>(c: &mut Cursor<'a, '_>) -> Option<Option<CaddyHeaders<'a>>> {
    if c.null() {
        return Some(None);
    }
    let mut h = CaddyHeaders::default();
    let mut seen = 0;
    c.object(|c, key| match key {
        "User-Agent" => set(&mut seen, 0, &mut h.user_agent, c.values()),
        "Referer" => set(&mut seen, 1, &mut h.referer, c.values()),
        "X-Forwarded-For" => set(&mut seen, 2, &mut h.forwarded_for, c.values()),
        _ => c.skip(),
    })?;
    Some(Some(h))
}

/// A Traefik line, or `None` to ask serde.
pub(super) fn traefik<'a>(json: &'a str, marks: &Marks) -> Option<TraefikLine<'a>> {
    let mut c = Cursor::new(json, marks);
    let mut t = TraefikLine::default();
    let mut seen = 0;
    c.object(|c, key| match key {
        "ClientHost" => set(&mut seen, 0, &mut t.client_host, c.text()),
        "ClientAddr" => set(&mut seen, 1, &mut t.client_addr, c.text()),
        "ClientUsername" => set(&mut seen, 2, &mut t.client_username, c.text()),
        "StartUTC" => set(&mut seen, 3, &mut t.start_utc, c.text()),
        "time" => set(&mut seen, 4, &mut t.time, c.text()),
        "RequestMethod" => set(&mut seen, 5, &mut t.request_method, c.text()),
        "RequestPath" => set(&mut seen, 6, &mut t.request_path, c.text()),
        "RequestProtocol" => set(&mut seen, 7, &mut t.request_protocol, c.text()),
        "RequestHost" => set(&mut seen, 8, &mut t.request_host, c.text()),
        "RequestPort" => set(&mut seen, 9, &mut t.request_port, c.text()),
        "DownstreamStatus" => set(&mut seen, 10, &mut t.downstream_status, c.integer()),
        "DownstreamContentSize" => set(&mut seen, 11, &mut t.downstream_content_size, c.integer()),
        "Duration" => set(&mut seen, 12, &mut t.duration, c.integer()),
        "OriginDuration" => set(&mut seen, 13, &mut t.origin_duration, c.integer()),
        "request_Referer" => set(&mut seen, 14, &mut t.referer, c.text()),
        "request_User-Agent" => set(&mut seen, 15, &mut t.user_agent, c.text()),
        "request_X-Forwarded-For" => set(&mut seen, 16, &mut t.forwarded_for, c.text()),
        _ => c.skip_flat(),
    })?;
    c.end()?;
    Some(t)
}
