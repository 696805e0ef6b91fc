//! ARP view for IPv4 over Ethernet (RFC 826).

use std::net::Ipv4Addr;

use super::{be16, put16, WireError};

mod field {
    pub(super) const HTYPE: usize = 0;
    pub(super) const PTYPE: usize = 2;
    pub(super) const HLEN: usize = 4;
    pub(super) const PLEN: usize = 5;
    pub(super) const OPER: usize = 6;
    pub(super) const SHA: usize = 8;
    pub(super) const SPA: usize = 14;
    pub(super) const THA: usize = 18;
    pub(super) const TPA: usize = 24;
}

/// Size of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

const HTYPE_ETHERNET: u16 = 1;
const PTYPE_IPV4: u16 = 0x0800;

/// ARP operation codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpOp;

impl ArpOp {
    /// Request.
    pub const REQUEST: u16 = 1;
    /// Reply.
    pub const REPLY: u16 = 2;
}

/// A view of an ARP packet for IPv4 over Ethernet (hardware type 1, protocol 0x0800,
/// 6-byte hardware and 4-byte protocol addresses); other combinations are rejected.
///
/// After [`new_checked`](Self::new_checked) succeeds, no accessor panics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buffer` without validation.
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps `buffer` after checking the 28 bytes are there and describe Ethernet/IPv4.
    /// Trailing bytes (Ethernet padding) are allowed.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        let b = p.buffer.as_ref();
        if b.len() < field::OPER {
            return Err(WireError::Truncated);
        }
        if be16(b, field::HTYPE) != HTYPE_ETHERNET
            || be16(b, field::PTYPE) != PTYPE_IPV4
            || b[field::HLEN] != 6
            || b[field::PLEN] != 4
        {
            return Err(WireError::Malformed("arp: not ethernet/ipv4"));
        }
        if b.len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn mac_at(&self, at: usize) -> [u8; 6] {
        let mut m = [0u8; 6];
        m.copy_from_slice(&self.b()[at..at + 6]);
        m
    }

    fn ip_at(&self, at: usize) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
    }

    /// Operation (see [`ArpOp`]).
    pub fn operation(&self) -> u16 {
        be16(self.b(), field::OPER)
    }

    /// Sender hardware address.
    pub fn sender_hw_addr(&self) -> [u8; 6] {
        self.mac_at(field::SHA)
    }

    /// Sender protocol address.
    pub fn sender_proto_addr(&self) -> Ipv4Addr {
        self.ip_at(field::SPA)
    }

    /// Target hardware address.
    pub fn target_hw_addr(&self) -> [u8; 6] {
        self.mac_at(field::THA)
    }

    /// Target protocol address.
    pub fn target_proto_addr(&self) -> Ipv4Addr {
        self.ip_at(field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets the operation.
    pub fn set_operation(&mut self, op: u16) {
        put16(self.bm(), field::OPER, op);
    }
    /// Sets the sender hardware address.
    pub fn set_sender_hw_addr(&mut self, a: [u8; 6]) {
        self.bm()[field::SHA..field::SHA + 6].copy_from_slice(&a);
    }
    /// Sets the sender protocol address.
    pub fn set_sender_proto_addr(&mut self, a: Ipv4Addr) {
        self.bm()[field::SPA..field::SPA + 4].copy_from_slice(&a.octets());
    }
    /// Sets the target hardware address.
    pub fn set_target_hw_addr(&mut self, a: [u8; 6]) {
        self.bm()[field::THA..field::THA + 6].copy_from_slice(&a);
    }
    /// Sets the target protocol address.
    pub fn set_target_proto_addr(&mut self, a: Ipv4Addr) {
        self.bm()[field::TPA..field::TPA + 4].copy_from_slice(&a.octets());
    }
}

/// Writes a 28-byte Ethernet/IPv4 ARP packet into `buf[..28]`. `Truncated` if `buf` is
/// shorter.
pub fn emit(
    buf: &mut [u8],
    op: u16,
    sender_hw: [u8; 6],
    sender_ip: Ipv4Addr,
    target_hw: [u8; 6],
    target_ip: Ipv4Addr,
) -> Result<(), WireError> {
    let b = buf.get_mut(..PACKET_LEN).ok_or(WireError::Truncated)?;
    put16(b, field::HTYPE, HTYPE_ETHERNET);
    put16(b, field::PTYPE, PTYPE_IPV4);
    b[field::HLEN] = 6;
    b[field::PLEN] = 4;
    let mut p = ArpPacket::new_unchecked(b);
    p.set_operation(op);
    p.set_sender_hw_addr(sender_hw);
    p.set_sender_proto_addr(sender_ip);
    p.set_target_hw_addr(target_hw);
    p.set_target_proto_addr(target_ip);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "Who has 192.0.2.1? Tell 192.0.2.2" from 02:00:5e:00:53:02.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, // Ethernet, IPv4, request
        0x02, 0x00, 0x5e, 0x00, 0x53, 0x02, 192, 0, 2, 2, // sender
        0, 0, 0, 0, 0, 0, 192, 0, 2, 1, // target
    ];

    #[test]
    fn parse_request() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.operation(), ArpOp::REQUEST);
        assert_eq!(p.sender_hw_addr(), [0x02, 0x00, 0x5e, 0x00, 0x53, 0x02]);
        assert_eq!(p.sender_proto_addr(), Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(p.target_hw_addr(), [0; 6]);
        assert_eq!(p.target_proto_addr(), Ipv4Addr::new(192, 0, 2, 1));
    }

    #[test]
    fn every_prefix_is_rejected() {
        for n in 0..REQUEST.len() {
            assert_eq!(
                ArpPacket::new_checked(&REQUEST[..n]),
                Err(WireError::Truncated),
                "{n}"
            );
        }
    }

    #[test]
    fn other_hardware_rejected() {
        let mut v = REQUEST.to_vec();
        v[1] = 6; // IEEE 802
        assert!(matches!(
            ArpPacket::new_checked(&v[..]),
            Err(WireError::Malformed(_))
        ));
        let mut v = REQUEST.to_vec();
        v[5] = 16;
        assert!(matches!(
            ArpPacket::new_checked(&v[..]),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn reply_via_emit_and_setters() {
        let req = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        let mut buf = [0u8; 28];
        let me = [0x02, 0x00, 0x5e, 0x00, 0x53, 0x01];
        emit(
            &mut buf,
            ArpOp::REPLY,
            me,
            req.target_proto_addr(),
            req.sender_hw_addr(),
            req.sender_proto_addr(),
        )
        .unwrap();
        let mut rep = ArpPacket::new_checked(&mut buf[..]).unwrap();
        assert_eq!(rep.operation(), ArpOp::REPLY);
        assert_eq!(rep.sender_hw_addr(), me);
        assert_eq!(rep.target_proto_addr(), Ipv4Addr::new(192, 0, 2, 2));
        rep.set_operation(ArpOp::REQUEST);
        rep.set_target_hw_addr([0; 6]);
        assert_eq!(rep.operation(), 1);
        assert_eq!(
            emit(
                &mut buf[..27],
                1,
                me,
                Ipv4Addr::LOCALHOST,
                me,
                Ipv4Addr::LOCALHOST
            ),
            Err(WireError::Truncated)
        );
    }
}
