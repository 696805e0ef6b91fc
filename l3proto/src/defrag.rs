//! Virtual fragment reassembly ("shadow clone"), one design for IPv4 and IPv6.
//!
//! Fragments are held per datagram until it is complete; then the caller gets
//! a reassembled *clone* (what conntrack, the ruleset and helpers look at)
//! together with the *original fragments* in arrival order, which it forwards
//! unchanged except for TTL/hop limit and NAT. Nothing here rewrites the
//! originals, so IPv6 fragments keep their Fragment header, identification,
//! offsets, M bits, Next Header values and the headers before the Fragment
//! header; IPv4 fragments keep ID, offsets and DF.
//!
//! Rules enforced (each drop is counted by the reason string returned):
//! - RFC 8200 §4.5: a datagram is keyed by (source, destination,
//!   identification) — for IPv4 also the protocol (RFC 791); 60 s from the
//!   first fragment to completion (configurable); a non-last fragment whose
//!   data is not a multiple of 8 bytes, or one reaching past 65,535 bytes, is
//!   discarded; only the offset-0 fragment's Next Header and the headers
//!   before its Fragment header are used for the clone (other fragments'
//!   may differ).
//! - RFC 5722: any overlap discards the whole datagram, including fragments
//!   that arrive later for it (until its timer runs out); an exact duplicate
//!   of a held fragment is dropped alone.
//! - RFC 6946: an atomic fragment (offset 0, M=0) never reaches this module
//!   ([`Frag::None`] from the parser): it is a datagram of its own.
//! - RFC 7112: an IPv6 first fragment must hold the whole header chain up
//!   to and including the upper-layer header.
//! - RFC 1858 / RFC 3128: an IPv4 first fragment too short for the
//!   transport header, and a TCP fragment at offset 8 (FO = 1), are dropped.
//! - Resources: a memory budget with high/low watermarks (over the high
//!   mark the oldest datagrams are evicted until under the low mark), a
//!   maximum number of datagrams in reassembly, of fragments per datagram,
//!   and of datagrams per source address (so one sender cannot take every
//!   slot).
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

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;
use wire::buf::PacketBuf;
use wire::time::Instant;
use wire::{checksum, walk_ext_headers, Terminal};

/// Limits and behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefragConfig {
    /// Time from a datagram's first fragment to its completion (RFC 8200: 60 s).
    pub timeout: Duration,
    /// Bytes of held fragments above which the oldest datagrams are evicted...
    pub mem_high: usize,
    /// ...until the total is under this.
    pub mem_low: usize,
    /// Datagrams in reassembly at once.
    pub max_datagrams: usize,
    /// Fragments one datagram may have.
    pub max_fragments: usize,
    /// Datagrams in reassembly per source address.
    pub per_source: usize,
}

