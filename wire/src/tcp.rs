//! TCP segment view (RFC 9293) with options (RFC 9293 §3.2, RFC 7323, RFC 2018).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{be16, be32, checksum, clamp, clamp_mut, proto, put16, put32, WireError};

mod field {
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const SEQ: usize = 4;
    pub(super) const ACK: usize = 8;
    pub(super) const OFF_NS: usize = 12;
    pub(super) const FLAGS: usize = 13;
    pub(super) const WINDOW: usize = 14;
    pub(super) const CHECKSUM: usize = 16;
    pub(super) const URGENT: usize = 18;
}

/// Size of a header without options.
pub const HEADER_LEN: usize = 20;

/// TCP flag bits as returned by [`TcpPacket::flags`] (`NS` is the low bit of byte 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpFlags;

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: u16 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u16 = 0x02;
    /// Reset the connection.
    pub const RST: u16 = 0x04;
    /// Push function.
    pub const PSH: u16 = 0x08;
    /// Acknowledgment field significant.
    pub const ACK: u16 = 0x10;
    /// Urgent pointer field significant.
    pub const URG: u16 = 0x20;
    /// ECN-Echo (RFC 3168).
    pub const ECE: u16 = 0x40;
    /// Congestion Window Reduced (RFC 3168).
    pub const CWR: u16 = 0x80;
    /// ECN nonce sum (RFC 3540, historic; AccECN reuses the bit).
    pub const NS: u16 = 0x100;
}

