//! What a conntrack helper costs (issue 17, item 9):
//! - packets per second of an FTP control connection (client command, server reply, in
//!   turn) with the `ftp` helper attached and without it, through the same 10-rule
//!   stateful ruleset as `pipeline`;
//! - expectation create, lookup and use with 100,000 live expectations in the table;
//! - packets per second of an H.323 call signalling connection (TCP 1720, a Q.931 message
//!   each way) with the `Q.931` helper attached and without it (issue 18, item 9).
//!
//! Run: `cargo bench -p router --bench helpers`

use conntrack::expect::{ExpectLimits, ExpectTable, Expectation};
use conntrack::tuple::{Dir, Tuple, TupleMask};
use conntrack::{ConnId, Instant, PacketBuf};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use router::config::Config;
use router::engine::Engine;
use rules::{Family, Ruleset};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

const RULES: &str = "\
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -i wan0 -p tcp -m tcp --dport 22 -j DROP
-A FORWARD -i wan0 -p tcp -m tcp --dport 23 -j DROP
-A FORWARD -s 203.0.113.0/24 -i wan0 -j DROP
-A FORWARD -d 198.51.100.77/32 -p udp -m udp --dport 53 -j ACCEPT
-A FORWARD -i wan0 -p icmp -m icmp --icmp-type 8 -j ACCEPT
-A FORWARD -i lan0 -o wan0 -p tcp -j ACCEPT
-A FORWARD -i lan0 -o wan0 -p udp -j ACCEPT
-A FORWARD -i lan0 -o wan0 -j ACCEPT
COMMIT
";

fn engine(helped: bool) -> Engine {
    let helpers = if helped {
        "[helpers]\nauto_assign = true\n"
    } else {
        ""
    };
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
[[route]]
prefix = "0.0.0.0/0"
interface = "wan0"
via = "198.51.100.254"
[conntrack]
checksum = false
{helpers}
"#
    );
    let cfg = Config::parse(&cfg, "bench.toml", Path::new(".")).unwrap();
    let rules = Ruleset::parse(RULES, "bench.rules", Family::V4).unwrap();
    let mut e = Engine::with_rules(&cfg, 42, rules, Ruleset::empty(Family::V6)).unwrap();
    e.set_events(false);
    e
}

const C: &str = "192.0.2.2";
const S: &str = "198.51.100.9";
const CMD: &[u8] = b"NOOP\r\n";
const ANSWER: &[u8] = b"200 NOOP ok.\r\n";

/// Sets a segment's sequence and acknowledgement numbers (checksums are not verified in
/// this configuration, so they are left alone).
fn set_seq_ack(p: &mut [u8], seq: u32, ack: u32) {
    p[24..28].copy_from_slice(&seq.to_be_bytes());
    p[28..32].copy_from_slice(&ack.to_be_bytes());
}

/// An established FTP control connection whose first segment each way is behind it (the
/// helper then parses every later one); returns the next (client, server) sequence numbers.
fn control_connection(e: &mut Engine, now: Instant) -> (u32, u32) {
    use testkit::flags::*;
    let feed = |e: &mut Engine, iface: usize, p: Vec<u8>| {
        e.handle_packet(now, iface, PacketBuf::from_slice(&p));
        while e.poll_transmit().is_some() {}
    };
    feed(e, 0, testkit::tcp(C, 40000, S, 21, 1000, 0, SYN, b""));
    feed(
        e,
        1,
        testkit::tcp(S, 21, C, 40000, 5000, 1001, SYN | ACK, b""),
    );
    feed(e, 0, testkit::tcp(C, 40000, S, 21, 1001, 5001, ACK, b""));
    feed(
        e,
        1,
        testkit::tcp(S, 21, C, 40000, 5001, 1001, PSH | ACK, b"220 hi\r\n"),
    );
    feed(
        e,
        0,
        testkit::tcp(C, 40000, S, 21, 1001, 5009, PSH | ACK, b"USER ftp\r\n"),
    );
    (1011, 5009)
}

fn bench_control(c: &mut Criterion) {
    let mut g = c.benchmark_group("ftp_control");
    g.throughput(Throughput::Elements(2));
    g.measurement_time(Duration::from_secs(4));
    for helped in [false, true] {
        let now = Instant::from_secs(10);
        let mut e = engine(helped);
        let (mut cs, mut ss) = control_connection(&mut e, now);
        let mut cmd = testkit::tcp(C, 40000, S, 21, cs, ss, 0x18, CMD);
        let mut ans = testkit::tcp(S, 21, C, 40000, ss, cs, 0x18, ANSWER);
        let name = if helped { "helped" } else { "unhelped" };
        g.bench_function(name, |b| {
            b.iter(|| {
                set_seq_ack(&mut cmd, cs, ss);
                e.handle_packet(now, 0, PacketBuf::from_slice(&cmd));
                cs = cs.wrapping_add(CMD.len() as u32);
                set_seq_ack(&mut ans, ss, cs);
                e.handle_packet(now, 1, PacketBuf::from_slice(&ans));
                ss = ss.wrapping_add(ANSWER.len() as u32);
                let mut n = 0;
                while e.poll_transmit().is_some() {
                    n += 1;
                }
                assert_eq!(n, 2, "both segments forwarded");
            })
        });
    }
    g.finish();
}

