//! NAT, done the netfilter way: the first packet of a connection picks a
//! mapping (a unique reply tuple) in the nat table; every later packet, in
//! both directions, is rewritten from the connection alone.
//!
//! One rule drives all rewriting: a packet of direction `d` must leave
//! looking like `invert(tuples[!d])`. Destination-manipulating hooks
//! (PREROUTING, OUTPUT) fix its destination, source-manipulating hooks
//! (POSTROUTING, INPUT) its source. ICMP errors have the quoted packet
//! translated the opposite way. Checksums are updated incrementally (RFC
//! 1624), including the L4 pseudo-header; SCTP's CRC32c is recomputed.
//!
//! The nat-table targets (`-j SNAT/DNAT/MASQUERADE/REDIRECT/NETMAP`) resolve
//! to a [`NatTarget`]; [`choose`] turns one into a unique reply tuple for a
//! new connection and [`rewrite`] / [`rewrite_icmp_error`] apply it to packets.
//! [`mapping`] keeps RFC 4787 endpoint-independent UDP mappings.
//!
//! ```
//! use nat::{netmap, resolve, Manip, NatTarget};
//!
//! // NETMAP keeps the host part and replaces the prefix.
//! let to = "198.51.100.0/24".parse().unwrap();
//! assert_eq!(netmap("192.0.2.77".parse().unwrap(), &to), "198.51.100.77".parse::<std::net::IpAddr>().unwrap());
//! // MASQUERADE resolves to a source translation to the egress address.
//! let masquerade = NatTarget::Masquerade(Default::default());
//! let (manip, range) = resolve(&masquerade, Some("203.0.113.1".parse().unwrap())).unwrap();
//! assert_eq!(manip, Manip::Src);
//! assert_eq!(range.min_addr, Some("203.0.113.1".parse().unwrap()));
//! ```
#![warn(missing_docs, unreachable_pub)]

pub mod mangle;
pub mod mapping;

use conntrack::tuple::Tuple;
use ipnet::IpNet;
use std::net::IpAddr;
use wire::checksum;

/// Where a NAT target maps an address and port to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct NatRange {
    /// First address (None: keep the address).
    pub min_addr: Option<IpAddr>,
    /// Last address, inclusive (None: same as `min_addr`).
    pub max_addr: Option<IpAddr>,
    /// Inclusive port range (None: keep the port if it is free).
    pub ports: Option<(u16, u16)>,
    /// `--random`: do not try the original port first; the search starts at
    /// a port derived from a keyed hash of the addresses and ports (a secret
    /// per engine), so one flow always starts at the same port.
    pub random: bool,
    /// `--random-fully`: do not try the original port first; the search
    /// starts at a fresh pseudo-random port for every connection.
    pub random_fully: bool,
    /// `--persistent`: the same source always gets the same address.
    pub persistent: bool,
}

/// A NAT target as the nat table chose it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NatTarget {
    /// `-j SNAT --to-source`.
    Snat(NatRange),
    /// `-j DNAT --to-destination`.
    Dnat(NatRange),
    /// `-j MASQUERADE`: SNAT to the egress interface's address.
    Masquerade(NatRange),
    /// `-j REDIRECT`: DNAT to the ingress interface's address.
    Redirect(NatRange),
    /// `-j NETMAP --to PREFIX`: map the prefix, keep the host bits.
    Netmap {
        /// The prefix to map into.
        prefix: IpNet,
    },
}

/// Which end of a packet a manipulation changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manip {
    /// Source address/port (SNAT side: POSTROUTING, INPUT).
    Src,
    /// Destination address/port (DNAT side: PREROUTING, OUTPUT).
    Dst,
}

/// Bound on port candidates examined before giving up (the drop is counted
/// as "nat: no free port").
pub const MAX_TRIES: u32 = 4096;

fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 33 | 132 | 136)
}

fn is_icmp_query(proto: u8) -> bool {
    matches!(proto, 1 | 58)
}

