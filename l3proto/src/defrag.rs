//! Virtual fragment reassembly ("shadow clone"), one design for IPv4 and IPv6.
//!
//! Fragments are held per datagram until it is complete; then the caller gets
//! a reassembled *clone* (what conntrack, the ruleset and helpers look at)
//! together with the *original fragments* in arrival order, which it forwards
//! unchanged except for TTL/hop limit and NAT. Nothing here rewrites the
//! originals, so IPv6 fragments keep their Fragment header, identification,
//! offsets, M bits, Next Header values and the headers before the Fragment
//! header; IPv4 fragments keep ID, offsets, DF and their ECN field.
//!
//! Rules enforced (each drop is counted by the [`DefragDrop`] returned, and
//! held fragments dropped with their datagram by [`Defrag::take_dropped`]):
//! - RFC 8200 §4.5: a datagram is keyed by (source, destination,
//!   identification) — for IPv4 also the protocol (RFC 791); see [`key_of`].
//!   60 s from the first fragment to completion (configurable), decided by
//!   that deadline whenever the datagram is next looked at, not by a sweep;
//!   a non-last fragment whose data is not a multiple of 8 bytes, or one
//!   reaching past 65,535 bytes, is discarded; only the offset-0 fragment's
//!   Next Header and the headers before its Fragment header are used for the
//!   clone (other fragments' may differ).
//! - RFC 5722: any overlap discards the whole datagram, including fragments
//!   that arrive later for it (until its timer runs out); an exact duplicate
//!   of a held fragment is dropped alone.
//! - RFC 6946: an atomic fragment (offset 0, M=0) never reaches this module
//!   ([`Frag::None`] from the parser): it is a datagram of its own.
//! - RFC 7112: an IPv6 first fragment must hold the whole header chain up
//!   to and including the upper-layer header.
//! - RFC 1858 / RFC 3128: an IPv4 first fragment too short for the
//!   transport header, and a TCP fragment at offset 8 (FO = 1), are dropped.
//! - RFC 3168 §5.3: a datagram whose fragments mix Not-ECT with ECT or CE is
//!   dropped; CE in any fragment makes the clone CE.
//! - Resources: a memory budget with high/low watermarks, a maximum number
//!   of datagrams in reassembly, of fragments per datagram (by default the
//!   most a legal datagram can have), and of datagrams per source address.
//!   A limit that is reached evicts rather than refuses, so that a flood of
//!   datagrams that never complete cannot lock new ones out until it times
//!   out: a source at its own limit gives up its oldest datagram; otherwise
//!   the victim is the oldest datagram of the source holding the most (so
//!   a flood from many addresses, one datagram each, evicts the oldest of
//!   all, as Linux did above its high threshold). Memory counts each
//!   fragment's buffer and bookkeeping, so it stays bounded whatever the
//!   fragment sizes.
//!
//! ```
//! use conntrack::{Instant, PacketBuf};
//! use l3proto::defrag::{Defrag, DefragConfig, Outcome};
//!
//! /// IPv4 fragment of a UDP datagram 192.0.2.1 -> 198.51.100.1, ID 7.
//! fn frag(off: u16, more: bool, data: &[u8]) -> PacketBuf {
//!     let mut p = vec![0x45, 0, 0, 0, 0, 7, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 198, 51, 100, 1];
//!     p[2..4].copy_from_slice(&((20 + data.len()) as u16).to_be_bytes());
//!     let f = off / 8 | if more { 0x2000 } else { 0 };
//!     p[6..8].copy_from_slice(&f.to_be_bytes());
//!     let ck = wire::checksum::data(&p);
//!     p[10..12].copy_from_slice(&ck.to_be_bytes());
//!     p.extend_from_slice(data);
//!     PacketBuf::from_vec(p)
//! }
//! let mut d = Defrag::new(DefragConfig::default());
//! let now = Instant::from_secs(1);
//! let udp = [0x30, 0x39, 0, 53, 0, 24, 0, 0, b'a', b'b', b'c', b'd', b'e', b'f', b'g', b'h'];
//! assert!(matches!(d.push(now, frag(16, false, b"tail0123"), 0), Outcome::Held));
//! match d.push(now, frag(0, true, &udp), 0) {
//!     Outcome::Complete(dg) => {
//!         assert_eq!(dg.fragments.len(), 2);
//!         assert_eq!(dg.clone.len(), 20 + 24);
//!         assert_eq!(&dg.clone.as_slice()[20 + 16..], b"tail0123");
//!     }
//!     _ => panic!("complete"),
//! }
//! ```

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::Duration;
use wire::buf::PacketBuf;
use wire::time::Instant;
use wire::{checksum, walk_ext_headers, ExtHeaderWalk, Terminal};

/// The most fragments a legal datagram can have: 65,535 bytes of
/// fragmentable part (IPv6) in 8-byte pieces. IPv4's 65,515 need 8,190.
pub const MAX_LEGAL_FRAGMENTS: usize = 8192;

/// Limits and behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefragConfig {
    /// Time from a datagram's first fragment to its completion (RFC 8200: 60 s).
    pub timeout: Duration,
    /// Bytes held (fragments and their bookkeeping) above which datagrams are evicted...
    pub mem_high: usize,
    /// ...until the total is under this.
    pub mem_low: usize,
    /// Datagrams in reassembly at once; a new one beyond evicts another.
    pub max_datagrams: usize,
    /// Fragments one datagram may have.
    pub max_fragments: usize,
    /// Datagrams in reassembly per source address; a new one beyond evicts
    /// that source's oldest.
    pub per_source: usize,
}

impl Default for DefragConfig {
    fn default() -> Self {
        DefragConfig {
            timeout: Duration::from_secs(60),
            mem_high: 4 << 20,
            mem_low: 3 << 20,
            max_datagrams: 1024,
            // As Linux, no count below what a legal datagram may need: the
            // memory budget is what bounds a datagram of tiny fragments.
            max_fragments: MAX_LEGAL_FRAGMENTS,
            per_source: 64,
        }
    }
}

