//! The ESP codec (RFC 4303) with AES-GCM (RFC 4106): the packet surgery of encapsulation and
//! decapsulation, on a [`PacketBuf`] whose headroom takes the new headers without a copy.
//!
//! An ESP packet is `outer IP | SPI (4) | sequence (4) | IV (8) | ciphertext | ICV (16)`, the
//! ciphertext being `payload | padding 1, 2, 3, ... | pad length | next header`, padded so that
//! the pad length and next header end on a 4-byte boundary. The IV is the 64-bit sequence
//! number (RFC 4106 §3.1 lets a counter be the IV); the AAD is `SPI ‖ sequence` (8 bytes), or
//! `SPI ‖ high ‖ low` (12 bytes) with ESN, whose high half is never sent.

use crate::aead::{ICV_LEN, IV_LEN};
use crate::sa::{Mode, Sa};
use crate::stats::{InDrop, OutDrop};
use std::net::IpAddr;
use wire::{proto, Ipv4Packet, Ipv6Packet, PacketBuf};

/// SPI and sequence number.
pub const ESP_HEADER_LEN: usize = 8;
/// What ESP adds besides the padding and trailer: header, IV and ICV.
pub const ESP_FIXED_OVERHEAD: usize = ESP_HEADER_LEN + IV_LEN + ICV_LEN;
/// Hop limit / TTL of outer headers (Linux's default route hop limit).
pub const OUTER_TTL: u8 = 64;

const IPPROTO_IPIP: u8 = 4;
const IPPROTO_IPV6: u8 = 41;
const ECN_MASK: u8 = 3;
const ECN_CE: u8 = 3;
const ECN_ECT0: u8 = 2;

/// Padding so that `payload + pad + 2` is a multiple of 4 (GCM's block size is 1, ESP aligns
/// to 4).
pub(crate) fn pad_len(payload: usize) -> usize {
    (4 - (payload + 2) % 4) % 4
}

