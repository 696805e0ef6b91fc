//! IPv6 header view and extension-header walk (RFC 8200).

use std::net::Ipv6Addr;

use super::{be16, be32, clamp, clamp_mut, proto, put16, put32, WireError};

mod field {
    pub(super) const VER_TC_FLOW: usize = 0;
    pub(super) const PAYLOAD_LEN: usize = 4;
    pub(super) const NEXT_HEADER: usize = 6;
    pub(super) const HOP_LIMIT: usize = 7;
    pub(super) const SRC: usize = 8;
    pub(super) const DST: usize = 24;
}

/// Size of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;

/// Hop-by-Hop option type of the Jumbo Payload option (RFC 2675).
const OPT_JUMBO: u8 = 0xc2;

/// A view of an IPv6 packet: fixed header and payload (extension headers included).
///
/// After [`new_checked`](Self::new_checked) succeeds, no accessor panics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps `buffer` without validation; getters may panic on short input.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps `buffer` after checking: at least 40 bytes, version 6, `40 + payload_len <=
    /// buffer.len()`. Jumbograms (payload length 0 with a Hop-by-Hop Jumbo Payload option) are
    /// refused with `Malformed("jumbogram")`: they cannot occur on a link with a 16-bit MTU.
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
        if self.version() != 6 {
            return Err(WireError::BadVersion);
        }
        let pl = usize::from(self.payload_len());
        if HEADER_LEN + pl > b.len() {
            return Err(WireError::Truncated);
        }
        if pl == 0 && self.next_header() == proto::HOPOPT && has_jumbo_option(&b[HEADER_LEN..]) {
            return Err(WireError::Malformed("jumbogram"));
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

    /// Version nibble (6 for a checked packet).
    pub fn version(&self) -> u8 {
        self.b()[field::VER_TC_FLOW] >> 4
    }

    /// Traffic class (DSCP and ECN).
    pub fn traffic_class(&self) -> u8 {
        let b = self.b();
        (b[0] << 4) | (b[1] >> 4)
    }

    /// 20-bit flow label.
    pub fn flow_label(&self) -> u32 {
        be32(self.b(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    /// Payload length field: bytes after the fixed header, extension headers included.
    pub fn payload_len(&self) -> u16 {
        be16(self.b(), field::PAYLOAD_LEN)
    }

    /// Next header: the first extension header or the upper-layer protocol.
    pub fn next_header(&self) -> u8 {
        self.b()[field::NEXT_HEADER]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.b()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        addr_at(self.b(), field::SRC)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        addr_at(self.b(), field::DST)
    }

    /// Everything after the fixed header, bounded by the payload length field.
    pub fn payload(&self) -> &[u8] {
        clamp(
            self.b(),
            HEADER_LEN,
            HEADER_LEN + usize::from(self.payload_len()),
        )
    }

    /// Walks the extension headers of this packet (see [`walk_ext_headers`]).
    pub fn ext_headers(&self) -> Result<ExtHeaderWalk, WireError> {
        walk_ext_headers(self.next_header(), self.payload())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, v: u8) {
        self.bm()[field::HOP_LIMIT] = v;
    }

    /// Sets the next header field.
    pub fn set_next_header(&mut self, v: u8) {
        self.bm()[field::NEXT_HEADER] = v;
    }

    /// Sets the payload length. Accessors clamp to the buffer, so this cannot cause a panic.
    pub fn set_payload_len(&mut self, v: u16) {
        put16(self.bm(), field::PAYLOAD_LEN, v);
    }

    /// Sets the traffic class, keeping version and flow label.
    pub fn set_traffic_class(&mut self, tc: u8) {
        let b = self.bm();
        b[0] = (b[0] & 0xf0) | (tc >> 4);
        b[1] = (b[1] & 0x0f) | (tc << 4);
    }

    /// Sets the 20-bit flow label (higher bits ignored).
    pub fn set_flow_label(&mut self, label: u32) {
        let b = self.bm();
        let v = (be32(b, 0) & 0xfff0_0000) | (label & 0x000f_ffff);
        put32(b, 0, v);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: &Ipv6Addr) {
        self.bm()[field::SRC..field::SRC + 16].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: &Ipv6Addr) {
        self.bm()[field::DST..field::DST + 16].copy_from_slice(&a.octets());
    }

    /// Mutable payload (bounded like [`payload`](Ipv6Packet::payload)).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        clamp_mut(self.bm(), HEADER_LEN, end)
    }
}

fn addr_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(o)
}

/// Scans the options of a Hop-by-Hop header at the start of `hbh` for a Jumbo Payload option.
/// A truncated or malformed header simply has no jumbo option: the walk reports it later.
fn has_jumbo_option(hbh: &[u8]) -> bool {
    let Some(&len_units) = hbh.get(1) else {
        return false;
    };
    let end = ((usize::from(len_units) + 1) * 8).min(hbh.len());
    let mut i = 2;
    while i < end {
        match hbh[i] {
            0 => i += 1, // Pad1
            OPT_JUMBO => return true,
            _ => match hbh.get(i + 1) {
                Some(&l) => i += 2 + usize::from(l),
                None => return false,
            },
        }
    }
    false
}

/// Writes a 40-byte IPv6 header into `buf[..40]`: traffic class and flow label zero.
///
/// Errors: `Truncated` if `buf` is shorter than 40 bytes, `BadLength` if `payload_len` does
/// not fit in 16 bits (jumbograms are not supported).
pub fn emit_header(
    buf: &mut [u8],
    src: &Ipv6Addr,
    dst: &Ipv6Addr,
    next_header: u8,
    hop_limit: u8,
    payload_len: usize,
) -> Result<(), WireError> {
    let pl = u16::try_from(payload_len).map_err(|_| WireError::BadLength)?;
    let hdr = buf.get_mut(..HEADER_LEN).ok_or(WireError::Truncated)?;
    hdr.fill(0);
    hdr[0] = 0x60;
    let mut p = Ipv6Packet::new_unchecked(hdr);
    p.set_payload_len(pl);
    p.set_next_header(next_header);
    p.set_hop_limit(hop_limit);
    p.set_src_addr(src);
    p.set_dst_addr(dst);
    Ok(())
}

/// Upper bound on extension headers [`walk_ext_headers`] follows before giving up; real
/// traffic has two or three, long chains are an evasion / CPU exhaustion technique.
pub const MAX_EXT_HEADERS: usize = 16;

/// How an extension-header walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminal {
    /// Reached an upper-layer protocol; its header starts at `l4_offset`.
    UpperLayer,
    /// Next header 59: nothing follows.
    NoNextHeader,
    /// ESP: the rest is encrypted, `l4_offset` is where the ESP header starts.
    Esp,
    /// A fragment with a non-zero offset: the upper-layer header is in the first fragment,
    /// so `upper_proto` is the Fragment header's next header and `l4_offset` points at
    /// fragment data, not at an L4 header.
    NonFirstFragment,
}

