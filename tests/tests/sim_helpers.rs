//! Conntrack helpers through the simulator: the FTP helper behind a masquerade with FORWARD
//! policy DROP, so that the data connection passes only as RELATED; the announcement in
//! the PORT command carries the NAT address; sequence numbers stay in step after the
//! rewrite changed the segment's length.

use tests::flags::*;
use tests::*;
use wire::{Ipv4Packet, TcpPacket};

const C: &str = "192.0.2.2";
const S: &str = "203.0.113.10";
const PUB: &str = "198.51.100.1";

/// Masquerade on wan0, FORWARD DROP but established/related and new connections from the LAN
/// to port 21.
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
-A FORWARD -i lan0 -p tcp -m tcp --dport 21 -j ACCEPT
COMMIT
";

fn config(helpers: &str) -> String {
    format!(
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
ipv6 = "v6.rules"

{helpers}
"#
    )
}

fn at(iface: &'static str, at: f64, packet: Vec<u8>) -> Arrival {
    Arrival { iface, at, packet }
}

/// (seq, ack, payload) of a TCP packet, with its checksums checked.
fn tcp_parts(p: &[u8]) -> (u16, u16, u32, u32, Vec<u8>) {
    let ip = Ipv4Packet::new_checked(p).unwrap();
    assert!(ip.verify_checksum(), "IP checksum");
    assert_eq!(usize::from(ip.total_len()), p.len(), "IP length");
    let t = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(
        t.verify_checksum_v4(ip.src_addr(), ip.dst_addr()),
        "TCP checksum"
    );
    (
        t.src_port(),
        t.dst_port(),
        t.seq_number(),
        t.ack_number(),
        t.payload().to_vec(),
    )
}

/// An active FTP session: the client announces 192.0.2.2:50000, the server answers, the
/// client sends its next command, and the server opens the data connection from port 20.
fn active_session() -> Vec<Arrival> {
    let user = b"USER ftp\r\n";
    let port = b"PORT 192,0,2,2,195,80\r\n";
    let at_port = 1001 + user.len() as u32;
    let after_port = at_port + port.len() as u32;
    vec![
        at("lan0", 0.0, tcp(C, 40000, S, 21, 1000, 0, SYN, b"")),
        at(
            "wan0",
            0.01,
            tcp(S, 21, PUB, 40000, 5000, 1001, SYN | ACK, b""),
        ),
        at("lan0", 0.02, tcp(C, 40000, S, 21, 1001, 5001, ACK, b"")),
        at(
            "wan0",
            0.03,
            tcp(S, 21, PUB, 40000, 5001, 1001, PSH | ACK, b"220 hi\r\n"),
        ),
        at(
            "lan0",
            0.04,
            tcp(C, 40000, S, 21, 1001, 5009, PSH | ACK, user),
        ),
        at(
            "wan0",
            0.05,
            tcp(S, 21, PUB, 40000, 5009, at_port, PSH | ACK, b"331 go\r\n"),
        ),
        at(
            "lan0",
            0.06,
            tcp(C, 40000, S, 21, at_port, 5017, PSH | ACK, port),
        ),
        // The server acknowledges the rewritten, 3 bytes longer, command.
        at(
            "wan0",
            0.07,
            tcp(
                S,
                21,
                PUB,
                40000,
                5017,
                after_port + 3,
                PSH | ACK,
                b"200 ok\r\n",
            ),
        ),
        at(
            "lan0",
            0.08,
            tcp(C, 40000, S, 21, after_port, 5025, PSH | ACK, b"LIST\r\n"),
        ),
        at("wan0", 0.09, tcp(S, 20, PUB, 50000, 9000, 0, SYN, b"")),
    ]
}