impl Default for DefragConfig {
    fn default() -> Self {
        DefragConfig {
            timeout: Duration::from_secs(60),
            mem_high: 4 << 20,
            mem_low: 3 << 20,
            max_datagrams: 1024,
            max_fragments: 64,
            per_source: 64,
        }
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
    Dropped(&'static str),
}

/// A reassembled datagram.
#[derive(Debug)]
pub struct Datagram {
    /// The whole datagram as one packet without fragmentation: IPv4 with
    /// MF and offset cleared, IPv6 without its Fragment header.
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    /// IPv4 protocol; 0 for IPv6 (the key there is source, destination, ID).
    proto: u8,
    id: u32,
}

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

#[derive(Debug)]
struct Queue {
    /// Arrival of its first fragment; the timer runs from here.
    born: Instant,
    /// Order of creation (eviction picks the smallest).
    serial: u64,
    pieces: Vec<Piece>,
    /// Length of the fragmentable part, once the last fragment arrived.
    total: Option<usize>,
    /// Bytes of data held (no overlaps are held, so this is coverage).
    have: usize,
    mem: usize,
    /// An overlap was seen: every fragment of this datagram is discarded
    /// until the timer runs out (RFC 5722).
    poisoned: bool,
}

/// The reassembly state.
#[derive(Debug)]
pub struct Defrag {
    cfg: DefragConfig,
    queues: HashMap<Key, Queue>,
    per_source: HashMap<IpAddr, usize>,
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
fn parse(p: &[u8]) -> Result<Parsed, &'static str> {
    match p.first().map(|b| b >> 4) {
        Some(4) => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            let total = usize::from(be16(p, 2).ok_or("frag: truncated")?);
            let flags = be16(p, 6).ok_or("frag: truncated")?;
            let proto = *p.get(9).ok_or("frag: truncated")?;
            let addr = |o: usize| -> Option<IpAddr> {
                let b: [u8; 4] = p.get(o..o + 4)?.try_into().ok()?;
                Some(IpAddr::from(b))
            };
            if total < ihl || p.len() < total {
                return Err("frag: truncated");
            }
            Ok(Parsed {
                key: Key {
                    src: addr(12).ok_or("frag: truncated")?,
                    dst: addr(16).ok_or("frag: truncated")?,
                    proto,
                    id: u32::from(be16(p, 4).ok_or("frag: truncated")?),
                },
                off: usize::from(flags & 0x1fff) * 8,
                more: flags & 0x2000 != 0,
                data_at: ihl,
                len: total - ihl,
            })
        }
        Some(6) => {
            let plen = usize::from(be16(p, 4).ok_or("frag: truncated")?);
            let payload = p.get(40..40 + plen).ok_or("frag: truncated")?;
            let walk =
                walk_ext_headers(p[6], payload).map_err(|_| "frag: bad extension headers")?;
            let f = walk.frag.ok_or("frag: no fragment header")?;
            let addr = |o: usize| -> Option<IpAddr> {
                let b: [u8; 16] = p.get(o..o + 16)?.try_into().ok()?;
                Some(IpAddr::from(b))
            };
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
                    return Err("frag: first fragment without upper-layer header (RFC 7112)");
                }
            }
            Ok(Parsed {
                key: Key {
                    src: addr(8).ok_or("frag: truncated")?,
                    dst: addr(24).ok_or("frag: truncated")?,
                    proto: 0,
                    id: f.ident,
                },
                off: usize::from(f.offset),
                more: f.more,
                data_at,
                len: (40 + plen).saturating_sub(data_at),
            })
        }
        _ => Err("frag: not an IP packet"),
    }
}

impl Defrag {
    /// An empty reassembly state.
    pub fn new(cfg: DefragConfig) -> Defrag {
        Defrag {
            cfg,
            queues: HashMap::new(),
            per_source: HashMap::new(),
            mem: 0,
            serial: 0,
        }
    }

    /// Bytes of fragments held.
    pub fn memory(&self) -> usize {
        self.mem
    }

    /// Datagrams in reassembly (poisoned ones included).
    pub fn len(&self) -> usize {
        self.queues.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// When the oldest datagram's timer runs out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queues
            .values()
            .map(|q| q.born + self.cfg.timeout)
            .min()
    }

