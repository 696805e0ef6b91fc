//! Single-literal algorithms that look at whole windows of bytes
//! (Boyer-Moore-Horspool, memmem), made boundary-safe by carrying the last
//! `len − 1` bytes of the flow, plus the anchored prefix compare.

use memchr::memmem;

use super::{Engine, EngineState};
use crate::carry::{self, fold};
use crate::{Control, Match};

/// Boyer-Moore-Horspool with the bad-character shift of the window's last
/// byte; safe for overlapping matches because that shift never passes an
/// occurrence.
#[derive(Debug)]
pub(crate) struct Horspool {
    pat: Vec<u8>,
    shift: Box<[usize; 256]>,
    icase: bool,
    /// Boundary filter (see [`Memmem`]) for patterns of 2 to 64 bytes.
    split: Option<Box<SplitMasks>>,
}

impl Horspool {
    pub(crate) fn new(pat: &[u8], icase: bool) -> Horspool {
        let pat: Vec<u8> = pat.iter().map(|&b| fold(b, icase)).collect();
        let m = pat.len();
        let mut shift = Box::new([m; 256]);
        for (k, &b) in pat[..m - 1].iter().enumerate() {
            shift[b as usize] = m - 1 - k;
            if icase {
                shift[b.to_ascii_uppercase() as usize] = m - 1 - k;
            }
        }
        let split = SplitMasks::new(&pat, icase);
        Horspool {
            pat,
            shift,
            icase,
            split,
        }
    }
}

impl Engine for Horspool {
    fn carry_capacity(&self) -> usize {
        self.pat.len() - 1
    }

    fn scan(
        &self,
        st: &mut EngineState,
        hay: &[u8],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        if self.run(&st.carry, hay, base, sink) == Control::Stop {
            return Control::Stop;
        }
        carry::push(&mut st.carry, hay, self.pat.len() - 1);
        Control::Continue
    }

    fn scan_chain(
        &self,
        st: &mut EngineState,
        chain: &[&[u8]],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        let keep = self.pat.len() - 1;
        carry::each_with_before(&mut st.carry, chain, base, keep, |before, hay, base| {
            self.run(before, hay, base, sink)
        })
    }
}

impl Horspool {
    /// Report the occurrences ending in `hay` (its first byte at `base`),
    /// including those starting in `before`, the at most `len − 1` bytes
    /// just before it. Patterns of 2 to 64 bytes settle the boundary with
    /// the split masks (usually three loads and a test). Longer ones run
    /// one loop over window ends from the first window that starts in
    /// `before`: the last byte of a window is always in `hay`, and only
    /// the comparison of a window that starts in `before` reads both
    /// slices, so the boundary costs no copy and no second loop.
    ///
    /// Not inlined: inlined into `scan_chain`'s loop the same code ran
    /// 7 % slower per byte (9000 B chunks, `perf stat`), a layout effect.
    #[inline(never)]
    fn run(
        &self,
        before: &[u8],
        hay: &[u8],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        // With the split masks the boundary is settled first, and the
        // loop below then starts inside `hay`, as for a chunk alone.
        let before = match &self.split {
            Some(t) => {
                if t.straddling(&self.pat, self.icase, before, hay, base, sink) == Control::Stop {
                    return Control::Stop;
                }
                &[][..]
            }
            None => before,
        };
        let pat = &self.pat[..];
        let m = pat.len();
        let c = before.len().min(m - 1);
        let before = &before[before.len() - c..];
        let last = pat[m - 1];
        let eq = |h: &[u8], p: &[u8]| h.iter().zip(p).all(|(&h, &p)| fold(h, self.icase) == p);
        // Index in `hay` of the last byte of the first window.
        let mut e = m - 1 - c;
        while e < hay.len() {
            let b = hay[e];
            if fold(b, self.icase) == last {
                let hit = if e + 1 >= m {
                    eq(&hay[e + 1 - m..e], pat)
                } else {
                    // Starts `need` bytes back in `before`.
                    let need = m - 1 - e;
                    eq(&before[c - need..], pat) && eq(&hay[..e], &pat[need..])
                };
                if hit {
                    let end = base + e as u64 + 1;
                    let found = Match {
                        pattern: 0,
                        start: end - m as u64,
                        end,
                    };
                    if sink(found) == Control::Stop {
                        return Control::Stop;
                    }
                }
            }
            e += self.shift[b as usize];
        }
        Control::Continue
    }
}