/// A small deterministic mixer (splitmix64): port search must be
/// reproducible in the simulator yet spread over the range.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn addr_key(a: &IpAddr) -> u64 {
    match a {
        IpAddr::V4(v) => u64::from(u32::from(*v)),
        IpAddr::V6(v) => {
            let x = u128::from(*v);
            (x as u64) ^ ((x >> 64) as u64)
        }
    }
}

fn addr_add(a: IpAddr, n: u128) -> IpAddr {
    match a {
        IpAddr::V4(v) => IpAddr::V4((u32::from(v).wrapping_add(n as u32)).into()),
        IpAddr::V6(v) => IpAddr::V6((u128::from(v).wrapping_add(n)).into()),
    }
}

fn addr_span(lo: &IpAddr, hi: &IpAddr) -> u128 {
    match (lo, hi) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            u128::from(u32::from(*b).saturating_sub(u32::from(*a))) + 1
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(*b)
            .saturating_sub(u128::from(*a))
            .saturating_add(1),
        _ => 1,
    }
}

/// Maps `a` into `prefix` keeping the host bits (NETMAP).
pub fn netmap(a: IpAddr, prefix: &IpNet) -> IpAddr {
    match (a, prefix) {
        (IpAddr::V4(v), IpNet::V4(p)) => {
            let m = u32::from(p.netmask());
            IpAddr::V4(((u32::from(v) & !m) | (u32::from(p.network()) & m)).into())
        }
        (IpAddr::V6(v), IpNet::V6(p)) => {
            let m = u128::from(p.netmask());
            IpAddr::V6(((u128::from(v) & !m) | (u128::from(p.network()) & m)).into())
        }
        (a, _) => a,
    }
}

/// The range a target resolves to, given the addresses only the engine
/// knows (MASQUERADE: the egress address; REDIRECT: the ingress address).
pub fn resolve(target: &NatTarget, local: Option<IpAddr>) -> Option<(Manip, NatRange)> {
    match target {
        NatTarget::Snat(r) => Some((Manip::Src, r.clone())),
        NatTarget::Dnat(r) => Some((Manip::Dst, r.clone())),
        NatTarget::Masquerade(r) => Some((
            Manip::Src,
            NatRange {
                min_addr: Some(local?),
                max_addr: Some(local?),
                ..r.clone()
            },
        )),
        NatTarget::Redirect(r) => Some((
            Manip::Dst,
            NatRange {
                min_addr: Some(local?),
                max_addr: Some(local?),
                ..r.clone()
            },
        )),
        NatTarget::Netmap { .. } => None,
    }
}

