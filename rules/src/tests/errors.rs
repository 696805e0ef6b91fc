//! Every load error names file:line:column of the offending token.

use super::*;

/// The error for one INPUT rule in a filter table (the rule is on line 2; its options start at
/// column 10).
fn rule_err(rule: &str) -> String {
    err4(&filter(&format!("-A INPUT {rule}")))
}

fn rule_err6(rule: &str) -> String {
    err6(&filter(&format!("-A INPUT {rule}")))
}

#[test]
fn unknown_and_unsupported_options() {
    assert_eq!(
        rule_err("--foo -j DROP"),
        "t.rules:2:10: unknown or unsupported option --foo"
    );
    assert_eq!(
        rule_err("-p tcp --dport 22 --bar 1 -j DROP"),
        "t.rules:2:28: unknown or unsupported option --bar"
    );
    assert_eq!(
        rule_err("-m set --match-set blocked src"),
        "t.rules:2:13: unsupported match module set"
    );
    assert_eq!(
        rule_err("-m conntrack --ctzone 1"),
        "t.rules:2:23: option --ctzone is not supported"
    );
    assert_eq!(
        rule_err("-j DROP extra"),
        "t.rules:2:18: unexpected argument extra"
    );
    assert_eq!(
        rule_err("-j LOG --log-foo"),
        "t.rules:2:17: unknown or unsupported option --log-foo"
    );
    // Target options only after their target.
    assert_eq!(
        rule_err("--reject-with tcp-reset -j REJECT"),
        "t.rules:2:10: unknown or unsupported option --reject-with"
    );
    assert_eq!(
        err4("*raw\n-A PREROUTING -j CT --zone-orig 1\nCOMMIT\n"),
        "t.rules:2:21: CT option --zone-orig is not supported (one zone for both directions: \
         --zone N)"
    );
    assert_eq!(
        err4("*raw\n-A PREROUTING -j CT\nCOMMIT\n"),
        "t.rules:2:18: CT needs --notrack, --zone or --helper"
    );
}

#[test]
fn bad_addresses() {
    assert_eq!(
        rule_err("-s 192.0.2.300 -j DROP"),
        "t.rules:2:13: bad IPv4 address 192.0.2.300 (host names are not resolved)"
    );
    assert_eq!(
        rule_err("-d 192.0.2.0/33 -j DROP"),
        "t.rules:2:13: bad prefix length /33"
    );
    assert_eq!(
        rule_err("-s 192.0.2.1,192.0.2.2 -j DROP"),
        "t.rules:2:13: address lists (192.0.2.1,192.0.2.2) are not in iptables-save format: write one rule per address"
    );
    assert_eq!(
        rule_err("-s example.com -j DROP"),
        "t.rules:2:13: bad IPv4 address example.com (host names are not resolved)"
    );
    assert_eq!(
        rule_err("-s 2001:db8::1 -j DROP"),
        "t.rules:2:13: bad IPv4 address 2001:db8::1 (host names are not resolved)"
    );
    assert_eq!(
        rule_err6("-d 192.0.2.1 -j DROP"),
        "t.rules:2:13: bad IPv6 address 192.0.2.1 (host names are not resolved)"
    );
    assert_eq!(
        rule_err("-s 1.2.3.4/255.0.x.0"),
        "t.rules:2:13: bad IPv4 mask 255.0.x.0"
    );
    assert_eq!(rule_err("-s"), "t.rules:2:10: option -s needs a value");
}

#[test]
fn bad_ports_and_protocols() {
    assert_eq!(
        rule_err("-p tcp --dport 65536 -j DROP"),
        "t.rules:2:25: bad port 65536 (a number 0..=65535)"
    );
    assert_eq!(
        rule_err("-p tcp --dport ssh -j DROP"),
        "t.rules:2:25: bad port ssh (a number 0..=65535)"
    );
    assert_eq!(
        rule_err("-p udp -m udp --sport 90:80 -j DROP"),
        "t.rules:2:32: bad port range 90:80 (first port above the last)"
    );
    assert_eq!(
        rule_err("-p tcpp -j DROP"),
        "t.rules:2:13: unknown protocol tcpp"
    );
    assert_eq!(
        rule_err("-p 256 -j DROP"),
        "t.rules:2:13: unknown protocol 256"
    );
    assert_eq!(
        rule_err("! -p all -j DROP"),
        "t.rules:2:15: ! -p all would never match"
    );
}

