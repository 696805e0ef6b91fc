//! NAT scenarios in the simulator: masquerade, port forward (DNAT), ICMP
//! errors translated inside, echo identifiers, hairpin, exhaustion.

use tests::flags::*;
use tests::*;
use wire::{IcmpPacket, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket};

const FILTER: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -i lan0 -j ACCEPT
-A FORWARD -i wan0 -o lan0 -m conntrack --ctstate NEW -d 192.0.2.2/32 -p tcp -m tcp --dport 80 -j ACCEPT
COMMIT
";

fn rules_v4(nat: &str) -> String {
    format!("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n{nat}COMMIT\n{FILTER}")
}

const MASQ: &str = "-A POSTROUTING -o wan0 -j MASQUERADE\n";
const FWD: &str =
    "-A PREROUTING -i wan0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.0.2.2:80\n";

fn at(iface: &'static str, at: f64, packet: Vec<u8>) -> Arrival {
    Arrival { iface, at, packet }
}

const C: &str = "192.0.2.2";
const S: &str = "203.0.113.10";
const PUB: &str = "198.51.100.1";

fn checks_ok(p: &[u8]) {
    let ip = Ipv4Packet::new_checked(p).unwrap();
    assert!(ip.verify_checksum(), "IP checksum");
    match ip.protocol() {
        6 => assert!(
            TcpPacket::new_checked(ip.payload())
                .unwrap()
                .verify_checksum_v4(ip.src_addr(), ip.dst_addr()),
            "TCP checksum"
        ),
        17 => assert!(
            UdpPacket::new_checked(ip.payload())
                .unwrap()
                .verify_checksum_v4(ip.src_addr(), ip.dst_addr()),
            "UDP checksum"
        ),
        1 => assert!(
            IcmpPacket::new_checked(ip.payload())
                .unwrap()
                .verify_checksum(),
            "ICMP checksum"
        ),
        _ => {}
    }
}

