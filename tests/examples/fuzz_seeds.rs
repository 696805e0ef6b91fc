//! Writes the seed corpora of the fuzz targets (`fuzz/seeds/<target>/`) from the repository's
//! test data and `testkit` packets, in each harness's input layout (see the `fuzzing` module
//! of each crate). Run from the repository root:
//!
//! ```text
//! cargo run -p tests --example fuzz_seeds -- fuzz/seeds
//! ```
//!
//! The seeds are committed (they are small); the replay test (`tests/tests/fuzz_replay.rs`)
//! runs them through the harnesses, and `scripts/fuzz.sh` starts every fuzzer from them.

use std::path::{Path, PathBuf};

use testkit::flags::{ACK, FIN, PSH, SYN};
use testkit::{echo, frag4, icmp_error, ip, tcp, tcp_opts, udp};
use wire::fuzzing::record;

/// Records of at most this many packets are taken from each capture.
const PCAP_RECORDS: usize = 12;

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/seeds".into()),
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut n = 0;
    let mut put = |target: &str, name: &str, bytes: Vec<u8>| {
        let dir = out.join(target);
        std::fs::create_dir_all(&dir).expect("create the seed folder");
        std::fs::write(dir.join(name), bytes).expect("write a seed");
        n += 1;
    };
    let pcaps = captures(&root);

    // wire: every view, selector first (see wire::fuzzing::TARGETS).
    for (name, p) in packets() {
        let sel = if p[0] >> 4 == 4 { 0 } else { 1 };
        put("wire", &format!("ip-{name}"), [&[sel][..], &p].concat());
        if let Some((proto, l4)) = transport(&p) {
            let sel = match proto {
                6 => 2,
                17 => 3,
                136 => 4,
                1 => 5,
                58 => 6,
                132 => 7,
                33 => 8,
                _ => continue,
            };
            put("wire", &format!("l4-{name}"), [&[sel][..], l4].concat());
        }
    }
    for (name, frames) in &pcaps {
        for (i, f) in frames.iter().take(3).enumerate() {
            put("wire", &format!("eth-{name}-{i}"), [&[9][..], f].concat());
        }
    }
    put("wire", "arp-request", [&[10][..], &arp(1)[14..]].concat());
    put("wire", "eth-arp", [&[9][..], &arp(1)].concat());
    put("wire", "options-tcp", [&[11][..], &SYN_OPTS[..]].concat());
    put("wire", "checksum", [&[12, 3][..], &packets()[0].1].concat());
    put(
        "wire",
        "buffers",
        vec![13, 5, 3, 9, 0, 3, 1, 2, 3, 0, 4, 4, 2, 9, 5, 0, 0, 1, 2, 0],
    );

    // conntrack: flows as the tracker sees them, in both directions.
    for (name, flow) in flows() {
        let mut v = vec![0];
        for (ctl, p) in &flow {
            v.extend(record(*ctl, p));
        }
        put("conntrack", &name, v);
    }

    // defrag: datagrams cut into fragments, in order, reversed, overlapping.
    for (name, frags) in fragment_sets() {
        let mut v = vec![0];
        for f in &frags {
            v.extend(record(1, f));
        }
        put("defrag", &name, v);
    }

    // rules: every ruleset file of the repository.
    for dir in ["rules/tests/data/rules", "tests/data/compat"] {
        for e in std::fs::read_dir(root.join(dir)).expect("rules folder") {
            let p = e.expect("entry").path();
            let name = p
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read(&p).expect("rules file");
            let v6 = name.contains('6');
            let counters = name.contains("counters");
            let flags = u8::from(v6) | u8::from(counters) << 1;
            put("rules", &name, [&[flags][..], &text].concat());
        }
    }
    put(
        "rules",
        "engine.v4.rules",
        [&[0][..], router::fuzzing::ENGINE_RULES_V4.as_bytes()].concat(),
    );
    put(
        "rules",
        "engine.v6.rules",
        [&[1][..], router::fuzzing::ENGINE_RULES_V6.as_bytes()].concat(),
    );

    // config: the README's full example and a minimal gateway.
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    let example = readme
        .split("```toml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("the README's configuration example");
    put("config", "readme.toml", example.as_bytes().to_vec());
    put("config", "gateway.toml", GATEWAY_TOML.as_bytes().to_vec());

    // control: each request, a filter, response lines.
    let requests = [
        r#"{"cmd":"ct-list","filter":{"proto":"tcp","src":"192.0.2.2","dport":80,"state":"ESTABLISHED"}}"#,
        r#"{"cmd":"ct-delete","filter":{"dst":"2001:db8::1","sport":53}}"#,
        r#"{"cmd":"ct-events","json":true}"#,
        r#"{"cmd":"ct-stats"}"#,
        r#"{"cmd":"ct-flush"}"#,
        r#"{"cmd":"rules-list","counters":true}"#,
        r#"{"cmd":"reload"}"#,
        r#"{"cmd":"trace","json":false}"#,
    ];
    let responses = concat!(
        r#"{"type":"line","text":"udp 17 29 src=192.0.2.2 dst=198.51.100.2 sport=5000 dport=53"}"#,
        "\n",
        r#"{"type":"note","text":"1 flow entries"}"#,
        "\n",
        r#"{"type":"dropped","count":3}"#,
        "\n",
        r#"{"type":"error","message":"gateway.rules:3:5: unknown match"}"#,
        "\n",
        r#"{"type":"end"}"#,
        "\n"
    );
    for (i, r) in requests.iter().enumerate() {
        put(
            "control",
            &format!("request-{i}"),
            format!("{r}\n{responses}").into_bytes(),
        );
    }

    // pcap: the captures, cut to their first records, and a raw-IP capture in both byte
    // orders and resolutions.
    for e in std::fs::read_dir(root.join("tests/data/pcap")).expect("pcap folder") {
        let p = e.expect("entry").path();
        let bytes = std::fs::read(&p).expect("pcap");
        let name = p
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        let seed = if router::pcap::parse(&bytes).is_ok() {
            first_records(&bytes, PCAP_RECORDS)
        } else {
            // pcapng: its first blocks, which the reader must refuse cleanly.
            bytes[..bytes.len().min(512)].to_vec()
        };
        put("pcap", &name, seed);
    }
    let raw: Vec<Vec<u8>> = packets().into_iter().map(|(_, p)| p).take(6).collect();
    put("pcap", "raw-ns-le.pcap", pcap_file(101, &raw, true, true));
    put("pcap", "raw-us-be.pcap", pcap_file(101, &raw, false, false));

    // l2: frames and sends on a TAP link (our MAC 02:00:5e:00:53:01, 192.0.2.1, 2001:db8:1::1).
    for (name, recs) in l2_sessions() {
        let mut v = vec![0];
        for (ctl, b) in &recs {
            v.extend(record(*ctl, b));
        }
        put("l2", &name, v);
    }

    // engine: traffic across the harness's gateway.
    for (name, recs) in engine_sessions(&pcaps) {
        let mut v = vec![0];
        for (ctl, b) in &recs {
            v.extend(record(*ctl, b));
        }
        put("engine", &name, v);
    }

    // helper_*: the helpers' sessions (settings byte, then helpers::fuzzing records).
    for (target, name, settings, recs) in helper_sessions(&root) {
        let mut v = vec![settings];
        for (ctl, cut, b) in &recs {
            v.extend(helpers::fuzzing::record(*ctl, *cut, b));
        }
        put(target, &name, v);
    }
    // ipsec_decap: ipsec_hooks::fuzzing records (control = op << 2 | SA, arg, bytes).
    let rec = ipsec_hooks::fuzzing::record;
    let mut every = Vec::new();
    for op in 1..8u8 {
        for sa in 0..4u8 {
            every.extend(rec(op << 2 | sa, 17 * op + sa, b"every op on every SA"));
        }
    }
    put("ipsec_decap", "every-op-every-sa", every);
    for sa in 0..4usize {
        let esp = ipsec_hooks::fuzzing::sealed(sa, 1, b"raw ESP");
        let mut v = rec(0, 0, &esp);
        v.extend(rec(0, 0, &esp)); // and its replay
        v.extend(rec(
            0,
            0,
            &ipsec_hooks::fuzzing::sealed(sa, 40, b"far ahead"),
        ));
        put("ipsec_decap", &format!("raw-sa{sa}"), v);
    }
    let mut order = Vec::new();
    for (op, arg) in [
        (1u8, 0u8),
        (5, 0),
        (5, 0),
        (4, 0),
        (6, 1),
        (3, 40),
        (7, 200),
        (1, 0),
    ] {
        order.extend(rec(op << 2 | 2, arg, b"esn, out of order"));
    }
    put("ipsec_decap", "esn-order-and-time", order);

    // ipsec_parse: a selector byte (0 state, 1 policy, 2 selector, 3 state id, 4 policy id),
    // then the line.
    let key = "0x0102030405060708090a0b0c0d0e0f1011121314";
    let lines = [
        (0u8, format!("src 203.0.113.1 dst 203.0.113.2 proto esp spi 0x1000 reqid 1 mode tunnel replay-window 64 flag esn aead 'rfc4106(gcm(aes))' {key} 128 sel src 192.0.2.0/24 dst 198.51.100.0/24 limit time-soft 30 limit packet-hard 100")),
        (0, format!("src 2001:db8::1 dst 2001:db8::2 proto esp spi 257 mode transport flag af-unspec replay-oseq 0xfffffffe aead \"rfc4106(gcm(aes))\" {key} 128")),
        (1, "src 192.0.2.0/24 dst 198.51.100.0/24 proto tcp dport 443 dir out priority 10 action allow tmpl src 203.0.113.1 dst 203.0.113.2 proto esp reqid 1 mode tunnel level use".into()),
        (1, "src ::/0 dst 2001:db8::/32 proto ipv6-icmp type 128 code 0 dir fwd ptype main tmpl proto esp spi 0x10 mode transport".into()),
        (2, "src 10.0.0.0/8 dst 0.0.0.0/0 proto udp sport 500".into()),
        (3, "src 203.0.113.1 dst 203.0.113.2 proto esp spi 0x1000".into()),
        (4, "src 192.0.2.0/24 dst 198.51.100.0/24 dir in".into()),
    ];
    for (i, (which, line)) in lines.iter().enumerate() {
        put(
            "ipsec_parse",
            &format!("line-{i}"),
            [&[*which][..], line.as_bytes()].concat(),
        );
    }

    // h323_per: a type selector and a chain cut, then an encoding (each message, read as
    // each type: the fuzzer takes it from there).
    let h323 = h323_messages(&root);
    for sel in 0..helpers::fuzzing::H323_TYPES.len() as u8 {
        for (name, _, bytes) in h323.iter().step_by(5) {
            put(
                "h323_per",
                &format!("{sel:02}-{name}"),
                [&[sel, 0x35][..], bytes].concat(),
            );
        }
    }
    eprintln!("wrote {n} seeds under {}", out.display());
}

