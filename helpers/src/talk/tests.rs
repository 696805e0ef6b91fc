use super::*;
use crate::HelperEventKind as K;
use conntrack::tuple::Tuple;
use conntrack::Instant;

/// Caller A (192.0.2.10, control socket 40000, TCP socket 41000) behind masquerade on N
/// (203.0.113.1); callee B (198.51.100.5).
const A: [u8; 4] = [192, 0, 2, 10];
const B: [u8; 4] = [198, 51, 100, 5];
const N: [u8; 4] = [203, 0, 113, 1];

fn ip(a: [u8; 4]) -> IpAddr {
    IpAddr::from(a)
}

fn sock(addr: [u8; 4], port: u16) -> [u8; 16] {
    let mut s = [0u8; 16];
    s[..2].copy_from_slice(&2u16.to_be_bytes());
    s[2..4].copy_from_slice(&port.to_be_bytes());
    s[4..8].copy_from_slice(&addr);
    s
}

/// An ntalk `CTL_MSG` from alice to bob.
fn ntalk_msg(t: u8, addr: [u8; 16], ctl: [u8; 16]) -> Vec<u8> {
    let mut m = vec![TALK_VERSION, t, 0, 0];
    m.extend_from_slice(&7u32.to_be_bytes());
    m.extend_from_slice(&addr);
    m.extend_from_slice(&ctl);
    m.extend_from_slice(&4242u32.to_be_bytes());
    m.extend_from_slice(b"alice\0\0\0\0\0\0\0bob\0\0\0\0\0\0\0\0\0pts/3\0\0\0\0\0\0\0\0\0\0\0");
    assert_eq!(m.len(), 84);
    m
}

fn ntalk_resp(t: u8, answer: u8, addr: [u8; 16]) -> Vec<u8> {
    let mut m = vec![TALK_VERSION, t, answer, 0];
    m.extend_from_slice(&9u32.to_be_bytes());
    m.extend_from_slice(&addr);
    m
}

/// A 4.2BSD `struct ctl_msg` as a VAX wrote it (little-endian integers and family).
fn otalk_msg(t: u8, addr: [u8; 16], ctl: [u8; 16]) -> Vec<u8> {
    let mut m = vec![t];
    m.extend_from_slice(b"alice\0\0\0\0bob\0\0\0\0\0\0\0");
    m.extend_from_slice(&7u32.to_le_bytes());
    m.extend_from_slice(&4242u32.to_le_bytes());
    m.extend_from_slice(b"ttyp3\0\0\0\0\0\0\0\0\0\0\0");
    for mut s in [addr, ctl] {
        if s[..2] == [0, 2] {
            s[..2].copy_from_slice(&2u16.to_le_bytes());
        }
        m.extend_from_slice(&s);
    }
    assert_eq!(m.len(), 76);
    m
}

fn otalk_resp(t: u8, answer: u8, addr: [u8; 16]) -> Vec<u8> {
    let mut m = vec![t, answer, 0, 0];
    m.extend_from_slice(&9u32.to_le_bytes());
    m.extend_from_slice(&addr);
    m
}

/// The caller's client to the callee's daemon on `port`, masqueraded.
fn caller_master(port: u16) -> [Tuple; 2] {
    let o = Tuple {
        src: ip(A),
        dst: ip(B),
        src_id: 40000,
        dst_id: port,
        proto: 17,
        zone: 0,
    };
    let mut r = o.invert();
    r.dst = ip(N);
    r.dst_id = 5000;
    [o, r]
}

/// The callee's client looking up at the caller's daemon through N (the expected connection,
/// DNATed to A).
fn callee_lookup(port: u16) -> [Tuple; 2] {
    let o = Tuple {
        src: ip(B),
        dst: ip(N),
        src_id: 45000,
        dst_id: port,
        proto: 17,
        zone: 0,
    };
    let mut r = o.invert();
    r.src = ip(A);
    [o, r]
}

fn run(h: &Talk, tuples: &[Tuple; 2], dir: Dir, parts: &[&[u8]]) -> HelperOutput {
    let mut st = h.new_state();
    let mut out = HelperOutput::default();
    let pkt = HelperPacket {
        now: Instant::ZERO,
        dir,
        tuples,
        nat: true,
        seq: None,
        payload: parts,
    };
    h.handle(st.as_mut(), &pkt, &mut out);
    out
}

fn kinds(out: &HelperOutput) -> Vec<K> {
    out.events.iter().map(|e| e.kind).collect()
}

fn site(offset: usize) -> Option<Site> {
    Some(Site {
        offset,
        len: 6,
        kind: SITE_SOCKADDR,
    })
}

