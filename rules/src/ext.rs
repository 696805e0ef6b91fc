//! Extension matches and their value syntax (iptables-extensions(8)): multiport, tcp flags and
//! options, mark / connmark, iprange, length, ttl / hl, limit, addrtype.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Mutex;

pub(crate) use super::value::{parse_u16_range, parse_u32, parse_value_mask, write_value_mask};
use super::value::{parse_uint, PortRange};
use super::{Family, PacketCtx};

/// `-m multiport`: which ports a list applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PortDir {
    Src,
    Dst,
    Either,
}

/// `-m multiport --sports/--dports/--ports LIST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Multiport {
    pub(crate) dir: PortDir,
    pub(crate) ports: Vec<PortRange>,
    pub(crate) invert: bool,
}

/// The kernel's multiport keeps 15 slots; a range takes two.
const MULTIPORT_SLOTS: usize = 15;

impl Multiport {
    /// Parses `22,80,8000:8100`; on error returns the character offset of the bad element.
    pub(crate) fn parse_list(s: &str) -> Result<Vec<PortRange>, (usize, String)> {
        let mut ports = Vec::new();
        let mut slots = 0;
        let mut offset = 0;
        for part in s.split(',') {
            let r = PortRange::parse(part).map_err(|e| (offset, e))?;
            slots += if r.lo == r.hi { 1 } else { 2 };
            if slots > MULTIPORT_SLOTS {
                return Err((
                    offset,
                    format!("too many ports (at most {MULTIPORT_SLOTS}, a range counts as two)"),
                ));
            }
            ports.push(r);
            offset += part.chars().count() + 1;
        }
        Ok(ports)
    }

    pub(crate) fn matches(&self, ctx: &PacketCtx) -> bool {
        // No port header (a later fragment): no match, even with `!`, as in the kernel.
        let (Some(s), Some(d)) = (ctx.sport, ctx.dport) else {
            return false;
        };
        let hit = self.ports.iter().any(|r| match self.dir {
            PortDir::Src => r.contains(s),
            PortDir::Dst => r.contains(d),
            PortDir::Either => r.contains(s) || r.contains(d),
        });
        hit != self.invert
    }

    pub(crate) fn write(&self, out: &mut String) {
        let opt = match self.dir {
            PortDir::Src => "--sports",
            PortDir::Dst => "--dports",
            PortDir::Either => "--ports",
        };
        let _ = write!(
            out,
            " -m multiport{} {opt} ",
            if self.invert { " !" } else { "" }
        );
        for (i, r) in self.ports.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            r.write(out);
        }
    }
}

/// TCP flag names in bit order (FIN is bit 0), as iptables prints them.
const TCP_FLAGS: [(&str, u8); 8] = [
    ("FIN", 0x01),
    ("SYN", 0x02),
    ("RST", 0x04),
    ("PSH", 0x08),
    ("ACK", 0x10),
    ("URG", 0x20),
    ("ECE", 0x40),
    ("CWR", 0x80),
];

/// `--tcp-flags MASK COMP` (and `--syn`, which is `FIN,SYN,RST,ACK SYN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcpFlags {
    pub(crate) mask: u8,
    pub(crate) comp: u8,
    pub(crate) invert: bool,
}

impl TcpFlags {
    pub(crate) const SYN: TcpFlags = TcpFlags {
        mask: 0x17,
        comp: 0x02,
        invert: false,
    };

    /// Parses a comma list of flag names, `ALL` (the six classic flags) or `NONE`.
    pub(crate) fn parse_list(s: &str) -> Result<u8, (usize, String)> {
        let mut v = 0u8;
        let mut offset = 0;
        for part in s.split(',') {
            let bits = match part.to_ascii_uppercase().as_str() {
                "ALL" => 0x3f,
                "NONE" => 0,
                up => TCP_FLAGS
                    .iter()
                    .find(|(n, _)| *n == up)
                    .map(|&(_, b)| b)
                    .ok_or_else(|| (offset, format!("unknown TCP flag {part}")))?,
            };
            v |= bits;
            offset += part.chars().count() + 1;
        }
        Ok(v)
    }

    fn write_list(out: &mut String, v: u8) {
        if v == 0 {
            out.push_str("NONE");
            return;
        }
        let names: Vec<&str> = TCP_FLAGS
            .iter()
            .filter(|(_, b)| v & b != 0)
            .map(|(n, _)| *n)
            .collect();
        out.push_str(&names.join(","));
    }

