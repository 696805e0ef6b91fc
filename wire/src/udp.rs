//! UDP (RFC 768) and UDP-Lite (RFC 3828) datagram views.
//!
//! The two share a header layout but not the meaning of the length field: UDP's is the
//! datagram length, UDP-Lite's is the checksum coverage (the datagram length comes from the IP
//! layer). Hence two types, [`UdpPacket`] and [`UdpLitePacket`], so neither can be misread as
//! the other.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{be16, checksum, clamp, clamp_mut, proto, put16, WireError};

mod field {
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const LENGTH: usize = 4;
    pub(super) const CHECKSUM: usize = 6;
}

/// Size of the header.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram.
///
/// After [`new_checked`](Self::new_checked) succeeds, no accessor panics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps `buffer` without validation.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps `buffer` after checking: at least 8 bytes and `8 <= len <= buffer.len()`.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The validation [`new_checked`](Self::new_checked) performs.
    pub fn check_len(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = usize::from(self.len());
        if len < HEADER_LEN {
            return Err(WireError::BadLength);
        }
        if len > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.b(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.b(), field::DST_PORT)
    }

    /// Length field: header plus data.
    #[allow(clippy::len_without_is_empty)] // a header field, not a container length
    pub fn len(&self) -> u16 {
        be16(self.b(), field::LENGTH)
    }

    /// Checksum field (0 over IPv4 means "not computed").
    pub fn checksum(&self) -> u16 {
        be16(self.b(), field::CHECKSUM)
    }

    /// Data, bounded by the length field.
    pub fn payload(&self) -> &[u8] {
        clamp(self.b(), HEADER_LEN, usize::from(self.len()))
    }

    /// The datagram as the length field delimits it.
    fn datagram(&self) -> &[u8] {
        clamp(self.b(), 0, usize::from(self.len()))
    }

    fn sum_with(&self, pseudo: u32) -> u16 {
        checksum::fold(checksum::combine(pseudo, checksum::sum(self.datagram())))
    }

    /// Checks the checksum with the IPv4 pseudo-header; a zero checksum means the sender did
    /// not compute one, which RFC 768 allows, so it verifies.
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let len = u32::from(self.len());
        self.sum_with(checksum::pseudo_header_v4(src, dst, proto::UDP, len)) == 0
    }

    /// Checks the checksum with the IPv6 pseudo-header; zero is invalid over IPv6
    /// (RFC 8200 §8.1; the RFC 6935 tunnel exception is not applied).
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        if self.checksum() == 0 {
            return false;
        }
        let len = u32::from(self.len());
        self.sum_with(checksum::pseudo_header_v6(src, dst, proto::UDP, len)) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets the source port.
    pub fn set_src_port(&mut self, v: u16) {
        put16(self.bm(), field::SRC_PORT, v);
    }
    /// Sets the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        put16(self.bm(), field::DST_PORT, v);
    }
    /// Sets the length field (accessors clamp to the buffer).
    pub fn set_len(&mut self, v: u16) {
        put16(self.bm(), field::LENGTH, v);
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.bm(), field::CHECKSUM, v);
    }

    /// Mutable data, bounded by the length field.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        clamp_mut(self.bm(), HEADER_LEN, len)
    }

    fn fill_with(&mut self, pseudo: u32) {
        self.set_checksum(0);
        let c = self.sum_with(pseudo);
        // A computed 0 is sent as all ones: 0 on the wire means "no checksum" (RFC 768).
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    /// Computes and stores the checksum with the IPv4 pseudo-header.
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let len = u32::from(self.len());
        self.fill_with(checksum::pseudo_header_v4(src, dst, proto::UDP, len));
    }

    /// Computes and stores the checksum with the IPv6 pseudo-header.
    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        let len = u32::from(self.len());
        self.fill_with(checksum::pseudo_header_v6(src, dst, proto::UDP, len));
    }
}

