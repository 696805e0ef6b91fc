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
