//! The sans-IO router core: inputs are pushed in (`handle_packet`,
//! `handle_timeout`), outputs are pulled out (`poll_transmit`, `poll_event`,
//! `poll_timeout`). The live driver and the simulator both drive it.
//!
//! Packet path (DESIGN.md, "The packet path"), hooks in Linux priority order:
//! raw → conntrack in → mangle → nat dst → filter → nat src → confirm.
//!
//! ```text
//!  rx ─► L3 parse ─► PREROUTING ─► route ─┬─► INPUT ─► local stack
//!                                        └─► FORWARD ─► POSTROUTING ─► tx
//!  local stack ─► OUTPUT ─► route ─► POSTROUTING ─► tx
//! ```

use crate::config::{Config, IfaceKind};
use crate::nat::{self, Manip};
use crate::nat_eim::{self, Endpoint, SharedMappings};
use crate::offload::Offload;
use crate::route::{IfaceId, RouteTable};
use crate::rules::{self, CtState, Hook, PacketCtx, RejectWith, RuleRef, Ruleset, Table, Verdict};
use crate::shard::ShardCtx;
use crate::{local, stats::DropCounters, tcpmss};
use conntrack::buf::PacketBuf;
use conntrack::conn::{Conn, Status};
use conntrack::event::Event as CtEvent;
use conntrack::proto::{ConnCtx, Frag, L4Packet, L4Proto, ProtoState, Verdict as L4Verdict};
use conntrack::table::{ConfirmError, ConnId, ConnTable, TableConfig};
use conntrack::time::Instant;
use conntrack::tuple::{Dir, Family, Tuple};
use ipnet::IpNet;
use l3proto::defrag::{Defrag, Outcome};
use l4proto::{AnyState, L4Modules};
use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

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

/// A packet drop, with where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DropEvent {
    /// When.
    pub at: Instant,
    /// Hook, if the drop happened inside one.
    pub hook: Option<Hook>,
    /// The rule or policy that dropped it, if a rule did.
    pub rule: Option<RuleRef>,
    /// Stable reason name (also the drop counter's name).
    pub reason: &'static str,
    /// Interface the packet came in on (None for locally generated).
    pub iface: Option<String>,
    /// Short description of the packet.
    pub packet: String,
}

/// What the engine reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A conntrack event.
    Conntrack(CtEvent),
    /// A dropped packet.
    Drop(DropEvent),
    /// A rule, user-chain return or policy a TRACEd packet hit.
    Trace(TraceEvent),
    /// A LOG target hit.
    Log {
        /// When.
        at: Instant,
        /// The LOG rule.
        rule: RuleRef,
        /// `--log-prefix` and packet summary.
        line: String,
    },
}

/// One step of a TRACEd packet ([`Event::Trace`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEvent {
    /// When.
    pub at: Instant,
    /// Which packet: every step of one packet shares it (from 1, per engine).
    pub id: u64,
    /// The table, chain, rule number, kind and verdict.
    pub step: rules::TraceStep,
    /// The rule as iptables-save prints it (empty for returns and policies).
    pub rule_text: String,
    /// The packet as the step saw it, with its interfaces.
    pub packet: String,
}

/// What travels with one packet through the hooks besides its bytes, as in
/// the kernel's skb: the mark, the trace id once TRACE marked it, and the
/// MSS that TCPMSS rules chose.
#[derive(Debug, Clone, Copy, Default)]
struct Skb {
    mark: u32,
    /// Conntrack zone chosen by `-j CT --zone` in the raw table.
    zone: u16,
    trace: Option<u64>,
    mss: Option<u16>,
}

impl Event {
    /// One JSON object, no newline.
    pub fn to_json(&self) -> String {
        match self {
            Event::Conntrack(e) => e.to_json(),
            Event::Drop(d) => {
                let mut s = format!("{{\"time\":{},\"type\":\"drop\",\"reason\":\"{}\"", d.at.as_nanos(), d.reason);
                if let Some(h) = d.hook {
                    s.push_str(&format!(",\"hook\":\"{}\"", h.chain_name()));
                }
                if let Some(r) = &d.rule {
                    s.push_str(&format!(
                        ",\"table\":\"{}\",\"chain\":\"{}\",\"rule\":{}",
                        r.table,
                        json_escape(&r.chain),
                        r.rule_num
                    ));
                }
                if let Some(i) = &d.iface {
                    s.push_str(&format!(",\"iface\":\"{}\"", json_escape(i)));
                }
                s.push_str(&format!(",\"packet\":\"{}\"}}", json_escape(&d.packet)));
                s
            }
            Event::Trace(t) => format!(
                "{{\"time\":{},\"type\":\"trace\",\"id\":{},\"table\":\"{}\",\"chain\":\"{}\",\"kind\":\"{}\",\"rule\":{},\"verdict\":\"{}\",\"text\":\"{}\",\"packet\":\"{}\"}}",
                t.at.as_nanos(),
                t.id,
                t.step.rule.table,
                json_escape(&t.step.rule.chain),
                t.step.kind.name(),
                t.step.rule.rule_num,
                json_escape(&t.step.verdict),
                json_escape(&t.rule_text),
                json_escape(&t.packet)
            ),
            Event::Log { at, rule, line } => format!(
                "{{\"time\":{},\"type\":\"log\",\"table\":\"{}\",\"chain\":\"{}\",\"rule\":{},\"line\":\"{}\"}}",
                at.as_nanos(),
                rule.table,
                json_escape(&rule.chain),
                rule.rule_num,
                json_escape(line)
            ),
        }
    }

    /// The event kind as a short name ("new", "destroy", "drop", "log", ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Conntrack(e) => match e.kind {
                conntrack::EventKind::New => "new",
                conntrack::EventKind::Update => "update",
                conntrack::EventKind::Destroy => "destroy",
                conntrack::EventKind::ExpectNew => "expect-new",
                conntrack::EventKind::ExpectDestroy => "expect-destroy",
            },
            Event::Drop(_) => "drop",
            Event::Trace(_) => "trace",
            Event::Log { .. } => "log",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Conntrack(e) => write!(f, "{e}"),
            Event::Drop(d) => {
                write!(f, "    [DROP] {} {}", d.reason, d.packet)?;
                if let Some(h) = d.hook {
                    write!(f, " hook={}", h.chain_name())?;
                }
                if let Some(r) = &d.rule {
                    write!(f, " by {r}")?;
                }
                Ok(())
            }
            Event::Trace(t) => write!(
                f,
                "   [TRACE] {} {}:{}:{}:{} {} {} | {}",
                t.id,
                t.step.rule.table,
                t.step.rule.chain,
                t.step.kind.name(),
                t.step.rule.rule_num,
                t.step.verdict,
                t.rule_text,
                t.packet
            ),
            Event::Log { line, .. } => write!(f, "     [LOG] {line}"),
        }
    }
}

