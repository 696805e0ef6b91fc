//! Rule classification (issue 3, item 8): per-packet cost of the compiled classifier next to the
//! linear reference at 10 / 1,000 / 10,000 / 100,000 rules of a generated realistic mix, and the
//! load (parse + compile) time of 10,000 rules spread over 1,000 chains.
//!
//! Run: `cargo bench -p rules --bench classify`
//!
//! The mix (one FORWARD chain, policy DROP): half per-host allows (`-d host/32 -p tcp --dport P`),
//! a quarter port ranges from client subnets (`-s net/24 -p udp --dport lo:hi`), a quarter
//! subnet-to-subnet rules (`-s net/24 -d net/16`, DROP or LOG). Packets cycle through 256 headers:
//! half aimed at a host rule picked at random (so at a random depth), half matching nothing and
//! falling to the policy (the linear worst case). Private space is used only because 100,000
//! hosts do not fit in the documentation prefixes; no packet is ever sent.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rules::{CtState, EvalOutput, Family, Hook, PacketCtx, Ruleset, Table};
use std::fmt::Write as _;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// A small deterministic generator (xorshift64*), so every run benches the same rulesets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Host `i` of the per-host rules: 10.0.0.0/9, distinct for every i.
fn host(i: u64) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 | (i as u32 & 0x007f_ffff))
}

/// The ruleset text and, per host rule, its (host, port).
fn mix(n: usize, rng: &mut Rng) -> (String, Vec<(Ipv4Addr, u16)>) {
    let mut s =
        String::from("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    let mut hosts = Vec::new();
    for i in 0..n as u64 {
        match i % 4 {
            0 | 1 => {
                let h = host(i);
                let port = [22u16, 80, 443, 8080][rng.below(4) as usize];
                let _ = writeln!(
                    s,
                    "-A FORWARD -d {h}/32 -p tcp -m tcp --dport {port} -j ACCEPT"
                );
                hosts.push((h, port));
            }
            2 => {
                // Client subnets in 172.16.0.0/12.
                let net = Ipv4Addr::from(0xac10_0000 | ((i as u32 & 0xfff) << 8));
                let lo = 10000 + rng.below(50000) as u16;
                let _ = writeln!(
                    s,
                    "-A FORWARD -s {net}/24 -p udp -m udp --dport {lo}:{} -j ACCEPT",
                    lo + 100
                );
            }
            _ => {
                let from = Ipv4Addr::from(0xc0a8_0000 | ((i as u32 & 0xff) << 8));
                let to = Ipv4Addr::from(0x0b00_0000 | ((i as u32 & 0xff) << 16));
                let target = if rng.below(4) == 0 {
                    "LOG --log-prefix \"sub \""
                } else {
                    "DROP"
                };
                let _ = writeln!(s, "-A FORWARD -s {from}/24 -d {to}/16 -j {target}");
            }
        }
    }
    s.push_str("COMMIT\n");
    (s, hosts)
}

struct Hdr {
    src: IpAddr,
    dst: IpAddr,
    dport: u16,
}

fn headers(hosts: &[(Ipv4Addr, u16)], rng: &mut Rng) -> Vec<Hdr> {
    (0..256)
        .map(|k| {
            let src = IpAddr::V4(Ipv4Addr::new(100, 64, 0, 1 + (k % 200) as u8));
            if k % 2 == 0 && !hosts.is_empty() {
                let (h, p) = hosts[rng.below(hosts.len() as u64) as usize];
                Hdr {
                    src,
                    dst: IpAddr::V4(h),
                    dport: p,
                }
            } else {
                // 100.64.0.0/10 is in no rule: this packet walks to the policy.
                let dst = IpAddr::V4(Ipv4Addr::new(100, 65, (k >> 8) as u8, k as u8));
                Hdr {
                    src,
                    dst,
                    dport: 8443,
                }
            }
        })
        .collect()
}

fn ctx(h: &Hdr) -> PacketCtx<'static> {
    let mut c = PacketCtx::new(Family::V4, h.src, h.dst, 6, &[]);
    c.in_iface = Some("lan0");
    c.out_iface = Some("wan0");
    c.sport = Some(40000);
    c.dport = Some(h.dport);
    c.tcp_flags = Some(0x02);
    c.ctstate = CtState::NEW;
    c.len = 60;
    c
}

fn per_packet(c: &mut Criterion) {
    let mut g = c.benchmark_group("classify");
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(20);
    for n in [10usize, 1_000, 10_000, 100_000] {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n as u64);
        let (text, hosts) = mix(n, &mut rng);
        let rs = Ruleset::parse(&text, "bench", Family::V4).expect("generated ruleset parses");
        let hdrs = headers(&hosts, &mut rng);
        let ctxs: Vec<PacketCtx> = hdrs.iter().map(ctx).collect();
        let mut out = EvalOutput::default();
        for (name, linear) in [("compiled", false), ("linear", true)] {
            // One iteration classifies the whole 256-packet cycle; per packet is /256.
            g.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    for c in &ctxs {
                        let v = if linear {
                            rs.evaluate_linear(Table::Filter, Hook::Forward, c, &mut out)
                        } else {
                            rs.evaluate_full(Table::Filter, Hook::Forward, c, &mut out)
                        };
                        black_box(v);
                    }
                })
            });
        }
    }
    g.finish();
}

/// 10,000 rules in 1,000 chains: FORWARD dispatches on a /16 to 999 user chains of ~9 rules.
fn chains_text() -> String {
    let mut s =
        String::from("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    for c in 1..1000 {
        let _ = writeln!(s, ":C{c} - [0:0]");
    }
    let mut rules = 0;
    for c in 1..1000u32 {
        let _ = writeln!(s, "-A FORWARD -d 10.{}.{}.0/24 -j C{c}", c >> 8, c & 0xff);
        rules += 1;
    }
    let mut c = 1u32;
    while rules < 10_000 {
        let i = rules as u32;
        let _ = writeln!(
            s,
            "-A C{c} -d 10.{}.{}.{}/32 -p tcp -m tcp --dport {} -j ACCEPT",
            c >> 8,
            c & 0xff,
            i % 250 + 1,
            1000 + i % 5000
        );
        rules += 1;
        c = c % 999 + 1;
    }
    s.push_str("COMMIT\n");
    s
}

fn load(c: &mut Criterion) {
    let text = chains_text();
    let rs = Ruleset::parse(&text, "bench", Family::V4).expect("generated ruleset parses");
    assert_eq!(rs.rule_count(), 10_000);
    let mut g = c.benchmark_group("classify_load");
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(5));
    g.sample_size(20);
    g.bench_function("10000_rules_1000_chains", |b| {
        b.iter(|| black_box(Ruleset::parse(&text, "bench", Family::V4).expect("parses")))
    });
    g.finish();
}

criterion_group!(benches, per_packet, load);
criterion_main!(benches);
