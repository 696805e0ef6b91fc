//! Layer 2 for TAP links, sans-IO: Ethernet framing, ARP and IPv6 Neighbour Discovery.
//!
//! The engine is L3-only, so everything below IP happens here: frames read from a TAP device go
//! through [`L2Iface::handle_frame`], which answers ARP requests and Neighbour Solicitations for
//! the router's own addresses, learns neighbours, and hands IP packets back to the caller. IP
//! packets the engine wants to send go through [`L2Iface::send_ip`], which resolves the next hop
//! (queueing a few packets per unresolved neighbour, like Linux's `unres_qlen`) and produces
//! frames to be pulled with [`L2Iface::poll_frame`]. Time is passed in; timers are driven by
//! [`L2Iface::handle_timeout`] / [`L2Iface::poll_timeout`].
//!
//! Nothing here panics on any input: every read from a frame is bounds-checked.
//!
//! ```
//! use wire::time::Instant;
//! use router::live::l2::{stable_mac, L2Iface, L2Limits};
//!
//! let mut l2 = L2Iface::new(stable_mac("lan0"), &["192.0.2.1/24".parse().unwrap()], L2Limits::default());
//! let now = Instant::from_secs(1);
//! // Sending to an unknown neighbour queues the packet and broadcasts an ARP request.
//! let ip = [0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2];
//! l2.send_ip(now, "192.0.2.2".parse().unwrap(), &ip);
//! let arp = l2.poll_frame().unwrap();
//! assert_eq!(&arp[0..6], &[0xff; 6]);
//! assert_eq!(&arp[12..14], &[0x08, 0x06]);
//! ```

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use wire::time::Instant;
use wire::{arp, ethernet, ArpPacket, EthernetFrame, Icmpv6Packet, NdOption};

/// An Ethernet (EUI-48) address.
pub type Mac = [u8; 6];

/// The broadcast MAC address.
pub const BROADCAST: Mac = [0xff; 6];

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// Length of an Ethernet header without VLAN tag.
pub const ETH_HEADER_LEN: usize = 14;

const ARP_LEN: usize = 28;
const IPV6_HEADER_LEN: usize = 40;
const ICMPV6_NS: u8 = 135;
const ICMPV6_NA: u8 = 136;
const ND_OPT_SLLA: u8 = 1;
const ND_OPT_TLLA: u8 = 2;
const NA_FLAG_ROUTER: u8 = 0x80;
const NA_FLAG_SOLICITED: u8 = 0x40;
const NA_FLAG_OVERRIDE: u8 = 0x20;

/// A stable, locally administered unicast MAC derived from the interface name, so that the
/// kernel peers' neighbour caches stay valid across restarts of tunfilter.
pub fn stable_mac(ifname: &str) -> Mac {
    // FNV-1a: tiny, deterministic across builds and platforms (unlike std's SipHash keys).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in ifname.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    // Bit 1 of the first octet set = locally administered, bit 0 clear = unicast.
    [(b[0] & 0xfc) | 0x02, b[1], b[2], b[3], b[4], b[5]]
}

/// The Ethernet multicast address an IPv6 multicast group maps to (RFC 2464: 33:33 + low 32 bits).
pub fn ipv6_multicast_mac(addr: &Ipv6Addr) -> Mac {
    let o = addr.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// The Ethernet multicast address an IPv4 multicast group maps to (RFC 1112: 01:00:5e + low 23 bits).
pub fn ipv4_multicast_mac(addr: Ipv4Addr) -> Mac {
    let o = addr.octets();
    [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
}

/// The solicited-node multicast address of `addr` (RFC 4291 §2.7.1): ff02::1:ffXX:XXXX.
pub fn solicited_node(addr: &Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The EUI-64 based link-local address for `mac` (RFC 4291 appendix A).
pub fn link_local_from_mac(mac: &Mac) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o[0] = 0xfe;
    o[1] = 0x80;
    o[8] = mac[0] ^ 0x02;
    o[9] = mac[1];
    o[10] = mac[2];
    o[11] = 0xff;
    o[12] = 0xfe;
    o[13] = mac[3];
    o[14] = mac[4];
    o[15] = mac[5];
    Ipv6Addr::from(o)
}

/// Timers and bounds of the neighbour cache. Defaults follow Linux's neighbour table.
#[derive(Debug, Clone)]
pub struct L2Limits {
    /// How long a confirmed neighbour is used without re-probing (Linux base_reachable_time).
    pub reachable: Duration,
    /// Interval between solicitations while resolving or probing (Linux retrans_time).
    pub retrans: Duration,
    /// Solicitations sent before giving up on a neighbour (Linux mcast_solicit/ucast_solicit).
    pub max_probes: u8,
    /// Packets queued per unresolved neighbour; older ones are dropped (Linux unres_qlen).
    pub queue_len: usize,
    /// Maximum number of cache entries; the least recently used is evicted beyond it.
    pub max_entries: usize,
    /// Unused stale entries are forgotten after this long (Linux gc_staletime).
    pub stale_gc: Duration,
}

impl Default for L2Limits {
    fn default() -> Self {
        L2Limits {
            reachable: Duration::from_secs(30),
            retrans: Duration::from_secs(1),
            max_probes: 3,
            queue_len: 3,
            max_entries: 512,
            stale_gc: Duration::from_secs(60),
        }
    }
}

/// Counters of one TAP link. Monotonic; read with [`L2Iface::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct L2Stats {
    /// ARP requests for our addresses that we answered.
    pub arp_replies_sent: u64,
    /// ARP requests we sent to resolve or probe a neighbour.
    pub arp_requests_sent: u64,
    /// Neighbour Solicitations for our addresses that we answered.
    pub na_sent: u64,
    /// Neighbour Solicitations we sent to resolve or probe a neighbour.
    pub ns_sent: u64,
    /// Packets dropped because the per-neighbour queue was full (oldest dropped).
    pub queue_drops: u64,
    /// Packets dropped because resolution failed or their entry was evicted.
    pub unresolved_drops: u64,
    /// Packets dropped because no address of the right family exists to resolve from.
    pub no_source_drops: u64,
    /// Resolutions that failed after all probes.
    pub resolve_failures: u64,
    /// Cache entries evicted because the cache was full.
    pub evictions: u64,
    /// Frames dropped on input: truncated, malformed, unknown EtherType or not addressed to us.
    pub rx_dropped: u64,
}

/// Why [`L2Iface::handle_frame`] dropped a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxDrop {
    /// Shorter than the headers it claims to carry.
    Truncated,
    /// Destination MAC is neither ours, broadcast nor multicast.
    NotForUs,
    /// An EtherType we do not handle (VLAN tags, LLDP, ...).
    UnknownEtherType(u16),
    /// An ARP or ND message that fails validation (checksum, hop limit, sizes).
    Malformed,
}