/// One extension header seen during a walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExtHeader {
    /// Its protocol number (e.g. [`proto::IPV6_ROUTE`]).
    pub kind: u8,
    /// Offset of the header from the start of the IPv6 payload.
    pub offset: usize,
    /// Its length in bytes.
    pub len: usize,
}

/// The extension headers of one packet, in order; fixed capacity [`MAX_EXT_HEADERS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExtHeaderList {
    items: [ExtHeader; MAX_EXT_HEADERS],
    len: usize,
}

impl ExtHeaderList {
    /// Number of extension headers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the packet had no extension header.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The headers as a slice, in packet order.
    pub fn as_slice(&self) -> &[ExtHeader] {
        &self.items[..self.len]
    }

    /// Iterates in packet order.
    pub fn iter(&self) -> core::slice::Iter<'_, ExtHeader> {
        self.as_slice().iter()
    }

    /// True if a header of protocol number `kind` is present.
    pub fn contains(&self, kind: u8) -> bool {
        self.iter().any(|h| h.kind == kind)
    }

    fn push(&mut self, h: ExtHeader) -> Result<(), WireError> {
        let slot = self
            .items
            .get_mut(self.len)
            .ok_or(WireError::Malformed("too many extension headers"))?;
        *slot = h;
        self.len += 1;
        Ok(())
    }
}

