//! Virtual reassembly in the simulator: the pipeline decides on the
//! reassembled datagram, and exactly the original fragments leave (in
//! arrival order, TTL decremented, NAT written in), byte for byte.

use tests::flags::*;
use tests::*;
use wire::{checksum, Ipv4Packet, UdpPacket};

const FILTER: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -i lan0 -o wan0 -j ACCEPT
COMMIT
";

const FILTER6: &str = FILTER;

fn masq_rules() -> String {
    format!("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o wan0 -j MASQUERADE\nCOMMIT\n{FILTER}")
}

const C: &str = "192.0.2.2";
const S: &str = "203.0.113.10";
const C6: &str = "2001:db8:1::2";
const S6: &str = "2001:db8:99::10";

fn at(iface: &'static str, t: f64, packet: Vec<u8>) -> Arrival {
    Arrival {
        iface,
        at: t,
        packet,
    }
}

/// A UDP datagram with a patterned payload of `n` bytes.
fn big_udp(src: &str, dst: &str, n: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
    udp(src, 40000, dst, 9000, &payload)
}

/// Splits an IPv6 packet (no extension headers) into fragments with a
/// Fragment header; `ext` is inserted before the Fragment header (its first
/// byte's Next Header is patched to 44).
fn frag6(whole: &[u8], cuts: &[(usize, usize)], id: u32, ext: &[u8]) -> Vec<Vec<u8>> {
    let nh = whole[6];
    let payload = &whole[40..];
    cuts.iter()
        .map(|&(off, len)| {
            let end = (off + len).min(payload.len());
            let more = end < payload.len();
            let mut p = whole[..40].to_vec();
            let mut ext = ext.to_vec();
            if ext.is_empty() {
                p[6] = 44;
            } else {
                p[6] = 60;
                ext[0] = 44;
            }
            p.extend_from_slice(&ext);
            let fo = (off as u16) | u16::from(more);
            p.push(nh);
            p.push(0);
            p.extend_from_slice(&fo.to_be_bytes());
            p.extend_from_slice(&id.to_be_bytes());
            p.extend_from_slice(&payload[off..end]);
            let plen = (p.len() - 40) as u16;
            p[4..6].copy_from_slice(&plen.to_be_bytes());
            p
        })
        .collect()
}

