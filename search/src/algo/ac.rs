//! Aho-Corasick over the aho-corasick crate's automaton API: the flow state
//! is one `StateID`, nothing is carried.
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

#[derive(Debug)]
enum Aut {
    Dfa(dfa::DFA),
    Nfa(nfa::contiguous::NFA),
}

#[derive(Debug)]
pub(crate) struct Ac {
    aut: Aut,
    anchored: Anchored,
    start: StateID,
    max_len: usize,
    earliest: bool,
}

impl Ac {
    pub(crate) fn new(
        patterns: &[Pattern],
        icase: bool,
        anchored: bool,
        earliest: bool,
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
        Ok(Ac {
            aut,
            anchored: anch,
            start,
            max_len,
            earliest,
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
        // From here on a match may cross into the next chunk.
        let tail = hay.len().saturating_sub(self.max_len.saturating_sub(1));
        let mut i = 0;
        'outer: while i < hay.len() {
            if let Some(pre) = pre {
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
        if self.earliest {
            // The earliest end is here; ties go to the lowest pattern index.
            return match (0..n).map(make).min_by_key(|m| m.pattern) {
                Some(m) => sink(m) == Control::Stop,
                None => false,
            };
        }
        (0..n).any(|k| sink(make(k)) == Control::Stop)
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
