//! The sans-IO router core: inputs are pushed in (`handle_packet`,
//! `handle_timeout`), outputs are pulled out (`poll_transmit`, `poll_event`,
//! `poll_timeout`). The live driver and the simulator both drive it.
//!
//! Each hook is a list of stages in Linux's priority order ([`crate::hooks`]); the engine
//! walks it. A packet's state travels in one value (`InFlight`).
//!
//! ```text
//!  rx ─► L3 parse ─► defrag ─► PREROUTING ─► route ─┬─► INPUT ─► local stack
//!                                                  └─► FORWARD ─► POSTROUTING ─► tx
//!  local stack ─► route ─► OUTPUT ─► POSTROUTING ─► tx
//! ```
//!
//! One type, its `impl` split by job across files (as smoltcp splits its interface):
//! `input.rs` (packets in, the panic policy), `stages.rs` (the hook walk), `forward.rs`
//! (routing decision, forwarding, the way out), `track.rs` (conntrack), `tables.rs` (rule
//! tables), `translate.rs` (NAT), `stack.rs` (the router's own packets), `timers.rs`,
//! `drops.rs`, `event.rs` (what it reports), `packet.rs` (what it reads from bytes). This
//! file holds the types, construction, and the control and inspection API.

use crate::config::{Config, IfaceKind};
use crate::hooks::{HookTable, Stage};
use crate::offload::Offload;
use crate::route::{IfaceId, Route, RouteTable};
use crate::shard::ShardCtx;
use crate::stats::{DropCounters, InvalidCounters};
use crate::timer::{Timer, TimerTable};
use crate::{local, tcpmss};
use conntrack::conn::{Conn, Status};
use conntrack::event::Event as CtEvent;
use conntrack::proto::{ConnCtx, Frag, L4Packet, L4Proto, ProtoState, Verdict as L4Verdict};
use conntrack::table::{ConfirmError, ConnId, ConnTable, TableConfig};
use conntrack::tuple::{Dir, Family, Tuple};
use ipnet::IpNet;
use l3proto::defrag::{Defrag, Outcome};
use l4proto::{AnyState, L4Modules};
use nat::mapping::{self, Endpoint, SharedMappings};
use nat::Manip;
use rules::{self, CtState, Hook, PacketCtx, RejectWith, RuleRef, Ruleset, Table, Verdict};
use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;
use wire::buf::PacketBuf;
use wire::time::Instant;

pub use drops::DropReason;
pub use event::{json_escape, DropEvent, Event, TraceEvent};
use packet::*;

mod drops;
mod event;
mod forward;
mod helper;
mod input;
mod packet;
mod stack;
mod stages;
mod tables;
mod timers;
mod track;
mod translate;

/// How often the bounded conntrack GC sweep runs.
const GC_INTERVAL: Duration = Duration::from_millis(100);
/// How often expired endpoint-independent NAT mappings are collected.
const EIM_GC_INTERVAL: Duration = Duration::from_secs(10);
/// Bound of the transmit queue (packets); beyond it packets are dropped and counted.
const TX_QUEUE: usize = 4096;
/// Bound of the event queue.
const EVENT_QUEUE: usize = 65_536;

/// A packet to send.
#[derive(Debug)]
pub struct Transmit {
    /// Egress interface.
    pub iface: IfaceId,
    /// Next hop (gateway or destination) for ARP/ND on TAP links.
    pub next_hop: IpAddr,
    /// The IP packet.
    pub packet: PacketBuf,
    /// The offload header it arrived with (`handle_packet_offload`), handed on with it:
    /// `None` for packets the router made and for packets that arrived without one.
    pub offload: Option<Offload>,
}

/// The marks a packet picks up in the rule tables, as in the kernel's skb: the mark, the
/// conntrack zone, the trace id once TRACE marked it, and the MSS that TCPMSS rules chose.
#[derive(Debug, Clone, Copy, Default)]
struct Skb {
    mark: u32,
    /// Conntrack zone chosen by `-j CT --zone` in the raw table.
    zone: u16,
    trace: Option<u64>,
    mss: Option<u16>,
    /// Helper chosen by `-j CT --helper NAME` in the raw table: its position in the
    /// registry plus one, 0 for none (a byte: this value is built for every packet).
    helper: u8,
}

