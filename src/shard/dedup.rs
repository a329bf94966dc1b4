//! The shard's event-id index: which `(tenant, event_id)` pairs the shard already stores, so
//! that a re-sent event is counted once (storage-format.md, "Event-id deduplication").
//!
//! Three layers, owned by the writer thread:
//! - sets of the filter hashes of the keys in the write buffers (active and frozen): 8 bytes
//!   per buffered id instead of a copy of the key. A hit is confirmed by reading the tenant's
//!   event ids in the buffers ([`confirm_in_buffers`]), which hold them anyway; a hash hit
//!   that is not there goes on to the segments;
//! - one split-block bloom filter over the keys of every segment of the dedup window plus the
//!   buffers. It is never trusted on its own: a hit is confirmed by reading the tenant's event
//!   ids in the window's segments ([`DedupIndex::confirm_in_segments`]), so the index is exact
//!   and a false positive costs time, never an event;
//! - per segment, a smaller filter (8 bits per key) built the first time a confirmation
//!   reaches the segment, so that a confirmation reads only the few segments that may hold
//!   the ids instead of every segment holding the tenant (whose cost grew with the data).
//!
//! The filter is rebuilt from the segments and the buffers when it is full (at twice the
//! size) and when the window's first day moves (so expired ids leave it). (A chain of
//! filters instead of rebuilds was measured slower: every probe then reads one block per
//! filter.) Nothing of it is persisted: [`DedupIndex::build`] rebuilds it when the shard
//! opens.
//!
//! **Invariant:** a key enters the index only after the WAL record holding its event is
//! written (and synced, per the sync policy); a failed write claims nothing.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Memtable, View};
use crate::model::{Day, TenantId, Timestamp};
use crate::segment::{IdKey, Segment, SegmentId};

/// Event ids of one tenant, as a group's check collects them. Hashed with foldhash, seeded
/// per set: SipHash over these sets was about 7 % of the server's CPU when a client re-sent
/// stored events.
pub(super) type IdSet<'a> = HashSet<&'a str, foldhash::fast::RandomState>;

/// Filter hashes of keys. Rehashed with a random seed: the filter's hash is fixed-seeded, and
/// keys chosen to collide in it must not make the set slow.
type HashSet64 = HashSet<u64, foldhash::fast::RandomState>;

/// Filter bits per key at full load. A split-block bloom filter with 8 bits set per key has a
/// false-positive rate of about 0.15 % at 16 bits per key and about 0.03 % at 24 (measured in
/// the tests below; Putze, Sanders, Singler, "Cache-, Hash- and Space-Efficient Bloom
/// Filters", 2007, give the model). Each false positive costs a read of the tenant's event
/// ids in the window's segments: at 16 bits, with batches of 5,000 new ids, those reads took
/// a seventh of the writer's time, so the rate is bought with memory (3 bytes per id).
const BITS_PER_KEY: usize = 24;
/// Bits per key of a segment's filter: about 2 % false positives, so a confirmation reads about
/// one segment in fifty of those holding the tenant, for one byte of memory per stored id.
const SEGMENT_BITS_PER_KEY: usize = 8;
/// How often the pages of the segments confirmations read are released.
const RELEASE_EVERY: Duration = Duration::from_secs(1);
/// Smallest filter, in keys: a shard with few ids costs a few KiB.
const MIN_CAPACITY: usize = 4096;
/// The fixed seed of the filter's hash: any seed works, it only has to stay the same for the
/// life of one filter (filters are never written to disk).
const FILTER_SEED: u64 = 0x6d65_7465_7264_6221;

/// The filter hash of an event id of `tenant`: the tenant's length (so that `("ab", "c")` and
/// `("a", "bc")` differ), the tenant, and the id's [`IdKey`] (its 128-bit value when it is hex
/// or a UUID), hashed in pieces rather than from an allocated key: the index
/// hashes every stored id when it rebuilds, and the segments hold such ids as bytes, which
/// are then read without being printed back to text (a `String` per id was most of the
/// rebuild's time).
pub(super) fn hash(tenant: &str, id: IdKey<'_>) -> u64 {
    let mut h = foldhash::quality::FixedState::with_seed(FILTER_SEED).build_hasher();
    h.write_u32(tenant.len() as u32);
    h.write(tenant.as_bytes());
    id.hash(&mut h);
    h.finish()
}

