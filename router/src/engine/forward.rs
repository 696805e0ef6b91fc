//! The path of a packet that arrived: PREROUTING, the routing decision, INPUT or FORWARD and
//! POSTROUTING, and its way out (fragments of a reassembled datagram, IPv4 fragmentation, the
//! transmit queue).

use super::*;

impl Engine {
    /// The path of a whole (or reassembled) packet that arrived: PREROUTING, the routing
    /// decision, then INPUT and the local stack, or FORWARD and POSTROUTING. Inlined into
    /// `handle_one` so that the packet's state, just built, is not copied through memory
    /// (a wide load over narrower stores stalls store-to-load forwarding).
    #[inline(always)]
    pub(super) fn pipeline(&mut self, f: &mut InFlight) {
        let Some(ingress) = f.ingress else {
            return;
        };
        if !self.run_hook(Hook::Prerouting, f) {
            return;
        }
        // Routing decision.
        if self.is_local(&f.meta.dst) {
            if self.run_hook(Hook::Input, f) {
                let pkt = std::mem::take(&mut f.pkt);
                self.local_deliver(self.now, &f.meta, pkt, ingress);
            }
            return;
        }
        // Forwarding: link-local destinations are never forwarded (RFC 4291 §2.5.6).
        if is_link_local(&f.meta.dst) || is_link_local(&f.meta.src) {
            return self.count_drop_hook(
                DropReason::IpLinkLocal,
                Hook::Prerouting,
                &f.meta,
                Some(ingress),
            );
        }
        let Some(route) = self.routes.lookup(f.meta.dst).copied() else {
            let (t, c) = if f.meta.family == Family::V4 {
                (3, 0)
            } else {
                (1, 0)
            };
            self.send_icmp_error(&f.pkt, &f.meta, ingress, t, c, 0);
            return self.count_drop_hook(
                DropReason::NoRoute,
                Hook::Prerouting,
                &f.meta,
                Some(ingress),
            );
        };
        f.egress = Some(route.iface);
        f.via = route.via;
        // TTL check before the FORWARD hook, as ip_forward() does.
        if f.meta.ttl <= 1 {
            let (t, c) = if f.meta.family == Family::V4 {
                (11, 0)
            } else {
                (3, 0)
            };
            self.send_icmp_error(&f.pkt, &f.meta, ingress, t, c, 0);
            return self.count_drop_hook(
                DropReason::IpTtlExceeded,
                Hook::Prerouting,
                &f.meta,
                Some(ingress),
            );
        }
        let mtu = self.ifaces[route.iface].mtu;
        if let Some(frag) = &f.frag {
            // A reassembled clone is never sent, its fragments are; the datagram's fate is
            // one. A fragment over the MTU that may not be split (IPv6, IPv4 with DF) refuses
            // the whole datagram, with one error quoting its first fragment as it arrived.
            let v4 = f.meta.family == Family::V4;
            let unsplittable =
                |p: &PacketBuf| !v4 || p.as_slice().get(6).is_some_and(|b| b & 0x40 != 0);
            if frag
                .fragments
                .iter()
                .any(|p| p.len() > mtu && unsplittable(p))
            {
                if let Some(first) = frag.fragments.get(frag.first) {
                    if let Ok(fm) = Meta::of(first.as_slice()) {
                        let (t, c) = if v4 { (3, 4) } else { (2, 0) };
                        self.send_icmp_error(first, &fm, ingress, t, c, mtu as u32);
                    }
                }
                return self.count_drop_hook(
                    DropReason::IpTooBig,
                    Hook::Prerouting,
                    &f.meta,
                    Some(ingress),
                );
            }
        } else if f.wire_len() > mtu {
            let df = f.meta.family == Family::V6
                || f.pkt.as_slice().get(6).is_some_and(|b| b & 0x40 != 0);
            if df {
                let (t, c) = if f.meta.family == Family::V4 {
                    (3, 4)
                } else {
                    (2, 0)
                };
                self.send_icmp_error(&f.pkt, &f.meta, ingress, t, c, mtu as u32);
                return self.count_drop_hook(
                    DropReason::IpTooBig,
                    Hook::Prerouting,
                    &f.meta,
                    Some(ingress),
                );
            }
        }
        decrement_ttl(f.pkt.as_mut_slice());
        f.meta.ttl -= 1;
        if self.run_hook(Hook::Forward, f) {
            self.postrouting(f);
        }
    }

