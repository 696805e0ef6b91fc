use super::*;
use crate::HelperEventKind as K;
use conntrack::tuple::Tuple;
use conntrack::Instant;
use proptest::prelude::*;

/// The control connection of `tests/data/pcap/ndpi-ftp.pcap` (see `tests/data/README.md`):
/// `frame direction seq payload-hex` per segment with payload.
const CAPTURE: &str = include_str!("../../tests/data/ndpi-ftp-control.txt");

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn tuple(c: &str, s: &str) -> Tuple {
    Tuple {
        src: ip(c),
        dst: ip(s),
        src_id: 40000,
        dst_id: 21,
        proto: 6,
        zone: 0,
    }
}

/// Client 192.0.2.10 to server 198.51.100.5, no NAT.
fn plain() -> [Tuple; 2] {
    let o = tuple("192.0.2.10", "198.51.100.5");
    [o, o.invert()]
}

/// The same client behind masquerade on 203.0.113.1.
fn snat() -> [Tuple; 2] {
    let o = tuple("192.0.2.10", "198.51.100.5");
    let mut r = o.invert();
    r.dst = ip("203.0.113.1");
    r.dst_id = 5000;
    [o, r]
}

fn v6() -> [Tuple; 2] {
    let o = tuple("2001:db8::10", "2001:db8:1::5");
    [o, o.invert()]
}

/// One helped connection; each direction's stream starts with a first line (which, as in
/// Linux, is never parsed) unless `raw`.
struct Conn {
    h: Ftp,
    st: HelperState,
    tuples: [Tuple; 2],
    nat: bool,
    /// Next sequence number of each direction.
    next: [u32; 2],
}

const ISN: [u32; 2] = [1000, 900_000];

impl Conn {
    fn raw(tuples: [Tuple; 2], nat: bool, loose: bool) -> Conn {
        let h = Ftp::new(&HelperConfig { ports: None, loose });
        let st = h.new_state();
        Conn {
            h,
            st,
            tuples,
            nat,
            next: ISN,
        }
    }

    fn new(tuples: [Tuple; 2], nat: bool, loose: bool) -> Conn {
        let mut c = Conn::raw(tuples, nat, loose);
        let a = c.send(Dir::Original, &[b"USER anonymous\r\n"]);
        let b = c.send(Dir::Reply, &[b"220 ready\r\n"]);
        assert!(a.events.is_empty() && b.events.is_empty());
        c
    }

    fn at(&mut self, dir: Dir, seq: u32, parts: &[&[u8]]) -> HelperOutput {
        let mut out = HelperOutput::default();
        let pkt = HelperPacket {
            now: Instant::ZERO,
            dir,
            tuples: &self.tuples,
            nat: self.nat,
            seq: Some(seq),
            payload: parts,
        };
        self.h.handle(self.st.as_mut(), &pkt, &mut out);
        let end = seq.wrapping_add(parts.iter().map(|p| p.len() as u32).sum::<u32>());
        let n = &mut self.next[dir.index()];
        if (end.wrapping_sub(*n) as i32) > 0 {
            *n = end;
        }
        out
    }

    /// The next in-order segment of `dir`.
    fn send(&mut self, dir: Dir, parts: &[&[u8]]) -> HelperOutput {
        let seq = self.next[dir.index()];
        self.at(dir, seq, parts)
    }
}

fn expect(dir: Dir, src: &str, dst: &str, port: u16, site: Option<Site>) -> ExpectRequest {
    ExpectRequest {
        dir,
        proto: 6,
        src: Some(ip(src)),
        src_port: None,
        dst: ip(dst),
        dst_port: port,
        site,
        permanent: false,
        child_helper: None,
        nat_to: None,
        rtp_pair: false,
    }
}

fn site(offset: usize, len: usize, kind: u8) -> Option<Site> {
    Some(Site { offset, len, kind })
}

fn kinds(out: &HelperOutput) -> Vec<K> {
    out.events.iter().map(|e| e.kind).collect()
}