/// What the index knows about a key before the segments are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Probe {
    /// The hash of a key in a write buffer: read the buffers to decide.
    Buffered,
    /// The filter says maybe: read the segments to decide.
    Maybe,
    /// Certainly not stored.
    Absent,
}

/// One shard's event-id index.
#[derive(Debug)]
pub(super) struct DedupIndex {
    filter: Bloom,
    /// Segments of days before this one were left out of the filter when it was built.
    floor: Day,
    active: HashSet64,
    frozen: HashSet64,
    window: Duration,
    /// Filters of the segments a confirmation has reached, by segment id.
    segment_filters: HashMap<SegmentId, Bloom>,
    /// Segments whose event ids a confirmation read since their pages were last released.
    read: HashSet<SegmentId>,
    released_at: Instant,
}

impl DedupIndex {
    /// Builds the index of `segments` (those of the window) and of the buffer `memtable`.
    pub(super) fn build(
        window: Duration,
        now: Timestamp,
        segments: &[Arc<Segment>],
        memtable: &Memtable,
    ) -> DedupIndex {
        // Hashed first, then inserted in a loop of their own (as in `rebuild`): a replayed
        // buffer can hold millions of ids, and each insert misses the cache. Sized up front:
        // growing the set by doubling rehashes them all again at each step.
        let mut hashes = Vec::with_capacity(memtable.len());
        memtable.for_each_event_id(None, |tenant, id| hashes.push(hash(tenant, id)));
        let mut active = HashSet64::with_capacity_and_hasher(hashes.len(), Default::default());
        active.extend(hashes);
        let mut index = DedupIndex {
            filter: Bloom::with_capacity(0),
            floor: first_day(window, now),
            active,
            frozen: HashSet64::default(),
            window,
            segment_filters: HashMap::new(),
            read: HashSet::new(),
            released_at: Instant::now(),
        };
        index.rebuild(segments, now);
        index
    }

    /// Rebuilds the filter from the window's segments and the buffers, sized for twice the
    /// keys found (so that it fills again only after as many new ids).
    fn rebuild(&mut self, segments: &[Arc<Segment>], now: Timestamp) {
        self.floor = first_day(self.window, now);
        let in_window = || segments.iter().filter(|s| s.info().day >= self.floor);
        // Sized from the footers (rows of tables with event ids, an upper bound of the ids),
        // so that the hashes go straight into the filter instead of through a list as long
        // as the window's ids.
        let stored: u64 = in_window().map(|s| event_id_rows(s)).sum();
        let keys = usize::try_from(stored)
            .unwrap_or(usize::MAX)
            .saturating_add(self.active.len() + self.frozen.len());
        // The old filter goes first: the writer waits for the rebuild, so nothing probes it
        // meanwhile, and by the sizing rule holding both would raise the index's peak by half
        // (900 MB instead of 600 MB when 100M ids fill the filter; not measured).
        self.filter = Bloom::with_capacity(0);
        let mut filter = Bloom::with_capacity(keys.saturating_mul(2));
        // Hashed one segment at a time, then inserted in a tight loop: the inserts miss the
        // cache, and only a loop of nothing but inserts lets the processor wait for many
        // of them at once (inserting while decoding ids: a reopen of 10M ids took 5.1 s to
        // `/ping`, batched per segment 2.2-2.5 s, on the same busy machine).
        let mut hashes = Vec::new();
        for seg in in_window() {
            hashes.clear();
            for_each_segment_id(seg, None, |tenant, id| hashes.push(hash(tenant, id)));
            for &h in &hashes {
                filter.insert(h);
            }
        }
        for &h in self.active.iter().chain(&self.frozen) {
            filter.insert(h);
        }
        self.filter = filter;
    }

