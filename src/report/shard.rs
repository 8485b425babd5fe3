//! The one parallel fan-out of the reports: a store is read once, on the calling thread, and
//! every block read is handed, by reference, to each of `--threads` counting threads, which
//! counts the entries of its own share of the clients.
//!
//! Splitting by client, not by position, is what makes the counts of the threads add up
//! simply: a visitor (a client, a day, an agent) is seen whole by one thread, so its unique
//! visits are never counted twice ([`super::Counts::add_other_clients`]). Handing every block
//! to every thread, rather than sorting rows into a queue per thread, spares the reading
//! thread copying each row for its thread, which once made it the slowest stage. Each thread
//! passes over the rows of other shares as fast as it can tell them (by a tag the reader put
//! on each CSV record, or by hashing the client).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// One of `of` shares of the clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub index: usize,
    pub of: usize,
}

impl Share {
    /// The only share, of one thread.
    pub const ALL: Share = Share { index: 0, of: 1 };

    /// Is the client whose text is `ip` in this share? See [`share_of`].
    #[inline]
    pub fn has(&self, ip: &[u8]) -> bool {
        self.of == 1 || share_of(ip, self.of) == self.index
    }

    /// Is the client whose well-mixed 64-bit hash is `hash` in this share? For readers that
    /// hold clients as numbers ([`crate::read::packed`]) and hash those instead of a text.
    #[inline]
    pub fn has_hash(&self, hash: u64) -> bool {
        self.of == 1 || pick(hash, self.of) == self.index
    }
}

/// Which of `of` shares the client `ip` (its text as stored) belongs to.
#[inline]
pub fn share_of(ip: &[u8], of: usize) -> usize {
    use std::hash::BuildHasher;
    pick(rustc_hash::FxBuildHasher.hash_one(ip), of)
}

/// `hash` mapped onto `0..of` by its high bits, with a multiplication rather than a division:
/// every row of every report goes through it.
#[inline]
fn pick(hash: u64, of: usize) -> usize {
    ((u128::from(hash) * of as u128) >> 64) as usize
}

/// The default of `--threads`: the machine's available parallelism.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The blocks a counting thread receives, in the order they were read.
pub struct Blocks<B>(Receiver<Arc<B>>);

impl<B> Iterator for Blocks<B> {
    type Item = Arc<B>;

    fn next(&mut self) -> Option<Arc<B>> {
        self.0.recv().ok()
    }
}

/// Where the reader puts its blocks: each goes to every counting thread, and the blocks they
/// are all done with come back ([`Feed::spent`]) to be filled again. A block freed instead
/// returns its memory to the system, and the next one asks for it anew: page faults and
/// zeroed pages, on the reading thread, for every megabyte read.
pub struct Feed<B> {
    senders: Vec<SyncSender<Arc<B>>>,
    /// The last blocks sent, oldest first, once the reader has asked for one back: those
    /// in use, and at most one that is not.
    sent: VecDeque<Arc<B>>,
    /// How many blocks `sent` keeps at most: as many as may be in use.
    keep: usize,
    /// Whether the reader takes blocks back: one that never does keeps none alive.
    reuses: bool,
}

impl<B> Feed<B> {
    /// Hands `block` to every thread; false once every thread has stopped.
    pub fn send(&mut self, block: B) -> bool {
        let block = Arc::new(block);
        let mut delivered = false;
        for tx in &self.senders {
            // A closed channel is a thread that stopped (done early, or failed).
            delivered |= tx.send(Arc::clone(&block)).is_ok();
        }
        if self.reuses {
            self.sent.push_back(block);
            // Past the blocks that may be in use, the oldest is let go, freed with the
            // threads' last reference.
            while self.sent.len() > self.keep {
                self.sent.pop_front();
            }
        }
        delivered
    }

    /// The oldest block sent, if every thread is done with it.
    pub fn spent(&mut self) -> Option<B> {
        self.reuses = true;
        // The threads only ever drop their references, so a block that no thread holds now
        // stays so.
        if Arc::strong_count(self.sent.front()?) > 1 {
            return None;
        }
        Arc::into_inner(self.sent.pop_front()?)
    }
}

