//! Offloaded packets (`Engine::handle_packet_offload`, what a TUN device with IFF_VNET_HDR
//! hands over): a TCP super-packet with a partial checksum crosses masquerade once, keeps its
//! offload header, and its checksum completes to the right value for the translated
//! addresses; the egress MTU applies per segment; a partial-checksum SYN gets its MSS clamped.

use conntrack::{Instant, PacketBuf};
use router::config::Config;
use router::engine::{Engine, Transmit};
use router::offload::{Offload, GSO_TCPV4, GSO_TCPV6};
use rules::{Family, Ruleset};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use tests::flags::*;
use tests::{tcp, tcp_opts};
use wire::checksum;

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
-A POSTROUTING -o wan0 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i lan0 -o wan0 -j ACCEPT
COMMIT
";

const RULES6: &str = "\
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i lan0 -o wan0 -j ACCEPT
COMMIT
";

fn engine(wan_mtu: u32) -> Engine {
    let cfg = format!(
        r#"
[[interface]]
name = "lan0"
kind = "tun"
mtu = 1500
addresses = ["192.0.2.1/24", "2001:db8:1::1/64"]
[[interface]]
name = "wan0"
kind = "tun"
mtu = {wan_mtu}
addresses = ["198.51.100.1/24", "2001:db8:2::1/64"]
[[route]]
prefix = "0.0.0.0/0"
interface = "wan0"
via = "198.51.100.254"
[[route]]
prefix = "::/0"
interface = "wan0"
via = "2001:db8:2::fe"
"#
    );
    let cfg = Config::parse(&cfg, "t.toml", Path::new(".")).unwrap();
    let r4 = Ruleset::parse(RULES4, "t4.rules", Family::V4).unwrap();
    let r6 = Ruleset::parse(RULES6, "t6.rules", Family::V6).unwrap();
    Engine::with_rules(&cfg, 7, r4, r6).unwrap()
}

fn out(e: &mut Engine) -> Vec<Transmit> {
    std::iter::from_fn(|| e.poll_transmit()).collect()
}

fn addrs(p: &[u8]) -> (IpAddr, IpAddr, usize) {
    if p[0] >> 4 == 4 {
        let a = |i: usize| IpAddr::V4(Ipv4Addr::new(p[i], p[i + 1], p[i + 2], p[i + 3]));
        (a(12), a(16), usize::from(p[0] & 15) * 4)
    } else {
        let a = |i: usize| IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&p[i..i + 16]).unwrap()));
        (a(8), a(24), 40)
    }
}

fn pseudo(p: &[u8]) -> u32 {
    let (s, d, l4) = addrs(p);
    let len = (p.len() - l4) as u32;
    match (s, d) {
        (IpAddr::V4(s), IpAddr::V4(d)) => checksum::pseudo_header_v4(s, d, 6, len),
        (IpAddr::V6(s), IpAddr::V6(d)) => checksum::pseudo_header_v6(&s, &d, 6, len),
        _ => unreachable!(),
    }
}

/// Turns a complete TCP checksum into the partial one an offloading sender writes.
fn make_partial(p: &mut [u8]) {
    let (_, _, l4) = addrs(p);
    let partial = !checksum::fold(pseudo(p));
    p[l4 + 16..l4 + 18].copy_from_slice(&partial.to_be_bytes());
}

/// Completes a partial checksum as the segmenting side does and checks the result against
/// the packet's (possibly translated) addresses.
fn completes_correctly(p: &[u8]) -> bool {
    let (_, _, l4) = addrs(p);
    let mut seg = p[l4..].to_vec();
    let done = checksum::fold(checksum::sum(&seg));
    seg[16..18].copy_from_slice(&done.to_be_bytes());
    checksum::fold(checksum::combine(pseudo(p), checksum::sum(&seg))) == 0
}

fn handshake(e: &mut Engine, c: &str, s: &str, nat: &str) {
    let now = Instant::from_secs(1);
    e.handle_packet(
        now,
        0,
        PacketBuf::from_slice(&tcp(c, 40000, s, 443, 100, 0, SYN, b"")),
    );
    e.handle_packet(
        now,
        1,
        PacketBuf::from_slice(&tcp(s, 443, nat, 40000, 900, 101, SYN | ACK, b"")),
    );
    e.handle_packet(
        now,
        0,
        PacketBuf::from_slice(&tcp(c, 40000, s, 443, 101, 901, ACK, b"")),
    );
    assert_eq!(out(e).len(), 3, "the handshake crosses");
}

