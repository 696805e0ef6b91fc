//! nat-table targets: every form parses to the expected [`NatTarget`] and saves back as
//! iptables-save prints it; the checks iptables and the kernel make are errors with a position;
//! evaluation hands the target to the engine.

use super::*;

fn nat_table(lines: &str) -> String {
    format!("*nat\n{lines}\nCOMMIT\n")
}

fn range(min: Option<&str>, max: Option<&str>, ports: Option<(u16, u16)>) -> NatRange {
    NatRange {
        min_addr: min.map(|a| a.parse().unwrap()),
        max_addr: max.map(|a| a.parse().unwrap()),
        ports,
        random: false,
        random_fully: false,
        persistent: false,
    }
}

fn one(a: &str) -> NatRange {
    range(Some(a), Some(a), None)
}

/// The NAT target the table decides for a packet to port 80 of protocol `proto`.
fn target_of_proto(rs: &Ruleset, hook: Hook, proto: u8) -> Option<NatTarget> {
    let mut c = if rs.family() == Family::V4 {
        tcp4("192.0.2.7", "198.51.100.1", 40000, 80)
    } else {
        tcp6("2001:db8::7", "2001:db8:ffff::1", 40000, 80)
    };
    c.proto = proto;
    let mut out = EvalOutput::default();
    assert_eq!(
        rs.evaluate_full(Table::Nat, hook, &c, &mut out),
        Verdict::Accept
    );
    out.nat
}

fn target_of(rs: &Ruleset, hook: Hook) -> Option<NatTarget> {
    target_of_proto(rs, hook, 6)
}

