//! The fuzz harness of the L3 and L4 modules with the connection table, kept in the library
//! so that the cargo-fuzz target (`fuzz/fuzz_targets/conntrack.rs`) and the regression replay
//! in the normal test suite (`tests/tests/fuzz_replay.rs`) run the very same code.
//!
//! Input layout: `[settings, records..]`, records as [`wire::fuzzing::records`]: each is one
//! packet, tracked the way the engine's conntrack step does it (`l3proto::parse`, ICMP
//! errors related through `l3proto::icmp_error_tuple`, `ids`, lookup, `packet`, a reopen
//! destroying the old connection, `new_conn` and confirm). The record's control byte moves
//! the clock (bits 0-2, see `l3proto::fuzzing::step`), makes checksums right first (bit 3),
//! puts the packet in zone 1 (bit 4), re-points the newest connection's reply tuple as NAT
//! would (bit 5), registers an expectation for the packet's reply (bit 6), and runs a GC
//! sweep (bit 7). The settings byte picks the TCP options, checksum verification and a small
//! table size, so that early drop and a full table are reached.
//!
//! Checked, besides "no panic": the table never holds more than its maximum; every
//! connection is found by both of its tuples in the direction they belong to; a packet
//! accepted for a connection is found in that connection afterwards; a RELATED error is
//! about a connection that holds the quoted tuple's inverse; and the table's listing,
//! events and statistics render.

use conntrack::proto::Frag;
use conntrack::{
    ConnCtx, ConnId, ConnTable, Dir, Expectation, Instant, L4Packet, L4Proto, ProtoState, Status,
    TableConfig, Tuple, TupleMask, Verdict,
};

use crate::{AnyState, L4Modules, TcpConfig, Timeouts};

/// Decodes `data` and checks the tracker's invariants; panics on a violation.
pub fn run(data: &[u8]) {
    let Some((&settings, rest)) = data.split_first() else {
        return;
    };
    let mut t = Tracker::new(settings);
    for (ctl, bytes) in wire::fuzzing::records(rest) {
        t.now = t.now + l3proto::fuzzing::step(ctl);
        let mut pkt = bytes.to_vec();
        if ctl & 8 != 0 {
            wire::fuzzing::fix_checksums(&mut pkt);
        }
        let zone = u16::from(ctl >> 4 & 1);
        t.packet(&pkt, zone, ctl);
        if ctl & 0x80 != 0 {
            t.table.gc(t.now);
        }
        t.check();
    }
    t.table.flush(t.now);
    assert!(t.table.is_empty(), "connections left after a flush");
    while t.table.poll_event().is_some() {}
}

struct Tracker {
    l4: L4Modules,
    table: ConnTable<AnyState>,
    verify: bool,
    now: Instant,
    newest: Option<ConnId>,
}

impl Tracker {
    fn new(settings: u8) -> Tracker {
        let tcp = TcpConfig {
            be_liberal: settings & 1 != 0,
            loose: settings & 2 == 0,
            max_retrans: settings >> 2 & 3,
        };
        let mut table = ConnTable::new(TableConfig {
            max: 1 + usize::from(settings >> 5),
            hash_seed: u64::from(settings),
            gc_budget: 4,
            early_drop_scan: 4,
            expect_max: 4,
            event_queue: 64,
        });
        table.set_events(true);
        Tracker {
            l4: L4Modules::new(Timeouts::default(), tcp),
            table,
            verify: settings & 0x10 == 0,
            now: Instant::from_secs(1_000),
            newest: None,
        }
    }

    /// One packet through the conntrack step.
    fn packet(&mut self, pkt: &[u8], zone: u16, ctl: u8) {
        let Ok(l3) = l3proto::parse(pkt) else {
            return;
        };
        // Fragments wait for reassembly (a harness of their own); the tracker never sees one.
        if l3.frag != Frag::None {
            return;
        }
        let l4pkt = L4Packet {
            family: l3.family,
            src: l3.src,
            dst: l3.dst,
            proto: l3.proto,
            data: l3.l4,
            verify_checksum: self.verify,
        };
        if self.l4.is_untracked(&l4pkt) {
            return;
        }
        if l3proto::is_icmp_error(&l3) {
            if let Ok(inner) = l3proto::icmp_error_tuple(&l3, &self.l4, self.verify) {
                let want = Tuple {
                    zone,
                    ..inner.invert()
                };
                if let Some((id, dir)) = self.table.lookup(&want, self.now) {
                    let c = self.table.get(id).expect("looked-up connection");
                    assert_eq!(c.tuples[dir.index()], want, "RELATED to another connection");
                }
            }
            return;
        }
        let Ok((src_id, dst_id)) = self.l4.ids(&l4pkt) else {
            return;
        };
        let tuple = Tuple {
            src: l3.src,
            dst: l3.dst,
            src_id,
            dst_id,
            proto: l3.proto,
            zone,
        };
        let now = self.now;
        for _ in 0..2 {
            if let Some((id, dir, c)) = self.table.lookup_mut(&tuple, now) {
                assert_eq!(c.tuples[dir.index()], tuple, "lookup found another tuple");
                let seen_reply_now = dir == Dir::Reply && !c.status.contains(Status::SEEN_REPLY);
                if seen_reply_now {
                    c.status.insert(Status::SEEN_REPLY);
                }
                let mut cx = ConnCtx {
                    dir,
                    status: &mut c.status,
                    now,
                    tuples: &c.tuples,
                    ack_offset: 0,
                };
                match self.l4.packet(&mut c.l4, &mut cx, &l4pkt) {
                    Verdict::Accept { timeout } => {
                        c.expires = now + timeout;
                        c.account(dir, l3.len);
                        let _ = (c.l4.state_name(), c.l4.state_id());
                        self.table.emit_update(id, now);
                        self.maybe_expect(id, &tuple, ctl);
                    }
                    Verdict::Invalid(_) => {
                        if seen_reply_now {
                            c.status.remove(Status::SEEN_REPLY);
                        }
                    }
                    Verdict::Reopen => {
                        self.table.remove(id, now, "reopen");
                        assert!(self.table.peek(&tuple).is_none(), "reopened tuple still in");
                        continue;
                    }
                }
                return;
            }
            self.new_conn(tuple, &l4pkt, l3.len, ctl);
            return;
        }
    }