/// One packet on its way through the hooks: everything the stages read and write about it
/// travels in this one value, never on the engine (quinn-proto keeps per-connection state
/// the same way). A packet the router makes while another is in flight (an ICMP error, a
/// RST) is a second `InFlight`, so nothing needs to be set aside and restored.
struct InFlight {
    pkt: PacketBuf,
    meta: Meta,
    /// The packet's connection, once the conntrack stage ran.
    ct: Ct,
    skb: Skb,
    /// The raw table said NOTRACK / CT --notrack: conntrack skips it.
    notrack: bool,
    /// Interface it arrived on (`None`: made by the router).
    ingress: Option<IfaceId>,
    /// Interface and next hop the routing decision chose (`None` before it).
    egress: Option<IfaceId>,
    via: Option<IpAddr>,
    /// The original fragments, when `pkt` is a reassembled clone (boxed: most packets are
    /// whole, and this value is built for every one).
    frag: Option<Box<FragPending>>,
    /// The offload header it arrived with (`handle_packet_offload`).
    offload: Option<Offload>,
}

impl InFlight {
    /// A packet's state from its bytes, or why they are not an IP packet.
    #[inline(always)]
    fn parse(
        pkt: PacketBuf,
        ingress: Option<IfaceId>,
    ) -> Result<InFlight, (conntrack::proto::L3Error, PacketBuf)> {
        match Meta::of(pkt.as_slice()) {
            Ok(meta) => Ok(InFlight::new(pkt, meta, ingress)),
            Err(e) => Err((e, pkt)),
        }
    }

    #[inline(always)]
    fn new(pkt: PacketBuf, meta: Meta, ingress: Option<IfaceId>) -> InFlight {
        InFlight {
            pkt,
            meta,
            ct: Ct::Untracked,
            skb: Skb::default(),
            notrack: false,
            ingress,
            egress: None,
            via: None,
            frag: None,
            offload: None,
        }
    }

    /// Whether the L4 checksum is partial (offloaded).
    fn partial_csum(&self) -> bool {
        self.offload.is_some_and(|o| o.needs_csum)
    }

    /// The largest packet this one becomes on the wire: itself, or one segment of an
    /// offloaded super-packet.
    fn wire_len(&self) -> usize {
        self.offload
            .map_or(self.meta.len, |o| o.segment_len(self.meta.len))
    }
}

/// Why the engine could not be built.
#[derive(Debug)]
pub enum EngineError {
    /// A rule file failed to load.
    Rules(rules::RuleError),
    /// Anything else about the configuration.
    Config(String),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Rules(e) => write!(f, "{e}"),
            EngineError::Config(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for EngineError {}

struct Iface {
    /// Shared so that hooks can hold the name without allocating per packet.
    name: Arc<str>,
    mtu: usize,
    addrs: Vec<IpNet>,
}

/// The state of a packet with respect to conntrack while it crosses a hook.
enum Ct {
    /// Not tracked (NOTRACK, or a fragment before reassembly exists).
    Untracked,
    /// Conntrack refused it.
    Invalid(conntrack::Invalid),
    /// Belongs to a confirmed connection.
    Known { id: ConnId, dir: Dir, related: bool },
    /// First packet of a connection not yet in the table (inserted at confirm).
    New {
        conn: Box<Conn<AnyState>>,
        related: bool,
    },
}

impl Ct {
    /// Whether the nat table must run for a `manip` binding: only for the
    /// first packet of a connection, and only while that kind of mapping is
    /// not bound yet (an endpoint-independent mapping binds DNAT itself).
    fn nat_due(&self, manip: Manip) -> bool {
        let bound = match manip {
            Manip::Src => Status::SRC_NAT,
            Manip::Dst => Status::DST_NAT,
        };
        matches!(self, Ct::New { conn, .. } if !conn.status.contains(bound))
    }

    #[inline(always)]
    fn state(&self, table: &ConnTable<AnyState>) -> CtState {
        // The virtual states SNAT / DNAT (for `--ctstate`) follow the
        // connection's NAT status bits, as in xt_conntrack.
        let nat = |status: Status| {
            let mut v = CtState::default();
            if status.contains(Status::SRC_NAT) {
                v |= CtState::SNAT;
            }
            if status.contains(Status::DST_NAT) {
                v |= CtState::DNAT;
            }
            v
        };
        match self {
            Ct::Untracked => CtState::UNTRACKED,
            Ct::Invalid(_) => CtState::INVALID,
            Ct::New { related, conn } => {
                let base = if *related {
                    CtState::RELATED
                } else {
                    CtState::NEW
                };
                base | nat(conn.status)
            }
            Ct::Known { id, dir, related } => {
                let Some(c) = table.get(*id) else {
                    return CtState::INVALID;
                };
                let base = if *related {
                    CtState::RELATED
                } else if *dir == Dir::Reply || c.status.contains(Status::SEEN_REPLY) {
                    CtState::ESTABLISHED
                } else if c.status.contains(Status::EXPECTED) {
                    CtState::RELATED
                } else {
                    CtState::NEW
                };
                base | nat(c.status)
            }
        }
    }
}

/// A simple token bucket in virtual time (RFC 4443 §2.4 (f) rate limiting of
/// ICMP errors; the same limit applies to ICMPv4, as Linux does).
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate_per_sec: u64,
    burst: u64,
    tokens_milli: u64,
    last: Instant,
}

impl TokenBucket {
    /// The router's ICMP error limit: 1,000 per second, bursts of 50 (Linux's defaults,
    /// `icmp_msgs_per_sec` and `icmp_msgs_burst`).
    pub(crate) fn icmp_errors() -> Self {
        TokenBucket::new(1000, 50)
    }

