//! The H.323 helpers, by Linux's names: `RAS` (UDP 1719: gatekeeper discovery, registration,
//! admission and location), `Q.931` (TCP 1720: H.225.0 call signalling) and `H.245` (the
//! media control connection a Q.931 message announces; no port of its own, it is attached to
//! the expected connection).
//!
//! H.323 carries transport addresses inside ASN.1 messages encoded in PER (ITU-T X.691,
//! aligned): [`per`] reads them over the segment chain, [`types`] describes the types to
//! skip, and one walker per protocol goes from the top of a message to the fields that hold
//! addresses: [`ras`] (RasMessage), [`q931`] (TPKT, Q.931 and the H323-UserInformation in its
//! User-user element, with the H.245 messages of `fastStart`, `h245Control` and
//! `parallelH245Control`) and [`h245`] (MultimediaSystemControlMessage: OpenLogicalChannel and
//! OpenLogicalChannelAck). Each address found is a [`Found`]: the message, the field, the
//! address and port, and where its bytes are (PER writes an IPv4 address as 4 octets and an
//! IPv6 address as 16, each followed by the 2-octet port, octet-aligned: a NAT rewrite is 6
//! or 18 bytes for 6 or 18, never a change of length).
//!
//! What an address leads to ([`nat`] has the details):
//!
//! | address | from | leads to |
//! |---|---|---|
//! | `rasAddress` (GRQ, GCF, RRQ), `replyAddress` (LRQ) | the sender's RAS socket | the peer's RAS messages: the same flow (rewritten under NAT) or an expected UDP flow, helped by `RAS` |
//! | `callSignalAddress` (RRQ) | the registering endpoint | the gatekeeper's calls to it: expected TCP, `Q.931`, permanent |
//! | `destCallSignalAddress` (ACF), `callSignalAddress` (LCF), `alternativeAddress` (Facility) | anyone | the receiver's call to it: expected TCP, `Q.931` |
//! | `h245Address` (Setup, Call Proceeding, Alerting, Connect, Facility, Progress) | the sender | the peer's H.245 connection: expected TCP, `H.245` |
//! | `mediaChannel`, `mediaControlChannel` (OpenLogicalChannel, OpenLogicalChannelAck) | the sender | the peer's RTP (even port) and RTCP (the next): an expected UDP pair |
//! | `separateStack` `localAreaAddress` (OpenLogicalChannel, OpenLogicalChannelAck) | the sender | the peer's T.120 connection: expected TCP, permanent |
//! | `callSignalAddress` (RCF), `destCallSignalAddress`, `srcCallSignalAddress` (ARQ), `destCallSignalAddress`, `sourceCallSignalAddress` (Setup), `rasAddress` (LCF) | either side | nothing expected; rewritten under NAT when it names an endpoint of this connection |
//!
//! IPv4 and IPv6 alike (Linux rewrites IPv4 only). An address of the other family than the
//! connection is left alone.

pub mod h245;
pub mod nat;
pub mod per;
pub mod q931;
pub mod ras;
pub mod tpkt;
pub mod types;

#[cfg(test)]
mod tests;

use per::{Choice, PerReader, PerResult};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address read from a message: the address, the port, and where its bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addr {
    /// The address.
    pub ip: IpAddr,
    /// The port (H.245: the TSAP identifier).
    pub port: u16,
    /// Byte position of the address octets in the chain the message was read from; the two
    /// port octets follow them.
    pub at: usize,
    /// An H.245 multicast address (nothing to expect for it).
    pub multicast: bool,
}

impl Addr {
    /// Bytes of address and port: 6 (IPv4) or 18 (IPv6).
    pub fn len(&self) -> usize {
        match self.ip {
            IpAddr::V4(_) => 6,
            IpAddr::V6(_) => 18,
        }
    }

