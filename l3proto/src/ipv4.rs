//! IPv4 (RFC 791).

use conntrack::proto::{Frag, L3Error, L3Packet, L3Proto};
use conntrack::tuple::Family;
use std::net::IpAddr;
use wire::{checksum, Ipv4Packet, WireError};

/// The IPv4 module.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ipv4;

pub(crate) fn wire_err(e: WireError) -> L3Error {
    match e {
        WireError::Truncated => L3Error::Truncated,
        WireError::BadVersion => L3Error::BadVersion,
        WireError::BadHeaderLen => L3Error::BadHeaderLen,
        WireError::BadLength => L3Error::BadLength,
        WireError::BadChecksum => L3Error::BadChecksum,
        WireError::Malformed(what) => L3Error::Malformed(what),
        _ => L3Error::Malformed("malformed header"),
    }
}

impl L3Proto for Ipv4 {
    fn family(&self) -> Family {
        Family::V4
    }

    #[inline]
    fn parse<'a>(&self, packet: &'a [u8]) -> Result<L3Packet<'a>, L3Error> {
        // Nearly every packet: no options, whole, checksum right. Read from one 20-byte
        // array (one bounds check) instead of through the checked view; anything else
        // takes the view, which names the error.
        if let Some(h) = packet.first_chunk::<20>() {
            let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
            if h[0] == 0x45 && (20..=packet.len()).contains(&len) && checksum::verifies20(h) {
                let fo = u16::from_be_bytes([h[6], h[7]]);
                let frag = if fo & 0x1fff != 0 {
                    Frag::Later
                } else if fo & 0x2000 != 0 {
                    Frag::First
                } else {
                    Frag::None
                };
                return Ok(L3Packet {
                    family: Family::V4,
                    src: IpAddr::from([h[12], h[13], h[14], h[15]]),
                    dst: IpAddr::from([h[16], h[17], h[18], h[19]]),
                    proto: h[9],
                    l4_offset: 20,
                    l4: &packet[20..len],
                    frag,
                    ttl: h[8],
                    len,
                });
            }
        }
        self.parse_checked(packet)
    }
}

impl Ipv4 {
    #[inline(never)]
    fn parse_checked<'a>(&self, packet: &'a [u8]) -> Result<L3Packet<'a>, L3Error> {
        let ip = Ipv4Packet::new_checked(packet).map_err(wire_err)?;
        if !ip.verify_checksum() {
            return Err(L3Error::BadChecksum);
        }
        let hl = ip.header_len();
        let len = usize::from(ip.total_len());
        let frag = if ip.frag_offset() != 0 {
            Frag::Later
        } else if ip.more_frags() {
            Frag::First
        } else {
            Frag::None
        };
        Ok(L3Packet {
            family: Family::V4,
            src: IpAddr::V4(ip.src_addr()),
            dst: IpAddr::V4(ip.dst_addr()),
            proto: ip.protocol(),
            l4_offset: hl,
            l4: &packet[hl..len],
            frag,
            ttl: ip.ttl(),
            len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(proto: u8, frag: u16, total: u16) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 0, 0x12, 0x34, 0, 0, 64, proto, 0, 0, 192, 0, 2, 1, 198, 51, 100, 1,
        ];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[6..8].copy_from_slice(&frag.to_be_bytes());
        p.resize(usize::from(total), 0xaa);
        let ck = wire::checksum::data(&p[..20]);
        p[10..12].copy_from_slice(&ck.to_be_bytes());
        p
    }

    #[test]
    fn parses_and_bounds_payload_by_total_length() {
        let mut p = header(6, 0, 40);
        p.extend_from_slice(&[0; 10]); // link-layer padding beyond total length
        let l3 = Ipv4.parse(&p).unwrap();
        assert_eq!(l3.l4.len(), 20);
        assert_eq!(l3.len, 40);
        assert_eq!(l3.ttl, 64);
        assert_eq!(l3.dst, "198.51.100.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn fragments_are_classified() {
        assert_eq!(
            Ipv4.parse(&header(17, 0x2000, 40)).unwrap().frag,
            Frag::First
        );
        assert_eq!(
            Ipv4.parse(&header(17, 0x0003, 40)).unwrap().frag,
            Frag::Later
        );
        assert_eq!(
            Ipv4.parse(&header(17, 0x4000, 40)).unwrap().frag,
            Frag::None
        );
    }

    #[test]
    fn bad_checksum_and_truncation_are_errors() {
        let mut p = header(6, 0, 40);
        p[10] ^= 1;
        assert_eq!(Ipv4.parse(&p).unwrap_err(), L3Error::BadChecksum);
        let p = header(6, 0, 40);
        for n in 0..p.len() {
            assert!(Ipv4.parse(&p[..n]).is_err(), "prefix {n}");
        }
    }
}