#[test]
fn ftp_port_through_masquerade_is_rewritten_and_its_data_connection_is_related() {
    let sc = Scenario::with_config(
        "helper-ftp-active",
        &config("[helpers]\nauto_assign = true\n"),
        RULES,
        "",
    );
    let out = sc.run(&active_session(), None);
    let wan = out.on("wan0");
    let lan = out.on("lan0");
    // Out on wan0: SYN, ACK, PORT, LIST.
    let cmds: Vec<_> = wan.iter().map(|p| tcp_parts(p)).collect();
    let port = cmds
        .iter()
        .find(|c| c.4.starts_with(b"PORT"))
        .expect("the PORT command left");
    assert_eq!(port.4, b"PORT 198,51,100,1,195,80\r\n");
    assert_eq!(port.2, 1011);
    let list = cmds.iter().find(|c| c.4 == b"LIST\r\n").expect("LIST left");
    // 3 bytes more went out before it: its sequence number moved on by 3.
    assert_eq!(list.2, 1011 + 23 + 3);
    // Toward the client, the server's acknowledgement counts the client's own bytes.
    let ok = lan
        .iter()
        .map(|p| tcp_parts(p))
        .find(|c| c.4 == b"200 ok\r\n")
        .expect("the 200 reached the client");
    assert_eq!(ok.3, 1011 + 23);
    // The data connection came in from the server's port 20 and was let in as RELATED,
    // translated back to the port the client announced.
    let data = lan
        .iter()
        .map(|p| tcp_parts(p))
        .find(|c| c.0 == 20)
        .expect("the data connection's SYN reached the client");
    assert_eq!(data.1, 50000);
    assert!(
        !out.events_with(&["\"type\":\"exp-new\"", "\"helper\":\"ftp\""])
            .is_empty(),
        "expectation event: {:#?}",
        out.events
    );
    assert!(!out
        .events_with(&["\"type\":\"helper\"", "\"action\":\"rewrite\""])
        .is_empty());
    assert!(out.stats.contains("helper name=ftp"), "{}", out.stats);
}

#[test]
fn without_a_helper_the_data_connection_is_dropped_and_nothing_is_rewritten() {
    let sc = Scenario::with_config("helper-ftp-none", &config(""), RULES, "");
    let out = sc.run(&active_session(), None);
    let wan = out.on("wan0");
    let port = wan
        .iter()
        .map(|p| tcp_parts(p))
        .find(|c| c.4.starts_with(b"PORT"))
        .expect("the PORT command left");
    assert_eq!(port.4, b"PORT 192,0,2,2,195,80\r\n");
    assert!(out.on("lan0").iter().all(|p| tcp_parts(p).0 != 20));
    // Nothing expected it: the SYN to the gateway's own address was the router's to answer.
    assert!(out.events_with(&["exp-new"]).is_empty());
    assert!(
        out.stats.contains("local: delivered to router"),
        "{}",
        out.stats
    );
}

/// A server inside behind a port forward: the client outside asks for passive mode and the
/// 227 answer must carry the public address; the data connection to it is RELATED and
/// reaches the server.
#[test]
fn ftp_pasv_behind_a_port_forward_announces_the_public_address() {
    const FWD_RULES: &str = "*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i wan0 -p tcp -m tcp --dport 21 -j DNAT --to-destination 192.0.2.2:21
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -i wan0 -d 192.0.2.2/32 -p tcp -m tcp --dport 21 -j ACCEPT
COMMIT
";
    let sc = Scenario::with_config(
        "helper-ftp-pasv-dnat",
        &config("[helpers]\nauto_assign = true\n"),
        FWD_RULES,
        "",
    );
    // Client S outside, server C inside.
    let pasv = b"227 Entering Passive Mode (192,0,2,2,195,80).\r\n";
    let arrivals = vec![
        at("wan0", 0.0, tcp(S, 41000, PUB, 21, 100, 0, SYN, b"")),
        at("lan0", 0.01, tcp(C, 21, S, 41000, 700, 101, SYN | ACK, b"")),
        at("wan0", 0.02, tcp(S, 41000, PUB, 21, 101, 701, ACK, b"")),
        at(
            "lan0",
            0.03,
            tcp(C, 21, S, 41000, 701, 101, PSH | ACK, b"220 hi\r\n"),
        ),
        at(
            "wan0",
            0.04,
            tcp(S, 41000, PUB, 21, 101, 709, PSH | ACK, b"PASV\r\n"),
        ),
        at(
            "lan0",
            0.05,
            tcp(C, 21, S, 41000, 709, 107, PSH | ACK, pasv),
        ),
        at("wan0", 0.06, tcp(S, 41500, PUB, 50000, 3000, 0, SYN, b"")),
    ];
    let out = sc.run(&arrivals, None);
    let answer = out
        .on("wan0")
        .iter()
        .map(|p| tcp_parts(p))
        .find(|c| c.4.starts_with(b"227"))
        .expect("the 227 answer left");
    assert_eq!(
        answer.4,
        b"227 Entering Passive Mode (198,51,100,1,195,80).\r\n".to_vec()
    );
    let data = out
        .on("lan0")
        .iter()
        .map(|p| tcp_parts(p))
        .find(|c| c.0 == 41500)
        .expect("the data connection reached the server");
    assert_eq!(data.1, 50000);
}