    /// Never empty (for clippy's `len` rule).
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The messages whose addresses the walkers report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Msg {
    /// GatekeeperRequest.
    Grq,
    /// GatekeeperConfirm.
    Gcf,
    /// RegistrationRequest.
    Rrq,
    /// RegistrationConfirm.
    Rcf,
    /// AdmissionRequest.
    Arq,
    /// AdmissionConfirm.
    Acf,
    /// LocationRequest.
    Lrq,
    /// LocationConfirm.
    Lcf,
    /// Setup-UUIE.
    Setup,
    /// CallProceeding-UUIE.
    CallProceeding,
    /// Connect-UUIE.
    Connect,
    /// Alerting-UUIE.
    Alerting,
    /// Information-UUIE.
    Information,
    /// ReleaseComplete-UUIE.
    ReleaseComplete,
    /// Facility-UUIE.
    Facility,
    /// Progress-UUIE.
    Progress,
    /// OpenLogicalChannel (H.245; in an H.245 connection, tunnelled or in fastStart).
    Olc,
    /// OpenLogicalChannelAck (H.245).
    OlcAck,
}

impl Msg {
    /// The message's name in the ASN.1 (as Wireshark shows it).
    pub fn name(self) -> &'static str {
        match self {
            Msg::Grq => "gatekeeperRequest",
            Msg::Gcf => "gatekeeperConfirm",
            Msg::Rrq => "registrationRequest",
            Msg::Rcf => "registrationConfirm",
            Msg::Arq => "admissionRequest",
            Msg::Acf => "admissionConfirm",
            Msg::Lrq => "locationRequest",
            Msg::Lcf => "locationConfirm",
            Msg::Setup => "setup",
            Msg::CallProceeding => "callProceeding",
            Msg::Connect => "connect",
            Msg::Alerting => "alerting",
            Msg::Information => "information",
            Msg::ReleaseComplete => "releaseComplete",
            Msg::Facility => "facility",
            Msg::Progress => "progress",
            Msg::Olc => "openLogicalChannel",
            Msg::OlcAck => "openLogicalChannelAck",
        }
    }
}

/// The fields that hold addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// `rasAddress`.
    RasAddress,
    /// `replyAddress` (LRQ).
    ReplyAddress,
    /// `callSignalAddress`.
    CallSignalAddress,
    /// `destCallSignalAddress`.
    DestCallSignalAddress,
    /// `srcCallSignalAddress` (ARQ).
    SrcCallSignalAddress,
    /// `sourceCallSignalAddress` (Setup).
    SourceCallSignalAddress,
    /// `alternativeAddress` (Facility).
    AlternativeAddress,
    /// `h245Address`.
    H245Address,
    /// `mediaChannel` (RTP).
    MediaChannel,
    /// `mediaControlChannel` (RTCP).
    MediaControlChannel,
    /// `separateStack.networkAddress.localAreaAddress` (T.120).
    SeparateStack,
}

impl Field {
    /// The field's name in the ASN.1.
    pub fn name(self) -> &'static str {
        match self {
            Field::RasAddress => "rasAddress",
            Field::ReplyAddress => "replyAddress",
            Field::CallSignalAddress => "callSignalAddress",
            Field::DestCallSignalAddress => "destCallSignalAddress",
            Field::SrcCallSignalAddress => "srcCallSignalAddress",
            Field::SourceCallSignalAddress => "sourceCallSignalAddress",
            Field::AlternativeAddress => "alternativeAddress",
            Field::H245Address => "h245Address",
            Field::MediaChannel => "mediaChannel",
            Field::MediaControlChannel => "mediaControlChannel",
            Field::SeparateStack => "separateStack",
        }
    }
}

/// One address a walker found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// The message it is in.
    pub msg: Msg,
    /// The field.
    pub field: Field,
    /// The address.
    pub addr: Addr,
}

/// What a walker saw besides the addresses: embedded H.245 messages it could not read
/// (each is skipped; the message around it still counts).
#[derive(Debug, Default)]
pub struct Walk {
    /// Addresses, in message order.
    pub found: Vec<Found>,
    /// Faults in embedded H.245 messages (fastStart, h245Control), each one skipped.
    pub inner_errors: Vec<per::PerError>,
}

