//! The route table against a naive longest-prefix match, with random tables built at once
//! and changed route by route (proptest).

use ipnet::IpNet;
use proptest::prelude::*;
use router::route::{NextHop, Route, RouteTable};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A prefix clustered around a few bases, so that routes nest and share trie nodes, with
/// any length from 0 to the full address.
fn prefix() -> impl Strategy<Value = IpNet> {
    let v4 = (0usize..4, any::<u32>(), 0u8..=32).prop_map(|(b, bits, len)| {
        let bases = [0xc633_6400u32, 0xcb00_7100, 0x0a00_0000, 0xc000_0200];
        // Random low 20 bits under a fixed /12-ish base, so nodes go deep below /18.
        let a = (bases[b] & 0xfff0_0000) | (bits & 0x000f_ffff);
        IpNet::new(IpAddr::V4(Ipv4Addr::from(a)), len)
            .unwrap()
            .trunc()
    });
    let v6 = (0usize..3, any::<u128>(), 0u8..=128).prop_map(|(b, bits, len)| {
        let bases = [
            0x2001_0db8_0000_0000_0000_0000_0000_0000u128,
            0x2001_0db8_ffff_0000_0000_0000_0000_0000,
            0x2400_0000_0000_0000_0000_0000_0000_0000,
        ];
        // Vary bits 32..56 and the last 16, keep the rest: deep and shallow routes mix.
        let mid = bits & 0x0000_0000_ffff_ff00_0000_0000_0000_0000;
        let low = bits & 0xffff;
        let a = bases[b] | mid | low;
        IpNet::new(IpAddr::V6(Ipv6Addr::from(a)), len)
            .unwrap()
            .trunc()
    });
    prop_oneof![3 => v4, 2 => v6]
}

#[derive(Clone, Debug)]
enum Op {
    Add(IpNet, usize),
    Del(IpNet),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            3 => (prefix(), 0usize..8).prop_map(|(p, i)| Op::Add(p, i)),
            1 => prefix().prop_map(Op::Del),
        ],
        1..160,
    )
}

/// The naive reference: every live route in insertion order; the longest containing
/// prefix wins.
#[derive(Default)]
struct Naive(Vec<Route>);

impl Naive {
    fn add(&mut self, r: Route) -> bool {
        if self.0.iter().any(|o| o.prefix == r.prefix) {
            return false;
        }
        self.0.push(r);
        true
    }
    fn del(&mut self, p: IpNet) -> Option<Route> {
        let i = self.0.iter().position(|o| o.prefix == p)?;
        Some(self.0.remove(i))
    }
    fn lookup(&self, a: IpAddr) -> Option<NextHop> {
        self.0
            .iter()
            .filter(|r| r.prefix.contains(&a))
            .max_by_key(|r| r.prefix.prefix_len())
            .map(Route::next_hop)
    }
}

/// Addresses at and around the edges of every prefix seen, plus a few fixed ones.
fn probes(prefixes: &[IpNet]) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = ["0.0.0.0", "255.255.255.255", "::", "2001:db8::1"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    for p in prefixes {
        match p {
            IpNet::V4(n) => {
                let (lo, hi) = (u32::from(n.network()), u32::from(n.broadcast()));
                for a in [
                    lo,
                    hi,
                    lo.wrapping_sub(1),
                    hi.wrapping_add(1),
                    lo + (hi - lo) / 2,
                ] {
                    v.push(IpAddr::V4(Ipv4Addr::from(a)));
                }
            }
            IpNet::V6(n) => {
                let lo = u128::from(n.network());
                let hi = u128::from(n.broadcast());
                for a in [
                    lo,
                    hi,
                    lo.wrapping_sub(1),
                    hi.wrapping_add(1),
                    lo + (hi - lo) / 2,
                ] {
                    v.push(IpAddr::V6(Ipv6Addr::from(a)));
                }
            }
        }
    }
    v
}

/// Interface `i % 4`; from 4 on, a next hop too (of the prefix's family), so that routes
/// share next hops and some differ only by theirs.
fn route(p: IpNet, i: usize) -> Route {
    let via = (i >= 4).then(|| match p {
        IpNet::V4(_) => IpAddr::V4(Ipv4Addr::new(198, 51, 100, i as u8)),
        IpNet::V6(_) => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16)),
    });
    Route {
        prefix: p,
        iface: i % 4,
        via,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Built at once from a list: the first route of a prefix is kept, and every probe gets
    /// the naive answer.
    #[test]
    fn built_table_matches_naive_lpm(list in prop::collection::vec((prefix(), 0usize..8), 0..300)) {
        let t = RouteTable::from_routes(list.iter().map(|&(p, i)| route(p, i)));
        let mut naive = Naive::default();
        for &(p, i) in &list {
            naive.add(route(p, i));
        }
        prop_assert_eq!(t.len(), naive.0.len());
        let prefixes: Vec<IpNet> = list.iter().map(|x| x.0).collect();
        for a in probes(&prefixes) {
            prop_assert_eq!(t.lookup(a).copied(), naive.lookup(a), "lookup {}", a);
        }
    }

    /// Changed route by route: add and del answer like the reference, lookups agree after
    /// every change, and the result equals a table built at once from what is left.
    #[test]
    fn incremental_changes_match_naive_lpm(ops in ops()) {
        let mut t = RouteTable::default();
        let mut naive = Naive::default();
        let mut seen = Vec::new();
        for (k, op) in ops.iter().enumerate() {
            match *op {
                Op::Add(p, i) => {
                    prop_assert_eq!(t.add(route(p, i)), naive.add(route(p, i)), "add {}", p);
                    seen.push(p);
                }
                Op::Del(p) => {
                    prop_assert_eq!(t.remove(p), naive.del(p), "del {}", p);
                    seen.push(p);
                }
            }
            // Every change checked on the prefixes it touched; all probes every 16 changes.
            let last = &seen[seen.len() - 1..];
            let check = if k % 16 == 15 { &seen[..] } else { last };
            for a in probes(check) {
                prop_assert_eq!(t.lookup(a).copied(), naive.lookup(a), "after op {}: lookup {}", k, a);
            }
        }
        prop_assert_eq!(t.len(), naive.0.len());
        let rebuilt = RouteTable::from_routes(naive.0.iter().copied());
        for a in probes(&seen) {
            prop_assert_eq!(t.lookup(a).copied(), naive.lookup(a), "final lookup {}", a);
            prop_assert_eq!(rebuilt.lookup(a).copied(), naive.lookup(a), "rebuilt lookup {}", a);
        }
        let mut listed: Vec<Route> = t.iter().copied().collect();
        let mut want = naive.0.clone();
        let key = |r: &Route| (r.prefix.addr().is_ipv6(), r.prefix.network(), r.prefix.prefix_len());
        want.sort_by_key(key);
        prop_assert_eq!(listed.len(), want.len());
        listed.sort_by_key(key);
        prop_assert_eq!(listed, want);
    }
}
