//! `-m connbytes [!] --connbytes FROM[:TO] --connbytes-mode packets|bytes|avgpkt
//! --connbytes-dir original|reply|both`: the connection's packet and byte counters.
//!
//! It reads the per-direction counters the pipeline puts in [`crate::ConnView`]; they
//! already count the current packet (conntrack accounts a packet before the tables see it,
//! as the kernel's does). Untracked packets never match, negated or not.

use std::fmt::Write as _;

use crate::extension::{Arg, Done, MatchExt, Opt};
use crate::{Marks, PacketCtx, RuleError};

pub(crate) const OPTIONS: &[Opt] = &[
    Opt::value(&["--connbytes"], true),
    Opt::value(&["--connbytes-dir"], false),
    Opt::value(&["--connbytes-mode"], false),
];

/// What `--connbytes` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnbytesMode {
    Packets,
    Bytes,
    AvgPkt,
}

/// Which direction's counters `--connbytes` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnbytesDir {
    Original,
    Reply,
    Both,
}

impl ConnbytesMode {
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        match s {
            "packets" => Ok(Self::Packets),
            "bytes" => Ok(Self::Bytes),
            "avgpkt" => Ok(Self::AvgPkt),
            _ => Err(format!(
                "bad --connbytes-mode {s} (packets, bytes or avgpkt)"
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Packets => "packets",
            Self::Bytes => "bytes",
            Self::AvgPkt => "avgpkt",
        }
    }
}

impl ConnbytesDir {
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        match s {
            "original" => Ok(Self::Original),
            "reply" => Ok(Self::Reply),
            "both" => Ok(Self::Both),
            _ => Err(format!("bad --connbytes-dir {s} (original, reply or both)")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Original => "original",
            Self::Reply => "reply",
            Self::Both => "both",
        }
    }
}

/// `-m connbytes [!] --connbytes from[:to] --connbytes-mode M --connbytes-dir D`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Connbytes {
    pub(crate) from: u64,
    /// `u64::MAX` when no upper bound was given.
    pub(crate) to: u64,
    pub(crate) invert: bool,
    pub(crate) mode: ConnbytesMode,
    pub(crate) dir: ConnbytesDir,
}

impl Default for Connbytes {
    fn default() -> Self {
        Connbytes {
            from: 0,
            to: u64::MAX,
            invert: false,
            mode: ConnbytesMode::Packets,
            dir: ConnbytesDir::Both,
        }
    }
}

impl Connbytes {
    /// Parses `from`, `from:`, `:to` or `from:to`.
    pub(crate) fn parse_range(s: &str) -> Result<(u64, u64), String> {
        let num = |t: &str, dflt: u64| -> Result<u64, String> {
            if t.is_empty() {
                Ok(dflt)
            } else {
                t.parse::<u64>()
                    .map_err(|_| format!("bad --connbytes value {s} (N, N: or N:M)"))
            }
        };
        let (from, to) = match s.split_once(':') {
            Some((a, b)) => (num(a, 0)?, num(b, u64::MAX)?),
            None => (num(s, 0)?, u64::MAX),
        };
        if s.is_empty() || s == ":" {
            return Err(format!("bad --connbytes value {s:?} (N, N: or N:M)"));
        }
        if from > to {
            return Err(format!("bad --connbytes range {s} ({from} is above {to})"));
        }
        Ok((from, to))
    }
}

impl MatchExt for Connbytes {
    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        match arg.name {
            "--connbytes" => {
                (self.from, self.to) =
                    Connbytes::parse_range(arg.text()).map_err(|e| arg.err(e))?;
                self.invert = arg.invert;
            }
            "--connbytes-mode" => {
                self.mode = ConnbytesMode::parse(arg.text()).map_err(|e| arg.err(e))?;
            }
            _ => self.dir = ConnbytesDir::parse(arg.text()).map_err(|e| arg.err(e))?,
        }
        Ok(())
    }

    fn check(&self, done: &Done) -> Result<(), RuleError> {
        for (opt, what) in [
            ("--connbytes", "-m connbytes needs --connbytes"),
            ("--connbytes-dir", "-m connbytes needs --connbytes-dir"),
            ("--connbytes-mode", "-m connbytes needs --connbytes-mode"),
        ] {
            if !done.has(opt) {
                return Err(done.err(what));
            }
        }
        Ok(())
    }

    fn matches(&self, ctx: &PacketCtx, _: &Marks) -> bool {
        let Some(c) = &ctx.conn else {
            return false;
        };
        let [o, r] = c.counters;
        let (pk, by) = match self.dir {
            ConnbytesDir::Original => (o.0, o.1),
            ConnbytesDir::Reply => (r.0, r.1),
            ConnbytesDir::Both => (o.0.saturating_add(r.0), o.1.saturating_add(r.1)),
        };
        let what = match self.mode {
            ConnbytesMode::Packets => pk,
            ConnbytesMode::Bytes => by,
            ConnbytesMode::AvgPkt => by.checked_div(pk).unwrap_or(0),
        };
        (self.from <= what && what <= self.to) != self.invert
    }

    fn save(&self, out: &mut String) {
        let not = if self.invert { " !" } else { "" };
        let _ = write!(out, " -m connbytes{not} --connbytes {}", self.from);
        if self.to != u64::MAX {
            let _ = write!(out, ":{}", self.to);
        }
        let _ = write!(
            out,
            " --connbytes-mode {} --connbytes-dir {}",
            self.mode.name(),
            self.dir.name()
        );
    }
}