/// What the caller's LOOK_UP/ANNOUNCE expects, with the sites of `addr` and `ctl_addr`.
fn caller_expects(
    helper: &'static str,
    port: u16,
    addr_at: usize,
    ctl_at: usize,
    announce: bool,
) -> Vec<ExpectRequest> {
    let mut v = vec![
        ExpectRequest {
            dir: Dir::Reply,
            proto: 17,
            src: Some(ip(B)),
            src_port: Some(port),
            dst: ip(A),
            dst_port: 40000,
            site: site(ctl_at + 2),
            permanent: false,
            child_helper: None,
            nat_to: None,
            rtp_pair: false,
        },
        ExpectRequest {
            dir: Dir::Reply,
            proto: 6,
            src: Some(ip(B)),
            src_port: None,
            dst: ip(A),
            dst_port: 41000,
            site: site(addr_at + 2),
            permanent: false,
            child_helper: None,
            nat_to: None,
            rtp_pair: false,
        },
    ];
    if announce {
        v.push(ExpectRequest {
            dir: Dir::Reply,
            proto: 17,
            src: Some(ip(B)),
            src_port: None,
            dst: ip(N),
            dst_port: port,
            site: None,
            permanent: false,
            child_helper: Some(helper),
            nat_to: Some((ip(A), port)),
            rtp_pair: false,
        });
    }
    v
}

#[test]
fn ntalk_look_up_and_announce() {
    let h = Talk::ntalk(&HelperConfig::default());
    let t = caller_master(518);
    let look = ntalk_msg(LOOK_UP, sock(A, 41000), sock(A, 40000));
    let out = run(&h, &t, Dir::Original, &[&look]);
    assert_eq!(out.expects, caller_expects("ntalk", 518, 8, 24, false));
    assert_eq!(kinds(&out), [K::Parsed]);
    assert_eq!(
        out.events[0].detail,
        "ntalk: LOOK_UP alice -> bob, answer to 192.0.2.10:40000, talk at 192.0.2.10:41000"
    );
    let ann = ntalk_msg(ANNOUNCE, sock(A, 41000), sock(A, 40000));
    let out = run(&h, &t, Dir::Original, &[&ann]);
    assert_eq!(out.expects, caller_expects("ntalk", 518, 8, 24, true));
    assert!(out.events[0].detail.ends_with("lookup at 203.0.113.1:518"));
    // The message as a chain, at every cut.
    for cut in 0..=ann.len() {
        let (x, y) = ann.split_at(cut);
        assert_eq!(
            run(&h, &t, Dir::Original, &[x, y]).expects,
            caller_expects("ntalk", 518, 8, 24, true)
        );
    }
}

#[test]
fn old_talk_look_up_and_announce() {
    let h = Talk::otalk(&HelperConfig::default());
    let t = caller_master(517);
    let look = otalk_msg(LOOK_UP, sock(A, 41000), sock(A, 40000));
    let out = run(&h, &t, Dir::Original, &[&look]);
    assert_eq!(out.expects, caller_expects("talk", 517, 44, 60, false));
    let ann = otalk_msg(ANNOUNCE, sock(A, 41000), sock(A, 40000));
    let out = run(&h, &t, Dir::Original, &[&ann]);
    assert_eq!(out.expects, caller_expects("talk", 517, 44, 60, true));
    // The family in network order is read too (4.2BSD ports to big-endian machines).
    let mut be = ann.clone();
    be[44..46].copy_from_slice(&[0, 2]);
    assert_eq!(run(&h, &t, Dir::Original, &[&be]).expects.len(), 3);
    // An ntalk message on the old port is no talk message (wrong length).
    let out = run(
        &h,
        &t,
        Dir::Original,
        &[&ntalk_msg(ANNOUNCE, sock(A, 41000), sock(A, 40000))],
    );
    assert_eq!((out.expects.len(), kinds(&out)), (0, vec![K::Malformed]));
}

