//! The fuzz harness of the rule language, kept in the library so that the cargo-fuzz target
//! (`fuzz/fuzz_targets/rules.rs`) and the regression replay in the normal test suite
//! (`tests/tests/fuzz_replay.rs`) run the very same code.
//!
//! Input layout: `[flags, text..]`; bit 0 of the flags picks IPv6, bit 1 restores counters
//! (`iptables-restore --counters`). Text that is not UTF-8 is read lossily (the loader
//! refuses such files before parsing; the parser still gets every shape of text).
//!
//! Checked, besides "no panic": an error points inside the text (line and column of an
//! existing character, or just past the end of a line); what parses saves to text that
//! parses back to an equal ruleset and saves identically again (with counters too when they
//! were restored); and what parses evaluates: a few packets go through every table and hook
//! of the ruleset by the compiled classifier and of its reloaded copy by a plain scan, which
//! must agree on the verdict, the deciding rule, LOG hits, marks, NAT and TCPMSS, and leave
//! the same counters.

use std::net::IpAddr;

use crate::{CtState, EvalOutput, Family, LoadOptions, PacketCtx, Ruleset, Table};

/// Decodes `data` and checks the parser's invariants; panics on a violation.
pub fn run(data: &[u8]) {
    let Some((&flags, text)) = data.split_first() else {
        return;
    };
    let family = if flags & 1 == 0 {
        Family::V4
    } else {
        Family::V6
    };
    let options = LoadOptions {
        counters: flags & 2 != 0,
    };
    let text = String::from_utf8_lossy(text);
    let rs = match Ruleset::parse_with(&text, "fuzz.rules", family, options) {
        Ok(rs) => rs,
        Err(e) => {
            check_position(&text, e.line, e.column, &e.to_string());
            return;
        }
    };
    let saved = rs.save(options.counters);
    let again = Ruleset::parse_with(&saved, "saved.rules", family, options).unwrap_or_else(|e| {
        panic!("saved text does not load: {e}\n--- input:\n{text}\n--- saved:\n{saved}")
    });
    assert!(
        again == rs,
        "saved text loads as another ruleset\n--- input:\n{text}\n--- saved:\n{saved}"
    );
    let resaved = again.save(options.counters);
    assert_eq!(resaved, saved, "save is not stable\n--- input:\n{text}");
    evaluate(&rs, &again, family, &text);
}

/// Packets through every chain: `compiled` by the classifier, `linear` (an equal ruleset) by
/// a plain scan; both must decide alike and count alike.
fn evaluate(compiled: &Ruleset, linear: &Ruleset, family: Family, text: &str) {
    let (a, b, c): (IpAddr, IpAddr, IpAddr) = match family {
        Family::V4 => (
            "192.0.2.2".parse().expect("address"),
            "198.51.100.7".parse().expect("address"),
            "192.0.2.1".parse().expect("address"),
        ),
        Family::V6 => (
            "2001:db8::2".parse().expect("address"),
            "2001:db8:1::7".parse().expect("address"),
            "2001:db8::1".parse().expect("address"),
        ),
    };
    let payload = b"GET /admin HTTP/1.0\r\n\r\n";
    // (source, destination, protocol, ports, state, TCP flags)
    type Packet = (IpAddr, IpAddr, u8, Option<(u16, u16)>, CtState, u8);
    let packets: [Packet; 5] = [
        (a, b, 6, Some((40000, 80)), CtState::NEW, 0x02),
        (b, a, 6, Some((80, 40000)), CtState::ESTABLISHED, 0x12),
        (a, c, 17, Some((5353, 53)), CtState::NEW, 0),
        (b, c, 1, None, CtState::RELATED, 0),
        (c, b, 58, None, CtState::INVALID, 0),
    ];
    for (i, &(src, dst, proto, ports, ctstate, flags)) in packets.iter().enumerate() {
        let mut ctx = PacketCtx::new(family, src, dst, proto, payload);
        ctx.sport = ports.map(|p| p.0);
        ctx.dport = ports.map(|p| p.1);
        ctx.ctstate = ctstate;
        ctx.tcp_flags = (proto == 6).then_some(flags);
        ctx.icmp_type_code = matches!(proto, 1 | 58).then_some((8, 0));
        ctx.in_iface = Some(["eth0", "lan0", "wan0"][i % 3]);
        ctx.out_iface = Some(["wan0", "eth1"][i % 2]);
        ctx.mark = i as u32;
        ctx.now_ns = 1_000_000_000 * i as u64;
        for table in Table::ALL {
            for &hook in table.hooks() {
                let (mut x, mut y) = (EvalOutput::default(), EvalOutput::default());
                let vx = compiled.evaluate_full(table, hook, &ctx, &mut x);
                let vy = linear.evaluate_linear(table, hook, &ctx, &mut y);
                let what = format!("packet {i} in {table} {hook:?}\n--- input:\n{text}");
                assert_eq!(vx, vy, "verdicts differ: {what}");
                assert_eq!(x.rule, y.rule, "deciding rules differ: {what}");
                assert_eq!(x.logs, y.logs, "LOG hits differ: {what}");
                assert_eq!(x.marks, y.marks, "marks differ: {what}");
                assert_eq!(x.nat, y.nat, "NAT differs: {what}");
                assert_eq!(x.tcpmss, y.tcpmss, "TCPMSS differs: {what}");
                assert_eq!(x.ct_zone, y.ct_zone, "zones differ: {what}");
            }
        }
    }
    assert_eq!(
        compiled.save(true),
        linear.save(true),
        "counters differ\n--- input:\n{text}"
    );
}

/// A `line:column` that names a character of `text` (or the end of its line).
fn check_position(text: &str, line: usize, column: usize, msg: &str) {
    if line == 0 {
        assert_eq!(column, 0, "column without a line: {msg}");
        return;
    }
    assert!(column >= 1, "column 0 on line {line}: {msg}");
    let Some(l) = text.split('\n').nth(line - 1) else {
        panic!("line {line} past the end of the text: {msg}");
    };
    let chars = l.chars().count();
    assert!(
        column <= chars + 1,
        "column {column} past line {line} ({chars} characters): {msg}"
    );
}
