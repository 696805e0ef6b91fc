//! Packet buffers: contiguous bytes with headroom, and chains of segments.
//!
//! Headroom lets encapsulation (an ESP header) or NAT growth (an FTP PORT
//! rewrite) prepend bytes without copying the packet. A [`SegChain`] holds a
//! datagram that arrived in pieces (fragments, offload super-packets) so that
//! the ruleset and helpers can look at it without linearising it.

/// Headroom reserved by [`PacketBuf::from_slice`]: room for an outer IPv6
/// header plus ESP header and IV.
pub const DEFAULT_HEADROOM: usize = 64;

/// One packet's bytes, with spare room in front of them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PacketBuf {
    storage: Vec<u8>,
    start: usize,
}

impl PacketBuf {
    /// Copies `bytes` into a new buffer with [`DEFAULT_HEADROOM`].
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self::with_headroom(DEFAULT_HEADROOM, bytes)
    }

    /// Copies `bytes` into a new buffer with `headroom` spare bytes in front.
    pub fn with_headroom(headroom: usize, bytes: &[u8]) -> Self {
        let mut storage = Vec::with_capacity(headroom + bytes.len());
        storage.resize(headroom, 0);
        storage.extend_from_slice(bytes);
        PacketBuf {
            storage,
            start: headroom,
        }
    }

    /// Takes ownership of `v` without copying; there is no headroom.
    pub fn from_vec(v: Vec<u8>) -> Self {
        PacketBuf {
            storage: v,
            start: 0,
        }
    }

    /// The packet bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &self.storage[self.start..]
    }

    /// The packet bytes, writable.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..]
    }

    /// Bytes the buffer takes (headroom and spare room included), for
    /// memory budgets.
    pub fn capacity(&self) -> usize {
        self.storage.capacity()
    }

    /// Length of the packet (headroom excluded).
    #[inline]
    pub fn len(&self) -> usize {
        self.storage.len() - self.start
    }

    /// Whether the packet has no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Spare bytes in front of the packet.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// Grows the packet by `n` bytes at the front and returns them (zeroed if
    /// they were not headroom before). Reallocates only when the headroom is
    /// too small.
    pub fn prepend(&mut self, n: usize) -> &mut [u8] {
        if n > self.start {
            let extra = n - self.start + DEFAULT_HEADROOM;
            let mut storage = Vec::with_capacity(self.storage.len() + extra);
            storage.resize(extra, 0);
            storage.extend_from_slice(&self.storage);
            self.storage = storage;
            self.start += extra;
        }
        self.start -= n;
        let s = self.start;
        let front = &mut self.storage[s..s + n];
        front.fill(0);
        front
    }

    /// Removes `n` bytes from the front (they become headroom). Clamped to the length.
    pub fn trim_front(&mut self, n: usize) {
        self.start += n.min(self.len());
    }

    /// Shortens the packet to `len` bytes; no-op if already shorter.
    pub fn truncate(&mut self, len: usize) {
        self.storage.truncate(self.start + len);
    }

    /// Appends bytes at the end.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.storage.extend_from_slice(bytes);
    }

    /// Replaces `range` (relative to the packet start) with `with`, growing or
    /// shrinking the packet (used by helpers that rewrite payload text).
    pub fn splice(&mut self, range: core::ops::Range<usize>, with: &[u8]) -> bool {
        if range.start > range.end || range.end > self.len() {
            return false;
        }
        let s = self.start;
        self.storage
            .splice(s + range.start..s + range.end, with.iter().copied());
        true
    }

    /// The packet bytes as a vector (copies only if there is headroom).
    pub fn into_vec(mut self) -> Vec<u8> {
        if self.start == 0 {
            self.storage
        } else {
            self.storage.drain(..self.start);
            self.storage
        }
    }
}

impl core::fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "PacketBuf({} bytes, headroom {})",
            self.len(),
            self.start
        )
    }
}

/// A datagram held as a chain of segments, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegChain {
    segs: Vec<PacketBuf>,
    len: usize,
}

impl SegChain {
    /// An empty chain.
    pub fn new() -> Self {
        SegChain::default()
    }

    /// Appends a segment.
    pub fn push(&mut self, seg: PacketBuf) {
        self.len += seg.len();
        self.segs.push(seg);
    }

    /// Total length of all segments.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the chain has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The segments' bytes, in order (what the search engine consumes).
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.segs.iter().map(PacketBuf::as_slice)
    }

    /// The segments themselves.
    pub fn segments(&self) -> &[PacketBuf] {
        &self.segs
    }

    /// Copies `out.len()` bytes starting at `offset` into `out`; false if the
    /// chain is too short. Lets parsers read a header that straddles segments.
    pub fn copy_to(&self, mut offset: usize, out: &mut [u8]) -> bool {
        if offset
            .checked_add(out.len())
            .is_none_or(|end| end > self.len)
        {
            return false;
        }
        let mut written = 0;
        for seg in self.chunks() {
            if written == out.len() {
                break;
            }
            if offset >= seg.len() {
                offset -= seg.len();
                continue;
            }
            let take = (seg.len() - offset).min(out.len() - written);
            out[written..written + take].copy_from_slice(&seg[offset..offset + take]);
            written += take;
            offset = 0;
        }
        written == out.len()
    }

    /// One contiguous copy of the whole chain.
    pub fn linearize(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len);
        for c in self.chunks() {
            v.extend_from_slice(c);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_uses_headroom_then_grows() {
        let mut b = PacketBuf::with_headroom(4, b"abc");
        b.prepend(2).copy_from_slice(b"xy");
        assert_eq!(b.as_slice(), b"xyabc");
        assert_eq!(b.headroom(), 2);
        b.prepend(10).copy_from_slice(b"0123456789");
        assert_eq!(b.as_slice(), b"0123456789xyabc");
        b.trim_front(12);
        assert_eq!(b.as_slice(), b"abc");
        b.trim_front(100);
        assert!(b.is_empty());
    }

    #[test]
    fn splice_grows_and_rejects_bad_ranges() {
        let mut b = PacketBuf::from_slice(b"PORT 1,2\r\n");
        assert!(b.splice(5..8, b"10,20,30"));
        assert_eq!(b.as_slice(), b"PORT 10,20,30\r\n");
        assert!(!b.splice(3..100, b""));
        assert_eq!(b.clone().into_vec(), b"PORT 10,20,30\r\n".to_vec());
    }

    #[test]
    fn chain_copy_straddles_segments() {
        let mut c = SegChain::new();
        c.push(PacketBuf::from_slice(b"ab"));
        c.push(PacketBuf::from_slice(b""));
        c.push(PacketBuf::from_slice(b"cdef"));
        let mut out = [0u8; 3];
        assert!(c.copy_to(1, &mut out));
        assert_eq!(&out, b"bcd");
        assert!(!c.copy_to(4, &mut out));
        assert!(!c.copy_to(usize::MAX, &mut out));
        assert_eq!(c.linearize(), b"abcdef");
        assert_eq!(c.len(), 6);
    }
}
