//! DCCP packet view (RFC 4340 §5).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{be16, be32, checksum, clamp, proto, put16, WireError};

mod field {
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const DATA_OFFSET: usize = 4;
    pub(super) const CCVAL_CSCOV: usize = 5;
    pub(super) const CHECKSUM: usize = 6;
    pub(super) const TYPE_X: usize = 8;
}

/// Generic header size with 24-bit sequence numbers (X = 0).
pub const SHORT_HEADER_LEN: usize = 12;
/// Generic header size with 48-bit sequence numbers (X = 1).
pub const LONG_HEADER_LEN: usize = 16;

/// DCCP packet types (RFC 4340 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DccpType {
    /// 0: client initiates a connection.
    Request,
    /// 1: server responds to a Request.
    Response,
    /// 2: application data only.
    Data,
    /// 3: acknowledgement only.
    Ack,
    /// 4: data with piggybacked acknowledgement.
    DataAck,
    /// 5: server asks the client to close.
    CloseReq,
    /// 6: close the connection.
    Close,
    /// 7: unconditionally shut down the connection.
    Reset,
    /// 8: resynchronize sequence numbers.
    Sync,
    /// 9: acknowledge a Sync.
    SyncAck,
    /// 10-15: reserved; receivers ignore such packets.
    Unknown(u8),
}

impl From<u8> for DccpType {
    fn from(v: u8) -> Self {
        match v {
            0 => DccpType::Request,
            1 => DccpType::Response,
            2 => DccpType::Data,
            3 => DccpType::Ack,
            4 => DccpType::DataAck,
            5 => DccpType::CloseReq,
            6 => DccpType::Close,
            7 => DccpType::Reset,
            8 => DccpType::Sync,
            9 => DccpType::SyncAck,
            v => DccpType::Unknown(v),
        }
    }
}

impl From<DccpType> for u8 {
    fn from(t: DccpType) -> u8 {
        match t {
            DccpType::Request => 0,
            DccpType::Response => 1,
            DccpType::Data => 2,
            DccpType::Ack => 3,
            DccpType::DataAck => 4,
            DccpType::CloseReq => 5,
            DccpType::Close => 6,
            DccpType::Reset => 7,
            DccpType::Sync => 8,
            DccpType::SyncAck => 9,
            DccpType::Unknown(v) => v,
        }
    }
}

impl DccpType {
    /// True for types carrying an Acknowledgement Number subheader (all but Request and
    /// Data; reserved types are not interpreted).
    pub fn has_ack(self) -> bool {
        !matches!(
            self,
            DccpType::Request | DccpType::Data | DccpType::Unknown(_)
        )
    }

    /// True for types that MUST use 48-bit sequence numbers (X = 1): everything except
    /// Data, Ack and DataAck (RFC 4340 §5.1).
    pub fn requires_long_seq(self) -> bool {
        !matches!(
            self,
            DccpType::Data | DccpType::Ack | DccpType::DataAck | DccpType::Unknown(_)
        )
    }

    /// Bytes of type-specific fields after the generic and acknowledgement subheaders:
    /// Service Code (Request, Response) or Reset Code and data (Reset).
    fn extra_len(self) -> usize {
        match self {
            DccpType::Request | DccpType::Response | DccpType::Reset => 4,
            _ => 0,
        }
    }
}

