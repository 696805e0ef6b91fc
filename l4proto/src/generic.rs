//! The generic module: every protocol without a module of its own (GRE,
//! ESP, AH, ...). Connections are told apart by addresses and protocol only
//! (identifiers 0, 0) and live for the `generic` timeout after each packet.

use crate::Timeouts;
use conntrack::{ConnCtx, Instant, Invalid, L4Packet, Verdict};

/// The generic module's (empty) per-connection state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenericState;

/// The generic module.
#[derive(Clone, Debug, Default)]
pub struct Generic;

impl Generic {
    /// No identifiers: (0, 0).
    // Kept a call: when every arm of `L4Modules::ids` is a call, the dispatcher tail-calls.
    // Inlined, this constant made LLVM take every arm's result (returned in a register since
    // `Invalid` is one byte) apart and rebuild it: ~20 instructions per packet.
    #[inline(never)]
    pub fn ids(&self, _pkt: &L4Packet<'_>) -> Result<(u16, u16), Invalid> {
        Ok((0, 0))
    }

    /// Any packet starts a connection.
    pub fn new_conn(&self, _pkt: &L4Packet<'_>, _now: Instant) -> Result<GenericState, Invalid> {
        Ok(GenericState)
    }

    /// Every packet refreshes the `generic` timeout.
    pub fn packet(
        &self,
        _s: &mut GenericState,
        _ctx: &mut ConnCtx<'_>,
        _pkt: &L4Packet<'_>,
        t: &Timeouts,
    ) -> Verdict {
        Verdict::Accept { timeout: t.generic }
    }
}
