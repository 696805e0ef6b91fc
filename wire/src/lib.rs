//! The bottom of tunfilter's stack: what every other crate says packets with.
//!
//! - checked zero-copy views over packet bytes, one module per header format (below);
//! - [`buf`]: packet buffers with headroom and segment chains ([`PacketBuf`], [`SegChain`]);
//! - [`time`]: the engine's clock ([`Instant`]), passed in by whoever drives it, so that
//!   the simulator's virtual time and the live gateway's monotonic clock are one type.
//!
//! Every header format the router looks at has a view type here: a thin wrapper around any
//! `T: AsRef<[u8]>` (a slice, a `Vec`, a pooled buffer) that reads fields straight out of the
//! bytes in network order, plus setters when `T: AsMut<[u8]>` as well. Nothing is copied or
//! allocated; parsing is just [`new_checked`](Ipv4Packet::new_checked).
//!
//! # The no-panic promise
//!
//! Input comes from the network, so `new_checked` validates every length a getter relies on and
//! returns a [`WireError`] on truncated or malformed input. **Once `new_checked` has returned
//! `Ok`, no getter, payload accessor or iterator of that view panics**, whatever the bytes say:
//! options and chunk iterators report malformed entries as `Err` items and then stop. Setters
//! keep that promise too, with one caveat spelled out where it applies (a setter that changes a
//! length field cannot make a later accessor read past the buffer: payload accessors clamp to
//! the buffer). `new_unchecked` skips validation and is meant for buffers the caller built
//! itself; with it, getters may panic on short buffers.
//!
//! Views cover exactly one layer: an [`Ipv4Packet`]'s `payload()` is what you hand to
//! [`TcpPacket::new_checked`], and transport checksums need the addresses from the IP layer.
//!
//! # Example
//!
//! ```
//! use wire::{proto, Ipv4Packet, UdpPacket, WireError};
//!
//! let bytes = [
//!     0x45, 0x00, 0x00, 0x1d, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, // IPv4
//!     192, 0, 2, 1, 198, 51, 100, 7,
//!     0x30, 0x39, 0x00, 0x35, 0x00, 0x09, 0x00, 0x00, // UDP, no checksum
//!     b'x',
//! ];
//! let ip = Ipv4Packet::new_checked(&bytes[..])?;
//! assert_eq!(ip.protocol(), proto::UDP);
//! let udp = UdpPacket::new_checked(ip.payload())?;
//! assert_eq!((udp.src_port(), udp.dst_port()), (12345, 53));
//! assert_eq!(udp.payload(), b"x");
//! assert!(udp.verify_checksum_v4(ip.src_addr(), ip.dst_addr())); // 0 = not computed
//!
//! // Every prefix of a packet is rejected with an error, never a panic.
//! assert_eq!(Ipv4Packet::new_checked(&bytes[..10]).unwrap_err(), WireError::Truncated);
//! # Ok::<(), WireError>(())
//! ```
#![warn(missing_docs, unreachable_pub)]

use core::fmt;

pub mod arp;
pub mod buf;
pub mod checksum;
pub mod dccp;
pub mod ethernet;
pub mod fuzzing;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod sctp;
pub mod tcp;
pub mod time;
pub mod udp;

pub use arp::{ArpOp, ArpPacket};
pub use buf::{PacketBuf, SegChain};
pub use dccp::{DccpPacket, DccpType};
pub use ethernet::{EtherType, EthernetFrame};
pub use icmp::{IcmpPacket, Message as IcmpMessage};
pub use icmpv6::{Icmpv6Packet, Message as Icmpv6Message, NdOption, NdOptionIter};
pub use ipv4::Ipv4Packet;
pub use ipv6::{
    walk_ext_headers, ExtHeader, ExtHeaderList, ExtHeaderWalk, FragInfo, Ipv6FragHeader,
    Ipv6Packet, Terminal, MAX_EXT_HEADERS,
};
pub use sctp::{SctpChunk, SctpChunkIter, SctpChunkType, SctpPacket};
pub use tcp::{SackBlocks, TcpFlags, TcpOption, TcpOptionIter, TcpPacket};
pub use time::Instant;
pub use udp::{UdpLitePacket, UdpPacket};

/// Why a buffer was rejected.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The buffer ends before a header or a length field says it should.
    Truncated,
    /// The IP version nibble does not match the view.
    BadVersion,
    /// A header length field is below the minimum header size.
    BadHeaderLen,
    /// A total/payload length field is inconsistent with the header.
    BadLength,
    /// An option (TCP, ND, ...) has an impossible length.
    BadOption,
    /// A checksum did not verify (returned by callers that choose to enforce it).
    BadChecksum,
    /// Structurally invalid in a protocol-specific way.
    Malformed(&'static str),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("packet truncated"),
            WireError::BadVersion => f.write_str("bad IP version"),
            WireError::BadHeaderLen => f.write_str("bad header length"),
            WireError::BadLength => f.write_str("bad length field"),
            WireError::BadOption => f.write_str("malformed option"),
            WireError::BadChecksum => f.write_str("bad checksum"),
            WireError::Malformed(what) => write!(f, "malformed packet: {what}"),
        }
    }
}

impl std::error::Error for WireError {}

/// IP protocol numbers (IANA "Assigned Internet Protocol Numbers"); also IPv6 next-header values.
pub mod proto {
    /// IPv6 Hop-by-Hop Options.
    pub const HOPOPT: u8 = 0;
    /// Internet Control Message Protocol (v4).
    pub const ICMP: u8 = 1;
    /// Transmission Control Protocol.
    pub const TCP: u8 = 6;
    /// User Datagram Protocol.
    pub const UDP: u8 = 17;
    /// Datagram Congestion Control Protocol.
    pub const DCCP: u8 = 33;
    /// IPv6 Routing header.
    pub const IPV6_ROUTE: u8 = 43;
    /// IPv6 Fragment header.
    pub const IPV6_FRAG: u8 = 44;
    /// Generic Routing Encapsulation.
    pub const GRE: u8 = 47;
    /// Encapsulating Security Payload.
    pub const ESP: u8 = 50;
    /// Authentication Header.
    pub const AH: u8 = 51;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 No Next Header.
    pub const IPV6_NONXT: u8 = 59;
    /// IPv6 Destination Options.
    pub const IPV6_OPTS: u8 = 60;
    /// Stream Control Transmission Protocol.
    pub const SCTP: u8 = 132;
    /// Lightweight UDP (RFC 3828).
    pub const UDPLITE: u8 = 136;
}

// Field readers shared by the views. They index directly: callers only use them on offsets that
// `new_checked` has proven to be inside the buffer.
#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// `buf[start..end]`, but empty instead of panicking when a (setter-modified) length field
/// points outside the buffer; keeps the no-panic promise after arbitrary setter use.
#[inline]
pub(crate) fn clamp(buf: &[u8], start: usize, end: usize) -> &[u8] {
    let end = end.min(buf.len());
    buf.get(start..end).unwrap_or(&[])
}

#[inline]
pub(crate) fn clamp_mut(buf: &mut [u8], start: usize, end: usize) -> &mut [u8] {
    let end = end.min(buf.len());
    if start > end {
        return &mut [];
    }
    &mut buf[start..end]
}

#[cfg(test)]
mod fuzz_tests;
