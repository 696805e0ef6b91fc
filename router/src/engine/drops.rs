//! Counted drops and the event queue.

use super::*;
use crate::tcpmss::TcpmssError;
use l3proto::defrag::DefragDrop;
use nat::mangle::MangleError;

conntrack::reasons! {
    /// Why the engine dropped a packet: each is counted (`ct stats`: `drop reason="..."`) and
    /// reported in the drop event under its text. Steps with reasons of their own (reassembly,
    /// payload mangling, TCPMSS) keep their enums, wrapped at the end. An INVALID packet is not
    /// a drop: the ruleset decides ([`conntrack::Invalid`] counts why).
    pub enum DropReason {
        // ---- The rule tables.
        /// A REJECT rule (answered with an ICMP error or a RST).
        Reject => "reject",
        /// A DROP rule.
        RuleDrop => "rule: drop",
        /// A chain's DROP policy.
        PolicyDrop => "policy: drop",

        // ---- Reading the packet (`engine/input.rs`).
        /// The IPv4 header checksum is wrong.
        IpBadChecksum => "ip: bad header checksum",
        /// Shorter than its header or than its length field says.
        IpTruncated => "ip: truncated",
        /// A version that is not 4 or 6, or not the header's.
        IpBadVersion => "ip: bad version",
        /// The IPv4 header length is below 20 bytes or beyond the packet.
        IpBadHeaderLen => "ip: bad header length",
        /// The length field is inconsistent with the header.
        IpBadLength => "ip: bad length",
        /// An empty packet.
        IpEmpty => "ip: empty",
        /// Otherwise malformed (a misplaced IPv6 extension header, a jumbogram, ...).
        IpMalformed => "ip: malformed",
        /// A multicast or broadcast packet: not routed.
        IpMulticast => "ip: multicast not routed",
        /// A reassembled datagram that does not parse as a whole packet.
        FragCloneMalformed => "frag: reassembled datagram malformed",
        /// A reassembled datagram for another shard while the hand-off queue is full.
        ShardHandoffFull => "shard: hand-off queue full",

        // ---- Forwarding (`engine/forward.rs`).
        /// A link-local source or destination (RFC 4291 §2.5.6).
        IpLinkLocal => "ip: link-local not forwarded",
        /// No route to the destination.
        NoRoute => "route: no route",
        /// The TTL or hop limit ran out.
        IpTtlExceeded => "ip: ttl exceeded",
        /// Larger than the egress MTU and not to be fragmented (DF, IPv6).
        IpTooBig => "ip: packet too big",
        /// An IPv4 packet that could not be split to the egress MTU.
        IpCannotFragment => "ip: cannot fragment",
        /// An offloaded super-packet whose segments exceed the egress MTU.
        OffloadAboveMtu => "offload: segment above egress MTU",
        /// A held fragment of a forwarded datagram that cannot be read again.
        FragUnreadable => "frag: unreadable fragment",
        /// The transmit queue is full.
        TxQueueFull => "tx: queue full",

        // ---- Conntrack (`engine/track.rs`, `engine/stages.rs`).
        /// The connection table is full and nothing could be evicted.
        CtTableFull => "conntrack: table full",
        /// Another packet created the same connection first.
        CtInsertClash => "conntrack: insert clash",
        /// Another shard holds one of the connection's tuples.
        CtTupleTakenByShard => "conntrack: tuple taken by another shard",
        /// A new connection beyond its batch's budget ([`Engine::set_new_flow_budget`]).
        CtNewFlowBudget => "conntrack: new-flow budget exceeded",

        // ---- NAT and helpers (`engine/translate.rs`, `engine/helper.rs`).
        /// No free port (or mapping) for the translation.
        NatNoFreePort => "nat: no free port",
        /// The packet's headers could not be rewritten.
        NatCannotRewrite => "nat: cannot rewrite",
        /// A helper would rewrite the payload of a fragmented datagram.
        HelperFragmented => "helper: cannot rewrite a fragmented datagram",

        // ---- The router's own stack (`engine/stack.rs`).
        /// For the router, handled (answered or refused) and consumed.
        LocalDelivered => "local: delivered to router",
        /// An echo request to the router shorter than an echo header.
        LocalMalformedEcho => "local: malformed echo request",
        /// An ICMP error the router owed, beyond the rate limit.
        IcmpRateLimited => "icmp: rate limited",

        // ---- The engine itself.
        /// An event pushed out of the full event queue (not a packet).
        EventsQueueFull => "events: queue full",
        /// Handling the packet panicked (a bug; see `Engine::contain_panic`).
        InternalPanic => "internal: panic (packet dropped)",
    }
    wrapping {
        /// Reassembly refused the fragment, or gave up its datagram (`l3proto::defrag`).
        Defrag(DefragDrop),
        /// A helper's payload rewrite could not be made (`nat::mangle`).
        Mangle(MangleError),
        /// TCPMSS could not write the option ([`crate::tcpmss`]).
        Tcpmss(TcpmssError),
    }
}

impl From<conntrack::proto::L3Error> for DropReason {
    fn from(e: conntrack::proto::L3Error) -> DropReason {
        use conntrack::proto::L3Error;
        match e {
            L3Error::BadChecksum => DropReason::IpBadChecksum,
            L3Error::Truncated => DropReason::IpTruncated,
            L3Error::BadVersion | L3Error::UnknownVersion => DropReason::IpBadVersion,
            L3Error::BadHeaderLen => DropReason::IpBadHeaderLen,
            L3Error::BadLength => DropReason::IpBadLength,
            L3Error::Empty => DropReason::IpEmpty,
            _ => DropReason::IpMalformed,
        }
    }
}

impl Engine {
    // ---------------------------------------------------------------- drops

    pub(super) fn verdict_drop(
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
                DropReason::Reject
            }
            _ => DropReason::RuleDrop,
        };
        self.count_drop_hook(reason, hook, meta, ingress);
    }

    pub(super) fn count_drop_hook(
        &mut self,
        reason: DropReason,
        hook: Hook,
        meta: &Meta,
        ingress: Option<IfaceId>,
    ) {
        let rule = self.last_rule.take();
        let reason = match (&rule, reason) {
            (Some(r), DropReason::RuleDrop) if r.is_policy() => DropReason::PolicyDrop,
            _ => reason,
        };
        self.drop_packet(reason, Some(hook), rule, ingress, || meta.describe());
    }

    /// Counts a drop and, when events are on, reports it with the packet's description:
    /// `packet` is called only then (formatting it cost far more than the rest of a drop, and
    /// a router drops most when flooded, with nobody watching the events).
    pub(super) fn drop_packet(
        &mut self,
        reason: DropReason,
        hook: Option<Hook>,
        rule: Option<RuleRef>,
        ingress: Option<IfaceId>,
        packet: impl FnOnce() -> String,
    ) {
        self.drops.add(reason);
        if self.events_enabled {
            let packet = packet();
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

    pub(super) fn push_event(&mut self, e: Event) {
        if !self.events_enabled {
            return;
        }
        if self.events.len() >= EVENT_QUEUE {
            self.events.pop_front();
            self.drops.add(DropReason::EventsQueueFull);
        }
        self.events.push_back(e);
    }
}
