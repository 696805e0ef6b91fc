//! Payload mangling for helpers (after `nf_nat_helper`) and TCP sequence adjustment (after
//! `nf_conntrack_seqadj`).
//!
//! A helper that rewrites "PORT 10,0,0,2,…" to the NAT address may change the payload's
//! length. [`mangle_payload`] replaces the bytes, fixes the IP and UDP lengths and the
//! checksums, and returns the length change; for TCP the change must then shift every later
//! sequence number of that direction and every acknowledgement of the other
//! ([`SeqAdj`], [`seqadj_record`], [`seqadj_apply`]), or both ends lose track of the stream.
//!
//! ```
//! use conntrack::conn::SeqAdj;
//! use conntrack::tuple::Dir;
//! use nat::mangle::{seqadj_record, SeqAdjusted};
//!
//! let mut adj = [SeqAdj::default(); 2];
//! // The segment starting at sequence 1000 of the client grew by 3 bytes.
//! seqadj_record(&mut adj, Dir::Original, 1000, 3);
//! let a = SeqAdjusted::of(&adj, Dir::Original);
//! assert_eq!(a.seq(1000), 1000); // a retransmission of it starts where it did
//! assert_eq!(a.seq(1100), 1103); // later data moved on by 3
//! // The server acknowledges bytes the client's side numbered 1103: the client knows 1100.
//! assert_eq!(SeqAdjusted::of(&adj, Dir::Reply).ack(1103), 1100);
//! ```

use conntrack::conn::SeqAdj;
use conntrack::tuple::Dir;
use std::net::{Ipv4Addr, Ipv6Addr};
use wire::buf::PacketBuf;
use wire::checksum;

/// One payload change: `len` bytes at `offset` (from the start of the L4 payload) become
/// `with`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrite {
    /// Offset from the first payload byte.
    pub offset: usize,
    /// Bytes replaced.
    pub len: usize,
    /// Their replacement.
    pub with: Vec<u8>,
}

conntrack::reasons! {
    /// Why a payload could not be mangled (the packet is dropped and counted with it).
    pub enum MangleError {
        /// Not a whole TCP or UDP packet over IPv4/IPv6, or its headers are cut short.
        NotMangleable => "helper: packet cannot be mangled",
        /// A rewrite lies outside the payload, or two overlap.
        BadRange => "helper: rewrite outside the payload",
        /// The packet would exceed 65,535 bytes.
        TooLong => "helper: rewrite makes the packet too long",
    }
}

fn rd16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn rd32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn wr16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Offset of the first payload byte of a TCP or UDP packet whose L4 header starts at `l4_off`.
pub fn payload_offset(pkt: &[u8], l4_off: usize, proto: u8) -> Option<usize> {
    let at = match proto {
        6 => l4_off + usize::from(pkt.get(l4_off + 12)? >> 4) * 4,
        17 => l4_off + 8,
        _ => return None,
    };
    (at <= pkt.len()).then_some(at)
}

