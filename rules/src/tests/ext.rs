//! The extension matches and the MARK / CONNMARK targets: syntax, errors, semantics.

use super::*;

fn one(rule: &str) -> String {
    let rs = v4(&filter(&format!("-A INPUT {rule}")));
    round_trip(&rs);
    last_rule(&rs)
}

fn one6(rule: &str) -> String {
    let rs = v6(&filter(&format!("-A INPUT {rule}")));
    round_trip(&rs);
    last_rule(&rs)
}

fn last_rule(rs: &Ruleset) -> String {
    rs.save(false)
        .lines()
        .rfind(|l| l.starts_with("-A"))
        .expect("a rule")
        .to_string()
}

fn rule_err(rule: &str) -> String {
    err4(&filter(&format!("-A INPUT {rule}")))
}

/// Evaluates INPUT and returns the deciding rule ("policy" or the number).
fn hit(rs: &Ruleset, ctx: &PacketCtx) -> String {
    let (_, r) = rs.evaluate_traced(Table::Filter, Hook::Input, ctx);
    match r {
        Some(r) if r.is_policy() => "policy".into(),
        Some(r) => r.rule_num.to_string(),
        None => "-".into(),
    }
}

#[test]
fn multiport_syntax() {
    assert_eq!(
        one("-p tcp -m multiport --dports 22,80,8000:8100 -j ACCEPT"),
        "-A INPUT -p tcp -m multiport --dports 22,80,8000:8100 -j ACCEPT"
    );
    assert_eq!(
        one("-p udp -m multiport --source-ports 53,123 -j ACCEPT"),
        "-A INPUT -p udp -m multiport --sports 53,123 -j ACCEPT"
    );
    assert_eq!(
        one("-p sctp -m multiport ! --ports 1:1024 -j ACCEPT"),
        "-A INPUT -p sctp -m multiport ! --ports 1:1024 -j ACCEPT"
    );
    assert_eq!(
        rule_err("-m multiport --dports 22"),
        "t.rules:2:13: -m multiport needs -p tcp, udp, udplite, sctp or dccp (not negated)"
    );
    assert_eq!(
        rule_err("-p tcp -m multiport -j ACCEPT"),
        "t.rules:2:20: -m multiport needs --sports, --dports or --ports"
    );
    assert_eq!(
        rule_err("-p tcp -m multiport --dports 22 --sports 1"),
        "t.rules:2:42: --sports cannot be combined with --dports"
    );
    assert_eq!(
        rule_err("-p tcp -m multiport --dports 22,80,x"),
        "t.rules:2:45: bad port x (a number 0..=65535)"
    );
}

#[test]
fn multiport_semantics() {
    let rs = v4(&filter(
        ":INPUT DROP\n-A INPUT -p tcp -m multiport --dports 22,8000:8100 -j ACCEPT\n-A INPUT -p tcp -m multiport --ports 53 -j ACCEPT\n-A INPUT -p tcp -m multiport ! --sports 1:1023 -j REJECT",
    ));
    assert_eq!(hit(&rs, &tcp4("192.0.2.2", "192.0.2.1", 40000, 22)), "1");
    assert_eq!(hit(&rs, &tcp4("192.0.2.2", "192.0.2.1", 40000, 8050)), "1");
    assert_eq!(hit(&rs, &tcp4("192.0.2.2", "192.0.2.1", 53, 40000)), "2");
    assert_eq!(hit(&rs, &tcp4("192.0.2.2", "192.0.2.1", 40000, 53)), "2");
    assert_eq!(hit(&rs, &tcp4("192.0.2.2", "192.0.2.1", 40000, 9000)), "3");
    assert_eq!(
        hit(&rs, &tcp4("192.0.2.2", "192.0.2.1", 1000, 9000)),
        "policy"
    );
    let mut frag = tcp4("192.0.2.2", "192.0.2.1", 0, 0);
    frag.sport = None;
    frag.dport = None;
    assert_eq!(hit(&rs, &frag), "policy");
}

