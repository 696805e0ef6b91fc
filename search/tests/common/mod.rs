//! Shared test helpers: a naive reference searcher over the flat buffer and
//! a chunked driver for the real engine.
#![allow(dead_code)]

use regex_automata::meta;
use regex_automata::util::syntax;
use search::{Control, Match, MatchMode, Pattern, PatternKind, SearchOptions, Searcher};

/// Regex source for a pattern, written independently of the engine's own
/// translation so the reference does not share its bugs.
pub fn reference_regex(p: &Pattern) -> Option<String> {
    let lit = |b: u8| format!("\\x{b:02x}");
    match p.kind {
        PatternKind::Regex => String::from_utf8(p.bytes.clone()).ok(),
        PatternKind::Literal => Some(p.bytes.iter().map(|&b| lit(b)).collect()),
        PatternKind::Wildcard => {
            let mut out = String::new();
            let mut it = p.bytes.iter().copied();
            while let Some(b) = it.next() {
                match b {
                    b'*' => out.push_str("(?s:.*)"),
                    b'?' => out.push_str("(?s:.)"),
                    b'\\' => out.push_str(&lit(it.next().unwrap_or(b'\\'))),
                    _ => out.push_str(&lit(b)),
                }
            }
            Some(out)
        }
    }
}

/// Every match the options allow, by brute force: for each end offset and
/// pattern, the leftmost start whose slice the pattern matches entirely.
/// Returned in the engine's order contract: sorted by (end, pattern).
pub fn naive(
    patterns: &[Pattern],
    opts: &SearchOptions,
    hay: &[u8],
    exact_start: bool,
) -> Vec<Match> {
    let hi = opts
        .to
        .map_or(hay.len() as u64, |t| t.min(hay.len() as u64)) as usize;
    let lo = (opts.from as usize).min(hi);
    let cfg = syntax::Config::new()
        .unicode(false)
        .utf8(false)
        .case_insensitive(opts.icase);
    let mut out = Vec::new();
    for (pid, p) in patterns.iter().enumerate() {
        let src = reference_regex(p).expect("reference regex");
        let re = meta::Builder::new()
            .syntax(cfg)
            .build(&format!("^(?:{src})$"))
            .expect("reference regex compiles");
        for e in lo + 1..=hi {
            let starts: Vec<usize> = if opts.anchored {
                vec![lo]
            } else {
                (lo..e).collect()
            };
            if let Some(s) = starts
                .into_iter()
                .find(|&s| s < e && re.is_match(&hay[s..e]))
            {
                let start = if exact_start { s as u64 } else { opts.from };
                out.push(Match {
                    pattern: pid,
                    start,
                    end: e as u64,
                });
            }
        }
    }
    out.sort_by_key(|m| (m.end, m.pattern));
    if opts.mode == MatchMode::Earliest {
        out.truncate(1);
    }
    out
}

/// Feed `packets` (each a chain of chunks) to one state, moving the state
/// through a clone between packets the way a flow table stores it.
pub fn run_packets(s: &Searcher, packets: &[Vec<&[u8]>]) -> Vec<Match> {
    let mut found = Vec::new();
    let mut stored = s.new_state();
    for packet in packets {
        let mut st = stored.clone();
        for chunk in packet {
            s.feed(&mut st, chunk, |m| {
                found.push(m);
                Control::Continue
            });
        }
        stored = st;
    }
    found
}

/// [`run_packets`] with each packet fed as one chain (`feed_chain`); also
/// checks the state ends where one `feed` per chunk leaves it.
pub fn run_packets_chain(s: &Searcher, packets: &[Vec<&[u8]>]) -> Vec<Match> {
    let mut found = Vec::new();
    let mut stored = s.new_state();
    for packet in packets {
        let mut st = stored.clone();
        s.feed_chain(&mut st, packet, |m| {
            found.push(m);
            Control::Continue
        });
        assert!(st.carried_bytes() <= s.carry_capacity());
        stored = st;
    }
    let fed: usize = packets.iter().flatten().map(|c| c.len()).sum();
    assert_eq!(stored.offset(), fed as u64, "offset after the chains");
    found
}

/// Sort matches within equal end offsets (engines may list the patterns
/// ending at one offset in any order) after checking ends never decrease.
pub fn normalise(mut v: Vec<Match>) -> Vec<Match> {
    assert!(
        v.windows(2).all(|w| w[0].end <= w[1].end),
        "ends out of order: {v:?}"
    );
    v.sort_by_key(|m| (m.end, m.pattern));
    v
}

/// Brute-force literal search, for sets too large for the regex reference.
pub fn naive_literals(patterns: &[Vec<u8>], opts: &SearchOptions, hay: &[u8]) -> Vec<Match> {
    let hi = opts
        .to
        .map_or(hay.len() as u64, |t| t.min(hay.len() as u64)) as usize;
    let lo = (opts.from as usize).min(hi);
    let eq = |a: u8, b: u8| {
        if opts.icase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let mut out = Vec::new();
    for (pid, p) in patterns.iter().enumerate() {
        for s in lo..hi {
            if (opts.anchored && s != lo) || s + p.len() > hi {
                continue;
            }
            if hay[s..s + p.len()].iter().zip(p).all(|(&a, &b)| eq(a, b)) {
                out.push(Match {
                    pattern: pid,
                    start: s as u64,
                    end: (s + p.len()) as u64,
                });
            }
        }
    }
    out.sort_by_key(|m| (m.end, m.pattern));
    if opts.mode == MatchMode::Earliest {
        out.truncate(1);
    }
    out
}
