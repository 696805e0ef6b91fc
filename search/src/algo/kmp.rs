//! Knuth-Morris-Pratt: the flow state is the length of the matched prefix,
//! so nothing is carried between chunks.

use super::{Engine, EngineState};
use crate::carry::fold;
use crate::{Control, Match};

#[derive(Debug)]
pub(crate) struct Kmp {
    /// The pattern, lower-cased when `icase`.
    pat: Vec<u8>,
    /// `fail[j]`: length of the longest proper border of `pat[..=j]`.
    fail: Vec<u32>,
    icase: bool,
    /// The two spellings of the first byte, for the memchr skip.
    first: (u8, u8),
    /// The AVX2 searcher for them, built once: `memchr::memchr` would
    /// redo its CPU dispatch and needle broadcast on every chunk.
    #[cfg(target_arch = "x86_64")]
    finder: Option<First>,
}

#[cfg(target_arch = "x86_64")]
#[derive(Debug)]
enum First {
    One(memchr::arch::x86_64::avx2::memchr::One),
    Two(memchr::arch::x86_64::avx2::memchr::Two),
}

impl Kmp {
    pub(crate) fn new(pat: &[u8], icase: bool) -> Kmp {
        let pat: Vec<u8> = pat.iter().map(|&b| fold(b, icase)).collect();
        let mut fail = vec![0u32; pat.len()];
        let mut k = 0usize;
        for j in 1..pat.len() {
            while k > 0 && pat[j] != pat[k] {
                k = fail[k - 1] as usize;
            }
            if pat[j] == pat[k] {
                k += 1;
            }
            fail[j] = k as u32;
        }
        let first = if icase {
            (pat[0], pat[0].to_ascii_uppercase())
        } else {
            (pat[0], pat[0])
        };
        #[cfg(target_arch = "x86_64")]
        let finder = if first.0 == first.1 {
            memchr::arch::x86_64::avx2::memchr::One::new(first.0).map(First::One)
        } else {
            memchr::arch::x86_64::avx2::memchr::Two::new(first.0, first.1).map(First::Two)
        };
        Kmp {
            pat,
            fail,
            icase,
            first,
            #[cfg(target_arch = "x86_64")]
            finder,
        }
    }
}

impl Kmp {
    /// Next position in `hay` holding a spelling of the first byte.
    #[inline(always)]
    fn skip(&self, hay: &[u8]) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        if let Some(f) = &self.finder {
            return match f {
                First::One(one) => one.find(hay),
                First::Two(two) => two.find(hay),
            };
        }
        if self.first.0 == self.first.1 {
            memchr::memchr(self.first.0, hay)
        } else {
            memchr::memchr2(self.first.0, self.first.1, hay)
        }
    }

    /// Run over `hay` (first byte at `base`) from matched prefix length
    /// `*j`, leaving in it the length matched at the end.
    #[inline(always)]
    fn run(
        &self,
        j: &mut usize,
        hay: &[u8],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        let m = self.pat.len();
        let mut i = 0;
        while i < hay.len() {
            if *j == 0 {
                // Nothing matched yet: jump to the next possible first byte.
                match self.skip(&hay[i..]) {
                    Some(k) => i += k,
                    None => break,
                }
            }
            let b = fold(hay[i], self.icase);
            while *j > 0 && self.pat[*j] != b {
                *j = self.fail[*j - 1] as usize;
            }
            if self.pat[*j] == b {
                *j += 1;
            }
            i += 1;
            if *j == m {
                let end = base + i as u64;
                *j = self.fail[m - 1] as usize;
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
        Control::Continue
    }
}

impl Engine for Kmp {
    fn scan(
        &self,
        st: &mut EngineState,
        hay: &[u8],
        base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        // A state from this searcher is always < m; clamp anyway so a bad
        // value cannot index out of bounds.
        let mut j = (st.sid as usize).min(self.pat.len() - 1);
        let r = self.run(&mut j, hay, base, sink);
        st.sid = j as u32;
        r
    }

    fn scan_chain(
        &self,
        st: &mut EngineState,
        chain: &[&[u8]],
        mut base: u64,
        sink: &mut dyn FnMut(Match) -> Control,
    ) -> Control {
        let mut j = (st.sid as usize).min(self.pat.len() - 1);
        for hay in chain {
            if self.run(&mut j, hay, base, sink) == Control::Stop {
                st.sid = j as u32;
                return Control::Stop;
            }
            base += hay.len() as u64;
        }
        st.sid = j as u32;
        Control::Continue
    }
}