impl Walk {
    /// Empties both lists.
    pub fn clear(&mut self) {
        self.found.clear();
        self.inner_errors.clear();
    }

    fn push(&mut self, msg: Msg, field: Field, addr: Option<Addr>) {
        if let Some(addr) = addr {
            self.found.push(Found { msg, field, addr });
        }
    }
}

/// Reads an H.225.0 TransportAddress: the address of an `ipAddress` or `ip6Address`, None
/// for the other alternatives (skipped).
pub fn h225_address(r: &mut PerReader<'_>) -> PerResult<Option<Addr>> {
    match r.choice(true, 7)? {
        Choice::Ext(..) => Ok(None),
        // ipAddress SEQUENCE { ip OCTET STRING (SIZE (4)), port INTEGER (0..65535) }
        Choice::Root(0) => ip4(r).map(Some),
        // ip6Address SEQUENCE { ip OCTET STRING (SIZE (16)), port INTEGER (0..65535), ... }
        Choice::Root(3) => {
            let ext = r.bit()?;
            let a = ip6(r)?;
            if ext {
                r.skip_additions()?;
            }
            Ok(Some(a))
        }
        Choice::Root(i) => skip_alt(r, &types::TRANSPORT_ADDRESS, i).map(|()| None),
    }
}

/// Skips root alternative `i` of the CHOICE `ty` (whose index was read).
pub(crate) fn skip_alt(r: &mut PerReader<'_>, ty: &per::Ty, i: u32) -> PerResult<()> {
    match ty {
        per::Ty::Choice(c) => match c.alts.get(i as usize) {
            Some((_, t)) => r.skip(t),
            None => Err(r.invalid("choice index past the root")),
        },
        _ => Err(r.invalid("not a choice")),
    }
}

/// 4 aligned address octets and the 2 port octets.
pub(crate) fn ip4(r: &mut PerReader<'_>) -> PerResult<Addr> {
    let mut b = [0u8; 4];
    let at = r.read_octets(&mut b)?;
    let port = r.constrained(65536)? as u16;
    Ok(Addr {
        ip: IpAddr::V4(Ipv4Addr::from(b)),
        port,
        at,
        multicast: false,
    })
}

/// 16 aligned address octets and the 2 port octets.
pub(crate) fn ip6(r: &mut PerReader<'_>) -> PerResult<Addr> {
    let mut b = [0u8; 16];
    let at = r.read_octets(&mut b)?;
    let port = r.constrained(65536)? as u16;
    Ok(Addr {
        ip: IpAddr::V6(Ipv6Addr::from(b)),
        port,
        at,
        multicast: false,
    })
}

/// Reads a `SEQUENCE OF TransportAddress` (H.225.0), reporting each address.
pub(crate) fn h225_addresses(
    r: &mut PerReader<'_>,
    w: &mut Walk,
    msg: Msg,
    field: Field,
) -> PerResult<()> {
    loop {
        let l = r.length(0, None)?;
        for _ in 0..l.n {
            let a = h225_address(r)?;
            w.push(msg, field, a);
        }
        if !l.more {
            return Ok(());
        }
    }
}

// The helpers.

use crate::{
    ExpectPolicy, Helper, HelperConfig, HelperEventKind, HelperOutput, HelperPacket, HelperState,
};
use std::any::Any;
use std::time::Duration;

/// RAS's well-known port.
pub const RAS_PORT: u16 = 1719;
/// Q.931's well-known port.
pub const Q931_PORT: u16 = 1720;

/// Linux's limits: a RAS flow registers and admits several calls; a Q.931 connection
/// expects its H.245 connection and the RTP/RTCP pairs and T.120 of its fastStart channels
/// (4 channels); an H.245 connection the same without the H.245 one.
const RAS_POLICY: ExpectPolicy = ExpectPolicy {
    max_expected: 32,
    timeout: Duration::from_secs(240),
};
const Q931_POLICY: ExpectPolicy = ExpectPolicy {
    max_expected: 4 * 4 + 4,
    timeout: Duration::from_secs(240),
};
const H245_POLICY: ExpectPolicy = ExpectPolicy {
    max_expected: 4 * 4 + 2,
    timeout: Duration::from_secs(240),
};

