//! `-m connlimit --connlimit-above|--connlimit-upto N --connlimit-mask LEN
//! --connlimit-saddr|--connlimit-daddr`: how many connections share the packet's masked
//! source (or destination) address.
//!
//! It keeps, per masked address, the original tuples of the connections whose
//! packets reached the match — the design of the kernel's nf_conncount — instead of scanning
//! the connection table: each packet that reaches the rule prunes its own key's list through
//! [`PacketCtx::conn_alive`] (a tuple whose connection is gone, or closing, is dropped),
//! adds its connection's tuple if it is new to the list, and compares the list's length
//! with the limit. Memory is bounded: at most [`CONNLIMIT_MAX_KEYS`] addresses and
//! [`CONNLIMIT_MAX_ENTRIES`] tuples in all (lists of addresses that stop sending keep their
//! ended connections until then). When either is reached, one sweep drops every ended
//! connection and emptied address; if there is still no room, the packet's own connection is
//! counted without being stored.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use parking_lot::Mutex;

use conntrack::tuple::Tuple;

use crate::extension::{Arg, Done, MatchExt, Opt};
use crate::value::{parse_uint, prefix_addr};
use crate::{Family, Marks, PacketCtx, RuleError};

pub(crate) const OPTIONS: &[Opt] = &[
    Opt::grouped(&["--connlimit-above"], "connlimit", true),
    Opt::grouped(&["--connlimit-upto"], "connlimit", true),
    Opt::value(&["--connlimit-mask"], false),
    Opt::flag(&["--connlimit-saddr"], "side", false),
    Opt::flag(&["--connlimit-daddr"], "side", false),
];

/// Addresses a connlimit match keeps lists for, at most.
pub(crate) const CONNLIMIT_MAX_KEYS: usize = 65_536;
/// Tuples a connlimit match keeps in all, at most.
pub(crate) const CONNLIMIT_MAX_ENTRIES: usize = 262_144;

/// The lists and their total length.
#[derive(Debug, Default)]
struct Lists {
    by_key: HashMap<IpAddr, Vec<Tuple>>,
    entries: usize,
}

/// `-m connlimit --connlimit-above|--connlimit-upto N --connlimit-mask L
/// --connlimit-saddr|--connlimit-daddr`.
#[derive(Debug)]
pub(crate) struct Connlimit {
    pub(crate) limit: u32,
    /// `--connlimit-upto` (match while at most `limit`), else `--connlimit-above`.
    pub(crate) upto: bool,
    /// Prefix length of the address key (iptables' default: 32 / 128).
    pub(crate) mask: u8,
    pub(crate) daddr: bool,
    lists: Mutex<Lists>,
}

impl Clone for Connlimit {
    /// A copy (a reloaded ruleset) starts with empty lists; they refill from the live
    /// connections as their packets reach the rule.
    fn clone(&self) -> Self {
        Connlimit::new(self.limit, self.upto, self.mask, self.daddr)
    }
}

impl PartialEq for Connlimit {
    fn eq(&self, o: &Self) -> bool {
        (self.limit, self.upto, self.mask, self.daddr) == (o.limit, o.upto, o.mask, o.daddr)
    }
}

impl Eq for Connlimit {}

impl Connlimit {
    /// The match before its options: `--connlimit-above 0`, the full address of `family`,
    /// by source.
    pub(crate) fn for_family(family: Family) -> Self {
        Connlimit::new(0, false, if family == Family::V6 { 128 } else { 32 }, false)
    }

    pub(crate) fn new(limit: u32, upto: bool, mask: u8, daddr: bool) -> Self {
        Connlimit {
            limit,
            upto,
            mask,
            daddr,
            lists: Mutex::new(Lists::default()),
        }
    }

    fn key(&self, a: IpAddr) -> IpAddr {
        prefix_addr(a, self.mask)
    }

