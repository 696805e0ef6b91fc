//! The typed build error: every way a pattern set can be refused.

use core::fmt;

use crate::{Algorithm, PatternKind};

/// Why a [`Searcher`](crate::Searcher) could not be built.
///
/// Searching itself never fails; every problem is reported here, once, at
/// build time.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The pattern list was empty.
    NoPatterns,
    /// A pattern has no bytes; it would match everywhere.
    EmptyPattern {
        /// Index of the pattern in the input list.
        index: usize,
    },
    /// A regex or wildcard can match the empty string, which would report a
    /// match at every offset.
    MatchesEmpty {
        /// Index of the pattern in the input list.
        index: usize,
    },
    /// The algorithm handles a single pattern only.
    TooManyPatterns {
        /// The algorithm that refused.
        algorithm: Algorithm,
        /// Most patterns it accepts.
        max: usize,
        /// Patterns given.
        given: usize,
    },
    /// The algorithm cannot interpret this kind of pattern.
    UnsupportedKind {
        /// The algorithm that refused.
        algorithm: Algorithm,
        /// Index of the pattern in the input list.
        index: usize,
        /// Its kind.
        kind: PatternKind,
    },
    /// The algorithm does not implement an option (e.g. `icase` for memmem).
    UnsupportedOption {
        /// The algorithm that refused.
        algorithm: Algorithm,
        /// Name of the option.
        option: &'static str,
    },
    /// A regex pattern is not valid UTF-8 text (use `\xNN` escapes for bytes).
    InvalidUtf8 {
        /// Index of the pattern in the input list.
        index: usize,
    },
    /// A regex pattern did not parse.
    Syntax {
        /// Index of the pattern in the input list.
        index: usize,
        /// The parser's message.
        message: String,
    },
    /// A regex uses a feature a streaming DFA cannot honour (anchors and word
    /// boundaries have no meaning in the middle of a flow).
    UnsupportedRegex {
        /// Index of the pattern in the input list.
        index: usize,
        /// What is unsupported.
        reason: &'static str,
    },
    /// A pattern is longer than the algorithm's state can count.
    PatternTooLong {
        /// Index of the pattern in the input list.
        index: usize,
        /// Longest accepted length in bytes.
        max: usize,
    },
    /// The compiled automaton would exceed its size limit.
    TooLarge {
        /// The builder's message.
        message: String,
    },
    /// `to` is before `from`.
    InvalidWindow {
        /// Window start.
        from: u64,
        /// Window end.
        to: u64,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::NoPatterns => write!(f, "no patterns given"),
            BuildError::EmptyPattern { index } => write!(f, "pattern {index} is empty"),
            BuildError::MatchesEmpty { index } => {
                write!(f, "pattern {index} can match the empty string")
            }
            BuildError::TooManyPatterns {
                algorithm,
                max,
                given,
            } => write!(
                f,
                "algorithm {} accepts at most {max} pattern(s), {given} given",
                algorithm.name()
            ),
            BuildError::UnsupportedKind {
                algorithm,
                index,
                kind,
            } => write!(
                f,
                "algorithm {} cannot search pattern {index} of kind {kind:?}",
                algorithm.name()
            ),
            BuildError::UnsupportedOption { algorithm, option } => {
                write!(
                    f,
                    "algorithm {} does not support {option}",
                    algorithm.name()
                )
            }
            BuildError::InvalidUtf8 { index } => write!(f, "regex {index} is not valid UTF-8"),
            BuildError::Syntax { index, message } => write!(f, "regex {index}: {message}"),
            BuildError::UnsupportedRegex { index, reason } => {
                write!(f, "regex {index}: unsupported: {reason}")
            }
            BuildError::PatternTooLong { index, max } => {
                write!(f, "pattern {index} is longer than {max} bytes")
            }
            BuildError::TooLarge { message } => write!(f, "automaton too large: {message}"),
            BuildError::InvalidWindow { from, to } => {
                write!(f, "window end {to} is before its start {from}")
            }
        }
    }
}

impl std::error::Error for BuildError {}