/// The `RAS` helper (UDP 1719).
#[derive(Debug)]
pub struct Ras {
    ports: Vec<u16>,
    loose: bool,
}

impl Ras {
    /// The helper with its settings.
    pub fn new(cfg: &HelperConfig) -> Ras {
        Ras {
            ports: cfg.ports.clone().unwrap_or_else(|| vec![RAS_PORT]),
            loose: cfg.loose,
        }
    }
}

/// Which walker a TPKT helper runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signal {
    Q931,
    H245,
}

/// The `Q.931` helper (TCP 1720, and the connections RAS and Q.931 announce).
#[derive(Debug)]
pub struct Q931 {
    ports: Vec<u16>,
    loose: bool,
}

impl Q931 {
    /// The helper with its settings.
    pub fn new(cfg: &HelperConfig) -> Q931 {
        Q931 {
            ports: cfg.ports.clone().unwrap_or_else(|| vec![Q931_PORT]),
            loose: cfg.loose,
        }
    }
}

/// The `H.245` helper: attached to the H.245 connection a Q.931 message announces; no
/// port of its own unless configured.
#[derive(Debug)]
pub struct H245 {
    ports: Vec<u16>,
    loose: bool,
}

impl H245 {
    /// The helper with its settings.
    pub fn new(cfg: &HelperConfig) -> H245 {
        H245 {
            ports: cfg.ports.clone().unwrap_or_default(),
            loose: cfg.loose,
        }
    }
}

/// A TPKT connection's state: the framing of each direction, and the walker's lists.
#[derive(Debug, Default)]
pub struct TpktState {
    dirs: [tpkt::TpktDir; 2],
    walk: Walk,
}

/// Reports a walked message: each address acted upon, one `parsed` event naming them, and
/// a `malformed` event per embedded message that did not read.
fn report(
    what: &str,
    w: &Walk,
    pkt: &HelperPacket<'_>,
    loose: bool,
    offset: &dyn Fn(usize) -> Option<usize>,
    out: &mut HelperOutput,
) {
    for e in &w.inner_errors {
        out.event(
            HelperEventKind::Malformed,
            format!("{what}: embedded H.245 message: {e}"),
        );
    }
    if w.found.is_empty() {
        return;
    }
    let mut detail = String::new();
    for f in &w.found {
        let done = nat::act(f, pkt, loose, offset, out);
        if !detail.is_empty() {
            detail.push_str(", ");
        }
        detail.push_str(&format!(
            "{}.{} {} {done}",
            f.msg.name(),
            f.field.name(),
            crate::endpoint(f.addr.ip, f.addr.port)
        ));
    }
    out.event(HelperEventKind::Parsed, format!("{what}: {detail}"));
}

impl Helper for Ras {
    fn name(&self) -> &'static str {
        "RAS"
    }
    fn proto(&self) -> u8 {
        17
    }
    fn ports(&self) -> &[u16] {
        &self.ports
    }
    fn policy(&self) -> ExpectPolicy {
        RAS_POLICY
    }
    fn new_state(&self) -> HelperState {
        Box::new(Walk::default())
    }
    fn handle(
        &self,
        state: &mut (dyn Any + Send + Sync),
        pkt: &HelperPacket<'_>,
        out: &mut HelperOutput,
    ) {
        let mut fresh = Walk::default();
        let w = state.downcast_mut::<Walk>().unwrap_or(&mut fresh);
        w.clear();
        let mut r = PerReader::new(pkt.payload);
        match ras::walk(&mut r, w) {
            Ok(kind) => {
                let name = match kind {
                    ras::RasKind::Known(m) => m.name(),
                    _ => "RAS",
                };
                report(name, w, pkt, self.loose, &Some, out);
            }
            Err(e) => out.event(HelperEventKind::Malformed, format!("RasMessage: {e}")),
        }
    }
    fn nat_format(&self, kind: u8, addr: IpAddr, port: u16) -> Vec<u8> {
        nat::nat_format(kind, addr, port)
    }
}