/// The AAD of a packet with full sequence number `seq`.
fn aad(spi: u32, seq: u64, esn: bool) -> ([u8; 12], usize) {
    let mut a = [0u8; 12];
    a[..4].copy_from_slice(&spi.to_be_bytes());
    if esn {
        a[4..8].copy_from_slice(&((seq >> 32) as u32).to_be_bytes());
        a[8..12].copy_from_slice(&(seq as u32).to_be_bytes());
        (a, 12)
    } else {
        a[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        (a, 8)
    }
}

/// Appends the trailer to the payload at `buf[start..]`, encrypts it, appends the ICV and
/// returns the ESP header and IV to put before it.
fn seal_tail(
    sa: &Sa,
    seq: u64,
    buf: &mut PacketBuf,
    start: usize,
    nh: u8,
) -> Result<[u8; 16], OutDrop> {
    let pad = pad_len(buf.len() - start);
    let mut trailer = [0u8; 5];
    for (i, b) in trailer[..pad].iter_mut().enumerate() {
        *b = i as u8 + 1;
    }
    trailer[pad] = pad as u8;
    trailer[pad + 1] = nh;
    buf.extend_from_slice(&trailer[..pad + 2]);
    let spi = sa.cfg.spi;
    let (a, alen) = aad(spi, seq, sa.cfg.flags.esn);
    let iv = seq.to_be_bytes();
    let icv = sa
        .key
        .seal(&iv, &a[..alen], &mut buf.as_mut_slice()[start..])
        .ok_or(OutDrop::Crypto)?;
    buf.extend_from_slice(&icv);
    let mut head = [0u8; 16];
    head[..4].copy_from_slice(&spi.to_be_bytes());
    head[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
    head[8..].copy_from_slice(&iv);
    Ok(head)
}

/// The bytes ESP adds to a payload of `payload` bytes (header, IV, padding, trailer, ICV).
pub(crate) fn esp_growth(payload: usize) -> usize {
    ESP_FIXED_OVERHEAD + pad_len(payload) + 2
}

/// Encapsulates the IP packet in `buf` with sequence number `seq`; returns the bytes Linux
/// counts for the SA (the packet before its trailer).
pub(crate) fn encapsulate(sa: &mut Sa, seq: u64, buf: &mut PacketBuf) -> Result<u64, OutDrop> {
    match sa.cfg.mode {
        Mode::Tunnel => encap_tunnel(sa, seq, buf),
        Mode::Transport => encap_transport(sa, seq, buf),
    }
}

fn encap_tunnel(sa: &mut Sa, seq: u64, buf: &mut PacketBuf) -> Result<u64, OutDrop> {
    let inner = buf.as_slice();
    // The inner header's DSCP/ECN, DF and flow label shape the outer header.
    let (nh, tos, df, flow_label) = match inner.first().map(|b| b >> 4) {
        Some(4) => {
            let ip = Ipv4Packet::new_checked(inner).map_err(|_| OutDrop::BadPacket)?;
            let len = usize::from(ip.total_len());
            let (tos, df) = (ip.dscp_ecn(), ip.dont_frag());
            buf.truncate(len);
            (IPPROTO_IPIP, tos, df, 0)
        }
        Some(6) => {
            let ip = Ipv6Packet::new_checked(inner).map_err(|_| OutDrop::BadPacket)?;
            let len = 40 + usize::from(ip.payload_len());
            let (tc, fl) = (ip.traffic_class(), ip.flow_label());
            buf.truncate(len);
            // Linux sets DF on an IPv4 header around IPv6: IPv6 is never fragmented en route.
            (IPPROTO_IPV6, tc, true, fl)
        }
        _ => return Err(OutDrop::BadPacket),
    };
    let ecn = if sa.cfg.flags.noecn {
        0
    } else if tos & ECN_MASK == ECN_CE {
        // RFC 6040 normal mode: CE is not copied outward (it would be lost at decapsulation).
        ECN_ECT0
    } else {
        tos & ECN_MASK
    };
    let outer_tos = (tos & !ECN_MASK) | ecn;
    let inner_len = buf.len();
    let esp_len = inner_len + esp_growth(inner_len);
    let outer_len = if sa.cfg.dst.is_ipv4() { 20 } else { 40 };
    if outer_len + esp_len > usize::from(u16::MAX) {
        return Err(OutDrop::TooBig);
    }
    let head = seal_tail(sa, seq, buf, 0, nh)?;
    let ident = sa.ident;
    let hdr = buf.prepend(outer_len + 16);
    hdr[outer_len..].copy_from_slice(&head);
    match (sa.cfg.src, sa.cfg.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            wire::ipv4::emit_header(hdr, s, d, proto::ESP, OUTER_TTL, esp_len, ident)
                .map_err(|_| OutDrop::TooBig)?;
            let mut ip = Ipv4Packet::new_unchecked(&mut hdr[..20]);
            ip.set_dscp_ecn(outer_tos);
            ip.set_frag(df && !sa.cfg.flags.nopmtudisc, false, 0);
            ip.fill_checksum();
            sa.ident = ident.wrapping_add(1);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            wire::ipv6::emit_header(hdr, &s, &d, proto::ESP, OUTER_TTL, esp_len)
                .map_err(|_| OutDrop::TooBig)?;
            let mut ip = Ipv6Packet::new_unchecked(&mut hdr[..40]);
            ip.set_traffic_class(outer_tos);
            ip.set_flow_label(flow_label);
        }
        // `SaConfig::validate` refuses mixed endpoints.
        _ => return Err(OutDrop::BadPacket),
    }
    Ok((outer_len + 16 + inner_len) as u64)
}

/// Where ESP goes in an IPv6 packet in transport mode: after Hop-by-Hop, Routing and the
/// Destination Options that precede a Routing header (RFC 4303 §3.1.1). Returns the offset
/// of the byte that names the next header there, and the offset where ESP goes.
fn v6_esp_position(pkt: &[u8]) -> Option<(usize, usize)> {
    let ip = Ipv6Packet::new_checked(pkt).ok()?;
    let walk = wire::walk_ext_headers(ip.next_header(), ip.payload()).ok()?;
    let hdrs = walk.headers.as_slice();
    let last_routing = hdrs.iter().rposition(|h| h.kind == proto::IPV6_ROUTE);
    let mut nh_at = 6;
    let mut at = 40;
    for (i, h) in hdrs.iter().enumerate() {
        let before = match h.kind {
            proto::HOPOPT | proto::IPV6_ROUTE => true,
            proto::IPV6_OPTS => last_routing.is_some_and(|r| i < r),
            _ => false,
        };
        if !before {
            break;
        }
        nh_at = 40 + h.offset;
        at = 40 + h.offset + h.len;
    }
    Some((nh_at, at))
}

fn encap_transport(sa: &mut Sa, seq: u64, buf: &mut PacketBuf) -> Result<u64, OutDrop> {
    let pkt = buf.as_slice();
    let v4 = match pkt.first().map(|b| b >> 4) {
        Some(4) => true,
        Some(6) => false,
        _ => return Err(OutDrop::BadPacket),
    };
    if v4 != sa.cfg.dst.is_ipv4() {
        return Err(OutDrop::BadPacket);
    }
    let (nh_at, at, len) = if v4 {
        let ip = Ipv4Packet::new_checked(pkt).map_err(|_| OutDrop::BadPacket)?;
        (9, ip.header_len(), usize::from(ip.total_len()))
    } else {
        let ip = Ipv6Packet::new_checked(pkt).map_err(|_| OutDrop::BadPacket)?;
        let len = 40 + usize::from(ip.payload_len());
        let (nh_at, at) = v6_esp_position(pkt).ok_or(OutDrop::BadPacket)?;
        (nh_at, at, len)
    };
    buf.truncate(len);
    let nh = buf.as_slice()[nh_at];
    let new_len = len + esp_growth(len - at);
    if new_len > usize::from(u16::MAX) + if v4 { 0 } else { 40 } {
        return Err(OutDrop::TooBig);
    }
    let head = seal_tail(sa, seq, buf, at, nh)?;
    // Room for the ESP header and IV, then the IP headers slide back to the front.
    buf.prepend(16);
    let p = buf.as_mut_slice();
    p.copy_within(16..16 + at, 0);
    p[at..at + 16].copy_from_slice(&head);
    p[nh_at] = proto::ESP;
    if v4 {
        let mut ip = Ipv4Packet::new_unchecked(&mut p[..]);
        ip.set_total_len(new_len as u16);
        ip.fill_checksum();
    } else {
        Ipv6Packet::new_unchecked(&mut p[..]).set_payload_len((new_len - 40) as u16);
    }
    Ok((at + 16 + (len - at)) as u64)
}

/// Where the ESP header of an inbound packet is, and what the outer header says.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Outer {
    /// Offset of the ESP header.
    pub(crate) esp_at: usize,
    /// Offset of the byte naming ESP as the next header.
    pub(crate) nh_at: usize,
    pub(crate) v4: bool,
    pub(crate) dst: IpAddr,
    /// DSCP and ECN of the outer header.
    pub(crate) tos: u8,
    pub(crate) spi: u32,
    pub(crate) seq_lo: u32,
}

