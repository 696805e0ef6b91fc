//! The drop path in a plain `handle_packet` loop: every packet is dropped by a raw-table rule
//! (`-t raw -A PREROUTING -i wan0 -j DROP`, events off), so each one is parsed, walks the raw
//! table and is counted under its reason. Beside `loop_a` (case (a), where nothing is
//! dropped), it shows what counting a drop costs. Instructions per packet by cachegrind, as
//! for `loop_a` (BENCHMARKS.md).
//!
//! Run: `cargo build --release -p router --example loop_drop && target/release/examples/loop_drop 1000000`

use conntrack::{Instant, PacketBuf};
use router::config::Config;
use router::engine::Engine;
use rules::{Family, Ruleset};
use std::hint::black_box;
use std::path::Path;

const RULES: &str = "\
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -i wan0 -j DROP
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -i lan0 -o wan0 -j ACCEPT
COMMIT
";

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let cfg = r#"
[[interface]]
name = "lan0"
kind = "tun"
addresses = ["10.0.0.1/8"]
[[interface]]
name = "wan0"
kind = "tun"
addresses = ["198.51.100.1/24"]
[[route]]
prefix = "0.0.0.0/0"
interface = "wan0"
via = "198.51.100.254"
[conntrack]
max = 1024
checksum = false
"#;
    let cfg = Config::parse(cfg, "loop.toml", Path::new(".")).unwrap();
    let rules = Ruleset::parse(RULES, "loop.rules", Family::V4).unwrap();
    let mut e = Engine::with_rules(&cfg, 42, rules, Ruleset::empty(Family::V6)).unwrap();
    e.set_events(false);
    let now = Instant::from_secs(10);
    // An unsolicited UDP packet from the outside.
    let mut p = vec![0u8; 20];
    wire::ipv4::emit_header(
        &mut p,
        [203, 0, 113, 9].into(),
        [10, 0, 0, 2].into(),
        17,
        64,
        26,
        1,
    )
    .unwrap();
    p.extend_from_slice(&5353u16.to_be_bytes());
    p.extend_from_slice(&53u16.to_be_bytes());
    p.extend_from_slice(&26u16.to_be_bytes());
    p.extend_from_slice(&[0; 20]);
    for _ in 0..n {
        e.handle_packet(now, 1, PacketBuf::from_slice(black_box(&p)));
    }
    assert!(e.poll_transmit().is_none(), "every packet is dropped");
    print!("{n} packets\n{}", e.ct_stats());
}
