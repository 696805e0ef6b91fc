//! The FTP helper (`ftp`, TCP 21), after Linux's `nf_conntrack_ftp`: PORT and EPRT from the
//! client, 227 (PASV) and 229 (EPSV) from the server, IPv4 and IPv6 (RFC 959, RFC 2428).
//!
//! # Finding commands
//!
//! A command counts only at the start of a line the helper saw. Each direction keeps:
//! - a streaming search (`search` crate) for `"\n" + keyword` over the in-order byte stream,
//!   so that a keyword split across segments, or across the segments of a chain, is found;
//!   a line start the helper knows without having seen its `\n` is fed as a synthetic `\n`;
//! - `next`, the sequence number after the furthest byte seen;
//! - the sequence numbers just after the last few segments that ended in `\n` (Linux keeps
//!   two; four here, so that a retransmission of one of the last segments is parsed, and
//!   rewritten under NAT, again);
//! - the argument of a command whose line is not finished yet (at most 256 bytes), never more.
//!
//! A segment is parsed if it continues the stream (`seq == next`) or starts at a remembered
//! line start (a retransmission: parsed on a scratch search state, so the stream is not
//! disturbed; or, if it also brings new bytes, as the new stream). Anything else (a segment
//! after a hole, a retransmission from the middle of a line) is not parsed and reported as
//! `unsynced`; the stream restarts after it, at a line start if it ended in `\n`. As in Linux,
//! a direction's first segment is not parsed (nothing says it starts a line) but tells where
//! the next one starts.
//!
//! # Security
//!
//! The address in PORT/EPRT must be the client's and the one in 227 the server's (the
//! sender's tuple source, before NAT), unless `loose`: anything else is an FTP bounce,
//! refused and reported; an address of the other family is always refused. 229 announces
//! only a port, on the server's address.
//!
//! # NAT
//!
//! Each expectation carries the [`Site`] of the announced numbers ([`nat`] formats the
//! replacement). An announcement split across segments under NAT cannot be rewritten (its
//! first bytes are gone): it is reported as `unsynced` and expects nothing (Linux drops such a
//! packet instead).

pub mod nat;

use crate::chain::Chain;
use crate::{
    endpoint, ExpectPolicy, ExpectRequest, Helper, HelperConfig, HelperEventKind, HelperOutput,
    HelperPacket, HelperState, Site,
};
use conntrack::tuple::Dir;
use search::{Algorithm, Control, MatchMode, Pattern, SearchOptions, Searcher, StreamState};
use std::any::Any;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::time::Duration;

pub use nat::{SITE_EPRT, SITE_EPSV, SITE_PASV, SITE_PORT};

/// Most argument bytes kept for one command line (after the keyword, before the `\n`).
pub const MAX_LINE: usize = 256;

/// Line starts remembered per direction.
const LINE_STARTS: usize = 4;

/// The commands and replies the helper reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmd {
    Port,
    Eprt,
    Pasv,
    Epsv,
}

impl Cmd {
    fn name(self) -> &'static str {
        match self {
            Cmd::Port => "PORT",
            Cmd::Eprt => "EPRT",
            Cmd::Pasv => "227",
            Cmd::Epsv => "229",
        }
    }

    fn kind(self) -> u8 {
        match self {
            Cmd::Port => SITE_PORT,
            Cmd::Eprt => SITE_EPRT,
            Cmd::Pasv => SITE_PASV,
            Cmd::Epsv => SITE_EPSV,
        }
    }
}

/// What the client (original direction) and the server (reply) send that the helper reads,
/// in the order of the search patterns.
const CMDS: [[Cmd; 2]; 2] = [[Cmd::Port, Cmd::Eprt], [Cmd::Pasv, Cmd::Epsv]];

/// The FTP helper.
#[derive(Debug)]
pub struct Ftp {
    ports: Vec<u16>,
    loose: bool,
    /// One searcher per direction (client commands, server replies), shared by every connection.
    searchers: [Searcher; 2],
}

impl Ftp {
    /// The helper with these settings (default port 21).
    pub fn new(cfg: &HelperConfig) -> Ftp {
        let build = |cmds: [Cmd; 2]| {
            let pats: Vec<Pattern> = cmds
                .iter()
                .map(|c| Pattern::literal(format!("\n{} ", c.name())))
                .collect();
            let opts = SearchOptions {
                icase: true,
                mode: MatchMode::All,
                ..SearchOptions::default()
            };
            Searcher::new(Algorithm::Auto, &pats, opts).expect("two short literals always build")
        };
        Ftp {
            ports: cfg.ports.clone().unwrap_or_else(|| vec![21]),
            loose: cfg.loose,
            searchers: [build(CMDS[0]), build(CMDS[1])],
        }
    }
}

