//! Length fields that disagree with the bytes present (issue: one packet stopped the
//! gateway). An ICMPv6 echo request whose Payload Length (3) is shorter than the ICMPv6
//! bytes that follow it (11) used to panic the router's echo reply; this file holds that
//! packet, its IPv4 twin, and a sweep that sets every length field of many kinds of packet
//! to every value near the truth (with trailing bytes) and runs them through an engine
//! whose rules touch the payload (NAT, TCPMSS, REJECT, `-m string`, LOG).
//!
//! What must hold: nothing panics, and whatever leaves the router is a well-formed IP
//! packet whose length field covers exactly its bytes (as Linux trims in `ip_rcv`).

use conntrack::{Instant, PacketBuf};
use router::config::Config;
use router::engine::{DropReason, Engine};
use rules::{Family, Ruleset};
use std::path::Path;
use tests::flags::*;
use tests::*;

const LAN: usize = 0;
const WAN: usize = 1;

const RULES4: &str = "\
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i wan0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.0.2.80:80
-A POSTROUTING -o wan0 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport 9 -j REJECT --reject-with icmp-port-unreachable
-A FORWARD -p tcp -m tcp --dport 81 -j REJECT --reject-with tcp-reset
-A FORWARD -p udp -m udp --dport 7 -j REJECT --reject-with icmp-host-prohibited
-A FORWARD -m string --string \"needle\" --algo bm --to 65535 -j LOG --log-prefix \"s \"
COMMIT
";

const RULES6: &str = "\
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1200
COMMIT
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
-A FORWARD -p tcp -m tcp --dport 81 -j REJECT --reject-with tcp-reset
-A FORWARD -p udp -m udp --dport 7 -j REJECT --reject-with icmp6-adm-prohibited
-A FORWARD -m string --string \"needle\" --algo kmp --to 65535 -j LOG --log-prefix \"s \"
COMMIT
";

fn engine() -> Engine {
    let cfg = r#"
[[interface]]
name = "lan0"
kind = "tun"
mtu = 1400
addresses = ["192.0.2.1/24", "2001:db8:1::1/64"]
[[interface]]
name = "wan0"
kind = "tun"
addresses = ["198.51.100.1/24", "2001:db8:2::1/64"]
[[route]]
prefix = "0.0.0.0/0"
interface = "wan0"
via = "198.51.100.254"
[[route]]
prefix = "::/0"
interface = "wan0"
via = "2001:db8:2::fe"
"#;
    let cfg = Config::parse(cfg, "t.toml", Path::new(".")).unwrap();
    let r4 = Ruleset::parse(RULES4, "v4.rules", Family::V4).unwrap();
    let r6 = Ruleset::parse(RULES6, "v6.rules", Family::V6).unwrap();
    Engine::with_rules(&cfg, 5, r4, r6).unwrap()
}

/// The packet of the report: an ICMPv6 echo request to the router whose Payload Length
/// says 3 while 11 bytes of ICMPv6 follow.
fn short_payload_length_echo_v6() -> Vec<u8> {
    let mut p = echo("2001:db8:1::2", "2001:db8:1::1", true, 1, 1, 64);
    p.truncate(40 + 11);
    p[4..6].copy_from_slice(&3u16.to_be_bytes());
    p
}

/// Every packet the engine sends is an IP packet whose length field is its length, with a
/// valid IPv4 header checksum.
fn drain_checked(e: &mut Engine, what: &str) -> Vec<(usize, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(t) = e.poll_transmit() {
        let p = t.packet.as_slice().to_vec();
        match p.first().map(|b| b >> 4) {
            Some(4) => {
                assert!(p.len() >= 20, "{what}: short IPv4 packet sent: {p:02x?}");
                let tl = usize::from(u16::from_be_bytes([p[2], p[3]]));
                assert_eq!(tl, p.len(), "{what}: IPv4 total length vs bytes sent");
                let hl = usize::from(p[0] & 15) * 4;
                assert!(hl >= 20 && hl <= p.len(), "{what}: header length {hl}");
                assert_eq!(
                    wire::checksum::data(&p[..hl]),
                    0,
                    "{what}: IPv4 header checksum of a sent packet"
                );
            }
            Some(6) => {
                assert!(p.len() >= 40, "{what}: short IPv6 packet sent: {p:02x?}");
                let pl = usize::from(u16::from_be_bytes([p[4], p[5]]));
                assert_eq!(
                    40 + pl,
                    p.len(),
                    "{what}: IPv6 payload length vs bytes sent"
                );
            }
            _ => panic!("{what}: a non-IP packet was sent: {p:02x?}"),
        }
        out.push((t.iface, p));
    }
    while e.poll_event().is_some() {}
    out
}

