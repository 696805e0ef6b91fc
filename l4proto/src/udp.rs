//! UDP (RFC 768) and UDP-Lite (RFC 3828) tracking.
//!
//! Stateless protocols: a connection is "unreplied" until the reply
//! direction answers, then a "stream". As in Linux (since 5.x), the stream
//! timeout and ASSURED come only for traffic still flowing more than two
//! seconds after the first packet, so a DNS-style single exchange stays
//! short-lived and early-droppable.

use crate::{addrs, proto, Addrs, Timeouts};
use conntrack::{ConnCtx, Dir, Instant, Invalid, L4Packet, Status, Verdict};
use std::time::Duration;
use wire::{UdpLitePacket, UdpPacket, WireError};

/// How long after the first packet replies must keep flowing to count as a stream.
pub const STREAM_DELAY: Duration = Duration::from_secs(2);

/// Per-connection UDP state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpState {
    /// From when on a replied connection counts as a stream.
    stream_at: Instant,
    /// A reply-direction packet was seen.
    replied: bool,
}

impl UdpState {
    /// Whether a reply-direction packet was seen.
    pub fn replied(&self) -> bool {
        self.replied
    }
}

/// The UDP and UDP-Lite module.
#[derive(Clone, Debug, Default)]
pub struct Udp;

impl Udp {
    /// Length, checksum coverage and checksum checks; the ports.
    pub fn ids(&self, pkt: &L4Packet<'_>) -> Result<(u16, u16), Invalid> {
        if pkt.proto == proto::UDPLITE {
            return udplite_ids(pkt);
        }
        let udp = UdpPacket::new_checked(pkt.data).map_err(|e| match e {
            WireError::BadLength => Invalid::UdpBadLength,
            _ => Invalid::UdpTruncated,
        })?;
        // Only the address tags: copying the addresses out (as `addrs` does) cost a
        // store-forwarding stall per packet, the packet view having just been built.
        let v6 = pkt.src.is_ipv6() && pkt.dst.is_ipv6();
        // RFC 8200 §8.1: IPv6 has no "no checksum" value; Linux refuses it
        // even where it does not verify checksums.
        if v6 && udp.checksum() == 0 {
            return Err(Invalid::UdpZeroChecksumV6);
        }
        if pkt.verify_checksum {
            let ok = match addrs(pkt) {
                Some(Addrs::V4(s, d)) => udp.verify_checksum_v4(s, d),
                Some(Addrs::V6(s, d)) => udp.verify_checksum_v6(&s, &d),
                None => false,
            };
            if !ok {
                return Err(Invalid::UdpBadChecksum);
            }
        }
        Ok((udp.src_port(), udp.dst_port()))
    }

    /// Any datagram may start a connection.
    pub fn new_conn(&self, _pkt: &L4Packet<'_>, now: Instant) -> Result<UdpState, Invalid> {
        Ok(UdpState {
            stream_at: now + STREAM_DELAY,
            replied: false,
        })
    }

    /// Refreshes the connection: stream timeout and ASSURED once a reply was
    /// seen (before this packet) and the flow outlived [`STREAM_DELAY`].
    pub fn packet(
        &self,
        s: &mut UdpState,
        ctx: &mut ConnCtx<'_>,
        _pkt: &L4Packet<'_>,
        t: &Timeouts,
    ) -> Verdict {
        let replied = s.replied;
        if ctx.dir == Dir::Reply {
            s.replied = true;
        }
        let timeout = if replied && ctx.now > s.stream_at {
            ctx.status.insert(Status::ASSURED);
            t.udp_stream
        } else {
            t.udp_unreplied
        };
        Verdict::Accept { timeout }
    }
}

fn udplite_ids(pkt: &L4Packet<'_>) -> Result<(u16, u16), Invalid> {
    let udp = UdpLitePacket::new_checked(pkt.data).map_err(|e| match e {
        WireError::BadLength => Invalid::UdpLiteBadCoverage,
        _ => Invalid::UdpLiteTruncated,
    })?;
    // RFC 3828 §3.1: the checksum is mandatory.
    if udp.checksum() == 0 {
        return Err(Invalid::UdpLiteNoChecksum);
    }
    if pkt.verify_checksum {
        let ok = match addrs(pkt) {
            Some(Addrs::V4(s, d)) => udp.verify_checksum_v4(s, d),
            Some(Addrs::V6(s, d)) => udp.verify_checksum_v6(&s, &d),
            None => false,
        };
        if !ok {
            return Err(Invalid::UdpLiteBadChecksum);
        }
    }
    Ok((udp.src_port(), udp.dst_port()))
}
