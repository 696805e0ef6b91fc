//! Simulator scenarios for the core engine: a stateful gateway with real
//! packets (built by the tests, checksums correct), checked with the
//! project's own parser and, where installed, with tshark.

use tests::flags::*;
use tests::*;
use wire::{IcmpPacket, Ipv4Packet, Ipv6Packet, TcpPacket};

const RULES_V4: &str = "\
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type echo-request -j ACCEPT
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -i lan0 -o wan0 -j ACCEPT
-A FORWARD -i wan0 -o lan0 -p tcp -m tcp --dport 22 -j REJECT --reject-with tcp-reset
-A FORWARD -i wan0 -o lan0 -p udp -m udp --dport 7 -j REJECT --reject-with icmp-port-unreachable
COMMIT
";

const RULES_V6: &str = "\
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type echo-request -j ACCEPT
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -i lan0 -o wan0 -j ACCEPT
COMMIT
";

fn at(iface: &'static str, at: f64, packet: Vec<u8>) -> Arrival {
    Arrival { iface, at, packet }
}

const C: &str = "192.0.2.2";
const S: &str = "203.0.113.10";

fn handshake() -> Vec<Arrival> {
    vec![
        at("lan0", 0.0, tcp(C, 40000, S, 80, 1000, 0, SYN, b"")),
        at(
            "wan0",
            0.01,
            tcp(S, 80, C, 40000, 5000, 1001, SYN | ACK, b""),
        ),
        at("lan0", 0.02, tcp(C, 40000, S, 80, 1001, 5001, ACK, b"")),
        at(
            "lan0",
            0.03,
            tcp(
                C,
                40000,
                S,
                80,
                1001,
                5001,
                ACK | PSH,
                b"GET / HTTP/1.0\r\n\r\n",
            ),
        ),
        at(
            "wan0",
            0.04,
            tcp(
                S,
                80,
                C,
                40000,
                5001,
                1019,
                ACK | PSH,
                b"HTTP/1.0 200 OK\r\n\r\nhi",
            ),
        ),
    ]
}

#[test]
fn outbound_flow_and_replies_pass_with_ttl_decremented() {
    let sc = Scenario::gateway("outbound", RULES_V4, RULES_V6);
    let input = handshake();
    let out = sc.run(&input, None);
    let wan = out.on("wan0");
    let lan = out.on("lan0");
    assert_eq!(wan.len(), 3, "SYN, ACK and data leave on wan0");
    assert_eq!(lan.len(), 2, "SYN-ACK and data come back on lan0");
    for (sent, orig) in wan.iter().zip([&input[0], &input[2], &input[3]]) {
        // Byte-identical except TTL and the header checksum.
        let p = Ipv4Packet::new_checked(&sent[..]).unwrap();
        assert_eq!(p.ttl(), 63);
        assert!(p.verify_checksum());
        assert_eq!(sent[20..], orig.packet[20..]);
        assert_eq!(sent[..8], orig.packet[..8]);
    }
    assert!(out.conntrack.contains("ESTABLISHED"), "{}", out.conntrack);
    assert!(out.conntrack.contains("[ASSURED]"), "{}", out.conntrack);
    assert!(
        out.conntrack
            .contains("src=192.0.2.2 dst=203.0.113.10 sport=40000 dport=80 packets=3"),
        "{}",
        out.conntrack
    );
    assert_eq!(
        out.events_with(&["\"type\":\"new\"", "\"sport\":40000"])
            .len(),
        1
    );
    assert!(
        out.events_with(&["\"type\":\"drop\""]).is_empty(),
        "{:?}",
        out.events
    );
}

#[test]
fn unsolicited_inbound_is_dropped_by_the_policy_and_logged() {
    let sc = Scenario::gateway("inbound", RULES_V4, RULES_V6);
    let out = sc.run(
        &[at("wan0", 0.0, tcp(S, 5555, C, 8080, 1, 0, SYN, b""))],
        None,
    );
    assert!(out.on("lan0").is_empty());
    let drops = out.events_with(&[
        "\"type\":\"drop\"",
        "\"hook\":\"FORWARD\"",
        "\"chain\":\"FORWARD\"",
        "\"rule\":0",
    ]);
    assert_eq!(drops.len(), 1, "{:?}", out.events);
    assert!(drops[0].contains("policy: drop"));
    assert!(
        out.stats.contains("drop reason=\"policy: drop\" count=1"),
        "{}",
        out.stats
    );
    assert!(
        out.conntrack.is_empty(),
        "a dropped first packet creates no connection"
    );
}