    fn remove(&mut self, key: &Key) -> Option<Queue> {
        let q = self.queues.remove(key)?;
        self.mem -= q.mem;
        if let Some(n) = self.per_source.get_mut(&key.src) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&key.src);
            }
        }
        Some(q)
    }

    /// Drops a datagram's held fragments but remembers it as poisoned.
    fn poison(&mut self, key: &Key) {
        if let Some(q) = self.queues.get_mut(key) {
            self.mem -= q.mem;
            q.mem = 0;
            q.pieces.clear();
            q.have = 0;
            q.poisoned = true;
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
        let v4 = f.key.proto != 0 || pkt.as_slice()[0] >> 4 == 4;
        // RFC 8200 §4.5 (and RFC 791's 8-byte units): only the last fragment
        // may end off an 8-byte boundary.
        if f.more && f.len % 8 != 0 {
            return Outcome::Dropped("frag: length not a multiple of 8");
        }
        if f.more && f.len == 0 {
            return Outcome::Dropped("frag: empty non-last fragment");
        }
        // RFC 8200 §4.5: the reassembled payload may not exceed 65,535 bytes.
        let hdr = if v4 { f.data_at } else { 0 };
        if f.off + f.len + hdr > 65_535 {
            return Outcome::Dropped("frag: datagram over 65535 bytes");
        }
        if v4 {
            // RFC 1858 / 3128: tiny first fragments and the FO=1 overlap trick.
            if f.off == 0 && f.len < min_l4(f.key.proto) {
                return Outcome::Dropped("frag: first fragment too short (RFC 1858)");
            }
            if f.off == 8 && f.key.proto == 6 {
                return Outcome::Dropped("frag: TCP fragment at offset 8 (RFC 3128)");
            }
        }
        self.expire_queue(&f.key, now);
        if let Some(q) = self.queues.get(&f.key) {
            if q.poisoned {
                return Outcome::Dropped("frag: datagram discarded after an overlap");
            }
        } else {
            if self.queues.len() >= self.cfg.max_datagrams {
                return Outcome::Dropped("frag: too many datagrams in reassembly");
            }
            if self.per_source.get(&f.key.src).copied().unwrap_or(0) >= self.cfg.per_source {
                return Outcome::Dropped("frag: per-source limit");
            }
            self.serial += 1;
            self.queues.insert(
                f.key,
                Queue {
                    born: now,
                    serial: self.serial,
                    pieces: Vec::new(),
                    total: None,
                    have: 0,
                    mem: 0,
                    poisoned: false,
                },
            );
            *self.per_source.entry(f.key.src).or_insert(0) += 1;
        }
        let Some(q) = self.queues.get_mut(&f.key) else {
            return Outcome::Dropped("frag: lost queue");
        };
        let end = f.off + f.len;
        // RFC 5722: an exact duplicate goes alone; any other overlap takes
        // the whole datagram with it.
        for p in &q.pieces {
            let (po, pe) = (p.off, p.off + p.len);
            if f.off < pe && po < end {
                let same = po == f.off
                    && pe == end
                    && pkt.as_slice().get(f.data_at..f.data_at + f.len)
                        == p.pkt.as_slice().get(p.data_at..p.data_at + p.len);
                if same {
                    return Outcome::Dropped("frag: duplicate");
                }
                self.poison(&f.key);
                return Outcome::Dropped("frag: overlap (RFC 5722)");
            }
        }
        if !f.more {
            if q.total.is_some_and(|t| t != end) || q.pieces.iter().any(|p| p.off + p.len > end) {
                self.poison(&f.key);
                return Outcome::Dropped("frag: inconsistent last fragment");
            }
            q.total = Some(end);
        } else if q.total.is_some_and(|t| end > t) {
            self.poison(&f.key);
            return Outcome::Dropped("frag: fragment beyond the last one");
        }
        if q.pieces.len() >= self.cfg.max_fragments {
            let key = f.key;
            self.poison(&key);
            return Outcome::Dropped("frag: too many fragments in a datagram");
        }
        let size = pkt.len();
        q.have += f.len;
        q.mem += size;
        q.pieces.push(Piece {
            pkt,
            ingress,
            off: f.off,
            data_at: f.data_at,
            len: f.len,
        });
        self.mem += size;
        let done = q.total == Some(q.have) && q.pieces.iter().any(|p| p.off == 0);
        if done {
            let Some(q) = self.remove(&f.key) else {
                return Outcome::Dropped("frag: lost queue");
            };
            return match assemble(q) {
                Some(d) => Outcome::Complete(d),
                None => Outcome::Dropped("frag: cannot reassemble"),
            };
        }
        if self.mem > self.cfg.mem_high {
            self.evict(f.key);
            if !self.queues.contains_key(&f.key) {
                return Outcome::Dropped("frag: evicted (memory)");
            }
        }
        Outcome::Held
    }

    /// Evicts the oldest datagrams until under the low watermark; `keep` (the
    /// one being added to) goes last.
    fn evict(&mut self, keep: Key) -> usize {
        let mut n = 0;
        while self.mem > self.cfg.mem_low {
            let victim = self
                .queues
                .iter()
                .filter(|(k, q)| **k != keep && q.mem > 0)
                .min_by_key(|(_, q)| q.serial)
                .map(|(k, _)| *k)
                .unwrap_or(keep);
            if self.remove(&victim).is_none() {
                break;
            }
            n += 1;
            if victim == keep {
                break;
            }
        }
        n
    }

    fn expire_queue(&mut self, key: &Key, now: Instant) {
        if self
            .queues
            .get(key)
            .is_some_and(|q| q.born + self.cfg.timeout <= now)
        {
            self.remove(key);
        }
    }

    /// Gives up the datagrams whose timer ran out.
    pub fn expire(&mut self, now: Instant) -> Vec<Expired> {
        let dead: Vec<Key> = self
            .queues
            .iter()
            .filter(|(_, q)| q.born + self.cfg.timeout <= now)
            .map(|(k, _)| *k)
            .collect();
        let mut out = Vec::new();
        for k in dead {
            if let Some(q) = self.remove(&k) {
                if q.poisoned {
                    continue;
                }
                let first = q
                    .pieces
                    .into_iter()
                    .find(|p| p.off == 0)
                    .map(|p| (p.pkt, p.ingress));
                out.push(Expired { first });
            }
        }
        out
    }
}

