//! IPsec ESP for tunfilter, as a sans-IO library: what Linux's xfrm does for an ESP gateway,
//! for the engine's hook stages to call (encapsulation after POSTROUTING, decapsulation after
//! INPUT, the inbound policy check before FORWARD and after INPUT; DESIGN.md, "IPsec").
//!
//! - [`Ipsec`]: the security association database (SAs found by destination and SPI
//!   inbound, by policy template outbound), the security policy database ([`spd`]), Linux's
//!   `/proc/net/xfrm_stat` counters ([`stats`]), lifetime and sequence-exhaustion events, and
//!   the deadlines of timed lifetimes (`poll_timeout` / `handle_timeout`);
//! - [`esp`]: ESP (RFC 4303) with `rfc4106(gcm(aes))` ([`aead`], RFC 4106) in tunnel and
//!   transport mode, IPv4 and IPv6 either way, on a [`PacketBuf`](wire::PacketBuf) with
//!   headroom;
//! - [`replay`]: the anti-replay window (RFC 4303 §3.4.3, RFC 6479 bitmap up to 4096) with
//!   extended sequence numbers (RFC 4304, RFC 4303 Appendix A);
//! - [`text`] and [`config`]: SAs and policies in `ip xfrm` words and as TOML tables, printed
//!   back as `ip xfrm state/policy list` does.
//!
//! Bad input never panics: every drop returns a typed reason ([`InDrop`], [`OutDrop`]) and
//! adds one to the `xfrm_stat` counter Linux would.
//!
//! ```
//! use ipsec_hooks::{Decapsulated, Ipsec, Protected, SecPath};
//! use ipsec_hooks::text::{parse_policy, parse_state};
//! use wire::{Instant, PacketBuf};
//!
//! let key = "0x0102030405060708090a0b0c0d0e0f1011121314";
//! let sa = format!("src 203.0.113.1 dst 203.0.113.2 proto esp spi 0x1000 reqid 1 mode tunnel \
//!                   replay-window 32 aead 'rfc4106(gcm(aes))' {key} 128");
//! let out = "src 192.0.2.0/24 dst 198.51.100.0/24 dir out \
//!            tmpl src 203.0.113.1 dst 203.0.113.2 proto esp reqid 1 mode tunnel";
//! let now = Instant::from_secs(1);
//!
//! // Gateway A protects traffic from 192.0.2.0/24 to 198.51.100.0/24 ...
//! let mut a = Ipsec::new();
//! a.add_sa(parse_state(&sa)?, now)?;
//! a.add_policy(parse_policy(out)?)?;
//! let ping = [
//!     0x45, 0, 0, 28, 0, 1, 0x40, 0, 64, 1, 0, 0, 192, 0, 2, 10, 198, 51, 100, 20,
//!     8, 0, 0xf7, 0xfe, 0, 1, 0, 0,
//! ];
//! let mut buf = PacketBuf::from_slice(&ping);
//! let Protected::Encapsulated { dst, .. } = a.output(now, &mut buf)? else { panic!() };
//! assert_eq!(dst.to_string(), "203.0.113.2");
//! assert_eq!(buf.len(), 20 + 8 + 8 + 28 + 4 + 16); // outer, ESP, IV, inner, trailer, ICV
//!
//! // ... and gateway B, with the same SA, gets the ping back.
//! let mut b = Ipsec::new();
//! b.add_sa(parse_state(&sa)?, now)?;
//! let mut sp = SecPath::new();
//! let got = b.decapsulate(now, &mut buf, &mut sp)?;
//! assert!(matches!(got, Decapsulated::Packet(info) if info.spi == 0x1000));
//! assert_eq!(buf.as_slice(), &ping[..]);
//! // A replay of the same ESP packet would be refused and counted (XfrmInStateSeqError).
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod aead;
pub mod config;
pub mod esp;
pub mod flow;
pub mod fuzzing;
mod ipsec;
pub mod replay;
pub mod sa;
pub mod spd;
pub mod stats;
pub mod text;

pub use flow::{Flow, Prefix, Selector};
pub use ipsec::{
    Bundle, Decapsulated, Event, Ipsec, Protected, SaId, SaInfo, SecPath, ACQUIRE_INTERVAL,
};
pub use sa::{ConfigError, Lifetime, Limit, Mode, Sa, SaConfig, SaCounters, SaFlags};
pub use spd::{Action, Direction, Level, Policy, PolicyConfig, Spd, Template, MAX_DEPTH};
pub use stats::{InDrop, OutDrop, XfrmStat, XfrmStats};

impl std::error::Error for InDrop {}
impl std::error::Error for OutDrop {}