/// A view of a TCP segment. The buffer must be exactly the segment (the IP payload): the
/// checksum covers all of it.
///
/// After [`new_checked`](Self::new_checked) succeeds, no accessor or option iterator panics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps `buffer` without validation.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps `buffer` after checking: at least 20 bytes, data offset >= 5 and the header with
    /// its options inside the buffer.
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
        let hl = self.header_len();
        if hl < HEADER_LEN {
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

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.b(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.b(), field::DST_PORT)
    }

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        be32(self.b(), field::SEQ)
    }

    /// Acknowledgment number (meaningful when ACK is set).
    pub fn ack_number(&self) -> u32 {
        be32(self.b(), field::ACK)
    }

    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[field::OFF_NS] >> 4) * 4
    }

    /// All nine flag bits: see [`TcpFlags`].
    pub fn flags(&self) -> u16 {
        let b = self.b();
        (u16::from(b[field::OFF_NS] & 1) << 8) | u16::from(b[field::FLAGS])
    }

    fn flag(&self, f: u16) -> bool {
        self.flags() & f != 0
    }

    /// FIN flag.
    pub fn fin(&self) -> bool {
        self.flag(TcpFlags::FIN)
    }
    /// SYN flag.
    pub fn syn(&self) -> bool {
        self.flag(TcpFlags::SYN)
    }
    /// RST flag.
    pub fn rst(&self) -> bool {
        self.flag(TcpFlags::RST)
    }
    /// PSH flag.
    pub fn psh(&self) -> bool {
        self.flag(TcpFlags::PSH)
    }
    /// ACK flag.
    pub fn ack(&self) -> bool {
        self.flag(TcpFlags::ACK)
    }
    /// URG flag.
    pub fn urg(&self) -> bool {
        self.flag(TcpFlags::URG)
    }
    /// ECE flag.
    pub fn ece(&self) -> bool {
        self.flag(TcpFlags::ECE)
    }
    /// CWR flag.
    pub fn cwr(&self) -> bool {
        self.flag(TcpFlags::CWR)
    }
    /// NS flag.
    pub fn ns(&self) -> bool {
        self.flag(TcpFlags::NS)
    }

    /// Window field (unscaled).
    pub fn window_len(&self) -> u16 {
        be16(self.b(), field::WINDOW)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.b(), field::CHECKSUM)
    }

    /// Urgent pointer field.
    pub fn urgent_at(&self) -> u16 {
        be16(self.b(), field::URGENT)
    }

    /// Raw option bytes.
    pub fn options(&self) -> &[u8] {
        clamp(self.b(), HEADER_LEN, self.header_len())
    }

    /// Iterates over the options.
    pub fn options_iter(&self) -> TcpOptionIter<'_> {
        TcpOptionIter::new(self.options())
    }

    /// Segment data after the header.
    pub fn payload(&self) -> &[u8] {
        let b = self.b();
        clamp(b, self.header_len(), b.len())
    }

    /// Length of the segment in sequence space: data plus one for each of SYN and FIN.
    pub fn segment_len(&self) -> usize {
        self.payload().len() + usize::from(self.syn()) + usize::from(self.fin())
    }

    fn sum_with(&self, pseudo: u32) -> u16 {
        checksum::fold(checksum::combine(pseudo, checksum::sum(self.b())))
    }

    /// True when the checksum over the IPv4 pseudo-header and the whole buffer is correct.
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let len = self.b().len() as u32;
        self.sum_with(checksum::pseudo_header_v4(src, dst, proto::TCP, len)) == 0
    }

    /// True when the checksum over the IPv6 pseudo-header and the whole buffer is correct.
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let len = self.b().len() as u32;
        self.sum_with(checksum::pseudo_header_v6(src, dst, proto::TCP, len)) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
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
    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, v: u32) {
        put32(self.bm(), field::SEQ, v);
    }
    /// Sets the acknowledgment number.
    pub fn set_ack_number(&mut self, v: u32) {
        put32(self.bm(), field::ACK, v);
    }
    /// Sets the window field.
    pub fn set_window_len(&mut self, v: u16) {
        put16(self.bm(), field::WINDOW, v);
    }
    /// Sets the urgent pointer.
    pub fn set_urgent_at(&mut self, v: u16) {
        put16(self.bm(), field::URGENT, v);
    }
    /// Sets all nine flag bits (bits above NS are ignored).
    pub fn set_flags(&mut self, flags: u16) {
        let b = self.bm();
        b[field::OFF_NS] = (b[field::OFF_NS] & 0xfe) | ((flags >> 8) as u8 & 1);
        b[field::FLAGS] = flags as u8;
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.bm(), field::CHECKSUM, v);
    }

    /// Mutable option bytes (e.g. to clamp an MSS in place).
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        clamp_mut(self.bm(), HEADER_LEN, hl)
    }

    /// Mutable segment data.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        clamp_mut(self.bm(), hl, usize::MAX)
    }

    /// Computes and stores the checksum with the IPv4 pseudo-header.
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.b().len() as u32;
        let c = self.sum_with(checksum::pseudo_header_v4(src, dst, proto::TCP, len));
        self.set_checksum(c);
    }

    /// Computes and stores the checksum with the IPv6 pseudo-header.
    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let len = self.b().len() as u32;
        let c = self.sum_with(checksum::pseudo_header_v6(src, dst, proto::TCP, len));
        self.set_checksum(c);
    }
}

/// Option kinds this module decodes.
mod kind {
    pub(super) const EOL: u8 = 0;
    pub(super) const NOP: u8 = 1;
    pub(super) const MSS: u8 = 2;
    pub(super) const WSCALE: u8 = 3;
    pub(super) const SACK_PERM: u8 = 4;
    pub(super) const SACK: u8 = 5;
    pub(super) const TIMESTAMPS: u8 = 8;
}

/// One TCP option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// Kind 0: end of the option list (the iterator stops after it).
    EndOfList,
    /// Kind 1: padding.
    NoOp,
    /// Kind 2: maximum segment size.
    Mss(u16),
    /// Kind 3: window scale shift count (RFC 7323 §2); values above 14 are passed through.
    WindowScale(u8),
    /// Kind 4: SACK permitted (RFC 2018).
    SackPermitted,
    /// Kind 5: 1 to 4 SACK blocks (RFC 2018).
    Sack(SackBlocks<'a>),
    /// Kind 8: timestamps (RFC 7323 §3).
    Timestamps {
        /// TSval.
        tsval: u32,
        /// TSecr.
        tsecr: u32,
    },
    /// Any other kind with a well-formed length; `data` excludes kind and length bytes.
    Unknown {
        /// Option kind.
        kind: u8,
        /// Option data.
        data: &'a [u8],
    },
}