#[test]
fn every_form_parses_and_saves_canonically() {
    let random = |mut r: NatRange| {
        r.random = true;
        r
    };
    let persistent = |mut r: NatRange| {
        r.persistent = true;
        r
    };
    let fully = |mut r: NatRange| {
        r.random_fully = true;
        r
    };
    // (chain, rule tail as iptables-save prints it, expected target)
    let v4: Vec<(&str, &str, NatTarget)> = vec![
        (
            "POSTROUTING",
            "-j SNAT --to-source 198.51.100.1",
            NatTarget::Snat(one("198.51.100.1")),
        ),
        (
            "POSTROUTING",
            "-p tcp -j SNAT --to-source 198.51.100.1:1024-65535",
            NatTarget::Snat(range(
                Some("198.51.100.1"),
                Some("198.51.100.1"),
                Some((1024, 65535)),
            )),
        ),
        (
            "INPUT",
            "-p tcp -j SNAT --to-source 198.51.100.1-198.51.100.8:5000 --random --persistent",
            NatTarget::Snat(persistent(random(range(
                Some("198.51.100.1"),
                Some("198.51.100.8"),
                Some((5000, 5000)),
            )))),
        ),
        (
            "POSTROUTING",
            "-p sctp -j SNAT --to-source :1024-2048",
            NatTarget::Snat(range(None, None, Some((1024, 2048)))),
        ),
        (
            "PREROUTING",
            "-p tcp -j DNAT --to-destination 192.0.2.2:8080",
            NatTarget::Dnat(range(
                Some("192.0.2.2"),
                Some("192.0.2.2"),
                Some((8080, 8080)),
            )),
        ),
        (
            "OUTPUT",
            "-p dccp -j DNAT --to-destination :8080",
            NatTarget::Dnat(range(None, None, Some((8080, 8080)))),
        ),
        (
            "PREROUTING",
            "-j DNAT --to-destination 192.0.2.2-192.0.2.4 --persistent",
            NatTarget::Dnat(persistent(range(
                Some("192.0.2.2"),
                Some("192.0.2.4"),
                None,
            ))),
        ),
        (
            "POSTROUTING",
            "-j MASQUERADE",
            NatTarget::Masquerade(range(None, None, None)),
        ),
        (
            "POSTROUTING",
            "-p tcp -j SNAT --to-source 198.51.100.1:1000-2000 --random --random-fully --persistent",
            NatTarget::Snat(fully(persistent(random(range(
                Some("198.51.100.1"),
                Some("198.51.100.1"),
                Some((1000, 2000)),
            ))))),
        ),
        (
            "POSTROUTING",
            "-j MASQUERADE --random-fully",
            NatTarget::Masquerade(fully(range(None, None, None))),
        ),
        (
            "POSTROUTING",
            "-p udplite -j MASQUERADE --to-ports 1024-2048 --random",
            NatTarget::Masquerade(random(range(None, None, Some((1024, 2048))))),
        ),
        (
            "PREROUTING",
            "-p tcp -j REDIRECT --to-ports 3128",
            NatTarget::Redirect(range(None, None, Some((3128, 3128)))),
        ),
        (
            "OUTPUT",
            "-j REDIRECT --random",
            NatTarget::Redirect(random(range(None, None, None))),
        ),
        (
            "PREROUTING",
            "-j NETMAP --to 192.0.2.0/24",
            NatTarget::Netmap {
                prefix: "192.0.2.0/24".parse().unwrap(),
            },
        ),
        (
            "POSTROUTING",
            "-j NETMAP --to 198.51.100.0/24",
            NatTarget::Netmap {
                prefix: "198.51.100.0/24".parse().unwrap(),
            },
        ),
    ];
    let v6: Vec<(&str, &str, NatTarget)> = vec![
        (
            "POSTROUTING",
            "-j SNAT --to-source 2001:db8:ffff::1",
            NatTarget::Snat(one("2001:db8:ffff::1")),
        ),
        (
            "POSTROUTING",
            "-p tcp -j SNAT --to-source [2001:db8:ffff::1-2001:db8:ffff::4]:1024-65535",
            NatTarget::Snat(range(
                Some("2001:db8:ffff::1"),
                Some("2001:db8:ffff::4"),
                Some((1024, 65535)),
            )),
        ),
        (
            "PREROUTING",
            "-p tcp -j DNAT --to-destination [2001:db8:1::10]:443",
            NatTarget::Dnat(range(
                Some("2001:db8:1::10"),
                Some("2001:db8:1::10"),
                Some((443, 443)),
            )),
        ),
        (
            "PREROUTING",
            "-j DNAT --to-destination 2001:db8:1::10-2001:db8:1::12",
            NatTarget::Dnat(range(Some("2001:db8:1::10"), Some("2001:db8:1::12"), None)),
        ),
        (
            "OUTPUT",
            "-p udp -j DNAT --to-destination :53",
            NatTarget::Dnat(range(None, None, Some((53, 53)))),
        ),
        (
            "POSTROUTING",
            "-p tcp -j MASQUERADE --to-ports 20000-30000",
            NatTarget::Masquerade(range(None, None, Some((20000, 30000)))),
        ),
        (
            "PREROUTING",
            "-p tcp -j REDIRECT --to-ports 8080",
            NatTarget::Redirect(range(None, None, Some((8080, 8080)))),
        ),
        (
            "POSTROUTING",
            "-j NETMAP --to 2001:db8:2::/64",
            NatTarget::Netmap {
                prefix: "2001:db8:2::/64".parse().unwrap(),
            },
        ),
    ];
    let mut n = 0;
    for (family, cases) in [(Family::V4, v4), (Family::V6, v6)] {
        for (chain, tail, want) in cases {
            let text = nat_table(&format!("-A {chain} {tail}"));
            let rs = Ruleset::parse(&text, FILE, family).unwrap_or_else(|e| panic!("{e}"));
            let hook = Hook::from_chain_name(chain).unwrap();
            let proto = match tail.split(' ').nth(1) {
                Some("udp") => 17,
                Some("sctp") => 132,
                Some("dccp") => 33,
                Some("udplite") => 136,
                _ => 6,
            };
            assert_eq!(target_of_proto(&rs, hook, proto), Some(want), "{tail}");
            let saved = rs.save(false);
            assert!(
                saved.contains(&format!("\n-A {chain} {tail}\n")),
                "{tail}\n{saved}"
            );
            round_trip(&rs);
            n += 1;
        }
    }
    assert_eq!(n, 23);
}

