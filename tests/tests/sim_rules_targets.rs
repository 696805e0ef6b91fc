//! The TRACE and TCPMSS targets in the simulator: a traced packet's path
//! through every table shows up in the event log, and forwarded SYNs leave
//! with their MSS clamped to the egress route (checksums intact, after SNAT).

use tests::flags::*;
use tests::*;
use wire::{Ipv4Packet, Ipv6Packet, TcpPacket};

/// lan0 at MTU 1500, wan0 at MTU 1400 (a PPPoE-like uplink).
const CFG: &str = r#"
[[interface]]
name = "lan0"
kind = "tun"
mtu = 1500
addresses = ["192.0.2.1/24", "2001:db8:1::1/64"]

[[interface]]
name = "wan0"
kind = "tun"
mtu = 1400
addresses = ["198.51.100.1/24", "2001:db8:2::1/64"]

[[route]]
prefix = "0.0.0.0/0"
interface = "wan0"
via = "198.51.100.254"

[[route]]
prefix = "::/0"
interface = "wan0"
via = "2001:db8:2::fe"

[rules]
ipv4 = "v4.rules"
ipv6 = "v6.rules"
"#;

const V4: &str = "*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 22 -j TRACE
COMMIT
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
-A FORWARD -i lan0 -p tcp -m tcp --dport 443 -j ACCEPT
COMMIT
";

const V6: &str = "*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu
-A POSTROUTING -o wan0 -p tcp -m tcp --dport 8443 --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1000
COMMIT
";

fn at(iface: &'static str, at: f64, packet: Vec<u8>) -> Arrival {
    Arrival { iface, at, packet }
}

fn mss_opt(v: u16) -> Vec<u8> {
    let [hi, lo] = v.to_be_bytes();
    vec![2, 4, hi, lo]
}

/// The MSS option of a forwarded IPv4 SYN, after checking every checksum.
fn mss_v4(p: &[u8]) -> Option<u16> {
    let ip = Ipv4Packet::new_checked(p).unwrap();
    assert!(ip.verify_checksum(), "IP checksum");
    assert_eq!(ip.total_len() as usize, p.len(), "IP total length");
    let t = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(
        t.verify_checksum_v4(ip.src_addr(), ip.dst_addr()),
        "TCP checksum"
    );
    tcp_mss(t.options())
}

fn mss_v6(p: &[u8]) -> Option<u16> {
    let ip = Ipv6Packet::new_checked(p).unwrap();
    assert_eq!(
        ip.payload_len() as usize + 40,
        p.len(),
        "IPv6 payload length"
    );
    let t = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(
        t.verify_checksum_v6(&ip.src_addr(), &ip.dst_addr()),
        "TCP checksum"
    );
    tcp_mss(t.options())
}

#[test]
fn syns_leave_with_the_mss_clamped_to_the_egress_route() {
    let sc = Scenario::with_config("tcpmss", CFG, V4, V6);
    let c = "192.0.2.2";
    let s = "203.0.113.10";
    let c6 = "2001:db8:1::2";
    let s6 = "2001:db8:3::10";
    let syn = |sport: u16, opts: &[u8]| tcp_opts(c, sport, s, 443, 1, 0, SYN, 64240, opts, b"");
    let mut sack_ts = mss_opt(1460);
    sack_ts.extend_from_slice(&[4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0]);
    let out = sc.run(
        &[
            // 1460 > 1400 - 40: lowered; the other options are kept.
            at("lan0", 0.0, syn(40000, &sack_ts)),
            // Already below the clamp: untouched.
            at("lan0", 0.1, syn(40001, &mss_opt(1200))),
            // No MSS option: one is added with RFC 1122's default of 536.
            at("lan0", 0.2, syn(40002, &[])),
            // Not a SYN (an established flow's ACK): never rewritten.
            at(
                "lan0",
                0.3,
                tcp(s, 443, "198.51.100.1", 40000, 1, 2, SYN | ACK, b""),
            ),
            at(
                "lan0",
                0.4,
                tcp_opts(c, 40000, s, 443, 2, 2, ACK, 64240, &mss_opt(1460), b""),
            ),
            // IPv6: 1400 - 60, and --set-mss for one port in POSTROUTING.
            at(
                "lan0",
                0.5,
                tcp_opts(c6, 40000, s6, 443, 1, 0, SYN, 64240, &mss_opt(1440), b""),
            ),
            at(
                "lan0",
                0.6,
                tcp_opts(c6, 40001, s6, 8443, 1, 0, SYN, 64240, &mss_opt(1440), b""),
            ),
        ],
        None,
    );
    let wan = out.on("wan0");
    let v4: Vec<&Vec<u8>> = wan.iter().filter(|p| p[0] >> 4 == 4).collect();
    let v6: Vec<&Vec<u8>> = wan.iter().filter(|p| p[0] >> 4 == 6).collect();
    assert_eq!(
        v4.len(),
        4,
        "three SYNs and the ACK cross: {:#?}",
        out.events
    );
    // SNAT happened too: the checksums cover both rewrites.
    assert!(v4.iter().all(|p| p[12..16] == [198, 51, 100, 1]));
    assert_eq!(mss_v4(v4[0]), Some(1360));
    let first = TcpPacket::new_checked(&v4[0][20..]).unwrap();
    assert_eq!(
        first.options().len(),
        16,
        "SACK-permitted and timestamps kept"
    );
    assert_eq!(mss_v4(v4[1]), Some(1200));
    assert_eq!(mss_v4(v4[2]), Some(536));
    assert_eq!(v4[2].len(), 20 + 24, "the option grew the header");
    assert_eq!(mss_v4(v4[3]), Some(1460), "only SYNs are clamped");
    assert_eq!(v6.len(), 2);
    assert_eq!(mss_v6(v6[0]), Some(1340));
    assert_eq!(
        mss_v6(v6[1]),
        Some(1000),
        "the lower of --set-mss and the clamp"
    );
}

