//! The fuzz harness of the rule language, kept in the library so that the cargo-fuzz target
//! (`fuzz/fuzz_targets/rules.rs`) and the regression replay in the normal test suite
//! (`tests/tests/fuzz_replay.rs`) run the very same code.
//!
//! Input layout: `[flags, text..]`; bit 0 of the flags picks IPv6, bit 1 restores counters
//! (`iptables-restore --counters`). Text that is not UTF-8 is read lossily (the loader
//! refuses such files before parsing; the parser still gets every shape of text).
//!
//! Checked, besides "no panic": an error points inside the text (line and column of an
//! existing character, or just past the end of a line); and what parses saves to text that
//! parses back to an equal ruleset and saves identically again (with counters too when they
//! were restored).

use crate::{Family, LoadOptions, Ruleset};

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
    let _ = rs.rule_count();
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