fn fix_v4_header_checksum(p: &mut [u8]) {
    if p.first().map(|b| b >> 4) != Some(4) || p.len() < 20 {
        return;
    }
    let hl = (usize::from(p[0] & 15) * 4).clamp(20, p.len());
    p[10..12].fill(0);
    let ck = wire::checksum::data(&p[..hl]);
    p[10..12].copy_from_slice(&ck.to_be_bytes());
}

#[test]
fn an_echo_request_shorter_than_its_bytes_is_a_counted_drop_and_the_router_goes_on() {
    let mut e = engine();
    e.handle_packet(
        Instant::from_secs(1),
        LAN,
        PacketBuf::from_slice(&short_payload_length_echo_v6()),
    );
    assert!(
        drain_checked(&mut e, "short echo").is_empty(),
        "a 3-byte ICMPv6 message gets no echo reply"
    );
    assert_eq!(e.panics(), 0, "handled without an internal error");
    assert_eq!(e.drop_counters().get(DropReason::LocalMalformedEcho), 1);

    // The IPv4 twin: a total length that ends inside the ICMP header.
    let mut v4 = echo("192.0.2.2", "192.0.2.1", true, 1, 1, 64);
    v4[2..4].copy_from_slice(&23u16.to_be_bytes());
    fix_v4_header_checksum(&mut v4);
    e.handle_packet(Instant::from_secs(1), LAN, PacketBuf::from_slice(&v4));
    assert!(drain_checked(&mut e, "short v4 echo").is_empty());
    assert_eq!(e.drop_counters().get(DropReason::LocalMalformedEcho), 2);

    // The router still answers and forwards afterwards.
    let ok = echo("2001:db8:1::2", "2001:db8:1::1", true, 1, 2, 64);
    e.handle_packet(Instant::from_secs(2), LAN, PacketBuf::from_slice(&ok));
    let out = drain_checked(&mut e, "echo");
    assert_eq!(out.len(), 1, "a well-formed echo request is answered");
    assert_eq!(out[0].1[40], 129, "an echo reply");
    let fwd = udp("192.0.2.2", 4000, "198.51.100.9", 53, b"q");
    e.handle_packet(Instant::from_secs(2), LAN, PacketBuf::from_slice(&fwd));
    let out = drain_checked(&mut e, "forward");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, WAN);
}

#[test]
fn an_echo_request_with_trailing_bytes_is_answered_with_the_datagram_only() {
    // Link padding or junk after the datagram is not part of it: the reply echoes exactly
    // the bytes the length field covers.
    let mut e = engine();
    for (req, hdr) in [
        (echo("2001:db8:1::2", "2001:db8:1::1", true, 9, 3, 64), 40),
        (echo("192.0.2.2", "192.0.2.1", true, 9, 3, 64), 20),
    ] {
        let mut padded = req.clone();
        padded.extend_from_slice(&[0xee; 13]);
        e.handle_packet(Instant::from_secs(1), LAN, PacketBuf::from_slice(&padded));
        let out = drain_checked(&mut e, "padded echo");
        assert_eq!(out.len(), 1);
        let reply = &out[0].1;
        assert_eq!(reply.len(), req.len());
        assert_eq!(
            &reply[hdr + 4..],
            &req[hdr + 4..],
            "the echo body, nothing more"
        );
    }
}

