//! The ruleset: iptables-save / ip6tables-save files loaded into tables of chains of rules, and a
//! linear first-match evaluator with netfilter's semantics.
//!
//! A [`Ruleset`] holds one address family (one file for IPv4, one for IPv6, as `iptables-save`
//! and `ip6tables-save` print them). Loading is all-or-nothing: any unknown or unsupported option
//! is an error naming `file:line:column`, never silently ignored. After loading the ruleset is
//! immutable and `Send + Sync`; per-rule packet and byte counters are atomics, so one
//! `Arc<Ruleset>` serves every worker thread.
//!
//! The pipeline calls [`Ruleset::evaluate`] (or [`Ruleset::evaluate_traced`] /
//! [`Ruleset::evaluate_full`]) once per table and hook, in netfilter's priority order, with a
//! [`PacketCtx`] it fills from the parsed packet and its conntrack entry.
//!
//! ```
//! use rules::{CtState, Family, Hook, PacketCtx, Ruleset, Table, Verdict};
//!
//! let text = "\
//! *filter
//! :INPUT DROP [0:0]
//! :FORWARD DROP [0:0]
//! :OUTPUT ACCEPT [0:0]
//! -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
//! -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
//! COMMIT
//! ";
//! let rules = Ruleset::parse(text, "gateway.rules", Family::V4).unwrap();
//!
//! let mut ctx = PacketCtx::new(
//!     Family::V4,
//!     "192.0.2.2".parse().unwrap(),
//!     "192.0.2.1".parse().unwrap(),
//!     6,
//!     &[],
//! );
//! ctx.dport = Some(22);
//! ctx.sport = Some(40000);
//! ctx.ctstate = CtState::NEW;
//! assert_eq!(rules.evaluate(Table::Filter, Hook::Input, &ctx), Verdict::Accept);
//!
//! ctx.dport = Some(23);
//! let (verdict, rule) = rules.evaluate_traced(Table::Filter, Hook::Input, &ctx);
//! assert_eq!(verdict, Verdict::Drop);
//! assert_eq!(rule.unwrap().to_string(), "filter INPUT policy");
//! ```
//!
//! Supported syntax (the rule syntax in `parse.rs`; each match in `matches/NAME.rs` and each
//! target in `targets/NAME.rs`, behind the interface of `extension.rs`):
//! - tables `*raw`, `*mangle`, `*nat`, `*filter`; `:CHAIN POLICY [pkts:bytes]`, `-N`, `-A`,
//!   `-I CHAIN [n]`, `COMMIT`, `#` comments, `[pkts:bytes]` rule prefixes, `"..."` quoting;
//! - matches `-s -d -i -o -p -f`, `-m tcp|udp|udplite|sctp|dccp --sport --dport` (tcp also
//!   `--tcp-flags`, `--syn`, `--tcp-option`), `-m multiport`, `-m conntrack --ctstate`,
//!   `-m state --state`, `-m icmp --icmp-type`, `-m icmp6 --icmpv6-type`, `-m comment`,
//!   `-m mark`, `-m connmark`, `-m iprange`, `-m length`, `-m ttl`, `-m hl`, `-m limit`,
//!   `-m addrtype`, `-m string`, `-m connbytes`, `-m connlimit`, `-m recent`, `-m hashlimit`,
//!   each negatable with a leading `!` where iptables allows it (the old `-s ! x` form is
//!   rejected with a hint);
//! - targets ACCEPT, DROP, RETURN, REJECT, NOTRACK / CT --notrack, CT --zone, LOG, MARK, CONNMARK,
//!   TRACE (steps in [`EvalOutput::trace_steps`]), TCPMSS ([`EvalOutput::tcpmss`]),
//!   `-j chain`, `-g chain`, and in the nat table SNAT, DNAT, MASQUERADE, REDIRECT and NETMAP
//!   (see `targets/nat.rs` for their forms and checks).
//!
//! Side effects other than the verdict come back in [`EvalOutput`]: LOG hits (the pipeline
//! writes them) and the packet / connection marks after MARK and CONNMARK (the pipeline stores
//! them on the packet and, when there is one, the connection). `-m limit` buckets live in the
//! rule and take their time from [`PacketCtx::now_ns`].
//!
//! A NAT target ends the traversal like ACCEPT and hands the engine the mapping to bind in
//! [`EvalOutput::nat`] ([`NatTarget`], [`NatRange`]); the rules only say *where* to map,
//! the `nat` crate picks the tuple and rewrites packets. Hook checks follow the kernel: SNAT in
//! POSTROUTING / INPUT, MASQUERADE in POSTROUTING, DNAT / REDIRECT in PREROUTING / OUTPUT, also
//! for rules in user chains, against every built-in chain that jumps to them.
//!
//! Rule classification: at load, each chain of 16 rules or more is compiled into an index
//! (`classify.rs`) that files every rule under one key its matches imply — a non-negated
//! contiguous `-d` prefix, else `-s` prefix, else a destination port set of at most 16 ports —
//! or under "always". Prefix keys live in one hash map per (family, prefix length), so a packet
//! costs a probe per distinct prefix length (tuple-space search) and a merge of the sorted lists
//! found; the traversal asks for the next candidate at or after its position and checks it with
//! the full match code. The index only ever drops rules that cannot match, so first-match
//! semantics, jumps, RETURN, non-terminating targets and counters are exactly those of the
//! linear scan ([`Ruleset::evaluate_linear`], the reference the differential test compares
//! against). Matches the index does not know are left to the full check; all-wildcard chains
//! degrade to the scan with one `u32` per rule of memory. Figures: BENCHMARKS.md, "classifier".

