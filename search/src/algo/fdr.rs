//! Bucketed shift-or over hashed byte pairs, for unanchored sets of many
//! literals (the FDR idea of Hyperscan, implemented from its description).
//!
//! # Filter
//!
//! Literals are split into 8 buckets by length; bucket `b` looks at the last
//! `m_b = min(8, shortest literal of b)` bytes of its literals, its
//! *window*. A 64-bit word holds 8 lanes of 8 bucket bits; lane `j` stands
//! for window byte `j` (windows are right-aligned: lane 7 is the last byte).
//! The table maps the *gram* at a text position — the byte itself and a few
//! low bits of the byte before it — to a word whose bit `(j, b)` is 0 when
//! some literal of bucket `b` has that gram at window byte `j` (and for the
//! lanes below `8 − m_b`, which bucket `b` does not use). Sets of 2,048
//! literals or more hash three-byte grams (the byte two before xor-ed into
//! the index) into a 2^12–2^14 table: with over 250 literals per bucket,
//! nearly every pair of letters occurs at every window byte and the buckets
//! would pass most text.
//!
//! Shift-or: `state = state << 8 | table[gram]` per position; lane 7 then
//! has a zero bit for bucket `b` exactly when every byte of the last `m_b`
//! matches *some* literal of `b` at its place: a candidate end. Eight
//! positions are combined at once in a 128-bit word, so the loop-carried
//! dependency is one shift per 8 bytes instead of per byte.
//!
//! # Confirm
//!
//! A candidate (end, bucket) hashes the last `min(m_b, 8)` bytes into the
//! bucket's table of literal lists, and each listed literal is compared in
//! full. Every literal sits in one bucket and one slot, so a match is
//! reported once.
//!
//! # Streaming
//!
//! The flow keeps the shift-or word (in `mark`, xor-ed with the fresh value
//! so that a reset state reads as fresh) and the last `longest − 1` bytes
//! (in `carry`): a window or literal that began in an earlier chunk is seen
//! by the shift-or word and confirmed against the carried bytes, without
//! copying the chunk.
//!
//! Chunk boundaries cost blocks, not scalar steps: a chunk's first block
//! gets the two bytes before it (all its grams need) from the carry or the
//! previous chunk, joined with its first 8 bytes in registers; given a
//! chain (`scan_chain`), the last < 8 positions of a chunk and the first
//! of the next form one more block, and the carry is only appended when
//! a confirmation or a short chunk reads it, else once per chain.

use super::{Engine, EngineState};
use crate::carry;
use crate::{Control, Match, Pattern};

const BUCKETS: usize = 8;
/// Lanes of the shift-or word: the longest window.
const LANES: usize = 8;
/// Low bits of a byte whose eight bits are all set (SWAR helpers).
const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HI: u64 = 0x8080_8080_8080_8080;
/// Sets from this size on use three-byte grams. Below it two-byte grams
/// do not saturate on the bench payload and save the extra index work
/// (1,000 literals: 11 % fewer cycles; 2,048–5,000: 5 %); from about 7,000
/// literals two-byte grams pass most text (10,000: 1.6× the cycles).
const TRI_MIN_PATTERNS: usize = 2048;
/// log2 of the smallest table with three-byte grams: 32 KiB, inside the
/// L1 of common cores. 10,000 literals leave about one false candidate
/// per real match in it (2^13: none; 2^11: 48 per match, a collapse);
/// larger sets grow it up to 2^14.
const TRI_TABLE_BITS: u32 = 12;

/// The sink asked to stop.
struct Stopped;

/// The carried bytes before the chunk being scanned, brought up to date
/// only when read: within a chain, the earlier chunks still to append
/// wait in `pending`, so the common chunk (no candidate near its start)
/// pays no copy.
struct Behind<'a, 'c> {
    carry: &'a mut Vec<u8>,
    pending: &'c [&'c [u8]],
    keep: usize,
}

impl Behind<'_, '_> {
    #[inline]
    fn get(&mut self) -> &[u8] {
        if !self.pending.is_empty() {
            carry::push_chain(self.carry, self.pending, self.keep);
            self.pending = &[];
        }
        self.carry
    }
}

/// One literal of the set.
#[derive(Debug, Clone, Copy)]
struct Lit {
    /// Its last `key_len` bytes (folded), the bucket key: compared first,
    /// it rejects most slot neighbours without touching the bytes.
    key: u64,
    /// Offset of its bytes in `Fdr::bytes` (folded when icase).
    at: u32,
    len: u32,
    pattern: u32,
}

