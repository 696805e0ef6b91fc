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

/// The deciding nat-table rule and target for a packet.
fn nat_verdict(rs: &Ruleset, hook: Hook, c: &PacketCtx) -> (String, Option<NatTarget>) {
    let mut out = EvalOutput::default();
    assert_eq!(
        rs.evaluate_full(Table::Nat, hook, c, &mut out),
        Verdict::Accept
    );
    (
        out.rule.map_or_else(|| "-".into(), |r| r.to_string()),
        out.nat,
    )
}

fn to(addr: Option<&str>, ports: Option<(u16, u16)>) -> NatRange {
    NatRange {
        min_addr: addr.map(|a| a.parse().unwrap()),
        max_addr: addr.map(|a| a.parse().unwrap()),
        ports,
        random: false,
        random_fully: false,
        persistent: false,
    }
}

#[test]
fn home_gateway_nat_v4() {
    let rs = load("gateway.rules", Family::V4);
    // Port forward from the internet, then the filter lets the translated packet through.
    let mut web = tcp4("203.0.113.5", "198.51.100.2", 40000, 8443);
    web.in_iface = Some("wan0");
    assert_eq!(
        nat_verdict(&rs, Hook::Prerouting, &web),
        (
            "nat PREROUTING rule 2".into(),
            Some(NatTarget::Dnat(to(Some("192.0.2.10"), Some((443, 443)))))
        )
    );
    let mut fwd = web;
    fwd.dst = "192.0.2.10".parse().unwrap();
    fwd.dport = Some(443);
    fwd.out_iface = Some("lan0");
    assert_eq!(verdict(&rs, Hook::Forward, &fwd).0, Verdict::Accept);

    // LAN DNS is redirected to the router; LAN traffic out is masqueraded, UDP with --random.
    let mut dns = tcp4("192.0.2.50", "203.0.113.53", 40000, 53);
    dns.proto = 17;
    dns.in_iface = Some("lan0");
    assert_eq!(
        nat_verdict(&rs, Hook::Prerouting, &dns).1,
        Some(NatTarget::Redirect(to(None, Some((53, 53)))))
    );
    dns.in_iface = None;
    dns.out_iface = Some("wan0");
    let mut random = to(None, Some((1024, 65535)));
    random.random = true;
    assert_eq!(
        nat_verdict(&rs, Hook::Postrouting, &dns),
        (
            "nat POSTROUTING rule 2".into(),
            Some(NatTarget::Masquerade(random))
        )
    );
    let mut out = tcp4("192.0.2.50", "203.0.113.80", 40000, 80);
    out.out_iface = Some("wan0");
    assert_eq!(
        nat_verdict(&rs, Hook::Postrouting, &out).1,
        Some(NatTarget::Masquerade(to(None, None)))
    );
    // Hairpin: a LAN client reaching the public address is masqueraded toward the server.
    let mut hairpin = tcp4("192.0.2.50", "192.0.2.10", 40000, 443);
    hairpin.out_iface = Some("lan0");
    assert_eq!(
        nat_verdict(&rs, Hook::Postrouting, &hairpin).0,
        "nat POSTROUTING rule 1"
    );
    // Traffic between LAN hosts on other ports is not NATed.
    hairpin.dport = Some(22);
    assert_eq!(
        nat_verdict(&rs, Hook::Postrouting, &hairpin),
        ("nat POSTROUTING policy".into(), None)
    );
}

