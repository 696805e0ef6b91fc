//! The fuzz harnesses of the helper parsers, kept in the library so that the cargo-fuzz
//! targets (`fuzz/fuzz_targets/helper_*.rs`) and the replay test (`tests/tests/fuzz_replay.rs`)
//! run the very same code.
//!
//! Input: a settings byte (bit 0: the connection is NATed, bit 1: `loose`, bit 2: IPv6
//! connection, bit 3: the old `talk` protocol instead of `ntalk`), then records
//! `[control, cut, length, bytes]` (missing bytes read as zero, a short last record is cut).
//! Bit 0 of `control` is the direction; for FTP bits 1-3 choose the sequence number (0-3: in
//! order, 4: again from the last line start, 5: a hole of `control >> 4` + 1 bytes, 6: back
//! `control >> 4` bytes, 7: `cut` * 256 from the stream start) and the rest of the bytes are the
//! segment; `cut` splits the payload into a chain of up to three segments.
//!
//! The H.323 harnesses (`h323_per`, `h323_ras`, `h323_q931`, `h323_h245`) take the same
//! settings byte and records (`h323_per`: a type selector and a cut, then one encoding); each
//! record is also walked alone by its walker, flat and as a chain, which must agree, every
//! address found lying at bytes that hold it; the helpers' sites cover whole addresses of the
//! connection's family, rewrites come only under NAT.
//!
//! Checked besides "no panic": a payload gives the same expectations and events whether it
//! comes as one segment or as a chain; every site lies inside the packet; its replacement
//! (`nat_format`) reads back as the expected address and port (FTP: through the parser; talk:
//! byte for byte); expectations go the other way than the packet, with the connection's
//! family, and without `loose` only to the sender's address; under NAT, every FTP and talk
//! expectation with a payload address has a site.

use crate::{ftp, talk, tftp, Helper, HelperConfig, HelperOutput, HelperPacket};
use conntrack::tuple::{Dir, Tuple};
use conntrack::Instant;
use std::net::IpAddr;
use std::sync::OnceLock;

/// Settings bit: the connection is NATed.
pub const NAT: u8 = 1;
/// Settings bit: the helper is `loose`.
pub const LOOSE: u8 = 2;
/// Settings bit: an IPv6 connection.
pub const V6: u8 = 4;
/// Settings bit: the old `talk` protocol instead of `ntalk`.
pub const OLD_TALK: u8 = 8;

/// Encodes one record (`bytes` cut to 255): for seeds and tests.
pub fn record(control: u8, cut: u8, bytes: &[u8]) -> Vec<u8> {
    let len = bytes.len().min(255);
    let mut v = vec![control, cut, len as u8];
    v.extend_from_slice(&bytes[..len]);
    v
}

/// Settings and records decoded from the fuzzer's bytes.
struct Input<'a> {
    nat: bool,
    loose: bool,
    v6: bool,
    old_talk: bool,
    rest: &'a [u8],
}

/// One record: control byte, chain cut, payload.
struct Record<'a> {
    control: u8,
    cut: u8,
    bytes: &'a [u8],
}

impl<'a> Input<'a> {
    fn new(data: &'a [u8]) -> Input<'a> {
        let s = data.first().copied().unwrap_or(0);
        Input {
            nat: s & NAT != 0,
            loose: s & LOOSE != 0,
            v6: s & V6 != 0,
            old_talk: s & OLD_TALK != 0,
            rest: data.get(1..).unwrap_or(&[]),
        }
    }

    fn next(&mut self) -> Option<Record<'a>> {
        let (&control, rest) = self.rest.split_first()?;
        let cut = rest.first().copied().unwrap_or(0);
        let len = usize::from(rest.get(1).copied().unwrap_or(0));
        let body = rest.get(2..).unwrap_or(&[]);
        let bytes = &body[..len.min(body.len())];
        self.rest = &body[bytes.len()..];
        Some(Record {
            control,
            cut,
            bytes,
        })
    }