/// Applies `rewrites` (any order, not overlapping) to the payload of the TCP or UDP packet
/// `pkt` (a whole IP packet, L4 header at `l4_off`), and fixes the IP length, the UDP length,
/// the IPv4 header checksum and the L4 checksum (recomputed: the payload changed in place
/// and length). With `partial` the L4 checksum field holds only the pseudo-header sum, as
/// checksum offload expects. Returns by how many bytes the packet grew (negative: shrank).
pub fn mangle_payload(
    pkt: &mut PacketBuf,
    l4_off: usize,
    proto: u8,
    rewrites: &mut [Rewrite],
    partial: bool,
) -> Result<isize, MangleError> {
    let bytes = pkt.as_slice();
    let v4 = match bytes.first().map(|b| b >> 4) {
        Some(4) => true,
        Some(6) => false,
        _ => return Err(MangleError::NotMangleable),
    };
    let min_l4 = if proto == 6 { 20 } else { 8 };
    if bytes.len() < l4_off + min_l4 || (v4 && l4_off < 20) || (!v4 && l4_off < 40) {
        return Err(MangleError::NotMangleable);
    }
    let pay = payload_offset(bytes, l4_off, proto).ok_or(MangleError::NotMangleable)?;
    let pay_len = bytes.len() - pay;
    rewrites.sort_by_key(|r| r.offset);
    let mut end = 0;
    for r in rewrites.iter() {
        if r.offset < end || r.offset.checked_add(r.len).is_none_or(|e| e > pay_len) {
            return Err(MangleError::BadRange);
        }
        end = r.offset + r.len;
    }
    let grow: isize = rewrites
        .iter()
        .map(|r| r.with.len() as isize - r.len as isize)
        .sum();
    let new_len = bytes.len() as isize + grow;
    if new_len > 65_535 {
        return Err(MangleError::TooLong);
    }
    // From the last to the first, so earlier offsets stay valid.
    for r in rewrites.iter().rev() {
        let at = pay + r.offset;
        if !pkt.splice(at..at + r.len, &r.with) {
            return Err(MangleError::BadRange);
        }
    }
    let len = pkt.len();
    let b = pkt.as_mut_slice();
    let l4_len = len - l4_off;
    if v4 {
        wr16(b, 2, len as u16);
        wr16(b, 10, 0);
        let ihl = usize::from(b[0] & 0x0f) * 4;
        let ck = checksum::data(&b[..ihl.min(l4_off)]);
        wr16(b, 10, ck);
    } else {
        // Extension headers lie between the fixed header and L4: all inside Payload Length.
        wr16(b, 4, (len - 40) as u16);
    }
    if proto == 17 {
        wr16(b, l4_off + 4, l4_len as u16);
    }
    let check_at = l4_off + if proto == 6 { 16 } else { 6 };
    let pseudo = if v4 {
        let src = Ipv4Addr::from(rd32(b, 12).unwrap_or(0));
        let dst = Ipv4Addr::from(rd32(b, 16).unwrap_or(0));
        checksum::pseudo_header_v4(src, dst, proto, l4_len as u32)
    } else {
        let mut s = [0u8; 16];
        let mut d = [0u8; 16];
        s.copy_from_slice(&b[8..24]);
        d.copy_from_slice(&b[24..40]);
        checksum::pseudo_header_v6(&Ipv6Addr::from(s), &Ipv6Addr::from(d), proto, l4_len as u32)
    };
    let udp_v4_none = proto == 17 && v4 && rd16(b, check_at) == Some(0);
    if partial {
        wr16(b, check_at, !checksum::fold(pseudo));
    } else if !udp_v4_none {
        wr16(b, check_at, 0);
        let mut ck = checksum::fold(checksum::combine(pseudo, checksum::sum(&b[l4_off..])));
        if proto == 17 && ck == 0 {
            ck = 0xffff;
        }
        wr16(b, check_at, ck);
    }
    Ok(grow)
}

/// Before and after(`a`, `b`) in sequence space (RFC 9293 §3.4: modulo 2^32).
fn after(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) < 0
}

/// Records that the segment of direction `dir` starting at sequence `seq` changed length by
/// `off` bytes. A second change later in the stream moves the correction point on; a
/// retransmission of the changed segment (same `seq`) changes nothing (nf_ct_seqadj_set).
pub fn seqadj_record(adj: &mut [SeqAdj; 2], dir: Dir, seq: u32, off: i32) {
    if off == 0 {
        return;
    }
    let w = &mut adj[dir.index()];
    if w.offset_before == w.offset_after || after(seq, w.correction_pos) {
        w.correction_pos = seq;
        w.offset_before = w.offset_after;
        w.offset_after = w.offset_after.wrapping_add(off);
    }
}

/// The sequence mapping a packet of one direction sees: its own direction's adjustment for
/// its sequence number, the other's for its acknowledgement and SACK blocks.
#[derive(Clone, Copy, Debug)]
pub struct SeqAdjusted {
    this: SeqAdj,
    other: SeqAdj,
}

impl SeqAdjusted {
    /// For a packet travelling in `dir`.
    pub fn of(adj: &[SeqAdj; 2], dir: Dir) -> SeqAdjusted {
        SeqAdjusted {
            this: adj[dir.index()],
            other: adj[dir.flip().index()],
        }
    }

    /// Whether nothing changes.
    pub fn is_identity(&self) -> bool {
        self.this == SeqAdj::default() && self.other == SeqAdj::default()
    }

    /// The sequence number as the receiver must see it.
    pub fn seq(&self, seq: u32) -> u32 {
        let w = &self.this;
        let off = if after(seq, w.correction_pos) {
            w.offset_after
        } else {
            w.offset_before
        };
        seq.wrapping_add(off as u32)
    }

