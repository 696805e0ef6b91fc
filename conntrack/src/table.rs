//! The connection table and the expectation table.
//!
//! Connections live in a slab; a hash index maps each of a connection's two
//! tuples to `(slot, direction)`. The index stores 8-byte entries (the slot
//! and direction, and a 32-bit key of the tuple) and compares against the
//! tuples in the slab, which keeps a plain connection under 256 bytes
//! including its index entries. The hash is keyed with a seed chosen
//! by the driver (random in live mode), so remote peers cannot aim collisions.

pub use crate::conn::ConnId;
use crate::conn::{Conn, Status};
use crate::event::{ConnInfo, Event, EventKind, EventSubject, ExpectInfo};
use crate::expect::ExpectTable;
pub use crate::expect::{ExpectError, ExpectLimits, Expectation};
use crate::proto::ProtoState;
use crate::tuple::{Dir, Tuple};
use hashbrown::HashTable;
use std::collections::VecDeque;
use std::net::IpAddr;
use wire::Instant;

/// Table limits and tuning.
#[derive(Clone, Debug)]
pub struct TableConfig {
    /// Maximum number of connections (`nf_conntrack_max`).
    pub max: usize,
    /// Seed of the keyed hash.
    pub hash_seed: u64,
    /// How many slots one GC call examines at most.
    pub gc_budget: usize,
    /// How many slots early drop examines before giving up.
    pub early_drop_scan: usize,
    /// Maximum number of expectations in total.
    pub expect_max: usize,
    /// Maximum number of events queued before the oldest are dropped.
    pub event_queue: usize,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            max: 262_144,
            hash_seed: 0,
            gc_budget: 1024,
            early_drop_scan: 64,
            expect_max: 4096,
            event_queue: 65_536,
        }
    }
}

/// Counters like `conntrack -S`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Connections inserted.
    pub insert: u64,
    /// Inserts that failed (table full, clash).
    pub insert_failed: u64,
    /// Packets dropped because the table was full.
    pub drop: u64,
    /// Connections evicted to make room.
    pub early_drop: u64,
    /// Connections removed because they expired.
    pub expired: u64,
    /// Expectations created.
    pub expect_create: u64,
    /// Expectations used by a new connection.
    pub expect_new: u64,
    /// Expectations removed without being used.
    pub expect_delete: u64,
    /// Events lost because nobody polled them.
    pub events_dropped: u64,
}

/// Why confirming a connection failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfirmError {
    /// The table is full and nothing could be evicted.
    TableFull,
    /// One of the tuples is already in the table (a clash).
    Clash(ConnId),
}

struct Slot<S> {
    generation: u32,
    conn: Option<Conn<S>>,
}

/// The connection table. `S` is the L4 state type (usually the dispatch enum
/// of the `l4proto` crate).
pub struct ConnTable<S> {
    slots: Vec<Slot<S>>,
    free: Vec<u32>,
    /// (slot << 1 | direction, 32-bit key of the tuple). The key spares the slab on a
    /// resize (rehashing reads it instead of every connection's tuple: at millions of
    /// connections that was a cache miss per entry) and filters candidates before their
    /// slot is read.
    index: HashTable<(u32, u32)>,
    hasher: TupleHasher,
    count: usize,
    cfg: TableConfig,
    gc_cursor: usize,
    next_id: u32,
    expectations: ExpectTable,
    events: VecDeque<Event>,
    events_enabled: bool,
    stats: TableStats,
    /// Told about every connection that leaves the table (see [`ConnTable::set_on_remove`]).
    on_remove: Option<RemoveHook<S>>,
    /// Told about every expectation that enters or leaves (see [`ConnTable::set_on_expect`]).
    on_expect: Option<ExpectHook>,
    /// The last tuple [`ConnTable::lookup_mut`] found, with its answer: packets of one
    /// flow come in runs (a TCP window, a TUN read of one stream), and a run after its
    /// first packet skips the hash probe. Checked against the slot before use, so a
    /// removed or changed connection misses; a changed reply tuple also clears it.
    last: Option<(Tuple, ConnId, Dir)>,
}

/// A callback run for each expectation as it enters (`true`) or leaves the table.
pub type ExpectHook = Box<dyn FnMut(&Expectation, bool) + Send>;

/// A callback run for each connection as it leaves the table.
pub type RemoveHook<S> = Box<dyn FnMut(&Conn<S>) + Send>;

impl<S> core::fmt::Debug for ConnTable<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ConnTable")
            .field("count", &self.count)
            .field("max", &self.cfg.max)
            .field("expectations", &self.expectations.len())
            .finish()
    }
}

/// The keyed hash of the connection index. Tuples are two machine words (IPv4) or five
/// (IPv6); each step is a 64×64→128-bit multiply of key-masked words, folded to 64 bits
/// (the construction of wyhash/ahash's fallback, done here without the generic `Hasher`
/// plumbing, which cost about 40 instructions per lookup). The keys come from the table's
/// random seed, so colliding tuples cannot be chosen from outside.
#[derive(Clone, Debug)]
struct TupleHasher {
    k: [u64; 4],
}

