//! Conntrack application helpers, after Linux's `nf_conntrack_helper`: sans-IO parsers that
//! read the payload of a tracked connection (FTP's control channel, a TFTP request, a talk
//! rendezvous), predict the connections it announces (*expectations*) and say where the
//! announced addresses sit, so that the engine can rewrite them under NAT.
//!
//! The crate does no I/O and keeps no table: the engine (in `router/`) owns the expectation
//! table, attaches a helper to a connection (`-j CT --helper NAME` or `auto_assign`), keeps the
//! helper's per-connection [`HelperState`] in the connection's extension area, calls
//! [`Helper::handle`] for every packet of a helped connection at netfilter's helper priority
//! (after the ruleset and NAT, before confirm), creates the [`ExpectRequest`]s it gets back,
//! and rewrites each [`Site`] with [`Helper::nat_format`] when the connection is NATed.
//!
//! The helpers here, by the kernel's names (rulesets name them):
//!
//! | name | master | file | announces |
//! |---|---|---|---|
//! | `ftp` | TCP 21 | [`ftp`] | PORT, EPRT (client), 227, 229 (server); IPv4 and IPv6 |
//! | `tftp` | UDP 69 | [`tftp`] | the server's answer to a read or write request |
//! | `talk` | UDP 517 | [`talk`] | the 4.2BSD talk rendezvous (IPv4 only) |
//! | `ntalk` | UDP 518 | [`talk`] | the 4.3BSD talk protocol, version 1 (IPv4 only) |
//! | `RAS` | UDP 1719 | [`h323`] | H.225.0 RAS: RAS, call signalling addresses (GRQ/GCF, RRQ/RCF, ARQ/ACF, LRQ/LCF) |
//! | `Q.931` | TCP 1720 | [`h323`] | H.225.0 call signalling: H.245 address, fastStart media, tunnelled H.245 |
//! | `H.245` | (expected) | [`h323`] | OpenLogicalChannel(Ack) media and T.120 addresses |
//!
//! ```
//! use conntrack::tuple::{Dir, Tuple};
//! use conntrack::Instant;
//! use helpers::{HelperOutput, HelperPacket, Registry};
//!
//! let registry = Registry::builtin();
//! let ftp = registry.by_port(6, 21).expect("ftp helps TCP 21");
//! let orig = Tuple {
//!     src: "192.0.2.10".parse().unwrap(),
//!     dst: "198.51.100.5".parse().unwrap(),
//!     src_id: 40000,
//!     dst_id: 21,
//!     proto: 6,
//!     zone: 0,
//! };
//! let tuples = [orig, orig.invert()];
//! let mut state = ftp.new_state();
//! let mut out = HelperOutput::default();
//! // As in Linux, a direction's first segment only tells where the next line starts.
//! for (seq, data) in [(1000, &b"USER anonymous\r\n"[..]), (1016, b"PORT 192,0,2,10,4,1\r\n")] {
//!     let pkt = HelperPacket {
//!         now: Instant::ZERO,
//!         dir: Dir::Original,
//!         tuples: &tuples,
//!         nat: false,
//!         seq: Some(seq),
//!         payload: &[data],
//!     };
//!     ftp.handle(state.as_mut(), &pkt, &mut out);
//! }
//! // The server will open the data connection to the client's port 4*256+1.
//! let exp = &out.expects[0];
//! assert_eq!((exp.dir, exp.proto, exp.dst_port), (Dir::Reply, 6, 1025));
//! assert_eq!(exp.dst, "192.0.2.10".parse::<std::net::IpAddr>().unwrap());
//! assert_eq!(exp.src, Some("198.51.100.5".parse().unwrap()));
//! // Where "192,0,2,10,4,1" sits in that segment, for NAT to rewrite.
//! let site = exp.site.unwrap();
//! assert_eq!((site.offset, site.len), (5, 14));
//! assert_eq!(ftp.nat_format(site.kind, "203.0.113.1".parse().unwrap(), 2000), b"203,0,113,1,7,208");
//! ```
//!
//! # What the engine does with an expectation (the NAT semantics)
//!
//! Let `d` be [`ExpectRequest::dir`] and `tuples` the master's tuples (the reply tuple
//! includes NAT).
//!
//! - **No NAT**: the expectation's tuple is `(src?, src_port?) -> (dst, dst_port)`, as given.
//! - **NAT and a [`Site`]**: the engine picks the first free port `p >= dst_port`; the
//!   expectation's destination becomes `(tuples[d].dst, p)` (the address the other side must
//!   use); the expected connection is DNATed back to `(dst, dst_port)` and SNATed to
//!   `tuples[!d].dst` (`nf_nat_follow_master`); the site's bytes are replaced by
//!   `nat_format(site.kind, tuples[d].dst, p)`, a change of length being carried by sequence
//!   adjustment.
//! - **NAT without a site**: the tuple is as given; the expected connection is DNATed to
//!   [`ExpectRequest::nat_to`] if set, else to `(tuples[!d].src, tuples[!d].src_port)` (TFTP:
//!   the answer goes to the client), and SNATed to `tuples[!d].dst`.
//!
//! An expectation equal to a live one of the same master replaces it (a retransmitted
//! command), and a master holds at most [`ExpectPolicy::max_expected`] live expectations (the
//! oldest goes), each for at most [`ExpectPolicy::timeout`] unless used.
//!
//! For FTP: a PORT from a client behind SNAT announces its private address; `tuples[Reply].dst`
//! is the NAT address, so the server is told `NAT:p` and the data connection is DNATed back to
//! the client. A 227 from a server behind DNAT announces its private address; `tuples[Original].dst`
//! is the public address the client used, so the client is told `public:p`.
//!
//! # Adding a helper
//!
//! One file (or module) with a type implementing [`Helper`] and a constructor taking its
//! [`HelperConfig`], and one line in the builtin table of [`Registry`]. Nothing in the engine
//! changes: it only sees the trait. A helper finds its commands with the `search` crate's
//! streaming search (FTP) or reads a fixed layout (TFTP, talk) from the segment chain through
//! [`chain::Chain`], never copying the payload into one buffer.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod chain;
pub mod ftp;
pub mod fuzzing;
pub mod h323;
pub mod talk;
pub mod tftp;

