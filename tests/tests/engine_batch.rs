//! `Engine::handle_batch` (the live driver's entry point, which warms the
//! conntrack lookups of a batch first) must give exactly what feeding the
//! same packets one by one through `handle_packet` gives.

use conntrack::{Instant, PacketBuf};
use router::config::Config;
use router::engine::Engine;
use rules::{Family, Ruleset};
use std::path::Path;
use tests::{echo, tcp, udp};

const RULES: &str = "\
*filter
:INPUT ACCEPT [0:0]
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
addresses = ["198.51.100.1/24"]
"#;
    let cfg = Config::parse(cfg, "t.toml", Path::new(".")).unwrap();
    let rules = Ruleset::parse(RULES, "t.rules", Family::V4).unwrap();
    Engine::with_rules(&cfg, 7, rules, Ruleset::empty(Family::V6)).unwrap()
}

/// A mix: new flows, replies, unsolicited inbound, a TCP handshake, ICMP,
/// a truncated packet and the same flows again.
fn traffic() -> Vec<(usize, Vec<u8>)> {
    let mut v = Vec::new();
    for i in 0..20u16 {
        v.push((0, udp("192.0.2.10", 4000 + i, "198.51.100.9", 53, b"q")));
        if i % 2 == 0 {
            v.push((1, udp("198.51.100.9", 53, "192.0.2.10", 4000 + i, b"a")));
        }
        v.push((1, udp("198.51.100.66", 1000 + i, "192.0.2.10", 22, b"x")));
    }
    v.push((
        0,
        tcp("192.0.2.10", 5555, "198.51.100.9", 80, 1000, 0, 0x02, b""),
    ));
    v.push((
        1,
        tcp(
            "198.51.100.9",
            80,
            "192.0.2.10",
            5555,
            9000,
            1001,
            0x12,
            b"",
        ),
    ));
    v.push((
        0,
        tcp(
            "192.0.2.10",
            5555,
            "198.51.100.9",
            80,
            1001,
            9001,
            0x10,
            b"",
        ),
    ));
    v.push((0, echo("192.0.2.10", "198.51.100.9", true, 7, 1, 64)));
    v.push((1, echo("198.51.100.9", "192.0.2.10", false, 7, 1, 64)));
    v.push((0, vec![0x45, 0, 0]));
    for i in 0..20u16 {
        v.push((0, udp("192.0.2.10", 4000 + i, "198.51.100.9", 53, b"q2")));
    }
    v
}

#[test]
fn batch_and_single_give_the_same_transmits_state_and_drops() {
    let now = Instant::from_secs(5);
    let (mut one, mut many) = (engine(), engine());
    let pkts = traffic();
    let mut out_one = Vec::new();
    for (i, p) in &pkts {
        one.handle_packet(now, *i, PacketBuf::from_slice(p));
        while let Some(t) = one.poll_transmit() {
            out_one.push((t.iface, t.packet.as_slice().to_vec()));
        }
    }
    let mut out_many = Vec::new();
    for chunk in pkts.chunks(7) {
        let mut batch: Vec<(usize, PacketBuf)> = chunk
            .iter()
            .map(|(i, p)| (*i, PacketBuf::from_slice(p)))
            .collect();
        many.handle_batch(now, &mut batch);
        assert!(batch.is_empty(), "the batch is consumed");
        while let Some(t) = many.poll_transmit() {
            out_many.push((t.iface, t.packet.as_slice().to_vec()));
        }
    }
    assert!(
        out_one.len() > 40,
        "traffic was forwarded: {}",
        out_one.len()
    );
    assert_eq!(out_one, out_many);
    let list = |e: &Engine| -> Vec<String> { e.ct_list().iter().map(|c| c.to_string()).collect() };
    assert_eq!(list(&one), list(&many));
    assert_eq!(one.ct_stats(), many.ct_stats());
}
