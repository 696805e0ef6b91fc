//! `-m string`: loading, errors with their position, save round trip, evaluation.

use super::*;

fn rule_err(rule: &str) -> String {
    err4(&filter(&format!("-A INPUT {rule}")))
}

fn ctx(packet: &[u8]) -> PacketCtx<'_> {
    let mut c = PacketCtx::new(
        Family::V4,
        "192.0.2.1".parse().unwrap(),
        "192.0.2.2".parse().unwrap(),
        6,
        packet,
    );
    c.len = packet.len() as u32;
    c
}

#[test]
fn loads_saves_as_iptables_does_and_round_trips() {
    let text = filter(
        "-A INPUT -p tcp -m string --string \"GET /admin\" --algo bm --to 65535 -j DROP\n\
         -A INPUT -m string ! --hex-string \"|0d0a|\" --algo kmp --from 20 --to 1500 -j ACCEPT\n\
         -A INPUT -m string --string \"user [a-z]+\" --algo regex --to 65535 --icase -j REJECT --reject-with icmp-port-unreachable\n\
         -A INPUT -m string --hex-string \"ab|63|\" --algo ac --to 100 -j DROP",
    );
    let rs = v4(&text);
    let saved = rs.save(false);
    for line in [
        "-A INPUT -p tcp -m string --string \"GET /admin\" --algo bm --to 65535 -j DROP",
        "-A INPUT -m string ! --hex-string \"|0d0a|\" --algo kmp --from 20 --to 1500 -j ACCEPT",
        "-A INPUT -m string --string \"user [a-z]+\" --algo regex --to 65535 --icase -j REJECT --reject-with icmp-port-unreachable",
        // Given as hex, kept as hex.
        "-A INPUT -m string --hex-string \"|616263|\" --algo ac --to 100 -j DROP",
    ] {
        assert!(saved.contains(line), "missing {line:?} in\n{saved}");
    }
    assert_eq!(v4(&saved).save(false), saved);
}

/// Found by fuzzing (`fuzz/regressions/rules/string-with-control-bytes-saves-as-hex`): a
/// `--string` with bytes outside printable ASCII is saved as a hex string, which must load
/// back as the same rule.
#[test]
fn unprintable_string_round_trips_as_hex() {
    let rs = v4(&filter(
        "-A INPUT -m string --string \"GET /a\u{0}\u{0}b\u{e9}\" --algo bm -j DROP",
    ));
    let saved = rs.save(false);
    assert!(
        saved.contains("--hex-string \"|474554202f61000062c3a9|\""),
        "{saved}"
    );
    round_trip(&rs);
}

#[test]
fn verdicts() {
    let rs = v4(&filter(
        ":INPUT ACCEPT [0:0]\n\
         -A INPUT -m string --string \"GET /admin\" --algo bm -j DROP\n\
         -A INPUT -m string --string \"SECRET\" --algo kmp --icase --from 20 --to 40 -j REJECT",
    ));
    let mut pkt = vec![0u8; 20];
    pkt.extend_from_slice(b"GET /admin HTTP/1.0\r\n");
    assert_eq!(
        rs.evaluate(Table::Filter, Hook::Input, &ctx(&pkt)),
        Verdict::Drop
    );
    let mut pkt = vec![0u8; 20];
    pkt.extend_from_slice(b"..secret..");
    assert!(matches!(
        rs.evaluate(Table::Filter, Hook::Input, &ctx(&pkt)),
        Verdict::Reject(_)
    ));
    // Past --to: bytes 36..=41, and 41 is beyond --to 40.
    let mut pkt = vec![0u8; 36];
    pkt.extend_from_slice(b"SECRET");
    assert_eq!(
        rs.evaluate(Table::Filter, Hook::Input, &ctx(&pkt)),
        Verdict::Accept
    );
    // A reassembled datagram: the pattern straddles two fragments' segments.
    let chain: [&[u8]; 3] = [&[0u8; 20], b"xx GET /ad", b"min yy"];
    let mut c = ctx(b"");
    c.chain = Some(&chain);
    assert_eq!(rs.evaluate(Table::Filter, Hook::Input, &c), Verdict::Drop);
}

#[test]
fn errors_name_the_position() {
    assert_eq!(
        rule_err("-m string --algo bm -j DROP"),
        "t.rules:2:13: -m string needs --string or --hex-string"
    );
    assert_eq!(
        rule_err("-m string --string x -j DROP"),
        "t.rules:2:13: -m string needs --algo"
    );
    assert_eq!(
        rule_err("-m string --string x --algo fast -j DROP"),
        "t.rules:2:38: unknown string algorithm fast (expected bm, kmp, ac, memmem, regex or auto)"
    );
    assert_eq!(
        rule_err("-m string --hex-string \"|0g|\" --algo bm -j DROP"),
        "t.rules:2:36: 'g' is not a hex digit"
    );
    // Columns count characters: multi-byte ones before the error do not push it further
    // (found by fuzzing: a column past the end of its line).
    assert_eq!(
        rule_err("-m string --hex-string \"ééé|0g|\" --algo bm -j DROP"),
        "t.rules:2:39: 'g' is not a hex digit"
    );
    assert_eq!(
        rule_err("-m string --hex-string \"ééé|0d\" --algo bm -j DROP"),
        "t.rules:2:37: unterminated |"
    );
    assert_eq!(
        rule_err("-m string --string x --algo bm --to 70000 -j DROP"),
        "t.rules:2:46: bad --to offset 70000 (0..=65535)"
    );
    assert_eq!(
        rule_err("-m string --string x --string y --algo bm -j DROP"),
        "t.rules:2:31: --string given twice"
    );
    assert_eq!(
        rule_err("-m string --string x --algo bm --from 9 --to 3 -j DROP"),
        "t.rules:2:13: --from 9 is beyond --to 3"
    );
    assert!(
        rule_err("-m string --string \"(x\" --algo regex -j DROP").starts_with("t.rules:2:13: ")
    );
    assert_eq!(
        rule_err("-m string --algo bm ! --algo kmp --string x -j DROP"),
        "t.rules:2:30: --algo cannot be negated"
    );
}
