//! A streaming pattern engine over scatter-gather packet data.
//!
//! `search` finds literals, literal sets, regular expressions and shell-style
//! wildcards in data that arrives in pieces: the fragments of one packet's
//! payload (a chain of buffers) and the successive packets of one flow. It is
//! what the ruleset's `-m string` match and the protocol helpers (FTP, H.323,
//! talk) call.
//!
//! # Model
//!
//! * A pattern set is compiled once into a [`Searcher`]: immutable, `Send +
//!   Sync`, shared by every flow (put it in an `Arc`).
//! * Each flow owns a [`StreamState`], created by [`Searcher::new_state`]. It
//!   is small and of fixed size: automaton-driven algorithms keep only a state
//!   number (the whole struct is at most 64 bytes), Boyer-Moore-Horspool and
//!   memmem on a literal of up to 64 bytes keep a 64-bit set of the partial
//!   matches at the boundary, and algorithms that look back (those two on
//!   longer literals, the bucketed shift-or behind `ac` for sets of 2+
//!   unanchored literals, bounded regexes reporting start offsets) keep at
//!   most *longest pattern − 1* bytes in a buffer allocated once when the
//!   state is created. Nothing is allocated per packet.
//! * Data is fed one chunk at a time with [`Searcher::feed`]; chunks may be
//!   empty or one byte long. A match that straddles any number of chunk (or
//!   packet) boundaries is found, and reported with the pattern index and its
//!   absolute offsets in the stream ([`Match`]). Stopping after one packet and
//!   resuming with the next one of the same flow is simply another `feed`.
//! * A chain of chunks held at once (a packet's fragments) can be given to
//!   [`Searcher::feed_chain`] in one call: the same matches as one `feed`
//!   per chunk, and a state that goes on the same way (same offset and
//!   carried bytes), but the per-chunk cost is lower (the engine
//!   loops over the chain with its state in registers; the shift-or engine
//!   scans each chunk boundary as one block).
//!
//! Matching semantics are the same for every algorithm, so that they are
//! interchangeable: in [`MatchMode::All`] every occurrence of every pattern is
//! reported (overlapping ones included) in increasing end offset; in
//! [`MatchMode::Earliest`] only the match with the smallest end offset is
//! reported (ties go to the smallest pattern index) and the search then stops.
//! The search only sees the bytes in the window `[from, to)` of
//! [`SearchOptions`]; with `anchored` a match must start at `from`.
//!
//! For regexes and wildcards the end offset is always exact. The start offset
//! is exact when every pattern has a bounded length (found by a reverse DFA
//! over the carried bytes); for unbounded patterns (`*`, `+`, `{n,}`) the flow
//! is not retained and `start` is the window start, a lower bound — see
//! [`Searcher::exact_start`].
//!
//! # Example
//!
//! ```
//! use search::{Algorithm, Control, MatchMode, Pattern, SearchOptions, Searcher};
//!
//! let opts = SearchOptions { icase: true, mode: MatchMode::All, ..SearchOptions::default() };
//! let pats = [Pattern::literal("user "), Pattern::literal("pass ")];
//! let searcher = Searcher::new(Algorithm::Auto, &pats, opts).unwrap();
//!
//! // Two packets of one flow; "PASS " straddles the packet boundary and the
//! // first packet is itself a chain of two buffers.
//! let mut state = searcher.new_state();
//! let mut found = Vec::new();
//! for chunk in [&b"USER bob\r\nPA"[..], b"", b"SS secret"] {
//!     searcher.feed(&mut state, chunk, |m| {
//!         found.push((m.pattern, m.start, m.end));
//!         Control::Continue
//!     });
//! }
//! assert_eq!(found, vec![(0, 0, 5), (1, 10, 15)]);
//!
//! // Whole-packet convenience: the earliest match in a chain of buffers.
//! let m = searcher.find_in_chunks([&b"xxpa"[..], b"ss "]).unwrap();
//! assert_eq!((m.pattern, m.start, m.end), (1, 2, 7));
//! ```
//!
//! # Adding an algorithm
//!
//! 1. Write a module in `src/algo/` with a type implementing the crate-private
//!    `algo::Engine` trait: `scan` receives one chunk (already clipped to the
//!    window), its absolute offset, the per-flow `EngineState` (a `u32`
//!    state number, a `u64` engine word and the carry buffer) and a sink to
//!    call per match; `carry_capacity` says how many bytes the state must be
//!    able to hold (at most longest pattern − 1); `scan_chain` (a whole
//!    chain in one call) defaults to `scan` per chunk.
//! 2. Add a variant to [`Algorithm`], its row in `algo::ALGORITHMS` (name,
//!    description, capabilities) and a branch in `algo::build`.
//! 3. The shared corpus (`tests/data/*.toml`) and the differential property
//!    test pick it up from [`algorithms`]; add it to the benchmark matrix.
// Unsafe only in the SSE2 loop of `algo::fdr_x86` and the Vectorscan binding.
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub(crate) mod algo;
mod carry;
mod error;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "vectorscan")]
pub mod vectorscan;