/// A view of a UDP-Lite datagram (RFC 3828). The buffer must be exactly the datagram (the IP
/// payload): UDP-Lite has no length field of its own.
///
/// After [`new_checked`](Self::new_checked) succeeds, no accessor panics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpLitePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpLitePacket<T> {
    /// Wraps `buffer` without validation.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpLitePacket { buffer }
    }

    /// Wraps `buffer` after checking: at least 8 bytes, and a checksum coverage of 0 (all) or
    /// between 8 and the datagram length (RFC 3828 §3.1: anything else is discarded).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The validation [`new_checked`](Self::new_checked) performs.
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let cov = usize::from(self.checksum_coverage());
        if cov != 0 && (cov < HEADER_LEN || cov > len) {
            return Err(WireError::BadLength);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.b(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.b(), field::DST_PORT)
    }

    /// Checksum coverage field: bytes covered from the start of the header; 0 means all.
    pub fn checksum_coverage(&self) -> u16 {
        be16(self.b(), field::LENGTH)
    }

    /// Number of bytes the checksum covers (coverage 0 resolved to the datagram length).
    pub fn coverage_len(&self) -> usize {
        let len = self.b().len();
        match usize::from(self.checksum_coverage()) {
            0 => len,
            c => c.min(len),
        }
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.b(), field::CHECKSUM)
    }

    /// Data after the header (covered or not).
    pub fn payload(&self) -> &[u8] {
        let b = self.b();
        clamp(b, HEADER_LEN, b.len())
    }

    fn sum_with(&self, pseudo: u32) -> u16 {
        let covered = clamp(self.b(), 0, self.coverage_len());
        checksum::fold(checksum::combine(pseudo, checksum::sum(covered)))
    }

    // The pseudo-header length is the IP-derived datagram length, not the coverage (§3.2).
    fn len32(&self) -> u32 {
        self.b().len() as u32
    }

    /// Checks the checksum with the IPv4 pseudo-header; zero is always invalid in UDP-Lite.
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let ph = checksum::pseudo_header_v4(src, dst, proto::UDPLITE, self.len32());
        self.checksum() != 0 && self.sum_with(ph) == 0
    }

    /// Checks the checksum with the IPv6 pseudo-header; zero is always invalid in UDP-Lite.
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let ph = checksum::pseudo_header_v6(src, dst, proto::UDPLITE, self.len32());
        self.checksum() != 0 && self.sum_with(ph) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpLitePacket<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets the source port.
    pub fn set_src_port(&mut self, v: u16) {
        put16(self.bm(), field::SRC_PORT, v);
    }
    /// Sets the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        put16(self.bm(), field::DST_PORT, v);
    }
    /// Sets the checksum coverage field.
    pub fn set_checksum_coverage(&mut self, v: u16) {
        put16(self.bm(), field::LENGTH, v);
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.bm(), field::CHECKSUM, v);
    }

    /// Mutable data after the header.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        clamp_mut(self.bm(), HEADER_LEN, usize::MAX)
    }

    fn fill_with(&mut self, pseudo: u32) {
        self.set_checksum(0);
        let c = self.sum_with(pseudo);
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    /// Computes and stores the checksum with the IPv4 pseudo-header.
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let ph = checksum::pseudo_header_v4(src, dst, proto::UDPLITE, self.len32());
        self.fill_with(ph);
    }

    /// Computes and stores the checksum with the IPv6 pseudo-header.
    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        let ph = checksum::pseudo_header_v6(src, dst, proto::UDPLITE, self.len32());
        self.fill_with(ph);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // DNS-like query 192.0.2.1:53000 -> 198.51.100.53:53 with 4 data bytes.
    const DGRAM: [u8; 12] = [
        0xcf, 0x08, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00, 0xab, 0xcd, 0x01, 0x00,
    ];

    fn v4() -> (Ipv4Addr, Ipv4Addr) {
        (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(198, 51, 100, 53))
    }

    fn v6() -> (Ipv6Addr, Ipv6Addr) {
        (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::35".parse().unwrap(),
        )
    }

    #[test]
    fn parse_and_checksum_v4() {
        let (s, d) = v4();
        let mut v = DGRAM.to_vec();
        v.push(0xee); // bytes past the length field are not part of the datagram
        let mut p = UdpPacket::new_checked(&mut v[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (53000, 53, 12));
        assert_eq!(p.payload(), &[0xab, 0xcd, 0x01, 0x00]);
        assert!(p.verify_checksum_v4(s, d), "zero means none over IPv4");
        p.fill_checksum_v4(s, d);
        assert_ne!(p.checksum(), 0);
        assert!(p.verify_checksum_v4(s, d));
        assert!(!p.verify_checksum_v4(s, s));
        // Known answer computed by hand: pseudo-header + header + data.
        let mut ph = Vec::new();
        ph.extend_from_slice(&s.octets());
        ph.extend_from_slice(&d.octets());
        ph.extend_from_slice(&[0, 17, 0, 12]);
        ph.extend_from_slice(&DGRAM);
        assert_eq!(p.checksum(), checksum::data(&ph));
    }

    #[test]
    fn checksum_v6_rules() {
        let (s, d) = v6();
        let mut v = DGRAM.to_vec();
        let mut p = UdpPacket::new_checked(&mut v[..]).unwrap();
        assert!(!p.verify_checksum_v6(&s, &d), "zero is invalid over IPv6");
        p.fill_checksum_v6(&s, &d);
        assert!(p.verify_checksum_v6(&s, &d));
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Pick data so that the checksum would be 0: solve for the last word.
        let (s, d) = v4();
        let mut v = DGRAM.to_vec();
        v[10] = 0;
        v[11] = 0;
        let mut p = UdpPacket::new_checked(&mut v[..]).unwrap();
        p.fill_checksum_v4(s, d);
        let c = p.checksum();
        // Adding the checksum value as data makes the sum all ones, so the checksum 0.
        p.payload_mut()[2..4].copy_from_slice(&c.to_be_bytes());
        p.fill_checksum_v4(s, d);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum_v4(s, d));
    }

    #[test]
    fn every_prefix_is_rejected() {
        for n in 0..DGRAM.len() {
            assert_eq!(
                UdpPacket::new_checked(&DGRAM[..n]),
                Err(WireError::Truncated),
                "prefix {n}"
            );
        }
    }

    #[test]
    fn bad_length() {
        let mut v = DGRAM.to_vec();
        v[5] = 7;
        assert_eq!(UdpPacket::new_checked(&v[..]), Err(WireError::BadLength));
        v[5] = 13;
        assert_eq!(UdpPacket::new_checked(&v[..]), Err(WireError::Truncated));
    }

    #[test]
    fn setters() {
        let mut v = DGRAM.to_vec();
        let mut p = UdpPacket::new_checked(&mut v[..]).unwrap();
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_checksum(3);
        p.set_len(10);
        assert_eq!(
            (p.src_port(), p.dst_port(), p.checksum(), p.len()),
            (1, 2, 3, 10)
        );
        assert_eq!(p.payload(), &[0xab, 0xcd]);
        p.set_len(0xffff);
        assert_eq!(p.payload().len(), 4);
        assert_eq!(p.payload_mut().len(), 4);
        p.set_len(0);
        assert!(p.payload().is_empty());
        assert!(p.payload_mut().is_empty());
    }

    #[test]
    fn udplite_coverage() {
        let (s, d) = v6();
        let mut v = DGRAM.to_vec();
        v[5] = 0; // coverage 0: whole datagram
        let mut p = UdpLitePacket::new_checked(&mut v[..]).unwrap();
        assert_eq!((p.checksum_coverage(), p.coverage_len()), (0, 12));
        assert!(!p.verify_checksum_v6(&s, &d));
        p.fill_checksum_v6(&s, &d);
        assert!(p.verify_checksum_v6(&s, &d));

        // Coverage 8: only the header; changing data keeps the checksum valid.
        p.set_checksum_coverage(8);
        let (s4, d4) = v4();
        p.fill_checksum_v4(s4, d4);
        p.payload_mut()[0] ^= 0xff;
        assert!(p.verify_checksum_v4(s4, d4));
        assert_eq!(p.payload().len(), 4);
        assert_eq!((p.src_port(), p.dst_port()), (53000, 53));
        p.set_src_port(7);
        p.set_dst_port(8);
        assert_eq!((p.src_port(), p.dst_port()), (7, 8));
        assert!(!p.verify_checksum_v4(s4, d4));
        p.set_checksum(0);
        assert!(!p.verify_checksum_v4(s4, d4));
    }

    #[test]
    fn udplite_bad_coverage() {
        let mut v = DGRAM.to_vec();
        for cov in [1u8, 7, 13] {
            v[5] = cov;
            assert_eq!(
                UdpLitePacket::new_checked(&v[..]),
                Err(WireError::BadLength),
                "{cov}"
            );
        }
        for n in 0..8 {
            assert_eq!(
                UdpLitePacket::new_checked(&v[..n]),
                Err(WireError::Truncated)
            );
        }
    }
}
