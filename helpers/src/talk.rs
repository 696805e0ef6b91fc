//! The talk helpers: `ntalk` (UDP 518, the 4.3BSD protocol, version 1, talkd(8) and
//! `<protocols/talkd.h>`) and `talk` (UDP 517, the 4.2BSD protocol, which has no version byte),
//! as the old netfilter talk helper called them.
//!
//! # The rendezvous
//!
//! The caller's talk client sends, from its UDP control socket, a LOOK_UP and then an ANNOUNCE
//! (a `CTL_MSG`) to the callee's talk daemon. Each carries `ctl_addr`, where the daemon must
//! send its `CTL_RESPONSE`, and `addr`, the caller's TCP socket waiting for the conversation.
//! The announcement makes the callee run talk, whose client sends a LOOK_UP to the *caller's*
//! daemon; that daemon answers SUCCESS with the caller's TCP address, and the callee's client
//! connects there. Through a router that NATs the caller, the helper therefore:
//!
//! - for `ctl_addr` in a LOOK_UP or ANNOUNCE: expects the daemon's answer (UDP, from the
//!   daemon's address and port) at that address, with a site, so NAT rewrites it to an
//!   address the daemon can reach and the answer is sent on to the client;
//! - for `addr` in a LOOK_UP or ANNOUNCE: expects the callee's TCP connection (from the
//!   daemon's host, any port) at that address, with a site;
//! - for an ANNOUNCE: expects the callee's lookup (UDP, from the callee's host, any port) at the
//!   caller's address as the callee sees it and the talk daemon port this master went to; under
//!   NAT it is sent on to the caller's host on that port ([`ExpectRequest::nat_to`]), and the
//!   helper is attached to it (`child_helper`) so that the answer it gets is handled too;
//! - for the `addr` of a response to a LOOK_UP with answer SUCCESS (only those carry a valid
//!   address: talkd leaves it unset otherwise): expects the requesting host's TCP connection
//!   there, with a site.
//!
//! An address must be the sender's own (the tuple source of its direction) unless `loose`,
//! like FTP's bounce check; an all-zero address is an unset field (the first LOOK_UP of some
//! clients) and skipped. LEAVE_INVITE and DELETE need nothing (the first goes to the local
//! daemon; the answer to the second is not awaited).
//!
//! **IPv4 only**: the messages carry 4.3BSD `osockaddr`s of family `AF_INET`; the protocol has
//! no IPv6 form, so on an IPv6 connection every address is refused.
//!
//! # Layouts
//!
//! `ntalk` (`CTL_MSG`, 84 bytes): vers, type, answer, pad, id_num (4), addr (16), ctl_addr (16),
//! pid (4), l_name (12), r_name (12), r_tty (16); `CTL_RESPONSE` (24 bytes): vers, type,
//! answer, pad, id_num, addr. An `osockaddr` is family (2, big-endian, `AF_INET` = 2), port (2,
//! big-endian), IPv4 address (4), zero (8).
//!
//! `talk`, from the 4.2BSD `ctl.h` (`struct ctl_msg` / `struct ctl_response` in the VAX layout,
//! 4-byte integers aligned): `CTL_MSG` (76 bytes): type, l_name (9), r_name (9), pad, id_num
//! (4), pid (4), r_tty (16), addr (16), ctl_addr (16); `CTL_RESPONSE` (24 bytes): type,
//! answer, pad (2), id_num (4), addr (16). Its `sockaddr_in` family was in host order (the VAX's
//! little-endian), so family 2 is accepted in either byte order; ports and addresses are in
//! network order in both protocols.
//!
//! Each site covers the 6 bytes of port and address of one `osockaddr`.

use crate::chain::Chain;
use crate::{
    endpoint, ExpectPolicy, ExpectRequest, Helper, HelperConfig, HelperEventKind, HelperOutput,
    HelperPacket, HelperState, Site, SiteRewrite,
};
use conntrack::tuple::Dir;
use std::any::Any;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// The site kind of an `osockaddr`'s port and address (6 bytes).
pub const SITE_SOCKADDR: u8 = 0;

/// The talk protocol version of `ntalk` (`TALK_VERSION`).
const TALK_VERSION: u8 = 1;

/// Request types.
const LEAVE_INVITE: u8 = 0;
const LOOK_UP: u8 = 1;
const DELETE: u8 = 2;
const ANNOUNCE: u8 = 3;

