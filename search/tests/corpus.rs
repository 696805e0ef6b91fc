//! The shared table-driven corpus (`tests/data/*.toml`), run against every
//! algorithm each case applies to and under several chunkings.

mod common;

use search::{
    algorithms, Algorithm, BuildError, Match, MatchMode, Pattern, PatternKind, SearchOptions,
    Searcher,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct File {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    #[serde(default)]
    patterns: Vec<String>,
    /// Patterns as hex, for bytes TOML strings cannot hold.
    #[serde(default)]
    patterns_hex: Vec<String>,
    #[serde(default = "literal")]
    kind: String,
    #[serde(default)]
    haystack: String,
    #[serde(default)]
    haystack_hex: Option<String>,
    #[serde(default)]
    icase: bool,
    #[serde(default)]
    from: u64,
    #[serde(default)]
    to: Option<u64>,
    #[serde(default = "all")]
    mode: String,
    #[serde(default)]
    anchored: bool,
    /// Algorithms that must accept the case; others may refuse it.
    #[serde(default)]
    algorithms: Vec<String>,
    #[serde(default)]
    expect: Vec<[u64; 3]>,
    /// Expected build error variant name, for every algorithm.
    #[serde(default)]
    error: Option<String>,
}

fn literal() -> String {
    "literal".into()
}
fn all() -> String {
    "all".into()
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A build error an algorithm may legitimately give for a case it was not
/// asked to handle.
fn not_applicable(e: &BuildError) -> bool {
    matches!(
        e,
        BuildError::UnsupportedKind { .. }
            | BuildError::TooManyPatterns { .. }
            | BuildError::UnsupportedOption { .. }
    )
}

/// Chunkings of `hay`: whole, bytes, bytes with empty chunks, halves at
/// every split point, and two "packets" at every split point.
fn chunkings(hay: &[u8]) -> Vec<Vec<Vec<&[u8]>>> {
    let mut out = vec![
        vec![vec![hay]],
        vec![hay.chunks(1).collect()],
        vec![hay
            .chunks(1)
            .flat_map(|c| [&b""[..], c])
            .chain([&b""[..]])
            .collect()],
        vec![hay.chunks(3).collect()],
    ];
    for k in 0..=hay.len() {
        out.push(vec![vec![&hay[..k], &hay[k..]]]);
        out.push(vec![vec![&hay[..k]], vec![&b""[..], &hay[k..]]]);
    }
    out
}

#[test]
fn corpus() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("tests/data")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut runs = 0;
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read corpus");
        let file: File = toml::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        for case in file.case {
            runs += run_case(&case);
        }
    }
    eprintln!("corpus: {runs} (case, algorithm) runs");
}

fn run_case(case: &Case) -> usize {
    let kind = match case.kind.as_str() {
        "literal" => PatternKind::Literal,
        "regex" => PatternKind::Regex,
        "wildcard" => PatternKind::Wildcard,
        other => panic!("{}: bad kind {other}", case.name),
    };
    let patterns: Vec<Pattern> = case
        .patterns
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .chain(case.patterns_hex.iter().map(|h| unhex(h)))
        .map(|bytes| Pattern { bytes, kind })
        .collect();
    let hay = match &case.haystack_hex {
        Some(h) => unhex(h),
        None => case.haystack.as_bytes().to_vec(),
    };
    let opts = SearchOptions {
        icase: case.icase,
        from: case.from,
        to: case.to,
        mode: if case.mode == "earliest" {
            MatchMode::Earliest
        } else {
            MatchMode::All
        },
        anchored: case.anchored,
    };
    for name in &case.algorithms {
        name.parse::<Algorithm>()
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    }
    let mut runs = 0;
    for info in algorithms() {
        let required = case.algorithms.iter().any(|n| n == info.name);
        let s = match Searcher::new(info.algorithm, &patterns, opts) {
            Ok(s) => s,
            Err(e) => {
                if let Some(want) = &case.error {
                    let got = format!("{e:?}");
                    if got.starts_with(want.as_str()) {
                        runs += 1;
                    } else {
                        assert!(
                            not_applicable(&e),
                            "{} [{}]: got {got}",
                            case.name,
                            info.name
                        );
                    }
                } else {
                    assert!(
                        !required && not_applicable(&e),
                        "{} [{}]: {e}",
                        case.name,
                        info.name
                    );
                }
                continue;
            }
        };
        assert!(
            case.error.is_none(),
            "{} [{}]: built but expected {:?}",
            case.name,
            info.name,
            case.error
        );
        let mut expect: Vec<Match> = case
            .expect
            .iter()
            .map(|&[p, s0, e]| Match {
                pattern: p as usize,
                start: if s.exact_start() { s0 } else { case.from },
                end: e,
            })
            .collect();
        expect.sort_by_key(|m| (m.end, m.pattern));
        let naive = common::naive(&patterns, &opts, &hay, s.exact_start());
        assert_eq!(
            naive, expect,
            "{}: corpus disagrees with the reference",
            case.name
        );
        for packets in chunkings(&hay) {
            let got = common::normalise(common::run_packets(&s, &packets));
            assert_eq!(
                got, expect,
                "{} [{}] chunks {packets:?}",
                case.name, info.name
            );
            let got = common::normalise(common::run_packets_chain(&s, &packets));
            assert_eq!(
                got, expect,
                "{} [{}] chains {packets:?}",
                case.name, info.name
            );
        }
        let chain: Vec<&[u8]> = hay.chunks(2).collect();
        let first = s.find_in_chunks(chain.iter().copied());
        if opts.mode == MatchMode::Earliest {
            assert_eq!(first, expect.first().copied(), "{}", case.name);
        } else {
            // Patterns ending at one offset come in any order.
            assert_eq!(
                first.map(|m| m.end),
                expect.first().map(|m| m.end),
                "{}",
                case.name
            );
        }
        runs += 1;
    }
    assert!(runs > 0, "{}: no algorithm ran the case", case.name);
    runs
}
