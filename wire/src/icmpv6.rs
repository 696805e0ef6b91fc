//! ICMPv6 message view (RFC 4443) with Neighbor Discovery helpers (RFC 4861).

use std::net::Ipv6Addr;

use super::{be16, be32, checksum, clamp, clamp_mut, proto, put16, put32, WireError};

mod field {
    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: usize = 2;
    pub(super) const REST: usize = 4;
    pub(super) const IDENT: usize = 4;
    pub(super) const SEQ: usize = 6;
    pub(super) const ND_TARGET: usize = 8;
}

/// Size of the header (type, code, checksum, 4 message-specific bytes).
pub const HEADER_LEN: usize = 8;

/// ICMPv6 message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message;

impl Message {
    /// Destination unreachable (error).
    pub const DEST_UNREACHABLE: u8 = 1;
    /// Packet too big (error; bytes 4-7 carry the MTU).
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time exceeded (error).
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter problem (error; bytes 4-7 carry the pointer).
    pub const PARAM_PROBLEM: u8 = 4;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Multicast listener query (RFC 2710).
    pub const MLD_QUERY: u8 = 130;
    /// Multicast listener report (RFC 2710).
    pub const MLD_REPORT: u8 = 131;
    /// Multicast listener done (RFC 2710).
    pub const MLD_DONE: u8 = 132;
    /// Router solicitation.
    pub const ROUTER_SOLICIT: u8 = 133;
    /// Router advertisement.
    pub const ROUTER_ADVERT: u8 = 134;
    /// Neighbor solicitation.
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbor advertisement.
    pub const NEIGHBOR_ADVERT: u8 = 136;
    /// Redirect.
    pub const REDIRECT: u8 = 137;
    /// MLDv2 report (RFC 3810).
    pub const MLD2_REPORT: u8 = 143;
}

/// Neighbor Advertisement flag bits in byte 4.
const NA_ROUTER: u8 = 0x80;
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;

/// A view of an ICMPv6 message. The buffer must be exactly the message (the IPv6 upper-layer
/// payload): the checksum covers all of it.
///
/// After [`new_checked`](Self::new_checked) succeeds, no accessor or iterator panics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