/// Finds the ESP header of `buf` (trimmed to the IP length) and reads its SPI and sequence
/// number.
pub(crate) fn parse_outer(buf: &mut PacketBuf) -> Result<Outer, InDrop> {
    let pkt = buf.as_slice();
    let (v4, dst, tos, nh_at, esp_at, len) = match pkt.first().map(|b| b >> 4) {
        Some(4) => {
            let ip = Ipv4Packet::new_checked(pkt).map_err(|_| InDrop::NotEsp)?;
            if ip.is_fragment() {
                return Err(InDrop::Fragment);
            }
            if ip.protocol() != proto::ESP {
                return Err(InDrop::NotEsp);
            }
            let len = usize::from(ip.total_len());
            (
                true,
                IpAddr::V4(ip.dst_addr()),
                ip.dscp_ecn(),
                9,
                ip.header_len(),
                len,
            )
        }
        Some(6) => {
            let ip = Ipv6Packet::new_checked(pkt).map_err(|_| InDrop::NotEsp)?;
            let walk = wire::walk_ext_headers(ip.next_header(), ip.payload())
                .map_err(|_| InDrop::NotEsp)?;
            if walk.frag.is_some() {
                return Err(InDrop::Fragment);
            }
            if walk.terminated != wire::Terminal::Esp {
                return Err(InDrop::NotEsp);
            }
            let nh_at = walk.headers.as_slice().last().map_or(6, |h| 40 + h.offset);
            let len = 40 + usize::from(ip.payload_len());
            let tc = ip.traffic_class();
            (
                false,
                IpAddr::V6(ip.dst_addr()),
                tc,
                nh_at,
                40 + walk.l4_offset,
                len,
            )
        }
        _ => return Err(InDrop::NotEsp),
    };
    buf.truncate(len);
    let esp = buf
        .as_slice()
        .get(esp_at..esp_at + ESP_HEADER_LEN)
        .ok_or(InDrop::TruncatedHeader)?;
    Ok(Outer {
        esp_at,
        nh_at,
        v4,
        dst,
        tos,
        spi: u32::from_be_bytes([esp[0], esp[1], esp[2], esp[3]]),
        seq_lo: u32::from_be_bytes([esp[4], esp[5], esp[6], esp[7]]),
    })
}

/// What the decrypted payload held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Opened {
    /// A packet of `len` payload bytes with this next header, now decrypted in place after
    /// the ESP header and IV.
    Payload { nh: u8, len: usize },
}

