//! The event stream: what the control socket's `ct events` and the
//! simulator's event log show.

use crate::conn::{Conn, Counter, Status};
use crate::expect::Expectation;
use crate::proto::{proto_name, ProtoState};
use crate::tuple::{Tuple, TupleMask};
use core::fmt;
use core::fmt::Write as _;
use std::net::IpAddr;
use wire::Instant;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A connection was confirmed.
    New,
    /// A connection changed state or status.
    Update,
    /// A connection was removed.
    Destroy,
    /// An expectation was created.
    ExpectNew,
    /// An expectation was removed (used, expired or its master died).
    ExpectDestroy,
}

impl EventKind {
    /// The tag `conntrack -E` prints.
    pub fn tag(self) -> &'static str {
        match self {
            EventKind::New => "NEW",
            EventKind::Update => "UPDATE",
            EventKind::Destroy => "DESTROY",
            EventKind::ExpectNew => "EXP-NEW",
            EventKind::ExpectDestroy => "EXP-DESTROY",
        }
    }
}

/// A snapshot of a connection, detached from the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// Listing id.
    pub id: u32,
    /// Original and reply tuples.
    pub tuples: [Tuple; 2],
    /// L4 state name (may be empty).
    pub state: &'static str,
    /// Status bits.
    pub status: Status,
    /// Per-direction counters.
    pub counters: [Counter; 2],
    /// Connection mark.
    pub mark: u32,
    /// Seconds until expiry.
    pub timeout_secs: u64,
    /// Helper name, if any.
    pub helper: Option<&'static str>,
}

impl ConnInfo {
    /// Snapshot of `c` at time `now`.
    pub fn of<S: ProtoState>(c: &Conn<S>, now: Instant) -> ConnInfo {
        ConnInfo {
            id: c.id,
            tuples: c.tuples,
            state: c.l4.state_name(),
            status: c.status,
            counters: c.counters,
            mark: c.mark,
            timeout_secs: (c.expires - now).as_secs(),
            helper: c.ext.as_ref().and_then(|e| e.helper),
        }
    }

    /// One JSON object (no trailing newline).
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(256);
        let _ = write!(
            s,
            "{{\"id\":{},\"proto\":\"{}\",\"state\":\"{}\",\"timeout\":{},\"status\":[",
            self.id,
            proto_name(self.tuples[0].proto),
            self.state,
            self.timeout_secs
        );
        for (i, n) in self.status.names().enumerate() {
            let _ = write!(s, "{}\"{}\"", if i > 0 { "," } else { "" }, n);
        }
        s.push_str("],\"orig\":");
        tuple_json(&mut s, &self.tuples[0], &self.counters[0]);
        s.push_str(",\"reply\":");
        tuple_json(&mut s, &self.tuples[1], &self.counters[1]);
        let _ = write!(s, ",\"mark\":{}", self.mark);
        if self.tuples[0].zone != 0 {
            let _ = write!(s, ",\"zone\":{}", self.tuples[0].zone);
        }
        if let Some(h) = self.helper {
            let _ = write!(s, ",\"helper\":\"{h}\"");
        }
        s.push('}');
        s
    }
}

fn tuple_json(s: &mut String, t: &Tuple, c: &Counter) {
    let _ = write!(
        s,
        "{{\"src\":\"{}\",\"dst\":\"{}\",\"sport\":{},\"dport\":{},\"packets\":{},\"bytes\":{}}}",
        t.src, t.dst, t.src_id, t.dst_id, c.packets, c.bytes
    );
}

/// Formats like one line of `conntrack -L`.
impl fmt::Display for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.tuples[0].proto;
        write!(f, "{:<8} {} {}", proto_name(p), p, self.timeout_secs)?;
        if !self.state.is_empty() {
            write!(f, " {}", self.state)?;
        }
        let ports = matches!(p, 6 | 17 | 33 | 132 | 136);
        for (i, t) in self.tuples.iter().enumerate() {
            write!(f, " src={} dst={}", t.src, t.dst)?;
            if ports {
                write!(f, " sport={} dport={}", t.src_id, t.dst_id)?;
            } else if matches!(p, 1 | 58) {
                write!(f, " id={}", t.src_id)?;
            }
            let c = &self.counters[i];
            write!(f, " packets={} bytes={}", c.packets, c.bytes)?;
            if i == 0 && !self.status.contains(Status::SEEN_REPLY) {
                f.write_str(" [UNREPLIED]")?;
            }
        }
        if self.status.contains(Status::ASSURED) {
            f.write_str(" [ASSURED]")?;
        }
        write!(f, " mark={}", self.mark)?;
        if self.tuples[0].zone != 0 {
            write!(f, " zone={}", self.tuples[0].zone)?;
        }
        if let Some(h) = self.helper {
            write!(f, " helper={h}")?;
        }
        write!(f, " use=1")
    }
}

