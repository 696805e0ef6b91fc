//! Connection tuples: who talks to whom, in one direction.

use core::fmt;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

/// Address family of a tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// The two directions of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dir {
    /// The direction of the packet that created the connection.
    Original = 0,
    /// The opposite direction.
    Reply = 1,
}

impl Dir {
    /// The other direction.
    pub fn flip(self) -> Dir {
        match self {
            Dir::Original => Dir::Reply,
            Dir::Reply => Dir::Original,
        }
    }

    /// 0 for original, 1 for reply: an index into per-direction arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One direction of a connection: L3 addresses, L4 protocol and the two L4
/// identifiers. What the identifiers mean is the L4 module's business: ports
/// for TCP/UDP/SCTP/DCCP, the echo identifier (in both fields) for ICMP
/// queries, the GRE key halves for GRE, zero for protocols without any.
///
/// Inverting a tuple swaps both the addresses and the identifiers, so every
/// module keeps `t.invert().invert() == t`.
#[derive(Clone, Copy, Eq)]
pub struct Tuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source L4 identifier (port, ICMP id, ...).
    pub src_id: u16,
    /// Destination L4 identifier.
    pub dst_id: u16,
    /// L4 protocol number (after IPv6 extension headers).
    pub proto: u8,
    /// Conntrack zone (`-j CT --zone`): connections in different zones never
    /// match each other even with equal addresses and ports, so overlapping
    /// address spaces behind different interfaces are tracked apart. 0 is the
    /// default zone.
    pub zone: u16,
}

/// The cheap fields first and in one go (they differ between the two
/// directions' tuples of one connection and between flows of one host pair),
/// then the addresses; same meaning as the derived form.
impl PartialEq for Tuple {
    #[inline]
    fn eq(&self, o: &Tuple) -> bool {
        (self.src_id, self.dst_id, self.proto, self.zone) == (o.src_id, o.dst_id, o.proto, o.zone)
            && self.src == o.src
            && self.dst == o.dst
    }
}

/// Hashes the tuple as two or three machine words instead of field by field
/// (the derived form fed the hasher ten separate pieces, a visible share of
/// every lookup). Consistent with `Eq`: equal tuples write equal words.
impl Hash for Tuple {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let rest = u64::from(self.zone) << 40
            | u64::from(self.src_id) << 24
            | u64::from(self.dst_id) << 8
            | u64::from(self.proto);
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                h.write_u64(u64::from(u32::from(s)) << 32 | u64::from(u32::from(d)));
                h.write_u64(rest);
            }
            (s, d) => {
                let bits = |a: IpAddr| match a {
                    IpAddr::V4(a) => u128::from(u32::from(a)),
                    IpAddr::V6(a) => u128::from(a),
                };
                h.write_u128(bits(s));
                h.write_u128(bits(d));
                // Family in the last word: a v4 pair and a v6 pair never hash alike.
                h.write_u64(rest | 1 << 63);
            }
        }
    }
}

impl Tuple {
    /// The tuple of the opposite direction.
    pub fn invert(&self) -> Tuple {
        Tuple {
            src: self.dst,
            dst: self.src,
            src_id: self.dst_id,
            dst_id: self.src_id,
            proto: self.proto,
            zone: self.zone,
        }
    }

    /// The tuple's address family (taken from the source address).
    pub fn family(&self) -> Family {
        Family::of(&self.src)
    }
}

impl fmt::Debug for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "src={} dst={} sport={} dport={} proto={}",
            self.src, self.dst, self.src_id, self.dst_id, self.proto
        )
    }
}

/// Which parts of a tuple an expectation cares about. Unset parts match
/// anything (e.g. an FTP data connection from any source port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TupleMask {
    /// Prefix length of the source address that must match (0 = any).
    pub src_prefix: u8,
    /// Bits of the source identifier that must match.
    pub src_id: u16,
    /// Bits of the destination identifier that must match.
    pub dst_id: u16,
}

