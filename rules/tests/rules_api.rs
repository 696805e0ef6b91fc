//! The ruleset's public API as the pipeline uses it: load files, evaluate per table and hook,
//! read back verdicts, deciding rules, logs, marks and counters.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rules::{
    CtState, EvalOutput, Family, Hook, LoadOptions, Marks, NatRange, NatTarget, PacketCtx,
    RejectWith, RuleError, RuleRef, Ruleset, Table, Verdict,
};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/rules")
        .join(name)
}

fn tcp<'a>(src: &str, dst: &str, dport: u16) -> PacketCtx<'a> {
    let src: IpAddr = src.parse().unwrap();
    let family = if src.is_ipv4() {
        Family::V4
    } else {
        Family::V6
    };
    let mut c = PacketCtx::new(family, src, dst.parse().unwrap(), 6, &[]);
    c.sport = Some(40000);
    c.dport = Some(dport);
    c.tcp_flags = Some(0x02);
    c.ctstate = CtState::NEW;
    c.len = 60;
    c
}

#[test]
fn ruleset_is_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Ruleset>();
    assert_send_sync::<RuleError>();
    let rs = Arc::new(Ruleset::load(&data("server.rules"), Family::V4).unwrap());
    // More threads than counter banks: the owned banks and the shared one
    // must together count every evaluation exactly.
    let workers: Vec<_> = (0..12)
        .map(|_| {
            let rs = Arc::clone(&rs);
            std::thread::spawn(move || {
                let c = tcp("192.0.2.5", "198.51.100.10", 443);
                (0..500)
                    .map(|_| rs.evaluate(Table::Filter, Hook::Input, &c))
                    .all(|v| v == Verdict::Accept)
            })
        })
        .collect();
    for w in workers {
        assert!(w.join().unwrap());
    }
    assert_eq!(
        rs.counters(Table::Filter, "INPUT", 7),
        Some((6000, 360_000))
    );
}

#[test]
fn every_shipped_file_loads_and_round_trips() {
    for (name, family) in [
        ("gateway.rules", Family::V4),
        ("gateway6.rules", Family::V6),
        ("server.rules", Family::V4),
        ("server6.rules", Family::V6),
        ("marks.rules", Family::V4),
        ("counters.rules", Family::V4),
        ("docker.rules", Family::V4),
    ] {
        let rs = Ruleset::load(&data(name), family).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rs.family(), family);
        let saved = rs.save(false);
        let again = Ruleset::parse(&saved, name, family).unwrap();
        assert_eq!(again.save(false), saved, "{name}");
        assert!(rs.rule_count() > 0, "{name}");
    }
}

#[test]
fn the_wrong_family_is_an_error_with_a_position() {
    let e = Ruleset::load(&data("gateway6.rules"), Family::V4).unwrap_err();
    assert!(e.file.ends_with("gateway6.rules"));
    // The first IPv6-only construct is the address of the first nat rule, on line 8.
    assert_eq!((e.line, e.column), (8, 18), "{e}");
    assert!(e.to_string().contains("gateway6.rules:8:18: "), "{e}");
}

