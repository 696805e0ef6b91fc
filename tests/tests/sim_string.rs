//! `-m string` in the simulator: a forwarded TCP segment whose payload holds
//! a banned request is dropped (and counted on its rule); others pass.

use tests::flags::*;
use tests::*;

const RULES: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p tcp -m tcp --dport 80 -m string --string \"GET /admin\" --algo bm --to 65535 -j DROP
-A FORWARD -p udp -m string --hex-string \"|07|example|03|com|00|\" --algo kmp --from 28 --to 65535 -j DROP
COMMIT
";

fn at(iface: &'static str, at: f64, packet: Vec<u8>) -> Arrival {
    Arrival { iface, at, packet }
}

#[test]
fn payload_patterns_decide_and_count() {
    let sc = Scenario::gateway("string", RULES, "");
    let c = "192.0.2.2";
    let s = "203.0.113.10";
    let out = sc.run(
        &[
            at("lan0", 0.0, tcp(c, 40000, s, 80, 1, 0, PSH | ACK, b"GET /index.html HTTP/1.1\r\n")),
            at("lan0", 0.1, tcp(c, 40001, s, 80, 1, 0, PSH | ACK, b"GET /admin/users HTTP/1.1\r\n")),
            at("lan0", 0.2, udp(c, 5353, s, 53, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01")),
            at("lan0", 0.3, udp(c, 5354, s, 53, b"\x12\x35\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03org\x00\x00\x01\x00\x01")),
        ],
        None,
    );
    let sent = out.on("wan0");
    assert_eq!(
        sent.len(),
        2,
        "the admin request and the example.com query are dropped"
    );
    assert!(sent[0].windows(11).any(|w| w == b"/index.html"));
    assert!(sent[1].windows(3).any(|w| w == b"org"));
    let drops = |rule: &str| {
        out.events_with(&["\"type\":\"drop\"", "\"chain\":\"FORWARD\"", rule])
            .len()
    };
    assert_eq!(drops("\"rule\":1,"), 1, "{:#?}", out.events);
    assert_eq!(drops("\"rule\":2,"), 1);
}

/// An IPv4 fragment of `whole` at payload offset `off` with `len` bytes.
fn frag4(whole: &[u8], off: usize, len: usize, id: u16) -> Vec<u8> {
    let payload = &whole[20..];
    let end = (off + len).min(payload.len());
    let mut p = whole[..20].to_vec();
    p[2..4].copy_from_slice(&((20 + end - off) as u16).to_be_bytes());
    p[4..6].copy_from_slice(&id.to_be_bytes());
    let more = if end < payload.len() { 0x2000 } else { 0 };
    p[6..8].copy_from_slice(&((off / 8) as u16 | more).to_be_bytes());
    p[10] = 0;
    p[11] = 0;
    let ck = wire::checksum::data(&p);
    p[10..12].copy_from_slice(&ck.to_be_bytes());
    p.extend_from_slice(&payload[off..end]);
    p
}

#[test]
fn a_pattern_split_across_fragments_is_found_in_the_reassembled_datagram() {
    let rules = "*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p udp -m string --string \"GET /admin\" --algo kmp --to 65535 -j DROP
COMMIT
";
    let sc = Scenario::gateway("string-frag", rules, "");
    // UDP payload: 36 filler bytes, then the pattern; the first fragment
    // carries 8 (UDP header) + 32 bytes, so the pattern starts 4 bytes
    // before the boundary and ends 6 bytes after it.
    let mut payload = vec![b'.'; 36];
    payload.extend_from_slice(b"GET /admin");
    payload.extend_from_slice(&[b'.'; 30]);
    let bad = udp("192.0.2.2", 4000, "203.0.113.10", 9, &payload);
    let good = udp("192.0.2.2", 4001, "203.0.113.10", 9, &[b'.'; 76]);
    let mut arr = Vec::new();
    for (t, whole, id) in [(0.0, &bad, 1u16), (0.1, &good, 2u16)] {
        for (off, len) in [(0, 40), (40, 48)] {
            arr.push(at("lan0", t, frag4(whole, off, len, id)));
        }
    }
    let out = sc.run(&arr, None);
    let sent = out.on("wan0");
    assert_eq!(
        sent.len(),
        2,
        "only the clean datagram's two fragments leave"
    );
    assert!(sent.iter().all(|p| p[4..6] == [0, 2]));
}
