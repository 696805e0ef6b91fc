//! Conntrack glue: the packet's connection (found, new, or the one an ICMP error quotes) and its
//! insertion at confirm.

use super::*;
use conntrack::Invalid;

impl Engine {
    // ------------------------------------------------------------ conntrack

    /// Inlined: its `Ct` result, returned through memory, was copied out with a wide load
    /// over the narrower stores that built it (a store-forwarding stall per packet).
    #[inline(always)]
    pub(super) fn conntrack_in(&mut self, meta: &Meta, pkt: &[u8], verify: bool, zone: u16) -> Ct {
        if meta.frag != Frag::None {
            // Reassembly is not there yet: fragments are not tracked.
            return Ct::Untracked;
        }
        // The packet was validated when `meta` was built: reuse that parse.
        let Some(l4) = pkt.get(meta.l4_offset..meta.len) else {
            return Ct::Invalid(Invalid::L4OutsidePacket);
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
            Err(e) => return Ct::Invalid(e),
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
                // Acknowledgements of a stream a helper rewrote count the rewritten bytes.
                let ack_offset = if meta.proto == 6 {
                    match c.ext.as_deref().and_then(|e| e.seqadj) {
                        Some(adj) => ack_offset(&adj, dir, l4pkt.data),
                        None => 0,
                    }
                } else {
                    0
                };
                let mut cx = ConnCtx {
                    dir,
                    status: &mut c.status,
                    now,
                    tuples: &c.tuples,
                    ack_offset,
                };
                match l4.packet(&mut c.l4, &mut cx, &l4pkt) {
                    L4Verdict::Accept { timeout } => {
                        // RFC 4787: a mapped UDP flow refreshes its mapping,
                        // and with outbound-only refresh (REQ-6) only packets
                        // from the internal endpoint extend its life.
                        let eim = if self.nat_cfg.udp_eim && mapping::applies(meta.proto) {
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
                        return Ct::Invalid(why);
                    }
                    L4Verdict::Reopen => {
                        self.ct.remove(id, now, "reopen");
                        continue;
                    }
                }
            }
            return self.new_conn(tuple, &l4pkt, meta);
        }
        Ct::Invalid(Invalid::ReopenLoop)
    }

    /// An ICMP error: RELATED to the connection of the packet it quotes. Apart from the
    /// per-packet path, which only tests the type.
    #[cold]
    #[inline(never)]
    pub(super) fn conntrack_icmp_error(
        &mut self,
        meta: &Meta,
        l4: &[u8],
        verify: bool,
        zone: u16,
    ) -> Ct {
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
                None => Ct::Invalid(Invalid::IcmpErrorForUnknown),
            },
            Err(e) => Ct::Invalid(e),
        }
    }

    pub(super) fn new_conn(&mut self, tuple: Tuple, l4pkt: &L4Packet<'_>, meta: &Meta) -> Ct {
        let now = self.now;
        let state = match self.l4.new_conn(l4pkt, now) {
            Ok(s) => s,
            Err(e) => return Ct::Invalid(e),
        };
        let mut conn = Box::new(Conn::new(tuple, tuple.invert(), state, now));
        let mut related = false;
        if let Some(exp) = self.ct.take_expectation(&tuple, now) {
            related = true;
            conn.status.insert(Status::EXPECTED);
            // An expected connection carries its master's mark (as the kernel copies it
            // in init_conntrack).
            conn.mark = self.ct.get(exp.master).map_or(0, |m| m.mark);
            if let Some(nat) = exp.nat {
                // Its NAT follows the master's (nf_nat_follow_master), bound here so that
                // the nat table never sees it: the source becomes what the master's peer
                // knows, the destination the endpoint the helper's message announced.
                conn.tuples[1] = Tuple {
                    src: nat.dst,
                    dst: nat.src,
                    src_id: nat.dst_port,
                    dst_id: tuple.src_id,
                    proto: tuple.proto,
                    zone: tuple.zone,
                };
                if nat.src != tuple.src {
                    conn.status.insert(Status::SRC_NAT | Status::SRC_NAT_DONE);
                }
                if (nat.dst, nat.dst_port) != (tuple.dst, tuple.dst_id) {
                    conn.status.insert(Status::DST_NAT | Status::DST_NAT_DONE);
                }
            }
            let ext = conn.ext_mut();
            ext.master = Some(exp.master);
            ext.master_helper = Some(exp.helper);
            if let Some(child) = exp.child_helper {
                ext.helper = Some(child);
            }
        } else if self.nat_cfg.udp_eif && mapping::applies(tuple.proto) {
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
            ack_offset: 0,
        };
        match self.l4.packet(l4, &mut cx, l4pkt) {
            L4Verdict::Accept { timeout } => {
                conn.expires = now + timeout;
                conn.account(Dir::Original, meta.len);
                Ct::New { conn, related }
            }
            L4Verdict::Invalid(e) => Ct::Invalid(e),
            L4Verdict::Reopen => Ct::Invalid(Invalid::ReopenOfNew),
        }
    }

    /// The confirm step: a new connection enters the table when its first
    /// packet leaves the pipeline accepted. Returns false if the packet must
    /// be dropped (table full, clash).
    pub(super) fn confirm(
        &mut self,
        ct: Ct,
        meta: &Meta,
        ingress: Option<IfaceId>,
        hook: Hook,
    ) -> bool {
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
                        self.count_drop_hook(DropReason::CtTupleTakenByShard, hook, meta, ingress);
                        return false;
                    }
                }
            }
        }
        let r = self.ct.confirm(*conn, self.now);
        if let (Err(_), Some(sh)) = (&r, &self.shard) {
            published.iter().flatten().for_each(|t| sh.unpublish(t));
        }
        if !self.pending_expects.is_empty() {
            match r {
                Ok(id) => self.confirm_expects(id),
                Err(_) => self.pending_expects.clear(),
            }
        }
        match r {
            Ok(_) => true,
            Err(ConfirmError::TableFull) => {
                self.ct.count_drop();
                self.count_drop_hook(DropReason::CtTableFull, hook, meta, ingress);
                false
            }
            Err(ConfirmError::Clash(_)) => {
                self.count_drop_hook(DropReason::CtInsertClash, hook, meta, ingress);
                false
            }
        }
    }
}

/// `nf_ct_seq_offset` for a TCP segment `l4` of direction `dir`: by how much the other
/// direction's rewrites moved the point its acknowledgement names.
#[cold]
fn ack_offset(adj: &[conntrack::conn::SeqAdj; 2], dir: Dir, l4: &[u8]) -> u32 {
    let Some(b) = l4.get(8..12) else {
        return 0;
    };
    let ack = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let a = nat::mangle::SeqAdjusted::of(adj, dir);
    ack.wrapping_sub(a.ack(ack))
}