    fn new(rate_per_sec: u64, burst: u64) -> Self {
        TokenBucket {
            rate_per_sec,
            burst,
            tokens_milli: burst * 1000,
            last: Instant::ZERO,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = (now - self.last).as_micros() as u64;
        self.last = now;
        let add = elapsed.saturating_mul(self.rate_per_sec) / 1000;
        self.tokens_milli = (self.tokens_milli.saturating_add(add)).min(self.burst * 1000);
        if self.tokens_milli >= 1000 {
            self.tokens_milli -= 1000;
            true
        } else {
            false
        }
    }
}

/// The original fragments of a reassembled datagram, waiting for the
/// clone's verdict.
#[derive(Debug)]
struct FragPending {
    /// In arrival order.
    fragments: Vec<PacketBuf>,
    /// Index of the offset-0 fragment (the one holding the L4 header).
    first: usize,
    /// The clone's addresses and ports before NAT, to see what NAT changed.
    before: (IpAddr, IpAddr, Option<u16>, Option<u16>),
}

/// The router's own addresses, split by family so a test is a few integer
/// compares.
#[derive(Debug, Default)]
struct LocalAddrs {
    v4: Vec<u32>,
    /// Bit `v4_bit(a)` set for every address in `v4`.
    v4_filter: u64,
    v6: Vec<u128>,
}

/// One of 64 bits chosen by a multiplicative hash of the address.
fn v4_bit(a: u32) -> u64 {
    1 << (a.wrapping_mul(0x9e37_79b1) >> 26)
}

impl LocalAddrs {
    fn new<'a>(nets: impl Iterator<Item = &'a IpNet>) -> LocalAddrs {
        let mut l = LocalAddrs::default();
        for n in nets {
            match n.addr() {
                IpAddr::V4(a) => {
                    l.v4.push(u32::from(a));
                    l.v4_filter |= v4_bit(u32::from(a));
                }
                IpAddr::V6(a) => l.v6.push(u128::from(a)),
            }
        }
        l
    }

    #[inline(always)]
    fn contains(&self, a: IpAddr) -> bool {
        match a {
            // Asked for every forwarded packet, nearly always "no": a one-word filter first.
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4_filter & v4_bit(a) != 0 && self.v4.contains(&a)
            }
            IpAddr::V6(a) => self.v6.contains(&u128::from(a)),
        }
    }
}

/// Counters of one engine (or, merged, of all shards): `conntrack -S` plus drops.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub entries: u64,
    pub max: u64,
    pub packets_in: u64,
    pub gso_in: u64,
    pub packets_out: u64,
    pub table: conntrack::table::TableStats,
    pub drops: DropCounters,
    pub invalid: InvalidCounters,
    /// What each helper did, by (helper, action).
    pub helpers: std::collections::BTreeMap<(&'static str, &'static str), u64>,
}

impl EngineStats {
    /// Adds another engine's counters to these.
    pub fn merge(&mut self, o: &EngineStats) {
        self.entries += o.entries;
        self.max += o.max;
        self.packets_in += o.packets_in;
        self.gso_in += o.gso_in;
        self.packets_out += o.packets_out;
        let (t, u) = (&mut self.table, &o.table);
        t.insert += u.insert;
        t.insert_failed += u.insert_failed;
        t.drop += u.drop;
        t.early_drop += u.early_drop;
        t.expired += u.expired;
        t.expect_create += u.expect_create;
        t.expect_new += u.expect_new;
        t.expect_delete += u.expect_delete;
        t.events_dropped += u.events_dropped;
        self.drops.merge(&o.drops);
        self.invalid.merge(&o.invalid);
        for (k, n) in &o.helpers {
            *self.helpers.entry(*k).or_default() += n;
        }
    }

