//! Matches that remember packets across rules and time: `-m recent` (named lists of
//! addresses with the times they were seen) and `-m hashlimit` (token buckets per address /
//! port key).
//!
//! Both keep their state in tables shared by name within a ruleset, as the kernel shares
//! them within a network namespace: every `-m recent --name ssh` rule of the ruleset reads
//! and writes the same list, every `--hashlimit-name web` rule the same buckets (with the
//! options of the first rule that named it, as in the kernel). Time comes from
//! [`PacketCtx::now_ns`], so the simulator stays deterministic. The tables are bounded:
//!
//! - a recent list holds at most [`RECENT_MAX_ENTRIES`] addresses (the kernel's default
//!   `ip_list_tot`; the least recently seen is forgotten first) and the last
//!   [`RECENT_MAX_STAMPS`] times per address (`ip_pkt_list_tot`);
//! - a hashlimit table holds at most `--hashlimit-htable-max` keys (default
//!   [`HASHLIMIT_DEFAULT_MAX`]); idle keys expire after `--hashlimit-htable-expire` ms (by
//!   default the rate's unit, as in iptables).
//!   When it is full even after expiry, a new key is not added and its packet counts as
//!   over the limit (the kernel drops such a packet outright; here the rule's own target
//!   decides, which for the usual `--hashlimit-above ... -j DROP` is the same).
//!
//! A reloaded ruleset starts with empty lists and buckets.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

use super::ext::RateUnit;
use super::matches::prefix_addr as prefix;
use super::{Family, PacketCtx};

/// `ip_list_tot`: addresses per recent list.
pub const RECENT_MAX_ENTRIES: usize = 100;
/// `ip_pkt_list_tot`: times kept per address, and the largest `--hitcount`.
pub const RECENT_MAX_STAMPS: usize = 20;

/// What a `-m recent` rule does with the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecentCmd {
    Set,
    Rcheck,
    Update,
    Remove,
}

impl RecentCmd {
    fn name(self) -> &'static str {
        match self {
            RecentCmd::Set => "--set",
            RecentCmd::Rcheck => "--rcheck",
            RecentCmd::Update => "--update",
            RecentCmd::Remove => "--remove",
        }
    }
}

#[derive(Debug)]
struct RecentEntry {
    /// Times seen, oldest first (at most [`RECENT_MAX_STAMPS`]).
    stamps: Vec<u64>,
    ttl: u8,
    /// Last use, for evicting the least recently seen address.
    touched: u64,
}

/// One named list.
#[derive(Debug, Default)]
pub(crate) struct RecentList {
    entries: HashMap<IpAddr, RecentEntry>,
    clock: u64,
}

impl RecentList {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn insert(&mut self, addr: IpAddr, ttl: u8, now: u64) {
        if self.entries.len() >= RECENT_MAX_ENTRIES {
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.touched)
                .map(|(a, _)| *a)
            {
                self.entries.remove(&oldest);
            }
        }
        let touched = self.tick();
        self.entries.insert(
            addr,
            RecentEntry {
                stamps: vec![now],
                ttl,
                touched,
            },
        );
    }

    fn update(&mut self, addr: &IpAddr, ttl: u8, now: u64) {
        let touched = self.tick();
        if let Some(e) = self.entries.get_mut(addr) {
            if e.stamps.len() >= RECENT_MAX_STAMPS {
                e.stamps.remove(0);
            }
            e.stamps.push(now);
            e.ttl = ttl;
            e.touched = touched;
        }
    }
}

/// `-m recent`.
#[derive(Debug, Clone)]
pub(crate) struct Recent {
    pub(crate) cmd: RecentCmd,
    pub(crate) invert: bool,
    pub(crate) name: String,
    /// `--seconds`, 0 when not given.
    pub(crate) seconds: u32,
    pub(crate) reap: bool,
    /// `--hitcount`, 0 when not given.
    pub(crate) hitcount: u32,
    pub(crate) rttl: bool,
    /// `--rdest` (else `--rsource`).
    pub(crate) rdest: bool,
    /// `--mask` as an address-sized bit mask.
    pub(crate) mask: u128,
    pub(crate) family: Family,
    pub(crate) list: Arc<Mutex<RecentList>>,
}

