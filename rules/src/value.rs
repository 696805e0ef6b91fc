//! Value syntax shared by options of several extensions and of the rule itself: numbers,
//! `value/mask` pairs, port and number ranges, addresses with masks, protocol names.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::Family;

/// Parses a decimal integer no larger than `max` (no sign, no spaces).
pub(crate) fn parse_uint(s: &str, max: u64) -> Result<u64, ()> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    match s.parse::<u64>() {
        Ok(v) if v <= max => Ok(v),
        _ => Err(()),
    }
}

/// Parses a 32-bit value in decimal or `0x` hex (marks are printed in hex).
pub(crate) fn parse_u32(s: &str) -> Result<u32, String> {
    let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() && hex.len() <= 8 => {
            u32::from_str_radix(hex, 16).map_err(|_| ())
        }
        Some(_) => Err(()),
        None => parse_uint(s, u64::from(u32::MAX)).map(|v| v as u32),
    };
    v.map_err(|_| format!("bad value {s} (a 32-bit number, decimal or 0x hex)"))
}

/// Parses `value[/mask]`; the mask defaults to all ones.
pub(crate) fn parse_value_mask(s: &str) -> Result<(u32, u32), String> {
    match s.split_once('/') {
        Some((v, m)) => Ok((parse_u32(v)?, parse_u32(m)?)),
        None => Ok((parse_u32(s)?, u32::MAX)),
    }
}

/// `value` or `value/mask` in iptables-save's hex form.
pub(crate) fn write_value_mask(out: &mut String, value: u32, mask: u32) {
    let _ = write!(out, "{value:#x}");
    if mask != u32::MAX {
        let _ = write!(out, "/{mask:#x}");
    }
}

/// Parses `n`, `a:b`, `:b`, `a:` as an inclusive u16 range (`-m length`).
pub(crate) fn parse_u16_range(s: &str, what: &str) -> Result<(u16, u16), String> {
    let num = |p: &str, default: u16| -> Result<u16, String> {
        if p.is_empty() {
            return Ok(default);
        }
        parse_uint(p, 65535)
            .map(|v| v as u16)
            .map_err(|_| format!("bad {what} {p} (0..=65535)"))
    };
    let (lo, hi) = match s.split_once(':') {
        Some(("", "")) => return Err(format!("bad {what} range {s}")),
        Some((a, b)) => (num(a, 0)?, num(b, 65535)?),
        None if s.is_empty() => return Err(format!("empty {what}")),
        None => {
            let v = num(s, 0)?;
            (v, v)
        }
    };
    if lo > hi {
        return Err(format!("bad {what} range {s} (first above last)"));
    }
    Ok((lo, hi))
}

/// An inclusive port range `lo:hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PortRange {
    pub(crate) lo: u16,
    pub(crate) hi: u16,
}

impl PortRange {
    /// `n`, `a:b`, `:b` (from 0) or `a:` (to 65535). Service names are not resolved: save files
    /// hold numbers.
    pub(crate) fn parse(s: &str) -> Result<PortRange, String> {
        let port = |p: &str, default: u16| -> Result<u16, String> {
            if p.is_empty() {
                return Ok(default);
            }
            parse_uint(p, 65535)
                .map(|v| v as u16)
                .map_err(|_| format!("bad port {p} (a number 0..=65535)"))
        };
        let r = match s.split_once(':') {
            Some((a, b)) => {
                if a.is_empty() && b.is_empty() {
                    return Err(format!("bad port range {s}"));
                }
                PortRange {
                    lo: port(a, 0)?,
                    hi: port(b, 65535)?,
                }
            }
            None => {
                if s.is_empty() {
                    return Err("empty port".into());
                }
                let p = port(s, 0)?;
                PortRange { lo: p, hi: p }
            }
        };
        if r.lo > r.hi {
            return Err(format!("bad port range {s} (first port above the last)"));
        }
        Ok(r)
    }

    #[inline]
    pub(crate) fn contains(&self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }

    pub(crate) fn write(&self, out: &mut String) {
        if self.lo == self.hi {
            let _ = write!(out, "{}", self.lo);
        } else {
            let _ = write!(out, "{}:{}", self.lo, self.hi);
        }
    }
}

/// An address with a mask (`-s 192.0.2.0/24`, `-d 2001:db8::/32`, `-s 10.0.0.0/255.0.255.0`).
/// The address is stored already masked, as iptables does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Net {
    V4 { addr: u32, mask: u32 },
    V6 { addr: u128, mask: u128 },
}

