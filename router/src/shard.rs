//! Flow-affine shards: the engine split so that worker threads share the connection table
//! without a global lock.
//!
//! A [`ShardSet`] holds one [`Engine`] per worker, each behind its own lock, each with its
//! own part of the connection table. What the workers share is the [`Directory`]: a
//! concurrent map (lock-free reads) from every tuple of every connection (original and reply, so NATed replies too) to
//! the shard that holds it. Every packet belongs to exactly one shard, its *owner*, chosen by
//! [`ShardSet::owner`]:
//!
//! * a packet whose tuple (the one conntrack computes; for an ICMP error, that of the
//!   connection it quotes) is in the directory goes to that shard;
//! * any other packet may start a connection, and stays with the worker that read it: the
//!   kernel spreads flows over a multi-queue device's queues, and that worker's shard is
//!   where the connection is created. At confirm the shard publishes both tuples
//!   (insert-if-absent), and the table's remove hook withdraws them when the connection
//!   ends, whatever the reason;
//! * a fragment carries no ports, so fragments go to a shard chosen by what every fragment
//!   of a datagram shares (its addresses, and for IPv4 its protocol), which reassembles them
//!   and hands the datagram ([`Handoff`]) to the shard of its flow if that is another one.
//!
//! Publishing is also what keeps NAT choices unique across shards: a NAT candidate that any
//! shard published is taken, and two shards that raced for one tuple are told apart at
//! confirm, where the loser drops its packet as the kernel does on a confirm clash.
//!
//! Workers take one shard lock at a time. When a shard needs a fact held by another (is a
//! connlimit connection alive) it only *tries* that shard's lock, so no two workers can wait
//! on each other. Writing each shard's output to the device queue of the same index makes
//! the kernel's flow steering (tun's automatic queue selection) return a flow's packets to
//! the worker of its shard, so a worker's lock is normally uncontended. Rules, their
//! counters and their state (limit, recent, hashlimit, connlimit lists) are one shared
//! [`Ruleset`] whose evaluation is `&self`.
//!
//! ```
//! use router::config::Config;
//! use router::shard::ShardSet;
//! use conntrack::{Instant, PacketBuf};
//!
//! let cfg = Config::parse(r#"
//! [[interface]]
//! name = "lan0"
//! kind = "tun"
//! addresses = ["192.0.2.1/24"]
//! "#, "doc.toml", std::path::Path::new(".")).unwrap();
//! let set = ShardSet::new(&cfg, 1, 2).unwrap();
//! let mut ping = vec![0x45, 0, 0, 28, 0, 1, 0, 0, 64, 1, 0, 0, 192, 0, 2, 2, 192, 0, 2, 1,
//!                     8, 0, 0, 0, 0x12, 0x34, 0, 1];
//! let ck = wire::checksum::data(&ping[..20]);
//! ping[10..12].copy_from_slice(&ck.to_be_bytes());
//! let ck = wire::checksum::data(&ping[20..]);
//! ping[22..24].copy_from_slice(&ck.to_be_bytes());
//! let mut work = router::shard::Work::default();
//! work.batch.push((0, PacketBuf::from_slice(&ping)));
//! set.handle(0, Instant::from_secs(1), &mut work);
//! let (shard, reply) = work.tx.pop().unwrap();
//! assert_eq!(Some(shard), set.owner(ping.as_slice()));
//! assert_eq!(reply.packet.as_slice()[20], 0); // echo reply
//! ```

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use conntrack::proto::{Frag, L4Packet, L4Proto};
use conntrack::tuple::Tuple;
use l4proto::L4Modules;
use papaya::{Compute, Operation};
use parking_lot::{Mutex, MutexGuard};
use wire::buf::PacketBuf;
use wire::time::Instant;

use crate::config::Config;
use crate::config::{Position, RulesConfig};
use crate::engine::{Engine, EngineError, EngineStats, Event, Handoff, Transmit};
use crate::offload::Offload;
use crate::route::{IfaceId, Route, RouteTable};
use nat::mapping::SharedMappings;
use rules::{self, Ruleset};

