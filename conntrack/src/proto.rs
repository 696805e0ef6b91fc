//! The traits that L3 and L4 protocol modules implement. Adding a protocol
//! means implementing these in its own file; the core does not change.

use crate::conn::Status;
use crate::tuple::{Dir, Family, Tuple};
use core::fmt;
use std::net::IpAddr;
use std::time::Duration;
use wire::Instant;

pub use crate::invalid::Invalid;

/// Per-connection L4 state as the table stores it.
pub trait ProtoState: fmt::Debug + Send + Sync + 'static {
    /// The state name as `conntrack -L` prints it (`ESTABLISHED`), or `""`
    /// for protocols without states.
    fn state_name(&self) -> &'static str;
    /// A number that changes exactly when [`ProtoState::state_name`] does;
    /// the per-packet path compares it to decide whether an update event is
    /// due, which a string comparison made too costly.
    fn state_id(&self) -> u16 {
        0
    }
    /// Whether the connection may be evicted to make room when the table is
    /// full (TCP refuses for established connections, as Linux does).
    fn can_early_drop(&self) -> bool {
        true
    }
}

/// Where the L3 layer found the L4 header of a packet.
#[derive(Clone, Copy, Debug)]
pub struct L4Packet<'a> {
    /// Address family.
    pub family: Family,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// L4 protocol number.
    pub proto: u8,
    /// The L4 header and payload, bounded by the IP length.
    pub data: &'a [u8],
    /// Whether the module should verify the L4 checksum (netfilter does this
    /// only where the packet entered, not for locally generated packets).
    pub verify_checksum: bool,
}

/// What the tracker knows about the packet being processed.
#[derive(Debug)]
pub struct ConnCtx<'a> {
    /// Direction of the packet within its connection.
    pub dir: Dir,
    /// The connection's status bits; the module may set `ASSURED`.
    pub status: &'a mut Status,
    /// Current time.
    pub now: Instant,
    /// The connection's tuples (e.g. for SCTP verification tags).
    pub tuples: &'a [Tuple; 2],
    /// How far a helper's rewrites moved the other direction's sequence numbers at the
    /// point this packet acknowledges (`nf_ct_seq_offset`): its acknowledgement and SACK
    /// edges count the rewritten stream, the window data the sender's. 0 almost always.
    pub ack_offset: u32,
}

/// What an L4 module decides about a packet of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Valid; the connection lives at least `timeout` longer.
    Accept {
        /// New timeout from now.
        timeout: Duration,
    },
    /// INVALID for conntrack (the ruleset decides what to do with it).
    Invalid(Invalid),
    /// The old connection must be destroyed and the packet handled as the
    /// first of a new one (TCP SYN in TIME_WAIT / CLOSE).
    Reopen,
}

/// An L4 protocol module (after `nf_conntrack_l4proto`).
pub trait L4Proto: Send + Sync {
    /// Per-connection state.
    type State: ProtoState;

    /// Protocol name as `conntrack -L` prints it.
    fn name(&self, proto: u8) -> &'static str;