/// TFTP through masquerade: the read request expects the server's answer from any port,
/// which reaches the client as RELATED.
#[test]
fn tftp_answer_from_another_port_is_related_through_masquerade() {
    const TFTP_RULES: &str = "*nat
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
-A FORWARD -i lan0 -p udp -m udp --dport 69 -j ACCEPT
COMMIT
";
    let rrq = b"\x00\x01boot.img\x00octet\x00";
    let data = b"\x00\x03\x00\x01hello";
    let arrivals = |_: ()| {
        vec![
            at("lan0", 0.0, udp(C, 3000, S, 69, rrq)),
            at("wan0", 0.01, udp(S, 4711, PUB, 3000, data)),
        ]
    };
    let sc = Scenario::with_config(
        "helper-tftp",
        &config("[helpers]\nauto_assign = true\n"),
        TFTP_RULES,
        "",
    );
    let out = sc.run(&arrivals(()), None);
    let lan = out.on("lan0");
    assert_eq!(lan.len(), 1, "{:#?}", out.events);
    let ip = Ipv4Packet::new_checked(&lan[0][..]).unwrap();
    let u = wire::UdpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!((u.src_port(), u.dst_port()), (4711, 3000));
    assert_eq!(ip.dst_addr().to_string(), C);
    assert!(!out
        .events_with(&["exp-new", "\"helper\":\"tftp\""])
        .is_empty());
    // Without the helper the answer is not related to anything and the policy drops it.
    let none = Scenario::with_config("helper-tftp-none", &config(""), TFTP_RULES, "");
    let out = none.run(&arrivals(()), None);
    assert!(out.on("lan0").is_empty());
}

/// IPv6 without NAT: EPRT announces the client, the data connection is RELATED.
#[test]
fn ftp_eprt_over_ipv6_expects_the_data_connection() {
    const V6: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -i lan0 -p tcp -m tcp --dport 21 -j ACCEPT
COMMIT
";
    let cfg = config("[helpers]\nauto_assign = true\n")
        .replace(
            "addresses = [\"192.0.2.1/24\"]",
            "addresses = [\"192.0.2.1/24\", \"2001:db8:1::1/64\"]",
        )
        .replace(
            "addresses = [\"198.51.100.1/24\"]",
            "addresses = [\"198.51.100.1/24\", \"2001:db8:2::1/64\"]",
        )
        + "\n[[route]]\nprefix = \"::/0\"\ninterface = \"wan0\"\nvia = \"2001:db8:2::fe\"\n";
    let sc = Scenario::with_config("helper-ftp-v6", &cfg, "", V6);
    let (c, s) = ("2001:db8:1::2", "2001:db8:9::10");
    let eprt = b"EPRT |2|2001:db8:1::2|50000|\r\n";
    let arrivals = vec![
        at("lan0", 0.0, tcp(c, 40000, s, 21, 1000, 0, SYN, b"")),
        at(
            "wan0",
            0.01,
            tcp(s, 21, c, 40000, 5000, 1001, SYN | ACK, b""),
        ),
        at("lan0", 0.02, tcp(c, 40000, s, 21, 1001, 5001, ACK, b"")),
        at(
            "lan0",
            0.03,
            tcp(c, 40000, s, 21, 1001, 5001, PSH | ACK, b"USER a\r\n"),
        ),
        at(
            "lan0",
            0.04,
            tcp(c, 40000, s, 21, 1009, 5001, PSH | ACK, eprt),
        ),
        at("wan0", 0.05, tcp(s, 20, c, 50000, 9000, 0, SYN, b"")),
    ];
    let out = sc.run(&arrivals, None);
    assert!(
        out.on("lan0")
            .iter()
            .any(|p| p.len() >= 42 && p[40..42] == 20u16.to_be_bytes()),
        "{:#?}",
        out.events
    );
    let sent_eprt = out
        .on("wan0")
        .into_iter()
        .find(|p| p.ends_with(eprt))
        .is_some();
    assert!(sent_eprt, "EPRT left unchanged (no NAT)");
}

