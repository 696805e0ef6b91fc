//! Evaluation semantics: first match, negation, jumps, returns, gotos, policies, counters.

use super::*;

fn input(rs: &Ruleset, ctx: &PacketCtx) -> (Verdict, String) {
    let (v, r) = rs.evaluate_traced(Table::Filter, Hook::Input, ctx);
    (v, r.map_or_else(|| "-".to_string(), |r| r.to_string()))
}

#[test]
fn missing_table_or_chain_accepts() {
    let ctx = tcp4("192.0.2.2", "192.0.2.1", 1000, 22);
    let empty = Ruleset::empty(Family::V4);
    assert_eq!(
        empty.evaluate(Table::Filter, Hook::Input, &ctx),
        Verdict::Accept
    );
    assert_eq!(
        empty.evaluate_traced(Table::Raw, Hook::Prerouting, &ctx),
        (Verdict::Accept, None)
    );
    let rs = v4(&filter(":INPUT DROP"));
    // filter has no PREROUTING chain.
    assert_eq!(
        rs.evaluate_traced(Table::Filter, Hook::Prerouting, &ctx),
        (Verdict::Accept, None)
    );
    assert_eq!(rs.evaluate(Table::Filter, Hook::Input, &ctx), Verdict::Drop);
}

#[test]
fn first_match_wins_and_policy_applies() {
    let rs = v4(&filter(
        ":INPUT DROP\n-A INPUT -s 192.0.2.0/24 -j ACCEPT\n-A INPUT -s 192.0.2.2 -j REJECT\n-A INPUT -p tcp --dport 22 -j REJECT --reject-with tcp-reset",
    ));
    let ctx = tcp4("192.0.2.2", "192.0.2.1", 1000, 22);
    assert_eq!(
        input(&rs, &ctx),
        (Verdict::Accept, "filter INPUT rule 1".into())
    );
    let ctx = tcp4("198.51.100.2", "192.0.2.1", 1000, 22);
    assert_eq!(
        input(&rs, &ctx),
        (
            Verdict::Reject(RejectWith::TcpReset),
            "filter INPUT rule 3".into()
        )
    );
    let ctx = tcp4("198.51.100.2", "192.0.2.1", 1000, 23);
    assert_eq!(
        input(&rs, &ctx),
        (Verdict::Drop, "filter INPUT policy".into())
    );
}

#[test]
fn negations() {
    let rs = v4(&filter(
        ":INPUT DROP\n-A INPUT ! -s 192.0.2.0/24 -j DROP\n-A INPUT -p tcp -m tcp ! --dport 22 -j DROP\n-A INPUT ! -p tcp -j DROP\n-A INPUT ! -i lo -j ACCEPT",
    ));
    assert_eq!(
        input(&rs, &tcp4("198.51.100.1", "192.0.2.1", 1, 22)).1,
        "filter INPUT rule 1"
    );
    assert_eq!(
        input(&rs, &tcp4("192.0.2.9", "192.0.2.1", 1, 80)).1,
        "filter INPUT rule 2"
    );
    let mut udp = tcp4("192.0.2.9", "192.0.2.1", 1, 22);
    udp.proto = 17;
    assert_eq!(input(&rs, &udp).1, "filter INPUT rule 3");
    // No input interface at all counts as the empty name: `! -i lo` matches.
    assert_eq!(
        input(&rs, &tcp4("192.0.2.9", "192.0.2.1", 1, 22)).1,
        "filter INPUT rule 4"
    );
    let mut lo = tcp4("192.0.2.9", "192.0.2.1", 1, 22);
    lo.in_iface = Some("lo");
    assert_eq!(
        input(&rs, &lo),
        (Verdict::Drop, "filter INPUT policy".into())
    );
}

#[test]
fn interfaces_and_wildcards() {
    let rs = v4(&filter(
        "-A FORWARD -i lan+ -o wan0 -j ACCEPT\n-A FORWARD -i lan -j REJECT\n-A FORWARD -j DROP",
    ));
    let mut c = tcp4("192.0.2.2", "203.0.113.1", 1, 80);
    c.in_iface = Some("lan1");
    c.out_iface = Some("wan0");
    assert_eq!(
        rs.evaluate(Table::Filter, Hook::Forward, &c),
        Verdict::Accept
    );
    c.out_iface = Some("wan1");
    assert_eq!(rs.evaluate(Table::Filter, Hook::Forward, &c), Verdict::Drop);
    c.in_iface = Some("lan");
    assert_eq!(
        rs.evaluate(Table::Filter, Hook::Forward, &c),
        Verdict::Reject(RejectWith::IcmpPortUnreachable)
    );
}

