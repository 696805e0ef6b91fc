//! The route table at Internet scale (issue 16, item 2): load time of a full table and
//! lookups per second, at 1,000,000 IPv4 + 200,000 IPv6 routes of a realistic prefix-length
//! mix and at 1,000,000 IPv4 routes of uniform random lengths; and the cost of one live
//! change (add then delete) in the full table. The tables are described in
//! `benches/routegen/mod.rs`.
//!
//! Run: `cargo bench -p router --bench routes`
//!
//! Lookups go through 65,536 precomputed destinations per iteration: "in-table" ones are inside
//! prefixes of the table picked at random (every lookup finds a route, often a long one),
//! "uniform" ones are uniformly random IPv4 addresses. Throughput is in lookups (elements).

mod routegen;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ipnet::IpNet;
use routegen::*;
use router::route::{Route, RouteTable};
use std::hint::black_box;
use std::net::IpAddr;
use std::time::Duration;

const N4: usize = 1_000_000;
const N6: usize = 200_000;
const PROBES: usize = 65_536;

struct Case {
    name: &'static str,
    prefixes: Vec<IpNet>,
    routes: Vec<Route>,
}

fn cases() -> Vec<Case> {
    let mut rng = Rng(0x05ee_d0f7_ab1e);
    let mut realistic = realistic_v4(N4, &mut rng);
    realistic.extend(realistic_v6(N6, &mut rng));
    let random = random_v4(N4, &mut rng);
    [("realistic-1M4-200k6", realistic), ("random-1M4", random)]
        .into_iter()
        .map(|(name, prefixes)| Case {
            name,
            routes: routes(&prefixes),
            prefixes,
        })
        .collect()
}

fn lookups(t: &RouteTable, addrs: &[IpAddr]) -> usize {
    let mut sum = 0usize;
    for &a in addrs {
        sum = sum.wrapping_add(t.lookup(black_box(a)).map_or(7, |r| r.iface));
    }
    sum
}

fn bench(c: &mut Criterion) {
    let cases = cases();
    let mut g = c.benchmark_group("routes/load");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    for case in &cases {
        g.bench_with_input(BenchmarkId::from_parameter(case.name), case, |b, case| {
            b.iter(|| RouteTable::from_routes(case.routes.iter().copied()))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("routes/lookup");
    g.throughput(Throughput::Elements(PROBES as u64));
    for case in &cases {
        let t = RouteTable::from_routes(case.routes.iter().copied());
        eprintln!(
            "{}: {} routes, lookup structures {:.1} MiB",
            case.name,
            t.len(),
            t.lookup_bytes() as f64 / (1 << 20) as f64
        );
        let mut rng = Rng(42);
        let v4: Vec<IpNet> = case
            .prefixes
            .iter()
            .copied()
            .filter(|p| p.addr().is_ipv4())
            .collect();
        let v6: Vec<IpNet> = case
            .prefixes
            .iter()
            .copied()
            .filter(|p| p.addr().is_ipv6())
            .collect();
        let mut streams = vec![
            ("v4-in-table", addresses_in(&v4, PROBES, &mut rng)),
            ("v4-uniform", random_addresses_v4(PROBES, &mut rng)),
        ];
        if !v6.is_empty() {
            streams.push(("v6-in-table", addresses_in(&v6, PROBES, &mut rng)));
        }
        for (what, addrs) in &streams {
            g.bench_with_input(BenchmarkId::new(case.name, what), addrs, |b, addrs| {
                b.iter(|| lookups(&t, addrs))
            });
        }
    }
    g.finish();

    // One live change in the full realistic table: add a route, then delete it.
    let mut g = c.benchmark_group("routes/add-del");
    let mut t = RouteTable::from_routes(cases[0].routes.iter().copied());
    for p in [
        "203.0.113.0/24",
        "198.51.100.64/26",
        "2001:db8:77::/48",
        "10.0.0.0/8",
        "0.0.0.0/0",
    ] {
        let prefix: IpNet = p.parse().unwrap();
        let existing = t.remove(prefix);
        g.bench_with_input(BenchmarkId::from_parameter(p), &prefix, |b, &prefix| {
            b.iter(|| {
                t.add(Route {
                    prefix,
                    iface: 1,
                    via: None,
                });
                t.remove(prefix)
            })
        });
        if let Some(r) = existing {
            t.add(r);
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
