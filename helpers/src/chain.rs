//! A payload held as a chain of segments, read as one byte string without joining it.
//!
//! Every read is bounds-checked and returns `None` (or `false`) past the end, so parsers built
//! on it cannot panic on a short or oddly split message.

/// A read-only view of `parts` as one byte string.
#[derive(Clone, Copy, Debug)]
pub struct Chain<'a> {
    parts: &'a [&'a [u8]],
    len: usize,
}

/// What [`Chain::copy_until`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Copied {
    /// Bytes written to the front of the output.
    pub len: usize,
    /// Position in the chain of the stop byte, if it was reached.
    pub stop: Option<usize>,
}

impl<'a> Chain<'a> {
    /// The chain of `parts`, in order.
    pub fn new(parts: &'a [&'a [u8]]) -> Chain<'a> {
        Chain {
            parts,
            len: parts.iter().map(|p| p.len()).sum(),
        }
    }

    /// The segments.
    pub fn parts(&self) -> &'a [&'a [u8]] {
        self.parts
    }

    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no byte at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The segments from position `at` on, the first one cut to start there.
    pub fn slices_from(&self, mut at: usize) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.parts.iter().filter_map(move |p| {
            if at >= p.len() {
                at -= p.len();
                None
            } else {
                let s = &p[at..];
                at = 0;
                Some(s)
            }
        })
    }

    /// The byte at `at`.
    pub fn byte(&self, at: usize) -> Option<u8> {
        self.slices_from(at).next().and_then(|s| s.first().copied())
    }

    /// The last byte.
    pub fn last(&self) -> Option<u8> {
        self.parts.iter().rev().find_map(|p| p.last().copied())
    }

    /// Copies `out.len()` bytes from position `at`; false (and `out` partly written) if the
    /// chain is shorter.
    pub fn read(&self, at: usize, out: &mut [u8]) -> bool {
        let mut n = 0;
        for s in self.slices_from(at) {
            if n == out.len() {
                break;
            }
            let take = s.len().min(out.len() - n);
            out[n..n + take].copy_from_slice(&s[..take]);
            n += take;
        }
        n == out.len()
    }

    /// The big-endian `u16` at `at`.
    pub fn be_u16(&self, at: usize) -> Option<u16> {
        let mut b = [0; 2];
        self.read(at, &mut b).then(|| u16::from_be_bytes(b))
    }

    /// The big-endian `u32` at `at`.
    pub fn be_u32(&self, at: usize) -> Option<u32> {
        let mut b = [0; 4];
        self.read(at, &mut b).then(|| u32::from_be_bytes(b))
    }

    /// Position of the first `byte` at or after `from`.
    pub fn find(&self, from: usize, byte: u8) -> Option<usize> {
        let mut pos = from;
        for s in self.slices_from(from) {
            if let Some(i) = s.iter().position(|&b| b == byte) {
                return Some(pos + i);
            }
            pos += s.len();
        }
        None
    }

    /// Copies the bytes from `from` up to (not including) the first `stop` byte into `out`,
    /// until `out` is full or the chain ends.
    pub fn copy_until(&self, from: usize, stop: u8, out: &mut [u8]) -> Copied {
        let mut n = 0;
        for s in self.slices_from(from) {
            let room = out.len() - n;
            let (body, found) = match s.iter().position(|&b| b == stop) {
                Some(i) if i <= room => (&s[..i], true),
                _ => (&s[..s.len().min(room)], false),
            };
            out[n..n + body.len()].copy_from_slice(body);
            n += body.len();
            if found {
                return Copied {
                    len: n,
                    stop: Some(from + n),
                };
            }
            // Full with bytes left in this segment (none of them a stop within reach): done.
            // Full at the segment's end: the next segment's first byte may still be the stop.
            if n == out.len() && s.len() > body.len() {
                break;
            }
        }
        Copied { len: n, stop: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_across_segments_and_stops_at_the_end() {
        let parts: [&[u8]; 4] = [b"ab", b"", b"cde", b"f"];
        let c = Chain::new(&parts);
        assert_eq!((c.len(), c.last()), (6, Some(b'f')));
        assert_eq!(c.byte(2), Some(b'c'));
        assert_eq!(c.byte(6), None);
        assert_eq!(c.be_u16(1), Some(u16::from_be_bytes(*b"bc")));
        assert_eq!(c.be_u32(2), Some(u32::from_be_bytes(*b"cdef")));
        assert_eq!(c.be_u32(3), None);
        assert_eq!(c.find(0, b'e'), Some(4));
        assert_eq!(c.find(5, b'e'), None);
        let got: Vec<&[u8]> = c.slices_from(3).collect();
        assert_eq!(got, [&b"de"[..], b"f"]);
        assert_eq!(Chain::new(&[]).last(), None);
    }

    #[test]
    fn copy_until_reports_the_stop_or_a_full_buffer() {
        let parts: [&[u8]; 3] = [b"PORT 1,", b"2\r", b"\nX"];
        let c = Chain::new(&parts);
        let mut out = [0; 16];
        let r = c.copy_until(5, b'\n', &mut out);
        assert_eq!(
            r,
            Copied {
                len: 4,
                stop: Some(9)
            }
        );
        assert_eq!(&out[..4], b"1,2\r");
        let mut small = [0; 3];
        assert_eq!(
            c.copy_until(5, b'\n', &mut small),
            Copied { len: 3, stop: None }
        );
        // The stop byte right after a full buffer is still found.
        let mut exact = [0; 4];
        assert_eq!(c.copy_until(5, b'\n', &mut exact).stop, Some(9));
        assert_eq!(
            c.copy_until(10, b'\n', &mut out),
            Copied { len: 1, stop: None }
        );
    }
}