/// The whole real FTP session of `tests/data/pcap/ndpi-ftp.pcap` (vsftpd, passive mode,
/// a listing and a 1 MB download) with the server inside behind a port forward: each 227
/// answer is rewritten to the public address, both data connections pass as RELATED, and
/// tshark finds the output well formed.
#[test]
fn a_real_ftp_capture_through_a_port_forward() {
    let public: std::net::Ipv4Addr = "198.51.100.1".parse().unwrap();
    let server: std::net::Ipv4Addr = "90.130.70.73".parse().unwrap();
    let rules = "*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i wan0 -p tcp -m tcp --dport 21 -j DNAT --to-destination 90.130.70.73:21
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -i wan0 -d 90.130.70.73/32 -p tcp -m tcp --dport 21 -j ACCEPT
COMMIT
";
    // The capture's server is the inside host; its client talks to the public address.
    let cfg = config("[helpers]\nauto_assign = true\n")
        .replace("\"192.0.2.1/24\"", "\"90.130.70.1/24\"")
        .replace(
            "\"198.51.100.1/24\"",
            "\"198.51.100.1/24\", \"192.168.1.1/24\"",
        );
    let sc = Scenario::with_config("helper-ftp-capture", &cfg, rules, "");
    let arrivals = capture_arrivals("ndpi-ftp.pcap", server, server, public);
    let out = sc.run(&arrivals, Some(30.0));
    let answers: Vec<Vec<u8>> = out
        .on("wan0")
        .iter()
        .map(|p| tcp_parts(p).4)
        .filter(|p| p.starts_with(b"227 "))
        .collect();
    assert_eq!(answers.len(), 2, "two PASV answers");
    for a in &answers {
        let text = String::from_utf8_lossy(a);
        assert!(text.contains("(198,51,100,1,"), "{text}");
    }
    // Both data connections reached the server: the listing (port 25685) and the
    // download (port 24523), all of whose captured bytes crossed.
    let to_server = out.on("lan0");
    for port in [25685u16, 24523] {
        assert!(
            to_server.iter().any(|p| tcp_parts(p).1 == port),
            "data connection to port {port}: {:#?}",
            out.events_with(&["drop"])
        );
    }
    let bytes: usize = out
        .on("wan0")
        .iter()
        .map(|p| tcp_parts(p))
        .filter(|c| c.0 == 24523)
        .map(|c| c.4.len())
        .sum();
    let captured: usize = arrivals
        .iter()
        .filter(|a| a.iface == "lan0")
        .map(|a| tcp_parts(&a.packet))
        .filter(|c| c.0 == 24523)
        .map(|c| c.4.len())
        .sum();
    assert!(captured > 100_000);
    assert_eq!(bytes, captured);
    assert_eq!(out.events_with(&["exp-new", "\"helper\":\"ftp\""]).len(), 2);
    assert!(
        out.events_with(&["\"type\":\"drop\""]).is_empty(),
        "{:#?}",
        out.events_with(&["drop"])
    );
    if require(tshark_available(), "tshark") {
        for iface in ["lan0", "wan0"] {
            let pcap = out.out_dir.join(format!("{iface}.pcap"));
            let o = std::process::Command::new("tshark")
                .args(["-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE", "-r"])
                .arg(&pcap)
                .args(["-Y", "tcp.checksum.status == 0 || ip.checksum.status == 0 || tcp.analysis.ack_lost_segment || _ws.malformed"])
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let bad = String::from_utf8_lossy(&o.stdout);
            assert!(
                bad.trim().is_empty(),
                "{iface}: bad checksums or ACKed unseen segments:\n{bad}"
            );
            let all = tshark_fields(&pcap, "ftp.response.code == 227", &["ftp.response.arg"]);
            if iface == "wan0" {
                assert_eq!(all.len(), 2, "{all:?}");
                assert!(all.iter().all(|a| a.contains("198,51,100,1")), "{all:?}");
            }
        }
    }
}

/// The real TFTP transfer of `tests/data/pcap/ndpi-tftp-classic.pcap` (rfc1350.txt, 109 packets)
/// with the client behind a masquerade and FORWARD DROP but port 69: the server answers
/// from its own port and every block reaches the client as RELATED.
#[test]
fn a_real_tftp_capture_through_masquerade() {
    let public: std::net::Ipv4Addr = "198.51.100.1".parse().unwrap();
    let client: std::net::Ipv4Addr = "192.168.0.253".parse().unwrap();
    let rules = "*nat
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
-A FORWARD -i lan0 -p udp -m udp --dport 69 -j ACCEPT
COMMIT
";
    let cfg = config("[helpers]\nauto_assign = true\n")
        // The server (192.168.0.10) is not on the client's half of the /24.
        .replace("\"192.0.2.1/24\"", "\"192.168.0.129/25\"")
        .replace(
            "\"198.51.100.1/24\"",
            "\"198.51.100.1/24\", \"192.168.1.1/24\"",
        );
    let sc = Scenario::with_config("helper-tftp-capture", &cfg, rules, "");
    let arrivals = capture_arrivals("ndpi-tftp-classic.pcap", client, client, public);
    let blocks_in = arrivals.iter().filter(|a| a.iface == "wan0").count();
    assert!(blocks_in > 40);
    let out = sc.run(&arrivals, Some(30.0));
    assert_eq!(
        out.on("lan0").len(),
        blocks_in,
        "{:#?}",
        out.events_with(&["drop"])
    );
    assert_eq!(out.on("wan0").len(), arrivals.len() - blocks_in);
    assert_eq!(
        out.events_with(&["exp-new", "\"helper\":\"tftp\""]).len(),
        1
    );
    assert!(out.events_with(&["\"type\":\"drop\""]).is_empty());
}