/// Confirmation table of one bucket: literal lists keyed by a hash of the
/// last `key_len` bytes.
#[derive(Debug, Clone, Default)]
struct Bucket {
    key_len: u32,
    /// `64 − log2(slots)`.
    shift: u32,
    /// Start of this bucket's slots in `Fdr::slots`.
    first_slot: u32,
}

#[derive(Debug)]
pub(crate) struct Fdr {
    /// Shift-or table, indexed by `gram_index`.
    table: Vec<u64>,
    /// log2 of the table size.
    table_bits: u32,
    /// Three-byte grams (large sets), else two-byte.
    tri: bool,
    /// The word of a fresh flow: ones on the lanes each bucket uses, so no
    /// window reaches before the first byte.
    fresh: u64,
    buckets: [Bucket; BUCKETS],
    /// Slot `s` lists `ids[slots[s]..slots[s + 1]]`.
    slots: Vec<u32>,
    ids: Vec<u32>,
    lits: Vec<Lit>,
    bytes: Vec<u8>,
    max_len: usize,
    icase: bool,
    earliest: bool,
    /// Use the SSE2 block loop (always on x86-64 outside tests, which also
    /// run the portable one).
    simd: bool,
}

/// Where the byte two before the current one enters a three-byte gram's
/// index: bits 5..13, inside one 16-bit field of the SWAR index words.
pub(super) const SHIFT2: u32 = 5;

/// Table index of the gram ending at `cur`: the two last bytes as one
/// little-endian `u16` (one load), with three-byte grams (`TRI`) the byte
/// before them xor-ed in at bit `SHIFT2`, masked to the table size. Linear
/// over xor in each byte, which the table build relies on.
#[inline(always)]
fn gram_index<const N: usize, const TRI: bool>(prev2: u8, prev: u8, cur: u8) -> usize {
    let i = usize::from(u16::from_le_bytes([prev, cur]));
    let i = if TRI {
        i ^ usize::from(prev2) << SHIFT2
    } else {
        i
    };
    i & (N - 1)
}

/// The portable block loop; same contract as `fdr_x86::blocks`: run
/// 8-position blocks from `p` (≥ 1, ≥ 2 with `TRI`) from word `s`, stop at
/// the first block with a candidate and return `(its start, word after it,
/// hits)`, or `(next position, word, 0)` when fewer than 8 bytes remain.
#[inline(always)]
fn blocks<const N: usize, const TRI: bool>(
    table: &[u64; N],
    hay: &[u8],
    mut p: usize,
    mut s: u64,
) -> (usize, u64, u64) {
    let back = 1 + usize::from(TRI);
    while p + 8 <= hay.len() {
        // `blk[back + k]` is the byte at p + k.
        let blk = &hay[p - back..p + 8];
        let gram = |k: usize| {
            let prev2 = if TRI { blk[k] } else { 0 };
            table[gram_index::<N, TRI>(prev2, blk[back + k - 1], blk[back + k])]
        };
        // Position p + k adds its word shifted up 7 − k lanes: `lo` gets
        // lanes 0..8, `hi` what crosses into lanes 8..16.
        let mut lo = gram(7);
        let mut hi = s;
        for k in 0..7 {
            let g = gram(k);
            lo |= g << (8 * (7 - k));
            hi |= g >> (8 * (k + 1));
        }
        s = lo;
        // Lanes 7..=14 hold the windows ending at p..p+8 (lane 14 − t for
        // the one ending at p + t), here as bytes 7 − t.
        let hits = !(hi << 8 | lo >> 56);
        if hits != 0 {
            return (p, s, hits);
        }
        p += 8;
    }
    (p, s, 0)
}

/// The portable `fdr_x86::block_words`: one block from the words of the
/// bytes at p − 1 (`even`), p (`odd`) and p − 2 (`pre`, with `TRI`).
#[inline(always)]
fn block_words<const N: usize, const TRI: bool>(
    table: &[u64; N],
    even: u64,
    odd: u64,
    pre: u64,
    s: u64,
) -> (u64, u64) {
    let gram = |k: usize| {
        let byte = |w: u64| (w >> (8 * k)) as u8;
        table[gram_index::<N, TRI>(byte(pre), byte(even), byte(odd))]
    };
    let mut lo = gram(7);
    let mut hi = s;
    for k in 0..7 {
        let g = gram(k);
        lo |= g << (8 * (7 - k));
        hi |= g >> (8 * (k + 1));
    }
    (lo, !(hi << 8 | lo >> 56))
}

