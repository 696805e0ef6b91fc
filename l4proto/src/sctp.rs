//! SCTP (RFC 9260) association tracking.
//!
//! Chunks drive a state table per direction (INIT -> COOKIE_WAIT,
//! COOKIE_ECHO -> COOKIE_ECHOED, COOKIE_ACK -> ESTABLISHED, SHUTDOWN ->
//! SHUTDOWN_SENT/RECD, SHUTDOWN_ACK -> SHUTDOWN_ACK_SENT, SHUTDOWN_COMPLETE
//! or ABORT -> CLOSED). Every packet's verification tag is checked against
//! the Initiate Tags learned from INIT and INIT ACK (§8.5, §8.5.1), which is
//! what stops blind injection into an association.
//!
//! New associations: an INIT (vtag 0), or a HEARTBEAT, which is how Linux
//! tracks the secondary paths of a multi-homed association (their addresses
//! form a tuple the INIT never used; the entry starts in HEARTBEAT_SENT and
//! becomes ESTABLISHED on the HEARTBEAT ACK). Linux also lets any other
//! chunk create a CLOSED entry; that only helps blind probes, so it is
//! refused here.

use crate::Timeouts;
use conntrack::{ConnCtx, Dir, Instant, Invalid, L4Packet, Status, Verdict};
use wire::{SctpChunk, SctpChunkType as C, SctpPacket};

/// Per-association states, named as Linux names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum SctpConntrack {
    /// Before the first packet was processed.
    None = 0,
    /// Closed (ABORT or SHUTDOWN COMPLETE seen).
    Closed,
    /// INIT seen.
    CookieWait,
    /// COOKIE ECHO seen.
    CookieEchoed,
    /// COOKIE ACK seen.
    Established,
    /// SHUTDOWN seen from the original side.
    ShutdownSent,
    /// SHUTDOWN seen from the reply side.
    ShutdownRecd,
    /// SHUTDOWN ACK seen.
    ShutdownAckSent,
    /// A secondary path probed by HEARTBEAT, no answer yet.
    HeartbeatSent,
}

impl SctpConntrack {
    const ALL: [SctpConntrack; 9] = [
        SctpConntrack::None,
        SctpConntrack::Closed,
        SctpConntrack::CookieWait,
        SctpConntrack::CookieEchoed,
        SctpConntrack::Established,
        SctpConntrack::ShutdownSent,
        SctpConntrack::ShutdownRecd,
        SctpConntrack::ShutdownAckSent,
        SctpConntrack::HeartbeatSent,
    ];

    /// The name `conntrack -L` prints.
    pub fn name(self) -> &'static str {
        match self {
            SctpConntrack::None => "NONE",
            SctpConntrack::Closed => "CLOSED",
            SctpConntrack::CookieWait => "COOKIE_WAIT",
            SctpConntrack::CookieEchoed => "COOKIE_ECHOED",
            SctpConntrack::Established => "ESTABLISHED",
            SctpConntrack::ShutdownSent => "SHUTDOWN_SENT",
            SctpConntrack::ShutdownRecd => "SHUTDOWN_RECD",
            SctpConntrack::ShutdownAckSent => "SHUTDOWN_ACK_SENT",
            SctpConntrack::HeartbeatSent => "HEARTBEAT_SENT",
        }
    }
}

const CL: u8 = 1;
const CW: u8 = 2;
const CE: u8 = 3;
const ES: u8 = 4;
const SS: u8 = 5;
const SR: u8 = 6;
const SA: u8 = 7;
const HS: u8 = 8;
const IV: u8 = 9;

/// Row of the state table for a chunk type; `None` for chunks that never
/// change the state (DATA, SACK, ...).
fn row(chunk_type: u8) -> Option<usize> {
    Some(match chunk_type {
        C::INIT => 0,
        C::INIT_ACK => 1,
        C::ABORT => 2,
        C::SHUTDOWN => 3,
        C::SHUTDOWN_ACK => 4,
        C::ERROR => 5,
        C::COOKIE_ECHO => 6,
        C::COOKIE_ACK => 7,
        C::SHUTDOWN_COMPLETE => 8,
        C::HEARTBEAT => 9,
        C::HEARTBEAT_ACK => 10,
        _ => return None,
    })
}

