//! Matches: the predicate half of a rule. One [`Match`] is one base option (`-s`, `-p`, ...) or
//! one `-m module` instance with its options; a rule matches when all of its matches do.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::ext::{tcp_has_option, AddrRange, AddrTypes, Cmp, Limit, Multiport, TcpFlags};
use super::lex::quote;
use super::{CtState, Family, Marks, PacketCtx};

/// An address with a mask (`-s 192.0.2.0/24`, `-d 2001:db8::/32`, `-s 10.0.0.0/255.0.255.0`).
/// The address is stored already masked, as iptables does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Net {
    V4 { addr: u32, mask: u32 },
    V6 { addr: u128, mask: u128 },
}

impl Net {
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

    #[test]
    fn protocols() {
        assert_eq!(parse_proto("TCP").unwrap(), 6);
        assert_eq!(parse_proto("icmpv6").unwrap(), 58);
        assert_eq!(parse_proto("253").unwrap(), 253);
        assert!(parse_proto("256").is_err());
        assert_eq!(proto_name(58), "ipv6-icmp");
        assert_eq!(proto_name(253), "253");
    }
}