    /// The connection: client -> server on `port`, the reply SNATed when `nat`.
    fn tuples(&self, proto: u8, port: u16) -> [Tuple; 2] {
        let (c, s, n): (IpAddr, IpAddr, IpAddr) = if self.v6 {
            (
                "2001:db8::10".parse().unwrap_or(IpAddr::from([0u8; 16])),
                "2001:db8:1::5".parse().unwrap_or(IpAddr::from([0u8; 16])),
                "2001:db8:ff::1".parse().unwrap_or(IpAddr::from([0u8; 16])),
            )
        } else {
            (
                IpAddr::from([192, 0, 2, 10]),
                IpAddr::from([198, 51, 100, 5]),
                IpAddr::from([203, 0, 113, 1]),
            )
        };
        let orig = Tuple {
            src: c,
            dst: s,
            src_id: 40000,
            dst_id: port,
            proto,
            zone: 0,
        };
        let mut reply = orig.invert();
        if self.nat {
            reply.dst = n;
            reply.dst_id = 1024;
        }
        [orig, reply]
    }

    fn config(&self) -> HelperConfig {
        HelperConfig {
            ports: None,
            loose: self.loose,
        }
    }
}

/// `bytes` as a chain of up to three segments, cut where `cut` says.
fn split(bytes: &[u8], cut: u8) -> [&[u8]; 3] {
    let a = usize::from(cut & 0x0f) * bytes.len() / 15;
    let b = a + usize::from(cut >> 4) * (bytes.len() - a) / 15;
    [&bytes[..a], &bytes[a..b], &bytes[b..]]
}

/// Feeds one packet to two states of `h`, flat and as a chain; both must answer alike.
#[allow(clippy::too_many_arguments)]
fn both(
    h: &dyn Helper,
    states: &mut [crate::HelperState; 2],
    tuples: &[Tuple; 2],
    nat: bool,
    dir: Dir,
    seq: Option<u32>,
    bytes: &[u8],
    cut: u8,
) -> HelperOutput {
    let flat = [bytes];
    let chain = split(bytes, cut);
    let mut outs = [HelperOutput::default(), HelperOutput::default()];
    for (i, payload) in [&flat[..], &chain[..]].into_iter().enumerate() {
        let pkt = HelperPacket {
            now: Instant::ZERO,
            dir,
            tuples,
            nat,
            seq,
            payload,
        };
        h.handle(states[i].as_mut(), &pkt, &mut outs[i]);
    }
    let [a, b] = outs;
    assert_eq!(a.expects, b.expects, "chain split changed the expectations");
    assert_eq!(a.events, b.events, "chain split changed the events");
    assert_eq!(a.rewrites, b.rewrites, "chain split changed the rewrites");
    a
}

/// Checks what every helper promises about its expectations.
fn check_common(out: &HelperOutput, tuples: &[Tuple; 2], dir: Dir, len: usize, loose: bool) {
    let sender = tuples[dir.index()].src;
    for e in &out.expects {
        assert_eq!(e.dir, dir.flip(), "{e:?}");
        assert_eq!(e.dst.is_ipv4(), sender.is_ipv4(), "{e:?}");
        if let Some(s) = e.site {
            assert!(s.offset + s.len <= len, "site {s:?} outside {len} bytes");
            if !loose {
                assert_eq!(e.dst, sender, "announced address not the sender's: {e:?}");
            }
        }
    }
}

/// The FTP control connection: PORT/EPRT/227/229 over segments in and out of order.
pub fn ftp(data: &[u8]) {
    run_ftp(data);
}