#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let x = u128::from(a) * u128::from(b);
    (x as u64) ^ ((x >> 64) as u64)
}

impl TupleHasher {
    fn new(seed: u64) -> TupleHasher {
        // splitmix64: four well-spread keys from one seed (odd, so no key is zero).
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (x ^ (x >> 31)) | 1
        };
        TupleHasher {
            k: [next(), next(), next(), next()],
        }
    }

    #[inline]
    fn hash(&self, t: &Tuple) -> u64 {
        let k = &self.k;
        let rest = u64::from(t.zone) << 40
            | u64::from(t.src_id) << 24
            | u64::from(t.dst_id) << 8
            | u64::from(t.proto);
        let h = match (t.src, t.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let w = u64::from(u32::from(s)) << 32 | u64::from(u32::from(d));
                fold_mul(w ^ k[0], rest ^ k[1])
            }
            (s, d) => {
                let bits = |a: IpAddr| match a {
                    IpAddr::V4(a) => u128::from(u32::from(a)),
                    IpAddr::V6(a) => u128::from(a),
                };
                let (s, d) = (bits(s), bits(d));
                let h = fold_mul(s as u64 ^ k[0], (s >> 64) as u64 ^ k[1]);
                let h = fold_mul(d as u64 ^ k[2], (d >> 64) as u64 ^ h);
                // The family in the last word: a v4 pair and a v6 pair never hash alike.
                fold_mul(h ^ k[3], rest ^ (1 << 63) ^ k[1])
            }
        };
        // A last round spreads every input bit over the top bits (hashbrown's tag) too.
        fold_mul(h ^ k[2], k[3])
    }
}