#[test]
fn port_options_need_a_protocol() {
    assert_eq!(
        rule_err("--dport 22 -j ACCEPT"),
        "t.rules:2:10: --dport needs -p tcp, udp, udplite, sctp or dccp before it"
    );
    assert_eq!(
        rule_err("-p icmp --dport 22 -j ACCEPT"),
        "t.rules:2:18: --dport needs -p tcp, udp, udplite, sctp or dccp before it"
    );
    // Options of the implicit module come after -p, as in iptables.
    assert_eq!(
        rule_err("--sport 1 -p tcp"),
        "t.rules:2:10: --sport needs -p tcp, udp, udplite, sctp or dccp before it"
    );
    assert_eq!(
        rule_err("! -p tcp --dport 22 -j ACCEPT"),
        "t.rules:2:19: --dport needs -p tcp, udp, udplite, sctp or dccp before it"
    );
    assert_eq!(
        rule_err("-m tcp --dport 22"),
        "t.rules:2:13: match tcp needs -p tcp (not negated)"
    );
    assert_eq!(
        rule_err("-p udp -m tcp --dport 22"),
        "t.rules:2:20: match tcp needs -p tcp (not negated)"
    );
    assert_eq!(
        rule_err("--icmp-type 8"),
        "t.rules:2:10: --icmp-type needs -p icmp before it"
    );
    assert_eq!(
        rule_err("-m icmp6"),
        "t.rules:2:13: -m icmp6 is IPv6 only: use -m icmp"
    );
    assert_eq!(
        rule_err6("-m icmp"),
        "t.rules:2:13: -m icmp is IPv4 only: use -m icmp6"
    );
    assert_eq!(
        rule_err6("-p ipv6-icmp -m icmp6"),
        "t.rules:2:26: -m icmp6 needs --icmpv6-type"
    );
    assert_eq!(
        rule_err("-p icmp --icmp-type bogus"),
        "t.rules:2:30: unknown ICMP type bogus (a name, a number, or type/code)"
    );
    assert_eq!(
        rule_err("--state NEW"),
        "t.rules:2:10: --state needs -m state before it"
    );
}

#[test]
fn states_and_modules() {
    assert_eq!(
        rule_err("-m conntrack --ctstate NEW,BOGUS -j DROP"),
        "t.rules:2:37: unknown state BOGUS"
    );
    assert_eq!(
        rule_err("-m state --state NEW,SNAT -j DROP"),
        "t.rules:2:31: unknown state SNAT"
    );
    assert_eq!(
        rule_err("-m state --state NEW,"),
        "t.rules:2:31: empty state in the list"
    );
    assert_eq!(
        rule_err("-m state -j DROP"),
        "t.rules:2:13: -m state needs --state"
    );
    assert_eq!(
        rule_err("-m conntrack"),
        "t.rules:2:13: -m conntrack needs --ctstate or another --ct option"
    );
    assert_eq!(
        rule_err("-m comment"),
        "t.rules:2:13: -m comment needs --comment"
    );
    assert_eq!(
        rule_err("-m comment ! --comment x"),
        "t.rules:2:21: --comment cannot be negated"
    );
    assert_eq!(
        rule_err("-m state --state NEW --state INVALID"),
        "t.rules:2:31: --state given twice"
    );
    assert_eq!(
        rule_err(&format!("-m comment --comment {}", "x".repeat(256))),
        "t.rules:2:31: comment longer than 255 bytes"
    );
}

#[test]
fn negation_forms() {
    assert_eq!(
        rule_err("-s ! 192.0.2.1 -j DROP"),
        "t.rules:2:13: the old `-s ! value` form is not supported: write `! -s value`"
    );
    assert_eq!(rule_err("! ! -s 192.0.2.1"), "t.rules:2:10: ! given twice");
    assert_eq!(
        rule_err("-j DROP !"),
        "t.rules:2:18: ! at the end of the rule negates nothing"
    );
    assert_eq!(rule_err("! -m tcp"), "t.rules:2:10: -m cannot be negated");
    assert_eq!(rule_err("! -j DROP"), "t.rules:2:10: -j cannot be negated");
    assert_eq!(
        rule_err("-j REJECT ! --reject-with tcp-reset"),
        "t.rules:2:20: --reject-with cannot be negated"
    );
}

