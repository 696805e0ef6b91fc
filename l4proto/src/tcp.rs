//! TCP connection tracking: the state machine of netfilter's TCP module and
//! window tracking after Guido van Rooij's "Real Stateful TCP Packet
//! Filtering in IP Filter", as netfilter applies it.
//!
//! Each packet is reduced to a flag class (SYN, SYN-ACK, FIN, ACK, RST,
//! none); the class, the direction and the current state pick the next state
//! from a table. Before the state changes, the segment must fall inside the
//! window each side has advertised (`TcpWindow`), so that spoofed or stale
//! segments cannot close or reset a connection.
//!
//! Where this differs from Linux, on purpose:
//! - packets Linux accepts without refreshing the timeout (ignored SYNs and
//!   SYN-ACKs, challenge ACKs, SYN retransmissions) get the current state's
//!   timeout, because [`Verdict::Accept`] always carries one;
//! - a connection whose only answer is a RST is "killed" by returning
//!   `Accept { timeout: 0 }`: the core should let it expire at once.
//!
//! Connections picked up mid-stream stay liberal for their whole life, as in
//! Linux: the window scale negotiated in the unseen handshake can never be
//! learned, so strict checks would drop valid large windows.
//!
//! Written from the documented behaviour of Linux's tracker and RFC 9293,
//! 7323 (window scale), 2018 (SACK), 5961 (challenge ACKs); no code copied.

use crate::{addrs, Addrs, Timeouts};
use conntrack::{ConnCtx, Dir, Instant, Invalid, L4Packet, Status, Verdict};
use std::time::Duration;
use wire::{TcpOption, TcpPacket, WireError};

/// Per-connection TCP states, numbered as Linux numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum TcpConntrack {
    /// Before the first packet was processed.
    None = 0,
    /// SYN seen from the original side.
    SynSent,
    /// SYN-ACK seen in answer.
    SynRecv,
    /// Handshake completed (or picked up mid-stream).
    Established,
    /// FIN seen from one side.
    FinWait,
    /// FIN acknowledged, the other side still sends.
    CloseWait,
    /// FIN seen from both sides, waiting for the last ACK.
    LastAck,
    /// Closed cleanly; lingers for late segments.
    TimeWait,
    /// Reset or closed.
    Close,
    /// Simultaneous open: SYN seen from both sides.
    SynSent2,
}

impl TcpConntrack {
    const ALL: [TcpConntrack; 10] = [
        TcpConntrack::None,
        TcpConntrack::SynSent,
        TcpConntrack::SynRecv,
        TcpConntrack::Established,
        TcpConntrack::FinWait,
        TcpConntrack::CloseWait,
        TcpConntrack::LastAck,
        TcpConntrack::TimeWait,
        TcpConntrack::Close,
        TcpConntrack::SynSent2,
    ];

    /// The name `conntrack -L` prints.
    pub fn name(self) -> &'static str {
        match self {
            TcpConntrack::None => "NONE",
            TcpConntrack::SynSent => "SYN_SENT",
            TcpConntrack::SynRecv => "SYN_RECV",
            TcpConntrack::Established => "ESTABLISHED",
            TcpConntrack::FinWait => "FIN_WAIT",
            TcpConntrack::CloseWait => "CLOSE_WAIT",
            TcpConntrack::LastAck => "LAST_ACK",
            TcpConntrack::TimeWait => "TIME_WAIT",
            TcpConntrack::Close => "CLOSE",
            TcpConntrack::SynSent2 => "SYN_SENT2",
        }
    }
}

/// The class of a segment that drives the state table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FlagClass {
    /// SYN without ACK.
    Syn = 0,
    /// SYN with ACK.
    SynAck,
    /// FIN (with ACK: FIN alone is refused earlier).
    Fin,
    /// ACK only (possibly PSH/URG/ECN bits).
    Ack,
    /// RST, with or without ACK.
    Rst,
    /// None of the above (also "no packet yet").
    None,
}

impl FlagClass {
    /// Classifies TCP flag bits as netfilter does: RST wins, then SYN, FIN, ACK.
    pub fn of(flags: u16) -> FlagClass {
        if flags & RST != 0 {
            FlagClass::Rst
        } else if flags & SYN != 0 {
            if flags & ACK != 0 {
                FlagClass::SynAck
            } else {
                FlagClass::Syn
            }
        } else if flags & FIN != 0 {
            FlagClass::Fin
        } else if flags & ACK != 0 {
            FlagClass::Ack
        } else {
            FlagClass::None
        }
    }
}

