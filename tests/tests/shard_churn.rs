//! Connection churn must not grow the sharded engine (issue 13, item 2): whatever the number of
//! connections that came and went, the memory in use stays what the configured limits need.
//!
//! The directory (`router::shard::Directory`) is a papaya map written only through `compute`.
//! Inserts and removes leave tombstones, and a map full of them starts a resize. papaya 0.2.5's
//! `compute` never helps an incremental resize along, so no table was ever promoted: each
//! resize added one more table to a chain that every later operation walked, and none was
//! freed. Heap and per-connection cost both grew with the number of connections ever made.
//!
//! The measure is a counting global allocator, per thread: bytes in use, and the number of
//! live blocks of 16 KiB or more (the map's tables, the connection table's slab and index).
//! Each test runs on its own thread and does all its work there, so the counts are exact.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use conntrack::tuple::Tuple;
use conntrack::{Instant, PacketBuf};
use router::config::Config;
use router::shard::{ShardSet, Work};
use rules::{Family, Ruleset};
use tests::flags::SYN;
use tests::tcp;

struct Counting;

/// Blocks at least this large are counted apart: papaya tables, slabs, indexes.
const BIG: usize = 16 * 1024;

thread_local! {
    static BYTES: Cell<isize> = const { Cell::new(0) };
    static BIG_BLOCKS: Cell<isize> = const { Cell::new(0) };
}

fn account(size: usize, sign: isize) {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    let _ = BYTES.try_with(|b| b.set(b.get() + sign * size as isize));
    if size >= BIG {
        let _ = BIG_BLOCKS.try_with(|b| b.set(b.get() + sign));
    }
}

// SAFETY: forwards every call to the system allocator unchanged; the bookkeeping touches only
// `Cell`s of the calling thread.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        account(l.size(), 1);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        account(l.size(), 1);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        account(l.size(), -1);
        account(new, 1);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, new) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        account(l.size(), -1);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// (bytes in use, big blocks in use) by this thread.
fn usage() -> (isize, isize) {
    (BYTES.with(Cell::get), BIG_BLOCKS.with(Cell::get))
}

/// Highest usage seen after a warm-up, against the usage at the end of the warm-up.
#[derive(Debug, Default)]
struct Peak {
    base: (isize, isize),
    max: (isize, isize),
}

impl Peak {
    fn start() -> Peak {
        let u = usage();
        Peak { base: u, max: u }
    }
    fn sample(&mut self) {
        let u = usage();
        self.max = (self.max.0.max(u.0), self.max.1.max(u.1));
    }
    fn growth(&self) -> (isize, isize) {
        (self.max.0 - self.base.0, self.max.1 - self.base.1)
    }
}

fn config(max: usize) -> Config {
    let text = format!(
        r#"
[[interface]]
name = "lan0"
kind = "tun"
addresses = ["192.0.2.1/24"]
[[interface]]
name = "wan0"
kind = "tun"
addresses = ["198.51.100.1/24"]
[conntrack]
max = {max}
# Every SYN of a batch is to make a connection (rationing is tested in shard.rs).
new_flows_per_batch = 0
"#
    );
    Config::parse(&text, "churn.toml", Path::new(".")).unwrap()
}

/// A distinct IPv4/TCP tuple for every `i` below 2^32.
fn tuple(i: u32) -> Tuple {
    Tuple {
        src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2 + (i % 200) as u8)),
        dst: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9)),
        src_id: (i / 200) as u16,
        dst_id: 80 + (i / 200 / 65536) as u16,
        proto: 6,
        zone: 0,
    }
}