    /// Releases the pages confirmations read (at most once per [`RELEASE_EVERY`]), drops the
    /// filters of segments no longer live or in the window, and rebuilds the filter when the
    /// window has moved past its first day or the filter is full.
    pub(super) fn maintain(&mut self, view: &View, now: Timestamp) {
        if !self.read.is_empty() && self.released_at.elapsed() >= RELEASE_EVERY {
            for seg in &view.segments {
                if self.read.contains(&seg.info().id) {
                    seg.release_pages();
                }
            }
            self.read.clear();
            self.released_at = Instant::now();
        }
        if !self.segment_filters.is_empty() {
            let floor = first_day(self.window, now);
            let live: HashSet<SegmentId> = view
                .segments
                .iter()
                .filter(|s| s.info().day >= floor)
                .map(|s| s.info().id)
                .collect();
            self.segment_filters.retain(|id, _| live.contains(id));
        }
        if first_day(self.window, now) > self.floor || self.filter.is_full() {
            let started = std::time::Instant::now();
            self.rebuild(&view.segments, now);
            tracing::debug!(keys = self.filter.len, took = ?started.elapsed(), "rebuilt the event-id filter");
        }
    }

    /// What is known of a key whose [`hash`] is `hash` without reading buffers or segments.
    pub(super) fn probe(&self, hash: u64) -> Probe {
        if self.active.contains(&hash) || self.frozen.contains(&hash) {
            Probe::Buffered
        } else if self.filter.may_contain(hash) {
            Probe::Maybe
        } else {
            Probe::Absent
        }
    }

    /// Records the [`hash`]es of keys whose events are now in the active buffer.
    pub(super) fn insert(&mut self, hashes: &[u64]) {
        for &h in hashes {
            self.filter.insert(h);
        }
        self.active.extend(hashes);
    }

    /// The active buffer was frozen: its keys move to the frozen set, replacing those of the
    /// previous frozen buffer, which is in segments by now (a freeze waits for the previous
    /// flush to succeed).
    pub(super) fn freeze(&mut self) {
        self.frozen = std::mem::take(&mut self.active);
    }

    /// Which of `wanted` (event ids of `tenant`) are stored in the window's `segments`. A
    /// segment that cannot be read counts as not holding them (its rows are unavailable to
    /// readers too; the event is stored again rather than lost).
    pub(super) fn confirm_in_segments<'a>(
        &mut self,
        segments: &[Arc<Segment>],
        tenant: &str,
        wanted: &IdSet<'a>,
    ) -> IdSet<'a> {
        let keys = by_key(wanted);
        let hashes: Vec<u64> = keys.keys().map(|&k| hash(tenant, k)).collect();
        let tenant_id = TenantId::new(tenant);
        let mut found = IdSet::default();
        for seg in segments.iter().filter(|s| s.info().day >= self.floor) {
            let holds_tenant = seg
                .tables()
                .any(|t| t.has_event_ids && t.tenant.as_str() == tenant);
            if !holds_tenant {
                continue;
            }
            let filter = self
                .segment_filters
                .entry(seg.info().id)
                .or_insert_with(|| segment_filter(seg));
            if !hashes.iter().any(|&h| filter.may_contain(h)) {
                continue;
            }
            for_each_segment_id(seg, Some(&tenant_id), |_, id| {
                if let Some(w) = keys.get(&id) {
                    found.insert(*w);
                }
            });
            self.read.insert(seg.info().id);
            if found.len() == wanted.len() {
                break;
            }
        }
        found
    }

    /// Approximate bytes of memory the index uses.
    pub(super) fn memory_bytes(&self) -> usize {
        // A hash set slot holds the hash plus one control byte.
        let slots = |s: &HashSet64| s.capacity() * (std::mem::size_of::<u64>() + 1);
        let blocks: usize = self.segment_filters.values().map(|f| f.blocks.len()).sum();
        (self.filter.blocks.len() + blocks) * std::mem::size_of::<Block>()
            + self.segment_filters.len() * 64
            + slots(&self.active)
            + slots(&self.frozen)
    }
}