/// The H.323 messages of the tests: the capture's (RAS datagrams, TPKT frames of Q.931 and
/// H.245) and the hand-made ones, as (name, kind, bytes), kind "ras", "q931" (a TPKT frame)
/// or "h245" (a TPKT frame).
fn h323_messages(root: &Path) -> Vec<(String, &'static str, Vec<u8>)> {
    let data = root.join("helpers/tests/data/h323");
    let unhex = |s: &str| -> Vec<u8> {
        (0..s.len() / 2)
            .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
            .collect()
    };
    let tpkt = |m: &[u8]| {
        let n = m.len() + 4;
        [&[3, 0, (n >> 8) as u8, n as u8][..], m].concat()
    };
    let mut v = Vec::new();
    let captured = std::fs::read_to_string(data.join("messages.tsv")).expect("h323 capture");
    for l in captured.lines().filter(|l| !l.starts_with('#')) {
        let c: Vec<&str> = l.split('\t').collect();
        let kind = match (c[1], c[3], c[5]) {
            ("udp", ..) => "ras",
            (_, "1232", _) | (_, _, "1232") => "h245",
            _ => "q931",
        };
        v.push((format!("capture-{}", c[0]), kind, unhex(c[7])));
    }
    let made = std::fs::read_to_string(data.join("vectors.tsv")).expect("h323 vectors");
    for l in made.lines() {
        let (name, hex) = l.split_once('\t').expect("name and hex");
        let bytes = unhex(hex);
        let (kind, bytes) = if name.starts_with("msc_") {
            ("h245", tpkt(&bytes))
        } else if name == "olc_fast" {
            // A request (0 00 0 0011) with the OLC aligned after it.
            ("h245", tpkt(&[&[0x03][..], &bytes].concat()))
        } else if name == "sim_setup_frame" {
            ("q931", bytes)
        } else if name.ends_with("Request") || name.ends_with("Confirm") {
            ("ras", bytes)
        } else {
            // An H323-UserInformation: in a Q.931 SETUP in a TPKT.
            let n = bytes.len() + 1;
            let q = [
                &[
                    0x08,
                    0x02,
                    0x12,
                    0x34,
                    0x05,
                    0x7e,
                    (n >> 8) as u8,
                    n as u8,
                    0x05,
                ][..],
                &bytes,
            ]
            .concat();
            ("q931", tpkt(&q))
        };
        v.push((name.to_owned(), kind, bytes));
    }
    v
}

