//! Visits: hits per client, unique visitors, and how many visitors hit each URL.
//!
//! A visitor is a distinct (client, day, user agent), as GoAccess counts them. Their number
//! grows with the log (a log where every line comes from a new address holds as many visitors
//! as lines), and one table of them all would be spread over so much memory that every hit
//! missed the processor's caches. A visitor belongs to one day, and a log's lines come mostly
//! in time order, so the visitors are kept in one table per day: the hits of a run of lines
//! fall in one table, the size of a day's visitors, which the caches hold. A day's table also
//! holds the clients whose hits of the day made no visit (4xx), for their hits.
//!
//! A day can still hold millions of visitors (a busy site, or a scanner that changes its
//! address at every line). Past [`SPLIT_AT`] entries, a day's table is split by client into
//! [`PARTS`] tables, and hits are held back per table and counted [`PENDING`] at a time: each
//! run of hits falls in one table a hundredth of the size.

use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;
use rustc_hash::{FxBuildHasher, FxHashMap};

/// Entries of a day's table (visitors, and clients with no visit yet) past which it is split
/// (about 2 MiB of slots).
const SPLIT_AT: usize = 1 << 16;
/// Tables a day's visitors are split into (a power of two).
const PARTS: usize = 128;
/// Hits held back per table before they are counted together.
const PENDING: usize = 128;
/// Pairs of a URL and a visitor held back, at least, before they are sorted and counted (see
/// [`Part::new_urls`]); small in tests, so that they are counted many times over.
const NEW_URLS: usize = if cfg!(test) { 8 } else { 1 << 10 };

/// The visits of the hits seen; `K` identifies a client.
#[derive(Debug)]
pub struct Visits<K> {
    /// The days seen, each with its visitors, in order of first sight.
    days: Vec<Day<K>>,
    /// Where each day is in `days`.
    index: FxHashMap<i32, usize>,
    /// The day of the last hit: the next is most likely of the same day.
    last: usize,
    /// [`SPLIT_AT`], smaller in tests.
    split_at: usize,
}

/// One day's visitors: one table, or, past [`SPLIT_AT`], [`PARTS`] tables split by client.
#[derive(Debug)]
enum Day<K> {
    One(i32, Part<K>),
    Split(i32, Vec<Part<K>>),
}

/// What the visits add up to.
#[derive(Debug, PartialEq, Eq)]
pub struct Visited<K> {
    /// Distinct visitors.
    pub visitors: u64,
    /// Each client once, with its hits, in no particular order.
    pub clients: Vec<(K, u64)>,
    /// Distinct visitors per day (since the epoch), in no particular order.
    pub days: Vec<(i64, u64)>,
    /// Distinct visitors per user agent id, by id: a visitor has one agent, so the visitors of
    /// a group of agents (a browser) are their sum.
    pub agents: Vec<u64>,
}

#[derive(Debug)]
struct Part<K> {
    /// Hits held back, in a split day's tables.
    pending: Vec<Held<K>>,
    /// The visitor is in the table itself, not in a list the table numbers: one place in
    /// memory to reach per hit, not two. It holds the clients whose hits made no visit too
    /// ([`NOT_VISITED`]).
    visitors: HashTable<VisitorHits<K>>,
    /// The visitors of `visitors` that made a visit, which numbers them.
    visited: u32,
    /// URL << 32 | visitor number, sorted and distinct, each counted once: the URLs of
    /// visitors who hit more than [`INLINE`].
    more_urls: Vec<u64>,
    /// Such pairs not looked up yet, in order of arrival, repeats included. Appended to and
    /// then sorted, not looked up one by one in a table: a table's every lookup reaches a
    /// random place in memory, and, as large as the other visits' tables, it pushes them out
    /// of the caches too. See [`Part::add_urls`].
    new_urls: Vec<u64>,
}

impl<K> Day<K> {
    fn day(&self) -> i32 {
        match self {
            Day::One(day, _) | Day::Split(day, _) => *day,
        }
    }
}

impl<K> Part<K> {
    /// A table with room for `visitors` visitors.
    fn with_room(visitors: usize) -> Part<K> {
        Part {
            visitors: HashTable::with_capacity(visitors),
            ..Part::default()
        }
    }
}

