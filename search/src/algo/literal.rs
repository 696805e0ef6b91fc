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
        Horspool { pat, shift, icase }
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
        mut base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        let keep = self.pat.len() - 1;
        // Chunks not yet appended to the carry: the bytes before a chunk
        // come straight from the previous one when it is long enough.
        let mut unpushed = 0;
        for (k, &hay) in chain.iter().enumerate() {
            let before = match k.checked_sub(1).map(|j| chain[j]) {
                Some(prev) if prev.len() >= keep => &prev[prev.len() - keep..],
                _ => {
                    carry::push_chain(&mut st.carry, &chain[unpushed..k], keep);
                    unpushed = k;
                    &st.carry[..]
                }
            };
            if self.run(before, hay, base, sink) == Control::Stop {
                return Control::Stop;
            }
            base += hay.len() as u64;
        }
        carry::push_chain(&mut st.carry, &chain[unpushed..], keep);
        Control::Continue
    }
}

impl Horspool {
    /// Report the occurrences ending in `hay` (its first byte at `base`),
    /// including those starting in `before`, the at most `len − 1` bytes
    /// just before it. One loop over window ends: the last byte of a
    /// window is always in `hay`, and only the comparison of a window
    /// that starts in `before` reads both slices. The boundary thus costs
    /// no copy, no comparison per carried start and no second loop (whose
    /// exit would be one more mispredicted branch per chunk).
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
#[derive(Debug)]
pub(crate) struct Memmem {
    finder: memmem::Finder<'static>,
}

impl Memmem {
    pub(crate) fn new(pat: &[u8]) -> Memmem {
        Memmem {
            finder: memmem::Finder::new(pat).into_owned(),
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
        let pat = self.finder.needle();
        let m = pat.len();
        if !st.carry.is_empty() {
            let mut buf = [0u8; carry::STITCH];
            let c = st.carry.len();
            let stop = match carry::stitch(&mut buf, &st.carry, hay, m) {
                Some(joined) => self.run(joined, c, base - c as u64, sink),
                None => carry::straddling(&st.carry, hay, pat, false, base, sink),
            };
            if stop == Control::Stop {
                return Control::Stop;
            }
        }
        if self.run(hay, hay.len(), base, sink) == Control::Stop {
            return Control::Stop;
        }
        carry::push(&mut st.carry, hay, m - 1);
        Control::Continue
    }
}

impl Memmem {
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