/// A helper seed: target, name, settings byte, `(control, cut, payload)` records.
type HelperSession = (&'static str, String, u8, Vec<(u8, u8, Vec<u8>)>);

/// Sessions of the helper harnesses (`helpers::fuzzing`: client 192.0.2.10 or 2001:db8::10,
/// server 198.51.100.5 or 2001:db8:1::5): the captured FTP control connection and TFTP
/// request, and each command and message the helpers read, whole, split and out of order.
fn helper_sessions(root: &Path) -> Vec<HelperSession> {
    use helpers::fuzzing::{LOOSE, NAT, OLD_TALK, V6};
    let data = root.join("helpers/tests/data");
    let unhex = |s: &str| -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len() / 2)
            .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
            .collect()
    };
    let lines = |l: &[&str]| -> Vec<(u8, u8, Vec<u8>)> {
        // "<" lines are the client's, ">" the server's; in order, one segment each.
        l.iter()
            .map(|l| {
                (
                    u8::from(l.starts_with('>')),
                    0,
                    format!("{}\r\n", &l[1..]).into_bytes(),
                )
            })
            .collect()
    };
    let mut v: Vec<HelperSession> = Vec::new();
    let control = std::fs::read_to_string(data.join("ndpi-ftp-control.txt")).expect("ftp data");
    let captured: Vec<_> = control
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (u8::from(f[1] == "R"), 0, unhex(f[3]))
        })
        .collect();
    v.push(("helper_ftp", "ndpi-ftp-session".into(), LOOSE, captured));
    let v4 = [
        "<USER anonymous",
        ">220 ready",
        "<PORT 192,0,2,10,4,1",
        "<EPRT |1|192.0.2.10|6275|",
        ">227 Entering Passive Mode (198,51,100,5,195,80).",
        ">229 Entering Extended Passive Mode (|||6446|)",
        "<PORT 203,0,113,9,0,25",
        "<EPRT |3|x|1|",
    ];
    v.push(("helper_ftp", "commands".into(), 0, lines(&v4)));
    v.push(("helper_ftp", "commands-nat".into(), NAT, lines(&v4)));
    let v6 = [
        "<USER anonymous",
        ">220 ready",
        "<EPRT |2|2001:db8::10|5282|",
        ">229 Extended Passive (|||50001|)",
    ];
    v.push(("helper_ftp", "commands-v6".into(), V6, lines(&v6)));
    // Split keyword (chain cut 0x77), retransmission (control 8), hole (control 10).
    v.push((
        "helper_ftp",
        "split-resent-hole".into(),
        NAT,
        vec![
            (0, 0, b"USER x\r\n".to_vec()),
            (0, 0, b"PO".to_vec()),
            (
                0,
                0x77,
                b"RT 192,0,2,10,4,1\r\nEPRT |1|192.0.2.10|1026|\r\n".to_vec(),
            ),
            (8, 0, b"EPRT |1|192.0.2.10|1026|\r\n".to_vec()),
            (0x1a, 0, b"PORT 192,0,2,10,4,2\r\n".to_vec()),
            (0, 0, b"PORT 192,0,2,10,4,3\r\n".to_vec()),
        ],
    ));

    let rrq = std::fs::read_to_string(data.join("ndpi-tftp-rrq.hex")).expect("tftp data");
    v.push((
        "helper_tftp",
        "ndpi-tftp-rrq".into(),
        0,
        vec![(0, 0, unhex(&rrq))],
    ));
    v.push((
        "helper_tftp",
        "wrq-options-and-data".into(),
        NAT,
        vec![
            (
                0,
                0x55,
                b"\x00\x02up.bin\x00octet\x00blksize\x001428\x00".to_vec(),
            ),
            (1, 0, b"\x00\x04\x00\x00".to_vec()),
            (0, 0, b"\x00\x01name-without-mode".to_vec()),
        ],
    ));

    // talk: the caller's LOOK_UP and ANNOUNCE, and a daemon's SUCCESS answer.
    let sock = |a: [u8; 4], port: u16| {
        let mut s = vec![0, 2];
        s.extend_from_slice(&port.to_be_bytes());
        s.extend_from_slice(&a);
        s.extend_from_slice(&[0; 8]);
        s
    };
    let (client, server) = ([192, 0, 2, 10], [198, 51, 100, 5]);
    let ntalk = |t: u8| {
        let mut m = vec![1, t, 0, 0, 0, 0, 0, 7];
        m.extend(sock(client, 41000));
        m.extend(sock(client, 40000));
        m.extend_from_slice(&4242u32.to_be_bytes());
        m.extend_from_slice(b"alice\0\0\0\0\0\0\0bob\0\0\0\0\0\0\0\0\0pts/3\0\0\0\0\0\0\0\0\0\0\0");
        m
    };
    let ntalk_resp = [&[1, 1, 0, 0, 0, 0, 0, 9][..], &sock(server, 42000)].concat();
    let otalk = |t: u8| {
        let mut m = vec![t];
        m.extend_from_slice(b"alice\0\0\0\0bob\0\0\0\0\0\0\0");
        m.extend_from_slice(&[7, 0, 0, 0, 0x92, 0x10, 0, 0]);
        m.extend_from_slice(b"ttyp3\0\0\0\0\0\0\0\0\0\0\0");
        for (a, p) in [(client, 41000), (client, 40000)] {
            let mut s = sock(a, p);
            s[..2].copy_from_slice(&[2, 0]);
            m.extend(s);
        }
        m
    };
    let otalk_resp = [&[1, 0, 0, 0, 9, 0, 0, 0][..], &sock(server, 42000)].concat();
    for (name, settings) in [("ntalk", 0), ("ntalk-nat", NAT)] {
        v.push((
            "helper_talk",
            name.into(),
            settings,
            vec![
                (0, 0, ntalk(1)),
                (1, 0x3c, ntalk_resp.clone()),
                (0, 0x3c, ntalk(3)),
            ],
        ));
    }
    v.push((
        "helper_talk",
        "otalk".into(),
        OLD_TALK,
        vec![(0, 0, otalk(1)), (1, 0, otalk_resp), (0, 0x3c, otalk(3))],
    ));
    // H.323 (helpers::fuzzing::h323_*): every message of a kind from the client, then every
    // one from the server, whole; a split TPKT; the capture's as it went, loose (its hosts
    // are not the harness's).
    let h323 = h323_messages(root);
    for (target, kind) in [
        ("h323_ras", "ras"),
        ("h323_q931", "q931"),
        ("h323_h245", "h245"),
    ] {
        let all: Vec<&Vec<u8>> = h323
            .iter()
            .filter(|m| m.1 == kind && !m.0.starts_with("capture"))
            .map(|m| &m.2)
            .collect();
        // The messages name 192.0.2.10 as the client, as the harness does, but other
        // servers than the harness's: from the server side they are loose.
        for (dir, name, mode) in [(0u8, "from-client", 0), (1, "from-server", LOOSE)] {
            let recs: Vec<(u8, u8, Vec<u8>)> = all
                .iter()
                .map(|b| (dir, 0x35, b[..b.len().min(255)].to_vec()))
                .collect();
            v.push((target, name.to_string(), mode, recs.clone()));
            v.push((target, format!("{name}-nat"), mode | NAT, recs.clone()));
            // Some messages name IPv6 addresses (2001:db8::10, the harness's IPv6 client);
            // none of the client's call signalling ones does.
            if (target, dir) != ("h323_q931", 0) {
                v.push((target, format!("{name}-v6-nat"), mode | NAT | V6, recs));
            }
        }
        let captured: Vec<(u8, u8, Vec<u8>)> = h323
            .iter()
            .filter(|m| m.1 == kind && m.0.starts_with("capture"))
            .map(|m| (0, 0, m.2[..m.2.len().min(255)].to_vec()))
            .collect();
        if !captured.is_empty() {
            v.push((target, "capture".into(), LOOSE, captured));
        }
    }
    let setup = &h323.iter().find(|m| m.0 == "setup").expect("setup").2;
    v.push((
        "h323_q931",
        "split-header-nat".into(),
        NAT,
        vec![(0, 0, setup[..4].to_vec()), (0, 0x35, setup[4..].to_vec())],
    ));
    v
}

