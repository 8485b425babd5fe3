//! Visits: hits per client, unique visitors, and which visitors hit which URL, kept day by day.
//!
//! A visitor is a distinct (client, day, user agent), as GoAccess counts them, so each visitor
//! belongs to one day and the visitors of different days (and the URLs they hit) never
//! coincide: per-day counts simply add up, and so do a client's hits. Keeping small maps per
//! day instead of one for the whole log changes no count, but logs are written in time order,
//! so nearly every row lands in the day just seen, whose maps stay in the processor's cache,
//! where whole-log maps of millions of entries would make each lookup a trip to memory. A row
//! out of order is counted the same, in its own day.

use std::hash::Hash;

use rustc_hash::{FxHashMap, FxHashSet};

/// The visits of the rows seen; `K` identifies a client.
#[derive(Debug)]
pub struct Visits<K> {
    days: Vec<Day<K>>,
    /// Day number → index in `days`.
    index: FxHashMap<i32, usize>,
    /// Index of the day of the last row.
    last: usize,
}

#[derive(Debug)]
struct Day<K> {
    day: i32,
    /// By (client, agent). The visitor is in the map itself, not in a list the map numbers:
    /// one place in memory to reach per row, not two.
    visitors: FxHashMap<(K, u32), Visitor>,
    /// URL << 32 | visitor number: the URLs of visitors who hit more than [`INLINE`].
    more_urls: FxHashSet<u64>,
}

/// URLs kept in a visitor's own slot. Most visitors hit only a few URLs a day, so which they
/// hit is answered from the slot their hit is counted in, without another lookup.
const INLINE: usize = 6;

#[derive(Debug)]
struct Visitor {
    /// In order of first sight within the day, for [`Day::more_urls`].
    number: u32,
    hits: u64,
    /// The first distinct URLs hit; the others are in [`Day::more_urls`].
    urls: [u32; INLINE],
    len: u8,
}

impl<K> Default for Visits<K> {
    fn default() -> Self {
        Visits {
            days: Vec::new(),
            index: FxHashMap::default(),
            last: 0,
        }
    }
}

impl<K: Copy + Eq + Hash> Visits<K> {
    /// Records a hit on `url` by `client` with `agent` (ids) at `timestamp` (seconds since the
    /// epoch). True when that visitor had not hit that URL before.
    pub fn hit(&mut self, timestamp: i64, client: K, agent: u32, url: u32) -> bool {
        let day = timestamp.div_euclid(86_400) as i32;
        if self.days.get(self.last).is_none_or(|d| d.day != day) {
            self.last = *self.index.entry(day).or_insert_with(|| {
                self.days.push(Day {
                    day,
                    visitors: FxHashMap::default(),
                    more_urls: FxHashSet::default(),
                });
                self.days.len() - 1
            });
        }
        let day = &mut self.days[self.last];
        let next = day.visitors.len() as u32;
        let visitor = day.visitors.entry((client, agent)).or_insert(Visitor {
            number: next,
            hits: 0,
            urls: [0; INLINE],
            len: 0,
        });
        visitor.hits += 1;
        let len = usize::from(visitor.len);
        if visitor.urls[..len].contains(&url) {
            return false;
        }
        if len < INLINE {
            visitor.urls[len] = url;
            visitor.len += 1;
            return true;
        }
        day.more_urls
            .insert(u64::from(url) << 32 | u64::from(visitor.number))
    }

    /// How many distinct visitors.
    pub fn visitors(&self) -> u64 {
        self.days.iter().map(|d| d.visitors.len() as u64).sum()
    }

    /// Each client once, with its hits, in order of `K`.
    pub fn into_clients(self) -> Vec<(K, u64)>
    where
        K: Ord,
    {
        // Sorting and adding up neighbours reads memory in order; a map of every client
        // would be a random access per visitor.
        let mut hits: Vec<(K, u64)> = (self.days.into_iter())
            .flat_map(|day| day.visitors)
            .map(|((client, _), v)| (client, v.hits))
            .collect();
        hits.sort_unstable_by_key(|&(client, _)| client);
        hits.dedup_by(|next, kept| {
            let same = next.0 == kept.0;
            if same {
                kept.1 += next.1;
            }
            same
        });
        hits
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        /// Against sets of whole keys: few clients, agents and days and many URLs, so that
        /// visitors outgrow their slot and rows go back to days already left.
        #[test]
        fn counts_are_those_of_whole_key_sets(
            rows in proptest::collection::vec((-1i64..1, 0..86_400i64, 0u8..3, 0u32..2, 0u32..16), 0..400)
        ) {
            let mut visits = Visits::default();
            let mut pairs = HashSet::new();
            let mut visitors = HashSet::new();
            let mut clients: HashMap<u8, u64> = HashMap::new();
            for (day, second, client, agent, url) in rows {
                let first = pairs.insert((day, client, agent, url));
                visitors.insert((day, client, agent));
                *clients.entry(client).or_default() += 1;
                prop_assert_eq!(visits.hit(day * 86_400 + second, client, agent, url), first);
            }
            prop_assert_eq!(visits.visitors(), visitors.len() as u64);
            let mut clients: Vec<(u8, u64)> = clients.into_iter().collect();
            clients.sort_unstable();
            prop_assert_eq!(visits.into_clients(), clients);
        }
    }

    #[test]
    fn a_visitor_is_a_client_agent_and_day_in_any_row_order() {
        let day = 86_400;
        let mut visits = Visits::default();
        // (timestamp, client, agent, url, first hit of that url by that visitor?)
        let rows = [
            (10, 'a', 1, 7, true),
            (20, 'a', 1, 7, false),      // same visitor, same URL
            (30, 'a', 1, 8, true),       // same visitor, another URL
            (40, 'a', 2, 7, true),       // another agent: another visitor
            (40, 'b', 1, 7, true),       // another client: another visitor
            (day + 5, 'a', 1, 7, true),  // the next day: another visitor
            (50, 'a', 1, 8, false),      // back to the first day, out of order
            (-5, 'a', 1, 7, true),       // before the epoch: the day before
            (day - 1, 'a', 1, 8, false), // last second of the first day
            (day + 6, 'a', 1, 7, false),
        ];
        for (i, &(t, client, agent, url, first)) in rows.iter().enumerate() {
            assert_eq!(visits.hit(t, client, agent, url), first, "row {i}");
        }
        // ('a', 1) on days 0, 1 and -1, ('a', 2) and ('b', 1) on day 0.
        assert_eq!(visits.visitors(), 5);
        assert_eq!(visits.into_clients(), [('a', 9), ('b', 1)]);
    }
}
