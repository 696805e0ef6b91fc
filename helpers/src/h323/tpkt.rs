//! TPKT framing (RFC 1006) of a TCP stream, per direction, for Q.931 and H.245: finds the
//! complete messages in each segment, several in one segment or one across several.
//!
//! Each direction remembers the sequence number of the next byte, at a message boundary or
//! inside a message it has started: the bytes of that message so far (at most
//! [`MAX_BUFFERED`], the rest is then skipped by its length and stays unread), or how many
//! bytes of an unread message are still to come. A segment that continues the stream is read
//! from where the last one stopped; one that resends bytes already seen is read again only
//! if it starts where a message started (a retransmission; under NAT its addresses must be
//! rewritten again), and its new bytes, if any, continue the stream; after a hole (a segment
//! the helper never saw) the stream is lost until a segment starts with a TPKT header again.
//! The first segment of a direction must start with one.

use crate::chain::Chain;

/// Most bytes of a message split across segments that are kept to read it whole. Linux reads
/// no split TPKT but a lone header; 16 KiB holds any Setup with a long fastStart list.
pub const MAX_BUFFERED: usize = 16 * 1024;

/// How many recent message starts each direction remembers for retransmissions.
const RECENT: usize = 8;

/// Per-direction state.
#[derive(Debug, Default, Clone)]
pub struct TpktDir {
    /// The sequence number of the next byte expected; None: not in step with the stream.
    next: Option<u32>,
    /// Where the next byte falls.
    pending: Pending,
    /// Sequence numbers where recent messages started.
    recent: [u32; RECENT],
    recent_len: usize,
    recent_at: usize,
}

#[derive(Debug, Default, Clone)]
enum Pending {
    /// At a message boundary.
    #[default]
    Boundary,
    /// Inside a message: its bytes so far (header included).
    Buffer(Vec<u8>),
    /// Inside a message too long to keep: bytes still to skip.
    Skip(usize),
}

/// One complete message for the walker: bytes `start..end` of `parts` (header included).
/// The first `prefix` bytes of the chain are from earlier segments; chain byte `p` ≥
/// `prefix` is byte `p - prefix + skip` of this segment's payload.
#[derive(Debug)]
pub struct Frame<'a, 'b> {
    /// The chain: earlier bytes of a split message, then this segment's payload.
    pub parts: &'b [&'a [u8]],
    /// First byte of the message (its TPKT header).
    pub start: usize,
    /// First byte past it.
    pub end: usize,
    /// Bytes of the chain from earlier segments.
    pub prefix: usize,
    /// Payload bytes of this segment before the chain's part of it (already seen bytes of a
    /// segment that also carries new ones).
    pub skip: usize,
}

impl Frame<'_, '_> {
    /// The offset in this segment's payload of chain byte `p`, None if it came earlier.
    pub fn offset(&self, p: usize) -> Option<usize> {
        (p >= self.prefix).then(|| p - self.prefix + self.skip)
    }
}

/// What happened to a segment besides its messages, for the helper's events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    /// A segment not in step (a hole, or the first one not at a header): not read.
    Unsynced,
    /// Bytes where a TPKT header should be that are not one: the stream is lost.
    BadHeader,
    /// A message longer than [`MAX_BUFFERED`] split across segments: skipped, unread.
    TooLong(usize),
}

fn is_header_start(c: &Chain<'_>, at: usize) -> bool {
    c.byte(at) == Some(3) && c.byte(at + 1).is_none_or(|b| b == 0)
}

impl TpktDir {
    fn remember(&mut self, seq: u32) {
        if self.recent[..self.recent_len].contains(&seq) {
            return;
        }
        self.recent[self.recent_at] = seq;
        self.recent_at = (self.recent_at + 1) % RECENT;
        self.recent_len = (self.recent_len + 1).min(RECENT);
    }

    fn is_recent(&self, seq: u32) -> bool {
        self.recent[..self.recent_len].contains(&seq)
    }

