//! The `routes` benchmark's figures in CPU time of the measuring thread instead of wall time,
//! for a shared machine where other processes take the cores (criterion's wall-clock figures
//! then scatter by 5×): load time of the full realistic table, the copy a route change makes
//! while a `route list` snapshot is out, then lookups per CPU second for the streams of
//! `benches/routes.rs`.
//!
//! ```sh
//! cargo run --release -p router --example route_cpu
//! ```

#[path = "../benches/routegen/mod.rs"]
mod routegen;

use ipnet::IpNet;
use routegen::*;
use router::route::RouteTable;
use rustix::time::{clock_gettime, ClockId};
use std::hint::black_box;
use std::net::IpAddr;

fn cpu_ns() -> u128 {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    t.tv_sec as u128 * 1_000_000_000 + t.tv_nsec as u128
}

fn main() {
    let mut rng = Rng(0x05ee_d0f7_ab1e);
    let mut prefixes = realistic_v4(1_000_000, &mut rng);
    prefixes.extend(realistic_v6(200_000, &mut rng));
    let random = random_v4(1_000_000, &mut rng);
    for (name, prefixes) in [("realistic-1M4-200k6", &prefixes), ("random-1M4", &random)] {
        let routes = routes(prefixes);
        let mut best = u128::MAX;
        for _ in 0..5 {
            let t = cpu_ns();
            let table = RouteTable::from_routes(routes.iter().copied());
            best = best.min(cpu_ns() - t);
            black_box(table);
        }
        println!("{name}: load {:.0} ms CPU (best of 5)", best as f64 / 1e6);
        let t = RouteTable::from_routes(routes.iter().copied());
        // What a route change costs while a `route list` snapshot is out: one copy.
        let t0 = cpu_ns();
        black_box(t.clone());
        println!("{name}: copy {:.0} ms CPU", (cpu_ns() - t0) as f64 / 1e6);
        let mut rng = Rng(42);
        let v4: Vec<IpNet> = prefixes
            .iter()
            .copied()
            .filter(|p| p.addr().is_ipv4())
            .collect();
        let v6: Vec<IpNet> = prefixes
            .iter()
            .copied()
            .filter(|p| p.addr().is_ipv6())
            .collect();
        let mut streams = vec![
            ("v4-in-table", addresses_in(&v4, 65_536, &mut rng)),
            ("v4-uniform", random_addresses_v4(65_536, &mut rng)),
        ];
        if !v6.is_empty() {
            streams.push(("v6-in-table", addresses_in(&v6, 65_536, &mut rng)));
        }
        for (what, addrs) in &streams {
            let mut best = u128::MAX;
            for _ in 0..20 {
                let t0 = cpu_ns();
                let mut sum = 0usize;
                for &a in addrs.iter() {
                    let a: IpAddr = black_box(a);
                    sum = sum.wrapping_add(t.lookup(a).map_or(7, |h| h.iface));
                }
                black_box(sum);
                best = best.min(cpu_ns() - t0);
            }
            let per = best as f64 / addrs.len() as f64;
            println!(
                "{name}/{what}: {per:.1} ns CPU per lookup, {:.1} M lookups per CPU second (best of 20)",
                1e3 / per
            );
        }
    }
}
