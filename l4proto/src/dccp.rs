//! DCCP (RFC 4340) connection tracking.
//!
//! Each side has a role (client: the side that sent the Request; server);
//! the packet type, the sender's role and the state pick the next state from
//! a table following RFC 4340 §8 (REQUEST, RESPOND, PARTOPEN, OPEN,
//! CLOSEREQ, CLOSING, TIMEWAIT), with "ignore" entries for packets that may
//! mean conntrack lost sync, resynchronising when a Response answers an
//! ignored Request, as Linux does.

use crate::{addrs, Addrs, Timeouts};
use conntrack::{ConnCtx, Dir, Instant, Invalid, L4Packet, Status, Verdict};
use std::time::Duration;
use wire::{DccpPacket, DccpType, WireError};

/// DCCP connection states, named as Linux names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum DccpConntrack {
    /// Before the first packet was processed.
    None = 0,
    /// Request seen.
    Request,
    /// Response seen.
    Respond,
    /// Client acknowledged the Response.
    PartOpen,
    /// Server sent data or acknowledged: open.
    Open,
    /// Server asked the client to close.
    CloseReq,
    /// Close seen.
    Closing,
    /// Reset seen, or closed.
    TimeWait,
}

impl DccpConntrack {
    const ALL: [DccpConntrack; 8] = [
        DccpConntrack::None,
        DccpConntrack::Request,
        DccpConntrack::Respond,
        DccpConntrack::PartOpen,
        DccpConntrack::Open,
        DccpConntrack::CloseReq,
        DccpConntrack::Closing,
        DccpConntrack::TimeWait,
    ];

    /// The name `conntrack -L` prints.
    pub fn name(self) -> &'static str {
        match self {
            DccpConntrack::None => "NONE",
            DccpConntrack::Request => "REQUEST",
            DccpConntrack::Respond => "RESPOND",
            DccpConntrack::PartOpen => "PARTOPEN",
            DccpConntrack::Open => "OPEN",
            DccpConntrack::CloseReq => "CLOSEREQ",
            DccpConntrack::Closing => "CLOSING",
            DccpConntrack::TimeWait => "TIMEWAIT",
        }
    }
}

const RQ: u8 = 1;
const RS: u8 = 2;
const PO: u8 = 3;
const OP: u8 = 4;
const CR: u8 = 5;
const CG: u8 = 6;
const TW: u8 = 7;
const IG: u8 = 8;
const IV: u8 = 9;

/// `[role][packet type][old state]`, types in wire order (Request, Response,
/// Data, Ack, DataAck, CloseReq, Close, Reset, Sync, SyncAck); columns NONE,
/// REQUEST, RESPOND, PARTOPEN, OPEN, CLOSEREQ, CLOSING, TIMEWAIT.
const TABLE: [[[u8; 8]; 10]; 2] = [
    // Sent by the client.
    [
        /* Request: new, retransmit, reincarnation after TIMEWAIT */
        [RQ, RQ, RS, IG, IG, IG, IG, RQ],
        /* Response: only servers send it; may answer an ignored Request */
        [IV, IG, IG, IG, IG, IG, IG, IV],
        /* Data: not before OPEN (PARTOPEN must use DataAck, §8.1.5) */
        [IV, IV, IV, IV, OP, CR, CG, IV],
        /* Ack: acknowledging the Response enters PARTOPEN */
        [IV, IV, PO, PO, OP, CR, CG, IV],
        /* DataAck */
        [IV, IV, PO, PO, OP, CR, CG, IV],
        /* CloseReq: only servers send it */
        [IV, IV, IV, IV, IV, IV, IV, IV],
        /* Close: client-initiated, or answering CloseReq; retransmits */
        [IV, IV, IV, CG, CG, CG, CG, IV],
        /* Reset */
        [IV, TW, TW, TW, TW, TW, TW, IG],
        /* Sync */
        [IV, IG, IG, IG, IG, IG, IG, IG],
        /* SyncAck */
        [IV, IG, IG, IG, IG, IG, IG, IG],
    ],
    // Sent by the server.
    [
        /* Request: only in TIMEWAIT, a reincarnation with roles reversed */
        [IV, IG, IG, IG, IG, IG, IG, RQ],
        /* Response */
        [IV, RS, RS, IG, IG, IG, IG, IV],
        /* Data: the server's first data or ack opens (§8.1.5) */
        [IV, IV, IV, OP, OP, IV, CG, IV],
        /* Ack */
        [IV, IV, IV, OP, OP, IV, CG, IV],
        /* DataAck */
        [IV, IV, IV, OP, OP, IV, CG, IV],
        /* CloseReq */
        [IV, IV, IV, CR, CR, CR, CR, IV],
        /* Close */
        [IV, IV, IV, CG, CG, IV, CG, IV],
        /* Reset */
        [IV, TW, TW, TW, TW, TW, TW, IG],
        /* Sync */
        [IV, IG, IG, IG, IG, IG, IG, IG],
        /* SyncAck */
        [IV, IG, IG, IG, IG, IG, IG, IG],
    ],
];