    /// POSTROUTING, then the packet leaves: as it is, fragmented to the egress MTU (IPv4
    /// without DF), or as the original fragments of a reassembled datagram. Inlined for the
    /// same reason as `pipeline`.
    #[inline(always)]
    pub(super) fn postrouting(&mut self, f: &mut InFlight) {
        if !self.run_hook(Hook::Postrouting, f) {
            return;
        }
        let Some(egress) = f.egress else {
            return;
        };
        let next_hop = f.via.unwrap_or(f.meta.dst);
        if let Some(frag) = f.frag.take() {
            return self.forward_fragments(*frag, &f.meta, egress, f.via, f.ingress);
        }
        if f.wire_len() > self.ifaces[egress].mtu {
            if f.offload.is_some_and(|o| o.is_gso()) {
                // Segments without DF would have to be segmented, then fragmented.
                return self.count_drop_hook(
                    DropReason::OffloadAboveMtu,
                    Hook::Postrouting,
                    &f.meta,
                    f.ingress,
                );
            }
            // Only IPv4 without DF gets here (the rest got an ICMP error).
            match fragment_v4(f.pkt.as_slice(), self.ifaces[egress].mtu) {
                Some(frags) => {
                    for p in frags {
                        self.transmit(egress, next_hop, p, None, &f.meta, f.ingress);
                    }
                }
                None => self.count_drop_hook(
                    DropReason::IpCannotFragment,
                    Hook::Postrouting,
                    &f.meta,
                    f.ingress,
                ),
            }
            return;
        }
        let pkt = std::mem::take(&mut f.pkt);
        self.transmit(egress, next_hop, pkt, f.offload, &f.meta, f.ingress);
    }

    /// Sends the original fragments of an accepted datagram: the clone's TTL/hop limit
    /// written into each (the forwarding decision was the datagram's), NAT written into every
    /// fragment (addresses) and into the first (the L4 header and its checksum, which covers
    /// the whole datagram, so an incremental fix is exact), IPv4 fragments without DF above
    /// the egress MTU split further (`pipeline` refused the datagram if any other was above).
    ///
    /// The datagram's fate is one: every fragment is prepared before any leaves, so either all
    /// of it goes or none (a part could never be reassembled).
    pub(super) fn forward_fragments(
        &mut self,
        f: FragPending,
        meta: &Meta,
        egress: IfaceId,
        via: Option<IpAddr>,
        ingress: Option<IfaceId>,
    ) {
        let (src0, dst0, sport0, dport0) = f.before;
        let mtu = self.ifaces[egress].mtu;
        let mut frags = f.fragments;
        // Rewritten in place; only a datagram with a fragment to split needs a second list.
        let mut split: Option<Vec<PacketBuf>> = None;
        for i in 0..frags.len() {
            let frag = &mut frags[i];
            let first = i == f.first;
            set_ttl(frag.as_mut_slice(), meta.ttl);
            let Some(l4_off) = fragment_l4_offset(frag.as_slice()) else {
                return self.count_drop_hook(
                    DropReason::FragUnreadable,
                    Hook::Postrouting,
                    meta,
                    ingress,
                );
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
                return self.count_drop_hook(
                    DropReason::NatCannotRewrite,
                    Hook::Postrouting,
                    meta,
                    ingress,
                );
            }
            if frag.len() <= mtu {
                if let Some(out) = &mut split {
                    out.push(std::mem::replace(frag, PacketBuf::from_vec(Vec::new())));
                }
                continue;
            }
            // IPv4 without DF: split further on 8-byte boundaries (anything else is refused).
            let Some(parts) = fragment_v4(frag.as_slice(), mtu) else {
                return self.count_drop_hook(
                    DropReason::IpCannotFragment,
                    Hook::Postrouting,
                    meta,
                    ingress,
                );
            };
            let out = split.get_or_insert_with(|| {
                let mut v = Vec::with_capacity(frags.len() + parts.len());
                v.extend(
                    frags[..i]
                        .iter_mut()
                        .map(|p| std::mem::replace(p, PacketBuf::from_vec(Vec::new()))),
                );
                v
            });
            out.extend(parts);
        }
        for p in split.unwrap_or(frags) {
            self.transmit(egress, via.unwrap_or(meta.dst), p, None, meta, ingress);
        }
    }

    #[inline(always)]
    pub(super) fn transmit(
        &mut self,
        iface: IfaceId,
        next_hop: IpAddr,
        packet: PacketBuf,
        offload: Option<Offload>,
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
            offload,
        });
    }

    #[cold]
    #[inline(never)]
    pub(super) fn tx_full(&mut self, meta: &Meta, ingress: Option<IfaceId>) {
        self.count_drop_hook(DropReason::TxQueueFull, Hook::Postrouting, meta, ingress)
    }
}