#[test]
fn tcp_flags_syntax_and_semantics() {
    assert_eq!(
        one("-p tcp --syn -j DROP"),
        "-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j DROP"
    );
    assert_eq!(
        one("-p tcp -m tcp ! --syn -j DROP"),
        "-A INPUT -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -j DROP"
    );
    assert_eq!(
        one("-p tcp -m tcp --dport 80 --tcp-flags ALL NONE -j DROP"),
        "-A INPUT -p tcp -m tcp --dport 80 --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE -j DROP"
    );
    assert_eq!(
        one("-p tcp -m tcp --tcp-option 2 --tcp-flags syn,ack,ece,cwr SYN,ECE,CWR -j DROP"),
        "-A INPUT -p tcp -m tcp --tcp-option 2 --tcp-flags SYN,ACK,ECE,CWR SYN,ECE,CWR -j DROP"
    );
    assert_eq!(
        one("-p tcp -m tcp ! --tcp-option 8 -j DROP"),
        "-A INPUT -p tcp -m tcp ! --tcp-option 8 -j DROP"
    );
    assert_eq!(
        rule_err("-p tcp --syn --tcp-flags ALL SYN"),
        "t.rules:2:23: --tcp-flags cannot be combined with --syn"
    );
    assert_eq!(
        rule_err("-p tcp --tcp-flags SYN,XMAS SYN"),
        "t.rules:2:33: unknown TCP flag XMAS"
    );
    assert_eq!(
        rule_err("-p tcp --tcp-flags SYN"),
        "t.rules:2:17: option --tcp-flags needs a value"
    );
    assert_eq!(
        rule_err("-p udp --syn"),
        "t.rules:2:17: unknown or unsupported option --syn"
    );
    assert_eq!(
        rule_err("-p tcp --tcp-option 256"),
        "t.rules:2:30: bad TCP option kind 256 (0..=255)"
    );

    let rs = v4(&filter(
        ":INPUT ACCEPT\n-A INPUT -p tcp -m tcp ! --syn -m conntrack --ctstate NEW -j DROP\n-A INPUT -p tcp -m tcp --tcp-flags SYN,RST SYN,RST -j REJECT",
    ));
    let mut c = tcp4("192.0.2.2", "192.0.2.1", 1, 80);
    c.tcp_flags = Some(0x10); // bare ACK, NEW: drop
    assert_eq!(hit(&rs, &c), "1");
    c.tcp_flags = Some(0x02);
    assert_eq!(hit(&rs, &c), "policy");
    c.tcp_flags = Some(0x12); // SYN+ACK is not --syn
    assert_eq!(hit(&rs, &c), "1");
    c.tcp_flags = Some(0x06);
    c.ctstate = CtState::ESTABLISHED;
    assert_eq!(hit(&rs, &c), "2");
    // No TCP header: never matches, even negated.
    c.tcp_flags = None;
    c.ctstate = CtState::NEW;
    assert_eq!(hit(&rs, &c), "policy");
}

#[test]
fn tcp_option_reads_the_packet() {
    let mut pkt = vec![0x45u8];
    pkt.resize(20, 0);
    let mut tcp = vec![0u8; 20];
    tcp[12] = 6 << 4;
    tcp.extend_from_slice(&[2, 4, 0x05, 0xb4]); // MSS
    pkt.extend_from_slice(&tcp);
    let rs = v4(&filter(
        ":INPUT ACCEPT\n-A INPUT -p tcp -m tcp --tcp-option 2 -j DROP\n-A INPUT -p tcp -m tcp ! --tcp-option 3 -j REJECT",
    ));
    let mut c = tcp4("192.0.2.2", "192.0.2.1", 1, 80);
    c.packet = &pkt;
    assert_eq!(hit(&rs, &c), "1");
    tcp[20] = 3;
    let mut pkt2 = pkt[..20].to_vec();
    pkt2.extend_from_slice(&tcp);
    c.packet = &pkt2;
    assert_eq!(hit(&rs, &c), "policy");
    tcp[20] = 4;
    let mut pkt3 = pkt[..20].to_vec();
    pkt3.extend_from_slice(&tcp);
    c.packet = &pkt3;
    assert_eq!(hit(&rs, &c), "2");
}

#[test]
fn udp_module() {
    assert_eq!(
        one("-p udp -m udp --sport 68 --dport 67 -j ACCEPT"),
        "-A INPUT -p udp -m udp --sport 68 --dport 67 -j ACCEPT"
    );
    assert_eq!(
        rule_err("-p udp -m udp --tcp-flags SYN SYN"),
        "t.rules:2:24: unknown or unsupported option --tcp-flags"
    );
}