impl<K> Default for Part<K> {
    fn default() -> Self {
        Part {
            pending: Vec::new(),
            visitors: HashTable::new(),
            visited: 0,
            more_urls: Vec::new(),
            new_urls: Vec::new(),
        }
    }
}

/// The number of a [`VisitorHits`] whose hits all made no visit ([`Visits::hit_without_visit`])
/// so far: it counts for its client's hits, not as a visitor. Kept in its day's table rather
/// than in one table of its own: a table of every such client of the log would be reached at
/// a random place by every such hit, far outside the caches.
const NOT_VISITED: u32 = u32::MAX;

/// A hit held back in a split day's table: its visitor (client and user agent id, the day
/// being the table's) and its URL.
#[derive(Debug, Clone, Copy)]
struct Held<K> {
    client: K,
    agent: u32,
    url: u32,
}

/// URLs kept in a visitor's own slot: most visitors hit few URLs a day, and a larger slot
/// makes every visitor's larger, in a table of millions.
const INLINE: usize = 2;
/// An empty place in [`VisitorHits::urls`]: no URL id reaches it, ids being numbered from 0.
const NO_URL: u32 = u32::MAX;

/// One visitor and its hits, in its day's table. Its day is the table's, so not held: the
/// slot is 32 bytes for a client that is a `u64`, rather than 40 with a key apart.
#[derive(Debug)]
struct VisitorHits<K> {
    client: K,
    agent: u32,
    /// In order of first visit within its table, for [`Part::more_urls`]; [`NOT_VISITED`]
    /// before it.
    number: u32,
    hits: u64,
    /// The first distinct URLs hit, then [`NO_URL`]; the others are in [`Part::more_urls`].
    urls: [u32; INLINE],
}

impl<K: Hash> VisitorHits<K> {
    fn hash(&self) -> u64 {
        visitor_hash(&self.client, self.agent)
    }
}

/// The hash a day's table keeps a visitor by.
#[inline]
fn visitor_hash<K: Hash>(client: &K, agent: u32) -> u64 {
    FxBuildHasher.hash_one((client, agent))
}

impl<K> Default for Visits<K> {
    fn default() -> Self {
        Visits::with_split_at(SPLIT_AT)
    }
}

impl<K> Visits<K> {
    fn with_split_at(split_at: usize) -> Visits<K> {
        Visits {
            days: Vec::new(),
            index: FxHashMap::default(),
            last: 0,
            split_at,
        }
    }
}

/// The table of a split day that `client` is in. High bits of a hash mixed again: the
/// counting threads split clients by their hash too, and each thread's clients must still
/// spread over every table.
#[inline]
fn part_of<K: Hash>(client: &K) -> usize {
    let hash = FxBuildHasher
        .hash_one(client)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (hash >> (64 - PARTS.trailing_zeros())) as usize
}

impl<K: Copy + Eq + Hash> Visits<K> {
    /// Records a hit on `url` by `client` with `agent` (ids; `url` below `u32::MAX`) at
    /// `timestamp` (seconds since the epoch). `first_visit` is called with each URL a visitor
    /// hits for the first time, here or in a later call: hits are counted in runs.
    #[inline]
    pub fn hit(
        &mut self,
        timestamp: i64,
        client: K,
        agent: u32,
        url: u32,
        first_visit: impl FnMut(u32),
    ) {
        debug_assert_ne!(url, NO_URL, "a visit's URL");
        self.record(timestamp, client, agent, url, first_visit);
    }

    /// Records a hit: a visit to `url`, or no visit when `url` is [`NO_URL`].
    #[inline]
    fn record(
        &mut self,
        timestamp: i64,
        client: K,
        agent: u32,
        url: u32,
        mut first_visit: impl FnMut(u32),
    ) {
        let day = timestamp.div_euclid(86_400) as i32;
        let held = Held { client, agent, url };
        let i = self.day_index(day);
        match &mut self.days[i] {
            Day::One(_, part) => {
                part.count_one(held, &mut first_visit);
                if part.visitors.len() > self.split_at {
                    self.split(i, &mut first_visit);
                }
            }
            Day::Split(_, parts) => {
                let part = &mut parts[part_of(&client)];
                part.pending.push(held);
                if part.pending.len() >= PENDING {
                    part.count(first_visit);
                }
            }
        }
    }