use conntrack::tuple::{Dir, Tuple};
use conntrack::Instant;
use std::any::Any;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Limits on a master's expectations (`nf_conntrack_expect_policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpectPolicy {
    /// Most live expectations of one master connection; the oldest goes beyond it.
    pub max_expected: usize,
    /// How long an expectation waits for its connection.
    pub timeout: Duration,
}

/// Per-connection helper state, kept in the connection's extension area.
pub type HelperState = Box<dyn Any + Send + Sync>;

/// One packet of a helped connection, as the helper stage sees it (after the rule tables and
/// NAT rewrote its header, before sequence adjustment: `seq` is the sender's own numbering).
#[derive(Debug)]
pub struct HelperPacket<'a> {
    /// The engine's clock.
    pub now: Instant,
    /// The packet's direction in its connection.
    pub dir: Dir,
    /// The connection's tuples [original, reply]; the reply tuple includes NAT.
    pub tuples: &'a [Tuple; 2],
    /// Whether the connection is NATed (source or destination).
    pub nat: bool,
    /// TCP: sequence number of the first payload byte. None for UDP.
    pub seq: Option<u32>,
    /// The L4 payload as a chain of segments (a reassembled datagram is several). Never copy
    /// it into one buffer.
    pub payload: &'a [&'a [u8]],
}

/// Where an announced address sits in this packet's payload, to rewrite under NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Site {
    /// Byte offset from the start of this packet's L4 payload of the bytes to replace.
    pub offset: usize,
    /// How many bytes to replace.
    pub len: usize,
    /// Helper-defined encoding, passed back to [`Helper::nat_format`] (e.g. PORT vs EPRT vs 227).
    pub kind: u8,
}

