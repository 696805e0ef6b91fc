//! UDP, UDP-Lite, ICMP, ICMPv6 and generic tracking.

mod common;
use common::*;
use conntrack::{Family, Invalid, L4Packet, L4Proto, Verdict};
use l4proto::L4Modules;

#[test]
fn udp_unreplied_then_stream_and_assured() {
    let mut f = Flow::new(17);
    f.sport = 53;
    assert_eq!(f.send(ORIG, &f.udp(ORIG, b"query")), accept(30));
    assert_eq!(f.send(REPLY, &f.udp(REPLY, b"answer")), accept(30));
    assert!(!f.assured(), "a single exchange within 2 s stays unassured");
    assert_eq!(f.send(ORIG, &f.udp(ORIG, b"again")), accept(30));
    f.advance(3);
    assert_eq!(f.send(ORIG, &f.udp(ORIG, b"still talking")), accept(120));
    assert!(f.assured());
    assert_eq!(f.name(), "");
}

#[test]
fn udp_one_way_never_assured() {
    let mut f = Flow::new(17);
    for _ in 0..5 {
        assert_eq!(f.send(ORIG, &f.udp(ORIG, b"syslog")), accept(30));
        f.advance(10);
    }
    assert!(!f.assured());
}

#[test]
fn udp_checksums() {
    let f = Flow::new(17);
    let mut d = f.udp(ORIG, b"data");
    d[9] ^= 0xff;
    assert_eq!(f.refuse(&d), Invalid::UdpBadChecksum);
    // Zero checksum: allowed over IPv4, not over IPv6.
    let mut z = f.udp(ORIG, b"data");
    z[6] = 0;
    z[7] = 0;
    let mut g = Flow::new(17);
    assert_eq!(g.send(ORIG, &z), accept(30));
    let h = Flow::new(17).v6();
    let mut z6 = h.udp(ORIG, b"data");
    z6[6] = 0;
    z6[7] = 0;
    assert_eq!(h.refuse(&z6), Invalid::UdpZeroChecksumV6);
    let mut v6 = Flow::new(17).v6();
    assert_eq!(v6.send(ORIG, &v6.udp(ORIG, b"data")), accept(30));
    // Length field larger than the datagram, or below the header.
    let mut long = f.udp(ORIG, b"data");
    long[4..6].copy_from_slice(&100u16.to_be_bytes());
    assert_eq!(f.refuse(&long), Invalid::UdpTruncated);
    long[4..6].copy_from_slice(&4u16.to_be_bytes());
    assert_eq!(f.refuse(&long), Invalid::UdpBadLength);
}

#[test]
fn udplite_coverage_and_checksum() {
    let mut f = Flow::new(136);
    assert_eq!(f.l4.name(136), "udplite");
    // Partial coverage: header plus 4 bytes; the rest may change freely.
    let mut p = f.udp_cov(ORIG, b"covered-and-not", 12);
    p[20] ^= 0xff;
    assert_eq!(f.send(ORIG, &p), accept(30));
    assert_eq!(f.send(REPLY, &f.udp_cov(REPLY, b"whole", 0)), accept(30));
    for cov in [1u16, 7, 100] {
        let bad = f.udp_cov(ORIG, b"12345678", cov);
        assert_eq!(f.refuse(&bad), Invalid::UdpLiteBadCoverage, "cov {cov}");
    }
    let mut z = f.udp_cov(ORIG, b"x", 0);
    z[6] = 0;
    z[7] = 0;
    assert_eq!(f.refuse(&z), Invalid::UdpLiteNoChecksum);
    let mut bad = f.udp_cov(ORIG, b"payload", 0);
    bad[9] ^= 1;
    assert_eq!(f.refuse(&bad), Invalid::UdpLiteBadChecksum);
}

#[test]
fn icmp_echo_request_reply() {
    let mut f = Flow::new(1);
    let req = f.icmp(ORIG, 8, 0x1234, 1);
    assert_eq!(f.l4.ids(&f.pkt(ORIG, &req)), Ok((0x1234, 0x1234)));
    assert_eq!(f.send(ORIG, &req), accept(30));
    assert_eq!(f.send(REPLY, &f.icmp(REPLY, 0, 0x1234, 1)), accept(30));
    assert_eq!(f.send(ORIG, &f.icmp(ORIG, 8, 0x1234, 2)), accept(30));
    // Wrong directions.
    assert_eq!(
        f.send(REPLY, &f.icmp(REPLY, 8, 0x1234, 3)),
        Verdict::Invalid(Invalid::IcmpRequestInReply)
    );
    assert_eq!(
        f.send(ORIG, &f.icmp(ORIG, 0, 0x1234, 3)),
        Verdict::Invalid(Invalid::IcmpReplyInOriginal)
    );
    // A timestamp reply cannot answer an echo request.
    assert_eq!(
        f.send(REPLY, &f.icmp(REPLY, 14, 0x1234, 3)),
        Verdict::Invalid(Invalid::IcmpTypeMismatch)
    );
}

