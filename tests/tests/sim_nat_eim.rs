//! RFC 4787 UDP NAT behaviour in the simulator: endpoint-independent
//! mapping (REQ-1), endpoint-independent filtering (REQ-8) as a STUN-style
//! traversal needs it, outbound-only refresh (REQ-6), against netfilter's
//! default address-and-port-dependent behaviour.

use tests::*;
use wire::{Ipv4Packet, UdpPacket};

const RULES: &str = "*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o wan0 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -i lan0 -o wan0 -j ACCEPT
COMMIT
";

/// Internal hosts, two STUN-like servers, and a peer that was never contacted.
const H1: &str = "192.0.2.10";
const H2: &str = "192.0.2.11";
const A: &str = "203.0.113.20";
const B: &str = "203.0.113.30";
const PEER: &str = "203.0.113.40";
const PUB: &str = "198.51.100.1";

fn scenario(name: &str, nat: &str) -> Scenario {
    let cfg = format!(
        r#"
[[interface]]
name = "lan0"
kind = "tun"
addresses = ["192.0.2.1/24"]

[[interface]]
name = "wan0"
kind = "tun"
addresses = ["198.51.100.1/24"]

[[route]]
prefix = "0.0.0.0/0"
interface = "wan0"
via = "198.51.100.254"

[rules]
ipv4 = "v4.rules"

{nat}
"#
    );
    Scenario::with_config(name, &cfg, RULES, "")
}

fn at(iface: &'static str, at: f64, packet: Vec<u8>) -> Arrival {
    Arrival { iface, at, packet }
}

/// (source, source port, destination, destination port) of the UDP packets
/// (ICMP errors the router sends are left out).
fn udp_ends(pkts: &[Vec<u8>]) -> Vec<(String, u16, String, u16)> {
    pkts.iter()
        .filter(|p| Ipv4Packet::new_checked(&p[..]).unwrap().protocol() == 17)
        .map(|p| {
            let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
            let u = UdpPacket::new_checked(ip.payload()).unwrap();
            assert!(u.verify_checksum_v4(ip.src_addr(), ip.dst_addr()));
            (
                ip.src_addr().to_string(),
                u.src_port(),
                ip.dst_addr().to_string(),
                u.dst_port(),
            )
        })
        .collect()
}

/// H2 first takes external port 5000 towards A; then H1:5000 talks to A
/// (port 5000 is taken for that remote) and to B (where 5000 is free).
fn two_servers() -> Vec<Arrival> {
    vec![
        at("lan0", 0.0, udp(H2, 5000, A, 3478, b"h2")),
        at("lan0", 0.1, udp(H1, 5000, A, 3478, b"binding request")),
        at("lan0", 0.2, udp(H1, 5000, B, 3478, b"binding request")),
    ]
}

#[test]
fn default_mapping_depends_on_the_destination() {
    let sc = scenario("eim-default", "");
    let out = sc.run(&two_servers(), None);
    let sent = udp_ends(&out.on("wan0"));
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0].1, 5000, "H2 keeps its port");
    assert_ne!(sent[1].1, 5000, "H1 towards A cannot have 5000");
    // netfilter preserves the port where the reply tuple is free: towards B
    // H1 gets 5000, a different external port than towards A.
    assert_eq!(sent[2].1, 5000);
    assert_ne!(sent[1].1, sent[2].1, "address-and-port-dependent mapping");
}

#[test]
fn endpoint_independent_mapping_keeps_one_external_port_per_internal_endpoint() {
    let sc = scenario(
        "eim-mapping",
        "[nat]\nudp_mapping = \"endpoint-independent\"\n",
    );
    let mut arr = two_servers();
    // A third destination, later, still gets the same mapping.
    arr.push(at("lan0", 5.0, udp(H1, 5000, PEER, 9999, b"x")));
    let out = sc.run(&arr, None);
    let sent = udp_ends(&out.on("wan0"));
    assert_eq!(sent.len(), 4);
    assert_eq!(sent[0].1, 5000);
    let h1 = sent[1].1;
    assert_ne!(h1, 5000, "5000 belongs to H2's mapping");
    assert!(
        sent[1..].iter().all(|s| s.0 == PUB && s.1 == h1),
        "REQ-1: one external endpoint for H1 whatever the destination: {sent:?}"
    );
}