/// Picks the new reply tuple for a connection whose original tuple is
/// `orig` and whose current reply tuple is `reply`, so that the `manip` side
/// of the original direction lands in `range`. `in_use` says whether a reply
/// tuple is taken. Returns `None` when every candidate is taken (after at
/// most [`MAX_TRIES`] ports).
pub fn choose(
    orig: &Tuple,
    reply: &Tuple,
    manip: Manip,
    range: &NatRange,
    salt: u64,
    in_use: impl Fn(&Tuple) -> bool,
) -> Option<Tuple> {
    // In the reply tuple the original source appears as the destination.
    let mut cand = *reply;
    let (cur_addr, cur_port) = match manip {
        Manip::Src => (orig.src, orig.src_id),
        Manip::Dst => (orig.dst, orig.dst_id),
    };
    // Address: one per client (persistent-style hashing of the other side
    // unless --persistent asks to ignore it), as netfilter spreads sources.
    let addr = match (range.min_addr, range.max_addr) {
        (Some(lo), hi) => {
            let hi = hi.unwrap_or(lo);
            let span = addr_span(&lo, &hi);
            let key = if range.persistent {
                addr_key(&orig.src)
            } else {
                addr_key(&orig.src) ^ addr_key(&orig.dst).rotate_left(13)
            };
            addr_add(lo, u128::from(mix(key ^ salt)) % span.max(1))
        }
        (None, _) => cur_addr,
    };
    let set = |t: &mut Tuple, a: IpAddr, p: u16| match manip {
        Manip::Src => {
            t.dst = a;
            if has_ports(t.proto) {
                t.dst_id = p;
            } else if is_icmp_query(t.proto) {
                t.src_id = p;
                t.dst_id = p;
            }
        }
        Manip::Dst => {
            t.src = a;
            if has_ports(t.proto) {
                t.src_id = p;
            }
        }
    };
    let portable = has_ports(orig.proto) || (is_icmp_query(orig.proto) && manip == Manip::Src);
    let (lo, hi) = match range.ports {
        Some(r) if portable => r,
        _ if portable && manip == Manip::Src => {
            // Keep the port class of the original as netfilter does.
            if cur_port < 512 {
                (1, 511)
            } else if cur_port < 1024 {
                (600, 1023)
            } else {
                (1024, 65535)
            }
        }
        _ => (cur_port, cur_port),
    };
    let (lo, hi) = if is_icmp_query(orig.proto) && range.ports.is_none() {
        (0, 65535)
    } else {
        (lo, hi)
    };
    if !range.random && !range.random_fully && (lo..=hi).contains(&cur_port) {
        set(&mut cand, addr, cur_port);
        if !in_use(&cand) {
            return Some(cand);
        }
    }
    if !portable {
        set(&mut cand, addr, cur_port);
        return (!in_use(&cand)).then_some(cand);
    }
    let size = u32::from(hi - lo) + 1;
    let start =
        (mix(addr_key(&orig.src) ^ u64::from(orig.src_id) << 32 ^ addr_key(&orig.dst) ^ salt)
            % u64::from(size)) as u32;
    for i in 0..size.min(MAX_TRIES) {
        let p = lo + ((start + i) % size) as u16;
        set(&mut cand, addr, p);
        if !in_use(&cand) {
            return Some(cand);
        }
    }
    None
}

/// Offset of the L4 checksum field for protocols whose checksum covers the
/// pseudo-header (and ICMPv4, which does not).
fn l4_check_at(proto: u8) -> Option<usize> {
    match proto {
        6 => Some(16),
        17 | 136 | 33 => Some(6),
        1 | 58 => Some(2),
        _ => None,
    }
}

fn rd16(p: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*p.get(at)?, *p.get(at + 1)?]))
}

fn wr16(p: &mut [u8], at: usize, v: u16) {
    if let Some(b) = p.get_mut(at..at + 2) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}

/// Rewrites one end of an IP packet (`l4_off` = where the L4 header starts,
/// `first` = whether the L4 header is present, i.e. not a later fragment).
/// Addresses, ports (or the ICMP echo identifier), and every checksum that
/// covers them are updated. Returns false if the packet is too short.
pub fn rewrite(
    pkt: &mut [u8],
    l4_off: usize,
    proto: u8,
    first: bool,
    manip: Manip,
    addr: IpAddr,
    port: Option<u16>,
) -> bool {
    rewrite_with(pkt, l4_off, proto, first, manip, addr, port, false)
}