impl PartialEq for Recent {
    fn eq(&self, o: &Self) -> bool {
        (
            self.cmd,
            self.invert,
            &self.name,
            self.seconds,
            self.reap,
            self.hitcount,
            self.rttl,
            self.rdest,
            self.mask,
        ) == (
            o.cmd, o.invert, &o.name, o.seconds, o.reap, o.hitcount, o.rttl, o.rdest, o.mask,
        )
    }
}

fn masked(a: IpAddr, mask: u128) -> IpAddr {
    match a {
        IpAddr::V4(v) => IpAddr::V4((u32::from(v) & mask as u32).into()),
        IpAddr::V6(v) => IpAddr::V6((u128::from(v) & mask).into()),
    }
}

impl Recent {
    pub(crate) fn new(family: Family) -> Recent {
        Recent {
            cmd: RecentCmd::Set,
            invert: false,
            name: "DEFAULT".into(),
            seconds: 0,
            reap: false,
            hitcount: 0,
            rttl: false,
            rdest: false,
            mask: full_mask(family),
            family,
            list: Arc::default(),
        }
    }

    pub(crate) fn matches(&self, ctx: &PacketCtx) -> bool {
        let addr = masked(if self.rdest { ctx.dst } else { ctx.src }, self.mask);
        // The TTL as the packet arrived: forwarded packets have already lost one when FORWARD
        // and POSTROUTING see them (xt_recent adds it back the same way).
        let forwarded = ctx.in_iface.is_some() && ctx.out_iface.is_some();
        let ttl = if forwarded {
            ctx.ttl.saturating_add(1)
        } else {
            ctx.ttl
        };
        let now = ctx.now_ns;
        let mut list = self.list.lock();
        let found = list
            .entries
            .get(&addr)
            .is_some_and(|e| !self.rttl || e.ttl == ttl);
        if !found {
            if self.cmd != RecentCmd::Set {
                return self.invert;
            }
            list.insert(addr, ttl, now);
            return !self.invert;
        }
        let hit = match self.cmd {
            RecentCmd::Set => true,
            RecentCmd::Remove => {
                list.entries.remove(&addr);
                true
            }
            RecentCmd::Rcheck | RecentCmd::Update => {
                let window = u64::from(self.seconds) * 1_000_000_000;
                let since = now.saturating_sub(window);
                let e = &list.entries[&addr];
                let recent = e
                    .stamps
                    .iter()
                    .filter(|&&t| self.seconds == 0 || t >= since)
                    .count();
                let hit = if self.hitcount == 0 {
                    recent > 0
                } else {
                    recent >= self.hitcount as usize
                };
                if self.reap && e.stamps.last().is_none_or(|&t| t < since) {
                    list.entries.remove(&addr);
                }
                hit
            }
        };
        let matched = hit != self.invert;
        if self.cmd == RecentCmd::Set || (self.cmd == RecentCmd::Update && hit) {
            list.update(&addr, ttl, now);
        }
        matched
    }

    pub(crate) fn write(&self, out: &mut String) {
        let family = self.family;
        let not = if self.invert { " !" } else { "" };
        let _ = write!(out, " -m recent{not} {}", self.cmd.name());
        if self.seconds != 0 {
            let _ = write!(out, " --seconds {}", self.seconds);
        }
        if self.reap {
            out.push_str(" --reap");
        }
        if self.hitcount != 0 {
            let _ = write!(out, " --hitcount {}", self.hitcount);
        }
        if self.rttl {
            out.push_str(" --rttl");
        }
        let _ = write!(out, " --name {} --mask ", self.name);
        write_mask(out, self.mask, family);
        out.push_str(if self.rdest { " --rdest" } else { " --rsource" });
    }
}

fn full_mask(family: Family) -> u128 {
    match family {
        Family::V4 => u128::from(u32::MAX),
        Family::V6 => u128::MAX,
    }
}

fn write_mask(out: &mut String, mask: u128, family: Family) {
    let _ = match family {
        Family::V4 => write!(out, "{}", std::net::Ipv4Addr::from(mask as u32)),
        Family::V6 => write!(out, "{}", std::net::Ipv6Addr::from(mask)),
    };
}