#[test]
fn a_mid_stream_packet_from_outside_without_connection_is_not_let_in() {
    let sc = Scenario::gateway("midstream", RULES_V4, RULES_V6);
    // An ACK from outside: conntrack may pick it up as NEW, but NEW from wan is not allowed.
    let out = sc.run(
        &[at("wan0", 0.0, tcp(S, 80, C, 40000, 77, 88, ACK, b"x"))],
        None,
    );
    assert!(out.on("lan0").is_empty());
    assert_eq!(out.events_with(&["\"type\":\"drop\""]).len(), 1);
}

#[test]
fn icmp_error_for_a_tracked_flow_is_related_and_unknown_ones_are_invalid() {
    let sc = Scenario::gateway("related", RULES_V4, RULES_V6);
    let q = udp(C, 53000, S, 53, b"query");
    let mut sent_q = q.clone();
    sent_q[8] -= 1; // as it left the router (the quote carries the TTL it had)
    let err = icmp_error("198.51.100.254", &sent_q, 3, 3);
    let stray = icmp_error("198.51.100.254", &udp(C, 53001, S, 53, b"other"), 3, 3);
    let out = sc.run(
        &[
            at("lan0", 0.0, q),
            at("wan0", 0.1, err.clone()),
            at("wan0", 0.2, stray),
        ],
        None,
    );
    let lan = out.on("lan0");
    assert_eq!(
        lan.len(),
        1,
        "only the related error is forwarded: {:?}",
        out.events
    );
    assert_eq!(lan[0][20..], err[20..]);
    let invalid = out.events_with(&["\"type\":\"drop\"", "\"chain\":\"FORWARD\"", "\"rule\":2"]);
    assert_eq!(
        invalid.len(),
        1,
        "the stray error hits the INVALID rule: {:?}",
        out.events
    );
}

#[test]
fn ping_to_the_router_is_answered_v4_and_v6() {
    let sc = Scenario::gateway("ping", RULES_V4, RULES_V6);
    let out = sc.run(
        &[
            at("lan0", 0.0, echo(C, "192.0.2.1", true, 0x42, 1, 64)),
            at(
                "lan0",
                0.1,
                echo("2001:db8:1::2", "2001:db8:1::1", true, 0x43, 1, 64),
            ),
            // The router's wan address answers from the lan side too.
            at("lan0", 0.2, echo(C, "198.51.100.1", true, 0x44, 1, 64)),
        ],
        None,
    );
    let lan = out.on("lan0");
    assert_eq!(lan.len(), 3, "{:?}", out.events);
    let v4 = Ipv4Packet::new_checked(&lan[0][..]).unwrap();
    assert_eq!(v4.src_addr().to_string(), "192.0.2.1");
    let m = IcmpPacket::new_checked(v4.payload()).unwrap();
    assert!(m.is_echo_reply() && m.verify_checksum());
    assert_eq!((m.echo_ident(), m.echo_seq_no()), (0x42, 1));
    let v6 = Ipv6Packet::new_checked(&lan[1][..]).unwrap();
    assert_eq!(v6.src_addr().to_string(), "2001:db8:1::1");
    assert_eq!(v6.payload()[0], 129);
    assert!(out.conntrack.contains("icmp"), "{}", out.conntrack);
}

#[test]
fn ttl_expiry_is_answered_with_time_exceeded() {
    let sc = Scenario::gateway("ttl", RULES_V4, RULES_V6);
    let probe = tests::ip(C, S, 17, 1, vec![0x9c, 0x40, 0x82, 0x9a, 0, 8, 0, 0], None);
    let probe6 = echo("2001:db8:1::2", "2001:db8:9::9", true, 9, 9, 1);
    let out = sc.run(
        &[at("lan0", 0.0, probe.clone()), at("lan0", 0.1, probe6)],
        None,
    );
    assert!(out.on("wan0").is_empty());
    let lan = out.on("lan0");
    assert_eq!(lan.len(), 2, "{:?}", out.events);
    let p = Ipv4Packet::new_checked(&lan[0][..]).unwrap();
    assert_eq!(p.src_addr().to_string(), "192.0.2.1");
    let m = IcmpPacket::new_checked(p.payload()).unwrap();
    assert_eq!((m.msg_type(), m.code()), (11, 0));
    assert_eq!(
        &m.data()[..28],
        &probe[..28],
        "the quote is the packet as received"
    );
    let p6 = Ipv6Packet::new_checked(&lan[1][..]).unwrap();
    assert_eq!(p6.payload()[0], 3, "ICMPv6 Time Exceeded");
    assert_eq!(out.events_with(&["ip: ttl exceeded"]).len(), 2);
}