const FIN: u16 = 0x01;
const SYN: u16 = 0x02;
const RST: u16 = 0x04;
#[cfg(test)]
const PSH: u16 = 0x08;
const ACK: u16 = 0x10;
const URG: u16 = 0x20;

/// Whether a combination of flags can appear in a sane segment. ECE, CWR,
/// PSH and NS are ignored; everything else must be one of the combinations
/// real stacks send (netfilter's `tcp_valid_flags`). Notably refused: no
/// flags at all, SYN+FIN, SYN+RST, FIN without ACK.
pub fn valid_flags(flags: u16) -> bool {
    let f = flags & (FIN | SYN | RST | ACK | URG);
    const OK: [u16; 9] = [
        SYN,
        SYN | URG,
        SYN | ACK,
        RST,
        RST | ACK,
        FIN | ACK,
        FIN | ACK | URG,
        ACK,
        ACK | URG,
    ];
    OK.contains(&f)
}

// Next-state table entries: a state, or one of these.
const IV: u8 = 10; // invalid
const IG: u8 = 11; // ignore: conntrack may be out of sync, let it through untouched

const SS: u8 = 1;
const SR: u8 = 2;
const ES: u8 = 3;
const FW: u8 = 4;
const CW: u8 = 5;
const LA: u8 = 6;
const TW: u8 = 7;
const CL: u8 = 8;
const S2: u8 = 9;

