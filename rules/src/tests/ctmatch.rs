//! `-m conntrack` beyond `--ctstate`: loading, iptables-save order, errors, evaluation.

use super::*;
use conntrack::conn::Status;
use conntrack::tuple::Tuple;

fn rule_err(rule: &str) -> String {
    err4(&filter(&format!("-A FORWARD {rule}")))
}

#[test]
fn every_option_loads_and_saves_in_iptables_order() {
    let line = "-A FORWARD -m conntrack --ctstate NEW,DNAT --ctproto 6 --ctorigsrc 192.0.2.0/24 \
                ! --ctorigdst 198.51.100.7/32 --ctreplsrc 192.0.2.10/32 --ctrepldst 198.51.100.1/32 \
                --ctorigsrcport 1024:65535 --ctorigdstport 8080 ! --ctreplsrcport 22 \
                --ctrepldstport 1024:65535 --ctstatus SEEN_REPLY,ASSURED ! --ctexpire 10:20 \
                --ctdir ORIGINAL -j ACCEPT";
    let rs = v4(&filter(line));
    let saved = rs.save(false);
    assert!(saved.contains(line), "{saved}");
    assert_eq!(v4(&saved).save(false), saved);
    // Options given in another order come out in libxt_conntrack's order.
    let rs = v4(&filter(
        "-A FORWARD -m conntrack --ctdir REPLY --ctstatus NONE --ctstate ESTABLISHED -j ACCEPT",
    ));
    assert!(rs.save(false).contains(
        "-A FORWARD -m conntrack --ctstate ESTABLISHED --ctstatus NONE --ctdir REPLY -j ACCEPT"
    ));
}

#[test]
fn bad_values_name_their_position() {
    assert_eq!(
        rule_err("-m conntrack --ctstatus SEEN_REPLY,GONE -j DROP"),
        "t.rules:2:47: unknown status GONE (expected NONE, EXPECTED, SEEN_REPLY, ASSURED or CONFIRMED)"
    );
    assert_eq!(
        rule_err("-m conntrack --ctdir SIDEWAYS -j DROP"),
        "t.rules:2:33: bad --ctdir SIDEWAYS (expected ORIGINAL or REPLY)"
    );
    assert_eq!(
        rule_err("-m conntrack ! --ctdir REPLY -j DROP"),
        "t.rules:2:25: --ctdir cannot be negated"
    );
    assert_eq!(
        rule_err("-m conntrack --ctexpire 20:10 -j DROP"),
        "t.rules:2:36: --ctexpire range 20:10 is reversed"
    );
    assert!(rule_err("-m conntrack --ctorigsrc 2001:db8::1 -j DROP").starts_with("t.rules:2:37: "));
    assert_eq!(
        rule_err("-m conntrack -j DROP"),
        "t.rules:2:15: -m conntrack needs --ctstate or another --ct option"
    );
}

fn tuple(src: &str, sport: u16, dst: &str, dport: u16) -> Tuple {
    Tuple {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        src_id: sport,
        dst_id: dport,
        proto: 6,
        zone: 0,
    }
}

#[test]
fn evaluation_against_the_connection() {
    let rs = v4(&filter(
        ":FORWARD DROP [0:0]\n\
         -A FORWARD -m conntrack --ctstate DNAT --ctorigdst 198.51.100.1 --ctorigdstport 8080 --ctrepldstport 40000 -j ACCEPT\n\
         -A FORWARD -m conntrack --ctdir REPLY --ctstatus ASSURED -j ACCEPT\n\
         -A FORWARD -m conntrack ! --ctstatus SEEN_REPLY --ctexpire 0:5 -j REJECT",
    ));
    // A port-forwarded connection: orig 203.0.113.5:40000 -> 198.51.100.1:8080,
    // reply 192.0.2.2:80 -> 203.0.113.5:40000.
    let tuples = [
        tuple("203.0.113.5", 40000, "198.51.100.1", 8080),
        tuple("192.0.2.2", 80, "203.0.113.5", 40000),
    ];
    let pkt = [0u8; 40];
    let mut c = PacketCtx::new(
        Family::V4,
        "203.0.113.5".parse().unwrap(),
        "192.0.2.2".parse().unwrap(),
        6,
        &pkt,
    );
    c.ctstate = CtState::NEW | CtState::DNAT;
    c.conn = Some(ConnView {
        tuples: &tuples,
        status: Status::DST_NAT,
        reply: false,
        expires_in: 100,
        counters: [(1, 60), (0, 0)],
        master_helper: None,
    });
    assert_eq!(
        rs.evaluate(Table::Filter, Hook::Forward, &c),
        Verdict::Accept
    );
    // The reply direction of an assured connection: rule 2.
    c.ctstate = CtState::ESTABLISHED;
    c.conn = Some(ConnView {
        tuples: &tuples,
        status: Status::ASSURED | Status::SEEN_REPLY,
        reply: true,
        expires_in: 100,
        counters: [(1, 60), (0, 0)],
        master_helper: None,
    });
    assert_eq!(
        rs.evaluate_traced(Table::Filter, Hook::Forward, &c)
            .1
            .unwrap()
            .rule_num,
        2
    );
    // Unreplied and about to expire: rule 3.
    c.ctstate = CtState::NEW;
    c.conn = Some(ConnView {
        tuples: &tuples,
        status: Status::CONFIRMED,
        reply: false,
        expires_in: 3,
        counters: [(1, 60), (0, 0)],
        master_helper: None,
    });
    assert!(matches!(
        rs.evaluate(Table::Filter, Hook::Forward, &c),
        Verdict::Reject(_)
    ));
    // No connection (untracked): options beyond --ctstate never match, even negated.
    c.conn = None;
    c.ctstate = CtState::UNTRACKED;
    assert_eq!(rs.evaluate(Table::Filter, Hook::Forward, &c), Verdict::Drop);
}