#[cfg(target_arch = "x86_64")]
use super::fdr_x86::{block_words as block_words_simd, blocks as blocks_simd};
#[cfg(not(target_arch = "x86_64"))]
use {block_words as block_words_simd, blocks as blocks_simd};

/// ASCII lower-case of eight bytes at once.
#[inline(always)]
fn fold8(x: u64) -> u64 {
    let a = x & LO7;
    let ge_upper_a = a.wrapping_add(0x3f3f_3f3f_3f3f_3f3f); // ≥ 'A'
    let gt_upper_z = a.wrapping_add(0x2525_2525_2525_2525); // > 'Z'
    let upper = ge_upper_a & !gt_upper_z & !x & HI;
    x | (upper >> 2)
}

/// All bytes equal to `b` under the search's case rule.
fn variants(b: u8, icase: bool) -> impl Iterator<Item = u8> {
    let other = if icase && b.is_ascii_alphabetic() {
        Some(b ^ 0x20)
    } else {
        None
    };
    core::iter::once(b).chain(other)
}

impl Fdr {
    /// Usable for unanchored literal sets (no empty pattern).
    pub(crate) fn new(patterns: &[Pattern], icase: bool, earliest: bool) -> Fdr {
        let n = patterns.len();
        // Domain: 8 bits of the previous byte plus `cur_bits` of the byte;
        // more literals need more bits before the table saturates, but the
        // table must stay in L1/L2 (2^14 × 8 B = 128 KiB at most). Large
        // sets also hash in the byte before (three-byte grams): on text, a
        // bucket of a thousand literals has nearly every letter pair at
        // every window byte, but few of the letter triples.
        let log2n = usize::BITS - n.max(1).leading_zeros();
        let tri = n >= TRI_MIN_PATTERNS;
        let table_bits = if tri {
            (log2n - 2).clamp(TRI_TABLE_BITS, 14)
        } else {
            8 + (log2n as i32 - 5).clamp(1, 6) as u32
        };
        Self::build(patterns, icase, earliest, table_bits, tri)
    }

