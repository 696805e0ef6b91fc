//! Regexes and wildcards as a regex-automata dense DFA, stepped one byte at
//! a time with `next_state`, so the flow state is one `StateID`.
//!
//! regex-automata DFAs report a match one byte late (the transition *after*
//! its last byte lands in a match state). At the end of every call (a chunk,
//! or a whole chain) the end-of-input transition is peeked so a match
//! ending exactly there is reported by that call; `EngineState::mark`
//! remembers it so the delayed report at the start of the next call is
//! dropped. Inside a chain, a match ending at a chunk boundary is simply
//! reported one byte late, at the next chunk's first byte. This is only
//! sound because look-around assertions (`^`, `$`, `\b`) are refused.
//!
//! Start offsets come from a reverse DFA (anchored on the matched pattern)
//! run back from the match end over the chunk, the earlier chunks of the
//! chain and the carried bytes; this needs every pattern to have a bounded
//! length, so the carry is exactly longest match − 1 bytes, updated once
//! per call.

use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::nfa::thompson;
use regex_automata::util::{start, syntax};
use regex_automata::{Anchored, MatchKind, PatternID};

use super::{Engine, EngineState};
use crate::{BuildError, Control, Match, Pattern, PatternKind, SearchOptions};

/// Longest match for which start offsets are recovered (bytes carried per
/// flow); longer bounded patterns are treated as unbounded.
const MAX_CARRY: usize = 4096;
/// Memory cap for one compiled DFA (forward or reverse).
const SIZE_LIMIT: usize = 256 << 20;

type DenseDfa = dense::DFA<Vec<u32>>;

#[derive(Debug)]
pub(crate) struct Dfa {
    fwd: DenseDfa,
    /// Present when every pattern has a bounded length.
    rev: Option<DenseDfa>,
    start: regex_automata::util::primitives::StateID,
    /// Bytes carried for the reverse DFA (longest match − 1).
    carry: usize,
    /// Reported as `start` when it cannot be recovered.
    from: u64,
    earliest: bool,
}

/// `\xHH` for every byte that is not alphanumeric, so any byte string is a
/// valid regex in bytes mode.
fn escape_byte(out: &mut String, b: u8) {
    if b.is_ascii_alphanumeric() {
        out.push(b as char);
    } else {
        out.push_str(&format!("\\x{b:02X}"));
    }
}

/// A pattern as regex source text.
pub(crate) fn to_regex(index: usize, p: &Pattern) -> Result<String, BuildError> {
    let mut out = String::new();
    match p.kind {
        PatternKind::Regex => {
            return String::from_utf8(p.bytes.clone())
                .map_err(|_| BuildError::InvalidUtf8 { index });
        }
        PatternKind::Literal => p.bytes.iter().for_each(|&b| escape_byte(&mut out, b)),
        PatternKind::Wildcard => {
            let mut bytes = p.bytes.iter().copied();
            let mut last_star = false;
            while let Some(b) = bytes.next() {
                match b {
                    b'*' if last_star => continue,
                    b'*' => out.push_str("(?s:.)*"),
                    b'?' => out.push_str("(?s:.)"),
                    b'\\' => escape_byte(&mut out, bytes.next().unwrap_or(b'\\')),
                    _ => escape_byte(&mut out, b),
                }
                last_star = b == b'*';
            }
        }
    }
    Ok(out)
}

fn too_large(e: dense::BuildError) -> BuildError {
    BuildError::TooLarge {
        message: e.to_string(),
    }
}

