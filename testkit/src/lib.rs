//! The one packet-building kit of the workspace's tests and benches: whole IPv4/IPv6 packets
//! with correct checksums (TCP with options, UDP, ICMP/ICMPv6 echo and errors quoting a
//! packet, IPv4 fragments), built from address strings so that a test reads like the
//! packet it sends.
//!
//! ```
//! use testkit::{flags::SYN, tcp, udp};
//!
//! let syn = tcp("192.0.2.2", 40000, "198.51.100.9", 80, 1, 0, SYN, b"");
//! assert_eq!((syn[0] >> 4, syn[9], syn.len()), (4, 6, 40));
//! let dgram = udp("2001:db8:1::2", 5000, "2001:db8:2::9", 53, b"q");
//! assert_eq!((dgram[0] >> 4, dgram[6], dgram.len()), (6, 17, 40 + 8 + 1));
//! ```
#![warn(missing_docs, unreachable_pub)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use wire::{checksum, ipv4, ipv6};

/// TCP flag bits.
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// Wraps an L4 message in an IP header of the family of `src`, filling the
/// L4 checksum at `ck_at` (None: leave it) with the pseudo-header.
pub fn ip(
    src: &str,
    dst: &str,
    proto: u8,
    ttl: u8,
    mut l4: Vec<u8>,
    ck_at: Option<usize>,
) -> Vec<u8> {
    let (s, d): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
    match (s, d) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            if let Some(at) = ck_at {
                let ps = checksum::pseudo_header_v4(s, d, proto, l4.len() as u32);
                let ck = if proto == 1 {
                    checksum::data(&l4)
                } else {
                    checksum::fold(checksum::combine(ps, checksum::sum(&l4)))
                };
                l4[at..at + 2].copy_from_slice(&ck.to_be_bytes());
            }
            let mut p = vec![0u8; 20];
            ipv4::emit_header(&mut p, s, d, proto, ttl, l4.len(), 0x1234).unwrap();
            p.extend_from_slice(&l4);
            p
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            if let Some(at) = ck_at {
                let ps = checksum::pseudo_header_v6(&s, &d, proto, l4.len() as u32);
                let ck = checksum::fold(checksum::combine(ps, checksum::sum(&l4)));
                l4[at..at + 2].copy_from_slice(&ck.to_be_bytes());
            }
            let mut p = vec![0u8; 40];
            ipv6::emit_header(&mut p, &s, &d, proto, ttl, l4.len()).unwrap();
            p.extend_from_slice(&l4);
            p
        }
        _ => panic!("mixed families"),
    }
}

/// A TCP segment (20-byte header plus `opts`, padded) inside an IP packet.
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
    seq: u32,
    ack: u32,
    fl: u8,
    payload: &[u8],
) -> Vec<u8> {
    tcp_opts(src, sport, dst, dport, seq, ack, fl, 65535, &[], payload)
}

/// A TCP segment with a window and raw option bytes.
#[allow(clippy::too_many_arguments)]
pub fn tcp_opts(
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
    seq: u32,
    ack: u32,
    fl: u8,
    window: u16,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut o = opts.to_vec();
    while !o.len().is_multiple_of(4) {
        o.push(1);
    }
    let hl = 20 + o.len();
    let mut t = vec![0u8; hl];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = ((hl / 4) as u8) << 4;
    t[13] = fl;
    t[14..16].copy_from_slice(&window.to_be_bytes());
    t[20..].copy_from_slice(&o);
    t.extend_from_slice(payload);
    ip(src, dst, 6, 64, t, Some(16))
}

/// A UDP datagram.
pub fn udp(src: &str, sport: u16, dst: &str, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = vec![0u8; 8];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(payload);
    ip(src, dst, 17, 64, u, Some(6))
}

/// An ICMP (v4) or ICMPv6 echo request/reply.
pub fn echo(src: &str, dst: &str, request: bool, id: u16, seq: u16, ttl: u8) -> Vec<u8> {
    let v6 = src.contains(':');
    let ty = match (v6, request) {
        (false, true) => 8,
        (false, false) => 0,
        (true, true) => 128,
        (true, false) => 129,
    };
    let mut m = vec![ty, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(b"tunfilter-echo");
    ip(src, dst, if v6 { 58 } else { 1 }, ttl, m, Some(2))
}

/// An ICMP/ICMPv6 error from `src` quoting `offending`.
pub fn icmp_error(src: &str, offending: &[u8], ty: u8, code: u8) -> Vec<u8> {
    let v6 = src.contains(':');
    let dst = if v6 {
        Ipv6Addr::from(<[u8; 16]>::try_from(&offending[8..24]).unwrap()).to_string()
    } else {
        Ipv4Addr::from(<[u8; 4]>::try_from(&offending[12..16]).unwrap()).to_string()
    };
    let q = if v6 {
        offending.len().min(1232)
    } else {
        (((offending[0] & 15) as usize) * 4 + 8).min(offending.len())
    };
    let mut m = vec![ty, code, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&offending[..q]);
    ip(src, &dst, if v6 { 58 } else { 1 }, 64, m, Some(2))
}

/// Splits an IPv4 packet into fragments at the given (offset, length) of
/// its payload; `id` goes into every fragment.
pub fn frag4(whole: &[u8], cuts: &[(usize, usize)], id: u16) -> Vec<Vec<u8>> {
    let ihl = usize::from(whole[0] & 0x0f) * 4;
    let payload = &whole[ihl..];
    cuts.iter()
        .map(|&(off, len)| {
            let mut p = whole[..ihl].to_vec();
            let end = (off + len).min(payload.len());
            let more = end < payload.len();
            p[2..4].copy_from_slice(&((ihl + end - off) as u16).to_be_bytes());
            p[4..6].copy_from_slice(&id.to_be_bytes());
            let f = (off / 8) as u16 | if more { 0x2000 } else { 0 };
            p[6..8].copy_from_slice(&f.to_be_bytes());
            p[10] = 0;
            p[11] = 0;
            let ck = checksum::data(&p);
            p[10..12].copy_from_slice(&ck.to_be_bytes());
            p.extend_from_slice(&payload[off..end]);
            p
        })
        .collect()
}

/// The MSS option's value in TCP options bytes (`None` without one or when they are broken).
pub fn tcp_mss(mut o: &[u8]) -> Option<u16> {
    while let [kind, rest @ ..] = o {
        match kind {
            0 => return None,
            1 => o = rest,
            _ => {
                let len = *rest.first()? as usize;
                if len < 2 || len > o.len() {
                    return None;
                }
                if *kind == 2 && len == 4 {
                    return Some(u16::from_be_bytes([o[2], o[3]]));
                }
                o = &o[len..];
            }
        }
    }
    None
}