/// The blocks of a SACK option: an iterator of `(left_edge, right_edge)` pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SackBlocks<'a> {
    // Invariant: length is a multiple of 8.
    data: &'a [u8],
}

impl SackBlocks<'_> {
    /// Number of blocks not yet yielded.
    pub fn len(&self) -> usize {
        self.data.len() / 8
    }

    /// True when no block remains.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

impl Iterator for SackBlocks<'_> {
    type Item = (u32, u32);

    fn next(&mut self) -> Option<(u32, u32)> {
        let (block, rest) = self.data.split_first_chunk::<8>()?;
        self.data = rest;
        Some((be32(block, 0), be32(block, 4)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), Some(self.len()))
    }
}

impl ExactSizeIterator for SackBlocks<'_> {}

/// Iterator over TCP options yielding `Result<TcpOption, WireError>`. A malformed option
/// (missing or impossible length, wrong length for a known kind) yields
/// `Err(WireError::BadOption)` and ends the iteration; so does End of Option List, after
/// yielding it.
#[derive(Debug, Clone)]
pub struct TcpOptionIter<'a> {
    data: &'a [u8],
}

impl<'a> TcpOptionIter<'a> {
    /// Iterates over raw option bytes (e.g. [`TcpPacket::options`]).
    pub fn new(data: &'a [u8]) -> Self {
        TcpOptionIter { data }
    }

    fn parse(&mut self) -> Result<TcpOption<'a>, WireError> {
        let data = self.data;
        match data[0] {
            kind::EOL => {
                self.data = &[];
                return Ok(TcpOption::EndOfList);
            }
            kind::NOP => {
                self.data = &data[1..];
                return Ok(TcpOption::NoOp);
            }
            _ => {}
        }
        let k = data[0];
        let len = usize::from(*data.get(1).ok_or(WireError::BadOption)?);
        if len < 2 || len > data.len() {
            return Err(WireError::BadOption);
        }
        let body = &data[2..len];
        let opt = match (k, len) {
            (kind::MSS, 4) => TcpOption::Mss(be16(body, 0)),
            (kind::WSCALE, 3) => TcpOption::WindowScale(body[0]),
            (kind::SACK_PERM, 2) => TcpOption::SackPermitted,
            (kind::SACK, _) if (len - 2) % 8 == 0 && (1..=4).contains(&((len - 2) / 8)) => {
                TcpOption::Sack(SackBlocks { data: body })
            }
            (kind::TIMESTAMPS, 10) => TcpOption::Timestamps {
                tsval: be32(body, 0),
                tsecr: be32(body, 4),
            },
            (kind::MSS | kind::WSCALE | kind::SACK_PERM | kind::SACK | kind::TIMESTAMPS, _) => {
                return Err(WireError::BadOption)
            }
            _ => TcpOption::Unknown {
                kind: k,
                data: body,
            },
        };
        self.data = &data[len..];
        Ok(opt)
    }
}