fn gso(v6: bool, hdr_len: u16, gso_size: u16) -> Offload {
    Offload {
        needs_csum: true,
        data_valid: false,
        gso_type: if v6 { GSO_TCPV6 } else { GSO_TCPV4 },
        hdr_len,
        gso_size,
        csum_start: if v6 { 40 } else { 20 },
        csum_offset: 16,
    }
}

#[test]
fn a_super_packet_crosses_masquerade_once_with_its_header() {
    let mut e = engine(1500);
    let (c, s) = ("192.0.2.2", "203.0.113.7");
    handshake(&mut e, c, s, "198.51.100.1");
    let payload: Vec<u8> = (0..14_480u32).map(|i| (i * 13) as u8).collect();
    let mut p = tcp(c, 40000, s, 443, 101, 901, ACK | PSH, &payload);
    make_partial(&mut p);
    let o = gso(false, 40, 1448);
    e.handle_packet_offload(Instant::from_secs(1), 0, PacketBuf::from_slice(&p), o);
    let sent = out(&mut e);
    assert_eq!(sent.len(), 1, "one super-packet in, one out");
    let t = &sent[0];
    assert_eq!(t.offload, Some(o), "the header leaves with the packet");
    let q = t.packet.as_slice();
    assert_eq!(q.len(), p.len());
    assert_eq!(addrs(q).0, "198.51.100.1".parse::<IpAddr>().unwrap());
    assert_eq!(q[8], 63, "TTL decremented");
    assert!(
        completes_correctly(q),
        "partial checksum updated for the NAT address"
    );
    assert_eq!(&q[40..], &payload[..], "payload untouched");
    assert!(e.ct_stats().contains("gso_in=1 "), "{}", e.ct_stats());

    // The reply direction, un-NATed, also offloaded.
    let mut r = tcp(
        s,
        443,
        "198.51.100.1",
        40000,
        901,
        14_581,
        ACK | PSH,
        &payload,
    );
    make_partial(&mut r);
    e.handle_packet_offload(Instant::from_secs(1), 1, PacketBuf::from_slice(&r), o);
    let back = out(&mut e);
    assert_eq!(back.len(), 1);
    assert_eq!(
        addrs(back[0].packet.as_slice()).1,
        c.parse::<IpAddr>().unwrap()
    );
    assert!(completes_correctly(back[0].packet.as_slice()));

    // A packet the router makes meanwhile carries no offload header.
    let junk = tcp(s, 443, "198.51.100.1", 1, 1, 1, ACK, b"");
    e.handle_packet(Instant::from_secs(1), 1, PacketBuf::from_slice(&junk));
    assert!(out(&mut e).iter().all(|t| t.offload.is_none()));
}

#[test]
fn the_egress_mtu_applies_per_segment() {
    // 1400-byte uplink: segments of 40 + 1448 bytes do not fit; with DF set the packet is
    // refused with Fragmentation Needed naming 1400. Segments of 40 + 1360 pass.
    let mut e = engine(1400);
    let (c, s) = ("192.0.2.2", "203.0.113.7");
    handshake(&mut e, c, s, "198.51.100.1");
    let payload = vec![7u8; 4000];
    let mut p = tcp(c, 40000, s, 443, 101, 901, ACK, &payload);
    p[6] |= 0x40; // DF
    p[10..12].fill(0);
    let hc = checksum::data(&p[..20]);
    p[10..12].copy_from_slice(&hc.to_be_bytes());
    make_partial(&mut p);
    e.handle_packet_offload(
        Instant::from_secs(1),
        0,
        PacketBuf::from_slice(&p),
        gso(false, 40, 1448),
    );
    let sent = out(&mut e);
    assert_eq!(sent.len(), 1, "an ICMP error instead of the packet");
    let icmp = sent[0].packet.as_slice();
    assert_eq!((icmp[9], icmp[20], icmp[21]), (1, 3, 4));
    assert_eq!(u16::from_be_bytes([icmp[26], icmp[27]]), 1400);
    assert!(sent[0].offload.is_none());

    e.handle_packet_offload(
        Instant::from_secs(1),
        0,
        PacketBuf::from_slice(&p),
        gso(false, 40, 1360),
    );
    let sent = out(&mut e);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].packet.len(), p.len());
    assert!(completes_correctly(sent[0].packet.as_slice()));
}