conntrack::reasons! {
    /// Why reassembly dropped a fragment, or the held fragments of its datagram
    /// ([`Defrag::take_dropped`]). The engine counts them as its own drops.
    pub enum DefragDrop {
        /// A header field or the data lies beyond the packet.
        Truncated => "frag: truncated",
        /// The IPv6 extension headers do not parse.
        BadExtHeaders => "frag: bad extension headers",
        /// An IPv6 packet sent here without a Fragment header.
        NoFragHeader => "frag: no fragment header",
        /// An IPv6 first fragment without the whole header chain (RFC 7112).
        FirstWithoutUpperLayer => "frag: first fragment without upper-layer header (RFC 7112)",
        /// Neither IPv4 nor IPv6.
        NotIp => "frag: not an IP packet",
        /// A non-last fragment whose data is not a multiple of 8 bytes.
        NotMultipleOf8 => "frag: length not a multiple of 8",
        /// A non-last fragment without data.
        EmptyNonLast => "frag: empty non-last fragment",
        /// The fragment reaches past 65,535 bytes (RFC 8200 §4.5).
        TooBig => "frag: datagram over 65535 bytes",
        /// An IPv4 first fragment too short for the transport header (RFC 1858).
        FirstTooShort => "frag: first fragment too short (RFC 1858)",
        /// A TCP fragment at offset 8, which could overwrite the flags (RFC 3128).
        TcpAtOffset8 => "frag: TCP fragment at offset 8 (RFC 3128)",
        /// The datagram's queue vanished between two steps (never expected).
        LostQueue => "frag: lost queue",
        /// An exact duplicate of a held fragment (dropped alone).
        Duplicate => "frag: duplicate",
        /// It overlaps a held fragment: the datagram is discarded (RFC 5722).
        Overlap => "frag: overlap (RFC 5722)",
        /// A last fragment that disagrees with the datagram's length.
        InconsistentLast => "frag: inconsistent last fragment",
        /// A fragment beyond the end the last fragment set.
        BeyondLast => "frag: fragment beyond the last one",
        /// More fragments than `max_fragments` in one datagram.
        TooManyFragments => "frag: too many fragments in a datagram",
        /// A later fragment of a datagram discarded after an overlap.
        AfterOverlap => "frag: datagram discarded after an overlap",
        /// A later fragment of a datagram discarded after an inconsistent length.
        AfterBadLength => "frag: datagram discarded after an inconsistent length",
        /// A later fragment of a datagram discarded after too many fragments.
        AfterTooMany => "frag: datagram discarded after too many fragments",
        /// The datagram's fragments mix Not-ECT with ECT or CE (RFC 3168 §5.3).
        EcnMix => "frag: Not-ECT mixed with ECT or CE (RFC 3168)",
        /// The complete datagram could not be assembled.
        CannotReassemble => "frag: cannot reassemble",
        /// Held fragments of a datagram evicted to make room.
        Evicted => "frag: evicted",
        /// The fragment whose datagram was evicted because memory stayed above the mark.
        EvictedMemory => "frag: evicted (memory)",
        /// A datagram whose time ran out before it was complete ([`Defrag::expire`]).
        Timeout => "frag: reassembly timeout",
    }
}

/// What became of a fragment.
#[derive(Debug)]
pub enum Outcome {
    /// Held until the datagram is complete.
    Held,
    /// The datagram is complete.
    Complete(Datagram),
    /// Dropped (with the held fragments of its datagram when the reason
    /// says so); the reason is for the drop counters.
    Dropped(DefragDrop),
}

/// A reassembled datagram.
#[derive(Debug)]
pub struct Datagram {
    /// The whole datagram as one packet without fragmentation: IPv4 with
    /// MF and offset cleared, IPv6 without its Fragment header; CE if any
    /// fragment was CE (RFC 3168 §5.3).
    pub clone: PacketBuf,
    /// The original fragments, in arrival order.
    pub fragments: Vec<PacketBuf>,
    /// Index in `fragments` of the offset-0 fragment.
    pub first: usize,
}

/// A datagram given up because its timer ran out.
#[derive(Debug)]
pub struct Expired {
    /// Its offset-0 fragment and the interface it came from, when that
    /// arrived (RFC 8200: only then may an ICMPv6 Time Exceeded, code 1, be
    /// sent).
    pub first: Option<(PacketBuf, usize)>,
}

/// What identifies a datagram: every one of its fragments carries these
/// (RFC 8200 §4.5: source, destination, identification; RFC 791 adds the
/// protocol for IPv4). Nothing else may decide where a fragment goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IPv4 protocol; 0 for IPv6 (whose fragments' Next Headers may differ).
    pub proto: u8,
    /// Identification (16 bits for IPv4).
    pub id: u32,
}

/// The key of the datagram a fragment belongs to, read as reassembly reads
/// it; `None` if `p` is not a readable fragment. Whatever sends a fragment
/// to a reassembly state (the shards' steering) must use this, so that all
/// fragments of a datagram meet.
pub fn key_of(p: &[u8]) -> Option<Key> {
    match p.first().map(|b| b >> 4) {
        Some(4) => key_v4(p),
        Some(6) => {
            let (walk, _) = walk_v6(p).ok()?;
            key_v6(p, walk.frag?.ident)
        }
        _ => None,
    }
}

fn key_v4(p: &[u8]) -> Option<Key> {
    let a: [u8; 4] = p.get(12..16)?.try_into().ok()?;
    let b: [u8; 4] = p.get(16..20)?.try_into().ok()?;
    Some(Key {
        src: IpAddr::from(a),
        dst: IpAddr::from(b),
        proto: *p.get(9)?,
        id: u32::from(be16(p, 4)?),
    })
}

fn key_v6(p: &[u8], id: u32) -> Option<Key> {
    let a: [u8; 16] = p.get(8..24)?.try_into().ok()?;
    let b: [u8; 16] = p.get(24..40)?.try_into().ok()?;
    Some(Key {
        src: IpAddr::from(a),
        dst: IpAddr::from(b),
        proto: 0,
        id,
    })
}

/// The extension-header walk of an IPv6 packet, and its payload length.
fn walk_v6(p: &[u8]) -> Result<(ExtHeaderWalk, usize), DefragDrop> {
    let plen = usize::from(be16(p, 4).ok_or(DefragDrop::Truncated)?);
    let payload = p.get(40..40 + plen).ok_or(DefragDrop::Truncated)?;
    let nh = *p.get(6).ok_or(DefragDrop::Truncated)?;
    let walk = walk_ext_headers(nh, payload).map_err(|_| DefragDrop::BadExtHeaders)?;
    Ok((walk, plen))
}

/// When a datagram was started and in which order: eviction and expiry
/// both go by it (the timeout is the same for all).
type Age = (Instant, u64);

/// One fragment's place in its datagram.
#[derive(Debug)]
struct Piece {
    pkt: PacketBuf,
    /// Interface it arrived on (for a Time Exceeded about it).
    ingress: usize,
    /// Offset of its data in the datagram's fragmentable part.
    off: usize,
    /// Where its data starts in `pkt`.
    data_at: usize,
    len: usize,
}

/// Memory a held fragment costs besides its buffer: the piece, its index
/// entry with the B-tree's slack, and an allocation header. Counting it
/// keeps the budget true for datagrams of many tiny fragments.
const PIECE_OVERHEAD: usize = std::mem::size_of::<Piece>() + 64;

fn charge(pkt: &PacketBuf) -> usize {
    pkt.capacity() + PIECE_OVERHEAD
}

/// ECN codepoints seen, one bit each (RFC 3168: 0 Not-ECT, 1 ECT(1),
/// 2 ECT(0), 3 CE).
const NOT_ECT: u8 = 1 << 0;
const CE: u8 = 1 << 3;

/// The ages of one source's datagrams, oldest first. Most sources have one
/// datagram in reassembly at a time: that one is held without an allocation.
#[derive(Debug)]
enum Held {
    One(Age),
    Many(Vec<Age>),
}

impl Held {
    fn ages(&self) -> &[Age] {
        match self {
            Held::One(a) => std::slice::from_ref(a),
            Held::Many(v) => v,
        }
    }