/// What [`L2Iface::handle_frame`] made of a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Rx<'f> {
    /// An IP packet for the engine (Ethernet header removed, link padding trimmed).
    Ip(&'f [u8]),
    /// ARP or ND, handled here; replies (if any) wait in [`L2Iface::poll_frame`].
    Consumed,
    /// Dropped and counted in [`L2Stats::rx_dropped`].
    Dropped(RxDrop),
}

#[derive(Debug)]
enum State {
    /// Resolving: solicitations go out every `retrans`; packets wait in `queue`.
    Incomplete {
        probes: u8,
        next_probe: Instant,
        queue: VecDeque<Vec<u8>>,
    },
    /// Confirmed recently: used as is.
    Reachable { mac: Mac, until: Instant },
    /// Not confirmed recently (or learned unsolicited): still used, re-probed by unicast on use.
    Stale {
        mac: Mac,
        probes: u8,
        next_probe: Option<Instant>,
    },
}

#[derive(Debug)]
struct Neighbour {
    state: State,
    last_used: Instant,
}

/// The layer-2 state of one TAP link: our MAC and addresses, and the neighbour cache.
#[derive(Debug)]
pub struct L2Iface {
    mac: Mac,
    v4: Vec<Ipv4Net>,
    v6: Vec<Ipv6Net>,
    link_local: Ipv6Addr,
    limits: L2Limits,
    neigh: HashMap<IpAddr, Neighbour>,
    out: VecDeque<Vec<u8>>,
    stats: L2Stats,
}