#[test]
fn directory_churn_keeps_memory_and_tables_bounded() {
    let set = ShardSet::new(&config(8192), 5, 2).unwrap();
    let dir = set.directory();
    // 4,096 connections alive at any time (8,192 tuples: both shards' full tables), and
    // 300,000 created in all: each publishes two tuples and withdraws them when it leaves.
    const LIVE: u32 = 4096;
    const TOTAL: u32 = 300_000;
    let conn = |c: u32| (tuple(2 * c), tuple(2 * c + 1), (c % 2) as usize);
    let mut peak = None;
    for c in 0..TOTAL {
        let (a, b, s) = conn(c);
        assert_eq!(dir.reserve(&a, s), Some(true));
        assert_eq!(dir.reserve(&b, s), Some(true));
        if c >= LIVE {
            let (a, b, s) = conn(c - LIVE);
            dir.release(&a, s);
            dir.release(&b, s);
        }
        // The warm-up: the table reaches its working size and a few churn resizes pass.
        if c == 8 * LIVE {
            peak = Some(Peak::start());
        }
        if c % 1000 == 0 {
            if let Some(p) = peak.as_mut() {
                p.sample();
            }
        }
    }
    assert_eq!(dir.len(), 2 * LIVE as usize);
    let p = peak.unwrap();
    let (bytes, big) = p.growth();
    // The working table is 32,768 slots (≈295 KB); a resize holds two for a while, and retired
    // entries wait for their reclamation batch. The chain of unpromoted tables left one more
    // table behind every 15,000 connections or so (≈9 bytes per tuple ever published): 4.7 MB
    // and 16 tables here.
    assert!(
        bytes < 1024 * 1024,
        "directory memory grew by {bytes} bytes over {} connections after warm-up (base {:?})",
        TOTAL - 8 * LIVE,
        p.base
    );
    assert!(
        big <= 2,
        "{big} more large blocks (map tables) alive than after warm-up: tables are piling up"
    );
}

#[test]
fn syn_churn_through_a_full_table_keeps_memory_bounded() {
    // Two shards of 256 connections each. Every SYN is a new connection: once the tables are
    // full each one early-drops an unreplied connection (`conntrack: early drop`), whose
    // tuples leave the directory, as at a gateway under a stream of new connections.
    const MAX: usize = 512;
    const SYNS: u32 = 60_000;
    let set = ShardSet::new(&config(MAX), 9, 2).unwrap();
    let r4 = Arc::new(
        Ruleset::parse(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
            "churn.rules",
            Family::V4,
        )
        .unwrap(),
    );
    for i in 0..set.len() {
        set.lock(i)
            .set_shared_rules(r4.clone(), Arc::new(Ruleset::empty(Family::V6)));
    }
    let mut work = Work::default();
    let mut peak = None;
    let mut forwarded = 0usize;
    const BATCH: u32 = 32;
    for n in 0..SYNS / BATCH {
        for k in 0..BATCH {
            let i = n * BATCH + k;
            let src = format!("192.0.2.{}", 2 + i % 200);
            let p = tcp(
                &src,
                1024 + (i / 200) as u16,
                "198.51.100.9",
                80,
                i,
                0,
                SYN,
                b"",
            );
            work.batch.push((0, PacketBuf::from_slice(&p)));
        }
        // The worker that read the batch alternates, so both shards fill and churn.
        set.handle((n % 2) as usize, Instant::from_secs(1), &mut work);
        forwarded += work.tx.drain(..).filter(|(_, t)| t.iface == 1).count();
        if n * BATCH == 16 * MAX as u32 {
            peak = Some(Peak::start());
        }
        if let Some(p) = peak.as_mut() {
            p.sample();
        }
    }
    assert_eq!(forwarded, SYNS as usize, "every SYN made a connection");
    let live: usize = (0..set.len()).map(|i| set.lock(i).ct_len()).sum();
    assert_eq!(live, MAX, "the tables stay full");
    assert_eq!(set.directory().len(), 2 * MAX);
    let p = peak.unwrap();
    let (bytes, big) = p.growth();
    assert!(
        bytes < 256 * 1024,
        "the sharded engine grew by {bytes} bytes over {} SYNs after warm-up (base {:?})",
        SYNS as usize - 16 * MAX,
        p.base
    );
    // Unpromoted tables: 925 KB and 25 more large blocks here.
    assert!(big <= 2, "{big} more large blocks alive than after warm-up");
}