/// [`rewrite`] for a packet whose L4 checksum is partial (offloaded: it holds only the
/// pseudo-header sum, see tunfilter's offload module) when `partial` is true: address changes update
/// it as a pseudo-header sum, port changes leave it alone (the completed checksum covers
/// them).
#[allow(clippy::too_many_arguments)]
pub fn rewrite_with(
    pkt: &mut [u8],
    l4_off: usize,
    proto: u8,
    first: bool,
    manip: Manip,
    addr: IpAddr,
    port: Option<u16>,
    partial: bool,
) -> bool {
    let v4 = pkt.first().map(|b| b >> 4) == Some(4);
    let (a_off, a_len) = match (v4, manip) {
        (true, Manip::Src) => (12, 4),
        (true, Manip::Dst) => (16, 4),
        (false, Manip::Src) => (8, 16),
        (false, Manip::Dst) => (24, 16),
    };
    let new: Vec<u8> = match addr {
        IpAddr::V4(a) if v4 => a.octets().to_vec(),
        IpAddr::V6(a) if !v4 => a.octets().to_vec(),
        _ => return false,
    };
    let Some(old) = pkt.get(a_off..a_off + a_len).map(<[u8]>::to_vec) else {
        return false;
    };
    if pkt.len() < l4_off {
        return false;
    }
    if old != new {
        pkt[a_off..a_off + a_len].copy_from_slice(&new);
        if v4 {
            let ck = checksum::update_bytes(rd16(pkt, 10).unwrap_or(0), &old, &new);
            wr16(pkt, 10, ck);
        }
        // The L4 checksum covers the pseudo-header (not ICMPv4).
        if first && proto != 1 {
            if let Some(at) = l4_check_at(proto) {
                let at = l4_off + at;
                if let Some(ck) = rd16(pkt, at) {
                    // UDP over IPv4 without a checksum stays without one.
                    if partial {
                        wr16(pkt, at, checksum::update_partial(ck, &old, &new));
                    } else if !(proto == 17 && v4 && ck == 0) {
                        let mut n = checksum::update_bytes(ck, &old, &new);
                        if proto == 17 && n == 0 {
                            n = 0xffff;
                        }
                        wr16(pkt, at, n);
                    }
                }
            }
        }
    }
    if !first {
        return true;
    }
    let Some(p) = port else {
        return true;
    };
    let port_at = if has_ports(proto) {
        l4_off + if manip == Manip::Src { 0 } else { 2 }
    } else if is_icmp_query(proto) {
        l4_off + 4
    } else {
        return true;
    };
    let Some(oldp) = rd16(pkt, port_at) else {
        return false;
    };
    if oldp == p {
        return true;
    }
    wr16(pkt, port_at, p);
    if partial {
        return true;
    }
    if proto == 132 {
        // SCTP: CRC32c over the whole SCTP packet, checksum field zeroed.
        if let Some(sctp) = pkt.get_mut(l4_off..) {
            if sctp.len() >= 12 {
                sctp[8..12].fill(0);
                let crc = checksum::crc32c(sctp);
                sctp[8..12].copy_from_slice(&crc.to_le_bytes());
            }
        }
    } else if let Some(at) = l4_check_at(proto) {
        let at = l4_off + at;
        if let Some(ck) = rd16(pkt, at) {
            if !(proto == 17 && v4 && ck == 0) {
                let mut n = checksum::update16(ck, oldp, p);
                if proto == 17 && n == 0 {
                    n = 0xffff;
                }
                wr16(pkt, at, n);
            }
        }
    }
    true
}

