//! Realistic files as iptables-save / ip6tables-save print them: load, save back identically
//! (less the comments), and decide typical packets.

use super::*;

fn data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/rules")
        .join(name)
}

fn load(name: &str, family: Family) -> Ruleset {
    Ruleset::load(&data(name), family).unwrap_or_else(|e| panic!("{e}"))
}

/// The file without comment lines equals our save output without comment lines.
fn saves_identically(name: &str, rs: &Ruleset) {
    let text = std::fs::read_to_string(data(name)).unwrap();
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };
    assert_eq!(strip(&rs.save(false)), strip(&text), "{name}");
    round_trip(rs);
}

fn verdict(rs: &Ruleset, hook: Hook, c: &PacketCtx) -> (Verdict, String) {
    let (v, r) = rs.evaluate_traced(Table::Filter, hook, c);
    (v, r.map_or_else(|| "-".into(), |r| r.to_string()))
}

#[test]
fn home_gateway_v4() {
    let rs = load("gateway.rules", Family::V4);
    saves_identically("gateway.rules", &rs);

    let mut ssh = tcp4("192.0.2.50", "192.0.2.1", 40000, 22);
    ssh.in_iface = Some("lan0");
    assert_eq!(
        verdict(&rs, Hook::Input, &ssh),
        (Verdict::Accept, "filter lan_in rule 4".into())
    );

    let mut telnet = ssh;
    telnet.dport = Some(23);
    assert_eq!(
        verdict(&rs, Hook::Input, &telnet),
        (
            Verdict::Reject(RejectWith::TcpReset),
            "filter lan_in rule 6".into()
        )
    );

    let mut wan_ssh = tcp4("203.0.113.5", "198.51.100.1", 40000, 22);
    wan_ssh.in_iface = Some("wan0");
    let mut out = EvalOutput::default();
    assert_eq!(
        rs.evaluate_full(Table::Filter, Hook::Input, &wan_ssh, &mut out),
        Verdict::Drop
    );
    assert_eq!(out.rule.unwrap().to_string(), "filter LOGDROP rule 2");
    assert_eq!(&*out.logs[0].prefix, "fw-drop: ");

    let mut web = tcp4("203.0.113.5", "192.0.2.10", 40000, 443);
    web.in_iface = Some("wan0");
    web.out_iface = Some("lan0");
    assert_eq!(verdict(&rs, Hook::Forward, &web).1, "filter FORWARD rule 6");
    web.ctstate = CtState::ESTABLISHED;
    assert_eq!(verdict(&rs, Hook::Forward, &web).1, "filter FORWARD rule 1");

    let mut spoof = tcp4("10.1.2.3", "192.0.2.10", 40000, 443);
    spoof.in_iface = Some("wan0");
    spoof.out_iface = Some("lan0");
    assert_eq!(
        verdict(&rs, Hook::Forward, &spoof),
        (Verdict::Drop, "filter FORWARD rule 3".into())
    );

    let mut lo = tcp4("127.0.0.1", "127.0.0.1", 1, 2);
    lo.in_iface = Some("lo");
    assert_eq!(
        rs.evaluate(Table::Raw, Hook::Prerouting, &lo),
        Verdict::NoTrack
    );
    assert_eq!(
        rs.evaluate(Table::Raw, Hook::Prerouting, &ssh),
        Verdict::Accept
    );
}

#[test]
fn home_gateway_v6() {
    let rs = load("gateway6.rules", Family::V6);
    saves_identically("gateway6.rules", &rs);

    let mut ns = tcp6("fe80::1", "ff02::1:ff00:1", 0, 0);
    ns.proto = 58;
    ns.sport = None;
    ns.dport = None;
    ns.icmp_type_code = Some((135, 0));
    assert_eq!(
        verdict(&rs, Hook::Input, &ns),
        (Verdict::Accept, "filter INPUT rule 11".into())
    );
    ns.icmp_type_code = Some((134, 0));
    ns.src = "2001:db8::1".parse().unwrap();
    // Router advertisements only from link-local sources.
    assert_eq!(
        verdict(&rs, Hook::Input, &ns),
        (
            Verdict::Reject(RejectWith::Icmp6AdmProhibited),
            "filter INPUT rule 17".into()
        )
    );
    let mut dhcp = tcp6("fe80::1", "fe80::2", 547, 546);
    dhcp.proto = 17;
    dhcp.in_iface = Some("wan0");
    assert_eq!(verdict(&rs, Hook::Input, &dhcp).1, "filter INPUT rule 13");
    let mut web = tcp6("2001:db8:99::5", "2001:db8:1::10", 40000, 443);
    web.in_iface = Some("wan0");
    web.out_iface = Some("lan0");
    assert_eq!(
        verdict(&rs, Hook::Forward, &web),
        (Verdict::Accept, "filter FORWARD rule 9".into())
    );
    web.dport = Some(444);
    assert_eq!(
        verdict(&rs, Hook::Forward, &web).1,
        "filter FORWARD rule 10"
    );
}

