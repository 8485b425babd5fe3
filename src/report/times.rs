//! Response times: how long requests took, in all and per URL, for the times report.
//!
//! Percentiles need each URL's distribution, not a sum, and a log can hold a million URLs.
//! Most URLs have few requests: those keep their times exactly, and their percentiles are
//! exact. A URL with more than [`EXACT`] requests moves to an HDR histogram (the `hdrhistogram`
//! crate, [`SIGNIFICANT_DIGITS`] significant digits), whose size does not grow with requests:
//! its percentiles are then within 1% of the true value. Count, total, mean and maximum are
//! always exact. So memory grows with URLs and never past a fixed size per URL, whatever the
//! rows.

use hdrhistogram::Histogram;

/// Times kept exactly per URL before a histogram takes over: 4 KiB, an eighth of the
/// histogram that covers [`HIGHEST_US`] (3,968 counters, 31 KiB).
pub const EXACT: usize = 512;

/// The histogram's precision: values are told apart down to 1% of their size.
pub const SIGNIFICANT_DIGITS: u8 = 2;

/// The longest time a histogram tells apart (about 19 hours); longer ones count as this in the
/// percentiles, though not in the maximum or the total.
pub const HIGHEST_US: u64 = 1 << 36;

/// The response times of some requests.
#[derive(Debug, Clone, Default)]
pub struct Times {
    /// Requests with a time.
    pub count: u64,
    /// Their times added up, in microseconds (saturating).
    pub total_us: u64,
    pub max_us: u64,
    spread: Spread,
}

/// Where the times themselves are kept.
#[derive(Debug, Clone)]
enum Spread {
    Exact(Vec<u64>),
    Histogram(Box<Histogram<u64>>),
}

impl Default for Spread {
    fn default() -> Spread {
        Spread::Exact(Vec::new())
    }
}

/// What the times report shows of some requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TimeStats {
    pub count: u64,
    pub total_us: u64,
    pub mean_us: u64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// The percentiles are exact (else within 1%, see the module's documentation).
    pub exact: bool,
}

impl Times {
    #[inline]
    pub fn add(&mut self, us: u64) {
        self.count += 1;
        self.total_us = self.total_us.saturating_add(us);
        self.max_us = self.max_us.max(us);
        match &mut self.spread {
            Spread::Exact(values) => {
                values.push(us);
                if values.len() > EXACT {
                    self.spill();
                }
            }
            Spread::Histogram(h) => h.saturating_record(us),
        }
    }

    /// Adds `n` requests that each took `us`: the same as `n` calls of [`Times::add`]
    /// (percentiles do not depend on the order of the times).
    pub fn add_n(&mut self, us: u64, n: u64) {
        if n == 1 {
            return self.add(us);
        }
        self.count += n;
        self.total_us = self.total_us.saturating_add(us.saturating_mul(n));
        if n > 0 {
            self.max_us = self.max_us.max(us);
        }
        if let Spread::Exact(values) = &mut self.spread {
            match usize::try_from(n)
                .ok()
                .filter(|&n| values.len() + n <= EXACT)
            {
                Some(n) => return values.extend(std::iter::repeat_n(us, n)),
                None => self.spill(),
            }
        }
        if let Spread::Histogram(h) = &mut self.spread {
            h.saturating_record_n(us, n);
        }
    }

    /// Adds the times of other requests.
    pub fn merge(&mut self, other: Times) {
        self.count += other.count;
        self.total_us = self.total_us.saturating_add(other.total_us);
        self.max_us = self.max_us.max(other.max_us);
        match other.spread {
            Spread::Exact(values) => match &mut self.spread {
                Spread::Exact(mine) => {
                    mine.extend(values);
                    if mine.len() > EXACT {
                        self.spill();
                    }
                }
                Spread::Histogram(h) => values.into_iter().for_each(|v| h.saturating_record(v)),
            },
            Spread::Histogram(theirs) => {
                self.spill();
                if let Spread::Histogram(mine) = &mut self.spread {
                    // Both were made by `histogram()`, with the same bounds: adding cannot fail.
                    mine.add(&*theirs).expect("histograms of the same bounds");
                }
            }
        }
    }

    /// Moves the exact times into a histogram (once there are too many to keep).
    fn spill(&mut self) {
        if let Spread::Exact(values) = &self.spread {
            let mut h = histogram();
            values.iter().for_each(|&v| h.saturating_record(v));
            self.spread = Spread::Histogram(Box::new(h));
        }
    }