    fn add(&mut self, age: Age) {
        if let Held::One(a) = *self {
            *self = Held::Many(vec![a]);
        }
        if let Held::Many(v) = self {
            // Ages grow within one clock; a clock read on another thread may
            // be a little behind, so keep the order by inserting in place.
            let at = v.partition_point(|a| *a < age);
            v.insert(at, age);
        }
    }

    /// Removes `age`; false when nothing is left.
    fn take(&mut self, age: Age) -> bool {
        match self {
            Held::One(_) => false,
            Held::Many(v) => {
                if let Ok(at) = v.binary_search(&age) {
                    v.remove(at);
                }
                match v.as_slice() {
                    [] => false,
                    [a] => {
                        *self = Held::One(*a);
                        true
                    }
                    _ => true,
                }
            }
        }
    }

    /// Where the source stands for eviction, when it holds more than one:
    /// most datagrams first, then oldest first (see `Defrag::ranking`).
    fn rank(&self, src: IpAddr) -> Option<(usize, Reverse<Age>, IpAddr)> {
        match self {
            Held::One(_) => None,
            Held::Many(v) => Some((v.len(), Reverse(*v.first()?), src)),
        }
    }
}

/// Pieces a queue holds before it builds an offset index: below this a
/// scan is cheaper than a B-tree's allocation.
const SCAN_PIECES: usize = 16;

#[derive(Debug)]
struct Queue {
    age: Age,
    /// In arrival order.
    pieces: Vec<Piece>,
    /// Offset -> (end, index in `pieces`), once there are more than
    /// [`SCAN_PIECES`]. Held pieces never overlap, so the one starting last
    /// before a new piece's end is the only one that can overlap it: one
    /// lookup, however many fragments.
    index: Option<BTreeMap<usize, (usize, usize)>>,
    /// Index in `pieces` of the offset-0 fragment, once it arrived.
    first: Option<usize>,
    /// End of the held piece that reaches furthest.
    held_end: usize,
    /// Length of the fragmentable part, once the last fragment arrived.
    total: Option<usize>,
    /// Bytes of data held (no overlaps are held, so this is coverage).
    have: usize,
    mem: usize,
    /// ECN codepoints of the fragments held.
    ecn: u8,
    /// The datagram was discarded: every fragment of it is dropped for this
    /// reason until the timer runs out (RFC 5722 for overlaps).
    discarded: Option<DefragDrop>,
}

/// The reassembly state.
#[derive(Debug)]
pub struct Defrag {
    cfg: DefragConfig,
    queues: HashMap<Key, Queue>,
    /// Every datagram by age: the first is the next to expire.
    ages: BTreeMap<Age, Key>,
    /// Ages of each source's datagrams.
    sources: HashMap<IpAddr, Held>,
    /// Sources holding more than one datagram, in eviction order: the last
    /// holds the most, and of those the oldest. When it is empty every
    /// source holds one, and `ages` gives the order.
    ranking: BTreeSet<(usize, Reverse<Age>, IpAddr)>,
    /// Datagrams whose deadline passed, until [`Defrag::expire`] takes them.
    expired: Vec<Expired>,
    /// Held fragments dropped with their datagram, by reason, until
    /// [`Defrag::take_dropped`] takes them.
    dropped: Vec<(DefragDrop, usize)>,
    mem: usize,
    serial: u64,
}

/// Facts about one fragment, read before it is queued.
struct Parsed {
    key: Key,
    off: usize,
    more: bool,
    data_at: usize,
    len: usize,
    /// ECN codepoint (0..=3).
    ecn: u8,
}

/// Smallest transport header the ruleset and conntrack need (RFC 7112's
/// "upper-layer header"; RFC 3128's "transport header").
fn min_l4(proto: u8) -> usize {
    match proto {
        6 => 20,
        17 | 136 => 8,
        1 | 58 => 8,
        132 => 12,
        33 => 12,
        _ => 0,
    }
}

fn be16(p: &[u8], at: usize) -> Option<u16> {
    p.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]))
}

/// Reads a fragment: key, offset, M flag and where its data is. Errors are
/// drop reasons. The caller has validated the header (checksum, lengths).
fn parse(p: &[u8]) -> Result<Parsed, DefragDrop> {
    match p.first().map(|b| b >> 4) {
        Some(4) => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            let total = usize::from(be16(p, 2).ok_or(DefragDrop::Truncated)?);
            let flags = be16(p, 6).ok_or(DefragDrop::Truncated)?;
            if total < ihl || p.len() < total {
                return Err(DefragDrop::Truncated);
            }
            Ok(Parsed {
                key: key_v4(p).ok_or(DefragDrop::Truncated)?,
                off: usize::from(flags & 0x1fff) * 8,
                more: flags & 0x2000 != 0,
                data_at: ihl,
                len: total - ihl,
                ecn: p[1] & 3,
            })
        }
        Some(6) => {
            let (walk, plen) = walk_v6(p)?;
            let f = walk.frag.ok_or(DefragDrop::NoFragHeader)?;
            let data_at = 40 + f.header_offset + 8;
            if f.offset == 0 {
                // RFC 7112: the first fragment carries the whole header
                // chain, upper-layer header included.
                let whole = matches!(
                    walk.terminated,
                    Terminal::UpperLayer | Terminal::Esp | Terminal::NoNextHeader
                );
                let l4_room = plen.saturating_sub(walk.l4_offset);
                let need = if walk.terminated == Terminal::UpperLayer {
                    min_l4(walk.upper_proto)
                } else {
                    0
                };
                if !whole || l4_room < need {
                    return Err(DefragDrop::FirstWithoutUpperLayer);
                }
            }
            Ok(Parsed {
                key: key_v6(p, f.ident).ok_or(DefragDrop::Truncated)?,
                off: usize::from(f.offset),
                more: f.more,
                data_at,
                len: (40 + plen).saturating_sub(data_at),
                ecn: (p[1] >> 4) & 3,
            })
        }
        _ => Err(DefragDrop::NotIp),
    }
}

impl Defrag {
    /// An empty reassembly state.
    pub fn new(cfg: DefragConfig) -> Defrag {
        Defrag {
            cfg,
            queues: HashMap::new(),
            ages: BTreeMap::new(),
            sources: HashMap::new(),
            ranking: BTreeSet::new(),
            expired: Vec::new(),
            dropped: Vec::new(),
            mem: 0,
            serial: 0,
        }
    }

    /// Bytes held: the fragments' buffers and their bookkeeping.
    pub fn memory(&self) -> usize {
        self.mem
    }

    /// Datagrams in reassembly (discarded ones included).
    pub fn len(&self) -> usize {
        self.queues.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// When the oldest datagram's timer runs out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.ages
            .first_key_value()
            .map(|((born, _), _)| *born + self.cfg.timeout)
    }

    /// Whether datagrams found past their deadline wait for [`Defrag::expire`].
    pub fn has_expired(&self) -> bool {
        !self.expired.is_empty()
    }