    /// The packet's connection count under its key, its own connection included.
    fn count(&self, ctx: &PacketCtx) -> usize {
        let key = self.key(if self.daddr { ctx.dst } else { ctx.src });
        // The tuple the connection is known by; without conntrack, the packet's own.
        let own = match &ctx.conn {
            Some(c) => c.tuples[0],
            None => Tuple {
                src: ctx.src,
                dst: ctx.dst,
                src_id: ctx.sport.unwrap_or(0),
                dst_id: ctx.dport.unwrap_or(0),
                proto: ctx.proto,
                zone: 0,
            },
        };
        let alive = |t: &Tuple| *t == own || ctx.conn_alive.is_some_and(|f| f(t));
        let mut guard = self.lists.lock();
        let lists = &mut *guard;
        let full = |l: &Lists| {
            (!l.by_key.contains_key(&key) && l.by_key.len() >= CONNLIMIT_MAX_KEYS)
                || l.entries >= CONNLIMIT_MAX_ENTRIES
        };
        if full(lists) {
            lists.by_key.retain(|_, l| {
                l.retain(alive);
                !l.is_empty()
            });
            lists.entries = lists.by_key.values().map(Vec::len).sum();
        }
        let room = !full(lists);
        let Some(list) = (if room {
            Some(lists.by_key.entry(key).or_default())
        } else {
            lists.by_key.get_mut(&key)
        }) else {
            return 1;
        };
        let before = list.len();
        list.retain(alive);
        let mut n = list.len();
        let removed = before - n;
        let mut added = 0;
        if !list.contains(&own) {
            if room {
                list.push(own);
                added = 1;
            }
            n += 1;
        }
        lists.entries = (lists.entries + added).saturating_sub(removed);
        n
    }
}

impl MatchExt for Connlimit {
    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        let (name, v) = (arg.name, arg.text());
        match name {
            "--connlimit-above" | "--connlimit-upto" => {
                self.limit = v
                    .parse::<u32>()
                    .map_err(|_| arg.err(format!("bad {name} value {v} (0..=4294967295)")))?;
                // `! --connlimit-above N` is `--connlimit-upto N` and the other way round.
                self.upto = (name == "--connlimit-upto") != arg.invert;
            }
            "--connlimit-mask" => {
                let full = if arg.family() == Family::V6 { 128 } else { 32 };
                self.mask = parse_uint(v, full)
                    .map_err(|_| arg.err(format!("bad --connlimit-mask {v} (0..={full})")))?
                    as u8;
            }
            _ => self.daddr = name == "--connlimit-daddr",
        }
        Ok(())
    }

    fn check(&self, done: &Done) -> Result<(), RuleError> {
        if !done.has("connlimit") {
            return Err(done.err("-m connlimit needs --connlimit-above or --connlimit-upto"));
        }
        Ok(())
    }

    fn matches(&self, ctx: &PacketCtx, _: &Marks) -> bool {
        let n = self.count(ctx) as u64;
        if self.upto {
            n <= u64::from(self.limit)
        } else {
            n > u64::from(self.limit)
        }
    }

    fn save(&self, out: &mut String) {
        let kind = if self.upto { "upto" } else { "above" };
        let mask = self.mask;
        let side = if self.daddr { "daddr" } else { "saddr" };
        let _ = write!(
            out,
            " -m connlimit --connlimit-{kind} {} --connlimit-mask {mask} --connlimit-{side}",
            self.limit
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConnView;

    fn tuple(src: u32, sport: u16) -> Tuple {
        Tuple {
            src: IpAddr::V4(src.into()),
            dst: "198.51.100.1".parse().unwrap(),
            src_id: sport,
            dst_id: 22,
            proto: 6,
            zone: 0,
        }
    }

    /// Counts connection (src, sport) with every listed connection alive.
    fn count(m: &Connlimit, src: u32, sport: u16) -> usize {
        let t = tuple(src, sport);
        let tuples = [t, t.invert()];
        let mut c = PacketCtx::new(Family::V4, t.src, t.dst, 6, &[]);
        c.conn = Some(ConnView {
            tuples: &tuples,
            status: 0,
            reply: false,
            expires_in: 100,
            counters: [(1, 60), (0, 0)],
            master_helper: None,
        });
        let alive = |_: &Tuple| true;
        c.conn_alive = Some(&alive);
        m.count(&c)
    }

    #[test]
    fn the_lists_are_bounded_in_keys_and_in_entries() {
        let m = Connlimit::new(4, false, 32, false);
        // Fill: 65,536 sources with 4 live connections each = the entry limit.
        for src in 0..CONNLIMIT_MAX_KEYS as u32 {
            for sport in 0..4u16 {
                count(&m, 0xc000_0000 + src, sport);
            }
        }
        assert_eq!(m.lists.lock().entries, CONNLIMIT_MAX_ENTRIES);
        // A fifth connection is still counted, but not stored: no room, nothing ended.
        assert_eq!(count(&m, 0xc000_0000, 9), 5);
        assert_eq!(m.lists.lock().entries, CONNLIMIT_MAX_ENTRIES);
        // A new address finds no room either and counts only itself.
        assert_eq!(count(&m, 0xcb00_7100, 1), 1);
        assert_eq!(m.lists.lock().by_key.len(), CONNLIMIT_MAX_KEYS);
    }
}