#[test]
fn captured_session_expects_both_passive_data_connections() {
    let t = tuple("192.168.1.212", "90.130.70.73");
    let mut c = Conn::raw([t, t.invert()], false, false);
    let mut got = Vec::new();
    for line in CAPTURE.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let dir = if f[1] == "O" {
            Dir::Original
        } else {
            Dir::Reply
        };
        let seq: u32 = f[2].parse().unwrap();
        let payload = unhex(f[3]);
        let out = c.at(dir, seq, &[&payload]);
        assert!(
            out.events.iter().all(|e| e.kind == K::Parsed),
            "frame {}: {:?}",
            f[0],
            out.events
        );
        for e in out.expects {
            let s = e.site.unwrap();
            assert_eq!(
                &payload[s.offset..s.offset + s.len],
                nat::format(s.kind, e.dst, e.dst_port)
            );
            got.push((f[0].to_owned(), e));
        }
    }
    // Frames 35 and 64: "227 Entering Passive Mode (90,130,70,73,100,85)." and (...,95,203);
    // the data connections of the capture go to ports 25685 and 24523.
    let want = |port, kind| {
        expect(
            Dir::Original,
            "192.168.1.212",
            "90.130.70.73",
            port,
            site(27, 19, kind),
        )
    };
    assert_eq!(
        got,
        [
            ("35".to_owned(), want(25685, SITE_PASV)),
            ("64".to_owned(), want(24523, SITE_PASV))
        ]
    );
}

#[test]
fn port_and_eprt_from_the_client() {
    let mut c = Conn::new(plain(), false, false);
    let out = c.send(Dir::Original, &[b"PORT 192,0,2,10,4,1\r\n"]);
    assert_eq!(
        out.expects,
        [expect(
            Dir::Reply,
            "198.51.100.5",
            "192.0.2.10",
            1025,
            site(5, 14, SITE_PORT)
        )]
    );
    assert_eq!(out.events[0].detail, "ftp: PORT 192.0.2.10:1025");
    let out = c.send(Dir::Original, &[b"EPRT |1|192.0.2.10|6275|\r\n"]);
    assert_eq!(
        out.expects,
        [expect(
            Dir::Reply,
            "198.51.100.5",
            "192.0.2.10",
            6275,
            site(5, 19, SITE_EPRT)
        )]
    );
    // Commands are case-insensitive (RFC 959), any printable delimiter is allowed.
    let out = c.send(Dir::Original, &[b"eprt !1!192.0.2.10!6276!\r\n"]);
    assert_eq!(out.expects[0].dst_port, 6276);
    let out = c.send(Dir::Original, &[b"port 192,0,2,10,0,21\n"]);
    assert_eq!(out.expects[0].dst_port, 21, "a bare LF ends a line too");
}

#[test]
fn pasv_and_epsv_from_the_server() {
    let mut c = Conn::new(plain(), false, false);
    let out = c.send(
        Dir::Reply,
        &[b"227 Entering Passive Mode (198,51,100,5,195,80).\r\n"],
    );
    assert_eq!(
        out.expects,
        [expect(
            Dir::Original,
            "192.0.2.10",
            "198.51.100.5",
            50000,
            site(27, 19, SITE_PASV)
        )]
    );
    // RFC 1123: the numbers may come without parentheses.
    let out = c.send(Dir::Reply, &[b"227 =198,51,100,5,0,20\r\n"]);
    assert_eq!(out.expects[0].site, site(5, 17, SITE_PASV));
    let out = c.send(
        Dir::Reply,
        &[b"229 Entering Extended Passive Mode (|||6446|)\r\n"],
    );
    assert_eq!(
        out.expects,
        [expect(
            Dir::Original,
            "192.0.2.10",
            "198.51.100.5",
            6446,
            site(36, 8, SITE_EPSV)
        )]
    );
}

#[test]
fn ipv6_eprt_and_epsv() {
    let mut c = Conn::new(v6(), false, false);
    let line = b"EPRT |2|2001:DB8:0::10|5282|\r\n";
    let out = c.send(Dir::Original, &[line]);
    assert_eq!(
        out.expects,
        [expect(
            Dir::Reply,
            "2001:db8:1::5",
            "2001:db8::10",
            5282,
            site(5, 23, SITE_EPRT)
        )]
    );
    let out = c.send(Dir::Reply, &[b"229 Extended Passive (|||50001|)\r\n"]);
    assert_eq!(
        out.expects,
        [expect(
            Dir::Original,
            "2001:db8::10",
            "2001:db8:1::5",
            50001,
            site(22, 9, SITE_EPSV)
        )]
    );
    // PORT and 227 cannot name an IPv6 host: another family is refused even when loose.
    let mut c = Conn::new(v6(), false, true);
    let out = c.send(Dir::Original, &[b"PORT 192,0,2,10,4,1\r\n"]);
    assert!(out.expects.is_empty());
    assert_eq!(kinds(&out), [K::Refused]);
    let mut c = Conn::new(plain(), false, true);
    let out = c.send(Dir::Original, &[b"EPRT |2|2001:db8::10|5282|\r\n"]);
    assert_eq!((out.expects.len(), kinds(&out)), (0, vec![K::Refused]));
}

