//! [`Ipsec`]: the SAD, the SPD, the counters, the events and the deadlines, behind the calls
//! the engine's hook stages make.

use crate::esp::{self, Opened};
use crate::flow::Flow;
use crate::sa::{ConfigError, Limit, Mode, Sa, SaConfig};
use crate::spd::{Action, Direction, Level, PolicyConfig, Spd, Template, MAX_DEPTH};
use crate::stats::{InDrop, OutDrop, XfrmStats};
use core::fmt;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;
use wire::{Instant, PacketBuf};

/// How long an `Acquire` for one policy holds off the next (Linux's `XFRM_ACQ_EXPIRES`).
pub const ACQUIRE_INTERVAL: Duration = Duration::from_secs(30);

/// A handle on an SA. It goes stale when the SA is deleted (or expires): the calls that take
/// one then answer as if the SA did not exist, so the engine may cache bundles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct SaId {
    index: u32,
    generation: u32,
}

/// What the hooks and `-m policy` need to know about an SA that handled a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SaInfo {
    /// The SA.
    pub id: SaId,
    /// Its SPI.
    pub spi: u32,
    /// Its reqid.
    pub reqid: u32,
    /// Its mode.
    pub mode: Mode,
    /// Its source (the tunnel source in tunnel mode).
    pub src: IpAddr,
    /// Its destination.
    pub dst: IpAddr,
}

impl SaInfo {
    fn of(id: SaId, sa: &Sa) -> SaInfo {
        SaInfo {
            id,
            spi: sa.cfg.spi,
            reqid: sa.cfg.reqid,
            mode: sa.cfg.mode,
            src: sa.cfg.src,
            dst: sa.cfg.dst,
        }
    }
}

/// The SAs a received packet was decapsulated with, outermost first (Linux's `sec_path`): the
/// inbound policy check and `-m policy --dir in` read it. At most [`MAX_DEPTH`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SecPath {
    len: u8,
    items: [Option<SaInfo>; MAX_DEPTH],
}

impl SecPath {
    /// An empty path (a packet that came in clear).
    pub fn new() -> SecPath {
        SecPath::default()
    }

    fn push(&mut self, i: SaInfo) -> bool {
        match self.items.get_mut(usize::from(self.len)) {
            Some(slot) => {
                *slot = Some(i);
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// The SAs, outermost first.
    pub fn iter(&self) -> impl Iterator<Item = &SaInfo> {
        self.items[..usize::from(self.len)].iter().flatten()
    }

    /// How many SAs.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the packet came in clear.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether one of the SAs from `from` on is a tunnel (Linux's `secpath_has_nontransport`).
    fn has_tunnel_from(&self, from: usize) -> bool {
        self.iter().skip(from).any(|i| i.mode != Mode::Transport)
    }
}

/// The SAs to apply to an outbound packet, innermost first: the result of
/// [`Ipsec::lookup_out`], which the engine may keep with the connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Bundle {
    len: u8,
    ids: [SaId; MAX_DEPTH],
}

impl Bundle {
    /// A bundle of these SAs, innermost first; `None` beyond [`MAX_DEPTH`].
    pub fn of(ids: &[SaId]) -> Option<Bundle> {
        if ids.len() > MAX_DEPTH {
            return None;
        }
        let mut b = Bundle::default();
        for &id in ids {
            b.push(id);
        }
        Some(b)
    }

    /// The SAs, innermost first.
    pub fn ids(&self) -> &[SaId] {
        &self.ids[..usize::from(self.len)]
    }

    fn push(&mut self, id: SaId) {
        // The caller checked the templates' count against MAX_DEPTH.
        if let Some(slot) = self.ids.get_mut(usize::from(self.len)) {
            *slot = id;
            self.len += 1;
        }
    }
}

/// What became of an outbound packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protected {
    /// No policy asks for protection: it leaves in clear, unchanged.
    Clear,
    /// Encapsulated by these SAs; the buffer holds the ESP packet, to `dst`.
    Encapsulated {
        /// The SAs applied.
        bundle: Bundle,
        /// Destination of the new outermost header.
        dst: IpAddr,
    },
}

/// What an inbound ESP packet held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decapsulated {
    /// An IP packet, now in the buffer, to be received again (PREROUTING).
    Packet(SaInfo),
    /// A dummy packet (next header 59, RFC 4303 §2.6): valid, counted, to be dropped silently.
    Dummy(SaInfo),
}