fn type_index(t: DccpType) -> Option<usize> {
    Some(match t {
        DccpType::Request => 0,
        DccpType::Response => 1,
        DccpType::Data => 2,
        DccpType::Ack => 3,
        DccpType::DataAck => 4,
        DccpType::CloseReq => 5,
        DccpType::Close => 6,
        DccpType::Reset => 7,
        DccpType::Sync => 8,
        DccpType::SyncAck => 9,
        DccpType::Unknown(_) => return None,
    })
}

const F_CLIENT_IS_REPLY: u8 = 0x01;
const F_LAST_DIR_REPLY: u8 = 0x02;
const F_REPLY_SEEN: u8 = 0x04;

/// Per-connection DCCP state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DccpState {
    /// Sequence number of the server's Response, which the client's Ack
    /// must acknowledge.
    handshake_seq: u64,
    state: DccpConntrack,
    last_type: u8,
    flags: u8,
}

impl DccpState {
    /// Current state.
    pub fn state(&self) -> DccpConntrack {
        self.state
    }

    /// The direction the client (the side whose Request opened the current
    /// incarnation) sends in.
    pub fn client_dir(&self) -> Dir {
        if self.flags & F_CLIENT_IS_REPLY != 0 {
            Dir::Reply
        } else {
            Dir::Original
        }
    }

    fn last_dir(&self) -> Dir {
        if self.flags & F_LAST_DIR_REPLY != 0 {
            Dir::Reply
        } else {
            Dir::Original
        }
    }

    fn set_last(&mut self, dir: Dir, ty: usize) {
        self.last_type = ty as u8;
        self.flags &= !F_LAST_DIR_REPLY;
        if dir == Dir::Reply {
            self.flags |= F_LAST_DIR_REPLY;
        }
    }

    fn set_client(&mut self, dir: Dir) {
        self.flags &= !F_CLIENT_IS_REPLY;
        if dir == Dir::Reply {
            self.flags |= F_CLIENT_IS_REPLY;
        }
    }
}

/// The DCCP module.
#[derive(Clone, Debug, Default)]
pub struct Dccp;

fn parse(data: &[u8]) -> Result<(DccpPacket<&[u8]>, usize), Invalid> {
    let p = DccpPacket::new_checked(data).map_err(|e| match e {
        // The view's one `Malformed`: a type that needs 48-bit sequence numbers without them.
        WireError::Malformed(_) => Invalid::DccpShortSeq,
        WireError::BadHeaderLen => Invalid::DccpBadDataOffset,
        _ => Invalid::DccpTruncated,
    })?;
    let ty = type_index(p.packet_type()).ok_or(Invalid::DccpReservedType)?;
    Ok((p, ty))
}

