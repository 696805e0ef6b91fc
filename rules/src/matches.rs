//! Matches: the predicate half of a rule. One [`Match`] is one base option (`-s`, `-p`, ...) or
//! one `-m module` instance with its options; a rule matches when all of its matches do.

use std::fmt::Write as _;

use super::ext::{tcp_has_option, AddrRange, AddrTypes, Cmp, Limit, Multiport, TcpFlags};
use super::lex::quote;
pub(crate) use super::value::{
    parse_net, parse_proto, parse_uint, prefix_addr, proto_name, Net, PortRange, PORT_PROTOCOLS,
};
use super::{CtState, Family, Marks, PacketCtx};

/// An interface name, `+` at the end meaning "any name with this prefix".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Iface {
    pub(crate) name: String,
    pub(crate) wildcard: bool,
}

impl Iface {
    pub(crate) fn parse(s: &str) -> Result<Iface, String> {
        // IFNAMSIZ is 16 with the terminating NUL.
        if s.is_empty() || s.chars().count() > 15 {
            return Err(format!("bad interface name {s:?} (1 to 15 characters)"));
        }
        if s.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(format!("bad interface name {s:?}"));
        }
        Ok(match s.strip_suffix('+') {
            Some(prefix) => Iface {
                name: prefix.to_string(),
                wildcard: true,
            },
            None => Iface {
                name: s.to_string(),
                wildcard: false,
            },
        })
    }

    fn matches(&self, name: Option<&str>) -> bool {
        let name = name.unwrap_or("");
        if self.wildcard {
            name.starts_with(&self.name)
        } else {
            name == self.name
        }
    }

    fn write(&self, out: &mut String) {
        // iptables-save prints names bare; quote only what would not read back.
        let full = format!("{}{}", self.name, if self.wildcard { "+" } else { "" });
        if full.chars().any(|c| "\"'\\!#".contains(c)) {
            out.push_str(&quote(&full));
        } else {
            out.push_str(&full);
        }
    }
}

/// A port option of the tcp/udp/... modules: range plus its own `!`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PortSpec {
    pub(crate) range: PortRange,
    pub(crate) invert: bool,
}

/// A state list (`--state`, `--ctstate`) with its `!`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StateSpec {
    pub(crate) mask: CtState,
    pub(crate) invert: bool,
}

/// State names in the order iptables-save prints them.
const STATE_NAMES: &[(&str, CtState)] = &[
    ("INVALID", CtState::INVALID),
    ("NEW", CtState::NEW),
    ("RELATED", CtState::RELATED),
    ("ESTABLISHED", CtState::ESTABLISHED),
    ("UNTRACKED", CtState::UNTRACKED),
    ("SNAT", CtState::SNAT),
    ("DNAT", CtState::DNAT),
];

/// Parses a comma list of states; `allow_nat` admits SNAT/DNAT (`--ctstate` only). On error
/// returns the character offset of the bad element inside `s`.
pub(crate) fn parse_states(s: &str, allow_nat: bool) -> Result<CtState, (usize, String)> {
    let mut mask = CtState::default();
    let mut offset = 0;
    for part in s.split(',') {
        let found = STATE_NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(part))
            .map(|&(_, st)| st)
            .filter(|st| allow_nat || CtState::BASE.contains(*st));
        match found {
            Some(st) => mask |= st,
            None if part.is_empty() => return Err((offset, "empty state in the list".into())),
            None => return Err((offset, format!("unknown state {part}"))),
        }
        offset += part.chars().count() + 1;
    }
    Ok(mask)
}