    /// An acknowledgement (or SACK edge) of the other direction's data, mapped back to the
    /// numbering that direction's sender used.
    pub fn ack(&self, ack: u32) -> u32 {
        let w = &self.other;
        let off = if after(ack.wrapping_sub(w.offset_before as u32), w.correction_pos) {
            w.offset_after
        } else {
            w.offset_before
        };
        ack.wrapping_sub(off as u32)
    }
}

/// Shifts the sequence and acknowledgement numbers and the SACK blocks of the TCP segment
/// whose header starts at `l4_off`, updating its checksum incrementally (left alone when
/// `partial`: the completed checksum covers them). False if the header is cut short.
pub fn seqadj_apply(pkt: &mut [u8], l4_off: usize, a: &SeqAdjusted, partial: bool) -> bool {
    let (Some(seq), Some(ack)) = (rd32(pkt, l4_off + 4), rd32(pkt, l4_off + 8)) else {
        return false;
    };
    let Some(doff) = pkt.get(l4_off + 12).map(|b| usize::from(b >> 4) * 4) else {
        return false;
    };
    if doff < 20 || pkt.len() < l4_off + doff {
        return false;
    }
    let check_at = l4_off + 16;
    let mut ck = rd16(pkt, check_at).unwrap_or(0);
    let put = |pkt: &mut [u8], at: usize, old: u32, new: u32, ck: &mut u16| {
        if old != new {
            pkt[at..at + 4].copy_from_slice(&new.to_be_bytes());
            if !partial {
                *ck = checksum::update32(*ck, old, new);
            }
        }
    };
    put(pkt, l4_off + 4, seq, a.seq(seq), &mut ck);
    let acked = pkt[l4_off + 13] & 0x10 != 0;
    if acked {
        put(pkt, l4_off + 8, ack, a.ack(ack), &mut ck);
    }
    // SACK blocks (RFC 2018) acknowledge the other direction's data like the ACK field.
    let mut i = l4_off + 20;
    let end = l4_off + doff;
    while i < end {
        match pkt[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let Some(&len) = pkt.get(i + 1) else { break };
                let len = usize::from(len);
                if len < 2 || i + len > end {
                    break;
                }
                if kind == 5 && (len - 2) % 8 == 0 {
                    let mut b = i + 2;
                    while b + 8 <= i + len {
                        for edge in [b, b + 4] {
                            let old = rd32(pkt, edge).unwrap_or(0);
                            put(pkt, edge, old, a.ack(old), &mut ck);
                        }
                        b += 8;
                    }
                }
                i += len;
            }
        }
    }
    if !partial {
        wr16(pkt, check_at, ck);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 TCP packet with `payload`, SACK option when `sack` is given, valid checksums.
    fn tcp4(seq: u32, ack: u32, payload: &[u8], sack: Option<(u32, u32)>) -> Vec<u8> {
        let opt: Vec<u8> = match sack {
            Some((l, r)) => {
                let mut o = vec![1, 1, 5, 10];
                o.extend_from_slice(&l.to_be_bytes());
                o.extend_from_slice(&r.to_be_bytes());
                o
            }
            None => vec![],
        };
        let tcp_len = 20 + opt.len() + payload.len();
        let mut p = vec![0u8; 20 + tcp_len];
        p[0] = 0x45;
        let n = p.len() as u16;
        wr16(&mut p, 2, n);
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[192, 0, 2, 2]);
        p[16..20].copy_from_slice(&[198, 51, 100, 7]);
        let ck = checksum::data(&p[..20]);
        wr16(&mut p, 10, ck);
        wr16(&mut p, 20, 40000);
        wr16(&mut p, 22, 21);
        p[24..28].copy_from_slice(&seq.to_be_bytes());
        p[28..32].copy_from_slice(&ack.to_be_bytes());
        p[32] = (((20 + opt.len()) / 4) as u8) << 4;
        p[33] = 0x18;
        wr16(&mut p, 34, 65535);
        p[40..40 + opt.len()].copy_from_slice(&opt);
        p[40 + opt.len()..].copy_from_slice(payload);
        fix_tcp(&mut p);
        p
    }

    fn fix_tcp(p: &mut [u8]) {
        wr16(p, 36, 0);
        let ps = checksum::pseudo_header_v4(
            [192, 0, 2, 2].into(),
            [198, 51, 100, 7].into(),
            6,
            (p.len() - 20) as u32,
        );
        let ck = checksum::fold(checksum::combine(ps, checksum::sum(&p[20..])));
        wr16(p, 36, ck);
    }

    fn tcp_ok(p: &[u8]) -> bool {
        let ps = checksum::pseudo_header_v4(
            [192, 0, 2, 2].into(),
            [198, 51, 100, 7].into(),
            6,
            (p.len() - 20) as u32,
        );
        checksum::fold(checksum::combine(ps, checksum::sum(&p[20..]))) == 0
    }

    #[test]
    fn mangle_grows_fixes_lengths_and_checksums() {
        let p = tcp4(1000, 5, b"PORT 10,0,0,2,4,1\r\n", None);
        let mut buf = PacketBuf::from_slice(&p);
        let mut rw = vec![Rewrite {
            offset: 5,
            len: 12,
            with: b"203,0,113,1,4,1".to_vec(),
        }];
        let grow = mangle_payload(&mut buf, 20, 6, &mut rw, false).unwrap();
        assert_eq!(grow, 3);
        let b = buf.as_slice();
        assert_eq!(&b[40..], b"PORT 203,0,113,1,4,1\r\n");
        assert_eq!(rd16(b, 2), Some(b.len() as u16));
        assert_eq!(checksum::data(&b[..20]), 0);
        assert!(tcp_ok(b));
    }

    #[test]
    fn mangle_refuses_bad_ranges_and_leaves_the_packet() {
        let p = tcp4(1, 1, b"abc", None);
        let mut buf = PacketBuf::from_slice(&p);
        for rw in [(2, 2), (4, 0)] {
            let mut r = vec![Rewrite {
                offset: rw.0,
                len: rw.1,
                with: b"x".to_vec(),
            }];
            assert_eq!(
                mangle_payload(&mut buf, 20, 6, &mut r, false),
                Err(MangleError::BadRange)
            );
        }
        let mut two = vec![
            Rewrite {
                offset: 0,
                len: 2,
                with: vec![],
            },
            Rewrite {
                offset: 1,
                len: 1,
                with: vec![],
            },
        ];
        assert_eq!(
            mangle_payload(&mut buf, 20, 6, &mut two, false),
            Err(MangleError::BadRange)
        );
        assert_eq!(buf.as_slice(), &p[..]);
    }

    #[test]
    fn seq_ack_and_sack_follow_the_change() {
        let mut adj = [SeqAdj::default(); 2];
        seqadj_record(&mut adj, Dir::Original, 1000, 3);
        // A retransmission of the changed segment records nothing new.
        seqadj_record(&mut adj, Dir::Original, 1000, 3);
        assert_eq!(adj[0].offset_after, 3);
        // A later segment of the client: seq moves on.
        let mut p = tcp4(1019, 77, b"LIST\r\n", None);
        let a = SeqAdjusted::of(&adj, Dir::Original);
        assert!(seqadj_apply(&mut p, 20, &a, false));
        assert_eq!(rd32(&p, 24), Some(1022));
        assert!(tcp_ok(&p));
        // The server's ACK and SACK of bytes past the change map back by 3.
        let mut r = tcp4(77, 1025, b"", Some((1030, 1040)));
        let a = SeqAdjusted::of(&adj, Dir::Reply);
        assert!(seqadj_apply(&mut r, 20, &a, false));
        assert_eq!(rd32(&r, 28), Some(1022));
        assert_eq!((rd32(&r, 44), rd32(&r, 48)), (Some(1027), Some(1037)));
        assert!(tcp_ok(&r));
        // A second change later moves the correction point.
        seqadj_record(&mut adj, Dir::Original, 2000, -2);
        let a = SeqAdjusted::of(&adj, Dir::Original);
        assert_eq!(a.seq(1500), 1503);
        assert_eq!(a.seq(2000), 2003);
        assert_eq!(a.seq(2001), 2002);
    }

    #[test]
    fn seqadj_wraps_modulo_2_32() {
        let mut adj = [SeqAdj::default(); 2];
        seqadj_record(&mut adj, Dir::Reply, u32::MAX - 5, 10);
        let a = SeqAdjusted::of(&adj, Dir::Reply);
        assert_eq!(a.seq(3), 13);
        assert_eq!(SeqAdjusted::of(&adj, Dir::Original).ack(13), 3);
    }
}
