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