/// What a fragment looks like after one hop without NAT.
fn hop(p: &[u8]) -> Vec<u8> {
    let mut p = p.to_vec();
    if p[0] >> 4 == 4 {
        p[8] -= 1;
        p[10] = 0;
        p[11] = 0;
        let ihl = usize::from(p[0] & 0x0f) * 4;
        let ck = checksum::data(&p[..ihl]);
        p[10..12].copy_from_slice(&ck.to_be_bytes());
    } else {
        p[7] -= 1;
    }
    p
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 1 {
        return vec![vec![0]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

const CUTS3: [(usize, usize); 3] = [(0, 64), (64, 64), (128, 64)];

#[test]
fn every_permutation_of_three_fragments_leaves_unchanged_in_arrival_order() {
    let w4 = big_udp(C, S, 150);
    let w6 = big_udp(C6, S6, 150);
    let f4 = frag4(&w4, &CUTS3, 0x4242);
    let f6 = frag6(&w6, &CUTS3, 0xdead_beef, &[]);
    for order in permutations(3) {
        let sc = Scenario::gateway("defrag-perm", FILTER, FILTER6);
        let mut arr = Vec::new();
        for (k, &i) in order.iter().enumerate() {
            arr.push(at("lan0", 0.01 * k as f64, f4[i].clone()));
            arr.push(at("lan0", 0.01 * k as f64 + 0.001, f6[i].clone()));
        }
        let out = sc.run(&arr, None);
        // Each datagram leaves when complete: the v4 one's last fragment
        // comes before the v6 one's.
        let want: Vec<Vec<u8>> = order
            .iter()
            .map(|&i| hop(&f4[i]))
            .chain(order.iter().map(|&i| hop(&f6[i])))
            .collect();
        assert_eq!(out.on("wan0"), want, "order {order:?}");
        assert!(
            out.conntrack.contains("sport=40000 dport=9000"),
            "{}",
            out.conntrack
        );
    }
}

#[test]
fn tiny_and_unequal_fragments_and_extension_headers_before_the_fragment_header() {
    let w4 = big_udp(C, S, 100);
    let w6 = big_udp(C6, S6, 100);
    // 8-byte pieces (the smallest legal) with unequal sizes after them.
    let cuts = [(0, 8), (8, 16), (24, 8), (32, 48), (80, 40)];
    let f4 = frag4(&w4, &cuts, 9);
    // A Destination Options header (8 bytes, PadN) before the Fragment header.
    let dest = [0, 0, 1, 4, 0, 0, 0, 0];
    // RFC 7112 needs the UDP header in the first fragment: 8 bytes suffice.
    let f6 = frag6(&w6, &cuts, 10, &dest);
    let sc = Scenario::gateway("defrag-tiny", FILTER, FILTER6);
    let mut arr: Vec<Arrival> = f4.iter().map(|p| at("lan0", 0.0, p.clone())).collect();
    arr.extend(f6.iter().rev().map(|p| at("lan0", 0.1, p.clone())));
    let out = sc.run(&arr, None);
    let mut want: Vec<Vec<u8>> = f4.iter().map(|p| hop(p)).collect();
    want.extend(f6.iter().rev().map(|p| hop(p)));
    assert_eq!(out.on("wan0"), want);
}

#[test]
fn masquerade_is_written_into_every_fragment_and_the_reply_returns() {
    let w = big_udp(C, S, 150);
    let f = frag4(&w, &CUTS3, 0x0101);
    let sc = Scenario::gateway("defrag-masq", &masq_rules(), FILTER6);
    let out = sc.run(
        &[
            at("lan0", 0.0, f[2].clone()),
            at("lan0", 0.0, f[0].clone()),
            at("lan0", 0.0, f[1].clone()),
            at("wan0", 0.5, udp(S, 9000, "198.51.100.1", 40000, b"ok")),
        ],
        None,
    );
    let sent = out.on("wan0");
    assert_eq!(sent.len(), 3);
    for p in &sent {
        let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert_eq!(ip.src_addr().to_string(), "198.51.100.1");
        assert!(ip.verify_checksum());
        assert_eq!(ip.ident(), 0x0101, "IPv4 ID kept");
    }
    // Reassemble what left (arrival order: offsets 128, 0, 64) and check the
    // UDP checksum over the whole datagram: the first fragment's fix is exact.
    let mut data = [0u8; 150 + 8];
    for p in &sent {
        let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
        let off = usize::from(ip.frag_offset());
        data[off..off + ip.payload().len()].copy_from_slice(ip.payload());
    }
    let u = UdpPacket::new_checked(&data[..]).unwrap();
    assert!(u.verify_checksum_v4("198.51.100.1".parse().unwrap(), S.parse().unwrap()));
    assert_eq!(&data[8..], &w[28..], "payload unchanged");
    // The unfragmented reply found the connection and went back de-NATed.
    let back = out.on("lan0");
    assert_eq!(back.len(), 1);
    assert_eq!(
        Ipv4Packet::new_checked(&back[0][..])
            .unwrap()
            .dst_addr()
            .to_string(),
        C
    );
}

#[test]
fn the_verdict_applies_to_every_fragment() {
    // Unsolicited inbound: the reassembled datagram is NEW from wan0, which
    // the policy drops, so none of its fragments leaves.
    let w = big_udp(S, C, 150);
    let f = frag4(&w, &CUTS3, 77);
    let sc = Scenario::gateway("defrag-verdict", FILTER, FILTER6);
    let out = sc.run(
        &f.iter()
            .map(|p| at("wan0", 0.0, p.clone()))
            .collect::<Vec<_>>(),
        None,
    );
    assert!(out.on("lan0").is_empty());
    assert_eq!(out.events_with(&["policy: drop", "FORWARD"]).len(), 1);
}

#[test]
fn duplicates_go_alone_overlaps_take_the_datagram_and_its_late_fragments() {
    let w = big_udp(C, S, 150);
    let f = frag4(&w, &CUTS3, 5);
    let sc = Scenario::gateway("defrag-dup", FILTER, FILTER6);
    // Exact duplicate of the middle fragment: dropped alone.
    let out = sc.run(
        &[
            at("lan0", 0.0, f[0].clone()),
            at("lan0", 0.0, f[1].clone()),
            at("lan0", 0.0, f[1].clone()),
            at("lan0", 0.0, f[2].clone()),
        ],
        None,
    );
    assert_eq!(out.on("wan0"), vec![hop(&f[0]), hop(&f[1]), hop(&f[2])]);
    assert_eq!(out.events_with(&["frag: duplicate"]).len(), 1);

    // Partial overlap (56..120 over 0..64) and a nested one (16..32 inside 0..64).
    for bad in [(56usize, 64usize), (16, 16)] {
        let ov = frag4(&w, &[bad], 6).remove(0);
        let g = frag4(&w, &CUTS3, 6);
        // A clean resend with the same ID comes after the overlap: RFC 5722
        // discards it too; a new ID goes through.
        let h = frag4(&w, &CUTS3, 7);
        let sc = Scenario::gateway("defrag-overlap", FILTER, FILTER6);
        let mut arr = vec![at("lan0", 0.0, g[0].clone()), at("lan0", 0.0, ov)];
        arr.extend(g.iter().map(|p| at("lan0", 0.1, p.clone())));
        arr.extend(h.iter().map(|p| at("lan0", 0.2, p.clone())));
        let out = sc.run(&arr, None);
        assert_eq!(
            out.on("wan0"),
            h.iter().map(|p| hop(p)).collect::<Vec<_>>(),
            "overlap {bad:?}"
        );
        assert_eq!(out.events_with(&["frag: overlap"]).len(), 1);
        assert_eq!(out.events_with(&["after an overlap"]).len(), 3);
    }
}

#[test]
fn an_atomic_fragment_is_its_own_datagram_even_beside_a_pending_queue() {
    let w = big_udp(C6, S6, 150);
    let f = frag6(&w, &CUTS3, 99, &[]);
    // Atomic fragment (offset 0, M=0) with the same ID as the pending queue.
    let small = udp(C6, 40001, S6, 9000, b"atomic");
    let atomic = frag6(&small, &[(0, 100)], 99, &[]).remove(0);
    assert_eq!(&atomic[40 + 2..40 + 4], &[0, 0], "offset 0, M=0");
    let sc = Scenario::gateway("defrag-atomic", FILTER, FILTER6);
    let out = sc.run(
        &[
            at("lan0", 0.0, f[0].clone()),
            at("lan0", 0.1, atomic.clone()),
            at("lan0", 0.2, f[1].clone()),
            at("lan0", 0.3, f[2].clone()),
        ],
        None,
    );
    assert_eq!(
        out.on("wan0"),
        vec![hop(&atomic), hop(&f[0]), hop(&f[1]), hop(&f[2])],
        "the atomic fragment leaves at once, with its Fragment header; the queue is untouched"
    );
}

#[test]
fn malformed_fragment_sets_are_refused() {
    let w6 = big_udp(C6, S6, 150);
    let w4 = big_udp(C, S, 150);
    // RFC 7112: a first fragment whose header chain stops before the UDP
    // header (a 16-byte Destination Options header, then only 4 bytes).
    let dest = [0, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let no_l4 = frag6(&w6, &[(0, 4)], 1, &dest).remove(0);
    // RFC 8200: a non-last fragment of 60 bytes (not a multiple of 8).
    let odd = frag6(&w6, &[(0, 60)], 2, &[]).remove(0);
    // RFC 8200: offset + length past 65,535.
    let mut far = frag6(&w6, &[(64, 64)], 3, &[]).remove(0);
    far[42..44].copy_from_slice(&(65_528u16 | 1).to_be_bytes());
    // RFC 1858: an IPv4 TCP first fragment too short for the TCP header.
    let t = tcp(C, 40000, S, 80, 1, 0, SYN, &[0u8; 40]);
    let tiny = frag4(&t, &[(0, 8)], 4).remove(0);
    // RFC 3128: a TCP fragment at offset 8 (FO = 1).
    let fo1 = frag4(&t, &[(8, 16)], 4).remove(0);
    let sc = Scenario::gateway("defrag-bad", FILTER, FILTER6);
    let out = sc.run(
        &[
            at("lan0", 0.0, no_l4),
            at("lan0", 0.0, odd),
            at("lan0", 0.0, far),
            at("lan0", 0.0, tiny),
            at("lan0", 0.0, fo1),
            // Valid traffic afterwards still passes.
            at("lan0", 0.1, frag4(&w4, &CUTS3, 8)[0].clone()),
            at("lan0", 0.1, frag4(&w4, &CUTS3, 8)[1].clone()),
            at("lan0", 0.1, frag4(&w4, &CUTS3, 8)[2].clone()),
        ],
        None,
    );
    assert_eq!(out.on("wan0").len(), 3);
    for reason in [
        "RFC 7112",
        "frag: length not a multiple of 8",
        "frag: datagram over 65535 bytes",
        "RFC 1858",
        "RFC 3128",
    ] {
        assert_eq!(
            out.events_with(&[reason]).len(),
            1,
            "{reason}: {:#?}",
            out.events
        );
    }
    assert!(out.stats.contains("RFC 7112"), "{}", out.stats);
}

fn config(extra: &str) -> String {
    format!(
        r#"
[[interface]]
name = "lan0"
kind = "tun"
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
[rules]
ipv4 = "v4.rules"
ipv6 = "v6.rules"
{extra}
"#
    )
}

#[test]
fn timeout_discards_and_optionally_reports_time_exceeded() {
    let w = big_udp(C, S, 150);
    let f = frag4(&w, &CUTS3, 11);
    let w6 = big_udp(C6, S6, 150);
    let f6 = frag6(&w6, &CUTS3, 12, &[]);
    // A datagram for the router itself: there it is the destination host.
    let local = frag4(&big_udp(C, "192.0.2.1", 150), &CUTS3, 13);
    let arr = [
        at("lan0", 0.0, f[0].clone()),
        at("lan0", 0.0, f6[0].clone()),
        at("lan0", 0.0, f6[2].clone()),
        at("lan0", 0.0, local[0].clone()),
        // The missing piece arrives too late.
        at("lan0", 61.0, f[1].clone()),
        at("lan0", 61.0, f[2].clone()),
    ];
    let quiet = Scenario::with_config("defrag-to", &config(""), FILTER, FILTER6);
    let out = quiet.run(&arr, Some(70.0));
    assert!(out.on("wan0").is_empty());
    assert!(out.on("lan0").is_empty(), "silent by default");
    assert!(
        out.stats.contains("frag: reassembly timeout"),
        "{}",
        out.stats
    );

    let loud = Scenario::with_config(
        "defrag-te",
        &config("[defrag]\ntime_exceeded = true\ntimeout = 30\n"),
        FILTER,
        FILTER6,
    );
    let out = loud.run(&arr, Some(70.0));
    let back = out.on("lan0");
    // v6: type 3 code 1. v4: type 11 code 1 only for the datagram addressed to
    // the router (RFC 1122 §3.3.2: the destination host's; a router forwarding
    // the fragments says nothing, as Linux's conntrack reassembly). The later
    // datagram from t=61 (no first fragment) times out silently.
    let kinds: Vec<(u8, u8)> = back
        .iter()
        .map(|p| {
            if p[0] >> 4 == 4 {
                (p[20], p[21])
            } else {
                (p[40], p[41])
            }
        })
        .collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert!(
        kinds.contains(&(11, 1)) && kinds.contains(&(3, 1)),
        "{kinds:?}"
    );
    let v4 = back.iter().find(|p| p[0] >> 4 == 4).unwrap();
    assert_eq!(&v4[28..48], &local[0][..20], "about the local datagram");
}

#[test]
fn queue_exhaustion_by_one_source_does_not_starve_another() {
    let cfg = config("[defrag]\nmax_datagrams = 8\nper_source = 2\n");
    let sc = Scenario::with_config("defrag-exh", &cfg, FILTER, FILTER6);
    let w = big_udp(C, S, 150);
    let mut arr = Vec::new();
    for id in 100..110 {
        arr.push(at("lan0", 0.0, frag4(&w, &CUTS3, id)[0].clone()));
    }
    let other = big_udp("192.0.2.3", S, 150);
    for p in frag4(&other, &CUTS3, 100) {
        arr.push(at("lan0", 0.5, p));
    }
    // At its limit, a source gives up its own oldest datagram rather than
    // being refused until they time out: its two latest still complete.
    for id in [108, 109] {
        for p in &frag4(&w, &CUTS3, id)[1..] {
            arr.push(at("lan0", 0.6, p.clone()));
        }
    }
    let out = sc.run(&arr, None);
    assert_eq!(
        out.on("wan0").len(),
        9,
        "the other source's datagram passes, and the first source's last two"
    );
    assert_eq!(dropped(&out, "frag: evicted"), 8, "{}", out.stats);
}

#[test]
fn bad_defrag_settings_are_rejected_with_their_position() {
    let e = router::config::Config::parse(
        "[defrag]\nmemory_high = 100000\nmemory_low = 200000\n",
        "gw.toml",
        std::path::Path::new("."),
    )
    .unwrap_err();
    assert_eq!((e.line, e.column), (3, 14), "{e}");
    let e = router::config::Config::parse(
        "[defrag]\ntimeout = 0\n",
        "gw.toml",
        std::path::Path::new("."),
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("gw.toml:2:11:"), "{e}");
}

#[test]
fn fragments_larger_than_the_egress_mtu() {
    // wan0 MTU 1280: a 1500-byte IPv4 fragment without DF is split further on
    // 8-byte boundaries; with DF its datagram gets Fragmentation Needed; an
    // IPv6 datagram with a fragment over the MTU gets Packet Too Big.
    let cfg = config("").replace(
        "addresses = [\"198.51.100.1/24\", \"2001:db8:2::1/64\"]",
        "mtu = 1280\naddresses = [\"198.51.100.1/24\", \"2001:db8:2::1/64\"]",
    );
    let sc = Scenario::with_config("defrag-mtu", &cfg, FILTER, FILTER6);
    let w = big_udp(C, S, 2000);
    let f = frag4(&w, &[(0, 1480), (1480, 600)], 21);
    let mut df = frag4(&w, &[(0, 1480), (1480, 600)], 22);
    for p in &mut df {
        p[6] |= 0x40;
        p[10] = 0;
        p[11] = 0;
        let ck = checksum::data(&p[..20]);
        p[10..12].copy_from_slice(&ck.to_be_bytes());
    }
    let w6 = big_udp(C6, S6, 2000);
    let f6 = frag6(&w6, &[(0, 1400), (1400, 700)], 23, &[]);
    let mut arr: Vec<Arrival> = f.iter().map(|p| at("lan0", 0.0, p.clone())).collect();
    arr.extend(df.iter().map(|p| at("lan0", 1.0, p.clone())));
    arr.extend(f6.iter().map(|p| at("lan0", 2.0, p.clone())));
    let out = sc.run(&arr, None);
    let sent = out.on("wan0");
    // Non-DF: the 1500-byte fragment became two (offsets 0 and 1256), the
    // 548-byte one passed as it was.
    let v4: Vec<(u16, u16, bool, usize)> = sent
        .iter()
        .filter(|p| p[0] >> 4 == 4)
        .map(|p| {
            let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
            assert!(p.len() <= 1280 && ip.verify_checksum());
            (
                ip.ident(),
                ip.frag_offset(),
                ip.more_frags(),
                ip.payload().len(),
            )
        })
        .collect();
    assert_eq!(
        v4,
        vec![
            (21, 0, true, 1256),
            (21, 1256, true, 224),
            (21, 1480, false, 528),
        ]
    );
    // DF: the first fragment is too big, so the datagram is refused whole with
    // Fragmentation Needed (MTU 1280), though its second fragment would fit.
    // IPv6: Packet Too Big, and nothing of the datagram leaves.
    assert_eq!(sent.iter().filter(|p| p[0] >> 4 == 6).count(), 0);
    let back = out.on("lan0");
    let errors: Vec<(u8, u8, u32)> = back
        .iter()
        .map(|p| {
            let (t, c, rest) = if p[0] >> 4 == 4 {
                (20, 21, 24)
            } else {
                (40, 41, 44)
            };
            (
                p[t],
                p[c],
                u32::from_be_bytes(p[rest..rest + 4].try_into().unwrap()),
            )
        })
        .collect();
    assert_eq!(errors, vec![(3, 4, 1280), (2, 0, 1280)]);
    assert_eq!(out.events_with(&["packet too big"]).len(), 2);
}

#[test]
fn headers_before_the_fragment_header_and_next_headers_may_differ_between_fragments() {
    // RFC 8200 §4.5: only the first fragment's unfragmentable part and Next
    // Header count.
    let w6 = big_udp(C6, S6, 150);
    let dest = [0, 0, 1, 4, 0, 0, 0, 0];
    let first = frag6(&w6, &CUTS3[..1], 31, &dest).remove(0);
    let mut rest = frag6(&w6, &CUTS3, 31, &[]);
    // Only the offset-0 fragment's Next Header counts: a later fragment
    // naming TCP changes nothing, and keeps its value on the way out.
    rest[1][40] = 6;
    let sc = Scenario::gateway("defrag-diff", FILTER, FILTER6);
    let out = sc.run(
        &[
            at("lan0", 0.0, rest[2].clone()),
            at("lan0", 0.0, first.clone()),
            at("lan0", 0.0, rest[1].clone()),
        ],
        None,
    );
    assert_eq!(
        out.on("wan0"),
        vec![hop(&rest[2]), hop(&first), hop(&rest[1])]
    );
}

/// Packets the router makes while a reassembled datagram is being handled
/// (an echo reply to a fragmented ping, a REJECT) are sent themselves; the
/// datagram's fragments are not sent in their place.
#[test]
fn router_answers_to_reassembled_datagrams_are_not_replaced_by_the_fragments() {
    let rules = "*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p udp -m udp --dport 9000 -j REJECT --reject-with icmp-port-unreachable
COMMIT
";
    let sc = Scenario::gateway("defrag-local", rules, "");
    // A fragmented ping to the router itself (192.0.2.1), and a fragmented
    // datagram that the ruleset rejects.
    let ping = ip(
        C,
        "192.0.2.1",
        1,
        64,
        {
            let mut m = vec![8, 0, 0, 0, 0, 7, 0, 1];
            m.extend((0..1500u32).map(|i| i as u8));
            let ck = checksum::data(&m);
            m[2..4].copy_from_slice(&ck.to_be_bytes());
            m
        },
        None,
    );
    let pf = frag4(&ping, &[(0, 1000), (1000, 600)], 41);
    let rejected = frag4(&big_udp(C, S, 150), &CUTS3, 42);
    let mut arr: Vec<Arrival> = pf.iter().map(|p| at("lan0", 0.0, p.clone())).collect();
    arr.extend(rejected.iter().map(|p| at("lan0", 0.1, p.clone())));
    let out = sc.run(&arr, None);
    assert!(out.on("wan0").is_empty(), "nothing is forwarded");
    let back = out.on("lan0");
    // The echo reply (1528 bytes, fragmented by the router for lan0's MTU of
    // 1500) and one port unreachable, none of them an original fragment.
    assert!(back
        .iter()
        .all(|p| !pf.contains(p) && !rejected.contains(p)));
    let icmp: Vec<(u8, u8)> = back
        .iter()
        .filter(|p| p[6] & 0x1f == 0 && p[7] == 0)
        .map(|p| (p[20], p[21]))
        .collect();
    assert!(icmp.contains(&(0, 0)), "echo reply: {icmp:?}");
    assert!(icmp.contains(&(3, 3)), "port unreachable: {icmp:?}");
}

/// The count of a drop reason in the final statistics.
fn dropped(out: &SimOutput, reason: &str) -> u64 {
    out.stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("drop reason=\"{reason}\" count=")))
        .map_or(0, |n| n.parse().unwrap())
}

/// `p` with its ECN field set to `ecn` (IPv4 header checksum fixed).
fn with_ecn(p: &[u8], ecn: u8) -> Vec<u8> {
    let mut p = p.to_vec();
    if p[0] >> 4 == 4 {
        p[1] = (p[1] & !3) | ecn;
        p[10] = 0;
        p[11] = 0;
        let ck = checksum::data(&p[..20]);
        p[10..12].copy_from_slice(&ck.to_be_bytes());
    } else {
        p[1] = (p[1] & !0x30) | ecn << 4;
    }
    p
}

/// `p` with its TTL or hop limit set to `ttl`.
fn with_ttl(p: &[u8], ttl: u8) -> Vec<u8> {
    let mut p = p.to_vec();
    if p[0] >> 4 == 4 {
        p[8] = ttl;
        p[10] = 0;
        p[11] = 0;
        let ck = checksum::data(&p[..20]);
        p[10..12].copy_from_slice(&ck.to_be_bytes());
    } else {
        p[7] = ttl;
    }
    p
}

/// Issue 15 item 2: RFC 3168 §5.3. Not-ECT beside ECT drops the datagram (counted); CE
/// beside ECT is a valid datagram, and its fragments leave as they came (the destination's
/// reassembly carries the CE into the whole).
#[test]
fn ecn_not_ect_mixed_with_ect_drops_the_datagram_and_ce_fragments_pass_unchanged() {
    let f4 = frag4(&big_udp(C, S, 150), &CUTS3, 61);
    let f6 = frag6(&big_udp(C6, S6, 150), &CUTS3, 62, &[]);
    let g4 = frag4(&big_udp(C, S, 150), &CUTS3, 63);
    let g6 = frag6(&big_udp(C6, S6, 150), &CUTS3, 64, &[]);
    let mut arr = Vec::new();
    // Not-ECT, ECT(0), Not-ECT; then ECT(0), CE, ECT(1).
    for (f, ecns) in [
        (&f4, [0, 2, 0]),
        (&f6, [0, 2, 0]),
        (&g4, [2, 3, 1]),
        (&g6, [2, 3, 1]),
    ] {
        for (p, e) in f.iter().zip(ecns) {
            arr.push(at("lan0", arr.len() as f64 * 0.01, with_ecn(p, e)));
        }
    }
    let sc = Scenario::gateway("defrag-ecn", FILTER, FILTER6);
    let out = sc.run(&arr, None);
    let want: Vec<Vec<u8>> = arr[6..].iter().map(|a| hop(&a.packet)).collect();
    assert_eq!(out.on("wan0"), want);
    assert_eq!(out.events_with(&["RFC 3168"]).len(), 2, "{:#?}", out.events);
    // Each dropped datagram's three fragments are counted.
    assert_eq!(
        dropped(&out, "frag: Not-ECT mixed with ECT or CE (RFC 3168)"),
        6,
        "{}",
        out.stats
    );
}

/// Issue 15 item 3: a datagram with a fragment above the egress MTU that may not be split
/// (IPv6, or IPv4 with DF) is refused whole, with one error that quotes its first fragment
/// as it arrived; behind masquerade the error still reaches the sender.
#[test]
fn the_egress_mtu_decides_for_the_whole_datagram_and_the_error_quotes_it_as_it_arrived() {
    let cfg = config("").replace(
        "addresses = [\"198.51.100.1/24\", \"2001:db8:2::1/64\"]",
        "mtu = 1280\naddresses = [\"198.51.100.1/24\", \"2001:db8:2::1/64\"]",
    );
    let rules6 = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o wan0 -j MASQUERADE\nCOMMIT\n".to_string() + FILTER6;
    let sc = Scenario::with_config("defrag-mtu-whole", &cfg, &masq_rules(), &rules6);
    let w = big_udp(C, S, 2000);
    // The big fragment arrives last: nothing may have left before it.
    let mut df = frag4(&w, &[(0, 1480), (1480, 600)], 22);
    for p in &mut df {
        p[6] |= 0x40;
        *p = with_ttl(p, 64);
    }
    let f6 = frag6(&big_udp(C6, S6, 2000), &[(0, 1400), (1400, 700)], 23, &[]);
    let arr = vec![
        at("lan0", 0.0, df[1].clone()),
        at("lan0", 0.0, df[0].clone()),
        at("lan0", 1.0, f6[1].clone()),
        at("lan0", 1.0, f6[0].clone()),
    ];
    let out = sc.run(&arr, None);
    assert!(out.on("wan0").is_empty(), "no fragment of either leaves");
    let back = out.on("lan0");
    assert_eq!(back.len(), 2, "one error per datagram");
    for (e, first) in back.iter().zip([&df[0], &f6[0]]) {
        let (ty, code, quote_at, sender) = if e[0] >> 4 == 4 {
            (e[20], e[21], 28, C)
        } else {
            (e[40], e[41], 48, C6)
        };
        assert_eq!((ty, code), if e[0] >> 4 == 4 { (3, 4) } else { (2, 0) });
        let rest = u32::from_be_bytes(e[quote_at - 4..quote_at].try_into().unwrap());
        assert_eq!(rest & 0xffff, 1280, "the egress MTU");
        // To the sender, quoting its first fragment byte for byte: TTL or hop limit not
        // decremented, addresses not translated.
        let dst = if e[0] >> 4 == 4 {
            std::net::IpAddr::from(<[u8; 4]>::try_from(&e[16..20]).unwrap())
        } else {
            std::net::IpAddr::from(<[u8; 16]>::try_from(&e[24..40]).unwrap())
        };
        assert_eq!(dst, sender.parse::<std::net::IpAddr>().unwrap());
        let quote = &e[quote_at..];
        assert!(quote.len() >= 28, "{}", quote.len());
        assert_eq!(quote, &first[..quote.len()]);
    }
    assert_eq!(dropped(&out, "ip: packet too big"), 2, "{}", out.stats);
    // Refused before FORWARD, as the kernel's forwarding MTU check: no connection stays.
    assert!(out.conntrack.is_empty(), "{}", out.conntrack);
}

/// Sibling of issue 15 item 3: the TTL decision is taken once, on the datagram (its first
/// fragment's TTL), and every fragment leaves with that TTL; a later fragment that came
/// with TTL 1 does not leave with 0.
#[test]
fn every_fragment_leaves_with_the_datagrams_ttl() {
    let f4 = frag4(&big_udp(C, S, 150), &CUTS3, 71);
    let f6 = frag6(&big_udp(C6, S6, 150), &CUTS3, 72, &[]);
    let mut arr = Vec::new();
    for f in [&f4, &f6] {
        for (p, ttl) in f.iter().zip([64, 1, 200]) {
            arr.push(at("lan0", arr.len() as f64 * 0.01, with_ttl(p, ttl)));
        }
    }
    let sc = Scenario::gateway("defrag-ttl", FILTER, FILTER6);
    let out = sc.run(&arr, None);
    let want: Vec<Vec<u8>> = arr.iter().map(|a| with_ttl(&a.packet, 63)).collect();
    assert_eq!(out.on("wan0"), want);
}

/// Issue 15 item 4: ten thousand first fragments from as many sources, never completed,
/// do not keep well-behaved senders' datagrams out of reassembly.
#[test]
fn a_flood_of_incomplete_datagrams_from_many_sources_does_not_block_reassembly() {
    let sc = Scenario::gateway("defrag-flood", FILTER, FILTER6);
    let mut arr = Vec::new();
    let mut good = Vec::new();
    for i in 0..10_000u32 {
        let t = f64::from(i) * 0.0001;
        let src = format!("2001:db8:1::1:{:x}", i + 1);
        let w = big_udp(&src, S6, 1300);
        let first = frag6(&w, &[(0, 1232)], i, &[]).remove(0);
        arr.push(at("lan0", t, first));
        if i % 1000 == 999 {
            // Well-behaved senders, their fragments interleaved with the flood's.
            let f4 = frag4(&big_udp(C, S, 150), &CUTS3, i as u16);
            let f6 = frag6(&big_udp(C6, S6, 150), &CUTS3, i, &[]);
            for k in 0..3 {
                arr.push(at("lan0", t + 0.00001 * k as f64, f4[k].clone()));
                arr.push(at("lan0", t + 0.00001 * k as f64, f6[k].clone()));
                good.push(hop(&f4[k]));
                good.push(hop(&f6[k]));
            }
        }
    }
    let out = sc.run(&arr, None);
    let sent = out.on("wan0");
    assert_eq!(
        sent.len(),
        good.len(),
        "every well-behaved datagram is forwarded"
    );
    for g in &good {
        assert!(sent.contains(g));
    }
    assert_eq!(out.events_with(&["too many datagrams"]).len(), 0);
    assert!(
        dropped(&out, "frag: evicted") >= 10_000 - 1024,
        "{}",
        out.stats
    );
}

/// Issue 15 item 5: a datagram whose deadline passed owes its Time Exceeded when its next
/// fragment arrives, even before the sweep has found it.
#[test]
fn a_fragment_past_the_deadline_expires_its_datagram_with_its_time_exceeded() {
    let f6 = frag6(&big_udp(C6, S6, 150), &CUTS3, 81, &[]);
    let cfg = config("[defrag]\ntime_exceeded = true\ntimeout = 30\n");
    let sc = Scenario::with_config("defrag-deadline", &cfg, FILTER, FILTER6);
    let arr = [
        // Sets the sweep's rhythm: every 100 ms from here.
        at("lan0", 0.0, udp(C6, 1, S6, 2, b"tick")),
        at("lan0", 0.05, f6[0].clone()),
        // Past the deadline (30.05 s), before the next sweep (30.1 s).
        at("lan0", 30.07, f6[1].clone()),
    ];
    let out = sc.run(&arr, Some(100.0));
    let back = out.on("lan0");
    assert_eq!(back.len(), 1, "{:#?}", out.events);
    assert_eq!((back[0][40], back[0][41]), (3, 1));
    assert_eq!(
        &back[0][48..48 + 40],
        &f6[0][..40],
        "it quotes the first fragment"
    );
}

/// Issue 15 item 5: the default admits a legal datagram of 155 fragments of 424 bytes.
#[test]
fn a_maximum_size_datagram_of_many_small_fragments_passes_with_the_defaults() {
    // 155 IPv6 fragments of 424 bytes carry 376 bytes each: 58,280 bytes.
    let w6 = big_udp(C6, S6, 155 * 376 - 8);
    let cuts: Vec<(usize, usize)> = (0..155).map(|k| (k * 376, 376)).collect();
    let f6 = frag6(&w6, &cuts, 91, &[]);
    assert!(f6.iter().all(|p| p.len() == 424));
    let w4 = big_udp(C, S, 155 * 400 - 8);
    let cuts4: Vec<(usize, usize)> = (0..155).map(|k| (k * 400, 400)).collect();
    let f4 = frag4(&w4, &cuts4, 92);
    let mut arr: Vec<Arrival> = f6.iter().map(|p| at("lan0", 0.0, p.clone())).collect();
    arr.extend(f4.iter().map(|p| at("lan0", 0.1, p.clone())));
    let sc = Scenario::gateway("defrag-155", FILTER, FILTER6);
    let out = sc.run(&arr, None);
    assert_eq!(out.on("wan0").len(), 310, "{:#?}", out.events);
}

/// Issue 15 item 5: the fragments after a too-many-fragments drop are not "after an
/// overlap".
#[test]
fn fragments_after_a_too_many_fragments_drop_say_so() {
    let cfg = config("[defrag]\nmax_fragments = 4\n");
    let sc = Scenario::with_config("defrag-toomany", &cfg, FILTER, FILTER6);
    let w = big_udp(C, S, 200);
    let cuts: Vec<(usize, usize)> = (0..6).map(|k| (k * 40, 40)).collect();
    let f = frag4(&w, &cuts, 93);
    let out = sc.run(
        &f.iter()
            .map(|p| at("lan0", 0.0, p.clone()))
            .collect::<Vec<_>>(),
        None,
    );
    assert!(out.on("wan0").is_empty());
    assert_eq!(
        out.events_with(&["too many fragments in a datagram"]).len(),
        1
    );
    assert_eq!(
        out.events_with(&["after an overlap"]).len(),
        0,
        "{:#?}",
        out.events
    );
    assert_eq!(out.events_with(&["after too many fragments"]).len(), 1);
}