/// Offset of the first ND option for the ND message types; `None` for other types.
fn nd_options_offset(msg_type: u8) -> Option<usize> {
    match msg_type {
        Message::ROUTER_SOLICIT => Some(8),
        Message::ROUTER_ADVERT => Some(16),
        Message::NEIGHBOR_SOLICIT | Message::NEIGHBOR_ADVERT => Some(24),
        Message::REDIRECT => Some(40),
        _ => None,
    }
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Wraps `buffer` without validation.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }

    /// Wraps `buffer` after checking it holds the 8-byte header and, for Neighbor Discovery
    /// messages (types 133-137), the fixed part of that message (RFC 4861 §6.1, §7.1, §8.1
    /// require discarding shorter ones).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        let len = p.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if nd_options_offset(p.msg_type()).is_some_and(|min| len < min) {
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

    /// Message type (see [`Message`]).
    pub fn msg_type(&self) -> u8 {
        self.b()[field::TYPE]
    }

    /// Message code.
    pub fn code(&self) -> u8 {
        self.b()[field::CODE]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.b(), field::CHECKSUM)
    }

    /// Echo identifier (bytes 4-5).
    pub fn echo_ident(&self) -> u16 {
        be16(self.b(), field::IDENT)
    }

    /// Echo sequence number (bytes 6-7).
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.b(), field::SEQ)
    }

    /// Bytes 4-7 (MTU of Packet Too Big, pointer of Parameter Problem, ND flags...).
    pub fn rest_of_header(&self) -> u32 {
        be32(self.b(), field::REST)
    }

    /// Bytes after the 8-byte header: echo data, or for errors the quoted packet.
    pub fn data(&self) -> &[u8] {
        let b = self.b();
        clamp(b, HEADER_LEN, b.len())
    }

    /// True for error messages (types below 128, RFC 4443 §2.1).
    pub fn is_error(&self) -> bool {
        self.msg_type() < 128
    }

    /// True for an echo request.
    pub fn is_echo(&self) -> bool {
        self.msg_type() == Message::ECHO_REQUEST
    }

    /// True for an echo reply.
    pub fn is_echo_reply(&self) -> bool {
        self.msg_type() == Message::ECHO_REPLY
    }

    fn sum_with(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> u16 {
        let b = self.b();
        let ph = checksum::pseudo_header_v6(src, dst, proto::ICMPV6, b.len() as u32);
        checksum::fold(checksum::combine(ph, checksum::sum(b)))
    }

    /// True when the checksum (with the IPv6 pseudo-header) is correct.
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        self.sum_with(src, dst) == 0
    }

    /// Target address of a Neighbor Solicitation (type 135). Reads bytes 8-23 whatever the
    /// type; when the message is shorter (possible only for non-ND types) returns `::`.
    pub fn ns_target(&self) -> Ipv6Addr {
        self.nd_target()
    }

    /// Target address of a Neighbor Advertisement (type 136); same rules as
    /// [`ns_target`](Self::ns_target).
    pub fn na_target(&self) -> Ipv6Addr {
        self.nd_target()
    }

    fn nd_target(&self) -> Ipv6Addr {
        match self.b().get(field::ND_TARGET..field::ND_TARGET + 16) {
            Some(s) => {
                let mut o = [0u8; 16];
                o.copy_from_slice(s);
                Ipv6Addr::from(o)
            }
            None => Ipv6Addr::UNSPECIFIED,
        }
    }

    /// Neighbor Advertisement R flag: the sender is a router.
    pub fn na_router(&self) -> bool {
        self.b()[field::REST] & NA_ROUTER != 0
    }

    /// Neighbor Advertisement S flag: sent in response to a solicitation.
    pub fn na_solicited(&self) -> bool {
        self.b()[field::REST] & NA_SOLICITED != 0
    }

    /// Neighbor Advertisement O flag: override an existing cache entry.
    pub fn na_override(&self) -> bool {
        self.b()[field::REST] & NA_OVERRIDE != 0
    }

    /// The ND options of an ND message (types 133-137); empty for other types.
    pub fn nd_options(&self) -> NdOptionIter<'_> {
        let b = self.b();
        let data = match nd_options_offset(self.msg_type()) {
            Some(off) => clamp(b, off, b.len()),
            None => &[],
        };
        NdOptionIter::new(data)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets the message type.
    pub fn set_msg_type(&mut self, v: u8) {
        self.bm()[field::TYPE] = v;
    }
    /// Sets the code.
    pub fn set_code(&mut self, v: u8) {
        self.bm()[field::CODE] = v;
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.bm(), field::CHECKSUM, v);
    }
    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, v: u16) {
        put16(self.bm(), field::IDENT, v);
    }
    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, v: u16) {
        put16(self.bm(), field::SEQ, v);
    }
    /// Sets bytes 4-7.
    pub fn set_rest_of_header(&mut self, v: u32) {
        put32(self.bm(), field::REST, v);
    }
    /// Sets the Neighbor Advertisement R, S and O flags (clears the reserved bits).
    pub fn set_na_flags(&mut self, router: bool, solicited: bool, override_: bool) {
        let mut f = 0;
        if router {
            f |= NA_ROUTER;
        }
        if solicited {
            f |= NA_SOLICITED;
        }
        if override_ {
            f |= NA_OVERRIDE;
        }
        self.set_rest_of_header(u32::from(f) << 24);
    }
    /// Sets the ND target address (bytes 8-23); does nothing if the message is too short.
    pub fn set_nd_target(&mut self, a: &Ipv6Addr) {
        if let Some(s) = self.bm().get_mut(field::ND_TARGET..field::ND_TARGET + 16) {
            s.copy_from_slice(&a.octets());
        }
    }
    /// Mutable bytes after the header.
    pub fn data_mut(&mut self) -> &mut [u8] {
        clamp_mut(self.bm(), HEADER_LEN, usize::MAX)
    }
    /// Computes and stores the checksum with the IPv6 pseudo-header.
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let c = self.sum_with(src, dst);
        self.set_checksum(c);
    }
}