/// [`ftp`], returning how many expectations were made.
fn run_ftp(data: &[u8]) -> usize {
    // Built once: compiling the two searchers costs more than a whole short input.
    static HELPERS: OnceLock<[ftp::Ftp; 2]> = OnceLock::new();
    let both_modes = HELPERS.get_or_init(|| {
        [false, true].map(|loose| ftp::Ftp::new(&HelperConfig { ports: None, loose }))
    });
    let mut made = 0;
    let mut input = Input::new(data);
    let h = &both_modes[usize::from(input.loose)];
    let tuples = input.tuples(6, 21);
    let mut states = [h.new_state(), h.new_state()];
    // Per direction: the next in-order sequence number and the last segment's start.
    let base = [1000u32, 5000u32];
    let mut next = base;
    let mut last = base;
    while let Some(r) = input.next() {
        let dir = if r.control & 1 == 0 {
            Dir::Original
        } else {
            Dir::Reply
        };
        let d = dir.index();
        let k = u32::from(r.control >> 4);
        let seq = match (r.control >> 1) & 7 {
            0..=3 => next[d],
            4 => last[d],
            5 => next[d].wrapping_add(k + 1),
            6 => next[d].wrapping_sub(k),
            _ => base[d].wrapping_add(u32::from(r.cut) * 256),
        };
        let out = both(
            h,
            &mut states,
            &tuples,
            input.nat,
            dir,
            Some(seq),
            r.bytes,
            r.cut,
        );
        check_common(&out, &tuples, dir, r.bytes.len(), input.loose);
        for e in &out.expects {
            assert_eq!(e.proto, 6);
            if input.nat {
                assert!(
                    e.site.is_some(),
                    "NATed FTP expectation without a site: {e:?}"
                );
            }
            if let Some(s) = e.site {
                let text = h.nat_format(s.kind, e.dst, e.dst_port);
                let back = ftp::reparse(s.kind, &text);
                let want_addr = (s.kind != ftp::SITE_EPSV).then_some(e.dst);
                assert_eq!(
                    back,
                    Some((want_addr, e.dst_port)),
                    "{}",
                    String::from_utf8_lossy(&text)
                );
            }
        }
        let end = seq.wrapping_add(r.bytes.len() as u32);
        if (end.wrapping_sub(next[d]) as i32) > 0 {
            next[d] = end;
        }
        last[d] = seq;
        made += out.expects.len();
    }
    made
}

/// TFTP requests (and anything else) in both directions.
pub fn tftp(data: &[u8]) {
    run_tftp(data);
}

fn run_tftp(data: &[u8]) -> usize {
    let mut made = 0;
    let mut input = Input::new(data);
    let h = tftp::Tftp::new(&input.config());
    let tuples = input.tuples(17, 69);
    let mut states = [h.new_state(), h.new_state()];
    while let Some(r) = input.next() {
        let dir = if r.control & 1 == 0 {
            Dir::Original
        } else {
            Dir::Reply
        };
        let out = both(
            &h,
            &mut states,
            &tuples,
            input.nat,
            dir,
            None,
            r.bytes,
            r.cut,
        );
        check_common(&out, &tuples, dir, r.bytes.len(), input.loose);
        if !out.expects.is_empty() {
            assert_eq!(dir, Dir::Original);
            assert!(matches!(r.bytes.get(..2), Some([0, 1 | 2])));
            let e = &out.expects[0];
            assert_eq!((e.dst, e.dst_port), (tuples[1].dst, tuples[1].dst_id));
        }
        made += out.expects.len();
    }
    made
}

/// talk or ntalk messages in both directions.
pub fn talk(data: &[u8]) {
    run_talk(data);
}

fn run_talk(data: &[u8]) -> usize {
    let mut made = 0;
    let mut input = Input::new(data);
    let h = if input.old_talk {
        talk::Talk::otalk(&input.config())
    } else {
        talk::Talk::ntalk(&input.config())
    };
    let port = h.ports()[0];
    let tuples = input.tuples(17, port);
    let mut states = [h.new_state(), h.new_state()];
    while let Some(r) = input.next() {
        let dir = if r.control & 1 == 0 {
            Dir::Original
        } else {
            Dir::Reply
        };
        let out = both(
            &h,
            &mut states,
            &tuples,
            input.nat,
            dir,
            None,
            r.bytes,
            r.cut,
        );
        check_common(&out, &tuples, dir, r.bytes.len(), input.loose);
        for e in &out.expects {
            if let Some(s) = e.site {
                assert_eq!(s.len, 6);
                let text = h.nat_format(s.kind, e.dst, e.dst_port);
                assert_eq!(
                    &r.bytes[s.offset..s.offset + s.len],
                    &text[..],
                    "site bytes"
                );
            } else {
                // The callee's lookup: to the caller's daemon port, helped in turn.
                assert_eq!((e.proto, e.child_helper), (17, Some(h.name())));
                assert_eq!(e.dst_port, port);
            }
        }
        made += out.expects.len();
    }
    made
}

