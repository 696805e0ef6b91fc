//! The hot loop of [`fdr`](super::fdr) with SSE2 128-bit shifts.
//!
//! The scalar loop spends four integer operations per position to place a
//! table word at its lane of a 128-bit sum (two shifts, two ors); SSE2 does
//! it with one byte shift and one or on the vector unit, leaving the integer
//! unit the index arithmetic. SSE2 is part of every x86-64 CPU, so there is
//! no detection; the unsafety is only that Rust requires an `unsafe` call to
//! enter a `#[target_feature]` function.
//!
//! This is the only module of the crate (besides the Vectorscan binding)
//! allowed `unsafe`; it contains no raw pointer: table and input are read
//! through checked (or provably in-bounds) slice indexing.
#![allow(unsafe_code)]

use super::fdr::SHIFT2;
use core::arch::x86_64::{
    __m128i, _mm_cvtsi128_si64, _mm_cvtsi64_si128, _mm_or_si128, _mm_slli_si128, _mm_srli_si128,
};

/// Run 8-position blocks from `p` (≥ 1, ≥ 2 with three-byte grams `TRI`)
/// while `p + 8 ≤ hay.len()`, starting from shift-or word `s`. Returns at
/// the first block with a candidate: `(block start, word after it, hits)`
/// with `hits` as in the scalar loop (byte `7 − t` = buckets of the window
/// ending at `start + t`); or, when the blocks run out, `(next position,
/// word, 0)`.
#[inline]
pub(super) fn blocks<const N: usize, const TRI: bool>(
    table: &[u64; N],
    hay: &[u8],
    p: usize,
    s: u64,
) -> (usize, u64, u64) {
    // SAFETY: SSE2 is a baseline feature of x86_64, always present.
    unsafe { blocks_sse2::<N, TRI>(table, hay, p, s) }
}

/// The low byte of each 16-bit field.
const LOW_BYTES: u64 = 0x00ff_00ff_00ff_00ff;

/// The table mask repeated in the four 16-bit fields of a word.
const fn lanes<const N: usize>() -> u64 {
    (N as u64 - 1) * 0x0001_0001_0001_0001
}

/// One 8-position block: the positions p..p+8, with `w[back + k]` the byte
/// at `p + k` (`back` = 2 with `TRI`, else 1) and `sv` the word before the
/// block. Returns the block's word and its check (lanes 7..=14 of the
/// combined words: all ones when no window ends in the block).
#[inline]
#[target_feature(enable = "sse2")]
fn block<const N: usize, const TRI: bool>(
    table: &[u64; N],
    w: &[u8],
    sv: __m128i,
) -> (__m128i, u64) {
    let back = 1 + usize::from(TRI);
    // Grams (p − 1 + k, p + k) are the 16-bit fields of two words: the
    // even k of the one at p − 1, the odd k of the one at p.
    let even = u64::from_le_bytes(w[back - 1..back + 7].try_into().expect("8 bytes"));
    let odd = u64::from_le_bytes(w[back..back + 8].try_into().expect("8 bytes"));
    let pre = if TRI {
        u64::from_le_bytes(w[..8].try_into().expect("8 bytes"))
    } else {
        0
    };
    block_core::<N, TRI>(table, even, odd, pre, sv)
}

/// One block given as the words of bytes at p − 1 (`even`), p (`odd`) and,
/// with `TRI`, p − 2 (`pre`), from word `s`: `(word after it, hits)` as
/// [`blocks`] returns them. For a block assembled in registers across two
/// chunks.
#[inline]
pub(super) fn block_words<const N: usize, const TRI: bool>(
    table: &[u64; N],
    even: u64,
    odd: u64,
    pre: u64,
    s: u64,
) -> (u64, u64) {
    // SAFETY: SSE2 is a baseline feature of x86_64, always present.
    unsafe { block_words_sse2::<N, TRI>(table, even, odd, pre, s) }
}

