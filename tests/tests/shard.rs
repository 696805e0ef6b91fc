//! The sharded engine (`router::shard`): a connection lives in the shard of the worker that
//! read its first packet, and its packets reach that shard afterwards whichever worker reads
//! them — both directions, through masquerade and port forwards, as fragments, as ICMP
//! errors. NAT choices stay unique across shards, connlimit counts connections of every
//! shard, and two threads driving the shards at once lose nothing.

use conntrack::{Instant, PacketBuf};
use router::config::Config;
use router::engine::Transmit;
use router::shard::{ShardSet, Work};
use rules::{Family, Ruleset};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use tests::flags::*;
use tests::*;

const LAN: usize = 0;
const WAN: usize = 1;
const ROUTER_WAN: &str = "198.51.100.1";
const SERVER: &str = "198.51.100.9";

const RULES: &str = "\
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i wan0 -p tcp --dport 8080 -j DNAT --to-destination 192.0.2.80:80
-A POSTROUTING -o wan0 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -i lan0 -p tcp --syn -m connlimit --connlimit-above 2 --connlimit-mask 32 -j DROP
-A FORWARD -i lan0 -o wan0 -j ACCEPT
-A FORWARD -i wan0 -o lan0 -p tcp -d 192.0.2.80 --dport 80 -j ACCEPT
COMMIT
";

fn shards(n: usize) -> Arc<ShardSet> {
    let cfg = r#"
[[interface]]
name = "lan0"
kind = "tun"
addresses = ["192.0.2.1/24"]
[[interface]]
name = "wan0"
kind = "tun"
addresses = ["198.51.100.1/24"]
[conntrack]
max = 65536
# These scenarios start many flows in one batch; rationing them is tested on its own.
new_flows_per_batch = 0
"#;
    let cfg = Config::parse(cfg, "t.toml", Path::new(".")).unwrap();
    let set = ShardSet::new(&cfg, 11, n).unwrap();
    let r4 = Arc::new(Ruleset::parse(RULES, "t.rules", Family::V4).unwrap());
    let r6 = Arc::new(Ruleset::empty(Family::V6));
    for i in 0..set.len() {
        set.lock(i).set_shared_rules(r4.clone(), r6.clone());
    }
    set
}

fn t(s: u64) -> Instant {
    Instant::from_secs(s)
}

/// Feeds packets (interface, bytes) as one batch read by worker `home`.
fn feed(
    set: &ShardSet,
    home: usize,
    now: Instant,
    pkts: &[(usize, Vec<u8>)],
) -> Vec<(usize, Transmit)> {
    let mut w = Work::default();
    for (i, p) in pkts {
        w.batch.push((*i, PacketBuf::from_slice(p)));
    }
    set.handle(home, now, &mut w);
    w.tx
}

fn on(tx: &[(usize, Transmit)], iface: usize) -> Vec<(usize, Vec<u8>)> {
    tx.iter()
        .filter(|(_, t)| t.iface == iface)
        .map(|(s, t)| (*s, t.packet.as_slice().to_vec()))
        .collect()
}

fn src4(p: &[u8]) -> IpAddr {
    IpAddr::from(<[u8; 4]>::try_from(&p[12..16]).unwrap())
}
fn dst4(p: &[u8]) -> IpAddr {
    IpAddr::from(<[u8; 4]>::try_from(&p[16..20]).unwrap())
}
fn sport(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[20], p[21]])
}
fn dport(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[22], p[23]])
}
/// A TCP segment's sequence number (the tests put the client number there).
fn tcp_seq(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[24], p[25], p[26], p[27]])
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn masquerade_keeps_ports_unique_across_shards_and_replies_reach_the_owner() {
    let set = shards(2);
    // 64 clients with the same source port to one server: masquerade would keep port 40000
    // for every one of them if each shard only looked at its own table.
    let syns: Vec<(usize, Vec<u8>)> = (0..64u8)
        .map(|i| {
            let c = format!("192.0.2.{}", 10 + i);
            (LAN, tcp(&c, 40000, SERVER, 80, u32::from(i), 0, SYN, b""))
        })
        .collect();
    // Read by two workers, half each: each half starts its connections in that worker's shard.
    let mut tx = feed(&set, 0, t(1), &syns[..32]);
    tx.extend(feed(&set, 1, t(1), &syns[32..]));
    let out = on(&tx, WAN);
    assert_eq!(out.len(), 64, "every SYN is forwarded");
    let ports: BTreeSet<u16> = out.iter().map(|(_, p)| sport(p)).collect();
    assert_eq!(ports.len(), 64, "NAT gave 64 distinct ports: {ports:?}");
    assert!(out.iter().all(|(_, p)| src4(p) == ip(ROUTER_WAN)));
    assert_eq!((set.lock(0).ct_len(), set.lock(1).ct_len()), (32, 32));
    assert_eq!(set.directory().len(), 128, "both tuples of each connection");
    // The client each NAT port stands for (the SYN's sequence number), and the SYN's shard.
    let syn_of: HashMap<u16, (IpAddr, usize)> = out
        .iter()
        .map(|(s, p)| {
            let c = ip(&format!("192.0.2.{}", 10 + tcp_seq(p)));
            (sport(p), (c, *s))
        })
        .collect();
    // The replies, all read by worker 1.
    let replies: Vec<(usize, Vec<u8>)> = out
        .iter()
        .map(|(_, p)| {
            let r = tcp(
                SERVER,
                80,
                ROUTER_WAN,
                sport(p),
                500,
                tcp_seq(p) + 1,
                SYN | ACK,
                b"",
            );
            (WAN, r)
        })
        .collect();
    for (_, r) in &replies {
        assert_eq!(
            set.owner(r),
            Some(syn_of[&dport(r)].1),
            "owned by the SYN's shard"
        );
    }
    let back = on(&feed(&set, 1, t(2), &replies), LAN);
    assert_eq!(back.len(), 64, "every SYN-ACK is delivered");
    for (shard, p) in &back {
        assert_eq!(dport(p), 40000);
        let (_, syn_shard) = syn_of.values().find(|(c, _)| *c == dst4(p)).unwrap();
        assert_eq!(shard, syn_shard, "handled by the SYN's shard");
    }
    let clients: BTreeSet<IpAddr> = back.iter().map(|(_, p)| dst4(p)).collect();
    assert_eq!(clients.len(), 64, "each client got its own reply");
    let stats = set.ct_stats();
    assert!(stats.contains("entries=64 "), "{stats}");
    assert!(
        stats.contains("shards count=2 published_tuples=128"),
        "{stats}"
    );
    assert!(stats.contains("shard index=1 entries=32 "), "{stats}");
}

