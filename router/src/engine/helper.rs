//! The helper stage (`NF_IP_PRI_CONNTRACK_HELPER`, after every table and before confirm, at
//! INPUT and POSTROUTING): a helped connection's packet goes to its helper, whose
//! expectations enter the table and whose announced addresses are rewritten for NAT; then
//! the sequence adjustment of earlier rewrites applies to every TCP packet of the
//! connection. What a helper knows lives in the `helpers` crate; this file is the glue
//! (nf_conntrack_helper's and nf_nat_helper's part).

use super::*;
use conntrack::expect::{ExpectError, ExpectLimits, ExpectNat, Expectation};
use conntrack::tuple::TupleMask;
use helpers::{ExpectRequest, Helper, HelperOutput, HelperPacket};
use nat::mangle::{self, Rewrite, SeqAdjusted};

/// Most ports tried above an announced one for an expectation under NAT (Linux tries up
/// to 65535; the table's clash test is what moves it on).
const PORT_TRIES: u16 = 128;

/// A handle for an expectation whose master is still unconfirmed (the first packet of a
/// TFTP request, of a talk lookup): replaced by the master's at confirm.
const UNCONFIRMED: u32 = u32::MAX;

impl Engine {
    /// The helper to attach to a new connection: an expectation's child helper, the raw
    /// table's `CT --helper`, or, with `auto_assign`, the one registered for its port.
    pub(super) fn helper_for_new(&self, chosen: u8, t: &Tuple) -> Option<&'static str> {
        if let Some(i) = usize::from(chosen).checked_sub(1) {
            return self.helpers.names().nth(i);
        }
        if !self.helper_auto {
            return None;
        }
        self.helpers.by_port(t.proto, t.dst_id).map(|h| h.name())
    }

    /// Gives a new connection its helper, if it gets one (conntrack stage, after the raw
    /// table chose with `CT --helper`).
    pub(super) fn attach_helper(&self, f: &mut InFlight) {
        let Ct::New { conn, .. } = &mut f.ct else {
            return;
        };
        if conn.ext.as_ref().is_some_and(|e| e.helper.is_some()) {
            return; // an expectation's child helper
        }
        if let Some(h) = self.helper_for_new(f.skb.helper, &conn.tuples[0]) {
            conn.ext_mut().helper = Some(h);
        }
    }

    /// The byte `Skb::helper` holds for the helper called `name` (0: none).
    #[cold]
    pub(super) fn helper_index(&self, name: &str) -> u8 {
        self.helpers
            .names()
            .position(|n| n == name)
            .and_then(|i| u8::try_from(i + 1).ok())
            .unwrap_or(0)
    }

    /// The helper stage. False when the packet was dropped (an unwritable rewrite).
    pub(super) fn helper_stage(&mut self, hook: Hook, f: &mut InFlight) -> bool {
        let (conn, dir) = match &mut f.ct {
            Ct::Known {
                id,
                dir,
                related: false,
            } => match self.ct.get_mut(*id) {
                Some(c) => (c, *dir),
                None => return true,
            },
            Ct::New { conn, .. } => (&mut **conn, Dir::Original),
            _ => return true,
        };
        let Some(ext) = conn.ext.as_deref_mut() else {
            return true;
        };
        let tcp = f.meta.proto == 6;
        let Some(name) = ext.helper else {
            // A connection whose helper left (reload) still needs its sequence adjustment.
            if let (true, Some(adj)) = (tcp, ext.seqadj) {
                seqadj(f, &adj, dir);
            }
            return true;
        };
        let Some(helper) = self.helpers.get(name).cloned() else {
            return true;
        };
        let bytes = f.pkt.as_slice();
        let pay = mangle::payload_offset(bytes, f.meta.l4_offset, f.meta.proto)
            .filter(|&p| p <= f.meta.len)
            .unwrap_or(f.meta.len);
        let seq = if tcp {
            bytes
                .get(f.meta.l4_offset + 4..f.meta.l4_offset + 8)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        } else {
            None
        };
        let mut out = HelperOutput::default();
        let tuples = conn.tuples;
        let nat = conn.status.0 & (Status::SRC_NAT | Status::DST_NAT) != 0;
        if pay < f.meta.len {
            let state = ext.helper_data.get_or_insert_with(|| helper.new_state());
            let chunk: &[u8] = &bytes[pay..f.meta.len];
            let pkt = HelperPacket {
                now: self.now,
                dir,
                tuples: &tuples,
                nat,
                seq,
                payload: &[chunk],
            };
            helper.handle(&mut **state, &pkt, &mut out);
        }
        let had_adj = ext.seqadj.is_some();
        if out.expects.is_empty() && out.events.is_empty() && out.rewrites.is_empty() && !had_adj {
            return true;
        }
        let master = match &f.ct {
            Ct::Known { id, .. } => Some(*id),
            _ => None,
        };
        self.helper_output(&*helper, hook, f, out, master, dir, tuples, nat, seq)
    }

    /// Reports the helper's events, registers its expectations (choosing the NAT port),
    /// rewrites what the master's NAT changes, and applies sequence adjustment.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    fn helper_output(
        &mut self,
        helper: &dyn Helper,
        hook: Hook,
        f: &mut InFlight,
        out: HelperOutput,
        master: Option<ConnId>,
        dir: Dir,
        tuples: [Tuple; 2],
        nat: bool,
        seq: Option<u32>,
    ) -> bool {
        // What an earlier packet that never reached its confirm left behind.
        if master.is_none() {
            self.pending_expects.clear();
        }
        let name = helper.name();
        for ev in &out.events {
            let action = ev.kind.name();
            self.helper_event(name, action, ev.detail.clone(), &f.meta);
        }
        let policy = helper.policy();
        // No helper may hold more than half the table, so that a flood of one protocol's
        // announcements leaves room for the others'.
        let limits = ExpectLimits {
            per_master: policy.max_expected,
            per_helper: (self.ct.config().expect_max / 2).max(1),
        };
        let expires = self.now + policy.timeout;
        let mut rewrites = Vec::new();
        for req in &out.expects {
            match self.expect_one(name, req, master, &tuples, nat, limits, expires) {
                Ok(Some((addr, port))) => {
                    if let Some(site) = req.site {
                        let with = helper.nat_format(site.kind, addr, port);
                        let detail = format!(
                            "{}:{} announced as {}",
                            req.dst,
                            req.dst_port,
                            announcement(&with)
                        );
                        self.helper_event(name, "rewrite", detail, &f.meta);
                        rewrites.push(Rewrite {
                            offset: site.offset,
                            len: site.len,
                            with,
                        });
                    }
                }
                Ok(None) => {}
                Err(why) => {
                    let detail = format!("{}:{}: {}", req.dst, req.dst_port, why);
                    self.helper_event(name, "expect-failed", detail, &f.meta);
                }
            }
        }
        // Announcements of the master's own endpoints, rewritten as its NAT made them.
        for rw in &out.rewrites {
            let with = helper.nat_format(rw.site.kind, rw.addr, rw.port);
            let detail = format!(
                "{} announced as {}",
                helpers_endpoint(rw.addr, rw.port),
                announcement(&with)
            );
            self.helper_event(name, "rewrite", detail, &f.meta);
            rewrites.push(Rewrite {
                offset: rw.site.offset,
                len: rw.site.len,
                with,
            });
        }
        let (tcp, partial) = (f.meta.proto == 6, f.partial_csum());
        if !rewrites.is_empty() {
            if f.frag.is_some() {
                // The fragments are what leaves, and their payload is not rewritten: refuse
                // rather than send an announcement NAT made wrong.
                self.count_drop_hook(DropReason::HelperFragmented, hook, &f.meta, f.ingress);
                return false;
            }
            let grow = match mangle::mangle_payload(
                &mut f.pkt,
                f.meta.l4_offset,
                f.meta.proto,
                &mut rewrites,
                partial,
            ) {
                Ok(g) => g,
                Err(e) => {
                    self.count_drop_hook(e.into(), hook, &f.meta, f.ingress);
                    return false;
                }
            };
            f.meta.len = f.pkt.len();
            if let (true, Some(seq), true) = (tcp, seq, grow != 0) {
                let conn = match &mut f.ct {
                    Ct::Known { id, .. } => self.ct.get_mut(*id),
                    Ct::New { conn, .. } => Some(&mut **conn),
                    _ => None,
                };
                if let Some(c) = conn {
                    let adj = c.ext_mut().seqadj.get_or_insert_default();
                    mangle::seqadj_record(adj, dir, seq, grow as i32);
                }
            }
        }
        if tcp {
            let adj = match &f.ct {
                Ct::Known { id, .. } => self.ct.get(*id).and_then(|c| c.ext.as_ref()?.seqadj),
                Ct::New { conn, .. } => conn.ext.as_ref().and_then(|e| e.seqadj),
                _ => None,
            };
            if let Some(adj) = adj {
                seqadj(f, &adj, dir);
            }
        }
        true
    }

    /// One expectation: its tuple and mask from the request, and under NAT the port the
    /// other side must use (the first one free at or above the announced one) and the
    /// translation the expected connection gets. Returns the address and port to announce,
    /// or `None` when it waits for its master's confirm.
    #[allow(clippy::too_many_arguments)]
    fn expect_one(
        &mut self,
        name: &'static str,
        req: &ExpectRequest,
        master: Option<ConnId>,
        tuples: &[Tuple; 2],
        nat: bool,
        limits: ExpectLimits,
        expires: Instant,
    ) -> Result<Option<(IpAddr, u16)>, ExpectError> {
        let any = match req.dst {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        };
        let mask = TupleMask {
            src_prefix: if req.src.is_some() { 128 } else { 0 },
            src_id: if req.src_port.is_some() { 0xffff } else { 0 },
            dst_id: 0xffff,
        };
        let d = req.dir.index();
        let other = req.dir.flip().index();
        let mut tuple = Tuple {
            src: req.src.unwrap_or(any),
            dst: req.dst,
            src_id: req.src_port.unwrap_or(0),
            dst_id: req.dst_port,
            proto: req.proto,
            zone: tuples[0].zone,
        };
        let mut follow = None;
        if nat {
            if req.site.is_some() {
                // The other side must use the address it knows for the announcer.
                tuple.dst = tuples[d].dst;
                follow = Some(ExpectNat {
                    src: tuples[other].dst,
                    dst: req.dst,
                    dst_port: req.dst_port,
                });
            } else {
                // To the master's peer endpoint (TFTP: the client's port), or where the
                // helper says (talk: the caller's daemon, not its client port).
                let (dst, dst_port) = req
                    .nat_to
                    .unwrap_or((tuples[other].src, tuples[other].src_id));
                follow = Some(ExpectNat {
                    src: tuples[other].dst,
                    dst,
                    dst_port,
                });
            }
        }
        // RTP and RTCP come as a pair: the even port and the next, each following the
        // master's NAT to the announced pair (nf_nat_h323's port pair choice).
        let (base, step, members) = if req.rtp_pair {
            (req.dst_port & !1, 2, 2)
        } else {
            (req.dst_port, 1, 1)
        };
        let make = |t: Tuple, m: ConnId, member: u16| {
            let mut e = Expectation::new(m, t, mask, expires, name, req.dir);
            e.permanent = req.permanent;
            let follow = follow.map(|n| match req.rtp_pair {
                true => ExpectNat {
                    dst_port: (n.dst_port & !1) + member,
                    ..n
                },
                false => n,
            });
            e.nat = follow.filter(|n| (n.src, n.dst, n.dst_port) != (t.src, t.dst, t.dst_id));
            e.child_helper = req.child_helper;
            e
        };
        let tries = if nat && req.site.is_some() {
            PORT_TRIES
        } else {
            1
        };
        let mut last = ExpectError::Clash;
        'ports: for k in 0..tries {
            let Some(port) = base
                .checked_add(k * step)
                .filter(|p| p.checked_add(members - 1).is_some())
            else {
                break;
            };
            let at = |member: u16| Tuple {
                dst_id: port + member,
                ..tuple
            };
            let announced = port + (req.dst_port - base);
            match master {
                Some(m) => {
                    let mut made: Option<u32> = None;
                    for member in 0..members {
                        match self
                            .ct
                            .expect(make(at(member), m, member), limits, self.now)
                        {
                            Ok(id) => made = Some(id),
                            Err(e) => {
                                // The pair's first port is no use without the second.
                                if let Some(id) = made {
                                    self.ct.remove_expectation(id, self.now);
                                }
                                if e == ExpectError::Clash {
                                    last = e;
                                    continue 'ports;
                                }
                                return Err(e);
                            }
                        }
                    }
                    return Ok(Some((tuple.dst, announced)));
                }
                None => {
                    let unconfirmed = ConnId::from_raw(UNCONFIRMED, UNCONFIRMED);
                    let all: Vec<Expectation> = (0..members)
                        .map(|member| make(at(member), unconfirmed, member))
                        .collect();
                    if all
                        .iter()
                        .any(|e| self.ct.expectations().would_clash(e, self.now))
                    {
                        continue;
                    }
                    self.pending_expects
                        .extend(all.into_iter().map(|e| (e, limits)));
                    return Ok(Some((tuple.dst, announced)));
                }
            }
        }
        Err(last)
    }

    /// Registers the expectations of a connection its confirm just inserted as `id`.
    pub(super) fn confirm_expects(&mut self, id: ConnId) {
        for (mut e, limits) in std::mem::take(&mut self.pending_expects) {
            e.master = id;
            let name = e.helper;
            if let Err(why) = self.ct.expect(e, limits, self.now) {
                *self
                    .helper_stats
                    .entry((name, "expect-failed"))
                    .or_default() += 1;
                let _ = why;
            }
        }
    }

    /// Counts a helper action and reports it.
    pub(super) fn helper_event(
        &mut self,
        helper: &'static str,
        action: &'static str,
        detail: String,
        meta: &Meta,
    ) {
        *self.helper_stats.entry((helper, action)).or_default() += 1;
        if self.events_enabled {
            self.push_event(Event::Helper(event::HelperRecord {
                at: self.now,
                helper,
                action,
                detail,
                packet: meta.describe(),
            }));
        }
    }
}

/// The bytes written over a site, for an event: as text when they are (FTP, talk's are
/// not), else in hex (H.323's PER octets).
fn announcement(with: &[u8]) -> String {
    if with.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        String::from_utf8_lossy(with).into_owned()
    } else {
        with.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// `a.b.c.d:p` or `[v6]:p`.
fn helpers_endpoint(addr: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(addr, port).to_string()
}

/// Applies a connection's sequence adjustment to its TCP packet `f` of direction `dir`.
fn seqadj(f: &mut InFlight, adj: &[conntrack::conn::SeqAdj; 2], dir: Dir) {
    let partial = f.partial_csum();
    let a = SeqAdjusted::of(adj, dir);
    mangle::seqadj_apply(f.pkt.as_mut_slice(), f.meta.l4_offset, &a, partial);
}
