//! The `ip xfrm` text forms: what parses, the column of what does not, the `add` form that
//! parses back, and the `list` form as iproute2 prints it.

use ipsec_hooks::text::{
    parse_policy, parse_policy_id, parse_selector, parse_state, parse_state_id, PolicyList,
    StateList,
};
use ipsec_hooks::{Direction, Ipsec, Mode};
use wire::{Instant, PacketBuf};

const KEY: &str = "0x0102030405060708090a0b0c0d0e0f1011121314";

#[test]
fn states_parse_and_print_back() {
    for line in [
        format!("src 203.0.113.1 dst 203.0.113.2 proto esp spi 0x00001000 reqid 1 mode tunnel aead 'rfc4106(gcm(aes))' {KEY} 128"),
        format!("src 2001:db8::1 dst 2001:db8::2 proto esp spi 0x00000101 reqid 7 mode transport replay-window 4096 flag noecn esn aead 'rfc4106(gcm(aes))' 0x{} 128 sel src 2001:db8::/64 dst 2001:db8:1::/64 proto tcp sport 22 limit time-soft 30 limit byte-hard 1000000", "ab".repeat(36)),
        format!("src 203.0.113.1 dst 203.0.113.2 proto esp spi 0x00000009 reqid 0 mode tunnel flag af-unspec replay-oseq 0x10 aead 'rfc4106(gcm(aes))' 0x{} 128", "cd".repeat(28)),
        format!("src 203.0.113.1 dst 203.0.113.2 proto esp spi 0x00000009 reqid 0 mode tunnel replay-window 8 flag esn replay-seq 0x5 replay-seq-hi 0x1 aead 'rfc4106(gcm(aes))' {KEY} 128 sel src 192.0.2.0/24 dst 0.0.0.0/0 proto icmp type 0 code 0"),
    ] {
        let cfg = parse_state(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(cfg.to_string(), line);
        assert_eq!(parse_state(&cfg.to_string()).unwrap(), cfg);
    }
    // Order-free keywords, quotes of either kind, defaults.
    let cfg = parse_state(&format!(
        "aead \"rfc4106(gcm(aes))\" {KEY} 128 spi 4096 proto esp dst 198.51.100.1 src 198.51.100.2"
    ))
    .unwrap();
    assert_eq!(
        (cfg.spi, cfg.mode, cfg.reqid, cfg.replay_window),
        (4096, Mode::Transport, 0, 0)
    );
    assert_eq!(
        cfg.selector.unwrap().to_string(),
        "src 0.0.0.0/0 dst 0.0.0.0/0"
    );
    assert_eq!(
        parse_state_id("src 1.2.3.4 dst 198.51.100.1 proto esp spi 0x1000"),
        Ok(("198.51.100.1".parse().unwrap(), 0x1000))
    );
}

/// Checks that `line` fails at the (last) occurrence of `at` (`""`: just past the end) with
/// `message` (`""`: any).
fn fails(parse: fn(&str) -> Result<(), (usize, String)>, line: &str, at: &str, message: &str) {
    let (col, msg) = parse(line).expect_err(line);
    let want = if at.is_empty() {
        line.chars().count() + 1
    } else {
        line[..line.rfind(at).expect(at)].chars().count() + 1
    };
    assert_eq!(col, want, "{line}: {msg}");
    if !message.is_empty() {
        assert_eq!(msg, message, "{line}");
    }
}

fn st(line: &str) -> Result<(), (usize, String)> {
    parse_state(line)
        .map(|_| ())
        .map_err(|e| (e.column, e.message))
}

fn po(line: &str) -> Result<(), (usize, String)> {
    parse_policy(line)
        .map(|_| ())
        .map_err(|e| (e.column, e.message))
}

#[test]
fn state_errors_point_at_the_token() {
    let base = format!(
        "src 203.0.113.1 dst 203.0.113.2 proto esp spi 0x10 aead 'rfc4106(gcm(aes))' {KEY} 128"
    );
    let b = |tail: &str| format!("{base} {tail}");
    fails(
        st,
        "src 203.0.113.1 dst 203.0.113.x",
        "203.0.113.x",
        "expected an IPv4 or IPv6 address, found `203.0.113.x`",
    );
    fails(
        st,
        &base.replace("esp", "ah"),
        "ah",
        "proto ah is not supported: only esp",
    );
    fails(
        st,
        &base.replace("0x10", "0"),
        "0 aead",
        "spi 0 is reserved (RFC 4303)",
    );
    fails(
        st,
        &base.replace(" 128", " 96"),
        "96",
        "ICV length 96: only 128 is supported",
    );
    fails(st, &base.replace(KEY, "0x0102"), "0x0102", "key material of 2 bytes: expected 20, 28 or 36 (a 128, 192 or 256-bit AES key followed by a 4-byte salt)");
    fails(
        st,
        &base.replace(KEY, "0x01xy"),
        "0x01xy",
        "expected the key as 0x followed by hex digits, found `0x01xy`",
    );
    fails(
        st,
        &base.replace("'rfc4106(gcm(aes))'", "'cbc(aes)'"),
        "'cbc",
        "expected 'rfc4106(gcm(aes))', found `cbc(aes)`",
    );
    fails(
        st,
        &b("mode tunel"),
        "tunel",
        "expected transport or tunnel, found `tunel`",
    );
    fails(
        st,
        &b("flag esn"),
        "esn",
        "flag esn needs a replay-window above 0",
    );
    fails(
        st,
        &b("replay-window 5000"),
        "5000",
        "replay-window 5000 is above 4096",
    );
    fails(st, &b("limit bytes-soft 1"), "bytes-soft", "");
    fails(
        st,
        &b("encap espinudp 4500 4500 0.0.0.0"),
        "encap",
        "`encap` is not supported",
    );
    fails(st, &b("spi 0x11"), "spi", "`spi` given twice");
    fails(
        st,
        &b("sel src 10.0.0.0/8 dst 2001:db8::/32"),
        "2001:db8::/32",
        "src and dst must be of the same family",
    );
    fails(
        st,
        &b("sel proto udp type 3"),
        "type",
        "`type` needs proto icmp or ipv6-icmp",
    );
    fails(
        st,
        &b("sel"),
        "",
        "expected a selector (src, dst, proto, ...) after `sel`",
    );
    fails(st, &b("reqid"), "", "expected a number after `reqid`");
    fails(st, &base.replace(" spi 0x10", ""), "", "missing `spi`");
    fails(
        st,
        "src 203.0.113.1 dst 2001:db8::1",
        "2001:db8::1",
        "src and dst must be of the same family",
    );
    fails(st, "src 'a", "'a", "unterminated '");
    fails(st, &b("frobnicate"), "frobnicate", "unexpected `frobnicate`: expected src, dst, proto, spi, mode, reqid, replay-window, flag, aead, sel or limit");
    fails(
        st,
        &b("mode transport sel src 2001:db8::/32"),
        "",
        "a transport-mode SA carries its own family: the selector must be of it too",
    );
    // Columns count characters, not bytes.
    fails(
        st,
        "src é dst",
        "é",
        "expected an IPv4 or IPv6 address, found `é`",
    );
}

#[test]
fn policies_parse_and_print_back() {
    for line in [
        "src 192.0.2.0/24 dst 198.51.100.0/24 dir out priority 0 tmpl src 203.0.113.1 dst 203.0.113.2 proto esp reqid 1 mode tunnel",
        "src ::/0 dst 2001:db8::/32 proto ipv6-icmp type 128 dir in priority 100 action block",
        "src 0.0.0.0/0 dst 0.0.0.0/0 proto tcp dport 443 dir fwd priority 7 tmpl proto esp spi 0x00000010 reqid 2 mode transport level use tmpl src 203.0.113.1 dst 203.0.113.2 proto esp reqid 3 mode tunnel",
    ] {
        let cfg = parse_policy(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(cfg.to_string(), line);
    }
    let cfg = parse_policy("dir out ptype main tmpl proto esp src 0.0.0.0 dst 0.0.0.0").unwrap();
    assert_eq!(cfg.templates[0].src, None);
    assert_eq!(
        parse_policy_id("dir fwd src 192.0.2.0/24").unwrap().0,
        Direction::Fwd
    );
    assert_eq!(
        parse_selector("src 192.0.2.1 proto udp dport 0")
            .unwrap()
            .to_string(),
        "src 192.0.2.1/32 dst 0.0.0.0/0 proto udp"
    );
}

#[test]
fn policy_errors_point_at_the_token() {
    fails(
        po,
        "src 192.0.2.0/33 dir out",
        "192.0.2.0/33",
        "bad prefix length in `192.0.2.0/33`",
    );
    fails(po, "src 192.0.2.0/24", "", "missing `dir in|out|fwd`");
    fails(
        po,
        "dir out action pass",
        "pass",
        "expected allow or block, found `pass`",
    );
    fails(
        po,
        "dir out priority -1",
        "-1",
        "expected a number, found `-1`",
    );
    fails(
        po,
        "dir out tmpl src 203.0.113.1 dst 203.0.113.2 mode tunnel",
        "",
        "`tmpl` at column 9 needs `proto esp`",
    );
    fails(
        po,
        "dir out tmpl proto esp mode tunnel",
        "tmpl",
        "a tunnel-mode tmpl needs its src and dst",
    );
    fails(
        po,
        "dir out tmpl proto esp level maybe",
        "maybe",
        "expected required or use, found `maybe`",
    );
    fails(
        po,
        "src 192.0.2.0/24 dir out src 10.0.0.0/8",
        "src",
        "`src` given twice",
    );
    fails(po, "dir out dir in", "dir", "`dir` given twice");
    fails(po, "dir out index 8", "index", "`index` is not supported");
    fails(
        po,
        "proto icmp sport 3 dir out",
        "sport",
        "`sport` needs a protocol with ports",
    );
    fails(
        po,
        "dir out tmpl src 203.0.113.1 dst 2001:db8::1 proto esp mode tunnel",
        "2001:db8::1",
        "tmpl src and dst must be of the same family",
    );
}

#[test]
fn lists_print_as_ip_xfrm_does() {
    let mut x = Ipsec::new();
    let now = Instant::from_secs(5);
    x.add_sa(parse_state(&format!("src 203.0.113.1 dst 203.0.113.2 proto esp spi 0x1000 reqid 1 mode tunnel replay-window 32 aead 'rfc4106(gcm(aes))' {KEY} 128")).unwrap(), now).unwrap();
    x.add_sa(parse_state(&format!("src 203.0.113.2 dst 203.0.113.1 proto esp spi 0x2000 reqid 1 mode tunnel replay-window 64 flag esn aead 'rfc4106(gcm(aes))' {KEY} 128 sel src 198.51.100.0/24 dst 192.0.2.0/24")).unwrap(), now).unwrap();
    x.add_policy(parse_policy("src 192.0.2.0/24 dst 198.51.100.0/24 dir out tmpl src 203.0.113.1 dst 203.0.113.2 proto esp reqid 1 mode tunnel").unwrap()).unwrap();
    x.add_policy(
        parse_policy(
            "src 0.0.0.0/0 dst 0.0.0.0/0 proto udp dport 500 dir in priority 5 action block",
        )
        .unwrap(),
    )
    .unwrap();
    let mut buf = PacketBuf::from_slice(&testkit::udp("192.0.2.1", 1, "198.51.100.1", 2, b"x"));
    x.output(now, &mut buf).unwrap();
    assert_eq!(
        StateList(&x).to_string(),
        format!(
            "src 203.0.113.1 dst 203.0.113.2\n\
             \tproto esp spi 0x00001000 reqid 1 mode tunnel\n\
             \treplay-window 32 \n\
             \taead rfc4106(gcm(aes)) {KEY} 128\n\
             \tanti-replay context: seq 0x0, oseq 0x1, bitmap 0x00000000\n\
             \tsel src 0.0.0.0/0 dst 0.0.0.0/0 \n\
             src 203.0.113.2 dst 203.0.113.1\n\
             \tproto esp spi 0x00002000 reqid 1 mode tunnel\n\
             \treplay-window 0 flag esn\n\
             \taead rfc4106(gcm(aes)) {KEY} 128\n\
             \tanti-replay esn context:\n\
             \t seq-hi 0x0, seq 0x0, oseq-hi 0x0, oseq 0x0\n\
             \t replay_window 64, bitmap-length 2\n\
             \t 00000000 00000000 \n\
             \tsel src 198.51.100.0/24 dst 192.0.2.0/24 \n"
        )
    );
    assert_eq!(
        PolicyList(&x).to_string(),
        "src 0.0.0.0/0 dst 0.0.0.0/0 proto udp dport 500 \n\
         \tdir in action block priority 5 \n\
         src 192.0.2.0/24 dst 198.51.100.0/24 \n\
         \tdir out priority 0 \n\
         \ttmpl src 203.0.113.1 dst 203.0.113.2\n\
         \t\tproto esp reqid 1 mode tunnel\n"
    );
    let stats = format!("{:#}", StateList(&x));
    assert!(
        stats.contains(
            "\tlifetime config:\n\
         \t  limit: soft (INF)(bytes), hard (INF)(bytes)\n\
         \t  limit: soft (INF)(packets), hard (INF)(packets)\n\
         \t  expire add: soft 0(sec), hard 0(sec)\n\
         \t  expire use: soft 0(sec), hard 0(sec)\n\
         \tlifetime current:\n\
         \t  65(bytes), 1(packets)\n\
         \t  add 5.000000000s use 5.000000000s\n\
         \tstats:\n\
         \t  replay-window 0 replay 0 failed 0\n"
        ),
        "{stats}"
    );
}