/// The Fragment header found during a walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragInfo {
    /// Offset of the Fragment header from the start of the IPv6 payload.
    pub header_offset: usize,
    /// The Fragment header's next header field.
    pub next_header: u8,
    /// Fragment offset in bytes.
    pub offset: u16,
    /// M flag: more fragments follow.
    pub more: bool,
    /// Identification.
    pub ident: u32,
}

/// Result of [`walk_ext_headers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtHeaderWalk {
    /// The protocol after the last extension header (see `terminated` for what it means).
    pub upper_proto: u8,
    /// Offset from the start of the IPv6 payload to the first byte after the extension headers.
    pub l4_offset: usize,
    /// The Fragment header, if any.
    pub frag: Option<FragInfo>,
    /// Every extension header walked, in order.
    pub headers: ExtHeaderList,
    /// Why the walk stopped.
    pub terminated: Terminal,
}

/// Walks the extension-header chain of an IPv6 payload (RFC 8200 §4).
///
/// Follows Hop-by-Hop (only as the first header), Routing, Destination Options, Fragment and
/// AH (RFC 4302: length in 4-byte units plus 2), and stops at ESP, No Next Header, any other
/// protocol number (taken as the upper layer), or after a Fragment header with a non-zero
/// offset. Errors: `Truncated` when a header runs past `payload`, `Malformed` for a misplaced
/// Hop-by-Hop header, a second Fragment header, or more than [`MAX_EXT_HEADERS`] headers.
pub fn walk_ext_headers(first_next_header: u8, payload: &[u8]) -> Result<ExtHeaderWalk, WireError> {
    let mut nh = first_next_header;
    let mut off = 0usize;
    let mut headers = ExtHeaderList::default();
    let mut frag: Option<FragInfo> = None;
    loop {
        let terminal = match nh {
            proto::ESP => Some(Terminal::Esp),
            proto::IPV6_NONXT => Some(Terminal::NoNextHeader),
            proto::HOPOPT | proto::IPV6_ROUTE | proto::IPV6_OPTS | proto::IPV6_FRAG | proto::AH => {
                None
            }
            _ => Some(Terminal::UpperLayer),
        };
        if let Some(terminated) = terminal {
            return Ok(ExtHeaderWalk {
                upper_proto: nh,
                l4_offset: off,
                frag,
                headers,
                terminated,
            });
        }
        if nh == proto::HOPOPT && !headers.is_empty() {
            return Err(WireError::Malformed("hop-by-hop header not first"));
        }
        let rest = payload.get(off..).unwrap_or(&[]);
        if rest.len() < 2 {
            return Err(WireError::Truncated);
        }
        let len = match nh {
            proto::IPV6_FRAG => 8,
            proto::AH => (usize::from(rest[1]) + 2) * 4,
            _ => (usize::from(rest[1]) + 1) * 8,
        };
        if rest.len() < len {
            return Err(WireError::Truncated);
        }
        headers.push(ExtHeader {
            kind: nh,
            offset: off,
            len,
        })?;
        let next = rest[0];
        if nh == proto::IPV6_FRAG {
            if frag.is_some() {
                return Err(WireError::Malformed("duplicate fragment header"));
            }
            let fh = Ipv6FragHeader::new_unchecked(&rest[..8]);
            let info = FragInfo {
                header_offset: off,
                next_header: next,
                offset: fh.frag_offset(),
                more: fh.more_frags(),
                ident: fh.ident(),
            };
            frag = Some(info);
            if info.offset != 0 {
                return Ok(ExtHeaderWalk {
                    upper_proto: next,
                    l4_offset: off + len,
                    frag,
                    headers,
                    terminated: Terminal::NonFirstFragment,
                });
            }
        }
        off += len;
        nh = next;
    }
}