/// `[direction][chunk row][old state] -> new state`. Columns: NONE, CLOSED,
/// COOKIE_WAIT, COOKIE_ECHOED, ESTABLISHED, SHUTDOWN_SENT, SHUTDOWN_RECD,
/// SHUTDOWN_ACK_SENT, HEARTBEAT_SENT. Mostly permissive, like Linux's:
/// retransmissions and restarts keep the state rather than fail.
const TABLE: [[[u8; 9]; 11]; 2] = [
    // Original direction.
    [
        /* INIT */ [CW, CW, CW, CE, ES, CL, CL, SA, CW],
        /* INIT ACK */ [CL, CL, CW, CE, ES, SS, SR, SA, CL],
        /* ABORT */ [CL, CL, CL, CL, CL, CL, CL, CL, CL],
        /* SHUTDOWN */ [CL, CL, CW, CE, SS, SS, SR, SA, CL],
        /* SHUTDOWN ACK */ [SA, CL, CW, CE, ES, SA, SA, SA, SA],
        /* ERROR */ [CL, CL, CW, CE, ES, SS, SR, SA, CL],
        /* COOKIE ECHO */ [CL, CL, CE, CE, ES, SS, SR, SA, CL],
        /* COOKIE ACK */ [CL, CL, CW, ES, ES, SS, SR, SA, CL],
        /* SHUTDOWN COMPLETE */ [CL, CL, CW, CE, ES, SS, SR, CL, CL],
        /* HEARTBEAT */ [HS, CL, CW, CE, ES, SS, SR, SA, HS],
        /* HEARTBEAT ACK */ [CL, CL, CW, CE, ES, SS, SR, SA, HS],
    ],
    // Reply direction.
    [
        /* INIT */ [IV, CL, CW, CE, ES, SS, SR, SA, IV],
        /* INIT ACK */ [IV, CW, CW, CE, ES, SS, SR, SA, IV],
        /* ABORT */ [IV, CL, CL, CL, CL, CL, CL, CL, CL],
        /* SHUTDOWN */ [IV, CL, CW, CE, SR, SS, SR, SA, IV],
        /* SHUTDOWN ACK */ [IV, CL, CW, CE, ES, SA, SA, SA, IV],
        /* ERROR: a stale-cookie error ends COOKIE_ECHOED */
        [IV, CL, CW, CL, ES, SS, SR, SA, IV],
        /* COOKIE ECHO */ [IV, CL, CE, CE, ES, SS, SR, SA, IV],
        /* COOKIE ACK */ [IV, CL, CW, ES, ES, SS, SR, SA, IV],
        /* SHUTDOWN COMPLETE */ [IV, CL, CW, CE, ES, SS, SR, CL, IV],
        /* HEARTBEAT */ [IV, CL, CW, CE, ES, SS, SR, SA, HS],
        /* HEARTBEAT ACK */ [IV, CL, CW, CE, ES, SS, SR, SA, ES],
    ],
];

/// Per-association state: the state and the verification tag each
/// direction's packets must carry (0 = not learned yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SctpState {
    vtag: [u32; 2],
    state: SctpConntrack,
}

impl SctpState {
    /// Current state.
    pub fn state(&self) -> SctpConntrack {
        self.state
    }

    /// The verification tag packets of direction `dir` must carry.
    pub fn vtag(&self, dir: Dir) -> u32 {
        self.vtag[dir.index()]
    }
}

/// The SCTP module.
#[derive(Clone, Debug, Default)]
pub struct Sctp;

const fn bit(t: u8) -> u32 {
    if t < 31 {
        1 << t
    } else {
        1 << 31
    }
}

/// Chunk types present (bit per type; bit 31 for all types >= 31).
#[derive(Clone, Copy)]
struct ChunkMap(u32);

impl ChunkMap {
    fn has(self, t: u8) -> bool {
        self.0 & bit(t) != 0
    }
}