#[inline]
#[target_feature(enable = "sse2")]
fn block_words_sse2<const N: usize, const TRI: bool>(
    table: &[u64; N],
    even: u64,
    odd: u64,
    pre: u64,
    s: u64,
) -> (u64, u64) {
    let (r, check) = block_core::<N, TRI>(table, even, odd, pre, _mm_cvtsi64_si128(s as i64));
    (_mm_cvtsi128_si64(r) as u64, !check)
}

/// [`block`] from its three words.
#[inline]
#[target_feature(enable = "sse2")]
fn block_core<const N: usize, const TRI: bool>(
    table: &[u64; N],
    even: u64,
    odd: u64,
    pre: u64,
    sv: __m128i,
) -> (__m128i, u64) {
    let word = |i: u64| -> __m128i { _mm_cvtsi64_si128(table[(i as usize) & (N - 1)] as i64) };
    let (even, odd) = if TRI {
        // The byte two before each gram is the low byte of the field one
        // byte down: of the word at p − 2 for the even k, of `even` for
        // the odd ones (`gram_index`, no field overflow).
        (
            even ^ (pre & LOW_BYTES) << SHIFT2,
            odd ^ (even & LOW_BYTES) << SHIFT2,
        )
    } else {
        (even, odd)
    };
    let (even, odd) = (even & lanes::<N>(), odd & lanes::<N>());
    let g = [
        even,
        odd,
        even >> 16,
        odd >> 16,
        even >> 32,
        odd >> 32,
        even >> 48,
        odd >> 48,
    ];
    let word = |k: usize| word(g[k] & 0xffff);
    // Position p + k is shifted up 7 − k lanes; balanced or-tree.
    let r01 = _mm_or_si128(_mm_slli_si128::<7>(word(0)), _mm_slli_si128::<6>(word(1)));
    let r23 = _mm_or_si128(_mm_slli_si128::<5>(word(2)), _mm_slli_si128::<4>(word(3)));
    let r45 = _mm_or_si128(_mm_slli_si128::<3>(word(4)), _mm_slli_si128::<2>(word(5)));
    let r67 = _mm_or_si128(_mm_slli_si128::<1>(word(6)), word(7));
    let r = _mm_or_si128(_mm_or_si128(r01, r23), _mm_or_si128(r45, r67));
    // The previous word moves up 8 lanes; lanes 7..=14 are checked.
    let both = _mm_or_si128(r, _mm_slli_si128::<8>(sv));
    (r, _mm_cvtsi128_si64(_mm_srli_si128::<7>(both)) as u64)
}

#[inline]
#[target_feature(enable = "sse2")]
fn blocks_sse2<const N: usize, const TRI: bool>(
    table: &[u64; N],
    hay: &[u8],
    mut p: usize,
    s: u64,
) -> (usize, u64, u64) {
    let back = 1 + usize::from(TRI);
    let mut sv = _mm_cvtsi64_si128(s as i64);
    // Two blocks per check: the loop overhead (bounds, test, branch) is
    // paid once per 16 bytes.
    while p + 16 <= hay.len() {
        let w = &hay[p - back..p + 16];
        let (r1, check1) = block::<N, TRI>(table, &w[..back + 8], sv);
        let (r2, check2) = block::<N, TRI>(table, &w[8..], r1);
        if check1 & check2 != u64::MAX {
            if check1 != u64::MAX {
                return (p, _mm_cvtsi128_si64(r1) as u64, !check1);
            }
            return (p + 8, _mm_cvtsi128_si64(r2) as u64, !check2);
        }
        sv = r2;
        p += 16;
    }
    if p + 8 <= hay.len() {
        let (r, check) = block::<N, TRI>(table, &hay[p - back..p + 8], sv);
        if check != u64::MAX {
            return (p, _mm_cvtsi128_si64(r) as u64, !check);
        }
        sv = r;
        p += 8;
    }
    (p, _mm_cvtsi128_si64(sv) as u64, 0)
}
