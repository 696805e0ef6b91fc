//! What the engine reads from a packet's bytes (`Meta`, the conntrack tuple for cache
//! warming), and the header edits of forwarding: TTL, fragment views, IPv4 fragmentation.

use super::*;

/// Parsed facts about a packet that rules and hooks need; owned so the packet
/// bytes can be rewritten while it is alive.
#[derive(Clone, Copy, Debug)]
pub(super) struct Meta {
    pub(super) family: Family,
    pub(super) src: IpAddr,
    pub(super) dst: IpAddr,
    pub(super) proto: u8,
    pub(super) l4_offset: usize,
    pub(super) len: usize,
    pub(super) frag: Frag,
    pub(super) ttl: u8,
    pub(super) sport: Option<u16>,
    pub(super) dport: Option<u16>,
    pub(super) icmp: Option<(u8, u8)>,
    pub(super) tcp_flags: Option<u8>,
}

impl Meta {
    /// Inlined, and IPv4 addresses re-read from the packet: copying them (or the result) out
    /// of the parser's freshly written return value stalled store-to-load forwarding.
    #[inline(always)]
    pub(super) fn of(pkt: &[u8]) -> Result<Meta, conntrack::proto::L3Error> {
        let l3 = l3proto::parse(pkt)?;
        let (src, dst) = match (l3.family, pkt.get(12..20)) {
            (Family::V4, Some(a)) => (
                IpAddr::from([a[0], a[1], a[2], a[3]]),
                IpAddr::from([a[4], a[5], a[6], a[7]]),
            ),
            _ => (l3.src, l3.dst),
        };
        let first = l3.frag != Frag::Later;
        let l4 = l3.l4;
        let be16 = |o: usize| l4.get(o..o + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
        let ports = first && matches!(l3.proto, 6 | 17 | 33 | 132 | 136);
        let (sport, dport) = if ports {
            (be16(0), be16(2))
        } else {
            (None, None)
        };
        let icmp = (first && matches!((l3.family, l3.proto), (Family::V4, 1) | (Family::V6, 58)))
            .then(|| Some((*l4.first()?, *l4.get(1)?)))
            .flatten();
        let tcp_flags = (first && l3.proto == 6)
            .then(|| l4.get(13).copied())
            .flatten();
        Ok(Meta {
            family: l3.family,
            src,
            dst,
            proto: l3.proto,
            l4_offset: l3.l4_offset,
            len: l3.len,
            frag: l3.frag,
            ttl: l3.ttl,
            sport,
            dport,
            icmp,
            tcp_flags,
        })
    }

    pub(super) fn describe(&self) -> String {
        let p = conntrack::proto::proto_name(self.proto);
        match (self.sport, self.dport, self.icmp) {
            (Some(s), Some(d), _) => format!("{p} {} {s} -> {} {d}", self.src, self.dst),
            (_, _, Some((t, c))) => format!("{p} {} -> {} type={t} code={c}", self.src, self.dst),
            _ => format!("{p} {} -> {}", self.src, self.dst),
        }
    }
}

/// The conntrack tuple of a plain TCP or UDP packet (IPv4 without options
/// and not fragmented, or IPv6 with the transport header first), read
/// straight from the bytes; `None` for anything else. Only used to warm the
/// cache (`handle_batch`): a wrong or missing tuple costs time, not
/// correctness, so nothing here is validated beyond bounds.
pub(super) fn quick_tuple(p: &[u8]) -> Option<Tuple> {
    let ports = |l4: usize| -> Option<(u16, u16)> {
        let b = p.get(l4..l4 + 4)?;
        Some((
            u16::from_be_bytes([b[0], b[1]]),
            u16::from_be_bytes([b[2], b[3]]),
        ))
    };
    let (src, dst, proto, l4) = match p.first()? >> 4 {
        // IHL 5, MF clear and offset 0 (a fragment's ports are not in every piece).
        4 if p[0] == 0x45 && p.get(6..8).is_some_and(|f| f[0] & 0x3f == 0 && f[1] == 0) => {
            let a = |o: usize| -> Option<IpAddr> {
                let b: [u8; 4] = p.get(o..o + 4)?.try_into().ok()?;
                Some(IpAddr::from(b))
            };
            (a(12)?, a(16)?, p[9], 20)
        }
        6 => {
            let a = |o: usize| -> Option<IpAddr> {
                let b: [u8; 16] = p.get(o..o + 16)?.try_into().ok()?;
                Some(IpAddr::from(b))
            };
            (a(8)?, a(24)?, *p.get(6)?, 40)
        }
        _ => return None,
    };
    if proto != 6 && proto != 17 {
        return None;
    }
    let (src_id, dst_id) = ports(l4)?;
    Some(Tuple {
        src,
        dst,
        src_id,
        dst_id,
        proto,
        zone: 0,
    })
}

/// The segments of a reassembled datagram: the clone's header part (up to
/// where the fragmentable data starts), then each fragment's data in offset
/// order. Empty when a fragment cannot be read (the caller then searches the
/// contiguous clone).
pub(super) fn fragment_segments<'a>(clone: &'a [u8], frags: &'a [PacketBuf]) -> Vec<&'a [u8]> {
    let mut parts: Vec<(usize, &[u8])> = Vec::with_capacity(frags.len());
    let mut hdr = None;
    for f in frags {
        let p = f.as_slice();
        let (off, data_at, end) = match p.first().map(|b| b >> 4) {
            Some(4) => {
                let ihl = usize::from(p[0] & 0x0f) * 4;
                let Some(total) = p
                    .get(2..4)
                    .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                else {
                    return Vec::new();
                };
                let Some(fo) = p.get(6..8).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
                    return Vec::new();
                };
                let off = usize::from(fo & 0x1fff) * 8;
                if off == 0 {
                    hdr = Some(ihl);
                }
                (off, ihl, total)
            }
            Some(6) => {
                let Some(plen) = p
                    .get(4..6)
                    .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                else {
                    return Vec::new();
                };
                let Some(walk) = p
                    .get(40..40 + plen)
                    .and_then(|pl| wire::walk_ext_headers(p[6], pl).ok())
                else {
                    return Vec::new();
                };
                let Some(fh) = walk.frag else {
                    return Vec::new();
                };
                if fh.offset == 0 {
                    // The clone has the headers before the Fragment header.
                    hdr = Some(40 + fh.header_offset);
                }
                (usize::from(fh.offset), 40 + fh.header_offset + 8, 40 + plen)
            }
            _ => return Vec::new(),
        };
        match p.get(data_at..end) {
            Some(d) => parts.push((off, d)),
            None => return Vec::new(),
        }
    }
    let Some(h) = hdr.and_then(|h| clone.get(..h)) else {
        return Vec::new();
    };
    parts.sort_by_key(|(off, _)| *off);
    std::iter::once(h)
        .chain(parts.into_iter().map(|(_, d)| d))
        .collect()
}