/// The answer that carries an address.
const SUCCESS: u8 = 0;

/// Where the fields are in one protocol's messages.
#[derive(Debug)]
struct Layout {
    request_len: usize,
    response_len: usize,
    /// The version byte (ntalk only).
    vers: Option<usize>,
    request_type: usize,
    response_type: usize,
    response_answer: usize,
    /// The `osockaddr`s of a request, and of a response.
    addr: usize,
    ctl_addr: usize,
    response_addr: usize,
    /// The caller's and callee's names, and their size.
    l_name: usize,
    r_name: usize,
    name_len: usize,
}

/// `ntalk`, protocol version 1.
const NTALK: Layout = Layout {
    request_len: 84,
    response_len: 24,
    vers: Some(0),
    request_type: 1,
    response_type: 1,
    response_answer: 2,
    addr: 8,
    ctl_addr: 24,
    response_addr: 8,
    l_name: 44,
    r_name: 56,
    name_len: 12,
};

/// The 4.2BSD `talk`.
const OTALK: Layout = Layout {
    request_len: 76,
    response_len: 24,
    vers: None,
    request_type: 0,
    response_type: 0,
    response_answer: 1,
    addr: 44,
    ctl_addr: 60,
    response_addr: 8,
    l_name: 1,
    r_name: 10,
    name_len: 9,
};

/// A talk helper (`talk` or `ntalk`).
#[derive(Debug)]
pub struct Talk {
    name: &'static str,
    layout: &'static Layout,
    ports: Vec<u16>,
    loose: bool,
}

impl Talk {
    /// `talk`: the 4.2BSD protocol (default port 517).
    pub fn otalk(cfg: &HelperConfig) -> Talk {
        Talk {
            name: "talk",
            layout: &OTALK,
            ports: cfg.ports.clone().unwrap_or_else(|| vec![517]),
            loose: cfg.loose,
        }
    }

    /// `ntalk`: the 4.3BSD protocol, version 1 (default port 518).
    pub fn ntalk(cfg: &HelperConfig) -> Talk {
        Talk {
            name: "ntalk",
            layout: &NTALK,
            ports: cfg.ports.clone().unwrap_or_else(|| vec![518]),
            loose: cfg.loose,
        }
    }
}

/// Talk keeps nothing per connection: each message stands alone.
#[derive(Debug)]
struct TalkState;

/// An `osockaddr` as read.
#[derive(Debug, PartialEq, Eq)]
enum Sock {
    /// All zero: the field was not filled in.
    Unset,
    /// A family other than `AF_INET` (as the two bytes read big-endian).
    Family(u16),
    /// An IPv4 address and port.
    V4(Ipv4Addr, u16),
}

impl Helper for Talk {
    fn name(&self) -> &'static str {
        self.name
    }

    fn proto(&self) -> u8 {
        17
    }

    fn ports(&self) -> &[u16] {
        &self.ports
    }

    fn policy(&self) -> ExpectPolicy {
        // A LOOK_UP expects two connections and an ANNOUNCE three; the caller re-announces
        // every 30 s (RING_WAIT) while daemons keep an invitation 60 s (MAX_LIFE).
        ExpectPolicy {
            max_expected: 6,
            timeout: Duration::from_secs(60),
        }
    }

    fn new_state(&self) -> HelperState {
        Box::new(TalkState)
    }

    fn handle(
        &self,
        _state: &mut (dyn Any + Send + Sync),
        pkt: &HelperPacket<'_>,
        out: &mut HelperOutput,
    ) {
        let c = Chain::new(pkt.payload);
        match pkt.dir {
            Dir::Original => self.request(&c, pkt, out),
            Dir::Reply => self.response(&c, pkt, out),
        }
    }

    fn nat_format(&self, _kind: u8, addr: IpAddr, port: u16) -> Vec<u8> {
        // One kind: port and IPv4 address. An IPv6 address (never announced: talk is IPv4)
        // writes its mapped IPv4 form, or 0.0.0.0.
        let v4 = match addr {
            IpAddr::V4(a) => a,
            IpAddr::V6(a) => a.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
        };
        let mut b = port.to_be_bytes().to_vec();
        b.extend_from_slice(&v4.octets());
        b
    }
}

