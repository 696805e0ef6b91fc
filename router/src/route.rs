//! Static routing by longest prefix match, IPv4 and IPv6.

use crate::config::Config;
use ipnet::IpNet;
use std::net::IpAddr;

/// Index of an interface in the configuration.
pub type IfaceId = usize;

/// One route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix.
    pub prefix: IpNet,
    /// Egress interface.
    pub iface: IfaceId,
    /// Next hop; `None` means on-link (the destination itself).
    pub via: Option<IpAddr>,
}

/// The routing table: connected routes from interface addresses plus the
/// configured static routes, kept sorted by descending prefix length so the
/// first match is the longest.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    v4: Vec<Route>,
    v6: Vec<Route>,
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
        let v = match r.prefix {
            IpNet::V4(_) => &mut self.v4,
            IpNet::V6(_) => &mut self.v6,
        };
        let pos = v.partition_point(|o| o.prefix.prefix_len() >= r.prefix.prefix_len());
        v.insert(pos, r);
    }

    /// The route for `dst`, if any.
    pub fn lookup(&self, dst: IpAddr) -> Option<&Route> {
        let v = if dst.is_ipv4() { &self.v4 } else { &self.v6 };
        v.iter().find(|r| r.prefix.contains(&dst))
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
}