#[test]
fn mark_and_connmark_matches() {
    assert_eq!(
        one("-m mark --mark 1 -j ACCEPT"),
        "-A INPUT -m mark --mark 0x1 -j ACCEPT"
    );
    assert_eq!(
        one("-m mark ! --mark 0x10/0xF0 -j ACCEPT"),
        "-A INPUT -m mark ! --mark 0x10/0xf0 -j ACCEPT"
    );
    assert_eq!(
        one("-m connmark --mark 0x2/0xff -j ACCEPT"),
        "-A INPUT -m connmark --mark 0x2/0xff -j ACCEPT"
    );
    assert_eq!(rule_err("-m mark"), "t.rules:2:13: -m mark needs --mark");
    assert_eq!(
        rule_err("-m mark --mark 0x1/zz"),
        "t.rules:2:25: bad value zz (a 32-bit number, decimal or 0x hex)"
    );

    let rs = v4(&filter(
        ":INPUT DROP\n-A INPUT -m mark --mark 0x10/0xf0 -j ACCEPT\n-A INPUT -m connmark ! --mark 0x0 -j REJECT",
    ));
    let mut c = tcp4("192.0.2.2", "192.0.2.1", 1, 80);
    c.mark = 0x1f;
    assert_eq!(hit(&rs, &c), "1");
    c.mark = 0x2f;
    assert_eq!(hit(&rs, &c), "policy");
    c.ctmark = 7;
    assert_eq!(hit(&rs, &c), "2");
}

#[test]
fn mark_targets() {
    for (given, saved) in [
        ("--set-mark 1", "--set-xmark 0x1/0xffffffff"),
        ("--set-mark 0x1/0xf", "--set-xmark 0x1/0xf"),
        ("--set-xmark 0x1/0x3", "--set-xmark 0x1/0x3"),
        ("--and-mark 0xff", "--set-xmark 0x0/0xffffff00"),
        ("--or-mark 0x100", "--set-xmark 0x100/0x100"),
        ("--xor-mark 3", "--set-xmark 0x3/0x0"),
    ] {
        assert_eq!(
            one(&format!("-j MARK {given}")),
            format!("-A INPUT -j MARK {saved}")
        );
        assert_eq!(
            one(&format!("-j CONNMARK {given}")),
            format!("-A INPUT -j CONNMARK {saved}")
        );
    }
    assert_eq!(
        one("-j CONNMARK --save-mark"),
        "-A INPUT -j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff"
    );
    assert_eq!(
        one("-j CONNMARK --restore-mark --mask 0xff"),
        "-A INPUT -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff"
    );
    assert_eq!(
        one("-j CONNMARK --save-mark --ctmask 0xff00 --nfmask 0xff"),
        "-A INPUT -j CONNMARK --save-mark --nfmask 0xff --ctmask 0xff00"
    );
    assert_eq!(
        rule_err("-j MARK"),
        "t.rules:2:13: MARK needs one of --set-xmark, --set-mark, --and-mark, --or-mark, --xor-mark"
    );
    assert_eq!(
        rule_err("-j MARK --set-mark 1 --or-mark 2"),
        "t.rules:2:31: MARK takes one action; --or-mark conflicts with an earlier one"
    );
    assert_eq!(
        rule_err("-j MARK --and-mark 1/2"),
        "t.rules:2:29: bad value 1/2 (a 32-bit number, decimal or 0x hex)"
    );
    assert_eq!(
        rule_err("-j MARK --save-mark"),
        "t.rules:2:18: unknown or unsupported option --save-mark"
    );
    assert_eq!(
        rule_err("-j CONNMARK --set-mark 1 --nfmask 1"),
        "t.rules:2:13: --nfmask, --ctmask and --mask go only with --save-mark or --restore-mark"
    );
    assert_eq!(
        rule_err("-j CONNMARK --save-mark --mask 1 --ctmask 2"),
        "t.rules:2:43: --ctmask given twice"
    );
    // MARK works in every table (xt_MARK revision 2).
    v4("*raw\n-A PREROUTING -j MARK --set-mark 1\nCOMMIT\n");
}

