//! Packets in: single packets, batches, offloaded super-packets, reassembled datagrams handed over
//! by another shard, and the panic policy around them.

use super::*;

impl Engine {
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
        self.handle_guarded(now, ingress, pkt, Some(offload));
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
    pub(super) fn warm<'a>(&mut self, pkts: impl ExactSizeIterator<Item = &'a PacketBuf>) {
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

    /// Handles one IP packet received on `ingress`.
    pub fn handle_packet(&mut self, now: Instant, ingress: IfaceId, pkt: PacketBuf) {
        self.handle_guarded(now, ingress, pkt, None);
    }

    /// `handle_one` behind the panic policy (see `contain_panic`).
    #[inline(always)]
    pub(super) fn handle_guarded(
        &mut self,
        now: Instant,
        ingress: IfaceId,
        pkt: PacketBuf,
        offload: Option<Offload>,
    ) {
        let done = panic::catch_unwind(AssertUnwindSafe(|| {
            self.handle_one(now, ingress, pkt, offload)
        }));
        if let Err(p) = done {
            self.contain_panic(p, Some(ingress));
        }
    }

    /// The policy for a bug: no input should make the engine panic, but if one does, the
    /// packet is dropped and counted and the engine goes on with the next one. A gateway
    /// that stops forwarding because of one packet is the worst outcome (anyone who can
    /// send it can repeat it), so neither the worker nor the simulator dies with it. The
    /// panic message has already gone to the panic hook (stderr); the packet's state died
    /// with it (it travels in its `InFlight`), and the tables stay as they were (every table
    /// update is complete before the next may fail: nothing is half-inserted).
    #[cold]
    #[inline(never)]
    pub(super) fn contain_panic(
        &mut self,
        payload: Box<dyn std::any::Any + Send>,
        ingress: Option<IfaceId>,
    ) {
        self.last_rule = None;
        self.last_nat = None;
        self.panics += 1;
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        tracing::error!(panic = %what, "internal error while handling a packet: dropped");
        self.drop_packet(DropReason::InternalPanic, None, None, ingress, || what);
    }

    /// How many packets an internal error (a panic) dropped since the engine started.
    pub fn panics(&self) -> u64 {
        self.panics
    }

    pub(super) fn handle_one(
        &mut self,
        now: Instant,
        ingress: IfaceId,
        pkt: PacketBuf,
        offload: Option<Offload>,
    ) {
        self.now = now;
        self.packets_in += 1;
        #[cfg(feature = "fault-injection")]
        fault_injection::check(pkt.as_slice());
        if self.timers.is_due(Timer::ConntrackGc, now) {
            self.handle_timeout(now);
        }
        // Parsed straight into the packet's state: a copy of the parse result into it was
        // a wide load over the narrow stores that built it (a store-forwarding stall).
        let mut f = match InFlight::parse(pkt, Some(ingress)) {
            Ok(f) => f,
            Err((e, pkt)) => {
                let reason = DropReason::from(e);
                self.drop_packet(reason, None, None, Some(ingress), || {
                    format!("{} bytes", pkt.len())
                });
                return;
            }
        };
        // Bytes past the IP length (link padding, or a length field shorter than what
        // arrived) are not part of the datagram: trim them as ip_rcv/ipv6_rcv do, so that no
        // later step can read a length field against more bytes than it covers.
        if f.pkt.len() > f.meta.len {
            f.pkt.truncate(f.meta.len);
        }
        let meta = &f.meta;
        if meta.dst.is_multicast() || meta.src.is_multicast() || is_broadcast(&meta.dst) {
            // No multicast routing: link-local control traffic (MLD, RS) from
            // the kernel side ends here, counted but not worth an event each.
            self.drops.add(DropReason::IpMulticast);
            return;
        }
        // Virtual reassembly before anything looks at the packet (as
        // nf_defrag does): the pipeline sees the reassembled clone; the
        // original fragments are forwarded at the end (`forward_fragments`).
        if meta.frag != Frag::None {
            // Descriptions are made only for a drop or a hand-off: formatting one per held
            // fragment cost more than holding it.
            let outcome = self.defrag.push(now, f.pkt, ingress);
            self.defrag_aftermath(now);
            match outcome {
                Outcome::Held => {}
                Outcome::Dropped(why) => {
                    let (why, hook) = (why.into(), Some(Hook::Prerouting));
                    self.drop_packet(why, hook, None, Some(ingress), || meta.describe());
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
                                    describe: meta.describe(),
                                });
                            } else {
                                self.drop_packet(
                                    DropReason::ShardHandoffFull,
                                    Some(Hook::Prerouting),
                                    None,
                                    Some(ingress),
                                    || meta.describe(),
                                );
                            }
                            return;
                        }
                    }
                    if let Some(mut f) = self.adopt_datagram(d, ingress, || meta.describe()) {
                        self.pipeline(&mut f);
                    }
                }
            }
            return;
        }
        f.offload = offload;
        self.pipeline(&mut f);
    }

    /// Takes a reassembled datagram as the packet to process: its originals travel with it
    /// (`InFlight::frag`) until the verdict. `None` (counted) if the clone does not parse.
    pub(super) fn adopt_datagram(
        &mut self,
        d: l3proto::defrag::Datagram,
        ingress: IfaceId,
        describe: impl FnOnce() -> String,
    ) -> Option<InFlight> {
        match Meta::of(d.clone.as_slice()) {
            Ok(m) if m.frag == Frag::None => {
                let mut f = InFlight::new(d.clone, m, Some(ingress));
                f.frag = Some(Box::new(FragPending {
                    fragments: d.fragments,
                    first: d.first,
                    before: (m.src, m.dst, m.sport, m.dport),
                }));
                Some(f)
            }
            _ => {
                self.drop_packet(
                    DropReason::FragCloneMalformed,
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
        let ingress = h.ingress;
        let done = panic::catch_unwind(AssertUnwindSafe(|| {
            if let Some(mut f) = self.adopt_datagram(h.datagram, h.ingress, || h.describe) {
                self.pipeline(&mut f);
            }
        }));
        if let Err(p) = done {
            self.contain_panic(p, Some(ingress));
        }
    }
}
