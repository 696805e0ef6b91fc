//! Single-literal algorithms that look at whole windows of bytes
//! (Boyer-Moore-Horspool, memmem), plus the anchored prefix compare.
//!
//! Both window algorithms search each chunk on its own and settle the
//! chunk boundary with a [`Partial`] set kept in the flow state: for a
//! literal of up to 64 bytes no flow bytes are carried at all. Longer
//! literals carry the last `len − 1` bytes of the flow instead.

use memchr::memmem;

use super::{Engine, EngineState};
use crate::carry::{self, fold};
use crate::{Control, Match};

/// Longest literal whose partial matches fit the 64-bit set.
pub(crate) const PARTIAL_MAX: usize = 64;

/// The partial matches of one literal at a chunk boundary, as a set of
/// lengths: bit `k` (1 ≤ k < len) is set when the flow's last `k` bytes
/// are the literal's first `k`. That is all the flow history a literal
/// search needs, so it replaces carried bytes; it lives in
/// `EngineState::mark`. Computed at a chunk's end from its last two bytes
/// (two tables give the `k` whose bytes `k − 1` and `k − 2` they are; each
/// survivor is then compared) and, for chunks shorter than the literal,
/// from the set before the chunk. Most chunk ends leave an empty set and most starts
/// then cost one test.
#[derive(Debug)]
pub(crate) struct Partial {
    /// Bit `k` of `[b]`: the literal's byte `k − 1` is `b` (folded).
    ends: [u64; 256],
    /// Bit `k` of `[b]`: `k == 1`, or the literal's byte `k − 2` is `b`
    /// (the chunk's last byte but one), which leaves few candidates.
    ends2: [u64; 256],
}

impl Partial {
    /// The table for `pat` (already folded when `icase`), or `None` when
    /// it is longer than [`PARTIAL_MAX`].
    fn new(pat: &[u8], icase: bool) -> Option<Box<Partial>> {
        let m = pat.len();
        if m > PARTIAL_MAX {
            return None;
        }
        let mut t = Box::new(Partial {
            ends: [0; 256],
            ends2: [0; 256],
        });
        for b in 0..=255u8 {
            let f = fold(b, icase);
            for k in 1..m {
                if pat[k - 1] == f {
                    t.ends[b as usize] |= 1 << k;
                }
                if k == 1 || pat[k - 2] == f {
                    t.ends2[b as usize] |= 1 << k;
                }
            }
        }
        Some(t)
    }

    /// Report the occurrences that the partial matches in `set` complete
    /// inside `hay` (its first byte at `base`), by increasing end: they
    /// all end before any occurrence lying wholly in `hay`.
    #[inline(always)]
    fn complete(
        pat: &[u8],
        icase: bool,
        set: u64,
        hay: &[u8],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        if set == 0 || hay.is_empty() {
            return Control::Continue;
        }
        let m = pat.len();
        // `k` bytes before `hay`, `m − k` in it: only if it holds them.
        let mut set = set & (u64::MAX << m.saturating_sub(hay.len()));
        // Largest `k` first: the match ending earliest.
        while set != 0 {
            let k = 63 - set.leading_zeros() as usize;
            set &= !(1u64 << k);
            if eq(&hay[..m - k], &pat[k..], icase) {
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

    /// Search `chain` (its first byte at `base`) with the set in `*mark`:
    /// per chunk, the matches the set completes, then `inside` (the
    /// engine's own search of the chunk alone), then the set after it.
    /// `*mark` is written back unless the sink stopped.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn walk(
        &self,
        pat: &[u8],
        icase: bool,
        mark: &mut u64,
        chain: &[&[u8]],
        mut base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
        mut inside: impl FnMut(&[u8], u64, &mut dyn FnMut(Match) -> Control) -> Control,
    ) -> Control {
        let mut set = *mark;
        for hay in chain {
            if Partial::complete(pat, icase, set, hay, base, sink) == Control::Stop
                || inside(hay, base, sink) == Control::Stop
            {
                return Control::Stop;
            }
            set = self.after(pat, icase, set, hay);
            base += hay.len() as u64;
        }
        *mark = set;
        Control::Continue
    }

    /// The set after `hay`, given `set` before it.
    #[inline(always)]
    fn after(&self, pat: &[u8], icase: bool, set: u64, hay: &[u8]) -> u64 {
        let Some(&last) = hay.last() else {
            return set;
        };
        let m = pat.len();
        let n = hay.len();
        // Partial matches lying wholly in `hay`: lengths 1..=min(n, m − 1).
        let mut cand = self.ends[last as usize] & (u64::MAX >> (63 - n.min(m - 1)));
        if n >= 2 {
            cand &= self.ends2[hay[n - 2] as usize];
        }
        let mut out = 0;
        while cand != 0 {
            let k = cand.trailing_zeros() as usize;
            cand &= cand - 1;
            if eq(&hay[n - k..n - 1], &pat[..k - 1], icase) {
                out |= 1 << k;
            }
        }
        // A chunk shorter than the literal can extend earlier ones.
        if n < m - 1 {
            let mut ext = set & (u64::MAX >> (63 - (m - 1 - n)));
            while ext != 0 {
                let j = ext.trailing_zeros() as usize;
                ext &= ext - 1;
                if eq(hay, &pat[j..j + n], icase) {
                    out |= 1 << (j + n);
                }
            }
        }
        out
    }
}

/// `hay` equals the folded `pat` (same length).
#[inline(always)]
fn eq(hay: &[u8], pat: &[u8], icase: bool) -> bool {
    debug_assert_eq!(hay.len(), pat.len());
    if icase {
        hay.iter().zip(pat).all(|(&h, &p)| fold(h, true) == p)
    } else {
        hay == pat
    }
}

/// Boyer-Moore-Horspool with the bad-character shift of the window's last
/// byte; safe for overlapping matches because that shift never passes an
/// occurrence.
#[derive(Debug)]
pub(crate) struct Horspool {
    pat: Vec<u8>,
    shift: Box<[usize; 256]>,
    icase: bool,
    /// `Some` up to [`PARTIAL_MAX`] bytes; longer literals carry bytes.
    partial: Option<Box<Partial>>,
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
        let partial = Partial::new(&pat, icase);
        Horspool {
            pat,
            shift,
            icase,
            partial,
        }
    }
}

impl Engine for Horspool {
    fn carry_capacity(&self) -> usize {
        match self.partial {
            Some(_) => 0,
            None => self.pat.len() - 1,
        }
    }

