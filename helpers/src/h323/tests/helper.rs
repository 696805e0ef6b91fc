//! The helpers as the engine drives them: expectations, rewrites and events from packets
//! of a connection, with and without NAT, and the TPKT framing of a TCP stream.

use super::messages::{bytes_of, hex, tpkt, UUIE_AT, VECTORS};
use super::*;
use crate::{ExpectRequest, HelperConfig, HelperEventKind};
use std::net::IpAddr;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn vector(name: &str) -> (&'static str, &'static str) {
    let v = VECTORS.iter().find(|v| v.0 == name).unwrap();
    (v.1, v.2)
}

/// A connection: original `a -> b`, reply `c -> d` (NAT when not the inverse).
fn conn(proto: u8, a: (&str, u16), b: (&str, u16), c: (&str, u16), d: (&str, u16)) -> [Tuple; 2] {
    let t = |s: (&str, u16), d: (&str, u16)| Tuple {
        src: ip(s.0),
        dst: ip(d.0),
        src_id: s.1,
        dst_id: d.1,
        proto,
        zone: 0,
    };
    [t(a, b), t(c, d)]
}

/// Feeds packets to one helper, keeping its state, collecting every output.
struct Driver {
    helper: std::sync::Arc<dyn crate::Helper>,
    state: crate::HelperState,
    tuples: [Tuple; 2],
    nat: bool,
}

impl Driver {
    fn new(name: &str, cfg: HelperConfig, tuples: [Tuple; 2]) -> Driver {
        let r = Registry::with_config(&[(name.to_owned(), cfg)]).unwrap();
        let helper = r.get(name).unwrap().clone();
        let state = helper.new_state();
        let nat = tuples[1] != tuples[0].invert();
        Driver {
            helper,
            state,
            tuples,
            nat,
        }
    }

    fn send(&mut self, dir: Dir, seq: Option<u32>, parts: &[&[u8]]) -> HelperOutput {
        let mut out = HelperOutput::default();
        let pkt = HelperPacket {
            now: Instant::ZERO,
            dir,
            tuples: &self.tuples,
            nat: self.nat,
            seq,
            payload: parts,
        };
        self.helper.handle(self.state.as_mut(), &pkt, &mut out);
        out
    }
}

fn kinds(out: &HelperOutput) -> Vec<HelperEventKind> {
    out.events.iter().map(|e| e.kind).collect()
}

/// The caller 192.0.2.10 inside, behind a masquerade to 198.51.100.1, calling
/// 203.0.113.7:1720.
fn masqueraded_call() -> [Tuple; 2] {
    conn(
        6,
        ("192.0.2.10", 40000),
        ("203.0.113.7", 1720),
        ("203.0.113.7", 1720),
        ("198.51.100.1", 61000),
    )
}

#[test]
fn a_connect_expects_the_callers_h245_connection_to_the_callee() {
    let t = conn(
        6,
        ("192.0.2.10", 40000),
        ("203.0.113.7", 1720),
        ("203.0.113.7", 1720),
        ("192.0.2.10", 40000),
    );
    let mut d = Driver::new("Q.931", HelperConfig::default(), t);
    let (kind, enc) = vector("connect");
    let frame = bytes_of(kind, enc);
    let out = d.send(Dir::Reply, Some(1), &[&frame]);
    // The fastStart OLC in this Connect names the caller's media, a third party for the
    // callee sending it: refused (three addresses), not expected.
    use HelperEventKind::{Parsed, Refused};
    assert_eq!(kinds(&out), [Refused, Refused, Refused, Parsed]);
    let h245 = &out.expects[0];
    assert_eq!(
        (
            h245.dir,
            h245.proto,
            h245.src,
            h245.dst,
            h245.dst_port,
            h245.child_helper
        ),
        (
            Dir::Original,
            6,
            Some(ip("192.0.2.10")),
            ip("203.0.113.7"),
            1303,
            Some("H.245")
        )
    );
    let site = h245.site.unwrap();
    assert_eq!(
        &frame[site.offset..site.offset + 6],
        &[203, 0, 113, 7, 5, 23]
    );
    assert_eq!(out.expects.len(), 1, "{:?}", out.expects);
    assert!(out.rewrites.is_empty(), "no NAT, no rewrite");
}