    /// Where `day` is in `days`, which gets it if it is new.
    #[inline]
    fn day_index(&mut self, day: i32) -> usize {
        if self.days.get(self.last).is_none_or(|d| d.day() != day) {
            self.last = match self.index.get(&day) {
                Some(&i) => i,
                None => {
                    let new = self.new_day(day);
                    self.days.push(new);
                    self.index.insert(day, self.days.len() - 1);
                    self.days.len() - 1
                }
            };
        }
        self.last
    }

    /// The tables of a day first seen. A log's days are much alike, so they are made the
    /// size the day before them ended at (and split if it was), rather than grown to it by
    /// doubling: each doubling moves every visitor to a new table, in memory taken anew.
    #[cold]
    fn new_day(&self, day: i32) -> Day<K> {
        match self.days.last() {
            Some(Day::Split(_, parts)) => Day::Split(
                day,
                (parts.iter())
                    .map(|part| Part::with_room(part.visitors.len()))
                    .collect(),
            ),
            Some(Day::One(_, part)) => Day::One(day, Part::with_room(part.visitors.len())),
            None => Day::One(day, Part::default()),
        }
    }

    /// Splits the table of the day at `i` by client. A visitor's number changes with its
    /// table, so its other URLs move with it under the new number.
    #[cold]
    fn split(&mut self, i: usize, first_visit: impl FnMut(u32)) {
        let Day::One(day, one) = &mut self.days[i] else {
            return;
        };
        let (day, mut one) = (*day, std::mem::take(one));
        one.count_all(first_visit);
        let mut parts: Vec<Part<K>> = (0..PARTS).map(|_| Part::default()).collect();
        // By old number: the new table and number.
        let mut moved = vec![(0u32, 0u32); one.visited as usize];
        for mut hits in one.visitors {
            let p = part_of(&hits.client);
            let part = &mut parts[p];
            if hits.number != NOT_VISITED {
                let number = part.visited;
                part.visited += 1;
                moved[hits.number as usize] = (p as u32, number);
                hits.number = number;
            }
            part.visitors
                .insert_unique(hits.hash(), hits, VisitorHits::hash);
        }
        for key in one.more_urls {
            let (p, number) = moved[(key & 0xffff_ffff) as usize];
            (parts[p as usize].more_urls).push(key >> 32 << 32 | u64::from(number));
        }
        for part in &mut parts {
            part.more_urls.sort_unstable();
        }
        self.days[i] = Day::Split(day, parts);
    }

    /// Records a hit that counts for `client` but makes no visit (a 4xx, which GoAccess
    /// leaves out of its visitors); the visitor it would be may still make one. Arguments as
    /// in [`Visits::hit`]: `first_visit` may count the hits held back.
    #[inline]
    pub fn hit_without_visit(
        &mut self,
        timestamp: i64,
        client: K,
        agent: u32,
        first_visit: impl FnMut(u32),
    ) {
        self.record(timestamp, client, agent, NO_URL, first_visit);
    }

    /// No hit was recorded.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
    }

    /// Everything the hits add up to; `first_visit` as in [`Visits::hit`], for the hits not
    /// counted yet.
    pub fn finish(self, mut first_visit: impl FnMut(u32)) -> Visited<K>
    where
        K: Ord,
    {
        let mut visited = Visited {
            visitors: 0,
            clients: Vec::new(),
            days: Vec::new(),
            agents: Vec::new(),
        };
        let mut clients = Vec::new();
        for day in self.days {
            let (day, parts) = match day {
                Day::One(day, part) => (day, vec![part]),
                Day::Split(day, parts) => (day, parts),
            };
            let mut visitors = 0u64;
            for part in parts {
                let (visited_here, table) = part.count_last(&mut first_visit);
                visitors += u64::from(visited_here);
                clients.extend(table.into_iter().map(|s| {
                    if s.number != NOT_VISITED {
                        let agent = s.agent as usize;
                        if agent >= visited.agents.len() {
                            visited.agents.resize(agent + 1, 0);
                        }
                        visited.agents[agent] += 1;
                    }
                    (s.client, s.hits)
                }));
            }
            // A day whose hits made no visit is no day of visitors.
            if visitors > 0 {
                visited.visitors += visitors;
                visited.days.push((i64::from(day), visitors));
            }
        }
        // A client's hits are in each day it came: added up in order.
        clients.sort_unstable_by_key(|&(client, _)| client);
        clients.dedup_by(|next, kept| {
            let same = next.0 == kept.0;
            if same {
                kept.1 += next.1;
            }
            same
        });
        visited.clients = clients;
        visited
    }
}