impl Net {
    #[inline]
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (*self, ip) {
            (Net::V4 { addr, mask }, IpAddr::V4(ip)) => u32::from(ip) & mask == addr,
            (Net::V6 { addr, mask }, IpAddr::V6(ip)) => u128::from(ip) & mask == addr,
            _ => false,
        }
    }

    /// True for `/0`: matches every address of the family.
    pub(crate) fn is_any(&self) -> bool {
        matches!(*self, Net::V4 { mask: 0, .. } | Net::V6 { mask: 0, .. })
    }

    pub(crate) fn write(&self, out: &mut String) {
        match *self {
            Net::V4 { addr, mask } => {
                let _ = write!(out, "{}", std::net::Ipv4Addr::from(addr));
                if mask.leading_ones() + mask.trailing_zeros() == 32 {
                    let _ = write!(out, "/{}", mask.leading_ones());
                } else {
                    let _ = write!(out, "/{}", std::net::Ipv4Addr::from(mask));
                }
            }
            Net::V6 { addr, mask } => {
                let _ = write!(out, "{}", std::net::Ipv6Addr::from(addr));
                if mask.leading_ones() + mask.trailing_zeros() == 128 {
                    let _ = write!(out, "/{}", mask.leading_ones());
                } else {
                    let _ = write!(out, "/{}", std::net::Ipv6Addr::from(mask));
                }
            }
        }
    }
}

/// Parses `addr`, `addr/len` or `addr/mask` of `family`.
pub(crate) fn parse_net(s: &str, family: Family) -> Result<Net, String> {
    if s.contains(',') {
        return Err(format!(
            "address lists ({s}) are not in iptables-save format: write one rule per address"
        ));
    }
    let (a, m) = match s.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (s, None),
    };
    match family {
        Family::V4 => {
            let addr: std::net::Ipv4Addr = a
                .parse()
                .map_err(|_| format!("bad IPv4 address {a} (host names are not resolved)"))?;
            let mask = match m {
                None => u32::MAX,
                Some(m) if m.contains('.') => {
                    let mask: std::net::Ipv4Addr =
                        m.parse().map_err(|_| format!("bad IPv4 mask {m}"))?;
                    u32::from(mask)
                }
                Some(m) => {
                    let len = parse_uint(m, 32).map_err(|_| format!("bad prefix length /{m}"))?;
                    prefix_mask32(len)
                }
            };
            Ok(Net::V4 {
                addr: u32::from(addr) & mask,
                mask,
            })
        }
        Family::V6 => {
            let addr: std::net::Ipv6Addr = a
                .parse()
                .map_err(|_| format!("bad IPv6 address {a} (host names are not resolved)"))?;
            let mask = match m {
                None => u128::MAX,
                Some(m) if m.contains(':') => {
                    let mask: std::net::Ipv6Addr =
                        m.parse().map_err(|_| format!("bad IPv6 mask {m}"))?;
                    u128::from(mask)
                }
                Some(m) => {
                    let len = parse_uint(m, 128).map_err(|_| format!("bad prefix length /{m}"))?;
                    prefix_mask128(len)
                }
            };
            Ok(Net::V6 {
                addr: u128::from(addr) & mask,
                mask,
            })
        }
    }
}

fn prefix_mask32(len: u64) -> u32 {
    u32::MAX.checked_shl(32 - len as u32).unwrap_or(0)
}

fn prefix_mask128(len: u64) -> u128 {
    u128::MAX.checked_shl(128 - len as u32).unwrap_or(0)
}

/// `a` with all but its first `len` bits cleared (`len` capped at the address's length).
pub(crate) fn prefix_addr(a: IpAddr, len: u8) -> IpAddr {
    match a {
        IpAddr::V4(v) => IpAddr::V4((u32::from(v) & prefix_mask32(u64::from(len.min(32)))).into()),
        IpAddr::V6(v) => {
            IpAddr::V6((u128::from(v) & prefix_mask128(u64::from(len.min(128)))).into())
        }
    }
}

/// Protocol names iptables-save prints, with their numbers. `icmpv6`/`icmp6` are extra input
/// spellings of `ipv6-icmp`.
const PROTOCOLS: &[(&str, u8)] = &[
    ("tcp", 6),
    ("udp", 17),
    ("udplite", 136),
    ("icmp", 1),
    ("ipv6-icmp", 58),
    ("icmpv6", 58),
    ("icmp6", 58),
    ("sctp", 132),
    ("dccp", 33),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("all", 0),
];