    pub(crate) fn matches(&self, flags: Option<u8>) -> bool {
        match flags {
            Some(f) => (f & self.mask == self.comp) != self.invert,
            None => false,
        }
    }

    pub(crate) fn write(&self, out: &mut String) {
        let _ = write!(out, "{} --tcp-flags ", if self.invert { " !" } else { "" });
        Self::write_list(out, self.mask);
        out.push(' ');
        Self::write_list(out, self.comp);
    }
}

/// `--tcp-option N`: whether the TCP header carries option kind N.
pub(crate) fn tcp_has_option(ctx: &PacketCtx, kind: u8) -> Option<bool> {
    let tcp = l4_header(ctx)?;
    let doff = usize::from(*tcp.get(12)? >> 4) * 4;
    let opts = tcp.get(20..doff)?;
    let mut i = 0;
    while let Some(&k) = opts.get(i) {
        if k == kind {
            return Some(true);
        }
        // EOL and NOP are one byte; others carry a length (a zero length would not advance).
        i += if k < 2 {
            1
        } else {
            usize::from(*opts.get(i + 1)?).max(1)
        };
    }
    Some(false)
}

/// The L4 header of `ctx.packet` (after IPv6 extension headers), `None` when absent or short.
fn l4_header<'a>(ctx: &PacketCtx<'a>) -> Option<&'a [u8]> {
    let p = ctx.packet;
    match ctx.family {
        Family::V4 => {
            let ihl = usize::from(*p.first()? & 0x0f) * 4;
            p.get(ihl..)
        }
        Family::V6 => {
            let mut next = *p.get(6)?;
            let mut off = 40;
            // Hop-by-hop, routing, fragment, AH, destination options.
            for _ in 0..16 {
                match next {
                    0 | 43 | 60 => {
                        next = *p.get(off)?;
                        off += (usize::from(*p.get(off + 1)?) + 1) * 8;
                    }
                    44 => {
                        next = *p.get(off)?;
                        off += 8;
                    }
                    51 => {
                        next = *p.get(off)?;
                        off += (usize::from(*p.get(off + 1)?) + 2) * 4;
                    }
                    _ => return p.get(off..),
                }
            }
            None
        }
    }
}

/// An inclusive address range of `-m iprange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AddrRange {
    pub(crate) lo: IpAddr,
    pub(crate) hi: IpAddr,
    pub(crate) invert: bool,
}

impl AddrRange {
    pub(crate) fn parse(s: &str, family: Family) -> Result<AddrRange, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("bad address range {s} (expected FROM-TO)"))?;
        let addr = |x: &str| -> Result<IpAddr, String> {
            let ip: IpAddr = x.parse().map_err(|_| format!("bad address {x}"))?;
            match (family, ip) {
                (Family::V4, IpAddr::V4(_)) | (Family::V6, IpAddr::V6(_)) => Ok(ip),
                _ => Err(format!("address {x} is not of this ruleset's family")),
            }
        };
        let (lo, hi) = (addr(a)?, addr(b)?);
        if lo > hi {
            return Err(format!("bad address range {s} (FROM above TO)"));
        }
        Ok(AddrRange {
            lo,
            hi,
            invert: false,
        })
    }

    pub(crate) fn matches(&self, ip: IpAddr) -> bool {
        // IpAddr orders V4 before V6, so a family mismatch is simply outside the range.
        (self.lo <= ip && ip <= self.hi) != self.invert
    }

    pub(crate) fn write(&self, out: &mut String, opt: &str) {
        let _ = write!(
            out,
            "{} {opt} {}-{}",
            if self.invert { " !" } else { "" },
            self.lo,
            self.hi
        );
    }
}

/// `-m ttl` / `-m hl` comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Gt,
}

impl Cmp {
    pub(crate) fn test(self, have: u8, want: u8) -> bool {
        match self {
            Cmp::Eq => have == want,
            Cmp::Ne => have != want,
            Cmp::Lt => have < want,
            Cmp::Gt => have > want,
        }
    }

    /// Save form for `prefix` `ttl` or `hl`: `--ttl-eq 64`, `! --ttl-eq 64`, ...
    pub(crate) fn write(self, out: &mut String, prefix: &str, value: u8) {
        let (not, op) = match self {
            Cmp::Eq => ("", "eq"),
            Cmp::Ne => (" !", "eq"),
            Cmp::Lt => ("", "lt"),
            Cmp::Gt => ("", "gt"),
        };
        let _ = write!(out, "{not} --{prefix}-{op} {value}");
    }
}

/// `-m limit` rate unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RateUnit {
    Second,
    Minute,
    Hour,
    Day,
}