/// A named sequence of `(control byte, record bytes)` for a sequence harness.
type Session = (String, Vec<(u8, Vec<u8>)>);

/// SYN options as Linux sends them: MSS, SACK permitted, timestamps, NOP, window scale.
const SYN_OPTS: [u8; 20] = [
    2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 1, 2, 3, 0, 0, 0, 0, 1, 3, 3, 7,
];

const GATEWAY_TOML: &str = r#"[[interface]]
name = "lan0"
kind = "tun"
addresses = ["192.0.2.1/24", "2001:db8:1::1/64"]

[[interface]]
name = "wan0"
kind = "tap"
mtu = 1400
addresses = ["198.51.100.1/24"]

[[route]]
prefix = "0.0.0.0/0"
interface = "wan0"
via = "198.51.100.254"

[conntrack]
max = 1024
timeouts = { udp_unreplied = 10 }

[defrag]
timeout = 30
max_fragments = 64
"#;

/// A variety of whole packets of both families.
fn packets() -> Vec<(&'static str, Vec<u8>)> {
    let big: Vec<u8> = (0..1400u32).map(|i| (i * 7 + 3) as u8).collect();
    let syn = tcp_opts(
        "192.0.2.2",
        40000,
        "198.51.100.9",
        80,
        1,
        0,
        SYN,
        64240,
        &SYN_OPTS,
        b"",
    );
    let syn6 = tcp_opts(
        "2001:db8:1::2",
        40000,
        "2001:db8:2::9",
        443,
        7,
        0,
        SYN,
        65535,
        &SYN_OPTS,
        b"",
    );
    let dgram = udp("192.0.2.2", 5000, "198.51.100.9", 53, b"\x12\x34\x01\x00");
    let dgram6 = udp("2001:db8:1::2", 5000, "2001:db8:2::9", 53, b"q");
    vec![
        ("tcp-syn", syn.clone()),
        ("tcp6-syn", syn6.clone()),
        ("udp", dgram.clone()),
        ("udp6", dgram6.clone()),
        ("echo", echo("192.0.2.2", "198.51.100.9", true, 7, 1, 64)),
        (
            "echo6",
            echo("2001:db8:1::2", "2001:db8:2::9", true, 7, 1, 64),
        ),
        ("icmp-unreach", icmp_error("198.51.100.9", &syn, 3, 3)),
        ("icmp6-unreach", icmp_error("2001:db8:2::9", &dgram6, 1, 4)),
        (
            "icmp-frag-needed",
            icmp_error("198.51.100.254", &dgram, 3, 4),
        ),
        ("ipv6-ext", ipv6_with_ext(&syn6)),
        ("sctp-init", sctp_init()),
        ("dccp-request", dccp_request()),
        ("udplite", udplite()),
        ("ns", neighbour_solicit()),
        (
            "frag-first",
            frag4(
                &udp("192.0.2.2", 1, "198.51.100.9", 2, &big),
                &[(0, 512)],
                9,
            )[0]
            .clone(),
        ),
    ]
}