#[test]
fn ipv6_super_packets_and_partial_syns() {
    let mut e = engine(1400);
    let (c, s) = ("2001:db8:1::2", "2001:db8:3::7");
    // A SYN with a partial checksum (no GSO): its MSS is clamped to 1400 - 60 and the partial
    // checksum stays right.
    let mut syn = tcp_opts(
        c,
        40000,
        s,
        443,
        100,
        0,
        SYN,
        64800,
        &[2, 4, 0x05, 0xa0],
        b"",
    );
    make_partial(&mut syn);
    let o = Offload {
        needs_csum: true,
        csum_start: 40,
        csum_offset: 16,
        ..Offload::default()
    };
    e.handle_packet_offload(Instant::from_secs(1), 0, PacketBuf::from_slice(&syn), o);
    let sent = out(&mut e);
    assert_eq!(sent.len(), 1);
    let q = sent[0].packet.as_slice();
    assert_eq!(u16::from_be_bytes([q[62], q[63]]), 1340);
    assert!(completes_correctly(q));
    e.handle_packet(
        Instant::from_secs(1),
        1,
        PacketBuf::from_slice(&tcp(s, 443, c, 40000, 900, 101, SYN | ACK, b"")),
    );
    e.handle_packet(
        Instant::from_secs(1),
        0,
        PacketBuf::from_slice(&tcp(c, 40000, s, 443, 101, 901, ACK, b"")),
    );
    out(&mut e);
    let mut p = tcp(c, 40000, s, 443, 101, 901, ACK, &vec![1u8; 6000]);
    make_partial(&mut p);
    e.handle_packet_offload(
        Instant::from_secs(1),
        0,
        PacketBuf::from_slice(&p),
        gso(true, 60, 1280),
    );
    let sent = out(&mut e);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].packet.len(), p.len());
    assert_eq!(sent[0].packet.as_slice()[7], 63);
    assert!(completes_correctly(sent[0].packet.as_slice()));
    // Segments of 60 + 1400 do not fit a 1400-byte link: Packet Too Big.
    e.handle_packet_offload(
        Instant::from_secs(1),
        0,
        PacketBuf::from_slice(&p),
        gso(true, 60, 1400),
    );
    let sent = out(&mut e);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].packet.as_slice()[6], sent[0].packet.as_slice()[40]),
        (58, 2)
    );
}

/// Arbitrary offload headers on arbitrary (and on valid) packets never panic the engine, and
/// whatever it sends carries the packet's own header or none.
#[test]
fn arbitrary_offload_headers_never_panic() {
    let mut e = engine(1400);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (c, s) = ("192.0.2.2", "203.0.113.7");
    handshake(&mut e, c, s, "198.51.100.1");
    for i in 0..20_000u32 {
        let r = rnd();
        let o = Offload::parse(&r.to_le_bytes()[..].repeat(2)[..10]).unwrap_or_default();
        let mut p = match i % 4 {
            0 => tcp(
                c,
                40000,
                s,
                443,
                101,
                901,
                ACK,
                &vec![0x5a; (r % 3000) as usize],
            ),
            1 => tcp_opts(
                c,
                40001 + (i % 50) as u16,
                s,
                80,
                1,
                0,
                SYN,
                65535,
                &[2, 4, 5, 180],
                b"",
            ),
            2 => tcp("2001:db8:1::2", 1, "2001:db8:3::7", 2, 1, 0, SYN, b""),
            _ => (0..(r % 120) as usize).map(|_| rnd() as u8).collect(),
        };
        if i % 7 == 0 && p.len() > 30 {
            let at = (rnd() as usize) % p.len();
            p[at] ^= rnd() as u8;
        }
        e.handle_packet_offload(
            Instant::from_secs(2),
            (i % 2) as usize,
            PacketBuf::from_slice(&p),
            o,
        );
        for t in out(&mut e) {
            assert!(t.offload.is_none() || t.offload == Some(o));
        }
    }
}
