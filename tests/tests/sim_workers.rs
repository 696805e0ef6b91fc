//! `tunfilter sim --workers N`: the engine split into shards as the live gateway splits it,
//! each packet read by the worker a hash of its flow picks. The same input gives the same
//! output (byte for byte) with the same worker count, and the same traffic crosses whatever
//! the count: the shards' steering, directory and hand-offs are the live design run in
//! virtual time.

use std::collections::BTreeMap;
use tests::*;

const RULES: &str = "*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i wan0 -p tcp -m tcp --dport 21 -j DNAT --to-destination 90.130.70.73:21
-A POSTROUTING -o wan0 -s 192.0.2.0/24 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -i wan0 -d 90.130.70.73/32 -p tcp -m tcp --dport 21 -j ACCEPT
-A FORWARD -i lan0 -s 192.0.2.0/24 -j ACCEPT
COMMIT
";

const CONFIG: &str = r#"
[[interface]]
name = "lan0"
kind = "tun"
addresses = ["90.130.70.1/24", "192.0.2.1/24"]

[[interface]]
name = "wan0"
kind = "tun"
addresses = ["198.51.100.1/24", "192.168.1.1/24"]

[[route]]
prefix = "0.0.0.0/0"
interface = "wan0"
via = "198.51.100.254"

[rules]
ipv4 = "v4.rules"
ipv6 = "v6.rules"

[conntrack]
new_flows_per_batch = 0

[helpers]
auto_assign = true
"#;

/// The real FTP session (server behind a port forward, helper on), plus 40 UDP flows from
/// the LAN through masquerade with replies, some of them fragmented.
fn arrivals() -> Vec<Arrival> {
    let server: std::net::Ipv4Addr = "90.130.70.73".parse().unwrap();
    let public: std::net::Ipv4Addr = "198.51.100.1".parse().unwrap();
    let mut a = capture_arrivals("ndpi-ftp.pcap", server, server, public);
    for i in 0..40u16 {
        let c = format!("192.0.2.{}", 10 + i % 7);
        let at = 0.5 + f64::from(i) * 0.01;
        let payload = vec![i as u8; if i % 5 == 0 { 3000 } else { 100 }];
        let q = udp(&c, 5000 + i, "203.0.113.9", 53, &payload);
        if payload.len() > 1400 {
            for f in frag4(&q, &[(0, 1480), (1480, q.len() - 20)], 700 + i) {
                a.push(Arrival {
                    iface: "lan0",
                    at,
                    packet: f,
                });
            }
        } else {
            a.push(Arrival {
                iface: "lan0",
                at,
                packet: q,
            });
        }
        let r = udp("203.0.113.9", 53, "198.51.100.1", 5000 + i, b"answer");
        a.push(Arrival {
            iface: "wan0",
            at: at + 0.005,
            packet: r,
        });
    }
    a.sort_by(|x, y| x.at.total_cmp(&y.at));
    a
}

fn files(out: &SimOutput) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(&out.out_dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

/// The packets per interface, as a sorted list (the order of two workers' packets within one
/// instant may differ from one engine's; the set may not).
fn packets(out: &SimOutput) -> BTreeMap<String, Vec<Vec<u8>>> {
    out.sent
        .iter()
        .map(|(k, v)| {
            let mut ps: Vec<Vec<u8>> = v.iter().map(|(_, p)| p.clone()).collect();
            ps.sort();
            (k.clone(), ps)
        })
        .collect()
}

#[test]
fn n_workers_are_deterministic_and_forward_what_one_engine_forwards() {
    let sc = Scenario::with_config("workers", CONFIG, RULES, "");
    let input = arrivals();
    let one = sc.run_workers(&input, Some(30.0), 1, "w1");
    let three = sc.run_workers(&input, Some(30.0), 3, "w3");
    let again = sc.run_workers(&input, Some(30.0), 3, "w3b");
    assert_eq!(files(&three), files(&again), "same input, same output");
    assert_eq!(packets(&one), packets(&three));
    // Every flow crossed: 40 queries out, 8 of them in fragments (the second, 1,548 bytes,
    // above the MTU, leaves in two: 3 each), and the whole FTP session.
    let wan = &packets(&three)["wan0"];
    assert_eq!(wan.iter().filter(|p| p[9] == 17).count(), 32 + 8 * 3);
    let lan = &packets(&three)["lan0"];
    assert_eq!(
        lan.iter().filter(|p| p[9] == 17).count(),
        40,
        "every answer came back"
    );
    assert_eq!(out_drops(&three), out_drops(&one));
    assert_eq!(
        three.events_with(&["exp-new", "\"helper\":\"ftp\""]).len(),
        2
    );
    // The connections were spread over the shards, and the stats say so.
    assert!(three.stats.contains("shards count=3"), "{}", three.stats);
    let per_shard: Vec<u64> = three
        .stats
        .lines()
        .filter(|l| l.starts_with("shard index="))
        .map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("packets_in="))
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(per_shard.len(), 3);
    assert!(per_shard.iter().all(|&n| n > 0), "{per_shard:?}");
    let lines = |s: &str| {
        let mut v: Vec<String> = s
            .lines()
            .map(|l| l.split(" id=").next().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(lines(&one.conntrack), lines(&three.conntrack));
}

fn out_drops(out: &SimOutput) -> usize {
    out.events_with(&["\"type\":\"drop\""]).len()
}