    /// The `ct stats` text: one summary line, then one line per drop and invalid reason.
    pub fn render(&self) -> String {
        let s = &self.table;
        let mut o = format!(
            "entries={} max={} packets_in={} gso_in={} packets_out={} insert={} insert_failed={} drop={} early_drop={} expired={} expect_create={} expect_new={} expect_delete={} events_dropped={}\n",
            self.entries,
            self.max,
            self.packets_in,
            self.gso_in,
            self.packets_out,
            s.insert,
            s.insert_failed,
            s.drop,
            s.early_drop,
            s.expired,
            s.expect_create,
            s.expect_new,
            s.expect_delete,
            s.events_dropped
        );
        for (reason, n) in self.drops.iter() {
            o.push_str(&format!("drop reason=\"{reason}\" count={n}\n"));
        }
        for (reason, n) in self.invalid.iter() {
            o.push_str(&format!("invalid reason=\"{reason}\" count={n}\n"));
        }
        // One line per helper: each action it took, and how often.
        let mut last = None;
        for ((helper, action), n) in &self.helpers {
            if last != Some(*helper) {
                if last.is_some() {
                    o.push('\n');
                }
                o.push_str(&format!("helper name={helper}"));
                last = Some(*helper);
            }
            o.push_str(&format!(" {action}={n}"));
        }
        if last.is_some() {
            o.push('\n');
        }
        o
    }
}

/// The router core.
pub struct Engine {
    ifaces: Vec<Iface>,
    /// The router's own addresses as integers (v4 in the low 32 bits), for
    /// the per-packet "is this for me" test.
    local: LocalAddrs,
    kinds: Vec<IfaceKind>,
    /// Shared by all shards of a sharded router; changed in place by `ShardSet::update_routes`
    /// while every shard is locked, copied on write otherwise.
    routes: Arc<RouteTable>,
    rules4: Arc<Ruleset>,
    rules6: Arc<Ruleset>,
    rule_files: crate::config::RulesConfig,
    ct: ConnTable<AnyState>,
    l4: L4Modules,
    verify_checksum: bool,
    tx: VecDeque<Transmit>,
    events: VecDeque<Event>,
    events_enabled: bool,
    drops: DropCounters,
    /// Why conntrack called packets INVALID (like `conntrack -S` invalid=, by reason).
    invalid: InvalidCounters,
    /// Shared by all shards of a sharded router: the limit is the router's, as in Linux.
    icmp_limit: Arc<parking_lot::Mutex<TokenBucket>>,
    /// Every deadline (see [`crate::timer`]).
    timers: TimerTable,
    /// The hook stage tables of each family, pruned to the tables its ruleset has.
    hooks4: HookTable,
    hooks6: HookTable,
    now: Instant,
    packets_in: u64,
    /// Offloaded super-packets handled (each counts once in `packets_in`).
    gso_in: u64,
    packets_out: u64,
    /// The rule that decided the last DROP/REJECT verdict, for the drop event.
    last_rule: Option<RuleRef>,
    /// The NAT target the last nat-table traversal chose, if any.
    last_nat: Option<nat::NatTarget>,
    /// Counter mixed into `--random-fully` port choices (deterministic in the
    /// simulator).
    nat_salt: u64,
    /// Per-engine secret keying `--random` port choices (from the hash seed).
    nat_secret: u64,
    /// Fragment reassembly (`[defrag]`).
    defrag: Defrag,
    defrag_time_exceeded: bool,
    /// RFC 4787 behaviour for UDP (`[nat]`).
    nat_cfg: crate::config::NatConfig,
    /// Endpoint-independent mappings (empty unless `nat_cfg.udp_eim`).
    /// Shared by all shards of a sharded router: a mapping holds whatever the destination.
    eim: Arc<SharedMappings>,
    /// The last trace id given to a TRACEd packet.
    next_trace_id: u64,
    /// Scratch output of rule evaluation, kept between calls (see `run_table`).
    eval_out: Option<Box<rules::EvalOutput>>,
    /// Scratch space of `handle_batch` (kept to avoid an allocation per batch).
    warm_tuples: Vec<Tuple>,
    /// Keeps the cache-warming reads observable so they are not optimised away.
    warm_sink: u64,
    /// Set when this engine is one shard of a [`crate::shard::ShardSet`].
    shard: Option<ShardCtx>,
    /// Reassembled datagrams that belong to other shards (bounded by `MAX_HANDOFFS`).
    handoffs: Vec<Handoff>,
    /// Packets dropped because handling them panicked (see `contain_panic`).
    panics: u64,
    /// New connections the current batch may still start (`None`: no limit); see
    /// [`Engine::set_new_flow_budget`].
    new_flow_budget: Option<usize>,
    /// The application helpers by name (`[helpers]`).
    helpers: Arc<helpers::Registry>,
    /// `[helpers] auto_assign`: attach helpers by port, without a `CT --helper` rule.
    helper_auto: bool,
    /// Whether a helper may be attached at all: `auto_assign`, or a ruleset with a
    /// `CT --helper` rule. Only then is the helper stage in the stage tables.
    helpers_on: bool,
    /// What the helpers did, by (helper, action) (`ct stats`).
    helper_stats: std::collections::BTreeMap<(&'static str, &'static str), u64>,
    /// Expectations of a connection the helper stage saw unconfirmed (its first packet),
    /// registered by the confirm stage that follows it in the same hook walk, with limits.
    pending_expects: Vec<(conntrack::Expectation, conntrack::ExpectLimits)>,
}

