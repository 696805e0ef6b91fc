//! Criterion throughput benches: per pattern set, our best algorithm (and
//! Vectorscan with `--features vectorscan`) over the flat payload and over
//! chains of 64/512/1500/9000-byte chunks (one `feed` per chunk, one
//! `feed_chain` per chain, and each chunk searched alone). Short samples
//! keep the full run to a few minutes; `benches/matrix.rs` prints the
//! complete table.

mod common;

use std::time::Duration;

use common::{
    feed_alone, feed_chain, feed_each, literal_workload, regex_workload, Workload, CHUNK_SIZES,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use search::{Algorithm, MatchMode, SearchOptions, Searcher};

const SIZE: usize = 1 << 20;

fn group(c: &mut Criterion, w: &Workload, algos: &[Algorithm]) {
    let mut g = c.benchmark_group(w.name.replace(' ', "_"));
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .throughput(Throughput::Bytes(w.data.len() as u64));
    let opts = SearchOptions {
        mode: MatchMode::All,
        ..SearchOptions::default()
    };
    for &algo in algos {
        let s = Searcher::new(algo, &w.patterns, opts).expect("pattern set builds");
        g.bench_function(BenchmarkId::new(algo.name(), "flat"), |b| {
            b.iter(|| feed_each(&s, &[&w.data]))
        });
        for &size in CHUNK_SIZES {
            let chunks: Vec<&[u8]> = w.data.chunks(size).collect();
            g.bench_function(BenchmarkId::new(algo.name(), format!("chain{size}")), |b| {
                b.iter(|| feed_each(&s, &chunks))
            });
            g.bench_function(
                BenchmarkId::new(algo.name(), format!("feed_chain{size}")),
                |b| b.iter(|| feed_chain(&s, &chunks)),
            );
            g.bench_function(BenchmarkId::new(algo.name(), format!("alone{size}")), |b| {
                b.iter(|| feed_alone(&s, &chunks))
            });
        }
    }
    #[cfg(feature = "vectorscan")]
    {
        use search::vectorscan::Database;
        let mut block = Database::compile(&w.patterns, false, false).expect("hs block");
        let mut stream = Database::compile(&w.patterns, false, true).expect("hs stream");
        g.bench_function(BenchmarkId::new("vectorscan", "block"), |b| {
            b.iter(|| {
                let mut n = 0;
                block.scan_block(&w.data, |_, _| n += 1).expect("hs_scan");
                n
            })
        });
        for &size in CHUNK_SIZES {
            g.bench_function(
                BenchmarkId::new("vectorscan", format!("stream{size}")),
                |b| {
                    b.iter(|| {
                        let mut n = 0;
                        stream
                            .scan_stream(w.data.chunks(size), |_, _| n += 1)
                            .expect("hs_scan_stream");
                        n
                    })
                },
            );
        }
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    group(
        c,
        &literal_workload(1, SIZE),
        &[Algorithm::Memmem, Algorithm::BoyerMoore, Algorithm::Kmp],
    );
    for n in [10, 100, 1000, 10_000] {
        group(c, &literal_workload(n, SIZE), &[Algorithm::AhoCorasick]);
    }
    group(c, &regex_workload(SIZE), &[Algorithm::Regex]);
}

criterion_group!(search_benches, benches);
criterion_main!(search_benches);
