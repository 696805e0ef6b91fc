//! A tracked connection and its per-connection data.

use crate::tuple::{Dir, Tuple};
use core::any::Any;
use core::fmt;
use wire::Instant;

/// Status bits of a connection (after `enum ip_conntrack_status`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Status(pub u32);

impl Status {
    /// Created from an expectation (RELATED to its master).
    pub const EXPECTED: u32 = 1 << 0;
    /// A packet was seen in the reply direction.
    pub const SEEN_REPLY: u32 = 1 << 1;
    /// The connection is established enough not to be early-dropped.
    pub const ASSURED: u32 = 1 << 2;
    /// In the table (passed confirm once).
    pub const CONFIRMED: u32 = 1 << 3;
    /// Source NAT applies.
    pub const SRC_NAT: u32 = 1 << 4;
    /// Destination NAT applies.
    pub const DST_NAT: u32 = 1 << 5;
    /// TCP sequence numbers need adjusting (a helper changed payload size).
    pub const SEQ_ADJUST: u32 = 1 << 6;
    /// Source NAT mapping chosen.
    pub const SRC_NAT_DONE: u32 = 1 << 7;
    /// Destination NAT mapping chosen.
    pub const DST_NAT_DONE: u32 = 1 << 8;
    /// Being removed.
    pub const DYING: u32 = 1 << 9;
    /// Timeout must not be changed by the protocol module.
    pub const FIXED_TIMEOUT: u32 = 1 << 10;
    /// A helper is attached.
    pub const HELPER: u32 = 1 << 13;

    /// Whether all bits of `bits` are set.
    pub fn contains(self, bits: u32) -> bool {
        self.0 & bits == bits
    }

    /// Sets `bits`.
    pub fn insert(&mut self, bits: u32) {
        self.0 |= bits;
    }

    /// Clears `bits`.
    pub fn remove(&mut self, bits: u32) {
        self.0 &= !bits;
    }

    /// Names of the set bits as `conntrack` prints them.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        const NAMES: [(u32, &str); 12] = [
            (Status::EXPECTED, "EXPECTED"),
            (Status::SEEN_REPLY, "SEEN_REPLY"),
            (Status::ASSURED, "ASSURED"),
            (Status::CONFIRMED, "CONFIRMED"),
            (Status::SRC_NAT, "SRC_NAT"),
            (Status::DST_NAT, "DST_NAT"),
            (Status::SEQ_ADJUST, "SEQ_ADJUST"),
            (Status::SRC_NAT_DONE, "SRC_NAT_DONE"),
            (Status::DST_NAT_DONE, "DST_NAT_DONE"),
            (Status::DYING, "DYING"),
            (Status::FIXED_TIMEOUT, "FIXED_TIMEOUT"),
            (Status::HELPER, "HELPER"),
        ];
        NAMES
            .into_iter()
            .filter(move |(b, _)| self.0 & b != 0)
            .map(|(_, n)| n)
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// Packet and byte counters of one direction (64-bit: they never wrap in practice).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    /// Packets seen.
    pub packets: u64,
    /// Bytes seen (L3 length).
    pub bytes: u64,
}

/// Handle of a connection in a [`crate::ConnTable`]. Stale handles (of removed
/// connections) are detected by a generation number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl ConnId {
    /// A handle from its parts: for tables kept outside [`crate::ConnTable`] and for tests.
    /// A table finds nothing for a handle it did not give out (or a stale one).
    pub fn from_raw(index: u32, generation: u32) -> ConnId {
        ConnId { index, generation }
    }
}

/// TCP sequence adjustment after a helper changed a payload's length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqAdj {
    /// Sequence number from which `offset_after` applies.
    pub correction_pos: u32,
    /// Offset for sequence numbers before `correction_pos`.
    pub offset_before: i32,
    /// Offset for sequence numbers at or after `correction_pos`.
    pub offset_after: i32,
}

/// Optional per-connection data, allocated only when a connection needs any
/// of it so that a plain connection stays small (after `nf_ct_ext`).
#[derive(Default)]
pub struct Extensions {
    /// Name of the attached helper.
    pub helper: Option<&'static str>,
    /// The helper's private state.
    pub helper_data: Option<Box<dyn Any + Send + Sync>>,
    /// The connection this one was expected by.
    pub master: Option<ConnId>,
    /// The helper of that connection, which expected this one (`-m helper`).
    pub master_helper: Option<&'static str>,
    /// Sequence adjustment per direction.
    pub seqadj: Option<[SeqAdj; 2]>,
    /// Conntrack zone.
    pub zone: u16,
    /// Connection labels (128 bits, as `connlabel`).
    pub labels: u128,
    /// Per-flow streaming search state (e.g. a `-m string` match across segments).
    pub search: Option<Box<dyn Any + Send + Sync>>,
    /// When the connection was created (the `timestamp` extension).
    pub start: Option<Instant>,
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("helper", &self.helper)
            .field("master", &self.master)
            .field("seqadj", &self.seqadj)
            .field("zone", &self.zone)
            .field("labels", &self.labels)
            .field("search", &self.search.is_some())
            .field("start", &self.start)
            .finish()
    }
}

/// A tracked connection. `S` is the L4 module's per-connection state.
#[derive(Debug)]
pub struct Conn<S> {
    /// Original and reply tuples (the reply tuple includes NAT).
    pub tuples: [Tuple; 2],
    /// Status bits.
    pub status: Status,
    /// Absolute expiry time.
    pub expires: Instant,
    /// Per-direction counters.
    pub counters: [Counter; 2],
    /// The connection mark (`connmark`).
    pub mark: u32,
    /// Event/listing id, assigned at confirm.
    pub id: u32,
    /// L4 protocol state.
    pub l4: S,
    /// Optional extensions.
    pub ext: Option<Box<Extensions>>,
}

impl<S> Conn<S> {
    /// A new, unconfirmed connection for a packet with tuple `orig`, whose
    /// reply is expected as `reply` (the inverse, until NAT changes it).
    pub fn new(orig: Tuple, reply: Tuple, l4: S, expires: Instant) -> Self {
        Conn {
            tuples: [orig, reply],
            status: Status::default(),
            expires,
            counters: [Counter::default(); 2],
            mark: 0,
            id: 0,
            l4,
            ext: None,
        }
    }

    /// The tuple of direction `dir`.
    pub fn tuple(&self, dir: Dir) -> &Tuple {
        &self.tuples[dir.index()]
    }

    /// The extensions, allocated on first use.
    pub fn ext_mut(&mut self) -> &mut Extensions {
        self.ext.get_or_insert_with(Box::default)
    }

    /// Counts one packet of `len` bytes in direction `dir`.
    pub fn account(&mut self, dir: Dir, len: usize) {
        let c = &mut self.counters[dir.index()];
        c.packets += 1;
        c.bytes += len as u64;
    }
}
