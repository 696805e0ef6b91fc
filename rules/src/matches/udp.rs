//! `-m udp`, `-m udplite`, `-m sctp`, `-m dccp`: `--sport` / `--dport`, each a port or a
//! range with its own `!`. Loaded implicitly by `-p udp --dport 53`, as iptables does, and
//! reused by `-m tcp` (`tcp.rs`) for its ports. Without a port header (a later fragment) the
//! match never holds, negated or not.

use std::fmt::Write as _;

use crate::extension::{Arg, MatchExt, Opt};
use crate::value::{proto_name, PortRange};
use crate::{Marks, PacketCtx, RuleError};

/// `--sport` (also spelt `--source-port`).
pub(crate) const SPORT: Opt = Opt::value(&["--sport", "--source-port"], true);
/// `--dport` (also spelt `--destination-port`).
pub(crate) const DPORT: Opt = Opt::value(&["--dport", "--destination-port"], true);

pub(crate) const OPTIONS: &[Opt] = &[SPORT, DPORT];

/// Options of the real port modules tunfilter refuses by name.
pub(crate) fn refuses(opt: &str) -> bool {
    opt.starts_with("--chunk-types") || opt.starts_with("--dccp-") || opt == "--mss"
}

/// A port option: range plus its own `!`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PortSpec {
    pub(crate) range: PortRange,
    pub(crate) invert: bool,
}

/// The ports of one port-protocol module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ports {
    /// The module's protocol number (its name via [`proto_name`]).
    pub(crate) proto: u8,
    pub(crate) sport: Option<PortSpec>,
    pub(crate) dport: Option<PortSpec>,
}

impl Ports {
    pub(crate) fn new(proto: u8) -> Ports {
        Ports {
            proto,
            sport: None,
            dport: None,
        }
    }

    /// Whether both ports are within their options; `(sport, dport)` are the packet's.
    #[inline]
    pub(crate) fn hit(&self, s: u16, d: u16) -> bool {
        let ok = |spec: &Option<PortSpec>, p: u16| match spec {
            Some(spec) => spec.range.contains(p) != spec.invert,
            None => true,
        };
        ok(&self.sport, s) && ok(&self.dport, d)
    }

    /// ` --sport A --dport B` as given.
    pub(crate) fn save_ports(&self, out: &mut String) {
        let not = |inv: bool| if inv { " !" } else { "" };
        for (name, spec) in [("--sport", &self.sport), ("--dport", &self.dport)] {
            if let Some(spec) = spec {
                let _ = write!(out, "{} {name} ", not(spec.invert));
                spec.range.write(out);
            }
        }
    }
}

impl MatchExt for Ports {
    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        let range = PortRange::parse(arg.text()).map_err(|e| arg.err(e))?;
        let spec = Some(PortSpec {
            range,
            invert: arg.invert,
        });
        if arg.name == SPORT.name() {
            self.sport = spec;
        } else {
            self.dport = spec;
        }
        Ok(())
    }

    #[inline]
    fn matches(&self, ctx: &PacketCtx, _: &Marks) -> bool {
        match (ctx.sport, ctx.dport) {
            (Some(s), Some(d)) => self.hit(s, d),
            _ => false,
        }
    }

    fn save(&self, out: &mut String) {
        let _ = write!(out, " -m {}", proto_name(self.proto));
        self.save_ports(out);
    }
}
