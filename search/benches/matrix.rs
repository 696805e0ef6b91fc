//! Throughput matrix: algorithm × pattern set × chunk size, flat buffer vs
//! chunk chain (one `feed` per chunk, and one `feed_chain` per chain) vs
//! each chunk searched alone, and (with `--features vectorscan`)
//! Vectorscan block mode (whole and per chunk) and stream mode on the same
//! sets and chunkings. Prints markdown tables.
//!
//! `cargo bench -p search --bench matrix [--features vectorscan]`
//! Environment: `SEARCH_BENCH_MB` (payload MiB, default 4),
//! `SEARCH_BENCH_SECS` (time per cell, default 0.3),
//! `SEARCH_BENCH_SETS` (comma-separated pattern counts and/or `regex`).

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{
    feed_alone, feed_chain, feed_each, literal_workload, regex_workload, Workload, CHUNK_SIZES,
};
use search::{Algorithm, MatchMode, SearchOptions, Searcher};

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Best time of repeated runs (the machine is shared; the minimum is the
/// least disturbed run) and the match count of the last one.
fn measure(budget: Duration, mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let mut count = f();
    let mut best = Duration::MAX;
    let start = Instant::now();
    let mut runs = 0;
    while runs < 3 || start.elapsed() < budget {
        let t = Instant::now();
        count = black_box(f());
        best = best.min(t.elapsed());
        runs += 1;
    }
    (best, count)
}

fn gbps(bytes: usize, t: Duration) -> f64 {
    bytes as f64 / t.as_secs_f64() / 1e9
}

struct Row {
    label: String,
    flat: f64,
    stream: Vec<f64>,
    /// The same chunks each searched alone (see `common::feed_alone`), when the
    /// row is a streaming one: printed as a second ratio.
    alone: Option<Vec<f64>>,
    matches: usize,
    /// Chain columns measured with one `feed_chain` call per chain (read
    /// by the Vectorscan ratio line only).
    #[cfg_attr(not(feature = "vectorscan"), allow(dead_code))]
    chain: bool,
}

fn print_table(w: &Workload, rows: &[Row], mib: f64) {
    println!(
        "\n### {} ({} MiB, {} planted matches/MiB)\n",
        w.name,
        mib,
        1024 * 1024 / common::PLANT_EVERY
    );
    print!("| algorithm | matches | flat GB/s |");
    for c in CHUNK_SIZES {
        print!(" chain {c} B GB/s (÷flat, ÷alone) |");
    }
    println!();
    print!("|---|---:|---:|");
    for _ in CHUNK_SIZES {
        print!("---:|");
    }
    println!();
    for r in rows {
        print!("| {} | {} | {:.2} |", r.label, r.matches, r.flat);
        for (i, s) in r.stream.iter().enumerate() {
            match &r.alone {
                Some(a) => print!(" {:.2} ({:.2}, {:.2}) |", s, s / r.flat, s / a[i]),
                None => print!(" {:.2} ({:.2}) |", s, s / r.flat),
            }
        }
        println!();
    }
}

fn main() {
    let mib = env_f64("SEARCH_BENCH_MB", 4.0);
    let budget = Duration::from_secs_f64(env_f64("SEARCH_BENCH_SECS", 0.3));
    let size = (mib * 1024.0 * 1024.0) as usize;
    let sets =
        std::env::var("SEARCH_BENCH_SETS").unwrap_or_else(|_| "1,10,100,1000,10000,regex".into());
    let opts = SearchOptions {
        mode: MatchMode::All,
        ..SearchOptions::default()
    };
    for set in sets.split(',') {
        let (w, algos): (Workload, &[Algorithm]) = match set.trim() {
            "regex" => (regex_workload(size), &[Algorithm::Regex]),
            "1" => (
                literal_workload(1, size),
                &[
                    Algorithm::Kmp,
                    Algorithm::BoyerMoore,
                    Algorithm::Memmem,
                    Algorithm::AhoCorasick,
                    Algorithm::Regex,
                ],
            ),
            n => match n.parse() {
                Ok(n) => (
                    literal_workload(n, size),
                    &[Algorithm::AhoCorasick, Algorithm::Regex],
                ),
                Err(_) => {
                    eprintln!("skipping unknown set {n:?}");
                    continue;
                }
            },
        };
        let mut rows = Vec::new();
        for &algo in algos {
            let t = Instant::now();
            let s = match Searcher::new(algo, &w.patterns, opts) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{} {}: {e}", w.name, algo.name());
                    continue;
                }
            };
            eprintln!("{} {}: built in {:.2?}", w.name, algo.name(), t.elapsed());
            let (tf, matches) = measure(budget, || feed_each(&s, &[&w.data]));
            let mut stream = Vec::new();
            let mut chained = Vec::new();
            let mut alone = Vec::new();
            let mut alone_matches = 0;
            for &c in CHUNK_SIZES {
                let chunks: Vec<&[u8]> = w.data.chunks(c).collect();
                let (ta, na) = measure(budget, || feed_alone(&s, &chunks));
                alone.push(gbps(w.data.len(), ta));
                alone_matches = na;
                let (tc, n) = measure(budget, || feed_each(&s, &chunks));
                let (tv, nv) = measure(budget, || feed_chain(&s, &chunks));
                assert_eq!(
                    (n, nv),
                    (matches, matches),
                    "{} {} chunk {c}: streaming differs",
                    w.name,
                    algo.name()
                );
                stream.push(gbps(w.data.len(), tc));
                chained.push(gbps(w.data.len(), tv));
            }
            rows.push(Row {
                label: format!("{} each chunk alone", algo.name()),
                flat: gbps(w.data.len(), tf),
                stream: alone.clone(),
                alone: None,
                // Misses the straddling matches (count of the 9000 B run).
                matches: alone_matches,
                chain: false,
            });
            rows.push(Row {
                label: algo.name().to_string(),
                flat: gbps(w.data.len(), tf),
                stream,
                alone: Some(alone.clone()),
                matches,
                chain: false,
            });
            rows.push(Row {
                label: format!("{} feed_chain", algo.name()),
                flat: gbps(w.data.len(), tf),
                stream: chained,
                alone: Some(alone),
                matches,
                chain: true,
            });
        }
        #[cfg(feature = "vectorscan")]
        vectorscan_rows(&w, budget, &mut rows);
        print_table(&w, &rows, mib);
    }
}