impl L2Iface {
    /// A link with our `mac` and the router's own `addresses` on it (from the interface config).
    pub fn new(mac: Mac, addresses: &[IpNet], limits: L2Limits) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for a in addresses {
            match a {
                IpNet::V4(n) => v4.push(*n),
                IpNet::V6(n) => v6.push(*n),
            }
        }
        L2Iface {
            mac,
            v4,
            v6,
            link_local: link_local_from_mac(&mac),
            limits,
            neigh: HashMap::new(),
            out: VecDeque::new(),
            stats: L2Stats::default(),
        }
    }

    /// Our MAC address on this link.
    pub fn mac(&self) -> Mac {
        self.mac
    }

    /// The counters of this link.
    pub fn stats(&self) -> L2Stats {
        self.stats
    }

    /// Number of neighbour cache entries (any state).
    pub fn neighbour_count(&self) -> usize {
        self.neigh.len()
    }

    /// The resolved MAC of `ip`, if the cache holds one (reachable or stale).
    pub fn lookup(&self, ip: &IpAddr) -> Option<Mac> {
        match self.neigh.get(ip).map(|n| &n.state) {
            Some(State::Reachable { mac, .. }) | Some(State::Stale { mac, .. }) => Some(*mac),
            _ => None,
        }
    }

    fn is_own_v4(&self, ip: Ipv4Addr) -> bool {
        self.v4.iter().any(|n| n.addr() == ip)
    }

    fn is_own_v6(&self, ip: &Ipv6Addr) -> bool {
        *ip == self.link_local || self.v6.iter().any(|n| n.addr() == *ip)
    }

    /// Processes one frame read from the TAP device.
    pub fn handle_frame<'f>(&mut self, now: Instant, frame: &'f [u8]) -> Rx<'f> {
        let rx = self.classify(now, frame);
        if let Rx::Dropped(_) = rx {
            self.stats.rx_dropped += 1;
        }
        rx
    }

    fn classify<'f>(&mut self, now: Instant, frame: &'f [u8]) -> Rx<'f> {
        if let Some(p) = ip_for_us(self.mac, frame) {
            return Rx::Ip(p);
        }
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return Rx::Dropped(RxDrop::Truncated);
        };
        let (dst, src, et) = (eth.dst_addr(), eth.src_addr(), eth.ethertype());
        // Multicast bit covers broadcast too.
        if dst != self.mac && dst[0] & 1 == 0 {
            return Rx::Dropped(RxDrop::NotForUs);
        }
        let payload = frame.get(ETH_HEADER_LEN..).unwrap_or(&[]);
        match et {
            ETHERTYPE_IPV4 => match ipv4_trimmed(payload) {
                Some(p) => Rx::Ip(p),
                None => Rx::Dropped(RxDrop::Truncated),
            },
            ETHERTYPE_IPV6 => {
                let Some(p) = ipv6_trimmed(payload) else {
                    return Rx::Dropped(RxDrop::Truncated);
                };
                match nd_type(p) {
                    Some(t @ (ICMPV6_NS | ICMPV6_NA)) => {
                        if self.handle_nd(now, src, t, p) {
                            Rx::Consumed
                        } else {
                            Rx::Dropped(RxDrop::Malformed)
                        }
                    }
                    _ => Rx::Ip(p),
                }
            }
            ETHERTYPE_ARP => {
                if self.handle_arp(now, payload) {
                    Rx::Consumed
                } else {
                    Rx::Dropped(RxDrop::Malformed)
                }
            }
            other => Rx::Dropped(RxDrop::UnknownEtherType(other)),
        }
    }

    /// Handles an ARP packet; false if malformed.
    fn handle_arp(&mut self, now: Instant, p: &[u8]) -> bool {
        // Ethernet/IPv4 ARP only; the view checks types and sizes.
        let Ok(arp) = ArpPacket::new_checked(p) else {
            return false;
        };
        let op = arp.operation();
        let sha = arp.sender_hw_addr();
        let spa = arp.sender_proto_addr();
        let tpa = arp.target_proto_addr();
        if sha[0] & 1 != 0 {
            // A multicast sender hardware address is bogus (RFC 1812 §3.3.2).
            return false;
        }
        let for_us = self.is_own_v4(tpa);
        if !spa.is_unspecified() {
            let ip = IpAddr::V4(spa);
            if op == 1 && for_us {
                // A request for us: the sender will talk to us next, learn it (as Linux does).
                self.learn(now, ip, sha, true, true);
            } else {
                // Replies and gratuitous ARP only refresh entries we already have.
                self.learn(now, ip, sha, op == 2, false);
            }
        }
        if op == 1 && for_us {
            let reply = arp_frame(2, self.mac, tpa, sha, spa, sha);
            self.out.push_back(reply);
            self.stats.arp_replies_sent += 1;
        }
        true
    }

    /// Handles an NS or NA in the IPv6 packet `p`; false if malformed.
    fn handle_nd(&mut self, now: Instant, eth_src: Mac, ty: u8, p: &[u8]) -> bool {
        let Some(src) = ipv6_at(p, 8) else {
            return false;
        };
        let Some(dst) = ipv6_at(p, 24) else {
            return false;
        };
        // RFC 4861 §7.1: hop limit 255 proves the sender is on-link; code 0; the view checks
        // that the fixed part of the message is there.
        let Ok(icmp) = Icmpv6Packet::new_checked(&p[IPV6_HEADER_LEN..]) else {
            return false;
        };
        if p[7] != 255 || icmp.code() != 0 || !icmp.verify_checksum(&src, &dst) {
            return false;
        }
        let target = icmp.ns_target();
        if target.is_multicast() {
            return false;
        }
        let mut opts = NdOpts::default();
        for o in icmp.nd_options() {
            match o {
                // A zero-length or overrunning option: discard the message (RFC 4861 §4.6).
                Err(_) => return false,
                Ok(o @ NdOption::SourceLinkLayerAddr(_)) => opts.slla = o.ethernet_addr(),
                Ok(o @ NdOption::TargetLinkLayerAddr(_)) => opts.tlla = o.ethernet_addr(),
                Ok(_) => {}
            }
        }
        if ty == ICMPV6_NS {
            if !self.is_own_v6(&target) {
                return true; // Not ours: we are no proxy.
            }
            if src.is_unspecified() {
                // Duplicate address detection for our address: defend it (RFC 4862 §5.4.3).
                if opts.slla.is_some() {
                    return false;
                }
                let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
                let na = self.na_frame(target, all_nodes, ipv6_multicast_mac(&all_nodes), false);
                self.out.push_back(na);
                self.stats.na_sent += 1;
                return true;
            }
            let reply_mac = match opts.slla {
                Some(m) => {
                    self.learn(now, IpAddr::V6(src), m, false, true);
                    m
                }
                None if !dst.is_multicast() => eth_src,
                // A multicast NS must carry the source link-layer option (RFC 4861 §7.1.1).
                None => return false,
            };
            let na = self.na_frame(target, src, reply_mac, true);
            self.out.push_back(na);
            self.stats.na_sent += 1;
        } else {
            let solicited = icmp.na_solicited();
            if solicited && dst.is_multicast() {
                return false;
            }
            let mac = opts.tlla.unwrap_or(eth_src);
            let over = icmp.na_override();
            self.update_from_na(now, IpAddr::V6(target), mac, solicited, over);
        }
        true
    }

    /// Updates an entry from an NA (RFC 4861 §7.2.5), only if the entry exists.
    fn update_from_na(&mut self, now: Instant, ip: IpAddr, mac: Mac, solicited: bool, over: bool) {
        let reachable = now + self.limits.reachable;
        let Some(n) = self.neigh.get_mut(&ip) else {
            return;
        };
        match &mut n.state {
            State::Incomplete { queue, .. } => {
                let queued = std::mem::take(queue);
                n.state = if solicited {
                    State::Reachable {
                        mac,
                        until: reachable,
                    }
                } else {
                    stale(mac)
                };
                self.flush_queue(mac, queued);
            }
            State::Reachable { mac: old, .. } | State::Stale { mac: old, .. } => {
                let old = *old;
                if !over && old != mac {
                    // A non-override NA with a different address only says "maybe stale".
                    if let State::Reachable { .. } = n.state {
                        n.state = stale(old);
                    }
                    return;
                }
                n.state = if solicited {
                    State::Reachable {
                        mac,
                        until: reachable,
                    }
                } else if old != mac {
                    stale(mac)
                } else {
                    return;
                };
            }
        }
    }

    /// Learns `ip` → `mac`. `confirm` marks it reachable; `create` allows a new entry.
    fn learn(&mut self, now: Instant, ip: IpAddr, mac: Mac, confirm: bool, create: bool) {
        let reachable = now + self.limits.reachable;
        let new_state = if confirm {
            State::Reachable {
                mac,
                until: reachable,
            }
        } else {
            stale(mac)
        };
        if let Some(n) = self.neigh.get_mut(&ip) {
            let queued = match &mut n.state {
                State::Incomplete { queue, .. } => Some(std::mem::take(queue)),
                State::Stale { mac: old, .. } | State::Reachable { mac: old, .. }
                    if *old == mac && !confirm =>
                {
                    // Same address, no confirmation: nothing new learned.
                    return;
                }
                _ => None,
            };
            n.state = new_state;
            if let Some(q) = queued {
                self.flush_queue(mac, q);
            }
        } else if create {
            self.make_room();
            self.neigh.insert(
                ip,
                Neighbour {
                    state: new_state,
                    last_used: now,
                },
            );
        }
    }

    fn flush_queue(&mut self, mac: Mac, queue: VecDeque<Vec<u8>>) {
        for pkt in queue {
            let et = ethertype_of(&pkt);
            let frame = eth_frame(mac, self.mac, et, &pkt);
            self.out.push_back(frame);
        }
    }

    /// Evicts the least valuable entry if the cache is full: resolved before unresolved,
    /// least recently used first.
    fn make_room(&mut self) {
        if self.neigh.len() < self.limits.max_entries.max(1) {
            return;
        }
        let victim = self
            .neigh
            .iter()
            .min_by_key(|(_, n)| (matches!(n.state, State::Incomplete { .. }), n.last_used))
            .map(|(ip, _)| *ip);
        if let Some(ip) = victim {
            if let Some(n) = self.neigh.remove(&ip) {
                if let State::Incomplete { queue, .. } = n.state {
                    self.stats.unresolved_drops += queue.len() as u64;
                }
                self.stats.evictions += 1;
            }
        }
    }

    /// Sends the IP packet `packet` to `next_hop` on this link: frames it at once if the
    /// neighbour is known, else queues it and solicits. Frames come out of [`poll_frame`].
    ///
    /// [`poll_frame`]: L2Iface::poll_frame
    pub fn send_ip(&mut self, now: Instant, next_hop: IpAddr, packet: &[u8]) {
        let et = ethertype_of(packet);
        if let Some(mac) = self.static_mac(&next_hop) {
            let frame = eth_frame(mac, self.mac, et, packet);
            self.out.push_back(frame);
            return;
        }
        if self.solicit_source(&next_hop).is_none() {
            self.stats.no_source_drops += 1;
            return;
        }
        let retrans = self.limits.retrans;
        let reachable_now = |until: Instant| now < until;
        let mut probe = None;
        let mut frame_to = None;
        match self.neigh.get_mut(&next_hop) {
            Some(n) => {
                n.last_used = now;
                match &mut n.state {
                    State::Reachable { mac, until } if reachable_now(*until) => {
                        frame_to = Some(*mac);
                    }
                    State::Reachable { mac, .. } => {
                        // Expired: keep using it, confirm with a unicast probe (Linux DELAY/PROBE).
                        let mac = *mac;
                        n.state = State::Stale {
                            mac,
                            probes: 1,
                            next_probe: Some(now + retrans),
                        };
                        probe = Some(Some(mac));
                        frame_to = Some(mac);
                    }
                    State::Stale {
                        mac,
                        probes,
                        next_probe,
                    } => {
                        if next_probe.is_none() {
                            *probes = 1;
                            *next_probe = Some(now + retrans);
                            probe = Some(Some(*mac));
                        }
                        frame_to = Some(*mac);
                    }
                    State::Incomplete { queue, .. } => {
                        if queue.len() >= self.limits.queue_len.max(1) {
                            queue.pop_front();
                            self.stats.queue_drops += 1;
                        }
                        queue.push_back(packet.to_vec());
                    }
                }
            }
            None => {
                self.make_room();
                let mut queue = VecDeque::new();
                queue.push_back(packet.to_vec());
                self.neigh.insert(
                    next_hop,
                    Neighbour {
                        state: State::Incomplete {
                            probes: 1,
                            next_probe: now + retrans,
                            queue,
                        },
                        last_used: now,
                    },
                );
                probe = Some(None);
            }
        }
        if let Some(mac) = frame_to {
            let frame = eth_frame(mac, self.mac, et, packet);
            self.out.push_back(frame);
        }
        if let Some(unicast) = probe {
            self.solicit(next_hop, unicast);
        }
    }

    /// Destinations that need no resolution: broadcast and multicast.
    fn static_mac(&self, ip: &IpAddr) -> Option<Mac> {
        match ip {
            IpAddr::V4(a) => {
                if a.is_broadcast()
                    || self
                        .v4
                        .iter()
                        .any(|n| n.broadcast() == *a && n.prefix_len() < 31)
                {
                    Some(BROADCAST)
                } else if a.is_multicast() {
                    Some(ipv4_multicast_mac(*a))
                } else {
                    None
                }
            }
            IpAddr::V6(a) if a.is_multicast() => Some(ipv6_multicast_mac(a)),
            IpAddr::V6(_) => None,
        }
    }

    /// Our address to solicit `target` from: one on the same subnet if any, else any of the
    /// family (link-local for IPv6).
    fn solicit_source(&self, target: &IpAddr) -> Option<IpAddr> {
        match target {
            IpAddr::V4(t) => self
                .v4
                .iter()
                .find(|n| n.contains(t))
                .or_else(|| self.v4.first())
                .map(|n| IpAddr::V4(n.addr())),
            IpAddr::V6(t) => {
                let link_local = (t.segments()[0] & 0xffc0) == 0xfe80;
                let same = self.v6.iter().find(|n| n.contains(t)).map(|n| n.addr());
                Some(IpAddr::V6(match same {
                    Some(a) if !link_local => a,
                    _ if link_local => self.link_local,
                    _ => self.v6.first().map(|n| n.addr()).unwrap_or(self.link_local),
                }))
            }
        }
    }

    /// Queues an ARP request or NS for `target`, broadcast/multicast or unicast to `unicast`.
    fn solicit(&mut self, target: IpAddr, unicast: Option<Mac>) {
        match (target, self.solicit_source(&target)) {
            (IpAddr::V4(t), Some(IpAddr::V4(s))) => {
                let dst = unicast.unwrap_or(BROADCAST);
                let f = arp_frame(1, self.mac, s, [0; 6], t, dst);
                self.out.push_back(f);
                self.stats.arp_requests_sent += 1;
            }
            (IpAddr::V6(t), Some(IpAddr::V6(s))) => {
                let (dst_ip, dst_mac) = match unicast {
                    Some(m) => (t, m),
                    None => {
                        let sn = solicited_node(&t);
                        (sn, ipv6_multicast_mac(&sn))
                    }
                };
                let f = self.ns_frame(s, dst_ip, dst_mac, t);
                self.out.push_back(f);
                self.stats.ns_sent += 1;
            }
            _ => {}
        }
    }

    fn na_frame(&self, target: Ipv6Addr, dst: Ipv6Addr, dst_mac: Mac, solicited: bool) -> Vec<u8> {
        let mut icmp = [0u8; 32];
        icmp[0] = ICMPV6_NA;
        // We forward packets, so we say we are a router (RFC 4861 §4.4 R flag).
        icmp[4] = NA_FLAG_ROUTER | NA_FLAG_OVERRIDE | if solicited { NA_FLAG_SOLICITED } else { 0 };
        icmp[8..24].copy_from_slice(&target.octets());
        icmp[24] = ND_OPT_TLLA;
        icmp[25] = 1;
        icmp[26..32].copy_from_slice(&self.mac);
        self.icmpv6_frame(target, dst, dst_mac, &mut icmp)
    }

    fn ns_frame(&self, src: Ipv6Addr, dst: Ipv6Addr, dst_mac: Mac, target: Ipv6Addr) -> Vec<u8> {
        let mut icmp = [0u8; 32];
        icmp[0] = ICMPV6_NS;
        icmp[8..24].copy_from_slice(&target.octets());
        icmp[24] = ND_OPT_SLLA;
        icmp[25] = 1;
        icmp[26..32].copy_from_slice(&self.mac);
        self.icmpv6_frame(src, dst, dst_mac, &mut icmp)
    }

    fn icmpv6_frame(&self, src: Ipv6Addr, dst: Ipv6Addr, dst_mac: Mac, icmp: &mut [u8]) -> Vec<u8> {
        Icmpv6Packet::new_unchecked(&mut *icmp).fill_checksum(&src, &dst);
        let mut ip = Vec::with_capacity(IPV6_HEADER_LEN + icmp.len());
        ip.extend_from_slice(&[0x60, 0, 0, 0]);
        ip.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
        ip.push(58); // next header: ICMPv6
        ip.push(255); // hop limit: ND requires 255
        ip.extend_from_slice(&src.octets());
        ip.extend_from_slice(&dst.octets());
        ip.extend_from_slice(icmp);
        eth_frame(dst_mac, self.mac, ETHERTYPE_IPV6, &ip)
    }

    /// The next frame to write to the device.
    pub fn poll_frame(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// Retransmits solicitations, gives up on silent neighbours, ages and collects entries.
    pub fn handle_timeout(&mut self, now: Instant) {
        let retrans = self.limits.retrans;
        let max_probes = self.limits.max_probes.max(1);
        let gc = self.limits.stale_gc;
        let mut to_solicit = Vec::new();
        let mut failed = Vec::new();
        for (ip, n) in self.neigh.iter_mut() {
            match &mut n.state {
                State::Incomplete {
                    probes, next_probe, ..
                } if now >= *next_probe => {
                    if *probes >= max_probes {
                        failed.push(*ip);
                    } else {
                        *probes += 1;
                        *next_probe = now + retrans;
                        to_solicit.push((*ip, None));
                    }
                }
                State::Stale {
                    mac,
                    probes,
                    next_probe: Some(at),
                } if now >= *at => {
                    if *probes >= max_probes {
                        failed.push(*ip);
                    } else {
                        *probes += 1;
                        *at = now + retrans;
                        to_solicit.push((*ip, Some(*mac)));
                    }
                }
                State::Reachable { mac, until } if now >= *until => {
                    n.state = stale(*mac);
                }
                State::Stale {
                    next_probe: None, ..
                } if now.saturating_duration_since(n.last_used) >= gc => {
                    failed.push(*ip);
                }
                _ => {}
            }
        }
        for ip in failed {
            if let Some(n) = self.neigh.remove(&ip) {
                match n.state {
                    State::Incomplete { queue, .. } => {
                        self.stats.unresolved_drops += queue.len() as u64;
                        self.stats.resolve_failures += 1;
                    }
                    State::Stale {
                        next_probe: Some(_),
                        ..
                    } => self.stats.resolve_failures += 1,
                    _ => {}
                }
            }
        }
        for (ip, unicast) in to_solicit {
            self.solicit(ip, unicast);
        }
    }

    /// When [`handle_timeout`](L2Iface::handle_timeout) should next run, if anything is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.neigh
            .values()
            .map(|n| match &n.state {
                State::Incomplete { next_probe, .. } => *next_probe,
                State::Stale { next_probe, .. } => {
                    next_probe.unwrap_or(n.last_used + self.limits.stale_gc)
                }
                State::Reachable { until, .. } => *until,
            })
            .min()
    }
}