#[test]
fn other_spellings_save_canonically() {
    for (family, given, saved) in [
        (
            Family::V4,
            "-A POSTROUTING -p tcp -j SNAT --to 198.51.100.1:80",
            "-A POSTROUTING -p tcp -j SNAT --to-source 198.51.100.1:80",
        ),
        (
            Family::V4,
            "-A POSTROUTING -p tcp -j SNAT --to-source 198.51.100.1-198.51.100.1:80-80 --random-fully",
            "-A POSTROUTING -p tcp -j SNAT --to-source 198.51.100.1:80 --random-fully",
        ),
        (
            Family::V4,
            "-A POSTROUTING -j MASQUERADE --random-fully --random",
            "-A POSTROUTING -j MASQUERADE --random --random-fully",
        ),
        (
            Family::V4,
            "-A PREROUTING -j NETMAP --to 192.0.2.77/24",
            "-A PREROUTING -j NETMAP --to 192.0.2.0/24",
        ),
        (
            Family::V4,
            "-A PREROUTING -j NETMAP --to 192.0.2.77",
            "-A PREROUTING -j NETMAP --to 192.0.2.77/32",
        ),
        (
            Family::V6,
            "-A PREROUTING -p tcp -j DNAT --to [2001:db8::1]-[2001:db8::3]:80-81",
            "-A PREROUTING -p tcp -j DNAT --to-destination [2001:db8::1-2001:db8::3]:80-81",
        ),
        (
            Family::V6,
            "-A PREROUTING -j DNAT --to-destination [2001:db8::1]",
            "-A PREROUTING -j DNAT --to-destination 2001:db8::1",
        ),
        (
            Family::V6,
            "-A PREROUTING -p tcp -j DNAT --to-destination [2001:db8::1]-[2001:db8::1]:80",
            "-A PREROUTING -p tcp -j DNAT --to-destination [2001:db8::1]:80",
        ),
    ] {
        let rs = Ruleset::parse(&nat_table(given), FILE, family).unwrap_or_else(|e| panic!("{e}"));
        let text = rs.save(false);
        assert!(text.contains(&format!("\n{saved}\n")), "{given}\n{text}");
        round_trip(&rs);
    }
}

#[test]
fn wrong_table_or_chain() {
    assert_eq!(
        err4(&filter("-A FORWARD -j MASQUERADE")),
        "t.rules:2:15: target MASQUERADE is only valid in the nat table, not filter"
    );
    assert_eq!(
        err4("*mangle\n-A PREROUTING -j NETMAP --to 192.0.2.0/24\nCOMMIT\n"),
        "t.rules:2:18: target NETMAP is only valid in the nat table, not mangle"
    );
    for (rule, chain, only) in [
        (
            "-A PREROUTING -j SNAT --to-source 192.0.2.1",
            "PREROUTING",
            "INPUT, POSTROUTING",
        ),
        (
            "-A OUTPUT -j SNAT --to-source 192.0.2.1",
            "OUTPUT",
            "INPUT, POSTROUTING",
        ),
        ("-A INPUT -j MASQUERADE", "INPUT", "POSTROUTING"),
        ("-A OUTPUT -j MASQUERADE", "OUTPUT", "POSTROUTING"),
        (
            "-A POSTROUTING -j DNAT --to-destination 192.0.2.1",
            "POSTROUTING",
            "PREROUTING, OUTPUT",
        ),
        ("-A INPUT -j REDIRECT", "INPUT", "PREROUTING, OUTPUT"),
    ] {
        let e = err4(&nat_table(rule));
        let col = rule.find("-j ").unwrap() + 4;
        assert_eq!(
            e,
            format!(
                "t.rules:2:{col}: target {} is not valid in chain {chain} (only in {only})",
                &rule[col - 1..].split(' ').next().unwrap()
            )
        );
    }
}