#[test]
fn port_forward_replies_find_the_shard_that_forwarded() {
    let set = shards(2);
    let syns: Vec<(usize, Vec<u8>)> = (1..=32u16)
        .map(|i| {
            let c = format!("198.51.100.{}", 100 + i);
            (WAN, tcp(&c, 5000 + i, ROUTER_WAN, 8080, 7, 0, SYN, b""))
        })
        .collect();
    let mut tx = feed(&set, 0, t(1), &syns[..16]);
    tx.extend(feed(&set, 1, t(1), &syns[16..]));
    let fwd = on(&tx, LAN);
    assert_eq!(fwd.len(), 32);
    assert!(fwd
        .iter()
        .all(|(_, p)| dst4(p) == ip("192.0.2.80") && dport(p) == 80));
    // The LAN server's replies, each half read by the other worker.
    let reply = |p: &[u8]| {
        let c = src4(p).to_string();
        (
            LAN,
            tcp("192.0.2.80", 80, &c, sport(p), 9, 8, SYN | ACK, b""),
        )
    };
    let replies: Vec<(usize, Vec<u8>)> = fwd.iter().map(|(_, p)| reply(p)).collect();
    let mut tx = feed(&set, 1, t(2), &replies[..16]);
    tx.extend(feed(&set, 0, t(2), &replies[16..]));
    let back = on(&tx, WAN);
    assert_eq!(back.len(), 32, "every reply leaves: {}", set.ct_stats());
    for (_, p) in &back {
        assert_eq!((src4(p), sport(p)), (ip(ROUTER_WAN), 8080), "un-NATed");
    }
    let by: BTreeSet<usize> = back.iter().map(|(s, _)| *s).collect();
    assert_eq!(by.len(), 2, "both shards forwarded replies");
}

#[test]
fn fragments_are_reassembled_anywhere_and_handed_to_the_owner() {
    let set = shards(2);
    let mut handed = 0;
    for i in 0..16u8 {
        let client = format!("192.0.2.{}", 100 + i);
        let payload: Vec<u8> = (0..2000).map(|k| (k * 7 + usize::from(i)) as u8).collect();
        let whole = udp(&client, 41000, SERVER, 9000, &payload);
        let frags = frag4(
            &whole,
            &[(0, 800), (800, 800), (1600, 408)],
            100 + u16::from(i),
        );
        // Each fragment read by a different worker.
        let mut out = Vec::new();
        for (k, f) in frags.iter().enumerate() {
            let w = (k + usize::from(i)) % 2;
            out.extend(on(&feed(&set, w, t(1), &[(LAN, f.clone())]), WAN));
        }
        assert_eq!(out.len(), 3, "the three fragments leave");
        // A flow's first datagram starts its connection where it was reassembled.
        assert_eq!(set.owner(&whole), set.owner(&frags[0]));
        for (s, p) in &out {
            assert_eq!(src4(p), ip(ROUTER_WAN));
            assert_eq!(Some(*s), set.owner(&whole));
        }
        let nat_port = sport(&out[0].1);
        // A fragmented reply comes back to the client.
        let rpay: Vec<u8> = (0..1800).map(|k| (k * 3) as u8).collect();
        let reply = udp(SERVER, 9000, ROUTER_WAN, nat_port, &rpay);
        let rfrags = frag4(&reply, &[(0, 1000), (1000, 808)], 900 + u16::from(i));
        // Reply fragments are reassembled by the shard of the (server, router) pair, which is
        // not the shard of every client's connection.
        if set.owner(&rfrags[0]) != set.owner(&reply) {
            handed += 1;
        }
        let mut back = Vec::new();
        for (k, f) in rfrags.iter().enumerate() {
            back.extend(on(&feed(&set, (k + 1) % 2, t(1), &[(WAN, f.clone())]), LAN));
        }
        assert_eq!(back.len(), 2, "both reply fragments reach the client");
        for (s, p) in &back {
            assert_eq!(dst4(p), ip(&client));
            assert_eq!(Some(*s), set.owner(&reply));
        }
        assert_eq!(dport(&back[0].1), 41000);
    }
    assert!(
        handed > 0,
        "some datagrams were reassembled by a shard that does not own them"
    );
}

