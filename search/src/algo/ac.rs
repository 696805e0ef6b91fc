//! Aho-Corasick over the aho-corasick crate's automaton API: the flow state
//! is one `StateID`, nothing is carried. Serves anchored sets and sets of
//! fewer than 4 literals; larger unanchored sets go to `fdr`.
//!
//! When the automaton sits in its start state, its prefilter (memchr,
//! rare bytes, Teddy) skips bytes that cannot start a match. The last
//! `longest − 1` bytes of a chunk are always stepped byte by byte, because a
//! match starting there may end in the next chunk, where the prefilter cannot
//! see it.

use aho_corasick::automaton::StateID;
use aho_corasick::automaton::{Automaton, Candidate};
use aho_corasick::{dfa, nfa, Anchored, MatchKind, StartKind};

use super::{Engine, EngineState};
use crate::{BuildError, Control, Match, Pattern};

/// Above this many patterns the DFA's memory (states × byte classes) stops
/// paying for itself; the contiguous NFA is compact and still fast.
const DFA_MAX_PATTERNS: usize = 100;
/// Sets of at least this many patterns use the gram filter even when the
/// aho-corasick crate offers a prefilter.
const GRAM_FILTER_MIN_PATTERNS: usize = 4;

#[derive(Debug)]
enum Aut {
    Dfa(dfa::DFA),
    Nfa(nfa::contiguous::NFA),
}

/// Skip filter for large literal sets, which get no prefilter from the
/// aho-corasick crate (its Teddy stops at 64 patterns and start/rare-byte
/// filters at 3 bytes). A match starting at `p` contains, at every offset
/// `k ≤ min_len − 4`, a 4-byte gram of its pattern; testing one gram every
/// `min_len − 3` bytes against a hashed bitmap of those grams therefore
/// rules out whole stretches of start positions at once.
#[derive(Debug)]
struct GramFilter {
    bits: Vec<u64>,
    shift: u32,
    min_len: usize,
    icase: bool,
}

impl GramFilter {
    /// Worth it only when the stride (`min_len − 3`) skips a few bytes.
    const MIN_LEN: usize = 6;

    fn new(patterns: &[Pattern], icase: bool) -> Option<GramFilter> {
        let min_len = patterns.iter().map(|p| p.bytes.len()).min()?;
        if min_len < Self::MIN_LEN {
            return None;
        }
        let grams = patterns.len() * (min_len - 3);
        // About 16 bits per gram keeps false positives near 6%.
        let log2 = (grams * 16)
            .next_power_of_two()
            .trailing_zeros()
            .clamp(12, 24);
        let mut f = GramFilter {
            bits: vec![0; 1 << (log2 - 6)],
            shift: 32 - log2,
            min_len,
            icase,
        };
        for p in patterns {
            for k in 0..=min_len - 4 {
                let h = f.hash(&p.bytes[k..k + 4]);
                f.bits[h >> 6] |= 1 << (h & 63);
            }
        }
        Some(f)
    }

    #[inline(always)]
    fn hash(&self, g: &[u8]) -> usize {
        let mut b = [g[0], g[1], g[2], g[3]];
        if self.icase {
            b = b.map(|x| x.to_ascii_lowercase());
        }
        (u32::from_le_bytes(b).wrapping_mul(0x9e37_79b1) >> self.shift) as usize
    }

    /// First position in `[i, tail]` where a match may start: every start
    /// before it is ruled out.
    #[inline]
    fn skip(&self, hay: &[u8], i: usize, tail: usize) -> usize {
        let back = self.min_len - 4;
        let mut q = i + back;
        loop {
            let lo = q - back;
            if lo >= tail {
                return tail;
            }
            if q + 4 > hay.len() {
                return lo;
            }
            let h = self.hash(&hay[q..q + 4]);
            if self.bits[h >> 6] & (1 << (h & 63)) != 0 {
                return lo;
            }
            q += back + 1;
        }
    }
}

#[derive(Debug)]
pub(crate) struct Ac {
    aut: Aut,
    grams: Option<GramFilter>,
    anchored: Anchored,
    start: StateID,
    max_len: usize,
    earliest: bool,
    /// Window start: in anchored mode, the only allowed match start.
    from: u64,
}