impl RateUnit {
    pub(crate) fn nanos(self) -> u64 {
        match self {
            RateUnit::Second => 1_000_000_000,
            RateUnit::Minute => 60_000_000_000,
            RateUnit::Hour => 3_600_000_000_000,
            RateUnit::Day => 86_400_000_000_000,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            RateUnit::Second => "sec",
            RateUnit::Minute => "min",
            RateUnit::Hour => "hour",
            RateUnit::Day => "day",
        }
    }
}

/// The kernel's limit match refuses rates above 10000 per second.
const MAX_RATE_PER_SEC: u64 = 10_000;

/// `-m limit --limit N/unit --limit-burst B`: a token bucket shared by every thread using the
/// rule. Time comes from `PacketCtx::now_ns`, so the simulator is deterministic.
#[derive(Debug)]
pub(crate) struct Limit {
    pub(crate) rate: u32,
    pub(crate) unit: RateUnit,
    pub(crate) burst: u32,
    /// (time of the last update, credit in nanoseconds); `None` until the first packet, which
    /// starts with a full bucket.
    state: Mutex<Option<(u64, u64)>>,
}

/// iptables' defaults: 3/hour, burst 5.
pub(crate) const LIMIT_DEFAULT_BURST: u32 = 5;

impl Limit {
    pub(crate) fn new(rate: u32, unit: RateUnit, burst: u32) -> Limit {
        Limit {
            rate,
            unit,
            burst,
            state: Mutex::new(None),
        }
    }

    /// Parses `N`, `N/second`, `N/min`, ... (any prefix of second, minute, hour, day).
    pub(crate) fn parse_rate(s: &str) -> Result<(u32, RateUnit), String> {
        Self::parse_rate_max(s, MAX_RATE_PER_SEC)
    }

    /// [`Limit::parse_rate`] with another ceiling (hashlimit allows 1,000,000/sec).
    pub(crate) fn parse_rate_max(s: &str, max_per_sec: u64) -> Result<(u32, RateUnit), String> {
        let bad = || format!("bad rate {s} (N/sec, N/min, N/hour or N/day)");
        let (n, unit) = match s.split_once('/') {
            Some((n, u)) => {
                let u = u.to_ascii_lowercase();
                let unit = [
                    ("second", RateUnit::Second),
                    ("minute", RateUnit::Minute),
                    ("hour", RateUnit::Hour),
                    ("day", RateUnit::Day),
                ]
                .into_iter()
                .find(|(name, _)| !u.is_empty() && name.starts_with(&u))
                .map(|(_, unit)| unit)
                .ok_or_else(bad)?;
                (n, unit)
            }
            None => (s, RateUnit::Second),
        };
        let n = parse_uint(n, u64::from(u32::MAX)).map_err(|_| bad())?;
        if n == 0 {
            return Err(format!("rate {s} must be at least 1"));
        }
        // Compare per-second rates without overflow: n / unit_secs > MAX.
        if n > max_per_sec * (unit.nanos() / 1_000_000_000) {
            return Err(format!("rate {s} too fast (at most {max_per_sec}/sec)"));
        }
        Ok((n as u32, unit))
    }

    /// Nanoseconds of credit one packet costs.
    fn cost(&self) -> u64 {
        self.unit.nanos() / u64::from(self.rate.max(1))
    }

    pub(crate) fn hit(&self, now: u64) -> bool {
        let cost = self.cost();
        let cap = cost.saturating_mul(u64::from(self.burst.max(1)));
        // A poisoned lock only means another thread panicked mid-update; the pair is still a
        // valid bucket.
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last, credit) = guard.get_or_insert((now, cap));
        // Time going backwards (clock steps, reordered simulator input) adds no credit.
        let elapsed = now.saturating_sub(*last);
        *last = (*last).max(now);
        *credit = credit.saturating_add(elapsed).min(cap);
        if *credit >= cost {
            *credit -= cost;
            true
        } else {
            false
        }
    }

    pub(crate) fn write(&self, out: &mut String) {
        let _ = write!(out, " -m limit --limit {}/{}", self.rate, self.unit.name());
        if self.burst != LIMIT_DEFAULT_BURST {
            let _ = write!(out, " --limit-burst {}", self.burst);
        }
    }
}

impl Clone for Limit {
    /// A copy starts with a fresh, full bucket.
    fn clone(&self) -> Limit {
        Limit::new(self.rate, self.unit, self.burst)
    }
}