fn parse(data: &[u8]) -> Result<SctpPacket<&[u8]>, Invalid> {
    SctpPacket::new_checked(data).map_err(|_| Invalid::SctpTruncated)
}

/// Walks the chunk list once: well-formed chunks, at least one, and the
/// bundling rules of RFC 9260 §6.10 (INIT, INIT ACK and SHUTDOWN COMPLETE
/// alone; COOKIE ECHO and COOKIE ACK first).
fn scan(sp: &SctpPacket<&[u8]>) -> Result<ChunkMap, Invalid> {
    let mut map = 0;
    let mut alone = false;
    for (i, chunk) in sp.chunks().enumerate() {
        let chunk = chunk.map_err(|_| Invalid::SctpMalformedChunk)?;
        let t = chunk.chunk_type;
        if i > 0 && (alone || matches!(t, C::INIT | C::INIT_ACK | C::SHUTDOWN_COMPLETE)) {
            return Err(Invalid::SctpBundled);
        }
        if i > 0 && matches!(t, C::COOKIE_ECHO | C::COOKIE_ACK) {
            return Err(Invalid::SctpCookieNotFirst);
        }
        alone |= matches!(t, C::INIT | C::INIT_ACK | C::SHUTDOWN_COMPLETE);
        map |= bit(t);
    }
    if map == 0 {
        return Err(Invalid::SctpNoChunks);
    }
    Ok(ChunkMap(map))
}

fn initiate_tag(chunk: &SctpChunk<'_>) -> Result<u32, Invalid> {
    match chunk.init_initiate_tag() {
        Some(0) => Err(Invalid::SctpZeroInitiateTag), // RFC 9260 §3.3.2
        Some(tag) => Ok(tag),
        None => Err(Invalid::SctpInitTooShort),
    }
}

impl Sctp {
    /// Common header and (if asked) CRC32c; the ports.
    pub fn ids(&self, pkt: &L4Packet<'_>) -> Result<(u16, u16), Invalid> {
        let sp = parse(pkt.data)?;
        if pkt.verify_checksum && !sp.verify_checksum() {
            return Err(Invalid::SctpBadCrc);
        }
        Ok((sp.src_port(), sp.dst_port()))
    }

    /// An INIT (with verification tag 0) or a HEARTBEAT (secondary path)
    /// starts an association entry; anything else is refused.
    pub fn new_conn(&self, pkt: &L4Packet<'_>, _now: Instant) -> Result<SctpState, Invalid> {
        let sp = parse(pkt.data)?;
        let map = scan(&sp)?;
        let mut s = SctpState {
            vtag: [0; 2],
            state: SctpConntrack::None,
        };
        if map.has(C::INIT) {
            if sp.verification_tag() != 0 {
                return Err(Invalid::SctpInitWithTag);
            }
        } else if map.has(C::HEARTBEAT) {
            // A path of an association we saw start elsewhere: adopt its tag.
            s.vtag[0] = sp.verification_tag();
        } else if map.has(C::ABORT) || map.has(C::SHUTDOWN_COMPLETE) || map.has(C::COOKIE_ACK) {
            // RFC 9260 §8.4: out-of-the-blue packets with these are discarded.
            return Err(Invalid::SctpOutOfTheBlue);
        } else {
            return Err(Invalid::SctpCannotStart);
        }
        Ok(s)
    }

    /// Verification tag checks, then the state table chunk by chunk.
    pub fn packet(
        &self,
        s: &mut SctpState,
        ctx: &mut ConnCtx<'_>,
        pkt: &L4Packet<'_>,
        t: &Timeouts,
    ) -> Verdict {
        match self.track(s, ctx, pkt) {
            Ok(()) => Verdict::Accept {
                timeout: timeout(t, s.state),
            },
            Err(e) => Verdict::Invalid(e),
        }
    }