#[test]
fn duplicates() {
    assert_eq!(
        rule_err("-s 192.0.2.1 -s 192.0.2.2"),
        "t.rules:2:23: -s given twice"
    );
    assert_eq!(
        rule_err("-p tcp --protocol udp"),
        "t.rules:2:17: --protocol given twice"
    );
    assert_eq!(
        rule_err("-j DROP -j ACCEPT"),
        "t.rules:2:18: more than one target (-j or -g)"
    );
    assert_eq!(
        rule_err("-p tcp --dport 1 --destination-port 2"),
        "t.rules:2:27: --destination-port given twice"
    );
}

#[test]
fn structure_errors() {
    assert_eq!(
        err4("*filter\n-A INPUT -j ACCEPT\n"),
        "t.rules:1:1: table filter opened here has no COMMIT"
    );
    assert_eq!(
        err4("# x\n*filter\n*nat\nCOMMIT\n"),
        "t.rules:3:1: *nat starts before COMMIT of table filter (line 2)"
    );
    assert_eq!(
        err4("-A INPUT -j ACCEPT\n"),
        "t.rules:1:1: -A outside a table: start one with *filter"
    );
    assert_eq!(
        err4("COMMIT\n"),
        "t.rules:1:1: COMMIT outside a table: start one with *filter"
    );
    assert_eq!(
        err4("*security\nCOMMIT\n"),
        "t.rules:1:1: unsupported table security (raw, mangle, nat or filter)"
    );
    assert_eq!(
        err4("*filter\nCOMMIT\n*filter\nCOMMIT\n"),
        "t.rules:3:1: table filter appears twice"
    );
    assert_eq!(
        err4("*filter\nCOMMIT now\n"),
        "t.rules:2:8: unexpected text after COMMIT"
    );
    assert_eq!(
        err4(&filter("-D INPUT 1")),
        "t.rules:2:1: command -D is not supported in a ruleset file (only -N, -A, -I)"
    );
    assert_eq!(
        err4(&filter("-t nat -A INPUT")),
        "t.rules:2:1: -t is not allowed in a ruleset file: use *table sections"
    );
    assert_eq!(
        err4(&filter("ACCEPT")),
        "t.rules:2:1: unexpected ACCEPT: expected -A, -I or -N"
    );
    assert_eq!(
        err4(&filter("-A INPUT -m comment --comment \"open")),
        "t.rules:2:31: unterminated quote \""
    );
}

#[test]
fn chain_errors() {
    assert_eq!(
        err4(&filter("-A NOPE -j DROP")),
        "t.rules:2:4: no chain NOPE in table filter"
    );
    assert_eq!(
        err4(&filter("-A PREROUTING -j DROP")),
        "t.rules:2:4: no chain PREROUTING in table filter"
    );
    assert_eq!(
        err4(&filter(":INPUT -")),
        "t.rules:2:8: built-in chain INPUT needs policy ACCEPT or DROP"
    );
    assert_eq!(
        err4(&filter(":INPUT REJECT")),
        "t.rules:2:8: bad policy REJECT (ACCEPT, DROP, or - for user chains)"
    );
    assert_eq!(
        err4(&filter(":mine ACCEPT")),
        "t.rules:2:7: mine is not a built-in chain of table filter: a user chain's policy is -"
    );
    assert_eq!(
        err4(&filter(":mine -\n-N mine")),
        "t.rules:3:4: chain mine already exists"
    );
    assert_eq!(
        err4(&filter(":INPUT DROP\n:INPUT ACCEPT")),
        "t.rules:3:1: chain INPUT declared twice"
    );
    assert_eq!(
        err4(&filter("-N DROP")),
        "t.rules:2:4: chain name DROP is the name of a target"
    );
    assert_eq!(
        err4(&filter(&format!("-N {}", "c".repeat(29)))),
        format!(
            "t.rules:2:4: bad chain name \"{}\" (1 to 28 characters)",
            "c".repeat(29)
        )
    );
    assert_eq!(
        err4(&filter(":x - [1:2:3]")),
        "t.rules:2:6: bad counters [1:2:3] (expected [packets:bytes])"
    );
    assert_eq!(
        err4(&filter("-I INPUT 2 -j DROP")),
        "t.rules:2:10: insert position 2 out of range (chain INPUT has 0 rules)"
    );
}