#[test]
fn masquerade_rewrites_both_directions_with_valid_checksums() {
    let sc = Scenario::gateway("masq", &rules_v4(MASQ), "");
    let out = sc.run(
        &[
            at("lan0", 0.0, tcp(C, 40000, S, 80, 1000, 0, SYN, b"")),
            at(
                "wan0",
                0.01,
                tcp(S, 80, PUB, 40000, 5000, 1001, SYN | ACK, b""),
            ),
            at(
                "lan0",
                0.02,
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
            at("lan0", 0.03, udp(C, 5353, S, 53, b"query")),
            at("wan0", 0.04, udp(S, 53, PUB, 5353, b"answer")),
        ],
        None,
    );
    let wan = out.on("wan0");
    assert_eq!(wan.len(), 3, "{:?}", out.events);
    for p in &wan {
        let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert_eq!(
            ip.src_addr().to_string(),
            PUB,
            "the server sees the NAT address"
        );
        checks_ok(p);
    }
    let lan = out.on("lan0");
    assert_eq!(lan.len(), 2, "{:?}", out.events);
    for p in &lan {
        let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert_eq!(ip.dst_addr().to_string(), C, "replies are translated back");
        checks_ok(p);
    }
    assert!(
        out.conntrack
            .contains(&format!("src={S} dst={PUB} sport=80 dport=40000")),
        "{}",
        out.conntrack
    );
}

#[test]
fn port_forward_reaches_the_lan_server_and_replies_come_from_the_public_port() {
    let sc = Scenario::gateway("dnat", &rules_v4(FWD), "");
    let out = sc.run(
        &[
            at("wan0", 0.0, tcp(S, 7000, PUB, 8080, 1, 0, SYN, b"")),
            at("lan0", 0.01, tcp(C, 80, S, 7000, 900, 2, SYN | ACK, b"")),
        ],
        None,
    );
    let lan = out.on("lan0");
    assert_eq!(lan.len(), 1, "{:?}", out.events);
    let ip = Ipv4Packet::new_checked(&lan[0][..]).unwrap();
    assert_eq!(ip.dst_addr().to_string(), C);
    assert_eq!(TcpPacket::new_checked(ip.payload()).unwrap().dst_port(), 80);
    checks_ok(&lan[0]);
    let wan = out.on("wan0");
    assert_eq!(wan.len(), 1);
    let ip = Ipv4Packet::new_checked(&wan[0][..]).unwrap();
    assert_eq!(ip.src_addr().to_string(), PUB);
    assert_eq!(
        TcpPacket::new_checked(ip.payload()).unwrap().src_port(),
        8080
    );
    checks_ok(&wan[0]);
}

#[test]
fn icmp_error_for_a_masqueraded_flow_is_translated_inside_and_out() {
    let sc = Scenario::gateway("natrel", &rules_v4(MASQ), "");
    let q = udp(C, 5353, S, 53, b"query");
    let run1 = sc.run(&[at("lan0", 0.0, q.clone())], None);
    let sent = run1.on("wan0").remove(0);
    let err = icmp_error("198.51.100.254", &sent, 3, 3);
    let out = sc.run(&[at("lan0", 0.0, q.clone()), at("wan0", 0.1, err)], None);
    let lan = out.on("lan0");
    assert_eq!(lan.len(), 1, "{:?}", out.events);
    let ip = Ipv4Packet::new_checked(&lan[0][..]).unwrap();
    assert_eq!(ip.dst_addr().to_string(), C);
    checks_ok(&lan[0]);
    let m = IcmpPacket::new_checked(ip.payload()).unwrap();
    let inner = m.data();
    assert_eq!(
        &inner[12..16],
        &[192, 0, 2, 2],
        "quoted source translated back"
    );
    assert_eq!(
        u16::from_be_bytes([inner[20], inner[21]]),
        5353,
        "quoted port translated back"
    );
    let inner_ip = Ipv4Packet::new_unchecked(&inner[..20]);
    assert!(
        inner_ip.verify_checksum(),
        "quoted IP header checksum fixed"
    );
}

#[test]
fn echo_identifiers_are_translated_like_ports() {
    let rules = rules_v4("-A POSTROUTING -o wan0 -j SNAT --to-source 198.51.100.1\n");
    let sc = Scenario::gateway("echo", &rules, "");
    // Two LAN hosts ping with the same identifier: the second gets a new one.
    let out = sc.run(
        &[
            at("lan0", 0.0, echo(C, S, true, 77, 1, 64)),
            at("lan0", 0.1, echo("192.0.2.3", S, true, 77, 1, 64)),
        ],
        None,
    );
    let wan = out.on("wan0");
    assert_eq!(wan.len(), 2);
    let id = |p: &[u8]| {
        IcmpPacket::new_checked(Ipv4Packet::new_checked(p).unwrap().payload())
            .unwrap()
            .echo_ident()
    };
    assert_eq!(id(&wan[0]), 77);
    assert_ne!(id(&wan[1]), 77);
    for p in &wan {
        checks_ok(p);
    }
    let reply_id = id(&wan[1]);
    let out = sc.run(
        &[
            at("lan0", 0.0, echo(C, S, true, 77, 1, 64)),
            at("lan0", 0.1, echo("192.0.2.3", S, true, 77, 1, 64)),
            at("wan0", 0.2, echo(S, PUB, false, reply_id, 1, 64)),
        ],
        None,
    );
    let lan = out.on("lan0");
    assert_eq!(lan.len(), 1);
    let ip = Ipv4Packet::new_checked(&lan[0][..]).unwrap();
    assert_eq!(ip.dst_addr().to_string(), "192.0.2.3");
    assert_eq!(id(&lan[0]), 77);
    checks_ok(&lan[0]);
}

#[test]
fn hairpin_nat_lets_a_lan_client_use_the_public_address() {
    let nat = "-A PREROUTING -d 198.51.100.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.0.2.2:80\n\
               -A POSTROUTING -s 192.0.2.0/24 -d 192.0.2.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE\n\
               -A POSTROUTING -o wan0 -j MASQUERADE\n";
    let sc = Scenario::gateway("hairpin", &rules_v4(nat), "");
    let out = sc.run(
        &[
            at(
                "lan0",
                0.0,
                tcp("192.0.2.3", 41000, PUB, 8080, 1, 0, SYN, b""),
            ),
            at(
                "lan0",
                0.01,
                tcp(C, 80, "192.0.2.1", 41000, 50, 2, SYN | ACK, b""),
            ),
        ],
        None,
    );
    let lan = out.on("lan0");
    assert_eq!(lan.len(), 2, "{:?}", out.events);
    let to_server = Ipv4Packet::new_checked(&lan[0][..]).unwrap();
    assert_eq!(to_server.dst_addr().to_string(), C);
    assert_eq!(
        to_server.src_addr().to_string(),
        "192.0.2.1",
        "masqueraded to the router's LAN address"
    );
    let to_client = Ipv4Packet::new_checked(&lan[1][..]).unwrap();
    assert_eq!(to_client.dst_addr().to_string(), "192.0.2.3");
    assert_eq!(to_client.src_addr().to_string(), PUB);
    assert_eq!(
        TcpPacket::new_checked(to_client.payload())
            .unwrap()
            .src_port(),
        8080
    );
    checks_ok(&lan[0]);
    checks_ok(&lan[1]);
}

#[test]
fn port_exhaustion_is_a_counted_drop() {
    let rules = rules_v4("-A POSTROUTING -o wan0 -p udp -j SNAT --to-source 198.51.100.1:5000\n");
    let sc = Scenario::gateway("exhaust", &rules, "");
    let out = sc.run(
        &[
            at("lan0", 0.0, udp(C, 1111, S, 53, b"a")),
            at("lan0", 0.1, udp("192.0.2.3", 2222, S, 53, b"b")),
        ],
        None,
    );
    assert_eq!(out.on("wan0").len(), 1);
    assert!(
        out.stats
            .contains("drop reason=\"nat: no free port\" count=1"),
        "{}",
        out.stats
    );
}

#[test]
fn ipv6_masquerade() {
    let v6 = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o wan0 -j MASQUERADE\nCOMMIT\n";
    let sc = Scenario::gateway("v6nat", "", v6);
    let out = sc.run(
        &[
            at(
                "lan0",
                0.0,
                udp("2001:db8:1::2", 4000, "2001:db8:5::1", 53, b"q"),
            ),
            at(
                "wan0",
                0.1,
                udp("2001:db8:5::1", 53, "2001:db8:2::1", 4000, b"r"),
            ),
        ],
        None,
    );
    let wan = out.on("wan0");
    assert_eq!(wan.len(), 1);
    let ip = Ipv6Packet::new_checked(&wan[0][..]).unwrap();
    assert_eq!(ip.src_addr().to_string(), "2001:db8:2::1");
    assert!(UdpPacket::new_checked(ip.payload())
        .unwrap()
        .verify_checksum_v6(&ip.src_addr(), &ip.dst_addr()));
    let lan = out.on("lan0");
    assert_eq!(lan.len(), 1);
    let ip = Ipv6Packet::new_checked(&lan[0][..]).unwrap();
    assert_eq!(ip.dst_addr().to_string(), "2001:db8:1::2");
    assert!(UdpPacket::new_checked(ip.payload())
        .unwrap()
        .verify_checksum_v6(&ip.src_addr(), &ip.dst_addr()));
}

/// OpenWrt-style forwarding rule: `--ctstate DNAT` admits exactly the
/// connections a port forward translated (the virtual state follows the
/// connection's DNAT status, from its first packet on).
#[test]
fn ctstate_dnat_admits_port_forwards_only() {
    let filter = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i wan0 -m conntrack --ctstate DNAT -j ACCEPT
-A FORWARD -i lan0 -j ACCEPT
COMMIT
";
    let rules = format!("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n{FWD}COMMIT\n{filter}");
    let sc = Scenario::gateway("ctdnat", &rules, "");
    let out = sc.run(
        &[
            // Through the port forward: accepted.
            at("wan0", 0.0, tcp(S, 7000, PUB, 8080, 1, 0, SYN, b"")),
            // Straight at the LAN host: no DNAT, dropped.
            at("wan0", 0.1, tcp(S, 7001, C, 80, 1, 0, SYN, b"")),
        ],
        None,
    );
    let lan = out.on("lan0");
    assert_eq!(lan.len(), 1, "{:#?}", out.events);
    let ip = Ipv4Packet::new_checked(&lan[0][..]).unwrap();
    assert_eq!(
        TcpPacket::new_checked(ip.payload()).unwrap().src_port(),
        7000
    );
    assert_eq!(out.events_with(&["policy: drop", "7001"]).len(), 1);
}

/// netfilter's null binding: a connection no rule translates keeps its source, unless its
/// reply tuple is already another connection's. Here a LAN client is SNATed to the address
/// of a real WAN-side host, and that host then opens the same flow itself: its source port
/// moves to a free one of the same class, and each reply reaches its own connection. Without
/// the null binding the second flow was dropped as an insert clash.
#[test]
fn a_clashing_untranslated_flow_gets_another_source_port() {
    const SNAT_TO: &str = "198.51.100.7";
    let rules = format!(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         :POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -s 192.0.2.0/24 -o wan0 -j SNAT --to-source {SNAT_TO}\n\
         COMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
    );
    let sc = Scenario::gateway("null-binding", &rules, "");
    let out = sc.run(
        &[
            at("lan0", 0.0, udp(C, 5000, S, 53, b"from the lan")),
            at("wan0", 0.01, udp(SNAT_TO, 5000, S, 53, b"from the host")),
        ],
        None,
    );
    let wan = out.on("wan0");
    assert_eq!(wan.len(), 2, "{:?}", out.events);
    let src = |p: &[u8]| {
        let ip = Ipv4Packet::new_checked(p).unwrap();
        let u = UdpPacket::new_checked(ip.payload()).unwrap();
        (ip.src_addr().to_string(), u.src_port())
    };
    assert_eq!(src(&wan[0]), (SNAT_TO.to_string(), 5000));
    let (addr, port) = src(&wan[1]);
    assert_eq!(addr, SNAT_TO, "the address stays");
    assert!(
        port >= 1024 && port != 5000,
        "another port of the class: {port}"
    );
    for p in &wan {
        checks_ok(p);
    }
    // Each reply goes back to the connection it answers.
    let out = sc.run(
        &[
            at("lan0", 0.0, udp(C, 5000, S, 53, b"from the lan")),
            at("wan0", 0.01, udp(SNAT_TO, 5000, S, 53, b"from the host")),
            at("wan0", 0.02, udp(S, 53, SNAT_TO, 5000, b"to the lan")),
            at("wan0", 0.03, udp(S, 53, SNAT_TO, port, b"to the host")),
        ],
        None,
    );
    let lan = out.on("lan0");
    assert_eq!(lan.len(), 1, "{:?}", out.events);
    let ip = Ipv4Packet::new_checked(&lan[0][..]).unwrap();
    assert_eq!(ip.dst_addr().to_string(), C);
    assert_eq!(
        UdpPacket::new_checked(ip.payload()).unwrap().dst_port(),
        5000
    );
    let wan = out.on("wan0");
    assert_eq!(wan.len(), 3, "{:?}", out.events);
    let ip = Ipv4Packet::new_checked(&wan[2][..]).unwrap();
    assert_eq!(ip.dst_addr().to_string(), SNAT_TO);
    let u = UdpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!(u.dst_port(), 5000, "translated back to the host's own port");
    assert_eq!(u.payload(), b"to the host");
    checks_ok(&wan[2]);
}