impl Dccp {
    /// Header length, type, checksum coverage and (if asked) checksum; the ports.
    pub fn ids(&self, pkt: &L4Packet<'_>) -> Result<(u16, u16), Invalid> {
        let (p, _) = parse(pkt.data)?;
        if p.checksum_coverage_len().is_none() {
            return Err(Invalid::DccpBadCoverage);
        }
        if pkt.verify_checksum {
            let ok = match addrs(pkt) {
                Some(Addrs::V4(s, d)) => p.verify_checksum_v4(s, d),
                Some(Addrs::V6(s, d)) => p.verify_checksum_v6(&s, &d),
                None => false,
            };
            if !ok {
                return Err(Invalid::DccpBadChecksum);
            }
        }
        Ok((p.src_port(), p.dst_port()))
    }

    /// Only a Request starts a connection.
    pub fn new_conn(&self, pkt: &L4Packet<'_>, _now: Instant) -> Result<DccpState, Invalid> {
        let (p, _) = parse(pkt.data)?;
        if p.packet_type() != DccpType::Request {
            return Err(Invalid::DccpOnlyRequestStarts);
        }
        Ok(DccpState {
            handshake_seq: 0,
            state: DccpConntrack::None,
            last_type: 0,
            flags: 0,
        })
    }

    /// Runs one packet through the role/type/state table.
    pub fn packet(
        &self,
        s: &mut DccpState,
        ctx: &mut ConnCtx<'_>,
        pkt: &L4Packet<'_>,
        t: &Timeouts,
    ) -> Verdict {
        let (p, ty) = match parse(pkt.data) {
            Ok(x) => x,
            Err(e) => return Verdict::Invalid(e),
        };
        let dir = ctx.dir;
        let reply_seen = s.flags & F_REPLY_SEEN != 0;
        if dir == Dir::Reply {
            s.flags |= F_REPLY_SEEN;
        }
        if p.packet_type() == DccpType::Reset && !reply_seen {
            // The only answer is a Reset: the connection never existed.
            s.state = DccpConntrack::TimeWait;
            return Verdict::Accept {
                timeout: Duration::ZERO,
            };
        }
        let role = usize::from(dir != s.client_dir());
        let old = s.state;
        let mut next = TABLE[role][ty][old as usize];
        match next {
            RQ if old == DccpConntrack::TimeWait && role == 1 => {
                // Reincarnation from the other side: it is the client now.
                s.set_client(dir);
            }
            RS if old == DccpConntrack::Request => s.handshake_seq = p.seq_number(),
            PO if old == DccpConntrack::Respond
                && matches!(p.packet_type(), DccpType::Ack | DccpType::DataAck)
                && p.ack_number() == Some(s.handshake_seq) =>
            {
                // The client acknowledged exactly the server's Response.
                // (Linux accepts only Ack here; RFC 4340 §8.1.5 lets the
                // client use DataAck as well.)
                ctx.status.insert(Status::ASSURED);
            }
            IG => {
                if s.last_dir() != dir && s.last_type == 0 && ty == 1 {
                    // A Response to the Request we ignored: both ends agree
                    // on a new connection with the Request's sender as client.
                    s.set_client(dir.flip());
                    s.handshake_seq = p.seq_number();
                    next = RS;
                } else {
                    s.set_last(dir, ty);
                    return Verdict::Accept {
                        timeout: timeout(t, old),
                    };
                }
            }
            IV => return Verdict::Invalid(Invalid::DccpBadTransition),
            _ => {}
        }
        s.set_last(dir, ty);
        s.state = DccpConntrack::ALL[usize::from(next)];
        Verdict::Accept {
            timeout: timeout(t, s.state),
        }
    }
}

fn timeout(t: &Timeouts, s: DccpConntrack) -> Duration {
    match s {
        DccpConntrack::None | DccpConntrack::Request => t.dccp_request,
        DccpConntrack::Respond => t.dccp_respond,
        DccpConntrack::PartOpen => t.dccp_partopen,
        DccpConntrack::Open => t.dccp_open,
        DccpConntrack::CloseReq => t.dccp_closereq,
        DccpConntrack::Closing => t.dccp_closing,
        DccpConntrack::TimeWait => t.dccp_timewait,
    }
}