#[test]
fn ports_need_a_first_fragment() {
    let rs = v4(&filter(
        ":INPUT ACCEPT\n-A INPUT -p tcp -m tcp ! --dport 22 -j DROP\n-A INPUT -f -j REJECT",
    ));
    let mut frag = tcp4("192.0.2.2", "192.0.2.1", 0, 0);
    frag.sport = None;
    frag.dport = None;
    frag.fragment = true;
    // Like the kernel, a port match fails on a later fragment even when negated.
    assert_eq!(input(&rs, &frag).1, "filter INPUT rule 2");
    assert_eq!(
        input(&rs, &tcp4("192.0.2.2", "192.0.2.1", 1, 80)).1,
        "filter INPUT rule 1"
    );
    let ranges = v4(&filter(
        ":INPUT DROP\n-A INPUT -p udp -m udp --sport :1023 --dport 1024: -j ACCEPT",
    ));
    let mut u = tcp4("192.0.2.2", "192.0.2.1", 1023, 1024);
    u.proto = 17;
    assert_eq!(
        ranges.evaluate(Table::Filter, Hook::Input, &u),
        Verdict::Accept
    );
    u.sport = Some(1024);
    assert_eq!(
        ranges.evaluate(Table::Filter, Hook::Input, &u),
        Verdict::Drop
    );
}

#[test]
fn conntrack_and_state() {
    let rs = v4(&filter(
        ":INPUT DROP\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A INPUT -m state --state INVALID -j REJECT\n-A INPUT -m conntrack --ctstate DNAT -j ACCEPT\n-A INPUT -m state ! --state NEW -j REJECT --reject-with icmp-admin-prohibited",
    ));
    let mut c = tcp4("192.0.2.2", "192.0.2.1", 1, 80);
    c.ctstate = CtState::ESTABLISHED;
    assert_eq!(input(&rs, &c).1, "filter INPUT rule 1");
    c.ctstate = CtState::RELATED | CtState::SNAT;
    assert_eq!(input(&rs, &c).1, "filter INPUT rule 1");
    c.ctstate = CtState::INVALID;
    assert_eq!(input(&rs, &c).1, "filter INPUT rule 2");
    c.ctstate = CtState::NEW | CtState::DNAT;
    assert_eq!(input(&rs, &c).1, "filter INPUT rule 3");
    c.ctstate = CtState::UNTRACKED;
    assert_eq!(
        input(&rs, &c),
        (
            Verdict::Reject(RejectWith::IcmpAdminProhibited),
            "filter INPUT rule 4".into()
        )
    );
    c.ctstate = CtState::NEW;
    assert_eq!(input(&rs, &c).1, "filter INPUT policy");
    assert!(CtState::NEW.contains(CtState::NEW));
    assert!(!(CtState::NEW | CtState::DNAT).contains(CtState::SNAT));
}

