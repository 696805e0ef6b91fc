//! Scaling of the sharded engine (issue 4, item 4): packets per second through
//! conntrack + the 10-rule stateful ruleset of `pipeline.rs` over 4,096 established UDP
//! flows, driven through `ShardSet::handle` in batches of 64 as the live workers do.
//!
//! * `1 shard, 1 thread`: the baseline;
//! * `1 shard, 2 threads`: one engine behind one lock — what the live driver did before
//!   shards (a global lock on the packet path);
//! * `2 shards, 2 threads, steered`: each thread gets the flows its own shard owns, as
//!   the device queues deliver them (a flow stays on the queue it arrived on, and tunfilter
//!   writes it back to that queue);
//! * `2 shards, 2 threads, mixed`: each thread gets every flow, so every batch locks both
//!   shards (the worst case).
//!
//! Run: `cargo bench -p router --bench shards` (`SHARD_BENCH_SECS`, default 2).

use conntrack::{Instant, PacketBuf};
use router::config::Config;
use router::shard::{ShardSet, Work};
use rules::{Family, Ruleset};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const RULES: &str = "\
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -i wan0 -p tcp -m tcp --dport 22 -j DROP
-A FORWARD -i wan0 -p tcp -m tcp --dport 23 -j DROP
-A FORWARD -s 203.0.113.0/24 -i wan0 -j DROP
-A FORWARD -d 198.51.100.77/32 -p udp -m udp --dport 53 -j ACCEPT
-A FORWARD -i wan0 -p icmp -m icmp --icmp-type 8 -j ACCEPT
-A FORWARD -i lan0 -o wan0 -p tcp -j ACCEPT
-A FORWARD -i lan0 -o wan0 -p udp -j ACCEPT
-A FORWARD -i lan0 -o wan0 -j ACCEPT
COMMIT
";

const FLOWS: u32 = 4096;
const BATCH: usize = 64;

fn set(shards: usize) -> Arc<ShardSet> {
    let cfg = r#"
[[interface]]
name = "lan0"
kind = "tun"
addresses = ["192.0.2.1/24", "10.0.0.1/8"]
[[interface]]
name = "wan0"
kind = "tun"
addresses = ["198.51.100.1/24"]
[[route]]
prefix = "0.0.0.0/0"
interface = "wan0"
via = "198.51.100.254"
[conntrack]
max = 65536
checksum = false
"#;
    let cfg = Config::parse(cfg, "bench.toml", Path::new(".")).unwrap();
    let set = ShardSet::new(&cfg, 42, shards).unwrap();
    let r4 = Arc::new(Ruleset::parse(RULES, "bench.rules", Family::V4).unwrap());
    let r6 = Arc::new(Ruleset::empty(Family::V6));
    for i in 0..set.len() {
        set.lock(i).set_shared_rules(r4.clone(), r6.clone());
    }
    set
}

/// A UDP packet of flow `n` (10.0.0.0/8 hosts x ports to 198.51.100.9:53).
fn udp(n: u32, reply: bool) -> Vec<u8> {
    let host = 0x0a00_0000 | (n >> 8 & 0x00ff_ffff);
    let sport = 1024 + (n & 0xff) as u16;
    let (src, dst, sp, dp) = if reply {
        ([198, 51, 100, 9], host.to_be_bytes(), 53u16, sport)
    } else {
        (host.to_be_bytes(), [198, 51, 100, 9], sport, 53u16)
    };
    let mut p = vec![0u8; 20];
    wire::ipv4::emit_header(&mut p, src.into(), dst.into(), 17, 64, 8 + 18, 1).unwrap();
    p.extend_from_slice(&sp.to_be_bytes());
    p.extend_from_slice(&dp.to_be_bytes());
    p.extend_from_slice(&26u16.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&[0x5a; 18]);
    p
}

/// Establishes every flow (request and reply), flow `n` read by worker `n % shards` so that
/// the connections spread over the shards; then returns the flows' packets (lan -> wan).
fn established(set: &ShardSet) -> Vec<Vec<u8>> {
    let mut w = Work::default();
    for n in 0..FLOWS {
        w.batch.push((0, PacketBuf::from_slice(&udp(n, false))));
        w.batch.push((1, PacketBuf::from_slice(&udp(n, true))));
        set.handle(n as usize % set.len(), Instant::from_secs(1), &mut w);
        w.tx.clear();
    }
    (0..FLOWS).map(|n| udp(n, false)).collect()
}

/// Runs `threads` workers over their packet lists for `secs`; returns packets per second.
fn run(set: &Arc<ShardSet>, lists: Vec<Vec<Vec<u8>>>, secs: f64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        for (w, list) in lists.into_iter().enumerate() {
            let (set, stop, total) = (set.clone(), stop.clone(), total.clone());
            s.spawn(move || {
                let mut work = Work::default();
                let mut sent = 0u64;
                let mut k = 0;
                let now = Instant::from_secs(2);
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..BATCH {
                        work.batch.push((0, PacketBuf::from_slice(&list[k])));
                        k = (k + 1) % list.len();
                    }
                    set.handle(w, now, &mut work);
                    sent += work.tx.len() as u64;
                    work.tx.clear();
                }
                total.fetch_add(sent, Ordering::Relaxed);
            });
        }
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
    });
    total.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this once, briefly.
    let quick = !std::env::args().any(|a| a == "--bench");
    let secs: f64 = std::env::var("SHARD_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 0.05 } else { 2.0 });
    let cases: [(&str, usize, usize, bool); 4] = [
        ("1 shard, 1 thread", 1, 1, true),
        ("1 shard, 2 threads (one lock)", 1, 2, true),
        ("2 shards, 2 threads, steered", 2, 2, true),
        ("2 shards, 2 threads, mixed", 2, 2, false),
    ];
    println!("| case | M pkt/s | ÷ 1 shard, 1 thread |");
    println!("|---|---:|---:|");
    let mut base = 0.0;
    for (name, shards, threads, steered) in cases {
        let set = set(shards);
        let pkts = established(&set);
        let lists: Vec<Vec<Vec<u8>>> = (0..threads)
            .map(|w| {
                pkts.iter()
                    .enumerate()
                    .filter(|(k, p)| match (shards, steered) {
                        // One engine: any split; mixed: every thread gets every flow.
                        (1, _) => k % threads == w,
                        (_, false) => true,
                        (_, true) => set.owner(p).unwrap_or(0) % threads == w,
                    })
                    .map(|(_, p)| p.clone())
                    .collect()
            })
            .collect();
        assert!(lists.iter().all(|l| !l.is_empty()));
        let rate = run(&set, lists, secs);
        if base == 0.0 {
            base = rate;
        }
        println!("| {name} | {:.2} | {:.2} |", rate / 1e6, rate / base);
    }
}
