//! `-m icmp --icmp-type T` (IPv4) and `-m icmp6 --icmpv6-type T` (IPv6): a type by name or
//! number, optionally with a code or code range (`3/4`, `3/0:3`). `-p icmp` loads `-m icmp`
//! implicitly and `-p ipv6-icmp` `-m icmp6`; each needs that `-p`. `-m icmp` alone matches
//! every ICMP packet (`--icmp-type any`); `-m icmp6` needs its option. A packet without an
//! ICMP header (a later fragment) never matches, even with `!`, as in the kernel.

use std::fmt::Write as _;

use crate::extension::{Arg, Done, MatchExt, Opt};
use crate::value::parse_uint;
use crate::{Family, Marks, PacketCtx, RuleError};

pub(crate) const OPTIONS: &[Opt] = &[Opt::value(&["--icmp-type"], true)];
pub(crate) const OPTIONS6: &[Opt] = &[Opt::value(&["--icmpv6-type"], true)];

/// `-m icmp` (`v6` false) or `-m icmp6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Icmp {
    pub(crate) spec: IcmpSpec,
    pub(crate) v6: bool,
}

impl Icmp {
    /// The match before its option: any type.
    pub(crate) fn new(v6: bool) -> Icmp {
        Icmp {
            spec: IcmpSpec {
                ty: None,
                code_lo: 0,
                code_hi: 255,
                invert: false,
            },
            v6,
        }
    }
}

impl MatchExt for Icmp {
    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        let mut s = parse_icmp(arg.text(), arg.family()).map_err(|e| arg.err(e))?;
        s.invert = arg.invert;
        self.spec = s;
        Ok(())
    }

    fn check(&self, done: &Done) -> Result<(), RuleError> {
        if self.v6 {
            done.require_any("-m icmp6 needs --icmpv6-type")?;
        }
        Ok(())
    }

    #[inline]
    fn matches(&self, ctx: &PacketCtx, _: &Marks) -> bool {
        self.spec.matches(ctx.icmp_type_code)
    }

    fn save(&self, out: &mut String) {
        let not = if self.spec.invert { " !" } else { "" };
        if self.v6 {
            let _ = write!(out, " -m icmp6{not} --icmpv6-type ");
        } else {
            let _ = write!(out, " -m icmp{not} --icmp-type ");
        }
        self.spec.write(out);
    }
}

/// `--icmp-type` / `--icmpv6-type`: a type with a code range; `ty == None` is `any` (IPv4 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IcmpSpec {
    pub(crate) ty: Option<u8>,
    pub(crate) code_lo: u8,
    pub(crate) code_hi: u8,
    pub(crate) invert: bool,
}

impl IcmpSpec {
    fn matches(&self, tc: Option<(u8, u8)>) -> bool {
        // Like the kernel: no ICMP header (a later fragment) never matches, even with `!`.
        let Some((t, c)) = tc else { return false };
        let hit = match self.ty {
            None => true,
            Some(ty) => t == ty && self.code_lo <= c && c <= self.code_hi,
        };
        hit != self.invert
    }

    fn write(&self, out: &mut String) {
        match self.ty {
            None => out.push_str("any"),
            Some(t) => {
                let _ = write!(out, "{t}");
                if (self.code_lo, self.code_hi) != (0, 255) {
                    let _ = write!(out, "/{}", self.code_lo);
                    if self.code_hi != self.code_lo {
                        let _ = write!(out, ":{}", self.code_hi);
                    }
                }
            }
        }
    }
}

/// ICMP type names from `iptables -p icmp -h`: (name, type, code or None for every code).
const ICMP_NAMES: &[(&str, u8, Option<u8>)] = &[
    ("echo-reply", 0, None),
    ("pong", 0, None),
    ("destination-unreachable", 3, None),
    ("network-unreachable", 3, Some(0)),
    ("host-unreachable", 3, Some(1)),
    ("protocol-unreachable", 3, Some(2)),
    ("port-unreachable", 3, Some(3)),
    ("fragmentation-needed", 3, Some(4)),
    ("source-route-failed", 3, Some(5)),
    ("network-unknown", 3, Some(6)),
    ("host-unknown", 3, Some(7)),
    ("network-prohibited", 3, Some(9)),
    ("host-prohibited", 3, Some(10)),
    ("TOS-network-unreachable", 3, Some(11)),
    ("TOS-host-unreachable", 3, Some(12)),
    ("communication-prohibited", 3, Some(13)),
    ("host-precedence-violation", 3, Some(14)),
    ("precedence-cutoff", 3, Some(15)),
    ("source-quench", 4, None),
    ("redirect", 5, None),
    ("network-redirect", 5, Some(0)),
    ("host-redirect", 5, Some(1)),
    ("TOS-network-redirect", 5, Some(2)),
    ("TOS-host-redirect", 5, Some(3)),
    ("echo-request", 8, None),
    ("ping", 8, None),
    ("router-advertisement", 9, None),
    ("router-solicitation", 10, None),
    ("time-exceeded", 11, None),
    ("ttl-exceeded", 11, None),
    ("ttl-zero-during-transit", 11, Some(0)),
    ("ttl-zero-during-reassembly", 11, Some(1)),
    ("parameter-problem", 12, None),
    ("ip-header-bad", 12, Some(0)),
    ("required-option-missing", 12, Some(1)),
    ("timestamp-request", 13, None),
    ("timestamp-reply", 14, None),
    ("address-mask-request", 17, None),
    ("address-mask-reply", 18, None),
];

