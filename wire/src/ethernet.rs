//! Ethernet II frame view (IEEE 802.3 with an EtherType, no VLAN tag parsing).

use super::{be16, clamp, clamp_mut, put16, WireError};

mod field {
    pub(super) const DST: usize = 0;
    pub(super) const SRC: usize = 6;
    pub(super) const ETHERTYPE: usize = 12;
}

/// Size of the header (no 802.1Q tag, no FCS).
pub const HEADER_LEN: usize = 14;

/// EtherType values the router looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtherType;

impl EtherType {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// 802.1Q VLAN tag (a tagged frame: the real EtherType follows the 4-byte tag).
    pub const VLAN: u16 = 0x8100;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
}

/// The broadcast MAC address.
pub const BROADCAST: [u8; 6] = [0xff; 6];

/// A view of an Ethernet II frame as a TAP device delivers it (no preamble, no FCS).
///
/// After [`new_checked`](Self::new_checked) succeeds, no accessor panics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` without validation.
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps `buffer` after checking it holds the 14-byte header.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Self::new_unchecked(buffer))
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn mac_at(&self, at: usize) -> [u8; 6] {
        let mut m = [0u8; 6];
        m.copy_from_slice(&self.buffer.as_ref()[at..at + 6]);
        m
    }

    /// Destination MAC address.
    pub fn dst_addr(&self) -> [u8; 6] {
        self.mac_at(field::DST)
    }

    /// Source MAC address.
    pub fn src_addr(&self) -> [u8; 6] {
        self.mac_at(field::SRC)
    }

    /// EtherType (see [`EtherType`]).
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    /// Everything after the header (may include link-layer padding; the network layer's
    /// length field bounds it).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        clamp(b, HEADER_LEN, b.len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC address.
    pub fn set_dst_addr(&mut self, a: [u8; 6]) {
        self.buffer.as_mut()[field::DST..field::DST + 6].copy_from_slice(&a);
    }

    /// Sets the source MAC address.
    pub fn set_src_addr(&mut self, a: [u8; 6]) {
        self.buffer.as_mut()[field::SRC..field::SRC + 6].copy_from_slice(&a);
    }

    /// Sets the EtherType.
    pub fn set_ethertype(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::ETHERTYPE, v);
    }

    /// Mutable payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        clamp_mut(self.buffer.as_mut(), HEADER_LEN, usize::MAX)
    }
}

/// Writes a 14-byte Ethernet header into `buf[..14]`. `Truncated` if `buf` is shorter.
pub fn emit_header(
    buf: &mut [u8],
    dst: [u8; 6],
    src: [u8; 6],
    ethertype: u16,
) -> Result<(), WireError> {
    let hdr = buf.get_mut(..HEADER_LEN).ok_or(WireError::Truncated)?;
    let mut f = EthernetFrame::new_unchecked(hdr);
    f.set_dst_addr(dst);
    f.set_src_addr(src);
    f.set_ethertype(ethertype);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: [u8; 18] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x5e, 0x00, 0x53, 0x01, 0x08, 0x06, 1, 2,
        3, 4,
    ];

    #[test]
    fn parse() {
        let f = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst_addr(), BROADCAST);
        assert_eq!(f.src_addr(), [0x02, 0x00, 0x5e, 0x00, 0x53, 0x01]);
        assert_eq!(f.ethertype(), EtherType::ARP);
        assert_eq!(f.payload(), &[1, 2, 3, 4]);
        for n in 0..HEADER_LEN {
            assert_eq!(
                EthernetFrame::new_checked(&FRAME[..n]),
                Err(WireError::Truncated)
            );
        }
        assert!(EthernetFrame::new_checked(&FRAME[..14])
            .unwrap()
            .payload()
            .is_empty());
    }

    #[test]
    fn emit_and_set() {
        let mut buf = [0u8; 16];
        emit_header(&mut buf, [1; 6], [2; 6], EtherType::IPV6).unwrap();
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        assert_eq!(
            (f.dst_addr(), f.src_addr(), f.ethertype()),
            ([1; 6], [2; 6], 0x86dd)
        );
        f.payload_mut()[1] = 7;
        assert_eq!(f.payload(), &[0, 7]);
        assert_eq!(f.into_inner()[12..14], [0x86, 0xdd]);
        assert_eq!(
            emit_header(&mut buf[..13], [1; 6], [2; 6], 0),
            Err(WireError::Truncated)
        );
    }
}