/// Writes an echo message (`msg_type` [`Message::ECHO_REQUEST`] or [`Message::ECHO_REPLY`])
/// with its checksum for `src` -> `dst` into `buf`; returns its length. `Truncated` if `buf`
/// is too small.
pub fn emit_echo(
    buf: &mut [u8],
    msg_type: u8,
    ident: u16,
    seq_no: u16,
    data: &[u8],
    src: &Ipv6Addr,
    dst: &Ipv6Addr,
) -> Result<usize, WireError> {
    let len = HEADER_LEN + data.len();
    let msg = buf.get_mut(..len).ok_or(WireError::Truncated)?;
    let mut p = Icmpv6Packet::new_unchecked(msg);
    p.set_msg_type(msg_type);
    p.set_code(0);
    p.set_echo_ident(ident);
    p.set_echo_seq_no(seq_no);
    p.data_mut().copy_from_slice(data);
    p.fill_checksum(src, dst);
    Ok(len)
}

/// Writes an error message (`msg_type` below 128, `rest` for bytes 4-7: the MTU of Packet Too
/// Big, the pointer of Parameter Problem) quoting as much of `quoted` (the offending packet
/// from its IPv6 header on) as fits in `buf`; returns the message length. RFC 4443 §2.4(c):
/// size `buf` so the whole IPv6 packet stays within the minimum MTU, i.e. 1280 - 40 bytes.
/// `Truncated` if `buf` cannot hold the 8-byte header.
pub fn emit_error(
    buf: &mut [u8],
    msg_type: u8,
    code: u8,
    rest: u32,
    quoted: &[u8],
    src: &Ipv6Addr,
    dst: &Ipv6Addr,
) -> Result<usize, WireError> {
    if buf.len() < HEADER_LEN {
        return Err(WireError::Truncated);
    }
    let q = quoted.len().min(buf.len() - HEADER_LEN);
    let len = HEADER_LEN + q;
    let mut p = Icmpv6Packet::new_unchecked(&mut buf[..len]);
    p.set_msg_type(msg_type);
    p.set_code(code);
    p.set_rest_of_header(rest);
    p.data_mut().copy_from_slice(&quoted[..q]);
    p.fill_checksum(src, dst);
    Ok(len)
}

/// ND option types this module names.
pub mod nd_option {
    /// Source link-layer address.
    pub const SOURCE_LL_ADDR: u8 = 1;
    /// Target link-layer address.
    pub const TARGET_LL_ADDR: u8 = 2;
    /// Prefix information.
    pub const PREFIX_INFO: u8 = 3;
    /// Redirected header.
    pub const REDIRECTED_HEADER: u8 = 4;
    /// MTU.
    pub const MTU: u8 = 5;
}

/// One Neighbor Discovery option (RFC 4861 §4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdOption<'a> {
    /// Type 1: the sender's link-layer address (6 bytes on Ethernet, followed by padding
    /// for other link types: the slice is the whole option body).
    SourceLinkLayerAddr(&'a [u8]),
    /// Type 2: the target's link-layer address.
    TargetLinkLayerAddr(&'a [u8]),
    /// Any other type; `data` excludes the type and length bytes.
    Unknown {
        /// Option type.
        kind: u8,
        /// Option body.
        data: &'a [u8],
    },
}

impl NdOption<'_> {
    /// The 6-byte Ethernet address of a link-layer address option, if it has one.
    pub fn ethernet_addr(&self) -> Option<[u8; 6]> {
        match self {
            NdOption::SourceLinkLayerAddr(d) | NdOption::TargetLinkLayerAddr(d) => {
                d.first_chunk::<6>().copied()
            }
            NdOption::Unknown { .. } => None,
        }
    }
}