/// The shared work of the two TPKT helpers.
fn handle_tpkt(
    signal: Signal,
    loose: bool,
    state: &mut (dyn Any + Send + Sync),
    pkt: &HelperPacket<'_>,
    out: &mut HelperOutput,
) {
    let Some(st) = state.downcast_mut::<TpktState>() else {
        return;
    };
    let Some(seq) = pkt.seq else {
        return;
    };
    let TpktState { dirs, walk } = st;
    let ev = dirs[pkt.dir.index()].feed(seq, pkt.payload, |frame| {
        walk.clear();
        let offset = |p: usize| frame.offset(p);
        match signal {
            Signal::Q931 => match q931::walk_message(frame.parts, frame.start, frame.end, walk) {
                Ok((_, msg)) => {
                    let name = msg.map_or("Q.931", Msg::name);
                    report(name, walk, pkt, loose, &offset, out);
                }
                Err(e) => out.event(HelperEventKind::Malformed, format!("Q.931: {e}")),
            },
            Signal::H245 => {
                let mut r = PerReader::window(frame.parts, frame.start + 4, frame.end);
                match h245::walk(&mut r, walk) {
                    Ok(msg) => {
                        let name = msg.map_or("H.245", Msg::name);
                        report(name, walk, pkt, loose, &offset, out);
                    }
                    Err(e) => out.event(
                        HelperEventKind::Malformed,
                        format!("MultimediaSystemControlMessage: {e}"),
                    ),
                }
            }
        }
    });
    match ev {
        None => {}
        Some(tpkt::StreamEvent::Unsynced) => out.event(
            HelperEventKind::Unsynced,
            format!("segment at {seq} not at a TPKT header of the stream"),
        ),
        Some(tpkt::StreamEvent::BadHeader) => out.event(
            HelperEventKind::Malformed,
            "not a TPKT header where one was due; waiting for one".to_owned(),
        ),
        Some(tpkt::StreamEvent::TooLong(n)) => out.event(
            HelperEventKind::Unsynced,
            format!(
                "a {n}-byte TPKT split across segments (more than {} kept): not read",
                tpkt::MAX_BUFFERED
            ),
        ),
    }
}

impl Helper for Q931 {
    fn name(&self) -> &'static str {
        "Q.931"
    }
    fn proto(&self) -> u8 {
        6
    }
    fn ports(&self) -> &[u16] {
        &self.ports
    }
    fn policy(&self) -> ExpectPolicy {
        Q931_POLICY
    }
    fn new_state(&self) -> HelperState {
        Box::new(TpktState::default())
    }
    fn handle(
        &self,
        state: &mut (dyn Any + Send + Sync),
        pkt: &HelperPacket<'_>,
        out: &mut HelperOutput,
    ) {
        handle_tpkt(Signal::Q931, self.loose, state, pkt, out);
    }
    fn nat_format(&self, kind: u8, addr: IpAddr, port: u16) -> Vec<u8> {
        nat::nat_format(kind, addr, port)
    }
}

impl Helper for H245 {
    fn name(&self) -> &'static str {
        "H.245"
    }
    fn proto(&self) -> u8 {
        6
    }
    fn ports(&self) -> &[u16] {
        &self.ports
    }
    fn policy(&self) -> ExpectPolicy {
        H245_POLICY
    }
    fn new_state(&self) -> HelperState {
        Box::new(TpktState::default())
    }
    fn handle(
        &self,
        state: &mut (dyn Any + Send + Sync),
        pkt: &HelperPacket<'_>,
        out: &mut HelperOutput,
    ) {
        handle_tpkt(Signal::H245, self.loose, state, pkt, out);
    }
    fn nat_format(&self, kind: u8, addr: IpAddr, port: u16) -> Vec<u8> {
        nat::nat_format(kind, addr, port)
    }
}
