//! The TRACE and TCPMSS targets: syntax, errors, and what evaluation reports.

use super::*;

fn mangle(lines: &str) -> String {
    format!(
        "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n\
         :OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n{lines}\nCOMMIT\n"
    )
}

fn rules_of(rs: &Ruleset) -> Vec<String> {
    rs.save(false)
        .lines()
        .filter(|l| l.starts_with("-A"))
        .map(str::to_string)
        .collect()
}

#[test]
fn save_forms_match_iptables_save() {
    // The expected lines are what iptables-save 1.8.9 printed for the same input.
    let rs = v4("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         -A PREROUTING -p tcp --dport 80 -j TRACE\nCOMMIT\n");
    round_trip(&rs);
    assert_eq!(
        rules_of(&rs),
        ["-A PREROUTING -p tcp -m tcp --dport 80 -j TRACE"]
    );
    let rs = v4(&mangle(
        "-A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu\n\
         -A POSTROUTING -o eth1 -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1400\n\
         -A INPUT -p tcp -j TCPMSS --set-mss 1400",
    ));
    round_trip(&rs);
    assert_eq!(
        rules_of(&rs),
        [
            "-A INPUT -p tcp -j TCPMSS --set-mss 1400",
            "-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu",
            "-A POSTROUTING -o eth1 -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1400",
        ]
    );
    // iptables-nft accepts TRACE outside raw; so do we.
    let rs = v6(&filter("-A INPUT -j TRACE"));
    round_trip(&rs);
    assert_eq!(rules_of(&rs), ["-A INPUT -j TRACE"]);
}

#[test]
fn bad_tcpmss_rules_are_refused_with_their_position() {
    let e = |l: &str| err4(&mangle(l));
    assert_eq!(
        e("-A FORWARD -p tcp -j TCPMSS"),
        "t.rules:7:22: TCPMSS needs --set-mss or --clamp-mss-to-pmtu"
    );
    assert_eq!(
        e("-A FORWARD -p tcp -j TCPMSS --set-mss 1400 --clamp-mss-to-pmtu"),
        "t.rules:7:44: TCPMSS takes one of --set-mss and --clamp-mss-to-pmtu"
    );
    assert_eq!(
        e("-A FORWARD -p tcp -j TCPMSS --set-mss 70000"),
        "t.rules:7:39: --set-mss needs 0-65535, not \"70000\""
    );
    assert_eq!(
        e("-A FORWARD -p tcp -j TCPMSS --set-mss x"),
        "t.rules:7:39: --set-mss needs 0-65535, not \"x\""
    );
    assert_eq!(
        e("-A FORWARD -p udp -j TCPMSS --set-mss 1400"),
        "t.rules:7:22: TCPMSS needs -p tcp (not negated)"
    );
    assert_eq!(
        e("-A FORWARD ! -p tcp -j TCPMSS --set-mss 1400"),
        "t.rules:7:24: TCPMSS needs -p tcp (not negated)"
    );
    assert_eq!(
        e("-A INPUT -p tcp --syn -j TCPMSS --clamp-mss-to-pmtu"),
        "t.rules:7:33: --clamp-mss-to-pmtu is not valid in chain INPUT (only in FORWARD, OUTPUT, \
         POSTROUTING)"
    );
    // Through a user chain the check happens at COMMIT, naming the rule.
    let msg = err4(
        "*mangle\n:PREROUTING ACCEPT [0:0]\n:CLAMP - [0:0]\n-A PREROUTING -j CLAMP\n\
         -A CLAMP -p tcp --syn -j TCPMSS --clamp-mss-to-pmtu\nCOMMIT\n",
    );
    assert!(
        msg.contains("PREROUTING") && msg.contains("TCPMSS --clamp-mss-to-pmtu"),
        "{msg}"
    );
    assert!(msg.starts_with("t.rules:"), "{msg}");
    assert_eq!(
        err4(&filter("-A INPUT -j TRACE --level 4")),
        "t.rules:2:19: unknown or unsupported option --level"
    );
}

/// Evaluates with tracing on and returns (chain, kind, rule number, verdict) per step.
fn steps(
    rs: &Ruleset,
    table: Table,
    hook: Hook,
    ctx: &PacketCtx,
) -> Vec<(String, &'static str, usize, String)> {
    let mut out = EvalOutput::default();
    rs.evaluate_full(table, hook, ctx, &mut out);
    assert!(out.trace || out.trace_steps.is_empty());
    out.trace_steps
        .iter()
        .map(|s| {
            (
                s.rule.chain.to_string(),
                s.kind.name(),
                s.rule.rule_num,
                s.verdict.clone(),
            )
        })
        .collect()
}