/// Drop reason of a new connection's packet beyond its batch's budget (see
/// [`Engine::set_new_flow_budget`]).
pub const NEW_FLOW_BUDGET_DROP: DropReason = DropReason::CtNewFlowBudget;

/// Most reassembled datagrams a shard holds for others between two
/// [`Engine::take_handoffs`] calls (the live driver drains them after every batch).
const MAX_HANDOFFS: usize = 1024;

/// A datagram one shard reassembled for another (see [`crate::shard`]).
#[derive(Debug)]
pub struct Handoff {
    /// The shard that owns the datagram's flow.
    pub owner: usize,
    ingress: IfaceId,
    datagram: l3proto::defrag::Datagram,
    describe: String,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("interfaces", &self.ifaces.len())
            .field("conntrack", &self.ct)
            .finish()
    }
}

impl Engine {
    /// Builds the engine for a configuration, loading its rule files.
    pub fn new(config: &Config, hash_seed: u64) -> Result<Engine, EngineError> {
        let (rules4, rules6) =
            crate::shard::load_rules(&config.rules).map_err(EngineError::Rules)?;
        let mut engine = Engine::with_rules(config, hash_seed, rules4, rules6)?;
        engine.rule_files = config.rules.clone();
        Ok(engine)
    }

    /// Builds the engine with rulesets given directly (tests, benchmarks).
    pub fn with_rules(
        config: &Config,
        hash_seed: u64,
        rules4: Ruleset,
        rules6: Ruleset,
    ) -> Result<Engine, EngineError> {
        Engine::with_shared_rules(config, hash_seed, Arc::new(rules4), Arc::new(rules6))
    }

    /// Builds the engine with rulesets that other engines may share: rule evaluation is
    /// `&self`, and counters and match state live in the ruleset (see [`crate::shard`]).
    pub fn with_shared_rules(
        config: &Config,
        hash_seed: u64,
        rules4: Arc<Ruleset>,
        rules6: Arc<Ruleset>,
    ) -> Result<Engine, EngineError> {
        let routes = Arc::new(RouteTable::from_config(config));
        Engine::with_shared_parts(config, hash_seed, rules4, rules6, routes)
    }

