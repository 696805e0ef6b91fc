//! `-m iprange --src-range FROM-TO --dst-range FROM-TO`: inclusive address ranges of the
//! ruleset's family, each with its own `!`.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::extension::{Arg, Done, MatchExt, Opt};
use crate::{Family, Marks, PacketCtx, RuleError};

pub(crate) const OPTIONS: &[Opt] = &[
    Opt::value(&["--src-range"], true),
    Opt::value(&["--dst-range"], true),
];

/// `-m iprange`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct IpRange {
    pub(crate) src: Option<AddrRange>,
    pub(crate) dst: Option<AddrRange>,
}

impl MatchExt for IpRange {
    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        let mut r = AddrRange::parse(arg.text(), arg.family()).map_err(|e| arg.err(e))?;
        r.invert = arg.invert;
        if arg.name == "--src-range" {
            self.src = Some(r);
        } else {
            self.dst = Some(r);
        }
        Ok(())
    }

    fn check(&self, done: &Done) -> Result<(), RuleError> {
        done.require_any("-m iprange needs --src-range or --dst-range")
    }

    #[inline]
    fn matches(&self, ctx: &PacketCtx, _: &Marks) -> bool {
        self.src.is_none_or(|r| r.matches(ctx.src)) && self.dst.is_none_or(|r| r.matches(ctx.dst))
    }

    fn save(&self, out: &mut String) {
        out.push_str(" -m iprange");
        if let Some(r) = self.src {
            r.write(out, "--src-range");
        }
        if let Some(r) = self.dst {
            r.write(out, "--dst-range");
        }
    }
}

/// An inclusive address range with its `!`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AddrRange {
    pub(crate) lo: IpAddr,
    pub(crate) hi: IpAddr,
    pub(crate) invert: bool,
}

impl AddrRange {
    pub(crate) fn parse(s: &str, family: Family) -> Result<AddrRange, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("bad address range {s} (expected FROM-TO)"))?;
        let addr = |x: &str| -> Result<IpAddr, String> {
            let ip: IpAddr = x.parse().map_err(|_| format!("bad address {x}"))?;
            match (family, ip) {
                (Family::V4, IpAddr::V4(_)) | (Family::V6, IpAddr::V6(_)) => Ok(ip),
                _ => Err(format!("address {x} is not of this ruleset's family")),
            }
        };
        let (lo, hi) = (addr(a)?, addr(b)?);
        if lo > hi {
            return Err(format!("bad address range {s} (FROM above TO)"));
        }
        Ok(AddrRange {
            lo,
            hi,
            invert: false,
        })
    }

    #[inline]
    pub(crate) fn matches(&self, ip: IpAddr) -> bool {
        // IpAddr orders V4 before V6, so a family mismatch is simply outside the range.
        (self.lo <= ip && ip <= self.hi) != self.invert
    }

    pub(crate) fn write(&self, out: &mut String, opt: &str) {
        let _ = write!(
            out,
            "{} {opt} {}-{}",
            if self.invert { " !" } else { "" },
            self.lo,
            self.hi
        );
    }
}