#![warn(missing_docs, unreachable_pub)]

mod classify;
mod eval;
mod extension;
pub mod fuzzing;
mod lex;
mod matches;
mod parse;
mod save;
mod targets;
pub mod textfile;
mod value;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use targets::nat::{NatRange, NatTarget};
pub use targets::reject::RejectWith;
pub use targets::tcpmss::TcpMss;

pub(crate) use matches::Match;
pub(crate) use targets::Target;

/// Address family of a ruleset (an `iptables-save` or an `ip6tables-save` file): the one
/// family type of the workspace, conntrack's.
pub use conntrack::tuple::Family;

/// The netfilter tables, in hook priority order (raw runs first, filter last of these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// `*raw`: before conntrack (NOTRACK, CT, TRACE).
    Raw,
    /// `*mangle`: marks and packet changes, in every hook.
    Mangle,
    /// `*nat`: the NAT targets, for the first packet of a connection.
    Nat,
    /// `*filter`: accept or drop.
    Filter,
}

impl Table {
    /// Every table, in hook priority order.
    pub const ALL: [Table; 4] = [Table::Raw, Table::Mangle, Table::Nat, Table::Filter];

    /// The name used in `*table` headers and `-t` options.
    pub fn name(self) -> &'static str {
        match self {
            Table::Raw => "raw",
            Table::Mangle => "mangle",
            Table::Nat => "nat",
            Table::Filter => "filter",
        }
    }

    /// The hooks this table has a built-in chain for, in hook order.
    pub fn hooks(self) -> &'static [Hook] {
        match self {
            Table::Raw => &[Hook::Prerouting, Hook::Output],
            Table::Mangle => &Hook::ALL,
            Table::Nat => &[
                Hook::Prerouting,
                Hook::Input,
                Hook::Output,
                Hook::Postrouting,
            ],
            Table::Filter => &[Hook::Input, Hook::Forward, Hook::Output],
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The five netfilter hooks; each names the built-in chain of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    /// Every packet received, before routing.
    Prerouting,
    /// Packets routed to the router itself.
    Input,
    /// Packets routed through the router.
    Forward,
    /// Packets the router sends, before routing.
    Output,
    /// Every packet sent, after routing.
    Postrouting,
}

impl Hook {
    /// Every hook, in the order a forwarded packet meets them (INPUT and OUTPUT between).
    pub const ALL: [Hook; 5] = [
        Hook::Prerouting,
        Hook::Input,
        Hook::Forward,
        Hook::Output,
        Hook::Postrouting,
    ];

    /// The name of the built-in chain attached to this hook.
    pub fn chain_name(self) -> &'static str {
        match self {
            Hook::Prerouting => "PREROUTING",
            Hook::Input => "INPUT",
            Hook::Forward => "FORWARD",
            Hook::Output => "OUTPUT",
            Hook::Postrouting => "POSTROUTING",
        }
    }

    /// The hook of a built-in chain name (`INPUT` → `Input`).
    pub fn from_chain_name(name: &str) -> Option<Hook> {
        Hook::ALL.into_iter().find(|h| h.chain_name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.chain_name())
    }
}

