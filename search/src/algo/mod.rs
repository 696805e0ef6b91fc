//! The algorithm plugins, their registry and the `auto` choice.

use core::fmt;

use crate::{Algorithm, BuildError, Control, Match, Pattern, PatternKind, SearchOptions};

mod ac;
pub(crate) mod dfa;
mod fdr;
#[cfg(target_arch = "x86_64")]
mod fdr_x86;
mod kmp;
mod literal;

/// The per-flow part of a [`StreamState`](crate::StreamState) an engine may
/// use. Fixed size; `carry` never holds more than the engine's
/// `carry_capacity`.
#[derive(Clone, Debug)]
pub(crate) struct EngineState {
    /// Automaton state id, or matched prefix length.
    pub(crate) sid: u32,
    /// Engine-specific word: for the regex DFA the end of the last match
    /// it reported at a chunk end (so the delayed re-report is dropped),
    /// for bm and memmem the set of partial matches at the boundary.
    pub(crate) mark: u64,
    /// Last bytes of the flow, for algorithms that look back.
    pub(crate) carry: Vec<u8>,
}

/// One algorithm, compiled for one pattern set.
pub(crate) trait Engine: Send + Sync + fmt::Debug {
    /// State number of a fresh flow.
    fn initial_sid(&self) -> u32 {
        0
    }

    /// Bytes the carry buffer must hold (longest pattern − 1 at most).
    fn carry_capacity(&self) -> usize {
        0
    }

    /// Whether reported start offsets are exact.
    fn exact_start(&self) -> bool {
        true
    }

    /// Scan `hay`, whose first byte is at absolute offset `base`, reporting
    /// matches in increasing end order. Returns `Stop` when the sink asked to
    /// stop or no further match is possible.
    fn scan(
        &self,
        st: &mut EngineState,
        hay: &[u8],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control;

    /// Scan the contiguous chunks of `chain` (the first at `base`), as
    /// `scan` on each in turn would, inside one call: one dynamic dispatch
    /// per chain, and engines that override it keep their state in
    /// registers across chunk boundaries. Chunks may be empty.
    fn scan_chain(
        &self,
        st: &mut EngineState,
        chain: &[&[u8]],
        mut base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        for hay in chain {
            if self.scan(st, hay, base, sink) == Control::Stop {
                return Control::Stop;
            }
            base += hay.len() as u64;
        }
        Control::Continue
    }
}

/// Bytes of flow data an algorithm keeps between chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CarryBytes {
    /// None: the whole state is an automaton state number.
    None,
    /// Longest pattern − 1.
    LongestMinusOne,
    /// None for a literal of up to 64 bytes (a set of partial matches is
    /// kept instead), longest pattern − 1 past that.
    NoneUpTo64,
    /// Longest match − 1 when every pattern has a bounded length (to report
    /// exact start offsets), none otherwise.
    BoundedMatchMinusOne,
}

impl fmt::Display for CarryBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CarryBytes::None => "0",
            CarryBytes::LongestMinusOne => "longest-1",
            CarryBytes::NoneUpTo64 => "0 up to 64 B, else longest-1",
            CarryBytes::BoundedMatchMinusOne => "maxlen-1 if bounded",
        })
    }
}

/// Name, description and capabilities of one algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AlgorithmInfo {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Name used by `--algo`.
    pub name: &'static str,
    /// One line for `tunfilter search algorithms`.
    pub description: &'static str,
    /// ASCII case-insensitive matching.
    pub icase: bool,
    /// Regular expressions.
    pub regex: bool,
    /// Shell-style wildcards.
    pub wildcard: bool,
    /// More than one pattern per searcher.
    pub multi_pattern: bool,
    /// Flow bytes carried between chunks.
    pub carry: CarryBytes,
}

static ALGORITHMS: [AlgorithmInfo; 7] = [
    AlgorithmInfo {
        algorithm: Algorithm::Auto,
        name: "auto",
        description: "best for the set: memmem/bm for one literal, ac for literal sets, else regex",
        icase: true,
        regex: true,
        wildcard: true,
        multi_pattern: true,
        carry: CarryBytes::BoundedMatchMinusOne,
    },
    AlgorithmInfo {
        algorithm: Algorithm::Kmp,
        name: "kmp",
        description: "Knuth-Morris-Pratt, one literal, memchr skip to the first byte",
        icase: true,
        regex: false,
        wildcard: false,
        multi_pattern: false,
        carry: CarryBytes::None,
    },
    AlgorithmInfo {
        algorithm: Algorithm::BoyerMoore,
        name: "bm",
        description: "Boyer-Moore-Horspool, one literal, boundary-safe",
        icase: true,
        regex: false,
        wildcard: false,
        multi_pattern: false,
        carry: CarryBytes::NoneUpTo64,
    },
    AlgorithmInfo {
        algorithm: Algorithm::Memmem,
        name: "memmem",
        description: "memchr two-way memmem with SIMD prefilter, one literal",
        icase: false,
        regex: false,
        wildcard: false,
        multi_pattern: false,
        carry: CarryBytes::NoneUpTo64,
    },
    AlgorithmInfo {
        algorithm: Algorithm::AhoCorasick,
        name: "ac",
        description: "literal sets: bucketed shift-or (FDR-like) for 2+ unanchored literals, \
                      memmem for one, else Aho-Corasick automaton",
        icase: true,
        regex: false,
        wildcard: false,
        multi_pattern: true,
        // The shift-or path confirms matches that began in earlier chunks
        // against the carried bytes; the automaton and one-literal paths
        // carry none.
        carry: CarryBytes::LongestMinusOne,
    },
    AlgorithmInfo {
        algorithm: Algorithm::Regex,
        name: "regex",
        description: "regular expressions (and literals) as a dense DFA",
        icase: true,
        regex: true,
        wildcard: true,
        multi_pattern: true,
        carry: CarryBytes::BoundedMatchMinusOne,
    },
    AlgorithmInfo {
        algorithm: Algorithm::Wildcard,
        name: "wildcard",
        description: "shell wildcards (? and *) and literals compiled to the regex DFA",
        icase: true,
        regex: false,
        wildcard: true,
        multi_pattern: true,
        carry: CarryBytes::BoundedMatchMinusOne,
    },
];

