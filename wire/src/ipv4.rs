//! IPv4 header view (RFC 791).

use std::net::Ipv4Addr;

use super::{be16, checksum, clamp, clamp_mut, put16, WireError};

mod field {
    pub(super) const VER_IHL: usize = 0;
    pub(super) const DSCP_ECN: usize = 1;
    pub(super) const LENGTH: usize = 2;
    pub(super) const IDENT: usize = 4;
    pub(super) const FLG_OFF: usize = 6;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: usize = 10;
    pub(super) const SRC: usize = 12;
    pub(super) const DST: usize = 16;
}

/// Size of a header without options.
pub const HEADER_LEN: usize = 20;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet: header, options and payload.
///
/// After [`new_checked`](Self::new_checked) succeeds, no accessor panics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` without validation; getters may panic on short or inconsistent input.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer` after checking: at least 20 bytes, version 4, IHL >= 5, and
    /// `header_len <= total_len <= buffer.len()` (bytes past `total_len`, e.g. Ethernet
    /// padding, are allowed and ignored by [`payload`](Self::payload)).
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
        if self.version() != 4 {
            return Err(WireError::BadVersion);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(WireError::BadHeaderLen);
        }
        if hl > b.len() {
            return Err(WireError::Truncated);
        }
        let tl = usize::from(self.total_len());
        if tl < hl {
            return Err(WireError::BadLength);
        }
        if tl > b.len() {
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

    /// Version nibble (4 for a checked packet).
    pub fn version(&self) -> u8 {
        self.b()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[field::VER_IHL] & 0x0f) * 4
    }

    /// The former TOS byte: DSCP (6 bits) and ECN (2 bits).
    pub fn dscp_ecn(&self) -> u8 {
        self.b()[field::DSCP_ECN]
    }

    /// Total length field: header plus payload, in bytes.
    pub fn total_len(&self) -> u16 {
        be16(self.b(), field::LENGTH)
    }

    /// Identification field.
    pub fn ident(&self) -> u16 {
        be16(self.b(), field::IDENT)
    }

    /// Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        be16(self.b(), field::FLG_OFF) & FLAG_DF != 0
    }

    /// More Fragments flag.
    pub fn more_frags(&self) -> bool {
        be16(self.b(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> u16 {
        (be16(self.b(), field::FLG_OFF) & OFFSET_MASK) << 3
    }

    /// True for any fragment, first one included: MF set or a non-zero offset.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.b()[field::TTL]
    }

    /// Protocol of the payload (see [`super::proto`]).
    pub fn protocol(&self) -> u8 {
        self.b()[field::PROTOCOL]
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.b(), field::CHECKSUM)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(
            b[field::SRC],
            b[field::SRC + 1],
            b[field::SRC + 2],
            b[field::SRC + 3],
        )
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(
            b[field::DST],
            b[field::DST + 1],
            b[field::DST + 2],
            b[field::DST + 3],
        )
    }

    /// Option bytes between the fixed header and the payload (unparsed).
    pub fn options(&self) -> &[u8] {
        clamp(self.b(), HEADER_LEN, self.header_len())
    }

    /// The payload, bounded by the total length field (trailing link-layer padding excluded).
    pub fn payload(&self) -> &[u8] {
        clamp(self.b(), self.header_len(), usize::from(self.total_len()))
    }

    /// The header bytes (fixed part and options).
    pub fn header(&self) -> &[u8] {
        clamp(self.b(), 0, self.header_len())
    }

    /// True when the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.header()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets the TTL (checksum not updated; see [`checksum::update16`] or
    /// [`fill_checksum`](Self::fill_checksum)).
    pub fn set_ttl(&mut self, ttl: u8) {
        self.bm()[field::TTL] = ttl;
    }

    /// Sets the DSCP/ECN byte.
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.bm()[field::DSCP_ECN] = v;
    }

    /// Sets the protocol field.
    pub fn set_protocol(&mut self, proto: u8) {
        self.bm()[field::PROTOCOL] = proto;
    }

    /// Sets the identification field.
    pub fn set_ident(&mut self, ident: u16) {
        put16(self.bm(), field::IDENT, ident);
    }

    /// Sets the total length field. Accessors clamp to the buffer, so a value past its end
    /// cannot cause a panic, but the view then no longer passes `check_len`.
    pub fn set_total_len(&mut self, len: u16) {
        put16(self.bm(), field::LENGTH, len);
    }

    /// Sets DF, MF and the fragment offset in bytes (rounded down to a multiple of 8).
    pub fn set_frag(&mut self, dont_frag: bool, more: bool, offset_bytes: u16) {
        let mut v = (offset_bytes >> 3) & OFFSET_MASK;
        if dont_frag {
            v |= FLAG_DF;
        }
        if more {
            v |= FLAG_MF;
        }
        put16(self.bm(), field::FLG_OFF, v);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.bm()[field::SRC..field::SRC + 4].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.bm()[field::DST..field::DST + 4].copy_from_slice(&a.octets());
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, c: u16) {
        put16(self.bm(), field::CHECKSUM, c);
    }

    /// Recomputes the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::data(self.header());
        self.set_checksum(c);
    }

    /// Mutable payload (bounded like [`payload`](Self::payload)).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len(), usize::from(self.total_len()));
        clamp_mut(self.bm(), start, end)
    }
}