#[test]
fn icmp_other_queries_and_refusals() {
    let mut f = Flow::new(1);
    assert_eq!(f.send(ORIG, &f.icmp(ORIG, 13, 9, 1)), accept(30));
    assert_eq!(f.send(REPLY, &f.icmp(REPLY, 14, 9, 1)), accept(30));
    let g = Flow::new(1);
    assert_eq!(
        g.refuse(&g.icmp(ORIG, 0, 9, 1)),
        Invalid::IcmpReplyWithoutRequest
    );
    assert_eq!(
        g.refuse(&g.icmp(ORIG, 3, 0, 0)),
        Invalid::IcmpErrorCannotStart
    );
    assert_eq!(
        g.refuse(&g.icmp(ORIG, 9, 0, 0)),
        Invalid::IcmpTypeNotTracked
    );
    let mut bad = g.icmp(ORIG, 8, 1, 1);
    bad[7] ^= 1;
    assert_eq!(g.refuse(&bad), Invalid::IcmpBadChecksum);
    assert_eq!(g.refuse(&bad[..7]), Invalid::IcmpTruncated);
}

#[test]
fn icmp_errors_are_recognised() {
    let f = Flow::new(1);
    for (ty, err) in [
        (3, true),
        (4, true),
        (5, true),
        (11, true),
        (12, true),
        (8, false),
        (0, false),
    ] {
        let m = f.icmp(ORIG, ty, 0, 0);
        assert_eq!(f.l4.is_error(&f.pkt(ORIG, &m)), err, "type {ty}");
    }
    let m = f.icmp(ORIG, 3, 0, 0);
    assert_eq!(f.l4.ids(&f.pkt(ORIG, &m)), Ok((0, 0)));
    let g = Flow::new(58).v6();
    for (ty, err) in [
        (1, true),
        (2, true),
        (3, true),
        (4, true),
        (128, false),
        (135, false),
    ] {
        let m = g.icmp(ORIG, ty, 0, 0);
        assert_eq!(g.l4.is_error(&g.pkt(ORIG, &m)), err, "type {ty}");
    }
}

#[test]
fn icmpv6_echo_and_untracked_nd() {
    let mut f = Flow::new(58).v6();
    assert_eq!(f.send(ORIG, &f.icmp(ORIG, 128, 77, 1)), accept(30));
    assert_eq!(f.send(REPLY, &f.icmp(REPLY, 129, 77, 1)), accept(30));
    assert_eq!(
        f.send(REPLY, &f.icmp(REPLY, 128, 77, 2)),
        Verdict::Invalid(Invalid::IcmpRequestInReply)
    );
    let g = Flow::new(58).v6();
    assert_eq!(
        g.refuse(&g.icmp(ORIG, 129, 77, 1)),
        Invalid::Icmpv6ReplyWithoutRequest
    );
    let mut ns = g.icmp(ORIG, 135, 0, 0);
    ns.extend_from_slice(&[0; 16]);
    assert!(g.l4.is_untracked(&g.pkt(ORIG, &ns)));
    assert!(!g.l4.is_untracked(&g.pkt(ORIG, &g.icmp(ORIG, 128, 1, 1))));
    let mut bad = g.icmp(ORIG, 128, 1, 1);
    bad[9] ^= 1;
    assert_eq!(g.refuse(&bad), Invalid::Icmpv6BadChecksum);
}

#[test]
fn timeouts_follow_configuration() {
    let mut l4 = L4Modules::default();
    l4.timeouts.set("icmp", 5).unwrap();
    l4.timeouts.set("udp_unreplied", 11).unwrap();
    let mut f = Flow::with(1, l4.clone());
    assert_eq!(f.send(ORIG, &f.icmp(ORIG, 8, 1, 1)), accept(5));
    let mut u = Flow::with(17, l4);
    assert_eq!(u.send(ORIG, &u.udp(ORIG, b"x")), accept(11));
}

#[test]
fn generic_protocols() {
    for proto in [47u8, 50, 51, 115] {
        let mut f = Flow::new(proto);
        let data = [0xde, 0xad, 0xbe, 0xef];
        assert_eq!(f.l4.ids(&f.pkt(ORIG, &data)), Ok((0, 0)));
        assert_eq!(f.send(ORIG, &data), accept(600));
        assert_eq!(f.send(REPLY, &data), accept(600));
        assert_eq!(f.send(ORIG, &[]), accept(600));
        assert_eq!(f.name(), "");
        assert_eq!(f.l4.name(proto), "unknown");
    }
}

#[test]
fn state_of_another_protocol_is_invalid() {
    let l4 = L4Modules::default();
    let data = [0u8; 8];
    let pkt = L4Packet {
        family: Family::V4,
        src: "192.0.2.1".parse().unwrap(),
        dst: "192.0.2.2".parse().unwrap(),
        proto: 47,
        data: &data,
        verify_checksum: false,
    };
    let mut st = l4.new_conn(&pkt, conntrack::Instant::ZERO).unwrap();
    let tuples = [conntrack::Tuple {
        src: pkt.src,
        dst: pkt.dst,
        src_id: 0,
        dst_id: 0,
        proto: 17,
        zone: 0,
    }; 2];
    let mut status = conntrack::Status::default();
    let mut ctx = conntrack::ConnCtx {
        dir: ORIG,
        status: &mut status,
        now: conntrack::Instant::ZERO,
        tuples: &tuples,
        ack_offset: 0,
    };
    let udp_pkt = L4Packet { proto: 17, ..pkt };
    assert!(is_invalid(&l4.packet(&mut st, &mut ctx, &udp_pkt)));
    let mut none = l4proto::AnyState::None;
    assert!(is_invalid(&l4.packet(&mut none, &mut ctx, &pkt)));
}
