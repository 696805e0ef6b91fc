//! Differential property test: every algorithm, fed random chunkings of a
//! random haystack (1-byte and empty chunks included, split into "packets"
//! that resume a stored state), must report exactly what a naive search over
//! the flat buffer reports.

mod common;

use proptest::prelude::*;
use search::{algorithms, BuildError, MatchMode, Pattern, PatternKind, SearchOptions, Searcher};

const ALPHABET: &[u8] = b"abcAB\x00\xff\n";

fn byte() -> impl Strategy<Value = u8> {
    proptest::sample::select(ALPHABET)
}

fn options() -> impl Strategy<Value = SearchOptions> {
    (
        any::<bool>(),
        prop_oneof![3 => Just(0u64), 1 => 0u64..12],
        prop_oneof![3 => Just(None), 1 => (0u64..90).prop_map(Some)],
        any::<bool>(),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(icase, from, to, all, anchored)| SearchOptions {
            icase,
            from,
            to: to.map(|t| t.max(from)),
            mode: if all {
                MatchMode::All
            } else {
                MatchMode::Earliest
            },
            anchored,
        })
}

/// Chunk lengths (0 = an empty chunk) and, per chunk, whether a new packet
/// starts before it.
fn cuts() -> impl Strategy<Value = Vec<(usize, bool)>> {
    prop::collection::vec(
        (
            prop_oneof![1 => Just(0usize), 2 => Just(1usize), 3 => 0usize..20],
            prop::bool::weighted(0.3),
        ),
        0..40,
    )
}

fn split<'a>(hay: &'a [u8], cuts: &[(usize, bool)]) -> Vec<Vec<&'a [u8]>> {
    let mut packets: Vec<Vec<&[u8]>> = vec![Vec::new()];
    let mut at = 0;
    for &(len, new_packet) in cuts {
        if new_packet {
            packets.push(Vec::new());
        }
        let end = (at + len).min(hay.len());
        packets.last_mut().expect("non-empty").push(&hay[at..end]);
        at = end;
    }
    packets.last_mut().expect("non-empty").push(&hay[at..]);
    packets
}

fn check(
    patterns: &[Pattern],
    opts: SearchOptions,
    hay: &[u8],
    cuts: &[(usize, bool)],
) -> Result<usize, TestCaseError> {
    let packets = split(hay, cuts);
    let mut ran = 0;
    for info in algorithms() {
        let s = match Searcher::new(info.algorithm, patterns, opts) {
            Ok(s) => s,
            Err(
                BuildError::UnsupportedKind { .. }
                | BuildError::TooManyPatterns { .. }
                | BuildError::UnsupportedOption { .. }
                | BuildError::MatchesEmpty { .. },
            ) => continue,
            Err(e) => return Err(TestCaseError::fail(format!("{}: {e}", info.name))),
        };
        let want = common::naive(patterns, &opts, hay, s.exact_start());
        let got = common::normalise(common::run_packets(&s, &packets));
        prop_assert_eq!(&got, &want, "algorithm {} packets {:?}", info.name, packets);
        let got = common::normalise(common::run_packets_chain(&s, &packets));
        prop_assert_eq!(&got, &want, "algorithm {} chains {:?}", info.name, packets);
        // Up to 40 chunks: several stack batches of `feed_chain`.
        let got = common::normalise(s.find_all_in_chunks(packets.iter().flatten().copied()));
        prop_assert_eq!(&got, &want, "algorithm {} find_all_in_chunks", info.name);
        let first = s.find_in_chunks(packets.iter().flatten().copied());
        if opts.mode == MatchMode::Earliest {
            prop_assert_eq!(
                first,
                want.first().copied(),
                "algorithm {} find_in_chunks",
                info.name
            );
        } else {
            prop_assert_eq!(first.is_some(), !want.is_empty());
        }
        let mut st = s.new_state();
        let mut chained = s.new_state();
        for p in &packets {
            for c in p {
                s.feed(&mut st, c, |_| search::Control::Continue);
            }
            s.feed_chain(&mut chained, p, |_| search::Control::Continue);
        }
        prop_assert!(st.carried_bytes() <= s.carry_capacity());
        // A chain leaves the state where one feed per chunk leaves it (a
        // finished state's carry is never read again).
        prop_assert_eq!(
            (chained.offset(), chained.is_finished()),
            (st.offset(), st.is_finished()),
            "algorithm {} state after chains",
            info.name
        );
        if !st.is_finished() {
            prop_assert_eq!(chained.carried_bytes(), st.carried_bytes());
        }
        ran += 1;
    }
    Ok(ran)
}