/// The PER reader: byte 0 picks a type of [`H323_TYPES`], byte 1 cuts the chain, the rest is
/// skipped as a value of that type, from one buffer and from a chain of three segments:
/// both must end alike (the same error, or the same position).
pub fn h323_per(data: &[u8]) {
    use crate::h323::per::PerReader;
    let (Some(&sel), Some(&cut)) = (data.first(), data.get(1)) else {
        return;
    };
    let bytes = &data[2..];
    let ty = H323_TYPES[usize::from(sel) % H323_TYPES.len()];
    let run = |parts: &[&[u8]]| {
        let mut r = PerReader::new(parts);
        let res = r.skip(ty);
        assert!(r.remaining() <= bytes.len() * 8);
        (res, r.remaining())
    };
    let flat = run(&[bytes]);
    assert_eq!(
        run(&split(bytes, cut)),
        flat,
        "a chain split changed the reading"
    );
}

/// The types [`h323_per`] reads, by the selector byte.
pub const H323_TYPES: &[&crate::h323::per::Ty] = {
    use crate::h323::types::*;
    &[
        &TRANSPORT_ADDRESS,
        &ALIAS_ADDRESS,
        &ALIASES,
        &ENDPOINT_TYPE,
        &NON_STANDARD_PARAMETER,
        &QSERIES_OPTIONS,
        &H245_SECURITY,
        &CLEAR_TOKENS,
        &CRYPTO_H323_TOKENS,
        &DATA_TYPE,
        &H222_LOGICAL_CHANNEL_PARAMETERS,
        &H223_LOGICAL_CHANNEL_PARAMETERS,
        &V76_LOGICAL_CHANNEL_PARAMETERS,
        &TRANSPORT_ADDRESS_H245,
        &Q2931_ADDRESS,
        &NON_STANDARDS_H245,
    ]
};

/// Walks `bytes` with `walk`, flat and as a chain: the same addresses (or error), each at
/// bytes that hold it.
fn h323_walk_both(
    bytes: &[u8],
    cut: u8,
    walk: fn(&[&[u8]], &mut crate::h323::Walk) -> Result<(), crate::h323::per::PerError>,
) {
    let run = |parts: &[&[u8]]| {
        let mut w = crate::h323::Walk::default();
        let res = walk(parts, &mut w);
        (res, w.found, w.inner_errors)
    };
    let flat = run(&[bytes]);
    assert_eq!(
        run(&split(bytes, cut)),
        flat,
        "a chain split changed the walk"
    );
    for f in &flat.1 {
        let at = f.addr.at;
        assert_eq!(
            bytes.get(at..at + f.addr.len()),
            Some(&crate::h323::nat::nat_format(0, f.addr.ip, f.addr.port)[..]),
            "{f:?}"
        );
    }
}

/// What the H.323 helpers promise besides [`check_common`]: a site (for an expectation or
/// a rewrite) covers a whole address and port of the connection's family, rewrites come
/// only under NAT, and only media are RTP/RTCP pairs.
fn check_h323(h: &dyn Helper, out: &HelperOutput, tuples: &[Tuple; 2], nat: bool, len: usize) {
    let want = if tuples[0].src.is_ipv4() { 6 } else { 18 };
    for e in &out.expects {
        if let Some(s) = e.site {
            assert_eq!(s.len, want, "{e:?}");
            assert_eq!(h.nat_format(s.kind, e.dst, e.dst_port).len(), s.len);
        }
        assert!(!e.rtp_pair || e.proto == 17, "{e:?}");
    }
    assert!(nat || out.rewrites.is_empty(), "{:?}", out.rewrites);
    for r in &out.rewrites {
        assert!(r.site.offset + r.site.len <= len, "{r:?}");
        assert_eq!(r.site.len, want);
        assert_eq!(r.addr.is_ipv4(), tuples[0].src.is_ipv4());
    }
}