/// Every algorithm with its capabilities, `auto` first.
pub fn algorithms() -> &'static [AlgorithmInfo] {
    &ALGORITHMS
}

/// Check the set against what `algo` accepts.
fn check(
    algo: Algorithm,
    patterns: &[Pattern],
    max_patterns: usize,
    kinds: &[PatternKind],
) -> Result<(), BuildError> {
    if patterns.len() > max_patterns {
        return Err(BuildError::TooManyPatterns {
            algorithm: algo,
            max: max_patterns,
            given: patterns.len(),
        });
    }
    for (index, p) in patterns.iter().enumerate() {
        if !kinds.contains(&p.kind) {
            return Err(BuildError::UnsupportedKind {
                algorithm: algo,
                index,
                kind: p.kind,
            });
        }
    }
    Ok(())
}

/// Unanchored literal sets from this size on use the bucketed shift-or
/// (`fdr`). It was 4, for the automaton's prefilter; measured on the
/// matrix payload, 2 and 3 literals ran 3.5 and 0.9 GB/s flat and 0.9 and
/// 0.6 GB/s in 64 B chunks on the automaton, against 4.9 flat and 2.7 in
/// 64 B chunks on the shift-or with 4. One literal takes memmem.
const FDR_MIN_PATTERNS: usize = 2;

/// `auto`: the fastest algorithm able to take the set.
fn choose(patterns: &[Pattern], opts: &SearchOptions) -> Algorithm {
    let all_literal = patterns.iter().all(|p| p.kind == PatternKind::Literal);
    match (all_literal, patterns.len()) {
        (true, 1) if opts.icase => Algorithm::BoyerMoore,
        (true, 1) => Algorithm::Memmem,
        (true, _) => Algorithm::AhoCorasick,
        (false, _) => Algorithm::Regex,
    }
}

/// Compile `patterns` for `algo`; returns the algorithm actually used.
pub(crate) fn build(
    algo: Algorithm,
    patterns: &[Pattern],
    opts: &SearchOptions,
) -> Result<(Algorithm, Box<dyn Engine>), BuildError> {
    use PatternKind::{Literal, Regex, Wildcard};

    if patterns.is_empty() {
        return Err(BuildError::NoPatterns);
    }
    if let Some(index) = patterns.iter().position(|p| p.bytes.is_empty()) {
        return Err(BuildError::EmptyPattern { index });
    }
    let algo = match algo {
        Algorithm::Auto => choose(patterns, opts),
        other => other,
    };
    let earliest = opts.mode == crate::MatchMode::Earliest;
    let engine: Box<dyn Engine> = match algo {
        Algorithm::Kmp | Algorithm::BoyerMoore | Algorithm::Memmem => {
            check(algo, patterns, 1, &[Literal])?;
            let pat = &patterns[0].bytes;
            if algo == Algorithm::Memmem && opts.icase {
                return Err(BuildError::UnsupportedOption {
                    algorithm: algo,
                    option: "icase",
                });
            }
            if pat.len() > u32::MAX as usize - 1 {
                return Err(BuildError::PatternTooLong {
                    index: 0,
                    max: u32::MAX as usize - 1,
                });
            }
            if opts.anchored {
                // Only one position can match: a prefix compare beats any
                // search algorithm, whichever was asked for.
                Box::new(literal::Anchored::new(pat, opts.icase))
            } else {
                match algo {
                    Algorithm::Kmp => Box::new(kmp::Kmp::new(pat, opts.icase)),
                    Algorithm::BoyerMoore => Box::new(literal::Horspool::new(pat, opts.icase)),
                    _ => Box::new(literal::Memmem::new(pat)),
                }
            }
        }
        Algorithm::AhoCorasick => {
            check(algo, patterns, usize::MAX, &[Literal])?;
            if !opts.anchored && patterns.len() >= FDR_MIN_PATTERNS {
                Box::new(fdr::Fdr::new(patterns, opts.icase, earliest))
            } else if patterns.len() == 1
                && !opts.anchored
                && !opts.icase
                && patterns[0].bytes.len() <= literal::PARTIAL_MAX
            {
                // One literal: memmem finds the same matches, and like the
                // automaton it carries no flow bytes (a partial-match set),
                // but it does not restart a prefilter at every chunk.
                Box::new(literal::Memmem::new(&patterns[0].bytes))
            } else {
                Box::new(ac::Ac::new(
                    patterns,
                    opts.icase,
                    opts.anchored,
                    earliest,
                    opts.from,
                )?)
            }
        }
        Algorithm::Regex => {
            check(algo, patterns, usize::MAX, &[Literal, Regex, Wildcard])?;
            Box::new(dfa::Dfa::new(patterns, opts, earliest)?)
        }
        Algorithm::Wildcard => {
            check(algo, patterns, usize::MAX, &[Literal, Wildcard])?;
            Box::new(dfa::Dfa::new(patterns, opts, earliest)?)
        }
        Algorithm::Auto => {
            // `choose` never returns Auto; refuse rather than recurse.
            return Err(BuildError::UnsupportedKind {
                algorithm: Algorithm::Auto,
                index: 0,
                kind: patterns[0].kind,
            });
        }
    };
    Ok((algo, engine))
}