impl<K: Copy + Eq + Hash> Part<K> {
    /// Counts the hits held back.
    fn count(&mut self, mut first_visit: impl FnMut(u32)) {
        let mut pending = std::mem::take(&mut self.pending);
        for held in pending.drain(..) {
            self.count_one(held, &mut first_visit);
        }
        // The buffer is kept for the next hits.
        self.pending = pending;
    }

    /// Counts everything held back: the hits, then the pairs of URL and visitor.
    fn count_all(&mut self, mut first_visit: impl FnMut(u32)) {
        self.count(&mut first_visit);
        self.add_urls(first_visit);
    }

    /// [`Part::count_all`] for the last time, which is why it takes the part: the pairs not
    /// known yet are counted but not merged into the known ones, which no later hit will look
    /// up. At the end of a log the pairs held back are up to half of all, and merging them
    /// rewrote every known pair. Returns the number of visitors and the table.
    fn count_last(mut self, mut first_visit: impl FnMut(u32)) -> (u32, HashTable<VisitorHits<K>>) {
        self.count(&mut first_visit);
        let mut scratch = vec![0; self.new_urls.len()];
        first_visits(
            &mut self.new_urls,
            &mut scratch,
            &self.more_urls,
            first_visit,
        );
        (self.visited, self.visitors)
    }

    /// Moves [`Part::new_urls`] into [`Part::more_urls`], calling `first_visit` with the URL of
    /// each pair not there yet. Called when the new pairs are as many as the known ones (or
    /// [`NEW_URLS`]), so that each pair is sorted and merged a bounded number of times on
    /// average. Between merges, the known pairs take 8 bytes each and the new ones at most as
    /// much again; during one, the new ones' room once more.
    // Never inlined: called once per many hits, it would only make the per-hit code larger.
    #[inline(never)]
    fn add_urls(&mut self, first_visit: impl FnMut(u32)) {
        let (known, new) = (&mut self.more_urls, &mut self.new_urls);
        // The room the merge below needs at most, lent to the sort first.
        let old = known.len();
        known.reserve_exact(new.len());
        known.resize(old + new.len(), 0);
        let (known_now, room) = known.split_at_mut(old);
        first_visits(new, room, known_now, first_visit);
        known.truncate(old);
        // Merged from the back, in place: the known pairs move up at most once.
        let added = new.len();
        known.resize(old + added, 0);
        let (mut i, mut j) = (old, added);
        while j > 0 {
            if i > 0 && known[i - 1] > new[j - 1] {
                known[i + j - 1] = known[i - 1];
                i -= 1;
            } else {
                known[i + j - 1] = new[j - 1];
                j -= 1;
            }
        }
        // The room lent to the sort was for the new pairs with their repeats; the list keeps
        // only what it holds.
        known.shrink_to_fit();
        new.clear();
    }

    /// Counts one hit; its `url` is [`NO_URL`] when it makes no visit.
    // Always: once the counter grew, the compiler stopped inlining it on its own, and a call
    // per request is a large share of a big report's time.
    #[inline(always)]
    fn count_one(&mut self, held: Held<K>, mut first_visit: impl FnMut(u32)) {
        let Held { client, agent, url } = held;
        let visits = (self.visitors.entry(
            visitor_hash(&client, agent),
            |v| v.client == client && v.agent == agent,
            VisitorHits::hash,
        ))
        .or_insert(VisitorHits {
            client,
            agent,
            hits: 0,
            number: NOT_VISITED,
            urls: [NO_URL; INLINE],
        })
        .into_mut();
        visits.hits += 1;
        if url == NO_URL {
            return;
        }
        if visits.number == NOT_VISITED {
            debug_assert!(self.visited < NOT_VISITED, "a table of 2³² visitors");
            visits.number = self.visited;
            self.visited += 1;
        }
        let first = match visits.urls.iter().position(|&u| u == url || u == NO_URL) {
            Some(i) if visits.urls[i] == url => false,
            Some(i) => {
                visits.urls[i] = url;
                true
            }
            None => {
                (self.new_urls).push(u64::from(url) << 32 | u64::from(visits.number));
                if self.new_urls.len() >= self.more_urls.len().max(NEW_URLS) {
                    self.add_urls(&mut first_visit);
                }
                false
            }
        };
        if first {
            first_visit(url);
        }
    }
}