    fn track(
        &self,
        s: &mut SctpState,
        ctx: &mut ConnCtx<'_>,
        pkt: &L4Packet<'_>,
    ) -> Result<(), Invalid> {
        const WRONG_VTAG: Invalid = Invalid::SctpWrongTag;
        let sp = parse(pkt.data)?;
        let map = scan(&sp)?;
        let d = ctx.dir.index();
        let vtag = sp.verification_tag();
        // §8.5: the normal rule, unless a chunk with its own rule is present.
        let special = [
            C::INIT,
            C::SHUTDOWN_COMPLETE,
            C::COOKIE_ECHO,
            C::ABORT,
            C::SHUTDOWN_ACK,
            C::HEARTBEAT,
            C::HEARTBEAT_ACK,
        ];
        if !special.iter().any(|&c| map.has(c)) && vtag != s.vtag[d] {
            return Err(WRONG_VTAG);
        }
        // Work on a copy so an invalid chunk late in the packet leaves the
        // association untouched.
        let mut n = *s;
        for chunk in sp.chunks() {
            let chunk = chunk.map_err(|_| Invalid::SctpMalformedChunk)?;
            match chunk.chunk_type {
                // §8.5.1 (A).
                C::INIT if vtag != 0 => return Err(Invalid::SctpInitWithTag),
                // §8.5.1 (B), (C): our own tag, or the peer's if reflected (T bit).
                C::ABORT | C::SHUTDOWN_COMPLETE => {
                    let want = if chunk.t_bit() {
                        n.vtag[1 - d]
                    } else {
                        n.vtag[d]
                    };
                    if vtag != want {
                        return Err(WRONG_VTAG);
                    }
                }
                // §8.5.1 (D): the tag from the INIT ACK.
                C::COOKIE_ECHO if vtag != n.vtag[d] => return Err(WRONG_VTAG),
                // §8.5.1 (E): only before the association exists is a
                // SHUTDOWN ACK handled as out of the blue.
                C::SHUTDOWN_ACK
                    if !matches!(
                        n.state,
                        SctpConntrack::CookieWait | SctpConntrack::CookieEchoed
                    ) && n.vtag[d] != 0
                        && vtag != n.vtag[d] =>
                {
                    return Err(WRONG_VTAG)
                }
                // Secondary paths learn the tag from the first heartbeat.
                C::HEARTBEAT | C::HEARTBEAT_ACK => {
                    if n.vtag[d] == 0 {
                        n.vtag[d] = vtag;
                    } else if vtag != n.vtag[d] {
                        return Err(WRONG_VTAG);
                    }
                }
                _ => {}
            }
            let Some(r) = row(chunk.chunk_type) else {
                continue; // DATA, SACK, ...: no state change
            };
            let next = TABLE[d][r][n.state as usize];
            if next == IV {
                return Err(Invalid::SctpChunkInState);
            }
            if matches!(chunk.chunk_type, C::INIT | C::INIT_ACK) {
                // Packets towards the sender must carry its Initiate Tag.
                n.vtag[1 - d] = initiate_tag(&chunk)?;
            }
            let old = n.state;
            n.state = SctpConntrack::ALL[usize::from(next)];
            if old != n.state && n.state == SctpConntrack::Established {
                ctx.status.insert(Status::ASSURED);
            }
        }
        *s = n;
        Ok(())
    }
}

fn timeout(t: &Timeouts, s: SctpConntrack) -> std::time::Duration {
    match s {
        SctpConntrack::None | SctpConntrack::Closed => t.sctp_closed,
        SctpConntrack::CookieWait => t.sctp_cookie_wait,
        SctpConntrack::CookieEchoed => t.sctp_cookie_echoed,
        SctpConntrack::Established => t.sctp_established,
        SctpConntrack::ShutdownSent => t.sctp_shutdown_sent,
        SctpConntrack::ShutdownRecd => t.sctp_shutdown_recd,
        SctpConntrack::ShutdownAckSent => t.sctp_shutdown_ack_sent,
        SctpConntrack::HeartbeatSent => t.sctp_heartbeat_sent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_entries_are_states() {
        for dir in TABLE {
            for r in dir {
                for v in r {
                    assert!(v <= IV);
                }
            }
        }
        assert_eq!(
            SctpConntrack::ALL[usize::from(HS)],
            SctpConntrack::HeartbeatSent
        );
        assert_eq!(SctpConntrack::ALL[0].name(), "NONE");
    }
}
