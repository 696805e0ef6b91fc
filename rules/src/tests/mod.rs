//! Tests of the ruleset: parsing, errors, evaluation, save round-trips, realistic files.

mod connstat;
mod ctmatch;
mod errors;
mod eval;
mod ext;
mod files;
mod nat;
mod parse;
mod stateful;
mod string;
mod targets;

use super::*;

const FILE: &str = "t.rules";

/// Parses IPv4 text, panicking with the error's Display.
pub(super) fn v4(text: &str) -> Ruleset {
    Ruleset::parse(text, FILE, Family::V4).unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn v6(text: &str) -> Ruleset {
    Ruleset::parse(text, FILE, Family::V6).unwrap_or_else(|e| panic!("{e}"))
}

/// A `*filter` table with the given lines and COMMIT.
pub(super) fn filter(lines: &str) -> String {
    format!("*filter\n{lines}\nCOMMIT\n")
}

/// The error Display for IPv4 text that must fail.
pub(super) fn err4(text: &str) -> String {
    match Ruleset::parse(text, FILE, Family::V4) {
        Ok(_) => panic!("parsed but should fail:\n{text}"),
        Err(e) => e.to_string(),
    }
}

pub(super) fn err6(text: &str) -> String {
    match Ruleset::parse(text, FILE, Family::V6) {
        Ok(_) => panic!("parsed but should fail:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// A TCP packet context.
pub(super) fn tcp4(src: &str, dst: &str, sport: u16, dport: u16) -> PacketCtx<'static> {
    let mut c = PacketCtx::new(
        Family::V4,
        src.parse().unwrap(),
        dst.parse().unwrap(),
        6,
        &[],
    );
    c.sport = Some(sport);
    c.dport = Some(dport);
    c.tcp_flags = Some(0x02);
    c.len = 60;
    c.ctstate = CtState::NEW;
    c
}

pub(super) fn tcp6(src: &str, dst: &str, sport: u16, dport: u16) -> PacketCtx<'static> {
    let mut c = tcp4("0.0.0.0", "0.0.0.0", sport, dport);
    c.family = Family::V6;
    c.src = src.parse().unwrap();
    c.dst = dst.parse().unwrap();
    c
}

/// Saves, re-parses and checks the rules are identical and the text is stable.
pub(super) fn round_trip(rs: &Ruleset) {
    let text = rs.save(false);
    let again = Ruleset::parse(&text, "saved", rs.family())
        .unwrap_or_else(|e| panic!("{e}\n--- saved text:\n{text}"));
    assert_eq!(&again, rs, "--- saved text:\n{text}");
    assert_eq!(again.save(false), text);
}