fn type_name(t: u8) -> &'static str {
    match t {
        LEAVE_INVITE => "LEAVE_INVITE",
        LOOK_UP => "LOOK_UP",
        DELETE => "DELETE",
        ANNOUNCE => "ANNOUNCE",
        _ => "unknown",
    }
}

impl Talk {
    /// Checks the length and version of a message; false (with an event) if it is not one.
    fn framing(&self, c: &Chain<'_>, len: usize, what: &str, out: &mut HelperOutput) -> bool {
        if c.len() != len {
            out.event(
                HelperEventKind::Malformed,
                format!("{}: {what} of {} bytes (it has {len})", self.name, c.len()),
            );
            return false;
        }
        if let Some(at) = self.layout.vers {
            let v = c.byte(at).unwrap_or(0);
            if v != TALK_VERSION {
                out.event(
                    HelperEventKind::Malformed,
                    format!("{}: {what} of protocol version {v}", self.name),
                );
                return false;
            }
        }
        true
    }

    fn sockaddr(&self, c: &Chain<'_>, at: usize) -> Sock {
        let mut b = [0u8; 8];
        if !c.read(at, &mut b) || b == [0; 8] {
            return Sock::Unset;
        }
        let family = [b[0], b[1]];
        // 4.2BSD wrote the family in the VAX's byte order.
        let inet = family == [0, 2] || (self.layout.vers.is_none() && family == [2, 0]);
        if !inet {
            return Sock::Family(u16::from_be_bytes(family));
        }
        Sock::V4(
            Ipv4Addr::new(b[4], b[5], b[6], b[7]),
            u16::from_be_bytes([b[2], b[3]]),
        )
    }

    /// Reads the `osockaddr` at `at` as an announcement of the sender's; None (with an event)
    /// if it is unset, not `AF_INET`, unusable or (unless `loose`) not the sender's. With
    /// `portless`, the sender's address with port 0 (a request's `addr` before the client
    /// listens) is no error: it is only rewritten under NAT.
    fn announced(
        &self,
        c: &Chain<'_>,
        at: usize,
        what: &str,
        portless: bool,
        pkt: &HelperPacket<'_>,
        out: &mut HelperOutput,
    ) -> Option<(IpAddr, u16, Site)> {
        let (ip, port) = match self.sockaddr(c, at) {
            Sock::Unset => return None,
            Sock::Family(f) => {
                out.event(
                    HelperEventKind::Malformed,
                    format!("{}: {what}: address family {f}, not AF_INET", self.name),
                );
                return None;
            }
            Sock::V4(ip, port) => (ip, port),
        };
        let sender = pkt.tuples[pkt.dir.index()].src;
        if portless && port == 0 && IpAddr::V4(ip) == sender {
            // netkit talk's LOOK_UP names its address without a port: nothing to expect,
            // but under NAT the inside address must not leak, so it is rewritten alone.
            if pkt.nat {
                out.rewrites.push(SiteRewrite {
                    site: Site {
                        offset: at + 2,
                        len: 6,
                        kind: SITE_SOCKADDR,
                    },
                    addr: pkt.tuples[pkt.dir.flip().index()].dst,
                    port: 0,
                });
            }
            return None;
        }
        if ip.is_unspecified() || port == 0 {
            out.event(
                HelperEventKind::Malformed,
                format!(
                    "{}: {what}: {ip}:{port} is not an address to connect to",
                    self.name
                ),
            );
            return None;
        }
        if !sender.is_ipv4() {
            out.event(
                HelperEventKind::Refused,
                format!(
                    "{}: {what}: IPv4 address {ip} on an IPv6 connection",
                    self.name
                ),
            );
            return None;
        }
        if IpAddr::V4(ip) != sender && !self.loose {
            out.event(
                HelperEventKind::Refused,
                format!(
                    "{}: {what} announces {ip}, the sender is {sender}",
                    self.name
                ),
            );
            return None;
        }
        // The port and address, after the 2-byte family.
        let site = Site {
            offset: at + 2,
            len: 6,
            kind: SITE_SOCKADDR,
        };
        Some((IpAddr::V4(ip), port, site))
    }