/// Sorts the pairs `new` (with `scratch`, as long, as room) and keeps each once if it is not
/// in the sorted `known`: a first visit, whose URL `first_visit` is called with. Both lists
/// sorted, one walk along the known ones finds them.
fn first_visits(
    new: &mut Vec<u64>,
    scratch: &mut [u64],
    known: &[u64],
    mut first_visit: impl FnMut(u32),
) {
    radix_sort(new, scratch);
    new.dedup();
    let mut walk = 0;
    new.retain(|&pair| {
        while walk < known.len() && known[walk] < pair {
            walk += 1;
        }
        let first = known.get(walk) != Some(&pair);
        if first {
            first_visit((pair >> 32) as u32);
        }
        first
    });
}

/// Sorts `keys` a byte at a time from the lowest (a radix sort), with `scratch`, as long, as
/// room: a few passes over the keys, where a comparison sort of millions of pairs compares
/// each about twenty times. Bytes that all keys share are skipped: a pair of a URL and a
/// visitor numbers both from 0, so most of its high bytes are zero.
fn radix_sort(keys: &mut [u64], scratch: &mut [u64]) {
    if keys.len() < 256 {
        keys.sort_unstable();
        return;
    }
    let mut counts = [[0usize; 256]; 8];
    for &key in keys.iter() {
        for (byte, count) in counts.iter_mut().enumerate() {
            count[(key >> (8 * byte)) as u8 as usize] += 1;
        }
    }
    // Each pass moves the keys from one buffer to the other.
    let mut in_scratch = false;
    for (byte, count) in counts.iter_mut().enumerate() {
        if count.contains(&keys.len()) {
            continue;
        }
        let mut next = 0;
        for slot in count.iter_mut() {
            (*slot, next) = (next, next + *slot);
        }
        let (from, to): (&[u64], &mut [u64]) = match in_scratch {
            false => (keys, scratch),
            true => (scratch, keys),
        };
        for &key in from {
            let slot = &mut count[(key >> (8 * byte)) as u8 as usize];
            to[*slot] = key;
            *slot += 1;
        }
        in_scratch = !in_scratch;
    }
    if in_scratch {
        keys.copy_from_slice(scratch);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use proptest::prelude::*;

    use super::*;

    fn sorted<K: Ord>(mut clients: Vec<(K, u64)>) -> Vec<(K, u64)> {
        clients.sort_unstable();
        clients
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        /// Against sets of whole keys: few agents and days and many URLs, so that visitors
        /// outgrow their slot and rows go back to days already left; few clients, so that a
        /// table is counted many times over, or many, so that most hold hits back to the end;
        /// some hits count for their client only; days that stay one table, and days split
        /// after a few visitors, or at once.
        #[test]
        fn counts_are_those_of_whole_key_sets(
            clients in prop_oneof![1u16..8, 1u16..2000],
            split_at in prop_oneof![Just(SPLIT_AT), 0usize..64],
            rows in proptest::collection::vec(
                (-1i64..1, 0..86_400i64, any::<u16>(), 0u32..2, 0u32..16, 0u8..4),
                0..3000,
            )
        ) {
            let mut visits = Visits::with_split_at(split_at);
            let mut pairs = HashSet::new();
            let mut visitors = HashSet::new();
            let mut hits: HashMap<u16, u64> = HashMap::new();
            let mut days: HashMap<i64, u64> = HashMap::new();
            let mut agents = vec![0u64; 2];
            let mut url_visitors = vec![0u64; 16];
            let mut got = vec![0u64; 16];
            for (day, second, client, agent, url, visiting) in rows {
                let client = client % clients;
                *hits.entry(client).or_default() += 1;
                // One hit in four makes no visitor (a 4xx, counted as GoAccess does).
                if visiting == 0 {
                    let t = day * 86_400 + second;
                    visits.hit_without_visit(t, client, agent, |u| got[u as usize] += 1);
                    continue;
                }
                if pairs.insert((day, client, agent, url)) {
                    url_visitors[url as usize] += 1;
                }
                if visitors.insert((day, client, agent)) {
                    *days.entry(day).or_default() += 1;
                    agents[agent as usize] += 1;
                }
                visits.hit(day * 86_400 + second, client, agent, url, |u| got[u as usize] += 1);
            }
            let visited = visits.finish(|u| got[u as usize] += 1);
            prop_assert_eq!(visited.visitors, visitors.len() as u64);
            prop_assert_eq!(got, url_visitors);
            prop_assert_eq!(sorted(visited.clients), sorted(hits.into_iter().collect()));
            prop_assert_eq!(sorted(visited.days), sorted(days.into_iter().collect()));
            let mut per_agent = visited.agents;
            per_agent.resize(2, 0);
            prop_assert_eq!(per_agent, agents);
        }
    }

    proptest! {
        /// Keys with high bytes in common or not, short and long lists (the radix passes
        /// start at 256 keys).
        #[test]
        fn the_radix_sort_sorts(
            keys in prop_oneof![
                proptest::collection::vec(any::<u64>(), 0..2000),
                proptest::collection::vec(0u64..70_000, 0..2000),
                proptest::collection::vec(
                    (0u64..300, 0u64..5).prop_map(|(u, v)| u << 32 | v),
                    0..2000,
                ),
            ]
        ) {
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            let (mut got, mut scratch) = (keys.clone(), vec![0; keys.len()]);
            radix_sort(&mut got, &mut scratch);
            prop_assert_eq!(got, sorted);
        }
    }

    #[test]
    fn a_visitor_is_a_client_agent_and_day_in_any_row_order() {
        let day = 86_400;
        let mut visits = Visits::default();
        // (timestamp, client, agent, url)
        let rows = [
            (10, 'a', 1, 7),
            (20, 'a', 1, 7),      // same visitor, same URL
            (30, 'a', 1, 8),      // same visitor, another URL
            (40, 'a', 2, 7),      // another agent: another visitor
            (40, 'b', 1, 7),      // another client: another visitor
            (day + 5, 'a', 1, 7), // the next day: another visitor
            (50, 'a', 1, 8),      // back to the first day, out of order
            (-5, 'a', 1, 7),      // before the epoch: the day before
            (day - 1, 'a', 1, 8), // last second of the first day
            (day + 6, 'a', 1, 7),
        ];
        let mut url_visitors = [0; 9];
        for (t, client, agent, url) in rows {
            visits.hit(t, client, agent, url, |u| url_visitors[u as usize] += 1);
        }
        let visited = visits.finish(|u| url_visitors[u as usize] += 1);
        // ('a', 1) on days 0, 1 and -1, ('a', 2) and ('b', 1) on day 0.
        assert_eq!(visited.visitors, 5);
        // URL 7: ('a', 1) on days 0, 1, -1, ('a', 2), ('b', 1); URL 8: ('a', 1) on day 0.
        assert_eq!(url_visitors[7..], [5, 1]);
        assert_eq!(sorted(visited.clients), [('a', 9), ('b', 1)]);
    }

    #[test]
    fn a_hit_without_a_visit_counts_for_its_client_and_not_as_a_visitor() {
        let day = 86_400;
        let mut visits = Visits::default();
        let mut url_visitors = [0; 9];
        let mut first = |u: u32| url_visitors[u as usize] += 1;
        // ('a', 1) gets a 4xx, then visits the same day: one visitor.
        visits.hit_without_visit(10, 'a', 1, &mut first);
        visits.hit(20, 'a', 1, 7, &mut first);
        // ('a', 2) only gets a 4xx: no visitor.
        visits.hit_without_visit(30, 'a', 2, &mut first);
        // 'b' only gets 4xx hits, on a day of its own: hits, no visitor, no day of visitors.
        visits.hit_without_visit(2 * day, 'b', 1, &mut first);
        visits.hit_without_visit(2 * day + 1, 'b', 1, &mut first);
        let visited = visits.finish(&mut first);
        assert_eq!(visited.visitors, 1);
        assert_eq!(visited.days, [(0, 1)]);
        assert_eq!(visited.agents, [0, 1]);
        assert_eq!(sorted(visited.clients), [('a', 3), ('b', 2)]);
        assert_eq!(url_visitors[7], 1);
    }
}
