//! ICMP (RFC 792) and ICMPv6 (RFC 4443) query tracking.
//!
//! Queries and their answers form a connection identified by the query's
//! identifier, stored as both tuple ids so that `Tuple::invert` stays a
//! plain swap. Only a request can start one; the reply must be the answer
//! type of the request that did (echo, timestamp, information, address
//! mask; ICMPv6 echo and node information). Errors belong to the connection
//! they quote: the L3 layer relates them, this module only recognises them.

use crate::{addrs, proto, Addrs, Timeouts};
use conntrack::{ConnCtx, Dir, Instant, Invalid, L4Packet, Verdict};
use wire::{IcmpPacket, Icmpv6Packet};

/// Per-connection ICMP state: the request type that opened it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpState {
    request: u8,
    v6: bool,
}

impl IcmpState {
    /// The request type that opened the connection.
    pub fn request_type(&self) -> u8 {
        self.request
    }
}

/// The answer type of an ICMPv4 query type, if it is one.
pub fn reply_type_v4(request: u8) -> Option<u8> {
    match request {
        8 => Some(0),   // echo
        13 => Some(14), // timestamp
        15 => Some(16), // information
        17 => Some(18), // address mask
        _ => None,
    }
}

/// The answer type of an ICMPv6 query type, if it is one.
pub fn reply_type_v6(request: u8) -> Option<u8> {
    match request {
        128 => Some(129), // echo
        139 => Some(140), // node information (RFC 4620)
        _ => None,
    }
}

/// ICMPv4 error types (they quote another connection's packet).
pub fn is_error_v4(t: u8) -> bool {
    matches!(t, 3 | 4 | 5 | 11 | 12)
}

/// ICMPv6 error types (RFC 4443 §2.1 assigns 1..4).
pub fn is_error_v6(t: u8) -> bool {
    matches!(t, 1..=4)
}

/// ICMPv6 types Linux leaves untracked: MLD (130-132, 143) and Neighbour
/// Discovery (133-137).
pub fn untracked_v6(t: u8) -> bool {
    matches!(t, 130..=137 | 143)
}

fn is_reply(v6: bool, t: u8) -> bool {
    if v6 {
        matches!(t, 129 | 140)
    } else {
        matches!(t, 0 | 14 | 16 | 18)
    }
}

/// The ICMP and ICMPv6 module.
#[derive(Clone, Debug, Default)]
pub struct Icmp;

/// Type and identifier after the header checks.
fn parse(pkt: &L4Packet<'_>) -> Result<(bool, u8, u16), Invalid> {
    if pkt.proto == proto::ICMPV6 {
        let icmp = Icmpv6Packet::new_checked(pkt.data).map_err(|_| Invalid::Icmpv6Truncated)?;
        if pkt.verify_checksum {
            let ok = match addrs(pkt) {
                Some(Addrs::V6(s, d)) => icmp.verify_checksum(&s, &d),
                _ => false,
            };
            if !ok {
                return Err(Invalid::Icmpv6BadChecksum);
            }
        }
        Ok((true, icmp.msg_type(), icmp.echo_ident()))
    } else {
        let icmp = IcmpPacket::new_checked(pkt.data).map_err(|_| Invalid::IcmpTruncated)?;
        if pkt.verify_checksum && !icmp.verify_checksum() {
            return Err(Invalid::IcmpBadChecksum);
        }
        Ok((false, icmp.msg_type(), icmp.echo_ident()))
    }
}

impl Icmp {
    /// Header and checksum checks; (identifier, identifier) for queries and
    /// their answers, (0, 0) for everything else (errors are related by the
    /// L3 layer, other types cannot form a connection).
    pub fn ids(&self, pkt: &L4Packet<'_>) -> Result<(u16, u16), Invalid> {
        let (v6, t, id) = parse(pkt)?;
        let query = if v6 {
            reply_type_v6(t).is_some() || is_reply(true, t)
        } else {
            reply_type_v4(t).is_some() || is_reply(false, t)
        };
        Ok(if query { (id, id) } else { (0, 0) })
    }

    /// Only a request starts a connection.
    pub fn new_conn(&self, pkt: &L4Packet<'_>, _now: Instant) -> Result<IcmpState, Invalid> {
        let (v6, t, _) = parse(pkt)?;
        let request = if v6 {
            reply_type_v6(t).is_some()
        } else {
            reply_type_v4(t).is_some()
        };
        if request {
            return Ok(IcmpState { request: t, v6 });
        }
        Err(match (v6, t) {
            (false, t) if is_reply(false, t) => Invalid::IcmpReplyWithoutRequest,
            (true, t) if is_reply(true, t) => Invalid::Icmpv6ReplyWithoutRequest,
            (false, t) if is_error_v4(t) => Invalid::IcmpErrorCannotStart,
            (true, t) if is_error_v6(t) => Invalid::Icmpv6ErrorCannotStart,
            (false, _) => Invalid::IcmpTypeNotTracked,
            (true, _) => Invalid::Icmpv6TypeNotTracked,
        })
    }

    /// Requests must go the original way, their answers the reply way.
    pub fn packet(
        &self,
        s: &mut IcmpState,
        ctx: &mut ConnCtx<'_>,
        pkt: &L4Packet<'_>,
        t: &Timeouts,
    ) -> Verdict {
        let ty = match parse(pkt) {
            Ok((_, ty, _)) => ty,
            Err(e) => return Verdict::Invalid(e),
        };
        let answer = if s.v6 {
            reply_type_v6(s.request)
        } else {
            reply_type_v4(s.request)
        };
        let ok = match ctx.dir {
            Dir::Original => ty == s.request,
            Dir::Reply => Some(ty) == answer,
        };
        if ok {
            let timeout = if s.v6 { t.icmpv6 } else { t.icmp };
            return Verdict::Accept { timeout };
        }
        let request_like = if s.v6 {
            reply_type_v6(ty).is_some()
        } else {
            reply_type_v4(ty).is_some()
        };
        Verdict::Invalid(match ctx.dir {
            Dir::Original if is_reply(s.v6, ty) => Invalid::IcmpReplyInOriginal,
            Dir::Reply if request_like => Invalid::IcmpRequestInReply,
            _ => Invalid::IcmpTypeMismatch,
        })
    }

    /// Whether the message is an error quoting another packet.
    pub fn is_error(&self, pkt: &L4Packet<'_>) -> bool {
        match (pkt.proto, pkt.data.first()) {
            (proto::ICMP, Some(&t)) => is_error_v4(t),
            (proto::ICMPV6, Some(&t)) => is_error_v6(t),
            _ => false,
        }
    }
}