/// Runs `work` on `threads` threads, one per [`Share`], each given every block `read` sends,
/// in order; `read` runs on the calling thread, and stops early when its [`Feed::send`]
/// returns false (every counting thread has stopped). Returns what `read` returned, and what
/// each thread returned, in share order; a panicking thread is an error.
///
/// `ahead` blocks may wait for the slowest thread: enough that the reader and the threads
/// seldom wait on each other, few enough that the blocks in flight stay small (the reader
/// knows its block size: a megabyte of CSV, or a few dozen kilobytes of packed rows).
pub fn fan_out<B, R>(
    threads: usize,
    ahead: usize,
    read: impl FnOnce(&mut Feed<B>) -> anyhow::Result<()>,
    work: impl Fn(Share, Blocks<B>) -> R + Sync,
) -> anyhow::Result<(anyhow::Result<()>, Vec<R>)>
where
    B: Send + Sync,
    R: Send,
{
    let of = threads.max(1);
    std::thread::scope(|scope| {
        let work = &work;
        let (senders, workers): (Vec<SyncSender<Arc<B>>>, Vec<_>) = (0..of)
            .map(|index| {
                let (tx, rx) = sync_channel(ahead.max(1));
                let worker = scope.spawn(move || work(Share { index, of }, Blocks(rx)));
                (tx, worker)
            })
            .unzip();
        let mut feed = Feed {
            senders,
            sent: VecDeque::new(),
            // Each thread's waiting blocks and the one it is counting, and one more, spent.
            keep: ahead.max(1) + 2,
            reuses: false,
        };
        let read_result = read(&mut feed);
        drop(feed);
        let results = (workers.into_iter())
            .map(|w| {
                w.join()
                    .map_err(|_| anyhow::anyhow!("a counting thread panicked"))
            })
            .collect::<anyhow::Result<Vec<R>>>()?;
        Ok((read_result, results))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_sees_every_block_in_order_and_the_shares_split_the_clients() {
        let clients: Vec<String> = (0..500)
            .map(|i| format!("10.0.{}.{}", i / 256, i % 256))
            .collect();
        for threads in [1, 2, 3, 7] {
            let (read, seen) = fan_out(
                threads,
                4,
                |feed| {
                    for chunk in clients.chunks(64) {
                        assert!(feed.send(chunk.to_vec()));
                    }
                    Ok(())
                },
                |share, blocks| {
                    let mut all = Vec::new();
                    let mut mine = Vec::new();
                    for block in blocks {
                        for ip in block.iter() {
                            all.push(ip.clone());
                            if share.has(ip.as_bytes()) {
                                mine.push(ip.clone());
                            }
                        }
                    }
                    (share, all, mine)
                },
            )
            .unwrap();
            read.unwrap();
            assert_eq!(seen.len(), threads);
            let mut union = Vec::new();
            for (i, (share, all, mine)) in seen.into_iter().enumerate() {
                assert_eq!(
                    share,
                    Share {
                        index: i,
                        of: threads
                    }
                );
                assert_eq!(
                    all, clients,
                    "thread {i} of {threads} sees every block in order"
                );
                union.extend(mine);
            }
            union.sort();
            let mut expected = clients.clone();
            expected.sort();
            assert_eq!(union, expected, "each client is in exactly one share");
        }
    }

    /// A thread done with a block drops it before it takes the next (as the CSV reader's
    /// `Records` does), and a send returns once the channel has room: after block `j` is
    /// sent, every thread has taken block `j - ahead`, so every block before it is spent,
    /// whatever the threads' speed.
    #[test]
    fn the_blocks_every_thread_is_done_with_come_back_in_order() {
        let ahead = 2;
        let (read, sums) = fan_out(
            3,
            ahead,
            |feed| {
                // Asked before the first block, so that every block is kept.
                assert_eq!(feed.spent(), None);
                let mut back = Vec::new();
                for j in 0..50u64 {
                    assert!(feed.send(vec![j]));
                    while let Some(block) = feed.spent() {
                        back.push(block[0]);
                    }
                    let spent = (j + 1).saturating_sub(ahead as u64 + 1);
                    assert_eq!(back[..spent as usize], (0..spent).collect::<Vec<_>>());
                    assert!(feed.sent.len() <= feed.keep);
                }
                Ok(())
            },
            |_, blocks| blocks.map(|block| block[0]).sum::<u64>(),
        )
        .unwrap();
        read.unwrap();
        assert_eq!(sums, vec![(0..50).sum::<u64>(); 3]);
        // A reader that takes nothing back keeps nothing alive.
        let (read, _) = fan_out(
            2,
            ahead,
            |feed| {
                for j in 0..50u64 {
                    feed.send(vec![j]);
                    assert!(feed.sent.is_empty());
                }
                Ok(())
            },
            |_, blocks| blocks.count(),
        )
        .unwrap();
        read.unwrap();
    }

    #[test]
    fn reading_stops_when_every_thread_has_stopped_and_a_panic_is_an_error() {
        let (read, _) = fan_out(
            2,
            4,
            |feed| {
                let mut sent = 0;
                while feed.send(sent) {
                    sent += 1;
                    assert!(sent < 1_000_000, "the reader was never told to stop");
                }
                Ok(())
            },
            |_, mut blocks| blocks.next(),
        )
        .unwrap();
        read.unwrap();
        let panicked = fan_out(
            2,
            4,
            |feed| {
                feed.send(1);
                Ok(())
            },
            |share, _| {
                if share.index == 1 {
                    panic!("counting failed");
                }
            },
        );
        assert!(panicked.is_err());
    }
}