/// Parses a `--mask` address of the family into a bit mask.
pub(crate) fn parse_mask(s: &str, family: Family) -> Result<u128, String> {
    match family {
        Family::V4 => s
            .parse::<std::net::Ipv4Addr>()
            .map(|a| u128::from(u32::from(a)))
            .map_err(|_| format!("bad --mask {s} (an IPv4 address such as 255.255.255.0)")),
        Family::V6 => s
            .parse::<std::net::Ipv6Addr>()
            .map(u128::from)
            .map_err(|_| format!("bad --mask {s} (an IPv6 address such as ffff:ffff::)")),
    }
}

/// `--hashlimit-htable-max` when not given.
pub const HASHLIMIT_DEFAULT_MAX: u32 = 65_536;
/// iptables' defaults, in milliseconds (the expiry's default is the rate's unit; this one
/// stands until the rate is known).
pub(crate) const HASHLIMIT_DEFAULT_EXPIRE_MS: u32 = 1_000;
pub(crate) const HASHLIMIT_DEFAULT_GC_MS: u32 = 1_000;

/// `--hashlimit-mode` bits, in the order iptables-save prints them.
pub(crate) const HL_SRCIP: u8 = 1;
pub(crate) const HL_SRCPORT: u8 = 2;
pub(crate) const HL_DSTIP: u8 = 4;
pub(crate) const HL_DSTPORT: u8 = 8;
const HL_MODES: [(&str, u8); 4] = [
    ("srcip", HL_SRCIP),
    ("srcport", HL_SRCPORT),
    ("dstip", HL_DSTIP),
    ("dstport", HL_DSTPORT),
];

/// Parses `srcip,dstport,...`.
pub(crate) fn parse_hashlimit_mode(s: &str) -> Result<u8, String> {
    let mut m = 0;
    for part in s.split(',') {
        let bit = HL_MODES
            .iter()
            .find(|(n, _)| *n == part)
            .map(|&(_, b)| b)
            .ok_or_else(|| {
                format!("bad --hashlimit-mode {part} (srcip, srcport, dstip, dstport)")
            })?;
        m |= bit;
    }
    Ok(m)
}

/// The options of one hashlimit table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HashlimitCfg {
    pub(crate) rate: u32,
    pub(crate) unit: RateUnit,
    pub(crate) burst: u32,
    pub(crate) mode: u8,
    pub(crate) srcmask: u8,
    pub(crate) dstmask: u8,
    /// 0: not given.
    pub(crate) size: u32,
    /// 0: not given ([`HASHLIMIT_DEFAULT_MAX`]).
    pub(crate) max: u32,
    pub(crate) expire_ms: u32,
    pub(crate) gc_ms: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct HlKey {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    sport: u16,
    dport: u16,
}

#[derive(Debug)]
struct Bucket {
    last: u64,
    credit: u64,
}

/// One named hashlimit table.
#[derive(Debug)]
pub(crate) struct HashlimitTable {
    cfg: HashlimitCfg,
    buckets: HashMap<HlKey, Bucket>,
    next_gc: u64,
}

impl HashlimitTable {
    pub(crate) fn new(cfg: HashlimitCfg) -> Self {
        HashlimitTable {
            cfg,
            buckets: HashMap::new(),
            next_gc: 0,
        }
    }

    fn gc(&mut self, now: u64) {
        let expire = u64::from(self.cfg.expire_ms) * 1_000_000;
        self.buckets
            .retain(|_, b| b.last.saturating_add(expire) > now);
        self.next_gc = now.saturating_add(u64::from(self.cfg.gc_ms.max(1)) * 1_000_000);
    }

    /// Takes one packet's token from `key`'s bucket; false when it is empty (or the table is
    /// full and the key new).
    fn take(&mut self, key: HlKey, now: u64) -> bool {
        if now >= self.next_gc {
            self.gc(now);
        }
        let cost = self.cfg.unit.nanos() / u64::from(self.cfg.rate.max(1));
        let cap = cost.saturating_mul(u64::from(self.cfg.burst.max(1)));
        let max = match self.cfg.max {
            0 => HASHLIMIT_DEFAULT_MAX,
            m => m,
        } as usize;
        if !self.buckets.contains_key(&key) && self.buckets.len() >= max {
            self.gc(now);
            if self.buckets.len() >= max {
                return false;
            }
        }
        let b = self.buckets.entry(key).or_insert(Bucket {
            last: now,
            credit: cap,
        });
        // Time going backwards (reordered simulator input) adds no credit.
        let elapsed = now.saturating_sub(b.last);
        b.last = b.last.max(now);
        b.credit = b.credit.saturating_add(elapsed).min(cap);
        if b.credit >= cost {
            b.credit -= cost;
            true
        } else {
            false
        }
    }
}