#[test]
fn jump_errors() {
    assert_eq!(
        err4(&filter("-A INPUT -j nowhere")),
        "t.rules:2:13: unknown target or chain nowhere in table filter"
    );
    assert_eq!(
        err4(&filter("-A INPUT -g FORWARD")),
        "t.rules:2:13: cannot jump to built-in chain FORWARD"
    );
    assert_eq!(
        err4(&filter("-A INPUT -g ACCEPT")),
        "t.rules:2:13: -g needs a user chain, not the target ACCEPT"
    );
    assert_eq!(
        err4(&filter(
            "-N a\n-N b\n-N c\n-A INPUT -j a\n-A a -j b\n-A b -g c\n-A c -s 192.0.2.1 -j a"
        )),
        "t.rules:8:22: chain loop: a -> b -> c -> a"
    );
    assert_eq!(
        err4(&filter("-N self\n-A self -j self")),
        "t.rules:3:12: chain loop: self -> self"
    );
    // A diamond (two paths to one chain) is not a loop.
    v4(&filter(
        "-N a\n-N b\n-N c\n-A INPUT -j a\n-A INPUT -j b\n-A a -j c\n-A b -j c",
    ));
}

#[test]
fn targets_in_the_wrong_table_or_hook() {
    assert_eq!(
        err4("*mangle\n-A INPUT -j REJECT\nCOMMIT\n"),
        "t.rules:2:13: target REJECT is only valid in the filter table, not mangle"
    );
    assert_eq!(
        err4(&filter("-A INPUT -j NOTRACK")),
        "t.rules:2:13: target NOTRACK is only valid in the raw table, not filter"
    );
    assert_eq!(
        err4(&filter("-A INPUT -j CT --notrack")),
        "t.rules:2:13: target CT is only valid in the raw table, not filter"
    );
    assert_eq!(
        err4("*nat\n-A PREROUTING -i wan0 -j MASQUERADE\nCOMMIT\n"),
        "t.rules:2:26: target MASQUERADE is not valid in chain PREROUTING (only in POSTROUTING)"
    );
    assert_eq!(
        err4(&filter("-A INPUT -j DNAT --to-destination 192.0.2.1")),
        "t.rules:2:13: target DNAT is only valid in the nat table, not filter"
    );
    assert_eq!(
        err4(&filter("-A INPUT -j QUEUE")),
        "t.rules:2:13: target QUEUE is not supported"
    );
    assert_eq!(
        err4(&filter("-A INPUT -p udp -j REJECT --reject-with tcp-reset")),
        "t.rules:2:41: tcp-reset needs -p tcp (not negated)"
    );
    assert_eq!(
        err6(&filter("-A INPUT -j REJECT --reject-with icmp-host-prohibited")),
        "t.rules:2:34: unknown reject type icmp-host-prohibited (one of icmp6-no-route, icmp6-adm-prohibited, icmp6-addr-unreachable, icmp6-port-unreachable, tcp-reset)"
    );
    assert_eq!(
        err4(&filter("-A OUTPUT -i eth0 -j DROP")),
        "t.rules:2:11: -i cannot be used in OUTPUT (no such interface there)"
    );
    assert_eq!(
        err4(&filter("-A INPUT -o eth0 -j DROP")),
        "t.rules:2:10: -o cannot be used in INPUT (no such interface there)"
    );
    assert_eq!(
        err6(&filter("-A INPUT -f -j DROP")),
        "t.rules:2:10: -f is IPv4 only (ip6tables uses -m frag)"
    );
    assert_eq!(
        err4(&filter(
            "-A INPUT -j LOG --log-prefix 123456789012345678901234567890"
        )),
        "t.rules:2:30: log prefix longer than 29 bytes"
    );
}

#[test]
fn io_error_has_no_position() {
    let e = Ruleset::load(Path::new("/nonexistent/x.rules"), Family::V4).unwrap_err();
    assert_eq!((e.line, e.column), (0, 0));
    assert!(e
        .to_string()
        .starts_with("/nonexistent/x.rules: cannot read the ruleset: "));
}