/// Explicit assignment, as Linux since 4.7 wants it: `auto_assign` off, and a raw-table
/// `CT --helper ftp` rule for port 21. The FTP data connection is RELATED, and
/// `-m helper --helper ftp` tells it apart in the filter table.
#[test]
fn ct_helper_in_the_raw_table_attaches_the_helper_and_m_helper_sees_it() {
    let rules = format!(
        "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         -A PREROUTING -i lan0 -p tcp -m tcp --dport 21 -j CT --helper ftp\nCOMMIT\n{}",
        RULES.replace(
            "-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n",
            "-A FORWARD -m conntrack --ctstate RELATED -m helper --helper ftp -j ACCEPT\n\
             -A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT\n",
        )
    );
    let sc = Scenario::with_config("helper-ct-explicit", &config(""), &rules, "");
    let out = sc.run(&active_session(), None);
    let data = out
        .on("lan0")
        .iter()
        .map(|p| tcp_parts(p))
        .find(|c| c.0 == 20)
        .expect("the data connection's SYN reached the client");
    assert_eq!(data.1, 50000);
    let v4 = std::fs::read_to_string(out.out_dir.join("rules-v4.txt")).unwrap();
    assert!(
        v4.contains(
            "[1:40] -A FORWARD -m conntrack --ctstate RELATED -m helper --helper ftp -j ACCEPT"
        ),
        "{v4}"
    );
    assert!(v4.contains("-j CT --helper ftp"), "{v4}");
}

/// A retransmission of the rewritten PORT command is rewritten again, identically, at the
/// same sequence number (the adjustment does not grow twice), and the expectation is
/// refreshed, not doubled; an FTP bounce (a PORT naming another host) expects nothing and
/// is counted.
#[test]
fn a_retransmitted_port_is_rewritten_again_and_a_bounce_is_refused() {
    let sc = Scenario::with_config(
        "helper-ftp-retransmit",
        &config("[helpers]\nauto_assign = true\n"),
        RULES,
        "",
    );
    let mut arrivals = active_session();
    let port = b"PORT 192,0,2,2,195,80\r\n";
    // The PORT segment again (its ACK was lost), then a bounce to a third party.
    arrivals.insert(
        7,
        at(
            "lan0",
            0.065,
            tcp(C, 40000, S, 21, 1011, 5017, PSH | ACK, port),
        ),
    );
    let after = 1011 + port.len() as u32;
    arrivals.push(at(
        "lan0",
        0.1,
        tcp(
            C,
            40000,
            S,
            21,
            after + 6,
            5025,
            PSH | ACK,
            b"PORT 203,0,113,99,4,1\r\n",
        ),
    ));
    let out = sc.run(&arrivals, None);
    let ports: Vec<_> = out
        .on("wan0")
        .iter()
        .map(|p| tcp_parts(p))
        .filter(|c| c.4.starts_with(b"PORT"))
        .collect();
    assert_eq!(ports.len(), 3, "both copies and the bounce left");
    for c in &ports[..2] {
        assert_eq!(
            (c.2, c.4.as_slice()),
            (1011, &b"PORT 198,51,100,1,195,80\r\n"[..])
        );
    }
    // The bounce went out as sent (nothing to rewrite for it), after the adjusted LIST.
    assert_eq!(ports[2].2, after + 6 + 3);
    assert_eq!(ports[2].4, b"PORT 203,0,113,99,4,1\r\n");
    assert_eq!(
        out.events_with(&["exp-new"]).len(),
        1,
        "refreshed, not doubled"
    );
    assert!(out.stats.contains("refused=1"), "{}", out.stats);
    assert!(!out
        .events_with(&["\"action\":\"refused\"", "203.0.113.99"])
        .is_empty());
}
