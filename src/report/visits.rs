//! Visits: hits per client, unique visitors, and how many visitors hit each URL.
//!
//! A visitor is a distinct (client, day, user agent), as GoAccess counts them. Their number
//! grows with the log (a log where every line comes from a new address holds as many visitors
//! as lines), and one table of them all would be spread over so much memory that every hit
//! missed the processor's caches and its address translation. So the visitors are split by
//! client into [`PARTS`] tables, and hits are held back per table and counted [`PENDING`] at a
//! time: each run of hits falls in one table a hundredth of the size. Each client is in one
//! table only, so a client's hits add up table by table.

use std::hash::{BuildHasher, Hash};

use rustc_hash::{FxBuildHasher, FxHashMap, FxHashSet};

/// Tables the visitors are split into (a power of two).
const PARTS: usize = 128;
/// Hits held back per table before they are counted together.
const PENDING: usize = 128;

/// The visits of the hits seen; `K` identifies a client.
#[derive(Debug)]
pub struct Visits<K> {
    parts: Vec<Part<K>>,
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
    pending: Vec<(Visitor<K>, u32)>,
    /// The visitor is in the map itself, not in a list the map numbers: one place in memory
    /// to reach per hit, not two.
    visitors: FxHashMap<Visitor<K>, VisitorHits>,
    /// URL << 32 | visitor number: the URLs of visitors who hit more than [`INLINE`].
    more_urls: FxHashSet<u64>,
}

/// The day of the hits that count for their client but make no visitor
/// ([`Visits::hit_without_visit`]): no log reaches it.
const NO_VISIT: i32 = i32::MIN;

/// A visitor: client, day (since the epoch) and user agent id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Visitor<K> {
    client: K,
    day: i32,
    agent: u32,
}

/// URLs kept in a visitor's own slot: most visitors hit few URLs a day, and a larger slot
/// makes every visitor's larger, in a table of millions.
const INLINE: usize = 2;
/// An empty place in [`VisitorHits::urls`]: no URL id reaches it, ids being numbered from 0.
const NO_URL: u32 = u32::MAX;

/// One visitor's hits.
#[derive(Debug)]
struct VisitorHits {
    hits: u64,
    /// In order of first sight within its table, for [`Part::more_urls`].
    number: u32,
    /// The first distinct URLs hit, then [`NO_URL`]; the others are in [`Part::more_urls`].
    urls: [u32; INLINE],
}

impl<K> Default for Visits<K> {
    fn default() -> Self {
        Visits {
            parts: (0..PARTS)
                .map(|_| Part {
                    pending: Vec::new(),
                    visitors: FxHashMap::default(),
                    more_urls: FxHashSet::default(),
                })
                .collect(),
        }
    }
}

impl<K: Copy + Eq + Hash> Visits<K> {
    /// Records a hit on `url` by `client` with `agent` (ids) at `timestamp` (seconds since the
    /// epoch). `first_visit` is called with each URL a visitor hits for the first time, here
    /// or in a later call: hits are counted in runs.
    #[inline]
    pub fn hit(
        &mut self,
        timestamp: i64,
        client: K,
        agent: u32,
        url: u32,
        first_visit: impl FnMut(u32),
    ) {
        // High bits of a hash mixed again: the counting threads split clients by their
        // hash too, and each thread's clients must still spread over every table.
        let hash = FxBuildHasher
            .hash_one(client)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let part = &mut self.parts[(hash >> (64 - PARTS.trailing_zeros())) as usize];
        let visitor = Visitor {
            client,
            day: timestamp.div_euclid(86_400) as i32,
            agent,
        };
        part.pending.push((visitor, url));
        if part.pending.len() >= PENDING {
            part.count(first_visit);
        }
    }

    /// Records a hit that counts for `client` but makes no visitor (a 4xx, which GoAccess
    /// leaves out of its visitors). `first_visit` as in [`Visits::hit`]: it may count the
    /// hits held back.
    #[inline]
    pub fn hit_without_visit(&mut self, client: K, first_visit: impl FnMut(u32)) {
        self.hit(i64::from(NO_VISIT) * 86_400, client, 0, NO_URL, first_visit);
    }

    /// No hit was recorded.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        (self.parts.iter()).all(|p| p.pending.is_empty() && p.visitors.is_empty())
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
        let mut days: FxHashMap<i32, u64> = FxHashMap::default();
        let mut clients = Vec::new();
        for mut part in self.parts {
            part.count(&mut first_visit);
            let mut visitors = part.visitors.len() as u64;
            // A client is in one table only: adding up its hits needs only that table's, and
            // sorting them reads memory in order.
            clients.clear();
            // Most visitors of a table share a day with the one before: one lookup per run.
            let mut day = (i32::MIN, 0u64);
            clients.extend(part.visitors.into_iter().map(|(v, s)| {
                if v.day == NO_VISIT {
                    visitors -= 1;
                    return (v.client, s.hits);
                }
                if v.day != day.0 {
                    if day.1 > 0 {
                        *days.entry(day.0).or_default() += day.1;
                    }
                    day = (v.day, 0);
                }
                day.1 += 1;
                let agent = v.agent as usize;
                if agent >= visited.agents.len() {
                    visited.agents.resize(agent + 1, 0);
                }
                visited.agents[agent] += 1;
                (v.client, s.hits)
            }));
            if day.1 > 0 {
                *days.entry(day.0).or_default() += day.1;
            }
            visited.visitors += visitors;
            clients.sort_unstable_by_key(|&(client, _)| client);
            clients.dedup_by(|next, kept| {
                let same = next.0 == kept.0;
                if same {
                    kept.1 += next.1;
                }
                same
            });
            visited.clients.extend_from_slice(&clients);
        }
        visited.days = days.into_iter().map(|(d, n)| (i64::from(d), n)).collect();
        visited
    }
}

impl<K: Copy + Eq + Hash> Part<K> {
    /// Counts the hits held back.
    fn count(&mut self, mut first_visit: impl FnMut(u32)) {
        for (visitor, url) in self.pending.drain(..) {
            let number = self.visitors.len() as u32;
            let visits = self.visitors.entry(visitor).or_insert(VisitorHits {
                hits: 0,
                number,
                urls: [NO_URL; INLINE],
            });
            visits.hits += 1;
            if visitor.day == NO_VISIT {
                continue;
            }
            let first = match visits.urls.iter().position(|&u| u == url || u == NO_URL) {
                Some(i) if visits.urls[i] == url => false,
                Some(i) => {
                    visits.urls[i] = url;
                    true
                }
                None => (self.more_urls).insert(u64::from(url) << 32 | u64::from(visits.number)),
            };
            if first {
                first_visit(url);
            }
        }
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
        /// some hits count for their client only.
        #[test]
        fn counts_are_those_of_whole_key_sets(
            clients in prop_oneof![1u16..8, 1u16..2000],
            rows in proptest::collection::vec((-1i64..1, 0..86_400i64, any::<u16>(), 0u32..2, 0u32..16, 0u8..4), 0..3000)
        ) {
            let mut visits = Visits::default();
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
                    visits.hit_without_visit(client, |u| got[u as usize] += 1);
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
}