fn step(
    chain: &str,
    kind: &'static str,
    n: usize,
    verdict: &str,
) -> (String, &'static str, usize, String) {
    (chain.into(), kind, n, verdict.into())
}

#[test]
fn a_traced_packet_reports_every_rule_it_hits() {
    let rs = v4("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         -A PREROUTING -p udp -j ACCEPT\n\
         -A PREROUTING -p tcp --dport 22 -j TRACE\n\
         -A PREROUTING -p tcp -j MARK --set-mark 7\nCOMMIT\n\
         *filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:SSH - [0:0]\n\
         -A INPUT -p tcp -j SSH\n\
         -A INPUT -p icmp -j ACCEPT\n\
         -A SSH -s 203.0.113.0/24 -j RETURN\n\
         -A SSH -p tcp --dport 22 -j LOG\nCOMMIT\n");
    let mut ctx = tcp4("192.0.2.2", "192.0.2.1", 40000, 22);
    let mut out = EvalOutput::default();
    rs.evaluate_full(Table::Raw, Hook::Prerouting, &ctx, &mut out);
    assert!(out.trace, "the TRACE rule marks the packet");
    // The TRACE rule itself is not reported (as in the kernel); the rules after it are,
    // then the policy.
    let raw = out.trace_steps.clone();
    assert_eq!(raw.len(), 2, "{raw:?}");
    assert_eq!(raw[0].rule.rule_num, 3);
    assert_eq!(raw[0].verdict, "CONTINUE");
    assert_eq!(raw[1].kind, TraceKind::Policy);
    assert_eq!(raw[1].verdict, "ACCEPT");
    assert_eq!(
        rs.rule_text(&raw[0].rule).as_deref(),
        Some("-A PREROUTING -p tcp -j MARK --set-xmark 0x7/0xffffffff")
    );

    // Later tables see the mark through ctx.trace.
    ctx.trace = true;
    assert_eq!(
        steps(&rs, Table::Filter, Hook::Input, &ctx),
        [
            step("INPUT", "rule", 1, "JUMP SSH"),
            step("SSH", "rule", 2, "CONTINUE"),
            step("SSH", "return", 3, "RETURN"),
            step("INPUT", "policy", 0, "DROP"),
        ]
    );
    let from_doc = tcp4("203.0.113.9", "192.0.2.1", 40000, 22);
    let mut traced = from_doc;
    traced.trace = true;
    assert_eq!(
        steps(&rs, Table::Filter, Hook::Input, &traced),
        [
            step("INPUT", "rule", 1, "JUMP SSH"),
            step("SSH", "rule", 1, "RETURN"),
            step("INPUT", "policy", 0, "DROP"),
        ]
    );

    // An untraced packet reports nothing, and the output is reset between evaluations.
    let plain = tcp4("192.0.2.2", "192.0.2.1", 40000, 80);
    let mut o = EvalOutput::default();
    rs.evaluate_full(Table::Filter, Hook::Input, &ctx, &mut o);
    assert!(!o.trace_steps.is_empty());
    rs.evaluate_full(Table::Filter, Hook::Input, &plain, &mut o);
    assert!(!o.trace && o.trace_steps.is_empty());
}

#[test]
fn tcpmss_hits_are_collected_in_order() {
    let rs = v4(&mangle(
        "-A FORWARD -p tcp --syn -j TCPMSS --set-mss 1400\n\
         -A FORWARD -p tcp --syn -d 198.51.100.0/24 -j TCPMSS --clamp-mss-to-pmtu\n\
         -A FORWARD -p tcp --syn -j ACCEPT\n\
         -A FORWARD -p tcp --syn -j TCPMSS --set-mss 1000",
    ));
    let syn = tcp4("192.0.2.2", "198.51.100.7", 40000, 443);
    let mut out = EvalOutput::default();
    rs.evaluate_full(Table::Mangle, Hook::Forward, &syn, &mut out);
    assert_eq!(out.tcpmss, [TcpMss::Set(1400), TcpMss::ClampToPmtu]);
    let other = tcp4("192.0.2.2", "203.0.113.7", 40000, 443);
    rs.evaluate_full(Table::Mangle, Hook::Forward, &other, &mut out);
    assert_eq!(out.tcpmss, [TcpMss::Set(1400)]);
    let mut ack = syn;
    ack.tcp_flags = Some(0x10);
    rs.evaluate_full(Table::Mangle, Hook::Forward, &ack, &mut out);
    assert!(out.tcpmss.is_empty());
}