    /// Checks the header before any lookup (length, checksum) and extracts the
    /// two tuple identifiers.
    fn ids(&self, pkt: &L4Packet<'_>) -> Result<(u16, u16), Invalid>;

    /// For a packet without a connection: may it start one, and in which state?
    fn new_conn(&self, pkt: &L4Packet<'_>, now: Instant) -> Result<Self::State, Invalid>;

    /// For a packet of a connection (just created by `new_conn` or found).
    fn packet(&self, state: &mut Self::State, ctx: &mut ConnCtx<'_>, pkt: &L4Packet<'_>)
        -> Verdict;

    /// Whether the packet is an ICMP/ICMPv6 error (its quoted packet then
    /// belongs to another connection, and the L3 layer relates it).
    fn is_error(&self, _pkt: &L4Packet<'_>) -> bool {
        false
    }

    /// Tuple identifiers of a packet quoted inside an ICMP error. Quotes are
    /// often truncated (RFC 792 guarantees only 8 bytes of L4 header), so the
    /// default reads just what such a quote holds: the two ports of port
    /// protocols, the identifier of ICMP queries; anything else goes to `ids`.
    fn quoted_ids(&self, pkt: &L4Packet<'_>) -> Result<(u16, u16), Invalid> {
        let be16 = |at: usize| {
            pkt.data
                .get(at..at + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .ok_or(Invalid::QuotedL4Truncated)
        };
        match pkt.proto {
            6 | 17 | 33 | 132 | 136 => Ok((be16(0)?, be16(2)?)),
            1 | 58 => {
                let id = be16(4)?;
                Ok((id, id))
            }
            _ => self.ids(pkt),
        }
    }
}

/// A parsed L3 header: what an L3 module hands to the tracker.
#[derive(Clone, Copy, Debug)]
pub struct L3Packet<'a> {
    /// Address family.
    pub family: Family,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// L4 protocol (after IPv6 extension headers).
    pub proto: u8,
    /// Offset of the L4 header from the start of the packet.
    pub l4_offset: usize,
    /// The L4 header and payload, bounded by the IP length.
    pub l4: &'a [u8],
    /// Fragment information.
    pub frag: Frag,
    /// TTL or hop limit.
    pub ttl: u8,
    /// Length of the L3 packet (IP total length).
    pub len: usize,
}

/// Where a packet stands with respect to fragmentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frag {
    /// Not a fragment.
    None,
    /// First fragment (offset 0, more fragments follow).
    First,
    /// A later fragment: no L4 header.
    Later,
}

/// Why an L3 module rejected a packet. The variants a drop counter tells apart (`ip:
/// truncated`, `ip: bad version`, ...) have their own; anything else is `Malformed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum L3Error {
    /// An empty packet.
    Empty,
    /// A version nibble that is neither 4 nor 6.
    UnknownVersion,
    /// Shorter than its header or than its length field says.
    Truncated,
    /// The version field is not the module's.
    BadVersion,
    /// The header length field is below the minimum or beyond the packet.
    BadHeaderLen,
    /// The total (or payload) length field is inconsistent with the header.
    BadLength,
    /// Otherwise malformed (a misplaced IPv6 extension header, a jumbogram, ...); the
    /// string names what.
    Malformed(&'static str),
    /// Header checksum wrong.
    BadChecksum,
    /// Not this module's family.
    WrongFamily,
}

impl fmt::Display for L3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            L3Error::Empty => "empty packet",
            L3Error::UnknownVersion => "unknown IP version",
            L3Error::Truncated => "truncated",
            L3Error::BadVersion => "bad version",
            L3Error::BadHeaderLen => "bad header length",
            L3Error::BadLength => "bad total length",
            L3Error::Malformed(what) => what,
            L3Error::BadChecksum => return f.write_str("bad IP header checksum"),
            L3Error::WrongFamily => return f.write_str("wrong address family"),
        };
        write!(f, "malformed L3 header: {what}")
    }
}

impl std::error::Error for L3Error {}

/// An L3 protocol module (IPv4, IPv6).
pub trait L3Proto: Send + Sync {
    /// The family this module handles.
    fn family(&self) -> Family;
    /// Validates the L3 header(s) and locates the L4 header.
    fn parse<'a>(&self, packet: &'a [u8]) -> Result<L3Packet<'a>, L3Error>;
}

/// Name of an IP protocol number as `conntrack` prints it.
pub fn proto_name(proto: u8) -> &'static str {
    match proto {
        1 => "icmp",
        6 => "tcp",
        17 => "udp",
        33 => "dccp",
        47 => "gre",
        50 => "esp",
        51 => "ah",
        58 => "icmpv6",
        132 => "sctp",
        136 => "udplite",
        _ => "unknown",
    }
}