const REGEX_ATOMS: &[&str] = &[
    "a", "b", "c", "A", "[ab]", ".", r"\x00", r"\xff", "(?s:.)", "a+", "b?c", "[^a]", "(ab|c)",
    "c{1,3}", "x*a", "B",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn literal_sets(
        pats in prop::collection::vec(prop::collection::vec(byte(), 1..6), 1..5),
        hay in prop::collection::vec(byte(), 0..100),
        opts in options(),
        cuts in cuts(),
    ) {
        let patterns: Vec<Pattern> = pats.iter().map(Pattern::literal).collect();
        let ran = check(&patterns, opts, &hay, &cuts)?;
        prop_assert!(ran >= 3, "ac, regex and wildcard take any literal set");
    }

    /// Long single literals (up to and past the 64-byte split masks of
    /// memmem's boundary filter) over two letters, so that periodic
    /// patterns overlap themselves across many boundaries.
    #[test]
    fn long_literal_taken_from_haystack(
        hay in prop::collection::vec(proptest::sample::select(&b"ab"[..]), 1..300),
        at in any::<prop::sample::Index>(),
        len in prop_oneof![1usize..90, 62usize..67],
        opts in options(),
        cuts in cuts(),
    ) {
        let s = at.index(hay.len());
        let pat = &hay[s..(s + len).min(hay.len())];
        check(&[Pattern::literal(pat)], opts, &hay, &cuts)?;
    }

    #[test]
    fn literal_taken_from_haystack(
        hay in prop::collection::vec(byte(), 1..100),
        at in any::<prop::sample::Index>(),
        len in 1usize..8,
        opts in options(),
        cuts in cuts(),
    ) {
        let s = at.index(hay.len());
        let pat = &hay[s..(s + len).min(hay.len())];
        check(&[Pattern::literal(pat)], opts, &hay, &cuts)?;
    }

    /// Large sets of longer literals: no aho-corasick prefilter applies, so
    /// this exercises the gram skip filter, with patterns planted in the
    /// haystack so that matches cross chunk boundaries.
    #[test]
    fn large_literal_sets(
        pats in prop::collection::vec(prop::collection::vec(byte(), 6..11), 65..90),
        noise in prop::collection::vec(byte(), 0..200),
        plants in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..6),
        opts in options(),
        cuts in cuts(),
    ) {
        let mut hay = noise;
        for (which, at) in plants {
            let p = &pats[which.index(pats.len())];
            let at = at.index(hay.len() + 1);
            hay.splice(at..at, p.iter().copied());
        }
        let opts = SearchOptions { to: opts.to.map(|t| t * 3), ..opts };
        let want = common::naive_literals(&pats, &opts, &hay);
        let patterns: Vec<Pattern> = pats.iter().map(Pattern::literal).collect();
        let packets = split(&hay, &cuts);
        for algo in [search::Algorithm::AhoCorasick, search::Algorithm::Auto] {
            let s = Searcher::new(algo, &patterns, opts).expect("literal set builds");
            let got = common::normalise(common::run_packets(&s, &packets));
            prop_assert_eq!(&got, &want);
            let got = common::normalise(common::run_packets_chain(&s, &packets));
            prop_assert_eq!(&got, &want, "chains");
        }
    }

    /// Sets big enough for the bucketed shift-or (`fdr`, 2+ unanchored
    /// literals): short and long literals mixed (1 to 24 bytes, windows of
    /// 1 to 8), planted so that they straddle chunks and packets, under
    /// every option (icase, from/to windows, earliest, anchored falls back
    /// to the automaton).
    #[test]
    fn shift_or_literal_sets(
        pats in prop::collection::vec(
            prop_oneof![
                1 => prop::collection::vec(byte(), 1..3),
                3 => prop::collection::vec(byte(), 3..10),
                2 => prop::collection::vec(byte(), 10..25),
            ],
            4..120,
        ),
        noise in prop::collection::vec(byte(), 0..300),
        plants in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..10),
        opts in options(),
        cuts in cuts(),
    ) {
        let mut hay = noise;
        for (which, at) in plants {
            let p = &pats[which.index(pats.len())];
            let at = at.index(hay.len() + 1);
            hay.splice(at..at, p.iter().copied());
        }
        let opts = SearchOptions { to: opts.to.map(|t| t * 4), ..opts };
        let want = common::naive_literals(&pats, &opts, &hay);
        let patterns: Vec<Pattern> = pats.iter().map(Pattern::literal).collect();
        let packets = split(&hay, &cuts);
        let longest = pats.iter().map(Vec::len).max().unwrap_or(1);
        for algo in [search::Algorithm::AhoCorasick, search::Algorithm::Auto] {
            let s = Searcher::new(algo, &patterns, opts).expect("literal set builds");
            prop_assert!(s.carry_capacity() < longest);
            let got = common::normalise(common::run_packets(&s, &packets));
            prop_assert_eq!(&got, &want, "{} packets {:?}", algo, packets);
            // One byte at a time, with empty chunks between.
            let bytes: Vec<&[u8]> = hay.chunks(1).flat_map(|c| [c, &b""[..]]).collect();
            let got = common::normalise(common::run_packets(&s, std::slice::from_ref(&bytes)));
            prop_assert_eq!(&got, &want, "{} byte by byte", algo);
            let got = common::normalise(common::run_packets_chain(&s, &packets));
            prop_assert_eq!(&got, &want, "{} chains {:?}", algo, packets);
            let got = common::normalise(common::run_packets_chain(&s, &[bytes]));
            prop_assert_eq!(&got, &want, "{} one chain of bytes", algo);
        }
    }

    #[test]
    fn regex_sets(
        pats in prop::collection::vec(prop::collection::vec(proptest::sample::select(REGEX_ATOMS), 1..4), 1..4),
        hay in prop::collection::vec(proptest::sample::select(&b"abcxAB\x00\xff\n"[..]), 0..60),
        opts in options(),
        cuts in cuts(),
    ) {
        let patterns: Vec<Pattern> = pats.iter().map(|atoms| Pattern::regex(&atoms.concat())).collect();
        check(&patterns, opts, &hay, &cuts)?;
    }

    #[test]
    fn wildcard_sets(
        pats in prop::collection::vec(prop::collection::vec(proptest::sample::select(&b"ab?*A\\\xff"[..]), 1..6), 1..4),
        hay in prop::collection::vec(byte(), 0..60),
        opts in options(),
        cuts in cuts(),
    ) {
        let patterns: Vec<Pattern> = pats.iter().map(|p| Pattern { bytes: p.clone(), kind: PatternKind::Wildcard }).collect();
        check(&patterns, opts, &hay, &cuts)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Sets large enough for three-byte grams in the shift-or (2,048+
    /// literals), over the small alphabet (saturated buckets, dense
    /// candidates), short literals included (grams reaching before a
    /// literal's start, and before the flow start), under every option.
    #[test]
    fn large_shift_or_literal_sets(
        pats in prop::collection::vec(
            prop_oneof![
                1 => prop::collection::vec(byte(), 1..3),
                6 => prop::collection::vec(byte(), 3..10),
                3 => prop::collection::vec(byte(), 10..17),
            ],
            2048..2300,
        ),
        noise in prop::collection::vec(byte(), 0..400),
        plants in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..10),
        opts in options(),
        cuts in cuts(),
    ) {
        let mut hay = noise;
        for (which, at) in plants {
            let p = &pats[which.index(pats.len())];
            let at = at.index(hay.len() + 1);
            hay.splice(at..at, p.iter().copied());
        }
        let opts = SearchOptions { to: opts.to.map(|t| t * 4), ..opts };
        let want = common::naive_literals(&pats, &opts, &hay);
        let patterns: Vec<Pattern> = pats.iter().map(Pattern::literal).collect();
        let s = Searcher::new(search::Algorithm::AhoCorasick, &patterns, opts).expect("literal set builds");
        let got = common::normalise(common::run_packets(&s, &split(&hay, &cuts)));
        prop_assert_eq!(&got, &want);
        let got = common::normalise(common::run_packets_chain(&s, &split(&hay, &cuts)));
        prop_assert_eq!(&got, &want, "chains");
        let bytes: Vec<&[u8]> = hay.chunks(1).flat_map(|c| [c, &b""[..]]).collect();
        let got = common::normalise(common::run_packets(&s, std::slice::from_ref(&bytes)));
        prop_assert_eq!(&got, &want, "byte by byte");
        let got = common::normalise(common::run_packets_chain(&s, &[bytes]));
        prop_assert_eq!(&got, &want, "one chain of bytes");
    }
}