/// The 64-bit hash hashbrown wants, from a 32-bit key: an odd multiplier, so the low bits
/// (the bucket) come from the key's low bits and the top seven (the tag) from all of them.
#[inline(always)]
fn spread(k: u32) -> u64 {
    u64::from(k).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn entry(index: u32, dir: Dir) -> u32 {
    (index << 1) | dir as u32
}

impl<S: ProtoState> ConnTable<S> {
    /// An empty table.
    pub fn new(cfg: TableConfig) -> Self {
        let expect_max = cfg.expect_max;
        let hasher = TupleHasher::new(cfg.hash_seed);
        ConnTable {
            slots: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            hasher,
            count: 0,
            cfg,
            gc_cursor: 0,
            next_id: 1,
            expectations: ExpectTable::new(expect_max),
            events: VecDeque::new(),
            events_enabled: true,
            stats: TableStats::default(),
            on_remove: None,
            on_expect: None,
            last: None,
        }
    }

    /// Runs `hook` for every connection that leaves the table, whatever the
    /// reason (timeout, early drop, flush, delete). A router that spreads
    /// connections over several tables uses it to forget what it published
    /// about a connection elsewhere.
    pub fn set_on_remove(&mut self, hook: RemoveHook<S>) {
        self.on_remove = Some(hook);
    }

    /// Turns event generation on or off (benchmarks turn it off).
    pub fn set_events(&mut self, on: bool) {
        self.events_enabled = on;
    }

    /// Number of connections.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The configured limits.
    pub fn config(&self) -> &TableConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> &TableStats {
        &self.stats
    }

    /// Counts a packet dropped because the table was full (the pipeline
    /// decides to drop; the table keeps the statistic).
    pub fn count_drop(&mut self) {
        self.stats.drop += 1;
    }

    /// The tuple's 32-bit index key (the top half of its keyed hash).
    #[inline]
    fn key(&self, t: &Tuple) -> u32 {
        (self.hasher.hash(t) >> 32) as u32
    }

    /// Warms the cache for a batch of coming lookups and returns a value
    /// derived from what it read (callers keep it so the reads are not
    /// optimised away).
    ///
    /// A lookup over a large table is a chain of dependent cache misses
    /// (index group, index entry, connection slot); done one packet at a
    /// time they are paid in sequence. Walking the whole batch first, one
    /// small loop per level, lets the CPU keep many misses in flight, so the
    /// real lookups that follow find their lines in cache. Nothing is
    /// changed; a tuple that is not in the table costs one index probe.
    pub fn warm(&self, tuples: &[Tuple]) -> u64 {
        const CHUNK: usize = 16;
        let mut sink = 0u64;
        for chunk in tuples.chunks(CHUNK) {
            let mut keys = [0u32; CHUNK];
            for (k, t) in keys.iter_mut().zip(chunk) {
                *k = self.key(t);
            }
            // Level 1 and 2: the index group and entry. The first entry with
            // the right key is taken without comparing tuples (that would
            // touch the slot, the next level); a wrong guess only warms the
            // wrong line.
            let mut slots = [u32::MAX; CHUNK];
            for (s, &k) in slots.iter_mut().zip(&keys[..chunk.len()]) {
                if let Some(&(e, _)) = self.index.find(spread(k), |&(_, ek)| ek == k) {
                    *s = e >> 1;
                }
            }
            // Level 3: the slot lines a packet reads and writes (tuples,
            // state, counters).
            for &i in &slots[..chunk.len()] {
                if let Some(Some(c)) = self.slots.get(i as usize).map(|s| s.conn.as_ref()) {
                    sink ^= u64::from(c.tuples[1].proto)
                        ^ c.expires.as_nanos()
                        ^ c.counters[0].packets
                        ^ c.counters[1].packets
                        ^ u64::from(c.status.0);
                }
            }
        }
        sink
    }

    /// Finds the connection with tuple `t` in either direction. A connection
    /// found expired is removed (with a destroy event) and not returned, so
    /// expiry is exact even between GC sweeps.
    pub fn lookup(&mut self, t: &Tuple, now: Instant) -> Option<(ConnId, Dir)> {
        let (id, dir) = self.peek(t)?;
        let expired = self.get(id).is_some_and(|c| c.expires <= now);
        if expired {
            self.stats.expired += 1;
            self.remove(id, now, "timeout");
            return None;
        }
        Some((id, dir))
    }

    /// [`ConnTable::lookup`] that also hands out the connection, writable: the
    /// per-packet path, which would otherwise find the slot a second time.
    /// Tuples must not be changed through it (see [`ConnTable::get_mut`]).
    #[inline]
    pub fn lookup_mut(&mut self, t: &Tuple, now: Instant) -> Option<(ConnId, Dir, &mut Conn<S>)> {
        // A hint only: taken when the slot still holds that connection with `t` in the
        // cached direction (tuples are unique in the table, so it is the connection).
        let cached = self.last.filter(|(lt, id, dir)| {
            lt == t
                && self.slots.get(id.index as usize).is_some_and(|s| {
                    s.generation == id.generation
                        && s.conn.as_ref().is_some_and(|c| c.tuples[dir.index()] == *t)
                })
        });
        let (id, dir) = match cached {
            Some((_, id, dir)) => (id, dir),
            None => {
                let (id, dir) = self.peek(t)?;
                self.last = Some((*t, id, dir));
                (id, dir)
            }
        };
        let live = self.slots[id.index as usize]
            .conn
            .as_ref()
            .is_some_and(|c| c.expires > now);
        if !live {
            self.stats.expired += 1;
            self.remove(id, now, "timeout");
            return None;
        }
        let c = self.slots[id.index as usize].conn.as_mut()?;
        Some((id, dir, c))
    }

    /// Finds the connection with tuple `t` without expiring anything.
    pub fn peek(&self, t: &Tuple) -> Option<(ConnId, Dir)> {
        let k = self.key(t);
        let slots = &self.slots;
        let (e, _) = *self.index.find(spread(k), |&(e, ek)| {
            ek == k
                && slots[(e >> 1) as usize]
                    .conn
                    .as_ref()
                    .is_some_and(|c| c.tuples[(e & 1) as usize] == *t)
        })?;
        let index = e >> 1;
        let dir = if e & 1 == 0 {
            Dir::Original
        } else {
            Dir::Reply
        };
        Some((
            ConnId {
                index,
                generation: slots[index as usize].generation,
            },
            dir,
        ))
    }

    /// The connection behind `id`, if it still exists.
    pub fn get(&self, id: ConnId) -> Option<&Conn<S>> {
        let slot = self.slots.get(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.conn.as_ref()
    }

    /// The connection behind `id`, writable. Tuples must not be changed
    /// through this (the index would go stale): use [`ConnTable::set_reply_tuple`].
    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn<S>> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.conn.as_mut()
    }

    /// Inserts a new connection (the confirm step). Evicts a non-assured
    /// connection if the table is full; fails if nothing can be evicted or a
    /// tuple clashes with an existing connection.
    pub fn confirm(&mut self, mut conn: Conn<S>, now: Instant) -> Result<ConnId, ConfirmError> {
        for t in &conn.tuples {
            if let Some((id, _)) = self.peek(t) {
                self.stats.insert_failed += 1;
                return Err(ConfirmError::Clash(id));
            }
        }
        if self.count >= self.cfg.max && !self.early_drop(&conn.tuples[0], now) {
            self.stats.insert_failed += 1;
            return Err(ConfirmError::TableFull);
        }
        conn.status.insert(Status::CONFIRMED);
        conn.id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = u32::try_from(self.slots.len())
                    .ok()
                    .filter(|&i| i < u32::MAX >> 1);
                let Some(i) = i else {
                    self.stats.insert_failed += 1;
                    return Err(ConfirmError::TableFull);
                };
                self.slots.push(Slot {
                    generation: 0,
                    conn: None,
                });
                i
            }
        };
        if self.events_enabled {
            self.push_event(Event {
                at: now,
                kind: EventKind::New,
                subject: EventSubject::Conn(ConnInfo::of(&conn, now)),
                reason: None,
            });
        }
        let slot = &mut self.slots[index as usize];
        slot.conn = Some(conn);
        let generation = slot.generation;
        self.index_entry(index, Dir::Original);
        self.index_entry(index, Dir::Reply);
        self.count += 1;
        self.stats.insert += 1;
        Ok(ConnId { index, generation })
    }

    /// Replaces the reply tuple of a connection (NAT picks it), keeping the
    /// index consistent. Fails if the new tuple is taken by another connection.
    pub fn set_reply_tuple(&mut self, id: ConnId, reply: Tuple) -> bool {
        self.last = None;
        if self.peek(&reply).is_some_and(|(other, _)| other != id) {
            return false;
        }
        let Some(old) = self.get(id).map(|c| c.tuples[1]) else {
            return false;
        };
        self.unindex(id.index, &old, Dir::Reply);
        if let Some(c) = self.get_mut(id) {
            c.tuples[1] = reply;
        }
        self.index_entry(id.index, Dir::Reply);
        true
    }

    /// Adds the index entry for direction `dir` of the connection in slot `index`.
    fn index_entry(&mut self, index: u32, dir: Dir) {
        let Some(c) = self.slots[index as usize].conn.as_ref() else {
            return;
        };
        let k = self.key(&c.tuples[dir.index()]);
        // Growth rehashes from the stored keys alone.
        self.index
            .insert_unique(spread(k), (entry(index, dir), k), |&(_, k)| spread(k));
    }

    fn unindex(&mut self, index: u32, t: &Tuple, dir: Dir) {
        let k = self.key(t);
        let want = entry(index, dir);
        if let Ok(occ) = self.index.find_entry(spread(k), |&(e, _)| e == want) {
            occ.remove();
        }
    }

    /// Removes a connection and its expectations; emits a destroy event with `reason`.
    pub fn remove(&mut self, id: ConnId, now: Instant, reason: &'static str) -> Option<Conn<S>> {
        self.get(id)?;
        let tuples = self.slots[id.index as usize].conn.as_ref()?.tuples;
        self.unindex(id.index, &tuples[0], Dir::Original);
        self.unindex(id.index, &tuples[1], Dir::Reply);
        let slot = &mut self.slots[id.index as usize];
        let conn = slot.conn.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.index);
        self.count -= 1;
        if let Some(hook) = self.on_remove.as_mut() {
            hook(&conn);
        }
        if self.events_enabled {
            self.push_event(Event {
                at: now,
                kind: EventKind::Destroy,
                subject: EventSubject::Conn(ConnInfo::of(&conn, now)),
                reason: Some(reason),
            });
        }
        self.remove_expectations_of(id, now);
        Some(conn)
    }

    /// Looks at up to `early_drop_scan` slots, starting at a position derived
    /// from the new tuple's hash, for a connection that may be evicted
    /// (expired, or not assured and allowed by its L4 module).
    fn early_drop(&mut self, t: &Tuple, now: Instant) -> bool {
        let n = self.slots.len();
        if n == 0 {
            return false;
        }
        let start = (self.hasher.hash(t) % n as u64) as usize;
        for k in 0..self.cfg.early_drop_scan.min(n) {
            let i = (start + k) % n;
            let victim = match &self.slots[i].conn {
                Some(c) if c.expires <= now => Some("timeout"),
                Some(c) if !c.status.contains(Status::ASSURED) && c.l4.can_early_drop() => {
                    Some("early-drop")
                }
                _ => None,
            };
            if let Some(reason) = victim {
                let id = ConnId {
                    index: i as u32,
                    generation: self.slots[i].generation,
                };
                if reason == "timeout" {
                    self.stats.expired += 1;
                } else {
                    self.stats.early_drop += 1;
                }
                self.remove(id, now, reason);
                return true;
            }
        }
        false
    }

    /// Bounded expiry sweep: examines at most `gc_budget` slots from where
    /// the previous sweep stopped, plus every expectation. Returns how many
    /// connections were removed. No per-connection timers exist.
    pub fn gc(&mut self, now: Instant) -> usize {
        let n = self.slots.len();
        let mut removed = 0;
        for _ in 0..self.cfg.gc_budget.min(n) {
            if self.gc_cursor >= n {
                self.gc_cursor = 0;
            }
            let i = self.gc_cursor;
            self.gc_cursor += 1;
            if self.slots[i]
                .conn
                .as_ref()
                .is_some_and(|c| c.expires <= now)
            {
                let id = ConnId {
                    index: i as u32,
                    generation: self.slots[i].generation,
                };
                self.stats.expired += 1;
                self.remove(id, now, "timeout");
                removed += 1;
            }
        }
        for e in self.expectations.sweep(now, self.cfg.gc_budget) {
            self.expect_removed(&e, now, "timeout");
        }
        removed
    }

    /// When a sweep could next remove something: the earliest expiry of a connection or an
    /// expectation, if any. Looks at every slot.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| s.conn.as_ref().map(|c| c.expires))
            .chain(self.expectations.next_expiry())
            .min()
    }

    /// Moves the sweep on as `passes` calls of [`ConnTable::gc`] would while nothing expires,
    /// so that a driver can cross an idle stretch in one step (the simulator with a long gap
    /// between two packets) and still sweep exactly as if it had ticked through it.
    pub fn skip_gc(&mut self, passes: u64) {
        let n = self.slots.len();
        if n == 0 || passes == 0 {
            return;
        }
        // Each pass steps the cursor `min(budget, n)` times; a cursor of `n` wraps to 0
        // before its next step.
        let steps = self.cfg.gc_budget.min(n) as u128 * u128::from(passes);
        let from = (self.gc_cursor % n) as u128;
        self.gc_cursor = ((from + steps - 1) % n as u128) as usize + 1;
    }

    /// Removes every connection (`conntrack -F`).
    pub fn flush(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            if self.slots[i].conn.is_some() {
                let id = ConnId {
                    index: i as u32,
                    generation: self.slots[i].generation,
                };
                self.remove(id, now, "flush");
            }
        }
    }

    /// All connections, in slot order (deterministic for a given history).
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn<S>)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.conn.as_ref().map(|c| {
                (
                    ConnId {
                        index: i as u32,
                        generation: s.generation,
                    },
                    c,
                )
            })
        })
    }

    /// Records an update event for `id` (state change seen by the pipeline).
    pub fn emit_update(&mut self, id: ConnId, now: Instant) {
        if !self.events_enabled {
            return;
        }
        if let Some(info) = self.get(id).map(|c| ConnInfo::of(c, now)) {
            self.push_event(Event {
                at: now,
                kind: EventKind::Update,
                subject: EventSubject::Conn(info),
                reason: None,
            });
        }
    }

    fn push_event(&mut self, e: Event) {
        if self.events.len() >= self.cfg.event_queue {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        self.events.push_back(e);
    }

    /// The oldest queued event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Approximate heap bytes used by connections and the index.
    pub fn memory_usage(&self) -> usize {
        self.slots.capacity() * core::mem::size_of::<Slot<S>>()
            + self.index.capacity() * (core::mem::size_of::<(u32, u32)>() + 1)
            + self.free.capacity() * 4
            + self
                .slots
                .iter()
                .filter_map(|s| s.conn.as_ref()?.ext.as_ref())
                .count()
                * core::mem::size_of::<crate::conn::Extensions>()
    }

    // ---- expectations ----

    /// Registers an expectation of master `exp.master` within `limits`: a master's
    /// re-announcement replaces its own, its `per_master`-th replaces its oldest (as Linux
    /// does for `max_expected`); the global and per-helper limits and a clash refuse.
    /// Returns the expectation's id.
    pub fn expect(
        &mut self,
        exp: Expectation,
        limits: ExpectLimits,
        now: Instant,
    ) -> Result<u32, ExpectError> {
        let master = self.get(exp.master).ok_or(ExpectError::NoMaster)?;
        let master = (master.id, master.tuples[0]);
        let done = self.expectations.insert(exp, master, limits, now)?;
        if let Some(e) = &done.evicted {
            self.expect_removed(e, now, "replaced");
        }
        let Some(new) = self
            .expectations
            .iter()
            .find(|e| e.id() == done.id)
            .cloned()
        else {
            return Ok(done.id);
        };
        if done.refreshed.is_none() {
            self.stats.expect_create += 1;
            self.expect_event(EventKind::ExpectNew, &new, now, "");
            if let Some(hook) = self.on_expect.as_mut() {
                hook(&new, true);
            }
        }
        Ok(done.id)
    }

    /// Finds the expectation a new connection with original tuple `t` fulfils and
    /// consumes it (unless permanent). One hash probe; nothing when no expectation lives.
    #[inline]
    pub fn take_expectation(&mut self, t: &Tuple, now: Instant) -> Option<Expectation> {
        if self.expectations.is_empty() {
            return None;
        }
        let e = self.expectations.take(t, now)?;
        self.stats.expect_new += 1;
        if !e.permanent {
            self.expect_event(EventKind::ExpectDestroy, &e, now, "used");
            if let Some(hook) = self.on_expect.as_mut() {
                hook(&e, false);
            }
        }
        Some(e)
    }

    /// The expectations (`conntrack -L expect`).
    pub fn expectations(&self) -> &ExpectTable {
        &self.expectations
    }

    /// Removes the expectation with id `id` (`conntrack -D expect`).
    pub fn remove_expectation(&mut self, id: u32, now: Instant) -> bool {
        let Some(e) = self.expectations.remove_id(id) else {
            return false;
        };
        self.expect_removed(&e, now, "deleted");
        true
    }

    /// Removes every expectation (`conntrack -F expect`); returns how many.
    pub fn flush_expectations(&mut self, now: Instant) -> usize {
        let gone = self.expectations.flush();
        for e in &gone {
            self.expect_removed(e, now, "flush");
        }
        gone.len()
    }

    fn remove_expectations_of(&mut self, master: ConnId, now: Instant) {
        if self.expectations.is_empty() {
            return;
        }
        for e in self.expectations.remove_master(master) {
            self.expect_removed(&e, now, "master-gone");
        }
    }

    /// Counts, reports and announces an expectation that left unused.
    fn expect_removed(&mut self, e: &Expectation, now: Instant, reason: &'static str) {
        self.stats.expect_delete += 1;
        self.expect_event(EventKind::ExpectDestroy, e, now, reason);
        if let Some(hook) = self.on_expect.as_mut() {
            hook(e, false);
        }
    }

    /// Sets a callback told about every expectation that enters (`true`) or leaves
    /// (`false`) the table, whatever the reason (a sharded engine publishes them).
    pub fn set_on_expect(&mut self, hook: ExpectHook) {
        self.on_expect = Some(hook);
    }

    fn expect_event(
        &mut self,
        kind: EventKind,
        e: &Expectation,
        now: Instant,
        reason: &'static str,
    ) {
        if self.events_enabled {
            self.push_event(Event {
                at: now,
                kind,
                subject: EventSubject::Expect(ExpectInfo::of(e, now)),
                reason: (!reason.is_empty()).then_some(reason),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuple::TupleMask;
    use std::time::Duration;

    #[derive(Debug)]
    struct St(bool);
    impl ProtoState for St {
        fn state_name(&self) -> &'static str {
            "S"
        }
        fn can_early_drop(&self) -> bool {
            self.0
        }
    }

    fn tup(n: u16) -> Tuple {
        Tuple {
            src: "192.0.2.2".parse().unwrap(),
            dst: "198.51.100.1".parse().unwrap(),
            src_id: n,
            dst_id: 80,
            proto: 6,
            zone: 0,
        }
    }

    fn conn(n: u16, until: u64) -> Conn<St> {
        Conn::new(tup(n), tup(n).invert(), St(true), Instant::from_secs(until))
    }

    fn table(max: usize) -> ConnTable<St> {
        ConnTable::new(TableConfig {
            max,
            hash_seed: 7,
            gc_budget: 2,
            ..TableConfig::default()
        })
    }

    #[test]
    fn confirm_lookup_both_directions_and_clash() {
        let mut t = table(10);
        let now = Instant::from_secs(1);
        let id = t.confirm(conn(1, 100), now).unwrap();
        assert_eq!(t.lookup(&tup(1), now), Some((id, Dir::Original)));
        assert_eq!(t.lookup(&tup(1).invert(), now), Some((id, Dir::Reply)));
        assert!(t.get(id).unwrap().status.contains(Status::CONFIRMED));
        assert_eq!(t.confirm(conn(1, 100), now), Err(ConfirmError::Clash(id)));
        assert_eq!(t.poll_event().unwrap().kind, EventKind::New);
        assert!(t.poll_event().is_none());
    }

    #[test]
    fn expired_connections_vanish_on_lookup_and_gc() {
        let mut t = table(10);
        for n in 0..5 {
            t.confirm(conn(n, 10), Instant::from_secs(1)).unwrap();
        }
        let late = Instant::from_secs(11);
        assert_eq!(t.lookup(&tup(0), late), None);
        assert_eq!(t.len(), 4);
        // GC is bounded: two slots per call.
        assert!(t.gc(late) <= 2);
        t.gc(late);
        t.gc(late);
        assert_eq!(t.len(), 0);
        assert_eq!(t.stats().expired, 5);
    }

    /// The index hash spreads sequential tuples (one host, consecutive ports; a /16 of
    /// hosts on one port; IPv6 hosts) evenly over both the low bits (bucket) and the top
    /// seven (hashbrown's tag), and depends on the seed.
    #[test]
    fn tuple_hash_spreads_sequential_tuples() {
        let h = TupleHasher::new(42);
        let v4 = |src: u32, sp: u16| Tuple {
            src: IpAddr::from(src.to_be_bytes()),
            dst: IpAddr::from([198, 51, 100, 9]),
            src_id: sp,
            dst_id: 443,
            proto: 6,
            zone: 0,
        };
        let v6 = |n: u32| Tuple {
            src: IpAddr::from(std::net::Ipv6Addr::from(
                (0x2001_0db8u128 << 96) | u128::from(n),
            )),
            dst: IpAddr::from(std::net::Ipv6Addr::from(
                0x2001_0db8_0000_0000_0000_0000_0000_0001u128,
            )),
            src_id: 40000,
            dst_id: 53,
            proto: 17,
            zone: 0,
        };
        let sets: [Vec<Tuple>; 3] = [
            (0..65536u32).map(|p| v4(0xc000_020a, p as u16)).collect(),
            (0..65536u32).map(|n| v4(0x0a00_0000 | n, 5000)).collect(),
            (0..65536u32).map(v6).collect(),
        ];
        for set in &sets {
            let mut low = vec![0u32; 1024];
            let mut top = [0u32; 128];
            for t in set {
                let x = h.hash(t);
                low[(x & 1023) as usize] += 1;
                top[(x >> 57) as usize] += 1;
            }
            // 64 and 512 per cell expected; a poor hash leaves cells empty or piles them up.
            let (lmin, lmax) = (low.iter().min().unwrap(), low.iter().max().unwrap());
            let (tmin, tmax) = (top.iter().min().unwrap(), top.iter().max().unwrap());
            assert!(*lmin >= 30 && *lmax <= 110, "low bits {lmin}..{lmax}");
            assert!(*tmin >= 400 && *tmax <= 630, "top bits {tmin}..{tmax}");
        }
        let t = v4(0xc000_020a, 1);
        assert_ne!(h.hash(&t), TupleHasher::new(43).hash(&t));
        assert_ne!(h.hash(&t), h.hash(&t.invert()));
    }

    /// The last-flow hint never outlives its connection: after a removal, a new
    /// connection with the same tuple (another slot or the same one), a changed reply
    /// tuple, and between two alternating flows, lookup_mut answers as lookup does.
    #[test]
    fn lookup_mut_hint_follows_removal_reuse_and_rebinding() {
        let mut t = table(10);
        let now = Instant::from_secs(1);
        let a = t.confirm(conn(1, 100), now).unwrap();
        let b = t.confirm(conn(2, 100), now).unwrap();
        for _ in 0..3 {
            assert_eq!(t.lookup_mut(&tup(1), now).map(|x| x.0), Some(a));
            assert_eq!(
                t.lookup_mut(&tup(2).invert(), now).map(|x| (x.0, x.1)),
                Some((b, Dir::Reply))
            );
        }
        assert_eq!(t.lookup_mut(&tup(1), now).map(|x| x.0), Some(a));
        t.remove(a, now, "test").unwrap();
        assert!(
            t.lookup_mut(&tup(1), now).is_none(),
            "removed: the hint must miss"
        );
        // Same tuple again, in a slot that may be the freed one.
        let a2 = t.confirm(conn(1, 100), now).unwrap();
        assert_ne!(a2, a);
        assert_eq!(t.lookup_mut(&tup(1), now).map(|x| x.0), Some(a2));
        assert_eq!(t.lookup(&tup(1), now), Some((a2, Dir::Original)));
        // A new reply tuple: the old one no longer finds the connection, the new one does.
        let old_reply = tup(1).invert();
        assert_eq!(t.lookup_mut(&old_reply, now).map(|x| x.0), Some(a2));
        let nat = Tuple {
            dst_id: 61000,
            ..old_reply
        };
        assert!(t.set_reply_tuple(a2, nat));
        assert!(t.lookup_mut(&old_reply, now).is_none());
        assert_eq!(
            t.lookup_mut(&nat, now).map(|x| (x.0, x.1)),
            Some((a2, Dir::Reply))
        );
        // Expiry still applies to a hinted connection.
        assert!(t.lookup_mut(&nat, Instant::from_secs(100)).is_none());
        assert_eq!(t.stats().expired, 1);
    }

    /// The index grows many times (rehashing from its stored keys) and shrinks back through
    /// removals; every connection stays findable in both directions throughout.
    #[test]
    fn index_growth_keeps_every_tuple_findable() {
        let mut t = table(300_000);
        let now = Instant::from_secs(1);
        let tuple = |n: u32| Tuple {
            src: IpAddr::from((0x0a00_0000 | (n >> 8)).to_be_bytes()),
            src_id: 1024 + (n & 0xff) as u16,
            ..tup(0)
        };
        let ids: Vec<ConnId> = (0..200_000u32)
            .map(|n| {
                let c = Conn::new(
                    tuple(n),
                    tuple(n).invert(),
                    St(true),
                    Instant::from_secs(100),
                );
                t.confirm(c, now).unwrap()
            })
            .collect();
        for (n, id) in ids.iter().enumerate() {
            let n = n as u32;
            assert_eq!(t.lookup(&tuple(n), now), Some((*id, Dir::Original)));
            assert_eq!(t.lookup(&tuple(n).invert(), now), Some((*id, Dir::Reply)));
        }
        for id in ids.iter().step_by(2) {
            t.remove(*id, now, "test").unwrap();
        }
        for (n, id) in ids.iter().enumerate() {
            let want = (n % 2 == 1).then_some((*id, Dir::Original));
            assert_eq!(t.lookup(&tuple(n as u32), now), want);
        }
        assert_eq!(t.len(), 100_000);
    }

    #[test]
    fn lookup_mut_agrees_with_lookup_and_expires_the_same_way() {
        let mut t = table(10);
        let now = Instant::from_secs(1);
        let id = t.confirm(conn(1, 10), now).unwrap();
        let (got, dir, c) = t.lookup_mut(&tup(1).invert(), now).unwrap();
        assert_eq!((got, dir), (id, Dir::Reply));
        c.mark = 7;
        assert_eq!(t.get(id).unwrap().mark, 7);
        assert!(t.lookup_mut(&tup(2), now).is_none());
        let late = Instant::from_secs(10);
        assert!(t.lookup_mut(&tup(1), late).is_none());
        assert_eq!(t.len(), 0);
        assert_eq!(t.stats().expired, 1);
        assert!(t.get(id).is_none());
    }

    #[test]
    fn stale_ids_are_rejected_after_slot_reuse() {
        let mut t = table(10);
        let now = Instant::from_secs(1);
        let a = t.confirm(conn(1, 100), now).unwrap();
        t.remove(a, now, "test").unwrap();
        let b = t.confirm(conn(2, 100), now).unwrap();
        assert!(t.get(a).is_none());
        assert_eq!(t.get(b).unwrap().tuples[0], tup(2));
    }

    #[test]
    fn full_table_early_drops_only_unassured() {
        let mut t = table(2);
        let now = Instant::from_secs(1);
        let a = t.confirm(conn(1, 100), now).unwrap();
        let b = t.confirm(conn(2, 100), now).unwrap();
        t.get_mut(a).unwrap().status.insert(Status::ASSURED);
        let c = t.confirm(conn(3, 100), now).unwrap();
        assert!(t.get(a).is_some(), "assured survives");
        assert!(t.get(b).is_none(), "unassured evicted");
        assert_eq!(t.stats().early_drop, 1);
        t.get_mut(c).unwrap().status.insert(Status::ASSURED);
        assert_eq!(t.confirm(conn(4, 100), now), Err(ConfirmError::TableFull));
        // A protocol may forbid early drop even when not assured.
        let mut t = table(1);
        t.confirm(
            Conn::new(tup(1), tup(1).invert(), St(false), Instant::from_secs(50)),
            now,
        )
        .unwrap();
        assert_eq!(t.confirm(conn(2, 100), now), Err(ConfirmError::TableFull));
    }

    #[test]
    fn reply_tuple_rewrite_keeps_index_consistent() {
        let mut t = table(10);
        let now = Instant::from_secs(1);
        let id = t.confirm(conn(1, 100), now).unwrap();
        let mut nat = tup(1).invert();
        nat.dst = "203.0.113.5".parse().unwrap();
        nat.dst_id = 61000;
        assert!(t.set_reply_tuple(id, nat));
        assert_eq!(t.lookup(&tup(1).invert(), now), None);
        assert_eq!(t.lookup(&nat, now), Some((id, Dir::Reply)));
        let other = t.confirm(conn(2, 100), now).unwrap();
        assert!(
            !t.set_reply_tuple(other, nat),
            "taken by another connection"
        );
    }

    #[test]
    fn expectations_limits_and_master_death() {
        let mut t = table(10);
        let now = Instant::from_secs(1);
        let m = t.confirm(conn(21, 100), now).unwrap();
        let mask = TupleMask {
            src_prefix: 32,
            src_id: 0,
            dst_id: 0xffff,
        };
        let until = now + Duration::from_secs(5);
        let limits = ExpectLimits {
            per_master: 2,
            per_helper: 0,
        };
        for port in [1000, 1001, 1002] {
            let mut want = tup(0);
            want.dst_id = port;
            let e = Expectation::new(m, want, mask, until, "ftp", Dir::Reply);
            t.expect(e, limits, now).unwrap();
        }
        // Per-master limit 2: the oldest (port 1000) was replaced.
        assert_eq!(t.expectations().len(), 2);
        let mut incoming = tup(5555);
        incoming.dst_id = 1000;
        assert!(t.take_expectation(&incoming, now).is_none());
        incoming.dst_id = 1001;
        let e = t.take_expectation(&incoming, now).unwrap();
        assert_eq!(e.master, m);
        assert_eq!(t.expectations().len(), 1);
        t.remove(m, now, "test");
        assert!(t.expectations().is_empty());
        let e = Expectation::new(m, tup(9), mask, until, "ftp", Dir::Reply);
        let missing = t.expect(e, limits, now);
        assert_eq!(missing, Err(ExpectError::NoMaster));
    }

    #[test]
    fn event_queue_is_bounded() {
        let mut t = ConnTable::new(TableConfig {
            event_queue: 3,
            ..TableConfig::default()
        });
        for n in 0..5 {
            t.confirm(conn(n, 100), Instant::ZERO).unwrap();
        }
        assert_eq!(t.stats().events_dropped, 2);
        let mut n = 0;
        while t.poll_event().is_some() {
            n += 1;
        }
        assert_eq!(n, 3);
    }

    #[test]
    fn plain_connection_is_small() {
        // Slot of a connection with a 48-byte L4 state, plus two index
        // entries (8 bytes and a control byte each): under the 256-byte budget.
        struct Big([u8; 48]);
        assert!(core::mem::size_of::<Slot<Big>>() + 2 * 9 <= 256);
        let _ = Big([0; 48]).0;
    }
}