/// A connection the helper predicts (what `nf_ct_expect_init` receives).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectRequest {
    /// The master direction the expected connection's first packet travels like (Linux
    /// `exp->dir`): an FTP PORT sent in Original expects a data connection in Reply.
    pub dir: Dir,
    /// L4 protocol of the expected connection.
    pub proto: u8,
    /// Source address; None = any.
    pub src: Option<IpAddr>,
    /// Source port; None = any.
    pub src_port: Option<u16>,
    /// Destination address as announced in the payload (with a `site`), or, without a site,
    /// as the first packet will arrive at the router.
    pub dst: IpAddr,
    /// Destination port, as `dst`.
    pub dst_port: u16,
    /// Where the announcement is, when the payload must be rewritten under NAT.
    pub site: Option<Site>,
    /// Keep the expectation after a connection used it (H.323 media).
    pub permanent: bool,
    /// Helper to attach to the expected connection (H.245 under Q.931, a talk lookup); None
    /// for most.
    pub child_helper: Option<&'static str>,
    /// Without a site, under NAT: where the expected connection is DNATed to, when that is not
    /// `(tuples[!dir].src, tuples[!dir].src_port)` (talk: the callee's lookup goes to the
    /// caller's daemon port, not to the caller's client port). Ignored with a site or without
    /// NAT.
    pub nat_to: Option<(IpAddr, u16)>,
    /// RTP and RTCP (H.323 media): the request stands for the UDP port pair
    /// `(dst_port & !1, (dst_port & !1) + 1)`, both expected. Under NAT with a site the engine
    /// picks an even port `p` with `p` and `p + 1` both free, and the site announces
    /// `p + (dst_port & 1)` (it names either member of the pair).
    pub rtp_pair: bool,
}

/// A payload rewrite that needs no expectation: an announced address naming an endpoint of
/// the master connection itself (H.323's `rasAddress` of the RAS flow, a Q.931 Setup's
/// `sourceCallSignalAddress`), rewritten to what NAT made of that endpoint. The helper
/// decides the new address and port from the tuples; the engine writes
/// `nat_format(site.kind, addr, port)` over the site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiteRewrite {
    /// Where the announcement is.
    pub site: Site,
    /// The address to announce instead.
    pub addr: IpAddr,
    /// The port to announce instead.
    pub port: u16,
}

/// What a helper does about one event it found (the engine counts and reports each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelperEvent {
    /// What happened.
    pub kind: HelperEventKind,
    /// For people: the command and what was wrong or announced.
    pub detail: String,
}

/// The kinds of [`HelperEvent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HelperEventKind {
    /// A command or message that led to expectations.
    Parsed,
    /// A command refused for security (an FTP bounce, a family mismatch).
    Refused,
    /// A message the helper could not read; no expectation.
    Malformed,
    /// Skipped: out of order or not at a line start, or an announcement NAT cannot rewrite.
    Unsynced,
}

impl HelperEventKind {
    /// Every kind, in counter order.
    pub const ALL: [HelperEventKind; 4] = [
        HelperEventKind::Parsed,
        HelperEventKind::Refused,
        HelperEventKind::Malformed,
        HelperEventKind::Unsynced,
    ];

    /// The name in counters and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            HelperEventKind::Parsed => "parsed",
            HelperEventKind::Refused => "refused",
            HelperEventKind::Malformed => "malformed",
            HelperEventKind::Unsynced => "unsynced",
        }
    }
}

/// What one call of [`Helper::handle`] found; the engine clears it between packets.
#[derive(Debug, Default)]
pub struct HelperOutput {
    /// Expectations to create, in order.
    pub expects: Vec<ExpectRequest>,
    /// Events to count and report.
    pub events: Vec<HelperEvent>,
    /// Rewrites without an expectation (only under NAT).
    pub rewrites: Vec<SiteRewrite>,
}

impl HelperOutput {
    /// Empties the lists, keeping their storage.
    pub fn clear(&mut self) {
        self.expects.clear();
        self.events.clear();
        self.rewrites.clear();
    }

    pub(crate) fn event(&mut self, kind: HelperEventKind, detail: String) {
        self.events.push(HelperEvent { kind, detail });
    }
}