#[test]
fn home_gateway_nat_v6() {
    let rs = load("gateway6.rules", Family::V6);
    let mut web = tcp6("2001:db8:9::5", "2001:db8:ffff::2", 40000, 8443);
    web.in_iface = Some("wan0");
    assert_eq!(
        nat_verdict(&rs, Hook::Prerouting, &web).1,
        Some(NatTarget::Dnat(to(
            Some("2001:db8:1::10"),
            Some((443, 443))
        )))
    );
    let mut inbound = tcp6("2001:db8:9::5", "2001:db8:2::77", 40000, 22);
    inbound.in_iface = Some("wan0");
    assert_eq!(
        nat_verdict(&rs, Hook::Prerouting, &inbound).1,
        Some(NatTarget::Netmap {
            prefix: "fd00:43::/64".parse().unwrap()
        })
    );
    // Guests: TCP to a persistent address pool, anything else masqueraded (user chain).
    let mut guest = tcp6("fd00:42::9", "2001:db8:9::5", 40000, 443);
    guest.out_iface = Some("wan0");
    let mut pool = NatRange {
        min_addr: Some("2001:db8:ffff::4".parse().unwrap()),
        max_addr: Some("2001:db8:ffff::7".parse().unwrap()),
        ports: Some((1024, 65535)),
        random: false,
        random_fully: false,
        persistent: true,
    };
    assert_eq!(
        nat_verdict(&rs, Hook::Postrouting, &guest),
        (
            "nat guest_nat rule 1".into(),
            Some(NatTarget::Snat(pool.clone()))
        )
    );
    guest.proto = 17;
    pool.persistent = false;
    pool.random = true;
    assert_eq!(
        nat_verdict(&rs, Hook::Postrouting, &guest).1,
        Some(NatTarget::Snat(pool))
    );
    guest.proto = 58;
    assert_eq!(
        nat_verdict(&rs, Hook::Postrouting, &guest).1,
        Some(NatTarget::Masquerade(to(None, None)))
    );
    assert!(rs.save(false).contains(
        "-A guest_nat -p tcp -j SNAT --to-source [2001:db8:ffff::4-2001:db8:ffff::7]:1024-65535 --persistent\n"
    ));
}

#[test]
fn docker_host() {
    let rs = load("docker.rules", Family::V4);
    saves_identically("docker.rules", &rs);
    let local = |a: IpAddr| a == "198.51.100.7".parse::<IpAddr>().unwrap();

    // A published port: PREROUTING -> DOCKER -> DNAT to the container.
    let mut published = tcp4("203.0.113.5", "198.51.100.7", 40000, 8080);
    published.in_iface = Some("eth0");
    published.local_addr = Some(&local);
    assert_eq!(
        nat_verdict(&rs, Hook::Prerouting, &published),
        (
            "nat DOCKER rule 3".into(),
            Some(NatTarget::Dnat(to(Some("172.17.0.2"), Some((80, 80)))))
        )
    );
    // Containers reaching the published port of their own bridge are not DNATed again.
    let mut from_bridge = published;
    from_bridge.in_iface = Some("docker0");
    assert_eq!(
        nat_verdict(&rs, Hook::Prerouting, &from_bridge),
        ("nat PREROUTING policy".into(), None)
    );
    // Not a local address: not Docker's business.
    let mut transit = published;
    transit.dst = "203.0.113.80".parse().unwrap();
    assert_eq!(nat_verdict(&rs, Hook::Prerouting, &transit).1, None);
    // Locally generated, to the host's own address: OUTPUT -> DOCKER -> DNAT (UDP, second
    // network).
    let mut dns = tcp4("198.51.100.7", "198.51.100.7", 40000, 5353);
    dns.proto = 17;
    dns.local_addr = Some(&local);
    assert_eq!(
        nat_verdict(&rs, Hook::Output, &dns).1,
        Some(NatTarget::Dnat(to(Some("172.18.0.3"), Some((53, 53)))))
    );
    // Loopback is excluded from OUTPUT.
    dns.dst = "127.0.0.1".parse().unwrap();
    assert_eq!(nat_verdict(&rs, Hook::Output, &dns).1, None);

    // Containers going out are masqueraded, except on their own bridge.
    let mut egress = tcp4("172.17.0.2", "203.0.113.80", 40000, 443);
    egress.out_iface = Some("eth0");
    assert_eq!(
        nat_verdict(&rs, Hook::Postrouting, &egress),
        (
            "nat POSTROUTING rule 1".into(),
            Some(NatTarget::Masquerade(to(None, None)))
        )
    );
    egress.out_iface = Some("docker0");
    assert_eq!(nat_verdict(&rs, Hook::Postrouting, &egress).1, None);

    // The filter side: the DNATed packet is accepted by the DOCKER filter chain.
    let mut fwd = published;
    fwd.dst = "172.17.0.2".parse().unwrap();
    fwd.dport = Some(80);
    fwd.out_iface = Some("docker0");
    assert_eq!(
        verdict(&rs, Hook::Forward, &fwd),
        (Verdict::Accept, "filter DOCKER rule 1".into())
    );
    fwd.dport = Some(81);
    assert_eq!(
        verdict(&rs, Hook::Forward, &fwd),
        (Verdict::Drop, "filter FORWARD policy".into())
    );
}
