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

use core::arch::x86_64::{
    __m128i, _mm_cvtsi128_si64, _mm_cvtsi64_si128, _mm_or_si128, _mm_slli_si128, _mm_srli_si128,
};

/// Run 8-position blocks from `p` (≥ 1) while `p + 8 ≤ hay.len()`, starting
/// from shift-or word `s`. Returns at the first block with a candidate:
/// `(block start, word after it, hits)` with `hits` as in the scalar loop
/// (byte `7 − t` = buckets of the window ending at `start + t`); or, when the
/// blocks run out, `(next position, word, 0)`.
#[inline]
pub(super) fn blocks<const N: usize>(
    table: &[u64; N],
    hay: &[u8],
    p: usize,
    s: u64,
) -> (usize, u64, u64) {
    // SAFETY: SSE2 is a baseline feature of x86_64, always present.
    unsafe { blocks_sse2(table, hay, p, s) }
}

#[target_feature(enable = "sse2")]
fn blocks_sse2<const N: usize>(
    table: &[u64; N],
    hay: &[u8],
    mut p: usize,
    s: u64,
) -> (usize, u64, u64) {
    let word = |prev: u8, cur: u8| -> __m128i {
        let i = usize::from(u16::from_le_bytes([prev, cur])) & (N - 1);
        _mm_cvtsi64_si128(table[i] as i64)
    };
    let mut sv = _mm_cvtsi64_si128(s as i64);
    while p + 8 <= hay.len() {
        let b: &[u8; 9] = hay[p - 1..p + 8].try_into().expect("9 bytes");
        // Position p + k is shifted up 7 − k lanes; balanced or-tree.
        let r01 = _mm_or_si128(
            _mm_slli_si128::<7>(word(b[0], b[1])),
            _mm_slli_si128::<6>(word(b[1], b[2])),
        );
        let r23 = _mm_or_si128(
            _mm_slli_si128::<5>(word(b[2], b[3])),
            _mm_slli_si128::<4>(word(b[3], b[4])),
        );
        let r45 = _mm_or_si128(
            _mm_slli_si128::<3>(word(b[4], b[5])),
            _mm_slli_si128::<2>(word(b[5], b[6])),
        );
        let r67 = _mm_or_si128(_mm_slli_si128::<1>(word(b[6], b[7])), word(b[7], b[8]));
        let r = _mm_or_si128(_mm_or_si128(r01, r23), _mm_or_si128(r45, r67));
        // The previous word moves up 8 lanes; lanes 7..=14 are checked.
        let both = _mm_or_si128(r, _mm_slli_si128::<8>(sv));
        let check = _mm_cvtsi128_si64(_mm_srli_si128::<7>(both)) as u64;
        sv = r;
        if check != u64::MAX {
            return (p, _mm_cvtsi128_si64(r) as u64, !check);
        }
        p += 8;
    }
    (p, _mm_cvtsi128_si64(sv) as u64, 0)
}