use core::fmt;
use core::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

pub use algo::{algorithms, AlgorithmInfo, CarryBytes};
pub use error::BuildError;

use algo::{Engine, EngineState};

/// How the bytes of a [`Pattern`] are interpreted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PatternKind {
    /// The bytes themselves.
    Literal,
    /// A regular expression (regex-automata syntax, bytes mode: `.` matches
    /// any byte but `\n` unless `(?s)`, `\xNN` is a byte). Must be UTF-8 text.
    Regex,
    /// A shell-style wildcard: `?` is any one byte, `*` any run of bytes;
    /// `\` makes the next byte literal.
    Wildcard,
}

/// One pattern of a set; its index in the set is the [`Match::pattern`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pattern {
    /// The pattern text.
    pub bytes: Vec<u8>,
    /// How to read it.
    pub kind: PatternKind,
}

impl Pattern {
    /// A literal byte string.
    pub fn literal(bytes: impl AsRef<[u8]>) -> Pattern {
        Pattern {
            bytes: bytes.as_ref().to_vec(),
            kind: PatternKind::Literal,
        }
    }

    /// A regular expression.
    pub fn regex(re: &str) -> Pattern {
        Pattern {
            bytes: re.as_bytes().to_vec(),
            kind: PatternKind::Regex,
        }
    }

    /// A shell-style wildcard.
    pub fn wildcard(bytes: impl AsRef<[u8]>) -> Pattern {
        Pattern {
            bytes: bytes.as_ref().to_vec(),
            kind: PatternKind::Wildcard,
        }
    }
}

/// Whether to stop at the first match or report them all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MatchMode {
    /// Report the match with the smallest end offset (smallest pattern index
    /// on a tie), then stop: what a firewall match needs.
    #[default]
    Earliest,
    /// Report every match, overlapping ones included, by increasing end.
    All,
}

/// Options fixed when a [`Searcher`] is built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SearchOptions {
    /// ASCII case-insensitive matching.
    pub icase: bool,
    /// First stream offset the search looks at (iptables `--from`).
    pub from: u64,
    /// Stream offset where the search stops looking: every matched byte lies
    /// in `[from, to)`. iptables `--to N` lets a match *start* at `N`; pass
    /// `N + longest pattern length` to reproduce it.
    pub to: Option<u64>,
    /// Earliest match or all matches.
    pub mode: MatchMode,
    /// A match must start exactly at `from`.
    pub anchored: bool,
}

/// The algorithm behind a [`Searcher`]; names are those of
/// `iptables -m string --algo` plus ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// Pick the best algorithm for the pattern set.
    Auto,
    /// Knuth-Morris-Pratt, one literal (`kmp`).
    Kmp,
    /// Boyer-Moore-Horspool, one literal (`bm`).
    BoyerMoore,
    /// memchr's two-way memmem with SIMD prefilter, one literal.
    Memmem,
    /// Aho-Corasick over a literal set (`ac`).
    AhoCorasick,
    /// Regular expressions as a DFA (`regex`).
    Regex,
    /// Shell-style wildcards compiled to the regex DFA (`wildcard`).
    Wildcard,
}

