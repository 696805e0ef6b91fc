//! What an address found in an H.323 message leads to (expectation, rewrite, or nothing), and
//! the bytes NAT writes over it.
//!
//! Let `d` be the message's direction and `t` the connection's tuples (`t[d].src` is the
//! sender as the router sees it arrive, `t[!d].dst` the same endpoint as the receiver sees
//! it after NAT). For an address `A:P` in the message:
//!
//! - the sender's own endpoint of this connection (`A:P = t[d].src:port`, same protocol),
//!   where the peer's messages come back on this very flow (a RAS `rasAddress`), or an
//!   endpoint named only for information (Setup's `sourceCallSignalAddress`), is *mapped*:
//!   under NAT it becomes `t[!d].dst` and its port; the receiver's endpoint as the sender
//!   addressed it (`t[d].dst`, Setup's `destCallSignalAddress` through a port forward)
//!   becomes `t[!d].src`. A port of another connection (another protocol, or a port that is
//!   not the connection's) keeps its number and only the address is mapped. These are
//!   [`crate::SiteRewrite`]s; nothing is expected.
//! - an address of the sender's host that the receiver (or the gatekeeper) will connect to
//!   (`h245Address`, media, T.120, RRQ's `callSignalAddress`, a RAS address on another port)
//!   is *expected*: from the receiver's host, any port, to `A:P`, with a site so that NAT
//!   picks a free port on its own address and rewrites the announcement (Linux checks the
//!   same: an announced address must be the sender's).
//! - an address the receiver is told to call (ACF's `destCallSignalAddress`, LCF's
//!   `callSignalAddress`, Facility's `alternativeAddress`) is expected from the receiver,
//!   with a site if it is the sender's host, else as it is (a third party, `nat_to` itself).
//! - any other address is refused (a counted event), unless the helper is `loose`: then it
//!   is expected as it is, without a site.
//!
//! An address in the bytes of an earlier segment (a message split across segments) cannot be
//! rewritten any more: under NAT its expectation is not created either (counted as
//! unsynced), since the peer would be told an address it cannot reach.

use super::{Addr, Field, Found, Msg};
use crate::{ExpectRequest, HelperEventKind, HelperOutput, HelperPacket, Site, SiteRewrite};
use std::net::IpAddr;

/// Site kind of an IPv4 address and port (6 bytes).
pub const SITE_IP4: u8 = 4;
/// Site kind of an IPv6 address and port (18 bytes).
pub const SITE_IP6: u8 = 6;

/// The bytes of an address and port as PER writes them: the 4 or 16 address octets, then
/// the port, big-endian. The family is the address's own; a site of the other family (which
/// the engine never asks for: expectations keep the master's family) gets its own length.
pub fn nat_format(_kind: u8, addr: IpAddr, port: u16) -> Vec<u8> {
    let mut v = match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    v.extend_from_slice(&port.to_be_bytes());
    v
}

/// What an address is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// A RAS address: the peer's RAS messages go there.
    Ras,
    /// A registering endpoint's call signalling address: the gatekeeper calls it.
    Register,
    /// A call signalling address the receiver is to call.
    CallTarget,
    /// The sender's H.245 address.
    H245,
    /// RTP or RTCP.
    Media,
    /// A T.120 address.
    T120,
    /// Told for information only.
    Info,
}

fn role(msg: Msg, field: Field) -> Role {
    match (msg, field) {
        (Msg::Grq | Msg::Gcf | Msg::Rrq, Field::RasAddress) | (Msg::Lrq, Field::ReplyAddress) => {
            Role::Ras
        }
        (Msg::Rrq, Field::CallSignalAddress) => Role::Register,
        (Msg::Acf, Field::DestCallSignalAddress)
        | (Msg::Lcf, Field::CallSignalAddress)
        | (Msg::Facility, Field::AlternativeAddress) => Role::CallTarget,
        (_, Field::H245Address) => Role::H245,
        (_, Field::MediaChannel | Field::MediaControlChannel) => Role::Media,
        (_, Field::SeparateStack) => Role::T120,
        _ => Role::Info,
    }
}

impl Role {
    fn proto(self) -> u8 {
        match self {
            Role::Ras | Role::Media => 17,
            _ => 6,
        }
    }

