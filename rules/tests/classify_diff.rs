//! Differential test of the compiled classifier: random rulesets and packets are evaluated by
//! `evaluate_full` (compiled) on one copy and `evaluate_linear` (plain scan) on another; the
//! verdicts, deciding rules, LOG records, marks and, at the end, every counter must be identical.

use std::fmt::Write as _;
use std::net::IpAddr;

use proptest::prelude::*;
use rules::{CtState, EvalOutput, Family, Hook, PacketCtx, Ruleset, Table};

/// Address pool per family: hosts, subnets and a non-contiguous mask, all documentation space.
fn nets(v6: bool) -> &'static [&'static str] {
    if v6 {
        &[
            "2001:db8::1/128",
            "2001:db8::2/128",
            "2001:db8::/64",
            "2001:db8:1::/48",
            "2001:db8::/32",
            "2001:db8::3/128",
        ]
    } else {
        &[
            "192.0.2.1/32",
            "192.0.2.2/32",
            "192.0.2.0/24",
            "198.51.100.0/25",
            "203.0.113.7/32",
            "192.0.2.0/255.255.0.255",
        ]
    }
}

fn hosts(v6: bool) -> &'static [&'static str] {
    if v6 {
        &[
            "2001:db8::1",
            "2001:db8::2",
            "2001:db8::3",
            "2001:db8:1::9",
            "2001:db8:2::1",
        ]
    } else {
        &[
            "192.0.2.1",
            "192.0.2.2",
            "192.0.2.200",
            "198.51.100.5",
            "198.51.100.200",
            "203.0.113.7",
        ]
    }
}

const PORTS: &[&str] = &["22", "80", "443", "1000:1010", "5000:6000", "79:81"];

/// One rule as generated: indices into the pools plus flags.
#[derive(Debug, Clone)]
struct GenRule {
    src: Option<(usize, bool)>,
    dst: Option<(usize, bool)>,
    proto: Option<u8>,
    dport: Option<(usize, bool)>,
    mark: Option<u8>,
    iface: Option<u8>,
    target: u8,
    arg: usize,
}

fn gen_rule() -> impl Strategy<Value = GenRule> {
    (
        prop::option::of((0..6usize, prop::bool::weighted(0.15))),
        prop::option::of((0..6usize, prop::bool::weighted(0.15))),
        prop::option::of(0..3u8),
        prop::option::of((0..6usize, prop::bool::weighted(0.15))),
        prop::option::weighted(0.1, 0..4u8),
        prop::option::weighted(0.1, 0..3u8),
        0..10u8,
        0..8usize,
    )
        .prop_map(
            |(src, dst, proto, dport, mark, iface, target, arg)| GenRule {
                src,
                dst,
                proto,
                dport,
                mark,
                iface,
                target,
                arg,
            },
        )
}

/// Renders chains into mangle-table iptables-save text. Chain 0 is PREROUTING; user chain `i`
/// only jumps to chains after it, so there is no loop.
fn render(v6: bool, chains: &[Vec<GenRule>]) -> String {
    let mut s = String::from("*mangle\n:PREROUTING ACCEPT [0:0]\n");
    for i in 1..chains.len() {
        let _ = writeln!(s, ":U{i} - [0:0]");
    }
    for (ci, rules) in chains.iter().enumerate() {
        let name = if ci == 0 {
            "PREROUTING".to_string()
        } else {
            format!("U{ci}")
        };
        for r in rules {
            let _ = write!(s, "-A {name}");
            let neg = |n: bool| if n { " !" } else { "" };
            if let Some((i, n)) = r.src {
                let _ = write!(s, "{} -s {}", neg(n), nets(v6)[i]);
            }
            if let Some((i, n)) = r.dst {
                let _ = write!(s, "{} -d {}", neg(n), nets(v6)[i]);
            }
            if let Some(i) = r.iface {
                let _ = write!(s, " -i {}", ["eth0", "eth+", "wan1"][i as usize]);
            }
            match (r.proto, r.dport) {
                (Some(p), d) if p < 2 => {
                    let p = ["tcp", "udp"][p as usize];
                    let _ = write!(s, " -p {p}");
                    if let Some((i, n)) = d {
                        let _ = write!(s, " -m {p}{} --dport {}", neg(n), PORTS[i]);
                    }
                }
                (Some(_), _) => s.push_str(" -p icmp"),
                _ => {}
            }
            if let Some(m) = r.mark {
                let _ = write!(s, " -m mark --mark 0x{m:x}/0xf");
            }
            let later = chains.len() - ci - 1;
            let t = match r.target {
                0..=2 => "-j ACCEPT".to_string(),
                3 => "-j DROP".to_string(),
                4 => format!("-j LOG --log-prefix \"r{} \"", r.arg),
                5 => format!("-j MARK --set-xmark 0x{:x}/0xf", r.arg),
                6 if ci > 0 => "-j RETURN".to_string(),
                7 | 8 if later > 0 => format!("-j U{}", ci + 1 + r.arg % later),
                9 if later > 0 => format!("-g U{}", ci + 1 + r.arg % later),
                _ => "-j ACCEPT".to_string(),
            };
            let _ = writeln!(s, " {t}");
        }
    }
    s.push_str("COMMIT\n");
    s
}