/// Conntrack state as the `state` and `conntrack` matches see it: one bit per state.
///
/// The pipeline sets exactly one of `NEW`, `ESTABLISHED`, `RELATED`, `INVALID`, `UNTRACKED`, and
/// may add the virtual states `SNAT` / `DNAT` when the connection is source/destination NATed
/// (only `--ctstate` looks at those two).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CtState(pub u8);

impl CtState {
    /// Not part of a known connection, or malformed for its protocol.
    pub const INVALID: CtState = CtState(1 << 0);
    /// Part of a connection that has seen packets both ways.
    pub const ESTABLISHED: CtState = CtState(1 << 1);
    /// Opens a connection another one expected, or an ICMP error about one.
    pub const RELATED: CtState = CtState(1 << 2);
    /// Opens a connection.
    pub const NEW: CtState = CtState(1 << 3);
    /// Left untracked by NOTRACK / `CT --notrack`.
    pub const UNTRACKED: CtState = CtState(1 << 4);
    /// Virtual: the connection is source-NATed.
    pub const SNAT: CtState = CtState(1 << 5);
    /// Virtual: the connection is destination-NATed.
    pub const DNAT: CtState = CtState(1 << 6);
    /// The states `-m state` knows (everything but the NAT virtual states).
    pub const BASE: CtState = CtState(0x1f);

    /// True when every bit of `other` is set in `self`.
    pub fn contains(self, other: CtState) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when `self` and `other` share at least one bit.
    pub fn intersects(self, other: CtState) -> bool {
        self.0 & other.0 != 0
    }

    /// True when no bit is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for CtState {
    type Output = CtState;
    fn bitor(self, rhs: CtState) -> CtState {
        CtState(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for CtState {
    fn bitor_assign(&mut self, rhs: CtState) {
        self.0 |= rhs.0;
    }
}

/// Everything a rule can look at, filled by the pipeline; cheap to build (borrowed).
///
/// Interfaces are `None` where the hook has none (no input interface in OUTPUT/POSTROUTING, no
/// output interface in PREROUTING/INPUT); `-i eth0` then does not match and `! -i eth0` does, as
/// in iptables where the name is empty.
#[derive(Clone, Copy)]
pub struct PacketCtx<'a> {
    /// The packet's address family (that of the ruleset evaluating it).
    pub family: Family,
    /// The interface the packet came in on (`-i`).
    pub in_iface: Option<&'a str>,
    /// The interface the packet goes out on (`-o`).
    pub out_iface: Option<&'a str>,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// L4 protocol after extension headers (v6).
    pub proto: u8,
    /// Source port; `None` when not a port protocol or not the first fragment.
    pub sport: Option<u16>,
    /// Destination port; `None` as for `sport`.
    pub dport: Option<u16>,
    /// `None` when not ICMP/ICMPv6 (matching `proto`) or not the first fragment.
    pub icmp_type_code: Option<(u8, u8)>,
    /// TCP flags byte (FIN=0x01 … CWR=0x80), `None` when not TCP or not the first fragment.
    pub tcp_flags: Option<u8>,
    /// The conntrack state (`-m state`, `-m conntrack --ctstate`).
    pub ctstate: CtState,
    /// Not the first fragment (iptables `-f` semantics).
    pub fragment: bool,
    /// L3 length (counted into byte counters and seen by `-m length`).
    pub len: u32,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// Packet mark (`skb->mark`) on entry to the table; MARK writes go to [`EvalOutput::marks`].
    pub mark: u32,
    /// Connection mark on entry to the table (0 when untracked); CONNMARK writes go to
    /// [`EvalOutput::marks`].
    pub ctmark: u32,
    /// Monotonic time in nanoseconds, for `-m limit`; the simulator passes capture time.
    pub now_ns: u64,
    /// Whether an address is one of the router's own (for `-m addrtype --src-type LOCAL`).
    /// `None` means no address is local.
    pub local_addr: Option<&'a (dyn Fn(IpAddr) -> bool + 'a)>,
    /// The L3 packet (for later matches such as -m length / string).
    pub packet: &'a [u8],
    /// The same datagram as a chain of segments (its header, then each fragment's data in
    /// offset order, borrowed from the fragments themselves) when it was reassembled
    /// (`None`: `packet` is all of it). Payload matches (`-m string`) search this instead.
    pub chain: Option<&'a [&'a [u8]]>,
    /// The packet's connection, for `-m conntrack` options beyond `--ctstate` (`None` when
    /// untracked or invalid).
    pub conn: Option<ConnView<'a>>,
    /// Whether a connection with this original tuple is still tracked and not closing, for
    /// `-m connlimit` to prune its lists (`None`: count only the packet's own connection).
    pub conn_alive: Option<&'a (dyn Fn(&conntrack::tuple::Tuple) -> bool + 'a)>,
    /// The packet is traced (a TRACE rule marked it in an earlier table or hook): every rule
    /// it hits is reported in [`EvalOutput::trace_steps`].
    pub trace: bool,
}