    fn child(self) -> Option<&'static str> {
        match self {
            Role::Ras => Some("RAS"),
            Role::Register | Role::CallTarget => Some("Q.931"),
            Role::H245 => Some("H.245"),
            _ => None,
        }
    }

    /// Linux keeps these: a registration accepts several calls, a T.120 session several
    /// connections.
    fn permanent(self) -> bool {
        matches!(self, Role::Register | Role::CallTarget | Role::T120)
    }
}

/// Turns one found address into expectations, rewrites or events. `offset` gives the
/// payload offset in this packet of a chain position (None: in an earlier segment). Returns
/// a short description of what was done, for the message's event.
pub(crate) fn act(
    found: &Found,
    pkt: &HelperPacket<'_>,
    loose: bool,
    offset: &dyn Fn(usize) -> Option<usize>,
    out: &mut HelperOutput,
) -> &'static str {
    let a: Addr = found.addr;
    let t = pkt.tuples;
    let d = pkt.dir.index();
    let r = pkt.dir.flip().index();
    if a.ip.is_ipv4() != t[d].src.is_ipv4() {
        return "other family, ignored";
    }
    if a.multicast {
        return "multicast, ignored";
    }
    let role = role(found.msg, found.field);
    let site = offset(a.at).map(|offset| Site {
        offset,
        len: a.len(),
        kind: if a.ip.is_ipv4() { SITE_IP4 } else { SITE_IP6 },
    });
    let same_proto = role.proto() == t[d].proto;
    let own_endpoint = same_proto && a.ip == t[d].src && a.port == t[d].src_id;
    if role == Role::Info || (role == Role::Ras && own_endpoint) {
        return map(a, pkt, same_proto, site, out);
    }
    let own_host = a.ip == t[d].src;
    let (site, nat_to) = if own_host {
        if pkt.nat && site.is_none() {
            out.event(
                HelperEventKind::Unsynced,
                format!(
                    "{}.{} {}: in an earlier segment, cannot be rewritten for NAT",
                    found.msg.name(),
                    found.field.name(),
                    crate::endpoint(a.ip, a.port)
                ),
            );
            return "not rewritable";
        }
        (site, None)
    } else if role == Role::CallTarget || loose {
        (None, Some((a.ip, a.port)))
    } else {
        out.event(
            HelperEventKind::Refused,
            format!(
                "{}.{} {}: not the sender's address ({})",
                found.msg.name(),
                found.field.name(),
                crate::endpoint(a.ip, a.port),
                t[d].src
            ),
        );
        return "refused";
    };
    if a.port == 0 {
        return "port 0, ignored";
    }
    out.expects.push(ExpectRequest {
        dir: pkt.dir.flip(),
        proto: role.proto(),
        src: Some(t[r].src),
        src_port: None,
        dst: a.ip,
        dst_port: a.port,
        site,
        permanent: role.permanent(),
        child_helper: role.child(),
        nat_to,
        rtp_pair: role == Role::Media,
    });
    "expected"
}

/// Maps an endpoint of the master connection through its NAT (see the module's text).
fn map(
    a: Addr,
    pkt: &HelperPacket<'_>,
    same_proto: bool,
    site: Option<Site>,
    out: &mut HelperOutput,
) -> &'static str {
    let t = pkt.tuples;
    let (d, r) = (pkt.dir.index(), pkt.dir.flip().index());
    let to = if a.ip == t[d].src {
        let port = if same_proto && a.port == t[d].src_id {
            t[r].dst_id
        } else {
            a.port
        };
        (t[r].dst, port)
    } else if a.ip == t[d].dst {
        let port = if same_proto && a.port == t[d].dst_id {
            t[r].src_id
        } else {
            a.port
        };
        (t[r].src, port)
    } else {
        return "noted";
    };
    if !pkt.nat || to == (a.ip, a.port) {
        return "noted";
    }
    let Some(site) = site else {
        out.event(
            HelperEventKind::Unsynced,
            format!(
                "{}: in an earlier segment, cannot be rewritten for NAT",
                crate::endpoint(a.ip, a.port)
            ),
        );
        return "not rewritable";
    };
    out.rewrites.push(SiteRewrite {
        site,
        addr: to.0,
        port: to.1,
    });
    "rewritten"
}