#[test]
fn garbage_never_panics() {
    // Mangled variants of every shipped file must give errors or rulesets, never panics, and
    // whatever loads must save and load back identically.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rules");
    let junk = [
        '!', '"', '\'', ' ', '\n', '-', ':', '/', '\\', 'x', '9', '#', '*', '[', ',', 'ü',
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for (name, family) in [
        ("gateway.rules", Family::V4),
        ("gateway6.rules", Family::V6),
        ("server.rules", Family::V4),
        ("server6.rules", Family::V6),
        ("marks.rules", Family::V4),
    ] {
        let base: Vec<char> = std::fs::read_to_string(dir.join(name))
            .unwrap()
            .chars()
            .collect();
        for _ in 0..1500 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut s = base.clone();
            let at = (seed as usize) % s.len();
            let c = junk[(seed >> 40) as usize % junk.len()];
            match (seed >> 32) % 3 {
                0 => {
                    s.remove(at);
                }
                1 => s.insert(at, c),
                _ => s[at] = c,
            }
            let text: String = s.into_iter().collect();
            match Ruleset::parse(&text, FILE, family) {
                Ok(rs) => round_trip(&rs),
                Err(e) => assert!(e.line >= 1 && e.column >= 1, "{e}"),
            }
        }
    }
}

#[test]
fn nat_target_options_are_validated() {
    let nat = |rule: &str| format!("*nat\n{rule}\nCOMMIT\n");
    assert_eq!(
        err4(&nat("-A POSTROUTING -o wan0 -j SNAT")),
        "t.rules:2:27: SNAT needs --to-source"
    );
    assert_eq!(
        err4(&nat(
            "-A POSTROUTING -o wan0 -j SNAT --to-source 198.51.100.1:1024-2048"
        )),
        "t.rules:2:44: a port range needs -p tcp, udp, udplite, sctp or dccp"
    );
    assert_eq!(
        err4(&nat(
            "-A PREROUTING -p tcp -j DNAT --to-destination 192.0.2.9-192.0.2.1:80"
        )),
        "t.rules:2:47: address range \"192.0.2.9-192.0.2.1\" goes from high to low"
    );
    assert_eq!(
        err4(&nat("-A PREROUTING -p tcp -j REDIRECT --to-ports 90-80")),
        "t.rules:2:45: bad port range \"90-80\" (expected PORT or PORT-PORT, low to high)"
    );
    assert_eq!(
        err4(&nat("-A POSTROUTING -j SNAT --to-source 2001:db8::1")),
        "t.rules:2:36: address 2001:db8::1 is not of this ruleset's family"
    );
}

#[test]
fn nat_targets_round_trip_and_evaluate() {
    use ::nat::{NatRange, NatTarget};
    let text = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
-A PREROUTING -i wan0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.0.2.2:80\n\
-A PREROUTING -p udp -j REDIRECT --to-ports 5353\n\
-A PREROUTING -d 203.0.113.0/24 -j NETMAP --to 192.0.2.0/24\n\
-A POSTROUTING -s 192.0.2.0/24 -p udp -j SNAT --to-source 198.51.100.1-198.51.100.4:1024-65535 --random --persistent\n\
-A POSTROUTING -o wan0 -j MASQUERADE\nCOMMIT\n";
    let rs = super::super::Ruleset::parse(text, "t.rules", super::super::Family::V4).unwrap();
    let again =
        super::super::Ruleset::parse(&rs.save(false), "saved", super::super::Family::V4).unwrap();
    assert!(rs == again, "{}", rs.save(false));
    assert!(rs.save(false).contains(
        "-j SNAT --to-source 198.51.100.1-198.51.100.4:1024-65535 --random --persistent"
    ));
    let pkt = [0u8; 40];
    let mut ctx = super::super::PacketCtx::new(
        super::super::Family::V4,
        "203.0.113.5".parse().unwrap(),
        "198.51.100.1".parse().unwrap(),
        6,
        &pkt,
    );
    ctx.in_iface = Some("wan0");
    ctx.dport = Some(8080);
    ctx.sport = Some(1234);
    let mut out = super::super::EvalOutput::default();
    let v = rs.evaluate_full(
        super::super::Table::Nat,
        super::super::Hook::Prerouting,
        &ctx,
        &mut out,
    );
    assert_eq!(v, super::super::Verdict::Accept);
    assert_eq!(
        out.nat,
        Some(NatTarget::Dnat(NatRange {
            min_addr: Some("192.0.2.2".parse().unwrap()),
            max_addr: Some("192.0.2.2".parse().unwrap()),
            ports: Some((80, 80)),
            random: false,
            random_fully: false,
            persistent: false,
        }))
    );
}