/// Translates an ICMP/ICMPv6 error: the outer `manip` end goes to
/// (`addr`, -) and the quoted packet's opposite end to (`addr`, `port`),
/// since the quote travelled the other way. The ICMP checksum is then
/// recomputed over the whole message.
pub fn rewrite_icmp_error(
    pkt: &mut [u8],
    l4_off: usize,
    manip: Manip,
    addr: IpAddr,
    port: Option<u16>,
) -> bool {
    let v4 = pkt.first().map(|b| b >> 4) == Some(4);
    let outer_proto = if v4 { 1 } else { 58 };
    if !rewrite(pkt, l4_off, outer_proto, false, manip, addr, None) {
        return false;
    }
    let inner_off = l4_off + 8;
    let Some(inner) = pkt.get_mut(inner_off..) else {
        return false;
    };
    let (inner_l4, inner_proto) = match inner.first().map(|b| b >> 4) {
        Some(4) if inner.len() >= 20 => (usize::from(inner[0] & 0x0f) * 4, inner[9]),
        Some(6) if inner.len() >= 40 => match wire::walk_ext_headers(inner[6], &inner[40..]) {
            Ok(w) => (40 + w.l4_offset, w.upper_proto),
            Err(_) => return false,
        },
        _ => return false,
    };
    let opposite = match manip {
        Manip::Src => Manip::Dst,
        Manip::Dst => Manip::Src,
    };
    // The quote is usually truncated: its L4 checksum can only be adjusted
    // incrementally, which `rewrite` does when the field is present.
    rewrite(inner, inner_l4, inner_proto, true, opposite, addr, port);
    // Outer ICMP checksum over the (possibly changed) message.
    let end = pkt.len();
    let (s, d) = (
        pkt.get(8..24).map(<[u8]>::to_vec),
        pkt.get(24..40).map(<[u8]>::to_vec),
    );
    let msg = &mut pkt[l4_off..end];
    if msg.len() < 4 {
        return false;
    }
    msg[2..4].fill(0);
    let ck = if v4 {
        checksum::data(msg)
    } else {
        let addr = |b: Option<Vec<u8>>| {
            <[u8; 16]>::try_from(b.as_deref()?)
                .ok()
                .map(std::net::Ipv6Addr::from)
        };
        let (Some(s), Some(d)) = (addr(s), addr(d)) else {
            return false;
        };
        checksum::upper_layer_v6(&s, &d, 58, msg)
    };
    msg[2..4].copy_from_slice(&ck.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str, sp: u16, d: &str, dp: u16, proto: u8) -> Tuple {
        Tuple {
            src: s.parse().unwrap(),
            dst: d.parse().unwrap(),
            src_id: sp,
            dst_id: dp,
            proto,
            zone: 0,
        }
    }

    fn range(a: &str, ports: Option<(u16, u16)>) -> NatRange {
        NatRange {
            min_addr: Some(a.parse().unwrap()),
            max_addr: Some(a.parse().unwrap()),
            ports,
            random: false,
            random_fully: false,
            persistent: false,
        }
    }

    #[test]
    fn snat_keeps_the_port_when_free_and_searches_when_taken() {
        let o = t("192.0.2.2", 40000, "203.0.113.9", 80, 6);
        let r = choose(
            &o,
            &o.invert(),
            Manip::Src,
            &range("198.51.100.1", None),
            0,
            |_| false,
        )
        .unwrap();
        assert_eq!(
            (r.dst.to_string(), r.dst_id),
            ("198.51.100.1".into(), 40000)
        );
        let taken = r;
        let r2 = choose(
            &o,
            &o.invert(),
            Manip::Src,
            &range("198.51.100.1", None),
            0,
            |c| *c == taken,
        )
        .unwrap();
        assert_ne!(r2.dst_id, 40000);
        assert!(r2.dst_id >= 1024);
        // A one-port range that is taken: exhaustion.
        assert!(choose(
            &o,
            &o.invert(),
            Manip::Src,
            &range("198.51.100.1", Some((5000, 5000))),
            0,
            |_| true
        )
        .is_none());
    }

    #[test]
    fn random_skips_the_original_port_and_random_fully_varies_the_start() {
        let o = t("192.0.2.2", 40000, "203.0.113.9", 80, 6);
        let pick = |r: &NatRange, salt: u64| {
            choose(&o, &o.invert(), Manip::Src, r, salt, |_| false)
                .unwrap()
                .dst_id
        };
        let mut random = range("198.51.100.1", Some((1024, 65535)));
        random.random = true;
        // --random never keeps the free original port and, keyed by the same
        // secret, starts one flow at the same port every time.
        let secret = 0x1234_5678;
        assert_ne!(pick(&random, secret), 40000);
        assert_eq!(pick(&random, secret), pick(&random, secret));
        // --random-fully: the engine passes a fresh salt per connection, so
        // the same flow lands on many different ports.
        let mut fully = range("198.51.100.1", Some((1024, 65535)));
        fully.random_fully = true;
        let ports: std::collections::HashSet<u16> = (0..64)
            .map(|i| pick(&fully, secret ^ (i * 0x9e37)))
            .collect();
        assert!(!ports.contains(&40000) || ports.len() > 1);
        assert!(ports.len() > 50, "only {} distinct ports", ports.len());
    }

    #[test]
    fn dnat_changes_the_reply_source() {
        let o = t("203.0.113.9", 5555, "198.51.100.1", 8080, 6);
        let r = choose(
            &o,
            &o.invert(),
            Manip::Dst,
            &range("192.0.2.2", Some((80, 80))),
            0,
            |_| false,
        )
        .unwrap();
        assert_eq!(
            (r.src.to_string(), r.src_id, r.dst_id),
            ("192.0.2.2".into(), 80, 5555)
        );
    }

    #[test]
    fn netmap_keeps_host_bits() {
        let p: IpNet = "198.51.100.0/24".parse().unwrap();
        assert_eq!(
            netmap("192.0.2.77".parse().unwrap(), &p).to_string(),
            "198.51.100.77"
        );
    }

    #[test]
    fn rewrite_keeps_checksums_valid() {
        // TCP over IPv4 and UDP over IPv6: rewrite both ends, verify fully.
        let mut p = vec![0u8; 20];
        let payload = [0u8; 24];
        wire::ipv4::emit_header(
            &mut p,
            [192, 0, 2, 2].into(),
            [203, 0, 113, 9].into(),
            6,
            64,
            24,
            1,
        )
        .unwrap();
        p.extend_from_slice(&payload);
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&80u16.to_be_bytes());
        p[32] = 5 << 4;
        let mut tcp = wire::TcpPacket::new_unchecked(&mut p[20..]);
        tcp.fill_checksum_v4([192, 0, 2, 2].into(), [203, 0, 113, 9].into());
        assert!(rewrite(
            &mut p,
            20,
            6,
            true,
            Manip::Src,
            "198.51.100.1".parse().unwrap(),
            Some(61000)
        ));
        let ip = wire::Ipv4Packet::new_checked(&p[..]).unwrap();
        assert!(ip.verify_checksum());
        let tcp = wire::TcpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(tcp.src_port(), 61000);
        assert!(tcp.verify_checksum_v4(ip.src_addr(), ip.dst_addr()));
    }

    fn udp_v4(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16) -> Vec<u8> {
        let mut p = vec![0u8; 20];
        wire::ipv4::emit_header(&mut p, src.into(), dst.into(), 17, 64, 12, 7).unwrap();
        p.extend_from_slice(&sp.to_be_bytes());
        p.extend_from_slice(&dp.to_be_bytes());
        p.extend_from_slice(&[0, 12, 0, 0, 1, 2, 3, 4]);
        let mut u = wire::UdpPacket::new_unchecked(&mut p[20..]);
        u.fill_checksum_v4(src.into(), dst.into());
        p
    }

    #[test]
    fn icmp_error_inner_packet_is_translated_the_other_way() {
        // The server's router reports port unreachable for a masqueraded
        // datagram (198.51.100.1:61000 -> 203.0.113.9:53); translating it back
        // must give the LAN host 192.0.2.2:5353 inside and out.
        let quoted = udp_v4([198, 51, 100, 1], 61000, [203, 0, 113, 9], 53);
        let mut body = vec![0u8; 8 + 28];
        let n = wire::icmp::emit_error(&mut body, 3, 3, 0, &quoted[..28]).unwrap();
        let mut err = vec![0u8; 20];
        wire::ipv4::emit_header(
            &mut err,
            [198, 51, 100, 254].into(),
            [198, 51, 100, 1].into(),
            1,
            64,
            n,
            9,
        )
        .unwrap();
        err.extend_from_slice(&body[..n]);
        assert!(rewrite_icmp_error(
            &mut err,
            20,
            Manip::Dst,
            "192.0.2.2".parse().unwrap(),
            Some(5353)
        ));
        let ip = wire::Ipv4Packet::new_checked(&err[..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.dst_addr().to_string(), "192.0.2.2");
        let m = wire::IcmpPacket::new_checked(ip.payload()).unwrap();
        assert!(m.verify_checksum());
        let inner = wire::Ipv4Packet::new_unchecked(&m.data()[..20]);
        assert!(inner.verify_checksum());
        assert_eq!(inner.src_addr().to_string(), "192.0.2.2");
        assert_eq!(u16::from_be_bytes([m.data()[20], m.data()[21]]), 5353);
    }

    #[test]
    fn masquerade_and_redirect_resolve_to_the_local_address() {
        let any = NatRange {
            min_addr: None,
            max_addr: None,
            ports: Some((1024, 2048)),
            random: true,
            random_fully: false,
            persistent: false,
        };
        let local: IpAddr = "198.51.100.1".parse().unwrap();
        let (m, r) = resolve(&NatTarget::Masquerade(any.clone()), Some(local)).unwrap();
        assert_eq!(
            (m, r.min_addr, r.ports, r.random),
            (Manip::Src, Some(local), Some((1024, 2048)), true)
        );
        let (m, _) = resolve(&NatTarget::Redirect(any.clone()), Some(local)).unwrap();
        assert_eq!(m, Manip::Dst);
        assert!(
            resolve(&NatTarget::Masquerade(any), None).is_none(),
            "no address on the egress link"
        );
    }

    #[test]
    fn udp_without_checksum_stays_without_one_and_echo_ids_are_rewritten() {
        let mut p = udp_v4([192, 0, 2, 2], 5000, [203, 0, 113, 9], 53);
        p[26..28].fill(0);
        assert!(rewrite(
            &mut p,
            20,
            17,
            true,
            Manip::Src,
            "198.51.100.1".parse().unwrap(),
            Some(6000)
        ));
        assert_eq!(&p[26..28], &[0, 0]);
        assert!(wire::Ipv4Packet::new_checked(&p[..])
            .unwrap()
            .verify_checksum());
        let mut e = vec![0u8; 20];
        let mut body = [0u8; 12];
        let n = wire::icmp::emit_echo(&mut body, 8, 77, 1, b"ping").unwrap();
        wire::ipv4::emit_header(
            &mut e,
            [192, 0, 2, 2].into(),
            [203, 0, 113, 9].into(),
            1,
            64,
            n,
            1,
        )
        .unwrap();
        e.extend_from_slice(&body[..n]);
        assert!(rewrite(
            &mut e,
            20,
            1,
            true,
            Manip::Src,
            "198.51.100.1".parse().unwrap(),
            Some(1234)
        ));
        let m = wire::IcmpPacket::new_checked(&e[20..]).unwrap();
        assert_eq!(m.echo_ident(), 1234);
        assert!(m.verify_checksum());
    }

    #[test]
    fn icmpv6_error_checksum_is_recomputed_with_the_pseudo_header() {
        let (a, b, r): (std::net::Ipv6Addr, std::net::Ipv6Addr, std::net::Ipv6Addr) = (
            "2001:db8:2::1".parse().unwrap(),
            "2001:db8:5::1".parse().unwrap(),
            "2001:db8:2::fe".parse().unwrap(),
        );
        let mut quoted = vec![0u8; 40];
        wire::ipv6::emit_header(&mut quoted, &a, &b, 17, 64, 8).unwrap();
        quoted.extend_from_slice(&[0xee, 0x48, 0, 53, 0, 8, 0, 0]);
        let mut msg = vec![1, 4, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&quoted);
        let mut err = vec![0u8; 40];
        wire::ipv6::emit_header(&mut err, &r, &a, 58, 64, msg.len()).unwrap();
        err.extend_from_slice(&msg);
        let client: std::net::Ipv6Addr = "2001:db8:1::2".parse().unwrap();
        assert!(rewrite_icmp_error(
            &mut err,
            40,
            Manip::Dst,
            IpAddr::V6(client),
            Some(4000)
        ));
        let ip = wire::Ipv6Packet::new_checked(&err[..]).unwrap();
        assert_eq!(ip.dst_addr(), client);
        let m = wire::Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(m.verify_checksum(&ip.src_addr(), &ip.dst_addr()));
        assert_eq!(
            &m.data()[8..24],
            &client.octets(),
            "quoted source translated"
        );
        assert_eq!(u16::from_be_bytes([m.data()[40], m.data()[41]]), 4000);
    }
}
