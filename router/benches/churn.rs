//! Connection churn through the sharded engine (issue 13, item 2): a stream of new TCP
//! connections (one SYN each) into two shards whose tables are full (8,192 connections in
//! all), so that each SYN early-drops an unreplied connection and the directory withdraws its
//! tuples. Fed through `ShardSet::handle` in batches of 64 read by alternating workers, as the
//! live workers do, on one thread.
//!
//! Prints, for each window of connections, the cost of one new connection and the heap in use
//! (a counting global allocator). Neither may depend on how many connections came before.
//!
//! Run: `cargo bench -p router --bench churn` (`CHURN_CONNS`, default 3,000,000;
//! `CHURN_WINDOW`, default 250,000).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use conntrack::{Instant, PacketBuf};
use router::config::Config;
use router::shard::{ShardSet, Work};
use rules::{Family, Ruleset};

struct Counting;
static IN_USE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        IN_USE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        IN_USE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        IN_USE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, new) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        IN_USE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const BATCH: usize = 64;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The SYN of connection `n`: 200 LAN hosts × source ports, to 198.51.100.9:80.
fn syn(n: usize) -> Vec<u8> {
    let host = [192, 0, 2, 2 + (n % 200) as u8];
    let sport = 1024 + (n / 200 % 64_000) as u16;
    let dport = 80 + (n / 200 / 64_000) as u16;
    let mut t = [0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&(n as u32).to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x02;
    t[14..16].copy_from_slice(&65535u16.to_be_bytes());
    let mut p = vec![0u8; 20];
    wire::ipv4::emit_header(&mut p, host.into(), [198, 51, 100, 9].into(), 6, 64, 20, 1).unwrap();
    p.extend_from_slice(&t);
    p
}

fn main() {
    let total = env("CHURN_CONNS", 3_000_000);
    let window = env("CHURN_WINDOW", 250_000).max(BATCH);
    let cfg = r#"
[[interface]]
name = "lan0"
kind = "tun"
addresses = ["192.0.2.1/24"]
[[interface]]
name = "wan0"
kind = "tun"
addresses = ["198.51.100.1/24"]
[conntrack]
max = 8192
checksum = false
# Every SYN is to make a connection: the cost measured is that of connection setup.
new_flows_per_batch = 0
"#;
    let cfg = Config::parse(cfg, "churn.toml", Path::new(".")).unwrap();
    let set = ShardSet::new(&cfg, 3, 2).unwrap();
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
    // Packets are built outside the timed part, one window at a time.
    let mut work = Work::default();
    println!(
        "{:>12} {:>12} {:>14} {:>12}",
        "connections", "ns/conn", "heap bytes", "published"
    );
    let mut done = 0;
    let mut forwarded = 0;
    while done < total {
        let n = window.min(total - done);
        let pkts: Vec<Vec<u8>> = (done..done + n).map(syn).collect();
        let start = std::time::Instant::now();
        for (b, chunk) in pkts.chunks(BATCH).enumerate() {
            for p in chunk {
                work.batch.push((0, PacketBuf::from_slice(p)));
            }
            set.handle((done / BATCH + b) % 2, Instant::from_secs(1), &mut work);
            forwarded += work.tx.len();
            work.tx.clear();
        }
        let ns = start.elapsed().as_nanos() as f64 / n as f64;
        drop(pkts);
        done += n;
        println!(
            "{:>12} {:>12.0} {:>14} {:>12}",
            done,
            ns,
            IN_USE.load(Ordering::Relaxed),
            set.directory().len()
        );
    }
    assert_eq!(forwarded, total, "every SYN should make a connection");
}