    fn scan(
        &self,
        st: &mut EngineState,
        hay: &[u8],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        self.scan_chain(st, core::slice::from_ref(&hay), base, sink)
    }

    // Inlined into `scan`: a call per fed chunk cost ~12 % at 64 B.
    #[inline(always)]
    fn scan_chain(
        &self,
        st: &mut EngineState,
        chain: &[&[u8]],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        match &self.partial {
            Some(p) => p.walk(
                &self.pat,
                self.icase,
                &mut st.mark,
                chain,
                base,
                sink,
                |hay, base, sink| self.run(&[], hay, base, sink),
            ),
            None => {
                let keep = self.pat.len() - 1;
                carry::each_with_before(&mut st.carry, chain, base, keep, |before, hay, base| {
                    self.run(before, hay, base, sink)
                })
            }
        }
    }
}

impl Horspool {
    /// Report the occurrences ending in `hay` (its first byte at `base`),
    /// including those starting in `before`, the at most `len − 1` bytes
    /// just before it (empty when the partial set settles the boundary).
    /// One loop over window ends from the first window that starts in
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
        let pat = &self.pat[..];
        let m = pat.len();
        let c = before.len().min(m - 1);
        let before = &before[before.len() - c..];
        let last = pat[m - 1];
        // Index in `hay` of the last byte of the first window.
        let mut e = m - 1 - c;
        while e < hay.len() {
            let b = hay[e];
            if fold(b, self.icase) == last {
                let hit = if e + 1 >= m {
                    eq(&hay[e + 1 - m..e], &pat[..m - 1], self.icase)
                } else {
                    // Starts `need` bytes back in `before`.
                    let need = m - 1 - e;
                    eq(&before[c - need..], &pat[..need], self.icase)
                        && eq(&hay[..e], &pat[need..m - 1], self.icase)
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
/// boundary is settled by the [`Partial`] set (literals of up to 64
/// bytes) or against the carried bytes (longer ones).
///
/// memmem runs at a fraction of a cycle per byte, so a chunk boundary must
/// cost only a few cycles or it dominates small chunks: with the partial
/// set most boundaries cost two table loads and a test at the end of one
/// chunk and one test at the start of the next.
#[derive(Debug)]
pub(crate) struct Memmem {
    finder: memmem::Finder<'static>,
    /// `Some` up to [`PARTIAL_MAX`] bytes; longer literals carry bytes.
    partial: Option<Box<Partial>>,
}

impl Memmem {
    pub(crate) fn new(pat: &[u8]) -> Memmem {
        Memmem {
            finder: memmem::Finder::new(pat).into_owned(),
            partial: Partial::new(pat, false),
        }
    }
}

impl Engine for Memmem {
    fn carry_capacity(&self) -> usize {
        match self.partial {
            Some(_) => 0,
            None => self.finder.needle().len() - 1,
        }
    }

    fn scan(
        &self,
        st: &mut EngineState,
        hay: &[u8],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        self.scan_chain(st, core::slice::from_ref(&hay), base, sink)
    }

    // Inlined into `scan`: a call per fed chunk cost ~12 % at 64 B.
    #[inline(always)]
    fn scan_chain(
        &self,
        st: &mut EngineState,
        chain: &[&[u8]],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        let pat = self.finder.needle();
        match &self.partial {
            Some(p) => p.walk(
                pat,
                false,
                &mut st.mark,
                chain,
                base,
                sink,
                |hay, base, sink| self.run(hay, hay.len(), base, sink),
            ),
            None => {
                let keep = pat.len() - 1;
                carry::each_with_before(&mut st.carry, chain, base, keep, |before, hay, base| {
                    if self.stitched(before, hay, base, sink) == Control::Stop {
                        return Control::Stop;
                    }
                    self.run(hay, hay.len(), base, sink)
                })
            }
        }
    }
}

impl Memmem {
    /// The occurrences of a literal too long for the partial set that
    /// start in `before` (the carried bytes) and end in `hay`: both
    /// joined on the stack and searched with memmem.
    fn stitched(
        &self,
        before: &[u8],
        hay: &[u8],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        if before.is_empty() {
            return Control::Continue;
        }
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