#[test]
fn several_commands_in_one_segment_and_keywords_off_line_start() {
    let mut c = Conn::new(plain(), false, false);
    let out = c.send(
        Dir::Original,
        &[b"NOOP\r\nPORT 192,0,2,10,4,1\r\nSITE PORT 192,0,2,10,4,2\r\nXPORT 192,0,2,10,4,3\r\nPORT 192,0,2,10,4,4\r\n"],
    );
    let ports: Vec<_> = out
        .expects
        .iter()
        .map(|e| (e.dst_port, e.site.unwrap().offset))
        .collect();
    assert_eq!(ports, [(1025, 11), (1028, 80)]);
    // Commands are only the client's, replies only the server's.
    let out = c.send(Dir::Reply, &[b"PORT 192,0,2,10,4,1\r\n"]);
    let out2 = c.send(Dir::Original, &[b"227 (198,51,100,5,4,1)\r\n"]);
    assert!(out.expects.is_empty() && out2.expects.is_empty());
}

#[test]
fn the_first_segment_of_a_direction_is_not_parsed() {
    let mut c = Conn::raw(plain(), false, false);
    let out = c.send(Dir::Original, &[b"PORT 192,0,2,10,4,1\r\n"]);
    assert!(out.expects.is_empty() && out.events.is_empty());
    // It did tell where the next line starts.
    let out = c.send(Dir::Original, &[b"PORT 192,0,2,10,4,2\r\n"]);
    assert_eq!(out.expects[0].dst_port, 1026);
    // A first segment ending mid-line: the next segment's first line is not parsed, the
    // line after it is.
    let mut c = Conn::raw(plain(), false, false);
    c.send(Dir::Reply, &[b"220 hello"]);
    let out = c.send(
        Dir::Reply,
        &[b"227 (198,51,100,5,4,1)\r\n227 (198,51,100,5,4,2)\r\n"],
    );
    assert_eq!(
        out.expects.iter().map(|e| e.dst_port).collect::<Vec<_>>(),
        [1026]
    );
}

#[test]
fn a_command_split_across_two_segments_is_found() {
    // The keyword split.
    let mut c = Conn::new(plain(), true, false);
    assert!(c.send(Dir::Original, &[b"PO"]).expects.is_empty());
    let out = c.send(Dir::Original, &[b"RT 192,0,2,10,4,1\r\n"]);
    assert_eq!(
        out.expects,
        [expect(
            Dir::Reply,
            "198.51.100.5",
            "192.0.2.10",
            1025,
            site(3, 14, SITE_PORT)
        )]
    );
    // The keyword whole, the numbers in the next segment: NAT can rewrite them there.
    let out = c.send(Dir::Original, &[b"EPRT "]);
    assert!(out.expects.is_empty() && out.events.is_empty());
    let out = c.send(Dir::Original, &[b"|1|192.0.2.10|1026|\r\n"]);
    assert_eq!(out.expects[0].site, site(0, 19, SITE_EPRT));
    // The numbers split: without NAT the expectation stands (no rewrite is needed) ...
    let mut c = Conn::new(plain(), false, false);
    c.send(Dir::Reply, &[b"227 Entering Passive Mode (198,51,"]);
    let out = c.send(Dir::Reply, &[b"100,5,4,1).\r\n"]);
    assert_eq!(
        out.expects,
        [expect(
            Dir::Original,
            "192.0.2.10",
            "198.51.100.5",
            1025,
            None
        )]
    );
    // ... under NAT it cannot be rewritten: no expectation (an unreachable private address
    // has already gone out), an event.
    let mut c = Conn::new(snat(), true, false);
    c.send(Dir::Original, &[b"PORT 192,0,2,"]);
    let out = c.send(Dir::Original, &[b"10,4,1\r\n"]);
    assert!(out.expects.is_empty());
    assert_eq!(kinds(&out), [K::Unsynced]);
    // A line split over three segments, the last with the end of line only.
    let mut c = Conn::new(plain(), true, false);
    c.send(Dir::Original, &[b"PORT"]);
    c.send(Dir::Original, &[b" 192,0,2,10,4,1"]);
    let out = c.send(Dir::Original, &[b"\r\n"]);
    assert_eq!((out.expects.len(), kinds(&out)), (0, vec![K::Unsynced]));
}