#[test]
fn marks_flow_through_the_traversal() {
    let rs = v4("*mangle\n:PREROUTING ACCEPT\n-N classify\n\
         -A PREROUTING -j CONNMARK --restore-mark\n\
         -A PREROUTING -m mark ! --mark 0 -j ACCEPT\n\
         -A PREROUTING -j classify\n\
         -A PREROUTING -j CONNMARK --save-mark --nfmask 0xff --ctmask 0xff\n\
         -A classify -p tcp -m tcp --dport 22 -j MARK --set-mark 0x1/0xf\n\
         -A classify -m mark --mark 0x1/0xf -j RETURN\n\
         -A classify -j MARK --or-mark 0x2\n\
         COMMIT\n");
    let mut out = EvalOutput::default();
    let mut ssh = tcp4("192.0.2.2", "192.0.2.1", 1, 22);
    ssh.mark = 0x100;
    assert_eq!(
        rs.evaluate_full(Table::Mangle, Hook::Prerouting, &ssh, &mut out),
        Verdict::Accept
    );
    // restore (ctmark 0 → mark 0), classify sets 0x1 in the low nibble, save copies the low byte.
    assert_eq!(
        out.marks,
        Marks {
            mark: 0x1,
            ctmark: 0x1
        }
    );
    let web = tcp4("192.0.2.2", "192.0.2.1", 1, 80);
    rs.evaluate_full(Table::Mangle, Hook::Prerouting, &web, &mut out);
    assert_eq!(
        out.marks,
        Marks {
            mark: 0x2,
            ctmark: 0x2
        }
    );
    // An established connection's mark is restored and accepted at once.
    let mut again = web;
    again.ctmark = 0x2;
    rs.evaluate_full(Table::Mangle, Hook::Prerouting, &again, &mut out);
    assert_eq!(
        out.marks,
        Marks {
            mark: 0x2,
            ctmark: 0x2
        }
    );
    assert_eq!(out.rule.as_ref().unwrap().rule_num, 2);
}

#[test]
fn iprange() {
    assert_eq!(
        one("-m iprange --src-range 192.0.2.10-192.0.2.20 ! --dst-range 198.51.100.0-198.51.100.255 -j ACCEPT"),
        "-A INPUT -m iprange --src-range 192.0.2.10-192.0.2.20 ! --dst-range 198.51.100.0-198.51.100.255 -j ACCEPT"
    );
    assert_eq!(
        one6("-m iprange --dst-range 2001:db8::1-2001:db8::ff -j ACCEPT"),
        "-A INPUT -m iprange --dst-range 2001:db8::1-2001:db8::ff -j ACCEPT"
    );
    assert_eq!(
        rule_err("-m iprange --src-range 192.0.2.20-192.0.2.10"),
        "t.rules:2:33: bad address range 192.0.2.20-192.0.2.10 (FROM above TO)"
    );
    assert_eq!(
        rule_err("-m iprange --src-range 2001:db8::1-2001:db8::2"),
        "t.rules:2:33: address 2001:db8::1 is not of this ruleset's family"
    );
    assert_eq!(
        rule_err("-m iprange"),
        "t.rules:2:13: -m iprange needs --src-range or --dst-range"
    );

    let rs = v4(&filter(
        ":INPUT DROP\n-A INPUT -m iprange --src-range 192.0.2.10-192.0.2.20 -j ACCEPT\n-A INPUT -m iprange ! --dst-range 192.0.2.1-192.0.2.1 -j REJECT",
    ));
    assert_eq!(hit(&rs, &tcp4("192.0.2.10", "192.0.2.1", 1, 1)), "1");
    assert_eq!(hit(&rs, &tcp4("192.0.2.20", "192.0.2.1", 1, 1)), "1");
    assert_eq!(hit(&rs, &tcp4("192.0.2.21", "192.0.2.1", 1, 1)), "policy");
    assert_eq!(hit(&rs, &tcp4("192.0.2.21", "192.0.2.2", 1, 1)), "2");
}

#[test]
fn length() {
    assert_eq!(
        one("-m length --length 1000: -j DROP"),
        "-A INPUT -m length --length 1000:65535 -j DROP"
    );
    assert_eq!(
        one("-m length ! --length 64 -j DROP"),
        "-A INPUT -m length ! --length 64 -j DROP"
    );
    assert_eq!(
        rule_err("-m length --length 70000"),
        "t.rules:2:29: bad length 70000 (0..=65535)"
    );
    let rs = v4(&filter(
        ":INPUT ACCEPT\n-A INPUT -m length --length :99 -j DROP",
    ));
    let mut c = tcp4("192.0.2.2", "192.0.2.1", 1, 1);
    c.len = 99;
    assert_eq!(hit(&rs, &c), "1");
    c.len = 100;
    assert_eq!(hit(&rs, &c), "policy");
}

