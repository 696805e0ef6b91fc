//! Virtual reassembly cost (issue 5): fragmented UDP datagrams of 3 and 45
//! fragments forwarded lan0 -> wan0 through the full pipeline (reassembly,
//! conntrack on the clone, a stateful ruleset, the originals sent with TTL
//! decremented), against unfragmented packets of the same flow.
//!
//! Run: `cargo bench -p router --bench defrag`

use conntrack::{Instant, PacketBuf};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use router::config::Config;
use router::engine::Engine;
use rules::{Family, Ruleset};
use std::path::Path;
use std::time::Duration;

const RULES: &str = "\
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -i lan0 -o wan0 -j ACCEPT
COMMIT
";

fn engine() -> Engine {
    let cfg = r#"
[[interface]]
name = "lan0"
kind = "tun"
addresses = ["192.0.2.1/24"]
[[interface]]
name = "wan0"
kind = "tun"
mtu = 9000
addresses = ["198.51.100.1/24"]
[[route]]
prefix = "0.0.0.0/0"
interface = "wan0"
via = "198.51.100.254"
[conntrack]
checksum = false
"#;
    let cfg = Config::parse(cfg, "bench.toml", Path::new(".")).unwrap();
    let rules = Ruleset::parse(RULES, "bench.rules", Family::V4).unwrap();
    let mut e = Engine::with_rules(&cfg, 42, rules, Ruleset::empty(Family::V6)).unwrap();
    e.set_events(false);
    e
}

/// An IPv4 UDP packet (192.0.2.2:4000 -> 198.51.100.9:9000) with `n` bytes of payload.
fn udp(n: usize) -> Vec<u8> {
    let mut p = vec![0u8; 20];
    let len = 8 + n;
    wire::ipv4::emit_header(
        &mut p,
        [192, 0, 2, 2].into(),
        [198, 51, 100, 9].into(),
        17,
        64,
        len,
        7,
    )
    .unwrap();
    p.extend_from_slice(&4000u16.to_be_bytes());
    p.extend_from_slice(&9000u16.to_be_bytes());
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend((0..n).map(|i| i as u8));
    p
}

/// Splits `whole` into fragments of `size` data bytes (a multiple of 8).
fn fragments(whole: &[u8], size: usize, id: u16) -> Vec<Vec<u8>> {
    let cuts: Vec<(usize, usize)> = (0..whole.len() - 20)
        .step_by(size)
        .map(|o| (o, size))
        .collect();
    testkit::frag4(whole, &cuts, id)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("defrag");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    let now = Instant::from_secs(10);
    // (name, datagram payload, fragment data size): 3 x 1480 and 45 x 1448 (65,180 bytes).
    for (name, payload, size) in [
        ("3_frags", 3 * 1480 - 8, 1480),
        ("45_frags", 45 * 1448 - 8, 1448),
    ] {
        let whole = udp(payload);
        let mut e = engine();
        // Establish the flow so every datagram is ESTABLISHED.
        e.handle_packet(now, 0, PacketBuf::from_slice(&udp(10)));
        let mut id = 0u16;
        let n = fragments(&whole, size, 0).len();
        g.throughput(Throughput::Bytes(whole.len() as u64));
        g.bench_function(format!("{name}_datagram"), |b| {
            b.iter_custom(|iters| {
                let mut sets = Vec::with_capacity(iters as usize);
                for _ in 0..iters {
                    id = id.wrapping_add(1);
                    sets.push(fragments(&whole, size, id));
                }
                let t = std::time::Instant::now();
                for set in sets {
                    for f in set {
                        e.handle_packet(now, 0, PacketBuf::from_vec(f));
                    }
                    for _ in 0..n {
                        std::hint::black_box(e.poll_transmit().expect("forwarded"));
                    }
                }
                t.elapsed()
            })
        });
        // The same flow unfragmented, one packet per fragment's size.
        let single = udp(size - 8);
        g.throughput(Throughput::Bytes(single.len() as u64));
        g.bench_function(format!("{name}_unfragmented_packet"), |b| {
            b.iter_custom(|iters| {
                let pkts: Vec<PacketBuf> =
                    (0..iters).map(|_| PacketBuf::from_slice(&single)).collect();
                let t = std::time::Instant::now();
                for p in pkts {
                    e.handle_packet(now, 0, p);
                    std::hint::black_box(e.poll_transmit().expect("forwarded"));
                }
                t.elapsed()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