fn stale(mac: Mac) -> State {
    State::Stale {
        mac,
        probes: 0,
        next_probe: None,
    }
}

fn be16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn ipv6_at(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    let o: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(o))
}

/// The IPv4 packet without link padding, or None if shorter than its header says.
/// The IP packet of a frame for `mac` (or multicast/broadcast) that needs no layer-2
/// state: IPv4, or IPv6 other than neighbour discovery. `None` for everything else, which
/// [`L2Iface::handle_frame`] must see (ARP, NS/NA, drops it counts). Needs no `&self`, so
/// workers call it without taking the link's lock for each received frame.
pub fn ip_for_us(mac: Mac, frame: &[u8]) -> Option<&[u8]> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let dst = eth.dst_addr();
    if dst != mac && dst[0] & 1 == 0 {
        return None;
    }
    let payload = frame.get(ETH_HEADER_LEN..)?;
    match eth.ethertype() {
        ETHERTYPE_IPV4 => ipv4_trimmed(payload),
        ETHERTYPE_IPV6 => {
            ipv6_trimmed(payload).filter(|p| !matches!(nd_type(p), Some(ICMPV6_NS | ICMPV6_NA)))
        }
        _ => None,
    }
}

fn ipv4_trimmed(p: &[u8]) -> Option<&[u8]> {
    let total = usize::from(be16_at(p, 2)?);
    if p.first()? >> 4 != 4 || total < 20 {
        // Not ours to judge: the engine counts malformed IP. Hand it over untrimmed.
        return Some(p);
    }
    p.get(..total)
}

