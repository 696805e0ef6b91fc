//! Selectors and the flows they select: what an SA or a policy applies to.
//!
//! A [`Selector`] is `ip xfrm`'s: a source and a destination prefix of one family, an upper
//! protocol (0 = any) and optionally a source and destination port (for ICMP and ICMPv6 the
//! type and code, as Linux stores them in the port fields). A [`Flow`] is one packet's side of
//! that comparison (Linux's `flowi`), read from the packet with [`Flow::of_packet`] or built
//! from a conntrack tuple with [`Flow::from_tuple`].

use conntrack::tuple::{Family, Tuple};
use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use wire::proto;

/// An address prefix: `addr/len`. The address is kept as written (`10.1.2.3/16` prints back
/// so); only its first `len` bits take part in a match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// `addr/len`; `None` when `len` is longer than the address.
    pub fn new(addr: IpAddr, len: u8) -> Option<Prefix> {
        (len <= max_len(&addr)).then_some(Prefix { addr, len })
    }

    /// One address (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Prefix {
        Prefix {
            len: max_len(&addr),
            addr,
        }
    }

    /// Every address of `family` (`0.0.0.0/0` or `::/0`).
    pub fn any(family: Family) -> Prefix {
        let addr = match family {
            Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        Prefix { addr, len: 0 }
    }

    /// The address as written.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Whether the prefix is `/0`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The family of the address.
    pub fn family(&self) -> Family {
        Family::of(&self.addr)
    }

    /// Whether `a` is in the prefix (never across families).
    pub fn contains(&self, a: &IpAddr) -> bool {
        match (self.addr, a) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                (u32::from(p) ^ u32::from(*a)) & mask == 0
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                (u128::from(p) ^ u128::from(*a)) & mask == 0
            }
            _ => false,
        }
    }
}

fn max_len(a: &IpAddr) -> u8 {
    if a.is_ipv4() {
        32
    } else {
        128
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Whether a protocol's selector fields are ICMP type and code rather than ports.
pub(crate) fn is_icmp(p: u8) -> bool {
    p == proto::ICMP || p == proto::ICMPV6
}

/// What an SA or a policy applies to (`ip xfrm`'s `SELECTOR` and `UPSPEC`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Selector {
    /// Source prefix.
    pub src: Prefix,
    /// Destination prefix, of the same family.
    pub dst: Prefix,
    /// Upper protocol; 0 is any.
    pub proto: u8,
    /// Source port (ICMP: type); `None` is any.
    pub sport: Option<u16>,
    /// Destination port (ICMP: code); `None` is any.
    pub dport: Option<u16>,
}

impl Selector {
    /// Everything of `family`.
    pub fn any(family: Family) -> Selector {
        Selector {
            src: Prefix::any(family),
            dst: Prefix::any(family),
            proto: 0,
            sport: None,
            dport: None,
        }
    }

    /// From `src` to `dst`, any protocol.
    pub fn between(src: Prefix, dst: Prefix) -> Selector {
        Selector {
            src,
            dst,
            proto: 0,
            sport: None,
            dport: None,
        }
    }

    /// The family of its prefixes.
    pub fn family(&self) -> Family {
        self.src.family()
    }

    /// Linux's `xfrm_selector_match`: both prefixes, the protocol, and the ports asked for.
    pub fn matches(&self, f: &Flow) -> bool {
        self.src.contains(&f.src)
            && self.dst.contains(&f.dst)
            && (self.proto == 0 || self.proto == f.proto)
            && self.sport.is_none_or(|p| p == f.sport)
            && self.dport.is_none_or(|p| p == f.dport)
    }
}

/// Protocol names as `/etc/protocols` spells them (what `ip xfrm` prints and reads).
pub(crate) const PROTO_NAMES: &[(u8, &str)] = &[
    (proto::ICMP, "icmp"),
    (proto::TCP, "tcp"),
    (proto::UDP, "udp"),
    (proto::DCCP, "dccp"),
    (proto::GRE, "gre"),
    (proto::ESP, "esp"),
    (proto::AH, "ah"),
    (proto::ICMPV6, "ipv6-icmp"),
    (proto::SCTP, "sctp"),
    (proto::UDPLITE, "udplite"),
    (4, "ipencap"),
    (41, "ipv6"),
];

/// A protocol's `/etc/protocols` name, or its number.
pub(crate) struct ProtoName(pub(crate) u8);

impl fmt::Display for ProtoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match PROTO_NAMES.iter().find(|(n, _)| *n == self.0) {
            Some((_, name)) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

/// Prints as `ip xfrm` does, without the trailing space: `src A/N dst B/M [proto P [sport S]
/// [dport D]]` (ICMP: `type`/`code`).
impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "src {} dst {}", self.src, self.dst)?;
        if self.proto != 0 {
            write!(f, " proto {}", ProtoName(self.proto))?;
        }
        let (s, d) = if is_icmp(self.proto) {
            ("type", "code")
        } else {
            ("sport", "dport")
        };
        if let Some(p) = self.sport {
            write!(f, " {s} {p}")?;
        }
        if let Some(p) = self.dport {
            write!(f, " {d} {p}")?;
        }
        Ok(())
    }
}

/// One packet as selectors see it (Linux's `flowi`): addresses, upper protocol and, for port
/// protocols, the ports; for ICMP and ICMPv6 the type in `sport` and the code in `dport`.
/// Zero where the packet has none (a non-first fragment, another protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Upper protocol (after IPv6 extension headers).
    pub proto: u8,
    /// Source port, or ICMP type.
    pub sport: u16,
    /// Destination port, or ICMP code.
    pub dport: u16,
}