impl<'a> PacketCtx<'a> {
    /// A context with the given addresses and protocol and everything else empty (no interfaces,
    /// no ports, state INVALID, marks 0). Meant for tests and for the pipeline to fill further.
    pub fn new(family: Family, src: IpAddr, dst: IpAddr, proto: u8, packet: &'a [u8]) -> Self {
        PacketCtx {
            family,
            in_iface: None,
            out_iface: None,
            src,
            dst,
            proto,
            sport: None,
            dport: None,
            icmp_type_code: None,
            tcp_flags: None,
            ctstate: CtState::INVALID,
            fragment: false,
            len: u32::try_from(packet.len()).unwrap_or(u32::MAX),
            ttl: 64,
            mark: 0,
            ctmark: 0,
            now_ns: 0,
            local_addr: None,
            packet,
            chain: None,
            conn: None,
            conn_alive: None,
            trace: false,
        }
    }
}

impl Default for PacketCtx<'_> {
    fn default() -> Self {
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        PacketCtx::new(Family::V4, any, any, 0, &[])
    }
}

impl fmt::Debug for PacketCtx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketCtx")
            .field("family", &self.family)
            .field("in_iface", &self.in_iface)
            .field("out_iface", &self.out_iface)
            .field("src", &self.src)
            .field("dst", &self.dst)
            .field("proto", &self.proto)
            .field("sport", &self.sport)
            .field("dport", &self.dport)
            .field("icmp_type_code", &self.icmp_type_code)
            .field("tcp_flags", &self.tcp_flags)
            .field("ctstate", &self.ctstate)
            .field("fragment", &self.fragment)
            .field("len", &self.len)
            .field("ttl", &self.ttl)
            .field("mark", &self.mark)
            .field("ctmark", &self.ctmark)
            .field("now_ns", &self.now_ns)
            .field("local_addr", &self.local_addr.map(|_| "fn"))
            .field("packet_len", &self.packet.len())
            .finish()
    }
}

/// What a rule can see of the packet's connection (filled by the pipeline).
#[derive(Debug, Clone, Copy)]
pub struct ConnView<'a> {
    /// Original and reply tuples (the reply one after NAT).
    pub tuples: &'a [conntrack::tuple::Tuple; 2],
    /// Status bits (`conntrack::conn::Status`).
    pub status: u32,
    /// The packet travels in the reply direction.
    pub reply: bool,
    /// Seconds until the connection expires.
    pub expires_in: u64,
    /// (packets, bytes) seen in the original and reply directions, the current packet
    /// included.
    pub counters: [(u64, u64); 2],
    /// For a connection a helper expected: that helper's name (`-m helper`).
    pub master_helper: Option<&'static str>,
}

/// What a table decided for a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Continue to the next table, hook or stage.
    Accept,
    /// Drop silently.
    Drop,
    /// Drop and answer with an ICMP error or a TCP RST.
    Reject(RejectWith),
    /// raw table: NOTRACK / CT --notrack hit and the traversal then ended in ACCEPT: untrack the
    /// packet and continue as ACCEPT. (A later DROP in the same traversal wins: `Drop`.)
    NoTrack,
}

/// The packet and connection marks, as MARK / CONNMARK targets leave them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Marks {
    /// The packet mark (`skb->mark`).
    pub mark: u32,
    /// The connection mark.
    pub ctmark: u32,
}