    /// [`Engine::with_shared_rules`] with a routing table that other engines may share
    /// (a full table is built once for all shards).
    pub(crate) fn with_shared_parts(
        config: &Config,
        hash_seed: u64,
        rules4: Arc<Ruleset>,
        rules6: Arc<Ruleset>,
        routes: Arc<RouteTable>,
    ) -> Result<Engine, EngineError> {
        let mut timeouts = l4proto::Timeouts::default();
        for (k, v) in &config.conntrack.timeouts {
            timeouts.set(k, *v).map_err(EngineError::Config)?;
        }
        let helpers = helpers::Registry::with_config(&config.helpers.settings)
            .map_err(EngineError::Config)?;
        let helpers_on =
            config.helpers.auto_assign || rules4.names_helpers() || rules6.names_helpers();
        let stage_table = |r: &Ruleset| {
            let t = HookTable::for_ruleset(r);
            if helpers_on {
                t.with_helpers()
            } else {
                t
            }
        };
        let (hooks4, hooks6) = (stage_table(&rules4), stage_table(&rules6));
        let tcp = l4proto::TcpConfig {
            loose: config.conntrack.tcp_loose,
            be_liberal: config.conntrack.tcp_be_liberal,
            ..l4proto::TcpConfig::default()
        };
        Ok(Engine {
            ifaces: config
                .interfaces
                .iter()
                .map(|i| Iface {
                    name: Arc::from(i.name.as_str()),
                    mtu: i.mtu as usize,
                    addrs: i.addresses.clone(),
                })
                .collect(),
            local: LocalAddrs::new(config.interfaces.iter().flat_map(|i| i.addresses.iter())),
            kinds: config.interfaces.iter().map(|i| i.kind).collect(),
            routes,
            rules4,
            rules6,
            rule_files: crate::config::RulesConfig::default(),
            ct: ConnTable::new(TableConfig {
                max: config.conntrack.max,
                hash_seed,
                ..TableConfig::default()
            }),
            l4: L4Modules::new(timeouts, tcp),
            verify_checksum: config.conntrack.checksum,
            tx: VecDeque::new(),
            events: VecDeque::new(),
            events_enabled: true,
            drops: DropCounters::default(),
            invalid: InvalidCounters::default(),
            icmp_limit: Arc::new(parking_lot::Mutex::new(TokenBucket::icmp_errors())),
            timers: {
                let mut t = TimerTable::default();
                t.set(Timer::ConntrackGc, Instant::ZERO);
                if config.nat.udp_eim {
                    t.set(Timer::Mappings, Instant::ZERO);
                }
                t
            },
            hooks4,
            hooks6,
            now: Instant::ZERO,
            packets_in: 0,
            gso_in: 0,
            packets_out: 0,
            last_rule: None,
            last_nat: None,
            nat_salt: 0,
            next_trace_id: 0,
            eval_out: None,
            nat_secret: hash_seed.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15,
            warm_tuples: Vec::new(),
            warm_sink: 0,
            shard: None,
            handoffs: Vec::new(),
            panics: 0,
            new_flow_budget: None,
            helpers: Arc::new(helpers),
            helper_auto: config.helpers.auto_assign,
            helpers_on,
            helper_stats: Default::default(),
            pending_expects: Vec::new(),
            defrag: Defrag::new(config.defrag.limits),
            defrag_time_exceeded: config.defrag.time_exceeded,
            nat_cfg: config.nat,
            eim: Arc::new(SharedMappings::new(config.conntrack.max)),
        })
    }

    /// Turns event generation off (benchmarks) or on.
    pub fn set_events(&mut self, on: bool) {
        self.events_enabled = on;
        self.ct.set_events(on);
    }

    /// Whether events are generated.
    pub fn events_enabled(&self) -> bool {
        self.events_enabled
    }

    /// Lets the packets handled from now on start at most `budget` new connections (`None`:
    /// no limit). The packet of a new connection beyond it is dropped right after conntrack
    /// found no connection for it, as [`NEW_FLOW_BUDGET_DROP`]: it costs a parse, the raw
    /// table and one lookup, but none of connection setup (rules, NAT, the table's insert and
    /// early drop, the directory, forwarding). Packets of known connections, untracked ones
    /// (raw `NOTRACK`), those the raw table drops and the router's own never use it. A
    /// sharded router sets it per read batch (see [`crate::shard::ShardSet::handle`]).
    pub fn set_new_flow_budget(&mut self, budget: Option<usize>) {
        self.new_flow_budget = budget;
    }

    /// Makes this engine one shard of a [`crate::shard::ShardSet`]: it learns the directory
    /// and the other shards, shares the endpoint-independent NAT mappings, and withdraws
    /// the tuples it published when their connections leave the table.
    pub(crate) fn attach_shard(
        &mut self,
        ctx: ShardCtx,
        eim: Arc<SharedMappings>,
        icmp_limit: Arc<parking_lot::Mutex<TokenBucket>>,
    ) {
        self.icmp_limit = icmp_limit;
        let dir = ctx.directory();
        let index = ctx.index;
        let exp_dir = dir.clone();
        self.ct.set_on_remove(Box::new(move |c| {
            dir.release(&c.tuples[0], index);
            dir.release(&c.tuples[1], index);
        }));
        // Expectations are published too, so that the connection they expect, whichever
        // worker reads its first packet, is created in this shard, next to its master.
        // One that another shard published first for the same destination is not
        // (`reserve_expect` refuses); releasing it is then a no-op.
        self.ct.set_on_expect(Box::new(move |e, added| {
            if added {
                exp_dir.reserve_expect(&e.tuple, index);
            } else {
                exp_dir.release_expect(&e.tuple, index);
            }
        }));
        self.eim = eim;
        self.shard = Some(ctx);
    }