/// One direction's reading position.
#[derive(Debug)]
struct Side {
    stream: StreamState,
    /// Sequence number after the furthest byte seen; None before the first segment.
    next: Option<u32>,
    /// Sequence numbers just after segments that ended in `\n`.
    line_starts: [Option<u32>; LINE_STARTS],
    /// A command whose line continues in the next segment.
    pending: Option<Pending>,
}

/// The argument of an unfinished command line.
#[derive(Debug)]
struct Pending {
    cmd: Cmd,
    /// Argument bytes so far (at most [`MAX_LINE`]).
    buf: Vec<u8>,
    /// Stream offset (of the search state) of the argument's first byte.
    start: u64,
}

/// The per-connection state: client side, server side.
#[derive(Debug)]
struct FtpState {
    sides: [Side; 2],
}

impl Side {
    fn new(s: &Searcher) -> Side {
        Side {
            stream: s.new_state(),
            next: None,
            line_starts: [None; LINE_STARTS],
            pending: None,
        }
    }

    /// Restarts the stream after a segment that was not parsed: at a line start if it ended
    /// in `\n`, else nowhere (the next line found is the one after the next `\n`).
    fn restart(&mut self, s: &Searcher, at_line_start: bool) {
        s.reset(&mut self.stream);
        self.pending = None;
        if at_line_start {
            s.feed(&mut self.stream, b"\n", |_| Control::Continue);
        }
    }

    /// Remembers that a line starts at `seq`, in place of the oldest remembered one (unless
    /// `seq` is older than all of them: an old retransmission).
    fn line_start(&mut self, seq: u32) {
        if self.line_starts.contains(&Some(seq)) {
            return;
        }
        if let Some(free) = self.line_starts.iter_mut().find(|s| s.is_none()) {
            *free = Some(seq);
            return;
        }
        // Serial-number order (RFC 1982): the smallest distance back from `seq` is the newest.
        let age = |s: &Option<u32>| s.map_or(0, |s| seq.wrapping_sub(s) as i32);
        if let Some(oldest) = self.line_starts.iter_mut().max_by_key(|s| age(s)) {
            if age(oldest) > 0 {
                *oldest = Some(seq);
            }
        }
    }
}

impl Helper for Ftp {
    fn name(&self) -> &'static str {
        "ftp"
    }

    fn proto(&self) -> u8 {
        6
    }

    fn ports(&self) -> &[u16] {
        &self.ports
    }

    fn policy(&self) -> ExpectPolicy {
        ExpectPolicy {
            max_expected: 1,
            timeout: Duration::from_secs(5 * 60),
        }
    }

    fn new_state(&self) -> HelperState {
        Box::new(FtpState {
            sides: [Side::new(&self.searchers[0]), Side::new(&self.searchers[1])],
        })
    }

    fn handle(
        &self,
        state: &mut (dyn Any + Send + Sync),
        pkt: &HelperPacket<'_>,
        out: &mut HelperOutput,
    ) {
        let Some(st) = state.downcast_mut::<FtpState>() else {
            out.event(
                HelperEventKind::Malformed,
                "ftp: the connection holds another helper's state".into(),
            );
            return;
        };
        let chain = Chain::new(pkt.payload);
        if chain.is_empty() {
            return;
        }
        let d = pkt.dir.index();
        let s = &self.searchers[d];
        let side = &mut st.sides[d];
        let Some(seq) = pkt.seq else {
            // Without sequence numbers (not TCP: never for a real FTP connection) each
            // packet stands alone, from a line start.
            self.scan_alone(s, chain, pkt, out);
            return;
        };
        // A TCP segment is far shorter than 4 GiB; sequence arithmetic wraps anyway.
        let end = seq.wrapping_add(chain.len() as u32);
        let ends_line = chain.last() == Some(b'\n');
        match side.next {
            Some(next) if next == seq => {
                self.scan(s, &mut side.stream, &mut side.pending, chain, pkt, out);
                side.next = Some(end);
            }
            None => {
                side.restart(s, ends_line);
                side.next = Some(end);
            }
            Some(next) => {
                let new_bytes = (end.wrapping_sub(next) as i32) > 0;
                if side.line_starts.contains(&Some(seq)) {
                    if new_bytes {
                        side.restart(s, true);
                        self.scan(s, &mut side.stream, &mut side.pending, chain, pkt, out);
                        side.next = Some(end);
                    } else {
                        self.scan_alone(s, chain, pkt, out);
                    }
                } else {
                    out.event(
                        HelperEventKind::Unsynced,
                        format!(
                            "ftp: segment at seq {seq} is not at a line start (stream at {next})"
                        ),
                    );
                    if new_bytes {
                        side.restart(s, ends_line);
                        side.next = Some(end);
                    }
                }
            }
        }
        if ends_line {
            side.line_start(end);
        }
    }

    fn nat_format(&self, kind: u8, addr: IpAddr, port: u16) -> Vec<u8> {
        nat::format(kind, addr, port)
    }
}

