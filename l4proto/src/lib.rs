//! Layer-4 connection tracking modules for tunfilter, after Linux's
//! `nf_conntrack_proto_*`: TCP (state machine and window tracking), UDP and
//! UDP-Lite, ICMP and ICMPv6 queries, SCTP, DCCP, and a generic module for
//! every other protocol.
//!
//! Each protocol lives in its own file and owns its per-connection state;
//! [`L4Modules`] bundles them behind one [`conntrack::L4Proto`] with
//! `State = `[`AnyState`], dispatching on the protocol number with a `match`
//! (no dynamic dispatch on the hot path). The crate is sans-IO: time comes in
//! as [`conntrack::Instant`], timeouts go out in [`conntrack::Verdict`].
//!
//! ```
//! use conntrack::{ConnCtx, Dir, Family, Instant, L4Packet, L4Proto, ProtoState};
//! use conntrack::{Status, Tuple, Verdict};
//! use l4proto::{L4Modules, TcpConfig, Timeouts};
//! use std::time::Duration;
//!
//! let mut timeouts = Timeouts::default();
//! timeouts.set("tcp_syn_sent", 60)?; // what a config key would do
//! let l4 = L4Modules::new(timeouts, TcpConfig::default());
//!
//! // A bare SYN 192.0.2.1:40000 -> 198.51.100.1:80 (checksum left unchecked).
//! let mut syn = [0u8; 20];
//! syn[..4].copy_from_slice(&[0x9c, 0x40, 0x00, 0x50]); // ports
//! syn[4..8].copy_from_slice(&1000u32.to_be_bytes()); // seq
//! syn[12] = 0x50; // data offset: 5 words
//! syn[13] = 0x02; // SYN
//! syn[14..16].copy_from_slice(&64240u16.to_be_bytes()); // window
//! let (src, dst) = ("192.0.2.1".parse()?, "198.51.100.1".parse()?);
//! let pkt = L4Packet { family: Family::V4, src, dst, proto: 6, data: &syn, verify_checksum: false };
//!
//! let (src_id, dst_id) = l4.ids(&pkt)?;
//! let now = Instant::from_secs(1);
//! let mut state = l4.new_conn(&pkt, now)?;
//! let orig = Tuple { src, dst, src_id, dst_id, proto: 6, zone: 0 };
//! let tuples = [orig, orig.invert()];
//! let mut status = Status::default();
//! let mut ctx = ConnCtx { dir: Dir::Original, status: &mut status, now, tuples: &tuples, ack_offset: 0 };
//! let verdict = l4.packet(&mut state, &mut ctx, &pkt);
//! assert_eq!(verdict, Verdict::Accept { timeout: Duration::from_secs(60) });
//! assert_eq!(state.state_name(), "SYN_SENT");
//! assert_eq!(l4.name(6), "tcp");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod dccp;
pub mod fuzzing;
pub mod generic;
pub mod icmp;
pub mod sctp;
pub mod tcp;
pub mod udp;

pub use tcp::TcpConfig;

use conntrack::{ConnCtx, Instant, Invalid, L4Packet, L4Proto, ProtoState, Verdict};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// Protocol numbers this crate has modules for.
pub mod proto {
    pub use wire::proto::{DCCP, ICMP, ICMPV6, SCTP, TCP, UDP, UDPLITE};
}