/// Where the L4 header is (first fragment) or would be (later ones): after
/// the IPv4 header, or after the IPv6 Fragment header.
pub(super) fn fragment_l4_offset(p: &[u8]) -> Option<usize> {
    match p.first()? >> 4 {
        4 => Some(usize::from(p[0] & 0x0f) * 4),
        6 => {
            let plen = usize::from(u16::from_be_bytes([*p.get(4)?, *p.get(5)?]));
            let walk = wire::walk_ext_headers(p[6], p.get(40..40 + plen)?).ok()?;
            Some(40 + walk.l4_offset)
        }
        _ => None,
    }
}

pub(super) fn is_broadcast(a: &IpAddr) -> bool {
    matches!(a, IpAddr::V4(v) if v.is_broadcast())
}

pub(super) fn is_link_local(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => v.is_link_local(),
        IpAddr::V6(v) => (v.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// Decrements TTL / hop limit in place (IPv4 checksum updated incrementally, RFC 1624).
pub(super) fn decrement_ttl(p: &mut [u8]) {
    match p.first().map(|b| b >> 4) {
        Some(4) => {
            if let Some(h) = p.get_mut(..20).filter(|h| h[8] != 0) {
                h[8] -= 1;
                // RFC 1624 eqn. 3 with m - m' = 0x0100 (TTL is the high byte of its word):
                // ~m + m' is the constant 0xfeff, so one add and one fold.
                let s = u32::from(!u16::from_be_bytes([h[10], h[11]])) + 0xfeff;
                let ck = !((s & 0xffff) + (s >> 16)) as u16;
                h[10..12].copy_from_slice(&ck.to_be_bytes());
            }
        }
        Some(6) => {
            if let Some(h) = p.get_mut(..40) {
                h[7] = h[7].saturating_sub(1);
            }
        }
        _ => {}
    }
}

/// Sets the TTL (IPv4, checksum updated incrementally) or hop limit (IPv6) to `ttl`.
pub(super) fn set_ttl(p: &mut [u8], ttl: u8) {
    match p.first().map(|b| b >> 4) {
        Some(4) => {
            if let Some(h) = p.get_mut(..20) {
                let old = u16::from_be_bytes([h[8], h[9]]);
                h[8] = ttl;
                let ck = wire::checksum::update16(
                    u16::from_be_bytes([h[10], h[11]]),
                    old,
                    u16::from_be_bytes([h[8], h[9]]),
                );
                h[10..12].copy_from_slice(&ck.to_be_bytes());
            }
        }
        Some(6) => {
            if let Some(h) = p.get_mut(7) {
                *h = ttl;
            }
        }
        _ => {}
    }
}

/// Splits an IPv4 packet without DF into fragments that fit `mtu` (RFC 791:
/// data on 8-byte boundaries; options only where the copy flag says so).
pub(super) fn fragment_v4(p: &[u8], mtu: usize) -> Option<Vec<PacketBuf>> {
    let ip = wire::Ipv4Packet::new_checked(p).ok()?;
    let hl = ip.header_len();
    let payload = ip.payload();
    let base_off = usize::from(ip.frag_offset());
    let last_more = ip.more_frags();
    // Later fragments carry only options with the copied bit (RFC 791 §3.1).
    let mut later_opts = Vec::new();
    let opts = ip.options();
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => break,
            1 => i += 1,
            t => {
                let l = usize::from(*opts.get(i + 1)?).max(2);
                let o = opts.get(i..i + l)?;
                if t & 0x80 != 0 {
                    later_opts.extend_from_slice(o);
                }
                i += l;
            }
        }
    }
    while later_opts.len() % 4 != 0 {
        later_opts.push(0);
    }
    let mut out = Vec::new();
    let mut off = 0;
    while off < payload.len() {
        let this_hl = if off == 0 { hl } else { 20 + later_opts.len() };
        let room = (mtu.checked_sub(this_hl)? / 8) * 8;
        if room == 0 {
            return None;
        }
        let take = room.min(payload.len() - off);
        let more = off + take < payload.len() || last_more;
        let mut v = Vec::with_capacity(this_hl + take);
        if off == 0 {
            v.extend_from_slice(&p[..hl]);
        } else {
            v.extend_from_slice(&p[..20]);
            v.extend_from_slice(&later_opts);
            v[0] = 0x40 | ((this_hl / 4) as u8);
        }
        v.extend_from_slice(&payload[off..off + take]);
        let mut f = wire::Ipv4Packet::new_unchecked(&mut v[..]);
        f.set_total_len((this_hl + take) as u16);
        f.set_frag(false, more, (base_off + off) as u16);
        f.fill_checksum();
        out.push(PacketBuf::from_slice(&v));
        off += take;
    }
    Some(out)
}
