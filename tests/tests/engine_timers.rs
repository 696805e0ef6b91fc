//! `Engine::skip_idle_ticks`: crossing an idle stretch in one step (what `tunfilter sim`
//! does across long gaps in a capture) gives exactly the result of ticking through it every
//! 100 ms: the same expiries at the same times, then the same behaviour afterwards.

use conntrack::{Instant, PacketBuf};
use router::config::Config;
use router::engine::Engine;
use rules::{Family, Ruleset};
use std::path::Path;
use tests::flags::*;
use tests::*;

const RULES: &str = "\
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o wan0 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
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
[conntrack]
max = 4096
timeouts = { udp_unreplied = 45, tcp_syn_sent = 300 }
[nat]
udp_mapping = "endpoint-independent"
"#;
    let cfg = Config::parse(cfg, "t.toml", Path::new(".")).unwrap();
    let rules = Ruleset::parse(RULES, "t.rules", Family::V4).unwrap();
    Engine::with_rules(&cfg, 3, rules, Ruleset::empty(Family::V6)).unwrap()
}

fn at(ms: u64) -> Instant {
    Instant::from_nanos(ms * 1_000_000)
}

/// Connections per round: more than the sweep's budget (1,024 slots per tick), so that where
/// the sweep stands after a jump decides which expired connection goes first.
const FLOWS: u16 = 1500;

/// Traffic at `base`: UDP flows (with endpoint-independent mappings), TCP SYNs and a lone
/// first fragment, spread over a few seconds so that they expire at different times.
fn traffic(e: &mut Engine, base: u64, out: &mut Vec<String>) {
    for i in 0..FLOWS {
        let t = base + u64::from(i) * 7;
        let c = format!("192.0.2.{}", 10 + i % 200);
        let p = if i % 3 == 0 {
            tcp(&c, 30000 + i, "198.51.100.9", 80, u32::from(i), 0, SYN, b"")
        } else {
            udp(&c, 30000 + i, "198.51.100.9", 53, b"q")
        };
        e.handle_packet(at(t), 0, PacketBuf::from_slice(&p));
    }
    let whole = udp("192.0.2.5", 999, "198.51.100.9", 53, &[7u8; 64]);
    let first = frag4(&whole, &[(0, 24)], 77).remove(0);
    e.handle_packet(at(base + 9000), 0, PacketBuf::from_slice(&first));
    drain(e, out);
}

fn drain(e: &mut Engine, out: &mut Vec<String>) {
    while let Some(t) = e.poll_transmit() {
        out.push(format!("tx iface={} {:?}", t.iface, t.packet.as_slice()));
    }
    while let Some(ev) = e.poll_event() {
        out.push(ev.to_json());
    }
}

/// Runs every timer up to `end`, ticking, or jumping over idle stretches when `jump`.
/// Returns the ticks jumped over.
fn run_until(e: &mut Engine, end: Instant, jump: bool, out: &mut Vec<String>) -> u64 {
    let mut jumped = 0;
    while let Some(t) = e.poll_timeout().filter(|t| *t <= end) {
        if jump {
            let until = e.next_deadline().map_or(end, |d| d.min(end));
            let k = e.skip_idle_ticks(until);
            if k > 0 {
                jumped += k;
                continue;
            }
        }
        e.handle_timeout(t);
        drain(e, out);
    }
    jumped
}

#[test]
fn jumping_over_idle_time_equals_ticking_through_it() {
    let (mut a, mut b) = (engine(), engine());
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    let mut jumped = 0;
    // Two rounds: traffic, then 20 minutes of timers; the second round starts from the
    // state (sweep position, schedules) the jumps left behind.
    for round in 0..2u64 {
        let base = 1000 + round * 1_234_567;
        traffic(&mut a, base, &mut ta);
        traffic(&mut b, base, &mut tb);
        let end = at(base + 1_200_000);
        run_until(&mut a, end, false, &mut ta);
        jumped += run_until(&mut b, end, true, &mut tb);
    }
    assert!(
        jumped > 15_000,
        "most of the 40 minutes was jumped over ({jumped} ticks)"
    );
    let destroys = ta
        .iter()
        .filter(|l| l.contains("\"type\":\"destroy\""))
        .count();
    assert_eq!(
        destroys,
        2 * usize::from(FLOWS),
        "every connection expired each round"
    );
    assert!(a.ct_stats().contains("frag: reassembly timeout"));
    assert_eq!(ta.len(), tb.len());
    for (x, y) in ta.iter().zip(&tb) {
        assert_eq!(x, y);
    }
    assert_eq!(a.ct_stats(), b.ct_stats());
    assert_eq!(a.poll_timeout(), b.poll_timeout());
}
