//! Packets per second through conntrack + a 10-rule stateful ruleset
//! (issue 2, item 11), single thread, events off:
//! (a) one established flow, (b) lookups spread over 1M established
//! connections, (c) new connections into a table that already holds 1M.
//! Also prints the table's memory per connection.
//!
//! Run: `cargo bench -p router --bench pipeline`

use conntrack::{Instant, PacketBuf};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use router::config::Config;
use router::engine::Engine;
use rules::{Family, Ruleset};
use std::hint::black_box;
use std::path::Path;
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

/// Packets per `handle_batch` call in the batch variants.
const BATCH: usize = 32;

fn engine(max: usize) -> Engine {
    let cfg = format!(
        r#"
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
max = {max}
checksum = false
"#
    );
    let cfg = Config::parse(&cfg, "bench.toml", Path::new(".")).unwrap();
    let rules = Ruleset::parse(RULES, "bench.rules", Family::V4).unwrap();
    let mut e = Engine::with_rules(&cfg, 42, rules, Ruleset::empty(Family::V6)).unwrap();
    e.set_events(false);
    e
}

/// A UDP packet between two hosts; `n` spreads flows over 10.0.0.0/8 x ports.
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
    p.extend_from_slice(&[0x55; 18]);
    p
}

/// Feeds `pkt` and takes it back from the transmit queue, restoring its TTL
/// so the same buffer can be fed again without allocating.
#[inline]
fn cycle(
    e: &mut Engine,
    now: Instant,
    ingress: usize,
    pkt: PacketBuf,
    hdr: &[u8; 20],
) -> PacketBuf {
    e.handle_packet(now, ingress, pkt);
    let mut out = e.poll_transmit().expect("forwarded").packet;
    out.as_mut_slice()[..20].copy_from_slice(hdr);
    out
}

fn header(p: &[u8]) -> [u8; 20] {
    p[..20].try_into().unwrap()
}

fn established(e: &mut Engine, n: u32, now: Instant) {
    for i in 0..n {
        e.handle_packet(now, 0, PacketBuf::from_slice(&udp(i, false)));
        e.handle_packet(now, 1, PacketBuf::from_slice(&udp(i, true)));
        while e.poll_transmit().is_some() {}
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(1));
    let now = Instant::from_secs(10);

    // (a) one established flow
    {
        let mut e = engine(1024);
        established(&mut e, 1, now);
        let raw = udp(0, false);
        let hdr = header(&raw);
        let mut buf = Some(PacketBuf::from_slice(&raw));
        g.bench_function("a_one_established_flow", |b| {
            b.iter(|| {
                let p = buf.take().unwrap();
                buf = Some(black_box(cycle(&mut e, now, 0, p, &hdr)));
            })
        });
    }

    // (a) again through the batch API (same packet 32 times per call).
    {
        let mut e = engine(1024);
        established(&mut e, 1, now);
        let raw = udp(0, false);
        let hdr = header(&raw);
        let mut batch: Vec<(usize, PacketBuf)> = (0..BATCH)
            .map(|_| (0, PacketBuf::from_slice(&raw)))
            .collect();
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_function("a_one_established_flow_batch32", |b| {
            b.iter(|| {
                e.handle_batch(now, &mut batch);
                while let Some(t) = e.poll_transmit() {
                    let mut p = t.packet;
                    p.as_mut_slice()[..20].copy_from_slice(&hdr);
                    batch.push((0, p));
                }
                assert_eq!(batch.len(), BATCH);
            })
        });
        g.throughput(Throughput::Elements(1));
    }

    // (b) lookups spread over 1M established connections
    const N: u32 = 1 << 20;
    let mut e = engine(16 << 20);
    established(&mut e, N, now);
    eprintln!(
        "conntrack memory: {} connections, {} bytes, {:.1} bytes/connection",
        e.ct_len(),
        e.ct_memory(),
        e.ct_memory() as f64 / e.ct_len() as f64
    );
    // Visit flows in a scattered order so lookups miss the cache like real traffic.
    let order: Vec<u32> = (0..N).map(|i| i.wrapping_mul(2_654_435_761) % N).collect();
    let mut pool: Vec<(PacketBuf, [u8; 20])> = order
        .iter()
        .map(|&i| {
            let raw = udp(i, false);
            let h = header(&raw);
            (PacketBuf::from_slice(&raw), h)
        })
        .collect();
    let mut k = 0usize;
    g.bench_function("b_lookup_over_1M_established", |b| {
        b.iter(|| {
            let (p, h) =
                std::mem::replace(&mut pool[k], (PacketBuf::from_vec(Vec::new()), [0; 20]));
            let p = cycle(&mut e, now, 0, p, &h);
            pool[k] = (p, h);
            k = (k + 1) % pool.len();
        })
    });

    // (b) again through the batch API the live driver uses: 32 packets per
    // call, their conntrack lookups warmed together.
    let mut batch: Vec<(usize, PacketBuf)> = Vec::with_capacity(BATCH);
    let mut hdrs: Vec<[u8; 20]> = Vec::with_capacity(BATCH);
    let mut k = 0usize;
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("b_lookup_over_1M_established_batch32", |b| {
        b.iter(|| {
            let start = k;
            let n = pool.len();
            for j in 0..BATCH {
                let (p, h) = std::mem::replace(
                    &mut pool[(start + j) % n],
                    (PacketBuf::from_vec(Vec::new()), [0; 20]),
                );
                batch.push((0, p));
                hdrs.push(h);
            }
            e.handle_batch(now, &mut batch);
            for (j, h) in hdrs.drain(..).enumerate() {
                let mut out = e.poll_transmit().expect("forwarded").packet;
                out.as_mut_slice()[..20].copy_from_slice(&h);
                pool[(start + j) % n] = (out, h);
            }
            k = (start + BATCH) % n;
        })
    });
    g.throughput(Throughput::Elements(1));
    drop(pool);

    // (c) new connections into a table that already holds 1M
    let mut next = N;
    g.bench_function("c_new_connections_into_1M", |b| {
        b.iter_custom(|iters| {
            let pkts: Vec<PacketBuf> = (0..iters)
                .map(|_| {
                    next += 1;
                    PacketBuf::from_slice(&udp(next, false))
                })
                .collect();
            let t = std::time::Instant::now();
            for p in pkts {
                e.handle_packet(now, 0, p);
                black_box(e.poll_transmit());
            }
            t.elapsed()
        })
    });
    eprintln!("table after (c): {} connections", e.ct_len());
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