/// The transport protocol and bytes of an unfragmented packet without extension headers.
fn transport(p: &[u8]) -> Option<(u8, &[u8])> {
    match p[0] >> 4 {
        4 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            (p[6] & 0x3f == 0 && p[7] == 0).then(|| (p[9], &p[ihl..]))
        }
        _ => Some((p[6], &p[40..])),
    }
}

/// An IPv6 TCP SYN behind a Hop-by-Hop (PadN) and a Destination Options header.
fn ipv6_with_ext(syn6: &[u8]) -> Vec<u8> {
    let mut p = syn6[..40].to_vec();
    p[6] = 0; // Hop-by-Hop
    p.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]); // -> Destination Options, PadN
    p.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]); // -> TCP
    p.extend_from_slice(&syn6[40..]);
    let plen = (p.len() - 40) as u16;
    p[4..6].copy_from_slice(&plen.to_be_bytes());
    p
}

fn sctp_init() -> Vec<u8> {
    let mut s = vec![0x13, 0x88, 0x0b, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0];
    // INIT: initiate tag, a_rwnd, streams, initial TSN.
    s.extend_from_slice(&[
        1, 0, 0, 20, 0xde, 0xad, 0xbe, 0xef, 0, 1, 0, 0, 0, 10, 0, 10,
    ]);
    s.extend_from_slice(&[0, 0, 0, 1]);
    let mut p = ip("192.0.2.2", "198.51.100.9", 132, 64, s, None);
    wire::fuzzing::fix_checksums(&mut p);
    p
}

fn dccp_request() -> Vec<u8> {
    // Ports, data offset 5 words (20 bytes), CsCov 0, type Request with X=1, 48-bit
    // sequence number, service code.
    let mut d = vec![0x9c, 0x40, 0x13, 0x88, 5, 0, 0, 0, 0x01, 0, 0, 0];
    d.extend_from_slice(&[0, 0, 0, 1]);
    d.extend_from_slice(&[0, 0, 0, 42]);
    let mut p = ip("192.0.2.2", "198.51.100.9", 33, 64, d, None);
    wire::fuzzing::fix_checksums(&mut p);
    p
}