#[test]
fn user_chains_are_checked_against_the_chains_that_reach_them() {
    // Reached only from PREROUTING and OUTPUT (one through -g): fine.
    let ok = v4(&nat_table(
        ":fwd - [0:0]\n:fwd2 - [0:0]\n\
         -A PREROUTING -j fwd\n-A OUTPUT -g fwd2\n-A fwd2 -j fwd\n\
         -A fwd -p tcp -j DNAT --to-destination 192.0.2.2:80",
    ));
    round_trip(&ok);
    // A chain nothing jumps to is not checked (as the kernel only sees reachable rules).
    v4(&nat_table(":spare - [0:0]\n-A spare -j MASQUERADE"));
    // Reached from POSTROUTING through another user chain: the DNAT rule is wrong.
    assert_eq!(
        err4(&nat_table(
            ":fwd - [0:0]\n:out - [0:0]\n\
             -A PREROUTING -j fwd\n-A POSTROUTING -j out\n-A out -g fwd\n\
             -A fwd -p tcp -j DNAT --to-destination 192.0.2.2:80"
        )),
        "t.rules:7:18: target DNAT in chain fwd is reached from POSTROUTING \
         (POSTROUTING -> out -> fwd), but is only valid in PREROUTING, OUTPUT"
    );
    // MASQUERADE reached from INPUT (SNAT would be fine there).
    assert_eq!(
        err4(&nat_table(
            ":masq - [0:0]\n-A INPUT -j masq\n-A POSTROUTING -j masq\n-A masq -j MASQUERADE"
        )),
        "t.rules:5:12: target MASQUERADE in chain masq is reached from INPUT (INPUT -> masq), \
         but is only valid in POSTROUTING"
    );
    v4(&nat_table(
        ":s - [0:0]\n-A INPUT -j s\n-A POSTROUTING -j s\n-A s -j SNAT --to-source 192.0.2.1",
    ));
}

#[test]
fn missing_and_malformed_ranges() {
    let e = |rule: &str| err4(&nat_table(rule));
    assert_eq!(
        e("-A POSTROUTING -j SNAT --random"),
        "t.rules:2:19: SNAT needs --to-source"
    );
    assert_eq!(
        e("-A PREROUTING -j DNAT"),
        "t.rules:2:18: DNAT needs --to-destination"
    );
    assert_eq!(
        e("-A PREROUTING -j NETMAP"),
        "t.rules:2:18: NETMAP needs --to ADDRESS/PREFIX"
    );
    assert_eq!(
        e("-A PREROUTING -j NETMAP --to 192.0.2.0/33"),
        "t.rules:2:30: bad prefix \"192.0.2.0/33\" (expected ADDRESS/PREFIX)"
    );
    assert_eq!(
        e("-A PREROUTING -p tcp -j DNAT --to-destination 192.0.2.1:2000-1000"),
        "t.rules:2:47: bad port range \"2000-1000\" (expected PORT or PORT-PORT, low to high)"
    );
    assert_eq!(
        e("-A PREROUTING -p tcp -j DNAT --to-destination 192.0.2.1:0-65536"),
        "t.rules:2:47: bad port range \"0-65536\" (expected PORT or PORT-PORT, low to high)"
    );
    assert_eq!(
        e("-A POSTROUTING -j SNAT --to-source 198.51.100.9-198.51.100.1"),
        "t.rules:2:36: address range \"198.51.100.9-198.51.100.1\" goes from high to low"
    );
    assert_eq!(
        e("-A POSTROUTING -j SNAT --to-source 198.51.100.300"),
        "t.rules:2:36: bad address \"198.51.100.300\""
    );
    assert_eq!(
        e("-A POSTROUTING -j NETMAP --to 2001:db8::/64"),
        "t.rules:2:31: prefix 2001:db8::/64 is not of this ruleset's family"
    );
    assert_eq!(
        err6(&nat_table(
            "-A POSTROUTING -j SNAT --to-source 198.51.100.1"
        )),
        "t.rules:2:36: address 198.51.100.1 is not of this ruleset's family"
    );
    assert_eq!(
        err6(&nat_table(
            "-A PREROUTING -p tcp -j DNAT --to-destination [2001:db8::9-2001:db8::1]:80"
        )),
        "t.rules:2:47: address range \"2001:db8::9-2001:db8::1\" goes from high to low"
    );
    // Without brackets an IPv6 range has no port: this is the address 2001:db8::1:80.
    let rs = v6(&nat_table(
        "-A PREROUTING -p tcp -j DNAT --to-destination 2001:db8::1:80",
    ));
    assert_eq!(
        target_of(&rs, Hook::Prerouting),
        Some(NatTarget::Dnat(one("2001:db8::1:80")))
    );
}