#[derive(Debug, Clone)]
struct GenPkt {
    src: usize,
    dst: usize,
    proto: u8,
    dport: u16,
    mark: u32,
    iface: u8,
}

fn gen_pkt() -> impl Strategy<Value = GenPkt> {
    (
        0..6usize,
        0..6usize,
        0..3u8,
        prop::sample::select(vec![22u16, 80, 81, 443, 1000, 1005, 1011, 5500, 7000]),
        0..16u32,
        0..3u8,
    )
        .prop_map(|(src, dst, proto, dport, mark, iface)| GenPkt {
            src,
            dst,
            proto,
            dport,
            mark,
            iface,
        })
}

fn ctx(v6: bool, p: &GenPkt) -> PacketCtx<'static> {
    let h = hosts(v6);
    let src: IpAddr = h[p.src % h.len()].parse().unwrap();
    let dst: IpAddr = h[p.dst % h.len()].parse().unwrap();
    let family = if v6 { Family::V6 } else { Family::V4 };
    let proto = [6u8, 17, if v6 { 58 } else { 1 }][p.proto as usize];
    let mut c = PacketCtx::new(family, src, dst, proto, &[]);
    if proto == 6 || proto == 17 {
        c.sport = Some(40000);
        c.dport = Some(p.dport);
    }
    if proto == 6 {
        c.tcp_flags = Some(0x02);
    }
    c.in_iface = Some(["eth0", "eth1", "lo"][p.iface as usize]);
    c.ctstate = CtState::NEW;
    c.mark = p.mark;
    c.len = 60 + p.dport as u32 % 7;
    c
}

fn check(v6: bool, chains: Vec<Vec<GenRule>>, pkts: Vec<GenPkt>) -> Result<(), TestCaseError> {
    let text = render(v6, &chains);
    let family = if v6 { Family::V6 } else { Family::V4 };
    let compiled = Ruleset::parse(&text, "gen", family).expect("generated rules parse");
    let linear = Ruleset::parse(&text, "gen", family).expect("generated rules parse");
    let (mut a, mut b) = (EvalOutput::default(), EvalOutput::default());
    for p in &pkts {
        let c = ctx(v6, p);
        let va = compiled.evaluate_full(Table::Mangle, Hook::Prerouting, &c, &mut a);
        let vb = linear.evaluate_linear(Table::Mangle, Hook::Prerouting, &c, &mut b);
        prop_assert_eq!(va, vb, "packet {:?}\n{}", p, text);
        prop_assert_eq!(&a.rule, &b.rule);
        prop_assert_eq!(&a.logs, &b.logs);
        prop_assert_eq!(a.marks, b.marks);
    }
    // Counters include every non-terminating match along the way.
    prop_assert_eq!(compiled.save(true), linear.save(true));
    Ok(())
}

fn chains() -> impl Strategy<Value = Vec<Vec<GenRule>>> {
    // Chain sizes straddle the index threshold so both indexed and scanned chains are covered.
    prop::collection::vec(prop::collection::vec(gen_rule(), 0..60), 1..5)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn compiled_matches_linear_v4(chains in chains(), pkts in prop::collection::vec(gen_pkt(), 1..40)) {
        check(false, chains, pkts)?;
    }

    #[test]
    fn compiled_matches_linear_v6(chains in chains(), pkts in prop::collection::vec(gen_pkt(), 1..40)) {
        check(true, chains, pkts)?;
    }
}

/// A long chain of identical wildcard rules: the index degenerates to its "always" list and
/// must still count every rule and reach the policy.
#[test]
fn all_wildcard_chain_counts_every_rule() {
    let mut text = String::from("*filter\n:INPUT DROP [0:0]\n");
    for _ in 0..1000 {
        text.push_str("-A INPUT -j LOG\n");
    }
    text.push_str("COMMIT\n");
    let rs = Ruleset::parse(&text, "gen", Family::V4).unwrap();
    let c = ctx(
        false,
        &GenPkt {
            src: 0,
            dst: 1,
            proto: 0,
            dport: 80,
            mark: 0,
            iface: 0,
        },
    );
    let mut out = EvalOutput::default();
    let v = rs.evaluate_full(Table::Filter, Hook::Input, &c, &mut out);
    assert_eq!(v, rules::Verdict::Drop);
    assert_eq!(out.logs.len(), 1000);
    assert_eq!(
        rs.counters(Table::Filter, "INPUT", 1000),
        Some((1, c.len as u64))
    );
    assert_eq!(
        rs.counters(Table::Filter, "INPUT", 0),
        Some((1, c.len as u64))
    );
}