/// Parses `-p` values: a name (case-insensitive) or a number 0..=255; 0 / `all` is any.
pub(crate) fn parse_proto(s: &str) -> Result<u8, String> {
    if let Ok(n) = parse_uint(s, 255) {
        return Ok(n as u8);
    }
    let lower = s.to_ascii_lowercase();
    PROTOCOLS
        .iter()
        .find(|(n, _)| *n == lower)
        .map(|&(_, p)| p)
        .ok_or_else(|| format!("unknown protocol {s}"))
}

/// The name iptables-save prints for protocol `p` (its number when it has none).
pub(crate) fn proto_name(p: u8) -> String {
    match PROTOCOLS.iter().find(|&&(_, n)| n == p) {
        Some((name, _)) => (*name).to_string(),
        None => p.to_string(),
    }
}

/// Protocols that have the port matches, with the module (and `-p`) name.
pub(crate) const PORT_PROTOCOLS: &[(&str, u8)] = &[
    ("tcp", 6),
    ("udp", 17),
    ("udplite", 136),
    ("sctp", 132),
    ("dccp", 33),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nets() {
        let n = parse_net("192.0.2.77/24", Family::V4).unwrap();
        assert_eq!(
            n,
            Net::V4 {
                addr: 0xc000_0200,
                mask: 0xffff_ff00
            }
        );
        assert!(n.contains("192.0.2.1".parse().unwrap()));
        assert!(!n.contains("192.0.3.1".parse().unwrap()));
        assert!(!n.contains("2001:db8::1".parse().unwrap()));
        let mut s = String::new();
        n.write(&mut s);
        assert_eq!(s, "192.0.2.0/24");

        let odd = parse_net("10.0.0.0/255.0.255.0", Family::V4).unwrap();
        let mut s = String::new();
        odd.write(&mut s);
        assert_eq!(s, "10.0.0.0/255.0.255.0");
        assert!(odd.contains("10.9.0.9".parse().unwrap()));

        assert!(parse_net("0.0.0.0/0", Family::V4).unwrap().is_any());
        let h6 = parse_net("2001:db8::1", Family::V6).unwrap();
        let mut s = String::new();
        h6.write(&mut s);
        assert_eq!(s, "2001:db8::1/128");
        assert!(parse_net("2001:db8::/129", Family::V6).is_err());
        assert!(parse_net("1.2.3.4/33", Family::V4).is_err());
        assert!(parse_net("1.2.3.4,5.6.7.8", Family::V4).is_err());
        assert!(parse_net("example.com", Family::V4).is_err());
        assert!(parse_net("2001:db8::1", Family::V4).is_err());
        assert!(parse_net("1.2.3.4", Family::V6).is_err());
    }

    #[test]
    fn ports() {
        assert_eq!(
            PortRange::parse("22").unwrap(),
            PortRange { lo: 22, hi: 22 }
        );
        assert_eq!(
            PortRange::parse(":80").unwrap(),
            PortRange { lo: 0, hi: 80 }
        );
        assert_eq!(
            PortRange::parse("1024:").unwrap(),
            PortRange {
                lo: 1024,
                hi: 65535
            }
        );
        for bad in ["", ":", "65536", "ssh", "5:4", "-1", "1:2:3"] {
            assert!(PortRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn protocols() {
        assert_eq!(parse_proto("TCP").unwrap(), 6);
        assert_eq!(parse_proto("icmpv6").unwrap(), 58);
        assert_eq!(parse_proto("253").unwrap(), 253);
        assert!(parse_proto("256").is_err());
        assert_eq!(proto_name(58), "ipv6-icmp");
        assert_eq!(proto_name(253), "253");
    }

    #[test]
    fn values_and_masks() {
        assert_eq!(parse_u32("0x1F").unwrap(), 31);
        assert_eq!(parse_u32("4294967295").unwrap(), u32::MAX);
        assert!(parse_u32("4294967296").is_err());
        assert!(parse_u32("0x").is_err());
        assert!(parse_u32("0x123456789").is_err());
        assert_eq!(parse_value_mask("1/0xff").unwrap(), (1, 0xff));
        assert_eq!(parse_value_mask("0x10").unwrap(), (16, u32::MAX));
        let mut s = String::new();
        write_value_mask(&mut s, 1, 0xff);
        assert_eq!(s, "0x1/0xff");
    }
}