/// An expectation, detached from the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectInfo {
    /// Expectation id.
    pub id: u32,
    /// Id of the master connection.
    pub master: u32,
    /// The master's original tuple.
    pub master_tuple: Option<Tuple>,
    /// The expected tuple.
    pub tuple: Tuple,
    /// Which parts of it must match.
    pub mask: TupleMask,
    /// Helper that created it.
    pub helper: &'static str,
    /// Kept after use (`PERMANENT` in `conntrack -L expect`).
    pub permanent: bool,
    /// Seconds until expiry.
    pub timeout_secs: u64,
}

impl ExpectInfo {
    /// The listing form of an expectation at `now`.
    pub fn of(e: &Expectation, now: Instant) -> ExpectInfo {
        ExpectInfo {
            id: e.id(),
            master: e.master_id(),
            master_tuple: e.master_tuple().copied(),
            tuple: e.tuple,
            mask: e.mask,
            helper: e.helper,
            permanent: e.permanent,
            timeout_secs: e.expires.saturating_duration_since(now).as_secs(),
        }
    }
}

/// The address mask of `bits` leading ones in `like`'s family, as `conntrack` prints it.
fn mask_addr(like: &IpAddr, bits: u8) -> IpAddr {
    match like {
        IpAddr::V4(_) => {
            let b = u32::from(bits.min(32));
            let m = if b == 0 { 0 } else { u32::MAX << (32 - b) };
            IpAddr::V4(m.into())
        }
        IpAddr::V6(_) => {
            let b = u32::from(bits.min(128));
            let m = if b == 0 { 0 } else { u128::MAX << (128 - b) };
            IpAddr::V6(m.into())
        }
    }
}

/// `conntrack -L expect`'s line: timeout, the tuple, its mask, the master, the flags and
/// the helper.
impl fmt::Display for ExpectInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.tuple;
        write!(
            f,
            "{} proto={} src={} dst={} sport={} dport={} mask-src={} mask-dst={} sport={} dport={}",
            self.timeout_secs,
            t.proto,
            t.src,
            t.dst,
            t.src_id,
            t.dst_id,
            mask_addr(&t.src, self.mask.src_prefix),
            mask_addr(&t.dst, 128),
            self.mask.src_id,
            self.mask.dst_id,
        )?;
        if let Some(m) = &self.master_tuple {
            write!(
                f,
                " master-src={} master-dst={} sport={} dport={}",
                m.src, m.dst, m.src_id, m.dst_id
            )?;
        }
        if self.permanent {
            f.write_str(" PERMANENT")?;
        }
        write!(f, " class=0 helper={}", self.helper)
    }
}

/// What an event is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventSubject {
    /// A connection.
    Conn(ConnInfo),
    /// An expectation.
    Expect(ExpectInfo),
}

/// One event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// When it happened.
    pub at: Instant,
    /// What happened.
    pub kind: EventKind,
    /// To what.
    pub subject: EventSubject,
    /// Why (destroy reasons: "timeout", "early-drop", "flush", "reopen", ...).
    pub reason: Option<&'static str>,
}

impl Event {
    /// One JSON object (no trailing newline), as the simulator logs it.
    pub fn to_json(&self) -> String {
        let mut s = format!(
            "{{\"time\":{},\"type\":\"{}\"",
            self.at.as_nanos(),
            self.kind.tag().to_ascii_lowercase()
        );
        if let Some(r) = self.reason {
            let _ = write!(s, ",\"reason\":\"{r}\"");
        }
        match &self.subject {
            EventSubject::Conn(c) => {
                s.push_str(",\"conn\":");
                s.push_str(&c.to_json());
            }
            EventSubject::Expect(e) => {
                let _ = write!(
                    s,
                    ",\"expect\":{{\"id\":{},\"master\":{},\"helper\":\"{}\",\"timeout\":{},\"proto\":\"{}\",\"src\":\"{}\",\"dst\":\"{}\",\"sport\":{},\"dport\":{},\"mask_sport\":{},\"permanent\":{}}}",
                    e.id,
                    e.master,
                    e.helper,
                    e.timeout_secs,
                    proto_name(e.tuple.proto),
                    e.tuple.src,
                    e.tuple.dst,
                    e.tuple.src_id,
                    e.tuple.dst_id,
                    e.mask.src_id,
                    e.permanent
                );
            }
        }
        s.push('}');
        s
    }
}

/// Formats like `conntrack -E`.
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>10} ", format!("[{}]", self.kind.tag()))?;
        match &self.subject {
            EventSubject::Conn(c) => write!(f, "{c}"),
            EventSubject::Expect(e) => write!(f, "{e}"),
        }
    }
}