/// Which of `wanted` (event ids of `tenant`) the write buffers of `view` hold.
pub(super) fn confirm_in_buffers<'a>(view: &View, tenant: &str, wanted: &IdSet<'a>) -> IdSet<'a> {
    let keys = by_key(wanted);
    let mut found = IdSet::default();
    for buffer in std::iter::once(&view.active).chain(&view.frozen) {
        let memtable = buffer.read().unwrap_or_else(|e| e.into_inner());
        memtable.for_each_event_id(Some(tenant), |_, id| {
            if let Some(w) = keys.get(&id) {
                found.insert(*w);
            }
        });
    }
    found
}

/// The ids of `wanted` by their stored form (as segments and buffers hand them out).
fn by_key<'a>(wanted: &IdSet<'a>) -> HashMap<IdKey<'a>, &'a str, foldhash::fast::RandomState> {
    wanted.iter().map(|&id| (IdKey::of(id), id)).collect()
}

/// The first day of the dedup window ending at `now`.
fn first_day(window: Duration, now: Timestamp) -> Day {
    let window_ns = i64::try_from(window.as_nanos()).unwrap_or(i64::MAX);
    Timestamp(now.0.saturating_sub(window_ns)).day()
}

/// The filter of every key in a segment.
fn segment_filter(seg: &Segment) -> Bloom {
    let keys = usize::try_from(event_id_rows(seg)).unwrap_or(usize::MAX);
    let mut filter = Bloom::with_bits(keys.saturating_mul(SEGMENT_BITS_PER_KEY));
    for_each_segment_id(seg, None, |tenant, id| filter.insert(hash(tenant, id)));
    filter
}

/// Rows of a segment's tables that have event ids (an upper bound of its ids).
fn event_id_rows(seg: &Segment) -> u64 {
    seg.tables()
        .filter(|t| t.has_event_ids)
        .map(|t| t.n_rows)
        .sum()
}

