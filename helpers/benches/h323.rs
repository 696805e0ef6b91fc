//! Messages per second through the H.323 walkers (the PER reading alone, from the top of a
//! message to its addresses, skipping the rest), and through the `Q.931` and `H.245` helpers'
//! `handle` (TPKT framing, walk, the expectations and events it makes).
//!
//! `cargo bench -p helpers --bench h323`

use conntrack::tuple::{Dir, Tuple};
use conntrack::Instant;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use helpers::h323::per::PerReader;
use helpers::h323::{h245, q931, ras, Walk};
use helpers::{HelperOutput, HelperPacket, Registry};
use std::hint::black_box;
use std::time::Duration;

const CAPTURE: &str = include_str!("../tests/data/h323/messages.tsv");
const VECTORS: &str = include_str!("../tests/data/h323/vectors.tsv");

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// The payload of frame `n` of the capture.
fn frame(n: &str) -> Vec<u8> {
    let l = CAPTURE
        .lines()
        .find(|l| l.split('\t').next() == Some(n))
        .unwrap();
    unhex(l.split('\t').nth(7).unwrap())
}

fn vector(name: &str) -> Vec<u8> {
    unhex(
        VECTORS
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('\t'))
            .unwrap(),
    )
}

fn tpkt(msg: &[u8]) -> Vec<u8> {
    let n = msg.len() + 4;
    [&[3, 0, (n >> 8) as u8, n as u8][..], msg].concat()
}

fn walkers(c: &mut Criterion) {
    let mut g = c.benchmark_group("h323_walk");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    let q931: [(&str, Vec<u8>); 3] = [
        ("setup_capture_160B", frame("6")),
        ("connect_capture_97B", frame("18")),
        ("setup_faststart_vector", vector("sim_setup_frame")),
    ];
    for (name, msg) in &q931 {
        let mut w = Walk::default();
        g.bench_function(*name, |b| {
            b.iter(|| {
                w.clear();
                let parts: [&[u8]; 1] = [black_box(msg)];
                q931::walk_message(&parts, 0, msg.len(), &mut w).unwrap();
                w.found.len()
            })
        });
    }
    let rasm: [(&str, Vec<u8>); 2] = [
        ("rrq_capture_337B", frame("71")),
        ("acf_capture", frame("64")),
    ];
    for (name, msg) in &rasm {
        let mut w = Walk::default();
        g.bench_function(*name, |b| {
            b.iter(|| {
                w.clear();
                let parts: [&[u8]; 1] = [black_box(msg)];
                ras::walk(&mut PerReader::new(&parts), &mut w).unwrap();
                w.found.len()
            })
        });
    }
    let h245m: [(&str, Vec<u8>); 3] = [
        ("olc_capture", frame("38")[4..].to_vec()),
        ("olc_ack_capture", frame("41")[4..].to_vec()),
        ("tcs_capture_not_read", frame("25")[4..].to_vec()),
    ];
    for (name, msg) in &h245m {
        let mut w = Walk::default();
        g.bench_function(*name, |b| {
            b.iter(|| {
                w.clear();
                let parts: [&[u8]; 1] = [black_box(msg)];
                h245::walk(&mut PerReader::new(&parts), &mut w).unwrap();
                w.found.len()
            })
        });
    }
    g.finish();
}

fn handle(c: &mut Criterion) {
    let registry = Registry::builtin();
    let o = Tuple {
        src: "10.1.3.143".parse().unwrap(),
        dst: "10.1.6.18".parse().unwrap(),
        src_id: 32803,
        dst_id: 1720,
        proto: 6,
        zone: 0,
    };
    let mut nat = o.invert();
    nat.dst = "198.51.100.1".parse().unwrap();
    let mut g = c.benchmark_group("h323_handle");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    let cases: [(&str, &str, Dir, Vec<u8>, bool); 4] = [
        ("q931_setup_nat", "Q.931", Dir::Original, frame("6"), true),
        ("q931_connect", "Q.931", Dir::Reply, frame("18"), false),
        ("h245_olc_nat", "H.245", Dir::Original, frame("38"), true),
        (
            "h245_tcs_no_address",
            "H.245",
            Dir::Reply,
            tpkt(&frame("25")[4..]),
            false,
        ),
    ];
    for (name, helper, dir, seg, natted) in &cases {
        let h = registry.get(helper).unwrap().clone();
        let tuples = [o, if *natted { nat } else { o.invert() }];
        let mut state = h.new_state();
        let mut out = HelperOutput::default();
        let mut seq = 1000u32;
        g.bench_function(*name, |b| {
            b.iter(|| {
                out.clear();
                let pkt = HelperPacket {
                    now: Instant::ZERO,
                    dir: *dir,
                    tuples: &tuples,
                    nat: *natted,
                    seq: Some(seq),
                    payload: &[black_box(seg)],
                };
                h.handle(state.as_mut(), &pkt, &mut out);
                seq = seq.wrapping_add(seg.len() as u32);
                out.events.len()
            })
        });
        assert!(!out.events.is_empty() || *name == "h245_tcs_no_address");
    }
    g.finish();
}

criterion_group!(benches, walkers, handle);
criterion_main!(benches);