macro_rules! timeouts {
    ($( $(#[$doc:meta])* $name:ident = $secs:expr, )*) => {
        /// Every per-state timeout of every module, with Linux's defaults.
        ///
        /// Each field has a stable snake_case name (the field name, which is
        /// Linux's `nf_conntrack_<name>` / `nf_conntrack_<proto>_timeout_<state>`
        /// sysctl without the prefix) so a config file can override it with
        /// [`Timeouts::set`], e.g. `tcp_established = 432000`.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct Timeouts {
            $( $(#[$doc])* pub $name: Duration, )*
        }

        impl Default for Timeouts {
            fn default() -> Self {
                Timeouts { $( $name: Duration::from_secs($secs), )* }
            }
        }

        impl Timeouts {
            /// All timeout names, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$( stringify!($name), )*];

            /// Sets the timeout called `name` to `secs` seconds.
            pub fn set(&mut self, name: &str, secs: u64) -> Result<(), String> {
                match name {
                    $( stringify!($name) => self.$name = Duration::from_secs(secs), )*
                    _ => {
                        return Err(format!(
                            "unknown conntrack timeout `{name}` (known: {})",
                            Self::NAMES.join(", ")
                        ))
                    }
                }
                Ok(())
            }

            /// The timeout called `name`.
            pub fn get(&self, name: &str) -> Option<Duration> {
                match name {
                    $( stringify!($name) => Some(self.$name), )*
                    _ => None,
                }
            }
        }
    };
}

timeouts! {
    /// TCP SYN_SENT: 2 minutes.
    tcp_syn_sent = 120,
    /// TCP SYN_RECV: 60 s.
    tcp_syn_recv = 60,
    /// TCP ESTABLISHED: 5 days.
    tcp_established = 432_000,
    /// TCP FIN_WAIT: 2 minutes.
    tcp_fin_wait = 120,
    /// TCP CLOSE_WAIT: 60 s.
    tcp_close_wait = 60,
    /// TCP LAST_ACK: 30 s.
    tcp_last_ack = 30,
    /// TCP TIME_WAIT: 2 minutes.
    tcp_time_wait = 120,
    /// TCP CLOSE (and after any RST): 10 s.
    tcp_close = 10,
    /// TCP SYN_SENT2 (simultaneous open): 2 minutes.
    tcp_syn_sent2 = 120,
    /// TCP cap once `max_retrans` identical retransmissions were seen, or the
    /// window is zero: 5 minutes.
    tcp_max_retrans = 300,
    /// TCP cap while data is unacknowledged, or for a picked-up connection
    /// not yet answered: 5 minutes.
    tcp_unacknowledged = 300,
    /// UDP and UDP-Lite before a reply (or within 2 s of the first packet): 30 s.
    udp_unreplied = 30,
    /// UDP and UDP-Lite once both directions were seen: 2 minutes.
    udp_stream = 120,
    /// ICMP queries: 30 s.
    icmp = 30,
    /// ICMPv6 queries: 30 s.
    icmpv6 = 30,
    /// SCTP CLOSED: 10 s.
    sctp_closed = 10,
    /// SCTP COOKIE_WAIT: 3 s.
    sctp_cookie_wait = 3,
    /// SCTP COOKIE_ECHOED: 3 s.
    sctp_cookie_echoed = 3,
    /// SCTP ESTABLISHED: 210 s (heartbeat interval × path retransmissions +
    /// RTO.max; Linux's default since 6.3, formerly 5 days).
    sctp_established = 210,
    /// SCTP SHUTDOWN_SENT: 3 s (Linux since 5.x; formerly 300 ms).
    sctp_shutdown_sent = 3,
    /// SCTP SHUTDOWN_RECD: 3 s (Linux since 5.x; formerly 300 ms).
    sctp_shutdown_recd = 3,
    /// SCTP SHUTDOWN_ACK_SENT: 3 s.
    sctp_shutdown_ack_sent = 3,
    /// SCTP HEARTBEAT_SENT (secondary path being probed): 30 s.
    sctp_heartbeat_sent = 30,
    /// DCCP REQUEST: 2 × MSL = 240 s.
    dccp_request = 240,
    /// DCCP RESPOND: 4 × MSL = 480 s.
    dccp_respond = 480,
    /// DCCP PARTOPEN: 4 × MSL = 480 s.
    dccp_partopen = 480,
    /// DCCP OPEN: 12 hours.
    dccp_open = 43_200,
    /// DCCP CLOSEREQ: 64 s.
    dccp_closereq = 64,
    /// DCCP CLOSING: 64 s.
    dccp_closing = 64,
    /// DCCP TIMEWAIT: 2 × MSL = 240 s.
    dccp_timewait = 240,
    /// Any other protocol: 10 minutes.
    generic = 600,
}

impl Timeouts {
    /// The timeout of a TCP state.
    pub fn tcp_state(&self, s: tcp::TcpConntrack) -> Duration {
        use tcp::TcpConntrack as S;
        match s {
            S::None | S::SynSent => self.tcp_syn_sent,
            S::SynRecv => self.tcp_syn_recv,
            S::Established => self.tcp_established,
            S::FinWait => self.tcp_fin_wait,
            S::CloseWait => self.tcp_close_wait,
            S::LastAck => self.tcp_last_ack,
            S::TimeWait => self.tcp_time_wait,
            S::Close => self.tcp_close,
            S::SynSent2 => self.tcp_syn_sent2,
        }
    }
}

/// The two addresses of a packet, when they are of one family.
pub(crate) enum Addrs {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

pub(crate) fn addrs(pkt: &L4Packet<'_>) -> Option<Addrs> {
    match (pkt.src, pkt.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some(Addrs::V4(s, d)),
        (IpAddr::V6(s), IpAddr::V6(d)) => Some(Addrs::V6(s, d)),
        _ => None,
    }
}

/// The per-connection state of whichever module tracks the connection.
///
/// Kept small on purpose (56 bytes, TCP being the largest variant; a plain TCP `Conn<AnyState>` is 200)
/// because the table stores one per connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnyState {
    /// No module state (a placeholder; packets against it are INVALID).
    None,
    /// TCP.
    Tcp(tcp::TcpState),
    /// UDP and UDP-Lite.
    Udp(udp::UdpState),
    /// ICMP and ICMPv6 queries.
    Icmp(icmp::IcmpState),
    /// SCTP.
    Sctp(sctp::SctpState),
    /// DCCP.
    Dccp(dccp::DccpState),
    /// Any other protocol.
    Generic(generic::GenericState),
}

impl ProtoState for AnyState {
    fn state_name(&self) -> &'static str {
        match self {
            AnyState::None => "",
            AnyState::Tcp(s) => s.state().name(),
            AnyState::Udp(_) | AnyState::Icmp(_) | AnyState::Generic(_) => "",
            AnyState::Sctp(s) => s.state().name(),
            AnyState::Dccp(s) => s.state().name(),
        }
    }

    fn state_id(&self) -> u16 {
        // Protocol in the high byte so states of different protocols differ.
        match self {
            AnyState::None | AnyState::Udp(_) | AnyState::Icmp(_) | AnyState::Generic(_) => 0,
            AnyState::Tcp(s) => 0x100 | s.state() as u16,
            AnyState::Sctp(s) => 0x200 | s.state() as u16,
            AnyState::Dccp(s) => 0x300 | s.state() as u16,
        }
    }

    /// The table asks this only for connections that are not ASSURED, and
    /// Linux early-drops every such connection whatever its protocol state:
    /// an unanswered "ESTABLISHED" TCP entry is exactly what an ACK flood
    /// with mid-stream pickup creates, so protecting it would let a flood
    /// fill the table. Hence always `true`.
    fn can_early_drop(&self) -> bool {
        true
    }
}

/// All L4 modules behind one [`L4Proto`] implementation.
#[derive(Clone, Debug, Default)]
pub struct L4Modules {
    /// TCP.
    pub tcp: tcp::Tcp,
    /// UDP and UDP-Lite.
    pub udp: udp::Udp,
    /// ICMP and ICMPv6.
    pub icmp: icmp::Icmp,
    /// SCTP.
    pub sctp: sctp::Sctp,
    /// DCCP.
    pub dccp: dccp::Dccp,
    /// Everything else.
    pub generic: generic::Generic,
    /// Timeouts of every module.
    pub timeouts: Timeouts,
}

impl L4Modules {
    /// All modules with the given timeouts and TCP options.
    pub fn new(timeouts: Timeouts, tcp_cfg: TcpConfig) -> Self {
        L4Modules {
            tcp: tcp::Tcp::new(tcp_cfg),
            timeouts,
            ..L4Modules::default()
        }
    }

    /// Whether the packet should bypass connection tracking altogether
    /// (Linux marks these UNTRACKED): ICMPv6 Neighbour Discovery and MLD,
    /// which are link-local and stateless. Treating them as INVALID instead
    /// would let a common `--ctstate INVALID -j DROP` rule break IPv6.
    pub fn is_untracked(&self, pkt: &L4Packet<'_>) -> bool {
        pkt.proto == proto::ICMPV6 && pkt.data.first().is_some_and(|&t| icmp::untracked_v6(t))
    }
}

const WRONG_STATE: Invalid = Invalid::L4WrongState;

impl L4Proto for L4Modules {
    type State = AnyState;

    fn name(&self, proto: u8) -> &'static str {
        match proto {
            proto::TCP => "tcp",
            proto::UDP => "udp",
            proto::UDPLITE => "udplite",
            proto::ICMP => "icmp",
            proto::ICMPV6 => "icmpv6",
            proto::SCTP => "sctp",
            proto::DCCP => "dccp",
            _ => "unknown",
        }
    }

    #[inline]
    fn ids(&self, pkt: &L4Packet<'_>) -> Result<(u16, u16), Invalid> {
        match pkt.proto {
            proto::TCP => self.tcp.ids(pkt),
            proto::UDP | proto::UDPLITE => self.udp.ids(pkt),
            proto::ICMP | proto::ICMPV6 => self.icmp.ids(pkt),
            proto::SCTP => self.sctp.ids(pkt),
            proto::DCCP => self.dccp.ids(pkt),
            _ => self.generic.ids(pkt),
        }
    }

    fn new_conn(&self, pkt: &L4Packet<'_>, now: Instant) -> Result<AnyState, Invalid> {
        Ok(match pkt.proto {
            proto::TCP => AnyState::Tcp(self.tcp.new_conn(pkt, now)?),
            proto::UDP | proto::UDPLITE => AnyState::Udp(self.udp.new_conn(pkt, now)?),
            proto::ICMP | proto::ICMPV6 => AnyState::Icmp(self.icmp.new_conn(pkt, now)?),
            proto::SCTP => AnyState::Sctp(self.sctp.new_conn(pkt, now)?),
            proto::DCCP => AnyState::Dccp(self.dccp.new_conn(pkt, now)?),
            _ => AnyState::Generic(self.generic.new_conn(pkt, now)?),
        })
    }

    fn packet(&self, state: &mut AnyState, ctx: &mut ConnCtx<'_>, pkt: &L4Packet<'_>) -> Verdict {
        let t = &self.timeouts;
        match (pkt.proto, state) {
            (proto::TCP, AnyState::Tcp(s)) => self.tcp.packet(s, ctx, pkt, t),
            (proto::UDP | proto::UDPLITE, AnyState::Udp(s)) => self.udp.packet(s, ctx, pkt, t),
            (proto::ICMP | proto::ICMPV6, AnyState::Icmp(s)) => self.icmp.packet(s, ctx, pkt, t),
            (proto::SCTP, AnyState::Sctp(s)) => self.sctp.packet(s, ctx, pkt, t),
            (proto::DCCP, AnyState::Dccp(s)) => self.dccp.packet(s, ctx, pkt, t),
            (
                proto::TCP
                | proto::UDP
                | proto::UDPLITE
                | proto::ICMP
                | proto::ICMPV6
                | proto::SCTP
                | proto::DCCP,
                _,
            ) => Verdict::Invalid(WRONG_STATE),
            (_, AnyState::Generic(s)) => self.generic.packet(s, ctx, pkt, t),
            _ => Verdict::Invalid(WRONG_STATE),
        }
    }

    fn is_error(&self, pkt: &L4Packet<'_>) -> bool {
        match pkt.proto {
            proto::ICMP | proto::ICMPV6 => self.icmp.is_error(pkt),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conntrack::Conn;

    #[test]
    fn states_stay_small() {
        assert!(
            size_of::<AnyState>() <= 56,
            "AnyState is {} bytes",
            size_of::<AnyState>()
        );
        assert!(size_of::<tcp::TcpState>() <= 56);
        // The whole connection for a plain TCP flow, without extensions.
        assert!(
            size_of::<Conn<AnyState>>() <= 200,
            "Conn<AnyState> is {} bytes",
            size_of::<Conn<AnyState>>()
        );
    }

    #[test]
    fn timeouts_by_name() {
        let mut t = Timeouts::default();
        assert_eq!(t.get("tcp_established"), Some(Duration::from_secs(432_000)));
        t.set("tcp_established", 3600).unwrap();
        assert_eq!(t.tcp_established, Duration::from_secs(3600));
        let err = t.set("tcp_establish", 1).unwrap_err();
        assert!(
            err.contains("tcp_establish") && err.contains("udp_stream"),
            "{err}"
        );
        for name in Timeouts::NAMES {
            assert!(t.get(name).is_some(), "{name}");
            t.set(name, 7).unwrap();
            assert_eq!(t.get(name), Some(Duration::from_secs(7)));
        }
        assert_eq!(Timeouts::NAMES.len(), 31);
    }

    #[test]
    fn names_are_conntracks() {
        let m = L4Modules::default();
        let names: Vec<_> = [6, 17, 136, 1, 58, 132, 33, 47].map(|p| m.name(p)).into();
        assert_eq!(
            names,
            ["tcp", "udp", "udplite", "icmp", "icmpv6", "sctp", "dccp", "unknown"]
        );
    }
}
