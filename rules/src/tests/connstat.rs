//! `-m connbytes` and `-m connlimit`: syntax as iptables-save prints it, errors, semantics.

use super::*;
use conntrack::tuple::Tuple;
use std::cell::RefCell;
use std::collections::HashSet;

fn rules4(lines: &str) -> Vec<String> {
    let rs = v4(&filter(lines));
    round_trip(&rs);
    rs.save(false)
        .lines()
        .filter(|l| l.starts_with("-A"))
        .map(str::to_string)
        .collect()
}

#[test]
fn connbytes_save_forms() {
    // Each expected line is what iptables-save 1.8.9 printed for the same input.
    assert_eq!(
        rules4(
            "-A INPUT -m connbytes --connbytes 10 --connbytes-dir both --connbytes-mode bytes -j ACCEPT\n\
             -A INPUT -m connbytes --connbytes 10:100 --connbytes-dir original --connbytes-mode packets -j ACCEPT\n\
             -A INPUT -m connbytes ! --connbytes 10:100 --connbytes-dir reply --connbytes-mode avgpkt -j ACCEPT\n\
             -A INPUT -m connbytes --connbytes :100 --connbytes-dir reply --connbytes-mode avgpkt -j ACCEPT"
        ),
        [
            "-A INPUT -m connbytes --connbytes 10 --connbytes-mode bytes --connbytes-dir both -j ACCEPT",
            "-A INPUT -m connbytes --connbytes 10:100 --connbytes-mode packets --connbytes-dir original -j ACCEPT",
            "-A INPUT -m connbytes ! --connbytes 10:100 --connbytes-mode avgpkt --connbytes-dir reply -j ACCEPT",
            "-A INPUT -m connbytes --connbytes 0:100 --connbytes-mode avgpkt --connbytes-dir reply -j ACCEPT",
        ]
    );
    let e = |r: &str| err4(&filter(&format!("-A INPUT -m connbytes {r} -j ACCEPT")));
    assert_eq!(
        e("--connbytes 10 --connbytes-mode bytes"),
        "t.rules:2:13: -m connbytes needs --connbytes-dir"
    );
    assert_eq!(
        e("--connbytes-dir both --connbytes-mode bytes"),
        "t.rules:2:13: -m connbytes needs --connbytes"
    );
    assert_eq!(
        e("--connbytes 100:10 --connbytes-dir both --connbytes-mode bytes"),
        "t.rules:2:35: bad --connbytes range 100:10 (100 is above 10)"
    );
    assert_eq!(
        e("--connbytes x --connbytes-dir both --connbytes-mode bytes"),
        "t.rules:2:35: bad --connbytes value x (N, N: or N:M)"
    );
    assert_eq!(
        e("--connbytes 1 --connbytes-dir sideways --connbytes-mode bytes"),
        "t.rules:2:53: bad --connbytes-dir sideways (original, reply or both)"
    );
    assert_eq!(
        e("--connbytes 1 --connbytes-dir both --connbytes-mode frames"),
        "t.rules:2:75: bad --connbytes-mode frames (packets, bytes or avgpkt)"
    );
}

/// Which INPUT rule decides for a packet of a connection with these counters.
fn decide(rs: &Ruleset, counters: Option<[(u64, u64); 2]>) -> String {
    let tuples = [Tuple {
        src: "192.0.2.2".parse().unwrap(),
        dst: "198.51.100.1".parse().unwrap(),
        src_id: 1000,
        dst_id: 80,
        proto: 6,
        zone: 0,
    }; 2];
    let mut c = tcp4("192.0.2.2", "198.51.100.1", 1000, 80);
    c.ctstate = CtState::ESTABLISHED;
    c.conn = counters.map(|counters| ConnView {
        tuples: &tuples,
        status: 0,
        reply: false,
        expires_in: 100,
        counters,
        master_helper: None,
    });
    match rs.evaluate_traced(Table::Filter, Hook::Input, &c).1 {
        Some(r) if r.is_policy() => "policy".into(),
        Some(r) => r.rule_num.to_string(),
        None => "-".into(),
    }
}

