//! Per-flow state budget: automaton algorithms keep a fixed state of at most
//! 64 bytes and carry no flow bytes, nor do bm and memmem on literals of up
//! to 64 bytes (a partial-match set); carrying algorithms keep at most
//! longest pattern − 1 bytes.

use search::{Algorithm, Control, Pattern, SearchOptions, Searcher, StreamState};

fn searcher(algo: Algorithm, pats: &[Pattern]) -> Searcher {
    Searcher::new(algo, pats, SearchOptions::default()).expect("builds")
}

#[test]
fn stream_state_fits_64_bytes() {
    assert!(
        core::mem::size_of::<StreamState>() <= 64,
        "{}",
        core::mem::size_of::<StreamState>()
    );
}

#[test]
fn automata_carry_nothing() {
    let lits = [Pattern::literal("alpha"), Pattern::literal("beta")];
    // The automaton behind `ac` for anchored sets; unanchored sets of 2+
    // take the shift-or, which carries bytes (below).
    let anchored = SearchOptions {
        anchored: true,
        ..SearchOptions::default()
    };
    let ac = Searcher::new(Algorithm::AhoCorasick, &lits, anchored).expect("builds");
    assert_eq!(ac.carry_capacity(), 0);
    assert_eq!(searcher(Algorithm::AhoCorasick, &lits).carry_capacity(), 4);
    assert_eq!(searcher(Algorithm::Kmp, &lits[..1]).carry_capacity(), 0);
    let lit64 = [Pattern::literal([b'x'; 64])];
    for algo in [Algorithm::BoyerMoore, Algorithm::Memmem] {
        assert_eq!(searcher(algo, &lits[..1]).carry_capacity(), 0);
        assert_eq!(searcher(algo, &lit64).carry_capacity(), 0);
    }
    let unbounded = searcher(Algorithm::Regex, &[Pattern::regex("a.*b")]);
    assert_eq!(unbounded.carry_capacity(), 0);
    assert!(!unbounded.exact_start());
}

#[test]
fn carriers_keep_longest_minus_one() {
    // Past 64 bytes bm and memmem carry bytes instead of a partial set.
    let long: Vec<u8> = (0..70u8).map(|i| b'a' + i % 26).collect();
    let pat = [Pattern::literal(&long)];
    for algo in [Algorithm::BoyerMoore, Algorithm::Memmem] {
        let s = searcher(algo, &pat);
        assert_eq!(s.carry_capacity(), 69);
        let mut st = s.new_state();
        for chunk in [&long[..10], &long[10..], b"q", b"", &[b'z'; 100][..]] {
            s.feed(&mut st, chunk, |_| Control::Continue);
            assert!(st.carried_bytes() <= 69);
        }
    }
    // Two or more unanchored literals: the shift-or path of `ac`.
    let set: Vec<Pattern> = ["ab", "0123456789", "xyz", "q"]
        .iter()
        .map(Pattern::literal)
        .collect();
    let s = searcher(Algorithm::AhoCorasick, &set);
    assert_eq!(s.carry_capacity(), 9);
    let mut st = s.new_state();
    for chunk in [&b"01234"[..], b"56789ab", b"", b"q0123456789xyzq"] {
        s.feed(&mut st, chunk, |_| Control::Continue);
        assert!(st.carried_bytes() <= 9);
    }
    let s = searcher(
        Algorithm::Regex,
        &[Pattern::regex("[a-z]{2,5}x"), Pattern::regex("ab")],
    );
    assert_eq!(s.carry_capacity(), 5);
    assert!(s.exact_start());
}