/// Vectorscan block mode (flat column) and stream mode (chain columns), then
/// the ratio of our best streaming row to Vectorscan streaming.
#[cfg(feature = "vectorscan")]
fn vectorscan_rows(w: &Workload, budget: Duration, rows: &mut Vec<Row>) {
    use search::vectorscan::Database;

    let t = Instant::now();
    let (mut block, mut stream) = match (
        Database::compile(&w.patterns, false, false),
        Database::compile(&w.patterns, false, true),
    ) {
        (Ok(b), Ok(s)) => (b, s),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{}: vectorscan compile failed: {e}", w.name);
            return;
        }
    };
    eprintln!("{} vectorscan: compiled in {:.2?}", w.name, t.elapsed());
    let (tf, matches) = measure(budget, || {
        let mut n = 0;
        block.scan_block(&w.data, |_, _| n += 1).expect("hs_scan");
        n
    });
    let mut cells = Vec::new();
    let mut alone = Vec::new();
    let mut alone_matches = 0;
    for &c in CHUNK_SIZES {
        // Block mode on each chunk alone: Vectorscan's own per-call floor.
        let (ta, na) = measure(budget, || {
            let mut n = 0;
            for chunk in w.data.chunks(c) {
                block.scan_block(chunk, |_, _| n += 1).expect("hs_scan");
            }
            n
        });
        alone.push(gbps(w.data.len(), ta));
        alone_matches = na;
        let (tc, _) = measure(budget, || {
            let mut n = 0;
            stream
                .scan_stream(w.data.chunks(c), |_, _| n += 1)
                .expect("hs_scan_stream");
            n
        });
        cells.push(gbps(w.data.len(), tc));
    }
    // Our best row per column, with one `feed` per chunk (as Vectorscan's
    // one `hs_scan_stream` per chunk) and with `feed_chain`.
    let best = |chain: bool| -> Vec<f64> {
        (0..CHUNK_SIZES.len())
            .map(|i| {
                rows.iter()
                    .filter(|r| r.chain == chain && r.alone.is_some())
                    .map(|r| r.stream[i])
                    .fold(0.0, f64::max)
            })
            .collect()
    };
    let (best_call, best_chain) = (best(false), best(true));
    let best_flat = rows.iter().map(|r| r.flat).fold(0.0, f64::max);
    rows.push(Row {
        label: "vectorscan block, each chunk alone".into(),
        flat: gbps(w.data.len(), tf),
        stream: alone.clone(),
        alone: None,
        matches: alone_matches,
        chain: false,
    });
    rows.push(Row {
        label: "vectorscan (block / stream)".into(),
        flat: gbps(w.data.len(), tf),
        stream: cells.clone(),
        alone: Some(alone),
        matches,
        chain: false,
    });
    // Ratio row: our best over Vectorscan, flat vs block and chain vs stream;
    // printed through the same table, so "(÷flat)" there is meaningless.
    let vs_flat = gbps(w.data.len(), tf);
    let ratios = |best: &[f64]| {
        CHUNK_SIZES
            .iter()
            .zip(best.iter().zip(&cells))
            .map(|(c, (o, v))| format!("{c} B: {:.2}", o / v))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "\n{}: ours÷vectorscan — flat÷block {:.2}; chain÷stream, feed per chunk {}; \
         feed_chain {}",
        w.name,
        best_flat / vs_flat,
        ratios(&best_call),
        ratios(&best_chain)
    );
}