/// Which rule (or chain policy) decided a verdict: for traces, drop reasons and the event log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuleRef {
    /// The table holding the rule.
    pub table: Table,
    /// The chain holding the rule; for a policy, the built-in chain whose policy applied.
    pub chain: Arc<str>,
    /// 1-based position in `chain` as `iptables -L --line-numbers` shows it; 0 = the chain policy.
    pub rule_num: usize,
}

impl RuleRef {
    /// Whether this names a chain policy rather than a rule.
    pub fn is_policy(&self) -> bool {
        self.rule_num == 0
    }
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_policy() {
            write!(f, "{} {} policy", self.table, self.chain)
        } else {
            write!(f, "{} {} rule {}", self.table, self.chain, self.rule_num)
        }
    }
}

/// A LOG target hit; the pipeline formats and writes the line (prefix + packet summary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The LOG rule that was hit.
    pub rule: RuleRef,
    /// Its `--log-prefix` (empty without).
    pub prefix: Arc<str>,
    /// syslog level 0 (emerg) ..= 7 (debug).
    pub level: u8,
}

/// Everything a traversal produced besides the verdict ([`Ruleset::evaluate_full`]).
#[derive(Debug, Clone, Default)]
pub struct EvalOutput {
    /// The rule or policy that decided; `None` when the table or chain does not exist.
    pub rule: Option<RuleRef>,
    /// LOG hits in traversal order.
    pub logs: Vec<LogRecord>,
    /// Marks after the traversal (starting from `ctx.mark` / `ctx.ctmark`).
    pub marks: Marks,
    /// The NAT target a nat-table rule chose (the traversal then accepted).
    pub nat: Option<NatTarget>,
    /// Set by the caller: leave `rule` at `None` when a rule or policy ACCEPTs. The pipeline
    /// needs the deciding rule only for drops, and naming it costs a reference count per packet.
    pub skip_accept_rule: bool,
    /// Whether the packet is traced after this traversal (`ctx.trace`, or a TRACE rule hit).
    pub trace: bool,
    /// What a traced packet hit, in order (empty unless traced).
    pub trace_steps: Vec<TraceStep>,
    /// TCPMSS hits in traversal order; the pipeline rewrites the SYN's MSS option.
    pub tcpmss: Vec<TcpMss>,
    /// raw table: the conntrack zone of the last `-j CT --zone` hit (`None`: the default).
    pub ct_zone: Option<u16>,
    /// The helper a `-j CT --helper NAME` rule attached (raw table).
    pub ct_helper: Option<&'static str>,
}

/// What a traced packet hit: a rule, the implicit return at the end of a user chain, or a
/// built-in chain's policy — the `rule` / `return` / `policy` lines of `xtables-monitor --trace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceKind {
    /// A rule matched.
    Rule,
    /// The end of a user chain was reached.
    Return,
    /// A built-in chain's policy applied.
    Policy,
}

impl TraceKind {
    /// The word xtables-monitor prints: `rule`, `return` or `policy`.
    pub fn name(self) -> &'static str {
        match self {
            TraceKind::Rule => "rule",
            TraceKind::Return => "return",
            TraceKind::Policy => "policy",
        }
    }
}

/// One step of a traced packet ([`EvalOutput::trace_steps`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceStep {
    /// The rule (1-based), the end of a user chain (its rule count + 1), or the policy (0).
    pub rule: RuleRef,
    /// What kind of step it was.
    pub kind: TraceKind,
    /// What happened: ACCEPT, DROP, REJECT, RETURN, `JUMP chain`, `GOTO chain`, a NAT target's
    /// name, or CONTINUE for non-terminating targets and rules without one.
    pub verdict: String,
}

/// A load error pointing at the offending token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The file, as the caller named it.
    pub file: String,
    /// 1-based; 0 when the error is about the whole file (it could not be read).
    pub line: usize,
    /// 1-based, in characters; 0 when `line` is 0.
    pub column: usize,
    /// What is wrong and, where it helps, what was expected.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

impl std::error::Error for RuleError {}

/// How to load a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Restore the `[pkts:bytes]` counters of chains and rules (like `iptables-restore
    /// --counters`); by default they are read, checked and ignored, as iptables-restore does.
    pub counters: bool,
}

/// Counter banks per rule: threads that evaluate rulesets each own one bank and
/// update it with a plain load and store (no locked instruction, which cost as
/// much as the rest of rule evaluation); the last bank is shared by any further
/// threads and updated atomically. Readers sum the banks, like iptables'
/// per-CPU counters.
const BANKS: usize = 8;