/// Something the engine should report (`tunfilter xfrm monitor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A soft limit was reached: the SA still works, but should be replaced.
    SoftExpire {
        /// The SA.
        sa: SaInfo,
        /// Which limit.
        limit: Limit,
    },
    /// A hard limit was reached: the SA is gone.
    HardExpire {
        /// The SA.
        sa: SaInfo,
        /// Which limit.
        limit: Limit,
    },
    /// The SA sent its last sequence number (2^32 - 1, or 2^64 - 1 with ESN) and can send no
    /// more: it needs replacing.
    SeqExhausted {
        /// The SA.
        sa: SaInfo,
    },
    /// A policy needs an SA that does not exist (a key manager would negotiate it); at most
    /// once per policy every [`ACQUIRE_INTERVAL`].
    Acquire {
        /// The template without an SA.
        template: Template,
        /// The flow that needed it.
        flow: Flow,
    },
}

/// As `ip xfrm monitor` prints them, on one line.
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sa = |f: &mut fmt::Formatter<'_>, s: &SaInfo| {
            write!(
                f,
                "src {} dst {} proto esp spi 0x{:08x} reqid {} mode {}",
                s.src, s.dst, s.spi, s.reqid, s.mode
            )
        };
        match self {
            Event::SoftExpire { sa: s, limit } => {
                write!(f, "Expired ")?;
                sa(f, s)?;
                write!(f, " hard 0 ({})", limit.name())
            }
            Event::HardExpire { sa: s, limit } => {
                write!(f, "Expired ")?;
                sa(f, s)?;
                write!(f, " hard 1 ({})", limit.name())
            }
            Event::SeqExhausted { sa: s } => {
                write!(f, "Sequence exhausted ")?;
                sa(f, s)
            }
            Event::Acquire { template: t, flow } => {
                let any =
                    |a: Option<IpAddr>| a.map_or_else(|| "any".to_string(), |a| a.to_string());
                write!(
                    f,
                    "acquire proto esp src {} dst {} reqid {} mode {} for {} -> {} proto {} sport {} dport {}",
                    any(t.src),
                    any(t.dst),
                    t.reqid,
                    t.mode,
                    flow.src,
                    flow.dst,
                    flow.proto,
                    flow.sport,
                    flow.dport
                )
            }
        }
    }
}

struct Slot {
    generation: u32,
    sa: Option<Sa>,
}

/// The IPsec state of one engine: SAD, SPD, `xfrm_stat` counters, pending events.
///
/// Sans-IO like the rest of the core: every call takes `now`; [`Ipsec::poll_timeout`] says
/// when [`Ipsec::handle_timeout`] has work (a timed lifetime), and events are pulled with
/// [`Ipsec::poll_event`]. Order of the engine's calls, as Linux's hooks:
///
/// - outbound: [`lookup_out`](Ipsec::lookup_out) at the routing decision (again if source
///   NAT changed the flow), then [`encapsulate`](Ipsec::encapsulate) after POSTROUTING;
///   the ESP packet then crosses OUTPUT and POSTROUTING;
/// - inbound: [`decapsulate`](Ipsec::decapsulate) for ESP to this host after INPUT; the
///   result goes through PREROUTING again with its [`SecPath`];
///   [`check_inbound`](Ipsec::check_inbound) before FORWARD (`Direction::Fwd`) or after
///   INPUT (`Direction::In`) for every packet, protected or not.
#[derive(Default)]
pub struct Ipsec {
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_spi: HashMap<(IpAddr, u32), SaId>,
    by_dst: HashMap<IpAddr, Vec<SaId>>,
    spd: Spd,
    stats: XfrmStats,
    events: VecDeque<Event>,
    deadline: Option<Instant>,
}