impl PartialEq for Limit {
    /// Configuration only; the bucket is state.
    fn eq(&self, other: &Limit) -> bool {
        (self.rate, self.unit, self.burst) == (other.rate, other.unit, other.burst)
    }
}

/// `-m addrtype` types, one bit each, in the order iptables prints them.
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
    fn multiport_lists() {
        let l = Multiport::parse_list("22,80,8000:8100").unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(Multiport::parse_list("1,2,x").unwrap_err().0, 4);
        let fifteen: Vec<String> = (1..=15).map(|p| p.to_string()).collect();
        assert!(Multiport::parse_list(&fifteen.join(",")).is_ok());
        // 14 singles plus one range = 16 slots.
        let mut over: Vec<String> = (1..=14).map(|p| p.to_string()).collect();
        over.push("100:200".into());
        assert_eq!(Multiport::parse_list(&over.join(",")).unwrap_err().0, 33);
    }

    #[test]
    fn tcp_flag_lists() {
        assert_eq!(TcpFlags::parse_list("SYN,ACK").unwrap(), 0x12);
        assert_eq!(TcpFlags::parse_list("ALL").unwrap(), 0x3f);
        assert_eq!(TcpFlags::parse_list("NONE").unwrap(), 0);
        assert_eq!(TcpFlags::parse_list("syn,BOGUS").unwrap_err().0, 4);
        let mut s = String::new();
        TcpFlags::SYN.write(&mut s);
        assert_eq!(s, " --tcp-flags FIN,SYN,RST,ACK SYN");
    }

    #[test]
    fn rates() {
        assert_eq!(Limit::parse_rate("5/min").unwrap(), (5, RateUnit::Minute));
        assert_eq!(Limit::parse_rate("10").unwrap(), (10, RateUnit::Second));
        assert_eq!(Limit::parse_rate("3/h").unwrap(), (3, RateUnit::Hour));
        assert_eq!(Limit::parse_rate("1/DAY").unwrap(), (1, RateUnit::Day));
        assert!(Limit::parse_rate("0/sec").is_err());
        assert!(Limit::parse_rate("10001/sec").is_err());
        assert!(Limit::parse_rate("5/fortnight").is_err());
        assert!(Limit::parse_rate("5/").is_err());
    }

    #[test]
    fn token_bucket() {
        // 2 per second, burst 3.
        let l = Limit::new(2, RateUnit::Second, 3);
        let t0 = 1_000_000_000;
        assert!(l.hit(t0));
        assert!(l.hit(t0));
        assert!(l.hit(t0));
        assert!(!l.hit(t0));
        // Half a second buys one packet.
        assert!(!l.hit(t0 + 499_999_999));
        assert!(l.hit(t0 + 500_000_000));
        assert!(!l.hit(t0 + 500_000_000));
        // A long pause refills only up to the burst.
        let t1 = t0 + 100_000_000_000;
        assert!(l.hit(t1) && l.hit(t1) && l.hit(t1));
        assert!(!l.hit(t1));
        // Time going backwards adds nothing.
        assert!(!l.hit(t0));
    }

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

    #[test]
    fn tcp_options_in_the_packet() {
        // IPv4 header (20 bytes) + TCP header with MSS (kind 2) and a NOP, SACK-permitted (4).
        let mut pkt = vec![0x45u8; 1];
        pkt.resize(20, 0);
        let mut tcp = vec![0u8; 20];
        tcp[12] = 7 << 4; // 28-byte header
        tcp.extend_from_slice(&[2, 4, 0x05, 0xb4, 1, 4, 2, 0]);
        pkt.extend_from_slice(&tcp);
        let mut ctx = PacketCtx {
            packet: &pkt,
            ..PacketCtx::default()
        };
        assert_eq!(tcp_has_option(&ctx, 2), Some(true));
        assert_eq!(tcp_has_option(&ctx, 4), Some(true));
        assert_eq!(tcp_has_option(&ctx, 8), Some(false));
        // Truncated: no answer.
        ctx.packet = &pkt[..30];
        assert_eq!(tcp_has_option(&ctx, 2), None);

        // IPv6 with a hop-by-hop header before TCP.
        let mut p6 = vec![0u8; 40];
        p6[0] = 0x60;
        p6[6] = 0; // hop-by-hop
        p6.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 0]);
        p6.extend_from_slice(&tcp);
        let c6 = PacketCtx {
            family: Family::V6,
            packet: &p6,
            ..PacketCtx::default()
        };
        assert_eq!(tcp_has_option(&c6, 4), Some(true));
        assert_eq!(tcp_has_option(&c6, 3), Some(false));
    }
}