/// A conntrack helper: one protocol's parser, expectation maker and NAT formatter.
pub trait Helper: Send + Sync + std::fmt::Debug {
    /// The kernel's name: "ftp", "tftp", "talk", "ntalk", "RAS", "Q.931", "H.245".
    fn name(&self) -> &'static str;
    /// L4 protocol of the master connection (6 or 17).
    fn proto(&self) -> u8;
    /// Destination ports of master connections it helps (from the config, or the defaults).
    fn ports(&self) -> &[u16];
    /// Limits on one master's expectations.
    fn policy(&self) -> ExpectPolicy;
    /// Fresh per-connection state, allocated when the helper is attached.
    fn new_state(&self) -> HelperState;
    /// One packet of a helped connection. Never panics; a malformed message is an event.
    fn handle(
        &self,
        state: &mut (dyn Any + Send + Sync),
        pkt: &HelperPacket<'_>,
        out: &mut HelperOutput,
    );
    /// The bytes that replace a `Site` of kind `kind` announcing `addr`:`port` (NAT).
    fn nat_format(&self, kind: u8, addr: IpAddr, port: u16) -> Vec<u8>;
}

/// Per-helper settings from the config's `[helpers]` table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HelperConfig {
    /// Master ports instead of the helper's defaults (Linux's `ports=` module parameter).
    pub ports: Option<Vec<u16>>,
    /// Accept an announced address other than the sender's (Linux's `loose=1`): FTP bounce.
    pub loose: bool,
}

/// Builds a helper from its (already checked) settings.
type Build = fn(&HelperConfig) -> Arc<dyn Helper>;

/// Every helper this crate has, by name, in listing order. Adding a helper adds a line here.
const BUILTIN: &[(&str, Build)] = &[
    ("ftp", |c| Arc::new(ftp::Ftp::new(c))),
    ("tftp", |c| Arc::new(tftp::Tftp::new(c))),
    ("talk", |c| Arc::new(talk::Talk::otalk(c))),
    ("ntalk", |c| Arc::new(talk::Talk::ntalk(c))),
    ("RAS", |c| Arc::new(h323::Ras::new(c))),
    ("Q.931", |c| Arc::new(h323::Q931::new(c))),
    ("H.245", |c| Arc::new(h323::H245::new(c))),
];

/// The helpers by name. Adding a helper touches only its file and `Registry::builtin`.
#[derive(Clone, Debug)]
pub struct Registry {
    helpers: Vec<Arc<dyn Helper>>,
    /// `(proto, port, index into helpers)`, sorted: the auto-assignment lookup.
    ports: Vec<(u8, u16, usize)>,
}

impl Registry {
    /// Every helper, with its defaults.
    pub fn builtin() -> Registry {
        match Registry::with_config(&[]) {
            Ok(r) => r,
            // The defaults never clash (a unit test checks it); stay total anyway.
            Err(_) => Registry {
                helpers: Vec::new(),
                ports: Vec::new(),
            },
        }
    }

    /// Builds the registry with settings for some helpers; an unknown name, a name given
    /// twice, an empty port list, port 0, or two helpers on one protocol and port is an error
    /// (the message says which).
    pub fn with_config(cfg: &[(String, HelperConfig)]) -> Result<Registry, String> {
        for (i, (name, c)) in cfg.iter().enumerate() {
            if !BUILTIN.iter().any(|(n, _)| n == name) {
                let known: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "unknown helper {name:?} (known: {})",
                    known.join(", ")
                ));
            }
            if cfg[..i].iter().any(|(n, _)| n == name) {
                return Err(format!("helper {name:?} is configured twice"));
            }
            match &c.ports {
                Some(p) if p.is_empty() => {
                    return Err(format!("helper {name:?}: empty port list"));
                }
                Some(p) if p.contains(&0) => {
                    return Err(format!("helper {name:?}: port 0 is not a port"));
                }
                _ => {}
            }
        }
        let default = HelperConfig::default();
        let helpers: Vec<Arc<dyn Helper>> = BUILTIN
            .iter()
            .map(|(name, build)| {
                let c = cfg
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(&default, |(_, c)| c);
                build(c)
            })
            .collect();
        let mut ports = Vec::new();
        for (i, h) in helpers.iter().enumerate() {
            for &p in h.ports() {
                ports.push((h.proto(), p, i));
            }
        }
        ports.sort_unstable();
        ports.dedup();
        for w in ports.windows(2) {
            if (w[0].0, w[0].1) == (w[1].0, w[1].1) {
                let proto = if w[0].0 == 6 { "tcp" } else { "udp" };
                return Err(format!(
                    "port {}/{proto} is claimed by both {} and {}",
                    w[0].1,
                    helpers[w[0].2].name(),
                    helpers[w[1].2].name()
                ));
            }
        }
        Ok(Registry { helpers, ports })
    }

    /// The helper called `name` (the kernel's spelling).
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Helper>> {
        self.helpers.iter().find(|h| h.name() == name)
    }

    /// The helper for a new connection's (proto, destination port), for auto_assign.
    pub fn by_port(&self, proto: u8, port: u16) -> Option<&Arc<dyn Helper>> {
        let i = self
            .ports
            .binary_search_by(|&(pr, po, _)| (pr, po).cmp(&(proto, port)))
            .ok()?;
        self.helpers.get(self.ports[i].2)
    }

    /// The helpers' names, in listing order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.helpers.iter().map(|h| h.name())
    }
}