impl Algorithm {
    /// The short name (`auto`, `kmp`, `bm`, `memmem`, `ac`, `regex`, `wildcard`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Auto => "auto",
            Algorithm::Kmp => "kmp",
            Algorithm::BoyerMoore => "bm",
            Algorithm::Memmem => "memmem",
            Algorithm::AhoCorasick => "ac",
            Algorithm::Regex => "regex",
            Algorithm::Wildcard => "wildcard",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown algorithm name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownAlgorithm(pub String);

impl fmt::Display for UnknownAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown search algorithm {:?}", self.0)
    }
}

impl std::error::Error for UnknownAlgorithm {}

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Algorithm, UnknownAlgorithm> {
        algorithms()
            .iter()
            .find(|info| info.name == s)
            .map(|info| info.algorithm)
            .ok_or_else(|| UnknownAlgorithm(s.to_owned()))
    }
}

/// A match: pattern index and absolute stream offsets `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Match {
    /// Index of the pattern in the list given to [`Searcher::new`].
    pub pattern: usize,
    /// Offset of the first matched byte (see [`Searcher::exact_start`]).
    pub start: u64,
    /// Offset just past the last matched byte.
    pub end: u64,
}

/// What the match callback wants next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Control {
    /// Keep searching.
    Continue,
    /// Stop: the state is finished until [`Searcher::reset`].
    Stop,
}

/// Per-flow search state: small, fixed size, reusable.
///
/// It belongs to the [`Searcher`] that created it; handed to another
/// searcher it is silently reset rather than misread.
#[derive(Clone, Debug)]
pub struct StreamState {
    /// Absolute offset of the next byte to be fed.
    offset: u64,
    /// Identity of the owning searcher.
    owner: u32,
    /// No further match can be reported (window passed, stopped, dead).
    done: bool,
    engine: EngineState,
}

impl StreamState {
    /// Offset of the next byte (total bytes fed since creation or reset).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// True once no further match can be reported: the callback stopped,
    /// the earliest match was found, the window ended or an anchored search
    /// failed.
    pub fn is_finished(&self) -> bool {
        self.done
    }

    /// Bytes of flow data this state holds (never more than longest
    /// pattern − 1).
    pub fn carried_bytes(&self) -> usize {
        self.engine.carry.len()
    }
}

/// A compiled pattern set: immutable and shareable between threads.
#[derive(Debug)]
pub struct Searcher {
    algorithm: Algorithm,
    opts: SearchOptions,
    engine: Box<dyn Engine>,
    id: u32,
    patterns: usize,
    /// The engine's `initial_sid`, kept here so a rewind makes no dynamic
    /// call (it is per packet for a caller searching packets one by one).
    initial_sid: u32,
}

/// Source of searcher identities, so a state fed to the wrong searcher is
/// detected instead of indexing a foreign automaton.
static NEXT_ID: AtomicU32 = AtomicU32::new(1);

impl Searcher {
    /// Compile `patterns` with `algo` and `opts`.
    pub fn new(
        algo: Algorithm,
        patterns: &[Pattern],
        opts: SearchOptions,
    ) -> Result<Searcher, BuildError> {
        if let Some(to) = opts.to {
            if to < opts.from {
                return Err(BuildError::InvalidWindow {
                    from: opts.from,
                    to,
                });
            }
        }
        let (algorithm, engine) = algo::build(algo, patterns, &opts)?;
        Ok(Searcher {
            algorithm,
            opts,
            initial_sid: engine.initial_sid(),
            engine,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            patterns: patterns.len(),
        })
    }

    /// The algorithm actually used (never [`Algorithm::Auto`]).
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The options given at build time.
    pub fn options(&self) -> &SearchOptions {
        &self.opts
    }

    /// Number of patterns in the set.
    pub fn pattern_count(&self) -> usize {
        self.patterns
    }

    /// Whether [`Match::start`] is exact. False only for regex/wildcard sets
    /// containing an unbounded pattern, where `start` is the window start.
    pub fn exact_start(&self) -> bool {
        self.engine.exact_start()
    }

    /// Most bytes a state of this searcher carries between chunks.
    pub fn carry_capacity(&self) -> usize {
        self.engine.carry_capacity()
    }

