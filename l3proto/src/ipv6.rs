//! IPv6 (RFC 8200): fixed header plus the extension-header walk.

use crate::ipv4::wire_err;
use conntrack::proto::{Frag, L3Error, L3Packet, L3Proto};
use conntrack::tuple::Family;
use std::net::IpAddr;
use wire::{walk_ext_headers, Ipv6Packet};

/// The IPv6 module.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ipv6;

/// Length of the fixed IPv6 header.
pub(crate) const HEADER_LEN: usize = 40;

impl L3Proto for Ipv6 {
    fn family(&self) -> Family {
        Family::V6
    }

    fn parse<'a>(&self, packet: &'a [u8]) -> Result<L3Packet<'a>, L3Error> {
        let ip = Ipv6Packet::new_checked(packet).map_err(wire_err)?;
        let payload_len = usize::from(ip.payload_len());
        let payload = &packet[HEADER_LEN..HEADER_LEN + payload_len];
        let walk = walk_ext_headers(ip.next_header(), payload).map_err(wire_err)?;
        let frag = match walk.frag {
            Some(f) if f.offset != 0 => Frag::Later,
            Some(f) if f.more => Frag::First,
            // An atomic fragment (offset 0, M=0) is a whole datagram (RFC 6946).
            _ => Frag::None,
        };
        let l4_offset = HEADER_LEN + walk.l4_offset;
        Ok(L3Packet {
            family: Family::V6,
            src: IpAddr::V6(ip.src_addr()),
            dst: IpAddr::V6(ip.dst_addr()),
            proto: walk.upper_proto,
            l4_offset,
            l4: packet
                .get(l4_offset..HEADER_LEN + payload_len)
                .unwrap_or(&[]),
            frag,
            ttl: ip.hop_limit(),
            len: HEADER_LEN + payload_len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(next: u8, ext: &[u8], l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, next, 64];
        let plen = (ext.len() + l4.len()) as u16;
        p[4..6].copy_from_slice(&plen.to_be_bytes());
        p.extend_from_slice(
            &"2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        p.extend_from_slice(
            &"2001:db8::2"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        p.extend_from_slice(ext);
        p.extend_from_slice(l4);
        p
    }

    #[test]
    fn walks_hop_by_hop_and_destination_options() {
        // Hop-by-hop (next: dest opts) + dest opts (next: UDP), 8 bytes each.
        let ext = [60, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0];
        let udp = [0x30, 0x39, 0, 53, 0, 8, 0, 0];
        let p = packet(0, &ext, &udp);
        let l3 = Ipv6.parse(&p).unwrap();
        assert_eq!(l3.proto, 17);
        assert_eq!(l3.l4_offset, 56);
        assert_eq!(l3.l4, &udp);
        assert_eq!(l3.frag, Frag::None);
    }

    #[test]
    fn fragment_header_classification() {
        // Fragment header: next UDP, offset 0, M=1, id 7.
        let first = [17, 0, 0, 1, 0, 0, 0, 7];
        let l3p = packet(44, &first, &[0x30, 0x39, 0, 53, 0, 16, 0, 0]);
        assert_eq!(Ipv6.parse(&l3p).unwrap().frag, Frag::First);
        let later = [17, 0, 0, 8, 0, 0, 0, 7]; // offset 1 (8 bytes), M=0
        let l3p = packet(44, &later, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(Ipv6.parse(&l3p).unwrap().frag, Frag::Later);
        let atomic = [17, 0, 0, 0, 0, 0, 0, 7];
        let l3p = packet(44, &atomic, &[0x30, 0x39, 0, 53, 0, 8, 0, 0]);
        let l3 = Ipv6.parse(&l3p).unwrap();
        assert_eq!(l3.frag, Frag::None);
        assert_eq!(l3.proto, 17);
    }

    #[test]
    fn truncation_never_panics() {
        let ext = [60, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0];
        let p = packet(0, &ext, &[0x30, 0x39, 0, 53, 0, 8, 0, 0]);
        for n in 0..p.len() {
            assert!(Ipv6.parse(&p[..n]).is_err(), "prefix {n}");
        }
    }
}