    /// [`new`](Self::new) with the table shape chosen by the caller (tests
    /// run both gram kinds on small sets).
    fn build(patterns: &[Pattern], icase: bool, earliest: bool, table_bits: u32, tri: bool) -> Fdr {
        let n = patterns.len();
        let mask = (1usize << table_bits) - 1;
        // The index is linear over xor in each byte: h(a, b, c) =
        // h(a, 0, 0) ^ h(0, b, 0) ^ h(0, 0, c).
        let h = |prev2: u8, prev: u8, cur: u8| {
            let i = usize::from(u16::from_le_bytes([prev, cur]));
            let i = if tri {
                i ^ usize::from(prev2) << SHIFT2
            } else {
                i
            };
            i & mask
        };
        // Index parts of "any previous byte" (a literal starts at this
        // byte) and "any byte two before" (it starts at the previous one).
        let distinct = |f: &dyn Fn(u8) -> usize| {
            let mut seen = vec![false; mask + 1];
            let mut out = Vec::new();
            for x in 0..=u8::MAX {
                let i = f(x);
                if !seen[i] {
                    seen[i] = true;
                    out.push(i);
                }
            }
            out
        };
        let any_prev2 = distinct(&|x| h(x, 0, 0));
        let any_prev = distinct(&|x| h(0, x, 0));
        let mut any_both = Vec::new();
        {
            let mut seen = vec![false; mask + 1];
            for &a in &any_prev2 {
                for &b in &any_prev {
                    if !seen[a ^ b] {
                        seen[a ^ b] = true;
                        any_both.push(a ^ b);
                    }
                }
            }
        }

        // Buckets: literals sorted by length, cut into 8 runs, so that short
        // (frequently hit) literals do not shorten the windows of long ones.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (patterns[i].bytes.len(), i));
        let per = n.div_ceil(BUCKETS).max(1);
        let mut members: [Vec<usize>; BUCKETS] = Default::default();
        for (rank, &i) in order.iter().enumerate() {
            members[(rank / per).min(BUCKETS - 1)].push(i);
        }

        let mut bytes = Vec::new();
        let mut lits = Vec::with_capacity(n);
        for p in patterns {
            let at = bytes.len() as u32;
            bytes.extend(p.bytes.iter().map(|&b| carry::fold(b, icase)));
            lits.push(Lit {
                key: 0,
                at,
                len: p.bytes.len() as u32,
                pattern: lits.len() as u32,
            });
        }

        let mut fresh = 0u64;
        let mut window = [LANES; BUCKETS];
        for (b, m) in members.iter().enumerate() {
            let w = m
                .iter()
                .map(|&i| patterns[i].bytes.len())
                .min()
                .unwrap_or(LANES)
                .min(LANES);
            window[b] = w;
            for lane in LANES - w..LANES {
                fresh |= 1 << (lane * 8 + b);
            }
        }

        let mut table = vec![fresh; mask + 1];
        // (bit, masked current byte) pairs already cleared for a literal
        // starting at that byte: the same 2^8–2^13 entries each time.
        let mut started = std::collections::HashSet::new();
        for (b, m) in members.iter().enumerate() {
            let w = window[b];
            for &i in m {
                let lit = &patterns[i].bytes;
                let first = lit.len() - w;
                for j in 0..w {
                    let lane = LANES - w + j;
                    let bit = !(1u64 << (lane * 8 + b));
                    let at = first + j;
                    for cur in variants(lit[at], icase) {
                        let hc = h(0, 0, cur);
                        if at == 0 {
                            // The literal starts here: any bytes may precede.
                            if started.insert((lane * 8 + b, hc)) {
                                for &v in &any_both {
                                    table[v ^ hc] &= bit;
                                }
                            }
                            continue;
                        }
                        for prev in variants(lit[at - 1], icase) {
                            let hp = h(0, prev, 0) ^ hc;
                            if !tri {
                                table[hp] &= bit;
                            } else if at == 1 {
                                // It starts at the previous byte.
                                for &v in &any_prev2 {
                                    table[v ^ hp] &= bit;
                                }
                            } else {
                                for prev2 in variants(lit[at - 2], icase) {
                                    table[h(prev2, 0, 0) ^ hp] &= bit;
                                }
                            }
                        }
                    }
                }
            }
        }

        // Confirmation tables: about two slots per literal.
        let mut buckets: [Bucket; BUCKETS] = Default::default();
        let mut slots = vec![0u32];
        let mut ids = Vec::with_capacity(n);
        for (b, m) in members.iter().enumerate() {
            let log2 = (m.len() * 2).next_power_of_two().trailing_zeros().max(1);
            let bucket = Bucket {
                key_len: window[b] as u32,
                shift: 64 - log2,
                first_slot: (slots.len() - 1) as u32,
            };
            let mut lists: Vec<Vec<u32>> = vec![Vec::new(); 1 << log2];
            for &i in m {
                let lit = &lits[i];
                let tail = &bytes[(lit.at + lit.len) as usize - window[b]..][..window[b]];
                let mut key = [0u8; 8];
                key[..tail.len()].copy_from_slice(tail);
                let key = u64::from_le_bytes(key);
                lits[i].key = key;
                lists[Self::slot(&bucket, key)].push(i as u32);
            }
            for list in lists {
                ids.extend(list);
                slots.push(ids.len() as u32);
            }
            buckets[b] = bucket;
        }

        Fdr {
            table,
            table_bits,
            tri,
            fresh,
            buckets,
            slots,
            ids,
            lits,
            bytes,
            max_len: patterns.iter().map(|p| p.bytes.len()).max().unwrap_or(1),
            icase,
            earliest,
            simd: cfg!(target_arch = "x86_64"),
        }
    }

    /// Slot of a key (the last `key_len` bytes, little-endian, high bytes
    /// zero) within its bucket.
    #[inline(always)]
    fn slot(b: &Bucket, key: u64) -> usize {
        (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> b.shift) as usize
    }