    /// Hands over the held fragments dropped with their datagram (evicted,
    /// or discarded by the fragment that the returned reason was about),
    /// as (reason, count), and forgets them.
    pub fn take_dropped(&mut self, mut count: impl FnMut(DefragDrop, usize)) {
        for (why, n) in self.dropped.drain(..) {
            count(why, n);
        }
    }

    /// Counts `n` held fragments dropped for `why`.
    fn lost(&mut self, why: DefragDrop, n: usize) {
        if n > 0 {
            self.dropped.push((why, n));
        }
    }

    fn insert(&mut self, key: Key, now: Instant) {
        self.serial += 1;
        let age = (now, self.serial);
        self.queues.insert(
            key,
            Queue {
                age,
                pieces: Vec::new(),
                index: None,
                first: None,
                held_end: 0,
                total: None,
                have: 0,
                mem: 0,
                ecn: 0,
                discarded: None,
            },
        );
        self.ages.insert(age, key);
        match self.sources.entry(key.src) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Held::One(age));
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                let held = o.get_mut();
                if let Some(r) = held.rank(key.src) {
                    self.ranking.remove(&r);
                }
                held.add(age);
                if let Some(r) = held.rank(key.src) {
                    self.ranking.insert(r);
                }
            }
        }
    }

    fn remove(&mut self, key: &Key) -> Option<Queue> {
        let q = self.queues.remove(key)?;
        self.mem -= q.mem;
        self.ages.remove(&q.age);
        if let Some(held) = self.sources.get_mut(&key.src) {
            if let Some(r) = held.rank(key.src) {
                self.ranking.remove(&r);
            }
            if held.take(q.age) {
                if let Some(r) = held.rank(key.src) {
                    self.ranking.insert(r);
                }
            } else {
                self.sources.remove(&key.src);
            }
        }
        Some(q)
    }

    /// Removes a datagram to make room; its held fragments are counted.
    fn evict(&mut self, key: &Key) {
        if let Some(q) = self.remove(key) {
            self.lost(DefragDrop::Evicted, q.pieces.len());
        }
    }

    /// The datagram to evict: the oldest of the source holding the most
    /// (of those, the one whose oldest is oldest), but not `skip`.
    fn victim(&self, skip: Option<&Key>) -> Option<Key> {
        let not_skip = |k: &&Key| Some(*k) != skip;
        if let Some((_, _, src)) = self.ranking.last() {
            // It holds two or more, so one of them is not `skip`.
            let ages = self.sources.get(src).map_or(&[][..], Held::ages);
            return ages
                .iter()
                .filter_map(|a| self.ages.get(a))
                .find(not_skip)
                .copied();
        }
        self.ages.values().find(not_skip).copied()
    }

    /// Drops a datagram's held fragments (counted as `why`) and remembers
    /// it, so that its later fragments are dropped as `later`.
    fn discard(&mut self, key: &Key, why: DefragDrop, later: DefragDrop) {
        if let Some(q) = self.queues.get_mut(key) {
            self.mem -= q.mem;
            q.mem = 0;
            let n = q.pieces.len();
            q.pieces = Vec::new();
            q.index = None;
            q.first = None;
            q.held_end = 0;
            q.have = 0;
            q.discarded = Some(later);
            self.lost(why, n);
        }
    }

    /// Moves every datagram whose deadline passed to `expired`.
    fn reap(&mut self, now: Instant) {
        while let Some((&(born, _), &key)) = self.ages.first_key_value() {
            if born + self.cfg.timeout > now {
                break;
            }
            let Some(q) = self.remove(&key) else {
                break;
            };
            if q.discarded.is_some() {
                continue;
            }
            let first = q
                .pieces
                .into_iter()
                .find(|p| p.off == 0)
                .map(|p| (p.pkt, p.ingress));
            self.expired.push(Expired { first });
        }
    }

    /// Makes room for a new datagram from `src`: the source's own oldest
    /// goes if it is at its limit; then, while there are too many, the
    /// victim of [`Defrag::victim`].
    fn make_room(&mut self, src: IpAddr) {
        let own_oldest = self
            .sources
            .get(&src)
            .map(Held::ages)
            .filter(|a| a.len() >= self.cfg.per_source)
            .and_then(|a| a.first())
            .and_then(|age| self.ages.get(age))
            .copied();
        if let Some(k) = own_oldest {
            self.evict(&k);
        }
        while self.queues.len() >= self.cfg.max_datagrams {
            match self.victim(None) {
                Some(k) => self.evict(&k),
                None => break,
            }
        }
    }

    /// Takes one fragment (a packet whose parse said [`Frag::First`] or
    /// [`Frag::Later`]) arriving at `now`.
    ///
    /// [`Frag::First`]: conntrack::proto::Frag::First
    /// [`Frag::Later`]: conntrack::proto::Frag::Later
    pub fn push(&mut self, now: Instant, pkt: PacketBuf, ingress: usize) -> Outcome {
        let f = match parse(pkt.as_slice()) {
            Ok(f) => f,
            Err(why) => return Outcome::Dropped(why),
        };
        let v4 = pkt.as_slice()[0] >> 4 == 4;
        // RFC 8200 §4.5 (and RFC 791's 8-byte units): only the last fragment
        // may end off an 8-byte boundary.
        if f.more && f.len % 8 != 0 {
            return Outcome::Dropped(DefragDrop::NotMultipleOf8);
        }
        if f.more && f.len == 0 {
            return Outcome::Dropped(DefragDrop::EmptyNonLast);
        }
        // RFC 8200 §4.5: the reassembled payload may not exceed 65,535 bytes.
        let hdr = if v4 { f.data_at } else { 0 };
        if f.off + f.len + hdr > 65_535 {
            return Outcome::Dropped(DefragDrop::TooBig);
        }
        if v4 {
            // RFC 1858 / 3128: tiny first fragments and the FO=1 overlap trick.
            if f.off == 0 && f.len < min_l4(f.key.proto) {
                return Outcome::Dropped(DefragDrop::FirstTooShort);
            }
            if f.off == 8 && f.key.proto == 6 {
                return Outcome::Dropped(DefragDrop::TcpAtOffset8);
            }
        }
        // Expiry goes by the deadline: a datagram past it is over (and owes
        // its Time Exceeded) whether or not a sweep has run since.
        self.reap(now);
        match self.queues.get(&f.key) {
            Some(q) => {
                if let Some(why) = q.discarded {
                    return Outcome::Dropped(why);
                }
            }
            None => {
                self.make_room(f.key.src);
                self.insert(f.key, now);
            }
        }
        let Some(q) = self.queues.get_mut(&f.key) else {
            return Outcome::Dropped(DefragDrop::LostQueue);
        };
        let end = f.off + f.len;
        // RFC 5722: an exact duplicate goes alone; any other overlap takes
        // the whole datagram with it.
        let hit = match &q.index {
            Some(ix) => ix
                .range(..end)
                .next_back()
                .filter(|(_, &(pe, _))| pe > f.off)
                .map(|(_, &(_, i))| i),
            None => q
                .pieces
                .iter()
                .position(|p| f.off < p.off + p.len && p.off < end),
        };
        if let Some(p) = hit.and_then(|i| q.pieces.get(i)) {
            let same = p.off == f.off
                && p.off + p.len == end
                && pkt.as_slice().get(f.data_at..f.data_at + f.len)
                    == p.pkt.as_slice().get(p.data_at..p.data_at + p.len);
            if same {
                return Outcome::Dropped(DefragDrop::Duplicate);
            }
            let why = DefragDrop::Overlap;
            self.discard(&f.key, why, DefragDrop::AfterOverlap);
            return Outcome::Dropped(why);
        }
        if !f.more {
            if q.total.is_some_and(|t| t != end) || q.held_end > end {
                let why = DefragDrop::InconsistentLast;
                self.discard(&f.key, why, DefragDrop::AfterBadLength);
                return Outcome::Dropped(why);
            }
            q.total = Some(end);
        } else if q.total.is_some_and(|t| end > t) {
            let why = DefragDrop::BeyondLast;
            self.discard(&f.key, why, DefragDrop::AfterBadLength);
            return Outcome::Dropped(why);
        }
        if q.pieces.len() >= self.cfg.max_fragments {
            let why = DefragDrop::TooManyFragments;
            self.discard(&f.key, why, DefragDrop::AfterTooMany);
            return Outcome::Dropped(why);
        }
        let size = charge(&pkt);
        q.have += f.len;
        q.mem += size;
        q.ecn |= 1 << f.ecn;
        let at = q.pieces.len();
        if let Some(ix) = &mut q.index {
            ix.insert(f.off, (end, at));
        } else if at >= SCAN_PIECES {
            let mut ix: BTreeMap<usize, (usize, usize)> = q
                .pieces
                .iter()
                .enumerate()
                .map(|(i, p)| (p.off, (p.off + p.len, i)))
                .collect();
            ix.insert(f.off, (end, at));
            q.index = Some(ix);
        }
        if f.off == 0 {
            q.first = Some(at);
        }
        q.held_end = q.held_end.max(end);
        q.pieces.push(Piece {
            pkt,
            ingress,
            off: f.off,
            data_at: f.data_at,
            len: f.len,
        });
        self.mem += size;
        if q.total == Some(q.have) && q.first.is_some() {
            let Some(q) = self.remove(&f.key) else {
                return Outcome::Dropped(DefragDrop::LostQueue);
            };
            // RFC 3168 §5.3: Not-ECT beside ECT or CE cannot be made one
            // codepoint without losing a congestion mark or faking one.
            if q.ecn & NOT_ECT != 0 && q.ecn & !NOT_ECT != 0 {
                self.lost(DefragDrop::EcnMix, q.pieces.len() - 1);
                return Outcome::Dropped(DefragDrop::EcnMix);
            }
            return match assemble(q) {
                Some(d) => Outcome::Complete(d),
                None => Outcome::Dropped(DefragDrop::CannotReassemble),
            };
        }
        if self.mem > self.cfg.mem_high {
            // Over the high mark: evict down to the low one, the datagram
            // being added to last.
            while self.mem > self.cfg.mem_low {
                match self.victim(Some(&f.key)) {
                    Some(k) => self.evict(&k),
                    None => {
                        if let Some(q) = self.remove(&f.key) {
                            self.lost(DefragDrop::Evicted, q.pieces.len() - 1);
                        }
                        return Outcome::Dropped(DefragDrop::EvictedMemory);
                    }
                }
            }
        }
        Outcome::Held
    }

    /// Gives up the datagrams whose timer ran out (including those a
    /// fragment found past their deadline since the last call).
    pub fn expire(&mut self, now: Instant) -> Vec<Expired> {
        self.reap(now);
        std::mem::take(&mut self.expired)
    }
}