    /// A fresh state for one flow (allocates its carry buffer, if any, once).
    pub fn new_state(&self) -> StreamState {
        StreamState {
            offset: 0,
            owner: self.id,
            done: false,
            engine: EngineState {
                sid: self.initial_sid,
                mark: 0,
                carry: Vec::with_capacity(self.engine.carry_capacity()),
            },
        }
    }

    /// Rewind `state` to the start of a new flow, keeping its buffer.
    #[inline]
    pub fn reset(&self, state: &mut StreamState) {
        if state.owner != self.id {
            *state = self.new_state();
            return;
        }
        state.offset = 0;
        state.done = false;
        state.engine.sid = self.initial_sid;
        state.engine.mark = 0;
        state.engine.carry.clear();
    }

    /// Rewind `state` as [`Searcher::reset`] does, but continue counting at
    /// absolute `offset`: for a flow with a gap (a lost segment), where no
    /// match may span the hole but offsets must stay those of the stream.
    #[inline]
    pub fn reset_at(&self, state: &mut StreamState, offset: u64) {
        self.reset(state);
        state.offset = offset;
        // An anchored match must start at `from`: past it, none can follow.
        let anchor_lost = self.opts.anchored && offset > self.opts.from;
        if anchor_lost || self.opts.to.is_some_and(|to| offset >= to) {
            state.done = true;
        }
    }

    /// Search the next chunk of the flow, calling `on_match` for each match.
    pub fn feed(
        &self,
        state: &mut StreamState,
        chunk: &[u8],
        mut on_match: impl FnMut(Match) -> Control,
    ) {
        if state.owner != self.id {
            *state = self.new_state();
        }
        let base = state.offset;
        let len = chunk.len() as u64;
        let end = base.saturating_add(len);
        state.offset = end;
        if state.done {
            return;
        }
        let lo = base.max(self.opts.from);
        let hi = self.opts.to.map_or(end, |to| end.min(to));
        if lo < hi {
            // Both bounds lie within the chunk here, so the casts are exact.
            let window = &chunk[(lo - base) as usize..(hi - base) as usize];
            let earliest = self.opts.mode == MatchMode::Earliest;
            let mut sink = |m: Match| {
                if on_match(m) == Control::Stop || earliest {
                    Control::Stop
                } else {
                    Control::Continue
                }
            };
            if self.engine.scan(&mut state.engine, window, lo, &mut sink) == Control::Stop {
                state.done = true;
            }
        }
        if self.opts.to.is_some_and(|to| end >= to) {
            state.done = true;
        }
    }

    /// Search the next chunks of the flow, in order, calling `on_match` for
    /// each match: the same matches as one [`feed`] per chunk, leaving a
    /// state that continues the same way (same offset, carried bytes and
    /// automaton state), but in one call, so the per-chunk cost (call, window clip,
    /// state load and store) is paid once per chain. For the fragments of
    /// one packet, or a batch of a flow's packets held at once.
    ///
    /// [`feed`]: Searcher::feed
    pub fn feed_chain(
        &self,
        state: &mut StreamState,
        chain: &[&[u8]],
        mut on_match: impl FnMut(Match) -> Control,
    ) {
        if state.owner != self.id {
            *state = self.new_state();
        }
        let base = state.offset;
        let total = chain
            .iter()
            .try_fold(0u64, |n, c| n.checked_add(c.len() as u64));
        let end = total.and_then(|n| base.checked_add(n));
        // The chain path needs every byte inside the window; a chain that
        // crosses `from` or `to` (or a finished state, or an offset about to
        // overflow) takes the per-chunk path, which clips each chunk.
        let inside = end.filter(|&end| {
            !state.done && base >= self.opts.from && self.opts.to.is_none_or(|to| end <= to)
        });
        let Some(end) = inside else {
            for chunk in chain {
                self.feed(state, chunk, &mut on_match);
            }
            return;
        };
        state.offset = end;
        let earliest = self.opts.mode == MatchMode::Earliest;
        let mut sink = |m: Match| {
            if on_match(m) == Control::Stop || earliest {
                Control::Stop
            } else {
                Control::Continue
            }
        };
        if self
            .engine
            .scan_chain(&mut state.engine, chain, base, &mut sink)
            == Control::Stop
        {
            state.done = true;
        }
        if self.opts.to.is_some_and(|to| end >= to) {
            state.done = true;
        }
    }

