//! tunfilter's router: the packet pipeline with netfilter's hooks, the
//! ruleset, routing, the router's own stack, the pcap simulator, and the
//! live TUN/TAP driver with its control socket.
//!
//! The [`engine::Engine`] is sans-IO like quinn-proto: push packets in with
//! `handle_packet(now, ingress, buf)`, pull them out with `poll_transmit()`.
//!
//! ```
//! use router::config::Config;
//! use router::engine::Engine;
//! use conntrack::{Instant, PacketBuf};
//!
//! let cfg = Config::parse(r#"
//! [[interface]]
//! name = "lan0"
//! kind = "tun"
//! addresses = ["192.0.2.1/24"]
//! "#, "doc.toml", std::path::Path::new(".")).unwrap();
//! let mut engine = Engine::new(&cfg, 1).unwrap();
//! // An ICMP echo request from 192.0.2.2 to the router's address.
//! let mut ping = vec![0x45, 0, 0, 28, 0, 1, 0, 0, 64, 1, 0, 0, 192, 0, 2, 2, 192, 0, 2, 1,
//!                     8, 0, 0, 0, 0x12, 0x34, 0, 1];
//! let ck = wire::checksum::data(&ping[..20]);
//! ping[10..12].copy_from_slice(&ck.to_be_bytes());
//! let ck = wire::checksum::data(&ping[20..]);
//! ping[22..24].copy_from_slice(&ck.to_be_bytes());
//! engine.handle_packet(Instant::from_secs(1), 0, PacketBuf::from_slice(&ping));
//! let reply = engine.poll_transmit().unwrap();
//! assert_eq!(reply.packet.as_slice()[20], 0); // echo reply
//! ```
#![deny(unsafe_code)]

pub mod config;
pub mod engine;
pub mod flowsearch;
pub mod fuzzing;
pub mod hooks;
pub mod live;
pub mod local;
pub mod offload;
pub mod pcap;
pub mod route;
pub mod shard;
pub mod sim;
pub mod stats;
pub mod tcpmss;
pub mod timer;