#[test]
fn the_simulator_runs_the_reported_packet_to_the_end() {
    // `tunfilter sim` exited 101 on this capture: now the run completes, the packet is a
    // counted drop, and the echo request after it is answered.
    let sc = Scenario::gateway("shortecho", "", "");
    let ok = echo("2001:db8:1::2", "2001:db8:1::1", true, 1, 2, 64);
    let out = sc.run(
        &[
            Arrival {
                iface: "lan0",
                at: 0.0,
                packet: short_payload_length_echo_v6(),
            },
            Arrival {
                iface: "lan0",
                at: 0.5,
                packet: ok,
            },
        ],
        None,
    );
    assert_eq!(out.on("lan0").len(), 1, "only the good request is answered");
    assert!(
        out.stats
            .contains("drop reason=\"local: malformed echo request\" count=1"),
        "{}",
        out.stats
    );
    assert!(!out.stats.contains("internal: panic"), "{}", out.stats);
}

/// Packets of many kinds, both families, forwarded and to the router.
fn templates() -> Vec<(usize, Vec<u8>)> {
    let mss = [2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2, 1, 1];
    let mut v = vec![
        (LAN, echo("192.0.2.2", "192.0.2.1", true, 1, 1, 64)),
        (LAN, echo("192.0.2.2", "198.51.100.9", true, 1, 1, 64)),
        (LAN, echo("2001:db8:1::2", "2001:db8:1::1", true, 1, 1, 64)),
        (LAN, echo("2001:db8:1::2", "2001:db8:2::9", true, 1, 1, 64)),
        (
            LAN,
            tcp_opts(
                "192.0.2.2",
                4000,
                "198.51.100.9",
                80,
                1,
                0,
                SYN,
                65535,
                &mss,
                b"",
            ),
        ),
        (
            LAN,
            tcp_opts(
                "2001:db8:1::2",
                4000,
                "2001:db8:2::9",
                80,
                1,
                0,
                SYN,
                65535,
                &mss,
                b"",
            ),
        ),
        (
            LAN,
            tcp("192.0.2.2", 4001, "198.51.100.9", 81, 1, 0, SYN, b"needle"),
        ),
        (
            LAN,
            tcp("2001:db8:1::2", 4001, "2001:db8:2::9", 81, 1, 0, SYN, b"x"),
        ),
        (LAN, tcp("192.0.2.2", 4002, "192.0.2.1", 22, 1, 0, SYN, b"")),
        (
            LAN,
            tcp("2001:db8:1::2", 4002, "2001:db8:1::1", 22, 1, 0, SYN, b""),
        ),
        (
            LAN,
            udp("192.0.2.2", 5000, "198.51.100.9", 53, b"a needle here"),
        ),
        (
            LAN,
            udp("2001:db8:1::2", 5000, "2001:db8:2::9", 53, b"needle"),
        ),
        (LAN, udp("192.0.2.2", 5001, "198.51.100.9", 7, b"rejected")),
        (LAN, udp("2001:db8:1::2", 5001, "2001:db8:2::9", 7, b"rej")),
        (LAN, udp("192.0.2.2", 5002, "192.0.2.1", 9, b"local")),
        (
            LAN,
            udp("2001:db8:1::2", 5002, "2001:db8:1::1", 9, b"local"),
        ),
        (
            WAN,
            tcp("198.51.100.9", 5003, "198.51.100.1", 8080, 1, 0, SYN, b""),
        ),
    ];
    // ICMP errors from the WAN quoting a packet of the LAN's (NATed) UDP flow.
    let quoted4 = udp("198.51.100.1", 5000, "198.51.100.9", 53, b"a needle here");
    v.push((WAN, icmp_error("198.51.100.9", &quoted4, 3, 3)));
    let quoted6 = udp("2001:db8:2::1", 5000, "2001:db8:2::9", 53, b"needle");
    v.push((WAN, icmp_error("2001:db8:2::9", &quoted6, 1, 4)));
    // SCTP and DCCP common headers, and IPv6 behind extension headers.
    v.push((
        LAN,
        ip(
            "192.0.2.2",
            "198.51.100.9",
            132,
            64,
            vec![0x13, 0x88, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 4],
            None,
        ),
    ));
    v.push((
        LAN,
        ip(
            "192.0.2.2",
            "198.51.100.9",
            33,
            64,
            vec![0x13, 0x88, 0, 80, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            None,
        ),
    ));
    let mut ext = vec![17, 0, 1, 4, 0, 0, 0, 0];
    ext.extend_from_slice(&udp("2001:db8:1::2", 5004, "2001:db8:2::9", 53, b"e")[40..]);
    v.push((LAN, ip("2001:db8:1::2", "2001:db8:2::9", 60, 64, ext, None)));
    v
}

/// Byte offsets of the length fields of a packet: its IP length, IPv4 header length, the
/// TCP data offset, the UDP length, and a quoted IP header's length in an ICMP error.
fn length_fields(p: &[u8]) -> Vec<(usize, u16, bool)> {
    // (offset, the field's true value, is it a 16-bit field)
    let mut f = Vec::new();
    let (l4, proto) = match p[0] >> 4 {
        4 => {
            f.push((2, u16::from_be_bytes([p[2], p[3]]), true));
            f.push((0, u16::from(p[0] & 15), false));
            (usize::from(p[0] & 15) * 4, p[9])
        }
        _ => {
            f.push((4, u16::from_be_bytes([p[4], p[5]]), true));
            if p[6] == 60 {
                f.push((41, u16::from(p[41]), false));
                (48, p[40])
            } else {
                (40, p[6])
            }
        }
    };
    match proto {
        6 => f.push((l4 + 12, u16::from(p[l4 + 12] >> 4), false)),
        17 => f.push((l4 + 4, u16::from_be_bytes([p[l4 + 4], p[l4 + 5]]), true)),
        1 if p[l4] == 3 => f.push((
            l4 + 8 + 2,
            u16::from_be_bytes([p[l4 + 10], p[l4 + 11]]),
            true,
        )),
        58 if p[l4] == 1 => f.push((
            l4 + 8 + 4,
            u16::from_be_bytes([p[l4 + 12], p[l4 + 13]]),
            true,
        )),
        _ => {}
    }
    f
}

#[test]
fn every_length_field_at_every_nearby_value_never_panics_nor_leaks_bytes() {
    let mut e = engine();
    let mut now = 1u64;
    let mut fed = 0u32;
    for (iface, t) in templates() {
        for (at, truth, wide) in length_fields(&t) {
            // Every value from 0 to 24 past the truth, and the extremes.
            let values: Vec<u16> = if wide {
                (0..=truth.saturating_add(24))
                    .chain([0x7fff, 0xffff])
                    .collect()
            } else {
                (0..=15).collect()
            };
            for v in values {
                for trailing in [0usize, 1, 7, 40] {
                    let mut p = t.clone();
                    if wide {
                        p[at..at + 2].copy_from_slice(&v.to_be_bytes());
                    } else if at == 0 {
                        p[0] = 0x40 | v as u8;
                    } else if at == 41 {
                        p[41] = v as u8;
                    } else {
                        p[at] = (p[at] & 0x0f) | ((v as u8) << 4);
                    }
                    p.extend(std::iter::repeat_n(0xa5, trailing));
                    fix_v4_header_checksum(&mut p);
                    now += 1;
                    let what =
                        format!("template {:02x?}.. field @{at} = {v}, +{trailing}", &t[..4]);
                    e.handle_packet(
                        Instant::from_nanos(now * 1_000_000),
                        iface,
                        PacketBuf::from_slice(&p),
                    );
                    assert_eq!(e.panics(), 0, "{what}: internal error");
                    drain_checked(&mut e, &what);
                    fed += 1;
                }
            }
        }
    }
    assert!(fed > 5_000, "the sweep covered {fed} packets");
    assert!(e.stats().packets_out > 0, "some of them were forwarded");
}
