//! `loop_a` over TCP: one established TCP connection (handshake, then the same 18-byte
//! ACK+PSH segment, a retransmission as far as window tracking goes) through conntrack and the
//! 10-rule stateful ruleset, `handle_packet` in a plain loop. TCP's L4 module is the one most
//! traffic meets; `loop_a` only shows UDP's. Instructions per packet by cachegrind
//! (BENCHMARKS.md).
//!
//! Run: `cargo build --release -p router --example loop_tcp && target/release/examples/loop_tcp 1000000`

use conntrack::{Instant, PacketBuf};
use router::config::Config;
use router::engine::Engine;
use rules::{Family, Ruleset};
use std::hint::black_box;
use std::path::Path;

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

fn tcp(reply: bool, flags: u8, seq: u32, ack: u32, data: usize) -> Vec<u8> {
    let (src, dst, sp, dp) = if reply {
        ([198, 51, 100, 9], [10, 0, 0, 0], 80u16, 1024u16)
    } else {
        ([10, 0, 0, 0], [198, 51, 100, 9], 1024, 80)
    };
    let mut p = vec![0u8; 20];
    wire::ipv4::emit_header(&mut p, src.into(), dst.into(), 6, 64, 20 + data, 1).unwrap();
    p.extend_from_slice(&sp.to_be_bytes());
    p.extend_from_slice(&dp.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ack.to_be_bytes());
    p.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    p.extend_from_slice(&vec![0x55; data]);
    p
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
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
max = 1024
checksum = false
"#;
    let cfg = Config::parse(cfg, "loop.toml", Path::new(".")).unwrap();
    let rules = Ruleset::parse(RULES, "loop.rules", Family::V4).unwrap();
    let mut e = Engine::with_rules(&cfg, 42, rules, Ruleset::empty(Family::V6)).unwrap();
    e.set_events(false);
    let now = Instant::from_secs(10);
    e.handle_packet(now, 0, PacketBuf::from_slice(&tcp(false, 0x02, 1000, 0, 0)));
    e.handle_packet(
        now,
        1,
        PacketBuf::from_slice(&tcp(true, 0x12, 5000, 1001, 0)),
    );
    e.handle_packet(
        now,
        0,
        PacketBuf::from_slice(&tcp(false, 0x10, 1001, 5001, 0)),
    );
    while e.poll_transmit().is_some() {}
    let raw = tcp(false, 0x18, 1001, 5001, 18);
    let hdr: [u8; 20] = raw[..20].try_into().unwrap();
    let mut buf = PacketBuf::from_slice(&raw);
    for _ in 0..n {
        e.handle_packet(now, 0, buf);
        buf = black_box(e.poll_transmit().expect("forwarded").packet);
        buf.as_mut_slice()[..20].copy_from_slice(&hdr);
    }
    println!("{n} packets, {} forwarded", e.stats().packets_out);
}