#[test]
fn ct_zone_and_helper() {
    let raw =
        |l: &str| format!("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n{l}\nCOMMIT\n");
    // Save forms as iptables-save 1.8.9 printed them.
    let rs = v4(&raw(
        "-A PREROUTING -i lan1 -j CT --zone 1\n-A PREROUTING -i lan2 -j CT --zone 65535\n\
         -A OUTPUT -j CT --zone 0\n-A PREROUTING -j CT --notrack",
    ));
    round_trip(&rs);
    assert_eq!(
        rules_of(&rs),
        [
            "-A PREROUTING -i lan1 -j CT --zone 1",
            "-A PREROUTING -i lan2 -j CT --zone 65535",
            "-A PREROUTING -j CT --notrack",
            "-A OUTPUT -j CT --zone 0",
        ]
    );
    // The last zone hit wins and the traversal goes on (CT does not decide).
    let rs = v4(&raw(
        "-A PREROUTING -s 192.0.2.0/24 -j CT --zone 1\n-A PREROUTING -p tcp -j CT --zone 2\n\
         -A PREROUTING -p tcp --dport 9 -j DROP",
    ));
    let mut out = EvalOutput::default();
    let udp = {
        let mut c = tcp4("192.0.2.2", "198.51.100.1", 1, 53);
        c.proto = 17;
        c.tcp_flags = None;
        c
    };
    assert_eq!(
        rs.evaluate_full(Table::Raw, Hook::Prerouting, &udp, &mut out),
        Verdict::Accept
    );
    assert_eq!(out.ct_zone, Some(1));
    let t = tcp4("192.0.2.2", "198.51.100.1", 1, 9);
    assert_eq!(
        rs.evaluate_full(Table::Raw, Hook::Prerouting, &t, &mut out),
        Verdict::Drop
    );
    assert_eq!(out.ct_zone, Some(2));
    let other = tcp4("203.0.113.2", "198.51.100.1", 1, 80);
    rs.evaluate_full(Table::Raw, Hook::Prerouting, &other, &mut out);
    assert_eq!(out.ct_zone, Some(2));
    let mut o2 = EvalOutput::default();
    let v6rs = v6(&raw("-A PREROUTING -s 2001:db8::/32 -j CT --zone 7"));
    v6rs.evaluate_full(
        Table::Raw,
        Hook::Prerouting,
        &tcp6("2001:db8:9::1", "2001:db8::2", 1, 2),
        &mut o2,
    );
    assert_eq!(o2.ct_zone, Some(7));
    rs.evaluate_full(Table::Raw, Hook::Prerouting, &udp, &mut o2);
    assert_eq!(o2.ct_zone, Some(1), "reset between evaluations");

    let e = |l: &str| err4(&raw(l));
    assert_eq!(
        e("-A PREROUTING -j CT --zone 65536"),
        "t.rules:4:28: --zone needs 0-65535, not \"65536\""
    );
    assert_eq!(
        e("-A PREROUTING -j CT --zone mark"),
        "t.rules:4:28: CT --zone mark is not supported (a numeric zone 0-65535 only)"
    );
    assert_eq!(
        e("-A PREROUTING -j CT --zone 1 --zone 2"),
        "t.rules:4:30: --zone given twice"
    );
    assert_eq!(
        e("-A PREROUTING -j CT --notrack --zone 1"),
        "t.rules:4:31: CT --notrack cannot be combined with --zone"
    );
    assert_eq!(
        e("-A PREROUTING -p tcp --dport 70 -j CT --helper gopher"),
        "t.rules:4:48: CT --helper: no conntrack helper named \"gopher\" (expected one of: \
         ftp, tftp, talk, ntalk, RAS, Q.931, H.245)"
    );
    assert_eq!(
        e("-A PREROUTING -j CT --helper ftp"),
        "t.rules:4:30: CT --helper ftp needs -p tcp (the helper's protocol, not inverted)"
    );
    assert_eq!(
        e("-A PREROUTING -p udp -j CT --helper ftp"),
        "t.rules:4:37: CT --helper ftp needs -p tcp (the helper's protocol, not inverted)"
    );
    assert_eq!(
        e("-A PREROUTING ! -p tcp -j CT --helper ftp"),
        "t.rules:4:39: CT --helper ftp needs -p tcp (the helper's protocol, not inverted)"
    );
    assert_eq!(
        e("-A PREROUTING -p tcp -j CT --notrack --helper ftp"),
        "t.rules:4:47: CT --notrack cannot be combined with --helper"
    );
    assert_eq!(
        e("-A PREROUTING -p tcp -j CT --helper ftp --helper ftp"),
        "t.rules:4:41: --helper given twice"
    );
    assert_eq!(
        e("-A PREROUTING -j CT --timeout tcp-slow"),
        "t.rules:4:21: CT option --timeout is not supported (only --notrack, --zone and --helper)"
    );
    assert_eq!(
        err4(&filter("-A INPUT -j CT --zone 1")),
        "t.rules:2:13: target CT is only valid in the raw table, not filter"
    );
}