#[test]
fn responses_with_success_carry_the_address() {
    for (h, resp) in [
        (
            Talk::ntalk(&HelperConfig::default()),
            ntalk_resp as fn(u8, u8, [u8; 16]) -> Vec<u8>,
        ),
        (Talk::otalk(&HelperConfig::default()), otalk_resp),
    ] {
        let port = h.ports()[0];
        let t = callee_lookup(port);
        // The caller's daemon found the invitation: the callee connects to A's TCP socket.
        let out = run(
            &h,
            &t,
            Dir::Reply,
            &[&resp(LOOK_UP, SUCCESS, sock(A, 41000))],
        );
        assert_eq!(
            out.expects,
            [ExpectRequest {
                dir: Dir::Original,
                proto: 6,
                src: Some(ip(B)),
                src_port: None,
                dst: ip(A),
                dst_port: 41000,
                site: site(10),
                permanent: false,
                child_helper: None,
                nat_to: None,
                rtp_pair: false,
            }]
        );
        assert_eq!(kinds(&out), [K::Parsed]);
        // Any other answer, or an answer to another request, carries no valid address.
        for (t2, answer) in [
            (LOOK_UP, 1),
            (LOOK_UP, 2),
            (ANNOUNCE, SUCCESS),
            (LEAVE_INVITE, SUCCESS),
            (DELETE, SUCCESS),
        ] {
            let out = run(&h, &t, Dir::Reply, &[&resp(t2, answer, sock(A, 41000))]);
            assert!(
                out.expects.is_empty() && out.events.is_empty(),
                "{t2} {answer}"
            );
        }
        // SUCCESS without an address is malformed.
        let out = run(&h, &t, Dir::Reply, &[&resp(LOOK_UP, SUCCESS, [0; 16])]);
        assert_eq!((out.expects.len(), kinds(&out)), (0, vec![K::Malformed]));
    }
}

#[test]
fn requests_that_need_nothing_and_unset_addresses() {
    let h = Talk::ntalk(&HelperConfig::default());
    let t = caller_master(518);
    for ty in [LEAVE_INVITE, DELETE] {
        let out = run(
            &h,
            &t,
            Dir::Original,
            &[&ntalk_msg(ty, sock(A, 41000), sock(A, 40000))],
        );
        assert!(out.expects.is_empty() && out.events.is_empty());
    }
    // A first LOOK_UP with `addr` not filled in yet: the answer is still expected.
    let out = run(
        &h,
        &t,
        Dir::Original,
        &[&ntalk_msg(LOOK_UP, [0; 16], sock(A, 40000))],
    );
    assert_eq!(out.expects.len(), 1);
    assert_eq!((out.expects[0].proto, out.expects[0].dst_port), (17, 40000));
    assert_eq!(kinds(&out), [K::Parsed]);
}

#[test]
fn an_address_without_a_port_is_rewritten_under_nat_and_expects_nothing() {
    // netkit talk's LOOK_UP: `addr` holds the caller's address and port 0.
    let h = Talk::ntalk(&HelperConfig::default());
    let t = caller_master(518);
    let msg = ntalk_msg(LOOK_UP, sock(A, 0), sock(A, 40000));
    let out = run(&h, &t, Dir::Original, &[&msg]);
    // Only the answer at ctl_addr is expected, and no event calls the message malformed.
    assert_eq!(out.expects.len(), 1);
    assert_eq!(out.expects[0].dst_port, 40000);
    assert_eq!(kinds(&out), [K::Parsed]);
    // The inside address in `addr` is replaced by the NAT address, port still 0.
    assert_eq!(out.rewrites.len(), 1);
    let rw = &out.rewrites[0];
    assert_eq!((rw.addr, rw.port), (ip(N), 0));
    assert_eq!(rw.site, site(8 + 2).unwrap());
    // Without NAT there is nothing to rewrite.
    let mut st = h.new_state();
    let mut plain = HelperOutput::default();
    let pkt = HelperPacket {
        now: Instant::ZERO,
        dir: Dir::Original,
        tuples: &t,
        nat: false,
        seq: None,
        payload: &[&msg],
    };
    h.handle(st.as_mut(), &pkt, &mut plain);
    assert!(plain.rewrites.is_empty());
}

#[test]
fn malformed_messages_are_events_without_expectations() {
    let h = Talk::ntalk(&HelperConfig::default());
    let t = caller_master(518);
    let good = ntalk_msg(ANNOUNCE, sock(A, 41000), sock(A, 40000));
    let mut v2 = good.clone();
    v2[0] = 2;
    let mut unknown = good.clone();
    unknown[1] = 9;
    for (msg, why) in [
        (&good[..83], "request of 83 bytes"),
        (&[good.clone(), vec![0]].concat()[..], "request of 85 bytes"),
        (&[][..], "request of 0 bytes"),
        (&v2[..], "protocol version 2"),
        (&unknown[..], "unknown type 9"),
    ] {
        let out = run(&h, &t, Dir::Original, &[msg]);
        assert!(out.expects.is_empty());
        assert_eq!(kinds(&out), [K::Malformed]);
        assert!(out.events[0].detail.contains(why), "{:?}", out.events);
    }
    let out = run(
        &h,
        &t,
        Dir::Reply,
        &[&ntalk_resp(LOOK_UP, SUCCESS, sock(A, 1))[..23]],
    );
    assert_eq!((out.expects.len(), kinds(&out)), (0, vec![K::Malformed]));
    // Bad address fields: each is an event; the message's other expectations stand.
    let mut bad = sock(A, 41000);
    bad[..2].copy_from_slice(&10u16.to_be_bytes());
    let out = run(
        &h,
        &t,
        Dir::Original,
        &[&ntalk_msg(LOOK_UP, bad, sock(A, 0))],
    );
    assert!(out.expects.is_empty());
    assert_eq!(kinds(&out), [K::Malformed, K::Malformed]);
    assert!(
        out.events[0]
            .detail
            .contains("ctl_addr: 192.0.2.10:0 is not"),
        "{:?}",
        out.events
    );
    assert!(
        out.events[1].detail.contains("addr: address family 10"),
        "{:?}",
        out.events
    );
    // The little-endian family of 4.2BSD is not ntalk's.
    let mut le = sock(A, 41000);
    le[..2].copy_from_slice(&[2, 0]);
    let out = run(
        &h,
        &t,
        Dir::Original,
        &[&ntalk_msg(ANNOUNCE, le, sock(A, 40000))],
    );
    assert_eq!(out.expects.len(), 2);
    assert_eq!(kinds(&out), [K::Malformed, K::Parsed]);
}