/// The IPv6 packet without link padding, or None if shorter than its header says.
fn ipv6_trimmed(p: &[u8]) -> Option<&[u8]> {
    let plen = usize::from(be16_at(p, 4)?);
    if p.first()? >> 4 != 6 || plen == 0 {
        // Jumbograms (payload length 0) and bad versions are the engine's to judge.
        return Some(p);
    }
    p.get(..IPV6_HEADER_LEN + plen)
}

/// The ICMPv6 type of an IPv6 packet whose next header is directly ICMPv6.
fn nd_type(p: &[u8]) -> Option<u8> {
    if p.len() > IPV6_HEADER_LEN && p[0] >> 4 == 6 && p[6] == 58 {
        p.get(IPV6_HEADER_LEN).copied()
    } else {
        None
    }
}

#[derive(Default)]
struct NdOpts {
    slla: Option<Mac>,
    tlla: Option<Mac>,
}

fn ethertype_of(packet: &[u8]) -> u16 {
    match packet.first().map(|b| b >> 4) {
        Some(6) => ETHERTYPE_IPV6,
        _ => ETHERTYPE_IPV4,
    }
}

/// An Ethernet frame around `payload`.
pub fn eth_frame(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; ETH_HEADER_LEN];
    // Cannot fail: the buffer is exactly one header long.
    let _ = ethernet::emit_header(&mut f, dst, src, ethertype);
    f.extend_from_slice(payload);
    f
}