impl Ac {
    pub(crate) fn new(
        patterns: &[Pattern],
        icase: bool,
        anchored: bool,
        earliest: bool,
        from: u64,
    ) -> Result<Ac, BuildError> {
        let pats = patterns.iter().map(|p| &p.bytes);
        let (start_kind, anch) = if anchored {
            (StartKind::Anchored, Anchored::Yes)
        } else {
            (StartKind::Unanchored, Anchored::No)
        };
        let too_large = |e: aho_corasick::BuildError| BuildError::TooLarge {
            message: e.to_string(),
        };
        let aut = if patterns.len() <= DFA_MAX_PATTERNS {
            Aut::Dfa(
                dfa::Builder::new()
                    .match_kind(MatchKind::Standard)
                    .ascii_case_insensitive(icase)
                    .start_kind(start_kind)
                    .build(pats)
                    .map_err(too_large)?,
            )
        } else {
            Aut::Nfa(
                nfa::contiguous::Builder::new()
                    .match_kind(MatchKind::Standard)
                    .ascii_case_insensitive(icase)
                    .build(pats)
                    .map_err(too_large)?,
            )
        };
        let (start, max_len) = match &aut {
            Aut::Dfa(a) => (a.start_state(anch), a.max_pattern_len()),
            Aut::Nfa(a) => (a.start_state(anch), a.max_pattern_len()),
        };
        let start = start.map_err(|e| BuildError::TooLarge {
            message: e.to_string(),
        })?;
        let has_pre = match &aut {
            Aut::Dfa(a) => a.prefilter().is_some(),
            Aut::Nfa(a) => a.prefilter().is_some(),
        };
        // The crate's prefilter wins for a handful of patterns (memchr on
        // one literal); from a few patterns on, its candidates are too dense
        // in text and the gram filter measured 3x faster (BENCHMARKS.md).
        let grams = if anchored || (has_pre && patterns.len() < GRAM_FILTER_MIN_PATTERNS) {
            None
        } else {
            GramFilter::new(patterns, icase)
        };
        Ok(Ac {
            aut,
            grams,
            anchored: anch,
            start,
            max_len,
            earliest,
            from,
        })
    }

    fn run<A: Automaton>(
        &self,
        aut: &A,
        st: &mut EngineState,
        hay: &[u8],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        let anchored = self.anchored;
        let mut sid = StateID::new(st.sid as usize).unwrap_or(self.start);
        let pre = if anchored.is_anchored() {
            None
        } else {
            aut.prefilter()
        };
        let grams = self.grams.as_ref();
        // From here on a match may cross into the next chunk.
        let tail = hay.len().saturating_sub(self.max_len.saturating_sub(1));
        let mut i = 0;
        'outer: while i < hay.len() {
            if let Some(g) = grams {
                if sid == self.start && i < tail {
                    i = g.skip(hay, i, tail).max(i);
                    if i >= hay.len() {
                        break;
                    }
                }
            } else if let Some(pre) = pre {
                if sid == self.start && i < tail {
                    let span = aho_corasick::Span {
                        start: i,
                        end: hay.len(),
                    };
                    let next = match pre.find_in(hay, span) {
                        Candidate::None => tail,
                        Candidate::Match(m) => m.start(),
                        Candidate::PossibleStartOfMatch(p) => p,
                    };
                    i = next.min(tail).max(i);
                    if i >= hay.len() {
                        break;
                    }
                }
            }
            while i < hay.len() {
                sid = aut.next_state(anchored, sid, hay[i]);
                i += 1;
                // Without a prefilter the start state is not "special";
                // back at it, the gram filter may skip again.
                if grams.is_some() && sid == self.start && i < tail {
                    continue 'outer;
                }
                if aut.is_special(sid) {
                    if aut.is_dead(sid) {
                        st.sid = sid.as_u32();
                        return Control::Stop;
                    }
                    if aut.is_match(sid) && self.report(aut, sid, base + i as u64, sink) {
                        st.sid = sid.as_u32();
                        return Control::Stop;
                    }
                    if sid == self.start && pre.is_some() {
                        continue 'outer;
                    }
                }
            }
        }
        st.sid = sid.as_u32();
        Control::Continue
    }

    /// Report the matches of match state `sid` ending at `end`; true to stop.
    fn report<A: Automaton>(
        &self,
        aut: &A,
        sid: StateID,
        end: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> bool {
        let n = aut.match_len(sid);
        let make = |k: usize| {
            let pid = aut.match_pattern(sid, k);
            Match {
                pattern: pid.as_usize(),
                start: end - aut.pattern_len(pid) as u64,
                end,
            }
        };
        // Standard-semantics match states also list the patterns reached
        // through failure links, i.e. suffixes that start after the anchor.
        let anchored = self.anchored.is_anchored();
        let mut found = (0..n)
            .map(make)
            .filter(|m| !anchored || m.start == self.from);
        if self.earliest {
            // The earliest end is here; ties go to the lowest pattern index.
            return match found.min_by_key(|m| m.pattern) {
                Some(m) => sink(m) == Control::Stop,
                None => false,
            };
        }
        found.any(|m| sink(m) == Control::Stop)
    }
}

impl Engine for Ac {
    fn initial_sid(&self) -> u32 {
        self.start.as_u32()
    }

    fn scan(
        &self,
        st: &mut EngineState,
        hay: &[u8],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        match &self.aut {
            Aut::Dfa(a) => self.run(a, st, hay, base, sink),
            Aut::Nfa(a) => self.run(a, st, hay, base, sink),
        }
    }
}