#[test]
fn ttl_and_hop_limit() {
    assert_eq!(
        one("-m ttl --ttl-eq 64 -j ACCEPT"),
        "-A INPUT -m ttl --ttl-eq 64 -j ACCEPT"
    );
    assert_eq!(
        one("-m ttl ! --ttl-eq 64 -j ACCEPT"),
        "-A INPUT -m ttl ! --ttl-eq 64 -j ACCEPT"
    );
    assert_eq!(
        one("-m ttl --ttl-lt 2 -j DROP"),
        "-A INPUT -m ttl --ttl-lt 2 -j DROP"
    );
    assert_eq!(
        one6("-m hl --hl-gt 250 -j DROP"),
        "-A INPUT -m hl --hl-gt 250 -j DROP"
    );
    assert_eq!(
        rule_err("-m ttl ! --ttl-gt 1"),
        "t.rules:2:17: --ttl-gt cannot be negated"
    );
    assert_eq!(
        rule_err("-m ttl --ttl-gt 1 --ttl-lt 9"),
        "t.rules:2:28: --ttl-lt cannot be combined with --ttl-gt"
    );
    assert_eq!(
        rule_err("-m hl"),
        "t.rules:2:13: -m hl is IPv6 only: use -m ttl"
    );
    assert_eq!(
        err6(&filter("-A INPUT -m ttl")),
        "t.rules:2:13: -m ttl is IPv4 only: use -m hl"
    );
    assert_eq!(
        rule_err("-m ttl --ttl-eq 256"),
        "t.rules:2:26: bad value 256 (0..=255)"
    );

    let rs = v4(&filter(
        ":INPUT ACCEPT\n-A INPUT -m ttl --ttl-lt 2 -j DROP\n-A INPUT -m ttl ! --ttl-eq 64 -j REJECT\n-A INPUT -m ttl --ttl-gt 63 -j DROP",
    ));
    let mut c = tcp4("192.0.2.2", "192.0.2.1", 1, 1);
    c.ttl = 1;
    assert_eq!(hit(&rs, &c), "1");
    c.ttl = 63;
    assert_eq!(hit(&rs, &c), "2");
    c.ttl = 64;
    assert_eq!(hit(&rs, &c), "3");
}

#[test]
fn limit() {
    assert_eq!(
        one("-m limit -j LOG"),
        "-A INPUT -m limit --limit 3/hour -j LOG"
    );
    assert_eq!(
        one("-m limit --limit 5/minute --limit-burst 10 -j LOG"),
        "-A INPUT -m limit --limit 5/min --limit-burst 10 -j LOG"
    );
    assert_eq!(
        one("-m limit --limit 2/s -j LOG"),
        "-A INPUT -m limit --limit 2/sec -j LOG"
    );
    assert_eq!(
        rule_err("-m limit --limit 5/week"),
        "t.rules:2:27: bad rate 5/week (N/sec, N/min, N/hour or N/day)"
    );
    assert_eq!(
        rule_err("-m limit --limit-burst 0"),
        "t.rules:2:33: bad burst 0 (1..=10000)"
    );
    assert_eq!(
        rule_err("-m limit ! --limit 1"),
        "t.rules:2:19: --limit cannot be negated"
    );

    // 1/sec, burst 2: two packets at once, then one per second, on the context's clock.
    let rs = v4(&filter(
        ":INPUT DROP\n-A INPUT -m limit --limit 1/sec --limit-burst 2 -j ACCEPT",
    ));
    let mut c = tcp4("192.0.2.2", "192.0.2.1", 1, 1);
    let mut verdicts = Vec::new();
    for t in [0u64, 1, 2, 999_999_999, 1_000_000_002, 1_000_000_003] {
        c.now_ns = 5_000_000_000 + t;
        verdicts.push(rs.evaluate(Table::Filter, Hook::Input, &c) == Verdict::Accept);
    }
    assert_eq!(verdicts, [true, true, false, false, true, false]);
    // The bucket is not part of the rule's identity.
    round_trip(&rs);
}