fn udplite() -> Vec<u8> {
    let u = vec![0x13, 0x88, 0, 53, 0, 8, 0, 0, b'l', b'i', b't', b'e'];
    let mut p = ip("2001:db8:1::2", "2001:db8:2::9", 136, 64, u, None);
    wire::fuzzing::fix_checksums(&mut p);
    p
}

/// A Neighbour Solicitation for 2001:db8:1::1 from 2001:db8:1::2 with its link-layer address.
fn neighbour_solicit() -> Vec<u8> {
    let target: std::net::Ipv6Addr = "2001:db8:1::1".parse().expect("address");
    let mut m = vec![135, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    m.extend_from_slice(&[1, 1, 0x02, 0, 0x5e, 0, 0x53, 2]);
    let mut p = ip("2001:db8:1::2", "ff02::1:ff00:1", 58, 255, m, None);
    wire::fuzzing::fix_checksums(&mut p);
    p
}

/// An Ethernet frame with an ARP request (op 1) or reply (2) between 192.0.2.2 and our
/// 192.0.2.1.
fn arp(op: u16) -> Vec<u8> {
    let peer = [0x02, 0, 0x5e, 0, 0x53, 2];
    let ours = [0x02, 0, 0x5e, 0, 0x53, 1];
    let mut a = [0u8; 28];
    let (tha, dst) = if op == 1 {
        ([0; 6], [0xff; 6])
    } else {
        (ours, ours)
    };
    wire::arp::emit(
        &mut a,
        op,
        peer,
        "192.0.2.2".parse().expect("address"),
        tha,
        "192.0.2.1".parse().expect("address"),
    )
    .expect("28 bytes");
    router::live::l2::eth_frame(dst, peer, 0x0806, &a)
}

/// Connections as the tracker sees them: `(control, packet)` (control 1: one millisecond
/// later).
fn flows() -> Vec<Session> {
    let (c, s) = ("192.0.2.2", "198.51.100.9");
    let (c6, s6) = ("2001:db8:1::2", "2001:db8:2::9");
    let tcp_flow = |c: &str, s: &str| {
        vec![
            (1, tcp(c, 40000, s, 80, 100, 0, SYN, b"")),
            (1, tcp(s, 80, c, 40000, 500, 101, SYN | ACK, b"")),
            (1, tcp(c, 40000, s, 80, 101, 501, ACK, b"")),
            (
                1,
                tcp(
                    c,
                    40000,
                    s,
                    80,
                    101,
                    501,
                    ACK | PSH,
                    b"GET / HTTP/1.0\r\n\r\n",
                ),
            ),
            (
                1,
                tcp(
                    s,
                    80,
                    c,
                    40000,
                    501,
                    119,
                    ACK | PSH,
                    b"HTTP/1.0 200 OK\r\n\r\n",
                ),
            ),
            (1, tcp(c, 40000, s, 80, 119, 520, FIN | ACK, b"")),
            (1, tcp(s, 80, c, 40000, 520, 120, FIN | ACK, b"")),
            (1, tcp(c, 40000, s, 80, 120, 521, ACK, b"")),
            (6, tcp(c, 40000, s, 80, 5000, 0, SYN, b"")),
        ]
    };
    let udp_flow = |c: &str, s: &str| {
        let q = udp(c, 5000, s, 53, b"query");
        vec![
            (1, q.clone()),
            (1, udp(s, 53, c, 5000, b"answer")),
            (5, icmp_error(s, &q, if c.contains(':') { 1 } else { 3 }, 3)),
        ]
    };
    let ping = |c: &str, s: &str| {
        vec![
            (1, echo(c, s, true, 9, 1, 64)),
            (1, echo(s, c, false, 9, 1, 64)),
            (1, echo(c, s, true, 9, 2, 64)),
        ]
    };
    vec![
        ("tcp".into(), tcp_flow(c, s)),
        ("tcp6".into(), tcp_flow(c6, s6)),
        ("udp".into(), udp_flow(c, s)),
        ("udp6".into(), udp_flow(c6, s6)),
        ("ping".into(), ping(c, s)),
        ("ping6".into(), ping(c6, s6)),
        (
            "other".into(),
            vec![(1, sctp_init()), (1, dccp_request()), (1, udplite())],
        ),
    ]
}

/// IPv6 fragments of `whole` (no extension headers) at the given (offset, length) cuts.
fn frag6(whole: &[u8], cuts: &[(usize, usize)], id: u32) -> Vec<Vec<u8>> {
    let nh = whole[6];
    let payload = &whole[40..];
    cuts.iter()
        .map(|&(off, len)| {
            let end = (off + len).min(payload.len());
            let more = end < payload.len();
            let mut p = whole[..40].to_vec();
            p[6] = 44;
            p.extend_from_slice(&[nh, 0]);
            p.extend_from_slice(&((off as u16) | u16::from(more)).to_be_bytes());
            p.extend_from_slice(&id.to_be_bytes());
            p.extend_from_slice(&payload[off..end]);
            let plen = (p.len() - 40) as u16;
            p[4..6].copy_from_slice(&plen.to_be_bytes());
            p
        })
        .collect()
}

fn fragment_sets() -> Vec<(String, Vec<Vec<u8>>)> {
    let data: Vec<u8> = (0..600u32).map(|i| (i * 13 + 1) as u8).collect();
    let d4 = udp("192.0.2.2", 4000, "198.51.100.9", 9000, &data);
    let d6 = udp("2001:db8:1::2", 4000, "2001:db8:2::9", 9000, &data);
    let cuts = [(0, 200), (200, 200), (400, 208)];
    let f4 = frag4(&d4, &cuts, 77);
    let f6 = frag6(&d6, &cuts, 77);
    let mut rev4 = f4.clone();
    rev4.reverse();
    let overlap = frag4(&d4, &[(0, 208), (200, 208), (400, 208)], 78);
    vec![
        ("v4-in-order".into(), f4),
        ("v4-reversed".into(), rev4),
        ("v4-overlap".into(), overlap),
        ("v6-in-order".into(), f6.clone()),
        (
            "v6-duplicate".into(),
            [f6.clone(), f6[..1].to_vec()].concat(),
        ),
    ]
}

/// Frames of each capture (Ethernet).
fn captures(root: &Path) -> Vec<(String, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(root.join("tests/data/pcap"))
        .expect("pcap folder")
        .map(|e| e.expect("entry").path())
        .collect();
    paths.sort();
    for p in paths {
        // pcapng files (the reader refuses them) give no frames.
        let Ok((_, recs)) = router::pcap::parse(&std::fs::read(&p).expect("pcap")) else {
            continue;
        };
        let stem = p.file_stem().expect("name").to_string_lossy().into_owned();
        out.push((stem, recs.into_iter().map(|r| r.data).collect()));
    }
    out
}

/// The file header and the first `n` records of a pcap file.
fn first_records(bytes: &[u8], n: usize) -> Vec<u8> {
    let le = bytes[..4] == [0xd4, 0xc3, 0xb2, 0xa1] || bytes[..4] == [0x4d, 0x3c, 0xb2, 0xa1];
    let mut off = 24;
    for _ in 0..n {
        let Some(h) = bytes.get(off + 8..off + 12) else {
            break;
        };
        let a = [h[0], h[1], h[2], h[3]];
        let incl = if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        } as usize;
        off = (off + 16 + incl).min(bytes.len());
    }
    bytes[..off].to_vec()
}

