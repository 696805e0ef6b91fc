//! The bounded look-back buffer shared by the algorithms that need to see
//! bytes of earlier chunks (Boyer-Moore-Horspool, memmem, the regex start
//! finder).

use crate::{Control, Match};

/// Append `chunk` to `carry` and keep only its last `keep` bytes, without
/// ever growing the buffer past `keep` (its capacity was reserved once).
pub(crate) fn push(carry: &mut Vec<u8>, chunk: &[u8], keep: usize) {
    if keep == 0 {
        return;
    }
    if chunk.len() >= keep {
        carry.clear();
        carry.extend_from_slice(&chunk[chunk.len() - keep..]);
        return;
    }
    let excess = (carry.len() + chunk.len()).saturating_sub(keep);
    if excess > 0 {
        carry.drain(..excess);
    }
    carry.extend_from_slice(chunk);
}

/// [`push`] for a chain of chunks: only the chunks that hold the last
/// `keep` bytes are copied.
pub(crate) fn push_chain(carry: &mut Vec<u8>, chain: &[&[u8]], keep: usize) {
    let mut need = keep;
    let mut first = chain.len();
    while first > 0 && need > 0 {
        first -= 1;
        need = need.saturating_sub(chain[first].len());
    }
    for chunk in &chain[first..] {
        push(carry, chunk, keep);
    }
}

/// Call `f(before, chunk, base)` for each chunk of `chain` (the first at
/// `base`), `before` being the at most `keep` stream bytes just before the
/// chunk: taken straight from the previous chunk when it is long enough,
/// else from `carry`, which is brought up to date only then and once at
/// the end. For the engines that look back over a boundary.
#[inline(always)]
pub(crate) fn each_with_before(
    carry: &mut Vec<u8>,
    chain: &[&[u8]],
    mut base: u64,
    keep: usize,
    mut f: impl FnMut(&[u8], &[u8], u64) -> Control,
) -> Control {
    // Chunks not yet appended to the carry.
    let mut unpushed = 0;
    for (k, &chunk) in chain.iter().enumerate() {
        let before = match k.checked_sub(1).map(|j| chain[j]) {
            Some(prev) if prev.len() >= keep => &prev[prev.len() - keep..],
            _ => {
                push_chain(carry, &chain[unpushed..k], keep);
                unpushed = k;
                &carry[..]
            }
        };
        if f(before, chunk, base) == Control::Stop {
            return Control::Stop;
        }
        base += chunk.len() as u64;
    }
    push_chain(carry, &chain[unpushed..], keep);
    Control::Continue
}

/// Longest `carry ++ chunk head` that [`stitch`] assembles on the stack.
pub(crate) const STITCH: usize = 128;

/// The bytes a match straddling the boundary between `carry` and `chunk`
/// can lie in, for a pattern of `m` bytes: `carry` followed by the first
/// `m − 1` bytes of `chunk`, copied into `buf` so that the boundary is
/// searched with the algorithm's own loop (for starts before
/// `carry.len()`) instead of one comparison per candidate start. `None`
/// when they do not fit; `Some` of a slice shorter than `m` when no match
/// can straddle.
#[inline]
pub(crate) fn stitch<'b>(
    buf: &'b mut [u8; STITCH],
    carry: &[u8],
    chunk: &[u8],
    m: usize,
) -> Option<&'b [u8]> {
    let c = carry.len();
    let take = chunk.len().min(m.saturating_sub(1));
    if c + take > STITCH {
        return None;
    }
    buf[..c].copy_from_slice(carry);
    buf[c..c + take].copy_from_slice(&chunk[..take]);
    Some(&buf[..c + take])
}

/// ASCII case folding used by the literal algorithms.
#[inline(always)]
pub(crate) fn fold(b: u8, icase: bool) -> u8 {
    if icase {
        b.to_ascii_lowercase()
    } else {
        b
    }
}

/// Report the occurrences of `pat` (already folded) that start inside
/// `carry` and end inside `carry ++ chunk`: the matches straddling the chunk
/// boundary. `base` is the absolute offset of `chunk[0]`.
///
/// Candidates are few (at most `pat.len() - 1` starts) and most fail on the
/// first byte, so a direct comparison is cheaper than any set-up.
pub(crate) fn straddling(
    carry: &[u8],
    chunk: &[u8],
    pat: &[u8],
    icase: bool,
    base: u64,
    sink: &mut dyn FnMut(Match) -> Control,
) -> Control {
    let c = carry.len();
    let m = pat.len();
    for s in 0..c {
        if s + m > c + chunk.len() {
            break;
        }
        let hit = pat.iter().enumerate().all(|(k, &p)| {
            let b = if s + k < c {
                carry[s + k]
            } else {
                chunk[s + k - c]
            };
            fold(b, icase) == p
        });
        if hit {
            let start = base - (c - s) as u64;
            let found = Match {
                pattern: 0,
                start,
                end: start + m as u64,
            };
            if sink(found) == Control::Stop {
                return Control::Stop;
            }
        }
    }
    Control::Continue
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_keeps_tail_without_growing() {
        let mut c = Vec::with_capacity(3);
        let cap = c.capacity();
        push(&mut c, b"a", 3);
        push(&mut c, b"bc", 3);
        assert_eq!(c, b"abc");
        push(&mut c, b"d", 3);
        assert_eq!(c, b"bcd");
        push(&mut c, b"wxyz", 3);
        assert_eq!(c, b"xyz");
        assert_eq!(c.capacity(), cap);
        push(&mut c, b"", 3);
        assert_eq!(c, b"xyz");
    }
}