impl<'a> Iterator for TcpOptionIter<'a> {
    type Item = Result<TcpOption<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.data.is_empty() {
            return None;
        }
        let r = self.parse();
        if r.is_err() {
            self.data = &[];
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SYN 192.0.2.1:49152 -> 198.51.100.1:80 as Linux sends it: MSS 1460, SACK permitted,
    /// timestamps, NOP, window scale 7. Checksum filled in by the test.
    pub(crate) const SYN: [u8; 40] = [
        0xc0, 0x00, 0x00, 0x50, // ports
        0x12, 0x34, 0x56, 0x78, // seq
        0x00, 0x00, 0x00, 0x00, // ack
        0xa0, 0x02, 0xfa, 0xf0, // data offset 10, SYN, window 64240
        0x00, 0x00, 0x00, 0x00, // checksum, urgent
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
        0x04, 0x02, // SACK permitted
        0x08, 0x0a, 0x00, 0x01, 0x02, 0x03, 0x00, 0x00, 0x00, 0x00, // TS 66051, 0
        0x01, // NOP
        0x03, 0x03, 0x07, // window scale 7
    ];

    fn addrs() -> (Ipv4Addr, Ipv4Addr) {
        (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(198, 51, 100, 1))
    }

    #[test]
    fn parse_syn() {
        let (s, d) = addrs();
        let mut v = SYN.to_vec();
        let mut p = TcpPacket::new_checked(&mut v[..]).unwrap();
        p.fill_checksum_v4(s, d);
        assert!(p.verify_checksum_v4(s, d));
        assert!(!p.verify_checksum_v4(d, d));
        assert_eq!((p.src_port(), p.dst_port()), (49152, 80));
        assert_eq!((p.seq_number(), p.ack_number()), (0x1234_5678, 0));
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), TcpFlags::SYN);
        assert!(p.syn() && !p.ack() && !p.fin() && !p.rst() && !p.psh());
        assert!(!p.urg() && !p.ece() && !p.cwr() && !p.ns());
        assert_eq!(p.window_len(), 64240);
        assert_eq!(p.urgent_at(), 0);
        assert!(p.payload().is_empty());
        assert_eq!(p.segment_len(), 1);
        let opts: Vec<_> = p.options_iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(
            opts,
            [
                TcpOption::Mss(1460),
                TcpOption::SackPermitted,
                TcpOption::Timestamps {
                    tsval: 0x0001_0203,
                    tsecr: 0
                },
                TcpOption::NoOp,
                TcpOption::WindowScale(7),
            ]
        );
    }

    #[test]
    fn checksum_v6_and_incremental_port_rewrite() {
        let s: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut v = SYN.to_vec();
        v.extend_from_slice(b"hello"); // odd length exercises padding
        let mut p = TcpPacket::new_checked(&mut v[..]).unwrap();
        p.fill_checksum_v6(&s, &d);
        assert!(p.verify_checksum_v6(&s, &d));
        let c = checksum::update16(p.checksum(), p.src_port(), 40000);
        p.set_src_port(40000);
        p.set_checksum(c);
        assert!(p.verify_checksum_v6(&s, &d));
        assert_eq!(p.payload(), b"hello");
    }

    #[test]
    fn every_prefix_is_rejected() {
        for n in 0..SYN.len() {
            assert_eq!(
                TcpPacket::new_checked(&SYN[..n]),
                Err(WireError::Truncated),
                "prefix {n}"
            );
        }
    }

    #[test]
    fn bad_data_offset() {
        let mut v = SYN.to_vec();
        v[12] = 0x40;
        assert_eq!(TcpPacket::new_checked(&v[..]), Err(WireError::BadHeaderLen));
        v[12] = 0xf0; // 60 bytes in a 40-byte buffer
        assert_eq!(TcpPacket::new_checked(&v[..]), Err(WireError::Truncated));
    }

    #[test]
    fn malformed_options() {
        let cases: [(&[u8], usize); 9] = [
            (&[2], 0),                                   // kind without length
            (&[2, 4, 5], 0),                             // runs past the end
            (&[2, 3, 5], 0),                             // MSS with length 3
            (&[3, 2], 0),                                // window scale without shift
            (&[1, 8, 8, 0, 0], 1),                       // timestamps too short, after a NOP
            (&[5, 2], 0),                                // SACK with no block
            (&[5, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0), // SACK with half a block
            (&[30, 1], 0),                               // length below 2
            (&[30, 0, 1, 1], 0),                         // length 0 would loop forever
        ];
        for (bytes, ok_before) in cases {
            let items: Vec<_> = TcpOptionIter::new(bytes).collect();
            assert_eq!(items.len(), ok_before + 1, "{bytes:?}");
            assert!(items[..ok_before].iter().all(Result::is_ok));
            assert_eq!(items[ok_before], Err(WireError::BadOption), "{bytes:?}");
        }
    }

    #[test]
    fn sack_unknown_and_eol() {
        let opts = [
            1, 1, 5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0xfd, 4, 0xab, 0xcd, 0,
            0xff, 0xff,
        ];
        let mut it = TcpOptionIter::new(&opts);
        assert_eq!(it.next(), Some(Ok(TcpOption::NoOp)));
        assert_eq!(it.next(), Some(Ok(TcpOption::NoOp)));
        match it.next() {
            Some(Ok(TcpOption::Sack(blocks))) => {
                assert_eq!(blocks.len(), 2);
                assert_eq!(blocks.collect::<Vec<_>>(), [(1, 2), (3, 4)]);
            }
            other => panic!("expected SACK, got {other:?}"),
        }
        assert_eq!(
            it.next(),
            Some(Ok(TcpOption::Unknown {
                kind: 0xfd,
                data: &[0xab, 0xcd]
            }))
        );
        assert_eq!(it.next(), Some(Ok(TcpOption::EndOfList)));
        assert_eq!(it.next(), None); // bytes after EOL are padding
    }

    proptest::proptest! {
        // NAT rewrites an address and a port and patches the checksum incrementally; that
        // must equal recomputing it from scratch.
        #[test]
        fn nat_incremental_equals_full(payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
                                       new_ip in proptest::prelude::any::<[u8; 4]>(),
                                       new_port in proptest::prelude::any::<u16>(),
                                       rewrite_dst in proptest::prelude::any::<bool>()) {
            let (s, d) = addrs();
            let mut v = SYN.to_vec();
            v.extend_from_slice(&payload);
            let mut p = TcpPacket::new_checked(&mut v[..]).unwrap();
            p.fill_checksum_v4(s, d);
            let new_ip = Ipv4Addr::from(new_ip);
            let (old_ip, old_port) = if rewrite_dst { (d, p.dst_port()) } else { (s, p.src_port()) };
            let mut c = checksum::update_bytes(p.checksum(), &old_ip.octets(), &new_ip.octets());
            c = checksum::update16(c, old_port, new_port);
            let (s2, d2) = if rewrite_dst {
                p.set_dst_port(new_port);
                (s, new_ip)
            } else {
                p.set_src_port(new_port);
                (new_ip, d)
            };
            p.set_checksum(c);
            proptest::prop_assert!(p.verify_checksum_v4(s2, d2));
            p.fill_checksum_v4(s2, d2);
            proptest::prop_assert_eq!(p.checksum(), c);
        }
    }

    #[test]
    fn setters() {
        let (s, d) = addrs();
        let mut v = SYN.to_vec();
        v.extend_from_slice(&[1, 2, 3]);
        let mut p = TcpPacket::new_checked(&mut v[..]).unwrap();
        p.set_dst_port(8080);
        p.set_seq_number(1);
        p.set_ack_number(2);
        p.set_window_len(3);
        p.set_urgent_at(4);
        p.set_flags(TcpFlags::ACK | TcpFlags::PSH | TcpFlags::NS);
        assert_eq!((p.dst_port(), p.seq_number(), p.ack_number()), (8080, 1, 2));
        assert_eq!((p.window_len(), p.urgent_at(), p.header_len()), (3, 4, 40));
        assert!(p.ack() && p.psh() && p.ns() && !p.syn());
        p.options_mut()[2..4].copy_from_slice(&1200u16.to_be_bytes());
        assert_eq!(p.options_iter().next(), Some(Ok(TcpOption::Mss(1200))));
        p.payload_mut()[0] = 9;
        assert_eq!(p.payload(), &[9, 2, 3]);
        p.fill_checksum_v4(s, d);
        assert!(p.verify_checksum_v4(s, d));
        p.set_checksum(p.checksum() ^ 1);
        assert!(!p.verify_checksum_v4(s, d));
    }
}