#[test]
fn icmp_errors_reach_the_shard_of_the_connection_and_are_translated() {
    let set = shards(2);
    for i in 0..16u8 {
        let client = format!("192.0.2.{}", 20 + i);
        let syn = tcp(&client, 33000, SERVER, 443, 1, 0, SYN, b"");
        let w = usize::from(i) % 2;
        let out = on(&feed(&set, w, t(1), &[(LAN, syn)]), WAN);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].0, w,
            "a new connection starts in the reading worker's shard"
        );
        let err = icmp_error("198.51.100.254", &out[0].1, 3, 1);
        assert_eq!(set.owner(&err), Some(w));
        let back = on(&feed(&set, 1 - w, t(1), &[(WAN, err)]), LAN);
        assert_eq!(back.len(), 1, "the error is RELATED and forwarded");
        assert_eq!(back[0].0, w, "handled by the connection's shard");
        assert_eq!(dst4(&back[0].1), ip(&client));
        // The quoted packet is translated back: the client's own address and port.
        let inner = &back[0].1[28..];
        assert_eq!(src4(inner), ip(&client));
        assert_eq!(sport(inner), 33000);
    }
}

#[test]
fn connlimit_counts_connections_of_every_shard() {
    let set = shards(2);
    let c = "192.0.2.50";
    let syn = |p: u16| (LAN, tcp(c, p, SERVER, 80, 1, 0, SYN, b""));
    // a in shard 0, b in shard 1.
    assert_eq!(on(&feed(&set, 0, t(1), &[syn(1024)]), WAN).len(), 1);
    assert_eq!(on(&feed(&set, 1, t(1), &[syn(1025)]), WAN).len(), 1);
    assert_eq!((set.lock(0).ct_len(), set.lock(1).ct_len()), (1, 1));
    // A third connection is over the limit, read by either worker.
    assert_eq!(on(&feed(&set, 0, t(1), &[syn(1026)]), WAN).len(), 0);
    assert_eq!(on(&feed(&set, 1, t(1), &[syn(1027)]), WAN).len(), 0);
    // The client resets b (shard 1): a new connection in shard 0 is allowed again, because
    // shard 0 asks shard 1 whether b still counts.
    let rst = tcp(c, 1025, SERVER, 80, 1, 0, RST, b"");
    feed(&set, 0, t(2), &[(LAN, rst)]);
    assert_eq!(on(&feed(&set, 0, t(3), &[syn(1027)]), WAN).len(), 1);
}

#[test]
fn the_directory_empties_when_connections_end() {
    let set = shards(2);
    let reqs: Vec<(usize, Vec<u8>)> = (0..40u16)
        .map(|i| (LAN, udp("192.0.2.10", 50000 + i, SERVER, 53, b"q")))
        .collect();
    feed(&set, 0, t(1), &reqs[..20]);
    feed(&set, 1, t(1), &reqs[20..]);
    assert_eq!(set.directory().len(), 80, "two tuples per connection");
    set.ct_flush();
    assert_eq!(set.directory().len(), 0, "flush withdraws every tuple");
    feed(&set, 1, t(2), &reqs[..20]);
    feed(&set, 0, t(2), &reqs[20..]);
    assert_eq!(set.directory().len(), 80);
    // Unreplied UDP expires after 30 s; each worker's call runs its shard's timers.
    for s in 0..200 {
        feed(&set, 0, t(40 + s), &[]);
        feed(&set, 1, t(40 + s), &[]);
    }
    assert_eq!(set.lock(0).ct_len() + set.lock(1).ct_len(), 0);
    assert_eq!(set.directory().len(), 0, "expiry withdraws them too");
}

#[test]
fn packets_follow_their_connection_and_new_flows_stay_with_their_reader() {
    let set = shards(4);
    for p in 1000..1100u16 {
        let w = usize::from(p) % 4;
        // One client per connection: the ruleset's connlimit allows two per client.
        let c = format!("192.0.2.{}", p - 900);
        let a = tcp(&c, p, SERVER, 80, 1, 0, SYN, b"");
        assert_eq!(set.owner(&a), None, "no connection yet: any shard");
        let out = on(&feed(&set, w, t(1), &[(LAN, a.clone())]), WAN);
        assert_eq!(out.len(), 1);
        let b = tcp(
            SERVER,
            80,
            ROUTER_WAN,
            sport(&out[0].1),
            1,
            2,
            SYN | ACK,
            b"",
        );
        assert_eq!(set.owner(&a), Some(w));
        assert_eq!(set.owner(&b), Some(w), "and the reply to it");
        let e = icmp_error("198.51.100.254", &out[0].1, 3, 1);
        assert_eq!(set.owner(&e), Some(w), "an error goes where the reply goes");
    }
    let v6 = udp("2001:db8:1::7", 5353, "2001:db8:2::9", 53, b"x");
    assert_eq!(set.owner(&v6), None);
    // Fragments always have an owner (the shard that reassembles them).
    let whole = udp("192.0.2.7", 4000, SERVER, 9000, &[7u8; 1600]);
    let frags = frag4(&whole, &[(0, 800), (800, 808)], 5);
    assert!(set.owner(&frags[0]).is_some());
    assert_eq!(set.owner(&frags[0]), set.owner(&frags[1]));
    // Garbage belongs to no shard in particular (it is dropped wherever it lands).
    assert_eq!(set.owner(&[0x45, 0, 0]), None);
}

