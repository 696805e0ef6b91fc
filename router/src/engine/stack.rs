//! The router's own stack: answers to packets for its addresses, REJECT, ICMP errors, and the
//! OUTPUT path of what it sends.

use super::*;

impl Engine {
    // ---------------------------------------------------------- local stack

    pub(super) fn reject(
        &mut self,
        with: RejectWith,
        meta: &Meta,
        pkt: &PacketBuf,
        ingress: IfaceId,
    ) {
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

    pub(super) fn is_error(&self, meta: &Meta) -> bool {
        match (meta.family, meta.icmp) {
            (Family::V4, Some((t, _))) => matches!(t, 3 | 4 | 5 | 11 | 12),
            (Family::V6, Some((t, _))) => t < 128,
            _ => false,
        }
    }

    pub(super) fn send_icmp_error(
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
            self.drops.add(DropReason::IcmpRateLimited);
            return;
        }
        let Some(src) = self.local_addr_on(Some(ingress), meta.family) else {
            return;
        };
        if let Some(p) = local::icmp_error(src, pkt.as_slice(), ty, code, rest) {
            self.output(p, Some(ingress));
        }
    }

    pub(super) fn local_deliver(
        &mut self,
        _now: Instant,
        meta: &Meta,
        pkt: PacketBuf,
        ingress: IfaceId,
    ) {
        let echo = matches!(
            (meta.family, meta.icmp),
            (Family::V4, Some((8, 0))) | (Family::V6, Some((128, 0)))
        );
        if echo {
            match local::echo_reply(pkt.as_slice(), meta.l4_offset) {
                Some(reply) => self.output(reply, Some(ingress)),
                // Shorter than an echo header within the IP length (ICMP_MIB_INERRORS).
                None => self.drops.add(DropReason::LocalMalformedEcho),
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
        self.drops.add(DropReason::LocalDelivered);
    }

    /// The OUTPUT path for a packet the router originates (an echo reply, an ICMP error, a
    /// RST). It travels in its own `InFlight`: whatever packet caused it keeps its state.
    pub(super) fn output(&mut self, pkt: PacketBuf, _cause: Option<IfaceId>) {
        let Ok(meta) = Meta::of(pkt.as_slice()) else {
            return;
        };
        // The routing decision comes before the OUTPUT hook (`-o` matches it); a DNAT in
        // the hook routes again.
        let Some(route) = self.routes.lookup(meta.dst).copied() else {
            return self.count_drop_hook(DropReason::NoRoute, Hook::Output, &meta, None);
        };
        let mut f = InFlight::new(pkt, meta, None);
        f.egress = Some(route.iface);
        f.via = route.via;
        if self.run_hook(Hook::Output, &mut f) {
            self.postrouting(&mut f);
        }
    }
}