/// Most shards (and so workers) a set has.
pub const MAX_SHARDS: usize = 64;

/// A 64-bit mix (the finaliser of SplitMix64): every input bit moves every output bit.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn addr_word(a: &IpAddr) -> u64 {
    match a {
        IpAddr::V4(a) => u64::from(u32::from(*a)),
        IpAddr::V6(a) => {
            let b = u128::from(*a);
            (b as u64) ^ mix((b >> 64) as u64)
        }
    }
}

/// A keyed hasher for the directory: the key comes from the run's random seed, so a remote
/// sender cannot aim its tuples at one bucket.
#[derive(Clone, Copy, Debug)]
struct Keyed(u64);

impl BuildHasher for Keyed {
    type Hasher = KeyedHasher;
    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher(self.0)
    }
}

struct KeyedHasher(u64);

impl Hasher for KeyedHasher {
    fn finish(&self) -> u64 {
        mix(self.0)
    }
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = mix(self.0 ^ n).wrapping_add(0x9e37_79b9_7f4a_7c15);
    }
    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }
}

/// Which shard holds each tuple: both tuples of every confirmed connection. Bounded by the
/// connection tables: at most two entries per connection.
///
/// Every packet of a sharded engine reads it, from every worker, so reads must not write
/// shared memory: a striped `RwLock` made both cores bounce each stripe's lock word and two
/// shards ran slower than one (BENCHMARKS.md). papaya's reads are lock-free and touch only
/// thread-local reclamation state.
pub struct Directory {
    map: papaya::HashMap<Tuple, Held, Keyed>,
    /// Kept apart from the map so that `len` is one load (control and tests only).
    len: AtomicUsize,
    /// Entries that stand for expectations (see [`expect_key`]): while there are none, a
    /// packet of no known connection costs one lookup, not two.
    expect_keys: AtomicUsize,
}

/// A directory entry: the shard holding a tuple, and how many of its connections did
/// publish it. Keys ignore the zone (see [`key`]), so connections of different zones with
/// equal tuples share an entry, in one shard; the entry stays until the last one leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    shard: u16,
    refs: u32,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("len", &self.len())
            .finish()
    }
}

/// Directory keys ignore the conntrack zone: packets are steered before the raw table
/// assigns one. Equal tuples of two zones therefore steer to one shard, and their
/// connections share the entry (counted in [`Held::refs`]).
fn key(t: &Tuple) -> Tuple {
    Tuple { zone: 0, ..*t }
}