#[test]
fn third_party_addresses_are_refused_unless_loose() {
    let c = [203, 0, 113, 99];
    let t = caller_master(518);
    let msg = ntalk_msg(ANNOUNCE, sock(c, 41000), sock(c, 40000));
    let out = run(
        &Talk::ntalk(&HelperConfig::default()),
        &t,
        Dir::Original,
        &[&msg],
    );
    // Only the callee's lookup (no address of the message in it) remains.
    assert_eq!(out.expects.len(), 1);
    assert_eq!(out.expects[0].child_helper, Some("ntalk"));
    assert_eq!(kinds(&out), [K::Refused, K::Refused, K::Parsed]);
    let loose = Talk::ntalk(&HelperConfig {
        ports: None,
        loose: true,
    });
    let out = run(&loose, &t, Dir::Original, &[&msg]);
    assert_eq!(out.expects.len(), 3);
    assert_eq!(out.expects[1].dst, ip(c));
    // A response naming a host other than the daemon's.
    let t = callee_lookup(518);
    let out = run(
        &Talk::ntalk(&HelperConfig::default()),
        &t,
        Dir::Reply,
        &[&ntalk_resp(LOOK_UP, SUCCESS, sock(c, 41000))],
    );
    assert_eq!((out.expects.len(), kinds(&out)), (0, vec![K::Refused]));
}

#[test]
fn ipv6_connections_are_refused() {
    let h = Talk::ntalk(&HelperConfig::default());
    let o = Tuple {
        src: "2001:db8::10".parse().unwrap(),
        dst: "2001:db8::5".parse().unwrap(),
        src_id: 40000,
        dst_id: 518,
        proto: 17,
        zone: 0,
    };
    let out = run(
        &h,
        &[o, o.invert()],
        Dir::Original,
        &[&ntalk_msg(LOOK_UP, sock(A, 41000), sock(A, 40000))],
    );
    assert!(out.expects.is_empty());
    assert_eq!(kinds(&out), [K::Refused, K::Refused]);
    assert!(out.events[0].detail.contains("IPv6 connection"));
}

#[test]
fn nat_format_writes_port_and_address_that_read_back() {
    let h = Talk::ntalk(&HelperConfig::default());
    let t = caller_master(518);
    let msg = ntalk_msg(ANNOUNCE, sock(A, 41000), sock(A, 40000));
    let out = run(&h, &t, Dir::Original, &[&msg]);
    let mut rewritten = msg.clone();
    for (i, e) in out.expects.iter().filter(|e| e.site.is_some()).enumerate() {
        let s = e.site.unwrap();
        let new = h.nat_format(s.kind, ip(N), 6000 + i as u16);
        assert_eq!(new.len(), s.len);
        rewritten[s.offset..s.offset + s.len].copy_from_slice(&new);
    }
    // The callee's daemon reads N's address; with `loose`, since N is not the sender here.
    let loose = Talk::ntalk(&HelperConfig {
        ports: None,
        loose: true,
    });
    let back = run(&loose, &t, Dir::Original, &[&rewritten]);
    let got: Vec<_> = back
        .expects
        .iter()
        .filter(|e| e.site.is_some())
        .map(|e| (e.dst, e.dst_port))
        .collect();
    assert_eq!(got, [(ip(N), 6000), (ip(N), 6001)]);
    assert_eq!(
        h.nat_format(SITE_SOCKADDR, "::ffff:192.0.2.1".parse().unwrap(), 1),
        [0, 1, 192, 0, 2, 1]
    );
}