#[test]
fn ct_helper_attaches_and_saves_as_iptables() {
    let raw =
        |l: &str| format!("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n{l}\nCOMMIT\n");
    // Save forms as iptables-save 1.8.9 prints them (--helper before --zone).
    let rs = v4(&raw(
        "-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp\n\
         -A PREROUTING -p udp -m udp --dport 69 -j CT --zone 3 --helper tftp",
    ));
    round_trip(&rs);
    assert_eq!(
        rules_of(&rs),
        [
            "-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp",
            "-A PREROUTING -p udp -m udp --dport 69 -j CT --helper tftp --zone 3",
        ]
    );
    assert!(rs.names_helpers());
    assert!(!v4(&raw("-A PREROUTING -j CT --zone 1")).names_helpers());
    let mut out = EvalOutput::default();
    let ftp = tcp4("192.0.2.2", "198.51.100.1", 40000, 21);
    rs.evaluate_full(Table::Raw, Hook::Prerouting, &ftp, &mut out);
    assert_eq!((out.ct_helper, out.ct_zone), (Some("ftp"), None));
    let web = tcp4("192.0.2.2", "198.51.100.1", 40000, 80);
    rs.evaluate_full(Table::Raw, Hook::Prerouting, &web, &mut out);
    assert_eq!(out.ct_helper, None, "reset between evaluations");
}

#[test]
fn helper_match_names_the_masters_helper() {
    let rs = v4(&filter(
        "-A FORWARD -m helper --helper ftp -j ACCEPT\n\
         -A FORWARD -m helper ! --helper tftp -j DROP\n\
         -A FORWARD -m helper --helper \"Q.931\" -j ACCEPT\n\
         -A FORWARD -m helper --helper ftp-2121 -j ACCEPT",
    ));
    round_trip(&rs);
    assert_eq!(
        rules_of(&rs),
        [
            "-A FORWARD -m helper --helper ftp -j ACCEPT",
            "-A FORWARD -m helper ! --helper tftp -j DROP",
            "-A FORWARD -m helper --helper \"Q.931\" -j ACCEPT",
            "-A FORWARD -m helper --helper ftp-2121 -j ACCEPT",
        ]
    );
    let tuples = [conntrack::tuple::Tuple {
        src: "198.51.100.1".parse().unwrap(),
        dst: "192.0.2.2".parse().unwrap(),
        src_id: 20,
        dst_id: 50000,
        proto: 6,
        zone: 0,
    }; 2];
    let with = |master: Option<&'static str>| {
        let mut c = tcp4("198.51.100.1", "192.0.2.2", 20, 50000);
        c.conn = Some(crate::ConnView {
            tuples: &tuples,
            status: 0,
            reply: false,
            expires_in: 100,
            counters: [(1, 60), (0, 0)],
            master_helper: master,
        });
        rs.evaluate_traced(Table::Filter, Hook::Forward, &c)
            .1
            .map(|r| r.rule_num)
    };
    // An FTP data connection: the first rule.
    assert_eq!(with(Some("ftp")), Some(1));
    // A TFTP one: not ftp, and "! tftp" does not match it either; the policy decides.
    assert_eq!(with(Some("tftp")), Some(0));
    // A connection no helper expected matches none of them, `!` included.
    assert_eq!(with(None), Some(0));
    // "ftp-2121" compares the helper's name only: an ftp data connection.
    let only_last = v4(&filter("-A FORWARD -m helper --helper ftp-2121 -j ACCEPT"));
    let mut c = tcp4("198.51.100.1", "192.0.2.2", 20, 50000);
    c.conn = Some(crate::ConnView {
        tuples: &tuples,
        status: 0,
        reply: false,
        expires_in: 100,
        counters: [(1, 60), (0, 0)],
        master_helper: Some("ftp"),
    });
    assert_eq!(
        only_last.evaluate(Table::Filter, Hook::Forward, &c),
        Verdict::Accept
    );
}
