//! The compiled classifier: a per-chain index that, for one packet, yields the rules that can
//! possibly match, in increasing order; each candidate is then checked with the full match code,
//! so first-match semantics, counters and non-terminating targets are exactly the linear ones.
//!
//! Each rule is filed under one key implied by its matches (a non-negated, contiguous `-d` prefix;
//! else `-s` prefix; else a narrow non-negated destination port set), or under "always" when it
//! has none. Prefixes live in hash maps, one per (family, prefix length) — tuple-space search over
//! a handful of tuples — so a packet costs one hash probe per distinct prefix length plus a merge
//! of the short sorted lists found, instead of a walk over every rule. Anything the index does not
//! understand (future match kinds included) simply lands in "always".

use std::collections::HashMap;
use std::net::IpAddr;

use super::matches::{tcp, udp, Match};
use super::value::Net;
use super::{Chain, PacketCtx};

/// Chains shorter than this are scanned: an index does not pay for itself there.
const MIN_RULES: usize = 16;
/// A port range up to this many ports is expanded into exact-port keys.
const MAX_PORT_EXPAND: u32 = 16;

/// One hashed prefix tuple: every key has the same family and prefix length.
#[derive(Debug, Default)]
struct Tuple {
    v6: bool,
    mask: u128,
    map: HashMap<u128, Vec<u32>>,
}

/// The index of one chain.
#[derive(Debug, Default)]
pub(crate) struct ChainIndex {
    dst: Vec<Tuple>,
    src: Vec<Tuple>,
    dport: HashMap<u16, Vec<u32>>,
    always: Vec<u32>,
}

/// Indexes of a table's chains, parallel to `TableRules::chains` (`None`: scan the chain).
#[derive(Debug, Default)]
pub(crate) struct TableIndex {
    pub(crate) chains: Vec<Option<ChainIndex>>,
}

impl PartialEq for TableIndex {
    // Derived from the rules, which are compared on their own.
    fn eq(&self, _: &TableIndex) -> bool {
        true
    }
}

enum Key {
    Dst(bool, u128, u128),
    Src(bool, u128, u128),
    Ports(u16, u16),
    Always,
}

fn prefix(net: &Net) -> Option<(bool, u128, u128)> {
    let (v6, addr, mask) = match *net {
        Net::V4 { addr, mask } => (false, addr as u128, mask as u128),
        Net::V6 { addr, mask } => (true, addr, mask),
    };
    // Non-contiguous masks are legal in iptables but rare; they stay in "always".
    let contiguous = match *net {
        Net::V4 { mask, .. } => mask.leading_ones() + mask.trailing_zeros() == 32,
        Net::V6 { mask, .. } => mask.leading_ones() + mask.trailing_zeros() == 128,
    };
    (contiguous && !net.is_any()).then_some((v6, addr, mask))
}

fn key_of(matches: &[Match]) -> Key {
    let mut src = None;
    let mut ports = None;
    // A port key from a module after a match with side effects (a limit bucket, a recent
    // list, a connlimit list) would skip that side effect for packets to other ports, which
    // the linear scan performs: no port key from there on.
    let mut effects = false;
    for m in matches {
        match m {
            Match::Limit(_) | Match::Recent(_) | Match::Hashlimit(_) | Match::Connlimit(_) => {
                effects = true
            }
            Match::Dst { net, invert: false } => {
                if let Some((v6, a, m)) = prefix(net) {
                    return Key::Dst(v6, a, m);
                }
            }
            Match::Src { net, invert: false } if src.is_none() => src = prefix(net),
            Match::Tcp(tcp::Tcp {
                ports: udp::Ports { dport: Some(d), .. },
                ..
            })
            | Match::Ports(udp::Ports { dport: Some(d), .. })
                if !effects
                    && !d.invert
                    && u32::from(d.range.hi) - u32::from(d.range.lo) < MAX_PORT_EXPAND =>
            {
                ports.get_or_insert((d.range.lo, d.range.hi));
            }
            _ => {}
        }
    }
    match (src, ports) {
        (Some((v6, a, m)), _) => Key::Src(v6, a, m),
        (None, Some((lo, hi))) => Key::Ports(lo, hi),
        (None, None) => Key::Always,
    }
}

fn file(tuples: &mut Vec<Tuple>, v6: bool, addr: u128, mask: u128, rule: u32) {
    let pos = match tuples.iter().position(|t| t.v6 == v6 && t.mask == mask) {
        Some(p) => p,
        None => {
            tuples.push(Tuple {
                v6,
                mask,
                map: HashMap::new(),
            });
            tuples.len() - 1
        }
    };
    // Rules are filed in increasing order, so every list stays sorted.
    tuples[pos].map.entry(addr).or_default().push(rule);
}

impl ChainIndex {
    pub(crate) fn build(chain: &Chain) -> Option<ChainIndex> {
        if chain.rules.len() < MIN_RULES || chain.rules.len() > u32::MAX as usize {
            return None;
        }
        let mut ix = ChainIndex::default();
        for (i, r) in chain.rules.iter().enumerate() {
            let i = i as u32;
            match key_of(&r.matches) {
                Key::Dst(v6, a, m) => file(&mut ix.dst, v6, a, m, i),
                Key::Src(v6, a, m) => file(&mut ix.src, v6, a, m, i),
                Key::Ports(lo, hi) => {
                    for p in lo..=hi {
                        ix.dport.entry(p).or_default().push(i);
                    }
                }
                Key::Always => ix.always.push(i),
            }
        }
        Some(ix)
    }

    /// The sorted candidate lists for `ctx` (their union, merged, is the candidate set).
    pub(crate) fn lists<'a>(&'a self, ctx: &PacketCtx, out: &mut Vec<&'a [u32]>) {
        out.clear();
        let probe = |tuples: &'a [Tuple], ip: IpAddr, out: &mut Vec<&'a [u32]>| {
            let (v6, a) = match ip {
                IpAddr::V4(a) => (false, u32::from(a) as u128),
                IpAddr::V6(a) => (true, u128::from(a)),
            };
            for t in tuples.iter().filter(|t| t.v6 == v6) {
                if let Some(l) = t.map.get(&(a & t.mask)) {
                    out.push(l);
                }
            }
        };
        probe(&self.dst, ctx.dst, out);
        probe(&self.src, ctx.src, out);
        if let Some(l) = ctx.dport.and_then(|p| self.dport.get(&p)) {
            out.push(l);
        }
        if !self.always.is_empty() {
            out.push(&self.always);
        }
    }
}

/// The smallest candidate `>= pos` over the sorted `lists`, advancing them past smaller entries.
pub(crate) fn next_at_least(lists: &mut [&[u32]], pos: usize) -> Option<usize> {
    let mut best: Option<usize> = None;
    for l in lists.iter_mut() {
        // Lists only move forward within one chain visit; a re-entry rebuilds them.
        let skip = l.partition_point(|&r| (r as usize) < pos);
        *l = &l[skip..];
        if let Some(&r) = l.first() {
            best = Some(best.map_or(r as usize, |b| b.min(r as usize)));
        }
    }
    best
}
