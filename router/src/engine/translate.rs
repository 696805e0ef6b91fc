//! NAT glue: binding the nat table's choice (a unique reply tuple, RFC 4787 mappings, the null
//! binding) and rewriting every packet of a NATed connection.

use super::*;

impl Engine {
    // ------------------------------------------------------------------ nat

    /// The nat step of a hook: for the first packet of a connection, bind
    /// the target the nat table chose (pick a unique reply tuple); then, for
    /// every packet of a NATed connection, rewrite the `manip` end. Returns
    /// false when the packet was dropped (no free mapping, or unwritable).
    #[inline(always)]
    pub(super) fn nat_step(
        &mut self,
        f: &mut InFlight,
        manip: Manip,
        iface: Option<IfaceId>,
        hook: Hook,
    ) -> bool {
        // Most packets: nothing to bind and a connection without NAT. Decided inline.
        if self.last_nat.is_none() {
            let nat = Status::SRC_NAT | Status::DST_NAT;
            let plain = match &f.ct {
                Ct::Untracked | Ct::Invalid(_) => true,
                Ct::Known { id, .. } => self.ct.get(*id).is_none_or(|c| c.status.0 & nat == 0),
                // A new connection's source may still need a null binding (below).
                Ct::New { conn, .. } => {
                    conn.status.0 & nat == 0
                        && !(manip == Manip::Src && self.has_rules(f.meta.family, Table::Nat))
                }
            };
            if plain {
                return true;
            }
        }
        let partial = f.partial_csum();
        let InFlight {
            ct,
            pkt,
            meta,
            ingress,
            ..
        } = f;
        self.nat_step_full(ct, manip, iface, pkt, meta, hook, *ingress, partial)
    }

    /// netfilter's null binding, at the last source-NAT hook of a new connection that no rule
    /// translated (only where the ruleset has a nat table, as only a loaded `iptable_nat`
    /// does it): the source stays, unless the reply tuple is already another connection's
    /// (typically a masqueraded one that picked this port first). Then the source port moves
    /// to a free one of the same class, and the connection becomes source-NATed. False when
    /// no port is free.
    pub(super) fn null_binding(&mut self, conn: &mut Conn<AnyState>) -> bool {
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
    pub(super) fn nat_step_full(
        &mut self,
        ct: &mut Ct,
        manip: Manip,
        iface: Option<IfaceId>,
        pkt: &mut PacketBuf,
        meta: &mut Meta,
        hook: Hook,
        ingress: Option<IfaceId>,
        partial: bool,
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
                    self.count_drop_hook(DropReason::NatNoFreePort, hook, meta, ingress);
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
                    self.nat_cfg.udp_eim && manip == Manip::Src && mapping::applies(orig.proto);
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
                        self.count_drop_hook(DropReason::NatNoFreePort, hook, meta, ingress);
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
                partial,
            )
        };
        if !ok {
            self.count_drop_hook(DropReason::NatCannotRewrite, hook, meta, ingress);
            return false;
        }
        match Meta::of(pkt.as_slice()) {
            Ok(m) => {
                *meta = m;
                true
            }
            Err(_) => {
                self.count_drop_hook(DropReason::NatCannotRewrite, hook, meta, ingress);
                false
            }
        }
    }
}