/// `[direction][flag class][old state] -> new state`. Columns: NONE,
/// SYN_SENT, SYN_RECV, ESTABLISHED, FIN_WAIT, CLOSE_WAIT, LAST_ACK,
/// TIME_WAIT, CLOSE, SYN_SENT2.
const TABLE: [[[u8; 10]; 6]; 2] = [
    // Original direction.
    [
        // SYN: opens; retransmits; reopens after TIME_WAIT/CLOSE (RFC 1122);
        // in a synchronized state it may mean we lost sync, so it is ignored.
        [SS, SS, IG, IG, IG, IG, IG, SS, SS, S2],
        // SYN-ACK: only in simultaneous open.
        [IV, IV, SR, IV, IV, IV, IV, IV, IV, SR],
        // FIN: never before the SYN-ACK.
        [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
        // ACK: NONE -> ESTABLISHED is mid-stream pickup.
        [ES, IV, ES, ES, CW, CW, TW, TW, CL, IV],
        // RST.
        [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        // None.
        [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
    ],
    // Reply direction.
    [
        // SYN: simultaneous open, or the server reopening after TIME_WAIT.
        [IV, S2, IV, IV, IV, IV, IV, SS, IV, S2],
        // SYN-ACK: the normal answer; late copies are ignored.
        [IV, SR, IG, IG, IG, IG, IG, IG, IG, SR],
        // FIN.
        [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
        // ACK: before the SYN-ACK it may belong to a half-open connection.
        [IV, IG, SR, ES, CW, CW, TW, TW, CL, IG],
        // RST.
        [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        // None.
        [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
    ],
];

/// Window-tracking flag: the side sent the window scale option on its SYN.
pub const WINDOW_SCALE: u8 = 0x01;
/// Window-tracking flag: the side sent SACK-permitted on its SYN.
pub const SACK_PERM: u8 = 0x02;
/// Window-tracking flag: this side started the close (sent the first FIN).
pub const CLOSE_INIT: u8 = 0x04;
/// Window-tracking flag: do not enforce the window on this side's segments.
pub const BE_LIBERAL: u8 = 0x08;
/// Window-tracking flag: this side has sent data the peer has not acknowledged.
pub const DATA_UNACKNOWLEDGED: u8 = 0x10;
/// Window-tracking flag: `maxack` holds a value.
pub const MAXACK_SET: u8 = 0x20;

/// What conntrack knows of one direction's sequence space.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpWindow {
    /// Highest sequence number sent plus the segment length (`td_end`).
    pub end: u32,
    /// Highest ack + window the peer allowed this side (`td_maxend`).
    pub maxend: u32,
    /// Largest window this side advertised, scaled (`td_maxwin`).
    pub maxwin: u32,
    /// Highest acknowledgment this side sent (`td_maxack`).
    pub maxack: u32,
    /// Window scale shift of this side (0 unless both SYNs carried it).
    pub scale: u8,
    /// `WINDOW_SCALE`, `SACK_PERM`, `CLOSE_INIT`, `BE_LIBERAL`,
    /// `DATA_UNACKNOWLEDGED`, `MAXACK_SET`.
    pub flags: u8,
}

// Bits of `TcpState::last_flags`. The first two mirror the window flags of
// the same name: they hold the options of an ignored SYN.
const L_WSCALE: u8 = WINDOW_SCALE;
const L_SACK_PERM: u8 = SACK_PERM;
const L_CHALLENGE_ACK: u8 = 0x04;
const L_SIMULTANEOUS_OPEN: u8 = 0x08;
// Our own "a reply-direction packet was accepted before this one", so that
// we do not depend on when the core sets `Status::SEEN_REPLY`.
const L_REPLY_SEEN: u8 = 0x10;

/// Per-connection TCP state (56 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpState {
    // The two directions' `TcpWindow`s, stored field by field so that no
    // padding sits between them (keeps `AnyState` at 56 bytes).
    end: [u32; 2],
    maxend: [u32; 2],
    maxwin: [u32; 2],
    maxack: [u32; 2],
    scale: [u8; 2],
    wflags: [u8; 2],
    last_seq: u32,
    last_ack: u32,
    last_end: u32,
    last_win: u16,
    state: TcpConntrack,
    last_dir: Dir,
    last_index: FlagClass,
    retrans: u8,
    last_wscale: u8,
    last_flags: u8,
}

impl TcpState {
    fn fresh() -> TcpState {
        TcpState {
            end: [0; 2],
            maxend: [0; 2],
            maxwin: [0; 2],
            maxack: [0; 2],
            scale: [0; 2],
            wflags: [0; 2],
            last_seq: 0,
            last_ack: 0,
            last_end: 0,
            last_win: 0,
            state: TcpConntrack::None,
            last_dir: Dir::Original,
            last_index: FlagClass::None,
            retrans: 0,
            last_wscale: 0,
            last_flags: 0,
        }
    }

    /// Current state.
    pub fn state(&self) -> TcpConntrack {
        self.state
    }

    /// Window tracking data of direction `dir` (the sender's view).
    pub fn window(&self, dir: Dir) -> TcpWindow {
        self.win(dir.index())
    }

    fn win(&self, i: usize) -> TcpWindow {
        TcpWindow {
            end: self.end[i],
            maxend: self.maxend[i],
            maxwin: self.maxwin[i],
            maxack: self.maxack[i],
            scale: self.scale[i],
            flags: self.wflags[i],
        }
    }

    fn set_win(&mut self, i: usize, w: TcpWindow) {
        self.end[i] = w.end;
        self.maxend[i] = w.maxend;
        self.maxwin[i] = w.maxwin;
        self.maxack[i] = w.maxack;
        self.scale[i] = w.scale;
        self.wflags[i] = w.flags;
    }

    fn any_flags(&self) -> u8 {
        self.wflags[0] | self.wflags[1]
    }

    /// How many times in a row the last ACK-class segment was seen again.
    pub fn retransmissions(&self) -> u8 {
        self.retrans
    }
}

/// TCP tracking options (Linux sysctls of the same meaning).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// `tcp_be_liberal`: accept out-of-window segments (only RSTs and
    /// invalid flag combinations are still refused). Default off.
    pub be_liberal: bool,
    /// `tcp_loose`: pick up connections already in progress from an ACK.
    /// Default on.
    pub loose: bool,
    /// `tcp_max_retrans`: after this many identical retransmissions the
    /// timeout drops to `tcp_max_retrans` of [`Timeouts`]. Default 3.
    pub max_retrans: u8,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            be_liberal: false,
            loose: true,
            max_retrans: 3,
        }
    }
}

/// The TCP module.
#[derive(Clone, Debug, Default)]
pub struct Tcp {
    /// Options.
    pub cfg: TcpConfig,
}

#[inline]
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

#[inline]
fn after(a: u32, b: u32) -> bool {
    before(b, a)
}

fn parse(data: &[u8]) -> Result<TcpPacket<&[u8]>, Invalid> {
    TcpPacket::new_checked(data).map_err(|e| match e {
        WireError::BadHeaderLen => Invalid::TcpBadHeaderLen,
        _ => Invalid::TcpTruncatedHeader,
    })
}

/// Window scale (clamped to 14, RFC 7323 §2.3) and SACK-permitted from a
/// SYN's options; a malformed option ends the walk, as for a real stack.
fn syn_options(tcp: &TcpPacket<&[u8]>) -> (u8, u8) {
    let (mut flags, mut scale) = (0, 0);
    for opt in tcp.options_iter() {
        match opt {
            Ok(TcpOption::WindowScale(s)) => {
                flags |= WINDOW_SCALE;
                scale = s.min(14);
            }
            Ok(TcpOption::SackPermitted) => flags |= SACK_PERM,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    (flags, scale)
}

/// The highest SACK right edge beyond `ack`: data the receiver holds even if
/// the cumulative ack lags behind.
fn highest_sack(tcp: &TcpPacket<&[u8]>, ack: u32) -> u32 {
    let mut sack = ack;
    for opt in tcp.options_iter() {
        match opt {
            Ok(TcpOption::Sack(blocks)) => {
                for (_, right) in blocks {
                    if after(right, sack) {
                        sack = right;
                    }
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    sack
}

fn segment_end(tcp: &TcpPacket<&[u8]>) -> u32 {
    tcp.seq_number().wrapping_add(tcp.segment_len() as u32)
}

impl Tcp {
    /// Builds the module.
    pub fn new(cfg: TcpConfig) -> Self {
        Tcp { cfg }
    }

    /// Header length, flag combination and (if asked) checksum; the ports.
    pub fn ids(&self, pkt: &L4Packet<'_>) -> Result<(u16, u16), Invalid> {
        let tcp = parse(pkt.data)?;
        if !valid_flags(tcp.flags()) {
            return Err(Invalid::TcpBadFlags);
        }
        if pkt.verify_checksum {
            let ok = match addrs(pkt) {
                Some(Addrs::V4(s, d)) => tcp.verify_checksum_v4(s, d),
                Some(Addrs::V6(s, d)) => tcp.verify_checksum_v6(&s, &d),
                None => false,
            };
            if !ok {
                return Err(Invalid::TcpBadChecksum);
            }
        }
        Ok((tcp.src_port(), tcp.dst_port()))
    }

    /// A SYN starts a connection; with `loose`, so does an ACK (pickup).
    /// SYN-ACK, FIN, RST and flagless segments cannot (as in Linux).
    pub fn new_conn(&self, pkt: &L4Packet<'_>, _now: Instant) -> Result<TcpState, Invalid> {
        let tcp = parse(pkt.data)?;
        let mut s = TcpState::fresh();
        let win = u32::from(tcp.window_len()).max(1);
        let end = segment_end(&tcp);
        match FlagClass::of(tcp.flags()) {
            FlagClass::Syn => {
                let (flags, scale) = syn_options(&tcp);
                s.set_win(
                    0,
                    TcpWindow {
                        end,
                        maxend: end,
                        maxwin: win,
                        maxack: 0,
                        scale,
                        flags,
                    },
                );
            }
            FlagClass::Ack if self.cfg.loose => {
                // History lost: trust this segment, assume SACK, and stay
                // liberal for the connection's life, since the window scale
                // negotiated in the unseen handshake can never be learned.
                s.set_win(
                    0,
                    TcpWindow {
                        end,
                        maxend: end.wrapping_add(win),
                        maxwin: win,
                        maxack: 0,
                        scale: 0,
                        flags: SACK_PERM | BE_LIBERAL,
                    },
                );
                s.wflags[1] = SACK_PERM | BE_LIBERAL;
            }
            FlagClass::Ack => return Err(Invalid::TcpMidStreamPickup),
            FlagClass::SynAck => return Err(Invalid::TcpSynAckCannotStart),
            FlagClass::Fin => return Err(Invalid::TcpFinCannotStart),
            FlagClass::Rst => return Err(Invalid::TcpRstCannotStart),
            FlagClass::None => return Err(Invalid::TcpNoFlags),
        }
        Ok(s)
    }

    /// Runs one segment of a connection through the state machine and the
    /// window check.
    pub fn packet(
        &self,
        s: &mut TcpState,
        ctx: &mut ConnCtx<'_>,
        pkt: &L4Packet<'_>,
        t: &Timeouts,
    ) -> Verdict {
        let tcp = match parse(pkt.data) {
            Ok(tcp) => tcp,
            Err(e) => return Verdict::Invalid(e),
        };
        let verdict = self.track(s, ctx, &tcp, t);
        if ctx.dir == Dir::Reply && !matches!(verdict, Verdict::Invalid(_)) {
            s.last_flags |= L_REPLY_SEEN;
        }
        verdict
    }

    fn track(
        &self,
        s: &mut TcpState,
        ctx: &mut ConnCtx<'_>,
        tcp: &TcpPacket<&[u8]>,
        t: &Timeouts,
    ) -> Verdict {
        let dir = ctx.dir;
        let d = dir.index();
        let index = FlagClass::of(tcp.flags());
        let mut old = s.state;
        let reply_seen = s.last_flags & L_REPLY_SEEN != 0;
        let next = TABLE[d][index as usize][old as usize];
        if next == IV {
            return Verdict::Invalid(match index {
                FlagClass::Syn => Invalid::TcpUnexpectedSyn,
                FlagClass::SynAck => Invalid::TcpUnexpectedSynAck,
                FlagClass::Fin => Invalid::TcpUnexpectedFin,
                FlagClass::Ack => Invalid::TcpUnexpectedAck,
                FlagClass::Rst => Invalid::TcpUnexpectedRst,
                FlagClass::None => Invalid::TcpNoFlags,
            });
        }
        let mut ignore = next == IG;
        if next == SS && old >= TcpConntrack::TimeWait {
            // A SYN on a closed connection: reopen only if it really closed
            // (a FIN exchange or our side's RST); otherwise we may be the
            // ones out of sync, so let it through and watch for the answer.
            let closed = s.any_flags() & CLOSE_INIT != 0
                || (s.last_dir == dir && s.last_index == FlagClass::Rst);
            if closed {
                return Verdict::Reopen;
            }
            ignore = true;
        }
        let mut new = TcpConntrack::ALL[usize::from(next.min(S2))];
        if ignore {
            let liberal = s.any_flags() & BE_LIBERAL;
            if index == FlagClass::SynAck
                && s.last_index == FlagClass::Syn
                && s.last_dir != dir
                && tcp.ack_number() == s.last_end
            {
                // The SYN-ACK answers the SYN we ignored: both ends agree on
                // a new connection, so adopt it from the values we noted.
                old = TcpConntrack::SynSent;
                new = TcpConntrack::SynRecv;
                let ld = s.last_dir.index();
                s.set_win(
                    ld,
                    TcpWindow {
                        end: s.last_end,
                        maxend: s.last_end,
                        maxwin: u32::from(s.last_win).max(1),
                        maxack: 0,
                        scale: s.last_wscale,
                        flags: (s.last_flags & (L_WSCALE | L_SACK_PERM)) | liberal,
                    },
                );
                s.set_win(
                    d,
                    TcpWindow {
                        flags: liberal,
                        ..TcpWindow::default()
                    },
                );
                s.last_flags &= !L_CHALLENGE_ACK;
            } else {
                s.last_index = index;
                s.last_dir = dir;
                s.last_seq = tcp.seq_number();
                s.last_end = segment_end(tcp);
                s.last_win = tcp.window_len();
                if index == FlagClass::Syn && dir == Dir::Original {
                    let (flags, scale) = syn_options(tcp);
                    s.last_flags &= L_REPLY_SEEN | L_SIMULTANEOUS_OPEN;
                    s.last_flags |= flags;
                    s.last_wscale = scale;
                    // A stack following RFC 5961 answers this SYN with a
                    // challenge ACK, which must not count as the last ACK.
                    if old == TcpConntrack::LastAck {
                        s.last_flags |= L_CHALLENGE_ACK;
                    }
                }
                // The timeout cannot be left untouched through this API, so
                // the current state's timeout applies (Linux skips the refresh).
                return Verdict::Accept {
                    timeout: t.tcp_state(old),
                };
            }
        }

        let mut skip_window = false;
        match new {
            TcpConntrack::TimeWait
                if s.last_index == FlagClass::Syn
                    && s.last_dir != dir
                    && s.last_flags & L_CHALLENGE_ACK != 0 =>
            {
                // RFC 5961 challenge ACK to an ignored SYN: not a last ACK.
                s.last_flags &= !L_CHALLENGE_ACK;
                return Verdict::Accept {
                    timeout: t.tcp_state(old),
                };
            }
            TcpConntrack::SynSent2 => s.last_flags |= L_SIMULTANEOUS_OPEN,
            TcpConntrack::SynRecv
                if dir == Dir::Reply
                    && index == FlagClass::Ack
                    && s.last_flags & L_SIMULTANEOUS_OPEN != 0 =>
            {
                new = TcpConntrack::Established;
            }
            TcpConntrack::Close if index == FlagClass::Rst => {
                match self.check_rst(s, ctx, tcp, dir, old) {
                    RstCheck::Invalid => return Verdict::Invalid(Invalid::TcpRstOutOfWindow),
                    RstCheck::KeepState => new = old,
                    RstCheck::SkipWindow => skip_window = true,
                    RstCheck::CheckWindow => {}
                }
            }
            _ => {}
        }

        if !skip_window {
            if let Err(why) = self.in_window(s, dir, index, old, tcp, ctx.ack_offset) {
                return Verdict::Invalid(why);
            }
        }

        s.last_index = index;
        s.last_dir = dir;
        s.state = new;
        if old != new && new == TcpConntrack::FinWait {
            s.wflags[d] |= CLOSE_INIT;
        }

        let state_timeout = t.tcp_state(new);
        let mut timeout = if s.retrans >= self.cfg.max_retrans && state_timeout > t.tcp_max_retrans
        {
            t.tcp_max_retrans
        } else if index == FlagClass::Rst {
            t.tcp_close
        } else if s.any_flags() & DATA_UNACKNOWLEDGED != 0 && state_timeout > t.tcp_unacknowledged {
            t.tcp_unacknowledged
        } else if s.last_win == 0 && state_timeout > t.tcp_max_retrans {
            // A zero window may never reopen: do not hold the entry for days.
            t.tcp_max_retrans
        } else {
            state_timeout
        };

        if !reply_seen {
            if index == FlagClass::Rst {
                // The only answer was a reset (or the opener gave up): the
                // connection never existed, drop the entry at once.
                return Verdict::Accept {
                    timeout: Duration::ZERO,
                };
            }
            // Picked up mid-stream and not answered yet: keep it short.
            if new == TcpConntrack::Established && timeout > t.tcp_unacknowledged {
                timeout = t.tcp_unacknowledged;
            }
        } else if !ctx.status.contains(Status::ASSURED)
            && matches!(old, TcpConntrack::SynRecv | TcpConntrack::Established)
            && new == TcpConntrack::Established
        {
            // The handshake's final ACK, or a picked-up connection answered.
            ctx.status.insert(Status::ASSURED);
        }
        Verdict::Accept { timeout }
    }

    /// RFC 5961-style RST validation before the window check.
    fn check_rst(
        &self,
        s: &TcpState,
        ctx: &ConnCtx<'_>,
        tcp: &TcpPacket<&[u8]>,
        dir: Dir,
        old: TcpConntrack,
    ) -> RstCheck {
        // Closing: the tuple may already be reused and our sequence data is
        // stale; the entry is about to go anyway.
        if matches!(
            old,
            TcpConntrack::FinWait
                | TcpConntrack::CloseWait
                | TcpConntrack::LastAck
                | TcpConntrack::TimeWait
                | TcpConntrack::Close
        ) {
            return RstCheck::SkipWindow;
        }
        let other = s.win(dir.flip().index());
        let seq = tcp.seq_number();
        let liberal = self.cfg.be_liberal || s.wflags[dir.index()] & BE_LIBERAL != 0;
        let mut result = RstCheck::CheckWindow;
        if other.flags & MAXACK_SET != 0 && s.last_index != FlagClass::Syn {
            if before(seq, other.maxack) && !liberal {
                return RstCheck::Invalid;
            }
            let established =
                old == TcpConntrack::Established && ctx.status.contains(Status::ASSURED);
            let exact = seq == other.maxack
                || (s.last_index == FlagClass::Ack && s.last_dir == dir && seq == s.last_end);
            if established && seq != 0 && !exact {
                // In window but not the exact next sequence number: the
                // receiver answers with a challenge ACK, so keep the state.
                result = RstCheck::KeepState;
            }
        }
        let seen_reply = s.last_flags & L_REPLY_SEEN != 0;
        if ((seen_reply && s.last_index == FlagClass::Syn)
            || (!ctx.status.contains(Status::ASSURED) && s.last_index == FlagClass::Ack))
            && tcp.ack_number() == s.last_end
        {
            // The answer to a SYN or ACK we let through while out of sync:
            // it may acknowledge data we never tracked, so skip the window.
            return RstCheck::SkipWindow;
        }
        result
    }

    /// The in-window check; updates both directions' window data when the
    /// segment passes. Returns why it failed otherwise.
    fn in_window(
        &self,
        s: &mut TcpState,
        dir: Dir,
        index: FlagClass,
        old: TcpConntrack,
        tcp: &TcpPacket<&[u8]>,
        ack_offset: u32,
    ) -> Result<(), Invalid> {
        let d = dir.index();
        let mut sender = s.win(d);
        let mut receiver = s.win(1 - d);
        let r = self.window_check(
            s,
            &mut sender,
            &mut receiver,
            dir,
            index,
            old,
            tcp,
            ack_offset,
        );
        // Written back whatever the outcome: a side's first segment
        // initialises its data even when the segment then fails, as in Linux.
        s.set_win(d, sender);
        s.set_win(1 - d, receiver);
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn window_check(
        &self,
        s: &mut TcpState,
        sender: &mut TcpWindow,
        receiver: &mut TcpWindow,
        dir: Dir,
        index: FlagClass,
        old: TcpConntrack,
        tcp: &TcpPacket<&[u8]>,
        ack_offset: u32,
    ) -> Result<(), Invalid> {
        let mut seq = tcp.seq_number();
        let mut ack = tcp.ack_number().wrapping_sub(ack_offset);
        let win_raw = tcp.window_len();
        let mut win = u32::from(win_raw);
        let mut end = segment_end(tcp);
        let (syn, has_ack, rst) = (tcp.syn(), tcp.ack(), tcp.rst());

        let mut sack = ack;
        if receiver.flags & SACK_PERM != 0 {
            sack = highest_sack(tcp, ack.wrapping_add(ack_offset)).wrapping_sub(ack_offset);
        }

        if sender.maxwin == 0 {
            if syn {
                // SYN-ACK, or the peer's SYN in a simultaneous open.
                let (flags, scale) = syn_options(tcp);
                sender.end = end;
                sender.maxend = end;
                sender.maxwin = win.max(1);
                sender.flags = (sender.flags & BE_LIBERAL) | flags;
                sender.scale = scale;
                // RFC 7323: scaling applies only if both SYNs asked for it.
                if sender.flags & receiver.flags & WINDOW_SCALE == 0 {
                    sender.scale = 0;
                    receiver.scale = 0;
                }
                if !has_ack {
                    return Ok(());
                }
            } else {
                // First segment from this side and not a SYN (a picked-up
                // connection's first answer, or a RST to our SYN).
                sender.end = end;
                let swin = win << sender.scale;
                sender.maxwin = swin.max(1);
                sender.maxend = end.wrapping_add(sender.maxwin);
                if receiver.maxwin == 0 {
                    receiver.end = sack;
                    receiver.maxend = sack;
                } else if sack == receiver.end.wrapping_add(1) {
                    // Likely the answer to a keepalive probe.
                    receiver.end = receiver.end.wrapping_add(1);
                }
            }
        } else if syn
            && after(end, sender.end)
            && ((old == TcpConntrack::SynSent && dir == Dir::Original)
                || (old == TcpConntrack::SynRecv && dir == Dir::Reply))
        {
            // RFC 9293: a reinitialized endpoint may restart with a higher ISN.
            let (flags, scale) = syn_options(tcp);
            sender.end = end;
            sender.maxend = end;
            sender.maxwin = win.max(1);
            sender.flags = (sender.flags & BE_LIBERAL) | flags;
            sender.scale = scale;
        }

        if !has_ack || (rst && ack == 0) {
            // No ACK (or a broken stack's RST with ack 0): nothing to check.
            ack = receiver.end;
            sack = ack;
        }
        if rst && seq == 0 && old == TcpConntrack::SynSent {
            // RST answering a SYN, sequence number left at zero.
            seq = sender.end;
            end = seq;
        }

        let in_recv_win = receiver.maxwin == 0
            || after(
                end,
                sender.end.wrapping_sub(receiver.maxwin).wrapping_sub(1),
            );
        let max_ack_window = sender.maxwin.max(66000);
        let seq_ok = before(seq, sender.maxend.wrapping_add(1));
        let ack_hi = before(sack, receiver.end.wrapping_add(1));
        let ack_lo = after(
            sack,
            receiver.end.wrapping_sub(max_ack_window).wrapping_sub(1),
        );

        if seq_ok && in_recv_win && ack_hi && ack_lo {
            if !syn {
                win <<= sender.scale;
            }
            let swin = win.wrapping_add(sack.wrapping_sub(ack));
            if sender.maxwin < swin {
                sender.maxwin = swin;
            }
            if after(end, sender.end) {
                sender.end = end;
                sender.flags |= DATA_UNACKNOWLEDGED;
            }
            if has_ack {
                if sender.flags & MAXACK_SET == 0 {
                    sender.maxack = ack;
                    sender.flags |= MAXACK_SET;
                } else if after(ack, sender.maxack) {
                    sender.maxack = ack;
                }
            }
            if receiver.maxwin != 0 && after(end, sender.maxend) {
                receiver.maxwin = receiver
                    .maxwin
                    .wrapping_add(end.wrapping_sub(sender.maxend));
            }
            if after(sack.wrapping_add(win), receiver.maxend.wrapping_sub(1)) {
                receiver.maxend = sack.wrapping_add(win);
                if win == 0 {
                    receiver.maxend = receiver.maxend.wrapping_add(1);
                }
            }
            if ack == receiver.end {
                receiver.flags &= !DATA_UNACKNOWLEDGED;
            }
            if index == FlagClass::Ack {
                if s.last_dir == dir
                    && s.last_seq == seq
                    && s.last_ack == ack
                    && s.last_end == end
                    && s.last_win == win_raw
                {
                    s.retrans = s.retrans.saturating_add(1);
                } else {
                    s.last_dir = dir;
                    s.last_seq = seq;
                    s.last_ack = ack;
                    s.last_end = end;
                    s.last_win = win_raw;
                    s.retrans = 0;
                }
            }
            return Ok(());
        }
        if self.cfg.be_liberal || sender.flags & BE_LIBERAL != 0 {
            return Ok(());
        }
        Err(if !seq_ok {
            Invalid::TcpSeqOverWindow
        } else if !in_recv_win {
            Invalid::TcpSeqAlreadyAcked
        } else if !ack_hi {
            Invalid::TcpAckNotSent
        } else {
            Invalid::TcpAckTooOld
        })
    }
}

enum RstCheck {
    Invalid,
    KeepState,
    SkipWindow,
    CheckWindow,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_table_matches_netfilter() {
        assert!(valid_flags(SYN));
        assert!(valid_flags(SYN | ACK | PSH | 0x40 | 0x80));
        assert!(valid_flags(FIN | ACK | PSH));
        assert!(!valid_flags(0));
        assert!(!valid_flags(FIN));
        assert!(!valid_flags(SYN | FIN));
        assert!(!valid_flags(SYN | RST));
        assert!(!valid_flags(SYN | ACK | URG));
        assert!(!valid_flags(FIN | SYN | RST | PSH | ACK | URG)); // christmas tree
    }

    #[test]
    fn sequence_comparisons_wrap() {
        assert!(before(0xffff_fff0, 0x10));
        assert!(after(0x10, 0xffff_fff0));
        assert!(!before(5, 5) && !after(5, 5));
    }

    #[test]
    fn state_table_is_total() {
        for dir in TABLE {
            for row in dir {
                for v in row {
                    assert!(v <= IG);
                }
            }
        }
        assert_eq!(TcpConntrack::ALL[S2 as usize], TcpConntrack::SynSent2);
        assert_eq!(TcpConntrack::ALL[0].name(), "NONE");
    }
}