    /// Count, total, mean, percentiles (nearest rank: the smallest time that at least that
    /// share of the requests did not exceed) and maximum.
    pub fn stats(mut self) -> TimeStats {
        let count = self.count;
        let (exact, [p50, p95, p99]) = match &mut self.spread {
            Spread::Exact(values) => {
                values.sort_unstable();
                let at = |q: f64| match values.len() {
                    0 => 0,
                    n => values[((q * n as f64).ceil() as usize).clamp(1, n) - 1],
                };
                (true, [at(0.50), at(0.95), at(0.99)])
            }
            // The histogram answers with the top of a bucket, which may exceed the largest time
            // in it: never past the true maximum.
            Spread::Histogram(h) => (
                false,
                [0.50, 0.95, 0.99].map(|q| h.value_at_quantile(q).min(self.max_us)),
            ),
        };
        TimeStats {
            count,
            total_us: self.total_us,
            mean_us: match count {
                0 => 0,
                n => self.total_us / n,
            },
            p50_us: p50,
            p95_us: p95,
            p99_us: p99,
            max_us: self.max_us,
            exact,
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_US, SIGNIFICANT_DIGITS).expect("valid bounds")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(values: impl IntoIterator<Item = u64>) -> Times {
        let mut t = Times::default();
        values.into_iter().for_each(|v| t.add(v));
        t
    }

    #[test]
    fn times_added_n_at_once_are_those_added_one_by_one() {
        // (time, repeats): staying exact, and crossing into a histogram within one add.
        for groups in [
            &[(5, 3), (1, 1), (9, 200)][..],
            &[(5, 300), (7, 0), (1_000, 250), (3, 1)][..],
            &[(2, 1_000), (u64::MAX / 4, 3)][..],
        ] {
            let (mut one_by_one, mut at_once) = (Times::default(), Times::default());
            for &(us, n) in groups {
                (0..n).for_each(|_| one_by_one.add(us));
                at_once.add_n(us, n);
            }
            let (a, b) = (one_by_one.clone(), at_once.clone());
            assert_eq!(
                (a.count, a.total_us, a.max_us),
                (b.count, b.total_us, b.max_us)
            );
            assert_eq!(one_by_one.stats(), at_once.stats(), "{groups:?}");
        }
    }

    #[test]
    fn few_times_give_exact_nearest_rank_percentiles() {
        let s = times((1..=100).rev()).stats();
        assert!(s.exact);
        assert_eq!((s.count, s.total_us, s.mean_us), (100, 5050, 50));
        assert_eq!((s.p50_us, s.p95_us, s.p99_us, s.max_us), (50, 95, 99, 100));
        let one = times([7]).stats();
        assert_eq!((one.p50_us, one.p99_us, one.max_us), (7, 7, 7));
        assert_eq!(
            Times::default().stats(),
            TimeStats {
                exact: true,
                ..TimeStats::default()
            }
        );
    }

    #[test]
    fn many_times_stay_within_one_percent_and_never_past_the_maximum() {
        // 100,000 times from 1 µs to 10 s, in a scrambled order.
        let n = 100_000u64;
        let value = |i: u64| 1 + (i * 7919 % n) * 100;
        let s = times((0..n).map(value)).stats();
        assert!(!s.exact);
        let mut sorted: Vec<u64> = (0..n).map(value).collect();
        sorted.sort_unstable();
        for (q, got) in [(0.50, s.p50_us), (0.95, s.p95_us), (0.99, s.p99_us)] {
            let truth = sorted[(q * n as f64).ceil() as usize - 1];
            let error = got.abs_diff(truth) as f64 / truth as f64;
            assert!(error <= 0.01, "p{q}: {got} for {truth}");
        }
        assert_eq!(s.max_us, *sorted.last().unwrap());
        assert_eq!(s.total_us, sorted.iter().sum::<u64>());
        assert!(s.p99_us <= s.max_us);
    }

    #[test]
    fn merged_times_are_the_times_of_both() {
        for split in [0, 1, 300, EXACT, EXACT + 1, 2000, 4000] {
            let all: Vec<u64> = (0..4000u64).map(|i| (i * 37) % 5003).collect();
            let (a, b) = all.split_at(split);
            let mut merged = times(a.iter().copied());
            merged.merge(times(b.iter().copied()));
            let whole = times(all.iter().copied());
            assert_eq!(merged.stats(), whole.stats(), "split at {split}");
        }
        let small = times([5, 1, 9]);
        let mut merged = small.clone();
        merged.merge(times([3]));
        assert_eq!(merged.stats(), times([5, 1, 9, 3]).stats());
    }

    #[test]
    fn a_time_past_the_histograms_range_counts_in_full_in_the_total_and_maximum() {
        let day = 86_400_000_000u64;
        let s = times((0..=EXACT as u64).map(|i| i + 1).chain([day])).stats();
        assert_eq!(s.max_us, day);
        assert_eq!(s.total_us, (1..=EXACT as u64 + 1).sum::<u64>() + day);
    }
}