#[test]
fn icmp_types_and_codes() {
    let rs = v4(&filter(
        ":INPUT DROP\n-A INPUT -p icmp -m icmp --icmp-type echo-request -j ACCEPT\n-A INPUT -p icmp -m icmp --icmp-type 3/4 -j ACCEPT\n-A INPUT -p icmp -m icmp ! --icmp-type destination-unreachable -j REJECT",
    ));
    let mut c = PacketCtx::new(
        Family::V4,
        "192.0.2.2".parse().unwrap(),
        "192.0.2.1".parse().unwrap(),
        1,
        &[],
    );
    c.icmp_type_code = Some((8, 0));
    assert_eq!(input(&rs, &c).1, "filter INPUT rule 1");
    c.icmp_type_code = Some((3, 4));
    assert_eq!(input(&rs, &c).1, "filter INPUT rule 2");
    c.icmp_type_code = Some((3, 1));
    assert_eq!(input(&rs, &c).1, "filter INPUT policy");
    c.icmp_type_code = Some((11, 0));
    assert_eq!(input(&rs, &c).1, "filter INPUT rule 3");
    c.icmp_type_code = None;
    assert_eq!(input(&rs, &c).1, "filter INPUT policy");

    let rs6 = v6(&filter(
        ":INPUT DROP\n-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type neighbour-advertisement -j ACCEPT\n-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type port-unreachable -j ACCEPT",
    ));
    let mut c6 = tcp6("2001:db8::2", "2001:db8::1", 0, 0);
    c6.proto = 58;
    c6.sport = None;
    c6.dport = None;
    c6.icmp_type_code = Some((136, 0));
    assert_eq!(
        rs6.evaluate(Table::Filter, Hook::Input, &c6),
        Verdict::Accept
    );
    c6.icmp_type_code = Some((1, 4));
    assert_eq!(
        rs6.evaluate(Table::Filter, Hook::Input, &c6),
        Verdict::Accept
    );
    c6.icmp_type_code = Some((1, 3));
    assert_eq!(rs6.evaluate(Table::Filter, Hook::Input, &c6), Verdict::Drop);
}

#[test]
fn jump_return_and_nesting() {
    let rs = v4(&filter(
        ":INPUT DROP\n-N a\n-N b\n\
         -A INPUT -j a\n-A INPUT -s 192.0.2.0/24 -j ACCEPT\n\
         -A a -p tcp --dport 22 -j b\n-A a -s 192.0.2.66 -j DROP\n\
         -A b -s 192.0.2.7 -j RETURN\n-A b -j REJECT",
    ));
    // b RETURNs to a's next rule, which falls through to INPUT's next rule.
    assert_eq!(
        input(&rs, &tcp4("192.0.2.7", "192.0.2.1", 1, 22)),
        (Verdict::Accept, "filter INPUT rule 2".into())
    );
    assert_eq!(
        input(&rs, &tcp4("192.0.2.8", "192.0.2.1", 1, 22)).1,
        "filter b rule 2"
    );
    assert_eq!(
        input(&rs, &tcp4("192.0.2.66", "192.0.2.1", 1, 80)).1,
        "filter a rule 2"
    );
    // Implicit return at the end of a, then INPUT's policy.
    assert_eq!(
        input(&rs, &tcp4("198.51.100.1", "192.0.2.1", 1, 80)).1,
        "filter INPUT policy"
    );
}

#[test]
fn goto_does_not_push_a_frame() {
    let rs = v4(&filter(
        ":INPUT DROP\n-N outer\n-N viag\n-N leaf\n\
         -A INPUT -j outer\n-A INPUT -j ACCEPT\n\
         -A outer -g viag\n-A outer -j REJECT\n\
         -A viag -s 192.0.2.1 -j leaf\n-A viag -s 192.0.2.2 -j RETURN\n\
         -A leaf -j RETURN",
    ));
    // leaf returns into viag; viag ends: return goes to INPUT (outer's frame was not pushed by
    // -g), skipping outer's REJECT.
    assert_eq!(
        input(&rs, &tcp4("192.0.2.1", "192.0.2.9", 1, 1)).1,
        "filter INPUT rule 2"
    );
    // RETURN in a goto'd chain also returns to INPUT.
    assert_eq!(
        input(&rs, &tcp4("192.0.2.2", "192.0.2.9", 1, 1)).1,
        "filter INPUT rule 2"
    );

    // -g from the built-in chain itself: the end of the target chain applies the policy.
    let rs = v4(&filter(
        ":INPUT DROP\n-N g\n-A INPUT -g g\n-A INPUT -j ACCEPT\n-A g -s 192.0.2.1 -j ACCEPT",
    ));
    assert_eq!(
        input(&rs, &tcp4("192.0.2.1", "192.0.2.9", 1, 1)).1,
        "filter g rule 1"
    );
    assert_eq!(
        input(&rs, &tcp4("192.0.2.2", "192.0.2.9", 1, 1)),
        (Verdict::Drop, "filter INPUT policy".into())
    );
}