/// Calls `f(tenant, id)` for every event id in a segment (of one tenant, if given).
///
/// After a read of the whole segment its pages are released: the index reads every segment
/// of the window when it rebuilds, and would otherwise keep all their ids resident. The pages
/// of one tenant's ids (a confirmation) are released later, by [`DedupIndex::maintain`]:
/// releasing them after every confirmation cost every CPU a TLB flush, a fifth of the
/// server's time when a client re-sent stored events; never releasing them put a 100M-event
/// load's peak RSS at 3.5 GiB instead of 1.7.
fn for_each_segment_id(
    seg: &Segment,
    tenant: Option<&TenantId>,
    mut f: impl FnMut(&str, IdKey<'_>),
) {
    if let Err(e) = seg.for_each_event_key(tenant, |t, id| f(t.as_str(), id)) {
        tracing::error!(
            segment = seg.info().id.0,
            error = %e,
            "cannot read a segment's event ids; they are not deduplicated"
        );
    }
    if tenant.is_none() {
        seg.release_pages();
    }
}

/// One 256-bit block: eight 32-bit words, one bit set in each per key.
type Block = [u32; 8];

/// The odd constants that pick a key's bit in each word of its block (those of the Parquet
/// split-block bloom filter specification, `parquet-format: BloomFilter.md`).
const SALT: [u32; 8] = [
    0x47b6_137b,
    0x4497_4d91,
    0x8824_ad5b,
    0xa2b7_289d,
    0x7054_95c7,
    0x2df1_424b,
    0x9efc_4947,
    0x5c6b_fb31,
];

/// A split-block bloom filter: a key touches one 32-byte block (one cache line at most), so a
/// probe costs one memory access.
#[derive(Debug)]
struct Bloom {
    blocks: Vec<Block>,
    capacity: usize,
    len: usize,
}

impl Bloom {
    fn with_capacity(keys: usize) -> Bloom {
        let capacity = keys.max(MIN_CAPACITY);
        let n_blocks = (capacity * BITS_PER_KEY).div_ceil(256);
        let mut blocks = vec![[0; 8]; n_blocks];
        advise_huge_pages(&mut blocks);
        Bloom {
            blocks,
            capacity,
            len: 0,
        }
    }

    /// A filter of `bits` bits (at least one block), for a set of known size that never
    /// grows (a segment's keys).
    fn with_bits(bits: usize) -> Bloom {
        let n_blocks = bits.div_ceil(256).max(1);
        Bloom {
            blocks: vec![[0; 8]; n_blocks],
            capacity: n_blocks * 256 / BITS_PER_KEY,
            len: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.len >= self.capacity
    }

    /// The block of `hash` (upper 32 bits, mapped onto the block count by multiply-shift) and
    /// the bit of each word (lower 32 bits).
    fn locate(&self, hash: u64) -> (usize, [u32; 8]) {
        let block = (((hash >> 32) * self.blocks.len() as u64) >> 32) as usize;
        let low = hash as u32;
        let mut masks = [0u32; 8];
        for (mask, salt) in masks.iter_mut().zip(SALT) {
            *mask = 1 << (low.wrapping_mul(salt) >> 27);
        }
        (block, masks)
    }

    fn insert(&mut self, hash: u64) {
        let (block, masks) = self.locate(hash);
        if let Some(words) = self.blocks.get_mut(block) {
            for (word, mask) in words.iter_mut().zip(masks) {
                *word |= mask;
            }
        }
        self.len += 1;
    }

    fn may_contain(&self, hash: u64) -> bool {
        let (block, masks) = self.locate(hash);
        self.blocks
            .get(block)
            .is_some_and(|words| words.iter().zip(masks).all(|(w, m)| w & m != 0))
    }
}

/// Asks the kernel to back the 2 MiB-aligned part of `blocks` with huge pages. Every probe and
/// insert lands on a random block of a filter of up to hundreds of MB, so with 4 KiB pages
/// nearly each one also misses the TLB. Where the kernel gives transparent huge pages only on
/// request (`madvise` mode, as on the development machine), the call is what makes them used;
/// with them switched off it does nothing.
fn advise_huge_pages(blocks: &mut [Block]) {
    const HUGE: usize = 2 << 20;
    let start = blocks.as_mut_ptr() as usize;
    let end = start + std::mem::size_of_val(blocks);
    let first = start.next_multiple_of(HUGE);
    let len = end.saturating_sub(first) / HUGE * HUGE;
    if len == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: the range lies inside `blocks`, which this function borrows mutably; the advice
    // changes how the kernel backs the pages, never their contents or validity.
    #[allow(unsafe_code)]
    unsafe {
        libc::madvise(first as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NANOS_PER_DAY;

    #[test]
    fn bloom_has_no_false_negatives_and_few_false_positives() {
        let n = 100_000;
        let mut bloom = Bloom::with_capacity(n);
        for i in 0..n {
            bloom.insert(hash("t", IdKey::Text(&i.to_string())));
        }
        assert!((0..n).all(|i| bloom.may_contain(hash("t", IdKey::Text(&i.to_string())))));
        let probes = 200_000;
        let false_hits = (n..n + probes)
            .filter(|i| bloom.may_contain(hash("t", IdKey::Text(&i.to_string()))))
            .count();
        let rate = false_hits as f64 / probes as f64;
        println!("false-positive rate at {BITS_PER_KEY} bits per key: {rate}");
        assert!(rate < 0.0008, "false-positive rate {rate}");
    }

    #[test]
    fn keys_of_two_tenants_differ() {
        assert_ne!(hash("ab", IdKey::Text("c")), hash("a", IdKey::Text("bc")));
    }

    #[test]
    fn window_start_is_a_day() {
        let now = Timestamp(40 * NANOS_PER_DAY + 5);
        assert_eq!(first_day(Duration::from_secs(30 * 86_400), now), Day(10));
        // An endless window saturates instead of overflowing.
        assert!(first_day(Duration::MAX, now) < Day(-100_000));
    }
}