fn has_ports(p: u8) -> bool {
    matches!(
        p,
        proto::TCP | proto::UDP | proto::UDPLITE | proto::SCTP | proto::DCCP
    )
}

impl Flow {
    /// The flow of an IPv4 or IPv6 packet (`decode_session`); `None` when the bytes are not one.
    pub fn of_packet(pkt: &[u8]) -> Option<Flow> {
        match pkt.first()? >> 4 {
            4 => {
                let ip = wire::Ipv4Packet::new_checked(pkt).ok()?;
                let (src, dst) = (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()));
                let l4 = if ip.frag_offset() != 0 {
                    &[][..]
                } else {
                    ip.payload()
                };
                Some(Flow::with_l4(src, dst, ip.protocol(), l4))
            }
            6 => {
                let ip = wire::Ipv6Packet::new_checked(pkt).ok()?;
                let (src, dst) = (IpAddr::V6(ip.src_addr()), IpAddr::V6(ip.dst_addr()));
                let payload = ip.payload();
                let walk = wire::walk_ext_headers(ip.next_header(), payload).ok()?;
                let l4 = match walk.terminated {
                    wire::Terminal::UpperLayer => payload.get(walk.l4_offset..).unwrap_or(&[]),
                    _ => &[][..],
                };
                Some(Flow::with_l4(src, dst, walk.upper_proto, l4))
            }
            _ => None,
        }
    }

    fn with_l4(src: IpAddr, dst: IpAddr, p: u8, l4: &[u8]) -> Flow {
        let (sport, dport) = if has_ports(p) && l4.len() >= 4 {
            (
                u16::from_be_bytes([l4[0], l4[1]]),
                u16::from_be_bytes([l4[2], l4[3]]),
            )
        } else if is_icmp(p) && l4.len() >= 2 {
            (u16::from(l4[0]), u16::from(l4[1]))
        } else {
            (0, 0)
        };
        Flow {
            src,
            dst,
            proto: p,
            sport,
            dport,
        }
    }

    /// A conntrack tuple as a flow: the ports of port protocols, zero for the rest (a tuple
    /// holds an ICMP echo identifier, not the type and code: use [`Flow::of_packet`] there).
    /// The engine uses it for the inbound policy check of a NATed flow, which Linux makes on
    /// the flow as it was before NAT (`nf_nat_decode_session`).
    pub fn from_tuple(t: &Tuple) -> Flow {
        let (sport, dport) = if has_ports(t.proto) {
            (t.src_id, t.dst_id)
        } else {
            (0, 0)
        };
        Flow {
            src: t.src,
            dst: t.dst,
            proto: t.proto,
            sport,
            dport,
        }
    }

    /// The family of its addresses.
    pub fn family(&self) -> Family {
        Family::of(&self.src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        let (a, l) = s.split_once('/').unwrap();
        Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
    }

    #[test]
    fn prefix_contains() {
        assert!(p("192.0.2.0/24").contains(&"192.0.2.200".parse().unwrap()));
        assert!(!p("192.0.2.0/24").contains(&"192.0.3.1".parse().unwrap()));
        assert!(p("0.0.0.0/0").contains(&"203.0.113.9".parse().unwrap()));
        assert!(!p("0.0.0.0/0").contains(&"2001:db8::1".parse().unwrap()));
        assert!(p("2001:db8::/32").contains(&"2001:db8:ffff::1".parse().unwrap()));
        assert!(!p("2001:db8::/33").contains(&"2001:db8:ffff::1".parse().unwrap()));
        assert!(p("2001:db8::1/128").contains(&"2001:db8::1".parse().unwrap()));
        assert!(Prefix::new("192.0.2.1".parse().unwrap(), 33).is_none());
        // Kept as written, matched by its first bits.
        assert_eq!(p("10.1.2.3/16").to_string(), "10.1.2.3/16");
        assert!(p("10.1.2.3/16").contains(&"10.1.200.1".parse().unwrap()));
    }

    #[test]
    fn flow_of_packets_and_selector_match() {
        let udp = testkit::udp("192.0.2.1", 5000, "198.51.100.7", 53, b"q");
        let f = Flow::of_packet(&udp).unwrap();
        assert_eq!((f.proto, f.sport, f.dport), (17, 5000, 53));
        let mut sel = Selector::between(p("192.0.2.0/24"), p("198.51.100.0/24"));
        assert!(sel.matches(&f));
        sel.proto = 17;
        sel.dport = Some(53);
        assert!(sel.matches(&f));
        sel.sport = Some(5001);
        assert!(!sel.matches(&f));
        assert_eq!(
            sel.to_string(),
            "src 192.0.2.0/24 dst 198.51.100.0/24 proto udp sport 5001 dport 53"
        );
        let echo = testkit::echo("2001:db8::1", "2001:db8::2", true, 7, 1, 64);
        let f = Flow::of_packet(&echo).unwrap();
        assert_eq!((f.proto, f.sport, f.dport), (58, 128, 0));
        let mut sel = Selector::any(Family::V6);
        sel.proto = 58;
        sel.sport = Some(128);
        assert!(sel.matches(&f));
        assert_eq!(
            sel.to_string(),
            "src ::/0 dst ::/0 proto ipv6-icmp type 128"
        );
        assert!(!Selector::any(Family::V4).matches(&f));
        assert_eq!(Flow::of_packet(&[0x50; 40]), None);
        assert_eq!(Flow::of_packet(&[]), None);
    }
}