/// The entry an expectation publishes: what every connection it expects shares, the
/// destination and protocol (a helper's expected source port, and often the source, are
/// unknown). The unspecified source address and port 0 cannot be a connection's.
fn expect_key(t: &Tuple) -> Tuple {
    let any: IpAddr = match t.dst {
        IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    Tuple {
        src: any,
        src_id: 0,
        zone: 0,
        ..*t
    }
}

impl Directory {
    fn new(seed: u64) -> Directory {
        Directory {
            map: papaya::HashMap::builder()
                .hasher(Keyed(mix(seed ^ 0x6469_7265_6374_6f72)))
                // Churn fills the table with tombstones, and each time it is full a resize
                // starts. In incremental mode only `insert`/`remove` help a resize along, and
                // papaya 0.2.5's `compute` (our only write) never does: no table was ever
                // promoted, each resize chained one more that every operation walked, and
                // none was freed. In blocking mode the writer that needs the next table
                // finishes the copy and retires the old table, freed once readers have moved
                // on (tests/tests/shard_churn.rs bounds the memory under churn).
                // Reads never wait on a resize in either mode.
                .resize_mode(papaya::ResizeMode::Blocking)
                .build(),
            len: AtomicUsize::new(0),
            expect_keys: AtomicUsize::new(0),
        }
    }

    /// The shard a packet with flow tuple `t` belongs to: the one holding its connection,
    /// else the one holding an expectation of it (a helper's data connection must start
    /// where its master lives), else none.
    pub fn owner_of_flow(&self, t: &Tuple) -> Option<usize> {
        self.lookup(t).or_else(|| {
            if self.expect_keys.load(Ordering::Relaxed) == 0 {
                None
            } else {
                self.lookup(&expect_key(t))
            }
        })
    }

    /// Publishes an expectation of `shard` with expected tuple `t` (see [`expect_key`]);
    /// false if another shard publishes one for the same destination (the first keeps it).
    pub fn reserve_expect(&self, t: &Tuple, shard: usize) -> bool {
        match self.reserve(&expect_key(t), shard) {
            Some(created) => {
                if created {
                    self.expect_keys.fetch_add(1, Ordering::Relaxed);
                }
                true
            }
            None => false,
        }
    }

    /// Withdraws an expectation [`Directory::reserve_expect`] published.
    pub fn release_expect(&self, t: &Tuple, shard: usize) {
        if self.release(&expect_key(t), shard) {
            self.expect_keys.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The shard holding a connection with tuple `t`, if any.
    pub fn lookup(&self, t: &Tuple) -> Option<usize> {
        self.map.pin().get(&key(t)).map(|h| usize::from(h.shard))
    }

    /// Publishes `t` for one more connection of `shard`: `None` if another shard holds it,
    /// else whether the entry was created now (`Some(false)`: `shard` held it already).
    /// Each `Some` must be matched by one [`Directory::release`].
    pub fn reserve(&self, t: &Tuple, shard: usize) -> Option<bool> {
        let shard = shard as u16;
        let m = self.map.pin();
        let r = m.compute(key(t), |e| match e {
            None => Operation::Insert(Held { shard, refs: 1 }),
            Some((_, h)) if h.shard == shard => Operation::Insert(Held {
                shard,
                refs: h.refs.saturating_add(1),
            }),
            Some(_) => Operation::Abort(()),
        });
        match r {
            Compute::Inserted(..) => {
                self.len.fetch_add(1, Ordering::Relaxed);
                Some(true)
            }
            Compute::Updated { .. } => Some(false),
            Compute::Removed(..) | Compute::Aborted(()) => None,
        }
    }

    /// Withdraws one connection of `shard` from `t`'s entry; the entry goes with the last
    /// (then true).
    pub fn release(&self, t: &Tuple, shard: usize) -> bool {
        let shard = shard as u16;
        let m = self.map.pin();
        let r = m.compute(key(t), |e| match e {
            Some((_, h)) if h.shard == shard && h.refs > 1 => Operation::Insert(Held {
                shard,
                refs: h.refs - 1,
            }),
            Some((_, h)) if h.shard == shard => Operation::Remove,
            _ => Operation::Abort(()),
        });
        let removed = matches!(r, Compute::Removed(..));
        if removed {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// Number of published tuples.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether nothing is published.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What steering needs to know about a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SteerKey {
    /// The conntrack tuple of its flow (zone 0; for an ICMP error, the connection's tuple
    /// in the error's direction).
    Flow(Tuple),
    /// A fragment: a keyed symmetric hash of its datagram's addresses, and for IPv4 its
    /// protocol (from [`l3proto::defrag::key_of`]).
    Fragment(u64),
    /// Creates no connection state (ICMPv6 ND/MLD, or unparseable: it will be dropped).
    Stateless,
}

/// The packet-to-shard function (see the module documentation).
#[derive(Debug)]
pub struct Steer {
    l4: L4Modules,
    shards: usize,
    seed: u64,
}

impl Steer {
    fn new(shards: usize, seed: u64) -> Steer {
        Steer {
            l4: L4Modules::default(),
            shards: shards.max(1),
            seed: mix(seed ^ 0x0073_7465_6572),
        }
    }

    /// The steering key of an IP packet, parsed the way conntrack parses it.
    pub fn key(&self, pkt: &[u8]) -> SteerKey {
        let Ok(l3) = l3proto::parse(pkt) else {
            return SteerKey::Stateless;
        };
        if l3.frag != Frag::None {
            // Only what every fragment of a datagram shares, from reassembly's own key: the
            // fragments may differ in anything it leaves out (an IPv6 fragment's Next Header,
            // the headers after the first one's Fragment header). The identification is left
            // out too, so that all datagrams between two hosts, those of one new flow among
            // them, meet in one shard instead of racing to create its connection in two.
            return match l3proto::defrag::key_of(pkt) {
                Some(k) => {
                    let (a, b) = (addr_word(&k.src), addr_word(&k.dst));
                    SteerKey::Fragment(
                        mix(self.seed ^ u64::from(k.proto))
                            ^ mix(a.min(b))
                            ^ mix(a.max(b)).rotate_left(1),
                    )
                }
                None => SteerKey::Stateless,
            };
        }
        let p = L4Packet {
            family: l3.family,
            src: l3.src,
            dst: l3.dst,
            proto: l3.proto,
            data: l3.l4,
            verify_checksum: false,
        };
        if self.l4.is_untracked(&p) {
            return SteerKey::Stateless;
        }
        if l3proto::is_icmp_error(&l3) {
            return match l3proto::icmp_error_tuple(&l3, &self.l4, false) {
                Ok(inner) => SteerKey::Flow(key(&inner.invert())),
                Err(_) => SteerKey::Stateless,
            };
        }
        match self.l4.ids(&p) {
            Ok((src_id, dst_id)) => SteerKey::Flow(Tuple {
                src: l3.src,
                dst: l3.dst,
                src_id,
                dst_id,
                proto: l3.proto,
                zone: 0,
            }),
            Err(_) => SteerKey::Stateless,
        }
    }
}

/// What an engine that is one shard knows about the others.
#[derive(Debug)]
pub(crate) struct ShardCtx {
    pub(crate) index: usize,
    dir: Arc<Directory>,
    steer: Arc<Steer>,
    set: Weak<ShardSet>,
}

impl ShardCtx {
    /// The owner of a whole packet (`None`: no connection yet, any shard may take it).
    pub(crate) fn owner_of_packet(&self, pkt: &[u8]) -> Option<usize> {
        match self.steer.key(pkt) {
            SteerKey::Flow(t) => self.dir.owner_of_flow(&t),
            SteerKey::Fragment(h) => Some((h % self.steer.shards as u64) as usize),
            SteerKey::Stateless => None,
        }
    }

    /// Whether a candidate reply tuple belongs to a connection of another shard.
    pub(crate) fn taken_elsewhere(&self, t: &Tuple) -> bool {
        self.dir.lookup(t).is_some_and(|o| o != self.index)
    }

    /// For connlimit: whether `t` is alive in the shard that holds it, or `None` when that is
    /// this shard or no shard (the local table then answers). A busy owner counts the
    /// connection as alive (it is pruned later, when its own shard evaluates the rule).
    pub(crate) fn alive_elsewhere(&self, t: &Tuple, now_ns: u64) -> Option<bool> {
        let owner = self.dir.lookup(t).filter(|&o| o != self.index)?;
        let set = self.set.upgrade()?;
        let m = set.shards.get(owner)?;
        Some(m.try_lock().is_none_or(|e| e.conn_alive_local(t, now_ns)))
    }

    /// Publishes a tuple of a connection of this shard: `None` if another shard holds it,
    /// else whether this call inserted it.
    pub(crate) fn publish(&self, t: &Tuple) -> Option<bool> {
        self.dir.reserve(t, self.index)
    }

    /// Withdraws a tuple this shard published.
    pub(crate) fn unpublish(&self, t: &Tuple) {
        self.dir.release(t, self.index);
    }

    pub(crate) fn directory(&self) -> Arc<Directory> {
        self.dir.clone()
    }
}

/// A worker's scratch space and results for [`ShardSet::handle`]: fill `batch`/`obatch`,
/// call, take `tx` (each with the shard that sent it) and `events` (unless an event sink is
/// set).
#[derive(Debug, Default)]
pub struct Work {
    /// Received packets (interface, packet).
    pub batch: Vec<(IfaceId, PacketBuf)>,
    /// Received packets with an offload header.
    pub obatch: Vec<(IfaceId, PacketBuf, Offload)>,
    /// Packets to send, with the shard that produced them.
    pub tx: Vec<(usize, Transmit)>,
    /// Events of the shards this call locked.
    pub events: Vec<Event>,
    /// Whether the engines should generate events (someone listens).
    pub want_events: bool,
    bins: Vec<Vec<(IfaceId, PacketBuf)>>,
    obins: Vec<Vec<(IfaceId, PacketBuf, Offload)>>,
    handoffs: Vec<Handoff>,
}

/// Receives a shard's events while its lock is held (see [`ShardSet::set_event_sink`]).
pub type EventSink = Box<dyn Fn(&mut Vec<Event>) + Send + Sync>;

/// The engine as a set of flow-affine shards (see the module documentation).
pub struct ShardSet {
    shards: Box<[Mutex<Engine>]>,
    /// Next timer of each shard in nanoseconds (0: none), readable without its lock.
    deadlines: Box<[AtomicU64]>,
    dir: Arc<Directory>,
    steer: Arc<Steer>,
    rule_files: RulesConfig,
    sink: parking_lot::RwLock<Option<EventSink>>,
    /// Most new connections each shard starts per call of [`ShardSet::handle`] (0: no limit).
    new_flows_per_batch: usize,
}

impl std::fmt::Debug for ShardSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardSet")
            .field("shards", &self.shards.len())
            .field("directory", &self.dir)
            .finish()
    }
}

impl ShardSet {
    /// Builds `n` shards (clamped to 1..=[`MAX_SHARDS`]) for a configuration, loading its
    /// rule files once. The connection table maximum is split evenly between the shards.
    pub fn new(config: &Config, hash_seed: u64, n: usize) -> Result<Arc<ShardSet>, EngineError> {
        let n = n.clamp(1, MAX_SHARDS);
        let (r4, r6) = load_rules(&config.rules).map_err(EngineError::Rules)?;
        let (r4, r6) = (Arc::new(r4), Arc::new(r6));
        // One routing table for all shards: a full table is built (and held) once.
        let routes = Arc::new(RouteTable::from_config(config));
        // Each shard gets its part of the connection table; the routes are not copied.
        let cfg = Config {
            routes: Vec::new(),
            conntrack: crate::config::ConntrackConfig {
                max: config.conntrack.max.div_ceil(n).max(1),
                ..config.conntrack.clone()
            },
            interfaces: config.interfaces.clone(),
            rules: config.rules.clone(),
            nat: config.nat,
            defrag: config.defrag,
            process: config.process.clone(),
            helpers: config.helpers.clone(),
            base_dir: config.base_dir.clone(),
            path: config.path.clone(),
        };
        let mut engines = Vec::with_capacity(n);
        for _ in 0..n {
            engines.push(Engine::with_shared_parts(
                &cfg,
                hash_seed,
                r4.clone(),
                r6.clone(),
                routes.clone(),
            )?);
        }
        let dir = Arc::new(Directory::new(hash_seed));
        let steer = Arc::new(Steer::new(n, hash_seed));
        let eim = Arc::new(SharedMappings::new(config.conntrack.max));
        // ICMP errors are rate-limited for the router as a whole (RFC 4443 §2.4), not per shard.
        let icmp_limit = Arc::new(Mutex::new(crate::engine::TokenBucket::icmp_errors()));
        Ok(Arc::new_cyclic(|weak: &Weak<ShardSet>| {
            for (i, e) in engines.iter_mut().enumerate() {
                e.attach_shard(
                    ShardCtx {
                        index: i,
                        dir: dir.clone(),
                        steer: steer.clone(),
                        set: weak.clone(),
                    },
                    eim.clone(),
                    icmp_limit.clone(),
                );
            }
            ShardSet {
                deadlines: (0..n).map(|_| AtomicU64::new(0)).collect(),
                shards: engines.into_iter().map(Mutex::new).collect(),
                dir,
                steer,
                rule_files: config.rules.clone(),
                sink: parking_lot::RwLock::new(None),
                new_flows_per_batch: config.conntrack.new_flows_per_batch,
            }
        }))
    }

    /// Number of shards.
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// Always false: a set has at least one shard.
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// Locks shard `i` (control operations, tests).
    pub fn lock(&self, i: usize) -> MutexGuard<'_, Engine> {
        self.shards[i % self.shards.len()].lock()
    }

    /// The directory of published tuples.
    pub fn directory(&self) -> &Directory {
        &self.dir
    }

    /// The steering function.
    pub fn steer(&self) -> &Steer {
        &self.steer
    }

    /// The shard that owns an IP packet; `None` when any shard may take it (no connection
    /// holds its tuple yet, or it creates no state).
    pub fn owner(&self, pkt: &[u8]) -> Option<usize> {
        match self.steer.key(pkt) {
            SteerKey::Flow(t) => self.dir.owner_of_flow(&t),
            SteerKey::Fragment(h) => Some((h % self.shards.len() as u64) as usize),
            SteerKey::Stateless => None,
        }
    }

    /// Handles a worker's batch: each packet by the shard that owns it (packets any shard
    /// may take, new flows among them, go to `home`, the worker's own shard), one lock per
    /// shard involved, its own first; then the datagrams reassembled for other shards; then
    /// the due timers of `home`. Transmits and events are appended to `work`.
    ///
    /// New connections are rationed: each shard's part of the batch may start at most
    /// `[conntrack] new_flows_per_batch` of them ([`Engine::set_new_flow_budget`]); the
    /// packets of further new connections are counted drops. Under a flood of new flows,
    /// connection setup is what eats a worker's time, and while it is busy there its device
    /// queues overflow and the kernel drops established connections' packets with the
    /// flood's. A worker that keeps up reads small batches, so the budget only bites when
    /// it is falling behind.
    pub fn handle(&self, home: usize, now: Instant, work: &mut Work) {
        let n = self.shards.len();
        let home = home % n;
        if n == 1 {
            let mut e = self.shards[0].lock();
            self.drive(&mut e, 0, now, work, true);
            return;
        }
        work.bins.resize_with(n, Vec::new);
        work.obins.resize_with(n, Vec::new);
        for (iface, p) in work.batch.drain(..) {
            let o = self.owner(p.as_slice()).unwrap_or(home);
            work.bins[o].push((iface, p));
        }
        for (iface, p, off) in work.obatch.drain(..) {
            let o = self.owner(p.as_slice()).unwrap_or(home);
            work.obins[o].push((iface, p, off));
        }
        let mut home_done = false;
        for k in 0..n {
            let s = (home + k) % n;
            if work.bins[s].is_empty() && work.obins[s].is_empty() && s != home {
                continue;
            }
            let mut e = self.shards[s].lock();
            std::mem::swap(&mut work.batch, &mut work.bins[s]);
            std::mem::swap(&mut work.obatch, &mut work.obins[s]);
            self.drive(&mut e, s, now, work, s == home);
            std::mem::swap(&mut work.batch, &mut work.bins[s]);
            std::mem::swap(&mut work.obatch, &mut work.obins[s]);
            home_done |= s == home;
        }
        debug_assert!(home_done);
        // Hand-offs: a reassembled datagram never produces another.
        while let Some(h) = work.handoffs.pop() {
            let s = h.owner % n;
            let mut e = self.shards[s].lock();
            if e.events_enabled() != work.want_events {
                e.set_events(work.want_events);
            }
            e.handle_handoff(now, h);
            self.collect(&mut e, s, work);
        }
    }

    /// Runs one locked shard over `work.batch`/`work.obatch` and collects its output.
    fn drive(&self, e: &mut Engine, s: usize, now: Instant, work: &mut Work, timers: bool) {
        if e.events_enabled() != work.want_events {
            e.set_events(work.want_events);
        }
        let budget = self.new_flows_per_batch;
        e.set_new_flow_budget((budget > 0).then_some(budget));
        e.handle_batch(now, &mut work.batch);
        e.handle_batch_offload(now, &mut work.obatch);
        e.set_new_flow_budget(None);
        if timers && e.poll_timeout().is_some_and(|t| t <= now) {
            e.handle_timeout(now);
        }
        e.take_handoffs(&mut work.handoffs);
        self.collect(e, s, work);
    }

    fn collect(&self, e: &mut Engine, s: usize, work: &mut Work) {
        while let Some(t) = e.poll_transmit() {
            work.tx.push((s, t));
        }
        let from = work.events.len();
        while let Some(ev) = e.poll_event() {
            work.events.push(ev);
        }
        // Handed over under the shard lock: a connection's events come from one shard, so
        // they reach the sink in the order the shard made them, whichever worker drained them.
        if work.events.len() > from {
            if let Some(sink) = self.sink.read().as_ref() {
                let mut evs = work.events.split_off(from);
                sink(&mut evs);
            }
        }
        self.deadlines[s].store(
            e.poll_timeout().map_or(0, Instant::as_nanos),
            Ordering::Relaxed,
        );
    }

    /// Sends every shard's events to `sink` as they are drained, under the shard's lock,
    /// instead of returning them in [`Work::events`]: events of one connection then keep
    /// their order even when two workers drain its shard one after the other.
    pub fn set_event_sink(&self, sink: EventSink) {
        *self.sink.write() = Some(sink);
    }

    /// When shard `i` next needs [`ShardSet::handle`] for its timers, without locking it.
    pub fn poll_timeout(&self, i: usize) -> Option<Instant> {
        match self.deadlines.get(i)?.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Instant::from_nanos(ns)),
        }
    }

    /// All connections of all shards.
    pub fn ct_list(&self) -> Vec<conntrack::ConnInfo> {
        let mut v = Vec::new();
        for m in self.shards.iter() {
            v.extend(m.lock().ct_list());
        }
        v
    }

    /// Statistics summed over the shards, like `conntrack -S`.
    pub fn ct_stats(&self) -> String {
        let mut total = EngineStats::default();
        let mut per = String::new();
        for (i, m) in self.shards.iter().enumerate() {
            let st = m.lock().stats();
            per.push_str(&format!(
                "shard index={i} entries={} packets_in={} packets_out={}\n",
                st.entries, st.packets_in, st.packets_out
            ));
            total.merge(&st);
        }
        let mut s = total.render();
        s.push_str(&format!(
            "shards count={} published_tuples={}\n",
            self.shards.len(),
            self.dir.len()
        ));
        s.push_str(&per);
        s
    }

    /// All expectations of all shards (`conntrack -L expect`).
    pub fn expect_list(&self) -> Vec<conntrack::event::ExpectInfo> {
        let mut v = Vec::new();
        for m in self.shards.iter() {
            v.extend(m.lock().expect_list());
        }
        v
    }

    /// Removes every expectation.
    pub fn expect_flush(&self) {
        for m in self.shards.iter() {
            m.lock().expect_flush();
        }
    }

    /// Removes every connection.
    pub fn ct_flush(&self) {
        for m in self.shards.iter() {
            m.lock().ct_flush();
        }
    }

    /// Removes the connections `pred` selects in every shard; returns how many.
    pub fn ct_delete(&self, pred: impl Fn(&conntrack::ConnInfo) -> bool) -> usize {
        self.shards.iter().map(|m| m.lock().ct_delete(&pred)).sum()
    }

    /// The rules in iptables-save format (shared by every shard).
    pub fn rules_save(&self, counters: bool) -> String {
        self.shards[0].lock().rules_save(None, counters)
    }

    /// The interface called `name`.
    pub fn iface_id(&self, name: &str) -> Option<IfaceId> {
        self.shards[0].lock().iface_id(name)
    }

    /// The routing table as it is now (a snapshot: later changes make a new version).
    pub fn routes(&self) -> Arc<RouteTable> {
        self.shards[0].lock().routes().clone()
    }

    /// Changes the routing table of every shard at once: all shard locks are held, taken in
    /// index order, while `f` changes the one table they share, in place. Packets wait for
    /// the change (microseconds for one route: see BENCHMARKS.md, "routes") and then all
    /// see the new table; none sees a mix.
    pub fn update_routes<R>(&self, f: impl FnOnce(&mut RouteTable) -> R) -> R {
        let mut guards: Vec<_> = self.shards.iter().map(|m| m.lock()).collect();
        let placeholder = Arc::new(RouteTable::default());
        let mut tables: Vec<Arc<RouteTable>> = guards
            .iter_mut()
            .map(|g| std::mem::replace(g.routes_slot(), placeholder.clone()))
            .collect();
        let mut table = tables.pop().unwrap_or_default();
        // With every shard's reference gone the table is ours alone and changes in place;
        // if a snapshot (`routes()`) is still out, it is copied once and the snapshot keeps
        // the old version.
        drop(tables);
        let r = f(Arc::make_mut(&mut table));
        for g in &mut guards {
            *g.routes_slot() = table.clone();
        }
        r
    }

    /// Adds a route in every shard at once; false if its prefix has one already.
    pub fn route_add(&self, r: Route) -> bool {
        self.update_routes(|t| t.add(r))
    }

    /// Removes the route of exactly `prefix` in every shard at once.
    pub fn route_del(&self, prefix: ipnet::IpNet) -> Option<Route> {
        self.update_routes(|t| t.remove(prefix))
    }

    /// Re-reads the rule files and swaps them in every shard at once (all shard locks are
    /// held, taken in index order, while the new rules go in); on error nothing changes.
    pub fn reload(&self) -> Result<(), String> {
        let (r4, r6) = load_rules(&self.rule_files).map_err(|e| e.to_string())?;
        let (r4, r6) = (Arc::new(r4), Arc::new(r6));
        let mut guards: Vec<_> = self.shards.iter().map(|m| m.lock()).collect();
        for g in &mut guards {
            g.set_shared_rules(r4.clone(), r6.clone());
        }
        Ok(())
    }
}

/// Loads the configured rule files. An error about a file as a whole (missing, unreadable,
/// too large) is reported at the configuration key that names it, with the file's own error
/// after it; an error inside a file keeps that file's position.
pub(crate) fn load_rules(cfg: &RulesConfig) -> Result<(Ruleset, Ruleset), rules::RuleError> {
    let one = |path: &Option<std::path::PathBuf>,
               at: &Option<Position>,
               key: &str,
               family: rules::Family| {
        let Some(p) = path else {
            return Ok(Ruleset::empty(family));
        };
        Ruleset::load(p, family).map_err(|e| match at {
            Some(at) if e.line == 0 => rules::RuleError {
                file: at.file.clone(),
                line: at.line,
                column: at.column,
                message: format!("[rules] {key}: {e}"),
            },
            _ => e,
        })
    };
    Ok((
        one(&cfg.ipv4, &cfg.ipv4_at, "ipv4", rules::Family::V4)?,
        one(&cfg.ipv6, &cfg.ipv6_at, "ipv6", rules::Family::V6)?,
    ))
}