/// `-m hashlimit`.
#[derive(Debug, Clone)]
pub(crate) struct Hashlimit {
    /// This rule's options (the table keeps those of the first rule with the name).
    pub(crate) cfg: HashlimitCfg,
    /// `--hashlimit-above` (match when over the limit), else `--hashlimit-upto`.
    pub(crate) above: bool,
    pub(crate) name: String,
    pub(crate) family: Family,
    pub(crate) table: Arc<Mutex<HashlimitTable>>,
}

impl PartialEq for Hashlimit {
    fn eq(&self, o: &Self) -> bool {
        (self.cfg, self.above, &self.name) == (o.cfg, o.above, &o.name)
    }
}

impl Hashlimit {
    pub(crate) fn default_cfg(family: Family) -> HashlimitCfg {
        let full = if family == Family::V6 { 128 } else { 32 };
        HashlimitCfg {
            rate: 0,
            unit: RateUnit::Second,
            burst: 5,
            mode: 0,
            srcmask: full,
            dstmask: full,
            size: 0,
            max: 0,
            expire_ms: HASHLIMIT_DEFAULT_EXPIRE_MS,
            gc_ms: HASHLIMIT_DEFAULT_GC_MS,
        }
    }

    pub(crate) fn matches(&self, ctx: &PacketCtx) -> bool {
        let mut t = self.table.lock();
        let mode = t.cfg.mode;
        let ports = matches!(ctx.proto, 6 | 17 | 33 | 132 | 136);
        let key = HlKey {
            src: (mode & HL_SRCIP != 0).then(|| prefix(ctx.src, t.cfg.srcmask)),
            dst: (mode & HL_DSTIP != 0).then(|| prefix(ctx.dst, t.cfg.dstmask)),
            sport: if mode & HL_SRCPORT != 0 && ports {
                ctx.sport.unwrap_or(0)
            } else {
                0
            },
            dport: if mode & HL_DSTPORT != 0 && ports {
                ctx.dport.unwrap_or(0)
            } else {
                0
            },
        };
        let under = t.take(key, ctx.now_ns);
        under != self.above
    }

    pub(crate) fn write(&self, out: &mut String) {
        let family = self.family;
        let c = &self.cfg;
        let kind = if self.above { "above" } else { "upto" };
        let _ = write!(
            out,
            " -m hashlimit --hashlimit-{kind} {}/{} --hashlimit-burst {}",
            c.rate,
            c.unit.name(),
            c.burst
        );
        if c.mode != 0 {
            let names: Vec<&str> = HL_MODES
                .iter()
                .filter(|(_, b)| c.mode & b != 0)
                .map(|(n, _)| *n)
                .collect();
            let _ = write!(out, " --hashlimit-mode {}", names.join(","));
        }
        let _ = write!(out, " --hashlimit-name {}", self.name);
        if c.size != 0 {
            let _ = write!(out, " --hashlimit-htable-size {}", c.size);
        }
        if c.max != 0 {
            let _ = write!(out, " --hashlimit-htable-max {}", c.max);
        }
        if c.gc_ms != HASHLIMIT_DEFAULT_GC_MS {
            let _ = write!(out, " --hashlimit-htable-gcinterval {}", c.gc_ms);
        }
        if u64::from(c.expire_ms) != c.unit.nanos() / 1_000_000 {
            let _ = write!(out, " --hashlimit-htable-expire {}", c.expire_ms);
        }
        let full = if family == Family::V6 { 128 } else { 32 };
        if c.srcmask != full {
            let _ = write!(out, " --hashlimit-srcmask {}", c.srcmask);
        }
        if c.dstmask != full {
            let _ = write!(out, " --hashlimit-dstmask {}", c.dstmask);
        }
    }
}
