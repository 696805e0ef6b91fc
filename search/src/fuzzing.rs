//! The fuzz harness, kept in the library so the cargo-fuzz target and the
//! regression test (`tests/fuzz_regressions.rs`) run the very same code.
//!
//! Input layout: `[flags, from, to, npatterns, (len, bytes)*, haystack..]`;
//! missing bytes read as zero. Checked: building never panics; when it
//! succeeds, every chunking of the haystack (flat, 1-byte with empty chunks,
//! seeded cuts with packet resumes) reports the same matches, all inside the
//! window, in non-decreasing end order, and carries within the budget.

use crate::{algorithms, Control, Match, MatchMode, Pattern, PatternKind, SearchOptions, Searcher};

/// Decode `data` and check the engine's invariants; panics on a violation
/// (that is the fuzzer's signal), never on a merely odd input.
pub fn run(data: &[u8]) {
    let mut it = data.iter().copied();
    let mut next = || it.next().unwrap_or(0);
    let flags = next();
    let from = u64::from(next() % 32);
    let to = match next() {
        0xff => None,
        t => Some(u64::from(t) + from),
    };
    let opts = SearchOptions {
        icase: flags & 1 != 0,
        from,
        to,
        mode: if flags & 2 != 0 {
            MatchMode::All
        } else {
            MatchMode::Earliest
        },
        anchored: flags & 4 != 0,
    };
    let kind = match (flags >> 3) & 3 {
        0 | 3 => PatternKind::Literal,
        1 => PatternKind::Regex,
        _ => PatternKind::Wildcard,
    };
    let infos = algorithms();
    let info = infos[usize::from(flags >> 5) % infos.len()];
    let count = usize::from(next() % 4) + 1;
    let mut patterns = Vec::with_capacity(count);
    for _ in 0..count {
        let len = usize::from(next() % 24);
        let bytes = (0..len).map(|_| next()).collect();
        patterns.push(Pattern { bytes, kind });
    }
    let seed = next();
    let hay: Vec<u8> = it.collect();

    let Ok(s) = Searcher::new(info.algorithm, &patterns, opts) else {
        return;
    };
    let flat = collect(&s, &[vec![&hay[..]]]);
    let hi = to.unwrap_or(u64::MAX);
    for m in &flat {
        assert!(m.pattern < patterns.len() && m.start <= m.end, "{m:?}");
        assert!(m.end <= hi && m.end > from, "{m:?} outside window");
        if s.exact_start() {
            assert!(m.start >= from, "{m:?} starts before window");
        }
        if opts.anchored && s.exact_start() {
            assert_eq!(m.start, from, "anchored match elsewhere");
        }
    }
    assert!(flat.windows(2).all(|w| w[0].end <= w[1].end));
    if opts.mode == MatchMode::Earliest {
        assert!(flat.len() <= 1);
    }
    let bytes: Vec<&[u8]> = hay.chunks(1).flat_map(|c| [c, &b""[..]]).collect();
    assert_eq!(
        sorted(collect(&s, &[bytes])),
        sorted(flat.clone()),
        "1-byte chunks"
    );
    let mut packets: Vec<Vec<&[u8]>> = vec![Vec::new()];
    let mut at = 0;
    let mut x = u32::from(seed) | 1;
    while at < hay.len() {
        // xorshift: cheap, deterministic chunk lengths from the seed.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let len = (x % 11) as usize;
        if x & 0x100 != 0 {
            packets.push(Vec::new());
        }
        let end = (at + len).min(hay.len());
        packets
            .last_mut()
            .unwrap_or(&mut Vec::new())
            .push(&hay[at..end]);
        at = end;
    }
    assert_eq!(
        sorted(collect(&s, &packets)),
        sorted(flat.clone()),
        "seeded chunks"
    );
    // The same packets, each fed as one chain.
    assert_eq!(
        sorted(collect_chains(&s, &packets)),
        sorted(flat),
        "seeded chains"
    );
}

fn collect_chains(s: &Searcher, packets: &[Vec<&[u8]>]) -> Vec<Match> {
    let mut out = Vec::new();
    let mut stored = s.new_state();
    for packet in packets {
        let mut st = stored.clone();
        s.feed_chain(&mut st, packet, |m| {
            out.push(m);
            Control::Continue
        });
        assert!(st.carried_bytes() <= s.carry_capacity());
        stored = st;
    }
    out
}

fn collect(s: &Searcher, packets: &[Vec<&[u8]>]) -> Vec<Match> {
    let mut out = Vec::new();
    let mut stored = s.new_state();
    for packet in packets {
        let mut st = stored.clone();
        for chunk in packet {
            s.feed(&mut st, chunk, |m| {
                out.push(m);
                Control::Continue
            });
            assert!(st.carried_bytes() <= s.carry_capacity());
        }
        stored = st;
    }
    out
}

fn sorted(mut v: Vec<Match>) -> Vec<Match> {
    v.sort();
    v
}