/// A pcap file of raw packets, little- or big-endian, nanosecond or microsecond stamps.
fn pcap_file(linktype: u32, packets: &[Vec<u8>], le: bool, ns: bool) -> Vec<u8> {
    let w32 = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
    let w16 = |v: u16| if le { v.to_le_bytes() } else { v.to_be_bytes() };
    let mut f = Vec::new();
    f.extend_from_slice(&w32(if ns { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
    f.extend_from_slice(&w16(2));
    f.extend_from_slice(&w16(4));
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&w32(65535));
    f.extend_from_slice(&w32(linktype));
    for (i, p) in packets.iter().enumerate() {
        f.extend_from_slice(&w32(1_700_000_000 + i as u32));
        f.extend_from_slice(&w32(if ns { 999_999_999 } else { 999_999 }));
        f.extend_from_slice(&w32(p.len() as u32));
        f.extend_from_slice(&w32(p.len() as u32));
        f.extend_from_slice(p);
    }
    f
}

/// Sessions on the harness's TAP link (`router::fuzzing::l2`). Control bits 3-4: 0 frame in,
/// 1 send (next hop first), 2 timers; bit 5: IPv6 next hop; bits 0-2: clock step.
fn l2_sessions() -> Vec<Session> {
    let ours = [0x02, 0, 0x5e, 0, 0x53, 1];
    let peer = [0x02, 0, 0x5e, 0, 0x53, 2];
    let pkt = udp("192.0.2.1", 5000, "192.0.2.2", 53, b"q");
    let pkt6 = udp("2001:db8:1::1", 5000, "2001:db8:1::2", 53, b"q");
    let ns = neighbour_solicit();
    let na = {
        let me: std::net::Ipv6Addr = "2001:db8:1::2".parse().expect("address");
        let mut m = vec![136, 0, 0, 0, 0x60, 0, 0, 0];
        m.extend_from_slice(&me.octets());
        m.extend_from_slice(&[2, 1, 0x02, 0, 0x5e, 0, 0x53, 2]);
        let mut p = ip("2001:db8:1::2", "2001:db8:1::1", 58, 255, m, None);
        wire::fuzzing::fix_checksums(&mut p);
        p
    };
    let eth = |dst, et, p: &[u8]| router::live::l2::eth_frame(dst, peer, et, p);
    vec![
        (
            "arp".into(),
            vec![
                (0, arp(1)),
                (1 << 3, [&[192, 0, 2, 2][..], &pkt].concat()),
                (1, arp(2)),
                (1 << 3, [&[192, 0, 2, 2][..], &pkt].concat()),
                (2 << 3 | 4, vec![]),
                (2 << 3 | 6, vec![]),
            ],
        ),
        (
            "nd".into(),
            vec![
                (0, eth([0x33, 0x33, 0xff, 0, 0, 1], 0x86dd, &ns)),
                (
                    1 << 3 | 0x20,
                    [
                        &"2001:db8:1::2"
                            .parse::<std::net::Ipv6Addr>()
                            .expect("address")
                            .octets()[..],
                        &pkt6,
                    ]
                    .concat(),
                ),
                (1, eth(ours, 0x86dd, &na)),
                (2 << 3 | 5, vec![]),
            ],
        ),
        (
            "ip".into(),
            vec![
                (
                    0,
                    eth(ours, 0x0800, &udp("192.0.2.2", 1, "192.0.2.1", 2, b"x")),
                ),
                (0, eth(ours, 0x86dd, &pkt6)),
                (0, eth([0x02, 9, 9, 9, 9, 9], 0x0800, &pkt)),
            ],
        ),
    ]
}

/// Traffic across the engine harness's gateway (`router::fuzzing::engine`): lan0 is
/// interface 0 (control bits 4-5), wan0 1, dmz0 2; bit 3 fixes checksums.
fn engine_sessions(pcaps: &[(String, Vec<Vec<u8>>)]) -> Vec<Session> {
    const LAN: u8 = 0;
    const WAN: u8 = 1 << 4;
    const DMZ: u8 = 2 << 4;
    let (c, s) = ("192.0.2.2", "8.8.8.8");
    let big_syn = tcp_opts(c, 40000, s, 80, 1, 0, SYN, 65535, &[2, 4, 0x23, 0x28], b"");
    let data: Vec<u8> = (0..1400u32).map(|i| (i * 7 + 3) as u8).collect();
    let big_udp = udp(c, 4000, s, 9000, &data);
    let mut out = vec![
        (
            "nat-tcp".into(),
            vec![
                (1 | LAN, big_syn),
                (
                    1 | WAN,
                    tcp(s, 80, "198.51.100.1", 40000, 500, 2, SYN | ACK, b""),
                ),
                (1 | LAN, tcp(c, 40000, s, 80, 2, 501, ACK, b"")),
                (
                    1 | LAN,
                    tcp(
                        c,
                        40000,
                        s,
                        80,
                        2,
                        501,
                        ACK | PSH,
                        b"GET /admin HTTP/1.0\r\n\r\n",
                    ),
                ),
                (
                    0x40 | 1 | LAN,
                    tcp(c, 40000, s, 80, 30, 501, FIN | ACK, b""),
                ),
            ],
        ),
        (
            "dnat".into(),
            vec![
                (
                    1 | WAN,
                    tcp("203.0.113.99", 5555, "198.51.100.1", 8080, 9, 0, SYN, b""),
                ),
                (
                    1 | WAN,
                    udp("203.0.113.99", 5555, "198.51.100.1", 5003, b"x"),
                ),
                (1 | LAN, udp(c, 5353, "192.0.2.1", 53, b"dns")),
            ],
        ),
        (
            "local".into(),
            vec![
                (1 | LAN, echo(c, "192.0.2.1", true, 1, 1, 64)),
                (1 | LAN, udp(c, 9, "192.0.2.1", 9, b"discard")),
                (1 | LAN, tcp(c, 1234, "192.0.2.1", 23, 1, 0, SYN, b"")),
                (
                    1 | WAN,
                    echo("2001:db8:2::fe", "2001:db8:2::1", true, 1, 1, 64),
                ),
                (
                    1 | DMZ,
                    tcp("2001:db8:3::2", 1, "2001:db8:2::1", 22, 1, 0, SYN, b""),
                ),
            ],
        ),
        (
            "v6".into(),
            vec![
                (
                    1 | LAN,
                    tcp_opts(
                        "2001:db8:1::2",
                        40000,
                        "2001:db8:9::9",
                        80,
                        1,
                        0,
                        SYN,
                        65535,
                        &[2, 4, 0x23, 0x28],
                        b"",
                    ),
                ),
                (
                    1 | LAN,
                    udp("2001:db8:1::2", 4000, "2001:db8:9::9", 9000, &data),
                ),
                (
                    1 | WAN,
                    tcp("2001:db8:9::9", 1, "2001:db8:2::1", 8080, 1, 0, SYN, b""),
                ),
                (
                    1 | DMZ,
                    udp("2001:db8:3::2", 4000, "2001:db8:9::9", 53, b"q"),
                ),
            ],
        ),
        (
            "fragments".into(),
            frag4(&big_udp, &[(0, 704), (704, 704)], 5)
                .into_iter()
                .map(|f| (1 | LAN, f))
                .chain(std::iter::once((1 | LAN, big_udp)))
                .collect(),
        ),
        (
            "errors".into(),
            vec![
                (1 | LAN, udp(c, 4000, s, 33434, b"probe")),
                (
                    1 | WAN,
                    icmp_error(s, &udp("198.51.100.1", 4000, s, 33434, b"probe"), 3, 3),
                ),
                (1 | LAN, echo(c, s, true, 3, 1, 1)),
            ],
        ),
    ];
    // Real traffic from the captures, as IP packets arriving from the LAN.
    for (name, frames) in pcaps {
        let recs = frames
            .iter()
            .filter_map(|f| router::pcap::ip_payload(router::pcap::LINKTYPE_ETHERNET, f))
            .take(PCAP_RECORDS)
            // Captured with checksum offload: their checksums are made right.
            .map(|p| (8 | 1 | LAN, p.to_vec()))
            .collect();
        out.push((format!("pcap-{name}"), recs));
    }
    out
}