#[test]
fn server_v4() {
    let rs = load("server.rules", Family::V4);
    saves_identically("server.rules", &rs);
    assert!(rs.has_table(Table::Nat));
    assert!(!rs.has_table(Table::Mangle));

    let banned = tcp4("203.0.113.66", "198.51.100.10", 50000, 22);
    assert_eq!(
        verdict(&rs, Hook::Input, &banned),
        (
            Verdict::Reject(RejectWith::IcmpPortUnreachable),
            "filter f2b-sshd rule 1".into()
        )
    );
    let near = tcp4("203.0.113.5", "198.51.100.10", 50000, 22);
    assert_eq!(verdict(&rs, Hook::Input, &near).1, "filter f2b-sshd rule 2");
    let fine = tcp4("192.0.2.5", "198.51.100.10", 50000, 22);
    assert_eq!(
        verdict(&rs, Hook::Input, &fine),
        (Verdict::Accept, "filter INPUT rule 5".into())
    );
    let smtp = tcp4("192.0.2.5", "198.51.100.10", 50000, 25);
    assert_eq!(
        verdict(&rs, Hook::Input, &smtp).0,
        Verdict::Reject(RejectWith::TcpReset)
    );
    let other = tcp4("192.0.2.5", "198.51.100.10", 50000, 26);
    assert_eq!(
        verdict(&rs, Hook::Input, &other).0,
        Verdict::Reject(RejectWith::IcmpHostProhibited)
    );

    let mut dns = tcp4("192.0.2.5", "198.51.100.10", 50000, 53);
    dns.proto = 17;
    assert_eq!(
        rs.evaluate(Table::Raw, Hook::Prerouting, &dns),
        Verdict::NoTrack
    );
    dns.ctstate = CtState::UNTRACKED;
    assert_eq!(verdict(&rs, Hook::Input, &dns).1, "filter INPUT rule 3");

    let mut frag = tcp4("192.0.2.5", "198.51.100.10", 0, 0);
    frag.sport = None;
    frag.dport = None;
    frag.fragment = true;
    assert_eq!(
        verdict(&rs, Hook::Input, &frag),
        (Verdict::Drop, "filter INPUT rule 13".into())
    );
    // nat chains exist and accept.
    assert_eq!(
        rs.evaluate_traced(Table::Nat, Hook::Postrouting, &fine)
            .1
            .unwrap()
            .to_string(),
        "nat POSTROUTING policy"
    );
}

#[test]
fn server_v6() {
    let rs = load("server6.rules", Family::V6);
    saves_identically("server6.rules", &rs);
    let mut invalid = tcp6("2001:db8::5", "2001:db8::10", 1, 22);
    invalid.ctstate = CtState::INVALID;
    assert_eq!(
        rs.evaluate(Table::Mangle, Hook::Prerouting, &invalid),
        Verdict::Drop
    );

    let ssh = tcp6("2001:db8::5", "2001:db8::10", 40000, 22);
    assert_eq!(
        verdict(&rs, Hook::Input, &ssh),
        (Verdict::Accept, "filter services rule 1".into())
    );
    let pg = tcp6("2001:db8:ffff:1::5", "2001:db8::10", 40000, 5432);
    assert_eq!(verdict(&rs, Hook::Input, &pg).1, "filter services rule 4");
    let pg_far = tcp6("2001:db8:fffe::5", "2001:db8::10", 40000, 5432);
    // -g services: the end of services applies INPUT's policy, skipping INPUT's REJECT.
    assert_eq!(
        verdict(&rs, Hook::Input, &pg_far),
        (Verdict::Drop, "filter INPUT policy".into())
    );
    let alt_outside = tcp6("2001:db9::5", "2001:db8::10", 40000, 8080);
    assert_eq!(
        verdict(&rs, Hook::Input, &alt_outside),
        (Verdict::Drop, "filter services rule 5".into())
    );
    let alt_inside = tcp6("2001:db8:5::5", "2001:db8::10", 40000, 8080);
    assert_eq!(
        verdict(&rs, Hook::Input, &alt_inside).1,
        "filter services rule 6"
    );
    let mut est = tcp6("2001:db8::5", "2001:db8::10", 40000, 9999);
    est.ctstate = CtState::ESTABLISHED;
    assert_eq!(verdict(&rs, Hook::Input, &est).1, "filter INPUT rule 2");
    let mut too_big = tcp6("2001:db8::5", "2001:db8::10", 0, 0);
    too_big.proto = 58;
    too_big.icmp_type_code = Some((1, 3));
    too_big.ctstate = CtState::INVALID;
    assert_eq!(
        verdict(&rs, Hook::Input, &too_big).0,
        Verdict::Reject(RejectWith::Icmp6PortUnreachable)
    );
}

#[test]
fn saved_counters_restore_on_request() {
    let rs = Ruleset::load_with(
        &data("counters.rules"),
        Family::V4,
        LoadOptions { counters: true },
    )
    .unwrap();
    assert_eq!(
        rs.counters(Table::Filter, "INPUT", 0),
        Some((1500, 120_000))
    );
    assert_eq!(rs.counters(Table::Filter, "FORWARD", 1), Some((3, 180)));
    let text = std::fs::read_to_string(data("counters.rules")).unwrap();
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&rs.save(true)), strip(&text));
}