/// The calling thread's bank: the first `BANKS - 1` threads that count get one
/// of their own for their lifetime; later threads share the last one.
fn bank() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static BANK: Cell<usize> = const { Cell::new(usize::MAX) });
    BANK.with(|b| {
        if b.get() == usize::MAX {
            b.set(NEXT.fetch_add(1, Ordering::Relaxed).min(BANKS - 1));
        }
        b.get()
    })
}

/// A packet and byte counter pair, shared between threads (see [`BANKS`]).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    banks: [[AtomicU64; 2]; BANKS],
}

impl Counters {
    fn new(packets: u64, bytes: u64) -> Self {
        let c = Counters::default();
        c.banks[0][0].store(packets, Ordering::Relaxed);
        c.banks[0][1].store(bytes, Ordering::Relaxed);
        c
    }

    #[inline]
    pub(crate) fn add(&self, len: u32) {
        // Relaxed: counters are statistics, nothing is ordered against them.
        let b = bank();
        let [p, by] = &self.banks[b];
        if b < BANKS - 1 {
            // This thread is the bank's only writer: load + store is exact.
            p.store(p.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
            by.store(
                by.load(Ordering::Relaxed).wrapping_add(u64::from(len)),
                Ordering::Relaxed,
            );
        } else {
            p.fetch_add(1, Ordering::Relaxed);
            by.fetch_add(u64::from(len), Ordering::Relaxed);
        }
    }

    pub(crate) fn get(&self) -> (u64, u64) {
        self.banks.iter().fold((0u64, 0u64), |(p, b), [bp, bb]| {
            (
                p.wrapping_add(bp.load(Ordering::Relaxed)),
                b.wrapping_add(bb.load(Ordering::Relaxed)),
            )
        })
    }

    fn reset(&self) {
        // Zeroing another thread's bank races with its load + store (a count
        // in flight may survive the reset), as `iptables -Z` on a busy box.
        for [p, b] in &self.banks {
            p.store(0, Ordering::Relaxed);
            b.store(0, Ordering::Relaxed);
        }
    }
}

/// Built-in chain policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    Accept,
    Drop,
}

/// One rule: all `matches` must hold for `target` to apply. This flat form is what a later
/// compiler into a decision structure starts from.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) matches: Vec<Match>,
    pub(crate) target: Target,
    pub(crate) counters: Counters,
}

impl PartialEq for Rule {
    // Counters are state, not part of what the rule is.
    fn eq(&self, other: &Rule) -> bool {
        self.matches == other.matches && self.target == other.target
    }
}

#[derive(Debug)]
pub(crate) struct Chain {
    pub(crate) name: Arc<str>,
    /// `Some` for built-in chains, `None` for user chains.
    pub(crate) policy: Option<Policy>,
    pub(crate) policy_counters: Counters,
    pub(crate) rules: Vec<Rule>,
}

impl PartialEq for Chain {
    fn eq(&self, other: &Chain) -> bool {
        self.name == other.name && self.policy == other.policy && self.rules == other.rules
    }
}

#[derive(Debug, PartialEq)]
pub(crate) struct TableRules {
    pub(crate) table: Table,
    /// Built-in chains first (in hook order), then user chains in declaration order.
    pub(crate) chains: Vec<Chain>,
    /// Chain index of the built-in chain per hook (indexed by `Hook as usize`).
    pub(crate) builtin: [Option<usize>; 5],
    /// The compiled classifier, one entry per chain (see `classify`).
    pub(crate) index: classify::TableIndex,
    /// Per hook: the built-in chain starts with a lone state test that accepts (see
    /// [`StateHead`]).
    pub(crate) head: [Option<StateHead>; 5],
}

/// A built-in chain whose first rule is only `-m conntrack --ctstate S` (or `-m state
/// --state S`) with `-j ACCEPT`, the usual first rule of a stateful firewall. For a packet
/// in state S the whole evaluation comes down to that rule: [`Ruleset::accept_by_state`]
/// counts it and accepts without building the packet's match context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StateHead {
    mask: CtState,
    invert: bool,
    /// `-m state` sees only the base states, not the virtual SNAT/DNAT ones.
    base_only: bool,
}