/// Builds the clone from a complete set of pieces (no overlaps, no holes).
fn assemble(q: Queue) -> Option<Datagram> {
    let first = q.first?;
    let total = q.total?;
    let fp = &q.pieces[first];
    let f = fp.pkt.as_slice();
    let ce = q.ecn & CE != 0;
    let mut clone: Vec<u8>;
    if f[0] >> 4 == 4 {
        let ihl = fp.data_at;
        if ihl + total > 65_535 {
            return None;
        }
        clone = Vec::with_capacity(ihl + total);
        clone.extend_from_slice(&f[..ihl]);
        clone[2..4].copy_from_slice(&((ihl + total) as u16).to_be_bytes());
        if ce {
            clone[1] |= 3;
        }
        // Keep DF, clear MF and the offset.
        clone[6] &= 0x40;
        clone[7] = 0;
        clone[10] = 0;
        clone[11] = 0;
        let ck = checksum::data(&clone[..ihl]);
        clone[10..12].copy_from_slice(&ck.to_be_bytes());
    } else {
        // The headers before the Fragment header, whose Next Header is
        // spliced into the field that pointed at it.
        let frag_at = fp.data_at - 8;
        let unfrag = frag_at - 40;
        if unfrag + total > 65_535 {
            return None;
        }
        clone = Vec::with_capacity(frag_at + total);
        clone.extend_from_slice(&f[..frag_at]);
        if ce {
            clone[1] |= 0x30;
        }
        let frag_next = f[frag_at];
        // Find the field naming the Fragment header: the fixed header's, or
        // the last extension header's before it.
        let payload = &f[40..];
        let walk = walk_ext_headers(f[6], payload).ok()?;
        let before = walk
            .headers
            .iter()
            .take_while(|h| h.offset < unfrag)
            .last()
            .map(|h| 40 + h.offset);
        match before {
            Some(at) => clone[at] = frag_next,
            None => clone[6] = frag_next,
        }
        clone[4..6].copy_from_slice(&((unfrag + total) as u16).to_be_bytes());
    }
    let order: Vec<usize> = match &q.index {
        Some(ix) => ix.values().map(|&(_, i)| i).collect(),
        None => {
            let mut o: Vec<usize> = (0..q.pieces.len()).collect();
            o.sort_unstable_by_key(|&i| q.pieces[i].off);
            o
        }
    };
    for i in order {
        let p = &q.pieces[i];
        clone.extend_from_slice(p.pkt.as_slice().get(p.data_at..p.data_at + p.len)?);
    }
    Some(Datagram {
        clone: PacketBuf::from_vec(clone),
        fragments: q.pieces.into_iter().map(|p| p.pkt).collect(),
        first,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 fragment of a UDP datagram from 192.0.2.`src`, with ECN
    /// codepoint `ecn`.
    fn frag_ecn(src: u8, id: u16, off: u16, more: bool, ecn: u8, data: &[u8]) -> PacketBuf {
        let mut p = vec![
            0x45, ecn, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, src, 198, 51, 100, 1,
        ];
        p[2..4].copy_from_slice(&((20 + data.len()) as u16).to_be_bytes());
        p[4..6].copy_from_slice(&id.to_be_bytes());
        let f = (off / 8) | if more { 0x2000 } else { 0 };
        p[6..8].copy_from_slice(&f.to_be_bytes());
        let ck = checksum::data(&p);
        p[10..12].copy_from_slice(&ck.to_be_bytes());
        p.extend_from_slice(data);
        PacketBuf::from_vec(p)
    }

    fn frag(src: u8, id: u16, off: u16, more: bool, data: &[u8]) -> PacketBuf {
        frag_ecn(src, id, off, more, 0, data)
    }

    /// An IPv6 fragment from 2001:db8::`src` with `ext` (whose first byte is
    /// patched to `next`) after the Fragment header, which names `ext`'s
    /// kind (60) or `next` when `ext` is empty.
    #[allow(clippy::too_many_arguments)]
    fn frag6(
        src: u16,
        id: u32,
        off: u16,
        more: bool,
        ecn: u8,
        ext: &[u8],
        next: u8,
        data: &[u8],
    ) -> PacketBuf {
        let mut p = vec![0x60, ecn << 4, 0, 0, 0, 0, 44, 64];
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&src.to_be_bytes());
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let fh_next = if ext.is_empty() { next } else { 60 };
        p.extend_from_slice(&[fh_next, 0]);
        p.extend_from_slice(&(off | u16::from(more)).to_be_bytes());
        p.extend_from_slice(&id.to_be_bytes());
        if !ext.is_empty() {
            p.push(next);
            p.extend_from_slice(&ext[1..]);
        }
        p.extend_from_slice(data);
        let plen = (p.len() - 40) as u16;
        p[4..6].copy_from_slice(&plen.to_be_bytes());
        PacketBuf::from_vec(p)
    }

    /// A UDP header and `n - 8` bytes of data: a first fragment's payload.
    fn udp_start(n: usize) -> Vec<u8> {
        let mut d = vec![0x30, 0x39, 0, 53, 0, 0, 0, 0];
        d.resize(n, 0xab);
        d
    }

    #[test]
    fn memory_watermarks_evict_the_oldest_datagrams() {
        let data = [0u8; 1024];
        let one = charge(&frag(1, 0, 0, true, &data));
        let cfg = DefragConfig {
            mem_high: 4 * one + 8,
            mem_low: 2 * one + 8,
            ..DefragConfig::default()
        };
        let mut d = Defrag::new(cfg);
        let now = Instant::from_secs(1);
        for id in 0..4 {
            assert!(matches!(
                d.push(now, frag(1, id, 0, true, &data), 0),
                Outcome::Held
            ));
        }
        assert_eq!(d.memory(), 4 * one);
        // The fifth goes over the high mark: the oldest go until under the low one.
        assert!(matches!(
            d.push(now, frag(1, 4, 0, true, &data), 0),
            Outcome::Held
        ));
        assert!(d.memory() <= cfg.mem_low, "{}", d.memory());
        assert_eq!(d.len(), 2);
        let mut lost = Vec::new();
        d.take_dropped(|why, n| lost.push((why, n)));
        assert_eq!(
            lost,
            vec![
                (DefragDrop::Evicted, 1),
                (DefragDrop::Evicted, 1),
                (DefragDrop::Evicted, 1)
            ]
        );
        // Datagram 0 was evicted: its last fragment starts a new, incomplete queue.
        assert!(matches!(
            d.push(now, frag(1, 0, 1024, false, &[1; 8]), 0),
            Outcome::Held
        ));
        // Datagram 4 is still there and completes.
        assert!(matches!(
            d.push(now, frag(1, 4, 1024, false, &[1; 8]), 0),
            Outcome::Complete(_)
        ));
    }

    #[test]
    fn limits_on_datagrams_fragments_and_sources() {
        let cfg = DefragConfig {
            max_datagrams: 3,
            max_fragments: 3,
            per_source: 2,
            ..DefragConfig::default()
        };
        let mut d = Defrag::new(cfg);
        let now = Instant::from_secs(1);
        let e = [0u8; 8];
        let first = udp_start(8);
        for id in 1..=2 {
            assert!(matches!(
                d.push(now, frag(1, id, 0, true, &first), 0),
                Outcome::Held
            ));
        }
        // Source 1 is at its limit: its own oldest (ID 1) makes room.
        assert!(matches!(
            d.push(now, frag(1, 3, 0, true, &first), 0),
            Outcome::Held
        ));
        assert_eq!(d.len(), 2);
        assert!(matches!(
            d.push(now, frag(2, 1, 0, true, &first), 0),
            Outcome::Held
        ));
        // Three datagrams held: the next evicts the oldest of source 1,
        // which holds the most (ID 2), not source 2's.
        assert!(matches!(
            d.push(now, frag(3, 1, 0, true, &first), 0),
            Outcome::Held
        ));
        assert_eq!(d.len(), 3);
        let mut lost = 0;
        d.take_dropped(|why, n| {
            assert_eq!(why, DefragDrop::Evicted);
            lost += n;
        });
        assert_eq!(lost, 2);
        // (A fragment of an evicted datagram starts a new one.)
        for (src, id, left) in [(1, 3, true), (2, 1, true), (1, 1, false), (1, 2, false)] {
            let o = d.push(now, frag(src, id, 8, false, &e), 0);
            assert_eq!(matches!(o, Outcome::Complete(_)), left, "{src}/{id}: {o:?}");
        }
        // Fragments per datagram.
        assert!(matches!(
            d.push(now, frag(3, 1, 8, true, &e), 0),
            Outcome::Held
        ));
        assert!(matches!(
            d.push(now, frag(3, 1, 16, true, &e), 0),
            Outcome::Held
        ));
        assert!(matches!(
            d.push(now, frag(3, 1, 24, true, &e), 0),
            Outcome::Dropped(DefragDrop::TooManyFragments)
        ));
        // Timers free everything.
        let left = d.len();
        assert_eq!(d.expire(now + Duration::from_secs(60)).len(), left - 1);
        assert!(d.is_empty());
        assert_eq!(d.memory(), 0);
    }

    /// Issue 15 item 4: a flood of first fragments from ever new sources,
    /// none ever completed, and well-behaved senders amid it.
    #[test]
    fn a_flood_of_incomplete_datagrams_does_not_lock_out_new_ones() {
        let cfg = DefragConfig::default();
        let mut d = Defrag::new(cfg);
        let t0 = Instant::from_secs(1);
        let first = udp_start(1232);
        let mut done = 0;
        for i in 0..10_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i) * 100);
            let src = (i % 60_000) as u16 + 1;
            let o = d.push(now, frag6(src, i, 0, true, 0, &[], 17, &first), 0);
            assert!(matches!(o, Outcome::Held), "flood {i}: {o:?}");
            assert!(d.len() <= cfg.max_datagrams);
            assert!(d.memory() <= cfg.mem_high, "{}", d.memory());
            if i % 100 == 99 {
                // A well-behaved sender: its fragments come close together,
                // with flood fragments between them.
                let id = 0x5000 + i;
                let a = d.push(now, frag6(0xffff, id, 0, true, 0, &[], 17, &first), 0);
                assert!(matches!(a, Outcome::Held), "{a:?}");
                for j in 0..3u32 {
                    let src = 60_001 + j as u16;
                    d.push(now, frag6(src, i, 0, true, 0, &[], 17, &first), 0);
                }
                match d.push(
                    now,
                    frag6(0xffff, id, 1232, false, 0, &[], 17, &[7; 100]),
                    0,
                ) {
                    Outcome::Complete(dg) => {
                        assert_eq!(dg.clone.len(), 40 + 1232 + 100);
                        done += 1;
                    }
                    o => panic!("well-behaved datagram {i}: {o:?}"),
                }
            }
        }
        assert_eq!(done, 100);
        let mut evicted = 0;
        d.take_dropped(|why, n| {
            assert_eq!(why, DefragDrop::Evicted);
            evicted += n;
        });
        assert!(evicted >= 10_000 - cfg.max_datagrams, "{evicted}");
    }

    /// Per-source fairness: the source holding the most datagrams gives up
    /// its oldest, even when another source's datagram is older; among
    /// sources holding as many, the oldest datagram goes.
    #[test]
    fn eviction_takes_from_the_source_holding_the_most() {
        let cfg = DefragConfig {
            max_datagrams: 8,
            ..DefragConfig::default()
        };
        let mut d = Defrag::new(cfg);
        let first = udp_start(8);
        let t = Instant::from_secs;
        // A well-behaved sender's datagram, the oldest of all.
        assert!(matches!(
            d.push(t(1), frag(9, 1, 0, true, &first), 0),
            Outcome::Held
        ));
        // One flooding source fills the rest, then another flooding source
        // arrives: the first flooder's oldest makes room each time.
        for id in 0..7 {
            d.push(t(2), frag(1, id, 0, true, &first), 0);
        }
        for id in 0..6 {
            let o = d.push(t(3), frag(2, id, 0, true, &first), 0);
            assert!(matches!(o, Outcome::Held), "{o:?}");
        }
        assert_eq!(d.len(), 8);
        assert!(matches!(
            d.push(t(4), frag(9, 1, 8, false, &[1; 8]), 0),
            Outcome::Complete(_)
        ));
        // Sources 1 and 2 now hold 1 and 6: source 2's oldest goes next.
        d.push(t(5), frag(3, 0, 0, true, &first), 0);
        d.push(t(5), frag(4, 0, 0, true, &first), 0);
        assert!(matches!(
            d.push(t(6), frag(2, 0, 8, false, &[1; 8]), 0),
            Outcome::Held
        ));
        assert!(matches!(
            d.push(t(6), frag(1, 6, 8, false, &[1; 8]), 0),
            Outcome::Complete(_)
        ));
    }

    /// Issue 15 item 5: expiry goes by the deadline, not by the sweep.
    #[test]
    fn a_fragment_after_the_deadline_expires_its_datagram_first() {
        let mut d = Defrag::new(DefragConfig::default());
        let t0 = Instant::from_secs(1);
        let late = t0 + Duration::from_secs(60);
        assert!(matches!(
            d.push(t0, frag(1, 1, 0, true, &udp_start(16)), 3),
            Outcome::Held
        ));
        // No sweep ran; the last fragment comes at the deadline. It starts
        // a datagram of its own, and the old one is due its expiry.
        assert!(matches!(
            d.push(late, frag(1, 1, 16, false, &[1; 8]), 0),
            Outcome::Held
        ));
        assert!(d.has_expired());
        let gone = d.expire(late);
        assert_eq!(gone.len(), 1);
        let (first, ingress) = gone[0].first.as_ref().expect("first fragment kept");
        assert_eq!((first.len(), *ingress), (36, 3));
        assert_eq!(d.len(), 1);
        assert_eq!(d.poll_timeout(), Some(late + Duration::from_secs(60)));
    }

    /// Issue 15 item 5: the default admits the largest legal fragment
    /// counts, and memory still counts every fragment's cost.
    #[test]
    fn legal_datagrams_of_many_small_fragments_are_reassembled() {
        let cfg = DefragConfig::default();
        // 155 fragments of 424 bytes (IPv6: 376 bytes of data each; IPv4
        // 155 of 400).
        let mut d = Defrag::new(cfg);
        let now = Instant::from_secs(1);
        let n = 155usize;
        for (v6, size) in [(true, 376), (false, 400)] {
            for i in 0..n {
                let data = if i == 0 {
                    udp_start(size)
                } else {
                    vec![i as u8; size]
                };
                let (off, more) = ((i * size) as u16, i + 1 < n);
                let p = if v6 {
                    frag6(1, 1, off, more, 0, &[], 17, &data)
                } else {
                    frag(1, 1, off, more, &data)
                };
                assert_eq!(p.len(), if v6 { 424 } else { 420 });
                match d.push(now, p, 0) {
                    Outcome::Held if more => {}
                    Outcome::Complete(dg) if !more => assert_eq!(dg.fragments.len(), n),
                    o => panic!("{v6} {i}: {o:?}"),
                }
            }
        }
        // The worst case: 65,535 bytes in 8-byte pieces, 8,192 IPv6
        // fragments, arriving last first.
        let n = MAX_LEGAL_FRAGMENTS;
        for i in (0..n).rev() {
            let (data, more) = match i {
                0 => (udp_start(8), true),
                i if i == n - 1 => (vec![9u8; 7], false),
                i => (vec![i as u8; 8], true),
            };
            let o = d.push(now, frag6(2, 7, (i * 8) as u16, more, 0, &[], 17, &data), 0);
            if i > 0 {
                assert!(matches!(o, Outcome::Held), "{i}: {o:?}");
                assert!(d.memory() <= cfg.mem_high);
            } else {
                match o {
                    Outcome::Complete(dg) => {
                        assert_eq!(dg.fragments.len(), n);
                        assert_eq!(dg.clone.len(), 40 + 65_535);
                    }
                    o => panic!("{o:?}"),
                }
            }
        }
    }

    /// Duplicates and overlaps are found the same way whether a queue scans
    /// its pieces or has built its offset index.
    #[test]
    fn overlaps_and_duplicates_are_found_in_small_and_large_queues() {
        let now = Instant::from_secs(1);
        for held in [4u16, SCAN_PIECES as u16 + 4] {
            let mut d = Defrag::new(DefragConfig::default());
            // Pieces of 16 bytes at 0, 16, ..., arriving from the end.
            for k in (0..held).rev() {
                let data = if k == 0 {
                    udp_start(16)
                } else {
                    vec![k as u8; 16]
                };
                let o = d.push(now, frag(1, 1, k * 16, true, &data), 0);
                assert!(matches!(o, Outcome::Held), "{held}: {k}: {o:?}");
            }
            let dup = frag(1, 1, 32, true, &[2; 16]);
            assert!(matches!(
                d.push(now, dup, 0),
                Outcome::Dropped(DefragDrop::Duplicate)
            ));
            // Same place, other bytes: an overlap.
            let other = frag(1, 1, 32, true, &[9; 16]);
            assert!(matches!(
                d.push(now, other, 0),
                Outcome::Dropped(DefragDrop::Overlap)
            ));
            // Straddling two pieces, and inside one, in fresh datagrams.
            for (id, off, len) in [(2u16, 24u16, 16usize), (3, 40, 8)] {
                for k in 0..held {
                    let data = if k == 0 {
                        udp_start(16)
                    } else {
                        vec![k as u8; 16]
                    };
                    d.push(now, frag(1, id, k * 16, true, &data), 0);
                }
                assert!(matches!(
                    d.push(now, frag(1, id, off, true, &vec![0; len]), 0),
                    Outcome::Dropped(DefragDrop::Overlap)
                ));
            }
            // Just after the last piece: no overlap, and the datagram completes.
            for k in (0..held).rev() {
                let data = if k == 0 {
                    udp_start(16)
                } else {
                    vec![k as u8; 16]
                };
                d.push(now, frag(1, 4, k * 16, true, &data), 0);
            }
            match d.push(now, frag(1, 4, held * 16, false, &[7; 3]), 0) {
                Outcome::Complete(dg) => {
                    assert_eq!(dg.clone.len(), 20 + usize::from(held) * 16 + 3);
                    assert_eq!(dg.first, usize::from(held) - 1, "arrival order kept");
                }
                o => panic!("{held}: {o:?}"),
            }
        }
    }

    /// Fragments after a too-many-fragments drop say so, not "overlap".
    #[test]
    fn a_discarded_datagram_names_why_to_its_later_fragments() {
        let cfg = DefragConfig {
            max_fragments: 2,
            ..DefragConfig::default()
        };
        let mut d = Defrag::new(cfg);
        let now = Instant::from_secs(1);
        let e = [0u8; 8];
        d.push(now, frag(1, 1, 0, true, &udp_start(8)), 0);
        d.push(now, frag(1, 1, 8, true, &e), 0);
        assert!(matches!(
            d.push(now, frag(1, 1, 16, true, &e), 0),
            Outcome::Dropped(DefragDrop::TooManyFragments)
        ));
        match d.push(now, frag(1, 1, 24, false, &e), 0) {
            Outcome::Dropped(why) => assert!(why.as_str().contains("too many fragments"), "{why}"),
            o => panic!("{o:?}"),
        }
        // A second last fragment that disagrees is no overlap either.
        d.push(now, frag(1, 2, 0, true, &udp_start(8)), 0);
        d.push(now, frag(1, 2, 16, false, &e), 0);
        assert!(matches!(
            d.push(now, frag(1, 2, 24, false, &e), 0),
            Outcome::Dropped(DefragDrop::InconsistentLast)
        ));
        match d.push(now, frag(1, 2, 8, true, &e), 0) {
            Outcome::Dropped(why) => assert!(!why.as_str().contains("overlap"), "{why}"),
            o => panic!("{o:?}"),
        }
        let mut lost = Vec::new();
        d.take_dropped(|why, n| lost.push((why, n)));
        assert_eq!(
            lost,
            vec![
                (DefragDrop::TooManyFragments, 2),
                (DefragDrop::InconsistentLast, 2)
            ]
        );
    }

    /// Issue 15 item 2: RFC 3168 §5.3.
    #[test]
    fn ecn_not_ect_beside_ect_drops_and_ce_marks_the_clone() {
        const MIX: &str = "RFC 3168";
        let now = Instant::from_secs(1);
        let first = udp_start(16);
        // (codepoint of the first fragment, of the last) -> clone's, or a drop.
        for (a, b, want) in [
            (0, 0, Some(0)),
            (0, 2, None),
            (1, 0, None),
            (0, 3, None),
            (2, 1, Some(2)),
            (2, 3, Some(3)),
            (3, 1, Some(3)),
            (3, 3, Some(3)),
        ] {
            let mut d = Defrag::new(DefragConfig::default());
            d.push(now, frag_ecn(1, 1, 0, true, a, &first), 0);
            let o4 = d.push(now, frag_ecn(1, 1, 16, false, b, &[5; 8]), 0);
            d.push(now, frag6(1, 1, 0, true, a, &[], 17, &first), 0);
            let o6 = d.push(now, frag6(1, 1, 16, false, b, &[], 17, &[5; 8]), 0);
            match (want, o4, o6) {
                (None, Outcome::Dropped(w4), Outcome::Dropped(w6)) => {
                    assert!(
                        w4.as_str().contains(MIX) && w6.as_str().contains(MIX),
                        "{w4} {w6}"
                    );
                    let mut lost = Vec::new();
                    d.take_dropped(|why, n| lost.push((why, n)));
                    assert_eq!(lost, vec![(DefragDrop::EcnMix, 1), (DefragDrop::EcnMix, 1)]);
                }
                (Some(ecn), Outcome::Complete(c4), Outcome::Complete(c6)) => {
                    let (h4, h6) = (c4.clone.as_slice(), c6.clone.as_slice());
                    assert_eq!((h4[1] & 3, (h6[1] >> 4) & 3), (ecn, ecn), "{a} {b}");
                    assert_eq!(checksum::data(&h4[..20]), 0, "IPv4 header checksum");
                    // The originals are left as they came.
                    assert_eq!(c4.fragments[1].as_slice()[1] & 3, b);
                }
                (w, o4, o6) => panic!("{a} {b}: want {w:?}, got {o4:?} {o6:?}"),
            }
        }
    }

    /// Issue 15 item 1: the key is what every fragment of a datagram
    /// shares, whatever else differs between them.
    #[test]
    fn the_key_of_every_fragment_of_a_datagram_is_the_same() {
        let dest = [0, 0, 1, 4, 0, 0, 0, 0];
        let first = frag6(5, 77, 0, true, 0, &dest, 17, &udp_start(16));
        // Later fragments naming other protocols.
        let mid = frag6(5, 77, 24, true, 0, &[], 6, &[1; 8]);
        let last = frag6(5, 77, 32, false, 0, &[], 58, &[2; 8]);
        let k = key_of(first.as_slice()).unwrap();
        assert_eq!(key_of(mid.as_slice()), Some(k));
        assert_eq!(key_of(last.as_slice()), Some(k));
        assert_eq!((k.proto, k.id), (0, 77));
        let other = frag6(5, 78, 24, true, 0, &[], 17, &[1; 8]);
        assert_ne!(key_of(other.as_slice()), Some(k));
        // And reassembly keys them alike: the three make one datagram.
        let mut d = Defrag::new(DefragConfig::default());
        let now = Instant::from_secs(1);
        assert!(matches!(d.push(now, last, 0), Outcome::Held));
        assert!(matches!(d.push(now, first, 0), Outcome::Held));
        assert!(matches!(d.push(now, mid, 0), Outcome::Complete(_)));
        // IPv4: the protocol is part of it.
        let a = key_of(frag(1, 9, 0, true, &udp_start(8)).as_slice()).unwrap();
        assert_eq!(
            key_of(frag_ecn(1, 9, 8, false, 3, &[0; 8]).as_slice()),
            Some(a)
        );
        assert_eq!(a.proto, 17);
        assert_eq!(key_of(&[0x45, 0, 0]), None);
    }
}