#[test]
fn connbytes_semantics() {
    let rs = v4(&filter(
        ":INPUT ACCEPT\n\
         -A INPUT -m connbytes --connbytes 1000000: --connbytes-dir both --connbytes-mode bytes -j DROP\n\
         -A INPUT -m connbytes --connbytes 3:5 --connbytes-dir original --connbytes-mode packets -j ACCEPT\n\
         -A INPUT -m connbytes ! --connbytes 0:100 --connbytes-dir reply --connbytes-mode avgpkt -j REJECT",
    ));
    // 600 kB each way: both directions together pass the megabyte.
    assert_eq!(decide(&rs, Some([(500, 600_000), (500, 600_000)])), "1");
    assert_eq!(decide(&rs, Some([(500, 600_000), (0, 0)])), "policy");
    // Packet counts 3..=5 in the original direction, bounds included.
    assert_eq!(decide(&rs, Some([(3, 180), (0, 0)])), "2");
    assert_eq!(decide(&rs, Some([(5, 300), (0, 0)])), "2");
    assert_eq!(decide(&rs, Some([(6, 360), (0, 0)])), "policy");
    // Average reply packet above 100 bytes (integer division, no reply packet: 0).
    assert_eq!(decide(&rs, Some([(9, 500), (2, 2000)])), "3");
    assert_eq!(decide(&rs, Some([(9, 500), (2, 200)])), "policy");
    assert_eq!(decide(&rs, Some([(9, 500), (0, 0)])), "policy");
    // Untracked packets never match, not even the negated rule.
    assert_eq!(decide(&rs, None), "policy");
}

#[test]
fn connlimit_save_forms_and_errors() {
    assert_eq!(
        rules4(
            "-A INPUT -p tcp --syn -m connlimit --connlimit-above 10 -j REJECT\n\
             -A INPUT -m connlimit --connlimit-upto 3 --connlimit-mask 24 --connlimit-daddr -j ACCEPT\n\
             -A INPUT -m connlimit ! --connlimit-above 2 -j ACCEPT\n\
             -A INPUT -m connlimit ! --connlimit-upto 2 --connlimit-saddr -j ACCEPT"
        ),
        [
            "-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m connlimit --connlimit-above 10 --connlimit-mask 32 --connlimit-saddr -j REJECT --reject-with icmp-port-unreachable",
            "-A INPUT -m connlimit --connlimit-upto 3 --connlimit-mask 24 --connlimit-daddr -j ACCEPT",
            "-A INPUT -m connlimit --connlimit-upto 2 --connlimit-mask 32 --connlimit-saddr -j ACCEPT",
            "-A INPUT -m connlimit --connlimit-above 2 --connlimit-mask 32 --connlimit-saddr -j ACCEPT",
        ]
    );
    let rs = v6(&filter(
        "-A INPUT -m connlimit --connlimit-above 5 --connlimit-mask 64 -j ACCEPT",
    ));
    round_trip(&rs);
    assert!(rs.save(false).contains(
        "-A INPUT -m connlimit --connlimit-above 5 --connlimit-mask 64 --connlimit-saddr -j ACCEPT"
    ));
    let e = |r: &str| err4(&filter(&format!("-A INPUT -m connlimit {r} -j ACCEPT")));
    assert_eq!(
        e("--connlimit-mask 16"),
        "t.rules:2:13: -m connlimit needs --connlimit-above or --connlimit-upto"
    );
    assert_eq!(
        e("--connlimit-above 1 --connlimit-upto 2"),
        "t.rules:2:43: --connlimit-upto cannot be combined with --connlimit-above"
    );
    assert_eq!(
        e("--connlimit-above 1 --connlimit-mask 33"),
        "t.rules:2:60: bad --connlimit-mask 33 (0..=32)"
    );
    assert_eq!(
        e("--connlimit-above -1"),
        "t.rules:2:41: bad --connlimit-above value -1 (0..=4294967295)"
    );
    assert_eq!(
        e("--connlimit-above 1 --connlimit-saddr --connlimit-daddr"),
        "t.rules:2:61: --connlimit-daddr cannot be combined with --connlimit-saddr"
    );
    assert_eq!(
        err6(&filter(
            "-A INPUT -m connlimit --connlimit-above 1 --connlimit-mask 129"
        )),
        "t.rules:2:60: bad --connlimit-mask 129 (0..=128)"
    );
}