const H323_CAPTURE: &str = include_str!("../../helpers/tests/data/h323/messages.tsv");
const H323_VECTORS: &str = include_str!("../../helpers/tests/data/h323/vectors.tsv");

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// Two Q.931 messages without addresses (what most of a call's signalling is): the callee's
/// Alerting of `ndpi-h323.pcap` (frame 14, 64 bytes) and a caller's Release Complete
/// (`vectors.tsv`, in a Q.931 frame): the helper frames and walks both, expects nothing.
fn q931_pair() -> (Vec<u8>, Vec<u8>) {
    let alerting = H323_CAPTURE
        .lines()
        .find(|l| l.starts_with("14\t"))
        .and_then(|l| l.split('\t').nth(7))
        .map(unhex)
        .unwrap();
    let uuie = H323_VECTORS
        .lines()
        .find_map(|l| l.strip_prefix("releaseComplete\t"))
        .map(unhex)
        .unwrap();
    let n = uuie.len() + 1;
    let q = [
        &[
            0x08,
            0x02,
            0x12,
            0x34,
            0x5a,
            0x7e,
            (n >> 8) as u8,
            n as u8,
            0x05,
        ][..],
        &uuie,
    ]
    .concat();
    let t = q.len() + 4;
    let release = [&[3, 0, (t >> 8) as u8, t as u8][..], &q].concat();
    (release, alerting)
}

fn bench_q931(c: &mut Criterion) {
    use testkit::flags::*;
    let mut g = c.benchmark_group("q931_call");
    g.throughput(Throughput::Elements(2));
    g.measurement_time(Duration::from_secs(4));
    let (from_caller, from_callee) = q931_pair();
    for helped in [false, true] {
        let now = Instant::from_secs(10);
        let mut e = engine(helped);
        let feed = |e: &mut Engine, iface: usize, p: Vec<u8>| {
            e.handle_packet(now, iface, PacketBuf::from_slice(&p));
            while e.poll_transmit().is_some() {}
        };
        feed(
            &mut e,
            0,
            testkit::tcp(C, 40001, S, 1720, 1000, 0, SYN, b""),
        );
        feed(
            &mut e,
            1,
            testkit::tcp(S, 1720, C, 40001, 5000, 1001, SYN | ACK, b""),
        );
        feed(
            &mut e,
            0,
            testkit::tcp(C, 40001, S, 1720, 1001, 5001, ACK, b""),
        );
        let (mut cs, mut ss) = (1001u32, 5001u32);
        let mut out = testkit::tcp(C, 40001, S, 1720, cs, ss, 0x18, &from_caller);
        let mut back = testkit::tcp(S, 1720, C, 40001, ss, cs, 0x18, &from_callee);
        let name = if helped { "helped" } else { "unhelped" };
        g.bench_function(name, |b| {
            b.iter(|| {
                set_seq_ack(&mut out, cs, ss);
                e.handle_packet(now, 0, PacketBuf::from_slice(&out));
                cs = cs.wrapping_add(from_caller.len() as u32);
                set_seq_ack(&mut back, ss, cs);
                e.handle_packet(now, 1, PacketBuf::from_slice(&back));
                ss = ss.wrapping_add(from_callee.len() as u32);
                let mut n = 0;
                while e.poll_transmit().is_some() {
                    n += 1;
                }
                assert_eq!(n, 2, "both segments forwarded");
            })
        });
    }
    g.finish();
}

/// An expected data connection to port `n` of host `n >> 16`.
fn expected(n: u32) -> Tuple {
    Tuple {
        src: std::net::Ipv4Addr::new(198, 51, 100, 9).into(),
        dst: std::net::Ipv4Addr::from(0xc000_0200 | (n >> 16)).into(),
        src_id: 0,
        dst_id: (n & 0xffff) as u16,
        proto: 6,
        zone: 0,
    }
}

fn bench_expectations(c: &mut Criterion) {
    const LIVE: u32 = 100_000;
    let now = Instant::from_secs(1);
    let until = now + Duration::from_secs(300);
    let mask = TupleMask {
        src_id: 0,
        ..TupleMask::EXACT
    };
    let master = |n: u32| ConnId::from_raw(n, 0);
    let mut t = ExpectTable::new(2 * LIVE as usize);
    for n in 0..LIVE {
        let e = Expectation::new(master(n), expected(n), mask, until, "ftp", Dir::Reply);
        t.insert(e, (n, expected(n)), ExpectLimits::default(), now)
            .unwrap();
    }
    let mut g = c.benchmark_group("expectations_100k_live");
    g.throughput(Throughput::Elements(1));
    let mut k = 0u32;
    g.bench_function("lookup", |b| {
        b.iter(|| {
            k = (k + 7919) % LIVE;
            let mut want = expected(k);
            want.src_id = 20;
            black_box(t.find(&want, now).is_some())
        })
    });
    // One more created and used, with the table at 100,000 the whole time.
    let mut n = LIVE;
    g.bench_function("create_and_use", |b| {
        b.iter(|| {
            let e = Expectation::new(master(n), expected(n), mask, until, "ftp", Dir::Reply);
            t.insert(e, (n, expected(n)), ExpectLimits::default(), now)
                .unwrap();
            let mut incoming = expected(n);
            incoming.src_id = 20;
            assert!(t.take(&incoming, now).is_some());
            n = n.wrapping_add(1) % 0x00ff_ffff;
            if n < LIVE {
                n = LIVE;
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench_control, bench_q931, bench_expectations);
criterion_main!(benches);
