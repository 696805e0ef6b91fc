//! `-m connbytes` and `-m connlimit` in the simulator, on the gateway's FORWARD chain.

use tests::flags::*;
use tests::*;
use wire::{Ipv4Packet, TcpPacket};

fn at(iface: &'static str, at: f64, packet: Vec<u8>) -> Arrival {
    Arrival { iface, at, packet }
}

fn filter(rules: &str) -> String {
    format!(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n{rules}COMMIT\n"
    )
}

/// A flow may send three packets; from the fourth on (the counter includes the packet being
/// filtered, as in the kernel) the rule drops it. The counter read is the original
/// direction's whichever way a packet goes, so the rule is limited to the LAN side: replies
/// pass.
#[test]
fn connbytes_cuts_a_flow_after_its_first_packets() {
    let rules = filter(
        "-A FORWARD -i lan0 -p udp -m connbytes --connbytes 4: --connbytes-dir original \
         --connbytes-mode packets -j DROP\n",
    );
    let sc = Scenario::gateway("connbytes", &rules, "");
    let (c, s) = ("192.0.2.2", "203.0.113.10");
    let mut arrivals = Vec::new();
    for i in 0..6u8 {
        arrivals.push(at(
            "lan0",
            f64::from(i) * 0.1,
            udp(c, 5000, s, 9999, &[b'a' + i]),
        ));
    }
    for i in 0..5u8 {
        arrivals.push(at(
            "wan0",
            1.0 + f64::from(i) * 0.1,
            udp(s, 9999, c, 5000, &[b'A' + i]),
        ));
    }
    let out = sc.run(&arrivals, None);
    let sent: Vec<u8> = out.on("wan0").iter().map(|p| *p.last().unwrap()).collect();
    assert_eq!(
        sent, b"abc",
        "packets 4..6 of the original direction are dropped"
    );
    assert_eq!(
        out.on("lan0").len(),
        5,
        "replies are not subject to the rule"
    );
    let drops = out.events_with(&["\"type\":\"drop\"", "\"chain\":\"FORWARD\"", "\"rule\":1,"]);
    assert_eq!(drops.len(), 3, "{:#?}", out.events);
    assert!(
        out.conntrack.contains("packets=6"),
        "conntrack saw all six: {}",
        out.conntrack
    );
}

fn is_rst_to(p: &[u8], port: u16) -> bool {
    let ip = Ipv4Packet::new_checked(p).unwrap();
    let t = TcpPacket::new_checked(ip.payload()).unwrap();
    t.rst() && t.dst_port() == port
}

/// Two ssh connections per client address: the third SYN is reset; after the client
/// resets its first connection (conntrack state CLOSE), a new one is admitted.
#[test]
fn connlimit_caps_concurrent_connections_per_client() {
    let rules = filter(
        "-A FORWARD -p tcp -m tcp --dport 22 --tcp-flags FIN,SYN,RST,ACK SYN \
         -m connlimit --connlimit-above 2 --connlimit-mask 32 --connlimit-saddr \
         -j REJECT --reject-with tcp-reset\n",
    );
    let sc = Scenario::gateway("connlimit", &rules, "");
    let (c, other, s) = ("192.0.2.2", "192.0.2.3", "203.0.113.10");
    let syn = |src: &str, sport: u16| tcp(src, sport, s, 22, 1000, 0, SYN, b"");
    let out = sc.run(
        &[
            at("lan0", 0.0, syn(c, 40001)),
            at("lan0", 0.1, syn(c, 40002)),
            at("lan0", 0.2, syn(c, 40003)),
            // Another client has its own count.
            at("lan0", 0.3, syn(other, 40001)),
            // The server answers the first; the client then resets it.
            at(
                "wan0",
                0.4,
                tcp(s, 22, c, 40001, 5000, 1001, SYN | ACK, b""),
            ),
            at("lan0", 0.5, tcp(c, 40001, s, 22, 1001, 0, RST, b"")),
            at("lan0", 0.6, syn(c, 40004)),
            at("lan0", 0.7, syn(c, 40005)),
        ],
        None,
    );
    let to_server: Vec<(String, u16)> = out
        .on("wan0")
        .iter()
        .filter_map(|p| {
            let ip = Ipv4Packet::new_checked(&p[..]).ok()?;
            let t = TcpPacket::new_checked(ip.payload()).ok()?;
            (t.syn() && !t.ack()).then(|| (ip.src_addr().to_string(), t.src_port()))
        })
        .collect();
    assert_eq!(
        to_server,
        [
            (c.to_string(), 40001),
            (c.to_string(), 40002),
            (other.to_string(), 40001),
            (c.to_string(), 40004),
        ],
        "{:#?}",
        out.events
    );
    let back = out.on("lan0");
    assert!(back.iter().any(|p| is_rst_to(p, 40003)), "40003 was reset");
    assert!(back.iter().any(|p| is_rst_to(p, 40005)), "40005 was reset");
    assert_eq!(back.iter().filter(|p| is_rst_to(p, 40004)).count(), 0);
}