fn arp_frame(op: u16, sha: Mac, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr, eth_dst: Mac) -> Vec<u8> {
    let mut p = [0u8; ARP_LEN];
    // Cannot fail: the buffer is exactly one ARP packet long.
    let _ = arp::emit(&mut p, op, sha, spa, tha, tpa);
    eth_frame(eth_dst, sha, ETHERTYPE_ARP, &p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER_MAC: Mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    fn l2() -> L2Iface {
        L2Iface::new(
            [0x02, 0, 0, 0, 0, 1],
            &[
                "192.0.2.1/24".parse().unwrap(),
                "2001:db8:1::1/64".parse().unwrap(),
            ],
            L2Limits::default(),
        )
    }

    fn t(s: u64) -> Instant {
        Instant::from_secs(s)
    }

    fn ms(m: u64) -> Instant {
        Instant::from_nanos(m * 1_000_000)
    }

    /// An ARP request from the peer 192.0.2.2 for 192.0.2.1, as Linux sends it.
    fn arp_request_for_router() -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&[0xff; 6]);
        f.extend_from_slice(&PEER_MAC);
        f.extend_from_slice(&[0x08, 0x06]);
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&PEER_MAC);
        f.extend_from_slice(&[192, 0, 2, 2]);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&[192, 0, 2, 1]);
        f.extend_from_slice(&[0; 18]); // padding to the 60-byte minimum
        f
    }

    fn arp_reply_from_peer(ip: [u8; 4]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&PEER_MAC);
        f.extend_from_slice(&[0x08, 0x06]);
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
        f.extend_from_slice(&PEER_MAC);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[192, 0, 2, 1]);
        f
    }

    fn ipv4_packet(dst: [u8; 4], tag: u8) -> Vec<u8> {
        vec![
            0x45, 0, 0, 21, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, dst[0], dst[1], dst[2], dst[3],
            tag,
        ]
    }

    /// An IPv6 ND message from `src` to `dst` (ethernet from the peer), checksum filled in.
    fn nd_frame(ty: u8, src: Ipv6Addr, dst: Ipv6Addr, eth_dst: Mac, body: &[u8]) -> Vec<u8> {
        let mut icmp = vec![ty, 0, 0, 0];
        icmp.extend_from_slice(body);
        Icmpv6Packet::new_unchecked(&mut icmp[..]).fill_checksum(&src, &dst);
        let mut ip = vec![0x60, 0, 0, 0];
        ip.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
        ip.extend_from_slice(&[58, 255]);
        ip.extend_from_slice(&src.octets());
        ip.extend_from_slice(&dst.octets());
        ip.extend_from_slice(&icmp);
        eth_frame(eth_dst, PEER_MAC, ETHERTYPE_IPV6, &ip)
    }

    fn ns_body(target: Ipv6Addr, slla: Option<Mac>) -> Vec<u8> {
        let mut b = vec![0; 4];
        b.extend_from_slice(&target.octets());
        if let Some(m) = slla {
            b.extend_from_slice(&[1, 1]);
            b.extend_from_slice(&m);
        }
        b
    }

    #[test]
    fn stable_mac_is_local_unicast_and_deterministic() {
        let a = stable_mac("lan0");
        assert_eq!(a, stable_mac("lan0"));
        assert_ne!(a, stable_mac("wan0"));
        assert_eq!(a[0] & 0x03, 0x02);
    }

    #[test]
    fn multicast_mappings() {
        let sn = solicited_node(&"2001:db8:1::1234:5678".parse().unwrap());
        assert_eq!(sn, "ff02::1:ff34:5678".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            ipv6_multicast_mac(&sn),
            [0x33, 0x33, 0xff, 0x34, 0x56, 0x78]
        );
        assert_eq!(
            ipv4_multicast_mac("239.129.2.3".parse().unwrap()),
            [0x01, 0x00, 0x5e, 0x01, 0x02, 0x03]
        );
        assert_eq!(
            link_local_from_mac(&PEER_MAC),
            "fe80::5054:ff:fe12:3456".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn answers_arp_request_and_learns_sender() {
        let mut l2 = l2();
        assert_eq!(
            l2.handle_frame(t(1), &arp_request_for_router()),
            Rx::Consumed
        );
        let reply = l2.poll_frame().expect("an ARP reply");
        assert!(l2.poll_frame().is_none());
        let mut want = Vec::new();
        want.extend_from_slice(&PEER_MAC);
        want.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x08, 0x06]);
        want.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
        want.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 192, 0, 2, 1]);
        want.extend_from_slice(&PEER_MAC);
        want.extend_from_slice(&[192, 0, 2, 2]);
        assert_eq!(reply, want);
        assert_eq!(l2.lookup(&"192.0.2.2".parse().unwrap()), Some(PEER_MAC));
        assert_eq!(l2.stats().arp_replies_sent, 1);
    }

    #[test]
    fn ignores_arp_for_other_hosts_and_foreign_unicast() {
        let mut l2 = l2();
        let mut f = arp_request_for_router();
        f[41] = 9; // target 192.0.2.9
        assert_eq!(l2.handle_frame(t(1), &f), Rx::Consumed);
        assert!(l2.poll_frame().is_none());
        assert_eq!(l2.neighbour_count(), 0);
        let mut g = arp_request_for_router();
        g[0..6].copy_from_slice(&[0x02, 9, 9, 9, 9, 9]);
        assert_eq!(l2.handle_frame(t(1), &g), Rx::Dropped(RxDrop::NotForUs));
    }

    #[test]
    fn resolves_next_hop_with_arp_and_flushes_queue_in_order() {
        let mut l2 = l2();
        l2.send_ip(
            t(1),
            "192.0.2.2".parse().unwrap(),
            &ipv4_packet([192, 0, 2, 2], 1),
        );
        l2.send_ip(
            t(1),
            "192.0.2.2".parse().unwrap(),
            &ipv4_packet([192, 0, 2, 2], 2),
        );
        let req = l2.poll_frame().expect("ARP request");
        assert_eq!(&req[0..6], &BROADCAST);
        assert_eq!(&req[20..22], &[0, 1]);
        assert_eq!(&req[28..32], &[192, 0, 2, 1]); // sender: our address on that subnet
        assert_eq!(&req[38..42], &[192, 0, 2, 2]);
        assert!(l2.poll_frame().is_none(), "only one request while waiting");

        assert_eq!(
            l2.handle_frame(t(1), &arp_reply_from_peer([192, 0, 2, 2])),
            Rx::Consumed
        );
        let a = l2.poll_frame().unwrap();
        let b = l2.poll_frame().unwrap();
        assert_eq!(&a[0..6], &PEER_MAC);
        assert_eq!(&a[12..14], &[0x08, 0x00]);
        assert_eq!((a[34], b[34]), (1, 2));
        // Now resolved: sent straight away.
        l2.send_ip(
            t(2),
            "192.0.2.2".parse().unwrap(),
            &ipv4_packet([192, 0, 2, 2], 3),
        );
        assert_eq!(l2.poll_frame().unwrap()[34], 3);
    }

    #[test]
    fn unsolicited_arp_reply_creates_nothing() {
        let mut l2 = l2();
        assert_eq!(
            l2.handle_frame(t(1), &arp_reply_from_peer([192, 0, 2, 7])),
            Rx::Consumed
        );
        assert_eq!(l2.neighbour_count(), 0);
    }

    #[test]
    fn queue_is_bounded_and_drops_oldest() {
        let mut l2 = l2();
        let hop: IpAddr = "192.0.2.2".parse().unwrap();
        for tag in 1..=5 {
            l2.send_ip(t(1), hop, &ipv4_packet([192, 0, 2, 2], tag));
        }
        assert_eq!(l2.stats().queue_drops, 2);
        let _req = l2.poll_frame();
        l2.handle_frame(t(1), &arp_reply_from_peer([192, 0, 2, 2]));
        let tags: Vec<u8> = std::iter::from_fn(|| l2.poll_frame())
            .map(|f| f[34])
            .collect();
        assert_eq!(tags, vec![3, 4, 5]);
    }

    #[test]
    fn resolution_retries_then_fails_and_counts_drops() {
        let mut l2 = l2();
        let hop: IpAddr = "192.0.2.3".parse().unwrap();
        l2.send_ip(t(1), hop, &ipv4_packet([192, 0, 2, 3], 1));
        l2.send_ip(t(1), hop, &ipv4_packet([192, 0, 2, 3], 2));
        assert_eq!(l2.poll_timeout(), Some(t(2)));
        l2.handle_timeout(ms(1500)); // not due
        assert_eq!(l2.stats().arp_requests_sent, 1);
        l2.handle_timeout(t(2));
        l2.handle_timeout(t(3));
        assert_eq!(l2.stats().arp_requests_sent, 3);
        l2.handle_timeout(t(4));
        assert_eq!(l2.neighbour_count(), 0);
        assert_eq!(l2.stats().resolve_failures, 1);
        assert_eq!(l2.stats().unresolved_drops, 2);
        assert_eq!(std::iter::from_fn(|| l2.poll_frame()).count(), 3);
        assert_eq!(l2.poll_timeout(), None);
    }

    #[test]
    fn reachable_expires_to_stale_then_unicast_probe_then_gc() {
        let mut l2 = l2();
        let hop: IpAddr = "192.0.2.2".parse().unwrap();
        l2.handle_frame(t(0), &arp_request_for_router());
        l2.poll_frame();
        assert_eq!(l2.poll_timeout(), Some(t(30)));
        l2.handle_timeout(t(31));
        // Stale: still used, and the first use probes by unicast.
        l2.send_ip(t(31), hop, &ipv4_packet([192, 0, 2, 2], 9));
        let data = l2.poll_frame().unwrap();
        assert_eq!(data[34], 9);
        let probe = l2.poll_frame().unwrap();
        assert_eq!(&probe[0..6], &PEER_MAC);
        assert_eq!(&probe[12..14], &[0x08, 0x06]);
        // The peer answers: reachable again, no more probes.
        l2.handle_frame(t(31), &arp_reply_from_peer([192, 0, 2, 2]));
        l2.handle_timeout(t(33));
        assert!(l2.poll_frame().is_none());
        // Unused for long enough: expires to stale, then is collected.
        l2.handle_timeout(t(62));
        assert_eq!(l2.neighbour_count(), 1);
        l2.handle_timeout(t(92));
        assert_eq!(l2.neighbour_count(), 0);
    }

    #[test]
    fn cache_is_bounded() {
        let mut l2 = L2Iface::new(
            [0x02, 0, 0, 0, 0, 1],
            &["192.0.2.1/24".parse().unwrap()],
            L2Limits {
                max_entries: 4,
                ..L2Limits::default()
            },
        );
        for i in 10..20u8 {
            l2.send_ip(
                t(1),
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)),
                &ipv4_packet([192, 0, 2, i], i),
            );
        }
        assert_eq!(l2.neighbour_count(), 4);
        assert_eq!(l2.stats().evictions, 6);
        assert_eq!(l2.stats().unresolved_drops, 6);
    }

    #[test]
    fn answers_ns_with_solicited_na_and_tlla() {
        let mut l2 = l2();
        let peer: Ipv6Addr = "2001:db8:1::2".parse().unwrap();
        let target: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        let sn = solicited_node(&target);
        let f = nd_frame(
            ICMPV6_NS,
            peer,
            sn,
            ipv6_multicast_mac(&sn),
            &ns_body(target, Some(PEER_MAC)),
        );
        assert_eq!(l2.handle_frame(t(1), &f), Rx::Consumed);
        let na = l2.poll_frame().expect("an NA");
        assert_eq!(&na[0..6], &PEER_MAC);
        assert_eq!(&na[6..12], &l2.mac());
        let ip = &na[14..];
        assert_eq!(ip[6], 58);
        assert_eq!(ip[7], 255);
        assert_eq!(ipv6_at(ip, 8), Some(target));
        assert_eq!(ipv6_at(ip, 24), Some(peer));
        let icmp = &ip[40..];
        assert_eq!(icmp[0], ICMPV6_NA);
        assert_eq!(
            icmp[4],
            NA_FLAG_ROUTER | NA_FLAG_SOLICITED | NA_FLAG_OVERRIDE
        );
        assert_eq!(ipv6_at(icmp, 8), Some(target));
        assert_eq!(&icmp[24..26], &[ND_OPT_TLLA, 1]);
        assert_eq!(&icmp[26..32], &l2.mac());
        assert!(Icmpv6Packet::new_checked(icmp)
            .unwrap()
            .verify_checksum(&target, &peer));
        // The soliciting host is learned (stale, as RFC 4861 says).
        assert_eq!(l2.lookup(&IpAddr::V6(peer)), Some(PEER_MAC));
    }

    #[test]
    fn answers_ns_for_link_local_and_defends_dad() {
        let mut l2 = l2();
        let ll = link_local_from_mac(&l2.mac());
        let sn = solicited_node(&ll);
        let f = nd_frame(
            ICMPV6_NS,
            Ipv6Addr::UNSPECIFIED,
            sn,
            ipv6_multicast_mac(&sn),
            &ns_body(ll, None),
        );
        assert_eq!(l2.handle_frame(t(1), &f), Rx::Consumed);
        let na = l2.poll_frame().unwrap();
        assert_eq!(&na[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(na[14 + 40 + 4] & NA_FLAG_SOLICITED, 0);
    }

    #[test]
    fn rejects_bad_nd() {
        let mut l2 = l2();
        let peer: Ipv6Addr = "2001:db8:1::2".parse().unwrap();
        let target: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        let mut f = nd_frame(
            ICMPV6_NS,
            peer,
            target,
            l2.mac(),
            &ns_body(target, Some(PEER_MAC)),
        );
        f[14 + 7] = 64; // hop limit not 255: off-link forgery
        assert_eq!(l2.handle_frame(t(1), &f), Rx::Dropped(RxDrop::Malformed));
        let mut g = nd_frame(
            ICMPV6_NS,
            peer,
            target,
            l2.mac(),
            &ns_body(target, Some(PEER_MAC)),
        );
        let last = g.len() - 1;
        g[last] ^= 1; // checksum no longer verifies
        assert_eq!(l2.handle_frame(t(1), &g), Rx::Dropped(RxDrop::Malformed));
        let mut body = ns_body(target, None);
        body.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]); // zero-length option
        let h = nd_frame(ICMPV6_NS, peer, target, l2.mac(), &body);
        assert_eq!(l2.handle_frame(t(1), &h), Rx::Dropped(RxDrop::Malformed));
        assert!(l2.poll_frame().is_none());
        assert_eq!(l2.stats().rx_dropped, 3);
    }

    #[test]
    fn resolves_ipv6_next_hop_with_ns_and_na() {
        let mut l2 = l2();
        let peer: Ipv6Addr = "2001:db8:1::2".parse().unwrap();
        let mut pkt = vec![0x60, 0, 0, 0, 0, 1, 17, 64];
        pkt.extend_from_slice(&"2001:db8:1::1".parse::<Ipv6Addr>().unwrap().octets());
        pkt.extend_from_slice(&peer.octets());
        pkt.push(0xaa);
        l2.send_ip(t(1), IpAddr::V6(peer), &pkt);
        let ns = l2.poll_frame().expect("NS");
        let sn = solicited_node(&peer);
        assert_eq!(&ns[0..6], &ipv6_multicast_mac(&sn));
        let ip = &ns[14..];
        assert_eq!(ipv6_at(ip, 8), Some("2001:db8:1::1".parse().unwrap()));
        assert_eq!(ipv6_at(ip, 24), Some(sn));
        assert_eq!(ip[40], ICMPV6_NS);
        assert_eq!(ipv6_at(&ip[40..], 8), Some(peer));
        assert_eq!(&ip[40 + 24..40 + 26], &[ND_OPT_SLLA, 1]);
        let ns_icmp = Icmpv6Packet::new_checked(&ip[40..]).unwrap();
        assert!(ns_icmp.verify_checksum(&ipv6_at(ip, 8).unwrap(), &sn));

        let mut body = vec![NA_FLAG_SOLICITED | NA_FLAG_OVERRIDE, 0, 0, 0];
        body.extend_from_slice(&peer.octets());
        body.extend_from_slice(&[2, 1]);
        body.extend_from_slice(&PEER_MAC);
        let na = nd_frame(
            ICMPV6_NA,
            peer,
            "2001:db8:1::1".parse().unwrap(),
            l2.mac(),
            &body,
        );
        assert_eq!(l2.handle_frame(t(1), &na), Rx::Consumed);
        let data = l2.poll_frame().expect("the queued packet");
        assert_eq!(&data[0..6], &PEER_MAC);
        assert_eq!(&data[12..14], &[0x86, 0xdd]);
        assert_eq!(&data[14..], &pkt[..]);
    }

    #[test]
    fn ip_passes_through_trimmed_and_ethertypes_are_checked() {
        let mut l2 = l2();
        let mut f = eth_frame(
            l2.mac(),
            PEER_MAC,
            ETHERTYPE_IPV4,
            &ipv4_packet([192, 0, 2, 1], 7),
        );
        f.extend_from_slice(&[0; 10]); // link padding
        assert_eq!(
            l2.handle_frame(t(1), &f),
            Rx::Ip(&ipv4_packet([192, 0, 2, 1], 7)[..])
        );
        let v = eth_frame(l2.mac(), PEER_MAC, 0x8100, &[0; 30]);
        assert_eq!(
            l2.handle_frame(t(1), &v),
            Rx::Dropped(RxDrop::UnknownEtherType(0x8100))
        );
        // A non-ND ICMPv6 message (echo request) goes to the engine.
        let peer: Ipv6Addr = "2001:db8:1::2".parse().unwrap();
        let echo = nd_frame(
            128,
            peer,
            "2001:db8:1::1".parse().unwrap(),
            l2.mac(),
            &[0, 1, 0, 1],
        );
        assert!(matches!(l2.handle_frame(t(1), &echo), Rx::Ip(_)));
        // The lock-free path takes exactly the IP frames and leaves the rest to the cache.
        let mac = l2.mac();
        assert_eq!(
            ip_for_us(mac, &f),
            Some(&ipv4_packet([192, 0, 2, 1], 7)[..])
        );
        assert!(ip_for_us(mac, &echo).is_some());
        assert_eq!(ip_for_us(mac, &v), None);
        let ns = nd_frame(135, peer, "2001:db8:1::1".parse().unwrap(), mac, &[0; 4]);
        assert_eq!(
            ip_for_us(mac, &ns),
            None,
            "neighbour discovery needs the cache"
        );
        let other = eth_frame(
            PEER_MAC,
            PEER_MAC,
            ETHERTYPE_IPV4,
            &ipv4_packet([192, 0, 2, 1], 7),
        );
        assert_eq!(ip_for_us(mac, &other), None, "not for us");
        assert_eq!(ip_for_us(mac, &f[..20]), None, "truncated");
    }

    #[test]
    fn broadcast_and_multicast_need_no_resolution() {
        let mut l2 = l2();
        l2.send_ip(
            t(1),
            "192.0.2.255".parse().unwrap(),
            &ipv4_packet([192, 0, 2, 255], 1),
        );
        assert_eq!(&l2.poll_frame().unwrap()[0..6], &BROADCAST);
        l2.send_ip(t(1), "ff02::1".parse().unwrap(), &[0x60, 0, 0, 0]);
        assert_eq!(&l2.poll_frame().unwrap()[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(l2.neighbour_count(), 0);
    }

    #[test]
    fn no_panic_on_any_prefix_or_garbage() {
        let mut l2 = l2();
        let peer: Ipv6Addr = "2001:db8:1::2".parse().unwrap();
        let target: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        let samples = [
            arp_request_for_router(),
            arp_reply_from_peer([192, 0, 2, 2]),
            nd_frame(
                ICMPV6_NS,
                peer,
                target,
                l2.mac(),
                &ns_body(target, Some(PEER_MAC)),
            ),
        ];
        for s in &samples {
            for n in 0..=s.len() {
                let _ = l2.handle_frame(t(1), &s[..n]);
            }
            let mut x = s.clone();
            for i in 0..x.len() {
                x[i] = x[i].wrapping_mul(31).wrapping_add(7);
                let _ = l2.handle_frame(t(1), &x);
            }
        }
        l2.send_ip(t(1), "192.0.2.2".parse().unwrap(), &[]);
        l2.handle_timeout(t(100));
    }
}