impl TupleMask {
    /// Every field must match exactly.
    pub const EXACT: TupleMask = TupleMask {
        src_prefix: 128,
        src_id: 0xffff,
        dst_id: 0xffff,
    };

    /// Whether `t` matches `pattern` under this mask. The destination address
    /// and the protocol always have to match.
    pub fn matches(&self, pattern: &Tuple, t: &Tuple) -> bool {
        pattern.proto == t.proto
            && pattern.zone == t.zone
            && pattern.dst == t.dst
            && (pattern.src_id ^ t.src_id) & self.src_id == 0
            && (pattern.dst_id ^ t.dst_id) & self.dst_id == 0
            && prefix_eq(&pattern.src, &t.src, self.src_prefix)
    }
}

/// Whether the first `bits` bits of two addresses of the same family agree.
pub fn prefix_eq(a: &IpAddr, b: &IpAddr, bits: u8) -> bool {
    fn cmp(a: &[u8], b: &[u8], bits: u8) -> bool {
        let bits = usize::from(bits).min(a.len() * 8);
        let (full, rest) = (bits / 8, bits % 8);
        if a[..full] != b[..full] {
            return false;
        }
        rest == 0 || (a[full] ^ b[full]) & (0xffu8 << (8 - rest)) == 0
    }
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => cmp(&a.octets(), &b.octets(), bits),
        (IpAddr::V6(a), IpAddr::V6(b)) => cmp(&a.octets(), &b.octets(), bits),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str, d: &str, sp: u16, dp: u16) -> Tuple {
        Tuple {
            src: s.parse().unwrap(),
            dst: d.parse().unwrap(),
            src_id: sp,
            dst_id: dp,
            proto: 6,
            zone: 0,
        }
    }

    #[test]
    fn mask_matches_any_source_port() {
        let pat = t("192.0.2.7", "198.51.100.1", 0, 2020);
        let mask = TupleMask {
            src_prefix: 32,
            src_id: 0,
            dst_id: 0xffff,
        };
        assert!(mask.matches(&pat, &t("192.0.2.7", "198.51.100.1", 40000, 2020)));
        assert!(!mask.matches(&pat, &t("192.0.2.8", "198.51.100.1", 40000, 2020)));
        assert!(!mask.matches(&pat, &t("192.0.2.7", "198.51.100.1", 40000, 2021)));
        let any_src = TupleMask {
            src_prefix: 0,
            ..mask
        };
        assert!(any_src.matches(&pat, &t("203.0.113.9", "198.51.100.1", 1, 2020)));
    }

    #[test]
    fn prefix_eq_partial_bytes() {
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db9::1".parse().unwrap();
        assert!(prefix_eq(&a, &b, 31));
        assert!(!prefix_eq(&a, &b, 32));
        assert!(!prefix_eq(&a, &"192.0.2.1".parse().unwrap(), 0));
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn addr() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
        ]
    }

    proptest! {
        #[test]
        fn invert_twice_is_identity(s in addr(), d in addr(), sp: u16, dp: u16, proto: u8) {
            let t = Tuple { src: s, dst: d, src_id: sp, dst_id: dp, proto, zone: 0 };
            prop_assert_eq!(t.invert().invert(), t);
            let i = t.invert();
            prop_assert_eq!((i.src, i.dst, i.src_id, i.dst_id), (d, s, dp, sp));
        }

        #[test]
        fn exact_mask_matches_only_itself(a in addr(), b in addr(), sp: u16, dp: u16, sp2: u16) {
            let t = Tuple { src: a, dst: b, src_id: sp, dst_id: dp, proto: 6, zone: 0 };
            let mut u = t;
            u.src_id = sp2;
            prop_assert!(TupleMask::EXACT.matches(&t, &t));
            prop_assert_eq!(TupleMask::EXACT.matches(&t, &u), sp == sp2);
        }
    }
}