#[test]
fn a_command_split_across_chain_elements_at_every_cut() {
    let line = b"EPRT |1|192.0.2.10|6275|\r\n";
    for a in 0..=line.len() {
        for b in a..=line.len() {
            let mut c = Conn::new(plain(), true, false);
            let out = c.send(Dir::Original, &[&line[..a], &line[a..b], &line[b..]]);
            assert_eq!(
                out.expects,
                [expect(
                    Dir::Reply,
                    "198.51.100.5",
                    "192.0.2.10",
                    6275,
                    site(5, 19, SITE_EPRT)
                )],
                "cuts {a} {b}"
            );
        }
    }
}

#[test]
fn a_retransmission_expects_the_same_again_and_nothing_wrong() {
    let mut c = Conn::new(plain(), true, false);
    let seq = c.next[0];
    let first = c.send(Dir::Original, &[b"PORT 192,0,2,10,4,1\r\n"]);
    c.send(Dir::Original, &[b"NOOP\r\n"]);
    // Resent whole (at a line start): the same expectation and site, so that NAT rewrites the
    // resent copy as it did the first.
    let again = c.at(Dir::Original, seq, &[b"PORT 192,0,2,10,4,1\r\n"]);
    assert_eq!(again.expects, first.expects);
    // The stream goes on undisturbed.
    let out = c.send(Dir::Original, &[b"PORT 192,0,2,10,4,2\r\n"]);
    assert_eq!(out.expects[0].dst_port, 1026);
    // A resend starting mid-line is not parsed.
    let out = c.at(Dir::Original, seq + 3, &[b"T 192,0,2,10,4,1\r\n"]);
    assert_eq!((out.expects.len(), kinds(&out)), (0, vec![K::Unsynced]));
    // A resend at a line start that brings new bytes too continues from its end.
    let seq = c.next[0];
    c.send(Dir::Original, &[b"NOOP\r\n"]);
    let out = c.at(Dir::Original, seq, &[b"NOOP\r\nPORT 192,0,2,10,4,3\r\nPO"]);
    assert_eq!(out.expects[0].dst_port, 1027);
    let out = c.send(Dir::Original, &[b"RT 192,0,2,10,4,4\r\n"]);
    assert_eq!(out.expects[0].dst_port, 1028);
    // A resend of old data while a keyword is half-read: read apart, the half stays.
    let seq = c.next[0];
    c.send(Dir::Original, &[b"NOOP\r\n"]);
    c.send(Dir::Original, &[b"PO"]);
    let old = c.at(Dir::Original, seq, &[b"NOOP\r\n"]);
    assert!(old.expects.is_empty() && old.events.is_empty());
    let out = c.send(Dir::Original, &[b"RT 192,0,2,10,4,5\r\n"]);
    assert_eq!(out.expects[0].dst_port, 1029);
}

#[test]
fn an_out_of_order_segment_creates_no_expectation() {
    let mut c = Conn::new(plain(), false, false);
    // The router sees "PORT ..." before the segment in front of it, which might have been
    // "SITE X " (making this no command at all): not parsed.
    let a = c.next[0];
    let hole = b"SITE X ";
    let late = c.at(
        Dir::Original,
        a + hole.len() as u32,
        &[b"PORT 192,0,2,10,4,1\r\n"],
    );
    assert_eq!((late.expects.len(), kinds(&late)), (0, vec![K::Unsynced]));
    // The missing bytes arrive, at a known line start: read as old data, nothing in them.
    let out = c.at(Dir::Original, a, &[hole]);
    assert!(out.expects.is_empty() && out.events.is_empty());
    // The out-of-order segment ended a line: the stream goes on from there.
    let out = c.send(Dir::Original, &[b"PORT 192,0,2,10,4,2\r\n"]);
    assert_eq!(out.expects[0].dst_port, 1026);
    // A reply segment after a hole that does not end a line: everything up to the next line
    // start the helper sees is skipped.
    let r = c.next[1];
    let out = c.at(
        Dir::Reply,
        r + 10,
        &[b"227 (198,51,100,5,4,1)\r\n227 (198,51,100,5,4,2)"],
    );
    assert!(out.expects.is_empty());
    let out = c.send(Dir::Reply, &[b"\r\n227 (198,51,100,5,4,3)\r\n"]);
    assert_eq!(
        out.expects.iter().map(|e| e.dst_port).collect::<Vec<_>>(),
        [1027]
    );
}

