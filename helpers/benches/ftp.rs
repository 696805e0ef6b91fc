//! The FTP helper's cost per control segment (`Helper::handle` alone): in-order segments
//! without a command the helper reads (what most of a control connection is) and with one
//! (parse, checks, the expectation and its event).
//!
//! `cargo bench -p helpers --bench ftp`

use conntrack::tuple::{Dir, Tuple};
use conntrack::Instant;
use criterion::{criterion_group, criterion_main, Criterion};
use helpers::{HelperOutput, HelperPacket, Registry};
use std::hint::black_box;
use std::time::Duration;

fn tuples() -> [Tuple; 2] {
    let o = Tuple {
        src: "192.0.2.10".parse().unwrap(),
        dst: "198.51.100.5".parse().unwrap(),
        src_id: 40000,
        dst_id: 21,
        proto: 6,
        zone: 0,
    };
    [o, o.invert()]
}

/// The server's answer to HELP in `tests/data/pcap/ndpi-ftp.pcap` (frame 26, 241 bytes).
const HELP: &[u8] = b" ABOR ACCT ALLO APPE CDUP CWD  DELE EPRT EPSV FEAT HELP LIST MDTM MKD\r\n \
MODE NLST NOOP OPTS PASS PASV PORT PWD  QUIT REIN REST RETR RMD  RNFR\r\n \
RNTO SITE SIZE SMNT STAT STOR STOU STRU SYST TYPE USER XCUP XCWD XMKD\r\n XPWD XRMD\r\n\
214 Help OK.\r\n";

fn bench(c: &mut Criterion) {
    let registry = Registry::builtin();
    let ftp = registry.get("ftp").expect("ftp").clone();
    let t = tuples();
    let mut g = c.benchmark_group("ftp_handle");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let cases: [(&str, Dir, &[u8]); 4] = [
        ("client_no_command", Dir::Original, b"RETR pub/file.bin\r\n"),
        ("server_no_command_241B", Dir::Reply, HELP),
        ("client_port", Dir::Original, b"PORT 192,0,2,10,4,1\r\n"),
        (
            "server_227",
            Dir::Reply,
            b"227 Entering Passive Mode (198,51,100,5,195,80).\r\n",
        ),
    ];
    for (name, dir, line) in cases {
        let mut state = ftp.new_state();
        let mut out = HelperOutput::default();
        // A first segment so that the next ones are read (Linux skips a direction's first).
        let mut seq = 1000u32;
        let first = HelperPacket {
            now: Instant::ZERO,
            dir,
            tuples: &t,
            nat: false,
            seq: Some(seq),
            payload: &[b"NOOP\r\n"],
        };
        ftp.handle(state.as_mut(), &first, &mut out);
        seq += 6;
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                let pkt = HelperPacket {
                    now: Instant::ZERO,
                    dir,
                    tuples: &t,
                    nat: false,
                    seq: Some(seq),
                    payload: &[line],
                };
                ftp.handle(state.as_mut(), black_box(&pkt), &mut out);
                seq = seq.wrapping_add(line.len() as u32);
                black_box(out.expects.len())
            })
        });
        // Every segment was read in order: a command made its expectation each time.
        assert_eq!(
            out.expects.len(),
            usize::from(name.ends_with("port") || name.ends_with("227"))
        );
        assert!(out.events.iter().all(|e| e.kind.name() == "parsed"));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