    /// Confirm the candidates of `buckets` (a bit per bucket) whose window
    /// ends just before `hay[end]`; `carry` holds the bytes before `hay`.
    /// True when the sink asked to stop.
    #[inline(never)]
    fn confirm(
        &self,
        carry: &[u8],
        hay: &[u8],
        end: usize,
        mut buckets: u8,
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> bool {
        // Eight bytes ending at `end`, taking the carry when short.
        let last8 = if end >= 8 {
            u64::from_le_bytes(hay[end - 8..end].try_into().expect("8 bytes"))
        } else {
            let mut k = [0u8; 8];
            let from_hay = &hay[..end];
            k[8 - end..].copy_from_slice(from_hay);
            let need = 8 - end;
            let c = need.min(carry.len());
            k[8 - end - c..8 - end].copy_from_slice(&carry[carry.len() - c..]);
            u64::from_le_bytes(k)
        };
        let last8 = if self.icase { fold8(last8) } else { last8 };
        let avail = carry.len() + end;
        let mut best: Option<Match> = None;
        while buckets != 0 {
            let b = &self.buckets[buckets.trailing_zeros() as usize];
            buckets &= buckets - 1;
            let key = last8 >> (8 * (8 - b.key_len));
            let s = b.first_slot as usize + Self::slot(b, key);
            for &id in &self.ids[self.slots[s] as usize..self.slots[s + 1] as usize] {
                let lit = self.lits[id as usize];
                let len = lit.len as usize;
                if lit.key != key || len > avail {
                    continue;
                }
                let pat = &self.bytes[lit.at as usize..][..len];
                // The part before `hay` comes from the carry.
                let before = len.saturating_sub(end);
                let (pc, ph) = pat.split_at(before);
                let hit = self.eq(ph, &hay[end - ph.len()..end])
                    && self.eq(pc, &carry[carry.len() - before..]);
                if !hit {
                    continue;
                }
                let m = Match {
                    pattern: lit.pattern as usize,
                    start: base + end as u64 - len as u64,
                    end: base + end as u64,
                };
                if self.earliest {
                    // Ties at the earliest end go to the lowest index.
                    if best.is_none_or(|b| m.pattern < b.pattern) {
                        best = Some(m);
                    }
                } else if sink(m) == Control::Stop {
                    return true;
                }
            }
        }
        match best {
            Some(m) => sink(m) == Control::Stop,
            None => false,
        }
    }

    /// The scan, for a table of `N` entries and grams of three (`TRI`) or
    /// two bytes.
    #[inline(always)]
    fn run<const N: usize, const TRI: bool>(
        &self,
        st: &mut EngineState,
        hay: &[u8],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        let table: &[u64; N] = self.table[..].try_into().expect("table of N entries");
        let mut s = st.mark ^ self.fresh;
        let mut behind = Behind {
            carry: &mut st.carry,
            pending: &[],
            keep: self.max_len - 1,
        };
        if self
            .run_chunk::<N, TRI>(table, &mut s, &mut behind, hay, base, 0, None, true, sink)
            .is_err()
        {
            return Control::Stop;
        }
        st.mark = s ^ self.fresh;
        carry::push(&mut st.carry, hay, self.max_len - 1);
        Control::Continue
    }

    /// [`run`](Self::run) over each chunk of a chain, the shift-or word
    /// kept in a register and the table shape dispatched once. The last
    /// (< 8) positions of a chunk and the first of the next one go
    /// through one block over a small stitched buffer instead of the
    /// scalar steps; only when that block has a candidate are they redone
    /// one by one, where `confirm` sees the chunks and the carry.
    #[inline(always)]
    fn run_chain<const N: usize, const TRI: bool>(
        &self,
        st: &mut EngineState,
        chain: &[&[u8]],
        mut base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        let table: &[u64; N] = self.table[..].try_into().expect("table of N entries");
        let back = 1 + usize::from(TRI);
        let mut s = st.mark ^ self.fresh;
        // Positions of the current chunk already covered by a stitch.
        let mut start = 0;
        // Chunks before the current one not yet appended to the carry.
        let mut unpushed = 0;
        for (k, &hay) in chain.iter().enumerate() {
            let n = hay.len();
            let next = chain.get(k + 1).copied().unwrap_or(&[]);
            let mut behind = Behind {
                carry: &mut st.carry,
                pending: &chain[unpushed..k],
                keep: self.max_len - 1,
            };
            // The previous chunk's last two bytes, when it has them, as
            // the top bytes of a word.
            let before8 = match k.checked_sub(1).map(|j| chain[j]) {
                Some(&[.., b2, b1]) => Some(u64::from(b1) << 56 | u64::from(b2) << 48),
                _ => None,
            };
            let mut p = match self.run_chunk::<N, TRI>(
                table,
                &mut s,
                &mut behind,
                hay,
                base,
                start,
                before8,
                false,
                sink,
            ) {
                Ok(p) => p,
                Err(Stopped) => return Control::Stop,
            };
            start = 0;
            let r = n - p;
            // The stitch: the last 8 bytes of this chunk and the first 8 of
            // the next, joined in registers (a buffer in memory, written
            // in pieces and read as words, stalls store forwarding: 35 %
            // more cycles at 64 B). The block needs the `back` bytes
            // before position p among them.
            if r > 0 && r + back <= LANES && n >= LANES && next.len() >= LANES {
                let tail = u64::from_le_bytes(hay[n - LANES..].try_into().expect("8 bytes"));
                let head = u64::from_le_bytes(next[..LANES].try_into().expect("8 bytes"));
                // Bytes n − 8 .. n + 8 of the stream; p is byte 8 − r.
                let joined = u128::from(head) << 64 | u128::from(tail);
                let at = |k: usize| (joined >> (8 * (LANES - r - k))) as u64;
                let (even, odd, pre) = (at(1), at(0), if TRI { at(2) } else { 0 });
                let (word, hits) = if self.simd {
                    block_words_simd::<N, TRI>(table, even, odd, pre, s)
                } else {
                    block_words::<N, TRI>(table, even, odd, pre, s)
                };
                if hits == 0 {
                    s = word;
                    start = LANES - r;
                    p = n;
                }
            }
            if p < n {
                // Candidates near the boundary, or no stitch: the scalar
                // steps, with their confirmations.
                let r = self.run_chunk::<N, TRI>(
                    table,
                    &mut s,
                    &mut behind,
                    hay,
                    base,
                    p,
                    None,
                    true,
                    sink,
                );
                if r.is_err() {
                    return Control::Stop;
                }
            }
            if behind.pending.is_empty() {
                unpushed = k;
            }
            base += n as u64;
        }
        carry::push_chain(&mut st.carry, &chain[unpushed..], self.max_len - 1);
        st.mark = s ^ self.fresh;
        Control::Continue
    }

    /// Confirm the candidates `hits` of the block starting at `hay[at]`
    /// (as the block loops return them); true when the sink stopped.
    #[inline]
    fn confirm_hits(
        &self,
        behind: &mut Behind,
        hay: &[u8],
        at: usize,
        mut hits: u64,
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> bool {
        // Only the non-zero bytes, in increasing end order (byte 7 − t is
        // the window ending at at + t).
        while hits != 0 {
            let t = (hits.leading_zeros() / 8) as usize;
            let lane = (hits >> (8 * (7 - t))) as u8;
            hits &= !(0xff << (8 * (7 - t)));
            if self.confirm(behind.get(), hay, at + t + 1, lane, base, sink) {
                return true;
            }
        }
        false
    }

    /// One chunk from position `start` (those before were covered by a
    /// stitch) and shift-or word `*s_io`, `behind` giving the bytes before
    /// it and `before8` (if known) the two just before, in its top bytes.
    /// With `tail` the last < 8 positions are stepped one by one, else
    /// left for a stitch: returns the first position not scanned and
    /// leaves the word in `*s_io`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn run_chunk<const N: usize, const TRI: bool>(
        &self,
        table: &[u64; N],
        s_io: &mut u64,
        behind: &mut Behind,
        hay: &[u8],
        base: u64,
        start: usize,
        before8: Option<u64>,
        tail: bool,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Result<usize, Stopped> {
        let gram = |prev2: u8, prev: u8, cur: u8| table[gram_index::<N, TRI>(prev2, prev, cur)];
        let n = hay.len();
        let mut s = *s_io;
        // The first block: its grams reach back into the two bytes before
        // the chunk (the top bytes of `before8`, from the previous chunk
        // of a chain, else from the carry), joined in registers as in
        // `run_chain`'s stitch. A missing byte (flow start, or a carry
        // shorter than 2) reads as 0, as in the scalar steps below.
        // Chunks of a multiple of 8 bytes then need no scalar step.
        let first = if start == 0 && n >= LANES {
            Some(before8.unwrap_or_else(|| {
                let c = behind.get();
                let byte = |k: usize| c.len().checked_sub(k).map_or(0, |i| c[i]);
                u64::from(byte(1)) << 56 | u64::from(byte(2)) << 48
            }))
        } else {
            None
        };
        if let Some(b8) = first {
            let h8 = u64::from_le_bytes(hay[..LANES].try_into().expect("8 bytes"));
            let joined = u128::from(h8) << 64 | u128::from(b8);
            let at = |k: usize| (joined >> (8 * (LANES - k))) as u64;
            let (even, odd, pre) = (at(1), at(0), if TRI { at(2) } else { 0 });
            let (word, hits) = if self.simd {
                block_words_simd::<N, TRI>(table, even, odd, pre, s)
            } else {
                block_words::<N, TRI>(table, even, odd, pre, s)
            };
            s = word;
            if hits != 0 && self.confirm_hits(behind, hay, 0, hits, base, sink) {
                return Err(Stopped);
            }
        }
        // Else (short chunk, or resuming after a stitch) the first
        // positions step one by one, their grams reaching into the carry:
        // a missing byte reads as 0, where only windows of literals
        // starting at or after the flow start may end, and their grams
        // accept any byte before the literal.
        let (from, head) = if first.is_some() {
            (LANES, LANES)
        } else {
            (start, (1 + usize::from(TRI)).min(n).max(start))
        };
        for p in from..head {
            let carry = behind.get();
            let before = |k: usize| -> u8 {
                if p >= k {
                    hay[p - k]
                } else {
                    let back = k - p;
                    carry.len().checked_sub(back).map_or(0, |i| carry[i])
                }
            };
            s = s << 8 | gram(before(2), before(1), hay[p]);
            if s >> 56 != 0xff && self.confirm(carry, hay, p + 1, !(s >> 56) as u8, base, sink) {
                return Err(Stopped);
            }
        }
        let mut p = head;
        loop {
            let (at, word, hits) = if self.simd {
                blocks_simd::<N, TRI>(table, hay, p, s)
            } else {
                blocks::<N, TRI>(table, hay, p, s)
            };
            s = word;
            if hits == 0 {
                p = at;
                break;
            }
            if self.confirm_hits(behind, hay, at, hits, base, sink) {
                return Err(Stopped);
            }
            p = at + 8;
        }
        while tail && p < n {
            let prev2 = if TRI { hay[p - 2] } else { 0 };
            s = s << 8 | gram(prev2, hay[p - 1], hay[p]);
            if s >> 56 != 0xff
                && self.confirm(behind.get(), hay, p + 1, !(s >> 56) as u8, base, sink)
            {
                return Err(Stopped);
            }
            p += 1;
        }
        *s_io = s;
        Ok(p)
    }

    #[inline(always)]
    fn eq(&self, pat: &[u8], hay: &[u8]) -> bool {
        if self.icase {
            pat.eq_ignore_ascii_case(hay)
        } else {
            pat == hay
        }
    }
}

impl Engine for Fdr {
    fn carry_capacity(&self) -> usize {
        self.max_len - 1
    }

    fn scan(
        &self,
        st: &mut EngineState,
        hay: &[u8],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        // One copy of the loop per table size, so that the masked index
        // needs no bounds check.
        match (self.tri, self.table_bits) {
            (false, 9) => self.run::<{ 1 << 9 }, false>(st, hay, base, sink),
            (false, 10) => self.run::<{ 1 << 10 }, false>(st, hay, base, sink),
            (false, 11) => self.run::<{ 1 << 11 }, false>(st, hay, base, sink),
            (false, 12) => self.run::<{ 1 << 12 }, false>(st, hay, base, sink),
            (false, 13) => self.run::<{ 1 << 13 }, false>(st, hay, base, sink),
            (false, _) => self.run::<{ 1 << 14 }, false>(st, hay, base, sink),
            (true, 12) => self.run::<{ 1 << 12 }, true>(st, hay, base, sink),
            (true, 13) => self.run::<{ 1 << 13 }, true>(st, hay, base, sink),
            (true, _) => self.run::<{ 1 << 14 }, true>(st, hay, base, sink),
        }
    }

    fn scan_chain(
        &self,
        st: &mut EngineState,
        chain: &[&[u8]],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        match (self.tri, self.table_bits) {
            (false, 9) => self.run_chain::<{ 1 << 9 }, false>(st, chain, base, sink),
            (false, 10) => self.run_chain::<{ 1 << 10 }, false>(st, chain, base, sink),
            (false, 11) => self.run_chain::<{ 1 << 11 }, false>(st, chain, base, sink),
            (false, 12) => self.run_chain::<{ 1 << 12 }, false>(st, chain, base, sink),
            (false, 13) => self.run_chain::<{ 1 << 13 }, false>(st, chain, base, sink),
            (false, _) => self.run_chain::<{ 1 << 14 }, false>(st, chain, base, sink),
            (true, 12) => self.run_chain::<{ 1 << 12 }, true>(st, chain, base, sink),
            (true, 13) => self.run_chain::<{ 1 << 13 }, true>(st, chain, base, sink),
            (true, _) => self.run_chain::<{ 1 << 14 }, true>(st, chain, base, sink),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every (pattern, start, end) by brute force, sorted by (end, pattern).
    fn naive(pats: &[Vec<u8>], hay: &[u8], icase: bool) -> Vec<(usize, u64, u64)> {
        let mut out = Vec::new();
        for (i, p) in pats.iter().enumerate() {
            for s in 0..hay.len().saturating_sub(p.len() - 1) {
                let w = &hay[s..s + p.len()];
                if if icase {
                    w.eq_ignore_ascii_case(p)
                } else {
                    w == &p[..]
                } {
                    out.push((i, s as u64, (s + p.len()) as u64));
                }
            }
        }
        out.sort_by_key(|&(i, _, e)| (e, i));
        out
    }

    /// Feed `hay` cut at `cuts` through the engine alone, as `feed` would.
    fn run(f: &Fdr, hay: &[u8], cuts: &[usize]) -> Vec<(usize, u64, u64)> {
        let mut st = EngineState {
            sid: 0,
            mark: 0,
            carry: Vec::with_capacity(f.carry_capacity()),
        };
        let mut out = Vec::new();
        let mut at = 0;
        for &c in cuts.iter().chain([&usize::MAX]) {
            let end = at + c.min(hay.len() - at);
            f.scan(&mut st, &hay[at..end], at as u64, &mut |m| {
                out.push((m.pattern, m.start, m.end));
                Control::Continue
            });
            assert!(st.carry.len() <= f.carry_capacity());
            assert_eq!(st.carry.capacity(), f.carry_capacity(), "no growth");
            at = end;
        }
        assert!(out.windows(2).all(|w| w[0].2 <= w[1].2), "end order");
        out.sort_by_key(|&(i, _, e)| (e, i));
        out
    }

    /// [`run`] with the chunks of each packet given as one chain; a packet
    /// starts at every cut of length 0.
    fn run_chain(f: &Fdr, hay: &[u8], cuts: &[usize]) -> Vec<(usize, u64, u64)> {
        let mut st = EngineState {
            sid: 0,
            mark: 0,
            carry: Vec::with_capacity(f.carry_capacity()),
        };
        let mut chunks = Vec::new();
        let mut at = 0;
        for &c in cuts.iter().chain([&usize::MAX]) {
            let end = at + c.min(hay.len() - at);
            chunks.push(&hay[at..end]);
            at = end;
        }
        let mut out = Vec::new();
        let mut base = 0;
        for packet in chunks.split(|c| c.is_empty()) {
            f.scan_chain(&mut st, packet, base, &mut |m| {
                out.push((m.pattern, m.start, m.end));
                Control::Continue
            });
            assert!(st.carry.len() <= f.carry_capacity());
            assert_eq!(st.carry.capacity(), f.carry_capacity(), "no growth");
            base += packet.iter().map(|c| c.len() as u64).sum::<u64>();
        }
        assert!(out.windows(2).all(|w| w[0].2 <= w[1].2), "end order");
        out.sort_by_key(|&(i, _, e)| (e, i));
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// The portable and the SSE2 block loops, with two- and three-byte
        /// grams, against brute force: sets
        /// of short and long literals over a small alphabet (dense
        /// candidates), planted occurrences, random chunkings.
        #[test]
        fn both_loops_match_naive(
            pats in prop::collection::vec(prop::collection::vec(prop::sample::select(&b"abAB\x00\xff"[..]), 1..20), 4..40),
            noise in prop::collection::vec(prop::sample::select(&b"abAB\x00\xff-"[..]), 0..300),
            plants in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..8),
            cuts in prop::collection::vec(prop_oneof![Just(0usize), Just(1), 0usize..40], 0..30),
            icase in any::<bool>(),
            tri_bits in TRI_TABLE_BITS..=14,
        ) {
            let mut hay = noise;
            for (which, at) in plants {
                let p = &pats[which.index(pats.len())];
                let at = at.index(hay.len() + 1);
                hay.splice(at..at, p.iter().copied());
            }
            let patterns: Vec<Pattern> = pats.iter().map(Pattern::literal).collect();
            let want = naive(&pats, &hay, icase);
            let two = Fdr::new(&patterns, icase, false);
            prop_assert!(!two.tri);
            let three = Fdr::build(&patterns, icase, false, tri_bits, true);
            for mut f in [two, three] {
                for simd in [false, true] {
                    f.simd = simd && cfg!(target_arch = "x86_64");
                    prop_assert_eq!(&run(&f, &hay, &cuts), &want, "simd {} tri {}", simd, f.tri);
                    prop_assert_eq!(&run_chain(&f, &hay, &cuts), &want, "chains, simd {} tri {}", simd, f.tri);
                    prop_assert_eq!(&run(&f, &hay, &[]), &want, "flat, simd {} tri {}", simd, f.tri);
                }
            }
        }
    }

    #[test]
    fn fold8_lowers_only_ascii_upper() {
        let all: Vec<u8> = (0..=255).collect();
        for c in all.chunks(8) {
            let x = u64::from_le_bytes(c.try_into().unwrap());
            let want: Vec<u8> = c.iter().map(|b| b.to_ascii_lowercase()).collect();
            assert_eq!(fold8(x).to_le_bytes().to_vec(), want);
        }
    }
}