/// Builds the clone from a complete set of pieces (no overlaps, no holes).
fn assemble(q: Queue) -> Option<Datagram> {
    let first = q.pieces.iter().position(|p| p.off == 0)?;
    let total = q.total?;
    let fp = &q.pieces[first];
    let f = fp.pkt.as_slice();
    let mut clone: Vec<u8>;
    if f[0] >> 4 == 4 {
        let ihl = fp.data_at;
        if ihl + total > 65_535 {
            return None;
        }
        clone = Vec::with_capacity(ihl + total);
        clone.extend_from_slice(&f[..ihl]);
        clone[2..4].copy_from_slice(&((ihl + total) as u16).to_be_bytes());
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
    let mut order: Vec<&Piece> = q.pieces.iter().collect();
    order.sort_by_key(|p| p.off);
    for p in order {
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

    fn frag(src: u8, id: u16, off: u16, more: bool, data: &[u8]) -> PacketBuf {
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, src, 198, 51, 100, 1,
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

    #[test]
    fn memory_watermarks_evict_the_oldest_datagrams() {
        let cfg = DefragConfig {
            mem_high: 4 * 1048,
            mem_low: 2 * 1048,
            ..DefragConfig::default()
        };
        let mut d = Defrag::new(cfg);
        let now = Instant::from_secs(1);
        let data = [0u8; 1024];
        for id in 0..4 {
            assert!(matches!(
                d.push(now, frag(1, id, 0, true, &data), 0),
                Outcome::Held
            ));
        }
        assert_eq!(d.memory(), 4 * 1044);
        // The fifth goes over the high mark: the oldest go until under the low one.
        assert!(matches!(
            d.push(now, frag(1, 4, 0, true, &data), 0),
            Outcome::Held
        ));
        assert!(d.memory() <= 2 * 1048, "{}", d.memory());
        assert_eq!(d.len(), 2);
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
        assert!(matches!(
            d.push(now, frag(1, 1, 0, true, &e), 0),
            Outcome::Held
        ));
        assert!(matches!(
            d.push(now, frag(1, 2, 0, true, &e), 0),
            Outcome::Held
        ));
        assert!(matches!(
            d.push(now, frag(1, 3, 0, true, &e), 0),
            Outcome::Dropped("frag: per-source limit")
        ));
        assert!(matches!(
            d.push(now, frag(2, 1, 0, true, &e), 0),
            Outcome::Held
        ));
        assert!(matches!(
            d.push(now, frag(3, 1, 0, true, &e), 0),
            Outcome::Dropped("frag: too many datagrams in reassembly")
        ));
        assert!(matches!(
            d.push(now, frag(1, 1, 8, true, &e), 0),
            Outcome::Held
        ));
        assert!(matches!(
            d.push(now, frag(1, 1, 16, true, &e), 0),
            Outcome::Held
        ));
        assert!(matches!(
            d.push(now, frag(1, 1, 24, true, &e), 0),
            Outcome::Dropped("frag: too many fragments in a datagram")
        ));
        // Timers free everything.
        assert_eq!(d.expire(now + Duration::from_secs(60)).len(), 2);
        assert!(d.is_empty());
        assert_eq!(d.memory(), 0);
    }
}