impl Dfa {
    pub(crate) fn new(
        patterns: &[Pattern],
        opts: &SearchOptions,
        earliest: bool,
    ) -> Result<Dfa, BuildError> {
        let syn = syntax::Config::new()
            .unicode(false)
            .utf8(false)
            .case_insensitive(opts.icase);
        let mut sources = Vec::with_capacity(patterns.len());
        let mut longest = Some(0usize);
        for (index, p) in patterns.iter().enumerate() {
            let src = to_regex(index, p)?;
            let hir = syntax::parse_with(&src, &syn).map_err(|e| BuildError::Syntax {
                index,
                message: e.to_string(),
            })?;
            let props = hir.properties();
            if !props.look_set().is_empty() {
                return Err(BuildError::UnsupportedRegex {
                    index,
                    reason: "anchors and word boundaries (use the anchored option)",
                });
            }
            if props.minimum_len() == Some(0) {
                return Err(BuildError::MatchesEmpty { index });
            }
            // A pattern that can never match has no maximum; it does not
            // make the set unbounded.
            if props.minimum_len().is_some() {
                longest = match (longest, props.maximum_len()) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
            sources.push(src);
        }
        let (start_kind, anchored) = if opts.anchored {
            (StartKind::Anchored, Anchored::Yes)
        } else {
            (StartKind::Unanchored, Anchored::No)
        };
        let config = dense::Config::new()
            .match_kind(MatchKind::All)
            .dfa_size_limit(Some(SIZE_LIMIT))
            .determinize_size_limit(Some(SIZE_LIMIT));
        let fwd = dense::Builder::new()
            .configure(config.clone().start_kind(start_kind))
            .syntax(syn)
            .build_many(&sources)
            .map_err(too_large)?;
        let start = fwd
            .start_state(&start::Config::new().anchored(anchored))
            .map_err(|e| BuildError::TooLarge {
                message: e.to_string(),
            })?;
        let longest = longest.filter(|&n| n <= MAX_CARRY);
        let rev = match longest {
            Some(_) => Some(
                dense::Builder::new()
                    .configure(
                        config
                            .start_kind(StartKind::Anchored)
                            .starts_for_each_pattern(true),
                    )
                    .syntax(syn)
                    .thompson(thompson::Config::new().reverse(true))
                    .build_many(&sources)
                    .map_err(too_large)?,
            ),
            None => None,
        };
        Ok(Dfa {
            fwd,
            rev,
            start,
            carry: longest.map_or(0, |n| n.saturating_sub(1)),
            from: opts.from,
            earliest,
        })
    }

    /// Leftmost start of a match of `pid` ending at `end`, searching back
    /// through `back`: the bytes before `end`, last first.
    fn start_of<'a>(&self, pid: PatternID, bytes: impl Iterator<Item = &'a u8>, end: u64) -> u64 {
        let Some(rev) = &self.rev else {
            return self.from;
        };
        let cfg = start::Config::new().anchored(Anchored::Pattern(pid));
        let Ok(mut s) = rev.start_state(&cfg) else {
            return self.from;
        };
        let mut best = None;
        let mut back = 0u64;
        for &b in bytes {
            s = rev.next_state(s, b);
            if rev.is_special_state(s) {
                if rev.is_match_state(s) {
                    // Delayed by one byte: the match is `back` bytes long.
                    best = Some(back);
                } else if rev.is_dead_state(s) {
                    break;
                }
            }
            back += 1;
        }
        if !rev.is_dead_state(s) && rev.is_match_state(rev.next_eoi_state(s)) {
            best = Some(back);
        }
        // The forward DFA saw a match, so the reverse one finds it; fall back
        // to the lower bound rather than panic if it somehow does not.
        best.map_or(self.from, |len| end - len)
    }

    /// Report the matches of match state `sid` ending at `end`; `back`
    /// gives the bytes before `end`, last first. True to stop.
    fn report<'a, I: Iterator<Item = &'a u8>>(
        &self,
        sid: regex_automata::util::primitives::StateID,
        end: u64,
        back: impl Fn() -> I,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> bool {
        let n = self.fwd.match_len(sid);
        let make = |k: usize| {
            let pid = self.fwd.match_pattern(sid, k);
            Match {
                pattern: pid.as_usize(),
                start: self.start_of(pid, back(), end),
                end,
            }
        };
        if self.earliest {
            let best = (0..n).min_by_key(|&k| self.fwd.match_pattern(sid, k));
            return best.is_some_and(|k| sink(make(k)) == Control::Stop);
        }
        (0..n).any(|k| sink(make(k)) == Control::Stop)
    }
}

impl Engine for Dfa {
    fn initial_sid(&self) -> u32 {
        self.start.as_u32()
    }

    fn carry_capacity(&self) -> usize {
        self.carry
    }

    fn exact_start(&self) -> bool {
        self.rev.is_some()
    }

    fn scan(
        &self,
        st: &mut EngineState,
        hay: &[u8],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        if hay.is_empty() {
            // The end-of-input peek would report again a match that the
            // previous call reported at this very offset.
            return Control::Continue;
        }
        let mut sid = self.load(st);
        let carry = &st.carry[..];
        let back = |i: usize| hay[..i].iter().rev().chain(carry.iter().rev());
        let skip = (st.mark == base).then_some(base);
        if self.run(&mut sid, hay, base, skip, back, sink) == Control::Stop {
            st.sid = sid.as_u32();
            return Control::Stop;
        }
        st.sid = sid.as_u32();
        let end = base + hay.len() as u64;
        if self.peek_eoi(&mut st.mark, sid, end, || back(hay.len()), sink) {
            return Control::Stop;
        }
        crate::carry::push(&mut st.carry, hay, self.carry);
        Control::Continue
    }