    /// Feeds one segment (`seq`: its first byte's sequence number), calling `each` for every
    /// complete message in it and returning what else happened.
    pub fn feed(
        &mut self,
        seq: u32,
        payload: &[&[u8]],
        mut each: impl FnMut(&Frame<'_, '_>),
    ) -> Option<StreamEvent> {
        let whole = Chain::new(payload);
        let n = whole.len();
        if n == 0 {
            return None;
        }
        let skip = match self.next {
            Some(next) if next == seq => 0,
            Some(next) if (seq.wrapping_sub(next) as i32) < 0 => {
                let seen = next.wrapping_sub(seq) as usize;
                if self.is_recent(seq) && matches!(self.pending, Pending::Boundary) {
                    // Resent from a message start: read it all again; its new bytes, if
                    // any, continue the stream.
                    let fresh = seen < n;
                    let mut scratch = TpktDir::default();
                    let target = if fresh { &mut *self } else { &mut scratch };
                    return target.scan(seq, payload, 0, Vec::new(), &mut each);
                }
                if seen >= n {
                    return None; // a resent middle of the stream: nothing new
                }
                seen
            }
            Some(_) => {
                // A hole: what was pending is lost.
                self.pending = Pending::Boundary;
                if !is_header_start(&whole, 0) {
                    self.next = None;
                    return Some(StreamEvent::Unsynced);
                }
                0
            }
            None => {
                if !is_header_start(&whole, 0) {
                    return Some(StreamEvent::Unsynced);
                }
                self.pending = Pending::Boundary;
                0
            }
        };
        let prefix = match std::mem::take(&mut self.pending) {
            Pending::Boundary => Vec::new(),
            Pending::Buffer(b) => b,
            Pending::Skip(k) => {
                let here = n - skip;
                if k >= here {
                    self.pending = Pending::Skip(k - here);
                    self.next = Some(seq.wrapping_add(n as u32));
                    return None;
                }
                return self.scan(seq, payload, skip + k, Vec::new(), &mut each);
            }
        };
        self.scan(seq, payload, skip, prefix, &mut each)
    }

    /// Reads the messages of `prefix` followed by the payload from byte `skip` on, leaving
    /// the state after the segment.
    fn scan(
        &mut self,
        seq: u32,
        payload: &[&[u8]],
        skip: usize,
        prefix: Vec<u8>,
        each: &mut impl FnMut(&Frame<'_, '_>),
    ) -> Option<StreamEvent> {
        let whole = Chain::new(payload);
        let n = whole.len();
        self.next = Some(seq.wrapping_add(n as u32));
        let mut parts: Vec<&[u8]> = Vec::with_capacity(payload.len() + 1);
        parts.push(&prefix);
        parts.extend(whole.slices_from(skip));
        let c = Chain::new(&parts);
        let plen = prefix.len();
        let mut pos = 0;
        loop {
            let left = c.len() - pos;
            if left == 0 {
                self.pending = Pending::Boundary;
                return None;
            }
            if pos >= plen {
                self.remember(seq.wrapping_add((pos - plen + skip) as u32));
            }
            if !is_header_start(&c, pos) {
                self.lose();
                return Some(StreamEvent::BadHeader);
            }
            if left < 4 {
                self.pending = Pending::Buffer(collect(&c, pos));
                return None;
            }
            let len = usize::from(c.be_u16(pos + 2).unwrap_or(0));
            if len < 4 {
                self.lose();
                return Some(StreamEvent::BadHeader);
            }
            if len <= left {
                each(&Frame {
                    parts: &parts,
                    start: pos,
                    end: pos + len,
                    prefix: plen,
                    skip,
                });
                pos += len;
                continue;
            }
            if len > MAX_BUFFERED {
                self.pending = Pending::Skip(len - left);
                return Some(StreamEvent::TooLong(len));
            }
            self.pending = Pending::Buffer(collect(&c, pos));
            return None;
        }
    }

    fn lose(&mut self) {
        self.next = None;
        self.pending = Pending::Boundary;
    }
}

/// The chain's bytes from `at` on, copied (the start of a message split across segments).
fn collect(c: &Chain<'_>, at: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(c.len() - at);
    for s in c.slices_from(at) {
        v.extend_from_slice(s);
    }
    v
}