/// memchr's memmem (two-way with a SIMD prefilter) inside each chunk; the
/// straddling candidates are checked against the carried bytes.
///
/// memmem runs at a fraction of a cycle per byte, so a chunk boundary must
/// cost only a few cycles or it dominates small chunks. For patterns of up
/// to 64 bytes the boundary is first filtered with three table lookups:
/// bit `k` of a mask stands for "the match would have its first `k` bytes
/// before the boundary", and it survives only if the byte before the
/// boundary and the first two after it are the pattern's bytes at `k − 1`,
/// `k` and `k + 1`. On most boundaries no bit survives and nothing else is
/// done; a survivor is confirmed by comparing both slices in place.
#[derive(Debug)]
pub(crate) struct Memmem {
    finder: memmem::Finder<'static>,
    /// `Some` for patterns of 2 to 64 bytes.
    split: Option<Box<SplitMasks>>,
}

/// Per byte value, the splits `k` (bit `k`, 1 ≤ k < len) a byte is
/// consistent with; see [`Memmem`].
#[derive(Debug)]
pub(crate) struct SplitMasks {
    /// Bit `k` of `[b]`: `pat[k − 1] == b` (the last byte before the boundary).
    before: [u64; 256],
    /// Bit `k` of `[b]`: `pat[k] == b` (the first byte after it).
    first: [u64; 256],
    /// Bit `k` of `[b]`: `pat[k + 1] == b`, or `k == len − 1` (the match
    /// ends at the first byte after the boundary).
    second: [u64; 256],
}

impl SplitMasks {
    /// Masks for `pat` (already case-folded when `icase`), or `None` when
    /// it is shorter than 2 bytes (nothing can straddle) or longer than 64.
    fn new(pat: &[u8], icase: bool) -> Option<Box<SplitMasks>> {
        let m = pat.len();
        if !(2..=64).contains(&m) {
            return None;
        }
        let mut t = Box::new(SplitMasks {
            before: [0; 256],
            first: [0; 256],
            second: [0; 256],
        });
        for b in 0..=255u8 {
            let f = fold(b, icase);
            let i = b as usize;
            for k in 1..m {
                let bit = 1u64 << k;
                if pat[k - 1] == f {
                    t.before[i] |= bit;
                }
                if pat[k] == f {
                    t.first[i] |= bit;
                }
                if k + 1 == m || pat[k + 1] == f {
                    t.second[i] |= bit;
                }
            }
        }
        Some(t)
    }

    /// Report the occurrences of `pat` (folded as for [`SplitMasks::new`])
    /// that start in `before` (the at most `len − 1` bytes just before
    /// `hay`) and end in `hay` (its first byte at `base`), by increasing
    /// end.
    #[inline(always)]
    fn straddling(
        &self,
        pat: &[u8],
        icase: bool,
        before: &[u8],
        hay: &[u8],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        let (Some(&last), Some(&first)) = (before.last(), hay.first()) else {
            return Control::Continue;
        };
        let mut cand = self.before[last as usize] & self.first[first as usize];
        if cand == 0 {
            return Control::Continue;
        }
        if let Some(&second) = hay.get(1) {
            cand &= self.second[second as usize];
        }
        let m = pat.len();
        // k bytes in `before` (k ≤ its length), m − k in `hay`.
        let c = before.len().min(m - 1);
        cand &= (u64::MAX >> (63 - c)) & (u64::MAX << m.saturating_sub(hay.len()));
        let eq = |h: &[u8], p: &[u8]| h.iter().zip(p).all(|(&h, &p)| fold(h, icase) == p);
        // Largest k first: the match ending earliest.
        while cand != 0 {
            let k = 63 - cand.leading_zeros() as usize;
            cand &= !(1u64 << k);
            if eq(&before[before.len() - k..], &pat[..k]) && eq(&hay[..m - k], &pat[k..]) {
                let found = Match {
                    pattern: 0,
                    start: base - k as u64,
                    end: base + (m - k) as u64,
                };
                if sink(found) == Control::Stop {
                    return Control::Stop;
                }
            }
        }
        Control::Continue
    }
}

