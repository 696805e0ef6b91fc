//! The H.323 helpers through the simulator: the real call of `tests/data/pcap/ndpi-h323.pcap`
//! (Q.931 Setup .. Connect with an `h245Address`, then a separate H.245 connection opening a
//! logical channel each way) with the caller behind a masquerade and FORWARD policy DROP but
//! for TCP 1720: the H.245 connection and the RTP/RTCP flows pass only as RELATED, and the
//! addresses inside the messages that leave carry the NAT address. The capture has no media:
//! the scenario adds RTP and RTCP packets both ways to the ports the channels announced.

use std::net::Ipv4Addr;
use tests::flags::*;
use tests::*;
use wire::{Ipv4Packet, TcpPacket, UdpPacket};

const CALLER: &str = "10.1.3.143";
const CALLEE: &str = "10.1.6.18";
const PUB: &str = "198.51.100.1";

/// Masquerade on wan0, FORWARD DROP but established/related and calls to TCP 1720.
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
-A FORWARD -i lan0 -p tcp -m tcp --dport 1720 -j ACCEPT
COMMIT
";

fn config(helpers: &str) -> String {
    format!(
        r#"
[[interface]]
name = "lan0"
kind = "tun"
addresses = ["10.1.3.1/24"]

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

/// The packets of the capture's first call (the caller's): the caller's arrive on lan0,
/// the callee's on wan0 addressed to the public address, checksums fixed. Then media:
/// RTP and RTCP from the callee to the ports the caller announced (5000, 5001) and from the
/// caller to the callee's (2006, 2007).
fn arrivals() -> Vec<Arrival> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/pcap/ndpi-h323.pcap");
    let (lt, recs) = router::pcap::read_all(std::fs::File::open(path).unwrap()).unwrap();
    let inside: Ipv4Addr = CALLER.parse().unwrap();
    let public: Ipv4Addr = PUB.parse().unwrap();
    let mut t0 = None;
    let mut v: Vec<Arrival> = recs
        .iter()
        .filter_map(|r| {
            let ip = router::pcap::ip_payload(lt, &r.data)?.to_vec();
            let v4 = Ipv4Packet::new_checked(&ip[..]).ok()?;
            if v4.src_addr() != inside && v4.dst_addr() != inside {
                return None;
            }
            let t0 = *t0.get_or_insert(r.ts_ns);
            let at = r.ts_ns.saturating_sub(t0) as f64 / 1e9;
            if v4.src_addr() == inside {
                return Some(Arrival {
                    iface: "lan0",
                    at,
                    packet: ip,
                });
            }
            let mut p = ip.clone();
            p[16..20].copy_from_slice(&public.octets());
            fill_checksums(&mut p);
            Some(Arrival {
                iface: "wan0",
                at,
                packet: p,
            })
        })
        .collect();
    assert_eq!(v.len(), 43, "the first call's packets");
    // RTP: version 2, PCMA, sequence 1, timestamp 160, an SSRC, 20 bytes of audio. RTCP: an
    // empty receiver report.
    let mut rtp = vec![0x80, 0x08, 0, 1, 0, 0, 0, 160, 0x12, 0x34, 0x56, 0x78];
    rtp.extend_from_slice(&[0xd5; 20]);
    let rtcp = [0x80, 0xc9, 0, 1, 0x12, 0x34, 0x56, 0x78];
    for (k, (iface, src, sport, dst, dport)) in [
        ("wan0", CALLEE, 2006, PUB, 5000),
        ("wan0", CALLEE, 2007, PUB, 5001),
        ("lan0", CALLER, 5000, CALLEE, 2006),
        ("lan0", CALLER, 5001, CALLEE, 2007),
    ]
    .into_iter()
    .enumerate()
    {
        v.push(Arrival {
            iface,
            at: 2.0 + k as f64 * 0.01,
            packet: udp(
                src,
                sport,
                dst,
                dport,
                if dport % 2 == 0 { &rtp } else { &rtcp },
            ),
        });
    }
    v
}

/// Recomputes the IPv4 header and TCP/UDP checksums of an unfragmented packet.
fn fill_checksums(p: &mut [u8]) {
    let hl = usize::from(p[0] & 0x0f) * 4;
    p[10..12].fill(0);
    let ck = wire::checksum::data(&p[..hl]);
    p[10..12].copy_from_slice(&ck.to_be_bytes());
    let at = match p[9] {
        6 => hl + 16,
        17 => hl + 6,
        _ => return,
    };
    p[at..at + 2].fill(0);
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    let ps = wire::checksum::pseudo_header_v4(src, dst, p[9], (p.len() - hl) as u32);
    let ck = wire::checksum::fold(wire::checksum::combine(ps, wire::checksum::sum(&p[hl..])));
    p[at..at + 2].copy_from_slice(&ck.to_be_bytes());
}

/// (protocol, source port, destination port) of a TCP or UDP packet; ports 0 for others.
fn ports(p: &[u8]) -> (u8, u16, u16) {
    let ip = Ipv4Packet::new_checked(p).unwrap();
    match ip.protocol() {
        6 => {
            let t = TcpPacket::new_checked(ip.payload()).unwrap();
            (6, t.src_port(), t.dst_port())
        }
        17 => {
            let u = UdpPacket::new_checked(ip.payload()).unwrap();
            (17, u.src_port(), u.dst_port())
        }
        other => (other, 0, 0),
    }
}

#[test]
fn a_real_h323_call_through_masquerade_passes_h245_and_media_as_related() {
    let sc = Scenario::with_config(
        "helper-h323-capture",
        &config("[helpers]\nauto_assign = true\n"),
        RULES,
        "",
    );
    let out = sc.run(&arrivals(), Some(10.0));
    let wan: Vec<(u8, u16, u16)> = out.on("wan0").iter().map(|p| ports(p)).collect();
    let lan: Vec<(u8, u16, u16)> = out.on("lan0").iter().map(|p| ports(p)).collect();
    // The H.245 connection the Connect announced (callee port 1232) crossed both ways.
    assert!(
        wan.iter().any(|&(pr, _, d)| pr == 6 && d == 1232),
        "{wan:?}"
    );
    assert!(
        lan.iter().any(|&(pr, s, _)| pr == 6 && s == 1232),
        "{lan:?}"
    );
    // So did the media, each way, RTP and RTCP.
    for (s, d) in [(2006, 5000), (2007, 5001)] {
        assert!(lan.contains(&(17, s, d)), "media {s} -> {d}: {lan:?}");
    }
    for (s, d) in [(5000, 2006), (5001, 2007)] {
        assert!(
            wan.iter().any(|&(pr, _, dp)| pr == 17 && dp == d),
            "media {s} -> {d}: {wan:?}"
        );
    }
    // No payload that left still names the caller's inside address (the retransmitted
    // Setup, which tshark does not decode again, included).
    let inside = CALLER.parse::<Ipv4Addr>().unwrap().octets();
    for p in out.on("wan0") {
        let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
        let payload = match TcpPacket::new_checked(ip.payload()) {
            Ok(t) if ip.protocol() == 6 => t.payload().to_vec(),
            _ => continue,
        };
        assert!(!payload.windows(4).any(|w| w == inside), "{payload:02x?}");
    }
    assert!(
        out.events_with(&["\"type\":\"drop\""]).is_empty(),
        "{:#?}",
        out.events_with(&["drop"])
    );
    // The expectations: the H.245 connection (Q.931's), the two pairs of each direction's
    // channel (H.245's: 2 OLCs and 2 acks, each address a pair, re-announcements refresh).
    let q931 = out.events_with(&["exp-new", "\"helper\":\"Q.931\""]);
    assert_eq!(q931.len(), 1, "{q931:#?}");
    assert!(q931[0].contains("\"dport\":1232"), "{}", q931[0]);
    let h245 = out.events_with(&["exp-new", "\"helper\":\"H.245\""]);
    let media_ports: std::collections::BTreeSet<&str> = ["5000", "5001", "2006", "2007"]
        .into_iter()
        .filter(|p| h245.iter().any(|e| e.contains(&format!("\"dport\":{p},"))))
        .collect();
    assert_eq!(media_ports.len(), 4, "{h245:#?}");
    if require(tshark_available(), "tshark") {
        let wan_pcap = out.out_dir.join("wan0.pcap");
        for iface in ["lan0", "wan0"] {
            let pcap = out.out_dir.join(format!("{iface}.pcap"));
            let o = std::process::Command::new("tshark")
                .args(["-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE"])
                .args(["-o", "udp.check_checksum:TRUE", "-d", "tcp.port==1232,h245", "-r"])
                .arg(&pcap)
                .args(["-Y", "tcp.checksum.status == 0 || ip.checksum.status == 0 || udp.checksum.status == 0 || _ws.malformed || tcp.analysis.ack_lost_segment"])
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let bad = String::from_utf8_lossy(&o.stdout);
            assert!(bad.trim().is_empty(), "{iface}:\n{bad}");
        }
        // What left carries the NAT address: the Setup's sourceCallSignalAddress and every
        // address of the caller's OpenLogicalChannel(Ack).
        let decode = |filter: &str, fields: &[&str]| {
            let mut cmd = std::process::Command::new("tshark");
            cmd.args(["-d", "tcp.port==1232,h245", "-r"])
                .arg(&wan_pcap)
                .args(["-Y", filter, "-T", "fields", "-E", "occurrence=a"]);
            for f in fields {
                cmd.args(["-e", f]);
            }
            let o = cmd.output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8(o.stdout).unwrap()
        };
        let setup = decode("h225.setup_element", &["h225.ipV4", "h225.ipV4_port"]);
        assert!(setup.contains(&format!("{CALLEE},{PUB}")), "{setup}");
        let olc = decode(
            "h245.openLogicalChannel_element || h245.openLogicalChannelAck_element",
            &["h245.ip4_network"],
        );
        assert_eq!(olc.lines().count(), 2, "{olc}");
        assert!(olc.lines().all(|l| l.split(',').all(|a| a == PUB)), "{olc}");
        assert!(!olc.contains(CALLER) && !setup.contains(CALLER));
    }
}

#[test]
fn without_the_helper_the_h245_connection_and_media_are_dropped() {
    let sc = Scenario::with_config("helper-h323-none", &config(""), RULES, "");
    let out = sc.run(&arrivals(), Some(10.0));
    let wan: Vec<(u8, u16, u16)> = out.on("wan0").iter().map(|p| ports(p)).collect();
    let lan: Vec<(u8, u16, u16)> = out.on("lan0").iter().map(|p| ports(p)).collect();
    // The call signalling crosses (port 1720 is allowed) ...
    assert!(wan.iter().any(|&(pr, _, d)| pr == 6 && d == 1720));
    // ... but nothing of H.245 or media does: no SYN to 1232 left (what does leave to it
    // is the router's own reset to the callee's answer addressed to it), no UDP at all.
    let syn_to_1232 = out.on("wan0").iter().any(|p| {
        let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
        TcpPacket::new_checked(ip.payload())
            .is_ok_and(|t| t.dst_port() == 1232 && t.syn() && !t.ack())
    });
    assert!(!syn_to_1232);
    assert!(!wan.iter().any(|&(pr, _, _)| pr == 17), "{wan:?}");
    assert!(!lan.iter().any(|&(pr, _, _)| pr == 17), "{lan:?}");
    assert!(out.events_with(&["exp-new"]).is_empty());
}

#[test]
fn a_setup_with_fast_start_from_inside_rewrites_and_expects_over_ipv4() {
    // A hand-made call: a TPKT with only a header, then the rest, must still reach the
    // helper whole; the caller's own call signalling endpoint in the Setup leaves NATed.
    let setup = hex(&SETUP);
    let syn = tcp(CALLER, 40000, CALLEE, 1720, 1000, 0, SYN, b"");
    let synack = tcp(CALLEE, 1720, PUB, 40000, 9000, 1001, SYN | ACK, b"");
    let ack = tcp(CALLER, 40000, CALLEE, 1720, 1001, 9001, ACK, b"");
    let head = tcp(
        CALLER,
        40000,
        CALLEE,
        1720,
        1001,
        9001,
        PSH | ACK,
        &setup[..4],
    );
    let rest = tcp(
        CALLER,
        40000,
        CALLEE,
        1720,
        1005,
        9001,
        PSH | ACK,
        &setup[4..],
    );
    let rtcp_in = udp(CALLEE, 7001, PUB, 5001, b"\x80\xc8rtcp");
    let arrivals = vec![
        Arrival {
            iface: "lan0",
            at: 0.0,
            packet: syn,
        },
        Arrival {
            iface: "wan0",
            at: 0.01,
            packet: synack,
        },
        Arrival {
            iface: "lan0",
            at: 0.02,
            packet: ack,
        },
        Arrival {
            iface: "lan0",
            at: 0.03,
            packet: head,
        },
        Arrival {
            iface: "lan0",
            at: 0.04,
            packet: rest,
        },
        Arrival {
            iface: "wan0",
            at: 0.05,
            packet: rtcp_in,
        },
    ];
    // (The helper's table, with the quoting a name with a dot needs in TOML.)
    let sc = Scenario::with_config(
        "helper-h323-faststart",
        &config("[helpers]\nauto_assign = true\n[helpers.\"Q.931\"]\nports = [1720]\n"),
        RULES,
        "",
    );
    let out = sc.run(&arrivals, None);
    let sent: Vec<u8> = out
        .on("wan0")
        .iter()
        .filter_map(|p| {
            let ip = Ipv4Packet::new_checked(&p[..]).ok()?;
            let t = TcpPacket::new_checked(ip.payload()).ok()?;
            Some(t.payload().to_vec())
        })
        .flatten()
        .collect();
    assert_eq!(
        sent.len(),
        setup.len(),
        "the Setup left whole, its length unchanged"
    );
    // sourceCallSignalAddress (the caller's own 10.1.3.143:40000) now names the public
    // address; the fastStart's RTCP address is the public one, on a port of NAT's choice.
    let public = PUB.parse::<Ipv4Addr>().unwrap().octets();
    assert_eq!(
        sent.windows(4).filter(|w| *w == public).count(),
        5,
        "h245Address, sourceCallSignalAddress and the 3 fastStart addresses"
    );
    let caller = CALLER.parse::<Ipv4Addr>().unwrap().octets();
    assert!(!sent.windows(4).any(|w| w == caller));
    // The rewrites are events, their binary announcements in hex (198.51.100.1: c6336401).
    assert!(
        !out.events_with(&["\"action\":\"rewrite\"", "announced as c6336401"])
            .is_empty(),
        "{:#?}",
        out.events_with(&["rewrite"])
    );
    // The callee's RTCP to the announced port reached the caller as RELATED.
    let lan: Vec<(u8, u16, u16)> = out.on("lan0").iter().map(|p| ports(p)).collect();
    assert!(
        lan.contains(&(17, 7001, 5001)),
        "{lan:?} {:#?}",
        out.events_with(&["drop"])
    );
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// A TPKT, Q.931 SETUP and H.225.0 Setup-UUIE (encoded by pycrate: `sim_setup_frame` of
/// helpers/tests/data/h323/vectors.tsv, see helpers/tests/h323_vectors.py): h245Address
/// 10.1.3.143:1300, destCallSignalAddress 10.1.6.18:1720, sourceCallSignalAddress
/// 10.1.3.143:40000, one fastStart OLC with RTCP 5001 forward and RTP/RTCP 5000/5001 reverse.
static SETUP: std::sync::LazyLock<&str> = std::sync::LazyLock::new(|| {
    include_str!("../../helpers/tests/data/h323/vectors.tsv")
        .lines()
        .find_map(|l| l.strip_prefix("sim_setup_frame\t"))
        .expect("sim_setup_frame in vectors.tsv")
});

/// Announced (address, port) pairs naming `addr` in a payload (PER: 4 octets and a port).
fn announced(payload: &[u8], addr: &str) -> Vec<u16> {
    let a = addr.parse::<Ipv4Addr>().unwrap().octets();
    payload
        .windows(6)
        .filter(|w| w[..4] == a)
        .map(|w| u16::from_be_bytes([w[4], w[5]]))
        .collect()
}

#[test]
fn two_callers_announcing_the_same_media_ports_get_distinct_nat_pairs() {
    // The same Setup from a second caller, 10.1.3.144 (the address patched in place).
    let a = hex(&SETUP);
    let other = [10, 1, 3, 144];
    let mut b = a.clone();
    for i in 0..b.len() - 4 {
        if b[i..i + 4] == [10, 1, 3, 143] {
            b[i..i + 4].copy_from_slice(&other);
        }
    }
    let mut arrivals = Vec::new();
    for (k, (caller, setup)) in [(CALLER, &a), ("10.1.3.144", &b)].into_iter().enumerate() {
        // Distinct source ports, which the masquerade keeps.
        let (t, port) = (k as f64, 40000 + k as u16);
        arrivals.extend([
            Arrival {
                iface: "lan0",
                at: t,
                packet: tcp(caller, port, CALLEE, 1720, 1000, 0, SYN, b""),
            },
            Arrival {
                iface: "wan0",
                at: t + 0.1,
                packet: tcp(CALLEE, 1720, PUB, port, 7000, 1001, SYN | ACK, b""),
            },
            Arrival {
                iface: "lan0",
                at: t + 0.2,
                packet: tcp(caller, port, CALLEE, 1720, 1001, 7001, ACK, b""),
            },
            Arrival {
                iface: "lan0",
                at: t + 0.3,
                packet: tcp(caller, port, CALLEE, 1720, 1001, 7001, PSH | ACK, setup),
            },
        ]);
    }
    let sc = Scenario::with_config(
        "helper-h323-pairs",
        &config("[helpers]\nauto_assign = true\n"),
        RULES,
        "",
    );
    let out = sc.run(&arrivals, None);
    let setups: Vec<Vec<u8>> = out
        .on("wan0")
        .iter()
        .filter_map(|p| {
            let ip = Ipv4Packet::new_checked(&p[..]).ok()?;
            let t = TcpPacket::new_checked(ip.payload()).ok()?;
            (!t.payload().is_empty()).then(|| t.payload().to_vec())
        })
        .collect();
    assert_eq!(setups.len(), 2, "{:#?}", out.events_with(&["drop"]));
    let first = announced(&setups[0], PUB);
    let second = announced(&setups[1], PUB);
    // h245Address, sourceCallSignalAddress, then the fastStart RTCP, RTP, RTCP.
    assert_eq!(
        (first[0], &first[2..]),
        (1300, &[5001, 5000, 5001][..]),
        "{first:?}"
    );
    assert_eq!(
        (second[0], &second[2..]),
        (1301, &[5003, 5002, 5003][..]),
        "{second:?}"
    );
    // Both Setups say sourceCallSignalAddress 10.1.3.14x:40000; the first caller's
    // connection is on port 40000 (its own endpoint, mapped as the masquerade kept it), the
    // second one's on 40001: only its address is mapped, the port stays.
    assert_eq!((first[1], second[1]), (40000, 40000));
}

/// IPv6 through masquerade: the Setup's own endpoint and its fastStart media leave naming the
/// public IPv6 address (18-byte rewrites in place), and the callee's RTCP to the announced
/// port reaches the caller as RELATED.
#[test]
fn an_ipv6_setup_through_masquerade() {
    const V6_RULES: &str = "*nat
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
-A FORWARD -i lan0 -p tcp -m tcp --dport 1720 -j ACCEPT
COMMIT
";
    let cfg = config("[helpers]\nauto_assign = true\n")
        .replace(
            "addresses = [\"10.1.3.1/24\"]",
            "addresses = [\"10.1.3.1/24\", \"2001:db8:1::1/64\"]",
        )
        .replace(
            "addresses = [\"198.51.100.1/24\"]",
            "addresses = [\"198.51.100.1/24\", \"2001:db8:2::1/64\"]",
        )
        + "\n[[route]]\nprefix = \"::/0\"\ninterface = \"wan0\"\nvia = \"2001:db8:2::fe\"\n";
    let (caller, callee, public) = ("2001:db8:1::2", "2001:db8:9::10", "2001:db8:2::1");
    let setup = hex(include_str!("../../helpers/tests/data/h323/vectors.tsv")
        .lines()
        .find_map(|l| l.strip_prefix("sim_setup_frame_v6\t"))
        .unwrap());
    let arrivals = vec![
        Arrival {
            iface: "lan0",
            at: 0.0,
            packet: tcp(caller, 40000, callee, 1720, 1000, 0, SYN, b""),
        },
        Arrival {
            iface: "wan0",
            at: 0.01,
            packet: tcp(callee, 1720, public, 40000, 9000, 1001, SYN | ACK, b""),
        },
        Arrival {
            iface: "lan0",
            at: 0.02,
            packet: tcp(caller, 40000, callee, 1720, 1001, 9001, ACK, b""),
        },
        Arrival {
            iface: "lan0",
            at: 0.03,
            packet: tcp(caller, 40000, callee, 1720, 1001, 9001, PSH | ACK, &setup),
        },
        Arrival {
            iface: "wan0",
            at: 0.04,
            packet: udp(callee, 7001, public, 5001, &[0x80, 0xc9, 0, 1, 1, 2, 3, 4]),
        },
    ];
    let sc = Scenario::with_config("helper-h323-v6", &cfg, "", V6_RULES);
    let out = sc.run(&arrivals, None);
    let sent = out
        .on("wan0")
        .into_iter()
        .find(|p| p.len() > 100)
        .expect("the Setup left");
    // IPv6 header (40) and TCP header (20, no options) before the payload.
    let payload = &sent[60..];
    assert_eq!(payload.len(), setup.len());
    let octets = |a: &str| a.parse::<std::net::Ipv6Addr>().unwrap().octets();
    let count = |a: &str| payload.windows(16).filter(|w| *w == octets(a)).count();
    assert_eq!(count(caller), 0, "no inside address left");
    assert_eq!(
        count(public),
        5,
        "h245Address, sourceCallSignalAddress, 3 media"
    );
    assert_eq!(count(callee), 1, "destCallSignalAddress, unchanged");
    let reached = out.on("lan0").iter().any(|p| {
        p.len() >= 44
            && p[6] == 17
            && p[24..40] == octets(caller)
            && p[42..44] == 5001u16.to_be_bytes()
    });
    assert!(reached, "{:#?}", out.events_with(&["drop"]));
}