#[test]
fn a_traced_packet_reports_its_path_through_every_table() {
    let sc = Scenario::with_config("trace", CFG, V4, "");
    let c = "192.0.2.2";
    let s = "203.0.113.10";
    let out = sc.run(
        &[
            at("lan0", 0.0, tcp(c, 40000, s, 22, 1, 0, SYN, b"")),
            at("lan0", 0.1, tcp(c, 40001, s, 443, 1, 0, SYN, b"")),
        ],
        None,
    );
    let traces = out.events_with(&["\"type\":\"trace\""]);
    assert!(
        traces
            .iter()
            .all(|e| e.contains("tcp 192.0.2.2 40000 -> 203.0.113.10 22 IN=lan0")),
        "only the ssh SYN is traced: {traces:#?}"
    );
    assert!(
        traces.iter().all(|e| e.contains("\"id\":1,")),
        "one packet, one trace id: {traces:#?}"
    );
    let step = |table: &str, chain: &str, kind: &str, rule: usize, verdict: &str| {
        let found = out.events_with(&[
            "\"type\":\"trace\"",
            &format!("\"table\":\"{table}\",\"chain\":\"{chain}\",\"kind\":\"{kind}\",\"rule\":{rule},\"verdict\":\"{verdict}\""),
        ]);
        assert_eq!(
            found.len(),
            1,
            "{table} {chain} {kind} {rule} {verdict} in {traces:#?}"
        );
        found[0].clone()
    };
    // The TRACE rule itself is not reported; the raw policy is, and so on to the drop.
    step("raw", "PREROUTING", "policy", 0, "ACCEPT");
    step("mangle", "PREROUTING", "policy", 0, "ACCEPT");
    step("nat", "PREROUTING", "policy", 0, "ACCEPT");
    let mss = step("mangle", "FORWARD", "rule", 1, "CONTINUE");
    assert!(
        mss.contains(
            "-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu"
        ),
        "the rule's text: {mss}"
    );
    step("mangle", "FORWARD", "policy", 0, "ACCEPT");
    let last = step("filter", "FORWARD", "policy", 0, "DROP");
    assert!(last.contains("IN=lan0 OUT=wan0"), "{last}");
    // Traced steps are in pipeline order.
    let pos = |needle: &str| traces.iter().position(|e| e.contains(needle)).unwrap();
    assert!(pos("\"table\":\"raw\"") < pos("\"table\":\"nat\""));
    assert!(pos("\"table\":\"nat\"") < pos("\"table\":\"filter\""));
    assert_eq!(
        out.on("wan0").len(),
        1,
        "the 443 SYN crosses, the ssh SYN is dropped"
    );
}

/// `-j CT --zone`: connections live in the zone the raw table gives their packets. Replies
/// from port 53 are put in the LAN's zone 1 and find their connection; replies from port 123
/// stay in zone 0, miss the zone-1 connection and are dropped as NEW — unless the zone rules
/// are removed, which proves the zone is what separated them.
#[test]
fn conntrack_zones_separate_connections() {
    let filter = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i lan0 -j ACCEPT
COMMIT
";
    let zoned = format!(
        "*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -i lan0 -j CT --zone 1
-A PREROUTING -i wan0 -p udp -m udp --sport 53 -j CT --zone 1
COMMIT
{filter}"
    );
    let c = "192.0.2.2";
    let s = "203.0.113.10";
    let traffic = [
        at("lan0", 0.0, udp(c, 5000, s, 53, b"query")),
        at("wan0", 0.1, udp(s, 53, c, 5000, b"answer")),
        at("lan0", 0.2, udp(c, 5001, s, 123, b"ntp request")),
        at("wan0", 0.3, udp(s, 123, c, 5001, b"ntp reply")),
    ];
    let out = Scenario::with_config("ctzone", CFG, &zoned, "").run(&traffic, None);
    assert_eq!(out.on("wan0").len(), 2, "both requests leave");
    let back = out.on("lan0");
    assert_eq!(
        back.len(),
        1,
        "only the zone-1 reply returns: {:#?}",
        out.events
    );
    assert!(back[0].ends_with(b"answer"));
    let zone1: Vec<&str> = out
        .conntrack
        .lines()
        .filter(|l| l.contains(" zone=1 "))
        .collect();
    assert_eq!(zone1.len(), 2, "conntrack:\n{}", out.conntrack);
    assert!(
        zone1
            .iter()
            .any(|l| l.contains("dport=53") && !l.contains("[UNREPLIED]")),
        "{}",
        out.conntrack
    );
    assert!(
        zone1
            .iter()
            .any(|l| l.contains("dport=123") && l.contains("[UNREPLIED]")),
        "{}",
        out.conntrack
    );
    assert!(
        !out.conntrack.lines().any(|l| !l.contains(" zone=")),
        "the zone-0 reply was dropped before it was confirmed:\n{}",
        out.conntrack
    );
    let drops = out.events_with(&["\"type\":\"drop\"", "\"chain\":\"FORWARD\"", "\"rule\":0,"]);
    assert_eq!(
        drops.len(),
        1,
        "the policy dropped the ntp reply: {:#?}",
        out.events
    );

    // The same traffic without zones: both replies return.
    let out = Scenario::with_config("ctzone0", CFG, filter, "").run(&traffic, None);
    assert_eq!(out.on("lan0").len(), 2);
    assert!(!out.conntrack.contains("zone="), "{}", out.conntrack);
}
