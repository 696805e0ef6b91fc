//! Synthetic Internet-size routing tables, shared by `benches/routes.rs` and
//! `examples/gen_routes.rs` (which writes one as a route file for `tunfilter check`).
//!
//! No real BGP dump can be fetched here, so the tables are generated, deterministically:
//!
//! - **realistic**: the prefix-length mix of the public tables (IPv4: /24 60%, /22 11.5%, /23
//!   9.5%, /20 and /21 about 4% each, /16 to /19 about 6%, shorter 1.2%; IPv6: /48 45%, /32 12%,
//!   /44 9%, /40 6%, /36 4%, the rest spread from /28 to /64), with networks placed the way
//!   allocations nest: two thirds of the prefixes are more-specifics of an earlier, shorter one
//!   (an ISP's block and its customers), the rest fresh in unicast space (IPv4 1.0.0.0 to
//!   223.255.255.255, IPv6 2000::/4).
//! - **random**: uniform lengths (IPv4 /8 to /32, IPv6 /16 to /64) at uniform addresses.
#![allow(dead_code)]

use ipnet::IpNet;
use router::route::Route;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// xorshift64*: the same tables on every run.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick(&mut self, weights: &[(u8, u32)]) -> u8 {
        let total: u32 = weights.iter().map(|w| w.1).sum();
        let mut x = self.below(u64::from(total)) as u32;
        for &(len, w) in weights {
            if x < w {
                return len;
            }
            x -= w;
        }
        weights[0].0
    }
}

/// IPv4 lengths and weights (per mille) of the public table.
const V4_MIX: &[(u8, u32)] = &[
    (24, 600),
    (22, 115),
    (23, 95),
    (20, 44),
    (21, 42),
    (19, 26),
    (16, 14),
    (18, 13),
    (17, 9),
    (15, 4),
    (14, 4),
    (13, 3),
    (12, 2),
    (11, 1),
    (10, 1),
    (9, 1),
    (8, 1),
];

/// IPv6 lengths and weights (per mille).
const V6_MIX: &[(u8, u32)] = &[
    (48, 450),
    (32, 120),
    (44, 90),
    (40, 60),
    (36, 40),
    (29, 30),
    (46, 30),
    (47, 20),
    (28, 20),
    (56, 20),
    (45, 20),
    (42, 20),
    (38, 15),
    (34, 15),
    (33, 15),
    (64, 10),
    (30, 15),
    (31, 10),
];

fn v4(a: u32, len: u8) -> IpNet {
    IpNet::new(IpAddr::V4(Ipv4Addr::from(a)), len)
        .unwrap()
        .trunc()
}

fn v6(a: u128, len: u8) -> IpNet {
    IpNet::new(IpAddr::V6(Ipv6Addr::from(a)), len)
        .unwrap()
        .trunc()
}

/// `n` IPv4 prefixes of the realistic mix (duplicates possible, as in a real feed).
pub fn realistic_v4(n: usize, rng: &mut Rng) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = Vec::with_capacity(n);
    while out.len() < n {
        let len = rng.pick(V4_MIX);
        let fresh = 0x0100_0000 + rng.below(0xdf00_0000) as u32;
        let a = if !out.is_empty() && rng.below(3) < 2 {
            // A more-specific of an earlier, shorter prefix, if the one drawn is shorter.
            let p = out[rng.below(out.len() as u64) as usize];
            if p.prefix_len() < len {
                let IpAddr::V4(base) = p.addr() else {
                    unreachable!()
                };
                u32::from(base) | (rng.next() as u32 & (u32::MAX >> p.prefix_len()))
            } else {
                fresh
            }
        } else {
            fresh
        };
        out.push(v4(a, len));
    }
    out
}

/// `n` IPv6 prefixes of the realistic mix.
pub fn realistic_v6(n: usize, rng: &mut Rng) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = Vec::with_capacity(n);
    while out.len() < n {
        let len = rng.pick(V6_MIX);
        let fresh = (0x2u128 << 124) | (u128::from(rng.next()) << 60);
        let a = if !out.is_empty() && rng.below(3) < 2 {
            let p = out[rng.below(out.len() as u64) as usize];
            if p.prefix_len() < len {
                let IpAddr::V6(base) = p.addr() else {
                    unreachable!()
                };
                let host = (u128::from(rng.next()) << 64) | u128::from(rng.next());
                u128::from(base) | (host & (u128::MAX >> p.prefix_len()))
            } else {
                fresh
            }
        } else {
            fresh
        };
        out.push(v6(a, len));
    }
    out
}

/// `n` IPv4 prefixes of uniform length /8 to /32 at uniform addresses.
pub fn random_v4(n: usize, rng: &mut Rng) -> Vec<IpNet> {
    (0..n)
        .map(|_| v4(rng.next() as u32, 8 + rng.below(25) as u8))
        .collect()
}

/// `n` IPv6 prefixes of uniform length /16 to /64 at uniform addresses in 2000::/3.
pub fn random_v6(n: usize, rng: &mut Rng) -> Vec<IpNet> {
    (0..n)
        .map(|_| {
            let a = (0x2u128 << 124) | (u128::from(rng.next()) << 64 >> 3);
            v6(a, 16 + rng.below(49) as u8)
        })
        .collect()
}

/// Routes for `prefixes`, spread over 4 interfaces.
pub fn routes(prefixes: &[IpNet]) -> Vec<Route> {
    prefixes
        .iter()
        .enumerate()
        .map(|(i, &prefix)| Route {
            prefix,
            iface: i % 4,
            via: None,
        })
        .collect()
}

/// `n` addresses inside prefixes of `table` picked at random (the traffic of a busy
/// transit router: every destination has a route, often a long one).
pub fn addresses_in(table: &[IpNet], n: usize, rng: &mut Rng) -> Vec<IpAddr> {
    (0..n)
        .map(|_| {
            let p = table[rng.below(table.len() as u64) as usize];
            match p {
                IpNet::V4(p) => IpAddr::V4(Ipv4Addr::from(
                    u32::from(p.network()) | (rng.next() as u32 & u32::from(p.hostmask())),
                )),
                IpNet::V6(p) => {
                    let host = (u128::from(rng.next()) << 64) | u128::from(rng.next());
                    IpAddr::V6(Ipv6Addr::from(
                        u128::from(p.network()) | (host & u128::from(p.hostmask())),
                    ))
                }
            }
        })
        .collect()
}

/// `n` uniformly random IPv4 addresses.
pub fn random_addresses_v4(n: usize, rng: &mut Rng) -> Vec<IpAddr> {
    (0..n)
        .map(|_| IpAddr::V4(Ipv4Addr::from(rng.next() as u32)))
        .collect()
}