/// Size of the Fragment header.
pub const FRAG_HEADER_LEN: usize = 8;

/// A view of the 8-byte IPv6 Fragment header (RFC 8200 §4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6FragHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6FragHeader<T> {
    /// Wraps `buffer` without validation.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6FragHeader { buffer }
    }

    /// Wraps `buffer` after checking it holds at least 8 bytes; no getter panics afterwards.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < FRAG_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Self::new_unchecked(buffer))
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Next header of the fragmentable part.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        be16(self.buffer.as_ref(), 2) & 0xfff8
    }

    /// M flag.
    pub fn more_frags(&self) -> bool {
        self.buffer.as_ref()[3] & 1 != 0
    }

    /// Identification.
    pub fn ident(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6FragHeader<T> {
    /// Sets the next header.
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[0] = v;
    }

    /// Sets offset (bytes, rounded down to a multiple of 8) and the M flag; clears reserved bits.
    pub fn set_frag(&mut self, offset_bytes: u16, more: bool) {
        let b = self.buffer.as_mut();
        b[1] = 0;
        put16(b, 2, (offset_bytes & 0xfff8) | u16::from(more));
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, v: u32) {
        put32(self.buffer.as_mut(), 4, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2001:db8::1 -> 2001:db8::2 with Hop-by-Hop (Router Alert + PadN), Routing (type 4 with
    /// an empty segment list, i.e. a bare header), Fragment (first fragment, M=1) and an
    /// 8-byte UDP header.
    pub(crate) fn chain() -> Vec<u8> {
        let mut v = vec![
            0x60,
            0x00,
            0x00,
            0x00,
            0x00,
            0x20,
            proto::HOPOPT,
            64, // payload 32 bytes
        ];
        v.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        // Hop-by-Hop: next=Routing, len 0 (8 bytes), Router Alert (5, len 2, value 0), PadN.
        v.extend_from_slice(&[proto::IPV6_ROUTE, 0, 5, 2, 0, 0, 1, 0]);
        // Routing: next=Fragment, len 0, type 4, segments left 0, 4 bytes type-specific.
        v.extend_from_slice(&[proto::IPV6_FRAG, 0, 4, 0, 0, 0, 0, 0]);
        // Fragment: next=UDP, offset 0, M=1, ident 0xdeadbeef.
        v.extend_from_slice(&[proto::UDP, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef]);
        // UDP 1234 -> 53, length 8 (header only; fragment data would follow).
        v.extend_from_slice(&[0x04, 0xd2, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00]);
        v
    }

    #[test]
    fn parse_fixed_header() {
        let mut v = chain();
        v[1] = 0xa1; // traffic class 0x0a, flow label 0x1_2345
        v[2] = 0x23;
        v[3] = 0x45;
        v.push(0xff); // trailing byte past payload_len is ignored
        let p = Ipv6Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0x0a);
        assert_eq!(p.flow_label(), 0x1_2345);
        assert_eq!(p.payload_len(), 32);
        assert_eq!(p.next_header(), proto::HOPOPT);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload().len(), 32);
    }

    #[test]
    fn walk_chain() {
        let v = chain();
        let p = Ipv6Packet::new_checked(&v[..]).unwrap();
        let w = p.ext_headers().unwrap();
        assert_eq!(w.upper_proto, proto::UDP);
        assert_eq!(w.l4_offset, 24);
        assert_eq!(w.terminated, Terminal::UpperLayer);
        let kinds: Vec<u8> = w.headers.iter().map(|h| h.kind).collect();
        assert_eq!(kinds, [proto::HOPOPT, proto::IPV6_ROUTE, proto::IPV6_FRAG]);
        assert!(w.headers.contains(proto::IPV6_ROUTE));
        assert_eq!(
            w.frag,
            Some(FragInfo {
                header_offset: 16,
                next_header: proto::UDP,
                offset: 0,
                more: true,
                ident: 0xdead_beef
            })
        );
        assert_eq!(&p.payload()[w.l4_offset..][..2], &[0x04, 0xd2]);
    }

    #[test]
    fn non_first_fragment_stops() {
        let mut v = chain();
        v[40 + 16 + 2] = 0x05; // offset 0x0500 & 0xfff8 = 1280 bytes
        v[40 + 16 + 3] = 0x00; // M=0: last fragment
        let w = Ipv6Packet::new_checked(&v[..])
            .unwrap()
            .ext_headers()
            .unwrap();
        assert_eq!(w.terminated, Terminal::NonFirstFragment);
        assert_eq!(w.upper_proto, proto::UDP);
        assert_eq!(w.l4_offset, 24);
        let f = w.frag.unwrap();
        assert_eq!((f.offset, f.more), (1280, false));
    }

    #[test]
    fn walk_terminals() {
        let w = walk_ext_headers(proto::TCP, &[]).unwrap();
        assert_eq!(
            (w.upper_proto, w.l4_offset, w.terminated),
            (6, 0, Terminal::UpperLayer)
        );
        assert!(w.headers.is_empty() && w.frag.is_none());
        let w = walk_ext_headers(proto::IPV6_OPTS, &[proto::ESP, 0, 1, 4, 0, 0, 0, 0]).unwrap();
        assert_eq!(
            (w.upper_proto, w.l4_offset, w.terminated),
            (50, 8, Terminal::Esp)
        );
        let w = walk_ext_headers(proto::IPV6_NONXT, &[1, 2, 3]).unwrap();
        assert_eq!(w.terminated, Terminal::NoNextHeader);
        // AH: payload len 4 -> (4 + 2) * 4 = 24 bytes.
        let mut ah = vec![proto::TCP, 4, 0, 0];
        ah.resize(24, 0);
        let w = walk_ext_headers(proto::AH, &ah).unwrap();
        assert_eq!((w.upper_proto, w.l4_offset), (proto::TCP, 24));
        assert_eq!(w.headers.as_slice()[0].len, 24);
    }

    #[test]
    fn walk_errors() {
        // Hop-by-Hop after another header.
        let bad = [
            proto::HOPOPT,
            0,
            1,
            4,
            0,
            0,
            0,
            0,
            proto::TCP,
            0,
            1,
            4,
            0,
            0,
            0,
            0,
        ];
        assert_eq!(
            walk_ext_headers(proto::IPV6_OPTS, &bad),
            Err(WireError::Malformed("hop-by-hop header not first"))
        );
        // Two fragment headers.
        let two = [
            proto::IPV6_FRAG,
            0,
            0,
            1,
            0,
            0,
            0,
            1,
            proto::UDP,
            0,
            0,
            1,
            0,
            0,
            0,
            1,
        ];
        assert_eq!(
            walk_ext_headers(proto::IPV6_FRAG, &two),
            Err(WireError::Malformed("duplicate fragment header"))
        );
        // A chain of 17 destination-options headers.
        let mut long = Vec::new();
        for _ in 0..=MAX_EXT_HEADERS {
            long.extend_from_slice(&[proto::IPV6_OPTS, 0, 1, 4, 0, 0, 0, 0]);
        }
        assert_eq!(
            walk_ext_headers(proto::IPV6_OPTS, &long),
            Err(WireError::Malformed("too many extension headers"))
        );
        // Exactly the limit is fine.
        let n = MAX_EXT_HEADERS * 8;
        long[n - 8] = proto::TCP;
        let w = walk_ext_headers(proto::IPV6_OPTS, &long[..n]).unwrap();
        assert_eq!(w.headers.len(), MAX_EXT_HEADERS);
    }

    #[test]
    fn every_prefix_is_rejected() {
        let v = chain();
        for n in 0..v.len() {
            assert_eq!(
                Ipv6Packet::new_checked(&v[..n]),
                Err(WireError::Truncated),
                "prefix {n}"
            );
        }
        // The walk over a truncated payload also fails cleanly (UDP header cut only matters
        // to the UDP view, so prefixes up to the end of the Fragment header are checked).
        let payload = &v[40..];
        for n in 0..24 {
            assert_eq!(
                walk_ext_headers(proto::HOPOPT, &payload[..n]),
                Err(WireError::Truncated),
                "payload prefix {n}"
            );
        }
    }

    #[test]
    fn jumbogram_refused() {
        let mut v = vec![0x60, 0, 0, 0, 0, 0, proto::HOPOPT, 64];
        v.extend_from_slice(&[0; 32]);
        // HBH: next=UDP, len 0, Jumbo Payload option (0xc2, len 4, 70000).
        v.extend_from_slice(&[proto::UDP, 0, 0xc2, 4, 0x00, 0x01, 0x11, 0x70]);
        assert_eq!(
            Ipv6Packet::new_checked(&v[..]),
            Err(WireError::Malformed("jumbogram"))
        );
        v.truncate(40);
        assert!(Ipv6Packet::new_checked(&v[..]).is_ok());
    }

    #[test]
    fn bad_version() {
        let mut v = chain();
        v[0] = 0x45;
        assert_eq!(Ipv6Packet::new_checked(&v[..]), Err(WireError::BadVersion));
    }

    #[test]
    fn setters_and_emit() {
        let mut v = chain();
        let mut p = Ipv6Packet::new_checked(&mut v[..]).unwrap();
        p.set_hop_limit(1);
        p.set_traffic_class(0xb8);
        p.set_flow_label(0xfffff);
        let a: Ipv6Addr = "2001:db8:1::9".parse().unwrap();
        p.set_src_addr(&a);
        p.set_dst_addr(&a);
        p.set_next_header(proto::TCP);
        assert_eq!(
            (p.hop_limit(), p.traffic_class(), p.flow_label()),
            (1, 0xb8, 0xfffff)
        );
        assert_eq!((p.version(), p.src_addr(), p.dst_addr()), (6, a, a));
        assert_eq!(p.next_header(), proto::TCP);
        p.payload_mut()[0] = 9;
        assert_eq!(p.payload()[0], 9);
        p.set_payload_len(0xffff);
        assert_eq!(p.payload().len(), 32);
        assert_eq!(p.payload_mut().len(), 32);

        let mut buf = [0u8; 48];
        emit_header(&mut buf, &a, &a, proto::UDP, 64, 8).unwrap();
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(
            (p.payload_len(), p.next_header(), p.hop_limit()),
            (8, proto::UDP, 64)
        );
        assert_eq!(
            emit_header(&mut buf[..39], &a, &a, 17, 64, 0),
            Err(WireError::Truncated)
        );
        assert_eq!(
            emit_header(&mut buf, &a, &a, 17, 64, 65536),
            Err(WireError::BadLength)
        );
    }

    #[test]
    fn frag_header_view() {
        let mut b = [0u8; 8];
        assert_eq!(
            Ipv6FragHeader::new_checked(&b[..7]),
            Err(WireError::Truncated)
        );
        let mut f = Ipv6FragHeader::new_checked(&mut b[..]).unwrap();
        f.set_next_header(proto::TCP);
        f.set_frag(1232, true);
        f.set_ident(42);
        assert_eq!(
            (f.next_header(), f.frag_offset(), f.more_frags(), f.ident()),
            (6, 1232, true, 42)
        );
        assert_eq!(b, [6, 0, 0x04, 0xd1, 0, 0, 0, 42]);
    }
}