    /// connlimit's test on this engine's table (see `conn_alive_in`).
    pub(crate) fn conn_alive_local(&self, t: &Tuple, now_ns: u64) -> bool {
        conn_alive_in(&self.ct, t, now_ns)
    }

    /// Interface names, by id.
    pub fn iface_name(&self, id: IfaceId) -> Option<&str> {
        self.ifaces.get(id).map(|i| &*i.name)
    }

    /// The id of the interface called `name`.
    pub fn iface_id(&self, name: &str) -> Option<IfaceId> {
        self.ifaces.iter().position(|i| &*i.name == name)
    }

    /// The routing table.
    pub fn routes(&self) -> &Arc<RouteTable> {
        &self.routes
    }

    /// Adds a route unless its prefix has one; returns whether it was added. Takes effect
    /// for the next packet. (A table shared with other shards is copied first: change the
    /// routes of a [`crate::shard::ShardSet`] with its own methods.)
    pub fn route_add(&mut self, r: Route) -> bool {
        Arc::make_mut(&mut self.routes).add(r)
    }

    /// Removes the route of exactly `prefix`; see [`Engine::route_add`].
    pub fn route_del(&mut self, prefix: IpNet) -> Option<Route> {
        Arc::make_mut(&mut self.routes).remove(prefix)
    }

    /// The table slot itself, for [`crate::shard::ShardSet::update_routes`].
    pub(crate) fn routes_slot(&mut self) -> &mut Arc<RouteTable> {
        &mut self.routes
    }

    /// Kind of an interface.
    pub fn iface_kind(&self, id: IfaceId) -> Option<IfaceKind> {
        self.kinds.get(id).copied()
    }

    fn is_local(&self, a: &IpAddr) -> bool {
        self.local.contains(*a)
    }

    fn local_addr_on(&self, iface: Option<IfaceId>, family: Family) -> Option<IpAddr> {
        let want = |n: &&IpNet| Family::of(&n.addr()) == family;
        iface
            .and_then(|i| self.ifaces.get(i))
            .and_then(|i| i.addrs.iter().find(want))
            .or_else(|| self.ifaces.iter().flat_map(|i| i.addrs.iter()).find(want))
            .map(IpNet::addr)
    }

    fn iface_name_opt(&self, id: Option<IfaceId>) -> &str {
        id.and_then(|i| self.iface_name(i)).unwrap_or("")
    }

