//! The benchmark workload, shared by the criterion bench and the matrix
//! harness: a deterministic payload of mixed text and binary with pattern
//! occurrences planted at a known density, and the pattern sets.
#![allow(dead_code)]

use search::{Control, Pattern, Searcher};

/// One planted occurrence per this many payload bytes.
pub const PLANT_EVERY: usize = 4096;

/// Deterministic xorshift64* generator: identical workloads on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const WORDS: &[&str] = &[
    "the",
    "GET",
    "HTTP/1.1",
    "Host:",
    "example",
    "content-type",
    "text/html",
    "accept",
    "gzip",
    "user",
    "agent",
    "Mozilla/5.0",
    "connection",
    "keep-alive",
    "cookie",
    "session",
    "id",
    "and",
    "of",
    "to",
    "in",
    "is",
    "200",
    "OK",
    "server",
    "nginx",
    "date",
    "cache",
    "control",
    "no-store",
];

/// `len` bytes alternating between text segments (HTTP-like words, 70%) and
/// binary segments (random bytes, 30%).
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        let seg = 64 + rng.below(1024);
        if rng.below(10) < 7 {
            let stop = out.len() + seg;
            while out.len() < stop {
                out.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
                out.push(if rng.below(8) == 0 { b'\n' } else { b' ' });
            }
        } else {
            out.extend((0..seg).map(|_| rng.next() as u8));
        }
    }
    out.truncate(len);
    out
}

/// `n` distinct random lower-case words of 8 to 16 bytes.
pub fn literals(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    let mut seen = std::collections::HashSet::new();
    while seen.len() < n {
        let len = 8 + rng.below(9);
        let w: Vec<u8> = (0..len).map(|_| b'a' + rng.below(26) as u8).collect();
        seen.insert(w);
    }
    let mut v: Vec<_> = seen.into_iter().collect();
    v.sort();
    v
}

/// A few protocol-ish regexes, all of bounded length, and for each a string
/// it matches (what gets planted).
pub const REGEXES: &[(&str, &str)] = &[
    (r"PORT [0-9]{1,3},[0-9]{1,3},[0-9]{1,3}", "PORT 10,0,7"),
    (r"USER [a-z]{3,12}\r\n", "USER alice\r\n"),
    (
        r"[A-Z][a-z]{2,8}-Token: [0-9a-f]{8}",
        "Auth-Token: 0badc0de",
    ),
    (r"\x7fELF[\x01\x02]", "\x7fELF\x02"),
];

/// Plant occurrences from `needles` into `data`, one per `PLANT_EVERY` bytes.
pub fn plant(data: &mut [u8], needles: &[Vec<u8>], seed: u64) {
    let mut rng = Rng::new(seed);
    let mut at = 0;
    while at + PLANT_EVERY <= data.len() {
        let n = &needles[rng.below(needles.len())];
        let pos = at + rng.below(PLANT_EVERY - n.len());
        data[pos..pos + n.len()].copy_from_slice(n);
        at += PLANT_EVERY;
    }
}

/// A named workload: patterns and the payload with their occurrences.
pub struct Workload {
    pub name: String,
    pub patterns: Vec<Pattern>,
    pub data: Vec<u8>,
}

pub fn literal_workload(n: usize, size: usize) -> Workload {
    let lits = literals(n, 0x5eed + n as u64);
    let mut data = payload(size, 42);
    plant(&mut data, &lits, 7);
    Workload {
        name: format!("{n} lit"),
        patterns: lits.iter().map(Pattern::literal).collect(),
        data,
    }
}

pub fn regex_workload(size: usize) -> Workload {
    let mut data = payload(size, 42);
    let needles: Vec<Vec<u8>> = REGEXES.iter().map(|(_, s)| s.as_bytes().to_vec()).collect();
    plant(&mut data, &needles, 7);
    Workload {
        name: format!("{} regex", REGEXES.len()),
        patterns: REGEXES.iter().map(|(r, _)| Pattern::regex(r)).collect(),
        data,
    }
}

/// Chunk sizes: small packets, typical MTU fragments, 1500, jumbo.
pub const CHUNK_SIZES: &[usize] = &[64, 512, 1500, 9000];

/// One `feed` call per chunk: what a caller handing packets one at a time
/// pays.
pub fn feed_each(s: &Searcher, chunks: &[&[u8]]) -> usize {
    let mut st = s.new_state();
    let mut n = 0;
    for c in chunks {
        s.feed(&mut st, c, |_| {
            n += 1;
            Control::Continue
        });
    }
    n
}

/// Each chunk searched on its own, as a flat buffer of that size (the state
/// rewound with `reset_at` before every chunk, so nothing is carried and no
/// match may straddle): the per-call cost a search over packets of this
/// size pays without streaming. Streaming ÷ this is what streaming itself
/// costs.
pub fn feed_alone(s: &Searcher, chunks: &[&[u8]]) -> usize {
    let mut st = s.new_state();
    let mut n = 0;
    let mut off = 0;
    for c in chunks {
        s.reset_at(&mut st, off);
        s.feed(&mut st, c, |_| {
            n += 1;
            Control::Continue
        });
        off += c.len() as u64;
    }
    n
}

/// The whole chain in one `feed_chain` call.
pub fn feed_chain(s: &Searcher, chunks: &[&[u8]]) -> usize {
    let mut st = s.new_state();
    let mut n = 0;
    s.feed_chain(&mut st, chunks, |_| {
        n += 1;
        Control::Continue
    });
    n
}