    fn scan_chain(
        &self,
        st: &mut EngineState,
        chain: &[&[u8]],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        let mut sid = self.load(st);
        let carry = &st.carry[..];
        // Bytes before offset `i` of chain[c], last first: back through
        // the chunk, the earlier chunks, then the carry.
        let back = |c: usize, i: usize| {
            let hay: &[u8] = chain[c];
            hay[..i]
                .iter()
                .rev()
                .chain(chain[..c].iter().rev().flat_map(|h| h.iter().rev()))
                .chain(carry.iter().rev())
        };
        let skip = (st.mark == base).then_some(base);
        let mut at = base;
        for (c, &hay) in chain.iter().enumerate() {
            // A match ending at a chunk boundary inside the chain is
            // reported at the next chunk's first byte, one byte late.
            if self.run(&mut sid, hay, at, skip, |i| back(c, i), sink) == Control::Stop {
                st.sid = sid.as_u32();
                return Control::Stop;
            }
            at += hay.len() as u64;
        }
        st.sid = sid.as_u32();
        if at == base {
            // Nothing fed: see `scan`.
            return Control::Continue;
        }
        let last = chain.len() - 1;
        if self.peek_eoi(
            &mut st.mark,
            sid,
            at,
            || back(last, chain[last].len()),
            sink,
        ) {
            return Control::Stop;
        }
        crate::carry::push_chain(&mut st.carry, chain, self.carry);
        Control::Continue
    }
}

impl Dfa {
    /// The flow's DFA state.
    #[inline(always)]
    fn load(&self, st: &EngineState) -> regex_automata::util::primitives::StateID {
        regex_automata::util::primitives::StateID::new(st.sid as usize).unwrap_or(self.start)
    }

    /// Step the DFA over `hay` (first byte at `at`) from `*sid`; `back(i)`
    /// gives the bytes before `hay[i]`, last first. A match ending at
    /// `skip` was already reported. `Stop` when the sink stopped or the
    /// DFA died.
    #[inline(always)]
    fn run<'a, I: Iterator<Item = &'a u8>>(
        &self,
        sid: &mut regex_automata::util::primitives::StateID,
        hay: &[u8],
        at: u64,
        skip: Option<u64>,
        back: impl Fn(usize) -> I,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        let fwd = &self.fwd;
        let mut i = 0;
        while i < hay.len() {
            if fwd.is_special_state(*sid) && fwd.is_accel_state(*sid) && !fwd.is_match_state(*sid) {
                // Every byte but these few loops back here: skip to the next.
                let needles = fwd.accelerator(*sid);
                let rest = &hay[i..];
                let found = match *needles {
                    [a] => memchr::memchr(a, rest),
                    [a, b] => memchr::memchr2(a, b, rest),
                    [a, b, c] => memchr::memchr3(a, b, c, rest),
                    _ => Some(0),
                };
                match found {
                    Some(k) => i += k,
                    None => break,
                }
            }
            *sid = fwd.next_state(*sid, hay[i]);
            if fwd.is_special_state(*sid) {
                if fwd.is_match_state(*sid) {
                    let end = at + i as u64;
                    if skip != Some(end) && self.report(*sid, end, || back(i), sink) {
                        return Control::Stop;
                    }
                } else if fwd.is_dead_state(*sid) {
                    return Control::Stop;
                }
            }
            i += 1;
        }
        Control::Continue
    }

    /// At the end of the fed bytes (offset `end`), report a match ending
    /// exactly there now rather than one byte late, and remember it in
    /// `mark` so that the next call drops the late report. True to stop.
    #[inline(always)]
    fn peek_eoi<'a, I: Iterator<Item = &'a u8>>(
        &self,
        mark: &mut u64,
        sid: regex_automata::util::primitives::StateID,
        end: u64,
        back: impl Fn() -> I,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> bool {
        let eoi = self.fwd.next_eoi_state(sid);
        if !self.fwd.is_match_state(eoi) {
            return false;
        }
        *mark = end;
        self.report(eoi, end, back, sink)
    }
}