/// Verifies and decrypts the ESP payload in place, then checks the trailer.
pub(crate) fn open(sa: &Sa, seq: u64, o: &Outer, buf: &mut PacketBuf) -> Result<Opened, InDrop> {
    let pkt = buf.as_mut_slice();
    let body = o.esp_at + ESP_HEADER_LEN;
    // At least the IV, the ICV and the two trailer bytes.
    if pkt.len() < body + IV_LEN + 2 + ICV_LEN {
        return Err(InDrop::Truncated);
    }
    let ct_end = pkt.len() - ICV_LEN;
    let mut icv = [0u8; ICV_LEN];
    icv.copy_from_slice(&pkt[ct_end..]);
    let mut iv = [0u8; IV_LEN];
    iv.copy_from_slice(&pkt[body..body + IV_LEN]);
    let (a, alen) = aad(o.spi, seq, sa.cfg.flags.esn);
    let ct = &mut pkt[body + IV_LEN..ct_end];
    sa.key
        .open(&iv, &a[..alen], ct, &icv)
        .map_err(|_| InDrop::Integrity)?;
    let n = ct.len();
    let (pad, nh) = (usize::from(ct[n - 2]), ct[n - 1]);
    if pad + 2 > n {
        return Err(InDrop::BadPadLength);
    }
    let payload = n - 2 - pad;
    if ct[payload..n - 2]
        .iter()
        .enumerate()
        .any(|(i, &b)| usize::from(b) != i + 1)
    {
        return Err(InDrop::BadPadding);
    }
    Ok(Opened::Payload { nh, len: payload })
}

/// Replaces the ESP packet in `buf` by what it carried: the inner packet (tunnel) or the
/// packet with its headers restored (transport).
pub(crate) fn restore(
    sa: &Sa,
    o: &Outer,
    nh: u8,
    len: usize,
    buf: &mut PacketBuf,
) -> Result<(), InDrop> {
    let start = o.esp_at + ESP_HEADER_LEN + IV_LEN;
    match sa.cfg.mode {
        Mode::Tunnel => {
            let inner = &buf.as_slice()[start..start + len];
            let inner_len = match (nh, inner.first().map(|b| b >> 4)) {
                (IPPROTO_IPIP, Some(4)) => Ipv4Packet::new_checked(inner)
                    .map(|ip| usize::from(ip.total_len()))
                    .map_err(|_| InDrop::BadInner)?,
                (IPPROTO_IPV6, Some(6)) => Ipv6Packet::new_checked(inner)
                    .map(|ip| 40 + usize::from(ip.payload_len()))
                    .map_err(|_| InDrop::BadInner)?,
                _ => return Err(InDrop::BadInner),
            };
            buf.trim_front(start);
            // Beyond the inner length is TFC padding (RFC 4303 §2.7).
            buf.truncate(inner_len);
            decap_tos(sa, o.tos, buf.as_mut_slice());
        }
        Mode::Transport => {
            let at = o.esp_at;
            let p = buf.as_mut_slice();
            p[o.nh_at] = nh;
            p.copy_within(0..at, 16);
            buf.trim_front(16);
            buf.truncate(at + len);
            let p = buf.as_mut_slice();
            if o.v4 {
                let mut ip = Ipv4Packet::new_unchecked(&mut p[..]);
                ip.set_total_len((at + len) as u16);
                ip.fill_checksum();
            } else {
                Ipv6Packet::new_unchecked(&mut p[..]).set_payload_len((at + len - 40) as u16);
            }
        }
    }
    Ok(())
}

/// RFC 6040 at the tunnel egress (as Linux: CE marks an ECN-capable inner packet, a
/// not-ECT one passes unmarked), and `decap-dscp`.
fn decap_tos(sa: &Sa, outer: u8, inner: &mut [u8]) {
    let v4 = inner[0] >> 4 == 4;
    let old = if v4 {
        inner[1]
    } else {
        (inner[0] << 4) | (inner[1] >> 4)
    };
    let mut new = old;
    if !sa.cfg.flags.noecn && outer & ECN_MASK == ECN_CE && old & ECN_MASK != 0 {
        new |= ECN_CE;
    }
    if sa.cfg.flags.decap_dscp {
        new = (outer & !ECN_MASK) | (new & ECN_MASK);
    }
    if new == old {
        return;
    }
    if v4 {
        let mut ip = Ipv4Packet::new_unchecked(inner);
        ip.set_dscp_ecn(new);
        ip.fill_checksum();
    } else {
        Ipv6Packet::new_unchecked(inner).set_traffic_class(new);
    }
}

/// The largest inner packet an SA can carry in an outer packet of `mtu` bytes (Linux's
/// `esp4_get_mtu` / `esp6_get_mtu`).
pub(crate) fn inner_mtu(sa: &Sa, mtu: usize) -> usize {
    let ip = if sa.cfg.dst.is_ipv4() { 20 } else { 40 };
    let (header, net_adj) = match sa.cfg.mode {
        Mode::Tunnel => (ip + ESP_HEADER_LEN + IV_LEN, 0),
        Mode::Transport => (ESP_HEADER_LEN + IV_LEN, ip),
    };
    (mtu.saturating_sub(header + ICV_LEN + net_adj) & !3)
        .saturating_add(net_adj)
        .saturating_sub(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_aligns_to_four() {
        for n in 0..20 {
            assert_eq!((n + pad_len(n) + 2) % 4, 0);
            assert!(pad_len(n) < 4);
        }
    }
}