#[test]
fn return_in_builtin_chain_applies_policy() {
    let rs = v4(&filter(
        ":INPUT DROP\n-A INPUT -s 192.0.2.1 -j RETURN\n-A INPUT -j ACCEPT",
    ));
    assert_eq!(
        input(&rs, &tcp4("192.0.2.1", "192.0.2.9", 1, 1)),
        (Verdict::Drop, "filter INPUT policy".into())
    );
    assert_eq!(
        input(&rs, &tcp4("192.0.2.2", "192.0.2.9", 1, 1)).0,
        Verdict::Accept
    );
}

#[test]
fn counters_count_matches_jumps_and_policies() {
    let rs = v4(&filter(
        ":INPUT DROP\n-N c\n-A INPUT -p tcp\n-A INPUT -j c\n-A INPUT -s 192.0.2.1 -j ACCEPT\n-A c -s 192.0.2.2 -j DROP",
    ));
    let mut a = tcp4("192.0.2.1", "192.0.2.9", 1, 1);
    a.len = 100;
    let mut b = tcp4("192.0.2.2", "192.0.2.9", 1, 1);
    b.len = 40;
    let mut other = tcp4("192.0.2.3", "192.0.2.9", 1, 1);
    other.len = 1;
    other.proto = 17;
    for _ in 0..3 {
        assert_eq!(rs.evaluate(Table::Filter, Hook::Input, &a), Verdict::Accept);
    }
    assert_eq!(rs.evaluate(Table::Filter, Hook::Input, &b), Verdict::Drop);
    assert_eq!(
        rs.evaluate(Table::Filter, Hook::Input, &other),
        Verdict::Drop
    );
    assert_eq!(rs.counters(Table::Filter, "INPUT", 1), Some((4, 340)));
    assert_eq!(rs.counters(Table::Filter, "INPUT", 2), Some((5, 341)));
    assert_eq!(rs.counters(Table::Filter, "INPUT", 3), Some((3, 300)));
    assert_eq!(rs.counters(Table::Filter, "c", 1), Some((1, 40)));
    assert_eq!(rs.counters(Table::Filter, "INPUT", 0), Some((1, 1)));
    assert_eq!(rs.counters(Table::Filter, "c", 0), None);
    let saved = rs.save(true);
    assert!(saved.contains(":INPUT DROP [1:1]\n"), "{saved}");
    assert!(
        saved.contains("[3:300] -A INPUT -s 192.0.2.1/32 -j ACCEPT\n"),
        "{saved}"
    );
}