/// The `RAS` helper: settings byte, then records (bit 0: direction) of datagrams; each is
/// also walked alone, flat and as a chain.
pub fn h323_ras(data: &[u8]) {
    run_h323_ras(data);
}

fn run_h323_ras(data: &[u8]) -> usize {
    use crate::h323::{per::PerReader, ras};
    static HELPERS: OnceLock<[crate::h323::Ras; 2]> = OnceLock::new();
    let modes = HELPERS.get_or_init(|| {
        [false, true].map(|loose| crate::h323::Ras::new(&HelperConfig { ports: None, loose }))
    });
    let mut input = Input::new(data);
    let h = &modes[usize::from(input.loose)];
    let tuples = input.tuples(17, 1719);
    let mut states = [h.new_state(), h.new_state()];
    let mut made = 0;
    while let Some(r) = input.next() {
        h323_walk_both(r.bytes, r.cut, |p, w| {
            ras::walk(&mut PerReader::new(p), w).map(drop)
        });
        let dir = if r.control & 1 == 0 {
            Dir::Original
        } else {
            Dir::Reply
        };
        let out = both(
            h,
            &mut states,
            &tuples,
            input.nat,
            dir,
            None,
            r.bytes,
            r.cut,
        );
        check_common(&out, &tuples, dir, r.bytes.len(), input.loose);
        check_h323(h, &out, &tuples, input.nat, r.bytes.len());
        made += out.expects.len() + out.rewrites.len();
    }
    made
}

/// A TPKT helper's connection: records over the stream as for FTP (direction, sequence
/// number in order, resent, after a hole, back, anywhere).
fn h323_stream(h: &dyn Helper, input: &mut Input<'_>, port: u16) -> usize {
    let tuples = input.tuples(6, port);
    let mut made = 0;
    let mut states = [h.new_state(), h.new_state()];
    let base = [1000u32, 5000u32];
    let mut next = base;
    let mut last = base;
    while let Some(r) = input.next() {
        let dir = if r.control & 1 == 0 {
            Dir::Original
        } else {
            Dir::Reply
        };
        let d = dir.index();
        let k = u32::from(r.control >> 4);
        let seq = match (r.control >> 1) & 7 {
            0..=3 => next[d],
            4 => last[d],
            5 => next[d].wrapping_add(k + 1),
            6 => next[d].wrapping_sub(k),
            _ => base[d].wrapping_add(u32::from(r.cut) * 256),
        };
        let out = both(
            h,
            &mut states,
            &tuples,
            input.nat,
            dir,
            Some(seq),
            r.bytes,
            r.cut,
        );
        check_common(&out, &tuples, dir, r.bytes.len(), input.loose);
        check_h323(h, &out, &tuples, input.nat, r.bytes.len());
        made += out.expects.len() + out.rewrites.len();
        let end = seq.wrapping_add(r.bytes.len() as u32);
        if (end.wrapping_sub(next[d]) as i32) > 0 {
            next[d] = end;
        }
        last[d] = seq;
    }
    made
}

/// The `Q.931` helper over a TPKT stream (records as [`ftp`]); each record is also walked
/// alone as one Q.931 message.
pub fn h323_q931(data: &[u8]) {
    run_h323_q931(data);
}

fn run_h323_q931(data: &[u8]) -> usize {
    static HELPERS: OnceLock<[crate::h323::Q931; 2]> = OnceLock::new();
    let modes = HELPERS.get_or_init(|| {
        [false, true].map(|loose| crate::h323::Q931::new(&HelperConfig { ports: None, loose }))
    });
    let mut input = Input::new(data);
    let mut alone = Input::new(data);
    while let Some(r) = alone.next() {
        h323_walk_both(r.bytes, r.cut, |p, w| {
            let len = p.iter().map(|s| s.len()).sum();
            crate::h323::q931::walk_message(p, 0, len, w).map(drop)
        });
    }
    let h = &modes[usize::from(input.loose)];
    h323_stream(h, &mut input, 1720)
}