#[test]
fn two_threads_drive_the_shards_at_once_and_lose_nothing() {
    let set = shards(2);
    const FLOWS: u16 = 2000;
    // Phase 1: each thread opens half of the flows, in small batches.
    let opened: Vec<Vec<(usize, Vec<u8>)>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2usize)
            .map(|w| {
                let set = &set;
                s.spawn(move || {
                    let mut out = Vec::new();
                    let mine: Vec<u16> = (0..FLOWS).filter(|i| usize::from(*i) % 2 == w).collect();
                    for chunk in mine.chunks(16) {
                        let pkts: Vec<(usize, Vec<u8>)> = chunk
                            .iter()
                            .map(|i| {
                                let c = format!("192.0.2.{}", 10 + i % 200);
                                (LAN, udp(&c, 20000 + i, SERVER, 53, &i.to_be_bytes()))
                            })
                            .collect();
                        out.extend(on(&feed(set, w, t(1), &pkts), WAN));
                    }
                    out
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let out: Vec<(usize, Vec<u8>)> = opened.into_iter().flatten().collect();
    assert_eq!(out.len(), usize::from(FLOWS), "every request forwarded");
    let ports: BTreeSet<u16> = out.iter().map(|(_, p)| sport(p)).collect();
    // Same server and port for all: the NAT port alone must tell the flows apart.
    assert_eq!(
        ports.len(),
        usize::from(FLOWS),
        "unique NAT ports across both threads"
    );
    // Phase 2: the replies, each thread taking the other thread's flows.
    let back: Vec<Vec<(usize, Vec<u8>)>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2usize)
            .map(|w| {
                let (set, out) = (&set, &out);
                s.spawn(move || {
                    let mut got = Vec::new();
                    let mine: Vec<&(usize, Vec<u8>)> = out
                        .iter()
                        .enumerate()
                        .filter(|(k, _)| k % 2 != w)
                        .map(|(_, x)| x)
                        .collect();
                    for chunk in mine.chunks(16) {
                        let pkts: Vec<(usize, Vec<u8>)> = chunk
                            .iter()
                            .map(|(_, p)| (WAN, udp(SERVER, 53, ROUTER_WAN, sport(p), &p[28..30])))
                            .collect();
                        got.extend(on(&feed(set, w, t(2), &pkts), LAN));
                    }
                    got
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let back: Vec<(usize, Vec<u8>)> = back.into_iter().flatten().collect();
    assert_eq!(back.len(), usize::from(FLOWS), "every reply delivered");
    for (_, p) in &back {
        // The payload carries the flow number: the reply reached that flow's client port.
        let i = u16::from_be_bytes([p[28], p[29]]);
        assert_eq!(dport(p), 20000 + i);
        assert_eq!(dst4(p), ip(&format!("192.0.2.{}", 10 + i % 200)));
    }
}

#[test]
fn mutated_and_garbage_packets_never_panic_and_the_directory_stays_consistent() {
    let set = shards(2);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let templates = [
        tcp("192.0.2.10", 4000, SERVER, 80, 1, 0, SYN, b"x"),
        udp("192.0.2.11", 5000, SERVER, 53, b"query"),
        echo("192.0.2.12", SERVER, true, 7, 1, 64),
        udp("2001:db8:1::2", 6000, "2001:db8:2::9", 53, b"v6"),
        frag4(
            &udp("192.0.2.13", 7000, SERVER, 9, &[1u8; 1200]),
            &[(0, 600)],
            3,
        )
        .remove(0),
    ];
    for i in 0..20_000u32 {
        let r = rnd();
        let mut p = templates[(r % 5) as usize].clone();
        // Flip one to three bytes, or truncate, or replace with garbage; or send a valid
        // datagram of a new flow, so that connections keep being made among the garbage.
        match (r >> 8) % 5 {
            4 => {
                let c = format!("192.0.2.{}", 10 + (r >> 16) % 200);
                p = udp(&c, 1024 + (r >> 24) as u16 % 60000, SERVER, 53, b"ok");
            }
            0 => {
                let k = (r >> 16) as usize % p.len();
                p[k] ^= (r >> 32) as u8 | 1;
            }
            1 => {
                for j in 0..3 {
                    let k = (r >> (16 + 8 * j)) as usize % p.len();
                    p[k] = (r >> (40 + j)) as u8;
                }
            }
            2 => p.truncate((r >> 16) as usize % p.len()),
            _ => p = (0..(r % 80)).map(|k| (r >> (k % 56)) as u8).collect(),
        }
        let iface = if (r >> 8) % 5 == 4 {
            LAN
        } else {
            (r >> 60) as usize % 2
        };
        feed(
            &set,
            (i % 2) as usize,
            t(1 + u64::from(i / 4000)),
            &[(iface, p)],
        );
    }
    let conns = set.lock(0).ct_len() + set.lock(1).ct_len();
    assert!(conns > 0, "some mutated packets still made connections");
    // Two tuples per connection (one when a connection's tuples coincide).
    let dir = set.directory().len();
    assert!(
        dir <= 2 * conns && dir >= conns,
        "{dir} tuples for {conns} connections"
    );
    set.ct_flush();
    assert_eq!(set.directory().len(), 0);
}

#[test]
fn the_event_sink_gets_each_connections_events_in_order() {
    let set = shards(2);
    let seen: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let sink = seen.clone();
    set.set_event_sink(Box::new(move |evs| {
        let mut v = sink.lock().unwrap();
        v.extend(evs.drain(..).map(|e| e.to_string()));
    }));
    for i in 0..8u16 {
        let c = format!("192.0.2.{}", 30 + i);
        let mut w = Work::default();
        w.want_events = true;
        w.batch.push((
            LAN,
            PacketBuf::from_slice(&udp(&c, 3000 + i, SERVER, 53, b"q")),
        ));
        set.handle(usize::from(i) % 2, t(1), &mut w);
        assert!(w.events.is_empty(), "events go to the sink");
        let nat_port = sport(w.tx[0].1.packet.as_slice());
        // The reply is drained by the other worker.
        let mut w = Work::default();
        w.want_events = true;
        let r = udp(SERVER, 53, ROUTER_WAN, nat_port, b"a");
        w.batch.push((WAN, PacketBuf::from_slice(&r)));
        set.handle(1 - usize::from(i) % 2, t(1), &mut w);
    }
    let seen = seen.lock().unwrap();
    for i in 0..8u16 {
        let c = format!("src=192.0.2.{} ", 30 + i);
        let kinds: Vec<&str> = seen
            .iter()
            .filter(|l| l.contains(&c))
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(kinds, ["[NEW]", "[UPDATE]"], "{seen:#?}");
    }
}

#[test]
fn the_icmp_error_limit_is_the_routers_not_each_shards() {
    let set = shards(2);
    // 200 datagrams whose TTL runs out at the router, read by both workers at one instant:
    // Time Exceeded is limited to one burst (50) for the router as a whole.
    let mut sent = 0;
    for i in 0..200u16 {
        let mut p = udp("192.0.2.10", 2000 + i, SERVER, 53, b"ttl");
        p[8] = 1;
        p[10] = 0;
        p[11] = 0;
        let ck = wire::checksum::data(&p[..20]);
        p[10..12].copy_from_slice(&ck.to_be_bytes());
        let tx = feed(&set, usize::from(i) % 2, t(1), &[(LAN, p)]);
        sent += on(&tx, LAN).len();
    }
    assert_eq!(sent, 50, "one burst of Time Exceeded for the whole router");
}

/// Zones: equal tuples of two zones steer to one shard and share its directory entry; when
/// one of the two connections ends, the other's packets must still find that shard.
#[test]
fn connections_of_two_zones_with_one_tuple_share_the_entry_until_both_end() {
    let cfg = r#"
[[interface]]
name = "lan0"
kind = "tun"
addresses = ["192.0.2.1/24"]
[[interface]]
name = "lan1"
kind = "tun"
addresses = ["203.0.113.1/24"]
[[interface]]
name = "wan0"
kind = "tun"
addresses = ["198.51.100.1/24"]
[conntrack]
max = 1024
"#;
    let rules = "\
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -i lan0 -j CT --zone 1
-A PREROUTING -i lan1 -j CT --zone 2
COMMIT
";
    let cfg = Config::parse(cfg, "t.toml", Path::new(".")).unwrap();
    let set = ShardSet::new(&cfg, 5, 2).unwrap();
    let r4 = Arc::new(Ruleset::parse(rules, "t.rules", Family::V4).unwrap());
    let r6 = Arc::new(Ruleset::empty(Family::V6));
    for i in 0..set.len() {
        set.lock(i).set_shared_rules(r4.clone(), r6.clone());
    }
    let (lan0, lan1, wan) = (0, 1, 2);
    // The same datagram from two overlapping networks: worker 1 reads the first, so both
    // connections live in shard 1 (the second is steered to the holder of its tuple).
    let q = udp("192.0.2.10", 5000, SERVER, 53, b"q");
    assert_eq!(on(&feed(&set, 1, t(1), &[(lan0, q.clone())]), wan).len(), 1);
    assert_eq!(on(&feed(&set, 0, t(1), &[(lan1, q.clone())]), wan).len(), 1);
    assert_eq!(
        set.lock(1).ct_len(),
        2,
        "one connection per zone, in the owner"
    );
    assert_eq!(set.lock(0).ct_len(), 0);
    assert_eq!(
        set.directory().len(),
        2,
        "one entry per tuple, shared by the zones"
    );
    // Zone 1's connection ends; zone 2's stays and keeps its shard.
    let gone = set.ct_delete(|c| c.tuples[0].zone == 1);
    assert_eq!(gone, 1);
    assert_eq!(
        set.owner(&q),
        Some(1),
        "the entry outlives one of its connections"
    );
    assert_eq!(set.directory().len(), 2);
    let out = feed(&set, 0, t(2), &[(lan1, q.clone())]);
    assert!(out.iter().all(|(s, _)| *s == 1), "sent by the owner shard");
    assert_eq!(on(&out, wan).len(), 1);
    assert_eq!(
        set.lock(0).ct_len(),
        0,
        "no duplicate connection in the reader's shard"
    );
    assert_eq!(set.lock(1).ct_len(), 1);
    set.ct_flush();
    assert_eq!(set.directory().len(), 0, "gone with the last connection");
    assert_eq!(set.owner(&q), None);
}

/// IPv6 fragments of `whole` (a packet without extension headers) cut at `cuts` of its
/// fragmentable part, which is `after` (an extension header whose first byte is patched to
/// name the upper layer) and then the upper layer. `next[k]` is the Next Header of fragment
/// `k`'s Fragment header.
fn frag6_after(
    whole: &[u8],
    cuts: &[(usize, usize)],
    id: u32,
    after: &[u8],
    next: &[u8],
) -> Vec<Vec<u8>> {
    let mut body = after.to_vec();
    if let Some(b) = body.first_mut() {
        *b = whole[6];
    }
    body.extend_from_slice(&whole[40..]);
    cuts.iter()
        .zip(next)
        .map(|(&(off, len), &nh)| {
            let end = (off + len).min(body.len());
            let mut p = whole[..40].to_vec();
            p[6] = 44;
            p.extend_from_slice(&[nh, 0]);
            p.extend_from_slice(&((off as u16) | u16::from(end < body.len())).to_be_bytes());
            p.extend_from_slice(&id.to_be_bytes());
            p.extend_from_slice(&body[off..end]);
            let plen = (p.len() - 40) as u16;
            p[4..6].copy_from_slice(&plen.to_be_bytes());
            p
        })
        .collect()
}

/// Issue 15 item 1: the fragments of one datagram go to one shard whatever differs between
/// them (RFC 8200 §4.5: only the first fragment's Next Header counts; a Destination Options
/// header may follow the Fragment header), for every hash seed and shard count, and the
/// datagram leaves whole whichever workers read its fragments.
#[test]
fn every_fragment_of_a_datagram_reaches_one_shard_whatever_the_seed() {
    let cfg = r#"
[[interface]]
name = "lan0"
kind = "tun"
addresses = ["192.0.2.1/24", "2001:db8:1::1/64"]
[[interface]]
name = "wan0"
kind = "tun"
addresses = ["198.51.100.1/24", "2001:db8:2::1/64"]
[conntrack]
max = 256
"#;
    let cfg = Config::parse(cfg, "t.toml", Path::new(".")).unwrap();
    let payload: Vec<u8> = (0..1200).map(|k| (k * 5) as u8).collect();
    let whole = udp("2001:db8:1::2", 41000, "2001:db8:2::9", 9000, &payload);
    let cuts = [(0, 400), (400, 400), (800, 416)];
    let dest = [0, 0, 1, 4, 0, 0, 0, 0];
    let whole4 = udp("192.0.2.2", 41000, SERVER, 9000, &payload);
    for seed in 0..48u64 {
        for n in [2, 3, 4] {
            let set = ShardSet::new(&cfg, seed, n).unwrap();
            let id = seed as u32 * 8 + n as u32;
            let datagrams = [
                // A Destination Options header after the Fragment header, in the first fragment.
                frag6_after(&whole, &cuts, id, &dest, &[60, 60, 60]),
                // Next Header values that differ between fragments.
                frag6_after(&whole, &cuts, id + 1, &[], &[17, 6, 58]),
                // IPv4: fragments differing in TTL, TOS and DF.
                frag4(&whole4, &[(0, 400), (400, 400), (800, 408)], id as u16)
                    .into_iter()
                    .enumerate()
                    .map(|(k, mut p)| {
                        p[1] = k as u8 * 4;
                        p[6] |= if k == 1 { 0x40 } else { 0 };
                        p[8] = 64 - k as u8;
                        p[10] = 0;
                        p[11] = 0;
                        let ck = wire::checksum::data(&p[..20]);
                        p[10..12].copy_from_slice(&ck.to_be_bytes());
                        p
                    })
                    .collect(),
            ];
            for (d, frags) in datagrams.iter().enumerate() {
                let owners: Vec<Option<usize>> = frags.iter().map(|f| set.owner(f)).collect();
                assert!(
                    owners.iter().all(|o| o.is_some() && *o == owners[0]),
                    "seed {seed}, {n} shards, datagram {d}: owners {owners:?}"
                );
                // Each fragment read by another worker: all three leave.
                let mut out = 0;
                for (k, f) in frags.iter().enumerate() {
                    let home = (k + seed as usize) % n;
                    out += on(&feed(&set, home, t(1), &[(LAN, f.clone())]), WAN).len();
                }
                assert_eq!(out, 3, "seed {seed}, {n} shards, datagram {d}");
            }
            // Nothing is left waiting to time out, in any shard.
            for home in 0..n {
                feed(&set, home, t(70), &[]);
            }
            assert!(
                !set.ct_stats().contains("reassembly timeout"),
                "{}",
                set.ct_stats()
            );
        }
    }
}

/// `route add`/`route del` on a running set (`ShardSet::route_add`/`route_del`): every shard
/// routes by the new table from the next packet on, the shards keep sharing one table, and a
/// snapshot taken before a change still shows the old routes.
#[test]
fn route_changes_reach_every_shard_at_once() {
    use router::route::Route;
    let set = shards(3);
    let dst = "203.0.113.9";
    let probe = |home: usize, sport: u16| {
        let p = udp("192.0.2.10", sport, dst, 53, b"q");
        feed(&set, home, t(1), &[(LAN, p)])
    };
    // No route yet: each shard answers with an ICMP unreachable towards the LAN.
    for home in 0..3 {
        let tx = probe(home, 1000 + home as u16);
        assert!(on(&tx, WAN).is_empty(), "no route, nothing leaves by wan0");
        assert_eq!(on(&tx, LAN).len(), 1, "ICMP destination unreachable");
    }
    let before = set.routes();
    let r = Route {
        prefix: "203.0.113.0/24".parse().unwrap(),
        iface: WAN,
        via: Some(ip("198.51.100.254")),
    };
    assert!(set.route_add(r));
    assert!(!set.route_add(r), "the prefix has a route already");
    for home in 0..3 {
        let tx = probe(home, 2000 + home as u16);
        let out = on(&tx, WAN);
        assert_eq!(out.len(), 1, "shard {home} forwards by the new route");
        assert_eq!(dst4(&out[0].1), ip(dst));
    }
    let now = set.routes();
    for i in 0..3 {
        assert!(Arc::ptr_eq(set.lock(i).routes(), &now), "one table for all");
    }
    assert!(
        before.get(r.prefix).is_none(),
        "the old snapshot is unchanged"
    );
    assert_eq!(now.get(r.prefix), Some(&r));
    drop((before, now));
    assert_eq!(set.route_del(r.prefix), Some(r));
    assert_eq!(set.route_del(r.prefix), None);
    for home in 0..3 {
        let tx = probe(home, 3000 + home as u16);
        assert!(on(&tx, WAN).is_empty(), "deleted: no route again");
    }
}

/// A set whose batches may start at most `budget` new flows (`[conntrack]
/// new_flows_per_batch`), with `rules` for IPv4.
fn rationed(n: usize, budget: usize, rules: &str) -> Arc<ShardSet> {
    let cfg = format!(
        r#"
[[interface]]
name = "lan0"
kind = "tun"
addresses = ["192.0.2.1/24"]
[[interface]]
name = "wan0"
kind = "tun"
addresses = ["198.51.100.1/24"]
[conntrack]
new_flows_per_batch = {budget}
"#
    );
    let cfg = Config::parse(&cfg, "t.toml", Path::new(".")).unwrap();
    let set = ShardSet::new(&cfg, 13, n).unwrap();
    let r4 = Arc::new(Ruleset::parse(rules, "t.rules", Family::V4).unwrap());
    let r6 = Arc::new(Ruleset::empty(Family::V6));
    for i in 0..set.len() {
        set.lock(i).set_shared_rules(r4.clone(), r6.clone());
    }
    set
}

fn budget_drops(set: &ShardSet) -> u64 {
    let stats = set.ct_stats();
    stats
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "drop reason=\"{}\" count=",
                router::engine::NEW_FLOW_BUDGET_DROP
            ))
        })
        .map_or(0, |n| n.parse().unwrap())
}

#[test]
fn a_batch_starts_at_most_its_budget_of_new_connections() {
    for n in [1, 2] {
        let set = rationed(n, 4, RULES);
        // Eight UDP flows, established one batch at a time.
        let known: Vec<(usize, Vec<u8>)> = (0..8u16)
            .map(|i| (LAN, udp("192.0.2.10", 6000 + i, SERVER, 53, b"q")))
            .collect();
        for k in &known {
            assert_eq!(
                on(&feed(&set, 0, t(1), std::slice::from_ref(k)), WAN).len(),
                1
            );
        }
        // A flood batch: a new UDP flow of three datagrams first, then ten new TCP flows
        // (one SYN each) interleaved with the eight known flows.
        let mut batch = vec![(LAN, udp("192.0.2.20", 7000, SERVER, 54, b"x")); 3];
        for i in 0..10u16 {
            let client = format!("192.0.2.{}", 30 + i);
            batch.push((LAN, tcp(&client, 8000 + i, SERVER, 80, 1, 0, SYN, b"")));
            if let Some(k) = known.get(usize::from(i)) {
                batch.push(k.clone());
            }
        }
        let out = on(&feed(&set, 0, t(2), &batch), WAN);
        let ports: Vec<u16> = out.iter().map(|(_, p)| dport(p)).collect();
        // Known flows all pass. Four new connections start: the UDP flow (its first datagram
        // starts it, the next two belong to it) and the first three SYNs; the seven other
        // SYNs are counted drops.
        assert_eq!(
            ports.iter().filter(|&&p| p == 53).count(),
            8,
            "n={n}: {ports:?}"
        );
        assert_eq!(
            ports.iter().filter(|&&p| p == 54).count(),
            3,
            "n={n}: {ports:?}"
        );
        let syns: BTreeSet<u16> = out
            .iter()
            .filter(|(_, p)| dport(p) == 80)
            .map(|(_, p)| sport(p))
            .collect();
        assert_eq!(syns, BTreeSet::from([8000, 8001, 8002]), "n={n}: {ports:?}");
        assert_eq!(budget_drops(&set), 7, "n={n}: {}", set.ct_stats());
        assert_eq!(
            set.directory().len(),
            2 * (8 + 4),
            "n={n}: no connection for a refused flow"
        );
        // The budget is per batch: the next one starts four more.
        let more: Vec<(usize, Vec<u8>)> = (10..16u16)
            .map(|i| {
                let client = format!("192.0.2.{}", 30 + i);
                (LAN, tcp(&client, 8000 + i, SERVER, 80, 1, 0, SYN, b""))
            })
            .collect();
        assert_eq!(on(&feed(&set, 0, t(3), &more), WAN).len(), 4, "n={n}");
        assert_eq!(budget_drops(&set), 9, "n={n}");
    }
}

#[test]
fn the_budget_spares_what_the_raw_table_drops_or_untracks() {
    // A flood the raw table already drops, and traffic it exempts from tracking, must not
    // use up the budget of the connections that are really new.
    let rules = format!(
        "\
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -s 192.0.2.200/32 -j DROP
-A PREROUTING -p udp --dport 53 -j NOTRACK
COMMIT
{RULES}"
    );
    for n in [1, 2] {
        let set = rationed(n, 2, &rules);
        let mut batch: Vec<(usize, Vec<u8>)> = (0..20u16)
            .map(|i| {
                (
                    LAN,
                    tcp("192.0.2.200", 9000 + i, SERVER, 80, 1, 0, SYN, b""),
                )
            })
            .collect();
        for i in 0..6u16 {
            batch.push((LAN, udp("192.0.2.10", 6000 + i, SERVER, 53, b"q")));
        }
        for i in 0..3u16 {
            let client = format!("192.0.2.{}", 11 + i);
            batch.push((LAN, tcp(&client, 8000 + i, SERVER, 80, 1, 0, SYN, b"")));
        }
        let out = on(&feed(&set, 0, t(1), &batch), WAN);
        let ports: Vec<u16> = out.iter().map(|(_, p)| dport(p)).collect();
        // The untracked datagrams pass; the budget of two goes to the first two real new
        // connections, and only the third is refused.
        assert_eq!(ports, [53, 53, 53, 53, 53, 53, 80, 80], "n={n}");
        assert_eq!(budget_drops(&set), 1, "n={n}: {}", set.ct_stats());
        assert_eq!(set.directory().len(), 4, "n={n}: only two SYNs are tracked");
    }
}

/// An FTP data connection that the other worker reads first still starts in its master's
/// shard (the expectation is published in the directory), so it is RELATED and translated
/// back to the client; without that it would start in the other shard as an unknown
/// connection and the FORWARD policy would drop it.
#[test]
fn an_expected_connection_starts_in_its_masters_shard() {
    let cfg = r#"
[[interface]]
name = "lan0"
kind = "tun"
addresses = ["192.0.2.1/24"]
[[interface]]
name = "wan0"
kind = "tun"
addresses = ["198.51.100.1/24"]
[conntrack]
new_flows_per_batch = 0
[helpers]
auto_assign = true
"#;
    let rules = "*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o wan0 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -i lan0 -p tcp --dport 21 -j ACCEPT
COMMIT
";
    let cfg = Config::parse(cfg, "t.toml", Path::new(".")).unwrap();
    let set = ShardSet::new(&cfg, 11, 2).unwrap();
    let r4 = Arc::new(Ruleset::parse(rules, "t.rules", Family::V4).unwrap());
    for i in 0..set.len() {
        set.lock(i)
            .set_shared_rules(r4.clone(), Arc::new(Ruleset::empty(Family::V6)));
    }
    let c = "192.0.2.2";
    let port = b"PORT 192,0,2,2,195,80\r\n";
    // The control connection, read by worker 0 (its shard is 0).
    feed(
        &set,
        0,
        t(1),
        &[(LAN, tcp(c, 40000, SERVER, 21, 1000, 0, SYN, b""))],
    );
    feed(
        &set,
        1,
        t(1),
        &[(
            WAN,
            tcp(SERVER, 21, ROUTER_WAN, 40000, 5000, 1001, SYN | ACK, b""),
        )],
    );
    feed(
        &set,
        0,
        t(1),
        &[(LAN, tcp(c, 40000, SERVER, 21, 1001, 5001, ACK, b""))],
    );
    feed(
        &set,
        0,
        t(1),
        &[(
            LAN,
            tcp(c, 40000, SERVER, 21, 1001, 5001, PSH | ACK, b"USER a\r\n"),
        )],
    );
    let tx = feed(
        &set,
        0,
        t(1),
        &[(LAN, tcp(c, 40000, SERVER, 21, 1009, 5001, PSH | ACK, port))],
    );
    assert_eq!((set.lock(0).ct_len(), set.lock(1).ct_len()), (1, 0));
    assert_eq!(set.lock(0).expect_list().len(), 1);
    let sent = on(&tx, WAN);
    assert!(sent[0].1.ends_with(b"PORT 198,51,100,1,195,80\r\n"));
    // The server's data connection, read by worker 1.
    let syn = tcp(SERVER, 20, ROUTER_WAN, 50000, 9000, 0, SYN, b"");
    assert_eq!(set.owner(&syn), Some(0), "steered to the master's shard");
    let tx = feed(&set, 1, t(1), &[(WAN, syn)]);
    let lan = on(&tx, LAN);
    assert_eq!(lan.len(), 1, "the data connection is RELATED and forwarded");
    assert_eq!(
        (lan[0].0, dst4(&lan[0].1), dport(&lan[0].1)),
        (0, ip(c), 50000)
    );
    assert_eq!((set.lock(0).ct_len(), set.lock(1).ct_len()), (2, 0));
    // Used: the directory no longer steers by it.
    assert!(set.lock(0).expect_list().is_empty());
    let other = tcp(SERVER, 21, ROUTER_WAN, 50001, 1, 0, SYN, b"");
    assert_eq!(set.owner(&other), None);
}