#[test]
fn sequence_numbers_wrap() {
    let mut c = Conn::raw(plain(), false, false);
    c.next[0] = u32::MAX - 3;
    c.send(Dir::Original, &[b"USER x\r\n"]);
    c.send(Dir::Original, &[b"PO"]);
    let out = c.send(Dir::Original, &[b"RT 192,0,2,10,4,1\r\n"]);
    assert_eq!(out.expects[0].dst_port, 1025);
    let out = c.at(
        Dir::Original,
        (u32::MAX - 3).wrapping_add(8),
        &[b"PORT 192,0,2,10,4,1\r\n"],
    );
    assert_eq!(out.expects.len(), 1, "a retransmission across the wrap");
}

#[test]
fn bounce_is_refused_unless_loose() {
    for loose in [false, true] {
        let mut c = Conn::new(plain(), false, loose);
        let out = c.send(Dir::Original, &[b"PORT 203,0,113,9,0,25\r\n"]);
        let pasv = c.send(Dir::Reply, &[b"227 (203,0,113,9,0,25)\r\n"]);
        let eprt = c.send(Dir::Original, &[b"EPRT |1|203.0.113.9|25|\r\n"]);
        for out in [out, pasv, eprt] {
            if loose {
                assert_eq!(out.expects.len(), 1);
                assert_eq!(out.expects[0].dst, ip("203.0.113.9"));
            } else {
                assert!(out.expects.is_empty());
                assert_eq!(kinds(&out), [K::Refused]);
                assert!(
                    out.events[0].detail.contains("FTP bounce"),
                    "{:?}",
                    out.events
                );
            }
        }
    }
    // The check is against the sender before NAT: a client behind SNAT announces its own
    // private address, which is fine.
    let mut c = Conn::new(snat(), true, false);
    assert_eq!(
        c.send(Dir::Original, &[b"PORT 192,0,2,10,4,1\r\n"])
            .expects
            .len(),
        1
    );
    assert_eq!(
        kinds(&c.send(Dir::Original, &[b"PORT 203,0,113,1,4,1\r\n"])),
        [K::Refused]
    );
}