/// Writes a 20-byte option-less IPv4 header with checksum into `buf[..20]`: DF clear, not a
/// fragment, DSCP/ECN zero, total length `20 + payload_len`.
///
/// Errors: `Truncated` if `buf` is shorter than 20 bytes, `BadLength` if the total length does
/// not fit in 16 bits.
pub fn emit_header(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    ttl: u8,
    payload_len: usize,
    ident: u16,
) -> Result<(), WireError> {
    let total = u16::try_from(payload_len + HEADER_LEN).map_err(|_| WireError::BadLength)?;
    let hdr = buf.get_mut(..HEADER_LEN).ok_or(WireError::Truncated)?;
    hdr.fill(0);
    hdr[field::VER_IHL] = 0x45;
    let mut p = Ipv4Packet::new_unchecked(hdr);
    p.set_total_len(total);
    p.set_ident(ident);
    p.set_ttl(ttl);
    p.set_protocol(proto);
    p.set_src_addr(src);
    p.set_dst_addr(dst);
    p.fill_checksum();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // ICMP echo request 192.0.2.1 -> 198.51.100.1, hand-assembled per RFC 791 / 792.
    pub(crate) const PING: [u8; 28] = [
        0x45, 0x00, 0x00, 0x1c, 0xbe, 0xef, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, 192, 0, 2, 1, 198,
        51, 100, 1, // IPv4
        0x08, 0x00, 0x00, 0x00, 0x12, 0x34, 0x00, 0x01, // ICMP echo, id 0x1234 seq 1
    ];

    fn ping() -> Vec<u8> {
        let mut v = PING.to_vec();
        Ipv4Packet::new_unchecked(&mut v[..]).fill_checksum();
        v
    }

    #[test]
    fn parse_fields() {
        let v = ping();
        let p = Ipv4Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0xbeef);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), super::super::proto::ICMP);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(198, 51, 100, 1));
        assert!(p.options().is_empty());
        assert_eq!(p.payload().len(), 8);
        assert!(p.verify_checksum());
    }

    #[test]
    fn known_checksum() {
        // The common textbook header whose checksum is 0xb861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let mut buf = h.to_vec();
        buf.resize(0x73, 0);
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        assert!(p.verify_checksum());
        p.fill_checksum();
        assert_eq!(p.checksum(), 0xb861);
    }

    #[test]
    fn every_prefix_is_rejected() {
        let v = ping();
        for n in 0..v.len() {
            assert_eq!(
                Ipv4Packet::new_checked(&v[..n]).unwrap_err(),
                WireError::Truncated,
                "prefix {n}"
            );
        }
    }

    #[test]
    fn padding_past_total_len_is_ignored() {
        let mut v = ping();
        v.extend_from_slice(&[0; 18]); // Ethernet minimum-frame padding
        let p = Ipv4Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn malformed_headers() {
        let mut v = ping();
        v[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&v[..]).unwrap_err(),
            WireError::BadVersion
        );
        v[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&v[..]).unwrap_err(),
            WireError::BadHeaderLen
        );
        v[0] = 0x46; // 24-byte header but total length 28: fine
        assert!(Ipv4Packet::new_checked(&v[..]).is_ok());
        v[0] = 0x48; // 32-byte header in a 28-byte buffer
        assert_eq!(
            Ipv4Packet::new_checked(&v[..]).unwrap_err(),
            WireError::Truncated
        );
        v[0] = 0x45;
        v[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&v[..]).unwrap_err(),
            WireError::BadLength
        );
        v[2..4].copy_from_slice(&29u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&v[..]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn options_and_fragments() {
        // 24-byte header carrying one NOP and an End-of-options list, then 4 payload bytes.
        let mut v = vec![
            0x46, 0x00, 0x00, 0x1c, 0x00, 0x01, 0x20, 0x03, 0x10, 0x11, 0x00, 0x00, 192, 0, 2, 1,
            192, 0, 2, 2, 0x01, 0x00, 0x00, 0x00, 1, 2, 3, 4,
        ];
        let mut p = Ipv4Packet::new_checked(&mut v[..]).unwrap();
        assert_eq!(p.options(), &[1, 0, 0, 0]);
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
        assert!(p.more_frags());
        assert_eq!(p.frag_offset(), 24);
        assert!(p.is_fragment());
        p.set_frag(true, false, 0);
        assert!(p.dont_frag() && !p.is_fragment());
        p.set_frag(false, false, 65528);
        assert_eq!(p.frag_offset(), 65528);
        assert!(p.is_fragment());
    }

    #[test]
    fn setters_and_incremental_checksum() {
        let mut v = ping();
        let mut p = Ipv4Packet::new_checked(&mut v[..]).unwrap();
        let old = p.checksum();
        let old_ttl_word = u16::from_be_bytes([p.ttl(), p.protocol()]);
        p.set_ttl(63);
        let new_word = u16::from_be_bytes([p.ttl(), p.protocol()]);
        p.set_checksum(checksum::update16(old, old_ttl_word, new_word));
        assert!(p.verify_checksum());

        let new_src = Ipv4Addr::new(203, 0, 113, 9);
        let c = checksum::update_bytes(p.checksum(), &p.src_addr().octets(), &new_src.octets());
        p.set_src_addr(new_src);
        p.set_checksum(c);
        assert!(p.verify_checksum());

        p.set_dst_addr(Ipv4Addr::new(203, 0, 113, 10));
        p.set_ident(7);
        p.set_protocol(17);
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        p.payload_mut()[0] = 0xaa;
        assert_eq!(p.payload()[0], 0xaa);
        // A length past the buffer must not make accessors panic.
        p.set_total_len(0xffff);
        assert_eq!(p.payload().len(), 8);
        assert_eq!(p.payload_mut().len(), 8);
        p.set_total_len(3);
        assert!(p.payload().is_empty());
        assert!(p.payload_mut().is_empty());
    }

    #[test]
    fn emit_round_trip() {
        let mut buf = [0u8; 30];
        let (s, d) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
        emit_header(&mut buf, s, d, 6, 64, 10, 99).unwrap();
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(
            (p.src_addr(), p.dst_addr(), p.protocol(), p.ttl()),
            (s, d, 6, 64)
        );
        assert_eq!((p.total_len(), p.ident()), (30, 99));
        assert!(p.verify_checksum());
        assert_eq!(
            emit_header(&mut buf[..19], s, d, 6, 64, 0, 0),
            Err(WireError::Truncated)
        );
        assert_eq!(
            emit_header(&mut buf, s, d, 6, 64, 65516, 0),
            Err(WireError::BadLength)
        );
    }
}
