//! ICMP and ICMPv6 errors: find the connection of the quoted packet.
//!
//! An error (Destination Unreachable, Time Exceeded, Packet Too Big, ...)
//! quotes the start of the packet that caused it. Conntrack treats the error
//! as RELATED to that packet's connection, but only after checking that the
//! quote is a plausible header: a forged error must not reach a connection.

use conntrack::proto::{Frag, Invalid, L3Packet, L4Packet, L4Proto};
use conntrack::tuple::{Family, Tuple};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use wire::{checksum, walk_ext_headers};

/// Whether `l3` carries an ICMP (types 3, 4, 5, 11, 12) or ICMPv6 (types
/// 1–4) error message.
#[inline]
pub fn is_icmp_error(l3: &L3Packet<'_>) -> bool {
    is_icmp_error_parts(l3.family, l3.proto, l3.l4)
}

/// [`is_icmp_error`] from the parts of an already parsed packet: the family, the L4
/// protocol and the L4 bytes.
#[inline]
pub fn is_icmp_error_parts(family: Family, proto: u8, l4: &[u8]) -> bool {
    let Some(&ty) = l4.first() else {
        return false;
    };
    match (family, proto) {
        (Family::V4, 1) => matches!(ty, 3 | 4 | 5 | 11 | 12),
        (Family::V6, 58) => (1..=4).contains(&ty),
        _ => false,
    }
}

/// The tuple of the packet quoted by the ICMP error in `l3`, as it was sent
/// (look it up in the table to find the connection and its direction).
///
/// Checks, each failing with a named [`Invalid`]: the error is not itself a
/// fragment; its checksum is right (when `verify_checksum`); the quote holds
/// an IP header of the same family plus 8 bytes of L4 header; the quoted
/// packet is not a later fragment; it is not itself an ICMP error (RFC 1122
/// §3.2.2: no errors about errors); and it was sent by the host the error is
/// addressed to.
pub fn icmp_error_tuple<L: L4Proto>(
    l3: &L3Packet<'_>,
    l4: &L,
    verify_checksum: bool,
) -> Result<Tuple, Invalid> {
    if l3.frag != Frag::None {
        return Err(Invalid::IcmpErrorInFragment);
    }
    if l3.l4.len() < 8 {
        return Err(Invalid::IcmpTruncatedHeader);
    }
    if verify_checksum && !checksum_ok(l3) {
        return Err(Invalid::IcmpBadChecksum);
    }
    let quote = &l3.l4[8..];
    let (src, dst, proto, l4_data) = match l3.family {
        Family::V4 => quoted_v4(quote)?,
        Family::V6 => quoted_v6(quote)?,
    };
    if src != l3.dst {
        return Err(Invalid::IcmpQuotedSourceMismatch);
    }
    let inner_is_error = match proto {
        1 => l4_data
            .first()
            .is_some_and(|t| matches!(t, 3 | 4 | 5 | 11 | 12)),
        58 => l4_data.first().is_some_and(|t| *t < 128),
        _ => false,
    };
    if inner_is_error {
        return Err(Invalid::IcmpErrorAboutError);
    }
    let inner = L4Packet {
        family: l3.family,
        src,
        dst,
        proto,
        data: l4_data,
        verify_checksum: false,
    };
    let (src_id, dst_id) = l4.quoted_ids(&inner)?;
    Ok(Tuple {
        src,
        dst,
        src_id,
        dst_id,
        proto,
        zone: 0,
    })
}

fn checksum_ok(l3: &L3Packet<'_>) -> bool {
    match (l3.src, l3.dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => checksum::data(l3.l4) == 0,
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let len = u32::try_from(l3.l4.len()).unwrap_or(u32::MAX);
            let pseudo = checksum::pseudo_header_v6(&s, &d, 58, len);
            checksum::fold(checksum::combine(pseudo, checksum::sum(l3.l4))) == 0
        }
        _ => false,
    }
}

type Quoted<'a> = (IpAddr, IpAddr, u8, &'a [u8]);

/// The quote is usually truncated, so its total length cannot be trusted to
/// bound anything: parse the header fields directly.
fn quoted_v4(q: &[u8]) -> Result<Quoted<'_>, Invalid> {
    let first = *q.first().ok_or(Invalid::IcmpEmptyQuote)?;
    if first >> 4 != 4 {
        return Err(Invalid::IcmpQuotedNotIpv4);
    }
    let hl = usize::from(first & 0x0f) * 4;
    if hl < 20 || q.len() < hl + 8 {
        return Err(Invalid::IcmpQuotedTruncated);
    }
    if u16::from_be_bytes([q[6], q[7]]) & 0x1fff != 0 {
        return Err(Invalid::IcmpQuotedLaterFragment);
    }
    let src = Ipv4Addr::new(q[12], q[13], q[14], q[15]);
    let dst = Ipv4Addr::new(q[16], q[17], q[18], q[19]);
    Ok((IpAddr::V4(src), IpAddr::V4(dst), q[9], &q[hl..]))
}

