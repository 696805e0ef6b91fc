//! Static routing by longest prefix match, IPv4 and IPv6.

use crate::config::Config;
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;

/// Index of an interface in the configuration.
pub type IfaceId = usize;

/// One route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix.
    pub prefix: IpNet,
    /// Egress interface.
    pub iface: IfaceId,
    /// Next hop; `None` means on-link (the destination itself).
    pub via: Option<IpAddr>,
}

/// Tables up to this size are searched linearly (a masked compare per
/// route is cheaper than hashing); larger ones use one hash map per prefix
/// length.
const LINEAR_MAX: usize = 16;

/// Routes of one family, sorted by descending prefix length so the first
/// match is the longest.
#[derive(Clone, Debug, Default)]
struct FamilyTable {
    /// (network bits, mask bits) of `routes[i]`, apart from the routes so a
    /// linear search reads only the keys, and compares integers instead of
    /// calling `IpNet::contains`.
    keys: Vec<(u128, u128)>,
    routes: Vec<Route>,
    /// For large tables: (prefix mask, network → index into `routes`),
    /// longest first; the first hit is the longest match.
    by_len: Vec<(u128, HashMap<u128, usize>)>,
}

impl FamilyTable {
    fn add(&mut self, r: Route, bits: u32) {
        let len = u32::from(r.prefix.prefix_len());
        let mask = prefix_mask(len, bits);
        let net = addr_bits(r.prefix.network()) & mask;
        let pos = self
            .routes
            .partition_point(|o| o.prefix.prefix_len() >= r.prefix.prefix_len());
        self.routes.insert(pos, r);
        self.keys.insert(pos, (net, mask));
        self.by_len.clear();
        if self.routes.len() > LINEAR_MAX {
            for (i, &(net, mask)) in self.keys.iter().enumerate() {
                if self.by_len.last().is_none_or(|(m, _)| *m != mask) {
                    self.by_len.push((mask, HashMap::new()));
                }
                if let Some((_, m)) = self.by_len.last_mut() {
                    // Keep the earlier entry on ties, as the linear search does.
                    m.entry(net).or_insert(i);
                }
            }
        }
    }

    #[inline(always)]
    fn lookup(&self, a: u128) -> Option<&Route> {
        let i = if self.by_len.is_empty() {
            self.keys.iter().position(|&(net, mask)| a & mask == net)?
        } else {
            self.by_len
                .iter()
                .find_map(|(mask, m)| m.get(&(a & mask)).copied())?
        };
        self.routes.get(i)
    }
}

fn addr_bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The mask of a `len`-bit prefix in a `bits`-wide address (as u128).
fn prefix_mask(len: u32, bits: u32) -> u128 {
    let full: u128 = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    if len == 0 {
        0
    } else {
        full & !(full >> len)
    }
}

/// The routing table: connected routes from interface addresses plus the
/// configured static routes; longest prefix match per family.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    v4: FamilyTable,
    v6: FamilyTable,
}

impl RouteTable {
    /// Builds the table of a configuration.
    pub fn from_config(cfg: &Config) -> RouteTable {
        let mut t = RouteTable::default();
        for (id, i) in cfg.interfaces.iter().enumerate() {
            for a in &i.addresses {
                t.add(Route {
                    prefix: a.trunc(),
                    iface: id,
                    via: None,
                });
            }
        }
        for r in &cfg.routes {
            if let Some(iface) = cfg.iface_id(&r.interface) {
                t.add(Route {
                    prefix: r.prefix,
                    iface,
                    via: r.via,
                });
            }
        }
        t
    }

    /// Adds a route (a later route with the same prefix loses ties).
    pub fn add(&mut self, r: Route) {
        match r.prefix {
            IpNet::V4(_) => self.v4.add(r, 32),
            IpNet::V6(_) => self.v6.add(r, 128),
        }
    }

    /// The route for `dst`, if any.
    #[inline(always)]
    pub fn lookup(&self, dst: IpAddr) -> Option<&Route> {
        let t = if dst.is_ipv4() { &self.v4 } else { &self.v6 };
        t.lookup(addr_bits(dst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_per_family() {
        let mut t = RouteTable::default();
        let r = |p: &str, i| Route {
            prefix: p.parse().unwrap(),
            iface: i,
            via: None,
        };
        t.add(r("0.0.0.0/0", 0));
        t.add(r("198.51.100.0/24", 1));
        t.add(r("198.51.100.128/25", 2));
        t.add(r("2001:db8::/32", 3));
        let get = |a: &str| t.lookup(a.parse().unwrap()).map(|r| r.iface);
        assert_eq!(get("198.51.100.200"), Some(2));
        assert_eq!(get("198.51.100.5"), Some(1));
        assert_eq!(get("203.0.113.1"), Some(0));
        assert_eq!(get("2001:db8:5::1"), Some(3));
        assert_eq!(get("2001:db9::1"), None);
    }

    /// Above LINEAR_MAX routes the hashed per-length search must agree with
    /// a plain scan for every probe.
    #[test]
    fn large_table_matches_linear_scan() {
        let mut t = RouteTable::default();
        let mut all = Vec::new();
        for i in 0..200u32 {
            let len = [8u8, 16, 24, 28, 32][(i % 5) as usize];
            let a =
                std::net::Ipv4Addr::from(0xc000_0200u32.wrapping_add(i.wrapping_mul(0x0101_0407)));
            let p = IpNet::new(IpAddr::V4(a), len).unwrap().trunc();
            let r = Route {
                prefix: p,
                iface: i as usize,
                via: None,
            };
            all.push(r);
            t.add(r);
        }
        t.add(Route {
            prefix: "0.0.0.0/0".parse().unwrap(),
            iface: 999,
            via: None,
        });
        for k in 0..5000u32 {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(
                0xc000_0200u32.wrapping_add(k.wrapping_mul(0x0003_1f0b)),
            ));
            let want = all
                .iter()
                .filter(|r| r.prefix.contains(&a))
                .max_by_key(|r| (r.prefix.prefix_len(), std::cmp::Reverse(r.iface)))
                .map_or(999, |r| r.iface);
            assert_eq!(t.lookup(a).map(|r| r.iface), Some(want), "{a}");
        }
    }
}