#[test]
fn counters_from_many_threads() {
    let rs = std::sync::Arc::new(v4(&filter("-A INPUT -j ACCEPT")));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let rs = rs.clone();
            std::thread::spawn(move || {
                let c = tcp4("192.0.2.1", "192.0.2.9", 1, 1);
                for _ in 0..1000 {
                    rs.evaluate(Table::Filter, Hook::Input, &c);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(
        rs.counters(Table::Filter, "INPUT", 1),
        Some((4000, 240_000))
    );
}

#[test]
fn raw_notrack_continues_and_a_later_drop_wins() {
    let rs = v4(
        "*raw\n-A PREROUTING -p udp -j NOTRACK\n-A PREROUTING -s 192.0.2.66 -j DROP\n-A OUTPUT -j CT --notrack\nCOMMIT\n",
    );
    let mut u = tcp4("192.0.2.1", "192.0.2.9", 1, 53);
    u.proto = 17;
    assert_eq!(
        rs.evaluate_traced(Table::Raw, Hook::Prerouting, &u),
        (
            Verdict::NoTrack,
            Some(RuleRef {
                table: Table::Raw,
                chain: "PREROUTING".into(),
                rule_num: 0
            })
        )
    );
    u.src = "192.0.2.66".parse().unwrap();
    assert_eq!(rs.evaluate(Table::Raw, Hook::Prerouting, &u), Verdict::Drop);
    let t = tcp4("192.0.2.1", "192.0.2.9", 1, 53);
    assert_eq!(
        rs.evaluate(Table::Raw, Hook::Prerouting, &t),
        Verdict::Accept
    );
    assert_eq!(rs.evaluate(Table::Raw, Hook::Output, &t), Verdict::NoTrack);
}

#[test]
fn log_is_reported_and_continues() {
    let rs = v4(&filter(
        ":INPUT DROP\n-N LOGDROP\n-A INPUT -s 192.0.2.1 -j LOGDROP\n-A LOGDROP -j LOG --log-prefix \"drop: \" --log-level info\n-A LOGDROP -j DROP",
    ));
    let mut out = EvalOutput::default();
    let c = tcp4("192.0.2.1", "192.0.2.9", 1, 1);
    assert_eq!(
        rs.evaluate_full(Table::Filter, Hook::Input, &c, &mut out),
        Verdict::Drop
    );
    assert_eq!(
        out.rule.as_ref().unwrap().to_string(),
        "filter LOGDROP rule 2"
    );
    assert_eq!(
        out.logs,
        [LogRecord {
            rule: RuleRef {
                table: Table::Filter,
                chain: "LOGDROP".into(),
                rule_num: 1
            },
            prefix: "drop: ".into(),
            level: 6
        }]
    );
    // The output is reset between evaluations.
    let other = tcp4("192.0.2.2", "192.0.2.9", 1, 1);
    rs.evaluate_full(Table::Filter, Hook::Input, &other, &mut out);
    assert!(out.logs.is_empty());
    assert!(out.rule.as_ref().unwrap().is_policy());
}

#[test]
fn family_mismatch_never_matches_addresses() {
    let rs = v4(&filter(
        ":INPUT DROP\n-A INPUT -s 192.0.2.0/24 -j ACCEPT\n-A INPUT ! -d 192.0.2.1 -j ACCEPT",
    ));
    let c = tcp6("2001:db8::1", "2001:db8::2", 1, 1);
    // `! -d` of another family's address is "not in the net": true, as for any other address.
    assert_eq!(input(&rs, &c).1, "filter INPUT rule 2");
}

/// `accept_by_state` is the full evaluation's answer whenever it answers: same verdict (the
/// first rule accepts), same counters, for every state combination and each head form.
#[test]
fn a_lone_state_head_decides_exactly_as_the_full_evaluation() {
    let heads = [
        "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A INPUT -m conntrack ! --ctstate NEW,INVALID -j ACCEPT",
        "-A INPUT -m conntrack --ctstate DNAT -j ACCEPT",
        "-A INPUT -m state --state ESTABLISHED -j ACCEPT",
        "-A INPUT -m state ! --state NEW -j ACCEPT",
    ];
    for head in heads {
        let text = filter(&format!(":INPUT DROP\n{head}\n-A INPUT -p tcp -j REJECT"));
        let (fast, full) = (v4(&text), v4(&text));
        let mut c = tcp4("192.0.2.2", "192.0.2.1", 1, 80);
        for bits in 0..=u8::MAX {
            c.ctstate = CtState(bits);
            let took = fast.accept_by_state(Table::Filter, Hook::Input, c.ctstate, c.len);
            let (v, rule) = input(&full, &c);
            if took {
                assert_eq!(
                    (v, rule.as_str()),
                    (Verdict::Accept, "filter INPUT rule 1"),
                    "{head} {bits:#x}"
                );
            } else {
                // Not taken: the head rule did not match, so the full path was needed.
                assert_ne!(rule, "filter INPUT rule 1", "{head} {bits:#x}");
            }
        }
        assert_eq!(
            fast.counters(Table::Filter, "INPUT", 1),
            full.counters(Table::Filter, "INPUT", 1),
            "{head}"
        );
        assert!(
            fast.counters(Table::Filter, "INPUT", 1).unwrap().0 > 0,
            "{head}"
        );
    }
    // Heads with anything more than the state test are evaluated in full.
    for head in [
        "-A INPUT -i lo -m conntrack --ctstate ESTABLISHED -j ACCEPT",
        "-A INPUT -m conntrack --ctstate ESTABLISHED --ctproto tcp -j ACCEPT",
        "-A INPUT -m conntrack --ctstate ESTABLISHED -j DROP",
        "-A INPUT -m conntrack --ctstate ESTABLISHED -m comment --comment x -j ACCEPT",
    ] {
        let rs = v4(&filter(&format!(":INPUT DROP\n{head}")));
        assert!(
            !rs.accept_by_state(Table::Filter, Hook::Input, CtState::ESTABLISHED, 60),
            "{head}"
        );
    }
}