/// Escapes a string for a JSON string literal.
pub fn json_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o
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
    Invalid(&'static str),
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

/// Parsed facts about a packet that rules and hooks need; owned so the packet
/// bytes can be rewritten while it is alive.
#[derive(Clone, Copy, Debug)]
struct Meta {
    family: Family,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    l4_offset: usize,
    len: usize,
    frag: Frag,
    ttl: u8,
    sport: Option<u16>,
    dport: Option<u16>,
    icmp: Option<(u8, u8)>,
    tcp_flags: Option<u8>,
}

impl Meta {
    /// Inlined, and IPv4 addresses re-read from the packet: copying them (or the result) out
    /// of the parser's freshly written return value stalled store-to-load forwarding.
    #[inline(always)]
    fn of(pkt: &[u8]) -> Result<Meta, conntrack::proto::L3Error> {
        let l3 = l3proto::parse(pkt)?;
        let (src, dst) = match (l3.family, pkt.get(12..20)) {
            (Family::V4, Some(a)) => (
                IpAddr::from([a[0], a[1], a[2], a[3]]),
                IpAddr::from([a[4], a[5], a[6], a[7]]),
            ),
            _ => (l3.src, l3.dst),
        };
        let first = l3.frag != Frag::Later;
        let l4 = l3.l4;
        let be16 = |o: usize| l4.get(o..o + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
        let ports = first && matches!(l3.proto, 6 | 17 | 33 | 132 | 136);
        let (sport, dport) = if ports {
            (be16(0), be16(2))
        } else {
            (None, None)
        };
        let icmp = (first && matches!((l3.family, l3.proto), (Family::V4, 1) | (Family::V6, 58)))
            .then(|| Some((*l4.first()?, *l4.get(1)?)))
            .flatten();
        let tcp_flags = (first && l3.proto == 6)
            .then(|| l4.get(13).copied())
            .flatten();
        Ok(Meta {
            family: l3.family,
            src,
            dst,
            proto: l3.proto,
            l4_offset: l3.l4_offset,
            len: l3.len,
            frag: l3.frag,
            ttl: l3.ttl,
            sport,
            dport,
            icmp,
            tcp_flags,
        })
    }

    fn describe(&self) -> String {
        let p = conntrack::proto::proto_name(self.proto);
        match (self.sport, self.dport, self.icmp) {
            (Some(s), Some(d), _) => format!("{p} {} {s} -> {} {d}", self.src, self.dst),
            (_, _, Some((t, c))) => format!("{p} {} -> {} type={t} code={c}", self.src, self.dst),
            _ => format!("{p} {} -> {}", self.src, self.dst),
        }
    }
}

fn rules_family(f: Family) -> rules::Family {
    match f {
        Family::V4 => rules::Family::V4,
        Family::V6 => rules::Family::V6,
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
    pub invalid: DropCounters,
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
    routes: RouteTable,
    rules4: Arc<Ruleset>,
    rules6: Arc<Ruleset>,
    rule_paths: (Option<std::path::PathBuf>, Option<std::path::PathBuf>),
    ct: ConnTable<AnyState>,
    l4: L4Modules,
    verify_checksum: bool,
    tx: VecDeque<Transmit>,
    events: VecDeque<Event>,
    events_enabled: bool,
    drops: DropCounters,
    /// Why conntrack called packets INVALID (like `conntrack -S` invalid=, by reason).
    invalid: DropCounters,
    /// Shared by all shards of a sharded router: the limit is the router's, as in Linux.
    icmp_limit: Arc<parking_lot::Mutex<TokenBucket>>,
    next_gc: Instant,
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
    /// The original fragments of the datagram being processed, if it was
    /// reassembled.
    frag_pending: Option<FragPending>,
    /// RFC 4787 behaviour for UDP (`[nat]`).
    nat_cfg: crate::config::NatConfig,
    /// Endpoint-independent mappings (empty unless `nat_cfg.udp_eim`).
    /// Shared by all shards of a sharded router: a mapping holds whatever the destination.
    eim: Arc<SharedMappings>,
    next_eim_gc: Instant,
    /// The last trace id given to a TRACEd packet.
    next_trace_id: u64,
    /// Scratch output of rule evaluation, kept between calls (see `run_table`).
    eval_out: Option<Box<rules::EvalOutput>>,
    /// The offload header of the packet being handled (see `handle_packet_offload`).
    offload: Option<Offload>,
    /// Scratch space of `handle_batch` (kept to avoid an allocation per batch).
    warm_tuples: Vec<Tuple>,
    /// Keeps the cache-warming reads observable so they are not optimised away.
    warm_sink: u64,
    /// Set when this engine is one shard of a [`crate::shard::ShardSet`].
    shard: Option<ShardCtx>,
    /// Reassembled datagrams that belong to other shards (bounded by `MAX_HANDOFFS`).
    handoffs: Vec<Handoff>,
    /// New connections the current batch may still start (`None`: no limit); see
    /// [`Engine::set_new_flow_budget`].
    new_flow_budget: Option<usize>,
}

/// Drop reason of a new connection's packet beyond its batch's budget (see
/// [`Engine::set_new_flow_budget`]).
pub const NEW_FLOW_BUDGET_DROP: &str = "conntrack: new-flow budget exceeded";

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
        let rules4 = match &config.rules.ipv4 {
            Some(p) => Ruleset::load(p, rules::Family::V4).map_err(EngineError::Rules)?,
            None => Ruleset::empty(rules::Family::V4),
        };
        let rules6 = match &config.rules.ipv6 {
            Some(p) => Ruleset::load(p, rules::Family::V6).map_err(EngineError::Rules)?,
            None => Ruleset::empty(rules::Family::V6),
        };
        let mut engine = Engine::with_rules(config, hash_seed, rules4, rules6)?;
        engine.rule_paths = (config.rules.ipv4.clone(), config.rules.ipv6.clone());
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
        let mut timeouts = l4proto::Timeouts::default();
        for (k, v) in &config.conntrack.timeouts {
            timeouts.set(k, *v).map_err(EngineError::Config)?;
        }
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
            routes: RouteTable::from_config(config),
            rules4,
            rules6,
            rule_paths: (None, None),
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
            invalid: DropCounters::default(),
            icmp_limit: Arc::new(parking_lot::Mutex::new(TokenBucket::icmp_errors())),
            next_gc: Instant::ZERO,
            now: Instant::ZERO,
            packets_in: 0,
            gso_in: 0,
            packets_out: 0,
            last_rule: None,
            last_nat: None,
            nat_salt: 0,
            next_trace_id: 0,
            eval_out: None,
            offload: None,
            nat_secret: hash_seed.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15,
            warm_tuples: Vec::new(),
            warm_sink: 0,
            shard: None,
            new_flow_budget: None,
            handoffs: Vec::new(),
            defrag: Defrag::new(config.defrag.limits),
            defrag_time_exceeded: config.defrag.time_exceeded,
            frag_pending: None,
            nat_cfg: config.nat,
            eim: Arc::new(SharedMappings::new(config.conntrack.max)),
            next_eim_gc: Instant::ZERO,
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
    /// (raw `NOTRACK`) and those the raw table drops never use it. A sharded router sets it
    /// per read batch (see [`crate::shard::ShardSet::handle`]).
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
        self.ct.set_on_remove(Box::new(move |c| {
            dir.release(&c.tuples[0], index);
            dir.release(&c.tuples[1], index);
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

    // ---------------------------------------------------------------- input

    /// Handles a batch of received packets (interface, packet), in order,
    /// leaving `batch` empty. Same result as `handle_packet` on each, but
    /// the conntrack lookups of the batch are warmed first so their cache
    /// misses overlap instead of being paid one after another.
    pub fn handle_batch(&mut self, now: Instant, batch: &mut Vec<(IfaceId, PacketBuf)>) {
        self.warm(batch.iter().map(|(_, p)| p));
        for (iface, pkt) in batch.drain(..) {
            self.handle_packet(now, iface, pkt);
        }
    }

    /// Handles a packet that arrived with an offload header (a TUN device with
    /// `IFF_VNET_HDR`): a TCP super-packet of several segments and/or a partial checksum. It
    /// goes through the pipeline once, as one packet; the header leaves with it in
    /// [`Transmit::offload`]. See [`crate::offload`].
    pub fn handle_packet_offload(
        &mut self,
        now: Instant,
        ingress: IfaceId,
        pkt: PacketBuf,
        offload: Offload,
    ) {
        if offload.is_gso() {
            self.gso_in += 1;
        }
        self.offload = Some(offload);
        self.handle_packet(now, ingress, pkt);
        self.offload = None;
    }

    /// [`Engine::handle_batch`] for packets with offload headers.
    pub fn handle_batch_offload(
        &mut self,
        now: Instant,
        batch: &mut Vec<(IfaceId, PacketBuf, Offload)>,
    ) {
        self.warm(batch.iter().map(|(_, p, _)| p));
        for (iface, pkt, off) in batch.drain(..) {
            self.handle_packet_offload(now, iface, pkt, off);
        }
    }

    /// Warms the conntrack lookups of a batch (see `ConnTable::warm`); a single packet is
    /// not worth it.
    fn warm<'a>(&mut self, pkts: impl ExactSizeIterator<Item = &'a PacketBuf>) {
        if pkts.len() > 1 {
            self.warm_tuples.clear();
            // A run of packets of one flow (a TCP burst, a TUN read of one
            // stream) needs its lines warmed once: the first lookup does it.
            let mut last = None;
            for t in pkts.filter_map(|p| quick_tuple(p.as_slice())) {
                if last != Some(t) {
                    self.warm_tuples.push(t);
                    last = Some(t);
                }
            }
            self.warm_sink ^= self.ct.warm(&self.warm_tuples);
        }
    }

    /// Whether the current packet's L4 checksum is partial (offloaded).
    fn partial_csum(&self) -> bool {
        self.offload.is_some_and(|o| o.needs_csum)
    }

    /// The largest packet the current one becomes on the wire: itself, or one segment of an
    /// offloaded super-packet.
    fn wire_len(&self, len: usize) -> usize {
        self.offload.map_or(len, |o| o.segment_len(len))
    }

    /// Handles one IP packet received on `ingress`.
    pub fn handle_packet(&mut self, now: Instant, ingress: IfaceId, pkt: PacketBuf) {
        // The originals of a reassembled datagram belong to this packet only,
        // whichever way its processing ends.
        self.frag_pending = None;
        self.handle_one(now, ingress, pkt);
        self.frag_pending = None;
    }

    fn handle_one(&mut self, now: Instant, ingress: IfaceId, mut pkt: PacketBuf) {
        self.now = now;
        self.packets_in += 1;
        if now >= self.next_gc {
            self.handle_timeout(now);
        }
        let mut meta = match Meta::of(pkt.as_slice()) {
            Ok(m) => m,
            Err(e) => {
                let reason = match e {
                    conntrack::proto::L3Error::BadChecksum => "ip: bad header checksum",
                    conntrack::proto::L3Error::Malformed(what) => l3_reason(what),
                    _ => "ip: malformed",
                };
                self.drop_packet(
                    reason,
                    None,
                    None,
                    Some(ingress),
                    format!("{} bytes", pkt.len()),
                );
                return;
            }
        };
        if meta.dst.is_multicast() || meta.src.is_multicast() || is_broadcast(&meta.dst) {
            // No multicast routing: link-local control traffic (MLD, RS) from
            // the kernel side ends here, counted but not worth an event each.
            self.drops.add("ip: multicast not routed");
            return;
        }
        // Virtual reassembly before anything looks at the packet (as
        // nf_defrag does): the pipeline sees the reassembled clone; the
        // original fragments are forwarded at the end (`forward_fragments`).
        if meta.frag != Frag::None {
            let describe = meta.describe();
            match self.defrag.push(now, pkt, ingress) {
                Outcome::Held => return,
                Outcome::Dropped(why) => {
                    self.drop_packet(why, Some(Hook::Prerouting), None, Some(ingress), describe);
                    return;
                }
                Outcome::Complete(d) => {
                    // In a sharded router the datagram belongs to the shard of its flow,
                    // which is not necessarily the one that gathered its fragments.
                    if let Some(sh) = &self.shard {
                        let owner = sh.owner_of_packet(d.clone.as_slice());
                        if owner.is_some_and(|o| o != sh.index) {
                            if self.handoffs.len() < MAX_HANDOFFS {
                                self.handoffs.push(Handoff {
                                    owner: owner.unwrap_or(sh.index),
                                    ingress,
                                    datagram: d,
                                    describe,
                                });
                            } else {
                                self.drop_packet(
                                    "shard: hand-off queue full",
                                    Some(Hook::Prerouting),
                                    None,
                                    Some(ingress),
                                    describe,
                                );
                            }
                            return;
                        }
                    }
                    match self.adopt_datagram(d, ingress, describe) {
                        Some((m, p)) => {
                            meta = m;
                            pkt = p;
                        }
                        None => return,
                    }
                }
            }
        }
        self.pipeline(ingress, pkt, meta);
    }

    /// Takes a reassembled datagram as the packet to process: its originals wait in
    /// `frag_pending` for the verdict. `None` (counted) if the clone does not parse.
    fn adopt_datagram(
        &mut self,
        d: l3proto::defrag::Datagram,
        ingress: IfaceId,
        describe: String,
    ) -> Option<(Meta, PacketBuf)> {
        match Meta::of(d.clone.as_slice()) {
            Ok(m) if m.frag == Frag::None => {
                self.frag_pending = Some(FragPending {
                    fragments: d.fragments,
                    first: d.first,
                    before: (m.src, m.dst, m.sport, m.dport),
                });
                Some((m, d.clone))
            }
            _ => {
                self.drop_packet(
                    "frag: reassembled datagram malformed",
                    Some(Hook::Prerouting),
                    None,
                    Some(ingress),
                    describe,
                );
                None
            }
        }
    }

    /// Reassembled datagrams this shard gathered for other shards (see [`Handoff`]); the
    /// caller gives each to [`Engine::handle_handoff`] of its owner.
    pub fn take_handoffs(&mut self, out: &mut Vec<Handoff>) {
        out.append(&mut self.handoffs);
    }

    /// Processes a datagram another shard reassembled for this one.
    pub fn handle_handoff(&mut self, now: Instant, h: Handoff) {
        self.now = now;
        self.frag_pending = None;
        if let Some((meta, pkt)) = self.adopt_datagram(h.datagram, h.ingress, h.describe) {
            self.pipeline(h.ingress, pkt, meta);
        }
        self.frag_pending = None;
    }

    /// The hooks, from PREROUTING on, for a whole (or reassembled) packet. Inlined into
    /// `handle_one` so that `meta`, just built, is not copied through memory (a wide load
    /// over narrower stores stalls store-to-load forwarding).
    #[inline(always)]
    fn pipeline(&mut self, ingress: IfaceId, mut pkt: PacketBuf, mut meta: Meta) {
        // PREROUTING: raw
        let mut skb = Skb::default();
        let mut ct = Ct::Untracked;
        let mut notrack = false;
        match self.run_table(
            Table::Raw,
            Hook::Prerouting,
            &meta,
            &pkt,
            Some(ingress),
            None,
            CtState::UNTRACKED,
            &mut skb,
            None,
        ) {
            Verdict::Accept => {}
            Verdict::NoTrack => notrack = true,
            v => return self.verdict_drop(v, Hook::Prerouting, &meta, &pkt, Some(ingress)),
        }
        // PREROUTING: conntrack in
        if !notrack {
            // A partial checksum is the sender's to complete: trusted, as Linux does.
            let verify = self.verify_checksum && !self.partial_csum();
            ct = self.conntrack_in(&meta, pkt.as_slice(), verify, skb.zone);
            if let Ct::Invalid(why) = ct {
                self.invalid.add(why);
            }
            if let (Ct::New { .. }, Some(left)) = (&ct, &mut self.new_flow_budget) {
                if *left == 0 {
                    // Described only for an event: a flood makes many of these drops.
                    let describe = if self.events_enabled {
                        meta.describe()
                    } else {
                        String::new()
                    };
                    let hook = Some(Hook::Prerouting);
                    return self.drop_packet(
                        NEW_FLOW_BUDGET_DROP,
                        hook,
                        None,
                        Some(ingress),
                        describe,
                    );
                }
                *left -= 1;
            }
        }
        // PREROUTING: mangle, nat (dst)
        for table in [Table::Mangle, Table::Nat] {
            if table == Table::Nat && !ct.nat_due(Manip::Dst) {
                continue; // the nat table sees only the first packet of a connection
            }
            if !self.has_rules(meta.family, table) {
                continue;
            }
            let st = ct.state(&self.ct);
            let v = self.run_table(
                table,
                Hook::Prerouting,
                &meta,
                &pkt,
                Some(ingress),
                None,
                st,
                &mut skb,
                Some(&ct),
            );
            if v != Verdict::Accept {
                return self.verdict_drop(v, Hook::Prerouting, &meta, &pkt, Some(ingress));
            }
        }
        // PREROUTING: nat (dst) binding and rewrite, before routing sees the address.
        if !self.nat_step(
            &mut ct,
            Manip::Dst,
            Some(ingress),
            &mut pkt,
            &mut meta,
            Hook::Prerouting,
            Some(ingress),
        ) {
            return;
        }

        // Routing decision.
        if self.is_local(&meta.dst) {
            let st = ct.state(&self.ct);
            for table in [Table::Mangle, Table::Filter, Table::Nat] {
                if table == Table::Nat && !ct.nat_due(Manip::Src) {
                    continue;
                }
                let v = self.run_table(
                    table,
                    Hook::Input,
                    &meta,
                    &pkt,
                    Some(ingress),
                    None,
                    st,
                    &mut skb,
                    Some(&ct),
                );
                match v {
                    Verdict::Accept => {}
                    Verdict::Reject(with) => {
                        self.reject(with, &meta, &pkt, ingress);
                        return self.count_drop_hook("reject", Hook::Input, &meta, Some(ingress));
                    }
                    v => return self.verdict_drop(v, Hook::Input, &meta, &pkt, Some(ingress)),
                }
            }
            if !self.nat_step(
                &mut ct,
                Manip::Src,
                Some(ingress),
                &mut pkt,
                &mut meta,
                Hook::Input,
                Some(ingress),
            ) {
                return;
            }
            if !self.confirm(ct, &meta, Some(ingress), Hook::Input) {
                return;
            }
            self.local_deliver(self.now, &meta, pkt, ingress);
            return;
        }

        // Forwarding: link-local destinations are never forwarded (RFC 4291 §2.5.6).
        if is_link_local(&meta.dst) || is_link_local(&meta.src) {
            return self.count_drop_hook(
                "ip: link-local not forwarded",
                Hook::Prerouting,
                &meta,
                Some(ingress),
            );
        }
        let Some(route) = self.routes.lookup(meta.dst).copied() else {
            let (t, c) = if meta.family == Family::V4 {
                (3, 0)
            } else {
                (1, 0)
            };
            self.send_icmp_error(&pkt, &meta, ingress, t, c, 0);
            return self.count_drop_hook("route: no route", Hook::Prerouting, &meta, Some(ingress));
        };
        // TTL check before the FORWARD hook, as ip_forward() does.
        if meta.ttl <= 1 {
            let (t, c) = if meta.family == Family::V4 {
                (11, 0)
            } else {
                (3, 0)
            };
            self.send_icmp_error(&pkt, &meta, ingress, t, c, 0);
            return self.count_drop_hook(
                "ip: ttl exceeded",
                Hook::Prerouting,
                &meta,
                Some(ingress),
            );
        }
        let mtu = self.ifaces[route.iface].mtu;
        // A reassembled clone is never sent: its fragments are checked one by one.
        if self.wire_len(meta.len) > mtu && self.frag_pending.is_none() {
            let df =
                meta.family == Family::V6 || pkt.as_slice().get(6).is_some_and(|b| b & 0x40 != 0);
            if df {
                let (t, c) = if meta.family == Family::V4 {
                    (3, 4)
                } else {
                    (2, 0)
                };
                self.send_icmp_error(&pkt, &meta, ingress, t, c, mtu as u32);
                return self.count_drop_hook(
                    "ip: packet too big",
                    Hook::Prerouting,
                    &meta,
                    Some(ingress),
                );
            }
        }
        decrement_ttl(pkt.as_mut_slice());
        meta.ttl -= 1;
        let st = ct.state(&self.ct);
        for table in [Table::Mangle, Table::Filter] {
            let v = self.run_table(
                table,
                Hook::Forward,
                &meta,
                &pkt,
                Some(ingress),
                Some(route.iface),
                st,
                &mut skb,
                Some(&ct),
            );
            match v {
                Verdict::Accept => {}
                Verdict::Reject(with) => {
                    self.reject(with, &meta, &pkt, ingress);
                    return self.count_drop_hook("reject", Hook::Forward, &meta, Some(ingress));
                }
                v => return self.verdict_drop(v, Hook::Forward, &meta, &pkt, Some(ingress)),
            }
        }
        self.postrouting(ct, meta, pkt, Some(ingress), route.iface, route.via, skb);
    }

    /// Inlined for the same reason as `pipeline`: its arguments were just built.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn postrouting(
        &mut self,
        mut ct: Ct,
        mut meta: Meta,
        mut pkt: PacketBuf,
        ingress: Option<IfaceId>,
        egress: IfaceId,
        via: Option<IpAddr>,
        mut skb: Skb,
    ) {
        for table in [Table::Mangle, Table::Nat] {
            if table == Table::Nat && !ct.nat_due(Manip::Src) {
                continue;
            }
            if !self.has_rules(meta.family, table) {
                continue;
            }
            let st = ct.state(&self.ct);
            let v = self.run_table(
                table,
                Hook::Postrouting,
                &meta,
                &pkt,
                ingress,
                Some(egress),
                st,
                &mut skb,
                Some(&ct),
            );
            if v != Verdict::Accept {
                return self.verdict_drop(v, Hook::Postrouting, &meta, &pkt, ingress);
            }
        }
        // TCPMSS, after every table had its say (the rules only choose the value). A
        // reassembled SYN keeps its options: its fragments, not the clone, are sent.
        if let (Some(mss), None) = (skb.mss, &self.frag_pending) {
            let (v6, partial) = (meta.family == Family::V6, self.partial_csum());
            match tcpmss::apply_with(&mut pkt, v6, meta.l4_offset, mss, partial) {
                Ok(()) => meta.len = pkt.len(),
                Err(why) => return self.count_drop_hook(why, Hook::Postrouting, &meta, ingress),
            }
        }
        if !self.nat_step(
            &mut ct,
            Manip::Src,
            Some(egress),
            &mut pkt,
            &mut meta,
            Hook::Postrouting,
            ingress,
        ) {
            return;
        }
        if !self.confirm(ct, &meta, ingress, Hook::Postrouting) {
            return;
        }
        if let Some(f) = self.frag_pending.take() {
            return self.forward_fragments(f, &meta, egress, via, ingress);
        }
        if self.wire_len(meta.len) > self.ifaces[egress].mtu {
            if self.offload.is_some_and(|o| o.is_gso()) {
                // Segments without DF would have to be segmented, then fragmented.
                return self.count_drop_hook(
                    "offload: segment above egress MTU",
                    Hook::Postrouting,
                    &meta,
                    ingress,
                );
            }
            // Only IPv4 without DF gets here (the rest got an ICMP error).
            match fragment_v4(pkt.as_slice(), self.ifaces[egress].mtu) {
                Some(frags) => {
                    for f in frags {
                        self.transmit(egress, via.unwrap_or(meta.dst), f, &meta, ingress);
                    }
                }
                None => {
                    self.count_drop_hook("ip: cannot fragment", Hook::Postrouting, &meta, ingress)
                }
            }
            return;
        }
        self.transmit(egress, via.unwrap_or(meta.dst), pkt, &meta, ingress);
    }

    /// Sends the original fragments of an accepted datagram: TTL/hop limit
    /// decremented, NAT written into every fragment (addresses) and into the
    /// first (the L4 header and its checksum, which covers the whole
    /// datagram, so an incremental fix is exact), each checked against the
    /// egress MTU on its own.
    fn forward_fragments(
        &mut self,
        f: FragPending,
        meta: &Meta,
        egress: IfaceId,
        via: Option<IpAddr>,
        ingress: Option<IfaceId>,
    ) {
        let (src0, dst0, sport0, dport0) = f.before;
        let mtu = self.ifaces[egress].mtu;
        for (i, mut frag) in f.fragments.into_iter().enumerate() {
            let first = i == f.first;
            decrement_ttl(frag.as_mut_slice());
            let l4_off = match fragment_l4_offset(frag.as_slice()) {
                Some(o) => o,
                None => {
                    self.count_drop_hook(
                        "frag: unreadable fragment",
                        Hook::Postrouting,
                        meta,
                        ingress,
                    );
                    continue;
                }
            };
            let mut ok = true;
            for (manip, was, now_a, was_p, now_p) in [
                (Manip::Src, src0, meta.src, sport0, meta.sport),
                (Manip::Dst, dst0, meta.dst, dport0, meta.dport),
            ] {
                let port_changed = first && was_p != now_p;
                if was != now_a || port_changed {
                    let port = if first { now_p } else { None };
                    ok &= nat::rewrite(
                        frag.as_mut_slice(),
                        l4_off,
                        meta.proto,
                        first,
                        manip,
                        now_a,
                        port,
                    );
                }
            }
            if !ok {
                self.count_drop_hook("nat: cannot rewrite", Hook::Postrouting, meta, ingress);
                continue;
            }
            if frag.len() > mtu {
                let v4 = meta.family == Family::V4;
                let df = !v4 || frag.as_slice().get(6).is_some_and(|b| b & 0x40 != 0);
                if df {
                    if let Some(i) = ingress {
                        let (t, c) = if v4 { (3, 4) } else { (2, 0) };
                        if let Ok(fm) = Meta::of(frag.as_slice()) {
                            self.send_icmp_error(&frag, &fm, i, t, c, mtu as u32);
                        }
                    }
                    self.count_drop_hook("ip: packet too big", Hook::Postrouting, meta, ingress);
                    continue;
                }
                // IPv4 without DF: split further on 8-byte boundaries.
                match fragment_v4(frag.as_slice(), mtu) {
                    Some(parts) => {
                        for p in parts {
                            self.transmit(egress, via.unwrap_or(meta.dst), p, meta, ingress);
                        }
                    }
                    None => self.count_drop_hook(
                        "ip: cannot fragment",
                        Hook::Postrouting,
                        meta,
                        ingress,
                    ),
                }
                continue;
            }
            self.transmit(egress, via.unwrap_or(meta.dst), frag, meta, ingress);
        }
    }

    #[inline(always)]
    fn transmit(
        &mut self,
        iface: IfaceId,
        next_hop: IpAddr,
        packet: PacketBuf,
        meta: &Meta,
        ingress: Option<IfaceId>,
    ) {
        if self.tx.len() >= TX_QUEUE {
            return self.tx_full(meta, ingress);
        }
        self.packets_out += 1;
        self.tx.push_back(Transmit {
            iface,
            next_hop,
            packet,
            offload: self.offload,
        });
    }

    #[cold]
    #[inline(never)]
    fn tx_full(&mut self, meta: &Meta, ingress: Option<IfaceId>) {
        self.count_drop_hook("tx: queue full", Hook::Postrouting, meta, ingress)
    }

    // ------------------------------------------------------------ conntrack

    /// Inlined: its `Ct` result, returned through memory, was copied out with a wide load
    /// over the narrower stores that built it (a store-forwarding stall per packet).
    #[inline(always)]
    fn conntrack_in(&mut self, meta: &Meta, pkt: &[u8], verify: bool, zone: u16) -> Ct {
        if meta.frag != Frag::None {
            // Reassembly is not there yet: fragments are not tracked.
            return Ct::Untracked;
        }
        // The packet was validated when `meta` was built: reuse that parse.
        let Some(l4) = pkt.get(meta.l4_offset..meta.len) else {
            return Ct::Invalid("ip: malformed");
        };
        let l4pkt = L4Packet {
            family: meta.family,
            src: meta.src,
            dst: meta.dst,
            proto: meta.proto,
            data: l4,
            verify_checksum: verify,
        };
        let now = self.now;
        // Neighbour discovery and MLD are link-local control: Linux leaves
        // them untracked, so `--ctstate INVALID -j DROP` does not break IPv6.
        if self.l4.is_untracked(&l4pkt) {
            return Ct::Untracked;
        }
        if l3proto::is_icmp_error_parts(meta.family, meta.proto, l4) {
            return self.conntrack_icmp_error(meta, l4, verify, zone);
        }
        let (src_id, dst_id) = match self.l4.ids(&l4pkt) {
            Ok(ids) => ids,
            Err(e) => return Ct::Invalid(e.0),
        };
        let tuple = Tuple {
            src: meta.src,
            dst: meta.dst,
            src_id,
            dst_id,
            proto: meta.proto,
            zone,
        };
        // Two rounds at most: a TCP SYN that reopens a closed connection
        // destroys it and is then handled as new.
        for _ in 0..2 {
            if let Some((id, dir, c)) = self.ct.lookup_mut(&tuple, now) {
                let l4 = &self.l4;
                let before = (c.l4.state_id(), c.status);
                let seen_reply_now = dir == Dir::Reply && !c.status.contains(Status::SEEN_REPLY);
                if seen_reply_now {
                    c.status.insert(Status::SEEN_REPLY);
                }
                let mut cx = ConnCtx {
                    dir,
                    status: &mut c.status,
                    now,
                    tuples: &c.tuples,
                };
                match l4.packet(&mut c.l4, &mut cx, &l4pkt) {
                    L4Verdict::Accept { timeout } => {
                        // RFC 4787: a mapped UDP flow refreshes its mapping,
                        // and with outbound-only refresh (REQ-6) only packets
                        // from the internal endpoint extend its life.
                        let eim = if self.nat_cfg.udp_eim && nat_eim::applies(meta.proto) {
                            eim_internal(&c.tuples, c.status)
                        } else {
                            None
                        };
                        let refresh = match eim {
                            Some((_, outbound)) => {
                                !self.nat_cfg.udp_outbound_refresh || dir == outbound
                            }
                            None => true,
                        };
                        if refresh && !c.status.contains(Status::FIXED_TIMEOUT) {
                            c.expires = now + timeout;
                        }
                        if let Some((internal, _)) = eim.filter(|_| refresh) {
                            self.eim.refresh(&internal, c.expires);
                        }
                        c.account(dir, meta.len);
                        let changed = before != (c.l4.state_id(), c.status);
                        if changed {
                            self.ct.emit_update(id, now);
                        }
                        return Ct::Known {
                            id,
                            dir,
                            related: false,
                        };
                    }
                    L4Verdict::Invalid(why) => {
                        if seen_reply_now {
                            c.status.remove(Status::SEEN_REPLY);
                        }
                        return Ct::Invalid(why.0);
                    }
                    L4Verdict::Reopen => {
                        self.ct.remove(id, now, "reopen");
                        continue;
                    }
                }
            }
            return self.new_conn(tuple, &l4pkt, meta);
        }
        Ct::Invalid("conntrack: reopen loop")
    }

    /// An ICMP error: RELATED to the connection of the packet it quotes. Apart from the
    /// per-packet path, which only tests the type.
    #[cold]
    #[inline(never)]
    fn conntrack_icmp_error(&mut self, meta: &Meta, l4: &[u8], verify: bool, zone: u16) -> Ct {
        let now = self.now;
        let l3 = conntrack::proto::L3Packet {
            family: meta.family,
            src: meta.src,
            dst: meta.dst,
            proto: meta.proto,
            l4_offset: meta.l4_offset,
            l4,
            frag: meta.frag,
            ttl: meta.ttl,
            len: meta.len,
        };
        match l3proto::icmp_error_tuple(&l3, &self.l4, verify) {
            // The error travels opposite to the quoted packet: look up the
            // inverse, which (unlike the quote itself after NAT) is one of
            // the connection's two tuples.
            Ok(inner) => match self.ct.lookup(
                &Tuple {
                    zone,
                    ..inner.invert()
                },
                now,
            ) {
                Some((id, d)) => {
                    let dir = d;
                    if let Some(c) = self.ct.get_mut(id) {
                        c.account(dir, meta.len);
                    }
                    Ct::Known {
                        id,
                        dir,
                        related: true,
                    }
                }
                None => Ct::Invalid("icmp: error for unknown connection"),
            },
            Err(e) => Ct::Invalid(e.0),
        }
    }

    fn new_conn(&mut self, tuple: Tuple, l4pkt: &L4Packet<'_>, meta: &Meta) -> Ct {
        let now = self.now;
        let state = match self.l4.new_conn(l4pkt, now) {
            Ok(s) => s,
            Err(e) => return Ct::Invalid(e.0),
        };
        let mut conn = Box::new(Conn::new(tuple, tuple.invert(), state, now));
        let mut related = false;
        if let Some(exp) = self.ct.take_expectation(&tuple, now) {
            related = true;
            conn.status.insert(Status::EXPECTED);
            let ext = conn.ext_mut();
            ext.master = Some(exp.master);
        } else if self.nat_cfg.udp_eif && nat_eim::applies(tuple.proto) {
            // RFC 4787 REQ-8: any remote may use a live mapping. The mapping
            // acts as an expectation: the connection is RELATED and bound to
            // the internal endpoint (DNAT) before the nat table could see it.
            let external = Endpoint {
                proto: tuple.proto,
                addr: tuple.dst,
                port: tuple.dst_id,
            };
            let mapped = self.eim.internal(&external, now);
            if let Some(internal) = mapped {
                if internal.addr != tuple.src {
                    related = true;
                    conn.tuples[1] = Tuple {
                        src: internal.addr,
                        dst: tuple.src,
                        src_id: internal.port,
                        dst_id: tuple.src_id,
                        proto: tuple.proto,
                        zone: tuple.zone,
                    };
                    conn.status.insert(Status::EXPECTED);
                    conn.status.insert(Status::DST_NAT | Status::DST_NAT_DONE);
                }
            }
        }
        let Conn {
            l4, status, tuples, ..
        } = &mut *conn;
        let mut cx = ConnCtx {
            dir: Dir::Original,
            status,
            now,
            tuples,
        };
        match self.l4.packet(l4, &mut cx, l4pkt) {
            L4Verdict::Accept { timeout } => {
                conn.expires = now + timeout;
                conn.account(Dir::Original, meta.len);
                Ct::New { conn, related }
            }
            L4Verdict::Invalid(e) => Ct::Invalid(e.0),
            L4Verdict::Reopen => Ct::Invalid("conntrack: reopen of a new connection"),
        }
    }

    /// The confirm step: a new connection enters the table when its first
    /// packet leaves the pipeline accepted. Returns false if the packet must
    /// be dropped (table full, clash).
    fn confirm(&mut self, ct: Ct, meta: &Meta, ingress: Option<IfaceId>, hook: Hook) -> bool {
        let Ct::New { conn, .. } = ct else {
            return true;
        };
        // In a sharded engine both tuples are published: they route the connection's packets
        // here and keep other shards from using them (withdrawn by the table's remove hook).
        // What this call published is withdrawn again if the insertion fails (entries are
        // counted per connection: another zone's connection may share one).
        let mut published: [Option<Tuple>; 2] = [None, None];
        if let Some(sh) = &self.shard {
            for (k, t) in conn.tuples.iter().enumerate() {
                match sh.publish(t) {
                    Some(_) => published[k] = Some(*t),
                    None => {
                        published.iter().flatten().for_each(|t| sh.unpublish(t));
                        self.count_drop_hook(
                            "conntrack: tuple taken by another shard",
                            hook,
                            meta,
                            ingress,
                        );
                        return false;
                    }
                }
            }
        }
        let r = self.ct.confirm(*conn, self.now);
        if let (Err(_), Some(sh)) = (&r, &self.shard) {
            published.iter().flatten().for_each(|t| sh.unpublish(t));
        }
        match r {
            Ok(_) => true,
            Err(ConfirmError::TableFull) => {
                self.ct.count_drop();
                self.count_drop_hook("conntrack: table full", hook, meta, ingress);
                false
            }
            Err(ConfirmError::Clash(_)) => {
                self.count_drop_hook("conntrack: insert clash", hook, meta, ingress);
                false
            }
        }
    }

    // ---------------------------------------------------------------- rules

    /// Reports a traced packet's steps through one table: an event each (the
    /// simulator's event log, the control socket's trace stream) and a log
    /// line, like `xtables-monitor --trace`. The packet gets its trace id at
    /// its first step.
    fn trace_steps(
        &mut self,
        skb: &mut Skb,
        steps: &[rules::TraceStep],
        texts: Vec<String>,
        meta: &Meta,
        in_iface: Option<IfaceId>,
        out_iface: Option<IfaceId>,
    ) {
        let id = *skb.trace.get_or_insert_with(|| {
            self.next_trace_id += 1;
            self.next_trace_id
        });
        if steps.is_empty() {
            return;
        }
        let packet = format!(
            "{} IN={} OUT={}",
            meta.describe(),
            self.iface_name_opt(in_iface),
            self.iface_name_opt(out_iface)
        );
        for (st, text) in steps.iter().zip(texts) {
            tracing::info!(
                target: "tunfilter::trace",
                "TRACE: {id} {}:{}:{}:{} {} {text} {packet}",
                st.rule.table,
                st.rule.chain,
                st.kind.name(),
                st.rule.rule_num,
                st.verdict
            );
            self.push_event(Event::Trace(TraceEvent {
                at: self.now,
                id,
                step: st.clone(),
                rule_text: text,
                packet: packet.clone(),
            }));
        }
    }

    /// The trace steps of one table's evaluation, with each rule's text (cold: tracing is
    /// rare, and its code stays out of `run_table`).
    #[cold]
    #[inline(never)]
    fn trace_table(
        &mut self,
        family: Family,
        skb: &mut Skb,
        out: &rules::EvalOutput,
        meta: &Meta,
        in_iface: Option<IfaceId>,
        out_iface: Option<IfaceId>,
    ) {
        let rs = match family {
            Family::V4 => &*self.rules4,
            Family::V6 => &*self.rules6,
        };
        let texts: Vec<String> = out
            .trace_steps
            .iter()
            .map(|st| match st.kind {
                rules::TraceKind::Rule => rs.rule_text(&st.rule).unwrap_or_default(),
                _ => String::new(),
            })
            .collect();
        self.trace_steps(skb, &out.trace_steps, texts, meta, in_iface, out_iface);
    }

    /// The MSS a SYN should leave with after this table's TCPMSS hits: the lowest asked for.
    #[cold]
    #[inline(never)]
    fn tcpmss_want(
        &self,
        skb: &mut Skb,
        hits: &[rules::TcpMss],
        family: Family,
        in_iface: Option<IfaceId>,
        out_iface: Option<IfaceId>,
    ) {
        let hdr = if family == Family::V6 { 60 } else { 40 };
        let mtu = |i: Option<IfaceId>| i.and_then(|i| self.ifaces.get(i)).map(|i| i.mtu);
        for m in hits {
            let want = match m {
                rules::TcpMss::Set(n) => Some(*n),
                // The kernel takes the smaller of the route's MTU and the MTU back
                // towards the sender.
                rules::TcpMss::ClampToPmtu => mtu(out_iface)
                    .map(|o| mtu(in_iface).map_or(o, |i| i.min(o)))
                    .filter(|&m| m > hdr)
                    .map(|m| u16::try_from(m - hdr).unwrap_or(u16::MAX)),
            };
            if let Some(w) = want {
                skb.mss = Some(skb.mss.map_or(w, |cur| cur.min(w)));
            }
        }
    }

    /// Whether the ruleset of `family` has `table` at all (a missing table accepts).
    #[inline(always)]
    fn has_rules(&self, family: Family, table: Table) -> bool {
        match family {
            Family::V4 => self.rules4.has_table(table),
            Family::V6 => self.rules6.has_table(table),
        }
    }

    /// Evaluates `table` at `hook`. Inlined so that the common case, a table the ruleset
    /// does not have, costs one test instead of a call with ten arguments.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn run_table(
        &mut self,
        table: Table,
        hook: Hook,
        meta: &Meta,
        pkt: &PacketBuf,
        in_iface: Option<IfaceId>,
        out_iface: Option<IfaceId>,
        ctstate: CtState,
        skb: &mut Skb,
        ct: Option<&Ct>,
    ) -> Verdict {
        let rs = match meta.family {
            Family::V4 => &*self.rules4,
            Family::V6 => &*self.rules6,
        };
        if !rs.has_table(table) {
            return Verdict::Accept;
        }
        // A stateful chain's usual first rule decides established traffic from the state
        // alone; a traced packet takes the full path, which reports each rule.
        if skb.trace.is_none() && rs.accept_by_state(table, hook, ctstate, meta.len as u32) {
            if table == Table::Nat {
                self.last_nat = None;
            }
            return Verdict::Accept;
        }
        self.run_table_rules(
            table, hook, meta, pkt, in_iface, out_iface, ctstate, skb, ct,
        )
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn run_table_rules(
        &mut self,
        table: Table,
        hook: Hook,
        meta: &Meta,
        pkt: &PacketBuf,
        in_iface: Option<IfaceId>,
        out_iface: Option<IfaceId>,
        ctstate: CtState,
        skb: &mut Skb,
        ct: Option<&Ct>,
    ) -> Verdict {
        // Borrowed, not cloned: an Arc clone per hook was a measurable share
        // of the per-packet cost.
        let rs = match meta.family {
            Family::V4 => &*self.rules4,
            Family::V6 => &*self.rules6,
        };
        let name = |i: Option<IfaceId>| i.and_then(|i| self.ifaces.get(i)).map(|i| &*i.name);
        let ctmark = match ct {
            Some(Ct::Known { id, .. }) => self.ct.get(*id).map_or(0, |c| c.mark),
            Some(Ct::New { conn, .. }) => conn.mark,
            _ => 0,
        };
        let local = &self.local;
        let is_local = |a: IpAddr| local.contains(a);
        let now_ns = self.now.as_nanos();
        fn view(c: &Conn<AnyState>, reply: bool, now_ns: u64) -> rules::ConnView<'_> {
            rules::ConnView {
                tuples: &c.tuples,
                status: c.status.0,
                reply,
                expires_in: c.expires.as_nanos().saturating_sub(now_ns) / 1_000_000_000,
                counters: [
                    (c.counters[0].packets, c.counters[0].bytes),
                    (c.counters[1].packets, c.counters[1].bytes),
                ],
            }
        }
        // For -m connlimit: a listed connection counts while it is tracked, unexpired and,
        // for TCP, not closing (as the kernel's nf_conncount).
        let cts = &self.ct;
        let shard = self.shard.as_ref();
        let conn_alive = |t: &Tuple| match shard.and_then(|sh| sh.alive_elsewhere(t, now_ns)) {
            Some(alive) => alive,
            None => conn_alive_in(cts, t, now_ns),
        };
        let conn = match ct {
            Some(Ct::Known { id, dir, .. }) => self
                .ct
                .get(*id)
                .map(|c| view(c, *dir == Dir::Reply, now_ns)),
            Some(Ct::New { conn, .. }) => Some(view(conn, false, now_ns)),
            _ => None,
        };
        // A reassembled datagram is shown to payload matches as its fragments'
        // segments (the clone's header, then each fragment's data), not as a copy.
        let segments: Vec<&[u8]> = match &self.frag_pending {
            Some(f) => fragment_segments(pkt.as_slice(), &f.fragments),
            None => Vec::new(),
        };
        let ctx = PacketCtx {
            family: rules_family(meta.family),
            in_iface: name(in_iface),
            out_iface: name(out_iface),
            src: meta.src,
            dst: meta.dst,
            proto: meta.proto,
            sport: meta.sport,
            dport: meta.dport,
            icmp_type_code: meta.icmp,
            tcp_flags: meta.tcp_flags,
            ctstate,
            fragment: meta.frag == Frag::Later,
            len: meta.len as u32,
            ttl: meta.ttl,
            mark: skb.mark,
            ctmark,
            now_ns: self.now.as_nanos(),
            local_addr: Some(&is_local),
            packet: pkt.as_slice(),
            chain: (!segments.is_empty()).then_some(&segments[..]),
            conn,
            conn_alive: Some(&conn_alive),
            trace: skb.trace.is_some(),
        };
        // Reused across calls: the output is a few cache lines, and building and dropping it
        // per table was a visible share of a forwarded packet's cost.
        let mut out = self.eval_out.take().unwrap_or_default();
        out.skip_accept_rule = true;
        let v = rs.evaluate_full(table, hook, &ctx, &mut out);
        skb.mark = out.marks.mark;
        if let Some(z) = out.ct_zone {
            skb.zone = z;
        }
        if out.trace {
            self.trace_table(meta.family, skb, &out, meta, in_iface, out_iface);
        }
        if !out.tcpmss.is_empty() && meta.tcp_flags.is_some_and(|f| f & 0x02 != 0) {
            self.tcpmss_want(skb, &out.tcpmss, meta.family, in_iface, out_iface);
        }
        if out.marks.ctmark != ctmark {
            if let Some(Ct::Known { id, .. }) = ct {
                if let Some(c) = self.ct.get_mut(*id) {
                    c.mark = out.marks.ctmark;
                }
            }
        }
        for l in out.logs.drain(..) {
            let line = format!(
                "{}{} IN={} OUT={}",
                l.prefix,
                meta.describe(),
                self.iface_name_opt(in_iface),
                self.iface_name_opt(out_iface)
            );
            tracing::info!(target: "tunfilter::log", "{line}");
            self.push_event(Event::Log {
                at: self.now,
                rule: l.rule,
                line,
            });
        }
        if matches!(v, Verdict::Drop | Verdict::Reject(_)) {
            self.last_rule = out.rule.take();
        }
        if table == Table::Nat {
            self.last_nat = out.nat.take();
        }
        self.eval_out = Some(out);
        v
    }

    // ------------------------------------------------------------------ nat

    /// The nat step of a hook: for the first packet of a connection, bind
    /// the target the nat table chose (pick a unique reply tuple); then, for
    /// every packet of a NATed connection, rewrite the `manip` end. Returns
    /// false when the packet was dropped (no free mapping, or unwritable).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn nat_step(
        &mut self,
        ct: &mut Ct,
        manip: Manip,
        iface: Option<IfaceId>,
        pkt: &mut PacketBuf,
        meta: &mut Meta,
        hook: Hook,
        ingress: Option<IfaceId>,
    ) -> bool {
        // Most packets: nothing to bind and a connection without NAT. Decided inline.
        if self.last_nat.is_none() {
            let nat = Status::SRC_NAT | Status::DST_NAT;
            let plain = match &*ct {
                Ct::Untracked | Ct::Invalid(_) => true,
                Ct::Known { id, .. } => self.ct.get(*id).is_none_or(|c| c.status.0 & nat == 0),
                // A new connection's source may still need a null binding (below).
                Ct::New { conn, .. } => {
                    conn.status.0 & nat == 0
                        && !(manip == Manip::Src && self.has_rules(meta.family, Table::Nat))
                }
            };
            if plain {
                return true;
            }
        }
        self.nat_step_full(ct, manip, iface, pkt, meta, hook, ingress)
    }

    /// netfilter's null binding, at the last source-NAT hook of a new connection that no rule
    /// translated (only where the ruleset has a nat table, as only a loaded `iptable_nat`
    /// does it): the source stays, unless the reply tuple is already another connection's
    /// (typically a masqueraded one that picked this port first). Then the source port moves
    /// to a free one of the same class, and the connection becomes source-NATed. False when
    /// no port is free.
    fn null_binding(&mut self, conn: &mut Conn<AnyState>) -> bool {
        let table = &self.ct;
        let shard = self.shard.as_ref();
        let taken =
            |c: &Tuple| table.peek(c).is_some() || shard.is_some_and(|sh| sh.taken_elsewhere(c));
        if !taken(&conn.tuples[1]) {
            return true;
        }
        let keep_address = nat::NatRange {
            min_addr: None,
            max_addr: None,
            ports: None,
            random: false,
            random_fully: false,
            persistent: false,
        };
        match nat::choose(
            &conn.tuples[0],
            &conn.tuples[1],
            Manip::Src,
            &keep_address,
            0,
            taken,
        ) {
            Some(reply) => {
                conn.tuples[1] = reply;
                conn.status.insert(Status::SRC_NAT | Status::SRC_NAT_DONE);
                true
            }
            None => false,
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn nat_step_full(
        &mut self,
        ct: &mut Ct,
        manip: Manip,
        iface: Option<IfaceId>,
        pkt: &mut PacketBuf,
        meta: &mut Meta,
        hook: Hook,
        ingress: Option<IfaceId>,
    ) -> bool {
        // `take` moves the whole (large) target: only pay for it when there is one.
        let target = if self.last_nat.is_some() {
            self.last_nat.take()
        } else {
            None
        };
        if target.is_none() && manip == Manip::Src {
            if let Ct::New { conn, .. } = &mut *ct {
                if !conn.status.contains(Status::SRC_NAT) && !self.null_binding(conn) {
                    self.count_drop_hook("nat: no free port", hook, meta, ingress);
                    return false;
                }
            }
        }
        if let (Some(target), Ct::New { conn, .. }) = (target, &mut *ct) {
            let orig = conn.tuples[0];
            let local = self.local_addr_on(iface, meta.family);
            let bound = match &target {
                nat::NatTarget::Netmap { prefix } => {
                    let a = nat::netmap(
                        if manip == Manip::Src {
                            orig.src
                        } else {
                            orig.dst
                        },
                        prefix,
                    );
                    Some(nat::NatRange {
                        min_addr: Some(a),
                        max_addr: Some(a),
                        ports: None,
                        random: false,
                        random_fully: false,
                        persistent: false,
                    })
                }
                t => nat::resolve(t, local)
                    .filter(|(m, _)| *m == manip)
                    .map(|(_, r)| r),
            };
            if let Some(range) = bound {
                let salt = if range.random_fully {
                    self.nat_salt = self.nat_salt.wrapping_add(1);
                    self.nat_secret ^ self.nat_salt.wrapping_mul(0x2545_f491_4f6c_dd1d)
                } else if range.random {
                    self.nat_secret
                } else {
                    0
                };
                let table = &self.ct;
                let eim_on =
                    self.nat_cfg.udp_eim && manip == Manip::Src && nat_eim::applies(orig.proto);
                let internal = Endpoint {
                    proto: orig.proto,
                    addr: orig.src,
                    port: orig.src_id,
                };
                let now = self.now;
                // RFC 4787 REQ-1: reuse the endpoint's mapping whatever the
                // destination; a fresh choice must avoid other mappings.
                let mapped = if eim_on {
                    self.eim.external(&internal, now)
                } else {
                    None
                };
                let eim = &self.eim;
                // A reply tuple must be unique across shards too (see `crate::shard`).
                let shard = self.shard.as_ref();
                let reuse = mapped.and_then(|e| {
                    let fixed = nat::NatRange {
                        min_addr: Some(e.addr),
                        max_addr: Some(e.addr),
                        ports: Some((e.port, e.port)),
                        random: false,
                        random_fully: false,
                        persistent: false,
                    };
                    nat::choose(&orig, &conn.tuples[1], manip, &fixed, 0, |c| {
                        table.peek(c).is_some() || shard.is_some_and(|sh| sh.taken_elsewhere(c))
                    })
                });
                let chosen = reuse.or_else(|| {
                    nat::choose(&orig, &conn.tuples[1], manip, &range, salt, |c| {
                        let other = eim_on
                            && eim.taken_by_other(
                                &Endpoint {
                                    proto: c.proto,
                                    addr: c.dst,
                                    port: c.dst_id,
                                },
                                &internal,
                                now,
                            );
                        other
                            || table.peek(c).is_some()
                            || shard.is_some_and(|sh| sh.taken_elsewhere(c))
                    })
                });
                if let (true, Some(reply)) = (eim_on, chosen) {
                    let external = Endpoint {
                        proto: reply.proto,
                        addr: reply.dst,
                        port: reply.dst_id,
                    };
                    self.eim.record(internal, external, conn.expires);
                }
                match chosen {
                    Some(reply) => {
                        conn.tuples[1] = reply;
                        conn.status.insert(match manip {
                            Manip::Src => Status::SRC_NAT | Status::SRC_NAT_DONE,
                            Manip::Dst => Status::DST_NAT | Status::DST_NAT_DONE,
                        });
                    }
                    None => {
                        self.count_drop_hook("nat: no free port", hook, meta, ingress);
                        return false;
                    }
                }
            }
        }
        let (tuples, dir, related) = match &*ct {
            Ct::Known { id, dir, related } => match self.ct.get(*id) {
                Some(c) if c.status.0 & (Status::SRC_NAT | Status::DST_NAT) != 0 => {
                    (c.tuples, *dir, *related)
                }
                _ => return true,
            },
            Ct::New { conn, related }
                if conn.status.0 & (Status::SRC_NAT | Status::DST_NAT) != 0 =>
            {
                (conn.tuples, Dir::Original, *related)
            }
            _ => return true,
        };
        // How the packet must look when it leaves: the inverse of the other direction.
        let want = tuples[dir.flip().index()].invert();
        let (addr, port) = match manip {
            Manip::Src => (want.src, want.src_id),
            Manip::Dst => (want.dst, want.dst_id),
        };
        let first = meta.frag != Frag::Later;
        let ok = if related && self.is_error(meta) {
            nat::rewrite_icmp_error(pkt.as_mut_slice(), meta.l4_offset, manip, addr, Some(port))
        } else {
            let (cur_a, cur_p) = match manip {
                Manip::Src => (meta.src, meta.sport),
                Manip::Dst => (meta.dst, meta.dport),
            };
            let query = matches!(meta.proto, 1 | 58);
            if !query && cur_a == addr && (cur_p == Some(port) || cur_p.is_none()) {
                return true;
            }
            nat::rewrite_with(
                pkt.as_mut_slice(),
                meta.l4_offset,
                meta.proto,
                first,
                manip,
                addr,
                Some(port),
                self.partial_csum(),
            )
        };
        if !ok {
            self.count_drop_hook("nat: cannot rewrite", hook, meta, ingress);
            return false;
        }
        match Meta::of(pkt.as_slice()) {
            Ok(m) => {
                *meta = m;
                true
            }
            Err(_) => {
                self.count_drop_hook("nat: cannot rewrite", hook, meta, ingress);
                false
            }
        }
    }

    // ---------------------------------------------------------------- drops

    fn verdict_drop(
        &mut self,
        v: Verdict,
        hook: Hook,
        meta: &Meta,
        pkt: &PacketBuf,
        ingress: Option<IfaceId>,
    ) {
        let reason = match v {
            Verdict::Reject(with) => {
                if let Some(i) = ingress {
                    self.reject(with, meta, pkt, i);
                }
                "reject"
            }
            _ => "rule: drop",
        };
        self.count_drop_hook(reason, hook, meta, ingress);
    }

    fn count_drop_hook(
        &mut self,
        reason: &'static str,
        hook: Hook,
        meta: &Meta,
        ingress: Option<IfaceId>,
    ) {
        let rule = self.last_rule.take();
        let reason = match (&rule, reason) {
            (Some(r), "rule: drop") if r.is_policy() => "policy: drop",
            _ => reason,
        };
        self.drop_packet(reason, Some(hook), rule, ingress, meta.describe());
    }

    fn drop_packet(
        &mut self,
        reason: &'static str,
        hook: Option<Hook>,
        rule: Option<RuleRef>,
        ingress: Option<IfaceId>,
        packet: String,
    ) {
        self.drops.add(reason);
        if self.events_enabled {
            let iface = ingress
                .and_then(|i| self.ifaces.get(i))
                .map(|i| i.name.to_string());
            self.push_event(Event::Drop(DropEvent {
                at: self.now,
                hook,
                rule,
                reason,
                iface,
                packet,
            }));
        }
    }

    fn push_event(&mut self, e: Event) {
        if !self.events_enabled {
            return;
        }
        if self.events.len() >= EVENT_QUEUE {
            self.events.pop_front();
            self.drops.add("events: queue full");
        }
        self.events.push_back(e);
    }

    // ---------------------------------------------------------- local stack

    fn reject(&mut self, with: RejectWith, meta: &Meta, pkt: &PacketBuf, ingress: IfaceId) {
        // Never answer an ICMP error (RFC 1122 §3.2.2) nor a non-first fragment.
        if meta.frag == Frag::Later || self.is_error(meta) {
            return;
        }
        let (t, c) = match with {
            RejectWith::TcpReset => {
                if meta.proto == 6 {
                    if let Some(p) = local::tcp_reset(pkt.as_slice(), meta.l4_offset) {
                        self.output(p, Some(ingress));
                    }
                }
                return;
            }
            RejectWith::IcmpNetUnreachable => (3, 0),
            RejectWith::IcmpHostUnreachable => (3, 1),
            RejectWith::IcmpProtoUnreachable => (3, 2),
            RejectWith::IcmpPortUnreachable => (3, 3),
            RejectWith::IcmpNetProhibited => (3, 9),
            RejectWith::IcmpHostProhibited => (3, 10),
            RejectWith::IcmpAdminProhibited => (3, 13),
            RejectWith::Icmp6NoRoute => (1, 0),
            RejectWith::Icmp6AdmProhibited => (1, 1),
            RejectWith::Icmp6AddrUnreachable => (1, 3),
            RejectWith::Icmp6PortUnreachable => (1, 4),
        };
        let fam_ok = (t == 3) == (meta.family == Family::V4);
        if fam_ok {
            self.send_icmp_error(pkt, meta, ingress, t, c, 0);
        }
    }

    fn is_error(&self, meta: &Meta) -> bool {
        match (meta.family, meta.icmp) {
            (Family::V4, Some((t, _))) => matches!(t, 3 | 4 | 5 | 11 | 12),
            (Family::V6, Some((t, _))) => t < 128,
            _ => false,
        }
    }

    fn send_icmp_error(
        &mut self,
        pkt: &PacketBuf,
        meta: &Meta,
        ingress: IfaceId,
        ty: u8,
        code: u8,
        rest: u32,
    ) {
        if meta.frag == Frag::Later || self.is_error(meta) || meta.src.is_unspecified() {
            return;
        }
        if !self.icmp_limit.lock().take(self.now) {
            self.drops.add("icmp: rate limited");
            return;
        }
        let Some(src) = self.local_addr_on(Some(ingress), meta.family) else {
            return;
        };
        if let Some(p) = local::icmp_error(src, pkt.as_slice(), ty, code, rest) {
            self.output(p, Some(ingress));
        }
    }

    fn local_deliver(&mut self, _now: Instant, meta: &Meta, pkt: PacketBuf, ingress: IfaceId) {
        let echo = matches!(
            (meta.family, meta.icmp),
            (Family::V4, Some((8, 0))) | (Family::V6, Some((128, 0)))
        );
        if echo {
            if let Some(reply) = local::echo_reply(pkt.as_slice(), meta.l4_offset) {
                self.output(reply, Some(ingress));
            }
            return;
        }
        // No services listen on the router's addresses: answer like a host
        // with nothing bound (RST for TCP, port unreachable for UDP).
        match meta.proto {
            6 => {
                if let Some(p) = local::tcp_reset(pkt.as_slice(), meta.l4_offset) {
                    self.output(p, Some(ingress));
                }
            }
            17 | 136 => {
                let (t, c) = if meta.family == Family::V4 {
                    (3, 3)
                } else {
                    (1, 4)
                };
                self.send_icmp_error(&pkt, meta, ingress, t, c, 0);
            }
            _ => {}
        }
        self.drops.add("local: delivered to router");
    }

    /// The OUTPUT path for a packet the router originates.
    fn output(&mut self, pkt: PacketBuf, cause: Option<IfaceId>) {
        // A packet the router makes (an echo reply, an ICMP error, a RST) while
        // a reassembled datagram is in flight must not pick up that datagram's
        // fragments at POSTROUTING: set them aside for its duration.
        // Nor the offload header of the packet that caused it.
        let pending = self.frag_pending.take();
        let offload = self.offload.take();
        self.output_one(pkt, cause);
        self.frag_pending = pending;
        self.offload = offload;
    }

    fn output_one(&mut self, mut pkt: PacketBuf, cause: Option<IfaceId>) {
        let Ok(mut meta) = Meta::of(pkt.as_slice()) else {
            return;
        };
        let mut skb = Skb::default();
        let mut notrack = false;
        match self.run_table(
            Table::Raw,
            Hook::Output,
            &meta,
            &pkt,
            None,
            None,
            CtState::UNTRACKED,
            &mut skb,
            None,
        ) {
            Verdict::Accept => {}
            Verdict::NoTrack => notrack = true,
            v => return self.verdict_drop(v, Hook::Output, &meta, &pkt, None),
        }
        let mut ct = if notrack {
            Ct::Untracked
        } else {
            // Locally generated packets are not checksum-verified (netfilter neither).
            self.conntrack_in(&meta, pkt.as_slice(), false, skb.zone)
        };
        let Some(route) = self.routes.lookup(meta.dst).copied() else {
            return self.count_drop_hook("route: no route", Hook::Output, &meta, None);
        };
        let st = ct.state(&self.ct);
        for table in [Table::Mangle, Table::Nat, Table::Filter] {
            if table == Table::Nat && !ct.nat_due(Manip::Dst) {
                continue;
            }
            let v = self.run_table(
                table,
                Hook::Output,
                &meta,
                &pkt,
                None,
                Some(route.iface),
                st,
                &mut skb,
                Some(&ct),
            );
            if v != Verdict::Accept {
                // A REJECT of the router's own packet just drops it.
                return self.count_drop_hook(
                    if matches!(v, Verdict::Reject(_)) {
                        "reject"
                    } else {
                        "rule: drop"
                    },
                    Hook::Output,
                    &meta,
                    None,
                );
            }
        }
        let _ = cause;
        let before = meta.dst;
        if !self.nat_step(
            &mut ct,
            Manip::Dst,
            None,
            &mut pkt,
            &mut meta,
            Hook::Output,
            None,
        ) {
            return;
        }
        // A DNAT in OUTPUT re-routes the packet, as ip_route_me_harder does.
        let route = if meta.dst != before {
            match self.routes.lookup(meta.dst).copied() {
                Some(r) => r,
                None => return self.count_drop_hook("route: no route", Hook::Output, &meta, None),
            }
        } else {
            route
        };
        self.postrouting(ct, meta, pkt, None, route.iface, route.via, skb);
    }

    // --------------------------------------------------------------- timers

    /// Runs timers: the bounded conntrack GC sweep.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if now >= self.next_gc {
            self.ct.gc(now);
            self.next_gc = now + GC_INTERVAL;
        }
        for e in self.defrag.expire(now) {
            self.drops.add("frag: reassembly timeout");
            if let (true, Some((first, ingress))) = (self.defrag_time_exceeded, e.first) {
                if let Ok(m) = Meta::of(first.as_slice()) {
                    // Code 1: fragment reassembly time exceeded.
                    let t = if m.family == Family::V4 { 11 } else { 3 };
                    self.send_icmp_error(&first, &m, ingress, t, 1, 0);
                }
            }
        }
        // A full pass, so far less often; lookups check expiry themselves.
        if self.nat_cfg.udp_eim && now >= self.next_eim_gc {
            self.eim.gc(now);
            self.next_eim_gc = now + EIM_GC_INTERVAL;
        }
    }

    /// When `handle_timeout` should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next_gc)
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
        let r4 = match &self.rule_paths.0 {
            Some(p) => Ruleset::load(p, rules::Family::V4).map_err(|e| e.to_string())?,
            None => Ruleset::empty(rules::Family::V4),
        };
        let r6 = match &self.rule_paths.1 {
            Some(p) => Ruleset::load(p, rules::Family::V6).map_err(|e| e.to_string())?,
            None => Ruleset::empty(rules::Family::V6),
        };
        self.rules4 = Arc::new(r4);
        self.rules6 = Arc::new(r6);
        Ok(())
    }

    /// Replaces the rulesets directly (tests, benchmarks).
    pub fn set_rules(&mut self, r4: Ruleset, r6: Ruleset) {
        self.set_shared_rules(Arc::new(r4), Arc::new(r6));
    }

    /// Replaces the rulesets with ones other engines may share.
    pub fn set_shared_rules(&mut self, r4: Arc<Ruleset>, r6: Arc<Ruleset>) {
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

fn l3_reason(what: &'static str) -> &'static str {
    match what {
        "truncated" => "ip: truncated",
        "bad version" | "unknown IP version" => "ip: bad version",
        "bad header length" => "ip: bad header length",
        "bad total length" => "ip: bad length",
        "empty packet" => "ip: empty",
        _ => "ip: malformed",
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

/// The conntrack tuple of a plain TCP or UDP packet (IPv4 without options
/// and not fragmented, or IPv6 with the transport header first), read
/// straight from the bytes; `None` for anything else. Only used to warm the
/// cache (`handle_batch`): a wrong or missing tuple costs time, not
/// correctness, so nothing here is validated beyond bounds.
fn quick_tuple(p: &[u8]) -> Option<Tuple> {
    let ports = |l4: usize| -> Option<(u16, u16)> {
        let b = p.get(l4..l4 + 4)?;
        Some((
            u16::from_be_bytes([b[0], b[1]]),
            u16::from_be_bytes([b[2], b[3]]),
        ))
    };
    let (src, dst, proto, l4) = match p.first()? >> 4 {
        // IHL 5, MF clear and offset 0 (a fragment's ports are not in every piece).
        4 if p[0] == 0x45 && p.get(6..8).is_some_and(|f| f[0] & 0x3f == 0 && f[1] == 0) => {
            let a = |o: usize| -> Option<IpAddr> {
                let b: [u8; 4] = p.get(o..o + 4)?.try_into().ok()?;
                Some(IpAddr::from(b))
            };
            (a(12)?, a(16)?, p[9], 20)
        }
        6 => {
            let a = |o: usize| -> Option<IpAddr> {
                let b: [u8; 16] = p.get(o..o + 16)?.try_into().ok()?;
                Some(IpAddr::from(b))
            };
            (a(8)?, a(24)?, *p.get(6)?, 40)
        }
        _ => return None,
    };
    if proto != 6 && proto != 17 {
        return None;
    }
    let (src_id, dst_id) = ports(l4)?;
    Some(Tuple {
        src,
        dst,
        src_id,
        dst_id,
        proto,
        zone: 0,
    })
}

/// The segments of a reassembled datagram: the clone's header part (up to
/// where the fragmentable data starts), then each fragment's data in offset
/// order. Empty when a fragment cannot be read (the caller then searches the
/// contiguous clone).
fn fragment_segments<'a>(clone: &'a [u8], frags: &'a [PacketBuf]) -> Vec<&'a [u8]> {
    let mut parts: Vec<(usize, &[u8])> = Vec::with_capacity(frags.len());
    let mut hdr = None;
    for f in frags {
        let p = f.as_slice();
        let (off, data_at, end) = match p.first().map(|b| b >> 4) {
            Some(4) => {
                let ihl = usize::from(p[0] & 0x0f) * 4;
                let Some(total) = p
                    .get(2..4)
                    .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                else {
                    return Vec::new();
                };
                let Some(fo) = p.get(6..8).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
                    return Vec::new();
                };
                let off = usize::from(fo & 0x1fff) * 8;
                if off == 0 {
                    hdr = Some(ihl);
                }
                (off, ihl, total)
            }
            Some(6) => {
                let Some(plen) = p
                    .get(4..6)
                    .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                else {
                    return Vec::new();
                };
                let Some(walk) = p
                    .get(40..40 + plen)
                    .and_then(|pl| conntrack::wire::walk_ext_headers(p[6], pl).ok())
                else {
                    return Vec::new();
                };
                let Some(fh) = walk.frag else {
                    return Vec::new();
                };
                if fh.offset == 0 {
                    // The clone has the headers before the Fragment header.
                    hdr = Some(40 + fh.header_offset);
                }
                (usize::from(fh.offset), 40 + fh.header_offset + 8, 40 + plen)
            }
            _ => return Vec::new(),
        };
        match p.get(data_at..end) {
            Some(d) => parts.push((off, d)),
            None => return Vec::new(),
        }
    }
    let Some(h) = hdr.and_then(|h| clone.get(..h)) else {
        return Vec::new();
    };
    parts.sort_by_key(|(off, _)| *off);
    std::iter::once(h)
        .chain(parts.into_iter().map(|(_, d)| d))
        .collect()
}

/// Where the L4 header is (first fragment) or would be (later ones): after
/// the IPv4 header, or after the IPv6 Fragment header.
fn fragment_l4_offset(p: &[u8]) -> Option<usize> {
    match p.first()? >> 4 {
        4 => Some(usize::from(p[0] & 0x0f) * 4),
        6 => {
            let plen = usize::from(u16::from_be_bytes([*p.get(4)?, *p.get(5)?]));
            let walk = conntrack::wire::walk_ext_headers(p[6], p.get(40..40 + plen)?).ok()?;
            Some(40 + walk.l4_offset)
        }
        _ => None,
    }
}

fn is_broadcast(a: &IpAddr) -> bool {
    matches!(a, IpAddr::V4(v) if v.is_broadcast())
}

fn is_link_local(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => v.is_link_local(),
        IpAddr::V6(v) => (v.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// Decrements TTL / hop limit in place (IPv4 checksum updated incrementally, RFC 1624).
fn decrement_ttl(p: &mut [u8]) {
    match p.first().map(|b| b >> 4) {
        Some(4) => {
            if let Some(h) = p.get_mut(..20).filter(|h| h[8] != 0) {
                h[8] -= 1;
                // RFC 1624 eqn. 3 with m - m' = 0x0100 (TTL is the high byte of its word):
                // ~m + m' is the constant 0xfeff, so one add and one fold.
                let s = u32::from(!u16::from_be_bytes([h[10], h[11]])) + 0xfeff;
                let ck = !((s & 0xffff) + (s >> 16)) as u16;
                h[10..12].copy_from_slice(&ck.to_be_bytes());
            }
        }
        Some(6) => {
            if let Some(h) = p.get_mut(..40) {
                h[7] = h[7].saturating_sub(1);
            }
        }
        _ => {}
    }
}

/// Splits an IPv4 packet without DF into fragments that fit `mtu` (RFC 791:
/// data on 8-byte boundaries; options only where the copy flag says so).
fn fragment_v4(p: &[u8], mtu: usize) -> Option<Vec<PacketBuf>> {
    let ip = conntrack::wire::Ipv4Packet::new_checked(p).ok()?;
    let hl = ip.header_len();
    let payload = ip.payload();
    let base_off = usize::from(ip.frag_offset());
    let last_more = ip.more_frags();
    // Later fragments carry only options with the copied bit (RFC 791 §3.1).
    let mut later_opts = Vec::new();
    let opts = ip.options();
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => break,
            1 => i += 1,
            t => {
                let l = usize::from(*opts.get(i + 1)?).max(2);
                let o = opts.get(i..i + l)?;
                if t & 0x80 != 0 {
                    later_opts.extend_from_slice(o);
                }
                i += l;
            }
        }
    }
    while later_opts.len() % 4 != 0 {
        later_opts.push(0);
    }
    let mut out = Vec::new();
    let mut off = 0;
    while off < payload.len() {
        let this_hl = if off == 0 { hl } else { 20 + later_opts.len() };
        let room = (mtu.checked_sub(this_hl)? / 8) * 8;
        if room == 0 {
            return None;
        }
        let take = room.min(payload.len() - off);
        let more = off + take < payload.len() || last_more;
        let mut v = Vec::with_capacity(this_hl + take);
        if off == 0 {
            v.extend_from_slice(&p[..hl]);
        } else {
            v.extend_from_slice(&p[..20]);
            v.extend_from_slice(&later_opts);
            v[0] = 0x40 | ((this_hl / 4) as u8);
        }
        v.extend_from_slice(&payload[off..off + take]);
        let mut f = conntrack::wire::Ipv4Packet::new_unchecked(&mut v[..]);
        f.set_total_len((this_hl + take) as u16);
        f.set_frag(false, more, (base_off + off) as u16);
        f.fill_checksum();
        out.push(PacketBuf::from_slice(&v));
        off += take;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use conntrack::wire::checksum;
    use l3proto::defrag::{DefragConfig, Outcome};

    /// The constant-time checksum update keeps every header valid, whatever the TTL and the
    /// other fields (a zero TTL is left alone).
    #[test]
    fn decrement_ttl_keeps_the_checksum_valid() {
        let mut seed = 0x9e37_79b9u32;
        for ttl in 0..=255u8 {
            for _ in 0..64 {
                let mut h = [0u8; 20];
                for b in h.iter_mut() {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    *b = (seed >> 24) as u8;
                }
                h[0] = 0x45;
                h[8] = ttl;
                h[10] = 0;
                h[11] = 0;
                let ck = checksum::data(&h);
                h[10..12].copy_from_slice(&ck.to_be_bytes());
                let before = h;
                decrement_ttl(&mut h);
                if ttl == 0 {
                    assert_eq!(h, before);
                } else {
                    assert_eq!(h[8], ttl - 1);
                    assert_eq!(checksum::data(&h), 0, "ttl {ttl}: {before:02x?}");
                }
            }
        }
    }

    fn v4_fragments(id: u16) -> Vec<Vec<u8>> {
        let mut whole = vec![0u8; 20];
        conntrack::wire::ipv4::emit_header(
            &mut whole,
            [192, 0, 2, 2].into(),
            [198, 51, 100, 9].into(),
            17,
            64,
            8 + 100,
            id,
        )
        .unwrap();
        whole.extend_from_slice(&[0x0f, 0xa0, 0, 9, 0, 108, 0, 0]);
        whole.extend((0..100u8).map(|i| i.wrapping_mul(3)));
        [(0usize, 48usize), (48, 48), (96, 12)]
            .iter()
            .map(|&(off, len)| {
                let payload = &whole[20..];
                let end = (off + len).min(payload.len());
                let mut p = whole[..20].to_vec();
                p[2..4].copy_from_slice(&((20 + end - off) as u16).to_be_bytes());
                let more = if end < payload.len() { 0x2000 } else { 0 };
                p[6..8].copy_from_slice(&((off / 8) as u16 | more).to_be_bytes());
                p[10] = 0;
                p[11] = 0;
                let ck = checksum::data(&p);
                p[10..12].copy_from_slice(&ck.to_be_bytes());
                p.extend_from_slice(&payload[off..end]);
                p
            })
            .collect()
    }

    /// The segments handed to payload matches are exactly the clone's bytes,
    /// borrowed from the fragments (arrival order does not matter).
    #[test]
    fn fragment_segments_spell_the_clone() {
        let frags = v4_fragments(5);
        let mut d = Defrag::new(DefragConfig::default());
        let now = Instant::from_secs(1);
        let mut done = None;
        for i in [2, 0, 1] {
            if let Outcome::Complete(dg) = d.push(now, PacketBuf::from_slice(&frags[i]), 0) {
                done = Some(dg);
            }
        }
        let dg = done.expect("complete");
        let segs = fragment_segments(dg.clone.as_slice(), &dg.fragments);
        assert_eq!(segs.len(), 4, "header + three data segments");
        assert_eq!(segs.concat(), dg.clone.as_slice());
        // Each data segment points into a fragment, not into a copy.
        let inside = |s: &[u8]| {
            dg.fragments.iter().any(|f| {
                let r = f.as_slice().as_ptr_range();
                r.contains(&s.as_ptr())
            })
        };
        assert!(segs[1..].iter().all(|s| inside(s)));
    }
}