#[test]
fn a_setup_behind_masquerade_expects_h245_and_media_and_rewrites_its_own_endpoint() {
    let mut d = Driver::new("Q.931", HelperConfig::default(), masqueraded_call());
    let (kind, enc) = vector("setup");
    let frame = bytes_of(kind, enc);
    let out = d.send(Dir::Original, Some(1), &[&frame]);
    let got: Vec<_> = out
        .expects
        .iter()
        .map(|e| {
            (
                e.dst_port,
                e.proto,
                e.rtp_pair,
                e.child_helper,
                e.site.is_some(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1300, 6, false, Some("H.245"), true),
            (5001, 17, true, None, true),
            (5000, 17, true, None, true),
            (5001, 17, true, None, true),
        ]
    );
    assert!(out
        .expects
        .iter()
        .all(|e| e.dir == Dir::Reply && e.src == Some(ip("203.0.113.7"))));
    // sourceCallSignalAddress is this connection's own source: rewritten to what the
    // callee sees. destCallSignalAddress is the callee as it is: unchanged.
    assert_eq!(out.rewrites.len(), 1, "{:?}", out.rewrites);
    let rw = out.rewrites[0];
    assert_eq!((rw.addr, rw.port), (ip("198.51.100.1"), 61000));
    assert_eq!(
        &frame[rw.site.offset..rw.site.offset + 6],
        &[192, 0, 2, 10, 0x9c, 0x40]
    );
    assert_eq!(
        d.helper.nat_format(rw.site.kind, rw.addr, rw.port),
        [198, 51, 100, 1, 0xee, 0x48]
    );
}

#[test]
fn a_setup_through_a_port_forward_names_the_callee_by_its_inside_address() {
    // The caller outside (192.0.2.10) calls the public 203.0.113.7:1720, forwarded to the
    // callee 198.51.100.20:1720 inside.
    let t = conn(
        6,
        ("192.0.2.10", 40000),
        ("203.0.113.7", 1720),
        ("198.51.100.20", 1720),
        ("192.0.2.10", 40000),
    );
    let mut d = Driver::new("Q.931", HelperConfig::default(), t);
    let (kind, enc) = vector("setup");
    let frame = bytes_of(kind, enc);
    let out = d.send(Dir::Original, Some(1), &[&frame]);
    let rw: Vec<(IpAddr, u16)> = out.rewrites.iter().map(|r| (r.addr, r.port)).collect();
    assert_eq!(rw, [(ip("198.51.100.20"), 1720)]);
}

#[test]
fn olc_ack_media_are_expected_as_rtp_rtcp_pairs() {
    let t = conn(
        6,
        ("192.0.2.10", 40001),
        ("203.0.113.7", 1303),
        ("203.0.113.7", 1303),
        ("192.0.2.10", 40001),
    );
    let mut d = Driver::new("H.245", HelperConfig::default(), t);
    let msg = tpkt(&hex(vector("msc_ack").1));
    let out = d.send(Dir::Reply, Some(77), &[&msg]);
    let want = |port| ExpectRequest {
        dir: Dir::Original,
        proto: 17,
        src: Some(ip("192.0.2.10")),
        src_port: None,
        dst: ip("203.0.113.7"),
        dst_port: port,
        site: out
            .expects
            .iter()
            .find(|e| e.dst_port == port)
            .unwrap()
            .site,
        permanent: false,
        child_helper: None,
        nat_to: None,
        rtp_pair: true,
    };
    assert_eq!(out.expects, [want(7000), want(7001)]);
    // A multicast address and an H.245 message without addresses expect nothing.
    let out = d.send(
        Dir::Reply,
        Some(77 + msg.len() as u32),
        &[&tpkt(&hex(vector("msc_ack_multicast").1))],
    );
    assert!(out.expects.is_empty());
    assert!(
        out.events[0].detail.contains("multicast, ignored"),
        "{:?}",
        out.events
    );
}

#[test]
fn ras_registration_behind_masquerade() {
    let t = conn(
        17,
        ("192.0.2.10", 5000),
        ("198.51.100.5", 1719),
        ("198.51.100.5", 1719),
        ("203.0.113.1", 6000),
    );
    let mut d = Driver::new("RAS", HelperConfig::default(), t);
    let rrq = hex(vector("registrationRequest").1);
    let out = d.send(Dir::Original, None, &[&rrq]);
    // The gatekeeper will call the registered endpoint: permanent, from the gatekeeper.
    assert_eq!(out.expects.len(), 1, "{:?}", out.expects);
    let e = &out.expects[0];
    assert_eq!(
        (
            e.dir,
            e.proto,
            e.src,
            e.dst_port,
            e.permanent,
            e.child_helper
        ),
        (
            Dir::Reply,
            6,
            Some(ip("198.51.100.5")),
            1720,
            true,
            Some("Q.931")
        )
    );
    // The RAS address is this flow's own source: the gatekeeper is told the NAT one.
    assert_eq!(
        out.rewrites
            .iter()
            .map(|r| (r.addr, r.port))
            .collect::<Vec<_>>(),
        [(ip("203.0.113.1"), 6000)]
    );
    // The IPv6 call signalling address of an IPv4 flow is left alone.
    assert!(out.events[0].detail.contains("other family, ignored"));
}

#[test]
fn an_acf_expects_the_call_to_the_admitted_destination() {
    let t = conn(
        17,
        ("192.0.2.10", 5000),
        ("198.51.100.5", 1719),
        ("198.51.100.5", 1719),
        ("203.0.113.1", 6000),
    );
    let mut d = Driver::new("RAS", HelperConfig::default(), t);
    let acf = hex(vector("admissionConfirm").1);
    let out = d.send(Dir::Reply, None, &[&acf]);
    assert_eq!(
        out.expects,
        [ExpectRequest {
            dir: Dir::Original,
            proto: 6,
            src: Some(ip("192.0.2.10")),
            src_port: None,
            dst: ip("203.0.113.7"),
            dst_port: 1720,
            site: None,
            permanent: true,
            child_helper: Some("Q.931"),
            nat_to: Some((ip("203.0.113.7"), 1720)),
            rtp_pair: false,
        }]
    );
}

#[test]
fn another_hosts_address_is_refused_unless_loose() {
    // The Connect comes from 203.0.113.8 but announces 203.0.113.7.
    let t = conn(
        6,
        ("192.0.2.10", 40000),
        ("203.0.113.8", 1720),
        ("203.0.113.8", 1720),
        ("192.0.2.10", 40000),
    );
    let frame = bytes_of("uuie", vector("callProceeding").1);
    let mut d = Driver::new("Q.931", HelperConfig::default(), t);
    let out = d.send(Dir::Reply, Some(1), &[&frame]);
    assert!(out.expects.is_empty());
    assert_eq!(
        kinds(&out),
        [HelperEventKind::Refused, HelperEventKind::Parsed]
    );
    let loose = HelperConfig {
        ports: None,
        loose: true,
    };
    let mut d = Driver::new("Q.931", loose, t);
    let out = d.send(Dir::Reply, Some(1), &[&frame]);
    assert_eq!(out.expects.len(), 1);
    assert_eq!(
        (out.expects[0].site, out.expects[0].nat_to),
        (None, Some((ip("203.0.113.7"), 1301)))
    );
}

#[test]
fn tpkt_messages_split_across_segments_or_several_in_one() {
    let connect = bytes_of("uuie", vector("connect").1);
    let proceeding = bytes_of("uuie", vector("callProceeding").1);
    let whole = {
        let t = conn(
            6,
            ("192.0.2.10", 40000),
            ("203.0.113.7", 1720),
            ("203.0.113.7", 1720),
            ("192.0.2.10", 40000),
        );
        let mut d = Driver::new("Q.931", HelperConfig::default(), t);
        d.send(Dir::Reply, Some(1), &[&connect]).expects
    };
    let t = conn(
        6,
        ("192.0.2.10", 40000),
        ("203.0.113.7", 1720),
        ("203.0.113.7", 1720),
        ("192.0.2.10", 40000),
    );
    // A lone TPKT header (as NetMeeting sends it), then the rest.
    let mut d = Driver::new("Q.931", HelperConfig::default(), t);
    assert!(d
        .send(Dir::Reply, Some(1), &[&connect[..4]])
        .expects
        .is_empty());
    let out = d.send(Dir::Reply, Some(5), &[&connect[4..]]);
    assert_eq!(out.expects.len(), whole.len());
    // Its site is in the second segment, 4 bytes earlier.
    assert_eq!(
        out.expects[0].site.unwrap().offset,
        whole[0].site.unwrap().offset - 4
    );
    // Split at every byte, then followed by a whole Call Proceeding in the same segment
    // as the Connect's tail.
    for cut in 1..connect.len() {
        let mut d = Driver::new("Q.931", HelperConfig::default(), t);
        let first = d.send(Dir::Reply, Some(1), &[&connect[..cut]]);
        assert!(first.expects.is_empty(), "cut {cut}");
        let mut rest = connect[cut..].to_vec();
        rest.extend_from_slice(&proceeding);
        let out = d.send(Dir::Reply, Some(1 + cut as u32), &[&rest]);
        let ports: Vec<u16> = out.expects.iter().map(|e| e.dst_port).collect();
        assert_eq!(ports, [1303, 1301], "cut {cut}: {:?}", out.events);
        let last = out.expects.last().unwrap().site.unwrap();
        assert_eq!(
            &rest[last.offset..last.offset + 6],
            &[203, 0, 113, 7, 0x05, 0x15],
            "cut {cut}"
        );
    }
}

#[test]
fn under_nat_an_address_in_an_earlier_segment_is_not_expected() {
    let setup = bytes_of("uuie", vector("setup").1);
    // Cut right after the h245Address: it is in the first segment.
    let (kind, enc) = vector("setup");
    let full = super::messages::walk(kind, &[&bytes_of(kind, enc)]).unwrap();
    let h245 = full.found[0];
    assert_eq!(h245.field, Field::H245Address);
    let cut = h245.addr.at + 6;
    let mut d = Driver::new("Q.931", HelperConfig::default(), masqueraded_call());
    d.send(Dir::Original, Some(1), &[&setup[..cut]]);
    let out = d.send(Dir::Original, Some(1 + cut as u32), &[&setup[cut..]]);
    assert!(out.expects.iter().all(|e| e.dst_port != 1300));
    assert!(out
        .events
        .iter()
        .any(|e| e.kind == HelperEventKind::Unsynced && e.detail.contains("h245Address")));
    // The addresses in the second segment are handled as usual.
    assert!(out.expects.iter().any(|e| e.dst_port == 5001));
}

#[test]
fn retransmissions_are_read_again_and_holes_lose_the_stream() {
    let t = conn(
        6,
        ("192.0.2.10", 40000),
        ("203.0.113.7", 1720),
        ("203.0.113.7", 1720),
        ("192.0.2.10", 40000),
    );
    let connect = bytes_of("uuie", vector("connect").1);
    let mut d = Driver::new("Q.931", HelperConfig::default(), t);
    let first = d.send(Dir::Reply, Some(100), &[&connect]);
    // The same segment again (its ACK was lost): the same expectations (the engine
    // refreshes them) and, under NAT, the same rewrites.
    let again = d.send(Dir::Reply, Some(100), &[&connect]);
    assert_eq!(again.expects, first.expects);
    // A resend of its middle: nothing.
    let middle = d.send(Dir::Reply, Some(110), &[&connect[10..30]]);
    assert!(middle.expects.is_empty() && middle.events.is_empty());
    // A segment after a hole that does not start with a TPKT header: unsynced.
    let next = 100 + connect.len() as u32;
    let out = d.send(Dir::Reply, Some(next + 50), &[&connect[10..]]);
    assert_eq!(kinds(&out), [HelperEventKind::Unsynced]);
    // One that does, later: read.
    let out = d.send(Dir::Reply, Some(next + 5000), &[&connect]);
    assert_eq!(out.expects, first.expects);
}

#[test]
fn a_stream_of_garbage_or_bad_messages_is_counted_not_expected() {
    let t = masqueraded_call();
    let mut d = Driver::new("Q.931", HelperConfig::default(), t);
    // Not a TPKT at the start of the stream.
    let out = d.send(Dir::Original, Some(1), &[b"GET / HTTP/1.0\r\n"]);
    assert_eq!(kinds(&out), [HelperEventKind::Unsynced]);
    // A TPKT whose Q.931 User-user element says it is longer than the message.
    let mut d = Driver::new("Q.931", HelperConfig::default(), t);
    let mut bad = bytes_of("uuie", vector("setup").1);
    bad[UUIE_AT - 3] = 0x7f;
    let out = d.send(Dir::Original, Some(1), &[&bad]);
    assert_eq!(kinds(&out), [HelperEventKind::Malformed]);
    assert!(out.expects.is_empty() && out.rewrites.is_empty());
    // A TPKT header of length 2 in the middle: the stream is lost until a header again.
    let good = bytes_of("uuie", vector("connect").1);
    let mut two = good.clone();
    two.extend_from_slice(&[3, 0, 0, 2]);
    let mut d = Driver::new("Q.931", HelperConfig::default(), t);
    let out = d.send(Dir::Reply, Some(1), &[&two]);
    assert!(kinds(&out).contains(&HelperEventKind::Malformed));
    // A RAS datagram that is not PER of a RasMessage.
    let ras = conn(
        17,
        ("192.0.2.10", 5000),
        ("198.51.100.5", 1719),
        ("198.51.100.5", 1719),
        ("192.0.2.10", 5000),
    );
    let mut d = Driver::new("RAS", HelperConfig::default(), ras);
    let out = d.send(Dir::Original, None, &[&[0x4d, 0x00]]);
    assert_eq!(kinds(&out), [HelperEventKind::Malformed]);
}

#[test]
fn a_message_too_long_to_keep_is_skipped_and_the_next_one_read() {
    let t = conn(
        6,
        ("192.0.2.10", 40000),
        ("203.0.113.7", 1720),
        ("203.0.113.7", 1720),
        ("192.0.2.10", 40000),
    );
    let mut d = Driver::new("Q.931", HelperConfig::default(), t);
    let n = tpkt::MAX_BUFFERED + 100;
    let mut big = vec![3, 0, (n >> 8) as u8, n as u8];
    big.resize(1000, 0);
    let out = d.send(Dir::Reply, Some(1), &[&big]);
    assert_eq!(kinds(&out), [HelperEventKind::Unsynced]);
    let mut seq = 1 + big.len() as u32;
    let filler = vec![0u8; 1000];
    let mut left = n - big.len();
    while left > 1000 {
        assert!(d.send(Dir::Reply, Some(seq), &[&filler]).events.is_empty());
        seq += 1000;
        left -= 1000;
    }
    let mut tail = vec![0u8; left];
    let connect = bytes_of("uuie", vector("connect").1);
    tail.extend_from_slice(&connect);
    let out = d.send(Dir::Reply, Some(seq), &[&tail]);
    assert_eq!(out.expects.first().map(|e| e.dst_port), Some(1303));
}

#[test]
fn the_nat_bytes_are_address_then_port() {
    let h = Registry::builtin();
    let q = h.get("Q.931").unwrap();
    assert_eq!(
        q.nat_format(nat::SITE_IP4, ip("198.51.100.1"), 0x1234),
        [198, 51, 100, 1, 0x12, 0x34]
    );
    let v6 = q.nat_format(nat::SITE_IP6, ip("2001:db8::1"), 5004);
    assert_eq!(v6.len(), 18);
    assert_eq!(&v6[..16], &ip6_octets("2001:db8::1"));
    assert_eq!(&v6[16..], &5004u16.to_be_bytes());
}

fn ip6_octets(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}