/// A new TCP connection from `src:sport` to the server.
fn conn_tuple(src: &str, sport: u16) -> Tuple {
    Tuple {
        src: src.parse().unwrap(),
        dst: "198.51.100.1".parse().unwrap(),
        src_id: sport,
        dst_id: 22,
        proto: 6,
        zone: 0,
    }
}

#[test]
fn connlimit_counts_live_connections_per_masked_address() {
    // At most two ssh connections per /24: the third from the same /24 is rejected, one
    // from another /24 is not; when one ends, a new one is admitted again.
    let rs = v4(&filter(
        ":INPUT ACCEPT\n\
         -A INPUT -p tcp --dport 22 -m connlimit --connlimit-above 2 --connlimit-mask 24 -j REJECT",
    ));
    let live: RefCell<HashSet<Tuple>> = RefCell::new(HashSet::new());
    let alive = |t: &Tuple| live.borrow().contains(t);
    let try_conn = |src: &str, sport: u16| -> bool {
        let t = conn_tuple(src, sport);
        let tuples = [t, t.invert()];
        let mut c = tcp4(src, "198.51.100.1", sport, 22);
        c.conn = Some(ConnView {
            tuples: &tuples,
            status: 0,
            reply: false,
            expires_in: 120,
            counters: [(1, 60), (0, 0)],
            master_helper: None,
        });
        c.conn_alive = Some(&alive);
        let admitted = rs.evaluate(Table::Filter, Hook::Input, &c) == Verdict::Accept;
        if admitted {
            live.borrow_mut().insert(t); // confirmed: now in the table
        }
        admitted
    };
    assert!(try_conn("192.0.2.10", 40000));
    assert!(try_conn("192.0.2.11", 40001));
    assert!(!try_conn("192.0.2.12", 40002), "third from 192.0.2.0/24");
    assert!(
        try_conn("203.0.113.9", 40003),
        "another /24 has its own count"
    );
    // A packet of an already counted connection does not count it twice.
    assert!(try_conn("192.0.2.10", 40000));
    // The rejected connection was never confirmed: it is pruned, not counted. When the
    // first connection ends, there is room for one more.
    live.borrow_mut().remove(&conn_tuple("192.0.2.10", 40000));
    assert!(try_conn("192.0.2.12", 40004));
    assert!(!try_conn("192.0.2.13", 40005));

    // --connlimit-upto on the destination: the inverse test, keyed by server address.
    let rs = v4(&filter(
        ":INPUT DROP\n-A INPUT -m connlimit --connlimit-upto 1 --connlimit-daddr -j ACCEPT",
    ));
    let t1 = conn_tuple("192.0.2.1", 1);
    let tuples = [t1, t1.invert()];
    let mut c = tcp4("192.0.2.1", "198.51.100.1", 1, 22);
    c.conn = Some(ConnView {
        tuples: &tuples,
        status: 0,
        reply: false,
        expires_in: 120,
        counters: [(1, 60), (0, 0)],
        master_helper: None,
    });
    let always = |_: &Tuple| true;
    c.conn_alive = Some(&always);
    assert_eq!(rs.evaluate(Table::Filter, Hook::Input, &c), Verdict::Accept);
    let t2 = conn_tuple("203.0.113.1", 2);
    let tuples2 = [t2, t2.invert()];
    let mut c2 = tcp4("203.0.113.1", "198.51.100.1", 2, 22);
    c2.conn = Some(ConnView {
        tuples: &tuples2,
        status: 0,
        reply: false,
        expires_in: 120,
        counters: [(1, 60), (0, 0)],
        master_helper: None,
    });
    c2.conn_alive = Some(&always);
    assert_eq!(
        rs.evaluate(Table::Filter, Hook::Input, &c2),
        Verdict::Drop,
        "a second connection to the same server"
    );
}
