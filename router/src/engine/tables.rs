//! Ruleset glue: evaluating one table for a packet, and what its side effects do (marks, zones,
//! TRACE, TCPMSS, LOG).

use super::*;

impl Engine {
    // ---------------------------------------------------------------- rules

    /// Reports a traced packet's steps through one table: an event each (the
    /// simulator's event log, the control socket's trace stream) and a log
    /// line, like `xtables-monitor --trace`. The packet gets its trace id at
    /// its first step.
    pub(super) fn trace_steps(
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
    pub(super) fn trace_table(
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
    pub(super) fn tcpmss_want(
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
    pub(super) fn has_rules(&self, family: Family, table: Table) -> bool {
        match family {
            Family::V4 => self.rules4.has_table(table),
            Family::V6 => self.rules6.has_table(table),
        }
    }

    /// Evaluates `table` at `hook` for a packet. Inlined so that the common case, a table
    /// the ruleset does not have, costs one test instead of a call.
    #[inline(always)]
    pub(super) fn run_table(&mut self, table: Table, hook: Hook, f: &mut InFlight) -> Verdict {
        let rs = match f.meta.family {
            Family::V4 => &*self.rules4,
            Family::V6 => &*self.rules6,
        };
        if !rs.has_table(table) {
            return Verdict::Accept;
        }
        // The raw table runs before conntrack: it sees every packet as untracked.
        let ctstate = if table == Table::Raw {
            CtState::UNTRACKED
        } else {
            f.ct.state(&self.ct)
        };
        let (meta, skb) = (&f.meta, &f.skb);
        // A stateful chain's usual first rule decides established traffic from the state
        // alone; a traced packet takes the full path, which reports each rule.
        if skb.trace.is_none() && rs.accept_by_state(table, hook, ctstate, meta.len as u32) {
            if table == Table::Nat {
                self.last_nat = None;
            }
            return Verdict::Accept;
        }
        self.run_table_rules(table, hook, f, ctstate)
    }

    #[inline(never)]
    pub(super) fn run_table_rules(
        &mut self,
        table: Table,
        hook: Hook,
        f: &mut InFlight,
        ctstate: CtState,
    ) -> Verdict {
        let InFlight {
            pkt,
            meta,
            ct,
            skb,
            ingress: in_iface,
            egress: out_iface,
            frag,
            ..
        } = f;
        let (meta, pkt, in_iface, out_iface) = (&*meta, &*pkt, *in_iface, *out_iface);
        // The raw table runs before conntrack: no connection (and no connmark) yet.
        let ct = (table != Table::Raw).then_some(&*ct);
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
                master_helper: c.ext.as_deref().and_then(|e| e.master_helper),
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
        let segments: Vec<&[u8]> = match &*frag {
            Some(f) => fragment_segments(pkt.as_slice(), &f.fragments),
            None => Vec::new(),
        };
        let ctx = PacketCtx {
            family: meta.family,
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
        if let Some(h) = out.ct_helper {
            skb.helper = self.helper_index(h);
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
}