impl StateHead {
    /// The head of `chain`, if its first rule has that form.
    pub(crate) fn of(chain: &Chain) -> Option<StateHead> {
        let rule = chain.rules.first()?;
        if rule.target != Target::Accept {
            return None;
        }
        match rule.matches.as_slice() {
            [Match::Conntrack(m)] => {
                let st = m.state.as_ref()?;
                let only_state = matches::conntrack::CtMatch {
                    state: None,
                    ..(**m).clone()
                } == matches::conntrack::CtMatch::default();
                only_state.then_some(StateHead {
                    mask: st.mask,
                    invert: st.invert,
                    base_only: false,
                })
            }
            [Match::State(m)] => Some(StateHead {
                mask: m.state.mask,
                invert: m.state.invert,
                base_only: true,
            }),
            _ => None,
        }
    }

    fn hits(&self, ctstate: CtState) -> bool {
        let st = if self.base_only {
            CtState(ctstate.0 & CtState::BASE.0)
        } else {
            ctstate
        };
        st.intersects(self.mask) != self.invert
    }
}

/// A loaded ruleset for one address family. Immutable after load except for counters.
#[derive(Debug, PartialEq)]
pub struct Ruleset {
    family: Family,
    /// Indexed by `Table as usize`.
    tables: [Option<TableRules>; 4],
}

impl Ruleset {
    /// A ruleset with no tables: every hook accepts.
    pub fn empty(family: Family) -> Ruleset {
        Ruleset {
            family,
            tables: [None, None, None, None],
        }
    }

    /// Parses iptables-save text; `file` only names the source in errors. Counters in the text
    /// are ignored (see [`Ruleset::parse_with`]).
    pub fn parse(text: &str, file: &str, family: Family) -> Result<Ruleset, RuleError> {
        Ruleset::parse_with(text, file, family, LoadOptions::default())
    }

    /// Parses iptables-save text with options.
    pub fn parse_with(
        text: &str,
        file: &str,
        family: Family,
        options: LoadOptions,
    ) -> Result<Ruleset, RuleError> {
        parse::parse(text, file, family, options)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path, family: Family) -> Result<Ruleset, RuleError> {
        Ruleset::load_with(path, family, LoadOptions::default())
    }

    /// Reads and parses a file with options.
    pub fn load_with(
        path: &Path,
        family: Family,
        options: LoadOptions,
    ) -> Result<Ruleset, RuleError> {
        let file = path.display().to_string();
        let text = crate::textfile::read(path, crate::textfile::MAX_TEXT_FILE).map_err(|e| {
            let (line, column) = match e {
                crate::textfile::TextError::NotUtf8 { line, column, .. } => (line, column),
                _ => (0, 0),
            };
            RuleError {
                file: file.clone(),
                line,
                column,
                message: if line == 0 {
                    format!("cannot read the ruleset: {e}")
                } else {
                    e.to_string()
                },
            }
        })?;
        Ruleset::parse_with(&text, &file, family, options)
    }

    /// The family the ruleset was loaded for.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Whether the file had a `*table` section for `table`.
    pub fn has_table(&self, table: Table) -> bool {
        self.tables[table.index()].is_some()
    }

    /// Whether a rule attaches a conntrack helper (`-j CT --helper NAME`): the engine then
    /// adds its helper stage.
    pub fn names_helpers(&self) -> bool {
        self.tables
            .iter()
            .flatten()
            .flat_map(|t| t.chains.iter())
            .flat_map(|c| c.rules.iter())
            .any(|r| {
                matches!(
                    r.target,
                    Target::Ct(targets::ct::Ct::Set {
                        helper: Some(_),
                        ..
                    })
                )
            })
    }

    /// For a packet that is not traced: when `table`'s chain for `hook` starts with a lone
    /// state test that accepts (a `StateHead`) and `ctstate` passes it, counts that rule
    /// (`len` bytes) and returns true; the full evaluation would have done exactly that and
    /// nothing else. False: evaluate normally.
    #[inline(always)]
    pub fn accept_by_state(&self, table: Table, hook: Hook, ctstate: CtState, len: u32) -> bool {
        let Some(t) = &self.tables[table.index()] else {
            return false;
        };
        let (Some(head), Some(ci)) = (t.head[hook.index()], t.builtin[hook.index()]) else {
            return false;
        };
        if !head.hits(ctstate) {
            return false;
        }
        match t.chains.get(ci).and_then(|c| c.rules.first()) {
            Some(rule) => {
                rule.counters.add(len);
                true
            }
            None => false,
        }
    }