impl Ftp {
    /// Parses one packet from a line start on a scratch state: old data again, or a packet
    /// without sequence numbers. A line left unfinished at its end is not followed.
    fn scan_alone(
        &self,
        s: &Searcher,
        chain: Chain<'_>,
        pkt: &HelperPacket<'_>,
        out: &mut HelperOutput,
    ) {
        let mut stream = s.new_state();
        s.feed(&mut stream, b"\n", |_| Control::Continue);
        self.scan(s, &mut stream, &mut None, chain, pkt, out);
    }

    /// Searches one in-order packet: first the end of a pending line, then every command
    /// keyword after a `\n`, each one's argument read up to its `\n` (or kept as pending).
    fn scan(
        &self,
        s: &Searcher,
        stream: &mut StreamState,
        pending: &mut Option<Pending>,
        chain: Chain<'_>,
        pkt: &HelperPacket<'_>,
        out: &mut HelperOutput,
    ) {
        let base = stream.offset();
        if let Some(mut p) = pending.take() {
            let mut tmp = [0u8; MAX_LINE];
            let room = MAX_LINE.saturating_sub(p.buf.len());
            let c = chain.copy_until(0, b'\n', &mut tmp[..room]);
            p.buf.extend_from_slice(&tmp[..c.len]);
            if c.stop.is_some() {
                self.finish(p.cmd, &p.buf, p.start, base, pkt, out);
            } else if c.len < chain.len() {
                too_long(p.cmd, out);
            } else {
                *pending = Some(p);
            }
        }
        let cmds = CMDS[pkt.dir.index()];
        s.feed_chain(stream, chain.parts(), |m| {
            let Some(&cmd) = cmds.get(m.pattern) else {
                return Control::Continue;
            };
            // The keyword's last byte is in this packet, so its end is at most the packet's.
            let at = usize::try_from(m.end.saturating_sub(base)).unwrap_or(usize::MAX);
            let mut tmp = [0u8; MAX_LINE];
            let c = chain.copy_until(at, b'\n', &mut tmp);
            if c.stop.is_some() {
                self.finish(cmd, &tmp[..c.len], m.end, base, pkt, out);
            } else if at.saturating_add(c.len) < chain.len() {
                too_long(cmd, out);
            } else {
                *pending = Some(Pending {
                    cmd,
                    buf: tmp[..c.len].to_vec(),
                    start: m.end,
                });
            }
            Control::Continue
        });
    }

