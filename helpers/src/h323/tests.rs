//! Tests of the H.323 helpers: the PER reader, each walker on messages built by hand, the
//! real call of `tests/data/pcap/ndpi-h323.pcap` against tshark's decoding, and the helpers'
//! expectations and NAT rewrites.

use super::per::{PerErrorKind, PerReader};
use super::*;
use crate::{HelperOutput, HelperPacket, Registry};
use conntrack::tuple::{Dir, Tuple};
use conntrack::Instant;
use std::collections::BTreeSet;

mod capture;
mod helper;
mod messages;
mod reader;
