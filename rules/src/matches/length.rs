//! `-m length --length N|LO:HI`: the L3 length of the packet (IP header included).

use std::fmt::Write as _;

use crate::extension::{Arg, Done, MatchExt, Opt};
use crate::value::{parse_u16_range, PortRange};
use crate::{Marks, PacketCtx, RuleError};

pub(crate) const OPTIONS: &[Opt] = &[Opt::value(&["--length"], true)];

/// `-m length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Length {
    pub(crate) lo: u16,
    pub(crate) hi: u16,
    pub(crate) invert: bool,
}

impl Default for Length {
    fn default() -> Length {
        Length {
            lo: 0,
            hi: u16::MAX,
            invert: false,
        }
    }
}

impl MatchExt for Length {
    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        (self.lo, self.hi) = parse_u16_range(arg.text(), "length").map_err(|e| arg.err(e))?;
        self.invert = arg.invert;
        Ok(())
    }

    fn check(&self, done: &Done) -> Result<(), RuleError> {
        done.require_any("-m length needs --length")
    }

    #[inline]
    fn matches(&self, ctx: &PacketCtx, _: &Marks) -> bool {
        (u32::from(self.lo) <= ctx.len && ctx.len <= u32::from(self.hi)) != self.invert
    }

    fn save(&self, out: &mut String) {
        let not = if self.invert { " !" } else { "" };
        let _ = write!(out, " -m length{not} --length ");
        // The same `n` / `lo:hi` form as a port range.
        PortRange {
            lo: self.lo,
            hi: self.hi,
        }
        .write(out);
    }
}