#[test]
fn ports_need_a_port_protocol() {
    let msg = "a port range needs -p tcp, udp, udplite, sctp or dccp";
    for (rule, col) in [
        (
            "-A POSTROUTING -j SNAT --to-source 198.51.100.1:1024-2048",
            36,
        ),
        (
            "-A POSTROUTING -p icmp -j SNAT --to-source 198.51.100.1:1024",
            44,
        ),
        ("-A POSTROUTING ! -p tcp -j SNAT --to-source :1024", 45),
        ("-A PREROUTING -j DNAT --to-destination :8080", 40),
        ("-A POSTROUTING -j MASQUERADE --to-ports 1024-2048", 41),
        ("-A PREROUTING -p all -j REDIRECT --to-ports 3128", 45),
    ] {
        assert_eq!(
            err4(&nat_table(rule)),
            format!("t.rules:2:{col}: {msg}"),
            "{rule}"
        );
    }
    for proto in ["tcp", "udp", "udplite", "sctp", "dccp", "6"] {
        v4(&nat_table(&format!(
            "-A PREROUTING -p {proto} -j REDIRECT --to-ports 3128"
        )));
    }
}

#[test]
fn one_range_per_rule_and_only_the_targets_options() {
    assert_eq!(
        err4(&nat_table(
            "-A POSTROUTING -j SNAT --to-source 198.51.100.1 --to-source 198.51.100.2"
        )),
        "t.rules:2:49: --to-source given twice: one range per rule (several ranges were only \
         supported by kernels before 2.6.11); use ADDR-ADDR:PORT-PORT"
    );
    assert_eq!(
        err4(&nat_table(
            "-A PREROUTING -j DNAT --to 192.0.2.1 --to-destination 192.0.2.2"
        )),
        "t.rules:2:38: --to-destination given twice: one range per rule (several ranges were \
         only supported by kernels before 2.6.11); use ADDR-ADDR:PORT-PORT"
    );
    assert_eq!(
        err4(&nat_table(
            "-A PREROUTING -p tcp -j REDIRECT --to-ports 1 --to-ports 2"
        )),
        "t.rules:2:47: --to-ports given twice"
    );
    for rule in [
        "-A POSTROUTING -p tcp -j SNAT --to-source 198.51.100.1 --to-ports 80",
        "-A PREROUTING -j DNAT --to-destination 192.0.2.1 --random-fully",
        "-A PREROUTING -j REDIRECT --random-fully",
        "-A PREROUTING -j REDIRECT --persistent",
        "-A POSTROUTING -j MASQUERADE --persistent",
        "-A POSTROUTING -j MASQUERADE --to-source 192.0.2.1",
        "-A POSTROUTING -j NETMAP --to 192.0.2.0/24 --random",
    ] {
        let e = err4(&nat_table(rule));
        assert!(e.starts_with("t.rules:2:"), "{rule}: {e}");
    }
}

