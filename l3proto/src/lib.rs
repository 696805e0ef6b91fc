//! Layer-3 conntrack modules: IPv4 and IPv6.
//!
//! Each module validates the network header, walks IPv6 extension headers to
//! the upper-layer header, and reports fragments; [`icmp_error_tuple`] maps an
//! ICMP or ICMPv6 error to the connection of the packet it quotes, after
//! validating the quoted header, so the error can be tracked as RELATED.
//!
//! ```
//! use conntrack::proto::{Frag, L3Proto};
//! use l3proto::Ipv4;
//!
//! // 20-byte IPv4 header (UDP, 192.0.2.1 -> 198.51.100.1) + 8-byte UDP header.
//! let mut pkt = vec![0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 198, 51, 100, 1,
//!                    0x30, 0x39, 0, 53, 0, 8, 0, 0];
//! let ck = wire::checksum::data(&pkt[..20]);
//! pkt[10..12].copy_from_slice(&ck.to_be_bytes());
//! let l3 = Ipv4.parse(&pkt).unwrap();
//! assert_eq!(l3.proto, 17);
//! assert_eq!(l3.l4_offset, 20);
//! assert_eq!(l3.frag, Frag::None);
//! ```
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod defrag;
pub mod fuzzing;
mod icmp_error;
mod ipv4;
mod ipv6;

pub use icmp_error::{icmp_error_tuple, is_icmp_error, is_icmp_error_parts};
pub use ipv4::Ipv4;
pub use ipv6::Ipv6;

use conntrack::proto::{L3Error, L3Packet, L3Proto};

/// Parses a packet of either family, chosen by its version nibble.
#[inline]
pub fn parse(packet: &[u8]) -> Result<L3Packet<'_>, L3Error> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => Ipv4.parse(packet),
        Some(6) => Ipv6.parse(packet),
        Some(_) => Err(L3Error::UnknownVersion),
        None => Err(L3Error::Empty),
    }
}
