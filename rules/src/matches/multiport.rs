//! `-m multiport --sports|--dports|--ports LIST`: up to 15 ports or ranges (a range takes two
//! of the kernel's slots), with one `!` for the list. Needs `-p` of a port protocol. Without a
//! port header (a later fragment) it never matches, even with `!`, as in the kernel.

use std::fmt::Write as _;

use crate::extension::{Arg, Done, MatchExt, Opt};
use crate::value::PortRange;
use crate::{Marks, PacketCtx, RuleError};

pub(crate) const OPTIONS: &[Opt] = &[
    Opt::grouped(&["--sports", "--source-ports"], "ports", true),
    Opt::grouped(&["--dports", "--destination-ports"], "ports", true),
    Opt::grouped(&["--ports"], "ports", true),
];

/// Which ports a list applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PortDir {
    Src,
    Dst,
    Either,
}

/// `-m multiport`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Multiport {
    pub(crate) dir: PortDir,
    pub(crate) ports: Vec<PortRange>,
    pub(crate) invert: bool,
}

impl Default for Multiport {
    fn default() -> Multiport {
        Multiport {
            dir: PortDir::Dst,
            ports: Vec::new(),
            invert: false,
        }
    }
}

/// The kernel's multiport keeps 15 slots; a range takes two.
const MULTIPORT_SLOTS: usize = 15;

impl Multiport {
    /// Parses `22,80,8000:8100`; on error returns the character offset of the bad element.
    pub(crate) fn parse_list(s: &str) -> Result<Vec<PortRange>, (usize, String)> {
        let mut ports = Vec::new();
        let mut slots = 0;
        let mut offset = 0;
        for part in s.split(',') {
            let r = PortRange::parse(part).map_err(|e| (offset, e))?;
            slots += if r.lo == r.hi { 1 } else { 2 };
            if slots > MULTIPORT_SLOTS {
                return Err((
                    offset,
                    format!("too many ports (at most {MULTIPORT_SLOTS}, a range counts as two)"),
                ));
            }
            ports.push(r);
            offset += part.chars().count() + 1;
        }
        Ok(ports)
    }
}

impl MatchExt for Multiport {
    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        self.dir = match arg.name {
            "--sports" => PortDir::Src,
            "--dports" => PortDir::Dst,
            _ => PortDir::Either,
        };
        self.ports = Multiport::parse_list(arg.text()).map_err(|e| arg.err_at(e))?;
        self.invert = arg.invert;
        Ok(())
    }

    fn check(&self, done: &Done) -> Result<(), RuleError> {
        done.require_any("-m multiport needs --sports, --dports or --ports")?;
        if !done.port_proto() {
            return Err(
                done.err("-m multiport needs -p tcp, udp, udplite, sctp or dccp (not negated)")
            );
        }
        Ok(())
    }

    #[inline]
    fn matches(&self, ctx: &PacketCtx, _: &Marks) -> bool {
        let (Some(s), Some(d)) = (ctx.sport, ctx.dport) else {
            return false;
        };
        let hit = self.ports.iter().any(|r| match self.dir {
            PortDir::Src => r.contains(s),
            PortDir::Dst => r.contains(d),
            PortDir::Either => r.contains(s) || r.contains(d),
        });
        hit != self.invert
    }

    fn save(&self, out: &mut String) {
        let opt = match self.dir {
            PortDir::Src => "--sports",
            PortDir::Dst => "--dports",
            PortDir::Either => "--ports",
        };
        let _ = write!(
            out,
            " -m multiport{} {opt} ",
            if self.invert { " !" } else { "" }
        );
        for (i, r) in self.ports.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            r.write(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiport_lists() {
        let l = Multiport::parse_list("22,80,8000:8100").unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(Multiport::parse_list("1,2,x").unwrap_err().0, 4);
        let fifteen: Vec<String> = (1..=15).map(|p| p.to_string()).collect();
        assert!(Multiport::parse_list(&fifteen.join(",")).is_ok());
        // 14 singles plus one range = 16 slots.
        let mut over: Vec<String> = (1..=14).map(|p| p.to_string()).collect();
        over.push("100:200".into());
        assert_eq!(Multiport::parse_list(&over.join(",")).unwrap_err().0, 33);
    }
}