/// Renders an address and port as `a.b.c.d:p` or `[v6]:p`, for event details.
pub(crate) fn endpoint(addr: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(addr, port).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(name: &str, ports: Option<Vec<u16>>, loose: bool) -> (String, HelperConfig) {
        (name.to_owned(), HelperConfig { ports, loose })
    }

    #[test]
    fn builtin_has_every_helper_on_its_port() {
        let r = Registry::builtin();
        assert_eq!(
            r.names().collect::<Vec<_>>(),
            ["ftp", "tftp", "talk", "ntalk", "RAS", "Q.931", "H.245"]
        );
        for (proto, port, name) in [
            (6, 21, "ftp"),
            (17, 69, "tftp"),
            (17, 517, "talk"),
            (17, 518, "ntalk"),
            (17, 1719, "RAS"),
            (6, 1720, "Q.931"),
        ] {
            assert_eq!(r.by_port(proto, port).map(|h| h.name()), Some(name));
            assert_eq!(
                r.get(name).map(|h| (h.proto(), h.ports()[0])),
                Some((proto, port))
            );
        }
        assert!(r.by_port(17, 21).is_none(), "FTP is TCP only");
        assert!(r.by_port(6, 69).is_none());
        assert!(r.get("FTP").is_none(), "names are the kernel's spelling");
        // H.245 has no port: it is attached to the connection a Q.931 message announces.
        assert_eq!(r.get("H.245").map(|h| h.ports().len()), Some(0));
        assert!(r.by_port(6, 1719).is_none() && r.by_port(17, 1720).is_none());
    }

    #[test]
    fn config_sets_ports_and_rejects_mistakes() {
        let r = Registry::with_config(&[cfg("ftp", Some(vec![21, 2121]), true)]).unwrap();
        assert_eq!(r.by_port(6, 2121).map(|h| h.name()), Some("ftp"));
        assert_eq!(r.get("ftp").unwrap().ports(), [21, 2121]);
        let r = Registry::with_config(&[cfg("tftp", Some(vec![6969]), false)]).unwrap();
        assert!(
            r.by_port(17, 69).is_none(),
            "the configured list replaces the default"
        );
        for (c, want) in [
            (
                vec![cfg("gopher", None, false)],
                "unknown helper \"gopher\"",
            ),
            (
                vec![cfg("ftp", None, false), cfg("ftp", None, true)],
                "configured twice",
            ),
            (vec![cfg("ftp", Some(vec![]), false)], "empty port list"),
            (vec![cfg("talk", Some(vec![0]), false)], "port 0"),
            (
                vec![cfg("talk", Some(vec![518]), false)],
                "port 518/udp is claimed by both talk and ntalk",
            ),
        ] {
            let err = Registry::with_config(&c).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn event_kind_names() {
        let names: Vec<_> = HelperEventKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names, ["parsed", "refused", "malformed", "unsynced"]);
    }
}