/// A view of a DCCP packet. The buffer must be exactly the packet (the IP payload).
///
/// After [`new_checked`](Self::new_checked) succeeds, no accessor panics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DccpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> DccpPacket<T> {
    /// Wraps `buffer` without validation.
    pub const fn new_unchecked(buffer: T) -> Self {
        DccpPacket { buffer }
    }

    /// Wraps `buffer` after checking: the generic header (12 or 16 bytes by the X bit), the
    /// acknowledgement subheader and type-specific fields of this type all present; X = 1 for
    /// types that require it; the data offset at least that long and within the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The validation [`new_checked`](Self::new_checked) performs.
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.b().len();
        if len < SHORT_HEADER_LEN || (self.x() && len < LONG_HEADER_LEN) {
            return Err(WireError::Truncated);
        }
        let ty = self.packet_type();
        if ty.requires_long_seq() && !self.x() {
            return Err(WireError::Malformed(
                "dccp: 24-bit sequence numbers on this type",
            ));
        }
        let min = self.fixed_len();
        if len < min {
            return Err(WireError::Truncated);
        }
        let hl = self.header_len();
        if hl < min {
            return Err(WireError::BadHeaderLen);
        }
        if hl > len {
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

    fn generic_len(&self) -> usize {
        if self.x() {
            LONG_HEADER_LEN
        } else {
            SHORT_HEADER_LEN
        }
    }

    fn ack_len(&self) -> usize {
        match (self.packet_type().has_ack(), self.x()) {
            (false, _) => 0,
            (true, true) => 8,
            (true, false) => 4,
        }
    }

    /// Generic header + acknowledgement subheader + type-specific fields: the minimum header.
    fn fixed_len(&self) -> usize {
        self.generic_len() + self.ack_len() + self.packet_type().extra_len()
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.b(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.b(), field::DST_PORT)
    }

    /// Data offset field, in 32-bit words.
    pub fn data_offset(&self) -> u8 {
        self.b()[field::DATA_OFFSET]
    }

    /// Header length in bytes (data offset × 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.data_offset()) * 4
    }

    /// CCVal: used by the sender's congestion control.
    pub fn ccval(&self) -> u8 {
        self.b()[field::CCVAL_CSCOV] >> 4
    }

    /// Checksum coverage field (0: whole packet; n: header plus (n-1) × 4 data bytes).
    pub fn cscov(&self) -> u8 {
        self.b()[field::CCVAL_CSCOV] & 0x0f
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.b(), field::CHECKSUM)
    }

    /// Packet type.
    pub fn packet_type(&self) -> DccpType {
        DccpType::from((self.b()[field::TYPE_X] >> 1) & 0x0f)
    }

    /// X bit: 48-bit (true) or 24-bit sequence and acknowledgement numbers.
    pub fn x(&self) -> bool {
        self.b()[field::TYPE_X] & 1 != 0
    }

    /// Sequence number (24 or 48 bits).
    pub fn seq_number(&self) -> u64 {
        let b = self.b();
        if self.x() {
            u64::from(be16(b, 10)) << 32 | u64::from(be32(b, 12))
        } else {
            u64::from(be32(b, 8) & 0x00ff_ffff)
        }
    }

    /// Acknowledgement number, for types that carry one.
    pub fn ack_number(&self) -> Option<u64> {
        if !self.packet_type().has_ack() {
            return None;
        }
        let b = self.b();
        let at = self.generic_len();
        Some(if self.x() {
            u64::from(be16(b, at + 2)) << 32 | u64::from(be32(b, at + 4))
        } else {
            u64::from(be32(b, at) & 0x00ff_ffff)
        })
    }

    /// Service code of a Request or Response.
    pub fn service_code(&self) -> Option<u32> {
        match self.packet_type() {
            DccpType::Request | DccpType::Response => {
                Some(be32(self.b(), self.generic_len() + self.ack_len()))
            }
            _ => None,
        }
    }

    /// Reset code of a Reset (RFC 4340 §5.6).
    pub fn reset_code(&self) -> Option<u8> {
        match self.packet_type() {
            DccpType::Reset => Some(self.b()[self.generic_len() + self.ack_len()]),
            _ => None,
        }
    }

    /// Data 1..3 bytes of a Reset.
    pub fn reset_data(&self) -> Option<[u8; 3]> {
        match self.packet_type() {
            DccpType::Reset => {
                let at = self.generic_len() + self.ack_len() + 1;
                let b = self.b();
                Some([b[at], b[at + 1], b[at + 2]])
            }
            _ => None,
        }
    }

    /// Option bytes between the fixed fields and the data offset.
    pub fn options(&self) -> &[u8] {
        clamp(self.b(), self.fixed_len(), self.header_len())
    }

    /// Application data after the header.
    pub fn payload(&self) -> &[u8] {
        let b = self.b();
        clamp(b, self.header_len(), b.len())
    }

    /// Bytes the checksum covers (RFC 4340 §9.2), or `None` when CsCov claims more data than
    /// the packet holds, which makes the packet invalid.
    pub fn checksum_coverage_len(&self) -> Option<usize> {
        let len = self.b().len();
        match usize::from(self.cscov()) {
            0 => Some(len),
            n => {
                let cov = self.header_len() + (n - 1) * 4;
                (cov <= len).then_some(cov)
            }
        }
    }

    fn sum_with(&self, pseudo: u32) -> Option<u16> {
        let cov = self.checksum_coverage_len()?;
        let covered = clamp(self.b(), 0, cov);
        Some(checksum::fold(checksum::combine(
            pseudo,
            checksum::sum(covered),
        )))
    }

    /// True when the checksum (IPv4 pseudo-header, coverage per CsCov) is correct.
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let ph = checksum::pseudo_header_v4(src, dst, proto::DCCP, self.b().len() as u32);
        self.sum_with(ph) == Some(0)
    }

    /// True when the checksum (IPv6 pseudo-header, coverage per CsCov) is correct.
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let ph = checksum::pseudo_header_v6(src, dst, proto::DCCP, self.b().len() as u32);
        self.sum_with(ph) == Some(0)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> DccpPacket<T> {
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
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.bm(), field::CHECKSUM, v);
    }

    fn fill_with(&mut self, pseudo: u32) -> Result<(), WireError> {
        self.set_checksum(0);
        let c = self.sum_with(pseudo).ok_or(WireError::BadLength)?;
        self.set_checksum(c);
        Ok(())
    }

    /// Computes and stores the checksum with the IPv4 pseudo-header; `BadLength` when CsCov
    /// exceeds the packet.
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) -> Result<(), WireError> {
        let ph = checksum::pseudo_header_v4(src, dst, proto::DCCP, self.b().len() as u32);
        self.fill_with(ph)
    }

    /// Computes and stores the checksum with the IPv6 pseudo-header; `BadLength` when CsCov
    /// exceeds the packet.
    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<(), WireError> {
        let ph = checksum::pseudo_header_v6(src, dst, proto::DCCP, self.b().len() as u32);
        self.fill_with(ph)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DCCP-Request 49000 -> 5001, X=1, seq 0x0000_1234_5678, service code "perf" (0x70657266),
    /// data offset 5 (20 bytes, no options).
    const REQUEST: [u8; 20] = [
        0xbf, 0x68, 0x13, 0x89, 5, 0x00, 0, 0, // ports, doff, ccval/cscov, checksum
        0x01, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x78, // type 0, X=1, seq
        0x70, 0x65, 0x72, 0x66, // service code
    ];

    /// DCCP-Ack with X=0: seq 0x00abcdef, ack 0x00123456, data offset 4 (16 bytes), then 3
    /// bytes of payload that the checksum coverage CsCov=1 leaves out.
    const SHORT_ACK: [u8; 19] = [
        0xbf, 0x68, 0x13, 0x89, 4, 0x31, 0, 0, // ccval 3, cscov 1
        0x06, 0xab, 0xcd, 0xef, // type 3, X=0, seq
        0x00, 0x12, 0x34, 0x56, // reserved, ack
        1, 2, 3,
    ];

    /// DCCP-Reset X=1 with ack 7, reset code 3 (Aborted), data 0xa 0xb 0xc, 2 option bytes
    /// of padding (data offset 8 = 32 bytes).
    fn reset() -> Vec<u8> {
        let mut v = vec![
            0x13, 0x89, 0xbf, 0x68, 8, 0, 0, 0, 0x0f, 0, 0, 0, 0, 0, 0, 9,
        ];
        v.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 7]); // ack subheader
        v.extend_from_slice(&[3, 0xa, 0xb, 0xc]);
        v.extend_from_slice(&[0; 4]); // options: Padding
        v
    }

    #[test]
    fn parse_request() {
        let p = DccpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (49000, 5001));
        assert_eq!((p.data_offset(), p.header_len()), (5, 20));
        assert_eq!(p.packet_type(), DccpType::Request);
        assert!(p.x());
        assert_eq!(p.seq_number(), 0x1234_5678);
        assert_eq!(p.ack_number(), None);
        assert_eq!(p.service_code(), Some(0x7065_7266));
        assert_eq!(p.reset_code(), None);
        assert!(p.options().is_empty() && p.payload().is_empty());
    }

    #[test]
    fn parse_short_ack_and_coverage() {
        let (s, d) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
        let mut v = SHORT_ACK.to_vec();
        let mut p = DccpPacket::new_checked(&mut v[..]).unwrap();
        assert_eq!((p.ccval(), p.cscov()), (3, 1));
        assert_eq!(p.packet_type(), DccpType::Ack);
        assert!(!p.x());
        assert_eq!(p.seq_number(), 0xab_cdef);
        assert_eq!(p.ack_number(), Some(0x12_3456));
        assert_eq!(p.service_code(), None);
        assert_eq!(p.payload(), &[1, 2, 3]);
        assert_eq!(p.checksum_coverage_len(), Some(16));
        p.fill_checksum_v4(s, d).unwrap();
        assert!(p.verify_checksum_v4(s, d));
        v[17] = 0xff; // outside coverage
        let p = DccpPacket::new_checked(&v[..]).unwrap();
        assert!(p.verify_checksum_v4(s, d));
        v[5] = 0x03; // cscov 3: header + 8 bytes > 19
        let mut p = DccpPacket::new_checked(&mut v[..]).unwrap();
        assert_eq!(p.checksum_coverage_len(), None);
        assert!(!p.verify_checksum_v4(s, d));
        assert_eq!(p.fill_checksum_v4(s, d), Err(WireError::BadLength));
    }

    #[test]
    fn parse_reset_v6_checksum() {
        let (s, d): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        let mut v = reset();
        let mut p = DccpPacket::new_checked(&mut v[..]).unwrap();
        assert_eq!(p.packet_type(), DccpType::Reset);
        assert_eq!(p.seq_number(), 9);
        assert_eq!(p.ack_number(), Some(7));
        assert_eq!(p.reset_code(), Some(3));
        assert_eq!(p.reset_data(), Some([0xa, 0xb, 0xc]));
        assert_eq!(p.options(), &[0; 4]);
        p.fill_checksum_v6(&s, &d).unwrap();
        assert!(p.verify_checksum_v6(&s, &d));
        p.set_src_port(1);
        assert!(!p.verify_checksum_v6(&s, &d));
        p.set_dst_port(2);
        assert_eq!((p.src_port(), p.dst_port()), (1, 2));
    }

    #[test]
    fn every_prefix_is_rejected() {
        for pkt in [&REQUEST[..], &SHORT_ACK[..16], &reset()[..]] {
            for n in 0..pkt.len() {
                assert_eq!(
                    DccpPacket::new_checked(&pkt[..n]),
                    Err(WireError::Truncated),
                    "{n}"
                );
            }
            assert!(DccpPacket::new_checked(pkt).is_ok());
        }
    }

    #[test]
    fn malformed() {
        let mut v = REQUEST.to_vec();
        v[4] = 4; // 16 bytes: no room for the service code
        assert_eq!(
            DccpPacket::new_checked(&v[..]),
            Err(WireError::BadHeaderLen)
        );
        v[4] = 6;
        assert_eq!(DccpPacket::new_checked(&v[..]), Err(WireError::Truncated));
        v[4] = 5;
        v[8] = 0x00; // Request with X=0
        assert!(matches!(
            DccpPacket::new_checked(&v[..]),
            Err(WireError::Malformed(_))
        ));
        v[8] = 0x15; // reserved type 10, X=1: parses, no ack
        let p = DccpPacket::new_checked(&v[..]).unwrap();
        assert_eq!(p.packet_type(), DccpType::Unknown(10));
        assert_eq!((p.ack_number(), p.service_code()), (None, None));
        for t in 0..16u8 {
            assert_eq!(u8::from(DccpType::from(t)), t);
        }
    }
}