#[test]
fn malformed_commands_are_events_without_expectations() {
    for (dir, line, why) in [
        (Dir::Original, &b"PORT 192,0,2,10\r\n"[..], "expected h1"),
        (
            Dir::Original,
            b"PORT 192,0,2,10,4,1,7\r\n",
            "after the argument",
        ),
        (Dir::Original, b"PORT 192,0,2,300,4,1\r\n", "above 255"),
        (Dir::Original, b"PORT 192,0,2,0010,4,1\r\n", "expected h1"),
        (Dir::Original, b"PORT 192,0,2,10,0,0\r\n", "port 0"),
        (Dir::Original, b"PORT 0,0,0,0,4,1\r\n", "unspecified"),
        (Dir::Original, b"PORT \r\n", "expected h1"),
        (
            Dir::Original,
            b"EPRT |3|192.0.2.10|1|\r\n",
            "network protocol",
        ),
        (Dir::Original, b"EPRT |1|192.0.2|1|\r\n", "bad IPv4"),
        (Dir::Original, b"EPRT |2|2001:db8:::1|1|\r\n", "bad IPv6"),
        (
            Dir::Original,
            b"EPRT |1|192.0.2.10|70000|\r\n",
            "above 65535",
        ),
        (
            Dir::Original,
            b"EPRT |1|192.0.2.10|1\r\n",
            "missing delimiter",
        ),
        (Dir::Original, b"EPRT \r\n", "expected a delimiter"),
        (Dir::Reply, b"227 Entering Passive Mode\r\n", "no address"),
        (Dir::Reply, b"227 (198,51,100,5,4)\r\n", "expected h1"),
        (
            Dir::Reply,
            b"229 Entering Extended Passive Mode |||1|\r\n",
            "no '('",
        ),
        (Dir::Reply, b"229 (|||x|)\r\n", "expected a port"),
        (Dir::Reply, b"229 (||1|1|)\r\n", "expected (<d><d><d>"),
        (Dir::Reply, b"229 (|||1|\r\n", "expected (<d><d><d>"),
    ] {
        let mut c = Conn::new(plain(), false, true);
        let out = c.send(dir, &[line]);
        assert!(out.expects.is_empty(), "{}", String::from_utf8_lossy(line));
        assert_eq!(
            kinds(&out),
            [K::Malformed],
            "{}",
            String::from_utf8_lossy(line)
        );
        assert!(
            out.events[0].detail.contains(why),
            "{:?} for {}",
            out.events[0],
            String::from_utf8_lossy(line)
        );
    }
    // Too long a line, in one segment and over several.
    let mut c = Conn::new(plain(), false, false);
    let long = [
        b"PORT ".as_slice(),
        &[b' '; MAX_LINE + 1],
        b"192,0,2,10,4,1\r\n",
    ]
    .concat();
    assert_eq!(kinds(&c.send(Dir::Original, &[&long])), [K::Malformed]);
    let mut c = Conn::new(plain(), false, false);
    c.send(Dir::Original, &[b"PORT "]);
    for _ in 0..MAX_LINE / 64 {
        assert!(c.send(Dir::Original, &[&[b' '; 64]]).events.is_empty());
    }
    let out = c.send(Dir::Original, &[b" 192,0,2,10,4,1\r\n"]);
    assert_eq!((out.expects.len(), kinds(&out)), (0, vec![K::Malformed]));
    // The stream survives: the next line is read.
    assert_eq!(
        c.send(Dir::Original, &[b"PORT 192,0,2,10,4,1\r\n"])
            .expects
            .len(),
        1
    );
}

/// Replaces each site of `out` in `payload` by `nat_format(kind, addr, port)`.
fn rewrite(h: &Ftp, payload: &[u8], out: &HelperOutput, addr: IpAddr, port: u16) -> Vec<u8> {
    let s = out.expects[0].site.unwrap();
    let new = h.nat_format(s.kind, addr, port);
    [&payload[..s.offset], &new[..], &payload[s.offset + s.len..]].concat()
}

#[test]
fn nat_format_then_parse_gives_the_new_address() {
    // Client behind SNAT (203.0.113.1) sends PORT/EPRT; server behind DNAT (public
    // 203.0.113.2) sends 227/229. The peer parses the rewritten line and must find the
    // public address and the engine's port.
    let cases: [(Dir, &[u8], &str); 6] = [
        (Dir::Original, b"PORT 192,0,2,10,4,1\r\n", "203.0.113.1"),
        (
            Dir::Original,
            b"EPRT !1!192.0.2.10!1025!\r\n",
            "203.0.113.1",
        ),
        (
            Dir::Reply,
            b"227 Entering Passive Mode (192,0,2,10,4,1).\r\n",
            "203.0.113.2",
        ),
        (
            Dir::Reply,
            b"229 Entering Extended Passive Mode (|||1025|)\r\n",
            "192.0.2.10",
        ),
        (
            Dir::Original,
            b"EPRT |2|2001:db8::10|1025|\r\n",
            "2001:db8:ff::1",
        ),
        (Dir::Reply, b"229 (|||1025|)\r\n", "2001:db8::10"),
    ];
    for (dir, line, public) in cases {
        let v6 = public.contains(':');
        let inside = if v6 { "2001:db8::10" } else { "192.0.2.10" };
        let peer = if v6 { "2001:db8:1::5" } else { "198.51.100.5" };
        // The sender is `inside`, in the packet's direction.
        let o = if dir == Dir::Original {
            tuple(inside, peer)
        } else {
            tuple(peer, inside)
        };
        let mut c = Conn::new([o, o.invert()], true, false);
        let out = c.send(dir, &[line]);
        assert_eq!(out.expects.len(), 1, "{}", String::from_utf8_lossy(line));
        for new_port in [1025, 60000, 7] {
            let rewritten = rewrite(&c.h, line, &out, ip(public), new_port);
            // What the peer reads: the same line from `public` (loose: the check is not the
            // point here, the numbers are).
            let o2 = if dir == Dir::Original {
                tuple(public, peer)
            } else {
                tuple(peer, public)
            };
            let mut p = Conn::new([o2, o2.invert()], false, false);
            let back = p.send(dir, &[&rewritten]);
            assert_eq!(
                back.expects.len(),
                1,
                "{}",
                String::from_utf8_lossy(&rewritten)
            );
            assert_eq!(
                (back.expects[0].dst, back.expects[0].dst_port),
                (ip(public), new_port)
            );
        }
    }
}