pub(crate) fn write_states(mask: CtState, out: &mut String) {
    let mut first = true;
    for (name, st) in STATE_NAMES {
        if mask.contains(*st) {
            if !first {
                out.push(',');
            }
            out.push_str(name);
            first = false;
        }
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

/// One match of a rule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Match {
    /// `-s`; addresses never parse as `/0` without `!` (those are dropped: they match all).
    Src {
        net: Net,
        invert: bool,
    },
    Dst {
        net: Net,
        invert: bool,
    },
    InIface {
        iface: Iface,
        invert: bool,
    },
    OutIface {
        iface: Iface,
        invert: bool,
    },
    /// `-p`; never 0 (any).
    Proto {
        proto: u8,
        invert: bool,
    },
    /// `-f`: second and later fragments (IPv4).
    Fragment {
        invert: bool,
    },
    /// `-m tcp|udp|udplite|sctp|dccp`; `module` is the protocol number (and name via
    /// [`proto_name`]). Without a port header (a later fragment) it never matches.
    Ports {
        module: u8,
        sport: Option<PortSpec>,
        dport: Option<PortSpec>,
        /// `--tcp-flags` / `--syn` (tcp only).
        tcp_flags: Option<TcpFlags>,
        /// `--tcp-option N` with its `!` (tcp only).
        tcp_option: Option<(u8, bool)>,
    },
    /// `-m multiport`.
    Multiport(Multiport),
    /// `-m mark --mark value/mask` (on the mark as the traversal has set it so far).
    Mark {
        value: u32,
        mask: u32,
        invert: bool,
    },
    /// `-m connmark --mark value/mask`.
    Connmark {
        value: u32,
        mask: u32,
        invert: bool,
    },
    /// `-m iprange`.
    IpRange {
        src: Option<AddrRange>,
        dst: Option<AddrRange>,
    },
    /// `-m length --length lo:hi` on the L3 length.
    Length {
        lo: u16,
        hi: u16,
        invert: bool,
    },
    /// `-m ttl` (IPv4) / `-m hl` (IPv6).
    Ttl {
        cmp: Cmp,
        value: u8,
        v6: bool,
    },
    /// `-m limit`.
    Limit(Limit),
    /// `-m addrtype`.
    AddrType {
        src: Option<AddrTypes>,
        dst: Option<AddrTypes>,
    },
    /// `-m conntrack`.
    Conntrack(Box<super::ctmatch::CtMatch>),
    /// `-m state --state`.
    State {
        state: StateSpec,
    },
    /// `-m icmp --icmp-type`.
    Icmp {
        spec: IcmpSpec,
    },
    /// `-m icmp6 --icmpv6-type`.
    Icmp6 {
        spec: IcmpSpec,
    },
    /// `-m comment --comment`: always matches.
    Comment {
        text: String,
    },
    /// `-m string`.
    String(Box<super::string::StringMatch>),
    /// `-m connbytes`.
    Connbytes(super::connstat::Connbytes),
    /// `-m connlimit`.
    Connlimit(Box<super::connstat::Connlimit>),
    /// `-m recent`.
    Recent(Box<super::stateful::Recent>),
    /// `-m hashlimit`.
    Hashlimit(Box<super::stateful::Hashlimit>),
}

impl Match {
    pub(crate) fn matches(&self, ctx: &PacketCtx, marks: &Marks) -> bool {
        match self {
            Match::Src { net, invert } => net.contains(ctx.src) != *invert,
            Match::Dst { net, invert } => net.contains(ctx.dst) != *invert,
            Match::InIface { iface, invert } => iface.matches(ctx.in_iface) != *invert,
            Match::OutIface { iface, invert } => iface.matches(ctx.out_iface) != *invert,
            Match::Proto { proto, invert } => (ctx.proto == *proto) != *invert,
            Match::Fragment { invert } => ctx.fragment != *invert,
            Match::Ports {
                sport,
                dport,
                tcp_flags,
                tcp_option,
                ..
            } => {
                let (Some(s), Some(d)) = (ctx.sport, ctx.dport) else {
                    return false;
                };
                if tcp_flags.is_some_and(|f| !f.matches(ctx.tcp_flags)) {
                    return false;
                }
                if let Some((kind, invert)) = *tcp_option {
                    // An unreadable header does not match (the kernel drops such packets).
                    match tcp_has_option(ctx, kind) {
                        Some(has) if has != invert => {}
                        _ => return false,
                    }
                }
                let ok = |spec: &Option<PortSpec>, p: u16| match spec {
                    Some(spec) => spec.range.contains(p) != spec.invert,
                    None => true,
                };
                ok(sport, s) && ok(dport, d)
            }
            Match::Conntrack(m) => m.matches(ctx),
            Match::State { state } => {
                let base = CtState(ctx.ctstate.0 & CtState::BASE.0);
                base.intersects(state.mask) != state.invert
            }
            Match::Icmp { spec } | Match::Icmp6 { spec } => spec.matches(ctx.icmp_type_code),
            Match::Comment { .. } => true,
            Match::String(m) => m.matches(ctx),
            Match::Multiport(mp) => mp.matches(ctx),
            Match::Mark {
                value,
                mask,
                invert,
            } => (marks.mark & mask == *value) != *invert,
            Match::Connmark {
                value,
                mask,
                invert,
            } => (marks.ctmark & mask == *value) != *invert,
            Match::IpRange { src, dst } => {
                src.is_none_or(|r| r.matches(ctx.src)) && dst.is_none_or(|r| r.matches(ctx.dst))
            }
            Match::Length { lo, hi, invert } => {
                (u32::from(*lo) <= ctx.len && ctx.len <= u32::from(*hi)) != *invert
            }
            Match::Ttl { cmp, value, .. } => cmp.test(ctx.ttl, *value),
            Match::Limit(limit) => limit.hit(ctx.now_ns),
            Match::Connbytes(m) => m.matches(ctx),
            Match::Connlimit(m) => m.matches(ctx),
            Match::Recent(m) => m.matches(ctx),
            Match::Hashlimit(m) => m.matches(ctx),
            Match::AddrType { src, dst } => {
                src.is_none_or(|t| t.matches(ctx.src, ctx))
                    && dst.is_none_or(|t| t.matches(ctx.dst, ctx))
            }
        }
    }

    /// Appends the iptables-save form (with a leading space).
    pub(crate) fn write(&self, out: &mut String) {
        let not = |inv: bool| if inv { " !" } else { "" };
        match self {
            Match::Src { net, invert } => {
                let _ = write!(out, "{} -s ", not(*invert));
                net.write(out);
            }
            Match::Dst { net, invert } => {
                let _ = write!(out, "{} -d ", not(*invert));
                net.write(out);
            }
            Match::InIface { iface, invert } => {
                let _ = write!(out, "{} -i ", not(*invert));
                iface.write(out);
            }
            Match::OutIface { iface, invert } => {
                let _ = write!(out, "{} -o ", not(*invert));
                iface.write(out);
            }
            Match::Proto { proto, invert } => {
                let _ = write!(out, "{} -p {}", not(*invert), proto_name(*proto));
            }
            Match::Fragment { invert } => {
                let _ = write!(out, "{} -f", not(*invert));
            }
            Match::Ports {
                module,
                sport,
                dport,
                tcp_flags,
                tcp_option,
            } => {
                let _ = write!(out, " -m {}", proto_name(*module));
                for (name, spec) in [("--sport", sport), ("--dport", dport)] {
                    if let Some(spec) = spec {
                        let _ = write!(out, "{} {name} ", not(spec.invert));
                        spec.range.write(out);
                    }
                }
                if let Some((kind, invert)) = tcp_option {
                    let _ = write!(out, "{} --tcp-option {kind}", not(*invert));
                }
                if let Some(f) = tcp_flags {
                    f.write(out);
                }
            }
            Match::Multiport(mp) => mp.write(out),
            Match::Mark {
                value,
                mask,
                invert,
            }
            | Match::Connmark {
                value,
                mask,
                invert,
            } => {
                let module = if matches!(self, Match::Mark { .. }) {
                    "mark"
                } else {
                    "connmark"
                };
                let _ = write!(out, " -m {module}{} --mark ", not(*invert));
                super::ext::write_value_mask(out, *value, *mask);
            }
            Match::IpRange { src, dst } => {
                out.push_str(" -m iprange");
                if let Some(r) = src {
                    r.write(out, "--src-range");
                }
                if let Some(r) = dst {
                    r.write(out, "--dst-range");
                }
            }
            Match::Length { lo, hi, invert } => {
                let _ = write!(out, " -m length{} --length ", not(*invert));
                PortRange { lo: *lo, hi: *hi }.write(out);
            }
            Match::Ttl { cmp, value, v6 } => {
                let name = if *v6 { "hl" } else { "ttl" };
                let _ = write!(out, " -m {name}");
                cmp.write(out, name, *value);
            }
            Match::Limit(limit) => limit.write(out),
            Match::AddrType { src, dst } => {
                out.push_str(" -m addrtype");
                if let Some(t) = src {
                    t.write(out, "--src-type");
                }
                if let Some(t) = dst {
                    t.write(out, "--dst-type");
                }
            }
            Match::Conntrack(m) => m.write(out),
            Match::State { state } => {
                let _ = write!(out, " -m state{} --state ", not(state.invert));
                write_states(state.mask, out);
            }
            Match::Icmp { spec } => {
                let _ = write!(out, " -m icmp{} --icmp-type ", not(spec.invert));
                spec.write(out);
            }
            Match::Icmp6 { spec } => {
                let _ = write!(out, " -m icmp6{} --icmpv6-type ", not(spec.invert));
                spec.write(out);
            }
            Match::Comment { text } => {
                let _ = write!(out, " -m comment --comment {}", quote(text));
            }
            Match::String(m) => m.write(out),
            Match::Connbytes(m) => m.write(out),
            Match::Connlimit(m) => m.write(out),
            Match::Recent(m) => m.write(out),
            Match::Hashlimit(m) => m.write(out),
        }
    }
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

    #[test]
    fn states() {
        assert_eq!(
            parse_states("RELATED,established", false).unwrap(),
            CtState::RELATED | CtState::ESTABLISHED
        );
        assert_eq!(parse_states("NEW,FOO", false).unwrap_err().0, 4);
        assert_eq!(parse_states("SNAT", false).unwrap_err().0, 0);
        assert_eq!(parse_states("SNAT", true).unwrap(), CtState::SNAT);
    }
}