impl fmt::Debug for Ipsec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ipsec")
            .field("sas", &self.by_spi.len())
            .field("policies", &self.spd.len())
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl Ipsec {
    /// No SA, no policy.
    pub fn new() -> Ipsec {
        Ipsec::default()
    }

    /// Whether there is neither an SA nor a policy: the engine can skip its IPsec stages.
    pub fn is_empty(&self) -> bool {
        self.by_spi.is_empty() && self.spd.is_empty()
    }

    // ---- the SAD ----

    /// Adds an SA (`ip xfrm state add`); an existing one with the same destination and SPI is
    /// an error.
    pub fn add_sa(&mut self, cfg: SaConfig, now: Instant) -> Result<SaId, ConfigError> {
        let key = (cfg.dst, cfg.spi);
        if self.by_spi.contains_key(&key) {
            return Err(ConfigError(format!(
                "an SA for dst {} spi 0x{:08x} exists already",
                cfg.dst, cfg.spi
            )));
        }
        let sa = Sa::new(cfg, now)?;
        let dst = sa.cfg.dst;
        let id = match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.sa = Some(sa);
                SaId {
                    index,
                    generation: slot.generation,
                }
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    sa: Some(sa),
                });
                SaId {
                    index: (self.slots.len() - 1) as u32,
                    generation: 0,
                }
            }
        };
        self.by_spi.insert(key, id);
        self.by_dst.entry(dst).or_default().push(id);
        self.refresh_deadline();
        Ok(id)
    }

    fn remove(&mut self, id: SaId) -> Option<Sa> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        let sa = slot.sa.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.index);
        self.by_spi.remove(&(sa.cfg.dst, sa.cfg.spi));
        if let Some(v) = self.by_dst.get_mut(&sa.cfg.dst) {
            v.retain(|&x| x != id);
            if v.is_empty() {
                self.by_dst.remove(&sa.cfg.dst);
            }
        }
        Some(sa)
    }

    /// Deletes the SA for `dst` and `spi` (`ip xfrm state delete`).
    pub fn delete_sa(&mut self, dst: IpAddr, spi: u32) -> Option<SaConfig> {
        let id = *self.by_spi.get(&(dst, spi))?;
        let sa = self.remove(id)?;
        self.refresh_deadline();
        Some(sa.cfg)
    }

    /// Deletes every SA (`ip xfrm state flush`).
    pub fn flush_sas(&mut self) {
        let ids: Vec<SaId> = self.sas().map(|(id, _)| id).collect();
        for id in ids {
            self.remove(id);
        }
        self.deadline = None;
    }

    /// The SA behind `id`, if it still exists.
    pub fn sa(&self, id: SaId) -> Option<&Sa> {
        let slot = self.slots.get(id.index as usize)?;
        (slot.generation == id.generation)
            .then_some(slot.sa.as_ref())
            .flatten()
    }

    fn sa_mut(&mut self, id: SaId) -> Option<&mut Sa> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.sa.as_mut()
    }

    /// The SA for inbound `dst` and `spi`.
    pub fn find_sa(&self, dst: IpAddr, spi: u32) -> Option<SaId> {
        self.by_spi.get(&(dst, spi)).copied()
    }

    /// What `-m policy` needs to know about an SA.
    pub fn sa_info(&self, id: SaId) -> Option<SaInfo> {
        self.sa(id).map(|sa| SaInfo::of(id, sa))
    }

    /// Every SA, in the order they were added (slots reused after deletions).
    pub fn sas(&self) -> impl Iterator<Item = (SaId, &Sa)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.sa.as_ref().map(|sa| {
                (
                    SaId {
                        index: i as u32,
                        generation: s.generation,
                    },
                    sa,
                )
            })
        })
    }

    // ---- the SPD ----

    /// Adds a policy (`ip xfrm policy add`).
    pub fn add_policy(&mut self, cfg: PolicyConfig) -> Result<(), ConfigError> {
        self.spd.add(cfg)
    }

    /// Deletes the policy of `dir` with exactly `selector` (`ip xfrm policy delete`).
    pub fn delete_policy(
        &mut self,
        dir: Direction,
        selector: &crate::flow::Selector,
    ) -> Option<PolicyConfig> {
        self.spd.delete(dir, selector)
    }

    /// Deletes every policy (`ip xfrm policy flush`).
    pub fn flush_policies(&mut self) {
        self.spd.flush();
    }

    /// The policies.
    pub fn spd(&self) -> &Spd {
        &self.spd
    }

    // ---- counters, events, time ----

    /// The `xfrm_stat` counters.
    pub fn stats(&self) -> &XfrmStats {
        &self.stats
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) has work: the earliest add-time or
    /// use-time limit still to fire.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    fn refresh_deadline(&mut self) {
        self.deadline = self
            .slots
            .iter()
            .filter_map(|s| s.sa.as_ref()?.next_deadline())
            .min();
    }

    /// Fires the timed limits due at `now`: soft ones mark the SA dying, hard ones delete it,
    /// each with its event.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_none_or(|d| d > now) {
            return;
        }
        let mut gone = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(sa) = slot.sa.as_mut() else { continue };
            let id = SaId {
                index: i as u32,
                generation: slot.generation,
            };
            let info = SaInfo::of(id, sa);
            let due = |d: Option<Instant>| d.is_some_and(|d| d <= now);
            // Hard first: an SA that dies needs no soft warning.
            if due(sa.deadlines[1]) || due(sa.deadlines[3]) {
                let limit = if due(sa.deadlines[1]) {
                    Limit::AddTime
                } else {
                    Limit::UseTime
                };
                self.events.push_back(Event::HardExpire { sa: info, limit });
                gone.push(id);
                continue;
            }
            for (k, limit) in [(0, Limit::AddTime), (2, Limit::UseTime)] {
                if due(sa.deadlines[k]) {
                    sa.deadlines[k] = None;
                    if !sa.dying {
                        sa.dying = true;
                        self.events.push_back(Event::SoftExpire { sa: info, limit });
                    }
                }
            }
        }
        for id in gone {
            self.remove(id);
        }
        self.refresh_deadline();
    }

    /// Linux's use-time check of an SA about to process a packet: first use, byte and packet
    /// limits. `Err(())` when a hard limit is reached: the SA is deleted, its event queued.
    fn use_sa(&mut self, id: SaId, now: Instant) -> Result<(), ()> {
        let Some(sa) = self.sa_mut(id) else {
            return Err(());
        };
        let first = sa.used.is_none();
        sa.touch(now);
        let info = SaInfo::of(id, sa);
        let checked = sa.check_counts();
        match checked {
            Err(limit) => {
                self.events.push_back(Event::HardExpire { sa: info, limit });
                self.remove(id);
                self.refresh_deadline();
                return Err(());
            }
            Ok(Some(limit)) => self.events.push_back(Event::SoftExpire { sa: info, limit }),
            Ok(None) => {}
        }
        if first {
            self.refresh_deadline();
        }
        Ok(())
    }

    // ---- outbound ----

    fn out_drop<T>(&mut self, d: OutDrop) -> Result<T, OutDrop> {
        self.stats.bump(d.stat());
        Err(d)
    }

    fn in_drop<T>(&mut self, d: InDrop) -> Result<T, InDrop> {
        self.stats.bump(d.stat());
        Err(d)
    }

    /// The SA for one template and flow (Linux's `xfrm_state_find`): same endpoints, mode,
    /// reqid and SPI (if the template names one), a selector that takes the flow; among
    /// several, one not dying and not exhausted, then the newest.
    fn resolve(&self, t: &Template, flow: &Flow) -> Option<SaId> {
        let (src, dst) = match t.mode {
            Mode::Tunnel => (t.src?, t.dst?),
            Mode::Transport => (t.src.unwrap_or(flow.src), t.dst.unwrap_or(flow.dst)),
        };
        self.by_dst
            .get(&dst)?
            .iter()
            .filter_map(|&id| Some((id, self.sa(id)?)))
            .filter(|(_, sa)| {
                let c = &sa.cfg;
                c.src == src
                    && c.mode == t.mode
                    && c.reqid == t.reqid
                    && t.spi.is_none_or(|s| s == c.spi)
                    && c.selector.is_none_or(|sel| sel.matches(flow))
            })
            .max_by_key(|(id, sa)| (!sa.dying && !sa.exhausted, !sa.exhausted, sa.added, *id))
            .map(|(id, _)| id)
    }

    /// The output policy lookup (Linux's `xfrm_lookup`, done at the routing decision and again
    /// when source NAT changed the flow): `Ok(None)` to send in clear, `Ok(Some(bundle))` to
    /// encapsulate, `Err` to drop (counted; a missing SA also queues an `Acquire` event).
    pub fn lookup_out(&mut self, now: Instant, flow: &Flow) -> Result<Option<Bundle>, OutDrop> {
        let Some(pol) = self.spd.lookup(Direction::Out, flow) else {
            return Ok(None);
        };
        if pol.cfg.action == Action::Block {
            return self.out_drop(OutDrop::PolicyBlock);
        }
        if pol.cfg.templates.is_empty() {
            return Ok(None);
        }
        if pol.cfg.templates.len() > MAX_DEPTH {
            return self.out_drop(OutDrop::BundleTooDeep);
        }
        let mut bundle = Bundle::default();
        let mut missing = None;
        for t in &pol.cfg.templates {
            match self.resolve(t, flow) {
                Some(id) => bundle.push(id),
                None if t.level == Level::Use => {}
                None => {
                    missing = Some(*t);
                    break;
                }
            }
        }
        if let Some(template) = missing {
            self.acquire(now, flow, template);
            return self.out_drop(OutDrop::NoState);
        }
        Ok((bundle.len > 0).then_some(bundle))
    }

    fn acquire(&mut self, now: Instant, flow: &Flow, template: Template) {
        let Some(pol) = self.spd.lookup_mut(Direction::Out, flow) else {
            return;
        };
        if pol.last_acquire.is_some_and(|t| now < t + ACQUIRE_INTERVAL) {
            return;
        }
        pol.last_acquire = Some(now);
        self.events.push_back(Event::Acquire {
            template,
            flow: *flow,
        });
    }

    /// Applies `bundle` (innermost first) to the IP packet in `buf`, after POSTROUTING. Each
    /// SA takes the next sequence number and counts the packet; an SA deleted since the
    /// lookup is a `NoState` drop.
    pub fn encapsulate(
        &mut self,
        now: Instant,
        bundle: &Bundle,
        buf: &mut PacketBuf,
    ) -> Result<IpAddr, OutDrop> {
        let mut dst = None;
        for &id in bundle.ids() {
            if self.sa(id).is_none() {
                return self.out_drop(OutDrop::NoState);
            }
            // Linux's order: the lifetime check, then the sequence number.
            if self.use_sa(id, now).is_err() {
                return self.out_drop(OutDrop::Expired);
            }
            let Some(sa) = self.sa_mut(id) else {
                return self.out_drop(OutDrop::NoState);
            };
            if sa.oseq >= sa.max_seq() {
                return self.out_drop(OutDrop::SeqExhausted);
            }
            let seq = sa.oseq + 1;
            let bytes = match esp::encapsulate(sa, seq, buf) {
                Ok(b) => b,
                Err(d) => return self.out_drop(d),
            };
            sa.oseq = seq;
            sa.counters.packets += 1;
            sa.counters.bytes += bytes;
            let exhausted = seq == sa.max_seq() && !sa.exhausted;
            sa.exhausted |= exhausted;
            let info = SaInfo::of(id, sa);
            dst = Some(match info.mode {
                Mode::Tunnel => info.dst,
                Mode::Transport => Flow::of_packet(buf.as_slice()).map_or(info.dst, |f| f.dst),
            });
            if exhausted {
                self.events.push_back(Event::SeqExhausted { sa: info });
            }
        }
        match dst {
            Some(d) => Ok(d),
            None => self.out_drop(OutDrop::NoState),
        }
    }

    /// [`lookup_out`](Self::lookup_out) then [`encapsulate`](Self::encapsulate), for a packet
    /// whose flow is its own (no NAT in between).
    pub fn output(&mut self, now: Instant, buf: &mut PacketBuf) -> Result<Protected, OutDrop> {
        let Some(flow) = Flow::of_packet(buf.as_slice()) else {
            return self.out_drop(OutDrop::BadPacket);
        };
        match self.lookup_out(now, &flow)? {
            None => Ok(Protected::Clear),
            Some(bundle) => {
                let dst = self.encapsulate(now, &bundle, buf)?;
                Ok(Protected::Encapsulated { bundle, dst })
            }
        }
    }

    /// The largest inner packet `bundle` can carry in outer packets of `mtu` bytes (for the
    /// path MTU: ICMP Fragmentation Needed / Packet Too Big carry this).
    pub fn inner_mtu(&self, bundle: &Bundle, mtu: usize) -> usize {
        bundle
            .ids()
            .iter()
            .rev()
            .filter_map(|&id| self.sa(id))
            .fold(mtu, |m, sa| esp::inner_mtu(sa, m))
    }

    // ---- inbound ----

    /// Decapsulates the ESP packet in `buf` (an IPv4 or IPv6 packet, reassembled, addressed
    /// to this host): SA lookup by destination and SPI, anti-replay check, hard limits, ICV,
    /// trailer, window update, then the inner packet (tunnel) or the restored packet
    /// (transport) replaces it in `buf` and the SA joins `sp`. Every `Err` is a counted drop;
    /// after one, `buf` holds nothing worth sending.
    pub fn decapsulate(
        &mut self,
        now: Instant,
        buf: &mut PacketBuf,
        sp: &mut SecPath,
    ) -> Result<Decapsulated, InDrop> {
        let outer = match esp::parse_outer(buf) {
            Ok(o) => o,
            Err(d) => return self.in_drop(d),
        };
        if sp.len() >= MAX_DEPTH {
            return self.in_drop(InDrop::SecPathFull);
        }
        let Some(id) = self.find_sa(outer.dst, outer.spi) else {
            return self.in_drop(InDrop::NoState);
        };
        let Some(sa) = self.sa_mut(id) else {
            return self.in_drop(InDrop::NoState);
        };
        // RFC 4303 §3.4.3: the window before the ICV, so that replays cost no decryption.
        let seq = match sa.replay.check(outer.seq_lo) {
            Ok(s) => s,
            Err(e) => {
                let d = match e {
                    crate::replay::ReplayError::SeqZero => InDrop::SeqZero,
                    crate::replay::ReplayError::TooOld => {
                        sa.counters.replay_window += 1;
                        InDrop::TooOld
                    }
                    crate::replay::ReplayError::Replayed => {
                        sa.counters.replay += 1;
                        InDrop::Replayed
                    }
                };
                return self.in_drop(d);
            }
        };
        if self.use_sa(id, now).is_err() {
            return self.in_drop(InDrop::Expired);
        }
        let Some(sa) = self.sa_mut(id) else {
            return self.in_drop(InDrop::NoState);
        };
        let opened = esp::open(sa, seq, &outer, buf);
        let Opened::Payload { nh, len } = match opened {
            Ok(o) => o,
            Err(d) => {
                if d == InDrop::Integrity {
                    sa.counters.integrity_failed += 1;
                }
                return self.in_drop(d);
            }
        };
        // Only an authentic packet moves the window.
        sa.replay.accept(seq);
        sa.counters.packets += 1;
        sa.counters.bytes += len as u64;
        let info = SaInfo::of(id, sa);
        if nh == wire::proto::IPV6_NONXT {
            sa.counters.dummy += 1;
            return Ok(Decapsulated::Dummy(info));
        }
        if let Err(d) = esp::restore(sa, &outer, nh, len, buf) {
            return self.in_drop(d);
        }
        sp.push(info);
        Ok(Decapsulated::Packet(info))
    }

    /// The inbound policy check (Linux's `xfrm_policy_check`) for a packet about to be
    /// delivered (`Direction::In`) or forwarded (`Direction::Fwd`), `flow` as it was before
    /// NAT, `sp` the SAs it was decapsulated with (empty for a clear packet).
    ///
    /// Without a policy the packet passes unless it came out of a tunnel (`NoPolicy`). A
    /// `block` policy drops it. An `allow` policy's templates, last first, must match the
    /// path's SAs, outermost first (transport SAs a template does not name may be skipped,
    /// `level use` templates may be missing), and no tunnel SA may be left over.
    pub fn check_inbound(
        &mut self,
        dir: Direction,
        flow: &Flow,
        sp: &SecPath,
    ) -> Result<(), InDrop> {
        let Some(pol) = self.spd.lookup(dir, flow) else {
            if sp.has_tunnel_from(0) {
                return self.in_drop(InDrop::NoPolicy);
            }
            return Ok(());
        };
        if pol.cfg.action == Action::Block {
            return self.in_drop(InDrop::PolicyBlock);
        }
        let path: Vec<&SaInfo> = sp.iter().collect();
        let mut k = 0;
        for t in pol.cfg.templates.iter().rev() {
            match template_ok(t, &path, k) {
                Some(next) => k = next,
                None => {
                    let d = if sp.is_empty() {
                        InDrop::Unprotected
                    } else {
                        InDrop::TemplateMismatch
                    };
                    return self.in_drop(d);
                }
            }
        }
        if sp.has_tunnel_from(k) {
            return self.in_drop(InDrop::TemplateMismatch);
        }
        Ok(())
    }
}

/// Linux's `xfrm_policy_ok`: from path index `start`, the index after the SA that `t`
/// matches; transport SAs may be passed over, a tunnel SA may not. An optional (`level use`)
/// template that matches nothing leaves `start` as it is, and an optional transport one is
/// not even looked for (as Linux).
fn template_ok(t: &Template, path: &[&SaInfo], start: usize) -> Option<usize> {
    if t.level == Level::Use && t.mode == Mode::Transport {
        return Some(start);
    }
    for (idx, sa) in path.iter().enumerate().skip(start) {
        if state_ok(t, sa) {
            return Some(idx + 1);
        }
        if sa.mode != Mode::Transport {
            break;
        }
    }
    (t.level == Level::Use).then_some(start)
}

/// Linux's `xfrm_state_ok`: an SA satisfies a template on input.
fn state_ok(t: &Template, sa: &SaInfo) -> bool {
    t.spi.is_none_or(|s| s == sa.spi)
        && (t.reqid == 0 || t.reqid == sa.reqid)
        && t.mode == sa.mode
        && (sa.mode == Mode::Transport
            || (t.src.is_none_or(|a| a == sa.src) && t.dst.is_none_or(|a| a == sa.dst)))
}
