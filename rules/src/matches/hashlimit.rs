//! `-m hashlimit --hashlimit-upto|--hashlimit-above RATE --hashlimit-name NAME
//! [--hashlimit-mode srcip,srcport,dstip,dstport] [--hashlimit-burst B] [--hashlimit-srcmask L]
//! [--hashlimit-dstmask L] [--hashlimit-htable-size|-max|-expire|-gcinterval N]`: token
//! buckets per address / port key.
//!
//! Tables are shared by name within a ruleset, as the kernel shares them within a network
//! namespace: every `--hashlimit-name web` rule uses the same buckets, with the options of
//! the first rule that named it (see [`crate::extension::Named`]). Time comes from
//! [`PacketCtx::now_ns`], so the simulator stays deterministic. A table holds at most
//! `--hashlimit-htable-max` keys (default [`HASHLIMIT_DEFAULT_MAX`]); idle keys expire after
//! `--hashlimit-htable-expire` ms (by default the rate's unit, as in iptables). When it is
//! full even after expiry, a new key is not added and its packet counts as over the limit
//! (the kernel drops such a packet outright; here the rule's own target decides, which for
//! the usual `--hashlimit-above ... -j DROP` is the same). A reloaded ruleset starts with
//! empty buckets.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

use super::limit::{Limit, RateUnit};
use crate::extension::{Arg, Done, MatchExt, Opt};
use crate::value::{parse_uint, prefix_addr as prefix};
use crate::{Family, Marks, PacketCtx, RuleError};

pub(crate) const OPTIONS: &[Opt] = &[
    Opt::grouped(&["--hashlimit-upto", "--hashlimit"], "rate", false),
    Opt::grouped(&["--hashlimit-above"], "rate", false),
    Opt::value(&["--hashlimit-burst"], false),
    Opt::value(&["--hashlimit-mode"], false),
    Opt::value(&["--hashlimit-name"], false),
    Opt::value(&["--hashlimit-srcmask"], false),
    Opt::value(&["--hashlimit-dstmask"], false),
    Opt::value(&["--hashlimit-htable-size"], false),
    Opt::value(&["--hashlimit-htable-max"], false),
    Opt::value(&["--hashlimit-htable-expire"], false),
    Opt::value(&["--hashlimit-htable-gcinterval"], false),
];

/// `--hashlimit-htable-max` when not given.
pub(crate) const HASHLIMIT_DEFAULT_MAX: u32 = 65_536;
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
    /// The match before its options, with a table of its own until `finish` finds the one
    /// its name shares.
    pub(crate) fn new(family: Family) -> Hashlimit {
        Hashlimit {
            cfg: Hashlimit::default_cfg(family),
            above: false,
            name: String::new(),
            family,
            table: Arc::new(Mutex::new(HashlimitTable::new(Hashlimit::default_cfg(
                family,
            )))),
        }
    }

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
}

impl MatchExt for Hashlimit {
    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        let (name, v) = (arg.name, arg.text());
        match name {
            "--hashlimit-upto" | "--hashlimit-above" => {
                if v.contains("b/") || v.ends_with('b') {
                    return Err(arg.err(format!(
                        "byte-based rates ({v}) are not supported: give packets per unit"
                    )));
                }
                (self.cfg.rate, self.cfg.unit) =
                    Limit::parse_rate_max(v, 1_000_000).map_err(|e| arg.err(e))?;
                self.above = name == "--hashlimit-above";
            }
            "--hashlimit-burst" => {
                self.cfg.burst = parse_uint(v, 10_000)
                    .ok()
                    .filter(|&b| b >= 1)
                    .ok_or_else(|| arg.err(format!("bad burst {v} (1..=10000)")))?
                    as u32;
            }
            "--hashlimit-mode" => {
                self.cfg.mode = parse_hashlimit_mode(v).map_err(|e| arg.err(e))?;
            }
            "--hashlimit-name" => {
                if v.is_empty() || v.len() > 255 || v.contains('/') {
                    return Err(arg.err(format!(
                        "bad --hashlimit-name {v:?} (1 to 255 characters, no /)"
                    )));
                }
                self.name = v.to_string();
            }
            "--hashlimit-srcmask" | "--hashlimit-dstmask" => {
                let full = if arg.family() == Family::V6 { 128 } else { 32 };
                let n = parse_uint(v, full)
                    .map_err(|_| arg.err(format!("bad {name} {v} (0..={full})")))?
                    as u8;
                if name == "--hashlimit-srcmask" {
                    self.cfg.srcmask = n;
                } else {
                    self.cfg.dstmask = n;
                }
            }
            _ => {
                let n = v
                    .parse::<u32>()
                    .map_err(|_| arg.err(format!("bad {name} {v} (0..=4294967295)")))?;
                match name {
                    "--hashlimit-htable-size" => self.cfg.size = n,
                    "--hashlimit-htable-max" => self.cfg.max = n,
                    "--hashlimit-htable-expire" => self.cfg.expire_ms = n,
                    _ => self.cfg.gc_ms = n.max(1),
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self, done: &Done) -> Result<(), RuleError> {
        // Without a name `check` refuses the rule.
        if self.name.is_empty() {
            return Ok(());
        }
        // iptables' default expiry is the rate's unit (1 s for N/sec, ...).
        if !done.has("--hashlimit-htable-expire") {
            self.cfg.expire_ms = (self.cfg.unit.nanos() / 1_000_000) as u32;
        }
        // Rules naming the same table share it, as in the kernel.
        let cfg = self.cfg;
        self.table = done
            .named
            .get(&self.name, || Mutex::new(HashlimitTable::new(cfg)));
        Ok(())
    }

    fn check(&self, done: &Done) -> Result<(), RuleError> {
        if !done.has("rate") {
            return Err(done.err("-m hashlimit needs --hashlimit-upto or --hashlimit-above"));
        }
        if !done.has("--hashlimit-name") {
            return Err(done.err("-m hashlimit needs --hashlimit-name"));
        }
        Ok(())
    }

    fn matches(&self, ctx: &PacketCtx, _: &Marks) -> bool {
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

    fn save(&self, out: &mut String) {
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
