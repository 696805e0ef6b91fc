//! `-j REJECT [--reject-with TYPE]` (filter table): drop the packet and answer with an ICMP
//! error or, with `tcp-reset` (which needs `-p tcp`), a TCP RST. The default answer is the
//! family's port unreachable. The engine builds the answer from [`crate::Verdict::Reject`].

use crate::extension::{Arg, Cx, TargetExt};
use crate::lex::Tok;
use crate::{Family, RuleError};

/// The answer a REJECT sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectWith {
    /// ICMP destination unreachable, network unreachable (code 0).
    IcmpNetUnreachable,
    /// ICMP destination unreachable, host unreachable (code 1).
    IcmpHostUnreachable,
    /// ICMP destination unreachable, port unreachable (code 3): the IPv4 default.
    IcmpPortUnreachable,
    /// ICMP destination unreachable, protocol unreachable (code 2).
    IcmpProtoUnreachable,
    /// ICMP destination unreachable, network administratively prohibited (code 9).
    IcmpNetProhibited,
    /// ICMP destination unreachable, host administratively prohibited (code 10).
    IcmpHostProhibited,
    /// ICMP destination unreachable, communication administratively prohibited (code 13).
    IcmpAdminProhibited,
    /// ICMPv6 destination unreachable, no route (code 0).
    Icmp6NoRoute,
    /// ICMPv6 destination unreachable, administratively prohibited (code 1).
    Icmp6AdmProhibited,
    /// ICMPv6 destination unreachable, address unreachable (code 3).
    Icmp6AddrUnreachable,
    /// ICMPv6 destination unreachable, port unreachable (code 4): the IPv6 default.
    Icmp6PortUnreachable,
    /// A TCP RST (TCP packets only).
    TcpReset,
}

/// Names per family: the canonical (saved) name first, then accepted aliases.
const REJECT_V4: &[(RejectWith, &[&str])] = &[
    (
        RejectWith::IcmpNetUnreachable,
        &["icmp-net-unreachable", "net-unreach"],
    ),
    (
        RejectWith::IcmpHostUnreachable,
        &["icmp-host-unreachable", "host-unreach"],
    ),
    (
        RejectWith::IcmpPortUnreachable,
        &["icmp-port-unreachable", "port-unreach"],
    ),
    (
        RejectWith::IcmpProtoUnreachable,
        &["icmp-proto-unreachable", "proto-unreach"],
    ),
    (
        RejectWith::IcmpNetProhibited,
        &["icmp-net-prohibited", "net-prohib"],
    ),
    (
        RejectWith::IcmpHostProhibited,
        &["icmp-host-prohibited", "host-prohib"],
    ),
    (
        RejectWith::IcmpAdminProhibited,
        &["icmp-admin-prohibited", "admin-prohib"],
    ),
    (RejectWith::TcpReset, &["tcp-reset", "tcp-rst"]),
];

const REJECT_V6: &[(RejectWith, &[&str])] = &[
    (RejectWith::Icmp6NoRoute, &["icmp6-no-route", "no-route"]),
    (
        RejectWith::Icmp6AdmProhibited,
        &["icmp6-adm-prohibited", "adm-prohibited"],
    ),
    (
        RejectWith::Icmp6AddrUnreachable,
        &["icmp6-addr-unreachable", "addr-unreach"],
    ),
    (
        RejectWith::Icmp6PortUnreachable,
        &["icmp6-port-unreachable", "port-unreach"],
    ),
    (RejectWith::TcpReset, &["tcp-reset", "tcp-rst"]),
];

impl RejectWith {
    /// The default `--reject-with` of the family (port unreachable).
    pub fn default_for(family: Family) -> RejectWith {
        match family {
            Family::V4 => RejectWith::IcmpPortUnreachable,
            Family::V6 => RejectWith::Icmp6PortUnreachable,
        }
    }

    pub(crate) fn parse(s: &str, family: Family) -> Result<RejectWith, String> {
        let table = match family {
            Family::V4 => REJECT_V4,
            Family::V6 => REJECT_V6,
        };
        table
            .iter()
            .find(|(_, names)| names.contains(&s))
            .map(|&(r, _)| r)
            .ok_or_else(|| {
                let all: Vec<&str> = table.iter().map(|(_, n)| n[0]).collect();
                format!("unknown reject type {s} (one of {})", all.join(", "))
            })
    }

    /// The name iptables-save / ip6tables-save prints.
    pub fn name(self) -> &'static str {
        REJECT_V4
            .iter()
            .chain(REJECT_V6)
            .find(|(r, _)| *r == self)
            .map_or("icmp-port-unreachable", |(_, n)| n[0])
    }
}

/// `-j REJECT` being built.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    /// `--reject-with` with the column of its value.
    with: Option<(RejectWith, usize)>,
}

impl TargetExt for Builder {
    type Output = RejectWith;

    fn takes(&self, opt: &Tok, _: &Cx) -> Result<Option<u8>, RuleError> {
        Ok((opt.text == "--reject-with").then_some(1))
    }

    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        let r = RejectWith::parse(arg.text(), arg.family()).map_err(|e| arg.err(e))?;
        if self.with.is_some() {
            return Err(arg.err_opt(format!("{} given twice", arg.name)));
        }
        self.with = Some((r, arg.tok().col));
        Ok(())
    }

    fn finish(
        self,
        cx: &Cx,
        _col: usize,
        proto: Option<(u8, bool)>,
    ) -> Result<RejectWith, RuleError> {
        Ok(match self.with {
            Some((RejectWith::TcpReset, vcol)) if proto != Some((6, false)) => {
                return Err(cx.err(vcol, "tcp-reset needs -p tcp (not negated)"))
            }
            Some((r, _)) => r,
            None => RejectWith::default_for(cx.family),
        })
    }
}

/// ` -j REJECT --reject-with NAME`.
pub(crate) fn save(r: RejectWith, out: &mut String) {
    out.push_str(" -j REJECT --reject-with ");
    out.push_str(r.name());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_names() {
        assert_eq!(
            RejectWith::parse("icmp-admin-prohibited", Family::V4).unwrap(),
            RejectWith::IcmpAdminProhibited
        );
        assert_eq!(
            RejectWith::parse("adm-prohibited", Family::V6).unwrap(),
            RejectWith::Icmp6AdmProhibited
        );
        assert!(RejectWith::parse("icmp6-no-route", Family::V4).is_err());
        assert!(RejectWith::parse("icmp-host-prohibited", Family::V6).is_err());
        assert_eq!(RejectWith::TcpReset.name(), "tcp-reset");
        assert_eq!(RejectWith::Icmp6NoRoute.name(), "icmp6-no-route");
    }
}