    /// Evaluates `table`'s built-in chain for `hook`; a missing table or chain accepts.
    /// Updates rule and policy counters (packets, bytes = `ctx.len`).
    pub fn evaluate(&self, table: Table, hook: Hook, ctx: &PacketCtx) -> Verdict {
        let mut out = EvalOutput::default();
        self.evaluate_full(table, hook, ctx, &mut out)
    }

    /// Like [`Ruleset::evaluate`], also naming the rule or policy that decided (`None` when the
    /// table or chain does not exist).
    pub fn evaluate_traced(
        &self,
        table: Table,
        hook: Hook,
        ctx: &PacketCtx,
    ) -> (Verdict, Option<RuleRef>) {
        let mut out = EvalOutput::default();
        let verdict = self.evaluate_full(table, hook, ctx, &mut out);
        (verdict, out.rule)
    }

    /// Full evaluation: `out` is reset, then receives the deciding rule, the LOG hits and the
    /// marks as MARK/CONNMARK targets left them (starting from `ctx.mark` / `ctx.ctmark`; the
    /// caller writes them back to the packet and connection), and the NAT target of a deciding
    /// nat-table rule (`None` otherwise).
    #[inline]
    pub fn evaluate_full(
        &self,
        table: Table,
        hook: Hook,
        ctx: &PacketCtx,
        out: &mut EvalOutput,
    ) -> Verdict {
        out.rule = None;
        out.nat = None;
        out.logs.clear();
        out.trace = false;
        out.trace_steps.clear();
        out.tcpmss.clear();
        out.ct_zone = None;
        out.ct_helper = None;
        out.marks = Marks {
            mark: ctx.mark,
            ctmark: ctx.ctmark,
        };
        match &self.tables[table.index()] {
            Some(t) => eval::run(t, hook, ctx, out),
            None => Verdict::Accept,
        }
    }

    /// [`Ruleset::evaluate_full`] by a plain scan of every rule, without the compiled classifier:
    /// the reference the classifier is tested against (same results, same counter updates).
    pub fn evaluate_linear(
        &self,
        table: Table,
        hook: Hook,
        ctx: &PacketCtx,
        out: &mut EvalOutput,
    ) -> Verdict {
        out.rule = None;
        out.nat = None;
        out.logs.clear();
        out.trace = false;
        out.trace_steps.clear();
        out.tcpmss.clear();
        out.ct_zone = None;
        out.ct_helper = None;
        out.marks = Marks {
            mark: ctx.mark,
            ctmark: ctx.ctmark,
        };
        match &self.tables[table.index()] {
            Some(t) => eval::run_linear(t, hook, ctx, out),
            None => Verdict::Accept,
        }
    }

    /// iptables-save text of the ruleset, with counters `[pkts:bytes]` when `counters`.
    pub fn save(&self, counters: bool) -> String {
        save::save(self, counters)
    }

    /// A rule as iptables-save prints it (`-A CHAIN ...`), for traces; `None` for a policy
    /// or a reference into another ruleset.
    pub fn rule_text(&self, rule: &RuleRef) -> Option<String> {
        save::rule_text(self, rule)
    }

    /// Zeroes every rule and policy counter (`iptables -Z`).
    pub fn zero_counters(&self) {
        for t in self.tables.iter().flatten() {
            for c in &t.chains {
                c.policy_counters.reset();
                for r in &c.rules {
                    r.counters.reset();
                }
            }
        }
    }

    /// Counters of a rule (1-based `rule_num`) or, with `rule_num` 0, of a built-in chain's
    /// policy: `(packets, bytes)`.
    pub fn counters(&self, table: Table, chain: &str, rule_num: usize) -> Option<(u64, u64)> {
        let t = self.tables[table.index()].as_ref()?;
        let c = t.chains.iter().find(|c| &*c.name == chain)?;
        if rule_num == 0 {
            c.policy.map(|_| c.policy_counters.get())
        } else {
            c.rules.get(rule_num - 1).map(|r| r.counters.get())
        }
    }

    /// Number of rules in all tables and chains.
    pub fn rule_count(&self) -> usize {
        self.tables
            .iter()
            .flatten()
            .flat_map(|t| t.chains.iter())
            .map(|c| c.rules.len())
            .sum()
    }
}
