//! `-m addrtype --src-type T,… --dst-type T,…`: the route type of an address, each list with
//! its own `!`. Without a routing lookup only LOCAL (the router's own addresses and
//! loopback), MULTICAST, BROADCAST (the limited broadcast and 0.0.0.0), UNSPEC (`::`) and
//! UNICAST (everything else) are told apart; the other types are accepted and never match.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::extension::{Arg, Done, MatchExt, Opt};
use crate::{Marks, PacketCtx, RuleError};

pub(crate) const OPTIONS: &[Opt] = &[
    Opt::value(&["--src-type"], true),
    Opt::value(&["--dst-type"], true),
];

/// `--limit-iface-in` / `--limit-iface-out` are refused by name.
pub(crate) fn refuses(opt: &str) -> bool {
    opt.starts_with("--limit-iface")
}

/// `-m addrtype`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AddrType {
    pub(crate) src: Option<AddrTypes>,
    pub(crate) dst: Option<AddrTypes>,
}

impl MatchExt for AddrType {
    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        let mask = AddrTypes::parse(arg.text()).map_err(|e| arg.err_at(e))?;
        let t = Some(AddrTypes {
            mask,
            invert: arg.invert,
        });
        if arg.name == "--src-type" {
            self.src = t;
        } else {
            self.dst = t;
        }
        Ok(())
    }

    fn check(&self, done: &Done) -> Result<(), RuleError> {
        done.require_any("-m addrtype needs --src-type or --dst-type")
    }

    #[inline]
    fn matches(&self, ctx: &PacketCtx, _: &Marks) -> bool {
        self.src.is_none_or(|t| t.matches(ctx.src, ctx))
            && self.dst.is_none_or(|t| t.matches(ctx.dst, ctx))
    }

    fn save(&self, out: &mut String) {
        out.push_str(" -m addrtype");
        if let Some(t) = self.src {
            t.write(out, "--src-type");
        }
        if let Some(t) = self.dst {
            t.write(out, "--dst-type");
        }
    }
}

/// Types, one bit each, in the order iptables prints them.
const ADDR_TYPES: [&str; 12] = [
    "UNSPEC",
    "UNICAST",
    "LOCAL",
    "BROADCAST",
    "ANYCAST",
    "MULTICAST",
    "BLACKHOLE",
    "UNREACHABLE",
    "PROHIBIT",
    "THROW",
    "NAT",
    "XRESOLVE",
];

const T_UNSPEC: u16 = 1 << 0;
const T_UNICAST: u16 = 1 << 1;
const T_LOCAL: u16 = 1 << 2;
const T_BROADCAST: u16 = 1 << 3;
const T_MULTICAST: u16 = 1 << 5;

/// A `--src-type` / `--dst-type` list with its `!`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AddrTypes {
    pub(crate) mask: u16,
    pub(crate) invert: bool,
}

impl AddrTypes {
    pub(crate) fn parse(s: &str) -> Result<u16, (usize, String)> {
        let mut mask = 0;
        let mut offset = 0;
        for part in s.split(',') {
            let bit = ADDR_TYPES
                .iter()
                .position(|t| t.eq_ignore_ascii_case(part))
                .ok_or_else(|| (offset, format!("unknown address type {part}")))?;
            mask |= 1 << bit;
            offset += part.chars().count() + 1;
        }
        Ok(mask)
    }

    pub(crate) fn matches(&self, ip: IpAddr, ctx: &PacketCtx) -> bool {
        (classify(ip, ctx) & self.mask != 0) != self.invert
    }

    pub(crate) fn write(&self, out: &mut String, opt: &str) {
        let _ = write!(out, "{} {opt} ", if self.invert { " !" } else { "" });
        let names: Vec<&str> = ADDR_TYPES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.mask & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect();
        out.push_str(&names.join(","));
    }
}

/// The route type of an address as far as the router knows without a routing lookup: the
/// router's own addresses (and loopback) are LOCAL; multicast, the limited broadcast and the
/// unspecified address go by their numbers; everything else is UNICAST. Subnet-directed
/// broadcasts and blackhole/unreachable/prohibit/throw/nat/anycast routes are not known here, so
/// those types never match.
fn classify(ip: IpAddr, ctx: &PacketCtx) -> u16 {
    if ip.is_loopback() || ctx.local_addr.is_some_and(|f| f(ip)) {
        return T_LOCAL;
    }
    match ip {
        IpAddr::V4(a) if a.is_multicast() => T_MULTICAST,
        // Linux types both the limited broadcast and 0.0.0.0 as BROADCAST.
        IpAddr::V4(a) if a.is_broadcast() || a.is_unspecified() => T_BROADCAST,
        IpAddr::V6(a) if a.is_multicast() => T_MULTICAST,
        IpAddr::V6(a) if a.is_unspecified() => T_UNSPEC,
        _ => T_UNICAST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_types() {
        let local = |ip: IpAddr| ip == "192.0.2.1".parse::<IpAddr>().unwrap();
        let ctx = PacketCtx {
            local_addr: Some(&local),
            ..PacketCtx::default()
        };
        let ty = |s: &str| classify(s.parse().unwrap(), &ctx);
        assert_eq!(ty("192.0.2.1"), T_LOCAL);
        assert_eq!(ty("127.0.0.5"), T_LOCAL);
        assert_eq!(ty("192.0.2.2"), T_UNICAST);
        assert_eq!(ty("224.0.0.1"), T_MULTICAST);
        assert_eq!(ty("255.255.255.255"), T_BROADCAST);
        assert_eq!(ty("ff02::1"), T_MULTICAST);
        assert_eq!(ty("::"), T_UNSPEC);
        assert_eq!(ty("::1"), T_LOCAL);
        assert_eq!(
            AddrTypes::parse("LOCAL,unicast").unwrap(),
            T_LOCAL | T_UNICAST
        );
        assert_eq!(AddrTypes::parse("LOCAL,WHAT").unwrap_err().0, 6);
    }
}
