//! `-m recent [!] --set|--rcheck|--update|--remove --name NAME [--seconds S [--reap]]
//! [--hitcount N] [--rttl] [--mask M] [--rsource|--rdest]`: named lists of addresses with the
//! times they were seen.
//!
//! Lists are shared by name within a ruleset, as the kernel shares them within a network
//! namespace: every `-m recent --name ssh` rule of the ruleset reads and writes the same list
//! (the parser hands each rule naming it the same one, see [`crate::extension::Named`]).
//! Time comes from [`PacketCtx::now_ns`], so the simulator stays deterministic. A list holds
//! at most [`RECENT_MAX_ENTRIES`] addresses (the kernel's default `ip_list_tot`; the least
//! recently seen is forgotten first) and the last [`RECENT_MAX_STAMPS`] times per address
//! (`ip_pkt_list_tot`). A reloaded ruleset starts with empty lists.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::extension::{Arg, Done, MatchExt, Opt};
use crate::{Family, Marks, PacketCtx, RuleError};

pub(crate) const OPTIONS: &[Opt] = &[
    Opt::flag(&["--set"], "cmd", true),
    Opt::flag(&["--rcheck"], "cmd", true),
    Opt::flag(&["--update"], "cmd", true),
    Opt::flag(&["--remove"], "cmd", true),
    Opt::value(&["--seconds"], false),
    Opt::flag(&["--reap"], "--reap", false),
    Opt::value(&["--hitcount"], false),
    Opt::flag(&["--rttl"], "--rttl", false),
    Opt::value(&["--name"], false),
    Opt::value(&["--mask"], false),
    Opt::flag(&["--rsource"], "side", false),
    Opt::flag(&["--rdest"], "side", false),
];

/// `ip_list_tot`: addresses per recent list.
pub(crate) const RECENT_MAX_ENTRIES: usize = 100;
/// `ip_pkt_list_tot`: times kept per address, and the largest `--hitcount`.
pub(crate) const RECENT_MAX_STAMPS: usize = 20;

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
}

impl MatchExt for Recent {
    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        let v = arg.text();
        match arg.name {
            "--set" | "--rcheck" | "--update" | "--remove" => {
                self.cmd = match arg.name {
                    "--set" => RecentCmd::Set,
                    "--rcheck" => RecentCmd::Rcheck,
                    "--update" => RecentCmd::Update,
                    _ => RecentCmd::Remove,
                };
                self.invert = arg.invert;
            }
            "--seconds" => {
                self.seconds = v
                    .parse::<u32>()
                    .ok()
                    .filter(|&s| s > 0)
                    .ok_or_else(|| arg.err(format!("bad --seconds {v} (1..=4294967295)")))?;
            }
            "--hitcount" => {
                self.hitcount = v
                    .parse::<u32>()
                    .ok()
                    .filter(|&h| h > 0)
                    .ok_or_else(|| arg.err(format!("bad --hitcount {v}")))?;
                if self.hitcount as usize > RECENT_MAX_STAMPS {
                    return Err(arg.err(format!(
                        "--hitcount {} is above the {RECENT_MAX_STAMPS} times a recent list keeps per address",
                        self.hitcount
                    )));
                }
            }
            "--name" => {
                if v.is_empty() || v.len() > 200 || v.contains('/') {
                    return Err(arg.err(format!("bad --name {v:?} (1 to 200 characters, no /)")));
                }
                self.name = v.to_string();
            }
            "--mask" => self.mask = parse_mask(v, arg.family()).map_err(|e| arg.err(e))?,
            "--reap" => self.reap = true,
            "--rttl" => self.rttl = true,
            _ => self.rdest = arg.name == "--rdest",
        }
        Ok(())
    }

    fn finish(&mut self, done: &Done) -> Result<(), RuleError> {
        // Rules naming the same list share it, as in the kernel.
        self.list = done.named.get(&self.name, Mutex::<RecentList>::default);
        Ok(())
    }

    fn check(&self, done: &Done) -> Result<(), RuleError> {
        if !done.has("cmd") {
            return Err(done.err("-m recent needs one of --set, --rcheck, --update or --remove"));
        }
        let checks = matches!(self.cmd, RecentCmd::Rcheck | RecentCmd::Update);
        for opt in ["--seconds", "--hitcount", "--reap", "--rttl"] {
            if done.has(opt) && !checks {
                return Err(done.err(format!("-m recent {opt} needs --rcheck or --update")));
            }
        }
        if self.reap && self.seconds == 0 {
            return Err(done.err("-m recent --reap needs --seconds"));
        }
        Ok(())
    }

    fn matches(&self, ctx: &PacketCtx, _: &Marks) -> bool {
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

    fn save(&self, out: &mut String) {
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