impl Memmem {
    pub(crate) fn new(pat: &[u8]) -> Memmem {
        Memmem {
            finder: memmem::Finder::new(pat).into_owned(),
            split: SplitMasks::new(pat, false),
        }
    }
}

impl Engine for Memmem {
    fn carry_capacity(&self) -> usize {
        self.finder.needle().len() - 1
    }

    fn scan(
        &self,
        st: &mut EngineState,
        hay: &[u8],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        let m = self.finder.needle().len();
        if self.boundary(&st.carry, hay, base, sink) == Control::Stop
            || self.run(hay, hay.len(), base, sink) == Control::Stop
        {
            return Control::Stop;
        }
        carry::push(&mut st.carry, hay, m - 1);
        Control::Continue
    }

    fn scan_chain(
        &self,
        st: &mut EngineState,
        chain: &[&[u8]],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        let keep = self.finder.needle().len() - 1;
        carry::each_with_before(&mut st.carry, chain, base, keep, |before, hay, base| {
            if self.boundary(before, hay, base, sink) == Control::Stop {
                return Control::Stop;
            }
            self.run(hay, hay.len(), base, sink)
        })
    }
}

impl Memmem {
    /// Report the occurrences that start in `before` (the at most `len − 1`
    /// bytes just before `hay`) and end in `hay` (its first byte at `base`),
    /// by increasing end.
    #[inline(always)]
    fn boundary(
        &self,
        before: &[u8],
        hay: &[u8],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        match &self.split {
            Some(t) => t.straddling(self.finder.needle(), false, before, hay, base, sink),
            None if before.is_empty() => Control::Continue,
            None => self.stitched(before, hay, base, sink),
        }
    }

    /// The boundary of a pattern too long for the masks: `before` and the
    /// head of `hay` joined on the stack and searched with memmem.
    #[cold]
    fn stitched(
        &self,
        before: &[u8],
        hay: &[u8],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        let pat = self.finder.needle();
        let m = pat.len();
        let before = &before[before.len().saturating_sub(m - 1)..];
        let c = before.len();
        let mut buf = [0u8; carry::STITCH];
        match carry::stitch(&mut buf, before, hay, m) {
            Some(joined) => self.run(joined, c, base - c as u64, sink),
            None => carry::straddling(before, hay, pat, false, base, sink),
        }
    }

    /// Report the occurrences in `hay` (its first byte at `base`) that
    /// start before `starts`.
    #[inline(always)]
    fn run(
        &self,
        hay: &[u8],
        starts: usize,
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        let m = self.finder.needle().len();
        let mut pos = 0;
        while let Some(k) = self.finder.find(&hay[pos..]) {
            if pos + k >= starts {
                break;
            }
            let start = base + (pos + k) as u64;
            let found = Match {
                pattern: 0,
                start,
                end: start + m as u64,
            };
            if sink(found) == Control::Stop {
                return Control::Stop;
            }
            // Overlapping occurrences count: resume one byte later.
            pos += k + 1;
        }
        Control::Continue
    }
}

/// An anchored literal: the only candidate starts at the window start, so
/// the state is the number of bytes compared so far.
#[derive(Debug)]
pub(crate) struct Anchored {
    pat: Vec<u8>,
    icase: bool,
}

impl Anchored {
    pub(crate) fn new(pat: &[u8], icase: bool) -> Anchored {
        Anchored {
            pat: pat.iter().map(|&b| fold(b, icase)).collect(),
            icase,
        }
    }
}

impl Engine for Anchored {
    fn scan(
        &self,
        st: &mut EngineState,
        hay: &[u8],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        let done = (st.sid as usize).min(self.pat.len());
        let rest = &self.pat[done..];
        let n = rest.len().min(hay.len());
        if !hay[..n]
            .iter()
            .zip(rest)
            .all(|(&h, &p)| fold(h, self.icase) == p)
        {
            return Control::Stop;
        }
        st.sid = (done + n) as u32;
        if n < rest.len() {
            return Control::Continue;
        }
        let end = base + n as u64;
        // Stop either way: no second anchored match exists.
        sink(Match {
            pattern: 0,
            start: end - self.pat.len() as u64,
            end,
        });
        Control::Stop
    }
}