    /// Search a whole chain of chunks from a fresh state; the first match
    /// reported (the earliest one in [`MatchMode::Earliest`]).
    pub fn find_in_chunks<'a>(&self, chunks: impl IntoIterator<Item = &'a [u8]>) -> Option<Match> {
        let mut found = None;
        self.feed_batches(chunks, |m| {
            found = Some(m);
            Control::Stop
        });
        found
    }

    /// Feed `chunks` from a fresh state through [`feed_chain`] in batches
    /// gathered on the stack (no allocation), until the state finishes.
    ///
    /// [`feed_chain`]: Searcher::feed_chain
    fn feed_batches<'a>(
        &self,
        chunks: impl IntoIterator<Item = &'a [u8]>,
        mut on_match: impl FnMut(Match) -> Control,
    ) {
        const BATCH: usize = 16;
        let mut state = self.new_state();
        let mut batch: [&[u8]; BATCH] = [&[]; BATCH];
        let mut chunks = chunks.into_iter();
        loop {
            let mut n = 0;
            for chunk in chunks.by_ref().take(BATCH) {
                batch[n] = chunk;
                n += 1;
            }
            if n == 0 {
                return;
            }
            self.feed_chain(&mut state, &batch[..n], &mut on_match);
            if state.done || n < BATCH {
                return;
            }
        }
    }

    /// Every match in a chain of chunks from a fresh state (all of them in
    /// [`MatchMode::All`], at most one in [`MatchMode::Earliest`]).
    pub fn find_all_in_chunks<'a>(&self, chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Match> {
        let mut found = Vec::new();
        self.feed_batches(chunks, |m| {
            found.push(m);
            Control::Continue
        });
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_shareable_and_small() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Searcher>();
        send_sync::<StreamState>();
        assert!(core::mem::size_of::<StreamState>() <= 64);
    }

    #[test]
    fn names_round_trip() {
        for info in algorithms() {
            assert_eq!(info.name.parse::<Algorithm>(), Ok(info.algorithm));
            assert_eq!(info.algorithm.name(), info.name);
        }
        assert!("nope".parse::<Algorithm>().is_err());
    }

    #[test]
    fn foreign_state_is_reset_not_misread() {
        let a = Searcher::new(
            Algorithm::AhoCorasick,
            &[Pattern::literal("abc"), Pattern::literal("x")],
            SearchOptions::default(),
        )
        .unwrap();
        let b = Searcher::new(
            Algorithm::Kmp,
            &[Pattern::literal("zz")],
            SearchOptions::default(),
        )
        .unwrap();
        let mut st = a.new_state();
        a.feed(&mut st, b"ab", |_| Control::Continue);
        let mut hits = 0;
        b.feed(&mut st, b"zz", |_| {
            hits += 1;
            Control::Continue
        });
        assert_eq!(hits, 1);
    }

    #[test]
    fn reset_at_keeps_stream_offsets_and_ends_anchored_searches() {
        let all = SearchOptions {
            mode: MatchMode::All,
            ..SearchOptions::default()
        };
        let s = Searcher::new(Algorithm::Auto, &[Pattern::literal("ab")], all).unwrap();
        let mut st = s.new_state();
        let mut got = Vec::new();
        s.feed(&mut st, b"xa", |_| Control::Continue);
        // A hole of 10 bytes: "a" + "b" must not join across it.
        s.reset_at(&mut st, 12);
        s.feed(&mut st, b"b ab", |m| {
            got.push((m.start, m.end));
            Control::Continue
        });
        assert_eq!(got, vec![(14, 16)]);
        let anchored = SearchOptions {
            anchored: true,
            ..all
        };
        let s = Searcher::new(Algorithm::Auto, &[Pattern::literal("ab")], anchored).unwrap();
        let mut st = s.new_state();
        s.reset_at(&mut st, 3);
        assert!(
            st.is_finished(),
            "an anchored match cannot start after a gap past `from`"
        );
    }
}