/// Iterator over ND options yielding `Result<NdOption, WireError>`. An option with length 0
/// (RFC 4861 §4.6: must be discarded) or running past the message yields
/// `Err(WireError::BadOption)` and ends the iteration.
#[derive(Debug, Clone)]
pub struct NdOptionIter<'a> {
    data: &'a [u8],
}

impl<'a> NdOptionIter<'a> {
    /// Iterates over raw option bytes.
    pub fn new(data: &'a [u8]) -> Self {
        NdOptionIter { data }
    }
}

impl<'a> Iterator for NdOptionIter<'a> {
    type Item = Result<NdOption<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        let data = self.data;
        if data.is_empty() {
            return None;
        }
        let len = data.get(1).map_or(0, |&l| usize::from(l) * 8);
        if len == 0 || len > data.len() {
            self.data = &[];
            return Some(Err(WireError::BadOption));
        }
        self.data = &data[len..];
        let body = &data[2..len];
        Some(Ok(match data[0] {
            nd_option::SOURCE_LL_ADDR => NdOption::SourceLinkLayerAddr(body),
            nd_option::TARGET_LL_ADDR => NdOption::TargetLinkLayerAddr(body),
            kind => NdOption::Unknown { kind, data: body },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> (Ipv6Addr, Ipv6Addr) {
        (
            "fe80::1".parse().unwrap(),
            "ff02::1:ff00:2".parse().unwrap(),
        )
    }

    /// Neighbor Solicitation for 2001:db8::2 with a Source Link-Layer Address option.
    fn ns() -> Vec<u8> {
        let mut v = vec![135, 0, 0, 0, 0, 0, 0, 0];
        v.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        v.extend_from_slice(&[1, 1, 0x02, 0x00, 0x5e, 0x00, 0x53, 0x01]);
        v
    }

    #[test]
    fn neighbor_solicitation() {
        let (s, d) = addrs();
        let mut v = ns();
        let mut p = Icmpv6Packet::new_checked(&mut v[..]).unwrap();
        p.fill_checksum(&s, &d);
        assert!(p.verify_checksum(&s, &d));
        // Swapping the addresses keeps the sum; a different address does not.
        assert!(p.verify_checksum(&d, &s));
        assert!(!p.verify_checksum(&s, &s));
        assert!(!p.is_error());
        assert_eq!(p.ns_target(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        let opts: Vec<_> = p.nd_options().collect();
        assert_eq!(opts.len(), 1);
        let o = opts[0].unwrap();
        assert_eq!(
            o.ethernet_addr(),
            Some([0x02, 0x00, 0x5e, 0x00, 0x53, 0x01])
        );
        assert!(matches!(o, NdOption::SourceLinkLayerAddr(_)));
    }

    #[test]
    fn neighbor_advertisement() {
        let mut v = ns();
        v[0] = Message::NEIGHBOR_ADVERT;
        v[24] = nd_option::TARGET_LL_ADDR;
        let mut p = Icmpv6Packet::new_checked(&mut v[..]).unwrap();
        p.set_na_flags(true, true, false);
        assert!(p.na_router() && p.na_solicited() && !p.na_override());
        assert_eq!(p.rest_of_header(), 0xc000_0000);
        let t: Ipv6Addr = "2001:db8::99".parse().unwrap();
        p.set_nd_target(&t);
        assert_eq!(p.na_target(), t);
        match p.nd_options().next() {
            Some(Ok(NdOption::TargetLinkLayerAddr(d))) => assert_eq!(d.len(), 6),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nd_fixed_part_required() {
        let v = ns();
        for n in 0..24 {
            assert_eq!(
                Icmpv6Packet::new_checked(&v[..n]),
                Err(WireError::Truncated),
                "{n}"
            );
        }
        assert!(Icmpv6Packet::new_checked(&v[..24]).is_ok());
        let mut ra = vec![134, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            Icmpv6Packet::new_checked(&ra[..]),
            Err(WireError::Truncated)
        );
        ra.push(0);
        assert!(Icmpv6Packet::new_checked(&ra[..]).is_ok());
        // A short non-ND message is fine and its ND getters do not panic.
        let echo = [128, 0, 0, 0, 0, 1, 0, 2];
        let p = Icmpv6Packet::new_checked(&echo[..]).unwrap();
        assert_eq!(p.ns_target(), Ipv6Addr::UNSPECIFIED);
        assert_eq!(p.nd_options().count(), 0);
    }

    #[test]
    fn malformed_nd_options() {
        for bad in [
            &[1u8, 0, 0, 0, 0, 0, 0, 0][..],
            &[1, 2, 0, 0, 0, 0, 0, 0],
            &[1],
        ] {
            let items: Vec<_> = NdOptionIter::new(bad).collect();
            assert_eq!(items, [Err(WireError::BadOption)], "{bad:?}");
        }
        let mut two = vec![3, 1, 0, 0, 0, 0, 0, 0];
        two.extend_from_slice(&[5, 0]);
        let items: Vec<_> = NdOptionIter::new(&two).collect();
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[0],
            Ok(NdOption::Unknown {
                kind: 3,
                data: &[0; 6]
            })
        );
        assert_eq!(items[1], Err(WireError::BadOption));
        assert_eq!(items[0].unwrap().ethernet_addr(), None);
    }

    #[test]
    fn builders() {
        let (s, d): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        let mut buf = [0u8; 48];
        let n = emit_echo(&mut buf, Message::ECHO_REPLY, 5, 6, b"abc", &s, &d).unwrap();
        let p = Icmpv6Packet::new_checked(&buf[..n]).unwrap();
        assert!(p.is_echo_reply() && p.verify_checksum(&s, &d));
        assert_eq!(
            (p.echo_ident(), p.echo_seq_no(), p.data()),
            (5, 6, &b"abc"[..])
        );
        assert_eq!(
            emit_echo(&mut buf[..10], 128, 0, 0, b"abc", &s, &d),
            Err(WireError::Truncated)
        );
        let quoted = [0x60u8; 100];
        let n = emit_error(&mut buf, Message::PACKET_TOO_BIG, 0, 1280, &quoted, &s, &d).unwrap();
        assert_eq!(n, 48);
        let p = Icmpv6Packet::new_checked(&buf[..n]).unwrap();
        assert!(p.is_error() && p.verify_checksum(&s, &d));
        assert_eq!((p.rest_of_header(), p.data()), (1280, &quoted[..40]));
        assert_eq!(
            emit_error(&mut buf[..7], 1, 0, 0, &quoted, &s, &d),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn echo_and_errors() {
        let (s, d) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        let mut v = vec![128, 0, 0, 0, 0x12, 0x34, 0, 7, b'h', b'i'];
        let mut p = Icmpv6Packet::new_checked(&mut v[..]).unwrap();
        p.fill_checksum(&s, &d);
        assert!(p.is_echo() && !p.is_echo_reply() && !p.is_error());
        assert_eq!(
            (p.echo_ident(), p.echo_seq_no(), p.data()),
            (0x1234, 7, &b"hi"[..])
        );
        let c = checksum::update16(p.checksum(), 128 << 8, 129 << 8);
        p.set_msg_type(Message::ECHO_REPLY);
        p.set_checksum(c);
        assert!(p.verify_checksum(&s, &d) && p.is_echo_reply());
        p.set_echo_ident(1);
        p.set_echo_seq_no(2);
        p.set_code(3);
        p.data_mut()[0] = b'H';
        assert!(!p.verify_checksum(&s, &d));
        assert_eq!(
            (p.echo_ident(), p.echo_seq_no(), p.code(), p.data()[0]),
            (1, 2, 3, b'H')
        );
        for t in [1, 2, 3, 4, 127] {
            p.set_msg_type(t);
            assert!(p.is_error());
        }
        p.set_msg_type(Message::PACKET_TOO_BIG);
        p.set_rest_of_header(1280);
        assert_eq!(p.rest_of_header(), 1280);
    }
}
