//! Generic connection tracking, after Linux's nf_conntrack, as a sans-IO
//! library: no clock, no files, no sockets. Time is passed in as
//! [`Instant`] (from the `wire` crate, which also holds the packet views and
//! buffers this crate reads).
//!
//! What lives here:
//! - [`tuple`]: the per-direction connection tuple and its `invert`;
//! - [`proto`]: the [`proto::L3Proto`] and [`proto::L4Proto`] traits that
//!   protocol modules implement (the `l3proto` and `l4proto` crates), and
//!   [`Invalid`], why a packet is INVALID;
//! - [`reason`]: typed reasons with fixed texts and counter slots ([`reasons!`]),
//!   which every crate's drop and refusal reasons are declared with;
//! - [`table`]: the connection table (keyed hash, bounded size, early drop,
//!   bounded GC sweep, insertion at confirm);
//! - [`expect`]: the expectation table (hashed by destination, bounded, swept);
//! - [`event`]: the event stream (new/update/destroy, expectations).
//!
//! ```
//! use conntrack::conn::Conn;
//! use conntrack::proto::ProtoState;
//! use conntrack::table::{ConnTable, TableConfig};
//! use conntrack::Instant;
//! use conntrack::tuple::{Dir, Tuple};
//!
//! #[derive(Debug)]
//! struct NoState;
//! impl ProtoState for NoState {
//!     fn state_name(&self) -> &'static str { "" }
//! }
//!
//! let mut table = ConnTable::new(TableConfig { hash_seed: 42, ..TableConfig::default() });
//! let t = Tuple {
//!     src: "192.0.2.2".parse().unwrap(),
//!     dst: "198.51.100.7".parse().unwrap(),
//!     src_id: 40000,
//!     dst_id: 53,
//!     proto: 17,
//!     zone: 0,
//! };
//! let now = Instant::from_secs(1);
//! let conn = Conn::new(t, t.invert(), NoState, now + std::time::Duration::from_secs(30));
//! let id = table.confirm(conn, now).unwrap();
//! // The reply direction finds the same connection.
//! assert_eq!(table.lookup(&t.invert(), now), Some((id, Dir::Reply)));
//! ```
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod conn;
pub mod event;
pub mod expect;
mod invalid;
pub mod proto;
pub mod reason;
pub mod table;
pub mod tuple;

pub use conn::ConnId;
pub use conn::{Conn, Counter, Status};
pub use event::{ConnInfo, Event, EventKind};
pub use expect::{ExpectLimits, Expectation};
pub use proto::{ConnCtx, Invalid, L3Packet, L3Proto, L4Packet, L4Proto, ProtoState, Verdict};
pub use reason::Reason;
pub use table::{ConnTable, TableConfig};
pub use tuple::{Dir, Family, Tuple, TupleMask};
pub use wire::{Instant, PacketBuf, SegChain};