/// The `H.245` helper over a TPKT stream (records as [`ftp`]); each record is also walked
/// alone as a MultimediaSystemControlMessage and as an OpenLogicalChannel (a fastStart
/// element).
pub fn h323_h245(data: &[u8]) {
    run_h323_h245(data);
}

fn run_h323_h245(data: &[u8]) -> usize {
    use crate::h323::{h245, per::PerReader};
    static HELPERS: OnceLock<[crate::h323::H245; 2]> = OnceLock::new();
    let modes = HELPERS.get_or_init(|| {
        [false, true].map(|loose| crate::h323::H245::new(&HelperConfig { ports: None, loose }))
    });
    let mut input = Input::new(data);
    let mut alone = Input::new(data);
    while let Some(r) = alone.next() {
        h323_walk_both(r.bytes, r.cut, |p, w| {
            h245::walk(&mut PerReader::new(p), w).map(drop)
        });
        h323_walk_both(r.bytes, r.cut, |p, w| h245::olc(&mut PerReader::new(p), w));
    }
    let h = &modes[usize::from(input.loose)];
    h323_stream(h, &mut input, 1300)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harnesses_accept_empty_and_short_inputs() {
        for data in [&[][..], &[0xff], &[0, 0], &[1, 0, 0, 5, b'P']] {
            assert_eq!(run_ftp(data) + run_tftp(data) + run_talk(data), 0);
        }
    }

    fn records(settings: u8, recs: &[(u8, &[u8])]) -> Vec<u8> {
        let mut data = vec![settings];
        for (control, bytes) in recs {
            data.extend(record(*control, 0x35, bytes));
        }
        data
    }

    /// Every committed seed (`fuzz/seeds/helper_*`, written by `cargo run -p tests --example
    /// fuzz_seeds`) gets the fuzzer to an expectation.
    #[test]
    fn seeds_make_expectations() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
        let mut seen = 0;
        for (target, run) in [
            ("helper_ftp", run_ftp as fn(&[u8]) -> usize),
            ("helper_tftp", run_tftp),
            ("helper_talk", run_talk),
            ("h323_ras", run_h323_ras),
            ("h323_q931", run_h323_q931),
            ("h323_h245", run_h323_h245),
        ] {
            for entry in std::fs::read_dir(root.join(target)).unwrap() {
                let path = entry.unwrap().path();
                let made = run(&std::fs::read(&path).unwrap());
                assert!(made > 0, "{} makes no expectation", path.display());
                seen += 1;
            }
        }
        assert!(seen >= 10, "{seen} seeds");
    }

    #[test]
    fn harnesses_reach_expectations() {
        // In order: a first line (sets the line position), then PORT; NATed, so with a site.
        let data = records(1, &[(0, b"USER x\r\n"), (0, b"PORT 192,0,2,10,4,1\r\n")]);
        assert_eq!(run_ftp(&data), 1);
        // The same PORT after a hole: nothing.
        let data = records(1, &[(0, b"USER x\r\n"), (0x1a, b"PORT 192,0,2,10,4,1\r\n")]);
        assert_eq!(run_ftp(&data), 0);
        assert_eq!(run_tftp(&records(0, &[(0, b"\x00\x01f\x00octet\x00")])), 1);
        let mut announce = [0u8; 84];
        announce[..2].copy_from_slice(&[1, 3]);
        announce[24..32].copy_from_slice(&[0, 2, 0x9c, 0x40, 192, 0, 2, 10]);
        // ctl_addr and the callee's lookup.
        assert_eq!(run_talk(&records(0, &[(0, &announce)])), 2);
        let data = records(0, &[(0, b"abc")]);
        let first = Input::new(&data).next().unwrap();
        assert_eq!(
            (first.control, first.cut, first.bytes),
            (0, 0x35, &b"abc"[..])
        );
        assert_eq!(split(b"abcdefghijklmno", 0x35).map(<[u8]>::len), [5, 2, 8]);
    }
}