    /// A whole command line: its argument `arg` (without the `\n`) began at stream offset
    /// `start`; this packet began at `base`.
    fn finish(
        &self,
        cmd: Cmd,
        arg: &[u8],
        start: u64,
        base: u64,
        pkt: &HelperPacket<'_>,
        out: &mut HelperOutput,
    ) {
        let parsed = match cmd {
            Cmd::Port => parse_port(arg),
            Cmd::Eprt => parse_eprt(arg),
            Cmd::Pasv => parse_pasv(arg),
            Cmd::Epsv => parse_epsv(arg),
        };
        let a = match parsed {
            Ok(a) => a,
            Err(why) => {
                out.event(
                    HelperEventKind::Malformed,
                    format!("ftp: {}: {why}", cmd.name()),
                );
                return;
            }
        };
        let sender = pkt.tuples[pkt.dir.index()].src;
        let who = match pkt.dir {
            Dir::Original => "client",
            Dir::Reply => "server",
        };
        let addr = a.addr.unwrap_or(sender);
        if addr.is_ipv4() != sender.is_ipv4() {
            out.event(
                HelperEventKind::Refused,
                format!(
                    "ftp: {} announces {addr} on a connection of the other family",
                    cmd.name()
                ),
            );
            return;
        }
        if addr != sender && !self.loose {
            out.event(
                HelperEventKind::Refused,
                format!(
                    "ftp: FTP bounce: {} announces {addr}, the {who} is {sender}",
                    cmd.name()
                ),
            );
            return;
        }
        let site_start = start.saturating_add(a.site.start as u64);
        let site = (site_start >= base).then(|| Site {
            offset: usize::try_from(site_start - base).unwrap_or(usize::MAX),
            len: a.site.len(),
            kind: cmd.kind(),
        });
        if site.is_none() && pkt.nat {
            out.event(
                HelperEventKind::Unsynced,
                format!(
                    "ftp: {} {}: the announcement began in an earlier segment, NAT cannot rewrite it",
                    cmd.name(),
                    endpoint(addr, a.port)
                ),
            );
            return;
        }
        let peer = pkt.dir.flip();
        out.expects.push(ExpectRequest {
            dir: peer,
            proto: 6,
            src: Some(pkt.tuples[peer.index()].src),
            src_port: None,
            dst: addr,
            dst_port: a.port,
            site,
            permanent: false,
            child_helper: None,
            nat_to: None,
            rtp_pair: false,
        });
        out.event(
            HelperEventKind::Parsed,
            format!("ftp: {} {}", cmd.name(), endpoint(addr, a.port)),
        );
    }
}

fn too_long(cmd: Cmd, out: &mut HelperOutput) {
    out.event(
        HelperEventKind::Malformed,
        format!("ftp: {}: line longer than {MAX_LINE} bytes", cmd.name()),
    );
}

/// What a command line announces.
#[derive(Debug, PartialEq, Eq)]
struct Announce {
    /// None: the sender's own address (229).
    addr: Option<IpAddr>,
    port: u16,
    /// The bytes NAT replaces, relative to the argument's start.
    site: Range<usize>,
}

fn skip_spaces(a: &[u8], mut i: usize) -> usize {
    while a.get(i) == Some(&b' ') {
        i += 1;
    }
    i
}

/// Only spaces and the line's `\r` may follow a command's argument.
fn end_of_line(a: &[u8], i: usize) -> Result<(), &'static str> {
    match a.get(i..) {
        Some(rest) if rest.iter().all(|&b| b == b' ' || b == b'\r') => Ok(()),
        _ => Err("unexpected bytes after the argument"),
    }
}

/// A decimal number of 1 to `digits` digits at `*i`.
fn number(a: &[u8], i: &mut usize, digits: usize) -> Option<u32> {
    let start = *i;
    let mut v: u32 = 0;
    while let Some(&b) = a.get(*i) {
        if !b.is_ascii_digit() || *i - start == digits {
            break;
        }
        v = v * 10 + u32::from(b - b'0');
        *i += 1;
    }
    (*i > start && !a.get(*i).is_some_and(u8::is_ascii_digit)).then_some(v)
}

/// `h1,h2,h3,h4,p1,p2` (RFC 959) at `start`: the address, the port and where it ends.
fn rfc959(a: &[u8], start: usize) -> Result<(Ipv4Addr, u16, usize), &'static str> {
    let mut n = [0u8; 6];
    let mut i = start;
    for (k, slot) in n.iter_mut().enumerate() {
        if k > 0 {
            if a.get(i) != Some(&b',') {
                return Err("expected h1,h2,h3,h4,p1,p2");
            }
            i += 1;
        }
        let v = number(a, &mut i, 3).ok_or("expected h1,h2,h3,h4,p1,p2")?;
        *slot = u8::try_from(v).map_err(|_| "a number above 255")?;
    }
    let addr = Ipv4Addr::new(n[0], n[1], n[2], n[3]);
    Ok((addr, u16::from_be_bytes([n[4], n[5]]), i))
}

/// Refuses what no data connection can go to.
fn usable(addr: Option<IpAddr>, port: u16) -> Result<(), &'static str> {
    if port == 0 {
        return Err("port 0");
    }
    if addr.is_some_and(|a| a.is_unspecified()) {
        return Err("the unspecified address");
    }
    Ok(())
}