fn quoted_v6(q: &[u8]) -> Result<Quoted<'_>, Invalid> {
    if q.len() < 40 || q[0] >> 4 != 6 {
        return Err(Invalid::IcmpQuotedNotIpv6);
    }
    let mut a = [0u8; 16];
    a.copy_from_slice(&q[8..24]);
    let src = Ipv6Addr::from(a);
    a.copy_from_slice(&q[24..40]);
    let dst = Ipv6Addr::from(a);
    let walk = walk_ext_headers(q[6], &q[40..]).map_err(|_| Invalid::IcmpQuotedHeadersMalformed)?;
    if walk.frag.is_some_and(|f| f.offset != 0) {
        return Err(Invalid::IcmpQuotedLaterFragment);
    }
    let l4 = q.get(40 + walk.l4_offset..).unwrap_or(&[]);
    if l4.len() < 8 {
        return Err(Invalid::IcmpQuotedTruncated);
    }
    Ok((IpAddr::V6(src), IpAddr::V6(dst), walk.upper_proto, l4))
}

#[cfg(test)]
mod tests {
    use super::*;
    use conntrack::proto::{ConnCtx, L3Proto, ProtoState, Verdict};
    use wire::time::Instant;
    use wire::{icmp, ipv4};

    /// A port-only L4 module: enough to test the L3 side in isolation.
    struct Ports;
    #[derive(Debug)]
    struct NoState;
    impl ProtoState for NoState {
        fn state_name(&self) -> &'static str {
            ""
        }
    }
    impl L4Proto for Ports {
        type State = NoState;
        fn name(&self, _: u8) -> &'static str {
            "ports"
        }
        fn ids(&self, p: &L4Packet<'_>) -> Result<(u16, u16), Invalid> {
            self.quoted_ids(p)
        }
        fn new_conn(&self, _: &L4Packet<'_>, _: Instant) -> Result<NoState, Invalid> {
            Ok(NoState)
        }
        fn packet(&self, _: &mut NoState, _: &mut ConnCtx<'_>, _: &L4Packet<'_>) -> Verdict {
            Verdict::Accept {
                timeout: std::time::Duration::from_secs(1),
            }
        }
    }

    fn v4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 20 + l4.len()];
        ipv4::emit_header(&mut p, src.into(), dst.into(), proto, 64, l4.len(), 1).unwrap();
        p[20..].copy_from_slice(l4);
        p
    }

    fn error_about(quoted: &[u8], to: [u8; 4], ty: u8) -> Vec<u8> {
        let mut body = vec![0u8; 8 + quoted.len()];
        let n = icmp::emit_error(&mut body, ty, 3, 0, quoted).unwrap();
        v4([203, 0, 113, 1], to, 1, &body[..n])
    }

    const UDP: [u8; 12] = [0x9c, 0x40, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4];

    #[test]
    fn maps_port_unreachable_to_the_quoted_flow() {
        let orig = v4([192, 0, 2, 2], [198, 51, 100, 1], 17, &UDP);
        let err = error_about(&orig[..28], [192, 0, 2, 2], 3);
        let l3 = crate::Ipv4.parse(&err).unwrap();
        assert!(is_icmp_error(&l3));
        let t = icmp_error_tuple(&l3, &Ports, true).unwrap();
        assert_eq!(t.src, "192.0.2.2".parse::<IpAddr>().unwrap());
        assert_eq!((t.src_id, t.dst_id, t.proto), (40000, 53, 17));
    }

    #[test]
    fn rejects_forged_or_malformed_quotes() {
        let orig = v4([192, 0, 2, 2], [198, 51, 100, 1], 17, &UDP);
        // Addressed to someone else than the quoted sender.
        let err = error_about(&orig[..28], [192, 0, 2, 9], 3);
        let l3 = crate::Ipv4.parse(&err).unwrap();
        assert!(icmp_error_tuple(&l3, &Ports, true).is_err());
        // Quote shorter than IP header + 8 bytes.
        let err = error_about(&orig[..24], [192, 0, 2, 2], 3);
        let l3 = crate::Ipv4.parse(&err).unwrap();
        assert_eq!(
            icmp_error_tuple(&l3, &Ports, true),
            Err(Invalid::IcmpQuotedTruncated)
        );
        // An error about an error.
        let inner = error_about(&orig[..28], [192, 0, 2, 2], 3);
        let err = error_about(&inner[..36], [203, 0, 113, 1], 11);
        let l3 = crate::Ipv4.parse(&err).unwrap();
        assert_eq!(
            icmp_error_tuple(&l3, &Ports, true),
            Err(Invalid::IcmpErrorAboutError)
        );
        // Bad ICMP checksum.
        let mut err = error_about(&orig[..28], [192, 0, 2, 2], 3);
        err[22] ^= 0xff;
        let l3 = crate::Ipv4.parse(&err).unwrap();
        assert_eq!(
            icmp_error_tuple(&l3, &Ports, true),
            Err(Invalid::IcmpBadChecksum)
        );
        // Every truncation of the quote is refused without panicking.
        let full = error_about(&orig[..28], [192, 0, 2, 2], 3);
        for n in 28..full.len() {
            let mut p = full[..n].to_vec();
            p[2..4].copy_from_slice(&(n as u16).to_be_bytes());
            p[10..12].fill(0);
            let ck = wire::checksum::data(&p[..20]);
            p[10..12].copy_from_slice(&ck.to_be_bytes());
            let l3 = crate::Ipv4.parse(&p).unwrap();
            assert!(icmp_error_tuple(&l3, &Ports, false).is_err(), "len {n}");
        }
    }
}