    /// The next packet to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.tx.pop_front()
    }

    /// The next event (conntrack events first, in order, then drops/logs).
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(e) = self.ct.poll_event() {
            return Some(Event::Conntrack(e));
        }
        self.events.pop_front()
    }

    // -------------------------------------------------------- inspection

    /// Snapshot of all connections.
    pub fn ct_list(&self) -> Vec<conntrack::ConnInfo> {
        self.ct
            .iter()
            .map(|(_, c)| conntrack::ConnInfo::of(c, self.now))
            .collect()
    }

    /// The expectations (`conntrack -L expect`), in table order.
    pub fn expect_list(&self) -> Vec<conntrack::event::ExpectInfo> {
        self.ct
            .expectations()
            .iter()
            .map(|e| conntrack::event::ExpectInfo::of(e, self.now))
            .collect()
    }

    /// Removes every expectation (`conntrack -F expect`).
    pub fn expect_flush(&mut self) {
        self.ct.flush_expectations(self.now);
    }

    /// Statistics like `conntrack -S`, plus drop counters per reason.
    pub fn ct_stats(&self) -> String {
        self.stats().render()
    }

    /// The counters behind [`Engine::ct_stats`].
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            entries: self.ct.len() as u64,
            max: self.ct.config().max as u64,
            packets_in: self.packets_in,
            gso_in: self.gso_in,
            packets_out: self.packets_out,
            table: *self.ct.stats(),
            drops: self.drops.clone(),
            invalid: self.invalid.clone(),
            helpers: self.helper_stats.clone(),
        }
    }

    /// Drop counters per reason.
    pub fn drop_counters(&self) -> &DropCounters {
        &self.drops
    }

    /// Removes every connection.
    pub fn ct_flush(&mut self) {
        self.ct.flush(self.now);
    }

    /// Removes the connections `pred` selects; returns how many.
    pub fn ct_delete(&mut self, pred: impl Fn(&conntrack::ConnInfo) -> bool) -> usize {
        let ids: Vec<_> = self
            .ct
            .iter()
            .filter(|(_, c)| pred(&conntrack::ConnInfo::of(c, self.now)))
            .map(|(id, _)| id)
            .collect();
        for id in &ids {
            self.ct.remove(*id, self.now, "deleted");
        }
        ids.len()
    }

    /// Re-reads the configured rule files and swaps both rulesets at once;
    /// on any error nothing changes. Connections are kept.
    pub fn reload_rules(&mut self) -> Result<(), String> {
        let (r4, r6) = crate::shard::load_rules(&self.rule_files).map_err(|e| e.to_string())?;
        self.set_shared_rules(Arc::new(r4), Arc::new(r6));
        Ok(())
    }

    /// Replaces the rulesets directly (tests, benchmarks).
    pub fn set_rules(&mut self, r4: Ruleset, r6: Ruleset) {
        self.set_shared_rules(Arc::new(r4), Arc::new(r6));
    }

    /// Replaces the rulesets with ones other engines may share.
    pub fn set_shared_rules(&mut self, r4: Arc<Ruleset>, r6: Arc<Ruleset>) {
        // On once set: a helped connection's sequence adjustment outlives the rule that
        // attached its helper.
        self.helpers_on |= r4.names_helpers() || r6.names_helpers();
        let on = self.helpers_on;
        let stage_table = |r: &Ruleset| {
            let t = HookTable::for_ruleset(r);
            if on {
                t.with_helpers()
            } else {
                t
            }
        };
        self.hooks4 = stage_table(&r4);
        self.hooks6 = stage_table(&r6);
        self.rules4 = r4;
        self.rules6 = r6;
    }

    /// The rulesets in iptables-save format; `family` None = both.
    pub fn rules_save(&self, family: Option<Family>, counters: bool) -> String {
        let mut s = String::new();
        if family != Some(Family::V6) {
            s.push_str(&self.rules4.save(counters));
        }
        if family != Some(Family::V4) {
            s.push_str(&self.rules6.save(counters));
        }
        s
    }

    /// Number of tracked connections.
    pub fn ct_len(&self) -> usize {
        self.ct.len()
    }

    /// Approximate memory used by the connection table.
    pub fn ct_memory(&self) -> usize {
        self.ct.memory_usage()
    }
}

/// The internal endpoint of a UDP connection under an endpoint-independent
/// mapping, and the direction its packets travel in ("outbound"): the
/// original source of a source-NATed connection, or the reply source of one
/// let in through the mapping (endpoint-independent filtering).
/// For -m connlimit: whether `t` is a connection of `cts` that still counts: tracked,
/// unexpired and, for TCP, not closing (as the kernel's nf_conncount).
fn conn_alive_in(cts: &ConnTable<AnyState>, t: &Tuple, now_ns: u64) -> bool {
    cts.peek(t)
        .and_then(|(id, _)| cts.get(id))
        .is_some_and(|c| {
            c.expires.as_nanos() > now_ns && !matches!(c.l4.state_name(), "TIME_WAIT" | "CLOSE")
        })
}

fn eim_internal(tuples: &[Tuple; 2], status: Status) -> Option<(Endpoint, Dir)> {
    let (t, dir) = if status.contains(Status::SRC_NAT) {
        (tuples[0], Dir::Original)
    } else if status.contains(Status::DST_NAT) && status.contains(Status::EXPECTED) {
        (tuples[1], Dir::Reply)
    } else {
        return None;
    };
    Some((
        Endpoint {
            proto: t.proto,
            addr: t.src,
            port: t.src_id,
        },
        dir,
    ))
}

/// Test builds only (`--features fault-injection`): a packet carrying [`FAULT_PANIC`] panics
/// inside the engine, so that tests can show what a bug in packet handling does to a running
/// gateway (see `Engine::contain_panic`).
#[cfg(feature = "fault-injection")]
pub mod fault_injection {
    /// The bytes that make a packet panic the engine.
    pub const FAULT_PANIC: &[u8] = b"tunfilter-fault-injection:panic";

    pub(crate) fn check(pkt: &[u8]) {
        if pkt.windows(FAULT_PANIC.len()).any(|w| w == FAULT_PANIC) {
            panic!("fault injection: a packet asked for a panic");
        }
    }
}

#[cfg(test)]
mod tests;