/// `PORT h1,h2,h3,h4,p1,p2`.
fn parse_port(a: &[u8]) -> Result<Announce, &'static str> {
    let start = skip_spaces(a, 0);
    let (addr, port, end) = rfc959(a, start)?;
    end_of_line(a, end)?;
    usable(Some(addr.into()), port)?;
    Ok(Announce {
        addr: Some(addr.into()),
        port,
        site: start..end,
    })
}

/// `227 <text> h1,h2,h3,h4,p1,p2 <text>`: RFC 1123 (4.1.2.6) tells clients to scan for the
/// first digit, as servers differ in the text around the numbers.
fn parse_pasv(a: &[u8]) -> Result<Announce, &'static str> {
    let start = a
        .iter()
        .position(u8::is_ascii_digit)
        .ok_or("no address in the reply")?;
    let (addr, port, end) = rfc959(a, start)?;
    usable(Some(addr.into()), port)?;
    Ok(Announce {
        addr: Some(addr.into()),
        port,
        site: start..end,
    })
}

/// The delimiter of an RFC 2428 argument: printable ASCII but space.
fn delimiter(a: &[u8], i: usize) -> Result<u8, &'static str> {
    match a.get(i) {
        Some(&d) if (33..=126).contains(&d) => Ok(d),
        _ => Err("expected a delimiter"),
    }
}

/// A TCP port of 1 to 5 digits at `*i`.
fn tcp_port(a: &[u8], i: &mut usize) -> Result<u16, &'static str> {
    let v = number(a, i, 5).ok_or("expected a port number")?;
    u16::try_from(v).map_err(|_| "a port above 65535")
}

/// `EPRT <d><af><d><addr><d><port><d>` (RFC 2428 section 2).
fn parse_eprt(a: &[u8]) -> Result<Announce, &'static str> {
    let start = skip_spaces(a, 0);
    let d = delimiter(a, start)?;
    let field = |from: usize| -> Result<(&[u8], usize), &'static str> {
        let rest = a.get(from..).ok_or("truncated")?;
        let len = rest
            .iter()
            .position(|&b| b == d)
            .ok_or("missing delimiter")?;
        Ok((&rest[..len], from + len + 1))
    };
    let (af, i) = field(start + 1)?;
    let (text, i) = field(i)?;
    let text = std::str::from_utf8(text).map_err(|_| "address is not text")?;
    let addr: IpAddr = match af {
        b"1" => text
            .parse::<Ipv4Addr>()
            .map_err(|_| "bad IPv4 address")?
            .into(),
        b"2" => text
            .parse::<Ipv6Addr>()
            .map_err(|_| "bad IPv6 address")?
            .into(),
        _ => return Err("unknown network protocol (not 1 or 2)"),
    };
    let mut j = i;
    let port = tcp_port(a, &mut j)?;
    if a.get(j) != Some(&d) {
        return Err("missing delimiter after the port");
    }
    end_of_line(a, j + 1)?;
    usable(Some(addr), port)?;
    Ok(Announce {
        addr: Some(addr),
        port,
        site: start..j + 1,
    })
}

/// `229 <text> (<d><d><d><port><d>)` (RFC 2428 section 3): a port on the server's address.
fn parse_epsv(a: &[u8]) -> Result<Announce, &'static str> {
    let open = a
        .iter()
        .position(|&b| b == b'(')
        .ok_or("no '(' in the reply")?;
    let start = open + 1;
    let d = delimiter(a, start)?;
    if a.get(start + 1) != Some(&d) || a.get(start + 2) != Some(&d) {
        return Err("expected (<d><d><d>port<d>)");
    }
    let mut i = start + 3;
    let port = tcp_port(a, &mut i)?;
    if a.get(i) != Some(&d) || a.get(i + 1) != Some(&b')') {
        return Err("expected (<d><d><d>port<d>)");
    }
    usable(None, port)?;
    Ok(Announce {
        addr: None,
        port,
        site: start..i + 1,
    })
}

/// Parses the replacement text of a site of kind `kind` back into (address, port): what a
/// peer reads from a rewritten command (`None` address: the sender's).
pub(crate) fn reparse(kind: u8, text: &[u8]) -> Option<(Option<IpAddr>, u16)> {
    let a = match kind {
        SITE_PORT => parse_port(text),
        SITE_PASV => parse_pasv(text),
        SITE_EPRT => parse_eprt(text),
        SITE_EPSV => parse_epsv(&[b"(", text, b")"].concat()),
        _ => return None,
    };
    a.ok().map(|a| (a.addr, a.port))
}

#[cfg(test)]
mod tests;