    fn new_conn(&mut self, tuple: Tuple, l4pkt: &L4Packet<'_>, len: usize, ctl: u8) {
        let now = self.now;
        let Ok(state) = self.l4.new_conn(l4pkt, now) else {
            return;
        };
        let mut conn = conntrack::Conn::new(tuple, tuple.invert(), state, now);
        if let Some(exp) = self.table.take_expectation(&tuple, now) {
            conn.status.insert(Status::EXPECTED);
            conn.ext_mut().master = Some(exp.master);
        }
        let conntrack::Conn {
            l4, status, tuples, ..
        } = &mut conn;
        let mut cx = ConnCtx {
            dir: Dir::Original,
            status,
            now,
            tuples,
            ack_offset: 0,
        };
        match self.l4.packet(l4, &mut cx, l4pkt) {
            Verdict::Accept { timeout } => {
                conn.expires = now + timeout;
                conn.account(Dir::Original, len);
            }
            Verdict::Invalid(_) => return,
            Verdict::Reopen => panic!("reopen of a connection being created"),
        }
        if let Ok(id) = self.table.confirm(conn, now) {
            assert_eq!(
                self.table.peek(&tuple).map(|(i, _)| i),
                Some(id),
                "confirmed connection not found by its tuple"
            );
            self.newest = Some(id);
            if ctl & 0x20 != 0 {
                self.nat(id, &tuple);
            }
        }
    }

    /// Re-points the reply tuple as source NAT would (another port of another address).
    fn nat(&mut self, id: ConnId, orig: &Tuple) {
        let mut reply = orig.invert();
        reply.dst = match reply.dst {
            std::net::IpAddr::V4(_) => "203.0.113.1".parse().expect("address"),
            std::net::IpAddr::V6(_) => "2001:db8:ffff::1".parse().expect("address"),
        };
        reply.dst_id = reply.dst_id.wrapping_add(1);
        if self.table.set_reply_tuple(id, reply) {
            let found = self.table.peek(&reply).map(|(i, _)| i);
            assert_eq!(found, Some(id), "NATed reply");
        }
    }

    /// An expectation for the reply of the packet's flow on the next port up (as a helper
    /// announces a data connection).
    fn maybe_expect(&mut self, master: ConnId, tuple: &Tuple, ctl: u8) {
        if ctl & 0x40 == 0 {
            return;
        }
        let mut t = tuple.invert();
        t.dst_id = t.dst_id.wrapping_add(1);
        let mask = TupleMask {
            src_id: 0,
            ..TupleMask::EXACT
        };
        let exp = Expectation::new(
            master,
            t,
            mask,
            self.now + std::time::Duration::from_secs(30),
            "fuzz",
            Dir::Reply,
        );
        let limits = conntrack::ExpectLimits {
            per_master: 2,
            per_helper: 64,
        };
        let _ = self.table.expect(exp, limits, self.now);
    }

    /// The table's invariants.
    fn check(&mut self) {
        let max = self.table.config().max;
        assert!(
            self.table.len() <= max,
            "{} connections, max {max}",
            self.table.len()
        );
        let mut n = 0;
        for (id, c) in self.table.iter() {
            n += 1;
            if c.tuples[1] == c.tuples[0] {
                // A flow to itself (same address and ports both ways): either entry answers.
                assert_eq!(self.table.peek(&c.tuples[0]).map(|(i, _)| i), Some(id));
            } else {
                assert_eq!(self.table.peek(&c.tuples[0]), Some((id, Dir::Original)));
                assert_eq!(self.table.peek(&c.tuples[1]), Some((id, Dir::Reply)));
            }
            let info = conntrack::ConnInfo::of(c, self.now);
            let _ = (info.to_json(), info.to_string());
        }
        assert_eq!(n, self.table.len(), "listing and count disagree");
        assert!(self.table.expectations().len() <= 4);
        while let Some(e) = self.table.poll_event() {
            let _ = e.to_json();
        }
        if let Some(id) = self.newest {
            if let Some(c) = self.table.get(id) {
                assert!(c.status.contains(Status::CONFIRMED));
            }
        }
        let _ = (self.table.stats(), self.table.memory_usage());
    }
}