/// Lines of a control connection with commands the helper reads and others.
fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (1u16..).prop_map(|p| format!("PORT 192,0,2,10,{},{}\r\n", p >> 8, p & 0xff).into_bytes()),
        (1u16..).prop_map(|p| format!("EPRT |1|192.0.2.10|{p}|\r\n").into_bytes()),
        (1u16..)
            .prop_map(|p| format!("SITE PORT 192,0,2,10,{},{}\r\n", p >> 8, p & 0xff).into_bytes()),
        "[A-Z]{3,4}( [a-z0-9,|.]{0,20})?\r\n".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..20),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random lines cut into random segments and delivered with reordering, duplicates and
    /// losses: never an expectation that an in-order reading of the stream would not make.
    #[test]
    fn reordering_never_invents_an_expectation(
        lines in proptest::collection::vec(line(), 1..12),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        order in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4), 0..24),
    ) {
        let stream: Vec<u8> = lines.concat();
        let mut bounds: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        bounds.extend([0, stream.len()]);
        bounds.sort_unstable();
        bounds.dedup();
        let segs: Vec<(u32, &[u8])> = bounds.windows(2).map(|w| (w[0] as u32, &stream[w[0]..w[1]])).collect();
        // Lines of no bytes at all make no stream and no segment to deliver.
        prop_assume!(!segs.is_empty());
        // In order, after a first line: the reference.
        let reference = |segs: &[(u32, &[u8])]| {
            let mut c = Conn::new(plain(), false, true);
            let base = c.next[0];
            let mut all = Vec::new();
            for (off, s) in segs {
                all.extend(c.at(Dir::Original, base + off, &[s]).expects.into_iter().map(|e| (e.dst, e.dst_port)));
            }
            all
        };
        let want = reference(&segs);
        let mut c = Conn::new(plain(), false, true);
        let base = c.next[0];
        let mut sent = 0;
        for (pick, how) in &order {
            // 0, 1: the next segment in order; 2: any segment (late, early or resent); 3: the
            // next one split in a chain.
            let i = match how {
                0 | 1 | 3 => sent.min(segs.len() - 1),
                _ => pick.index(segs.len()),
            };
            let (off, s) = segs[i];
            let out = if *how == 3 {
                let (a, b) = s.split_at(s.len() / 2);
                c.at(Dir::Original, base + off, &[a, b])
            } else {
                c.at(Dir::Original, base + off, &[s])
            };
            if i == sent {
                sent += 1;
            }
            for e in out.expects {
                prop_assert!(want.contains(&(e.dst, e.dst_port)), "{:?} not in {:?}", e, want);
            }
        }
    }

    /// Any bytes, any segmentation and sequence numbers, both directions: no panic, every
    /// site inside its packet.
    #[test]
    fn random_bytes_never_panic(
        segs in proptest::collection::vec((any::<bool>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..64), 0usize..64), 0..16),
        nat in any::<bool>(),
    ) {
        let mut c = Conn::raw(snat(), nat, true);
        for (reply, seq, bytes, cut) in segs {
            let dir = if reply { Dir::Reply } else { Dir::Original };
            let seq = if seq % 2 == 0 { c.next[dir.index()] } else { seq };
            let (a, b) = bytes.split_at(cut.min(bytes.len()));
            let out = c.at(dir, seq, &[a, b]);
            for e in out.expects {
                if let Some(s) = e.site {
                    prop_assert!(s.offset + s.len <= bytes.len());
                }
            }
        }
    }
}
