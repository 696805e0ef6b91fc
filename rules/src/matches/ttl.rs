//! `-m ttl --ttl-eq|--ttl-gt|--ttl-lt N` (IPv4) and `-m hl --hl-eq|--hl-gt|--hl-lt N` (IPv6):
//! the TTL or hop limit as the packet has it at this hook. Only the `-eq` forms take `!`.

use std::fmt::Write as _;

use crate::extension::{Arg, Done, MatchExt, Opt};
use crate::value::parse_uint;
use crate::{Marks, PacketCtx, RuleError};

pub(crate) const OPTIONS: &[Opt] = &[
    Opt::grouped(&["--ttl-eq"], "ttl", true),
    Opt::grouped(&["--ttl-gt"], "ttl", false),
    Opt::grouped(&["--ttl-lt"], "ttl", false),
];

pub(crate) const OPTIONS_HL: &[Opt] = &[
    Opt::grouped(&["--hl-eq"], "hl", true),
    Opt::grouped(&["--hl-gt"], "hl", false),
    Opt::grouped(&["--hl-lt"], "hl", false),
];

/// The comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Gt,
}

impl Cmp {
    #[inline]
    pub(crate) fn test(self, have: u8, want: u8) -> bool {
        match self {
            Cmp::Eq => have == want,
            Cmp::Ne => have != want,
            Cmp::Lt => have < want,
            Cmp::Gt => have > want,
        }
    }

    /// Save form for `prefix` `ttl` or `hl`: `--ttl-eq 64`, `! --ttl-eq 64`, ...
    pub(crate) fn write(self, out: &mut String, prefix: &str, value: u8) {
        let (not, op) = match self {
            Cmp::Eq => ("", "eq"),
            Cmp::Ne => (" !", "eq"),
            Cmp::Lt => ("", "lt"),
            Cmp::Gt => ("", "gt"),
        };
        let _ = write!(out, "{not} --{prefix}-{op} {value}");
    }
}

/// `-m ttl` (`v6` false) or `-m hl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ttl {
    pub(crate) cmp: Cmp,
    pub(crate) value: u8,
    pub(crate) v6: bool,
}

impl Ttl {
    pub(crate) fn new(v6: bool) -> Ttl {
        Ttl {
            cmp: Cmp::Eq,
            value: 0,
            v6,
        }
    }
}

impl MatchExt for Ttl {
    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        let n = parse_uint(arg.text(), 255)
            .map_err(|_| arg.err(format!("bad value {} (0..=255)", arg.text())))?;
        self.value = n as u8;
        self.cmp = match (arg.name.rsplit('-').next(), arg.invert) {
            (Some("eq"), false) => Cmp::Eq,
            (Some("eq"), true) => Cmp::Ne,
            (Some("lt"), _) => Cmp::Lt,
            _ => Cmp::Gt,
        };
        Ok(())
    }

    fn check(&self, done: &Done) -> Result<(), RuleError> {
        done.require_any(if self.v6 {
            "-m hl needs --hl-eq, --hl-gt or --hl-lt"
        } else {
            "-m ttl needs --ttl-eq, --ttl-gt or --ttl-lt"
        })
    }

    #[inline]
    fn matches(&self, ctx: &PacketCtx, _: &Marks) -> bool {
        self.cmp.test(ctx.ttl, self.value)
    }

    fn save(&self, out: &mut String) {
        let name = if self.v6 { "hl" } else { "ttl" };
        let _ = write!(out, " -m {name}");
        self.cmp.write(out, name, self.value);
    }
}
