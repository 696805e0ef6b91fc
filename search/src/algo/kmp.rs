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
        Kmp {
            pat,
            fail,
            icase,
            first,
        }
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
        let m = self.pat.len();
        // A state from this searcher is always < m; clamp anyway so a bad
        // value cannot index out of bounds.
        let mut j = (st.sid as usize).min(m - 1);
        let mut i = 0;
        while i < hay.len() {
            if j == 0 {
                // Nothing matched yet: jump to the next possible first byte.
                let skip = if self.first.0 == self.first.1 {
                    memchr::memchr(self.first.0, &hay[i..])
                } else {
                    memchr::memchr2(self.first.0, self.first.1, &hay[i..])
                };
                match skip {
                    Some(k) => i += k,
                    None => break,
                }
            }
            let b = fold(hay[i], self.icase);
            while j > 0 && self.pat[j] != b {
                j = self.fail[j - 1] as usize;
            }
            if self.pat[j] == b {
                j += 1;
            }
            i += 1;
            if j == m {
                let end = base + i as u64;
                j = self.fail[m - 1] as usize;
                let found = Match {
                    pattern: 0,
                    start: end - m as u64,
                    end,
                };
                if sink(found) == Control::Stop {
                    st.sid = j as u32;
                    return Control::Stop;
                }
            }
        }
        st.sid = j as u32;
        Control::Continue
    }
}