    fn request(&self, c: &Chain<'_>, pkt: &HelperPacket<'_>, out: &mut HelperOutput) {
        let l = self.layout;
        if !self.framing(c, l.request_len, "request", out) {
            return;
        }
        let t = c.byte(l.request_type).unwrap_or(u8::MAX);
        match t {
            LOOK_UP | ANNOUNCE => {}
            LEAVE_INVITE | DELETE => return,
            _ => {
                out.event(
                    HelperEventKind::Malformed,
                    format!("{}: request of unknown type {t}", self.name),
                );
                return;
            }
        }
        let name = type_name(t);
        let peer = pkt.dir.flip();
        let daemon = &pkt.tuples[peer.index()];
        let first = out.expects.len();
        let mut detail = format!(
            "{}: {name} {} -> {}",
            self.name,
            self.user(c, l.l_name),
            self.user(c, l.r_name)
        );
        if let Some((ip, port, site)) =
            self.announced(c, l.ctl_addr, &format!("{name} ctl_addr"), false, pkt, out)
        {
            // The daemon's answer, from its own address and port.
            out.expects.push(ExpectRequest {
                dir: peer,
                proto: 17,
                src: Some(daemon.src),
                src_port: Some(daemon.src_id),
                dst: ip,
                dst_port: port,
                site: Some(site),
                permanent: false,
                child_helper: None,
                nat_to: None,
                rtp_pair: false,
            });
            detail += &format!(", answer to {}", endpoint(ip, port));
        }
        if let Some((ip, port, site)) =
            self.announced(c, l.addr, &format!("{name} addr"), true, pkt, out)
        {
            // The callee's conversation, from the callee's host.
            out.expects.push(ExpectRequest {
                dir: peer,
                proto: 6,
                src: Some(daemon.src),
                src_port: None,
                dst: ip,
                dst_port: port,
                site: Some(site),
                permanent: false,
                child_helper: None,
                nat_to: None,
                rtp_pair: false,
            });
            detail += &format!(", talk at {}", endpoint(ip, port));
        }
        if t == ANNOUNCE {
            // The callee's client will look the invitation up at the caller's daemon: the
            // caller's address as the callee's side sees it, on the daemon port used here.
            let caller = &pkt.tuples[pkt.dir.index()];
            out.expects.push(ExpectRequest {
                dir: peer,
                proto: 17,
                src: Some(daemon.src),
                src_port: None,
                dst: daemon.dst,
                dst_port: caller.dst_id,
                site: None,
                permanent: false,
                child_helper: Some(self.name),
                nat_to: Some((caller.src, caller.dst_id)),
                rtp_pair: false,
            });
            detail += &format!(", lookup at {}", endpoint(daemon.dst, caller.dst_id));
        }
        if out.expects.len() > first {
            out.event(HelperEventKind::Parsed, detail);
        }
    }

    fn response(&self, c: &Chain<'_>, pkt: &HelperPacket<'_>, out: &mut HelperOutput) {
        let l = self.layout;
        if !self.framing(c, l.response_len, "response", out) {
            return;
        }
        let t = c.byte(l.response_type).unwrap_or(u8::MAX);
        let answer = c.byte(l.response_answer).unwrap_or(u8::MAX);
        // Only a found invitation carries an address.
        if t != LOOK_UP || answer != SUCCESS {
            return;
        }
        if self.sockaddr(c, l.response_addr) == Sock::Unset {
            out.event(
                HelperEventKind::Malformed,
                format!("{}: LOOK_UP answered SUCCESS without an address", self.name),
            );
            return;
        }
        let Some((ip, port, site)) =
            self.announced(c, l.response_addr, "LOOK_UP SUCCESS addr", false, pkt, out)
        else {
            return;
        };
        let peer = pkt.dir.flip();
        out.expects.push(ExpectRequest {
            dir: peer,
            proto: 6,
            src: Some(pkt.tuples[peer.index()].src),
            src_port: None,
            dst: ip,
            dst_port: port,
            site: Some(site),
            permanent: false,
            child_helper: None,
            nat_to: None,
            rtp_pair: false,
        });
        out.event(
            HelperEventKind::Parsed,
            format!(
                "{}: LOOK_UP SUCCESS: talk at {}",
                self.name,
                endpoint(ip, port)
            ),
        );
    }

    /// A user name field (NUL-padded), for events.
    fn user(&self, c: &Chain<'_>, at: usize) -> String {
        let mut b = [0u8; 12];
        let b = &mut b[..self.layout.name_len];
        c.read(at, b);
        let end = b.iter().position(|&x| x == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    }
}

#[cfg(test)]
mod tests;