/// ICMPv6 type names from `ip6tables -p ipv6-icmp -h`.
const ICMP6_NAMES: &[(&str, u8, Option<u8>)] = &[
    ("destination-unreachable", 1, None),
    ("no-route", 1, Some(0)),
    ("communication-prohibited", 1, Some(1)),
    ("beyond-scope", 1, Some(2)),
    ("address-unreachable", 1, Some(3)),
    ("port-unreachable", 1, Some(4)),
    ("failed-policy", 1, Some(5)),
    ("reject-route", 1, Some(6)),
    ("packet-too-big", 2, None),
    ("time-exceeded", 3, None),
    ("ttl-exceeded", 3, None),
    ("ttl-zero-during-transit", 3, Some(0)),
    ("ttl-zero-during-reassembly", 3, Some(1)),
    ("parameter-problem", 4, None),
    ("bad-header", 4, Some(0)),
    ("unknown-header-type", 4, Some(1)),
    ("unknown-option", 4, Some(2)),
    ("echo-request", 128, None),
    ("ping", 128, None),
    ("echo-reply", 129, None),
    ("pong", 129, None),
    ("mld-listener-query", 130, None),
    ("mld-listener-report", 131, None),
    ("mld-listener-done", 132, None),
    ("router-solicitation", 133, None),
    ("router-advertisement", 134, None),
    ("neighbour-solicitation", 135, None),
    ("neighbor-solicitation", 135, None),
    ("neighbour-advertisement", 136, None),
    ("neighbor-advertisement", 136, None),
    ("redirect", 137, None),
];

/// Parses a type name, `any` (IPv4), `type`, `type/code` or `type/lo:hi`.
pub(crate) fn parse_icmp(s: &str, family: Family) -> Result<IcmpSpec, String> {
    let names = match family {
        Family::V4 => ICMP_NAMES,
        Family::V6 => ICMP6_NAMES,
    };
    let spec = |ty, code: Option<u8>| IcmpSpec {
        ty: Some(ty),
        code_lo: code.unwrap_or(0),
        code_hi: code.unwrap_or(255),
        invert: false,
    };
    if family == Family::V4 && s.eq_ignore_ascii_case("any") {
        return Ok(IcmpSpec {
            ty: None,
            code_lo: 0,
            code_hi: 255,
            invert: false,
        });
    }
    if let Some(&(_, ty, code)) = names.iter().find(|(n, _, _)| n.eq_ignore_ascii_case(s)) {
        return Ok(spec(ty, code));
    }
    let num = |v: &str| parse_uint(v, 255).map(|v| v as u8);
    let bad = || format!("unknown ICMP type {s} (a name, a number, or type/code)");
    let (t, code) = match s.split_once('/') {
        Some((t, c)) => (t, Some(c)),
        None => (s, None),
    };
    let ty = num(t).map_err(|_| bad())?;
    let (lo, hi) = match code {
        None => (0, 255),
        Some(c) => match c.split_once(':') {
            Some((a, b)) => (num(a).map_err(|_| bad())?, num(b).map_err(|_| bad())?),
            None => {
                let c = num(c).map_err(|_| bad())?;
                (c, c)
            }
        },
    };
    if lo > hi {
        return Err(format!("bad ICMP code range in {s}"));
    }
    Ok(IcmpSpec {
        ty: Some(ty),
        code_lo: lo,
        code_hi: hi,
        invert: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_names() {
        let s = parse_icmp("port-unreachable", Family::V4).unwrap();
        assert_eq!((s.ty, s.code_lo, s.code_hi), (Some(3), 3, 3));
        let s = parse_icmp("echo-request", Family::V6).unwrap();
        assert_eq!((s.ty, s.code_lo, s.code_hi), (Some(128), 0, 255));
        let s = parse_icmp("3/4", Family::V4).unwrap();
        assert_eq!((s.ty, s.code_lo, s.code_hi), (Some(3), 4, 4));
        assert_eq!(parse_icmp("any", Family::V4).unwrap().ty, None);
        assert!(parse_icmp("any", Family::V6).is_err());
        assert!(parse_icmp("256", Family::V4).is_err());
        assert!(parse_icmp("bogus", Family::V4).is_err());
    }
}