#[test]
fn addrtype() {
    assert_eq!(
        one("-m addrtype --src-type LOCAL ! --dst-type unicast,broadcast -j ACCEPT"),
        "-A INPUT -m addrtype --src-type LOCAL ! --dst-type UNICAST,BROADCAST -j ACCEPT"
    );
    assert_eq!(
        rule_err("-m addrtype --dst-type LOCAL,ELSEWHERE"),
        "t.rules:2:39: unknown address type ELSEWHERE"
    );
    assert_eq!(
        rule_err("-m addrtype --dst-type LOCAL --limit-iface-in"),
        "t.rules:2:39: option --limit-iface-in is not supported"
    );
    assert_eq!(
        rule_err("-m addrtype"),
        "t.rules:2:13: -m addrtype needs --src-type or --dst-type"
    );

    let rs = v4(&filter(
        ":INPUT ACCEPT\n-A INPUT -m addrtype --dst-type BROADCAST,MULTICAST -j DROP\n-A INPUT -m addrtype ! --dst-type LOCAL -j REJECT\n-A INPUT -m addrtype --src-type LOCAL -j DROP",
    ));
    let local = |ip: std::net::IpAddr| ip == "192.0.2.1".parse::<std::net::IpAddr>().unwrap();
    let mut c = tcp4("192.0.2.2", "192.0.2.1", 1, 1);
    c.local_addr = Some(&local);
    assert_eq!(hit(&rs, &c), "policy");
    c.dst = "224.0.0.251".parse().unwrap();
    assert_eq!(hit(&rs, &c), "1");
    c.dst = "255.255.255.255".parse().unwrap();
    assert_eq!(hit(&rs, &c), "1");
    c.dst = "192.0.2.9".parse().unwrap();
    assert_eq!(hit(&rs, &c), "2");
    c.dst = "192.0.2.1".parse().unwrap();
    c.src = "192.0.2.1".parse().unwrap();
    assert_eq!(hit(&rs, &c), "3");
    // Without a local-address callback only loopback is local.
    c.local_addr = None;
    assert_eq!(hit(&rs, &c), "2");
}

#[test]
fn marks_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rules/marks.rules");
    let rs = Ruleset::load(&path, Family::V4).unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(&path).unwrap();
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&rs.save(false)), strip(&text));
    round_trip(&rs);

    let mut out = EvalOutput::default();
    let mut new = tcp4("203.0.113.9", "198.51.100.1", 40000, 443);
    new.in_iface = Some("wan1");
    assert_eq!(
        rs.evaluate_full(Table::Mangle, Hook::Prerouting, &new, &mut out),
        Verdict::Accept
    );
    assert_eq!(out.marks, Marks { mark: 2, ctmark: 2 });

    let mut sip = tcp4("192.0.2.5", "203.0.113.9", 5060, 5060);
    sip.proto = 17;
    sip.out_iface = Some("wan0");
    sip.mark = 0x1;
    rs.evaluate_full(Table::Mangle, Hook::Postrouting, &sip, &mut out);
    assert_eq!(out.marks.mark, 0x11);

    let mut fwd = tcp4("192.0.2.5", "203.0.113.9", 40000, 443);
    fwd.in_iface = Some("lan0");
    fwd.out_iface = Some("wan0");
    fwd.ctmark = 0x102;
    assert_eq!(hit_in(&rs, Hook::Forward, &fwd), "filter FORWARD rule 1");
    fwd.ctmark = 0x101;
    assert_eq!(hit_in(&rs, Hook::Forward, &fwd), "filter FORWARD rule 2");

    let mut ack = tcp4("203.0.113.9", "198.51.100.1", 40000, 22);
    ack.tcp_flags = Some(0x10);
    assert_eq!(hit_in(&rs, Hook::Input, &ack), "filter INPUT rule 3");
    ack.tcp_flags = Some(0x02);
    assert_eq!(hit_in(&rs, Hook::Input, &ack), "filter INPUT rule 4");

    let mut ping = tcp4("203.0.113.9", "198.51.100.1", 0, 0);
    ping.proto = 1;
    ping.sport = None;
    ping.dport = None;
    ping.icmp_type_code = Some((8, 0));
    for i in 0..25 {
        let r = hit_in(&rs, Hook::Input, &ping);
        // burst 20 at one instant, then the rest falls through to LOGDROP (whose LOG is itself
        // limited, but the DROP is not).
        let want = if i < 20 {
            "filter INPUT rule 5"
        } else {
            "filter LOGDROP rule 2"
        };
        assert_eq!(r, want, "ping {i}");
    }
}

fn hit_in(rs: &Ruleset, hook: Hook, c: &PacketCtx) -> String {
    rs.evaluate_traced(Table::Filter, hook, c)
        .1
        .map_or_else(|| "-".into(), |r| r.to_string())
}