#[test]
fn reject_sends_rst_and_port_unreachable() {
    let sc = Scenario::gateway("reject", RULES_V4, RULES_V6);
    let syn = tcp(S, 6000, C, 22, 100, 0, SYN, b"");
    let dgram = udp(S, 6001, C, 7, b"echo?");
    let out = sc.run(&[at("wan0", 0.0, syn), at("wan0", 0.1, dgram)], None);
    let wan = out.on("wan0");
    assert_eq!(wan.len(), 2, "{:?}", out.events);
    let rst = Ipv4Packet::new_checked(&wan[0][..]).unwrap();
    assert_eq!(
        rst.src_addr().to_string(),
        C,
        "the RST appears to come from the target"
    );
    let t = TcpPacket::new_checked(rst.payload()).unwrap();
    assert!(t.rst() && t.ack());
    assert_eq!(t.ack_number(), 101);
    let un = Ipv4Packet::new_checked(&wan[1][..]).unwrap();
    let m = IcmpPacket::new_checked(un.payload()).unwrap();
    assert_eq!((m.msg_type(), m.code()), (3, 3));
    assert!(out.on("lan0").is_empty());
}

#[test]
fn ipv6_forwarding_is_stateful_too() {
    let sc = Scenario::gateway("v6", RULES_V4, RULES_V6);
    let c6 = "2001:db8:1::2";
    let s6 = "2001:db8:5::80";
    let out = sc.run(
        &[
            at("lan0", 0.0, tcp(c6, 41000, s6, 443, 10, 0, SYN, b"")),
            at("wan0", 0.1, tcp(s6, 443, c6, 41000, 99, 11, SYN | ACK, b"")),
            at("wan0", 0.2, tcp(s6, 444, c6, 41000, 99, 0, SYN, b"")),
        ],
        None,
    );
    assert_eq!(out.on("wan0").len(), 1);
    let lan = out.on("lan0");
    assert_eq!(lan.len(), 1, "only the SYN-ACK gets in");
    assert_eq!(
        Ipv6Packet::new_checked(&lan[0][..]).unwrap().hop_limit(),
        63
    );
    assert!(out.conntrack.contains("SYN_RECV"), "{}", out.conntrack);
}

#[test]
fn unreplied_udp_expires_after_its_timeout() {
    let sc = Scenario::gateway("expiry", RULES_V4, RULES_V6);
    let out = sc.run(&[at("lan0", 0.0, udp(C, 5000, S, 5001, b"x"))], Some(31.0));
    assert!(out.conntrack.is_empty(), "{}", out.conntrack);
    let d = out.events_with(&["\"type\":\"destroy\"", "\"reason\":\"timeout\""]);
    assert_eq!(d.len(), 1, "{:?}", out.events);
    // Destroyed at 30 s (unreplied UDP), reported by the next GC tick.
    let t: u64 = d[0]
        .split("\"time\":")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let secs = (t - EPOCH_NS) as f64 / 1e9;
    assert!((30.0..30.2).contains(&secs), "destroyed at {secs}");
}

#[test]
fn output_is_byte_for_byte_deterministic() {
    let mut input = handshake();
    input.push(at("wan0", 0.5, tcp(S, 1, C, 2, 3, 0, SYN, b"")));
    input.push(at("lan0", 0.6, echo(C, "192.0.2.1", true, 1, 1, 64)));
    let read_all = |dir: &std::path::Path| {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|p| {
                (
                    p.file_name().unwrap().to_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    let a = Scenario::gateway("det-a", RULES_V4, RULES_V6);
    let oa = a.run(&input, Some(200.0));
    let b = Scenario::gateway("det-b", RULES_V4, RULES_V6);
    let ob = b.run(&input, Some(200.0));
    assert_eq!(read_all(&oa.out_dir), read_all(&ob.out_dir));
}

#[test]
fn tshark_reads_the_output_pcaps() {
    if !require(tshark_available(), "tshark") {
        return;
    }
    let sc = Scenario::gateway("tshark", RULES_V4, RULES_V6);
    let out = sc.run(&handshake(), None);
    let lines = tshark_fields(
        &out.out_dir.join("wan0.pcap"),
        "tcp",
        &["ip.ttl", "tcp.srcport", "tcp.flags.syn"],
    );
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with("63\t40000\t1"), "{lines:?}");
    let lines = tshark_fields(
        &out.out_dir.join("lan0.pcap"),
        "tcp.len > 0",
        &["ip.ttl", "tcp.srcport", "tcp.len"],
    );
    assert_eq!(lines, vec!["63\t80\t21".to_string()]);
}