#[test]
fn full_evaluation_reports_rule_logs_and_marks() {
    let rs = Ruleset::load(&data("marks.rules"), Family::V4).unwrap();
    let mut out = EvalOutput::default();

    let mut c = tcp("203.0.113.9", "198.51.100.1", 22);
    c.in_iface = Some("wan0");
    assert_eq!(
        rs.evaluate_full(Table::Mangle, Hook::Prerouting, &c, &mut out),
        Verdict::Accept
    );
    assert_eq!(out.marks, Marks { mark: 1, ctmark: 1 });

    let mut telnet = tcp("203.0.113.9", "198.51.100.1", 23);
    telnet.in_iface = Some("wan0");
    assert_eq!(
        rs.evaluate_full(Table::Filter, Hook::Input, &telnet, &mut out),
        Verdict::Drop
    );
    assert_eq!(
        out.rule,
        Some(RuleRef {
            table: Table::Filter,
            chain: "LOGDROP".into(),
            rule_num: 2
        })
    );
    assert_eq!(out.logs.len(), 1);
    assert_eq!(&*out.logs[0].prefix, "drop: ");
    assert_eq!(out.logs[0].level, 4);

    let gw = Ruleset::load(&data("gateway.rules"), Family::V4).unwrap();
    let mut lan = tcp("192.0.2.50", "192.0.2.1", 23);
    lan.in_iface = Some("lan0");
    let (v, r) = gw.evaluate_traced(Table::Filter, Hook::Input, &lan);
    assert_eq!(v, Verdict::Reject(RejectWith::TcpReset));
    assert_eq!(r.unwrap().to_string(), "filter lan_in rule 6");
}

#[test]
fn counters_can_be_restored_and_zeroed() {
    let rs = Ruleset::load_with(
        &data("counters.rules"),
        Family::V4,
        LoadOptions { counters: true },
    )
    .unwrap();
    assert_eq!(rs.counters(Table::Filter, "INPUT", 1), Some((40, 2400)));
    assert!(rs.save(true).contains("[40:2400] -A INPUT"));
    rs.zero_counters();
    assert_eq!(rs.counters(Table::Filter, "INPUT", 1), Some((0, 0)));
    assert!(rs.save(true).contains(":INPUT ACCEPT [0:0]"));
}

#[test]
fn empty_ruleset_accepts_everything() {
    let rs = Ruleset::empty(Family::V6);
    let c = tcp("2001:db8::1", "2001:db8::2", 1);
    for table in Table::ALL {
        assert!(!rs.has_table(table));
        for &hook in table.hooks() {
            assert_eq!(rs.evaluate_traced(table, hook, &c), (Verdict::Accept, None));
        }
    }
    assert_eq!(Hook::from_chain_name("FORWARD"), Some(Hook::Forward));
    assert_eq!(Hook::Postrouting.chain_name(), "POSTROUTING");
}

#[test]
fn nat_targets_reach_the_engine_as_nat_types() {
    // The rules hand out the engine's own types: no conversion between the two.
    fn same<T>(_: Option<T>, _: Option<T>) {}
    same::<NatTarget>(None, None::<nat::NatTarget>);
    let _: Option<nat::NatRange> = None::<NatRange>;

    let rs = Ruleset::load(&data("docker.rules"), Family::V4).unwrap();
    let local = |a: IpAddr| a == "198.51.100.7".parse::<IpAddr>().unwrap();
    let mut c = tcp("203.0.113.5", "198.51.100.7", 8080);
    c.in_iface = Some("eth0");
    c.local_addr = Some(&local);
    let mut out = EvalOutput::default();
    assert_eq!(
        rs.evaluate_full(Table::Nat, Hook::Prerouting, &c, &mut out),
        Verdict::Accept
    );
    let to: IpAddr = "172.17.0.2".parse().unwrap();
    assert_eq!(
        out.nat,
        Some(NatTarget::Dnat(NatRange {
            min_addr: Some(to),
            max_addr: Some(to),
            ports: Some((80, 80)),
            random: false,
            random_fully: false,
            persistent: false,
        }))
    );
    assert_eq!(out.rule.as_ref().unwrap().to_string(), "nat DOCKER rule 3");
    // Filter decisions never carry a NAT target.
    rs.evaluate_full(Table::Filter, Hook::Forward, &c, &mut out);
    assert_eq!(out.nat, None);

    let e = Ruleset::parse(
        "*nat\n-A POSTROUTING -j DNAT --to-destination 192.0.2.1\nCOMMIT\n",
        "n.rules",
        Family::V4,
    )
    .unwrap_err();
    assert_eq!((e.line, e.column), (2, 19));
    assert!(e.message.contains("not valid in chain POSTROUTING"));
}