#[test]
fn evaluation_hands_the_target_to_the_engine() {
    let rs = v4(&nat_table(
        ":PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n\
         -A PREROUTING -j LOG --log-prefix \"nat: \"\n\
         -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n\
         -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE\n\
         -A DOCKER -i docker0 -j RETURN\n\
         -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80\n\
         -A DOCKER -p tcp -m tcp --dport 8081 -j ACCEPT",
    ));
    let local = |a: IpAddr| a == "198.51.100.1".parse::<IpAddr>().unwrap();
    let mut c = tcp4("203.0.113.9", "198.51.100.1", 40000, 8080);
    c.in_iface = Some("wan0");
    c.local_addr = Some(&local);
    let mut out = EvalOutput::default();
    let v = rs.evaluate_full(Table::Nat, Hook::Prerouting, &c, &mut out);
    assert_eq!(v, Verdict::Accept);
    assert_eq!(
        out.nat,
        Some(NatTarget::Dnat(range(
            Some("172.17.0.2"),
            Some("172.17.0.2"),
            Some((80, 80))
        )))
    );
    assert_eq!(out.rule.as_ref().unwrap().to_string(), "nat DOCKER rule 2");
    assert_eq!(
        out.logs.len(),
        1,
        "non-terminal targets before it still run"
    );
    assert_eq!(rs.counters(Table::Nat, "DOCKER", 2), Some((1, 60)));

    // The same output reused: an ACCEPT rule, a RETURN to the policy, another hook all reset
    // the NAT target.
    for (port, iface, rule) in [
        (8081, "wan0", "nat DOCKER rule 3"),
        (8080, "docker0", "nat PREROUTING policy"),
    ] {
        c.dport = Some(port);
        c.in_iface = Some(iface);
        let v = rs.evaluate_full(Table::Nat, Hook::Prerouting, &c, &mut out);
        assert_eq!(v, Verdict::Accept);
        assert_eq!(out.nat, None, "{rule}");
        assert_eq!(out.rule.as_ref().unwrap().to_string(), rule);
    }
    assert_eq!(rs.counters(Table::Nat, "DOCKER", 2), Some((1, 60)));

    let mut up = tcp4("172.17.0.2", "203.0.113.9", 80, 40000);
    up.out_iface = Some("wan0");
    let v = rs.evaluate_full(Table::Nat, Hook::Postrouting, &up, &mut out);
    assert_eq!(v, Verdict::Accept);
    assert_eq!(
        out.nat,
        Some(NatTarget::Masquerade(range(None, None, None)))
    );
    assert_eq!(out.rule.unwrap().to_string(), "nat POSTROUTING rule 1");
    up.out_iface = Some("docker0");
    assert_eq!(
        rs.evaluate_traced(Table::Nat, Hook::Postrouting, &up)
            .1
            .unwrap()
            .to_string(),
        "nat POSTROUTING policy"
    );
}

#[test]
fn nat_rules_round_trip_with_counters() {
    let text = "*nat\n:PREROUTING ACCEPT [3:180]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                :POSTROUTING ACCEPT [0:0]\n\
                [7:420] -A PREROUTING -i wan0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 192.0.2.2\n\
                [2:120] -A POSTROUTING -o wan0 -j MASQUERADE\nCOMMIT\n";
    let rs = Ruleset::parse_with(text, FILE, Family::V4, LoadOptions { counters: true }).unwrap();
    assert_eq!(rs.counters(Table::Nat, "PREROUTING", 1), Some((7, 420)));
    let saved = rs.save(true);
    assert!(saved.contains("[7:420] -A PREROUTING -i wan0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 192.0.2.2\n"));
    let again =
        Ruleset::parse_with(&saved, FILE, Family::V4, LoadOptions { counters: true }).unwrap();
    assert_eq!(again.save(true), saved);
    round_trip(&rs);
}