#[test]
fn endpoint_independent_filtering_lets_any_remote_reach_a_mapped_endpoint() {
    let nat =
        "[nat]\nudp_mapping = \"endpoint-independent\"\nudp_filtering = \"endpoint-independent\"\n";
    let sc = scenario("eim-eif", nat);
    // H1 learns its external port from A (as STUN would), then a peer that H1
    // never contacted sends to that port and H1 answers it.
    let first = sc.run(&[at("lan0", 0.0, udp(H1, 5000, A, 3478, b"req"))], None);
    let ext = udp_ends(&first.on("wan0"))[0].1;
    let arr = vec![
        at("lan0", 0.0, udp(H1, 5000, A, 3478, b"req")),
        at("wan0", 0.1, udp(A, 3478, PUB, ext, b"resp")),
        at("wan0", 1.0, udp(PEER, 7000, PUB, ext, b"punch")),
        at("lan0", 1.1, udp(H1, 5000, PEER, 7000, b"hello peer")),
        // An unmapped port stays closed.
        at(
            "wan0",
            1.2,
            udp(PEER, 7000, PUB, ext.wrapping_add(1), b"closed"),
        ),
    ];
    let out = sc.run(&arr, None);
    let to_lan = udp_ends(&out.on("lan0"));
    assert_eq!(
        to_lan,
        vec![
            (A.to_string(), 3478, H1.to_string(), 5000),
            (PEER.to_string(), 7000, H1.to_string(), 5000),
        ],
        "the peer's packet reaches H1; the unmapped port does not"
    );
    let to_wan = udp_ends(&out.on("wan0"));
    assert_eq!(to_wan[1], (PUB.to_string(), ext, PEER.to_string(), 7000));
    assert!(
        out.conntrack
            .contains(&format!("src={PEER} dst={PUB} sport=7000 dport={ext}")),
        "{}",
        out.conntrack
    );
}

#[test]
fn without_endpoint_independent_filtering_the_peer_does_not_reach_the_host() {
    let sc = scenario(
        "eim-apdf",
        "[nat]\nudp_mapping = \"endpoint-independent\"\n",
    );
    let first = sc.run(&[at("lan0", 0.0, udp(H1, 5000, A, 3478, b"req"))], None);
    let ext = udp_ends(&first.on("wan0"))[0].1;
    let out = sc.run(
        &[
            at("lan0", 0.0, udp(H1, 5000, A, 3478, b"req")),
            at("wan0", 1.0, udp(PEER, 7000, PUB, ext, b"punch")),
        ],
        None,
    );
    // Not forwarded: without a connection the packet is for the router
    // itself, which has nothing on that port (ICMP port unreachable, as
    // Linux answers).
    assert!(out.on("lan0").is_empty());
    let icmp: Vec<_> = out
        .on("wan0")
        .into_iter()
        .filter(|p| p[9] == 1 && p[20] == 3 && p[21] == 3)
        .collect();
    assert_eq!(icmp.len(), 1);
}

#[test]
fn outbound_only_refresh_ignores_inbound_keepalives() {
    // Inbound packets every 20 s for a minute; the 30 s unreplied UDP timeout
    // then runs out at 30 s when only outbound packets refresh.
    let arrivals = |ext: u16| {
        let mut v = vec![at("lan0", 0.0, udp(H1, 5000, A, 3478, b"req"))];
        for k in 1..=3 {
            v.push(at(
                "wan0",
                20.0 * f64::from(k),
                udp(A, 3478, PUB, ext, b"in"),
            ));
        }
        v
    };
    let both = scenario(
        "eim-refresh-both",
        "[nat]\nudp_mapping = \"endpoint-independent\"\n",
    );
    let ext = udp_ends(
        &both
            .run(&[at("lan0", 0.0, udp(H1, 5000, A, 3478, b"req"))], None)
            .on("wan0"),
    )[0]
    .1;
    let out = both.run(&arrivals(ext), None);
    assert_eq!(
        out.on("lan0").len(),
        3,
        "default: inbound traffic refreshes"
    );

    let outbound = scenario(
        "eim-refresh-out",
        "[nat]\nudp_mapping = \"endpoint-independent\"\nudp_refresh = \"outbound\"\n",
    );
    let out = outbound.run(&arrivals(ext), None);
    // The reply at 20 s arrives within the first 30 s; the ones at 40 s and
    // 60 s find the mapping expired (it was only refreshed by the request).
    assert_eq!(out.on("lan0").len(), 1, "REQ-6: inbound does not refresh");
}

#[test]
fn bad_nat_settings_are_rejected_with_their_position() {
    let cfg = "[nat]\nudp_filtering = \"endpoint-independent\"\n";
    let e = router::config::Config::parse(cfg, "gw.toml", std::path::Path::new(".")).unwrap_err();
    assert_eq!((e.line, e.column), (2, 17), "{e}");
    assert!(e.message.contains("needs udp_mapping"), "{e}");
    let cfg = "[nat]\nudp_mapping = \"full-cone\"\n";
    let e = router::config::Config::parse(cfg, "gw.toml", std::path::Path::new(".")).unwrap_err();
    assert!(e.to_string().starts_with("gw.toml:2:15:"), "{e}");
    assert!(e.message.contains("endpoint-independent"), "{e}");
}
